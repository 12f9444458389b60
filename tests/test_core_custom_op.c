/* User-defined ops registered at run time through dg_op_def / dg_apply, used exactly like
 * built-in ops: known values, composition with built-ins, dg_gradcheck, a second
 * derivative, run-time errors from a user kernel. A deliberately wrong backward must make
 * dg_gradcheck report passed == 0, which proves the checker can fail. */
#include "test_util.h"

#include <string.h>

static dg_status same_shape(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                            size_t size) {
    (void)n, (void)a, (void)msg, (void)size;
    *out = dg_node_shape(in[0]);
    return DG_OK;
}

/* The attribute of cube: its coefficient. */
typedef struct cube_attrs {
    float c;
} cube_attrs;

/* ---- softplus: y = log(1 + e^x) = max(x,0) + log1p(e^-|x|);  dx = dy sigmoid(x) ---- */
static dg_status softplus_forward(dg_node *self) {
    const float *x = dg_node_data(dg_node_input(self, 0));
    float *y = dg_node_data(self);
    for (int64_t i = 0; i < dg_node_numel(self); i++)
        y[i] = fmaxf(x[i], 0.0f) + log1pf(expf(-fabsf(x[i])));
    return DG_OK;
}
static dg_status softplus_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg_mul(g, dy, dg_sigmoid(g, dg_node_input(self, 0)));
    return dx[0] ? DG_OK : dg_graph_status(g);
}
static const dg_op_def softplus_def = {.name = "softplus",
                                       .n_inputs = 1,
                                       .infer_shape = same_shape,
                                       .forward = softplus_forward,
                                       .backward = softplus_backward};
static dg_node *softplus(dg_graph *g, dg_node *x) {
    return dg_apply(g, &softplus_def, 1, &x, NULL, 0);
}

/* ---- cube with a coefficient attribute: y = c x^3;  dx = dy 3 c x^2 ---- */
static dg_status cube_forward(dg_node *self) {
    const float *x = dg_node_data(dg_node_input(self, 0));
    float c = ((const cube_attrs *)dg_node_attrs(self))->c, *y = dg_node_data(self);
    for (int64_t i = 0; i < dg_node_numel(self); i++) y[i] = c * x[i] * x[i] * x[i];
    return DG_OK;
}
static dg_status cube_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *x = dg_node_input(self, 0);
    float c = ((const cube_attrs *)dg_node_attrs(self))->c;
    dx[0] = dg_mul(g, dy, dg_scale(g, dg_mul(g, x, x), 3.0f * c));
    return dx[0] ? DG_OK : dg_graph_status(g);
}
/* The same forward with a wrong derivative (2 c x^2 instead of 3 c x^2). */
static dg_status cube_wrong_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *x = dg_node_input(self, 0);
    float c = ((const cube_attrs *)dg_node_attrs(self))->c;
    dx[0] = dg_mul(g, dy, dg_scale(g, dg_mul(g, x, x), 2.0f * c));
    return dx[0] ? DG_OK : dg_graph_status(g);
}
static const dg_op_def cube_def = {.name = "cube",
                                   .n_inputs = 1,
                                   .infer_shape = same_shape,
                                   .forward = cube_forward,
                                   .backward = cube_backward};
static const dg_op_def wrong_cube_def = {.name = "wrong_cube",
                                         .n_inputs = 1,
                                         .infer_shape = same_shape,
                                         .forward = cube_forward,
                                         .backward = cube_wrong_backward};
static dg_node *cube_op(dg_graph *g, const dg_op_def *def, dg_node *x, float c) {
    cube_attrs a = {c};
    return dg_apply(g, def, 1, &x, &a, sizeof a);
}

/* ---- hypot of two same-shape inputs: y = sqrt(a^2 + b^2);  da = dy a / y, db = dy b / y;
 * its shape rule rejects mismatched shapes, its kernel rejects a zero result at run time */
static dg_status hypot_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                            size_t size) {
    (void)n, (void)a;
    if (!dg_shape_equal(dg_node_shape(in[0]), dg_node_shape(in[1]))) {
        char s0[64], s1[64];
        snprintf(msg, size, "shapes differ: %s vs %s",
                 dg_shape_str(dg_node_shape(in[0]), s0, sizeof s0),
                 dg_shape_str(dg_node_shape(in[1]), s1, sizeof s1));
        return DG_ERR_SHAPE;
    }
    *out = dg_node_shape(in[0]);
    return DG_OK;
}
static dg_status hypot_forward(dg_node *self) {
    const float *a = dg_node_data(dg_node_input(self, 0)),
                *b = dg_node_data(dg_node_input(self, 1));
    float *y = dg_node_data(self);
    for (int64_t i = 0; i < dg_node_numel(self); i++) {
        y[i] = sqrtf(a[i] * a[i] + b[i] * b[i]);
        if (y[i] == 0.0f)
            return dg_set_error(dg_node_graph(self), DG_ERR_ARG,
                                "hypot: element %lld is zero (not differentiable there)",
                                (long long)i);
    }
    return DG_OK;
}
static dg_status hypot_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *dy_over_y = dg_div(g, dy, self);
    for (int k = 0; k < 2; k++) {
        if (!dg_node_requires_grad(dg_node_input(self, k))) continue;
        if (!(dx[k] = dg_mul(g, dy_over_y, dg_node_input(self, k)))) return dg_graph_status(g);
    }
    return DG_OK;
}
static const dg_op_def hypot_def = {.name = "hypot",
                                    .n_inputs = 2,
                                    .infer_shape = hypot_rule,
                                    .forward = hypot_forward,
                                    .backward = hypot_backward};
static dg_node *hypot_op(dg_graph *g, dg_node *a, dg_node *b) {
    dg_node *in[2] = {a, b};
    return dg_apply(g, &hypot_def, 2, in, NULL, 0);
}

static void gradcheck(const char *what, dg_graph *g, dg_node *loss, int n, dg_node **leaves,
                      int expect_pass) {
    dg_gradcheck_report r;
    dg_status s = dg_gradcheck(g, loss, n, leaves, 1e-2, 2e-3, 2e-2, &r);
    CHECK_MSG(s == DG_OK, "%s: %s", what, dg_graph_error(g));
    CHECK(r.checked > 0);
    CHECK_MSG(r.passed == expect_pass,
              "%s: passed=%d (expected %d), max abs %.3g rel %.3g, worst leaf %d[%lld] analytic "
              "%.6g numeric %.6g",
              what, r.passed, expect_pass, r.max_abs_err, r.max_rel_err, r.worst_leaf,
              (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
    if (!expect_pass) CHECK(r.max_rel_err > 0.2);
    if (!expect_pass && strcmp(what, "wrong_cube") == 0) {
        /* the report locates a genuinely wrong element: analytic is 2/3 of numeric */
        CHECK_MSG(fabs(r.worst_analytic - r.worst_numeric * 2.0 / 3.0) <=
                      1e-2 * fabs(r.worst_numeric) + 1e-3,
                  "worst analytic %g numeric %g", r.worst_analytic, r.worst_numeric);
    }
}

int main(void) {
    /* known values and introspection */
    {
        dg_graph *g = dg_graph_new(1);
        const float xv[4] = {-3, 0, 0.5f, 20};
        dg_node *x = dg_const(g, "x", dg_shape1(4), xv, 0);
        dg_node *sp = softplus(g, x), *cb = cube_op(g, &cube_def, x, -2.0f);
        CHECK(sp && cb);
        CHECK(strcmp(dg_node_op_name(sp), "softplus") == 0);
        CHECK(dg_node_op(sp) == &softplus_def && dg_node_kind_of(sp) == DG_OP_NODE);
        CHECK(((const cube_attrs *)dg_node_attrs(cb))->c == -2.0f);
        CHECK(dg_node_input_count(sp) == 1 && dg_node_input(sp, 0) == x);
        dg_node *t[2] = {sp, cb};
        CHECK_OK(dg_run_many(g, 2, t));
        for (int i = 0; i < 4; i++) {
            CHECK_NEAR(dg_node_data(sp)[i], log1p(exp((double)xv[i])), 1e-6 * (1 + fabs(xv[i])));
            CHECK_NEAR(dg_node_data(cb)[i], -2.0 * xv[i] * xv[i] * xv[i], 1e-6 * 16000);
        }
        CHECK_NEAR(dg_node_data(sp)[1], log(2.0), 1e-7);
        dg_graph_free(g);
    }
    /* composed with built-in ops, gradient-checked like a built-in */
    {
        dg_graph *g = dg_graph_new(2);
        dg_node *x = dg_input(g, "x", dg_shape2(3, 4)), *w = dg_param(g, "w", dg_shape2(4, 2));
        dg_node *b = dg_input(g, "b", dg_shape2(3, 2));
        dg_set_requires_grad(x, 1);
        dg_set_requires_grad(b, 1);
        test_fill(x, -2, 2);
        test_fill(w, -1, 1);
        test_fill(b, 0.5f, 1.5f);
        dg_node *h = softplus(g, dg_matmul(g, cube_op(g, &cube_def, x, 0.5f), w));
        dg_node *loss = dg_mean(g, dg_tanh(g, hypot_op(g, h, b)));
        CHECK_MSG(loss != NULL, "%s", dg_graph_error(g));
        dg_node *leaves[3] = {x, w, b};
        gradcheck("softplus(cube(x) W) with hypot", g, loss, 3, leaves, 1);
        /* and through dg_backward, like any op */
        CHECK_OK(dg_backward(g, loss));
        CHECK(dg_grad(x) && dg_grad(w) && dg_grad(b));
        CHECK_OK(dg_run(g, dg_grad(w)));
        dg_graph_free(g);
    }
    /* second derivative through the custom backward: softplus'' = s (1 - s), s = sigmoid */
    {
        dg_graph *g = dg_graph_new(3);
        dg_node *x = dg_param(g, "x", dg_shape0());
        dg_node_data(x)[0] = 0.7f;
        dg_node *g1 = NULL, *g2 = NULL, *y = softplus(g, x);
        CHECK_OK(dg_gradients(g, y, 1, &x, &g1));
        CHECK_OK(dg_gradients(g, g1, 1, &x, &g2));
        dg_node *t[2] = {g1, g2};
        CHECK_OK(dg_run_many(g, 2, t));
        double s = 1 / (1 + exp(-0.7));
        CHECK_NEAR(dg_value(g1), s, 1e-6);
        CHECK_NEAR(dg_value(g2), s * (1 - s), 1e-6);
        dg_graph_free(g);
    }
    /* the wrong derivative is caught, for every element, by the same checker */
    {
        dg_graph *g = dg_graph_new(4);
        dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
        dg_set_requires_grad(x, 1);
        test_fill(x, 0.5f, 1.5f);
        dg_node *good = dg_sum(g, cube_op(g, &cube_def, x, 1.5f));
        dg_node *bad = dg_sum(g, cube_op(g, &wrong_cube_def, x, 1.5f));
        gradcheck("cube", g, good, 1, &x, 1);
        gradcheck("wrong_cube", g, bad, 1, &x, 0);
        /* still wrong when mixed into a larger expression */
        dg_node *mixed = dg_add(g, dg_mean(g, dg_exp(g, x)), bad);
        gradcheck("exp + wrong_cube", g, mixed, 1, &x, 0);
        dg_graph_free(g);
    }
    /* the user's shape rule and run-time errors surface like a built-in's */
    {
        dg_graph *g = dg_graph_new(5);
        dg_node *a = dg_input(g, "a", dg_shape1(3)), *b = dg_input(g, "b", dg_shape1(4));
        CHECK(hypot_op(g, a, b) == NULL);
        CHECK(dg_graph_status(g) == DG_ERR_SHAPE);
        CHECK_MSG(strstr(dg_graph_error(g), "hypot: shapes differ: [3] vs [4]") != NULL, "%s",
                  dg_graph_error(g));
        dg_node *c = dg_input(g, "c", dg_shape1(3));
        dg_node *h = hypot_op(g, a, c);
        const float zero[3] = {1, 0, 2};
        CHECK_OK(dg_feed(a, zero, 3));
        CHECK_OK(dg_feed(c, zero, 3));
        CHECK(dg_run(g, h) == DG_ERR_ARG);
        CHECK_MSG(strstr(dg_graph_error(g), "hypot: element 1 is zero") != NULL, "%s",
                  dg_graph_error(g));
        const float fine[3] = {3, 4, 5};
        CHECK_OK(dg_feed(c, fine, 3));
        CHECK_OK(dg_run(g, h));
        CHECK_NEAR(dg_node_data(h)[0], sqrt(10.0), 1e-6);
        CHECK_NEAR(dg_node_data(h)[1], 4, 0);
        dg_graph_free(g);
    }
    return test_summary("test_core_custom_op");
}
