/* A small protobuf writer for the ONNX tests, independent of src/onnx: it builds models field
 * by field from onnx.proto's field numbers, so the tests can write what dagrad's own writer
 * never would (packed and unpacked numbers, float_data, Constant variants, broken files). */
#ifndef DG_TEST_ONNX_PB_H
#define DG_TEST_ONNX_PB_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct pb {
    unsigned char *b;
    size_t n, cap;
} pb;

static void pb_raw(pb *p, const void *d, size_t n) {
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2 + 64;
        p->b = realloc(p->b, p->cap);
        if (!p->b) abort(); /* test harness */
    }
    if (n) memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void pb_varint(pb *p, uint64_t v) {
    do {
        unsigned char c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        pb_raw(p, &c, 1);
    } while (v);
}
static void pb_key(pb *p, int field, int wt) { pb_varint(p, (uint64_t)field << 3 | (unsigned)wt); }
static void pb_int(pb *p, int field, int64_t v) {
    pb_key(p, field, 0);
    pb_varint(p, (uint64_t)v);
}
static void pb_bytes(pb *p, int field, const void *d, size_t n) {
    pb_key(p, field, 2);
    pb_varint(p, n);
    pb_raw(p, d, n);
}
static void pb_str(pb *p, int field, const char *s) { pb_bytes(p, field, s, strlen(s)); }
static void pb_float(pb *p, int field, float f) {
    unsigned char b[4];
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(u >> (8 * i));
    pb_key(p, field, 5);
    pb_raw(p, b, 4);
}
/* Appends child as an embedded message and frees it. */
static void pb_msg(pb *p, int field, pb *child) {
    pb_bytes(p, field, child->b, child->n);
    free(child->b);
    memset(child, 0, sizeof *child);
}

/* ---- ONNX messages ---- */

enum { T_FLOAT = 1, T_INT32 = 6, T_INT64 = 7, T_DOUBLE = 11 };

/* TensorProto with float values as raw_data (raw 1) or float_data packed (raw 0), or
 * int64 values (dtype T_INT64) as raw_data or int64_data. */
static pb pb_tensor(const char *name, int dtype, int ndims, const int64_t *dims, const void *values,
                    int64_t count, int raw) {
    pb t = {0};
    for (int i = 0; i < ndims; i++) pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, dtype);
    if (name) pb_str(&t, 8, name);
    size_t esz = dtype == T_INT64 || dtype == T_DOUBLE ? 8 : 4;
    if (raw) {
        pb_bytes(&t, 9, values, (size_t)count * esz); /* the tests run on little-endian hosts */
    } else if (dtype == T_INT64) {
        pb pk = {0};
        for (int64_t i = 0; i < count; i++) pb_varint(&pk, (uint64_t)((const int64_t *)values)[i]);
        pb_msg(&t, 7, &pk);
    } else {
        pb_bytes(&t, 4, values, (size_t)count * 4);
    }
    return t;
}

static pb pb_attr_int(const char *name, int64_t v) {
    pb a = {0};
    pb_str(&a, 1, name);
    pb_int(&a, 3, v);
    pb_int(&a, 20, 2);
    return a;
}
static pb pb_attr_float(const char *name, float v) {
    pb a = {0};
    pb_str(&a, 1, name);
    pb_float(&a, 2, v);
    pb_int(&a, 20, 1);
    return a;
}
static pb pb_attr_ints(const char *name, int n, const int64_t *v) {
    pb a = {0};
    pb_str(&a, 1, name);
    for (int i = 0; i < n; i++) pb_int(&a, 8, v[i]); /* unpacked, as proto2 writes them */
    pb_int(&a, 20, 7);
    return a;
}
static pb pb_attr_tensor(const char *name, pb *t) {
    pb a = {0};
    pb_str(&a, 1, name);
    pb_msg(&a, 5, t);
    pb_int(&a, 20, 4);
    return a;
}

/* Adds each comma-separated name of `list` ("x,,b": the middle one empty) as field `field`. */
static void pb_names(pb *p, int field, const char *list) {
    if (!list) return;
    const char *s = list;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        pb_bytes(p, field, s, n);
        if (!e) break;
        s = e + 1;
    }
}

/* NodeProto; attrs (n of them) are consumed. */
static pb pb_node(const char *op, const char *name, const char *ins, const char *outs, pb *attrs,
                  int n) {
    pb node = {0};
    pb_names(&node, 1, ins);
    pb_names(&node, 2, outs);
    if (name) pb_str(&node, 3, name);
    pb_str(&node, 4, op);
    for (int i = 0; i < n; i++) pb_msg(&node, 5, &attrs[i]);
    return node;
}

/* ValueInfoProto of a tensor; dims[i] < 0 is the symbolic dimension "N". */
static pb pb_value(const char *name, int elem, int ndims, const int64_t *dims) {
    pb shape = {0}, tt = {0}, type = {0}, v = {0};
    for (int i = 0; i < ndims; i++) {
        pb d = {0};
        if (dims[i] < 0)
            pb_str(&d, 2, "N");
        else
            pb_int(&d, 1, dims[i]);
        pb_msg(&shape, 1, &d);
    }
    pb_int(&tt, 1, elem);
    if (ndims >= 0) pb_msg(&tt, 2, &shape);
    free(shape.b);
    pb_msg(&type, 1, &tt);
    pb_str(&v, 1, name);
    pb_msg(&v, 2, &type);
    return v;
}

/* A GraphProto being assembled, then a ModelProto around it. */
typedef struct pb_model {
    pb graph;
    int64_t opset, ir_version;
} pb_model;

static void pbm_node(pb_model *m, pb n) { pb_msg(&m->graph, 1, &n); }
static void pbm_init(pb_model *m, pb t) { pb_msg(&m->graph, 5, &t); }
static void pbm_input(pb_model *m, pb v) { pb_msg(&m->graph, 11, &v); }
static void pbm_output(pb_model *m, pb v) { pb_msg(&m->graph, 12, &v); }

/* The model's bytes (malloc'd, *size set); consumes the graph. */
static unsigned char *pbm_finish(pb_model *m, size_t *size) {
    pb model = {0}, opset = {0};
    pb_int(&model, 1, m->ir_version ? m->ir_version : 7);
    pb_str(&model, 2, "test");
    pb_str(&m->graph, 2, "g");
    pb_msg(&model, 7, &m->graph);
    pb_str(&opset, 1, "");
    pb_int(&opset, 2, m->opset ? m->opset : 13);
    pb_msg(&model, 8, &opset);
    *size = model.n;
    return model.b;
}

#endif
