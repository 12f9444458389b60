/* Single-precision GEMM used by matmul: C = op(A) op(B) (+ C), row-major. Must not
 * allocate per call or depend on the thread count for a single bit of the result.
 *
 * Three fp32 paths, chosen from the shape only:
 * - packed (Goto/BLIS): C is split into one rectangular region per thread (a fixed grid of
 *   whole micro-tiles); inside its region a thread walks NC-column blocks, then slices of
 *   k (dg__gemm_slice: a function of k alone, whatever the thread count), packs the B slice into
 *   NR-wide panels and each MC-row block of A into MR-high panels (transposes are absorbed
 *   here), and runs the register-tiled micro-kernel over the tiles (for a B stored by rows
 *   and a region of at most two A blocks, the first row of tiles packs the B block as it
 *   computes, rather than a separate pass before it);
 * - direct (kernels that have one, i.e. AVX-512): narrow (n <= 64), few-row (m <= 48) and
 *   small products read A in place and B in place or from one small strip, so no time goes
 *   into packing data that is used only a few times (use_direct);
 * - tiny (kernels without a direct path): a plain loop over rows of C.
 * A direct product with few rows and a deep B is split among threads by depth (bands of k
 * slices, see depth_band) rather than by rows, so each thread reads only its part of B.
 * In the packed and direct paths every element of C is the sum, slice by slice in
 * increasing k, of a zero-started in-order FMA chain, so neither the thread count, nor the
 * region grid, nor the path changes a single bit of the result.
 *
 * Packing buffers are per thread (thread-local, allocated once at a fixed size and
 * reused): no allocation in steady state. If that allocation fails, the thread computes
 * its region with a scalar loop of the same arithmetic instead of failing.
 * With dg_set_matmul_precision(DG_MATMUL_BF16) and a CPU that has AMX or AVX512-BF16 the
 * call goes to a bf16 kernel (gemm_bf16_x86.c) instead; with DG_USE_BLAS to cblas_sgemm
 * (not thread-count invariant then: that is up to the BLAS). */
#define _DEFAULT_SOURCE /* sysconf(_SC_LEVEL2_CACHE_SIZE) */
#include "gemm_kernel.h"
#include "kernels.h"
#include "dagrad/precision.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DG_USE_BLAS
#include <cblas.h>
#endif

#define KC         DG_GEMM_KC
#define BUF_FLOATS ((size_t)(336 + 1024) * KC) /* largest mc + nc of any kernel, times KC */
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

static const dg_gemm_kernel_info gemm_generic = {"generic",      4,    16,   144, 512,
                                                 kernel_generic, NULL, NULL, NULL};

/* ---- kernel selection ---- */

static const dg_gemm_kernel_info *selected;
static int forced_path; /* 0 automatic, 1 packed, 2 direct */

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

int dg__gemm_force_path(int path) {
    int old = forced_path;
    forced_path = path;
    return old;
}

/* ---- reduced precision: the public switch and the bf16 kernel choice ---- */

static dg_matmul_precision precision = DG_MATMUL_FP32;
static const dg_gemm_bf16_info *bf16_kernel;
static int bf16_chosen;

int dg__gemm_bf16_use(const char *name) {
    const dg_gemm_bf16_info *k = NULL;
    if (name && !strcmp(name, "none")) {
        bf16_kernel = NULL;
        bf16_chosen = 1;
        return 1;
    }
    if (!name || !strcmp(name, "amx"))
        k = dg__gemm_bf16_amx.available() ? &dg__gemm_bf16_amx : NULL;
    if ((!name && !k) || (name && !strcmp(name, "avx512bf16")))
        k = dg__gemm_bf16_avx512.available() ? &dg__gemm_bf16_avx512 : NULL;
    if (!k && name) return 0;
    bf16_kernel = k;
    bf16_chosen = 1;
    return 1;
}

static const dg_gemm_bf16_info *bf16(void) {
    if (!bf16_chosen) {
        const char *env = getenv("DG_GEMM_BF16");
        if (!env || !dg__gemm_bf16_use(env)) dg__gemm_bf16_use(NULL);
    }
    return bf16_kernel;
}

const char *dg__gemm_bf16_name(void) {
    const dg_gemm_bf16_info *k = bf16();
    return k ? k->name : NULL;
}

dg_status dg_set_matmul_precision(dg_matmul_precision p) {
    if (p != DG_MATMUL_FP32 && p != DG_MATMUL_BF16)
        return dg_set_error(NULL, DG_ERR_ARG, "set_matmul_precision: unknown precision %d", (int)p);
    precision = p;
    return DG_OK;
}

dg_matmul_precision dg_get_matmul_precision(void) { return precision; }

int dg_matmul_bf16_supported(void) { return bf16() != NULL; }

const char *dg_matmul_kernel(void) {
#ifndef DG_USE_BLAS
    if (precision == DG_MATMUL_BF16 && bf16()) return bf16()->name;
#endif
    return dg__gemm_kernel_name();
}

/* ---- the problem, as seen by every thread ---- */

typedef struct {
    dg_gemm_args p;
    const dg_gemm_kernel_info *k;
    int direct;           /* direct path, else packed */
    int64_t ru, cu;       /* regions are made of ru x cu units of C (whole micro-tiles) */
    int tm, tn;           /* region grid: tm row bands x tn column bands */
    int tk;               /* > 1: depth bands instead (see depth_band); tm = tn = 1 */
    float *parts;         /* depth bands: the results of the slices past band 0, m x n each */
    int64_t nc;           /* columns per B block */
    dg_gemm_done_fn done; /* NULL, or told of each finished block of C */
    void *done_ctx;
} gemm_problem;

/* Columns per B block: the kernel's choice (sized for a 2 MiB L2), halved while a KC x nc
 * block would fill more than half of this CPU's L2 (1 MiB per core on Zen 4/5). Speed only:
 * blocking never changes which products an element sums, or in which order. */
static int64_t block_nc(const dg_gemm_kernel_info *k) {
    static long l2 = -1; /* a benign race: every thread computes the same value */
    if (l2 < 0) {
        long v = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
        v = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        l2 = v > 0 ? v : 0;
    }
    int64_t nc = k->nc;
    while (l2 > 0 && nc > 4 * k->nr && (int64_t)KC * nc * (int64_t)sizeof(float) > l2 / 2) nc /= 2;
    return nc;
}

/* op(A)(i, p) and op(B)(p, j) */
static inline float elem_a(const dg_gemm_args *g, int64_t i, int64_t p) {
    return g->ta ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
}
static inline float elem_b(const dg_gemm_args *g, int64_t p, int64_t j) {
    return g->tb ? g->b[j * g->ldb + p] : g->b[p * g->ldb + j];
}

/* The packer contract of gemm_kernel.h in plain loops. */
static void pack_portable(int by_rows, const float *src, int64_t ld, int rows, int64_t kc, int w,
                          float *restrict dst) {
    if (by_rows) {
        for (int r = 0; r < rows; r++)
            for (int64_t p = 0; p < kc; p++) dst[p * w + r] = src[r * ld + p];
        for (int r = rows; r < w; r++)
            for (int64_t p = 0; p < kc; p++) dst[p * w + r] = 0.0f;
    } else {
        for (int64_t p = 0; p < kc; p++) {
            for (int r = 0; r < rows; r++) dst[p * w + r] = src[p * ld + r];
            for (int r = rows; r < w; r++) dst[p * w + r] = 0.0f;
        }
    }
}

/* Packs `lines` lines stored across rows (line r's value p at src[p*ld + r]) as w-wide
 * panels of kc groups (panel q/w at dst + q*kc). Walks p in chunks of 8 across all panels,
 * so each source row is read front to back and the hardware prefetchers follow it; panel
 * by panel, every 128-byte piece would come from another row (4 KiB apart at n = 1024),
 * each one a cache miss of its own. */
static void pack_across_rows(dg_gemm_packer pack, const float *src, int64_t ld, int64_t lines,
                             int64_t kc, int w, float *dst) {
    for (int64_t p0 = 0; p0 < kc; p0 += 8) {
        int64_t pn = kc - p0 < 8 ? kc - p0 : 8;
        for (int64_t q = 0; q < lines; q += w) {
            int cols = lines - q < w ? (int)(lines - q) : w;
            pack(0, src + p0 * ld + q, ld, cols, pn, w, dst + q * kc + p0 * w);
        }
    }
}

/* Packs op(A)[i0 .. i0+mc, p0 .. p0+kc) as MR-row panels, each kc groups of MR values;
 * rows past mc are zero so edge tiles run the same kernel. */
static void pack_a(const gemm_problem *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                   float *restrict dst) {
    const int mr = g->k->mr;
    const dg_gemm_args *a = &g->p;
    dg_gemm_packer pack = g->k->pack ? g->k->pack : pack_portable;
    if (a->ta) {
        pack_across_rows(pack, a->a + p0 * a->lda + i0, a->lda, mc, kc, mr, dst);
        return;
    }
    for (int64_t r = 0; r < mc; r += mr) {
        int rows = mc - r < mr ? (int)(mc - r) : mr;
        pack(1, a->a + (i0 + r) * a->lda + p0, a->lda, rows, kc, mr, dst + r * kc);
    }
}

/* Packs op(B)[p0 .. p0+kc, j0 .. j0+nc) as NR-column panels, each kc groups of NR values. */
static void pack_b(const gemm_problem *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                   float *restrict dst) {
    const int nr = g->k->nr;
    const dg_gemm_args *b = &g->p;
    dg_gemm_packer pack = g->k->pack ? g->k->pack : pack_portable;
    if (!b->tb) {
        pack_across_rows(pack, b->b + p0 * b->ldb + j0, b->ldb, nc, kc, nr, dst);
        return;
    }
    for (int64_t col = 0; col < nc; col += nr) {
        int cols = nc - col < nr ? (int)(nc - col) : nr;
        pack(1, b->b + (j0 + col) * b->ldb + p0, b->ldb, cols, kc, nr, dst + col * kc);
    }
}

/* Same arithmetic as the micro-kernels, element by element (FMA kernels round once per
 * step, the generic one twice); used only when packing buffers cannot be had. */
static void region_unpacked(const gemm_problem *pr, int64_t i0, int64_t i1, int64_t j0,
                            int64_t j1) {
    const dg_gemm_args *g = &pr->p;
    int fused = pr->k != &gemm_generic;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) {
            float *cij = g->c + i * g->ldc + j;
            const int64_t ks = dg__gemm_slice(g->k);
            for (int64_t p0 = 0; p0 < g->k; p0 += ks) {
                int64_t p1 = p0 + ks < g->k ? p0 + ks : g->k;
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
        buf = aligned_alloc(64, BUF_FLOATS * sizeof(float));
        if (buf && pthread_setspecific(pack_key, buf) != 0) {
            free(buf);
            buf = NULL;
        }
    }
    return buf;
}

float *dg__gemm_thread_buffer(size_t *floats) {
    *floats = BUF_FLOATS;
    return pack_buffer();
}

static void region(const gemm_problem *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    if (i0 >= i1 || j0 >= j1) return;
    float *buf = pack_buffer();
    if (!buf) {
        region_unpacked(g, i0, i1, j0, j1);
        if (g->done) g->done(g->done_ctx, i0, i1, j0, j1);
        return;
    }
    const int mr = g->k->mr, nr = g->k->nr, mcb = g->k->mc;
    const int64_t ncb = g->nc;
    float *abuf = buf, *bbuf = buf + (size_t)mcb * KC;
    const dg_gemm_args *p = &g->p;
    /* B stored by rows, used by at most two A blocks (where packing it apart is a large share
     * of the work) and a region at least one tile high: the first row of tiles packs each B
     * block as it computes (dg_gemm_packing_ukernel). Measured on a Sapphire Rapids-class
     * Xeon: the W2 MLP's forward products 6-8% faster, its 8 products 3-4%; at 1024^3 on one
     * thread (1024 rows: four A blocks) it was 1.5% slower, hence the bound. */
    const int fuse_b = g->k->run_packing_b && !p->tb && i1 - i0 >= mr && i1 - i0 <= 2 * mcb;
    for (int64_t jc = j0; jc < j1; jc += ncb) {
        int64_t nc = j1 - jc < ncb ? j1 - jc : ncb;
        for (int64_t pc = 0, ks = dg__gemm_slice(p->k); pc < p->k; pc += ks) {
            int64_t kc = p->k - pc < ks ? p->k - pc : ks;
            int add = p->acc || pc > 0, last = pc + kc == p->k;
            if (!fuse_b) pack_b(g, pc, kc, jc, nc, bbuf);
            for (int64_t ic = i0; ic < i1; ic += mcb) {
                int64_t mc = i1 - ic < mcb ? i1 - ic : mcb;
                pack_a(g, ic, mc, pc, kc, abuf);
                for (int64_t ir = 0; ir < mc; ir += mr) {
                    int m_eff = mc - ir < mr ? (int)(mc - ir) : mr;
                    float *crow = p->c + (ic + ir) * p->ldc + jc;
                    if (fuse_b && ic == i0 && ir == 0) { /* a full row: packs the B block */
                        const float *bsrc = p->b + pc * p->ldb + jc;
                        for (int64_t jr = 0; jr < nc; jr += nr) {
                            int n_eff = nc - jr < nr ? (int)(nc - jr) : nr;
                            g->k->run_packing_b(kc, abuf, bsrc + jr, p->ldb, bbuf + jr * kc,
                                                crow + jr, p->ldc, n_eff, add);
                        }
                    } else {
                        for (int64_t jr = 0; jr < nc; jr += nr) {
                            int n_eff = nc - jr < nr ? (int)(nc - jr) : nr;
                            g->k->run(kc, abuf + ir * kc, bbuf + jr * kc, crow + jr, p->ldc, m_eff,
                                      n_eff, add);
                        }
                    }
                    /* a row panel of the block is final: hand it on while it is in cache */
                    if (last && g->done)
                        g->done(g->done_ctx, ic + ir, ic + ir + m_eff, jc, jc + nc);
                }
            }
        }
    }
}

static void direct_region(const gemm_problem *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    float *buf = pack_buffer();
    if (!buf)
        region_unpacked(g, i0, i1, j0, j1);
    else
        g->k->direct(&g->p, i0, i1, j0, j1, buf);
    if (g->done) g->done(g->done_ctx, i0, i1, j0, j1); /* small: still in cache */
}

/* C[i0..i1, j0..j1) by the problem's path. */
static void any_region(const gemm_problem *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    if (g->direct)
        direct_region(g, i0, i1, j0, j1);
    else
        region(g, i0, i1, j0, j1);
}

/* Depth bands. A product with few rows and a deep, wide B (a layer's weights, with a
 * small batch) split into row bands has every thread read all of B, and the thread that
 * updates a part of the weights afterwards is not the one that reads it next (each step
 * moves B between cores). Split by depth instead, thread t reads only band t of the k
 * slices: the rows of B that the same thread's row band of the weight gradient (op(A)^T
 * times the gradient, split by rows) and its range of the optimizer update also touch.
 * Band 0 sums its slices into C as usual; the other bands leave each slice's result (the
 * same zero-started chain) in `parts`, which the caller adds to C slice by slice, in
 * increasing k: the same sums in the same order as one thread, to the bit. */
static gemm_problem slice_problem(const gemm_problem *g, int64_t s, int64_t ks, float *c,
                                  int64_t ldc, int acc) {
    gemm_problem q = *g;
    int64_t p0 = s * ks;
    q.p.k = g->p.k - p0 < ks ? g->p.k - p0 : ks;
    q.p.a = g->p.ta ? g->p.a + p0 * g->p.lda : g->p.a + p0;
    q.p.b = g->p.tb ? g->p.b + p0 : g->p.b + p0 * g->p.ldb;
    q.p.c = c;
    q.p.ldc = ldc;
    q.p.acc = acc;
    q.done = NULL;
    return q;
}

static int64_t n_slices(int64_t k) {
    int64_t ks = dg__gemm_slice(k);
    return (k + ks - 1) / ks;
}

static void depth_band(const gemm_problem *g, int64_t t) {
    const int64_t ks = dg__gemm_slice(g->p.k), slices = n_slices(g->p.k);
    const int64_t s0 = slices * t / g->tk, s1 = slices * (t + 1) / g->tk;
    const int64_t first_part = slices / g->tk, mn = g->p.m * g->p.n;
    for (int64_t s = s0; s < s1; s++) {
        gemm_problem q = t == 0
                             ? slice_problem(g, s, ks, g->p.c, g->p.ldc, g->p.acc || s > 0)
                             : slice_problem(g, s, ks, g->parts + (s - first_part) * mn, g->p.n, 0);
        direct_region(&q, 0, q.p.m, 0, q.p.n);
    }
}

/* After the bands: C += each part, in increasing k (see depth_band). */
static void add_parts(const gemm_problem *g) {
    const int64_t slices = n_slices(g->p.k), first_part = slices / g->tk, mn = g->p.m * g->p.n;
    for (int64_t s = first_part; s < slices; s++) {
        const float *part = g->parts + (s - first_part) * mn;
        for (int64_t i = 0; i < g->p.m; i++) {
            float *restrict c = g->p.c + i * g->p.ldc;
            const float *restrict q = part + i * g->p.n;
            for (int64_t j = 0; j < g->p.n; j++) c[j] += q[j];
        }
    }
}

/* Whether to split a direct product by depth among `threads`: few rows (the parts are
 * small next to B), the slices divide evenly, and the parts fit in the caller's buffer
 * after the direct path's own scratch. */
static int use_depth_bands(const dg_gemm_args *p, int threads) {
    int64_t slices = n_slices(p->k);
    if (threads < 2 || slices < threads || slices % threads) return 0;
    int64_t parts = (slices - slices / threads) * p->m * p->n;
    return p->m * slices * 2 <= p->k && (size_t)parts <= BUF_FLOATS - (size_t)KC * 32;
}

/* Region t of the tm x tn grid: bands of whole units, split as evenly as possible. */
static void region_range(void *ctx, int64_t lo, int64_t hi) {
    const gemm_problem *g = ctx;
    if (g->tk > 1) {
        for (int64_t t = lo; t < hi; t++) depth_band(g, t);
        return;
    }
    int64_t mt = (g->p.m + g->ru - 1) / g->ru, nt = (g->p.n + g->cu - 1) / g->cu;
    for (int64_t t = lo; t < hi; t++) {
        int64_t r = t / g->tn, q = t % g->tn;
        int64_t i0 = mt * r / g->tm * g->ru, i1 = mt * (r + 1) / g->tm * g->ru;
        int64_t j0 = nt * q / g->tn * g->cu, j1 = nt * (q + 1) / g->tn * g->cu;
        i1 = i1 < g->p.m ? i1 : g->p.m;
        j1 = j1 < g->p.n ? j1 : g->p.n;
        if (i0 >= i1 || j0 >= j1) continue;
        any_region(g, i0, i1, j0, j1);
    }
}

/* Picks the grid tm x tn = threads minimising the largest region (in C elements); on ties
 * the one with more row bands, whose threads pack disjoint parts of A (the transposing
 * pack) and each a copy of B. Only speed depends on it. */
static void choose_grid(gemm_problem *g, int threads) {
    int64_t mt = (g->p.m + g->ru - 1) / g->ru, nt = (g->p.n + g->cu - 1) / g->cu;
    int64_t best = -1;
    for (int tm = threads; tm >= 1; tm--) {
        if (threads % tm) continue;
        int tn = threads / tm;
        int64_t rows = (mt + tm - 1) / tm * g->ru, cols = (nt + tn - 1) / tn * g->cu;
        if (rows > g->p.m) rows = g->p.m;
        if (cols > g->p.n) cols = g->p.n;
        int64_t cost = rows * cols;
        if (best < 0 || cost < best) {
            best = cost;
            g->tm = tm;
            g->tn = tn;
        }
    }
}

/* Direct when packing would cost more than it saves: narrow outputs (each element of A is
 * used at most 64 times: packing A is a copy of it per 64 FMAs at most), few rows (each
 * packed B panel would serve at most 48 rows) and small products whose operands sit in
 * L1/L2 anyway (measured: 96^3 and the course MLP's products run 5-25% faster direct,
 * 128 x 256 x 10 and 256^3 slower on a Xeon; on a Zen 5, 784 x 32 x 50 (the course MLP's
 * dW1) and 784 x 32 x 64 run 151 and 195 GFLOP/s direct against 127 and 162 packed; on a
 * Sapphire Rapids-class Xeon, direct / packed: 1.01-4.0 for n <= 64, 1.17 at 64^3, 0.99 at
 * 128^3, 0.90-0.95 for 256^3, 128 x 512 x 256 and 512 x 128^T x 256). */
static int use_direct(const dg_gemm_kernel_info *k, int64_t m, int64_t n, int64_t kd) {
    if (!k->direct || forced_path == 1) return 0;
    if (forced_path == 2) return 1;
    return n <= 64 || m <= 48 || m * n * kd <= 64 * 64 * 64;
}

/* ---- tiny products (kernels without a direct path): rows of C split among threads ---- */

typedef struct {
    dg_gemm_args args;
    dg_gemm_done_fn done;
    void *done_ctx;
} small_problem;

static void small_rows(void *ctx, int64_t lo, int64_t hi) {
    const small_problem *sp = ctx;
    const dg_gemm_args *g = &sp->args;
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
    if (sp->done) sp->done(sp->done_ctx, lo, hi, 0, n);
}

int dg__gemm_done(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate,
                  dg_gemm_done_fn done, void *ctx) {
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        return 0;
    }
#ifdef DG_USE_BLAS
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b,
                (int)ldb, accumulate ? 1.0f : 0.0f, c, (int)ldc);
    return 0;
#endif
    dg_gemm_args args = {
        trans_a != 0, trans_b != 0, accumulate != 0, m, n, k, lda, ldb, ldc, a, b, c};
    if (precision == DG_MATMUL_BF16 && bf16()) {
        bf16()->gemm(&args);
        return 0;
    }
    const dg_gemm_kernel_info *kern = kernel();
    int direct = use_direct(kern, m, n, k);
    if (!direct && !kern->direct && m * n * k < SMALL_WORK) {
        small_problem sp = {args, done, ctx};
        dg__parallel_for(m, 2 * n * k, small_rows, &sp);
        return done != NULL;
    }
    /* direct regions may cut anywhere (in 8-row steps for balance), packed ones at tiles */
    gemm_problem g = {args, kern, direct, direct ? 8 : kern->mr, kern->nr, 1,
                      1,    1,    NULL,   block_nc(kern),        done,     ctx};
    /* The packed kernel does ~16 flops per elementary step, hence the divisor. */
    int threads = dg__threads_for(2 * m * n * k / 16);
    if (threads == 1) { /* the whole product as one region, without the grid's arithmetic */
        any_region(&g, 0, m, 0, n);
        return done != NULL;
    }
    if (direct && use_depth_bands(&args, threads) && (g.parts = pack_buffer()) != NULL) {
        g.parts += (size_t)KC * 32; /* past the scratch of the band the caller runs */
        g.tk = threads;
        dg__parallel_for(threads, 2 * m * n * k / 16 / threads, region_range, &g);
        add_parts(&g);
        if (done) done(ctx, 0, m, 0, n);
        return done != NULL;
    }
    choose_grid(&g, threads);
    int64_t regions = (int64_t)g.tm * g.tn;
    dg__parallel_for(regions, 2 * m * n * k / 16 / regions, region_range, &g);
    return done != NULL;
}

void dg_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
             const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate) {
    dg__gemm_done(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, accumulate, NULL, NULL);
}
