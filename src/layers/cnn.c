/* Convolutional layers as graph builders: convolution (+ bias + activation), max and average
 * pooling, global average pooling and batch normalisation. Like dense (layers.c), each
 * opens a scope named after the layer, adds its named parameters and state and ordinary op
 * nodes (dg_convolve2d, dg_pool2d_*, dg_batch_normalize), and on failure leaves the graph
 * as it was, reporting the failure as the layer's. Nothing here computes anything. */
#include "layer_internal.h"

#include <stdio.h>
#include <string.h>

/* A parameter or state node "<scope>/<what>", or NULL with the error set if that name is
 * too long or taken (parameters are saved and loaded by name). */
static dg_node *named_leaf(dg_graph *g, const char *kind, const char *what, dg_shape shape,
                           int state) {
    char name[600];
    const char *scope = dg_scope_current(g);
    int len = snprintf(name, sizeof name, "%s/%s", scope, what);
    if (len < 0 || (size_t)len >= sizeof name) {
        dg_set_error(g, DG_ERR_ARG,
                     "%s: layer name is %zu bytes long with its scopes (at most %zu)", kind,
                     strlen(scope), sizeof name - strlen(what) - 2);
        return NULL;
    }
    if (dg_graph_find(g, name)) {
        dg_set_error(g, DG_ERR_ARG,
                     "%s: a node named '%s' already exists (give each layer its own name)", kind,
                     name);
        return NULL;
    }
    return state ? dg_state(g, name, shape) : dg_param(g, name, shape);
}

static int relu_like(dg_activation act) { return act == DG_ACT_RELU || act == DG_ACT_LEAKY_RELU; }

static dg_node *activate(dg_graph *g, dg_node *x, dg_activation act) {
    switch (act) {
    case DG_ACT_NONE: return x;
    case DG_ACT_RELU: return dg_relu(g, x);
    case DG_ACT_LEAKY_RELU: return dg_leaky_relu(g, x, 0.01f);
    case DG_ACT_SIGMOID: return dg_sigmoid(g, x);
    case DG_ACT_TANH: return dg_tanh(g, x);
    case DG_ACT_SOFTMAX: break; /* over channels of an image is not what anyone means */
    }
    dg_set_error(g, DG_ERR_ARG,
                 "conv2d: activation %d is not one of none, relu, leaky_relu, "
                 "sigmoid, tanh",
                 (int)act);
    return NULL;
}

dg_node *dg_conv2d_ex(dg_graph *g, const char *name, dg_node *x, int64_t filters, int kernel_h,
                      int kernel_w, const struct dg_conv2d_options *conv, dg_activation act,
                      int use_bias) {
    if (!dg__check_input(g, "conv2d", x)) return NULL;
    dg_shape xs = dg_node_shape(x);
    char sb[64];
    if (xs.ndim != 4)
        return dg_set_error(g, DG_ERR_SHAPE,
                            "conv2d: input must be [batch, channels, height, width], got %s",
                            dg_shape_str(xs, sb, sizeof sb)),
               NULL;
    dg_conv2d_options o = conv ? *conv : dg_conv2d_defaults();
    if (filters < 1 || kernel_h < 1 || kernel_w < 1 || o.groups < 1 || xs.dim[1] % o.groups ||
        filters % o.groups)
        return dg_set_error(g, DG_ERR_ARG,
                            "conv2d: filters (%lld) and kernel (%dx%d) must be >= 1 and groups "
                            "(%d) must divide the %lld input channels and the filters",
                            (long long)filters, kernel_h, kernel_w, o.groups, (long long)xs.dim[1]),
               NULL;
    int64_t per_group = xs.dim[1] / o.groups, taps = (int64_t)kernel_h * kernel_w;
    int64_t fan_in = per_group * taps, fan_out = filters / o.groups * taps;
    dg_mark m = dg_graph_mark(g);
    char lname[128];
    if (dg__layer_begin(g, name, "conv", lname, sizeof lname) != DG_OK) return NULL;
    dg_node *y = NULL, *b = NULL;
    dg_node *w = named_leaf(g, "conv2d", "W", dg_shape4(filters, per_group, kernel_h, kernel_w), 0);
    /* He for ReLU (it zeroes half its inputs), Glorot otherwise; fans count the taps */
    dg_init wi = {relu_like(act) ? DG_INIT_HE_UNIFORM : DG_INIT_XAVIER_UNIFORM, 0, 0};
    int ok = w && dg_init_fill(w, wi, fan_in, fan_out) == DG_OK;
    if (ok && use_bias) ok = (b = named_leaf(g, "conv2d", "b", dg_shape1(filters), 0)) != NULL;
    if (ok) y = activate(g, dg_convolve2d(g, x, w, b, &o), act);
    return dg__layer_end(g, m, y, "conv2d");
}

dg_node *dg_conv2d(dg_graph *g, const char *name, dg_node *x, int64_t filters, int kernel,
                   int stride, int padding, dg_activation act) {
    dg_conv2d_options o = dg_conv2d_defaults();
    o.stride[0] = o.stride[1] = stride;
    o.padding[0] = o.padding[1] = padding;
    return dg_conv2d_ex(g, name, x, filters, kernel, kernel, &o, act, 1);
}

/* ---- pooling ---- */

static dg_node *pool_layer(dg_graph *g, const char *name, const char *kind, const char *who,
                           dg_node *x, const dg_pool2d_options *o, int is_max) {
    if (!dg__check_input(g, who, x)) return NULL;
    dg_mark m = dg_graph_mark(g);
    char lname[128];
    if (dg__layer_begin(g, name, kind, lname, sizeof lname) != DG_OK) return NULL;
    dg_node *y = !o       ? dg_pool2d_global_avg(g, x)
                 : is_max ? dg_pool2d_max(g, x, o)
                          : dg_pool2d_avg(g, x, o);
    return dg__layer_end(g, m, y, who);
}

static dg_pool2d_options square(int kernel, int stride, int padding) {
    dg_pool2d_options o = {{kernel, kernel}, {stride, stride}, {padding, padding}, {1, 1}};
    return o;
}

dg_node *dg_max_pool2d(dg_graph *g, const char *name, dg_node *x, int kernel, int stride,
                       int padding) {
    dg_pool2d_options o = square(kernel, stride, padding);
    return pool_layer(g, name, "maxpool", "max_pool2d", x, &o, 1);
}

dg_node *dg_avg_pool2d(dg_graph *g, const char *name, dg_node *x, int kernel, int stride,
                       int padding) {
    dg_pool2d_options o = square(kernel, stride, padding);
    return pool_layer(g, name, "avgpool", "avg_pool2d", x, &o, 0);
}

dg_node *dg_global_avg_pool2d(dg_graph *g, const char *name, dg_node *x) {
    return pool_layer(g, name, "gap", "global_avg_pool2d", x, NULL, 0);
}

/* ---- batch normalisation ---- */

dg_node *dg_batch_norm(dg_graph *g, const char *name, dg_node *x, float momentum, float eps) {
    if (!dg__check_input(g, "batch_norm", x)) return NULL;
    dg_shape xs = dg_node_shape(x);
    char sb[64];
    if (xs.ndim < 2)
        return dg_set_error(g, DG_ERR_SHAPE,
                            "batch_norm: input must be [batch, channels, ...], got %s",
                            dg_shape_str(xs, sb, sizeof sb)),
               NULL;
    dg_shape cs = dg_shape1(xs.dim[1]);
    dg_mark m = dg_graph_mark(g);
    char lname[128];
    if (dg__layer_begin(g, name, "batchnorm", lname, sizeof lname) != DG_OK) return NULL;
    dg_node *y = NULL;
    dg_node *gamma = named_leaf(g, "batch_norm", "gamma", cs, 0);
    dg_node *beta = gamma ? named_leaf(g, "batch_norm", "beta", cs, 0) : NULL;
    dg_node *mean = beta ? named_leaf(g, "batch_norm", "running_mean", cs, 1) : NULL;
    dg_node *var = mean ? named_leaf(g, "batch_norm", "running_var", cs, 1) : NULL;
    dg_init one = {DG_INIT_CONSTANT, 1.0f, 0.0f};
    /* gamma 1, beta 0: the layer starts as plain standardisation; running statistics start
     * as those of standardised data (mean 0, variance 1), as in PyTorch */
    if (var && dg_init_fill(gamma, one, 1, 1) == DG_OK && dg_init_fill(var, one, 1, 1) == DG_OK)
        y = dg_batch_normalize(g, x, gamma, beta, mean, var, momentum, eps);
    return dg__layer_end(g, m, y, "batch_norm");
}
