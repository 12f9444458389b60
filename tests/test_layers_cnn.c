/* CNN layers: conv2d computes act(conv + b) (checked by loops here), parameters and scopes
 * are named as documented with automatic names per kind, He/Glorot bounds hold, the whole
 * stack's gradients match finite differences, the summary lists a LeNet's layers with their
 * output shapes and parameter counts, batch norm's running statistics survive a checkpoint
 * (with state) bit for bit, and bad arguments fail with a message, leaving the graph as
 * it was. */
#include "test_util.h"

#include "dagrad/io.h"

#include <string.h>

static void conv_values(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape4(2, 3, 6, 5));
    test_fill(x, -1, 1);
    dg_node *y = dg_conv2d(g, NULL, x, 4, 3, 1, 1, DG_ACT_RELU);
    dg_node *y2 = dg_conv2d(g, NULL, y, 2, 1, 1, 0, DG_ACT_TANH);
    dg_node *w = dg_graph_find(g, "conv1/W"), *b = dg_graph_find(g, "conv1/b");
    CHECK(y && y2 && w && b && dg_graph_find(g, "conv2/W") && dg_graph_find(g, "conv2/b"));
    if (!y || !w || !b) return dg_graph_free(g);
    CHECK(dg_node_shape(w).dim[0] == 4 && dg_node_shape(w).dim[1] == 3 &&
          dg_node_shape(w).dim[2] == 3 && dg_node_shape(w).dim[3] == 3);
    CHECK(strcmp(dg_node_scope(y), "conv1") == 0);
    /* He uniform: |W| <= sqrt(6 / 27), and the draws reach near the bound */
    double lim = sqrt(6.0 / 27.0), mx = 0;
    for (int i = 0; i < 108; i++) mx = fmax(mx, fabs(dg_node_data(w)[i]));
    CHECK(mx <= lim && mx > 0.8 * lim);
    /* tanh layer: Glorot with fan_in 4, fan_out 2 */
    double lim2 = sqrt(6.0 / 6.0), mx2 = 0;
    for (int i = 0; i < 8; i++) mx2 = fmax(mx2, fabs(dg_node_data(dg_graph_find(g, "conv2/W"))[i]));
    CHECK(mx2 <= lim2 && mx2 > 0.3 * lim2);
    test_fill(b, -0.5f, 0.5f);
    CHECK_OK(dg_run(g, y));
    const float *xd = dg_node_data(x), *wd = dg_node_data(w), *bd = dg_node_data(b);
    double worst = 0;
    for (int n = 0; n < 2; n++)
        for (int o = 0; o < 4; o++)
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 5; j++) {
                    double z = bd[o];
                    for (int c = 0; c < 3; c++)
                        for (int a = 0; a < 3; a++)
                            for (int e = 0; e < 3; e++) {
                                int r = i - 1 + a, t = j - 1 + e;
                                if (r < 0 || r >= 6 || t < 0 || t >= 5) continue;
                                z += (double)xd[((n * 3 + c) * 6 + r) * 5 + t] *
                                     wd[((o * 3 + c) * 3 + a) * 3 + e];
                            }
                    double got = dg_node_data(y)[((n * 4 + o) * 6 + i) * 5 + j];
                    worst = fmax(worst, fabs(got - (z > 0 ? z : 0)));
                }
    CHECK_MSG(worst < 1e-5, "conv layer values: max error %g", worst);
    dg_graph_free(g);
}

/* conv -> batch norm -> relu -> max pool -> conv -> avg pool -> global pool -> dense:
 * every parameter's gradient against central differences (training mode). */
static void stack_gradients(void) {
    dg_graph *g = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape4(3, 2, 8, 7));
    dg_node *labels = dg_input(g, "labels", dg_shape1(3));
    test_fill(x, -1, 1);
    float l[3] = {0, 2, 1};
    dg_feed(labels, l, 3);
    dg_node *h = dg_conv2d(g, "c1", x, 4, 3, 1, 1, DG_ACT_NONE);
    h = dg_batch_norm(g, "bn1", h, 0.1f, 1e-3f);
    h = dg_activation_layer(g, NULL, h, DG_ACT_TANH);
    h = dg_max_pool2d(g, NULL, h, 2, 2, 0);
    h = dg_conv2d(g, "c2", h, 3, 2, 1, 1, DG_ACT_TANH);
    h = dg_avg_pool2d(g, NULL, h, 2, 1, 0);
    h = dg_global_avg_pool2d(g, NULL, h);
    dg_node *logits = dg_dense(g, "out", h, 3, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(g, logits, labels);
    CHECK_MSG(loss != NULL, "%s", dg_graph_error(g));
    if (!loss) return dg_graph_free(g);
    dg_node *params[16];
    int np = 0;
    for (int i = 0; i < dg_graph_node_count(g) && np < 16; i++)
        if (dg_node_kind_of(dg_graph_node(g, i)) == DG_PARAM) params[np++] = dg_graph_node(g, i);
    CHECK(np == 8); /* c1 W b, bn1 gamma beta, c2 W b, out W b */
    for (int i = 0; i < np; i++) test_fill(params[i], -0.5f, 0.5f);
    dg_gradcheck_report r;
    /* a small step: max pooling has kinks where two window values tie */
    dg_status s = dg_gradcheck(g, loss, np, params, 1e-3, 2e-4, 1e-2, &r);
    CHECK_MSG(s == DG_OK && r.passed, "%s max abs %.3g at param %d[%lld]: %.6g vs %.6g",
              dg_graph_error(g), r.max_abs_err, r.worst_leaf, (long long)r.worst_index,
              r.worst_analytic, r.worst_numeric);
    dg_graph_free(g);
}

/* The summary of a LeNet-style net: one row per layer with its output shape and parameters. */
static void summary(void) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "images", dg_shape4(DG_BATCH, 1, 28, 28));
    dg_node *h = dg_conv2d(g, NULL, x, 32, 5, 1, 2, DG_ACT_RELU);
    h = dg_max_pool2d(g, NULL, h, 2, 2, 0);
    h = dg_conv2d(g, NULL, h, 64, 5, 1, 0, DG_ACT_RELU);
    h = dg_batch_norm(g, NULL, h, 0.1f, 1e-5f);
    h = dg_max_pool2d(g, NULL, h, 2, 2, 0);
    h = dg_flatten(g, NULL, h);
    h = dg_dense(g, NULL, h, 10, DG_ACT_NONE);
    CHECK(h != NULL);
    char buf[4096] = {0};
    FILE *f = tmpfile();
    CHECK_OK(dg_summary(g, f));
    rewind(f);
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = 0;
    fclose(f);
    const char *want[] = {
        "conv1                        [N,32,28,28]                      832",
        "maxpool1                     [N,32,14,14]                        0",
        "conv2                        [N,64,10,10]                   51,264",
        "batchnorm1                   [N,64,10,10]                      128",
        "maxpool2                     [N,64,5,5]                          0",
        "flatten1                     [N,1600]                            0",
        "dense1                       [N,10]                         16,010",
        "Total params: 68,234",
        "Non-trainable state values: 128",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_MSG(strstr(buf, want[i]) != NULL, "summary lacks '%s':\n%s", want[i], buf);
    dg_graph_free(g);
}

/* A model with batch norm trained a few steps; evaluation in a second graph loaded from a
 * checkpoint with state gives bitwise the same outputs (the running statistics are state). */
static dg_graph *bn_model(dg_node **x, dg_node **y, dg_optimizer **opt) {
    dg_graph *g = dg_graph_new(4);
    *x = dg_input(g, "x", dg_shape4(DG_BATCH, 1, 6, 6));
    dg_node *labels = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *h = dg_conv2d(g, "c", *x, 3, 3, 1, 0, DG_ACT_NONE);
    h = dg_batch_norm(g, "bn", h, 0.3f, 1e-5f);
    *y = dg_dense(g, "out", dg_flatten(g, NULL, dg_relu(g, h)), 2, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(g, *y, labels);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    if (!(*opt = dg_optimizer_new(g, loss, &cfg))) return dg_graph_free(g), NULL;
    return g;
}

static void bn_checkpoint(void) {
    dg_node *x, *y, *x2, *y2;
    dg_optimizer *opt, *opt2;
    dg_graph *g = bn_model(&x, &y, &opt), *g2 = bn_model(&x2, &y2, &opt2);
    CHECK(g && g2);
    if (!g || !g2) return dg_graph_free(g), dg_graph_free(g2);
    float data[8 * 36], lab[8];
    for (int i = 0; i < 8 * 36; i++) data[i] = test_uniform(0, 1);
    for (int i = 0; i < 8; i++) lab[i] = (float)(i % 2);
    dg_node *labels = dg_graph_find(g, "labels");
    for (int s = 0; s < 5; s++) {
        CHECK_OK(dg_feed(x, data, 8 * 36));
        CHECK_OK(dg_feed(labels, lab, 8));
        CHECK_OK(dg_optimizer_step(opt));
    }
    const float *rv = dg_node_data(dg_graph_find(g, "bn/running_var"));
    CHECK(rv[0] != 1.0f); /* the running variance moved */
    dg_set_training(g, 0);
    CHECK_OK(dg_feed(x, data, 36));
    CHECK_OK(dg_run(g, y));
    float want[2] = {dg_node_data(y)[0], dg_node_data(y)[1]};
    const char *path = "test_layers_cnn.ckpt";
    CHECK_OK(dg_checkpoint_save(g, path, 1));
    CHECK_OK(dg_checkpoint_load(g2, path, 1));
    dg_set_training(g2, 0);
    CHECK_OK(dg_feed(x2, data, 36));
    CHECK_OK(dg_run(g2, y2));
    CHECK(memcmp(want, dg_node_data(y2), sizeof want) == 0);
    /* without state the running statistics stay at their initial values: outputs differ */
    dg_graph *g3 = bn_model(&x2, &y2, &opt2);
    CHECK_OK(dg_checkpoint_load(g3, path, 0));
    dg_set_training(g3, 0);
    CHECK_OK(dg_feed(x2, data, 36));
    CHECK_OK(dg_run(g3, y2));
    CHECK(memcmp(want, dg_node_data(y2), sizeof want) != 0);
    remove(path);
    dg_graph_free(g);
    dg_graph_free(g2);
    dg_graph_free(g3);
}

static void errors(void) {
    dg_graph *g = dg_graph_new(5);
    dg_node *x = dg_input(g, "x", dg_shape4(2, 3, 8, 8));
    dg_node *flat = dg_input(g, "flat", dg_shape2(2, 3));
    int before = dg_graph_node_count(g);
    CHECK(dg_conv2d(g, "c", flat, 4, 3, 1, 0, DG_ACT_RELU) == NULL);
    CHECK(strstr(dg_graph_error(g), "conv2d: input must be [batch, channels, height, width], got "
                                    "[2,3]"));
    CHECK(dg_conv2d(g, "c", x, 0, 3, 1, 0, DG_ACT_RELU) == NULL);
    CHECK(strstr(dg_graph_error(g), "conv2d: filters (0) and kernel (3x3) must be >= 1"));
    CHECK(dg_conv2d(g, "c", x, 4, 9, 1, 0, DG_ACT_RELU) == NULL);
    CHECK_MSG(strstr(dg_graph_error(g), "conv2d: kernel 9x9 (dilation 1x1) is larger than the "
                                        "padded input 8x8 (padding 0x0): [2,3,8,8] * [4,3,9,9]"),
              "%s", dg_graph_error(g));
    CHECK(dg_conv2d(g, "c", x, 4, 3, 0, 0, DG_ACT_RELU) == NULL);
    CHECK(strstr(dg_graph_error(g), "conv2d: stride must be >= 1, got 0"));
    CHECK(dg_conv2d(g, "c", x, 4, 3, 1, 0, DG_ACT_SOFTMAX) == NULL);
    CHECK(strstr(dg_graph_error(g), "conv2d: activation 5 is not one of"));
    CHECK(dg_max_pool2d(g, "p", x, 3, 0, 0) == NULL);
    CHECK(strstr(dg_graph_error(g), "max_pool2d: kernel, stride and dilation must be >= 1"));
    CHECK(dg_avg_pool2d(g, "p", flat, 2, 2, 0) == NULL);
    CHECK(strstr(dg_graph_error(g), "avg_pool2d: input must be [N,C,H,W], got [2,3]"));
    CHECK(dg_batch_norm(g, "bn", x, 2.0f, 1e-5f) == NULL);
    CHECK(strstr(dg_graph_error(g), "batch_norm: momentum must be in [0, 1]"));
    CHECK(dg_graph_node_count(g) == before);
    /* names are unique: a second "c" would save two parameters as "c/W" */
    CHECK(dg_conv2d(g, "c", x, 4, 3, 1, 0, DG_ACT_RELU) != NULL);
    before = dg_graph_node_count(g);
    CHECK(dg_conv2d(g, "c", x, 4, 3, 1, 0, DG_ACT_RELU) == NULL);
    CHECK(strstr(dg_graph_error(g), "conv2d: a node named 'c/W' already exists"));
    CHECK(dg_graph_node_count(g) == before);
    dg_graph_clear_error(g);
    CHECK(dg_conv2d(g, NULL, NULL, 4, 3, 1, 0, DG_ACT_RELU) == NULL);
    CHECK(dg_graph_status(g) == DG_ERR_NULL);
    dg_graph_free(g);
}

int main(void) {
    conv_values();
    stack_gradients();
    summary();
    bn_checkpoint();
    errors();
    return test_summary("test_layers_cnn");
}
