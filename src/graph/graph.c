/* The graph: node storage (a build arena with marks), leaves, op application, errors,
 * shapes, names, scopes, rollback and the seeded random generator. Knows no op. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    char msg[sizeof tls_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* the arguments may point into tls_error */
    va_end(ap);
    memcpy(tls_error, msg, sizeof tls_error);
    if (g) {
        g->status = s;
        memcpy(g->err, msg, sizeof g->err);
    }
    return s;
}

dg_status dg__prefix_error(dg_graph *g, dg_status s, const char *who) {
    size_t n = strlen(who);
    if (strncmp(g->err, who, n) == 0 && g->err[n] == ':') return dg_set_error(g, s, "%s", g->err);
    return dg_set_error(g, s, "%s: %s", who, g->err);
}

dg_status dg_error_prefix(dg_graph *g, const char *who) {
    if (!g) return DG_ERR_NULL;
    dg_status s = g->status != DG_OK ? g->status : DG_ERR_STATE;
    return who && who[0] ? dg__prefix_error(g, s, who) : s;
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

dg_status dg__ensure_own(dg_node *n) {
    if (n->own && n->own_cap >= n->numel) return DG_OK;
    int64_t cap = n->numel;
    float *p = dg__alloc_floats(cap);
    if (!p) {
        char sb[64];
        return dg_set_error(n->graph, DG_ERR_NOMEM, "out of memory allocating %s for node %d",
                            dg_shape_str(n->shape, sb, sizeof sb), n->id);
    }
    if (n->own) memcpy(p, n->own, (size_t)n->own_cap * sizeof(float));
    dg__free_floats(n->own);
    n->own = p;
    n->own_cap = cap;
    return DG_OK;
}

#define CHUNK_MIN ((size_t)64 << 10)

void *dg__arena_alloc(dg_graph *g, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    dg_chunk *c = g->arena;
    if (!c || c->size - c->used < bytes) {
        size_t size = bytes > CHUNK_MIN ? bytes : CHUNK_MIN;
        if (c && c->size * 2 > size && c->size < ((size_t)16 << 20)) size = c->size * 2;
        dg_chunk *nc = malloc(sizeof *nc + size);
        if (!nc) return NULL;
        nc->prev = c;
        nc->size = size;
        nc->used = 0;
        g->arena = c = nc;
    }
    void *p = c->data + c->used;
    c->used += bytes;
    memset(p, 0, bytes);
    return p;
}

static dg_arena_mark arena_mark(const dg_graph *g) {
    dg_arena_mark m = {g->arena, g->arena ? g->arena->used : 0};
    return m;
}

static void arena_reset(dg_graph *g, dg_arena_mark m) {
    while (g->arena && g->arena != m.chunk) {
        dg_chunk *prev = g->arena->prev;
        free(g->arena);
        g->arena = prev;
    }
    if (g->arena) g->arena->used = m.used;
}

/* ---- threads ---- */

#ifdef _OPENMP
#include <omp.h>
#endif

static int dg_threads = 0;

void dg_set_num_threads(int n) { dg_threads = n > 0 ? n : 0; }

int dg_get_num_threads(void) {
#ifdef _OPENMP
    return dg_threads > 0 ? dg_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- names ---- */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

/* Records node x under its name; the newest node of a name wins. */
static int name_index_put(dg_graph *g, dg_node *x) {
    if (!x->name) return 1;
    if (2 * (g->name_index_used + 1) > g->name_index_cap) {
        int cap = g->name_index_cap ? 2 * g->name_index_cap : 256;
        int *idx = malloc((size_t)cap * sizeof *idx);
        if (!idx) return 0;
        for (int i = 0; i < cap; i++) idx[i] = -1;
        free(g->name_index);
        g->name_index = idx;
        g->name_index_cap = cap;
        g->name_index_used = 0;
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i] != x && g->nodes[i]->name && !name_index_put(g, g->nodes[i])) return 0;
    }
    size_t mask = (size_t)g->name_index_cap - 1;
    for (size_t k = hash_str(x->name) & mask;; k = (k + 1) & mask) {
        int id = g->name_index[k];
        if (id < 0) {
            g->name_index[k] = x->id;
            g->name_index_used++;
            return 1;
        }
        const char *other = g->nodes[id]->name;
        if (other && strcmp(other, x->name) == 0) {
            if (x->id > id) g->name_index[k] = x->id;
            return 1;
        }
    }
}

static void name_index_rebuild(dg_graph *g) {
    free(g->name_index);
    g->name_index = NULL;
    g->name_index_cap = g->name_index_used = 0;
    for (int i = 0; i < g->n_nodes; i++) name_index_put(g, g->nodes[i]);
}

dg_node *dg_graph_find(const dg_graph *g, const char *name) {
    if (!g || !name || !g->name_index) return NULL;
    size_t mask = (size_t)g->name_index_cap - 1;
    for (size_t k = hash_str(name) & mask;; k = (k + 1) & mask) {
        int id = g->name_index[k];
        if (id < 0) return NULL;
        if (g->nodes[id]->name && strcmp(g->nodes[id]->name, name) == 0) return g->nodes[id];
    }
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

static void node_release(dg_node *n) {
    dg__free_floats(n->own);
    if (n->name_heap) free(n->name);
}

void dg_graph_free(dg_graph *g) {
    if (!g) return;
    while (g->n_attached > 0) {
        struct dg_attached *a = &g->attached[--g->n_attached];
        if (a->release) a->release(a->obj);
    }
    free(g->attached);
    dg__plans_clear(g);
    for (int i = 0; i < g->n_nodes; i++) node_release(g->nodes[i]);
    arena_reset(g, (dg_arena_mark){NULL, 0});
    free(g->nodes);
    free(g->name_index);
    free(g->grad_log);
    for (int i = 0; i < g->n_scope_strings; i++) free(g->scope_strings[i]);
    free(g->scope_strings);
    dg__free_floats(g->values);
    free(g);
}

/* Removes every node created at index >= n; gradient links set since revert. */
static void truncate_nodes(dg_graph *g, int n) {
    if (n >= g->n_nodes) return;
    while (g->n_grad_log > 0 && g->grad_log[g->n_grad_log - 1].mark >= n) {
        struct dg_grad_undo *u = &g->grad_log[--g->n_grad_log];
        if (u->x->id < n) u->x->grad = u->old;
    }
    if (g->last_loss && g->last_loss->id >= n) g->last_loss = NULL;
    g->last_loss_pass = -1;
    dg_arena_mark m = g->nodes[n]->made_at;
    while (g->n_nodes > n) node_release(g->nodes[--g->n_nodes]);
    arena_reset(g, m);
    name_index_rebuild(g);
    dg__plans_clear(g);
}

dg_mark dg_graph_mark(const dg_graph *g) {
    dg_mark m = {0, 0, 0};
    if (g) {
        m.nodes = g->n_nodes;
        m.passes = g->n_backward;
        m.scope_depth = g->scope_depth;
    }
    return m;
}

dg_status dg_graph_rollback(dg_graph *g, dg_mark m, const char *who) {
    if (!g) return DG_ERR_NULL;
    dg_status s = g->status != DG_OK ? g->status : DG_ERR_STATE;
    if (m.nodes >= 0 && m.nodes < g->n_nodes) truncate_nodes(g, m.nodes);
    if (m.passes >= 0 && m.passes < g->n_backward) g->n_backward = m.passes;
    if (m.scope_depth >= 0 && m.scope_depth < g->scope_depth) g->scope_depth = m.scope_depth;
    if (who && who[0]) return dg__prefix_error(g, s, who);
    return s;
}

int dg_graph_node_count(const dg_graph *g) { return g ? g->n_nodes : 0; }
dg_node *dg_graph_node(const dg_graph *g, int i) {
    return g && i >= 0 && i < g->n_nodes ? g->nodes[i] : NULL;
}

static char *arena_str(dg_graph *g, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = dg__arena_alloc(g, n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Creates a node (from the build arena) and appends it. Leaves get their own zeroed
 * buffer now; op results get memory when a plan runs them. */
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
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        dg_node **nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) goto oom;
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    dg_arena_mark made_at = arena_mark(g);
    dg_node *n = dg__arena_alloc(g, sizeof *n);
    if (!n) goto oom;
    n->made_at = made_at;
    if (name && !(n->name = arena_str(g, name))) goto oom_undo;
    n->graph = g;
    n->kind = kind;
    n->shape = shape;
    for (int i = shape.ndim; i < DG_MAX_DIMS; i++) n->shape.dim[i] = 1;
    n->numel = numel;
    n->backward_pass = g->n_backward;
    n->scope = g->scope_depth ? g->scope_stack[g->scope_depth - 1] : NULL;
    n->id = g->n_nodes;
    if (kind != DG_OP_NODE) {
        if (dg__ensure_own(n) != DG_OK) goto oom_undo;
        n->value = n->own;
        n->has_value = n->computed = 1;
    }
    g->nodes[g->n_nodes++] = n;
    if (!name_index_put(g, n)) {
        g->n_nodes--;
        node_release(n);
        goto oom_undo;
    }
    return n;
oom_undo:
    arena_reset(g, made_at);
oom:
    dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory allocating %s", who,
                 dg_shape_str(shape, sb, sizeof sb));
    return NULL;
}

dg_node *dg_input(dg_graph *g, const char *name, dg_shape shape) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "input: graph is NULL"), NULL;
    int batch = shape.ndim >= 1 && shape.ndim <= DG_MAX_DIMS && shape.dim[0] == DG_BATCH;
    if (batch) shape.dim[0] = 1;
    dg_node *n = node_new(g, DG_INPUT, name, shape, "input");
    if (n && batch) {
        n->batch_input = n->batch_dep = 1;
        n->shape_batch = 1;
    }
    return n;
}

/* Parameters and state are saved and found by name: two of them may not share one. */
static int persistent_name_taken(dg_graph *g, const char *name, const char *who) {
    dg_node *old = name ? dg_graph_find(g, name) : NULL;
    if (!old || (old->kind != DG_PARAM && old->kind != DG_STATE)) return 0;
    dg_set_error(g, DG_ERR_ARG,
                 "%s: the name '%s' is already used by node %d (%s); parameters and state are "
                 "saved by name, so give each its own",
                 who, name, old->id, dg_node_op_name(old));
    return 1;
}

dg_node *dg_param(dg_graph *g, const char *name, dg_shape shape) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "param: graph is NULL"), NULL;
    if (persistent_name_taken(g, name, "param")) return NULL;
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
    if (persistent_name_taken(g, name, "state")) return NULL;
    return node_new(g, DG_STATE, name, shape, "state");
}

dg_node *dg_scalar(dg_graph *g, float value) { return dg_const(g, NULL, dg_shape0(), NULL, value); }

/* "'x' " or "node 3 " for messages. */
static const char *node_label(const dg_node *n, char *buf, size_t size) {
    if (n->name)
        snprintf(buf, size, "'%s'", n->name);
    else
        snprintf(buf, size, "node %d", n->id);
    return buf;
}

/* Checks a feed of n values into node and sets the node's shape for it (a batch input
 * takes the rows). On error the node is unchanged. */
static dg_status feed_shape(dg_node *node, int64_t n, const char *who, const char *nm) {
    char sb[64];
    if (!node->batch_input) {
        if (n == node->numel) return DG_OK;
        return dg_set_error(node->graph, DG_ERR_SHAPE,
                            "%s: %s has shape %s (%lld elements) but %lld values were given", who,
                            nm, dg_shape_str(node->shape, sb, sizeof sb), (long long)node->numel,
                            (long long)n);
    }
    int64_t row = node->numel / node->shape.dim[0];
    dg_shape rs = node->shape;
    rs.dim[0] = 1;
    if (n < 1 || n % row != 0)
        return dg_set_error(node->graph, DG_ERR_SHAPE,
                            "%s: %s is a batch input of rows of %lld values (%s per row); "
                            "%lld values are not a whole number of rows",
                            who, nm, (long long)row, dg_shape_str(rs, sb, sizeof sb), (long long)n);
    if (n / row != node->shape.dim[0]) node->graph->feed_epoch++;
    node->shape.dim[0] = n / row;
    node->numel = n;
    node->shape_batch = node->shape.dim[0];
    return DG_OK;
}

/* The checks every feed starts with; fills nm with the node's label for messages. */
static dg_status feed_begin(const dg_node *node, const float *data, const char *who, char *nm,
                            size_t size) {
    if (!node) return dg_set_error(NULL, DG_ERR_NULL, "%s: node is NULL", who);
    node_label(node, nm, size);
    if (!data) return dg_set_error(node->graph, DG_ERR_NULL, "%s: data is NULL for %s", who, nm);
    return DG_OK;
}

dg_status dg_feed(dg_node *node, const float *data, int64_t n) {
    char nm[300];
    dg_status s = feed_begin(node, data, "feed", nm, sizeof nm);
    if (s != DG_OK) return s;
    if (node->kind == DG_OP_NODE)
        return dg_set_error(node->graph, DG_ERR_ARG, "feed: %s (op %s) is computed, not a leaf", nm,
                            node->op->name);
    dg_shape old_shape = node->shape;
    int64_t old_numel = node->numel, old_batch = node->shape_batch,
            old_epoch = node->graph->feed_epoch;
    if ((s = feed_shape(node, n, "feed", nm)) != DG_OK) return s;
    if (dg__ensure_own(node) != DG_OK) {
        node->shape = old_shape;
        node->numel = old_numel;
        node->shape_batch = old_batch;
        node->graph->feed_epoch = old_epoch;
        return dg__prefix_error(node->graph, DG_ERR_NOMEM, "feed");
    }
    /* data may be the node's own buffer (filled through dg_node_data) */
    if (data != node->own) memcpy(node->own, data, (size_t)n * sizeof(float));
    node->value = node->own;
    node->by_ref = 0;
    node->fed = 1;
    return DG_OK;
}

dg_status dg_feed_ref(dg_node *node, const float *data, int64_t n) {
    char nm[300];
    dg_status s = feed_begin(node, data, "feed_ref", nm, sizeof nm);
    if (s != DG_OK) return s;
    if (node->kind != DG_INPUT)
        return dg_set_error(node->graph, DG_ERR_ARG,
                            "feed_ref: %s is a %s; only inputs read the caller's memory (the "
                            "library writes parameters and state, and owns constants)",
                            nm, dg_node_op_name(node));
    if ((s = feed_shape(node, n, "feed_ref", nm)) != DG_OK) return s;
    node->value = (float *)data; /* never written: a run refuses ops that write it */
    node->by_ref = 1;
    node->fed = 1;
    return DG_OK;
}

static dg_status not_kept(const dg_node *n, const char *who) {
    char nm[300];
    node_label(n, nm, sizeof nm);
    return dg_set_error(n->graph, DG_ERR_STATE,
                        "%s: %s (op %s) holds no value: it has not been computed, or it was an "
                        "intermediate result whose memory the plan reused; make it a run target, "
                        "dg_keep it, or dg_set_keep_all(g, 1)",
                        who, nm, dg_node_op_name(n));
}

dg_status dg_read(const dg_node *node, float *out, int64_t n) {
    if (!node) return dg_set_error(NULL, DG_ERR_NULL, "read: node is NULL");
    if (!out) return dg_set_error(node->graph, DG_ERR_NULL, "read: output buffer is NULL");
    if (!node->has_value) return not_kept(node, "read");
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
int dg_node_has_value(const dg_node *n) { return n && n->has_value; }
int dg_node_computed(const dg_node *n) { return n && n->computed; }
int dg_node_batch_leading(const dg_node *n) {
    return n && n->batch_dep && n->shape.ndim >= 1 && n->shape_batch > 0 &&
           n->shape.dim[0] == n->shape_batch;
}
float *dg_node_data(const dg_node *n) {
    if (!n) return NULL;
    if (!n->has_value) return not_kept(n, "node_data"), NULL;
    return n->value;
}
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
void *dg_node_attrs(const dg_node *n) { return n ? n->attrs : NULL; }
size_t dg_node_attrs_size(const dg_node *n) { return n ? n->attrs_size : 0; }
const dg_op_def *dg_node_op(const dg_node *n) { return n ? n->op : NULL; }
void *dg_node_scratch(const dg_node *self) {
    return self && self->graph->running == self ? self->graph->running_scratch : NULL;
}

int dg_node_has_epilogue(const dg_node *self) {
    return self && self->graph->running == self && self->graph->n_epilogue > 0;
}

void dg_node_epilogue(dg_node *self, int64_t lo, int64_t hi) {
    if (!self || lo >= hi) return;
    dg_graph *g = self->graph;
    if (g->running != self || g->n_epilogue == 0) return;
    for (int i = 0; i < g->n_epilogue; i++)
        g->epilogue[i]->op->forward_range(g->epilogue[i], lo, hi);
    if (g->anomaly)
        atomic_fetch_add_explicit(&g->epilogue_done, hi - lo, memory_order_relaxed);
    else if (!atomic_load_explicit(&g->epilogue_used, memory_order_relaxed))
        atomic_store_explicit(&g->epilogue_used, 1, memory_order_relaxed);
}

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
    dg_graph *g = n->graph;
    if ((n->kind == DG_PARAM || n->kind == DG_STATE) && name) {
        dg_node *old = dg_graph_find(g, name);
        if (old && old != n && persistent_name_taken(g, name, "node_set_name")) return g->status;
    }
    char *copy = NULL;
    if (name) {
        size_t len = strlen(name) + 1;
        if (!(copy = malloc(len)))
            return dg_set_error(g, DG_ERR_NOMEM, "node_set_name: out of memory");
        memcpy(copy, name, len);
    }
    if (n->name_heap) free(n->name);
    n->name = copy;
    n->name_heap = 1;
    name_index_rebuild(g);
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

const char *dg_scope_current(const dg_graph *g) {
    return g && g->scope_depth ? g->scope_stack[g->scope_depth - 1] : NULL;
}

int dg_scope_in_use(const dg_graph *g, const char *path) {
    if (!g || !path) return 0;
    size_t len = strlen(path);
    for (int i = 0; i < g->n_scope_strings; i++) {
        const char *s = g->scope_strings[i];
        if (strncmp(s, path, len) == 0 && (s[len] == 0 || s[len] == '/')) return 1;
    }
    return 0;
}

/* ---- applying an op ---- */

/* The batch size the shapes of x's inputs were made for: 0 if none depends on it, -1 if
 * they disagree (inputs fed different sizes since; the next run re-infers). */
static int64_t inputs_batch(const dg_node *x) {
    int64_t b = 0;
    for (int i = 0; i < x->n_inputs; i++) {
        const dg_node *in = x->inputs[i];
        if (!in->batch_dep) continue;
        if (b == 0)
            b = in->shape_batch;
        else if (b != in->shape_batch)
            return -1;
    }
    return b;
}

/* Re-infers, in creation order, the shapes of every node that depends on a batch input
 * whose rows changed. A node whose inputs now disagree (one batch input fed, another not
 * yet) keeps its old shape and is left to the next run. */
static void refresh_shapes(dg_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        dg_node *x = g->nodes[i];
        if (x->kind != DG_OP_NODE || !x->batch_dep) continue;
        int64_t b = inputs_batch(x);
        if (b == x->shape_batch) continue;
        dg_shape out = dg_shape0();
        char msg[8];
        int64_t numel = -1;
        if (b > 0 &&
            x->op->infer_shape(x->inputs, x->n_inputs, x->attrs, &out, msg, sizeof msg) == DG_OK)
            numel = dg_shape_numel(out);
        if (numel < 0) {
            x->shape_batch = -1;
            continue;
        }
        x->shape = out;
        for (int d = out.ndim; d < DG_MAX_DIMS; d++) x->shape.dim[d] = 1;
        x->numel = numel;
        x->shape_batch = b;
    }
    g->shapes_epoch = g->feed_epoch;
}

dg_node *dg_apply(dg_graph *g, const dg_op_def *op, int n, dg_node *const *inputs,
                  const void *attrs, size_t attrs_size) {
    const char *name = op && op->name ? op->name : "apply";
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "%s: graph is NULL", name), NULL;
    if (!op || !op->infer_shape || !op->forward)
        return dg_set_error(g, DG_ERR_NULL, "%s: op definition is NULL or incomplete", name), NULL;
    if (op->n_inputs != DG_VARIADIC && op->n_inputs < 1)
        return dg_set_error(g, DG_ERR_ARG, "%s: op definition has n_inputs %d", name, op->n_inputs),
               NULL;
    if (op->n_inputs == DG_VARIADIC ? n < 1 : n != op->n_inputs)
        return dg_set_error(g, DG_ERR_ARG, "%s: expects %s%d inputs, got %d", name,
                            op->n_inputs == DG_VARIADIC ? "at least " : "",
                            op->n_inputs == DG_VARIADIC ? 1 : op->n_inputs, n),
               NULL;
    if (!inputs) return dg_set_error(g, DG_ERR_NULL, "%s: inputs array is NULL", name), NULL;
    if (attrs_size > 0 && !attrs)
        return dg_set_error(g, DG_ERR_NULL, "%s: attrs is NULL but attrs_size is %zu", name,
                            attrs_size),
               NULL;
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) {
            /* Keep the cause (message and status) visible when calls are nested. */
            if (g->status != DG_OK && g->err[0])
                dg_set_error(g, g->status, "%s: input %d is NULL (after: %.400s)", name, i, g->err);
            else
                dg_set_error(g, DG_ERR_NULL, "%s: input %d is NULL", name, i);
            return NULL;
        }
        if (inputs[i]->graph != g) {
            char nm[300];
            return dg_set_error(g, DG_ERR_GRAPH,
                                "%s: input %d belongs to another graph (%s there, op %s)", name, i,
                                node_label(inputs[i], nm, sizeof nm), dg_node_op_name(inputs[i])),
                   NULL;
        }
        if (i < 64 && (op->writes >> i & 1) && inputs[i]->kind == DG_OP_NODE)
            return dg_set_error(g, DG_ERR_ARG,
                                "%s: input %d is written in place, so it must be a leaf "
                                "(parameter, state or input), not the result of op %s",
                                name, i, inputs[i]->op->name),
                   NULL;
    }
    /* after a feed changed the batch size, the shapes built on it are brought up to date
     * before they are used to shape anything new */
    if (g->shapes_epoch != g->feed_epoch)
        for (int i = 0; i < n; i++)
            if (inputs[i]->batch_dep) {
                refresh_shapes(g);
                break;
            }
    dg_shape out = dg_shape0();
    char msg[400] = "";
    dg_status s = op->infer_shape(inputs, n, attrs, &out, msg, sizeof msg);
    if (s != DG_OK)
        return dg_set_error(g, s, "%s: %s", name, msg[0] ? msg : "invalid inputs"), NULL;
    dg_node *node = node_new(g, DG_OP_NODE, NULL, out, name);
    if (!node) return NULL;
    node->inputs = dg__arena_alloc(g, (size_t)n * sizeof *node->inputs);
    node->attrs = attrs_size ? dg__arena_alloc(g, attrs_size) : NULL;
    if (!node->inputs || (attrs_size && !node->attrs)) {
        dg_graph_rollback(g, (dg_mark){node->id, g->n_backward, g->scope_depth}, NULL);
        return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", name), NULL;
    }
    if (attrs_size) memcpy(node->attrs, attrs, attrs_size);
    node->attrs_size = attrs_size;
    node->op = op;
    node->n_inputs = n;
    int rg = 0;
    for (int i = 0; i < n; i++) {
        dg_node *in = inputs[i];
        node->inputs[i] = in;
        /* no gradient flows into an input the op only measures or only overwrites */
        if (!(i < 64 && ((op->shape_only | op->writes) >> i & 1))) rg |= in->requires_grad;
        node->batch_dep |= in->batch_dep;
    }
    node->shape_batch = inputs_batch(node);
    node->requires_grad = (op->flags & DG_OP_NO_GRAD) ? 0 : rg;
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

/* ---- settings ---- */

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

dg_status dg_keep(dg_node *n) {
    if (!n) return dg_set_error(NULL, DG_ERR_NULL, "keep: node is NULL");
    if (n->kind == DG_OP_NODE && !n->pinned) {
        n->pinned = 1;
        dg__layouts_stale(n->graph);
    }
    return DG_OK;
}

void dg_set_keep_all(dg_graph *g, int on) {
    if (!g || g->keep_all == (on != 0)) return;
    g->keep_all = on != 0;
    dg__layouts_stale(g);
}

int dg_graph_fused_nodes(const dg_graph *g) { return g ? g->fused_nodes : 0; }

void dg_set_thread_tuning(dg_graph *g, int on) {
    if (g) g->no_tuning = !on;
}

int dg_graph_serial_nodes(const dg_graph *g) { return g ? g->serial_nodes : 0; }

void dg_set_fusion(dg_graph *g, int on) {
    if (!g || g->no_fusion == !on) return;
    g->no_fusion = !on;
    dg__plans_clear(g);
}

dg_status dg_set_plan_order(dg_graph *g, dg_plan_order order, uint64_t seed) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "set_plan_order: graph is NULL");
    if (order != DG_ORDER_CREATION && order != DG_ORDER_LATEST_FIRST && order != DG_ORDER_RANDOM)
        return dg_set_error(g, DG_ERR_ARG, "set_plan_order: unknown order %d", (int)order);
    g->plan_order = order;
    g->plan_seed = seed;
    dg__plans_clear(g);
    return DG_OK;
}
