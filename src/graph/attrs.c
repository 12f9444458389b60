/* Reading an op node's attributes by name, through the field list its op definition
 * publishes (dg_op_def.attr_fields). The engine knows no op's struct: an op that lists no
 * fields simply has none to read. What a field list claims is checked against the bytes the
 * node holds, so a wrong list in a custom op is an error, never a read outside the node. */
#include "internal.h"

#include <string.h>

const dg_attr_field *dg_node_attr_field(const dg_node *n, const char *name) {
    if (!n || !name || !n->op || !n->op->attr_fields) return NULL;
    for (const dg_attr_field *f = n->op->attr_fields; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

static size_t elem_size(dg_attr_type t) {
    switch (t) {
    case DG_ATTR_INT: return sizeof(int);
    case DG_ATTR_INT64: return sizeof(int64_t);
    case DG_ATTR_FLOAT: return sizeof(float);
    case DG_ATTR_SHAPE: return sizeof(dg_shape);
    }
    return 0;
}

static const char *type_name(dg_attr_type t) {
    switch (t) {
    case DG_ATTR_INT: return "an int";
    case DG_ATTR_INT64: return "an int64";
    case DG_ATTR_FLOAT: return "a float";
    case DG_ATTR_SHAPE: return "a shape";
    }
    return "of an unknown type";
}

/* The address of element `index` of field `name`, if its type is one of `want` (a bit per
 * dg_attr_type), or NULL with the graph's error set. */
static const unsigned char *attr_at(const dg_node *n, const char *name, int index, unsigned want,
                                    const char *wanted, const dg_attr_field **field) {
    if (!n) return dg_set_error(NULL, DG_ERR_NULL, "node_attr: node is NULL"), NULL;
    dg_graph *g = n->graph;
    if (!name) return dg_set_error(g, DG_ERR_NULL, "node_attr: name is NULL"), NULL;
    const char *op = dg_node_op_name(n);
    const dg_attr_field *f = dg_node_attr_field(n, name);
    if (!f)
        return dg_set_error(g, DG_ERR_ARG, "node_attr: node %d (%s) has no attribute '%s'", n->id,
                            op, name),
               NULL;
    int count = f->count > 0 ? f->count : 1;
    size_t es = elem_size(f->type);
    if (!(want >> f->type & 1u))
        return dg_set_error(g, DG_ERR_ARG,
                            "node_attr: attribute '%s' of node %d (%s) is %s, not %s", name, n->id,
                            op, type_name(f->type), wanted),
               NULL;
    if (index < 0 || index >= count)
        return dg_set_error(g, DG_ERR_ARG,
                            "node_attr: attribute '%s' of node %d (%s) has %d element%s; index %d "
                            "is out of range",
                            name, n->id, op, count, count == 1 ? "" : "s", index),
               NULL;
    if (es == 0 || f->offset > n->attrs_size || (size_t)count > (n->attrs_size - f->offset) / es)
        return dg_set_error(g, DG_ERR_STATE,
                            "node_attr: op '%s' describes attribute '%s' at byte %zu (%d x %zu "
                            "bytes) but its nodes hold %zu bytes of attributes",
                            op, name, f->offset, count, es, n->attrs_size),
               NULL;
    *field = f;
    return (const unsigned char *)n->attrs + f->offset + (size_t)index * es;
}

dg_status dg_node_attr_int(const dg_node *n, const char *name, int index, int64_t *out) {
    const dg_attr_field *f;
    const unsigned char *p =
        attr_at(n, name, index, 1u << DG_ATTR_INT | 1u << DG_ATTR_INT64, "an integer", &f);
    if (!p) return n ? dg_graph_status(n->graph) : DG_ERR_NULL;
    if (f->type == DG_ATTR_INT) {
        int v;
        memcpy(&v, p, sizeof v);
        *out = v;
    } else {
        memcpy(out, p, sizeof *out);
    }
    return DG_OK;
}

dg_status dg_node_attr_float(const dg_node *n, const char *name, int index, float *out) {
    const dg_attr_field *f;
    const unsigned char *p = attr_at(n, name, index, 1u << DG_ATTR_FLOAT, "a float", &f);
    if (!p) return n ? dg_graph_status(n->graph) : DG_ERR_NULL;
    memcpy(out, p, sizeof *out);
    return DG_OK;
}

dg_status dg_node_attr_shape(const dg_node *n, const char *name, dg_shape *out) {
    const dg_attr_field *f;
    const unsigned char *p = attr_at(n, name, 0, 1u << DG_ATTR_SHAPE, "a shape", &f);
    if (!p) return n ? dg_graph_status(n->graph) : DG_ERR_NULL;
    memcpy(out, p, sizeof *out);
    return DG_OK;
}
