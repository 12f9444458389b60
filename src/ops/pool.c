/* 2-D pooling over x [N,C,H,W] with a KH x KW window, stride s, padding p and dilation d
 * per axis; output [N,C,OH,OW] with OH = floor((H + 2 p_h - d_h (KH - 1) - 1) / s_h) + 1.
 * Window (i,j) covers the input pixels (i s_h - p_h + a d_h, j s_w - p_w + b d_w).
 *
 *   max_pool2d:  y = the largest pixel of the window; padding never wins. Ties go to the
 *                first in window order (row a, then column b), NaN wins over numbers.
 *                dx = max_pool2d_grad(dy, x): dy added onto each window's winner.
 *   max_pool2d_grad (dy, x)     = S(x)^T dy, where S(x) picks each window's winner of x
 *                d(dy) = max_pool2d_select(dz, x);  x gets nothing (the winners are
 *                piecewise constant in x)
 *   max_pool2d_select (v, x)    = S(x) v: the values of v at the winners of x
 *                dv = max_pool2d_grad(dz, x)
 *   avg_pool2d:  y = (sum of the window's pixels, padding counting as 0) / (KH KW), as
 *                PyTorch's default (count_include_pad)
 *                dx = avg_pool2d_grad(dy; x for its shape): dy / (KH KW) onto each pixel
 *   avg_pool2d_grad (dy; x)     d(dy) = avg_pool2d(dz)
 *   global_avg_pool2d is avg_pool2d over the whole H x W, reshaped to [N,C].
 *
 * Kernels work plane by plane ([n, c] pairs), in parallel over planes; each output is
 * written by one plane's loop, so nothing depends on the thread count. The adjoint kernels
 * (the *_grad ops) add window by window in a fixed order. */
#include "kernels.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct pool_attrs {
    int64_t kernel[2], stride[2], pad[2], dil[2];
} pool_attrs;

static const dg_attr_field pool_fields[] = {
    {"kernel", DG_ATTR_INT64, offsetof(pool_attrs, kernel), 2},
    {"stride", DG_ATTR_INT64, offsetof(pool_attrs, stride), 2},
    {"padding", DG_ATTR_INT64, offsetof(pool_attrs, pad), 2},
    {"dilation", DG_ATTR_INT64, offsetof(pool_attrs, dil), 2},
    {NULL, DG_ATTR_INT, 0, 0}};

typedef struct pgeom {
    int64_t planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
} pgeom;

static pgeom make_pgeom(dg_shape xs, const pool_attrs *a) {
    pgeom g;
    g.planes = xs.dim[0] * xs.dim[1], g.h = xs.dim[2], g.w = xs.dim[3];
    g.kh = a->kernel[0], g.kw = a->kernel[1], g.sh = a->stride[0], g.sw = a->stride[1];
    g.ph = a->pad[0], g.pw = a->pad[1], g.dh = a->dil[0], g.dw = a->dil[1];
    g.oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
    g.ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
    return g;
}

/* The output shape of pooling x, or an error naming every number involved. */
static dg_status pool_check(dg_shape xs, const pool_attrs *a, dg_shape *out, char *msg,
                            size_t size) {
    char sx[64];
    dg_shape_str(xs, sx, sizeof sx);
    if (xs.ndim != 4) {
        snprintf(msg, size, "input must be [N,C,H,W], got %s", sx);
        return DG_ERR_SHAPE;
    }
    for (int i = 0; i < 2; i++) {
        const char *axis = i ? "width" : "height";
        if (a->kernel[i] < 1 || a->stride[i] < 1 || a->dil[i] < 1 || a->pad[i] < 0) {
            snprintf(msg, size,
                     "kernel, stride and dilation must be >= 1 and padding >= 0, got kernel "
                     "%lld, stride %lld, padding %lld, dilation %lld along the %s (input %s)",
                     (long long)a->kernel[i], (long long)a->stride[i], (long long)a->pad[i],
                     (long long)a->dil[i], axis, sx);
            return DG_ERR_ARG;
        }
        /* as PyTorch: every window then holds at least one pixel of the input */
        if (2 * a->pad[i] > a->kernel[i]) {
            snprintf(msg, size,
                     "padding %lld is more than half the kernel %lld along the %s (input %s)",
                     (long long)a->pad[i], (long long)a->kernel[i], axis, sx);
            return DG_ERR_ARG;
        }
    }
    pgeom g = make_pgeom(xs, a);
    int64_t span_h = g.dh * (g.kh - 1) + 1, span_w = g.dw * (g.kw - 1) + 1;
    if (span_h > g.h + 2 * g.ph || span_w > g.w + 2 * g.pw) {
        snprintf(msg, size,
                 "kernel %lldx%lld (dilation %lldx%lld) is larger than the padded input "
                 "%lldx%lld (padding %lldx%lld): input %s",
                 (long long)g.kh, (long long)g.kw, (long long)g.dh, (long long)g.dw,
                 (long long)(g.h + 2 * g.ph), (long long)(g.w + 2 * g.pw), (long long)g.ph,
                 (long long)g.pw, sx);
        return DG_ERR_SHAPE;
    }
    *out = dg_shape4(xs.dim[0], xs.dim[1], g.oh, g.ow);
    return DG_OK;
}

static dg_status pool_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                           size_t size) {
    (void)n;
    return pool_check(in[0]->shape, attrs, out, msg, size);
}

/* max_pool2d_grad and avg_pool2d_grad (dy, x): dy has the pooled shape, the output x's. */
static dg_status to_input_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                               char *msg, size_t size) {
    (void)n;
    dg_shape ys;
    dg_status s = pool_check(in[1]->shape, attrs, &ys, msg, size);
    if (s != DG_OK) return s;
    if (!dg_shape_equal(ys, in[0]->shape)) {
        char b0[64], b1[64], b2[64];
        snprintf(msg, size, "gradient %s is not the shape %s of pooling %s",
                 dg_shape_str(in[0]->shape, b0, sizeof b0), dg_shape_str(ys, b1, sizeof b1),
                 dg_shape_str(in[1]->shape, b2, sizeof b2));
        return DG_ERR_SHAPE;
    }
    *out = in[1]->shape;
    return DG_OK;
}

/* max_pool2d_select (v, x): v has x's shape, the output the pooled one. */
static dg_status select_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                             size_t size) {
    (void)n;
    if (!dg_shape_equal(in[0]->shape, in[1]->shape)) {
        char b0[64], b1[64];
        snprintf(msg, size, "values %s and input %s differ in shape",
                 dg_shape_str(in[0]->shape, b0, sizeof b0),
                 dg_shape_str(in[1]->shape, b1, sizeof b1));
        return DG_ERR_SHAPE;
    }
    return pool_check(in[1]->shape, attrs, out, msg, size);
}

/* Valid window offsets: a in [a0, a1) keeps i s - p + a d inside [0, len). */
static void window_range(int64_t i, int64_t s, int64_t p, int64_t d, int64_t k, int64_t len,
                         int64_t *a0, int64_t *a1) {
    int64_t start = i * s - p;
    *a0 = start >= 0 ? 0 : (-start + d - 1) / d;
    int64_t last = len - 1 - start; /* a d <= last */
    *a1 = last < 0 ? 0 : last / d + 1;
    if (*a1 > k) *a1 = k;
    if (*a0 > *a1) *a0 = *a1;
}

/* Index within the plane of the winner of window (i, j): the first largest pixel, NaN
 * beating everything. Every window holds a pixel (pool_check), so this is always valid. */
static int64_t window_argmax(const pgeom *g, const float *x, int64_t i, int64_t j) {
    int64_t a0, a1, b0, b1;
    window_range(i, g->sh, g->ph, g->dh, g->kh, g->h, &a0, &a1);
    window_range(j, g->sw, g->pw, g->dw, g->kw, g->w, &b0, &b1);
    int64_t r0 = i * g->sh - g->ph, c0 = j * g->sw - g->pw;
    int64_t best = (r0 + a0 * g->dh) * g->w + c0 + b0 * g->dw;
    float bv = x[best];
    for (int64_t a = a0; a < a1; a++) {
        const float *row = x + (r0 + a * g->dh) * g->w + c0;
        for (int64_t b = b0; b < b1; b++) {
            float v = row[b * g->dw];
            if (v > bv || (isnan(v) && !isnan(bv))) {
                bv = v;
                best = (r0 + a * g->dh) * g->w + c0 + b * g->dw;
            }
        }
    }
    return best;
}

typedef struct pool_job {
    pgeom g;
    const float *x; /* the pooled input (winners are taken from it) */
    const float *v; /* values to move: dy, or v of select */
    float *y;       /* output */
} pool_job;

/* 2x2 windows, stride 2, no padding or dilation: the common case, written out. */
static int is_2x2(const pgeom *g) {
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
           g->dh == 1 && g->dw == 1;
}

/* 2x2 windows with stride 2 over rows r0, r1: the winner of window q is the first largest of
 * (r0[2q], r0[2q+1], r1[2q], r1[2q+1]), a NaN beating numbers. "v beats m" is
 * !(v <= m) && m == m: true if v > m or v is NaN, false once m is NaN. Only selects, no
 * arithmetic: the SSE2 path (four windows at a time; SSE2 is part of x86-64) and the scalar
 * one give the same bits. */
#if defined(__SSE2__)
#include <emmintrin.h>
#define POOL_SSE2 1

/* m, at = v, k where v beats m (k: the candidate's index in the window, as a float) */
static inline void beat4(__m128 v, float k, __m128 *m, __m128 *at) {
    __m128 t = _mm_and_ps(_mm_cmpnle_ps(v, *m), _mm_cmpord_ps(*m, *m));
    *m = _mm_or_ps(_mm_and_ps(t, v), _mm_andnot_ps(t, *m));
    *at = _mm_or_ps(_mm_and_ps(t, _mm_set1_ps(k)), _mm_andnot_ps(t, *at));
}

/* Windows 4 at a time: de-interleaves the even and odd pixels of two rows. */
static inline void window4(const float *r0, const float *r1, int64_t q, __m128 *m, __m128 *at) {
    __m128 a0 = _mm_loadu_ps(r0 + 2 * q), a1 = _mm_loadu_ps(r0 + 2 * q + 4);
    __m128 b0 = _mm_loadu_ps(r1 + 2 * q), b1 = _mm_loadu_ps(r1 + 2 * q + 4);
    *m = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
    *at = _mm_setzero_ps();
    beat4(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)), 1.0f, m, at);
    beat4(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), 2.0f, m, at);
    beat4(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)), 3.0f, m, at);
}
#endif

/* Window q's winner: its value in *m, its index 0..3 in the window as the return value. */
static inline int window1(const float *r0, const float *r1, int64_t q, float *m) {
    float v[3] = {r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]}, best = r0[2 * q];
    int at = 0;
    for (int t = 0; t < 3; t++)
        if (!(v[t] <= best) && best == best) best = v[t], at = t + 1;
    *m = best;
    return at;
}

static void max_row_2x2(const float *r0, const float *r1, float *y, int64_t ow) {
    int64_t q = 0;
#ifdef POOL_SSE2
    for (; q + 4 <= ow; q += 4) {
        __m128 m, at;
        window4(r0, r1, q, &m, &at);
        _mm_storeu_ps(y + q, m);
    }
#endif
    for (; q < ow; q++) window1(r0, r1, q, &y[q]);
}

/* The gradient of max_row_2x2: dy[q] at window q's winner, 0 at its other three pixels. */
static void scatter_row_2x2(const float *r0, const float *r1, const float *dy, float *d0, float *d1,
                            int64_t ow) {
    int64_t q = 0;
#ifdef POOL_SSE2
    for (; q + 4 <= ow; q += 4) {
        __m128 m, at, d = _mm_loadu_ps(dy + q);
        window4(r0, r1, q, &m, &at);
        __m128 e0 = _mm_and_ps(_mm_cmpeq_ps(at, _mm_setzero_ps()), d);
        __m128 o0 = _mm_and_ps(_mm_cmpeq_ps(at, _mm_set1_ps(1.0f)), d);
        __m128 e1 = _mm_and_ps(_mm_cmpeq_ps(at, _mm_set1_ps(2.0f)), d);
        __m128 o1 = _mm_and_ps(_mm_cmpeq_ps(at, _mm_set1_ps(3.0f)), d);
        _mm_storeu_ps(d0 + 2 * q, _mm_unpacklo_ps(e0, o0));
        _mm_storeu_ps(d0 + 2 * q + 4, _mm_unpackhi_ps(e0, o0));
        _mm_storeu_ps(d1 + 2 * q, _mm_unpacklo_ps(e1, o1));
        _mm_storeu_ps(d1 + 2 * q + 4, _mm_unpackhi_ps(e1, o1));
    }
#endif
    for (; q < ow; q++) {
        float m;
        int at = window1(r0, r1, q, &m);
        d0[2 * q] = at == 0 ? dy[q] : 0.0f;
        d0[2 * q + 1] = at == 1 ? dy[q] : 0.0f;
        d1[2 * q] = at == 2 ? dy[q] : 0.0f;
        d1[2 * q + 1] = at == 3 ? dy[q] : 0.0f;
    }
}

/* The same selections 16 windows at a time on CPUs with AVX-512 (rows of up to 32 pixels in
 * two masked loads, even and odd pixels apart by permutes; the gradient interleaved back the
 * same way). Selects only, as above: the same bits as the SSE2 and scalar loops. Chosen at
 * run time; DG_GEMM_KERNEL naming another kernel (as tests do) keeps the portable loops. */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define POOL_AVX512 1
#define AVX512      __attribute__((target("avx512f")))

static inline AVX512 __mmask16 first_lanes(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u);
}

/* "v beats m" (see above) as a mask */
static inline AVX512 __mmask16 beats16(__m512 v, __m512 m) {
    return _mm512_cmp_ps_mask(v, m, _CMP_NLE_UQ) & _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q);
}

/* Windows q .. q+n-1 (n <= 16): the winners' values in *m, and the masks of the windows whose
 * winner is candidate 1, 2, 3 (0 otherwise) of (r0 even, r0 odd, r1 even, r1 odd). */
static inline AVX512 void window16(const float *r0, const float *r1, int64_t q, int64_t n,
                                   __m512 *m, __mmask16 win[4]) {
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __mmask16 lo = first_lanes(2 * n), hi = first_lanes(2 * n - 16);
    __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * q),
           a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * q + 16);
    __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * q),
           b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * q + 16);
    __m512 best = _mm512_permutex2var_ps(a0, even, a1);
    __m512 c[3] = {_mm512_permutex2var_ps(a0, odd, a1), _mm512_permutex2var_ps(b0, even, b1),
                   _mm512_permutex2var_ps(b0, odd, b1)};
    __mmask16 k[3];
    for (int t = 0; t < 3; t++) {
        k[t] = beats16(c[t], best);
        best = _mm512_mask_mov_ps(best, k[t], c[t]);
    }
    *m = best;
    win[3] = k[2];
    win[2] = (__mmask16)(k[1] & ~k[2]);
    win[1] = (__mmask16)(k[0] & ~k[1] & ~k[2]);
    win[0] = (__mmask16) ~(k[0] | k[1] | k[2]);
}

static AVX512 void max_row_avx512(const float *r0, const float *r1, float *y, int64_t ow) {
    for (int64_t q = 0; q < ow; q += 16) {
        int64_t n = ow - q < 16 ? ow - q : 16;
        __m512 m;
        __mmask16 win[4];
        window16(r0, r1, q, n, &m, win);
        _mm512_mask_storeu_ps(y + q, first_lanes(n), m);
    }
}

static AVX512 void scatter_row_avx512(const float *r0, const float *r1, const float *dy, float *d0,
                                      float *d1, int64_t ow) {
    const __m512i ilo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i ihi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    for (int64_t q = 0; q < ow; q += 16) {
        int64_t n = ow - q < 16 ? ow - q : 16;
        __m512 m;
        __mmask16 win[4], lo = first_lanes(2 * n), hi = first_lanes(2 * n - 16);
        window16(r0, r1, q, n, &m, win);
        __m512 d = _mm512_maskz_loadu_ps(first_lanes(n), dy + q);
        __m512 e0 = _mm512_maskz_mov_ps(win[0], d), o0 = _mm512_maskz_mov_ps(win[1], d);
        __m512 e1 = _mm512_maskz_mov_ps(win[2], d), o1 = _mm512_maskz_mov_ps(win[3], d);
        _mm512_mask_storeu_ps(d0 + 2 * q, lo, _mm512_permutex2var_ps(e0, ilo, o0));
        _mm512_mask_storeu_ps(d0 + 2 * q + 16, hi, _mm512_permutex2var_ps(e0, ihi, o0));
        _mm512_mask_storeu_ps(d1 + 2 * q, lo, _mm512_permutex2var_ps(e1, ilo, o1));
        _mm512_mask_storeu_ps(d1 + 2 * q + 16, hi, _mm512_permutex2var_ps(e1, ihi, o1));
    }
}
#endif

static void max_range(void *ctx, int64_t lo, int64_t hi) {
    const pool_job *j = ctx;
    const pgeom *g = &j->g;
    for (int64_t p = lo; p < hi; p++) {
        const float *x = j->x + p * g->h * g->w;
        float *y = j->y + p * g->oh * g->ow;
        if (is_2x2(g)) {
#ifdef POOL_AVX512
            if (dg__ops_use_avx512()) {
                for (int64_t i = 0; i < g->oh; i++)
                    max_row_avx512(x + 2 * i * g->w, x + (2 * i + 1) * g->w, y + i * g->ow, g->ow);
                continue;
            }
#endif
            for (int64_t i = 0; i < g->oh; i++)
                max_row_2x2(x + 2 * i * g->w, x + (2 * i + 1) * g->w, y + i * g->ow, g->ow);
            continue;
        }
        for (int64_t i = 0; i < g->oh; i++)
            for (int64_t q = 0; q < g->ow; q++) y[i * g->ow + q] = x[window_argmax(g, x, i, q)];
    }
}

/* max_pool2d_select: v at the winners of x. */
static void select_range(void *ctx, int64_t lo, int64_t hi) {
    const pool_job *j = ctx;
    const pgeom *g = &j->g;
    for (int64_t p = lo; p < hi; p++) {
        const float *x = j->x + p * g->h * g->w, *v = j->v + p * g->h * g->w;
        float *y = j->y + p * g->oh * g->ow;
        for (int64_t i = 0; i < g->oh; i++)
            for (int64_t q = 0; q < g->ow; q++) y[i * g->ow + q] = v[window_argmax(g, x, i, q)];
    }
}

/* max_pool2d_grad: dy added onto the winners of x, window by window. 2x2 windows do not
 * overlap: each pixel is written once, dy at its window's winner and 0 elsewhere. */
static void scatter_range(void *ctx, int64_t lo, int64_t hi) {
    const pool_job *j = ctx;
    const pgeom *g = &j->g;
    for (int64_t p = lo; p < hi; p++) {
        const float *x = j->x + p * g->h * g->w, *dy = j->v + p * g->oh * g->ow;
        float *dx = j->y + p * g->h * g->w;
        if (is_2x2(g)) {
            for (int64_t i = 0; i < g->oh; i++) {
                float *d0 = dx + 2 * i * g->w, *d1 = d0 + g->w;
#ifdef POOL_AVX512
                if (dg__ops_use_avx512())
                    scatter_row_avx512(x + 2 * i * g->w, x + (2 * i + 1) * g->w, dy + i * g->ow, d0,
                                       d1, g->ow);
                else
#endif
                    scatter_row_2x2(x + 2 * i * g->w, x + (2 * i + 1) * g->w, dy + i * g->ow, d0,
                                    d1, g->ow);
                /* an odd width leaves a last column outside every window */
                for (int64_t c = 2 * g->ow; c < g->w; c++) d0[c] = d1[c] = 0.0f;
            }
            for (int64_t r = 2 * g->oh; r < g->h; r++)
                for (int64_t c = 0; c < g->w; c++) dx[r * g->w + c] = 0.0f;
            continue;
        }
        memset(dx, 0, (size_t)(g->h * g->w) * sizeof(float));
        for (int64_t i = 0; i < g->oh; i++)
            for (int64_t q = 0; q < g->ow; q++) dx[window_argmax(g, x, i, q)] += dy[i * g->ow + q];
    }
}

/* avg_pool2d: window sums over the valid pixels, divided by KH KW. */
static void avg_range(void *ctx, int64_t lo, int64_t hi) {
    const pool_job *j = ctx;
    const pgeom *g = &j->g;
    const float inv = 1.0f / (float)(g->kh * g->kw);
    for (int64_t p = lo; p < hi; p++) {
        const float *x = j->x + p * g->h * g->w;
        float *y = j->y + p * g->oh * g->ow;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t a0, a1, r0 = i * g->sh - g->ph;
            window_range(i, g->sh, g->ph, g->dh, g->kh, g->h, &a0, &a1);
            for (int64_t q = 0; q < g->ow; q++) {
                int64_t b0, b1, c0 = q * g->sw - g->pw;
                window_range(q, g->sw, g->pw, g->dw, g->kw, g->w, &b0, &b1);
                float sum = 0.0f;
                for (int64_t a = a0; a < a1; a++) {
                    const float *row = x + (r0 + a * g->dh) * g->w + c0;
                    for (int64_t b = b0; b < b1; b++) sum += row[b * g->dw];
                }
                y[i * g->ow + q] = sum * inv;
            }
        }
    }
}

/* avg_pool2d_grad: dy / (KH KW) onto every valid pixel of its window. */
static void avg_grad_range(void *ctx, int64_t lo, int64_t hi) {
    const pool_job *j = ctx;
    const pgeom *g = &j->g;
    const float inv = 1.0f / (float)(g->kh * g->kw);
    for (int64_t p = lo; p < hi; p++) {
        const float *dy = j->v + p * g->oh * g->ow;
        float *dx = j->y + p * g->h * g->w;
        memset(dx, 0, (size_t)(g->h * g->w) * sizeof(float));
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t a0, a1, r0 = i * g->sh - g->ph;
            window_range(i, g->sh, g->ph, g->dh, g->kh, g->h, &a0, &a1);
            for (int64_t q = 0; q < g->ow; q++) {
                int64_t b0, b1, c0 = q * g->sw - g->pw;
                window_range(q, g->sw, g->pw, g->dw, g->kw, g->w, &b0, &b1);
                float d = dy[i * g->ow + q] * inv;
                for (int64_t a = a0; a < a1; a++) {
                    float *row = dx + (r0 + a * g->dh) * g->w + c0;
                    for (int64_t b = b0; b < b1; b++) row[b * g->dw] += d;
                }
            }
        }
    }
}

static const pool_attrs *pattrs(const dg_node *n) { return n->attrs; }

/* Runs `fn` over the planes; x supplies the geometry (the pooled input's shape). */
static dg_status run_planes(dg_node *self, const dg_node *x, const float *xv, const float *v,
                            dg_range_fn fn) {
    pool_job j = {make_pgeom(x->shape, pattrs(self)), xv, v, self->value};
    int64_t per_plane = j.g.oh * j.g.ow * j.g.kh * j.g.kw + j.g.h * j.g.w;
    dg_parallel_for(j.g.planes, per_plane, fn, &j);
    return DG_OK;
}

static dg_status max_forward(dg_node *self) {
    dg_node *x = self->inputs[0];
    return run_planes(self, x, x->value, NULL, max_range);
}
/* inputs of the pair ops: (dy or v, x) */
static dg_status max_grad_forward(dg_node *self) {
    dg_node *x = self->inputs[1];
    return run_planes(self, x, x->value, self->inputs[0]->value, scatter_range);
}
static dg_status max_select_forward(dg_node *self) {
    dg_node *x = self->inputs[1];
    return run_planes(self, x, x->value, self->inputs[0]->value, select_range);
}
static dg_status avg_forward(dg_node *self) {
    dg_node *x = self->inputs[0];
    return run_planes(self, x, x->value, NULL, avg_range);
}
static dg_status avg_grad_forward(dg_node *self) {
    return run_planes(self, self->inputs[1], NULL, self->inputs[0]->value, avg_grad_range);
}

static dg_status max_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx);
static dg_status max_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx);
static dg_status max_select_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx);
static dg_status avg_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx);
static dg_status avg_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx);

static const dg_op_def max_op = {.name = "max_pool2d",
                                 .n_inputs = 1,
                                 .infer_shape = pool_rule,
                                 .forward = max_forward,
                                 .backward = max_backward,
                                 .attr_fields = pool_fields};
static const dg_op_def max_grad_op = {.name = "max_pool2d_grad",
                                      .n_inputs = 2,
                                      .infer_shape = to_input_rule,
                                      .forward = max_grad_forward,
                                      .backward = max_grad_backward};
static const dg_op_def max_select_op = {.name = "max_pool2d_select",
                                        .n_inputs = 2,
                                        .infer_shape = select_rule,
                                        .forward = max_select_forward,
                                        .backward = max_select_backward};
static const dg_op_def avg_op = {.name = "avg_pool2d",
                                 .n_inputs = 1,
                                 .infer_shape = pool_rule,
                                 .forward = avg_forward,
                                 .backward = avg_backward,
                                 .attr_fields = pool_fields};
static const dg_op_def avg_grad_op = {.name = "avg_pool2d_grad",
                                      .n_inputs = 2,
                                      .shape_only = 1u << 1,
                                      .infer_shape = to_input_rule,
                                      .forward = avg_grad_forward,
                                      .backward = avg_grad_backward};

#define SET_OR_FAIL(slot, expr)                                                                    \
    do {                                                                                           \
        if (!((slot) = (expr))) return dg_graph_status(g);                                         \
    } while (0)

/* The winners depend on x only through comparisons, so x itself never gets a gradient
 * from the grad and select ops: only the values they move do. */
static dg_status max_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *x = self->inputs[0];
    SET_OR_FAIL(dx[0], dg__apply2(g, &max_grad_op, dy, x, self->attrs, sizeof(pool_attrs)));
    return DG_OK;
}
static dg_status max_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx) {
    dg_node *dy = self->inputs[0], *x = self->inputs[1];
    if (dy->requires_grad)
        SET_OR_FAIL(dx[0], dg__apply2(g, &max_select_op, dz, x, self->attrs, sizeof(pool_attrs)));
    return DG_OK;
}
static dg_status max_select_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx) {
    dg_node *v = self->inputs[0], *x = self->inputs[1];
    if (v->requires_grad)
        SET_OR_FAIL(dx[0], dg__apply2(g, &max_grad_op, dz, x, self->attrs, sizeof(pool_attrs)));
    return DG_OK;
}
static dg_status avg_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *x = self->inputs[0];
    SET_OR_FAIL(dx[0], dg__apply2(g, &avg_grad_op, dy, x, self->attrs, sizeof(pool_attrs)));
    return DG_OK;
}
static dg_status avg_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx) {
    SET_OR_FAIL(dx[0], dg__apply1(g, &avg_op, dz, self->attrs, sizeof(pool_attrs)));
    return DG_OK;
}

dg_pool2d_options dg_pool2d_defaults(int kernel) {
    dg_pool2d_options o = {{kernel, kernel}, {kernel, kernel}, {0, 0}, {1, 1}};
    return o;
}

static pool_attrs to_attrs(const dg_pool2d_options *o) {
    pool_attrs a;
    for (int i = 0; i < 2; i++) {
        a.kernel[i] = o->kernel[i], a.stride[i] = o->stride[i];
        a.pad[i] = o->padding[i], a.dil[i] = o->dilation[i];
    }
    return a;
}

static dg_node *pool(dg_graph *g, const dg_op_def *op, dg_node *x, const dg_pool2d_options *o) {
    if (!o) {
        dg_set_error(g, DG_ERR_NULL, "%s: options are NULL", op->name);
        return NULL;
    }
    pool_attrs a = to_attrs(o);
    return dg__apply1(g, op, x, &a, sizeof a);
}

dg_node *dg_pool2d_max(dg_graph *g, dg_node *x, const dg_pool2d_options *o) {
    return pool(g, &max_op, x, o);
}

dg_node *dg_pool2d_avg(dg_graph *g, dg_node *x, const dg_pool2d_options *o) {
    return pool(g, &avg_op, x, o);
}

dg_node *dg_pool2d_global_avg(dg_graph *g, dg_node *x) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "global_avg_pool2d: graph is NULL"), NULL;
    dg_shape s = dg_node_shape(x);
    if (x && s.ndim != 4) {
        char sb[64];
        dg_set_error(g, DG_ERR_SHAPE, "global_avg_pool2d: input must be [N,C,H,W], got %s",
                     dg_shape_str(s, sb, sizeof sb));
        return NULL;
    }
    dg_pool2d_options o = {{0, 0}, {1, 1}, {0, 0}, {1, 1}};
    if (x) o.kernel[0] = (int)s.dim[2], o.kernel[1] = (int)s.dim[3];
    /* the spatial size is fixed when the graph is built; only the batch follows the run */
    dg_node *y = pool(g, &avg_op, x, &o);
    return y ? dg_reshape(g, y, dg_shape2(-1, s.dim[1])) : NULL;
}
