/* Planning a run: which nodes a set of targets needs, in which order, with which shapes
 * and in which memory. Knows no op; reads only the op contract (shape_only, writes,
 * DG_OP_INPLACE, DG_OP_VIEW, scratch_bytes).
 *
 * Order. The nodes are sorted topologically over two kinds of edges: data edges (an op
 * after its inputs) and write-after-read edges: an op that writes a leaf in place runs
 * after every other node of the plan that reads the leaf, unless that node depends on the
 * writer (then it reads the new value). Writers of one leaf run in creation order. Among
 * the nodes these edges leave free, the graph's plan order picks (creation order by
 * default), except that ready nodes of DG_OP_EAGER ops go first; any choice gives the same
 * results.
 *
 * Shapes. A batch input takes the number of rows it is fed; every node whose shape
 * depends on one is re-inferred with its op's shape rule when a run's batch size differs
 * from the one its shape was made for.
 *
 * Memory. Leaves own their buffers; so do results that must persist (run targets, dg_keep,
 * parameter gradients; all results with keep-all). Every other result lives in one arena
 * shared by all plans, placed best-fit by liveness: its block is free again after its last
 * reader runs. A view (reshape) shares its input's block, and an elementwise op may write
 * into the block of an input of its size that nothing later reads. A plan keeps one such
 * layout per batch size it has run with. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- plan cache ---- */

static void layout_free(dg_layout *l) {
    free(l->alias);
    free(l->offset);
    free(l->scratch);
    free(l->free_lo);
    free(l->free_hi);
    free(l->free_start);
    free(l->group);
}

static void plan_free(dg_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->n_layouts; i++) layout_free(&p->layouts[i]);
    free(p->layouts);
    free(p->targets);
    free(p->order);
    free(p->shape_nodes);
    free(p->batch_inputs);
    free(p->leaves);
    free(p->leaf_writer);
    free(p->last_use);
    free(p->fuse_input);
    free(p);
}

void dg__plans_clear(dg_graph *g) {
    for (int i = 0; i < g->n_plans; i++) plan_free(g->plans[i]);
    g->n_plans = 0;
    g->last_layout = NULL;
}

void dg__layouts_stale(dg_graph *g) {
    for (int i = 0; i < g->n_plans; i++)
        for (int k = 0; k < g->plans[i]->n_layouts; k++) g->plans[i]->layouts[k].stale = 1;
}

dg_plan *dg__plan_find(dg_graph *g, int n, dg_node *const *targets) {
    for (int i = 0; i < g->n_plans; i++) {
        dg_plan *p = g->plans[i];
        if (p->n_targets != n) continue;
        int same = 1;
        for (int k = 0; k < n && same; k++) same = p->targets[k] == targets[k];
        if (same) {
            p->stamp = ++g->plan_clock;
            return p;
        }
    }
    return NULL;
}

static void plan_store(dg_graph *g, dg_plan *p) {
    p->stamp = ++g->plan_clock;
    if (g->n_plans < DG_MAX_PLANS) {
        g->plans[g->n_plans++] = p;
        return;
    }
    int lru = 0;
    for (int i = 1; i < g->n_plans; i++)
        if (g->plans[i]->stamp < g->plans[lru]->stamp) lru = i;
    for (int k = 0; k < g->plans[lru]->n_layouts; k++)
        if (g->last_layout == &g->plans[lru]->layouts[k]) g->last_layout = NULL;
    plan_free(g->plans[lru]);
    g->plans[lru] = p;
}

/* ---- ordering ---- */

static int is_shape_only(const dg_node *x, int k) { return k < 64 && (x->op->shape_only >> k & 1); }
static int writes_input(const dg_node *x, int k) { return k < 64 && (x->op->writes >> k & 1); }

/* A binary min-heap of plan positions keyed by priority. */
typedef struct heap {
    int *pos;
    uint64_t *key;
    int n;
} heap;

static void heap_push(heap *h, int p, uint64_t key) {
    int i = h->n++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (h->key[parent] < key || (h->key[parent] == key && h->pos[parent] < p)) break;
        h->pos[i] = h->pos[parent];
        h->key[i] = h->key[parent];
        i = parent;
    }
    h->pos[i] = p;
    h->key[i] = key;
}

static int heap_pop(heap *h) {
    int top = h->pos[0];
    int p = h->pos[--h->n];
    uint64_t key = h->key[h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && (h->key[c + 1] < h->key[c] ||
                             (h->key[c + 1] == h->key[c] && h->pos[c + 1] < h->pos[c])))
            c++;
        if (key < h->key[c] || (key == h->key[c] && p < h->pos[c])) break;
        h->pos[i] = h->pos[c];
        h->key[i] = h->key[c];
        i = c;
    }
    h->pos[i] = p;
    h->key[i] = key;
    return top;
}

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Smaller runs first. Nodes of DG_OP_EAGER ops form a tier of their own, ahead of the rest;
 * within a tier the plan order decides. */
static uint64_t priority(const dg_graph *g, int id) {
    uint64_t key = (uint64_t)id;
    switch (g->plan_order) {
    case DG_ORDER_LATEST_FIRST: key = (uint64_t)(INT32_MAX - id); break;
    case DG_ORDER_RANDOM: key = mix64(g->plan_seed ^ (uint64_t)id) >> 1; break;
    case DG_ORDER_CREATION: break;
    }
    const dg_node *x = g->nodes[id];
    return x->op && (x->op->flags & DG_OP_EAGER) ? key : key | (1ull << 63);
}

/* Growable edge list. */
typedef struct edges {
    int *from, *to;
    int n, cap;
} edges;

static int edge_add(edges *e, int from, int to) {
    if (e->n == e->cap) {
        int cap = e->cap ? 2 * e->cap : 256;
        int *f = realloc(e->from, (size_t)cap * sizeof *f);
        if (!f) return 0;
        e->from = f;
        int *t = realloc(e->to, (size_t)cap * sizeof *t);
        if (!t) return 0;
        e->to = t;
        e->cap = cap;
    }
    e->from[e->n] = from;
    e->to[e->n] = to;
    e->n++;
    return 1;
}

/* Fusion. The node u may run inside the epilogue of the group group[0..n) (a DG_OP_EPILOGUE
 * producer and the consumers fused into it so far, the last of which produced u's input)
 * when u is elementwise in that input, needs no scratch, reads nothing else the group
 * computes (those values are final only range by range) and writes no leaf the group reads
 * or writes (the group's ranges run in any order, on several threads). Returns the input
 * index, or -1. Shapes are checked per layout (fusable). */
static int fuse_input_of(dg_node *const *group, int n, const dg_node *u) {
    const dg_op_def *op = u->op;
    if (!op->forward_range || !op->fusable || op->scratch_bytes || (op->flags & DG_OP_VIEW))
        return -1;
    const dg_node *last = group[n - 1];
    int k = -1;
    for (int q = 0; q < u->n_inputs; q++) {
        const dg_node *in = u->inputs[q];
        if (is_shape_only(u, q)) continue;
        if (in == last) {
            if (k >= 0) return -1; /* read twice: add(y, y) */
            k = q;
            continue;
        }
        for (int j = 0; j < n; j++)
            if (in == group[j]) return -1;
    }
    if (k < 0) return -1;
    for (int w = 0; w < u->n_inputs; w++) {
        if (!writes_input(u, w)) continue;
        const dg_node *leaf = u->inputs[w];
        for (int j = 0; j < n; j++)
            for (int q = 0; q < group[j]->n_inputs; q++)
                if (group[j]->inputs[q] == leaf) return -1;
    }
    return k;
}

/* Sorts the op nodes `ids` (ascending, count m) into p->order over data and write-after-read
 * edges. idx maps node id -> index in ids (or -1). A node that can run fused into the
 * epilogue of the node just placed (fuse_input_of) is placed right after it. */
static dg_status order_nodes(dg_graph *g, dg_plan *p, const int *ids, int m, const int *idx) {
    dg_status s = DG_OK;
    edges e = {0};
    int *indeg = calloc((size_t)m + 1, sizeof *indeg);
    int *succ_start = NULL, *succ = NULL, *stamp = NULL, *stack = NULL;
    heap h = {malloc(((size_t)m + 1) * sizeof(int)), malloc(((size_t)m + 1) * sizeof(uint64_t)), 0};
    if (!indeg || !h.pos || !h.key) goto oom;
    /* data edges */
    int any_writer = 0;
    for (int i = 0; i < m; i++) {
        dg_node *x = g->nodes[ids[i]];
        any_writer |= x->op->writes != 0;
        for (int k = 0; k < x->n_inputs; k++) {
            int j = idx[x->inputs[k]->id];
            if (j >= 0 && !is_shape_only(x, k) && !edge_add(&e, j, i)) goto oom;
        }
    }
    if (any_writer) {
        /* successor lists of the data edges, to find what depends on each writer */
        int n_data = e.n;
        succ_start = calloc((size_t)m + 1, sizeof *succ_start);
        succ = malloc(((size_t)n_data + 1) * sizeof *succ);
        stamp = malloc(((size_t)m + 1) * sizeof *stamp);
        stack = malloc(((size_t)m + 1) * sizeof *stack);
        if (!succ_start || !succ || !stamp || !stack) goto oom;
        for (int k = 0; k < n_data; k++) succ_start[e.from[k] + 1]++;
        for (int i = 0; i < m; i++) succ_start[i + 1] += succ_start[i];
        int *fill = stack; /* borrowed as a cursor array */
        memcpy(fill, succ_start, (size_t)m * sizeof *fill);
        for (int k = 0; k < n_data; k++) succ[fill[e.from[k]]++] = e.to[k];
        for (int i = 0; i < m; i++) stamp[i] = -1;
        for (int w = 0; w < m; w++) {
            dg_node *wx = g->nodes[ids[w]];
            if (!wx->op->writes) continue;
            /* stamp every node that depends on the writer */
            int top = 0;
            stack[top++] = w;
            stamp[w] = w;
            while (top) {
                int v = stack[--top];
                for (int k = succ_start[v]; k < succ_start[v + 1]; k++)
                    if (stamp[succ[k]] != w) stamp[succ[k]] = w, stack[top++] = succ[k];
            }
            for (int k = 0; k < wx->n_inputs; k++) {
                if (!writes_input(wx, k)) continue;
                dg_node *leaf = wx->inputs[k];
                /* every other reader of the leaf that does not depend on the writer goes
                 * first; of two writers, the older goes first */
                for (int r = 0; r < m; r++) {
                    if (r == w || stamp[r] == w) continue;
                    dg_node *rx = g->nodes[ids[r]];
                    int reads = 0, writes_too = 0;
                    for (int q = 0; q < rx->n_inputs; q++) {
                        if (rx->inputs[q] != leaf || is_shape_only(rx, q)) continue;
                        reads = 1;
                        writes_too |= writes_input(rx, q);
                    }
                    if (!reads || (writes_too && rx->id > wx->id)) continue;
                    if (!edge_add(&e, r, w)) goto oom;
                }
            }
        }
    }
    /* Kahn's algorithm, ready nodes taken by priority */
    free(succ_start);
    free(succ);
    succ_start = calloc((size_t)m + 1, sizeof *succ_start);
    succ = malloc(((size_t)e.n + 1) * sizeof *succ);
    if (!succ_start || !succ) goto oom;
    for (int k = 0; k < e.n; k++) {
        succ_start[e.from[k] + 1]++;
        indeg[e.to[k]]++;
    }
    for (int i = 0; i < m; i++) succ_start[i + 1] += succ_start[i];
    {
        int *fill = malloc(((size_t)m + 1) * sizeof *fill);
        if (!fill) goto oom;
        memcpy(fill, succ_start, (size_t)m * sizeof *fill);
        for (int k = 0; k < e.n; k++) succ[fill[e.from[k]]++] = e.to[k];
        free(fill);
    }
    for (int i = 0; i < m; i++)
        if (indeg[i] == 0) heap_push(&h, i, priority(g, ids[i]));
    p->len = 0;
    int next = -1, next_k = -1, group_start = -1;
    dg_node *group[DG_MAX_FUSED + 1];
    while (h.n || next >= 0) {
        int v = next >= 0 ? next : heap_pop(&h);
        dg_node *vx = g->nodes[ids[v]];
        p->fuse_input[p->len] = next >= 0 ? next_k : -1;
        if (next < 0) group_start = vx->op->flags & DG_OP_EPILOGUE ? p->len : -1;
        p->order[p->len++] = ids[v];
        int n_group = group_start >= 0 ? p->len - group_start : 0;
        for (int j = 0; j < n_group; j++) group[j] = g->nodes[p->order[group_start + j]];
        int fusing = n_group > 0 && n_group <= DG_MAX_FUSED && !g->no_fusion;
        uint64_t next_key = 0;
        next = -1;
        for (int k = succ_start[v]; k < succ_start[v + 1]; k++) {
            int u = succ[k];
            if (--indeg[u] != 0) continue;
            uint64_t key = priority(g, ids[u]);
            int fk = fusing ? fuse_input_of(group, n_group, g->nodes[ids[u]]) : -1;
            if (fk >= 0 && (next < 0 || key < next_key)) {
                if (next >= 0) heap_push(&h, next, next_key);
                next = u, next_k = fk, next_key = key;
            } else {
                heap_push(&h, u, key);
            }
        }
    }
    if (p->len != m) {
        /* a node reads a leaf both before a writer (no path from it) and after it */
        int stuck = -1;
        for (int i = 0; i < m && stuck < 0; i++)
            if (indeg[i] > 0 && g->nodes[ids[i]]->op->writes) stuck = i;
        if (stuck < 0)
            for (int i = 0; i < m && stuck < 0; i++)
                if (indeg[i] > 0) stuck = i;
        dg_node *x = g->nodes[ids[stuck]];
        s = dg_set_error(g, DG_ERR_GRAPH,
                         "run: no valid order: node %d (op %s) writes a leaf that another node "
                         "of this run must read both before the write and after it (a cycle of "
                         "dependencies)",
                         x->id, x->op->name);
    }
    goto done;
oom:
    s = dg_set_error(g, DG_ERR_NOMEM, "run: out of memory ordering %d nodes", m);
done:
    free(e.from);
    free(e.to);
    free(indeg);
    free(succ_start);
    free(succ);
    free(stamp);
    free(stack);
    free(h.pos);
    free(h.key);
    return s;
}

/* ---- making a plan ---- */

enum { MARK_EXEC = 1, MARK_SHAPE = 2 };

dg_status dg__plan_make(dg_graph *g, int n, dg_node *const *targets, dg_plan **out) {
    /* run targets persist: a new buffer of their own changes other plans' layouts */
    int pinned_new = 0;
    for (int i = 0; i < n; i++)
        if (targets[i]->kind == DG_OP_NODE && !targets[i]->pinned)
            targets[i]->pinned = 1, pinned_new = 1;
    if (pinned_new) dg__layouts_stale(g);

    int hi = -1;
    for (int i = 0; i < n; i++)
        if (targets[i]->id > hi) hi = targets[i]->id;
    unsigned char *mark = calloc((size_t)hi + 1, 1);
    int *idx = malloc(((size_t)hi + 1) * sizeof *idx);
    int *ids = malloc(((size_t)hi + 1) * sizeof *ids);
    dg_plan *p = calloc(1, sizeof *p);
    dg_status s = DG_OK;
    if (!mark || !idx || !ids || !p) goto oom;
    for (int i = 0; i < n; i++) mark[targets[i]->id] |= MARK_EXEC;
    /* inputs have smaller ids than their consumers: one downward sweep marks all */
    int m = 0, n_shape = 0, n_batch = 0, n_leaves = 0;
    for (int id = hi; id >= 0; id--) {
        if (!mark[id]) continue;
        dg_node *x = g->nodes[id];
        for (int k = 0; k < x->n_inputs; k++)
            mark[x->inputs[k]->id] |=
                (mark[id] & MARK_EXEC) && !is_shape_only(x, k) ? MARK_EXEC : MARK_SHAPE;
    }
    for (int id = 0; id <= hi; id++) {
        idx[id] = -1;
        if (!mark[id]) continue;
        dg_node *x = g->nodes[id];
        if (x->kind == DG_OP_NODE && (mark[id] & MARK_EXEC)) idx[id] = m, ids[m++] = id;
        if (x->kind == DG_OP_NODE && x->batch_dep) n_shape++;
        if (x->batch_input) n_batch++;
        if (x->kind == DG_INPUT && (mark[id] & MARK_EXEC)) n_leaves++;
    }
    p->targets = malloc((size_t)n * sizeof *p->targets);
    p->order = malloc(((size_t)m + 1) * sizeof *p->order);
    p->last_use = malloc(((size_t)m + 1) * sizeof *p->last_use);
    p->fuse_input = malloc(((size_t)m + 1) * sizeof *p->fuse_input);
    p->shape_nodes = malloc(((size_t)n_shape + 1) * sizeof *p->shape_nodes);
    p->batch_inputs = malloc(((size_t)n_batch + 1) * sizeof *p->batch_inputs);
    p->leaves = malloc(((size_t)n_leaves + 1) * sizeof *p->leaves);
    p->leaf_writer = calloc((size_t)n_leaves + 1, sizeof *p->leaf_writer);
    if (!p->targets || !p->order || !p->last_use || !p->fuse_input || !p->shape_nodes ||
        !p->batch_inputs || !p->leaves || !p->leaf_writer)
        goto oom;
    memcpy(p->targets, targets, (size_t)n * sizeof *targets);
    p->n_targets = n;
    for (int id = 0; id <= hi; id++) {
        if (!mark[id]) continue;
        dg_node *x = g->nodes[id];
        if (x->kind == DG_OP_NODE && x->batch_dep) p->shape_nodes[p->n_shape_nodes++] = id;
        if (x->batch_input) p->batch_inputs[p->n_batch_inputs++] = x;
        if (x->kind == DG_INPUT && (mark[id] & MARK_EXEC)) p->leaves[p->n_leaves++] = x;
    }
    /* inputs written in place (a run refuses to write one fed by reference) */
    for (int i = 0; i < m; i++) {
        dg_node *w = g->nodes[ids[i]];
        for (int k = 0; k < w->n_inputs; k++)
            for (int j = 0; j < p->n_leaves && writes_input(w, k); j++)
                if (p->leaves[j] == w->inputs[k] && !p->leaf_writer[j]) p->leaf_writer[j] = w;
    }
    s = order_nodes(g, p, ids, m, idx);
    if (s != DG_OK) goto fail;
    /* positions, and each position's last reader */
    for (int i = 0; i < m; i++) idx[p->order[i]] = i, p->last_use[i] = -1;
    for (int i = 0; i < m; i++) {
        dg_node *x = g->nodes[p->order[i]];
        for (int k = 0; k < x->n_inputs; k++) {
            int j = x->inputs[k]->kind == DG_OP_NODE ? idx[x->inputs[k]->id] : -1;
            if (j >= 0 && !is_shape_only(x, k) && p->last_use[j] < i) p->last_use[j] = i;
        }
    }
    free(mark);
    free(idx);
    free(ids);
    plan_store(g, p);
    *out = p;
    return DG_OK;
oom:
    s = dg_set_error(g, DG_ERR_NOMEM, "run: out of memory planning %d nodes", hi + 1);
fail:
    free(mark);
    free(idx);
    free(ids);
    plan_free(p);
    return s;
}

/* ---- shapes for a batch size ---- */

dg_status dg__plan_shapes(dg_graph *g, dg_plan *p, int64_t batch) {
    int changed = 0;
    for (int i = 0; i < p->n_shape_nodes; i++)
        changed += g->nodes[p->shape_nodes[i]]->shape_batch != batch;
    if (!changed) return DG_OK;
    /* keep the old shapes so that a failure changes nothing */
    dg_shape *old = malloc((size_t)p->n_shape_nodes * sizeof *old);
    int64_t *old_batch = malloc((size_t)p->n_shape_nodes * sizeof *old_batch);
    if (!old || !old_batch) {
        free(old);
        free(old_batch);
        return dg_set_error(g, DG_ERR_NOMEM, "run: out of memory re-shaping for batch %lld",
                            (long long)batch);
    }
    dg_status s = DG_OK;
    int i;
    for (i = 0; i < p->n_shape_nodes && s == DG_OK; i++) {
        dg_node *x = g->nodes[p->shape_nodes[i]];
        old[i] = x->shape;
        old_batch[i] = x->shape_batch;
        if (x->shape_batch == batch) continue;
        dg_shape out = dg_shape0();
        char msg[400] = "";
        s = x->op->infer_shape(x->inputs, x->n_inputs, x->attrs, &out, msg, sizeof msg);
        int64_t numel = s == DG_OK ? dg_shape_numel(out) : -1;
        if (s == DG_OK && numel < 0) {
            char sb[64];
            s = DG_ERR_SHAPE;
            snprintf(msg, sizeof msg, "invalid shape %s", dg_shape_str(out, sb, sizeof sb));
        }
        if (s != DG_OK) {
            dg_set_error(g, s,
                         "run: with a batch of %lld rows, node %d (op %s%s%s%s) cannot be "
                         "shaped: %s: %s",
                         (long long)batch, x->id, x->op->name, x->name ? ", '" : "",
                         x->name ? x->name : "", x->name ? "'" : "", x->op->name,
                         msg[0] ? msg : "invalid inputs");
            break;
        }
        x->shape = out;
        for (int d = out.ndim; d < DG_MAX_DIMS; d++) x->shape.dim[d] = 1;
        x->numel = numel;
        x->shape_batch = batch;
    }
    if (s != DG_OK)
        for (int k = 0; k <= i && k < p->n_shape_nodes; k++) {
            dg_node *x = g->nodes[p->shape_nodes[k]];
            x->shape = old[k];
            x->numel = dg_shape_numel(old[k]);
            x->shape_batch = old_batch[k];
        }
    free(old);
    free(old_batch);
    return s;
}

/* ---- memory layout for the current shapes ---- */

/* A block of the arena: [off, off + size) floats. */
typedef struct block {
    int64_t off, size;
} block;

/* Best-fit allocator over a growing arena (offsets only; nothing is allocated). */
typedef struct fitter {
    block *free;
    int n_free, cap_free;
    int64_t top; /* end of the used part of the arena */
} fitter;

static int64_t fit_alloc(fitter *f, int64_t size) {
    int best = -1;
    for (int i = 0; i < f->n_free; i++)
        if (f->free[i].size >= size && (best < 0 || f->free[i].size < f->free[best].size)) best = i;
    if (best < 0) {
        /* extend the arena, absorbing a free block that ends at the top */
        for (int i = 0; i < f->n_free; i++)
            if (f->free[i].off + f->free[i].size == f->top) {
                int64_t off = f->free[i].off;
                f->free[i] = f->free[--f->n_free];
                f->top = off + size;
                return off;
            }
        int64_t off = f->top;
        f->top += size;
        return off;
    }
    int64_t off = f->free[best].off;
    f->free[best].off += size;
    f->free[best].size -= size;
    if (f->free[best].size == 0) f->free[best] = f->free[--f->n_free];
    return off;
}

static int fit_release(fitter *f, int64_t off, int64_t size) {
    /* merge with neighbours */
    for (int i = 0; i < f->n_free;) {
        block *b = &f->free[i];
        if (b->off + b->size == off) {
            off = b->off;
            size += b->size;
            f->free[i] = f->free[--f->n_free];
        } else if (off + size == b->off) {
            size += b->size;
            f->free[i] = f->free[--f->n_free];
        } else {
            i++;
        }
    }
    if (f->n_free == f->cap_free) {
        int cap = f->cap_free ? 2 * f->cap_free : 32;
        block *nb = realloc(f->free, (size_t)cap * sizeof *nb);
        if (!nb) return 0;
        f->free = nb;
        f->cap_free = cap;
    }
    f->free[f->n_free].off = off;
    f->free[f->n_free].size = size;
    f->n_free++;
    return 1;
}

static int64_t round16(int64_t n) { return (n + 15) & ~(int64_t)15; }

/* Builds the layout of plan p for the nodes' current shapes, in two passes: first where
 * each result lives (its own buffer, a block of its own, or a block it shares with an input
 * as a view or in place) and until when each block is read; then block offsets, best fit,
 * releasing each block after its last reader. */
static dg_status layout_make(dg_graph *g, dg_plan *p, int64_t batch, dg_layout *l) {
    int m = p->len;
    /* a stale layout is redone in its own arrays (sized by the plan, not by the layout), so
     * redoing one allocates nothing that stays */
    l->batch = batch;
    l->stale = 0;
    l->arena_floats = l->planned_floats = 0;
    if (!l->alias) l->alias = malloc(((size_t)m + 1) * sizeof *l->alias);
    if (!l->offset) l->offset = malloc(((size_t)m + 1) * sizeof *l->offset);
    if (!l->scratch) l->scratch = malloc(((size_t)m + 1) * sizeof *l->scratch);
    if (!l->free_start) l->free_start = malloc(((size_t)m + 2) * sizeof *l->free_start);
    if (!l->free_lo) l->free_lo = malloc(((size_t)m + 1) * sizeof *l->free_lo);
    if (!l->free_hi) l->free_hi = malloc(((size_t)m + 1) * sizeof *l->free_hi);
    if (!l->group) l->group = malloc(((size_t)m + 1) * sizeof *l->group);
    l->tune_runs = 0; /* a redone layout is tuned again */
    l->tune_threads = 0;
    int *store = malloc(((size_t)m + 1) * sizeof *store); /* block = position that made it */
    int *end = malloc(((size_t)m + 1) * sizeof *end);     /* per block: last reading position */
    int *by_end = malloc(((size_t)m + 1) * sizeof *by_end);
    int *end_start = calloc((size_t)m + 2, sizeof *end_start);
    int *pos_of = malloc(((size_t)g->n_nodes + 1) * sizeof *pos_of);
    fitter f = {0};
    dg_status s = DG_OK;
    if (!l->alias || !l->offset || !l->scratch || !l->free_start || !l->free_lo || !l->free_hi ||
        !l->group || !store || !end || !by_end || !end_start || !pos_of)
        goto oom;
    for (int i = 0; i < m; i++) pos_of[p->order[i]] = i;
    /* fusion groups for these shapes: a producer, then the consumers placed after it that
     * are elementwise over its whole output */
    for (int i = 0; i < m; i++) {
        dg_node *x = g->nodes[p->order[i]];
        int r = 0;
        if ((x->op->flags & DG_OP_EPILOGUE) && x->numel > 0)
            while (i + r + 1 < m && p->fuse_input[i + r + 1] >= 0) {
                dg_node *u = g->nodes[p->order[i + r + 1]];
                int k = p->fuse_input[i + r + 1];
                if (u->inputs[k]->numel != x->numel || !u->op->fusable(u, k)) break;
                r++;
            }
        l->group[i] = r;
        for (int q = 1; q <= r; q++) l->group[i + q] = -1;
        i += r;
    }
    /* pass 1: storage of each result */
    for (int i = 0; i < m; i++) {
        dg_node *x = g->nodes[p->order[i]];
        store[i] = -1;
        l->alias[i] = DG_STORE_OWN;
        if (x->pinned || g->keep_all) {
            if (dg__ensure_own(x) != DG_OK) goto fail;
            continue;
        }
        l->planned_floats += x->numel;
        int shared = -1;
        if (x->op->flags & DG_OP_VIEW) {
            shared = 0;
        } else if (x->op->flags & DG_OP_INPLACE) {
            for (int k = 0; k < x->n_inputs && shared < 0; k++) {
                dg_node *in = x->inputs[k];
                if (in->kind != DG_OP_NODE || is_shape_only(x, k) || in->numel != x->numel)
                    continue;
                /* run fused, it writes range by range while the group still reads its
                 * other inputs: only the input it is fused through may hold its output */
                if (l->group[i] < 0 && k != p->fuse_input[i]) continue;
                int st = store[pos_of[in->id]];
                /* an arena block that nothing after this node reads */
                if (st >= 0 && end[st] == i) shared = k;
            }
        }
        if (shared < 0) {
            store[i] = i;
            end[i] = p->last_use[i] > i ? p->last_use[i] : i;
            continue;
        }
        l->alias[i] = shared;
        dg_node *in = x->inputs[shared];
        /* a view of a leaf or of a kept result needs no block */
        int st = in->kind == DG_OP_NODE ? store[pos_of[in->id]] : -1;
        store[i] = st;
        if (st >= 0 && p->last_use[i] > end[st]) end[st] = p->last_use[i];
    }
    /* blocks grouped by the position after which they are free */
    for (int i = 0; i < m; i++)
        if (store[i] == i) end_start[end[i] + 1]++;
    for (int i = 0; i < m; i++) end_start[i + 1] += end_start[i];
    {
        int *cursor = malloc(((size_t)m + 1) * sizeof *cursor);
        if (!cursor) goto oom;
        memcpy(cursor, end_start, (size_t)m * sizeof *cursor);
        for (int i = 0; i < m; i++)
            if (store[i] == i) by_end[cursor[end[i]]++] = i;
        free(cursor);
    }
    /* pass 2: offsets */
    int n_freed = 0;
    for (int i = 0; i < m; i++) {
        /* a fusion group runs as one node: every result of it is placed before anything
         * it reads is released */
        int last = i + (l->group[i] > 0 ? l->group[i] : 0);
        for (int q = i; q <= last; q++) {
            l->offset[q] = l->scratch[q] = -1;
            if (store[q] == q)
                l->offset[q] = fit_alloc(&f, round16(g->nodes[p->order[q]]->numel));
            else if (store[q] >= 0)
                l->offset[q] = l->offset[store[q]];
            l->free_start[q] = n_freed;
        }
        dg_node *x = g->nodes[p->order[i]];
        if (x->op->scratch_bytes) {
            size_t bytes = x->op->scratch_bytes(x);
            if (bytes) {
                /* live only while this node runs: free again before anything else is placed */
                int64_t fl = round16((int64_t)((bytes + sizeof(float) - 1) / sizeof(float)));
                l->scratch[i] = fit_alloc(&f, fl);
                if (!fit_release(&f, l->scratch[i], fl)) goto oom;
            }
        }
        for (int k = end_start[i]; k < end_start[last + 1]; k++) {
            int st = by_end[k];
            int64_t size = round16(g->nodes[p->order[st]]->numel);
            if (!fit_release(&f, l->offset[st], size)) goto oom;
            l->free_lo[n_freed] = l->offset[st];
            l->free_hi[n_freed] = l->offset[st] + size;
            n_freed++;
        }
        i = last;
    }
    l->free_start[m] = n_freed;
    l->arena_floats = f.top;
    goto done;
oom:
    s = dg_set_error(g, DG_ERR_NOMEM, "run: out of memory laying out %d nodes", m);
    goto done;
fail:
    s = g->status;
done:
    free(store);
    free(end);
    free(by_end);
    free(end_start);
    free(pos_of);
    free(f.free);
    if (s != DG_OK) l->stale = 1;
    return s;
}

dg_status dg__plan_layout(dg_graph *g, dg_plan *p, int64_t batch, dg_layout **out) {
    /* kept results' buffers never shrink, so a cached layout's buffers are big enough */
    for (int i = 0; i < p->n_layouts; i++)
        if (p->layouts[i].batch == batch) {
            *out = &p->layouts[i];
            return p->layouts[i].stale ? layout_make(g, p, batch, *out) : DG_OK;
        }
    if (p->n_layouts == p->cap_layouts) {
        int cap = p->cap_layouts ? 2 * p->cap_layouts : 2;
        g->last_layout = NULL; /* it may move */
        dg_layout *nl = realloc(p->layouts, (size_t)cap * sizeof *nl);
        if (!nl) return dg_set_error(g, DG_ERR_NOMEM, "run: out of memory");
        p->layouts = nl;
        p->cap_layouts = cap;
    }
    dg_layout *l = &p->layouts[p->n_layouts];
    memset(l, 0, sizeof *l);
    dg_status s = layout_make(g, p, batch, l);
    if (s != DG_OK) {
        layout_free(l);
        return s;
    }
    p->n_layouts++;
    *out = l;
    return DG_OK;
}
