/* Layer normalisation over the last axis (without the learned gain and bias, which the
 * layer builder adds as an ordinary mul and add). With n the size of the last axis and means
 * taken over it:
 *   y = (x - mean x) r,   r = 1 / sqrt(mean (x - mean x)^2 + eps)
 *   dx = r (dy - mean dy - y mean(dy y))
 * The backward rule rebuilds r from x with graph ops, so layer norm is twice
 * differentiable. Each row is normalised by one thread in a fixed order (two passes: mean,
 * then variance), so results do not depend on the thread count. */
#include "kernels.h"

#include <math.h>
#include <stdio.h>

typedef struct norm_attrs {
    float eps;
} norm_attrs;

static dg_status norm_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                           size_t size) {
    (void)n;
    const norm_attrs *a = attrs;
    dg_shape s = dg_node_shape(in[0]);
    char sb[64];
    if (s.ndim < 1) {
        snprintf(msg, size, "needs rank >= 1, got %s", dg_shape_str(s, sb, sizeof sb));
        return DG_ERR_SHAPE;
    }
    if (!(a->eps > 0.0f) || isinf(a->eps)) {
        snprintf(msg, size, "eps must be positive and finite, got %g", (double)a->eps);
        return DG_ERR_ARG;
    }
    *out = s;
    return DG_OK;
}

typedef struct {
    const float *x;
    float *y;
    int64_t cols;
    float eps;
} norm_ctx;

/* Element j of y depends on the whole row of x, so the op is not DG_OP_INPLACE. */
static void norm_rows(void *ctx, int64_t lo, int64_t hi) {
    const norm_ctx *c = ctx;
    const int64_t n = c->cols;
    for (int64_t r = lo; r < hi; r++) {
        const float *restrict x = c->x + r * n;
        float *restrict y = c->y + r * n;
        float sum = 0.0f;
        for (int64_t j = 0; j < n; j++) sum += x[j];
        float mean = sum / (float)n, var = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            float d = x[j] - mean;
            var += d * d;
        }
        float rstd = 1.0f / sqrtf(var / (float)n + c->eps);
        for (int64_t j = 0; j < n; j++) y[j] = (x[j] - mean) * rstd;
    }
}

static dg_status norm_forward(dg_node *self) {
    dg_node *x = self->inputs[0];
    int64_t cols = x->shape.dim[x->shape.ndim - 1];
    norm_ctx c = {x->value, self->value, cols, ((const norm_attrs *)self->attrs)->eps};
    dg_parallel_for(x->numel / cols, 5 * cols, norm_rows, &c);
    return DG_OK;
}

static dg_status norm_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *x = self->inputs[0];
    float eps = ((const norm_attrs *)self->attrs)->eps;
    dg_node *xc = dg_sub(g, x, dg_mean_axis(g, x, -1, 1));
    dg_node *r = dg_pow(g, dg_shift(g, dg_mean_axis(g, dg_mul(g, xc, xc), -1, 1), eps), -0.5f);
    dg_node *m1 = dg_mean_axis(g, dy, -1, 1);
    dg_node *m2 = dg_mean_axis(g, dg_mul(g, dy, self), -1, 1);
    dx[0] = dg_mul(g, r, dg_sub(g, dg_sub(g, dy, m1), dg_mul(g, self, m2)));
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def norm_op = {.name = "layer_norm",
                                  .n_inputs = 1,
                                  .infer_shape = norm_rule,
                                  .forward = norm_forward,
                                  .backward = norm_backward};

dg_node *dg_layer_norm(dg_graph *g, dg_node *x, float eps) {
    norm_attrs a = {eps};
    return dg__apply1(g, &norm_op, x, &a, sizeof a);
}
