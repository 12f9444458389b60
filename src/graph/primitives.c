/* The engine's own primitives: the two operations reverse mode needs whatever the ops are.
 *   accumulate (n-ary sum, same shapes):  y = x_1 + ... + x_n        dx_k = dy
 *     sums the contributions of a value's consumers, left to right in the order found;
 *   sum_like (x, ref):  y = x summed over the axes along which ref's shape broadcasts to x's
 *                       shape (so y has ref's shape)                dx = expand_like(dy, x)
 *   expand_like (x, ref): y = x repeated to ref's shape              dx = sum_like(dy, x)
 *     reduce a broadcast input's gradient back to the input's shape, and are each other's
 *     derivative (so gradients of gradients work).
 * `ref` is read for its shape only, so these follow a run's batch size. Also here: the
 * broadcasting helpers and the sum/broadcast kernels of the op kit, which src/ops shares. */
#include "internal.h"
#include "../ops/vector_clones.h"

#include <stdio.h>
#include <string.h>

/* ---- broadcasting helpers ---- */

void dg_shape_pad4(dg_shape s, int64_t out[4]) {
    int pad = 4 - s.ndim;
    for (int i = 0; i < 4; i++) out[i] = i < pad ? 1 : s.dim[i - pad];
}

void dg_broadcast_strides(dg_shape s, const int64_t to[4], int64_t strides[4]) {
    int64_t d[4];
    dg_shape_pad4(s, d);
    int64_t st = 1;
    for (int i = 3; i >= 0; i--) {
        strides[i] = (d[i] == 1 && to[i] != 1) ? 0 : st;
        st *= d[i];
    }
}

dg_status dg_broadcast_shapes(dg_shape a, dg_shape b, dg_shape *out, char *msg, size_t size) {
    int nd = a.ndim > b.ndim ? a.ndim : b.ndim;
    int64_t da[4], db[4];
    dg_shape_pad4(a, da);
    dg_shape_pad4(b, db);
    dg_shape r = dg_shape0();
    r.ndim = nd;
    for (int i = 0; i < nd; i++) {
        int k = 4 - nd + i;
        if (da[k] != db[k] && da[k] != 1 && db[k] != 1) {
            char sa[64], sb[64];
            snprintf(msg, size, "shapes do not broadcast: %s and %s (axis %d: %lld vs %lld)",
                     dg_shape_str(a, sa, sizeof sa), dg_shape_str(b, sb, sizeof sb), i,
                     (long long)da[k], (long long)db[k]);
            return DG_ERR_SHAPE;
        }
        r.dim[i] = da[k] > db[k] ? da[k] : db[k];
    }
    *out = r;
    return DG_OK;
}

dg_status dg_rule_same_shape(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                             size_t size) {
    (void)n, (void)a, (void)msg, (void)size;
    *out = dg_node_shape(in[0]);
    return DG_OK;
}

/* `small` broadcasts to `big` (right-aligned, every axis equal or 1 in small). */
static dg_status check_broadcastable(dg_shape small, dg_shape big, char *msg, size_t size) {
    char s1[64], s2[64];
    int64_t ds[4], db[4];
    /* validate both ranks before padding: a rank outside 0..4 would index past dim[] */
    int ok = dg_shape_numel(small) > 0 && dg_shape_numel(big) > 0 && small.ndim <= big.ndim;
    if (ok) {
        dg_shape_pad4(small, ds);
        dg_shape_pad4(big, db);
    }
    for (int i = 0; i < 4 && ok; i++) ok = ds[i] == db[i] || ds[i] == 1;
    if (ok) return DG_OK;
    snprintf(msg, size, "%s does not broadcast to %s", dg_shape_str(small, s1, sizeof s1),
             dg_shape_str(big, s2, sizeof s2));
    return DG_ERR_SHAPE;
}

dg_status dg__check_broadcastable(dg_shape small, dg_shape big, char *msg, size_t size) {
    return check_broadcastable(small, big, msg, size);
}

/* ---- kernels: sum over broadcast axes, and broadcast ---- */

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
    dg_parallel_for(blocks, SUM_BLOCK, full_sum_range, &c);
    double acc = 0.0;
    for (int64_t b = 0; b < blocks; b++) acc += partial[b];
    return (float)acc;
}

typedef struct {
    const float *x;
    float *y;
    int64_t in[4], out[4], xs[4]; /* input dims, output dims, input strides */
} sum_to_ctx;

/* Output row o0 (axis 0), for inputs lo..hi on the last axis (all of it unless that axis
 * is kept): zero that part of y, then walk the input in order, adding each value to its
 * output element. The parallel splits below only choose o0 and the last-axis range, so no
 * element's additions change order with the thread count. */
static inline void sum_to_part(const sum_to_ctx *c, int64_t o0, int64_t lo, int64_t hi) {
    const int64_t *in = c->in, *out = c->out, *xs = c->xs;
    float *y = c->y + o0 * out[1] * out[2] * out[3];
    const int64_t ylo = out[3] == 1 ? 0 : lo, yn = out[3] == 1 ? 1 : hi - lo;
    for (int64_t j = 0; j < out[1] * out[2]; j++)
        memset(y + j * out[3] + ylo, 0, (size_t)yn * sizeof(float));
    int64_t r0 = out[0] == 1 ? in[0] : 1, base0 = out[0] == 1 ? 0 : o0;
    for (int64_t i0 = base0; i0 < base0 + r0; i0++)
        for (int64_t i1 = 0; i1 < in[1]; i1++)
            for (int64_t i2 = 0; i2 < in[2]; i2++) {
                const float *xr = c->x + i0 * xs[0] + i1 * xs[1] + i2 * xs[2];
                float *yr =
                    y + (out[1] == 1 ? 0 : i1) * out[2] * out[3] + (out[2] == 1 ? 0 : i2) * out[3];
                if (out[3] == 1) {
                    float acc = 0.0f;
                    for (int64_t i3 = lo; i3 < hi; i3++) acc += xr[i3];
                    yr[0] += acc;
                } else {
                    for (int64_t i3 = lo; i3 < hi; i3++) yr[i3] += xr[i3];
                }
            }
}

/* Rows of the output's leading axis. */
DG_VECTOR_CLONES static void sum_to_range(void *ctx, int64_t lo, int64_t hi) {
    const sum_to_ctx *c = ctx;
    for (int64_t o0 = lo; o0 < hi; o0++) sum_to_part(c, o0, 0, c->in[3]);
}

/* Ranges of a kept last axis while the leading axis is reduced (a bias gradient: the rows
 * of a batch summed into one row), in whole cache lines (units of 16 floats) so no two
 * threads write one line of y. */
enum { SUM_COLUMN_UNIT = 16 };

DG_VECTOR_CLONES static void sum_to_columns(void *ctx, int64_t lo_unit, int64_t hi_unit) {
    const sum_to_ctx *c = ctx;
    const int64_t hi = hi_unit * SUM_COLUMN_UNIT < c->in[3] ? hi_unit * SUM_COLUMN_UNIT : c->in[3];
    sum_to_part(c, 0, lo_unit * SUM_COLUMN_UNIT, hi);
}

void dg_kernel_sum_to(const float *x, dg_shape xs, float *y, dg_shape ys) {
    int64_t xn = dg_shape_numel(xs), yn = dg_shape_numel(ys);
    if (yn == 1) {
        y[0] = full_sum(x, xn);
        return;
    }
    if (yn == xn) {
        if (x != y) memcpy(y, x, (size_t)xn * sizeof(float));
        return;
    }
    sum_to_ctx c;
    c.x = x;
    c.y = y;
    dg_shape_pad4(xs, c.in);
    dg_shape_pad4(ys, c.out);
    c.xs[3] = 1;
    for (int i = 2; i >= 0; i--) c.xs[i] = c.xs[i + 1] * c.in[i + 1];
    /* Parallel over output axis 0 when it is kept, else over the last axis when that is
     * kept; otherwise one ordered pass. */
    if (c.out[0] > 1)
        dg_parallel_for(c.out[0], xn / c.out[0], sum_to_range, &c);
    else if (c.out[3] == c.in[3] && c.in[3] >= 2 * SUM_COLUMN_UNIT)
        dg_parallel_for((c.in[3] + SUM_COLUMN_UNIT - 1) / SUM_COLUMN_UNIT,
                        xn / c.in[3] * SUM_COLUMN_UNIT, sum_to_columns, &c);
    else
        sum_to_range(&c, 0, 1);
}

typedef struct {
    const float *x;
    float *y;
    int64_t dims[4], xs[4];
} bcast_to_ctx;

DG_VECTOR_CLONES static void broadcast_range(void *ctx, int64_t lo, int64_t hi) {
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

void dg_kernel_broadcast(const float *x, dg_shape xs, float *y, dg_shape ys) {
    bcast_to_ctx c;
    c.x = x;
    c.y = y;
    dg_shape_pad4(ys, c.dims);
    dg_broadcast_strides(xs, c.dims, c.xs);
    int64_t yn = dg_shape_numel(ys);
    dg_parallel_for(yn / c.dims[3], c.dims[3], broadcast_range, &c);
}

/* ---- accumulate ---- */

static dg_status accumulate_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                                 size_t size) {
    (void)a;
    for (int k = 1; k < n; k++)
        if (!dg_shape_equal(in[k]->shape, in[0]->shape)) {
            char s0[64], sk[64];
            snprintf(msg, size, "input %d has shape %s, input 0 %s", k,
                     dg_shape_str(in[k]->shape, sk, sizeof sk),
                     dg_shape_str(in[0]->shape, s0, sizeof s0));
            return DG_ERR_SHAPE;
        }
    *out = in[0]->shape;
    return DG_OK;
}

DG_VECTOR_CLONES static void accumulate_range(void *ctx, int64_t lo, int64_t hi) {
    dg_node *self = ctx;
    float *y = self->value;
    float acc[256];
    /* block by block, every input read before y is written: y may share any input's buffer */
    for (int64_t b = lo; b < hi; b += 256) {
        int64_t n = hi - b < 256 ? hi - b : 256;
        const float *x0 = self->inputs[0]->value + b, *x1 = self->inputs[1]->value + b;
        /* the first two, then each further one: the roundings of a chain of adds */
        for (int64_t i = 0; i < n; i++) acc[i] = x0[i] + x1[i];
        for (int k = 2; k < self->n_inputs; k++) {
            const float *xk = self->inputs[k]->value + b;
            for (int64_t i = 0; i < n; i++) acc[i] += xk[i];
        }
        memcpy(y + b, acc, (size_t)n * sizeof(float));
    }
}

static dg_status accumulate_forward(dg_node *self) {
    if (self->n_inputs == 1) {
        if (self->value != self->inputs[0]->value)
            memcpy(self->value, self->inputs[0]->value, (size_t)self->numel * sizeof(float));
        return DG_OK;
    }
    dg_parallel_for(self->numel, self->n_inputs, accumulate_range, self);
    return DG_OK;
}

static dg_status accumulate_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    (void)g;
    for (int k = 0; k < self->n_inputs; k++) dx[k] = dy;
    return DG_OK;
}

static const dg_op_def accumulate_op = {
    .name = "accumulate",
    .n_inputs = DG_VARIADIC,
    .flags = DG_OP_INPLACE,
    .infer_shape = accumulate_rule,
    .forward = accumulate_forward,
    .backward = accumulate_backward,
};

dg_node *dg__accumulate(dg_graph *g, int n, dg_node *const *terms) {
    if (n == 1) return terms[0];
    return dg_apply(g, &accumulate_op, n, terms, NULL, 0);
}

/* ---- sum_like and expand_like ---- */

static dg_status sum_like_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                               size_t size) {
    (void)n, (void)a;
    dg_status s = check_broadcastable(in[1]->shape, in[0]->shape, msg, size);
    if (s == DG_OK) *out = in[1]->shape;
    return s;
}

static dg_status expand_like_rule(dg_node *const *in, int n, const void *a, dg_shape *out,
                                  char *msg, size_t size) {
    (void)n, (void)a;
    dg_status s = check_broadcastable(in[0]->shape, in[1]->shape, msg, size);
    if (s == DG_OK) *out = in[1]->shape;
    return s;
}

static dg_status sum_like_forward(dg_node *self) {
    dg_kernel_sum_to(self->inputs[0]->value, self->inputs[0]->shape, self->value, self->shape);
    return DG_OK;
}

static dg_status expand_like_forward(dg_node *self) {
    dg_kernel_broadcast(self->inputs[0]->value, self->inputs[0]->shape, self->value, self->shape);
    return DG_OK;
}

static dg_status sum_like_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg__expand_like(g, dy, self->inputs[0]);
    return dx[0] ? DG_OK : g->status;
}

static dg_status expand_like_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg__sum_like(g, dy, self->inputs[0]);
    return dx[0] ? DG_OK : g->status;
}

static const dg_op_def sum_like_op = {
    .name = "sum_like",
    .n_inputs = 2,
    .shape_only = 1u << 1,
    .infer_shape = sum_like_rule,
    .forward = sum_like_forward,
    .backward = sum_like_backward,
};

static const dg_op_def expand_like_op = {
    .name = "expand_like",
    .n_inputs = 2,
    .shape_only = 1u << 1,
    .infer_shape = expand_like_rule,
    .forward = expand_like_forward,
    .backward = expand_like_backward,
};

dg_node *dg__sum_like(dg_graph *g, dg_node *x, dg_node *ref) {
    dg_node *in[2] = {x, ref};
    return dg_apply(g, &sum_like_op, 2, in, NULL, 0);
}

dg_node *dg__expand_like(dg_graph *g, dg_node *x, dg_node *ref) {
    dg_node *in[2] = {x, ref};
    return dg_apply(g, &expand_like_op, 2, in, NULL, 0);
}
