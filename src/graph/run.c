/* Running a graph: find or make the plan of a target set (plan.c), check the inputs and
 * the batch size, re-infer shapes if the batch size changed, point each node at its
 * memory, and call each op's forward kernel in plan order. Knows no op; allocates nothing
 * once the plan and layout for this batch size exist.
 *
 * In builds with AddressSanitizer the arena is poisoned except for the blocks that are
 * live at each point of the run, so a kernel reading memory the plan has handed to another
 * node is reported rather than silently reading stale values. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DG_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DG_ASAN 1
#endif
#ifdef DG_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (size_t)(n) * sizeof(float))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (size_t)(n) * sizeof(float))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Index of the first non-finite element, or -1. */
static int64_t first_nonfinite(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return i;
    return -1;
}

/* 1 if every input of x that it reads, other than `skip`, holds only finite values. */
static int inputs_finite(const dg_node *x, int skip) {
    for (int k = 0; k < x->n_inputs; k++) {
        if (k == skip || (k < 64 && (x->op->shape_only >> k & 1))) continue;
        if (first_nonfinite(x->inputs[k]->value, x->inputs[k]->numel) >= 0) return 0;
    }
    return 1;
}

static dg_status report_anomaly(dg_graph *g, dg_node *x, int64_t at) {
    char sb[64], bad[128] = "";
    size_t used = 0;
    for (int k = 0; k < x->n_inputs && used < sizeof bad; k++) {
        dg_node *in = x->inputs[k];
        if (k < 64 && (x->op->shape_only >> k & 1)) continue;
        if (first_nonfinite(in->value, in->numel) >= 0) {
            int w = snprintf(bad + used, sizeof bad - used, "%s%d", used ? "," : "", k);
            if (w > 0) used += (size_t)w;
        }
    }
    return dg_set_error(g, DG_ERR_NONFINITE,
                        "anomaly: node %d (op %s%s%s%s%s%s, shape %s%s) produced %g at element "
                        "%lld; non-finite inputs: %s",
                        x->id, x->scope ? x->scope : "", x->scope ? "/" : "", x->op->name,
                        x->name ? ", name '" : "", x->name ? x->name : "", x->name ? "'" : "",
                        dg_shape_str(x->shape, sb, sizeof sb),
                        x->backward_pass ? ", in backward" : "", (double)x->value[at],
                        (long long)at, used ? bad : "none");
}

/* Anomaly mode after node x ran: its result, or for an op that writes leaves in place
 * (an optimizer update), the leaves it wrote. */
static dg_status check_anomaly(dg_graph *g, dg_node *x) {
    if (!x->op->writes) {
        int64_t at = first_nonfinite(x->value, x->numel);
        return at >= 0 ? report_anomaly(g, x, at) : DG_OK;
    }
    for (int k = 0; k < x->n_inputs && k < 64; k++) {
        if (!(x->op->writes >> k & 1)) continue;
        dg_node *leaf = x->inputs[k];
        int64_t at = first_nonfinite(leaf->value, leaf->numel);
        if (at < 0) continue;
        char sb[64];
        return dg_set_error(g, DG_ERR_NONFINITE,
                            "anomaly: node %d (op %s%s%s) wrote %g into element %lld of %s%s%s "
                            "(node %d, shape %s); its other inputs were %s",
                            x->id, x->scope ? x->scope : "", x->scope ? "/" : "", x->op->name,
                            (double)leaf->value[at], (long long)at, leaf->name ? "'" : "",
                            leaf->name ? leaf->name : "an unnamed leaf", leaf->name ? "'" : "",
                            leaf->id, dg_shape_str(leaf->shape, sb, sizeof sb),
                            inputs_finite(x, k) ? "finite (the update itself overflowed: a "
                                                  "learning rate too large?)"
                                                : "already non-finite");
    }
    return DG_OK;
}

static const char *label(const dg_node *x, char *buf, size_t size) {
    if (x->name)
        snprintf(buf, size, "'%s'", x->name);
    else
        snprintf(buf, size, "node %d", x->id);
    return buf;
}

/* The batch size of this run: the rows of its batch inputs, which must agree. */
static dg_status run_batch(dg_graph *g, const dg_plan *p, int64_t *batch) {
    *batch = 0;
    const dg_node *first = NULL;
    for (int i = 0; i < p->n_batch_inputs; i++) {
        const dg_node *x = p->batch_inputs[i];
        if (!first) {
            first = x;
            *batch = x->shape.dim[0];
        } else if (x->shape.dim[0] != *batch) {
            char a[300], b[300];
            return dg_set_error(g, DG_ERR_SHAPE,
                                "run: batch inputs disagree: %s has %lld rows but %s has %lld "
                                "(feed every batch input of a run the same number of rows)",
                                label(first, a, sizeof a), (long long)*batch, label(x, b, sizeof b),
                                (long long)x->shape.dim[0]);
        }
    }
    return DG_OK;
}

/* Where the result at plan position i lives for this run. */
static void place(dg_graph *g, const dg_plan *p, const dg_layout *l, int i) {
    dg_node *x = g->nodes[p->order[i]];
    int a = l->alias[i];
    if (a >= 0)
        x->value = x->inputs[a]->value;
    else if (l->offset[i] >= 0)
        x->value = g->values + l->offset[i];
    else
        x->value = x->own;
    if (l->offset[i] >= 0) UNPOISON(x->value, x->numel);
    x->has_value = x->computed = 1;
}

/* Runs the node at position i and the r nodes fused into its epilogue (positions i+1..i+r;
 * their forward_range runs on each range the producer reports, or their forward after it
 * when it reported none). */
static dg_status run_group(dg_graph *g, const dg_plan *p, const dg_layout *l, int i, int r) {
    dg_node *x = g->nodes[p->order[i]];
    dg_node *fused[DG_MAX_FUSED];
    for (int q = 0; q < r; q++) fused[q] = g->nodes[p->order[i + 1 + q]];
    g->running = x;
    g->running_scratch = l->scratch[i] >= 0 ? g->values + l->scratch[i] : NULL;
    if (l->scratch[i] >= 0) UNPOISON(g->running_scratch, x->op->scratch_bytes(x) / sizeof(float));
    g->epilogue = fused;
    g->n_epilogue = r;
    atomic_store_explicit(&g->epilogue_used, 0, memory_order_relaxed);
    atomic_store_explicit(&g->epilogue_done, 0, memory_order_relaxed);
    g->status = DG_OK;
    dg_status s = x->op->forward(x);
    g->epilogue = NULL;
    g->n_epilogue = 0;
    if (l->scratch[i] >= 0) POISON(g->running_scratch, x->op->scratch_bytes(x) / sizeof(float));
    g->running_scratch = NULL;
    if (s != DG_OK) {
        if (g->status == DG_OK)
            dg_set_error(g, s, "run: op %s failed at node %d", x->op->name, x->id);
        return s;
    }
    /* anomaly mode also checks that the producer reported all of its output or nothing */
    int64_t counted = atomic_load_explicit(&g->epilogue_done, memory_order_relaxed);
    int done = atomic_load_explicit(&g->epilogue_used, memory_order_relaxed) || counted;
    if (r > 0 && counted != 0 && counted != x->numel)
        return dg_set_error(g, DG_ERR_STATE,
                            "run: op %s (node %d) reported %lld of its %lld output elements to "
                            "its epilogue (DG_OP_EPILOGUE ops must report all or none)",
                            x->op->name, x->id, (long long)counted, (long long)x->numel);
    if (g->anomaly && (s = check_anomaly(g, x)) != DG_OK) return s;
    if (done) g->fused_nodes += r;
    for (int q = 0; q < r; q++) {
        if (done == 0) {
            g->running = fused[q];
            g->status = DG_OK;
            s = fused[q]->op->forward(fused[q]);
            if (s != DG_OK) {
                if (g->status == DG_OK)
                    dg_set_error(g, s, "run: op %s failed at node %d", fused[q]->op->name,
                                 fused[q]->id);
                return s;
            }
        }
        if (g->anomaly && (s = check_anomaly(g, fused[q])) != DG_OK) return s;
    }
    return DG_OK;
}

/* Thread tuning. Whether splitting loops over the pool pays depends on more than their
 * size: on what moving data between cores costs on this machine, at this moment (on a
 * virtual machine, where the host happens to put the vCPUs), and a split node also moves
 * the data the nodes after it read. So a layout measures whole runs, in cycles of
 * TUNE_EVERY runs:
 *   - TUNE_SETTLE runs as decided so far (at first: split wherever the size says), so the
 *     pool settles (its back-off from a start full of page faults has ended); the last of
 *     them counts the nodes whose loops ask for threads (none: nothing to tune);
 *   - TUNE_TRIALS runs with every loop on the calling thread, as many with loops split;
 *     whole runs in a row of one kind, so each is timed with the data where that choice
 *     leaves it and with the workers as awake as it keeps them (the first of each kind
 *     only moves the data and wakes or idles the workers, and is not timed);
 *   - the layout's runs then stay on the calling thread unless the split runs took under
 *     TUNE_GAIN of the serial ones' time, each kind's slowest run left out (so one hiccup
 *     of the host does not decide);
 *   - if loops stay split, the next TUNE_CHECK runs are timed too, and loops go back to
 *     the calling thread unless those runs were faster on average than the serial trials.
 *     A few milliseconds of trials can flatter splitting: on a machine where another
 *     process holds a core, the worker sharing that core may have it during the trials
 *     and then get half of it (W2 on 2 threads with a busy core: trials 1.55 ms a step
 *     split against 2.03 serial, then 1.15-1.25 s per epoch split against 0.86-0.96 s
 *     serial, in about half the runs before this check).
 * Results do not depend on the choice: every kernel computes the same bits on any number of
 * threads. */
enum { TUNE_SETTLE = 32, TUNE_TRIALS = 8, TUNE_CHECK = 64, TUNE_EVERY = 2048 };
#define TUNE_GAIN 0.97f

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* This run's place in the tuning cycle (see above), or -1: no tuning. */
static int64_t tune_phase(dg_graph *g, dg_layout *l) {
    int threads = dg_get_num_threads();
    if (g->no_tuning || threads < 2) return -1;
    if (l->tune_threads != threads) {
        l->tune_threads = threads;
        l->tune_runs = 0;
        l->tune_serial = 0;
    }
    return l->tune_runs++ % TUNE_EVERY;
}

static dg_status execute(dg_graph *g, const dg_plan *p, dg_layout *l) {
    float *arena = g->values;
    POISON(arena, l->arena_floats);
    dg_status s = DG_OK;
    g->fused_nodes = 0;
    g->serial_nodes = 0;
    int64_t phase = tune_phase(g, l);
    int discover = phase == TUNE_SETTLE - 1;
    int trial = phase >= TUNE_SETTLE && phase < TUNE_SETTLE + 2 * TUNE_TRIALS && l->tune_nodes;
    int alone = trial ? phase < TUNE_SETTLE + TUNE_TRIALS : phase >= 0 && l->tune_serial;
    const int64_t trials_end = TUNE_SETTLE + 2 * TUNE_TRIALS;
    int check = phase >= trials_end && phase < trials_end + TUNE_CHECK && l->tune_nodes && !alone;
    if (discover) {
        l->tune_nodes = 0;
        l->tune_sum[0] = l->tune_sum[1] = l->tune_max[0] = l->tune_max[1] = 0.0f;
        l->tune_check = 0.0f;
        l->tune_check_n = 0;
    }
    dg__serial(alone);
    double t0 = trial || check ? seconds() : 0.0;
    for (int i = 0; i < p->len && s == DG_OK; i++) {
        int r = l->group[i] > 0 ? l->group[i] : 0;
        for (int q = i; q <= i + r; q++) place(g, p, l, q);
        int64_t asked = dg__parallel_requests();
        s = run_group(g, p, l, i, r);
        if (dg__parallel_requests() != asked) {
            l->tune_nodes += discover;
            g->serial_nodes += alone && !trial;
        }
        for (int q = i; q <= i + r && s == DG_OK; q++)
            for (int k = l->free_start[q]; k < l->free_start[q + 1]; k++)
                POISON(arena + l->free_lo[k], l->free_hi[k] - l->free_lo[k]);
        i += r;
    }
    dg__serial(0);
    int64_t first_of_kind = alone ? TUNE_SETTLE : TUNE_SETTLE + TUNE_TRIALS;
    if (trial && s == DG_OK && phase != first_of_kind) {
        float t = (float)(seconds() - t0);
        l->tune_sum[alone] += t;
        if (t > l->tune_max[alone]) l->tune_max[alone] = t;
        if (phase == trials_end - 1) {
            float split = l->tune_sum[0] - l->tune_max[0], serial = l->tune_sum[1] - l->tune_max[1];
            l->tune_serial = !(split < TUNE_GAIN * serial);
        }
    }
    if (check && s == DG_OK) {
        l->tune_check += (float)(seconds() - t0);
        l->tune_check_n++;
    }
    if (check && phase == trials_end + TUNE_CHECK - 1 && l->tune_check_n > 0) {
        /* timed serial trials: all but the first, less the slowest */
        float serial_mean = (l->tune_sum[1] - l->tune_max[1]) / (TUNE_TRIALS - 2);
        l->tune_serial = !(l->tune_check / (float)l->tune_check_n < serial_mean);
    }
    g->running = NULL;
    g->running_scratch = NULL;
    /* what lives in the arena (or shares another node's buffer) is gone after the run */
    for (int i = 0; i < p->len; i++)
        if (l->alias[i] != DG_STORE_OWN || l->offset[i] >= 0) g->nodes[p->order[i]]->has_value = 0;
    UNPOISON(arena, l->arena_floats);
    return s;
}

dg_status dg_run_many(dg_graph *g, int n, dg_node *const *targets) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "run: graph is NULL");
    if (n < 1 || !targets) return dg_set_error(g, DG_ERR_ARG, "run: no targets given");
    for (int i = 0; i < n; i++) {
        if (!targets[i]) return dg_set_error(g, DG_ERR_NULL, "run: target %d is NULL", i);
        if (targets[i]->graph != g)
            return dg_set_error(g, DG_ERR_GRAPH, "run: target %d belongs to another graph", i);
    }
    dg_plan *p = dg__plan_find(g, n, targets);
    if (!p) {
        dg_status s = dg__plan_make(g, n, targets, &p);
        if (s != DG_OK) return s;
    }
    for (int i = 0; i < p->n_leaves; i++) {
        dg_node *x = p->leaves[i];
        const dg_node *w = p->leaf_writer[i];
        if (x->by_ref && w) { /* the caller's memory: never written */
            char a[300];
            return dg_set_error(g, DG_ERR_STATE,
                                "run: node %d (op %s) writes input %s in place, but it was fed "
                                "by reference (dg_feed_ref) and its memory is the caller's; "
                                "feed it with dg_feed",
                                w->id, w->op->name, label(x, a, sizeof a));
        }
        if (!x->fed) {
            char sb[64];
            return dg_set_error(g, DG_ERR_STATE,
                                "run: input node %d%s%s%s %s has not been fed (call dg_feed)",
                                x->id, x->name ? " '" : "", x->name ? x->name : "",
                                x->name ? "'" : "", dg_shape_str(x->shape, sb, sizeof sb));
        }
    }
    int64_t batch;
    dg_status s = run_batch(g, p, &batch);
    if (s == DG_OK) s = dg__plan_shapes(g, p, batch);
    dg_layout *l = NULL;
    if (s == DG_OK) s = dg__plan_layout(g, p, batch, &l);
    if (s != DG_OK) return s;
    if (l->arena_floats > g->values_cap) {
        float *v = dg__alloc_floats(l->arena_floats);
        if (!v)
            return dg_set_error(g, DG_ERR_NOMEM, "run: out of memory for a %lld-byte arena",
                                (long long)l->arena_floats * (long long)sizeof(float));
        dg__free_floats(g->values);
        g->values = v;
        g->values_cap = l->arena_floats;
    }
    g->last_layout = l;
    unsigned mode = dg__fp_enter();
    s = execute(g, p, l);
    dg__fp_set(mode);
    return s;
}

dg_status dg_run(dg_graph *g, dg_node *target) { return dg_run_many(g, 1, &target); }

float dg_value(const dg_node *n) {
    if (!n) return NAN;
    if (n->numel != 1) {
        char sb[64];
        dg_set_error(n->graph, DG_ERR_SHAPE, "value: node %d has shape %s, not a single value",
                     n->id, dg_shape_str(n->shape, sb, sizeof sb));
        return NAN;
    }
    if (!n->has_value) {
        dg_set_error(n->graph, DG_ERR_STATE,
                     "value: node %d (op %s) holds no value (run it as a target first)", n->id,
                     dg_node_op_name(n));
        return NAN;
    }
    return n->value[0];
}

dg_status dg_graph_memory(const dg_graph *g, dg_memory_stats *out) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "graph_memory: graph is NULL");
    if (!out) return dg_set_error((dg_graph *)g, DG_ERR_NULL, "graph_memory: out is NULL");
    memset(out, 0, sizeof *out);
    for (int i = 0; i < g->n_nodes; i++) {
        const dg_node *x = g->nodes[i];
        size_t bytes = x->own ? (size_t)x->own_cap * sizeof(float) : 0;
        if (x->kind == DG_OP_NODE)
            out->kept_bytes += bytes;
        else
            out->leaf_bytes += bytes;
    }
    out->arena_bytes = (size_t)g->values_cap * sizeof(float);
    if (g->last_layout) {
        out->run_arena_bytes = (size_t)g->last_layout->arena_floats * sizeof(float);
        out->planned_bytes = (size_t)g->last_layout->planned_floats * sizeof(float);
    }
    return DG_OK;
}
