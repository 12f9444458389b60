/* --distributed for the examples: see ex_dist.h. Without MPI (DG_HAVE_MPI undefined) the
 * single-process versions remain. */
#include "ex_dist.h"
#include "ex_args.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef DG_HAVE_MPI
#include "dagrad/mpi.h"
#endif

int ex_dist_root(const ex_dist *d) { return !d || d->rank == 0; }

void ex_dist_shard(const ex_dist *d, int64_t rows, int64_t *lo, int64_t *hi) {
    *lo = d && d->on ? rows * d->rank / d->size : 0;
    *hi = d && d->on ? rows * (d->rank + 1) / d->size : rows;
}

double ex_dist_loss(const ex_dist *d, double local) {
#ifdef DG_HAVE_MPI
    if (d && d->on) return dg_mpi_loss(d->dm);
#endif
    (void)d;
    return local;
}

#ifdef DG_HAVE_MPI

int ex_dist_start(ex_dist *d, int on, const char *prog) {
    d->on = 0, d->rank = 0, d->size = 1, d->dm = NULL, d->prog = prog;
    if (!on) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "%s: --distributed: MPI_Init_thread failed\n", prog);
        return EX_EXIT_FAIL;
    }
    d->dm = dg_mpi_new(MPI_COMM_WORLD, NULL);
    if (!d->dm) {
        fprintf(stderr, "%s: --distributed: %s\n", prog, dg_last_error());
        MPI_Finalize();
        return EX_EXIT_FAIL;
    }
    d->on = 1;
    d->rank = dg_mpi_rank(d->dm);
    d->size = dg_mpi_size(d->dm);
    if (d->rank != 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "%s: rank %d: cannot silence standard output\n", prog, d->rank);
    }
    printf("distributed: %d processes (MPI ranks), each training on 1/%d of every batch\n", d->size,
           d->size);
    return 0;
}

void ex_dist_finish(ex_dist *d) {
    if (!d->on) return;
    dg_mpi_free(d->dm);
    d->dm = NULL;
    d->on = 0;
    MPI_Finalize();
}

int ex_dist_agree(const ex_dist *d, int rc, const char *what) {
    if (!d->on) return rc;
    char msg[256];
    snprintf(msg, sizeof msg, "could not %s", what);
    if (dg_mpi_agree(d->dm, rc ? DG_ERR_IO : DG_OK, msg) == DG_OK) return 0;
    if (!rc) fprintf(stderr, "%s: stopping: %s\n", d->prog, dg_last_error());
    return EX_EXIT_FAIL;
}

dg_optimizer *ex_dist_optimizer(ex_dist *d, dg_graph *g, dg_node *loss,
                                const dg_optim_config *cfg) {
    if (!d->on) return dg_optimizer_new(g, loss, cfg);
    dg_optimizer *opt = dg_mpi_optimizer_new(d->dm, g, loss, cfg);
    if (opt && dg_mpi_broadcast(d->dm, g, 1) != DG_OK) return NULL;
    return opt;
}

dg_status ex_dist_step(ex_dist *d, dg_graph *g, int n, dg_node *const *targets, int64_t mine) {
    if (!d->on) return dg_run_many(g, n, targets);
    dg_status s = dg_mpi_set_weight(d->dm, (double)mine);
    return s == DG_OK ? dg_mpi_run_step(d->dm, g, n, targets) : s;
}

int ex_dist_sum(const ex_dist *d, double *v, int n) {
    if (!d->on) return 0;
    if (dg_mpi_sum(d->dm, v, n) == DG_OK) return 0;
    fprintf(stderr, "%s: %s\n", d->prog, dg_last_error());
    return EX_EXIT_FAIL;
}

dg_status ex_dist_save(const ex_dist *d, dg_graph *g, const char *path, int with_state) {
    if (!d->on) return dg_checkpoint_save(g, path, with_state);
    return dg_mpi_checkpoint_save(d->dm, g, path, with_state);
}

dg_status ex_dist_load(const ex_dist *d, dg_graph *g, const char *path, int with_state) {
    if (!d->on) return dg_checkpoint_load(g, path, with_state);
    return dg_mpi_checkpoint_load(d->dm, g, path, with_state);
}

#else /* built without MPI */

int ex_dist_start(ex_dist *d, int on, const char *prog) {
    d->on = 0, d->rank = 0, d->size = 1, d->dm = NULL, d->prog = prog;
    if (!on) return 0;
    fprintf(stderr,
            "%s: --distributed needs dagrad built with MPI (apt-get install libopenmpi-dev "
            "openmpi-bin, then configure again)\n",
            prog);
    return EX_EXIT_USAGE;
}

void ex_dist_finish(ex_dist *d) { (void)d; }

int ex_dist_agree(const ex_dist *d, int rc, const char *what) {
    (void)d, (void)what;
    return rc;
}

dg_optimizer *ex_dist_optimizer(ex_dist *d, dg_graph *g, dg_node *loss,
                                const dg_optim_config *cfg) {
    (void)d;
    return dg_optimizer_new(g, loss, cfg);
}

dg_status ex_dist_step(ex_dist *d, dg_graph *g, int n, dg_node *const *targets, int64_t mine) {
    (void)d, (void)mine;
    return dg_run_many(g, n, targets);
}

int ex_dist_sum(const ex_dist *d, double *v, int n) {
    (void)d, (void)v, (void)n;
    return 0;
}

dg_status ex_dist_save(const ex_dist *d, dg_graph *g, const char *path, int with_state) {
    (void)d;
    return dg_checkpoint_save(g, path, with_state);
}

dg_status ex_dist_load(const ex_dist *d, dg_graph *g, const char *path, int with_state) {
    (void)d;
    return dg_checkpoint_load(g, path, with_state);
}

#endif
