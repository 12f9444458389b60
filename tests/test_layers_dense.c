/* Dense, activation and flatten layers: values equal act(x W + b) computed here by loops,
 * gradients match finite differences, parameters and scopes are named as documented,
 * automatic names count per kind, the 784-50-20-10 summary totals 40,480 parameters, and
 * bad arguments fail with a message and leave the graph as it was. */
#include "test_util.h"

#include <string.h>

static dg_node *find(dg_graph *g, const char *name) {
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        const char *n = dg_node_name(dg_graph_node(g, i));
        if (n && strcmp(n, name) == 0) return dg_graph_node(g, i);
    }
    return NULL;
}

static double act_ref(dg_activation a, double z) {
    switch (a) {
    case DG_ACT_RELU: return z > 0 ? z : 0;
    case DG_ACT_LEAKY_RELU: return z > 0 ? z : 0.01 * z;
    case DG_ACT_SIGMOID: return 1 / (1 + exp(-z));
    case DG_ACT_TANH: return tanh(z);
    default: return z;
    }
}

static void values(dg_activation act) {
    enum { B = 3, IN = 5, U = 4 };
    dg_graph *g = dg_graph_new(9);
    dg_node *x = dg_input(g, "x", dg_shape2(B, IN));
    test_fill(x, -1, 1);
    dg_node *y = dg_dense(g, "fc", x, U, act);
    dg_node *w = find(g, "fc/W"), *b = find(g, "fc/b");
    CHECK(y && w && b);
    if (!y || !w || !b) {
        dg_graph_free(g);
        return;
    }
    test_fill(b, -0.5f, 0.5f); /* a non-zero bias so it is visible */
    CHECK_OK(dg_run(g, y));
    const float *xd = dg_node_data(x), *wd = dg_node_data(w), *bd = dg_node_data(b);
    double z[B][U];
    for (int r = 0; r < B; r++)
        for (int u = 0; u < U; u++) {
            z[r][u] = bd[u];
            for (int k = 0; k < IN; k++) z[r][u] += (double)xd[r * IN + k] * wd[k * U + u];
        }
    for (int r = 0; r < B; r++) {
        double mx = -INFINITY, sum = 0;
        for (int u = 0; u < U; u++) mx = fmax(mx, z[r][u]);
        for (int u = 0; u < U; u++) sum += exp(z[r][u] - mx);
        for (int u = 0; u < U; u++) {
            double want = act == DG_ACT_SOFTMAX ? exp(z[r][u] - mx) / sum : act_ref(act, z[r][u]);
            CHECK_MSG(fabs(dg_node_data(y)[r * U + u] - want) < 1e-5, "act %d [%d,%d]: %g vs %g",
                      (int)act, r, u, (double)dg_node_data(y)[r * U + u], want);
        }
    }
    /* gradients of a weighted sum w.r.t. x, W and b against finite differences */
    dg_set_requires_grad(x, 1);
    dg_node *wt = dg_input(g, "wt", dg_node_shape(y));
    test_fill(wt, -1, 1);
    dg_node *loss = dg_sum(g, dg_mul(g, y, wt));
    dg_node *leaves[3] = {x, w, b};
    dg_gradcheck_report rep;
    CHECK_OK(dg_gradcheck(g, loss, 3, leaves, 1e-2, 2e-3, 2e-2, &rep));
    CHECK_MSG(rep.passed, "act %d: gradcheck max abs %g", (int)act, rep.max_abs_err);
    dg_graph_free(g);
}

static void names_and_scopes(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape3(2, 3, 4));
    dg_node *f = dg_flatten(g, NULL, x);
    CHECK(f && dg_shape_equal(dg_node_shape(f), dg_shape2(2, 12)));
    CHECK(f && !strcmp(dg_node_scope(f), "flatten1"));
    dg_node *h1 = dg_dense(g, NULL, f, 6, DG_ACT_NONE);
    dg_node *h2 = dg_dense(g, NULL, h1, 5, DG_ACT_NONE);
    dg_node *a1 = dg_activation_layer(g, NULL, h2, DG_ACT_RELU);
    dg_node *a2 = dg_activation_layer(g, "squash", a1, DG_ACT_SIGMOID);
    CHECK(dg_activation_layer(g, NULL, a2, DG_ACT_NONE) == a2);
    CHECK(find(g, "dense1/W") && find(g, "dense1/b") && find(g, "dense2/W"));
    CHECK(h2 && !strcmp(dg_node_scope(h2), "dense2"));
    CHECK(a1 && !strcmp(dg_node_scope(a1), "relu1"));
    CHECK(a2 && !strcmp(dg_node_scope(a2), "squash"));
    CHECK(a1 && !strcmp(dg_node_op_name(a1), "relu"));
    /* a user-named "dense3" makes the next automatic name skip it */
    dg_node *h3 = dg_dense(g, "dense3", a2, 4, DG_ACT_NONE);
    dg_node *h4 = dg_dense(g, NULL, h3, 3, DG_ACT_NONE);
    CHECK(h4 && !strcmp(dg_node_scope(h4), "dense4"));
    /* inside a user scope the layer nests, names include the path */
    CHECK_OK(dg_scope_push(g, "head"));
    dg_node *h5 = dg_dense(g, NULL, h4, 2, DG_ACT_NONE);
    CHECK_OK(dg_scope_pop(g));
    CHECK(h5 && !strcmp(dg_node_scope(h5), "head/dense1"));
    CHECK(find(g, "head/dense1/W") != NULL);
    /* flatten of [N] gives [N, 1] */
    dg_node *v = dg_input(g, "v", dg_shape1(7));
    dg_node *fv = dg_flatten(g, "fv", v);
    CHECK(fv && dg_shape_equal(dg_node_shape(fv), dg_shape2(7, 1)));
    dg_graph_free(g);
}

/* 784-50-20-10: (784*50+50) + (50*20+20) + (20*10+10) = 39,250 + 1,020 + 210 = 40,480. */
static void summary(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape3(32, 28, 28));
    dg_node *h = dg_flatten(g, NULL, x);
    h = dg_dense(g, NULL, h, 50, DG_ACT_RELU);
    h = dg_dense(g, NULL, h, 20, DG_ACT_RELU);
    h = dg_dense(g, NULL, h, 10, DG_ACT_SOFTMAX);
    CHECK(h != NULL);
    CHECK(dg_param_count(g) == 40480);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f) {
        dg_graph_free(g);
        return;
    }
    CHECK_OK(dg_summary(g, f));
    char text[4096] = "";
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    CHECK(strstr(text, "Total params: 40,480") != NULL);
    CHECK(strstr(text, "39,250") && strstr(text, "1,020") && strstr(text, "210"));
    CHECK(strstr(text, "[32,784]") && strstr(text, "[32,50]") && strstr(text, "[32,10]"));
    const char *order[4] = {"flatten1", "dense1", "dense2", "dense3"};
    const char *at = text;
    for (int i = 0; i < 4; i++) {
        const char *p = strstr(at, order[i]);
        CHECK_MSG(p != NULL, "summary lacks %s in order:\n%s", order[i], text);
        if (p) at = p;
    }
    /* an optimizer adds state, not parameters, and no rows */
    dg_node *labels = dg_input(g, "labels", dg_shape1(32));
    dg_node *loss = dg_cross_entropy_loss(g, h, labels);
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    CHECK(dg_optimizer_new(g, loss, &c) != NULL);
    CHECK(dg_param_count(g) == 40480);
    f = tmpfile();
    if (f) {
        CHECK_OK(dg_summary(g, f));
        rewind(f);
        n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
        CHECK(strstr(text, "Total params: 40,480") != NULL);
        CHECK(strstr(text, "adam") == NULL);
    }
    CHECK(dg_summary(NULL, NULL) == DG_ERR_NULL);
    dg_graph_free(g);
}

static void errors(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x3 = dg_input(g, "x3", dg_shape3(2, 3, 4));
    dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
    int before = dg_graph_node_count(g);
    CHECK(dg_dense(g, NULL, x3, 4, DG_ACT_NONE) == NULL);
    CHECK(dg_graph_status(g) == DG_ERR_SHAPE);
    CHECK(strstr(dg_graph_error(g), "[2,3,4]") != NULL);
    CHECK(dg_dense(g, NULL, x, 0, DG_ACT_NONE) == NULL);
    CHECK(dg_dense(g, NULL, x, 3, (dg_activation)42) == NULL);
    CHECK(dg_dense(g, NULL, NULL, 3, DG_ACT_NONE) == NULL);
    CHECK(dg_dense(NULL, NULL, x, 3, DG_ACT_NONE) == NULL);
    CHECK(dg_dense(g, "", x, 3, DG_ACT_NONE) == NULL);
    dg_dense_options bad = dg_dense_defaults();
    bad.custom_init = 1;
    bad.weight_init.kind = DG_INIT_UNIFORM;
    bad.weight_init.a = 1;
    bad.weight_init.b = -1;
    CHECK(dg_dense_ex(g, "bad", x, 3, DG_ACT_NONE, &bad) == NULL);
    CHECK(strstr(dg_graph_error(g), "uniform") != NULL);
    CHECK(dg_graph_node_count(g) == before);
    CHECK(dg_param_count(g) == 0);
    CHECK(dg_activation_layer(g, NULL, x, (dg_activation)42) == NULL);
    CHECK(dg_flatten(g, NULL, dg_scalar(g, 1)) == NULL);
    dg_graph *other = dg_graph_new(1);
    CHECK(dg_dense(other, NULL, x, 3, DG_ACT_NONE) == NULL);
    CHECK(dg_graph_status(other) == DG_ERR_GRAPH);
    dg_graph_free(other);
    /* the scope stack is balanced after failures: a new layer is top-level */
    dg_node *ok = dg_dense(g, NULL, x, 2, DG_ACT_NONE);
    CHECK(ok && !strcmp(dg_node_scope(ok), "dense1"));
    dg_graph_free(g);
}

int main(void) {
    dg_activation acts[6] = {DG_ACT_NONE,    DG_ACT_RELU, DG_ACT_LEAKY_RELU,
                             DG_ACT_SIGMOID, DG_ACT_TANH, DG_ACT_SOFTMAX};
    for (int i = 0; i < 6; i++) values(acts[i]);
    names_and_scopes();
    summary();
    errors();
    return test_summary("test_layers_dense");
}
