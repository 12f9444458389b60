/* DG_OP_EAGER: a plan runs a node of such an op as soon as its inputs are ready, ahead of
 * every other ready node, in every plan order; without the flag the same node waits its
 * turn (creation order runs the older chain first). Values are unchanged. */
#include "test_util.h"

#include <string.h>

static int order_log[16], n_logged;

typedef struct stamp_attrs {
    int tag;
} stamp_attrs;

/* y = x + 1, and the node's tag appended to order_log */
static dg_status stamp_forward(dg_node *self) {
    const stamp_attrs *a = dg_node_attrs(self);
    if (n_logged < 16) order_log[n_logged++] = a->tag;
    const float *x = dg_node_data(dg_node_input(self, 0));
    float *y = dg_node_data(self);
    for (int64_t i = 0; i < dg_node_numel(self); i++) y[i] = x[i] + 1.0f;
    return DG_OK;
}
static const dg_op_def stamp_op = {.name = "stamp",
                                   .n_inputs = 1,
                                   .flags = DG_OP_NO_GRAD,
                                   .infer_shape = dg_rule_same_shape,
                                   .forward = stamp_forward};
static const dg_op_def eager_stamp_op = {.name = "eager_stamp",
                                         .n_inputs = 1,
                                         .flags = DG_OP_NO_GRAD | DG_OP_EAGER,
                                         .infer_shape = dg_rule_same_shape,
                                         .forward = stamp_forward};

static dg_node *stamp(dg_graph *g, const dg_op_def *op, dg_node *x, int tag) {
    stamp_attrs a = {tag};
    return dg_apply(g, op, 1, &x, &a, sizeof a);
}

/* chain 1 -> 2 -> 3 -> 4, and a node (tag 9) reading 1 built after the chain */
static void check(const dg_op_def *late_op, dg_plan_order order, const int *want) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape1(3));
    dg_node *s1 = stamp(g, &stamp_op, x, 1);
    dg_node *s4 = stamp(g, &stamp_op, stamp(g, &stamp_op, stamp(g, &stamp_op, s1, 2), 3), 4);
    dg_node *late = stamp(g, late_op, s1, 9);
    CHECK_OK(dg_set_plan_order(g, order, 5));
    float v[3] = {1, 2, 3};
    CHECK_OK(dg_feed(x, v, 3));
    dg_node *targets[2] = {s4, late};
    n_logged = 0;
    CHECK_OK(dg_run_many(g, 2, targets));
    CHECK(n_logged == 5);
    for (int i = 0; i < 5 && want; i++)
        CHECK_MSG(order_log[i] == want[i], "%s, plan order %d: position %d ran %d, expected %d",
                  late_op->name, (int)order, i, order_log[i], want[i]);
    CHECK(dg_node_data(s4)[0] == 5.0f && dg_node_data(late)[2] == 5.0f);
    dg_graph_free(g);
}

int main(void) {
    const int eager[5] = {1, 9, 2, 3, 4}, lazy[5] = {1, 2, 3, 4, 9};
    check(&stamp_op, DG_ORDER_CREATION, lazy); /* the flag is what moves it */
    check(&eager_stamp_op, DG_ORDER_CREATION, eager);
    check(&eager_stamp_op, DG_ORDER_LATEST_FIRST, eager);
    check(&eager_stamp_op, DG_ORDER_RANDOM, eager);
    return test_summary("test_engine_eager");
}
