/* Reduced-precision GEMM (bf16 inputs, fp32 accumulation) for dg_set_matmul_precision:
 * an AMX kernel (Sapphire Rapids and later) and an AVX512-BF16 kernel (Cooper Lake, Zen 4
 * and later). gemm.c picks one at run time; on other CPUs and compilers both report
 * themselves unavailable and products stay fp32. Must not allocate: packing goes to the
 * thread's fp32 packing buffer.
 *
 * Both kernels round op(A) and op(B) to bf16 (nearest even) while packing, as pairs of
 * consecutive k values in one 32-bit word (the layout VDPBF16PS and TDPBF16PS multiply:
 * a.lo*b.lo + a.hi*b.hi per word). k is cut into slices of KCB values whose bounds depend
 * only on k, and each thread owns a fixed region of C, so results are bitwise identical for
 * any thread count (as for fp32; the two bf16 kernels differ from each other and from fp32).
 *
 * AMX: a 32 x 32 block of C lives in four 16 x 16 fp32 tiles (tmm0-3); each step of 32 k
 * values loads two 16 x 32 bf16 tiles of A (tmm4-5, rows packed row-major) and two of B
 * (tmm6-7, packed in pairs: row q of a tile holds (b[2q][j], b[2q+1][j]) for 16 columns j)
 * and issues four TDPBF16PS. Linux hands out the tile state only after
 * arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); available() asks once per process.
 *
 * AVX512-BF16: the fp32 kernel's 14 x 32 register tile with VDPBF16PS, two k per step. */
#define _GNU_SOURCE /* syscall */
#include "gemm_kernel.h"
#include "kernels.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) &&                                                   \
    ((defined(__clang__) && __clang_major__ >= 12) ||                                              \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define DG_HAVE_BF16_KERNELS 1
#include "gemm_avx512.h"

#include <cpuid.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#ifdef DG_HAVE_BF16_KERNELS

#define KCB         512 /* k values per slice (256 pairs) */
#define BF16_TARGET "avx512f,avx512bw,avx512bf16"
#define BF16_INLINE __attribute__((target(BF16_TARGET), always_inline)) static inline

/* ---- CPU and OS support ---- */

static int cpuid_bit(unsigned leaf, unsigned sub, int reg, unsigned bit) {
    unsigned r[4] = {0};
    if ((unsigned)__get_cpuid_max(0, NULL) < leaf) return 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    return (r[reg] & bit) != 0;
}

static int have_avx512bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           cpuid_bit(7, 1, 0, 1u << 5); /* CPUID.(7,1):EAX[5] AVX512_BF16 */
}

static int amx_ok;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void) {
    /* CPUID.(7,0):EDX[22] AMX-BF16, [24] AMX-TILE; OSXSAVE, then XCR0[17:18] (tile state) */
    if (!have_avx512bf16() || !cpuid_bit(7, 0, 3, 1u << 22) || !cpuid_bit(7, 0, 3, 1u << 24) ||
        !cpuid_bit(1, 0, 2, 1u << 27))
        return;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return;
    /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18: process-wide permission */
    amx_ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

static int amx_available(void) {
    pthread_once(&amx_once, amx_probe);
    return amx_ok;
}

/* ---- packing to bf16 pairs ---- */

/* 16 words (bf16(even[l]), bf16(odd[l])), low half even: the pair layout of both kernels. */
BF16_INLINE __m512i pair16(__m512 even, __m512 odd) {
    static const uint16_t interleave[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,
                                            21, 6,  22, 7,  23, 8,  24, 9,  25, 10, 26,
                                            11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(odd, even); /* words 0-15 even, 16-31 odd */
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(interleave), both);
}

/* 32 consecutive k values of one line as 16 pair words; `valid` of them are real (rest 0). */
BF16_INLINE __m512i line_pairs(const float *s, int valid) {
    __mmask16 m0, m1;
    col_masks(valid < 0 ? 0 : valid, &m0, &m1);
    __m512 x0 = _mm512_maskz_loadu_ps(m0, s), x1 = _mm512_maskz_loadu_ps(m1, s + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(x1, x0); /* already in pair order */
}

/* Pair-major panel: dst[q*w + l] = pair q of line l, for `lines` lines (zero up to w, w <= 32)
 * and nq = ceil(kc / 2) pairs. Line l's value p is src[l*ld + p] when by_rows, else
 * src[p*ld + l]. */
__attribute__((target(BF16_TARGET))) static void pack_pairs_qmajor(int by_rows, const float *src,
                                                                   int64_t ld, int lines,
                                                                   int64_t kc, int w,
                                                                   uint32_t *dst) {
    int64_t nq = (kc + 1) / 2;
    for (int h = 0; h * 16 < w; h++) {
        int nl = lines - 16 * h;
        nl = nl < 0 ? 0 : nl > 16 ? 16 : nl;
        int wl = w - 16 * h > 16 ? 16 : w - 16 * h;
        __mmask16 lm = (__mmask16)((1u << nl) - 1), wm = (__mmask16)((1u << wl) - 1);
        if (!by_rows) {
            for (int64_t q = 0; q < nq; q++) {
                const float *s = src + 2 * q * ld + 16 * h;
                __m512 even = _mm512_maskz_loadu_ps(lm, s);
                __m512 odd =
                    2 * q + 1 < kc ? _mm512_maskz_loadu_ps(lm, s + ld) : _mm512_setzero_ps();
                _mm512_mask_storeu_epi32(dst + q * w + 16 * h, wm, pair16(even, odd));
            }
        } else {
            for (int64_t q0 = 0; q0 < nq; q0 += 16) {
                __m512 r[16];
                for (int l = 0; l < 16; l++)
                    r[l] = l < nl ? (__m512)line_pairs(src + (16 * h + l) * ld + 2 * q0,
                                                       (int)(kc - 2 * q0 < 32 ? kc - 2 * q0 : 32))
                                  : _mm512_setzero_ps();
                transpose16(r);
                int nqq = nq - q0 < 16 ? (int)(nq - q0) : 16;
                for (int q = 0; q < nqq; q++)
                    _mm512_mask_storeu_epi32(dst + (q0 + q) * w + 16 * h, wm, (__m512i)r[q]);
            }
        }
    }
}

/* Line-major block for AMX A tiles: dst[l*nqp + q] = pair q of line l, for lines < rows_pad
 * (a multiple of 16; lines past `lines` are zero) and q < nqp (a multiple of 16; pairs past
 * kc are zero). Line l's value p is src[l*ld + p] when by_rows, else src[p*ld + l]. */
__attribute__((target(BF16_TARGET))) static void pack_pairs_lmajor(int by_rows, const float *src,
                                                                   int64_t ld, int lines,
                                                                   int rows_pad, int64_t kc,
                                                                   int64_t nqp, uint32_t *dst) {
    if (by_rows) {
        for (int l = 0; l < rows_pad; l++)
            for (int64_t q0 = 0; q0 < nqp; q0 += 16) {
                int valid = l < lines ? (int)(kc - 2 * q0 < 32 ? kc - 2 * q0 : 32) : 0;
                _mm512_storeu_si512(dst + l * nqp + q0,
                                    valid > 0 ? line_pairs(src + l * ld + 2 * q0, valid)
                                              : _mm512_setzero_si512());
            }
        return;
    }
    for (int l0 = 0; l0 < rows_pad; l0 += 16) {
        int nl = lines - l0;
        nl = nl < 0 ? 0 : nl > 16 ? 16 : nl;
        __mmask16 lm = (__mmask16)((1u << nl) - 1);
        for (int64_t q0 = 0; q0 < nqp; q0 += 16) {
            __m512 r[16];
            for (int q = 0; q < 16; q++) {
                int64_t p = 2 * (q0 + q);
                const float *s = src + p * ld + l0;
                __m512 even = p < kc ? _mm512_maskz_loadu_ps(lm, s) : _mm512_setzero_ps();
                __m512 odd = p + 1 < kc ? _mm512_maskz_loadu_ps(lm, s + ld) : _mm512_setzero_ps();
                r[q] = (__m512)pair16(even, odd);
            }
            transpose16(r);
            for (int l = 0; l < 16; l++)
                _mm512_storeu_ps((float *)(dst + (l0 + l) * nqp + q0), r[l]);
        }
    }
}

/* ---- shared driver: regions of C per thread, slices of k, blocks of A and B ---- */

typedef struct bf16_problem bf16_problem;
struct bf16_problem {
    const dg_gemm_args *p;
    int mr, nr, mc, nc; /* tile and block sizes of the kernel */
    int tm, tn;         /* region grid */
    void (*region)(const bf16_problem *b, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                   uint32_t *buf);
};

static void bf16_range(void *ctx, int64_t lo, int64_t hi) {
    const bf16_problem *b = ctx;
    size_t floats;
    uint32_t *buf = (uint32_t *)dg__gemm_thread_buffer(&floats);
    int64_t mt = (b->p->m + b->mr - 1) / b->mr, nt = (b->p->n + b->nr - 1) / b->nr;
    for (int64_t t = lo; t < hi; t++) {
        int64_t r = t / b->tn, q = t % b->tn;
        int64_t i0 = mt * r / b->tm * b->mr, i1 = mt * (r + 1) / b->tm * b->mr;
        int64_t j0 = nt * q / b->tn * b->nr, j1 = nt * (q + 1) / b->tn * b->nr;
        i1 = i1 < b->p->m ? i1 : b->p->m;
        j1 = j1 < b->p->n ? j1 : b->p->n;
        if (i0 >= i1 || j0 >= j1) continue;
        if (buf) {
            b->region(b, i0, i1, j0, j1, buf);
        } else {
            /* no packing buffer: the same input rounding, summed in scalar steps (not bit for
             * bit the kernels' sums; only when the buffer allocation failed) */
            const dg_gemm_args *g = b->p;
            for (int64_t i = i0; i < i1; i++)
                for (int64_t j = j0; j < j1; j++) {
                    float acc = g->acc ? g->c[i * g->ldc + j] : 0.0f;
                    for (int64_t p = 0; p < g->k; p++) {
                        float x = g->ta ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
                        float y = g->tb ? g->b[j * g->ldb + p] : g->b[p * g->ldb + j];
                        uint32_t ux, uy;
                        memcpy(&ux, &x, 4), memcpy(&uy, &y, 4);
                        ux = (ux + 0x7FFFu + ((ux >> 16) & 1u)) & 0xFFFF0000u;
                        uy = (uy + 0x7FFFu + ((uy >> 16) & 1u)) & 0xFFFF0000u;
                        memcpy(&x, &ux, 4), memcpy(&y, &uy, 4);
                        acc += x * y;
                    }
                    g->c[i * g->ldc + j] = acc;
                }
        }
    }
}

static void bf16_run(bf16_problem *b) {
    const dg_gemm_args *g = b->p;
    int64_t mt = (g->m + b->mr - 1) / b->mr, nt = (g->n + b->nr - 1) / b->nr;
    int threads = dg__threads_for(2 * g->m * g->n * g->k / 32);
    b->tm = 1, b->tn = 1;
    int64_t best = -1;
    for (int tm = threads; tm >= 1; tm--) {
        if (threads % tm) continue;
        int tn = threads / tm;
        int64_t cost = (mt + tm - 1) / tm * ((nt + tn - 1) / tn);
        if (best < 0 || cost < best) best = cost, b->tm = tm, b->tn = tn;
    }
    int64_t regions = (int64_t)b->tm * b->tn;
    dg__parallel_for(regions, 2 * g->m * g->n * g->k / 32 / regions, bf16_range, b);
}

/* ---- AVX512-BF16: 14 x 32 register tile ---- */

#define MRB 14
#define NRB 32

BF16_INLINE void tile_bf16(const int R, int64_t nq, const uint32_t *a, const uint32_t *b, float *c,
                           int64_t ldc, int n, int add) {
    __m512 acc[MRB][2];
    _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
    for (int64_t q = 0; q < nq; q++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
        _mm_prefetch((const char *)(b + 8 * NRB), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 8 * NRB + 16), _MM_HINT_T0);
        _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
        a += MRB;
        b += NRB;
    }
    __mmask16 m0, m1;
    col_masks(n, &m0, &m1);
    _Pragma("GCC unroll 14") for (int i = 0; i < R; i++) {
        float *cr = c + (int64_t)i * ldc;
        if (add) {
            acc[i][0] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), acc[i][0]);
            acc[i][1] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), acc[i][1]);
        }
        _mm512_mask_storeu_ps(cr, m0, acc[i][0]);
        _mm512_mask_storeu_ps(cr + 16, m1, acc[i][1]);
    }
}

#define DEF_TILE_BF16(R)                                                                           \
    __attribute__((target(BF16_TARGET))) static void tile_bf16_##R(                                \
        int64_t nq, const uint32_t *a, const uint32_t *b, float *c, int64_t ldc, int n, int add) { \
        tile_bf16(R, nq, a, b, c, ldc, n, add);                                                    \
    }
DEF_TILE_BF16(14)
DEF_TILE_BF16(8)
DEF_TILE_BF16(4)
DEF_TILE_BF16(2)
DEF_TILE_BF16(1)

static void avx512bf16_region(const bf16_problem *bp, int64_t i0, int64_t i1, int64_t j0,
                              int64_t j1, uint32_t *buf) {
    const dg_gemm_args *g = bp->p;
    uint32_t *abuf = buf, *bbuf = buf + (size_t)bp->mc * (KCB / 2);
    for (int64_t jc = j0; jc < j1; jc += bp->nc) {
        int64_t nc = j1 - jc < bp->nc ? j1 - jc : bp->nc;
        for (int64_t pc = 0; pc < g->k; pc += KCB) {
            int64_t kc = g->k - pc < KCB ? g->k - pc : KCB, nq = (kc + 1) / 2;
            int add = g->acc || pc > 0;
            for (int64_t col = 0; col < nc; col += NRB) {
                int cols = nc - col < NRB ? (int)(nc - col) : NRB;
                uint32_t *d = bbuf + col * nq;
                if (g->tb)
                    pack_pairs_qmajor(1, g->b + (jc + col) * g->ldb + pc, g->ldb, cols, kc, NRB, d);
                else
                    pack_pairs_qmajor(0, g->b + pc * g->ldb + jc + col, g->ldb, cols, kc, NRB, d);
            }
            for (int64_t ic = i0; ic < i1; ic += bp->mc) {
                int64_t mc = i1 - ic < bp->mc ? i1 - ic : bp->mc;
                for (int64_t r = 0; r < mc; r += MRB) {
                    int rows = mc - r < MRB ? (int)(mc - r) : MRB;
                    uint32_t *d = abuf + r * nq;
                    if (g->ta)
                        pack_pairs_qmajor(0, g->a + pc * g->lda + ic + r, g->lda, rows, kc, MRB, d);
                    else
                        pack_pairs_qmajor(1, g->a + (ic + r) * g->lda + pc, g->lda, rows, kc, MRB,
                                          d);
                }
                for (int64_t ir = 0; ir < mc; ir += MRB) {
                    int m_eff = mc - ir < MRB ? (int)(mc - ir) : MRB;
                    for (int64_t jr = 0; jr < nc; jr += NRB) {
                        int n_eff = nc - jr < NRB ? (int)(nc - jr) : NRB;
                        const uint32_t *a = abuf + ir * nq, *b = bbuf + jr * nq;
                        float *c = g->c + (ic + ir) * g->ldc + jc + jr;
                        if (m_eff == MRB) {
                            tile_bf16_14(nq, a, b, c, g->ldc, n_eff, add);
                            continue;
                        }
                        int i = 0;
                        if (m_eff - i >= 8)
                            tile_bf16_8(nq, a + i, b, c + i * g->ldc, g->ldc, n_eff, add), i += 8;
                        if (m_eff - i >= 4)
                            tile_bf16_4(nq, a + i, b, c + i * g->ldc, g->ldc, n_eff, add), i += 4;
                        if (m_eff - i >= 2)
                            tile_bf16_2(nq, a + i, b, c + i * g->ldc, g->ldc, n_eff, add), i += 2;
                        if (m_eff - i >= 1)
                            tile_bf16_1(nq, a + i, b, c + i * g->ldc, g->ldc, n_eff, add);
                    }
                }
            }
        }
    }
}

static void avx512bf16_gemm(const dg_gemm_args *g) {
    /* A block 336 x 256 pairs and B block 256 pairs x 1024 fill the fp32 packing buffer */
    bf16_problem b = {g, MRB, NRB, 24 * MRB, 1024, 1, 1, avx512bf16_region};
    bf16_run(&b);
}

static int avx512bf16_available(void) { return have_avx512bf16(); }

/* ---- AMX: 32 x 32 blocks of C in four tiles ---- */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* The tile intrinsics are asm statements that do not tell the compiler they touch memory:
 * fence them so stores before a tile load and loads after a tile store stay in order. */
#define COMPILER_FENCE() __asm__ volatile("" ::: "memory")

__attribute__((target("amx-tile,amx-bf16"))) static void
amx_block(const uint32_t *a, int64_t a_stride, const uint32_t *b0, const uint32_t *b1, int64_t nqp,
          float *c, int64_t c_stride, int load_c) {
    COMPILER_FENCE();
    if (load_c) {
        _tile_loadd(0, c, c_stride);
        _tile_loadd(1, c + 16, c_stride);
        _tile_loadd(2, (char *)c + 16 * c_stride, c_stride);
        _tile_loadd(3, (char *)c + 16 * c_stride + 64, c_stride);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int64_t q0 = 0; q0 < nqp; q0 += 16) {
        _tile_loadd(4, a + q0, a_stride);
        _tile_loadd(5, (const char *)(a + q0) + 16 * a_stride, a_stride);
        _tile_loadd(6, b0 + q0 * 16, 64);
        _tile_loadd(7, b1 + q0 * 16, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, c_stride);
    _tile_stored(1, c + 16, c_stride);
    _tile_stored(2, (char *)c + 16 * c_stride, c_stride);
    _tile_stored(3, (char *)c + 16 * c_stride + 64, c_stride);
    COMPILER_FENCE();
}

/* Palette 1, all eight tiles 16 rows x 64 bytes. A static object, because the intrinsic's
 * asm tells the compiler it reads only 8 bytes of the configuration. */
static const tile_config amx_cfg __attribute__((aligned(64))) = {
    1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

__attribute__((target("amx-tile"))) static void amx_config(void) {
    COMPILER_FENCE();
    _tile_loadconfig(&amx_cfg);
}

__attribute__((target("amx-tile"))) static void amx_release(void) { _tile_release(); }

#define AMX_MC 320  /* rows per A block, a multiple of 32 */
#define AMX_NC 1024 /* columns per B block, a multiple of 32 */

static void amx_region(const bf16_problem *bp, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                       uint32_t *buf) {
    const dg_gemm_args *g = bp->p;
    uint32_t *abuf = buf, *bbuf = buf + (size_t)AMX_MC * (KCB / 2);
    float edge[32 * 32]; /* a block of C that sticks out of C goes through here */
    memset(edge, 0, sizeof edge);
    amx_config();
    for (int64_t jc = j0; jc < j1; jc += AMX_NC) {
        int64_t nc = j1 - jc < AMX_NC ? j1 - jc : AMX_NC, ncp = (nc + 31) / 32 * 32;
        for (int64_t pc = 0; pc < g->k; pc += KCB) {
            int64_t kc = g->k - pc < KCB ? g->k - pc : KCB, nqp = (kc + 31) / 32 * 16;
            int load_c = g->acc || pc > 0;
            /* B: 16-column panels of nqp pair rows, zero past nc and kc */
            for (int64_t col = 0; col < ncp; col += 16) {
                int cols = nc - col < 16 ? (int)(nc - col) : 16;
                uint32_t *d = bbuf + col * nqp;
                if (cols <= 0)
                    memset(d, 0, (size_t)nqp * 16 * sizeof *d);
                else if (g->tb)
                    pack_pairs_qmajor(1, g->b + (jc + col) * g->ldb + pc, g->ldb, cols, kc, 16, d);
                else
                    pack_pairs_qmajor(0, g->b + pc * g->ldb + jc + col, g->ldb, cols, kc, 16, d);
                if (cols > 0 && (kc + 1) / 2 < nqp)
                    memset(d + (kc + 1) / 2 * 16, 0, (size_t)(nqp - (kc + 1) / 2) * 16 * sizeof *d);
            }
            for (int64_t ic = i0; ic < i1; ic += AMX_MC) {
                int64_t mc = i1 - ic < AMX_MC ? i1 - ic : AMX_MC;
                int rows_pad = (int)((mc + 31) / 32 * 32);
                if (g->ta)
                    pack_pairs_lmajor(0, g->a + pc * g->lda + ic, g->lda, (int)mc, rows_pad, kc,
                                      nqp, abuf);
                else
                    pack_pairs_lmajor(1, g->a + ic * g->lda + pc, g->lda, (int)mc, rows_pad, kc,
                                      nqp, abuf);
                for (int64_t ir = 0; ir < mc; ir += 32) {
                    int m_eff = mc - ir < 32 ? (int)(mc - ir) : 32;
                    for (int64_t jr = 0; jr < nc; jr += 32) {
                        int n_eff = nc - jr < 32 ? (int)(nc - jr) : 32;
                        const uint32_t *a = abuf + ir * nqp;
                        const uint32_t *b0 = bbuf + jr * nqp, *b1 = b0 + 16 * nqp;
                        float *c = g->c + (ic + ir) * g->ldc + jc + jr;
                        if (m_eff == 32 && n_eff == 32) {
                            amx_block(a, nqp * 4, b0, b1, nqp, c, g->ldc * 4, load_c);
                            continue;
                        }
                        for (int i = 0; i < m_eff && load_c; i++)
                            memcpy(edge + 32 * i, c + i * g->ldc, (size_t)n_eff * sizeof(float));
                        amx_block(a, nqp * 4, b0, b1, nqp, edge, 128, load_c);
                        for (int i = 0; i < m_eff; i++)
                            memcpy(c + i * g->ldc, edge + 32 * i, (size_t)n_eff * sizeof(float));
                    }
                }
            }
        }
    }
    amx_release();
}

static void amx_gemm(const dg_gemm_args *g) {
    bf16_problem b = {g, 32, 32, AMX_MC, AMX_NC, 1, 1, amx_region};
    bf16_run(&b);
}

const dg_gemm_bf16_info dg__gemm_bf16_amx = {"amx-bf16", amx_available, amx_gemm};
const dg_gemm_bf16_info dg__gemm_bf16_avx512 = {"avx512-bf16", avx512bf16_available,
                                                avx512bf16_gemm};

#else /* no bf16 kernels for this CPU family or compiler */

static int none(void) { return 0; }
static void no_gemm(const dg_gemm_args *g) { (void)g; }
const dg_gemm_bf16_info dg__gemm_bf16_amx = {"amx-bf16", none, no_gemm};
const dg_gemm_bf16_info dg__gemm_bf16_avx512 = {"avx512-bf16", none, no_gemm};

#endif
