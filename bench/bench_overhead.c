/* bench_overhead: what a node costs when its kernel does almost nothing. A chain of
 * scalar ops y <- tanh(y * c + x), 10,000 op nodes deep by default, is built,
 * differentiated with dg_backward, and run forward only and forward + backward; the table
 * gives nanoseconds per evaluated node (best of several runs), which is the engine's
 * per-node overhead: plan walk, dispatch, parallel_for's serial fast path. Building and
 * dg_backward are timed too (nodes come from the graph's arena), and the first run, which
 * makes the plan (order by edges, liveness, arena layout).
 *
 * usage: bench_overhead [nodes] */
#include "dagrad.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best seconds of `reps` runs of the targets. */
static double best_run(dg_graph *g, int n, dg_node *const *targets, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (dg_run_many(g, n, targets) != DG_OK) {
            fprintf(stderr, "run failed: %s\n", dg_graph_error(g));
            exit(1);
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    int target_ops = argc > 1 ? atoi(argv[1]) : 10000;
    if (target_ops < 3) target_ops = 3;
    dg_set_num_threads(0);
    printf("threads: %d\n", dg_get_num_threads());

    double t0 = now();
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape0());
    dg_node *c = dg_scalar(g, 0.9f);
    dg_set_requires_grad(x, 1);
    dg_node *y = x;
    for (int i = 0; i < target_ops / 3; i++) y = dg_tanh(g, dg_add(g, dg_mul(g, y, c), x));
    if (!y) {
        fprintf(stderr, "build failed: %s\n", dg_graph_error(g));
        return 1;
    }
    double t_build = now() - t0;
    int forward_nodes = dg_graph_node_count(g);

    t0 = now();
    if (dg_backward(g, y) != DG_OK) {
        fprintf(stderr, "backward failed: %s\n", dg_graph_error(g));
        return 1;
    }
    double t_backward_build = now() - t0;
    int all_nodes = dg_graph_node_count(g);
    dg_node *dx = dg_grad(x);

    float xv = 0.3f;
    dg_feed(x, &xv, 1);
    dg_node *fwd[1] = {y}, *both[2] = {y, dx};
    t0 = now();
    best_run(g, 2, both, 1); /* the first run makes the plan: order, shapes, memory */
    double t_plan = now() - t0;
    best_run(g, 2, both, 2); /* warm caches */
    double t_fwd = best_run(g, 1, fwd, 20);
    double t_both = best_run(g, 2, both, 20);

    printf("%-38s %10s %12s %10s\n", "what", "nodes", "total us", "ns/node");
    printf("%-38s %10d %12.1f %10.1f\n", "build forward graph", forward_nodes, t_build * 1e6,
           t_build * 1e9 / forward_nodes);
    printf("%-38s %10d %12.1f %10.1f\n", "dg_backward (build gradient nodes)",
           all_nodes - forward_nodes, t_backward_build * 1e6,
           t_backward_build * 1e9 / (all_nodes - forward_nodes));
    printf("%-38s %10d %12.1f %10.1f\n", "first run forward + backward (plans)", all_nodes,
           t_plan * 1e6, t_plan * 1e9 / all_nodes);
    printf("%-38s %10d %12.1f %10.1f\n", "run forward", forward_nodes, t_fwd * 1e6,
           t_fwd * 1e9 / forward_nodes);
    printf("%-38s %10d %12.1f %10.1f\n", "run forward + backward", all_nodes, t_both * 1e6,
           t_both * 1e9 / all_nodes);
    printf("y = %.6f, dy/dx = %.6f\n", (double)dg_value(y), (double)dg_value(dx));
    printf("target: building and differentiating at 300 ns per node or less\n");
    dg_graph_free(g);
    return 0;
}
