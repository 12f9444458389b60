/* Internal layout of graphs, nodes and plans, shared by src/graph and the built-in ops in
 * src/ops (whose kernels read node fields directly). Not installed: everything above the
 * ops (layers, optimizers, DOT, I/O) sees only the public headers. */
#ifndef DG_INTERNAL_H
#define DG_INTERNAL_H

#include "dagrad/core.h"
#include "dagrad/opkit.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the build arena: nodes, input lists, attributes and names ---- */

/* A bump allocator in chunks. Rolling back to a mark frees everything allocated after it,
 * which is what undoing a failed builder needs; nothing is freed one by one. */
typedef struct dg_chunk {
    struct dg_chunk *prev;
    size_t size, used;
    _Alignas(64) unsigned char data[];
} dg_chunk;

typedef struct dg_arena_mark {
    dg_chunk *chunk;
    size_t used;
} dg_arena_mark;

struct dg_node {
    dg_graph *graph;
    int id;
    dg_node_kind kind;
    const dg_op_def *op; /* NULL for leaves */
    int n_inputs;
    dg_node **inputs; /* build arena */
    void *attrs;      /* build arena, 16-byte aligned; NULL if none */
    size_t attrs_size;
    dg_shape shape; /* current: re-inferred when a run changes the batch size */
    int64_t numel;
    float *value;          /* where the value lives: own buffer, plan arena, or a viewed node's */
    float *own;            /* persistent buffer (leaves, kept results), 64-byte aligned, or NULL */
    int64_t own_cap;       /* floats allocated at `own` */
    char *name;            /* build arena or heap (name_heap), may be NULL */
    const char *scope;     /* interned in the graph, may be NULL */
    dg_node *grad;         /* from the latest backward reaching this node */
    dg_node *grad_of;      /* set on the accumulated gradient node of some value */
    int backward_pass;     /* 0: user-built; k: built by the k-th backward */
    int64_t shape_batch;   /* batch size the current shape was inferred for (batch_dep nodes) */
    dg_arena_mark made_at; /* build arena position before this node */
    unsigned requires_grad : 1;
    unsigned fed : 1;         /* inputs: data was fed at least once */
    unsigned by_ref : 1;      /* inputs: `value` is the caller's memory (dg_feed_ref) */
    unsigned batch_input : 1; /* input whose leading dimension is DG_BATCH */
    unsigned batch_dep : 1;   /* shape may depend on the batch size */
    unsigned pinned : 1;      /* result persists: own buffer (target, dg_keep, param grad) */
    unsigned has_value : 1;   /* `value` holds the node's current value */
    unsigned computed : 1;    /* leaves, and results some run has computed */
    unsigned name_heap : 1;   /* name was malloc'd (set after creation) */
};

/* A plan: how one set of targets runs. The order and liveness do not depend on the batch
 * size; shapes and memory offsets do, so a plan keeps one layout per batch size seen. */
#define DG_STORE_OWN (-1) /* dg_layout.alias: the node's own buffer */

typedef struct dg_layout {
    int64_t batch;    /* 0 for graphs without batch inputs */
    int *alias;       /* per position: DG_STORE_OWN, or k: shares input k's buffer */
    int64_t *offset;  /* per position: float offset of its block in the arena, or -1 */
    int64_t *scratch; /* per position: float offset of its scratch, or -1 */
    int64_t arena_floats;
    int64_t planned_floats;     /* sum of numel over results not given their own buffer */
    int64_t *free_lo, *free_hi; /* arena ranges released after each position (poisoning) */
    int *free_start;            /* per position: first index into free_lo/hi (len + 1) */
    int stale;                  /* what persists changed: redo before use */
    /* per position: how many of the following positions run fused into this node's
     * epilogue (0 for most); positions inside a group hold -1 */
    int *group;
    /* thread tuning (run.c): whether runs keep every loop on the calling thread, how many
     * nodes asked for threads, the timed trial runs each way ([1]: on the calling thread)
     * summed and their slowest, the split runs timed after the trials (seconds, count),
     * and the runs since the tuning started for `tune_threads` threads */
    int tune_serial, tune_nodes;
    float tune_sum[2], tune_max[2];
    float tune_check;
    int tune_check_n;
    int64_t tune_runs;
    int tune_threads;
} dg_layout;

typedef struct dg_plan {
    dg_node **targets;
    int n_targets;
    int *order; /* op node ids in execution order */
    int len;
    int *last_use; /* per position: last position reading its value, or -1 */
    /* per position: input index through which the node would run fused into the epilogue
     * of the node before it (placed next to it for that), or -1; layouts confirm it for
     * their shapes */
    int *fuse_input;
    int *shape_nodes; /* batch-dependent op nodes whose shapes this plan needs, by id */
    int n_shape_nodes;
    dg_node **batch_inputs; /* batch inputs whose values or shapes this plan reads */
    int n_batch_inputs;
    dg_node **leaves;      /* inputs whose values it reads (must have been fed) */
    dg_node **leaf_writer; /* per leaf: the first node that writes it in place, or NULL */
    int n_leaves;
    dg_layout *layouts;
    int n_layouts, cap_layouts;
    uint64_t stamp; /* for least-recently-used eviction */
} dg_plan;

/* Plan cache (plan.c). */
dg_plan *dg__plan_find(dg_graph *g, int n, dg_node *const *targets);
dg_status dg__plan_make(dg_graph *g, int n, dg_node *const *targets, dg_plan **out);
dg_status dg__plan_shapes(dg_graph *g, dg_plan *p, int64_t batch);
dg_status dg__plan_layout(dg_graph *g, dg_plan *p, int64_t batch, dg_layout **out);

#define DG_MAX_PLANS 8
#define DG_MAX_FUSED 8 /* consumers fused into one producer, at most */

struct dg_graph {
    dg_node **nodes;
    int n_nodes, cap_nodes;
    dg_chunk *arena; /* build arena, newest chunk first */
    dg_status status;
    char err[512];
    uint64_t rng;
    int n_backward;     /* how many backward passes built nodes */
    dg_node *last_loss; /* loss of the latest dg_backward, and the pass it was */
    int last_loss_pass;
    /* every gradient link dg_backward set, with the link it replaced, so that rolling
     * back to a node count before `mark` restores the old links (newest first) */
    struct dg_grad_undo {
        dg_node *x, *old;
        int mark;
    } * grad_log;
    int n_grad_log, cap_grad_log;
    int anomaly;
    int keep_all;
    /* feed_epoch counts changes of a batch input's rows; node shapes were last brought up
     * to date for shapes_epoch (graph.c) */
    uint64_t feed_epoch, shapes_epoch;
    dg_plan_order plan_order;
    uint64_t plan_seed;
    /* node names: open-addressing hash of node ids (-1 empty), for dg_graph_find */
    int *name_index;
    int name_index_cap, name_index_used;
    /* scopes: a stack of interned strings ("dense1", "dense1/act") */
    char **scope_strings;
    int n_scope_strings, cap_scope_strings;
    const char *scope_stack[16];
    int scope_depth;
    /* plans cached by target set; all dropped when the graph or what persists changes */
    dg_plan *plans[DG_MAX_PLANS];
    int n_plans;
    uint64_t plan_clock;
    float *values;                /* the plan arena (64-byte aligned), shared by all plans */
    int64_t values_cap;           /* floats */
    const dg_layout *last_layout; /* of the latest run (NULL once plans are dropped) */
    dg_node *running;             /* node whose forward is executing (for dg_node_scratch) */
    float *running_scratch;
    int no_fusion;            /* dg_set_fusion(g, 0) */
    int fused_nodes;          /* in the latest run */
    int no_tuning;            /* dg_set_thread_tuning(g, 0) */
    int serial_nodes;         /* in the latest run, by the tuner's choice */
    dg_node *const *epilogue; /* nodes fused into the running one, in order */
    int n_epilogue;
    /* whether the producer reported any range; in anomaly mode, how many elements (a locked
     * add per range would wait for every store the range's work left in flight) */
    _Atomic int epilogue_used;
    _Atomic int64_t epilogue_done;
    int training;
    struct dg_attached {
        void *obj;
        void (*release)(void *);
    } * attached;
    int n_attached, cap_attached;
};

/* Allocation of 64-byte aligned float buffers (zeroed). */
float *dg__alloc_floats(int64_t n);
void dg__free_floats(float *p);

/* Build-arena allocation (16-byte aligned, zeroed); NULL when out of memory. */
void *dg__arena_alloc(dg_graph *g, size_t bytes);

/* Makes sure the node has its own buffer of at least numel floats (keeping its contents
 * when it grows); DG_ERR_NOMEM otherwise. */
dg_status dg__ensure_own(dg_node *n);

/* Drops every cached plan (nodes were removed, or the plan order changed). */
void dg__plans_clear(dg_graph *g);
/* Marks every cached layout for redoing (the set of results with buffers of their own
 * changed). */
void dg__layouts_stale(dg_graph *g);

/* Records g's current message again as "who: message" (unless it already starts with
 * "who:"), with status s: a caller claiming a callee's failure. */
dg_status dg__prefix_error(dg_graph *g, dg_status s, const char *who);

/* The engine's primitives (primitives.c): the sum of same-shaped terms (the term itself when
 * n is 1), and sum/expand to the shape of a reference node read for its shape only. */
dg_node *dg__accumulate(dg_graph *g, int n, dg_node *const *terms);
dg_node *dg__sum_like(dg_graph *g, dg_node *x, dg_node *ref);
dg_node *dg__expand_like(dg_graph *g, dg_node *x, dg_node *ref);
/* DG_OK if `small` broadcasts to `big`, else DG_ERR_SHAPE with a message. */
dg_status dg__check_broadcastable(dg_shape small, dg_shape big, char *msg, size_t size);

/* Floating-point mode of the calling thread (parallel.c): dg__fp_enter sets
 * flush-to-zero and denormals-are-zero and returns the previous mode for dg__fp_set. */
unsigned dg__fp_get(void);
void dg__fp_set(unsigned mode);
unsigned dg__fp_enter(void);
/* Thread tuning hooks (parallel.c): while dg__serial(1) holds, loops started on this thread
 * run on it alone and dg_threads_for answers 1; dg__parallel_requests counts the loops this
 * thread started that asked for more than one thread. */
void dg__serial(int on);
int64_t dg__parallel_requests(void);

#endif
