/* The examples' data-parallel mode (--distributed): one process per MPI rank, each
 * feeding its own rows of every global batch, gradients averaged by dagrad's MPI layer
 * (dagrad/mpi.h), results printed by rank 0 only. Built with MPI when dagrad_mpi exists;
 * otherwise every function is the single-process one and --distributed is refused. */
#ifndef EX_DIST_H
#define EX_DIST_H

#include <stdint.h>

#include "dagrad.h"

typedef struct ex_dist {
    int on;         /* --distributed given (and MPI running) */
    int rank, size; /* 0 and 1 when not distributed */
    void *dm;       /* the dg_mpi handle */
    const char *prog;
} ex_dist;

/** Starts MPI when `on` (MPI_Init_thread) and makes the handle; on ranks other than 0
 *  standard output goes to /dev/null, so only rank 0 prints. Returns 0, or an exit code
 *  with a message on stderr (EX_EXIT_USAGE when built without MPI). */
int ex_dist_start(ex_dist *d, int on, const char *prog);
/** Ends MPI (after freeing the handle). */
void ex_dist_finish(ex_dist *d);
/** 1 on rank 0 (and when not distributed): the rank that writes files. */
int ex_dist_root(const ex_dist *d);
/** Collective: 0 on every rank if rc is 0 on every rank, else EX_EXIT_FAIL everywhere;
 *  ranks that did not fail themselves say which rank did and what it could not do. */
int ex_dist_agree(const ex_dist *d, int rc, const char *what);
/** This rank's rows [lo, hi) of a global batch of `rows` (all of them when not
 *  distributed). */
void ex_dist_shard(const ex_dist *d, int64_t rows, int64_t *lo, int64_t *hi);
/** The optimizer: dg_optimizer_new, or the MPI layer's (which refuses models that differ
 *  between ranks) followed by copying rank 0's parameters to every rank. */
dg_optimizer *ex_dist_optimizer(ex_dist *d, dg_graph *g, dg_node *loss, const dg_optim_config *cfg);
/** One training step over `targets` (which include the optimizer's step node) on this
 *  rank's rows [lo, hi) of the global batch (hi == lo if it fed a stand-in row, which then
 *  weighs 0). Every dropout layer of g draws the masks one process draws for those rows
 *  (dg_dropout_set_row_offset). A step that fails on one rank fails on all. */
dg_status ex_dist_step(ex_dist *d, dg_graph *g, int n, dg_node *const *targets, int64_t lo,
                       int64_t hi);
/** The step's loss over the global batch: `local` itself when not distributed. */
double ex_dist_loss(const ex_dist *d, double local);
/** Collective: v[0..n) summed over the ranks, in a fixed order. Returns 0 or EX_EXIT_FAIL. */
int ex_dist_sum(const ex_dist *d, double *v, int n);
/** Collective: the values of nodes[0..n) (state such as batch norm's running statistics,
 *  which every rank updates from its own rows) replaced on every rank by their average
 *  over the ranks, rank r's values weighted by its w (its rows in the latest step; a rank
 *  that fed a stand-in row gives 0). Added in a fixed order: bitwise the same on every
 *  rank. Nothing when not distributed. Returns 0 or EX_EXIT_FAIL (message on stderr). */
int ex_dist_average(const ex_dist *d, dg_node *const *nodes, int n, double w);
/** Collective: 1 on every rank if v[0..n) equal rank 0's values on every rank (NaN never
 *  does), 0 if they differ on some rank (1 when not distributed), -1 if the ranks could not
 *  compare. */
int ex_dist_same(const ex_dist *d, const double *v, int n);
/** Saves a checkpoint: rank 0 writes it, every rank gets the outcome. */
dg_status ex_dist_save(const ex_dist *d, dg_graph *g, const char *path, int with_state);
/** Loads a checkpoint on every rank; if any rank cannot, every rank gets an error naming it. */
dg_status ex_dist_load(const ex_dist *d, dg_graph *g, const char *path, int with_state);

#endif
