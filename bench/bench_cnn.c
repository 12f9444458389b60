/* bench_cnn: the CNN of examples/mnist_cnn (conv 32 5x5 pad 2, ReLU, max pool 2, conv 64 5x5,
 * ReLU, max pool 2, dense 256 ReLU, dropout 0.25, dense 10; Adam lr 1e-3) against the
 * identical PyTorch model run by the same program (bench_cnn_torch.py through
 * /usr/bin/python3, torch.set_num_threads equal to ours, OPENBLAS_NUM_THREADS=1), on 1 and 2
 * threads. Three tables:
 *
 *   1. the machine's FMA peak, measured: independent fused multiply-adds on every thread
 *      (AVX-512 or AVX2 as the CPU has them);
 *   2. each convolution's forward, input-gradient and weight-gradient products at the
 *      training batch, in GFLOP/s (2 N O C KH KW OH OW flops each) and as a share of that
 *      peak, dagrad beside PyTorch (median of repeated runs);
 *   3. seconds per epoch over the 60,000 MNIST training images in file order, the last batch
 *      partial (937 x 64 + 32), for `--epochs` epochs; the table gives the median and range of
 *      epochs 2..N (the first includes warm-up), the mean loss of each side's last 50 steps,
 *      and the peak resident set size of each side's process (both hold the 60,000 images as
 *      floats, 188 MB). Every dagrad configuration runs in a process of its own (this program
 *      again, in worker mode); the two sides alternate, configuration by configuration.
 *
 * usage: bench_cnn [--data DIR] [--threads N[,M]] [--epochs E] [--batch B] [--steps S]
 *                  [--no-torch]
 *   DIR defaults to $DG_MNIST_DIR or ../shared/data/mnist next to the source tree; --steps
 *   limits the steps per epoch (quick checks). */
#define _GNU_SOURCE /* wait4 */
#include "dagrad.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_X86 1
#endif

#ifndef DG_BENCH_DIR
#define DG_BENCH_DIR "."
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- 1. FMA peak ---- */

#ifdef BENCH_X86
/* 16 independent chains of 16-wide FMAs: more than the two FMA pipes x 4 cycles latency. */
__attribute__((target("avx512f"))) static float fma_avx512(long iters) {
    __m512 a[16], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters) {
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    float out[8], s = 0;
    for (int i = 1; i < 12; i++) a[0] = _mm256_add_ps(a[0], a[i]);
    _mm256_storeu_ps(out, a[0]);
    for (int i = 0; i < 8; i++) s += out[i];
    return s;
}
#endif

/* GFLOP/s of independent FMAs on `threads` threads (best of 5); *isa names the vectors. */
static double fma_peak(int threads, const char **isa) {
    const long iters = 20000000;
    double flops_per_iter = 0, best = 0;
    *isa = "none";
#ifdef BENCH_X86
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("fma");
    flops_per_iter = avx512 ? 16 * 16 * 2 : avx2 ? 12 * 8 * 2 : 0;
    *isa = avx512 ? "AVX-512" : avx2 ? "AVX2+FMA" : "none";
    if (!flops_per_iter) return 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
#pragma omp parallel num_threads(threads)
        {
            float r = avx512 ? fma_avx512(iters) : fma_avx2(iters);
#pragma omp atomic
            sink += r;
        }
        double g = flops_per_iter * (double)iters * threads / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    (void)sink;
#else
    (void)threads, (void)flops_per_iter, (void)iters;
#endif
    return best;
}

/* ---- 2. convolution products ---- */

typedef struct conv_case {
    const char *name;
    int c, o, h, pad;
} conv_case;

static const conv_case convs[2] = {{"conv1", 1, 32, 28, 2}, {"conv2", 32, 64, 14, 0}};

static double run_median(dg_graph *g, dg_node *t, int reps) {
    double v[64];
    dg_run(g, t); /* plan and warm up */
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        if (dg_run(g, t) != DG_OK) return -1;
        v[i] = now() - t0;
    }
    return median(v, reps);
}

/* Seconds of the forward, input-gradient and weight-gradient products. A gradient's time is
 * that of running it minus that of running its incoming gradient alone (a broadcast and a
 * product with the loss weights). */
static int dagrad_conv(const conv_case *k, int batch, int threads, double secs[3]) {
    dg_set_num_threads(threads);
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape4(batch, k->c, k->h, k->h));
    dg_node *w = dg_param(g, "w", dg_shape4(k->o, k->c, 5, 5)),
            *b = dg_param(g, "b", dg_shape1(k->o));
    dg_set_requires_grad(x, 1);
    float *d = dg_node_data(x);
    for (int64_t i = 0; i < dg_node_numel(x); i++) d[i] = (float)((i * 7919) % 1000) / 1000.0f;
    dg_feed(x, d, dg_node_numel(x));
    d = dg_node_data(w);
    for (int64_t i = 0; i < dg_node_numel(w); i++)
        d[i] = (float)((i * 104729) % 200) / 1000.0f - 0.1f;
    dg_conv2d_options o = dg_conv2d_defaults();
    o.padding[0] = o.padding[1] = k->pad;
    dg_node *y = dg_convolve2d(g, x, w, b, &o);
    dg_node *r = dg_input(g, "r", dg_node_shape(y));
    d = dg_node_data(r);
    for (int64_t i = 0; i < dg_node_numel(r); i++) d[i] = (float)(i % 13) / 13.0f;
    dg_feed(r, d, dg_node_numel(r));
    dg_node *leaves[2] = {x, w}, *grads[2];
    if (!y || dg_gradients(g, dg_sum(g, dg_mul(g, y, r)), 2, leaves, grads) != DG_OK) {
        fprintf(stderr, "bench_cnn: %s\n", dg_graph_error(g));
        dg_graph_free(g);
        return -1;
    }
    const int reps = 15;
    secs[0] = run_median(g, y, reps);
    double dy = run_median(g, dg_node_input(grads[0], 0), reps);
    secs[1] = run_median(g, grads[0], reps) - dy;
    secs[2] = run_median(g, grads[1], reps) - run_median(g, dg_node_input(grads[1], 1), reps);
    dg_graph_free(g);
    dg_set_num_threads(0);
    return 0;
}

/* PyTorch's seconds for both convolutions' three products: secs[conv][product]. */
static int torch_convs(int threads, int batch, double secs[2][3]) {
    char cmd[4096];
    snprintf(
        cmd, sizeof cmd,
        "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=%d /usr/bin/python3 %s/bench_cnn_torch.py convs "
        "%d %d 2>&1",
        threads, DG_BENCH_DIR, threads, batch);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024], name[32], prod[8];
    double s;
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "conv %31s %7s seconds %lf", name, prod, &s) == 3) {
            int c = strcmp(name, "conv2") == 0, q = !strcmp(prod, "fwd")  ? 0
                                                    : !strcmp(prod, "dx") ? 1
                                                                          : 2;
            secs[c][q] = s;
            got++;
        } else {
            fprintf(stderr, "  torch: %s", line);
        }
    }
    return pclose(p) == 0 && got == 6 ? 0 : -1;
}

/* ---- 3. epochs ---- */

typedef struct run_result {
    double secs[64];
    double loss; /* mean of the last epoch's last 50 steps */
    int epochs;
    long maxrss_kb;
} run_result;

/* The example's model on a graph with a batch input. */
static dg_optimizer *build_cnn(dg_graph *g, dg_node **x, dg_node **y) {
    *x = dg_input(g, "images", dg_shape4(DG_BATCH, 1, 28, 28));
    *y = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *h = dg_conv2d(g, "conv1", *x, 32, 5, 1, 2, DG_ACT_RELU);
    h = dg_max_pool2d(g, "pool1", h, 2, 2, 0);
    h = dg_conv2d(g, "conv2", h, 64, 5, 1, 0, DG_ACT_RELU);
    h = dg_max_pool2d(g, "pool2", h, 2, 2, 0);
    h = dg_dense(g, "dense", dg_flatten(g, "flatten", h), 256, DG_ACT_RELU);
    h = dg_dense(g, "output", dg_dropout(g, "dropout", h, 0.25f), 10, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(g, h, *y);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = 1e-3f;
    return loss ? dg_optimizer_new(g, loss, &cfg) : NULL;
}

/* In the child: epochs of training, one line per epoch on `out`. */
static int dagrad_child(const dg_dataset *d, int threads, int batch, int epochs, int max_steps,
                        FILE *out) {
    dg_set_num_threads(threads);
    dg_graph *g = dg_graph_new(0);
    dg_node *x, *y;
    dg_optimizer *opt = build_cnn(g, &x, &y);
    if (!opt) {
        fprintf(stderr, "bench_cnn: building the model failed: %s\n", dg_graph_error(g));
        return 1;
    }
    int64_t steps = (d->count + batch - 1) / batch;
    if (max_steps > 0 && max_steps < steps) steps = max_steps;
    for (int e = 1; e <= epochs; e++) {
        double tail = 0, t0 = now();
        int n_tail = 0;
        for (int64_t s = 0; s < steps; s++) {
            int64_t n = d->count - s * batch < batch ? d->count - s * batch : batch;
            dg_status st = dg_feed(x, d->images + s * batch * 784, n * 784);
            if (st == DG_OK) st = dg_feed(y, d->labels + s * batch, n);
            if (st == DG_OK) st = dg_optimizer_step(opt);
            if (st != DG_OK) {
                fprintf(stderr, "bench_cnn: step %lld failed: %s\n", (long long)s,
                        dg_graph_error(g));
                return 1;
            }
            if (s >= steps - 50) tail += dg_value(dg_optimizer_step_node(opt)), n_tail++;
        }
        fprintf(out, "epoch %d seconds %.4f loss %.4f\n", e, now() - t0, tail / n_tail);
        fflush(out);
    }
    dg_graph_free(g);
    return 0;
}

/* Reads "epoch k seconds s loss l" lines and "maxrss_kb n" from a stream. */
static void read_epochs(FILE *p, run_result *r, const char *who) {
    char line[1024];
    int e;
    double s, l;
    long kb;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "epoch %d seconds %lf loss %lf", &e, &s, &l) == 3 && r->epochs < 64) {
            r->secs[r->epochs++] = s;
            r->loss = l;
        } else if (sscanf(line, "maxrss_kb %ld", &kb) == 1) {
            r->maxrss_kb = kb;
        } else {
            fprintf(stderr, "  %s: %s", who, line);
        }
    }
}

/* Runs this program again as `bench_cnn --worker DIR THREADS BATCH EPOCHS STEPS` (fork and
 * exec: an OpenMP runtime that has run parallel regions does not survive a plain fork) and
 * reads its epoch lines; its peak RSS comes from wait4. */
static int dagrad_epochs(const char *self, const char *dir, int threads, int batch, int epochs,
                         int max_steps, run_result *r) {
    memset(r, 0, sizeof *r);
    char a[4][32];
    snprintf(a[0], sizeof a[0], "%d", threads);
    snprintf(a[1], sizeof a[1], "%d", batch);
    snprintf(a[2], sizeof a[2], "%d", epochs);
    snprintf(a[3], sizeof a[3], "%d", max_steps);
    char *args[] = {(char *)self, "--worker", (char *)dir, a[0], a[1], a[2], a[3], NULL};
    int fd[2];
    if (pipe(fd) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fd[0]);
        if (dup2(fd[1], STDOUT_FILENO) < 0) _exit(127);
        execv("/proc/self/exe", args); /* Linux; elsewhere the path we were started with */
        execv(self, args);
        _exit(127);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    if (in) read_epochs(in, r, "dagrad");
    if (in) fclose(in);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    r->maxrss_kb = ru.ru_maxrss;
    return r->epochs == epochs ? 0 : -1;
}

/* dir/name or dir/name.gz, whichever exists (the .gz name if neither). */
static void idx_file(char *buf, size_t size, const char *dir, const char *name) {
    snprintf(buf, size, "%s/%s", dir, name);
    if (access(buf, R_OK) != 0) snprintf(buf, size, "%s/%s.gz", dir, name);
}

static int torch_epochs(const char *dir, int threads, int batch, int epochs, int max_steps,
                        run_result *r) {
    memset(r, 0, sizeof *r);
    char images[4200], labels[4200], cmd[9000];
    if (strlen(dir) > 4096) return -1;
    idx_file(images, sizeof images, dir, "train-images-idx3-ubyte");
    idx_file(labels, sizeof labels, dir, "train-labels-idx1-ubyte");
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=%d /usr/bin/python3 %s/bench_cnn_torch.py "
             "epochs '%s' '%s' %d %d %d %d 2>&1",
             threads, DG_BENCH_DIR, images, labels, threads, batch, epochs, max_steps);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    read_epochs(p, r, "torch");
    return pclose(p) == 0 && r->epochs == epochs ? 0 : -1;
}

/* Median and range of epochs 2..N (all of them when there is only one). */
static void summarize(const run_result *r, double *med, double *lo, double *hi) {
    double v[64];
    int first = r->epochs > 1, n = r->epochs - first;
    for (int i = 0; i < n; i++) v[i] = r->secs[first + i];
    *med = median(v, n);
    *lo = v[0], *hi = v[n - 1]; /* sorted by median() */
}

int main(int argc, char **argv) {
    if (argc == 7 && !strcmp(argv[1], "--worker")) { /* see dagrad_epochs */
        dg_dataset d;
        if (dg_mnist_load(argv[2], "train", &d) != DG_OK) {
            fprintf(stderr, "bench_cnn: cannot load MNIST from %s: %s\n", argv[2], dg_last_error());
            return 1;
        }
        int rc =
            dagrad_child(&d, atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), stdout);
        dg_dataset_free(&d);
        return rc;
    }
    const char *dir = getenv("DG_MNIST_DIR");
    static char def[4096];
    if (!dir || !*dir) {
        snprintf(def, sizeof def, "%s/../../shared/data/mnist", DG_BENCH_DIR);
        dir = def;
    }
    int threads[2] = {1, 2}, n_threads = 2, use_torch = 1, epochs = 3, batch = 64, max_steps = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = sscanf(argv[++i], "%d,%d", &threads[0], &threads[1]);
            if (n_threads < 1) n_threads = 1;
        } else if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            max_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch"))
            use_torch = 0;
        else {
            fprintf(stderr,
                    "usage: %s [--data DIR] [--threads N[,M]] [--epochs E] [--batch B] "
                    "[--steps S] [--no-torch]\n",
                    argv[0]);
            return 2;
        }
    }
    if (epochs < 1 || epochs > 64 || batch < 1) {
        fprintf(stderr, "bench_cnn: --epochs must be in 1..64 and --batch positive\n");
        return 2;
    }
    dg_dataset d;
    if (dg_mnist_load(dir, "train", &d) != DG_OK) {
        fprintf(stderr, "bench_cnn: cannot load MNIST from %s: %s\n", dir, dg_last_error());
        return 1;
    }
    if (use_torch && system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("PyTorch not importable by /usr/bin/python3: dagrad only\n");
        use_torch = 0;
    }
    double load[3] = {0};
    if (getloadavg(load, 3) > 0)
        printf("load average at start: %.2f %.2f %.2f\n", load[0], load[1], load[2]);

    /* 1 */
    double peak[2] = {0};
    const char *isa = "none";
    printf("\nFMA peak (measured, %s)\n%7s %12s\n", "GFLOP/s", "threads", "GFLOP/s");
    for (int i = 0; i < n_threads; i++) {
        peak[i] = fma_peak(threads[i], &isa);
        printf("%7d %12.1f   (%s)\n", threads[i], peak[i], isa);
    }

    /* 2 */
    printf("\nconvolution products at batch %d (GFLOP/s; %% of the FMA peak)\n", batch);
    printf("%-28s %7s %16s %16s %8s\n", "product", "threads", "dagrad", "PyTorch", "ratio");
    static const char *prod[3] = {"forward", "input gradient", "weight gradient"};
    for (int i = 0; i < n_threads; i++) {
        double ts[2][3] = {{0}};
        int have_torch = use_torch && torch_convs(threads[i], batch, ts) == 0;
        for (int c = 0; c < 2; c++) {
            const conv_case *k = &convs[c];
            double s[3];
            if (dagrad_conv(k, batch, threads[i], s) != 0) return 1;
            int oh = k->h + 2 * k->pad - 4;
            double flops = 2.0 * batch * k->o * k->c * 25 * oh * oh;
            for (int q = 0; q < 3; q++) {
                if (c == 0 && q == 1) continue; /* the image needs no gradient */
                char label[64], dg[32], tc[32] = "-", ratio[16] = "-";
                snprintf(label, sizeof label, "%s %s", k->name, prod[q]);
                double gd = flops / s[q] / 1e9;
                snprintf(dg, sizeof dg, "%.1f (%2.0f%%)", gd, 100 * gd / peak[i]);
                if (have_torch) {
                    double gt = flops / ts[c][q] / 1e9;
                    snprintf(tc, sizeof tc, "%.1f (%2.0f%%)", gt, 100 * gt / peak[i]);
                    snprintf(ratio, sizeof ratio, "%.2f", gd / gt);
                }
                printf("%-28s %7d %16s %16s %8s\n", label, threads[i], dg, tc, ratio);
            }
        }
        fflush(stdout);
    }

    /* 3 */
    printf("\none epoch of the CNN: %lld images, batch %d, file order, Adam lr 1e-3; %d epochs, "
           "median [range] of epochs %s\n",
           (long long)d.count, batch, epochs, epochs > 1 ? "2..N" : "1");
    printf("%7s %24s %24s %12s %13s %13s %18s\n", "threads", "dagrad s/epoch", "PyTorch s/epoch",
           "dagrad/torch", "dagrad RSS", "PyTorch RSS", "loss dagrad/torch");
    for (int i = 0; i < n_threads; i++) {
        run_result rd, rt;
        if (dagrad_epochs(argv[0], dir, threads[i], batch, epochs, max_steps, &rd) != 0) {
            fprintf(stderr, "bench_cnn: the dagrad run failed\n");
            return 1;
        }
        int have_torch =
            use_torch && torch_epochs(dir, threads[i], batch, epochs, max_steps, &rt) == 0;
        double md, ld, hd, mt = 0, lt = 0, ht = 0;
        summarize(&rd, &md, &ld, &hd);
        char ds[64], tsb[64] = "-", ratio[16] = "-", trss[32] = "-", loss[32];
        snprintf(ds, sizeof ds, "%.2f [%.2f, %.2f]", md, ld, hd);
        snprintf(loss, sizeof loss, "%.4f / -", rd.loss);
        if (have_torch) {
            summarize(&rt, &mt, &lt, &ht);
            snprintf(tsb, sizeof tsb, "%.2f [%.2f, %.2f]", mt, lt, ht);
            snprintf(ratio, sizeof ratio, "%.2f", md / mt);
            snprintf(trss, sizeof trss, "%.0f MB", (double)rt.maxrss_kb / 1024);
            snprintf(loss, sizeof loss, "%.4f / %.4f", rd.loss, rt.loss);
        }
        char drss[32];
        snprintf(drss, sizeof drss, "%.0f MB", (double)rd.maxrss_kb / 1024);
        printf("%7d %24s %24s %12s %13s %13s %18s\n", threads[i], ds, tsb, ratio, drss, trss, loss);
        fflush(stdout);
    }
    if (getloadavg(load, 3) > 0)
        printf("load average at end: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
    dg_dataset_free(&d);
    return 0;
}
