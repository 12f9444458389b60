/* bench_memory: what planned memory saves. For W2 (784-512-256-10 ReLU MLP, softmax
 * cross-entropy, Adam, batch 128) and for the CNN of examples/mnist_cnn (conv 32 5x5 pad 2,
 * ReLU, max pool 2, conv 64 5x5, ReLU, max pool 2, dense 256 ReLU, dropout 0.25, dense 10;
 * Adam, batch 64) it trains one epoch of 60,000 images, once with every value kept
 * (dg_set_keep_all) and once planned (the default), each in a fresh process, and prints:
 *   - bytes held by node buffers (leaves, kept results, the plan's arena), and of those
 *     the intermediate results: everything keep-all holds beyond what planning keeps too
 *     (targets, parameter gradients) against the arena planning shares among them;
 *   - the peak resident set size of the process (getrusage of the child);
 *   - the same peak for the identical PyTorch model and loop (bench_memory_torch.py, run by
 *     /usr/bin/python3 with OPENBLAS_NUM_THREADS=1 and the same thread count).
 * Both sides hold the images as bytes (47 MB, as torchvision's MNIST does) and convert each
 * batch to floats, so the data costs both the same; the images are random (memory does not
 * depend on them). Targets (W2): planned intermediates at most half of keep-all; peak RSS
 * at most a third of PyTorch's.
 *
 * usage: bench_memory [--threads N] [--model w2|cnn|all] [--no-torch]
 *        (--child MODEL MODE is internal) */
#define _GNU_SOURCE
#include "dagrad.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { IMAGES = 60000, PIXELS = 784, SIDE = 28 };

typedef struct bench_model {
    const char *name;  /* as given to --model and to the PyTorch script */
    const char *title; /* for the table */
    int batch;
} bench_model;

static const bench_model MODELS[] = {
    {"w2", "W2 (784-512-256-10, Adam, batch 128)", 128},
    {"cnn",
     "the example CNN (conv 32 5x5, pool, conv 64 5x5, pool, dense 256, dropout, "
     "dense 10; Adam, batch 64)",
     64},
};

#ifndef DG_BENCH_DIR
#define DG_BENCH_DIR "bench"
#endif

/* The model's graph on input x; NULL on error. */
static dg_node *build_logits(dg_graph *g, const bench_model *model, dg_node *x) {
    if (strcmp(model->name, "w2") == 0) {
        dg_node *h = dg_dense(g, "fc1", x, 512, DG_ACT_RELU);
        h = dg_dense(g, "fc2", h, 256, DG_ACT_RELU);
        return dg_dense(g, "fc3", h, 10, DG_ACT_NONE);
    }
    dg_node *h = dg_conv2d(g, "conv1", x, 32, 5, 1, 2, DG_ACT_RELU);
    h = dg_max_pool2d(g, "pool1", h, 2, 2, 0);
    h = dg_conv2d(g, "conv2", h, 64, 5, 1, 0, DG_ACT_RELU);
    h = dg_max_pool2d(g, "pool2", h, 2, 2, 0);
    h = dg_flatten(g, "flatten", h);
    h = dg_dense(g, "dense", h, 256, DG_ACT_RELU);
    h = dg_dropout(g, "dropout", h, 0.25f);
    return dg_dense(g, "output", h, 10, DG_ACT_NONE);
}

/* The child: one epoch, then "stats <leaf> <kept> <arena> <run arena> <planned>" on stdout. */
static int child(const bench_model *model, int keep_all, int threads) {
    const int batch = model->batch;
    dg_set_num_threads(threads);
    uint8_t *images = malloc((size_t)IMAGES * PIXELS);
    uint8_t *labels = malloc(IMAGES);
    float *xb = malloc(sizeof(float) * batch * PIXELS), *yb = malloc(sizeof(float) * batch);
    if (!images || !labels || !xb || !yb) return 1;
    uint64_t z = 12345;
    for (size_t i = 0; i < (size_t)IMAGES * PIXELS; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        images[i] = (uint8_t)(z >> 56);
    }
    for (int i = 0; i < IMAGES; i++) labels[i] = (uint8_t)(i % 10);

    dg_graph *g = dg_graph_new(0);
    dg_set_keep_all(g, keep_all);
    dg_node *x = strcmp(model->name, "w2") == 0
                     ? dg_input(g, "x", dg_shape2(DG_BATCH, PIXELS))
                     : dg_input(g, "x", dg_shape4(DG_BATCH, 1, SIDE, SIDE));
    dg_node *y = dg_input(g, "y", dg_shape1(DG_BATCH));
    dg_node *logits = build_logits(g, model, x);
    dg_node *loss = dg_cross_entropy_loss(g, logits, y);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = loss ? dg_optimizer_new(g, loss, &cfg) : NULL;
    if (!opt) {
        fprintf(stderr, "bench_memory: %s\n", dg_graph_error(g));
        return 1;
    }
    for (int start = 0; start < IMAGES; start += batch) {
        int rows = IMAGES - start < batch ? IMAGES - start : batch;
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
    dg_feed(x, xb, batch * PIXELS);
    dg_feed(y, yb, batch);
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

/* Runs one model's keep-all, planned and PyTorch epochs and prints its table. */
static int bench(const bench_model *model, const char *self, const char *tstr, int torch) {
    printf("%s, one epoch of %d images, %s threads\n\n", model->title, IMAGES, tstr);
    const char *modes[2] = {"keep", "planned"};
    long long rss[3] = {-1, -1, -1};
    double stats[2][5] = {{0}};
    for (int k = 0; k < 2; k++) {
        char line[512];
        char *args[] = {(char *)self,        "--threads",      (char *)tstr, "--child",
                        (char *)model->name, (char *)modes[k], NULL};
        rss[k] = run_child(args, line, sizeof line);
        if (rss[k] < 0 || sscanf(line, "stats %lf %lf %lf %lf %lf", &stats[k][0], &stats[k][1],
                                 &stats[k][2], &stats[k][3], &stats[k][4]) != 5) {
            fprintf(stderr, "bench_memory: the %s run of %s failed\n", modes[k], model->name);
            return 1;
        }
    }
    if (torch && access("/usr/bin/python3", X_OK) == 0) {
        char script[4096], line[512];
        snprintf(script, sizeof script, "%s/bench_memory_torch.py", DG_BENCH_DIR);
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        char *args[] = {"/usr/bin/python3", script, (char *)tstr, (char *)model->name, NULL};
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
    int w2 = strcmp(model->name, "w2") == 0; /* the targets are W2's */
    printf("\nplanned intermediates / keep-all intermediates: %.2f%s\n", plan_inter / keep_inter,
           w2 ? " (target <= 0.50)" : "");
    if (rss[2] > 0)
        printf("planned peak RSS / PyTorch peak RSS:             %.2f%s\n",
               (double)rss[1] / (double)rss[2], w2 ? " (target <= 0.33)" : "");
    printf("(parameters, their gradients and Adam's moments: %.2f MB in both dagrad runs; the "
           "images, as bytes: %.1f MB in every run)\n",
           mb(stats[1][0] + stats[1][1]), mb((double)IMAGES * PIXELS));
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    int threads = 0, torch = 1;
    const char *which = "all";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--child") == 0 && i + 2 < argc) {
            for (size_t m = 0; m < sizeof MODELS / sizeof MODELS[0]; m++)
                if (strcmp(argv[i + 1], MODELS[m].name) == 0)
                    return child(&MODELS[m], strcmp(argv[i + 2], "keep") == 0, threads);
            return 2;
        }
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            which = argv[++i];
        else if (strcmp(argv[i], "--no-torch") == 0)
            torch = 0;
        else {
            fprintf(stderr,
                    "usage: bench_memory [--threads N] [--model w2|cnn|all] [--no-torch]\n");
            return 2;
        }
    }
    if (strcmp(which, "all") != 0 && strcmp(which, "w2") != 0 && strcmp(which, "cnn") != 0) {
        fprintf(stderr, "bench_memory: --model takes w2, cnn or all, not '%s'\n", which);
        return 2;
    }
    dg_set_num_threads(threads);
    threads = dg_get_num_threads();
    char self[4096], tstr[16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return fprintf(stderr, "bench_memory: cannot find its own binary\n"), 1;
    self[n] = 0;
    snprintf(tstr, sizeof tstr, "%d", threads);
    for (size_t m = 0; m < sizeof MODELS / sizeof MODELS[0]; m++)
        if (strcmp(which, "all") == 0 || strcmp(which, MODELS[m].name) == 0)
            if (bench(&MODELS[m], self, tstr, torch) != 0) return 1;
    return 0;
}
