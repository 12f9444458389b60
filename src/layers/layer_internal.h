/* Shared by the layer builders in src/layers: opening a layer's scope under its given or
 * automatic name. Not installed. */
#ifndef DG_LAYER_INTERNAL_H
#define DG_LAYER_INTERNAL_H

#include "dagrad/layers.h"
#include "dagrad/ops.h"

/* Pushes the scope of a new layer: `name` if given, else kind + the smallest k >= 1 such
 * that no node lives in a scope of that name yet ("dense1", "dense2", ...). On success
 * writes the layer's name (without enclosing scopes) into out. */
dg_status dg__layer_begin(dg_graph *g, const char *name, const char *kind, char *out,
                          size_t out_size);

/* Pops the layer's scope and passes `y` through; NULL if y is NULL (error already set). */
dg_node *dg__layer_end(dg_graph *g, dg_node *y);

#endif
