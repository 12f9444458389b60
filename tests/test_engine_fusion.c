/* Fusion: a plan runs elementwise consumers (bias add, activation, relu_grad) inside the
 * matrix product that makes their input, range by range. Checked:
 *   - training with fusion and without gives bitwise the same parameters, Adam moments and
 *     losses, for MLPs whose products take each GEMM path (direct for small ones, packed
 *     with several k slices and partial tiles for big ones), on 1, 2 and 3 threads, with
 *     SGD, momentum, Adam and AdamW, and when the batch size changes between steps;
 *   - fusion really happens (dg_graph_fused_nodes), and not with dg_set_fusion(g, 0);
 *   - a consumer that reads the product twice, or more of it than its own elements, is not
 *     fused; one that also reads values computed earlier is; training with residual adds,
 *     or with clipping by global norm, still matches;
 *   - a custom DG_OP_EPILOGUE op that reports only part of its output gets a clear error in
 *     anomaly mode, one that reports nothing has its consumers run after it;
 *   - anomaly mode still names the product when it makes a NaN.
 * Gradients reach the same values either way, so their finite-difference checks elsewhere
 * cover the fused runs too. */
#include "test_util.h"

#include <math.h>
#include <string.h>

typedef struct model {
    dg_graph *g;
    dg_node *x, *y, *loss;
    dg_optimizer *opt;
} model;

static model build(int in, const int *hidden, int layers, dg_optim_kind kind, int fusion,
                   int residual, float clip) {
    model m;
    m.g = dg_graph_new(7);
    dg_set_fusion(m.g, fusion);
    m.x = dg_input(m.g, "x", dg_shape2(DG_BATCH, in));
    m.y = dg_input(m.g, "y", dg_shape1(DG_BATCH));
    dg_node *h = m.x;
    char name[16];
    for (int l = 0; l < layers; l++) {
        snprintf(name, sizeof name, "fc%d", l);
        dg_node *z = dg_dense(m.g, name, h, hidden[l], DG_ACT_RELU);
        /* a residual connection: the add fuses after the relu, reading the earlier h */
        if (residual && dg_node_shape(z).dim[1] == dg_node_shape(h).dim[1]) z = dg_add(m.g, z, h);
        h = z;
    }
    dg_node *logits = dg_dense(m.g, "out", h, 10, DG_ACT_NONE);
    m.loss = dg_cross_entropy_loss(m.g, logits, m.y);
    dg_optim_config c = dg_optim_defaults(kind);
    c.lr = kind == DG_SGD || kind == DG_MOMENTUM ? 0.05f : 1e-3f;
    c.clip_norm = clip;
    if (kind == DG_ADAMW) c.weight_decay = 0.1f;
    m.opt = dg_optimizer_new(m.g, m.loss, &c);
    CHECK(m.opt != NULL);
    return m;
}

static void batch(float *x, float *y, int rows, int in, int step) {
    for (int i = 0; i < rows * in; i++) x[i] = sinf(0.37f * (float)(i + 1) + (float)step) * 0.8f;
    for (int r = 0; r < rows; r++) y[r] = (float)((r * 7 + step) % 10);
}

/* Trains the same model fused and unfused for `steps` steps with batches of `rows[s]`. */
static void compare(int in, const int *hidden, int layers, dg_optim_kind kind, int threads,
                    const int *rows, int steps, int residual, float clip, int expect_fused) {
    dg_set_num_threads(threads);
    model f = build(in, hidden, layers, kind, 1, residual, clip);
    model u = build(in, hidden, layers, kind, 0, residual, clip);
    static float x[300 * 800], y[300];
    int fused_max = 0;
    for (int s = 0; s < steps; s++) {
        batch(x, y, rows[s], in, s);
        CHECK_OK(dg_feed(f.x, x, (int64_t)rows[s] * in));
        CHECK_OK(dg_feed(f.y, y, rows[s]));
        CHECK_OK(dg_feed(u.x, x, (int64_t)rows[s] * in));
        CHECK_OK(dg_feed(u.y, y, rows[s]));
        CHECK_OK(dg_optimizer_step(f.opt));
        CHECK_OK(dg_optimizer_step(u.opt));
        if (dg_graph_fused_nodes(f.g) > fused_max) fused_max = dg_graph_fused_nodes(f.g);
        CHECK(dg_graph_fused_nodes(u.g) == 0);
        float lf = dg_value(f.loss), lu = dg_value(u.loss);
        CHECK_MSG(memcmp(&lf, &lu, sizeof lf) == 0, "step %d: loss %.9g fused, %.9g not", s,
                  (double)lf, (double)lu);
    }
    CHECK_MSG(test_same_weights(f.g, u.g),
              "in %d, %d layers, optimizer %d, %d threads: parameters differ", in, layers,
              (int)kind, threads);
    if (expect_fused)
        CHECK_MSG(fused_max >= expect_fused, "%d nodes fused, expected at least %d", fused_max,
                  expect_fused);
    dg_graph_free(f.g);
    dg_graph_free(u.g);
}

static void same_results(void) {
    const int small[2] = {20, 12}, big[2] = {600, 300};
    const int rows_small[4] = {32, 32, 7, 32}, rows_big[3] = {128, 61, 128};
    const dg_optim_kind kinds[4] = {DG_SGD, DG_MOMENTUM, DG_ADAM, DG_ADAMW};
    for (int t = 1; t <= 3; t++)
        for (int k = 0; k < 4; k++) {
            /* small products take the direct path: bias and relu of both hidden layers, the
             * output's bias and relu_grad of both: 7 fused nodes */
            compare(50, small, 2, kinds[k], t, rows_small, 4, 0, 0.0f, 7);
            /* 784 inputs: k sliced (4 x 196) and 600 columns of partial tiles */
            compare(784, big, 2, kinds[k], t, rows_big, 3, 0, 0.0f, 7);
        }
}

/* How many nodes a run of `which` fuses, checking its values against fusion off. */
static int fused_in(int which) {
    int count = -1;
    float out[2][20];
    for (int fusion = 1; fusion >= 0; fusion--) {
        dg_graph *g = dg_graph_new(3);
        dg_set_fusion(g, fusion);
        dg_node *x = dg_input(g, "x", dg_shape2(4, 3)), *r = dg_input(g, "r", dg_shape2(4, 5));
        dg_node *w = dg_param(g, "w", dg_shape2(3, 5));
        float xv[12], rv[20];
        for (int i = 0; i < 12; i++) xv[i] = 0.3f * (float)i - 1.5f;
        for (int i = 0; i < 20; i++)
            rv[i] = 0.1f * (float)i - 1.0f, dg_node_data(w)[i % 15] = rv[i];
        dg_node *p = dg_matmul(g, x, w), *y = NULL;
        switch (which) {
        case 0: y = dg_mul(g, p, p); break;                       /* reads p twice */
        case 1: y = dg_add(g, dg_relu(g, p), r); break;           /* r is ready before */
        case 2: y = dg_mul(g, dg_relu(g, p), p); break;           /* relu fused, mul reads p */
        case 3: y = dg_add(g, p, dg_sum_axis(g, p, 1, 1)); break; /* needs whole rows of p */
        case 4: /* a column broadcast: the general path of add's forward_range */
            y = dg_sub(g, p, dg_const(g, "col", dg_shape2(4, 1), NULL, 0.25f));
            break;
        }
        CHECK_OK(dg_feed(x, xv, 12));
        CHECK_OK(dg_feed(r, rv, 20));
        CHECK_OK(dg_run(g, y));
        CHECK(dg_node_numel(y) == 20);
        memcpy(out[fusion], dg_node_data(y), sizeof out[0]);
        if (fusion) count = dg_graph_fused_nodes(g);
        dg_graph_free(g);
    }
    CHECK_MSG(memcmp(out[0], out[1], sizeof out[0]) == 0, "case %d: fused values differ", which);
    return count;
}

static void not_fused_where_unsafe(void) {
    CHECK(fused_in(0) == 0);
    CHECK(fused_in(1) == 2);
    CHECK(fused_in(2) == 1);
    CHECK(fused_in(3) == 0);
    CHECK(fused_in(4) == 1);
    /* training with residual adds and with clipping by global norm still matches */
    const int hid[2] = {32, 32}, rows[3] = {16, 16, 16};
    compare(32, hid, 2, DG_ADAM, 2, rows, 3, 1, 0.0f, 7);
    compare(32, hid, 2, DG_ADAM, 2, rows, 2, 0, 0.5f, 7);
}

/* ---- a custom producer that reports its output in pieces (or wrongly) ---- */

typedef struct piece_attrs {
    int64_t report; /* elements it reports to its epilogue: all, part, or none */
} piece_attrs;

static dg_status piece_forward(dg_node *self) {
    const float *x = dg_node_data(dg_node_input(self, 0));
    float *y = dg_node_data(self);
    int64_t n = dg_node_numel(self), report = ((const piece_attrs *)dg_node_attrs(self))->report;
    for (int64_t i = 0; i < n; i++) y[i] = 2.0f * x[i];
    /* from the back, 5 at a time: order must not matter */
    for (int64_t hi = report; hi > 0; hi -= 5) dg_node_epilogue(self, hi > 5 ? hi - 5 : 0, hi);
    return DG_OK;
}

static const dg_op_def piece_op = {.name = "piece",
                                   .n_inputs = 1,
                                   .flags = DG_OP_EPILOGUE,
                                   .infer_shape = dg_rule_same_shape,
                                   .forward = piece_forward};

static void custom_producer(void) {
    for (int mode = 0; mode < 3; mode++) {
        dg_graph *g = dg_graph_new(1);
        dg_set_anomaly_mode(g, 1); /* which checks the coverage */
        dg_node *x = dg_input(g, "x", dg_shape1(23));
        piece_attrs a = {mode == 0 ? 23 : mode == 1 ? 10 : 0};
        dg_node *p = dg_apply(g, &piece_op, 1, &x, &a, sizeof a);
        dg_node *y = dg_tanh(g, dg_shift(g, p, 0.5f));
        float xv[23];
        for (int i = 0; i < 23; i++) xv[i] = 0.1f * (float)i - 1.0f;
        CHECK_OK(dg_feed(x, xv, 23));
        dg_status s = dg_run(g, y);
        if (mode == 1) {
            CHECK(s == DG_ERR_STATE);
            CHECK_MSG(strstr(dg_graph_error(g), "reported 10 of its 23") != NULL, "%s",
                      dg_graph_error(g));
        } else {
            CHECK_OK(s);
            CHECK(dg_graph_fused_nodes(g) == (mode == 0 ? 2 : 0));
            for (int i = 0; i < 23; i++)
                CHECK_NEAR(dg_node_data(y)[i], tanhf(2.0f * xv[i] + 0.5f), 1e-6);
        }
        dg_graph_free(g);
    }
}

static void anomaly_names_the_product(void) {
    dg_graph *g = dg_graph_new(1);
    dg_set_anomaly_mode(g, 1);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
    dg_node *w = dg_param(g, "w", dg_shape2(3, 2));
    dg_node *y = dg_relu(g, dg_matmul(g, x, w));
    float xv[6] = {1, 2, 3, 4, 5, 6}, *wv = dg_node_data(w);
    for (int i = 0; i < 6; i++) wv[i] = 0.5f;
    wv[3] = INFINITY;
    wv[1] = -INFINITY;
    CHECK_OK(dg_feed(x, xv, 6));
    CHECK(dg_run(g, y) == DG_ERR_NONFINITE);
    CHECK_MSG(strstr(dg_graph_error(g), "matmul") != NULL, "%s", dg_graph_error(g));
    dg_graph_free(g);
}

int main(void) {
    same_results();
    not_fused_where_unsafe();
    custom_producer();
    anomaly_names_the_product();
    return test_summary("engine_fusion");
}
