/* Divergence is never silent.
 *   - Without anomaly mode, a step whose loss is not finite returns DG_ERR_NONFINITE before
 *     any parameter, moment or step count changes (a cheap check of one number, always on),
 *     whether the NaN comes from the data or from earlier steps that diverged.
 *   - With anomaly mode, an update that writes a non-finite value into a parameter stops
 *     the step at once, naming the parameter and the update; an op producing a NaN is named
 *     with its layer scope ("fc2/log"). */
#include "test_util.h"

#include <string.h>

typedef struct net {
    dg_graph *g;
    dg_node *x, *t, *w, *loss;
    dg_optimizer *opt;
} net;

static net build(float lr) {
    net n;
    n.g = dg_graph_new(1);
    n.x = dg_input(n.g, "x", dg_shape2(DG_BATCH, 3));
    n.t = dg_input(n.g, "t", dg_shape2(DG_BATCH, 2));
    dg_node *y = dg_dense(n.g, "fc", n.x, 2, DG_ACT_NONE);
    n.w = dg_graph_find(n.g, "fc/W");
    n.loss = dg_mse_loss(n.g, y, n.t);
    dg_optim_config c = dg_optim_defaults(DG_SGD);
    c.lr = lr;
    n.opt = dg_optimizer_new(n.g, n.loss, &c);
    CHECK(n.opt && n.w);
    return n;
}

static float xs[12], ts[8];

static void nan_loss_stops_the_step(void) {
    net n = build(0.1f);
    float bad[12];
    memcpy(bad, xs, sizeof bad);
    bad[4] = NAN;
    CHECK_OK(dg_feed(n.x, bad, 12));
    CHECK_OK(dg_feed(n.t, ts, 8));
    float w0[6];
    memcpy(w0, dg_node_data(n.w), sizeof w0);
    CHECK(dg_optimizer_step(n.opt) == DG_ERR_NONFINITE);
    const char *e = dg_graph_error(n.g);
    CHECK_MSG(strstr(e, "optimizer_step: the loss is nan at step 1, so no parameter was updated"),
              "%s", e);
    CHECK(memcmp(dg_node_data(n.w), w0, sizeof w0) == 0);
    CHECK(dg_optimizer_steps(n.opt) == 0);
    /* good data: training goes on */
    CHECK_OK(dg_feed(n.x, xs, 12));
    CHECK_OK(dg_optimizer_step(n.opt));
    CHECK(dg_optimizer_steps(n.opt) == 1);
    dg_graph_free(n.g);
}

static void divergence_is_reported(void) {
    /* lr 1e18 on a quadratic: the weights overflow within a few steps */
    net n = build(1e18f);
    CHECK_OK(dg_feed(n.x, xs, 12));
    CHECK_OK(dg_feed(n.t, ts, 8));
    dg_status s = DG_OK;
    int steps = 0;
    while (s == DG_OK && steps < 50) s = dg_optimizer_step(n.opt), steps++;
    CHECK_MSG(s == DG_ERR_NONFINITE, "50 steps at lr 1e18 returned %s", dg_status_name(s));
    CHECK(strstr(dg_graph_error(n.g), "no parameter was updated") != NULL);
    CHECK(steps < 50 && dg_optimizer_steps(n.opt) == steps - 1);
    dg_graph_free(n.g);
}

static void anomaly_names_the_parameter(void) {
    /* lr 3e38 with gradients of about 100: the very first update overflows */
    net n = build(3e38f);
    dg_set_anomaly_mode(n.g, 1);
    float far[8];
    for (int i = 0; i < 8; i++) far[i] = 100.0f * ts[i];
    CHECK_OK(dg_feed(n.x, xs, 12));
    CHECK_OK(dg_feed(n.t, far, 8));
    CHECK(dg_optimizer_step(n.opt) == DG_ERR_NONFINITE);
    const char *e = dg_graph_error(n.g);
    CHECK_MSG(strstr(e, "(op update_sgd) wrote") && strstr(e, "'fc/W'") &&
                  strstr(e, "a learning rate too large?"),
              "%s", e);
    dg_graph_free(n.g);

    /* an op inside a layer is named with its scope */
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape1(2));
    dg_scope_push(g, "fc2");
    dg_node *l = dg_log(g, x);
    dg_scope_pop(g);
    const float v[2] = {1, -1};
    dg_feed(x, v, 2);
    dg_set_anomaly_mode(g, 1);
    CHECK(dg_run(g, l) == DG_ERR_NONFINITE);
    CHECK_MSG(strstr(dg_graph_error(g), "(op fc2/log, shape [2])") != NULL, "%s",
              dg_graph_error(g));
    dg_graph_free(g);
}

int main(void) {
    for (int i = 0; i < 12; i++) xs[i] = test_uniform(-1, 1);
    for (int i = 0; i < 8; i++) ts[i] = test_uniform(-1, 1);
    nan_loss_stops_the_step();
    divergence_is_reported();
    anomaly_names_the_parameter();
    return test_summary("test_optim_divergence");
}
