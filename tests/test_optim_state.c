/* The optimizer's whole state lives in DG_PARAM and DG_STATE nodes: training 6 steps
 * equals training 3 steps, copying every parameter and state node by name into a freshly
 * built graph (what a checkpoint load does), and training 3 more there, bit for bit
 * (AdamW with warm-up, cosine schedule and global-norm clipping). Updates give the same
 * bits with 1 and 2 threads on tensors large enough to run in parallel. Updates happen
 * after every gradient is computed: the gradients read in a step are those of the old
 * parameters. */
#include "test_util.h"

#include <string.h>

#define B   16
#define IN  300
#define HID 256

typedef struct model {
    dg_graph *g;
    dg_node *x, *y, *loss;
    dg_optimizer *opt;
} model;

static model build(void) {
    model m;
    m.g = dg_graph_new(1234);
    m.x = dg_input(m.g, "x", dg_shape2(B, IN));
    m.y = dg_input(m.g, "y", dg_shape1(B));
    dg_node *h = dg_dense(m.g, NULL, m.x, HID, DG_ACT_TANH);
    dg_node *z = dg_dense(m.g, NULL, h, 4, DG_ACT_NONE);
    m.loss = dg_cross_entropy_loss(m.g, z, m.y);
    dg_optim_config c = dg_optim_defaults(DG_ADAMW);
    c.lr = 0.01f;
    c.warmup_steps = 2;
    c.schedule = DG_SCHED_COSINE;
    c.t_max = 10;
    c.clip_norm = 0.5f;
    m.opt = dg_optimizer_new(m.g, m.loss, &c);
    CHECK_MSG(m.opt != NULL, "%s", dg_graph_error(m.g));
    return m;
}

/* Batch s of a fixed data stream. */
static void feed_batch(model *m, int s) {
    static float xs[B * IN], ys[B];
    test_rng_state = 1000u + (unsigned)s;
    for (int i = 0; i < B * IN; i++) xs[i] = test_uniform(-1, 1);
    for (int i = 0; i < B; i++) ys[i] = (float)(i % 4);
    dg_feed(m->x, xs, B * IN);
    dg_feed(m->y, ys, B);
}

static void train(model *m, int from, int to) {
    for (int s = from; s < to; s++) {
        feed_batch(m, s);
        CHECK_OK(dg_optimizer_step(m->opt));
    }
}

/* Copies every named PARAM and STATE node of src into the node of that name in dst. */
static int copy_state(dg_graph *dst, dg_graph *src) {
    int copied = 0;
    for (int i = 0; i < dg_graph_node_count(src); i++) {
        dg_node *a = dg_graph_node(src, i);
        dg_node_kind k = dg_node_kind_of(a);
        if ((k != DG_PARAM && k != DG_STATE) || !dg_node_name(a)) continue;
        for (int j = 0; j < dg_graph_node_count(dst); j++) {
            dg_node *b = dg_graph_node(dst, j);
            if (dg_node_name(b) && !strcmp(dg_node_name(a), dg_node_name(b))) {
                CHECK_OK(dg_feed(b, dg_node_data(a), dg_node_numel(a)));
                copied++;
            }
        }
    }
    return copied;
}

static void resume(void) {
    model a = build(), b = build(), c = build();
    if (!a.opt || !b.opt || !c.opt) return;
    train(&a, 0, 6);
    train(&b, 0, 3);
    /* 4 params, 8 moments, step and lr */
    CHECK(copy_state(c.g, b.g) == 4 + 8 + 2);
    CHECK(dg_optimizer_steps(c.opt) == 3);
    CHECK(dg_optimizer_lr(c.opt) == dg_optimizer_lr(b.opt));
    train(&c, 3, 6);
    CHECK(dg_optimizer_steps(c.opt) == 6);
    CHECK_MSG(test_same_weights(a.g, c.g), "resumed training differs from uninterrupted training");
    /* and the comparison can fail: one more step changes things */
    train(&c, 6, 7);
    CHECK(!test_same_weights(a.g, c.g));
    dg_graph_free(a.g);
    dg_graph_free(b.g);
    dg_graph_free(c.g);
}

static void threads(void) {
    model a = build(), b = build();
    if (!a.opt || !b.opt) return;
    dg_set_num_threads(1);
    train(&a, 0, 3);
    dg_set_num_threads(2);
    train(&b, 0, 3);
    dg_set_num_threads(0);
    CHECK_MSG(test_same_weights(a.g, b.g), "1 and 2 threads give different parameters");
    dg_graph_free(a.g);
    dg_graph_free(b.g);
}

/* loss = sum(a * b): da = b and db = a, so if the update of a ran before the gradient of
 * b was computed, db would read the new a. Both must use the old values. */
static void ordering(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *a = dg_param(g, "a", dg_shape1(3)), *b = dg_param(g, "b", dg_shape1(3));
    const float av[3] = {1, 2, 3}, bv[3] = {-1, 0.5f, 4};
    dg_feed(a, av, 3);
    dg_feed(b, bv, 3);
    dg_node *loss = dg_sum(g, dg_mul(g, a, b));
    dg_optim_config c = dg_optim_defaults(DG_SGD);
    c.lr = 0.5f;
    dg_optimizer *o = dg_optimizer_new(g, loss, &c);
    CHECK(o != NULL);
    if (o) CHECK_OK(dg_optimizer_step(o));
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(dg_node_data(a)[i], av[i] - 0.5 * bv[i], 1e-6);
        CHECK_NEAR(dg_node_data(b)[i], bv[i] - 0.5 * av[i], 1e-6);
    }
    /* global-norm clipping sees all gradients before any update: norm of (b, a) */
    dg_graph_free(g);
    g = dg_graph_new(1);
    a = dg_param(g, "a", dg_shape1(3));
    b = dg_param(g, "b", dg_shape1(3));
    dg_feed(a, av, 3);
    dg_feed(b, bv, 3);
    loss = dg_sum(g, dg_mul(g, a, b));
    c.clip_norm = 1.0f;
    o = dg_optimizer_new(g, loss, &c);
    CHECK(o != NULL);
    if (o) CHECK_OK(dg_optimizer_step(o));
    double norm = 0;
    for (int i = 0; i < 3; i++) norm += av[i] * av[i] + bv[i] * bv[i];
    double s = 1.0 / (sqrt(norm) + 1e-6);
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(dg_node_data(a)[i], av[i] - 0.5 * s * bv[i], 1e-6);
        CHECK_NEAR(dg_node_data(b)[i], bv[i] - 0.5 * s * av[i], 1e-6);
    }
    dg_graph_free(g);
}

int main(void) {
    resume();
    threads();
    ordering();
    return test_summary("test_optim_state");
}
