/* The protobuf wire format of ONNX models, both ways, for the fields dagrad uses (see
 * onnx_internal.h for the IR and docs/FORMATS.md for the choice of writing it here).
 *
 * Wire format: a message is a sequence of fields, each a varint key (field number << 3 |
 * wire type) and a payload: 0 a varint, 1 eight bytes, 2 a varint length and that many
 * bytes (strings, bytes, embedded messages, packed repeated numbers), 5 four bytes. Groups
 * (3, 4) are not used by ONNX and are refused; unknown fields are skipped. Numbers are
 * little-endian; int64 values are varints of their two's complement.
 *
 * Reading never trusts a length: every field is checked against the bytes left in its
 * enclosing message before it is read, and repeated fields are counted before their arrays
 * are allocated, so what is allocated is bounded by a fixed multiple of the input's size
 * (enforced by the arena's limit as well). Tensor data is not copied: raw_data points into
 * the input. Writing computes each embedded message's length by running its writer in
 * counting mode, then writes it for real, so nothing is buffered. */
#include "onnx_internal.h"

#include "../io/io_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct ox_block {
    ox_block *prev;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *ox_alloc(ox_arena *a, size_t n) {
    if (n > SIZE_MAX / 2) return NULL;
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (n > a->limit || a->total > a->limit - n)) return NULL;
    ox_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > ((size_t)1 << 16) ? n : ((size_t)1 << 16);
        b = malloc(sizeof *b + size);
        if (!b) return NULL;
        b->prev = a->head;
        b->size = size;
        b->used = 0;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

char *ox_strndup(ox_arena *a, const char *s, size_t n) {
    char *d = n < SIZE_MAX ? ox_alloc(a, n + 1) : NULL;
    if (d && n) memcpy(d, s, n);
    return d;
}

char *ox_strdup(ox_arena *a, const char *s) { return ox_strndup(a, s, strlen(s)); }

void ox_arena_free(ox_arena *a) {
    while (a->head) {
        ox_block *p = a->head->prev;
        free(a->head);
        a->head = p;
    }
    a->total = 0;
}

/* ---- names of enums ---- */

const char *ox_dtype_name(int32_t dt, char *buf, size_t size) {
    static const char *const names[] = {
        "UNDEFINED",      "FLOAT",      "UINT8",          "INT8",       "UINT16",   "INT16",
        "INT32",          "INT64",      "STRING",         "BOOL",       "FLOAT16",  "DOUBLE",
        "UINT32",         "UINT64",     "COMPLEX64",      "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4",      "INT4",     "FLOAT4E2M1"};
    if (dt >= 0 && dt < (int32_t)(sizeof names / sizeof names[0])) return names[dt];
    snprintf(buf, size, "type %ld", (long)dt);
    return buf;
}

const char *ox_attr_type_name(int32_t t) {
    static const char *const names[] = {
        "UNDEFINED",      "FLOAT",      "INT",        "STRING",  "TENSOR", "GRAPH",
        "FLOATS",         "INTS",       "STRINGS",    "TENSORS", "GRAPHS", "SPARSE_TENSOR",
        "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
    return t >= 0 && t < (int32_t)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

/* ---- reading ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct reader {
    const unsigned char *base; /* the whole input, for byte offsets in messages */
    ox_arena *arena;
    char *err;
    size_t err_size;
} reader;

typedef struct span {
    const unsigned char *p, *end;
} span;

typedef struct field {
    uint32_t num;
    int wt;
    uint64_t v;                /* varint or fixed payload */
    const unsigned char *data; /* length-delimited payload */
    size_t len;
    const unsigned char *at; /* where the key starts */
} field;

/* Records "at byte N in WHERE: message"; returns -1. */
static int fail_at(reader *r, const unsigned char *at, const char *where, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int fail_at(reader *r, const unsigned char *at, const char *where, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->err_size, "at byte %zu in %s: %s", (size_t)(at - r->base), where, what);
    return -1;
}

static int oom(reader *r, const char *where) {
    snprintf(r->err, r->err_size,
             "out of memory reading %s (or the file describes more than "
             "its size can hold)",
             where);
    return -2;
}

/* Reads a varint at *p (before end); 0 when truncated or longer than ten bytes. */
static int read_varint(const unsigned char **p, const unsigned char *end, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (*p >= end) return 0;
        unsigned char b = *(*p)++;
        if (i == 9 && b > 1) return 0;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* The next field of s: 1, 0 at the end, -1 on malformed bytes. */
static int next_field(reader *r, span *s, field *f, const char *where) {
    if (s->p >= s->end) return 0;
    f->at = s->p;
    uint64_t key;
    if (!read_varint(&s->p, s->end, &key))
        return fail_at(r, f->at, where, "truncated or overlong field key");
    if (key >> 3 == 0 || key >> 3 > 0x1fffffff)
        return fail_at(r, f->at, where, "invalid field number %llu",
                       (unsigned long long)(key >> 3));
    f->num = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    size_t left;
    switch (f->wt) {
    case WT_VARINT:
        if (!read_varint(&s->p, s->end, &f->v))
            return fail_at(r, f->at, where, "field %u: truncated or overlong varint", f->num);
        return 1;
    case WT_I64:
        if (s->end - s->p < 8)
            return fail_at(r, f->at, where, "field %u: 8-byte value runs past the end", f->num);
        f->v = dg__get_u64le(s->p);
        s->p += 8;
        return 1;
    case WT_I32:
        if (s->end - s->p < 4)
            return fail_at(r, f->at, where, "field %u: 4-byte value runs past the end", f->num);
        f->v = dg__get_u32le(s->p);
        s->p += 4;
        return 1;
    case WT_LEN: {
        uint64_t len;
        if (!read_varint(&s->p, s->end, &len))
            return fail_at(r, f->at, where, "field %u: truncated length", f->num);
        left = (size_t)(s->end - s->p);
        if (len > left)
            return fail_at(r, f->at, where,
                           "field %u: length %llu runs past the end of its message (%zu bytes "
                           "left)",
                           f->num, (unsigned long long)len, left);
        f->data = s->p;
        f->len = (size_t)len;
        s->p += len;
        return 1;
    }
    default:
        return fail_at(r, f->at, where, "field %u: wire type %d is not valid in ONNX files", f->num,
                       f->wt);
    }
}

static int want_wt(reader *r, const field *f, int wt, const char *where, const char *name) {
    if (f->wt == wt) return 0;
    return fail_at(r, f->at, where, "field '%s' has wire type %d, expected %d", name, f->wt, wt);
}

/* A length-delimited field as a NUL-terminated string in the arena; NUL bytes refused. */
static int get_string(reader *r, const field *f, const char *where, const char *name,
                      const char **out) {
    if (want_wt(r, f, WT_LEN, where, name)) return -1;
    if (memchr(f->data, 0, f->len)) return fail_at(r, f->at, where, "'%s' holds a NUL byte", name);
    char *s = ox_strndup(r->arena, (const char *)f->data, f->len);
    if (!s) return oom(r, where);
    *out = s;
    return 0;
}

/* Counting the elements of a repeated number field: packed (LEN) or one per field. */
static int count_varints(reader *r, const field *f, const char *where, const char *name,
                         int64_t *n) {
    if (f->wt == WT_VARINT) return (*n)++, 0;
    if (f->wt != WT_LEN) return want_wt(r, f, WT_VARINT, where, name);
    int64_t c = 0;
    for (size_t i = 0; i < f->len; i++) c += !(f->data[i] & 0x80);
    if (f->len && (f->data[f->len - 1] & 0x80))
        return fail_at(r, f->at, where, "packed '%s': the last varint is cut off", name);
    *n += c;
    return 0;
}

static int count_fixed32(reader *r, const field *f, const char *where, const char *name,
                         int64_t *n) {
    if (f->wt == WT_I32) return (*n)++, 0;
    if (f->wt != WT_LEN) return want_wt(r, f, WT_I32, where, name);
    if (f->len % 4)
        return fail_at(r, f->at, where, "packed '%s' has %zu bytes, not a multiple of 4", name,
                       f->len);
    *n += (int64_t)(f->len / 4);
    return 0;
}

/* Appends the elements of f to out[*k] onwards (counted before, so they fit). */
static int take_varints(reader *r, const field *f, const char *where, int64_t *out, int64_t *k) {
    if (f->wt == WT_VARINT) return out[(*k)++] = (int64_t)f->v, 0;
    const unsigned char *p = f->data, *end = f->data + f->len;
    while (p < end) {
        uint64_t v;
        if (!read_varint(&p, end, &v)) return fail_at(r, f->at, where, "malformed packed varint");
        out[(*k)++] = (int64_t)v;
    }
    return 0;
}

static void take_fixed32(const field *f, float *out, int64_t *k) {
    if (f->wt == WT_I32) {
        uint32_t u = (uint32_t)f->v;
        memcpy(&out[(*k)++], &u, 4);
        return;
    }
    if (f->len < 4) return;
    dg__floats_from_le(out + *k, f->data, f->len / 4);
    *k += (int64_t)(f->len / 4);
}

static void *alloc_array(reader *r, int64_t n, size_t elem) {
    if (n <= 0) return NULL;
    if ((uint64_t)n > SIZE_MAX / elem) return NULL;
    return ox_alloc(r->arena, (size_t)n * elem);
}

#define ARRAY_OR_FAIL(ptr, n, where)                                                               \
    do {                                                                                           \
        if ((n) > 0 && !((ptr) = alloc_array(r, (n), sizeof *(ptr)))) return oom(r, where);        \
    } while (0)

/* Fields are named in messages as the ONNX schema names them. */
#define WANT(wt, name)                                                                             \
    do {                                                                                           \
        if (want_wt(r, &f, wt, where, name)) return -1;                                            \
    } while (0)
#define STRING(name, out)                                                                          \
    do {                                                                                           \
        int rc_ = get_string(r, &f, where, name, out);                                             \
        if (rc_) return rc_;                                                                       \
    } while (0)

static int parse_tensor(reader *r, const unsigned char *data, size_t len, ox_tensor *t,
                        const char *where) {
    int64_t n_dims = 0, n_floats = 0, n_ints = 0;
    for (int pass = 0; pass < 2; pass++) {
        span s = {data, data + len};
        field f;
        int rc;
        int64_t kd = 0, kf = 0, ki = 0;
        while ((rc = next_field(r, &s, &f, where)) > 0) {
            switch (f.num) {
            case 1: /* dims */
                if (!pass) {
                    if (count_varints(r, &f, where, "dims", &n_dims)) return -1;
                } else if (take_varints(r, &f, where, t->dims, &kd)) {
                    return -1;
                }
                break;
            case 2:
                WANT(WT_VARINT, "data_type");
                t->dtype = (int32_t)(int64_t)f.v;
                break;
            case 3:
                WANT(WT_LEN, "segment");
                t->segmented = 1;
                break;
            case 4: /* float_data */
                if (!pass) {
                    if (count_fixed32(r, &f, where, "float_data", &n_floats)) return -1;
                } else {
                    take_fixed32(&f, t->floats, &kf);
                }
                break;
            case 7: /* int64_data */
                if (!pass) {
                    if (count_varints(r, &f, where, "int64_data", &n_ints)) return -1;
                } else if (take_varints(r, &f, where, t->ints, &ki)) {
                    return -1;
                }
                break;
            case 5:
            case 6:
            case 10:
            case 11: t->other_data = 1; break;
            case 8:
                if (pass) STRING("name", &t->name);
                break;
            case 9:
                WANT(WT_LEN, "raw_data");
                t->raw = f.data, t->raw_len = f.len, t->has_raw = 1;
                break;
            case 13: t->external = 1; break;
            case 14:
                WANT(WT_VARINT, "data_location");
                t->external |= f.v == 1;
                break;
            default: break;
            }
        }
        if (rc < 0) return rc;
        if (!pass) {
            if (n_dims > 64)
                return fail_at(r, data, where, "a tensor with %lld dimensions", (long long)n_dims);
            t->ndims = (int)n_dims;
            ARRAY_OR_FAIL(t->dims, n_dims, where);
            ARRAY_OR_FAIL(t->floats, n_floats, where);
            ARRAY_OR_FAIL(t->ints, n_ints, where);
            t->n_floats = n_floats;
            t->n_ints = n_ints;
        }
    }
    if (!t->name) t->name = "";
    return 0;
}

static int parse_attr(reader *r, const unsigned char *data, size_t len, ox_attr *a,
                      const char *parent) {
    char where[512];
    snprintf(where, sizeof where, "%s, an attribute", parent);
    int64_t n_floats = 0, n_ints = 0;
    for (int pass = 0; pass < 2; pass++) {
        span s = {data, data + len};
        field f;
        int rc;
        int64_t kf = 0, ki = 0;
        while ((rc = next_field(r, &s, &f, where)) > 0) {
            switch (f.num) {
            case 1:
                if (pass) {
                    STRING("name", &a->name);
                    snprintf(where, sizeof where, "%s, attribute '%.100s'", parent, a->name);
                }
                break;
            case 2:
                WANT(WT_I32, "f");
                if (pass) {
                    uint32_t u = (uint32_t)f.v;
                    memcpy(&a->f, &u, 4);
                    a->has_f = 1;
                }
                break;
            case 3:
                WANT(WT_VARINT, "i");
                a->i = (int64_t)f.v, a->has_i = 1;
                break;
            case 4:
                WANT(WT_LEN, "s");
                if (pass) {
                    char *c = ox_strndup(r->arena, (const char *)f.data, f.len);
                    if (!c) return oom(r, where);
                    a->s = c, a->s_len = f.len, a->has_s = 1;
                }
                break;
            case 5:
                WANT(WT_LEN, "t");
                if (pass) {
                    if (!(a->t = ox_alloc(r->arena, sizeof *a->t))) return oom(r, where);
                    int e = parse_tensor(r, f.data, f.len, a->t, where);
                    if (e) return e;
                }
                break;
            case 7:
                if (!pass) {
                    if (count_fixed32(r, &f, where, "floats", &n_floats)) return -1;
                } else {
                    take_fixed32(&f, a->floats, &kf);
                }
                break;
            case 8:
                if (!pass) {
                    if (count_varints(r, &f, where, "ints", &n_ints)) return -1;
                } else if (take_varints(r, &f, where, a->ints, &ki)) {
                    return -1;
                }
                break;
            case 6:
            case 9:
            case 10:
            case 11:
            case 14:
            case 15:
            case 22:
            case 23:
                if (!pass) a->n_other++;
                break;
            case 20:
                WANT(WT_VARINT, "type");
                a->type = (int32_t)(int64_t)f.v;
                break;
            case 21:
                WANT(WT_LEN, "ref_attr_name");
                a->has_ref = 1;
                break;
            default: break;
            }
        }
        if (rc < 0) return rc;
        if (!pass) {
            if (n_floats > INT32_MAX || n_ints > INT32_MAX)
                return fail_at(r, data, where, "too many values");
            ARRAY_OR_FAIL(a->floats, n_floats, where);
            ARRAY_OR_FAIL(a->ints, n_ints, where);
            a->n_floats = (int)n_floats;
            a->n_ints = (int)n_ints;
        }
    }
    if (!a->name) a->name = "";
    return 0;
}

static int parse_node(reader *r, const unsigned char *data, size_t len, ox_node *n, int index) {
    char where[256];
    snprintf(where, sizeof where, "graph, node %d", index);
    span s = {data, data + len};
    field f;
    int rc, k[3] = {0, 0, 0}; /* inputs, outputs, attributes */
    static const char *const names[8] = {"",        "input",     "output",     "name",
                                         "op_type", "attribute", "doc_string", "domain"};
    while ((rc = next_field(r, &s, &f, where)) > 0) {
        if (f.num >= 1 && f.num <= 7) WANT(WT_LEN, names[f.num]);
        if (f.num == 1 || f.num == 2) k[f.num - 1]++;
        if (f.num == 5) k[2]++;
        /* the name and op type first, so that later messages can say them */
        if (f.num == 3) STRING("name", &n->name);
        if (f.num == 4) STRING("op_type", &n->op_type);
        if (f.num == 7) STRING("domain", &n->domain);
    }
    if (rc < 0) return rc;
    if (!n->name) n->name = "";
    if (!n->op_type) n->op_type = "";
    if (!n->domain) n->domain = "";
    snprintf(where, sizeof where, "graph, node %d '%.100s' (%.64s)", index, n->name, n->op_type);
    n->n_in = k[0], n->n_out = k[1], n->n_attrs = k[2];
    ARRAY_OR_FAIL(n->in, k[0], where);
    ARRAY_OR_FAIL(n->out, k[1], where);
    ARRAY_OR_FAIL(n->attrs, k[2], where);
    memset(k, 0, sizeof k);
    s.p = data;
    while ((rc = next_field(r, &s, &f, where)) > 0) {
        if (f.num == 1) STRING("input", &n->in[k[0]++]);
        if (f.num == 2) STRING("output", &n->out[k[1]++]);
        if (f.num == 5) {
            int e = parse_attr(r, f.data, f.len, &n->attrs[k[2]++], where);
            if (e) return e;
        }
    }
    return rc < 0 ? rc : 0;
}

/* TypeProto: only tensor types are read; a shape's dims counted then filled. */
static int parse_type(reader *r, const unsigned char *data, size_t len, ox_value *v,
                      const char *where) {
    span s = {data, data + len};
    field f;
    int rc;
    v->has_type = 1;
    while ((rc = next_field(r, &s, &f, where)) > 0) {
        if (f.num != 1) continue; /* sequence, map, optional, sparse: not tensors */
        WANT(WT_LEN, "tensor_type");
        v->is_tensor = 1;
        span t = {f.data, f.data + f.len};
        field tf;
        while ((rc = next_field(r, &t, &tf, where)) > 0) {
            if (tf.num == 1) {
                if (want_wt(r, &tf, WT_VARINT, where, "elem_type")) return -1;
                v->elem = (int32_t)(int64_t)tf.v;
            } else if (tf.num == 2) {
                if (want_wt(r, &tf, WT_LEN, where, "shape")) return -1;
                v->has_shape = 1;
                int64_t nd = 0;
                for (int pass = 0; pass < 2; pass++) {
                    span sh = {tf.data, tf.data + tf.len};
                    field df;
                    int k = 0;
                    while ((rc = next_field(r, &sh, &df, where)) > 0) {
                        if (df.num != 1) continue;
                        if (want_wt(r, &df, WT_LEN, where, "dim")) return -1;
                        if (pass) {
                            ox_dim *d = &v->dims[k];
                            d->value = -1;
                            span ds = {df.data, df.data + df.len};
                            field vf;
                            while ((rc = next_field(r, &ds, &vf, where)) > 0) {
                                if (vf.num == 1) {
                                    if (want_wt(r, &vf, WT_VARINT, where, "dim_value")) return -1;
                                    d->value = (int64_t)vf.v;
                                    d->param = NULL;
                                } else if (vf.num == 2) {
                                    int e = get_string(r, &vf, where, "dim_param", &d->param);
                                    if (e) return e;
                                    d->value = -1;
                                }
                            }
                            if (rc < 0) return rc;
                        }
                        k++;
                    }
                    if (rc < 0) return rc;
                    if (!pass) {
                        nd = k;
                        if (nd > 64)
                            return fail_at(r, tf.data, where, "a shape with %lld dimensions",
                                           (long long)nd);
                        v->ndims = (int)nd;
                        ARRAY_OR_FAIL(v->dims, nd, where);
                    }
                }
            }
        }
        if (rc < 0) return rc;
    }
    return rc < 0 ? rc : 0;
}

static int parse_value(reader *r, const unsigned char *data, size_t len, ox_value *v,
                       const char *what, int index) {
    char where[256];
    snprintf(where, sizeof where, "graph, %s %d", what, index);
    span s = {data, data + len};
    field f;
    int rc;
    while ((rc = next_field(r, &s, &f, where)) > 0) {
        if (f.num == 1) STRING("name", &v->name);
    }
    if (rc < 0) return rc;
    if (!v->name) v->name = "";
    snprintf(where, sizeof where, "graph, %s %d '%.100s'", what, index, v->name);
    s.p = data;
    while ((rc = next_field(r, &s, &f, where)) > 0) {
        if (f.num != 2) continue;
        WANT(WT_LEN, "type");
        /* a repeated singular message: the last one counts */
        const char *name = v->name;
        memset(v, 0, sizeof *v);
        v->name = name;
        int e = parse_type(r, f.data, f.len, v, where);
        if (e) return e;
    }
    return rc < 0 ? rc : 0;
}

static int parse_graph(reader *r, const unsigned char *data, size_t len, ox_graph *g) {
    const char *where = "graph";
    int counts[4] = {0, 0, 0, 0}; /* nodes, initializers, inputs, outputs */
    for (int pass = 0; pass < 2; pass++) {
        span s = {data, data + len};
        field f;
        int rc, k[4] = {0, 0, 0, 0};
        while ((rc = next_field(r, &s, &f, where)) > 0) {
            int e = 0;
            switch (f.num) {
            case 1:
                WANT(WT_LEN, "node");
                if (pass) e = parse_node(r, f.data, f.len, &g->nodes[k[0]], k[0]);
                k[0]++;
                break;
            case 2:
                if (pass) STRING("name", &g->name);
                break;
            case 5:
                WANT(WT_LEN, "initializer");
                if (pass) {
                    char w[64];
                    snprintf(w, sizeof w, "graph, initializer %d", k[1]);
                    e = parse_tensor(r, f.data, f.len, &g->inits[k[1]], w);
                }
                k[1]++;
                break;
            case 11:
                WANT(WT_LEN, "input");
                if (pass) e = parse_value(r, f.data, f.len, &g->inputs[k[2]], "input", k[2]);
                k[2]++;
                break;
            case 12:
                WANT(WT_LEN, "output");
                if (pass) e = parse_value(r, f.data, f.len, &g->outputs[k[3]], "output", k[3]);
                k[3]++;
                break;
            case 15:
                if (!pass) g->n_sparse++;
                break;
            default: break;
            }
            if (e) return e;
        }
        if (rc < 0) return rc;
        if (!pass) {
            memcpy(counts, k, sizeof counts);
            g->n_nodes = k[0], g->n_inits = k[1], g->n_inputs = k[2], g->n_outputs = k[3];
            ARRAY_OR_FAIL(g->nodes, k[0], where);
            ARRAY_OR_FAIL(g->inits, k[1], where);
            ARRAY_OR_FAIL(g->inputs, k[2], where);
            ARRAY_OR_FAIL(g->outputs, k[3], where);
        }
    }
    (void)counts;
    if (!g->name) g->name = "";
    return 0;
}

static int parse_model(reader *r, const unsigned char *data, size_t len, ox_model *m) {
    const char *where = "the model";
    int n_opsets = 0;
    for (int pass = 0; pass < 2; pass++) {
        span s = {data, data + len};
        field f;
        int rc, k = 0;
        while ((rc = next_field(r, &s, &f, where)) > 0) {
            switch (f.num) {
            case 1:
                WANT(WT_VARINT, "ir_version");
                m->ir_version = (int64_t)f.v;
                break;
            case 2:
                if (pass) STRING("producer_name", &m->producer_name);
                break;
            case 3:
                if (pass) STRING("producer_version", &m->producer_version);
                break;
            case 6:
                if (pass) STRING("doc_string", &m->doc);
                break;
            case 7:
                WANT(WT_LEN, "graph");
                if (pass) {
                    /* a repeated singular message: the last one counts */
                    memset(&m->graph, 0, sizeof m->graph);
                    m->has_graph = 1;
                    int e = parse_graph(r, f.data, f.len, &m->graph);
                    if (e) return e;
                }
                break;
            case 8:
                WANT(WT_LEN, "opset_import");
                if (pass) {
                    ox_opset *o = &m->opsets[k];
                    o->domain = "";
                    span os = {f.data, f.data + f.len};
                    field of;
                    const char *w = "the model, opset_import";
                    while ((rc = next_field(r, &os, &of, w)) > 0) {
                        if (of.num == 1) {
                            int e = get_string(r, &of, w, "domain", &o->domain);
                            if (e) return e;
                        } else if (of.num == 2) {
                            if (want_wt(r, &of, WT_VARINT, w, "version")) return -1;
                            o->version = (int64_t)of.v;
                        }
                    }
                    if (rc < 0) return rc;
                }
                k++;
                break;
            case 25:
                if (!pass) m->n_functions++;
                break;
            default: break;
            }
        }
        if (rc < 0) return rc;
        if (!pass) {
            m->n_opsets = n_opsets = k;
            ARRAY_OR_FAIL(m->opsets, n_opsets, where);
        }
    }
    return 0;
}

dg_status ox_parse_model(const unsigned char *data, size_t size, ox_arena *a, ox_model *m,
                         char *err, size_t err_size) {
    memset(m, 0, sizeof *m);
    if (size > INT32_MAX) {
        snprintf(err, err_size,
                 "the file is %zu bytes; ONNX files are at most 2 GiB (protobuf's limit), larger "
                 "models keep their weights in external data, which dagrad does not read",
                 size);
        return DG_ERR_UNSUPPORTED;
    }
    /* Every element the IR holds comes from at least one byte of input, and no IR struct is
     * larger than 128 bytes per input byte it stands for. */
    a->limit = size < SIZE_MAX / 256 ? 128 * size + ((size_t)1 << 20) : 0;
    reader r = {data, a, err, err_size};
    int rc = parse_model(&r, data, size, m);
    if (rc == 0) return DG_OK;
    return rc == -2 ? DG_ERR_NOMEM : DG_ERR_FORMAT;
}

/* ---- writing ---- */

typedef struct out {
    const ox_sink *sink; /* NULL: only count */
    uint64_t n;
} out;

static void put(out *o, const void *p, size_t n) {
    if (o->sink && n) o->sink->put(o->sink->ctx, p, n);
    o->n += n;
}

static void put_varint(out *o, uint64_t v) {
    unsigned char b[10];
    size_t n = 0;
    do {
        b[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    put(o, b, n);
}

static void put_key(out *o, uint32_t num, int wt) {
    put_varint(o, (uint64_t)num << 3 | (unsigned)wt);
}

static void put_int(out *o, uint32_t num, int64_t v) {
    put_key(o, num, WT_VARINT);
    put_varint(o, (uint64_t)v);
}

static void put_bytes(out *o, uint32_t num, const void *p, size_t n) {
    put_key(o, num, WT_LEN);
    put_varint(o, n);
    put(o, p, n);
}

static void put_str(out *o, uint32_t num, const char *s) {
    if (s && s[0]) put_bytes(o, num, s, strlen(s));
}

static void put_float(out *o, uint32_t num, float f) {
    unsigned char b[4];
    dg__floats_to_le(b, &f, 1);
    put_key(o, num, WT_I32);
    put(o, b, 4);
}

typedef void (*msg_writer)(out *o, const void *m);

/* An embedded message: its length (a counting run of its writer), then its bytes. */
static void put_msg(out *o, uint32_t num, msg_writer w, const void *m) {
    out count = {NULL, 0};
    w(&count, m);
    put_key(o, num, WT_LEN);
    put_varint(o, count.n);
    w(o, m);
}

static int64_t numel_of(const ox_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndims; i++) n *= t->dims[i];
    return n;
}

/* Host values as little-endian raw_data, converted in chunks. */
static void put_raw(out *o, const ox_tensor *t) {
    int64_t n = numel_of(t);
    size_t esz = t->dtype == OX_DT_INT64 ? 8 : 4;
    put_key(o, 9, WT_LEN);
    put_varint(o, (uint64_t)n * esz);
    if (!o->sink) {
        o->n += (uint64_t)n * esz;
        return;
    }
    unsigned char buf[4096];
    size_t per = sizeof buf / esz;
    for (int64_t i = 0; i < n; i += (int64_t)per) {
        size_t k = (size_t)(n - i) < per ? (size_t)(n - i) : per;
        if (esz == 4) {
            dg__floats_to_le(buf, (const float *)t->host + i, k);
        } else {
            const int64_t *v = (const int64_t *)t->host + i;
            for (size_t j = 0; j < k; j++) dg__put_u64le(buf + 8 * j, (uint64_t)v[j]);
        }
        put(o, buf, k * esz);
    }
}

static void w_tensor(out *o, const void *p) {
    const ox_tensor *t = p;
    for (int i = 0; i < t->ndims; i++) put_int(o, 1, t->dims[i]);
    put_int(o, 2, t->dtype);
    put_str(o, 8, t->name);
    put_raw(o, t);
}

static void w_attr(out *o, const void *p) {
    const ox_attr *a = p;
    put_str(o, 1, a->name);
    if (a->type == OX_AT_FLOAT) put_float(o, 2, a->f);
    if (a->type == OX_AT_INT) put_int(o, 3, a->i);
    if (a->type == OX_AT_STRING) put_bytes(o, 4, a->s, a->s_len);
    if (a->type == OX_AT_TENSOR) put_msg(o, 5, w_tensor, a->t);
    if (a->type == OX_AT_FLOATS)
        for (int i = 0; i < a->n_floats; i++) put_float(o, 7, a->floats[i]);
    if (a->type == OX_AT_INTS)
        for (int i = 0; i < a->n_ints; i++) put_int(o, 8, a->ints[i]);
    put_int(o, 20, a->type);
}

static void w_node(out *o, const void *p) {
    const ox_node *n = p;
    for (int i = 0; i < n->n_in; i++) put_bytes(o, 1, n->in[i], strlen(n->in[i]));
    for (int i = 0; i < n->n_out; i++) put_bytes(o, 2, n->out[i], strlen(n->out[i]));
    put_str(o, 3, n->name);
    put_str(o, 4, n->op_type);
    for (int i = 0; i < n->n_attrs; i++) put_msg(o, 5, w_attr, &n->attrs[i]);
    put_str(o, 7, n->domain);
}

static void w_dim(out *o, const void *p) {
    const ox_dim *d = p;
    if (d->param)
        put_str(o, 2, d->param);
    else
        put_int(o, 1, d->value);
}

static void w_shape(out *o, const void *p) {
    const ox_value *v = p;
    for (int i = 0; i < v->ndims; i++) put_msg(o, 1, w_dim, &v->dims[i]);
}

static void w_tensor_type(out *o, const void *p) {
    const ox_value *v = p;
    put_int(o, 1, v->elem);
    if (v->has_shape) put_msg(o, 2, w_shape, v);
}

static void w_type(out *o, const void *p) { put_msg(o, 1, w_tensor_type, p); }

static void w_value(out *o, const void *p) {
    const ox_value *v = p;
    put_str(o, 1, v->name);
    if (v->has_type) put_msg(o, 2, w_type, v);
}

static void w_graph(out *o, const void *p) {
    const ox_graph *g = p;
    for (int i = 0; i < g->n_nodes; i++) put_msg(o, 1, w_node, &g->nodes[i]);
    put_str(o, 2, g->name);
    for (int i = 0; i < g->n_inits; i++) put_msg(o, 5, w_tensor, &g->inits[i]);
    for (int i = 0; i < g->n_inputs; i++) put_msg(o, 11, w_value, &g->inputs[i]);
    for (int i = 0; i < g->n_outputs; i++) put_msg(o, 12, w_value, &g->outputs[i]);
}

static void w_opset(out *o, const void *p) {
    const ox_opset *s = p;
    put_str(o, 1, s->domain);
    put_int(o, 2, s->version);
}

uint64_t ox_write_model(const ox_model *m, const ox_sink *sink) {
    out o = {sink, 0};
    put_int(&o, 1, m->ir_version);
    put_str(&o, 2, m->producer_name);
    put_str(&o, 3, m->producer_version);
    put_str(&o, 6, m->doc);
    put_msg(&o, 7, w_graph, &m->graph);
    for (int i = 0; i < m->n_opsets; i++) put_msg(&o, 8, w_opset, &m->opsets[i]);
    return o.n;
}
