/* Helpers shared by the file formats in src/io: whole-file reads, atomic writes with a
 * running checksum, little-endian encoding and FNV-1a. Not installed. */
#ifndef DG_IO_INTERNAL_H
#define DG_IO_INTERNAL_H

#include "dagrad/core.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* FNV-1a 64: h = (h ^ byte) * 0x100000001b3 per byte, starting from the offset basis.
 * Both steps are bijections of h, so a change in any single byte always changes the
 * result. */
#define DG__FNV_OFFSET 0xcbf29ce484222325ull
uint64_t dg__fnv1a64(uint64_t h, const void *data, size_t n);

static inline uint32_t dg__get_u32le(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t dg__get_u64le(const unsigned char *p) {
    return (uint64_t)dg__get_u32le(p) | (uint64_t)dg__get_u32le(p + 4) << 32;
}
static inline uint32_t dg__get_u32be(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline void dg__put_u32le(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void dg__put_u64le(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* n float32 values from/to little-endian bytes, whatever the host's byte order. */
void dg__floats_from_le(float *out, const unsigned char *in, size_t n);
void dg__floats_to_le(unsigned char *out, const float *in, size_t n);

/* "<op> '<path>'", the start of every message about a file. A path longer than
 * DG__WHAT_PATH bytes keeps its start and its end (where the file name is) around "...".
 * `size` should be at least DG__WHAT_SIZE. */
#define DG__WHAT_PATH 256
#define DG__WHAT_SIZE (64 + DG__WHAT_PATH)
void dg__what(char *buf, size_t size, const char *op, const char *path);

/* Reads a whole file into a malloc'd buffer (*buf is NULL for an empty file). Errors are
 * DG_ERR_IO (or DG_ERR_NOMEM) recorded on g (may be NULL) with `what` as prefix, which
 * names the call and the file (dg__what); the messages do not repeat the path. */
dg_status dg__read_file(dg_graph *g, const char *what, const char *path, unsigned char **buf,
                        size_t *size);

/* An atomic file write: bytes go to a temporary file created exclusively beside `path`
 * (".<name>.<target hash>.<host>.<pid>.<unique>.dgtmp", see file.c) and only
 * dg__atomic_commit makes them appear at `path` (fflush, fsync, rename, fsync of the
 * directory). Opening refuses a directory or a file the caller may not write, keeps an
 * existing file's permission bits, and removes temporaries of the same target left by
 * processes that no longer exist. Every byte put also updates `hash` (FNV-1a 64). Write
 * errors are remembered and reported at commit. */
typedef struct dg__atomic_file {
    FILE *f;
    char *tmp; /* the temporary's path; NULL once renamed or removed */
    const char *path;
    uint64_t hash;
    int err; /* errno of the first failed write, or -1 for a failure without errno */
} dg__atomic_file;

dg_status dg__atomic_open(dg__atomic_file *w, dg_graph *g, const char *what, const char *path);
void dg__atomic_put(dg__atomic_file *w, const void *data, size_t n);
void dg__atomic_put_u32(dg__atomic_file *w, uint32_t v);
void dg__atomic_put_u64(dg__atomic_file *w, uint64_t v);
void dg__atomic_put_floats(dg__atomic_file *w, const float *data, size_t n);
/* Publishes the file; on failure removes the temporary and leaves `path` as it was. */
dg_status dg__atomic_commit(dg__atomic_file *w, dg_graph *g, const char *what);
/* Gives up: closes and removes the temporary. */
void dg__atomic_abort(dg__atomic_file *w);

#endif
