/* The program of docs/ONNX.md: a small classifier exported as ONNX, imported into a new graph
 * (same outputs, bit for bit), trained further there and exported again; and a custom op
 * with its own exporter. CTest runs it in its output directory; it fails if a step does. */
#include <dagrad.h>

#include <stdio.h>
#include <string.h>

#define N_IN  8
#define N_OUT 3

/* 64 points of three classes: the class is where the sum of the first features falls. */
static void make_data(float *x, float *y, int n) {
    unsigned s = 12345;
    for (int i = 0; i < n; i++) {
        float sum = 0;
        for (int j = 0; j < N_IN; j++) {
            s = s * 1103515245u + 12345u;
            x[i * N_IN + j] = (float)((s >> 16) & 0x7fff) / 32768.0f - 0.5f;
            if (j < 3) sum += x[i * N_IN + j];
        }
        y[i] = sum < -0.2f ? 0.0f : sum < 0.2f ? 1.0f : 2.0f;
    }
}

/* y = x * alpha: a custom op, exported as com.example:Scaled. */
typedef struct scaled_attrs {
    float alpha;
} scaled_attrs;

static dg_status scaled_forward(dg_node *self) {
    const float *x = dg_node_data(dg_node_input(self, 0));
    float *y = dg_node_data(self), alpha = ((scaled_attrs *)dg_node_attrs(self))->alpha;
    for (int64_t i = 0; i < dg_node_numel(self); i++) y[i] = alpha * x[i];
    return DG_OK;
}

static const dg_op_def scaled_op = {
    .name = "scaled", .n_inputs = 1, .infer_shape = dg_rule_same_shape, .forward = scaled_forward};

static dg_status export_scaled(dg_onnx_writer *w, const dg_node *node, void *ctx) {
    (void)ctx;
    const char *x = dg_onnx_name(w, dg_node_input(node, 0));
    dg_status s = dg_onnx_add_node(w, "Scaled", 1, &x, NULL); /* NULL: the node's own value */
    if (s == DG_OK) s = dg_onnx_set_domain(w, "com.example", 1);
    if (s == DG_OK)
        s = dg_onnx_attr_float(w, "alpha", ((scaled_attrs *)dg_node_attrs(node))->alpha);
    return s;
}

static int fail(dg_graph *g, const char *what) {
    fprintf(stderr, "onnx: %s: %s\n", what, dg_graph_error(g));
    return 1;
}

int main(void) {
    float x[64 * N_IN], y[64];
    make_data(x, y, 64);

    /* a classifier with dropout, trained briefly */
    dg_graph *g = dg_graph_new(1);
    dg_node *features = dg_input(g, "features", dg_shape2(DG_BATCH, N_IN));
    dg_node *labels = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *h = dg_dense(g, "hidden", features, 16, DG_ACT_RELU);
    h = dg_dropout(g, "dropout", h, 0.2f);
    dg_node *logits = dg_dense(g, "output", h, N_OUT, DG_ACT_NONE);
    dg_node *probs = dg_softmax(g, logits);
    dg_node_set_name(probs, "probabilities");
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = 0.01f;
    dg_optimizer *opt = dg_optimizer_new(g, dg_cross_entropy_loss(g, logits, labels), &cfg);
    if (!opt) return fail(g, "building");
    dg_feed(features, x, 64 * N_IN);
    dg_feed(labels, y, 64);
    for (int step = 0; step < 200; step++)
        if (dg_optimizer_step(opt) != DG_OK) return fail(g, "training");

    /* export: features -> probabilities; dropout is left out, "hidden/W" and the other
     * parameters become initializers, the batch dimension is "N" */
    if (dg_onnx_save(g, "classifier.onnx", 1, &features, 1, &probs, NULL) != DG_OK)
        return fail(g, "exporting");

    /* import into a new graph */
    dg_graph *g2 = dg_graph_new(2);
    dg_onnx_model model;
    if (dg_onnx_load(g2, "classifier.onnx", NULL, &model) != DG_OK) return fail(g2, "importing");
    dg_node *in = model.inputs[0], *out = model.outputs[0]; /* "features", "probabilities" */
    dg_summary(g2, stdout);

    /* the same outputs, bit for bit (evaluation mode: no dropout in the original either) */
    dg_set_training(g, 0);
    dg_run(g, probs);
    dg_feed(in, x, 64 * N_IN);
    dg_run(g2, out);
    int same = memcmp(dg_node_data(probs), dg_node_data(out), 64 * N_OUT * sizeof(float)) == 0;
    printf("imported model: %s outputs\n", same ? "the same" : "DIFFERENT");
    if (!same) return 1;

    /* the imported parameters are trainable: more training, then export again */
    dg_node *labels2 = dg_input(g2, "labels", dg_shape1(DG_BATCH));
    dg_feed(labels2, y, 64); /* as many rows as the features fed above */
    dg_node *loss2 = dg_cross_entropy_loss(g2, dg_log(g2, out), labels2);
    dg_optimizer *opt2 = dg_optimizer_new(g2, loss2, &cfg);
    if (!opt2) return fail(g2, "adding an optimizer");
    for (int step = 0; step < 100; step++)
        if (dg_optimizer_step(opt2) != DG_OK) return fail(g2, "training further");
    printf("loss after 100 more steps: %.4f\n", dg_value(loss2));
    dg_onnx_save_options again = {.output_names = model.output_names};
    if (dg_onnx_save(g2, "classifier_retrained.onnx", 1, &in, 1, &out, &again) != DG_OK)
        return fail(g2, "exporting again");
    dg_onnx_model_free(&model);

    /* a custom op is exported by the exporter given for its definition */
    dg_node *z = dg_relu(
        g, dg_apply(g, &scaled_op, 1, &features, &(scaled_attrs){2.5f}, sizeof(scaled_attrs)));
    if (dg_onnx_save(g, "custom.onnx", 1, &features, 1, &z, NULL) == DG_OK) return 1;
    printf("without an exporter: %s\n", dg_graph_error(g));
    dg_onnx_exporter scaled = {&scaled_op, export_scaled, NULL};
    dg_onnx_save_options with_custom = {.exporters = &scaled, .n_exporters = 1};
    if (dg_onnx_save(g, "custom.onnx", 1, &features, 1, &z, &with_custom) != DG_OK)
        return fail(g, "exporting the custom op");
    printf("wrote classifier.onnx, classifier_retrained.onnx and custom.onnx\n");
    dg_graph_free(g2);
    dg_graph_free(g);
    return 0;
}
