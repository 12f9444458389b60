/* Joining and cutting tensors along an axis: concat, stack, slice, and slice's mirror pad.
 *   concat (x_1..x_n; axis):  y = the inputs side by side along `axis` (other axes equal)
 *                             dx_k = slice(dy, axis, offset_k, size_k)
 *   stack (x_1..x_n; axis):   y = the inputs (all the same shape) along a new axis `axis`
 *                             dx_k = reshape_like(slice(dy, axis, k, 1), x_k)
 *   slice (x; axis, start, len):  y = x[..., start : start + len, ...]
 *                             dx = pad(dy, like x): zeros with dy at [start, start + len)
 *   pad (d, x; axis, start):  y = zeros shaped like x (read for its shape only) with d placed
 *                             at `start` along `axis`                dd = slice(dy, ...)
 * concat and stack are one variadic op (an unrolled sequence of T steps is one node). All
 * four copy rows: with `outer` the product of the dimensions before the axis, each input is
 * `outer` contiguous chunks, and the output interleaves them. */
#include "kernels.h"

#include <stdio.h>
#include <string.h>

typedef struct join_attrs {
    int axis;  /* resolved: 0 .. rank-1 of the output */
    int stack; /* 1: a new axis (stack), 0: an existing one (concat) */
} join_attrs;

static int64_t prod(const dg_shape *s, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= s->dim[i];
    return p;
}

static dg_status join_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                           size_t size) {
    const join_attrs *a = attrs;
    dg_shape s0 = dg_node_shape(in[0]);
    char b0[64], bk[64];
    int rank = s0.ndim + (a->stack ? 1 : 0);
    if (a->axis < 0 || a->axis >= rank || rank > DG_MAX_DIMS) {
        snprintf(msg, size, "axis %d is out of range for %d inputs of shape %s", a->axis, n,
                 dg_shape_str(s0, b0, sizeof b0));
        return DG_ERR_ARG;
    }
    dg_shape r = s0;
    if (a->stack) {
        for (int i = rank - 1; i > a->axis; i--) r.dim[i] = s0.dim[i - 1];
        r.dim[a->axis] = n;
        r.ndim = rank;
    }
    for (int k = 1; k < n; k++) {
        dg_shape sk = dg_node_shape(in[k]);
        int ok = sk.ndim == s0.ndim;
        for (int i = 0; ok && i < s0.ndim; i++)
            ok = sk.dim[i] == s0.dim[i] || (!a->stack && i == a->axis);
        if (!ok) {
            snprintf(msg, size,
                     "input %d has shape %s, input 0 %s (%s along axis %d, all others equal)", k,
                     dg_shape_str(sk, bk, sizeof bk), dg_shape_str(s0, b0, sizeof b0),
                     a->stack ? "all equal to stack them" : "only the sizes may differ", a->axis);
            return DG_ERR_SHAPE;
        }
        if (!a->stack) r.dim[a->axis] += sk.dim[a->axis];
    }
    *out = r;
    return DG_OK;
}

typedef struct {
    dg_node *self;
    int64_t row; /* output floats per outer index */
} join_ctx;

static void join_range(void *ctx, int64_t lo, int64_t hi) {
    const join_ctx *c = ctx;
    dg_node *self = c->self;
    const join_attrs *a = self->attrs;
    int64_t off = 0;
    for (int k = 0; k < self->n_inputs; k++) {
        dg_node *x = self->inputs[k];
        int64_t chunk = prod(&x->shape, a->axis, x->shape.ndim);
        for (int64_t o = lo; o < hi; o++)
            memcpy(self->value + o * c->row + off, x->value + o * chunk,
                   (size_t)chunk * sizeof(float));
        off += chunk;
    }
}

static dg_status join_forward(dg_node *self) {
    const join_attrs *a = self->attrs;
    int64_t outer = prod(&self->shape, 0, a->axis);
    join_ctx c = {self, self->numel / outer};
    dg_parallel_for(outer, c.row, join_range, &c);
    return DG_OK;
}

static dg_status join_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    const join_attrs *a = self->attrs;
    int64_t at = 0;
    for (int k = 0; k < self->n_inputs; k++) {
        dg_node *x = self->inputs[k];
        int64_t len = a->stack ? 1 : x->shape.dim[a->axis];
        if (x->requires_grad) {
            dg_node *s = dg_slice(g, dy, a->axis, at, len);
            if (a->stack) s = dg_reshape_like(g, s, x);
            if (!(dx[k] = s)) return dg_graph_status(g);
        }
        at += len;
    }
    return DG_OK;
}

static const dg_op_def join_op = {.name = "concat",
                                  .n_inputs = DG_VARIADIC,
                                  .infer_shape = join_rule,
                                  .forward = join_forward,
                                  .backward = join_backward};

static const dg_op_def stack_op = {.name = "stack",
                                   .n_inputs = DG_VARIADIC,
                                   .infer_shape = join_rule,
                                   .forward = join_forward,
                                   .backward = join_backward};

static dg_node *join(dg_graph *g, const char *who, int n, dg_node *const *xs, int axis, int stack) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "%s: graph is NULL", who), NULL;
    if (n < 1 || !xs)
        return dg_set_error(g, DG_ERR_ARG, "%s: needs at least one input, got %d", who, n), NULL;
    for (int k = 0; k < n; k++)
        if (!xs[k]) return dg_apply(g, stack ? &stack_op : &join_op, n, xs, NULL, 0);
    int rank = dg_node_shape(xs[0]).ndim + (stack ? 1 : 0);
    join_attrs a = {axis < 0 ? axis + rank : axis, stack};
    return dg_apply(g, stack ? &stack_op : &join_op, n, xs, &a, sizeof a);
}

dg_node *dg_concat(dg_graph *g, int n, dg_node *const *xs, int axis) {
    return join(g, "concat", n, xs, axis, 0);
}

dg_node *dg_stack(dg_graph *g, int n, dg_node *const *xs, int axis) {
    return join(g, "stack", n, xs, axis, 1);
}

/* ---- slice and pad ---- */

typedef struct slice_attrs {
    int axis; /* resolved */
    int64_t start, len;
} slice_attrs;

static dg_status slice_check(dg_shape x, const slice_attrs *a, char *msg, size_t size) {
    char sb[64];
    if (a->axis < 0 || a->axis >= x.ndim) {
        snprintf(msg, size, "axis %d is out of range for shape %s", a->axis,
                 dg_shape_str(x, sb, sizeof sb));
        return DG_ERR_ARG;
    }
    if (a->start < 0 || a->len < 1 || a->start + a->len > x.dim[a->axis]) {
        snprintf(msg, size, "[%lld, %lld) along axis %d is outside shape %s (size %lld there)",
                 (long long)a->start, (long long)(a->start + a->len), a->axis,
                 dg_shape_str(x, sb, sizeof sb), (long long)x.dim[a->axis]);
        return DG_ERR_SHAPE;
    }
    return DG_OK;
}

static dg_status slice_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                            size_t size) {
    (void)n;
    const slice_attrs *a = attrs;
    dg_shape x = dg_node_shape(in[0]);
    dg_status s = slice_check(x, a, msg, size);
    if (s != DG_OK) return s;
    x.dim[a->axis] = a->len;
    *out = x;
    return DG_OK;
}

/* inputs: d (the slice), x (shape only): the output has x's shape */
static dg_status pad_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                          size_t size) {
    (void)n;
    const slice_attrs *a = attrs;
    dg_shape d = dg_node_shape(in[0]), x = dg_node_shape(in[1]);
    dg_status s = slice_check(x, a, msg, size);
    if (s != DG_OK) return s;
    dg_shape want = x;
    want.dim[a->axis] = a->len;
    if (!dg_shape_equal(d, want)) {
        char sd[64], sx[64];
        snprintf(msg, size, "%s is not the slice [%lld, %lld) along axis %d of %s",
                 dg_shape_str(d, sd, sizeof sd), (long long)a->start,
                 (long long)(a->start + a->len), a->axis, dg_shape_str(x, sx, sizeof sx));
        return DG_ERR_SHAPE;
    }
    *out = x;
    return DG_OK;
}

/* Copies between the full tensor (rows of `full` floats) and the slice (rows of `part`
 * floats starting at `skip` within each full row). */
typedef struct {
    float *full;
    float *part;
    int64_t full_row, part_row, skip;
    int to_full;
} cut_ctx;

static void cut_range(void *ctx, int64_t lo, int64_t hi) {
    const cut_ctx *c = ctx;
    for (int64_t o = lo; o < hi; o++) {
        float *f = c->full + o * c->full_row, *p = c->part + o * c->part_row;
        if (c->to_full) {
            memset(f, 0, (size_t)c->skip * sizeof(float));
            memcpy(f + c->skip, p, (size_t)c->part_row * sizeof(float));
            memset(f + c->skip + c->part_row, 0,
                   (size_t)(c->full_row - c->skip - c->part_row) * sizeof(float));
        } else {
            memcpy(p, f + c->skip, (size_t)c->part_row * sizeof(float));
        }
    }
}

static void cut(dg_node *full, dg_node *part, const slice_attrs *a, int to_full, float *full_v,
                float *part_v) {
    int64_t outer = prod(&full->shape, 0, a->axis);
    int64_t inner = prod(&full->shape, a->axis + 1, full->shape.ndim);
    cut_ctx c = {full_v, part_v, full->numel / outer, a->len * inner, a->start * inner, to_full};
    (void)part;
    dg_parallel_for(outer, c.full_row, cut_range, &c);
}

static dg_status slice_forward(dg_node *self) {
    cut(self->inputs[0], self, self->attrs, 0, self->inputs[0]->value, self->value);
    return DG_OK;
}

static dg_status pad_forward(dg_node *self) {
    cut(self, self->inputs[0], self->attrs, 1, self->value, self->inputs[0]->value);
    return DG_OK;
}

static dg_node *pad(dg_graph *g, dg_node *d, dg_node *like, const slice_attrs *a);

static dg_status slice_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = pad(g, dy, self->inputs[0], self->attrs);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static dg_status pad_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    const slice_attrs *a = self->attrs;
    dx[0] = dg_slice(g, dy, a->axis, a->start, a->len);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def slice_op = {.name = "slice",
                                   .n_inputs = 1,
                                   .infer_shape = slice_rule,
                                   .forward = slice_forward,
                                   .backward = slice_backward};

static const dg_op_def pad_op = {.name = "pad",
                                 .n_inputs = 2,
                                 .shape_only = 1u << 1,
                                 .infer_shape = pad_rule,
                                 .forward = pad_forward,
                                 .backward = pad_backward};

static dg_node *pad(dg_graph *g, dg_node *d, dg_node *like, const slice_attrs *a) {
    return dg__apply2(g, &pad_op, d, like, a, sizeof *a);
}

dg_node *dg_slice(dg_graph *g, dg_node *x, int axis, int64_t start, int64_t len) {
    int nd = dg_node_shape(x).ndim;
    slice_attrs a = {axis < 0 && x ? axis + nd : axis, start, len};
    return dg__apply1(g, &slice_op, x, &a, sizeof a);
}

dg_status dg_split(dg_graph *g, dg_node *x, int axis, int n, dg_node **out) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "split: graph is NULL");
    if (!out || n < 1) return dg_set_error(g, DG_ERR_ARG, "split: needs n >= 1 and out, got %d", n);
    for (int k = 0; k < n; k++) out[k] = NULL;
    if (!x)
        return dg_set_error(g, dg_graph_status(g) != DG_OK ? dg_graph_status(g) : DG_ERR_NULL,
                            "split: input is NULL%s%.400s%s",
                            dg_graph_error(g)[0] ? " (after: " : "", dg_graph_error(g),
                            dg_graph_error(g)[0] ? ")" : "");
    dg_shape s = dg_node_shape(x);
    int ax = axis < 0 ? axis + s.ndim : axis;
    char sb[64];
    if (ax < 0 || ax >= s.ndim || s.dim[ax] % n != 0)
        return dg_set_error(g, ax < 0 || ax >= s.ndim ? DG_ERR_ARG : DG_ERR_SHAPE,
                            "split: cannot cut %s into %d equal parts along axis %d",
                            dg_shape_str(s, sb, sizeof sb), n, axis);
    dg_mark m = dg_graph_mark(g);
    int64_t len = s.dim[ax] / n;
    for (int k = 0; k < n; k++)
        if (!(out[k] = dg_slice(g, x, ax, k * len, len))) {
            for (int j = 0; j <= k; j++) out[j] = NULL;
            return dg_graph_rollback(g, m, "split");
        }
    return DG_OK;
}

dg_status dg_unstack(dg_graph *g, dg_node *x, int axis, dg_node **out) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "unstack: graph is NULL");
    if (!out) return dg_set_error(g, DG_ERR_NULL, "unstack: out is NULL");
    if (!x)
        return dg_set_error(g, dg_graph_status(g) != DG_OK ? dg_graph_status(g) : DG_ERR_NULL,
                            "unstack: input is NULL");
    dg_shape s = dg_node_shape(x);
    int ax = axis < 0 ? axis + s.ndim : axis;
    char sb[64];
    if (ax < 0 || ax >= s.ndim || s.ndim < 2)
        return dg_set_error(g, DG_ERR_ARG, "unstack: axis %d of %s (needs rank >= 2)", axis,
                            dg_shape_str(s, sb, sizeof sb));
    /* the pieces drop the axis; a leading dimension other than it follows the run (-1) */
    dg_shape piece = s;
    for (int i = ax; i + 1 < s.ndim; i++) piece.dim[i] = s.dim[i + 1];
    piece.ndim--;
    if (ax > 0) piece.dim[0] = -1;
    dg_mark m = dg_graph_mark(g);
    for (int64_t k = 0; k < s.dim[ax]; k++)
        if (!(out[k] = dg_reshape(g, dg_slice(g, x, ax, k, 1), piece))) {
            for (int64_t j = 0; j <= k; j++) out[j] = NULL;
            return dg_graph_rollback(g, m, "unstack");
        }
    return DG_OK;
}
