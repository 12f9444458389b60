/* Running graphs: only what a target depends on is evaluated (counted by a custom op),
 * new data runs without rebuilding, gradients never accumulate across runs or backward
 * calls, dg_gradients leaves dg_grad alone, anomaly mode stops at the first non-finite
 * node, results do not depend on the thread count; plus names, scopes and node iteration. */
#include "test_util.h"

#include <string.h>

/* ---- an identity op that counts its forward calls in the int its attributes point to ---- */
static dg_status same_shape(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                            size_t size) {
    (void)n, (void)a, (void)msg, (void)size;
    *out = dg_node_shape(in[0]);
    return DG_OK;
}
static dg_status count_forward(dg_node *self) {
    int *counter = *(int **)dg_node_attrs(self);
    (*counter)++;
    memcpy(dg_node_data(self), dg_node_data(dg_node_input(self, 0)),
           (size_t)dg_node_numel(self) * sizeof(float));
    return DG_OK;
}
static dg_status count_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    (void)g, (void)self;
    dx[0] = dy;
    return DG_OK;
}
static const dg_op_def count_def = {.name = "count",
                                    .n_inputs = 1,
                                    .infer_shape = same_shape,
                                    .forward = count_forward,
                                    .backward = count_backward};
static dg_node *counted(dg_graph *g, dg_node *x, int *counter) {
    return dg_apply(g, &count_def, 1, &x, &counter, sizeof counter);
}

static void test_only_dependencies(void) {
    dg_graph *g = dg_graph_new(1);
    int ca = 0, cb = 0, cs = 0;
    dg_node *x = dg_input(g, "x", dg_shape1(3)), *unfed = dg_input(g, "unfed", dg_shape1(3));
    const float xv[3] = {1, 2, 3};
    CHECK_OK(dg_feed(x, xv, 3));
    dg_node *shared = counted(g, dg_exp(g, x), &cs);
    dg_node *a = dg_sum(g, counted(g, dg_mul(g, shared, shared), &ca)); /* uses shared twice */
    dg_node *b = dg_sum(g, counted(g, dg_add(g, shared, unfed), &cb));  /* needs the unfed one */
    /* a does not depend on the unfed input: no error, b's branch never runs */
    CHECK_OK(dg_run(g, a));
    CHECK(ca == 1 && cs == 1 && cb == 0);
    CHECK_NEAR(dg_value(a), exp(2.0) + exp(4.0) + exp(6.0), 1e-3);
    CHECK_OK(dg_run(g, a));
    CHECK(ca == 2 && cs == 2 && cb == 0);
    /* b does: a clear error, and nothing ran */
    CHECK(dg_run(g, b) == DG_ERR_STATE);
    CHECK(strstr(dg_graph_error(g), "'unfed'") != NULL);
    CHECK(cb == 0 && cs == 2);
    /* both targets in one pass evaluate the shared node once */
    const float uv[3] = {10, 20, 30};
    CHECK_OK(dg_feed(unfed, uv, 3));
    dg_node *both[2] = {a, b};
    CHECK_OK(dg_run_many(g, 2, both));
    CHECK(ca == 3 && cb == 1 && cs == 3);
    CHECK_NEAR(dg_value(b), exp(1.0) + exp(2.0) + exp(3.0) + 60, 1e-3);
    /* running a leaf or a constant evaluates nothing */
    CHECK_OK(dg_run(g, x));
    CHECK(ca == 3 && cb == 1 && cs == 3);
    dg_graph_free(g);
}

static void test_feed_and_rerun(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 2)), *w = dg_param(g, "w", dg_shape2(2, 1));
    dg_node_data(w)[0] = 1;
    dg_node_data(w)[1] = -1;
    dg_node *y = dg_matmul(g, x, w);
    int count = dg_graph_node_count(g);
    for (int step = 0; step < 5; step++) {
        const float xv[4] = {(float)step, 1, 2, (float)(step * step)};
        CHECK_OK(dg_feed(x, xv, 4));
        CHECK_OK(dg_run(g, y));
        CHECK_NEAR(dg_node_data(y)[0], step - 1, 0);
        CHECK_NEAR(dg_node_data(y)[1], 2 - step * step, 0);
    }
    /* parameters persist and can be changed between runs */
    dg_node_data(w)[1] = 2;
    CHECK_OK(dg_run(g, y));
    CHECK_NEAR(dg_node_data(y)[0], 4 + 2, 0);
    CHECK(dg_graph_node_count(g) == count); /* nothing was rebuilt */
    /* a node added after a run is planned and evaluated correctly */
    dg_node *z = dg_sum(g, y);
    CHECK_OK(dg_run(g, z));
    CHECK_NEAR(dg_value(z), 6 + 2 + 32, 0);
    CHECK_OK(dg_run(g, y)); /* alternating targets reuses or rebuilds plans correctly */
    CHECK_OK(dg_run(g, z));
    CHECK_NEAR(dg_value(z), 40, 0);
    dg_graph_free(g);
}

/* Gradient of a small MLP loss w.r.t. W for a given batch, as a copy. */
static void grad_for(dg_graph *g, dg_node *x, dg_node *grad, const float *batch, float *out) {
    CHECK_OK(dg_feed(x, batch, dg_node_numel(x)));
    CHECK_OK(dg_run(g, grad));
    memcpy(out, dg_node_data(grad), (size_t)dg_node_numel(grad) * sizeof(float));
}

static void test_no_accumulation(void) {
    enum { NB = 4, DI = 3, DO = 2 };
    float b1[NB * DI], b2[NB * DI], w0[DI * DO];
    for (int i = 0; i < NB * DI; i++) b1[i] = test_uniform(-1, 1), b2[i] = test_uniform(-1, 1);
    for (int i = 0; i < DI * DO; i++) w0[i] = test_uniform(-1, 1);
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(NB, DI)), *w = dg_param(g, "W", dg_shape2(DI, DO));
    memcpy(dg_node_data(w), w0, sizeof w0);
    dg_node *loss = dg_mean(g, dg_tanh(g, dg_matmul(g, x, w)));
    CHECK_OK(dg_backward(g, loss));
    dg_node *gw = dg_grad(w);
    float first[DI * DO], other[DI * DO], again[DI * DO], twice[DI * DO];
    grad_for(g, x, gw, b1, first);
    grad_for(g, x, gw, b1, twice); /* same batch twice: same gradient, not doubled */
    CHECK(memcmp(first, twice, sizeof first) == 0);
    grad_for(g, x, gw, b2, other); /* a fresh batch gives its own gradient ... */
    CHECK(memcmp(first, other, sizeof first) != 0);
    grad_for(g, x, gw, b1, again); /* ... and the first batch gives the first one back */
    CHECK(memcmp(first, again, sizeof first) == 0);
    /* a second dg_backward of the same loss reuses the gradients it built: no new nodes */
    int count = dg_graph_node_count(g);
    CHECK_OK(dg_backward(g, loss));
    CHECK(dg_grad(w) == gw && dg_graph_node_count(g) == count);
    /* after another pass (a scaled loss), the loss's own pass is built again, fresh nodes
     * with the same values */
    CHECK_OK(dg_backward(g, dg_scale(g, loss, 2.0f)));
    CHECK_OK(dg_backward(g, loss));
    CHECK(dg_grad(w) != gw);
    CHECK(dg_node_backward_pass(dg_grad(w)) == 3 && dg_node_backward_pass(gw) == 1);
    grad_for(g, x, dg_grad(w), b1, twice);
    CHECK(memcmp(first, twice, sizeof first) == 0);
    /* and a graph built from scratch for batch 2 agrees with the reused one */
    dg_graph *h = dg_graph_new(1);
    dg_node *hx = dg_input(h, "x", dg_shape2(NB, DI)), *hw = dg_param(h, "W", dg_shape2(DI, DO));
    memcpy(dg_node_data(hw), w0, sizeof w0);
    dg_node *hl = dg_mean(h, dg_tanh(h, dg_matmul(h, hx, hw)));
    CHECK_OK(dg_backward(h, hl));
    float fresh[DI * DO];
    grad_for(h, hx, dg_grad(hw), b2, fresh);
    CHECK(memcmp(fresh, other, sizeof fresh) == 0);
    dg_graph_free(h);
    dg_graph_free(g);
}

static void test_gradients_leave_grad(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *p = dg_param(g, "p", dg_shape1(3)), *q = dg_param(g, "q", dg_shape1(3));
    const float pv[3] = {1, 2, 3}, qv[3] = {-1, 0.5f, 2};
    memcpy(dg_node_data(p), pv, sizeof pv);
    memcpy(dg_node_data(q), qv, sizeof qv);
    dg_node *y = dg_sum(g, dg_mul(g, p, q)); /* dy/dp = q, dy/dq = p */
    dg_node *out[2] = {NULL, NULL}, *pq[2] = {p, q};
    CHECK_OK(dg_gradients(g, y, 2, pq, out));
    CHECK(dg_grad(p) == NULL && dg_grad(q) == NULL); /* no backward yet: still none */
    CHECK(out[0] && out[1] && dg_node_grad_of(out[0]) == p);
    CHECK_OK(dg_run_many(g, 2, out));
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(dg_node_data(out[0])[i], qv[i], 0);
        CHECK_NEAR(dg_node_data(out[1])[i], pv[i], 0);
    }
    CHECK_OK(dg_backward(g, y));
    dg_node *gp = dg_grad(p), *gq = dg_grad(q);
    CHECK(gp && gq && gp != out[0]);
    dg_node *z = dg_sum(g, dg_exp(g, p));
    CHECK_OK(dg_gradients(g, z, 1, &p, out));
    CHECK(dg_grad(p) == gp && dg_grad(q) == gq); /* unchanged by dg_gradients */
    /* a leaf the output does not depend on gets NULL */
    dg_node *r = dg_param(g, "r", dg_shape1(3));
    dg_node *yr[2] = {p, r};
    CHECK_OK(dg_gradients(g, z, 2, yr, out));
    CHECK(out[0] != NULL && out[1] == NULL);
    dg_graph_free(g);
}

static void test_anomaly(void) {
    dg_graph *g = dg_graph_new(1);
    int after = 0;
    dg_node *x = dg_input(g, "x", dg_shape1(3));
    const float xv[3] = {1, 0, 2};
    CHECK_OK(dg_feed(x, xv, 3));
    dg_node *lx = dg_log(g, x); /* log 0 = -inf at element 1 */
    CHECK_OK(dg_node_set_name(lx, "logx"));
    dg_node *y = dg_sum(g, counted(g, dg_scale(g, lx, 2), &after));
    /* off (the default): the run succeeds and the Inf propagates */
    CHECK_OK(dg_run(g, y));
    CHECK(isinf(dg_value(y)) && after == 1);
    /* on: stops at the log node, names op, node and element; later nodes do not run */
    dg_set_anomaly_mode(g, 1);
    CHECK(dg_run(g, y) == DG_ERR_NONFINITE);
    CHECK(after == 1);
    char want[96];
    snprintf(want, sizeof want, "anomaly: node %d (op log, name 'logx', shape [3])",
             dg_node_id(lx));
    CHECK_MSG(strstr(dg_graph_error(g), want) != NULL, "'%s' lacks '%s'", dg_graph_error(g), want);
    CHECK(strstr(dg_graph_error(g), "-inf at element 1") != NULL);
    CHECK(strstr(dg_graph_error(g), "non-finite inputs: none") != NULL);
    /* clean data: anomaly mode lets it through */
    const float ok[3] = {1, 3, 2};
    CHECK_OK(dg_feed(x, ok, 3));
    CHECK_OK(dg_run(g, y));
    CHECK(after == 2);
    /* in a gradient: sqrt'(0) = 1 / (2 sqrt 0) = inf, reported as in backward */
    dg_node *p = dg_param(g, "p", dg_shape1(2)); /* zeros */
    dg_node *s = dg_sum(g, dg_sqrt(g, p));
    CHECK_OK(dg_run(g, s));
    CHECK_OK(dg_backward(g, s));
    CHECK(dg_run(g, dg_grad(p)) == DG_ERR_NONFINITE);
    CHECK_MSG(strstr(dg_graph_error(g), "(op div") && strstr(dg_graph_error(g), "in backward"),
              "%s", dg_graph_error(g));
    dg_set_anomaly_mode(g, 0);
    CHECK_OK(dg_run(g, dg_grad(p)));
    CHECK(isinf(dg_node_data(dg_grad(p))[0]));
    dg_graph_free(g);
}

static void test_threads_deterministic(void) {
    enum { M = 200, K = 300, NN = 150 };
    dg_graph *g = dg_graph_new(9);
    dg_node *a = dg_input(g, "a", dg_shape2(M, K)), *b = dg_param(g, "b", dg_shape2(K, NN));
    test_fill(a, -1, 1);
    test_fill(b, -1, 1);
    dg_node *y = dg_mean(g, dg_softmax(g, dg_tanh(g, dg_matmul(g, a, b))));
    dg_node *l = dg_add(g, y, dg_sum(g, dg_mul(g, b, b)));
    CHECK_OK(dg_backward(g, l));
    dg_node *t[2] = {l, dg_grad(b)};
    float *ref = malloc(sizeof(float) * K * NN);
    float lref = 0;
    int saved = dg_get_num_threads();
    for (int threads = 1; threads <= 3; threads++) {
        dg_set_num_threads(threads);
        CHECK_OK(dg_run_many(g, 2, t));
        if (threads == 1) {
            memcpy(ref, dg_node_data(dg_grad(b)), sizeof(float) * K * NN);
            lref = dg_value(l);
        } else {
            CHECK_MSG(memcmp(ref, dg_node_data(dg_grad(b)), sizeof(float) * K * NN) == 0,
                      "gradient differs with %d threads", threads);
            CHECK(memcmp(&lref, dg_node_data(l), sizeof lref) == 0);
        }
    }
    dg_set_num_threads(saved);
    free(ref);
    dg_graph_free(g);
}

static void test_names_scopes_iteration(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
    CHECK(strcmp(dg_node_name(x), "x") == 0 && dg_node_scope(x) == NULL);
    CHECK_OK(dg_scope_push(g, "dense1"));
    dg_node *w = dg_param(g, "W", dg_shape2(3, 4));
    dg_node *h = dg_matmul(g, x, w);
    CHECK_OK(dg_scope_push(g, "act"));
    dg_node *a = dg_relu(g, h);
    CHECK_OK(dg_scope_pop(g));
    CHECK_OK(dg_scope_pop(g));
    CHECK_OK(dg_scope_push(g, "dense1")); /* reopening gives the same scope */
    dg_node *again = dg_neg(g, a);
    CHECK_OK(dg_scope_pop(g));
    dg_node *loss = dg_sum(g, again);
    CHECK(strcmp(dg_node_scope(w), "dense1") == 0 && strcmp(dg_node_scope(h), "dense1") == 0);
    CHECK(strcmp(dg_node_scope(a), "dense1/act") == 0);
    CHECK(dg_node_scope(again) == dg_node_scope(w));
    CHECK(dg_node_scope(loss) == NULL);
    /* names: copied, replaceable, clearable; op nodes start unnamed */
    char buf[8] = "hidden";
    CHECK(dg_node_name(h) == NULL);
    CHECK_OK(dg_node_set_name(h, buf));
    buf[0] = 'X';
    CHECK(strcmp(dg_node_name(h), "hidden") == 0);
    CHECK_OK(dg_node_set_name(h, "renamed"));
    CHECK(strcmp(dg_node_name(h), "renamed") == 0);
    CHECK_OK(dg_node_set_name(h, NULL));
    CHECK(dg_node_name(h) == NULL);
    CHECK(strcmp(dg_node_op_name(x), "input") == 0 && strcmp(dg_node_op_name(w), "param") == 0);
    CHECK(strcmp(dg_node_op_name(h), "matmul") == 0 && dg_node_kind_of(w) == DG_PARAM);
    CHECK(dg_node_requires_grad(w) && !dg_node_requires_grad(x) && dg_node_requires_grad(loss));
    /* iteration: index = id, every input comes earlier (creation order is topological) */
    int n = dg_graph_node_count(g), user = n;
    CHECK(n == 6); /* x, W, matmul, relu, neg, sum */
    CHECK_OK(dg_backward(g, loss));
    n = dg_graph_node_count(g);
    CHECK(n > user);
    int seen_grad_of_w = 0;
    for (int i = 0; i < n; i++) {
        dg_node *node = dg_graph_node(g, i);
        CHECK(node != NULL && dg_node_id(node) == i && dg_node_graph(node) == g);
        for (int k = 0; k < dg_node_input_count(node); k++)
            CHECK(dg_node_id(dg_node_input(node, k)) < i);
        CHECK(dg_node_backward_pass(node) == (i < user ? 0 : 1));
        if (dg_node_grad_of(node) == w) {
            seen_grad_of_w = 1;
            CHECK(node == dg_grad(w));
        }
    }
    CHECK(seen_grad_of_w);
    CHECK(dg_graph_node(g, n) == NULL && dg_graph_node(g, -1) == NULL);
    CHECK(dg_grad(x) == NULL); /* x needs no gradient */
    dg_graph_free(g);
}

int main(void) {
    test_only_dependencies();
    test_feed_and_rerun();
    test_no_accumulation();
    test_gradients_leave_grad();
    test_anomaly();
    test_threads_deterministic();
    test_names_scopes_iteration();
    return test_summary("test_core_run");
}
