/* softmax and log_softmax over the last axis, computed with the row maximum subtracted so
 * any finite logits are safe.
 *   softmax:      y = e^(x - max) / sum e^(x - max)     dx = y (dy - sum(dy y))
 *   log_softmax:  y = x - max - log sum e^(x - max)     dx = dy - e^y sum(dy)
 * (sums over the last axis, kept as size 1 so they broadcast back). */
#include "kernels.h"

#include <math.h>

static dg_status last_axis_rule(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                                size_t size) {
    (void)a, (void)msg, (void)size;
    *out = dg_node_shape(in[0]);
    return DG_OK;
}

typedef struct {
    const float *x;
    float *y;
    int64_t cols;
    int log_form;
} softmax_ctx;

static void softmax_rows(void *ctx, int64_t lo, int64_t hi) {
    const softmax_ctx *c = ctx;
    const int64_t n = c->cols;
    for (int64_t r = lo; r < hi; r++) {
        const float *restrict x = c->x + r * n;
        float *restrict y = c->y + r * n;
        float mx = x[0];
        for (int64_t j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
        float sum = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            y[j] = expf(x[j] - mx);
            sum += y[j];
        }
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
    dg__parallel_for(x->numel / cols, 4 * cols, softmax_rows, &c);
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

static const dg_op_def softmax_op = {"softmax",       1, 0, last_axis_rule, softmax_forward,
                                     softmax_backward};
static const dg_op_def log_softmax_op = {
    "log_softmax", 1, 0, last_axis_rule, log_softmax_forward, log_softmax_backward};

dg_node *dg_softmax(dg_graph *g, dg_node *x) { return dg__apply1(g, &softmax_op, x, NULL); }
dg_node *dg_log_softmax(dg_graph *g, dg_node *x) { return dg__apply1(g, &log_softmax_op, x, NULL); }
