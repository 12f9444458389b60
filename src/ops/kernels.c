/* Parallel loops (fixed partitioning), reproducible parallel sums and broadcasting helpers
 * used by the op files. */
#include "kernels.h"

#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

void dg__parallel_for(int64_t n, int64_t cost, dg_range_fn fn, void *ctx) {
    if (n <= 0) return;
    int nt = dg__threads_for(n * (cost > 0 ? cost : 1));
    if (nt > n) nt = (int)n;
    if (nt <= 1) {
        fn(ctx, 0, n);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), team = omp_get_num_threads();
        int64_t lo = n * t / team, hi = n * (t + 1) / team;
        if (hi > lo) fn(ctx, lo, hi);
    }
#else
    fn(ctx, 0, n);
#endif
}

#define SUM_MAX_BLOCKS 256

typedef struct {
    dg_sum_fn fn;
    void *ctx;
    int64_t n, block;
    double *partial;
} psum_ctx;

static void psum_range(void *ctx, int64_t lo, int64_t hi) {
    psum_ctx *c = ctx;
    for (int64_t b = lo; b < hi; b++) {
        int64_t s = b * c->block, e = s + c->block < c->n ? s + c->block : c->n;
        c->partial[b] = c->fn(c->ctx, s, e);
    }
}

double dg__parallel_sum(int64_t n, int64_t cost, dg_sum_fn fn, void *ctx) {
    if (n <= 0) return 0.0;
    if (cost < 1) cost = 1;
    /* ~16k elementary operations per block: below dg__threads_for's threshold, so small
     * inputs stay one sequential pass */
    int64_t block = 16384 / cost > 0 ? 16384 / cost : 1;
    if (n <= block) return fn(ctx, 0, n);
    if ((n + block - 1) / block > SUM_MAX_BLOCKS) block = (n + SUM_MAX_BLOCKS - 1) / SUM_MAX_BLOCKS;
    int64_t blocks = (n + block - 1) / block;
    double partial[SUM_MAX_BLOCKS];
    psum_ctx c = {fn, ctx, n, block, partial};
    dg__parallel_for(blocks, block * cost, psum_range, &c);
    double acc = 0.0;
    for (int64_t b = 0; b < blocks; b++) acc += partial[b];
    return acc;
}

void dg__shape_pad4(dg_shape s, int64_t out[4]) {
    int pad = 4 - s.ndim;
    for (int i = 0; i < 4; i++) out[i] = i < pad ? 1 : s.dim[i - pad];
}

void dg__bcast_strides(dg_shape s, const int64_t to[4], int64_t strides[4]) {
    int64_t d[4];
    dg__shape_pad4(s, d);
    int64_t st = 1;
    for (int i = 3; i >= 0; i--) {
        strides[i] = (d[i] == 1 && to[i] != 1) ? 0 : st;
        st *= d[i];
    }
}

dg_status dg__broadcast_shapes(dg_shape a, dg_shape b, dg_shape *out, char *msg, size_t size) {
    int nd = a.ndim > b.ndim ? a.ndim : b.ndim;
    int64_t da[4], db[4];
    dg__shape_pad4(a, da);
    dg__shape_pad4(b, db);
    dg_shape r = dg_shape0();
    r.ndim = nd;
    for (int i = 0; i < nd; i++) {
        int k = 4 - nd + i;
        if (da[k] != db[k] && da[k] != 1 && db[k] != 1) {
            char sa[64], sb[64];
            snprintf(msg, size, "shapes do not broadcast: %s and %s (axis %d: %lld vs %lld)",
                     dg_shape_str(a, sa, sizeof sa), dg_shape_str(b, sb, sizeof sb), i,
                     (long long)da[k], (long long)db[k]);
            return DG_ERR_SHAPE;
        }
        r.dim[i] = da[k] > db[k] ? da[k] : db[k];
    }
    *out = r;
    return DG_OK;
}

dg_status dg__same_shape_as_input(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                                  size_t size) {
    (void)a, (void)msg, (void)size;
    *out = dg_node_shape(in[0]);
    return DG_OK;
}

dg_node *dg__apply1(dg_graph *g, const dg_op_def *op, dg_node *x, const dg_attrs *a) {
    return dg_apply(g, op, 1, &x, a);
}

dg_node *dg__apply2(dg_graph *g, const dg_op_def *op, dg_node *x, dg_node *y, const dg_attrs *a) {
    dg_node *in[2] = {x, y};
    return dg_apply(g, op, 2, in, a);
}
