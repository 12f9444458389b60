/* Elementwise unary ops: neg, scale, shift, exp, log, sqrt, pow, abs, and the activations
 * relu, leaky_relu, sigmoid, tanh; plus the piecewise-constant step and sign used by their
 * derivatives. Forward kernel, math and backward rule of each op sit together. */
#include "kernels.h"
#include "vector_math.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The one number some of these ops take (scale, shift, exponent, slope). */
typedef struct unary_attrs {
    float p;
} unary_attrs;

/* The number under the name each op gives it (dg_node_attr_float). */
#define P_FIELD(NAME)                                                                              \
    static const dg_attr_field NAME##_fields[] = {                                                 \
        {#NAME, DG_ATTR_FLOAT, offsetof(unary_attrs, p), 1}, {NULL, DG_ATTR_FLOAT, 0, 0}}
P_FIELD(factor);
P_FIELD(offset);
P_FIELD(exponent);
P_FIELD(slope);

static float attr_p(const dg_node *self) { return ((const unary_attrs *)self->attrs)->p; }

/* Defines NAME_forward computing y[i] = EXPR from v = x[i] and the attribute p. The output
 * may share x's buffer (DG_OP_INPLACE): x[i] is read before y[i] is written, so no
 * restrict. */
#define DG_UNARY_KERNEL(NAME, EXPR)                                                                \
    DG_VECTOR_CLONES static void NAME##_range(void *ctx, int64_t lo, int64_t hi) {                 \
        dg_node *self = ctx;                                                                       \
        const float *x = self->inputs[0]->value;                                                   \
        float *y = self->value;                                                                    \
        const float p = attr_p(self);                                                              \
        (void)p;                                                                                   \
        for (int64_t i = lo; i < hi; i++) {                                                        \
            const float v = x[i];                                                                  \
            y[i] = (EXPR);                                                                         \
        }                                                                                          \
    }                                                                                              \
    static dg_status NAME##_forward(dg_node *self) {                                               \
        dg_parallel_for(self->numel, 4, NAME##_range, self);                                       \
        return DG_OK;                                                                              \
    }                                                                                              \
    static void NAME##_part(dg_node *self, int64_t lo, int64_t hi) { NAME##_range(self, lo, hi); }

#define DG_UNARY_OP(NAME, FLAGS, BACKWARD, FIELDS)                                                 \
    static const dg_op_def NAME##_op = {.name = #NAME,                                             \
                                        .n_inputs = 1,                                             \
                                        .flags = (FLAGS) | DG_OP_INPLACE,                          \
                                        .infer_shape = dg_rule_same_shape,                         \
                                        .forward = NAME##_forward,                                 \
                                        .backward = BACKWARD,                                      \
                                        .attr_fields = FIELDS,                                     \
                                        .fusable = same_size_input,                                \
                                        .forward_range = NAME##_part}

/* Elementwise in any input of the output's size (all of a unary op's; both of relu_grad's). */
static int same_size_input(const dg_node *self, int k) {
    return self->inputs[k]->numel == self->numel;
}

#define OK_OR_FAIL(expr) ((expr) ? DG_OK : dg_graph_status(g))

static dg_node *unary(dg_graph *g, const dg_op_def *op, dg_node *x, float p) {
    unary_attrs a = {p};
    return dg__apply1(g, op, x, &a, sizeof a);
}

/* y = -x:  dx = -dy */
DG_UNARY_KERNEL(neg, -v)
static dg_status neg_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    (void)self;
    return OK_OR_FAIL(dx[0] = dg_neg(g, dy));
}
DG_UNARY_OP(neg, 0, neg_backward, NULL);
dg_node *dg_neg(dg_graph *g, dg_node *x) { return unary(g, &neg_op, x, 0); }

/* y = s x:  dx = s dy */
DG_UNARY_KERNEL(scale, v *p)
static dg_status scale_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    return OK_OR_FAIL(dx[0] = dg_scale(g, dy, attr_p(self)));
}
DG_UNARY_OP(scale, 0, scale_backward, factor_fields);
dg_node *dg_scale(dg_graph *g, dg_node *x, float s) { return unary(g, &scale_op, x, s); }

/* y = x + c:  dx = dy */
DG_UNARY_KERNEL(shift, v + p)
static dg_status shift_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    (void)g, (void)self;
    dx[0] = dy;
    return DG_OK;
}
DG_UNARY_OP(shift, 0, shift_backward, offset_fields);
dg_node *dg_shift(dg_graph *g, dg_node *x, float c) { return unary(g, &shift_op, x, c); }

/* y = e^x:  dx = dy y */
DG_UNARY_KERNEL(exp, dg__expf(v))
static dg_status exp_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    return OK_OR_FAIL(dx[0] = dg_mul(g, dy, self));
}
DG_UNARY_OP(exp, 0, exp_backward, NULL);
dg_node *dg_exp(dg_graph *g, dg_node *x) { return unary(g, &exp_op, x, 0); }

/* y = ln x:  dx = dy / x */
DG_UNARY_KERNEL(log, logf(v))
static dg_status log_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    return OK_OR_FAIL(dx[0] = dg_div(g, dy, self->inputs[0]));
}
DG_UNARY_OP(log, 0, log_backward, NULL);
dg_node *dg_log(dg_graph *g, dg_node *x) { return unary(g, &log_op, x, 0); }

/* y = sqrt x:  dx = dy / (2 y) */
DG_UNARY_KERNEL(sqrt, sqrtf(v))
static dg_status sqrt_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    return OK_OR_FAIL(dx[0] = dg_div(g, dg_scale(g, dy, 0.5f), self));
}
DG_UNARY_OP(sqrt, 0, sqrt_backward, NULL);
dg_node *dg_sqrt(dg_graph *g, dg_node *x) { return unary(g, &sqrt_op, x, 0); }

/* y = x^p:  dx = dy p x^(p-1) */
DG_UNARY_KERNEL(pow, p == 2.0f ? v * v : powf(v, p))
static dg_status pow_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    float p = attr_p(self);
    if (p == 0.0f) return DG_OK;
    if (p == 1.0f) return OK_OR_FAIL(dx[0] = dy);
    dg_node *x = self->inputs[0];
    dg_node *local = p == 2.0f ? dg_scale(g, x, 2.0f) : dg_scale(g, dg_pow(g, x, p - 1.0f), p);
    return OK_OR_FAIL(dx[0] = dg_mul(g, dy, local));
}
DG_UNARY_OP(pow, 0, pow_backward, exponent_fields);
dg_node *dg_pow(dg_graph *g, dg_node *x, float p) { return unary(g, &pow_op, x, p); }

/* step: 1 where x > 0, else p. Piecewise constant: no gradient flows through. */
DG_UNARY_KERNEL(step, v > 0.0f ? 1.0f : p)
DG_UNARY_OP(step, DG_OP_NO_GRAD, NULL, slope_fields);
dg_node *dg_step(dg_graph *g, dg_node *x, float slope) { return unary(g, &step_op, x, slope); }

/* sign: -1, 0, 1. Piecewise constant. */
DG_UNARY_KERNEL(sign, (float)((v > 0.0f) - (v < 0.0f)))
DG_UNARY_OP(sign, DG_OP_NO_GRAD, NULL, NULL);
dg_node *dg_sign(dg_graph *g, dg_node *x) { return unary(g, &sign_op, x, 0); }

/* y = |x|:  dx = dy sign(x) */
DG_UNARY_KERNEL(abs, fabsf(v))
static dg_status abs_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    return OK_OR_FAIL(dx[0] = dg_mul(g, dy, dg_sign(g, self->inputs[0])));
}
DG_UNARY_OP(abs, 0, abs_backward, NULL);
dg_node *dg_abs(dg_graph *g, dg_node *x) { return unary(g, &abs_op, x, 0); }

/* relu_grad(dy, y) = dy step(y), in one pass: each element is dy times 1 or 0, the same bits
 * as mul(dy, step(y)) without the mask's buffer and pass (which on a CNN's first feature
 * maps cost as much as the product). Linear in dy: d(dy) = relu_grad(dz, y); y, piecewise
 * constant, gets nothing. */
static dg_status relu_grad_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                                size_t size) {
    (void)n, (void)a;
    if (!dg_shape_equal(in[0]->shape, in[1]->shape)) {
        char s0[64], s1[64];
        snprintf(msg, size, "gradient %s and output %s differ in shape",
                 dg_shape_str(in[0]->shape, s0, sizeof s0),
                 dg_shape_str(in[1]->shape, s1, sizeof s1));
        return DG_ERR_SHAPE;
    }
    *out = in[0]->shape;
    return DG_OK;
}

/* The output may share either input's buffer (DG_OP_INPLACE): element i of both is read
 * before element i is written, so no restrict; `omp simd` vectorises it all the same (the
 * buffers are the same or disjoint, never shifted). The factor 1 or 0 is made from bits:
 * GCC turns dy * (y > 0 ? 1 : 0) into a scalar loop with a branch on y. */
DG_VECTOR_CLONES static void relu_grad_range(void *ctx, int64_t lo, int64_t hi) {
    dg_node *self = ctx;
    const float *dy = self->inputs[0]->value, *y = self->inputs[1]->value;
    float *dx = self->value;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) {
        uint32_t bits = (0u - (uint32_t)(y[i] > 0.0f)) & 0x3f800000u; /* 1.0f or 0.0f */
        float one_or_zero;
        memcpy(&one_or_zero, &bits, sizeof one_or_zero);
        dx[i] = dy[i] * one_or_zero;
    }
}

static void relu_grad_part(dg_node *self, int64_t lo, int64_t hi) { relu_grad_range(self, lo, hi); }

static dg_status relu_grad_forward(dg_node *self) {
    dg_parallel_for(self->numel, 3, relu_grad_range, self);
    return DG_OK;
}

static dg_status relu_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx);

static const dg_op_def relu_grad_op = {.name = "relu_grad",
                                       .n_inputs = 2,
                                       .flags = DG_OP_INPLACE,
                                       .infer_shape = relu_grad_rule,
                                       .forward = relu_grad_forward,
                                       .backward = relu_grad_backward,
                                       .fusable = same_size_input,
                                       .forward_range = relu_grad_part};

static dg_status relu_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx) {
    return OK_OR_FAIL(dx[0] = dg__apply2(g, &relu_grad_op, dz, self->inputs[1], NULL, 0));
}

/* y = max(x, 0):  dx = relu_grad(dy, y) = dy step(y)  (y > 0 exactly where x > 0; reading y
 * instead of x lets x's memory go once relu has run) */
DG_UNARY_KERNEL(relu, v > 0.0f ? v : 0.0f)
static dg_status relu_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    return OK_OR_FAIL(dx[0] = dg__apply2(g, &relu_grad_op, dy, self, NULL, 0));
}
DG_UNARY_OP(relu, 0, relu_backward, NULL);
dg_node *dg_relu(dg_graph *g, dg_node *x) { return unary(g, &relu_op, x, 0); }

/* y = x if x > 0 else p x:  dx = dy step(x, p) */
DG_UNARY_KERNEL(leaky_relu, v > 0.0f ? v : p * v)
static dg_status leaky_relu_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    return OK_OR_FAIL(dx[0] = dg_mul(g, dy, dg_step(g, self->inputs[0], attr_p(self))));
}
DG_UNARY_OP(leaky_relu, 0, leaky_relu_backward, slope_fields);
dg_node *dg_leaky_relu(dg_graph *g, dg_node *x, float slope) {
    return unary(g, &leaky_relu_op, x, slope);
}

/* y = 1 / (1 + e^-x), computed without overflow for either sign (e = e^-|x|: 1 / (1 + e)
 * for x >= 0, e / (1 + e) below):  dx = dy y (1 - y) */
static inline float sigmoid_of(float v) {
    const float e = dg__expf(-fabsf(v));
    return v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
DG_UNARY_KERNEL(sigmoid, sigmoid_of(v))
static dg_status sigmoid_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *one_minus_y = dg_shift(g, dg_neg(g, self), 1.0f);
    return OK_OR_FAIL(dx[0] = dg_mul(g, dy, dg_mul(g, self, one_minus_y)));
}
DG_UNARY_OP(sigmoid, 0, sigmoid_backward, NULL);
dg_node *dg_sigmoid(dg_graph *g, dg_node *x) { return unary(g, &sigmoid_op, x, 0); }

/* y = tanh x:  dx = dy (1 - y^2) */
DG_UNARY_KERNEL(tanh, tanhf(v))
static dg_status tanh_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *one_minus_y2 = dg_shift(g, dg_neg(g, dg_mul(g, self, self)), 1.0f);
    return OK_OR_FAIL(dx[0] = dg_mul(g, dy, one_minus_y2));
}
DG_UNARY_OP(tanh, 0, tanh_backward, NULL);
dg_node *dg_tanh(dg_graph *g, dg_node *x) { return unary(g, &tanh_op, x, 0); }
