/* bench_dist: data-parallel training with the MPI layer, on two models.
 *
 * W2, the 784-512-256-10 MLP of bench_mlp (ReLU, softmax cross-entropy, Adam lr 1e-3),
 * global batch 128 over Fashion-MNIST's 60,000 training images in file order (468 steps,
 * last partial batch dropped), each rank feeding its 128/N rows. Prints seconds per epoch
 * and the milliseconds per step spent reducing gradients (packing and the ring, on
 * whichever thread), of ring time before the step began waiting (hidden behind backward)
 * and waiting for reductions after backward (the communication not hidden behind it), for
 * 1 and 2 ranks x 1 and 2 threads; then, at 2 ranks, the effect of overlap and bucket
 * size; then the compute of one step at the per-rank batches that 2 to 64 ranks would
 * have (the input of docs/BENCHMARKS.md's scaling model).
 *
 * The CNN, examples/mnist_cnn's default model (conv 32 5x5 pad 2, max pool, conv 64 5x5,
 * max pool, dense 256, dropout 0.25, dense 10; 464,522 parameters; Adam lr 1e-3), global
 * batch 64 (the example's) over the same images: the same columns for 1 and 2 ranks x 1
 * and 2 threads, but an epoch (937 steps) takes 13-25 s, so each launch times a fixed
 * number of steps (--cnn-steps, default 60, after 5 untimed ones) and s/epoch is its time
 * per step x 937; then its per-step compute and scaling model.
 *
 * usage: bench_dist [--data DIR] [--epochs E] [--repeat R] [--quick] [--cnn-steps S]
 *                   [--net both|w2|cnn] [--model T128,T64,T16,T2] [--cnn-model T64,T32,T8,T1]
 *   Each row is R launches (default 3) of E epochs (CNN: blocks of S steps) each (default
 *   1, the best counts): the median and the range over the launches. --quick: the first
 *   table of each model only. --net: one model only. --model / --cnn-model: only the
 *   scaling model, from the given per-step compute (ms at the per-node batches listed).
 *   Launches itself under mpirun (found at build time; --oversubscribe, and
 *   --allow-run-as-root when run as root) once per configuration.
 *   DIR defaults to $DG_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist.
 * worker: bench_dist --worker --net w2|cnn --threads T [--overlap -1|0|1] [--bucket BYTES]
 *         [--data DIR] [--epochs E] [--cnn-steps S]
 *                  (under mpirun; prints one "result ..." line on rank 0)
 *         bench_dist --compute B --net w2|cnn --threads T   (one process: ms per step at
 *                  batch B) */
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

enum { W2_BATCH = 128, CNN_BATCH = 64, CNN_WARMUP = 5 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A model: W2 (cnn 0) or the CNN (cnn 1). */
typedef struct net {
    dg_graph *g;
    dg_node *x, *y, *loss, *dropout;
} net;

static int build_net(net *m, int cnn, int64_t pixels) {
    memset(m, 0, sizeof *m);
    m->g = dg_graph_new(cnn ? 1 : 0);
    dg_graph *g = m->g;
    m->y = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *logits;
    if (!cnn) {
        m->x = dg_input(g, "x", dg_shape2(DG_BATCH, pixels));
        dg_node *h = dg_dense(g, "fc1", m->x, 512, DG_ACT_RELU);
        h = dg_dense(g, "fc2", h, 256, DG_ACT_RELU);
        logits = dg_dense(g, "fc3", h, 10, DG_ACT_NONE);
    } else { /* examples/mnist_cnn's default model */
        m->x = dg_input(g, "images", dg_shape4(DG_BATCH, 1, 28, 28));
        dg_node *h = dg_conv2d(g, "conv1", m->x, 32, 5, 1, 2, DG_ACT_RELU);
        h = dg_max_pool2d(g, "pool1", h, 2, 2, 0);
        h = dg_conv2d(g, "conv2", h, 64, 5, 1, 0, DG_ACT_RELU);
        h = dg_max_pool2d(g, "pool2", h, 2, 2, 0);
        h = dg_flatten(g, "flatten", h);
        h = dg_dense(g, "dense", h, 256, DG_ACT_RELU);
        h = m->dropout = dg_dropout(g, "dropout", h, 0.25f);
        logits = dg_dense(g, "output", h, 10, DG_ACT_NONE);
    }
    m->loss = dg_cross_entropy_loss(g, logits, m->y);
    if (m->loss && (!cnn || pixels == 28 * 28)) return 0;
    fprintf(stderr, "bench_dist: building %s: %s\n", cnn ? "the CNN" : "W2",
            m->loss ? "the CNN needs 28x28 images" : dg_graph_error(g));
    return 1;
}

static dg_optim_config adam(void) {
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    c.lr = 1e-3f;
    return c;
}

/* ---- worker under mpirun ---- */

/* Trains `epochs` epochs (W2; the best is reported) or `epochs` blocks of cnn_steps steps
 * after CNN_WARMUP untimed ones (CNN; seconds are per block). */
static int worker(const char *dir, int cnn, int threads, int epochs, int cnn_steps,
                  const dg_mpi_config *cfg) {
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
    const int64_t B = cnn ? CNN_BATCH : W2_BATCH;
    int64_t px = d.rows * d.cols, lo = B * rank / size, hi = B * (rank + 1) / size;
    net m;
    dg_optim_config oc = adam();
    dg_optimizer *opt = build_net(&m, cnn, px) ? NULL : dg_mpi_optimizer_new(dm, m.g, m.loss, &oc);
    if (!opt || dg_mpi_broadcast(dm, m.g, 1) != DG_OK ||
        (m.dropout && dg_dropout_set_row_offset(m.dropout, lo) != DG_OK)) {
        fprintf(stderr, "bench_dist: %s\n", dg_graph_error(m.g));
        MPI_Finalize();
        return 1;
    }
    /* W2: whole epochs; the CNN: blocks of cnn_steps after the warm-up (k < 0) */
    int64_t per_epoch = d.count / B, steps = cnn ? cnn_steps : per_epoch, tail_n = 50;
    if (tail_n > steps) tail_n = steps;
    double best = 1e30, tail = 0, reduce = 0, wait = 0, hidden = 0, t0 = 0;
    int64_t done = 0; /* steps so far: the CNN's blocks go on through the epoch */
    dg_mpi_stats st;
    for (int e = 0; e < epochs; e++) {
        if (!cnn) done = 0;
        for (int64_t k = cnn && e == 0 ? -CNN_WARMUP : 0; k < steps; k++) {
            if (k == 0) {
                dg_mpi_stats_reset(dm);
                MPI_Barrier(MPI_COMM_WORLD);
                tail = 0;
                t0 = now();
            }
            int64_t row = done++ % per_epoch * B + lo;
            const float *xb = d.images + row * px, *yb = d.labels + row;
            if (dg_feed(m.x, xb, (hi - lo) * px) || dg_feed(m.y, yb, hi - lo) ||
                dg_mpi_step(dm, opt) != DG_OK) {
                fprintf(stderr, "bench_dist: step %lld: %s\n", (long long)k, dg_graph_error(m.g));
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            if (k >= steps - tail_n) tail += dg_mpi_loss(dm);
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
               "hidden_ms %.4f bytes %lld\n",
               best, reduce, wait, tail / (double)tail_n, st.buckets, st.overlap, hidden,
               (long long)st.bytes);
    dg_graph_free(m.g);
    dg_mpi_free(dm);
    dg_dataset_free(&d);
    MPI_Finalize();
    return 0;
}

/* ---- compute of one step at batch B, one process, no MPI ---- */

static int compute(const char *dir, int cnn, int threads, int batch) {
    dg_set_num_threads(threads);
    dg_dataset d;
    if (dg_mnist_load(dir, "train", &d) != DG_OK) {
        fprintf(stderr, "bench_dist: %s\n", dg_last_error());
        return 1;
    }
    int64_t px = d.rows * d.cols;
    net m;
    dg_optim_config oc = adam();
    dg_optimizer *opt = build_net(&m, cnn, px) ? NULL : dg_optimizer_new(m.g, m.loss, &oc);
    if (!opt) return 1;
    /* the CNN: 30 steps a repetition (a step of 64 rows takes 15-40 ms), after 3 more */
    int64_t steps = cnn ? 30 : 400, per = d.count / batch;
    double best = 1e30;
    for (int rep = cnn ? -1 : 0; rep < 3; rep++) {
        double t0 = now();
        for (int64_t k = 0; k < steps; k++) {
            int64_t at = (k % per) * batch;
            dg_feed(m.x, d.images + at * px, batch * px);
            dg_feed(m.y, d.labels + at, batch);
            if (dg_optimizer_step(opt) != DG_OK) return 1;
        }
        double t = (now() - t0) / (double)steps;
        if (rep >= 0) best = t < best ? t : best;
    }
    printf("result step_ms %.4f\n", 1e3 * best);
    dg_graph_free(m.g);
    dg_dataset_free(&d);
    return 0;
}

/* ---- the scaling model ---- */

/* Expected scaling to N nodes, one rank per node (a node like this machine: the measured
 * per-step compute with 2 threads), from a ring allreduce over a link of `gbit` Gbit/s with
 * `alpha` seconds per message:
 *   T(bytes) = 2 (N-1)/N bytes / bandwidth + 2 (N-1) alpha     per bucket, buckets in turn.
 * Two buckets (512 KiB default): the first, b0, is reduced while backward computes the rest
 * of the gradients (their share f of the step's flops), the second, b1, when nothing is
 * left to hide it:
 *   exposed = max(T(b0) - f t_c, 0) + T(b1).
 * W2: b0 = fc3 and fc2's gradients (535,592 bytes), hidden behind fc1's weight gradient;
 * b1 = fc1's (1,607,680 bytes). The CNN: b0 = the output and dense layers' gradients
 * (1,649,704 bytes), hidden behind conv2's input and weight gradients and conv1's weight
 * gradient; b1 = conv2 and conv1's (208,384 bytes).
 * Weak scaling: B rows per node (global batch B N; B = 128 for W2, 64 for the CNN),
 * speedup N t_c(B) / (t_c(B) + exposed). Strong scaling: global batch B, B/N rows per
 * node, speedup t_c(B) / (t_c(B/N) + exposed). tc[] holds t_c in ms for per-node batches
 * B, B/2, B/8, B/64 (W2: 128, 64, 16, 2; the CNN: 64, 32, 8, 1). */
static void print_model(int cnn, const double tc[4], const char *source) {
    double b0, b1, f, batch;
    if (!cnn) {
        b0 = 535592, b1 = 1607680, batch = W2_BATCH;
        /* flops per row: forward 2 (784 512 + 512 256 + 256 10); backward the weight
         * gradients (the same) and the input gradients of fc2 and fc3 */
        const double fwd = 2.0 * (784 * 512 + 512 * 256 + 256 * 10);
        f = 2.0 * 784 * 512 / (2 * fwd + 2.0 * (512 * 256 + 256 * 10));
    } else {
        b0 = 4.0 * (2560 + 10 + 409600 + 256), b1 = 4.0 * (51200 + 64 + 800 + 32);
        batch = CNN_BATCH;
        /* multiply-adds per row: conv1 32x28x28 outputs of 25, conv2 64x10x10 of 800,
         * dense 1600x256, output 256x10; backward: every weight gradient (as forward) and
         * the input gradients of conv2, dense and output. After the first bucket's
         * gradients exist, conv2's two and conv1's weight gradient remain. */
        const double c1 = 32.0 * 28 * 28 * 25, c2 = 64.0 * 10 * 10 * 800, d1 = 1600.0 * 256,
                     d2 = 256.0 * 10;
        const double fwd = 2 * (c1 + c2 + d1 + d2), igrad = 2 * (c2 + d1 + d2);
        f = 2 * (2 * c2 + c1) / (2 * fwd + igrad);
    }
    const int nodes[3] = {2, 8, 64}, strong_col[3] = {1, 2, 3};
    const double gbit[2] = {10, 100}, alpha[2] = {30e-6, 5e-6};
    printf("expected scaling of %s (model: ring allreduce, per-step compute %s; buckets of %.0f "
           "and %.0f bytes, the first hidden behind %s, %.0f%% of a step's flops)\n",
           cnn ? "the CNN" : "W2", source, b0, b1,
           cnn ? "the convolutions' backward" : "fc1's weight gradient", 100 * f);
    char weak[40], strong[40];
    snprintf(weak, sizeof weak, "weak: %.0f rows/node", batch);
    snprintf(strong, sizeof strong, "strong: global batch %.0f", batch);
    printf("%6s %9s %10s | %28s | %24s\n", "nodes", "link", "exposed ms", weak, strong);
    printf("%6s %9s %10s | %9s %9s %8s | %9s %6s %8s\n", "", "", "", "step ms", "speedup", "effic.",
           "step ms", "rows", "speedup");
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 3; i++) {
            double n = nodes[i], bw = gbit[l] * 1e9 / 8;
            double t0 = 2 * (n - 1) / n * b0 / bw + 2 * (n - 1) * alpha[l];
            double t1 = 2 * (n - 1) / n * b1 / bw + 2 * (n - 1) * alpha[l];
            double tcw = tc[0] / 1e3, tcs = tc[strong_col[i]] / 1e3;
            double ew = (t0 - f * tcw > 0 ? t0 - f * tcw : 0) + t1;
            double es = (t0 - f * tcs > 0 ? t0 - f * tcs : 0) + t1;
            double sw = n * tcw / (tcw + ew), ss = tcw / (tcs + es);
            char link[16];
            snprintf(link, sizeof link, "%.0f Gbit", gbit[l]);
            printf("%6d %9s %10.2f | %9.2f %9.1f %7.0f%% | %9.2f %6d %8.2f\n", nodes[i], link,
                   1e3 * ew, 1e3 * (tcw + ew), sw, 100 * sw / n, 1e3 * (tcs + es),
                   (int)batch / nodes[i] > 0 ? (int)batch / nodes[i] : 1, ss);
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
 * line into r[0..8) with fmt (up to eight %lf); returns the number parsed (or -1). */
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
        int k = sscanf(line, fmt, &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7]);
        if (k > 0)
            got = k;
        else
            fprintf(stderr, "  %s", line);
    }
    return pclose(p) == 0 ? got : -1;
}

/* The tables of one model: 1-2 ranks x 1-2 threads (and for W2 the overlap and bucket
 * study) unless model_only, then the per-step compute and the scaling model. */
static void tables(int cnn, const char *dir, int epochs, int repeat, int quick, int cnn_steps) {
    const int B = cnn ? CNN_BATCH : W2_BATCH;
    const int64_t per_epoch = 60000 / B; /* Fashion-MNIST's training set */
    if (!cnn)
        printf("W2 (784-512-256-10 MLP, Adam), global batch %d over %s; %d launches per row, "
               "each the best of %d epochs: median [min-max]; ranks on this machine's cores "
               "(shared memory)\n",
               B, dir, repeat, epochs);
    else
        printf("CNN (examples/mnist_cnn's model, 464,522 parameters, Adam), global batch %d over "
               "%s; %d launches per row, each the best of %d block%s of %d steps after %d "
               "untimed: s/epoch = seconds per step x %lld steps, median [min-max]\n",
               B, dir, repeat, epochs, epochs == 1 ? "" : "s", cnn_steps, CNN_WARMUP,
               (long long)per_epoch);
    printf("%5s %7s %7s %7s %20s %10s %10s %10s %8s\n", "ranks", "threads", "reduce", "buckets",
           "s/epoch", "reduce ms", "hidden ms", "wait ms", "loss");
    typedef struct conf {
        int np, threads, overlap;
        long long bucket;
    } conf;
    /* the defaults (512 KiB buckets: 2 for W2 and the CNN), then for W2 inline vs thread at
     * 1 bucket per gradient (6), the default, and one bucket for everything */
    conf base[] = {
        {1, 1, -1, 1 << 19}, {1, 2, -1, 1 << 19}, {2, 1, -1, 1 << 19}, {2, 2, -1, 1 << 19}};
    conf study[] = {
        {2, 1, 1, 0}, {2, 1, 0, 0}, {2, 1, 0, 1 << 19}, {2, 1, 1, 64 << 20}, {2, 1, 0, 64 << 20}};
    int n_base = 4, n_study = quick || cnn ? 0 : 5;
    double bytes = 0;
    for (int i = 0; i < n_base + n_study; i++) {
        conf c = i < n_base ? base[i] : study[i - n_base];
        if (i == n_base) printf("overlap and bucket size, 2 ranks x 1 thread:\n");
        char args[1024];
        snprintf(args, sizeof args,
                 "--worker --net %s --threads %d --overlap %d --bucket %lld --epochs %d "
                 "--cnn-steps %d --data '%s'",
                 cnn ? "cnn" : "w2", c.threads, c.overlap, c.bucket, epochs, cnn_steps, dir);
        double sec[16], red[16], wt[16], hid[16], r[8] = {0};
        int ok = 0;
        for (int k = 0; k < repeat; k++) {
            if (launch(c.np, args,
                       "result seconds %lf reduce_ms %lf wait_ms %lf loss %lf buckets %lf "
                       "overlap %lf hidden_ms %lf bytes %lf",
                       r) != 8)
                break;
            /* the CNN's blocks of cnn_steps, as a whole epoch */
            sec[ok] = cnn ? r[0] / cnn_steps * (double)per_epoch : r[0];
            red[ok] = r[1], wt[ok] = r[2], hid[ok] = r[6], ok++;
        }
        if (ok != repeat) {
            printf("%5d %7d  (failed)\n", c.np, c.threads);
            continue;
        }
        if (c.np > 1) bytes = r[7];
        char range[64];
        double mid = median(sec, ok); /* sorts sec */
        snprintf(range, sizeof range, "%.3f [%.3f-%.3f]", mid, sec[0], sec[ok - 1]);
        printf("%5d %7d %7s %7.0f %20s %10.3f %10.3f %10.3f %8.4f\n", c.np, c.threads,
               r[5] ? "thread" : "inline", r[4], range, median(red, ok), median(hid, ok),
               median(wt, ok), r[3]);
        fflush(stdout);
    }
    if (bytes > 0) printf("(gradient bytes reduced per step: %.0f)\n", bytes);
    if (quick) return;
    /* per-rank batches B / ranks, and the four the model reads (B, B/2, B/8, B/64) */
    int ranks[] = {1, 2, 4, 8, 16, 64}, model_ranks[4] = {1, 2, 8, 64};
    printf("compute of one training step (one process, no MPI), ms: the per-rank batch of "
           "%d / ranks%s\n",
           B, cnn ? " (best of 3 x 30 steps)" : " (best of 3 x 400 steps)");
    printf("%8s %6s %12s %12s\n", "ranks", "batch", "1 thread", "2 threads");
    double tc[4] = {0, 0, 0, 0};
    for (int i = 0; i < 6; i++) {
        int rows = B / ranks[i] > 0 ? B / ranks[i] : 1;
        double ms[2] = {0, 0}, r[8];
        for (int t = 0; t < 2; t++) {
            char args[1024];
            snprintf(args, sizeof args, "--compute %d --net %s --threads %d --data '%s'", rows,
                     cnn ? "cnn" : "w2", t + 1, dir);
            ms[t] = launch(0, args, "result step_ms %lf", r) == 1 ? r[0] : -1;
        }
        printf("%8d %6d %12.3f %12.3f\n", ranks[i], rows, ms[0], ms[1]);
        for (int k = 0; k < 4; k++)
            if (ranks[i] == model_ranks[k]) tc[k] = ms[1];
        fflush(stdout);
    }
    print_model(cnn, tc, "measured above with 2 threads");
}

int main(int argc, char **argv) {
    const char *dir = getenv("DG_FASHION_MNIST_DIR");
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    int is_worker = 0, threads = 1, epochs = 1, batch = 0, quick = 0, repeat = 3, cnn_steps = 60;
    const char *which = "both";
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
        else if (v && (!strcmp(a, "--model") || !strcmp(a, "--cnn-model"))) {
            /* only the scaling model, from per-step compute given in ms */
            int cnn = !strcmp(a, "--cnn-model");
            double tc[4];
            if (sscanf(v, "%lf,%lf,%lf,%lf", &tc[0], &tc[1], &tc[2], &tc[3]) != 4) {
                fprintf(stderr, "%s needs %s (ms per step)\n", a,
                        cnn ? "T64,T32,T8,T1" : "T128,T64,T16,T2");
                return 2;
            }
            print_model(cnn, tc, "as given");
            return 0;
        } else if (v && !strcmp(a, "--repeat"))
            repeat = atoi(v), i++;
        else if (v && !strcmp(a, "--epochs"))
            epochs = atoi(v), i++;
        else if (v && !strcmp(a, "--cnn-steps"))
            cnn_steps = atoi(v), i++;
        else if (v && !strcmp(a, "--net") &&
                 (!strcmp(v, "w2") || !strcmp(v, "cnn") || !strcmp(v, "both")))
            which = v, i++;
        else if (v && !strcmp(a, "--overlap"))
            cfg.overlap = atoi(v), i++;
        else if (v && !strcmp(a, "--bucket"))
            cfg.bucket_bytes = (size_t)atoll(v), i++;
        else if (v && !strcmp(a, "--compute"))
            batch = atoi(v), i++;
        else {
            fprintf(stderr,
                    "usage: %s [--data DIR] [--epochs E] [--repeat R] [--quick] [--cnn-steps S] "
                    "[--net both|w2|cnn] [--model T128,T64,T16,T2] [--cnn-model T64,T32,T8,T1]\n",
                    argv[0]);
            return 2;
        }
    }
    if (epochs < 1) epochs = 1;
    if (repeat < 1 || repeat > 16) repeat = 3;
    if (cnn_steps < 1) cnn_steps = 60;
    int cnn = !strcmp(which, "cnn");
    if (is_worker) return worker(dir, cnn, threads, epochs, cnn_steps, &cfg);
    if (batch > 0) return compute(dir, cnn, threads, batch);
    if (strcmp(which, "cnn") != 0) tables(0, dir, epochs, repeat, quick, cnn_steps);
    if (strcmp(which, "w2") != 0) {
        if (strcmp(which, "both") == 0) printf("\n");
        tables(1, dir, epochs, repeat, quick, cnn_steps);
    }
    return 0;
}
