/* examples/xor: the smallest problem a single neuron cannot solve, solved by a 2-2-1 net.
 *
 * XOR is not linearly separable, so it needs a hidden layer: two tanh units each draw a
 * line through the unit square, and the output unit combines the two half-planes.
 *     h = tanh(x W1 + b1)      x [4,2], W1 [2,2]
 *     z = h W2 + b2            W2 [2,1], P(1) = sigmoid(z), loss = BCE on the logit z
 * trained full batch with Adam. With only two hidden units, about a third of random
 * starts end in a local minimum (typically loss ln(2)/2 = 0.3466: two rows stuck at
 * P = 0.5); then the example re-initialises with the next seed, up to --restarts times.
 */
#include "dagrad.h"
#include "ex_args.h"
#include "ex_util.h"

#include <stdio.h>

static const float X[8] = {0, 0, 0, 1, 1, 0, 1, 1};
static const float Y[4] = {0, 1, 1, 0};

/* Trains one 2-2-1 net from `seed`; returns the number of rows right (0..4) or -1. */
static int train_once(int seed, int epochs, double lr) {
    dg_graph *g = dg_graph_new((uint64_t)seed);
    if (!g) return ex_fail("xor", NULL, "creating the graph"), -1;
    dg_node *x = dg_input(g, "x", dg_shape2(4, 2));
    dg_node *y = dg_input(g, "y", dg_shape2(4, 1));
    dg_node *h = dg_dense(g, "hidden", x, 2, DG_ACT_TANH);
    dg_node *z = dg_dense(g, "output", h, 1, DG_ACT_NONE);
    dg_node *p = dg_sigmoid(g, z);
    dg_node *loss = dg_bce_logits_loss(g, z, y);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = (float)lr;
    dg_optimizer *opt = NULL;
    if (!loss || !p || dg_feed(x, X, 8) != DG_OK || dg_feed(y, Y, 4) != DG_OK ||
        !(opt = dg_optimizer_new(g, loss, &cfg))) {
        ex_fail("xor", g, "building the model");
        dg_graph_free(g);
        return -1;
    }
    printf("seed %d:\n", seed);
    for (int e = 1; e <= epochs; e++) {
        if (dg_optimizer_step(opt) != DG_OK) {
            ex_fail("xor", g, "training step");
            dg_graph_free(g);
            return -1;
        }
        if (e == 1 || e % (epochs >= 4 ? epochs / 4 : 1) == 0)
            printf("  epoch %6d  loss %.6f\n", e, dg_value(loss));
    }
    float prob[4], w1[4], w2[2];
    if (dg_run(g, p) != DG_OK) {
        ex_fail("xor", g, "evaluating");
        dg_graph_free(g);
        return -1;
    }
    dg_read(p, prob, 4);
    /* the hidden weights: each column is one unit's line w1 x1 + w2 x2 + b = 0 */
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *n = dg_graph_node(g, i);
        const char *name = dg_node_name(n);
        if (dg_node_kind_of(n) != DG_PARAM || !name) continue;
        if (dg_node_numel(n) == 4) dg_read(n, w1, 4);
        if (dg_node_numel(n) == 2 && dg_node_shape(n).ndim == 2) dg_read(n, w2, 2);
    }
    int correct = 0;
    printf("  x1 x2 | label | P(1)   | prediction\n");
    for (int i = 0; i < 4; i++) {
        int pred = prob[i] > 0.5f;
        correct += pred == (int)Y[i];
        printf("   %d  %d |   %d   | %.4f |     %d%s\n", (int)X[2 * i], (int)X[2 * i + 1],
               (int)Y[i], prob[i], pred, pred == (int)Y[i] ? "" : "   (wrong)");
    }
    printf("  hidden W = [[%.3f %.3f] [%.3f %.3f]]  output W = [%.3f %.3f]^T\n", w1[0], w1[1],
           w1[2], w1[3], w2[0], w2[1]);
    dg_graph_free(g);
    return correct;
}

int main(int argc, char **argv) {
    int epochs = 2000, seed = 1, restarts = 10;
    double lr = 0.05;
    ex_arg args[] = {
        {"--epochs", EX_ARG_INT, &epochs, "N", "full-batch Adam steps (default 2000)", NULL, 1,
         10000000},
        {"--lr", EX_ARG_FLOAT, &lr, "LR", "Adam learning rate (default 0.05)", NULL, 1e-9, 100},
        {"--seed", EX_ARG_INT, &seed, "S", "first weight initialisation seed (default 1)", NULL, 0,
         2147483647},
        {"--restarts", EX_ARG_INT, &restarts, "N",
         "re-initialise up to N times after a local minimum (default 10)", NULL, 0, 1000},
    };
    int pr = ex_parse_args(argc, argv, "A 2-2-1 tanh network learns XOR.", args,
                           (int)(sizeof args / sizeof args[0]));
    if (pr != 0) return pr > 0 ? EX_EXIT_OK : EX_EXIT_USAGE;

    for (int attempt = 0; attempt <= restarts; attempt++) {
        int correct = train_once(seed + attempt, epochs, lr);
        if (correct < 0) return EX_EXIT_FAIL;
        if (correct == 4) {
            printf("\n4/4 correct (seed %d, after %d restart%s)\n", seed + attempt, attempt,
                   attempt == 1 ? "" : "s");
            return EX_EXIT_OK;
        }
        printf("  %d/4 correct: stuck in a local minimum%s\n", correct,
               attempt < restarts ? "; re-initialising\n" : "");
    }
    printf("\nno start out of %d reached 4/4 (--restarts %d)\n", restarts + 1, restarts);
    return EX_EXIT_FAIL;
}
