/* Op attributes read by name (dg_op_def.attr_fields, dg_node_attr_*): the built-in ops an
 * exporter needs publish their parameters, a custom op can publish its own, and every misuse
 * (unknown name, wrong type, index out of range, a leaf, a field list that claims more bytes
 * than the node holds) is an error with a message, never a read outside the node. */
#include "test_util.h"

#include <stddef.h>
#include <string.h>

typedef struct box_attrs {
    int64_t size[2];
    float gain;
} box_attrs;

static dg_status box_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                          size_t size) {
    return dg_rule_same_shape(in, n, a, out, msg, size);
}
static dg_status box_forward(dg_node *self) {
    (void)self;
    return DG_OK;
}

static const dg_attr_field box_fields[] = {
    {"size", DG_ATTR_INT64, offsetof(box_attrs, size), 2},
    {"gain", DG_ATTR_FLOAT, offsetof(box_attrs, gain), 0}, /* count 0 reads as 1 */
    {NULL, DG_ATTR_INT, 0, 0}};
static const dg_op_def box_op = {.name = "box",
                                 .n_inputs = 1,
                                 .infer_shape = box_rule,
                                 .forward = box_forward,
                                 .attr_fields = box_fields};

/* A list that claims a field past the end of what its nodes hold. */
static const dg_attr_field liar_fields[] = {{"far", DG_ATTR_FLOAT, 64, 1},
                                            {NULL, DG_ATTR_INT, 0, 0}};
static const dg_op_def liar_op = {.name = "liar",
                                  .n_inputs = 1,
                                  .infer_shape = box_rule,
                                  .forward = box_forward,
                                  .attr_fields = liar_fields};

int main(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *a = dg_input(g, "a", dg_shape2(3, 4));
    dg_node *b = dg_input(g, "b", dg_shape2(5, 4));
    int64_t v = -1;
    float f = 0;
    dg_shape s;

    /* built-in ops */
    dg_node *mm = dg_matmul_t(g, a, b, 0, 1);
    CHECK_OK(dg_node_attr_int(mm, "trans_a", 0, &v));
    CHECK(v == 0);
    CHECK_OK(dg_node_attr_int(mm, "trans_b", 0, &v));
    CHECK(v == 1);
    CHECK_OK(dg_node_attr_float(dg_leaky_relu(g, a, 0.25f), "slope", 0, &f));
    CHECK(f == 0.25f);
    CHECK_OK(dg_node_attr_float(dg_scale(g, a, -3.0f), "factor", 0, &f));
    CHECK(f == -3.0f);
    CHECK_OK(dg_node_attr_float(dg_shift(g, a, 0.5f), "offset", 0, &f));
    CHECK(f == 0.5f);
    CHECK_OK(dg_node_attr_float(dg_pow(g, a, 3.0f), "exponent", 0, &f));
    CHECK(f == 3.0f);
    dg_node *r = dg_reshape(g, a, dg_shape2(-1, 6));
    CHECK_OK(dg_node_attr_shape(r, "shape", &s));
    CHECK(s.ndim == 2 && s.dim[0] == -1 && s.dim[1] == 6);
    dg_node *sa = dg_sum_axis(g, a, -1, 1);
    CHECK_OK(dg_node_attr_int(sa, "axis", 0, &v));
    CHECK(v == 1);
    CHECK_OK(dg_node_attr_int(sa, "keepdims", 0, &v));
    CHECK(v == 1);
    dg_node *drop = dg_dropout(g, "drop", a, 0.3f);
    CHECK_OK(dg_node_attr_float(dg_dropout_mask(drop), "rate", 0, &f));
    CHECK(f == 0.3f);
    CHECK(dg_node_attr_field(mm, "trans_b") != NULL);
    CHECK(dg_node_attr_field(dg_relu(g, a), "slope") == NULL); /* relu has no parameter */
    CHECK(dg_node_attr_field(a, "shape") == NULL);             /* leaves have none */

    /* a custom op's own fields */
    box_attrs ba = {{7, 9}, 1.5f};
    dg_node *box = dg_apply(g, &box_op, 1, &a, &ba, sizeof ba);
    CHECK_OK(dg_node_attr_int(box, "size", 1, &v));
    CHECK(v == 9);
    CHECK_OK(dg_node_attr_float(box, "gain", 0, &f));
    CHECK(f == 1.5f);

    /* misuse: a status and a message naming node, op and attribute; *out untouched */
    v = 42;
    CHECK(dg_node_attr_int(mm, "alpha", 0, &v) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "(matmul) has no attribute 'alpha'") != NULL, "%s",
              dg_graph_error(g));
    CHECK(dg_node_attr_float(mm, "trans_a", 0, &f) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "'trans_a'") && strstr(dg_graph_error(g), "not a float"),
              "%s", dg_graph_error(g));
    CHECK(dg_node_attr_int(box, "size", 2, &v) == DG_ERR_ARG);
    CHECK_MSG(strstr(dg_graph_error(g), "index 2 is out of range"), "%s", dg_graph_error(g));
    CHECK(dg_node_attr_int(box, "size", -1, &v) == DG_ERR_ARG);
    CHECK(dg_node_attr_shape(a, "shape", &s) == DG_ERR_ARG);
    CHECK(v == 42);
    CHECK(dg_node_attr_int(NULL, "x", 0, &v) == DG_ERR_NULL);
    CHECK(dg_node_attr_int(mm, NULL, 0, &v) == DG_ERR_NULL);
    float small = 1.0f;
    dg_node *liar = dg_apply(g, &liar_op, 1, &a, &small, sizeof small);
    CHECK(dg_node_attr_float(liar, "far", 0, &f) == DG_ERR_STATE);
    CHECK_MSG(strstr(dg_graph_error(g), "op 'liar' describes attribute 'far' at byte 64"), "%s",
              dg_graph_error(g));
    dg_graph_free(g);
    return test_summary("test_core_attrs");
}
