/* x86-64 fp32 GEMM kernels: AVX-512 (14 x 32 packed tile, direct tiles for small and narrow
 * products, vectorised packing) and AVX2+FMA (6 x 16 tile), compiled with per-function
 * target attributes so the library itself needs no -mavx flags and runs on any x86-64;
 * gemm.c calls them only when __builtin_cpu_supports says the CPU can. Contract (zero
 * start, increasing k, then C = acc or C + acc) in gemm_kernel.h. Must not allocate.
 *
 * 6 x 16 for AVX2: 6 rows x 2 ymm = 12 accumulators plus 2 for the B row and 1 for the
 * broadcast A value fill the 16 ymm registers. */
#include "gemm_kernel.h"

#include <stddef.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define DG_HAVE_X86_KERNELS 1
#include "gemm_avx512.h"
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

/* ---- AVX-512: 14 x 32 packed tile, direct tiles, vectorised packing ---- */

#define MR512 14
#define NR512 32

/* Writes R rows of NV accumulator vectors to C (C = acc or C + acc), through the masks. */
#define STORE_TILE(R, NV)                                                                          \
    do {                                                                                           \
        _Pragma("GCC unroll 28") for (int i = 0; i < (R); i++) {                                   \
            float *cr = c + (int64_t)i * ldc;                                                      \
            if (add) acc[i][0] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), acc[i][0]);          \
            _mm512_mask_storeu_ps(cr, m0, acc[i][0]);                                              \
            if ((NV) > 1) {                                                                        \
                if (add)                                                                           \
                    acc[i][(NV)-1] =                                                               \
                        _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), acc[i][(NV)-1]);         \
                _mm512_mask_storeu_ps(cr + 16, m1, acc[i][(NV)-1]);                                \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* R rows (R <= 14) of a packed 14 x 32 tile: 2R accumulators, 2 B vectors per k step, one
 * broadcast per row. 14 x 32 uses 28 + 2 + 1 of the 32 zmm registers; each k step issues
 * 28 FMAs for 2 vector loads and 14 broadcasts, more independent chains than the two FMA
 * pipes need to hide their latency. gemm.c runs one A panel (14 x KC, 14 KiB) against all
 * B panels of a block, so A stays in L1 while the B panels (32 x KC) stream from L2 (as
 * BLIS keeps the broadcast operand in L1). The k loop is unrolled twice and B is left to
 * the hardware prefetcher: on a Sapphire Rapids-class Xeon, 1024^3 ran 166-171 GFLOP/s
 * against 158-163 with one step per iteration and two prefetch instructions per step.
 *
 * With PACKING (dg_gemm_packing_ukernel) B is instead read in place, rows ldb apart (n valid
 * columns, zero past them), and stored packed to bpack on the way. Rows a stride apart are
 * not followed by the hardware prefetcher, so each is fetched PACKING_AHEAD steps early:
 * about an L3 latency of k steps (on that Xeon, 8 and 16 ran alike, 32 a little slower and
 * none 7% slower on the W2 MLP's forward products with operands from L3). */
#define PACKING_AHEAD 16
AVX512_INLINE void tile_packed(const int R, const int PACKING, int64_t kc, const float *a,
                               const float *b, int64_t ldb, float *bpack, float *c, int64_t ldc,
                               int n, int add) {
    __m512 acc[MR512][2];
    __mmask16 m0, m1;
    col_masks(n, &m0, &m1);
    /* C is needed only at the end but often comes from L3 or memory: fetch it now */
    _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
        _mm_prefetch((const char *)(c + (int64_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (int64_t)i * ldc + 16), _MM_HINT_T0);
    }
    _Pragma("GCC unroll 2") for (int64_t p = 0; p < kc; p++) {
        __m512 b0, b1;
        if (PACKING) {
            b0 = _mm512_maskz_loadu_ps(m0, b);
            b1 = _mm512_maskz_loadu_ps(m1, b + 16);
            /* near the slice's end these name rows past it, maybe past B: prefetches never
             * fault, and the address is made as an integer, never as an out-of-range
             * pointer */
            const uintptr_t ahead = (uintptr_t)b + (uintptr_t)(PACKING_AHEAD * ldb) * sizeof(float);
            _mm_prefetch((const char *)ahead, _MM_HINT_T0);
            _mm_prefetch((const char *)(ahead + 16 * sizeof(float)), _MM_HINT_T0);
            _mm512_store_ps(bpack, b0);
            _mm512_store_ps(bpack + 16, b1);
            bpack += NR512;
        } else {
            b0 = _mm512_load_ps(b);
            b1 = _mm512_load_ps(b + 16);
        }
        _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR512;
        b += ldb;
    }
    STORE_TILE(R, 2);
}

/* The first row of tiles of a block: a full 14-row tile that packs its B panel. */
__attribute__((target("avx512f"))) static void packing_14(int64_t kc, const float *a,
                                                          const float *b, int64_t ldb, float *bpack,
                                                          float *c, int64_t ldc, int n, int add) {
    tile_packed(MR512, 1, kc, a, b, ldb, bpack, c, ldc, n, add);
}

#define DEF_PACKED(R)                                                                              \
    __attribute__((target("avx512f"))) static void packed_##R(                                     \
        int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int n, int add) {       \
        tile_packed(R, 0, kc, a, b, NR512, NULL, c, ldc, n, add);                                  \
    }
DEF_PACKED(14)
DEF_PACKED(8)
DEF_PACKED(4)
DEF_PACKED(2)
DEF_PACKED(1)

/* A partial tile (m < 14 rows, the bottom edge of a block) runs as 8 + 4 + 2 + 1 row pieces
 * so no FMA is spent on padding rows. */
__attribute__((target("avx512f"))) static void kernel_avx512(int64_t kc, const float *a,
                                                             const float *b, float *c, int64_t ldc,
                                                             int m, int n, int add) {
    if (m == MR512) {
        packed_14(kc, a, b, c, ldc, n, add);
        return;
    }
    int i = 0;
    if (m - i >= 8) packed_8(kc, a + i, b, c + i * ldc, ldc, n, add), i += 8;
    if (m - i >= 4) packed_4(kc, a + i, b, c + i * ldc, ldc, n, add), i += 4;
    if (m - i >= 2) packed_2(kc, a + i, b, c + i * ldc, ldc, n, add), i += 2;
    if (m - i >= 1) packed_1(kc, a + i, b, c + i * ldc, ldc, n, add);
}

/* Direct tile: R rows of op(A) read in place (TA: a[p*lda + i], else a[i*lda + p]) times NV
 * vectors of B rows read at stride ldbk (in place or from a small packed strip). Same
 * arithmetic as tile_packed: one zero-started FMA chain per element over the slice. */
AVX512_INLINE void tile_direct(const int R, const int NV, const int TA, int64_t kc, const float *a,
                               int64_t lda, const float *b, int64_t ldbk, __mmask16 m0,
                               __mmask16 m1, float *c, int64_t ldc, int add) {
    __m512 acc[28][2];
    _Pragma("GCC unroll 28") for (int i = 0; i < R; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][NV - 1] = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = b0;
        if (NV > 1) b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        _Pragma("GCC unroll 28") for (int i = 0; i < R; i++) {
            __m512 ai = _mm512_set1_ps(TA ? a[i] : a[(int64_t)i * lda]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            if (NV > 1) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += TA ? lda : 1;
        b += ldbk;
    }
    STORE_TILE(R, NV);
}

typedef void (*direct_tile_fn)(int64_t kc, const float *a, int64_t lda, const float *b,
                               int64_t ldbk, __mmask16 m0, __mmask16 m1, float *c, int64_t ldc,
                               int add);

#define DEF_DIRECT(TA, NV, R)                                                                      \
    __attribute__((target("avx512f"))) static void direct_##TA##_##NV##_##R(                       \
        int64_t kc, const float *a, int64_t lda, const float *b, int64_t ldbk, __mmask16 m0,       \
        __mmask16 m1, float *c, int64_t ldc, int add) {                                            \
        tile_direct(R, NV, TA, kc, a, lda, b, ldbk, m0, m1, c, ldc, add);                          \
    }
#define DEF_DIRECT_ALL(TA)                                                                         \
    DEF_DIRECT(TA, 1, 28)                                                                          \
    DEF_DIRECT(TA, 1, 16)                                                                          \
    DEF_DIRECT(TA, 1, 8)                                                                           \
    DEF_DIRECT(TA, 1, 4)                                                                           \
    DEF_DIRECT(TA, 1, 2)                                                                           \
    DEF_DIRECT(TA, 1, 1)                                                                           \
    DEF_DIRECT(TA, 2, 14)                                                                          \
    DEF_DIRECT(TA, 2, 8)                                                                           \
    DEF_DIRECT(TA, 2, 4)                                                                           \
    DEF_DIRECT(TA, 2, 2)                                                                           \
    DEF_DIRECT(TA, 2, 1)
DEF_DIRECT_ALL(0)
DEF_DIRECT_ALL(1)

/* Tile heights per B width (1 or 2 vectors), largest first, and their functions. */
static const int direct_heights[2][6] = {{28, 16, 8, 4, 2, 1}, {14, 8, 4, 2, 1, 0}};
static const direct_tile_fn direct_fns[2][2][6] = {
    {{direct_0_1_28, direct_0_1_16, direct_0_1_8, direct_0_1_4, direct_0_1_2, direct_0_1_1},
     {direct_0_2_14, direct_0_2_8, direct_0_2_4, direct_0_2_2, direct_0_2_1, NULL}},
    {{direct_1_1_28, direct_1_1_16, direct_1_1_8, direct_1_1_4, direct_1_1_2, direct_1_1_1},
     {direct_1_2_14, direct_1_2_8, direct_1_2_4, direct_1_2_2, direct_1_2_1, NULL}},
};

static void pack_avx512(int by_rows, const float *src, int64_t ld, int rows, int64_t kc, int w,
                        float *dst);

/* Short-k tile: all kc <= KREGS rows of a one-vector B strip sit in registers while rows of
 * A (stored along k) stream past R at a time. The k loop is unrolled, so each A element is
 * a broadcast at a fixed offset from its row's start: no address arithmetic per step (the
 * general direct tile needs one pointer per row, more than there are registers for 28 rows,
 * and spends its time reloading them). Same arithmetic as tile_direct: one zero-started FMA
 * chain per element, in increasing k. */
#define KREGS 20
AVX512_INLINE void rows_kregs(const int R, int kc, const float *a, int64_t lda, const __m512 *bv,
                              __mmask16 m0, float *c, int64_t ldc, int add) {
    __m512 acc[8][1];
    const __mmask16 m1 = 0; /* (STORE_TILE names it; one vector wide, it is never used) */
    _Pragma("GCC unroll 8") for (int i = 0; i < R; i++) acc[i][0] = _mm512_setzero_ps();
    _Pragma("GCC unroll 20") for (int p = 0; p < KREGS; p++) {
        if (p == kc) break;
        _Pragma("GCC unroll 8") for (int i = 0; i < R; i++) acc[i][0] =
            _mm512_fmadd_ps(_mm512_set1_ps(a[(int64_t)i * lda + p]), bv[p], acc[i][0]);
    }
    STORE_TILE(R, 1);
}

/* Rows [0, rows) of C's one-vector strip by short-k tiles of 8 rows, then 4, 2, 1. */
__attribute__((target("avx512f"))) static void strip_kregs(int kc, const float *a, int64_t lda,
                                                           const float *b, int64_t ldbk,
                                                           __mmask16 m0, int64_t rows, float *c,
                                                           int64_t ldc, int add) {
    __m512 bv[KREGS];
    _Pragma("GCC unroll 20") for (int p = 0; p < KREGS; p++) bv[p] =
        p < kc ? _mm512_maskz_loadu_ps(m0, b + p * ldbk) : _mm512_setzero_ps();
    int64_t i = 0;
    for (; rows - i >= 8; i += 8)
        rows_kregs(8, kc, a + i * lda, lda, bv, m0, c + i * ldc, ldc, add);
    if (rows - i >= 4) rows_kregs(4, kc, a + i * lda, lda, bv, m0, c + i * ldc, ldc, add), i += 4;
    if (rows - i >= 2) rows_kregs(2, kc, a + i * lda, lda, bv, m0, c + i * ldc, ldc, add), i += 2;
    if (rows - i >= 1) rows_kregs(1, kc, a + i * lda, lda, bv, m0, c + i * ldc, ldc, add);
}

/* Column tile for op(A) stored along m (A transposed) and few columns: vectors run down 32
 * rows of C (two masked loads of an A row per k step, every lane useful even when n = 10)
 * and each of the NJ <= 12 columns of op(B) is a broadcast, so 2 NJ FMAs per step; the
 * 32 x NJ block is transposed in registers (16 x 16) on its way to C. fma(a, b, acc) is
 * fma(b, a, acc) bit for bit, so this is the same arithmetic as every other path. */
AVX512_INLINE void tile_columns(const int NJ, const int TB, int64_t kc, const float *a, int64_t lda,
                                int rows, const float *b, int64_t ldb, float *c, int64_t ldc,
                                int add) {
    __m512 acc[12][2];
    _Pragma("GCC unroll 12") for (int j = 0; j < NJ; j++) {
        acc[j][0] = _mm512_setzero_ps();
        acc[j][1] = _mm512_setzero_ps();
    }
    __mmask16 am0, am1;
    col_masks(rows, &am0, &am1);
    for (int64_t p = 0; p < kc; p++) {
        __m512 a0 = _mm512_maskz_loadu_ps(am0, a), a1 = _mm512_maskz_loadu_ps(am1, a + 16);
        _Pragma("GCC unroll 12") for (int j = 0; j < NJ; j++) {
            __m512 bj = _mm512_set1_ps(TB ? b[(int64_t)j * ldb] : b[j]);
            acc[j][0] = _mm512_fmadd_ps(a0, bj, acc[j][0]);
            acc[j][1] = _mm512_fmadd_ps(a1, bj, acc[j][1]);
        }
        a += lda;
        b += TB ? 1 : ldb;
    }
    const __mmask16 cm = (__mmask16)((1u << NJ) - 1);
    /* (both loops unrolled: acc must be indexed by constants to stay in registers) */
    _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++) {
        if (16 * v >= rows) break;
        __m512 r[16];
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) r[j] =
            j < NJ ? acc[j][v] : _mm512_setzero_ps();
        transpose16(r);
        int nr = rows - 16 * v < 16 ? rows - 16 * v : 16;
        for (int i = 0; i < nr; i++) {
            float *cr = c + (int64_t)(16 * v + i) * ldc;
            if (add) r[i] = _mm512_add_ps(_mm512_maskz_loadu_ps(cm, cr), r[i]);
            _mm512_mask_storeu_ps(cr, cm, r[i]);
        }
    }
}

typedef void (*column_tile_fn)(int64_t kc, const float *a, int64_t lda, int rows, const float *b,
                               int64_t ldb, float *c, int64_t ldc, int add);

#define DEF_COLUMNS(TB, NJ)                                                                        \
    __attribute__((target("avx512f"))) static void columns_##TB##_##NJ(                            \
        int64_t kc, const float *a, int64_t lda, int rows, const float *b, int64_t ldb, float *c,  \
        int64_t ldc, int add) {                                                                    \
        tile_columns(NJ, TB, kc, a, lda, rows, b, ldb, c, ldc, add);                               \
    }
#define DEF_COLUMNS_ALL(TB)                                                                        \
    DEF_COLUMNS(TB, 1)                                                                             \
    DEF_COLUMNS(TB, 2)                                                                             \
    DEF_COLUMNS(TB, 3)                                                                             \
    DEF_COLUMNS(TB, 4)                                                                             \
    DEF_COLUMNS(TB, 5)                                                                             \
    DEF_COLUMNS(TB, 6)                                                                             \
    DEF_COLUMNS(TB, 7)                                                                             \
    DEF_COLUMNS(TB, 8)                                                                             \
    DEF_COLUMNS(TB, 9)                                                                             \
    DEF_COLUMNS(TB, 10)                                                                            \
    DEF_COLUMNS(TB, 11)                                                                            \
    DEF_COLUMNS(TB, 12)
DEF_COLUMNS_ALL(0)
DEF_COLUMNS_ALL(1)

static const column_tile_fn column_fns[2][12] = {
    {columns_0_1, columns_0_2, columns_0_3, columns_0_4, columns_0_5, columns_0_6, columns_0_7,
     columns_0_8, columns_0_9, columns_0_10, columns_0_11, columns_0_12},
    {columns_1_1, columns_1_2, columns_1_3, columns_1_4, columns_1_5, columns_1_6, columns_1_7,
     columns_1_8, columns_1_9, columns_1_10, columns_1_11, columns_1_12},
};

/* C[i0..i1, j0..j1) by column tiles: op(A) stored along m, at most 24 columns. */
__attribute__((target("avx512f"))) static void direct_columns(const dg_gemm_args *g, int64_t i0,
                                                              int64_t i1, int64_t j0, int64_t j1) {
    for (int64_t pc = 0, ks = dg__gemm_slice(g->k); pc < g->k; pc += ks) {
        int64_t kc = g->k - pc < ks ? g->k - pc : ks;
        int add = g->acc || pc > 0;
        for (int64_t i = i0; i < i1; i += 32) {
            int rows = i1 - i < 32 ? (int)(i1 - i) : 32;
            for (int64_t j = j0; j < j1;) {
                /* 20 columns as 10 + 10 rather than 12 + 8: chunks as even as possible */
                int64_t left = j1 - j, chunks = (left + 11) / 12;
                int nj = (int)((left + chunks - 1) / chunks);
                const float *b = g->tb ? g->b + j * g->ldb + pc : g->b + pc * g->ldb + j;
                column_fns[g->tb != 0][nj - 1](kc, g->a + pc * g->lda + i, g->lda, rows, b, g->ldb,
                                               g->c + i * g->ldc + j, g->ldc, add);
                j += nj;
            }
        }
    }
}

/* C[i0..i1, j0..j1): for each k slice, each 32-column strip of op(B) (read in place when B
 * is not transposed, else packed into `scratch`), the rows in tiles of 28 (one B vector) or
 * 14 (two). No packing of A: small and narrow products spend their time computing. */
__attribute__((target("avx512f"))) static void direct_avx512(const dg_gemm_args *g, int64_t i0,
                                                             int64_t i1, int64_t j0, int64_t j1,
                                                             float *scratch) {
    /* few columns and A stored along m: vectors down the rows waste no lanes (256 x 128 x 10:
     * 175 GF/s against 122 by rows). With k < 64 the transposes at the end cost more than the
     * idle lanes (20 x 32 x 10 and 50 x 32 x 20 run 10-30% slower). */
    if (g->ta && g->n <= 24 && g->n != 16 && g->k >= 64) {
        direct_columns(g, i0, i1, j0, j1);
        return;
    }
    for (int64_t pc = 0, ks = dg__gemm_slice(g->k); pc < g->k; pc += ks) {
        int64_t kc = g->k - pc < ks ? g->k - pc : ks;
        int add = g->acc || pc > 0;
        for (int64_t j = j0; j < j1; j += NR512) {
            int w = j1 - j < NR512 ? (int)(j1 - j) : NR512;
            const float *b;
            int64_t ldbk;
            if (!g->tb) {
                b = g->b + pc * g->ldb + j;
                ldbk = g->ldb;
            } else {
                pack_avx512(1, g->b + j * g->ldb + pc, g->ldb, w, kc, NR512, scratch);
                b = scratch;
                ldbk = NR512;
            }
            int nv = w > 16 ? 2 : 1;
            __mmask16 m0, m1;
            col_masks(w, &m0, &m1);
            if (nv == 1 && !g->ta && kc <= KREGS) {
                strip_kregs((int)kc, g->a + i0 * g->lda + pc, g->lda, b, ldbk, m0, i1 - i0,
                            g->c + i0 * g->ldc + j, g->ldc, add);
                continue;
            }
            for (int64_t i = i0; i < i1;) {
                int h = 0;
                while (direct_heights[nv - 1][h] > i1 - i) h++;
                int rows = direct_heights[nv - 1][h];
                const float *a = g->ta ? g->a + pc * g->lda + i : g->a + i * g->lda + pc;
                direct_fns[g->ta != 0][nv - 1][h](kc, a, g->lda, b, ldbk, m0, m1,
                                                  g->c + i * g->ldc + j, g->ldc, add);
                i += rows;
            }
        }
    }
}

/* Packer (contract in gemm_kernel.h) for panel widths up to 32: copies with masked vector
 * moves, transposes 16 x 16 blocks in registers. */
__attribute__((target("avx512f"))) static void
pack_avx512(int by_rows, const float *src, int64_t ld, int rows, int64_t kc, int w, float *dst) {
    __mmask16 wm0, wm1, rm0, rm1;
    col_masks(w, &wm0, &wm1);
    col_masks(rows, &rm0, &rm1);
    if (!by_rows) {
        for (int64_t p = 0; p < kc; p++) {
            const float *s = src + p * ld;
            _mm512_mask_storeu_ps(dst + p * w, wm0, _mm512_maskz_loadu_ps(rm0, s));
            if (w > 16)
                _mm512_mask_storeu_ps(dst + p * w + 16, wm1, _mm512_maskz_loadu_ps(rm1, s + 16));
        }
        return;
    }
    for (int half = 0; half * 16 < w; half++) {
        int r0 = half * 16, nr = rows - r0 < 16 ? rows - r0 : 16;
        __mmask16 om = half ? wm1 : wm0;
        for (int64_t p = 0; p < kc; p += 16) {
            int np = kc - p < 16 ? (int)(kc - p) : 16;
            __mmask16 pm = (__mmask16)(np == 16 ? 0xFFFF : (1u << np) - 1);
            __m512 r[16];
            /* rows past nr load nothing (an empty mask, at a valid row): no branches */
            _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) r[i] = _mm512_maskz_loadu_ps(
                i < nr ? pm : 0, src + (int64_t)(r0 + (i < nr ? i : 0)) * ld + p);
            transpose16(r);
            for (int q = 0; q < np; q++) _mm512_mask_storeu_ps(dst + (p + q) * w + r0, om, r[q]);
        }
    }
}

const dg_gemm_kernel_info dg__gemm_avx512 = {"avx512",    MR512,         NR512,
                                             24 * MR512,  1024,          kernel_avx512,
                                             pack_avx512, direct_avx512, packing_14};

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

const dg_gemm_kernel_info dg__gemm_avx2 = {"avx2", 6, 16, 144, 512, kernel_avx2, NULL, NULL, NULL};

#else /* not x86-64 with GCC/Clang: only the portable kernel exists */

int dg__gemm_avx512_available(void) { return 0; }
int dg__gemm_avx2_available(void) { return 0; }
const dg_gemm_kernel_info dg__gemm_avx512 = {"avx512", 14, 32, 336, 1024, NULL, NULL, NULL, NULL};
const dg_gemm_kernel_info dg__gemm_avx2 = {"avx2", 6, 16, 144, 512, NULL, NULL, NULL, NULL};

#endif
