/* Bad input to every function of dagrad/optim.h: NULL pointers, a loss of another graph,
 * a non-scalar loss, a loss without parameters, every invalid configuration value (out of
 * range, NaN, infinite, unknown enum values), steps before inputs are fed or with bad
 * data. Each must fail with a status and a message naming the function and the problem,
 * leave the graph (and the parameters) as they were, and a training step must work
 * afterwards in the same graph. */
#include "test_robust_util.h"

#include <stdint.h>
#include <string.h>

/* A training step in g proves it still works: p = [1,2], loss = sum(p * p), one SGD step
 * with lr 0.1 gives p - 0.1 * 2p = [0.8, 1.6]. */
static void step_works(dg_graph *g, int line) {
    robust_still_works(g, line);
    dg_node *p = dg_param(g, NULL, dg_shape1(2));
    if (!p) return;
    dg_node_data(p)[0] = 1;
    dg_node_data(p)[1] = 2;
    dg_optim_config c = dg_optim_defaults(DG_SGD);
    c.lr = 0.1f;
    dg_optimizer *o = dg_optimizer_new(g, dg_sum(g, dg_mul(g, p, p)), &c);
    CHECK_MSG(o != NULL, "line %d: no optimizer: %s", line, dg_graph_error(g));
    if (!o) return;
    dg_status s = dg_optimizer_step(o);
    CHECK_MSG(s == DG_OK, "line %d: step failed: %s", line, dg_graph_error(g));
    CHECK_NEAR(dg_value(dg_optimizer_step_node(o)), 5, 0);
    CHECK_NEAR(dg_node_data(p)[0], 0.8, 1e-6);
    CHECK_NEAR(dg_node_data(p)[1], 1.6, 1e-6);
    CHECK(dg_optimizer_steps(o) == 1);
}

#define EXPECT_OPT_ERROR(g, st, sub)                                                               \
    do {                                                                                           \
        CHECK_MSG(dg_graph_status(g) == (st), "status %s, expected %s (%s)",                       \
                  dg_status_name(dg_graph_status(g)), dg_status_name(st), dg_graph_error(g));      \
        CHECK_HAS(dg_graph_error(g), sub);                                                         \
        dg_graph_clear_error(g);                                                                   \
        step_works(g, __LINE__);                                                                   \
    } while (0)

/* A small model: x [4,3] -> dense 2 -> mse against t [4,2]. */
typedef struct model {
    dg_graph *g;
    dg_node *x, *t, *loss, *pred;
} model;

static model model_new(uint64_t seed) {
    model m;
    m.g = dg_graph_new(seed);
    m.x = dg_input(m.g, "x", dg_shape2(4, 3));
    m.t = dg_input(m.g, "t", dg_shape2(4, 2));
    m.pred = dg_dense(m.g, "d", m.x, 2, DG_ACT_TANH);
    m.loss = dg_mse_loss(m.g, m.pred, m.t);
    return m;
}

static void test_new_arguments(void) {
    model m = model_new(1);
    dg_graph *g = m.g, *h = dg_graph_new(2);
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    int n0 = dg_graph_node_count(g);

    CHECK(dg_optimizer_new(NULL, m.loss, &c) == NULL);
    CHECK_HAS(dg_last_error(), "optimizer_new: graph is NULL");
    CHECK(dg_optimizer_new(g, NULL, &c) == NULL);
    EXPECT_OPT_ERROR(g, DG_ERR_NULL, "optimizer_new: loss is NULL");
    CHECK(dg_optimizer_new(g, m.loss, NULL) == NULL);
    EXPECT_OPT_ERROR(g, DG_ERR_NULL, "optimizer_new: config is NULL");
    dg_node *hp = dg_param(h, "hp", dg_shape0());
    dg_node *hloss = dg_mul(h, hp, hp);
    CHECK(dg_optimizer_new(g, hloss, &c) == NULL);
    EXPECT_OPT_ERROR(g, DG_ERR_GRAPH, "optimizer_new: loss belongs to another graph");
    CHECK(dg_graph_status(h) == DG_OK && dg_graph_node_count(h) == 2);

    /* a non-scalar loss: the message names optimizer_new and the shape; graph unchanged */
    n0 = dg_graph_node_count(g);
    CHECK(dg_optimizer_new(g, m.pred, &c) == NULL);
    CHECK(dg_graph_node_count(g) == n0);
    CHECK(dg_grad(m.pred) == NULL);
    CHECK_HAS(dg_graph_error(g), "optimizer_new: ");
    EXPECT_OPT_ERROR(g, DG_ERR_SHAPE, "loss must be a scalar");
    /* a loss that depends on no parameter: on inputs only, or on inputs that require a
     * gradient (differentiable, but nothing to update) */
    dg_node *in_only = dg_mean(g, dg_mul(g, m.x, m.x));
    n0 = dg_graph_node_count(g);
    CHECK(dg_optimizer_new(g, in_only, &c) == NULL);
    CHECK(dg_graph_node_count(g) == n0);
    CHECK_HAS(dg_graph_error(g), "optimizer_new: ");
    EXPECT_OPT_ERROR(g, DG_ERR_STATE, "does not depend on any parameter");
    dg_node *y = dg_input(g, "y", dg_shape1(3));
    CHECK_OK(dg_set_requires_grad(y, 1));
    dg_node *yl = dg_sum(g, dg_exp(g, y));
    n0 = dg_graph_node_count(g);
    CHECK(dg_optimizer_new(g, yl, &c) == NULL);
    CHECK(dg_graph_node_count(g) == n0);
    CHECK(dg_grad(y) == NULL);
    EXPECT_OPT_ERROR(g, DG_ERR_ARG, "optimizer_new: the loss (node");
    /* a constant "loss" */
    CHECK(dg_optimizer_new(g, dg_scalar(g, 1), &c) == NULL);
    EXPECT_OPT_ERROR(g, DG_ERR_STATE, "optimizer_new: ");
    dg_graph_free(g);
    dg_graph_free(h);
}

typedef struct bad_config {
    const char *what; /* substring the message must hold */
    dg_optim_config c;
} bad_config;

static void test_configs(void) {
    model m = model_new(3);
    dg_graph *g = m.g;
    bad_config bad[64];
    int nb = 0;
#define BAD(KIND, FIELD, VALUE, MSG)                                                               \
    do {                                                                                           \
        bad[nb].c = dg_optim_defaults(KIND);                                                       \
        bad[nb].c.FIELD = VALUE;                                                                   \
        bad[nb].what = MSG;                                                                        \
        nb++;                                                                                      \
    } while (0)
    BAD(DG_SGD, lr, -0.1f, "lr must be finite and >= 0, got -0.1");
    BAD(DG_ADAM, lr, NAN, "lr must be finite and >= 0");
    BAD(DG_ADAM, lr, INFINITY, "lr must be finite and >= 0, got inf");
    BAD(DG_MOMENTUM, momentum, 1.0f, "momentum must be in [0,1), got 1");
    BAD(DG_NESTEROV, momentum, -0.5f, "momentum must be in [0,1)");
    BAD(DG_MOMENTUM, momentum, NAN, "momentum must be in [0,1)");
    BAD(DG_ADAM, beta1, 1.0f, "betas must be in [0,1), got (1, 0.999)");
    BAD(DG_ADAM, beta1, -0.1f, "betas must be in [0,1)");
    BAD(DG_ADAMW, beta2, 1.5f, "betas must be in [0,1)");
    BAD(DG_ADAMW, beta2, NAN, "betas must be in [0,1)");
    BAD(DG_RMSPROP, alpha, 1.0f, "alpha must be in [0,1), got 1");
    BAD(DG_RMSPROP, alpha, -INFINITY, "alpha must be in [0,1)");
    BAD(DG_ADAM, eps, 0.0f, "eps must be > 0 for adam");
    BAD(DG_ADAMW, eps, 0.0f, "eps must be > 0 for adamw");
    BAD(DG_RMSPROP, eps, 0.0f, "eps must be > 0 for rmsprop");
    BAD(DG_ADAM, eps, -1e-8f, "eps must be finite and >= 0");
    BAD(DG_ADAM, eps, NAN, "eps must be finite and >= 0");
    BAD(DG_SGD, eps, INFINITY, "eps must be finite and >= 0");
    BAD(DG_SGD, weight_decay, -0.01f, "weight_decay must be finite and >= 0");
    BAD(DG_ADAMW, weight_decay, NAN, "weight_decay must be finite and >= 0");
    BAD(DG_SGD, clip_norm, -1.0f, "clip_norm (-1) and clip_value (0) must be finite and >= 0");
    BAD(DG_SGD, clip_norm, INFINITY, "clip_norm (inf)");
    BAD(DG_ADAM, clip_value, NAN, "clip_value (nan)");
    BAD(DG_ADAM, warmup_steps, -1, "warmup_steps must be >= 0, got -1");
    BAD(DG_ADAM, warmup_steps, INT64_MIN, "warmup_steps must be >= 0");
    BAD(DG_SGD, kind, (dg_optim_kind)6, "unknown kind 6");
    BAD(DG_SGD, kind, (dg_optim_kind)-1, "unknown kind -1");
    BAD(DG_ADAM, schedule, (dg_schedule_kind)4, "unknown schedule 4");
    BAD(DG_ADAM, schedule, (dg_schedule_kind)-7, "unknown schedule -7");
    /* schedules need their own parameters */
    BAD(DG_ADAM, schedule, DG_SCHED_STEP, "step schedule needs step_size >= 1, got 0");
    bad[nb - 1].c.step_size = 0;
    BAD(DG_ADAM, schedule, DG_SCHED_STEP, "step schedule needs step_size >= 1, got -5");
    bad[nb - 1].c.step_size = -5;
    BAD(DG_SGD, schedule, DG_SCHED_STEP, "schedule gamma must be > 0, got 0");
    bad[nb - 1].c.step_size = 10;
    bad[nb - 1].c.gamma = 0;
    BAD(DG_SGD, schedule, DG_SCHED_EXPONENTIAL, "schedule gamma must be > 0");
    bad[nb - 1].c.gamma = NAN;
    BAD(DG_SGD, schedule, DG_SCHED_EXPONENTIAL, "schedule gamma must be > 0, got -0.5");
    bad[nb - 1].c.gamma = -0.5f;
    BAD(DG_ADAM, schedule, DG_SCHED_COSINE, "cosine schedule needs t_max >= 1, got 0");
    BAD(DG_ADAM, schedule, DG_SCHED_COSINE, "lr_min must be finite and >= 0, got -1");
    bad[nb - 1].c.t_max = 100;
    bad[nb - 1].c.lr_min = -1;
    BAD(DG_ADAM, schedule, DG_SCHED_COSINE, "lr_min must be finite and >= 0");
    bad[nb - 1].c.t_max = 100;
    bad[nb - 1].c.lr_min = INFINITY;
#undef BAD
    for (int i = 0; i < nb; i++) {
        int n0 = dg_graph_node_count(g);
        CHECK_MSG(dg_optimizer_new(g, m.loss, &bad[i].c) == NULL, "case %d (%s)", i, bad[i].what);
        CHECK(dg_graph_node_count(g) == n0);
        CHECK(dg_grad(m.loss) == NULL);
        CHECK_HAS(dg_graph_error(g), "optimizer_new: ");
        EXPECT_OPT_ERROR(g, DG_ERR_ARG, bad[i].what);
    }
    /* after all of that, the model itself trains */
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    c.lr = 0.05f;
    dg_optimizer *o = dg_optimizer_new(g, m.loss, &c);
    CHECK(o != NULL);
    float xv[12], tv[8];
    for (int i = 0; i < 12; i++) xv[i] = test_uniform(-1, 1);
    for (int i = 0; i < 8; i++) tv[i] = test_uniform(-0.5f, 0.5f);
    CHECK_OK(dg_feed(m.x, xv, 12));
    CHECK_OK(dg_feed(m.t, tv, 8));
    CHECK_OK(dg_optimizer_step(o));
    float first = dg_value(dg_optimizer_step_node(o)), last = first;
    for (int i = 0; i < 100; i++) {
        CHECK_OK(dg_optimizer_step(o));
        last = dg_value(dg_optimizer_step_node(o));
    }
    CHECK_MSG(last < 0.5f * first, "loss %g -> %g", (double)first, (double)last);
    dg_graph_free(g);
}

static void test_using(void) {
    /* accessors with NULL */
    CHECK(dg_optimizer_step(NULL) == DG_ERR_NULL);
    CHECK_HAS(dg_last_error(), "optimizer_step: optimizer is NULL");
    CHECK(dg_optimizer_set_lr(NULL, 0.1f) == DG_ERR_NULL);
    CHECK_HAS(dg_last_error(), "optimizer_set_lr: optimizer is NULL");
    CHECK(isnan(dg_optimizer_lr(NULL)));
    CHECK(dg_optimizer_steps(NULL) == 0);
    CHECK(dg_optimizer_step_node(NULL) == NULL);
    CHECK(dg_optimizer_loss(NULL) == NULL);

    model m = model_new(5);
    dg_graph *g = m.g;
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    dg_optimizer *o = dg_optimizer_new(g, m.loss, &c);
    CHECK(o && dg_optimizer_loss(o) == m.loss);
    if (!o) return;
    dg_node *w = dg_node_input(dg_node_input(m.pred, 0), 0); /* tanh(add(matmul(x, W), b)) */
    w = dg_node_input(w, 1);
    CHECK(w && dg_node_kind_of(w) == DG_PARAM);
    float w0[6];
    CHECK_OK(dg_read(w, w0, 6));

    /* a step before the inputs are fed: nothing changes, the message says which input */
    CHECK(dg_optimizer_step(o) == DG_ERR_STATE);
    CHECK(dg_optimizer_steps(o) == 0);
    CHECK(memcmp(dg_node_data(w), w0, sizeof w0) == 0);
    EXPECT_OPT_ERROR(g, DG_ERR_STATE,
                     "optimizer_step: run: input node 0 'x' [4,3] has not been fed");
    float xv[12], tv[8];
    for (int i = 0; i < 12; i++) xv[i] = test_uniform(-1, 1);
    for (int i = 0; i < 8; i++) tv[i] = test_uniform(-0.5f, 0.5f);
    CHECK_OK(dg_feed(m.x, xv, 12));
    CHECK(dg_optimizer_step(o) == DG_ERR_STATE);
    EXPECT_OPT_ERROR(g, DG_ERR_STATE, "input node 1 't' [4,2] has not been fed");
    /* wrong feed sizes leave the input unfed and the step refused */
    CHECK(dg_feed(m.t, tv, 7) == DG_ERR_SHAPE);
    EXPECT_OPT_ERROR(g, DG_ERR_SHAPE, "feed: 't' has shape [4,2] (8 elements) but 7 values");
    CHECK(dg_optimizer_step(o) == DG_ERR_STATE);
    dg_graph_clear_error(g);
    CHECK_OK(dg_feed(m.t, tv, 8));

    /* a NaN in the data with anomaly mode: the step stops at the loss, before any update */
    float nan_x[12];
    memcpy(nan_x, xv, sizeof xv);
    nan_x[5] = NAN;
    CHECK_OK(dg_feed(m.x, nan_x, 12));
    dg_set_anomaly_mode(g, 1);
    CHECK(dg_optimizer_step(o) == DG_ERR_NONFINITE);
    dg_set_anomaly_mode(g, 0);
    CHECK(dg_optimizer_steps(o) == 0);
    CHECK(memcmp(dg_node_data(w), w0, sizeof w0) == 0);
    EXPECT_OPT_ERROR(g, DG_ERR_NONFINITE, "optimizer_step: anomaly: node");
    CHECK_OK(dg_feed(m.x, xv, 12));

    /* learning rates */
    const float lrs[] = {-1e-3f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof lrs / sizeof lrs[0]; i++) {
        CHECK(dg_optimizer_set_lr(o, lrs[i]) == DG_ERR_ARG);
        CHECK_NEAR(dg_optimizer_lr(o), 1e-3, 1e-9); /* unchanged */
        EXPECT_OPT_ERROR(g, DG_ERR_ARG, "optimizer_set_lr: lr must be finite and >= 0");
    }
    CHECK_OK(dg_optimizer_set_lr(o, 0.01f));
    CHECK_NEAR(dg_optimizer_lr(o), 0.01, 1e-9);

    /* the step works now, and changes W */
    CHECK_OK(dg_optimizer_step(o));
    CHECK(dg_optimizer_steps(o) == 1);
    CHECK(memcmp(dg_node_data(w), w0, sizeof w0) != 0);
    CHECK(isfinite(dg_value(dg_optimizer_step_node(o))));

    /* a second optimizer on the same loss is allowed and named apart ("adam2") */
    dg_optimizer *o2 = dg_optimizer_new(g, m.loss, &c);
    CHECK(o2 != NULL);
    int found = 0;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        const char *nm = dg_node_name(dg_graph_node(g, i));
        if (nm && strcmp(nm, "adam2/step") == 0) found = 1;
    }
    CHECK(found);
    dg_graph_free(g);
}

static void test_bad_labels_step(void) {
    /* run-time data errors inside a step (a class label out of range) leave the
     * parameters and the step count as they were */
    dg_graph *g = dg_graph_new(7);
    dg_node *x = dg_input(g, "x", dg_shape2(3, 4));
    dg_node *lab = dg_input(g, "labels", dg_shape1(3));
    dg_node *logits = dg_dense(g, "out", x, 5, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(g, logits, lab);
    dg_optim_config c = dg_optim_defaults(DG_MOMENTUM);
    dg_optimizer *o = dg_optimizer_new(g, loss, &c);
    CHECK(o != NULL);
    if (!o) return;
    test_fill(x, -1, 1);
    const float bad[3] = {0, 5, 1}, good[3] = {0, 4, 1};
    CHECK_OK(dg_feed(lab, bad, 3));
    dg_node *w = dg_node_input(dg_node_input(logits, 0), 1);
    float w0[20];
    CHECK_OK(dg_read(w, w0, 20));
    CHECK(dg_optimizer_step(o) == DG_ERR_ARG);
    CHECK(dg_optimizer_steps(o) == 0);
    CHECK(memcmp(dg_node_data(w), w0, sizeof w0) == 0);
    EXPECT_OPT_ERROR(g, DG_ERR_ARG, "optimizer_step: cross_entropy_loss: label 5 at row 1");
    CHECK_OK(dg_feed(lab, good, 3));
    CHECK_OK(dg_optimizer_step(o));
    CHECK(dg_optimizer_steps(o) == 1);
    dg_graph_free(g);
}

int main(void) {
    test_new_arguments();
    test_configs();
    test_using();
    test_bad_labels_step();
    return test_summary("test_robust_optim");
}
