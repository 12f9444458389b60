/* IDX datasets (MNIST, Fashion-MNIST): an image file and a label file, each raw or
 * gzip-compressed. The header is validated before any payload is read, and the payload is
 * read in growing chunks, so a hostile header announcing terabytes costs no more memory
 * than the bytes actually present. */
#include "dagrad/io.h"
#include "io_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* A byte source: a file through zlib's gz* calls (which read gzip and raw files alike),
 * or a memory buffer, inflated here if it starts with the gzip magic 1f 8b. */
typedef struct source {
    const char *label; /* "images 'path'" for messages */
    const char *path;  /* the file's path, NULL for memory */
    gzFile gz;
    const unsigned char *mem;
    size_t mem_size, mem_pos;
    z_stream zs;
    int inflating, ended;
} source;

static dg_status source_open_file(source *s, const char *label, const char *path) {
    memset(s, 0, sizeof *s);
    s->label = label;
    s->path = path;
    errno = 0;
    s->gz = gzopen(path, "rb");
    if (!s->gz)
        return dg_set_error(NULL, DG_ERR_IO, "idx_load: cannot open %s: %s", label,
                            errno ? strerror(errno) : "out of memory");
    return DG_OK;
}

static dg_status source_open_mem(source *s, const char *label, const void *data, size_t size) {
    memset(s, 0, sizeof *s);
    s->label = label;
    s->mem = data;
    s->mem_size = size;
    if (size >= 2 && s->mem[0] == 0x1f && s->mem[1] == 0x8b) {
        /* 16 + MAX_WBITS: expect a gzip wrapper. */
        if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
            return dg_set_error(NULL, DG_ERR_NOMEM, "idx_load: %s: cannot start zlib", label);
        s->inflating = 1;
    }
    return DG_OK;
}

/* zlib's message for the file's gzip error, without the "<path>: " zlib puts in front:
 * the label already names the file. */
static const char *gz_message(source *s, int *code) {
    const char *msg = gzerror(s->gz, code);
    if (!msg) return "?";
    size_t n = strlen(s->path);
    if (strncmp(msg, s->path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg;
}

static void source_close(source *s) {
    if (s->gz) gzclose(s->gz);
    if (s->inflating) inflateEnd(&s->zs);
    memset(s, 0, sizeof *s);
}

/* Reads up to n bytes; *got is how many arrived before the end of the data. Errors are
 * corrupt compressed data or failed reads, never a short file (the caller judges that). */
static dg_status source_read(source *s, unsigned char *out, size_t n, size_t *got) {
    *got = 0;
    if (s->gz) {
        while (*got < n) {
            unsigned chunk = n - *got > (1u << 30) ? (1u << 30) : (unsigned)(n - *got);
            int r = gzread(s->gz, out + *got, chunk);
            if (r < 0) {
                int code;
                const char *msg = gz_message(s, &code);
                if (code == Z_ERRNO)
                    return dg_set_error(NULL, DG_ERR_IO, "idx_load: error reading %s: %s", s->label,
                                        strerror(errno));
                return dg_set_error(NULL, DG_ERR_FORMAT, "idx_load: %s: corrupt gzip data: %s",
                                    s->label, msg);
            }
            if (r == 0) break;
            *got += (size_t)r;
        }
        /* A gzip stream cut short reads as a short file plus a pending error. */
        int code;
        const char *msg = gz_message(s, &code);
        if (code != Z_OK && code != Z_STREAM_END)
            return dg_set_error(NULL, DG_ERR_FORMAT,
                                "idx_load: %s: corrupt or truncated gzip data: %s", s->label, msg);
        return DG_OK;
    }
    if (!s->inflating) {
        size_t k = s->mem_size - s->mem_pos < n ? s->mem_size - s->mem_pos : n;
        if (k) memcpy(out, s->mem + s->mem_pos, k);
        s->mem_pos += k;
        *got = k;
        return DG_OK;
    }
    while (*got < n && !s->ended) {
        if (s->zs.avail_in == 0) {
            size_t left = s->mem_size - s->mem_pos;
            if (left == 0)
                return dg_set_error(NULL, DG_ERR_FORMAT,
                                    "idx_load: %s: truncated gzip data (the compressed stream "
                                    "ends early)",
                                    s->label);
            s->zs.next_in = (unsigned char *)(s->mem + s->mem_pos);
            s->zs.avail_in = left > UINT_MAX ? UINT_MAX : (unsigned)left;
            s->mem_pos += s->zs.avail_in;
        }
        size_t room = n - *got > UINT_MAX ? UINT_MAX : n - *got;
        s->zs.next_out = out + *got;
        s->zs.avail_out = (unsigned)room;
        int r = inflate(&s->zs, Z_NO_FLUSH);
        *got += room - s->zs.avail_out;
        if (r == Z_STREAM_END) {
            /* Like gzread: another gzip member may follow; anything else is ignored. */
            size_t rest = s->zs.avail_in;
            const unsigned char *p = s->zs.next_in;
            if (rest == 0 && s->mem_pos < s->mem_size) {
                p = s->mem + s->mem_pos;
                rest = s->mem_size - s->mem_pos;
            }
            if (rest >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
                inflateReset(&s->zs);
            } else {
                s->ended = 1;
            }
        } else if (r != Z_OK && !(r == Z_BUF_ERROR && s->zs.avail_in == 0)) {
            return dg_set_error(NULL, DG_ERR_FORMAT, "idx_load: %s: corrupt gzip data: %s",
                                s->label, s->zs.msg ? s->zs.msg : "inflate failed");
        }
    }
    return DG_OK;
}

/* What one IDX file must hold: magic 0x0000 08 0D (unsigned bytes, D dimensions). */
typedef struct idx_header {
    int64_t dims[3];
    int64_t payload; /* product of dims */
} idx_header;

static dg_status read_header(source *s, int ndim, idx_header *h) {
    unsigned char b[16];
    size_t want = 4 + 4 * (size_t)ndim, got;
    dg_status st = source_read(s, b, want, &got);
    if (st != DG_OK) return st;
    if (got >= 4) {
        uint32_t magic = dg__get_u32be(b);
        uint32_t expect = 0x00000800u | (uint32_t)ndim;
        if (magic != expect) {
            const char *hint = magic == 0x00000801u   ? " (this is a label file)"
                               : magic == 0x00000803u ? " (this is an image file)"
                               : (b[0] || b[1])       ? " (not an IDX file)"
                               : b[2] != 0x08
                                   ? " (only unsigned-byte data, type 0x08, is supported)"
                                   : "";
            return dg_set_error(NULL, DG_ERR_FORMAT,
                                "idx_load: %s: bad magic number 0x%08x, expected 0x%08x%s",
                                s->label, magic, expect, hint);
        }
    }
    if (got < want)
        return dg_set_error(NULL, DG_ERR_FORMAT,
                            "idx_load: %s: truncated at byte %zu: the header needs %zu bytes",
                            s->label, got, want);
    int64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        h->dims[i] = dg__get_u32be(b + 4 + 4 * i);
        if (h->dims[i] == 0)
            return dg_set_error(NULL, DG_ERR_FORMAT, "idx_load: %s: dimension %d is zero", s->label,
                                i);
        /* 2^40 bytes is far beyond any dataset; the bound keeps the products exact. */
        if (total > ((int64_t)1 << 40) / h->dims[i])
            return dg_set_error(NULL, DG_ERR_FORMAT,
                                "idx_load: %s: the header announces more than 2^40 bytes",
                                s->label);
        total *= h->dims[i];
    }
    h->payload = total;
    return DG_OK;
}

/* Reads exactly `n` payload bytes, then checks that nothing follows. The buffer grows with
 * the data that actually arrive. */
static dg_status read_payload(source *s, int64_t n, const char *unit, int header_bytes,
                              unsigned char **out) {
    *out = NULL;
    size_t cap = n < (1 << 16) ? (size_t)n : (1 << 16), have = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) return dg_set_error(NULL, DG_ERR_NOMEM, "idx_load: %s: out of memory", s->label);
    dg_status st = DG_OK;
    for (;;) {
        size_t got;
        st = source_read(s, buf + have, cap - have, &got);
        if (st != DG_OK) break;
        have += got;
        if (have < cap) {
            st = dg_set_error(NULL, DG_ERR_FORMAT,
                              "idx_load: %s: truncated: the header announces %lld bytes of %s, "
                              "the file ends after %zu",
                              s->label, (long long)n, unit, have);
            break;
        }
        if (have == (size_t)n) break;
        size_t next = cap * 2 < (size_t)n ? cap * 2 : (size_t)n;
        unsigned char *p = realloc(buf, next);
        if (!p) {
            st = dg_set_error(NULL, DG_ERR_NOMEM, "idx_load: %s: out of memory", s->label);
            break;
        }
        buf = p;
        cap = next;
    }
    if (st == DG_OK) {
        unsigned char extra;
        size_t got;
        st = source_read(s, &extra, 1, &got);
        if (st == DG_OK && got)
            st = dg_set_error(NULL, DG_ERR_FORMAT,
                              "idx_load: %s: the file is longer than its header announces (%lld "
                              "bytes of %s after a %d-byte header)",
                              s->label, (long long)n, unit, header_bytes);
    }
    if (st != DG_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return DG_OK;
}

static dg_status load(source *img, source *lbl, dg_dataset *out) {
    idx_header hi = {{0}, 0}, hl = {{0}, 0};
    dg_status st = read_header(img, 3, &hi);
    if (st == DG_OK) st = read_header(lbl, 1, &hl);
    if (st == DG_OK && hi.dims[0] != hl.dims[0])
        st = dg_set_error(NULL, DG_ERR_FORMAT,
                          "idx_load: count mismatch: %s holds %lld images, %s holds %lld labels",
                          img->label, (long long)hi.dims[0], lbl->label, (long long)hl.dims[0]);
    unsigned char *pix = NULL, *lab = NULL;
    if (st == DG_OK) st = read_payload(img, hi.payload, "pixels", 16, &pix);
    if (st == DG_OK) st = read_payload(lbl, hl.payload, "labels", 8, &lab);
    float *images = NULL, *labels = NULL;
    if (st == DG_OK) {
        images = malloc((size_t)hi.payload * sizeof(float));
        labels = malloc((size_t)hl.payload * sizeof(float));
        if (!images || !labels)
            st = dg_set_error(NULL, DG_ERR_NOMEM, "idx_load: out of memory for %lld images",
                              (long long)hi.dims[0]);
    }
    if (st == DG_OK) {
        for (int64_t i = 0; i < hi.payload; i++) images[i] = (float)pix[i] / 255.0f;
        int max = 0;
        for (int64_t i = 0; i < hl.payload; i++) {
            labels[i] = (float)lab[i];
            if (lab[i] > max) max = lab[i];
        }
        out->count = hi.dims[0];
        out->rows = hi.dims[1];
        out->cols = hi.dims[2];
        out->images = images;
        out->labels = labels;
        out->classes = max + 1;
    } else {
        free(images);
        free(labels);
    }
    free(pix);
    free(lab);
    return st;
}

dg_status dg_idx_load(const char *images_path, const char *labels_path, dg_dataset *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!images_path || !labels_path || !out)
        return dg_set_error(NULL, DG_ERR_NULL, "idx_load: a pointer argument is NULL");
    char li[DG__WHAT_SIZE], ll[DG__WHAT_SIZE];
    dg__what(li, sizeof li, "images", images_path);
    dg__what(ll, sizeof ll, "labels", labels_path);
    source img, lbl;
    dg_status st = source_open_file(&img, li, images_path);
    if (st != DG_OK) return st;
    st = source_open_file(&lbl, ll, labels_path);
    if (st == DG_OK) {
        st = load(&img, &lbl, out);
        source_close(&lbl);
    }
    source_close(&img);
    return st;
}

dg_status dg_idx_load_mem(const void *images, size_t images_size, const void *labels,
                          size_t labels_size, dg_dataset *out) {
    if (out) memset(out, 0, sizeof *out);
    if ((!images && images_size) || (!labels && labels_size) || !out)
        return dg_set_error(NULL, DG_ERR_NULL, "idx_load: a pointer argument is NULL");
    source img, lbl;
    dg_status st = source_open_mem(&img, "images buffer", images, images_size);
    if (st != DG_OK) return st;
    st = source_open_mem(&lbl, "labels buffer", labels, labels_size);
    if (st == DG_OK) {
        st = load(&img, &lbl, out);
        source_close(&lbl);
    }
    source_close(&img);
    return st;
}

/* "<dir>/<prefix>-<kind>-idx<d>-ubyte[.gz]" or "<dir>/<prefix>-<kind>.idx<d>-ubyte[.gz]":
 * the first name that can be opened, or an error listing those tried. */
static dg_status find_file(const char *dir, const char *prefix, const char *kind, int d, char *path,
                           size_t size) {
    static const char *const forms[] = {"%s%s%s-%s-idx%d-ubyte.gz", "%s%s%s-%s-idx%d-ubyte",
                                        "%s%s%s-%s.idx%d-ubyte.gz", "%s%s%s-%s.idx%d-ubyte"};
    size_t dl = strlen(dir);
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    for (int i = 0; i < 4; i++) {
        snprintf(path, size, forms[i], dir, sep, prefix, kind, d);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return DG_OK;
        }
    }
    return dg_set_error(NULL, DG_ERR_IO,
                        "mnist_load: no %s file for '%s' in '%.200s' (tried %s-%s-idx%d-ubyte.gz, "
                        "%s-%s-idx%d-ubyte, %s-%s.idx%d-ubyte[.gz])",
                        kind, prefix, dir, prefix, kind, d, prefix, kind, d, prefix, kind, d);
}

dg_status dg_mnist_load(const char *dir, const char *prefix, dg_dataset *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!dir || !prefix || !out)
        return dg_set_error(NULL, DG_ERR_NULL, "mnist_load: a pointer argument is NULL");
    if (strlen(dir) > 4000 || strlen(prefix) > 200)
        return dg_set_error(NULL, DG_ERR_ARG, "mnist_load: directory or prefix too long");
    char ip[4300], lp[4300];
    dg_status st = find_file(dir, prefix, "images", 3, ip, sizeof ip);
    if (st == DG_OK) st = find_file(dir, prefix, "labels", 1, lp, sizeof lp);
    if (st == DG_OK) st = dg_idx_load(ip, lp, out);
    if (st != DG_OK) return st;
    for (int64_t i = 0; i < out->count; i++) {
        if (out->labels[i] > 9.0f) {
            st = dg_set_error(NULL, DG_ERR_FORMAT,
                              "mnist_load: '%.256s': label %d of item %lld is not a digit 0..9", lp,
                              (int)out->labels[i], (long long)i);
            dg_dataset_free(out);
            return st;
        }
    }
    return DG_OK;
}

void dg_dataset_free(dg_dataset *d) {
    if (!d) return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
