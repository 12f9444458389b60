/* The dagrad side of the ONNX peer tests (tests/onnx/peers.sh): builds, exports, imports, runs
 * and trains models, exchanging data with ONNX Runtime and PyTorch as .npy files.
 *
 *   onnx_peer data DIR N                 the first N MNIST test images (DIR/test_images.npy
 *                                        [N,28,28]) and the training set's first 10,000
 *                                        images and labels; synthetic digits when the MNIST
 *                                        files ($DG_MNIST_DIR) are missing
 *   onnx_peer export-mlp DIR             the course MLP (784-50-20-10, ReLU, softmax), trained
 *                                        for 300 steps: DIR/mlp.onnx, its outputs on the test
 *                                        images as DIR/mlp.dagrad.<k>.npy
 *   onnx_peer export-cnn DIR             the CNN of examples/mnist_cnn (conv 5x5, batch norm,
 *                                        max pool, twice; dense; dropout), trained for 200
 *                                        steps: DIR/cnn.onnx, DIR/test_images_nchw.npy, its
 *                                        outputs as DIR/cnn.dagrad.<k>.npy (needs conv ops)
 *   onnx_peer export-zoo DIR             one small model per op form: DIR/<name>.onnx,
 *                                        <name>.input.npy, <name>.dagrad.<k>.npy
 *   onnx_peer run MODEL INPUT PREFIX     imports MODEL, runs it on INPUT, writes
 *                                        PREFIX.<k>.npy per output
 *   onnx_peer train MODEL IMAGES LABELS EVAL_IMAGES EVAL_LABELS OUT PREFIX
 *                                        imports MODEL, trains one epoch (Adam 1e-3, batch 32,
 *                                        cross-entropy on output 0), exports OUT, writes its
 *                                        outputs on EVAL_IMAGES as PREFIX.<k>.npy; fails
 *                                        unless the loss on the EVAL set went down
 *   onnx_peer compare A B TOL            fails if the arrays differ in shape or by more than
 *                                        TOL anywhere
 *   onnx_peer features                   prints "cnn" when this build has convolution ops
 * Exit status: 0 done, 1 failed (with a message), 2 usage. */
#include "dagrad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "onnx_peer"

static int fail(dg_graph *g, const char *what) {
    fprintf(stderr, PROG ": %s: %s\n", what, g ? dg_graph_error(g) : dg_last_error());
    return 1;
}

static int write_npy(const char *path, const float *data, dg_shape s) {
    if (dg_npy_write(path, data, s) != DG_OK) return fail(NULL, path);
    return 0;
}

/* ---- data ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float uniform(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0));
}

/* MNIST from $DG_MNIST_DIR, else random "images" with labels from their mean brightness. */
static void get_digits(const char *prefix, int64_t want, dg_dataset *d) {
    const char *dir = getenv("DG_MNIST_DIR");
    if (dir && dg_mnist_load(dir, prefix, d) == DG_OK && d->count >= want) return;
    if (dir) dg_dataset_free(d);
    fprintf(stderr, PROG ": no MNIST '%s' files; using %lld synthetic images\n", prefix,
            (long long)want);
    d->count = want, d->rows = d->cols = 28, d->classes = 10;
    d->images = malloc((size_t)want * 784 * sizeof(float));
    d->labels = malloc((size_t)want * sizeof(float));
    for (int64_t i = 0; i < want; i++) {
        float level = (float)(i % 10) / 10.0f;
        for (int j = 0; j < 784; j++) d->images[i * 784 + j] = level * uniform();
        d->labels[i] = (float)(i % 10);
    }
}

static int cmd_data(const char *dir, int64_t n) {
    dg_dataset test = {0}, train = {0};
    char path[1024];
    get_digits("t10k", n, &test);
    get_digits("train", 10000, &train);
    int rc = 0;
    snprintf(path, sizeof path, "%s/test_images.npy", dir);
    rc |= write_npy(path, test.images, dg_shape3(n, 28, 28));
    snprintf(path, sizeof path, "%s/test_labels.npy", dir);
    rc |= write_npy(path, test.labels, dg_shape1(n));
    snprintf(path, sizeof path, "%s/train_images.npy", dir);
    rc |= write_npy(path, train.images, dg_shape3(10000, 28, 28));
    snprintf(path, sizeof path, "%s/train_labels.npy", dir);
    rc |= write_npy(path, train.labels, dg_shape1(10000));
    dg_dataset_free(&test);
    dg_dataset_free(&train);
    return rc;
}

static int read_npy(const char *path, float **data, dg_shape *s) {
    if (dg_npy_read(path, data, s) != DG_OK) return fail(NULL, path);
    return 0;
}

/* Runs the outputs on `x` (rows of the input), writes PREFIX.<k>.npy. */
static int run_and_write(dg_graph *g, dg_node *in, int n_out, dg_node *const *outs, const float *x,
                         dg_shape xs, const char *prefix) {
    if (dg_feed(in, x, dg_shape_numel(xs)) != DG_OK || dg_run_many(g, n_out, outs) != DG_OK)
        return fail(g, "running the model");
    for (int k = 0; k < n_out; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s.%d.npy", prefix, k);
        if (write_npy(path, dg_node_data(outs[k]), dg_node_shape(outs[k]))) return 1;
    }
    return 0;
}

/* Mean cross-entropy of output 0 (logits or log-probabilities: log_softmax leaves the latter
 * unchanged) over the rows of x, in batches of 1000. */
static int mean_loss(dg_graph *g, dg_node *in, dg_node *labels, dg_node *loss, const float *x,
                     const float *y, int64_t n, int64_t row, double *out) {
    double sum = 0;
    for (int64_t s = 0; s < n; s += 1000) {
        int64_t b = n - s < 1000 ? n - s : 1000;
        if (dg_feed(in, x + s * row, b * row) != DG_OK || dg_feed(labels, y + s, b) != DG_OK ||
            dg_run(g, loss) != DG_OK)
            return fail(g, "evaluating the loss");
        sum += dg_value(loss) * (double)b;
    }
    *out = sum / (double)n;
    return 0;
}

/* ---- the course MLP ---- */

static int cmd_export_mlp(const char *dir) {
    char path[1024];
    float *test, *train, *labels;
    dg_shape ts, trs, ls;
    snprintf(path, sizeof path, "%s/test_images.npy", dir);
    if (read_npy(path, &test, &ts)) return 1;
    snprintf(path, sizeof path, "%s/train_images.npy", dir);
    if (read_npy(path, &train, &trs)) return 1;
    snprintf(path, sizeof path, "%s/train_labels.npy", dir);
    if (read_npy(path, &labels, &ls)) return 1;
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "images", dg_shape3(DG_BATCH, 28, 28));
    dg_node *y = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *h = dg_flatten(g, "flatten", x);
    h = dg_dense(g, "hidden1", h, 50, DG_ACT_RELU);
    h = dg_dense(g, "hidden2", h, 20, DG_ACT_RELU);
    dg_node *logits = dg_dense(g, "output", h, 10, DG_ACT_NONE);
    dg_node *probs = dg_softmax(g, logits);
    dg_node_set_name(logits, "logits");
    dg_node_set_name(probs, "probabilities");
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = dg_optimizer_new(g, dg_cross_entropy_loss(g, logits, y), &cfg);
    if (!opt) return fail(g, "building the MLP");
    for (int step = 0; step < 300; step++) {
        int64_t at = (step * 32) % (trs.dim[0] - 32);
        if (dg_feed(x, train + at * 784, 32 * 784) != DG_OK ||
            dg_feed(y, labels + at, 32) != DG_OK || dg_optimizer_step(opt) != DG_OK)
            return fail(g, "training the MLP");
    }
    dg_node *outs[2] = {probs, logits};
    snprintf(path, sizeof path, "%s/mlp.onnx", dir);
    if (dg_onnx_save(g, path, 1, &x, 2, outs, NULL) != DG_OK) return fail(g, "exporting the MLP");
    snprintf(path, sizeof path, "%s/mlp.dagrad", dir);
    int rc = run_and_write(g, x, 2, outs, test, ts, path);
    printf("exported %s/mlp.onnx (%lld parameters), outputs on %lld test images\n", dir,
           (long long)dg_param_count(g), (long long)ts.dim[0]);
    dg_graph_free(g);
    free(test), free(train), free(labels);
    return rc;
}

#ifdef DG_PEER_HAVE_CNN
static int cmd_export_cnn(const char *dir) {
    char path[1024];
    float *test, *train, *labels;
    dg_shape ts, trs, ls;
    snprintf(path, sizeof path, "%s/test_images.npy", dir);
    if (read_npy(path, &test, &ts)) return 1;
    snprintf(path, sizeof path, "%s/train_images.npy", dir);
    if (read_npy(path, &train, &trs)) return 1;
    snprintf(path, sizeof path, "%s/train_labels.npy", dir);
    if (read_npy(path, &labels, &ls)) return 1;
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "images", dg_shape4(DG_BATCH, 1, 28, 28));
    dg_node *y = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *h = dg_conv2d(g, "conv1", x, 6, 5, 1, 2, DG_ACT_NONE);
    h = dg_max_pool2d(g, "pool1", dg_relu(g, dg_batch_norm(g, "bn1", h, 0.1f, 1e-5f)), 2, 2, 0);
    h = dg_conv2d(g, "conv2", h, 16, 5, 1, 0, DG_ACT_NONE);
    h = dg_max_pool2d(g, "pool2", dg_relu(g, dg_batch_norm(g, "bn2", h, 0.1f, 1e-5f)), 2, 2, 0);
    h = dg_dense(g, "dense", dg_flatten(g, "flatten", h), 64, DG_ACT_RELU);
    dg_node *logits = dg_dense(g, "output", dg_dropout(g, "dropout", h, 0.25f), 10, DG_ACT_NONE);
    dg_node *probs = dg_softmax(g, logits);
    dg_node_set_name(logits, "logits");
    dg_node_set_name(probs, "probabilities");
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = dg_optimizer_new(g, dg_cross_entropy_loss(g, logits, y), &cfg);
    if (!opt) return fail(g, "building the CNN");
    for (int step = 0; step < 200; step++) {
        int64_t at = (step * 32) % (trs.dim[0] - 32);
        if (dg_feed(x, train + at * 784, 32 * 784) != DG_OK ||
            dg_feed(y, labels + at, 32) != DG_OK || dg_optimizer_step(opt) != DG_OK)
            return fail(g, "training the CNN");
    }
    dg_set_training(g, 0); /* the file holds the evaluation form */
    dg_node *outs[2] = {probs, logits};
    snprintf(path, sizeof path, "%s/cnn.onnx", dir);
    if (dg_onnx_save(g, path, 1, &x, 2, outs, NULL) != DG_OK) return fail(g, "exporting the CNN");
    dg_shape nchw = dg_shape4(ts.dim[0], 1, 28, 28);
    snprintf(path, sizeof path, "%s/test_images_nchw.npy", dir);
    int rc = write_npy(path, test, nchw);
    snprintf(path, sizeof path, "%s/cnn.dagrad", dir);
    if (!rc) rc = run_and_write(g, x, 2, outs, test, nchw, path);
    printf("exported %s/cnn.onnx (%lld parameters), outputs on %lld test images\n", dir,
           (long long)dg_param_count(g), (long long)ts.dim[0]);
    dg_graph_free(g);
    free(test), free(train), free(labels);
    return rc;
}
#endif

/* ---- one small model per op form, with random weights and inputs ---- */

static void fill(dg_node *p, float lo, float hi) {
    float *d = dg_node_data(p);
    for (int64_t i = 0; i < dg_node_numel(p); i++) d[i] = lo + (hi - lo) * uniform();
}

static dg_node *param(dg_graph *g, const char *name, dg_shape s) {
    dg_node *p = dg_param(g, name, s);
    if (p) fill(p, -1, 1);
    return p;
}

static int zoo_model(const char *dir, const char *name, dg_graph *g, dg_node *x, dg_node *y) {
    char path[1024];
    if (!y) return fail(g, name);
    float *in = malloc((size_t)dg_node_numel(x) * 7 * sizeof(float)); /* 7 rows */
    dg_shape s = dg_node_shape(x);
    s.dim[0] = 7;
    for (int64_t i = 0; i < dg_shape_numel(s); i++) in[i] = 4 * uniform() - 2;
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    int rc = dg_onnx_save(g, path, 1, &x, 1, &y, NULL) != DG_OK ? fail(g, name) : 0;
    snprintf(path, sizeof path, "%s/%s.input.npy", dir, name);
    if (!rc) rc = write_npy(path, in, s);
    snprintf(path, sizeof path, "%s/%s.dagrad", dir, name);
    dg_set_training(g, 0); /* what the file holds: no dropout */
    if (!rc) rc = run_and_write(g, x, 1, &y, in, s, path);
    free(in);
    dg_graph_free(g);
    return rc;
}

static int cmd_export_zoo(const char *dir) {
    int rc = 0;
    dg_graph *g;
    dg_node *x, *y;
#define ZOO(NAME, SHAPE, EXPR)                                                                     \
    g = dg_graph_new(2);                                                                           \
    x = dg_input(g, "x", SHAPE);                                                                   \
    y = (EXPR);                                                                                    \
    rc |= zoo_model(dir, NAME, g, x, y)
    ZOO("gemm", dg_shape2(DG_BATCH, 6),
        dg_add(g, dg_matmul(g, x, param(g, "w", dg_shape2(6, 4))), param(g, "b", dg_shape1(4))));
    ZOO("gemm_trans", dg_shape2(DG_BATCH, 6),
        dg_add(g, param(g, "b", dg_shape2(1, 4)),
               dg_matmul_t(g, x, param(g, "w", dg_shape2(4, 6)), 0, 1)));
    ZOO("matmul", dg_shape2(DG_BATCH, 5), dg_matmul(g, x, param(g, "w", dg_shape2(5, 3))));
    ZOO("binary", dg_shape3(DG_BATCH, 2, 3),
        dg_div(g,
               dg_sub(g, dg_mul(g, x, param(g, "a", dg_shape1(3))), param(g, "b", dg_shape2(2, 1))),
               dg_shift(g, dg_abs(g, param(g, "c", dg_shape3(1, 2, 3))), 0.5f)));
    ZOO("unary", dg_shape2(DG_BATCH, 8),
        dg_sqrt(g, dg_log(g, dg_shift(g, dg_exp(g, dg_neg(g, dg_scale(g, x, 0.7f))), 1.0f))));
    ZOO("activations", dg_shape2(DG_BATCH, 8),
        dg_tanh(g, dg_sigmoid(g, dg_leaky_relu(g, dg_relu(g, dg_pow(g, x, 3.0f)), 0.3f))));
    ZOO("leaky_relu", dg_shape2(DG_BATCH, 8), dg_leaky_relu(g, x, 0.05f));
    ZOO("softmax", dg_shape3(DG_BATCH, 3, 5), dg_softmax(g, dg_scale(g, x, 3.0f)));
    ZOO("log_softmax", dg_shape2(DG_BATCH, 10), dg_log_softmax(g, dg_scale(g, x, 5.0f)));
    ZOO("reshape_transpose", dg_shape2(DG_BATCH, 12),
        dg_reshape(g, dg_transpose(g, dg_reshape(g, x, dg_shape3(-1, 3, 4))), dg_shape2(-1, 12)));
    ZOO("dropout", dg_shape2(DG_BATCH, 6), dg_relu(g, dg_dropout(g, "drop", x, 0.5f)));
    ZOO("constant", dg_shape2(DG_BATCH, 3),
        dg_mul(g, x, dg_const(g, "k", dg_shape1(3), (const float[]){1.5f, -2.0f, 0.25f}, 0)));
#ifdef DG_PEER_HAVE_CNN
    dg_conv2d_options co = {{2, 1}, {1, 2}, {1, 2}, 2};
    ZOO("conv", dg_shape4(DG_BATCH, 4, 9, 8),
        dg_convolve2d(g, x, param(g, "w", dg_shape4(6, 2, 3, 3)), param(g, "b", dg_shape1(6)),
                      &co));
    ZOO("conv_plain", dg_shape4(DG_BATCH, 3, 7, 7),
        dg_convolve2d(g, x, param(g, "w", dg_shape4(2, 3, 5, 5)), NULL, NULL));
    ZOO("max_pool", dg_shape4(DG_BATCH, 2, 9, 9),
        dg_pool2d_max(g, x, &(dg_pool2d_options){{3, 2}, {2, 1}, {1, 1}, {1, 2}}));
    ZOO("avg_pool", dg_shape4(DG_BATCH, 2, 8, 8),
        dg_pool2d_avg(g, x, &(dg_pool2d_options){{3, 3}, {2, 2}, {1, 1}, {1, 1}}));
    ZOO("global_avg_pool", dg_shape4(DG_BATCH, 3, 5, 4), dg_pool2d_global_avg(g, x));
    ZOO("batch_norm", dg_shape4(DG_BATCH, 3, 4, 4),
        dg_batch_normalize(g, x, param(g, "gamma", dg_shape1(3)), param(g, "beta", dg_shape1(3)),
                           dg_const(g, "mean", dg_shape1(3), (const float[]){0.1f, -0.2f, 0.3f}, 0),
                           dg_const(g, "var", dg_shape1(3), (const float[]){0.5f, 1.5f, 2.0f}, 0),
                           0.1f, 1e-3f));
    ZOO("batch_norm_2d", dg_shape2(DG_BATCH, 5), dg_batch_norm(g, "bn", x, 0.1f, 1e-5f));
#endif
#undef ZOO
    printf("exported the zoo to %s\n", dir);
    return rc;
}

/* ---- import, run, train ---- */

static int load(dg_graph *g, const char *path, dg_onnx_model *m) {
    if (dg_onnx_load(g, path, NULL, m) != DG_OK) return fail(g, "importing");
    if (m->n_inputs != 1) {
        fprintf(stderr, PROG ": %s: expected one input, found %d\n", path, m->n_inputs);
        return 1;
    }
    return 0;
}

static int cmd_run(const char *model, const char *input, const char *prefix) {
    dg_graph *g = dg_graph_new(1);
    dg_onnx_model m;
    float *x;
    dg_shape xs;
    int rc = load(g, model, &m) || read_npy(input, &x, &xs);
    dg_set_training(g, 0); /* inference: batch norm uses its running statistics */
    if (!rc) rc = run_and_write(g, m.inputs[0], m.n_outputs, m.outputs, x, xs, prefix);
    if (!rc) printf("ran %s on %lld rows\n", model, (long long)xs.dim[0]);
    if (!rc) free(x);
    dg_onnx_model_free(&m);
    dg_graph_free(g);
    return rc;
}

static int cmd_train(char **arg) {
    const char *model = arg[0], *out = arg[5], *prefix = arg[6];
    dg_graph *g = dg_graph_new(1);
    dg_onnx_model m;
    float *x, *y, *ex, *ey;
    dg_shape xs, ys, es, eys;
    if (load(g, model, &m) || read_npy(arg[1], &x, &xs) || read_npy(arg[2], &y, &ys) ||
        read_npy(arg[3], &ex, &es) || read_npy(arg[4], &ey, &eys))
        return 1;
    dg_node *in = m.inputs[0], *labels = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *loss = dg_cross_entropy_loss(g, m.outputs[0], labels);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = dg_optimizer_new(g, loss, &cfg);
    if (!opt) return fail(g, "adding the loss and optimizer");
    /* the images take the input's shape per row ([1,28,28] for a CNN) */
    int64_t row = dg_node_numel(in) / dg_node_shape(in).dim[0], n = xs.dim[0], ne = es.dim[0];
    double before, after;
    dg_set_training(g, 0);
    if (mean_loss(g, in, labels, loss, ex, ey, ne, row, &before)) return 1;
    dg_set_training(g, 1);
    for (int64_t s = 0; s + 32 <= n; s += 32)
        if (dg_feed(in, x + s * row, 32 * row) != DG_OK || dg_feed(labels, y + s, 32) != DG_OK ||
            dg_optimizer_step(opt) != DG_OK)
            return fail(g, "training");
    dg_set_training(g, 0);
    if (mean_loss(g, in, labels, loss, ex, ey, ne, row, &after)) return 1;
    printf("one epoch on %lld images: test loss %.4f -> %.4f\n", (long long)n, before, after);
    dg_onnx_save_options o = {.output_names = m.output_names};
    if (dg_onnx_save(g, out, 1, &in, m.n_outputs, m.outputs, &o) != DG_OK)
        return fail(g, "exporting the trained model");
    int rc = run_and_write(g, in, m.n_outputs, m.outputs, ex, dg_shape2(ne, row), prefix);
    if (!rc && !(after < before)) {
        fprintf(stderr, PROG ": training did not lower the loss\n");
        rc = 1;
    }
    free(x), free(y), free(ex), free(ey);
    dg_onnx_model_free(&m);
    dg_graph_free(g);
    return rc;
}

static int cmd_compare(const char *a_path, const char *b_path, double tol) {
    float *a, *b;
    dg_shape sa, sb;
    if (read_npy(a_path, &a, &sa) || read_npy(b_path, &b, &sb)) return 1;
    char s1[64], s2[64];
    if (dg_shape_numel(sa) != dg_shape_numel(sb) || sa.dim[0] != sb.dim[0]) {
        fprintf(stderr, PROG ": %s is %s, %s is %s\n", a_path, dg_shape_str(sa, s1, sizeof s1),
                b_path, dg_shape_str(sb, s2, sizeof s2));
        return 1;
    }
    /* tol absolute up to magnitude 1, relative above: float32 itself resolves a logit of
     * 47 only to 4e-6, and two correct summation orders differ by a few units there */
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < dg_shape_numel(sa); i++) {
        double scale = fmax(1.0, fabs((double)b[i]));
        double d = fabs((double)a[i] - (double)b[i]) / scale;
        if (!(d <= worst)) worst = d, at = i; /* NaN counts as worst */
    }
    int ok = worst <= tol;
    printf("%s %s vs %s: %lld values %s, max |difference| / max(1, |value|) %.3g at %lld "
           "(%.9g vs %.9g), tolerance %.0e\n",
           ok ? "match:" : "MISMATCH:", a_path, b_path, (long long)dg_shape_numel(sa),
           dg_shape_str(sa, s1, sizeof s1), worst, (long long)at, (double)a[at], (double)b[at],
           tol);
    free(a), free(b);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "data") && argc == 4) return cmd_data(argv[2], atoll(argv[3]));
    if (!strcmp(cmd, "export-mlp") && argc == 3) return cmd_export_mlp(argv[2]);
    if (!strcmp(cmd, "export-zoo") && argc == 3) return cmd_export_zoo(argv[2]);
#ifdef DG_PEER_HAVE_CNN
    if (!strcmp(cmd, "export-cnn") && argc == 3) return cmd_export_cnn(argv[2]);
#endif
    if (!strcmp(cmd, "run") && argc == 5) return cmd_run(argv[2], argv[3], argv[4]);
    if (!strcmp(cmd, "train") && argc == 9) return cmd_train(argv + 2);
    if (!strcmp(cmd, "compare") && argc == 5) return cmd_compare(argv[2], argv[3], atof(argv[4]));
    if (!strcmp(cmd, "features") && argc == 2) {
#ifdef DG_PEER_HAVE_CNN
        printf("cnn\n");
#endif
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of tests/onnx/onnx_peer.c\n");
    return 2;
}
