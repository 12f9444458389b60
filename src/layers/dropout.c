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

#include <math.h>
#include <stddef.h>
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

typedef struct mask_attrs {
    float rate;
    int frozen;         /* keep the last mask drawn (the mask node is then kept) */
    int drawn;          /* the kept buffer holds a training mask */
    int64_t row_offset; /* rows of a larger batch before this one (dg_dropout_set_row_offset) */
} mask_attrs;

static const dg_attr_field mask_fields[] = {{"rate", DG_ATTR_FLOAT, offsetof(mask_attrs, rate), 1},
                                            {NULL, DG_ATTR_INT, 0, 0}};

/* inputs: x (for its shape only), rng state [3] (written) */
static dg_status mask_forward(dg_node *self) {
    float *m = dg_node_data(self);
    int64_t n = dg_node_numel(self);
    mask_attrs *a = dg_node_attrs(self);
    if (!dg_is_training(dg_node_graph(self))) {
        for (int64_t i = 0; i < n; i++) m[i] = 1.0f;
        a->drawn = 0;
        return DG_OK;
    }
    if (a->frozen && a->drawn) return DG_OK;
    float *rng = dg_node_data(dg_node_input(self, 1));
    uint64_t seed = (uint64_t)rng[0] | ((uint64_t)rng[1] << 24);
    uint64_t key = mix64(seed ^ mix64((uint64_t)rng[2] * 0xD1B54A32D192ED03ull));
    /* these rows are rows row_offset.. of a larger batch: its elements' draws */
    dg_shape sh = dg_node_shape(self);
    if (a->row_offset > 0 && sh.ndim > 0 && sh.dim[0] > 0)
        key += (uint64_t)a->row_offset * (uint64_t)(n / sh.dim[0]);
    mask_ctx c = {m, key, a->rate, 1.0f / (1.0f - a->rate)};
    dg_parallel_for(n, 8, mask_range, &c);
    /* advance the run counter; on overflow move to the next seed */
    rng[2] += 1.0f;
    if (rng[2] >= COUNTER_LIMIT) {
        rng[2] = 0.0f;
        rng[1] = fmodf(rng[1] + 1.0f, COUNTER_LIMIT);
    }
    a->drawn = 1;
    return DG_OK;
}

static dg_status mask_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                           size_t size) {
    if (dg_node_numel(in[1]) != 3) {
        snprintf(msg, size, "generator state must hold 3 values, got %lld",
                 (long long)dg_node_numel(in[1]));
        return DG_ERR_SHAPE;
    }
    return dg_rule_same_shape(in, n, a, out, msg, size);
}

/* Reads only x's shape; writes the generator state in place (so every other reader of it
 * in a run, such as a checkpoint's view, sees it before the draw). */
static const dg_op_def mask_op = {.name = "dropout_mask",
                                  .n_inputs = 2,
                                  .flags = DG_OP_NO_GRAD,
                                  .shape_only = 1u << 0,
                                  .writes = 1u << 1,
                                  .infer_shape = mask_rule,
                                  .forward = mask_forward,
                                  .attr_fields = mask_fields};

dg_node *dg_dropout(dg_graph *g, const char *name, dg_node *x, float rate) {
    if (!dg__check_input(g, "dropout", x)) return NULL;
    if (!(rate >= 0.0f && rate < 1.0f))
        return dg_set_error(g, DG_ERR_ARG, "dropout: rate must be in [0, 1), got %g", (double)rate),
               NULL;
    char lname[128], sname[160];
    dg_mark mk = dg_graph_mark(g);
    if (dg__layer_begin(g, name, "dropout", lname, sizeof lname) != DG_OK) return NULL;
    snprintf(sname, sizeof sname, "%s/rng", lname);
    dg_node *rng = dg_state(g, sname, dg_shape1(3));
    if (rng) {
        uint64_t seed = dg_graph_rand_u64(g);
        float init[3] = {(float)(seed & 0xFFFFFF), (float)((seed >> 24) & 0xFFFFFF), 0.0f};
        dg_feed(rng, init, 3);
    }
    mask_attrs a = {rate, 0, 0, 0};
    dg_node *in[2] = {x, rng};
    dg_node *m = rng ? dg_apply(g, &mask_op, 2, in, &a, sizeof a) : NULL;
    return dg__layer_end(g, mk, m ? dg_mul(g, x, m) : NULL, "dropout");
}

/* The mask node of a dropout output y = x * m, or NULL. */
static dg_node *mask_of(const dg_node *y) {
    if (dg_node_kind_of(y) != DG_OP_NODE || dg_node_input_count(y) != 2) return NULL;
    dg_node *m = dg_node_input(y, 1);
    return dg_node_op(m) == &mask_op ? m : NULL;
}

dg_node *dg_dropout_mask(const dg_node *y) { return mask_of(y); }

dg_status dg_dropout_set_frozen(dg_node *y, int frozen) {
    dg_node *m = mask_of(y);
    if (!m)
        return dg_set_error(dg_node_graph(y), DG_ERR_ARG,
                            "dropout_set_frozen: node %d is not the output of dg_dropout",
                            dg_node_id(y));
    mask_attrs *a = dg_node_attrs(m);
    if (frozen && !a->frozen) {
        /* a frozen mask must survive between runs: it gets a buffer of its own, and a mask
         * that was not kept so far is drawn once more */
        if (!dg_node_has_value(m)) a->drawn = 0;
        dg_status s = dg_keep(m);
        if (s != DG_OK) return s;
    }
    a->frozen = frozen ? 1 : 0;
    return DG_OK;
}

dg_status dg_dropout_set_row_offset(dg_node *y, int64_t rows) {
    dg_node *m = mask_of(y);
    if (!m)
        return dg_set_error(dg_node_graph(y), DG_ERR_ARG,
                            "dropout_set_row_offset: node %d is not the output of dg_dropout",
                            dg_node_id(y));
    if (rows < 0)
        return dg_set_error(dg_node_graph(y), DG_ERR_ARG,
                            "dropout_set_row_offset: rows must be >= 0, got %lld", (long long)rows);
    ((mask_attrs *)dg_node_attrs(m))->row_offset = rows;
    return DG_OK;
}
