/* One graph for any batch size. A model is built once on DG_BATCH inputs and fed batches
 * of 5, 1, 7, 5 and 3 rows: its loss and gradients equal, bit for bit, those of graphs built
 * for each fixed size with the same parameters (so the 1/N of mean and of the loss
 * backward is the run's N, not a number frozen at build time), they match finite
 * differences at two sizes, and an optimizer trains it with a partial last batch. Batch
 * inputs fed different numbers of rows are refused with both names and change nothing; so
 * is a fixed-size constant that cannot follow the batch; a feed of a partial row is
 * refused; flatten and dropout follow the batch size, and the summary shows it as N. */
#include "test_util.h"

#include <string.h>

enum { IN = 4, HID = 6, OUT = 3 };

typedef struct model {
    dg_graph *g;
    dg_node *x, *y, *logits, *loss, *w1, *b1, *w2, *b2;
} model;

/* x [rows, IN] -> dense tanh -> dense -> cross-entropy with labels y. rows = DG_BATCH for
 * the batch graph. Parameters come from the graph's seed, so equal seeds give equal ones. */
static model build(int64_t rows) {
    model m;
    m.g = dg_graph_new(11);
    m.x = dg_input(m.g, "x", dg_shape2(rows, IN));
    m.y = dg_input(m.g, "y", dg_shape1(rows));
    dg_node *h = dg_dense(m.g, "fc1", m.x, HID, DG_ACT_TANH);
    m.logits = dg_dense(m.g, "fc2", h, OUT, DG_ACT_NONE);
    /* mean of a mean: exercises numel_of and dim_of beside the loss's own 1/N */
    dg_node *ce = dg_cross_entropy_loss(m.g, m.logits, m.y);
    dg_node *reg = dg_mean(m.g, dg_mean_axis(m.g, dg_mul(m.g, m.logits, m.logits), 1, 0));
    m.loss = dg_add(m.g, ce, dg_scale(m.g, reg, 0.01f));
    m.w1 = dg_graph_find(m.g, "fc1/W");
    m.b1 = dg_graph_find(m.g, "fc1/b");
    m.w2 = dg_graph_find(m.g, "fc2/W");
    m.b2 = dg_graph_find(m.g, "fc2/b");
    CHECK(m.loss && m.w1 && m.b1 && m.w2 && m.b2);
    return m;
}

static float xs[16 * IN], ys[16];

static void make_data(void) {
    for (int i = 0; i < 16 * IN; i++) xs[i] = test_uniform(-2, 2);
    for (int i = 0; i < 16; i++) ys[i] = (float)(i % OUT);
}

static void feed(const model *m, int rows, int offset) {
    CHECK_OK(dg_feed(m->x, xs + offset * IN, rows * IN));
    CHECK_OK(dg_feed(m->y, ys + offset, rows));
}

/* Loss and every parameter gradient of one run, concatenated. */
static int run_grads(const model *m, float *out) {
    dg_node *t[5] = {m->loss, dg_grad(m->w1), dg_grad(m->b1), dg_grad(m->w2), dg_grad(m->b2)};
    if (dg_run_many(m->g, 5, t) != DG_OK) {
        fprintf(stderr, "run: %s\n", dg_graph_error(m->g));
        return 0;
    }
    int k = 0;
    for (int i = 0; i < 5; i++) {
        const float *d = dg_node_data(t[i]);
        for (int64_t j = 0; j < dg_node_numel(t[i]); j++) out[k++] = d[j];
    }
    return k;
}

static void same_as_fixed_graphs(void) {
    model b = build(DG_BATCH);
    CHECK_OK(dg_backward(b.g, b.loss));
    const int sizes[] = {5, 1, 7, 5, 3};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int rows = sizes[s];
        model f = build(rows);
        CHECK_OK(dg_backward(f.g, f.loss));
        feed(&b, rows, (int)s);
        feed(&f, rows, (int)s);
        float gb[256], gf[256];
        int nb = run_grads(&b, gb), nf = run_grads(&f, gf);
        CHECK(nb > 0 && nb == nf);
        CHECK_MSG(memcmp(gb, gf, (size_t)nb * sizeof(float)) == 0,
                  "batch of %d: loss %.9g vs fixed graph %.9g", rows, (double)gb[0], (double)gf[0]);
        CHECK(dg_node_shape(b.logits).dim[0] == rows);
        dg_graph_free(f.g);
    }
    /* gradients against finite differences at two sizes */
    dg_node *leaves[4] = {b.w1, b.b1, b.w2, b.b2};
    for (int rows = 2; rows <= 6; rows += 4) {
        feed(&b, rows, 3);
        dg_gradcheck_report r;
        CHECK_OK(dg_gradcheck(b.g, b.loss, 4, leaves, 1e-2, 1e-3, 2e-2, &r));
        CHECK_MSG(r.passed, "rows %d: max abs %g, worst analytic %g numeric %g", rows,
                  r.max_abs_err, r.worst_analytic, r.worst_numeric);
    }
    dg_graph_free(b.g);
}

static void errors_change_nothing(void) {
    model b = build(DG_BATCH);
    CHECK_OK(dg_backward(b.g, b.loss));
    feed(&b, 5, 0);
    CHECK_OK(dg_run(b.g, b.loss));
    float before = dg_value(b.loss);
    /* labels of another size: refused, naming both inputs and their rows */
    CHECK_OK(dg_feed(b.x, xs, 4 * IN));
    CHECK(dg_run(b.g, b.loss) == DG_ERR_SHAPE);
    const char *e = dg_graph_error(b.g);
    CHECK_MSG(strstr(e, "'x' has 4 rows but 'y' has 5") != NULL, "%s", e);
    CHECK(dg_node_shape(b.logits).dim[0] == 5); /* shapes untouched */
    CHECK(dg_value(b.loss) == before);
    /* once both agree, the run works and gives the first answer back */
    feed(&b, 5, 0);
    CHECK_OK(dg_run(b.g, b.loss));
    CHECK(dg_value(b.loss) == before);
    /* a partial row */
    CHECK(dg_feed(b.x, xs, IN + 1) == DG_ERR_SHAPE);
    CHECK_MSG(strstr(dg_graph_error(b.g), "not a whole number of rows") != NULL, "%s",
              dg_graph_error(b.g));
    CHECK(dg_node_shape(b.x).dim[0] == 5);
    /* a constant of the build-time size cannot follow the batch: a clear run-time error */
    dg_node *fixed = dg_const(b.g, "fixed", dg_shape2(5, OUT), NULL, 1.0f);
    dg_node *bad = dg_sum(b.g, dg_mul(b.g, b.logits, fixed));
    CHECK_OK(dg_run(b.g, bad)); /* at 5 rows it fits */
    feed(&b, 3, 0);
    CHECK(dg_run(b.g, bad) == DG_ERR_SHAPE);
    e = dg_graph_error(b.g);
    CHECK_MSG(strstr(e, "with a batch of 3 rows") && strstr(e, "[3,3] and [5,3]"), "%s", e);
    /* nothing changed: the loss still runs at 3 rows, and at 5 gives the first answer */
    CHECK_OK(dg_run(b.g, b.loss));
    feed(&b, 5, 0);
    CHECK_OK(dg_run(b.g, b.loss));
    CHECK(dg_value(b.loss) == before);
    dg_graph_free(b.g);
}

static void training_with_partial_batches(void) {
    /* 16 rows in batches of 6: 6, 6 and a partial 4, every epoch */
    model b = build(DG_BATCH);
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    c.lr = 0.05f;
    dg_optimizer *opt = dg_optimizer_new(b.g, b.loss, &c);
    CHECK(opt != NULL);
    float first = 0, last = 0;
    for (int epoch = 0; epoch < 60; epoch++) {
        float sum = 0;
        for (int start = 0; start < 16; start += 6) {
            int rows = 16 - start < 6 ? 16 - start : 6;
            feed(&b, rows, start);
            CHECK_OK(dg_optimizer_step(opt));
            sum += dg_value(dg_optimizer_step_node(opt)) * (float)rows;
        }
        if (epoch == 0) first = sum / 16;
        last = sum / 16;
    }
    CHECK_MSG(last < 0.5f * first, "loss %g -> %g", (double)first, (double)last);
    CHECK(dg_optimizer_steps(opt) == 180);
    /* evaluation of all 16 rows at once, and of one row, in the same graph */
    dg_set_training(b.g, 0);
    feed(&b, 16, 0);
    CHECK_OK(dg_run(b.g, b.logits));
    CHECK(dg_node_shape(b.logits).dim[0] == 16);
    float row3[OUT];
    memcpy(row3, dg_node_data(b.logits) + 3 * OUT, sizeof row3);
    feed(&b, 1, 3);
    CHECK_OK(dg_run(b.g, b.logits));
    CHECK(dg_node_shape(b.logits).dim[0] == 1);
    for (int k = 0; k < OUT; k++) CHECK_NEAR(dg_node_data(b.logits)[k], row3[k], 1e-6);
    dg_graph_free(b.g);
}

static void flatten_and_dropout_follow(void) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "img", dg_shape4(DG_BATCH, 2, 2, 2));
    dg_node *f = dg_flatten(g, NULL, x);
    dg_node *d = dg_dropout(g, NULL, f, 0.5f);
    dg_node *s = dg_sum_axis(g, d, 1, 0);
    CHECK(s != NULL);
    /* the summary shows the batch dimension as N */
    FILE *tf = tmpfile();
    char text[2048] = "";
    if (tf) {
        CHECK_OK(dg_summary(g, tf));
        rewind(tf);
        size_t got = fread(text, 1, sizeof text - 1, tf);
        text[got] = 0;
        fclose(tf);
    }
    CHECK_MSG(strstr(text, "[N,8]") != NULL, "%s", text);
    CHECK(dg_node_batch_leading(s) && !dg_node_batch_leading(dg_sum(g, s)));
    float data[5 * 8];
    for (int i = 0; i < 40; i++) data[i] = 1.0f;
    for (int rows = 1; rows <= 5; rows += 2) {
        CHECK_OK(dg_feed(x, data, rows * 8));
        CHECK_OK(dg_run(g, s));
        CHECK(dg_node_shape(s).dim[0] == rows && dg_node_shape(f).dim[0] == rows);
        /* every kept element is 2, every dropped 0: row sums are even numbers */
        for (int r = 0; r < rows; r++) {
            float v = dg_node_data(s)[r];
            CHECK(v >= 0 && v <= 16 && v == 2.0f * floorf(v / 2.0f));
        }
    }
    dg_graph_free(g);
}

int main(void) {
    make_data();
    same_as_fixed_graphs();
    errors_change_nothing();
    training_with_partial_batches();
    flatten_and_dropout_follow();
    return test_summary("test_engine_batch");
}
