/* Dropout: in training the fraction zeroed is close to the rate and survivors are scaled
 * by 1/(1-rate); each run draws a new mask; the same seed draws the same masks; evaluation
 * mode is the identity; the gradient is dy times the mask of the same run, and with a
 * frozen mask it matches finite differences; a batch's rows drawn in two parts with a row
 * offset get the whole batch's masks. */
#include "test_util.h"

#include <string.h>

#define R 200
#define C 250

static void statistics(float rate) {
    dg_graph *g = dg_graph_new(21);
    dg_node *x = dg_input(g, "x", dg_shape2(R, C));
    test_fill(x, 0.5f, 2.0f); /* no zeros in x, so a zero output means dropped */
    dg_node *y = dg_dropout(g, NULL, x, rate);
    CHECK(y != NULL);
    if (!y) {
        dg_graph_free(g);
        return;
    }
    CHECK(!strcmp(dg_node_scope(y), "dropout1"));
    CHECK_OK(dg_run(g, y));
    const float *xd = dg_node_data(x), *yd = dg_node_data(y);
    int64_t n = R * C, zeros = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (yd[i] == 0.0f)
            zeros++;
        else if (fabs(yd[i] - xd[i] / (1.0 - rate)) > 1e-5 * fabs(xd[i] / (1.0 - rate)))
            bad++;
    }
    /* binomial: std of the fraction is sqrt(r(1-r)/n) <= 0.001; allow 5 sigma */
    double frac = (double)zeros / (double)n;
    CHECK_MSG(fabs(frac - rate) < 0.005 + 5 * sqrt(rate * (1 - rate) / (double)n),
              "rate %g: zeroed fraction %g", (double)rate, frac);
    CHECK_MSG(bad == 0, "rate %g: %lld kept values not scaled by 1/(1-rate)", (double)rate,
              (long long)bad);

    /* a second run draws a different mask */
    static float first[R * C];
    memcpy(first, yd, sizeof first);
    CHECK_OK(dg_run(g, y));
    if (rate > 0) CHECK(memcmp(first, yd, sizeof first) != 0);

    /* evaluation: identity */
    dg_set_training(g, 0);
    CHECK_OK(dg_run(g, y));
    CHECK(memcmp(xd, yd, sizeof first) == 0);
    dg_set_training(g, 1);
    CHECK_OK(dg_run(g, y));
    int64_t z2 = 0;
    for (int64_t i = 0; i < n; i++) z2 += yd[i] == 0.0f;
    if (rate > 0) CHECK(z2 > 0);
    dg_graph_free(g);
}

/* Two graphs with the same seed draw the same sequence of masks. */
static void reproducible(void) {
    static float out[2][3][64 * 64];
    for (int k = 0; k < 2; k++) {
        dg_graph *g = dg_graph_new(77);
        dg_node *x = dg_const(g, "x", dg_shape2(64, 64), NULL, 1.0f);
        dg_node *y = dg_dropout(g, "d", x, 0.3f);
        for (int r = 0; r < 3; r++) {
            CHECK_OK(dg_run(g, y));
            memcpy(out[k][r], dg_node_data(y), sizeof out[k][r]);
        }
        dg_graph_free(g);
    }
    CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0);
    CHECK(memcmp(out[0][0], out[0][1], sizeof out[0][0]) != 0);
}

/* A batch fed in two parts, the second with dg_dropout_set_row_offset at the first's rows,
 * gets the masks of the whole batch (data-parallel ranks draw one process's masks). */
static void row_offset(void) {
    enum { N = 7, F = 33, LO = 3 };
    static float whole[2][N * F], part[2][N * F];
    for (int k = 0; k < 3; k++) {
        dg_graph *g = dg_graph_new(9);
        dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, F));
        dg_node *y = dg_dropout(g, "d", x, 0.4f);
        float ones[N * F];
        for (int i = 0; i < N * F; i++) ones[i] = 1.0f;
        /* k = 0: rows 0..N; k = 1: rows 0..LO; k = 2: rows LO..N with the offset */
        int lo = k == 2 ? LO : 0, hi = k == 1 ? LO : N;
        if (k == 2) CHECK_OK(dg_dropout_set_row_offset(y, LO));
        for (int r = 0; r < 2; r++) { /* two runs: the counter moves on the same way */
            CHECK_OK(dg_feed(x, ones, (int64_t)(hi - lo) * F));
            CHECK_OK(dg_run(g, y));
            memcpy((k == 0 ? whole[r] : part[r]) + lo * F, dg_node_data(y),
                   sizeof(float) * (size_t)((hi - lo) * F));
        }
        dg_graph_free(g);
    }
    CHECK(memcmp(whole, part, sizeof whole) == 0);
    CHECK(memcmp(whole[0], whole[1], sizeof whole[0]) != 0);
    /* without the offset the second part repeats the first rows' draws, not its own */
    dg_graph *g = dg_graph_new(9);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, F));
    dg_node *y = dg_dropout(g, "d", x, 0.4f);
    float ones[N * F];
    for (int i = 0; i < N * F; i++) ones[i] = 1.0f;
    CHECK_OK(dg_feed(x, ones, (int64_t)(N - LO) * F));
    CHECK_OK(dg_run(g, y));
    CHECK(memcmp(dg_node_data(y), whole[0] + LO * F, sizeof(float) * (N - LO) * F) != 0);
    CHECK(memcmp(dg_node_data(y), whole[0], sizeof(float) * (N - LO) * F) == 0);
    CHECK(dg_dropout_set_row_offset(y, -1) == DG_ERR_ARG);
    CHECK(strstr(dg_graph_error(g), "rows must be >= 0") != NULL);
    CHECK(dg_dropout_set_row_offset(x, 1) == DG_ERR_ARG);
    CHECK(dg_dropout_set_row_offset(NULL, 1) == DG_ERR_ARG);
    dg_graph_free(g);
}

static void gradients(void) {
    dg_graph *g = dg_graph_new(5);
    dg_node *x = dg_input(g, "x", dg_shape2(6, 7));
    dg_set_requires_grad(x, 1);
    test_fill(x, -1, 1);
    dg_node *y = dg_dropout(g, NULL, x, 0.4f);
    dg_node *w = dg_input(g, "w", dg_shape2(6, 7));
    test_fill(w, -1, 1);
    dg_node *loss = dg_sum(g, dg_mul(g, dg_tanh(g, y), w));
    CHECK_OK(dg_backward(g, loss));
    dg_node *dx = dg_grad(x), *mask = dg_dropout_mask(y);
    CHECK(dx && mask);
    if (!dx || !mask) {
        dg_graph_free(g);
        return;
    }
    /* read after the runs below, so they keep their values */
    CHECK_OK(dg_keep(mask));
    CHECK_OK(dg_keep(y));
    /* in one run the gradient is dy * mask, dy = w (1 - tanh(y)^2), with this run's mask */
    for (int rep = 0; rep < 2; rep++) {
        CHECK_OK(dg_run(g, dx));
        const float *m = dg_node_data(mask), *yd = dg_node_data(y), *wd = dg_node_data(w);
        int zeros = 0;
        for (int i = 0; i < 42; i++) {
            double t = tanh(yd[i]);
            double want = wd[i] * (1 - t * t) * m[i];
            CHECK_NEAR(dg_node_data(dx)[i], want, 1e-5);
            zeros += m[i] == 0.0f;
            CHECK(m[i] == 0.0f || fabs(m[i] - 1 / 0.6) < 1e-6);
        }
        CHECK(zeros > 0 && zeros < 42);
    }
    /* frozen mask: a fixed function of x, so finite differences agree */
    CHECK_OK(dg_dropout_set_frozen(y, 1));
    CHECK_OK(dg_run(g, y));
    static float before[42];
    memcpy(before, dg_node_data(mask), sizeof before);
    dg_gradcheck_report rep;
    CHECK_OK(dg_gradcheck(g, loss, 1, &x, 1e-2, 2e-3, 2e-2, &rep));
    CHECK_MSG(rep.passed, "dropout gradcheck: max abs %g at %lld", rep.max_abs_err,
              (long long)rep.worst_index);
    CHECK(memcmp(before, dg_node_data(mask), sizeof before) == 0);
    /* in evaluation the gradient is dy */
    dg_set_training(g, 0);
    CHECK_OK(dg_run(g, dx));
    for (int i = 0; i < 42; i++) {
        double t = tanh(dg_node_data(x)[i]);
        CHECK_NEAR(dg_node_data(dx)[i], dg_node_data(w)[i] * (1 - t * t), 1e-5);
    }
    /* unfrozen again: training draws fresh masks */
    dg_set_training(g, 1);
    CHECK_OK(dg_dropout_set_frozen(y, 0));
    CHECK_OK(dg_run(g, y));
    CHECK(memcmp(before, dg_node_data(mask), sizeof before) != 0);
    dg_graph_free(g);
}

static void errors(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape1(4));
    CHECK(dg_dropout(g, NULL, x, 1.0f) == NULL);
    CHECK(strstr(dg_graph_error(g), "rate") != NULL);
    CHECK(dg_dropout(g, NULL, x, -0.1f) == NULL);
    CHECK(dg_dropout(g, NULL, x, NAN) == NULL);
    CHECK(dg_dropout(g, NULL, NULL, 0.5f) == NULL);
    CHECK(dg_dropout(NULL, NULL, x, 0.5f) == NULL);
    CHECK(dg_dropout_set_frozen(x, 1) == DG_ERR_ARG);
    CHECK(dg_dropout_set_frozen(NULL, 1) == DG_ERR_ARG);
    CHECK(dg_dropout_mask(x) == NULL);
    dg_node *y = dg_dropout(g, NULL, x, 0.5f);
    CHECK(y && !strcmp(dg_node_scope(y), "dropout1"));
    dg_graph_free(g);
}

int main(void) {
    statistics(0.5f);
    statistics(0.1f);
    statistics(0.8f);
    statistics(0.0f);
    reproducible();
    row_offset();
    gradients();
    errors();
    return test_summary("test_layers_dropout");
}
