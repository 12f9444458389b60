/* bench_fusion: what fusing elementwise consumers into the matrix products gains. Each row
 * builds the same ReLU MLP twice in one process, once with dg_set_fusion(g, 0), and times
 * a forward run (inference) or an Adam training step of each, interleaved, so both see the
 * same machine; the table gives the best of the rounds after three warm-up rounds, and the
 * number of nodes the fused plan ran inside a product (bias adds, ReLUs, relu_grads).
 *
 * usage: bench_fusion [rounds] */
#include "bench_common.h"
#include "dagrad.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct fusion_case {
    int batch, hidden, layers, train;
} fusion_case;

static const fusion_case cases[] = {
    {128, 512, 2, 1}, /* close to W2's step */
    {32, 50, 2, 1},   /* the course net's step */
    {256, 512, 2, 0}, /* inference */
    {1024, 1024, 2, 0}, {1024, 1024, 2, 1}, {4096, 256, 3, 0},
};

typedef struct net {
    dg_graph *g;
    dg_node *out;
    dg_optimizer *opt;
} net;

static net build(const fusion_case *c, int fusion, const float *x, const float *y) {
    net n = {dg_graph_new(1), NULL, NULL};
    dg_set_fusion(n.g, fusion);
    dg_node *in = dg_input(n.g, "x", dg_shape2(DG_BATCH, 784));
    dg_node *labels = dg_input(n.g, "y", dg_shape1(DG_BATCH));
    dg_node *h = in;
    for (int l = 0; l < c->layers; l++) {
        char name[16];
        snprintf(name, sizeof name, "fc%d", l);
        h = dg_dense(n.g, name, h, c->hidden, DG_ACT_RELU);
    }
    n.out = dg_dense(n.g, "out", h, 10, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(n.g, n.out, labels);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    if (c->train) n.opt = dg_optimizer_new(n.g, loss, &cfg);
    if (!loss || (c->train && !n.opt) || dg_feed(in, x, (int64_t)c->batch * 784) != DG_OK ||
        dg_feed(labels, y, c->batch) != DG_OK) {
        fprintf(stderr, "bench_fusion: %s\n", dg_graph_error(n.g));
        exit(1);
    }
    return n;
}

static double once(net *n) {
    double t0 = bench_now();
    dg_status s = n->opt ? dg_optimizer_step(n->opt) : dg_run(n->g, n->out);
    if (s != DG_OK) {
        fprintf(stderr, "bench_fusion: %s\n", dg_graph_error(n->g));
        exit(1);
    }
    return bench_now() - t0;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 40;
    if (rounds < 4) rounds = 4;
    printf("CPU: %s; %d threads; GEMM kernel: %s\n", bench_cpu_model(), dg_get_num_threads(),
           dg_matmul_kernel());
    printf("best of %d interleaved rounds after 3 warm-up rounds; times in ms\n\n", rounds - 3);
    printf("%-26s %10s %10s %7s %6s\n", "MLP 784-hidden-10", "unfused", "fused", "ratio", "fused");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fusion_case *c = &cases[i];
        float *x = malloc(sizeof(float) * (size_t)c->batch * 784);
        float *y = malloc(sizeof(float) * (size_t)c->batch);
        if (!x || !y) return 1;
        for (int64_t k = 0; k < (int64_t)c->batch * 784; k++) x[k] = (float)(k % 255) / 255.0f;
        for (int k = 0; k < c->batch; k++) y[k] = (float)(k % 10);
        net n[2] = {build(c, 0, x, y), build(c, 1, x, y)};
        double best[2] = {1e30, 1e30};
        for (int r = 0; r < rounds; r++)
            for (int f = 0; f < 2; f++) {
                double t = once(&n[f]);
                if (r >= 3 && t < best[f]) best[f] = t;
            }
        char label[64];
        snprintf(label, sizeof label, "%dx%d, batch %d, %s", c->layers, c->hidden, c->batch,
                 c->train ? "step" : "infer");
        printf("%-26s %10.3f %10.3f %7.3f %6d\n", label, 1e3 * best[0], 1e3 * best[1],
               best[0] / best[1], dg_graph_fused_nodes(n[1].g));
        for (int f = 0; f < 2; f++) dg_graph_free(n[f].g);
        free(x);
        free(y);
    }
    printf("\nratio: unfused / fused time (above 1: fusion is faster)\n");
    return 0;
}
