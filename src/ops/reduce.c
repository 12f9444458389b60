/* Reductions and their mirror images, and the size of a tensor as a value.
 *   sum_to (x; shape):       y = x summed over the axes where `shape` is 1    dx =
 * broadcast_like(dy, x) broadcast_to (x; shape): y = x repeated along its size-1 axes dx =
 * sum_to_like(dy, x) sum_to_like / broadcast_like: the same with the shape of a reference node
 * (read for its shape only), so they follow a run's batch size; they are the engine's primitives
 * sum_like and expand_like sum_axis (x; axis, keep): y = x summed over one axis dx =
 * expand_axis(dy, x) expand_axis (d, x; axis, keep): y = d repeated along that axis of x       dx =
 * sum_axis(dy) numel_of (x), dim_of (x; axis): the element count or one dimension of x's current
 * shape, as a scalar computed at run time (no gradient) sum and mean are built from them: mean =
 * sum / numel_of(x), so the divisor is the run's. Summation order is fixed, so results do not
 * depend on the thread count. */
#include "kernels.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- sum_to and broadcast_to with a fixed target shape ---- */

typedef struct shape_attrs {
    dg_shape shape;
} shape_attrs;

static const dg_attr_field shape_fields[] = {
    {"shape", DG_ATTR_SHAPE, offsetof(shape_attrs, shape), 1}, {NULL, DG_ATTR_INT, 0, 0}};

static dg_status sum_to_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                             size_t size) {
    (void)n;
    const shape_attrs *a = attrs;
    dg_status s = dg__check_broadcastable(a->shape, dg_node_shape(in[0]), msg, size);
    if (s == DG_OK) *out = a->shape;
    return s;
}

static dg_status broadcast_to_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                                   char *msg, size_t size) {
    (void)n;
    const shape_attrs *a = attrs;
    if (dg_shape_numel(a->shape) < 0) {
        char sb[64];
        snprintf(msg, size, "invalid target shape %s", dg_shape_str(a->shape, sb, sizeof sb));
        return DG_ERR_SHAPE;
    }
    dg_status s = dg__check_broadcastable(dg_node_shape(in[0]), a->shape, msg, size);
    if (s == DG_OK) *out = a->shape;
    return s;
}

static dg_status sum_to_forward(dg_node *self) {
    dg_kernel_sum_to(self->inputs[0]->value, self->inputs[0]->shape, self->value, self->shape);
    return DG_OK;
}

static dg_status broadcast_to_forward(dg_node *self) {
    dg_kernel_broadcast(self->inputs[0]->value, self->inputs[0]->shape, self->value, self->shape);
    return DG_OK;
}

static dg_status sum_to_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg_broadcast_like(g, dy, self->inputs[0]);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static dg_status broadcast_to_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg_sum_to_like(g, dy, self->inputs[0]);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def sum_to_op = {.name = "sum_to",
                                    .n_inputs = 1,
                                    .infer_shape = sum_to_rule,
                                    .forward = sum_to_forward,
                                    .backward = sum_to_backward,
                                    .attr_fields = shape_fields};

static const dg_op_def broadcast_to_op = {.name = "broadcast_to",
                                          .n_inputs = 1,
                                          .infer_shape = broadcast_to_rule,
                                          .forward = broadcast_to_forward,
                                          .backward = broadcast_to_backward,
                                          .attr_fields = shape_fields};

dg_node *dg_sum_to(dg_graph *g, dg_node *x, dg_shape shape) {
    shape_attrs a = {shape};
    return dg__apply1(g, &sum_to_op, x, &a, sizeof a);
}

dg_node *dg_broadcast_to(dg_graph *g, dg_node *x, dg_shape shape) {
    shape_attrs a = {shape};
    return dg__apply1(g, &broadcast_to_op, x, &a, sizeof a);
}

dg_node *dg_sum_to_like(dg_graph *g, dg_node *x, dg_node *like) { return dg__sum_like(g, x, like); }

dg_node *dg_broadcast_like(dg_graph *g, dg_node *x, dg_node *like) {
    return dg__expand_like(g, x, like);
}

dg_node *dg_sum(dg_graph *g, dg_node *x) { return dg_sum_to(g, x, dg_shape0()); }

/* ---- sum over one axis, and its mirror ---- */

typedef struct axis_attrs {
    int axis; /* resolved, 0 .. rank-1 */
    int keepdims;
} axis_attrs;

static const dg_attr_field axis_fields[] = {
    {"axis", DG_ATTR_INT, offsetof(axis_attrs, axis), 1},
    {"keepdims", DG_ATTR_INT, offsetof(axis_attrs, keepdims), 1},
    {NULL, DG_ATTR_INT, 0, 0}};

/* x's shape with the axis set to 1 (keepdims) or removed. */
static dg_shape reduced_shape(dg_shape x, const axis_attrs *a) {
    dg_shape r = x;
    r.dim[a->axis] = 1;
    if (!a->keepdims) {
        for (int i = a->axis; i + 1 < x.ndim; i++) r.dim[i] = x.dim[i + 1];
        r.dim[x.ndim - 1] = 1;
        r.ndim--;
    }
    return r;
}

static dg_status axis_check(dg_shape x, const axis_attrs *a, char *msg, size_t size) {
    if (a->axis >= 0 && a->axis < x.ndim) return DG_OK;
    char sb[64];
    snprintf(msg, size, "axis %d is out of range for shape %s", a->axis,
             dg_shape_str(x, sb, sizeof sb));
    return DG_ERR_ARG;
}

static dg_status sum_axis_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                               char *msg, size_t size) {
    (void)n;
    dg_status s = axis_check(in[0]->shape, attrs, msg, size);
    if (s == DG_OK) *out = reduced_shape(in[0]->shape, attrs);
    return s;
}

/* inputs: the reduced gradient, and x (shape only) whose shape the output takes */
static dg_status expand_axis_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out,
                                  char *msg, size_t size) {
    (void)n;
    dg_status s = axis_check(in[1]->shape, attrs, msg, size);
    if (s != DG_OK) return s;
    dg_shape want = reduced_shape(in[1]->shape, attrs);
    if (!dg_shape_equal(in[0]->shape, want)) {
        char s0[64], s1[64];
        snprintf(msg, size, "%s is not %s reduced over axis %d",
                 dg_shape_str(in[0]->shape, s0, sizeof s0),
                 dg_shape_str(in[1]->shape, s1, sizeof s1), ((const axis_attrs *)attrs)->axis);
        return DG_ERR_SHAPE;
    }
    *out = in[1]->shape;
    return DG_OK;
}

static dg_status sum_axis_forward(dg_node *self) {
    axis_attrs keep = *(const axis_attrs *)self->attrs;
    keep.keepdims = 1;
    dg_node *x = self->inputs[0];
    dg_kernel_sum_to(x->value, x->shape, self->value, reduced_shape(x->shape, &keep));
    return DG_OK;
}

static dg_status expand_axis_forward(dg_node *self) {
    axis_attrs keep = *(const axis_attrs *)self->attrs;
    keep.keepdims = 1;
    dg_kernel_broadcast(self->inputs[0]->value, reduced_shape(self->shape, &keep), self->value,
                        self->shape);
    return DG_OK;
}

static dg_node *expand_axis(dg_graph *g, dg_node *d, dg_node *like, const axis_attrs *a);
static dg_status expand_axis_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx);

static dg_status sum_axis_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = expand_axis(g, dy, self->inputs[0], self->attrs);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static const dg_op_def sum_axis_op = {.name = "sum_axis",
                                      .n_inputs = 1,
                                      .infer_shape = sum_axis_rule,
                                      .forward = sum_axis_forward,
                                      .backward = sum_axis_backward,
                                      .attr_fields = axis_fields};

static const dg_op_def expand_axis_op = {.name = "expand_axis",
                                         .n_inputs = 2,
                                         .shape_only = 1u << 1,
                                         .infer_shape = expand_axis_rule,
                                         .forward = expand_axis_forward,
                                         .backward = expand_axis_backward,
                                         .attr_fields = axis_fields};

static dg_node *expand_axis(dg_graph *g, dg_node *d, dg_node *like, const axis_attrs *a) {
    dg_node *in[2] = {d, like};
    return dg_apply(g, &expand_axis_op, 2, in, a, sizeof *a);
}

static dg_status expand_axis_backward(dg_graph *g, dg_node *self, dg_node *dy, dg_node **dx) {
    dx[0] = dg__apply1(g, &sum_axis_op, dy, self->attrs, sizeof(axis_attrs));
    return dx[0] ? DG_OK : dg_graph_status(g);
}

/* The axis counted from the end when negative, or -1 with the error set. */
static int resolve_axis(dg_graph *g, const char *who, dg_node *x, int axis) {
    int nd = dg_node_shape(x).ndim;
    int ax = axis < 0 ? axis + nd : axis;
    if (ax < 0 || ax >= nd) {
        char sb[64];
        dg_set_error(g, DG_ERR_ARG, "%s: axis %d is out of range for shape %s", who, axis,
                     dg_shape_str(dg_node_shape(x), sb, sizeof sb));
        return -1;
    }
    return ax;
}

/* A NULL input: the error keeps an earlier failure's message as its cause. */
static dg_node *null_input(dg_graph *g, const char *who) {
    if (dg_graph_status(g) != DG_OK && dg_graph_error(g)[0])
        dg_set_error(g, dg_graph_status(g), "%s: input 0 is NULL (after: %.400s)", who,
                     dg_graph_error(g));
    else
        dg_set_error(g, DG_ERR_NULL, "%s: input 0 is NULL", who);
    return NULL;
}

static dg_node *sum_axis(dg_graph *g, const char *who, dg_node *x, int axis, int keepdims) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "%s: graph is NULL", who), NULL;
    if (!x) return null_input(g, who);
    int ax = resolve_axis(g, who, x, axis);
    if (ax < 0) return NULL;
    axis_attrs a = {ax, keepdims != 0};
    return dg__apply1(g, &sum_axis_op, x, &a, sizeof a);
}

dg_node *dg_sum_axis(dg_graph *g, dg_node *x, int axis, int keepdims) {
    return sum_axis(g, "sum_axis", x, axis, keepdims);
}

/* ---- sizes as values ---- */

typedef struct size_attrs {
    int axis; /* -1: all elements */
} size_attrs;

static const dg_attr_field size_fields[] = {{"axis", DG_ATTR_INT, offsetof(size_attrs, axis), 1},
                                            {NULL, DG_ATTR_INT, 0, 0}};

static dg_status scalar_rule(dg_node *const *in, int n, const void *attrs, dg_shape *out, char *msg,
                             size_t size) {
    (void)n;
    const size_attrs *a = attrs;
    if (a->axis >= in[0]->shape.ndim) {
        char sb[64];
        snprintf(msg, size, "axis %d is out of range for shape %s", a->axis,
                 dg_shape_str(in[0]->shape, sb, sizeof sb));
        return DG_ERR_ARG;
    }
    *out = dg_shape0();
    return DG_OK;
}

static dg_status size_forward(dg_node *self) {
    const size_attrs *a = self->attrs;
    dg_node *x = self->inputs[0];
    self->value[0] = (float)(a->axis < 0 ? x->numel : x->shape.dim[a->axis]);
    return DG_OK;
}

static const dg_op_def numel_of_op = {.name = "numel_of",
                                      .n_inputs = 1,
                                      .flags = DG_OP_NO_GRAD,
                                      .shape_only = 1u << 0,
                                      .infer_shape = scalar_rule,
                                      .forward = size_forward};

static const dg_op_def dim_of_op = {.name = "dim_of",
                                    .n_inputs = 1,
                                    .flags = DG_OP_NO_GRAD,
                                    .shape_only = 1u << 0,
                                    .infer_shape = scalar_rule,
                                    .forward = size_forward,
                                    .attr_fields = size_fields};

dg_node *dg_numel_of(dg_graph *g, dg_node *x) {
    size_attrs a = {-1};
    return dg__apply1(g, &numel_of_op, x, &a, sizeof a);
}

dg_node *dg_dim_of(dg_graph *g, dg_node *x, int axis) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "dim_of: graph is NULL"), NULL;
    if (!x) return null_input(g, "dim_of");
    int ax = resolve_axis(g, "dim_of", x, axis);
    if (ax < 0) return NULL;
    size_attrs a = {ax};
    return dg__apply1(g, &dim_of_op, x, &a, sizeof a);
}

/* ---- means ---- */

dg_node *dg_mean(dg_graph *g, dg_node *x) { return dg_div(g, dg_sum(g, x), dg_numel_of(g, x)); }

dg_node *dg_mean_axis(dg_graph *g, dg_node *x, int axis, int keepdims) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "mean_axis: graph is NULL"), NULL;
    dg_node *s = sum_axis(g, "mean_axis", x, axis, keepdims);
    return s ? dg_div(g, s, dg_dim_of(g, x, axis)) : NULL;
}
