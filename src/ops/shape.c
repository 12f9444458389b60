/* Shape ops: reshape (same data, new shape; one dimension may be -1 and is then inferred,
 * as in NumPy), reshape_like (the shape of a reference node, read for its shape only) and
 * transpose (swap the last two axes).
 *   reshape:    dx = reshape_like(dy, x)     (so it follows a run's batch size)
 *   transpose:  dx = transpose(dy)
 * Reshapes are views: the planner lets the output share its input's buffer, and forward
 * copies only when the output was given a buffer of its own (a kept result). */
#include "kernels.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct reshape_attrs {
    dg_shape shape; /* may hold one -1 */
} reshape_attrs;

static const dg_attr_field reshape_fields[] = {
    {"shape", DG_ATTR_SHAPE, offsetof(reshape_attrs, shape), 1}, {NULL, DG_ATTR_INT, 0, 0}};

static dg_status reshape_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                              char *msg, size_t size) {
    (void)n;
    const reshape_attrs *a = attrs;
    dg_shape t = a->shape;
    int64_t numel = dg_node_numel(in[0]), known = 1;
    int infer = -1;
    char s1[64], s2[64];
    int ok = t.ndim >= 0 && t.ndim <= DG_MAX_DIMS;
    for (int i = 0; ok && i < t.ndim; i++) {
        if (t.dim[i] == -1 && infer < 0)
            infer = i;
        else if (t.dim[i] < 1)
            ok = 0;
        else if (known > ((int64_t)1 << 40) / t.dim[i])
            ok = 0;
        else
            known *= t.dim[i];
    }
    if (ok && infer >= 0) {
        ok = numel % known == 0;
        if (ok) t.dim[infer] = numel / known;
    }
    if (!ok || dg_shape_numel(t) != numel) {
        snprintf(msg, size, "cannot reshape %s (%lld elements) to %s",
                 dg_shape_str(dg_node_shape(in[0]), s1, sizeof s1), (long long)numel,
                 dg_shape_str(a->shape, s2, sizeof s2));
        return DG_ERR_SHAPE;
    }
    *out = t;
    return DG_OK;
}

static dg_status reshape_like_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                                   char *msg, size_t size) {
    (void)n;
    reshape_attrs a = {dg_node_shape(in[1])};
    (void)attrs;
    return reshape_rule(in, 1, &a, out, msg, size);
}

static dg_status reshape_forward(dg_node *self) {
    if (self->value != self->inputs[0]->value)
        memcpy(self->value, self->inputs[0]->value, (size_t)self->numel * sizeof(float));
    return DG_OK;
}

static dg_status reshape_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg_reshape_like(g, dy, self->inputs[0]);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def reshape_op = {.name = "reshape",
                                     .n_inputs = 1,
                                     .flags = DG_OP_VIEW,
                                     .infer_shape = reshape_rule,
                                     .forward = reshape_forward,
                                     .backward = reshape_backward,
                                     .attr_fields = reshape_fields};

static const dg_op_def reshape_like_op = {.name = "reshape_like",
                                          .n_inputs = 2,
                                          .flags = DG_OP_VIEW,
                                          .shape_only = 1u << 1,
                                          .infer_shape = reshape_like_rule,
                                          .forward = reshape_forward,
                                          .backward = reshape_backward};

dg_node *dg_reshape(dg_graph *g, dg_node *x, dg_shape shape) {
    reshape_attrs a = {shape};
    return dg__apply1(g, &reshape_op, x, &a, sizeof a);
}

dg_node *dg_reshape_like(dg_graph *g, dg_node *x, dg_node *like) {
    return dg__apply2(g, &reshape_like_op, x, like, NULL, 0);
}

/* ---- transpose of the last two axes: dx = transpose(dy) ---- */

static dg_status transpose_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                                size_t size) {
    (void)n, (void)a;
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
    dg_parallel_for(x->numel / (c.rows * c.cols), c.rows * c.cols, transpose_range, &c);
    return DG_OK;
}

static dg_status transpose_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    (void)self;
    dx[0] = dg_transpose(g, dy);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def transpose_op = {.name = "transpose",
                                       .n_inputs = 1,
                                       .infer_shape = transpose_rule,
                                       .forward = transpose_forward,
                                       .backward = transpose_backward};

dg_node *dg_transpose(dg_graph *g, dg_node *x) { return dg__apply1(g, &transpose_op, x, NULL, 0); }
