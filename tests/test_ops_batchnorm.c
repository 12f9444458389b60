/* Batch normalisation: training-mode values and running-statistic updates against the
 * formulas (PyTorch's: biased variance to normalise, unbiased into the running average),
 * evaluation mode with the running statistics, gradients and second derivatives against
 * central differences in both modes, a batch input of changing size, run-time and build
 * errors. */
#include "test_util.h"

#include <string.h>

typedef struct bn {
    dg_graph *g;
    dg_node *x, *gamma, *beta, *rm, *rv, *y;
} bn;

static bn build(dg_shape xs, float momentum, float eps) {
    bn b;
    int64_t c = xs.dim[1];
    b.g = dg_graph_new(1);
    b.x = dg_input(b.g, "x", xs);
    b.gamma = dg_input(b.g, "gamma", dg_shape1(c));
    b.beta = dg_input(b.g, "beta", dg_shape1(c));
    b.rm = dg_state(b.g, "running_mean", dg_shape1(c));
    b.rv = dg_state(b.g, "running_var", dg_shape1(c));
    dg_set_requires_grad(b.x, 1);
    dg_set_requires_grad(b.gamma, 1);
    dg_set_requires_grad(b.beta, 1);
    test_fill(b.x, -2, 3);
    test_fill(b.gamma, 0.5f, 1.5f);
    test_fill(b.beta, -1, 1);
    float *rv = dg_node_data(b.rv);
    for (int64_t i = 0; i < c; i++) rv[i] = 1.0f;
    b.y = dg_batch_normalize(b.g, b.x, b.gamma, b.beta, b.rm, b.rv, momentum, eps);
    return b;
}

/* x's values of channel c, as [N,C,S]. */
static void channel_stats(const float *x, dg_shape s, int64_t c, double *mean, double *var) {
    int64_t n = s.dim[0], ch = s.dim[1], sp = 1;
    for (int i = 2; i < s.ndim; i++) sp *= s.dim[i];
    double sum = 0, sq = 0;
    for (int64_t k = 0; k < n; k++)
        for (int64_t i = 0; i < sp; i++) sum += x[(k * ch + c) * sp + i];
    *mean = sum / (double)(n * sp);
    for (int64_t k = 0; k < n; k++)
        for (int64_t i = 0; i < sp; i++) {
            double d = x[(k * ch + c) * sp + i] - *mean;
            sq += d * d;
        }
    *var = sq / (double)(n * sp);
}

static void check_values(dg_shape xs) {
    const float mom = 0.1f, eps = 1e-5f;
    bn b = build(xs, mom, eps);
    CHECK_MSG(b.y != NULL, "%s", dg_graph_error(b.g));
    if (!b.y) return dg_graph_free(b.g);
    int64_t c = xs.dim[1], per = dg_node_numel(b.x) / c, sp = per / xs.dim[0];
    const float *x = dg_node_data(b.x), *ga = dg_node_data(b.gamma), *be = dg_node_data(b.beta);
    for (int run = 1; run <= 2; run++) {
        CHECK_OK(dg_run(b.g, b.y));
        const float *y = dg_node_data(b.y);
        double worst = 0;
        for (int64_t ch = 0; ch < c; ch++) {
            double m, v;
            channel_stats(x, xs, ch, &m, &v);
            for (int64_t k = 0; k < xs.dim[0]; k++)
                for (int64_t i = 0; i < sp; i++) {
                    int64_t at = (k * c + ch) * sp + i;
                    double want = ga[ch] * (x[at] - m) / sqrt(v + eps) + be[ch];
                    worst = fmax(worst, fabs(y[at] - want));
                }
            /* after `run` updates from 0 and 1: r_k = (1 - mom)^k r_0 + (1 - (1 - mom)^k) stat */
            double keep = pow(1.0 - mom, run), unbiased = v * (double)per / (double)(per - 1);
            CHECK_NEAR(dg_node_data(b.rm)[ch], (1 - keep) * m, 1e-5);
            CHECK_NEAR(dg_node_data(b.rv)[ch], keep + (1 - keep) * unbiased, 1e-5);
        }
        CHECK_MSG(worst < 2e-5, "training values: max error %g", worst);
    }
    /* evaluation: the running statistics, which stay as they are */
    float rm[16], rv[16];
    memcpy(rm, dg_node_data(b.rm), sizeof(float) * (size_t)c);
    memcpy(rv, dg_node_data(b.rv), sizeof(float) * (size_t)c);
    dg_set_training(b.g, 0);
    CHECK_OK(dg_run(b.g, b.y));
    double worst = 0;
    for (int64_t at = 0; at < dg_node_numel(b.x); at++) {
        int64_t ch = at / sp % c;
        double want = ga[ch] * (x[at] - rm[ch]) / sqrt(rv[ch] + eps) + be[ch];
        worst = fmax(worst, fabs(dg_node_data(b.y)[at] - want));
    }
    CHECK_MSG(worst < 2e-5, "evaluation values: max error %g", worst);
    CHECK(memcmp(rm, dg_node_data(b.rm), sizeof(float) * (size_t)c) == 0);
    CHECK(memcmp(rv, dg_node_data(b.rv), sizeof(float) * (size_t)c) == 0);
    dg_graph_free(b.g);
}

static void check_grads(dg_shape xs, int training) {
    bn b = build(xs, 0.1f, 1e-3f);
    dg_set_training(b.g, training);
    if (!training) {
        /* running statistics unlike the batch's, so evaluation differs from training */
        test_fill(b.rm, -0.5f, 0.5f);
        test_fill(b.rv, 0.5f, 2.0f);
    }
    dg_node *r = dg_input(b.g, "r", dg_node_shape(b.y));
    test_fill(r, -1, 1);
    dg_node *loss = dg_sum(b.g, dg_mul(b.g, dg_tanh(b.g, b.y), r));
    CHECK_MSG(loss != NULL, "%s", dg_graph_error(b.g));
    if (!loss) return dg_graph_free(b.g);
    dg_node *leaves[3] = {b.x, b.gamma, b.beta};
    dg_gradcheck_report rep;
    dg_status s = dg_gradcheck(b.g, loss, 3, leaves, 1e-2, 1e-3, 1e-2, &rep);
    CHECK_MSG(s == DG_OK && rep.passed,
              "%s ndim %d: %s max abs %.3g at leaf %d[%lld]: analytic %.6g numeric %.6g",
              training ? "training" : "evaluation", xs.ndim, dg_graph_error(b.g), rep.max_abs_err,
              rep.worst_leaf, (long long)rep.worst_index, rep.worst_analytic, rep.worst_numeric);
    CHECK(rep.checked == dg_node_numel(b.x) + 2 * xs.dim[1]);
    /* second derivatives through the statistics' backward rules */
    dg_node *grads[3];
    CHECK_OK(dg_gradients(b.g, loss, 3, leaves, grads));
    dg_node *v = dg_input(b.g, "v", xs), *u = dg_input(b.g, "u", dg_shape1(xs.dim[1]));
    test_fill(v, -1, 1);
    test_fill(u, -1, 1);
    dg_node *gv =
        dg_add(b.g, dg_sum(b.g, dg_mul(b.g, grads[0], v)), dg_sum(b.g, dg_mul(b.g, grads[1], u)));
    s = dg_gradcheck(b.g, gv, 3, leaves, 1e-2, 1e-3, 1e-2, &rep);
    CHECK_MSG(s == DG_OK && rep.passed,
              "%s second derivative: %s max abs %.3g at leaf %d[%lld]: analytic %.6g numeric %.6g",
              training ? "training" : "evaluation", dg_graph_error(b.g), rep.max_abs_err,
              rep.worst_leaf, (long long)rep.worst_index, rep.worst_analytic, rep.worst_numeric);
    dg_graph_free(b.g);
}

/* In training a batch input of any size normalises with that batch's statistics; one value
 * per channel cannot, and says so; in evaluation a single image is fine. */
static void check_batch_input(void) {
    dg_graph *g = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, 3));
    dg_node *rm = dg_state(g, "rm", dg_shape1(3)), *rv = dg_state(g, "rv", dg_shape1(3));
    dg_node *y = dg_batch_normalize(g, x, NULL, NULL, rm, rv, 0.5f, 1e-5f);
    CHECK(y != NULL);
    float data[12] = {1, 2, 3, 3, 2, 1, 5, 5, 5, 7, 8, 9};
    CHECK_OK(dg_feed(x, data, 6));
    CHECK_OK(dg_run(g, y));
    /* two rows: each channel's values are m -+ d, normalised to -+1 (up to eps) */
    CHECK_NEAR(dg_node_data(y)[0], -1.0, 1e-4);
    CHECK_NEAR(dg_node_data(y)[3], 1.0, 1e-4);
    CHECK_NEAR(dg_node_data(y)[1], 0.0, 1e-6); /* both 2: variance 0 */
    CHECK_OK(dg_feed(x, data, 12));
    CHECK_OK(dg_run(g, y));
    CHECK(dg_node_shape(y).dim[0] == 4);
    CHECK_OK(dg_feed(x, data, 3));
    CHECK(dg_run(g, y) == DG_ERR_SHAPE);
    CHECK_MSG(strstr(dg_graph_error(g), "batch_norm: training needs more than one value per "
                                        "channel, got input [1,3]") != NULL,
              "%s", dg_graph_error(g));
    dg_set_training(g, 0);
    CHECK_OK(dg_run(g, y));
    dg_graph_free(g);
}

static void check_errors(void) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "x", dg_shape4(2, 3, 4, 4));
    dg_node *rm = dg_state(g, "rm", dg_shape1(3)), *rv = dg_state(g, "rv", dg_shape1(3));
    dg_node *bad = dg_state(g, "bad", dg_shape1(4));
    int before = dg_graph_node_count(g);
    CHECK(dg_batch_normalize(g, x, bad, NULL, rm, rv, 0.1f, 1e-5f) == NULL);
    CHECK_MSG(strstr(dg_graph_error(g),
                     "batch_norm: gamma [4] does not match the channels of input [2,3,4,4]"),
              "%s", dg_graph_error(g));
    CHECK(dg_batch_normalize(g, x, NULL, NULL, bad, rv, 0.1f, 1e-5f) == NULL);
    CHECK_MSG(strstr(dg_graph_error(g), "statistics [4] do not match the 3 channels of input "
                                        "[2,3,4,4]"),
              "%s", dg_graph_error(g));
    CHECK(dg_batch_normalize(g, x, NULL, NULL, rm, rv, 1.5f, 1e-5f) == NULL);
    CHECK(dg_graph_status(g) == DG_ERR_ARG);
    CHECK(dg_batch_normalize(g, x, NULL, NULL, rm, dg_neg(g, rv), 0.1f, 1e-5f) == NULL);
    CHECK(strstr(dg_graph_error(g), "running statistics must be leaves"));
    CHECK(dg_batch_normalize(g, dg_input(g, "s", dg_shape1(3)), NULL, NULL, rm, rv, 0.1f, 1e-5f) ==
          NULL);
    CHECK(strstr(dg_graph_error(g), "input must be [N,C] or [N,C,H,W], got [3]"));
    /* only the nodes made for the failed calls' arguments remain */
    CHECK(dg_graph_node_count(g) == before + 2);
    dg_graph_free(g);
}

int main(void) {
    check_values(dg_shape4(3, 4, 5, 3));
    check_values(dg_shape2(7, 5));
    check_values(dg_shape3(2, 3, 6));
    for (int t = 0; t <= 1; t++) {
        check_grads(dg_shape4(3, 2, 3, 2), t);
        check_grads(dg_shape2(5, 3), t);
    }
    check_batch_input();
    check_errors();
    return test_summary("test_ops_batchnorm");
}
