/** \file
 * dagrad primitive ops. Each call adds one node (or a few) to the graph and returns the
 * output node, or NULL with the graph's error set (op name and shapes in the message).
 * A NULL input makes the call fail too, so calls can be nested and checked once.
 * Binary elementwise ops broadcast both ways, NumPy style ([128,10] + [10],
 * [128,1] * [1,10]).
 */
#ifndef DAGRAD_OPS_H
#define DAGRAD_OPS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- linear algebra and shape ---- */

/** a[M,K] x b[K,N] -> [M,N]. */
dg_node *dg_matmul(dg_graph *g, dg_node *a, dg_node *b);
/** op(a) x op(b), where op transposes when the flag is non-zero. */
dg_node *dg_matmul_t(dg_graph *g, dg_node *a, dg_node *b, int trans_a, int trans_b);
/** Same data, new shape (element counts must match). One dimension may be -1: it is then
 *  inferred from the element count, at every run (`dg_shape2(-1, 784)` follows the batch
 *  size). The result shares x's memory unless it is kept. */
dg_node *dg_reshape(dg_graph *g, dg_node *x, dg_shape shape);
/** x's data in the shape of `like` (whose values are not read). */
dg_node *dg_reshape_like(dg_graph *g, dg_node *x, dg_node *like);
/** Swaps the last two axes (rank >= 2). */
dg_node *dg_transpose(dg_graph *g, dg_node *x);
/** Repeats x along axes of size 1 (and new leading axes) to `shape`. */
dg_node *dg_broadcast_to(dg_graph *g, dg_node *x, dg_shape shape);
/** Sums x over the axes where `shape` is 1 (or missing on the left): the reverse of
 *  dg_broadcast_to. */
dg_node *dg_sum_to(dg_graph *g, dg_node *x, dg_shape shape);
/** dg_broadcast_to the shape of `like`, whatever it is at run time (values not read). */
dg_node *dg_broadcast_like(dg_graph *g, dg_node *x, dg_node *like);
/** dg_sum_to the shape of `like`, whatever it is at run time (values not read): what a
 *  backward rule uses to reduce a gradient to a broadcast input's shape. */
dg_node *dg_sum_to_like(dg_graph *g, dg_node *x, dg_node *like);

/* ---- elementwise binary (broadcasting) ---- */
/** a + b. */
dg_node *dg_add(dg_graph *g, dg_node *a, dg_node *b);
/** a - b. */
dg_node *dg_sub(dg_graph *g, dg_node *a, dg_node *b);
/** a * b, elementwise. */
dg_node *dg_mul(dg_graph *g, dg_node *a, dg_node *b);
/** a / b, elementwise (division by zero gives inf/NaN, as in C). */
dg_node *dg_div(dg_graph *g, dg_node *a, dg_node *b);

/* ---- elementwise unary ---- */
/** -x. */
dg_node *dg_neg(dg_graph *g, dg_node *x);
/** x * s */
dg_node *dg_scale(dg_graph *g, dg_node *x, float s);
/** x + c */
dg_node *dg_shift(dg_graph *g, dg_node *x, float c);
/** e^x. */
dg_node *dg_exp(dg_graph *g, dg_node *x);
/** Natural logarithm (log of a non-positive number is -inf/NaN, as in C). */
dg_node *dg_log(dg_graph *g, dg_node *x);
/** Square root (NaN for negative x, as in C). */
dg_node *dg_sqrt(dg_graph *g, dg_node *x);
/** x^p for a constant p. */
dg_node *dg_pow(dg_graph *g, dg_node *x, float p);
/** |x|. */
dg_node *dg_abs(dg_graph *g, dg_node *x);
/** max(x, 0). */
dg_node *dg_relu(dg_graph *g, dg_node *x);
/** x if x > 0 else slope * x. */
dg_node *dg_leaky_relu(dg_graph *g, dg_node *x, float slope);
/** 1 / (1 + e^-x). */
dg_node *dg_sigmoid(dg_graph *g, dg_node *x);
/** Hyperbolic tangent. */
dg_node *dg_tanh(dg_graph *g, dg_node *x);

/* ---- piecewise-constant helpers (no gradient flows through them) ---- */
/** 1 where x > 0, `slope` elsewhere (the derivative of leaky_relu; relu uses slope 0). */
dg_node *dg_step(dg_graph *g, dg_node *x, float slope);
/** -1, 0 or 1. */
dg_node *dg_sign(dg_graph *g, dg_node *x);
/** labels[N] (integer values stored as floats) -> [N, classes] one-hot rows. */
dg_node *dg_one_hot(dg_graph *g, dg_node *labels, int64_t classes);

/* ---- softmax family (last axis) ---- */
/** exp(x - max) / sum(exp(x - max)) along the last axis (same shape as x). */
dg_node *dg_softmax(dg_graph *g, dg_node *x);
/** x - max - log(sum(exp(x - max))) along the last axis: stable for large logits. */
dg_node *dg_log_softmax(dg_graph *g, dg_node *x);

/* ---- reductions ---- */
/** Sum of all elements (a scalar). */
dg_node *dg_sum(dg_graph *g, dg_node *x);
/** Sum over one axis (negative counts from the end); keepdims keeps it as size 1. */
dg_node *dg_sum_axis(dg_graph *g, dg_node *x, int axis, int keepdims);
/** The number of elements of x at run time, as a scalar (no gradient; x's values are not
 *  read). Divide by it to average over a batch whose size changes from run to run. */
dg_node *dg_numel_of(dg_graph *g, dg_node *x);
/** The size of one axis of x (negative counts from the end) at run time, as a scalar. */
dg_node *dg_dim_of(dg_graph *g, dg_node *x, int axis);
/** Mean of all elements (a scalar): dg_sum divided by dg_numel_of. */
dg_node *dg_mean(dg_graph *g, dg_node *x);
/** Mean over one axis, as dg_sum_axis divided by that axis's size at run time. */
dg_node *dg_mean_axis(dg_graph *g, dg_node *x, int axis, int keepdims);

/* ---- losses (scalar results, mean over elements or rows) ---- */
/** mean((pred - target)^2); shapes must match. */
dg_node *dg_mse_loss(dg_graph *g, dg_node *pred, dg_node *target);
/** mean(|pred - target|). */
dg_node *dg_mae_loss(dg_graph *g, dg_node *pred, dg_node *target);
/** Binary cross-entropy on logits z with targets y in [0,1]:
 *  mean(max(z,0) - z*y + log(1 + exp(-|z|))). Stable for any z. */
dg_node *dg_bce_logits_loss(dg_graph *g, dg_node *logits, dg_node *target);
/** Categorical cross-entropy on logits[N,C] with integer labels[N] (as floats), fused with
 *  log-softmax: mean over rows of logsumexp(z) - z[label]. A label outside [0,C) is a
 *  run-time error. */
dg_node *dg_cross_entropy_loss(dg_graph *g, dg_node *logits, dg_node *labels);

/* ---- sequence ops: embeddings, joining and cutting along an axis, layer norm ---- */

/** Rows of `table` [V,E] picked by `indices` (integers stored as floats, any shape of rank
 *  <= 3): the result has indices' shape + [E]. The table's gradient adds each position's
 *  gradient row into the row it came from. An index that is not an integer in [0, V) is a
 *  run-time error naming it and its position. Indices get no gradient. */
dg_node *dg_embedding_lookup(dg_graph *g, dg_node *table, dg_node *indices);
/** The n inputs side by side along `axis` (negative counts from the end); all other axes
 *  must be equal. One node for any n (an unrolled sequence is one concat). */
dg_node *dg_concat(dg_graph *g, int n, dg_node *const *xs, int axis);
/** The n inputs, all of one shape, along a new axis `axis` (0 .. rank; negative counts from
 *  the end of the result): stacking T tensors [B,H] along axis 1 gives [B,T,H]. */
dg_node *dg_stack(dg_graph *g, int n, dg_node *const *xs, int axis);
/** x[..., start : start + len, ...] along `axis` (negative counts from the end). The
 *  gradient is dy placed into zeros of x's shape. */
dg_node *dg_slice(dg_graph *g, dg_node *x, int axis, int64_t start, int64_t len);
/** Cuts x into n equal slices along `axis` (out[0..n)). On error every out[k] is NULL and the
 *  graph is left as it was. */
dg_status dg_split(dg_graph *g, dg_node *x, int axis, int n, dg_node **out);
/** The dim(axis) slices of x along `axis`, each without that axis (x [B,T] gives T nodes
 *  [B]; a leading axis other than `axis` follows the run's batch size), into out[0..dim).
 *  For inputs that need no gradient (token indices to look up per step): each slice's
 *  gradient is a zero-padded tensor of x's size. On error out is cleared and the graph left
 *  as it was. */
dg_status dg_unstack(dg_graph *g, dg_node *x, int axis, dg_node **out);
/** The pointwise part of an LSTM step, fused: from pre-activations z [B,4H] (gates i, f, g, o
 *  packed along the last axis) and the cell state c [B,H], returns [B,2H] = [h' | c'] with
 *  i, f, o = sigmoid, g = tanh, c' = f c + i g, h' = o tanh(c'). First derivatives only. */
dg_node *dg_lstm_cell(dg_graph *g, dg_node *z, dg_node *c);
/** The pointwise part of a GRU step, fused (PyTorch's formulation): from a = x W + b_x and
 *  b = h U + b_h (each [B,3H], gates r, z, n packed) and the state h [B,H], returns
 *  h' = n + z (h - n) with r = sigmoid(a_r + b_r), z = sigmoid(a_z + b_z),
 *  n = tanh(a_n + r b_n). First derivatives only. */
dg_node *dg_gru_cell(dg_graph *g, dg_node *a, dg_node *b, dg_node *h);
/** Layer normalisation over the last axis: (x - mean) / sqrt(var + eps), mean and (biased)
 *  variance over that axis; eps > 0 (1e-5 is usual). No learned gain or bias (see
 *  dg_layer_norm_layer). */
dg_node *dg_layer_norm(dg_graph *g, dg_node *x, float eps);
/* ---- convolution and pooling (images as [N,C,H,W], row-major) ---- */

/** Geometry of a 2-D convolution, per axis ([0] height, [1] width). */
typedef struct dg_conv2d_options {
    int stride[2];   /**< >= 1 (default 1) */
    int padding[2];  /**< zeros added on both sides, >= 0 (default 0) */
    int dilation[2]; /**< spacing of the kernel taps, >= 1 (default 1) */
    int groups;      /**< >= 1, dividing the input channels and the outputs (default 1) */
} dg_conv2d_options;

/** Stride 1, no padding, dilation 1, one group. */
dg_conv2d_options dg_conv2d_defaults(void);

/** 2-D convolution (cross-correlation, as in PyTorch's conv2d) of x [N,C,H,W] with weights
 *  w [O,C/groups,KH,KW] -> [N,O,OH,OW], OH = (H + 2 padding - dilation (KH - 1) - 1) / stride
 *  + 1 (rounded down; OW alike), plus the bias b [O] on every position of each output
 *  channel (b NULL: no bias). `opts` NULL means dg_conv2d_defaults(). Errors name the op
 *  and the shapes
 *  (`conv2d: 3 input channels but weights expect 1: [32,3,28,28] * [16,1,5,5]`); a kernel
 *  larger than the padded input, a stride or dilation below 1 and negative padding are
 *  errors. Computed with dg_gemm on im2col columns; bitwise the same for any thread count.
 *  Differentiable twice (its gradients are convolutions too). */
dg_node *dg_convolve2d(dg_graph *g, dg_node *x, dg_node *w, dg_node *b,
                       const dg_conv2d_options *opts);

/** Geometry of a 2-D pooling window, per axis ([0] height, [1] width). */
typedef struct dg_pool2d_options {
    int kernel[2];   /**< window size, >= 1 */
    int stride[2];   /**< >= 1 */
    int padding[2];  /**< >= 0 and at most half the kernel (every window then holds a pixel) */
    int dilation[2]; /**< >= 1 */
} dg_pool2d_options;

/** A square window of `kernel` with stride `kernel`, no padding, dilation 1 (non-overlapping
 *  windows, the usual pooling). */
dg_pool2d_options dg_pool2d_defaults(int kernel);

/** Max pooling of x [N,C,H,W] -> [N,C,OH,OW] (sizes as for dg_convolve2d). Padding never
 *  wins; among equal values the first in window order (row by row) does, and a NaN beats
 *  every number, so results and gradients are the same on every run. The gradient goes to
 *  each window's winner. */
dg_node *dg_pool2d_max(dg_graph *g, dg_node *x, const dg_pool2d_options *opts);

/** Average pooling: the window's sum divided by KH KW, padding counting as zeros (PyTorch's
 *  default, count_include_pad). */
dg_node *dg_pool2d_avg(dg_graph *g, dg_node *x, const dg_pool2d_options *opts);

/** Global average pooling: x [N,C,H,W] -> [N,C], the mean of each channel's H x W values. */
dg_node *dg_pool2d_global_avg(dg_graph *g, dg_node *x);

/** Batch normalisation of x [N,C] or [N,C,H,W] over every axis but the channel axis 1:
 *  y = gamma (x - m) / sqrt(v + eps) + beta. In training mode (dg_set_training) m and v are
 *  the batch's mean and (biased) variance, and each run also updates the leaves
 *  running_mean <- (1 - momentum) running_mean + momentum m and running_var likewise with
 *  the unbiased variance (PyTorch's rule; fewer than two values per channel is a run-time
 *  error); in evaluation mode m and v are running_mean and running_var. gamma, beta, the
 *  running statistics: [C]; gamma and beta may be NULL (no scale, no shift); the running
 *  statistics must be leaves (dg_state). Gradients follow the mode of the run that
 *  computes them; second derivatives work. */
dg_node *dg_batch_normalize(dg_graph *g, dg_node *x, dg_node *gamma, dg_node *beta,
                            dg_node *running_mean, dg_node *running_var, float momentum, float eps);

#ifdef __cplusplus
}
#endif
#endif
