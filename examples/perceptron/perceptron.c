/* examples/perceptron: "code a perceptron" from the course, in dagrad.
 *
 * Eight participants answer three yes/no questions (photos of 3 meals submitted? satisfied
 * with the food choices? generally happy?); the label is "following the plan?". One neuron
 * learns the decision:
 *
 *     out = act(X W + B)        X [8,3], W [3,1], B [1], both starting at zero
 *     loss = mean over rows of BCE(sigmoid(out), y)   (out used as the logit)
 *
 * trained by plain SGD (lr 0.01, 1000 full-batch epochs) with act = tanh, exactly as the
 * course does, so the numbers can be compared. The tanh squashes the logit into (-1, 1),
 * so sigmoid(out) stays within [0.27, 0.73]: the course's neuron is never confident.
 * --proper uses the textbook form instead: out = sigmoid(X W + B), trained with BCE on the
 * pre-activation (the numerically stable equivalent), prediction out > 0.5.
 */
#include "dagrad.h"
#include "dagrad/dot.h"
#include "ex_args.h"
#include "ex_util.h"

#include <stdio.h>
#include <string.h>

#define ROWS     8
#define FEATURES 3

/* The course's table: photos of 3 meals?, satisfied with food?, generally happy? */
static const float X_DATA[ROWS * FEATURES] = {1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 1,
                                              1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0};

static dg_node *activate(dg_graph *g, dg_node *z, const char *act) {
    if (strcmp(act, "tanh") == 0) return dg_tanh(g, z);
    if (strcmp(act, "sigmoid") == 0) return dg_sigmoid(g, z);
    if (strcmp(act, "relu") == 0) return dg_relu(g, z);
    return z; /* "none" */
}

int main(int argc, char **argv) {
    const char *labels = "11111000", *act = "tanh", *out_dir = "out";
    double lr = 0.01;
    int epochs = 1000, proper = 0;
    int lr_given = 0;
    ex_arg args[] = {
        {"--labels", EX_ARG_STRING, &labels, "BITS", "the 8 labels, one 0/1 per row", NULL, 0, 0},
        {"--activation", EX_ARG_CHOICE, &act, "ACT", "neuron activation (course: tanh)",
         "tanh|sigmoid|relu|none", 0, 0},
        {"--lr", EX_ARG_FLOAT, &lr, "LR", "SGD learning rate (default 0.01; 1.0 with --proper)",
         NULL, 1e-9, 1e6},
        {"--epochs", EX_ARG_INT, &epochs, "N", "full-batch epochs (default 1000)", NULL, 1,
         10000000},
        {"--proper", EX_ARG_FLAG, &proper, NULL,
         "sigmoid output + BCE, predict out > 0.5 (reaches 8/8)", NULL, 0, 0},
        {"--out", EX_ARG_STRING, &out_dir, "DIR", "directory for perceptron.dot (default out)",
         NULL, 0, 0},
    };
    int nargs = (int)(sizeof args / sizeof args[0]);
    /* --proper changes the default learning rate; remember whether --lr was given. */
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--lr", 4) == 0 && (argv[i][4] == '\0' || argv[i][4] == '='))
            lr_given = 1;
    int pr = ex_parse_args(argc, argv, "A single neuron learns a yes/no decision (course version).",
                           args, nargs);
    if (pr != 0) return pr > 0 ? EX_EXIT_OK : EX_EXIT_USAGE;
    if (strlen(labels) != ROWS || strspn(labels, "01") != ROWS) {
        fprintf(stderr, "perceptron: --labels needs exactly %d characters 0 or 1, got '%s'\n", ROWS,
                labels);
        return EX_EXIT_USAGE;
    }
    if (proper && !lr_given) lr = 1.0;
    /* The DOT graph is written after training; find out now if it cannot be. */
    if (ex_check_out_dir("perceptron", out_dir) != 0) return EX_EXIT_FAIL;

    float y_data[ROWS];
    for (int i = 0; i < ROWS; i++) y_data[i] = (float)(labels[i] - '0');

    dg_graph *g = dg_graph_new(1);
    if (!g) return ex_fail("perceptron", NULL, "creating the graph");
    dg_node *X = dg_input(g, "X", dg_shape2(ROWS, FEATURES));
    dg_node *Y = dg_input(g, "Y", dg_shape2(ROWS, 1));
    dg_node *W = dg_param(g, "W", dg_shape2(FEATURES, 1)); /* parameters start at zero */
    dg_node *B = dg_param(g, "B", dg_shape1(1));
    dg_node *z = dg_add(g, dg_matmul(g, X, W), B); /* [8,1] + [1] broadcasts */
    dg_node *out, *loss;
    if (proper) {
        /* sigmoid output; BCE(sigmoid(z), y) computed from z directly for stability */
        out = dg_sigmoid(g, z);
        loss = dg_bce_logits_loss(g, z, Y);
    } else {
        out = activate(g, z, act);
        loss = dg_bce_logits_loss(g, out, Y); /* the neuron's output used as the logit */
    }
    if (!loss || !out) return ex_fail("perceptron", g, "building the model");
    dg_node_set_name(out, "out");
    dg_node_set_name(loss, "loss");
    if (dg_feed(X, X_DATA, ROWS * FEATURES) != DG_OK || dg_feed(Y, y_data, ROWS) != DG_OK)
        return ex_fail("perceptron", g, "feeding the data");

    dg_optim_config cfg = dg_optim_defaults(DG_SGD);
    cfg.lr = (float)lr;
    dg_optimizer *opt = dg_optimizer_new(g, loss, &cfg);
    if (!opt) return ex_fail("perceptron", g, "building the optimizer");

    printf("perceptron: %s, %s,\n            SGD lr %g, %d full-batch epochs, labels %s\n",
           proper ? "proper: out = sigmoid(XW+B)" : "course: out = act(XW+B)",
           proper ? "BCE" : "BCE with out as the logit", lr, epochs, labels);
    if (!proper) printf("activation: %s\n", act);
    for (int e = 1; e <= epochs; e++) {
        if (dg_optimizer_step(opt) != DG_OK) return ex_fail("perceptron", g, "training step");
        /* The step's run computed the loss from the weights before this update. */
        if (e == 1 || e % (epochs >= 10 ? epochs / 10 : 1) == 0)
            printf("epoch %5d  loss %.6f\n", e, dg_value(loss));
    }

    /* Final forward pass with the learned weights. */
    dg_node *targets[2] = {out, loss};
    if (dg_run_many(g, 2, targets) != DG_OK) return ex_fail("perceptron", g, "evaluating");
    float w[FEATURES], b, o[ROWS];
    dg_read(W, w, FEATURES);
    dg_read(B, &b, 1);
    dg_read(out, o, ROWS);
    printf("\nlearned W = [%.6f, %.6f, %.6f]^T   B = %.6f\nfinal loss %.6f\n", w[0], w[1], w[2], b,
           dg_value(loss));
    if (w[0] == 0 && w[1] == 0 && w[2] == 0 && b == 0) {
        /* Nothing moved: every gradient was exactly zero from the first step on. */
        if (!proper && strcmp(act, "relu") == 0)
            printf("note: W and B never moved from zero. With them at zero every row has\n"
                   "      z = XW + B = 0, and relu has slope 0 there (relu'(0) = 0 here, as in\n"
                   "      most libraries), so no gradient reaches W or B: the unit is dead from\n"
                   "      the start and the loss stays at ln 2 = 0.693. Start from non-zero\n"
                   "      weights, or use --activation tanh, sigmoid or none.\n");
        else
            printf("note: W and B never moved from zero: every gradient was zero.\n");
    }

    /* Prediction, as in the course: the neuron's output read as a yes-probability and
     * rounded (out > 0.5). The course's loss, though, reads sigmoid(out) as P(yes); tanh
     * keeps out below 1, so the two disagree near the boundary and the course's neuron
     * misses rows it "knows" (sigmoid(out) > 0.5 <=> out > 0), which --proper fixes. */
    int correct = 0, correct_logit = 0;
    printf("\n photos  food  happy | label |   output | prediction\n");
    printf("-----------------------------------------------------\n");
    for (int i = 0; i < ROWS; i++) {
        int pred = o[i] > 0.5f, label = (int)y_data[i];
        correct += pred == label;
        correct_logit += (o[i] > 0.0f) == label;
        printf("   %d      %d      %d   |   %d   | %8.4f |     %d%s\n", (int)X_DATA[3 * i],
               (int)X_DATA[3 * i + 1], (int)X_DATA[3 * i + 2], label, o[i], pred,
               pred == label ? "" : "   (wrong)");
    }
    printf("\n%d/%d correct (prediction: output > 0.5)\n", correct, ROWS);
    if (!proper)
        printf("(reading sigmoid(output) > 0.5, as the loss does, would give %d/%d)\n",
               correct_logit, ROWS);

    /* The graph: forward, the gradients the optimizer added with dg_backward, and the SGD
     * updates; each forward node coloured by its gradient's norm in the last step. */
    char path[4096];
    dg_dot_options dot = dg_dot_defaults();
    dot.loss = loss;
    dot.grad_heat = 1;
    dot.grad_norms = 1;
    dot.annotate_values = 1;
    dot.title = "perceptron: forward pass, backward pass and SGD update";
    if (dg_dot_write(g, ex_path(path, sizeof path, out_dir, "perceptron.dot"), &dot) != DG_OK)
        return ex_fail("perceptron", g, "writing the DOT graph");
    printf("wrote %s\n  (render it with: dot -Tsvg %s -o perceptron.svg)\n", path, path);

    dg_graph_free(g);
    return EX_EXIT_OK;
}
