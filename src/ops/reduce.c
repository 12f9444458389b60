/* Reductions and their mirror image: sum_to (sum over broadcast axes) and broadcast_to
 * (repeat along them) are each other's backward. sum, sum_axis, mean and mean_axis are
 * built from them. Summation order is fixed, so results do not depend on thread count. */
#include "kernels.h"

#include <stdio.h>
#include <string.h>

/* `small` broadcasts to `big` (right-aligned, every axis equal or 1 in small). */
static dg_status check_broadcastable(dg_shape small, dg_shape big, char *msg, size_t size) {
    char s1[64], s2[64];
    int64_t ds[4], db[4];
    /* validate both ranks before padding: a rank outside 0..4 would index past dim[] */
    int ok = dg_shape_numel(small) > 0 && dg_shape_numel(big) > 0 && small.ndim <= big.ndim;
    if (ok) {
        dg__shape_pad4(small, ds);
        dg__shape_pad4(big, db);
    }
    for (int i = 0; i < 4 && ok; i++) ok = ds[i] == db[i] || ds[i] == 1;
    if (ok) return DG_OK;
    snprintf(msg, size, "%s does not broadcast to %s", dg_shape_str(small, s1, sizeof s1),
             dg_shape_str(big, s2, sizeof s2));
    return DG_ERR_SHAPE;
}

/* ---- sum_to: y = sum of x over the axes where the target is 1 ---- */

static dg_status sum_to_rule(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                             size_t size) {
    dg_status s = check_broadcastable(a->shape, dg_node_shape(in[0]), msg, size);
    if (s == DG_OK) *out = a->shape;
    return s;
}

/* Fixed-size blocks of a full sum, summed in double, then combined in block order. */
#define SUM_BLOCK 8192
typedef struct {
    const float *x;
    int64_t n;
    double *partial;
} full_sum_ctx;

static void full_sum_range(void *ctx, int64_t lo, int64_t hi) {
    full_sum_ctx *c = ctx;
    for (int64_t blk = lo; blk < hi; blk++) {
        int64_t b = blk * SUM_BLOCK, e = b + SUM_BLOCK < c->n ? b + SUM_BLOCK : c->n;
        double acc = 0.0;
        for (int64_t i = b; i < e; i++) acc += c->x[i];
        c->partial[blk] = acc;
    }
}

static float full_sum(const float *x, int64_t n) {
    double partial[256];
    int64_t blocks = (n + SUM_BLOCK - 1) / SUM_BLOCK;
    if (blocks > 256) {
        /* very large tensors: sum groups of blocks recursively, still in fixed order */
        int64_t group = (blocks + 255) / 256 * SUM_BLOCK;
        double acc = 0.0;
        for (int64_t b = 0; b < n; b += group)
            acc += full_sum(x + b, n - b < group ? n - b : group);
        return (float)acc;
    }
    full_sum_ctx c = {x, n, partial};
    dg__parallel_for(blocks, SUM_BLOCK, full_sum_range, &c);
    double acc = 0.0;
    for (int64_t b = 0; b < blocks; b++) acc += partial[b];
    return (float)acc;
}

typedef struct {
    const float *x;
    float *y;
    int64_t in[4], out[4], xs[4]; /* input dims, output dims, input strides */
} sum_to_ctx;

/* Rows of the output's leading axes; for each output row, walk the input in order. */
static void sum_to_range(void *ctx, int64_t lo, int64_t hi) {
    sum_to_ctx *c = ctx;
    const int64_t *in = c->in, *out = c->out, *xs = c->xs;
    for (int64_t o0 = lo; o0 < hi; o0++) {
        /* output index o0 on axis 0; reduced axes loop fully */
        int64_t out_row = out[1] * out[2] * out[3];
        float *y = c->y + o0 * out_row;
        memset(y, 0, (size_t)out_row * sizeof(float));
        int64_t r0 = out[0] == 1 ? in[0] : 1, base0 = out[0] == 1 ? 0 : o0;
        for (int64_t i0 = base0; i0 < base0 + r0; i0++)
            for (int64_t i1 = 0; i1 < in[1]; i1++)
                for (int64_t i2 = 0; i2 < in[2]; i2++) {
                    const float *xr = c->x + i0 * xs[0] + i1 * xs[1] + i2 * xs[2];
                    float *yr = y + (out[1] == 1 ? 0 : i1) * out[2] * out[3] +
                                (out[2] == 1 ? 0 : i2) * out[3];
                    if (out[3] == 1) {
                        float acc = 0.0f;
                        for (int64_t i3 = 0; i3 < in[3]; i3++) acc += xr[i3];
                        yr[0] += acc;
                    } else {
                        for (int64_t i3 = 0; i3 < in[3]; i3++) yr[i3] += xr[i3];
                    }
                }
    }
}

static dg_status sum_to_forward(dg_node *self) {
    dg_node *x = self->inputs[0];
    if (self->numel == 1) {
        self->value[0] = full_sum(x->value, x->numel);
        return DG_OK;
    }
    sum_to_ctx c;
    c.x = x->value;
    c.y = self->value;
    dg__shape_pad4(x->shape, c.in);
    int64_t o[4];
    dg__shape_pad4(self->shape, o);
    memcpy(c.out, o, sizeof o);
    c.xs[3] = 1;
    for (int i = 2; i >= 0; i--) c.xs[i] = c.xs[i + 1] * c.in[i + 1];
    /* Parallel over output axis 0 only when it is kept; otherwise one ordered pass. */
    if (c.out[0] > 1)
        dg__parallel_for(c.out[0], x->numel / c.out[0], sum_to_range, &c);
    else
        sum_to_range(&c, 0, 1);
    return DG_OK;
}

static dg_status sum_to_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg_broadcast_to(g, dy, self->inputs[0]->shape);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def sum_to_op = {"sum_to", 1, 0, sum_to_rule, sum_to_forward, sum_to_backward};

dg_node *dg_sum_to(dg_graph *g, dg_node *x, dg_shape shape) {
    dg_attrs a = {0};
    a.shape = shape;
    return dg__apply1(g, &sum_to_op, x, &a);
}

/* ---- broadcast_to: y = x repeated along broadcast axes ---- */

static dg_status broadcast_to_rule(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                                   size_t size) {
    if (dg_shape_numel(a->shape) < 0) {
        char sb[64];
        snprintf(msg, size, "invalid target shape %s", dg_shape_str(a->shape, sb, sizeof sb));
        return DG_ERR_SHAPE;
    }
    dg_status s = check_broadcastable(dg_node_shape(in[0]), a->shape, msg, size);
    if (s == DG_OK) *out = a->shape;
    return s;
}

typedef struct {
    const float *x;
    float *y;
    int64_t dims[4], xs[4];
} bcast_to_ctx;

static void broadcast_to_range(void *ctx, int64_t lo, int64_t hi) {
    bcast_to_ctx *c = ctx;
    int64_t n3 = c->dims[3];
    for (int64_t r = lo; r < hi; r++) {
        int64_t i2 = r % c->dims[2], i1 = (r / c->dims[2]) % c->dims[1],
                i0 = r / (c->dims[2] * c->dims[1]);
        const float *x = c->x + i0 * c->xs[0] + i1 * c->xs[1] + i2 * c->xs[2];
        float *y = c->y + r * n3;
        if (c->xs[3])
            memcpy(y, x, (size_t)n3 * sizeof(float));
        else
            for (int64_t j = 0; j < n3; j++) y[j] = x[0];
    }
}

static dg_status broadcast_to_forward(dg_node *self) {
    bcast_to_ctx c;
    c.x = self->inputs[0]->value;
    c.y = self->value;
    dg__shape_pad4(self->shape, c.dims);
    dg__bcast_strides(self->inputs[0]->shape, c.dims, c.xs);
    dg__parallel_for(self->numel / c.dims[3], c.dims[3], broadcast_to_range, &c);
    return DG_OK;
}

static dg_status broadcast_to_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg_sum_to(g, dy, self->inputs[0]->shape);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def broadcast_to_op = {
    "broadcast_to", 1, 0, broadcast_to_rule, broadcast_to_forward, broadcast_to_backward};

dg_node *dg_broadcast_to(dg_graph *g, dg_node *x, dg_shape shape) {
    dg_attrs a = {0};
    a.shape = shape;
    return dg__apply1(g, &broadcast_to_op, x, &a);
}

/* ---- sum / mean, built from sum_to (and reshape to drop an axis) ---- */

dg_node *dg_sum(dg_graph *g, dg_node *x) { return dg_sum_to(g, x, dg_shape0()); }

static int resolve_axis(dg_graph *g, const char *who, dg_node *x, int axis) {
    if (!x) return -1;
    int nd = dg_node_shape(x).ndim;
    int ax = axis < 0 ? axis + nd : axis;
    if (ax < 0 || ax >= nd) {
        char sb[64];
        dg_set_error(g, DG_ERR_ARG, "%s: axis %d is out of range for shape %s", who, axis,
                     dg_shape_str(dg_node_shape(x), sb, sizeof sb));
        return -1;
    }
    return ax;
}

static dg_node *sum_axis(dg_graph *g, const char *who, dg_node *x, int axis, int keepdims) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "%s: graph is NULL", who), NULL;
    if (!x) return dg_set_error(g, DG_ERR_NULL, "%s: input is NULL", who), NULL;
    int ax = resolve_axis(g, who, x, axis);
    if (ax < 0) return NULL;
    dg_shape kept = dg_node_shape(x);
    kept.dim[ax] = 1;
    dg_node *s = dg_sum_to(g, x, kept);
    if (keepdims || !s) return s;
    dg_shape dropped = kept;
    for (int i = ax; i + 1 < kept.ndim; i++) dropped.dim[i] = kept.dim[i + 1];
    dropped.ndim--;
    return dg_reshape(g, s, dropped);
}

dg_node *dg_sum_axis(dg_graph *g, dg_node *x, int axis, int keepdims) {
    return sum_axis(g, "sum_axis", x, axis, keepdims);
}

dg_node *dg_mean(dg_graph *g, dg_node *x) {
    dg_node *s = dg_sum(g, x);
    return s ? dg_scale(g, s, 1.0f / (float)dg_node_numel(x)) : NULL;
}

dg_node *dg_mean_axis(dg_graph *g, dg_node *x, int axis, int keepdims) {
    dg_node *s = sum_axis(g, "mean_axis", x, axis, keepdims);
    return s ? dg_scale(g, s, (float)dg_node_numel(s) / (float)dg_node_numel(x)) : NULL;
}
