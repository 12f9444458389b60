/* Nothing lost (POSIX): a process killed with SIGKILL while saving checkpoints over and
 * over leaves a file that loads and holds one complete save; a save that hits a full disk
 * (simulated with RLIMIT_FSIZE) fails cleanly and the previous checkpoint still loads. */
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

static void remove_temps(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) {
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
        remove_temps(); /* the killed child's temporary, if it was mid-write */
    }
    /* Each child completed at least one save before it was killed. */
    CHECK_MSG(advanced == 6, "only %d of 6 rounds found a newer save", advanced);
    printf("sigkill: final version %g after 6 kills\n", last);
    dg_graph_free(g);
}

static void test_full_disk(void) {
    dg_node *big, *small;
    dg_graph *g = model(&big, &small);
    set_all(big, small, 11);
    CHECK_OK(dg_checkpoint_save(g, path, 0));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: files may not grow past 64 KiB, as on a nearly full disk; writes past the
         * limit fail with EFBIG instead of raising SIGXFSZ. */
        struct rlimit rl = {65536, 65536};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(2);
        set_all(big, small, 12);
        dg_status s = dg_checkpoint_save(g, path, 0);
        if (s != DG_ERR_IO) _exit(3);
        if (!strstr(dg_graph_error(g), "unchanged")) _exit(4);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "full-disk child: status %d", status);
    CHECK(load_value() == 11.0f);
    DIR *d = opendir(dir);
    struct dirent *e;
    int temps = 0;
    while (d && (e = readdir(d))) temps += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    CHECK_MSG(temps == 0, "a failed save left %d temporary files", temps);
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
    remove_temps();
    remove(path);
    rmdir(dir);
    return test_summary("test_checkpoint_crash");
}
