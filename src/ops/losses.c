/* Losses as ops, each a scalar mean, computed in double for accuracy and stable for any
 * finite input. Their backward rules are built from other ops, so MSE is twice
 * differentiable. With N the number of averaged terms:
 *   mse:            mean (p - t)^2                  dp = dy 2 (p - t) / N,  dt = -dp
 *   mae:            mean |p - t|                    dp = dy sign(p - t) / N, dt = -dp
 *   bce on logits:  mean max(z,0) - z y + log(1 + e^-|z|)
 *                                                   dz = dy (sigmoid(z) - y) / N, dy_t = -dy z / N
 *   cross-entropy:  mean_rows logsumexp(z) - z[label]
 *                                                   dz = dy (softmax(z) - onehot(label)) / N
 * one_hot (used by the last) lives here too. */
#include "kernels.h"
#include "vector_math.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>

static dg_status same_shapes_rule(dg_node *const *in, int n, const void *a, dg_shape *out,
                                  char *msg, size_t size) {
    (void)n, (void)a;
    dg_shape s0 = dg_node_shape(in[0]), s1 = dg_node_shape(in[1]);
    if (!dg_shape_equal(s0, s1)) {
        char b0[64], b1[64];
        snprintf(msg, size, "prediction and target shapes differ: %s vs %s",
                 dg_shape_str(s0, b0, sizeof b0), dg_shape_str(s1, b1, sizeof b1));
        return DG_ERR_SHAPE;
    }
    *out = dg_shape0();
    return DG_OK;
}

#define OK_OR_FAIL(expr) ((expr) ? DG_OK : dg_graph_status(g))

/* Gradients dp = dy * local / N for p, and -that for t (only for inputs that need it). N is
 * the run's element count (numel_of), not the one at build time. */
static dg_status pair_grads(dg_graph *g, dg_node *self, dg_node *dy, dg_node *local, dg_node **dx) {
    dg_node *dp = dg_mul(g, dy, dg_div(g, local, dg_numel_of(g, self->inputs[0])));
    if (!dp) return dg_graph_status(g);
    if (self->inputs[0]->requires_grad) dx[0] = dp;
    if (self->inputs[1]->requires_grad && !(dx[1] = dg_neg(g, dp))) return dg_graph_status(g);
    return DG_OK;
}

/* ---- mean squared error ---- */

/* Prediction and target of the elementwise losses, for dg_parallel_sum's range sums. */
typedef struct {
    const float *p, *t;
} pair_ctx;

static double mse_sum(void *ctx, int64_t lo, int64_t hi) {
    const pair_ctx *c = ctx;
    double acc = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        double d = (double)c->p[i] - c->t[i];
        acc += d * d;
    }
    return acc;
}

static dg_status mse_forward(dg_node *self) {
    pair_ctx c = {self->inputs[0]->value, self->inputs[1]->value};
    int64_t n = self->inputs[0]->numel;
    self->value[0] = (float)(dg_parallel_sum(n, 3, mse_sum, &c) / (double)n);
    return DG_OK;
}

static dg_status mse_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *diff = dg_scale(g, dg_sub(g, self->inputs[0], self->inputs[1]), 2.0f);
    return diff ? pair_grads(g, self, dy, diff, dx) : dg_graph_status(g);
}

static const dg_op_def mse_op = {.name = "mse_loss",
                                 .n_inputs = 2,
                                 .infer_shape = same_shapes_rule,
                                 .forward = mse_forward,
                                 .backward = mse_backward};
dg_node *dg_mse_loss(dg_graph *g, dg_node *p, dg_node *t) {
    return dg__apply2(g, &mse_op, p, t, NULL, 0);
}

/* ---- mean absolute error ---- */

static double mae_sum(void *ctx, int64_t lo, int64_t hi) {
    const pair_ctx *c = ctx;
    double acc = 0.0;
    for (int64_t i = lo; i < hi; i++) acc += fabs((double)c->p[i] - c->t[i]);
    return acc;
}

static dg_status mae_forward(dg_node *self) {
    pair_ctx c = {self->inputs[0]->value, self->inputs[1]->value};
    int64_t n = self->inputs[0]->numel;
    self->value[0] = (float)(dg_parallel_sum(n, 3, mae_sum, &c) / (double)n);
    return DG_OK;
}

static dg_status mae_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *sign = dg_sign(g, dg_sub(g, self->inputs[0], self->inputs[1]));
    return sign ? pair_grads(g, self, dy, sign, dx) : dg_graph_status(g);
}

static const dg_op_def mae_op = {.name = "mae_loss",
                                 .n_inputs = 2,
                                 .infer_shape = same_shapes_rule,
                                 .forward = mae_forward,
                                 .backward = mae_backward};
dg_node *dg_mae_loss(dg_graph *g, dg_node *p, dg_node *t) {
    return dg__apply2(g, &mae_op, p, t, NULL, 0);
}

/* ---- binary cross-entropy on logits ---- */

static double bce_sum(void *ctx, int64_t lo, int64_t hi) {
    const pair_ctx *c = ctx;
    double acc = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        double zi = c->p[i];
        acc += (zi > 0 ? zi : 0) - zi * c->t[i] + log1p(exp(-fabs(zi)));
    }
    return acc;
}

static dg_status bce_forward(dg_node *self) {
    pair_ctx c = {self->inputs[0]->value, self->inputs[1]->value};
    int64_t n = self->inputs[0]->numel;
    self->value[0] = (float)(dg_parallel_sum(n, 40, bce_sum, &c) / (double)n);
    return DG_OK;
}

static dg_status bce_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *z = self->inputs[0], *y = self->inputs[1];
    dg_node *n = dg_numel_of(g, z);
    if (z->requires_grad && !(dx[0] = dg_mul(g, dy, dg_div(g, dg_sub(g, dg_sigmoid(g, z), y), n))))
        return dg_graph_status(g);
    if (y->requires_grad && !(dx[1] = dg_mul(g, dy, dg_div(g, dg_neg(g, z), n))))
        return dg_graph_status(g);
    return DG_OK;
}

static const dg_op_def bce_op = {.name = "bce_logits_loss",
                                 .n_inputs = 2,
                                 .infer_shape = same_shapes_rule,
                                 .forward = bce_forward,
                                 .backward = bce_backward};
dg_node *dg_bce_logits_loss(dg_graph *g, dg_node *z, dg_node *y) {
    return dg__apply2(g, &bce_op, z, y, NULL, 0);
}

/* ---- one-hot rows from integer labels ---- */

/* Checks that every label is an integer in [0, classes); reports the first bad one. */
static dg_status check_labels(dg_node *self, const dg_node *labels, int64_t classes) {
    for (int64_t i = 0; i < labels->numel; i++) {
        float l = labels->value[i];
        if (!(l >= 0.0f && l < (float)classes && l == floorf(l)))
            return dg_set_error(self->graph, DG_ERR_ARG,
                                "%s: label %g at row %lld is not an integer class in [0,%lld)",
                                self->op->name, (double)l, (long long)i, (long long)classes);
    }
    return DG_OK;
}

typedef struct one_hot_attrs {
    int64_t classes;
} one_hot_attrs;

static const dg_attr_field one_hot_fields[] = {
    {"classes", DG_ATTR_INT64, offsetof(one_hot_attrs, classes), 1}, {NULL, DG_ATTR_INT, 0, 0}};

static dg_status one_hot_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                              char *msg, size_t size) {
    (void)n;
    const one_hot_attrs *a = attrs;
    dg_shape s = dg_node_shape(in[0]);
    if (s.ndim != 1 || a->classes < 1) {
        char sb[64];
        snprintf(msg, size, "needs labels of shape [N] and classes >= 1, got %s and %lld",
                 dg_shape_str(s, sb, sizeof sb), (long long)a->classes);
        return DG_ERR_SHAPE;
    }
    *out = dg_shape2(s.dim[0], a->classes);
    return DG_OK;
}

static dg_status one_hot_forward(dg_node *self) {
    dg_node *labels = self->inputs[0];
    int64_t classes = ((const one_hot_attrs *)self->attrs)->classes;
    dg_status s = check_labels(self, labels, classes);
    if (s != DG_OK) return s;
    for (int64_t i = 0; i < self->numel; i++) self->value[i] = 0.0f;
    for (int64_t r = 0; r < labels->numel; r++)
        self->value[r * classes + (int64_t)labels->value[r]] = 1.0f;
    return DG_OK;
}

static const dg_op_def one_hot_op = {.name = "one_hot",
                                     .n_inputs = 1,
                                     .flags = DG_OP_NO_GRAD,
                                     .infer_shape = one_hot_rule,
                                     .forward = one_hot_forward,
                                     .attr_fields = one_hot_fields};
dg_node *dg_one_hot(dg_graph *g, dg_node *labels, int64_t classes) {
    one_hot_attrs a = {classes};
    return dg__apply1(g, &one_hot_op, labels, &a, sizeof a);
}

/* ---- categorical cross-entropy on logits with integer labels ---- */

static dg_status ce_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                         size_t size) {
    (void)n, (void)a;
    dg_shape z = dg_node_shape(in[0]), l = dg_node_shape(in[1]);
    if (z.ndim != 2 || l.ndim != 1 || l.dim[0] != z.dim[0]) {
        char b0[64], b1[64];
        snprintf(msg, size, "needs logits [N,C] and labels [N], got %s and %s",
                 dg_shape_str(z, b0, sizeof b0), dg_shape_str(l, b1, sizeof b1));
        return DG_ERR_SHAPE;
    }
    *out = dg_shape0();
    return DG_OK;
}

typedef struct {
    const float *z, *labels;
    int64_t cols;
} ce_ctx;

/* Sum over rows [lo, hi) of logsumexp(z_r) - z_r[label_r]: the exponentials in float,
 * a chunk at a time (that loop vectorises), summed in double, in order. */
DG_VECTOR_CLONES static double ce_sum(void *ctx, int64_t lo, int64_t hi) {
    const ce_ctx *c = ctx;
    const int64_t cols = c->cols;
    enum { CHUNK = 64 };
    float e[CHUNK];
    double acc = 0.0;
    for (int64_t r = lo; r < hi; r++) {
        const float *z = c->z + r * cols;
        float mx = z[0];
        for (int64_t j = 1; j < cols; j++) mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int64_t j0 = 0; j0 < cols; j0 += CHUNK) {
            const int64_t n = cols - j0 < CHUNK ? cols - j0 : CHUNK;
            for (int64_t j = 0; j < n; j++) e[j] = dg__expf(z[j0 + j] - mx);
            for (int64_t j = 0; j < n; j++) sum += e[j];
        }
        acc += mx + log(sum) - z[(int64_t)c->labels[r]];
    }
    return acc;
}

static dg_status ce_forward(dg_node *self) {
    dg_node *zn = self->inputs[0], *labels = self->inputs[1];
    int64_t rows = zn->shape.dim[0], cols = zn->shape.dim[1];
    dg_status s = check_labels(self, labels, cols);
    if (s != DG_OK) return s;
    ce_ctx c = {zn->value, labels->value, cols};
    self->value[0] = (float)(dg_parallel_sum(rows, 20 * cols, ce_sum, &c) / (double)rows);
    return DG_OK;
}

static dg_status ce_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *z = self->inputs[0], *labels = self->inputs[1];
    if (!z->requires_grad) return DG_OK;
    dg_node *diff = dg_sub(g, dg_softmax(g, z), dg_one_hot(g, labels, z->shape.dim[1]));
    return OK_OR_FAIL(dx[0] = dg_mul(g, dy, dg_div(g, diff, dg_dim_of(g, z, 0))));
}

static const dg_op_def ce_op = {.name = "cross_entropy_loss",
                                .n_inputs = 2,
                                .infer_shape = ce_rule,
                                .forward = ce_forward,
                                .backward = ce_backward};
dg_node *dg_cross_entropy_loss(dg_graph *g, dg_node *logits, dg_node *labels) {
    return dg__apply2(g, &ce_op, logits, labels, NULL, 0);
}
