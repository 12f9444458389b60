/* Averaging gradients across ranks inside a training step, as graph ops.
 *
 * dg_mpi_optimizer_new passes dg__mpi_gradients_hook to dg_optimizer_new_ex. The hook
 * checks that every rank trains the same parameters, cuts the gradients into buckets (in
 * the order backward produces them, which is the order of the gradient nodes' ids) and
 * builds, in scope "mpi":
 *   - per bucket k, "mpi_reduce_start" (inputs: the bucket's gradients and the loss): packs
 *     w g for each gradient and three slots [failed = 0, w, w loss] into the bucket's
 *     buffer and hands the bucket over for reduction. It is DG_OP_EAGER, so a plan runs it
 *     as soon as its gradients exist and the reduction proceeds while backward goes on;
 *   - one "mpi_reduce_wait" (inputs: every start): waits until every bucket is reduced,
 *     refuses the step on every rank if any rank failed it, if the weights sum to 0 or if
 *     the averaged loss is not finite; its value is the averaged loss;
 *   - per parameter, "mpi_average" (input: the wait): its slice of the summed bucket
 *     divided by the summed weight. These replace the gradients, so every update runs
 *     after all reductions have succeeded, whatever the plan order.
 * Buckets are reduced one after another in index order on every rank, either on the
 * calling thread inside the start that completes a run of started buckets, or on a
 * communication thread (overlap; needs MPI_THREAD_MULTIPLE). A bucket's sum is a ring
 * over its own duplicate communicator with fixed chunking: N chunks, chunk c summed in
 * rank order c, c+1, ..., c+N-1 (mod N) by N-1 send-receive steps, then passed around
 * unchanged in N-1 more, so every rank ends with bitwise the same values and a run is
 * reproducible for a given N. Kernels allocate nothing: buffers are made by the hook.
 *
 * A step that failed on this rank before the wait (dg_mpi_run_step sees it) is completed
 * here: the buckets this rank had not started are sent marked failed (zeros, failed = 1),
 * so the other ranks' waits end and refuse the step instead of waiting forever. */
#include "mpi_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

enum { SLOT_FAILED, SLOT_WEIGHT, SLOT_LOSS, N_SLOTS };
enum { IDLE, STARTED, DONE };
enum { TAG = 14 };

typedef struct bucket {
    float *buf;                  /* n gradient values (w g), then N_SLOTS slots */
    int64_t n;                   /* gradient values */
    int state;                   /* IDLE -> STARTED (packed) -> DONE (reduced) -> IDLE (waited) */
    dg_status status;            /* of the reduction (DG_OK, or an MPI failure) */
    double ring_start, ring_end; /* when its ring ran (dg__mpi_now), for the hidden time */
    char msg[MPI_MAX_ERROR_STRING + 96];
} bucket;

struct dg_reducer {
    dg_mpi *dm;
    MPI_Comm comm;
    int rank, size, overlap;
    int n_buckets;
    bucket *b;
    float *recv; /* the largest chunk */
    int next;    /* the bucket to reduce next */
    int in_step; /* a start ran and the wait has not */
    int64_t waits_done, waits_at_run, bytes;
    dg_optimizer *opt; /* set once the optimizer is built; NULL if its construction failed */
    pthread_t thread;
    int has_thread, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dg_reducer *next_live;
};

/* ---- the ring ---- */

static int64_t chunk_lo(int64_t len, int c, int n) { return (int64_t)c * len / n; }

static dg_status ring_fail(bucket *b, const char *what, int err) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "?");
    snprintf(b->msg, sizeof b->msg, "mpi: %s failed while averaging gradients: %s", what, text);
    return b->status = DG_ERR_IO;
}

/* Sums the bucket's buffer over the ranks, in place (see the file comment). */
static dg_status ring_sum(dg_reducer *r, bucket *b) {
    const int n = r->size, me = r->rank;
    if (n == 1) return DG_OK;
    const int right = (me + 1) % n, left = (me + n - 1) % n;
    const int64_t len = b->n + N_SLOTS;
    float *buf = b->buf;
    /* reduce-scatter: at step s this rank receives chunk me-s-1, holding ranks
     * me-s-1 .. me-1's sum, and adds its own; after n-1 steps it holds chunk me+1 summed */
    for (int s = 0; s < n - 1; s++) {
        int sc = (me - s + 2 * n) % n, rc = (me - s - 1 + 2 * n) % n;
        int64_t slo = chunk_lo(len, sc, n), rlo = chunk_lo(len, rc, n);
        int scount = (int)(chunk_lo(len, sc + 1, n) - slo);
        int rcount = (int)(chunk_lo(len, rc + 1, n) - rlo);
        int e = MPI_Sendrecv(buf + slo, scount, MPI_FLOAT, right, TAG, r->recv, rcount, MPI_FLOAT,
                             left, TAG, r->comm, MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS) return ring_fail(b, "MPI_Sendrecv", e);
        float *restrict dst = buf + rlo;
        const float *restrict src = r->recv;
        for (int i = 0; i < rcount; i++) dst[i] = dst[i] + src[i];
    }
    /* all-gather: the summed chunks travel around unchanged */
    for (int s = 0; s < n - 1; s++) {
        int sc = (me + 1 - s + 2 * n) % n, rc = (me - s + 2 * n) % n;
        int64_t slo = chunk_lo(len, sc, n), rlo = chunk_lo(len, rc, n);
        int scount = (int)(chunk_lo(len, sc + 1, n) - slo);
        int rcount = (int)(chunk_lo(len, rc + 1, n) - rlo);
        int e = MPI_Sendrecv(buf + slo, scount, MPI_FLOAT, right, TAG, buf + rlo, rcount, MPI_FLOAT,
                             left, TAG, r->comm, MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS) return ring_fail(b, "MPI_Sendrecv", e);
    }
    return DG_OK;
}

static void add_seconds(dg_mpi *dm, double *field, double s) {
    pthread_mutex_lock(&dm->lock);
    *field += s;
    pthread_mutex_unlock(&dm->lock);
}

static void reduce_bucket(dg_reducer *r, bucket *b) {
    b->ring_start = dg__mpi_now();
    b->status = DG_OK;
    b->msg[0] = 0;
    ring_sum(r, b);
    b->ring_end = dg__mpi_now();
    add_seconds(r->dm, &r->dm->stats.reduce_seconds, b->ring_end - b->ring_start);
}

/* The communication thread: reduces started buckets in index order. Flushes subnormals
 * like the threads of a run, so the sums are those the calling thread would make. */
static void *comm_main(void *arg) {
    dg_reducer *r = arg;
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ | DAZ */
#endif
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && r->b[r->next].state != STARTED) pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop) break;
        bucket *b = &r->b[r->next];
        pthread_mutex_unlock(&r->mu);
        reduce_bucket(r, b);
        pthread_mutex_lock(&r->mu);
        b->state = DONE;
        r->next = (r->next + 1) % r->n_buckets;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Hands bucket k over: to the thread, or reduces every started bucket from `next` on. */
static void mark_started(dg_reducer *r, int k) {
    if (r->has_thread) {
        pthread_mutex_lock(&r->mu);
        r->b[k].state = STARTED;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    r->b[k].state = STARTED;
    while (r->b[r->next].state == STARTED) {
        reduce_bucket(r, &r->b[r->next]);
        r->b[r->next].state = DONE;
        r->next = (r->next + 1) % r->n_buckets;
    }
}

static int bucket_state(dg_reducer *r, int k) {
    if (!r->has_thread) return r->b[k].state;
    pthread_mutex_lock(&r->mu);
    int s = r->b[k].state;
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* Blocks until every bucket is reduced. */
static void wait_all(dg_reducer *r) {
    if (!r->has_thread) return; /* every start reduced what it could: all are DONE */
    pthread_mutex_lock(&r->mu);
    for (int k = 0; k < r->n_buckets; k++)
        while (r->b[k].state != DONE) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

/* Ends the step: every bucket back to IDLE, then the checks every rank makes alike.
 * `wait_began` is when the wait started (0 when completing a failed step): ring time
 * before it ran beside the rest of the step. */
static dg_status finish_step(dg_reducer *r, dg_graph *g, float *out, double wait_began,
                             double waited) {
    double hidden = 0; /* only a communication thread runs beside the step */
    for (int k = 0; r->has_thread && k < r->n_buckets; k++) {
        double end = r->b[k].ring_end < wait_began ? r->b[k].ring_end : wait_began;
        if (end > r->b[k].ring_start) hidden += end - r->b[k].ring_start;
    }
    if (r->has_thread) pthread_mutex_lock(&r->mu);
    for (int k = 0; k < r->n_buckets; k++) r->b[k].state = IDLE;
    if (r->has_thread) pthread_mutex_unlock(&r->mu);
    r->in_step = 0;
    r->waits_done++;
    for (int k = 0; k < r->n_buckets; k++)
        if (r->b[k].status != DG_OK) return dg_set_error(g, r->b[k].status, "%s", r->b[k].msg);
    float failed = 0;
    for (int k = 0; k < r->n_buckets; k++) {
        float f = r->b[k].buf[r->b[k].n + SLOT_FAILED];
        failed = f > failed ? f : failed;
    }
    if (failed > 0)
        return dg_set_error(g, DG_ERR_STATE,
                            "mpi: %.0f of %d ranks failed this step (see their messages); no "
                            "parameter was updated",
                            (double)failed, r->size);
    const bucket *b0 = &r->b[0];
    float w = b0->buf[b0->n + SLOT_WEIGHT], loss = b0->buf[b0->n + SLOT_LOSS] / w;
    if (!(w > 0))
        return dg_set_error(g, DG_ERR_ARG,
                            "mpi: the ranks' weights sum to %g in this step (dg_mpi_set_weight); "
                            "at least one must be positive",
                            (double)w);
    r->dm->loss = loss;
    if (!isfinite(loss))
        return dg_set_error(g, DG_ERR_NONFINITE,
                            "mpi: the loss averaged over the ranks is %g, so no parameter was "
                            "updated (training diverged on at least one rank)",
                            (double)loss);
    if (out) out[0] = loss;
    pthread_mutex_lock(&r->dm->lock);
    r->dm->stats.steps++;
    r->dm->stats.waiting_seconds += waited;
    r->dm->stats.hidden_seconds += hidden;
    pthread_mutex_unlock(&r->dm->lock);
    return DG_OK;
}

/* ---- the ops ---- */

typedef struct reduce_attrs {
    dg_reducer *r;
    int bucket;
    int64_t offset; /* mpi_average: where the parameter's gradient starts in the bucket */
    dg_shape shape; /* mpi_average: the parameter's shape */
} reduce_attrs;

static dg_status scalar_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                             size_t size) {
    (void)in, (void)n, (void)a, (void)msg, (void)size;
    *out = dg_shape0();
    return DG_OK;
}

static dg_status average_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                              size_t size) {
    (void)in, (void)n, (void)msg, (void)size;
    *out = ((const reduce_attrs *)a)->shape;
    return DG_OK;
}

typedef struct scale_job {
    const float *src;
    float *dst;
    float w;
    int divide;
} scale_job;

static void scale_range(void *ctx, int64_t lo, int64_t hi) {
    const scale_job *j = ctx;
    const float *restrict s = j->src;
    float *restrict d = j->dst;
    const float w = j->w;
    if (j->divide)
        for (int64_t i = lo; i < hi; i++) d[i] = s[i] / w;
    else
        for (int64_t i = lo; i < hi; i++) d[i] = w * s[i];
}

static dg_status start_forward(dg_node *self) {
    const reduce_attrs *a = dg_node_attrs(self);
    dg_reducer *r = a->r;
    bucket *b = &r->b[a->bucket];
    dg_graph *g = dg_node_graph(self);
    if (bucket_state(r, a->bucket) != IDLE)
        return dg_set_error(g, DG_ERR_STATE,
                            "mpi: gradient bucket %d is still held by an earlier step that failed "
                            "on this rank (run steps with dg_mpi_step or dg_mpi_run_step, which "
                            "complete a failed step on every rank)",
                            a->bucket);
    double t0 = dg__mpi_now();
    r->in_step = 1;
    const float w = (float)r->dm->weight;
    int cnt = dg_node_input_count(self) - 1;
    int64_t at = 0;
    for (int i = 0; i < cnt; i++) {
        dg_node *x = dg_node_input(self, i);
        scale_job job = {dg_node_data(x), b->buf + at, w, 0};
        dg_parallel_for(dg_node_numel(x), 1, scale_range, &job);
        at += dg_node_numel(x);
    }
    float loss = dg_node_data(dg_node_input(self, cnt))[0];
    b->buf[at + SLOT_FAILED] = 0.0f;
    b->buf[at + SLOT_WEIGHT] = w;
    b->buf[at + SLOT_LOSS] = w * loss;
    add_seconds(r->dm, &r->dm->stats.reduce_seconds, dg__mpi_now() - t0);
    mark_started(r, a->bucket);
    dg_node_data(self)[0] = 0.0f;
    return DG_OK;
}
static const dg_op_def start_op = {.name = "mpi_reduce_start",
                                   .n_inputs = DG_VARIADIC,
                                   .flags = DG_OP_NO_GRAD | DG_OP_EAGER,
                                   .infer_shape = scalar_rule,
                                   .forward = start_forward};

static dg_status wait_forward(dg_node *self) {
    const reduce_attrs *a = dg_node_attrs(self);
    double t0 = dg__mpi_now();
    wait_all(a->r);
    return finish_step(a->r, dg_node_graph(self), dg_node_data(self), t0, dg__mpi_now() - t0);
}
static const dg_op_def wait_op = {.name = "mpi_reduce_wait",
                                  .n_inputs = DG_VARIADIC,
                                  .flags = DG_OP_NO_GRAD,
                                  .infer_shape = scalar_rule,
                                  .forward = wait_forward};

static dg_status average_forward(dg_node *self) {
    const reduce_attrs *a = dg_node_attrs(self);
    const bucket *b = &a->r->b[a->bucket];
    scale_job job = {b->buf + a->offset, dg_node_data(self), b->buf[b->n + SLOT_WEIGHT], 1};
    dg_parallel_for(dg_node_numel(self), 1, scale_range, &job);
    return DG_OK;
}
static const dg_op_def average_op = {.name = "mpi_average",
                                     .n_inputs = 1,
                                     .flags = DG_OP_NO_GRAD,
                                     .infer_shape = average_rule,
                                     .forward = average_forward};

/* ---- building ---- */

static void reducer_free(dg_reducer *r) {
    if (r->has_thread) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    for (dg_reducer **p = &r->dm->reducers; *p; p = &(*p)->next_live)
        if (*p == r) {
            *p = r->next_live;
            break;
        }
    if (r->comm != MPI_COMM_NULL) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) MPI_Comm_free(&r->comm);
    }
    if (r->b)
        for (int k = 0; k < r->n_buckets; k++) free(r->b[k].buf);
    free(r->b);
    free(r->recv);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    dg__mpi_unref(r->dm);
    free(r);
}

static void reducer_release(void *p) { reducer_free(p); }

/* Sorts the parameter indices by their gradient's node id: the order backward produces
 * the gradients in (insertion sort: a model has few parameters). */
static void sort_by_grad_id(int *order, int n, dg_node *const *grads) {
    for (int i = 1; i < n; i++) {
        int v = order[i], j = i;
        for (; j > 0 && dg_node_id(grads[order[j - 1]]) > dg_node_id(grads[v]); j--)
            order[j] = order[j - 1];
        order[j] = v;
    }
}

/* Splits the gradients (in production order `order`) into buckets of at least
 * bucket_bytes; first[k] is bucket k's first position in order. Returns the count. */
static int plan_buckets(dg_node *const *params, const int *order, int n, size_t bucket_bytes,
                        int *first) {
    int k = 0;
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        if (bytes == 0) first[k++] = i;
        bytes += 4 * (size_t)dg_node_numel(params[order[i]]);
        /* a bucket stays well below 2^31 floats: MPI counts are ints */
        if (bytes >= bucket_bytes || bytes >= ((size_t)1 << 32)) bytes = 0;
    }
    first[k] = n;
    return k;
}

static uint64_t fnv(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    return h;
}

dg_status dg__mpi_gradients_hook(void *ctx, dg_graph *g, int n, dg_node *const *params,
                                 dg_node **grads) {
    dg_mpi *dm = ctx;
    dg_node *loss = dm->pending_loss;
    /* 1. the same parameters on every rank */
    dg_mpi_entry *e = malloc((size_t)n * sizeof *e);
    char *names = malloc((size_t)n * 64);
    int *order = malloc((size_t)n * sizeof *order),
        *first = malloc(((size_t)n + 1) * sizeof *first);
    dg_status s = e && names && order && first ? DG_OK : DG_ERR_NOMEM;
    dg_status a = dg__mpi_agree(dm, g, s, "out of memory building the gradient reduction");
    if (a != DG_OK) {
        free(e), free(names), free(order), free(first);
        return a;
    }
    for (int i = 0; i < n; i++) {
        e[i].kind = "parameter";
        e[i].name = dg__mpi_node_name(params[i], names + 64 * (size_t)i, 64);
        e[i].shape = dg_node_shape(params[i]);
        order[i] = i;
    }
    s = dg__mpi_compare(dm, g, e, n);
    free(e), free(names);
    if (s != DG_OK) return free(order), free(first), s;

    /* 2. buckets in the order backward produces the gradients; the same on every rank */
    sort_by_grad_id(order, n, grads);
    int nb = plan_buckets(params, order, n, dm->cfg.bucket_bytes, first);
    uint64_t h = fnv(0xcbf29ce484222325ull, (uint64_t)nb);
    for (int i = 0; i < n; i++) h = fnv(h, (uint64_t)order[i]);
    for (int k = 0; k <= nb; k++) h = fnv(h, (uint64_t)first[k]);
    uint64_t h0 = h;
    int rc = MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, dm->comm);
    if (rc != MPI_SUCCESS) return free(order), free(first), dg__mpi_fail(g, "MPI_Bcast", rc);
    char msg[300];
    snprintf(msg, sizeof msg,
             "mpi: rank %d's gradients come in another order than rank 0's (the graphs differ "
             "beyond their parameters)",
             dm->rank);
    s = dg__mpi_agree(dm, g, h == h0 ? DG_OK : DG_ERR_ARG, msg);
    if (s != DG_OK) return free(order), free(first), s;

    /* 3. the reducer: buffers, its own communicator, the thread */
    dg_reducer *r = calloc(1, sizeof *r);
    int64_t max_chunk = 0;
    if (r) {
        r->b = calloc((size_t)nb, sizeof *r->b);
        r->n_buckets = nb;
        r->comm = MPI_COMM_NULL;
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cv, NULL);
        r->dm = dm;
        dm->refs++;
    }
    s = r && r->b ? DG_OK : DG_ERR_NOMEM;
    for (int k = 0; s == DG_OK && k < nb; k++) {
        for (int i = first[k]; i < first[k + 1]; i++) r->b[k].n += dg_node_numel(params[order[i]]);
        r->b[k].buf = calloc((size_t)(r->b[k].n + N_SLOTS), sizeof(float));
        if (!r->b[k].buf) s = DG_ERR_NOMEM;
        int64_t c = (r->b[k].n + N_SLOTS + dm->size - 1) / dm->size + 1;
        max_chunk = c > max_chunk ? c : max_chunk;
        r->bytes += 4 * r->b[k].n;
    }
    if (s == DG_OK && !(r->recv = malloc((size_t)max_chunk * sizeof(float)))) s = DG_ERR_NOMEM;
    a = dg__mpi_agree(dm, g, s, "out of memory for the gradient buckets");
    if (a == DG_OK) {
        rc = MPI_Comm_dup(dm->comm, &r->comm);
        if (rc == MPI_SUCCESS) MPI_Comm_set_errhandler(r->comm, MPI_ERRORS_RETURN);
        a = dg__mpi_agree(dm, g, rc == MPI_SUCCESS ? DG_OK : DG_ERR_IO,
                          "MPI_Comm_dup failed for the gradient reduction");
    }
    if (a != DG_OK) {
        if (r) reducer_free(r);
        free(order), free(first);
        return a;
    }
    r->rank = dm->rank;
    r->size = dm->size;
    r->overlap = dm->cfg.overlap >= 0 ? dm->cfg.overlap : (dm->thread_multiple && dm->size > 1);
    if (r->overlap && !dm->thread_multiple) r->overlap = 0; /* the thread needs it */
    /* without a thread the calling thread reduces: the same messages in the same order */
    if (r->overlap && pthread_create(&r->thread, NULL, comm_main, r) == 0) r->has_thread = 1;
    if ((s = dg_graph_attach(g, r, reducer_release)) != DG_OK) {
        reducer_free(r);
        free(order), free(first);
        return s;
    }
    dm->pending = r;

    /* 4. the nodes */
    dg_node **in = malloc(((size_t)n + 1) * sizeof *in),
            **starts = malloc((size_t)nb * sizeof *starts);
    s = in && starts ? DG_OK : dg_set_error(g, DG_ERR_NOMEM, "mpi: out of memory");
    if (s == DG_OK) s = dg_scope_push(g, "mpi");
    int pushed = s == DG_OK;
    for (int k = 0; s == DG_OK && k < nb; k++) {
        int cnt = 0;
        for (int i = first[k]; i < first[k + 1]; i++) in[cnt++] = grads[order[i]];
        in[cnt++] = loss;
        reduce_attrs ra = {r, k, 0, dg_shape0()};
        char nm[48];
        snprintf(nm, sizeof nm, "reduce_start%d", k);
        if (!(starts[k] = dg_apply(g, &start_op, cnt, in, &ra, sizeof ra)) ||
            dg_node_set_name(starts[k], nm) != DG_OK)
            s = dg_graph_status(g);
    }
    dg_node *wait = NULL;
    if (s == DG_OK) {
        reduce_attrs ra = {r, 0, 0, dg_shape0()};
        if (!(wait = dg_apply(g, &wait_op, nb, starts, &ra, sizeof ra)) ||
            dg_node_set_name(wait, "reduce_wait") != DG_OK)
            s = dg_graph_status(g);
    }
    for (int k = 0; s == DG_OK && k < nb; k++) {
        int64_t off = 0;
        for (int i = first[k]; s == DG_OK && i < first[k + 1]; i++) {
            int p = order[i];
            reduce_attrs ra = {r, k, off, dg_node_shape(params[p])};
            char nm[128], buf[64];
            snprintf(nm, sizeof nm, "average(%s)", dg__mpi_node_name(params[p], buf, sizeof buf));
            dg_node *avg = dg_apply(g, &average_op, 1, &wait, &ra, sizeof ra);
            if (!avg || dg_node_set_name(avg, nm) != DG_OK)
                s = dg_graph_status(g);
            else
                grads[p] = avg;
            off += dg_node_numel(params[p]);
        }
    }
    if (pushed) dg_scope_pop(g);
    free(in), free(starts), free(order), free(first);
    return s;
}

void dg__mpi_reducer_settle(dg_mpi *dm, dg_optimizer *opt) {
    dg_reducer *r = dm->pending;
    dm->pending = NULL;
    if (!r || !opt) return; /* a failed construction's reducer stays idle until graph free */
    r->opt = opt;
    r->next_live = dm->reducers;
    dm->reducers = r;
    pthread_mutex_lock(&dm->lock);
    dm->stats.buckets = r->n_buckets;
    dm->stats.overlap = r->has_thread;
    dm->stats.bytes = r->bytes;
    pthread_mutex_unlock(&dm->lock);
}

/* ---- completing a step that failed on this rank ---- */

static int runs_step(const dg_reducer *r, int n, dg_node *const *targets) {
    dg_node *step = dg_optimizer_step_node(r->opt);
    for (int i = 0; i < n; i++)
        if (targets && targets[i] == step) return 1;
    return 0;
}

/* Takes part in every reduction of the unfinished step that this rank has not started,
 * with zeros marked failed, then ends the step. */
static void complete_as_failed(dg_reducer *r) {
    for (int k = 0; k < r->n_buckets; k++) {
        if (bucket_state(r, k) != IDLE) continue;
        bucket *b = &r->b[k];
        memset(b->buf, 0, (size_t)(b->n + N_SLOTS) * sizeof(float));
        b->buf[b->n + SLOT_FAILED] = 1.0f;
        mark_started(r, k);
    }
    wait_all(r);
    finish_step(r, NULL, NULL, 0.0, 0.0);
}

void dg__mpi_begin_run(dg_mpi *dm, int n, dg_node *const *targets) {
    for (dg_reducer *r = dm->reducers; r; r = r->next_live) {
        if (!runs_step(r, n, targets)) continue;
        /* an earlier step that failed without dg_mpi_run_step and was left half done */
        if (r->in_step) complete_as_failed(r);
        r->waits_at_run = r->waits_done;
    }
}

void dg__mpi_finish_failed(dg_mpi *dm, int n, dg_node *const *targets) {
    for (dg_reducer *r = dm->reducers; r; r = r->next_live)
        if (runs_step(r, n, targets) && r->waits_done == r->waits_at_run) complete_as_failed(r);
}
