/* Recurrent cells (RNN, GRU, LSTM) as graph builders, their unrolling over T steps with
 * shared parameters, the state carried from one segment to the next (truncated
 * backpropagation through time), embeddings, and a loss over all steps. Everything is
 * ordinary ops, so the engine differentiates the unrolled net like any other graph.
 *
 * Parameters are packed by gate as in PyTorch (transposed): W [in,G*H], U [H,G*H], b [G*H],
 * gates LSTM i, f, g, o (G = 4), GRU r, z, n (G = 3), RNN h (G = 1). A step, x [B,in],
 * h [B,H]:
 *   RNN:   h' = tanh(x W + h U + b)
 *   LSTM:  [h' | c'] = lstm_cell(x W + h U + b, c)          (forget-gate bias starts at 1)
 *   GRU:   h' = gru_cell(x W + b, h U + c, h)                (c: the state side's bias)
 * lstm_cell and gru_cell (src/ops/rnn_cell.c) are the fused pointwise parts. With
 * layer_norm, x W and h U are each normalised per gate and scaled by learned gains before
 * the biases are added (layer-normalised LSTM of Ba, Kiros and Hinton).
 *
 * dg_unroll_tokens takes token ids and an embedding table E instead of step inputs:
 * (E W + b)[ids] = E[ids] W + b, so it projects the table once per run and each step looks
 * up rows of the product (no matrix product and no weight gradient per step on the input
 * side).
 *
 * Unrolling builds each step in scope "<cell>/t=<k>" (the DOT export collapses such step
 * scopes). The state entering step 0 is a batch input per state tensor, "<cell>/h0" (and
 * "<cell>/c0"); the carry node copies the last step's state into them in place (an op that
 * writes leaves), after every other reader of them in the same run, so the next segment
 * starts where this one ended while gradients stop at the segment boundary. */
#include "layer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dg_cell {
    dg_graph *graph;
    dg_cell_kind kind;
    char name[128]; /* the layer's name (its scope below the scope it was created in) */
    int64_t inputs, units;
    int gates;
    dg_cell_options opts;
    dg_node *w, *u, *b;
    dg_node *c;               /* GRU: bias of h U */
    dg_node *gain_x, *gain_h; /* layer norm gains */
    int unrolls;              /* how many unrolls were built (names their state inputs) */
};

static const char *kind_name(dg_cell_kind k) {
    switch (k) {
    case DG_CELL_RNN: return "rnn";
    case DG_CELL_GRU: return "gru";
    case DG_CELL_LSTM: return "lstm";
    }
    return NULL;
}

static int gate_count(dg_cell_kind k) { return k == DG_CELL_RNN ? 1 : k == DG_CELL_GRU ? 3 : 4; }

dg_cell_options dg_cell_defaults(void) {
    dg_cell_options o;
    memset(&o, 0, sizeof o);
    o.forget_bias = 1.0f;
    o.layer_norm_eps = 1e-5f;
    return o;
}

/* A parameter "<scope>/<what>" filled with `init` (fans per gate); NULL with the error set. */
static dg_node *cell_param(dg_graph *g, const char *scope, const char *what, dg_shape shape,
                           dg_init init, int64_t fan_in, int64_t fan_out) {
    char pname[640];
    snprintf(pname, sizeof pname, "%s/%s", scope, what);
    if (dg_graph_find(g, pname)) {
        dg_set_error(g, DG_ERR_ARG,
                     "a parameter named '%s' already exists (give each cell its own name)", pname);
        return NULL;
    }
    dg_node *p = dg_param(g, pname, shape);
    return p && dg_init_fill(p, init, fan_in, fan_out) == DG_OK ? p : NULL;
}

dg_cell *dg_cell_new(dg_graph *g, dg_cell_kind kind, const char *name, int64_t inputs,
                     int64_t units, const dg_cell_options *opts) {
    const char *kn = kind_name(kind);
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "cell: graph is NULL"), NULL;
    if (!kn) return dg_set_error(g, DG_ERR_ARG, "cell: unknown kind %d", (int)kind), NULL;
    if (inputs < 1 || units < 1)
        return dg_set_error(g, DG_ERR_ARG, "%s: inputs and units must be >= 1, got %lld and %lld",
                            kn, (long long)inputs, (long long)units),
               NULL;
    dg_cell_options o = opts ? *opts : dg_cell_defaults();
    if (o.layer_norm && !(o.layer_norm_eps > 0.0f))
        return dg_set_error(g, DG_ERR_ARG, "%s: layer_norm_eps must be > 0, got %g", kn,
                            (double)o.layer_norm_eps),
               NULL;
    dg_cell *c = calloc(1, sizeof *c);
    if (!c) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", kn), NULL;
    c->graph = g;
    c->kind = kind;
    c->inputs = inputs;
    c->units = units;
    c->gates = gate_count(kind);
    c->opts = o;
    dg_mark m = dg_graph_mark(g);
    if (dg__layer_begin(g, name, kn, c->name, sizeof c->name) != DG_OK) {
        free(c);
        return NULL;
    }
    const char *scope = dg_scope_current(g);
    int64_t gh = c->gates * units;
    /* Glorot per gate: each gate's block is an [in,H] (or [H,H]) layer of its own */
    dg_init xavier = {DG_INIT_XAVIER_UNIFORM, 0, 0}, zeros = {DG_INIT_ZEROS, 0, 0};
    dg_init ones = {DG_INIT_CONSTANT, 1.0f, 0};
    int ok = strlen(scope) < 600;
    if (!ok)
        dg_set_error(g, DG_ERR_ARG, "layer name is %zu bytes long with its scopes", strlen(scope));
    if (ok) c->w = cell_param(g, scope, "W", dg_shape2(inputs, gh), xavier, inputs, units);
    if (c->w) c->u = cell_param(g, scope, "U", dg_shape2(units, gh), xavier, units, units);
    if (c->u) c->b = cell_param(g, scope, "b", dg_shape1(gh), zeros, 1, gh);
    if (c->b && kind == DG_CELL_LSTM) /* gate order i, f, g, o */
        for (int64_t j = units; j < 2 * units; j++) dg_node_data(c->b)[j] = o.forget_bias;
    ok = c->b != NULL;
    if (ok && kind == DG_CELL_GRU)
        ok = (c->c = cell_param(g, scope, "c", dg_shape1(gh), zeros, 1, gh)) != NULL;
    if (ok && o.layer_norm) {
        c->gain_x = cell_param(g, scope, "gain_x", dg_shape1(gh), ones, 1, gh);
        c->gain_h = c->gain_x ? cell_param(g, scope, "gain_h", dg_shape1(gh), ones, 1, gh) : NULL;
        ok = c->gain_h != NULL;
    }
    if (ok) ok = dg_graph_attach(g, c, free) == DG_OK;
    /* the cell's first parameter stands for the layer's result in the scope bookkeeping */
    if (!dg__layer_end(g, m, ok ? c->w : NULL, kn)) {
        if (!ok) free(c);
        return NULL;
    }
    return c;
}

dg_cell *dg_rnn(dg_graph *g, const char *name, int64_t inputs, int64_t units) {
    return dg_cell_new(g, DG_CELL_RNN, name, inputs, units, NULL);
}

dg_cell *dg_gru(dg_graph *g, const char *name, int64_t inputs, int64_t units) {
    return dg_cell_new(g, DG_CELL_GRU, name, inputs, units, NULL);
}

dg_cell *dg_lstm(dg_graph *g, const char *name, int64_t inputs, int64_t units) {
    return dg_cell_new(g, DG_CELL_LSTM, name, inputs, units, NULL);
}

const char *dg_cell_name(const dg_cell *cell) { return cell ? cell->name : NULL; }
int64_t dg_cell_units(const dg_cell *cell) { return cell ? cell->units : 0; }

/* ---- one step ---- */

/* v [B,G*H] normalised per gate (over each H-wide block) and scaled by gain [G*H] */
static dg_node *gate_norm(dg_graph *g, const dg_cell *c, dg_node *v, dg_node *gain) {
    dg_node *blocks = dg_reshape(g, v, dg_shape3(-1, c->gates, c->units));
    dg_node *n = dg_layer_norm(g, blocks, c->opts.layer_norm_eps);
    return dg_mul(g, dg_reshape(g, n, dg_shape2(-1, c->gates * c->units)), gain);
}

/* Builds one step in the current scope. The unroll may give x W + b already as xwb (rows of
 * the projected embedding table), else it is computed here. */
static dg_status step_nodes(dg_graph *g, const dg_cell *c, dg_node *x, dg_node *xwb,
                            dg_cell_state prev, dg_cell_state *next) {
    dg_node *hu = dg_matmul(g, prev.h, c->u);
    if (c->opts.layer_norm) hu = gate_norm(g, c, hu, c->gain_h);
    if (!xwb) {
        dg_node *xw = dg_matmul(g, x, c->w);
        if (c->opts.layer_norm) xw = gate_norm(g, c, xw, c->gain_x);
        xwb = dg_add(g, xw, c->b);
    }
    next->h = next->c = NULL;
    switch (c->kind) {
    case DG_CELL_RNN: next->h = dg_tanh(g, dg_add(g, xwb, hu)); break;
    case DG_CELL_GRU: next->h = dg_gru_cell(g, xwb, dg_add(g, hu, c->c), prev.h); break;
    case DG_CELL_LSTM: {
        dg_node *hc = dg_lstm_cell(g, dg_add(g, xwb, hu), prev.c);
        next->h = dg_slice(g, hc, 1, 0, c->units);
        next->c = dg_slice(g, hc, 1, c->units, c->units);
        if (!next->c) next->h = NULL;
        break;
    }
    }
    return next->h ? DG_OK : dg_graph_status(g);
}
/* Checks x [B,in] and the state [B,H] against the cell. */
static dg_status check_step(dg_graph *g, const dg_cell *c, const char *who, dg_node *x,
                            dg_cell_state prev) {
    char sx[64], sh[64];
    dg_shape xs = dg_node_shape(x), hs = dg_node_shape(prev.h);
    if (xs.ndim != 2 || xs.dim[1] != c->inputs)
        return dg_set_error(g, DG_ERR_SHAPE, "%s: %s '%s' takes inputs [batch,%lld], got %s", who,
                            kind_name(c->kind), c->name, (long long)c->inputs,
                            dg_shape_str(xs, sx, sizeof sx));
    dg_shape cs = c->kind == DG_CELL_LSTM ? dg_node_shape(prev.c) : hs;
    if (hs.ndim != 2 || hs.dim[1] != c->units || !dg_shape_equal(hs, cs) || hs.dim[0] != xs.dim[0])
        return dg_set_error(g, DG_ERR_SHAPE,
                            "%s: %s '%s' needs a state [%lld,%lld] for inputs %s, got %s", who,
                            kind_name(c->kind), c->name, (long long)xs.dim[0], (long long)c->units,
                            dg_shape_str(xs, sx, sizeof sx), dg_shape_str(hs, sh, sizeof sh));
    return DG_OK;
}

dg_node *dg_cell_step(dg_graph *g, dg_cell *cell, dg_node *x, dg_cell_state prev,
                      dg_cell_state *next) {
    if (!dg__check_input(g, "cell_step", x)) return NULL;
    if (!cell || !next || cell->graph != g)
        return dg_set_error(g, DG_ERR_ARG, "cell_step: %s",
                            !cell || !next ? "cell or next is NULL" : "cell of another graph"),
               NULL;
    if (!prev.h || (cell->kind == DG_CELL_LSTM && !prev.c))
        return dg_set_error(g, DG_ERR_NULL, "cell_step: the previous state is NULL"), NULL;
    if (check_step(g, cell, "cell_step", x, prev) != DG_OK) return NULL;
    dg_mark m = dg_graph_mark(g);
    if (dg_scope_push(g, cell->name) != DG_OK) return NULL;
    dg_cell_state s;
    dg_status st = step_nodes(g, cell, x, NULL, prev, &s);
    if (!dg__layer_end(g, m, st == DG_OK ? s.h : NULL, "cell_step")) return NULL;
    *next = s;
    return s.h;
}

/* ---- carrying the state to the next segment ---- */

/* inputs: the state leaves (written), then the values copied into them, pairwise */
static dg_status carry_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                            size_t size) {
    (void)a;
    for (int k = 0; k < n / 2; k++) {
        dg_shape to = dg_node_shape(in[k]), from = dg_node_shape(in[k + n / 2]);
        if (!dg_shape_equal(to, from)) {
            char s1[64], s2[64];
            snprintf(msg, size,
                     "state '%s' is %s but the last step's is %s (reset the unrolled state "
                     "with dg_unrolled_reset after changing the batch size)",
                     dg_node_name(in[k]) ? dg_node_name(in[k]) : "?",
                     dg_shape_str(to, s1, sizeof s1), dg_shape_str(from, s2, sizeof s2));
            return DG_ERR_SHAPE;
        }
    }
    *out = dg_shape0();
    return DG_OK;
}

static dg_status carry_forward(dg_node *self) {
    int n = dg_node_input_count(self);
    for (int k = 0; k < n / 2; k++)
        memcpy(dg_node_data(dg_node_input(self, k)), dg_node_data(dg_node_input(self, k + n / 2)),
               (size_t)dg_node_numel(dg_node_input(self, k)) * sizeof(float));
    dg_node_data(self)[0] = 0.0f;
    return DG_OK;
}

static const dg_op_def carry1_op = {.name = "carry_state",
                                    .n_inputs = 2,
                                    .flags = DG_OP_NO_GRAD,
                                    .writes = 1u << 0,
                                    .infer_shape = carry_rule,
                                    .forward = carry_forward};

static const dg_op_def carry2_op = {.name = "carry_state",
                                    .n_inputs = 4,
                                    .flags = DG_OP_NO_GRAD,
                                    .writes = 3u << 0,
                                    .infer_shape = carry_rule,
                                    .forward = carry_forward};

/* ---- unrolling ---- */

/* A batch input "<cell>/<what>" (numbered after the first unroll), holding zeros. */
static dg_node *state_input(dg_graph *g, const dg_cell *c, const char *what) {
    char name[200];
    if (c->unrolls)
        snprintf(name, sizeof name, "%s/%s.%d", c->name, what, c->unrolls + 1);
    else
        snprintf(name, sizeof name, "%s/%s", c->name, what);
    return dg_input(g, name, dg_shape2(DG_BATCH, c->units));
}

dg_status dg_unrolled_reset(const dg_unrolled *u, int64_t batch) {
    if (!u || !u->init.h)
        return dg_set_error(NULL, DG_ERR_NULL, "unrolled_reset: no unrolled state");
    dg_graph *g = dg_node_graph(u->init.h);
    if (batch < 1)
        return dg_set_error(g, DG_ERR_ARG, "unrolled_reset: batch must be >= 1, got %lld",
                            (long long)batch);
    int64_t n = batch * dg_node_shape(u->init.h).dim[1];
    float *zeros = calloc((size_t)n, sizeof *zeros);
    if (!zeros) return dg_set_error(g, DG_ERR_NOMEM, "unrolled_reset: out of memory");
    dg_status s = dg_feed(u->init.h, zeros, n);
    if (s == DG_OK && u->init.c) s = dg_feed(u->init.c, zeros, n);
    free(zeros);
    return s;
}

/* Unrolls over xs[0..steps), or, when tokens [B,T] is given, over rows of `table` picked by
 * each column of tokens: (E[idx] W) = (E W)[idx], so the table is projected through W once per
 * run (a [V,G*H] product) and each step looks its rows up, instead of a product per step and
 * a weight gradient per step to add up. */
static dg_status unroll(dg_graph *g, dg_cell *cell, int steps, dg_node *const *xs, dg_node *table,
                        dg_node *tokens, dg_unrolled *out) {
    const char *who = tokens ? "unroll_tokens" : "unroll";
    dg_node **h = calloc((size_t)steps, sizeof *h);
    if (!h) return dg_set_error(g, DG_ERR_NOMEM, "%s: out of memory", who);
    int64_t rows = dg_node_shape(tokens ? tokens : xs[0]).dim[0];
    dg_mark m = dg_graph_mark(g);
    dg_status s = dg_scope_push(g, cell->name);
    if (s != DG_OK) return free(h), s;
    dg_cell_state init = {state_input(g, cell, "h0"), NULL};
    if (cell->kind == DG_CELL_LSTM) init.c = state_input(g, cell, "c0");
    if (!init.h || (cell->kind == DG_CELL_LSTM && !init.c)) s = dg_graph_status(g);
    /* the state inputs start with as many rows as the inputs have */
    if (s == DG_OK) {
        dg_unrolled tmp = {0};
        tmp.init = init;
        s = dg_unrolled_reset(&tmp, rows);
    }
    if (s == DG_OK && !tokens) s = check_step(g, cell, who, xs[0], init);
    /* tokens: the table projected once, E W + b (layer-normalised per row and gate first when
     * asked: the rows of E W are the x W of the steps) */
    dg_node *proj = NULL;
    if (s == DG_OK && tokens) {
        proj = dg_matmul(g, table, cell->w);
        if (cell->opts.layer_norm) proj = gate_norm(g, cell, proj, cell->gain_x);
        if (!(proj = dg_add(g, proj, cell->b))) s = dg_graph_status(g);
    }
    dg_cell_state state = init;
    for (int t = 0; t < steps && s == DG_OK; t++) {
        char sc[32];
        snprintf(sc, sizeof sc, "t=%d", t);
        s = dg_scope_push(g, sc);
        dg_node *xw = NULL;
        if (s == DG_OK && tokens) {
            dg_node *idx = dg_reshape(g, dg_slice(g, tokens, 1, t, 1), dg_shape1(-1));
            if (!(xw = dg_embedding_lookup(g, proj, idx))) s = dg_graph_status(g);
        }
        if (s == DG_OK) s = step_nodes(g, cell, tokens ? NULL : xs[t], xw, state, &state);
        if (s == DG_OK) s = dg_scope_pop(g);
        h[t] = state.h;
    }
    dg_node *carry = NULL;
    if (s == DG_OK) {
        dg_node *in[4] = {init.h, init.c, state.h, state.c};
        if (cell->kind != DG_CELL_LSTM) in[1] = state.h;
        carry = cell->kind == DG_CELL_LSTM ? dg_apply(g, &carry2_op, 4, in, NULL, 0)
                                           : dg_apply(g, &carry1_op, 2, in, NULL, 0);
        if (!carry) s = dg_graph_status(g);
    }
    if (s == DG_OK) s = dg_graph_attach(g, h, free);
    if (!dg__layer_end(g, m, s == DG_OK ? carry : NULL, who)) {
        if (s != DG_OK) free(h);
        return dg_graph_status(g);
    }
    cell->unrolls++;
    out->steps = steps;
    out->h = h;
    out->init = init;
    out->last = state;
    out->carry = carry;
    return DG_OK;
}

static dg_status check_cell(dg_graph *g, dg_cell *cell, dg_unrolled *out, const char *who) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "%s: graph is NULL", who);
    if (!out) return dg_set_error(g, DG_ERR_NULL, "%s: out is NULL", who);
    memset(out, 0, sizeof *out);
    if (!cell || cell->graph != g)
        return dg_set_error(g, DG_ERR_ARG, "%s: %s", who,
                            cell ? "cell of another graph" : "cell is NULL");
    return DG_OK;
}

dg_status dg_unroll(dg_graph *g, dg_cell *cell, int steps, dg_node *const *xs, dg_unrolled *out) {
    dg_status s = check_cell(g, cell, out, "unroll");
    if (s != DG_OK) return s;
    if (steps < 1 || !xs)
        return dg_set_error(g, DG_ERR_ARG, "unroll: needs steps >= 1 and their inputs, got %d",
                            steps);
    for (int t = 0; t < steps; t++) {
        if (!dg__check_input(g, "unroll", xs[t])) return dg_graph_status(g);
        if (!dg_shape_equal(dg_node_shape(xs[t]), dg_node_shape(xs[0]))) {
            char s0[64], st[64];
            return dg_set_error(g, DG_ERR_SHAPE,
                                "unroll: the input of step %d is %s, that of step 0 %s", t,
                                dg_shape_str(dg_node_shape(xs[t]), st, sizeof st),
                                dg_shape_str(dg_node_shape(xs[0]), s0, sizeof s0));
        }
    }
    return unroll(g, cell, steps, xs, NULL, NULL, out);
}

dg_status dg_unroll_tokens(dg_graph *g, dg_cell *cell, dg_node *table, dg_node *tokens,
                           dg_unrolled *out) {
    dg_status s = check_cell(g, cell, out, "unroll_tokens");
    if (s != DG_OK) return s;
    if (!dg__check_input(g, "unroll_tokens", table) || !dg__check_input(g, "unroll_tokens", tokens))
        return dg_graph_status(g);
    dg_shape ts = dg_node_shape(table), ks = dg_node_shape(tokens);
    char s1[64], s2[64];
    if (ts.ndim != 2 || ts.dim[1] != cell->inputs || ks.ndim != 2 || ks.dim[1] > 1000000)
        return dg_set_error(
            g, DG_ERR_SHAPE,
            "unroll_tokens: %s '%s' needs a table [V,%lld] and tokens [batch,steps], "
            "got %s and %s",
            kind_name(cell->kind), cell->name, (long long)cell->inputs,
            dg_shape_str(ts, s1, sizeof s1), dg_shape_str(ks, s2, sizeof s2));
    return unroll(g, cell, (int)ks.dim[1], NULL, table, tokens, out);
}

/* ---- inputs per step, embeddings, loss over all steps ---- */

dg_node *dg_embedding(dg_graph *g, const char *name, int64_t vocab, int64_t dim) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "embedding: graph is NULL"), NULL;
    if (vocab < 1 || dim < 1)
        return dg_set_error(g, DG_ERR_ARG,
                            "embedding: vocab and dim must be >= 1, got %lld and %lld",
                            (long long)vocab, (long long)dim),
               NULL;
    char lname[128], pname[200];
    dg_mark m = dg_graph_mark(g);
    if (dg__layer_begin(g, name, "embedding", lname, sizeof lname) != DG_OK) return NULL;
    snprintf(pname, sizeof pname, "%s/table", dg_scope_current(g));
    dg_node *t = NULL;
    if (dg_graph_find(g, pname))
        dg_set_error(g, DG_ERR_ARG, "embedding: a parameter named '%s' already exists", pname);
    else if ((t = dg_param(g, pname, dg_shape2(vocab, dim))) &&
             dg_init_fill(t, (dg_init){DG_INIT_NORMAL, 0.0f, 1.0f}, 1, 1) != DG_OK)
        t = NULL;
    return dg__layer_end(g, m, t, "embedding");
}

dg_node *dg_layer_norm_layer(dg_graph *g, const char *name, dg_node *x, float eps) {
    if (!dg__check_input(g, "layer_norm_layer", x)) return NULL;
    dg_shape s = dg_node_shape(x);
    if (s.ndim < 1)
        return dg_set_error(g, DG_ERR_SHAPE, "layer_norm_layer: input is a scalar"), NULL;
    int64_t d = s.dim[s.ndim - 1];
    char lname[128], pname[300];
    dg_mark m = dg_graph_mark(g);
    if (dg__layer_begin(g, name, "layer_norm", lname, sizeof lname) != DG_OK) return NULL;
    const char *scope = dg_scope_current(g);
    dg_node *gain = NULL, *bias = NULL;
    snprintf(pname, sizeof pname, "%s/gain", scope);
    if (dg_graph_find(g, pname))
        dg_set_error(g, DG_ERR_ARG, "layer_norm_layer: a parameter named '%s' already exists",
                     pname);
    else if ((gain = dg_param(g, pname, dg_shape1(d))) &&
             dg_init_fill(gain, (dg_init){DG_INIT_CONSTANT, 1.0f, 0}, 1, d) == DG_OK) {
        snprintf(pname, sizeof pname, "%s/bias", scope);
        bias = dg_param(g, pname, dg_shape1(d));
    }
    dg_node *y = bias ? dg_add(g, dg_mul(g, dg_layer_norm(g, x, eps), gain), bias) : NULL;
    return dg__layer_end(g, m, y, "layer_norm_layer");
}

dg_node *dg_seq_cross_entropy(dg_graph *g, const char *name, const dg_unrolled *u, dg_node *labels,
                              int64_t classes, dg_node **logits) {
    if (logits) *logits = NULL;
    if (!dg__check_input(g, "seq_cross_entropy", labels)) return NULL;
    if (!u || u->steps < 1 || !u->h)
        return dg_set_error(g, DG_ERR_ARG, "seq_cross_entropy: no unrolled sequence"), NULL;
    dg_shape ls = dg_node_shape(labels);
    char sb[64];
    if (ls.ndim != 2 || ls.dim[1] != u->steps)
        return dg_set_error(g, DG_ERR_SHAPE,
                            "seq_cross_entropy: labels must be [batch,%d] (one per step), got %s",
                            u->steps, dg_shape_str(ls, sb, sizeof sb)),
               NULL;
    dg_mark m = dg_graph_mark(g);
    int64_t units = dg_node_shape(u->h[0]).dim[1];
    /* row b*T + t of the stacked outputs is step t of sequence b, as in labels [B,T] */
    dg_node *hs = dg_reshape(g, dg_stack(g, u->steps, u->h, 1), dg_shape2(-1, units));
    dg_node *z = dg_dense(g, name, hs, classes, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(g, z, dg_reshape(g, labels, dg_shape1(-1)));
    if (!loss) return dg_graph_rollback(g, m, "seq_cross_entropy"), NULL;
    if (logits) *logits = z;
    return loss;
}
