/* Messages a newcomer meets (issue 17, item 5): a layer given the NULL result of a failed
 * call keeps that failure as the cause; a node of another graph is named; dg_value on a
 * tensor says why it returns NaN; a second parameter of an existing name is refused when it
 * is made; differentiating the same loss twice reuses the gradients. */
#include "test_util.h"

#include <string.h>

#define CHECK_HAS(msg, sub) CHECK_MSG(strstr((msg), (sub)) != NULL, "'%s' lacks '%s'", msg, sub)

int main(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(4, 3));
    /* a failed matmul's NULL, passed on to a layer: the cause is kept */
    dg_node *bad = dg_matmul(g, x, dg_param(g, "w", dg_shape2(5, 2)));
    CHECK(bad == NULL);
    CHECK(dg_dense(g, "fc", bad, 3, DG_ACT_RELU) == NULL);
    CHECK_HAS(dg_graph_error(g), "dense: input is NULL (after: matmul: inner dimensions differ");
    CHECK(dg_graph_status(g) == DG_ERR_SHAPE);
    /* a node of another graph, by name */
    dg_graph *other = dg_graph_new(2);
    dg_node *ox = dg_input(other, "other_x", dg_shape2(4, 3));
    CHECK(dg_add(g, x, ox) == NULL);
    CHECK_HAS(dg_graph_error(g), "add: input 1 belongs to another graph ('other_x' there");
    CHECK(dg_dense(g, NULL, ox, 2, DG_ACT_NONE) == NULL);
    CHECK_HAS(dg_graph_error(g), "dense: input belongs to another graph (node 0 'other_x' there");
    /* dg_value of a tensor */
    float v[12] = {0};
    dg_feed(x, v, 12);
    dg_graph_clear_error(g);
    CHECK(isnan(dg_value(x)));
    CHECK(dg_graph_status(g) == DG_ERR_SHAPE);
    CHECK_HAS(dg_graph_error(g), "value: node 0 has shape [4,3], not a single value");
    /* a parameter name can be used once */
    CHECK(dg_param(g, "w", dg_shape1(2)) == NULL);
    CHECK_HAS(dg_graph_error(g), "param: the name 'w' is already used by node 1 (param)");
    CHECK(dg_dense(g, "fc", x, 2, DG_ACT_NONE) != NULL);
    CHECK(dg_dense(g, "fc", x, 2, DG_ACT_NONE) == NULL);
    CHECK_HAS(dg_graph_error(g), "a parameter named 'fc/W' already exists");
    /* backward of the same loss twice: the first pass's gradients */
    dg_node *loss = dg_sum(g, dg_graph_find(g, "fc/W"));
    CHECK_OK(dg_backward(g, loss));
    int count = dg_graph_node_count(g);
    dg_node *gw = dg_grad(dg_graph_find(g, "fc/W"));
    CHECK_OK(dg_backward(g, loss));
    CHECK(dg_graph_node_count(g) == count && dg_grad(dg_graph_find(g, "fc/W")) == gw);
    dg_graph_free(other);
    dg_graph_free(g);
    return test_summary("test_core_messages");
}
