/* Tiny test harness: CHECK records a failure with file and line and carries on; a test
 * program returns test_summary(), non-zero when anything failed. */
#ifndef DG_TEST_UTIL_H
#define DG_TEST_UTIL_H

#include "dagrad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures = 0, test_checks = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, %s = %.9g", #a, (double)(a),   \
              #b, (double)(b))

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        dg_status s_ = (expr);                                                                     \
        CHECK_MSG(s_ == DG_OK, "%s -> %s: %s", #expr, dg_status_name(s_), dg_last_error());        \
    } while (0)

static inline int test_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

/* Deterministic pseudo-random floats in [lo, hi) for test data. */
static unsigned long long test_rng_state = 88172645463325252ull;
static inline float test_uniform(float lo, float hi) {
    test_rng_state ^= test_rng_state << 13;
    test_rng_state ^= test_rng_state >> 7;
    test_rng_state ^= test_rng_state << 17;
    return lo + (hi - lo) * (float)((test_rng_state >> 40) * (1.0 / 16777216.0));
}

static inline void test_fill(dg_node *n, float lo, float hi) {
    float *d = dg_node_data(n);
    for (int64_t i = 0; i < dg_node_numel(n); i++) d[i] = test_uniform(lo, hi);
    dg_feed(n, d, dg_node_numel(n)); /* marks inputs as fed */
}

/* 1 if graphs a and b (built the same way) hold bitwise the same parameters and optimizer
 * state, and hold at least one. */
static inline int test_same_weights(dg_graph *a, dg_graph *b) {
    int n = dg_graph_node_count(a), compared = 0;
    if (n != dg_graph_node_count(b)) return 0;
    for (int i = 0; i < n; i++) {
        dg_node *u = dg_graph_node(a, i), *v = dg_graph_node(b, i);
        dg_node_kind k = dg_node_kind_of(u);
        if (k != DG_PARAM && k != DG_STATE) continue;
        if (dg_node_numel(u) != dg_node_numel(v) ||
            memcmp(dg_node_data(u), dg_node_data(v), (size_t)dg_node_numel(u) * sizeof(float)))
            return 0;
        compared++;
    }
    return compared > 0;
}

/* copy_into(dst, src): writes src's values into the leaf dst in place (declared in
 * `writes`); its own value is a scalar 0. For tests of ops that write leaves. */
static inline dg_status test_scalar_shape(dg_node *const *in, int n, const void *a, dg_shape *out,
                                          char *msg, size_t size) {
    (void)in, (void)n, (void)a, (void)msg, (void)size;
    *out = dg_shape0();
    return DG_OK;
}
static inline dg_status test_copy_forward(dg_node *self) {
    dg_node *dst = dg_node_input(self, 0), *src = dg_node_input(self, 1);
    memcpy(dg_node_data(dst), dg_node_data(src), (size_t)dg_node_numel(dst) * sizeof(float));
    dg_node_data(self)[0] = 0;
    return DG_OK;
}
static const dg_op_def test_copy_into_op = {.name = "copy_into",
                                            .n_inputs = 2,
                                            .flags = DG_OP_NO_GRAD,
                                            .writes = 1u << 0,
                                            .infer_shape = test_scalar_shape,
                                            .forward = test_copy_forward};

#endif
