/* bench_dist: data-parallel training with the MPI layer. W2, the 784-512-256-10 MLP of
 * bench_mlp (ReLU, softmax cross-entropy, Adam lr 1e-3), global batch 128 over
 * Fashion-MNIST's 60,000 training images in file order (468 steps, last partial batch
 * dropped), each rank feeding its 128/N rows. Prints seconds per epoch and the
 * milliseconds per step spent reducing gradients (packing and the ring, on whichever
 * thread), of ring time before the step began waiting (hidden behind backward) and
 * waiting for reductions after backward (the communication not hidden behind it), for 1 and 2 ranks
 * x 1 and 2 threads; then, at 2 ranks, the effect of overlap and bucket size; then the compute of
 * one step at the per-rank batches that 2 to 64 ranks would have (the input of docs/BENCHMARKS.md's
 * scaling model). The CNN example does not exist yet; when it does, it belongs here too.
 *
 * usage: bench_dist [--data DIR] [--epochs E] [--repeat R] [--quick] [--model T128,T64,T16,T2]
 *   Each row is R launches (default 3) of E epochs each (default 1, the best counts):
 *   the median and the range over the launches. --quick: the first table only. --model:
 *   only the scaling model, from the given per-step compute (ms at 128, 64, 16, 2 rows).
 *   Launches itself under mpirun (found at build time; --oversubscribe, and
 *   --allow-run-as-root when run as root) once per configuration.
 *   DIR defaults to $DG_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist.
 * worker: bench_dist --worker --threads T [--overlap -1|0|1] [--bucket BYTES] [--data DIR]
 *         [--epochs E]      (under mpirun; prints one "result ..." line on rank 0)
 *         bench_dist --compute B --threads T   (one process: ms per step at batch B) */
#define _POSIX_C_SOURCE 200809L /* popen, readlink, geteuid */
#include "dagrad.h"
#include "dagrad/mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef DG_MPIEXEC
#define DG_MPIEXEC "mpirun"
#endif

enum { BATCH = 128 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct w2 {
    dg_graph *g;
    dg_node *x, *y, *loss;
} w2;

static int build_w2(w2 *m, int64_t pixels) {
    m->g = dg_graph_new(0);
    m->x = dg_input(m->g, "x", dg_shape2(DG_BATCH, pixels));
    m->y = dg_input(m->g, "labels", dg_shape1(DG_BATCH));
    dg_node *h = dg_dense(m->g, "fc1", m->x, 512, DG_ACT_RELU);
    h = dg_dense(m->g, "fc2", h, 256, DG_ACT_RELU);
    dg_node *logits = dg_dense(m->g, "fc3", h, 10, DG_ACT_NONE);
    m->loss = dg_cross_entropy_loss(m->g, logits, m->y);
    if (m->loss) return 0;
    fprintf(stderr, "bench_dist: building W2: %s\n", dg_graph_error(m->g));
    return 1;
}

static dg_optim_config adam(void) {
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    c.lr = 1e-3f;
    return c;
}

/* ---- worker under mpirun ---- */

static int worker(const char *dir, int threads, int epochs, const dg_mpi_config *cfg) {
    int provided = 0;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
    dg_set_num_threads(threads);
    dg_dataset d;
    dg_status s = dg_mnist_load(dir, "train", &d);
    dg_mpi *dm = dg_mpi_new(MPI_COMM_WORLD, cfg);
    if (!dm || dg_mpi_agree(dm, s, dg_last_error()) != DG_OK) {
        fprintf(stderr, "bench_dist: %s\n", dg_last_error());
        MPI_Finalize();
        return 1;
    }
    int rank = dg_mpi_rank(dm), size = dg_mpi_size(dm);
    int64_t px = d.rows * d.cols, lo = (int64_t)BATCH * rank / size,
            hi = (int64_t)BATCH * (rank + 1) / size;
    w2 m;
    dg_optim_config oc = adam();
    dg_optimizer *opt = build_w2(&m, px) ? NULL : dg_mpi_optimizer_new(dm, m.g, m.loss, &oc);
    if (!opt || dg_mpi_broadcast(dm, m.g, 1) != DG_OK) {
        fprintf(stderr, "bench_dist: %s\n", dg_graph_error(m.g));
        MPI_Finalize();
        return 1;
    }
    int64_t steps = d.count / BATCH;
    double best = 1e30, tail = 0, reduce = 0, wait = 0, hidden = 0;
    dg_mpi_stats st;
    for (int e = 0; e < epochs; e++) {
        dg_mpi_stats_reset(dm);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        tail = 0;
        for (int64_t k = 0; k < steps; k++) {
            const float *xb = d.images + (k * BATCH + lo) * px, *yb = d.labels + k * BATCH + lo;
            if (dg_feed(m.x, xb, (hi - lo) * px) || dg_feed(m.y, yb, hi - lo) ||
                dg_mpi_step(dm, opt) != DG_OK) {
                fprintf(stderr, "bench_dist: step %lld: %s\n", (long long)k, dg_graph_error(m.g));
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            if (k >= steps - 50) tail += dg_mpi_loss(dm);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        double secs = now() - t0;
        dg_mpi_stats_get(dm, &st);
        /* each rank's timings, averaged over the ranks */
        double v[3] = {st.reduce_seconds, st.waiting_seconds, st.hidden_seconds};
        dg_mpi_sum(dm, v, 3);
        if (secs < best) {
            best = secs;
            reduce = 1e3 * v[0] / size / (double)st.steps;
            wait = 1e3 * v[1] / size / (double)st.steps;
            hidden = 1e3 * v[2] / size / (double)st.steps;
        }
    }
    if (rank == 0)
        printf("result seconds %.4f reduce_ms %.4f wait_ms %.4f loss %.4f buckets %d overlap %d "
               "hidden_ms %.4f\n",
               best, reduce, wait, tail / 50, st.buckets, st.overlap, hidden);
    dg_graph_free(m.g);
    dg_mpi_free(dm);
    dg_dataset_free(&d);
    MPI_Finalize();
    return 0;
}

/* ---- compute of one step at batch B, one process, no MPI ---- */

static int compute(const char *dir, int threads, int batch) {
    dg_set_num_threads(threads);
    dg_dataset d;
    if (dg_mnist_load(dir, "train", &d) != DG_OK) {
        fprintf(stderr, "bench_dist: %s\n", dg_last_error());
        return 1;
    }
    int64_t px = d.rows * d.cols;
    w2 m;
    dg_optim_config oc = adam();
    dg_optimizer *opt = build_w2(&m, px) ? NULL : dg_optimizer_new(m.g, m.loss, &oc);
    if (!opt) return 1;
    int64_t steps = 400, per = d.count / batch;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        for (int64_t k = 0; k < steps; k++) {
            int64_t at = (k % per) * batch;
            dg_feed(m.x, d.images + at * px, batch * px);
            dg_feed(m.y, d.labels + at, batch);
            if (dg_optimizer_step(opt) != DG_OK) return 1;
        }
        double t = (now() - t0) / (double)steps;
        best = t < best ? t : best;
    }
    printf("result step_ms %.4f\n", 1e3 * best);
    dg_graph_free(m.g);
    dg_dataset_free(&d);
    return 0;
}

/* ---- the scaling model ---- */

/* Expected W2 scaling to N nodes, one rank per node (a node like this machine: the
 * measured per-step compute with 2 threads), from a ring allreduce over a link of `gbit`
 * Gbit/s with `alpha` seconds per message:
 *   T(bytes) = 2 (N-1)/N bytes / bandwidth + 2 (N-1) alpha     per bucket, buckets in turn.
 * W2's two buckets (512 KiB default): fc3 and fc2's gradients (535,592 bytes), whose ring
 * runs while backward computes fc1's weight gradient (its share f1 of the step's flops),
 * then fc1's (1,607,680 bytes), which nothing hides:
 *   exposed = max(T(b0) - f1 t_c, 0) + T(b1).
 * Weak scaling: 128 rows per node (global batch 128 N), speedup N t_c(128) / (t_c(128) +
 * exposed). Strong scaling: global batch 128, 128/N rows per node, speedup t_c(128) /
 * (t_c(128/N) + exposed). tc[] holds t_c in ms for per-node batches 128, 64, 16, 2. */
static void print_model(const double tc[4], const char *source) {
    const double b0 = 535592, b1 = 1607680;
    /* flops per row: forward 2 (784 512 + 512 256 + 256 10); backward the weight
     * gradients (the same) and the input gradients of fc2 and fc3 */
    const double fwd = 2.0 * (784 * 512 + 512 * 256 + 256 * 10);
    const double f1 = 2.0 * 784 * 512 / (2 * fwd + 2.0 * (512 * 256 + 256 * 10));
    const int nodes[3] = {2, 8, 64}, strong_col[3] = {1, 2, 3};
    const double gbit[2] = {10, 100}, alpha[2] = {30e-6, 5e-6};
    printf("expected scaling of W2 (model: ring allreduce, per-step compute %s, fc1's backward "
           "%.0f%% of a step hides the first bucket)\n",
           source, 100 * f1);
    printf("%6s %9s %10s | %28s | %24s\n", "nodes", "link", "exposed ms", "weak: 128 rows/node",
           "strong: global batch 128");
    printf("%6s %9s %10s | %9s %9s %8s | %9s %6s %8s\n", "", "", "", "step ms", "speedup", "effic.",
           "step ms", "rows", "speedup");
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 3; i++) {
            double n = nodes[i], bw = gbit[l] * 1e9 / 8;
            double t0 = 2 * (n - 1) / n * b0 / bw + 2 * (n - 1) * alpha[l];
            double t1 = 2 * (n - 1) / n * b1 / bw + 2 * (n - 1) * alpha[l];
            double tcw = tc[0] / 1e3, tcs = tc[strong_col[i]] / 1e3;
            double ew = (t0 - f1 * tcw > 0 ? t0 - f1 * tcw : 0) + t1;
            double es = (t0 - f1 * tcs > 0 ? t0 - f1 * tcs : 0) + t1;
            double sw = n * tcw / (tcw + ew), ss = tcw / (tcs + es);
            char link[16];
            snprintf(link, sizeof link, "%.0f Gbit", gbit[l]);
            printf("%6d %9s %10.2f | %9.2f %9.1f %7.0f%% | %9.2f %6d %8.2f\n", nodes[i], link,
                   1e3 * ew, 1e3 * (tcw + ew), sw, 100 * sw / n, 1e3 * (tcs + es), 128 / nodes[i],
                   ss);
        }
}

/* ---- driver ---- */

/* Sorts v[0..n) and returns its median. */
static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs `args` (under mpirun with np ranks, or alone when np is 0) and parses its result
 * line into r[0..7) with fmt (up to seven %lf); returns the number parsed (or -1). */
static int launch(int np, const char *args, const char *fmt, double *r) {
    char cmd[2048];
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    if (np > 0)
        snprintf(cmd, sizeof cmd, "%s -np %d --oversubscribe %s %s %s 2>&1", DG_MPIEXEC, np,
                 geteuid() == 0 ? "--allow-run-as-root" : "", self, args);
    else
        snprintf(cmd, sizeof cmd, "%s %s 2>&1", self, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024];
    int got = -1;
    while (fgets(line, sizeof line, p)) {
        int k = sscanf(line, fmt, &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]);
        if (k > 0)
            got = k;
        else
            fprintf(stderr, "  %s", line);
    }
    return pclose(p) == 0 ? got : -1;
}

int main(int argc, char **argv) {
    const char *dir = getenv("DG_FASHION_MNIST_DIR");
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    int is_worker = 0, threads = 1, epochs = 1, batch = 0, quick = 0, repeat = 3;
    dg_mpi_config cfg = dg_mpi_defaults();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--worker"))
            is_worker = 1;
        else if (!strcmp(a, "--quick"))
            quick = 1;
        else if (v && !strcmp(a, "--data"))
            dir = v, i++;
        else if (v && !strcmp(a, "--threads"))
            threads = atoi(v), i++;
        else if (v && !strcmp(a, "--model")) {
            /* only the scaling model, from per-step compute given in ms */
            double tc[4];
            if (sscanf(v, "%lf,%lf,%lf,%lf", &tc[0], &tc[1], &tc[2], &tc[3]) != 4) {
                fprintf(stderr, "--model needs T128,T64,T16,T2 (ms per step)\n");
                return 2;
            }
            print_model(tc, "as given");
            return 0;
        } else if (v && !strcmp(a, "--repeat"))
            repeat = atoi(v), i++;
        else if (v && !strcmp(a, "--epochs"))
            epochs = atoi(v), i++;
        else if (v && !strcmp(a, "--overlap"))
            cfg.overlap = atoi(v), i++;
        else if (v && !strcmp(a, "--bucket"))
            cfg.bucket_bytes = (size_t)atoll(v), i++;
        else if (v && !strcmp(a, "--compute"))
            batch = atoi(v), i++;
        else {
            fprintf(stderr, "usage: %s [--data DIR] [--epochs E] [--repeat R] [--quick]\n",
                    argv[0]);
            return 2;
        }
    }
    if (epochs < 1) epochs = 1;
    if (repeat < 1 || repeat > 16) repeat = 3;
    if (is_worker) return worker(dir, threads, epochs, &cfg);
    if (batch > 0) return compute(dir, threads, batch);

    printf("W2 (784-512-256-10 MLP, Adam), global batch %d over %s; %d launches per row, each "
           "the best of %d epochs: median [min-max]; ranks on this machine's cores (shared "
           "memory)\n",
           BATCH, dir, repeat, epochs);
    printf("%5s %7s %7s %7s %20s %10s %10s %10s %8s\n", "ranks", "threads", "reduce", "buckets",
           "s/epoch", "reduce ms", "hidden ms", "wait ms", "loss");
    typedef struct conf {
        int np, threads, overlap;
        long long bucket;
    } conf;
    /* the defaults (512 KiB buckets: 2 for W2), then inline vs thread at 1 bucket per
     * gradient (6), the default, and one bucket for everything */
    conf base[] = {
        {1, 1, -1, 1 << 19}, {1, 2, -1, 1 << 19}, {2, 1, -1, 1 << 19}, {2, 2, -1, 1 << 19}};
    conf study[] = {
        {2, 1, 1, 0}, {2, 1, 0, 0}, {2, 1, 0, 1 << 19}, {2, 1, 1, 64 << 20}, {2, 1, 0, 64 << 20}};
    int n_base = 4, n_study = quick ? 0 : 5;
    for (int i = 0; i < n_base + n_study; i++) {
        conf c = i < n_base ? base[i] : study[i - n_base];
        if (i == n_base) printf("overlap and bucket size, 2 ranks x 1 thread:\n");
        char args[1024];
        snprintf(args, sizeof args,
                 "--worker --threads %d --overlap %d --bucket %lld --epochs %d --data '%s'",
                 c.threads, c.overlap, c.bucket, epochs, dir);
        double sec[16], red[16], wt[16], hid[16], r[7] = {0};
        int ok = 0;
        for (int k = 0; k < repeat; k++) {
            if (launch(c.np, args,
                       "result seconds %lf reduce_ms %lf wait_ms %lf loss %lf buckets %lf "
                       "overlap %lf hidden_ms %lf",
                       r) != 7)
                break;
            sec[ok] = r[0], red[ok] = r[1], wt[ok] = r[2], hid[ok] = r[6], ok++;
        }
        if (ok != repeat) {
            printf("%5d %7d  (failed)\n", c.np, c.threads);
            continue;
        }
        char range[64];
        double mid = median(sec, ok); /* sorts sec */
        snprintf(range, sizeof range, "%.3f [%.3f-%.3f]", mid, sec[0], sec[ok - 1]);
        printf("%5d %7d %7s %7.0f %20s %10.3f %10.3f %10.3f %8.4f\n", c.np, c.threads,
               r[5] ? "thread" : "inline", r[4], range, median(red, ok), median(hid, ok),
               median(wt, ok), r[3]);
        fflush(stdout);
    }
    if (!quick) {
        printf("compute of one training step (one process, no MPI), ms: the per-rank batch of "
               "128 / ranks\n");
        printf("%8s %6s %12s %12s\n", "ranks", "batch", "1 thread", "2 threads");
        int per_rank[] = {128, 64, 32, 16, 8, 2}, model_batch[4] = {128, 64, 16, 2};
        double tc[4] = {0, 0, 0, 0};
        int ranks[] = {1, 2, 4, 8, 16, 64};
        for (int i = 0; i < 6; i++) {
            double ms[2] = {0, 0}, r[7];
            for (int t = 0; t < 2; t++) {
                char args[1024];
                snprintf(args, sizeof args, "--compute %d --threads %d --data '%s'", per_rank[i],
                         t + 1, dir);
                ms[t] = launch(0, args, "result step_ms %lf", r) == 1 ? r[0] : -1;
            }
            printf("%8d %6d %12.3f %12.3f\n", ranks[i], per_rank[i], ms[0], ms[1]);
            for (int k = 0; k < 4; k++)
                if (per_rank[i] == model_batch[k]) tc[k] = ms[1];
            fflush(stdout);
        }
        print_model(tc, "measured above with 2 threads");
    }
    return 0;
}
