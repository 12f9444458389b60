/* The ONNX forms of dagrad's ops: one row per op with how it is written (through the same
 * writer calls a custom exporter uses, reading the op's parameters by name with
 * dg_node_attr_*) and how the ONNX op is read back (through the public builders). Adding an
 * op's ONNX form is one row here, plus its two functions when it is not a one-to-one match.
 *
 *   dagrad                      ONNX (ai.onnx, opset 13 semantics, the same through 21)
 *   matmul(a, b; ta, tb)        MatMul(a, b), or Gemm(a, b; transA, transB) when transposed
 *   add(matmul(a, b), c)        Gemm(a, b, c) when c broadcasts to the product, rank <= 2,
 *                               and nothing else reads the product
 *   add sub mul div             Add Sub Mul Div (both broadcast NumPy style)
 *   neg exp log sqrt abs        Neg Exp Log Sqrt Abs
 *   relu sigmoid tanh           Relu Sigmoid Tanh
 *   leaky_relu(x; slope)        LeakyRelu(x; alpha)
 *   scale shift pow (x; p)      Mul Add Pow (x, Constant p)
 *   softmax log_softmax         Softmax LogSoftmax (axis -1)
 *   reshape(x; shape)           Reshape(x, shape as an INT64 initializer)
 *   transpose(x)                Transpose(x; perm swapping the last two axes)
 *   dropout: x * mask           nothing: x (the evaluation form; a composite row)
 *   conv2d(x, w[, b])           Conv(x, w[, b]; strides, pads, dilations, group, kernel_shape)
 *   max_pool2d, avg_pool2d      MaxPool, AveragePool(count_include_pad 1; dilations from
 *                               opset 19)
 *   batch norm: the statistics  BatchNormalization(x, gamma, beta, running mean, running var;
 *   and scaling y = x s + t     epsilon, momentum) in evaluation form (a composite row)
 * Read only: Flatten, Identity and Dropout (both the identity), GlobalAveragePool, Pad of
 * zeros (the identity). */
#include "onnx_internal.h"

#include "dagrad/layers.h"
#include "dagrad/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ---- */

static const char *in_name(dg_onnx_writer *w, const dg_node *n, int i) {
    return dg_onnx_name(w, dg_node_input(n, i));
}

/* One ONNX node of the row's type reading the node's inputs. */
static dg_status ex_same(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    const ox_op_form *f = ctx;
    const char *in[2];
    int k = dg_node_input_count(n);
    if (k > 2)
        return dg_set_error(dg_node_graph(n), DG_ERR_STATE, "%s has %d inputs", f->dg_name, k);
    for (int i = 0; i < k; i++)
        if (!(in[i] = in_name(w, n, i))) return dg_graph_status(dg_node_graph(n));
    return dg_onnx_add_node(w, f->onnx_type, k, in, NULL);
}

/* One ONNX node `type` reading all of the node's inputs. */
static dg_status ex_same_n(dg_onnx_writer *w, const dg_node *n, const char *type) {
    const char *in[8];
    int k = dg_node_input_count(n);
    if (k > 8) return dg_set_error(dg_node_graph(n), DG_ERR_STATE, "%s has %d inputs", type, k);
    for (int i = 0; i < k; i++)
        if (!(in[i] = in_name(w, n, i))) return dg_graph_status(dg_node_graph(n));
    return dg_onnx_add_node(w, type, k, in, NULL);
}

static int is_matmul(const dg_node *n) { return strcmp(dg_node_op_name(n), "matmul") == 0; }

static dg_status ex_add(dg_onnx_writer *w, const dg_node *n, void *ctx);

/* Which input of `add` is a matmul to fold into a Gemm with the other as its bias, or -1:
 * both written by the table, the product read by nothing else, and the bias broadcasting to
 * the product's shape from rank 2 at most (Gemm's unidirectional broadcast of C). */
static int gemm_bias_input(const dg_onnx_writer *w, const dg_node *add) {
    const ox_op_form *form = ox_form_of(w, add);
    if (!add || strcmp(dg_node_op_name(add), "add") != 0 || !ox_builtin(w, add) || !form ||
        form->export_fn != ex_add) /* not batch norm's add, say */
        return -1;
    for (int k = 0; k < 2; k++) {
        dg_node *mm = dg_node_input(add, k), *c = dg_node_input(add, 1 - k);
        if (dg_node_kind_of(mm) != DG_OP_NODE || !is_matmul(mm) || !ox_builtin(w, mm) ||
            ox_consumers(w, mm) != 1 || ox_is_output(w, mm) || c == mm)
            continue;
        if (dg_node_shape(c).ndim <= 2 && dg_shape_equal(dg_node_shape(add), dg_node_shape(mm)))
            return k;
    }
    return -1;
}

static dg_status transposes(const dg_node *mm, int64_t *ta, int64_t *tb) {
    dg_status s = dg_node_attr_int(mm, "trans_a", 0, ta);
    return s == DG_OK ? dg_node_attr_int(mm, "trans_b", 0, tb) : s;
}

/* Gemm(a, b[, c]) with transA/transB where set. */
static dg_status write_gemm(dg_onnx_writer *w, const dg_node *mm, const dg_node *bias) {
    int64_t ta, tb;
    dg_status s = transposes(mm, &ta, &tb);
    if (s != DG_OK) return s;
    const char *in[3] = {in_name(w, mm, 0), in_name(w, mm, 1), bias ? dg_onnx_name(w, bias) : ""};
    if (!in[0] || !in[1] || !in[2]) return dg_graph_status(dg_node_graph(mm));
    s = dg_onnx_add_node(w, "Gemm", bias ? 3 : 2, in, NULL);
    if (s == DG_OK && ta) s = dg_onnx_attr_int(w, "transA", 1);
    if (s == DG_OK && tb) s = dg_onnx_attr_int(w, "transB", 1);
    return s;
}

static dg_status ex_matmul(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)ctx;
    dg_node *reader = ox_sole_consumer(w, n);
    if (reader && gemm_bias_input(w, reader) >= 0 &&
        dg_node_input(reader, gemm_bias_input(w, reader)) == n) {
        ox_fuse(w, n); /* the add writes it */
        return DG_OK;
    }
    int64_t ta, tb;
    dg_status s = transposes(n, &ta, &tb);
    if (s != DG_OK) return s;
    if (ta || tb) return write_gemm(w, n, NULL);
    const char *in[2] = {in_name(w, n, 0), in_name(w, n, 1)};
    if (!in[0] || !in[1]) return dg_graph_status(dg_node_graph(n));
    return dg_onnx_add_node(w, "MatMul", 2, in, NULL);
}

static dg_status ex_add(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    int k = gemm_bias_input(w, n);
    if (k < 0) return ex_same(w, n, ctx);
    return write_gemm(w, dg_node_input(n, k), dg_node_input(n, 1 - k));
}

/* x op Constant(p): scale, shift and pow. */
static dg_status with_constant(dg_onnx_writer *w, const dg_node *n, const char *attr,
                               const char *type) {
    float p;
    dg_status s = dg_node_attr_float(n, attr, 0, &p);
    if (s != DG_OK) return s;
    const char *in[2] = {in_name(w, n, 0), dg_onnx_constant(w, attr, dg_shape0(), &p)};
    if (!in[0] || !in[1]) return dg_graph_status(dg_node_graph(n));
    return dg_onnx_add_node(w, type, 2, in, NULL);
}
static dg_status ex_scale(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)ctx;
    return with_constant(w, n, "factor", "Mul");
}
static dg_status ex_shift(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)ctx;
    return with_constant(w, n, "offset", "Add");
}
static dg_status ex_pow(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)ctx;
    return with_constant(w, n, "exponent", "Pow");
}

static dg_status ex_leaky_relu(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    float slope;
    dg_status s = dg_node_attr_float(n, "slope", 0, &slope);
    if (s == DG_OK) s = ex_same(w, n, ctx);
    return s == DG_OK ? dg_onnx_attr_float(w, "alpha", slope) : s;
}

static dg_status ex_softmax(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    dg_status s = ex_same(w, n, ctx);
    return s == DG_OK ? dg_onnx_attr_int(w, "axis", -1) : s;
}

static dg_status ex_reshape(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)ctx;
    dg_shape t;
    dg_status s = dg_node_attr_shape(n, "shape", &t);
    if (s != DG_OK) return s;
    int64_t dims[DG_MAX_DIMS];
    for (int i = 0; i < t.ndim; i++) dims[i] = t.dim[i]; /* -1 stays: the batch follows */
    const char *in[2] = {in_name(w, n, 0), dg_onnx_int64s(w, "shape", t.ndim, dims)};
    if (!in[0] || !in[1]) return dg_graph_status(dg_node_graph(n));
    return dg_onnx_add_node(w, "Reshape", 2, in, NULL);
}

static dg_status ex_transpose(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    dg_status s = ex_same(w, n, ctx);
    int r = dg_node_shape(n).ndim;
    int64_t perm[DG_MAX_DIMS];
    for (int i = 0; i < r; i++) perm[i] = i;
    perm[r - 2] = r - 1, perm[r - 1] = r - 2;
    return s == DG_OK ? dg_onnx_attr_ints(w, "perm", r, perm) : s;
}

/* A dropout output x * mask (dg_dropout) is x in evaluation mode: the mask, its generator
 * state and the mul are left out. */
static int dropout_composite(const dg_node *n, dg_node **reads, int cap, int *identity) {
    if (cap < 1 || !dg_dropout_mask(n)) return 0;
    reads[0] = dg_node_input(n, 0);
    *identity = 1;
    return 1;
}

/* ---- convolution, pooling, batch norm ---- */

/* n's attribute `name`, two values per axis, as ONNX's per-axis list (pads: begin, then end). */
static dg_status axis_pair(const dg_node *n, const char *name, int64_t out[2]) {
    dg_status s = dg_node_attr_int(n, name, 0, &out[0]);
    return s == DG_OK ? dg_node_attr_int(n, name, 1, &out[1]) : s;
}

/* strides, pads and dilations (and kernel_shape) of a conv or pool node, written when not the
 * default; `kernel` NULL: taken from the attribute "kernel" */
static dg_status window_attrs(dg_onnx_writer *w, const dg_node *n, const int64_t *kernel,
                              int dilations) {
    int64_t k[2], st[2], p[2], d[2];
    dg_status s = kernel ? DG_OK : axis_pair(n, "kernel", k);
    if (s == DG_OK) s = axis_pair(n, "stride", st);
    if (s == DG_OK) s = axis_pair(n, "padding", p);
    if (s == DG_OK) s = axis_pair(n, "dilation", d);
    if (s != DG_OK) return s;
    int64_t pads[4] = {p[0], p[1], p[0], p[1]};
    s = dg_onnx_attr_ints(w, "kernel_shape", 2, kernel ? kernel : k);
    if (s == DG_OK && (st[0] != 1 || st[1] != 1)) s = dg_onnx_attr_ints(w, "strides", 2, st);
    if (s == DG_OK && (p[0] || p[1])) s = dg_onnx_attr_ints(w, "pads", 4, pads);
    if (s == DG_OK && dilations && (d[0] != 1 || d[1] != 1))
        s = dg_onnx_attr_ints(w, "dilations", 2, d);
    return s;
}

static dg_status ex_conv(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)ctx;
    int64_t groups;
    dg_shape ws = dg_node_shape(dg_node_input(n, 1));
    int64_t kernel[2] = {ws.dim[2], ws.dim[3]};
    dg_status s = ex_same_n(w, n, "Conv");
    if (s == DG_OK) s = window_attrs(w, n, kernel, 1);
    if (s == DG_OK) s = dg_node_attr_int(n, "groups", 0, &groups);
    if (s == DG_OK && groups != 1) s = dg_onnx_attr_int(w, "group", groups);
    return s;
}

static dg_status ex_max_pool(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    dg_status s = ex_same(w, n, ctx);
    return s == DG_OK ? window_attrs(w, n, NULL, 1) : s;
}

/* AveragePool has dilations from opset 19 on. */
static dg_status ex_avg_pool(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    int64_t d[2];
    dg_status s = axis_pair(n, "dilation", d);
    if (s == DG_OK && (d[0] != 1 || d[1] != 1) && ox_writer_opset(w) < 19)
        return dg_set_error(dg_node_graph(n), DG_ERR_UNSUPPORTED,
                            "node %d (avg_pool2d) has dilation %lldx%lld, which ONNX's "
                            "AveragePool has from opset 19 on (dg_onnx_save_options.opset is %d)",
                            dg_node_id(n), (long long)d[0], (long long)d[1], ox_writer_opset(w));
    if (s == DG_OK) s = ex_same(w, n, ctx);
    if (s == DG_OK) s = window_attrs(w, n, NULL, 1);
    return s == DG_OK ? dg_onnx_attr_int(w, "count_include_pad", 1) : s;
}

/* dg_batch_normalize's nodes, found from its output y = x * R(s) + R(t), where R reshapes a
 * channel vector to broadcast over x, s = (v + eps)^-1/2 [* gamma], t = -(m * s) [+ beta],
 * m = batch_norm_mean(x, running mean), v = batch_norm_var(x, m, running var). */
typedef struct bn_parts {
    dg_node *x, *gamma, *beta, *mean, *var, *stat; /* stat: the batch_norm_var node */
    float eps;
} bn_parts;

static int is_op(const dg_node *n, const char *name) {
    return dg_node_kind_of(n) == DG_OP_NODE && strcmp(dg_node_op_name(n), name) == 0;
}

static int bn_match(const dg_node *y, bn_parts *p) {
    if (!is_op(y, "add") || !is_op(dg_node_input(y, 0), "mul") ||
        !is_op(dg_node_input(y, 1), "reshape"))
        return 0;
    dg_node *xs = dg_node_input(y, 0), *rs = dg_node_input(xs, 1);
    dg_node *s = dg_node_input(rs, 0), *t = dg_node_input(dg_node_input(y, 1), 0), *s0 = s;
    if (!is_op(rs, "reshape")) return 0;
    p->x = dg_node_input(xs, 0);
    p->gamma = p->beta = NULL;
    if (is_op(s, "mul")) s0 = dg_node_input(s, 0), p->gamma = dg_node_input(s, 1);
    float e;
    if (!is_op(s0, "pow") || dg_node_attr_float(s0, "exponent", 0, &e) != DG_OK || e != -0.5f)
        return 0;
    dg_node *shift = dg_node_input(s0, 0);
    if (!is_op(shift, "shift") || dg_node_attr_float(shift, "offset", 0, &p->eps) != DG_OK)
        return 0;
    dg_node *v = dg_node_input(shift, 0), *m = dg_node_input(v, 1);
    if (!is_op(v, "batch_norm_var") || !is_op(m, "batch_norm_mean") ||
        dg_node_input(v, 0) != p->x || dg_node_input(m, 0) != p->x)
        return 0;
    if (is_op(t, "add")) p->beta = dg_node_input(t, 1), t = dg_node_input(t, 0);
    if (!is_op(t, "neg") || !is_op(dg_node_input(t, 0), "mul") ||
        dg_node_input(dg_node_input(t, 0), 0) != m || dg_node_input(dg_node_input(t, 0), 1) != s)
        return 0;
    p->mean = dg_node_input(m, 1), p->var = dg_node_input(v, 2), p->stat = v;
    return 1;
}

static int bn_composite(const dg_node *n, dg_node **reads, int cap, int *identity) {
    bn_parts p;
    if (cap < 5 || !bn_match(n, &p)) return 0;
    *identity = 0;
    int k = 0;
    reads[k++] = p.x;
    if (p.gamma) reads[k++] = p.gamma;
    if (p.beta) reads[k++] = p.beta;
    reads[k++] = p.mean;
    reads[k++] = p.var;
    return k;
}

/* BatchNormalization in evaluation form; a missing gamma or beta is a constant 1 or 0. */
static dg_status ex_batch_norm(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)ctx;
    bn_parts p;
    float momentum;
    if (!bn_match(n, &p) || dg_node_attr_float(p.stat, "momentum", 0, &momentum) != DG_OK)
        return dg_set_error(dg_node_graph(n), DG_ERR_STATE, "node %d: not a batch norm",
                            dg_node_id(n));
    int64_t c = dg_node_shape(p.x).dim[1];
    const char *in[5] = {dg_onnx_name(w, p.x), NULL, NULL, dg_onnx_name(w, p.mean),
                         dg_onnx_name(w, p.var)};
    for (int k = 1; k <= 2; k++) {
        dg_node *given = k == 1 ? p.gamma : p.beta;
        if (given) {
            in[k] = dg_onnx_name(w, given);
            continue;
        }
        float *v = calloc((size_t)c, sizeof *v);
        for (int64_t i = 0; v && k == 1 && i < c; i++) v[i] = 1.0f;
        in[k] = v ? dg_onnx_constant(w, k == 1 ? "scale" : "bias", dg_shape1(c), v) : NULL;
        free(v);
    }
    for (int k = 0; k < 5; k++)
        if (!in[k]) return dg_graph_status(dg_node_graph(n));
    dg_status s = dg_onnx_add_node(w, "BatchNormalization", 5, in, NULL);
    if (s == DG_OK) s = dg_onnx_attr_float(w, "epsilon", p.eps);
    /* ONNX: running = running * momentum + batch * (1 - momentum); dagrad (as PyTorch):
     * running = (1 - momentum) running + momentum batch */
    if (s == DG_OK) s = dg_onnx_attr_float(w, "momentum", 1.0f - momentum);
    return s;
}

/* ---- reading ---- */

static dg_status done(ox_importer *im, const ox_node *n, dg_node *y) {
    if (!y)
        return ox_fail(im, n, dg_graph_status(ox_graph_of(im)), "%s",
                       dg_graph_error(ox_graph_of(im)));
    return ox_set_output(im, n, 0, y);
}

static dg_status only(ox_importer *im, const ox_node *n, const char *a, const char *b,
                      const char *c, const char *d) {
    const char *known[] = {a, b, c, d, NULL};
    return ox_only_attrs(im, n, known);
}

static dg_status im_unary(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    dg_status s = only(im, n, NULL, NULL, NULL, NULL);
    if (s != DG_OK) return s;
    dg_node *x = ox_input(im, n, 0);
    return x ? done(im, n, f->unary(ox_graph_of(im), x)) : dg_graph_status(ox_graph_of(im));
}

static dg_status im_binary(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    dg_status s = only(im, n, NULL, NULL, NULL, NULL);
    if (s != DG_OK) return s;
    dg_node *a = ox_input(im, n, 0), *b = a ? ox_input(im, n, 1) : NULL;
    return b ? done(im, n, f->binary(ox_graph_of(im), a, b)) : dg_graph_status(ox_graph_of(im));
}

static dg_status im_matmul(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    dg_status s = only(im, n, NULL, NULL, NULL, NULL);
    if (s != DG_OK) return s;
    dg_node *a = ox_input(im, n, 0), *b = a ? ox_input(im, n, 1) : NULL;
    if (!b) return dg_graph_status(ox_graph_of(im));
    dg_shape sa = dg_node_shape(a), sb = dg_node_shape(b);
    if (sa.ndim != 2 || sb.ndim != 2) {
        char s1[64], s2[64];
        return ox_fail(im, n, DG_ERR_UNSUPPORTED, "%s x %s: only 2-D operands are supported",
                       dg_shape_str(sa, s1, sizeof s1), dg_shape_str(sb, s2, sizeof s2));
    }
    return done(im, n, dg_matmul(ox_graph_of(im), a, b));
}

/* Y = alpha op(A) op(B) + beta C */
static dg_status im_gemm(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    dg_graph *g = ox_graph_of(im);
    int64_t ta, tb;
    float alpha, beta;
    dg_status s = only(im, n, "alpha", "beta", "transA", "transB");
    if (s == DG_OK) s = ox_attr_int(im, n, "transA", 0, &ta);
    if (s == DG_OK) s = ox_attr_int(im, n, "transB", 0, &tb);
    if (s == DG_OK) s = ox_attr_float(im, n, "alpha", 1.0f, &alpha);
    if (s == DG_OK) s = ox_attr_float(im, n, "beta", 1.0f, &beta);
    if (s != DG_OK) return s;
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
        return ox_fail(im, n, DG_ERR_FORMAT, "transA and transB must be 0 or 1, got %lld and %lld",
                       (long long)ta, (long long)tb);
    dg_node *a = ox_input(im, n, 0), *b = a ? ox_input(im, n, 1) : NULL;
    if (!b) return dg_graph_status(g);
    dg_node *y = dg_matmul_t(g, a, b, (int)ta, (int)tb);
    if (y && alpha != 1.0f) y = dg_scale(g, y, alpha);
    if (y && ox_has_input(n, 2)) {
        dg_node *c = ox_input(im, n, 2);
        if (!c) return dg_graph_status(g);
        if (beta != 1.0f) c = dg_scale(g, c, beta);
        y = dg_add(g, y, c);
    }
    return done(im, n, y);
}

static dg_status im_pow(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    dg_status s = only(im, n, NULL, NULL, NULL, NULL);
    if (s != DG_OK) return s;
    dg_node *x = ox_input(im, n, 0);
    const ox_tensor *t = x ? ox_static_input(im, n, 1, "the exponent") : NULL;
    int64_t count = 0;
    const float *p = t ? ox_tensor_floats(im, n, t, &count) : NULL;
    if (!p) return dg_graph_status(ox_graph_of(im));
    if (count != 1)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "the exponent has %lld values; dagrad's pow "
                       "takes one",
                       (long long)count);
    return done(im, n, dg_pow(ox_graph_of(im), x, p[0]));
}

static dg_status im_leaky_relu(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    float alpha;
    dg_status s = only(im, n, "alpha", NULL, NULL, NULL);
    if (s == DG_OK) s = ox_attr_float(im, n, "alpha", 0.01f, &alpha);
    if (s != DG_OK) return s;
    dg_node *x = ox_input(im, n, 0);
    return x ? done(im, n, dg_leaky_relu(ox_graph_of(im), x, alpha))
             : dg_graph_status(ox_graph_of(im));
}

/* Softmax and LogSoftmax over the last axis (opset 13: axis -1 by default). */
static dg_status im_softmax(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    int64_t axis;
    dg_status s = only(im, n, "axis", NULL, NULL, NULL);
    if (s == DG_OK) s = ox_attr_int(im, n, "axis", -1, &axis);
    if (s != DG_OK) return s;
    dg_node *x = ox_input(im, n, 0);
    if (!x) return dg_graph_status(ox_graph_of(im));
    int r = dg_node_shape(x).ndim;
    if (axis != -1 && axis != r - 1)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "axis %lld of a rank-%d input: dagrad normalises over the last axis only",
                       (long long)axis, r);
    return done(im, n, f->unary(ox_graph_of(im), x));
}

/* The dagrad shape for ONNX's shape tensor: 0 copies the input's dimension (allowzero 0), -1
 * is inferred; a copied leading batch dimension becomes -1 so that it follows the batch. */
static dg_status im_reshape(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    int64_t allowzero;
    dg_status s = only(im, n, "allowzero", NULL, NULL, NULL);
    if (s == DG_OK) s = ox_attr_int(im, n, "allowzero", 0, &allowzero);
    if (s != DG_OK) return s;
    dg_node *x = ox_input(im, n, 0);
    const ox_tensor *t = x ? ox_static_input(im, n, 1, "the shape") : NULL;
    int64_t count = 0;
    const int64_t *v = t ? ox_tensor_ints(im, n, t, &count) : NULL;
    if (!v) return dg_graph_status(ox_graph_of(im));
    if (count > DG_MAX_DIMS)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "a target shape of %lld dimensions (dagrad "
                       "has at most %d)",
                       (long long)count, DG_MAX_DIMS);
    dg_shape xs = dg_node_shape(x), out = {(int)count, {0}};
    int infer = -1, batch = 0;
    for (int i = 0; i < (int)count; i++) {
        int64_t d = v[i];
        if (d == 0 && !allowzero) {
            if (i >= xs.ndim)
                return ox_fail(im, n, DG_ERR_SHAPE,
                               "shape[%d] is 0 (copy) but the input has rank %d", i, xs.ndim);
            batch |= i == 0 && dg_node_batch_leading(x);
            d = xs.dim[i];
        }
        if (d == -1) {
            if (infer >= 0)
                return ox_fail(im, n, DG_ERR_SHAPE, "the target shape has two inferred dimensions");
            infer = i;
        } else if (d < 1) {
            return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                           "shape[%d] is %lld (dagrad has no empty or negative dimensions)", i,
                           (long long)d);
        }
        out.dim[i] = d;
    }
    if (batch) {
        /* the copied batch dimension follows the batch: dagrad infers it (-1), and a -1
         * elsewhere is worked out from the input's size per batch row */
        if (infer > 0) {
            int64_t row = 1, known = 1;
            for (int i = 1; i < xs.ndim; i++) row *= xs.dim[i];
            for (int i = 1; i < out.ndim; i++) known *= i == infer ? 1 : out.dim[i];
            if (row % known)
                return ox_fail(im, n, DG_ERR_SHAPE,
                               "cannot infer shape[%d]: %lld values per batch row do not divide "
                               "by %lld",
                               infer, (long long)row, (long long)known);
            out.dim[infer] = row / known;
        }
        out.dim[0] = -1;
    }
    return done(im, n, dg_reshape(ox_graph_of(im), x, out));
}

/* [d0 .. d(axis-1)] and [d(axis) ..] flattened to two dimensions. */
static dg_status im_flatten(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    int64_t axis;
    dg_status s = only(im, n, "axis", NULL, NULL, NULL);
    if (s == DG_OK) s = ox_attr_int(im, n, "axis", 1, &axis);
    if (s != DG_OK) return s;
    dg_node *x = ox_input(im, n, 0);
    if (!x) return dg_graph_status(ox_graph_of(im));
    dg_shape xs = dg_node_shape(x);
    if (axis < -xs.ndim || axis > xs.ndim)
        return ox_fail(im, n, DG_ERR_FORMAT, "axis %lld is out of range for rank %d",
                       (long long)axis, xs.ndim);
    if (axis < 0) axis += xs.ndim;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < xs.ndim; i++) *(i < axis ? &outer : &inner) *= xs.dim[i];
    int batch = dg_node_batch_leading(x);
    dg_shape out = dg_shape2(outer, inner);
    if (batch) out = axis >= 1 ? dg_shape2(-1, inner) : dg_shape2(1, -1);
    return done(im, n, dg_reshape(ox_graph_of(im), x, out));
}

static dg_status im_transpose(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    dg_status s = only(im, n, "perm", NULL, NULL, NULL);
    if (s != DG_OK) return s;
    dg_node *x = ox_input(im, n, 0);
    if (!x) return dg_graph_status(ox_graph_of(im));
    int r = dg_node_shape(x).ndim, count;
    int64_t perm[DG_MAX_DIMS + 1];
    if ((s = ox_attr_ints(im, n, "perm", perm, DG_MAX_DIMS + 1, &count)) != DG_OK) return s;
    if (count < 0) { /* default: reverse the axes */
        count = r;
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
    }
    if (count != r)
        return ox_fail(im, n, DG_ERR_SHAPE, "perm has %d entries for a rank-%d input", count, r);
    int identity = 1, swap_last = r >= 2;
    for (int i = 0; i < r; i++) {
        identity &= perm[i] == i;
        swap_last &= perm[i] == (i == r - 2 ? r - 1 : i == r - 1 ? r - 2 : i);
    }
    if (identity) return ox_set_output(im, n, 0, x);
    if (!swap_last)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "perm does not swap the last two axes only (dagrad's transpose)");
    return done(im, n, dg_transpose(ox_graph_of(im), x));
}

static dg_status im_identity(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    dg_status s = only(im, n, NULL, NULL, NULL, NULL);
    dg_node *x = s == DG_OK ? ox_input(im, n, 0) : NULL;
    return x ? ox_set_output(im, n, 0, x) : dg_graph_status(ox_graph_of(im));
}

/* A STRING attribute's value: `def` when absent, "?" when it holds no string. */
static const char *attr_string(const ox_attr *a, const char *def) {
    if (!a) return def;
    return (a->type == OX_AT_STRING || a->type == 0) && a->has_s ? a->s : "?";
}

/* The window of a Conv or a pool: kernel_shape (checked against `kernel` when given, which
 * the caller then takes), strides, pads (the same before and after, per axis), dilations;
 * auto_pad NOTSET or VALID. Values must fit dagrad's options (int). */
static dg_status window(ox_importer *im, const ox_node *n, int64_t kernel[2], int has_kernel,
                        int64_t st[2], int64_t pad[2], int64_t dil[2]) {
    /* one more than a 2-D window has, so that longer lists are seen and refused */
    int64_t k[3], strides[3], pads[5], dilations[3];
    int nk, ns, np, nd;
    dg_status s = ox_attr_ints(im, n, "kernel_shape", k, 3, &nk);
    if (s == DG_OK) s = ox_attr_ints(im, n, "strides", strides, 3, &ns);
    if (s == DG_OK) s = ox_attr_ints(im, n, "pads", pads, 5, &np);
    if (s == DG_OK) s = ox_attr_ints(im, n, "dilations", dilations, 3, &nd);
    if (s != DG_OK) return s;
    const char *ap = attr_string(ox_find_attr(n, "auto_pad"), "NOTSET");
    if (strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "auto_pad '%.40s' is not supported (give the pads explicitly)", ap);
    if (nk < 0 && !has_kernel) return ox_fail(im, n, DG_ERR_FORMAT, "kernel_shape is missing");
    if ((nk >= 0 && nk != 2) || (ns >= 0 && ns != 2) || (np >= 0 && np != 4) ||
        (nd >= 0 && nd != 2))
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "only 2-D windows (2 kernel sizes, strides and dilations, 4 pads) are "
                       "supported");
    if (nk >= 0 && has_kernel && (k[0] != kernel[0] || k[1] != kernel[1]))
        return ox_fail(
            im, n, DG_ERR_SHAPE, "kernel_shape %lldx%lld differs from the weights' %lldx%lld",
            (long long)k[0], (long long)k[1], (long long)kernel[0], (long long)kernel[1]);
    if (nk >= 0) kernel[0] = k[0], kernel[1] = k[1];
    st[0] = ns < 0 ? 1 : strides[0], st[1] = ns < 0 ? 1 : strides[1];
    dil[0] = nd < 0 ? 1 : dilations[0], dil[1] = nd < 0 ? 1 : dilations[1];
    if (np < 0) pads[0] = pads[1] = pads[2] = pads[3] = 0;
    if (pads[0] != pads[2] || pads[1] != pads[3])
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "pads [%lld,%lld,%lld,%lld] differ before and after an axis (dagrad pads "
                       "both sides alike)",
                       (long long)pads[0], (long long)pads[1], (long long)pads[2],
                       (long long)pads[3]);
    pad[0] = pads[0], pad[1] = pads[1];
    for (int i = 0; i < 2; i++)
        if (kernel[i] < 1 || kernel[i] > INT32_MAX || st[i] < 1 || st[i] > INT32_MAX ||
            pad[i] < 0 || pad[i] > INT32_MAX || dil[i] < 1 || dil[i] > INT32_MAX)
            return ox_fail(im, n, DG_ERR_FORMAT,
                           "kernel %lld, stride %lld, pad %lld, dilation %lld along axis %d",
                           (long long)kernel[i], (long long)st[i], (long long)pad[i],
                           (long long)dil[i], i);
    return DG_OK;
}

static dg_status im_conv(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    const char *known[] = {"auto_pad", "dilations", "group", "kernel_shape",
                           "pads",     "strides",   NULL};
    int64_t group, k[2], st[2], pad[2], dil[2];
    dg_status s = ox_only_attrs(im, n, known);
    if (s == DG_OK) s = ox_attr_int(im, n, "group", 1, &group);
    if (s != DG_OK) return s;
    dg_node *x = ox_input(im, n, 0), *w = x ? ox_input(im, n, 1) : NULL, *b = NULL;
    if (w && ox_has_input(n, 2) && !(b = ox_input(im, n, 2))) w = NULL;
    if (!w) return dg_graph_status(ox_graph_of(im));
    dg_shape ws = dg_node_shape(w);
    if (ws.ndim != 4)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "weights of rank %d: dagrad convolves 2-D "
                       "images (weights [O,C,KH,KW])",
                       ws.ndim);
    k[0] = ws.dim[2], k[1] = ws.dim[3];
    if ((s = window(im, n, k, 1, st, pad, dil)) != DG_OK) return s;
    if (group < 1 || group > INT32_MAX)
        return ox_fail(im, n, DG_ERR_FORMAT, "group %lld", (long long)group);
    dg_conv2d_options o = {{(int)st[0], (int)st[1]},
                           {(int)pad[0], (int)pad[1]},
                           {(int)dil[0], (int)dil[1]},
                           (int)group};
    return done(im, n, dg_convolve2d(ox_graph_of(im), x, w, b, &o));
}

/* MaxPool and AveragePool (ceil_mode 0; AveragePool counting padding, or without padding). */
static dg_status im_pool(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    int avg = strcmp(f->onnx_type, "AveragePool") == 0;
    const char *known[] = {"auto_pad",
                           "ceil_mode",
                           "dilations",
                           "kernel_shape",
                           "pads",
                           "strides",
                           avg ? "count_include_pad" : "storage_order",
                           NULL};
    int64_t ceil_mode, include_pad, k[2], st[2], pad[2], dil[2];
    dg_status s = ox_only_attrs(im, n, known);
    if (s == DG_OK) s = ox_attr_int(im, n, "ceil_mode", 0, &ceil_mode);
    if (s == DG_OK) s = ox_attr_int(im, n, "count_include_pad", 0, &include_pad);
    if (s == DG_OK) s = window(im, n, k, 0, st, pad, dil);
    if (s != DG_OK) return s;
    if (ceil_mode)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED, "ceil_mode 1 (dagrad rounds output sizes down)");
    if (avg && !include_pad && (pad[0] || pad[1]))
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "count_include_pad 0 with padding (dagrad's average counts the padding)");
    dg_node *x = ox_input(im, n, 0);
    if (!x) return dg_graph_status(ox_graph_of(im));
    dg_pool2d_options o = {{(int)k[0], (int)k[1]},
                           {(int)st[0], (int)st[1]},
                           {(int)pad[0], (int)pad[1]},
                           {(int)dil[0], (int)dil[1]}};
    dg_graph *g = ox_graph_of(im);
    s = done(im, n, avg ? dg_pool2d_avg(g, x, &o) : dg_pool2d_max(g, x, &o));
    if (s == DG_OK && !avg && n->n_out > 1)
        s = ox_set_unavailable(im, n, 1, "MaxPool's indices (not computed by dagrad)");
    return s;
}

/* [N,C,H,W] -> [N,C,1,1] */
static dg_status im_global_avg_pool(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    dg_status s = only(im, n, NULL, NULL, NULL, NULL);
    dg_node *x = s == DG_OK ? ox_input(im, n, 0) : NULL;
    if (!x) return dg_graph_status(ox_graph_of(im));
    dg_graph *g = ox_graph_of(im);
    dg_shape xs = dg_node_shape(x);
    dg_node *y = dg_pool2d_global_avg(g, x);
    if (y)
        y = dg_reshape(g, y, dg_shape4(dg_node_batch_leading(x) ? -1 : xs.dim[0], xs.dim[1], 1, 1));
    return done(im, n, y);
}

/* Evaluation form: the running statistics become state (DG_STATE), gamma and beta
 * parameters; training further updates the statistics with dagrad's momentum = 1 - ONNX's. */
static dg_status im_batch_norm(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    float eps, momentum;
    int64_t training;
    dg_status s = only(im, n, "epsilon", "momentum", "training_mode", NULL);
    if (s == DG_OK) s = ox_attr_float(im, n, "epsilon", 1e-5f, &eps);
    if (s == DG_OK) s = ox_attr_float(im, n, "momentum", 0.9f, &momentum);
    if (s == DG_OK) s = ox_attr_int(im, n, "training_mode", 0, &training);
    if (s != DG_OK) return s;
    if (training)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "training_mode 1 (dagrad reads models in evaluation form)");
    dg_node *in[5];
    for (int i = 0; i < 5; i++)
        if (!(in[i] = i < 3 ? ox_input(im, n, i) : ox_state_input(im, n, i)))
            return dg_graph_status(ox_graph_of(im));
    s = done(im, n,
             dg_batch_normalize(ox_graph_of(im), in[0], in[1], in[2], in[3], in[4], 1.0f - momentum,
                                eps));
    for (int i = 1; s == DG_OK && i < 3; i++)
        s = ox_set_unavailable(im, n, i, "BatchNormalization's training statistics");
    return s;
}

/* Pad that adds nothing (PyTorch writes one before an AveragePool): the identity. Any other
 * padding is refused; dagrad pads only inside convolutions and pools. */
static dg_status im_pad(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    dg_status s = only(im, n, "mode", NULL, NULL, NULL);
    const char *mode = attr_string(ox_find_attr(n, "mode"), "constant");
    if (s == DG_OK && strcmp(mode, "constant") != 0)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED, "mode '%.40s' is not supported", mode);
    dg_node *x = s == DG_OK ? ox_input(im, n, 0) : NULL;
    const ox_tensor *t = x ? ox_static_input(im, n, 1, "the pads") : NULL;
    int64_t count = 0;
    const int64_t *pads = t ? ox_tensor_ints(im, n, t, &count) : NULL;
    if (!pads) return dg_graph_status(ox_graph_of(im));
    for (int64_t i = 0; i < count; i++)
        if (pads[i] != 0)
            return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                           "pads[%lld] is %lld: dagrad has no padding op (pad inside Conv, "
                           "MaxPool or AveragePool instead)",
                           (long long)i, (long long)pads[i]);
    return ox_set_output(im, n, 0, x); /* a constant_value does not matter without padding */
}

/* Inference: the identity. A ratio or training_mode input is not read; the mask output is
 * not available. */
static dg_status im_dropout(ox_importer *im, const ox_node *n, const ox_op_form *f) {
    (void)f;
    dg_status s = only(im, n, "seed", NULL, NULL, NULL);
    dg_node *x = s == DG_OK ? ox_input(im, n, 0) : NULL;
    if (!x) return dg_graph_status(ox_graph_of(im));
    s = ox_set_output(im, n, 0, x);
    if (s == DG_OK && n->n_out > 1)
        s = ox_set_unavailable(im, n, 1, "Dropout's mask (dagrad imports models for inference)");
    return s;
}

/* clang-format off */
/* Rows: FORM(dagrad op, export, ONNX op, import) in general; UNARY and BINARY for ops that
 * map one to one (written by ex_same, read by their builder). */
#define FORM(DG, EX, ONNX, IM) {.dg_name = DG, .export_fn = EX, .onnx_type = ONNX, .import_fn = IM}
#define UNARY(DG, ONNX, B)                                                                         \
    {.dg_name = DG, .export_fn = ex_same, .onnx_type = ONNX, .import_fn = im_unary, .unary = B}
#define BINARY(DG, ONNX, B)                                                                        \
    {.dg_name = DG, .export_fn = ex_same, .onnx_type = ONNX, .import_fn = im_binary, .binary = B}

const ox_op_form ox_op_forms[] = {
    FORM("matmul", ex_matmul, "MatMul", im_matmul),
    FORM(NULL, NULL, "Gemm", im_gemm),
    {.dg_name = "add", .export_fn = ex_add, .onnx_type = "Add", .import_fn = im_binary, .binary = dg_add},
    BINARY("sub", "Sub", dg_sub),
    {.dg_name = "mul", .composite = dropout_composite}, /* before mul's plain row */
    BINARY("mul", "Mul", dg_mul),
    BINARY("div", "Div", dg_div),
    UNARY("neg", "Neg", dg_neg),
    UNARY("exp", "Exp", dg_exp),
    UNARY("log", "Log", dg_log),
    UNARY("sqrt", "Sqrt", dg_sqrt),
    UNARY("abs", "Abs", dg_abs),
    UNARY("relu", "Relu", dg_relu),
    UNARY("sigmoid", "Sigmoid", dg_sigmoid),
    UNARY("tanh", "Tanh", dg_tanh),
    FORM("leaky_relu", ex_leaky_relu, "LeakyRelu", im_leaky_relu),
    FORM("scale", ex_scale, NULL, NULL),
    FORM("shift", ex_shift, NULL, NULL),
    FORM("pow", ex_pow, "Pow", im_pow),
    {.dg_name = "softmax", .export_fn = ex_softmax, .onnx_type = "Softmax", .import_fn = im_softmax, .unary = dg_softmax},
    {.dg_name = "log_softmax", .export_fn = ex_softmax, .onnx_type = "LogSoftmax", .import_fn = im_softmax, .unary = dg_log_softmax},
    FORM("reshape", ex_reshape, "Reshape", im_reshape),
    FORM(NULL, NULL, "Flatten", im_flatten),
    FORM("transpose", ex_transpose, "Transpose", im_transpose),
    FORM(NULL, NULL, "Identity", im_identity),
    FORM(NULL, NULL, "Dropout", im_dropout),
    FORM("conv2d", ex_conv, "Conv", im_conv),
    FORM("max_pool2d", ex_max_pool, "MaxPool", im_pool),
    FORM("avg_pool2d", ex_avg_pool, "AveragePool", im_pool),
    FORM(NULL, NULL, "GlobalAveragePool", im_global_avg_pool),
    FORM(NULL, NULL, "Pad", im_pad),
    {.dg_name = "add", .export_fn = ex_batch_norm, .composite = bn_composite},
    FORM(NULL, NULL, "BatchNormalization", im_batch_norm),
    {0},
};
/* clang-format on */
