/* Feeding by reference (dg_feed_ref): a run reads an input straight from the caller's
 * memory. Checked:
 *   - training from unaligned slices of one data array, by reference, gives bitwise the
 *     parameters and optimizer state of training from copies (batch sizes change too);
 *   - a run reads the memory as it is when the run starts (no copy was taken), a later
 *     dg_feed takes a copy again, and gradients flow to an input fed by reference;
 *   - mistakes leave the node as it was: NULL arguments, a parameter, a wrong size;
 *   - an op that would write the input in place is refused before anything runs, and the
 *     caller's memory is untouched. */
#include "test_util.h"

enum { FEATURES = 40, CLASSES = 5, SAMPLES = 300 };

typedef struct model {
    dg_graph *g;
    dg_node *x, *y, *loss;
    dg_optimizer *opt;
} model;

static model build(void) {
    model m;
    m.g = dg_graph_new(11);
    m.x = dg_input(m.g, "x", dg_shape2(DG_BATCH, FEATURES));
    m.y = dg_input(m.g, "y", dg_shape1(DG_BATCH));
    dg_node *h = dg_dense(m.g, "fc1", m.x, 32, DG_ACT_RELU);
    m.loss = dg_cross_entropy_loss(m.g, dg_dense(m.g, "out", h, CLASSES, DG_ACT_NONE), m.y);
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    m.opt = dg_optimizer_new(m.g, m.loss, &c);
    CHECK(m.opt != NULL);
    return m;
}

static void training_by_reference_matches_copies(void) {
    /* one float in front, so every slice of the data starts 4 bytes past a 64-byte line */
    float *store = malloc((1 + (size_t)SAMPLES * FEATURES) * sizeof(float));
    float *labels = malloc(SAMPLES * sizeof(float));
    float *data = store + 1;
    for (int i = 0; i < SAMPLES * FEATURES; i++) data[i] = sinf(0.37f * (float)i) * 1.5f;
    for (int s = 0; s < SAMPLES; s++) labels[s] = (float)((s * 7) % CLASSES);
    model byref = build(), bycopy = build();
    for (int epoch = 0; epoch < 3; epoch++)
        for (int start = 0; start < SAMPLES; start += 64) {
            int rows = SAMPLES - start < 64 ? SAMPLES - start : 64; /* last batch: 44 rows */
            const float *xb = data + (size_t)start * FEATURES;
            CHECK_OK(dg_feed_ref(byref.x, xb, (int64_t)rows * FEATURES));
            CHECK_OK(dg_feed_ref(byref.y, labels + start, rows));
            CHECK(dg_node_data(byref.x) == xb);
            CHECK_OK(dg_feed(bycopy.x, xb, (int64_t)rows * FEATURES));
            CHECK_OK(dg_feed(bycopy.y, labels + start, rows));
            CHECK_OK(dg_optimizer_step(byref.opt));
            CHECK_OK(dg_optimizer_step(bycopy.opt));
            float a = dg_value(byref.loss), b = dg_value(bycopy.loss);
            CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "epoch %d, row %d: loss %.9g vs %.9g", epoch,
                      start, (double)a, (double)b);
        }
    CHECK(test_same_weights(byref.g, bycopy.g));
    /* the data the runs read was never written */
    for (int i = 0; i < SAMPLES * FEATURES; i += 97)
        CHECK(data[i] == sinf(0.37f * (float)i) * 1.5f);
    dg_graph_free(byref.g);
    dg_graph_free(bycopy.g);
    free(store);
    free(labels);
}

static void runs_read_the_callers_memory(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape1(4));
    CHECK_OK(dg_set_requires_grad(x, 1));
    dg_node *loss = dg_sum(g, dg_mul(g, x, x));
    CHECK_OK(dg_backward(g, loss));
    dg_node *gx = dg_grad(x);
    float buf[4] = {1, 2, 3, 4};
    CHECK_OK(dg_feed_ref(x, buf, 4));
    CHECK_OK(dg_run(g, loss));
    CHECK(dg_value(loss) == 30.0f);
    buf[3] = -1; /* seen by the next run without another feed */
    CHECK_OK(dg_run(g, loss));
    CHECK(dg_value(loss) == 15.0f);
    CHECK_OK(dg_run(g, gx));
    for (int i = 0; i < 4; i++) CHECK(dg_node_data(gx)[i] == 2 * buf[i]);
    /* dg_feed copies again: later changes to buf no longer reach the runs */
    CHECK_OK(dg_feed(x, buf, 4));
    CHECK(dg_node_data(x) != buf);
    buf[0] = 10;
    CHECK_OK(dg_run(g, loss));
    CHECK(dg_value(loss) == 15.0f);
    dg_graph_free(g);
}

static void mistakes_leave_the_node_alone(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, 3));
    dg_node *w = dg_param(g, "w", dg_shape1(3));
    dg_node *s = dg_sum(g, x);
    const float v[6] = {1, 2, 3, 4, 5, 6}, other[7] = {9, 9, 9, 9, 9, 9, 9};
    CHECK_OK(dg_feed_ref(x, v, 6));
    CHECK(dg_feed_ref(NULL, v, 6) == DG_ERR_NULL);
    CHECK(dg_feed_ref(x, NULL, 6) == DG_ERR_NULL);
    CHECK(dg_feed_ref(w, v, 3) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "'w'") && strstr(dg_graph_error(g), "param"), "%s",
              dg_graph_error(g));
    CHECK(dg_feed_ref(s, v, 1) == DG_ERR_ARG);
    CHECK(dg_feed_ref(x, other, 7) == DG_ERR_SHAPE);
    CHECK_MSG(strstr(dg_graph_error(g), "7 values") != NULL, "%s", dg_graph_error(g));
    CHECK(dg_feed_ref(x, other, 0) == DG_ERR_SHAPE);
    /* still two rows of v */
    CHECK(dg_node_shape(x).dim[0] == 2 && dg_node_data(x) == v);
    CHECK_OK(dg_run(g, s));
    CHECK(dg_value(s) == 21.0f);
    dg_graph_free(g);
}

/* copy_into (test_util.h) writes its first input in place */
static void writers_are_refused(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *a = dg_input(g, "a", dg_shape1(3)), *b = dg_input(g, "b", dg_shape1(3));
    dg_node *ab[2] = {a, b};
    dg_node *c = dg_apply(g, &test_copy_into_op, 2, ab, NULL, 0);
    CHECK(c != NULL);
    float av[3] = {1, 2, 3};
    const float bv[3] = {4, 5, 6};
    CHECK_OK(dg_feed_ref(a, av, 3));
    CHECK_OK(dg_feed_ref(b, bv, 3)); /* only read: fine */
    CHECK(dg_run(g, c) == DG_ERR_STATE);
    CHECK_MSG(strstr(dg_graph_error(g), "copy_into") && strstr(dg_graph_error(g), "'a'") &&
                  strstr(dg_graph_error(g), "dg_feed_ref"),
              "%s", dg_graph_error(g));
    CHECK(av[0] == 1 && av[1] == 2 && av[2] == 3);
    /* fed with a copy, the op writes the graph's buffer, not av */
    CHECK_OK(dg_feed(a, av, 3));
    CHECK_OK(dg_run(g, c));
    CHECK(dg_node_data(a)[2] == 6.0f && av[2] == 3.0f);
    dg_graph_free(g);
}

int main(void) {
    training_by_reference_matches_copies();
    runs_read_the_callers_memory();
    mistakes_leave_the_node_alone();
    writers_are_refused();
    return test_summary("engine_feed_ref");
}
