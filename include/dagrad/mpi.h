/** \file
 * dagrad's MPI layer: data-parallel training across processes and machines. Built (as
 * the library dagrad_mpi, CMake target dagrad::mpi) only when CMake finds MPI; not
 * included by dagrad.h. See docs/DISTRIBUTED.md.
 *
 * Every rank builds the same model and feeds it its own part of each global batch. A
 * dg_mpi made from a communicator then
 *   - checks that the ranks' models agree (parameter names, shapes and count) and copies
 *     rank 0's parameters and optimizer state to the others (dg_mpi_broadcast);
 *   - averages the gradients across ranks inside the training step:
 *     dg_mpi_optimizer_new builds the optimizer with a gradients hook
 *     (dg_optimizer_new_ex) that puts reduction nodes between backward and the updates,
 *     so a step is still one dg_optimizer_step (or dg_mpi_step, which also keeps every
 *     rank's step failing together when one rank's fails).
 *
 * The reduction. Gradients are packed into buckets (at least dg_mpi_config.bucket_bytes
 * each, in the order backward produces them); a bucket's reduction starts as soon as its
 * gradients exist, while backward goes on (on a communication thread, when MPI provides
 * MPI_THREAD_MULTIPLE), and the updates wait for all of them. Each bucket is summed by a
 * ring with fixed chunking: chunk c of N is added up in the fixed rank order c, c+1, ...,
 * c+N-1 (mod N) and then passed around unchanged, so every rank holds bitwise the same
 * sums, and a run is bitwise reproducible for a given number of processes whatever the
 * timing, the thread count or the MPI library's own algorithms. The average is weighted:
 * rank r contributes w_r g_r and the result is sum_r w_r g_r / sum_r w_r (w_r = 1 unless
 * set with dg_mpi_set_weight), which with w_r = rows of rank r is the gradient of the
 * mean loss over the global batch.
 *
 * Errors. Nothing aborts: calls return a status and record a message (dg_last_error();
 * calls on a graph also set the graph's error). Collective calls (those marked so) must be
 * made by every rank of the communicator in the same order; they return the same status
 * on every rank, and when one rank fails the others' messages name it. MPI errors on the
 * layer's own communicator are returned, not fatal (it carries MPI_ERRORS_RETURN).
 */
#ifndef DAGRAD_MPI_H
#define DAGRAD_MPI_H

#include <mpi.h>

#include "core.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A handle on a communicator for data-parallel training (opaque). */
typedef struct dg_mpi dg_mpi;

/** How gradients are reduced; start from dg_mpi_defaults(). */
typedef struct dg_mpi_config {
    /** Gradients are fused into buckets of at least this many bytes (in the order backward
     *  produces them; the last bucket takes what is left), one reduction each: fewer,
     *  larger messages amortise latency, smaller ones start earlier. 0: one bucket per
     *  gradient. Default 512 KiB (W2's two last layers make the first bucket, its first
     *  layer the second). */
    size_t bucket_bytes;
    /** 1: reduce buckets on a communication thread while backward goes on; 0: reduce each
     *  bucket on the calling thread when its gradients are ready; -1 (default): 1 when MPI
     *  provides MPI_THREAD_MULTIPLE and there is more than one rank. Results are bitwise
     *  the same either way. */
    int overlap;
} dg_mpi_config;

/** The defaults: 512 KiB buckets, overlap when MPI_THREAD_MULTIPLE is provided. */
dg_mpi_config dg_mpi_defaults(void);

/** Makes a handle on `comm` (collective over comm: it duplicates it, so the layer's
 *  messages never mix with the caller's). MPI must be initialised and not finalised;
 *  MPI_COMM_NULL, an intercommunicator or an invalid handle is DG_ERR_ARG, never an abort.
 *  `cfg` NULL means dg_mpi_defaults(). Returns NULL on error (message in dg_last_error()).
 *  Free with dg_mpi_free; optimizers built with it keep what they need until their graph
 *  is freed, so the order of the two frees does not matter (both before MPI_Finalize). */
dg_mpi *dg_mpi_new(MPI_Comm comm, const dg_mpi_config *cfg);
/** Releases the caller's handle (collective: frees the duplicated communicator when no
 *  optimizer uses it any more). NULL is a no-op. */
void dg_mpi_free(dg_mpi *dm);
/** This process's rank in the communicator; -1 for NULL. */
int dg_mpi_rank(const dg_mpi *dm);
/** The number of ranks; 0 for NULL. */
int dg_mpi_size(const dg_mpi *dm);

/** Collective: checks that every rank's graph has the same parameters (and, with
 *  with_state, the same state nodes) in the same order, with the same names and shapes.
 *  On a difference every rank gets DG_ERR_ARG and a message naming the first one, e.g.
 *  "mpi: rank 1's model differs from rank 0's: parameter 3 'hidden2/W' is [50,30] on
 *  rank 1 but [50,20] on rank 0". The graph's error is set too. */
dg_status dg_mpi_check_model(dg_mpi *dm, dg_graph *g, int with_state);
/** Collective: dg_mpi_check_model, then copies rank 0's parameter values (and state:
 *  optimizer moments and step counts, when with_state) to every other rank, so all ranks
 *  start from the same point. */
dg_status dg_mpi_broadcast(dg_mpi *dm, dg_graph *g, int with_state);

/** Collective: dg_optimizer_new_ex whose gradients hook averages every gradient across
 *  the ranks (see the file comment) before clipping and the update. First checks, like
 *  dg_mpi_check_model, that the ranks train the same parameters, so a model that differs
 *  is refused before the first step. Returns NULL on error on every rank (graph error
 *  set; the graph is left as it was). */
dg_optimizer *dg_mpi_optimizer_new(dg_mpi *dm, dg_graph *g, dg_node *loss,
                                   const dg_optim_config *cfg);
/** The weight of this rank's gradients (and loss) in the following steps' averages; 1 by
 *  default. With a rank's number of rows as its weight, the average is the gradient of the
 *  mean loss over the global batch even when ranks hold different numbers of rows (a last
 *  partial batch). A rank with no rows in a step still runs it, fed any one row, with
 *  weight 0. DG_ERR_ARG if w is negative or not finite; a step whose weights sum to 0
 *  fails on every rank. */
dg_status dg_mpi_set_weight(dg_mpi *dm, double w);
/** The latest step's loss averaged over the ranks with their weights (the same value on
 *  every rank); NaN before the first step or for NULL. */
float dg_mpi_loss(const dg_mpi *dm);

/** Collective: dg_optimizer_step for an optimizer built by dg_mpi_optimizer_new. If this
 *  rank's step fails before it has taken part in every reduction of the step (a bad label
 *  in its part of the batch), it still takes part, marked as failed, so every other rank's
 *  step fails too ("mpi: rank 1 failed this step; no parameter was updated") instead of
 *  waiting for it. No rank updates its parameters in a step that fails on any rank. */
dg_status dg_mpi_step(dg_mpi *dm, dg_optimizer *opt);
/** Collective: dg_run_many of targets that include an optimizer step built by
 *  dg_mpi_optimizer_new (with other targets such as logits), with dg_mpi_step's handling
 *  of a failure on one rank. */
dg_status dg_mpi_run_step(dg_mpi *dm, dg_graph *g, int n, dg_node *const *targets);

/** Collective: replaces values[0..n) on every rank by their sums over the ranks, added in
 *  rank order in double (the same on every rank, bitwise reproducible): for losses,
 *  counts of correct answers and other metrics. */
dg_status dg_mpi_sum(dg_mpi *dm, double *values, int n);
/** Collective: agreement on a local outcome. Returns DG_OK on every rank if `local` is
 *  DG_OK on every rank; otherwise, on every rank, the status of the lowest failing rank
 *  with its `message` (this rank's text for a failure, e.g. dg_last_error(); may be NULL)
 *  recorded as "mpi: rank R: message" (dg_last_error()). For stopping every rank cleanly
 *  when one cannot read its data. */
dg_status dg_mpi_agree(dg_mpi *dm, dg_status local, const char *message);

/** Collective: rank 0 writes the checkpoint (dg_checkpoint_save: atomic), the others
 *  write nothing; every rank returns rank 0's status and message. */
dg_status dg_mpi_checkpoint_save(dg_mpi *dm, dg_graph *g, const char *path, int with_state);
/** Collective: every rank loads the checkpoint (dg_checkpoint_load), which must be
 *  readable from each of them (a shared or copied file). If any rank fails, every rank
 *  returns an error naming it. A checkpoint saved by any number of ranks loads on any
 *  number of ranks. */
dg_status dg_mpi_checkpoint_load(dg_mpi *dm, dg_graph *g, const char *path, int with_state);

/** Counters of the gradient reduction, summed over every step so far. */
typedef struct dg_mpi_stats {
    int64_t steps;          /**< steps whose reductions completed */
    int buckets;            /**< buckets per step (of the most recent optimizer) */
    int overlap;            /**< 1 if buckets are reduced on a communication thread */
    int64_t bytes;          /**< bytes of gradients reduced per step (of that optimizer) */
    double reduce_seconds;  /**< time spent reducing buckets (packing, ring, on any thread) */
    double waiting_seconds; /**< time the step spent waiting for reductions still going on
                                 after backward had finished (the communication not hidden) */
    double hidden_seconds;  /**< time buckets spent in their ring on the communication
                                 thread before the step began waiting for them: communication
                                 that ran beside backward (0 without the thread) */
} dg_mpi_stats;
/** Fills *out with the handle's counters; dg_mpi_stats_reset zeroes the timings. */
dg_status dg_mpi_stats_get(const dg_mpi *dm, dg_mpi_stats *out);
/** Zeroes the step count and timings of dg_mpi_stats_get. */
void dg_mpi_stats_reset(dg_mpi *dm);

#ifdef __cplusplus
}
#endif
#endif
