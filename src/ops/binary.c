/* Elementwise binary ops with two-way NumPy broadcasting: add, sub, mul, div.
 * Each op's forward kernel and backward rule sit together. The engine sums broadcast
 * contributions back to each input's shape, so the rules here are the plain formulas. */
#include "kernels.h"

static dg_status broadcast_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                                size_t size) {
    (void)n, (void)a;
    return dg_broadcast_shapes(dg_node_shape(in[0]), dg_node_shape(in[1]), out, msg, size);
}

/* Iteration over the output as rows of its last axis; inputs advance by their broadcast
 * strides (0 along broadcast axes). */
typedef struct {
    const float *a, *b;
    float *y;
    int64_t dims[4], sa[4], sb[4];
} bcast_ctx;

static void bcast_setup(bcast_ctx *c, dg_node *self) {
    dg_node *A = self->inputs[0], *B = self->inputs[1];
    c->a = A->value;
    c->b = B->value;
    c->y = self->value;
    dg_shape_pad4(self->shape, c->dims);
    dg_broadcast_strides(A->shape, c->dims, c->sa);
    dg_broadcast_strides(B->shape, c->dims, c->sb);
}

/* Defines NAME_forward for y = EXPR(a, b), with a flat fast path for equal shapes. The
 * output may share an input's buffer (DG_OP_INPLACE): element i is read before it is
 * written, so no restrict on these pointers. */
#define DG_BINARY_KERNEL(NAME, EXPR)                                                               \
    static inline float NAME##_f(float a, float b) { return EXPR; }                                \
    DG_VECTOR_CLONES static void NAME##_flat(void *ctx, int64_t lo, int64_t hi) {                  \
        bcast_ctx *c = ctx;                                                                        \
        const float *a = c->a, *b = c->b;                                                          \
        float *y = c->y;                                                                           \
        for (int64_t i = lo; i < hi; i++) y[i] = NAME##_f(a[i], b[i]);                             \
    }                                                                                              \
    /* columns [j0, j1) of output row r (a row of the last axis) */                                \
    static inline void NAME##_cols(const bcast_ctx *c, int64_t r, int64_t j0, int64_t j1) {        \
        int64_t n3 = c->dims[3];                                                                   \
        int64_t i2 = r % c->dims[2], i1 = (r / c->dims[2]) % c->dims[1],                           \
                i0 = r / (c->dims[2] * c->dims[1]);                                                \
        const float *a = c->a + i0 * c->sa[0] + i1 * c->sa[1] + i2 * c->sa[2];                     \
        const float *b = c->b + i0 * c->sb[0] + i1 * c->sb[1] + i2 * c->sb[2];                     \
        float *y = c->y + r * n3;                                                                  \
        if (c->sa[3] && c->sb[3])                                                                  \
            for (int64_t j = j0; j < j1; j++) y[j] = NAME##_f(a[j], b[j]);                         \
        else if (c->sa[3])                                                                         \
            for (int64_t j = j0; j < j1; j++) y[j] = NAME##_f(a[j], b[0]);                         \
        else if (c->sb[3])                                                                         \
            for (int64_t j = j0; j < j1; j++) y[j] = NAME##_f(a[0], b[j]);                         \
        else                                                                                       \
            for (int64_t j = j0; j < j1; j++) y[j] = NAME##_f(a[0], b[0]);                         \
    }                                                                                              \
    DG_VECTOR_CLONES static void NAME##_rows(void *ctx, int64_t lo, int64_t hi) {                  \
        const bcast_ctx *c = ctx;                                                                  \
        for (int64_t r = lo; r < hi; r++) NAME##_cols(c, r, 0, c->dims[3]);                        \
    }                                                                                              \
    /* output elements [lo, hi) (forward_range, fused into the producer of an input) */            \
    DG_VECTOR_CLONES static void NAME##_part(dg_node *self, int64_t lo, int64_t hi) {              \
        const dg_node *A = self->inputs[0], *B = self->inputs[1];                                  \
        const float *a = A->value, *b = B->value;                                                  \
        float *y = self->value;                                                                    \
        int64_t n = self->numel,                                                                   \
                last = self->shape.ndim ? self->shape.dim[self->shape.ndim - 1] : 1;               \
        /* called once per row piece of a product: the common cases without set-up */              \
        if (A->numel == n && B->numel == n) {                                                      \
            for (int64_t i = lo; i < hi; i++) y[i] = NAME##_f(a[i], b[i]);                         \
            return;                                                                                \
        }                                                                                          \
        const dg_node *other = A->numel == n ? B : A; /* the broadcast one */                      \
        if ((A->numel == n || B->numel == n) && other->numel == last && other->shape.ndim &&       \
            other->shape.dim[other->shape.ndim - 1] == last) {                                     \
            /* a row vector (a bias) along the last axis */                                        \
            for (int64_t i = lo; i < hi;) {                                                        \
                int64_t j = i % last, len = last - j < hi - i ? last - j : hi - i;                 \
                float *yi = y + i;                                                                 \
                if (A->numel == n)                                                                 \
                    for (int64_t t = 0; t < len; t++) yi[t] = NAME##_f(a[i + t], b[j + t]);        \
                else                                                                               \
                    for (int64_t t = 0; t < len; t++) yi[t] = NAME##_f(a[j + t], b[i + t]);        \
                i += len;                                                                          \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        bcast_ctx c;                                                                               \
        bcast_setup(&c, self);                                                                     \
        int64_t n3 = c.dims[3];                                                                    \
        for (int64_t r = lo / n3; r * n3 < hi; r++)                                                \
            NAME##_cols(&c, r, lo > r * n3 ? lo - r * n3 : 0,                                      \
                        hi < (r + 1) * n3 ? hi - r * n3 : n3);                                     \
    }                                                                                              \
    static dg_status NAME##_forward(dg_node *self) {                                               \
        bcast_ctx c;                                                                               \
        bcast_setup(&c, self);                                                                     \
        if (self->inputs[0]->numel == self->numel && self->inputs[1]->numel == self->numel)        \
            dg_parallel_for(self->numel, 1, NAME##_flat, &c);                                      \
        else                                                                                       \
            dg_parallel_for(self->numel / c.dims[3], c.dims[3], NAME##_rows, &c);                  \
        return DG_OK;                                                                              \
    }

#define NEED(k) (self->inputs[k]->requires_grad)

/* Elementwise in input k when it is not broadcast. */
static int elementwise_in(const dg_node *self, int k) {
    return self->inputs[k]->numel == self->numel;
}

/* y = a + b:  da = dy,  db = dy */
DG_BINARY_KERNEL(add, a + b)
static dg_status add_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    (void)g, (void)self;
    dx[0] = dy;
    dx[1] = dy;
    return DG_OK;
}
static const dg_op_def add_op = {.name = "add",
                                 .n_inputs = 2,
                                 .flags = DG_OP_INPLACE,
                                 .infer_shape = broadcast_rule,
                                 .forward = add_forward,
                                 .backward = add_backward,
                                 .fusable = elementwise_in,
                                 .forward_range = add_part};
dg_node *dg_add(dg_graph *g, dg_node *a, dg_node *b) {
    return dg__apply2(g, &add_op, a, b, NULL, 0);
}

/* y = a - b:  da = dy,  db = -dy */
DG_BINARY_KERNEL(sub, a - b)
static dg_status sub_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dy;
    if (NEED(1) && !(dx[1] = dg_neg(g, dy))) return dg_graph_status(g);
    return DG_OK;
}
static const dg_op_def sub_op = {.name = "sub",
                                 .n_inputs = 2,
                                 .flags = DG_OP_INPLACE,
                                 .infer_shape = broadcast_rule,
                                 .forward = sub_forward,
                                 .backward = sub_backward,
                                 .fusable = elementwise_in,
                                 .forward_range = sub_part};
dg_node *dg_sub(dg_graph *g, dg_node *a, dg_node *b) {
    return dg__apply2(g, &sub_op, a, b, NULL, 0);
}

/* y = a * b:  da = dy * b,  db = dy * a */
DG_BINARY_KERNEL(mul, a *b)
static dg_status mul_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    if (NEED(0) && !(dx[0] = dg_mul(g, dy, self->inputs[1]))) return dg_graph_status(g);
    if (NEED(1) && !(dx[1] = dg_mul(g, dy, self->inputs[0]))) return dg_graph_status(g);
    return DG_OK;
}
static const dg_op_def mul_op = {.name = "mul",
                                 .n_inputs = 2,
                                 .flags = DG_OP_INPLACE,
                                 .infer_shape = broadcast_rule,
                                 .forward = mul_forward,
                                 .backward = mul_backward,
                                 .fusable = elementwise_in,
                                 .forward_range = mul_part};
dg_node *dg_mul(dg_graph *g, dg_node *a, dg_node *b) {
    return dg__apply2(g, &mul_op, a, b, NULL, 0);
}

/* y = a / b:  da = dy / b,  db = -dy * a / b^2 = -(dy / b) * y */
DG_BINARY_KERNEL(div, a / b)
static dg_status div_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *dy_over_b = dg_div(g, dy, self->inputs[1]);
    if (!dy_over_b) return dg_graph_status(g);
    dx[0] = dy_over_b;
    if (NEED(1) && !(dx[1] = dg_neg(g, dg_mul(g, dy_over_b, self)))) return dg_graph_status(g);
    return DG_OK;
}
static const dg_op_def div_op = {.name = "div",
                                 .n_inputs = 2,
                                 .flags = DG_OP_INPLACE,
                                 .infer_shape = broadcast_rule,
                                 .forward = div_forward,
                                 .backward = div_backward,
                                 .fusable = elementwise_in,
                                 .forward_range = div_part};
dg_node *dg_div(dg_graph *g, dg_node *a, dg_node *b) {
    return dg__apply2(g, &div_op, a, b, NULL, 0);
}
