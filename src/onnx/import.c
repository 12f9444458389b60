/* dg_onnx_load: an ONNX model as dagrad nodes.
 *
 * The file is parsed completely first (model.c), then checked at the model level (a graph,
 * the ai.onnx opset, IR version), then built: graph inputs become dg_input nodes, and the
 * nodes, in file order (ONNX requires a topological order), become the nodes their row of
 * the table (ops.c) builds, inside a layer scope named after the node. Initializers become
 * parameters when a node first reads them as data (so parameters appear in the order the
 * model uses them), or stay tensors known while loading when a node reads them as
 * constants (shapes, exponents). Constant nodes become dg_const nodes where they stand.
 * Every value is looked up by name in one table; a name defined twice, used before it is
 * defined or never defined is an error naming the node.
 *
 * Anything wrong rolls the graph back to where it was (dg_graph_rollback): a failed load
 * leaves no node, parameter, name or scope behind. Nothing is allocated from a size the
 * file states without the bytes being there, except graph inputs (which have no data);
 * their total size per batch row is capped by the options. */
#include "onnx_internal.h"

#include "../io/io_internal.h"
#include "dagrad/ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V_INPUT, V_INIT, V_CONST, V_NODE, V_UNAVAILABLE };

typedef struct ox_val {
    const char *name;
    int kind;
    dg_node *node;           /* NULL until an initializer is first read as data */
    const ox_tensor *tensor; /* initializers and Constant outputs */
    const char *why;         /* V_UNAVAILABLE */
} ox_val;

struct ox_importer {
    dg_graph *g;
    const char *what; /* "onnx_load 'path'" */
    const ox_model *m;
    int64_t opset;
    ox_arena *arena;
    ox_map map; /* value name -> index into vals */
    ox_val *vals;
    int n_vals, cap_vals;
    int cur; /* index of the ONNX node being built, -1 outside nodes */
    int64_t input_budget;
    int64_t max_value; /* elements per batch row of any value built */
};

dg_graph *ox_graph_of(ox_importer *im) { return im->g; }
int64_t ox_model_opset(const ox_importer *im) { return im->opset; }

/* "node 3 'fc1/Gemm' (Gemm)" */
static void node_label(const ox_node *n, int index, char *buf, size_t size) {
    snprintf(buf, size, "node %d%s%.160s%s (%.64s)", index, n->name[0] ? " '" : "", n->name,
             n->name[0] ? "'" : "", n->op_type);
}

dg_status ox_fail(ox_importer *im, const ox_node *n, dg_status s, const char *fmt, ...) {
    char msg[400], label[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) node_label(n, im->cur, label, sizeof label);
    return dg_set_error(im->g, s, "%s: %s%s%s", im->what, label, n ? ": " : "", msg);
}

static dg_status nomem(ox_importer *im) {
    return dg_set_error(im->g, DG_ERR_NOMEM, "%s: out of memory", im->what);
}

static dg_status define(ox_importer *im, const ox_node *n, const char *name, int kind,
                        dg_node *node, const ox_tensor *t) {
    int idx;
    if (ox_map_get(&im->map, name, &idx))
        return ox_fail(im, n, DG_ERR_FORMAT, "the value '%.200s' is defined twice", name);
    if (im->n_vals == im->cap_vals) {
        int cap = im->cap_vals ? 2 * im->cap_vals : 64;
        ox_val *v = realloc(im->vals, (size_t)cap * sizeof *v);
        if (!v) return nomem(im);
        im->vals = v, im->cap_vals = cap;
    }
    im->vals[im->n_vals] = (ox_val){name, kind, node, t, NULL};
    if (ox_map_put(&im->map, name, im->n_vals) != DG_OK) return nomem(im);
    im->n_vals++;
    return DG_OK;
}

/* ---- tensors ---- */

/* The element count of t (dims >= 0, at most 2^40 elements), or -1 with an error. */
static int64_t tensor_numel(ox_importer *im, const ox_node *n, const ox_tensor *t) {
    int64_t numel = 1;
    for (int i = 0; i < t->ndims; i++) {
        if (t->dims[i] < 0)
            return ox_fail(im, n, DG_ERR_FORMAT, "tensor '%.200s' has dimension %d of %lld",
                           t->name, i, (long long)t->dims[i]),
                   -1;
        if (t->dims[i] && numel > ((int64_t)1 << 40) / t->dims[i])
            return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                           "tensor '%.200s' has more than 2^40 "
                           "elements",
                           t->name),
                   -1;
        numel *= t->dims[i];
    }
    return numel;
}

/* The values of t if its type is `dtype` (elem bytes each), as an arena copy in host order. */
static const void *tensor_values(ox_importer *im, const ox_node *n, const ox_tensor *t,
                                 int32_t dtype, int64_t *count) {
    char b1[24], b2[24];
    if (t->dtype != dtype)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED, "tensor '%.200s' is %s; dagrad reads %s here",
                       t->name, ox_dtype_name(t->dtype, b1, sizeof b1),
                       ox_dtype_name(dtype, b2, sizeof b2)),
               NULL;
    if (t->external || t->segmented)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED, "tensor '%.200s' keeps its data %s", t->name,
                       t->external ? "in an external file (not supported)"
                                   : "in segments (not supported)"),
               NULL;
    int64_t numel = tensor_numel(im, n, t);
    if (numel < 0) return NULL;
    size_t esz = dtype == OX_DT_INT64 ? 8 : 4;
    int64_t typed = dtype == OX_DT_INT64 ? t->n_ints : t->n_floats;
    /* the values must be in the file before anything of the stated size is allocated */
    if (t->has_raw && t->raw_len != (uint64_t)numel * esz)
        return ox_fail(im, n, DG_ERR_FORMAT,
                       "tensor '%.200s': raw_data holds %zu bytes for %lld values of %zu bytes",
                       t->name, t->raw_len, (long long)numel, esz),
               NULL;
    if (!t->has_raw && typed != numel)
        return typed || !t->other_data
                   ? ox_fail(im, n, DG_ERR_FORMAT,
                             "tensor '%.200s' holds %lld values for %lld elements", t->name,
                             (long long)typed, (long long)numel)
                   : ox_fail(im, n, DG_ERR_FORMAT,
                             "tensor '%.200s' has no data in the field of its type", t->name),
               NULL;
    void *out = ox_alloc(im->arena, (size_t)(numel ? numel : 1) * esz);
    if (!out) return nomem(im), NULL;
    if (t->has_raw && dtype == OX_DT_INT64)
        for (int64_t i = 0; i < numel; i++)
            ((int64_t *)out)[i] = (int64_t)dg__get_u64le(t->raw + 8 * i);
    else if (t->has_raw)
        dg__floats_from_le(out, t->raw, (size_t)numel);
    else if (numel)
        memcpy(out, dtype == OX_DT_INT64 ? (void *)t->ints : (void *)t->floats,
               (size_t)numel * esz);
    *count = numel;
    return out;
}

const int64_t *ox_tensor_ints(ox_importer *im, const ox_node *n, const ox_tensor *t,
                              int64_t *count) {
    return tensor_values(im, n, t, OX_DT_INT64, count);
}

const float *ox_tensor_floats(ox_importer *im, const ox_node *n, const ox_tensor *t,
                              int64_t *count) {
    return tensor_values(im, n, t, OX_DT_FLOAT, count);
}

/* A tensor as a dagrad leaf of `kind` (DG_PARAM, DG_STATE or DG_CONST): its shape (rank <=
 * 4, no empty dimension) and values. */
static dg_node *tensor_leaf(ox_importer *im, const ox_node *n, const ox_tensor *t,
                            dg_node_kind kind) {
    if (t->ndims > DG_MAX_DIMS)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "tensor '%.200s' has %d dimensions (dagrad "
                       "has at most %d)",
                       t->name, t->ndims, DG_MAX_DIMS),
               NULL;
    int64_t count;
    const float *v = ox_tensor_floats(im, n, t, &count);
    if (!v) return NULL;
    dg_shape s = dg_shape0();
    s.ndim = t->ndims;
    for (int i = 0; i < t->ndims; i++) s.dim[i] = t->dims[i];
    if (count == 0)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "tensor '%.200s' is empty (dagrad has no "
                       "empty tensors)",
                       t->name),
               NULL;
    dg_node *leaf = kind == DG_PARAM   ? dg_param(im->g, t->name, s)
                    : kind == DG_STATE ? dg_state(im->g, t->name, s)
                                       : dg_const(im->g, t->name, s, v, 0);
    if (!leaf) return ox_fail(im, n, dg_graph_status(im->g), "%s", dg_graph_error(im->g)), NULL;
    if (kind != DG_CONST && dg_feed(leaf, v, count) != DG_OK)
        return ox_fail(im, n, dg_graph_status(im->g), "%s", dg_graph_error(im->g)), NULL;
    return leaf;
}

/* ---- values by name ---- */

/* The dagrad node of value `name` (making an initializer's leaf, a parameter or `state`, on
 * first use). */
static dg_node *resolve_as(ox_importer *im, const ox_node *n, const char *name, const char *what,
                           int state) {
    int idx;
    if (!ox_map_get(&im->map, name, &idx))
        return ox_fail(im, n, DG_ERR_FORMAT,
                       "%s '%.200s' is not a graph input, an initializer or an output of an "
                       "earlier node",
                       what, name),
               NULL;
    ox_val *v = &im->vals[idx];
    if (v->kind == V_UNAVAILABLE)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED, "%s '%.200s' is %s", what, name, v->why), NULL;
    if (!v->node && v->tensor) {
        dg_node_kind kind = v->kind != V_INIT ? DG_CONST : state ? DG_STATE : DG_PARAM;
        dg_node *leaf = tensor_leaf(im, n, v->tensor, kind);
        if (!leaf) return NULL;
        im->vals[idx].node = leaf; /* vals may not have moved: tensor_leaf defines nothing */
    }
    dg_node *x = im->vals[idx].node;
    if (v->kind == V_INIT && (dg_node_kind_of(x) == DG_STATE) != (state != 0))
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "initializer '%.200s' is read both as a parameter and as running "
                       "statistics (dagrad keeps those as state)",
                       name),
               NULL;
    return x;
}

static dg_node *resolve(ox_importer *im, const ox_node *n, const char *name, const char *what) {
    return resolve_as(im, n, name, what, 0);
}

int ox_has_input(const ox_node *n, int i) { return i < n->n_in && n->in[i][0]; }

dg_node *ox_input(ox_importer *im, const ox_node *n, int i) {
    if (!ox_has_input(n, i)) return ox_fail(im, n, DG_ERR_FORMAT, "input %d is missing", i), NULL;
    char what[32];
    snprintf(what, sizeof what, "input %d", i);
    return resolve(im, n, n->in[i], what);
}

dg_node *ox_state_input(ox_importer *im, const ox_node *n, int i) {
    if (!ox_has_input(n, i)) return ox_fail(im, n, DG_ERR_FORMAT, "input %d is missing", i), NULL;
    char what[32];
    snprintf(what, sizeof what, "input %d", i);
    return resolve_as(im, n, n->in[i], what, 1);
}

const ox_tensor *ox_static_input(ox_importer *im, const ox_node *n, int i, const char *what) {
    if (!ox_has_input(n, i))
        return ox_fail(im, n, DG_ERR_FORMAT, "%s (input %d) is missing", what, i), NULL;
    int idx;
    if (!ox_map_get(&im->map, n->in[i], &idx) || !im->vals[idx].tensor)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "%s (input %d, '%.200s') must be an initializer or a Constant: dagrad "
                       "fixes it when the graph is built",
                       what, i, n->in[i]),
               NULL;
    return im->vals[idx].tensor;
}

dg_status ox_set_output(ox_importer *im, const ox_node *n, int i, dg_node *v) {
    if (i >= n->n_out || !n->out[i][0]) return DG_OK;
    /* a node made for this output takes its name; an Identity's output is its input's node */
    if (dg_node_kind_of(v) == DG_OP_NODE && !dg_node_name(v) &&
        dg_node_set_name(v, n->out[i]) != DG_OK)
        return ox_fail(im, n, dg_graph_status(im->g), "%s", dg_graph_error(im->g));
    return define(im, n, n->out[i], V_NODE, v, NULL);
}

dg_status ox_set_unavailable(ox_importer *im, const ox_node *n, int i, const char *why) {
    if (i >= n->n_out || !n->out[i][0]) return DG_OK;
    dg_status s = define(im, n, n->out[i], V_UNAVAILABLE, NULL, NULL);
    if (s == DG_OK) im->vals[im->n_vals - 1].why = why;
    return s;
}

/* ---- attributes ---- */

const ox_attr *ox_find_attr(const ox_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

/* The attribute if present with type `type` (an untyped one holding that field is taken). */
static const ox_attr *typed_attr(ox_importer *im, const ox_node *n, const char *name, int32_t type,
                                 int present, dg_status *s) {
    const ox_attr *a = ox_find_attr(n, name);
    *s = DG_OK;
    if (!a) return NULL;
    if (a->type == type || (a->type == 0 && present)) return a;
    *s = ox_fail(im, n, DG_ERR_FORMAT, "attribute '%s' is %s, expected %s", name,
                 ox_attr_type_name(a->type), ox_attr_type_name(type));
    return NULL;
}

dg_status ox_attr_int(ox_importer *im, const ox_node *n, const char *name, int64_t def,
                      int64_t *out) {
    dg_status s;
    const ox_attr *a = ox_find_attr(n, name);
    a = typed_attr(im, n, name, OX_AT_INT, a && a->has_i, &s);
    *out = a ? a->i : def;
    return s;
}

dg_status ox_attr_float(ox_importer *im, const ox_node *n, const char *name, float def,
                        float *out) {
    dg_status s;
    const ox_attr *a = ox_find_attr(n, name);
    a = typed_attr(im, n, name, OX_AT_FLOAT, a && a->has_f, &s);
    *out = a ? a->f : def;
    return s;
}

dg_status ox_attr_ints(ox_importer *im, const ox_node *n, const char *name, int64_t *out, int cap,
                       int *count) {
    dg_status s;
    const ox_attr *a = ox_find_attr(n, name);
    a = typed_attr(im, n, name, OX_AT_INTS, a && a->n_ints, &s);
    *count = -1;
    if (!a) return s;
    if (a->n_ints > cap)
        return ox_fail(im, n, DG_ERR_UNSUPPORTED, "attribute '%s' has %d values (at most %d)", name,
                       a->n_ints, cap);
    if (a->n_ints) memcpy(out, a->ints, (size_t)a->n_ints * sizeof *out);
    *count = a->n_ints;
    return DG_OK;
}

dg_status ox_only_attrs(ox_importer *im, const ox_node *n, const char *const *known) {
    for (int i = 0; i < n->n_attrs; i++) {
        const ox_attr *a = &n->attrs[i];
        for (int j = 0; j < i; j++)
            if (strcmp(n->attrs[j].name, a->name) == 0)
                return ox_fail(im, n, DG_ERR_FORMAT, "attribute '%.100s' is given twice", a->name);
        if (a->has_ref)
            return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                           "attribute '%.100s' refers to a function's attribute (only valid "
                           "inside functions)",
                           a->name);
        int ok = 0;
        for (int k = 0; known[k] && !ok; k++) ok = strcmp(known[k], a->name) == 0;
        if (!ok)
            return ox_fail(im, n, DG_ERR_UNSUPPORTED, "attribute '%.100s' is not supported",
                           a->name);
    }
    return DG_OK;
}

/* ---- nodes ---- */

/* Constant: one of value (a tensor), value_float(s), value_int(s). A FLOAT tensor that
 * dagrad can hold becomes a dg_const here; any constant can be read while loading. */
static dg_status import_constant(ox_importer *im, const ox_node *n) {
    const char *known[] = {"value", "value_float", "value_floats", "value_int", "value_ints", NULL};
    dg_status s = ox_only_attrs(im, n, known);
    if (s != DG_OK) return s;
    if (n->n_attrs != 1)
        return ox_fail(im, n, DG_ERR_FORMAT, "needs exactly one value attribute, has %d",
                       n->n_attrs);
    if (n->n_in != 0 || n->n_out != 1 || !n->out[0][0])
        return ox_fail(im, n, DG_ERR_FORMAT, "needs no input and one output");
    const ox_attr *a = &n->attrs[0];
    ox_tensor *t = ox_alloc(im->arena, sizeof *t);
    if (!t) return nomem(im);
    int32_t type = a->type;
    if (type == 0) type = a->t ? OX_AT_TENSOR : a->has_f ? OX_AT_FLOAT : a->has_i ? OX_AT_INT : 0;
    int want = strcmp(a->name, "value") == 0          ? OX_AT_TENSOR
               : strcmp(a->name, "value_float") == 0  ? OX_AT_FLOAT
               : strcmp(a->name, "value_floats") == 0 ? OX_AT_FLOATS
               : strcmp(a->name, "value_int") == 0    ? OX_AT_INT
                                                      : OX_AT_INTS;
    if (type != want || (want == OX_AT_TENSOR && !a->t))
        return ox_fail(im, n, DG_ERR_FORMAT, "attribute '%s' is %s, expected %s", a->name,
                       ox_attr_type_name(a->type), ox_attr_type_name(want));
    if (want == OX_AT_TENSOR) {
        *t = *a->t;
    } else {
        t->dtype = want == OX_AT_FLOAT || want == OX_AT_FLOATS ? OX_DT_FLOAT : OX_DT_INT64;
        int scalar = want == OX_AT_FLOAT || want == OX_AT_INT;
        t->ndims = scalar ? 0 : 1;
        if (!scalar && !(t->dims = ox_alloc(im->arena, sizeof *t->dims))) return nomem(im);
        if (!scalar) t->dims[0] = want == OX_AT_FLOATS ? a->n_floats : a->n_ints;
        if (want == OX_AT_FLOAT || want == OX_AT_INT) {
            /* a one-element copy, so that the tensor owns its values like the others */
            if (!(t->floats = ox_alloc(im->arena, sizeof(float))) ||
                !(t->ints = ox_alloc(im->arena, sizeof(int64_t))))
                return nomem(im);
            t->floats[0] = a->f;
            t->ints[0] = a->i;
        } else {
            t->floats = a->floats;
            t->ints = a->ints;
        }
        t->n_floats = want == OX_AT_FLOAT ? 1 : want == OX_AT_FLOATS ? a->n_floats : 0;
        t->n_ints = want == OX_AT_INT ? 1 : want == OX_AT_INTS ? a->n_ints : 0;
    }
    t->name = n->out[0];
    s = define(im, n, n->out[0], V_CONST, NULL, t);
    if (s != DG_OK) return s;
    /* where it stands, so that a model exported again keeps its order */
    int fits = t->dtype == OX_DT_FLOAT && t->ndims <= DG_MAX_DIMS && !t->external && !t->segmented;
    for (int i = 0; fits && i < t->ndims; i++) fits = t->dims[i] >= 1;
    if (fits) return resolve(im, n, n->out[0], "the constant") ? DG_OK : dg_graph_status(im->g);
    return DG_OK;
}

static const ox_op_form *form_of(const char *op_type) {
    for (const ox_op_form *f = ox_op_forms; f->dg_name || f->onnx_type; f++)
        if (f->onnx_type && f->import_fn && strcmp(f->onnx_type, op_type) == 0) return f;
    return NULL;
}

/* "Abs, Add, ..." for the message about an unsupported op. */
static void supported_list(char *buf, size_t size) {
    size_t used = 0;
    buf[0] = 0;
    for (const ox_op_form *f = ox_op_forms; f->dg_name || f->onnx_type; f++) {
        if (!f->onnx_type || !f->import_fn) continue;
        int k = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", f->onnx_type);
        if (k < 0 || (size_t)k >= size - used) break;
        used += (size_t)k;
    }
    if (used + 11 < size) snprintf(buf + used, size - used, ", Constant");
}

/* The layer scope of a node named "/fc1/Gemm" or "fc1/Gemm": "fc1"; NULL without one. */
static char *scope_of(ox_importer *im, const char *name) {
    while (*name == '/') name++;
    const char *slash = strrchr(name, '/');
    if (!slash || slash == name) return NULL;
    return ox_strndup(im->arena, name, (size_t)(slash - name));
}

static int default_domain(const char *d) { return !d[0] || strcmp(d, "ai.onnx") == 0; }

static dg_status import_node(ox_importer *im, const ox_node *n) {
    if (!default_domain(n->domain))
        return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                       "op '%.100s' of domain '%.100s' is not "
                       "supported (only ai.onnx ops)",
                       n->op_type, n->domain);
    int constant = strcmp(n->op_type, "Constant") == 0;
    const ox_op_form *f = constant ? NULL : form_of(n->op_type);
    if (!constant && !f) {
        char list[400];
        supported_list(list, sizeof list);
        return ox_fail(im, n, DG_ERR_UNSUPPORTED, "op '%.100s' is not supported (dagrad reads %s)",
                       n->op_type, list);
    }
    if (n->n_out < 1 || !n->out[0][0]) return ox_fail(im, n, DG_ERR_FORMAT, "has no output");
    char *scope = scope_of(im, n->name);
    if (scope && dg_scope_push(im->g, scope) != DG_OK)
        return ox_fail(im, n, dg_graph_status(im->g), "%s", dg_graph_error(im->g));
    int before = im->n_vals, first = dg_graph_node_count(im->g);
    dg_status s = constant ? import_constant(im, n) : f->import_fn(im, n, f);
    if (scope) dg_scope_pop(im->g);
    if (s != DG_OK) return s;
    /* graphs are built at one row per batch input: what a run needs per row */
    for (int i = first; i < dg_graph_node_count(im->g); i++) {
        dg_node *x = dg_graph_node(im->g, i);
        if (dg_node_numel(x) > im->max_value) {
            char sb[64];
            return ox_fail(im, n, DG_ERR_UNSUPPORTED,
                           "makes a value of %lld elements %s (per batch row), more than "
                           "dg_onnx_load_options.max_value_elements (%lld)",
                           (long long)dg_node_numel(x),
                           dg_shape_str(dg_node_shape(x), sb, sizeof sb), (long long)im->max_value);
        }
    }
    /* every named output must now be defined (the table sets what dagrad can compute) */
    for (int i = 0; i < n->n_out; i++) {
        if (!n->out[i][0]) continue;
        int idx;
        if (!ox_map_get(&im->map, n->out[i], &idx) || idx < before)
            return ox_fail(im, n, DG_ERR_UNSUPPORTED, "output %d ('%.200s') is not supported", i,
                           n->out[i]);
    }
    return DG_OK;
}

/* A graph input: FLOAT, every dimension fixed but a symbolic or unknown first one. */
static dg_status import_input(ox_importer *im, const ox_value *v, int index) {
    char b[24];
    const char *what = im->what;
    if (!v->name[0])
        return dg_set_error(im->g, DG_ERR_FORMAT, "%s: graph input %d has no name", what, index);
    if (!v->has_type || !v->is_tensor)
        return dg_set_error(im->g, DG_ERR_UNSUPPORTED, "%s: graph input '%.200s' is not a tensor",
                            what, v->name);
    if (v->elem != OX_DT_FLOAT)
        return dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                            "%s: graph input '%.200s' is %s; dagrad computes in FLOAT", what,
                            v->name, ox_dtype_name(v->elem, b, sizeof b));
    if (!v->has_shape)
        return dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                            "%s: graph input '%.200s' has no shape (dagrad needs every dimension "
                            "but the first)",
                            what, v->name);
    if (v->ndims > DG_MAX_DIMS)
        return dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                            "%s: graph input '%.200s' has %d dimensions (at most %d)", what,
                            v->name, v->ndims, DG_MAX_DIMS);
    dg_shape s = dg_shape0();
    s.ndim = v->ndims;
    int64_t row = 1;
    for (int i = 0; i < v->ndims; i++) {
        int64_t d = v->dims[i].value;
        if (i == 0 && (v->dims[i].param || d < 0)) {
            s.dim[0] = DG_BATCH;
            continue;
        }
        if (d < 1)
            return dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                                "%s: graph input '%.200s': dimension %d is %s%lld (only the first "
                                "may be symbolic, none empty)",
                                what, v->name, i, d < 0 ? "symbolic " : "", (long long)d);
        if (d > im->input_budget / row)
            return dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                                "%s: graph inputs hold more than %lld elements per batch row "
                                "(dg_onnx_load_options.max_input_elements), at input '%.200s'",
                                what, (long long)im->input_budget, v->name);
        row *= d;
        s.dim[i] = d;
    }
    im->input_budget -= row;
    dg_node *x = dg_input(im->g, v->name, s);
    if (!x) return dg_error_prefix(im->g, what);
    return define(im, NULL, v->name, V_INPUT, x, NULL);
}

static dg_status check_model(ox_importer *im) {
    const ox_model *m = im->m;
    if (!m->has_graph)
        return dg_set_error(im->g, DG_ERR_FORMAT,
                            "%s: the file holds no graph (is it an ONNX "
                            "model?)",
                            im->what);
    if (m->ir_version < 3)
        return dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                            "%s: IR version %lld is not supported (3 or later)", im->what,
                            (long long)m->ir_version);
    im->opset = -1;
    for (int i = 0; i < m->n_opsets; i++)
        if (default_domain(m->opsets[i].domain)) im->opset = m->opsets[i].version;
    if (im->opset < 0)
        return dg_set_error(im->g, DG_ERR_FORMAT, "%s: the model imports no ai.onnx opset",
                            im->what);
    if (im->opset < 13 || im->opset > 21)
        return dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                            "%s: ai.onnx opset %lld is not supported (13 to 21; convert the "
                            "model with onnx.version_converter)",
                            im->what, (long long)im->opset);
    if (m->graph.n_sparse)
        return dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                            "%s: sparse initializers are not "
                            "supported",
                            im->what);
    return DG_OK;
}

static dg_status build(ox_importer *im, dg_onnx_model *out) {
    const ox_graph *gr = &im->m->graph;
    dg_status s = check_model(im);
    for (int i = 0; s == DG_OK && i < gr->n_inits; i++) {
        const ox_tensor *t = &gr->inits[i];
        if (!t->name[0])
            return dg_set_error(im->g, DG_ERR_FORMAT, "%s: initializer %d has no name", im->what,
                                i);
        s = define(im, NULL, t->name, V_INIT, NULL, t);
    }
    /* inputs, except those that only give an initializer's type (IR < 4 listed them all) */
    int n_inputs = 0;
    dg_node **inputs = NULL, **outputs = NULL;
    if (s == DG_OK && gr->n_inputs &&
        !(inputs = ox_alloc(im->arena, (size_t)gr->n_inputs * sizeof *inputs)))
        s = nomem(im);
    for (int i = 0; s == DG_OK && i < gr->n_inputs; i++) {
        int idx;
        if (ox_map_get(&im->map, gr->inputs[i].name, &idx) && im->vals[idx].kind == V_INIT)
            continue;
        s = import_input(im, &gr->inputs[i], i);
        if (s == DG_OK) inputs[n_inputs++] = im->vals[im->n_vals - 1].node;
    }
    for (int i = 0; s == DG_OK && i < gr->n_nodes; i++) {
        im->cur = i;
        s = import_node(im, &gr->nodes[i]);
    }
    im->cur = -1;
    if (s == DG_OK && gr->n_outputs < 1)
        s = dg_set_error(im->g, DG_ERR_FORMAT, "%s: the graph has no output", im->what);
    if (s == DG_OK && !(outputs = ox_alloc(im->arena, (size_t)gr->n_outputs * sizeof *outputs)))
        s = nomem(im);
    for (int i = 0; s == DG_OK && i < gr->n_outputs; i++) {
        const ox_value *v = &gr->outputs[i];
        char b[24];
        if (v->has_type && (!v->is_tensor || (v->elem && v->elem != OX_DT_FLOAT))) {
            s = dg_set_error(im->g, DG_ERR_UNSUPPORTED,
                             "%s: graph output '%.200s' is %s; dagrad computes FLOAT tensors",
                             im->what, v->name,
                             v->is_tensor ? ox_dtype_name(v->elem, b, sizeof b) : "not a tensor");
            break;
        }
        for (int k = 0; k < i && s == DG_OK; k++)
            if (strcmp(gr->outputs[k].name, v->name) == 0)
                s = dg_set_error(im->g, DG_ERR_FORMAT, "%s: graph output '%.200s' is listed twice",
                                 im->what, v->name);
        if (s != DG_OK) break;
        outputs[i] = resolve(im, NULL, v->name, "graph output");
        if (!outputs[i]) s = dg_graph_status(im->g);
    }
    if (s != DG_OK || !out) return s;
    out->n_inputs = n_inputs;
    out->n_outputs = gr->n_outputs;
    out->inputs = malloc((size_t)(n_inputs ? n_inputs : 1) * sizeof *out->inputs);
    out->outputs = malloc((size_t)gr->n_outputs * sizeof *out->outputs);
    /* the names in one block after their pointers */
    size_t bytes = (size_t)gr->n_outputs * sizeof(char *);
    for (int i = 0; i < gr->n_outputs; i++) bytes += strlen(gr->outputs[i].name) + 1;
    out->output_names = malloc(bytes);
    if (!out->inputs || !out->outputs || !out->output_names) {
        dg_onnx_model_free(out);
        return nomem(im);
    }
    char *text = (char *)(out->output_names + gr->n_outputs);
    for (int i = 0; i < gr->n_outputs; i++) {
        size_t len = strlen(gr->outputs[i].name) + 1;
        memcpy(text, gr->outputs[i].name, len);
        out->output_names[i] = text;
        text += len;
    }
    if (n_inputs) memcpy(out->inputs, inputs, (size_t)n_inputs * sizeof *inputs);
    memcpy(out->outputs, outputs, (size_t)gr->n_outputs * sizeof *outputs);
    out->opset = im->opset;
    out->ir_version = im->m->ir_version;
    return DG_OK;
}

static dg_status load(dg_graph *g, const char *what, const unsigned char *data, size_t size,
                      const dg_onnx_load_options *opts, dg_onnx_model *out) {
    ox_arena arena = {0};
    ox_model m;
    char err[400];
    dg_status s = ox_parse_model(data, size, &arena, &m, err, sizeof err);
    if (s != DG_OK) {
        ox_arena_free(&arena);
        return dg_set_error(g, s, "%s: %s%s", what,
                            s == DG_ERR_FORMAT ? "malformed ONNX file: " : "", err);
    }
    ox_importer im;
    memset(&im, 0, sizeof im);
    im.g = g;
    im.what = what;
    im.m = &m;
    im.arena = &arena;
    im.cur = -1;
    im.input_budget =
        opts && opts->max_input_elements > 0 ? opts->max_input_elements : (int64_t)1 << 26;
    im.max_value =
        opts && opts->max_value_elements > 0 ? opts->max_value_elements : (int64_t)1 << 28;
    arena.limit = 0; /* what the import adds is bounded by the parsed model */
    dg_mark mark = dg_graph_mark(g);
    s = build(&im, out);
    if (s != DG_OK) dg_graph_rollback(g, mark, NULL);
    free(im.vals);
    ox_map_free(&im.map);
    ox_arena_free(&arena);
    return s;
}

dg_status dg_onnx_load_mem(dg_graph *g, const void *data, size_t size,
                           const dg_onnx_load_options *opts, dg_onnx_model *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "onnx_load: graph is NULL");
    if (!data && size) return dg_set_error(g, DG_ERR_NULL, "onnx_load: data is NULL");
    return load(g, "onnx_load", data ? data : (const void *)"", size, opts, out);
}

dg_status dg_onnx_load(dg_graph *g, const char *path, const dg_onnx_load_options *opts,
                       dg_onnx_model *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "onnx_load: graph is NULL");
    if (!path) return dg_set_error(g, DG_ERR_NULL, "onnx_load: path is NULL");
    char what[DG__WHAT_SIZE];
    dg__what(what, sizeof what, "onnx_load", path);
    unsigned char *buf = NULL;
    size_t size = 0;
    dg_status s = dg__read_file(g, what, path, &buf, &size);
    if (s == DG_OK) s = load(g, what, buf ? buf : (const unsigned char *)"", size, opts, out);
    free(buf);
    return s;
}

void dg_onnx_model_free(dg_onnx_model *m) {
    if (!m) return;
    free(m->inputs);
    free(m->outputs);
    free((void *)m->output_names);
    memset(m, 0, sizeof *m);
}
