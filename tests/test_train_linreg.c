/* Linear regression: y = x w* + b* exactly, for known w* and b*; a dense layer without
 * activation trained on the mean squared error with SGD momentum recovers w* and b* to
 * 1e-3. Also checks that plain SGD on the same problem decreases the loss every step with
 * a small learning rate (a convex quadratic). */
#include "test_util.h"

#include <string.h>

#define N 256
#define D 3

static const float w_true[D] = {2.0f, -3.5f, 0.75f};
static const float b_true = 0.5f;

static void run(dg_optim_kind kind, float lr, int max_steps) {
    static float xs[N * D], ys[N];
    for (int i = 0; i < N; i++) {
        double t = b_true;
        for (int k = 0; k < D; k++) {
            xs[i * D + k] = test_uniform(-1, 1);
            t += (double)xs[i * D + k] * w_true[k];
        }
        ys[i] = (float)t;
    }
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "x", dg_shape2(N, D)), *y = dg_input(g, "y", dg_shape2(N, 1));
    dg_feed(x, xs, N * D);
    dg_feed(y, ys, N);
    dg_node *pred = dg_dense(g, "lin", x, 1, DG_ACT_NONE);
    dg_node *loss = dg_mse_loss(g, pred, y);
    dg_optim_config c = dg_optim_defaults(kind);
    c.lr = lr;
    dg_optimizer *opt = dg_optimizer_new(g, loss, &c);
    CHECK(opt != NULL);
    if (!opt) {
        dg_graph_free(g);
        return;
    }
    float prev = INFINITY;
    int increases = 0;
    for (int s = 0; s < max_steps; s++) {
        CHECK_OK(dg_optimizer_step(opt));
        float l = dg_value(dg_optimizer_step_node(opt));
        increases += l > prev && l > 1e-9f; /* not float noise near the optimum */
        prev = l;
    }
    if (kind == DG_SGD) CHECK_MSG(increases == 0, "sgd: loss rose %d times", increases);
    dg_node *w = NULL, *b = NULL;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        const char *nm = dg_node_name(dg_graph_node(g, i));
        if (nm && !strcmp(nm, "lin/W")) w = dg_graph_node(g, i);
        if (nm && !strcmp(nm, "lin/b")) b = dg_graph_node(g, i);
    }
    CHECK(w && b);
    if (w && b) {
        for (int k = 0; k < D; k++)
            CHECK_MSG(fabs(dg_node_data(w)[k] - w_true[k]) < 1e-3, "kind %d: w[%d] = %.6f, want %g",
                      (int)kind, k, (double)dg_node_data(w)[k], (double)w_true[k]);
        CHECK_MSG(fabs(dg_node_data(b)[0] - b_true) < 1e-3, "kind %d: b = %.6f", (int)kind,
                  (double)dg_node_data(b)[0]);
        printf("linreg kind %d: w = [%.5f, %.5f, %.5f], b = %.5f, loss %.3g\n", (int)kind,
               (double)dg_node_data(w)[0], (double)dg_node_data(w)[1], (double)dg_node_data(w)[2],
               (double)dg_node_data(b)[0], (double)prev);
    }
    dg_graph_free(g);
}

int main(void) {
    run(DG_MOMENTUM, 0.1f, 400);
    run(DG_SGD, 0.3f, 1000);
    return test_summary("test_train_linreg");
}
