/* bf16 GEMM kernels (stub while the fp32 work is measured). */
#include "gemm_kernel.h"

static int none(void) { return 0; }
static void no_gemm(const dg_gemm_args *g) { (void)g; }
const dg_gemm_bf16_info dg__gemm_bf16_amx = {"amx-bf16", none, no_gemm};
const dg_gemm_bf16_info dg__gemm_bf16_avx512 = {"avx512-bf16", none, no_gemm};
