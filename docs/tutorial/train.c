/* The tutorial's second program (docs/TUTORIAL.md, parts 4-9): a small network learns
 * which points of the square [-1,1]^2 lie inside the circle x^2 + y^2 < 0.5. It trains
 * once with a hand-written gradient-descent loop and once with an optimizer, prints a
 * model summary, evaluates on fresh points, saves a checkpoint and loads it into a new
 * graph, and writes the graph as DOT (and as SVG with --render, when Graphviz's library
 * was found at build time). Exits with status 1 if the trained network is below 90% test
 * accuracy or the loaded copy disagrees with the original. */
#include "dagrad.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 256 /* points per batch: the whole training set, and the whole test set */

/* A small deterministic generator for the data (the graph's generator is for weights). */
static float uniform(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(*s >> 40) / 16777216.0f * 2.0f - 1.0f; /* in [-1, 1) */
}

static void make_points(uint64_t seed, float *xy, float *label) {
    for (int i = 0; i < N; i++) {
        float a = uniform(&seed), b = uniform(&seed);
        xy[2 * i] = a;
        xy[2 * i + 1] = b;
        label[i] = a * a + b * b < 0.5f ? 1.0f : 0.0f;
    }
}

/* The model: points [N,2] -> dense 16 tanh -> dense 1 -> logit; BCE loss against labels. */
typedef struct model {
    dg_graph *g;
    dg_node *x, *y, *logit, *loss;
} model;

static int build_model(model *m, uint64_t seed) {
    m->g = dg_graph_new(seed);
    if (!m->g) return 0;
    dg_graph *g = m->g;
    m->x = dg_input(g, "points", dg_shape2(N, 2));
    m->y = dg_input(g, "labels", dg_shape2(N, 1));
    dg_node *h = dg_dense(g, "hidden", m->x, 16, DG_ACT_TANH);
    m->logit = dg_dense(g, "output", h, 1, DG_ACT_NONE);
    m->loss = dg_bce_logits_loss(g, m->logit, m->y);
    if (!m->loss) {
        fprintf(stderr, "train: building the model: %s\n", dg_graph_error(g));
        return 0;
    }
    dg_node_set_name(m->loss, "loss");
    return 1;
}

/* Fraction of points whose logit has the sign of their label. */
static double accuracy(model *m, const float *xy, const float *label) {
    dg_feed(m->x, xy, 2 * N);
    if (dg_run(m->g, m->logit) != DG_OK) return -1.0;
    const float *z = dg_node_data(m->logit);
    int correct = 0;
    for (int i = 0; i < N; i++) correct += (z[i] > 0.0f) == (label[i] > 0.5f);
    return (double)correct / N;
}

/* Part 4: gradient descent by hand, p -= lr dL/dp for every parameter. */
static int train_by_hand(const float *xy, const float *label) {
    model m;
    if (!build_model(&m, 7)) return 0;
    dg_graph *g = m.g;
    if (dg_backward(g, m.loss) != DG_OK) return 0;

    /* The graph is data: walk it to find the parameters and their gradient nodes. */
    dg_node *params[8], *grads[8];
    int n = 0;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *node = dg_graph_node(g, i);
        if (dg_node_kind_of(node) == DG_PARAM && n < 8) {
            params[n] = node;
            grads[n++] = dg_grad(node);
        }
    }

    dg_feed(m.x, xy, 2 * N);
    dg_feed(m.y, label, N);
    for (int step = 0; step <= 300; step++) {
        /* the loss is a target too, so the run computes it along with the gradients */
        dg_node *targets[9] = {m.loss};
        memcpy(targets + 1, grads, (size_t)n * sizeof *grads);
        if (dg_run_many(g, n + 1, targets) != DG_OK) return 0;
        if (step % 100 == 0) printf("by hand: step %3d  loss %.4f\n", step, dg_value(m.loss));
        for (int k = 0; k < n; k++) {
            float *p = dg_node_data(params[k]);
            const float *dp = dg_node_data(grads[k]);
            for (int64_t j = 0; j < dg_node_numel(params[k]); j++) p[j] -= 0.5f * dp[j];
        }
    }
    dg_graph_free(g);
    return 1;
}

int main(int argc, char **argv) {
    int render = argc > 1 && strcmp(argv[1], "--render") == 0;
    float train_xy[2 * N], train_label[N], test_xy[2 * N], test_label[N];
    make_points(1, train_xy, train_label);
    make_points(2, test_xy, test_label);

    if (!train_by_hand(train_xy, train_label)) return 1;

    /* Parts 5-6: the same model with layers and an optimizer. */
    model m;
    if (!build_model(&m, 7)) return 1;
    dg_graph *g = m.g;
    dg_summary(g, stdout);

    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = 0.02f;
    dg_optimizer *opt = dg_optimizer_new(g, m.loss, &cfg);
    if (!opt) {
        fprintf(stderr, "train: optimizer: %s\n", dg_graph_error(g));
        return 1;
    }
    dg_feed(m.x, train_xy, 2 * N);
    dg_feed(m.y, train_label, N);
    for (int step = 1; step <= 500; step++) {
        if (dg_optimizer_step(opt) != DG_OK) {
            fprintf(stderr, "train: step %d: %s\n", step, dg_graph_error(g));
            return 1;
        }
        /* the step node's value is the loss before this step's update */
        if (step % 100 == 0)
            printf("adam: step %3d  loss %.4f\n", step, dg_value(dg_optimizer_step_node(opt)));
    }

    /* Part 7: evaluation on points the network has not seen. */
    dg_set_training(g, 0); /* no dropout here, but this is where it would switch off */
    double acc = accuracy(&m, test_xy, test_label);
    printf("test accuracy %.1f%%\n", 100.0 * acc);

    /* Part 8: a checkpoint, loaded into a new graph built with another seed. */
    if (dg_checkpoint_save(g, "circle.ckpt", 1) != DG_OK) {
        fprintf(stderr, "train: %s\n", dg_graph_error(g));
        return 1;
    }
    model copy;
    if (!build_model(&copy, 99)) return 1;
    if (dg_checkpoint_load(copy.g, "circle.ckpt", 0) != DG_OK) {
        fprintf(stderr, "train: %s\n", dg_graph_error(copy.g));
        return 1;
    }
    double acc_copy = accuracy(&copy, test_xy, test_label);
    printf("loaded copy: test accuracy %.1f%%\n", 100.0 * acc_copy);
    dg_graph_free(copy.g);

    /* Part 9: the graph as a picture. Run the gradients once more so the heat is current. */
    dg_set_training(g, 1);
    dg_feed(m.x, train_xy, 2 * N);
    dg_optimizer_step(opt);
    dg_dot_options dot = dg_dot_defaults();
    dot.loss = m.loss;
    dot.grad_heat = 1;
    dot.title = "circle: forward, backward and Adam update";
    if (dg_dot_write(g, "circle.dot", &dot) != DG_OK) {
        fprintf(stderr, "train: %s\n", dg_graph_error(g));
        return 1;
    }
    if (render && dg_dot_render_available() && dg_dot_render(g, "circle.svg", "svg", &dot) != DG_OK)
        fprintf(stderr, "train: %s\n", dg_graph_error(g));

    dg_graph_free(g); /* also frees the optimizer */
    return acc >= 0.9 && acc_copy == acc ? 0 : 1;
}
