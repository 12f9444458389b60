/* bench_matmul: GFLOP/s of dg_gemm against cblas_sgemm (when OpenBLAS was found at build
 * time) in the same run, on 1 and 2 threads, for square sizes, the products of training a
 * 784-512-256-10 MLP at batch 128 (forward and the transposed backward products), the
 * course's 784-50-20-10 MLP at batch 32, and the optional bf16 path (against OpenBLAS's
 * cblas_sbgemm on inputs it was handed already in bf16), and the W2 step's products run in
 * order with its optimizer's memory traffic between steps (w2_step_in_sequence: operands
 * cold, as in training). Prints the CPU, the kernels
 * chosen, OpenBLAS's core type and the measured FMA peak, and each rate as % of that peak.
 *
 * Timing: each entry is the best of repeated calls within a time budget; a round times all
 * dagrad calls, then all OpenBLAS calls (idle spinning workers of one library would steal
 * the cores the other's fork-join waits for). Rounds are repeated (--rounds) and the
 * median of the per-round bests is printed with the range of the per-round ratios.
 *
 * OpenBLAS picks its kernels from the CPU model and falls back to slow ones on CPUs it does
 * not know, so the program sets OPENBLAS_CORETYPE to the best core this CPU can run
 * (Cooperlake with AVX512-BF16, whose sgemm is SkylakeX's and whose sbgemm uses
 * AVX512-BF16; SkylakeX with AVX-512; Haswell with AVX2), replacing any value inherited from
 * the environment (a machine-wide OPENBLAS_CORETYPE=Haswell on a Zen 5 halves OpenBLAS's
 * speed); --openblas-core NAME measures another. Each thread count runs in its own process
 * with OPENBLAS_NUM_THREADS equal to it (see main).
 *
 * usage: bench_matmul [--quick] [--threads N[,M]] [--rounds R] [--openblas-core NAME] */
#define _GNU_SOURCE /* setenv, execv, nanosleep, clock_gettime */
#include "dagrad.h"
#include "gemm_kernel.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BENCH_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif
#ifdef DG_BENCH_CBLAS
#include <cblas.h>
#endif

typedef struct {
    const char *name;
    int ta, tb;
    int64_t m, n, k;
    int group; /* 0 square, 1 W2 MLP step, 2 course MLP step, 3 bf16 */
} bench_case;

static const bench_case cases[] = {
    {"square 256", 0, 0, 256, 256, 256, 0},
    {"square 512", 0, 0, 512, 512, 512, 0},
    {"square 1024", 0, 0, 1024, 1024, 1024, 0},
    {"square 2048", 0, 0, 2048, 2048, 2048, 0},
    /* 784-512-256-10 at batch 128. forward: H1 = X W1, H2 = H1 W2, Z = H2 W3 */
    {"fwd 128x784 * 784x512", 0, 0, 128, 512, 784, 1},
    {"fwd 128x512 * 512x256", 0, 0, 128, 256, 512, 1},
    {"fwd 128x256 * 256x10", 0, 0, 128, 10, 256, 1},
    /* backward: dW = X^T dY (trans A), dX = dY W^T (trans B) */
    {"bwd dW3 256x128^T * 128x10", 1, 0, 256, 10, 128, 1},
    {"bwd dH2 128x10 * 256x10^T", 0, 1, 128, 256, 10, 1},
    {"bwd dW2 512x128^T * 128x256", 1, 0, 512, 256, 128, 1},
    {"bwd dH1 128x256 * 512x256^T", 0, 1, 128, 512, 256, 1},
    {"bwd dW1 784x128^T * 128x512", 1, 0, 784, 512, 128, 1},
    /* the course's 784-50-20-10 at batch 32 */
    {"c fwd 32x784 * 784x50", 0, 0, 32, 50, 784, 2},
    {"c fwd 32x50 * 50x20", 0, 0, 32, 20, 50, 2},
    {"c fwd 32x20 * 20x10", 0, 0, 32, 10, 20, 2},
    {"c dW3 20x32^T * 32x10", 1, 0, 20, 10, 32, 2},
    {"c dH2 32x10 * 20x10^T", 0, 1, 32, 20, 10, 2},
    {"c dW2 50x32^T * 32x20", 1, 0, 50, 20, 32, 2},
    {"c dH1 32x20 * 50x20^T", 0, 1, 32, 50, 20, 2},
    {"c dW1 784x32^T * 32x50", 1, 0, 784, 50, 32, 2},
    /* reduced precision: dagrad with DG_MATMUL_BF16 vs cblas_sbgemm */
    {"bf16 square 1024", 0, 0, 1024, 1024, 1024, 3},
    {"bf16 square 2048", 0, 0, 2048, 2048, 2048, 3},
    {"bf16 fwd 128x784 * 784x512", 0, 0, 128, 512, 784, 3},
    {"bf16 bwd dW1 784x128^T*128x512", 1, 0, 784, 512, 128, 3},
    {"bf16 bwd dH1 128x256*512x256^T", 0, 1, 128, 512, 256, 3},
};
enum { N_CASES = sizeof cases / sizeof cases[0], MAX_ROUNDS = 15 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 64-byte aligned, as dagrad's tensors (and PyTorch's) are: with malloc's 16-byte offset
 * every row of C would straddle cache lines in both libraries. */
static float *alloc_floats(int64_t n) {
    size_t bytes = ((size_t)n * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static float *rand_matrix(int64_t n) {
    float *p = alloc_floats(n);
    if (!p) return NULL;
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        p[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
    }
    return p;
}

/* ---- the machine ---- */

/* The 1-minute load average, or -1: timings on a shared machine mean little above ~1. */
static double load_average(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static void cpu_model(char *out, size_t size) {
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *v = strchr(line, ':');
        if (!v) break;
        v += 1 + (v[1] == ' ');
        v[strcspn(v, "\n")] = 0;
        snprintf(out, size, "%s", v);
        break;
    }
    fclose(f);
}

#ifdef DG_BENCH_CBLAS
#ifdef BENCH_X86
static int cpu_has(unsigned leaf, unsigned sub, int reg, unsigned bit) {
    unsigned r[4] = {0};
    if ((unsigned)__get_cpuid_max(0, NULL) < leaf) return 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    return (r[reg] & bit) != 0;
}
#endif

/* OpenBLAS core type for this CPU: the best whose instructions it has. */
static const char *openblas_core_for_cpu(void) {
#ifdef BENCH_X86
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    if (avx512 && cpu_has(7, 1, 0, 1u << 5)) return "Cooperlake"; /* EAX bit 5: AVX512_BF16 */
    if (avx512) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}
#endif

#define PEAK_CHAINS 16
#ifdef BENCH_X86
/* 16 independent FMA chains of 512-bit vectors: enough to fill both FMA pipes. */
__attribute__((target("avx512f"))) static double fma_loop_avx512(long iters, double *flops) {
    __m512 c[PEAK_CHAINS];
    for (int i = 0; i < PEAK_CHAINS; i++) c[i] = _mm512_set1_ps(0.001f * (float)i);
    __m512 x = _mm512_set1_ps(0.9999f), y = _mm512_set1_ps(1e-6f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < PEAK_CHAINS; i++) c[i] = _mm512_fmadd_ps(c[i], x, y);
    }
    __m512 s = c[0];
    for (int i = 1; i < PEAK_CHAINS; i++) s = _mm512_add_ps(s, c[i]);
    *flops = 2.0 * 16 * PEAK_CHAINS * (double)iters;
    return (double)_mm512_reduce_add_ps(s);
}
__attribute__((target("avx2,fma"))) static double fma_loop_avx2(long iters, double *flops) {
    __m256 c[PEAK_CHAINS];
    for (int i = 0; i < PEAK_CHAINS; i++) c[i] = _mm256_set1_ps(0.001f * (float)i);
    __m256 x = _mm256_set1_ps(0.9999f), y = _mm256_set1_ps(1e-6f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < PEAK_CHAINS; i++) c[i] = _mm256_fmadd_ps(c[i], x, y);
    }
    float t[8];
    __m256 s = c[0];
    for (int i = 1; i < PEAK_CHAINS; i++) s = _mm256_add_ps(s, c[i]);
    _mm256_storeu_ps(t, s);
    *flops = 2.0 * 8 * PEAK_CHAINS * (double)iters;
    return (double)(t[0] + t[7]);
}
#endif
/* Portable stand-in: multiply-adds the compiler vectorises (not necessarily fused). */
static double fma_loop_portable(long iters, double *flops) {
    float c[8 * PEAK_CHAINS];
    for (int i = 0; i < 8 * PEAK_CHAINS; i++) c[i] = 0.001f * (float)i;
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 8 * PEAK_CHAINS; i++) c[i] = c[i] * 0.9999f + 1e-6f;
    double s = 0;
    for (int i = 0; i < 8 * PEAK_CHAINS; i++) s += c[i];
    *flops = 2.0 * 8 * PEAK_CHAINS * (double)iters;
    return s;
}

static const char *peak_kind = "portable multiply-add loop";

static double fma_loop(long iters, double *flops) {
#ifdef BENCH_X86
    if (__builtin_cpu_supports("avx512f")) return fma_loop_avx512(iters, flops);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return fma_loop_avx2(iters, flops);
#endif
    return fma_loop_portable(iters, flops);
}

static volatile double peak_sink;

/* Measured fp32 peak of `threads` threads running the FMA loop at once (GFLOP/s, sum over
 * threads), best of several tries. */
static double measure_peak(int threads) {
#ifdef BENCH_X86
    if (__builtin_cpu_supports("avx512f"))
        peak_kind = "512-bit FMA loop, 16 chains";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        peak_kind = "256-bit FMA loop, 16 chains";
#endif
    double best = 0;
    for (int rep = 0; rep < 25; rep++) { /* many short tries: one may catch the cores idle */
        double total = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : total)
#endif
        {
            double flops, t0 = now();
            peak_sink = fma_loop(1500000, &flops);
            total += flops / (now() - t0) * 1e-9;
        }
        (void)threads;
        if (total > best) best = total;
    }
    return best;
}

/* ---- timing ---- */

typedef struct {
    float *a, *b, *out;
#ifdef DG_BENCH_SBGEMM
    bfloat16 *a16, *b16;
#endif
} operands;

/* C = op(A) op(B) (row-major, packed leading dimensions) by dagrad or by OpenBLAS. */
static void product(int use_blas, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a,
                    const float *b, float *c) {
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    if (!use_blas) {
        dg_gemm(ta, tb, m, n, k, a, lda, b, ldb, c, n, 0);
        return;
    }
#ifdef DG_BENCH_CBLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, 0.0f, c, (int)n);
#endif
}

/* Best seconds per call: repetitions until `budget` seconds have passed. */
static double best_time(int use_blas, const bench_case *c, const operands *o, double budget) {
    double best = 1e30, start = now();
    int reps = 0;
    if (!use_blas && c->group == 3) dg_set_matmul_precision(DG_MATMUL_BF16);
    do {
        double t0 = now();
#ifdef DG_BENCH_SBGEMM
        if (use_blas && c->group == 3)
            cblas_sbgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans,
                         c->tb ? CblasTrans : CblasNoTrans, (int)c->m, (int)c->n, (int)c->k, 1.0f,
                         o->a16, (int)(c->ta ? c->m : c->k), o->b16, (int)(c->tb ? c->k : c->n),
                         0.0f, o->out, (int)c->n);
        else
#endif
            product(use_blas, c->ta, c->tb, c->m, c->n, c->k, o->a, o->b, o->out);
        double dt = now() - t0;
        if (reps++ > 0 && dt < best) best = dt; /* the first call warms caches and threads */
    } while (reps < 3 || (now() - start < budget && reps < 20000));
    dg_set_matmul_precision(DG_MATMUL_FP32);
    return best;
}

static int cmp_double(const void *x, const void *y);

/* The W2 step in sequence. The rows above repeat one product on the same operands, which
 * then stay in L2; in training every weight was last written by the previous step's update
 * and every activation by another product. Here the 8 products of a W2 step run in their
 * order on one set of arrays (each product's output is a later one's input), and between
 * steps a pass like Adam's streams 4 arrays of 535,040 floats (the W2 parameters) through
 * every thread's caches. Returns the median time of the 8 products per step (the stream
 * not counted), steps 2.. */
enum { W2_PARAMS = 535040, W2_BATCH = 128 };

typedef struct {
    float *p, *m, *v, *g;
} stream_arrays;

static void stream_range(void *ctx, int64_t lo, int64_t hi) {
    const stream_arrays *s = ctx;
    for (int64_t i = lo; i < hi; i++) {
        s->m[i] = 0.9f * s->m[i] + 0.1f * s->g[i];
        s->v[i] = 0.999f * s->v[i] + 0.001f * s->g[i] * s->g[i];
        s->p[i] -= 1e-6f * s->m[i] / (s->v[i] + 1.0f);
    }
}

static double w2_step_in_sequence(int use_blas, double budget) {
    const int64_t B = W2_BATCH;
    float *x = rand_matrix(B * 784), *w1 = rand_matrix(784 * 512), *h1 = rand_matrix(B * 512);
    float *w2 = rand_matrix(512 * 256), *h2 = rand_matrix(B * 256), *w3 = rand_matrix(256 * 10);
    float *z = rand_matrix(B * 10), *dz = rand_matrix(B * 10), *dw3 = rand_matrix(256 * 10);
    float *dh2 = rand_matrix(B * 256), *dw2 = rand_matrix(512 * 256);
    float *dh1 = rand_matrix(B * 512), *dw1 = rand_matrix(784 * 512);
    stream_arrays s = {rand_matrix(W2_PARAMS), rand_matrix(W2_PARAMS), rand_matrix(W2_PARAMS),
                       rand_matrix(W2_PARAMS)};
    float *all[] = {x, w1, h1, w2, h2, w3, z, dz, dw3, dh2, dw2, dh1, dw1, s.p, s.m, s.v, s.g};
    const int n_all = (int)(sizeof all / sizeof all[0]);
    double times[4096], start = now(), result = -1;
    int steps = 0, ok = 1;
    for (int i = 0; i < n_all; i++) ok &= all[i] != NULL;
    while (ok && (steps < 8 || (now() - start < budget && steps < 4096))) {
        double t0 = now();
        product(use_blas, 0, 0, B, 512, 784, x, w1, h1);    /* H1 = X W1 */
        product(use_blas, 0, 0, B, 256, 512, h1, w2, h2);   /* H2 = H1 W2 */
        product(use_blas, 0, 0, B, 10, 256, h2, w3, z);     /* Z = H2 W3 */
        product(use_blas, 1, 0, 256, 10, B, h2, dz, dw3);   /* dW3 = H2^T dZ */
        product(use_blas, 0, 1, B, 256, 10, dz, w3, dh2);   /* dH2 = dZ W3^T */
        product(use_blas, 1, 0, 512, 256, B, h1, dh2, dw2); /* dW2 = H1^T dH2 */
        product(use_blas, 0, 1, B, 512, 256, dh2, w2, dh1); /* dH1 = dH2 W2^T */
        product(use_blas, 1, 0, 784, 512, B, x, dh1, dw1);  /* dW1 = X^T dH1 */
        times[steps++] = now() - t0;
        dg_parallel_for(W2_PARAMS, 16, stream_range, &s);
    }
    if (ok && steps > 1) {
        qsort(times + 1, (size_t)(steps - 1), sizeof(double), cmp_double);
        result = times[1 + (steps - 1) / 2];
    }
    for (int i = 0; i < n_all; i++) free(all[i]);
    return result;
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

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(const double *v, int n) {
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void print_row(const char *name, int t, double gd, double gd_best, double gb, double peak,
                      double rlo, double rhi, int have_blas, int pct) {
    char pd[16] = "-", pdb[16] = "-", pb[16] = "-", sb[16] = "-", ratio[16] = "-", range[32] = "";
    if (pct) snprintf(pd, sizeof pd, "%.0f%%", 100.0 * gd / peak);
    if (pct && gd_best > 0) snprintf(pdb, sizeof pdb, "%.0f%%", 100.0 * gd_best / peak);
    if (have_blas && gb > 0) {
        snprintf(sb, sizeof sb, "%.1f", gb);
        if (pct) snprintf(pb, sizeof pb, "%.0f%%", 100.0 * gb / peak);
        snprintf(ratio, sizeof ratio, "%.2f", gd / gb);
        if (rhi > 0) snprintf(range, sizeof range, "%.2f-%.2f", rlo, rhi);
    }
    printf("%-32s %3d %9.1f %5s %5s %9s %5s %6s  %s\n", name, t, gd, pd, pdb, sb, pb, ratio, range);
}

int main(int argc, char **argv) {
    int quick = 0, threads[2] = {1, 2}, n_threads = 2, rounds = 3, child = 0;
    const char *core_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--child"))
            child = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = sscanf(argv[++i], "%d,%d", &threads[0], &threads[1]);
            if (n_threads < 1) n_threads = 1;
        } else if (!strcmp(argv[i], "--openblas-core") && i + 1 < argc) {
            core_arg = argv[++i];
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
            rounds = rounds < 1 ? 1 : rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds;
        } else {
            fprintf(stderr,
                    "usage: %s [--quick] [--threads N[,M]] [--rounds R] [--openblas-core NAME]\n",
                    argv[0]);
            return 2;
        }
    }
    if (quick) rounds = 1;
#ifdef DG_BENCH_CBLAS
    const int have_blas = 1;
    if (!child) {
        /* OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS once, when it is loaded
         * (before main): each thread count runs in a fresh process of this program with both
         * set, so OpenBLAS's pool is created at the size it is measured with rather than
         * shrunk or grown with openblas_set_num_threads. */
        const char *core = core_arg ? core_arg : openblas_core_for_cpu();
        const char *inherited = getenv("OPENBLAS_CORETYPE");
        char note[160] = "";
        if (core && inherited && strcmp(inherited, core) != 0)
            snprintf(note, sizeof note, " (the environment's OPENBLAS_CORETYPE=%.40s replaced)",
                     inherited);
        if (core) setenv("OPENBLAS_CORETYPE", core, 1);
        char model[160];
        cpu_model(model, sizeof model);
        printf("CPU: %s; load average at start %.2f\n", model, load_average());
        if (core) printf("OpenBLAS core: %s%s\n", core, note);
        printf("dagrad kernels: fp32 %s; bf16 %s\n", dg__gemm_kernel_name(),
               dg_matmul_bf16_supported() ? dg__gemm_bf16_name() : "none (falls back to fp32)");
        fflush(stdout);
        for (int ti = 0; ti < n_threads; ti++) {
            char nt[16], nr[16];
            snprintf(nt, sizeof nt, "%d", threads[ti]);
            snprintf(nr, sizeof nr, "%d", rounds);
            char *args[] = {
                argv[0], "--child", "--threads", nt, "--rounds", nr, quick ? "--quick" : NULL,
                NULL};
            pid_t pid = fork();
            if (pid == 0) {
                setenv("OPENBLAS_NUM_THREADS", nt, 1);
                execv("/proc/self/exe", args);
                _exit(127);
            }
            int status = 0;
            if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bench_matmul: the %s-thread run failed\n", nt);
                return 1;
            }
        }
        printf("load average at end %.2f\n", load_average());
        return 0;
    }
    printf("peer: OpenBLAS, %s, core %s (OPENBLAS_CORETYPE=%s, OPENBLAS_NUM_THREADS=%s)%s\n",
           openblas_get_config(), openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset",
           getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "unset",
#ifdef DG_BENCH_SBGEMM
           "; bf16 rows: cblas_sbgemm on bf16 inputs"
#else
           "; no cblas_sbgemm in this build: bf16 rows compare with its fp32 cblas_sgemm"
#endif
    );
#else
    const int have_blas = 0;
    (void)child;
    (void)core_arg;
    char model[160];
    cpu_model(model, sizeof model);
    printf("CPU: %s; load average at start %.2f\n", model, load_average());
    printf("dagrad kernels: fp32 %s; bf16 %s\n", dg__gemm_kernel_name(),
           dg_matmul_bf16_supported() ? dg__gemm_bf16_name() : "none (falls back to fp32)");
    printf("peer: none (built without OpenBLAS)\n");
#endif
    double budget = quick ? 0.1 : 0.3;
    double peak[2];
    for (int ti = 0; ti < n_threads; ti++) {
        peak[ti] = measure_peak(threads[ti]);
        printf("measured fp32 peak, %d thread%s: %.1f GFLOP/s (%s)\n", threads[ti],
               threads[ti] > 1 ? "s" : "", peak[ti], peak_kind);
    }
    printf("rounds: %d (GF/s: median of per-round bests; best: the best round, the statistic\n"
           "the peak is (the best of short tries); ratio range over rounds)\n",
           rounds);
    printf("%-32s %3s %9s %5s %5s %9s %5s %6s  %s\n", "shape (m x k * k x n)", "thr", "dagrad",
           "%pk", "best", "OpenBLAS", "%pk", "ratio", "range");

    static double td[2][N_CASES][MAX_ROUNDS], tb[2][N_CASES][MAX_ROUNDS];
    static double seq_d[2][MAX_ROUNDS], seq_b[2][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int ti = 0; ti < n_threads; ti++) {
            set_threads(threads[ti]);
            for (int lib = 0; lib < 1 + have_blas; lib++) {
                for (int i = 0; i < N_CASES; i++) {
                    const bench_case *c = &cases[i];
                    if (quick && c->m * c->n * c->k > 1100000000LL) continue;
                    operands o = {.a = rand_matrix(c->m * c->k),
                                  .b = rand_matrix(c->k * c->n),
                                  .out = alloc_floats(c->m * c->n)};
                    if (!o.a || !o.b || !o.out) {
                        fprintf(stderr, "out of memory\n");
                        return 1;
                    }
#ifdef DG_BENCH_SBGEMM
                    o.a16 = malloc((size_t)(c->m * c->k) * sizeof(bfloat16));
                    o.b16 = malloc((size_t)(c->k * c->n) * sizeof(bfloat16));
                    if (!o.a16 || !o.b16) return 1;
                    cblas_sbstobf16((int)(c->m * c->k), o.a, 1, o.a16, 1);
                    cblas_sbstobf16((int)(c->k * c->n), o.b, 1, o.b16, 1);
#endif
                    (lib ? tb : td)[ti][i][r] = best_time(lib, c, &o, budget);
#ifdef DG_BENCH_SBGEMM
                    free(o.a16), free(o.b16);
#endif
                    free(o.a), free(o.b), free(o.out);
                }
                (lib ? seq_b : seq_d)[ti][r] = w2_step_in_sequence(lib, 3 * budget);
                sleep_seconds(0.3);
            }
        }

    for (int ti = 0; ti < n_threads; ti++) {
        int t = threads[ti];
        double gflops[4] = {0}, sum_d[4] = {0}, sum_b[4] = {0};
        for (int i = 0; i < N_CASES; i++) {
            const bench_case *c = &cases[i];
            if (td[ti][i][0] <= 0) continue;
            double flops = 2.0 * (double)c->m * (double)c->n * (double)c->k;
            double gd[MAX_ROUNDS], gb[MAX_ROUNDS], rlo = 1e30, rhi = 0, gd_best = 0;
            for (int r = 0; r < rounds; r++) {
                gd[r] = flops / td[ti][i][r] * 1e-9;
                if (gd[r] > gd_best) gd_best = gd[r];
                gb[r] = tb[ti][i][r] > 0 ? flops / tb[ti][i][r] * 1e-9 : 0;
                double ratio = gb[r] > 0 ? gd[r] / gb[r] : 0;
                rlo = ratio < rlo ? ratio : rlo;
                rhi = ratio > rhi ? ratio : rhi;
            }
            print_row(c->name, t, median(gd, rounds), gd_best, median(gb, rounds), peak[ti], rlo,
                      rounds > 1 ? rhi : 0, have_blas, c->group != 3);
            gflops[c->group] += flops;
            sum_d[c->group] += median(td[ti][i], rounds);
            sum_b[c->group] += median(tb[ti][i], rounds);
            if (i + 1 == N_CASES || cases[i + 1].group != c->group) {
                static const char *total[4] = {NULL, "W2 MLP step (8 products)",
                                               "course MLP step (8 products)", NULL};
                if (total[c->group])
                    print_row(total[c->group], t, gflops[c->group] / sum_d[c->group] * 1e-9, 0,
                              sum_b[c->group] > 0 ? gflops[c->group] / sum_b[c->group] * 1e-9 : 0,
                              peak[ti], 0, 0, have_blas, 1);
                if (c->group == 1 && seq_d[ti][0] > 0) {
                    double gd[MAX_ROUNDS], gb[MAX_ROUNDS], rlo = 1e30, rhi = 0;
                    for (int r = 0; r < rounds; r++) {
                        gd[r] = gflops[1] / seq_d[ti][r] * 1e-9;
                        gb[r] = seq_b[ti][r] > 0 ? gflops[1] / seq_b[ti][r] * 1e-9 : 0;
                        double ratio = gb[r] > 0 ? gd[r] / gb[r] : 0;
                        rlo = ratio < rlo ? ratio : rlo;
                        rhi = ratio > rhi ? ratio : rhi;
                    }
                    print_row("W2 step in sequence, cold", t, median(gd, rounds), 0,
                              median(gb, rounds), peak[ti], rlo, rounds > 1 ? rhi : 0, have_blas,
                              1);
                }
            }
        }
        fflush(stdout);
    }
    /* The peak again: if it dropped, other processes shared the cores during the run and
     * the tables above (especially the multi-thread ones) understate both libraries. */
    for (int ti = 0; ti < n_threads; ti++) {
        double again = measure_peak(threads[ti]);
        printf("measured fp32 peak at end, %d thread%s: %.1f GFLOP/s (%.0f%% of the first)%s\n",
               threads[ti], threads[ti] > 1 ? "s" : "", again, 100.0 * again / peak[ti],
               again < 0.9 * peak[ti] ? ": the machine was busy, numbers unreliable" : "");
    }
#ifndef DG_BENCH_CBLAS
    printf("load average at end %.2f\n", load_average());
#endif
    return 0;
}
