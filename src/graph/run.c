/* Running a graph: plan the nodes a set of targets depends on (creation order is a
 * topological order, so a plan is the marked nodes in index order), then call each op's
 * forward kernel. The plan is cached and reused while the graph and targets are unchanged.
 * Knows no op; allocates nothing once a plan exists. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plan_matches(const dg_graph *g, int n, dg_node *const *targets) {
    if (g->plan_valid_nodes != g->n_nodes || n != g->plan_n_targets) return 0;
    for (int i = 0; i < n; i++)
        if (g->plan_targets[i] != targets[i]) return 0;
    return 1;
}

static dg_status make_plan(dg_graph *g, int n, dg_node *const *targets) {
    memset(g->mark, 0, (size_t)g->n_nodes);
    int hi = -1;
    for (int i = 0; i < n; i++) {
        g->mark[targets[i]->id] = 1;
        if (targets[i]->id > hi) hi = targets[i]->id;
    }
    /* Inputs always have smaller ids than their consumers: one downward sweep marks all. */
    int count = 0;
    for (int id = hi; id >= 0; id--) {
        if (!g->mark[id]) continue;
        count++;
        dg_node *x = g->nodes[id];
        for (int k = 0; k < x->n_inputs; k++) g->mark[x->inputs[k]->id] = 1;
    }
    if (count > g->plan_cap) {
        int *p = realloc(g->plan, (size_t)count * sizeof *p);
        if (!p) return dg_set_error(g, DG_ERR_NOMEM, "run: out of memory planning %d nodes", count);
        g->plan = p;
        g->plan_cap = count;
    }
    g->plan_len = 0;
    for (int id = 0; id <= hi; id++)
        if (g->mark[id]) g->plan[g->plan_len++] = id;
    if (n <= (int)(sizeof g->plan_targets / sizeof g->plan_targets[0])) {
        memcpy(g->plan_targets, targets, (size_t)n * sizeof *targets);
        g->plan_n_targets = n;
        g->plan_valid_nodes = g->n_nodes;
    } else {
        g->plan_valid_nodes = -1;
    }
    return DG_OK;
}

/* Index of the first non-finite element, or -1. */
static int64_t first_nonfinite(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return i;
    return -1;
}

static dg_status report_anomaly(dg_graph *g, dg_node *x, int64_t at) {
    char sb[64], bad[128] = "";
    size_t used = 0;
    for (int k = 0; k < x->n_inputs && used < sizeof bad; k++) {
        dg_node *in = x->inputs[k];
        if (first_nonfinite(in->value, in->numel) >= 0) {
            int w = snprintf(bad + used, sizeof bad - used, "%s%d", used ? "," : "", k);
            if (w > 0) used += (size_t)w;
        }
    }
    return dg_set_error(g, DG_ERR_NONFINITE,
                        "anomaly: node %d (op %s%s%s%s, shape %s%s) produced %g at element %lld; "
                        "non-finite inputs: %s",
                        x->id, x->op->name, x->name ? ", name '" : "", x->name ? x->name : "",
                        x->name ? "'" : "", dg_shape_str(x->shape, sb, sizeof sb),
                        x->backward_pass ? ", in backward" : "", (double)x->value[at],
                        (long long)at, used ? bad : "none");
}

dg_status dg_run_many(dg_graph *g, int n, dg_node *const *targets) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "run: graph is NULL");
    if (n < 1 || !targets) return dg_set_error(g, DG_ERR_ARG, "run: no targets given");
    for (int i = 0; i < n; i++) {
        if (!targets[i]) return dg_set_error(g, DG_ERR_NULL, "run: target %d is NULL", i);
        if (targets[i]->graph != g)
            return dg_set_error(g, DG_ERR_GRAPH, "run: target %d belongs to another graph", i);
    }
    if (!plan_matches(g, n, targets)) {
        dg_status s = make_plan(g, n, targets);
        if (s != DG_OK) return s;
    }
    for (int i = 0; i < g->plan_len; i++) {
        dg_node *x = g->nodes[g->plan[i]];
        if (x->kind == DG_INPUT && !x->fed) {
            char sb[64];
            return dg_set_error(g, DG_ERR_STATE,
                                "run: input node %d%s%s%s %s has not been fed (call dg_feed)",
                                x->id, x->name ? " '" : "", x->name ? x->name : "",
                                x->name ? "'" : "", dg_shape_str(x->shape, sb, sizeof sb));
        }
    }
    for (int i = 0; i < g->plan_len; i++) {
        dg_node *x = g->nodes[g->plan[i]];
        if (x->kind != DG_OP_NODE) continue;
        g->status = DG_OK;
        dg_status s = x->op->forward(x);
        if (s != DG_OK) {
            if (g->status == DG_OK)
                dg_set_error(g, s, "run: op %s failed at node %d", x->op->name, x->id);
            return s;
        }
        if (g->anomaly && !(x->op->flags & DG_OP_SIDE_EFFECT)) {
            int64_t at = first_nonfinite(x->value, x->numel);
            if (at >= 0) return report_anomaly(g, x, at);
        }
    }
    return DG_OK;
}

dg_status dg_run(dg_graph *g, dg_node *target) { return dg_run_many(g, 1, &target); }

float dg_value(const dg_node *n) {
    if (!n || n->numel != 1) return NAN;
    return n->value[0];
}
