/* x86-64 GEMM micro-kernels: AVX-512 (12 x 32 tile) and AVX2+FMA (6 x 16 tile), compiled
 * with per-function target attributes so the library itself needs no -mavx flags and runs
 * on any x86-64; gemm.c calls them only when __builtin_cpu_supports says the CPU can.
 * Contract (zero start, increasing k, then C = acc or C + acc) in gemm_kernel.h.
 *
 * Why 12 x 32 for AVX-512: 12 rows x 2 zmm = 24 accumulators, plus 2 for the B row and 1
 * for the broadcast A value fit the 32 zmm registers; each k step issues 24 FMAs for 2
 * vector loads and 12 broadcasts, enough independent chains (24 > 2 pipes x 4 cycles
 * latency) to keep both FMA pipes busy. 6 x 16 is the same idea with 16 ymm registers. */
#include "gemm_kernel.h"

#include <stddef.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define DG_HAVE_X86_KERNELS 1
#include <immintrin.h>
#endif

#ifdef DG_HAVE_X86_KERNELS

int dg__gemm_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

int dg__gemm_avx2_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* ---- AVX-512: 12 x 32 ---- */

#define R512(i)                                                                                    \
    do {                                                                                           \
        __m512 ai = _mm512_set1_ps(a[i]);                                                          \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                                \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                                \
    } while (0)

/* Writes row i of the tile through the column masks (masked loads never fault past n). */
#define S512(i)                                                                                    \
    do {                                                                                           \
        if (i < m) {                                                                               \
            float *cr = c + (int64_t)(i)*ldc;                                                      \
            if (add) {                                                                             \
                c##i##0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), c##i##0);                   \
                c##i##1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), c##i##1);              \
            }                                                                                      \
            _mm512_mask_storeu_ps(cr, m0, c##i##0);                                                \
            _mm512_mask_storeu_ps(cr + 16, m1, c##i##1);                                           \
        }                                                                                          \
    } while (0)

__attribute__((target("avx512f"))) static void kernel_avx512(int64_t kc, const float *a,
                                                             const float *b, float *c, int64_t ldc,
                                                             int m, int n, int add) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m512 c60 = c00, c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00;
    __m512 c90 = c00, c91 = c00, c100 = c00, c101 = c00, c110 = c00, c111 = c00;
    /* C rows are needed only at the end, but on large problems they come from L3 or memory:
     * start fetching them now so 24 cache misses overlap the FMAs instead of following. */
    for (int i = 0; i < m; i++) {
        _mm_prefetch((const char *)(c + (int64_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (int64_t)i * ldc + 16), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        R512(0);
        R512(1);
        R512(2);
        R512(3);
        R512(4);
        R512(5);
        R512(6);
        R512(7);
        R512(8);
        R512(9);
        R512(10);
        R512(11);
        a += 12;
        b += 32;
    }
    __mmask16 m0 = n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
    __mmask16 m1 = n >= 32 ? 0xFFFF : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
    S512(0);
    S512(1);
    S512(2);
    S512(3);
    S512(4);
    S512(5);
    S512(6);
    S512(7);
    S512(8);
    S512(9);
    S512(10);
    S512(11);
}

const dg_gemm_kernel_info dg__gemm_avx512 = {"avx512", 12, 32, kernel_avx512};

/* ---- AVX2 + FMA: 6 x 16 ---- */

#define R256(i)                                                                                    \
    do {                                                                                           \
        __m256 ai = _mm256_broadcast_ss(a + i);                                                    \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                                \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                                \
    } while (0)

#define T256(i)                                                                                    \
    do {                                                                                           \
        _mm256_storeu_ps(t + 16 * i, c##i##0);                                                     \
        _mm256_storeu_ps(t + 16 * i + 8, c##i##1);                                                 \
    } while (0)

__attribute__((target("avx2,fma"))) static void kernel_avx2(int64_t kc, const float *a,
                                                            const float *b, float *c, int64_t ldc,
                                                            int m, int n, int add) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int i = 0; i < m; i++) _mm_prefetch((const char *)(c + (int64_t)i * ldc), _MM_HINT_T0);
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        R256(0);
        R256(1);
        R256(2);
        R256(3);
        R256(4);
        R256(5);
        a += 6;
        b += 16;
    }
    /* The tile goes through a small buffer so partial edges need no masks; the add is the
     * same single rounding as the vector add would be. */
    float t[6 * 16];
    T256(0);
    T256(1);
    T256(2);
    T256(3);
    T256(4);
    T256(5);
    for (int i = 0; i < m; i++) {
        float *cr = c + (int64_t)i * ldc;
        const float *tr = t + 16 * i;
        if (add)
            for (int j = 0; j < n; j++) cr[j] += tr[j];
        else
            for (int j = 0; j < n; j++) cr[j] = tr[j];
    }
}

const dg_gemm_kernel_info dg__gemm_avx2 = {"avx2", 6, 16, kernel_avx2};

#else /* not x86-64 with GCC/Clang: only the portable kernel exists */

int dg__gemm_avx512_available(void) { return 0; }
int dg__gemm_avx2_available(void) { return 0; }
const dg_gemm_kernel_info dg__gemm_avx512 = {"avx512", 12, 32, NULL};
const dg_gemm_kernel_info dg__gemm_avx2 = {"avx2", 6, 16, NULL};

#endif
