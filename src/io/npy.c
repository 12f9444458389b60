/* NumPy .npy files holding one float32 little-endian ('<f4') C-order array, so tensors can
 * be handed to and compared with NumPy and PyTorch. Writes format version 1.0; reads 1.0,
 * 2.0 and 3.0. The header is a Python dict literal, parsed here by a small strict reader
 * that accepts what NumPy writes (any key order, spacing, trailing commas) and rejects
 * anything it does not understand rather than guess. */
#include "dagrad/io.h"
#include "io_internal.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* ---- header dict reader ---- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes ('...' or "..."); *s and *n point into the header. */
static int read_string(cursor *c, const char **s, size_t *n) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\') return 0;
        c->p++;
    }
    if (c->p >= c->end) return 0;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return 1;
}

static int read_word(cursor *c, const char *word) {
    skip_ws(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* A shape tuple: "()", "(5,)", "(2, 3)", a trailing comma allowed. Dimensions above 2^40
 * are rejected while reading, so nothing overflows. Returns NULL, or what is wrong (in
 * `why` when it names a dimension). */
static const char *read_shape(cursor *c, int64_t *dims, int *ndim, int max_dims, int *too_many,
                              char *why, size_t why_size) {
    static const char *const not_tuple = "'shape' is not a tuple of integers";
    *ndim = 0;
    *too_many = 0;
    if (!eat(c, '(')) return not_tuple;
    for (;;) {
        if (eat(c, ')')) return NULL;
        skip_ws(c);
        const char *start = c->p;
        if (c->p < c->end && *c->p == '-') c->p++;
        const char *digits = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
        int len = (int)(c->p - start);
        if (c->p == digits) return not_tuple;
        if (*start == '-') {
            snprintf(why, why_size, "dimension %d of 'shape' is negative (%.*s)", *ndim,
                     len < 24 ? len : 24, start);
            return why;
        }
        int64_t v = 0;
        for (const char *d = digits; d < c->p; d++) {
            v = v * 10 + (*d - '0');
            if (v > ((int64_t)1 << 40)) {
                snprintf(why, why_size, "dimension %d of 'shape' is %.*s%s, more than 2^40", *ndim,
                         len < 24 ? len : 24, start, len > 24 ? "..." : "");
                return why;
            }
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 long */
        if (*ndim < max_dims)
            dims[*ndim] = v;
        else
            *too_many = 1;
        (*ndim)++;
        if (*ndim > 64) return not_tuple;
        if (eat(c, ')')) return NULL;
        if (!eat(c, ',')) return not_tuple;
    }
}

/* Parses the whole .npy byte string into a malloc'd float array. */
static dg_status parse(dg_graph *g, const char *what, const unsigned char *buf, size_t size,
                       float **data, dg_shape *shape) {
    if (size < 10 || memcmp(buf, MAGIC, 6) != 0)
        return dg_set_error(g, DG_ERR_FORMAT, "%s: not a .npy file (%s)", what,
                            size < 10 ? "too short" : "bad magic");
    unsigned major = buf[6], minor = buf[7];
    size_t pre, hlen;
    if (major == 1) {
        pre = 10;
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    } else if (major == 2 || major == 3) {
        if (size < 12) return dg_set_error(g, DG_ERR_FORMAT, "%s: truncated header", what);
        pre = 12;
        hlen = dg__get_u32le(buf + 8);
    } else {
        return dg_set_error(g, DG_ERR_FORMAT, "%s: unsupported .npy format version %u.%u", what,
                            major, minor);
    }
    if (hlen > size - pre)
        return dg_set_error(g, DG_ERR_FORMAT,
                            "%s: truncated: the header needs %zu bytes, the file has %zu", what,
                            pre + hlen, size);
    cursor c = {(const char *)buf + pre, (const char *)buf + pre + hlen};
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0, too_many = 0;
    const char *descr = NULL;
    size_t descr_len = 0;
    int64_t dims[DG_MAX_DIMS];
    int ndim = 0;
    const char *bad = NULL;
    char why[96];
    if (!eat(&c, '{')) bad = "the header is not a dict";
    while (!bad) {
        if (eat(&c, '}')) break;
        const char *key;
        size_t key_len;
        if (!read_string(&c, &key, &key_len) || !eat(&c, ':')) {
            bad = "malformed header dict";
            break;
        }
        if (key_len == 5 && memcmp(key, "descr", 5) == 0 && !have_descr) {
            have_descr = 1;
            if (!read_string(&c, &descr, &descr_len)) bad = "'descr' is not a string";
        } else if (key_len == 13 && memcmp(key, "fortran_order", 13) == 0 && !have_order) {
            have_order = 1;
            if (read_word(&c, "True"))
                fortran = 1;
            else if (!read_word(&c, "False"))
                bad = "'fortran_order' is not True or False";
        } else if (key_len == 5 && memcmp(key, "shape", 5) == 0 && !have_shape) {
            have_shape = 1;
            bad = read_shape(&c, dims, &ndim, DG_MAX_DIMS, &too_many, why, sizeof why);
        } else {
            bad = "unexpected or repeated key in the header dict";
        }
        if (!bad && !eat(&c, ',')) {
            if (!eat(&c, '}')) bad = "malformed header dict";
            break;
        }
    }
    if (!bad) {
        skip_ws(&c);
        if (c.p != c.end)
            bad = "unexpected text after the header dict";
        else if (!have_descr || !have_order || !have_shape)
            bad = "the header lacks 'descr', 'fortran_order' or 'shape'";
    }
    if (bad) return dg_set_error(g, DG_ERR_FORMAT, "%s: %s", what, bad);
    if (!(descr_len == 3 && memcmp(descr, "<f4", 3) == 0)) {
        char d[32];
        size_t n = descr_len < sizeof d - 1 ? descr_len : sizeof d - 1;
        for (size_t i = 0; i < n; i++) d[i] = (descr[i] >= 32 && descr[i] < 127) ? descr[i] : '?';
        d[n] = 0;
        return dg_set_error(g, DG_ERR_UNSUPPORTED,
                            "%s: dtype '%s' is not supported (only float32 little-endian '<f4')",
                            what, d);
    }
    if (fortran)
        return dg_set_error(g, DG_ERR_UNSUPPORTED,
                            "%s: Fortran-order arrays are not supported (save a C-order copy)",
                            what);
    if (too_many)
        return dg_set_error(g, DG_ERR_UNSUPPORTED, "%s: %d dimensions (at most %d)", what, ndim,
                            DG_MAX_DIMS);
    dg_shape s = dg_shape0();
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] == 0)
            return dg_set_error(g, DG_ERR_UNSUPPORTED, "%s: zero-size arrays are not supported",
                                what);
        s.dim[i] = dims[i];
    }
    char sb[64];
    int64_t numel = dg_shape_numel(s);
    if (numel < 0)
        return dg_set_error(g, DG_ERR_FORMAT, "%s: shape %s is too large", what,
                            dg_shape_str(s, sb, sizeof sb));
    size_t avail = size - pre - hlen;
    if ((uint64_t)numel * 4 != avail)
        return dg_set_error(g, DG_ERR_FORMAT,
                            "%s: %s: shape %s needs %lld bytes of data, the file has %zu", what,
                            (uint64_t)numel * 4 > avail ? "truncated" : "trailing bytes",
                            dg_shape_str(s, sb, sizeof sb), (long long)numel * 4, avail);
    float *out = malloc((size_t)numel * 4);
    if (!out) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", what);
    dg__floats_from_le(out, buf + pre + hlen, (size_t)numel);
    *data = out;
    *shape = s;
    return DG_OK;
}

static dg_status read_path(dg_graph *g, const char *what, const char *path, float **data,
                           dg_shape *shape) {
    unsigned char *buf;
    size_t size;
    dg_status st = dg__read_file(g, what, path, &buf, &size);
    if (st != DG_OK) return st;
    static const unsigned char empty[1] = {0};
    st = parse(g, what, buf ? buf : empty, size, data, shape);
    free(buf);
    return st;
}

dg_status dg_npy_read_mem(const void *buf, size_t size, float **data, dg_shape *shape) {
    if (data) *data = NULL;
    if (!data || !shape || (!buf && size))
        return dg_set_error(NULL, DG_ERR_NULL, "npy_read: a pointer argument is NULL");
    static const unsigned char empty[1] = {0};
    return parse(NULL, "npy_read", buf ? buf : empty, size, data, shape);
}

dg_status dg_npy_read(const char *path, float **data, dg_shape *shape) {
    if (data) *data = NULL;
    if (!path || !data || !shape)
        return dg_set_error(NULL, DG_ERR_NULL, "npy_read: a pointer argument is NULL");
    char what[DG__WHAT_SIZE];
    dg__what(what, sizeof what, "npy_read", path);
    return read_path(NULL, what, path, data, shape);
}

dg_status dg_npy_load(dg_node *node, const char *path) {
    if (!node || !path)
        return dg_set_error(dg_node_graph(node), DG_ERR_NULL, "npy_load: %s is NULL",
                            node ? "path" : "node");
    dg_graph *g = dg_node_graph(node);
    char what[DG__WHAT_SIZE];
    dg__what(what, sizeof what, "npy_load", path);
    /* the next run would overwrite a computed node's values */
    if (dg_node_kind_of(node) == DG_OP_NODE)
        return dg_set_error(g, DG_ERR_ARG, "%s: node %d (op %s) is computed, not a leaf", what,
                            dg_node_id(node), dg_node_op_name(node));
    float *data;
    dg_shape shape;
    dg_status st = read_path(g, what, path, &data, &shape);
    if (st != DG_OK) return st;
    if (!dg_shape_equal(shape, dg_node_shape(node))) {
        char a[64], b[64];
        const char *name = dg_node_name(node);
        st = dg_set_error(g, DG_ERR_SHAPE, "%s: the file holds %s, node %d ('%s') is %s", what,
                          dg_shape_str(shape, a, sizeof a), dg_node_id(node), name ? name : "",
                          dg_shape_str(dg_node_shape(node), b, sizeof b));
    } else {
        /* dg_feed also marks an input as fed, so a run may use the loaded values */
        st = dg_feed(node, data, dg_node_numel(node));
    }
    free(data);
    return st;
}

static dg_status write_npy(dg_graph *g, const char *path, const float *data, dg_shape shape,
                           const char *op) {
    char what[DG__WHAT_SIZE];
    dg__what(what, sizeof what, op, path);
    char sb[64];
    if (dg_shape_numel(shape) < 0)
        return dg_set_error(g, DG_ERR_SHAPE, "%s: invalid shape %s", what,
                            dg_shape_str(shape, sb, sizeof sb));
    /* The dict as NumPy writes it; a 1-tuple needs its trailing comma. */
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < shape.ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)shape.dim[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", shape.ndim == 1 ? "," : "");
    /* Pad with spaces and a final newline so the data start at a multiple of 64 bytes. */
    size_t hlen = (size_t)n + 1;
    hlen += (64 - (10 + hlen) % 64) % 64;
    unsigned char pre[10];
    memcpy(pre, MAGIC, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    dg__atomic_file w;
    dg_status st = dg__atomic_open(&w, g, what, path);
    if (st != DG_OK) return st;
    dg__atomic_put(&w, pre, sizeof pre);
    dg__atomic_put(&w, dict, (size_t)n);
    for (size_t i = (size_t)n; i + 1 < hlen; i++) dg__atomic_put(&w, " ", 1);
    dg__atomic_put(&w, "\n", 1);
    dg__atomic_put_floats(&w, data, (size_t)dg_shape_numel(shape));
    return dg__atomic_commit(&w, g, what);
}

dg_status dg_npy_write(const char *path, const float *data, dg_shape shape) {
    if (!path || !data)
        return dg_set_error(NULL, DG_ERR_NULL, "npy_write: %s is NULL", path ? "data" : "path");
    return write_npy(NULL, path, data, shape, "npy_write");
}

dg_status dg_npy_save(const dg_node *node, const char *path) {
    if (!node || !path)
        return dg_set_error(dg_node_graph(node), DG_ERR_NULL, "npy_save: %s is NULL",
                            node ? "path" : "node");
    return write_npy(dg_node_graph(node), path, dg_node_data(node), dg_node_shape(node),
                     "npy_save");
}
