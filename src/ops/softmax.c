/* softmax and log_softmax over the last axis, computed with the row maximum subtracted so
 * any finite logits are safe.
 *   softmax:      y = e^(x - max) / sum e^(x - max)     dx = y (dy - sum(dy y))
 *   log_softmax:  y = x - max - log sum e^(x - max)     dx = dy - e^y sum(dy)
 * (sums over the last axis, kept as size 1 so they broadcast back). */
#include "kernels.h"
#include "vector_clones.h"
#include "vector_math.h"

#include <math.h>

typedef struct {
    const float *x;
    float *y;
    int64_t cols;
    int log_form;
} softmax_ctx;

DG_VECTOR_CLONES static void softmax_rows(void *ctx, int64_t lo, int64_t hi) {
    const softmax_ctx *c = ctx;
    const int64_t n = c->cols;
    for (int64_t r = lo; r < hi; r++) {
        const float *restrict x = c->x + r * n;
        float *restrict y = c->y + r * n;
        float mx = x[0];
        for (int64_t j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
        /* the exponentials in one loop (it vectorises), their sum in order in another */
        for (int64_t j = 0; j < n; j++) y[j] = dg__expf(x[j] - mx);
        float sum = 0.0f;
        for (int64_t j = 0; j < n; j++) sum += y[j];
        if (c->log_form) {
            /* (x - max) - log sum, not x - (max + log sum): for large logits the rounding
             * of max + log sum would cost the result its low bits */
            float log_sum = logf(sum);
            for (int64_t j = 0; j < n; j++) y[j] = (x[j] - mx) - log_sum;
        } else {
            float inv = 1.0f / sum;
            for (int64_t j = 0; j < n; j++) y[j] *= inv;
        }
    }
}

static dg_status softmax_run(dg_node *self, int log_form) {
    dg_node *x = self->inputs[0];
    int64_t cols = x->shape.ndim ? x->shape.dim[x->shape.ndim - 1] : 1;
    softmax_ctx c = {x->value, self->value, cols, log_form};
    dg_parallel_for(x->numel / cols, 4 * cols, softmax_rows, &c);
    return DG_OK;
}

static dg_status softmax_forward(dg_node *self) { return softmax_run(self, 0); }
static dg_status log_softmax_forward(dg_node *self) { return softmax_run(self, 1); }

static dg_status softmax_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *dot = dg_sum_axis(g, dg_mul(g, dy, self), -1, 1);
    dx[0] = dg_mul(g, self, dg_sub(g, dy, dot));
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static dg_status log_softmax_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *total = dg_sum_axis(g, dy, -1, 1);
    dx[0] = dg_sub(g, dy, dg_mul(g, dg_exp(g, self), total));
    return dx[0] ? DG_OK : dg_graph_status(g);
}

/* Not DG_OP_INPLACE: a row's outputs are written before all of its inputs are read. */
static const dg_op_def softmax_op = {.name = "softmax",
                                     .n_inputs = 1,
                                     .infer_shape = dg_rule_same_shape,
                                     .forward = softmax_forward,
                                     .backward = softmax_backward};
static const dg_op_def log_softmax_op = {.name = "log_softmax",
                                         .n_inputs = 1,
                                         .infer_shape = dg_rule_same_shape,
                                         .forward = log_softmax_forward,
                                         .backward = log_softmax_backward};

dg_node *dg_softmax(dg_graph *g, dg_node *x) { return dg__apply1(g, &softmax_op, x, NULL, 0); }
dg_node *dg_log_softmax(dg_graph *g, dg_node *x) {
    return dg__apply1(g, &log_softmax_op, x, NULL, 0);
}
