/** \file
 * The op kit: everything an op or a graph builder needs. Built-in ops (src/ops), layers,
 * optimizers and dropout use exactly this header plus core.h, and so can a user's custom
 * op: the op definition and dg_apply, attributes of any size owned by the node, scratch
 * memory from the plan, the library's parallel loop and reproducible parallel sum, the
 * GEMM, broadcasting helpers, and build marks for rolling back a failed builder.
 *
 * How the planner reads an op definition: inputs are read in full unless marked
 * `shape_only`; inputs marked in `writes` are leaves the op updates in place (every other
 * reader of such a leaf in the same run is ordered before the writer); an op flagged
 * DG_OP_INPLACE may get its output in the buffer of an input of the same element count that
 * nothing later reads; DG_OP_VIEW makes the output share input 0's buffer.
 */
#ifndef DAGRAD_OPKIT_H
#define DAGRAD_OPKIT_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** dg_op_def.n_inputs of an op that takes any number (at least one) of inputs. */
#define DG_VARIADIC (-1)

/** Op flags (dg_op_def.flags). */
enum {
    /** The output is piecewise constant in its inputs (masks, argmax, one-hot): its
     *  gradient is zero, so no gradient flows through it. */
    DG_OP_NO_GRAD = 1u << 0,
    /** Elementwise: output element i reads only element i of every input that has the
     *  output's element count (other inputs are broadcast and read freely). The planner may
     *  then place the output in the buffer of such an input when nothing later reads it, so
     *  the kernel must allow dg_node_data(self) == dg_node_data(input). */
    DG_OP_INPLACE = 1u << 1,
    /** The output is input 0's data unchanged (reshape): the planner lets it share input
     *  0's buffer, in which case forward finds both pointers equal and has nothing to do.
     *  When the output must persist (a run target, dg_keep) it gets its own buffer and
     *  forward copies. */
    DG_OP_VIEW = 1u << 2,
    /** Runs as soon as its inputs are ready, ahead of the other ready nodes (the plan order
     *  still decides among such nodes): for ops that start work proceeding alongside the
     *  rest of the run, such as sending gradients to other processes while backward goes
     *  on. Changes when the node runs, never what any node computes. */
    DG_OP_EAGER = 1u << 3,
    /** The kernel reports parts of its output as they become final, by calling
     *  dg_node_epilogue(self, lo, hi) for disjoint flat ranges that together cover the
     *  output exactly once (possibly from several threads), or never (anomaly mode checks
     *  this; see dg_set_anomaly_mode). The planner may then
     *  fuse elementwise consumers into it (see dg_op_def.forward_range): they run on each
     *  range while it is still in cache, instead of as passes of their own. */
    DG_OP_EPILOGUE = 1u << 4,
};

/** Type of one field of an op's attribute struct (dg_attr_field). */
typedef enum dg_attr_type {
    DG_ATTR_INT,   /**< C `int` */
    DG_ATTR_INT64, /**< `int64_t` */
    DG_ATTR_FLOAT, /**< `float` */
    DG_ATTR_SHAPE, /**< `dg_shape` */
} dg_attr_type;

/** Describes one field of an op's attribute struct by name, so that tools which do not know
 *  the struct (the ONNX exporter, printers) can read an op's parameters with
 *  dg_node_attr_int, dg_node_attr_float and dg_node_attr_shape. An op lists its fields in
 *  dg_op_def.attr_fields, ended by an entry whose name is NULL:
 *  `{"trans_a", DG_ATTR_INT, offsetof(matmul_attrs, trans_a), 1}`. */
typedef struct dg_attr_field {
    const char *name;  /**< what the parameter is called ("slope", "stride"); NULL ends a list */
    dg_attr_type type; /**< the C type of each element */
    size_t offset;     /**< offsetof the field in the attribute struct */
    int count;         /**< elements: 2 for `int stride[2]`; 0 counts as 1 */
} dg_attr_field;

/** Computes the output shape from the inputs' shapes and the attributes, or writes a
 *  message (without the op name; it is prefixed) into msg and returns an error status.
 *  Called when a node is created and again whenever a run changes the batch size. */
typedef dg_status (*dg_shape_fn)(dg_node *const *inputs, int n, const void *attrs, dg_shape *out,
                                 char *msg, size_t msg_size);

/** An op: name, shape rule, forward kernel, backward (a vector-Jacobian product built from
 *  graph ops) and what the planner must know about its memory accesses. The definition is
 *  read, not copied, by every node using it, so it must outlive those graphs (a
 *  `static const` object). Unused fields may be left zero. */
typedef struct dg_op_def {
    const char *name; /**< shown in messages, DOT and dg_node_op_name; not copied */
    int n_inputs;     /**< exact input count (>= 1), or DG_VARIADIC */
    unsigned flags;   /**< DG_OP_NO_GRAD, DG_OP_INPLACE, DG_OP_VIEW, or 0 */
    /** Bit k set: the kernel reads only the shape of input k, never its values (so the
     *  planner need not compute or keep that input for this node). Inputs 0..63. */
    uint64_t shape_only;
    /** Bit k set: the kernel writes input k in place (optimizer updates, step counters,
     *  generator state, running statistics). Input k must be a leaf (parameter, state or
     *  input) and gets no gradient through this op. Within a run every other node reading
     *  that leaf runs first, unless it depends on this op. Inputs 0..63. */
    uint64_t writes;
    dg_shape_fn infer_shape; /**< the shape rule (required) */
    /** Computes dg_node_data(self) from the inputs' data (required). May return an error
     *  (message via dg_set_error) for data problems found at run time, such as an
     *  out-of-range label. Must not allocate: use scratch_bytes for temporary memory. */
    dg_status (*forward)(dg_node *self);
    /** Given dy (the gradient of the loss w.r.t. self, same shape as self), sets dx[i] to
     *  the gradient w.r.t. input i, built with graph ops, for each input that
     *  dg_node_requires_grad; leaves NULL for no contribution. A dx[i] whose shape differs
     *  from input i but broadcasts to it is summed back by the engine. NULL: not
     *  differentiable (an error if a gradient is requested through it). */
    dg_status (*backward)(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx);
    /** Optional: bytes of temporary memory forward needs (im2col buffers, ...), given the
     *  node's current shapes. The plan reserves them; dg_node_scratch returns them. */
    size_t (*scratch_bytes)(const dg_node *self);
    /** Optional: the fields of the attribute struct by name and type, ended by an entry
     *  whose name is NULL (see dg_attr_field). Lets exporters read the op's parameters. */
    const dg_attr_field *attr_fields;
    /** Optional, with forward_range: 1 when, for this node's shapes, the op is elementwise
     *  in input k: its work splits over the flat elements of input k, and the part for
     *  elements [lo, hi) reads only those elements of input k (any of the other inputs) and
     *  writes only elements [lo, hi) of its output (when the output has input k's element
     *  count) and of the inputs it writes (when they have it). */
    int (*fusable)(const dg_node *self, int k);
    /** Optional: forward restricted to elements [lo, hi) of the input `fusable` accepted.
     *  Calls over disjoint ranges covering that input, in any order and on several threads
     *  at once, must together do exactly what forward does, bit for bit. The planner calls
     *  it, instead of forward, from the epilogue of a DG_OP_EPILOGUE producer of that input
     *  that runs right before this node. Must not start parallel loops or use scratch. */
    void (*forward_range)(dg_node *self, int64_t lo, int64_t hi);
} dg_op_def;

/** Creates a node applying `op` to `inputs`. Checks the inputs (non-NULL, same graph,
 *  count) and the shape rule. `attrs` (attrs_size bytes, copied and owned by the node; NULL
 *  and 0 for none) holds the op's parameters in whatever struct the op defines. Returns
 *  NULL on error with the graph's error set. */
dg_node *dg_apply(dg_graph *g, const dg_op_def *op, int n, dg_node *const *inputs,
                  const void *attrs, size_t attrs_size);
/** The node's copy of its attributes (16-byte aligned; kernels may update their own, e.g.
 *  a frozen flag), or NULL if it has none. */
void *dg_node_attrs(const dg_node *n);
/** Size in bytes of the node's attributes. */
size_t dg_node_attrs_size(const dg_node *n);
/** The op of an op node, or NULL for leaves. */
const dg_op_def *dg_node_op(const dg_node *n);
/** The field `name` of the node's op's attr_fields, or NULL (leaves, ops without such
 *  a field). */
const dg_attr_field *dg_node_attr_field(const dg_node *n, const char *name);
/** Reads element `index` of the integer attribute `name` (DG_ATTR_INT or DG_ATTR_INT64) of
 *  op node n into *out. DG_ERR_ARG, with a message naming the node, its op and the attribute,
 *  when the op describes no such field, it has another type or index is out of range;
 *  DG_ERR_STATE when the op's description lies outside the node's attributes. */
dg_status dg_node_attr_int(const dg_node *n, const char *name, int index, int64_t *out);
/** Reads element `index` of the DG_ATTR_FLOAT attribute `name`; errors as dg_node_attr_int. */
dg_status dg_node_attr_float(const dg_node *n, const char *name, int index, float *out);
/** Reads the DG_ATTR_SHAPE attribute `name`; errors as dg_node_attr_int. */
dg_status dg_node_attr_shape(const dg_node *n, const char *name, dg_shape *out);
/** For kernels of DG_OP_EPILOGUE ops, during forward: elements [lo, hi) of self's output
 *  are final; runs the consumers the planner fused into this node on them (nothing when
 *  there are none). Thread-safe for disjoint ranges. */
void dg_node_epilogue(dg_node *self, int64_t lo, int64_t hi);
/** For kernels of DG_OP_EPILOGUE ops: 1 when consumers are fused into the running node, so
 *  reporting ranges is worth the kernel's trouble. */
int dg_node_has_epilogue(const dg_node *self);
/** During forward: the op's scratch memory (scratch_bytes(self) bytes, 64-byte aligned);
 *  NULL outside forward or when the op asked for none. */
void *dg_node_scratch(const dg_node *self);

/* ---- parallel loops (OpenMP underneath, results independent of the thread count) ---- */

/** fn(ctx, lo, hi) over disjoint ranges covering [0, n). */
typedef void (*dg_range_fn)(void *ctx, int64_t lo, int64_t hi);
/** Calls fn over disjoint ranges covering [0, n), on several threads when the work (n times
 *  `cost` elementary operations) is worth it, inline otherwise. Where the ranges split only
 *  affects speed, so each index must be written independently of the others. */
void dg_parallel_for(int64_t n, int64_t cost, dg_range_fn fn, void *ctx);
/** Partial sum of items [lo, hi), in double. */
typedef double (*dg_sum_fn)(void *ctx, int64_t lo, int64_t hi);
/** Sum of fn over [0, n): the range is cut into blocks whose size depends only on n and
 *  `cost` (never on the thread count), blocks are summed in parallel and added in block
 *  order, so the result is bitwise reproducible. */
double dg_parallel_sum(int64_t n, int64_t cost, dg_sum_fn fn, void *ctx);
/** Number of threads kernels use for `work` elementary operations (1 below the threshold
 *  where a parallel region pays off). */
int dg_threads_for(int64_t work);

/** C = op(A) op(B) (+ C if accumulate), row-major with leading dimensions in elements;
 *  op transposes when the flag is set. Bitwise identical for any thread count. */
void dg_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
             const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate);

/* ---- shapes for rules and kernels ---- */

/** Shape rule of ops whose output has their first input's shape. */
dg_status dg_rule_same_shape(dg_node *const *inputs, int n, const void *attrs, dg_shape *out,
                             char *msg, size_t msg_size);
/** NumPy broadcast of a and b into *out, or DG_ERR_SHAPE with both shapes in msg. */
dg_status dg_broadcast_shapes(dg_shape a, dg_shape b, dg_shape *out, char *msg, size_t msg_size);
/** The shape right-aligned to four dimensions (leading 1s), as broadcasting sees it. */
void dg_shape_pad4(dg_shape s, int64_t out[4]);
/** Element strides of s right-aligned to four dimensions, 0 along axes where s has size 1
 *  and `to` does not (the axes s is broadcast along). */
void dg_broadcast_strides(dg_shape s, const int64_t to[4], int64_t strides[4]);
/** y (shape ys) = x (shape xs) summed over the axes along which ys broadcasts to xs, in a
 *  fixed order (parallel over kept leading rows). */
void dg_kernel_sum_to(const float *x, dg_shape xs, float *y, dg_shape ys);
/** y (shape ys) = x (shape xs) repeated along the axes where xs has size 1. */
void dg_kernel_broadcast(const float *x, dg_shape xs, float *y, dg_shape ys);

/* ---- builders: marks, rollback, scopes ---- */

/** A point in a graph's construction to roll back to (see dg_graph_rollback). */
typedef struct dg_mark {
    int nodes;       /**< node count at the mark */
    int passes;      /**< backward passes at the mark */
    int scope_depth; /**< open scopes at the mark */
} dg_mark;
/** The graph's current point of construction. */
dg_mark dg_graph_mark(const dg_graph *g);
/** Undoes everything built since `m` (nodes, backward passes, gradient links, open
 *  scopes). The graph's error message stays, prefixed with "who: " unless it already
 *  starts so (who NULL: unchanged). Returns the graph's error status (DG_ERR_STATE if none
 *  was set). For builders that fail half-way:
 *  `if (!y) return dg_graph_rollback(g, m, "dense"), NULL;`. */
dg_status dg_graph_rollback(dg_graph *g, dg_mark m, const char *who);
/** Records the graph's current error message again as "who: message" (unless it already
 *  starts with "who:"), for a call reporting a failure of a call it made. Returns the
 *  graph's error status (DG_ERR_STATE if none was set). */
dg_status dg_error_prefix(dg_graph *g, const char *who);
/** The innermost open scope's full path ("encoder/dense1"), or NULL if none is open. */
const char *dg_scope_current(const dg_graph *g);
/** 1 if some node was created in scope `path` or beneath it ("dense1" is in use once
 *  "dense1" or "dense1/act" has held a node or been pushed). */
int dg_scope_in_use(const dg_graph *g, const char *path);

#ifdef __cplusplus
}
#endif
#endif
