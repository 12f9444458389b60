/* dg_onnx_load on models written by hand (tests/onnx_pb.h, not dagrad's writer):
 *  - the ops and forms other writers use: Gemm with alpha, beta and transB, Flatten,
 *    Reshape with 0 and -1, Transpose, LogSoftmax on axis 1, Identity, Dropout, Constant
 *    (value, value_float, value_ints), Pow, LeakyRelu's default slope, float_data and
 *    int64_data as well as raw_data, an initializer also listed as an input; values
 *    checked against the formulas, at two batch sizes;
 *  - every kind of rejected model, each with a message naming the node (index, name, op) or
 *    what is wrong, and the graph left exactly as it was;
 *  - every truncation and many corruptions of a valid file fail cleanly or load.
 * Models from PyTorch are in tests/onnx/. */
#include "onnx_pb.h"
#include "test_util.h"

#include <string.h>

static const int64_t D_N3[2] = {-1, 3}, D_N23[3] = {-1, 2, 3}, D_2[1] = {2}, D_N2[2] = {-1, 2};

/* x [N,2,3] -> Flatten -> Gemm(W [2,6] transB, b [2], alpha .5, beta 2) -> LeakyRelu
 *   -> Mul(Constant 3) -> Pow(Constant 2) -> Identity -> Dropout -> LogSoftmax(axis 1) = y
 *   also z = Transpose(Reshape(x, [0, -1, 3]) of [N,2,3] -> [N,3,2]) */
static unsigned char *valid_model(size_t *size) {
    pb_model m = {0};
    static const float w[12] = {1, 0, -1, 2, 0.5f, 0, 0, 1, 1, -1, 0, 3};
    static const float b[2] = {0.25f, -0.5f};
    static const int64_t shape[3] = {0, -1, 3}, w_dims[2] = {2, 6}, s_dims[1] = {3};
    pbm_init(&m, pb_tensor("W", T_FLOAT, 2, w_dims, w, 12, 0)); /* float_data */
    pbm_init(&m, pb_tensor("b", T_FLOAT, 1, D_2, b, 2, 1));     /* raw_data */
    pbm_init(&m, pb_tensor("shape", T_INT64, 1, s_dims, shape, 3, 0));
    pbm_input(&m, pb_value("x", T_FLOAT, 3, D_N23));
    pbm_input(&m, pb_value("W", T_FLOAT, 2, w_dims)); /* IR 3 style: initializers listed */
    pb a[4];
    a[0] = pb_attr_int("axis", 1);
    pbm_node(&m, pb_node("Flatten", "/flat/Flatten", "x", "f", a, 1));
    a[0] = pb_attr_float("alpha", 0.5f);
    a[1] = pb_attr_float("beta", 2.0f);
    a[2] = pb_attr_int("transB", 1);
    pbm_node(&m, pb_node("Gemm", "/fc/Gemm", "f,W,b", "g", a, 3));
    pbm_node(&m, pb_node("LeakyRelu", "/fc/LeakyRelu", "g", "l", NULL, 0));
    a[0] = pb_attr_float("value_float", 3.0f);
    pbm_node(&m, pb_node("Constant", "c3", NULL, "three", a, 1));
    pbm_node(&m, pb_node("Mul", "mul", "l,three", "m", NULL, 0));
    pb two = pb_tensor(NULL, T_FLOAT, 0, NULL, (const float[]){2.0f}, 1, 1);
    a[0] = pb_attr_tensor("value", &two);
    pbm_node(&m, pb_node("Constant", "c2", NULL, "two", a, 1));
    pbm_node(&m, pb_node("Pow", "pow", "m,two", "p", NULL, 0));
    pbm_node(&m, pb_node("Identity", "id", "p", "i", NULL, 0));
    pbm_node(&m, pb_node("Dropout", "drop", "i", "d,mask", NULL, 0));
    a[0] = pb_attr_int("axis", 1);
    pbm_node(&m, pb_node("LogSoftmax", "out/LogSoftmax", "d", "y", a, 1));
    pbm_node(&m, pb_node("Reshape", "r", "x,shape", "rx", NULL, 0));
    a[0] = pb_attr_ints("perm", 3, (const int64_t[]){0, 2, 1});
    pbm_node(&m, pb_node("Transpose", "t", "rx", "z", a, 1));
    pbm_output(&m, pb_value("y", T_FLOAT, 2, D_N2));
    pbm_output(&m, pb_value("z", T_FLOAT, 3, (const int64_t[]){-1, 3, 2}));
    return pbm_finish(&m, size);
}

static void expected(const float *x, int rows, float *y, float *z) {
    static const float w[12] = {1, 0, -1, 2, 0.5f, 0, 0, 1, 1, -1, 0, 3};
    static const float b[2] = {0.25f, -0.5f};
    for (int r = 0; r < rows; r++) {
        float h[2];
        for (int j = 0; j < 2; j++) {
            double s = 0;
            for (int k = 0; k < 6; k++) s += x[r * 6 + k] * w[j * 6 + k];
            float g = 0.5f * (float)s + 2.0f * b[j];
            float l = g > 0 ? g : 0.01f * g;
            h[j] = (3 * l) * (3 * l);
        }
        float mx = h[0] > h[1] ? h[0] : h[1];
        float lse = logf(expf(h[0] - mx) + expf(h[1] - mx));
        for (int j = 0; j < 2; j++) y[r * 2 + j] = h[j] - mx - lse;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++) z[r * 6 + i * 2 + j] = x[r * 6 + j * 3 + i];
    }
}

static void test_valid(void) {
    size_t n;
    unsigned char *file = valid_model(&n);
    dg_graph *g = dg_graph_new(1);
    dg_onnx_model m;
    CHECK_OK(dg_onnx_load_mem(g, file, n, NULL, &m));
    CHECK(m.n_inputs == 1 && m.n_outputs == 2 && m.opset == 13);
    if (m.n_outputs != 2) return;
    CHECK(strcmp(m.output_names[0], "y") == 0 && strcmp(m.output_names[1], "z") == 0);
    CHECK(dg_node_kind_of(dg_graph_find(g, "W")) == DG_PARAM); /* not an input */
    CHECK(dg_graph_find(g, "shape") == NULL);                  /* read while loading */
    CHECK(dg_node_kind_of(dg_graph_find(g, "three")) == DG_CONST);
    CHECK(strcmp(dg_node_scope(dg_graph_find(g, "W")), "fc") == 0); /* from "/fc/Gemm" */
    CHECK(dg_param_count(g) == 14);
    for (int rows = 4; rows >= 1; rows -= 3) {
        float x[24], y[8], z[24];
        for (int i = 0; i < rows * 6; i++) x[i] = test_uniform(-1, 1);
        expected(x, rows, y, z);
        CHECK_OK(dg_feed(m.inputs[0], x, rows * 6));
        CHECK_OK(dg_run_many(g, 2, m.outputs));
        const float *gy = dg_node_data(m.outputs[0]), *gz = dg_node_data(m.outputs[1]);
        CHECK(dg_node_shape(m.outputs[0]).dim[0] == rows);
        for (int i = 0; gy && i < rows * 2; i++) CHECK_NEAR(gy[i], y[i], 1e-4);
        for (int i = 0; gz && i < rows * 6; i++) CHECK(gz[i] == z[i]);
    }
    /* loading the same model again into the same graph: the parameter names clash */
    int count = dg_graph_node_count(g);
    CHECK(dg_onnx_load_mem(g, file, n, NULL, NULL) != DG_OK);
    CHECK_MSG(strstr(dg_graph_error(g), "'W' is already used"), "%s", dg_graph_error(g));
    CHECK(dg_graph_node_count(g) == count);
    dg_onnx_model_free(&m);
    dg_graph_free(g);
    free(file);
}

/* ---- rejected models ---- */

/* A model with input x [N,3], the given node(s), and output named `out`. */
typedef struct bad {
    const char *why;     /* what the case shows */
    const char *message; /* must appear in the error */
    dg_status status;
} bad;

static void expect_failure(const unsigned char *file, size_t n, const bad *b,
                           const dg_onnx_load_options *opts) {
    dg_graph *g = dg_graph_new(1);
    dg_node *before = dg_param(g, "existing", dg_shape1(2));
    dg_scope_push(g, "outer");
    int count = dg_graph_node_count(g);
    dg_onnx_model m = {.n_inputs = 99};
    dg_status s = dg_onnx_load_mem(g, file, n, opts, &m);
    CHECK_MSG(s == b->status, "%s: %s instead of %s (%s)", b->why, dg_status_name(s),
              dg_status_name(b->status), dg_graph_error(g));
    CHECK_MSG(strstr(dg_graph_error(g), b->message), "%s: message '%s' lacks '%s'", b->why,
              dg_graph_error(g), b->message);
    CHECK_MSG(strncmp(dg_graph_error(g), "onnx_load", 9) == 0, "%s", dg_graph_error(g));
    /* nothing left behind: nodes, scopes, outputs; the graph works */
    CHECK(dg_graph_node_count(g) == count && m.n_inputs == 0 && m.outputs == NULL);
    CHECK(dg_scope_current(g) && strcmp(dg_scope_current(g), "outer") == 0);
    dg_node *y = dg_relu(g, before);
    CHECK(y && dg_run(g, y) == DG_OK);
    dg_graph_free(g);
}

/* One node `op` reading x [N,3] (and initializer "k" if given) into y. */
static void one_node(const bad *b, const char *op, const char *name, const char *ins, pb *attrs,
                     int n_attrs, pb *init) {
    pb_model m = {0};
    if (init) pbm_init(&m, *init);
    pbm_input(&m, pb_value("x", T_FLOAT, 2, D_N3));
    pbm_node(&m, pb_node(op, name, ins, "y", attrs, n_attrs));
    pbm_output(&m, pb_value("y", T_FLOAT, -1, NULL));
    size_t n;
    unsigned char *file = pbm_finish(&m, &n);
    expect_failure(file, n, b, NULL);
    free(file);
}

/* One node `op` reading x [N,1,4,4] (and initializer "k" if given) into y. */
static void one_image_node(const bad *b, const char *op, const char *ins, pb *attrs, int n_attrs,
                           pb *init) {
    pb_model m = {0};
    if (init) pbm_init(&m, *init);
    pbm_input(&m, pb_value("x", T_FLOAT, 4, (const int64_t[]){-1, 1, 4, 4}));
    pbm_node(&m, pb_node(op, "n", ins, "y", attrs, n_attrs));
    pbm_output(&m, pb_value("y", T_FLOAT, -1, NULL));
    size_t n;
    unsigned char *file = pbm_finish(&m, &n);
    expect_failure(file, n, b, NULL);
    free(file);
}

static pb attr_string(const char *name, const char *v) {
    pb a = {0};
    pb_str(&a, 1, name);
    pb_str(&a, 4, v);
    pb_int(&a, 20, 3);
    return a;
}

static void test_rejected_cnn(void) {
    pb a[2], t;
    static const int64_t k2[2] = {2, 2};
    a[0] = pb_attr_ints("kernel_shape", 2, k2);
    a[1] = pb_attr_ints("pads", 4, (const int64_t[]){0, 0, 1, 1});
    one_image_node(&(bad){"asymmetric pads", "pads [0,0,1,1] differ before and after an axis",
                          DG_ERR_UNSUPPORTED},
                   "MaxPool", "x", a, 2, NULL);
    a[0] = pb_attr_ints("kernel_shape", 2, k2);
    a[1] = attr_string("auto_pad", "SAME_UPPER");
    one_image_node(
        &(bad){"auto_pad SAME", "auto_pad 'SAME_UPPER' is not supported", DG_ERR_UNSUPPORTED},
        "AveragePool", "x", a, 2, NULL);
    a[0] = pb_attr_ints("kernel_shape", 2, k2);
    a[1] = pb_attr_int("ceil_mode", 1);
    one_image_node(&(bad){"ceil_mode", "ceil_mode 1", DG_ERR_UNSUPPORTED}, "MaxPool", "x", a, 2,
                   NULL);
    a[0] = pb_attr_ints("kernel_shape", 2, k2);
    a[1] = pb_attr_ints("pads", 4, (const int64_t[]){1, 1, 1, 1});
    one_image_node(&(bad){"average without the padding", "count_include_pad 0 with padding",
                          DG_ERR_UNSUPPORTED},
                   "AveragePool", "x", a, 2, NULL);
    t = pb_tensor("k", T_FLOAT, 3, (const int64_t[]){1, 1, 3}, (const float[]){1, 2, 3}, 3, 1);
    one_image_node(&(bad){"a 1-D convolution", "weights of rank 3", DG_ERR_UNSUPPORTED}, "Conv",
                   "x,k", NULL, 0, &t);
    t = pb_tensor("k", T_INT64, 1, (const int64_t[]){8}, (const int64_t[]){0, 0, 1, 1, 0, 0, 1, 1},
                  8, 1);
    one_image_node(
        &(bad){"real padding", "pads[2] is 1: dagrad has no padding op", DG_ERR_UNSUPPORTED}, "Pad",
        "x,k", NULL, 0, &t);
    a[0] = pb_attr_int("training_mode", 1);
    t = pb_tensor("k", T_FLOAT, 1, (const int64_t[]){1}, (const float[]){1}, 1, 1);
    one_image_node(&(bad){"batch norm in training form", "training_mode 1", DG_ERR_UNSUPPORTED},
                   "BatchNormalization", "x,k,k,k,k", a, 1, &t);
    t = pb_tensor("k", T_FLOAT, 1, (const int64_t[]){1}, (const float[]){1}, 1, 1);
    one_image_node(&(bad){"statistics that are also a parameter",
                          "initializer 'k' is read both as a parameter and as running statistics",
                          DG_ERR_UNSUPPORTED},
                   "BatchNormalization", "x,k,k,k,k", NULL, 0, &t);
}

static void test_rejected(void) {
    pb a[2], t;
    one_node(&(bad){"unknown op",
                    "node 0 'conv1' (Einsum): op 'Einsum' is not supported (dagrad "
                    "reads ",
                    DG_ERR_UNSUPPORTED},
             "Einsum", "conv1", "x", NULL, 0, NULL);
    one_node(&(bad){"unknown attribute", "node 0 'r' (Relu): attribute 'bogus' is not supported",
                    DG_ERR_UNSUPPORTED},
             "Relu", "r", "x", (a[0] = pb_attr_int("bogus", 1), a), 1, NULL);
    one_node(&(bad){"attribute of the wrong type", "attribute 'alpha' is INT, expected FLOAT",
                    DG_ERR_FORMAT},
             "LeakyRelu", "lr", "x", (a[0] = pb_attr_int("alpha", 1), a), 1, NULL);
    one_node(&(bad){"softmax over the batch", "axis 0 of a rank-2 input", DG_ERR_UNSUPPORTED},
             "Softmax", "sm", "x", (a[0] = pb_attr_int("axis", 0), a), 1, NULL);
    one_node(&(bad){"missing input", "node 0 'add' (Add): input 1 is missing", DG_ERR_FORMAT},
             "Add", "add", "x", NULL, 0, NULL);
    one_node(&(bad){"undefined value", "input 1 'ghost' is not a graph input, an initializer",
                    DG_ERR_FORMAT},
             "Add", "add", "x,ghost", NULL, 0, NULL);
    t = pb_tensor("k", T_DOUBLE, 1, (const int64_t[]){1}, (const double[]){2.0}, 1, 1);
    one_node(&(bad){"DOUBLE initializer", "tensor 'k' is DOUBLE; dagrad reads FLOAT here",
                    DG_ERR_UNSUPPORTED},
             "Mul", "mul", "x,k", NULL, 0, &t);
    t = pb_tensor("k", T_FLOAT, 1, (const int64_t[]){3}, (const float[]){1, 2}, 2, 1);
    one_node(&(bad){"short raw_data", "raw_data holds 8 bytes for 3 values", DG_ERR_FORMAT}, "Mul",
             "mul", "x,k", NULL, 0, &t);
    t = pb_tensor("k", T_FLOAT, 5, (const int64_t[]){1, 1, 1, 1, 1}, (const float[]){1}, 1, 1);
    one_node(&(bad){"rank-5 initializer", "tensor 'k' has 5 dimensions", DG_ERR_UNSUPPORTED}, "Mul",
             "mul", "x,k", NULL, 0, &t);
    t = pb_tensor("k", T_FLOAT, 2, (const int64_t[]){1 << 30, 1 << 30}, (const float[]){1}, 1, 1);
    one_node(&(bad){"huge claimed initializer", "tensor 'k' has more than 2^40 elements",
                    DG_ERR_UNSUPPORTED},
             "Mul", "mul", "x,k", NULL, 0, &t);
    /* under 2^40 elements, but 12 GB: refused before anything of that size is allocated */
    t = pb_tensor("k", T_FLOAT, 2, (const int64_t[]){3 << 20, 1000}, (const float[]){1}, 1, 1);
    one_node(&(bad){"a tensor larger than its data", "raw_data holds 4 bytes for 3145728000 values",
                    DG_ERR_FORMAT},
             "Mul", "mul", "x,k", NULL, 0, &t);
    t = pb_tensor("k", T_FLOAT, 2, (const int64_t[]){3 << 20, 1000}, (const float[]){1}, 1, 0);
    one_node(&(bad){"float_data shorter than the tensor", "holds 1 values for 3145728000 elements",
                    DG_ERR_FORMAT},
             "Mul", "mul", "x,k", NULL, 0, &t);
    t = pb_tensor("k", T_FLOAT, 1, (const int64_t[]){2}, (const float[]){1, 2}, 2, 1);
    one_node(&(bad){"shapes that do not broadcast", "node 0 'mul' (Mul): mul: ", DG_ERR_SHAPE},
             "Mul", "mul", "x,k", NULL, 0, &t);
    one_node(&(bad){"an exponent computed at run time",
                    "the exponent (input 1, 'x') must be an "
                    "initializer or a Constant",
                    DG_ERR_UNSUPPORTED},
             "Pow", "pow", "x,x", NULL, 0, NULL);
    t = pb_tensor("k", T_INT64, 1, (const int64_t[]){1}, (const int64_t[]){4}, 1, 1);
    one_node(&(bad){"a shape with a wrong count", "cannot reshape [1,3] (3 elements) to [4]",
                    DG_ERR_SHAPE},
             "Reshape", "rs", "x,k", NULL, 0, &t);
    one_node(
        &(bad){"MatMul of 3-D", "only 2-D operands", DG_ERR_UNSUPPORTED}, "MatMul", "mm", "x,k",
        NULL, 0,
        (t = pb_tensor("k", T_FLOAT, 3, (const int64_t[]){1, 3, 1}, (const float[]){1, 2, 3}, 3, 1),
         &t));
    one_node(
        &(bad){"a permutation dagrad lacks", "perm does not swap the last two axes only",
               DG_ERR_UNSUPPORTED},
        "Transpose", "tr", "k", (a[0] = pb_attr_ints("perm", 3, (const int64_t[]){1, 0, 2}), a), 1,
        (t = pb_tensor("k", T_FLOAT, 3, (const int64_t[]){1, 3, 1}, (const float[]){1, 2, 3}, 3, 1),
         &t));
    a[0] = pb_attr_int("value_int", 3);
    a[1] = pb_attr_float("value_float", 3);
    one_node(&(bad){"Constant with two values", "needs exactly one value attribute, has 2",
                    DG_ERR_FORMAT},
             "Constant", "c", NULL, a, 2, NULL);

    /* model-level problems */
    pb_model m = {0};
    size_t n;
    unsigned char *file;
    m.opset = 11;
    pbm_input(&m, pb_value("x", T_FLOAT, 2, D_N3));
    pbm_output(&m, pb_value("x", T_FLOAT, 2, D_N3));
    file = pbm_finish(&m, &n);
    expect_failure(
        file, n,
        &(bad){"old opset", "ai.onnx opset 11 is not supported (13 to 21", DG_ERR_UNSUPPORTED},
        NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_INT64, 2, D_N3));
    pbm_output(&m, pb_value("x", T_FLOAT, 2, D_N3));
    file = pbm_finish(&m, &n);
    expect_failure(file, n,
                   &(bad){"INT64 input", "graph input 'x' is INT64; dagrad computes in FLOAT",
                          DG_ERR_UNSUPPORTED},
                   NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_FLOAT, 2, (const int64_t[]){3, -1}));
    pbm_output(&m, pb_value("x", T_FLOAT, 2, D_N3));
    file = pbm_finish(&m, &n);
    expect_failure(
        file, n, &(bad){"symbolic inner dimension", "dimension 1 is symbolic", DG_ERR_UNSUPPORTED},
        NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_FLOAT, 3, (const int64_t[]){-1, 100000, 100000}));
    pbm_output(&m, pb_value("x", T_FLOAT, 2, D_N3));
    file = pbm_finish(&m, &n);
    expect_failure(
        file, n, &(bad){"an input too large to allocate", "max_input_elements", DG_ERR_UNSUPPORTED},
        NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_FLOAT, 3, (const int64_t[]){-1, 1 << 15, 1}));
    pbm_input(&m, pb_value("z", T_FLOAT, 3, (const int64_t[]){-1, 1, 1 << 15}));
    pbm_node(&m, pb_node("Add", "big", "x,z", "y", NULL, 0));
    pbm_output(&m, pb_value("y", T_FLOAT, -1, NULL));
    file = pbm_finish(&m, &n);
    expect_failure(file, n,
                   &(bad){"a broadcast too large to run",
                          "node 0 'big' (Add): makes a value of 1073741824 elements "
                          "[1,32768,32768]",
                          DG_ERR_UNSUPPORTED},
                   NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_FLOAT, 2, D_N3));
    pbm_node(&m, pb_node("Relu", "a", "x", "y", NULL, 0));
    pbm_node(&m, pb_node("Relu", "b", "x", "y", NULL, 0));
    pbm_output(&m, pb_value("y", T_FLOAT, 2, D_N3));
    file = pbm_finish(&m, &n);
    expect_failure(file, n,
                   &(bad){"a value defined twice",
                          "node 1 'b' (Relu): the value 'y' is "
                          "defined twice",
                          DG_ERR_FORMAT},
                   NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_FLOAT, 2, D_N3));
    pbm_node(&m, pb_node("Dropout", "d", "x", "y,mask", NULL, 0));
    pbm_node(&m, pb_node("Mul", "m", "y,mask", "z", NULL, 0));
    pbm_output(&m, pb_value("z", T_FLOAT, 2, D_N3));
    file = pbm_finish(&m, &n);
    expect_failure(
        file, n,
        &(bad){"a Dropout mask used", "input 1 'mask' is Dropout's mask", DG_ERR_UNSUPPORTED},
        NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_FLOAT, 2, D_N3));
    pbm_output(&m, pb_value("x", T_FLOAT, 2, D_N3));
    pbm_output(&m, pb_value("x", T_FLOAT, 2, D_N3));
    file = pbm_finish(&m, &n);
    expect_failure(
        file, n,
        &(bad){"an output listed twice", "graph output 'x' is listed twice", DG_ERR_FORMAT}, NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_FLOAT, 2, D_N3));
    pbm_output(&m, pb_value("nowhere", T_FLOAT, 2, D_N3));
    file = pbm_finish(&m, &n);
    expect_failure(
        file, n,
        &(bad){"an output nothing computes", "graph output 'nowhere' is not", DG_ERR_FORMAT}, NULL);
    free(file);
    memset(&m, 0, sizeof m);
    pbm_input(&m, pb_value("x", T_FLOAT, 2, D_N3));
    pbm_node(&m, pb_node("Relu", "r", "x", "y", NULL, 0));
    file = pbm_finish(&m, &n);
    expect_failure(file, n, &(bad){"no output", "the graph has no output", DG_ERR_FORMAT}, NULL);
    free(file);

    /* not ONNX at all, and broken protobuf */
    const char *text = "this is not a model";
    expect_failure((const unsigned char *)text, strlen(text),
                   &(bad){"text", "malformed ONNX file: at byte", DG_ERR_FORMAT}, NULL);
    expect_failure((const unsigned char *)"", 0, &(bad){"empty", "holds no graph", DG_ERR_FORMAT},
                   NULL);
    static const unsigned char long_len[] = {0x3a, 0xff, 0xff, 0xff, 0x0f, 0x0a};
    expect_failure(long_len, sizeof long_len,
                   &(bad){"a length past the end", "field 7: length 33554431 runs past the end",
                          DG_ERR_FORMAT},
                   NULL);
    static const unsigned char group[] = {0x0b, 0x0c};
    expect_failure(group, sizeof group,
                   &(bad){"a group", "wire type 3 is not valid", DG_ERR_FORMAT}, NULL);
    dg_graph *g = dg_graph_new(1);
    CHECK(dg_onnx_load(g, "/nonexistent/model.onnx", NULL, NULL) == DG_ERR_IO);
    CHECK(strstr(dg_graph_error(g), "onnx_load '/nonexistent/model.onnx'") != NULL);
    CHECK(dg_onnx_load(NULL, "x", NULL, NULL) == DG_ERR_NULL);
    CHECK(dg_onnx_load_mem(g, NULL, 3, NULL, NULL) == DG_ERR_NULL);
    dg_graph_free(g);
}

/* Every truncation of a valid file, and single-byte corruptions: an error or a model, never
 * a crash (run under AddressSanitizer in CI); a failed load leaves no node. */
static void test_damage(void) {
    size_t n;
    unsigned char *file = valid_model(&n);
    unsigned char *copy = malloc(n);
    int loaded = 0, failed = 0;
    for (size_t cut = 0; cut < n; cut++) {
        dg_graph *g = dg_graph_new(1);
        dg_status s = dg_onnx_load_mem(g, file, cut, NULL, NULL);
        s == DG_OK ? loaded++ : failed++;
        if (s != DG_OK) CHECK(dg_graph_node_count(g) == 0 && dg_graph_error(g)[0]);
        dg_graph_free(g);
    }
    CHECK(failed > 0);
    for (size_t i = 0; i < n; i++) {
        memcpy(copy, file, n);
        copy[i] ^= (unsigned char)(1u << (i % 8)) | 0x80;
        dg_graph *g = dg_graph_new(1);
        dg_status s = dg_onnx_load_mem(g, copy, n, NULL, NULL);
        if (s != DG_OK) CHECK(dg_graph_node_count(g) == 0 && dg_graph_error(g)[0]);
        dg_graph_free(g);
    }
    printf("truncations: %d loaded, %d refused\n", loaded, failed);
    free(copy);
    free(file);
}

int main(void) {
    test_valid();
    test_rejected();
    test_rejected_cnn();
    test_damage();
    return test_summary("test_onnx_import");
}
