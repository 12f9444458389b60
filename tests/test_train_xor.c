/* XOR with a 2-8-1 tanh MLP and binary cross-entropy on logits: Adam drives the loss
 * below 0.01 and every prediction to the right side of 0.5. One optimizer step is one
 * run of the step node. */
#include "test_util.h"

int main(void) {
    const float xs[8] = {0, 0, 0, 1, 1, 0, 1, 1}, ys[4] = {0, 1, 1, 0};
    dg_graph *g = dg_graph_new(2024);
    dg_node *x = dg_input(g, "x", dg_shape2(4, 2)), *y = dg_input(g, "y", dg_shape2(4, 1));
    CHECK_OK(dg_feed(x, xs, 8));
    CHECK_OK(dg_feed(y, ys, 4));
    dg_node *h = dg_dense(g, NULL, x, 8, DG_ACT_TANH);
    dg_node *logit = dg_dense(g, NULL, h, 1, DG_ACT_NONE);
    dg_node *loss = dg_bce_logits_loss(g, logit, y);
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    c.lr = 0.05f;
    dg_optimizer *opt = dg_optimizer_new(g, loss, &c);
    CHECK_MSG(opt != NULL, "%s", dg_graph_error(g));
    if (!opt) return test_summary("test_train_xor");
    float first = NAN, last = NAN;
    int steps = 0;
    for (; steps < 2000; steps++) {
        CHECK_OK(dg_optimizer_step(opt));
        last = dg_value(dg_optimizer_step_node(opt));
        if (steps == 0) first = last;
        if (last < 0.005f) break;
    }
    CHECK_OK(dg_run(g, loss));
    printf("xor: loss %.4f -> %.5f after %d steps\n", first, dg_value(loss), steps + 1);
    CHECK(first > 0.5f);
    CHECK_MSG(dg_value(loss) < 0.01f, "loss %g", (double)dg_value(loss));
    CHECK(dg_optimizer_steps(opt) == steps + (steps < 2000 ? 1 : 0));
    CHECK_OK(dg_run(g, logit));
    for (int i = 0; i < 4; i++)
        CHECK_MSG((dg_node_data(logit)[i] > 0) == (ys[i] > 0.5f), "sample %d logit %g", i,
                  (double)dg_node_data(logit)[i]);
    dg_graph_free(g);
    return test_summary("test_train_xor");
}
