/* bench_memory: what planned memory saves. For W2 (784-512-256-10 ReLU MLP, softmax
 * cross-entropy, Adam, batch 128) it trains one epoch of 60,000 images, once with every
 * value kept (dg_set_keep_all) and once planned (the default), each in a fresh process, and
 * prints:
 *   - bytes held by node buffers (leaves, kept results, the plan's arena), and of those
 *     the intermediate results: everything keep-all holds beyond what planning keeps too
 *     (targets, parameter gradients) against the arena planning shares among them;
 *   - the peak resident set size of the process (getrusage of the child);
 *   - the same peak for the identical PyTorch model and loop (bench_memory_torch.py, run by
 *     /usr/bin/python3 with OPENBLAS_NUM_THREADS=1 and the same thread count).
 * Both sides hold the images as bytes (47 MB, as torchvision's MNIST does) and convert each
 * batch to floats, so the data costs both the same; the images are random (memory does not
 * depend on them). Targets: planned intermediates at most half of keep-all; peak RSS at most
 * a third of PyTorch's.
 *
 * usage: bench_memory [--threads N] [--no-torch]        (--child MODE is internal) */
#define _GNU_SOURCE
#include "dagrad.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { IMAGES = 60000, PIXELS = 784, BATCH = 128 };

#ifndef DG_BENCH_DIR
#define DG_BENCH_DIR "bench"
#endif

/* The child: one epoch, then "stats <leaf> <kept> <arena> <run arena> <planned>" on stdout. */
static int child(int keep_all, int threads) {
    dg_set_num_threads(threads);
    uint8_t *images = malloc((size_t)IMAGES * PIXELS);
    uint8_t *labels = malloc(IMAGES);
    float *xb = malloc(sizeof(float) * BATCH * PIXELS), *yb = malloc(sizeof(float) * BATCH);
    if (!images || !labels || !xb || !yb) return 1;
    uint64_t z = 12345;
    for (size_t i = 0; i < (size_t)IMAGES * PIXELS; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        images[i] = (uint8_t)(z >> 56);
    }
    for (int i = 0; i < IMAGES; i++) labels[i] = (uint8_t)(i % 10);

    dg_graph *g = dg_graph_new(0);
    dg_set_keep_all(g, keep_all);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, PIXELS));
    dg_node *y = dg_input(g, "y", dg_shape1(DG_BATCH));
    dg_node *h = dg_dense(g, "fc1", x, 512, DG_ACT_RELU);
    h = dg_dense(g, "fc2", h, 256, DG_ACT_RELU);
    dg_node *logits = dg_dense(g, "fc3", h, 10, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(g, logits, y);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = loss ? dg_optimizer_new(g, loss, &cfg) : NULL;
    if (!opt) {
        fprintf(stderr, "bench_memory: %s\n", dg_graph_error(g));
        return 1;
    }
    for (int start = 0; start < IMAGES; start += BATCH) {
        int rows = IMAGES - start < BATCH ? IMAGES - start : BATCH;
        for (int i = 0; i < rows * PIXELS; i++)
            xb[i] = (float)images[(size_t)start * PIXELS + i] / 255.0f;
        for (int i = 0; i < rows; i++) yb[i] = labels[start + i];
        if (dg_feed(x, xb, rows * PIXELS) != DG_OK || dg_feed(y, yb, rows) != DG_OK ||
            dg_optimizer_step(opt) != DG_OK) {
            fprintf(stderr, "bench_memory: %s\n", dg_graph_error(g));
            return 1;
        }
    }
    /* the statistics of a full batch */
    dg_feed(x, xb, BATCH * PIXELS);
    dg_feed(y, yb, BATCH);
    dg_optimizer_step(opt);
    dg_memory_stats m;
    dg_graph_memory(g, &m);
    printf("stats %zu %zu %zu %zu %zu\n", m.leaf_bytes, m.kept_bytes, m.arena_bytes,
           m.run_arena_bytes, m.planned_bytes);
    dg_graph_free(g);
    free(images), free(labels), free(xb), free(yb);
    return 0;
}

/* Runs argv in a child process; returns its peak RSS in bytes (or -1) and its first output
 * line in `line`. */
static long long run_child(char *const argv[], char *line, size_t size) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    line[0] = 0;
    char buf[512];
    while (f && fgets(buf, sizeof buf, f))
        if (!line[0] || strncmp(buf, "stats", 5) == 0 || strncmp(buf, "rss", 3) == 0)
            snprintf(line, size, "%s", buf);
    if (f) fclose(f);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return (long long)ru.ru_maxrss * 1024;
}

static double mb(double bytes) { return bytes / 1048576.0; }

int main(int argc, char **argv) {
    int threads = 0, torch = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--child") == 0 && i + 1 < argc)
            return child(strcmp(argv[i + 1], "keep") == 0, threads);
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-torch") == 0)
            torch = 0;
    }
    dg_set_num_threads(threads);
    threads = dg_get_num_threads();
    char self[4096], tstr[16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return fprintf(stderr, "bench_memory: cannot find its own binary\n"), 1;
    self[n] = 0;
    snprintf(tstr, sizeof tstr, "%d", threads);
    printf("bench_memory: W2 (784-512-256-10, Adam, batch 128), one epoch of %d images, %d "
           "threads\n\n",
           IMAGES, threads);

    const char *modes[2] = {"keep", "planned"};
    long long rss[3] = {-1, -1, -1};
    double stats[2][5] = {{0}};
    for (int k = 0; k < 2; k++) {
        char line[512];
        char *args[] = {self, "--threads", tstr, "--child", (char *)modes[k], NULL};
        rss[k] = run_child(args, line, sizeof line);
        if (rss[k] < 0 || sscanf(line, "stats %lf %lf %lf %lf %lf", &stats[k][0], &stats[k][1],
                                 &stats[k][2], &stats[k][3], &stats[k][4]) != 5) {
            fprintf(stderr, "bench_memory: the %s run failed\n", modes[k]);
            return 1;
        }
    }
    if (torch && access("/usr/bin/python3", X_OK) == 0) {
        char script[4096], line[512];
        snprintf(script, sizeof script, "%s/bench_memory_torch.py", DG_BENCH_DIR);
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        char *args[] = {"/usr/bin/python3", script, tstr, NULL};
        rss[2] = run_child(args, line, sizeof line);
        if (rss[2] < 0) printf("(PyTorch run failed: is python3-torch installed?)\n");
    }
    /* keep-all: every result has a buffer; planned: only targets, kept and parameter
     * gradients do, the rest share the arena */
    double keep_nodes = stats[0][0] + stats[0][1],
           plan_nodes = stats[1][0] + stats[1][1] + stats[1][3];
    double keep_inter = stats[0][1] - stats[1][1], plan_inter = stats[1][3];
    printf("%-22s %14s %18s %14s %12s\n", "", "node buffers", "of which", "peak RSS", "RSS vs");
    printf("%-22s %14s %18s %14s %12s\n", "", "(MB)", "intermediates (MB)", "(MB)", "PyTorch");
    const char *names[3] = {"dagrad, keep-all", "dagrad, planned", "PyTorch 1.13"};
    for (int k = 0; k < 3; k++) {
        if (rss[k] < 0) continue;
        char nodes[32] = "-", inter[32] = "-", ratio[32] = "-";
        if (k < 2) {
            snprintf(nodes, sizeof nodes, "%.2f", mb(k ? plan_nodes : keep_nodes));
            snprintf(inter, sizeof inter, "%.2f", mb(k ? plan_inter : keep_inter));
        }
        if (rss[2] > 0) snprintf(ratio, sizeof ratio, "%.2f", (double)rss[k] / (double)rss[2]);
        printf("%-22s %14s %18s %14.1f %12s\n", names[k], nodes, inter, mb((double)rss[k]), ratio);
    }
    printf("\nplanned intermediates / keep-all intermediates: %.2f (target <= 0.50)\n",
           plan_inter / keep_inter);
    if (rss[2] > 0)
        printf("planned peak RSS / PyTorch peak RSS:             %.2f (target <= 0.33)\n",
               (double)rss[1] / (double)rss[2]);
    printf("(parameters, their gradients and Adam's moments: %.2f MB in both dagrad runs; the "
           "images, as bytes: %.1f MB in every run)\n",
           mb(stats[1][0] + stats[1][1]), mb((double)IMAGES * PIXELS));
    return 0;
}
