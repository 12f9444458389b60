/* The custom-op page's program (docs/CUSTOM_OPS.md): two user-defined ops built on
 * dg_op_def and dg_apply, exactly as the built-in ones are.
 *
 *   swish(x; beta) = x sigmoid(beta x)                 (elementwise, one attribute)
 *       d/dx = s + beta x s (1 - s),  s = sigmoid(beta x)
 *   rowdot(a, b)[i] = sum_k a[i,k] b[i,k]              (a, b [N,K] -> [N])
 *       d/da = dy[:,None] * b,  d/db = dy[:,None] * a
 *
 * Each backward is built from graph ops, so dg_gradcheck can compare it with finite
 * differences, and it can be differentiated again: the program checks the second
 * derivative of swish the same way. Exits with status 1 if any check fails. */
#include "dagrad.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- swish ---- */

/* The op's attributes: any struct; dg_apply copies it into the node. */
typedef struct swish_attrs {
    float beta;
} swish_attrs;

/* Shape rule: the output has the input's shape. */
static dg_status swish_shape(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                             size_t msg_size) {
    (void)n, (void)attrs, (void)msg, (void)msg_size;
    *out = dg_node_shape(in[0]);
    return DG_OK;
}

/* What each thread of the forward kernel needs: input, output, beta. */
typedef struct swish_job {
    const float *x;
    float *y;
    float beta;
} swish_job;

static void swish_range(void *ctx, int64_t lo, int64_t hi) {
    const swish_job *j = ctx;
    for (int64_t i = lo; i < hi; i++) j->y[i] = j->x[i] / (1.0f + expf(-j->beta * j->x[i]));
}

/* Forward kernel: reads the input's values, writes the node's own; large tensors are
 * split over the library's threads. */
static dg_status swish_forward(dg_node *self) {
    const swish_attrs *a = dg_node_attrs(self);
    swish_job job = {dg_node_data(dg_node_input(self, 0)), dg_node_data(self), a->beta};
    dg_parallel_for(dg_node_numel(self), 20, swish_range, &job);
    return DG_OK;
}

/* Fusion: swish is elementwise in its input, so it can run inside the matrix product that
 * makes that input, on each finished block, instead of as a pass of its own. */
static int swish_fusable(const dg_node *self, int k) {
    (void)self; /* elementwise in its one input, whatever the shapes */
    return k == 0;
}
static void swish_part(dg_node *self, int64_t lo, int64_t hi) {
    const swish_attrs *a = dg_node_attrs(self);
    swish_job job = {dg_node_data(dg_node_input(self, 0)), dg_node_data(self), a->beta};
    swish_range(&job, lo, hi);
}

/* Backward: dx = dy (s + beta x s (1 - s)), built from graph ops. */
static dg_status swish_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *x = dg_node_input(self, 0);
    float beta = ((const swish_attrs *)dg_node_attrs(self))->beta;
    dg_node *s = dg_sigmoid(g, dg_scale(g, x, beta));
    dg_node *one_minus_s = dg_shift(g, dg_neg(g, s), 1.0f);
    dg_node *slope = dg_add(g, s, dg_scale(g, dg_mul(g, x, dg_mul(g, s, one_minus_s)), beta));
    dx[0] = dg_mul(g, dy, slope);
    return dx[0] ? DG_OK : dg_graph_status(g); /* a NULL anywhere above gives a NULL here */
}

static const dg_op_def swish_op = {
    .name = "swish",
    .n_inputs = 1,
    .flags = DG_OP_INPLACE, /* y[i] reads only x[i]: y may reuse x's memory */
    .infer_shape = swish_shape,
    .forward = swish_forward,
    .backward = swish_backward,
    .fusable = swish_fusable,
    .forward_range = swish_part,
};

/* The public face of the op: one call, like dg_tanh. */
static dg_node *my_swish(dg_graph *g, dg_node *x, float beta) {
    swish_attrs attrs = {beta};
    return dg_apply(g, &swish_op, 1, &x, &attrs, sizeof attrs);
}

/* ---- rowdot ---- */

/* Shape rule: a and b both [N,K]; the output is [N]. The message gets the op's name in
 * front: "rowdot: shapes differ: [4,3] vs [4,2]". */
static dg_status rowdot_shape(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                              char *msg, size_t msg_size) {
    (void)n, (void)attrs;
    dg_shape a = dg_node_shape(in[0]), b = dg_node_shape(in[1]);
    char sa[64], sb[64];
    if (a.ndim != 2 || !dg_shape_equal(a, b)) {
        snprintf(msg, msg_size, "%s: %s vs %s", a.ndim != 2 ? "a must be [N,K]" : "shapes differ",
                 dg_shape_str(a, sa, sizeof sa), dg_shape_str(b, sb, sizeof sb));
        return DG_ERR_SHAPE;
    }
    *out = dg_shape1(a.dim[0]);
    return DG_OK;
}

static dg_status rowdot_forward(dg_node *self) {
    dg_node *an = dg_node_input(self, 0);
    const float *a = dg_node_data(an), *b = dg_node_data(dg_node_input(self, 1));
    int64_t n = dg_node_shape(an).dim[0], k = dg_node_shape(an).dim[1];
    float *y = dg_node_data(self);
    for (int64_t i = 0; i < n; i++) {
        double sum = 0; /* accumulate in double, as the built-in reductions do */
        for (int64_t j = 0; j < k; j++) sum += (double)a[i * k + j] * b[i * k + j];
        y[i] = (float)sum;
    }
    return DG_OK;
}

/* dy is [N]; as a column [N,1] it broadcasts against b [N,K]. Only inputs that need a
 * gradient get one. -1 lets N follow the batch size of each run. */
static dg_status rowdot_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dg_node *a = dg_node_input(self, 0), *b = dg_node_input(self, 1);
    dg_node *col = dg_reshape(g, dy, dg_shape2(-1, 1));
    if (dg_node_requires_grad(a) && !(dx[0] = dg_mul(g, col, b))) return dg_graph_status(g);
    if (dg_node_requires_grad(b) && !(dx[1] = dg_mul(g, col, a))) return dg_graph_status(g);
    return DG_OK;
}

static const dg_op_def rowdot_op = {.name = "rowdot",
                                    .n_inputs = 2,
                                    .infer_shape = rowdot_shape,
                                    .forward = rowdot_forward,
                                    .backward = rowdot_backward};

static dg_node *my_rowdot(dg_graph *g, dg_node *a, dg_node *b) {
    dg_node *in[2] = {a, b};
    return dg_apply(g, &rowdot_op, 2, in, NULL, 0);
}

/* ---- checks ---- */

static int report(const char *what, dg_graph *g, dg_status s, const dg_gradcheck_report *r) {
    if (s != DG_OK) {
        printf("%s: %s\n", what, dg_graph_error(g));
        return 0;
    }
    printf("%-22s %s: %lld elements, max abs error %.2e, max rel error %.2e\n", what,
           r->passed ? "passed" : "FAILED", (long long)r->checked, r->max_abs_err, r->max_rel_err);
    return r->passed;
}

int main(void) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_param(g, "x", dg_shape2(4, 3));
    dg_node *a = dg_param(g, "a", dg_shape2(4, 3));
    dg_node *b = dg_input(g, "b", dg_shape2(4, 3));
    dg_set_requires_grad(b, 1); /* an input needs this before the nodes that use it */
    dg_init uniform = {DG_INIT_UNIFORM, -2.0f, 2.0f};
    dg_init_fill(x, uniform, 1, 1);
    dg_init_fill(a, uniform, 1, 1);
    dg_init_fill(b, uniform, 1, 1); /* also counts as feeding b */

    /* A scalar that uses both ops: loss = sum(rowdot(swish(x), a) * rowdot(a, b)). */
    dg_node *u = my_rowdot(g, my_swish(g, x, 1.5f), a);
    dg_node *loss = dg_sum(g, dg_mul(g, u, my_rowdot(g, a, b)));
    if (!loss) {
        printf("building: %s\n", dg_graph_error(g));
        return 1;
    }

    /* First derivatives against central differences (float32 runs, so the tolerances are
     * loose): every element of x, a and b. */
    int ok = 1;
    dg_gradcheck_report r;
    dg_node *leaves[3] = {x, a, b};
    dg_status s = dg_gradcheck(g, loss, 3, leaves, 1e-2, 1e-3, 1e-2, &r);
    ok &= report("gradient", g, s, &r);

    /* Second derivatives: with v fixed, hv = d/dx sum(dL/dx * v) is a Hessian-vector
     * product. Checking the scalar sum(dL/dx * v) against finite differences checks the
     * backward of swish's backward. */
    if (dg_backward(g, loss) != DG_OK) return 1;
    dg_node *v = dg_const(g, "v", dg_shape2(4, 3), NULL, 0.5f);
    dg_node *gv = dg_sum(g, dg_mul(g, dg_grad(x), v));
    s = dg_gradcheck(g, gv, 1, &x, 1e-2, 1e-3, 1e-2, &r);
    ok &= report("second derivative", g, s, &r);

    /* A shape error names the op and both shapes; the graph stays usable. */
    dg_node *bad = my_rowdot(g, x, dg_param(g, "c", dg_shape2(4, 2)));
    printf("error: %s (%s)\n", dg_graph_error(g), dg_status_name(dg_graph_status(g)));
    ok &= bad == NULL && dg_graph_status(g) == DG_ERR_SHAPE;
    ok &= dg_run(g, loss) == DG_OK;

    /* swish(a b^T) runs fused into the product, with the same values as unfused */
    dg_node *y = my_swish(g, dg_matmul_t(g, a, b, 0, 1), 1.5f);
    float fused[16], unfused[16];
    ok &= dg_run(g, y) == DG_OK && dg_graph_fused_nodes(g) == 1;
    ok &= dg_read(y, fused, 16) == DG_OK;
    dg_set_fusion(g, 0);
    ok &= dg_run(g, y) == DG_OK && dg_graph_fused_nodes(g) == 0;
    ok &= dg_read(y, unfused, 16) == DG_OK && memcmp(fused, unfused, sizeof fused) == 0;
    printf("fusion: swish ran inside the matmul, same values: %s\n", ok ? "yes" : "no");

    dg_graph_free(g);
    return ok ? 0 : 1;
}
