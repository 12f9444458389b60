/* Gradient check: the graph's reverse-mode gradients against central finite differences.
 * Builds the gradient nodes, compares, then removes them again so the graph is left as the
 * caller built it. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dg_status dg_gradcheck(dg_graph *g, dg_node *y, int n, dg_node *const *leaves, double eps,
                       double atol, double rtol, dg_gradcheck_report *report) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "gradcheck: graph is NULL");
    if (!report) return dg_set_error(g, DG_ERR_NULL, "gradcheck: report is NULL");
    memset(report, 0, sizeof *report);
    if (!(eps > 0) || !(atol >= 0) || !(rtol >= 0))
        return dg_set_error(g, DG_ERR_ARG, "gradcheck: eps must be > 0 and tolerances >= 0");
    if (n < 1 || !leaves) return dg_set_error(g, DG_ERR_ARG, "gradcheck: no leaves given");
    for (int i = 0; i < n; i++) {
        if (!leaves[i]) return dg_set_error(g, DG_ERR_NULL, "gradcheck: leaf %d is NULL", i);
        if (leaves[i]->graph != g)
            return dg_set_error(g, DG_ERR_GRAPH, "gradcheck: leaf %d belongs to another graph", i);
        if (leaves[i]->kind == DG_OP_NODE)
            return dg_set_error(g, DG_ERR_ARG, "gradcheck: node %d is not a leaf", leaves[i]->id);
        /* without this the analytic gradient would silently read as zero */
        if (!leaves[i]->requires_grad)
            return dg_set_error(g, DG_ERR_ARG,
                                "gradcheck: leaf %d (node %d) does not require a gradient; call "
                                "dg_set_requires_grad before building the nodes that use it",
                                i, leaves[i]->id);
    }
    dg_mark mark = dg_graph_mark(g);
    dg_node **grads = calloc((size_t)n, sizeof *grads);
    if (!grads) return dg_set_error(g, DG_ERR_NOMEM, "gradcheck: out of memory");
    dg_status s = dg_gradients(g, y, n, leaves, grads);
    if (s != DG_OK) goto done;

    /* analytic gradients; NULL means y does not depend on that leaf (gradient zero) */
    for (int i = 0; i < n && s == DG_OK; i++)
        if (grads[i]) s = dg_run(g, grads[i]);
    if (s != DG_OK) goto done;

    report->passed = 1;
    report->worst_leaf = -1;
    double worst_excess = -INFINITY;
    for (int i = 0; i < n && s == DG_OK; i++) {
        dg_node *x = leaves[i];
        for (int64_t j = 0; j < x->numel; j++) {
            float saved = x->value[j];
            x->value[j] = (float)(saved + eps);
            double h_plus = x->value[j] - (double)saved; /* the step actually taken */
            s = dg_run(g, y);
            double f_plus = y->value[0];
            x->value[j] = (float)(saved - eps);
            double h_minus = (double)saved - x->value[j];
            if (s == DG_OK) s = dg_run(g, y);
            double f_minus = y->value[0];
            x->value[j] = saved; /* restored on failure too */
            if (s != DG_OK) break;
            double numeric = (f_plus - f_minus) / (h_plus + h_minus);
            double analytic = grads[i] ? grads[i]->value[j] : 0.0;
            double abs_err = fabs(analytic - numeric);
            double denom = fmax(fmax(fabs(analytic), fabs(numeric)), 1e-6);
            double rel_err = abs_err / denom;
            double excess = abs_err - (atol + rtol * fabs(numeric));
            if (abs_err > report->max_abs_err) report->max_abs_err = abs_err;
            if (rel_err > report->max_rel_err) report->max_rel_err = rel_err;
            if (excess > 0 || isnan(abs_err)) report->passed = 0;
            if (excess > worst_excess || report->worst_leaf < 0) {
                worst_excess = excess;
                report->worst_leaf = i;
                report->worst_index = j;
                report->worst_analytic = analytic;
                report->worst_numeric = numeric;
            }
            report->checked++;
        }
        if (s != DG_OK) break;
    }
    /* leave y's value as of the unperturbed leaves */
    if (s == DG_OK) s = dg_run(g, y);
done:
    if (s != DG_OK) report->passed = 0;
    free(grads);
    dg_graph_rollback(g, mark, NULL); /* removes the gradient nodes; keeps any message */
    return s;
}
