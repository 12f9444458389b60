/* Register-tiled GEMM micro-kernels and their run-time selection (gemm.c drives them,
 * gemm_x86.c holds the AVX2/AVX-512 ones). Not installed.
 *
 * A micro-kernel computes an mr x nr tile  acc = sum_p a[p][0..mr) (x) b[p][0..nr)  over
 * kc steps of packed panels (a: kc groups of mr floats, b: kc groups of nr floats, both
 * 64-byte aligned), accumulating every element in increasing p from zero, then writes the
 * top-left m x n corner of the tile to C: C = acc, or C = C + acc when `add`. Each element
 * of C therefore depends only on the k-blocking, never on which thread or tile computed
 * it: that is what makes gemm results independent of the thread count. */
#ifndef DG_GEMM_KERNEL_H
#define DG_GEMM_KERNEL_H

#include <stdint.h>

typedef void (*dg_gemm_ukernel)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                int m, int n, int add);

typedef struct dg_gemm_kernel_info {
    const char *name;
    int mr, nr;
    dg_gemm_ukernel run;
} dg_gemm_kernel_info;

/* x86-64 kernels; available() is 0 when the CPU (or the compiler) lacks the features. */
int dg__gemm_avx512_available(void);
int dg__gemm_avx2_available(void);
extern const dg_gemm_kernel_info dg__gemm_avx512;
extern const dg_gemm_kernel_info dg__gemm_avx2;

/* Selects the kernel by name ("avx512", "avx2", "generic") or, for NULL, the fastest the
 * CPU supports. Returns 0 (selection unchanged) if that kernel is unavailable. For tests
 * and benchmarks; not thread-safe against concurrent dg_gemm calls. */
int dg__gemm_use_kernel(const char *name);
/* Name of the kernel dg_gemm uses now. */
const char *dg__gemm_kernel_name(void);

#endif
