/* 2-D convolution (cross-correlation, as in every deep-learning library) and the ops that
 * make up its gradient. With x [N,C,H,W], w [O,C/G,KH,KW] (G groups), stride s, zero
 * padding p and dilation d per axis, and an optional bias b [O]:
 *
 *   y[n,o,i,j] = b[o] + sum over c in o's group, a, e of
 *                w[o,c,a,e] x[n, c, i s_h - p_h + a d_h, j s_w - p_w + e d_w]
 *   OH = floor((H + 2 p_h - d_h (KH - 1) - 1) / s_h) + 1, and OW alike.
 *
 * Without the bias y is linear in x and in w, y = A(w) x = B(x) w, and the gradient ops are
 * the adjoints:
 *   conv2d_input_grad (dy, w; x for its shape) = A(w)^T dy, the gradient w.r.t. x
 *   conv2d_weight_grad(x, dy; w for its shape) = B(x)^T dy, the gradient w.r.t. w
 *   conv2d_bias_grad  (dy)                     = dy summed over images and positions
 * They differentiate into each other, so second derivatives work:
 *   conv2d:             dx = input_grad(dy, w, x)   dw = weight_grad(x, dy, w)
 *                       db = bias_grad(dy)
 *   input_grad(dy, w):  d(dy) = conv2d(dz, w)       dw = weight_grad(dz, dy, w)
 *   weight_grad(x, dy): dx = input_grad(dy, dz, x)  d(dy) = conv2d(x, dz)
 *   bias_grad(dy):      d(dy) = dz broadcast over images and positions
 * The output size of input_grad is ambiguous from dy alone (28 and 27 rows both give 14
 * with stride 2), which is why x and w come along for their shapes.
 *
 * Kernels lower everything to dg_gemm. With K = C KH KW and P = OH OW, the columns of one
 * image, col [K, P] (im2col: row (c,a,e), column (i,j) holds the input pixel that weight
 * (c,a,e) meets at output (i,j), 0 in the padding), give per group
 *   y_n = W col_n + b,   dcol_n = W^T dy_n (col2im adds it back onto dx_n),
 *   dW = sum over n of dy_n col_n^T.
 * The batch is cut into `slots` of consecutive images, a number that depends only on the
 * shapes (never on the thread count); each slot's images run on one thread with the slot's
 * own buffers from the plan's scratch, the GEMMs inside being single-threaded products.
 * Small outputs (P = 100 for 10x10) make narrow products, so a slot puts G images side by
 * side (col [K, G P]) and runs one wider GEMM per chunk; G is fixed by the shapes too. dW
 * gets one partial sum per slot (the first in the output itself), added in slot order at
 * the end, so every result is bitwise the same for any number of threads. A 1x1 kernel with
 * stride 1 and no padding needs no columns: col_n is x_n itself. On CPUs with AVX-512,
 * im2col/col2im move rows with masked loads and stores, thin weight gradients (few
 * weights, long rows) are dot products instead of GEMMs, and with stride 1 and one group
 * the forward and the weight gradient skip the columns altogether: direct kernels read the
 * (zero-padded) image in place; see below. */
#include "kernels.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Attributes (per axis: 0 = height, 1 = width). */
typedef struct conv_attrs {
    int64_t stride[2], pad[2], dil[2];
    int64_t groups;
} conv_attrs;

static const dg_attr_field conv_fields[] = {
    {"stride", DG_ATTR_INT64, offsetof(conv_attrs, stride), 2},
    {"padding", DG_ATTR_INT64, offsetof(conv_attrs, pad), 2},
    {"dilation", DG_ATTR_INT64, offsetof(conv_attrs, dil), 2},
    {"groups", DG_ATTR_INT64, offsetof(conv_attrs, groups), 1},
    {NULL, DG_ATTR_INT, 0, 0}};

/* Most slots a batch is cut into; scratch (in floats) their buffers may take together before
 * fewer slots are used; a chunk's column count (G P) to aim for, and its most floats. */
#define CONV_SLOTS       8
#define CONV_SCRATCH_CAP ((int64_t)16 << 20)
#define CHUNK_COLS       512
#define CHUNK_FLOATS     ((int64_t)256 << 10)

/* Everything a kernel needs to know about one convolution. */
typedef struct geom {
    int64_t n, c, h, w, o, kh, kw, oh, ow;
    int64_t groups, cg, og, kg; /* channels, outputs and K per group */
    int64_t k, p;               /* K = C KH KW, P = OH OW */
    int64_t stride[2], pad[2], dil[2];
    int64_t slots;      /* the batch is cut into this many runs of consecutive images */
    int64_t chunk;      /* images per GEMM within a slot (G) */
    int64_t per_slot;   /* scratch floats of one slot: columns K G P, then O G P */
    int direct;         /* 1x1, stride 1, no padding: columns are the input itself */
    int dfwd, dwg, dig; /* forward, weight and input gradients by the direct kernels */
    int64_t hp, wp;     /* padded image of the direct kernels */
    int64_t opad;       /* outputs rounded up to 64 (the direct weight gradient's dy^T rows) */
} geom;

static void choose_direct(geom *g);

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static geom make_geom(dg_shape xs, dg_shape ws, const conv_attrs *a) {
    geom g;
    g.n = xs.dim[0], g.c = xs.dim[1], g.h = xs.dim[2], g.w = xs.dim[3];
    g.o = ws.dim[0], g.kh = ws.dim[2], g.kw = ws.dim[3];
    for (int i = 0; i < 2; i++)
        g.stride[i] = a->stride[i], g.pad[i] = a->pad[i], g.dil[i] = a->dil[i];
    g.oh = out_size(g.h, g.kh, g.stride[0], g.pad[0], g.dil[0]);
    g.ow = out_size(g.w, g.kw, g.stride[1], g.pad[1], g.dil[1]);
    g.groups = a->groups;
    g.cg = g.c / g.groups, g.og = g.o / g.groups;
    g.kg = g.cg * g.kh * g.kw;
    g.k = g.c * g.kh * g.kw;
    g.p = g.oh * g.ow;
    g.direct = g.kh == 1 && g.kw == 1 && g.stride[0] == 1 && g.stride[1] == 1 && g.pad[0] == 0 &&
               g.pad[1] == 0;
    g.slots = g.n < CONV_SLOTS ? g.n : CONV_SLOTS;
    /* Small images give GEMMs with few columns (P = 100 for a 10x10 output): several images
     * side by side make a wider product and share one packing of the weights. */
    g.chunk = (CHUNK_COLS + g.p - 1) / g.p;
    if (g.chunk * g.k * g.p > CHUNK_FLOATS) g.chunk = CHUNK_FLOATS / (g.k * g.p);
    if (g.chunk < 1 || g.direct) g.chunk = 1;
    if (g.chunk > (g.n + g.slots - 1) / g.slots) g.chunk = (g.n + g.slots - 1) / g.slots;
    g.per_slot = (g.direct ? 0 : g.k * g.chunk * g.p) + (g.chunk > 1 ? g.o * g.chunk * g.p : 0);
    while (g.slots > 1 && g.slots * g.per_slot > CONV_SCRATCH_CAP) g.slots--;
    choose_direct(&g);
    return g;
}

/* The shape rule shared by the three ops: checks x [N,C,H,W] against w [O,C/G,KH,KW] and the
 * attributes, and gives y's shape. */
static dg_status conv_check(dg_shape xs, dg_shape ws, const conv_attrs *a, dg_shape *ys, char *msg,
                            size_t size) {
    char sx[64], sw[64];
    dg_shape_str(xs, sx, sizeof sx);
    dg_shape_str(ws, sw, sizeof sw);
    if (xs.ndim != 4 || ws.ndim != 4) {
        snprintf(msg, size, "input must be [N,C,H,W] and weights [O,C,KH,KW]: %s * %s", sx, sw);
        return DG_ERR_SHAPE;
    }
    for (int i = 0; i < 2; i++) {
        const char *axis = i ? "width" : "height";
        if (a->stride[i] < 1) {
            snprintf(msg, size, "stride must be >= 1, got %lld along the %s: %s * %s",
                     (long long)a->stride[i], axis, sx, sw);
            return DG_ERR_ARG;
        }
        if (a->pad[i] < 0) {
            snprintf(msg, size, "padding must be >= 0, got %lld along the %s: %s * %s",
                     (long long)a->pad[i], axis, sx, sw);
            return DG_ERR_ARG;
        }
        if (a->dil[i] < 1) {
            snprintf(msg, size, "dilation must be >= 1, got %lld along the %s: %s * %s",
                     (long long)a->dil[i], axis, sx, sw);
            return DG_ERR_ARG;
        }
    }
    int64_t groups = a->groups;
    if (groups < 1 || xs.dim[1] % groups || ws.dim[0] % groups) {
        snprintf(msg, size,
                 "groups must be >= 1 and divide the %lld input channels and %lld outputs, got "
                 "%lld: %s * %s",
                 (long long)xs.dim[1], (long long)ws.dim[0], (long long)groups, sx, sw);
        return DG_ERR_ARG;
    }
    if (xs.dim[1] != ws.dim[1] * groups) {
        if (groups == 1)
            snprintf(msg, size, "%lld input channels but weights expect %lld: %s * %s",
                     (long long)xs.dim[1], (long long)ws.dim[1], sx, sw);
        else
            snprintf(msg, size,
                     "%lld input channels but weights expect %lld per group x %lld groups: %s * %s",
                     (long long)xs.dim[1], (long long)ws.dim[1], (long long)groups, sx, sw);
        return DG_ERR_SHAPE;
    }
    int64_t out[2];
    for (int i = 0; i < 2; i++) {
        int64_t in = xs.dim[2 + i] + 2 * a->pad[i], span = a->dil[i] * (ws.dim[2 + i] - 1) + 1;
        if (span > in) {
            snprintf(msg, size,
                     "kernel %lldx%lld (dilation %lldx%lld) is larger than the padded input "
                     "%lldx%lld (padding %lldx%lld): %s * %s",
                     (long long)ws.dim[2], (long long)ws.dim[3], (long long)a->dil[0],
                     (long long)a->dil[1], (long long)(xs.dim[2] + 2 * a->pad[0]),
                     (long long)(xs.dim[3] + 2 * a->pad[1]), (long long)a->pad[0],
                     (long long)a->pad[1], sx, sw);
            return DG_ERR_SHAPE;
        }
        out[i] = (in - span) / a->stride[i] + 1;
    }
    *ys = dg_shape4(xs.dim[0], ws.dim[0], out[0], out[1]);
    return DG_OK;
}

/* inputs: x, w and optionally a bias b [O] */
static dg_status conv_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                           size_t size) {
    if (n > 3) {
        snprintf(msg, size, "takes x, w and an optional bias, got %d inputs", n);
        return DG_ERR_ARG;
    }
    if (n < 2) {
        snprintf(msg, size, "needs an input and weights, got %d inputs", n);
        return DG_ERR_ARG;
    }
    dg_status s = conv_check(in[0]->shape, in[1]->shape, attrs, out, msg, size);
    if (s == DG_OK && n == 3 && (in[2]->shape.ndim != 1 || in[2]->shape.dim[0] != out->dim[1])) {
        char sx[64], sw[64], sb[64];
        snprintf(msg, size, "bias %s does not match the %lld outputs: %s * %s + %s",
                 dg_shape_str(in[2]->shape, sb, sizeof sb), (long long)out->dim[1],
                 dg_shape_str(in[0]->shape, sx, sizeof sx),
                 dg_shape_str(in[1]->shape, sw, sizeof sw), sb);
        return DG_ERR_SHAPE;
    }
    return s;
}

/* dy must be what conv2d(x, w) gives; `what` is the output (x's or w's shape). */
static dg_status grad_check(dg_shape dys, dg_shape xs, dg_shape ws, const conv_attrs *a,
                            dg_shape what, dg_shape *out, char *msg, size_t size) {
    dg_shape ys;
    dg_status s = conv_check(xs, ws, a, &ys, msg, size);
    if (s != DG_OK) return s;
    if (!dg_shape_equal(ys, dys)) {
        char b0[64], b1[64], b2[64], b3[64];
        snprintf(msg, size, "gradient %s is not the shape %s of conv2d(%s, %s)",
                 dg_shape_str(dys, b0, sizeof b0), dg_shape_str(ys, b1, sizeof b1),
                 dg_shape_str(xs, b2, sizeof b2), dg_shape_str(ws, b3, sizeof b3));
        return DG_ERR_SHAPE;
    }
    *out = what;
    return DG_OK;
}

/* inputs: dy, w, x (shape only) */
static dg_status input_grad_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                                 char *msg, size_t size) {
    (void)n;
    return grad_check(in[0]->shape, in[2]->shape, in[1]->shape, attrs, in[2]->shape, out, msg,
                      size);
}

/* inputs: x, dy, w (shape only) */
static dg_status weight_grad_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                                  char *msg, size_t size) {
    (void)n;
    return grad_check(in[1]->shape, in[0]->shape, in[2]->shape, attrs, in[2]->shape, out, msg,
                      size);
}

/* ---- im2col and col2im for one image ---- */

/* The range [lo, hi) of output positions j whose input j s - p + off lies in [0, len). */
static void valid_range(int64_t outs, int64_t s, int64_t p, int64_t off, int64_t len, int64_t *lo,
                        int64_t *hi) {
    int64_t first = p - off; /* j s >= p - off */
    *lo = first <= 0 ? 0 : (first + s - 1) / s;
    int64_t last = len - 1 + p - off; /* j s <= len - 1 + p - off */
    *hi = last < 0 ? 0 : last / s + 1;
    if (*hi > outs) *hi = outs;
    if (*lo > *hi) *lo = *hi;
}

/* The copies below are rows of a few to a few dozen floats: GCC would turn them into memcpy
 * and memset calls, which cost more than the copies themselves. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALLS
#endif

/* im2col and col2im are written once as macros over three row operations (copy a run, zero
 * a run, add a run onto another) and instantiated twice: with plain loops, and on x86-64
 * with AVX-512 masked loads and stores, whose one instruction per run of up to 16 floats
 * suits the short rows of small images (10 floats for a 10x10 output). Both do the same
 * per-element copies and additions, so they give the same bits; the CPU decides which runs. */
#define IM2COL_BODY(COPY, ZERO)                                                                    \
    const int64_t sh = g->stride[0], sw = g->stride[1], ph = g->pad[0], pw = g->pad[1];            \
    for (int64_t c = 0; c < g->c; c++)                                                             \
        for (int64_t a = 0; a < g->kh; a++)                                                        \
            for (int64_t b = 0; b < g->kw; b++) {                                                  \
                float *row = col + ((c * g->kh + a) * g->kw + b) * ld;                             \
                int64_t offh = a * g->dil[0], offw = b * g->dil[1], j0, j1;                        \
                valid_range(g->ow, sw, pw, offw, g->w, &j0, &j1);                                  \
                for (int64_t i = 0; i < g->oh; i++) {                                              \
                    float *r = row + i * g->ow;                                                    \
                    int64_t ih = i * sh - ph + offh;                                               \
                    if (ih < 0 || ih >= g->h) {                                                    \
                        ZERO(r, g->ow);                                                            \
                        continue;                                                                  \
                    }                                                                              \
                    const float *src = x + (c * g->h + ih) * g->w - pw + offw;                     \
                    ZERO(r, j0);                                                                   \
                    if (sw == 1)                                                                   \
                        COPY(r + j0, src + j0, j1 - j0);                                           \
                    else                                                                           \
                        for (int64_t j = j0; j < j1; j++) r[j] = src[j * sw];                      \
                    ZERO(r + j1, g->ow - j1);                                                      \
                }                                                                                  \
            }

#define COL2IM_BODY(ZERO, ADD)                                                                     \
    const int64_t sh = g->stride[0], sw = g->stride[1], ph = g->pad[0], pw = g->pad[1];            \
    ZERO(dx, g->c * g->h * g->w);                                                                  \
    for (int64_t c = 0; c < g->c; c++)                                                             \
        for (int64_t a = 0; a < g->kh; a++)                                                        \
            for (int64_t b = 0; b < g->kw; b++) {                                                  \
                const float *row = col + ((c * g->kh + a) * g->kw + b) * ld;                       \
                int64_t offh = a * g->dil[0], offw = b * g->dil[1], j0, j1, i0, i1;                \
                valid_range(g->ow, sw, pw, offw, g->w, &j0, &j1);                                  \
                valid_range(g->oh, sh, ph, offh, g->h, &i0, &i1);                                  \
                for (int64_t i = i0; i < i1; i++) {                                                \
                    const float *r = row + i * g->ow;                                              \
                    float *dst = dx + (c * g->h + i * sh - ph + offh) * g->w - pw + offw;          \
                    if (sw == 1)                                                                   \
                        ADD(dst + j0, r + j0, j1 - j0);                                            \
                    else                                                                           \
                        for (int64_t j = j0; j < j1; j++) dst[j * sw] += r[j];                     \
                }                                                                                  \
            }

static inline void copy_plain(float *restrict d, const float *restrict s, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = s[i];
}
static inline void zero_plain(float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = 0.0f;
}
static inline void add_plain(float *restrict d, const float *restrict s, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

/* The columns of one image x [C, H, W]: row (c,a,b) of length P at col + row ld. */
NO_LIBCALLS static void im2col_plain(const geom *g, const float *restrict x, float *restrict col,
                                     int64_t ld){IM2COL_BODY(copy_plain, zero_plain)}

/* dx [C, H, W] = the columns (row stride ld) added back onto the pixels they came from (dx
 * zeroed first). Each pixel receives its terms in a fixed order: by (a, b), then by output
 * position. */
NO_LIBCALLS static void col2im_plain(const geom *g, const float *restrict col, int64_t ld,
                                     float *restrict dx) {
    COL2IM_BODY(zero_plain, add_plain)
}

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CONV_AVX512 1
#include "gemm_avx512.h"

#define AVX512 __attribute__((target("avx512f")))
static inline AVX512 __mmask16 tail_mask(int64_t n) { return (__mmask16)((1u << n) - 1u); }
static inline AVX512 void copy_avx512(float *d, const float *s, int64_t n) {
    for (; n >= 16; n -= 16, d += 16, s += 16) _mm512_storeu_ps(d, _mm512_loadu_ps(s));
    if (n > 0) _mm512_mask_storeu_ps(d, tail_mask(n), _mm512_maskz_loadu_ps(tail_mask(n), s));
}
static inline AVX512 void zero_avx512(float *d, int64_t n) {
    for (; n >= 16; n -= 16, d += 16) _mm512_storeu_ps(d, _mm512_setzero_ps());
    if (n > 0) _mm512_mask_storeu_ps(d, tail_mask(n), _mm512_setzero_ps());
}
static inline AVX512 void add_avx512(float *d, const float *s, int64_t n) {
    for (; n >= 16; n -= 16, d += 16, s += 16)
        _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), _mm512_loadu_ps(s)));
    if (n > 0) {
        __mmask16 m = tail_mask(n);
        _mm512_mask_storeu_ps(
            d, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d), _mm512_maskz_loadu_ps(m, s)));
    }
}
/* Rows of at most 16 floats with stride and dilation 1 (small images): one register per
 * row. j0/j1 per kernel column b are the output positions whose input pixel j + b - pw lies
 * in the image; their lanes are loaded straight from the input row, the others are zero. */
static int short_rows(const geom *g) {
    return g->stride[0] == 1 && g->stride[1] == 1 && g->dil[0] == 1 && g->dil[1] == 1 &&
           g->ow + g->kw - 1 <= 16 && g->kw <= 16;
}

static inline AVX512 __mmask16 lanes(int64_t lo, int64_t hi) {
    return hi > lo ? (__mmask16)(tail_mask(hi) & ~tail_mask(lo)) : 0;
}

static AVX512 void im2col_short(const geom *g, const float *x, float *col, int64_t ld) {
    /* locals: the stores below could alias *g as far as the compiler knows */
    const int64_t pw = g->pad[1], ph = g->pad[0], ow = g->ow, oh = g->oh, kw = g->kw;
    const int64_t h = g->h, w = g->w, kh = g->kh, channels = g->c;
    __mmask16 valid[16], all = tail_mask(ow);
    for (int64_t b = 0; b < kw; b++) {
        int64_t j0, j1;
        valid_range(ow, 1, pw, b, w, &j0, &j1);
        valid[b] = lanes(j0, j1);
    }
    for (int64_t c = 0; c < channels; c++)
        for (int64_t a = 0; a < kh; a++) {
            float *rows = col + (c * kh + a) * kw * ld;
            for (int64_t i = 0; i < oh; i++, rows += ow) {
                int64_t ih = i - ph + a;
                if (ih < 0 || ih >= h) {
                    for (int64_t b = 0; b < kw; b++)
                        _mm512_mask_storeu_ps(rows + b * ld, all, _mm512_setzero_ps());
                    continue;
                }
                const float *src = x + (c * h + ih) * w - pw;
                for (int64_t b = 0; b < kw; b++)
                    _mm512_mask_storeu_ps(rows + b * ld, all,
                                          _mm512_maskz_loadu_ps(valid[b], src + b));
            }
        }
}

/* Pixel row ih of channel c gathers, for each kernel column b in order, the terms of output
 * row i = ih + ph - a at lanes L = j + b (pixel L - pw): summed in a register and stored
 * once. Each pixel still receives its terms in (a, b) order, as in the plain loop. */
static AVX512 void col2im_short(const geom *g, const float *col, int64_t ld, float *dx) {
    const int64_t pw = g->pad[1], ph = g->pad[0], ow = g->ow, oh = g->oh, kw = g->kw;
    const int64_t h = g->h, w = g->w, kh = g->kh, channels = g->c;
    zero_avx512(dx, channels * h * w);
    __mmask16 term[16], pixels = lanes(pw, pw + w) & tail_mask(ow + kw - 1);
    for (int64_t b = 0; b < kw; b++) term[b] = lanes(b, b + ow) & pixels;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t a = 0; a < kh; a++) {
            const float *rows = col + (c * kh + a) * kw * ld;
            int64_t i0, i1;
            valid_range(oh, 1, ph, a, h, &i0, &i1);
            for (int64_t i = i0; i < i1; i++) {
                float *dst = dx + (c * h + i - ph + a) * w - pw;
                const float *r = rows + i * ow;
                __m512 acc = _mm512_maskz_loadu_ps(pixels, dst);
                for (int64_t b = 0; b < kw; b++)
                    acc = _mm512_mask_add_ps(acc, term[b], acc,
                                             _mm512_maskz_loadu_ps(term[b], r + b * ld - b));
                _mm512_mask_storeu_ps(dst, pixels, acc);
            }
        }
}

static AVX512 void im2col_avx512(const geom *g, const float *x, float *col, int64_t ld) {
    if (short_rows(g)) {
        im2col_short(g, x, col, ld);
        return;
    }
    IM2COL_BODY(copy_avx512, zero_avx512)
}
static AVX512 void col2im_avx512(const geom *g, const float *col, int64_t ld, float *dx) {
    if (short_rows(g)) {
        col2im_short(g, col, ld, dx);
        return;
    }
    COL2IM_BODY(zero_avx512, add_avx512)
}

/* Thin products, C[i][j] (+)= sum_p A[i lda + p] B[j ldb + p] with m n small and k long and
 * contiguous in both operands (the weight gradient of a layer with few inputs and outputs
 * and large images, such as a first convolution: 32 x 25 dot products of 784): packing for
 * the GEMM would cost more than the products. Blocks of 4 rows of A by 6 of B keep 24
 * accumulators of 16 lanes; each element's lanes are summed over p in order (the tail
 * masked), then reduced by a fixed tree: the same bits on every run and thread. */
#define DOT_BLOCK(MR, NR)                                                                          \
    static AVX512 void dot_##MR##x##NR(int64_t k, const float *a, int64_t lda, const float *b,     \
                                       int64_t ldb, float *c, int64_t ldc, int acc) {              \
        __m512 s[MR][NR];                                                                          \
        for (int r = 0; r < MR; r++)                                                               \
            for (int t = 0; t < NR; t++) s[r][t] = _mm512_setzero_ps();                            \
        int64_t p = 0;                                                                             \
        for (; p + 16 <= k; p += 16) {                                                             \
            __m512 va[MR], vb[NR];                                                                 \
            for (int r = 0; r < MR; r++) va[r] = _mm512_loadu_ps(a + r * lda + p);                 \
            for (int t = 0; t < NR; t++) vb[t] = _mm512_loadu_ps(b + t * ldb + p);                 \
            for (int r = 0; r < MR; r++)                                                           \
                for (int t = 0; t < NR; t++) s[r][t] = _mm512_fmadd_ps(va[r], vb[t], s[r][t]);     \
        }                                                                                          \
        if (p < k) {                                                                               \
            __mmask16 m = tail_mask(k - p);                                                        \
            __m512 va[MR], vb[NR];                                                                 \
            for (int r = 0; r < MR; r++) va[r] = _mm512_maskz_loadu_ps(m, a + r * lda + p);        \
            for (int t = 0; t < NR; t++) vb[t] = _mm512_maskz_loadu_ps(m, b + t * ldb + p);        \
            for (int r = 0; r < MR; r++)                                                           \
                for (int t = 0; t < NR; t++) s[r][t] = _mm512_fmadd_ps(va[r], vb[t], s[r][t]);     \
        }                                                                                          \
        for (int r = 0; r < MR; r++)                                                               \
            for (int t = 0; t < NR; t++) {                                                         \
                float v = _mm512_reduce_add_ps(s[r][t]);                                           \
                c[r * ldc + t] = acc ? c[r * ldc + t] + v : v;                                     \
            }                                                                                      \
    }
DOT_BLOCK(4, 6)
DOT_BLOCK(4, 1)
DOT_BLOCK(1, 6)
DOT_BLOCK(1, 1)

static AVX512 void dot_products(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                                const float *b, int64_t ldb, float *c, int64_t ldc, int acc) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
        int64_t j = 0;
        for (; j + 6 <= n; j += 6)
            dot_4x6(k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, acc);
        for (; j < n; j++)
            dot_4x1(k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, acc);
    }
    for (; i < m; i++) {
        int64_t j = 0;
        for (; j + 6 <= n; j += 6)
            dot_1x6(k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, acc);
        for (; j < n; j++)
            dot_1x1(k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, acc);
    }
}

/* ---- direct convolution: no columns (AVX-512, stride 1, one group) ----
 *
 * Forward: a tile is R <= 14 consecutive output pixels of one output row by 32 outputs, in
 * 2R accumulators (lanes: outputs). For each k = (c, a, b) in order, the 32 weights w[., k]
 * come from a packed panel (K x 32, packed once per call) and each pixel's input is a
 * broadcast straight from the (zero-padded) image: pixel r of the tile meets input
 * x[koff[k] + r], koff[k] = c Hp Wp + a d_h Wp + b d_w. Every element is one zero-started
 * FMA chain over k in order, then plus the bias; the tile goes to y through 16 x 16
 * transposes, as rows of R pixels.
 *
 * Weight gradient: dW^T[k, o] = sum over images and output pixels of x[..] dy[o, pixel]. A
 * tile is the KW taps b of one (c, a) by 64 outputs (dy transposed per image, pixels by
 * outputs): per output pixel four vector loads of dy^T, KW broadcasts of x, 4 KW FMAs. Each
 * image's sum is a zero-started chain over its pixels in order, added to the slot's partial
 * in image order; the slots' partials are added in slot order.
 *
 * Input gradient: a tile scatters JN = 14 - KW + 1 dy values of a row onto the 14 dx pixels
 * they reach, 16 channels as lanes (see ig_tile); kernel rows whose dy row does not exist
 * are skipped, so no term is a border zero. Nothing depends on the thread count. */

#define DTILE  14 /* most pixels of a forward or input-gradient tile */
#define DWG_KW 7  /* widest kernel of the direct weight and input gradients */

AVX512_INLINE void fwd_tile(const int R, int64_t k, const float *w, const int32_t *koff,
                            const float *x, float *y, int64_t ldy, int nout, const float *bias) {
    __m512 acc[DTILE][2];
    _Pragma("GCC unroll 14") for (int r = 0; r < R; r++) {
        acc[r][0] = _mm512_setzero_ps();
        acc[r][1] = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < k; p++) {
        __m512 b0 = _mm512_load_ps(w), b1 = _mm512_load_ps(w + 16);
        const float *xp = x + koff[p];
        _Pragma("GCC unroll 14") for (int r = 0; r < R; r++) {
            __m512 a = _mm512_set1_ps(xp[r]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
        w += 32;
    }
    __mmask16 m0, m1;
    col_masks(nout, &m0, &m1);
    if (bias) {
        __m512 c0 = _mm512_maskz_loadu_ps(m0, bias), c1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        _Pragma("GCC unroll 14") for (int r = 0; r < R; r++) {
            acc[r][0] = _mm512_add_ps(acc[r][0], c0);
            acc[r][1] = _mm512_add_ps(acc[r][1], c1);
        }
    }
    const __mmask16 pix = (__mmask16)((1u << R) - 1u);
    for (int v = 0; v < 2 && 16 * v < nout; v++) {
        __m512 t[16];
        _Pragma("GCC unroll 16") for (int r = 0; r < 16; r++) t[r] =
            r < R ? acc[r][v] : _mm512_setzero_ps();
        transpose16(t);
        int n = nout - 16 * v < 16 ? nout - 16 * v : 16;
        for (int o = 0; o < n; o++) _mm512_mask_storeu_ps(y + (16 * v + o) * ldy, pix, t[o]);
    }
}

typedef void (*fwd_tile_fn)(int64_t k, const float *w, const int32_t *koff, const float *x,
                            float *y, int64_t ldy, int nout, const float *bias);
#define DEF_FWD(R)                                                                                 \
    AVX512 static void fwd_##R(int64_t k, const float *w, const int32_t *koff, const float *x,     \
                               float *y, int64_t ldy, int nout, const float *bias) {               \
        fwd_tile(R, k, w, koff, x, y, ldy, nout, bias);                                            \
    }
DEF_FWD(1)
DEF_FWD(2)
DEF_FWD(3)
DEF_FWD(4)
DEF_FWD(5)
DEF_FWD(6)
DEF_FWD(7)
DEF_FWD(8)
DEF_FWD(9)
DEF_FWD(10)
DEF_FWD(11)
DEF_FWD(12)
DEF_FWD(13)
DEF_FWD(14)
static const fwd_tile_fn fwd_tiles[DTILE + 1] = {NULL,   fwd_1,  fwd_2,  fwd_3,  fwd_4,
                                                 fwd_5,  fwd_6,  fwd_7,  fwd_8,  fwd_9,
                                                 fwd_10, fwd_11, fwd_12, fwd_13, fwd_14};

AVX512_INLINE void wg_tile(const int R, const int FULL, const float *x, int64_t wp,
                           const float *dyt, int64_t ldd, int64_t oh, int64_t ow,
                           const __mmask16 m[4], float *out, int add) {
    __m512 acc[DWG_KW][4];
    _Pragma("GCC unroll 7") for (int b = 0; b < R; b++) for (int v = 0; v < 4; v++) acc[b][v] =
        _mm512_setzero_ps();
    for (int64_t i = 0; i < oh; i++) {
        const float *xr = x + i * wp, *dr = dyt + i * ow * ldd;
        for (int64_t j = 0; j < ow; j++) {
            __m512 d[4];
            for (int v = 0; v < 4; v++)
                d[v] = FULL ? _mm512_loadu_ps(dr + j * ldd + 16 * v)
                            : _mm512_maskz_loadu_ps(m[v], dr + j * ldd + 16 * v);
            _Pragma("GCC unroll 7") for (int b = 0; b < R; b++) {
                __m512 s = _mm512_set1_ps(xr[j + b]);
                for (int v = 0; v < 4; v++) acc[b][v] = _mm512_fmadd_ps(s, d[v], acc[b][v]);
            }
        }
    }
    _Pragma("GCC unroll 7") for (int b = 0; b < R; b++) for (int v = 0; v < 4; v++) {
        float *o = out + b * ldd + 16 * v;
        __m512 s = add ? _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], o), acc[b][v]) : acc[b][v];
        _mm512_mask_storeu_ps(o, m[v], s);
    }
}

typedef void (*wg_tile_fn)(const float *x, int64_t wp, const float *dyt, int64_t ldd, int64_t oh,
                           int64_t ow, const __mmask16 m[4], float *out, int add);
#define DEF_WG(R)                                                                                  \
    AVX512 static void wg_##R(const float *x, int64_t wp, const float *dyt, int64_t ldd,           \
                              int64_t oh, int64_t ow, const __mmask16 m[4], float *out, int add) { \
        if (m[3] == 0xFFFF)                                                                        \
            wg_tile(R, 1, x, wp, dyt, ldd, oh, ow, m, out, add);                                   \
        else                                                                                       \
            wg_tile(R, 0, x, wp, dyt, ldd, oh, ow, m, out, add);                                   \
    }
DEF_WG(1)
DEF_WG(2)
DEF_WG(3)
DEF_WG(4)
DEF_WG(5)
DEF_WG(6)
DEF_WG(7)
static const wg_tile_fn wg_tiles[DWG_KW + 1] = {NULL, wg_1, wg_2, wg_3, wg_4, wg_5, wg_6, wg_7};

/* dst[p * ldd + o] = src[o * lds + p] for o < rows, p < cols: 16 x 16 blocks through
 * registers (masked at the edges). Moves only. */
static AVX512 void transpose_rows(float *dst, int64_t ldd, const float *src, int64_t lds,
                                  int64_t rows, int64_t cols) {
    for (int64_t o0 = 0; o0 < rows; o0 += 16)
        for (int64_t p0 = 0; p0 < cols; p0 += 16) {
            int64_t nr = rows - o0 < 16 ? rows - o0 : 16, nc = cols - p0 < 16 ? cols - p0 : 16;
            __mmask16 mc = tail_mask(nc), mr = tail_mask(nr);
            __m512 t[16];
            for (int r = 0; r < 16; r++)
                t[r] = r < nr ? _mm512_maskz_loadu_ps(mc, src + (o0 + r) * lds + p0)
                              : _mm512_setzero_ps();
            transpose16(t);
            for (int64_t c = 0; c < nc; c++)
                _mm512_mask_storeu_ps(dst + (p0 + c) * ldd + o0, mr, t[c]);
        }
}

/* Input-gradient tile: JN = DTILE - KW + 1 consecutive dy columns of one dy row per (kernel
 * row, output), scattered onto the DTILE dx pixels they reach, with 16 channels as lanes.
 * For each kernel row a' (na of them, dy rows `rows` apart) and output o (`chan` apart), the
 * KW weight vectors w[o, c, KH-1-a', b] (packed in that order) stay in registers while each
 * dy value is broadcast once: pixel jj + b += dy[jj] w_b. Every FMA meets a dy value, none a
 * border. The tile is then added onto 16 rows of `acc_rows` (stride ldr), columns 0..13. */
AVX512_INLINE void ig_tile(const int KW, int64_t na, int64_t no, const float *w, const float *dy,
                           int64_t rows, int64_t chan, float *acc_rows, int64_t ldr, int nout) {
    const int jn = DTILE - KW + 1;
    __m512 acc[DTILE];
    _Pragma("GCC unroll 14") for (int t = 0; t < DTILE; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t a = 0; a < na; a++, dy += rows)
        for (int64_t o = 0; o < no; o++) {
            const float *d = dy + o * chan;
            __m512 wb[DWG_KW];
            _Pragma("GCC unroll 7") for (int b = 0; b < KW; b++) wb[b] = _mm512_load_ps(w + 16 * b);
            w += 16 * KW;
            _Pragma("GCC unroll 14") for (int jj = 0; jj < jn; jj++) {
                __m512 v = _mm512_set1_ps(d[jj]);
                _Pragma("GCC unroll 7") for (int b = 0; b < KW; b++) acc[jj + b] =
                    _mm512_fmadd_ps(v, wb[b], acc[jj + b]);
            }
        }
    const __mmask16 pix = (__mmask16)((1u << DTILE) - 1u);
    __m512 t[16];
    _Pragma("GCC unroll 16") for (int r = 0; r < 16; r++) t[r] =
        r < DTILE ? acc[r] : _mm512_setzero_ps();
    transpose16(t);
    for (int c = 0; c < nout; c++) {
        float *r = acc_rows + c * ldr;
        _mm512_mask_storeu_ps(r, pix, _mm512_add_ps(_mm512_maskz_loadu_ps(pix, r), t[c]));
    }
}

typedef void (*ig_tile_fn)(int64_t na, int64_t no, const float *w, const float *dy, int64_t rows,
                           int64_t chan, float *acc_rows, int64_t ldr, int nout);
#define DEF_IG(KW)                                                                                 \
    AVX512 static void ig_##KW(int64_t na, int64_t no, const float *w, const float *dy,            \
                               int64_t rows, int64_t chan, float *acc_rows, int64_t ldr,           \
                               int nout) {                                                         \
        ig_tile(KW, na, no, w, dy, rows, chan, acc_rows, ldr, nout);                               \
    }
DEF_IG(1)
DEF_IG(2)
DEF_IG(3)
DEF_IG(4)
DEF_IG(5)
DEF_IG(6)
DEF_IG(7)
static const ig_tile_fn ig_tiles[DWG_KW + 1] = {NULL, ig_1, ig_2, ig_3, ig_4, ig_5, ig_6, ig_7};
#endif

static void im2col(const geom *g, const float *x, float *col, int64_t ld) {
#ifdef CONV_AVX512
    if (dg__ops_use_avx512()) {
        im2col_avx512(g, x, col, ld);
        return;
    }
#endif
    im2col_plain(g, x, col, ld);
}

static void col2im(const geom *g, const float *col, int64_t ld, float *dx) {
#ifdef CONV_AVX512
    if (dg__ops_use_avx512()) {
        col2im_avx512(g, col, ld, dx);
        return;
    }
#endif
    col2im_plain(g, col, ld, dx);
}

/* Copies `rows` rows of `len` floats from src (stride src_ld) to dst (stride dst_ld). */
NO_LIBCALLS static void copy_rows(float *restrict dst, int64_t dst_ld, const float *restrict src,
                                  int64_t src_ld, int64_t rows, int64_t len) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < len; i++) dst[r * dst_ld + i] = src[r * src_ld + i];
}

/* ---- kernels: slots of consecutive images, one thread each, chunks of G images ---- */

typedef struct conv_job {
    geom g;
    const float *x, *w, *dy, *bias; /* bias: NULL for none */
    float *out;                     /* y, dx or dw */
    float *scratch;                 /* per slot: columns, then a chunk of outputs */
} conv_job;

static int64_t slot_begin(const geom *g, int64_t s) { return g->n * s / g->slots; }

/* ---- direct convolution: drivers (AVX-512 builds only) ---- */

#ifdef CONV_AVX512
/* Floats of one zero-padded image (0 without padding: the image is used in place). */
static int64_t pad_floats(const geom *g) {
    return g->pad[0] || g->pad[1] ? g->c * g->hp * g->wp : 0;
}

/* The image x [C, H, W] with its zero border in buf [C, Hp, Wp]; x itself without padding. */
NO_LIBCALLS static const float *padded_image(const geom *g, const float *restrict x,
                                             float *restrict buf) {
    if (!pad_floats(g)) return x;
    const int64_t ph = g->pad[0], pw = g->pad[1];
    for (int64_t c = 0; c < g->c; c++) {
        float *plane = buf + c * g->hp * g->wp;
        for (int64_t i = 0; i < g->hp; i++) {
            float *row = plane + i * g->wp;
            int64_t src = i - ph;
            if (src < 0 || src >= g->h) {
                for (int64_t t = 0; t < g->wp; t++) row[t] = 0.0f;
                continue;
            }
            const float *in = x + (c * g->h + src) * g->w;
            for (int64_t t = 0; t < pw; t++) row[t] = 0.0f;
            for (int64_t t = 0; t < g->w; t++) row[pw + t] = in[t];
            for (int64_t t = pw + g->w; t < g->wp; t++) row[t] = 0.0f;
        }
    }
    return buf;
}

/* Forward scratch: the packed weights (panels of 32 outputs, K x 32 each) and the offsets
 * koff, shared by all slots; then a padded image per slot. */
static int64_t dfwd_shared(const geom *g) {
    return (g->o + 31) / 32 * 32 * g->k + (g->k + 15) / 16 * 16;
}

static void dfwd_prepare(const geom *g, const float *restrict w, float *restrict s) {
    const int64_t k = g->k, panels = (g->o + 31) / 32;
    for (int64_t q = 0; q < panels; q++)
        for (int64_t p = 0; p < k; p++)
            for (int64_t v = 0; v < 32; v++) {
                int64_t o = 32 * q + v;
                s[(q * k + p) * 32 + v] = o < g->o ? w[o * k + p] : 0.0f;
            }
    int32_t *koff = (int32_t *)(s + panels * 32 * k);
    for (int64_t c = 0, p = 0; c < g->c; c++)
        for (int64_t a = 0; a < g->kh; a++)
            for (int64_t b = 0; b < g->kw; b++, p++)
                koff[p] = (int32_t)((c * g->hp + a * g->dil[0]) * g->wp + b * g->dil[1]);
}

/* One image: every output row in tiles of at most DTILE pixels (split evenly), per panel. */
static void dfwd_image(const geom *g, const float *shared, const float *x, float *y,
                       const float *bias) {
    const int64_t k = g->k, panels = (g->o + 31) / 32, ow = g->ow;
    const int32_t *koff = (const int32_t *)(shared + panels * 32 * k);
    const int64_t tiles = (ow + DTILE - 1) / DTILE;
    for (int64_t q = 0; q < panels; q++) {
        int nout = g->o - 32 * q < 32 ? (int)(g->o - 32 * q) : 32;
        const float *w = shared + q * k * 32, *bq = bias ? bias + 32 * q : NULL;
        for (int64_t i = 0; i < g->oh; i++)
            for (int64_t t = 0; t < tiles; t++) {
                int64_t j0 = ow * t / tiles, j1 = ow * (t + 1) / tiles;
                fwd_tiles[j1 - j0](k, w, koff, x + i * g->wp + j0, y + 32 * q * g->p + i * ow + j0,
                                   g->p, nout, bq);
            }
    }
}

static void dfwd_range(void *ctx, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const geom *g = &j->g;
    const int64_t image = g->c * g->h * g->w;
    float *buf = j->scratch + dfwd_shared(g) + lo * pad_floats(g);
    for (int64_t s = lo; s < hi; s++, buf += pad_floats(g))
        for (int64_t n = slot_begin(g, s), end = slot_begin(g, s + 1); n < end; n++)
            dfwd_image(g, j->scratch, padded_image(g, j->x + n * image, buf),
                       j->out + n * g->o * g->p, j->bias);
}

/* Weight-gradient scratch per slot: the partial dW^T [K, Opad], dy^T [P, Opad], a padded
 * image. */
static int64_t dwg_per_slot(const geom *g) {
    return g->k * g->opad + g->p * g->opad + pad_floats(g);
}

static void dwg_range(void *ctx, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const geom *g = &j->g;
    const int64_t image = g->c * g->h * g->w, ld = g->opad, kw = g->kw;
    for (int64_t s = lo; s < hi; s++) {
        float *part = j->scratch + s * dwg_per_slot(g), *dyt = part + g->k * ld,
              *buf = dyt + g->p * ld;
        for (int64_t n = slot_begin(g, s), end = slot_begin(g, s + 1); n < end; n++) {
            const float *dy = j->dy + n * g->o * g->p;
            transpose_rows(dyt, ld, dy, g->p, g->o, g->p); /* dy^T */
            const float *x = padded_image(g, j->x + n * image, buf);
            int add = n > slot_begin(g, s);
            for (int64_t q = 0; q < ld / 64; q++) {
                __mmask16 m[4];
                for (int v = 0; v < 4; v++) {
                    int64_t left = g->o - 64 * q - 16 * v;
                    m[v] = left >= 16 ? (__mmask16)0xFFFF
                           : left > 0 ? (__mmask16)((1u << left) - 1u)
                                      : 0;
                }
                for (int64_t c = 0; c < g->c; c++)
                    for (int64_t a = 0; a < g->kh; a++)
                        wg_tiles[kw](x + (c * g->hp + a * g->dil[0]) * g->wp, g->wp, dyt + 64 * q,
                                     ld, g->oh, g->ow, m,
                                     part + ((c * g->kh + a) * kw) * ld + 64 * q, add);
            }
        }
    }
}

/* Input gradient: dx[c, h, w] = sum over a, o, b of w[o, c, a, b] dy[o, h + p_h - a,
 * w + p_w - b]. Per dx row h only the kernel rows a whose dy row exists take part; the dy
 * columns go in chunks of JN (read from a copy of dy with zero columns after OW when JN
 * does not divide OW), each chunk's tile added onto DTILE columns of a zeroed row buffer
 * in chunk order (column m is pixel w = m - p_w), which is then copied into dx.
 * Each dx element: the same chains and additions in the same order on every run. */
static int64_t ig_jn(const geom *g) { return DTILE - g->kw + 1; }
static int64_t ig_chunks(const geom *g) { return (g->ow + ig_jn(g) - 1) / ig_jn(g); }
static int64_t ig_owc(const geom *g) { return ig_chunks(g) * ig_jn(g); } /* dy row as read */
static int64_t ig_ldr(const geom *g) { return (ig_chunks(g) - 1) * ig_jn(g) + DTILE; }

static int64_t dig_shared(const geom *g) { return (g->c + 15) / 16 * 16 * g->o * g->kh * g->kw; }

static int64_t dig_per_slot(const geom *g) {
    int64_t copy = ig_owc(g) != g->ow ? g->o * g->oh * ig_owc(g) : 0;
    return (copy + 16 * ig_ldr(g) + 15) / 16 * 16;
}

/* Weights by panels of 16 channels: term (a', o, b) holds w[o, c, KH-1-a', b]. */
static void dig_prepare(const geom *g, const float *restrict w, float *restrict s) {
    const int64_t kt = g->o * g->kh * g->kw, panels = (g->c + 15) / 16;
    for (int64_t q = 0; q < panels; q++)
        for (int64_t a = 0, p = 0; a < g->kh; a++)
            for (int64_t o = 0; o < g->o; o++)
                for (int64_t b = 0; b < g->kw; b++, p++)
                    for (int64_t v = 0; v < 16; v++) {
                        int64_t c = 16 * q + v;
                        s[(q * kt + p) * 16 + v] =
                            c < g->c ? w[((o * g->c + c) * g->kh + g->kh - 1 - a) * g->kw + b]
                                     : 0.0f;
                    }
}

NO_LIBCALLS static void dig_image(const geom *g, const float *shared, const float *dy, float *dx,
                                  float *rowbuf) {
    const int64_t per_a = g->o * g->kw, kt = per_a * g->kh, panels = (g->c + 15) / 16;
    const int64_t plane = g->h * g->w, owc = ig_owc(g), ldr = ig_ldr(g), jn = ig_jn(g);
    const int64_t top = g->kh - 1 - g->pad[0], left = g->pad[1];
    for (int64_t q = 0; q < panels; q++) {
        int nout = g->c - 16 * q < 16 ? (int)(g->c - 16 * q) : 16;
        const float *w = shared + q * kt * 16;
        for (int64_t h = 0; h < g->h; h++) {
            /* kernel row a' = KH-1-a meets dy row h + p_h - a = h + a' - top */
            int64_t a0 = top - h > 0 ? top - h : 0, a1 = top + g->oh - h;
            if (a1 > g->kh) a1 = g->kh;
            for (int64_t e = 0; e < nout * ldr; e++) rowbuf[e] = 0.0f;
            if (a0 < a1)
                for (int64_t ch = 0; ch < ig_chunks(g); ch++)
                    ig_tiles[g->kw](a1 - a0, g->o, w + a0 * per_a * 16,
                                    dy + (h + a0 - top) * owc + ch * jn, owc, g->oh * owc,
                                    rowbuf + ch * jn, ldr, nout);
            /* pixel w sits at column w + p_w */
            float *out = dx + 16 * q * plane + h * g->w;
            for (int64_t c = 0; c < nout; c++)
                for (int64_t t = 0; t < g->w; t++) out[c * plane + t] = rowbuf[c * ldr + left + t];
        }
    }
}

NO_LIBCALLS static void dig_range(void *ctx, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const geom *g = &j->g;
    const int64_t image = g->c * g->h * g->w, owc = ig_owc(g);
    for (int64_t s = lo; s < hi; s++) {
        float *buf = j->scratch + dig_shared(g) + s * dig_per_slot(g);
        float *copy = owc != g->ow ? buf : NULL;
        float *rowbuf = buf + (copy ? g->o * g->oh * owc : 0);
        for (int64_t n = slot_begin(g, s), end = slot_begin(g, s + 1); n < end; n++) {
            const float *dy = j->dy + n * g->o * g->p;
            if (copy) {
                for (int64_t r = 0; r < g->o * g->oh; r++) {
                    for (int64_t t = 0; t < g->ow; t++) copy[r * owc + t] = dy[r * g->ow + t];
                    for (int64_t t = g->ow; t < owc; t++) copy[r * owc + t] = 0.0f;
                }
                dy = copy;
            }
            dig_image(g, j->scratch, dy, j->out + n * image, rowbuf);
        }
    }
}

/* dw[o, k] = the slots' partials dW^T[k, o] added in slot order. */
static void dwg_reduce(void *ctx, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const geom *g = &j->g;
    const int64_t per = dwg_per_slot(g), ld = g->opad;
    for (int64_t k = lo; k < hi; k++)
        for (int64_t o = 0; o < g->o; o++) {
            float v = j->scratch[k * ld + o];
            for (int64_t s = 1; s < g->slots; s++) v += j->scratch[s * per + k * ld + o];
            j->out[o * g->k + k] = v;
        }
}
#endif

/* The columns of images [n0, n0 + cnt) side by side: image i at columns [i P, (i+1) P) of
 * a K x (cnt P) matrix; returns it (x itself for a direct convolution of one image). */
static const float *chunk_columns(const conv_job *j, float *col, int64_t n0, int64_t cnt) {
    const geom *g = &j->g;
    const int64_t image = g->c * g->h * g->w, ld = cnt * g->p;
    if (g->direct) return j->x + n0 * image; /* chunk is 1 */
    for (int64_t i = 0; i < cnt; i++) im2col(g, j->x + (n0 + i) * image, col + i * g->p, ld);
    return col;
}

/* y_n = W col_n (+ b) per group for the images of slots [lo, hi), a chunk at a time: one
 * image's product goes straight into y_n, several into the slot's buffer and then apart. */
static void forward_range(void *ctx, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const geom *g = &j->g;
    float *col = j->scratch + lo * g->per_slot,
          *tmp = col + (g->direct ? 0 : g->k * g->chunk * g->p);
    for (int64_t s = lo; s < hi; s++)
        for (int64_t n0 = slot_begin(g, s), end = slot_begin(g, s + 1); n0 < end; n0 += g->chunk) {
            int64_t cnt = end - n0 < g->chunk ? end - n0 : g->chunk, ld = cnt * g->p;
            const float *cols = chunk_columns(j, col, n0, cnt);
            float *y = j->out + n0 * g->o * g->p, *prod = cnt == 1 ? y : tmp;
            for (int64_t q = 0; q < g->groups; q++)
                dg_gemm(0, 0, g->og, ld, g->kg, j->w + q * g->og * g->kg, g->kg,
                        cols + q * g->kg * ld, ld, prod + q * g->og * ld, ld, 0);
            for (int64_t i = 0; i < cnt; i++) {
                float *yi = y + i * g->o * g->p;
                if (cnt > 1) copy_rows(yi, g->p, tmp + i * g->p, ld, g->o, g->p);
                if (j->bias)
                    for (int64_t o = 0; o < g->o; o++) {
                        float bo = j->bias[o], *r = yi + o * g->p;
                        for (int64_t t = 0; t < g->p; t++) r[t] += bo;
                    }
            }
        }
}

/* dy of images [n0, n0 + cnt) side by side as an O x (cnt P) matrix (dy itself for one). */
static const float *chunk_dy(const conv_job *j, float *buf, int64_t n0, int64_t cnt) {
    const geom *g = &j->g;
    const float *dy = j->dy + n0 * g->o * g->p;
    if (cnt == 1) return dy;
    for (int64_t i = 0; i < cnt; i++)
        copy_rows(buf + i * g->p, cnt * g->p, dy + i * g->o * g->p, g->p, g->o, g->p);
    return buf;
}

/* dx_n = col2im(W^T dy_n) per group. */
static void input_grad_range(void *ctx, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const geom *g = &j->g;
    const int64_t image = g->c * g->h * g->w;
    float *col = j->scratch + lo * g->per_slot,
          *tmp = col + (g->direct ? 0 : g->k * g->chunk * g->p);
    for (int64_t s = lo; s < hi; s++)
        for (int64_t n0 = slot_begin(g, s), end = slot_begin(g, s + 1); n0 < end; n0 += g->chunk) {
            int64_t cnt = end - n0 < g->chunk ? end - n0 : g->chunk, ld = cnt * g->p;
            const float *dy = chunk_dy(j, tmp, n0, cnt);
            float *dcol = g->direct ? j->out + n0 * image : col;
            for (int64_t q = 0; q < g->groups; q++)
                dg_gemm(1, 0, g->kg, ld, g->og, j->w + q * g->og * g->kg, g->kg,
                        dy + q * g->og * ld, ld, dcol + q * g->kg * ld, ld, 0);
            if (!g->direct)
                for (int64_t i = 0; i < cnt; i++)
                    col2im(g, col + i * g->p, ld, j->out + (n0 + i) * image);
        }
}

/* A thin weight gradient (few outputs by few inputs per group, long rows): dot products
 * image by image instead of GEMMs (see dot_products). */
static int thin_weight_grad(const geom *g) {
#ifdef CONV_AVX512
    return g->og * g->kg <= 4096 && g->p >= 64 && dg__ops_use_avx512();
#else
    (void)g;
    return 0;
#endif
}

/* The direct kernels take stride 1 and one group, and need AVX-512; their lanes are
 * outputs (forward: panels of 32, at least 16 outputs; weight gradient: panels of 64, at
 * least 32) or channels (input gradient: panels of 16, at least 16). The forward wants a
 * product deep enough to amortise its transposed stores (K >= 16: MNIST's conv1, K = 25,
 * runs 0.82 -> 0.57 ms); the weight gradient kernels at most DWG_KW wide without dilation
 * along the width, and a product the thin path would not take; the input gradient no
 * dilation, padding below the kernel size and kernels at most DWG_KW wide. Fewer outputs or
 * channels (a first layer's one channel) would leave most lanes idle. */
static void choose_direct(geom *g) {
    g->dfwd = g->dwg = g->dig = 0;
    g->hp = g->h + 2 * g->pad[0], g->wp = g->w + 2 * g->pad[1];
    g->opad = (g->o + 63) / 64 * 64;
#ifdef CONV_AVX512
    int ok = g->groups == 1 && g->stride[0] == 1 && g->stride[1] == 1 && !g->direct &&
             g->c * g->hp * g->wp < ((int64_t)1 << 31) && dg__ops_use_avx512();
    g->dfwd = ok && g->k >= 16 && g->o >= 16;
    g->dwg = ok && g->dil[1] == 1 && g->kw <= DWG_KW && !thin_weight_grad(g) && g->o >= 32;
    g->dig = ok && g->dil[0] == 1 && g->dil[1] == 1 && g->pad[0] < g->kh && g->pad[1] < g->kw &&
             g->kw <= DWG_KW && g->o * g->kh * g->kw >= 16 && g->c >= 16;
#endif
}

/* Partial dW of each slot: sum over its chunks of dy col^T, accumulated in image order;
 * slot 0's goes straight into the output, the others' after the slots' buffers. */
static void weight_grad_range(void *ctx, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const geom *g = &j->g;
    float *col = j->scratch + lo * g->per_slot,
          *tmp = col + (g->direct ? 0 : g->k * g->chunk * g->p);
    float *partials = j->scratch + g->slots * g->per_slot;
    int thin = thin_weight_grad(g);
    for (int64_t s = lo; s < hi; s++) {
        float *dw = s == 0 ? j->out : partials + (s - 1) * g->o * g->kg;
        int64_t chunk = thin ? 1 : g->chunk;
        for (int64_t n0 = slot_begin(g, s), end = slot_begin(g, s + 1); n0 < end; n0 += chunk) {
            int64_t cnt = end - n0 < chunk ? end - n0 : chunk, ld = cnt * g->p;
            const float *cols = chunk_columns(j, col, n0, cnt), *dy = chunk_dy(j, tmp, n0, cnt);
            for (int64_t q = 0; q < g->groups; q++) {
                const float *a = dy + q * g->og * ld, *b = cols + q * g->kg * ld;
                float *c = dw + q * g->og * g->kg;
                int acc = n0 > slot_begin(g, s);
#ifdef CONV_AVX512
                if (thin) {
                    dot_products(g->og, g->kg, ld, a, ld, b, ld, c, g->kg, acc);
                    continue;
                }
#endif
                dg_gemm(0, 1, g->og, g->kg, ld, a, ld, b, ld, c, g->kg, acc);
            }
        }
    }
}

/* dw += the other slots' partials, in slot order. */
static void reduce_range(void *ctx, int64_t lo, int64_t hi) {
    const conv_job *j = ctx;
    const geom *g = &j->g;
    const int64_t size = g->o * g->kg;
    const float *partials = j->scratch + g->slots * g->per_slot;
    for (int64_t s = 1; s < g->slots; s++) {
        const float *restrict p = partials + (s - 1) * size;
        float *restrict dw = j->out;
        for (int64_t e = lo; e < hi; e++) dw[e] += p[e];
    }
}

/* Work per slot, in the elementary operations dg_parallel_for weighs. */
static int64_t slot_cost(const geom *g) {
    return (g->n / g->slots + 1) * (g->o * g->kg * g->p + g->k * g->p);
}

static size_t slots_bytes(const geom *g) {
    return (size_t)(g->slots * g->per_slot) * sizeof(float);
}

static const conv_attrs *attrs_of(const dg_node *self) { return self->attrs; }

static size_t forward_scratch(const dg_node *self) {
    geom g = make_geom(self->inputs[0]->shape, self->inputs[1]->shape, attrs_of(self));
#ifdef CONV_AVX512
    if (g.dfwd) return (size_t)(dfwd_shared(&g) + g.slots * pad_floats(&g)) * sizeof(float);
#endif
    return slots_bytes(&g);
}

static size_t input_grad_scratch(const dg_node *self) {
    geom g = make_geom(self->inputs[2]->shape, self->inputs[1]->shape, attrs_of(self));
#ifdef CONV_AVX512
    if (g.dig) return (size_t)(dig_shared(&g) + g.slots * dig_per_slot(&g)) * sizeof(float);
#endif
    return slots_bytes(&g);
}

static size_t weight_grad_scratch(const dg_node *self) {
    geom g = make_geom(self->inputs[0]->shape, self->inputs[2]->shape, attrs_of(self));
#ifdef CONV_AVX512
    if (g.dwg) return (size_t)(g.slots * dwg_per_slot(&g)) * sizeof(float);
#endif
    return slots_bytes(&g) + (size_t)((g.slots - 1) * g.o * g.kg) * sizeof(float);
}

static dg_status conv_forward(dg_node *self) {
    conv_job j = {make_geom(self->inputs[0]->shape, self->inputs[1]->shape, attrs_of(self)),
                  self->inputs[0]->value,
                  self->inputs[1]->value,
                  NULL,
                  self->n_inputs == 3 ? self->inputs[2]->value : NULL,
                  self->value,
                  dg_node_scratch(self)};
#ifdef CONV_AVX512
    if (j.g.dfwd) {
        dfwd_prepare(&j.g, j.w, j.scratch);
        dg_parallel_for(j.g.slots, slot_cost(&j.g), dfwd_range, &j);
        return DG_OK;
    }
#endif
    dg_parallel_for(j.g.slots, slot_cost(&j.g), forward_range, &j);
    return DG_OK;
}

static dg_status input_grad_forward(dg_node *self) {
    conv_job j = {make_geom(self->inputs[2]->shape, self->inputs[1]->shape, attrs_of(self)),
                  NULL,
                  self->inputs[1]->value,
                  self->inputs[0]->value,
                  NULL,
                  self->value,
                  dg_node_scratch(self)};
#ifdef CONV_AVX512
    if (j.g.dig) {
        dig_prepare(&j.g, j.w, j.scratch);
        dg_parallel_for(j.g.slots, slot_cost(&j.g), dig_range, &j);
        return DG_OK;
    }
#endif
    dg_parallel_for(j.g.slots, slot_cost(&j.g), input_grad_range, &j);
    return DG_OK;
}

static dg_status weight_grad_forward(dg_node *self) {
    conv_job j = {make_geom(self->inputs[0]->shape, self->inputs[2]->shape, attrs_of(self)),
                  self->inputs[0]->value,
                  NULL,
                  self->inputs[1]->value,
                  NULL,
                  self->value,
                  dg_node_scratch(self)};
#ifdef CONV_AVX512
    if (j.g.dwg) {
        dg_parallel_for(j.g.slots, slot_cost(&j.g), dwg_range, &j);
        dg_parallel_for(j.g.k, j.g.slots * j.g.o, dwg_reduce, &j);
        return DG_OK;
    }
#endif
    dg_parallel_for(j.g.slots, slot_cost(&j.g), weight_grad_range, &j);
    if (j.g.slots > 1) dg_parallel_for(j.g.o * j.g.kg, j.g.slots, reduce_range, &j);
    return DG_OK;
}

/* ---- the bias gradient: db[o] = sum over n and positions of dy[n,o,:] ---- */

static dg_status bias_grad_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                                size_t size) {
    (void)n, (void)a;
    if (in[0]->shape.ndim != 4) {
        char sb[64];
        snprintf(msg, size, "gradient must be [N,O,OH,OW], got %s",
                 dg_shape_str(in[0]->shape, sb, sizeof sb));
        return DG_ERR_SHAPE;
    }
    *out = dg_shape1(in[0]->shape.dim[1]);
    return DG_OK;
}

typedef struct bias_job {
    const float *dy;
    float *db;
    int64_t n, o, p;
} bias_job;

/* One channel per index: each image's positions summed in 16 interleaved lanes (so the loop
 * vectorises) that are then added in lane order, images in order in double. */
static void bias_range(void *ctx, int64_t lo, int64_t hi) {
    const bias_job *j = ctx;
    for (int64_t o = lo; o < hi; o++) {
        double acc = 0.0;
        for (int64_t n = 0; n < j->n; n++) {
            const float *r = j->dy + (n * j->o + o) * j->p;
            float lane[16] = {0};
            int64_t i = 0;
            for (; i + 16 <= j->p; i += 16)
                for (int l = 0; l < 16; l++) lane[l] += r[i + l];
            for (int l = 0; i < j->p; i++, l++) lane[l] += r[i];
            float part = 0.0f;
            for (int l = 0; l < 16; l++) part += lane[l];
            acc += part;
        }
        j->db[o] = (float)acc;
    }
}

static dg_status bias_grad_forward(dg_node *self) {
    dg_shape s = self->inputs[0]->shape;
    bias_job j = {self->inputs[0]->value, self->value, s.dim[0], s.dim[1], s.dim[2] * s.dim[3]};
    dg_parallel_for(j.o, j.n * j.p, bias_range, &j);
    return DG_OK;
}

/* linear: d(dy) = dz broadcast over images and positions */
static dg_status bias_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx) {
    dg_node *dy = self->inputs[0];
    dg_node *col = dg_reshape(g, dz, dg_shape3(dy->shape.dim[1], 1, 1));
    dx[0] = dg_broadcast_like(g, col, dy);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def bias_grad_op = {.name = "conv2d_bias_grad",
                                       .n_inputs = 1,
                                       .infer_shape = bias_grad_rule,
                                       .forward = bias_grad_forward,
                                       .backward = bias_grad_backward};

/* ---- the three ops and their backward rules ---- */

static dg_status conv_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx);
static dg_status input_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx);
static dg_status weight_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx);

static const dg_op_def conv_op = {.name = "conv2d",
                                  .n_inputs = DG_VARIADIC,
                                  .infer_shape = conv_rule,
                                  .forward = conv_forward,
                                  .backward = conv_backward,
                                  .scratch_bytes = forward_scratch,
                                  .attr_fields = conv_fields};

static const dg_op_def input_grad_op = {.name = "conv2d_input_grad",
                                        .n_inputs = 3,
                                        .shape_only = 1u << 2,
                                        .infer_shape = input_grad_rule,
                                        .forward = input_grad_forward,
                                        .backward = input_grad_backward,
                                        .scratch_bytes = input_grad_scratch};

static const dg_op_def weight_grad_op = {.name = "conv2d_weight_grad",
                                         .n_inputs = 3,
                                         .shape_only = 1u << 2,
                                         .infer_shape = weight_grad_rule,
                                         .forward = weight_grad_forward,
                                         .backward = weight_grad_backward,
                                         .scratch_bytes = weight_grad_scratch};

static dg_node *apply3(dg_graph *g, const dg_op_def *op, dg_node *a, dg_node *b, dg_node *c,
                       const conv_attrs *at) {
    dg_node *in[3] = {a, b, c};
    return dg_apply(g, op, 3, in, at, sizeof *at);
}

static dg_status conv_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *x = self->inputs[0], *w = self->inputs[1];
    const conv_attrs *a = attrs_of(self);
    if (x->requires_grad && !(dx[0] = apply3(g, &input_grad_op, dy, w, x, a)))
        return dg_graph_status(g);
    if (w->requires_grad && !(dx[1] = apply3(g, &weight_grad_op, x, dy, w, a)))
        return dg_graph_status(g);
    if (self->n_inputs == 3 && self->inputs[2]->requires_grad &&
        !(dx[2] = dg__apply1(g, &bias_grad_op, dy, NULL, 0)))
        return dg_graph_status(g);
    return DG_OK;
}

static dg_status input_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx) {
    dg_node *dy = self->inputs[0], *w = self->inputs[1];
    const conv_attrs *a = attrs_of(self);
    if (dy->requires_grad && !(dx[0] = dg__apply2(g, &conv_op, dz, w, a, sizeof *a)))
        return dg_graph_status(g);
    if (w->requires_grad && !(dx[1] = apply3(g, &weight_grad_op, dz, dy, w, a)))
        return dg_graph_status(g);
    return DG_OK;
}

static dg_status weight_grad_backward(dg_graph *g, dg_node *self, dg_node *dz, dg_node **dx) {
    dg_node *x = self->inputs[0], *dy = self->inputs[1];
    const conv_attrs *a = attrs_of(self);
    if (x->requires_grad && !(dx[0] = apply3(g, &input_grad_op, dy, dz, x, a)))
        return dg_graph_status(g);
    if (dy->requires_grad && !(dx[1] = dg__apply2(g, &conv_op, x, dz, a, sizeof *a)))
        return dg_graph_status(g);
    return DG_OK;
}

dg_conv2d_options dg_conv2d_defaults(void) {
    dg_conv2d_options o = {{1, 1}, {0, 0}, {1, 1}, 1};
    return o;
}

dg_node *dg_convolve2d(dg_graph *g, dg_node *x, dg_node *w, dg_node *b,
                       const dg_conv2d_options *opts) {
    dg_conv2d_options o = opts ? *opts : dg_conv2d_defaults();
    conv_attrs a;
    for (int i = 0; i < 2; i++)
        a.stride[i] = o.stride[i], a.pad[i] = o.padding[i], a.dil[i] = o.dilation[i];
    a.groups = o.groups;
    dg_node *in[3] = {x, w, b};
    return dg_apply(g, &conv_op, b ? 3 : 2, in, &a, sizeof a);
}
