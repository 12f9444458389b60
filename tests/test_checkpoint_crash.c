/* Nothing lost (POSIX): a process killed with SIGKILL while saving checkpoints over and
 * over leaves a file that loads and holds one complete save; a save that hits a full disk
 * (simulated with RLIMIT_FSIZE) fails cleanly and the previous checkpoint still loads.
 * Nothing left either: the temporaries of killed saves are removed by the next save to
 * the same path, while the temporary of a save still running in another process is not. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG (1 << 20) /* floats in the large parameter: a 4 MiB checkpoint */

static char dir[64], path[128];

/* Every element of the model is `v`: a torn file would show two values or fail to load. */
static dg_graph *model(dg_node **big, dg_node **small) {
    dg_graph *g = dg_graph_new(1);
    *big = dg_param(g, "big", dg_shape2(BIG / 256, 256));
    *small = dg_param(g, "small", dg_shape1(3));
    return g;
}

static void set_all(dg_node *big, dg_node *small, float v) {
    float *d = dg_node_data(big);
    for (int64_t i = 0; i < BIG; i++) d[i] = v;
    for (int i = 0; i < 3; i++) dg_node_data(small)[i] = v;
}

/* Loads `path`; returns the single value every element holds, or -1 if they differ. */
static float load_value(void) {
    dg_node *big, *small;
    dg_graph *g = model(&big, &small);
    set_all(big, small, -2);
    dg_status s = dg_checkpoint_load(g, path, 0);
    CHECK_MSG(s == DG_OK, "load after kill: %s", dg_graph_error(g));
    float v = dg_node_data(small)[0], *d = dg_node_data(big);
    for (int64_t i = 0; i < BIG; i++)
        if (d[i] != v) v = -1;
    for (int i = 0; i < 3; i++)
        if (dg_node_data(small)[i] != v) v = -1;
    dg_graph_free(g);
    return s == DG_OK ? v : -1;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Files in dir other than the checkpoint: temporaries of saves, whatever their names. */
static int strays(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "model.ckpt"))
            n++;
    if (d) closedir(d);
    return n;
}

static void remove_all(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
        }
    if (d) closedir(d);
}

static void test_sigkill_during_saves(void) {
    dg_node *big, *small;
    dg_graph *g = model(&big, &small);
    set_all(big, small, 0);
    CHECK_OK(dg_checkpoint_save(g, path, 0));
    float last = 0;
    int advanced = 0;
    /* Different delays land the kill at different points of a save. */
    /* Different delays land the kill at different points of a save. */
    static const int delays_ms[] = {0, 1, 3, 7, 13, 29};
    for (int round = 0; round < 6; round++) {
        int fds[2];
        if (pipe(fds) != 0) {
            CHECK_MSG(0, "pipe failed");
            break;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK_MSG(0, "fork failed");
            break;
        }
        if (pid == 0) {
            /* Child: save versions last+1, last+2, ... until killed, reporting each
             * completed save on the pipe. */
            close(fds[0]);
            for (float v = last + 1;; v += 1) {
                set_all(big, small, v);
                if (dg_checkpoint_save(g, path, 0) != DG_OK) _exit(3);
                if (write(fds[1], "s", 1) != 1) _exit(4);
            }
        }
        close(fds[1]);
        /* One save has completed, the next is under way: kill it somewhere inside. */
        char c;
        CHECK(read(fds[0], &c, 1) == 1);
        sleep_ms(delays_ms[round]);
        kill(pid, SIGKILL);
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "child ended otherwise (status %d): a save failed", status);
        float v = load_value();
        CHECK_MSG(v >= last, "round %d: the file holds %g after version %g (torn or lost)", round,
                  v, last);
        if (v > last) advanced++;
        last = v < 0 ? last : v;
    }
    /* Each child completed at least one save before it was killed. */
    CHECK_MSG(advanced == 6, "only %d of 6 rounds found a newer save", advanced);
    /* The killed children's temporaries (each child's first save removed those of the
     * children before it) go with the next save. */
    int left = strays();
    CHECK_OK(dg_checkpoint_save(g, path, 0));
    CHECK_MSG(strays() == 0, "%d temporaries of killed saves are still there", strays());
    printf("sigkill: final version %g after 6 kills, %d temporaries left, 0 after a save\n", last,
           left);
    dg_graph_free(g);
}

/* In a child whose files may not grow past 64 KiB, as on a nearly full disk (writes past
 * the limit fail with EFBIG instead of raising SIGXFSZ): saves g to `target`, which must
 * fail and say `want`. Returns the child's exit status: 0 if all was as expected. */
static int save_on_full_disk(dg_graph *g, dg_node *big, dg_node *small, const char *target,
                             const char *want) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {65536, 65536};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(2);
        set_all(big, small, 12);
        dg_status s = dg_checkpoint_save(g, target, 0);
        if (s != DG_ERR_IO) _exit(3);
        if (!strstr(dg_graph_error(g), want)) {
            fprintf(stderr, "full disk: '%s' lacks '%s'\n", dg_graph_error(g), want);
            _exit(4);
        }
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + status;
}

static void test_full_disk(void) {
    dg_node *big, *small;
    dg_graph *g = model(&big, &small);
    set_all(big, small, 11);
    CHECK_OK(dg_checkpoint_save(g, path, 0));
    int r = save_on_full_disk(g, big, small, path, "; the existing file is unchanged");
    CHECK_MSG(r == 0, "full-disk child over a file: status %d", r);
    CHECK(load_value() == 11.0f);
    CHECK_MSG(strays() == 0, "a failed save left %d temporary files", strays());
    /* A first save to a new path: there is no file that could be "unchanged". */
    char fresh[160];
    snprintf(fresh, sizeof fresh, "%s/fresh.ckpt", dir);
    r = save_on_full_disk(g, big, small, fresh, "; no file was created");
    CHECK_MSG(r == 0, "full-disk child, new file: status %d", r);
    CHECK(access(fresh, F_OK) != 0);
    CHECK_MSG(strays() == 0, "a failed save left %d temporary files", strays());
    dg_graph_free(g);
}

/* A child saving the 4 MiB model with files limited to 64 KiB is stopped inside its save,
 * its temporary file partly written: by SIGXFSZ's default action (killed, as by a crash or
 * an OOM kill), or with `stay` in a handler that reports on `notify` and waits (a save still
 * running). */
static int notify = -1;
static void wait_inside_save(int sig) {
    (void)sig;
    if (write(notify, "p", 1) != 1) _exit(5);
    for (;;) pause();
}

static pid_t start_cut_save(dg_graph *g, dg_node *big, dg_node *small, int stay) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        notify = fds[1];
        struct rlimit fsize = {65536, 65536}, core = {0, 0};
        if (setrlimit(RLIMIT_FSIZE, &fsize) != 0 || setrlimit(RLIMIT_CORE, &core) != 0) _exit(2);
        signal(SIGXFSZ, stay ? wait_inside_save : SIG_DFL);
        set_all(big, small, 99);
        dg_checkpoint_save(g, path, 0);
        _exit(3); /* not reached: the signal comes first */
    }
    close(fds[1]);
    char c;
    if (pid > 0 && stay) CHECK_MSG(read(fds[0], &c, 1) == 1, "the child did not stop in its save");
    close(fds[0]);
    if (pid > 0 && !stay) {
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ,
                  "the child was not killed inside its save (status %d)", status);
    }
    return pid;
}

static void test_leftovers_removed(void) {
    dg_node *big, *small;
    dg_graph *g = model(&big, &small);
    set_all(big, small, 20);
    CHECK_OK(dg_checkpoint_save(g, path, 0));
    CHECK(strays() == 0);
    pid_t running = start_cut_save(g, big, small, 1);
    CHECK_MSG(strays() == 1, "a running save: %d temporaries", strays());
    start_cut_save(g, big, small, 0);
    CHECK_MSG(strays() == 2, "a running and a killed save: %d temporaries", strays());
    CHECK(load_value() == 20.0f);
    /* The next save removes the killed one's temporary, not the running one's. */
    set_all(big, small, 21);
    CHECK_OK(dg_checkpoint_save(g, path, 0));
    CHECK_MSG(strays() == 1, "after a save: %d temporaries, expected the running save's", strays());
    CHECK(load_value() == 21.0f);
    /* Once that process is gone too, its temporary goes with the next save. */
    if (running > 0) {
        kill(running, SIGKILL);
        waitpid(running, NULL, 0);
    }
    CHECK(strays() == 1);
    CHECK_OK(dg_checkpoint_save(g, path, 0));
    CHECK_MSG(strays() == 0, "after the last save: %d temporaries", strays());
    CHECK(load_value() == 21.0f);
    dg_graph_free(g);
}

int main(void) {
    strcpy(dir, "/tmp/dg_crash_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    test_sigkill_during_saves();
    test_full_disk();
    test_leftovers_removed();
    remove_all();
    rmdir(dir);
    return test_summary("test_checkpoint_crash");
}
