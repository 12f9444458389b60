/* dg_gemm against a double-precision reference: all four transposition combinations, odd
 * sizes around every tile and block edge, short and long k, leading dimensions wider than the
 * matrix, accumulation into C, and bitwise-identical results for 1, 2 and 3 threads and (AVX-512)
 * for the packed and direct paths. Every kernel the CPU supports (AVX-512, AVX2, portable)
 * is exercised, not just the default one. */
#include "test_util.h"

#include "../src/ops/gemm_kernel.h"
#include "../src/ops/kernels.h"

#include <string.h>

static int using_blas;
static int has_direct; /* the kernel under test has a direct (unpacked) path */

static float *rand_matrix(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = test_uniform(-1.0f, 1.0f);
    return p;
}

/* C = op(A) op(B) (+ C0) in double, from the same row-major storage dg_gemm reads. */
static void reference(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                      const float *b, int64_t ldb, const float *c0, double *out, int64_t ldc,
                      int acc) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = acc ? c0[i * ldc + j] : 0.0;
            for (int64_t p = 0; p < k; p++) {
                double x = ta ? a[p * lda + i] : a[i * lda + p];
                double y = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += x * y;
            }
            out[i * ldc + j] = s;
        }
}

/* One product with padded leading dimensions; checks values, that padding is untouched,
 * and that 1, 2 and 3 threads give the same bytes. */
static void check_case(int ta, int tb, int64_t m, int64_t n, int64_t k, int acc) {
    int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
    int64_t arows = ta ? k : m, brows = tb ? n : k;
    float *a = rand_matrix(arows * lda), *b = rand_matrix(brows * ldb), *c0 = rand_matrix(m * ldc);
    float *c[3];
    double *ref = malloc((size_t)(m * ldc) * sizeof(double));
    reference(ta, tb, m, n, k, a, lda, b, ldb, c0, ref, ldc, acc);
    for (int t = 0; t < 3; t++) {
        c[t] = malloc((size_t)(m * ldc) * sizeof(float));
        memcpy(c[t], c0, (size_t)(m * ldc) * sizeof(float));
        dg_set_num_threads(t + 1);
        dg_gemm(ta, tb, m, n, k, a, lda, b, ldb, c[t], ldc, acc);
    }
    dg_set_num_threads(0);
    double worst = 0.0;
    int pad_ok = 1;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double e = fabs(c[0][i * ldc + j] - ref[i * ldc + j]);
            worst = e > worst ? e : worst;
        }
        for (int64_t j = n; j < ldc; j++) pad_ok &= c[0][i * ldc + j] == c0[i * ldc + j];
    }
    /* float32 accumulation of k terms in [-1,1]: error grows like k * 2^-24 at worst */
    double tol = 1e-5 * (double)(k + 1) + 1e-5;
    CHECK_MSG(worst <= tol, "%s ta=%d tb=%d m=%lld n=%lld k=%lld acc=%d: max error %g > %g",
              dg__gemm_kernel_name(), ta, tb, (long long)m, (long long)n, (long long)k, acc, worst,
              tol);
    CHECK_MSG(pad_ok, "ta=%d tb=%d m=%lld n=%lld k=%lld: wrote past n", ta, tb, (long long)m,
              (long long)n, (long long)k);
    /* a BLAS backend (DG_USE_BLAS) makes no promise about thread counts */
    for (int t = 1; t < 3 && !using_blas; t++)
        CHECK_MSG(!memcmp(c[0], c[t], (size_t)(m * ldc) * sizeof(float)),
                  "%s ta=%d tb=%d m=%lld n=%lld k=%lld: %d threads differ from 1",
                  dg__gemm_kernel_name(), ta, tb, (long long)m, (long long)n, (long long)k, t + 1);
    /* the packed and direct paths compute every element with the same chains: same bits */
    for (int path = 1; path <= 2 && has_direct && !using_blas; path++) {
        float *cp = malloc((size_t)(m * ldc) * sizeof(float));
        memcpy(cp, c0, (size_t)(m * ldc) * sizeof(float));
        dg__gemm_force_path(path);
        dg_gemm(ta, tb, m, n, k, a, lda, b, ldb, cp, ldc, acc);
        dg__gemm_force_path(0);
        CHECK_MSG(!memcmp(c[0], cp, (size_t)(m * ldc) * sizeof(float)),
                  "%s ta=%d tb=%d m=%lld n=%lld k=%lld: %s path differs from the automatic one",
                  dg__gemm_kernel_name(), ta, tb, (long long)m, (long long)n, (long long)k,
                  path == 1 ? "packed" : "direct");
        free(cp);
    }
    free(a), free(b), free(c0), free(ref);
    for (int t = 0; t < 3; t++) free(c[t]);
}

static void all_cases(void) {
    static const int64_t sizes[] = {1, 7, 17, 33, 100, 257};
    const int ns = sizeof sizes / sizeof sizes[0];
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* every m, n pair with a few depths, including k past one 256-deep slice */
            for (int i = 0; i < ns; i++)
                for (int j = 0; j < ns; j++) {
                    check_case(ta, tb, sizes[i], sizes[j], 33, (i + j) & 1);
                    if (sizes[i] * sizes[j] >= 100) check_case(ta, tb, sizes[i], sizes[j], 300, 1);
                }
            /* short k (the AVX-512 short-k tile holds up to 20 steps of B in registers)
             * and one past it, one B vector wide and wider, row counts around 8, 4, 2, 1 */
            static const int64_t short_k[] = {2, 13, 20, 21};
            for (int q = 0; q < 4; q++) {
                check_case(ta, tb, 31, 10, short_k[q], q & 1);
                check_case(ta, tb, 8, 16, short_k[q], 1);
                check_case(ta, tb, 35, 19, short_k[q], 0);
            }
            /* few rows against a deep B: split by depth on 2 threads (4 slices) and on 2
             * and 3 (6 slices), the parts added in order */
            check_case(ta, tb, 32, 50, 784, ta);
            check_case(ta, tb, 7, 10, 784, 1);
            check_case(ta, tb, 20, 33, 1200, tb);
            check_case(ta, tb, 4, 5, 1, 0);
            check_case(ta, tb, 1, 1, 1, 1);
            check_case(ta, tb, 1, 300, 257, 0);
            /* three slices of k (513 = 171 + 171 + 171), and a wide product with few rows */
            check_case(ta, tb, 37, 45, 513, 1);
            check_case(ta, tb, 20, 300, 40, 0);
            /* more than one block of rows and columns of the AVX2/generic kernels */
            check_case(ta, tb, 301, 530, 70, 0);
            /* two A blocks of the AVX-512 kernel (336 rows) and two k slices: B packed by
             * the first row of tiles, read packed by the rest and by the second block */
            check_case(ta, tb, 500, 70, 300, 1);
            /* two A blocks per region on 2 threads as well, and more columns than one B
             * block holds (a second column block, whose first row packs it again) */
            check_case(ta, tb, 1000, 70, 300, 0);
            check_case(ta, tb, 100, 1100, 300, 1);
        }
}

int main(void) {
    using_blas = !strcmp(dg__gemm_kernel_name(), "cblas");
    if (using_blas) {
        printf("DG_USE_BLAS: values checked, thread-count invariance not required\n");
        all_cases();
    }
    const char *kernels[] = {"avx512", "avx2", "generic"};
    for (int i = 0; i < 3 && !using_blas; i++) {
        if (!dg__gemm_use_kernel(kernels[i])) {
            printf("kernel %s: not supported here, skipped\n", kernels[i]);
            continue;
        }
        printf("kernel %s\n", dg__gemm_kernel_name());
        has_direct = !strcmp(kernels[i], "avx512");
        all_cases();
        /* one product past the 336-row and 1024-column blocks of the AVX-512 kernel */
        check_case(0, 0, 350, 1030, 300, 1);
        has_direct = 0;
    }
    dg__gemm_use_kernel(NULL);
    /* k = 0: C becomes zero, or stays as it was when accumulating */
    float c[4] = {1, 2, 3, 4}, a[1] = {0}, b[1] = {0};
    dg_gemm(0, 0, 2, 2, 0, a, 1, b, 2, c, 2, 1);
    CHECK(c[0] == 1 && c[3] == 4);
    dg_gemm(0, 0, 2, 2, 0, a, 1, b, 2, c, 2, 0);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0);
    return test_summary("test_gemm");
}
