/* Bad input to every function of dagrad/layers.h: NULL pointers, nodes of another graph,
 * wrong ranks, out-of-range rates, units and initialiser parameters, unknown enum values,
 * absurd sizes and names. Each call must fail with a status and a message naming the
 * function and the problem, leave the graph as it was, and the graph must still work. */
#include "test_robust_util.h"

#include <stdint.h>
#include <string.h>

static void test_dense(void) {
    dg_graph *g = dg_graph_new(1), *h = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape2(4, 3));
    dg_node *other = dg_input(h, "other", dg_shape2(4, 3));
    int n0;

    CHECK(dg_dense(NULL, "d", x, 2, DG_ACT_NONE) == NULL);
    CHECK_HAS(dg_last_error(), "dense: graph is NULL");
    CHECK(dg_dense(g, "d", NULL, 2, DG_ACT_NONE) == NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "dense: input is NULL");
    CHECK(dg_dense(g, "d", other, 2, DG_ACT_NONE) == NULL);
    EXPECT_ERROR(g, DG_ERR_GRAPH, "dense: input belongs to another graph");
    CHECK(dg_graph_node_count(h) == 1 && dg_graph_status(h) == DG_OK);

    /* ranks other than 2 */
    struct {
        dg_shape s;
        const char *str;
    } ranks[] = {{dg_shape3(2, 3, 4), "got [2,3,4]"},
                 {dg_shape1(3), "got [3]"},
                 {dg_shape0(), "got []"},
                 {dg_shape4(1, 2, 3, 4), "got [1,2,3,4]"}};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        dg_node *bad = dg_input(g, NULL, ranks[i].s);
        n0 = dg_graph_node_count(g);
        CHECK(dg_dense(g, NULL, bad, 2, DG_ACT_RELU) == NULL);
        CHECK(dg_graph_node_count(g) == n0);
        CHECK_HAS(dg_graph_error(g), "flatten it first");
        EXPECT_ERROR(g, DG_ERR_SHAPE, ranks[i].str);
    }

    /* units: zero, negative, absurd (the weight's element count overflows, or is valid but
     * cannot be allocated) */
    const int64_t units[] = {0, -1, INT64_MIN, (int64_t)1 << 62, INT64_MAX, (int64_t)1 << 40};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        n0 = dg_graph_node_count(g);
        CHECK_MSG(dg_dense(g, "big", x, units[i], DG_ACT_NONE) == NULL, "units %lld",
                  (long long)units[i]);
        CHECK(dg_graph_node_count(g) == n0);
        CHECK_MSG(dg_graph_status(g) == (units[i] < 1 ? DG_ERR_ARG : DG_ERR_NOMEM),
                  "units %lld: %s", (long long)units[i], dg_graph_error(g));
        EXPECT_ERROR(g, dg_graph_status(g), "dense");
    }
    CHECK(dg_dense(g, "d", x, 0, DG_ACT_NONE) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "dense: units must be >= 1, got 0");

    /* activation values that are not in the enum */
    const int acts[] = {-1, 6, 99, INT32_MAX};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        n0 = dg_graph_node_count(g);
        CHECK(dg_dense(g, "d", x, 2, (dg_activation)acts[i]) == NULL);
        CHECK(dg_graph_node_count(g) == n0);
        EXPECT_ERROR(g, DG_ERR_ARG, "dense: unknown activation");
    }

    /* names: empty is refused; a name too long for the parameter names is refused rather
     * than truncated into two parameters of the same name */
    CHECK(dg_dense(g, "", x, 2, DG_ACT_NONE) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "dense: layer name is empty");
    char longname[2000];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    n0 = dg_graph_node_count(g);
    CHECK(dg_dense(g, longname, x, 2, DG_ACT_NONE) == NULL);
    CHECK(dg_graph_node_count(g) == n0);
    EXPECT_ERROR(g, DG_ERR_ARG, "dense: layer name");
    /* a name used by an earlier dense layer would give two parameters named "<name>/W" */
    CHECK(dg_dense(g, "twice", x, 2, DG_ACT_NONE) != NULL);
    n0 = dg_graph_node_count(g);
    CHECK(dg_dense(g, "twice", x, 2, DG_ACT_NONE) == NULL);
    CHECK(dg_graph_node_count(g) == n0);
    EXPECT_ERROR(g, DG_ERR_ARG, "dense: a parameter named 'twice/W' already exists");

    /* dg_dense_ex: bad custom initialisers are reported by dense, graph unchanged */
    dg_dense_options o = dg_dense_defaults();
    o.custom_init = 1;
    o.weight_init.kind = (dg_init_kind)42;
    n0 = dg_graph_node_count(g);
    CHECK(dg_dense_ex(g, NULL, x, 2, DG_ACT_NONE, &o) == NULL);
    CHECK(dg_graph_node_count(g) == n0);
    EXPECT_ERROR(g, DG_ERR_ARG, "dense: init_fill: unknown initialiser kind 42");
    o.weight_init.kind = DG_INIT_UNIFORM;
    o.weight_init.a = 1;
    o.weight_init.b = -1;
    CHECK(dg_dense_ex(g, NULL, x, 2, DG_ACT_NONE, &o) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "uniform bounds reversed");
    o.weight_init = (dg_init){DG_INIT_NORMAL, 0, NAN};
    CHECK(dg_dense_ex(g, NULL, x, 2, DG_ACT_NONE, &o) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "must be finite");
    o = dg_dense_defaults();
    o.custom_init = 1;
    o.bias_init = (dg_init){DG_INIT_CONSTANT, INFINITY, 0};
    n0 = dg_graph_node_count(g);
    CHECK(dg_dense_ex(g, NULL, x, 2, DG_ACT_NONE, &o) == NULL);
    CHECK(dg_graph_node_count(g) == n0);
    EXPECT_ERROR(g, DG_ERR_ARG, "dense: init_fill: parameters a=inf");
    CHECK(dg_dense_ex(NULL, NULL, x, 2, DG_ACT_NONE, &o) == NULL);
    CHECK_HAS(dg_last_error(), "dense: graph is NULL");

    /* the failures above left no parameter behind */
    CHECK(dg_param_count(g) > 0);
    int64_t before = dg_param_count(g);
    CHECK(dg_dense(g, "d", x, 5, DG_ACT_TANH) != NULL);
    CHECK(dg_param_count(g) == before + 3 * 5 + 5);
    dg_graph_free(g);
    dg_graph_free(h);
}

static void test_flatten_activation(void) {
    dg_graph *g = dg_graph_new(1), *h = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape3(2, 3, 4));
    dg_node *other = dg_input(h, "o", dg_shape3(2, 3, 4));
    CHECK(dg_flatten(NULL, NULL, x) == NULL);
    CHECK_HAS(dg_last_error(), "flatten: graph is NULL");
    CHECK(dg_flatten(g, NULL, NULL) == NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "flatten: input is NULL");
    CHECK(dg_flatten(g, NULL, other) == NULL);
    EXPECT_ERROR(g, DG_ERR_GRAPH, "flatten: input belongs to another graph");
    int n0 = dg_graph_node_count(g);
    CHECK(dg_flatten(g, NULL, dg_scalar(g, 3)) == NULL);
    CHECK(dg_graph_node_count(g) == n0 + 1); /* just the scalar */
    EXPECT_ERROR(g, DG_ERR_SHAPE, "flatten: input is a scalar");
    CHECK(dg_flatten(g, "", x) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "flatten: layer name is empty");
    dg_node *f = dg_flatten(g, NULL, x);
    CHECK(f && dg_node_shape(f).ndim == 2 && dg_node_shape(f).dim[1] == 12);

    CHECK(dg_activation_layer(NULL, NULL, x, DG_ACT_RELU) == NULL);
    CHECK_HAS(dg_last_error(), "activation: graph is NULL");
    CHECK(dg_activation_layer(g, NULL, NULL, DG_ACT_RELU) == NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "activation: input is NULL");
    CHECK(dg_activation_layer(g, NULL, other, DG_ACT_TANH) == NULL);
    EXPECT_ERROR(g, DG_ERR_GRAPH, "activation: input belongs to another graph");
    CHECK(dg_activation_layer(g, NULL, x, (dg_activation)17) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "activation: unknown activation 17");
    CHECK(dg_activation_layer(g, NULL, x, (dg_activation)-3) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "activation: unknown activation -3");
    CHECK(dg_activation_layer(g, "", x, DG_ACT_SIGMOID) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "layer name is empty");
    /* softmax works along the last axis: a scalar has none */
    dg_node *sm = dg_activation_layer(g, NULL, dg_scalar(g, 1), DG_ACT_SOFTMAX);
    if (!sm) EXPECT_ERROR(g, dg_graph_status(g), "softmax");
    dg_graph_clear_error(g);
    robust_still_works(g, __LINE__);
    dg_graph_free(g);
    dg_graph_free(h);
}

static void test_dropout(void) {
    dg_graph *g = dg_graph_new(1), *h = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
    dg_node *other = dg_input(h, "o", dg_shape2(2, 3));
    const float rates[] = {-0.1f, 1.0f, 1.5f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        int n0 = dg_graph_node_count(g);
        CHECK(dg_dropout(g, NULL, x, rates[i]) == NULL);
        CHECK(dg_graph_node_count(g) == n0);
        EXPECT_ERROR(g, DG_ERR_ARG, "dropout: rate must be in [0, 1)");
    }
    CHECK(dg_dropout(NULL, NULL, x, 0.5f) == NULL);
    CHECK_HAS(dg_last_error(), "dropout: graph is NULL");
    CHECK(dg_dropout(g, NULL, NULL, 0.5f) == NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "dropout: input is NULL");
    int n0 = dg_graph_node_count(g);
    CHECK(dg_dropout(g, NULL, other, 0.5f) == NULL);
    CHECK(dg_graph_node_count(g) == n0);
    EXPECT_ERROR(g, DG_ERR_GRAPH, "dropout: input belongs to another graph");
    CHECK(dg_dropout(g, "", x, 0.5f) == NULL);
    EXPECT_ERROR(g, DG_ERR_ARG, "dropout: layer name is empty");

    /* mask and freezing of things that are not dropout outputs */
    CHECK(dg_dropout_mask(NULL) == NULL);
    CHECK(dg_dropout_mask(x) == NULL);
    dg_node *sum = dg_add(g, x, x);
    CHECK(dg_dropout_mask(sum) == NULL);
    CHECK(dg_dropout_set_frozen(NULL, 1) == DG_ERR_ARG);
    CHECK_HAS(dg_last_error(), "dropout_set_frozen: node -1 is not the output of dg_dropout");
    CHECK(dg_dropout_set_frozen(sum, 1) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "dropout_set_frozen: node");
    CHECK(dg_dropout_set_frozen(x, 0) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "is not the output of dg_dropout");

    /* a valid dropout in the same graph: each element is 0 or x / (1 - rate) */
    dg_node *y = dg_dropout(g, NULL, x, 0.5f);
    CHECK(y && dg_dropout_mask(y) != NULL);
    const float xv[6] = {1, 2, 3, 4, 5, 6};
    CHECK_OK(dg_feed(x, xv, 6));
    CHECK_OK(dg_run(g, y));
    for (int i = 0; i < 6; i++) {
        float v = dg_node_data(y)[i];
        CHECK(v == 0.0f || v == 2.0f * xv[i]);
    }
    CHECK_OK(dg_dropout_set_frozen(y, 1));
    dg_graph_free(g);
    dg_graph_free(h);
}

static void test_init_fill(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *p = dg_param(g, "p", dg_shape2(3, 4));
    for (int i = 0; i < 12; i++) dg_node_data(p)[i] = (float)i;
    float before[12];
    CHECK_OK(dg_read(p, before, 12));
    dg_init good = {DG_INIT_HE_NORMAL, 0, 0};

    CHECK(dg_init_fill(NULL, good, 3, 4) == DG_ERR_NULL);
    CHECK_HAS(dg_last_error(), "init_fill: node is NULL");
    dg_node *op = dg_add(g, p, p);
    CHECK(dg_init_fill(op, good, 3, 4) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "init_fill: node");
    CHECK_HAS(dg_last_error(), "is computed");

    struct {
        dg_init init;
        int64_t fan_in, fan_out;
        const char *msg;
    } bad[] = {
        {{DG_INIT_XAVIER_UNIFORM, 0, 0}, 0, 4, "fan_in 0 and fan_out 4 must be >= 1"},
        {{DG_INIT_XAVIER_NORMAL, 0, 0}, 3, -1, "must be >= 1"},
        {{DG_INIT_HE_UNIFORM, 0, 0}, INT64_MIN, 4, "must be >= 1"},
        {{DG_INIT_UNIFORM, 2, 1}, 3, 4, "uniform bounds reversed: U(2, 1)"},
        {{DG_INIT_UNIFORM, NAN, 1}, 3, 4, "must be finite"},
        {{DG_INIT_NORMAL, 0, -1}, 3, 4, "normal std -1 is negative"},
        {{DG_INIT_NORMAL, 0, INFINITY}, 3, 4, "must be finite"},
        {{DG_INIT_CONSTANT, -INFINITY, 0}, 3, 4, "must be finite"},
        {{(dg_init_kind)8, 0, 0}, 3, 4, "unknown initialiser kind 8"},
        {{(dg_init_kind)-1, 0, 0}, 3, 4, "unknown initialiser kind -1"},
        {{(dg_init_kind)1000, 0, 0}, 0, 0, "unknown initialiser kind 1000"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(dg_init_fill(p, bad[i].init, bad[i].fan_in, bad[i].fan_out) == DG_ERR_ARG,
                  "case %zu", i);
        CHECK_HAS(dg_graph_error(g), "init_fill: ");
        EXPECT_ERROR(g, DG_ERR_ARG, bad[i].msg);
        /* the parameter was not touched */
        CHECK_MSG(memcmp(dg_node_data(p), before, sizeof before) == 0, "case %zu changed p", i);
    }
    CHECK_OK(dg_init_fill(p, good, 3, 4));
    CHECK(memcmp(dg_node_data(p), before, sizeof before) != 0);
    /* an input filled by init_fill counts as fed */
    dg_node *in = dg_input(g, "in", dg_shape1(3));
    dg_node *s = dg_sum(g, in);
    CHECK_OK(dg_init_fill(in, (dg_init){DG_INIT_CONSTANT, 2, 0}, 1, 1));
    CHECK_OK(dg_run(g, s));
    CHECK_NEAR(dg_value(s), 6, 0);
    dg_graph_free(g);
}

static void test_count_summary(void) {
    CHECK(dg_param_count(NULL) == 0);
    CHECK(dg_summary(NULL, stdout) == DG_ERR_NULL);
    CHECK_HAS(dg_last_error(), "summary: graph is NULL");
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
    CHECK(dg_dense(g, NULL, x, 4, DG_ACT_RELU) != NULL);
    CHECK(dg_param_count(g) == 3 * 4 + 4);
    /* a stream that cannot be written: the summary reports it */
    FILE *ro = fopen("/dev/null", "r");
    if (ro) {
        CHECK(dg_summary(g, ro) == DG_ERR_IO);
        EXPECT_ERROR(g, DG_ERR_IO, "summary: write failed");
        fclose(ro);
    }
    FILE *sink = fopen("/dev/null", "w");
    if (sink) {
        CHECK_OK(dg_summary(g, sink));
        fclose(sink);
    }
    dg_graph_free(g);
}

int main(void) {
    test_dense();
    test_flatten_activation();
    test_dropout();
    test_init_fill();
    test_count_summary();
    return test_summary("test_robust_layers");
}
