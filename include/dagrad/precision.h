/** \file
 * dagrad matmul precision: an optional reduced-precision mode for matrix products, off by
 * default (like PyTorch's `torch.set_float32_matmul_precision`).
 *
 * By default (DG_MATMUL_FP32) every matrix product (matmul forward and backward, and any
 * other op built on dagrad's GEMM) reads and accumulates float32: the exact path, bitwise
 * identical for any thread count. DG_MATMUL_BF16 allows products to round their two inputs
 * to bfloat16 (8-bit mantissa, nearest even) and accumulate in float32, on AMX tiles when
 * the CPU and OS allow them and with AVX512-BF16 instructions otherwise. Each product is
 * then off by about 2^-8 of the sum of |a||b| terms, still bitwise identical for any thread
 * count. On a CPU with neither, the setting is accepted and products stay float32.
 *
 * The setting is process-wide; change it only while no graph is running.
 */
#ifndef DAGRAD_PRECISION_H
#define DAGRAD_PRECISION_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Precision of float32 matrix products. */
typedef enum dg_matmul_precision {
    DG_MATMUL_FP32 = 0, /**< float32 inputs and accumulation (default, exact path) */
    DG_MATMUL_BF16 = 1  /**< bfloat16 inputs, float32 accumulation, where the CPU can */
} dg_matmul_precision;

/** Sets the precision of all later matrix products. Returns DG_OK, or DG_ERR_ARG for a
 *  value outside dg_matmul_precision (the setting is then unchanged). DG_MATMUL_BF16 is
 *  accepted on every CPU: without bf16 support products stay float32
 *  (see dg_matmul_bf16_supported()). */
dg_status dg_set_matmul_precision(dg_matmul_precision p);
/** The current setting (DG_MATMUL_FP32 until changed). */
dg_matmul_precision dg_get_matmul_precision(void);
/** 1 if this CPU (and OS) can run bf16 products, so that DG_MATMUL_BF16 takes effect; else 0. */
int dg_matmul_bf16_supported(void);
/** Name of the kernel matrix products use under the current setting, e.g. "avx512",
 *  "avx2" or "generic" (float32), "amx-bf16" or "avx512-bf16". Never NULL. */
const char *dg_matmul_kernel(void);

#ifdef __cplusplus
}
#endif

#endif
