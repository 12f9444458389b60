/* examples/universal_approximation: a sum of bent lines approximates a curve.
 *
 * Part 1 builds the course's network exactly, with constant weights, and evaluates it on
 * a grid of x:
 *     n1 = relu(-5x - 7.7)   n2 = relu(-1.2x - 1.3)   n3 = relu(1.2x + 1)
 *     n4 = relu(1.2x - 0.2)  n5 = relu(2x - 1.1)      n6 = relu(5x - 5)
 *     Z(x) = -n1 - n2 - n3 + n4 + n5 + n6
 * i.e. one hidden layer h = relu(x W1 + b1) with W1 = [-5 -1.2 1.2 1.2 2 5],
 * b1 = [-7.7 -1.3 1 -0.2 -1.1 -5] and an output Z = h W2 with W2 = [-1 -1 -1 1 1 1]^T.
 * Each unit is zero on one side of its knot x = -b/w and a straight line on the other, so
 * Z is piecewise linear with a bend at every knot.
 *
 * Part 2 trains a one-hidden-layer ReLU network y = relu(x W1 + b1) W2 + b2 (H units) to fit
 * Z itself and sin(x) on [-3, 3] with Adam, full batch, and plots target, fit and each
 * hidden unit's piece v_j * relu(w_j x + b_j): the fit is exactly their sum plus b2.
 */
#include "dagrad.h"
#include "ex_args.h"
#include "ex_plot.h"
#include "ex_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG         "universal_approximation"
#define COURSE_UNITS 6

static const float COURSE_W1[COURSE_UNITS] = {-5.0f, -1.2f, 1.2f, 1.2f, 2.0f, 5.0f};
static const float COURSE_B1[COURSE_UNITS] = {-7.7f, -1.3f, 1.0f, -0.2f, -1.1f, -5.0f};
static const float COURSE_W2[COURSE_UNITS] = {-1, -1, -1, 1, 1, 1};

typedef struct grid {
    int n;
    double lo, hi;
    double *x; /* n points */
    float *xf; /* the same as floats, fed to the graphs */
} grid;

/* Evaluates the course network on the grid; writes Z into z and each signed piece
 * W2[j] * n_j into pieces[j]. Returns 0 or an exit code. */
static int course_network(const grid *gr, double *z, double *pieces[COURSE_UNITS]) {
    dg_graph *g = dg_graph_new(0);
    if (!g) return ex_fail(PROG, NULL, "creating the graph");
    dg_node *x = dg_input(g, "x", dg_shape2(gr->n, 1));
    dg_node *W1 = dg_const(g, "W1", dg_shape2(1, COURSE_UNITS), COURSE_W1, 0);
    dg_node *b1 = dg_const(g, "b1", dg_shape1(COURSE_UNITS), COURSE_B1, 0);
    dg_node *W2 = dg_const(g, "W2", dg_shape2(COURSE_UNITS, 1), COURSE_W2, 0);
    dg_node *h = dg_relu(g, dg_add(g, dg_matmul(g, x, W1), b1)); /* [n,6]: n1..n6 */
    dg_node *Z = dg_matmul(g, h, W2);                            /* [n,1] */
    if (!Z) {
        int rc = ex_fail(PROG, g, "building the course network");
        dg_graph_free(g);
        return rc;
    }
    dg_node *targets[2] = {h, Z};
    if (dg_feed(x, gr->xf, gr->n) != DG_OK || dg_run_many(g, 2, targets) != DG_OK) {
        int rc = ex_fail(PROG, g, "evaluating the course network");
        dg_graph_free(g);
        return rc;
    }
    const float *hv = dg_node_data(h), *zv = dg_node_data(Z);
    for (int i = 0; i < gr->n; i++) {
        z[i] = zv[i];
        for (int j = 0; j < COURSE_UNITS; j++)
            pieces[j][i] = COURSE_W2[j] * hv[(size_t)i * COURSE_UNITS + j];
    }
    dg_graph_free(g);
    return 0;
}

/* The course's formula written out in plain C, to show the graph computes the same. */
static double course_formula(double x) {
    double n1 = fmax(0, -5 * x - 7.7), n2 = fmax(0, -1.2 * x - 1.3), n3 = fmax(0, 1.2 * x + 1);
    double n4 = fmax(0, 1.2 * x - 0.2), n5 = fmax(0, 2 * x - 1.1), n6 = fmax(0, 5 * x - 5);
    return -n1 - n2 - n3 + n4 + n5 + n6;
}

typedef struct fit_result {
    double mse, max_err, r2;
    double *fit;     /* n */
    double **pieces; /* H arrays of n */
} fit_result;

/* Trains y = relu(x W1 + b1) W2 + b2 on (grid, target). Returns 0 or an exit code. */
static int fit_relu_net(const grid *gr, const double *target, int hidden, int steps, double lr,
                        unsigned seed, fit_result *res) {
    dg_graph *g = dg_graph_new(seed);
    if (!g) return ex_fail(PROG, NULL, "creating the graph");
    dg_node *x = dg_input(g, "x", dg_shape2(gr->n, 1));
    dg_node *y = dg_input(g, "y", dg_shape2(gr->n, 1));
    dg_node *W1 = dg_param(g, "W1", dg_shape2(1, hidden));
    dg_node *b1 = dg_param(g, "b1", dg_shape1(hidden));
    dg_node *W2 = dg_param(g, "W2", dg_shape2(hidden, 1));
    dg_node *b2 = dg_param(g, "b2", dg_shape1(1));
    dg_node *h = dg_relu(g, dg_add(g, dg_matmul(g, x, W1), b1));
    dg_node *pred = dg_add(g, dg_matmul(g, h, W2), b2);
    dg_node *loss = dg_mse_loss(g, pred, y);
    if (!loss) {
        int rc = ex_fail(PROG, g, "building the network");
        dg_graph_free(g);
        return rc;
    }
    /* Initialisation: put every unit's knot -b/w somewhere inside the interval, with a
     * random direction and slope, so each unit starts out bending the curve where the data
     * is; a knot outside the interval would make the unit a plain line (or dead) there. */
    float *w1 = dg_node_data(W1), *bb1 = dg_node_data(b1), *w2 = dg_node_data(W2);
    for (int j = 0; j < hidden; j++) {
        double knot = gr->lo + (gr->hi - gr->lo) * dg_graph_rand_uniform(g);
        double slope = 0.5 + dg_graph_rand_uniform(g);
        if (dg_graph_rand_uniform(g) < 0.5) slope = -slope;
        w1[j] = (float)slope;
        bb1[j] = (float)(-slope * knot);
        w2[j] = (float)((2 * dg_graph_rand_uniform(g) - 1) / sqrt((double)hidden));
    }
    float *yf = malloc(sizeof(float) * (size_t)gr->n);
    if (!yf) {
        dg_graph_free(g);
        fprintf(stderr, PROG ": out of memory\n");
        return EX_EXIT_FAIL;
    }
    for (int i = 0; i < gr->n; i++) yf[i] = (float)target[i];
    dg_status st = dg_feed(x, gr->xf, gr->n);
    if (st == DG_OK) st = dg_feed(y, yf, gr->n);
    free(yf);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = (float)lr;
    dg_optimizer *opt = st == DG_OK ? dg_optimizer_new(g, loss, &cfg) : NULL;
    if (!opt) {
        int rc = ex_fail(PROG, g, "setting up training");
        dg_graph_free(g);
        return rc;
    }
    for (int s = 1; s <= steps; s++) {
        if (dg_optimizer_step(opt) != DG_OK) {
            int rc = ex_fail(PROG, g, "training step");
            dg_graph_free(g);
            return rc;
        }
        if (s == 1 || s % (steps / 5 > 0 ? steps / 5 : 1) == 0)
            printf("  step %6d  mse %.6f\n", s, dg_value(loss));
    }
    dg_node *targets[3] = {h, pred, loss};
    if (dg_run_many(g, 3, targets) != DG_OK) {
        int rc = ex_fail(PROG, g, "evaluating the fit");
        dg_graph_free(g);
        return rc;
    }
    const float *hv = dg_node_data(h), *pv = dg_node_data(pred), *v = dg_node_data(W2);
    double mean = 0, ss_tot = 0, ss_res = 0;
    for (int i = 0; i < gr->n; i++) mean += target[i] / gr->n;
    res->max_err = 0;
    for (int i = 0; i < gr->n; i++) {
        res->fit[i] = pv[i];
        double e = pv[i] - target[i];
        ss_res += e * e;
        ss_tot += (target[i] - mean) * (target[i] - mean);
        if (fabs(e) > res->max_err) res->max_err = fabs(e);
        for (int j = 0; j < hidden; j++) res->pieces[j][i] = v[j] * hv[(size_t)i * hidden + j];
    }
    res->mse = ss_res / gr->n;
    res->r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 0;
    dg_graph_free(g);
    return 0;
}

/* Plots target, fit and pieces; returns 0 or an exit code. With piece_labels the pieces
 * get their own colours and legend rows, otherwise one pale colour and one legend row. */
static int plot_fit(const char *path, const char *title, const grid *gr, const double *target,
                    const char *target_label, const fit_result *res, int npieces,
                    const char *fit_label, const char *piece_label,
                    const char *const *piece_labels) {
    static ex_panel p; /* large (series table): keep it off the stack */
    memset(&p, 0, sizeof p);
    p.title = title;
    p.xlabel = "x";
    p.ylabel = "y";
    p.legend = EX_LEGEND_TOP_LEFT; /* the curves rise to the right in both plots */
    for (int j = 0; j < npieces && j < EX_PLOT_MAX_SERIES - 2; j++) {
        ex_series *s = ex_panel_add(&p,
                                    piece_labels ? piece_labels[j]
                                    : j == 0     ? piece_label
                                                 : NULL,
                                    gr->x, res->pieces[j], gr->n);
        s->width = piece_labels ? 1.8 : 1.2;
        if (!piece_labels) s->color = "#9ecae1";
    }
    ex_series *t = ex_panel_add(&p, target_label, gr->x, target, gr->n);
    t->color = "#111";
    t->width = 3.5;
    if (res->fit) {
        ex_series *f = ex_panel_add(&p, fit_label, gr->x, res->fit, gr->n);
        f->color = "#d62728";
        f->width = 2.2;
        f->dashed = 1;
    }
    if (ex_svg_write(path, &p, 1, 720, 460) != 0) return EX_EXIT_FAIL;
    printf("  wrote %s\n", path);
    return 0;
}

static double **alloc_rows(int rows, int n) {
    double **r = calloc((size_t)rows, sizeof *r);
    if (!r) return NULL;
    for (int j = 0; j < rows; j++)
        if (!(r[j] = calloc((size_t)n, sizeof **r))) return NULL; /* freed at exit */
    return r;
}

int main(int argc, char **argv) {
    int hidden = 16, steps = 4000, points = 241, seed = 1;
    double lr = 0.01, min_r2 = -1e300;
    const char *out = "out";
    ex_arg args[] = {
        {"--hidden", EX_ARG_INT, &hidden, "H", "hidden ReLU units of the fitted net (default 16)",
         NULL, 1, 4096},
        {"--steps", EX_ARG_INT, &steps, "N", "full-batch Adam steps per fit (default 4000)", NULL,
         1, 10000000},
        {"--lr", EX_ARG_FLOAT, &lr, "LR", "Adam learning rate (default 0.01)", NULL, 1e-9, 10},
        {"--points", EX_ARG_INT, &points, "N", "grid points on [-3, 3] (default 241)", NULL, 2,
         1000000},
        {"--seed", EX_ARG_INT, &seed, "S", "initialisation seed (default 1)", NULL, 0, 2147483647},
        {"--out", EX_ARG_STRING, &out, "DIR", "directory for the SVG plots (default out)", NULL, 0,
         0},
        {"--min-r2", EX_ARG_FLOAT, &min_r2, "R2",
         "exit with status 1 if a fit's R^2 is below this (for tests)", NULL, 0, 0},
    };
    int pr = ex_parse_args(argc, argv,
                           "The course's ReLU network Z(x), then ReLU nets fitted to Z "
                           "and sin(x) on [-3, 3].",
                           args, (int)(sizeof args / sizeof args[0]));
    if (pr != 0) return pr > 0 ? EX_EXIT_OK : EX_EXIT_USAGE;
    if (ex_check_out_dir("universal_approximation", out) != 0) return EX_EXIT_FAIL;

    grid gr = {points, -3.0, 3.0, NULL, NULL};
    gr.x = malloc(sizeof(double) * (size_t)points);
    gr.xf = malloc(sizeof(float) * (size_t)points);
    double *z = malloc(sizeof(double) * (size_t)points);
    double *sinx = malloc(sizeof(double) * (size_t)points);
    double **course_pieces = alloc_rows(COURSE_UNITS, points);
    double **fit_pieces = alloc_rows(hidden, points);
    double *fit = malloc(sizeof(double) * (size_t)points);
    if (!gr.x || !gr.xf || !z || !sinx || !course_pieces || !fit_pieces || !fit) {
        fprintf(stderr, PROG ": out of memory\n");
        return EX_EXIT_FAIL;
    }
    for (int i = 0; i < points; i++) {
        gr.x[i] = gr.lo + (gr.hi - gr.lo) * i / (points - 1);
        gr.xf[i] = (float)gr.x[i];
        sinx[i] = sin(gr.x[i]);
    }

    /* ---- part 1: the course network ---- */
    printf("Part 1: the course network Z(x) = -n1 - n2 - n3 + n4 + n5 + n6\n");
    int rc = course_network(&gr, z, course_pieces);
    if (rc) return rc;
    double worst = 0;
    for (int i = 0; i < points; i++) worst = fmax(worst, fabs(z[i] - course_formula(gr.x[i])));
    printf("  graph vs the formula in plain C, over %d grid points: max |difference| = %.2g\n",
           points, worst);
    printf("  knots (where a unit bends, x = -b/w):");
    for (int j = 0; j < COURSE_UNITS; j++) printf(" %.3g", -COURSE_B1[j] / COURSE_W1[j]);
    printf("\n");
    /* A few values on whole numbers, read back from the graph's grid when present. */
    for (int k = -3; k <= 3; k++) {
        double xv = k, zv = NAN;
        for (int i = 0; i < points; i++)
            if (fabs(gr.x[i] - xv) < 1e-9) zv = z[i];
        if (isnan(zv)) continue;
        printf("  Z(%5.2f) = %8.4f\n", xv, zv);
    }
    char path[4096];
    {
        fit_result cr = {0, 0, 0, NULL, course_pieces};
        static const char *const names[COURSE_UNITS] = {
            "-n1 = -relu(-5x - 7.7)", "-n2 = -relu(-1.2x - 1.3)", "-n3 = -relu(1.2x + 1)",
            "+n4 = relu(1.2x - 0.2)", "+n5 = relu(2x - 1.1)",     "+n6 = relu(5x - 5)"};
        rc = plot_fit(ex_path(path, sizeof path, out, "ua_course_network.svg"),
                      "Course network Z(x) = sum of its six signed ReLU units", &gr, z, "Z(x)", &cr,
                      COURSE_UNITS, NULL, NULL, names);
        if (rc) return rc;
    }

    /* ---- part 2: fit Z and sin(x) with a trained one-hidden-layer ReLU net ---- */
    struct {
        const char *name, *file;
        const double *target;
    } jobs[2] = {{"Z(x)", "ua_fit_course_Z.svg", z}, {"sin(x)", "ua_fit_sin.svg", sinx}};
    int bad = 0;
    for (int t = 0; t < 2; t++) {
        printf("\nPart 2.%d: fit %s on [-3, 3] with %d hidden ReLU units (Adam lr %g, %d steps)\n",
               t + 1, jobs[t].name, hidden, lr, steps);
        fit_result res = {0, 0, 0, fit, fit_pieces};
        rc = fit_relu_net(&gr, jobs[t].target, hidden, steps, lr, (unsigned)seed, &res);
        if (rc) return rc;
        printf("  final: mse %.6f  max |error| %.4f  R^2 %.5f\n", res.mse, res.max_err, res.r2);
        if (res.r2 < min_r2) {
            fprintf(stderr, PROG ": fit of %s has R^2 %.5f, below --min-r2 %g\n", jobs[t].name,
                    res.r2, min_r2);
            bad = 1;
        }
        char title[128], fit_label[96];
        snprintf(title, sizeof title, "Fitting %s with %d ReLU units", jobs[t].name, hidden);
        snprintf(fit_label, sizeof fit_label, "fit = sum of pieces + bias (R^2 %.4f)", res.r2);
        rc = plot_fit(ex_path(path, sizeof path, out, jobs[t].file), title, &gr, jobs[t].target,
                      "target", &res, hidden, fit_label, "unit pieces v_j relu(w_j x + b_j)", NULL);
        if (rc) return rc;
    }
    for (int j = 0; j < COURSE_UNITS; j++) free(course_pieces[j]);
    for (int j = 0; j < hidden; j++) free(fit_pieces[j]);
    free(course_pieces);
    free(fit_pieces);
    free(fit);
    free(z);
    free(sinx);
    free(gr.x);
    free(gr.xf);
    return bad ? EX_EXIT_FAIL : EX_EXIT_OK;
}
