/* Register-tiled GEMM micro-kernels, packing routines and their run-time selection (gemm.c
 * drives them; gemm_x86.c holds the AVX2/AVX-512 ones, gemm_bf16_x86.c the reduced-precision
 * ones). Not installed.
 *
 * A micro-kernel computes an mr x nr tile  acc = sum_p a[p][0..mr) (x) b[p][0..nr)  over
 * kc steps of packed panels (a: kc groups of mr floats, b: kc groups of nr floats, both
 * 64-byte aligned), accumulating every element in increasing p from zero, then writes the
 * top-left m x n corner of the tile to C: C = acc, or C = C + acc when `add`. Each element
 * of C therefore depends only on the k-blocking, never on which thread or tile computed
 * it: that is what makes gemm results independent of the thread count. The direct
 * (unpacked) kernels follow the same contract with the same KC slices, so an element gets
 * the same bits whichever fp32 path of one kernel family computed it. */
#ifndef DG_GEMM_KERNEL_H
#define DG_GEMM_KERNEL_H

#include <stddef.h>
#include <stdint.h>

/* Deepest k slice. A depth-k product is cut into ceil(k / DG_GEMM_KC) slices of equal
 * length (the last one shorter by the rounding): a function of k alone, the same for every
 * fp32 path and thread count (see above), and no thin last slice (784 = 4 x 196, not
 * 3 x 256 + 16). */
#define DG_GEMM_KC 256

static inline int64_t dg__gemm_slice(int64_t k) {
    int64_t slices = (k + DG_GEMM_KC - 1) / DG_GEMM_KC;
    return slices > 1 ? (k + slices - 1) / slices : k;
}

typedef void (*dg_gemm_ukernel)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                int m, int n, int add);

/* A full-height (mr rows) micro-kernel that reads its B panel in place (kc rows of n <= nr
 * values at stride ldb, B stored by rows) and, besides computing the tile like `run`, stores
 * that panel packed to bpack (64-byte aligned; kc groups of nr, zero past n). For each k
 * slice of a B block, gemm.c runs it on the first row of tiles of the region's first A
 * block (regions of 1 to 2 A blocks only), so B's trip from memory overlaps those tiles'
 * FMAs instead of coming first as a separate pass. */
typedef void (*dg_gemm_packing_ukernel)(int64_t kc, const float *a, const float *b, int64_t ldb,
                                        float *bpack, float *c, int64_t ldc, int n, int add);

/* Packs `rows` lines of kc values as kc groups of w floats, zero past `rows`:
 * dst[p*w + r] = src[r*ld + p] when by_rows (each line contiguous), src[p*ld + r] otherwise. */
typedef void (*dg_gemm_packer)(int by_rows, const float *src, int64_t ld, int rows, int64_t kc,
                               int w, float *dst);

/* The whole problem, as every thread sees it: C = op(A) op(B) (+ C when acc). */
typedef struct dg_gemm_args {
    int ta, tb, acc;
    int64_t m, n, k, lda, ldb, ldc;
    const float *a, *b;
    float *c;
} dg_gemm_args;

/* Direct kernel: C[i0..i1, j0..j1) (j0 a multiple of 32), every k slice, without packing A
 * (B is read in place, or packed into `scratch` (DG_GEMM_KC x 32 floats) when transposed). */
typedef void (*dg_gemm_direct)(const dg_gemm_args *g, int64_t i0, int64_t i1, int64_t j0,
                               int64_t j1, float *scratch);

typedef struct dg_gemm_kernel_info {
    const char *name;
    int mr, nr;            /* register tile of `run` */
    int mc, nc;            /* cache blocks: A block mc x KC, B block KC x nc (multiples) */
    dg_gemm_ukernel run;   /* packed micro-kernel */
    dg_gemm_packer pack;   /* NULL: gemm.c's portable packing loops */
    dg_gemm_direct direct; /* NULL: no direct path for this kernel */
    dg_gemm_packing_ukernel run_packing_b; /* NULL: B is always packed before its tiles */
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

/* Forces the fp32 path for tests and benchmarks: 0 automatic (default), 1 always packed,
 * 2 always direct (where the kernel has a direct path). Returns the previous setting. */
int dg__gemm_force_path(int path);

/* Called by dg__gemm_done with blocks C[i0..i1, j0..j1) as they become final: each element
 * of C in exactly one call, from whichever thread computed it. */
typedef void (*dg_gemm_done_fn)(void *ctx, int64_t i0, int64_t i1, int64_t j0, int64_t j1);

/* dg_gemm that reports finished blocks of C to done(ctx, ...) while later ones are still
 * being computed (for fused elementwise consumers). Returns 1 if it did, 0 if this path
 * reports nothing (bf16, BLAS, empty products): the caller then treats all of C as final
 * when it returns. */
int dg__gemm_done(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate,
                  dg_gemm_done_fn done, void *ctx);

/* The calling thread's packing buffer (64-byte aligned, *floats floats, kept for the
 * thread's lifetime), or NULL if it cannot be allocated. */
float *dg__gemm_thread_buffer(size_t *floats);

/* ---- reduced precision (bf16 inputs, fp32 accumulation) ---- */

/* A bf16 GEMM: same arguments and contract as dg_gemm (results deterministic for any
 * thread count), with op(A) and op(B) rounded to bfloat16 (nearest even) first. */
typedef struct dg_gemm_bf16_info {
    const char *name;
    int (*available)(void); /* CPU, compiler and (for AMX) OS permission */
    void (*gemm)(const dg_gemm_args *g);
} dg_gemm_bf16_info;

extern const dg_gemm_bf16_info dg__gemm_bf16_amx;
extern const dg_gemm_bf16_info dg__gemm_bf16_avx512;

/* Selects the bf16 kernel by name ("amx", "avx512bf16", "none") or, for NULL, the best
 * available; "none" makes the bf16 setting fall back to fp32. Returns 0 if unavailable. */
int dg__gemm_bf16_use(const char *name);
/* Name of the bf16 kernel ("amx-bf16", "avx512-bf16") or NULL when there is none. */
const char *dg__gemm_bf16_name(void);

#endif
