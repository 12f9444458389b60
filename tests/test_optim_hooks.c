/* dg_optimizer_new_ex's gradients hook: the update uses the gradients the hook returns
 * (here halved, so one SGD step moves p by lr g / 2); a hook that fails, or returns a node
 * of the wrong shape, makes the construction fail and leaves the graph as it was. */
#include "test_util.h"

#include <string.h>

static dg_status halve(void *ctx, dg_graph *g, int n, dg_node *const *params, dg_node **grads) {
    int *calls = ctx;
    (*calls)++;
    (void)params;
    for (int i = 0; i < n; i++)
        if (!(grads[i] = dg_scale(g, grads[i], 0.5f))) return dg_graph_status(g);
    return DG_OK;
}

static dg_status refuse(void *ctx, dg_graph *g, int n, dg_node *const *params, dg_node **grads) {
    (void)ctx, (void)n, (void)params, (void)grads;
    return dg_set_error(g, DG_ERR_ARG, "hook: no");
}

static dg_status wrong_shape(void *ctx, dg_graph *g, int n, dg_node *const *params,
                             dg_node **grads) {
    (void)ctx, (void)params;
    for (int i = 0; i < n; i++) grads[i] = dg_sum(g, grads[i]);
    return DG_OK;
}

int main(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *p = dg_param(g, "p", dg_shape1(3));
    const float p0[3] = {1, -2, 3};
    memcpy(dg_node_data(p), p0, sizeof p0);
    dg_node *loss = dg_sum(g, dg_mul(g, p, p)); /* gradient 2p */
    dg_optim_config c = dg_optim_defaults(DG_SGD);
    c.lr = 0.1f;
    int n0 = dg_graph_node_count(g);
    dg_optim_hooks bad = {refuse, NULL}, shape = {wrong_shape, NULL};
    CHECK(dg_optimizer_new_ex(g, loss, &c, &bad) == NULL);
    CHECK(strstr(dg_graph_error(g), "optimizer_new: hook: no") != NULL);
    CHECK(dg_graph_node_count(g) == n0 && dg_grad(p) == NULL);
    CHECK(dg_optimizer_new_ex(g, loss, &c, &shape) == NULL);
    CHECK(strstr(dg_graph_error(g), "no gradient of parameter 0's shape") != NULL);
    CHECK(dg_graph_node_count(g) == n0);
    int calls = 0;
    dg_optim_hooks h = {halve, &calls};
    dg_optimizer *o = dg_optimizer_new_ex(g, loss, &c, &h);
    CHECK(o != NULL && calls == 1);
    CHECK_OK(dg_optimizer_step(o));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(dg_node_data(p)[i], p0[i] - 0.1f * 0.5f * 2 * p0[i], 1e-6);
    dg_graph_free(g);
    return test_summary("test_optim_hooks");
}
