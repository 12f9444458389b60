/* The graph: node storage, leaves, op application, errors, shapes, scopes and the
 * seeded random generator. Knows nothing about any particular op. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- errors ---- */

static _Thread_local char tls_error[512];

const char *dg_status_name(dg_status s) {
    switch (s) {
    case DG_OK: return "DG_OK";
    case DG_ERR_NULL: return "DG_ERR_NULL";
    case DG_ERR_ARG: return "DG_ERR_ARG";
    case DG_ERR_SHAPE: return "DG_ERR_SHAPE";
    case DG_ERR_NOMEM: return "DG_ERR_NOMEM";
    case DG_ERR_STATE: return "DG_ERR_STATE";
    case DG_ERR_GRAPH: return "DG_ERR_GRAPH";
    case DG_ERR_IO: return "DG_ERR_IO";
    case DG_ERR_FORMAT: return "DG_ERR_FORMAT";
    case DG_ERR_NONFINITE: return "DG_ERR_NONFINITE";
    case DG_ERR_UNSUPPORTED: return "DG_ERR_UNSUPPORTED";
    }
    return "DG_ERR_UNKNOWN";
}

dg_status dg_set_error(dg_graph *g, dg_status s, const char *fmt, ...) {
    if (!fmt) fmt = "(no message)"; /* vsnprintf(NULL format) is undefined */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_error, sizeof tls_error, fmt, ap);
    va_end(ap);
    if (g) {
        g->status = s;
        memcpy(g->err, tls_error, sizeof g->err);
    }
    return s;
}

const char *dg_last_error(void) { return tls_error; }
const char *dg_graph_error(const dg_graph *g) { return g ? g->err : "graph is NULL"; }
dg_status dg_graph_status(const dg_graph *g) { return g ? g->status : DG_ERR_NULL; }
void dg_graph_clear_error(dg_graph *g) {
    if (!g) return;
    g->status = DG_OK;
    g->err[0] = 0;
}

/* ---- shapes ---- */

dg_shape dg_shape0(void) {
    dg_shape s = {0, {1, 1, 1, 1}};
    return s;
}
dg_shape dg_shape1(int64_t d0) {
    dg_shape s = {1, {d0, 1, 1, 1}};
    return s;
}
dg_shape dg_shape2(int64_t d0, int64_t d1) {
    dg_shape s = {2, {d0, d1, 1, 1}};
    return s;
}
dg_shape dg_shape3(int64_t d0, int64_t d1, int64_t d2) {
    dg_shape s = {3, {d0, d1, d2, 1}};
    return s;
}
dg_shape dg_shape4(int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    dg_shape s = {4, {d0, d1, d2, d3}};
    return s;
}

/* Largest element count we accept: keeps byte counts far from overflow. */
#define DG_MAX_NUMEL ((int64_t)1 << 40)

int64_t dg_shape_numel(dg_shape s) {
    if (s.ndim < 0 || s.ndim > DG_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) {
        if (s.dim[i] < 1 || s.dim[i] > DG_MAX_NUMEL) return -1;
        if (n > DG_MAX_NUMEL / s.dim[i]) return -1;
        n *= s.dim[i];
    }
    return n;
}

int dg_shape_equal(dg_shape a, dg_shape b) {
    if (a.ndim != b.ndim || a.ndim < 0 || a.ndim > DG_MAX_DIMS) return 0;
    for (int i = 0; i < a.ndim; i++)
        if (a.dim[i] != b.dim[i]) return 0;
    return 1;
}

char *dg_shape_str(dg_shape s, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    size_t used = 0;
    int w = snprintf(buf, size, "[");
    used = w > 0 ? (size_t)w : 0;
    int nd = s.ndim < 0 ? 0 : (s.ndim > DG_MAX_DIMS ? DG_MAX_DIMS : s.ndim);
    for (int i = 0; i < nd && used < size; i++) {
        w = snprintf(buf + used, size - used, "%s%lld", i ? "," : "", (long long)s.dim[i]);
        if (w > 0) used += (size_t)w;
    }
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* ---- memory ---- */

float *dg__alloc_floats(int64_t n) {
    if (n < 0 || n > DG_MAX_NUMEL) return NULL;
    size_t bytes = ((size_t)n * sizeof(float) + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void dg__free_floats(float *p) { free(p); }

/* ---- threads ---- */

static int dg_threads = 0;

void dg_set_num_threads(int n) { dg_threads = n > 0 ? n : 0; }

int dg_get_num_threads(void) {
#ifdef _OPENMP
    return dg_threads > 0 ? dg_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

int dg__threads_for(int64_t work) {
    /* Below ~32k elementary operations a parallel region costs more than it saves. */
    if (work < 32768) return 1;
    int t = dg_get_num_threads();
    int64_t max_useful = work / 16384;
    return max_useful < t ? (int)max_useful : t;
}

/* ---- graph lifetime ---- */

dg_graph *dg_graph_new(uint64_t seed) {
    dg_graph *g = calloc(1, sizeof *g);
    if (!g) {
        dg_set_error(NULL, DG_ERR_NOMEM, "graph_new: out of memory");
        return NULL;
    }
    g->rng = seed ^ 0x9E3779B97F4A7C15ull;
    g->training = 1;
    return g;
}

static void node_free(dg_node *n) {
    if (!n) return;
    dg__free_floats(n->value);
    free(n->name);
    free(n);
}

void dg_graph_free(dg_graph *g) {
    if (!g) return;
    while (g->n_attached > 0) {
        struct dg_attached *a = &g->attached[--g->n_attached];
        if (a->release) a->release(a->obj);
    }
    free(g->attached);
    for (int i = 0; i < g->n_nodes; i++) node_free(g->nodes[i]);
    free(g->nodes);
    for (int i = 0; i < g->n_scope_strings; i++) free(g->scope_strings[i]);
    free(g->scope_strings);
    free(g->plan);
    free(g->mark);
    free(g);
}

void dg__graph_truncate(dg_graph *g, int n) {
    /* drop references to the removed nodes while they are still alive to be looked at */
    for (int i = 0; i < n && i < g->n_nodes; i++) {
        dg_node *x = g->nodes[i];
        if (x->grad && x->grad->id >= n) x->grad = NULL;
    }
    while (g->n_nodes > n) node_free(g->nodes[--g->n_nodes]);
    g->plan_valid_nodes = -1;
}

int dg_graph_node_count(const dg_graph *g) { return g ? g->n_nodes : 0; }
dg_node *dg_graph_node(const dg_graph *g, int i) {
    return g && i >= 0 && i < g->n_nodes ? g->nodes[i] : NULL;
}

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Creates a node with a zeroed value buffer and appends it. */
static dg_node *node_new(dg_graph *g, dg_node_kind kind, const char *name, dg_shape shape,
                         const char *who) {
    char sb[64];
    int64_t numel = dg_shape_numel(shape);
    if (numel < 0) {
        /* a malformed shape is a shape error; a well-formed one that is too large to
         * count or allocate is a memory error */
        int malformed = shape.ndim < 0 || shape.ndim > DG_MAX_DIMS;
        for (int i = 0; !malformed && i < shape.ndim; i++) malformed = shape.dim[i] < 1;
        dg_set_error(g, malformed ? DG_ERR_SHAPE : DG_ERR_NOMEM,
                     "%s: invalid shape %s (rank must be 0..%d, every dimension >= 1, at most "
                     "2^40 elements)",
                     who, dg_shape_str(shape, sb, sizeof sb), DG_MAX_DIMS);
        return NULL;
    }
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        dg_node **nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) goto oom;
        g->nodes = nodes;
        unsigned char *mark = realloc(g->mark, (size_t)cap);
        if (!mark) goto oom;
        g->mark = mark;
        g->cap_nodes = cap;
    }
    dg_node *n = calloc(1, sizeof *n);
    if (!n) goto oom;
    n->value = dg__alloc_floats(numel);
    if (!n->value) {
        free(n);
        goto oom;
    }
    if (name) {
        n->name = dup_str(name);
        if (!n->name) {
            node_free(n);
            goto oom;
        }
    }
    n->graph = g;
    n->kind = kind;
    n->shape = shape;
    for (int i = shape.ndim; i < DG_MAX_DIMS; i++) n->shape.dim[i] = 1;
    n->numel = numel;
    n->backward_pass = g->n_backward;
    n->scope = g->scope_depth ? g->scope_stack[g->scope_depth - 1] : NULL;
    n->id = g->n_nodes;
    g->nodes[g->n_nodes++] = n;
    return n;
oom:
    dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory allocating %s", who,
                 dg_shape_str(shape, sb, sizeof sb));
    return NULL;
}

dg_node *dg_input(dg_graph *g, const char *name, dg_shape shape) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "input: graph is NULL"), NULL;
    return node_new(g, DG_INPUT, name, shape, "input");
}

dg_node *dg_param(dg_graph *g, const char *name, dg_shape shape) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "param: graph is NULL"), NULL;
    dg_node *n = node_new(g, DG_PARAM, name, shape, "param");
    if (n) n->requires_grad = 1;
    return n;
}

dg_node *dg_const(dg_graph *g, const char *name, dg_shape shape, const float *data, float fill) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "const: graph is NULL"), NULL;
    dg_node *n = node_new(g, DG_CONST, name, shape, "const");
    if (!n) return NULL;
    if (data)
        memcpy(n->value, data, (size_t)n->numel * sizeof(float));
    else
        for (int64_t i = 0; i < n->numel; i++) n->value[i] = fill;
    return n;
}

dg_node *dg_state(dg_graph *g, const char *name, dg_shape shape) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "state: graph is NULL"), NULL;
    return node_new(g, DG_STATE, name, shape, "state");
}

dg_node *dg_scalar(dg_graph *g, float value) { return dg_const(g, NULL, dg_shape0(), NULL, value); }

dg_status dg_feed(dg_node *node, const float *data, int64_t n) {
    if (!node) return dg_set_error(NULL, DG_ERR_NULL, "feed: node is NULL");
    char sb[64];
    const char *nm = node->name ? node->name : "";
    if (!data) return dg_set_error(node->graph, DG_ERR_NULL, "feed: data is NULL for '%s'", nm);
    if (node->kind == DG_OP_NODE)
        return dg_set_error(node->graph, DG_ERR_ARG,
                            "feed: node %d ('%s', op %s) is computed, not a leaf", node->id, nm,
                            node->op->name);
    if (n != node->numel)
        return dg_set_error(node->graph, DG_ERR_SHAPE,
                            "feed: '%s' has shape %s (%lld elements) but %lld values were given",
                            nm, dg_shape_str(node->shape, sb, sizeof sb), (long long)node->numel,
                            (long long)n);
    if (data != node->value) memcpy(node->value, data, (size_t)n * sizeof(float));
    node->fed = 1;
    return DG_OK;
}

dg_status dg_read(const dg_node *node, float *out, int64_t n) {
    if (!node) return dg_set_error(NULL, DG_ERR_NULL, "read: node is NULL");
    if (!out) return dg_set_error(node->graph, DG_ERR_NULL, "read: output buffer is NULL");
    if (n < node->numel)
        return dg_set_error(node->graph, DG_ERR_ARG,
                            "read: buffer holds %lld floats but node %d has %lld", (long long)n,
                            node->id, (long long)node->numel);
    memcpy(out, node->value, (size_t)node->numel * sizeof(float));
    return DG_OK;
}

dg_status dg_set_requires_grad(dg_node *node, int on) {
    if (!node) return dg_set_error(NULL, DG_ERR_NULL, "set_requires_grad: node is NULL");
    if (node->kind == DG_OP_NODE)
        return dg_set_error(node->graph, DG_ERR_ARG,
                            "set_requires_grad: node %d is an op result; only leaves can be "
                            "marked",
                            node->id);
    node->requires_grad = on ? 1 : 0;
    return DG_OK;
}

/* ---- introspection ---- */

dg_graph *dg_node_graph(const dg_node *n) { return n ? n->graph : NULL; }
dg_node_kind dg_node_kind_of(const dg_node *n) { return n ? n->kind : DG_CONST; }
int dg_node_id(const dg_node *n) { return n ? n->id : -1; }
dg_shape dg_node_shape(const dg_node *n) { return n ? n->shape : dg_shape0(); }
int64_t dg_node_numel(const dg_node *n) { return n ? n->numel : 0; }
float *dg_node_data(const dg_node *n) { return n ? n->value : NULL; }
const char *dg_node_name(const dg_node *n) { return n ? n->name : NULL; }
int dg_node_input_count(const dg_node *n) { return n ? n->n_inputs : 0; }
dg_node *dg_node_input(const dg_node *n, int i) {
    return n && i >= 0 && i < n->n_inputs ? n->inputs[i] : NULL;
}
int dg_node_requires_grad(const dg_node *n) { return n ? n->requires_grad : 0; }
dg_node *dg_grad(const dg_node *n) { return n ? n->grad : NULL; }
dg_node *dg_node_grad_of(const dg_node *n) { return n ? n->grad_of : NULL; }
int dg_node_backward_pass(const dg_node *n) { return n ? n->backward_pass : 0; }
const char *dg_node_scope(const dg_node *n) { return n ? n->scope : NULL; }
const dg_attrs *dg_node_attrs(const dg_node *n) { return n ? &n->attrs : NULL; }
const dg_op_def *dg_node_op(const dg_node *n) { return n ? n->op : NULL; }

const char *dg_node_op_name(const dg_node *n) {
    if (!n) return "null";
    switch (n->kind) {
    case DG_INPUT: return "input";
    case DG_PARAM: return "param";
    case DG_CONST: return "const";
    case DG_OP_NODE: return n->op->name;
    case DG_STATE: return "state";
    }
    return "?";
}

dg_status dg_node_set_name(dg_node *n, const char *name) {
    if (!n) return dg_set_error(NULL, DG_ERR_NULL, "node_set_name: node is NULL");
    char *copy = NULL;
    if (name && !(copy = dup_str(name)))
        return dg_set_error(n->graph, DG_ERR_NOMEM, "node_set_name: out of memory");
    free(n->name);
    n->name = copy;
    return DG_OK;
}

/* ---- scopes ---- */

dg_status dg_scope_push(dg_graph *g, const char *name) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "scope_push: graph is NULL");
    if (!name) return dg_set_error(g, DG_ERR_NULL, "scope_push: name is NULL");
    if (g->scope_depth == 16)
        return dg_set_error(g, DG_ERR_STATE, "scope_push: scopes nested deeper than 16");
    const char *parent = g->scope_depth ? g->scope_stack[g->scope_depth - 1] : NULL;
    size_t len = strlen(name) + (parent ? strlen(parent) + 1 : 0) + 1;
    char *full = malloc(len);
    if (!full) return dg_set_error(g, DG_ERR_NOMEM, "scope_push: out of memory");
    snprintf(full, len, "%s%s%s", parent ? parent : "", parent ? "/" : "", name);
    for (int i = 0; i < g->n_scope_strings; i++) {
        if (strcmp(g->scope_strings[i], full) == 0) {
            free(full);
            g->scope_stack[g->scope_depth++] = g->scope_strings[i];
            return DG_OK;
        }
    }
    if (g->n_scope_strings == g->cap_scope_strings) {
        int cap = g->cap_scope_strings ? 2 * g->cap_scope_strings : 16;
        char **s = realloc(g->scope_strings, (size_t)cap * sizeof *s);
        if (!s) {
            free(full);
            return dg_set_error(g, DG_ERR_NOMEM, "scope_push: out of memory");
        }
        g->scope_strings = s;
        g->cap_scope_strings = cap;
    }
    g->scope_strings[g->n_scope_strings++] = full;
    g->scope_stack[g->scope_depth++] = full;
    return DG_OK;
}

dg_status dg_scope_pop(dg_graph *g) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "scope_pop: graph is NULL");
    if (g->scope_depth == 0) return dg_set_error(g, DG_ERR_STATE, "scope_pop: no open scope");
    g->scope_depth--;
    return DG_OK;
}

/* ---- applying an op ---- */

dg_node *dg_apply(dg_graph *g, const dg_op_def *op, int n, dg_node *const *inputs,
                  const dg_attrs *attrs) {
    const char *name = op && op->name ? op->name : "apply";
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "%s: graph is NULL", name), NULL;
    if (!op || !op->infer_shape || !op->forward)
        return dg_set_error(g, DG_ERR_NULL, "%s: op definition is NULL or incomplete", name), NULL;
    if (n != op->n_inputs || n < 1 || n > DG_MAX_INPUTS)
        return dg_set_error(g, DG_ERR_ARG, "%s: expects %d inputs, got %d", name, op->n_inputs, n),
               NULL;
    if (!inputs) return dg_set_error(g, DG_ERR_NULL, "%s: inputs array is NULL", name), NULL;
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) {
            /* Keep the cause (message and status) visible when calls are nested. */
            char prev[sizeof g->err];
            memcpy(prev, g->err, sizeof prev);
            if (g->status != DG_OK && prev[0])
                dg_set_error(g, g->status, "%s: input %d is NULL (after: %.400s)", name, i, prev);
            else
                dg_set_error(g, DG_ERR_NULL, "%s: input %d is NULL", name, i);
            return NULL;
        }
        if (inputs[i]->graph != g)
            return dg_set_error(g, DG_ERR_GRAPH, "%s: input %d belongs to another graph", name, i),
                   NULL;
    }
    dg_attrs a;
    if (attrs)
        a = *attrs;
    else
        memset(&a, 0, sizeof a);
    dg_shape out = dg_shape0();
    char msg[400] = "";
    dg_status s = op->infer_shape(inputs, &a, &out, msg, sizeof msg);
    if (s != DG_OK)
        return dg_set_error(g, s, "%s: %s", name, msg[0] ? msg : "invalid inputs"), NULL;
    dg_node *node = node_new(g, DG_OP_NODE, NULL, out, name);
    if (!node) return NULL;
    node->op = op;
    node->n_inputs = n;
    node->attrs = a;
    int rg = 0;
    for (int i = 0; i < n; i++) {
        node->inputs[i] = inputs[i];
        rg |= inputs[i]->requires_grad;
    }
    node->requires_grad = (op->flags & (DG_OP_NO_GRAD | DG_OP_SIDE_EFFECT)) ? 0 : rg;
    return node;
}

/* ---- random numbers: splitmix64, seeded per graph ---- */

uint64_t dg_graph_rand_u64(dg_graph *g) {
    if (!g) return 0;
    uint64_t z = (g->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float dg_graph_rand_uniform(dg_graph *g) {
    return (float)(dg_graph_rand_u64(g) >> 40) * (1.0f / 16777216.0f);
}

void dg_set_training(dg_graph *g, int on) {
    if (g) g->training = on ? 1 : 0;
}
int dg_is_training(const dg_graph *g) { return g ? g->training : 0; }

dg_status dg_graph_attach(dg_graph *g, void *obj, void (*release)(void *obj)) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "graph_attach: graph is NULL");
    if (g->n_attached == g->cap_attached) {
        int cap = g->cap_attached ? 2 * g->cap_attached : 8;
        struct dg_attached *a = realloc(g->attached, (size_t)cap * sizeof *a);
        if (!a) return dg_set_error(g, DG_ERR_NOMEM, "graph_attach: out of memory");
        g->attached = a;
        g->cap_attached = cap;
    }
    g->attached[g->n_attached].obj = obj;
    g->attached[g->n_attached].release = release;
    g->n_attached++;
    return DG_OK;
}

void dg_set_anomaly_mode(dg_graph *g, int on) {
    if (g) g->anomaly = on ? 1 : 0;
}
