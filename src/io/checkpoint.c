/* Checkpoints: a graph's parameters (and optionally its DG_STATE nodes) by name, in the
 * binary format of docs/FORMATS.md. Saving is atomic (see file.c); loading parses and
 * checks the whole file against the graph before it writes a single value, so a bad file
 * leaves the graph exactly as it was. Nothing read from the file is trusted: every size
 * is checked against the bytes that remain before it is used. */
#include "dagrad/io.h"
#include "io_internal.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char MAGIC[8] = {'D', 'A', 'G', 'R', 'A', 'D', 'C', 'K'};
enum { VERSION = 1, KIND_PARAM = 1, KIND_STATE = 2, MAX_NAME = 4096 };
/* Smallest possible tensor record: kind, name length, a 1-byte name, ndim 0, 1 float. */
enum { MIN_RECORD = 4 + 4 + 1 + 4 + 4, HEADER = 16, TRAILER = 8 };

static const char *kind_word(uint32_t kind) { return kind == KIND_PARAM ? "parameter" : "state"; }

/* The name a node is saved under: its own, or "param#k"/"state#k" for the k-th unnamed
 * node of that kind (k counts every node of the kind, named or not, in creation order). */
static const char *saved_name(const dg_node *n, int64_t k, char *buf, size_t size) {
    const char *name = dg_node_name(n);
    if (name && name[0]) return name;
    snprintf(buf, size, "%s#%lld", dg_node_kind_of(n) == DG_PARAM ? "param" : "state",
             (long long)k);
    return buf;
}

/* A graph node that takes part in a save or load, with the name it goes by. */
typedef struct slot {
    dg_node *node;
    uint32_t kind;
    char *name;
    size_t name_len;
} slot;

/* A tensor record of a checkpoint, pointing into the file's bytes. */
typedef struct record {
    uint32_t kind;
    const char *name;
    size_t name_len;
    dg_shape shape;
    int64_t numel;
    const unsigned char *data;
    const slot *target;
} record;

static int cmp_names(const char *a, size_t al, const char *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

static int cmp_slots(const void *x, const void *y) {
    const slot *a = x, *b = y;
    return cmp_names(a->name, a->name_len, b->name, b->name_len);
}

static int cmp_records(const void *x, const void *y) {
    const record *a = *(record *const *)x, *b = *(record *const *)y;
    return cmp_names(a->name, a->name_len, b->name, b->name_len);
}

/* A printable copy of a name from a file (at most 80 bytes, odd bytes shown as '?'). */
static const char *printable(const char *s, size_t n, char *buf, size_t size) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size; i++, k++)
        buf[k] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
    if (k < n && k + 4 <= size) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = 0;
    return buf;
}

static void free_slots(slot *s, int n) {
    for (int i = 0; i < n; i++) free(s[i].name);
    free(s);
}

/* Collects the graph's DG_PARAM nodes (and DG_STATE nodes if with_state) with their saved
 * names, sorted by name; two with the same name are an error. */
static dg_status collect_slots(dg_graph *g, const char *what, int with_state, slot **out,
                               int *n_out) {
    *out = NULL;
    *n_out = 0;
    int total = dg_graph_node_count(g), n = 0;
    slot *s = calloc(total > 0 ? (size_t)total : 1, sizeof *s);
    if (!s) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", what);
    int64_t n_param = 0, n_state = 0;
    for (int i = 0; i < total; i++) {
        dg_node *node = dg_graph_node(g, i);
        dg_node_kind k = dg_node_kind_of(node);
        if (k != DG_PARAM && k != DG_STATE) continue;
        int64_t index = k == DG_PARAM ? n_param++ : n_state++;
        if (k == DG_STATE && !with_state) continue;
        char buf[48];
        const char *name = saved_name(node, index, buf, sizeof buf);
        size_t len = strlen(name);
        if (len > MAX_NAME) {
            free_slots(s, n);
            return dg_set_error(g, DG_ERR_ARG, "%s: node %d's name is %zu bytes long (at most %d)",
                                what, dg_node_id(node), len, MAX_NAME);
        }
        s[n].node = node;
        s[n].kind = k == DG_PARAM ? KIND_PARAM : KIND_STATE;
        s[n].name_len = len;
        s[n].name = malloc(len + 1);
        if (!s[n].name) {
            free_slots(s, n);
            return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", what);
        }
        memcpy(s[n].name, name, len + 1);
        n++;
    }
    qsort(s, (size_t)n, sizeof *s, cmp_slots);
    for (int i = 1; i < n; i++) {
        if (cmp_slots(&s[i - 1], &s[i]) == 0) {
            dg_status st =
                dg_set_error(g, DG_ERR_ARG,
                             "%s: two nodes are named '%s' (nodes %d and %d); "
                             "checkpoints identify tensors by name",
                             what, s[i].name, dg_node_id(s[i - 1].node), dg_node_id(s[i].node));
            free_slots(s, n);
            return st;
        }
    }
    *out = s;
    *n_out = n;
    return DG_OK;
}

dg_status dg_checkpoint_save(dg_graph *g, const char *path, int with_state) {
    if (!g || !path)
        return dg_set_error(g, DG_ERR_NULL, "checkpoint_save: %s is NULL", g ? "path" : "graph");
    char what[DG__WHAT_SIZE];
    dg__what(what, sizeof what, "checkpoint_save", path);
    slot *s;
    int n;
    dg_status st = collect_slots(g, what, with_state, &s, &n);
    if (st != DG_OK) return st;
    dg__atomic_file w;
    st = dg__atomic_open(&w, g, what, path);
    if (st != DG_OK) {
        free_slots(s, n);
        return st;
    }
    dg__atomic_put(&w, MAGIC, sizeof MAGIC);
    dg__atomic_put_u32(&w, VERSION);
    dg__atomic_put_u32(&w, (uint32_t)n);
    /* Records in creation order: a file reads like the model was built. */
    for (int pass = 0, total = dg_graph_node_count(g); pass < total; pass++) {
        dg_node *node = dg_graph_node(g, pass);
        const slot *sl = NULL;
        for (int i = 0; i < n && !sl; i++)
            if (s[i].node == node) sl = &s[i];
        if (!sl) continue;
        dg_shape shape = dg_node_shape(node);
        dg__atomic_put_u32(&w, sl->kind);
        dg__atomic_put_u32(&w, (uint32_t)sl->name_len);
        dg__atomic_put(&w, sl->name, sl->name_len);
        dg__atomic_put_u32(&w, (uint32_t)shape.ndim);
        for (int d = 0; d < shape.ndim; d++) dg__atomic_put_u64(&w, (uint64_t)shape.dim[d]);
        dg__atomic_put_floats(&w, dg_node_data(node), (size_t)dg_node_numel(node));
    }
    dg__atomic_put_u64(&w, w.hash);
    free_slots(s, n);
    return dg__atomic_commit(&w, g, what);
}

/* Parses every record and checks the framing and the checksum; no graph involved. */
static dg_status parse(dg_graph *g, const char *what, const unsigned char *buf, size_t size,
                       record **out, uint32_t *count_out) {
    *out = NULL;
    char nb[96];
    if (size < HEADER + TRAILER) {
        if (size >= 8 && memcmp(buf, MAGIC, 8) != 0)
            return dg_set_error(g, DG_ERR_FORMAT, "%s: not a dagrad checkpoint (bad magic)", what);
        return dg_set_error(g, DG_ERR_FORMAT,
                            "%s: truncated at byte %zu: a checkpoint has at least %d bytes", what,
                            size, HEADER + TRAILER);
    }
    if (memcmp(buf, MAGIC, 8) != 0)
        return dg_set_error(g, DG_ERR_FORMAT, "%s: not a dagrad checkpoint (bad magic)", what);
    uint32_t version = dg__get_u32le(buf + 8);
    if (version != VERSION)
        return dg_set_error(g, DG_ERR_FORMAT,
                            "%s: unsupported checkpoint version %u (this library reads %d)", what,
                            version, VERSION);
    uint32_t count = dg__get_u32le(buf + 12);
    size_t body_end = size - TRAILER;
    if (count > (body_end - HEADER) / MIN_RECORD)
        return dg_set_error(g, DG_ERR_FORMAT,
                            "%s: truncated at byte %zu: the header announces %u tensors", what,
                            size, count);
    record *r = calloc(count ? count : 1, sizeof *r);
    if (!r) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", what);
    size_t pos = HEADER;
    dg_status st = DG_OK;
    /* Each field is checked against body_end before it is read; `need` never overflows
     * because every operand is bounded by the file size or by small constants. */
#define NEED(n, ...)                                                                               \
    if ((n) > body_end - pos) {                                                                    \
        st = dg_set_error(g, DG_ERR_FORMAT, __VA_ARGS__);                                          \
        break;                                                                                     \
    }
    for (uint32_t i = 0; i < count; i++) {
        NEED(8, "%s: truncated at byte %zu: header of tensor %u of %u", what, size, i, count);
        r[i].kind = dg__get_u32le(buf + pos);
        uint32_t name_len = dg__get_u32le(buf + pos + 4);
        pos += 8;
        if (r[i].kind != KIND_PARAM && r[i].kind != KIND_STATE) {
            st = dg_set_error(g, DG_ERR_FORMAT, "%s: tensor %u has unknown kind %u at byte %zu",
                              what, i, r[i].kind, pos - 8);
            break;
        }
        if (name_len == 0 || name_len > MAX_NAME) {
            st = dg_set_error(g, DG_ERR_FORMAT, "%s: tensor %u has a name of %u bytes (1..%d)",
                              what, i, name_len, MAX_NAME);
            break;
        }
        NEED((size_t)name_len + 4, "%s: truncated at byte %zu: name of tensor %u", what, size, i);
        r[i].name = (const char *)buf + pos;
        r[i].name_len = name_len;
        pos += name_len;
        if (memchr(r[i].name, 0, name_len)) {
            st =
                dg_set_error(g, DG_ERR_FORMAT, "%s: tensor %u's name contains a NUL byte", what, i);
            break;
        }
        const char *pn = printable(r[i].name, name_len, nb, sizeof nb);
        uint32_t ndim = dg__get_u32le(buf + pos);
        pos += 4;
        if (ndim > DG_MAX_DIMS) {
            st = dg_set_error(g, DG_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (at most %d)",
                              what, pn, ndim, DG_MAX_DIMS);
            break;
        }
        NEED((size_t)ndim * 8, "%s: truncated at byte %zu: dimensions of tensor '%s'", what, size,
             pn);
        dg_shape shape = dg_shape0();
        shape.ndim = (int)ndim;
        for (uint32_t d = 0; d < ndim && st == DG_OK; d++) {
            uint64_t v = dg__get_u64le(buf + pos + 8 * d);
            if (v == 0 || v > ((uint64_t)1 << 40))
                st = dg_set_error(g, DG_ERR_FORMAT,
                                  "%s: tensor '%s': dimension %u (counting from 0) is %llu, "
                                  "must be 1..2^40 (at byte %zu)",
                                  what, pn, d, (unsigned long long)v, pos + 8 * d);
            shape.dim[d] = (int64_t)v;
        }
        if (st != DG_OK) break;
        pos += (size_t)ndim * 8;
        int64_t numel = dg_shape_numel(shape);
        char sb[64];
        if (numel < 0) {
            st = dg_set_error(g, DG_ERR_FORMAT, "%s: tensor '%s' %s has more than 2^40 elements",
                              what, pn, dg_shape_str(shape, sb, sizeof sb));
            break;
        }
        NEED((size_t)numel > (SIZE_MAX - 3) / 4 ? SIZE_MAX : (size_t)numel * 4,
             "%s: truncated at byte %zu: tensor '%s' %s needs %lld bytes of data, %zu remain", what,
             size, pn, dg_shape_str(shape, sb, sizeof sb), (long long)numel * 4, body_end - pos);
        r[i].shape = shape;
        r[i].numel = numel;
        r[i].data = buf + pos;
        pos += (size_t)numel * 4;
    }
#undef NEED
    if (st == DG_OK && pos != body_end)
        st = dg_set_error(g, DG_ERR_FORMAT,
                          "%s: %zu unexpected bytes after the last tensor (at byte %zu)", what,
                          body_end - pos, pos);
    if (st == DG_OK) {
        uint64_t want = dg__get_u64le(buf + body_end);
        uint64_t have = dg__fnv1a64(DG__FNV_OFFSET, buf, body_end);
        if (want != have)
            st = dg_set_error(g, DG_ERR_FORMAT,
                              "%s: checksum mismatch (stored %016llx, computed %016llx): the "
                              "file is corrupt",
                              what, (unsigned long long)want, (unsigned long long)have);
    }
    if (st != DG_OK && !strstr(dg_last_error(), "checksum") &&
        dg__get_u64le(buf + body_end) != dg__fnv1a64(DG__FNV_OFFSET, buf, body_end)) {
        /* A framing error with a bad checksum: say so, it tells corruption from a bug. */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dg_last_error());
        dg_set_error(g, st,
                     "%.400s (the checksum does not match either: the file is truncated "
                     "or corrupt)",
                     msg);
    }
    if (st != DG_OK) {
        free(r);
        return st;
    }
    *out = r;
    *count_out = count;
    return DG_OK;
}

/* Pairs records with graph slots by name; every slot needs a record and every record that
 * is loaded (parameters; state with with_state) needs a slot of the same kind and shape. */
static dg_status match(dg_graph *g, const char *what, record *r, uint32_t count, slot *s, int ns,
                       int with_state) {
    dg_status st = DG_OK;
    char nb[96], sa[64], sb[64];
    record **sorted = malloc((count ? count : 1) * sizeof *sorted);
    if (!sorted) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", what);
    for (uint32_t i = 0; i < count; i++) sorted[i] = &r[i];
    qsort(sorted, count, sizeof *sorted, cmp_records);
    for (uint32_t i = 1; i < count && st == DG_OK; i++)
        if (cmp_records(&sorted[i - 1], &sorted[i]) == 0)
            st = dg_set_error(g, DG_ERR_FORMAT, "%s: the checkpoint holds '%s' twice", what,
                              printable(sorted[i]->name, sorted[i]->name_len, nb, sizeof nb));
    /* Both lists are sorted by name: one merge pass pairs them. */
    uint32_t i = 0;
    int j = 0;
    while (st == DG_OK && (i < count || j < ns)) {
        int c = i >= count ? 1
                : j >= ns
                    ? -1
                    : cmp_names(sorted[i]->name, sorted[i]->name_len, s[j].name, s[j].name_len);
        if (c < 0) { /* in the file only */
            record *rec = sorted[i++];
            if (rec->kind == KIND_STATE && !with_state) continue;
            st = dg_set_error(g, DG_ERR_SHAPE,
                              "%s: the checkpoint has %s '%s' %s, the graph has no %s of that name",
                              what, kind_word(rec->kind),
                              printable(rec->name, rec->name_len, nb, sizeof nb),
                              dg_shape_str(rec->shape, sa, sizeof sa), kind_word(rec->kind));
        } else if (c > 0) { /* in the graph only */
            const slot *sl = &s[j++];
            st = dg_set_error(
                g, DG_ERR_SHAPE, "%s: the graph's %s '%s' %s is not in the checkpoint%s", what,
                kind_word(sl->kind), sl->name, dg_shape_str(dg_node_shape(sl->node), sa, sizeof sa),
                sl->kind == KIND_STATE ? " (saved without state?)" : "");
        } else {
            record *rec = sorted[i++];
            const slot *sl = &s[j++];
            if (rec->kind != sl->kind) {
                st = dg_set_error(g, DG_ERR_SHAPE,
                                  "%s: '%s' is %s in the graph but %s in the checkpoint", what,
                                  sl->name, kind_word(sl->kind), kind_word(rec->kind));
            } else if (!dg_shape_equal(rec->shape, dg_node_shape(sl->node))) {
                st = dg_set_error(
                    g, DG_ERR_SHAPE,
                    "%s: shape mismatch for %s '%s': the graph has %s, the checkpoint has %s", what,
                    kind_word(sl->kind), sl->name,
                    dg_shape_str(dg_node_shape(sl->node), sa, sizeof sa),
                    dg_shape_str(rec->shape, sb, sizeof sb));
            } else {
                rec->target = sl;
            }
        }
    }
    free(sorted);
    return st;
}

static dg_status load_mem(dg_graph *g, const char *what, const unsigned char *buf, size_t size,
                          int with_state) {
    record *r;
    uint32_t count;
    dg_status st = parse(g, what, buf, size, &r, &count);
    if (st != DG_OK) return st;
    slot *s;
    int ns;
    st = collect_slots(g, what, with_state, &s, &ns);
    if (st == DG_OK) {
        st = match(g, what, r, count, s, ns, with_state);
        /* Everything is checked: only now does the graph change. */
        if (st == DG_OK)
            for (uint32_t i = 0; i < count; i++)
                if (r[i].target)
                    dg__floats_from_le(dg_node_data(r[i].target->node), r[i].data,
                                       (size_t)r[i].numel);
        free_slots(s, ns);
    }
    free(r);
    return st;
}

dg_status dg_checkpoint_load_mem(dg_graph *g, const void *data, size_t size, int with_state) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "checkpoint_load: graph is NULL");
    if (!data && size) return dg_set_error(g, DG_ERR_NULL, "checkpoint_load: data is NULL");
    return load_mem(g, "checkpoint_load", data, size, with_state);
}

dg_status dg_checkpoint_load(dg_graph *g, const char *path, int with_state) {
    if (!g || !path)
        return dg_set_error(g, DG_ERR_NULL, "checkpoint_load: %s is NULL", g ? "path" : "graph");
    char what[DG__WHAT_SIZE];
    dg__what(what, sizeof what, "checkpoint_load", path);
    unsigned char *buf;
    size_t size;
    dg_status st = dg__read_file(g, what, path, &buf, &size);
    if (st != DG_OK) return st;
    static const unsigned char empty[1] = {0};
    st = load_mem(g, what, buf ? buf : empty, size, with_state);
    free(buf);
    return st;
}
