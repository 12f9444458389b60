/* Reverse mode. The engine walks nodes in reverse creation order (a reverse topological
 * order of the data edges), asks each op for its vector-Jacobian product (built from graph
 * ops), reduces a broadcast input's contribution to the input's shape (sum_like), and adds
 * each further contribution of a value's consumers to its running sum as soon as it is
 * found (accumulate): a chain of sums that the planner runs in place, so a weight shared by
 * T steps of a recurrent net never holds T gradient terms at once. Both are the engine's own
 * primitives (primitives.c); it calls no op builder and contains no op-specific logic. The
 * gradient is ordinary graph nodes, so it can be run, exported and differentiated again. */
#include "internal.h"

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

    dg_mark mark = dg_graph_mark(g);
    int n0 = g->n_nodes;
    dg_node **grads = calloc((size_t)n0, sizeof *grads);
    dg_node **dx = NULL;
    int dx_cap = 0;
    dg_status s = DG_OK;
    if (!grads) {
        s = dg_set_error(g, DG_ERR_NOMEM, "backward: out of memory");
        goto done;
    }
    g->n_backward++;

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
        if (x->n_inputs > dx_cap) {
            dg_node **nd = realloc(dx, (size_t)x->n_inputs * sizeof *nd);
            if (!nd) {
                s = dg_set_error(g, DG_ERR_NOMEM, "backward: out of memory");
                break;
            }
            dx = nd;
            dx_cap = x->n_inputs;
        }
        memset(dx, 0, (size_t)x->n_inputs * sizeof *dx);
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
            if (!c || !in->requires_grad || (k < 64 && (x->op->shape_only >> k & 1))) continue;
            if (!dg_shape_equal(c->shape, in->shape)) {
                /* broadcast input: sum the contribution back to the input's shape */
                dg_node *r = dg__sum_like(g, c, in);
                if (!r) {
                    char sb2[64];
                    s = dg_set_error(g, g->status,
                                     "backward: op %s (node %d) returned a gradient of shape %s "
                                     "for input %d of shape %s",
                                     x->op->name, x->id, dg_shape_str(c->shape, sb, sizeof sb), k,
                                     dg_shape_str(in->shape, sb2, sizeof sb2));
                    break;
                }
                c = r;
            }
            /* a value read by several consumers: the sum of their contributions, left to
             * right in the order they are found */
            if (grads[in->id]) {
                dg_node *terms[2] = {grads[in->id], c};
                if (!(c = dg__accumulate(g, 2, terms))) s = g->status;
            }
            grads[in->id] = c;
        }
    }
done:
    free(dx);
    if (s != DG_OK) {
        free(grads);
        return dg_graph_rollback(g, mark, NULL);
    }
    *grads_out = grads;
    return DG_OK;
}

dg_status dg_backward(dg_graph *g, dg_node *loss) {
    /* the same loss again, with nothing differentiated since: its gradients are current */
    if (g && loss && loss->graph == g && g->last_loss == loss &&
        g->last_loss_pass == g->n_backward && loss->grad)
        return DG_OK;
    int n0 = g ? g->n_nodes : 0;
    dg_node **grads = NULL;
    dg_status s = build_gradients(g, loss, &grads);
    if (s != DG_OK) return s;
    int links = 0;
    for (int id = 0; id <= loss->id; id++) links += grads[id] != NULL;
    if (g->n_grad_log + links > g->cap_grad_log) {
        int cap = 2 * (g->n_grad_log + links);
        struct dg_grad_undo *log = realloc(g->grad_log, (size_t)cap * sizeof *log);
        if (!log) {
            free(grads);
            dg_set_error(g, DG_ERR_NOMEM, "backward: out of memory");
            return dg_graph_rollback(g, (dg_mark){n0, g->n_backward - 1, g->scope_depth}, NULL);
        }
        g->grad_log = log;
        g->cap_grad_log = cap;
    }
    for (int id = 0; id <= loss->id; id++) {
        if (!grads[id]) continue;
        dg_node *x = g->nodes[id];
        /* remembered so that rolling back this pass gives x its old gradient again */
        g->grad_log[g->n_grad_log++] = (struct dg_grad_undo){x, x->grad, n0};
        x->grad = grads[id];
        if (!grads[id]->grad_of) grads[id]->grad_of = x;
        /* a parameter's gradient persists after a run: optimizers and users read it */
        if (x->kind == DG_PARAM && grads[id]->kind == DG_OP_NODE) grads[id]->pinned = 1;
    }
    free(grads);
    g->last_loss = loss;
    g->last_loss_pass = g->n_backward;
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
