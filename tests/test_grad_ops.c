/* Every differentiable op's gradient against central finite differences, on random inputs
 * of several shapes including broadcast cases. */
#include "test_util.h"

#include <string.h>

typedef dg_node *(*unary_fn)(dg_graph *, dg_node *);
typedef dg_node *(*binary_fn)(dg_graph *, dg_node *, dg_node *);

/* Reduces y to a scalar with random weights so every output element matters. */
static dg_node *weighted_sum(dg_graph *g, dg_node *y) {
    dg_node *w = dg_input(g, "w", dg_node_shape(y));
    test_fill(w, -1.0f, 1.0f);
    return dg_sum(g, dg_mul(g, y, w));
}

static void check_grad(const char *what, dg_graph *g, dg_node *loss, int n, dg_node **leaves) {
    dg_gradcheck_report r;
    dg_status s = dg_gradcheck(g, loss, n, leaves, 1e-2, 2e-3, 2e-2, &r);
    CHECK_MSG(s == DG_OK, "%s: gradcheck status %s: %s", what, dg_status_name(s),
              dg_graph_error(g));
    CHECK_MSG(r.passed, "%s: max abs %.3g rel %.3g at leaf %d[%lld]: analytic %.6g numeric %.6g",
              what, r.max_abs_err, r.max_rel_err, r.worst_leaf, (long long)r.worst_index,
              r.worst_analytic, r.worst_numeric);
    CHECK(r.checked > 0);
}

static void unary_case(const char *what, unary_fn f, dg_shape shape, float lo, float hi) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", shape);
    dg_set_requires_grad(x, 1);
    test_fill(x, lo, hi);
    dg_node *loss = weighted_sum(g, f(g, x));
    CHECK_MSG(loss != NULL, "%s: %s", what, dg_graph_error(g));
    if (loss) check_grad(what, g, loss, 1, &x);
    dg_graph_free(g);
}

static void binary_case(const char *what, binary_fn f, dg_shape sa, dg_shape sb, float lo,
                        float hi) {
    dg_graph *g = dg_graph_new(2);
    dg_node *a = dg_input(g, "a", sa), *b = dg_input(g, "b", sb);
    dg_set_requires_grad(a, 1);
    dg_set_requires_grad(b, 1);
    test_fill(a, lo, hi);
    test_fill(b, lo, hi);
    dg_node *loss = weighted_sum(g, f(g, a, b));
    CHECK_MSG(loss != NULL, "%s: %s", what, dg_graph_error(g));
    dg_node *leaves[2] = {a, b};
    if (loss) check_grad(what, g, loss, 2, leaves);
    dg_graph_free(g);
}

static dg_node *scale3(dg_graph *g, dg_node *x) { return dg_scale(g, x, -3.0f); }
static dg_node *shift2(dg_graph *g, dg_node *x) { return dg_shift(g, x, 2.0f); }
static dg_node *pow3(dg_graph *g, dg_node *x) { return dg_pow(g, x, 3.0f); }
static dg_node *pow_half(dg_graph *g, dg_node *x) { return dg_pow(g, x, 1.5f); }
static dg_node *leaky(dg_graph *g, dg_node *x) { return dg_leaky_relu(g, x, 0.1f); }
static dg_node *sum_ax0(dg_graph *g, dg_node *x) { return dg_sum_axis(g, x, 0, 0); }
static dg_node *sum_ax1k(dg_graph *g, dg_node *x) { return dg_sum_axis(g, x, -1, 1); }
static dg_node *mean_all(dg_graph *g, dg_node *x) { return dg_mean(g, x); }
static dg_node *mean_ax1(dg_graph *g, dg_node *x) { return dg_mean_axis(g, x, 1, 0); }
static dg_node *reshape6(dg_graph *g, dg_node *x) { return dg_reshape(g, x, dg_shape2(2, 6)); }
static dg_node *bcast(dg_graph *g, dg_node *x) { return dg_broadcast_to(g, x, dg_shape3(2, 3, 4)); }
static dg_node *matmul_nn(dg_graph *g, dg_node *a, dg_node *b) {
    return dg_matmul_t(g, a, b, 0, 0);
}
static dg_node *matmul_tn(dg_graph *g, dg_node *a, dg_node *b) {
    return dg_matmul_t(g, a, b, 1, 0);
}
static dg_node *matmul_nt(dg_graph *g, dg_node *a, dg_node *b) {
    return dg_matmul_t(g, a, b, 0, 1);
}
static dg_node *matmul_tt(dg_graph *g, dg_node *a, dg_node *b) {
    return dg_matmul_t(g, a, b, 1, 1);
}

/* relu's gradient (one relu_grad node): dy times 1 where y > 0 and times 0 elsewhere, bit
 * for bit (so -0 for a negative dy at a zero output, NaN for a NaN dy anywhere), against a
 * naive loop; and its own gradient, a second derivative of sum(relu(x) x r), against
 * central differences. */
static void check_relu_grad(void) {
    dg_graph *g = dg_graph_new(9);
    dg_node *x = dg_input(g, "x", dg_shape1(8)), *r = dg_input(g, "r", dg_shape1(8));
    dg_set_requires_grad(x, 1);
    float xv[8] = {-1.0f, 0.0f, 2.0f, -0.0f, 0.5f, -3.0f, 1e-30f, 4.0f};
    float rv[8] = {-2.0f, -1.0f, 3.0f, 5.0f, -0.5f, NAN, NAN, INFINITY};
    CHECK_OK(dg_feed(x, xv, 8));
    CHECK_OK(dg_feed(r, rv, 8));
    CHECK_OK(dg_backward(g, dg_sum(g, dg_mul(g, dg_relu(g, x), r))));
    CHECK_OK(dg_run(g, dg_grad(x)));
    float want[8];
    for (int i = 0; i < 8; i++) want[i] = rv[i] * (xv[i] > 0.0f ? 1.0f : 0.0f);
    CHECK(memcmp(dg_node_data(dg_grad(x)), want, sizeof want) == 0);
    dg_graph_free(g);

    g = dg_graph_new(10);
    x = dg_input(g, "x", dg_shape2(3, 5));
    dg_set_requires_grad(x, 1);
    test_fill(x, -1.0f, 1.0f);
    dg_node *y = dg_relu(g, x), *gx;
    dg_node *loss = weighted_sum(g, dg_mul(g, y, x)); /* dy = x w reaches relu_grad unmasked */
    CHECK_OK(dg_gradients(g, loss, 1, &x, &gx));
    CHECK(gx != NULL);
    if (gx) check_grad("relu second derivative", g, weighted_sum(g, gx), 1, &x);
    dg_graph_free(g);
}

int main(void) {
    dg_shape s34 = dg_shape2(3, 4), s234 = dg_shape3(2, 3, 4);
    unary_case("neg", dg_neg, s34, -2, 2);
    unary_case("scale", scale3, s34, -2, 2);
    unary_case("shift", shift2, s34, -2, 2);
    unary_case("exp", dg_exp, s234, -2, 2);
    unary_case("log", dg_log, s34, 0.5f, 3);
    unary_case("sqrt", dg_sqrt, s34, 0.5f, 3);
    unary_case("pow3", pow3, s34, -2, 2);
    unary_case("pow1.5", pow_half, s34, 0.5f, 2);
    unary_case("abs", dg_abs, s34, 0.2f, 2);
    unary_case("relu", dg_relu, s234, 0.1f, 1);
    unary_case("relu-neg", dg_relu, s34, -1, -0.1f);
    unary_case("leaky_relu", leaky, s34, -1, -0.1f);
    unary_case("sigmoid", dg_sigmoid, s34, -3, 3);
    unary_case("tanh", dg_tanh, s234, -2, 2);
    unary_case("softmax", dg_softmax, s234, -2, 2);
    unary_case("log_softmax", dg_log_softmax, s34, -2, 2);
    unary_case("sum", dg_sum, s234, -1, 1);
    unary_case("sum_axis0", sum_ax0, s34, -1, 1);
    unary_case("sum_axis-1 keep", sum_ax1k, s234, -1, 1);
    unary_case("mean", mean_all, s34, -1, 1);
    unary_case("mean_axis1", mean_ax1, s234, -1, 1);
    unary_case("reshape", reshape6, s34, -1, 1);
    unary_case("transpose", dg_transpose, s234, -1, 1);
    unary_case("broadcast_to", bcast, dg_shape2(1, 4), -1, 1);

    binary_case("add same", dg_add, s34, s34, -1, 1);
    binary_case("add [3,4]+[4]", dg_add, s34, dg_shape1(4), -1, 1);
    binary_case("sub [3,1]-[1,4]", dg_sub, dg_shape2(3, 1), dg_shape2(1, 4), -1, 1);
    binary_case("mul [2,3,4]*[3,1]", dg_mul, s234, dg_shape2(3, 1), -1, 1);
    binary_case("mul scalar", dg_mul, s34, dg_shape0(), -1, 1);
    binary_case("div", dg_div, s34, s34, 0.5f, 2);
    binary_case("div [4] / [3,4]", dg_div, dg_shape1(4), s34, 0.5f, 2);
    binary_case("matmul", matmul_nn, dg_shape2(3, 5), dg_shape2(5, 4), -1, 1);
    binary_case("matmul A^T", matmul_tn, dg_shape2(5, 3), dg_shape2(5, 4), -1, 1);
    binary_case("matmul B^T", matmul_nt, dg_shape2(3, 5), dg_shape2(4, 5), -1, 1);
    binary_case("matmul A^T B^T", matmul_tt, dg_shape2(5, 3), dg_shape2(4, 5), -1, 1);
    binary_case("mse", dg_mse_loss, s34, s34, -1, 1);
    binary_case("mae", dg_mae_loss, s34, s34, -1, 1);
    binary_case("bce_logits", dg_bce_logits_loss, s34, s34, 0.05f, 0.95f);

    /* cross-entropy: gradient w.r.t. logits only; labels are data */
    {
        dg_graph *g = dg_graph_new(3);
        dg_node *z = dg_input(g, "z", dg_shape2(4, 5)), *l = dg_input(g, "labels", dg_shape1(4));
        dg_set_requires_grad(z, 1);
        test_fill(z, -2, 2);
        float labels[4] = {0, 4, 2, 2};
        dg_feed(l, labels, 4);
        dg_node *loss = dg_cross_entropy_loss(g, z, l);
        check_grad("cross_entropy", g, loss, 1, &z);
        dg_graph_free(g);
    }
    check_relu_grad();
    return test_summary("test_grad_ops");
}
