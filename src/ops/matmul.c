/* matmul: C = op(A) op(B) for 2-D A and B, where op optionally transposes. The transposed
 * forms are what the backward rule needs, so it never materialises a transpose:
 *   C = A B      dA = dC B^T        dB = A^T dC
 *   C = A^T B    dA = B dC^T        dB = A dC
 *   C = A B^T    dA = dC B          dB = dC^T A
 *   C = A^T B^T  dA = B^T dC^T      dB = dC^T A^T
 * The kernel (dg_gemm) lives in gemm.c. Consumers the planner fuses into a matmul (bias,
 * activation, relu_grad) run on each finished row panel of C inside the GEMM. */
#include "gemm_kernel.h"
#include "kernels.h"

#include <stddef.h>
#include <stdio.h>

/* Which operands are transposed. */
typedef struct matmul_attrs {
    int trans_a, trans_b;
} matmul_attrs;

static const dg_attr_field matmul_fields[] = {
    {"trans_a", DG_ATTR_INT, offsetof(matmul_attrs, trans_a), 1},
    {"trans_b", DG_ATTR_INT, offsetof(matmul_attrs, trans_b), 1},
    {NULL, DG_ATTR_INT, 0, 0}};

static dg_status matmul_rule(dg_node *const *in, int n_in, const void *attrs, dg_shape *out,
                             char *msg, size_t size) {
    (void)n_in;
    const matmul_attrs *a = attrs;
    dg_shape sa = dg_node_shape(in[0]), sb = dg_node_shape(in[1]);
    char s1[64], s2[64];
    if (sa.ndim != 2 || sb.ndim != 2) {
        snprintf(msg, size, "operands must be 2-D: %s x %s", dg_shape_str(sa, s1, sizeof s1),
                 dg_shape_str(sb, s2, sizeof s2));
        return DG_ERR_SHAPE;
    }
    int ta = a->trans_a, tb = a->trans_b;
    int64_t m = ta ? sa.dim[1] : sa.dim[0], ka = ta ? sa.dim[0] : sa.dim[1];
    int64_t kb = tb ? sb.dim[1] : sb.dim[0], n = tb ? sb.dim[0] : sb.dim[1];
    if (ka != kb) {
        snprintf(msg, size, "inner dimensions differ: %s%s x %s%s", dg_shape_str(sa, s1, sizeof s1),
                 ta ? "^T" : "", dg_shape_str(sb, s2, sizeof s2), tb ? "^T" : "");
        return DG_ERR_SHAPE;
    }
    *out = dg_shape2(m, n);
    return DG_OK;
}

/* Finished blocks of C, as flat ranges of the output (one range when whole rows). */
static void matmul_done(void *ctx, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    dg_node *self = ctx;
    int64_t n = self->shape.dim[1];
    if (j0 == 0 && j1 == n)
        dg_node_epilogue(self, i0 * n, i1 * n);
    else
        for (int64_t i = i0; i < i1; i++) dg_node_epilogue(self, i * n + j0, i * n + j1);
}

static void epilogue_rows(void *ctx, int64_t lo, int64_t hi) {
    matmul_done(ctx, lo, hi, 0, ((dg_node *)ctx)->shape.dim[1]);
}

static dg_status matmul_forward(dg_node *self) {
    dg_node *A = self->inputs[0], *B = self->inputs[1];
    const matmul_attrs *at = self->attrs;
    int ta = at->trans_a, tb = at->trans_b;
    int64_t m = self->shape.dim[0], n = self->shape.dim[1];
    int64_t k = ta ? A->shape.dim[0] : A->shape.dim[1];
    if (!dg_node_has_epilogue(self)) {
        dg_gemm(ta, tb, m, n, k, A->value, A->shape.dim[1], B->value, B->shape.dim[1], self->value,
                n, 0);
        return DG_OK;
    }
    /* paths that cannot report blocks (bf16, BLAS, k = 0): the fused consumers run after */
    if (!dg__gemm_done(ta, tb, m, n, k, A->value, A->shape.dim[1], B->value, B->shape.dim[1],
                       self->value, n, 0, matmul_done, self))
        dg_parallel_for(m, 8 * n, epilogue_rows, self);
    return DG_OK;
}

static dg_status matmul_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *A = self->inputs[0], *B = self->inputs[1];
    const matmul_attrs *at = self->attrs;
    int ta = at->trans_a, tb = at->trans_b;
    if (A->requires_grad) {
        dx[0] = ta ? dg_matmul_t(g, B, dy, tb, 1) : dg_matmul_t(g, dy, B, 0, !tb);
        if (!dx[0]) return dg_graph_status(g);
    }
    if (B->requires_grad) {
        dx[1] = tb ? dg_matmul_t(g, dy, A, 1, ta) : dg_matmul_t(g, A, dy, !ta, 0);
        if (!dx[1]) return dg_graph_status(g);
    }
    return DG_OK;
}

static const dg_op_def matmul_op = {.name = "matmul",
                                    .n_inputs = 2,
                                    .flags = DG_OP_EPILOGUE,
                                    .infer_shape = matmul_rule,
                                    .forward = matmul_forward,
                                    .backward = matmul_backward,
                                    .attr_fields = matmul_fields};

dg_node *dg_matmul_t(dg_graph *g, dg_node *a, dg_node *b, int trans_a, int trans_b) {
    matmul_attrs at = {trans_a != 0, trans_b != 0};
    return dg__apply2(g, &matmul_op, a, b, &at, sizeof at);
}

dg_node *dg_matmul(dg_graph *g, dg_node *a, dg_node *b) { return dg_matmul_t(g, a, b, 0, 0); }
