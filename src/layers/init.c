/* Weight initialisers. Every random number comes from the graph's seeded generator
 * (dg_graph_rand_uniform), drawn in element order, so the same seed fills the same values
 * bit for bit. Bounds and deviations from the fans:
 *   Xavier/Glorot uniform  U(-l, l), l = sqrt(6 / (fan_in + fan_out))
 *   Xavier/Glorot normal   N(0, s),  s = sqrt(2 / (fan_in + fan_out))
 *   He/Kaiming uniform     U(-l, l), l = sqrt(6 / fan_in)
 *   He/Kaiming normal      N(0, s),  s = sqrt(2 / fan_in)
 * Normal samples use the Box-Muller transform: with u1 in (0,1] and u2 in [0,1),
 * r = sqrt(-2 ln u1) gives the pair r cos(2 pi u2), r sin(2 pi u2), both N(0,1). */
#include "layer_internal.h"

#include <math.h>

static const double two_pi = 6.283185307179586476925;

static void fill_uniform(dg_graph *g, float *d, int64_t n, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) d[i] = (float)(lo + (hi - lo) * dg_graph_rand_uniform(g));
}

static void fill_normal(dg_graph *g, float *d, int64_t n, double mean, double std) {
    for (int64_t i = 0; i < n; i += 2) {
        /* 1 - u is in (0, 1], so the logarithm is finite */
        double u1 = 1.0 - (double)dg_graph_rand_uniform(g);
        double u2 = (double)dg_graph_rand_uniform(g);
        double r = sqrt(-2.0 * log(u1));
        d[i] = (float)(mean + std * r * cos(two_pi * u2));
        if (i + 1 < n) d[i + 1] = (float)(mean + std * r * sin(two_pi * u2));
    }
}

dg_status dg_init_fill(dg_node *param, dg_init init, int64_t fan_in, int64_t fan_out) {
    if (!param) return dg_set_error(NULL, DG_ERR_NULL, "init_fill: node is NULL");
    dg_graph *g = dg_node_graph(param);
    if (dg_node_kind_of(param) == DG_OP_NODE)
        return dg_set_error(g, DG_ERR_ARG,
                            "init_fill: node %d (op %s) is computed; only leaves can be "
                            "initialised",
                            dg_node_id(param), dg_node_op_name(param));
    if ((int)init.kind < (int)DG_INIT_ZEROS || (int)init.kind > (int)DG_INIT_HE_NORMAL)
        return dg_set_error(g, DG_ERR_ARG, "init_fill: unknown initialiser kind %d",
                            (int)init.kind);
    int needs_in = init.kind >= DG_INIT_XAVIER_UNIFORM;
    int needs_out = init.kind == DG_INIT_XAVIER_UNIFORM || init.kind == DG_INIT_XAVIER_NORMAL;
    if ((needs_in && fan_in < 1) || (needs_out && fan_out < 1))
        return dg_set_error(g, DG_ERR_ARG,
                            "init_fill: fan_in %lld and fan_out %lld must be >= 1 for this "
                            "initialiser",
                            (long long)fan_in, (long long)fan_out);
    if (!isfinite(init.a) || !isfinite(init.b))
        return dg_set_error(g, DG_ERR_ARG, "init_fill: parameters a=%g, b=%g must be finite",
                            (double)init.a, (double)init.b);
    float *d = dg_node_data(param);
    int64_t n = dg_node_numel(param);
    double fans = (double)fan_in + (double)fan_out;
    switch (init.kind) {
    case DG_INIT_ZEROS:
        for (int64_t i = 0; i < n; i++) d[i] = 0.0f;
        break;
    case DG_INIT_CONSTANT:
        for (int64_t i = 0; i < n; i++) d[i] = init.a;
        break;
    case DG_INIT_UNIFORM:
        if (init.b < init.a)
            return dg_set_error(g, DG_ERR_ARG, "init_fill: uniform bounds reversed: U(%g, %g)",
                                (double)init.a, (double)init.b);
        fill_uniform(g, d, n, init.a, init.b);
        break;
    case DG_INIT_NORMAL:
        if (init.b < 0)
            return dg_set_error(g, DG_ERR_ARG, "init_fill: normal std %g is negative",
                                (double)init.b);
        fill_normal(g, d, n, init.a, init.b);
        break;
    case DG_INIT_XAVIER_UNIFORM: {
        double l = sqrt(6.0 / fans);
        fill_uniform(g, d, n, -l, l);
        break;
    }
    case DG_INIT_XAVIER_NORMAL: fill_normal(g, d, n, 0.0, sqrt(2.0 / fans)); break;
    case DG_INIT_HE_UNIFORM: {
        double l = sqrt(6.0 / (double)fan_in);
        fill_uniform(g, d, n, -l, l);
        break;
    }
    case DG_INIT_HE_NORMAL: fill_normal(g, d, n, 0.0, sqrt(2.0 / (double)fan_in)); break;
    default:
        return dg_set_error(g, DG_ERR_ARG, "init_fill: unknown initialiser kind %d",
                            (int)init.kind);
    }
    /* marks an input as fed: its values are now defined */
    return dg_feed(param, d, n);
}
