/* Reverse mode. The engine walks nodes in reverse creation order (a reverse topological
 * order), asks each op for its vector-Jacobian product (built from graph ops), sums the
 * contributions of a value's consumers, and sums broadcast contributions back to the
 * input's shape. It contains no op-specific logic: the gradient is ordinary graph nodes,
 * so it can be run, exported and differentiated again. */
#include "internal.h"
#include "dagrad/ops.h"

#include <stdlib.h>
#include <string.h>

/* Builds gradients of y for every node that needs one; grads[i] is the gradient node of
 * node i (or NULL). On error, removes every node it added. */
static dg_status build_gradients(dg_graph *g, dg_node *y, dg_node ***grads_out) {
    char sb[64];
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "backward: graph is NULL");
    if (!y) return dg_set_error(g, DG_ERR_NULL, "backward: loss node is NULL");
    if (y->graph != g)
        return dg_set_error(g, DG_ERR_GRAPH, "backward: loss belongs to another graph");
    if (y->numel != 1)
        return dg_set_error(g, DG_ERR_SHAPE,
                            "backward: loss must be a scalar, node %d (op %s) has shape %s", y->id,
                            dg_node_op_name(y), dg_shape_str(y->shape, sb, sizeof sb));
    if (!y->requires_grad)
        return dg_set_error(g, DG_ERR_STATE,
                            "backward: node %d (op %s) does not depend on any parameter or "
                            "input marked with dg_set_requires_grad",
                            y->id, dg_node_op_name(y));

    int n0 = g->n_nodes, pass0 = g->n_backward;
    dg_node **grads = calloc((size_t)n0, sizeof *grads);
    if (!grads) return dg_set_error(g, DG_ERR_NOMEM, "backward: out of memory");
    g->n_backward++;

    dg_status s = DG_OK;
    grads[y->id] = dg_const(g, NULL, y->shape, NULL, 1.0f);
    if (!grads[y->id]) s = g->status;
    for (int id = y->id; id >= 0 && s == DG_OK; id--) {
        dg_node *x = g->nodes[id];
        dg_node *dy = grads[id];
        if (!dy || x->kind != DG_OP_NODE) continue;
        if (!x->op->backward) {
            s = dg_set_error(g, DG_ERR_UNSUPPORTED, "backward: op %s (node %d) has no derivative",
                             x->op->name, x->id);
            break;
        }
        dg_node *dx[DG_MAX_INPUTS] = {0};
        g->status = DG_OK;
        s = x->op->backward(g, x, dy, dx);
        if (s != DG_OK) {
            if (g->status == DG_OK)
                dg_set_error(g, s, "backward: op %s (node %d) failed", x->op->name, x->id);
            break;
        }
        for (int k = 0; k < x->n_inputs && s == DG_OK; k++) {
            dg_node *in = x->inputs[k];
            dg_node *c = dx[k];
            if (!c || !in->requires_grad) continue;
            if (!dg_shape_equal(c->shape, in->shape)) {
                /* broadcast input: sum the contribution back to the input's shape */
                c = dg_sum_to(g, c, in->shape);
                if (!c) {
                    char sb2[64];
                    s = dg_set_error(g, g->status,
                                     "backward: op %s (node %d) returned a gradient of shape %s "
                                     "for input %d of shape %s",
                                     x->op->name, x->id, dg_shape_str(dx[k]->shape, sb, sizeof sb),
                                     k, dg_shape_str(in->shape, sb2, sizeof sb2));
                    break;
                }
            }
            /* a value feeding several consumers receives the sum of their contributions */
            dg_node *acc = grads[in->id] ? dg_add(g, grads[in->id], c) : c;
            if (!acc) {
                s = g->status;
                break;
            }
            grads[in->id] = acc;
        }
    }
    if (s != DG_OK) {
        char keep[sizeof g->err];
        memcpy(keep, g->err, sizeof keep);
        dg__graph_truncate(g, n0);
        g->n_backward = pass0;
        free(grads);
        return dg_set_error(g, s, "%s", keep);
    }
    *grads_out = grads;
    return DG_OK;
}

dg_status dg_backward(dg_graph *g, dg_node *loss) {
    dg_node **grads = NULL;
    dg_status s = build_gradients(g, loss, &grads);
    if (s != DG_OK) return s;
    for (int id = 0; id <= loss->id; id++) {
        if (!grads[id]) continue;
        dg_node *x = g->nodes[id];
        x->grad = grads[id];
        if (!grads[id]->grad_of) grads[id]->grad_of = x;
    }
    free(grads);
    return DG_OK;
}

dg_status dg_gradients(dg_graph *g, dg_node *y, int n, dg_node *const *xs, dg_node **out) {
    if (g && n < 0) return dg_set_error(g, DG_ERR_ARG, "gradients: n is %d", n);
    if (g && (!xs || !out)) return dg_set_error(g, DG_ERR_NULL, "gradients: xs or out is NULL");
    for (int i = 0; g && i < n; i++) {
        if (!xs[i]) return dg_set_error(g, DG_ERR_NULL, "gradients: xs[%d] is NULL", i);
        if (xs[i]->graph != g)
            return dg_set_error(g, DG_ERR_GRAPH, "gradients: xs[%d] belongs to another graph", i);
    }
    dg_node **grads = NULL;
    dg_status s = build_gradients(g, y, &grads);
    if (s != DG_OK) return s;
    for (int i = 0; i < n; i++) {
        dg_node *x = xs[i];
        out[i] = x->id <= y->id ? grads[x->id] : NULL;
        if (out[i] && !out[i]->grad_of) out[i]->grad_of = x;
    }
    free(grads);
    return DG_OK;
}
