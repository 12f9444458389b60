/* Shared by the files of src/onnx: a bump allocator, the in-memory form of the part of an
 * ONNX model dagrad reads and writes (the "IR" below: plain structs mirroring onnx.proto's
 * messages), the protobuf wire codec that turns bytes into the IR and back, and the table
 * of ONNX forms of dagrad's ops. Not installed; uses public headers and src/io's helpers
 * only, like the other file formats.
 *
 * The protobuf encoding is written here (docs/FORMATS.md says why): the reader checks every
 * length against the bytes that remain, reads only the fields dagrad uses and skips the
 * others, and allocates at most a fixed multiple of the input's size. */
#ifndef DG_ONNX_INTERNAL_H
#define DG_ONNX_INTERNAL_H

#include "dagrad/core.h"
#include "dagrad/onnx.h"
#include "dagrad/opkit.h"

#include <stddef.h>
#include <stdint.h>

/* ---- arena: everything parsed from or built for one model, freed at once ---- */

typedef struct ox_block ox_block;
typedef struct ox_arena {
    ox_block *head;
    size_t total, limit; /* bytes handed out; limit 0: none */
} ox_arena;

/* n zeroed bytes, 16-byte aligned; NULL when out of memory or past the limit. */
void *ox_alloc(ox_arena *a, size_t n);
/* A NUL-terminated copy of n bytes. */
char *ox_strndup(ox_arena *a, const char *s, size_t n);
char *ox_strdup(ox_arena *a, const char *s);
void ox_arena_free(ox_arena *a);

/* ---- a map from strings (not copied) to ints, for value and node names ---- */

typedef struct ox_map {
    const char **keys;
    int *vals;
    size_t cap, used;
} ox_map;

/* 1 and *val when key is in the map, else 0. */
int ox_map_get(const ox_map *m, const char *key, int *val);
/* Adds or replaces key; DG_ERR_NOMEM when it cannot grow. */
dg_status ox_map_put(ox_map *m, const char *key, int val);
void ox_map_free(ox_map *m);

/* ---- ONNX enums used here (onnx.proto) ---- */

enum {
    OX_DT_FLOAT = 1,
    OX_DT_INT64 = 7,
};
enum {
    OX_AT_FLOAT = 1,
    OX_AT_INT = 2,
    OX_AT_STRING = 3,
    OX_AT_TENSOR = 4,
    OX_AT_GRAPH = 5,
    OX_AT_FLOATS = 6,
    OX_AT_INTS = 7,
};
/* "FLOAT", "INT64", ... or "type 99". buf: at least 24 bytes. */
const char *ox_dtype_name(int32_t dt, char *buf, size_t size);
const char *ox_attr_type_name(int32_t t);

/* ---- the IR ---- */

typedef struct ox_tensor {
    const char *name;
    int32_t dtype;
    int ndims;
    int64_t *dims;
    /* where the values are, when read: raw_data, or the typed repeated fields */
    const unsigned char *raw; /* raw_data, little-endian, borrowed from the input */
    size_t raw_len;
    int has_raw;
    float *floats; /* float_data */
    int64_t n_floats;
    int64_t *ints; /* int64_data */
    int64_t n_ints;
    int other_data; /* values in a typed field dagrad does not read (int32_data, ...) */
    int external;   /* data_location EXTERNAL or external_data given */
    int segmented;  /* segment given */
    /* when written: `host` holds numel values of dtype FLOAT or INT64 in host order, written
     * as raw_data */
    const void *host;
} ox_tensor;

typedef struct ox_attr {
    const char *name;
    int32_t type;
    float f;
    int64_t i;
    const char *s; /* NUL-terminated copy; s_len bytes */
    size_t s_len;
    ox_tensor *t;
    int n_floats;
    float *floats;
    int n_ints;
    int64_t *ints;
    int has_f, has_i, has_s, has_ref;
    int n_other; /* graphs, strings, tensors, sparse tensors, type protos */
} ox_attr;

typedef struct ox_node {
    const char *name, *op_type, *domain; /* never NULL once parsed ("" when absent) */
    int n_in, n_out, n_attrs;
    const char **in, **out;
    ox_attr *attrs;
} ox_node;

typedef struct ox_dim {
    int64_t value;     /* -1 when symbolic or unknown */
    const char *param; /* dim_param, or NULL */
} ox_dim;

typedef struct ox_value {
    const char *name;
    int has_type;  /* a TypeProto was given */
    int is_tensor; /* it is a tensor type */
    int32_t elem;  /* its element type (0 unknown) */
    int has_shape; /* a shape was given */
    int ndims;
    ox_dim *dims;
} ox_value;

typedef struct ox_graph {
    const char *name;
    int n_nodes, n_inits, n_inputs, n_outputs, n_sparse;
    ox_node *nodes;
    ox_tensor *inits;
    ox_value *inputs, *outputs;
} ox_graph;

typedef struct ox_opset {
    const char *domain;
    int64_t version;
} ox_opset;

typedef struct ox_model {
    int64_t ir_version;
    int n_opsets;
    ox_opset *opsets;
    const char *producer_name, *producer_version, *doc;
    int has_graph;
    int n_functions;
    ox_graph graph;
} ox_model;

/* ---- wire codec (model.c) ---- */

/* Parses size bytes into *m, allocating from a (whose limit it sets from size). On failure
 * returns DG_ERR_FORMAT (or DG_ERR_NOMEM) with a message in err saying where ("at byte 1203
 * in graph, node 3 'fc1/Gemm', attribute 'alpha': ..."). Tensor data stays in `data`, which
 * must outlive *m. */
dg_status ox_parse_model(const unsigned char *data, size_t size, ox_arena *a, ox_model *m,
                         char *err, size_t err_size);

/* Where serialised bytes go. */
typedef struct ox_sink {
    void (*put)(void *ctx, const void *data, size_t n);
    void *ctx;
} ox_sink;
/* Writes m to the sink; returns the number of bytes. */
uint64_t ox_write_model(const ox_model *m, const ox_sink *sink);

/* ---- the ONNX forms of dagrad's ops (ops.c) ---- */

/* Import: the state of one dg_onnx_load, seen by the op table's import functions. */
typedef struct ox_importer ox_importer;
typedef struct ox_op_form ox_op_form;

/* Builds the dagrad nodes for ONNX node `n` and sets its outputs (ox_set_output). */
typedef dg_status (*ox_import_fn)(ox_importer *im, const ox_node *n, const ox_op_form *form);

/* Recognises a form that stands for several dagrad nodes ending at n (dropout's x * mask;
 * batch norm's statistics and scaling): returns how many nodes the ONNX form reads, stored in
 * reads (at most cap), or 0 when n is not such a composite. *identity = 1: the whole
 * composite is reads[0] unchanged (dropout in evaluation form), nothing is written for it. */
typedef int (*ox_composite_fn)(const dg_node *n, dg_node **reads, int cap, int *identity);

/* One row: how a dagrad op is written and how an ONNX op is read; either side may be NULL.
 * Built-in export functions get their row as the exporter's ctx. `unary` and `binary` are
 * the builders of rows whose ONNX op maps one to one onto a dagrad op. A row with a
 * `composite` applies only to nodes it recognises, and is tried before the op's plain row;
 * the exporter then follows only the nodes it reads. */
struct ox_op_form {
    const char *dg_name; /* dagrad op name (dg_node_op_name) */
    dg_onnx_export_fn export_fn;
    const char *onnx_type; /* ONNX op type of the default domain */
    ox_import_fn import_fn;
    dg_node *(*unary)(dg_graph *g, dg_node *x);
    dg_node *(*binary)(dg_graph *g, dg_node *a, dg_node *b);
    ox_composite_fn composite;
};

/* The table, ended by a zeroed row. */
extern const ox_op_form ox_op_forms[];

/* Export helpers the table uses beyond the public writer API (export.c). */
/* How many nodes of the exported set read n's value. */
int ox_consumers(const dg_onnx_writer *w, const dg_node *n);
/* The one node of the exported set reading n, or NULL. */
dg_node *ox_sole_consumer(const dg_onnx_writer *w, const dg_node *n);
/* 1 if n is a chosen input or output of the model. */
int ox_is_output(const dg_onnx_writer *w, const dg_node *n);
/* 1 if n is written by its row of the table (no custom exporter for its op). */
int ox_builtin(const dg_onnx_writer *w, const dg_node *n);
/* Marks n as written by its consumer (a matmul inside a Gemm). */
void ox_fuse(dg_onnx_writer *w, const dg_node *n);
/* The row writing op node n (NULL for a custom exporter's node or one without a form). */
const ox_op_form *ox_form_of(const dg_onnx_writer *w, const dg_node *n);
/* The ai.onnx opset the model declares. */
int ox_writer_opset(const dg_onnx_writer *w);

/* Import helpers (import.c). */
dg_graph *ox_graph_of(ox_importer *im);
/* The dagrad node holding input i of n (a parameter or constant is made on first use), or
 * NULL with an error naming the node and the input. */
dg_node *ox_input(ox_importer *im, const ox_node *n, int i);
/* ox_input for a value dagrad keeps as state (DG_STATE: batch norm's running statistics):
 * an initializer becomes a dg_state node; one already read as a parameter is an error. */
dg_node *ox_state_input(ox_importer *im, const ox_node *n, int i);
/* 1 if input i is given (a non-empty name). */
int ox_has_input(const ox_node *n, int i);
/* Input i as a constant known while loading (an initializer or a Constant node's output): its
 * tensor, or NULL with an error saying it must be constant. */
const ox_tensor *ox_static_input(ox_importer *im, const ox_node *n, int i, const char *what);
/* The values of a static tensor as int64 (INT64) or float (FLOAT), count in *n; NULL with an
 * error naming the node if the type differs or the data is malformed. */
const int64_t *ox_tensor_ints(ox_importer *im, const ox_node *n, const ox_tensor *t,
                              int64_t *count);
const float *ox_tensor_floats(ox_importer *im, const ox_node *n, const ox_tensor *t,
                              int64_t *count);
/* Output i of n is `v` (names it after the ONNX value unless v already has a value's name:
 * Identity). */
dg_status ox_set_output(ox_importer *im, const ox_node *n, int i, dg_node *v);
/* Output i of n (if named) exists in ONNX but not in dagrad (a Dropout mask): using it later
 * is an error saying `why`. */
dg_status ox_set_unavailable(ox_importer *im, const ox_node *n, int i, const char *why);
/* The model's ai.onnx opset. */
int64_t ox_model_opset(const ox_importer *im);
/* Attributes: the value, or `def` when absent; a wrong type is an error naming the node. */
dg_status ox_attr_int(ox_importer *im, const ox_node *n, const char *name, int64_t def,
                      int64_t *out);
dg_status ox_attr_float(ox_importer *im, const ox_node *n, const char *name, float def, float *out);
/* An INTS attribute: *count values (at most cap) copied to out; *count = -1 when absent. */
dg_status ox_attr_ints(ox_importer *im, const ox_node *n, const char *name, int64_t *out, int cap,
                       int *count);
const ox_attr *ox_find_attr(const ox_node *n, const char *name);
/* Fails, naming the node: "node 3 'fc1/Gemm' (Gemm): <message>". Returns the status. */
dg_status ox_fail(ox_importer *im, const ox_node *n, dg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Rejects every attribute of n not named in `known` (a NULL-terminated list), naming it. */
dg_status ox_only_attrs(ox_importer *im, const ox_node *n, const char *const *known);

#endif
