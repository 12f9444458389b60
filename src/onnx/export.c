/* dg_onnx_save: the part of a graph between chosen inputs and outputs, as an ONNX model.
 *
 * 1. Marking: from the outputs back to the chosen inputs, the nodes the outputs need, and the
 *    form that will write each: a custom exporter, a composite row of the table (which
 *    stands for several nodes, so only what it reads is followed: a dropout output x * mask
 *    is x in evaluation form, its mask is not followed), or the op's plain row.
 * 2. Names: inputs, parameters, state, outputs and named nodes keep their names (made unique
 *    with "_1", "_2" when two share one); other results are named when written,
 *    "<layer>/<op>".
 * 3. Writing, in creation order (a topological order): parameters and state become
 *    initializers, constants Constant nodes, and each op node is written by the exporter
 *    given for its definition in the options or else by its row in the table of ONNX forms
 *    (ops.c), through the same writer calls a custom exporter uses. A matmul whose only
 *    reader is a bias add is left to that add, which writes one Gemm.
 * 4. Only when the whole model is built are its bytes written (atomically for files), so a
 *    failed export writes nothing.
 * This file knows no op: what each op becomes is in the table. */
#include "onnx_internal.h"

#include "../io/io_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { IN_SET = 1, IS_INPUT = 2, IS_OUTPUT = 4, FUSED = 8, PRODUCED = 16, EMITTED = 32 };

struct dg_onnx_writer {
    dg_graph *g;
    const char *what; /* "onnx_save 'path'", for messages */
    int opset;
    const char *graph_name, *batch_name;
    const dg_onnx_save_options *opts;
    int n;                   /* graph nodes */
    unsigned char *flags;    /* per node id */
    int *consumers;          /* readers in the exported set, per node id */
    int *consumer;           /* the last of them */
    int *alias;              /* the id a node is unchanged from (dropout), or -1 */
    const ox_op_form **form; /* the table row writing each op node, or NULL */
    dg_node ***reads;        /* what each op node's form reads (its inputs, or a composite's) */
    int *n_reads;
    const char **names; /* value names per node id */
    ox_arena arena;
    ox_map values, node_names; /* names in use */
    ox_node *nodes;
    int n_nodes, cap_nodes;
    int *attr_caps; /* per ONNX node: capacity of its attrs array */
    int cap_attr_caps;
    ox_tensor *inits;
    int n_inits, cap_inits;
    ox_opset *opsets;
    int n_opsets, cap_opsets;
    int cur;  /* id of the node being written, or -1 */
    int last; /* index of the last ONNX node added, or -1 */
};

static dg_status nomem(dg_onnx_writer *w) {
    return dg_set_error(w->g, DG_ERR_NOMEM, "%s: out of memory", w->what);
}

/* grows *arr (of *cap elements of size elem) to hold n + 1 */
static int grow(void **arr, int *cap, int n, size_t elem) {
    if (n < *cap) return 1;
    int c = *cap ? 2 * *cap : 16;
    void *p = realloc(*arr, (size_t)c * elem);
    if (!p) return 0;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(c - *cap) * elem);
    *arr = p;
    *cap = c;
    return 1;
}

/* A name not yet in `set`: base itself, else base_1, base_2, ...; added to the set. */
static const char *unique(dg_onnx_writer *w, ox_map *set, const char *base) {
    const char *name = NULL;
    if (!ox_map_get(set, base, NULL)) {
        name = ox_strdup(&w->arena, base);
    } else {
        size_t len = strlen(base) + 24;
        char *buf = ox_alloc(&w->arena, len);
        if (!buf) return NULL;
        for (long k = 1;; k++) {
            snprintf(buf, len, "%s_%ld", base, k);
            if (!ox_map_get(set, buf, NULL)) break;
        }
        name = buf;
    }
    if (!name || ox_map_put(set, name, 0) != DG_OK) return NULL;
    return name;
}

/* "<scope>/<what>" or "<what>". */
static const char *scoped(dg_onnx_writer *w, const dg_node *n, const char *what) {
    const char *scope = dg_node_scope(n);
    if (!scope) return what;
    size_t len = strlen(scope) + strlen(what) + 2;
    char *s = ox_alloc(&w->arena, len);
    if (s) snprintf(s, len, "%s/%s", scope, what);
    return s;
}

static dg_node *node_at(const dg_onnx_writer *w, int id) { return dg_graph_node(w->g, id); }

/* "node 12 'hidden1/W' (param)" for messages. */
static const char *describe(const dg_node *n, char *buf, size_t size) {
    const char *name = dg_node_name(n);
    snprintf(buf, size, "node %d%s%.200s%s (%s)", dg_node_id(n), name ? " '" : "", name ? name : "",
             name ? "'" : "", dg_node_op_name(n));
    return buf;
}

static dg_status emit_leaf(dg_onnx_writer *w, int id);

static int owned(const dg_onnx_writer *w, const dg_node *n) {
    return n && dg_node_graph(n) == w->g && dg_node_id(n) < w->n;
}

/* ---- what the table and exporters call ---- */

int ox_consumers(const dg_onnx_writer *w, const dg_node *n) {
    return owned(w, n) ? w->consumers[dg_node_id(n)] : 0;
}
dg_node *ox_sole_consumer(const dg_onnx_writer *w, const dg_node *n) {
    return ox_consumers(w, n) == 1 ? node_at(w, w->consumer[dg_node_id(n)]) : NULL;
}
int ox_writer_opset(const dg_onnx_writer *w) { return w->opset; }
const ox_op_form *ox_form_of(const dg_onnx_writer *w, const dg_node *n) {
    return owned(w, n) ? w->form[dg_node_id(n)] : NULL;
}
int ox_is_output(const dg_onnx_writer *w, const dg_node *n) {
    return owned(w, n) && (w->flags[dg_node_id(n)] & (IS_OUTPUT | IS_INPUT));
}
static const dg_onnx_exporter *custom_exporter(const dg_onnx_writer *w, const dg_op_def *op);
int ox_builtin(const dg_onnx_writer *w, const dg_node *n) {
    return owned(w, n) && dg_node_kind_of(n) == DG_OP_NODE && !custom_exporter(w, dg_node_op(n));
}
void ox_fuse(dg_onnx_writer *w, const dg_node *n) {
    if (owned(w, n)) w->flags[dg_node_id(n)] |= FUSED;
}

const char *dg_onnx_name(dg_onnx_writer *w, const dg_node *n) {
    if (!w) return dg_set_error(NULL, DG_ERR_NULL, "onnx_name: writer is NULL"), NULL;
    char buf[300];
    if (!owned(w, n) || !(w->flags[dg_node_id(n)] & IN_SET))
        return dg_set_error(w->g, DG_ERR_ARG, "%s: %s is not part of the exported model", w->what,
                            n ? describe(n, buf, sizeof buf) : "NULL node"),
               NULL;
    int id = dg_node_id(n);
    while (w->alias[id] >= 0) id = w->alias[id];
    if (!w->names[id]) {
        /* results without a name of their own: "<layer>/<op>" */
        const char *base = dg_node_name(node_at(w, id));
        if (!base) base = scoped(w, node_at(w, id), dg_node_op_name(node_at(w, id)));
        if (!base || !(w->names[id] = unique(w, &w->values, base))) return nomem(w), NULL;
    }
    if (dg_node_kind_of(node_at(w, id)) != DG_OP_NODE && !(w->flags[id] & (IS_INPUT | EMITTED)) &&
        emit_leaf(w, id) != DG_OK)
        return NULL;
    return w->names[id];
}

const char *dg_onnx_temp(dg_onnx_writer *w, const char *suffix) {
    if (!w || w->cur < 0 || !suffix) return NULL;
    const char *own = dg_onnx_name(w, node_at(w, w->cur));
    if (!own) return NULL;
    size_t len = strlen(own) + strlen(suffix) + 2;
    char *base = ox_alloc(&w->arena, len);
    if (!base) return nomem(w), NULL;
    snprintf(base, len, "%s/%s", own, suffix);
    const char *name = unique(w, &w->values, base);
    if (!name) nomem(w);
    return name;
}

static dg_status need_current(dg_onnx_writer *w, const char *who) {
    if (!w) return dg_set_error(NULL, DG_ERR_NULL, "%s: writer is NULL", who);
    if (w->cur < 0)
        return dg_set_error(w->g, DG_ERR_STATE, "%s: only an exporter may add nodes", who);
    return DG_OK;
}

static dg_status add_node(dg_onnx_writer *w, const char *op_type, int n_inputs,
                          const char *const *inputs, const char *output, const char *node_base);

dg_status dg_onnx_add_node(dg_onnx_writer *w, const char *op_type, int n_inputs,
                           const char *const *inputs, const char *output) {
    return add_node(w, op_type, n_inputs, inputs, output, NULL);
}

/* node_base: the node's name before it is made unique; NULL: "<layer>/<op_type>" */
static dg_status add_node(dg_onnx_writer *w, const char *op_type, int n_inputs,
                          const char *const *inputs, const char *output, const char *node_base) {
    dg_status s = need_current(w, "onnx_add_node");
    if (s != DG_OK) return s;
    if (!op_type || !op_type[0] || n_inputs < 0 || (n_inputs > 0 && !inputs))
        return dg_set_error(w->g, DG_ERR_ARG, "%s: onnx_add_node needs an op type and inputs",
                            w->what);
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i])
            return dg_set_error(w->g, DG_ERR_ARG, "%s: onnx_add_node: input %d of %s is NULL",
                                w->what, i, op_type);
    const dg_node *self = node_at(w, w->cur);
    const char *own = dg_onnx_name(w, self);
    if (!own) return dg_graph_status(w->g);
    if (!output) output = own;
    if (!grow((void **)&w->nodes, &w->cap_nodes, w->n_nodes, sizeof *w->nodes) ||
        !grow((void **)&w->attr_caps, &w->cap_attr_caps, w->n_nodes, sizeof *w->attr_caps))
        return nomem(w);
    ox_node *o = &w->nodes[w->n_nodes];
    memset(o, 0, sizeof *o);
    const char *base = node_base ? node_base : scoped(w, self, op_type);
    o->name = base ? unique(w, &w->node_names, base) : NULL;
    o->op_type = ox_strdup(&w->arena, op_type);
    o->domain = "";
    o->in = n_inputs ? ox_alloc(&w->arena, (size_t)n_inputs * sizeof *o->in) : NULL;
    o->out = ox_alloc(&w->arena, sizeof *o->out);
    if (!o->name || !o->op_type || (n_inputs && !o->in) || !o->out) return nomem(w);
    for (int i = 0; i < n_inputs; i++)
        if (!(o->in[i] = ox_strdup(&w->arena, inputs[i]))) return nomem(w);
    o->n_in = n_inputs;
    o->out[0] = output == own ? own : ox_strdup(&w->arena, output);
    if (!o->out[0]) return nomem(w);
    o->n_out = 1;
    if (strcmp(output, own) == 0) w->flags[w->cur] |= PRODUCED;
    w->attr_caps[w->n_nodes] = 0;
    w->last = w->n_nodes++;
    return DG_OK;
}

dg_status dg_onnx_set_domain(dg_onnx_writer *w, const char *domain, int64_t version) {
    dg_status s = need_current(w, "onnx_set_domain");
    if (s != DG_OK) return s;
    if (w->last < 0 || !domain || version < 1)
        return dg_set_error(w->g, DG_ERR_ARG,
                            "%s: onnx_set_domain needs a node, a domain and a version >= 1",
                            w->what);
    const char *d = ox_strdup(&w->arena, domain);
    if (!d) return nomem(w);
    w->nodes[w->last].domain = d;
    if (!domain[0] || strcmp(domain, "ai.onnx") == 0) return DG_OK;
    for (int i = 0; i < w->n_opsets; i++) {
        if (strcmp(w->opsets[i].domain, domain) != 0) continue;
        if (w->opsets[i].version != version)
            return dg_set_error(w->g, DG_ERR_ARG,
                                "%s: domain '%s' declared with versions %lld and %lld", w->what,
                                domain, (long long)w->opsets[i].version, (long long)version);
        return DG_OK;
    }
    if (!grow((void **)&w->opsets, &w->cap_opsets, w->n_opsets, sizeof *w->opsets)) return nomem(w);
    w->opsets[w->n_opsets++] = (ox_opset){d, version};
    return DG_OK;
}

/* A new attribute on the last node, or NULL with the error set. */
static ox_attr *new_attr(dg_onnx_writer *w, const char *name, int32_t type) {
    if (need_current(w, "onnx_attr") != DG_OK) return NULL;
    if (w->last < 0 || !name || !name[0])
        return dg_set_error(w->g, DG_ERR_ARG, "%s: an attribute needs a node and a name", w->what),
               NULL;
    ox_node *o = &w->nodes[w->last];
    for (int i = 0; i < o->n_attrs; i++)
        if (strcmp(o->attrs[i].name, name) == 0)
            return dg_set_error(w->g, DG_ERR_ARG, "%s: node '%s' (%s) has attribute '%s' twice",
                                w->what, o->name, o->op_type, name),
                   NULL;
    int *cap = &w->attr_caps[w->last];
    if (o->n_attrs == *cap) {
        int c = *cap ? 2 * *cap : 4;
        ox_attr *a = ox_alloc(&w->arena, (size_t)c * sizeof *a);
        if (!a) return nomem(w), NULL;
        if (o->n_attrs) memcpy(a, o->attrs, (size_t)o->n_attrs * sizeof *a);
        o->attrs = a;
        *cap = c;
    }
    ox_attr *a = &o->attrs[o->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = ox_strdup(&w->arena, name))) return nomem(w), NULL;
    a->type = type;
    o->n_attrs++;
    return a;
}

dg_status dg_onnx_attr_int(dg_onnx_writer *w, const char *name, int64_t value) {
    ox_attr *a = new_attr(w, name, OX_AT_INT);
    if (!a) return w ? dg_graph_status(w->g) : DG_ERR_NULL;
    a->i = value;
    return DG_OK;
}

dg_status dg_onnx_attr_float(dg_onnx_writer *w, const char *name, float value) {
    ox_attr *a = new_attr(w, name, OX_AT_FLOAT);
    if (!a) return w ? dg_graph_status(w->g) : DG_ERR_NULL;
    a->f = value;
    return DG_OK;
}

dg_status dg_onnx_attr_ints(dg_onnx_writer *w, const char *name, int n, const int64_t *values) {
    if (w && (n < 0 || (n > 0 && !values)))
        return dg_set_error(w->g, DG_ERR_ARG, "%s: attribute '%s': bad value list", w->what,
                            name ? name : "(null)");
    ox_attr *a = new_attr(w, name, OX_AT_INTS);
    if (!a) return w ? dg_graph_status(w->g) : DG_ERR_NULL;
    if (n && !(a->ints = ox_alloc(&w->arena, (size_t)n * sizeof *a->ints))) return nomem(w);
    if (n) memcpy(a->ints, values, (size_t)n * sizeof *values);
    a->n_ints = n;
    return DG_OK;
}

/* A tensor of `dtype` with the given dims and a copy of its values. */
static ox_tensor *make_tensor(dg_onnx_writer *w, ox_tensor *t, const char *name, int32_t dtype,
                              int ndims, const int64_t *dims, const void *values) {
    int64_t numel = 1;
    for (int i = 0; i < ndims; i++) numel *= dims[i];
    size_t bytes = (size_t)numel * (dtype == OX_DT_INT64 ? 8 : 4);
    t->name = name;
    t->dtype = dtype;
    t->ndims = ndims;
    t->dims = ndims ? ox_alloc(&w->arena, (size_t)ndims * sizeof *t->dims) : NULL;
    void *copy = ox_alloc(&w->arena, bytes);
    if ((ndims && !t->dims) || !copy) return NULL;
    if (ndims) memcpy(t->dims, dims, (size_t)ndims * sizeof *dims);
    memcpy(copy, values, bytes);
    t->host = copy;
    return t;
}

/* Adds an initializer named `name` (already unique) with a copy of the values. */
static dg_status add_init(dg_onnx_writer *w, const char *name, int32_t dtype, int ndims,
                          const int64_t *dims, const void *values) {
    if (!grow((void **)&w->inits, &w->cap_inits, w->n_inits, sizeof *w->inits)) return nomem(w);
    ox_tensor *t = &w->inits[w->n_inits];
    memset(t, 0, sizeof *t);
    if (!make_tensor(w, t, name, dtype, ndims, dims, values)) return nomem(w);
    w->n_inits++;
    return DG_OK;
}

static void dims_of(dg_shape s, int64_t *dims) {
    for (int i = 0; i < s.ndim; i++) dims[i] = s.dim[i];
}

/* A Constant node writing `name` with the given float values. */
static dg_status add_constant(dg_onnx_writer *w, const char *name, dg_shape shape,
                              const float *data) {
    dg_status s = dg_onnx_add_node(w, "Constant", 0, NULL, name);
    if (s != DG_OK) return s;
    ox_attr *a = new_attr(w, "value", OX_AT_TENSOR);
    if (!a) return dg_graph_status(w->g);
    int64_t dims[DG_MAX_DIMS];
    dims_of(shape, dims);
    if (!(a->t = ox_alloc(&w->arena, sizeof *a->t)) ||
        !make_tensor(w, a->t, "", OX_DT_FLOAT, shape.ndim, dims, data))
        return nomem(w);
    return DG_OK;
}

const char *dg_onnx_constant(dg_onnx_writer *w, const char *suffix, dg_shape shape,
                             const float *data) {
    if (need_current(w, "onnx_constant") != DG_OK) return NULL;
    if (!data || dg_shape_numel(shape) < 1)
        return dg_set_error(w->g, DG_ERR_ARG, "%s: onnx_constant needs data and a valid shape",
                            w->what),
               NULL;
    const char *name = dg_onnx_temp(w, suffix ? suffix : "const");
    if (!name || add_constant(w, name, shape, data) != DG_OK) return NULL;
    return name;
}

const char *dg_onnx_int64s(dg_onnx_writer *w, const char *suffix, int n, const int64_t *values) {
    if (need_current(w, "onnx_int64s") != DG_OK) return NULL;
    if (n < 0 || (n > 0 && !values))
        return dg_set_error(w->g, DG_ERR_ARG, "%s: onnx_int64s needs values", w->what), NULL;
    const char *name = dg_onnx_temp(w, suffix ? suffix : "ints");
    int64_t dims[1] = {n};
    if (!name ||
        add_init(w, name, OX_DT_INT64, 1, dims, n ? values : (const int64_t[]){0}) != DG_OK)
        return NULL;
    return name;
}

/* ---- building the model ---- */

static const dg_onnx_exporter *custom_exporter(const dg_onnx_writer *w, const dg_op_def *op) {
    const dg_onnx_save_options *o = w->opts;
    for (int i = 0; o && i < o->n_exporters; i++)
        if (o->exporters[i].op == op && o->exporters[i].fn) return &o->exporters[i];
    return NULL;
}

/* The row writing op node n: a composite row that recognises it (its reads and identity
 * filled in), else the op's plain row, else NULL. */
static const ox_op_form *find_form(const dg_node *n, dg_node **reads, int cap, int *n_reads,
                                   int *identity) {
    const char *name = dg_node_op_name(n);
    const ox_op_form *plain = NULL;
    *identity = 0;
    for (const ox_op_form *f = ox_op_forms; f->dg_name || f->onnx_type; f++) {
        if (!f->dg_name || strcmp(f->dg_name, name) != 0) continue;
        if (f->composite) {
            int k = f->composite(n, reads, cap, identity);
            if (k > 0) {
                *n_reads = k;
                return f;
            }
            *identity = 0;
        } else if (f->export_fn && !plain) {
            plain = f;
        }
    }
    return plain;
}

/* Step 1: marks what the outputs need; fails on an input node that is not exported. */
static dg_status mark(dg_onnx_writer *w, int n_out, dg_node *const *outputs) {
    /* depth first; a node is pushed once per reader, so the stack grows as needed */
    int *stack = NULL, top = 0, cap = 0;
    for (int i = 0; i < n_out; i++) {
        if (!grow((void **)&stack, &cap, top, sizeof *stack)) return free(stack), nomem(w);
        stack[top++] = dg_node_id(outputs[i]);
    }
    dg_status s = DG_OK;
    enum { CAP = 16 };
    while (top > 0 && s == DG_OK) {
        int id = stack[--top];
        if (w->flags[id] & IN_SET) continue;
        w->flags[id] |= IN_SET;
        if (w->flags[id] & IS_INPUT) continue;
        dg_node *n = node_at(w, id);
        char buf[300];
        if (dg_node_kind_of(n) == DG_INPUT) {
            s = dg_set_error(w->g, DG_ERR_ARG,
                             "%s: the outputs depend on %s, which is not among the exported "
                             "inputs",
                             w->what, describe(n, buf, sizeof buf));
            break;
        }
        if (dg_node_kind_of(n) != DG_OP_NODE) continue;
        dg_node *reads[CAP];
        int k = 0, identity = 0;
        if (!custom_exporter(w, dg_node_op(n)))
            w->form[id] = find_form(n, reads, CAP, &k, &identity);
        if (!w->form[id] || !w->form[id]->composite) {
            /* a custom exporter or a plain row reads the node's inputs */
            k = dg_node_input_count(n);
        } else if (identity) {
            w->alias[id] = dg_node_id(reads[0]);
        }
        if (k && !(w->reads[id] = ox_alloc(&w->arena, (size_t)k * sizeof *w->reads[id]))) {
            s = nomem(w);
            break;
        }
        for (int i = 0; i < k; i++) {
            w->reads[id][i] =
                w->form[id] && w->form[id]->composite ? reads[i] : dg_node_input(n, i);
            if (!grow((void **)&stack, &cap, top, sizeof *stack)) {
                s = nomem(w);
                break;
            }
            stack[top++] = dg_node_id(w->reads[id][i]);
        }
        w->n_reads[id] = k;
    }
    free(stack);
    if (s != DG_OK) return s;
    for (int id = 0; id < w->n; id++) {
        if (!(w->flags[id] & IN_SET) || (w->flags[id] & IS_INPUT)) continue;
        for (int i = 0; i < w->n_reads[id]; i++) {
            int in = dg_node_id(w->reads[id][i]);
            w->consumers[in]++;
            w->consumer[in] = id;
        }
    }
    return DG_OK;
}

/* Step 2: the names that are kept. */
static dg_status reserve_names(dg_onnx_writer *w, int n_in, dg_node *const *inputs, int n_out,
                               dg_node *const *outputs, const char **out_names) {
    for (int i = 0; i < n_in; i++) {
        const char *name = dg_node_name(inputs[i]);
        if (!(w->names[dg_node_id(inputs[i])] = unique(w, &w->values, name ? name : "input")))
            return nomem(w);
    }
    /* parameters and state by name, or as checkpoints call them (param#k, state#k) */
    int k_param = 0, k_state = 0;
    for (int id = 0; id < w->n; id++) {
        dg_node *n = node_at(w, id);
        dg_node_kind kind = dg_node_kind_of(n);
        int k = kind == DG_PARAM ? k_param++ : kind == DG_STATE ? k_state++ : -1;
        if (k < 0 || (w->flags[id] & (IN_SET | IS_INPUT)) != IN_SET) continue;
        char buf[32];
        const char *name = dg_node_name(n);
        if (!name) snprintf(buf, sizeof buf, "%s#%d", kind == DG_PARAM ? "param" : "state", k);
        if (!(w->names[id] = unique(w, &w->values, name ? name : buf))) return nomem(w);
    }
    /* outputs: the names asked for, then the nodes' */
    const char *const *asked = w->opts ? w->opts->output_names : NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n_out; i++) {
            const char *name = asked ? asked[i] : NULL;
            if ((pass == 0) != (name != NULL)) continue;
            int id = dg_node_id(outputs[i]), used = 0;
            while (w->alias[id] >= 0) id = w->alias[id];
            if (!name) name = dg_node_name(outputs[i]) ? dg_node_name(outputs[i]) : "output";
            for (int k = 0; k < n_out; k++) used |= out_names[k] && strcmp(out_names[k], name) == 0;
            if (used && pass == 0)
                return dg_set_error(w->g, DG_ERR_ARG, "%s: output name '%.200s' is given twice",
                                    w->what, name);
            /* a value that already has this name (an input, a parameter) is the output itself */
            if (!used && w->names[id] && strcmp(w->names[id], name) == 0) {
                out_names[i] = w->names[id];
                continue;
            }
            if (pass == 0 && ox_map_get(&w->values, name, NULL))
                return dg_set_error(w->g, DG_ERR_ARG,
                                    "%s: output name '%.200s' is already the name of another "
                                    "value of the model",
                                    w->what, name);
            if (!(out_names[i] = unique(w, &w->values, name))) return nomem(w);
            /* an op's result is the output itself (the first time it is given); anything else
             * gets an Identity */
            if (dg_node_kind_of(outputs[i]) == DG_OP_NODE && id == dg_node_id(outputs[i]) &&
                !(w->flags[id] & IS_INPUT) && !w->names[id])
                w->names[id] = out_names[i];
        }
    }
    for (int id = 0; id < w->n; id++) {
        dg_node *n = node_at(w, id);
        if (!(w->flags[id] & IN_SET) || w->names[id] || w->alias[id] >= 0 || !dg_node_name(n))
            continue;
        if (!(w->names[id] = unique(w, &w->values, dg_node_name(n)))) return nomem(w);
    }
    return DG_OK;
}

/* An ox_value for a graph input or output: FLOAT, the node's shape, a leading batch
 * dimension symbolic. */
static dg_status make_value(dg_onnx_writer *w, ox_value *v, const char *name, const dg_node *n) {
    dg_shape s = dg_node_shape(n);
    v->name = name;
    v->has_type = v->is_tensor = v->has_shape = 1;
    v->elem = OX_DT_FLOAT;
    v->ndims = s.ndim;
    if (s.ndim && !(v->dims = ox_alloc(&w->arena, (size_t)s.ndim * sizeof *v->dims)))
        return nomem(w);
    for (int i = 0; i < s.ndim; i++) v->dims[i].value = s.dim[i];
    if (s.ndim && dg_node_batch_leading(n)) v->dims[0].param = w->batch_name;
    return DG_OK;
}

/* A parameter or state as an initializer, a constant as a Constant node, written where
 * they are first read: so their order is the order of use, which a model read back keeps.
 * The node being written stays the current one. */
static dg_status emit_leaf(dg_onnx_writer *w, int id) {
    dg_node *n = node_at(w, id);
    int cur = w->cur, last = w->last;
    dg_status s;
    w->flags[id] |= EMITTED;
    w->cur = id;
    if (dg_node_kind_of(n) == DG_CONST) {
        s = add_constant(w, w->names[id], dg_node_shape(n), dg_node_data(n));
    } else {
        int64_t dims[DG_MAX_DIMS];
        dims_of(dg_node_shape(n), dims);
        s = add_init(w, w->names[id], OX_DT_FLOAT, dg_node_shape(n).ndim, dims, dg_node_data(n));
    }
    w->cur = cur;
    w->last = last;
    return s;
}

/* Step 3: the nodes, in creation order. */
static dg_status write_nodes(dg_onnx_writer *w) {
    char buf[300];
    for (int id = 0; id < w->n; id++) {
        if ((w->flags[id] & (IN_SET | IS_INPUT)) != IN_SET || w->alias[id] >= 0) continue;
        dg_node *n = node_at(w, id);
        dg_status s = DG_OK;
        if (dg_node_kind_of(n) != DG_OP_NODE) continue; /* written where first read */
        w->cur = id;
        w->last = -1;
        {
            const dg_onnx_exporter *ex = custom_exporter(w, dg_node_op(n));
            const ox_op_form *f = ex ? NULL : w->form[id];
            if (!ex && !f) {
                w->cur = -1;
                return dg_set_error(w->g, DG_ERR_UNSUPPORTED,
                                    "%s: %s has no ONNX form (give its op definition an "
                                    "exporter in dg_onnx_save_options)",
                                    w->what, describe(n, buf, sizeof buf));
            }
            s = ex ? ex->fn(w, n, ex->ctx) : f->export_fn(w, n, (void *)f);
            if (s != DG_OK) {
                w->cur = -1;
                return dg_error_prefix(w->g, w->what);
            }
            if (!(w->flags[id] & (PRODUCED | FUSED))) {
                w->cur = -1;
                return dg_set_error(w->g, DG_ERR_STATE,
                                    "%s: the exporter of %s wrote no node computing its value "
                                    "'%s'",
                                    w->what, describe(n, buf, sizeof buf), dg_onnx_name(w, n));
            }
        }
        w->cur = -1;
        if (s != DG_OK) return s;
    }
    return DG_OK;
}

/* Steps 1-3: the whole model in w's arena. */
static dg_status build(dg_onnx_writer *w, int n_in, dg_node *const *inputs, int n_out,
                       dg_node *const *outputs, ox_model *m) {
    dg_graph *g = w->g;
    char buf[300];
    if (n_in < 0 || n_out < 1 || (n_in && !inputs) || !outputs)
        return dg_set_error(g, DG_ERR_ARG, "%s: needs at least one output (%d inputs, %d outputs)",
                            w->what, n_in, n_out);
    w->n = dg_graph_node_count(g);
    size_t n = (size_t)w->n;
    w->flags = calloc(n, 1);
    w->consumers = calloc(n, sizeof *w->consumers);
    w->consumer = calloc(n, sizeof *w->consumer);
    w->alias = malloc(n * sizeof *w->alias);
    w->names = calloc(n, sizeof *w->names);
    w->form = calloc(n, sizeof *w->form);
    w->reads = calloc(n, sizeof *w->reads);
    w->n_reads = calloc(n, sizeof *w->n_reads);
    const char **out_names = calloc((size_t)n_out, sizeof *out_names);
    if (!w->flags || !w->consumers || !w->consumer || !w->alias || !w->form || !w->reads ||
        !w->n_reads || !w->names || !out_names) {
        free(out_names);
        return nomem(w);
    }
    for (size_t i = 0; i < n; i++) w->alias[i] = -1;
    for (int pass = 0; pass < 2; pass++) {
        int count = pass ? n_out : n_in;
        dg_node *const *list = pass ? outputs : inputs;
        const char *what = pass ? "output" : "input";
        for (int i = 0; i < count; i++) {
            dg_node *x = list[i];
            if (!x && dg_graph_status(g) != DG_OK && dg_graph_error(g)[0]) {
                /* a call building it failed: keep its message as the cause */
                free(out_names);
                return dg_set_error(g, dg_graph_status(g), "%s: %s %d is NULL (after: %.300s)",
                                    w->what, what, i, dg_graph_error(g));
            }
            if (!x || dg_node_graph(x) != g) {
                free(out_names);
                return dg_set_error(g, x ? DG_ERR_GRAPH : DG_ERR_NULL, "%s: %s %d is %s", w->what,
                                    what, i, x ? "a node of another graph" : "NULL");
            }
            unsigned char bit = pass ? IS_OUTPUT : IS_INPUT;
            if (!pass && (w->flags[dg_node_id(x)] & bit)) {
                free(out_names);
                return dg_set_error(g, DG_ERR_ARG, "%s: %s is given twice as an %s", w->what,
                                    describe(x, buf, sizeof buf), what);
            }
            w->flags[dg_node_id(x)] |= bit;
        }
    }
    dg_status s = mark(w, n_out, outputs);
    if (s == DG_OK) s = reserve_names(w, n_in, inputs, n_out, outputs, out_names);
    if (s == DG_OK) s = write_nodes(w);
    /* outputs that are not an op's own result: an Identity */
    for (int i = 0; s == DG_OK && i < n_out; i++) {
        w->cur = dg_node_id(outputs[i]);
        w->last = -1;
        const char *src = dg_onnx_name(w, outputs[i]);
        if (!src)
            s = dg_graph_status(g);
        else if (strcmp(src, out_names[i]) != 0)
            s = add_node(w, "Identity", 1, &src, out_names[i], "Identity");
        w->cur = -1;
    }
    if (s == DG_OK) {
        ox_graph *gr = &m->graph;
        gr->name = w->graph_name;
        gr->nodes = w->nodes, gr->n_nodes = w->n_nodes;
        gr->inits = w->inits, gr->n_inits = w->n_inits;
        gr->n_inputs = n_in;
        gr->n_outputs = n_out;
        gr->inputs = n_in ? ox_alloc(&w->arena, (size_t)n_in * sizeof *gr->inputs) : NULL;
        gr->outputs = ox_alloc(&w->arena, (size_t)n_out * sizeof *gr->outputs);
        if ((n_in && !gr->inputs) || !gr->outputs) s = nomem(w);
        for (int i = 0; s == DG_OK && i < n_in; i++)
            s = make_value(w, &gr->inputs[i], w->names[dg_node_id(inputs[i])], inputs[i]);
        for (int i = 0; s == DG_OK && i < n_out; i++)
            s = make_value(w, &gr->outputs[i], out_names[i], outputs[i]);
    }
    free(out_names);
    if (s != DG_OK) return s;
    /* the default domain first, then the custom ones in the order used */
    if (!grow((void **)&w->opsets, &w->cap_opsets, w->n_opsets, sizeof *w->opsets)) return nomem(w);
    memmove(w->opsets + 1, w->opsets, (size_t)w->n_opsets * sizeof *w->opsets);
    w->opsets[0] = (ox_opset){"", w->opset};
    m->opsets = w->opsets;
    m->n_opsets = w->n_opsets + 1;
    /* the IR version that goes with the opset (onnx/helper.py's table) */
    m->ir_version = w->opset <= 14 ? 7 : w->opset <= 18 ? 8 : w->opset <= 20 ? 9 : 10;
    m->producer_name = "dagrad";
    m->has_graph = 1;
    return DG_OK;
}

static void writer_free(dg_onnx_writer *w) {
    free(w->flags), free(w->consumers), free(w->consumer), free(w->alias), free(w->names);
    free(w->form), free(w->reads), free(w->n_reads);
    free(w->nodes), free(w->attr_caps), free(w->inits), free(w->opsets);
    ox_map_free(&w->values), ox_map_free(&w->node_names);
    ox_arena_free(&w->arena);
}

static dg_status writer_init(dg_onnx_writer *w, dg_graph *g, const char *what,
                             const dg_onnx_save_options *opts) {
    memset(w, 0, sizeof *w);
    w->g = g;
    w->what = what;
    w->cur = w->last = -1;
    w->opts = opts;
    w->opset = opts && opts->opset ? opts->opset : 13;
    w->graph_name = opts && opts->graph_name ? opts->graph_name : "dagrad";
    w->batch_name = opts && opts->batch_name ? opts->batch_name : "N";
    if (w->opset < 13 || w->opset > 21)
        return dg_set_error(g, DG_ERR_ARG, "%s: opset %d is not supported (13 to 21)", what,
                            w->opset);
    if (!w->graph_name[0] || !w->batch_name[0])
        return dg_set_error(g, DG_ERR_ARG, "%s: the graph and batch names may not be empty", what);
    if (opts && (opts->n_exporters < 0 || (opts->n_exporters > 0 && !opts->exporters)))
        return dg_set_error(g, DG_ERR_ARG, "%s: %d exporters given without a list", what,
                            opts->n_exporters);
    return DG_OK;
}

static void sink_atomic(void *ctx, const void *data, size_t n) { dg__atomic_put(ctx, data, n); }

dg_status dg_onnx_save(dg_graph *g, const char *path, int n_inputs, dg_node *const *inputs,
                       int n_outputs, dg_node *const *outputs, const dg_onnx_save_options *opts) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "onnx_save: graph is NULL");
    if (!path) return dg_set_error(g, DG_ERR_NULL, "onnx_save: path is NULL");
    char what[DG__WHAT_SIZE];
    dg__what(what, sizeof what, "onnx_save", path);
    dg_onnx_writer w;
    ox_model m;
    memset(&m, 0, sizeof m);
    dg_status s = writer_init(&w, g, what, opts);
    if (s == DG_OK) s = build(&w, n_inputs, inputs, n_outputs, outputs, &m);
    if (s == DG_OK) {
        dg__atomic_file f;
        s = dg__atomic_open(&f, g, what, path);
        if (s == DG_OK) {
            ox_sink sink = {sink_atomic, &f};
            ox_write_model(&m, &sink);
            s = dg__atomic_commit(&f, g, what);
        }
    }
    writer_free(&w);
    return s;
}

typedef struct mem_sink {
    unsigned char *buf;
    size_t n;
} mem_sink;

static void sink_mem(void *ctx, const void *data, size_t n) {
    mem_sink *m = ctx;
    memcpy(m->buf + m->n, data, n);
    m->n += n;
}

dg_status dg_onnx_save_mem(dg_graph *g, int n_inputs, dg_node *const *inputs, int n_outputs,
                           dg_node *const *outputs, const dg_onnx_save_options *opts, void **data,
                           size_t *size) {
    if (data) *data = NULL;
    if (size) *size = 0;
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "onnx_save_mem: graph is NULL");
    if (!data || !size) return dg_set_error(g, DG_ERR_NULL, "onnx_save_mem: data or size is NULL");
    dg_onnx_writer w;
    ox_model m;
    memset(&m, 0, sizeof m);
    dg_status s = writer_init(&w, g, "onnx_save_mem", opts);
    if (s == DG_OK) s = build(&w, n_inputs, inputs, n_outputs, outputs, &m);
    if (s == DG_OK) {
        uint64_t total = ox_write_model(&m, NULL);
        mem_sink ms = {total < SIZE_MAX ? malloc(total ? (size_t)total : 1) : NULL, 0};
        if (!ms.buf) {
            s = nomem(&w);
        } else {
            ox_sink sink = {sink_mem, &ms};
            ox_write_model(&m, &sink);
            *data = ms.buf;
            *size = ms.n;
        }
    }
    writer_free(&w);
    return s;
}
