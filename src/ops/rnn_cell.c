/* The pointwise part of an LSTM and a GRU step, each fused into one op (one pass over the
 * gates instead of a dozen elementwise nodes), with a fused gradient op each. The matrix
 * products stay outside, as ordinary matmuls of packed gate matrices.
 *
 * lstm_cell (z [B,4H], c [B,H]) -> [B,2H] = [h' | c'], gates packed i, f, g, o:
 *   i, f, o = sigmoid(z_i, z_f, z_o), g = tanh(z_g), c' = f c + i g, h' = o tanh(c')
 *   backward: with dh, dc the two halves of dy and dc~ = dc + dh o (1 - tanh(c')^2):
 *   dz_i = dc~ g i(1-i), dz_f = dc~ c f(1-f), dz_g = dc~ i (1-g^2),
 *   dz_o = dh tanh(c') o(1-o), dc_prev = dc~ f
 * gru_cell (a [B,3H], b [B,3H], h [B,H]) -> h' [B,H], gates packed r, z, n, where a = x W + b_x
 * and b = h U + b_h (PyTorch's GRU):
 *   r = sigmoid(a_r + b_r), z = sigmoid(a_z + b_z), n = tanh(a_n + r b_n), h' = n + z (h - n)
 *   backward: dn = dy (1-z), dp = dn (1-n^2), da_n = dp, db_n = dp r,
 *   da_r = db_r = dp b_n r(1-r), da_z = db_z = dy (h-n) z(1-z), dh = dy z
 * Each backward is one op computing every input's gradient into a packed [B,5H] (LSTM:
 * dz | dc) or [B,7H] (GRU: da | db | dh) tensor, sliced into the inputs' gradients. Those
 * gradient ops have no derivative of their own: the cells have first derivatives only.
 *
 * The exponential is dg__expf (vector_math.h) rather than libm's, so that the compiler can
 * vectorise the loops; results do not depend on the thread count (rows are independent). */
#include "kernels.h"
#include "vector_math.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static inline float sigm(float x) { return 1.0f / (1.0f + dg__expf(-x)); }
/* tanh x = 1 - 2 / (e^2x + 1): absolute error ~1e-7 near 0, exact limits +-1 */
static inline float th(float x) { return 1.0f - 2.0f / (dg__expf(2.0f * x) + 1.0f); }

/* ---- shapes ---- */

static dg_status bad_shapes(char *msg, size_t size, const char *what, dg_node *const *in, int n) {
    char buf[4][64];
    for (int k = 0; k < n && k < 4; k++) dg_shape_str(dg_node_shape(in[k]), buf[k], sizeof buf[k]);
    snprintf(msg, size, "%s, got %s, %s%s%s%s%s", what, buf[0], buf[1], n > 2 ? ", " : "",
             n > 2 ? buf[2] : "", n > 3 ? ", " : "", n > 3 ? buf[3] : "");
    return DG_ERR_SHAPE;
}

/* Each input k must be [B, mult[k] * H] for one B and H; returns H, or 0. */
static int64_t packed_units(dg_node *const *in, int n, const int *mult) {
    dg_shape s0 = dg_node_shape(in[0]);
    if (s0.ndim != 2 || s0.dim[1] % mult[0]) return 0;
    int64_t h = s0.dim[1] / mult[0];
    for (int k = 0; k < n; k++) {
        dg_shape s = dg_node_shape(in[k]);
        if (s.ndim != 2 || s.dim[0] != s0.dim[0] || s.dim[1] != mult[k] * h) return 0;
    }
    return h;
}

static dg_status lstm_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                           size_t size) {
    (void)a;
    static const int mult[2] = {4, 1};
    int64_t h = packed_units(in, n, mult);
    if (!h) return bad_shapes(msg, size, "needs gates z [B,4H] and a cell state c [B,H]", in, n);
    *out = dg_shape2(dg_node_shape(in[0]).dim[0], 2 * h);
    return DG_OK;
}

/* inputs: dy [B,2H], z [B,4H], c [B,H], y [B,2H] */
static dg_status lstm_grad_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                                size_t size) {
    (void)a;
    static const int mult[4] = {2, 4, 1, 2};
    int64_t h = packed_units(in, n, mult);
    if (!h) return bad_shapes(msg, size, "needs dy [B,2H], z [B,4H], c [B,H], y [B,2H]", in, n);
    *out = dg_shape2(dg_node_shape(in[0]).dim[0], 5 * h);
    return DG_OK;
}

static dg_status gru_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                          size_t size) {
    (void)a;
    static const int mult[3] = {3, 3, 1};
    int64_t h = packed_units(in, n, mult);
    if (!h) return bad_shapes(msg, size, "needs a [B,3H], b [B,3H] and a state h [B,H]", in, n);
    *out = dg_shape2(dg_node_shape(in[0]).dim[0], h);
    return DG_OK;
}

/* inputs: dy [B,H], a [B,3H], b [B,3H], h [B,H] */
static dg_status gru_grad_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                               size_t size) {
    (void)a;
    static const int mult[4] = {1, 3, 3, 1};
    int64_t h = packed_units(in, n, mult);
    if (!h) return bad_shapes(msg, size, "needs dy [B,H], a [B,3H], b [B,3H], h [B,H]", in, n);
    *out = dg_shape2(dg_node_shape(in[0]).dim[0], 7 * h);
    return DG_OK;
}

/* ---- kernels: rows of the batch in parallel ---- */

/* Each row kernel is compiled per vector width (DG_VECTOR_CLONES, vector_clones.h). Rows
 * are independent, so results do not depend on the thread count either. */

typedef struct {
    dg_node *self;
    int64_t h;
} cell_ctx;

static const float *in_row(const dg_node *self, int k, int64_t r) {
    const dg_node *x = self->inputs[k];
    return x->value + r * x->shape.dim[1];
}

DG_VECTOR_CLONES static void lstm_rows(void *ctx, int64_t lo, int64_t hi) {
    const cell_ctx *c = ctx;
    const int64_t H = c->h;
    for (int64_t r = lo; r < hi; r++) {
        const float *z = in_row(c->self, 0, r);
        const float *restrict zi = z, *restrict zf = z + H, *restrict zg = z + 2 * H;
        const float *restrict zo = z + 3 * H, *restrict cp = in_row(c->self, 1, r);
        float *restrict yh = c->self->value + r * 2 * H, *restrict yc = yh + H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float i = sigm(zi[j]), f = sigm(zf[j]), g = th(zg[j]), o = sigm(zo[j]);
            float cn = f * cp[j] + i * g;
            yh[j] = o * th(cn);
            yc[j] = cn;
        }
    }
}

DG_VECTOR_CLONES static void lstm_grad_rows(void *ctx, int64_t lo, int64_t hi) {
    const cell_ctx *c = ctx;
    const int64_t H = c->h;
    for (int64_t r = lo; r < hi; r++) {
        const float *dy = in_row(c->self, 0, r), *z = in_row(c->self, 1, r);
        const float *restrict dh = dy, *restrict dcn = dy + H;
        const float *restrict zi = z, *restrict zf = z + H, *restrict zg = z + 2 * H;
        const float *restrict zo = z + 3 * H, *restrict cp = in_row(c->self, 2, r);
        const float *restrict yc = in_row(c->self, 3, r) + H;
        float *d = c->self->value + r * 5 * H;
        float *restrict di = d, *restrict df = d + H, *restrict dg = d + 2 * H;
        float *restrict dout = d + 3 * H, *restrict dcp = d + 4 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float i = sigm(zi[j]), f = sigm(zf[j]), g = th(zg[j]), o = sigm(zo[j]);
            float tc = th(yc[j]);
            float dc = dcn[j] + dh[j] * o * (1.0f - tc * tc);
            di[j] = dc * g * i * (1.0f - i);
            df[j] = dc * cp[j] * f * (1.0f - f);
            dg[j] = dc * i * (1.0f - g * g);
            dout[j] = dh[j] * tc * o * (1.0f - o);
            dcp[j] = dc * f;
        }
    }
}

DG_VECTOR_CLONES static void gru_rows(void *ctx, int64_t lo, int64_t hi) {
    const cell_ctx *c = ctx;
    const int64_t H = c->h;
    for (int64_t r = lo; r < hi; r++) {
        const float *a = in_row(c->self, 0, r), *b = in_row(c->self, 1, r);
        const float *restrict ar = a, *restrict az = a + H, *restrict an = a + 2 * H;
        const float *restrict br = b, *restrict bz = b + H, *restrict bn = b + 2 * H;
        const float *restrict h = in_row(c->self, 2, r);
        float *restrict y = c->self->value + r * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float rg = sigm(ar[j] + br[j]), zg = sigm(az[j] + bz[j]);
            float n = th(an[j] + rg * bn[j]);
            y[j] = n + zg * (h[j] - n);
        }
    }
}

DG_VECTOR_CLONES static void gru_grad_rows(void *ctx, int64_t lo, int64_t hi) {
    const cell_ctx *c = ctx;
    const int64_t H = c->h;
    for (int64_t r = lo; r < hi; r++) {
        const float *a = in_row(c->self, 1, r), *b = in_row(c->self, 2, r);
        const float *restrict dy = in_row(c->self, 0, r), *restrict h = in_row(c->self, 3, r);
        const float *restrict ar = a, *restrict az = a + H, *restrict an = a + 2 * H;
        const float *restrict br = b, *restrict bz = b + H, *restrict bn = b + 2 * H;
        float *d = c->self->value + r * 7 * H;
        float *restrict dar = d, *restrict daz = d + H, *restrict dan = d + 2 * H;
        float *restrict dbr = d + 3 * H, *restrict dbz = d + 4 * H, *restrict dbn = d + 5 * H;
        float *restrict dh = d + 6 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float rg = sigm(ar[j] + br[j]), zg = sigm(az[j] + bz[j]);
            float n = th(an[j] + rg * bn[j]);
            float dp = dy[j] * (1.0f - zg) * (1.0f - n * n);
            float dr = dp * bn[j] * rg * (1.0f - rg);
            float dz = dy[j] * (h[j] - n) * zg * (1.0f - zg);
            dar[j] = dbr[j] = dr;
            daz[j] = dbz[j] = dz;
            dan[j] = dp;
            dbn[j] = dp * rg;
            dh[j] = dy[j] * zg;
        }
    }
}

static dg_status run_rows(dg_node *self, int64_t h, int64_t cost, dg_range_fn fn) {
    cell_ctx c = {self, h};
    dg_parallel_for(self->shape.dim[0], cost * h, fn, &c);
    return DG_OK;
}

static int64_t units(const dg_node *self, int mult) { return self->shape.dim[1] / mult; }

static dg_status lstm_forward(dg_node *self) {
    return run_rows(self, units(self, 2), 60, lstm_rows);
}
static dg_status lstm_grad_forward(dg_node *self) {
    return run_rows(self, units(self, 5), 90, lstm_grad_rows);
}
static dg_status gru_forward(dg_node *self) { return run_rows(self, units(self, 1), 40, gru_rows); }
static dg_status gru_grad_forward(dg_node *self) {
    return run_rows(self, units(self, 7), 60, gru_grad_rows);
}

/* ---- ops and backward rules ---- */

static const dg_op_def lstm_grad_op = {.name = "lstm_cell_grad",
                                       .n_inputs = 4,
                                       .infer_shape = lstm_grad_rule,
                                       .forward = lstm_grad_forward};

static const dg_op_def gru_grad_op = {.name = "gru_cell_grad",
                                      .n_inputs = 4,
                                      .infer_shape = gru_grad_rule,
                                      .forward = gru_grad_forward};

/* dx[k] = columns [k0, k0 + width) of the packed gradient g, for inputs that need one */
static dg_status unpack(dg_graph *g, dg_node *self, dg_node *packed, const int *widths,
                        dg_node **dx) {
    if (!packed) return dg_graph_status(g);
    int64_t h = dg_node_shape(self->inputs[self->n_inputs - 1]).dim[1], at = 0;
    for (int k = 0; k < self->n_inputs; k++) {
        if (self->inputs[k]->requires_grad &&
            !(dx[k] = dg_slice(g, packed, 1, at * h, widths[k] * h)))
            return dg_graph_status(g);
        at += widths[k];
    }
    return DG_OK;
}

static dg_status lstm_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    static const int widths[2] = {4, 1};
    dg_node *in[4] = {dy, self->inputs[0], self->inputs[1], self};
    return unpack(g, self, dg_apply(g, &lstm_grad_op, 4, in, NULL, 0), widths, dx);
}

static dg_status gru_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    static const int widths[3] = {3, 3, 1};
    dg_node *in[4] = {dy, self->inputs[0], self->inputs[1], self->inputs[2]};
    return unpack(g, self, dg_apply(g, &gru_grad_op, 4, in, NULL, 0), widths, dx);
}

static const dg_op_def lstm_op = {.name = "lstm_cell",
                                  .n_inputs = 2,
                                  .infer_shape = lstm_rule,
                                  .forward = lstm_forward,
                                  .backward = lstm_backward};

static const dg_op_def gru_op = {.name = "gru_cell",
                                 .n_inputs = 3,
                                 .infer_shape = gru_rule,
                                 .forward = gru_forward,
                                 .backward = gru_backward};

dg_node *dg_lstm_cell(dg_graph *g, dg_node *z, dg_node *c) {
    return dg__apply2(g, &lstm_op, z, c, NULL, 0);
}

dg_node *dg_gru_cell(dg_graph *g, dg_node *a, dg_node *b, dg_node *h) {
    dg_node *in[3] = {a, b, h};
    return dg_apply(g, &gru_op, 3, in, NULL, 0);
}
