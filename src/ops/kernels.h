/* Shared kernel machinery for op files: parallel loops with fixed partitioning and
 * broadcasting index helpers. Kernels never allocate; results never depend on the number
 * of threads. */
#ifndef DG_KERNELS_H
#define DG_KERNELS_H

#include "../graph/internal.h"
#include "dagrad/ops.h"

#include <stddef.h>
#include <stdint.h>

/* Calls fn(ctx, lo, hi) over disjoint ranges covering [0, n). `cost` is the work per item
 * (in elementary operations); small loops run inline on the calling thread. The split
 * point choice only affects speed: callers must write ranges independently. */
typedef void (*dg_range_fn)(void *ctx, int64_t lo, int64_t hi);
void dg__parallel_for(int64_t n, int64_t cost, dg_range_fn fn, void *ctx);

/* Sum of fn(ctx, lo, hi) partial sums over [0, n), in double. The range is cut into blocks
 * whose size depends only on n and `cost` (work per item), never on the thread count;
 * blocks run in parallel and their sums are added in block order, so the result is
 * bitwise reproducible. A range of one block is a single sequential fn call. */
typedef double (*dg_sum_fn)(void *ctx, int64_t lo, int64_t hi);
double dg__parallel_sum(int64_t n, int64_t cost, dg_sum_fn fn, void *ctx);

/* Shapes right-aligned to 4-D (leading 1s), as NumPy broadcasting sees them. */
void dg__shape_pad4(dg_shape s, int64_t out[4]);
/* Strides of a right-aligned 4-D shape, 0 along axes of size 1 that broadcast to `to`. */
void dg__bcast_strides(dg_shape s, const int64_t to[4], int64_t strides[4]);
/* NumPy broadcast of a and b into *out; DG_ERR_SHAPE with a message otherwise. */
dg_status dg__broadcast_shapes(dg_shape a, dg_shape b, dg_shape *out, char *msg, size_t size);

/* Shape rule shared by ops whose output has their first input's shape. */
dg_status dg__same_shape_as_input(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                                  size_t size);

/* C = op(A) op(B) (+ C if accumulate); op transposes when the flag is set. Row-major,
 * leading dimensions in elements. Deterministic for any thread count. */
void dg_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
             const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate);

/* Convenience for backward rules: apply with one input and attributes. */
dg_node *dg__apply1(dg_graph *g, const dg_op_def *op, dg_node *x, const dg_attrs *a);
dg_node *dg__apply2(dg_graph *g, const dg_op_def *op, dg_node *x, dg_node *y, const dg_attrs *a);

#endif
