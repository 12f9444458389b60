/* The README's first example: a 2-8-1 tanh network learns XOR with Adam. */
#include <dagrad.h>
#include <stdio.h>

int main(void) {
    dg_graph *g = dg_graph_new(42); /* owns every node, parameter and buffer below */
    dg_node *x = dg_input(g, "x", dg_shape2(4, 2));
    dg_node *y = dg_input(g, "y", dg_shape2(4, 1));
    dg_node *h = dg_dense(g, "hidden", x, 8, DG_ACT_TANH);
    dg_node *logit = dg_dense(g, "out", h, 1, DG_ACT_NONE);
    dg_node *loss = dg_bce_logits_loss(g, logit, y);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = 0.05f;
    dg_optimizer *opt = dg_optimizer_new(g, loss, &cfg); /* adds backward + update nodes */
    if (!opt) return fprintf(stderr, "%s\n", dg_graph_error(g)), 1;
    float xs[] = {0, 0, 0, 1, 1, 0, 1, 1}, ys[] = {0, 1, 1, 0};
    dg_feed(x, xs, 8);
    dg_feed(y, ys, 4);
    for (int step = 0; step < 300; step++) dg_optimizer_step(opt); /* one run per step */
    dg_node *p = dg_sigmoid(g, logit);
    dg_run(g, p);
    for (int i = 0; i < 4; i++)
        printf("%g xor %g -> %.3f\n", xs[2 * i], xs[2 * i + 1], dg_node_data(p)[i]);
    dg_graph_free(g);
    return 0;
}
