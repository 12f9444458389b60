/* mpi_train: data-parallel training equals one process. Every rank trains the small
 * classifier of mpi_test_util.h on its part of each global batch with the MPI layer's
 * optimizer; the same process also trains a reference on the whole batch without MPI. At
 * the end every parameter must be within --tol (relative to the tensor's largest value)
 * of the reference, and bitwise equal on every rank. The schedule ends with a batch of 7
 * rows and one of 2 (so with 3 ranks one rank has no row and weight 0).
 *
 * usage: mpirun -np N mpi_train [--steps 50] [--batch 48] [--overlap -1|0|1]
 *          [--bucket BYTES] [--threads T] [--tol 1e-5] [--hash]
 *          [--save FILE --save-at K] [--load FILE]
 *   --hash      rank 0 prints "hash <16 hex digits>" of the final parameters
 *   --save      rank 0 writes a checkpoint with optimizer state after K steps, then stops
 *   --load      resumes from such a checkpoint (saved by any number of ranks) */
#include "mpi_test_util.h"

#include <stdlib.h>

static int failures = 0;
#define FAIL(...)                                                                                  \
    (failures++, fprintf(stderr, "mpi_train rank %d: ", rank), fprintf(stderr, __VA_ARGS__),       \
     fputc('\n', stderr))

static int rows_of(int step, int steps, int batch) {
    return step == steps - 2 ? 7 : step == steps - 1 ? 2 : batch;
}

int main(int argc, char **argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int steps = 50, batch = 48, threads = 0, print_hash = 0, save_at = -1;
    double tol = 1e-5;
    const char *save = NULL, *load = NULL;
    dg_mpi_config cfg = dg_mpi_defaults();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--steps"))
            steps = atoi(v), i++;
        else if (!strcmp(a, "--batch"))
            batch = atoi(v), i++;
        else if (!strcmp(a, "--overlap"))
            cfg.overlap = atoi(v), i++;
        else if (!strcmp(a, "--bucket"))
            cfg.bucket_bytes = (size_t)atoll(v), i++;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v), i++;
        else if (!strcmp(a, "--tol"))
            tol = atof(v), i++;
        else if (!strcmp(a, "--save"))
            save = v, i++;
        else if (!strcmp(a, "--save-at"))
            save_at = atoi(v), i++;
        else if (!strcmp(a, "--load"))
            load = v, i++;
        else if (!strcmp(a, "--hash"))
            print_hash = 1;
        else
            FAIL("unknown option %s", a);
    }
    if (threads > 0) dg_set_num_threads(threads);
    float *x = malloc(sizeof(float) * (size_t)batch * FEATURES),
          *y = malloc(sizeof(float) * (size_t)batch);

    /* the reference: one process, whole batches */
    mt_model ref;
    if (mt_build(&ref, 7, 16)) return 1;
    dg_optim_config oc = dg_optim_defaults(DG_ADAM);
    oc.lr = 1e-2f;
    dg_optimizer *ro = dg_optimizer_new(ref.g, ref.loss, &oc);
    float *ref_loss = calloc((size_t)steps, sizeof(float));
    for (int s = 0; s < steps && ro; s++) {
        int rows = rows_of(s, steps, batch);
        mt_batch(s, rows, x, y);
        if (dg_feed(ref.x, x, (int64_t)rows * FEATURES) || dg_feed(ref.y, y, rows) ||
            dg_optimizer_step(ro)) {
            FAIL("reference step %d: %s", s, dg_graph_error(ref.g));
            break;
        }
        ref_loss[s] = dg_value(ref.loss);
    }

    /* data-parallel: ranks other than 0 start from other weights, which the broadcast
     * replaces */
    dg_mpi *dm = dg_mpi_new(MPI_COMM_WORLD, &cfg);
    mt_model m;
    if (!dm || mt_build(&m, 7 + 1000 * (uint64_t)rank, 16)) {
        FAIL("setup: %s", dg_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    dg_optimizer *opt = dg_mpi_optimizer_new(dm, m.g, m.loss, &oc);
    if (!opt) FAIL("mpi_optimizer_new: %s", dg_graph_error(m.g));
    if (opt && dg_mpi_broadcast(dm, m.g, 1) != DG_OK) FAIL("broadcast: %s", dg_graph_error(m.g));
    int first = 0;
    if (opt && load) {
        if (dg_mpi_checkpoint_load(dm, m.g, load, 1) != DG_OK)
            FAIL("checkpoint_load: %s", dg_graph_error(m.g));
        first = (int)dg_optimizer_steps(opt);
        if (rank == 0) printf("resumed from %s after %d steps on %d ranks\n", load, first, size);
    }
    int last = save && save_at >= 0 ? save_at : steps;
    double loss_err = 0;
    for (int s = first; s < last && opt && !failures; s++) {
        int rows = rows_of(s, steps, batch), lo, hi;
        mt_batch(s, rows, x, y);
        mt_shard(rows, rank, size, &lo, &hi);
        /* a rank without rows runs the step on one row with weight 0 */
        int mine = hi - lo, fed = mine > 0 ? mine : 1;
        if (mine == 0) lo = 0;
        if (dg_feed(m.x, x + (size_t)lo * FEATURES, (int64_t)fed * FEATURES) ||
            dg_feed(m.y, y + lo, fed) || dg_mpi_set_weight(dm, mine) ||
            dg_mpi_step(dm, opt) != DG_OK) {
            FAIL("step %d: %s", s, dg_graph_error(m.g));
            break;
        }
        double e = fabs((double)dg_mpi_loss(dm) - ref_loss[s]) / fabs((double)ref_loss[s]);
        loss_err = e > loss_err ? e : loss_err;
    }
    if (opt && save && !failures) {
        if (dg_mpi_checkpoint_save(dm, m.g, save, 1) != DG_OK)
            FAIL("checkpoint_save: %s", dg_graph_error(m.g));
        else if (rank == 0)
            printf("saved %s after %d steps on %d ranks\n", save, last, size);
    } else if (opt && !failures) {
        /* against the reference, tensor by tensor */
        double worst = 0;
        for (int i = 0; i < dg_graph_node_count(m.g); i++) {
            dg_node *p = dg_graph_node(m.g, i);
            if (dg_node_kind_of(p) != DG_PARAM) continue;
            dg_node *q = dg_graph_find(ref.g, dg_node_name(p));
            const float *a = dg_node_data(p), *b = dg_node_data(q);
            double diff = 0, scale = 0;
            for (int64_t k = 0; k < dg_node_numel(p); k++) {
                diff = fmax(diff, fabs((double)a[k] - b[k]));
                scale = fmax(scale, fabs((double)b[k]));
            }
            worst = fmax(worst, diff / scale);
        }
        if (!(worst <= tol))
            FAIL("parameters differ from one process by %.3g (tolerance %g)", worst, tol);
        if (!(loss_err <= tol)) FAIL("averaged losses differ from one process by %.3g", loss_err);
        /* bitwise the same on every rank */
        uint64_t h = mt_param_hash(m.g), *all = malloc(sizeof *all * (size_t)size);
        MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
        for (int r = 1; r < size; r++)
            if (all[r] != all[0]) FAIL("rank %d's parameters differ from rank 0's", r);
        dg_mpi_stats st;
        dg_mpi_stats_get(dm, &st);
        if (rank == 0) {
            printf("%d ranks, %d steps from step %d: max relative difference from one process: "
                   "parameters %.3g, loss %.3g; %d bucket(s), overlap %d\n",
                   size, last - first, first, worst, loss_err, st.buckets, st.overlap);
            if (print_hash) printf("hash %016llx\n", (unsigned long long)h);
        }
        if (st.steps != last - first) FAIL("stats count %lld steps", (long long)st.steps);
        free(all);
    }
    /* every rank's verdict, so that the exit status is the same everywhere */
    int bad = failures, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    dg_graph_free(m.g);
    dg_graph_free(ref.g);
    dg_mpi_free(dm);
    free(x), free(y), free(ref_loss);
    MPI_Finalize();
    if (rank == 0) printf("mpi_train: %s\n", any ? "FAILED" : "ok");
    return any ? 1 : 0;
}
