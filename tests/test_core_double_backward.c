/* Gradient of a gradient. For a loss L(x) the first backward builds g(x) = dL/dx as graph
 * nodes; differentiating s = sum(g(x) * v) again gives the Hessian-vector product H v,
 * which is compared with central differences of the first gradient along v:
 *     H v  ~  (g(x + h v) - g(x - h v)) / 2h.
 * Covers the smooth ops (add, sub, mul, div, matmul, exp, log, tanh, sigmoid, softmax,
 * sum/mean, MSE, and a few more), plus scalar functions with closed-form derivatives up to
 * the third order. */
#include "test_util.h"

#include <string.h>

#define MAXL 2     /* leaves per case */
#define MAXN 64    /* elements per leaf */
#define STEP 1e-2f /* finite-difference step along v */

typedef dg_node *(*build_fn)(dg_graph *g, dg_node **x);

typedef struct {
    const char *name;
    build_fn f; /* y = f(leaves): any shape; the loss is sum(w * y) or sum(w * y * y) */
    int n;
    dg_shape shape[MAXL];
    float lo, hi; /* range of the leaves' values */
    int which;    /* PLAIN: loss sum(w y); SQUARED: sum(w y y); or both */
} hvp_case;

enum { PLAIN = 1, SQUARED = 2, BOTH = 3 };

/* Central differences of the first-gradient nodes `grads` when all leaves move along v. */
static dg_status fd_hvp(dg_graph *g, int n, dg_node **x, dg_node **grads, float v[][MAXN],
                        double out[][MAXN]) {
    float x0[MAXL][MAXN], plus[MAXL][MAXN];
    for (int i = 0; i < n; i++)
        memcpy(x0[i], dg_node_data(x[i]), (size_t)dg_node_numel(x[i]) * sizeof(float));
    for (int side = 0; side < 2; side++) {
        float h = side == 0 ? STEP : -STEP;
        for (int i = 0; i < n; i++) {
            float buf[MAXN];
            for (int64_t j = 0; j < dg_node_numel(x[i]); j++) buf[j] = x0[i][j] + h * v[i][j];
            dg_feed(x[i], buf, dg_node_numel(x[i]));
        }
        dg_status s = dg_run_many(g, n, grads);
        if (s != DG_OK) return s;
        for (int i = 0; i < n; i++) {
            const float *gd = dg_node_data(grads[i]);
            for (int64_t j = 0; j < dg_node_numel(x[i]); j++) {
                if (side == 0)
                    plus[i][j] = gd[j];
                else
                    out[i][j] = ((double)plus[i][j] - gd[j]) / (2.0 * STEP);
            }
        }
    }
    for (int i = 0; i < n; i++) dg_feed(x[i], x0[i], dg_node_numel(x[i]));
    return DG_OK;
}

static void run_case(const hvp_case *c, int squared) {
    char what[96];
    snprintf(what, sizeof what, "%s%s", c->name, squared ? " (squared)" : "");
    dg_graph *g = dg_graph_new(3);
    dg_node *x[MAXL];
    float v[MAXL][MAXN];
    for (int i = 0; i < c->n; i++) {
        x[i] = dg_input(g, "x", c->shape[i]);
        CHECK(dg_node_numel(x[i]) <= MAXN);
        test_fill(x[i], c->lo, c->hi);
        dg_set_requires_grad(x[i], 1);
        for (int64_t j = 0; j < dg_node_numel(x[i]); j++) v[i][j] = test_uniform(-1, 1);
    }
    dg_node *y = c->f(g, x);
    if (y && squared) y = dg_mul(g, y, y);
    dg_node *w = y ? dg_const(g, "w", dg_node_shape(y), NULL, 0) : NULL;
    if (w)
        for (int64_t j = 0; j < dg_node_numel(w); j++)
            dg_node_data(w)[j] = test_uniform(0.5f, 1.5f);
    dg_node *loss = dg_sum(g, dg_mul(g, y, w));
    CHECK_MSG(loss != NULL, "%s: %s", what, dg_graph_error(g));
    if (!loss) goto out;

    /* first order: g_i = dL/dx_i */
    dg_node *grads[MAXL] = {0};
    CHECK_OK(dg_gradients(g, loss, c->n, x, grads));
    /* s = sum_i sum(g_i * v_i);  ds/dx = H v */
    dg_node *s = NULL;
    for (int i = 0; i < c->n; i++) {
        CHECK_MSG(grads[i] != NULL, "%s: no gradient for leaf %d", what, i);
        if (!grads[i]) goto out;
        dg_node *vi = dg_const(g, "v", c->shape[i], v[i], 0);
        dg_node *term = dg_sum(g, dg_mul(g, grads[i], vi));
        s = s ? dg_add(g, s, term) : term;
    }
    dg_node *hv[MAXL] = {0};
    dg_status st = dg_gradients(g, s, c->n, x, hv);
    CHECK_MSG(st == DG_OK, "%s: second backward: %s", what, dg_graph_error(g));
    if (st != DG_OK) goto out;
    /* second-order gradient nodes come from a later pass than the first-order ones */
    for (int i = 0; i < c->n; i++)
        if (hv[i]) CHECK(dg_node_backward_pass(hv[i]) > dg_node_backward_pass(grads[i]));

    double fd[MAXL][MAXN];
    st = fd_hvp(g, c->n, x, grads, v, fd);
    CHECK_MSG(st == DG_OK, "%s: %s", what, dg_graph_error(g));
    int targets = 0;
    dg_node *run[MAXL];
    for (int i = 0; i < c->n; i++)
        if (hv[i]) run[targets++] = hv[i];
    if (targets) CHECK_OK(dg_run_many(g, targets, run));
    double worst = 0;
    for (int i = 0; i < c->n; i++)
        for (int64_t j = 0; j < dg_node_numel(x[i]); j++) {
            double a = hv[i] ? dg_node_data(hv[i])[j] : 0.0, n = fd[i][j];
            double err = fabs(a - n);
            CHECK_MSG(err <= 2e-3 + 2e-2 * fabs(n), "%s: Hv[%d][%lld] = %.6g, finite diff %.6g",
                      what, i, (long long)j, a, n);
            if (fabs(n) > worst) worst = fabs(n);
        }
    /* the case must exercise a non-zero second derivative */
    CHECK_MSG(worst > 1e-3, "%s: Hessian-vector product is zero", what);
out:
    dg_graph_free(g);
}

static dg_node *f_add(dg_graph *g, dg_node **x) { return dg_add(g, x[0], x[1]); }
static dg_node *f_sub(dg_graph *g, dg_node **x) { return dg_sub(g, x[0], x[1]); }
static dg_node *f_mul(dg_graph *g, dg_node **x) { return dg_mul(g, x[0], x[1]); }
static dg_node *f_div(dg_graph *g, dg_node **x) { return dg_div(g, x[0], x[1]); }
static dg_node *f_matmul(dg_graph *g, dg_node **x) { return dg_matmul(g, x[0], x[1]); }
static dg_node *f_matmul_tt(dg_graph *g, dg_node **x) { return dg_matmul_t(g, x[0], x[1], 1, 1); }
static dg_node *f_matmul_tn(dg_graph *g, dg_node **x) { return dg_matmul_t(g, x[0], x[1], 1, 0); }
static dg_node *f_exp(dg_graph *g, dg_node **x) { return dg_exp(g, x[0]); }
static dg_node *f_log(dg_graph *g, dg_node **x) { return dg_log(g, x[0]); }
static dg_node *f_tanh(dg_graph *g, dg_node **x) { return dg_tanh(g, x[0]); }
static dg_node *f_sigmoid(dg_graph *g, dg_node **x) { return dg_sigmoid(g, x[0]); }
static dg_node *f_softmax(dg_graph *g, dg_node **x) { return dg_softmax(g, x[0]); }
static dg_node *f_log_softmax(dg_graph *g, dg_node **x) { return dg_log_softmax(g, x[0]); }
static dg_node *f_sum(dg_graph *g, dg_node **x) { return dg_sum(g, x[0]); }
static dg_node *f_sum_axis(dg_graph *g, dg_node **x) { return dg_sum_axis(g, x[0], 0, 0); }
static dg_node *f_mean(dg_graph *g, dg_node **x) { return dg_mean(g, x[0]); }
static dg_node *f_mean_axis(dg_graph *g, dg_node **x) { return dg_mean_axis(g, x[0], -1, 1); }
static dg_node *f_mse(dg_graph *g, dg_node **x) { return dg_mse_loss(g, x[0], x[1]); }
static dg_node *f_sqrt(dg_graph *g, dg_node **x) { return dg_sqrt(g, x[0]); }
static dg_node *f_pow3(dg_graph *g, dg_node **x) { return dg_pow(g, x[0], 3.0f); }
static dg_node *f_reshape_t(dg_graph *g, dg_node **x) {
    return dg_transpose(g, dg_reshape(g, x[0], dg_shape2(4, 3)));
}
static dg_node *f_bce(dg_graph *g, dg_node **x) {
    return dg_bce_logits_loss(g, x[0], dg_sigmoid(g, x[1]));
}
static dg_node *f_ce(dg_graph *g, dg_node **x) {
    const float labels[3] = {1, 0, 3};
    return dg_cross_entropy_loss(g, x[0], dg_const(g, "labels", dg_shape1(3), labels, 0));
}
/* a small network: tanh(x W) summed against itself through softmax */
static dg_node *f_net(dg_graph *g, dg_node **x) {
    return dg_softmax(g, dg_tanh(g, dg_matmul(g, x[0], x[1])));
}

int main(void) {
    dg_shape s34 = dg_shape2(3, 4);
    const hvp_case cases[] = {
        {"add [3,4]+[4]", f_add, 2, {s34, dg_shape1(4)}, -1, 1, SQUARED},
        {"sub [3,1]-[1,4]", f_sub, 2, {dg_shape2(3, 1), dg_shape2(1, 4)}, -1, 1, SQUARED},
        {"mul", f_mul, 2, {s34, s34}, -1, 1, BOTH},
        {"mul [3,4]*[3,1]", f_mul, 2, {s34, dg_shape2(3, 1)}, -1, 1, BOTH},
        {"div", f_div, 2, {s34, dg_shape1(4)}, 0.5f, 2, BOTH},
        {"matmul", f_matmul, 2, {dg_shape2(3, 5), dg_shape2(5, 4)}, -1, 1, BOTH},
        {"matmul A^T B^T", f_matmul_tt, 2, {dg_shape2(5, 3), dg_shape2(4, 5)}, -1, 1, BOTH},
        {"matmul A^T B", f_matmul_tn, 2, {dg_shape2(5, 3), dg_shape2(5, 4)}, -1, 1, BOTH},
        {"exp", f_exp, 1, {s34}, -1, 1, BOTH},
        {"log", f_log, 1, {s34}, 0.5f, 2, BOTH},
        {"tanh", f_tanh, 1, {s34}, -1.5f, 1.5f, BOTH},
        {"sigmoid", f_sigmoid, 1, {s34}, -2, 2, BOTH},
        {"softmax", f_softmax, 1, {s34}, -2, 2, BOTH},
        {"log_softmax", f_log_softmax, 1, {s34}, -2, 2, BOTH},
        {"sum", f_sum, 1, {s34}, -1, 1, SQUARED},
        {"sum_axis 0", f_sum_axis, 1, {s34}, -1, 1, SQUARED},
        {"mean", f_mean, 1, {s34}, -1, 1, SQUARED},
        {"mean_axis -1 keep", f_mean_axis, 1, {s34}, -1, 1, SQUARED},
        {"mse", f_mse, 2, {s34, s34}, -1, 1, BOTH},
        {"sqrt", f_sqrt, 1, {s34}, 0.5f, 2, PLAIN},
        {"pow 3", f_pow3, 1, {s34}, -1, 1, BOTH},
        {"reshape+transpose", f_reshape_t, 1, {s34}, -1, 1, SQUARED},
        {"bce_logits", f_bce, 2, {s34, s34}, -2, 2, BOTH},
        {"cross_entropy", f_ce, 1, {s34}, -2, 2, BOTH},
        {"tanh net", f_net, 2, {dg_shape2(3, 5), dg_shape2(5, 4)}, -1, 1, BOTH},
    };
    /* linear ops (add, sub, sum, mean, reshape, ...) have a zero Hessian on their own, and
     * sqrt(x)^2 = x: those run one way only */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].which & PLAIN) run_case(&cases[i], 0);
        if (cases[i].which & SQUARED) run_case(&cases[i], 1);
    }

    /* closed form: y = x^3 at x = 2 (built from mul): y' = 3x^2 = 12, y'' = 6x = 12,
     * y''' = 6; each derivative is a dg_backward of the previous gradient node */
    {
        dg_graph *g = dg_graph_new(1);
        dg_node *x = dg_param(g, "x", dg_shape0());
        dg_node_data(x)[0] = 2.0f;
        dg_node *y = dg_mul(g, dg_mul(g, x, x), x);
        const double want[3] = {12, 12, 6};
        dg_node *d = y;
        for (int k = 0; k < 3; k++) {
            CHECK_OK(dg_backward(g, d));
            dg_node *next = dg_grad(x);
            CHECK(next != NULL && next != d);
            if (!next) break;
            d = next;
            CHECK_OK(dg_run(g, d));
            CHECK_NEAR(dg_value(d), want[k], 1e-5);
        }
        dg_graph_free(g);
    }
    /* closed form: tanh'' = -2 t (1 - t^2), sigmoid'' = s (1 - s)(1 - 2 s), log'' = -1/x^2,
     * exp'' = exp, at a few points */
    {
        const float pts[3] = {-0.7f, 0.3f, 1.6f};
        for (int p = 0; p < 3; p++) {
            dg_graph *g = dg_graph_new(1);
            dg_node *x = dg_param(g, "x", dg_shape0());
            float xv = pts[p];
            dg_node_data(x)[0] = xv;
            dg_node *fs[4] = {dg_tanh(g, x), dg_sigmoid(g, x), dg_log(g, dg_shift(g, x, 1.0f)),
                              dg_exp(g, x)};
            double t = tanh(xv), s = 1 / (1 + exp(-xv));
            double want[4] = {-2 * t * (1 - t * t), s * (1 - s) * (1 - 2 * s),
                              -1 / ((xv + 1.0) * (xv + 1.0)), exp(xv)};
            for (int k = 0; k < 4; k++) {
                dg_node *g1 = NULL, *g2 = NULL;
                CHECK_OK(dg_gradients(g, fs[k], 1, &x, &g1));
                CHECK_OK(dg_gradients(g, g1, 1, &x, &g2));
                CHECK(g2 != NULL);
                if (!g2) continue;
                CHECK_OK(dg_run(g, g2));
                CHECK_MSG(fabs(dg_value(g2) - want[k]) <= 1e-5 * (1 + fabs(want[k])),
                          "f%d''(%g) = %.7g, expected %.7g", k, (double)xv, (double)dg_value(g2),
                          want[k]);
            }
            dg_graph_free(g);
        }
    }
    return test_summary("test_core_double_backward");
}
