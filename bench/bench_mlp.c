/* bench_mlp: seconds per training epoch of two MLPs on MNIST's 60,000 training images
 * (ReLU, softmax cross-entropy, Adam lr 1e-3, data in file order, the last batch partial):
 *   W1  784-50-20-10,   batch 32   (the course net)
 *   W2  784-512-256-10, batch 128
 * against the identical PyTorch model in the same run (bench_mlp_torch.py, /usr/bin/python3,
 * torch.set_num_threads equal to ours, OPENBLAS_NUM_THREADS=1 and OPENBLAS_CORETYPE set to
 * the best kernel Debian's OpenBLAS has for the CPU), once as is and once with
 * torch.set_flush_denormal(True). Each trains N epochs (default 5) in one process; the
 * table gives epochs 2..N (median and range: steady state, after warm-up, and where
 * subnormal numbers used to slow every epoch more than the last) and epoch 1 beside them.
 * The FLOP floor is 6 x sum(fan_in x fan_out) flops per image (forward, and the two
 * products of backward) at the measured FMA peak of the cores used.
 * --hog runs everything again with another process spinning on one core (a busy machine).
 * --no-tuning turns dagrad's thread tuning off (every loop big enough splits; see
 * dg_set_thread_tuning), to show what the tuning decides.
 *
 * usage: bench_mlp [--data DIR] [--epochs N] [--threads 1,2] [--models w1,w2] [--no-torch]
 *                  [--hog] [--hog-only] [--no-tuning]
 *   DIR: the IDX files; default $DG_MNIST_DIR, else ../shared/data/mnist next to the source
 *   tree. */
#include "bench_common.h"

#include "dagrad.h"

#include <math.h>

#ifndef DG_BENCH_DIR
#define DG_BENCH_DIR "bench"
#endif

const char *dg__gemm_kernel_name(void); /* src/ops/gemm.c */

typedef struct mlp {
    const char *name;
    int hidden[2], batch;
} mlp;

static const mlp MODELS[2] = {{"W1", {50, 20}, 32}, {"W2", {512, 256}, 128}};

enum { MAX_EPOCHS = 64 };

static int thread_tuning = 1; /* --no-tuning: 0 */

/* Trains `epochs` epochs; times[e] = seconds of epoch e. Returns 0, or -1 on error. */
static int dagrad_run(const dg_dataset *d, const mlp *m, int threads, int epochs, double *times,
                      double *loss) {
    dg_set_num_threads(threads);
    dg_graph *g = dg_graph_new(0);
    dg_set_thread_tuning(g, thread_tuning);
    int64_t px = d->rows * d->cols;
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, px));
    dg_node *y = dg_input(g, "y", dg_shape1(DG_BATCH));
    dg_node *h = dg_dense(g, "fc1", x, m->hidden[0], DG_ACT_RELU);
    h = dg_dense(g, "fc2", h, m->hidden[1], DG_ACT_RELU);
    dg_node *logits = dg_dense(g, "fc3", h, 10, DG_ACT_NONE);
    dg_node *l = dg_cross_entropy_loss(g, logits, y);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = l ? dg_optimizer_new(g, l, &cfg) : NULL;
    if (!opt) {
        fprintf(stderr, "bench_mlp: %s\n", dg_graph_error(g));
        dg_graph_free(g);
        return -1;
    }
    for (int e = 0; e < epochs; e++) {
        double t0 = bench_now(), sum = 0;
        for (int64_t start = 0; start < d->count; start += m->batch) {
            int64_t rows = d->count - start < m->batch ? d->count - start : m->batch;
            if (dg_feed_ref(x, d->images + start * px, rows * px) != DG_OK ||
                dg_feed_ref(y, d->labels + start, rows) != DG_OK ||
                dg_optimizer_step(opt) != DG_OK) {
                fprintf(stderr, "bench_mlp: %s\n", dg_graph_error(g));
                dg_graph_free(g);
                return -1;
            }
            sum += dg_value(l) * (double)rows;
        }
        times[e] = bench_now() - t0;
        *loss = sum / (double)d->count;
    }
    dg_graph_free(g);
    return 0;
}

/* The PyTorch run; times[e] per epoch. Returns 0, or -1 if torch is missing or failed. */
static int torch_run(const char *dir, const mlp *m, int threads, int epochs, int flush,
                     double *times, double *loss) {
    char cmd[8192], core[64] = "";
    const char *ct = bench_openblas_coretype();
    if (ct) snprintf(core, sizeof core, "OPENBLAS_CORETYPE=%s ", ct);
    snprintf(cmd, sizeof cmd,
             "%sOPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=%d /usr/bin/python3 %s/bench_mlp_torch.py "
             "'%s' %d %d %d %d %d %d 2>&1",
             core, threads, DG_BENCH_DIR, dir, m->hidden[0], m->hidden[1], m->batch, threads,
             epochs, flush);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024];
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        int e;
        double s, lo;
        if (sscanf(line, "epoch %d seconds %lf loss %lf", &e, &s, &lo) == 3 && e >= 1 &&
            e <= epochs) {
            times[e - 1] = s;
            *loss = lo;
            got++;
        } else {
            fprintf(stderr, "  torch: %s", line);
        }
    }
    return pclose(p) == 0 && got == epochs ? 0 : -1;
}

static double model_flops(const mlp *m, int64_t images) {
    double macs = 784.0 * m->hidden[0] + (double)m->hidden[0] * m->hidden[1] + m->hidden[1] * 10.0;
    return 6.0 * macs * (double)images;
}

/* "1.234 [1.200-1.300]" for epochs 2..n (just epoch 1 when n is 1) */
static void steady(const double *t, int n, double *median, char *buf, size_t size) {
    double lo, hi;
    if (n < 2) {
        *median = t[0];
        snprintf(buf, size, "%.3f", t[0]);
        return;
    }
    bench_stats(t + 1, n - 1, median, &lo, &hi);
    snprintf(buf, size, "%.3f [%.3f-%.3f]", *median, lo, hi);
}

static void run_table(const dg_dataset *d, const char *dir, int epochs, const int *threads,
                      int n_threads, const int *models, int use_torch, double peak) {
    printf("%-4s %3s %-26s %7s %9s %8s | %-26s %-26s %8s\n", "net", "thr", "dagrad s/epoch 2..N",
           "epoch 1", "x floor", "loss", "PyTorch s/epoch 2..N", "PyTorch + flush denormal",
           "PT/dg");
    for (int mi = 0; mi < 2; mi++) {
        if (!models[mi]) continue;
        const mlp *m = &MODELS[mi];
        for (int ti = 0; ti < n_threads; ti++) {
            int t = threads[ti];
            double dt[MAX_EPOCHS], pt[MAX_EPOCHS], pf[MAX_EPOCHS], dl = 0, pl = 0, fl = 0;
            double dmed = 0, pmed = 0, fmed = 0;
            char dbuf[64], pbuf[64] = "-", fbuf[64] = "-", ratio[16] = "-";
            if (dagrad_run(d, m, t, epochs, dt, &dl) != 0) exit(1);
            steady(dt, epochs, &dmed, dbuf, sizeof dbuf);
            if (use_torch && torch_run(dir, m, t, epochs, 0, pt, &pl) == 0) {
                steady(pt, epochs, &pmed, pbuf, sizeof pbuf);
                snprintf(ratio, sizeof ratio, "%.2f", pmed / dmed);
            }
            if (use_torch && torch_run(dir, m, t, epochs, 1, pf, &fl) == 0)
                steady(pf, epochs, &fmed, fbuf, sizeof fbuf);
            double floor_s = model_flops(m, d->count) / (peak * 1e9 * t);
            printf("%-4s %3d %-26s %7.3f %9.2f %8.4f | %-26s %-26s %8s\n", m->name, t, dbuf, dt[0],
                   dmed / floor_s, dl, pbuf, fbuf, ratio);
            fflush(stdout);
        }
    }
}

int main(int argc, char **argv) {
    const char *dir = getenv("DG_MNIST_DIR");
    static char def[4096];
    if (!dir || !*dir) {
        snprintf(def, sizeof def, "%s/../../shared/data/mnist", DG_BENCH_DIR);
        dir = def;
    }
    int epochs = 5, threads[2] = {1, 2}, n_threads = 2, use_torch = 1, hog = 0, hog_only = 0;
    int models[2] = {1, 1};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = sscanf(argv[++i], "%d,%d", &threads[0], &threads[1]);
            if (n_threads < 1) n_threads = 1;
        } else if (!strcmp(argv[i], "--models") && i + 1 < argc) {
            const char *s = argv[++i];
            models[0] = strstr(s, "w1") != NULL;
            models[1] = strstr(s, "w2") != NULL;
        } else if (!strcmp(argv[i], "--no-torch"))
            use_torch = 0;
        else if (!strcmp(argv[i], "--hog"))
            hog = 1;
        else if (!strcmp(argv[i], "--hog-only"))
            hog = hog_only = 1;
        else if (!strcmp(argv[i], "--no-tuning"))
            thread_tuning = 0;
        else {
            fprintf(stderr,
                    "usage: %s [--data DIR] [--epochs N] [--threads N[,M]] [--models w1,w2] "
                    "[--no-torch] [--hog] [--hog-only] [--no-tuning]\n",
                    argv[0]);
            return 2;
        }
    }
    if (epochs < 1) epochs = 1;
    if (epochs > MAX_EPOCHS) epochs = MAX_EPOCHS;
    dg_dataset d;
    if (dg_mnist_load(dir, "train", &d) != DG_OK) {
        fprintf(stderr, "bench_mlp: cannot load MNIST from %s: %s (set DG_MNIST_DIR)\n", dir,
                dg_last_error());
        return 1;
    }
    if (use_torch && system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("PyTorch not importable by /usr/bin/python3: dagrad only\n");
        use_torch = 0;
    }
    double peak = bench_fma_peak();
    const char *ct = bench_openblas_coretype();
    printf("CPU: %s\n", bench_cpu_model());
    printf("measured fp32 FMA peak: %.1f GFLOP/s per core (%s); dagrad GEMM kernel: %s\n", peak,
           bench_fma_kind(), dg__gemm_kernel_name());
    printf("PyTorch: /usr/bin/python3, OPENBLAS_NUM_THREADS=1, OPENBLAS_CORETYPE=%s, "
           "torch.set_num_threads = threads\n",
           ct ? ct : "(unset)");
    printf("data: %lld images from %s; %d epochs per run, Adam lr 1e-3; times in seconds\n\n",
           (long long)d.count, dir, epochs);
    if (!thread_tuning) printf("dagrad's thread tuning is off (--no-tuning)\n\n");
    if (!hog_only) run_table(&d, dir, epochs, threads, n_threads, models, use_torch, peak);
    if (hog) {
        printf("\nbusy machine: another process spins on one core throughout\n");
        pid_t pid = bench_hog_start();
        run_table(&d, dir, epochs, threads, n_threads, models, use_torch, peak);
        bench_hog_stop(pid);
    }
    dg_dataset_free(&d);
    return 0;
}
