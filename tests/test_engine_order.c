/* Ordering by edges. Ops that write a leaf in place (optimizer updates, counters) declare
 * it, and a plan runs every other reader of the leaf first. Checked where creation order
 * would not save us:
 *   - a two-layer net whose plan takes the latest-created ready node first (so an update
 *     is ready before the backward product that still needs the old weights) and random
 *     orders: one SGD and one Adam step equal the published rules applied to gradients
 *     from a separate graph;
 *   - readers of the parameters built after the optimizer and run in the same step see
 *     the values from before the update;
 *   - two optimizers on one loss update in creation order, from the same gradients;
 *   - two writers that each need the other's old value (a swap) have no valid order: a
 *     clear error, and nothing is written. */
#include "test_util.h"

#include <string.h>

enum { N = 6, IN = 4, HID = 5, OUT = 3 };

typedef struct net {
    dg_graph *g;
    dg_node *x, *t, *w1, *w2, *loss;
} net;

static float xs[N * IN], ts[N * OUT], w1v[IN * HID], w2v[HID * OUT];

static net build(void) {
    net n;
    n.g = dg_graph_new(1);
    n.x = dg_input(n.g, "x", dg_shape2(DG_BATCH, IN));
    n.t = dg_input(n.g, "t", dg_shape2(DG_BATCH, OUT));
    n.w1 = dg_param(n.g, "w1", dg_shape2(IN, HID));
    n.w2 = dg_param(n.g, "w2", dg_shape2(HID, OUT));
    memcpy(dg_node_data(n.w1), w1v, sizeof w1v);
    memcpy(dg_node_data(n.w2), w2v, sizeof w2v);
    dg_node *h = dg_tanh(n.g, dg_matmul(n.g, n.x, n.w1));
    n.loss = dg_mse_loss(n.g, dg_matmul(n.g, h, n.w2), n.t);
    dg_feed(n.x, xs, N * IN);
    dg_feed(n.t, ts, N * OUT);
    return n;
}

/* The gradients at the initial weights, from a graph without any optimizer. */
static void reference_grads(float *g1, float *g2) {
    net r = build();
    CHECK_OK(dg_backward(r.g, r.loss));
    dg_node *t[2] = {dg_grad(r.w1), dg_grad(r.w2)};
    CHECK_OK(dg_run_many(r.g, 2, t));
    memcpy(g1, dg_node_data(t[0]), sizeof w1v);
    memcpy(g2, dg_node_data(t[1]), sizeof w2v);
    dg_graph_free(r.g);
}

static void adversarial_orders(void) {
    float g1[IN * HID], g2[HID * OUT];
    reference_grads(g1, g2);
    const dg_plan_order orders[4] = {DG_ORDER_LATEST_FIRST, DG_ORDER_RANDOM, DG_ORDER_RANDOM,
                                     DG_ORDER_CREATION};
    for (int o = 0; o < 4; o++) {
        for (int adam = 0; adam <= 1; adam++) {
            net n = build();
            CHECK_OK(dg_set_plan_order(n.g, orders[o], 99 + (uint64_t)o));
            dg_optim_config c = dg_optim_defaults(adam ? DG_ADAM : DG_SGD);
            c.lr = 0.1f;
            dg_optimizer *opt = dg_optimizer_new(n.g, n.loss, &c);
            CHECK(opt != NULL);
            /* readers of the weights built after the optimizer, run in the same step */
            dg_node *r1 = dg_sum(n.g, dg_mul(n.g, n.w1, n.w1));
            dg_node *r2 = dg_sum(n.g, n.w2);
            dg_node *t[3] = {r1, dg_optimizer_step_node(opt), r2};
            CHECK_OK(dg_run_many(n.g, 3, t));
            double s1 = 0, s2 = 0;
            for (int i = 0; i < IN * HID; i++) s1 += (double)w1v[i] * w1v[i];
            for (int i = 0; i < HID * OUT; i++) s2 += w2v[i];
            CHECK_NEAR(dg_value(r1), s1, 1e-4);
            CHECK_NEAR(dg_value(r2), s2, 1e-4);
            /* the update rules on the reference gradients: SGD p - lr g; Adam's first step
             * p - lr m^ / (sqrt(v^) + eps) = p - lr g / (|g| + eps) */
            const float *p1 = dg_node_data(n.w1), *p2 = dg_node_data(n.w2);
            for (int i = 0; i < IN * HID; i++) {
                double step = adam ? g1[i] / (fabs(g1[i]) + 1e-8) : g1[i];
                CHECK_NEAR(p1[i], w1v[i] - 0.1 * step, 2e-6);
            }
            for (int i = 0; i < HID * OUT; i++) {
                double step = adam ? g2[i] / (fabs(g2[i]) + 1e-8) : g2[i];
                CHECK_NEAR(p2[i], w2v[i] - 0.1 * step, 2e-6);
            }
            dg_graph_free(n.g);
        }
    }
}

static void two_optimizers(void) {
    float g1[IN * HID], g2[HID * OUT];
    reference_grads(g1, g2);
    net n = build();
    CHECK_OK(dg_set_plan_order(n.g, DG_ORDER_LATEST_FIRST, 0));
    dg_optim_config a = dg_optim_defaults(DG_SGD), b = dg_optim_defaults(DG_SGD);
    a.lr = 0.1f;
    b.lr = 0.25f;
    dg_optimizer *oa = dg_optimizer_new(n.g, n.loss, &a);
    dg_optimizer *ob = dg_optimizer_new(n.g, n.loss, &b);
    CHECK(oa && ob);
    dg_node *t[2] = {dg_optimizer_step_node(ob), dg_optimizer_step_node(oa)};
    CHECK_OK(dg_run_many(n.g, 2, t));
    for (int i = 0; i < IN * HID; i++)
        CHECK_NEAR(dg_node_data(n.w1)[i], w1v[i] - 0.1f * g1[i] - 0.25f * g1[i], 2e-6);
    dg_graph_free(n.g);
}

/* sum_first(x, ...): the sum of x; the other inputs only order it after them. */
static dg_status sum_first_forward(dg_node *self) {
    dg_node *x = dg_node_input(self, 0);
    float acc = 0;
    for (int64_t i = 0; i < dg_node_numel(x); i++) acc += dg_node_data(x)[i];
    dg_node_data(self)[0] = acc;
    return DG_OK;
}
static const dg_op_def sum_first_op = {.name = "sum_first",
                                       .n_inputs = DG_VARIADIC,
                                       .flags = DG_OP_NO_GRAD,
                                       .infer_shape = test_scalar_shape,
                                       .forward = sum_first_forward};

static void swap_has_no_order(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *a = dg_state(g, "a", dg_shape1(3)), *b = dg_state(g, "b", dg_shape1(3));
    const float av[3] = {1, 2, 3}, bv[3] = {4, 5, 6};
    dg_feed(a, av, 3);
    dg_feed(b, bv, 3);
    dg_node *ab[2] = {a, b}, *ba[2] = {b, a};
    dg_node *c1 = dg_apply(g, &test_copy_into_op, 2, ab, NULL, 0),
            *c2 = dg_apply(g, &test_copy_into_op, 2, ba, NULL, 0);
    CHECK(c1 && c2);
    dg_node *t[2] = {c1, c2};
    CHECK(dg_run_many(g, 2, t) == DG_ERR_GRAPH);
    CHECK_MSG(strstr(dg_graph_error(g), "no valid order") != NULL, "%s", dg_graph_error(g));
    CHECK(memcmp(dg_node_data(a), av, sizeof av) == 0 &&
          memcmp(dg_node_data(b), bv, sizeof bv) == 0);
    /* one direction alone is fine */
    CHECK_OK(dg_run(g, c1));
    CHECK(memcmp(dg_node_data(a), bv, sizeof bv) == 0);
    /* a reader that depends on the write (here through an ordering input) sees the new
     * value; one that does not sees the old one */
    CHECK_OK(dg_feed(b, av, 3));
    dg_node *in[2] = {a, c1};
    dg_node *after = dg_apply(g, &sum_first_op, 2, in, NULL, 0), *before = dg_sum(g, a);
    dg_node *t2[2] = {after, before};
    CHECK_OK(dg_run_many(g, 2, t2));
    CHECK(dg_value(after) == 6.0f && dg_value(before) == 15.0f);
    dg_graph_free(g);
}

int main(void) {
    for (int i = 0; i < N * IN; i++) xs[i] = test_uniform(-1, 1);
    for (int i = 0; i < N * OUT; i++) ts[i] = test_uniform(-1, 1);
    for (int i = 0; i < IN * HID; i++) w1v[i] = test_uniform(-0.8f, 0.8f);
    for (int i = 0; i < HID * OUT; i++) w2v[i] = test_uniform(-0.8f, 0.8f);
    adversarial_orders();
    two_optimizers();
    swap_has_no_order();
    return test_summary("test_engine_order");
}
