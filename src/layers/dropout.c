/* Inverted dropout as a graph builder plus one op. The op "dropout_mask" draws, on every
 * run in training mode, a mask m with m[i] = 0 with probability `rate` and 1/(1-rate)
 * otherwise, from the graph's seeded generator; in evaluation mode m = 1. The layer output
 * is y = x * m (an ordinary mul), so the gradient is dx = dy * m with the very mask the
 * forward used in the same run, and the expectation of y equals x in training too.
 * The mask op has no gradient (piecewise constant) and reads only x's shape. */
#include "layer_internal.h"

#include "../ops/kernels.h"

#include <math.h>
#include <stdio.h>

/* attrs: f[0] = rate; i[0] = frozen (keep the last mask); i[1] = a mask has been drawn */
static dg_status mask_forward(dg_node *self) {
    float *restrict m = self->value;
    int64_t n = self->numel;
    if (!dg_is_training(self->graph)) {
        for (int64_t i = 0; i < n; i++) m[i] = 1.0f;
        self->attrs.i[1] = 0;
        return DG_OK;
    }
    if (self->attrs.i[0] && self->attrs.i[1]) return DG_OK;
    const float rate = (float)self->attrs.f[0], keep = 1.0f / (1.0f - rate);
    /* sequential: one generator stream, so the mask is the same for any thread count */
    for (int64_t i = 0; i < n; i++) m[i] = dg_graph_rand_uniform(self->graph) < rate ? 0.0f : keep;
    self->attrs.i[1] = 1;
    return DG_OK;
}

static const dg_op_def mask_op = {"dropout_mask", 1,   DG_OP_NO_GRAD, dg__same_shape_as_input,
                                  mask_forward,   NULL};

dg_node *dg_dropout(dg_graph *g, const char *name, dg_node *x, float rate) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "dropout: graph is NULL"), NULL;
    if (!x) return dg_set_error(g, DG_ERR_NULL, "dropout: input is NULL"), NULL;
    if (dg_node_graph(x) != g)
        return dg_set_error(g, DG_ERR_GRAPH, "dropout: input belongs to another graph"), NULL;
    if (!(rate >= 0.0f && rate < 1.0f))
        return dg_set_error(g, DG_ERR_ARG, "dropout: rate must be in [0, 1), got %g", (double)rate),
               NULL;
    char lname[128];
    if (dg__layer_begin(g, name, "dropout", lname, sizeof lname) != DG_OK) return NULL;
    dg_attrs a = {{rate, 0, 0, 0}, {0, 0, 0, 0}, {0, {0, 0, 0, 0}}, 0};
    dg_node *m = dg__apply1(g, &mask_op, x, &a);
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
