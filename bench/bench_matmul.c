/* bench_matmul: GFLOP/s of dg_gemm against cblas_sgemm (when OpenBLAS was found at build
 * time) in the same run, for square sizes and for the products of training a
 * 784-512-256-10 MLP at batch 128 (forward and the transposed backward products), on 1 and
 * 2 threads. Each entry is the best of several timed repetitions.
 *
 * usage: bench_matmul [--quick] [--threads N,M] */
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime */
#include "dagrad.h"
#include "gemm_kernel.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef DG_BENCH_CBLAS
#include <cblas.h>
#endif

typedef struct {
    const char *name;
    int ta, tb;
    int64_t m, n, k;
    int mlp; /* part of the MLP training step */
} bench_case;

static const bench_case cases[] = {
    {"square 256", 0, 0, 256, 256, 256, 0},
    {"square 512", 0, 0, 512, 512, 512, 0},
    {"square 1024", 0, 0, 1024, 1024, 1024, 0},
    {"square 2048", 0, 0, 2048, 2048, 2048, 0},
    /* forward: H1 = X W1, H2 = H1 W2, Z = H2 W3 */
    {"fwd 128x784 * 784x512", 0, 0, 128, 512, 784, 1},
    {"fwd 128x512 * 512x256", 0, 0, 128, 256, 512, 1},
    {"fwd 128x256 * 256x10", 0, 0, 128, 10, 256, 1},
    /* backward: dW = X^T dY (trans A), dX = dY W^T (trans B) */
    {"bwd dW3 256x128^T * 128x10", 1, 0, 256, 10, 128, 1},
    {"bwd dH2 128x10 * 256x10^T", 0, 1, 128, 256, 10, 1},
    {"bwd dW2 512x128^T * 128x256", 1, 0, 512, 256, 128, 1},
    {"bwd dH1 128x256 * 512x256^T", 0, 1, 128, 512, 256, 1},
    {"bwd dW1 784x128^T * 128x512", 1, 0, 784, 512, 128, 1},
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rand_matrix(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) return NULL;
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        p[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
    }
    return p;
}

/* Best seconds per call: repetitions in batches until `budget` seconds have passed. */
static double best_time(int use_blas, const bench_case *c, const float *a, const float *b,
                        float *out, double budget) {
    int64_t lda = c->ta ? c->m : c->k, ldb = c->tb ? c->k : c->n;
    double best = 1e30, start = now();
    int reps = 0;
    do {
        double t0 = now();
        if (!use_blas) {
            dg_gemm(c->ta, c->tb, c->m, c->n, c->k, a, lda, b, ldb, out, c->n, 0);
        } else {
#ifdef DG_BENCH_CBLAS
            cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans,
                        c->tb ? CblasTrans : CblasNoTrans, (int)c->m, (int)c->n, (int)c->k, 1.0f, a,
                        (int)lda, b, (int)ldb, 0.0f, out, (int)c->n);
#endif
        }
        double dt = now() - t0;
        if (reps++ > 0 && dt < best) best = dt; /* the first call warms caches and threads */
    } while (reps < 3 || (now() - start < budget && reps < 10000));
    return best;
}

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void set_threads(int t) {
    dg_set_num_threads(t);
#ifdef DG_BENCH_OPENBLAS_THREADS
    openblas_set_num_threads(t);
#endif
}

int main(int argc, char **argv) {
    int quick = 0, threads[2] = {1, 2}, n_threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = sscanf(argv[++i], "%d,%d", &threads[0], &threads[1]);
            if (n_threads < 1) n_threads = 1;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--threads N[,M]]\n", argv[0]);
            return 2;
        }
    }
    double budget = quick ? 0.15 : 0.6;
#ifdef DG_BENCH_CBLAS
    const int have_blas = 1;
#else
    const int have_blas = 0;
#endif
    printf("dg_gemm kernel: %s; reference: %s\n", dg__gemm_kernel_name(),
           have_blas ? "cblas_sgemm (OpenBLAS)" : "none (built without OpenBLAS)");
    printf("%-30s %7s %12s %12s %7s\n", "shape (m x k * k x n)", "threads", "dagrad GF/s",
           "OpenBLAS GF/s", "ratio");
    enum { N_CASES = sizeof cases / sizeof cases[0] };
    for (int ti = 0; ti < n_threads; ti++) {
        int t = threads[ti];
        set_threads(t);
        double td[N_CASES] = {0}, tb[N_CASES] = {0};
        /* All dagrad runs, then all BLAS runs: idle OpenMP and OpenBLAS workers spin for a
         * while after a call, and on two cores a spinning pool of the other library would
         * steal the CPU that a fork-join of this one waits for. */
        for (int lib = 0; lib < 1 + have_blas; lib++) {
            for (int i = 0; i < N_CASES; i++) {
                const bench_case *c = &cases[i];
                if (quick && c->m * c->n * c->k > 1100000000LL) continue;
                float *a = rand_matrix(c->m * c->k), *b = rand_matrix(c->k * c->n);
                float *out = malloc((size_t)(c->m * c->n) * sizeof(float));
                if (!a || !b || !out) {
                    fprintf(stderr, "out of memory\n");
                    return 1;
                }
                (lib ? tb : td)[i] = best_time(lib, c, a, b, out, budget);
                free(a), free(b), free(out);
            }
            sleep_seconds(0.5);
        }
        double mlp_flops = 0, mlp_dg = 0, mlp_blas = 0;
        for (int i = 0; i < N_CASES; i++) {
            const bench_case *c = &cases[i];
            if (td[i] <= 0) continue;
            double flops = 2.0 * (double)c->m * (double)c->n * (double)c->k;
            if (have_blas)
                printf("%-30s %7d %12.1f %12.1f %7.2f\n", c->name, t, flops / td[i] * 1e-9,
                       flops / tb[i] * 1e-9, tb[i] / td[i]);
            else
                printf("%-30s %7d %12.1f %12s %7s\n", c->name, t, flops / td[i] * 1e-9, "-", "-");
            if (c->mlp) mlp_flops += flops, mlp_dg += td[i], mlp_blas += tb[i];
        }
        if (have_blas)
            printf("%-30s %7d %12.1f %12.1f %7.2f\n", "MLP step (all 8 above)", t,
                   mlp_flops / mlp_dg * 1e-9, mlp_flops / mlp_blas * 1e-9, mlp_blas / mlp_dg);
        else
            printf("%-30s %7d %12.1f %12s %7s\n", "MLP step (all 8 above)", t,
                   mlp_flops / mlp_dg * 1e-9, "-", "-");
        fflush(stdout);
    }
    return 0;
}
