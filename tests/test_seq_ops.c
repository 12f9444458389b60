/* The sequence ops: embedding lookup, concat, stack, slice, split and layer norm. Values
 * against hand-computed results, gradients (and second derivatives where the rules allow)
 * against central finite differences, run-time errors for bad indices, and shapes that
 * follow a changing batch size. */
#include "test_util.h"

#include <string.h>

static dg_node *weighted_sum(dg_graph *g, dg_node *y) {
    dg_node *w = dg_input(g, NULL, dg_node_shape(y));
    test_fill(w, -1.0f, 1.0f);
    return dg_sum(g, dg_mul(g, y, w));
}

static void check_grad(const char *what, dg_graph *g, dg_node *loss, int n, dg_node **leaves) {
    dg_gradcheck_report r;
    CHECK_MSG(loss != NULL, "%s: %s", what, dg_graph_error(g));
    if (!loss) return;
    dg_status s = dg_gradcheck(g, loss, n, leaves, 1e-2, 2e-3, 2e-2, &r);
    CHECK_MSG(s == DG_OK, "%s: gradcheck %s: %s", what, dg_status_name(s), dg_graph_error(g));
    CHECK_MSG(r.passed, "%s: max abs %.3g rel %.3g at leaf %d[%lld]: analytic %.6g numeric %.6g",
              what, r.max_abs_err, r.max_rel_err, r.worst_leaf, (long long)r.worst_index,
              r.worst_analytic, r.worst_numeric);
    CHECK(r.checked > 0);
}

static dg_node *grad_input(dg_graph *g, const char *name, dg_shape s) {
    dg_node *x = dg_input(g, name, s);
    dg_set_requires_grad(x, 1);
    test_fill(x, -1.5f, 1.5f);
    return x;
}

static void test_concat_values(void) {
    dg_graph *g = dg_graph_new(1);
    float a[] = {1, 2, 3, 4}, b[] = {5, 6};
    dg_node *x = dg_const(g, "a", dg_shape2(2, 2), a, 0),
            *y = dg_const(g, "b", dg_shape2(2, 1), b, 0);
    dg_node *xs[2] = {x, y};
    dg_node *c = dg_concat(g, 2, xs, -1);
    dg_node *r0 = dg_concat(g, 2, (dg_node *[]){x, x}, 0);
    dg_node *st = dg_stack(g, 2, (dg_node *[]){x, x}, 1);
    dg_node *sl = dg_slice(g, c, 1, 1, 2);
    CHECK_OK(dg_run_many(g, 4, (dg_node *[]){c, r0, st, sl}));
    float want_c[] = {1, 2, 5, 3, 4, 6}, want_st[] = {1, 2, 1, 2, 3, 4, 3, 4},
          want_sl[] = {2, 5, 4, 6};
    CHECK(dg_shape_equal(dg_node_shape(c), dg_shape2(2, 3)));
    CHECK(dg_shape_equal(dg_node_shape(r0), dg_shape2(4, 2)));
    CHECK(dg_shape_equal(dg_node_shape(st), dg_shape3(2, 2, 2)));
    CHECK(dg_shape_equal(dg_node_shape(sl), dg_shape2(2, 2)));
    CHECK(memcmp(dg_node_data(c), want_c, sizeof want_c) == 0);
    CHECK(memcmp(dg_node_data(st), want_st, sizeof want_st) == 0);
    CHECK(memcmp(dg_node_data(sl), want_sl, sizeof want_sl) == 0);
    CHECK(dg_node_data(r0)[4] == 1 && dg_node_data(r0)[7] == 4);
    /* errors name the op and the shapes; the graph is unchanged */
    int nodes = dg_graph_node_count(g);
    CHECK(dg_concat(g, 2, (dg_node *[]){x, dg_const(g, NULL, dg_shape2(3, 1), NULL, 0)}, 1) ==
          NULL);
    CHECK(strstr(dg_graph_error(g), "concat: input 1 has shape [3,1], input 0 [2,2]") != NULL);
    CHECK(dg_stack(g, 2, xs, 0) == NULL);
    CHECK(strstr(dg_graph_error(g), "stack:") != NULL);
    CHECK(dg_slice(g, x, 1, 1, 2) == NULL && dg_graph_status(g) == DG_ERR_SHAPE);
    CHECK(strstr(dg_graph_error(g), "slice: [1, 3) along axis 1 is outside shape [2,2]") != NULL);
    CHECK(dg_concat(g, 1, xs, 2) == NULL && dg_graph_status(g) == DG_ERR_ARG);
    CHECK(dg_concat(g, 0, xs, 0) == NULL);
    dg_node *parts[3];
    CHECK(dg_split(g, x, 1, 3, parts) == DG_ERR_SHAPE && parts[0] == NULL);
    CHECK(dg_graph_node_count(g) == nodes + 1); /* the [3,1] constant above */
    CHECK_OK(dg_split(g, c, 1, 3, parts));
    CHECK_OK(dg_run(g, parts[2]));
    CHECK(dg_node_data(parts[2])[0] == 5 && dg_node_data(parts[2])[1] == 6);
    dg_graph_free(g);
}

static void test_concat_grads(void) {
    dg_graph *g = dg_graph_new(2);
    dg_node *a = grad_input(g, "a", dg_shape3(2, 3, 2)),
            *b = grad_input(g, "b", dg_shape3(2, 1, 2));
    dg_node *c = grad_input(g, "c", dg_shape3(2, 2, 2));
    dg_node *leaves[3] = {a, b, c};
    check_grad("concat axis 1", g, weighted_sum(g, dg_concat(g, 3, leaves, 1)), 3, leaves);
    dg_graph_free(g);

    g = dg_graph_new(3);
    dg_node *x[4];
    for (int k = 0; k < 4; k++) x[k] = grad_input(g, NULL, dg_shape2(3, 2));
    check_grad("stack axis 1", g, weighted_sum(g, dg_stack(g, 4, x, 1)), 4, x);
    check_grad("stack axis 0", g, weighted_sum(g, dg_stack(g, 4, x, 0)), 4, x);
    check_grad("stack axis -1", g, weighted_sum(g, dg_stack(g, 4, x, -1)), 4, x);
    dg_graph_free(g);

    g = dg_graph_new(4);
    dg_node *y = grad_input(g, "y", dg_shape3(2, 5, 3));
    dg_node *s = dg_mul(g, dg_slice(g, y, 1, 1, 3), dg_slice(g, y, 1, 2, 3)); /* overlapping */
    check_grad("slice", g, weighted_sum(g, s), 1, &y);
    /* second derivative through slice's pad and back */
    dg_node *loss = weighted_sum(g, dg_mul(g, s, s));
    CHECK_OK(dg_backward(g, loss));
    dg_node *v = dg_const(g, "v", dg_node_shape(y), NULL, 0.5f);
    check_grad("slice, second derivative", g, dg_sum(g, dg_mul(g, dg_grad(y), v)), 1, &y);
    dg_graph_free(g);
}

static void test_stack_follows_batch(void) {
    dg_graph *g = dg_graph_new(5);
    dg_node *a = dg_input(g, "a", dg_shape2(DG_BATCH, 2)),
            *b = dg_input(g, "b", dg_shape2(DG_BATCH, 2));
    dg_node *st = dg_stack(g, 2, (dg_node *[]){a, b}, 1);
    dg_node *back = dg_slice(g, st, 1, 1, 1);
    float av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {7, 8, 9, 10, 11, 12};
    for (int rows = 1; rows <= 3; rows += 2) {
        CHECK_OK(dg_feed(a, av, 2 * rows));
        CHECK_OK(dg_feed(b, bv, 2 * rows));
        CHECK_OK(dg_run(g, back));
        CHECK(dg_shape_equal(dg_node_shape(back), dg_shape3(rows, 1, 2)));
        CHECK(dg_node_data(back)[2 * rows - 1] == bv[2 * rows - 1]);
    }
    dg_graph_free(g);
}

static void test_embedding(void) {
    dg_graph *g = dg_graph_new(6);
    dg_node *table = dg_param(g, "table", dg_shape2(5, 3));
    test_fill(table, -1, 1);
    dg_node *idx = dg_input(g, "idx", dg_shape2(2, 3));
    float iv[6] = {4, 0, 4, 2, 4, 1}; /* row 4 three times, row 3 never */
    CHECK_OK(dg_feed(idx, iv, 6));
    dg_node *e = dg_embedding_lookup(g, table, idx);
    CHECK(e && dg_shape_equal(dg_node_shape(e), dg_shape3(2, 3, 3)));
    CHECK_OK(dg_run(g, e));
    CHECK(memcmp(dg_node_data(e) + 9, dg_node_data(table) + 6, 3 * sizeof(float)) == 0);
    dg_node *w = dg_input(g, "w", dg_node_shape(e));
    dg_set_requires_grad(w, 1);
    test_fill(w, -1, 1);
    dg_node *loss = dg_sum(g, dg_mul(g, dg_mul(g, e, e), w));
    dg_node *leaves[2] = {table, w};
    check_grad("embedding", g, loss, 2, leaves);
    /* the table's gradient: row 3 is never looked up, so exactly zero */
    CHECK_OK(dg_backward(g, loss));
    CHECK_OK(dg_run(g, dg_grad(table)));
    const float *gt = dg_node_data(dg_grad(table));
    CHECK(gt[9] == 0.0f && gt[10] == 0.0f && gt[11] == 0.0f && gt[12] != 0.0f);
    /* second derivative: through embedding_grad back to a lookup */
    dg_node *v = dg_const(g, "v", dg_shape2(5, 3), NULL, 0.25f);
    check_grad("embedding, second derivative", g, dg_sum(g, dg_mul(g, dg_grad(table), v)), 2,
               leaves);

    /* indices out of range or not integers: run-time errors naming index and position */
    float bad[6] = {0, 1, 5, 2, 3, 4};
    CHECK_OK(dg_feed(idx, bad, 6));
    float before[15];
    memcpy(before, dg_node_data(table), sizeof before);
    CHECK(dg_run(g, e) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "embedding: index 5 at position 2 is not an integer row "
                                        "in [0,5)") != NULL,
              "%s", dg_graph_error(g));
    CHECK(dg_run(g, dg_grad(table)) == DG_ERR_ARG);
    bad[2] = 1.5f;
    CHECK_OK(dg_feed(idx, bad, 6));
    CHECK(dg_run(g, e) == DG_ERR_ARG && strstr(dg_graph_error(g), "index 1.5 at position 2"));
    bad[2] = -1.0f;
    CHECK_OK(dg_feed(idx, bad, 6));
    CHECK(dg_run(g, e) == DG_ERR_ARG);
    CHECK(memcmp(before, dg_node_data(table), sizeof before) == 0);
    /* shapes */
    CHECK(dg_embedding_lookup(g, idx, dg_input(g, NULL, dg_shape4(1, 1, 1, 1))) == NULL);
    CHECK(strstr(dg_graph_error(g), "embedding: needs a table [V,E]") != NULL);
    dg_graph_free(g);
}

static void test_layer_norm(void) {
    dg_graph *g = dg_graph_new(7);
    float xv[8] = {1, 2, 3, 4, -1, -1, 1, 1};
    dg_node *c = dg_const(g, "c", dg_shape2(2, 4), xv, 0);
    dg_node *y = dg_layer_norm(g, c, 1e-5f);
    CHECK_OK(dg_run(g, y));
    /* row 0: mean 2.5, variance 1.25 */
    CHECK_NEAR(dg_node_data(y)[0], -1.5 / sqrt(1.25 + 1e-5), 1e-5);
    CHECK_NEAR(dg_node_data(y)[7], 1.0 / sqrt(1.0 + 1e-5), 1e-5);
    dg_node *x = grad_input(g, "x", dg_shape3(2, 3, 5));
    dg_node *loss = weighted_sum(g, dg_layer_norm(g, x, 1e-5f));
    check_grad("layer_norm", g, loss, 1, &x);
    dg_node *loss2 = weighted_sum(g, dg_tanh(g, dg_layer_norm(g, x, 1e-3f)));
    CHECK_OK(dg_backward(g, loss2));
    dg_node *v = dg_const(g, "v", dg_node_shape(x), NULL, 0.3f);
    check_grad("layer_norm, second derivative", g, dg_sum(g, dg_mul(g, dg_grad(x), v)), 1, &x);
    CHECK(dg_layer_norm(g, x, 0.0f) == NULL && strstr(dg_graph_error(g), "layer_norm: eps"));
    CHECK(dg_layer_norm(g, dg_scalar(g, 1), 1e-5f) == NULL);
    dg_graph_free(g);
}

/* The fused cell ops: gradients of every input; no second derivative (a clean error, graph
 * unchanged); the layer-norm layer's parameters. */
static void test_cells(void) {
    dg_graph *g = dg_graph_new(9);
    dg_node *z = grad_input(g, "z", dg_shape2(3, 8)), *c = grad_input(g, "c", dg_shape2(3, 2));
    dg_node *hc = dg_lstm_cell(g, z, c);
    CHECK(hc && dg_shape_equal(dg_node_shape(hc), dg_shape2(3, 4)));
    dg_node *leaves[3] = {z, c};
    check_grad("lstm_cell", g, weighted_sum(g, dg_tanh(g, hc)), 2, leaves);
    dg_node *a = grad_input(g, "a", dg_shape2(3, 6)), *b = grad_input(g, "b", dg_shape2(3, 6));
    dg_node *h = grad_input(g, "h", dg_shape2(3, 2));
    dg_node *gl[3] = {a, b, h};
    dg_node *hn = dg_gru_cell(g, a, b, h);
    dg_node *loss = weighted_sum(g, dg_mul(g, hn, hn));
    check_grad("gru_cell", g, loss, 3, gl);
    CHECK_OK(dg_backward(g, loss));
    int nodes = dg_graph_node_count(g);
    dg_node *gg = dg_sum(g, dg_grad(a));
    CHECK(dg_backward(g, gg) == DG_ERR_UNSUPPORTED);
    CHECK(strstr(dg_graph_error(g), "gru_cell_grad") != NULL);
    CHECK(dg_graph_node_count(g) == nodes + 1);
    CHECK(dg_lstm_cell(g, z, h) != NULL); /* [3,8] and [3,2]: H = 2 */
    CHECK(dg_lstm_cell(g, a, h) == NULL); /* 6 is not 4 H */
    CHECK(strstr(dg_graph_error(g), "lstm_cell: needs gates z [B,4H]"));
    CHECK(dg_gru_cell(g, a, z, h) == NULL && dg_graph_status(g) == DG_ERR_SHAPE);
    dg_node *y = dg_layer_norm_layer(g, "ln", z, 1e-5f);
    CHECK(y && dg_graph_find(g, "ln/gain") && dg_graph_find(g, "ln/bias"));
    CHECK(dg_node_data(dg_graph_find(g, "ln/gain"))[7] == 1.0f);
    CHECK(dg_layer_norm_layer(g, "ln", z, 1e-5f) == NULL && dg_graph_status(g) == DG_ERR_ARG);
    dg_graph_free(g);
}

/* Results do not depend on the thread count (the scatter-add in particular). */
static void test_threads(void) {
    float out[2][64 * 48];
    for (int t = 0; t < 2; t++) {
        dg_set_num_threads(t + 1);
        dg_graph *g = dg_graph_new(8);
        dg_node *table = dg_param(g, "table", dg_shape2(64, 48));
        test_rng_state = 99;
        test_fill(table, -1, 1);
        dg_node *idx = dg_input(g, "idx", dg_shape1(4096));
        float *iv = malloc(4096 * sizeof *iv);
        for (int i = 0; i < 4096; i++) iv[i] = (float)((i * 7919) % 61);
        dg_feed(idx, iv, 4096);
        free(iv);
        dg_node *e = dg_embedding_lookup(g, table, idx);
        dg_node *loss = dg_sum(g, dg_mul(g, dg_layer_norm(g, e, 1e-5f), e));
        CHECK_OK(dg_backward(g, loss));
        CHECK_OK(dg_run(g, dg_grad(table)));
        memcpy(out[t], dg_node_data(dg_grad(table)), sizeof out[t]);
        dg_graph_free(g);
    }
    dg_set_num_threads(0);
    CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0);
}

int main(void) {
    test_concat_values();
    test_concat_grads();
    test_stack_follows_batch();
    test_embedding();
    test_layer_norm();
    test_cells();
    test_threads();
    return test_summary("test_seq_ops");
}
