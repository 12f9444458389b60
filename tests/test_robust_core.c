/* Bad input to the core.h and ops.h calls that tests/test_core_errors.c does not reach:
 * negative counts and sizes, extreme axes, more run targets than the plan cache holds,
 * out-of-range indices, a NULL message format, nodes of another graph in long target
 * lists. Each must fail with a status and a message naming the call, and the graph must
 * still work afterwards. */
#include "test_robust_util.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

static void test_counts_and_indices(void) {
    dg_graph *g = dg_graph_new(1), *h = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
    const float six[6] = {1, 2, 3, 4, 5, 6};
    float out[6];
    CHECK(dg_feed(x, six, -1) == DG_ERR_SHAPE);
    EXPECT_ERROR(g, DG_ERR_SHAPE, "feed: 'x' has shape [2,3] (6 elements) but -1 values");
    CHECK(dg_feed(x, six, INT64_MAX) == DG_ERR_SHAPE);
    EXPECT_ERROR(g, DG_ERR_SHAPE, "feed: 'x'");
    CHECK(dg_read(x, out, -5) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "read: buffer holds -5 floats");
    CHECK(dg_graph_node(g, -1) == NULL && dg_graph_node(g, dg_graph_node_count(g)) == NULL);
    CHECK(dg_graph_node(g, INT_MIN) == NULL && dg_graph_node(g, INT_MAX) == NULL);
    CHECK(isnan(dg_value(x))); /* not a scalar */

    /* axes far out of range, both ways */
    const int axes[] = {INT_MIN, INT_MIN + 1, -3, 2, INT_MAX};
    for (size_t i = 0; i < sizeof axes / sizeof axes[0]; i++) {
        CHECK(dg_sum_axis(g, x, axes[i], 0) == NULL);
        EXPECT_ERROR(g, DG_ERR_ARG, "sum_axis: axis");
        CHECK(dg_mean_axis(g, x, axes[i], 1) == NULL);
        EXPECT_ERROR(g, DG_ERR_ARG, "mean_axis: axis");
    }
    /* one_hot with a negative class count; reshape to an invalid rank */
    dg_node *lab = dg_input(g, "lab", dg_shape1(2));
    CHECK(dg_one_hot(g, lab, -3) == NULL);
    EXPECT_ERROR(g, DG_ERR_SHAPE, "one_hot:");
    dg_shape neg = dg_shape1(6);
    neg.ndim = -1;
    CHECK(dg_reshape(g, x, neg) == NULL);
    EXPECT_ERROR(g, DG_ERR_SHAPE, "reshape:");
    CHECK(dg_broadcast_to(g, x, neg) == NULL);
    EXPECT_ERROR(g, DG_ERR_SHAPE, "broadcast_to:");

    /* gradients and gradcheck with counts that make no sense */
    dg_node *p = dg_param(g, "p", dg_shape1(3));
    dg_node *y = dg_sum(g, dg_mul(g, p, p));
    dg_node *res = NULL;
    CHECK(dg_gradients(g, y, INT_MIN, &p, &res) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "gradients: n is");
    dg_gradcheck_report r;
    CHECK(dg_gradcheck(g, y, -1, &p, 1e-2, 1e-3, 1e-3, &r) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "gradcheck: no leaves given");
    CHECK(dg_gradcheck(g, y, 1, &p, NAN, 1e-3, 1e-3, &r) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "gradcheck: eps must be > 0");
    CHECK(dg_gradcheck(g, y, 1, &p, 1e-2, -1, 1e-3, &r) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "tolerances >= 0");
    CHECK(dg_gradcheck(g, y, 1, &p, 1e-2, 1e-3, NAN, &r) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "tolerances >= 0");

    /* custom op applied with a negative input count */
    CHECK(dg_apply(g, dg_node_op(y), -1, &x, NULL, 0) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "expects 1 inputs, got -1");

    /* run targets: more than the plan cache holds, with a NULL or a foreign node late in
     * the list; then a valid long list runs (no stale cached plan) */
    dg_node *t[12];
    CHECK_OK(dg_feed(x, six, 6));
    for (int i = 0; i < 12; i++) t[i] = dg_scale(g, x, (float)i);
    dg_node *keep = t[10];
    t[10] = NULL;
    CHECK(dg_run_many(g, 12, t) == DG_ERR_NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "run: target 10 is NULL");
    t[10] = dg_scalar(h, 1);
    CHECK(dg_run_many(g, 12, t) == DG_ERR_GRAPH);
    EXPECT_ERROR(g, DG_ERR_GRAPH, "run: target 10 belongs to another graph");
    t[10] = keep;
    CHECK(dg_run_many(g, -3, t) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "run: no targets given");
    CHECK_OK(dg_run_many(g, 12, t));
    CHECK_OK(dg_run_many(g, 12, t)); /* the same list again */
    for (int i = 0; i < 12; i++) CHECK_NEAR(dg_node_data(t[i])[5], 6.0f * (float)i, 0);
    CHECK(dg_graph_status(h) == DG_OK);
    dg_graph_free(g);
    dg_graph_free(h);
}

static void test_messages_and_misc(void) {
    dg_graph *g = dg_graph_new(1);
    /* a custom op or builder passing a NULL format gets a placeholder, not a crash */
    const char *nofmt = NULL;
    CHECK(dg_set_error(g, DG_ERR_ARG, nofmt, 0) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "(no message)");
    CHECK(dg_set_error(NULL, DG_ERR_IO, nofmt, 0) == DG_ERR_IO);
    CHECK_HAS(dg_last_error(), "(no message)");
    /* a very long message is cut, not overflowed */
    char big[4000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(dg_set_error(g, DG_ERR_ARG, "custom: %s", big) == DG_ERR_ARG);
    CHECK(strlen(dg_graph_error(g)) < 4000 && strncmp(dg_graph_error(g), "custom: mmm", 11) == 0);
    EXPECT_ERROR(g, DG_ERR_ARG, "custom: ");
    /* status names of values outside the enum */
    CHECK(strcmp(dg_status_name((dg_status)-1), "DG_ERR_UNKNOWN") == 0);
    /* shape strings into tiny buffers */
    char one[1] = {'x'}, three[3];
    CHECK(dg_shape_str(dg_shape2(100, 200), one, 1) == one && one[0] == 0);
    CHECK(dg_shape_str(dg_shape2(100, 200), three, 3) == three && strlen(three) == 2);
    CHECK(dg_shape_str(dg_shape2(1, 2), three, 0) == three);
    /* thread counts: nonsense means the default; results are the same */
    dg_set_num_threads(-7);
    CHECK(dg_get_num_threads() >= 1);
    dg_set_num_threads(0);
    /* empty and very long names are kept as given */
    dg_node *x = dg_input(g, "", dg_shape1(2));
    CHECK(x && dg_node_name(x) && dg_node_name(x)[0] == 0);
    CHECK_OK(dg_node_set_name(x, big));
    CHECK(strlen(dg_node_name(x)) == sizeof big - 1);
    CHECK(dg_scope_push(g, "") == DG_OK || dg_graph_status(g) != DG_OK);
    dg_graph_clear_error(g);
    while (dg_scope_pop(g) == DG_OK) {}
    dg_graph_clear_error(g);
    /* attaching with no release function is allowed (nothing is called at free) */
    static int token;
    CHECK_OK(dg_graph_attach(g, &token, NULL));
    /* a one-element loss of shape [1] is accepted like a scalar: d(p^2)/dp = 2p */
    dg_node *p = dg_param(g, "p", dg_shape1(1));
    dg_node_data(p)[0] = 3;
    dg_node *one_el = dg_mul(g, p, p);
    CHECK_OK(dg_backward(g, one_el));
    CHECK_OK(dg_run(g, dg_grad(p)));
    CHECK_NEAR(dg_node_data(dg_grad(p))[0], 6, 0);
    robust_still_works(g, __LINE__);
    dg_graph_free(g);
}

int main(void) {
    test_counts_and_indices();
    test_messages_and_misc();
    return test_summary("test_robust_core");
}
