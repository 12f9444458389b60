/* Recurrent cells and unrolling: one step of each cell against the formulas computed here
 * in plain C, gradients of unrolled RNN/GRU/LSTM nets (with and without layer norm) against
 * finite differences, the state carried between segments (two segments of T steps give the
 * same outputs as one of 2T, and the carry does not disturb the gradients of the run it is
 * in), batch changes, and clear errors. */
#include "test_util.h"

#include <string.h>

enum { B = 2, IN = 3, H = 4, T = 3 };

static float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

/* out[b,j] = x[b,:] W[:,gate H + j] + h[b,:] U[:,gate H + j] + b1[gate H + j] (+ b2 ...), for
 * parameters packed by gate (G gates); W, U or b2 may be NULL (left out). */
static void pre_ref(const float *x, const float *h, dg_node *w, dg_node *u, dg_node *b1,
                    dg_node *b2, int gate, int G, float *out) {
    for (int r = 0; r < B; r++)
        for (int j = 0; j < H; j++) {
            int col = gate * H + j;
            float s = dg_node_data(b1)[col] + (b2 ? dg_node_data(b2)[col] : 0.0f);
            for (int k = 0; w && k < IN; k++) s += x[r * IN + k] * dg_node_data(w)[k * G * H + col];
            for (int k = 0; u && k < H; k++) s += h[r * H + k] * dg_node_data(u)[k * G * H + col];
            out[r * H + j] = s;
        }
}

static dg_node *param(dg_graph *g, const char *name) {
    dg_node *p = dg_graph_find(g, name);
    CHECK_MSG(p != NULL, "no parameter %s", name);
    return p;
}

static void test_step_values(void) {
    for (int kind = DG_CELL_GRU; kind <= DG_CELL_LSTM; kind++) {
        dg_graph *g = dg_graph_new(3);
        dg_cell *c = dg_cell_new(g, (dg_cell_kind)kind, "cell", IN, H, NULL);
        CHECK(c != NULL && strcmp(dg_cell_name(c), "cell") == 0 && dg_cell_units(c) == H);
        dg_node *x = dg_input(g, "x", dg_shape2(B, IN)), *h = dg_input(g, "h", dg_shape2(B, H));
        dg_node *cs = dg_input(g, "c", dg_shape2(B, H));
        test_fill(x, -1, 1);
        test_fill(h, -1, 1);
        test_fill(cs, -1, 1);
        /* biases away from zero so that a wrong one shows */
        for (int i = 0; i < dg_graph_node_count(g); i++) {
            dg_node *n = dg_graph_node(g, i);
            if (dg_node_kind_of(n) == DG_PARAM && dg_node_shape(n).ndim == 1)
                test_fill(n, -0.5f, 0.5f);
        }
        dg_cell_state next, prev = {h, kind == DG_CELL_LSTM ? cs : NULL};
        dg_node *y = dg_cell_step(g, c, x, prev, &next);
        CHECK_MSG(y != NULL, "%s", dg_graph_error(g));
        if (!y) {
            dg_graph_free(g);
            continue;
        }
        if (next.c) dg_keep(next.c);
        CHECK_OK(dg_run_many(g, next.c ? 2 : 1, (dg_node *[]){y, next.c}));
        const float *xv = dg_node_data(x), *hv = dg_node_data(h), *cv = dg_node_data(cs);
        dg_node *W = param(g, "cell/W"), *U = param(g, "cell/U"), *b = param(g, "cell/b");
        float want[B * H], want_c[B * H];
        if (kind == DG_CELL_LSTM) {
            float p[4][B * H];
            for (int k = 0; k < 4; k++) pre_ref(xv, hv, W, U, b, NULL, k, 4, p[k]);
            for (int i = 0; i < B * H; i++) {
                want_c[i] = sigm(p[1][i]) * cv[i] + sigm(p[0][i]) * tanhf(p[2][i]);
                want[i] = sigm(p[3][i]) * tanhf(want_c[i]);
            }
            for (int i = 0; i < B * H; i++) CHECK_NEAR(dg_node_data(next.c)[i], want_c[i], 2e-6);
        } else {
            float r[B * H], z[B * H], xn[B * H], hn[B * H];
            dg_node *cb = param(g, "cell/c");
            pre_ref(xv, hv, W, U, b, cb, 0, 3, r);
            pre_ref(xv, hv, W, U, b, cb, 1, 3, z);
            /* n = tanh(x W_n + b_n + r (h U_n + c_n)) */
            pre_ref(xv, hv, W, NULL, b, NULL, 2, 3, xn);
            pre_ref(xv, hv, NULL, U, cb, NULL, 2, 3, hn);
            for (int i = 0; i < B * H; i++) {
                float n = tanhf(xn[i] + sigm(r[i]) * hn[i]);
                want[i] = (1 - sigm(z[i])) * n + sigm(z[i]) * hv[i];
            }
        }
        for (int i = 0; i < B * H; i++) CHECK_NEAR(dg_node_data(y)[i], want[i], 2e-6);
        dg_graph_free(g);
    }
}

static void test_lstm_init(void) {
    dg_graph *g = dg_graph_new(4);
    dg_cell *c = dg_lstm(g, NULL, IN, H);
    CHECK(c && strcmp(dg_cell_name(c), "lstm1") == 0);
    const float *b = dg_node_data(param(g, "lstm1/b")); /* gates i, f, g, o */
    CHECK(b && b[0] == 0.0f && b[H - 1] == 0.0f && b[H] == 1.0f && b[2 * H - 1] == 1.0f &&
          b[2 * H] == 0.0f && b[4 * H - 1] == 0.0f);
    CHECK(dg_param_count(g) == 4 * (IN * H + H * H + H));
    dg_cell *c2 = dg_lstm(g, NULL, IN, H);
    CHECK(c2 && strcmp(dg_cell_name(c2), "lstm2") == 0);
    int nodes = dg_graph_node_count(g);
    CHECK(dg_lstm(g, "lstm1", IN, H) == NULL && dg_graph_status(g) == DG_ERR_ARG);
    CHECK(strstr(dg_graph_error(g), "lstm: a parameter named 'lstm1/W' already exists"));
    CHECK(dg_gru(g, "x", 0, H) == NULL && strstr(dg_graph_error(g), "gru: inputs and units"));
    CHECK(dg_graph_node_count(g) == nodes);
    dg_graph_free(g);
}

/* An unrolled net with per-step inputs that need gradients too. */
static void gradcheck_unrolled(dg_cell_kind kind, int layer_norm) {
    dg_graph *g = dg_graph_new(5 + (uint64_t)kind);
    dg_cell_options o = dg_cell_defaults();
    o.layer_norm = layer_norm;
    dg_cell *c = dg_cell_new(g, kind, "cell", IN, H, &o);
    dg_node *xs[T], *leaves[64];
    int n = 0;
    for (int t = 0; t < T; t++) {
        xs[t] = dg_input(g, NULL, dg_shape2(B, IN));
        dg_set_requires_grad(xs[t], 1);
        test_fill(xs[t], -1, 1);
        leaves[n++] = xs[t];
    }
    dg_unrolled u;
    CHECK_OK(dg_unroll(g, c, T, xs, &u));
    dg_node *labels = dg_input(g, "labels", dg_shape2(B, T));
    float lv[B * T] = {0, 1, 2, 2, 1, 0};
    dg_feed(labels, lv, B * T);
    dg_node *loss = dg_seq_cross_entropy(g, "out", &u, labels, 3, NULL);
    CHECK_MSG(loss != NULL, "%s", dg_graph_error(g));
    /* a non-zero starting state, so that U's gradient at step 0 matters */
    test_fill(u.init.h, -1, 1);
    if (u.init.c) test_fill(u.init.c, -1, 1);
    for (int i = 0; i < dg_graph_node_count(g) && n < 64; i++)
        if (dg_node_kind_of(dg_graph_node(g, i)) == DG_PARAM) leaves[n++] = dg_graph_node(g, i);
    dg_gradcheck_report r;
    dg_status s = loss ? dg_gradcheck(g, loss, n, leaves, layer_norm ? 2e-3 : 1e-2, 1e-3, 2e-2, &r)
                       : DG_ERR_NULL;
    CHECK_MSG(s == DG_OK && r.passed,
              "cell %d ln %d: %s max abs %.3g rel %.3g leaf %d[%lld] analytic %.6g numeric %.6g",
              (int)kind, layer_norm, dg_graph_error(g), r.max_abs_err, r.max_rel_err, r.worst_leaf,
              (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
    dg_graph_free(g);
}

/* Two segments of T steps with the state carried equal one segment of 2T steps. */
static void test_carry(dg_cell_kind kind) {
    enum { S = 2 * T, ROWS = 3 };
    float xv[ROWS * S * IN];
    for (int i = 0; i < ROWS * S * IN; i++) xv[i] = test_uniform(-1, 1);
    float long_h[ROWS * H], seg_h[ROWS * H];
    for (int variant = 0; variant < 2; variant++) {
        int steps = variant ? T : S;
        dg_graph *g = dg_graph_new(9);
        dg_cell *c = dg_cell_new(g, kind, "c", IN, H, NULL);
        dg_node *x = dg_input(g, "x", dg_shape3(DG_BATCH, steps, IN));
        dg_node *xs[S];
        CHECK_OK(dg_unstack(g, x, 1, xs));
        dg_unrolled u;
        CHECK_OK(dg_unroll(g, c, steps, xs, &u));
        CHECK_OK(dg_unrolled_reset(&u, ROWS));
        dg_node *last = u.last.h;
        for (int seg = 0; seg < S / steps; seg++) {
            /* this segment's inputs: rows of [ROWS, steps, IN] cut from [ROWS, S, IN] */
            float part[ROWS * S * IN];
            for (int r = 0; r < ROWS; r++)
                memcpy(part + r * steps * IN, xv + (r * S + seg * steps) * IN,
                       (size_t)steps * IN * sizeof(float));
            CHECK_OK(dg_feed(x, part, ROWS * steps * IN));
            CHECK_OK(dg_run_many(g, 2, (dg_node *[]){last, u.carry}));
        }
        memcpy(variant ? seg_h : long_h, dg_node_data(last), sizeof long_h);
        /* the carried state is the last output */
        CHECK(memcmp(dg_node_data(u.init.h), dg_node_data(last), sizeof long_h) == 0);
        /* a new batch size without a reset: a clear error */
        float two[2 * S * IN] = {0};
        CHECK_OK(dg_feed(x, two, 2 * steps * IN));
        CHECK(dg_run(g, last) == DG_ERR_SHAPE);
        CHECK_MSG(strstr(dg_graph_error(g), "batch inputs disagree") != NULL, "%s",
                  dg_graph_error(g));
        CHECK_OK(dg_unrolled_reset(&u, 2));
        CHECK_OK(dg_run_many(g, 2, (dg_node *[]){last, u.carry}));
        dg_graph_free(g);
    }
    for (int i = 0; i < ROWS * H; i++) CHECK_NEAR(seg_h[i], long_h[i], 1e-6);
}

/* Running the carry in the same run as the gradients changes none of them: every reader of
 * the initial state runs before it is overwritten. */
static void test_carry_order(void) {
    float grads[2][H * 4 * H];
    for (int with_carry = 0; with_carry < 2; with_carry++) {
        dg_graph *g = dg_graph_new(11);
        dg_cell *c = dg_lstm(g, "l", IN, H);
        dg_node *x = dg_input(g, "x", dg_shape3(DG_BATCH, T, IN));
        test_rng_state = 5;
        test_fill(x, -1, 1);
        dg_node *xs[T];
        dg_unstack(g, x, 1, xs);
        dg_unrolled u;
        CHECK_OK(dg_unroll(g, c, T, xs, &u));
        test_fill(u.init.h, -1, 1);
        test_fill(u.init.c, -1, 1);
        dg_node *labels = dg_input(g, "y", dg_shape2(DG_BATCH, T));
        float lv[T] = {1, 0, 2};
        dg_feed(labels, lv, T);
        dg_node *loss = dg_seq_cross_entropy(g, "out", &u, labels, 3, NULL);
        CHECK_OK(dg_backward(g, loss));
        dg_node *gu = dg_grad(dg_graph_find(g, "l/U"));
        /* a plan order that would run the carry as early as it could */
        CHECK_OK(dg_set_plan_order(g, DG_ORDER_LATEST_FIRST, 0));
        CHECK_OK(with_carry ? dg_run_many(g, 2, (dg_node *[]){gu, u.carry}) : dg_run(g, gu));
        memcpy(grads[with_carry], dg_node_data(gu), sizeof grads[0]);
        dg_graph_free(g);
    }
    CHECK(memcmp(grads[0], grads[1], sizeof grads[0]) == 0);
}

static void test_errors(void) {
    dg_graph *g = dg_graph_new(12);
    dg_cell *c = dg_gru(g, "g", IN, H);
    dg_node *xs[2] = {dg_input(g, NULL, dg_shape2(B, IN)), dg_input(g, NULL, dg_shape2(B, IN + 1))};
    dg_unrolled u;
    int nodes = dg_graph_node_count(g);
    CHECK(dg_unroll(g, c, 2, xs, &u) == DG_ERR_SHAPE && u.carry == NULL);
    CHECK_MSG(
        strstr(dg_graph_error(g), "unroll: the input of step 1 is [2,4], that of step 0 [2,3]"),
        "%s", dg_graph_error(g));
    CHECK(dg_unroll(g, c, 1, &xs[1], &u) == DG_ERR_SHAPE);
    CHECK(strstr(dg_graph_error(g), "unroll: gru 'g' takes inputs [batch,3], got [2,4]"));
    CHECK(dg_unroll(g, c, 0, xs, &u) == DG_ERR_ARG);
    CHECK(dg_graph_node_count(g) == nodes);
    CHECK_OK(dg_unroll(g, c, 1, xs, &u));
    dg_node *labels = dg_input(g, NULL, dg_shape2(B, 2));
    CHECK(dg_seq_cross_entropy(g, "o", &u, labels, 5, NULL) == NULL);
    CHECK(strstr(dg_graph_error(g), "labels must be [batch,1] (one per step), got [2,2]"));
    dg_cell_state next;
    CHECK(dg_cell_step(g, c, xs[0], (dg_cell_state){NULL, NULL}, &next) == NULL);
    dg_graph_free(g);
}

/* dg_unroll_tokens gives what dg_unroll over embedding lookups gives, and its gradients
 * (through the projected table) match finite differences. */
static void test_tokens(dg_cell_kind kind, int layer_norm) {
    float out[2][B * H];
    for (int via_tokens = 0; via_tokens < 2; via_tokens++) {
        dg_graph *g = dg_graph_new(13);
        dg_cell_options o = dg_cell_defaults();
        o.layer_norm = layer_norm;
        dg_cell *c = dg_cell_new(g, kind, "l", IN, H, &o);
        dg_node *table = dg_embedding(g, "e", 5, IN);
        dg_node *tok = dg_input(g, "tok", dg_shape2(DG_BATCH, T));
        float tv[B * T] = {0, 4, 2, 2, 3, 1};
        dg_feed(tok, tv, B * T);
        dg_unrolled u;
        if (via_tokens) {
            CHECK_OK(dg_unroll_tokens(g, c, table, tok, &u));
        } else {
            dg_node *idx[T], *xs[T];
            CHECK_OK(dg_unstack(g, tok, 1, idx));
            for (int t = 0; t < T; t++) xs[t] = dg_embedding_lookup(g, table, idx[t]);
            CHECK_OK(dg_unroll(g, c, T, xs, &u));
        }
        CHECK_OK(dg_unrolled_reset(&u, B));
        CHECK_OK(dg_run(g, u.last.h));
        memcpy(out[via_tokens], dg_node_data(u.last.h), sizeof out[0]);
        if (via_tokens) {
            dg_node *labels = dg_input(g, "y", dg_shape2(B, T));
            float lv[B * T] = {1, 2, 0, 0, 1, 2};
            dg_feed(labels, lv, B * T);
            dg_node *loss = dg_seq_cross_entropy(g, "o", &u, labels, 3, NULL);
            dg_node *leaves[3] = {table, dg_graph_find(g, "l/W"), dg_graph_find(g, "l/U")};
            dg_gradcheck_report r;
            CHECK_OK(dg_gradcheck(g, loss, 3, leaves, layer_norm ? 2e-3 : 1e-2, 1e-3, 2e-2, &r));
            CHECK_MSG(r.passed, "tokens %d %d: max rel %.3g", (int)kind, layer_norm, r.max_rel_err);
            /* a token outside the table: a run-time error */
            tv[3] = 5;
            dg_feed(tok, tv, B * T);
            CHECK(dg_run(g, loss) == DG_ERR_ARG);
            CHECK(
                strstr(dg_graph_error(g), "index 5 at position 1 is not an integer row in [0,5)"));
            CHECK(dg_unroll_tokens(g, c, dg_node_input(dg_graph_find(g, "l/W"), 0), tok, &u) !=
                  DG_OK);
            CHECK(dg_unroll_tokens(g, c, dg_input(g, NULL, dg_shape2(5, 4)), tok, &u) ==
                  DG_ERR_SHAPE);
            CHECK(strstr(dg_graph_error(g), "needs a table [V,3] and tokens [batch,steps]"));
        }
        dg_graph_free(g);
    }
    for (int i = 0; i < B * H; i++) CHECK_NEAR(out[0][i], out[1][i], 1e-6);
}

/* Two training steps of an unrolled LSTM and GRU give bitwise the same weights with 1 and 2
 * threads (sizes large enough for the kernels to split their work). */
static void test_threads(void) {
    enum { TB = 48, TT = 6, TH = 96, TV = 20 };
    float w[2][2][TH * 4 * TH];
    for (int kind = 0; kind < 2; kind++)
        for (int threads = 1; threads <= 2; threads++) {
            dg_set_num_threads(threads);
            dg_graph *g = dg_graph_new(21);
            dg_cell *c = dg_cell_new(g, kind ? DG_CELL_GRU : DG_CELL_LSTM, "c", 16, TH, NULL);
            dg_node *table = dg_embedding(g, "e", TV, 16);
            dg_node *tok = dg_input(g, "tok", dg_shape2(DG_BATCH, TT));
            dg_node *y = dg_input(g, "y", dg_shape2(DG_BATCH, TT));
            float tv[TB * TT], yv[TB * TT];
            for (int i = 0; i < TB * TT; i++)
                tv[i] = (float)(i * 7 % TV), yv[i] = (float)(i * 3 % TV);
            dg_feed(tok, tv, TB * TT);
            dg_feed(y, yv, TB * TT);
            dg_unrolled u;
            CHECK_OK(dg_unroll_tokens(g, c, table, tok, &u));
            CHECK_OK(dg_unrolled_reset(&u, TB));
            dg_optim_config oc = dg_optim_defaults(DG_ADAM);
            oc.clip_norm = 1.0f;
            dg_optimizer *opt =
                dg_optimizer_new(g, dg_seq_cross_entropy(g, "o", &u, y, TV, NULL), &oc);
            CHECK(opt != NULL);
            for (int step = 0; opt && step < 2; step++)
                CHECK_OK(dg_run_many(g, 2, (dg_node *[]){dg_optimizer_step_node(opt), u.carry}));
            memcpy(w[kind][threads - 1], dg_node_data(dg_graph_find(g, "c/U")),
                   sizeof(float) * TH * (kind ? 3 : 4) * TH);
            dg_graph_free(g);
        }
    dg_set_num_threads(0);
    CHECK(memcmp(w[0][0], w[0][1], sizeof w[0][0]) == 0);
    CHECK(memcmp(w[1][0], w[1][1], sizeof(float) * TH * 3 * TH) == 0);
}

int main(void) {
    test_threads();
    test_tokens(DG_CELL_LSTM, 0);
    test_tokens(DG_CELL_GRU, 1);
    test_tokens(DG_CELL_RNN, 1);
    test_step_values();
    test_lstm_init();
    for (int k = DG_CELL_RNN; k <= DG_CELL_LSTM; k++) {
        gradcheck_unrolled((dg_cell_kind)k, 0);
        gradcheck_unrolled((dg_cell_kind)k, 1);
        test_carry((dg_cell_kind)k);
    }
    test_carry_order();
    test_errors();
    return test_summary("test_layers_rnn");
}
