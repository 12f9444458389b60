/* Layer builders (dense, activation, flatten), layer scopes with automatic names, and the
 * model summary. A layer only adds parameters and ordinary op nodes inside its scope; it
 * computes nothing itself, so everything a layer does is differentiated by the engine. */
#include "layer_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- scopes ---- */

dg_status dg__layer_begin(dg_graph *g, const char *name, const char *kind, char *out,
                          size_t out_size) {
    if (name) {
        if (!name[0]) return dg_set_error(g, DG_ERR_ARG, "%s: layer name is empty", kind);
        snprintf(out, out_size, "%s", name);
        return dg_scope_push(g, name);
    }
    const char *parent = dg_scope_current(g);
    char full[512];
    for (int k = 1;; k++) {
        snprintf(out, out_size, "%s%d", kind, k);
        snprintf(full, sizeof full, "%s%s%s", parent ? parent : "", parent ? "/" : "", out);
        if (!dg_scope_in_use(g, full)) break;
    }
    return dg_scope_push(g, out);
}

dg_node *dg__layer_end(dg_graph *g, dg_mark m, dg_node *y, const char *kind) {
    if (!y) return dg_graph_rollback(g, m, kind), NULL;
    return dg_scope_pop(g) == DG_OK ? y : NULL;
}

int dg__check_input(dg_graph *g, const char *what, dg_node *x) {
    if (!g) {
        dg_set_error(NULL, DG_ERR_NULL, "%s: graph is NULL", what);
        return 0;
    }
    if (!x) {
        /* a nested call that failed: keep its message (and status) as the cause */
        if (dg_graph_status(g) != DG_OK && dg_graph_error(g)[0])
            dg_set_error(g, dg_graph_status(g), "%s: input is NULL (after: %.400s)", what,
                         dg_graph_error(g));
        else
            dg_set_error(g, DG_ERR_NULL, "%s: input is NULL", what);
        return 0;
    }
    if (dg_node_graph(x) != g) {
        dg_set_error(
            g, DG_ERR_GRAPH, "%s: input belongs to another graph (node %d%s%s%s there, op %s)",
            what, dg_node_id(x), dg_node_name(x) ? " '" : "",
            dg_node_name(x) ? dg_node_name(x) : "", dg_node_name(x) ? "'" : "", dg_node_op_name(x));
        return 0;
    }
    return 1;
}

/* ---- activations ---- */

static const char *activation_name(dg_activation act) {
    switch (act) {
    case DG_ACT_NONE: return "linear";
    case DG_ACT_RELU: return "relu";
    case DG_ACT_LEAKY_RELU: return "leaky_relu";
    case DG_ACT_SIGMOID: return "sigmoid";
    case DG_ACT_TANH: return "tanh";
    case DG_ACT_SOFTMAX: return "softmax";
    }
    return NULL;
}

static dg_node *apply_activation(dg_graph *g, dg_node *x, dg_activation act) {
    switch (act) {
    case DG_ACT_NONE: return x;
    case DG_ACT_RELU: return dg_relu(g, x);
    case DG_ACT_LEAKY_RELU: return dg_leaky_relu(g, x, 0.01f);
    case DG_ACT_SIGMOID: return dg_sigmoid(g, x);
    case DG_ACT_TANH: return dg_tanh(g, x);
    case DG_ACT_SOFTMAX: return dg_softmax(g, x);
    }
    return NULL;
}

dg_node *dg_activation_layer(dg_graph *g, const char *name, dg_node *x, dg_activation act) {
    if (!dg__check_input(g, "activation", x)) return NULL;
    const char *kind = activation_name(act);
    if (!kind)
        return dg_set_error(g, DG_ERR_ARG, "activation: unknown activation %d", (int)act), NULL;
    if (act == DG_ACT_NONE) return x;
    char lname[128];
    dg_mark m = dg_graph_mark(g);
    if (dg__layer_begin(g, name, kind, lname, sizeof lname) != DG_OK) return NULL;
    return dg__layer_end(g, m, apply_activation(g, x, act), "activation");
}

/* ---- dense ---- */

dg_dense_options dg_dense_defaults(void) {
    dg_dense_options o;
    memset(&o, 0, sizeof o);
    o.use_bias = 1;
    o.weight_init.kind = DG_INIT_XAVIER_UNIFORM;
    o.bias_init.kind = DG_INIT_ZEROS;
    return o;
}

dg_node *dg_dense_ex(dg_graph *g, const char *name, dg_node *x, int64_t units, dg_activation act,
                     const dg_dense_options *opts) {
    if (!dg__check_input(g, "dense", x)) return NULL;
    char sb[64];
    dg_shape xs = dg_node_shape(x);
    if (xs.ndim != 2)
        return dg_set_error(g, DG_ERR_SHAPE,
                            "dense: input must be [batch, features], got %s (flatten it first "
                            "with dg_flatten)",
                            dg_shape_str(xs, sb, sizeof sb)),
               NULL;
    if (units < 1)
        return dg_set_error(g, DG_ERR_ARG, "dense: units must be >= 1, got %lld", (long long)units),
               NULL;
    if (!activation_name(act))
        return dg_set_error(g, DG_ERR_ARG, "dense: unknown activation %d", (int)act), NULL;
    dg_dense_options o = opts ? *opts : dg_dense_defaults();
    if (!opts || !o.custom_init) {
        /* Glorot keeps the variance of tanh/sigmoid layers; He compensates for ReLU
         * zeroing half of its inputs. */
        int relu_like = act == DG_ACT_RELU || act == DG_ACT_LEAKY_RELU;
        o.weight_init.kind = relu_like ? DG_INIT_HE_UNIFORM : DG_INIT_XAVIER_UNIFORM;
        o.bias_init.kind = DG_INIT_ZEROS;
    }
    int64_t fan_in = xs.dim[1];
    dg_mark m = dg_graph_mark(g);
    char lname[128], pname[600];
    if (dg__layer_begin(g, name, "dense", lname, sizeof lname) != DG_OK) return NULL;
    const char *scope = dg_scope_current(g);
    dg_node *y = NULL, *w = NULL;
    /* Parameters are found by name (checkpoints): a name cut short, or one an earlier layer
     * already used, would give two parameters the same name. */
    if (strlen(scope) + 3 > sizeof pname) {
        dg_set_error(g, DG_ERR_ARG,
                     "dense: layer name is %zu bytes long with its scopes (at most %zu)",
                     strlen(scope), sizeof pname - 3);
    } else {
        snprintf(pname, sizeof pname, "%s/W", scope);
        if (dg_graph_find(g, pname))
            dg_set_error(g, DG_ERR_ARG,
                         "dense: a parameter named '%s' already exists (give each layer its own "
                         "name)",
                         pname);
        else
            w = dg_param(g, pname, dg_shape2(fan_in, units));
    }
    if (w && dg_init_fill(w, o.weight_init, fan_in, units) == DG_OK) {
        y = dg_matmul(g, x, w);
        if (y && o.use_bias) {
            snprintf(pname, sizeof pname, "%s/b", scope);
            dg_node *b = dg_param(g, pname, dg_shape1(units));
            /* a bias sees one input per unit: fans (1, units) keep Glorot/He meaningful */
            if (b && dg_init_fill(b, o.bias_init, 1, units) == DG_OK)
                y = dg_add(g, y, b);
            else
                y = NULL;
        }
        if (y) y = apply_activation(g, y, act);
    }
    /* on failure the graph is left as it was (apart from the generator's position), and a
     * failure of a call inside (param, init_fill) is reported as dense's */
    return dg__layer_end(g, m, y, "dense");
}

dg_node *dg_dense(dg_graph *g, const char *name, dg_node *x, int64_t units, dg_activation act) {
    return dg_dense_ex(g, name, x, units, act, NULL);
}

/* ---- flatten ---- */

dg_node *dg_flatten(dg_graph *g, const char *name, dg_node *x) {
    if (!dg__check_input(g, "flatten", x)) return NULL;
    dg_shape s = dg_node_shape(x);
    if (s.ndim < 1)
        return dg_set_error(g, DG_ERR_SHAPE, "flatten: input is a scalar; need [batch, ...]"), NULL;
    int64_t rest = 1;
    for (int i = 1; i < s.ndim; i++) rest *= s.dim[i];
    char lname[128];
    dg_mark m = dg_graph_mark(g);
    if (dg__layer_begin(g, name, "flatten", lname, sizeof lname) != DG_OK) return NULL;
    /* -1: the leading (batch) dimension follows the run */
    return dg__layer_end(g, m, dg_reshape(g, x, dg_shape2(-1, rest)), "flatten");
}

/* ---- counting and summary ---- */

int64_t dg_param_count(const dg_graph *g) {
    int64_t total = 0;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *n = dg_graph_node(g, i);
        if (dg_node_kind_of(n) == DG_PARAM) total += dg_node_numel(n);
    }
    return total;
}

/* "40480" -> "40,480" */
static char *with_commas(int64_t v, char *buf, size_t size) {
    char digits[32];
    snprintf(digits, sizeof digits, "%" PRId64, v < 0 ? -v : v);
    size_t nd = strlen(digits), o = 0;
    if (v < 0 && o + 1 < size) buf[o++] = '-';
    for (size_t i = 0; i < nd && o + 1 < size; i++) {
        if (i > 0 && (nd - i) % 3 == 0 && o + 1 < size) buf[o++] = ',';
        if (o + 1 < size) buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

typedef struct summary_row {
    const char *scope; /* interned full scope of the first node seen */
    size_t len;        /* length of the top-level component */
    dg_node *out;      /* last forward node */
    int64_t params;
} summary_row;

dg_status dg_summary(const dg_graph *g, FILE *out) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "summary: graph is NULL");
    if (!out) out = stdout;
    int n = dg_graph_node_count(g), n_rows = 0;
    summary_row *rows = calloc((size_t)(n > 0 ? n : 1), sizeof *rows);
    if (!rows) return dg_set_error((dg_graph *)g, DG_ERR_NOMEM, "summary: out of memory");
    int64_t state = 0;
    for (int i = 0; i < n; i++) {
        dg_node *x = dg_graph_node(g, i);
        if (dg_node_kind_of(x) == DG_STATE) state += dg_node_numel(x);
        const char *sc = dg_node_scope(x);
        if (!sc || dg_node_kind_of(x) == DG_STATE) continue;
        size_t len = strcspn(sc, "/");
        int r = 0;
        while (r < n_rows && !(rows[r].len == len && strncmp(rows[r].scope, sc, len) == 0)) r++;
        if (r == n_rows) {
            rows[r].scope = sc;
            rows[r].len = len;
            n_rows++;
        }
        if (dg_node_kind_of(x) == DG_PARAM) rows[r].params += dg_node_numel(x);
        /* nodes built by dg_backward (and optimizers after it) are not the layer's output */
        if (dg_node_backward_pass(x) == 0 && dg_node_kind_of(x) != DG_PARAM) rows[r].out = x;
    }
    const char *rule = "=================================================================";
    const char *thin = "-----------------------------------------------------------------";
    fprintf(out, "%-28s %-24s %12s\n%s\n", "Layer", "Output shape", "Params", rule);
    char sb[64], nb[32];
    for (int r = 0; r < n_rows; r++) {
        char lname[64];
        snprintf(lname, sizeof lname, "%.*s", (int)rows[r].len, rows[r].scope);
        const char *shape =
            rows[r].out ? dg_shape_str(dg_node_shape(rows[r].out), sb, sizeof sb) : "-";
        /* a leading dimension that follows the batch reads N, whatever was fed last */
        if (rows[r].out && dg_node_batch_leading(rows[r].out)) {
            char tail[sizeof sb - 2];
            const char *comma = strchr(sb, ',');
            snprintf(tail, sizeof tail, "%s", comma ? comma : "]");
            snprintf(sb, sizeof sb, "[N%s", tail);
        }
        fprintf(out, "%-28s %-24s %12s\n", lname, shape,
                with_commas(rows[r].params, nb, sizeof nb));
    }
    fprintf(out, "%s\n", rule);
    fprintf(out, "Total params: %s\n", with_commas(dg_param_count(g), nb, sizeof nb));
    fprintf(out, "Non-trainable state values: %s\n%s\n", with_commas(state, nb, sizeof nb), thin);
    free(rows);
    return ferror(out) ? dg_set_error((dg_graph *)g, DG_ERR_IO, "summary: write failed") : DG_OK;
}
