/* Where saves go (POSIX): file names of up to 255 bytes (the usual NAME_MAX) save and load,
 * also deep in long directories, and a name too long fails with a message that still ends
 * with the cause; saving over a file keeps its permission bits, and a file the caller may
 * not write is refused, as cp refuses it, with nothing changed. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK_HAS(msg, sub)                                                                        \
    CHECK_MSG(strstr((msg), (sub)) != NULL, "message '%s' lacks '%s'", (msg), (sub))

static char dir[64];

/* A graph with one parameter "w" [4] holding v, v+1, v+2, v+3. */
static dg_graph *model(float v, dg_node **w) {
    dg_graph *g = dg_graph_new(1);
    *w = dg_param(g, "w", dg_shape1(4));
    for (int i = 0; i < 4; i++) dg_node_data(*w)[i] = v + (float)i;
    return g;
}

/* Loads `path` into a fresh model; the first value, or -1 if the load failed. */
static float load_first(const char *path) {
    dg_node *w;
    dg_graph *g = model(-1, &w);
    dg_status s = dg_checkpoint_load(g, path, 0);
    CHECK_MSG(s == DG_OK, "load: %s", dg_graph_error(g));
    float v = s == DG_OK ? dg_node_data(w)[0] : -1;
    dg_graph_free(g);
    return v;
}

/* Entries of directory d other than "." and "..". */
static int entries(const char *d) {
    DIR *dh = opendir(d);
    struct dirent *e;
    int n = 0;
    while (dh && (e = readdir(dh))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (dh) closedir(dh);
    return n;
}

static void remove_tree(const char *path) {
    DIR *dh = opendir(path);
    if (dh) {
        struct dirent *e;
        while ((e = readdir(dh))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *p = malloc(n);
            snprintf(p, n, "%s/%s", path, e->d_name);
            remove_tree(p);
            free(p);
        }
        closedir(dh);
        rmdir(path);
    } else {
        remove(path);
    }
}

/* `len` bytes of name: two-byte UTF-8 characters ("é") with an ASCII end, so cutting the
 * name at a byte count can land inside a character. */
static void long_name(char *out, size_t len) {
    size_t i = 0;
    while (i + 2 <= len - 5) {
        out[i++] = (char)0xc3;
        out[i++] = (char)0xa9;
    }
    while (i < len - 5) out[i++] = 'x';
    memcpy(out + i, ".ckpt", 6);
}

/* In directory `d` (which holds nothing else): a 255-byte name saves, loads and leaves no
 * temporary; a 256-byte name fails before anything is written, and the message ends with
 * the cause however long the path. */
static void check_long_names(const char *d) {
    char name[300], *path = malloc(strlen(d) + sizeof name + 2);
    dg_node *w;
    dg_graph *g = model(5, &w);
    long_name(name, 255);
    CHECK(strlen(name) == 255);
    sprintf(path, "%s/%s", d, name);
    CHECK_OK(dg_checkpoint_save(g, path, 0));
    CHECK(load_first(path) == 5.0f);
    dg_node_data(w)[0] = 6;
    CHECK_OK(dg_checkpoint_save(g, path, 0)); /* over the existing file */
    CHECK(load_first(path) == 6.0f);
    CHECK_MSG(entries(d) == 1, "%d entries in the directory, expected the checkpoint only",
              entries(d));
    CHECK(remove(path) == 0);
    const float v[3] = {1, 2, 3};
    CHECK_OK(dg_npy_write(path, v, dg_shape1(3)));
    float *back = NULL;
    dg_shape shape;
    CHECK_OK(dg_npy_read(path, &back, &shape));
    CHECK(back && back[2] == 3.0f);
    free(back);
    CHECK(remove(path) == 0);

    long_name(name, 256);
    sprintf(path, "%s/%s", d, name);
    CHECK(dg_checkpoint_save(g, path, 0) == DG_ERR_IO);
    const char *msg = dg_graph_error(g), *cause = strerror(ENAMETOOLONG);
    size_t ml = strlen(msg), cl = strlen(cause);
    CHECK_MSG(ml >= cl && strcmp(msg + ml - cl, cause) == 0, "'%s' does not end with '%s'", msg,
              cause);
    CHECK_HAS(msg, "x.ckpt': "); /* the end of the file name is shown */
    CHECK(dg_npy_write(path, v, dg_shape1(3)) == DG_ERR_IO);
    msg = dg_last_error();
    ml = strlen(msg);
    CHECK_MSG(ml >= cl && strcmp(msg + ml - cl, cause) == 0, "'%s' does not end with '%s'", msg,
              cause);
    CHECK_MSG(entries(d) == 0, "%d entries left in the directory", entries(d));
    dg_graph_free(g);
    free(path);
}

static void test_long_names(void) {
    char d[1200];
    snprintf(d, sizeof d, "%s/short", dir);
    CHECK(mkdir(d, 0700) == 0);
    check_long_names(d);
    /* Four directories of 200 bytes: a path of about 1,100 bytes. */
    snprintf(d, sizeof d, "%s", dir);
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(d);
        d[n++] = '/';
        memset(d + n, 'a' + i, 200);
        d[n + 200] = 0;
        CHECK(mkdir(d, 0700) == 0);
    }
    check_long_names(d);
}

static mode_t mode_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static size_t read_all(const char *path, unsigned char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, size, f);
    fclose(f);
    return n;
}

/* Saving over a file the caller may not write: refused, file and mode unchanged. Run as
 * the file's owner without root, or in a child that gave up root. Returns the number of
 * failed checks (for the child's exit status). */
static int check_refused(const char *path) {
    int before = test_failures;
    unsigned char a[512], b[512];
    size_t na = read_all(path, a, sizeof a);
    dg_node *w;
    dg_graph *g = model(30, &w);
    CHECK(dg_checkpoint_save(g, path, 0) == DG_ERR_IO);
    CHECK_HAS(dg_graph_error(g), "the file is read-only (mode 0444): not replaced");
    CHECK(dg_npy_save(w, path) == DG_ERR_IO);
    CHECK_HAS(dg_graph_error(g), "npy_save '");
    CHECK_HAS(dg_graph_error(g), "read-only");
    CHECK(read_all(path, b, sizeof b) == na && memcmp(a, b, na) == 0);
    CHECK(mode_of(path) == 0444);
    dg_graph_free(g);
    return test_failures - before;
}

static void test_permissions(void) {
    umask(022); /* a new file would be 0644 */
    char p[128];
    dg_node *w;
    dg_graph *g = model(10, &w);
    static const mode_t modes[] = {0600, 0640, 0664};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/mode%d.ckpt", dir, i);
        CHECK_OK(dg_checkpoint_save(g, p, 0));
        CHECK(mode_of(p) == 0644);
        CHECK(chmod(p, modes[i]) == 0);
        dg_node_data(w)[0] = 11;
        CHECK_OK(dg_checkpoint_save(g, p, 0));
        CHECK_MSG(mode_of(p) == modes[i], "mode %04o became %04o", (unsigned)modes[i],
                  (unsigned)mode_of(p));
        CHECK(load_first(p) == 11.0f);
        remove(p);
    }

    snprintf(p, sizeof p, "%s/ro.ckpt", dir);
    dg_node_data(w)[0] = 20;
    CHECK_OK(dg_checkpoint_save(g, p, 0));
    CHECK(chmod(p, 0444) == 0);
    if (geteuid() != 0) {
        check_refused(p);
        CHECK(load_first(p) == 20.0f);
    } else {
        /* Root may write any file, so cp replaces it, and so does a save: with its mode. */
        dg_node_data(w)[0] = 21;
        CHECK_OK(dg_checkpoint_save(g, p, 0));
        CHECK_MSG(mode_of(p) == 0444, "mode 0444 became %04o", (unsigned)mode_of(p));
        CHECK(load_first(p) == 21.0f);
        /* An ordinary user who may write the directory but not the file is refused. */
        CHECK(chmod(dir, 0777) == 0);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
            /* the directory is writable: a new file saves */
            char q[128];
            snprintf(q, sizeof q, "%s/nobody.ckpt", dir);
            if (dg_checkpoint_save(g, q, 0) != DG_OK) _exit(78);
            _exit(check_refused(p) ? 1 : 0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
            printf("SKIP: cannot switch to uid 65534; refusal not tested as root\n");
        else
            CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "as uid 65534: status %d (78: cannot save in the directory)", status);
        CHECK(load_first(p) == 21.0f);
        CHECK(chmod(dir, 0700) == 0);
    }
    CHECK(mode_of(p) == 0444);
    dg_graph_free(g);
}

int main(void) {
    strcpy(dir, "/tmp/dg_paths_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_long_names();
    test_permissions();
    remove_tree(dir);
    return test_summary("test_io_save_paths");
}
