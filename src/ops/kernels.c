/* Shorthands and CPU checks shared by the op files. */
#include "kernels.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

dg_node *dg__apply1(dg_graph *g, const dg_op_def *op, dg_node *x, const void *attrs,
                    size_t attrs_size) {
    return dg_apply(g, op, 1, &x, attrs, attrs_size);
}

dg_node *dg__apply2(dg_graph *g, const dg_op_def *op, dg_node *x, dg_node *y, const void *attrs,
                    size_t attrs_size) {
    dg_node *in[2] = {x, y};
    return dg_apply(g, op, 2, in, attrs, attrs_size);
}

int dg__ops_use_avx512(void) {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    static atomic_int known = -1; /* every thread that finds it unset finds the same answer */
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        const char *env = getenv("DG_GEMM_KERNEL");
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && (!env || !strcmp(env, "avx512")) ? 1 : 0;
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v;
#else
    return 0;
#endif
}
