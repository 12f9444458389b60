/* Whole-file reads and crash-safe writes for the loaders and savers in src/io.
 * A save either replaces the old file completely or leaves it as it was: a reader never
 * sees a half-written file, whether the writer fails, fills the disk or is killed. */
#define _POSIX_C_SOURCE 200809L
#include "io_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
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

/* Moves a cut at s[i] back to the start of a UTF-8 character. */
static size_t utf8_start(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80) i--;
    return i;
}

void dg__what(char *buf, size_t size, const char *op, const char *path) {
    size_t n = strlen(path);
    if (n <= DG__WHAT_PATH) {
        snprintf(buf, size, "%s '%s'", op, path);
        return;
    }
    size_t head = utf8_start(path, DG__WHAT_PATH / 4);
    size_t tail = utf8_start(path, n - (DG__WHAT_PATH - DG__WHAT_PATH / 4 - 3));
    snprintf(buf, size, "%s '%.*s...%s'", op, (int)head, path, path + tail);
}

dg_status dg__read_file(dg_graph *g, const char *what, const char *path, unsigned char **buf,
                        size_t *size) {
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return dg_set_error(g, DG_ERR_IO, "%s: cannot open: %s", what, strerror(errno));
    /* The size from fstat bounds the allocation; reading to EOF then catches a file that
     * changed size meanwhile. fstat also rejects directories, which fopen accepts. */
    struct stat st;
    dg_status s = DG_OK;
    if (fstat(fileno(f), &st) != 0) {
        s = dg_set_error(g, DG_ERR_IO, "%s: cannot stat: %s", what, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        s = dg_set_error(g, DG_ERR_IO, "%s: the path is not a regular file", what);
    } else if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        s = dg_set_error(g, DG_ERR_NOMEM, "%s: the file is too large (%lld bytes)", what,
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
        return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory for %zu bytes", what, n);
    }
    size_t got = fread(p, 1, n + 1, f);
    int read_err = ferror(f);
    int e = errno;
    fclose(f);
    if (read_err || got != n) {
        free(p);
        if (read_err) return dg_set_error(g, DG_ERR_IO, "%s: error reading: %s", what, strerror(e));
        return dg_set_error(g, DG_ERR_IO, "%s: the file changed size while being read", what);
    }
    if (n == 0) {
        free(p);
        p = NULL;
    }
    *buf = p;
    *size = n;
    return DG_OK;
}

/* ---- temporary files of atomic saves ----
 *
 * A save writes ".<stem>.<T>.<H>.<pid>.<U>.dgtmp" in the target's directory:
 *   stem  the target's file name cut to at most STEM_MAX bytes (at a UTF-8 character
 *         boundary), so a person listing the directory sees what it belongs to;
 *   T     16 hex digits, FNV-1a 64 of the target's whole file name: which target;
 *   H     8 hex digits identifying the machine, its boot and the process-id namespace
 *         (host name, Linux's boot_id and /proc/self/ns/pid): where <pid> means something;
 *   pid   the saving process, in decimal;
 *   U     8 hex digits unique to the call (a process-wide counter mixed with the clock).
 * At most 117 bytes whatever the target's name, so a 255-byte name still works. The file
 * is created with O_EXCL: two saves never share a temporary, whether they are threads of
 * one process or processes with the same pid in different containers. A save also removes
 * the temporaries of its own target whose H is this machine's and whose process is gone
 * (kill(pid, 0) fails with ESRCH): what a killed save left behind. */
enum { STEM_MAX = 64, U_TRIES = 16 };
static const char TMP_SUFFIX[] = ".dgtmp";

static atomic_uint_fast32_t tmp_counter;

static uint32_t fold32(uint64_t h) { return (uint32_t)(h ^ (h >> 32)); }

static uint32_t host_tag(void) {
    uint64_t h = DG__FNV_OFFSET;
    char buf[256];
    if (gethostname(buf, sizeof buf) == 0) {
        buf[sizeof buf - 1] = 0;
        h = dg__fnv1a64(h, buf, strlen(buf));
    }
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        h = dg__fnv1a64(h, buf, n);
    }
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) == 0) {
        uint64_t id[2] = {(uint64_t)st.st_dev, (uint64_t)st.st_ino};
        h = dg__fnv1a64(h, id, sizeof id);
    }
    return fold32(h);
}

static int hex_value(const char *s, int n, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 1;
}

/* Reads T, H and pid from a temporary's name; 0 if the name is not one. Parsed from the
 * end, because the stem may hold anything, dots included. */
static int parse_temp_name(const char *name, uint64_t *target, uint32_t *host, long *pid) {
    size_t n = strlen(name), suf = sizeof TMP_SUFFIX - 1;
    /* ".", stem (maybe empty), ".T.H.pid.U" with a pid of at least one digit */
    if (name[0] != '.' || n < 1 + 1 + 16 + 1 + 8 + 1 + 1 + 1 + 8 + suf) return 0;
    if (strcmp(name + n - suf, TMP_SUFFIX) != 0) return 0;
    const char *p = name + n - suf - 8; /* U */
    uint64_t v;
    if (!hex_value(p, 8, &v) || p[-1] != '.') return 0;
    const char *digits_end = p - 1, *q = digits_end;
    while (q > name && q[-1] >= '0' && q[-1] <= '9') q--;
    if (q == digits_end || digits_end - q > 10 || q - name < 1 + 1 + 16 + 1 + 8 + 1) return 0;
    if (q[-1] != '.' || q[-10] != '.' || q[-27] != '.') return 0;
    long id = 0;
    for (const char *d = q; d < digits_end; d++) id = id * 10 + (*d - '0');
    if (!hex_value(q - 9, 8, &v)) return 0;
    *host = (uint32_t)v;
    if (!hex_value(q - 26, 16, target)) return 0;
    *pid = id;
    return 1;
}

/* Removes the temporaries of target `t` made on this machine (`host`) by processes that no
 * longer exist. Best effort: a directory that cannot be read is left alone. */
static void remove_stale_temps(const char *dir, uint64_t t, uint32_t host) {
    DIR *d = opendir(dir);
    if (!d) return;
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t et;
        uint32_t eh;
        long pid;
        if (!parse_temp_name(e->d_name, &et, &eh, &pid) || et != t || eh != host) continue;
        /* kill() with a pid <= 0 would ask about process groups */
        if (pid <= 0 || pid > 0x7fffffffL || pid == (long)self) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours */
        (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* Splits path into its directory (as opendir takes it) and its last component. */
static char *dir_of(const char *path, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(len + 1);
    if (!dir) return NULL;
    if (!slash)
        dir[0] = '.';
    else
        memcpy(dir, path, len);
    dir[len] = 0;
    return dir;
}

/* Checks the target before anything is written: a directory is refused; so is an existing
 * file the caller may not write (as cp refuses), since replacing it by rename would bypass
 * its permissions. A writable file's permission bits are kept in *mode (*replaces = 1). */
static dg_status check_target(dg_graph *g, const char *what, const char *path, int *replaces,
                              unsigned *mode) {
    struct stat st;
    *replaces = 0;
    if (stat(path, &st) != 0) {
        /* No file yet is fine (a missing directory is reported when creating the temporary);
         * a name too long, a component that is not a directory, ... fail before writing. */
        if (errno == ENOENT) return DG_OK;
        return dg_set_error(g, DG_ERR_IO, "%s: cannot use the path: %s", what, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return dg_set_error(g, DG_ERR_IO, "%s: the path is a directory, not a file", what);
    if (access(path, W_OK) != 0 && (errno == EACCES || errno == EPERM))
        return dg_set_error(g, DG_ERR_IO,
                            "%s: the file is read-only (mode %04o): not replaced (make it "
                            "writable or remove it first)",
                            what, (unsigned)(st.st_mode & 07777));
    *replaces = 1;
    *mode = (unsigned)(st.st_mode & 0777);
    return DG_OK;
}

dg_status dg__atomic_open(dg__atomic_file *w, dg_graph *g, const char *what, const char *path) {
    memset(w, 0, sizeof *w);
    w->path = path;
    w->hash = DG__FNV_OFFSET;
    const char *base;
    char *dir = dir_of(path, &base);
    if (!dir) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", what);
    size_t base_len = strlen(base);
    if (base_len == 0) {
        free(dir);
        return dg_set_error(g, DG_ERR_IO, "%s: the path names no file (empty, or ends in '/')",
                            what);
    }
    int replaces;
    unsigned mode = 0;
    dg_status st = check_target(g, what, path, &replaces, &mode);
    if (st != DG_OK) {
        free(dir);
        return st;
    }
    uint64_t t = dg__fnv1a64(DG__FNV_OFFSET, base, base_len);
    uint32_t host = host_tag();
    remove_stale_temps(dir, t, host);
    free(dir);

    size_t stem = base_len <= STEM_MAX ? base_len : utf8_start(base, STEM_MAX);
    size_t dir_len = (size_t)(base - path), len = dir_len + stem + 80;
    w->tmp = malloc(len);
    if (!w->tmp) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", what);
    int fd = -1, e = 0;
    for (int attempt = 0; attempt < U_TRIES && fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t mix[3] = {(uint64_t)atomic_fetch_add(&tmp_counter, 1), (uint64_t)ts.tv_nsec,
                           (uint64_t)ts.tv_sec};
        uint32_t u = fold32(dg__fnv1a64(DG__FNV_OFFSET, mix, sizeof mix));
        snprintf(w->tmp, len, "%.*s.%.*s.%016llx.%08lx.%ld.%08lx%s", (int)dir_len, path, (int)stem,
                 base, (unsigned long long)t, (unsigned long)host, (long)getpid(), (unsigned long)u,
                 TMP_SUFFIX);
        fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e = errno;
        if (fd < 0 && e != EEXIST) break;
    }
    if (fd >= 0 && replaces) (void)fchmod(fd, (mode_t)mode); /* before any byte is written */
    if (fd >= 0 && !(w->f = fdopen(fd, "wb"))) {
        e = errno;
        close(fd);
        remove(w->tmp);
        fd = -1;
    }
    if (fd < 0) {
        /* the cause before the name, so a long name cannot cut it off */
        st = dg_set_error(g, DG_ERR_IO, "%s: cannot create a temporary file beside it: %s (%s)",
                          what, strerror(e), w->tmp + dir_len);
        free(w->tmp);
        w->tmp = NULL;
        return st;
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
    const char *base;
    char *dir = dir_of(path, &base);
    if (!dir) return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* What a failed save did to the path: nothing, in both cases, but the words differ. */
static const char *left_as_it_was(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? "the existing file is unchanged" : "no file was created";
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
        return dg_set_error(g, DG_ERR_IO, "%s: writing failed: %s; %s", what,
                            e > 0 ? strerror(e) : "unknown error", left_as_it_was(w->path));
    }
    if (rename(w->tmp, w->path) != 0) {
        int e = errno;
        dg__atomic_abort(w);
        return dg_set_error(g, DG_ERR_IO, "%s: cannot rename the temporary file over it: %s; %s",
                            what, strerror(e), left_as_it_was(w->path));
    }
    free(w->tmp);
    w->tmp = NULL;
    sync_parent_dir(w->path);
    return DG_OK;
}
