/* Inverted dropout as a graph builder plus one op. The op "dropout_mask" draws, on every
 * run in training mode, a mask m with m[i] = 0 with probability `rate` and 1/(1-rate)
 * otherwise; in evaluation mode m = 1. The layer output is y = x * m (an ordinary mul), so
 * the gradient is dx = dy * m with the very mask the forward used in the same run, and the
 * expectation of y equals x in training too. The mask op has no gradient (piecewise
 * constant) and reads only x's shape.
 *
 * The mask is counter-based: m[i] depends only on (seed, run counter, i). Seed and counter
 * live in a DG_STATE node "<layer>/rng" = {seed bits 0-23, seed bits 24-47, counter} (floats
 * hold integers exactly up to 2^24), so a checkpoint with state resumes the mask stream bit
 * for bit, and elements can be drawn in parallel with the same result for any thread
 * count. The seed comes from the graph's generator when the layer is built. */
#include "layer_internal.h"

#include "../ops/kernels.h"

#include <math.h>
#include <stdio.h>

#define COUNTER_LIMIT 16777216.0f /* 2^24: past it float increments would stall */

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    float *m;
    uint64_t key;
    float rate, keep;
} mask_ctx;

static void mask_range(void *ctx, int64_t lo, int64_t hi) {
    const mask_ctx *c = ctx;
    for (int64_t i = lo; i < hi; i++) {
        float u = (float)(mix64(c->key + (uint64_t)i) >> 40) * (1.0f / 16777216.0f);
        c->m[i] = u < c->rate ? 0.0f : c->keep;
    }
}

/* inputs: x (for its shape), rng state [3]. attrs: f[0] = rate; i[0] = frozen (keep the
 * last mask); i[1] = a mask has been drawn */
static dg_status mask_forward(dg_node *self) {
    float *restrict m = self->value;
    int64_t n = self->numel;
    if (!dg_is_training(self->graph)) {
        for (int64_t i = 0; i < n; i++) m[i] = 1.0f;
        self->attrs.i[1] = 0;
        return DG_OK;
    }
    if (self->attrs.i[0] && self->attrs.i[1]) return DG_OK;
    float *rng = self->inputs[1]->value;
    uint64_t seed = (uint64_t)rng[0] | ((uint64_t)rng[1] << 24);
    uint64_t key = mix64(seed ^ mix64((uint64_t)rng[2] * 0xD1B54A32D192ED03ull));
    const float rate = (float)self->attrs.f[0];
    mask_ctx c = {m, key, rate, 1.0f / (1.0f - rate)};
    dg__parallel_for(n, 8, mask_range, &c);
    /* advance the run counter; on overflow move to the next seed */
    rng[2] += 1.0f;
    if (rng[2] >= COUNTER_LIMIT) {
        rng[2] = 0.0f;
        rng[1] = fmodf(rng[1] + 1.0f, COUNTER_LIMIT);
    }
    self->attrs.i[1] = 1;
    return DG_OK;
}

static dg_status mask_rule(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                           size_t size) {
    if (dg_node_numel(in[1]) != 3) {
        snprintf(msg, size, "generator state must hold 3 values, got %lld",
                 (long long)dg_node_numel(in[1]));
        return DG_ERR_SHAPE;
    }
    return dg__same_shape_as_input(in, a, out, msg, size);
}

static const dg_op_def mask_op = {"dropout_mask", 2, DG_OP_NO_GRAD, mask_rule, mask_forward, NULL};

dg_node *dg_dropout(dg_graph *g, const char *name, dg_node *x, float rate) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "dropout: graph is NULL"), NULL;
    if (!x) return dg_set_error(g, DG_ERR_NULL, "dropout: input is NULL"), NULL;
    if (dg_node_graph(x) != g)
        return dg_set_error(g, DG_ERR_GRAPH, "dropout: input belongs to another graph"), NULL;
    if (!(rate >= 0.0f && rate < 1.0f))
        return dg_set_error(g, DG_ERR_ARG, "dropout: rate must be in [0, 1), got %g", (double)rate),
               NULL;
    char lname[128], sname[160];
    if (dg__layer_begin(g, name, "dropout", lname, sizeof lname) != DG_OK) return NULL;
    snprintf(sname, sizeof sname, "%s/rng", lname);
    dg_node *rng = dg_state(g, sname, dg_shape1(3));
    if (rng) {
        uint64_t seed = dg_graph_rand_u64(g);
        float init[3] = {(float)(seed & 0xFFFFFF), (float)((seed >> 24) & 0xFFFFFF), 0.0f};
        dg_feed(rng, init, 3);
    }
    dg_attrs a = {{rate, 0, 0, 0}, {0, 0, 0, 0}, {0, {0, 0, 0, 0}}, 0};
    dg_node *m = rng ? dg__apply2(g, &mask_op, x, rng, &a) : NULL;
    return dg__layer_end(g, m ? dg_mul(g, x, m) : NULL);
}

/* The mask node of a dropout output y = x * m, or NULL. */
static dg_node *mask_of(const dg_node *y) {
    if (!y || y->kind != DG_OP_NODE || y->n_inputs != 2) return NULL;
    dg_node *m = y->inputs[1];
    return m->op == &mask_op ? m : NULL;
}

dg_node *dg_dropout_mask(const dg_node *y) { return mask_of(y); }

dg_status dg_dropout_set_frozen(dg_node *y, int frozen) {
    dg_node *m = mask_of(y);
    if (!m)
        return dg_set_error(y ? y->graph : NULL, DG_ERR_ARG,
                            "dropout_set_frozen: node %d is not the output of dg_dropout",
                            dg_node_id(y));
    m->attrs.i[0] = frozen ? 1 : 0;
    return DG_OK;
}
