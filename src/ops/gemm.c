/* Single-precision GEMM used by matmul: C = op(A) op(B) (+ C), row-major.
 *
 * Goto/BLIS structure: C is split into one rectangular region per thread (a fixed grid of
 * whole micro-tiles); inside its region a thread walks NC-column blocks, then KC-deep
 * slices of k (always KC = 256, whatever the thread count), packs the B slice into
 * NR-wide panels and each MC-row block of A into MR-high panels (transposes are absorbed
 * here), and runs the register-tiled micro-kernel over the tiles. Every element of C is
 * the sum, slice by slice in increasing k, of a zero-started in-order chain, so neither
 * the thread count nor the region grid changes a single bit of the result.
 *
 * Packing buffers are per thread (thread-local, allocated once at a fixed size and
 * reused): no allocation in steady state. If that allocation fails, the thread computes
 * its region with a scalar loop of the same arithmetic instead of failing.
 * Small products (m n k < 32^3) skip packing altogether.
 * With DG_USE_BLAS the whole call goes to cblas_sgemm instead (not thread-count invariant
 * then: that is up to the BLAS). */
#include "gemm_kernel.h"
#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef DG_USE_BLAS
#include <cblas.h>
#endif

#define KC         256 /* k slice: a 12 x KC A panel and 32 x KC B panel fit L1 together */
#define MC_MAX     144 /* multiple of every MR (12, 6, 4); A block MC x KC stays in L2 */
#define NC_MAX     512 /* multiple of every NR (32, 16); B block KC x NC in L2 */
#define SMALL_WORK (32 * 32 * 32)

/* ---- portable micro-kernel: 4 x 16, plain loops the compiler vectorises ---- */

static void kernel_generic(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int m,
                           int n, int add) {
    float acc[4][16] = {{0}};
    for (int64_t p = 0; p < kc; p++) {
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 16; j++) acc[i][j] += a[i] * b[j];
        a += 4;
        b += 16;
    }
    for (int i = 0; i < m; i++) {
        float *cr = c + (int64_t)i * ldc;
        if (add)
            for (int j = 0; j < n; j++) cr[j] += acc[i][j];
        else
            for (int j = 0; j < n; j++) cr[j] = acc[i][j];
    }
}

static const dg_gemm_kernel_info gemm_generic = {"generic", 4, 16, kernel_generic};

/* ---- kernel selection ---- */

static const dg_gemm_kernel_info *selected;

int dg__gemm_use_kernel(const char *name) {
    const dg_gemm_kernel_info *k = NULL;
    if (!name || !strcmp(name, "avx512")) k = dg__gemm_avx512_available() ? &dg__gemm_avx512 : NULL;
    if ((!name && !k) || (name && !strcmp(name, "avx2")))
        k = dg__gemm_avx2_available() ? &dg__gemm_avx2 : NULL;
    if ((!name && !k) || (name && !strcmp(name, "generic"))) k = &gemm_generic;
    if (!k) return 0;
    selected = k;
    return 1;
}

static const dg_gemm_kernel_info *kernel(void) {
    /* First use picks the best kernel; a benign race: every thread picks the same one. */
    if (!selected) {
        const char *env = getenv("DG_GEMM_KERNEL");
        if (!env || !dg__gemm_use_kernel(env)) dg__gemm_use_kernel(NULL);
    }
    return selected;
}

const char *dg__gemm_kernel_name(void) {
#ifdef DG_USE_BLAS
    return "cblas";
#else
    return kernel()->name;
#endif
}

/* ---- the problem, as seen by every thread ---- */

typedef struct {
    const dg_gemm_kernel_info *k;
    int ta, tb, acc;
    int64_t m, n, k_dim, lda, ldb, ldc;
    const float *a, *b;
    float *c;
    int tm, tn; /* region grid: tm row bands x tn column bands */
} gemm_problem;

/* op(A)(i, p) and op(B)(p, j) */
static inline float elem_a(const gemm_problem *g, int64_t i, int64_t p) {
    return g->ta ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
}
static inline float elem_b(const gemm_problem *g, int64_t p, int64_t j) {
    return g->tb ? g->b[j * g->ldb + p] : g->b[p * g->ldb + j];
}

/* Packs op(A)[i0 .. i0+mc, p0 .. p0+kc) as MR-row panels, each kc groups of MR values;
 * rows past mc are zero so edge tiles run the same kernel. */
static void pack_a(const gemm_problem *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                   float *restrict dst) {
    const int mr = g->k->mr;
    for (int64_t r = 0; r < mc; r += mr) {
        int rows = mc - r < mr ? (int)(mc - r) : mr;
        if (g->ta) {
            /* A stored k x m: each p gives `rows` contiguous values */
            for (int64_t p = 0; p < kc; p++) {
                const float *src = g->a + (p0 + p) * g->lda + i0 + r;
                float *d = dst + p * mr;
                for (int i = 0; i < rows; i++) d[i] = src[i];
                for (int i = rows; i < mr; i++) d[i] = 0.0f;
            }
        } else {
            for (int i = 0; i < rows; i++) {
                const float *src = g->a + (i0 + r + i) * g->lda + p0;
                for (int64_t p = 0; p < kc; p++) dst[p * mr + i] = src[p];
            }
            for (int i = rows; i < mr; i++)
                for (int64_t p = 0; p < kc; p++) dst[p * mr + i] = 0.0f;
        }
        dst += mr * kc;
    }
}

/* Packs op(B)[p0 .. p0+kc, j0 .. j0+nc) as NR-column panels, each kc groups of NR values. */
static void pack_b(const gemm_problem *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                   float *restrict dst) {
    const int nr = g->k->nr;
    for (int64_t col = 0; col < nc; col += nr) {
        int cols = nc - col < nr ? (int)(nc - col) : nr;
        if (!g->tb) {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = g->b + (p0 + p) * g->ldb + j0 + col;
                float *d = dst + p * nr;
                for (int j = 0; j < cols; j++) d[j] = src[j];
                for (int j = cols; j < nr; j++) d[j] = 0.0f;
            }
        } else {
            /* B stored n x k: read each column of op(B) contiguously */
            for (int j = 0; j < cols; j++) {
                const float *src = g->b + (j0 + col + j) * g->ldb + p0;
                for (int64_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            for (int j = cols; j < nr; j++)
                for (int64_t p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
        }
        dst += nr * kc;
    }
}

/* Same arithmetic as the micro-kernels, element by element (FMA kernels round once per
 * step, the generic one twice); used only when packing buffers cannot be had. */
static void region_unpacked(const gemm_problem *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    int fused = g->k != &gemm_generic;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) {
            float *cij = g->c + i * g->ldc + j;
            for (int64_t p0 = 0; p0 < g->k_dim; p0 += KC) {
                int64_t p1 = p0 + KC < g->k_dim ? p0 + KC : g->k_dim;
                float acc = 0.0f;
                for (int64_t p = p0; p < p1; p++) {
                    float x = elem_a(g, i, p), y = elem_b(g, p, j);
                    if (fused) {
                        acc = fmaf(x, y, acc);
                    } else {
                        float prod = x * y;
                        acc = acc + prod;
                    }
                }
                *cij = (g->acc || p0 > 0) ? *cij + acc : acc;
            }
        }
}

/* One buffer per thread, fixed size, kept for the thread's lifetime. Held through a
 * pthread key rather than a _Thread_local pointer so the key's destructor frees it when
 * the thread exits: OpenMP ends worker threads when the thread count shrinks, and a
 * _Thread_local pointer would leak their buffers (found by LeakSanitizer in CI). */
static pthread_key_t pack_key;
static pthread_once_t pack_key_once = PTHREAD_ONCE_INIT;
static int pack_key_ok;

static void pack_key_create(void) { pack_key_ok = pthread_key_create(&pack_key, free) == 0; }

static float *pack_buffer(void) {
    pthread_once(&pack_key_once, pack_key_create);
    if (!pack_key_ok) return NULL; /* the caller falls back to the unpacked loop */
    float *buf = pthread_getspecific(pack_key);
    if (!buf) {
        size_t bytes = (size_t)(MC_MAX * KC + KC * NC_MAX) * sizeof(float);
        buf = aligned_alloc(64, bytes);
        if (buf && pthread_setspecific(pack_key, buf) != 0) {
            free(buf);
            buf = NULL;
        }
    }
    return buf;
}

static void region(const gemm_problem *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    if (i0 >= i1 || j0 >= j1) return;
    float *buf = pack_buffer();
    if (!buf) {
        region_unpacked(g, i0, i1, j0, j1);
        return;
    }
    float *abuf = buf, *bbuf = buf + MC_MAX * KC;
    const int mr = g->k->mr, nr = g->k->nr;
    for (int64_t jc = j0; jc < j1; jc += NC_MAX) {
        int64_t nc = j1 - jc < NC_MAX ? j1 - jc : NC_MAX;
        for (int64_t pc = 0; pc < g->k_dim; pc += KC) {
            int64_t kc = g->k_dim - pc < KC ? g->k_dim - pc : KC;
            int add = g->acc || pc > 0;
            pack_b(g, pc, kc, jc, nc, bbuf);
            for (int64_t ic = i0; ic < i1; ic += MC_MAX) {
                int64_t mc = i1 - ic < MC_MAX ? i1 - ic : MC_MAX;
                pack_a(g, ic, mc, pc, kc, abuf);
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    int n_eff = nc - jr < nr ? (int)(nc - jr) : nr;
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        int m_eff = mc - ir < mr ? (int)(mc - ir) : mr;
                        g->k->run(kc, abuf + ir * kc, bbuf + jr * kc,
                                  g->c + (ic + ir) * g->ldc + jc + jr, g->ldc, m_eff, n_eff, add);
                    }
                }
            }
        }
    }
}

/* Region t of the tm x tn grid: bands of whole micro-tiles, split as evenly as possible. */
static void region_range(void *ctx, int64_t lo, int64_t hi) {
    const gemm_problem *g = ctx;
    const int mr = g->k->mr, nr = g->k->nr;
    int64_t mt = (g->m + mr - 1) / mr, nt = (g->n + nr - 1) / nr;
    for (int64_t t = lo; t < hi; t++) {
        int64_t r = t / g->tn, q = t % g->tn;
        int64_t i0 = mt * r / g->tm * mr, i1 = mt * (r + 1) / g->tm * mr;
        int64_t j0 = nt * q / g->tn * nr, j1 = nt * (q + 1) / g->tn * nr;
        region(g, i0, i1 < g->m ? i1 : g->m, j0, j1 < g->n ? j1 : g->n);
    }
}

/* Picks the grid tm x tn = threads minimising the largest region (in C elements); only
 * speed depends on it. */
static void choose_grid(gemm_problem *g, int threads) {
    const int mr = g->k->mr, nr = g->k->nr;
    int64_t mt = (g->m + mr - 1) / mr, nt = (g->n + nr - 1) / nr;
    int64_t best = -1;
    for (int tm = 1; tm <= threads; tm++) {
        if (threads % tm) continue;
        int tn = threads / tm;
        int64_t rows = (mt + tm - 1) / tm * mr, cols = (nt + tn - 1) / tn * nr;
        if (rows > g->m) rows = g->m;
        if (cols > g->n) cols = g->n;
        int64_t cost = rows * cols;
        if (best < 0 || cost < best) {
            best = cost;
            g->tm = tm;
            g->tn = tn;
        }
    }
}

/* ---- small products: no packing; rows of C split among threads ---- */

typedef struct {
    int ta, tb, acc;
    int64_t n, k, lda, ldb, ldc;
    const float *a, *b;
    float *c;
} small_ctx;

static void small_rows(void *ctx, int64_t lo, int64_t hi) {
    const small_ctx *g = ctx;
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
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
#ifdef DG_USE_BLAS
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b,
                (int)ldb, accumulate ? 1.0f : 0.0f, c, (int)ldc);
    return;
#endif
    if (m * n * k < SMALL_WORK) {
        small_ctx s = {trans_a, trans_b, accumulate, n, k, lda, ldb, ldc, a, b, c};
        dg__parallel_for(m, 2 * n * k, small_rows, &s);
        return;
    }
    gemm_problem g = {kernel(), trans_a, trans_b, accumulate, m, n, k, lda,
                      ldb,      ldc,     a,       b,          c, 1, 1};
    /* The packed kernel does ~16 flops per elementary step, hence the divisor. */
    int threads = dg__threads_for(2 * m * n * k / 16);
    choose_grid(&g, threads);
    int64_t regions = (int64_t)g.tm * g.tn;
    dg__parallel_for(regions, 2 * m * n * k / 16 / regions, region_range, &g);
}
