/* Shared by the benchmarks: the CPU's model name, its fp32 FMA peak measured by a loop of
 * independent vector FMAs (what a GEMM could reach at best), the OpenBLAS core type that
 * suits the CPU, statistics over repeated timings, and a CPU hog for busy-machine runs.
 * Header-only: each benchmark is one program. */
#ifndef DG_BENCH_COMMON_H
#define DG_BENCH_COMMON_H

#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* each benchmark uses some of these */
#define BENCH_API __attribute__((unused)) static

BENCH_API double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "Intel(R) Xeon(R) Processor ..." from /proc/cpuinfo, or "unknown CPU". */
BENCH_API const char *bench_cpu_model(void) {
    static char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model name", 10) == 0) {
            const char *c = strchr(line, ':');
            if (c) {
                snprintf(model, sizeof model, "%s", c + 2);
                model[strcspn(model, "\n")] = 0;
            }
            break;
        }
    }
    if (f) fclose(f);
    return model;
}

/* The OpenBLAS core type to ask for: Debian's 0.3.21 misdetects recent CPUs and then runs
 * its SSE3 kernels; SkylakeX is its AVX-512 kernel set, Haswell its AVX2 one. NULL: leave
 * OpenBLAS to its own detection. */
BENCH_API const char *bench_openblas_coretype(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

/* ---- FMA peak: 12 independent accumulators, so latency hides and only throughput shows ---- */

#if defined(__x86_64__)
__attribute__((target("avx512f"))) BENCH_API double fma_loop_avx512(long iters) {
    __m512 a[12], b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    float sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm512_reduce_add_ps(a[i]);
    return (double)iters * 12 * 16 * 2 + (sink == 12345.0f);
}
__attribute__((target("avx2,fma"))) BENCH_API double fma_loop_avx2(long iters) {
    __m256 a[12], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    float v[8], sink = 0;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(v, a[i]);
        sink += v[0];
    }
    return (double)iters * 12 * 8 * 2 + (sink == 12345.0f);
}
#endif

BENCH_API double fma_loop_scalar(long iters) {
    float a[12], b = 0.999999f, c = 1e-7f;
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = a[i] * b + c;
    float sink = 0;
    for (int i = 0; i < 12; i++) sink += a[i];
    return (double)iters * 12 * 2 + (sink == 12345.0f);
}

/* The vector width used: "avx512", "avx2" or "scalar". */
BENCH_API const char *bench_fma_kind(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
    return "scalar";
}

BENCH_API double fma_flops(long iters) {
#if defined(__x86_64__)
    if (!strcmp(bench_fma_kind(), "avx512")) return fma_loop_avx512(iters);
    if (!strcmp(bench_fma_kind(), "avx2")) return fma_loop_avx2(iters);
#endif
    return fma_loop_scalar(iters);
}

/* Measured fp32 FMA peak of one core in GFLOP/s: best of several 20-50 ms runs. */
BENCH_API double bench_fma_peak(void) {
    static double peak = 0;
    if (peak > 0) return peak;
    long iters = 1 << 16;
    for (;;) { /* size the loop to about 20 ms */
        double t0 = bench_now(), f = fma_flops(iters), dt = bench_now() - t0;
        if (dt > 0.02 || iters > (1L << 30)) {
            peak = f / dt;
            break;
        }
        iters *= 2;
    }
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now(), f = fma_flops(iters), dt = bench_now() - t0;
        if (f / dt > peak) peak = f / dt;
    }
    peak /= 1e9;
    return peak;
}

/* ---- statistics ---- */

BENCH_API int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, minimum and maximum of v[0..n). */
BENCH_API void bench_stats(const double *v, int n, double *median, double *lo, double *hi) {
    double s[256];
    if (n > 256) n = 256;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    *lo = s[0];
    *hi = s[n - 1];
    *median = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* ---- a CPU hog: another process spinning on one core ---- */

BENCH_API pid_t bench_hog_start(void) {
    pid_t pid = fork();
    if (pid == 0) {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    return pid;
}

BENCH_API void bench_hog_stop(pid_t pid) {
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

#endif
