/* conv2d, max_pool2d, avg_pool2d and batch normalisation against numbers computed once by
 * PyTorch 1.13 (tests/data/make_torch_reference.py wrote tests/data/torch_reference.h):
 * outputs, and the gradients of sum(y r) with respect to every input, for geometries with
 * asymmetric strides, padding and dilation, groups, and pooling windows full of ties (where
 * the gradient must go to the same element as PyTorch's, the first maximum). Batch norm
 * also checks the running statistics after one training run. */
#include "test_util.h"

#include "data/torch_reference.h"

#include <string.h>

/* max |got - want| over n floats, and the index where it occurs */
static double max_err(const float *got, const float *want, int64_t n, int64_t *at) {
    double worst = 0;
    *at = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (e > worst || e != e) worst = e, *at = i;
    }
    return worst;
}

#define COMPARE(what, node, ref, tol)                                                              \
    do {                                                                                           \
        int64_t n_ = (int64_t)(sizeof(ref) / sizeof(ref)[0]), at_;                                 \
        CHECK_MSG(dg_node_numel(node) == n_, "%s: %lld values, reference has %lld", what,          \
                  (long long)dg_node_numel(node), (long long)n_);                                  \
        if (dg_node_numel(node) == n_) {                                                           \
            double e_ = max_err(dg_node_data(node), ref, n_, &at_);                                \
            CHECK_MSG(e_ <= (tol), "%s: max error %g at %lld (got %.9g, PyTorch %.9g)", what, e_,  \
                      (long long)at_, (double)dg_node_data(node)[at_], (double)(ref)[at_]);        \
        }                                                                                          \
    } while (0)

static dg_node *leaf(dg_graph *g, const char *name, dg_shape s, const float *data) {
    dg_node *x = dg_input(g, name, s);
    dg_set_requires_grad(x, 1);
    dg_feed(x, data, dg_shape_numel(s));
    return x;
}

/* loss = sum(y r); returns the gradients of `n` leaves, run together with y */
static int grads_of(dg_graph *g, dg_node *y, const float *r, int n, dg_node **leaves,
                    dg_node **out) {
    dg_node *rn = dg_input(g, "r", dg_node_shape(y));
    dg_feed(rn, r, dg_node_numel(y));
    if (dg_gradients(g, dg_sum(g, dg_mul(g, y, rn)), n, leaves, out) != DG_OK) return -1;
    dg_node *targets[5] = {y};
    for (int i = 0; i < n; i++) targets[i + 1] = out[i];
    return dg_run_many(g, n + 1, targets) == DG_OK ? 0 : -1;
}

#define CONV_CASE(P, N, C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, G)                             \
    do {                                                                                           \
        dg_graph *g = dg_graph_new(1);                                                             \
        dg_node *x = leaf(g, "x", dg_shape4(N, C, H, W), P##_x);                                   \
        dg_node *w = leaf(g, "w", dg_shape4(O, (C) / (G), KH, KW), P##_w);                         \
        dg_node *b = leaf(g, "b", dg_shape1(O), P##_b);                                            \
        dg_conv2d_options o = {{SH, SW}, {PH, PW}, {DH, DW}, G};                                   \
        dg_node *y = dg_convolve2d(g, x, w, b, &o), *leaves[3] = {x, w, b}, *d[3];                 \
        CHECK_MSG(y &&grads_of(g, y, P##_r, 3, leaves, d) == 0, "%s: %s", #P, dg_graph_error(g));  \
        if (y && d[2]) {                                                                           \
            COMPARE(#P " y", y, P##_y, 2e-5);                                                      \
            COMPARE(#P " dx", d[0], P##_dx, 2e-5);                                                 \
            COMPARE(#P " dw", d[1], P##_dw, 5e-5);                                                 \
            COMPARE(#P " db", d[2], P##_db, 5e-5);                                                 \
        }                                                                                          \
        dg_graph_free(g);                                                                          \
    } while (0)

#define POOL_CASE(P, IS_MAX, N, C, H, W, K, S, PAD, D)                                             \
    do {                                                                                           \
        dg_graph *g = dg_graph_new(2);                                                             \
        dg_node *x = leaf(g, "x", dg_shape4(N, C, H, W), P##_x);                                   \
        dg_pool2d_options o = {{K, K}, {S, S}, {PAD, PAD}, {D, D}};                                \
        dg_node *y = IS_MAX ? dg_pool2d_max(g, x, &o) : dg_pool2d_avg(g, x, &o), *d[1];            \
        CHECK_MSG(y &&grads_of(g, y, P##_r, 1, &x, d) == 0, "%s: %s", #P, dg_graph_error(g));      \
        if (y && d[0]) {                                                                           \
            COMPARE(#P " y", y, P##_y, IS_MAX ? 0.0 : 1e-6);                                       \
            COMPARE(#P " dx", d[0], P##_dx, 1e-6);                                                 \
        }                                                                                          \
        dg_graph_free(g);                                                                          \
    } while (0)

static void batch_norm(void) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = leaf(g, "x", dg_shape4(4, 3, 5, 3), bn_a_x);
    dg_node *gamma = leaf(g, "gamma", dg_shape1(3), bn_a_gamma);
    dg_node *beta = leaf(g, "beta", dg_shape1(3), bn_a_beta);
    dg_node *rm = dg_state(g, "running_mean", dg_shape1(3));
    dg_node *rv = dg_state(g, "running_var", dg_shape1(3));
    float ones[3] = {1, 1, 1};
    dg_feed(rv, ones, 3);
    dg_node *y = dg_batch_normalize(g, x, gamma, beta, rm, rv, 0.1f, 1e-5f);
    dg_node *leaves[3] = {x, gamma, beta}, *d[3];
    CHECK_MSG(y && grads_of(g, y, bn_a_r, 3, leaves, d) == 0, "bn: %s", dg_graph_error(g));
    if (y && d[2]) {
        COMPARE("bn y", y, bn_a_y, 2e-5);
        COMPARE("bn dx", d[0], bn_a_dx, 5e-5);
        COMPARE("bn dgamma", d[1], bn_a_dgamma, 5e-5);
        COMPARE("bn dbeta", d[2], bn_a_dbeta, 5e-5);
        /* one training run (the gradients' run computed the statistics once) */
        COMPARE("bn running_mean", rm, bn_a_running_mean, 1e-6);
        COMPARE("bn running_var", rv, bn_a_running_var, 1e-6);
    }
    dg_graph_free(g);
}

int main(void) {
    CONV_CASE(conv_a, 2, 3, 7, 6, 4, 3, 2, 2, 1, 1, 2, 1, 2, 1);
    CONV_CASE(conv_b, 3, 4, 6, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2);
    CONV_CASE(conv_c, 2, 1, 12, 11, 5, 5, 5, 1, 1, 2, 2, 1, 1, 1);
    POOL_CASE(max_a, 1, 2, 3, 7, 8, 3, 2, 1, 1);
    POOL_CASE(max_b, 1, 2, 2, 9, 9, 2, 1, 0, 2);
    POOL_CASE(max_c, 1, 3, 2, 8, 10, 2, 2, 0, 1);
    POOL_CASE(avg_a, 0, 2, 3, 7, 8, 3, 2, 1, 1);
    batch_norm();
    return test_summary("test_ops_torch");
}
