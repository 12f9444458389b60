/* Denormals. Runs flush subnormal results to zero on every thread of the run (subnormal
 * arithmetic costs tens to hundreds of cycles per operation and made Adam's step time grow
 * epoch after epoch), and leave the caller's floating-point mode as it was:
 *   - a product whose exact result is subnormal comes out 0, in a small tensor (one
 *     thread) and a large one (a parallel region);
 *   - after the run, the same product computed by the caller is still subnormal;
 *   - Adam's moments for weights whose gradient is zero after the first step decay to
 *     exactly 0 instead of lingering in the subnormal range (where they used to stay, and
 *     where every later update paid the subnormal penalty).
 * The step time itself is measured by bench/bench_mlp over epochs 2..N. */
#include "test_util.h"

#include <float.h>
#include <string.h>

static int is_subnormal(float v) { return v != 0.0f && fabsf(v) < FLT_MIN; }

static void products(void) {
    dg_graph *g = dg_graph_new(1);
    const int sizes[2] = {16, 200000};
    for (int k = 0; k < 2; k++) {
        int n = sizes[k];
        dg_node *x = dg_input(g, NULL, dg_shape1(n));
        float *v = malloc((size_t)n * sizeof *v);
        for (int i = 0; i < n; i++) v[i] = 1e-20f;
        CHECK_OK(dg_feed(x, v, n));
        dg_node *y = dg_mul(g, x, x);
        CHECK_OK(dg_run(g, y));
        int zeros = 0;
        for (int i = 0; i < n; i++) zeros += dg_node_data(y)[i] == 0.0f;
        CHECK_MSG(zeros == n, "%d of %d products flushed to zero", zeros, n);
        free(v);
    }
    volatile float a = 1e-20f;
    float b = a * a; /* the caller's own mode is untouched */
    CHECK_MSG(is_subnormal(b), "1e-20 * 1e-20 = %g outside a run", (double)b);
    dg_graph_free(g);
}

static void adam_moments(void) {
    /* w's first column gets a gradient only at step 1 (its input is 1 once, then 0) */
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(1, 2));
    dg_node *w = dg_param(g, "w", dg_shape2(2, 1));
    dg_node *loss = dg_sum(g, dg_mul(g, dg_matmul(g, x, w), dg_matmul(g, x, w)));
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = dg_optimizer_new(g, loss, &c);
    CHECK(opt != NULL);
    dg_node_data(w)[0] = dg_node_data(w)[1] = 1.0f;
    float first[2] = {1, 1}, later[2] = {0, 1};
    for (int step = 0; step < 1200; step++) {
        CHECK_OK(dg_feed(x, step ? later : first, 2));
        CHECK_OK(dg_optimizer_step(opt));
    }
    dg_node *m = dg_graph_find(g, "w/adam_m"), *v = dg_graph_find(g, "w/adam_v");
    CHECK(m && v);
    /* 0.9^1200 is far below the smallest normal float: the moment is 0, not subnormal */
    CHECK_MSG(dg_node_data(m)[0] == 0.0f, "first moment %g", (double)dg_node_data(m)[0]);
    for (int i = 0; i < 2; i++) {
        CHECK(!is_subnormal(dg_node_data(m)[i]));
        CHECK(!is_subnormal(dg_node_data(v)[i]));
    }
    dg_graph_free(g);
}

int main(void) {
    products();
    adam_moments();
    return test_summary("test_engine_fpmode");
}
