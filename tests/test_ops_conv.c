/* conv2d: values against a naive loop over the definition, gradients (first and second)
 * against central differences over strides 1-2, paddings 0-2, dilations 1-2, groups, odd
 * sizes and batches 1 and 3, bitwise identical results for 1-4 threads and across batch
 * sizes of one graph, and the messages of shape errors. */
#include "test_util.h"

#include <string.h>

typedef struct cfg {
    int n, c, h, w, o, kh, kw, s, p, d, groups;
    int bias; /* 1: with a bias [O] */
} cfg;

static dg_conv2d_options opts_of(const cfg *k) {
    dg_conv2d_options o = dg_conv2d_defaults();
    o.stride[0] = o.stride[1] = k->s;
    o.padding[0] = o.padding[1] = k->p;
    o.dilation[0] = o.dilation[1] = k->d;
    o.groups = k->groups;
    return o;
}

static int out_dim(int in, int k, int s, int p, int d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* y[n,o,i,j] = sum over the group's channels and the kernel taps, straight from the
 * definition, in double. */
static void naive_conv(const cfg *k, const float *x, const float *w, const float *bias, double *y) {
    int oh = out_dim(k->h, k->kh, k->s, k->p, k->d), ow = out_dim(k->w, k->kw, k->s, k->p, k->d);
    int cg = k->c / k->groups, og = k->o / k->groups;
    for (int n = 0; n < k->n; n++)
        for (int o = 0; o < k->o; o++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double acc = bias ? bias[o] : 0;
                    int q = o / og;
                    for (int c = 0; c < cg; c++)
                        for (int a = 0; a < k->kh; a++)
                            for (int b = 0; b < k->kw; b++) {
                                int r = i * k->s - k->p + a * k->d, t = j * k->s - k->p + b * k->d;
                                if (r < 0 || r >= k->h || t < 0 || t >= k->w) continue;
                                int ci = q * cg + c;
                                acc += (double)x[((n * k->c + ci) * k->h + r) * k->w + t] *
                                       w[((o * cg + c) * k->kh + a) * k->kw + b];
                            }
                    y[((n * k->o + o) * oh + i) * ow + j] = acc;
                }
}

typedef struct built {
    dg_graph *g;
    dg_node *x, *w, *b, *y;
} built;

static built build(const cfg *k, uint64_t seed) {
    built b;
    b.g = dg_graph_new(seed);
    b.x = dg_input(b.g, "x", dg_shape4(k->n, k->c, k->h, k->w));
    b.w = dg_input(b.g, "w", dg_shape4(k->o, k->c / k->groups, k->kh, k->kw));
    dg_set_requires_grad(b.x, 1);
    dg_set_requires_grad(b.w, 1);
    test_fill(b.x, -1, 1);
    test_fill(b.w, -1, 1);
    b.b = NULL;
    if (k->bias) {
        b.b = dg_input(b.g, "b", dg_shape1(k->o));
        dg_set_requires_grad(b.b, 1);
        test_fill(b.b, -1, 1);
    }
    dg_conv2d_options o = opts_of(k);
    b.y = dg_convolve2d(b.g, b.x, b.w, b.b, &o);
    return b;
}

static void describe(const cfg *k, char *buf, size_t size) {
    snprintf(buf, size, "x[%d,%d,%d,%d] w[%d,%d,%d,%d] s%d p%d d%d g%d%s", k->n, k->c, k->h, k->w,
             k->o, k->c / k->groups, k->kh, k->kw, k->s, k->p, k->d, k->groups,
             k->bias ? " +b" : "");
}

static void check_values(const cfg *k) {
    char what[128];
    describe(k, what, sizeof what);
    built b = build(k, 1);
    CHECK_MSG(b.y != NULL, "%s: %s", what, dg_graph_error(b.g));
    if (!b.y) return dg_graph_free(b.g);
    CHECK_OK(dg_run(b.g, b.y));
    int64_t ny = dg_node_numel(b.y);
    double *ref = malloc((size_t)ny * sizeof *ref);
    naive_conv(k, dg_node_data(b.x), dg_node_data(b.w), b.b ? dg_node_data(b.b) : NULL, ref);
    const float *y = dg_node_data(b.y);
    double worst = 0;
    for (int64_t i = 0; i < ny; i++) worst = fmax(worst, fabs(y[i] - ref[i]));
    CHECK_MSG(worst < 1e-4, "%s: max |y - naive| = %g", what, worst);
    free(ref);
    dg_graph_free(b.g);
}

/* The gradients of sum(y r) are the adjoints applied to r; checked element by element
 * against naive sums over the batch (batches above 8 put several images in a slot, whose
 * partial weight gradients accumulate image after image). An element may be off by its
 * absolute tolerance plus 1e-6 (about 8 float epsilons) times the sum of its terms' sizes:
 * a float sum of n terms can be off by up to n eps times that, and the direct kernels sum an
 * input gradient's 1600 terms (MNIST's conv2) in one chain where im2col/GEMM uses chains of
 * 64 added 25 at a time. */
static void check_grad_values(const cfg *k) {
    char what[128];
    describe(k, what, sizeof what);
    built b = build(k, 7);
    dg_node *r = dg_input(b.g, "r", dg_node_shape(b.y));
    test_fill(r, -1, 1);
    dg_node *leaves[3] = {b.x, b.w, b.b}, *grads[3] = {NULL, NULL, NULL};
    CHECK_OK(dg_gradients(b.g, dg_sum(b.g, dg_mul(b.g, b.y, r)), k->bias ? 3 : 2, leaves, grads));
    CHECK_OK(dg_run_many(b.g, k->bias ? 3 : 2, grads));
    int oh = out_dim(k->h, k->kh, k->s, k->p, k->d), ow = out_dim(k->w, k->kw, k->s, k->p, k->d);
    int cg = k->c / k->groups, og = k->o / k->groups;
    int64_t nx = dg_node_numel(b.x), nw = dg_node_numel(b.w);
    double *dx = calloc((size_t)nx, sizeof *dx), *dw = calloc((size_t)nw, sizeof *dw);
    double *db = calloc((size_t)k->o, sizeof *db);
    double *ax = calloc((size_t)nx, sizeof *ax), *aw = calloc((size_t)nw, sizeof *aw);
    const float *x = dg_node_data(b.x), *w = dg_node_data(b.w), *rv = dg_node_data(r);
    for (int n = 0; n < k->n; n++)
        for (int o = 0; o < k->o; o++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double d = rv[((n * k->o + o) * oh + i) * ow + j];
                    db[o] += d;
                    for (int c = 0; c < cg; c++)
                        for (int a = 0; a < k->kh; a++)
                            for (int e = 0; e < k->kw; e++) {
                                int y = i * k->s - k->p + a * k->d, t = j * k->s - k->p + e * k->d;
                                if (y < 0 || y >= k->h || t < 0 || t >= k->w) continue;
                                int64_t xi = ((n * k->c + o / og * cg + c) * k->h + y) * k->w + t;
                                int64_t wi = ((o * cg + c) * k->kh + a) * k->kw + e;
                                dx[xi] += d * w[wi];
                                dw[wi] += d * x[xi];
                                ax[xi] += fabs(d * w[wi]);
                                aw[wi] += fabs(d * x[xi]);
                            }
                }
    /* each error as a fraction of what it may be */
    double ex = 0, ew = 0, eb = 0;
    for (int64_t i = 0; i < nx; i++)
        ex = fmax(ex, fabs(dg_node_data(grads[0])[i] - dx[i]) / (1e-4 + 1e-6 * ax[i]));
    for (int64_t i = 0; i < nw; i++)
        ew = fmax(ew, fabs(dg_node_data(grads[1])[i] - dw[i]) / (1e-3 + 1e-6 * aw[i]));
    for (int i = 0; k->bias && i < k->o; i++)
        eb = fmax(eb, fabs(dg_node_data(grads[2])[i] - db[i]) / 1e-3);
    CHECK_MSG(ex < 1 && ew < 1 && eb < 1,
              "%s: errors over their tolerances (1 allowed): dx %g, dw %g, db %g", what, ex, ew,
              eb);
    free(dx), free(dw), free(db), free(ax), free(aw);
    dg_graph_free(b.g);
}

/* loss = sum(y^2 r) for random r: not linear in y, so the second derivatives are not zero. */
static dg_node *quad_loss(dg_graph *g, dg_node *y) {
    dg_node *r = dg_input(g, "r", dg_node_shape(y));
    test_fill(r, -1, 1);
    return dg_sum(g, dg_mul(g, dg_mul(g, y, y), r));
}

static void check_report(const char *what, const char *kind, dg_status s,
                         const dg_gradcheck_report *r, dg_graph *g) {
    CHECK_MSG(s == DG_OK, "%s %s: %s", what, kind, dg_graph_error(g));
    CHECK_MSG(r->passed,
              "%s %s: max abs %.3g rel %.3g at leaf %d[%lld]: analytic %.6g numeric %.6g", what,
              kind, r->max_abs_err, r->max_rel_err, r->worst_leaf, (long long)r->worst_index,
              r->worst_analytic, r->worst_numeric);
    CHECK(r->checked > 0);
}

static void check_grads(const cfg *k, int second) {
    char what[128];
    describe(k, what, sizeof what);
    built b = build(k, 2);
    dg_node *loss = quad_loss(b.g, b.y);
    CHECK_MSG(loss != NULL, "%s: %s", what, dg_graph_error(b.g));
    if (!loss) return dg_graph_free(b.g);
    dg_node *leaves[3] = {b.x, b.w, b.b};
    int nl = b.b ? 3 : 2;
    dg_gradcheck_report r;
    dg_status s = dg_gradcheck(b.g, loss, nl, leaves, 1e-2, 2e-3, 2e-3, &r);
    check_report(what, "gradient", s, &r, b.g);
    if (second) {
        /* d/d(x,w) of sum(dL/dx v + dL/dw u): through conv2d_input_grad and _weight_grad */
        dg_node *grads[3];
        CHECK_OK(dg_gradients(b.g, loss, nl, leaves, grads));
        dg_node *v = dg_input(b.g, "v", dg_node_shape(b.x));
        dg_node *u = dg_input(b.g, "u", dg_node_shape(b.w));
        test_fill(v, -1, 1);
        test_fill(u, -1, 1);
        dg_node *gv = dg_add(b.g, dg_sum(b.g, dg_mul(b.g, grads[0], v)),
                             dg_sum(b.g, dg_mul(b.g, grads[1], u)));
        if (b.b) {
            dg_node *t = dg_input(b.g, "t", dg_shape1(k->o));
            test_fill(t, -1, 1);
            gv = dg_add(b.g, gv, dg_sum(b.g, dg_mul(b.g, grads[2], t)));
        }
        s = dg_gradcheck(b.g, gv, nl, leaves, 1e-2, 2e-3, 2e-3, &r);
        check_report(what, "second derivative", s, &r, b.g);
    }
    dg_graph_free(b.g);
}

/* Forward, dx and dw of a convolution big enough to run in parallel, with `threads`: one
 * strided, dilated and grouped (the im2col/GEMM kernels), one with stride 1 and one group
 * (on AVX-512 the direct kernels; 70 outputs, so a partial panel). */
typedef struct thread_case {
    int c, h, w, o, kh, kw, s, p, dw, groups, oh, ow;
} thread_case;

static const thread_case thread_cases[2] = {{6, 19, 17, 10, 3, 3, 2, 1, 2, 2, 10, 15},
                                            {20, 12, 17, 70, 3, 5, 1, 1, 1, 1, 12, 15}};

static void run_threads(int threads, int batch, const thread_case *k, float *out, int64_t *sizes) {
    dg_set_num_threads(threads);
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "x", dg_shape4(DG_BATCH, k->c, k->h, k->w));
    dg_node *w = dg_param(g, "w", dg_shape4(k->o, k->c / k->groups, k->kh, k->kw));
    dg_node *b = dg_param(g, "b", dg_shape1(k->o));
    dg_set_requires_grad(x, 1);
    test_rng_state = 1234567;
    int image = k->c * k->h * k->w;
    float *data = malloc(sizeof(float) * 13 * (size_t)image);
    for (int i = 0; i < 13 * image; i++) data[i] = test_uniform(-1, 1);
    CHECK_OK(dg_feed(x, data, (int64_t)batch * image));
    test_fill(w, -1, 1);
    test_fill(b, -1, 1);
    dg_conv2d_options o = dg_conv2d_defaults();
    o.stride[0] = k->s, o.padding[0] = o.padding[1] = k->p, o.dilation[1] = k->dw;
    o.groups = k->groups;
    dg_node *y = dg_convolve2d(g, x, w, b, &o);
    dg_node *loss = quad_loss(g, dg_reshape(g, y, dg_shape2(-1, k->o * k->oh * k->ow)));
    CHECK_OK(dg_backward(g, loss));
    dg_node *targets[4] = {y, dg_grad(x), dg_grad(w), dg_grad(b)};
    CHECK_OK(dg_run_many(g, 4, targets));
    int64_t off = 0;
    for (int t = 0; t < 4; t++) {
        sizes[t] = dg_node_numel(targets[t]);
        memcpy(out + off, dg_node_data(targets[t]), sizeof(float) * (size_t)sizes[t]);
        off += sizes[t];
    }
    free(data);
    dg_graph_free(g);
    dg_set_num_threads(0);
}

static void check_threads(void) {
    for (int c = 0; c < 2; c++) {
        const thread_case *k = &thread_cases[c];
        size_t cap = 2 * 13 * (size_t)(k->o * k->oh * k->ow) + 13 * (size_t)(k->c * k->h * k->w) +
                     (size_t)(k->o * k->c * k->kh * k->kw + k->o);
        float *ref = malloc(cap * sizeof(float)), *got = malloc(cap * sizeof(float));
        int64_t sr[4], sg[4];
        for (int batch = 1; batch <= 13; batch += 12) {
            run_threads(1, batch, k, ref, sr);
            for (int t = 2; t <= 4; t++) {
                run_threads(t, batch, k, got, sg);
                int64_t total = sr[0] + sr[1] + sr[2] + sr[3];
                CHECK(sg[0] == sr[0] && sg[1] == sr[1] && sg[2] == sr[2] && sg[3] == sr[3]);
                CHECK_MSG(memcmp(ref, got, (size_t)total * sizeof(float)) == 0,
                          "case %d, batch %d: %d threads differ from 1 thread", c, batch, t);
            }
        }
        free(ref);
        free(got);
    }
}

/* One graph with a batch input: each batch size's results equal the same images' results
 * in a graph built for exactly that batch. */
static void check_batch_sizes(void) {
    dg_graph *g = dg_graph_new(4);
    dg_node *x = dg_input(g, "x", dg_shape4(DG_BATCH, 2, 9, 8));
    dg_node *w = dg_param(g, "w", dg_shape4(4, 2, 3, 3));
    test_fill(w, -1, 1);
    dg_node *y = dg_convolve2d(g, x, w, NULL, NULL);
    float data[5 * 2 * 9 * 8];
    for (int i = 0; i < 5 * 2 * 9 * 8; i++) data[i] = test_uniform(-1, 1);
    int batches[3] = {5, 2, 5};
    float first[5 * 4 * 7 * 6];
    for (int t = 0; t < 3; t++) {
        int n = batches[t];
        CHECK_OK(dg_feed(x, data, n * 2 * 9 * 8));
        CHECK_OK(dg_run(g, y));
        CHECK(dg_node_shape(y).dim[0] == n);
        cfg k = {n, 2, 9, 8, 4, 3, 3, 1, 0, 1, 1, 0};
        double ref[5 * 4 * 7 * 6];
        naive_conv(&k, data, dg_node_data(w), NULL, ref);
        double worst = 0;
        for (int i = 0; i < n * 4 * 7 * 6; i++)
            worst = fmax(worst, fabs(dg_node_data(y)[i] - ref[i]));
        CHECK_MSG(worst < 1e-4, "batch %d: max error %g", n, worst);
        if (t == 0) memcpy(first, dg_node_data(y), sizeof first);
        if (t == 2) CHECK(memcmp(first, dg_node_data(y), sizeof first) == 0);
    }
    dg_graph_free(g);
}

static void expect_error(dg_shape xs, dg_shape ws, const dg_conv2d_options *o, dg_status want,
                         const char *message) {
    dg_graph *g = dg_graph_new(5);
    dg_node *x = dg_input(g, "x", xs), *w = dg_input(g, "w", ws);
    int before = dg_graph_node_count(g);
    dg_node *y = dg_convolve2d(g, x, w, NULL, o);
    CHECK(y == NULL);
    CHECK_MSG(dg_graph_status(g) == want, "status %s, want %s", dg_status_name(dg_graph_status(g)),
              dg_status_name(want));
    CHECK_MSG(strstr(dg_graph_error(g), message) != NULL, "message '%s' lacks '%s'",
              dg_graph_error(g), message);
    CHECK(dg_graph_node_count(g) == before);
    dg_graph_free(g);
}

static void check_errors(void) {
    dg_conv2d_options o = dg_conv2d_defaults();
    expect_error(dg_shape4(32, 3, 28, 28), dg_shape4(16, 1, 5, 5), NULL, DG_ERR_SHAPE,
                 "conv2d: 3 input channels but weights expect 1: [32,3,28,28] * [16,1,5,5]");
    expect_error(dg_shape3(3, 28, 28), dg_shape4(16, 1, 5, 5), NULL, DG_ERR_SHAPE,
                 "conv2d: input must be [N,C,H,W] and weights [O,C,KH,KW]: [3,28,28] * [16,1,5,5]");
    expect_error(dg_shape4(2, 1, 4, 4), dg_shape4(3, 1, 5, 5), NULL, DG_ERR_SHAPE,
                 "conv2d: kernel 5x5 (dilation 1x1) is larger than the padded input 4x4 (padding "
                 "0x0): [2,1,4,4] * [3,1,5,5]");
    o.dilation[0] = 2, o.padding[1] = 1;
    expect_error(dg_shape4(2, 1, 8, 3), dg_shape4(3, 1, 5, 3), &o, DG_ERR_SHAPE,
                 "kernel 5x3 (dilation 2x1) is larger than the padded input 8x5 (padding 0x1)");
    o = dg_conv2d_defaults();
    o.stride[1] = 0;
    expect_error(dg_shape4(2, 1, 8, 8), dg_shape4(3, 1, 3, 3), &o, DG_ERR_ARG,
                 "conv2d: stride must be >= 1, got 0 along the width: [2,1,8,8] * [3,1,3,3]");
    o = dg_conv2d_defaults();
    o.padding[0] = -1;
    expect_error(dg_shape4(2, 1, 8, 8), dg_shape4(3, 1, 3, 3), &o, DG_ERR_ARG,
                 "conv2d: padding must be >= 0, got -1 along the height");
    o = dg_conv2d_defaults();
    o.dilation[0] = 0;
    expect_error(dg_shape4(2, 1, 8, 8), dg_shape4(3, 1, 3, 3), &o, DG_ERR_ARG,
                 "dilation must be >= 1, got 0");
    o = dg_conv2d_defaults();
    o.groups = 2;
    expect_error(dg_shape4(2, 3, 8, 8), dg_shape4(4, 1, 3, 3), &o, DG_ERR_ARG,
                 "groups must be >= 1 and divide the 3 input channels and 4 outputs, got 2");
    expect_error(dg_shape4(2, 4, 8, 8), dg_shape4(4, 1, 3, 3), &o, DG_ERR_SHAPE,
                 "4 input channels but weights expect 1 per group x 2 groups: [2,4,8,8] * "
                 "[4,1,3,3]");
    dg_graph *gb = dg_graph_new(6);
    dg_node *xb = dg_input(gb, "x", dg_shape4(2, 1, 5, 5)),
            *wb = dg_input(gb, "w", dg_shape4(4, 1, 3, 3));
    CHECK(dg_convolve2d(gb, xb, wb, dg_input(gb, "b", dg_shape1(5)), NULL) == NULL);
    CHECK_MSG(strstr(dg_graph_error(gb),
                     "conv2d: bias [5] does not match the 4 outputs: [2,1,5,5] * "
                     "[4,1,3,3] + [5]") != NULL,
              "%s", dg_graph_error(gb));
    dg_graph_free(gb);
    /* a NULL input from an earlier failure keeps that failure's message */
    dg_graph *g = dg_graph_new(6);
    dg_node *w = dg_input(g, "w", dg_shape4(1, 1, 1, 1));
    CHECK(dg_convolve2d(g, NULL, w, NULL, NULL) == NULL);
    CHECK(dg_graph_status(g) == DG_ERR_NULL);
    dg_graph_free(g);
}

int main(void) {
    /* values: a spread of geometries, with odd and non-square sizes */
    cfg values[] = {
        {2, 3, 7, 6, 4, 3, 3, 1, 0, 1, 1, 0},
        {1, 1, 28, 28, 6, 5, 5, 1, 2, 1, 1, 1},
        {3, 2, 9, 11, 5, 3, 2, 2, 1, 1, 1, 0},
        {2, 4, 10, 9, 6, 3, 3, 2, 2, 2, 2, 0},
        {3, 3, 5, 5, 2, 1, 1, 1, 0, 1, 1, 0},
        {2, 6, 8, 7, 6, 3, 3, 1, 1, 1, 3, 0},
        {9, 4, 6, 6, 8, 1, 1, 1, 0, 1, 2, 0},
        {2, 2, 7, 7, 3, 1, 1, 2, 1, 1, 1, 0},
        {11, 5, 12, 10, 7, 3, 3, 1, 1, 1, 1, 1},
        {4, 4, 6, 6, 8, 1, 1, 1, 0, 1, 2, 1},
        /* stride 1, one group: the direct forward kernels on AVX-512 (rows split into
         * tiles, outputs past a panel of 32, dilation, 1-channel input as MNIST's conv1) */
        {3, 8, 13, 17, 40, 3, 5, 1, 2, 1, 1, 1},
        {2, 4, 16, 20, 33, 3, 3, 1, 2, 2, 1, 0},
        {2, 1, 28, 28, 32, 5, 5, 1, 2, 1, 1, 1},
        {3, 2, 9, 31, 65, 4, 2, 1, 0, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) check_values(&values[i]);

    /* gradients: strides 1-2, paddings 0-2, dilations 1-2, batches 1 and 3 */
    for (int s = 1; s <= 2; s++)
        for (int p = 0; p <= 2; p++)
            for (int d = 1; d <= 2; d++)
                for (int n = 1; n <= 3; n += 2) {
                    cfg k = {n, 2, 7, 6, 3, 3, 2, s, p, d, 1, (s + p + d + n) % 2};
                    check_grads(&k, 0);
                }
    /* second derivatives, groups, 1x1 kernels, odd sizes; the last two have outputs of 64
     * positions or more and few weights, the thin weight-gradient path */
    cfg second[] = {{2, 1, 9, 9, 3, 3, 3, 1, 1, 1, 1, 1},
                    {2, 2, 10, 8, 4, 3, 3, 1, 1, 1, 2, 0},
                    {2, 2, 5, 6, 3, 3, 3, 1, 1, 1, 1, 1},
                    {1, 4, 7, 5, 4, 2, 3, 2, 2, 2, 2, 0},
                    {3, 3, 4, 5, 3, 1, 1, 1, 0, 1, 1, 0},
                    {2, 2, 6, 6, 2, 1, 1, 2, 1, 1, 2, 1},
                    /* direct forward and weight-gradient kernels (AVX-512) */
                    {2, 4, 6, 7, 32, 3, 2, 1, 1, 1, 1, 1}};
    for (size_t i = 0; i < sizeof second / sizeof second[0]; i++) check_grads(&second[i], 1);

    /* gradient values at batches where slots hold several images: GEMM products (wide
     * weights) and the thin weight-gradient path (few weights, outputs of >= 64 positions) */
    cfg grad_values[] = {{11, 3, 9, 8, 5, 3, 3, 1, 1, 1, 1, 1},
                         {13, 1, 12, 12, 4, 5, 5, 1, 2, 1, 1, 1},
                         {10, 4, 11, 9, 6, 3, 3, 1, 1, 1, 2, 0},
                         {17, 2, 8, 8, 3, 2, 2, 2, 0, 1, 1, 1},
                         {9, 16, 6, 6, 32, 3, 3, 1, 1, 1, 1, 1},
                         /* 23x23 outputs: one image per chunk, so chunks accumulate in a slot */
                         {17, 2, 23, 23, 3, 3, 3, 1, 1, 1, 1, 1},
                         {17, 16, 23, 23, 32, 3, 3, 1, 1, 1, 1, 0},
                         /* direct kernels: MNIST's second convolution; 70 outputs (two
                          * panels, the second partly masked); 7 taps wide; dilation 2 */
                         {9, 32, 14, 14, 64, 5, 5, 1, 0, 1, 1, 1},
                         {10, 8, 12, 11, 70, 3, 5, 1, 1, 1, 1, 1},
                         {3, 4, 9, 12, 80, 2, 7, 1, 2, 1, 1, 0},
                         {5, 6, 11, 13, 48, 3, 3, 1, 2, 2, 1, 1},
                         /* the direct input gradient: 40 channels (panels of 16, 16, 8), rows
                          * of 32 outputs in three chunks read from a zero-padded copy */
                         {4, 40, 8, 9, 12, 3, 3, 1, 1, 1, 1, 1},
                         {3, 18, 6, 31, 8, 3, 4, 1, 2, 1, 1, 0}};
    for (size_t i = 0; i < sizeof grad_values / sizeof grad_values[0]; i++)
        check_grad_values(&grad_values[i]);

    check_threads();
    check_batch_sizes();
    check_errors();
    return test_summary("test_ops_conv");
}
