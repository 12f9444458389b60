/** \file
 * ONNX export and import: a graph's inference part as an ONNX model (opset 13 or later)
 * that other runtimes (ONNX Runtime, Netron, PyTorch's tools) read, and dagrad graphs built
 * from ONNX models, with their weights as trainable parameters.
 *
 * What is exported: the nodes the chosen outputs depend on, back to the chosen inputs.
 * Parameters and state become initializers, constants Constant nodes; a batch input's
 * leading dimension is the symbolic dimension "N"; names are kept (unnamed nodes get
 * "<layer>/<op>"); dropout is left out (the evaluation-mode graph); a matmul plus a bias
 * becomes one Gemm. Ops: matmul, add, sub, mul, div, neg, scale, shift, pow, exp, log,
 * sqrt, abs, relu, leaky_relu, sigmoid, tanh, softmax, log_softmax (last axis), reshape
 * (and so dg_flatten) and transpose; an op without an ONNX form is an error naming it,
 * unless the options give an exporter for its definition (custom ops).
 *
 * What is imported: ONNX models of that op subset with float32 values (and int64 shape
 * tensors), ai.onnx opsets 13 to 21 (Flatten, Gemm, Identity, Dropout and Constant are read
 * too). Everything is checked before the graph changes: an unsupported op, opset,
 * attribute or data type, or a malformed or hostile file, is an error naming the file and
 * the ONNX node, and leaves the graph as it was. docs/ONNX.md shows both directions;
 * docs/FORMATS.md describes the encoding. */
#ifndef DAGRAD_ONNX_H
#define DAGRAD_ONNX_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct dg_op_def;

/** The state of one export, handed to exporters (opaque). */
typedef struct dg_onnx_writer dg_onnx_writer;

/** Writes the ONNX form of op node `node`: one or more ONNX nodes (dg_onnx_add_node) whose
 *  last result is the node's value, named dg_onnx_name(w, node). `ctx` is the exporter's.
 *  Returns DG_OK, or an error status with the graph's message set. */
typedef dg_status (*dg_onnx_export_fn)(dg_onnx_writer *w, const dg_node *node, void *ctx);

/** An exporter for the nodes of one op definition (a custom op, or to override how a
 *  built-in op is written). */
typedef struct dg_onnx_exporter {
    const struct dg_op_def *op; /**< the op it writes (compared by address) */
    dg_onnx_export_fn fn;       /**< writes one node */
    void *ctx;                  /**< passed to fn */
} dg_onnx_exporter;

/** Options of dg_onnx_save; a zeroed struct (or NULL) gives the defaults. */
typedef struct dg_onnx_save_options {
    int opset;                         /**< the ai.onnx opset to declare, 13 to 21; 0 means 13 */
    const char *graph_name;            /**< the ONNX graph's name; NULL means "dagrad" */
    const char *batch_name;            /**< the symbolic batch dimension's name; NULL means "N" */
    const dg_onnx_exporter *exporters; /**< exporters tried before the built-in forms */
    int n_exporters;                   /**< entries in exporters */
    /** Optional: the ONNX names of the outputs (n_outputs entries; a NULL entry, or a NULL
     *  list, means the node's name, or "output"). A name another value already has is an
     *  error. dg_onnx_model.output_names gives a loaded model's. */
    const char *const *output_names;
} dg_onnx_save_options;

/** Writes the part of g that computes `outputs` from `inputs` as an ONNX model at `path`
 *  (atomically, like dg_checkpoint_save). Inputs are usually dg_input nodes but may be any
 *  node (the model then starts there); every input node the outputs depend on must be among
 *  them. A node may be given as several outputs (under different names). Parameter and state values
 * are those g holds now. The model does not depend on the graph's training mode: dropout is always
 * left out. Errors (DG_ERR_ARG for bad node lists, DG_ERR_UNSUPPORTED for an op without an ONNX
 * form, DG_ERR_IO) name the node and its op; nothing is written then. */
dg_status dg_onnx_save(dg_graph *g, const char *path, int n_inputs, dg_node *const *inputs,
                       int n_outputs, dg_node *const *outputs, const dg_onnx_save_options *opts);

/** dg_onnx_save into memory: on success *data is a malloc'd buffer of *size bytes that the
 *  caller releases with free(); on error *data is NULL and *size 0. */
dg_status dg_onnx_save_mem(dg_graph *g, int n_inputs, dg_node *const *inputs, int n_outputs,
                           dg_node *const *outputs, const dg_onnx_save_options *opts, void **data,
                           size_t *size);

/* ---- for exporters ---- */

/** The ONNX value name of node n: an input of the node being written, or that node itself
 *  (its result must get this name). NULL, with an error set, for a node the export does not
 *  hold. Valid until the export ends. */
const char *dg_onnx_name(dg_onnx_writer *w, const dg_node *n);
/** A fresh value name "<name of the node being written>/<suffix>" for an intermediate
 *  result, unique in the model. Valid until the export ends; NULL when out of memory. */
const char *dg_onnx_temp(dg_onnx_writer *w, const char *suffix);
/** Appends an ONNX node `op_type` reading the values `inputs` (names; "" for an omitted
 *  optional input) and writing `output` (NULL: the value of the node being written). It is
 *  named "<layer>/<op_type>" after the node's layer scope, made unique. Attributes and a
 *  domain set next apply to it. */
dg_status dg_onnx_add_node(dg_onnx_writer *w, const char *op_type, int n_inputs,
                           const char *const *inputs, const char *output);
/** Puts the last added node in operator-set domain `domain` (custom ops, e.g.
 *  "com.example"), declared in the model with `version`. */
dg_status dg_onnx_set_domain(dg_onnx_writer *w, const char *domain, int64_t version);
/** Sets an INT attribute on the last added node. */
dg_status dg_onnx_attr_int(dg_onnx_writer *w, const char *name, int64_t value);
/** Sets a FLOAT attribute on the last added node. */
dg_status dg_onnx_attr_float(dg_onnx_writer *w, const char *name, float value);
/** Sets an INTS attribute (n values, copied) on the last added node. */
dg_status dg_onnx_attr_ints(dg_onnx_writer *w, const char *name, int n, const int64_t *values);
/** Adds a Constant node holding a copy of `data` (shape's element count of floats) and
 *  returns its value name "<name of the node being written>/<suffix>"; NULL on error. */
const char *dg_onnx_constant(dg_onnx_writer *w, const char *suffix, dg_shape shape,
                             const float *data);
/** Adds a 1-D INT64 initializer (n values, copied; shapes, axes) and returns its value
 *  name "<name of the node being written>/<suffix>"; NULL on error. */
const char *dg_onnx_int64s(dg_onnx_writer *w, const char *suffix, int n, const int64_t *values);

/* ---- import ---- */

/** Options of dg_onnx_load; a zeroed struct (or NULL) gives the defaults. */
typedef struct dg_onnx_load_options {
    /** At most this many elements in one row (one batch item) of all graph inputs together,
     *  whose buffers dg_input allocates before any data exists; 0 means 2^26. */
    int64_t max_input_elements;
    /** At most this many elements in any value the model computes, per batch row (a small
     *  file can describe broadcasts whose results would not fit in memory when run); 0 means
     *  2^28. */
    int64_t max_value_elements;
} dg_onnx_load_options;

/** What dg_onnx_load built: the graph's inputs and outputs in the file's order. */
typedef struct dg_onnx_model {
    int n_inputs;              /**< graph inputs (initializers listed as inputs are not counted) */
    dg_node **inputs;          /**< dg_input nodes named after the ONNX inputs */
    int n_outputs;             /**< graph outputs */
    dg_node **outputs;         /**< the nodes computing them (named after the ONNX outputs, unless
                                    an output is another value unchanged, e.g. through Identity) */
    const char **output_names; /**< the ONNX names of the outputs (for
                                    dg_onnx_save_options.output_names) */
    int64_t opset;             /**< the file's ai.onnx opset */
    int64_t ir_version;        /**< the file's IR version */
} dg_onnx_model;

/** Builds the ONNX model at `path` into g: inputs become dg_input nodes (a symbolic or
 *  missing leading dimension becomes DG_BATCH), float initializers dg_param nodes named
 *  after them (trainable; a name g already uses for a parameter is an error), Constant
 *  nodes dg_const, each ONNX node the dagrad ops that compute it, named after its outputs
 *  and built in a layer scope taken from the node's name ("/fc1/Gemm" and "fc1/Gemm" are
 *  in scope "fc1"). `out` (may be NULL) receives the inputs and outputs; release its arrays
 *  with dg_onnx_model_free. On any error g is left as it was, with a message naming the
 *  file and the ONNX node (index, name, op type): DG_ERR_FORMAT for malformed files,
 *  DG_ERR_UNSUPPORTED for valid models outside the subset, DG_ERR_SHAPE for inconsistent
 *  shapes, DG_ERR_IO, DG_ERR_NOMEM. */
dg_status dg_onnx_load(dg_graph *g, const char *path, const dg_onnx_load_options *opts,
                       dg_onnx_model *out);

/** dg_onnx_load from `size` bytes in memory. */
dg_status dg_onnx_load_mem(dg_graph *g, const void *data, size_t size,
                           const dg_onnx_load_options *opts, dg_onnx_model *out);

/** Frees the arrays of a dg_onnx_model and zeroes it (the nodes belong to their graph).
 *  NULL is a no-op. */
void dg_onnx_model_free(dg_onnx_model *m);

#ifdef __cplusplus
}
#endif
#endif
