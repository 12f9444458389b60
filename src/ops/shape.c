/* Shape ops: reshape (same data, new shape) and transpose (swap the last two axes). */
#include "kernels.h"

#include <stdio.h>
#include <string.h>

/* ---- reshape: dx = reshape(dy, shape of x) ---- */

static dg_status reshape_rule(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                              size_t size) {
    int64_t n = dg_shape_numel(a->shape);
    if (n != dg_node_numel(in[0])) {
        char s1[64], s2[64];
        snprintf(msg, size, "cannot reshape %s (%lld elements) to %s",
                 dg_shape_str(dg_node_shape(in[0]), s1, sizeof s1), (long long)dg_node_numel(in[0]),
                 dg_shape_str(a->shape, s2, sizeof s2));
        return DG_ERR_SHAPE;
    }
    *out = a->shape;
    return DG_OK;
}

static dg_status reshape_forward(dg_node *self) {
    memcpy(self->value, self->inputs[0]->value, (size_t)self->numel * sizeof(float));
    return DG_OK;
}

static dg_status reshape_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg_reshape(g, dy, self->inputs[0]->shape);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def reshape_op = {"reshape",       1, 0, reshape_rule, reshape_forward,
                                     reshape_backward};

dg_node *dg_reshape(dg_graph *g, dg_node *x, dg_shape shape) {
    dg_attrs a = {0};
    a.shape = shape;
    return dg__apply1(g, &reshape_op, x, &a);
}

/* ---- transpose of the last two axes: dx = transpose(dy) ---- */

static dg_status transpose_rule(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                                size_t size) {
    (void)a;
    dg_shape s = dg_node_shape(in[0]);
    if (s.ndim < 2) {
        char sb[64];
        snprintf(msg, size, "needs rank >= 2, got %s", dg_shape_str(s, sb, sizeof sb));
        return DG_ERR_SHAPE;
    }
    int64_t t = s.dim[s.ndim - 1];
    s.dim[s.ndim - 1] = s.dim[s.ndim - 2];
    s.dim[s.ndim - 2] = t;
    *out = s;
    return DG_OK;
}

typedef struct {
    const float *x;
    float *y;
    int64_t rows, cols; /* of the input matrices */
} transpose_ctx;

static void transpose_range(void *ctx, int64_t lo, int64_t hi) {
    transpose_ctx *c = ctx;
    int64_t mat = c->rows * c->cols;
    for (int64_t m = lo; m < hi; m++) {
        const float *x = c->x + m * mat;
        float *y = c->y + m * mat;
        for (int64_t i0 = 0; i0 < c->rows; i0 += 32)
            for (int64_t j0 = 0; j0 < c->cols; j0 += 32)
                for (int64_t i = i0; i < i0 + 32 && i < c->rows; i++)
                    for (int64_t j = j0; j < j0 + 32 && j < c->cols; j++)
                        y[j * c->rows + i] = x[i * c->cols + j];
    }
}

static dg_status transpose_forward(dg_node *self) {
    dg_node *x = self->inputs[0];
    int nd = x->shape.ndim;
    transpose_ctx c = {x->value, self->value, x->shape.dim[nd - 2], x->shape.dim[nd - 1]};
    dg__parallel_for(x->numel / (c.rows * c.cols), c.rows * c.cols, transpose_range, &c);
    return DG_OK;
}

static dg_status transpose_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    (void)self;
    dx[0] = dg_transpose(g, dy);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def transpose_op = {"transpose",       1, 0, transpose_rule, transpose_forward,
                                       transpose_backward};

dg_node *dg_transpose(dg_graph *g, dg_node *x) { return dg__apply1(g, &transpose_op, x, NULL); }
