/* The vectorisable exponential (src/ops/vector_math.h) and the ops built on it.
 * - dg__expf itself, against exp() in double: within 1 ulp for a dense sweep of the floats
 *   whose e^x is a normal float (every 61st bit pattern), a nearby subnormal or 0 below
 *   them, inf above, NaN for NaN.
 * - The ops, as the library runs them (its vectorised AVX-512 / AVX2 / SSE2 clones, split
 *   among threads): exp, sigmoid, softmax, log_softmax and cross-entropy on inputs across
 *   the whole range, against references in double (the bounds are what glibc's expf gave
 *   them too: the roundings around the exponential dominate). */
#include "test_util.h"

#include "../src/ops/vector_math.h"

#include <float.h>
#include <stdint.h>

/* |got - want| in units of the last place of the float nearest to want (a normal float). */
static double ulps(float got, double want) {
    int e;
    frexp(want, &e);
    return fabs((double)got - want) / ldexp(1.0, e - 24);
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_expf_sweep(void) {
    double worst = 0.0, worst_x = 0.0;
    long checked = 0, low_bad = 0;
    for (uint32_t u = 0; u < 0xff800000u; u += 61) { /* every finite float, both signs */
        const float x = from_bits(u);
        if (!(x > -110.0f && x < 89.0f)) continue;
        const double want = exp((double)x);
        const float got = dg__expf(x);
        if (want > FLT_MAX) {
            CHECK_MSG(isinf(got) && got > 0, "e^%.9g = %.9g, expected inf", (double)x, (double)got);
            continue;
        }
        if (want < FLT_MIN) { /* subnormal or zero: within one smallest normal of the truth */
            if (!(got >= 0.0f && fabs((double)got - want) <= FLT_MIN)) low_bad++;
            continue;
        }
        const double err = ulps(got, want);
        checked++;
        if (err > worst) {
            worst = err;
            worst_x = x;
        }
    }
    CHECK_MSG(checked > 10000000, "only %ld normal results checked", checked);
    CHECK_MSG(worst <= 1.0, "max error %.3f ulp at x = %.9g", worst, worst_x);
    CHECK_MSG(low_bad == 0, "%ld results below FLT_MIN too far from e^x", low_bad);
    printf("dg__expf: %ld normal results, max error %.3f ulp (at x = %.9g)\n", checked, worst,
           worst_x);

    CHECK(dg__expf(0.0f) == 1.0f);
    CHECK(dg__expf(-0.0f) == 1.0f);
    CHECK(isinf(dg__expf(INFINITY)) && dg__expf(INFINITY) > 0);
    CHECK(dg__expf(-INFINITY) == 0.0f);
    CHECK(isinf(dg__expf(1e30f)) && dg__expf(-1e30f) == 0.0f);
    CHECK(isnan(dg__expf(NAN)));
    CHECK(dg__expf(88.72f) < INFINITY && dg__expf(88.73f) == INFINITY); /* ln FLT_MAX = 88.7228 */
}

enum { ROWS = 96, COLS = 700 }; /* 67,200 elements: the ops split among threads */

static float in_range(int64_t i) { /* deterministic values over [-100, 100], a few special */
    if (i == 5) return NAN;
    if (i == 6) return INFINITY;
    if (i == 7) return -INFINITY;
    return -100.0f + 200.0f * (float)((i * 7919) % 65521) / 65521.0f;
}

static void test_ops(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(ROWS, COLS));
    dg_node *labels = dg_input(g, "labels", dg_shape1(ROWS));
    dg_node *ex = dg_exp(g, x), *sg = dg_sigmoid(g, x);
    dg_node *logits = dg_scale(g, dg_input(g, "z", dg_shape2(ROWS, COLS)), 1.0f);
    dg_node *sm = dg_softmax(g, logits), *lsm = dg_log_softmax(g, logits);
    dg_node *ce = dg_cross_entropy_loss(g, logits, labels);
    CHECK_MSG(ex && sg && sm && lsm && ce, "build: %s", dg_graph_error(g));
    if (!(ex && sg && sm && lsm && ce)) {
        dg_graph_free(g);
        return;
    }
    const int64_t n = (int64_t)ROWS * COLS;
    float *xv = malloc(sizeof(float) * n), *zv = malloc(sizeof(float) * n);
    float *out = malloc(sizeof(float) * n), lab[ROWS];
    for (int64_t i = 0; i < n; i++) {
        xv[i] = in_range(i);
        zv[i] = i == 5 || i == 6 || i == 7 ? 0.0f : in_range(i) * (float)(1 + i / COLS % 3);
    }
    for (int r = 0; r < ROWS; r++) lab[r] = (float)(r * 37 % COLS);
    CHECK_OK(dg_feed(x, xv, n));
    CHECK_OK(dg_feed(dg_graph_find(g, "z"), zv, n));
    CHECK_OK(dg_feed(labels, lab, ROWS));

    /* exp: within 1 ulp where e^x is normal; 0 below (runs flush subnormals); inf, NaN */
    CHECK_OK(dg_run(g, ex));
    CHECK_OK(dg_read(ex, out, n));
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double want = exp((double)xv[i]);
        if (isnan(xv[i]))
            CHECK(isnan(out[i]));
        else if (want > FLT_MAX)
            CHECK(isinf(out[i]));
        else if (want < FLT_MIN)
            CHECK_MSG(out[i] >= 0.0f && out[i] <= FLT_MIN, "exp(%g) = %g", xv[i], out[i]);
        else
            worst = fmax(worst, ulps(out[i], want));
    }
    CHECK_MSG(worst <= 1.0, "exp op: max error %.3f ulp", worst);

    /* sigmoid: relative error of a few ulps for both signs, exact limits, NaN */
    CHECK_OK(dg_run(g, sg));
    CHECK_OK(dg_read(sg, out, n));
    worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(xv[i])) {
            CHECK(isnan(out[i]));
            continue;
        }
        const double want = 1.0 / (1.0 + exp(-(double)xv[i]));
        if (want < FLT_MIN) {
            CHECK(out[i] <= FLT_MIN);
            continue;
        }
        worst = fmax(worst, ulps(out[i], want));
    }
    CHECK_MSG(worst <= 3.0, "sigmoid: max error %.3f ulp", worst);

    /* softmax, log_softmax and the loss, row by row against double */
    CHECK_OK(dg_run(g, sm));
    CHECK_OK(dg_read(sm, out, n));
    float *lout = malloc(sizeof(float) * n), loss = 0.0f;
    CHECK_OK(dg_run(g, lsm));
    CHECK_OK(dg_read(lsm, lout, n));
    CHECK_OK(dg_run(g, ce));
    CHECK_OK(dg_read(ce, &loss, 1));
    double worst_p = 0.0, worst_log = 0.0, want_loss = 0.0;
    for (int r = 0; r < ROWS; r++) {
        const float *z = zv + (int64_t)r * COLS;
        double mx = z[0], sum = 0.0;
        for (int j = 1; j < COLS; j++) mx = fmax(mx, z[j]);
        for (int j = 0; j < COLS; j++) sum += exp((double)z[j] - mx);
        for (int j = 0; j < COLS; j++) {
            const double p = exp((double)z[j] - mx) / sum, lp = (double)z[j] - mx - log(sum);
            const float got = out[(int64_t)r * COLS + j];
            if (p >= FLT_MIN)
                worst_p = fmax(worst_p, ulps(got, p));
            else
                CHECK_MSG(got >= 0.0f && got <= FLT_MIN, "softmax %g, expected %g", got, p);
            worst_log = fmax(worst_log, fabs(lout[(int64_t)r * COLS + j] - lp) / (1.0 + fabs(lp)));
        }
        want_loss += mx + log(sum) - z[(int)lab[r]];
    }
    want_loss /= ROWS;
    printf("ops: softmax max error %.3f ulp, log_softmax %.3g relative, loss %.9g (double: %.9g)\n",
           worst_p, worst_log, (double)loss, want_loss);
    /* the float sum of a row's 700 terms dominates (6.8 ulp here with glibc's expf too) */
    CHECK_MSG(worst_p <= 8.0, "softmax: max error %.3f ulp", worst_p);
    CHECK_MSG(worst_log <= 1e-6, "log_softmax: max rel error %.3g", worst_log);
    CHECK_MSG(fabs(loss - want_loss) <= 1e-6 * fabs(want_loss), "cross-entropy %.9g, expected %.9g",
              (double)loss, want_loss);
    free(xv);
    free(zv);
    free(out);
    free(lout);
    dg_graph_free(g);
}

int main(void) {
    test_expf_sweep();
    test_ops();
    return test_summary("test_vector_math");
}
