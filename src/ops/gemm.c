/* Portable single-precision GEMM used by matmul: C = op(A) op(B) (+ C).
 * Rows of C are split among threads; every element is accumulated over k in the same order
 * whatever the thread count, so results are bitwise reproducible. */
#include "kernels.h"

#include <string.h>

typedef struct {
    int ta, tb, acc;
    int64_t m, n, k, lda, ldb, ldc;
    const float *a, *b;
    float *c;
} gemm_ctx;

static void gemm_rows(void *ctx, int64_t lo, int64_t hi) {
    const gemm_ctx *g = ctx;
    const int64_t n = g->n, k = g->k;
    for (int64_t i = lo; i < hi; i++) {
        float *restrict crow = g->c + i * g->ldc;
        if (!g->acc) memset(crow, 0, (size_t)n * sizeof(float));
        if (!g->tb) {
            /* c[i,:] += a(i,p) * b[p,:], streaming rows of B */
            for (int64_t p = 0; p < k; p++) {
                float aip = g->ta ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
                const float *restrict brow = g->b + p * g->ldb;
                for (int64_t j = 0; j < n; j++) crow[j] += aip * brow[j];
            }
        } else {
            /* c[i,j] += dot(a(i,:), b[j,:]) */
            for (int64_t j = 0; j < n; j++) {
                const float *restrict brow = g->b + j * g->ldb;
                float acc = 0.0f;
                if (!g->ta) {
                    const float *restrict arow = g->a + i * g->lda;
                    for (int64_t p = 0; p < k; p++) acc += arow[p] * brow[p];
                } else {
                    for (int64_t p = 0; p < k; p++) acc += g->a[p * g->lda + i] * brow[p];
                }
                crow[j] += acc;
            }
        }
    }
}

void dg_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
             const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate) {
    gemm_ctx g = {trans_a, trans_b, accumulate, m, n, k, lda, ldb, ldc, a, b, c};
    dg__parallel_for(m, 2 * n * k, gemm_rows, &g);
}
