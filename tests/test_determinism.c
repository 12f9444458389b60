/* Training gives the same bytes whatever the number of threads: a two-layer ReLU network
 * with softmax cross-entropy, built from core ops (matmul, add, relu, cross_entropy), is
 * trained for a few steps with plain SGD done by hand on the parameters' data, and once
 * more with Adam from the optimizer API, with 1, 2 and 3 threads; every parameter must
 * match bit for bit. The sizes put the matmuls on the packed parallel GEMM and the
 * elementwise ops and reductions above the parallel threshold, so the parallel paths run.
 * With DG_USE_BLAS the BLAS decides how it splits work, so only closeness is required. */
#include "test_util.h"

#include "../src/ops/gemm_kernel.h"

#include <string.h>

enum { BATCH = 256, IN = 300, HIDDEN = 256, CLASSES = 10, STEPS = 4 };

typedef struct {
    dg_graph *g;
    dg_node *x, *labels, *loss;
    dg_node *params[4];
} net;

static void init_param(dg_node *p, unsigned seed, float scale) {
    float *d = dg_node_data(p);
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < dg_node_numel(p); i++) {
        s = s * 1664525u + 1013904223u;
        d[i] = scale * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
}

static int build(net *n) {
    dg_graph *g = n->g = dg_graph_new(7);
    if (!g) return 0;
    n->x = dg_input(g, "x", dg_shape2(BATCH, IN));
    n->labels = dg_input(g, "labels", dg_shape1(BATCH));
    dg_node *w1 = dg_param(g, "w1", dg_shape2(IN, HIDDEN)),
            *b1 = dg_param(g, "b1", dg_shape1(HIDDEN));
    dg_node *w2 = dg_param(g, "w2", dg_shape2(HIDDEN, CLASSES));
    dg_node *b2 = dg_param(g, "b2", dg_shape1(CLASSES));
    n->params[0] = w1, n->params[1] = b1, n->params[2] = w2, n->params[3] = b2;
    for (int i = 0; i < 4; i++) init_param(n->params[i], (unsigned)i + 1, i % 2 ? 0.1f : 0.2f);
    dg_node *h = dg_relu(g, dg_add(g, dg_matmul(g, n->x, w1), b1));
    n->loss = dg_cross_entropy_loss(g, dg_add(g, dg_matmul(g, h, w2), b2), n->labels);
    return n->loss != NULL;
}

static void feed_batch(net *n, int seed) {
    static float x[BATCH * IN], y[BATCH];
    uint32_t s = 12345u + (uint32_t)seed;
    for (int i = 0; i < BATCH * IN; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    for (int i = 0; i < BATCH; i++) y[i] = (float)((i * 7 + seed) % CLASSES);
    CHECK_OK(dg_feed(n->x, x, BATCH * IN));
    CHECK_OK(dg_feed(n->labels, y, BATCH));
}

/* Trains with `threads` threads; copies every parameter, concatenated, into out. */
static void train(int threads, int use_adam, float *out, float *losses) {
    net n = {0};
    dg_set_num_threads(threads);
    CHECK(build(&n));
    dg_optimizer *opt = NULL;
    dg_node *grads[4];
    if (use_adam) {
        dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
        CHECK((opt = dg_optimizer_new(n.g, n.loss, &cfg)) != NULL);
    } else {
        CHECK_OK(dg_backward(n.g, n.loss));
        for (int i = 0; i < 4; i++) CHECK((grads[i] = dg_grad(n.params[i])) != NULL);
    }
    for (int step = 0; step < STEPS; step++) {
        feed_batch(&n, 0); /* one batch again and again: the loss must fall */
        if (opt) {
            CHECK_OK(dg_optimizer_step(opt));
            losses[step] = dg_value(dg_optimizer_step_node(opt));
        } else {
            dg_node *targets[5] = {n.loss, grads[0], grads[1], grads[2], grads[3]};
            CHECK_OK(dg_run_many(n.g, 5, targets));
            losses[step] = dg_value(n.loss);
            for (int i = 0; i < 4; i++) {
                float *p = dg_node_data(n.params[i]);
                const float *d = dg_node_data(grads[i]);
                for (int64_t j = 0; j < dg_node_numel(n.params[i]); j++) p[j] -= 0.5f * d[j];
            }
        }
    }
    for (int i = 0; i < 4; i++) {
        int64_t k = dg_node_numel(n.params[i]);
        memcpy(out, dg_node_data(n.params[i]), (size_t)k * sizeof(float));
        out += k;
    }
    dg_graph_free(n.g);
    dg_set_num_threads(0);
}

/* The losses over inputs large enough to be summed in parallel blocks: the same value for
 * any thread count, and equal to a sequential double-precision sum. */
static void check_losses(void) {
    enum { N = 200000, ROWS = 4096, COLS = 100 };
    dg_graph *g = dg_graph_new(3);
    dg_node *p = dg_input(g, "p", dg_shape1(N)), *t = dg_input(g, "t", dg_shape1(N));
    dg_node *z = dg_input(g, "z", dg_shape2(ROWS, COLS)), *l = dg_input(g, "l", dg_shape1(ROWS));
    test_fill(p, -3.0f, 3.0f);
    test_fill(t, 0.0f, 1.0f);
    test_fill(z, -5.0f, 5.0f);
    float *lv = dg_node_data(l);
    for (int i = 0; i < ROWS; i++) lv[i] = (float)(i % COLS);
    dg_feed(l, lv, ROWS);
    dg_node *losses[4] = {dg_mse_loss(g, p, t), dg_mae_loss(g, p, t), dg_bce_logits_loss(g, p, t),
                          dg_cross_entropy_loss(g, z, l)};
    const float *pv = dg_node_data(p), *tv = dg_node_data(t), *zv = dg_node_data(z);
    double ref[4] = {0, 0, 0, 0};
    for (int i = 0; i < N; i++) {
        double d = (double)pv[i] - tv[i], zi = pv[i];
        ref[0] += d * d / N;
        ref[1] += fabs(d) / N;
        ref[2] += ((zi > 0 ? zi : 0) - zi * tv[i] + log1p(exp(-fabs(zi)))) / N;
    }
    for (int r = 0; r < ROWS; r++) {
        double s = 0;
        for (int j = 0; j < COLS; j++) s += exp((double)zv[r * COLS + j]);
        ref[3] += (log(s) - zv[r * COLS + (int)lv[r]]) / ROWS;
    }
    float first[4];
    for (int threads = 1; threads <= 3; threads++) {
        dg_set_num_threads(threads);
        CHECK_OK(dg_run_many(g, 4, losses));
        for (int i = 0; i < 4; i++) {
            float v = dg_value(losses[i]);
            if (threads == 1) {
                first[i] = v;
                CHECK_MSG(fabs(v - ref[i]) <= 1e-6 * fabs(ref[i]), "loss %d: %.9g vs %.9g", i,
                          (double)v, ref[i]);
            } else {
                CHECK_MSG(memcmp(&v, &first[i], sizeof v) == 0, "loss %d: %d threads %.9g vs %.9g",
                          i, threads, (double)v, (double)first[i]);
            }
        }
    }
    dg_set_num_threads(0);
    dg_graph_free(g);
}

/* Sums over leading axes into kept trailing ones (a bias gradient, a 3-d and a 4-d case),
 * each large enough to wake sleeping workers: for any thread count, every element must be
 * bitwise the in-order float sum the serial pass makes (the parallel split runs over the
 * kept last axis), and close to a double-precision sum. */
static void check_sum_to(void) {
    static const int64_t shapes[3][4] = {{1, 16384, 1, 33}, {1, 50, 6, 1800}, {8, 5, 7, 2000}};
    for (int s = 0; s < 3; s++) {
        const int64_t a0 = shapes[s][0], a = shapes[s][1], b = shapes[s][2], n = shapes[s][3];
        dg_graph *g = dg_graph_new(5);
        dg_node *x = a0 > 1 ? dg_input(g, "x", dg_shape4(a0, a, b, n))
                            : dg_input(g, "x", dg_shape3(a, b, n));
        test_fill(x, -1.0f, 1.0f);
        dg_node *y =
            a0 > 1 ? dg_sum_to(g, x, dg_shape3(a, b, n)) : dg_sum_to(g, x, dg_shape2(b, n));
        const int64_t outs = a0 > 1 ? a * b * n : b * n, reps = a0 > 1 ? a0 : a;
        const float *xv = dg_node_data(x);
        for (int threads = 1; threads <= 3; threads++) {
            dg_set_num_threads(threads);
            CHECK_OK(dg_run(g, y));
            const float *yv = dg_node_data(y);
            int64_t bad = -1;
            double worst = 0.0;
            for (int64_t j = 0; j < outs; j++) {
                float in_order = 0.0f;
                double ref = 0.0;
                for (int64_t i = 0; i < reps; i++) {
                    in_order += xv[i * outs + j];
                    ref += xv[i * outs + j];
                }
                if (bad < 0 && memcmp(&in_order, &yv[j], sizeof in_order)) bad = j;
                worst = fabs(yv[j] - ref) > worst ? fabs(yv[j] - ref) : worst;
            }
            CHECK_MSG(bad < 0, "sum_to %d, %d threads: element %lld is not the in-order sum", s,
                      threads, (long long)bad);
            CHECK_MSG(worst <= 1e-6 * (double)reps, "sum_to %d: error %g", s, worst);
        }
        dg_set_num_threads(0);
        dg_graph_free(g);
    }
}

int main(void) {
    check_losses();
    check_sum_to();
    const int64_t total = IN * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES;
    int blas = !strcmp(dg__gemm_kernel_name(), "cblas");
    float *ref = malloc((size_t)total * sizeof(float)),
          *got = malloc((size_t)total * sizeof(float));
    for (int adam = 0; adam < 2; adam++) {
        float ref_loss[STEPS], loss[STEPS];
        train(1, adam, ref, ref_loss);
        /* training really moved: the loss fell from about ln 10 */
        CHECK_MSG(ref_loss[STEPS - 1] < ref_loss[0], "%s: loss %g -> %g", adam ? "adam" : "sgd",
                  ref_loss[0], ref_loss[STEPS - 1]);
        for (int threads = 2; threads <= 3; threads++) {
            train(threads, adam, got, loss);
            if (!blas) {
                CHECK_MSG(!memcmp(ref, got, (size_t)total * sizeof(float)),
                          "%s: parameters after %d steps differ between 1 and %d threads",
                          adam ? "adam" : "sgd", STEPS, threads);
                CHECK(!memcmp(ref_loss, loss, sizeof loss));
            } else {
                double worst = 0;
                for (int64_t i = 0; i < total; i++) {
                    double e = fabs((double)ref[i] - got[i]);
                    worst = e > worst ? e : worst;
                }
                CHECK_MSG(worst < 1e-3, "BLAS backend: %d threads differ by %g", threads, worst);
            }
        }
    }
    if (blas)
        printf("DG_USE_BLAS: bitwise thread-count invariance not required, closeness checked\n");
    free(ref), free(got);
    return test_summary("test_determinism");
}
