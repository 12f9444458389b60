/* A two-layer network's autodiff gradients equal the closed-form backprop formulas.
 *
 * Batch rows are samples (row-major), so the textbook column-vector formulas appear
 * transposed. With X[N,D], W1[D,H], b1[H], W2[H,O], b2[O], targets Y[N,O]:
 *   Z1 = X W1 + b1,  A1 = g(Z1),  Z2 = A1 W2 + b2,  A2 = sigmoid(Z2),
 *   L  = mean over the N*O outputs of BCE(Z2 logits, Y).
 * Then, with the 1/(N O) of the mean folded into dZ2:
 *   dZ2 = (A2 - Y) / (N O)        (dz2 = a2 - y per output)
 *   dW2 = A1^T dZ2                (dW2 = dz2 a1^T)
 *   db2 = sum over rows of dZ2    (db2 = dz2)
 *   dZ1 = (dZ2 W2^T) * g'(Z1)     (dz1 = W2^T dz2 * g'(z1))
 *   dW1 = X^T dZ1                 (dW1 = dz1 x^T)
 *   db1 = sum over rows of dZ1    (db1 = dz1)
 * computed here in double with plain loops, compared to 1e-5 relative. */
#include "test_util.h"

#include <string.h>

enum { N = 6, D = 5, H = 4, O = 3 };

static void fill(float *v, int n, float lo, float hi) {
    for (int i = 0; i < n; i++) v[i] = test_uniform(lo, hi);
}

/* |got - want| <= 1e-5 * max(|want|, floor): relative, with a floor at 1% of the largest
 * entry so that entries which cancel to nearly zero are judged on the tensor's scale. */
static void compare(const char *what, const float *got, const double *want, int n) {
    double mx = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    CHECK_MSG(mx > 1e-4, "%s: gradient is trivially small (%g)", what, mx);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double rel = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-2 * mx);
        worst = fmax(worst, rel);
        CHECK_MSG(rel <= 1e-5, "%s[%d]: autodiff %.9g, closed form %.9g (rel %.2g)", what, i,
                  (double)got[i], want[i], rel);
    }
    printf("  %-4s max relative difference %.2e\n", what, worst);
}

static void run(int tanh_hidden) {
    printf("hidden activation %s\n", tanh_hidden ? "tanh" : "sigmoid");
    float x[N * D], y[N * O], w1[D * H], b1[H], w2[H * O], b2[O];
    fill(x, N * D, -1, 1);
    for (int i = 0; i < N * O; i++) y[i] = test_uniform(0, 1) < 0.5f ? 0.0f : 1.0f;
    fill(w1, D * H, -1, 1);
    fill(b1, H, -0.5f, 0.5f);
    fill(w2, H * O, -1, 1);
    fill(b2, O, -0.5f, 0.5f);

    dg_graph *g = dg_graph_new(5);
    dg_node *X = dg_input(g, "x", dg_shape2(N, D)), *Y = dg_input(g, "y", dg_shape2(N, O));
    dg_node *W1 = dg_param(g, "W1", dg_shape2(D, H)), *B1 = dg_param(g, "b1", dg_shape1(H));
    dg_node *W2 = dg_param(g, "W2", dg_shape2(H, O)), *B2 = dg_param(g, "b2", dg_shape1(O));
    CHECK_OK(dg_feed(X, x, N * D));
    CHECK_OK(dg_feed(Y, y, N * O));
    memcpy(dg_node_data(W1), w1, sizeof w1);
    memcpy(dg_node_data(B1), b1, sizeof b1);
    memcpy(dg_node_data(W2), w2, sizeof w2);
    memcpy(dg_node_data(B2), b2, sizeof b2);
    dg_node *z1 = dg_add(g, dg_matmul(g, X, W1), B1);
    dg_node *a1 = tanh_hidden ? dg_tanh(g, z1) : dg_sigmoid(g, z1);
    dg_node *z2 = dg_add(g, dg_matmul(g, a1, W2), B2);
    dg_node *loss = dg_bce_logits_loss(g, z2, Y);
    CHECK_OK(dg_backward(g, loss));
    dg_node *targets[5] = {loss, dg_grad(W1), dg_grad(B1), dg_grad(W2), dg_grad(B2)};
    for (int i = 1; i < 5; i++) CHECK(targets[i] != NULL);
    CHECK_OK(dg_run_many(g, 5, targets));

    /* forward by hand */
    double Z1[N * H], A1[N * H], A2[N * O], L = 0;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            double s = b1[h];
            for (int d = 0; d < D; d++) s += (double)x[n * D + d] * w1[d * H + h];
            Z1[n * H + h] = s;
            A1[n * H + h] = tanh_hidden ? tanh(s) : 1 / (1 + exp(-s));
        }
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = b2[o];
            for (int h = 0; h < H; h++) s += A1[n * H + h] * w2[h * O + o];
            A2[n * O + o] = 1 / (1 + exp(-s));
            double t = y[n * O + o], a = A2[n * O + o];
            L += -(t * log(a) + (1 - t) * log(1 - a));
        }
    L /= N * O;
    CHECK_MSG(fabs(dg_value(loss) - L) <= 1e-5 * fabs(L), "loss %.9g vs %.9g",
              (double)dg_value(loss), L);

    /* backward by hand */
    double dZ2[N * O], dW2[H * O] = {0}, db2[O] = {0}, dZ1[N * H], dW1[D * H] = {0}, db1[H] = {0};
    for (int i = 0; i < N * O; i++) dZ2[i] = (A2[i] - y[i]) / (N * O);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            for (int h = 0; h < H; h++) dW2[h * O + o] += A1[n * H + h] * dZ2[n * O + o];
            db2[o] += dZ2[n * O + o];
        }
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            double back = 0;
            for (int o = 0; o < O; o++) back += dZ2[n * O + o] * w2[h * O + o];
            /* g'(z1) from z1 itself: tanh' = 1 - tanh^2, sigmoid' = s (1 - s) */
            double z = Z1[n * H + h], t = tanh(z), sg = 1 / (1 + exp(-z));
            double gprime = tanh_hidden ? 1 - t * t : sg * (1 - sg);
            dZ1[n * H + h] = back * gprime;
        }
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            for (int d = 0; d < D; d++) dW1[d * H + h] += x[n * D + d] * dZ1[n * H + h];
            db1[h] += dZ1[n * H + h];
        }
    compare("dW1", dg_node_data(dg_grad(W1)), dW1, D * H);
    compare("db1", dg_node_data(dg_grad(B1)), db1, H);
    compare("dW2", dg_node_data(dg_grad(W2)), dW2, H * O);
    compare("db2", dg_node_data(dg_grad(B2)), db2, O);

    /* gradients are readable from the parameters' gradient nodes after the run, and have
     * the parameters' shapes (b1's broadcast contribution was summed back to [H]) */
    CHECK(dg_shape_equal(dg_node_shape(dg_grad(B1)), dg_shape1(H)));
    CHECK(dg_shape_equal(dg_node_shape(dg_grad(W1)), dg_shape2(D, H)));
    CHECK(dg_node_grad_of(dg_grad(W1)) == W1);
    dg_graph_free(g);
}

int main(void) {
    run(1);
    run(0);
    return test_summary("test_core_two_layer");
}
