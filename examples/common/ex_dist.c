/* --distributed for the examples: see ex_dist.h. Without MPI (DG_HAVE_MPI undefined) the
 * single-process versions remain. */
#include "ex_dist.h"
#include "ex_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

dg_status ex_dist_step(ex_dist *d, dg_graph *g, int n, dg_node *const *targets, int64_t lo,
                       int64_t hi) {
    if (!d->on) return dg_run_many(g, n, targets);
    /* dropout masks: this rank's rows of the mask one process would draw */
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *y = dg_graph_node(g, i);
        if (dg_dropout_mask(y) && dg_dropout_set_row_offset(y, lo) != DG_OK)
            return dg_graph_status(g);
    }
    dg_status s = dg_mpi_set_weight(d->dm, (double)(hi - lo));
    return s == DG_OK ? dg_mpi_run_step(d->dm, g, n, targets) : s;
}

int ex_dist_sum(const ex_dist *d, double *v, int n) {
    if (!d->on) return 0;
    if (dg_mpi_sum(d->dm, v, n) == DG_OK) return 0;
    fprintf(stderr, "%s: %s\n", d->prog, dg_last_error());
    return EX_EXIT_FAIL;
}

int ex_dist_average(const ex_dist *d, dg_node *const *nodes, int n, double w) {
    if (!d->on || n <= 0) return 0;
    /* w x values of every node, then w: one sum over the ranks */
    int64_t total = 1;
    for (int i = 0; i < n; i++) total += dg_node_numel(nodes[i]);
    double *v = malloc(sizeof(double) * (size_t)total);
    float *f = malloc(sizeof(float) * (size_t)total);
    int rc = v && f ? 0 : EX_EXIT_FAIL;
    if (rc) fprintf(stderr, "%s: out of memory averaging state over the ranks\n", d->prog);
    if (ex_dist_agree(d, rc, "allocate memory to average state")) {
        free(v), free(f);
        return EX_EXIT_FAIL;
    }
    int64_t at = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t k = dg_node_numel(nodes[i]);
        if (dg_read(nodes[i], f, k) != DG_OK) {
            fprintf(stderr, "%s: reading '%s': %s\n", d->prog, dg_node_name(nodes[i]),
                    dg_last_error());
            rc = EX_EXIT_FAIL;
            break;
        }
        for (int64_t j = 0; j < k; j++) v[at + j] = w * (double)f[j];
        at += k;
    }
    /* every rank takes part in the sum even after a local failure, then all agree */
    if (rc) memset(v, 0, sizeof(double) * (size_t)total);
    v[total - 1] = w;
    if (ex_dist_sum(d, v, (int)total) != 0) rc = EX_EXIT_FAIL;
    if (ex_dist_agree(d, rc, "read the state to average")) rc = EX_EXIT_FAIL;
    if (!rc && !(v[total - 1] > 0)) {
        fprintf(stderr, "%s: averaging state over the ranks: the weights sum to %g\n", d->prog,
                v[total - 1]);
        rc = EX_EXIT_FAIL;
    }
    at = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t k = dg_node_numel(nodes[i]);
        for (int64_t j = 0; j < k; j++) f[j] = (float)(v[at + j] / v[total - 1]);
        if (dg_feed(nodes[i], f, k) != DG_OK) {
            fprintf(stderr, "%s: writing '%s': %s\n", d->prog, dg_node_name(nodes[i]),
                    dg_last_error());
            rc = EX_EXIT_FAIL;
        }
        at += k;
    }
    free(v), free(f);
    return rc;
}

int ex_dist_same(const ex_dist *d, const double *v, int n) {
    if (!d->on || n <= 0) return 1;
    /* rank 0's values, exactly: it adds them to the others' zeros */
    double *r0 = calloc((size_t)n + 1, sizeof(double));
    int rc = r0 ? 0 : EX_EXIT_FAIL;
    if (r0 && d->rank == 0) memcpy(r0, v, sizeof(double) * (size_t)n);
    if (ex_dist_agree(d, rc, "allocate memory") || ex_dist_sum(d, r0, n)) {
        free(r0);
        return -1;
    }
    double differ = 0; /* by value: rank 0's -0 arrives as +0 */
    for (int i = 0; i < n; i++) differ += !(r0[i] == v[i]);
    free(r0);
    if (ex_dist_sum(d, &differ, 1)) return -1;
    return differ == 0;
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

dg_status ex_dist_step(ex_dist *d, dg_graph *g, int n, dg_node *const *targets, int64_t lo,
                       int64_t hi) {
    (void)d, (void)lo, (void)hi;
    return dg_run_many(g, n, targets);
}

int ex_dist_sum(const ex_dist *d, double *v, int n) {
    (void)d, (void)v, (void)n;
    return 0;
}

int ex_dist_average(const ex_dist *d, dg_node *const *nodes, int n, double w) {
    (void)d, (void)nodes, (void)n, (void)w;
    return 0;
}

int ex_dist_same(const ex_dist *d, const double *v, int n) {
    (void)d, (void)v, (void)n;
    return 1;
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
