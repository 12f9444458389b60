/* bench_mlp: seconds per training epoch of a 784-512-256-10 MLP (ReLU, softmax
 * cross-entropy, Adam lr 1e-3, batch 128) on Fashion-MNIST's 60,000 training images, and
 * of the identical PyTorch model in the same run when /usr/bin/python3 can import torch
 * (bench_mlp_torch.py, with torch.set_num_threads equal to ours and
 * OPENBLAS_NUM_THREADS=1). Both walk the data in file order and drop the last partial
 * batch (468 steps).
 *
 * usage: bench_mlp [--data DIR] [--threads N[,M]] [--no-torch]
 *   DIR defaults to $DG_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist (Debian's
 *   dataset-fashion-mnist). */
#include "dagrad.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BATCH = 128 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One epoch with `threads` threads from a fresh graph; returns seconds (or < 0 on error)
 * and the mean loss of the last 50 steps in *last_loss. */
static double dagrad_epoch(const dg_dataset *d, int threads, double *last_loss) {
    dg_set_num_threads(threads);
    dg_graph *g = dg_graph_new(0);
    int64_t pixels = d->rows * d->cols;
    dg_node *x = dg_input(g, "x", dg_shape2(BATCH, pixels));
    dg_node *labels = dg_input(g, "labels", dg_shape1(BATCH));
    dg_node *h = dg_dense(g, "fc1", x, 512, DG_ACT_RELU);
    h = dg_dense(g, "fc2", h, 256, DG_ACT_RELU);
    dg_node *logits = dg_dense(g, "fc3", h, 10, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(g, logits, labels);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = 1e-3f;
    dg_optimizer *opt = loss ? dg_optimizer_new(g, loss, &cfg) : NULL;
    if (!opt) {
        fprintf(stderr, "bench_mlp: building the model failed: %s\n", dg_graph_error(g));
        dg_graph_free(g);
        return -1;
    }
    int64_t steps = d->count / BATCH;
    double tail = 0.0, start = now();
    for (int64_t s = 0; s < steps; s++) {
        dg_status st = dg_feed(x, d->images + s * BATCH * pixels, BATCH * pixels);
        if (st == DG_OK) st = dg_feed(labels, d->labels + s * BATCH, BATCH);
        if (st == DG_OK) st = dg_optimizer_step(opt);
        if (st != DG_OK) {
            fprintf(stderr, "bench_mlp: step %lld failed: %s\n", (long long)s, dg_graph_error(g));
            dg_graph_free(g);
            return -1;
        }
        if (s >= steps - 50) tail += dg_value(dg_optimizer_step_node(opt));
    }
    double seconds = now() - start;
    *last_loss = tail / 50.0;
    dg_graph_free(g);
    return seconds;
}

/* Runs the PyTorch script; returns seconds or < 0 if torch is unavailable or failed. */
static double torch_epoch(const char *dir, int threads, double *last_loss) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=%d /usr/bin/python3 %s/bench_mlp_torch.py "
             "'%s/train-images-idx3-ubyte.gz' '%s/train-labels-idx1-ubyte.gz' %d 2>&1",
             threads, DG_BENCH_DIR, dir, dir, threads);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024];
    double seconds = -1;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "seconds %lf loss %lf", &seconds, last_loss) == 2) continue;
        fprintf(stderr, "  torch: %s", line);
    }
    return pclose(p) == 0 ? seconds : -1;
}

int main(int argc, char **argv) {
    const char *dir = getenv("DG_FASHION_MNIST_DIR");
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    int threads[2] = {1, 2}, n_threads = 2, use_torch = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = sscanf(argv[++i], "%d,%d", &threads[0], &threads[1]);
            if (n_threads < 1) n_threads = 1;
        } else if (!strcmp(argv[i], "--no-torch"))
            use_torch = 0;
        else {
            fprintf(stderr, "usage: %s [--data DIR] [--threads N[,M]] [--no-torch]\n", argv[0]);
            return 2;
        }
    }
    dg_dataset d;
    if (dg_mnist_load(dir, "train", &d) != DG_OK) {
        fprintf(stderr, "bench_mlp: cannot load Fashion-MNIST from %s: %s\n", dir, dg_last_error());
        return 1;
    }
    if (use_torch && system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("PyTorch not importable by /usr/bin/python3: dagrad only\n");
        use_torch = 0;
    }
    printf("784-512-256-10 MLP, ReLU, softmax cross-entropy, Adam lr 1e-3, batch %d, "
           "%lld steps over %s\n",
           BATCH, (long long)(d.count / BATCH), dir);
    printf("%7s %14s %12s %14s %12s %8s\n", "threads", "dagrad s/epoch", "dagrad loss",
           "PyTorch s/epoch", "torch loss", "ratio");
    for (int i = 0; i < n_threads; i++) {
        double dl = 0, tl = 0;
        double ds = dagrad_epoch(&d, threads[i], &dl);
        if (ds < 0) return 1;
        double ts = use_torch ? torch_epoch(dir, threads[i], &tl) : -1;
        if (ts > 0)
            printf("%7d %14.3f %12.4f %14.3f %12.4f %8.2f\n", threads[i], ds, dl, ts, tl, ts / ds);
        else
            printf("%7d %14.3f %12.4f %14s %12s %8s\n", threads[i], ds, dl, "-", "-", "-");
        fflush(stdout);
    }
    dg_dataset_free(&d);
    return 0;
}
