/* An outside program using an installed dagrad: builds y = sum(tanh(W x + b)), asks for
 * the gradients and checks them against the closed form
 *   dy/dW[i][j] = (1 - tanh(z_i)^2) x_j,  dy/db[i] = 1 - tanh(z_i)^2,  z = W x + b,
 * computed here in double precision. Exit status 0 when they agree to 1e-5. */
#include <dagrad.h>

#include <math.h>
#include <stdio.h>

enum { ROWS = 3, COLS = 4 };

static int fail(dg_graph *g, const char *what) {
    fprintf(stderr, "consumer: %s: %s\n", what, g ? dg_graph_error(g) : dg_last_error());
    dg_graph_free(g);
    return 1;
}

int main(void) {
    dg_graph *g = dg_graph_new(7);
    if (!g) return fail(NULL, "dg_graph_new");
    dg_node *W = dg_param(g, "W", dg_shape2(ROWS, COLS));
    dg_node *b = dg_param(g, "b", dg_shape2(ROWS, 1));
    dg_node *x = dg_input(g, "x", dg_shape2(COLS, 1));
    dg_node *y = dg_sum(g, dg_tanh(g, dg_add(g, dg_matmul(g, W, x), b)));
    if (!y) return fail(g, "building y");

    float w[ROWS * COLS], bias[ROWS], xs[COLS];
    for (int k = 0; k < ROWS * COLS; k++) w[k] = 0.1f * (float)(k % 5) - 0.2f;
    for (int i = 0; i < ROWS; i++) bias[i] = 0.05f * (float)i;
    for (int j = 0; j < COLS; j++) xs[j] = 1.0f - 0.3f * (float)j;
    if (dg_feed(W, w, ROWS * COLS) || dg_feed(b, bias, ROWS) || dg_feed(x, xs, COLS))
        return fail(g, "dg_feed");
    if (dg_backward(g, y) != DG_OK) return fail(g, "dg_backward");
    dg_node *targets[3] = {y, dg_grad(W), dg_grad(b)};
    if (!targets[1] || !targets[2]) return fail(g, "dg_grad");
    if (dg_run_many(g, 3, targets) != DG_OK) return fail(g, "dg_run_many");

    float gw[ROWS * COLS], gb[ROWS];
    if (dg_read(targets[1], gw, ROWS * COLS) || dg_read(targets[2], gb, ROWS))
        return fail(g, "dg_read");
    double want_y = 0, worst = 0;
    for (int i = 0; i < ROWS; i++) {
        double z = bias[i];
        for (int j = 0; j < COLS; j++) z += (double)w[i * COLS + j] * xs[j];
        double t = tanh(z), d = 1 - t * t;
        want_y += t;
        worst = fmax(worst, fabs(gb[i] - d));
        for (int j = 0; j < COLS; j++) worst = fmax(worst, fabs(gw[i * COLS + j] - d * xs[j]));
    }
    double err_y = fabs(dg_value(y) - want_y);
    printf("consumer: y = %.6f (expected %.6f), max gradient error %.2e\n", dg_value(y), want_y,
           worst);
    dg_graph_free(g);
    return err_y < 1e-5 && worst < 1e-5 ? 0 : 1;
}
