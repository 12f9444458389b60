/** \file
 * dagrad core: status codes, shapes, the graph, its nodes, running, and reverse mode.
 *
 * A graph owns every node, buffer and parameter created in it; dg_graph_free releases
 * all of it. Nodes are float32 tensors of up to four dimensions, row-major and
 * contiguous. Nothing here aborts on a caller's mistake: functions return a status
 * (or NULL) and leave a message readable with dg_graph_error() or dg_last_error().
 */
#ifndef DAGRAD_CORE_H
#define DAGRAD_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Maximum tensor rank. */
#define DG_MAX_DIMS 4
/** As the leading dimension of dg_input's shape: the batch dimension, free at run time.
 *  The input then takes whatever number of rows each dg_feed gives it (1 until the first
 *  feed), and a run re-infers the shapes of everything that depends on it. */
#define DG_BATCH (-1)

/** Status codes returned by every fallible call; DG_OK is zero. */
typedef enum dg_status {
    DG_OK = 0,
    DG_ERR_NULL,        /**< a required pointer argument was NULL */
    DG_ERR_ARG,         /**< an argument is out of range or inconsistent */
    DG_ERR_SHAPE,       /**< shapes are incompatible for the op */
    DG_ERR_NOMEM,       /**< an allocation failed or a size overflowed */
    DG_ERR_STATE,       /**< the call is not valid in the graph's current state */
    DG_ERR_GRAPH,       /**< a node belongs to another graph */
    DG_ERR_IO,          /**< a file could not be opened, read or written */
    DG_ERR_FORMAT,      /**< a file's contents are malformed or corrupt */
    DG_ERR_NONFINITE,   /**< anomaly mode found a NaN or Inf */
    DG_ERR_UNSUPPORTED, /**< the operation is not supported (e.g. not differentiable) */
} dg_status;

/** A short constant name for a status ("DG_ERR_SHAPE", ...). Never NULL. */
const char *dg_status_name(dg_status s);

/** Tensor shape: ndim in 0..4 (0 is a scalar), dims are >= 1. */
typedef struct dg_shape {
    int ndim;                 /**< number of dimensions, 0 (scalar) .. DG_MAX_DIMS */
    int64_t dim[DG_MAX_DIMS]; /**< sizes of the first ndim dimensions, row-major */
} dg_shape;

/** The scalar shape (ndim 0). Shape constructors never fail: invalid sizes are reported
 *  by the call that uses the shape. */
dg_shape dg_shape0(void);
/** The shape [d0]. */
dg_shape dg_shape1(int64_t d0);
/** The shape [d0,d1]. */
dg_shape dg_shape2(int64_t d0, int64_t d1);
/** The shape [d0,d1,d2]. */
dg_shape dg_shape3(int64_t d0, int64_t d1, int64_t d2);
/** The shape [d0,d1,d2,d3]. */
dg_shape dg_shape4(int64_t d0, int64_t d1, int64_t d2, int64_t d3);
/** Number of elements (1 for a scalar), or -1 if the shape is invalid or overflows. */
int64_t dg_shape_numel(dg_shape s);
/** 1 if equal, else 0. */
int dg_shape_equal(dg_shape a, dg_shape b);
/** Writes "[128,784]" into buf (always NUL-terminated); returns buf. */
char *dg_shape_str(dg_shape s, char *buf, size_t size);

/** A computation graph (opaque): owns its nodes, buffers, parameters and attached objects. */
typedef struct dg_graph dg_graph;
/** A node of a graph (opaque): a leaf or an op's result, a float32 tensor. */
typedef struct dg_node dg_node;

/** What a node is. */
typedef enum dg_node_kind {
    DG_INPUT,   /**< fed with data before each run */
    DG_PARAM,   /**< trainable, persists across runs */
    DG_CONST,   /**< fixed value */
    DG_OP_NODE, /**< result of an op */
    DG_STATE,   /**< persistent, non-trainable state (optimizer moments, step counts) */
} dg_node_kind;

/* ---- graph lifetime and errors ---- */

/** Creates an empty graph. Returns NULL only if memory is exhausted. Owned by the caller;
 *  release with dg_graph_free. `seed` seeds the graph's random generator. */
dg_graph *dg_graph_new(uint64_t seed);
/** Frees the graph and everything created in it. NULL is a no-op. */
void dg_graph_free(dg_graph *g);
/** The last error message of this graph ("" if none). Owned by the graph. */
const char *dg_graph_error(const dg_graph *g);
/** The last error status of this graph. */
dg_status dg_graph_status(const dg_graph *g);
/** Clears the graph's error state. */
void dg_graph_clear_error(dg_graph *g);
/** The last error message set on this thread by any call (for calls whose graph is NULL).
 *  Owned by the library; valid until the next failing call on this thread. */
const char *dg_last_error(void);
/** Records an error on g (and on this thread) and returns `s`; for custom ops and builders.
 *  g may be NULL. */
dg_status dg_set_error(dg_graph *g, dg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** Number of nodes in the graph. */
int dg_graph_node_count(const dg_graph *g);
/** Node by creation index (0 .. count-1), or NULL. Creation order is a topological order
 *  of the data edges (an op's inputs exist before it). */
dg_node *dg_graph_node(const dg_graph *g, int index);
/** The node named `name` (the most recently created one if several share it), or NULL. */
dg_node *dg_graph_find(const dg_graph *g, const char *name);

/** Sets the number of OpenMP threads used by kernels (<= 0: OpenMP's default).
 *  Results are bitwise identical for any thread count. */
void dg_set_num_threads(int n);
/** The number of threads kernels will use. */
int dg_get_num_threads(void);

/* ---- leaves ---- */

/** A node fed with data before each run (e.g. a batch). Values start at zero. Returns NULL
 *  on error. `name` is copied and may be NULL. A leading dimension of DG_BATCH
 *  (`dg_shape2(DG_BATCH, 784)`) makes it a batch input: every dg_feed may give it another
 *  number of rows, and all batch inputs read by one run must have the same number. */
dg_node *dg_input(dg_graph *g, const char *name, dg_shape shape);
/** A trainable parameter, zero-initialised; its values persist across runs. A name already
 *  used by another parameter or state node is DG_ERR_ARG (checkpoints find them by name). */
dg_node *dg_param(dg_graph *g, const char *name, dg_shape shape);
/** A constant holding a copy of `data` (numel floats), or `fill` everywhere if data is NULL. */
dg_node *dg_const(dg_graph *g, const char *name, dg_shape shape, const float *data, float fill);
/** Persistent non-trainable state (zero-initialised), e.g. optimizer moments. Saved in
 *  checkpoints together with parameters when state is requested. */
dg_node *dg_state(dg_graph *g, const char *name, dg_shape shape);
/** A scalar constant. */
dg_node *dg_scalar(dg_graph *g, float value);

/** Copies `n` floats into an input (or a parameter, constant or state). n must equal the
 *  node's element count; for a batch input (see dg_input) any positive multiple of one
 *  row's element count, which sets its number of rows. On error the node is unchanged. */
dg_status dg_feed(dg_node *node, const float *data, int64_t n);
/** Like dg_feed for an input, without the copy: runs read the input straight from `data`
 *  (which need not be aligned) until the next dg_feed or dg_feed_ref of it, so the caller
 *  keeps that memory alive and unchanged while runs use it (a batch can be a slice of the
 *  whole data set). The library never writes it: a run whose ops would write the input in
 *  place fails with DG_ERR_STATE. Only inputs (DG_INPUT) can be fed by reference; on error
 *  the node is unchanged. */
dg_status dg_feed_ref(dg_node *node, const float *data, int64_t n);
/** Copies the node's current values into out (capacity n, which must be >= numel).
 *  DG_ERR_STATE if the node holds no value now (see dg_node_data). */
dg_status dg_read(const dg_node *node, float *out, int64_t n);

/** Marks an input (or constant) as needing a gradient (parameters always do). */
dg_status dg_set_requires_grad(dg_node *node, int on);

/* ---- node introspection (never fail; NULL-safe where noted) ---- */

/** The graph that owns the node; NULL for NULL. */
dg_graph *dg_node_graph(const dg_node *n);
/** What the node is (input, parameter, ...); DG_CONST for NULL. */
dg_node_kind dg_node_kind_of(const dg_node *n);
/** Creation index of the node within its graph. -1 for NULL. */
int dg_node_id(const dg_node *n);
/** The node's shape; the scalar shape for NULL. */
dg_shape dg_node_shape(const dg_node *n);
/** The node's element count; 0 for NULL. */
int64_t dg_node_numel(const dg_node *n);
/** The node's value buffer (numel floats, 64-byte aligned), owned by the graph. Writing to
 *  it is how kernels produce results and how users initialise parameters in place. Leaves
 *  always have one (for an input fed with dg_feed_ref: the caller's memory, as aligned as
 *  the caller made it). An op result has one after a run that computed it if it persists
 *  (a run target, a parameter's gradient, dg_keep, dg_set_keep_all), and during a run;
 *  other results live in memory the plan reuses, so outside a run this returns NULL and
 *  records a DG_ERR_STATE message saying so. */
float *dg_node_data(const dg_node *n);
/** The node's name, or NULL. */
const char *dg_node_name(const dg_node *n);
/** Gives the node a name (copied). */
dg_status dg_node_set_name(dg_node *n, const char *name);
/** Op name ("matmul", ...) or "input"/"param"/"const". */
const char *dg_node_op_name(const dg_node *n);
/** Number of inputs of an op node; 0 for leaves and NULL. */
int dg_node_input_count(const dg_node *n);
/** Input i of an op node, or NULL if i is out of range or n is NULL. */
dg_node *dg_node_input(const dg_node *n, int i);
/** 1 if a gradient flows to this node. */
int dg_node_requires_grad(const dg_node *n);
/** The gradient node from the most recent dg_backward that reached `n`, or NULL. */
dg_node *dg_grad(const dg_node *n);
/** If this node is the (accumulated) gradient of some node, that node; else NULL. */
dg_node *dg_node_grad_of(const dg_node *n);
/** 0 for nodes built by the user; k for nodes created by the k-th call of dg_backward. */
int dg_node_backward_pass(const dg_node *n);
/** The layer scope the node was created in (see dg_scope_push), or NULL. */
const char *dg_node_scope(const dg_node *n);

/** Layer scopes group nodes (for DOT clusters and summaries). Scopes nest with '/'. */
dg_status dg_scope_push(dg_graph *g, const char *name);
/** Closes the innermost scope opened by dg_scope_push; DG_ERR_STATE if none is open. */
dg_status dg_scope_pop(dg_graph *g);

/** 1 if dg_node_data(n) would return a buffer holding the node's current value. */
int dg_node_has_value(const dg_node *n);
/** 1 for leaves, and for op results once a run has computed them (kept or not). */
int dg_node_computed(const dg_node *n);
/** 1 if the node's leading dimension is the batch size of its graph's DG_BATCH inputs (it
 *  follows the rows each run is fed), else 0. */
int dg_node_batch_leading(const dg_node *n);

/* ---- running ---- */

/** Evaluates `target` and only what it depends on, with the inputs' current data. A run
 *  target keeps its value afterwards (readable with dg_node_data) until a later run
 *  recomputes it. */
dg_status dg_run(dg_graph *g, dg_node *target);
/** Evaluates several targets in one pass: each node at most once, in an order that
 *  respects every data edge and, for ops writing a leaf in place (optimizer updates,
 *  counters), runs every other reader of that leaf first. The plan (order, shapes and
 *  memory) is made on the first run and cached per target set and batch size. */
dg_status dg_run_many(dg_graph *g, int n, dg_node *const *targets);
/** Reads a scalar node's value after a run (NaN if node is NULL or not a scalar). */
float dg_value(const dg_node *n);

/** Training mode (default on): ops such as dropout behave differently in evaluation. */
void dg_set_training(dg_graph *g, int on);
/** 1 in training mode, 0 in evaluation mode (and for NULL). */
int dg_is_training(const dg_graph *g);

/** Ties an object's lifetime to the graph: `release(obj)` is called by dg_graph_free, in
 *  reverse order of attachment. For builders (optimizers, layers) that keep side data. */
dg_status dg_graph_attach(dg_graph *g, void *obj, void (*release)(void *obj));

/** Keeps the node's value after every run that computes it (it gets a buffer of its own
 *  instead of memory the plan reuses). For values read after a run: logits, activations. */
dg_status dg_keep(dg_node *n);
/** When on, every node keeps its value (a buffer each, as if dg_keep'd): for DOT value
 *  annotations, debugging and custom-op development. Off by default. Results are bitwise
 *  the same either way. */
void dg_set_keep_all(dg_graph *g, int on);

/** Memory held by a graph's node buffers, in bytes. */
typedef struct dg_memory_stats {
    size_t leaf_bytes;      /**< inputs, parameters, constants and state */
    size_t kept_bytes;      /**< op results with buffers of their own (targets, kept nodes,
                                 parameter gradients; every result with keep-all) */
    size_t arena_bytes;     /**< the arena shared by planned intermediate results (the most
                                 any plan needed so far) */
    size_t run_arena_bytes; /**< the part of it the latest run's plan needed */
    size_t planned_bytes;   /**< what the intermediates the latest run placed in the arena
                                 would take with a buffer each */
} dg_memory_stats;
/** Fills *out with the graph's current buffer sizes. */
dg_status dg_graph_memory(const dg_graph *g, dg_memory_stats *out);

/** How a plan orders nodes that no edge orders. Every choice gives the same results; the
 *  others exist to test that nothing depends on creation order. */
typedef enum dg_plan_order {
    DG_ORDER_CREATION,     /**< lowest creation index first (default) */
    DG_ORDER_LATEST_FIRST, /**< highest creation index first */
    DG_ORDER_RANDOM,       /**< a seeded random choice among the ready nodes */
} dg_plan_order;
/** Chooses the plan order for later plans (existing plans are dropped). */
dg_status dg_set_plan_order(dg_graph *g, dg_plan_order order, uint64_t seed);

/** Fusion (on by default): a plan runs an elementwise consumer (bias add, activation,
 *  relu_grad, ...) that directly follows the producer of its input inside that
 *  producer's kernel (a matrix product), on each block of output as soon as it is final,
 *  instead of as another pass over memory. Results are bitwise the same either way; off
 *  runs every node on its own (existing plans are dropped). */
void dg_set_fusion(dg_graph *g, int on);
/** How many nodes the graph's latest run ran fused into another node's kernel. */
int dg_graph_fused_nodes(const dg_graph *g);

/** Thread tuning (on by default; only with more than one thread): whether splitting loops
 *  over threads pays depends on what moving data between cores costs, which varies between
 *  machines and, on virtual machines, over time. So each plan (for each batch size) times
 *  itself: after 32 runs as usual it times 8 runs with every loop on the calling thread
 *  and 8 with loops split, and keeps every loop on the calling thread unless splitting was
 *  at least 3% faster; when it keeps them split, it times the next 64 runs as well and
 *  goes back to the calling thread unless they beat the serial ones on average. It
 *  measures again every 2048 runs and when the thread count changes. Results are bitwise
 *  the same either way; off, every loop large enough is split (the thread count's plain
 *  meaning). */
void dg_set_thread_tuning(dg_graph *g, int on);
/** How many nodes of the graph's latest run would have split their loops over threads
 *  but ran on the calling thread because thread tuning measured that splitting did not pay. */
int dg_graph_serial_nodes(const dg_graph *g);

/** Anomaly mode: when on, a run stops at the first node whose result holds NaN/Inf and
 *  reports it (DG_ERR_NONFINITE). Off by default. */
void dg_set_anomaly_mode(dg_graph *g, int on);

/* ---- reverse mode ---- */

/** Adds the gradient of scalar `loss` with respect to every node it depends on that needs
 *  a gradient to the same graph, as ordinary nodes; afterwards dg_grad(x) is the gradient
 *  node of x. Running those nodes computes the gradients. Gradients are recomputed by each
 *  run, never accumulated across runs. Can be applied again to a scalar built from
 *  gradient nodes (higher-order derivatives). On error the graph is left as it was. */
dg_status dg_backward(dg_graph *g, dg_node *loss);

/** Like dg_backward but only returns the gradients of `y` with respect to `xs` in `out`
 *  (NULL where y does not depend on xs[i]), without changing what dg_grad returns. */
dg_status dg_gradients(dg_graph *g, dg_node *y, int n, dg_node *const *xs, dg_node **out);

/** Result of dg_gradcheck. */
typedef struct dg_gradcheck_report {
    double max_abs_err;    /**< max |analytic - numeric| over all checked elements */
    double max_rel_err;    /**< max |a - n| / max(|a|, |n|, 1e-6)... over checked elements */
    int worst_leaf;        /**< index into `leaves` of the worst element */
    int64_t worst_index;   /**< flat index of the worst element within that leaf */
    double worst_analytic; /**< the graph's gradient at the worst element */
    double worst_numeric;  /**< the finite-difference gradient at the worst element */
    int64_t checked;       /**< number of elements compared */
    int passed;            /**< 1 if every element is within atol + rtol * |numeric| */
} dg_gradcheck_report;

/** Compares the graph's gradients of scalar `y` with respect to `leaves` against central
 *  finite differences (step eps, computed in float64 from float32 runs). An element passes
 *  if |analytic - numeric| <= atol + rtol * |numeric|. Leaves' values are restored. */
dg_status dg_gradcheck(dg_graph *g, dg_node *y, int n, dg_node *const *leaves, double eps,
                       double atol, double rtol, dg_gradcheck_report *report);

/** Uniform random float in [0,1) from the graph's seeded generator. */
float dg_graph_rand_uniform(dg_graph *g);
/** The graph's generator state, for reproducible streams; 64 bits. */
uint64_t dg_graph_rand_u64(dg_graph *g);

#ifdef __cplusplus
}
#endif
#endif
