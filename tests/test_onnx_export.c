/* dg_onnx_save: what is written and what is refused.
 *  - the course MLP with dropout: Gemm per dense layer, dropout left out, names kept, the
 *    batch symbolic; the model read back computes the same values bit for bit, at two batch
 *    sizes, and writes the same bytes again (export -> import -> export);
 *  - every op with an ONNX form, in one graph, round trips the same way;
 *  - errors: an op without an ONNX form, an input the outputs need but that is not
 *    exported, bad node lists and options; nothing is written then;
 *  - a custom op with its own exporter, in its own domain;
 *  - the training mode does not change the file.
 * Other runtimes reading these files are tested by tests/onnx/ (ONNX Runtime, the ONNX
 * checker, PyTorch). */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <string.h>
#include <unistd.h>

static int contains(const void *hay, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp((const char *)hay + i, needle, k) == 0) return 1;
    return 0;
}

/* Saves outputs of g, loads them into a fresh graph, saves again: both files must be equal.
 * Returns the first file (malloc'd) and the reloaded graph with its model. */
static void *round_trip(dg_graph *g, int n_in, dg_node *const *in, int n_out, dg_node *const *out,
                        size_t *size, dg_graph **g2, dg_onnx_model *m) {
    void *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(dg_onnx_save_mem(g, n_in, in, n_out, out, NULL, &a, &na));
    *g2 = dg_graph_new(7);
    CHECK_OK(dg_onnx_load_mem(*g2, a, na, NULL, m));
    CHECK_MSG(dg_graph_status(*g2) == DG_OK, "%s", dg_graph_error(*g2));
    dg_onnx_save_options o = {.output_names = m->output_names};
    CHECK_OK(dg_onnx_save_mem(*g2, m->n_inputs, m->inputs, m->n_outputs, m->outputs, &o, &b, &nb));
    CHECK_MSG(na == nb && a && b && memcmp(a, b, na) == 0,
              "export -> import -> export: %zu vs %zu bytes", na, nb);
    free(b);
    *size = na;
    return a;
}

/* Runs `a` in g and `b` in g2 on the same inputs (x/x2 fed `rows` rows of data); equal bits. */
static void same_values(dg_node *x, dg_node *x2, dg_node *a, dg_node *b, const float *data,
                        int64_t n) {
    CHECK_OK(dg_feed(x, data, n));
    CHECK_OK(dg_feed(x2, data, n));
    CHECK_OK(dg_run(dg_node_graph(a), a));
    CHECK_OK(dg_run(dg_node_graph(b), b));
    CHECK(dg_shape_equal(dg_node_shape(a), dg_node_shape(b)));
    const float *va = dg_node_data(a), *vb = dg_node_data(b);
    CHECK(va && vb && memcmp(va, vb, (size_t)dg_node_numel(a) * sizeof *va) == 0);
}

static void test_mlp(void) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "images", dg_shape3(DG_BATCH, 28, 28));
    dg_node *h = dg_flatten(g, "flatten", x);
    h = dg_dense(g, "hidden1", h, 50, DG_ACT_RELU);
    h = dg_dropout(g, "dropout1", h, 0.5f);
    h = dg_dense(g, "hidden2", h, 20, DG_ACT_RELU);
    dg_node *logits = dg_dense(g, "output", h, 10, DG_ACT_NONE);
    dg_node *probs = dg_softmax(g, logits);
    dg_node_set_name(logits, "logits");
    dg_node_set_name(probs, "probabilities");
    dg_node *labels = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *loss = dg_cross_entropy_loss(g, logits, labels);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    CHECK(dg_optimizer_new(g, loss, &cfg) != NULL); /* training nodes are not exported */
    dg_set_training(g, 1);

    size_t n;
    dg_graph *g2;
    dg_onnx_model m;
    void *file = round_trip(g, 1, &x, 1, &probs, &n, &g2, &m);
    CHECK(file && n > 40480 * 4);
    /* names kept, one Gemm per layer, no dropout, the batch symbolic */
    CHECK(contains(file, n, "images") && contains(file, n, "probabilities"));
    CHECK(contains(file, n, "hidden1/W") && contains(file, n, "output/b"));
    CHECK(contains(file, n, "Gemm") && !contains(file, n, "MatMul"));
    CHECK(!contains(file, n, "dropout") && !contains(file, n, "Dropout"));
    CHECK(contains(file, n, "Softmax") && contains(file, n, "Reshape"));
    CHECK(m.n_inputs == 1 && m.n_outputs == 1 && m.opset == 13 && m.ir_version == 7);
    CHECK(strcmp(dg_node_name(m.inputs[0]), "images") == 0);
    CHECK(strcmp(dg_node_name(m.outputs[0]), "probabilities") == 0);
    CHECK(dg_param_count(g2) == 784 * 50 + 50 + 50 * 20 + 20 + 20 * 10 + 10);
    dg_node *w = dg_graph_find(g2, "hidden2/W");
    CHECK(w && dg_node_kind_of(w) == DG_PARAM && dg_node_requires_grad(w));
    CHECK(w && strcmp(dg_node_scope(w), "hidden2") == 0);

    /* the same values, bit for bit, at two batch sizes, dropout on in g (the exported graph
     * has none: compare with evaluation mode) */
    dg_set_training(g, 0);
    float data[7 * 784];
    for (int i = 0; i < 7 * 784; i++) data[i] = test_uniform(0, 1);
    same_values(x, m.inputs[0], probs, m.outputs[0], data, 7 * 784);
    same_values(x, m.inputs[0], probs, m.outputs[0], data, 3 * 784);

    /* the training mode does not change the file */
    void *again = NULL;
    size_t n2 = 0;
    CHECK_OK(dg_onnx_save_mem(g, 1, &x, 1, &probs, NULL, &again, &n2));
    CHECK(n2 == n && memcmp(again, file, n) == 0);
    free(again);
    free(file);

    /* a file on disk holds the same bytes */
    char path[] = "/tmp/dg_onnx_export_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(dg_onnx_save(g, path, 1, &x, 1, &probs, NULL));
    dg_graph *g3 = dg_graph_new(1);
    CHECK_OK(dg_onnx_load(g3, path, NULL, NULL));
    CHECK(dg_param_count(g3) == dg_param_count(g2));
    dg_graph_free(g3);
    unlink(path);

    /* errors: an output needing an input that is not exported; nothing written */
    CHECK(dg_onnx_save(g, path, 1, &x, 1, &loss, NULL) != DG_OK);
    CHECK_MSG(strstr(dg_graph_error(g), "'labels'") || strstr(dg_graph_error(g), "no ONNX form"),
              "%s", dg_graph_error(g));
    CHECK(access(path, F_OK) != 0);
    dg_node *both[2] = {x, labels};
    CHECK(dg_onnx_save(g, path, 2, both, 1, &loss, NULL) == DG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dg_graph_error(g), "(cross_entropy_loss) has no ONNX form"), "%s",
              dg_graph_error(g));
    CHECK(access(path, F_OK) != 0);
    dg_node *need_labels[1] = {dg_one_hot(g, labels, 10)};
    CHECK(dg_onnx_save(g, path, 1, &x, 1, need_labels, NULL) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "depend on node") && strstr(dg_graph_error(g), "'labels'"),
              "%s", dg_graph_error(g));
    void *p = (void *)1;
    size_t sz = 1;
    CHECK(dg_onnx_save_mem(g, 1, &x, 0, NULL, NULL, &p, &sz) == DG_ERR_ARG);
    CHECK(p == NULL && sz == 0);
    dg_node *dup[2] = {x, x};
    CHECK(dg_onnx_save_mem(g, 2, dup, 1, &probs, NULL, &p, &sz) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "twice as an input"), "%s", dg_graph_error(g));
    const char *taken[1] = {"hidden1/W"};
    dg_onnx_save_options clash = {.output_names = taken};
    CHECK(dg_onnx_save_mem(g, 1, &x, 1, &probs, &clash, &p, &sz) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "output name 'hidden1/W' is already"), "%s",
              dg_graph_error(g));
    dg_node *other = dg_input(g2, "z", dg_shape1(2));
    CHECK(dg_onnx_save_mem(g, 1, &other, 1, &probs, NULL, &p, &sz) == DG_ERR_GRAPH);
    dg_onnx_save_options bad = {.opset = 12};
    CHECK(dg_onnx_save_mem(g, 1, &x, 1, &probs, &bad, &p, &sz) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "opset 12"), "%s", dg_graph_error(g));
    CHECK(dg_onnx_save(NULL, path, 1, &x, 1, &probs, NULL) == DG_ERR_NULL);
    CHECK(dg_onnx_save(g, NULL, 1, &x, 1, &probs, NULL) == DG_ERR_NULL);

    /* a later opset: the same graph, the IR version that goes with it */
    dg_onnx_save_options o17 = {.opset = 17, .graph_name = "mlp", .batch_name = "batch"};
    CHECK_OK(dg_onnx_save_mem(g, 1, &x, 1, &probs, &o17, &p, &sz));
    CHECK(contains(p, sz, "batch") && contains(p, sz, "mlp"));
    dg_graph *g4 = dg_graph_new(1);
    dg_onnx_model m4;
    CHECK_OK(dg_onnx_load_mem(g4, p, sz, NULL, &m4));
    CHECK(m4.opset == 17 && m4.ir_version == 8);
    dg_onnx_model_free(&m4);
    dg_graph_free(g4);
    free(p);

    dg_onnx_model_free(&m);
    dg_graph_free(g2);
    dg_graph_free(g);
}

/* Every op with an ONNX form, and outputs that are an input, a parameter and a dropout. */
static void test_all_ops(void) {
    dg_graph *g = dg_graph_new(5);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, 6));
    dg_node *w = dg_param(g, "w", dg_shape2(4, 6));
    dg_node *v = dg_param(g, "v", dg_shape2(6, 3));
    dg_node *c = dg_const(g, "c", dg_shape1(6), (const float[]){1, 2, 3, 4, 5, 6}, 0);
    test_fill(w, -1, 1);
    test_fill(v, -1, 1);
    dg_node *a = dg_matmul_t(g, x, w, 0, 1); /* Gemm transB, no bias */
    dg_node *u = dg_param(g, "u", dg_shape1(12));
    test_fill(u, -1, 1);
    dg_node *u43 = dg_reshape(g, u, dg_shape2(4, -1));
    dg_node *bt = dg_matmul_t(g, w, u43, 1, 0); /* Gemm transA: [6,3] */
    a = dg_sub(g, dg_mul(g, a, dg_scalar(g, 0.5f)), dg_div(g, a, dg_shift(g, dg_abs(g, a), 1)));
    a = dg_leaky_relu(g, dg_neg(g, a), 0.2f);
    dg_node *e = dg_log(g, dg_shift(g, dg_exp(g, dg_scale(g, x, 0.3f)), 2.0f));
    e = dg_add(g, dg_sqrt(g, dg_pow(g, e, 2.0f)), c);
    dg_node *t = dg_transpose(g, dg_reshape(g, dg_tanh(g, e), dg_shape3(-1, 2, 3)));
    dg_node *s = dg_sigmoid(g, dg_reshape(g, t, dg_shape2(-1, 6)));
    dg_node *mm = dg_add(g, dg_matmul(g, s, bt), dg_param(g, "bias", dg_shape2(1, 3)));
    dg_node *ls = dg_log_softmax(g, dg_relu(g, dg_add(g, mm, dg_matmul(g, a, u43))));
    dg_node *drop = dg_dropout(g, "drop", ls, 0.1f);
    dg_node_set_name(drop, "dropped");
    dg_node *outs[5] = {ls, x, v, drop, dg_matmul(g, x, v)}; /* MatMul */
    size_t n;
    dg_graph *g2;
    dg_onnx_model m;
    void *file = round_trip(g, 1, &x, 5, outs, &n, &g2, &m);
    const char *types[] = {"Gemm",       "MatMul",    "Sub",       "Mul",     "Div",     "Add",
                           "Abs",        "LeakyRelu", "Neg",       "Log",     "Exp",     "Sqrt",
                           "Pow",        "Tanh",      "Transpose", "Reshape", "Sigmoid", "Relu",
                           "LogSoftmax", "Identity",  "Constant"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        CHECK_MSG(contains(file, n, types[i]), "no %s", types[i]);
    CHECK_MSG(m.n_outputs == 5, "%s", dg_graph_error(g));
    if (m.n_outputs != 5) return;
    dg_set_training(g, 0);
    float data[5 * 6];
    for (int i = 0; i < 30; i++) data[i] = test_uniform(-2, 2);
    for (int k = 0; k < 5; k++) same_values(x, m.inputs[0], outs[k], m.outputs[k], data, 30);
    free(file);
    dg_onnx_model_free(&m);
    dg_graph_free(g2);
    dg_graph_free(g);
}

/* A custom op with its own exporter: y = x * alpha, written as com.example:Scaled. */
typedef struct scaled_attrs {
    float alpha;
} scaled_attrs;
static dg_status scaled_forward(dg_node *self) {
    const float *x = dg_node_data(dg_node_input(self, 0));
    float *y = dg_node_data(self), k = ((scaled_attrs *)dg_node_attrs(self))->alpha;
    for (int64_t i = 0; i < dg_node_numel(self); i++) y[i] = k * x[i];
    return DG_OK;
}
static const dg_op_def scaled_op = {
    .name = "scaled", .n_inputs = 1, .infer_shape = dg_rule_same_shape, .forward = scaled_forward};
static dg_status export_scaled(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    int *calls = ctx;
    (*calls)++;
    const char *in = dg_onnx_name(w, dg_node_input(n, 0));
    dg_status s = dg_onnx_add_node(w, "Scaled", 1, &in, NULL);
    if (s == DG_OK) s = dg_onnx_set_domain(w, "com.example", 1);
    if (s == DG_OK) s = dg_onnx_attr_float(w, "alpha", ((scaled_attrs *)dg_node_attrs(n))->alpha);
    return s;
}
static dg_status export_nothing(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)w, (void)n, (void)ctx;
    return DG_OK;
}

/* A variadic custom op, y = the sum of its inputs, exported as ONNX's Sum. */
static dg_status sum_forward(dg_node *self) {
    float *y = dg_node_data(self);
    for (int64_t j = 0; j < dg_node_numel(self); j++) {
        y[j] = 0;
        for (int i = 0; i < dg_node_input_count(self); i++)
            y[j] += dg_node_data(dg_node_input(self, i))[j];
    }
    return DG_OK;
}
static const dg_op_def sum_op = {.name = "sum_n",
                                 .n_inputs = DG_VARIADIC,
                                 .infer_shape = dg_rule_same_shape,
                                 .forward = sum_forward};
static dg_status export_sum(dg_onnx_writer *w, const dg_node *n, void *ctx) {
    (void)ctx;
    const char *in[64];
    for (int i = 0; i < dg_node_input_count(n); i++) in[i] = dg_onnx_name(w, dg_node_input(n, i));
    return dg_onnx_add_node(w, "Sum", dg_node_input_count(n), in, NULL);
}

static void test_custom(void) {
    /* the same input read 50 times by one node: the exporter follows every read */
    dg_graph *gs = dg_graph_new(1);
    dg_node *xs = dg_input(gs, "x", dg_shape2(DG_BATCH, 2)), *many[50];
    for (int i = 0; i < 50; i++) many[i] = xs;
    dg_node *ys = dg_apply(gs, &sum_op, 50, many, NULL, 0);
    dg_onnx_exporter sum_ex = {&sum_op, export_sum, NULL};
    dg_onnx_save_options so = {.exporters = &sum_ex, .n_exporters = 1};
    void *ps = NULL;
    size_t ns = 0;
    CHECK_OK(dg_onnx_save_mem(gs, 1, &xs, 1, &ys, &so, &ps, &ns));
    CHECK(contains(ps, ns, "Sum"));
    free(ps);
    dg_graph_free(gs);

    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, 3));
    scaled_attrs at = {2.5f};
    dg_node *y = dg_relu(g, dg_apply(g, &scaled_op, 1, &x, &at, sizeof at));
    void *p = NULL;
    size_t n = 0;
    CHECK(dg_onnx_save_mem(g, 1, &x, 1, &y, NULL, &p, &n) == DG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dg_graph_error(g), "(scaled) has no ONNX form"), "%s", dg_graph_error(g));
    int calls = 0;
    dg_onnx_exporter ex = {&scaled_op, export_scaled, &calls};
    dg_onnx_save_options o = {.exporters = &ex, .n_exporters = 1};
    CHECK_OK(dg_onnx_save_mem(g, 1, &x, 1, &y, &o, &p, &n));
    CHECK(calls == 1);
    CHECK(contains(p, n, "Scaled") && contains(p, n, "com.example") && contains(p, n, "alpha"));
    /* the loader reads ai.onnx ops only, and says which op it met */
    dg_graph *g2 = dg_graph_new(1);
    CHECK(dg_onnx_load_mem(g2, p, n, NULL, NULL) == DG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dg_graph_error(g2), "op 'Scaled' of domain 'com.example'"), "%s",
              dg_graph_error(g2));
    CHECK(dg_graph_node_count(g2) == 0);
    dg_graph_free(g2);
    free(p);
    /* an exporter that writes nothing for its node */
    dg_onnx_exporter lazy = {&scaled_op, export_nothing, NULL};
    o.exporters = &lazy;
    CHECK(dg_onnx_save_mem(g, 1, &x, 1, &y, &o, &p, &n) == DG_ERR_STATE);
    CHECK_MSG(strstr(dg_graph_error(g), "wrote no node"), "%s", dg_graph_error(g));
    /* writer calls outside an exporter */
    CHECK(dg_onnx_add_node(NULL, "Relu", 0, NULL, NULL) == DG_ERR_NULL);
    dg_graph_free(g);
}

/* A CNN with every layer of the cnn branch: convolutions (padding, stride, dilation, groups,
 * with and without bias), batch norm in evaluation form, max and average pooling, global
 * average pooling; round trip and values as above, the running statistics as state. */
static void test_cnn(void) {
    dg_graph *g = dg_graph_new(11);
    dg_node *x = dg_input(g, "images", dg_shape4(DG_BATCH, 2, 12, 12));
    dg_node *h = dg_conv2d(g, "conv1", x, 4, 3, 1, 1, DG_ACT_RELU);
    h = dg_batch_norm(g, "bn1", h, 0.1f, 1e-5f);
    h = dg_max_pool2d(g, "pool1", h, 2, 2, 0);
    dg_conv2d_options co = {{2, 1}, {1, 2}, {1, 2}, 2};
    h = dg_conv2d_ex(g, "conv2", h, 6, 3, 3, &co, DG_ACT_LEAKY_RELU, 0);
    h = dg_avg_pool2d(g, "pool2", h, 2, 1, 1);
    h = dg_batch_norm(g, "bn2", h, 0.2f, 1e-3f);
    h = dg_global_avg_pool2d(g, "gap", h);
    dg_node *y = dg_log_softmax(g, dg_dense(g, "fc", h, 5, DG_ACT_NONE));
    CHECK_MSG(y != NULL, "%s", dg_graph_error(g));
    if (!y) return;
    /* running statistics that are not the initial ones: training runs */
    float data[3 * 2 * 144];
    for (int i = 0; i < 3 * 288; i++) data[i] = test_uniform(-1, 1);
    CHECK_OK(dg_feed(x, data, 3 * 288));
    for (int i = 0; i < 3; i++) CHECK_OK(dg_run(g, y));
    size_t n;
    dg_graph *g2;
    dg_onnx_model m;
    void *file = round_trip(g, 1, &x, 1, &y, &n, &g2, &m);
    const char *types[] = {
        "Conv", "BatchNormalization", "MaxPool", "AveragePool", "LeakyRelu", "Gemm", "Reshape"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        CHECK_MSG(contains(file, n, types[i]), "no %s", types[i]);
    CHECK(!contains(file, n, "batch_norm_var")); /* the statistics ops are not exported */
    dg_node *rm = dg_graph_find(g2, "bn1/running_mean");
    CHECK(rm && dg_node_kind_of(rm) == DG_STATE);
    CHECK(dg_param_count(g2) == dg_param_count(g));
    if (m.n_outputs == 1) {
        dg_set_training(g, 0);
        dg_set_training(g2, 0);
        same_values(x, m.inputs[0], y, m.outputs[0], data, 3 * 288);
    }
    /* dilated average pooling is AveragePool from opset 19 on */
    dg_node *d = dg_pool2d_avg(g, x, &(dg_pool2d_options){{2, 2}, {1, 1}, {0, 0}, {2, 2}});
    void *p = NULL;
    size_t sz = 0;
    CHECK(dg_onnx_save_mem(g, 1, &x, 1, &d, NULL, &p, &sz) == DG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dg_graph_error(g), "from opset 19 on"), "%s", dg_graph_error(g));
    dg_onnx_save_options o19 = {.opset = 19};
    CHECK_OK(dg_onnx_save_mem(g, 1, &x, 1, &d, &o19, &p, &sz));
    CHECK(contains(p, sz, "dilations"));
    free(p);
    free(file);
    dg_onnx_model_free(&m);
    dg_graph_free(g2);
    dg_graph_free(g);
}

int main(void) {
    test_mlp();
    test_cnn();
    test_all_ops();
    test_custom();
    return test_summary("test_onnx_export");
}
