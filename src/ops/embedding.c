/* Embedding lookup and its mirror, the scatter-add of rows.
 *   embedding (table [V,E], idx [...]):  y[..., :] = table[idx[...], :]   (y: idx's shape + [E])
 *       dtable = embedding_grad(dy, idx, like table)     (idx gets no gradient: it is discrete)
 *   embedding_grad (d [..., E], idx [...], table: shape only):
 *       y = zeros [V,E]; y[idx[p], :] += d[p, :] for every position p, in order
 *       dd = embedding(dy, idx)
 * so the two are each other's derivative with respect to the rows, and gradients of
 * gradients work. Indices are integers stored as floats (like class labels); one that is not
 * an integer in [0, V) is a run-time error naming it and its position, and nothing is
 * written. The scatter runs in parallel over column ranges, each adding the positions in
 * order, so the sums do not depend on the thread count. */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static dg_status lookup_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                             size_t size) {
    (void)n, (void)a;
    dg_shape t = dg_node_shape(in[0]), idx = dg_node_shape(in[1]);
    char st[64], si[64];
    if (t.ndim != 2 || idx.ndim >= DG_MAX_DIMS) {
        snprintf(msg, size, "needs a table [V,E] and indices of rank <= 3, got %s and %s",
                 dg_shape_str(t, st, sizeof st), dg_shape_str(idx, si, sizeof si));
        return DG_ERR_SHAPE;
    }
    dg_shape r = idx;
    r.dim[r.ndim++] = t.dim[1];
    *out = r;
    return DG_OK;
}

/* Every index an integer row of a table with `rows` rows; the first bad one is reported. */
static dg_status check_indices(dg_node *self, const dg_node *idx, int64_t rows) {
    for (int64_t p = 0; p < idx->numel; p++) {
        float v = idx->value[p];
        if (!(v >= 0.0f && v < (float)rows && v == floorf(v)))
            return dg_set_error(self->graph, DG_ERR_ARG,
                                "%s: index %g at position %lld is not an integer row in [0,%lld) "
                                "of the table",
                                self->op->name, (double)v, (long long)p, (long long)rows);
    }
    return DG_OK;
}

typedef struct {
    const float *src, *idx;
    float *dst;
    int64_t cols;
} rows_ctx;

static void lookup_range(void *ctx, int64_t lo, int64_t hi) {
    const rows_ctx *c = ctx;
    for (int64_t p = lo; p < hi; p++)
        memcpy(c->dst + p * c->cols, c->src + (int64_t)c->idx[p] * c->cols,
               (size_t)c->cols * sizeof(float));
}

static dg_status lookup_forward(dg_node *self) {
    dg_node *table = self->inputs[0], *idx = self->inputs[1];
    dg_status s = check_indices(self, idx, table->shape.dim[0]);
    if (s != DG_OK) return s;
    rows_ctx c = {table->value, idx->value, self->value, table->shape.dim[1]};
    dg_parallel_for(idx->numel, c.cols, lookup_range, &c);
    return DG_OK;
}

/* Columns [lo, hi) of every table row: zero them, then add each position's row in order. */
typedef struct {
    const float *d, *idx;
    float *y;
    int64_t positions, rows, cols;
} scatter_ctx;

static void scatter_range(void *ctx, int64_t lo, int64_t hi) {
    const scatter_ctx *c = ctx;
    for (int64_t r = 0; r < c->rows; r++)
        memset(c->y + r * c->cols + lo, 0, (size_t)(hi - lo) * sizeof(float));
    for (int64_t p = 0; p < c->positions; p++) {
        const float *restrict d = c->d + p * c->cols;
        float *restrict y = c->y + (int64_t)c->idx[p] * c->cols;
        for (int64_t j = lo; j < hi; j++) y[j] += d[j];
    }
}

static dg_status scatter_forward(dg_node *self) {
    dg_node *d = self->inputs[0], *idx = self->inputs[1];
    dg_status s = check_indices(self, idx, self->shape.dim[0]);
    if (s != DG_OK) return s;
    scatter_ctx c = {d->value,   idx->value,         self->value,
                     idx->numel, self->shape.dim[0], self->shape.dim[1]};
    dg_parallel_for(c.cols, c.positions + c.rows, scatter_range, &c);
    return DG_OK;
}

/* inputs: d [..., E], idx [...], table (shape only) */
static dg_status scatter_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                              size_t size) {
    (void)n, (void)a;
    dg_shape d = dg_node_shape(in[0]), idx = dg_node_shape(in[1]), t = dg_node_shape(in[2]);
    int ok = t.ndim == 2 && d.ndim == idx.ndim + 1 && d.dim[d.ndim - 1] == t.dim[1];
    for (int i = 0; ok && i < idx.ndim; i++) ok = d.dim[i] == idx.dim[i];
    if (!ok) {
        char sd[64], si[64], st[64];
        snprintf(msg, size, "rows %s do not match indices %s and table %s",
                 dg_shape_str(d, sd, sizeof sd), dg_shape_str(idx, si, sizeof si),
                 dg_shape_str(t, st, sizeof st));
        return DG_ERR_SHAPE;
    }
    *out = t;
    return DG_OK;
}

static dg_status lookup_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx);
static dg_status scatter_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx);

static const dg_op_def lookup_op = {.name = "embedding",
                                    .n_inputs = 2,
                                    .infer_shape = lookup_rule,
                                    .forward = lookup_forward,
                                    .backward = lookup_backward};

static const dg_op_def scatter_op = {.name = "embedding_grad",
                                     .n_inputs = 3,
                                     .shape_only = 1u << 2,
                                     .infer_shape = scatter_rule,
                                     .forward = scatter_forward,
                                     .backward = scatter_backward};

static dg_status lookup_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *table = self->inputs[0];
    if (!table->requires_grad) return DG_OK;
    dg_node *in[3] = {dy, self->inputs[1], table};
    dx[0] = dg_apply(g, &scatter_op, 3, in, NULL, 0);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static dg_status scatter_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    if (!self->inputs[0]->requires_grad) return DG_OK;
    dx[0] = dg__apply2(g, &lookup_op, dy, self->inputs[1], NULL, 0);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

dg_node *dg_embedding_lookup(dg_graph *g, dg_node *table, dg_node *indices) {
    return dg__apply2(g, &lookup_op, table, indices, NULL, 0);
}
