/* Parallel loops with a partition that never changes results, the reproducible parallel
 * sum, and the floating-point mode kernels run in.
 *
 * Denormals: while a run executes (and inside every parallel region of it) the CPU
 * flushes subnormal results to zero and treats subnormal inputs as zero (FTZ/DAZ on x86,
 * FZ on ARM64). Subnormals cost tens to hundreds of cycles each on most CPUs, and
 * optimizer moments of gradients that stay at zero decay into them and stay there; flushing
 * changes no result a float32 network can distinguish. The mode of the caller's thread and
 * of OpenMP's worker threads is restored when each run or region ends, so the user's own
 * code never sees it. */
#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define DG_FP_X86 1
#endif

unsigned dg__fp_get(void) {
#if defined(DG_FP_X86)
    return _mm_getcsr();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return (unsigned)v;
#else
    return 0;
#endif
}

void dg__fp_set(unsigned mode) {
#if defined(DG_FP_X86)
    _mm_setcsr(mode);
#elif defined(__aarch64__)
    uint64_t v = mode;
    __asm__ volatile("msr fpcr, %0" ::"r"(v));
#else
    (void)mode;
#endif
}

unsigned dg__fp_enter(void) {
    unsigned old = dg__fp_get();
#if defined(DG_FP_X86)
    dg__fp_set(old | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
#elif defined(__aarch64__)
    dg__fp_set(old | (1u << 24)); /* FZ */
#endif
    return old;
}

int dg_threads_for(int64_t work) {
    /* Below ~32k elementary operations a parallel region costs more than it saves. */
    if (work < 32768) return 1;
    int t = dg_get_num_threads();
    int64_t max_useful = work / 16384;
    return max_useful < t ? (int)max_useful : t;
}

void dg_parallel_for(int64_t n, int64_t cost, dg_range_fn fn, void *ctx) {
    if (n <= 0) return;
    int nt = dg_threads_for(n * (cost > 0 ? cost : 1));
    if (nt > n) nt = (int)n;
    if (nt <= 1) {
        fn(ctx, 0, n);
        return;
    }
#ifdef _OPENMP
    /* the caller's mode (flush or not) holds on every thread of the region */
    unsigned mode = dg__fp_get();
#pragma omp parallel num_threads(nt)
    {
        unsigned old = dg__fp_get();
        dg__fp_set(mode);
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        int64_t lo = n * t / team, hi = n * (t + 1) / team;
        if (hi > lo) fn(ctx, lo, hi);
        dg__fp_set(old);
    }
#else
    fn(ctx, 0, n);
#endif
}

#define SUM_MAX_BLOCKS 256

typedef struct {
    dg_sum_fn fn;
    void *ctx;
    int64_t n, block;
    double *partial;
} psum_ctx;

static void psum_range(void *ctx, int64_t lo, int64_t hi) {
    psum_ctx *c = ctx;
    for (int64_t b = lo; b < hi; b++) {
        int64_t s = b * c->block, e = s + c->block < c->n ? s + c->block : c->n;
        c->partial[b] = c->fn(c->ctx, s, e);
    }
}

double dg_parallel_sum(int64_t n, int64_t cost, dg_sum_fn fn, void *ctx) {
    if (n <= 0) return 0.0;
    if (cost < 1) cost = 1;
    /* ~16k elementary operations per block: below dg_threads_for's threshold, so small
     * inputs stay one sequential pass */
    int64_t block = 16384 / cost > 0 ? 16384 / cost : 1;
    if (n <= block) return fn(ctx, 0, n);
    if ((n + block - 1) / block > SUM_MAX_BLOCKS) block = (n + SUM_MAX_BLOCKS - 1) / SUM_MAX_BLOCKS;
    int64_t blocks = (n + block - 1) / block;
    double partial[SUM_MAX_BLOCKS];
    psum_ctx c = {fn, ctx, n, block, partial};
    dg_parallel_for(blocks, block * cost, psum_range, &c);
    double acc = 0.0;
    for (int64_t b = 0; b < blocks; b++) acc += partial[b];
    return acc;
}
