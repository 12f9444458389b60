/* max_pool2d, avg_pool2d and global average pooling: values against naive loops, gradients
 * (first and second) against central differences over kernels 2-5, strides 1-2, paddings
 * 0-2 (at most half the kernel), dilations 1-2, odd sizes and batches 1 and 3; ties go to
 * the first element of the window on every run; NaN propagates; bad geometry is an error
 * naming the numbers. */
#include "test_util.h"

#include <string.h>

typedef struct pcfg {
    int n, c, h, w, k, s, p, d;
} pcfg;

static int out_dim(int in, int k, int s, int p, int d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static dg_pool2d_options popts(const pcfg *k) {
    dg_pool2d_options o = {{k->k, k->k}, {k->s, k->s}, {k->p, k->p}, {k->d, k->d}};
    return o;
}

/* Naive pooling; for max also the winning input index (first in window order). */
static void naive_pool(const pcfg *k, int is_max, const float *x, double *y, int *arg) {
    int oh = out_dim(k->h, k->k, k->s, k->p, k->d), ow = out_dim(k->w, k->k, k->s, k->p, k->d);
    for (int pl = 0; pl < k->n * k->c; pl++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double acc = 0, best = -INFINITY;
                int at = -1;
                for (int a = 0; a < k->k; a++)
                    for (int b = 0; b < k->k; b++) {
                        int r = i * k->s - k->p + a * k->d, t = j * k->s - k->p + b * k->d;
                        if (r < 0 || r >= k->h || t < 0 || t >= k->w) continue;
                        int idx = (pl * k->h + r) * k->w + t;
                        acc += x[idx];
                        if (x[idx] > best) best = x[idx], at = idx;
                    }
                int o = (pl * oh + i) * ow + j;
                y[o] = is_max ? best : acc / (k->k * k->k);
                if (arg) arg[o] = at;
            }
}

/* Fills x with distinct values 0.05 apart in shuffled order: no ties, and no two values
 * closer than the finite-difference step, so max pooling is smooth around the point. */
static void fill_distinct(dg_node *x) {
    int64_t n = dg_node_numel(x);
    float *d = dg_node_data(x);
    for (int64_t i = 0; i < n; i++) d[i] = (float)(i - n / 2) * 0.05f;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(test_uniform(0, 1) * (float)(i + 1)) % (i + 1);
        float t = d[i];
        d[i] = d[j], d[j] = t;
    }
    dg_feed(x, d, n);
}

static dg_node *pool_of(dg_graph *g, dg_node *x, const pcfg *k, int is_max) {
    dg_pool2d_options o = popts(k);
    return is_max ? dg_pool2d_max(g, x, &o) : dg_pool2d_avg(g, x, &o);
}

static void check_values(const pcfg *k, int is_max) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape4(k->n, k->c, k->h, k->w));
    fill_distinct(x);
    dg_node *y = pool_of(g, x, k, is_max);
    CHECK_MSG(y != NULL, "%s", dg_graph_error(g));
    if (!y) return dg_graph_free(g);
    CHECK_OK(dg_run(g, y));
    int64_t ny = dg_node_numel(y);
    double *ref = malloc((size_t)ny * sizeof *ref);
    naive_pool(k, is_max, dg_node_data(x), ref, NULL);
    double worst = 0;
    for (int64_t i = 0; i < ny; i++) worst = fmax(worst, fabs(dg_node_data(y)[i] - ref[i]));
    CHECK_MSG(worst < 1e-5, "%s k%d s%d p%d d%d: max error %g", is_max ? "max" : "avg", k->k, k->s,
              k->p, k->d, worst);
    free(ref);
    dg_graph_free(g);
}

static void check_grads(const pcfg *k, int is_max, int second) {
    dg_graph *g = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape4(k->n, k->c, k->h, k->w));
    dg_set_requires_grad(x, 1);
    fill_distinct(x);
    dg_node *y = pool_of(g, x, k, is_max);
    dg_node *r = dg_input(g, "r", dg_node_shape(y));
    test_fill(r, -1, 1);
    dg_node *loss = dg_sum(g, dg_mul(g, dg_mul(g, y, y), r));
    CHECK_MSG(loss != NULL, "%s", dg_graph_error(g));
    if (!loss) return dg_graph_free(g);
    dg_gradcheck_report rep;
    dg_status s = dg_gradcheck(g, loss, 1, &x, 1e-2, 2e-3, 2e-3, &rep);
    CHECK_MSG(s == DG_OK && rep.passed,
              "%s k%d s%d p%d d%d n%d: %s max abs %.3g at %lld: analytic %.6g numeric %.6g",
              is_max ? "max" : "avg", k->k, k->s, k->p, k->d, k->n, dg_graph_error(g),
              rep.max_abs_err, (long long)rep.worst_index, rep.worst_analytic, rep.worst_numeric);
    if (second) {
        dg_node *gx;
        CHECK_OK(dg_gradients(g, loss, 1, &x, &gx));
        dg_node *v = dg_input(g, "v", dg_node_shape(x));
        test_fill(v, -1, 1);
        dg_node *gv = dg_sum(g, dg_mul(g, gx, v));
        s = dg_gradcheck(g, gv, 1, &x, 1e-2, 2e-3, 2e-3, &rep);
        CHECK_MSG(
            s == DG_OK && rep.passed,
            "%s k%d s%d p%d d%d second derivative: %s max abs %.3g analytic %.6g numeric %.6g",
            is_max ? "max" : "avg", k->k, k->s, k->p, k->d, dg_graph_error(g), rep.max_abs_err,
            rep.worst_analytic, rep.worst_numeric);
    }
    dg_graph_free(g);
}

/* Equal values: the gradient of every window goes to its first element, run after run, and
 * a NaN wins its window. */
static void check_ties(void) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "x", dg_shape4(1, 1, 4, 4));
    dg_set_requires_grad(x, 1);
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = 1.0f;
    v[1] = 2.0f, v[4] = 2.0f; /* window (0,0): 2 at (0,1) and at (1,0) */
    v[10] = NAN;              /* window (1,1) */
    CHECK_OK(dg_feed(x, v, 16));
    dg_pool2d_options o = dg_pool2d_defaults(2);
    dg_node *y = dg_pool2d_max(g, x, &o);
    dg_node *loss = dg_sum(g, y);
    CHECK_OK(dg_backward(g, loss));
    dg_node *dx = dg_grad(x);
    dg_node *targets[2] = {dx, y};
    for (int run = 0; run < 3; run++) {
        CHECK_OK(dg_run_many(g, 2, targets));
        const float *d = dg_node_data(dx);
        float want[16] = {0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0};
        CHECK_MSG(memcmp(d, want, sizeof want) == 0, "run %d: ties not to the first element", run);
        CHECK(dg_node_data(y)[0] == 2.0f && dg_node_data(y)[1] == 1.0f);
        CHECK(isnan(dg_node_data(y)[3]));
    }
    /* four windows in a row (the vectorised path): all equal -> first; equal maxima at
     * (0,1) and (1,0) -> (0,1); a NaN last -> it; two NaNs -> the first */
    dg_graph *g4 = dg_graph_new(3);
    dg_node *x4 = dg_input(g4, "x", dg_shape4(1, 1, 2, 8));
    dg_set_requires_grad(x4, 1);
    float row[16] = {1, 1, 0, 2, 0, 0, NAN, 0, /**/ 1, 1, 2, 0, 0, NAN, 5, NAN};
    CHECK_OK(dg_feed(x4, row, 16));
    dg_node *y4 = dg_pool2d_max(g4, x4, &o);
    CHECK_OK(dg_backward(g4, dg_sum(g4, y4)));
    dg_node *t4[2] = {dg_grad(x4), y4};
    CHECK_OK(dg_run_many(g4, 2, t4));
    float want4[16] = {1, 0, 0, 1, 0, 0, 1, 0, /**/ 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(memcmp(dg_node_data(dg_grad(x4)), want4, sizeof want4) == 0);
    CHECK(dg_node_data(y4)[0] == 1.0f && dg_node_data(y4)[1] == 2.0f);
    CHECK(isnan(dg_node_data(y4)[2]) && isnan(dg_node_data(y4)[3]));
    dg_graph_free(g4);
    /* the generic kernel (3x3 windows, stride 1) breaks ties the same way */
    dg_graph *g3 = dg_graph_new(3);
    dg_node *x3 = dg_input(g3, "x", dg_shape4(1, 1, 3, 3));
    dg_set_requires_grad(x3, 1);
    float same[9] = {0, 5, 0, 5, 0, 0, 0, 0, 5};
    CHECK_OK(dg_feed(x3, same, 9));
    dg_pool2d_options o3 = {{3, 3}, {1, 1}, {0, 0}, {1, 1}};
    dg_node *l3 = dg_sum(g3, dg_pool2d_max(g3, x3, &o3));
    CHECK_OK(dg_backward(g3, l3));
    CHECK_OK(dg_run(g3, dg_grad(x3)));
    CHECK(dg_node_data(dg_grad(x3))[1] == 1.0f && dg_node_data(dg_grad(x3))[3] == 0.0f);
    dg_graph_free(g3);
    dg_graph_free(g);
}

static void check_global(void) {
    dg_graph *g = dg_graph_new(4);
    dg_node *x = dg_input(g, "x", dg_shape4(DG_BATCH, 3, 5, 4));
    dg_set_requires_grad(x, 1);
    float data[2 * 3 * 5 * 4];
    for (int i = 0; i < 2 * 3 * 5 * 4; i++) data[i] = test_uniform(-1, 1);
    CHECK_OK(dg_feed(x, data, 2 * 3 * 5 * 4));
    dg_node *y = dg_pool2d_global_avg(g, x);
    CHECK(y != NULL && dg_node_shape(y).ndim == 2 && dg_node_shape(y).dim[1] == 3);
    CHECK_OK(dg_run(g, y));
    for (int nc = 0; nc < 6; nc++) {
        double s = 0;
        for (int i = 0; i < 20; i++) s += data[nc * 20 + i];
        CHECK_NEAR(dg_node_data(y)[nc], s / 20, 1e-6);
    }
    dg_node *r = dg_input(g, "r", dg_shape1(3));
    test_fill(r, -1, 1);
    dg_node *loss = dg_sum(g, dg_mul(g, dg_mul(g, y, y), r));
    dg_gradcheck_report rep;
    CHECK_OK(dg_gradcheck(g, loss, 1, &x, 1e-2, 1e-3, 2e-3, &rep));
    CHECK(rep.passed && rep.checked == 120);
    CHECK(dg_pool2d_global_avg(g, dg_input(g, "v", dg_shape2(3, 4))) == NULL);
    CHECK(strstr(dg_graph_error(g), "global_avg_pool2d: input must be [N,C,H,W], got [3,4]"));
    dg_graph_free(g);
}

static void expect_error(int is_max, dg_shape xs, dg_pool2d_options o, const char *message) {
    dg_graph *g = dg_graph_new(5);
    dg_node *x = dg_input(g, "x", xs);
    CHECK((is_max ? dg_pool2d_max(g, x, &o) : dg_pool2d_avg(g, x, &o)) == NULL);
    CHECK_MSG(strstr(dg_graph_error(g), message) != NULL, "message '%s' lacks '%s'",
              dg_graph_error(g), message);
    dg_graph_free(g);
}

static void check_errors(void) {
    dg_pool2d_options o = dg_pool2d_defaults(2);
    expect_error(1, dg_shape3(1, 4, 4), o, "max_pool2d: input must be [N,C,H,W], got [1,4,4]");
    o.stride[0] = 0;
    expect_error(1, dg_shape4(1, 1, 4, 4), o,
                 "max_pool2d: kernel, stride and dilation must be >= 1 and padding >= 0, got "
                 "kernel 2, stride 0, padding 0, dilation 1 along the height (input [1,1,4,4])");
    o = dg_pool2d_defaults(2);
    o.padding[1] = -1;
    expect_error(0, dg_shape4(1, 1, 4, 4), o, "avg_pool2d: kernel, stride and dilation");
    o = dg_pool2d_defaults(3);
    o.padding[0] = 2;
    expect_error(0, dg_shape4(1, 1, 4, 4), o,
                 "avg_pool2d: padding 2 is more than half the kernel 3 along the height");
    o = dg_pool2d_defaults(5);
    expect_error(1, dg_shape4(2, 3, 4, 6), o,
                 "max_pool2d: kernel 5x5 (dilation 1x1) is larger than the padded input 4x6 "
                 "(padding 0x0): input [2,3,4,6]");
    dg_graph *g = dg_graph_new(6);
    CHECK(dg_pool2d_max(g, dg_input(g, "x", dg_shape4(1, 1, 2, 2)), NULL) == NULL);
    CHECK(dg_graph_status(g) == DG_ERR_NULL);
    dg_graph_free(g);
}

int main(void) {
    pcfg values[] = {{2, 3, 8, 8, 2, 2, 0, 1}, {1, 2, 7, 9, 3, 2, 1, 1}, {3, 1, 9, 7, 3, 1, 1, 2},
                     {2, 2, 5, 6, 2, 1, 1, 1}, {1, 1, 6, 6, 1, 2, 0, 1}, {2, 2, 28, 28, 2, 2, 0, 1},
                     {1, 2, 7, 7, 2, 2, 0, 1}, {2, 3, 9, 37, 2, 2, 0, 1}};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        for (int m = 0; m < 2; m++) check_values(&values[i], m);
    for (int m = 0; m < 2; m++)
        for (int k = 2; k <= 3; k++)
            for (int s = 1; s <= 2; s++)
                for (int p = 0; p <= 1; p++)
                    for (int d = 1; d <= 2; d++)
                        for (int n = 1; n <= 3; n += 2) {
                            pcfg c = {n, 2, 7, 6, k, s, p, d};
                            check_grads(&c, m, 0);
                        }
    /* padding 2 needs a kernel of at least 4 */
    for (int m = 0; m < 2; m++)
        for (int s = 1; s <= 2; s++)
            for (int n = 1; n <= 3; n += 2) {
                pcfg c = {n, 2, 7, 6, 5, s, 2, 1};
                check_grads(&c, m, 0);
            }
    /* 2x2 windows over rows of 18 windows and an odd width (16 + 2 in the AVX-512 path) */
    pcfg wide = {1, 2, 5, 37, 2, 2, 0, 1};
    check_grads(&wide, 1, 0);
    pcfg second[] = {{2, 2, 6, 6, 2, 2, 0, 1}, {1, 2, 7, 5, 3, 2, 1, 2}};
    for (int i = 0; i < 2; i++)
        for (int m = 0; m < 2; m++) check_grads(&second[i], m, 1);
    check_ties();
    check_global();
    check_errors();
    return test_summary("test_ops_pool");
}
