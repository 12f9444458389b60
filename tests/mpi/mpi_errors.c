/* mpi_errors: the MPI layer's failures end cleanly on every rank, with a message. Run with
 * 2 or more ranks. Cases: handles made before MPI_Init or from bad communicators; models
 * that differ on rank 1 (a shape, a name, a parameter count) refused before the first
 * step; a step that fails on rank 1 only (a bad label, a NaN input) fails on every rank
 * and changes no parameter, and the next step works; weights summing to 0; a checkpoint
 * that rank 1 cannot read; dg_mpi_agree and dg_mpi_sum. */
#include "mpi_test_util.h"

#include <stdlib.h>

static int rank = 0, size = 1, failures = 0, checks = 0;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "mpi_errors rank %d line %d: CHECK failed: %s: ", rank, __LINE__,      \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static int has(const char *text, const char *part) { return text && strstr(text, part) != NULL; }

/* Builds the model on every rank, rank 1's changed by `change`, and tries to make the
 * MPI optimizer: it must fail on every rank with a message containing `expect`. */
static void mismatch(dg_mpi *dm, int change, const char *expect) {
    mt_model m;
    if (rank == 1 && change == 1)
        mt_build(&m, 1, 17); /* fc2 is [32,17] */
    else
        mt_build(&m, 1, 16);
    if (rank == 1 && change == 2) dg_node_set_name(dg_graph_find(m.g, "fc3/b"), "head/b");
    if (rank == 1 && change == 3) {
        /* one more parameter the loss depends on */
        dg_node *extra = dg_param(m.g, "extra", dg_shape0());
        m.loss = dg_add(m.g, m.loss, dg_mul(m.g, extra, extra));
    }
    int nodes = dg_graph_node_count(m.g);
    dg_optim_config oc = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = dg_mpi_optimizer_new(dm, m.g, m.loss, &oc);
    CHECK(opt == NULL, "a different model on rank 1 (case %d) was accepted", change);
    CHECK(has(dg_graph_error(m.g), expect), "case %d: message '%s' lacks '%s'", change,
          dg_graph_error(m.g), expect);
    CHECK(dg_graph_node_count(m.g) == nodes, "case %d: the graph was not rolled back", change);
    if (rank == 0 && change == 1) printf("model mismatch: %s\n", dg_graph_error(m.g));
    /* the explicit check and the broadcast refuse it too */
    CHECK(dg_mpi_check_model(dm, m.g, 0) == DG_ERR_ARG, "case %d: check_model passed", change);
    CHECK(dg_mpi_broadcast(dm, m.g, 0) == DG_ERR_ARG, "case %d: broadcast passed", change);
    dg_graph_free(m.g);
}

/* One step of the MPI optimizer with rank 1's batch spoiled by `spoil`; every rank's step
 * must fail with a message containing its expected text, with parameters unchanged; then a
 * clean step succeeds everywhere. */
static void failed_step(dg_mpi *dm, int spoil, const char *expect0, const char *expect1) {
    mt_model m;
    mt_build(&m, 3, 16);
    dg_optim_config oc = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = dg_mpi_optimizer_new(dm, m.g, m.loss, &oc);
    CHECK(opt != NULL, "optimizer: %s", dg_graph_error(m.g));
    if (!opt) return;
    dg_mpi_broadcast(dm, m.g, 1);
    float x[8 * FEATURES], y[8];
    mt_batch(0, 8, x, y);
    if (rank == 1 && spoil == 1) y[3] = 99; /* a label outside [0, 5) */
    if (rank == 1 && spoil == 2) x[5] = NAN;
    dg_feed(m.x, x, 8 * FEATURES);
    dg_feed(m.y, y, 8);
    uint64_t before = mt_param_hash(m.g);
    dg_status s = dg_mpi_step(dm, opt);
    const char *e = dg_graph_error(m.g);
    CHECK(s != DG_OK, "spoil %d: the step succeeded", spoil);
    CHECK(has(e, rank == 1 ? expect1 : expect0), "spoil %d: message '%s' lacks '%s'", spoil, e,
          rank == 1 ? expect1 : expect0);
    if (rank <= 1) printf("rank %d, step failed on rank 1 (%d): %s\n", rank, spoil, e);
    CHECK(mt_param_hash(m.g) == before, "spoil %d: parameters changed", spoil);
    CHECK(dg_optimizer_steps(opt) == 0, "spoil %d: step count %lld", spoil,
          (long long)dg_optimizer_steps(opt));
    /* the next step works on every rank */
    mt_batch(0, 8, x, y);
    dg_feed(m.x, x, 8 * FEATURES);
    dg_feed(m.y, y, 8);
    s = dg_mpi_step(dm, opt);
    CHECK(s == DG_OK, "spoil %d: the next step failed: %s", spoil, dg_graph_error(m.g));
    CHECK(mt_param_hash(m.g) != before, "spoil %d: the next step changed nothing", spoil);
    /* weights that sum to 0 fail everywhere */
    dg_mpi_set_weight(dm, 0);
    s = dg_mpi_step(dm, opt);
    CHECK(s == DG_ERR_ARG && has(dg_graph_error(m.g), "weights sum to 0"), "zero weights: %s: %s",
          dg_status_name(s), dg_graph_error(m.g));
    dg_mpi_set_weight(dm, 1);
    CHECK(dg_mpi_set_weight(dm, -1) == DG_ERR_ARG, "a negative weight was accepted");
    dg_graph_free(m.g);
}

int main(int argc, char **argv) {
    /* before MPI_Init: an error, not a crash */
    dg_mpi *early = dg_mpi_new(MPI_COMM_WORLD, NULL);
    int early_ok = early == NULL && has(dg_last_error(), "not initialised");
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(early_ok, "dg_mpi_new before MPI_Init: %s", dg_last_error());
    CHECK(size >= 2, "run with at least 2 ranks (got %d)", size);

    /* bad communicators */
    CHECK(dg_mpi_new(MPI_COMM_NULL, NULL) == NULL && has(dg_last_error(), "MPI_COMM_NULL"),
          "MPI_COMM_NULL: %s", dg_last_error());
    MPI_Comm half, inter;
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
    MPI_Intercomm_create(half, 0, MPI_COMM_WORLD, rank % 2 ? 0 : 1, 7, &inter);
    CHECK(dg_mpi_new(inter, NULL) == NULL && has(dg_last_error(), "intercommunicator"),
          "intercommunicator: %s", dg_last_error());
    MPI_Comm_free(&inter);
    MPI_Comm_free(&half); /* leaves MPI_COMM_NULL in `half` */
    CHECK(half == MPI_COMM_NULL && dg_mpi_new(half, NULL) == NULL, "a freed communicator: %s",
          dg_last_error());
    dg_mpi_config bad = dg_mpi_defaults();
    bad.overlap = 5;
    CHECK(dg_mpi_new(MPI_COMM_WORLD, &bad) == NULL && has(dg_last_error(), "overlap"),
          "overlap 5: %s", dg_last_error());
    /* the world communicator's error handler is the caller's again (fatal by default) */
    MPI_Errhandler eh;
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &eh);
    CHECK(eh == MPI_ERRORS_ARE_FATAL, "MPI_COMM_WORLD's error handler was changed");
    MPI_Errhandler_free(&eh);

    dg_mpi *dm = dg_mpi_new(MPI_COMM_WORLD, NULL);
    CHECK(dm != NULL && dg_mpi_size(dm) == size && dg_mpi_rank(dm) == rank, "dg_mpi_new: %s",
          dg_last_error());
    if (!dm) MPI_Abort(MPI_COMM_WORLD, 1);

    mismatch(dm, 1,
             "rank 1's model differs from rank 0's: parameter 2 'fc2/W' is [32,17] on "
             "rank 1 but [32,16] on rank 0");
    mismatch(dm, 2, "tensor 5 is parameter 'head/b' on rank 1 but parameter 'fc3/b' on rank 0");
    mismatch(dm, 3,
             "rank 1 has 7 tensors, rank 0 has 6; the first one without a match is "
             "'extra' on rank 1");

    failed_step(dm, 1, "1 of", "label");
    failed_step(dm, 2, "loss averaged over the ranks is nan",
                "loss averaged over the ranks is nan");

    /* a checkpoint that only rank 0 can read */
    mt_model m;
    mt_build(&m, 5, 16);
    CHECK(dg_mpi_checkpoint_save(dm, m.g, "mpi_errors.ckpt", 0) == DG_OK, "save: %s",
          dg_graph_error(m.g));
    dg_status s =
        dg_mpi_checkpoint_load(dm, m.g, rank == 1 ? "no/such/file.ckpt" : "mpi_errors.ckpt", 0);
    CHECK(s == DG_ERR_IO && has(dg_graph_error(m.g), "mpi: rank 1 of") &&
              has(dg_graph_error(m.g), "no/such/file.ckpt"),
          "load missing on rank 1: %s: %s", dg_status_name(s), dg_graph_error(m.g));
    if (rank == 0) printf("checkpoint missing on rank 1: %s\n", dg_graph_error(m.g));
    /* saving into a directory that does not exist: rank 0's failure, on every rank */
    s = dg_mpi_checkpoint_save(dm, m.g, "no/such/dir/x.ckpt", 0);
    CHECK(s == DG_ERR_IO && has(dg_graph_error(m.g), "mpi: rank 0 of"), "save: %s",
          dg_graph_error(m.g));
    dg_graph_free(m.g);
    if (rank == 0) remove("mpi_errors.ckpt");

    /* agreement and sums */
    s = dg_mpi_agree(dm, rank == 1 ? DG_ERR_IO : DG_OK, "cannot read shard 1");
    CHECK(s == DG_ERR_IO && has(dg_last_error(), "mpi: rank 1 of") &&
              has(dg_last_error(), "cannot read shard 1"),
          "agree: %s", dg_last_error());
    CHECK(dg_mpi_agree(dm, DG_OK, NULL) == DG_OK, "agree on success failed");
    double v[2] = {rank + 0.5, 1.0};
    CHECK(dg_mpi_sum(dm, v, 2) == DG_OK && v[0] == size * (size - 1) / 2.0 + 0.5 * size &&
              v[1] == size,
          "sum: %g %g", v[0], v[1]);
    CHECK(dg_mpi_sum(dm, NULL, 2) == DG_ERR_ARG, "sum of NULL accepted");

    dg_mpi_free(dm);
    int bad_count = failures, any = 0;
    MPI_Allreduce(&bad_count, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    if (rank == 0) printf("mpi_errors: %d checks per rank, %d failed on all ranks\n", checks, any);
    return any ? 1 : 0;
}
