/* Shorthands shared by the op files. */
#include "kernels.h"

dg_node *dg__apply1(dg_graph *g, const dg_op_def *op, dg_node *x, const void *attrs,
                    size_t attrs_size) {
    return dg_apply(g, op, 1, &x, attrs, attrs_size);
}

dg_node *dg__apply2(dg_graph *g, const dg_op_def *op, dg_node *x, dg_node *y, const void *attrs,
                    size_t attrs_size) {
    dg_node *in[2] = {x, y};
    return dg_apply(g, op, 2, in, attrs, attrs_size);
}
