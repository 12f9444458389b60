/* Register helpers shared by the AVX-512 GEMM files (gemm_x86.c, gemm_bf16_x86.c): inline
 * functions compiled for AVX-512F through target attributes, so including this header needs
 * no -m flags. Only for x86-64 GCC/Clang builds. Not installed. */
#ifndef DG_GEMM_AVX512_H
#define DG_GEMM_AVX512_H

#include <immintrin.h>

#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline

/* Column masks of a 32-wide tile holding n valid columns (masked loads never fault). */
AVX512_INLINE void col_masks(int n, __mmask16 *m0, __mmask16 *m1) {
    *m0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    *m1 = n >= 32 ? (__mmask16)0xFFFF : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
}

/* 16 x 16 transpose in registers: r[i] holds row i; afterwards r[q] holds column q. Three
 * shuffle stages: pairs of rows within 128-bit lanes, pairs of pairs (as doubles), then
 * whole lanes across rows. */
AVX512_INLINE void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* c[4j + s]: lane L holds rows 4j..4j+3 of column 4L + s */
    __m512 c[16];
    for (int j = 0; j < 4; j++) {
        __m512d lo0 = _mm512_castps_pd(t[4 * j]), lo1 = _mm512_castps_pd(t[4 * j + 2]);
        __m512d hi0 = _mm512_castps_pd(t[4 * j + 1]), hi1 = _mm512_castps_pd(t[4 * j + 3]);
        c[4 * j + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
        c[4 * j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
        c[4 * j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
        c[4 * j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
    }
    for (int s = 0; s < 4; s++) {
        __m512 e0 = _mm512_shuffle_f32x4(c[s], c[4 + s], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 e1 = _mm512_shuffle_f32x4(c[s], c[4 + s], _MM_SHUFFLE(3, 1, 3, 1));
        __m512 f0 = _mm512_shuffle_f32x4(c[8 + s], c[12 + s], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 f1 = _mm512_shuffle_f32x4(c[8 + s], c[12 + s], _MM_SHUFFLE(3, 1, 3, 1));
        r[0 + s] = _mm512_shuffle_f32x4(e0, f0, _MM_SHUFFLE(2, 0, 2, 0));
        r[8 + s] = _mm512_shuffle_f32x4(e0, f0, _MM_SHUFFLE(3, 1, 3, 1));
        r[4 + s] = _mm512_shuffle_f32x4(e1, f1, _MM_SHUFFLE(2, 0, 2, 0));
        r[12 + s] = _mm512_shuffle_f32x4(e1, f1, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

#endif
