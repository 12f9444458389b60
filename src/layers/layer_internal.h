/* Shared by the layer builders in src/layers: opening a layer's scope under its given or
 * automatic name. Not installed. */
#ifndef DG_LAYER_INTERNAL_H
#define DG_LAYER_INTERNAL_H

#include "dagrad/layers.h"
#include "dagrad/opkit.h"
#include "dagrad/ops.h"

/* Pushes the scope of a new layer: `name` if given, else kind + the smallest k >= 1 such
 * that no node lives in a scope of that name yet ("dense1", "dense2", ...). On success
 * writes the layer's name (without enclosing scopes) into out. */
dg_status dg__layer_begin(dg_graph *g, const char *name, const char *kind, char *out,
                          size_t out_size);

/* Closes a layer opened at mark m: passes `y` through, or, when y is NULL, removes what the
 * layer built and reports the failure as the layer's ("dense: ..."). */
dg_node *dg__layer_end(dg_graph *g, dg_mark m, dg_node *y, const char *kind);

/* 1 if g and x are non-NULL and x belongs to g; else sets an error naming `what` (keeping
 * an earlier failure's message when x is NULL because a nested call failed) and returns 0. */
int dg__check_input(dg_graph *g, const char *what, dg_node *x);

#endif
