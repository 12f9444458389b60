/* Shared by the tests/test_robust_*.c programs, which feed every public function beyond
 * the core what a user could get wrong. After each error they check the status and that
 * the message names the function and the problem, then prove the graph still works by
 * building, running and differentiating a small model in it (robust_still_works). */
#ifndef DG_TEST_ROBUST_UTIL_H
#define DG_TEST_ROBUST_UTIL_H

#include "test_util.h"

#include <string.h>

/* Huge requests must fail as DG_ERR_NOMEM, not abort, also under AddressSanitizer, which
 * otherwise reports an oversized malloc as a fatal error. Unused in normal builds. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

#define CHECK_HAS(msg, sub)                                                                        \
    CHECK_MSG(strstr((msg), (sub)) != NULL, "message '%s' lacks '%s'", (msg), (sub))

/* Proves g is usable: no scope left open by a failed layer, and a fresh two-layer model
 * computes the values its math says. p = [1,2]: y = sum(p * p) = 5, dy/dp = 2p = [2,4];
 * a dense layer built now sits at the top level (its scope has no '/'). */
static inline void robust_still_works(dg_graph *g, int line) {
    CHECK_MSG(dg_graph_status(g) == DG_OK, "line %d: error left set: %s", line, dg_graph_error(g));
    dg_node *p = dg_param(g, NULL, dg_shape1(2));
    if (!p) {
        CHECK_MSG(0, "line %d: graph unusable after error: %s", line, dg_graph_error(g));
        return;
    }
    dg_node_data(p)[0] = 1;
    dg_node_data(p)[1] = 2;
    dg_node *y = dg_sum(g, dg_mul(g, p, p));
    dg_node *x = dg_input(g, NULL, dg_shape2(1, 2));
    dg_node *d = dg_dense(g, NULL, x, 1, DG_ACT_NONE);
    dg_status s = y && d ? dg_backward(g, y) : dg_graph_status(g);
    if (s == DG_OK) {
        const float xv[2] = {1, 1};
        s = dg_feed(x, xv, 2);
    }
    if (s == DG_OK) {
        dg_node *t[3] = {y, dg_grad(p), d};
        s = dg_run_many(g, 3, t);
    }
    CHECK_MSG(s == DG_OK, "line %d: graph unusable after error: %s", line, dg_graph_error(g));
    if (s != DG_OK) return;
    CHECK_NEAR(dg_value(y), 5, 0);
    CHECK_NEAR(dg_node_data(dg_grad(p))[0], 2, 0);
    CHECK_NEAR(dg_node_data(dg_grad(p))[1], 4, 0);
    /* d = x W + b with b = 0: the sum of W's two entries */
    dg_node *w = dg_node_input(dg_node_input(d, 0), 1);
    CHECK_NEAR(dg_value(d), dg_node_data(w)[0] + dg_node_data(w)[1], 1e-6);
    const char *scope = dg_node_scope(d);
    CHECK_MSG(scope && !strchr(scope, '/'), "line %d: dense built in scope '%s'", line,
              scope ? scope : "(none)");
}

/* Checks g's error (status and message substring), clears it, then robust_still_works. */
static inline void robust_expect(dg_graph *g, dg_status want, const char *sub, int line) {
    CHECK_MSG(dg_graph_status(g) == want, "line %d: status %s, expected %s (%s)", line,
              dg_status_name(dg_graph_status(g)), dg_status_name(want), dg_graph_error(g));
    CHECK_MSG(strstr(dg_graph_error(g), sub) != NULL, "line %d: message '%s' lacks '%s'", line,
              dg_graph_error(g), sub);
    dg_graph_clear_error(g);
    robust_still_works(g, line);
}
#define EXPECT_ERROR(g, st, sub) robust_expect(g, st, sub, __LINE__)

/* For calls without a graph (NULL graph, file readers): status and the thread's message. */
#define EXPECT_LAST(expr, st, sub)                                                                 \
    do {                                                                                           \
        dg_status s_ = (expr);                                                                     \
        CHECK_MSG(s_ == (st), "%s -> %s, expected %s (%s)", #expr, dg_status_name(s_),             \
                  dg_status_name(st), dg_last_error());                                            \
        CHECK_HAS(dg_last_error(), sub);                                                           \
    } while (0)

#endif
