/* Shared between the MPI layer's files (src/mpi): the handle, the per-optimizer reducer,
 * and the collective helpers. Uses the public headers only (dagrad.h, dagrad/mpi.h). */
#ifndef DG_MPI_INTERNAL_H
#define DG_MPI_INTERNAL_H

#include "dagrad.h"
#include "dagrad/mpi.h"

#include <pthread.h>

typedef struct dg_reducer dg_reducer;

struct dg_mpi {
    MPI_Comm comm; /* a duplicate of the caller's, errors returned */
    int rank, size;
    int thread_multiple; /* MPI provides MPI_THREAD_MULTIPLE */
    dg_mpi_config cfg;
    int refs;              /* the caller's handle and every reducer built with it */
    double weight;         /* this rank's weight in the averages */
    float loss;            /* the latest step's averaged loss */
    dg_reducer *reducers;  /* live reducers, for dg_mpi_run_step */
    dg_reducer *pending;   /* the reducer the hook of the optimizer being built made */
    dg_node *pending_loss; /* the loss of the optimizer being built */
    pthread_mutex_t lock;  /* guards stats (the communication threads add to them) */
    dg_mpi_stats stats;
};

/* The one reference a handle or reducer holds; frees the handle when it was the last. */
void dg__mpi_unref(dg_mpi *dm);
/* Monotonic seconds. */
double dg__mpi_now(void);
/* Records "mpi: <what> failed: <MPI's error string>" (on g too when non-NULL) and returns
 * DG_ERR_IO. */
dg_status dg__mpi_fail(dg_graph *g, const char *what, int mpi_err);
/* dg_mpi_agree that also sets g's error (g may be NULL). */
dg_status dg__mpi_agree(dg_mpi *dm, dg_graph *g, dg_status local, const char *message);

/* A list of tensors to compare across ranks: names and shapes. */
typedef struct dg_mpi_entry {
    const char *kind; /* "parameter" or "state" */
    const char *name;
    dg_shape shape;
} dg_mpi_entry;
/* Collective: every rank's entries equal rank 0's; else DG_ERR_ARG on every rank with the
 * first difference named ("mpi: rank 1's model differs from rank 0's: ..."). */
dg_status dg__mpi_compare(dg_mpi *dm, dg_graph *g, const dg_mpi_entry *e, int n);
/* The name a node goes by in comparisons and messages: its own, or "param<id>". */
const char *dg__mpi_node_name(const dg_node *x, char *buf, size_t size);

/* reduce.c: the gradients hook of dg_mpi_optimizer_new (ctx is the dg_mpi). */
dg_status dg__mpi_gradients_hook(void *ctx, dg_graph *g, int n, dg_node *const *params,
                                 dg_node **grads);
/* reduce.c: after dg_optimizer_new_ex returned `opt` (NULL on failure), adopts or retires
 * the reducer the hook made. */
void dg__mpi_reducer_settle(dg_mpi *dm, dg_optimizer *opt);
/* reduce.c: before a run of these targets: completes an earlier step left half done and
 * notes where each reducer whose step node is among the targets stands. */
void dg__mpi_begin_run(dg_mpi *dm, int n, dg_node *const *targets);
/* reduce.c: after a failed run of these targets: for each such reducer whose step did not
 * reach its end, takes part in the reductions this rank had not started (marked as
 * failed), so the other ranks' steps end too. */
void dg__mpi_finish_failed(dg_mpi *dm, int n, dg_node *const *targets);

#endif
