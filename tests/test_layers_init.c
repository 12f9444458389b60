/* Initialisers: mean, standard deviation and bounds of a large tensor match each
 * distribution's definition from the fans; the same seed gives the same model bit for bit
 * and another seed a different one; bad arguments are rejected. */
#include "test_util.h"

#include <string.h>

#define ROWS 400
#define COLS 300

typedef struct stats {
    double mean, std, lo, hi;
} stats;

static stats measure(const float *d, int64_t n) {
    stats s = {0, 0, INFINITY, -INFINITY};
    for (int64_t i = 0; i < n; i++) {
        s.mean += d[i];
        if (d[i] < s.lo) s.lo = d[i];
        if (d[i] > s.hi) s.hi = d[i];
    }
    s.mean /= (double)n;
    for (int64_t i = 0; i < n; i++) s.std += (d[i] - s.mean) * (d[i] - s.mean);
    s.std = sqrt(s.std / (double)(n - 1));
    return s;
}

/* Uniform U(-l, l): std l / sqrt(3), every value inside, extremes near the bounds.
 * Normal N(0, s): about 0.27% of values beyond 3 s. With 120,000 samples the mean's
 * standard error is ~0.003 of the std, so 2% tolerances are far beyond chance. */
static void check_uniform(const char *what, dg_init init, int64_t fi, int64_t fo, double l) {
    dg_graph *g = dg_graph_new(11);
    dg_node *p = dg_param(g, "p", dg_shape2(ROWS, COLS));
    CHECK_OK(dg_init_fill(p, init, fi, fo));
    stats s = measure(dg_node_data(p), ROWS * COLS);
    CHECK_MSG(fabs(s.mean) < 0.02 * l, "%s mean %g (l %g)", what, s.mean, l);
    CHECK_MSG(fabs(s.std - l / sqrt(3.0)) < 0.02 * l, "%s std %g, want %g", what, s.std,
              l / sqrt(3.0));
    CHECK_MSG(s.lo >= -l && s.hi <= l, "%s range [%g, %g] outside +-%g", what, s.lo, s.hi, l);
    CHECK_MSG(s.lo < -0.99 * l && s.hi > 0.99 * l, "%s range [%g, %g] too narrow", what, s.lo,
              s.hi);
    dg_graph_free(g);
}

static void check_normal(const char *what, dg_init init, int64_t fi, int64_t fo, double mean,
                         double sd) {
    dg_graph *g = dg_graph_new(12);
    dg_node *p = dg_param(g, "p", dg_shape2(ROWS, COLS + 1)); /* odd count: Box-Muller tail */
    CHECK_OK(dg_init_fill(p, init, fi, fo));
    int64_t n = dg_node_numel(p), beyond = 0;
    const float *d = dg_node_data(p);
    stats s = measure(d, n);
    for (int64_t i = 0; i < n; i++) beyond += fabs(d[i] - mean) > 3 * sd;
    CHECK_MSG(fabs(s.mean - mean) < 0.02 * sd, "%s mean %g, want %g", what, s.mean, mean);
    CHECK_MSG(fabs(s.std - sd) < 0.02 * sd, "%s std %g, want %g", what, s.std, sd);
    double frac = (double)beyond / (double)n;
    CHECK_MSG(frac > 0.0015 && frac < 0.004, "%s fraction beyond 3 sd %g, want ~0.0027", what,
              frac);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(d[i])) {
            CHECK_MSG(0, "%s non-finite value at %lld", what, (long long)i);
            break;
        }
    dg_graph_free(g);
}

static void distributions(void) {
    dg_init xu = {DG_INIT_XAVIER_UNIFORM, 0, 0}, hu = {DG_INIT_HE_UNIFORM, 0, 0};
    dg_init xn = {DG_INIT_XAVIER_NORMAL, 0, 0}, hn = {DG_INIT_HE_NORMAL, 0, 0};
    check_uniform("xavier_uniform", xu, 784, 50, sqrt(6.0 / 834.0));
    check_uniform("he_uniform", hu, 784, 50, sqrt(6.0 / 784.0));
    check_normal("xavier_normal", xn, 784, 50, 0.0, sqrt(2.0 / 834.0));
    check_normal("he_normal", hn, 20, 10, 0.0, sqrt(2.0 / 20.0));
    dg_init nr = {DG_INIT_NORMAL, 1.5f, 0.25f};
    check_normal("normal(1.5, 0.25)", nr, 0, 0, 1.5, 0.25);

    dg_graph *g = dg_graph_new(3);
    dg_node *p = dg_param(g, "p", dg_shape2(ROWS, COLS));
    dg_init un = {DG_INIT_UNIFORM, 2.0f, 5.0f};
    CHECK_OK(dg_init_fill(p, un, 0, 0));
    stats s = measure(dg_node_data(p), ROWS * COLS);
    CHECK_NEAR(s.mean, 3.5, 0.02);
    CHECK_NEAR(s.std, 3.0 / sqrt(12.0), 0.02);
    CHECK(s.lo >= 2.0 && s.hi < 5.0);
    dg_init k = {DG_INIT_CONSTANT, 0.75f, 0};
    CHECK_OK(dg_init_fill(p, k, 0, 0));
    s = measure(dg_node_data(p), ROWS * COLS);
    CHECK(s.lo == 0.75 && s.hi == 0.75);
    dg_init z = {DG_INIT_ZEROS, 0, 0};
    CHECK_OK(dg_init_fill(p, z, 0, 0));
    s = measure(dg_node_data(p), ROWS * COLS);
    CHECK(s.lo == 0 && s.hi == 0);
    dg_graph_free(g);
}

/* The dense defaults: He uniform under ReLU, Glorot uniform otherwise, zero bias. */
static void dense_defaults(void) {
    dg_graph *g = dg_graph_new(5);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 600));
    dg_node *h = dg_dense(g, "h", x, 500, DG_ACT_RELU);
    dg_node *o = dg_dense(g, "o", h, 400, DG_ACT_TANH);
    CHECK(h && o);
    dg_node *hw = NULL, *hb = NULL, *ow = NULL;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *n = dg_graph_node(g, i);
        const char *nm = dg_node_name(n);
        if (!nm) continue;
        if (!strcmp(nm, "h/W")) hw = n;
        if (!strcmp(nm, "h/b")) hb = n;
        if (!strcmp(nm, "o/W")) ow = n;
    }
    CHECK(hw && hb && ow);
    if (hw && hb && ow) {
        double l = sqrt(6.0 / 600.0);
        stats s = measure(dg_node_data(hw), dg_node_numel(hw));
        CHECK(s.lo >= -l && s.hi <= l && s.hi > 0.99 * l);
        CHECK_NEAR(s.std, l / sqrt(3.0), 0.02 * l);
        l = sqrt(6.0 / 900.0);
        s = measure(dg_node_data(ow), dg_node_numel(ow));
        CHECK(s.lo >= -l && s.hi <= l && s.hi > 0.99 * l);
        CHECK_NEAR(s.std, l / sqrt(3.0), 0.02 * l);
        s = measure(dg_node_data(hb), dg_node_numel(hb));
        CHECK(s.lo == 0 && s.hi == 0);
    }
    dg_graph_free(g);

    /* custom initialisers through dg_dense_ex */
    g = dg_graph_new(5);
    x = dg_input(g, "x", dg_shape2(2, 3));
    dg_dense_options opt = dg_dense_defaults();
    CHECK(opt.use_bias == 1 && opt.custom_init == 0);
    opt.custom_init = 1;
    opt.weight_init.kind = DG_INIT_CONSTANT;
    opt.weight_init.a = 0.5f;
    opt.bias_init.kind = DG_INIT_CONSTANT;
    opt.bias_init.a = -2.0f;
    CHECK(dg_dense_ex(g, "c", x, 4, DG_ACT_NONE, &opt) != NULL);
    opt.use_bias = 0;
    CHECK(dg_dense_ex(g, "nb", x, 4, DG_ACT_NONE, &opt) != NULL);
    CHECK(dg_param_count(g) == 12 + 4 + 12);
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *n = dg_graph_node(g, i);
        if (dg_node_name(n) && !strcmp(dg_node_name(n), "c/b")) CHECK(dg_node_data(n)[3] == -2.0f);
        if (dg_node_name(n) && !strcmp(dg_node_name(n), "c/W")) CHECK(dg_node_data(n)[7] == 0.5f);
    }
    dg_graph_free(g);
}

/* Builds a small model and copies all parameter values, in creation order, into out. */
static int64_t build_model(uint64_t seed, float *out, int64_t cap) {
    dg_graph *g = dg_graph_new(seed);
    dg_node *x = dg_input(g, "x", dg_shape3(8, 7, 4));
    dg_node *h = dg_flatten(g, NULL, x);
    h = dg_dense(g, NULL, h, 30, DG_ACT_RELU);
    h = dg_dropout(g, NULL, h, 0.5f);
    h = dg_dense(g, NULL, h, 20, DG_ACT_TANH);
    dg_dense_options o = dg_dense_defaults();
    o.custom_init = 1;
    o.weight_init.kind = DG_INIT_HE_NORMAL;
    o.bias_init.kind = DG_INIT_NORMAL;
    o.bias_init.b = 0.1f;
    h = dg_dense_ex(g, NULL, h, 10, DG_ACT_SOFTMAX, &o);
    CHECK(h != NULL);
    int64_t used = 0;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *n = dg_graph_node(g, i);
        if (dg_node_kind_of(n) != DG_PARAM) continue;
        if (used + dg_node_numel(n) > cap) break;
        memcpy(out + used, dg_node_data(n), (size_t)dg_node_numel(n) * sizeof(float));
        used += dg_node_numel(n);
    }
    dg_graph_free(g);
    return used;
}

static void reproducible(void) {
    enum { CAP = 2000 };
    static float a[CAP], b[CAP], c[CAP];
    int64_t na = build_model(42, a, CAP), nb = build_model(42, b, CAP),
            nc = build_model(43, c, CAP);
    int64_t want = 28 * 30 + 30 + 30 * 20 + 20 + 20 * 10 + 10;
    CHECK(na == want && nb == want && nc == want);
    CHECK(memcmp(a, b, (size_t)na * sizeof(float)) == 0);
    int64_t differ = 0;
    for (int64_t i = 0; i < na; i++) differ += a[i] != c[i];
    CHECK_MSG(differ > na / 2, "seed 43 differs from 42 in only %lld of %lld values",
              (long long)differ, (long long)na);
}

static void errors(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *p = dg_param(g, "p", dg_shape2(3, 3));
    dg_init xu = {DG_INIT_XAVIER_UNIFORM, 0, 0}, hn = {DG_INIT_HE_NORMAL, 0, 0};
    CHECK(dg_init_fill(p, xu, 3, 0) == DG_ERR_ARG);
    CHECK(dg_init_fill(p, hn, 0, 3) == DG_ERR_ARG);
    CHECK(strstr(dg_graph_error(g), "fan_in") != NULL);
    dg_init bad = {DG_INIT_UNIFORM, 1.0f, -1.0f};
    CHECK(dg_init_fill(p, bad, 0, 0) == DG_ERR_ARG);
    dg_init neg = {DG_INIT_NORMAL, 0.0f, -1.0f};
    CHECK(dg_init_fill(p, neg, 0, 0) == DG_ERR_ARG);
    dg_init nan = {DG_INIT_CONSTANT, NAN, 0};
    CHECK(dg_init_fill(p, nan, 0, 0) == DG_ERR_ARG);
    dg_init unknown = {(dg_init_kind)99, 0, 0};
    CHECK(dg_init_fill(p, unknown, 1, 1) == DG_ERR_ARG);
    CHECK(dg_init_fill(dg_relu(g, p), xu, 3, 3) == DG_ERR_ARG);
    CHECK(dg_init_fill(NULL, xu, 3, 3) == DG_ERR_NULL);
    dg_graph_free(g);
}

int main(void) {
    distributions();
    dense_defaults();
    reproducible();
    errors();
    return test_summary("test_layers_init");
}
