/* Internal layout of graphs and nodes, shared by src/graph and src/ops.
 * Not installed: users see only the opaque types and accessors of dagrad/core.h. */
#ifndef DG_INTERNAL_H
#define DG_INTERNAL_H

#include "dagrad/core.h"

#include <stdint.h>

struct dg_node {
    dg_graph *graph;
    int id;
    dg_node_kind kind;
    const dg_op_def *op; /* NULL for leaves */
    int n_inputs;
    dg_node *inputs[DG_MAX_INPUTS];
    dg_attrs attrs;
    dg_shape shape;
    int64_t numel;
    float *value;      /* numel floats, 64-byte aligned, owned */
    char *name;        /* owned, may be NULL */
    const char *scope; /* interned in the graph, may be NULL */
    dg_node *grad;     /* from the latest backward reaching this node */
    dg_node *grad_of;  /* set on the accumulated gradient node of some value */
    int backward_pass; /* 0: user-built; k: built by the k-th backward */
    unsigned requires_grad : 1;
    unsigned fed : 1; /* inputs: data was fed at least once */
};

struct dg_graph {
    dg_node **nodes;
    int n_nodes, cap_nodes;
    dg_status status;
    char err[512];
    uint64_t rng;
    int n_backward; /* how many backward passes built nodes */
    int anomaly;
    /* scopes: a stack of interned strings ("dense1", "dense1/act") */
    char **scope_strings;
    int n_scope_strings, cap_scope_strings;
    const char *scope_stack[16];
    int scope_depth;
    /* cached execution plan of the last dg_run_many */
    int *plan;
    int plan_len, plan_cap;
    int plan_valid_nodes; /* node count when the plan was made */
    dg_node *plan_targets[8];
    int plan_n_targets;
    unsigned char *mark; /* scratch, cap_nodes bytes */
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

/* Removes every node created at index >= n (used to undo a failed backward). */
void dg__graph_truncate(dg_graph *g, int n);

/* Number of threads to use for a loop of `work` elementary operations: 1 below a
 * threshold so tiny tensors pay no OpenMP overhead. */
int dg__threads_for(int64_t work);

#endif
