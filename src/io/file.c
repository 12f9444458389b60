/* Whole-file reads and crash-safe writes for the loaders and savers in src/io.
 * A save either replaces the old file completely or leaves it as it was: a reader never
 * sees a half-written file, whether the writer fails, fills the disk or is killed. */
#define _POSIX_C_SOURCE 200809L
#include "io_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t dg__fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void dg__floats_from_le(float *out, const unsigned char *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = dg__get_u32le(in + 4 * i);
        memcpy(&out[i], &u, 4);
    }
}

void dg__floats_to_le(unsigned char *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &in[i], 4);
        dg__put_u32le(out + 4 * i, u);
    }
}

dg_status dg__read_file(dg_graph *g, const char *what, const char *path, unsigned char **buf,
                        size_t *size) {
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return dg_set_error(g, DG_ERR_IO, "%s: cannot open '%s': %s", what, path, strerror(errno));
    /* The size from fstat bounds the allocation; reading to EOF then catches a file that
     * changed size meanwhile. fstat also rejects directories, which fopen accepts. */
    struct stat st;
    dg_status s = DG_OK;
    if (fstat(fileno(f), &st) != 0) {
        s = dg_set_error(g, DG_ERR_IO, "%s: cannot stat '%s': %s", what, path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        s = dg_set_error(g, DG_ERR_IO, "%s: '%s' is not a regular file", what, path);
    } else if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        s = dg_set_error(g, DG_ERR_NOMEM, "%s: '%s' is too large (%lld bytes)", what, path,
                         (long long)st.st_size);
    }
    if (s != DG_OK) {
        fclose(f);
        return s;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *p = malloc(n + 1); /* +1: room to detect growth and non-NULL for n == 0 */
    if (!p) {
        fclose(f);
        return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory reading '%s' (%zu bytes)", what,
                            path, n);
    }
    size_t got = fread(p, 1, n + 1, f);
    int read_err = ferror(f);
    int e = errno;
    fclose(f);
    if (read_err || got != n) {
        free(p);
        if (read_err)
            return dg_set_error(g, DG_ERR_IO, "%s: error reading '%s': %s", what, path,
                                strerror(e));
        return dg_set_error(g, DG_ERR_IO, "%s: '%s' changed size while being read", what, path);
    }
    if (n == 0) {
        free(p);
        p = NULL;
    }
    *buf = p;
    *size = n;
    return DG_OK;
}

dg_status dg__atomic_open(dg__atomic_file *w, dg_graph *g, const char *what, const char *path) {
    memset(w, 0, sizeof *w);
    w->path = path;
    w->hash = DG__FNV_OFFSET;
    size_t len = strlen(path) + 32;
    w->tmp = malloc(len);
    if (!w->tmp) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", what);
    snprintf(w->tmp, len, "%s.tmp.%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        dg_status s =
            dg_set_error(g, DG_ERR_IO, "%s: cannot create '%s': %s", what, w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL;
        return s;
    }
    return DG_OK;
}

void dg__atomic_put(dg__atomic_file *w, const void *data, size_t n) {
    if (n == 0) return;
    w->hash = dg__fnv1a64(w->hash, data, n);
    if (w->err) return;
    if (fwrite(data, 1, n, w->f) != n) w->err = errno ? errno : -1;
}

void dg__atomic_put_u32(dg__atomic_file *w, uint32_t v) {
    unsigned char b[4];
    dg__put_u32le(b, v);
    dg__atomic_put(w, b, 4);
}

void dg__atomic_put_u64(dg__atomic_file *w, uint64_t v) {
    unsigned char b[8];
    dg__put_u64le(b, v);
    dg__atomic_put(w, b, 8);
}

void dg__atomic_put_floats(dg__atomic_file *w, const float *data, size_t n) {
    unsigned char buf[4096];
    while (n > 0) {
        size_t k = n < sizeof buf / 4 ? n : sizeof buf / 4;
        dg__floats_to_le(buf, data, k);
        dg__atomic_put(w, buf, 4 * k);
        data += k;
        n -= k;
    }
}

void dg__atomic_abort(dg__atomic_file *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) remove(w->tmp);
    free(w->tmp);
    w->f = NULL;
    w->tmp = NULL;
}

/* After the rename, syncing the directory makes the new name itself durable. Best effort:
 * some file systems refuse fsync on directories. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = malloc(2);
        if (dir) strcpy(dir, ".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(len + 1);
        if (dir) {
            memcpy(dir, path, len);
            dir[len] = 0;
        }
    }
    if (!dir) return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

dg_status dg__atomic_commit(dg__atomic_file *w, dg_graph *g, const char *what) {
    if (!w->err && fflush(w->f) != 0) w->err = errno ? errno : -1;
    if (!w->err && fsync(fileno(w->f)) != 0) w->err = errno ? errno : -1;
    int close_failed = fclose(w->f) != 0;
    w->f = NULL;
    if (!w->err && close_failed) w->err = errno ? errno : -1;
    if (w->err) {
        int e = w->err;
        dg__atomic_abort(w);
        return dg_set_error(g, DG_ERR_IO, "%s: writing '%s' failed: %s; '%s' is unchanged", what,
                            w->path, e > 0 ? strerror(e) : "unknown error", w->path);
    }
    if (rename(w->tmp, w->path) != 0) {
        int e = errno;
        dg__atomic_abort(w);
        return dg_set_error(g, DG_ERR_IO, "%s: cannot rename the temporary file to '%s': %s", what,
                            w->path, strerror(e));
    }
    free(w->tmp);
    w->tmp = NULL;
    sync_parent_dir(w->path);
    return DG_OK;
}
