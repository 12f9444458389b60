/** \file
 * dagrad DOT export: writes a graph as Graphviz DOT so the forward pass, the gradient nodes
 * added by dg_backward (and by a second backward), value statistics and gradient magnitudes
 * can be looked at. Writing DOT needs nothing; rendering straight to SVG/PNG needs
 * Graphviz's library at build time (otherwise run `dot -Tsvg graph.dot -o graph.svg`).
 * Export only reads the graph: it never runs it, so annotate after dg_run. */
#ifndef DAGRAD_DOT_H
#define DAGRAD_DOT_H

#include "core.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What to draw and how. Start from dg_dot_defaults(); NULL options mean the defaults. */
typedef struct dg_dot_options {
    /** 1: draw the gradient nodes built by dg_backward, each pass in its own cluster
     *  ("backward pass 1", ...) with a dashed edge from each value to its gradient.
     *  0: forward nodes only (backward pass 0). Default 1. */
    int show_backward;
    /** Highest backward pass drawn when show_backward is on; <= 0 means all. Default 0. */
    int max_backward_pass;
    /** The loss (or any node to highlight), drawn as a gold double octagon. NULL: none.
     *  Default NULL. */
    const dg_node *loss;
    /** 1: annotate each node with min / mean / max of its current values (a scalar shows
     *  its value). Meaningful after dg_run. Default 0. */
    int annotate_values;
    /** 1: annotate each forward node that has a gradient (dg_grad) with the L2 norm of that
     *  gradient's current values. Meaningful after running the gradients. Default 0. */
    int grad_norms;
    /** 1: fill each forward node that has a gradient with a colour on a log scale of its
     *  gradient's L2 norm, from heat_log10_min (dark blue: vanishing) through pale colours
     *  to heat_log10_max (dark red: exploding); an exactly-zero gradient is grey-blue.
     *  Adds a colour bar to the legend. Default 0. */
    int grad_heat;
    double heat_log10_min; /**< default -7 (norm 1e-7) */
    double heat_log10_max; /**< default 3 (norm 1000) */
    /** 1: fill any node whose values hold NaN or Inf red and say how many. Default 1. */
    int mark_nonfinite;
    /** 1: group forward nodes into clusters named after their layer scope (nested scopes
     *  nest). Default 1. */
    int cluster_scopes;
    /** 1: draw each top-level layer scope as one box (its parameters, node count and
     *  output shape listed), with edges between boxes; the gradient nodes of a layer
     *  collapse into one box per backward pass. Default 0. */
    int collapse_scopes;
    /** 1: draw a legend (node styles, and the colour bar when grad_heat is on). Default 1. */
    int legend;
    /** 1: draw constants (such as the seed "ones" of a backward) small. Default 1. */
    int small_consts;
    /** An optimizer's nodes (its updates, the step, the learning-rate state) are drawn in
     *  their own "update" cluster. 0: the state tensors its updates write (Adam's moments,
     *  the step count) are not drawn, each update's label counts them instead; 1: draw them
     *  as state cylinders too. Default 0. */
    int show_optimizer_state;
    /** Graphviz rankdir: "TB" (default), "LR", "BT" or "RL". NULL means "TB". */
    const char *rankdir;
    /** Title drawn above the graph, or NULL. Any text is escaped. Default NULL. */
    const char *title;
    /** 1: in a cell unrolled by dg_unroll (steps in scopes "<cell>/t=<k>"), draw the first
     *  and the last step in full and every step between them as one box per cell ("lstm1:
     *  t=1 ... t=62", with its node count), the gradient nodes of those steps as one box per
     *  backward pass; edges into and out of a box are merged. Applies when collapse_scopes
     *  is 0. Default 1. */
    int collapse_steps;
} dg_dot_options;

/** The defaults documented on each field. */
dg_dot_options dg_dot_defaults(void);

/** Writes the graph as DOT to the file at `path` (created or truncated). */
dg_status dg_dot_write(const dg_graph *g, const char *path, const dg_dot_options *opts);
/** Writes the graph as DOT to an open stream. */
dg_status dg_dot_write_file(const dg_graph *g, FILE *out, const dg_dot_options *opts);
/** Returns the DOT text in a malloc'd NUL-terminated string (release with free()), or NULL
 *  on error (message in dg_last_error() and, for a non-NULL graph, dg_graph_error()). */
char *dg_dot_string(const dg_graph *g, const dg_dot_options *opts);

/** 1 if this build can render directly (Graphviz's library was found at build time). */
int dg_dot_render_available(void);
/** Lays the graph out with Graphviz's dot and writes an image to `path`; `format` is a
 *  Graphviz output format such as "svg" or "png". Without Graphviz's library at build
 *  time, returns DG_ERR_UNSUPPORTED (write DOT with dg_dot_write and run `dot -Tsvg`). */
dg_status dg_dot_render(const dg_graph *g, const char *path, const char *format,
                        const dg_dot_options *opts);

#ifdef __cplusplus
}
#endif
#endif
