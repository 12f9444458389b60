/* The tutorial's first program (docs/TUTORIAL.md, parts 1-3): one neuron,
 * z = x w + b, p = sigmoid(z), with a binary cross-entropy loss. It builds the graph, feeds
 * an example, runs it, adds the gradients with dg_backward and compares them with the ones
 * worked out by hand: dL/dz = p - y, so dL/dw = x^T (p - y) and dL/db = p - y.
 * Exits with status 1 if they differ, so CTest runs it as a test. */
#include "dagrad.h"

#include <math.h>
#include <stdio.h>

/* Prints the graph's last error and fails. */
static int fail(dg_graph *g, const char *what) {
    fprintf(stderr, "neuron: %s: %s\n", what, dg_graph_error(g));
    dg_graph_free(g);
    return 1;
}

/* 1 if the graph's gradients match the hand-derived ones for example (xv, yv). */
static int gradients_match(const float *xv, float yv, float p, const float *gw, float gb) {
    int ok = fabsf(gb - (p - yv)) < 1e-6f;
    for (int i = 0; i < 3; i++) ok = ok && fabsf(gw[i] - xv[i] * (p - yv)) < 1e-6f;
    return ok;
}

int main(void) {
    /* part 1: a graph, its leaves and ops */
    dg_graph *g = dg_graph_new(42); /* 42 seeds the graph's random generator */
    if (!g) return 1;

    dg_node *x = dg_input(g, "x", dg_shape2(1, 3)); /* one example, three features */
    dg_node *y = dg_input(g, "y", dg_shape2(1, 1)); /* its label, 0 or 1 */
    dg_node *w = dg_param(g, "w", dg_shape2(3, 1)); /* parameters start at zero */
    dg_node *b = dg_param(g, "b", dg_shape1(1));

    dg_node *z = dg_add(g, dg_matmul(g, x, w), b); /* [1,1] + [1] broadcasts */
    dg_node *p = dg_sigmoid(g, z);
    dg_node *loss = dg_bce_logits_loss(g, z, y); /* stable: takes the logit z, not p */
    if (!p || !loss) return fail(g, "building the graph");

    /* part 2: values in, run, values out */
    const float w0[3] = {0.5f, -0.25f, 0.1f};
    if (dg_feed(w, w0, 3) != DG_OK) return fail(g, "setting w");
    dg_node_data(b)[0] = 0.2f; /* or write a parameter's buffer in place */

    const float x0[3] = {1.0f, 2.0f, 3.0f}, y0 = 1.0f;
    if (dg_feed(x, x0, 3) != DG_OK || dg_feed(y, &y0, 1) != DG_OK) return fail(g, "feeding");

    dg_node *outputs[3] = {z, p, loss}; /* the values to read afterwards */
    if (dg_run_many(g, 3, outputs) != DG_OK) return fail(g, "running");
    printf("z = %.4f  p = %.4f  loss = %.4f\n", dg_value(z), dg_value(p), dg_value(loss));

    /* part 3: gradients are nodes of the same graph */
    if (dg_backward(g, loss) != DG_OK) return fail(g, "backward");
    dg_node *grads[2] = {dg_grad(w), dg_grad(b)};
    if (dg_run_many(g, 2, grads) != DG_OK) return fail(g, "running the gradients");

    float gw[3], gb;
    dg_read(grads[0], gw, 3);
    dg_read(grads[1], &gb, 1);
    printf("dL/dw = [%.4f %.4f %.4f]  dL/db = %.4f\n", gw[0], gw[1], gw[2], gb);
    if (!gradients_match(x0, y0, dg_value(p), gw, gb)) {
        fprintf(stderr, "neuron: gradients differ from x (p - y), p - y\n");
        dg_graph_free(g);
        return 1;
    }

    /* A new example: feed and run again, nothing is rebuilt. */
    const float x1[3] = {-1.0f, 0.5f, 2.0f}, y1 = 0.0f;
    dg_feed(x, x1, 3);
    dg_feed(y, &y1, 1);
    dg_node *all[3] = {p, grads[0], grads[1]};
    if (dg_run_many(g, 3, all) != DG_OK) return fail(g, "running again");
    dg_read(grads[0], gw, 3);
    dg_read(grads[1], &gb, 1);
    printf("second example: p = %.4f  dL/db = %.4f\n", dg_value(p), gb);
    if (!gradients_match(x1, y1, dg_value(p), gw, gb)) {
        fprintf(stderr, "neuron: gradients of the second example are wrong\n");
        dg_graph_free(g);
        return 1;
    }

    dg_graph_free(g); /* frees every node, buffer and gradient */
    return 0;
}
