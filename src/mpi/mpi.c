/* The MPI layer's handle and its collective helpers: making a handle from a communicator
 * (a bad one is an error, never an abort), agreeing on an outcome across ranks, sums in a
 * fixed order, checking that the ranks' models agree, broadcasting rank 0's values, and
 * checkpoints written by rank 0. The gradient reduction inside a training step is in
 * reduce.c. Every collective here runs the same sequence of MPI calls on every rank
 * whatever the local outcome, so a failure on one rank never leaves another waiting. */
#include "mpi_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MSG_SIZE = 1024 };

double dg__mpi_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dg_status dg__mpi_fail(dg_graph *g, const char *what, int mpi_err) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mpi_err, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "?");
    return dg_set_error(g, DG_ERR_IO, "mpi: %s failed: %s (MPI error %d)", what, text, mpi_err);
}

dg_mpi_config dg_mpi_defaults(void) {
    dg_mpi_config c;
    memset(&c, 0, sizeof c);
    c.bucket_bytes = (size_t)1 << 19;
    c.overlap = -1;
    return c;
}

/* 1 if MPI can be called now; else records why not. */
static int mpi_usable(const char *who) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) {
        dg_set_error(NULL, DG_ERR_STATE, "%s: MPI is %s (call MPI_Init_thread first)", who,
                     fin ? "already finalised" : "not initialised");
        return 0;
    }
    return 1;
}

dg_mpi *dg_mpi_new(MPI_Comm comm, const dg_mpi_config *cfg) {
    const char *w = "mpi_new";
    if (!mpi_usable(w)) return NULL;
    dg_mpi_config c = cfg ? *cfg : dg_mpi_defaults();
    if (c.overlap < -1 || c.overlap > 1)
        return dg_set_error(NULL, DG_ERR_ARG, "%s: overlap must be -1, 0 or 1, got %d", w,
                            c.overlap),
               NULL;
    if (comm == MPI_COMM_NULL)
        return dg_set_error(NULL, DG_ERR_ARG, "%s: the communicator is MPI_COMM_NULL", w), NULL;
    /* MPI reports an invalid communicator argument through MPI_COMM_WORLD's error handler,
     * fatal by default: return instead, just for this check. */
    MPI_Errhandler old;
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &old);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int inter = 0, rc = MPI_Comm_test_inter(comm, &inter);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, old);
    MPI_Errhandler_free(&old);
    if (rc != MPI_SUCCESS) {
        dg__mpi_fail(NULL, "mpi_new: checking the communicator", rc);
        dg_set_error(NULL, DG_ERR_ARG, "mpi_new: not a valid communicator (%s)", dg_last_error());
        return NULL;
    }
    if (inter)
        return dg_set_error(NULL, DG_ERR_ARG,
                            "%s: an intercommunicator cannot be used (merge it with "
                            "MPI_Intercomm_merge first)",
                            w),
               NULL;
    dg_mpi *dm = calloc(1, sizeof *dm);
    if (!dm) return dg_set_error(NULL, DG_ERR_NOMEM, "%s: out of memory", w), NULL;
    /* our own communicator: our messages never match the caller's, and errors return */
    rc = MPI_Comm_dup(comm, &dm->comm);
    if (rc != MPI_SUCCESS) {
        free(dm);
        return dg__mpi_fail(NULL, "mpi_new: MPI_Comm_dup", rc), NULL;
    }
    MPI_Comm_set_errhandler(dm->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(dm->comm, &dm->rank);
    MPI_Comm_size(dm->comm, &dm->size);
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    dm->thread_multiple = level == MPI_THREAD_MULTIPLE;
    dm->cfg = c;
    dm->refs = 1;
    dm->weight = 1.0;
    dm->loss = NAN;
    pthread_mutex_init(&dm->lock, NULL);
    return dm;
}

void dg__mpi_unref(dg_mpi *dm) {
    if (--dm->refs > 0) return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Comm_free(&dm->comm);
    pthread_mutex_destroy(&dm->lock);
    free(dm);
}

void dg_mpi_free(dg_mpi *dm) {
    if (dm) dg__mpi_unref(dm);
}

int dg_mpi_rank(const dg_mpi *dm) { return dm ? dm->rank : -1; }
int dg_mpi_size(const dg_mpi *dm) { return dm ? dm->size : 0; }

dg_status dg_mpi_set_weight(dg_mpi *dm, double w) {
    if (!dm) return dg_set_error(NULL, DG_ERR_NULL, "mpi_set_weight: handle is NULL");
    if (!(w >= 0.0) || !isfinite(w))
        return dg_set_error(NULL, DG_ERR_ARG,
                            "mpi_set_weight: weight must be finite and >= 0, "
                            "got %g",
                            w);
    dm->weight = w;
    return DG_OK;
}

float dg_mpi_loss(const dg_mpi *dm) { return dm ? dm->loss : NAN; }

/* ---- agreement and sums ---- */

dg_status dg__mpi_agree(dg_mpi *dm, dg_graph *g, dg_status local, const char *message) {
    int mine = (int)local, *all = malloc((size_t)dm->size * sizeof *all);
    if (!all) return dg_set_error(g, DG_ERR_NOMEM, "mpi: out of memory");
    int rc = MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, dm->comm);
    if (rc != MPI_SUCCESS) {
        free(all);
        return dg__mpi_fail(g, "MPI_Allgather (agreeing on an outcome)", rc);
    }
    int first = -1, failed = 0;
    for (int r = 0; r < dm->size; r++)
        if (all[r] != DG_OK) failed++, first = first < 0 ? r : first;
    dg_status s = first < 0 ? DG_OK : (dg_status)all[first];
    free(all);
    if (first < 0) return DG_OK;
    char text[MSG_SIZE];
    memset(text, 0, sizeof text);
    if (dm->rank == first) snprintf(text, sizeof text, "%s", message && *message ? message : "");
    rc = MPI_Bcast(text, MSG_SIZE, MPI_CHAR, first, dm->comm);
    if (rc != MPI_SUCCESS) return dg__mpi_fail(g, "MPI_Bcast (sharing a message)", rc);
    text[MSG_SIZE - 1] = 0;
    char more[64] = "";
    if (failed > 1)
        snprintf(more, sizeof more, " (and %d more rank%s)", failed - 1, failed > 2 ? "s" : "");
    /* a message that is already about the ranks ("mpi: rank 1's model ...") is kept as is */
    if (strncmp(text, "mpi: rank", 9) == 0) return dg_set_error(g, s, "%s%s", text, more);
    return dg_set_error(g, s, "mpi: rank %d of %d: %s%s", first, dm->size,
                        *text ? text : dg_status_name(s), more);
}

dg_status dg_mpi_agree(dg_mpi *dm, dg_status local, const char *message) {
    if (!dm) return dg_set_error(NULL, DG_ERR_NULL, "mpi_agree: handle is NULL");
    return dg__mpi_agree(dm, NULL, local, message);
}

dg_status dg_mpi_sum(dg_mpi *dm, double *values, int n) {
    if (!dm) return dg_set_error(NULL, DG_ERR_NULL, "mpi_sum: handle is NULL");
    if (n < 0 || (n > 0 && !values))
        return dg_set_error(NULL, DG_ERR_ARG, "mpi_sum: need n >= 0 values, got %d%s", n,
                            values ? "" : " and NULL");
    if (n == 0 || dm->size == 1) return DG_OK;
    /* gathered on rank 0 and added in rank order there: one order, whatever MPI's
     * reduction algorithms would choose */
    double *all = dm->rank == 0 ? malloc((size_t)n * (size_t)dm->size * sizeof *all) : NULL;
    int ok = dm->rank != 0 || all != NULL;
    int rc = MPI_Bcast(&ok, 1, MPI_INT, 0, dm->comm);
    if (rc == MPI_SUCCESS && !ok) {
        return dg_set_error(NULL, DG_ERR_NOMEM, "mpi_sum: out of memory on rank 0");
    }
    if (rc == MPI_SUCCESS) rc = MPI_Gather(values, n, MPI_DOUBLE, all, n, MPI_DOUBLE, 0, dm->comm);
    if (rc == MPI_SUCCESS && dm->rank == 0)
        for (int i = 0; i < n; i++) {
            double s = all[i];
            for (int r = 1; r < dm->size; r++) s += all[(size_t)r * (size_t)n + (size_t)i];
            values[i] = s;
        }
    free(all);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(values, n, MPI_DOUBLE, 0, dm->comm);
    return rc == MPI_SUCCESS ? DG_OK : dg__mpi_fail(NULL, "mpi_sum", rc);
}

/* ---- comparing models ---- */

const char *dg__mpi_node_name(const dg_node *x, char *buf, size_t size) {
    const char *name = dg_node_name(x);
    if (name && *name) return name;
    snprintf(buf, size, "param%d", dg_node_id(x));
    return buf;
}

/* Serialised entries: u32 count, then per entry u32 name length, the name, u32 kind
 * (0 parameter, 1 state), u32 ndim, ndim i64 dims. */
static size_t put(unsigned char *b, size_t at, const void *v, size_t n) {
    if (b) memcpy(b + at, v, n);
    return at + n;
}

static size_t serialise(const dg_mpi_entry *e, int n, unsigned char *b) {
    uint32_t count = (uint32_t)n;
    size_t at = put(b, 0, &count, 4);
    for (int i = 0; i < n; i++) {
        uint32_t len = (uint32_t)strlen(e[i].name), kind = e[i].kind[0] == 's';
        uint32_t nd = (uint32_t)e[i].shape.ndim;
        at = put(b, at, &len, 4);
        at = put(b, at, e[i].name, len);
        at = put(b, at, &kind, 4);
        at = put(b, at, &nd, 4);
        at = put(b, at, e[i].shape.dim, 8 * (size_t)nd);
    }
    return at;
}

/* Reads entry i of rank 0's serialised list (its own format, so trusted) into *out;
 * *at walks the buffer. name points into the buffer and is not terminated: len gives it. */
static void next_entry(const unsigned char *b, size_t *at, const char **name, uint32_t *len,
                       uint32_t *kind, dg_shape *shape) {
    uint32_t nd;
    memcpy(len, b + *at, 4);
    *name = (const char *)b + *at + 4;
    *at += 4 + *len;
    memcpy(kind, b + *at, 4);
    memcpy(&nd, b + *at + 4, 4);
    *at += 8;
    memset(shape, 0, sizeof *shape);
    shape->ndim = (int)nd;
    memcpy(shape->dim, b + *at, 8 * (size_t)nd);
    *at += 8 * (size_t)nd;
}

dg_status dg__mpi_compare(dg_mpi *dm, dg_graph *g, const dg_mpi_entry *e, int n) {
    /* rank 0's list, to every rank */
    unsigned char *mine = NULL, *theirs = NULL;
    uint64_t size = 0;
    dg_status local = DG_OK;
    char msg[MSG_SIZE] = "";
    if (dm->rank == 0) {
        size = serialise(e, n, NULL);
        mine = malloc(size);
        if (mine)
            serialise(e, n, mine);
        else
            size = UINT64_MAX; /* tells the others rank 0 ran out of memory */
    }
    int rc = MPI_Bcast(&size, 1, MPI_UINT64_T, 0, dm->comm);
    if (rc != MPI_SUCCESS) return free(mine), dg__mpi_fail(g, "MPI_Bcast (model check)", rc);
    if (size == UINT64_MAX || size > (uint64_t)INT32_MAX)
        return free(mine), dg_set_error(g, DG_ERR_NOMEM,
                                        "mpi: rank 0's model description "
                                        "could not be made");
    theirs = dm->rank == 0 ? mine : malloc(size ? size : 1);
    int ok = theirs != NULL;
    /* every rank must take part in the broadcast: agree first that all can */
    dg_status a =
        dg__mpi_agree(dm, g, ok ? DG_OK : DG_ERR_NOMEM, "out of memory for the model check");
    if (a != DG_OK) {
        if (theirs != mine) free(theirs);
        free(mine);
        return a;
    }
    rc = MPI_Bcast(theirs, (int)size, MPI_UNSIGNED_CHAR, 0, dm->comm);
    if (rc != MPI_SUCCESS) {
        if (theirs != mine) free(theirs);
        free(mine);
        return dg__mpi_fail(g, "MPI_Bcast (model check)", rc);
    }
    if (dm->rank != 0) {
        uint32_t count;
        memcpy(&count, theirs, 4);
        size_t at = 4;
        int i = 0;
        for (; i < n && i < (int)count; i++) {
            const char *name;
            uint32_t len, kind;
            dg_shape sh;
            next_entry(theirs, &at, &name, &len, &kind, &sh);
            const char *k0 = kind ? "state" : "parameter";
            char s0[64], s1[64];
            if (strcmp(k0, e[i].kind) != 0 || len != strlen(e[i].name) ||
                memcmp(name, e[i].name, len) != 0) {
                snprintf(msg, sizeof msg,
                         "mpi: rank %d's model differs from rank 0's: tensor %d is %s '%s' on "
                         "rank %d but %s '%.*s' on rank 0",
                         dm->rank, i, e[i].kind, e[i].name, dm->rank, k0, (int)len, name);
                break;
            }
            if (!dg_shape_equal(sh, e[i].shape)) {
                snprintf(msg, sizeof msg,
                         "mpi: rank %d's model differs from rank 0's: %s %d '%s' is %s on "
                         "rank %d but %s on rank 0",
                         dm->rank, e[i].kind, i, e[i].name, dg_shape_str(e[i].shape, s1, 64),
                         dm->rank, dg_shape_str(sh, s0, 64));
                break;
            }
        }
        if (!msg[0] && (int)count != n) {
            const char *extra = NULL;
            char buf[300];
            if (i < n) {
                extra = e[i].name;
            } else {
                const char *name;
                uint32_t len, kind;
                dg_shape sh;
                next_entry(theirs, &at, &name, &len, &kind, &sh);
                snprintf(buf, sizeof buf, "%.*s", (int)len, name);
                extra = buf;
            }
            snprintf(msg, sizeof msg,
                     "mpi: rank %d's model differs from rank 0's: rank %d has %d tensors, rank 0 "
                     "has %u; the first one without a match is '%s' on rank %d",
                     dm->rank, dm->rank, n, count, extra, i < n ? dm->rank : 0);
        }
        if (msg[0]) local = DG_ERR_ARG;
        free(theirs);
    }
    free(mine);
    return dg__mpi_agree(dm, g, local, msg);
}

/* The graph's parameters (and state) in creation order. */
static dg_status graph_entries(dg_graph *g, int with_state, dg_mpi_entry **out, char **names,
                               dg_node ***nodes, int *n_out) {
    int total = dg_graph_node_count(g), n = 0;
    *out = malloc(((size_t)total + 1) * sizeof **out);
    *names = malloc(((size_t)total + 1) * 64);
    *nodes = malloc(((size_t)total + 1) * sizeof **nodes);
    if (!*out || !*names || !*nodes)
        return free(*out), free(*names), free(*nodes),
               *out = NULL, *names = NULL, *nodes = NULL,
               dg_set_error(g, DG_ERR_NOMEM, "mpi: out of memory");
    for (int i = 0; i < total; i++) {
        dg_node *x = dg_graph_node(g, i);
        dg_node_kind k = dg_node_kind_of(x);
        if (k != DG_PARAM && !(with_state && k == DG_STATE)) continue;
        (*out)[n].kind = k == DG_PARAM ? "parameter" : "state";
        (*out)[n].name = dg__mpi_node_name(x, *names + 64 * (size_t)n, 64);
        (*out)[n].shape = dg_node_shape(x);
        (*nodes)[n++] = x;
    }
    *n_out = n;
    return DG_OK;
}

dg_status dg_mpi_check_model(dg_mpi *dm, dg_graph *g, int with_state) {
    if (!dm || !g)
        return dg_set_error(g, DG_ERR_NULL, "mpi_check_model: %s is NULL", dm ? "graph" : "handle");
    dg_mpi_entry *e;
    char *names;
    dg_node **nodes;
    int n;
    dg_status s = graph_entries(g, with_state, &e, &names, &nodes, &n);
    /* even a rank out of memory takes part, with an empty list and its failure */
    if (s != DG_OK) {
        dg_status a = dg__mpi_agree(dm, g, s, dg_graph_error(g));
        return a != DG_OK ? a : s;
    }
    s = dg__mpi_agree(dm, g, DG_OK, NULL);
    if (s == DG_OK) s = dg__mpi_compare(dm, g, e, n);
    free(e), free(names), free(nodes);
    return s;
}

dg_status dg_mpi_broadcast(dg_mpi *dm, dg_graph *g, int with_state) {
    if (!dm || !g)
        return dg_set_error(g, DG_ERR_NULL, "mpi_broadcast: %s is NULL", dm ? "graph" : "handle");
    dg_mpi_entry *e;
    char *names;
    dg_node **nodes;
    int n;
    dg_status s = graph_entries(g, with_state, &e, &names, &nodes, &n);
    dg_status a = dg__mpi_agree(dm, g, s, s != DG_OK ? dg_graph_error(g) : NULL);
    if (s != DG_OK || a != DG_OK) {
        free(e), free(names), free(nodes);
        return a != DG_OK ? a : s;
    }
    s = dg__mpi_compare(dm, g, e, n);
    for (int i = 0; s == DG_OK && i < n; i++) {
        int64_t numel = dg_node_numel(nodes[i]);
        float *data = dg_node_data(nodes[i]);
        for (int64_t at = 0; s == DG_OK && at < numel; at += INT32_MAX) {
            int count = (int)(numel - at < INT32_MAX ? numel - at : INT32_MAX);
            int rc = MPI_Bcast(data + at, count, MPI_FLOAT, 0, dm->comm);
            if (rc != MPI_SUCCESS) s = dg__mpi_fail(g, "MPI_Bcast (parameters)", rc);
        }
    }
    free(e), free(names), free(nodes);
    return s;
}

/* ---- checkpoints ---- */

dg_status dg_mpi_checkpoint_save(dg_mpi *dm, dg_graph *g, const char *path, int with_state) {
    if (!dm || !g)
        return dg_set_error(g, DG_ERR_NULL, "mpi_checkpoint_save: %s is NULL",
                            dm ? "graph" : "handle");
    dg_status s = DG_OK;
    if (dm->rank == 0) s = dg_checkpoint_save(g, path, with_state);
    return dg__mpi_agree(dm, g, s, s != DG_OK ? dg_graph_error(g) : NULL);
}

dg_status dg_mpi_checkpoint_load(dg_mpi *dm, dg_graph *g, const char *path, int with_state) {
    if (!dm || !g)
        return dg_set_error(g, DG_ERR_NULL, "mpi_checkpoint_load: %s is NULL",
                            dm ? "graph" : "handle");
    dg_status s = dg_checkpoint_load(g, path, with_state);
    return dg__mpi_agree(dm, g, s, s != DG_OK ? dg_graph_error(g) : NULL);
}

/* ---- optimizers and steps ---- */

dg_optimizer *dg_mpi_optimizer_new(dg_mpi *dm, dg_graph *g, dg_node *loss,
                                   const dg_optim_config *cfg) {
    if (!dm) return dg_set_error(g, DG_ERR_NULL, "mpi_optimizer_new: handle is NULL"), NULL;
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "mpi_optimizer_new: graph is NULL"), NULL;
    dg_optim_hooks hooks = {dg__mpi_gradients_hook, dm};
    dm->pending = NULL;
    dm->pending_loss = loss;
    dg_optimizer *opt = dg_optimizer_new_ex(g, loss, cfg, &hooks);
    dg__mpi_reducer_settle(dm, opt);
    if (!opt && dg_graph_error(g)[0]) dg_error_prefix(g, "mpi_optimizer_new");
    return opt;
}

dg_status dg_mpi_run_step(dg_mpi *dm, dg_graph *g, int n, dg_node *const *targets) {
    if (!dm || !g)
        return dg_set_error(g, DG_ERR_NULL, "mpi_run_step: %s is NULL", dm ? "graph" : "handle");
    dg__mpi_begin_run(dm, n, targets);
    dg_status s = dg_run_many(g, n, targets);
    if (s != DG_OK) {
        /* keep this rank's message; the others learn from the reduction that it failed */
        char msg[MSG_SIZE];
        snprintf(msg, sizeof msg, "%s", dg_graph_error(g));
        dg__mpi_finish_failed(dm, n, targets);
        dg_set_error(g, s, "%s", msg);
    }
    return s;
}

dg_status dg_mpi_step(dg_mpi *dm, dg_optimizer *opt) {
    if (!dm || !opt)
        return dg_set_error(NULL, DG_ERR_NULL, "mpi_step: %s is NULL", dm ? "optimizer" : "handle");
    dg_node *step = dg_optimizer_step_node(opt);
    dg_status s = dg_mpi_run_step(dm, dg_node_graph(step), 1, &step);
    return s == DG_OK ? s : dg_error_prefix(dg_node_graph(step), "mpi_step");
}

/* ---- statistics ---- */

dg_status dg_mpi_stats_get(const dg_mpi *dm, dg_mpi_stats *out) {
    if (!dm || !out)
        return dg_set_error(NULL, DG_ERR_NULL, "mpi_stats_get: %s is NULL", dm ? "out" : "handle");
    dg_mpi *m = (dg_mpi *)dm;
    pthread_mutex_lock(&m->lock);
    *out = m->stats;
    pthread_mutex_unlock(&m->lock);
    return DG_OK;
}

void dg_mpi_stats_reset(dg_mpi *dm) {
    if (!dm) return;
    pthread_mutex_lock(&dm->lock);
    dm->stats.steps = 0;
    dm->stats.reduce_seconds = 0;
    dm->stats.waiting_seconds = 0;
    dm->stats.hidden_seconds = 0;
    pthread_mutex_unlock(&dm->lock);
}
