/* The reduced-precision matmul switch (dagrad/precision.h): off by default with the exact
 * fp32 path; invalid settings refused; with DG_MATMUL_BF16 every bf16 kernel the CPU has
 * (AMX, AVX512-BF16) matches inputs rounded to bf16 (nearest even) and summed in fp32, is
 * within bf16 error of the exact product, gives the same bits for 1, 2 and 3 threads and
 * leaves C's padding alone; a matmul node in a graph follows the switch; and with no bf16
 * kernel (forced here, as on CPUs without one) the setting falls back to fp32 bit for bit. */
#include "test_util.h"

#include "../src/ops/gemm_kernel.h"
#include "../src/ops/kernels.h"

#include <string.h>

static float *rand_matrix(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = test_uniform(-1.0f, 1.0f);
    return p;
}

/* x rounded to the nearest bf16, ties to even (finite x) */
static double bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

typedef struct {
    int ta, tb, acc;
    int64_t m, n, k, lda, ldb, ldc;
    float *a, *b, *c0;
} problem;

static problem make(int ta, int tb, int64_t m, int64_t n, int64_t k, int acc) {
    problem p = {ta, tb, acc, m, n, k, (ta ? m : k) + 3, (tb ? k : n) + 5, n + 2, NULL, NULL, NULL};
    p.a = rand_matrix((ta ? k : m) * p.lda);
    p.b = rand_matrix((tb ? n : k) * p.ldb);
    p.c0 = rand_matrix(m * p.ldc);
    return p;
}

static void release(problem *p) { free(p->a), free(p->b), free(p->c0); }

static float *run(const problem *p, int threads) {
    float *c = malloc((size_t)(p->m * p->ldc) * sizeof(float));
    memcpy(c, p->c0, (size_t)(p->m * p->ldc) * sizeof(float));
    dg_set_num_threads(threads);
    dg_gemm(p->ta, p->tb, p->m, p->n, p->k, p->a, p->lda, p->b, p->ldb, c, p->ldc, p->acc);
    dg_set_num_threads(0);
    return c;
}

static double elem(const float *x, int64_t ld, int t, int64_t r, int64_t col) {
    return t ? x[col * ld + r] : x[r * ld + col];
}

/* Worst errors of c against the exact product (relative to sum |a||b|, the scale of bf16
 * rounding errors) and against the bf16-rounded inputs summed in double. */
static void errors(const problem *p, const float *c, double *exact_rel, double *rounded_rel,
                   int *pad_ok) {
    *exact_rel = *rounded_rel = 0;
    *pad_ok = 1;
    for (int64_t i = 0; i < p->m; i++) {
        for (int64_t j = 0; j < p->n; j++) {
            double s = p->acc ? p->c0[i * p->ldc + j] : 0, sr = s, mag = fabs(s);
            for (int64_t q = 0; q < p->k; q++) {
                float x = (float)elem(p->a, p->lda, p->ta, i, q);
                float y = (float)elem(p->b, p->ldb, p->tb, q, j);
                s += (double)x * y;
                sr += bf16_round(x) * bf16_round(y);
                mag += fabs((double)x * y);
            }
            double e = fabs(c[i * p->ldc + j] - s) / mag, er = fabs(c[i * p->ldc + j] - sr) / mag;
            *exact_rel = e > *exact_rel ? e : *exact_rel;
            *rounded_rel = er > *rounded_rel ? er : *rounded_rel;
        }
        for (int64_t j = p->n; j < p->ldc; j++)
            *pad_ok &= c[i * p->ldc + j] == p->c0[i * p->ldc + j];
    }
}

static void check_bf16_kernel(const char *name) {
    static const int64_t shapes[][3] = {{1, 1, 1},     {7, 5, 3},      {33, 17, 65},
                                        {40, 70, 31},  {100, 37, 300}, {129, 33, 600},
                                        {31, 129, 47}, {300, 530, 70}};
    const int ns = sizeof shapes / sizeof shapes[0];
    double worst_exact = 0;
    for (int s = 0; s < ns; s++)
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1, acc = (s + t) & 1;
            problem p = make(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], acc);
            float *c[3];
            for (int th = 0; th < 3; th++) c[th] = run(&p, th + 1);
            double er, err_rounded;
            int pad_ok;
            errors(&p, c[0], &er, &err_rounded, &pad_ok);
            worst_exact = er > worst_exact ? er : worst_exact;
            /* bf16 inputs: each product is off by at most ~2^-8 of |a b| */
            CHECK_MSG(er <= 1.0 / 128, "%s ta=%d tb=%d %lldx%lldx%lld: error %g of sum|ab| > 2^-7",
                      name, ta, tb, (long long)p.m, (long long)p.n, (long long)p.k, er);
            /* ... and equals the rounded inputs summed in fp32 (so rounding is to nearest) */
            CHECK_MSG(err_rounded <= 2e-6,
                      "%s ta=%d tb=%d %lldx%lldx%lld: %g from bf16-rounded sum", name, ta, tb,
                      (long long)p.m, (long long)p.n, (long long)p.k, err_rounded);
            CHECK_MSG(pad_ok, "%s ta=%d tb=%d: wrote past n", name, ta, tb);
            for (int th = 1; th < 3; th++)
                CHECK_MSG(!memcmp(c[0], c[th], (size_t)(p.m * p.ldc) * sizeof(float)),
                          "%s ta=%d tb=%d %lldx%lldx%lld: %d threads differ from 1", name, ta, tb,
                          (long long)p.m, (long long)p.n, (long long)p.k, th + 1);
            for (int th = 0; th < 3; th++) free(c[th]);
            release(&p);
        }
    /* the inputs really were rounded: fp32 alone would be ~1e-7 of sum|ab| */
    CHECK_MSG(worst_exact > 1e-4, "%s: worst error %g, as if inputs were not rounded to bf16", name,
              worst_exact);
}

/* A [4,300] x [300,3] matmul node run with the given precision. */
static void graph_matmul(dg_matmul_precision prec, float out[12]) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "x", dg_shape2(4, 300)), *w = dg_param(g, "w", dg_shape2(300, 3));
    test_rng_state = 12345; /* the same values for both precisions */
    float xs[1200];
    for (int i = 0; i < 1200; i++) xs[i] = test_uniform(-1, 1);
    CHECK_OK(dg_feed(x, xs, 1200));
    test_fill(w, -1, 1);
    dg_node *y = dg_matmul(g, x, w);
    CHECK_OK(dg_set_matmul_precision(prec));
    CHECK_OK(dg_run(g, y));
    CHECK_OK(dg_set_matmul_precision(DG_MATMUL_FP32));
    memcpy(out, dg_node_data(y), 12 * sizeof(float));
    dg_graph_free(g);
}

int main(void) {
    /* off by default, and the default is the fp32 kernel */
    CHECK(dg_get_matmul_precision() == DG_MATMUL_FP32);
    CHECK(!strcmp(dg_matmul_kernel(), dg__gemm_kernel_name()));
    problem p = make(0, 1, 37, 29, 300, 1);
    float *c_default = run(&p, 1);
    double er, err_rounded;
    int pad_ok;
    errors(&p, c_default, &er, &err_rounded, &pad_ok);
    CHECK_MSG(er <= 1e-6, "default product: error %g of sum|ab|, not fp32", er);

    /* invalid settings are refused and change nothing */
    CHECK(dg_set_matmul_precision((dg_matmul_precision)7) == DG_ERR_ARG);
    CHECK(dg_set_matmul_precision((dg_matmul_precision)-1) == DG_ERR_ARG);
    CHECK(dg_get_matmul_precision() == DG_MATMUL_FP32);

    const char *best = dg__gemm_bf16_name();
    printf("bf16 kernel chosen here: %s\n", best ? best : "none");
    CHECK(dg_matmul_bf16_supported() == (best != NULL));

    /* each bf16 kernel this machine has */
    const char *names[] = {"amx", "avx512bf16"};
    for (int i = 0; i < 2; i++) {
        if (!dg__gemm_bf16_use(names[i])) {
            printf("bf16 kernel %s: not supported here, skipped\n", names[i]);
            continue;
        }
        printf("bf16 kernel %s\n", dg__gemm_bf16_name());
        CHECK_OK(dg_set_matmul_precision(DG_MATMUL_BF16));
        CHECK(!strcmp(dg_matmul_kernel(), dg__gemm_bf16_name()));
        check_bf16_kernel(names[i]);
        float y32[12], y16[12];
        graph_matmul(DG_MATMUL_FP32, y32);
        graph_matmul(DG_MATMUL_BF16, y16);
        CHECK_OK(dg_set_matmul_precision(DG_MATMUL_BF16));
        CHECK_MSG(memcmp(y32, y16, sizeof y32) != 0, "%s: matmul node ignored the switch",
                  names[i]);
        for (int j = 0; j < 12; j++) CHECK_NEAR(y16[j], y32[j], 1.0);
        CHECK_OK(dg_set_matmul_precision(DG_MATMUL_FP32));
    }

    /* no bf16 kernel (as on a CPU without one): BF16 is accepted and products stay fp32 */
    CHECK(dg__gemm_bf16_use("none"));
    CHECK(!dg_matmul_bf16_supported());
    CHECK_OK(dg_set_matmul_precision(DG_MATMUL_BF16));
    CHECK(dg_get_matmul_precision() == DG_MATMUL_BF16);
    CHECK(!strcmp(dg_matmul_kernel(), dg__gemm_kernel_name()));
    float *c_fallback = run(&p, 2);
    CHECK_MSG(!memcmp(c_default, c_fallback, (size_t)(p.m * p.ldc) * sizeof(float)),
              "fallback differs from the fp32 product");
    CHECK_OK(dg_set_matmul_precision(DG_MATMUL_FP32));
    dg__gemm_bf16_use(NULL);
    free(c_default), free(c_fallback);
    release(&p);
    return test_summary("test_gemm_bf16");
}
