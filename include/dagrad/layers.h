/** \file
 * dagrad layers and weight initialisation: graph builders. Each layer adds its parameters
 * and nodes to the graph inside a scope named after the layer (see dg_scope_push), which
 * is how summaries and DOT clusters find them, and returns its output node (NULL on
 * error, with the graph's error set). All randomness comes from the graph's seeded
 * generator: the same seed builds the same model, bit for bit. */
#ifndef DAGRAD_LAYERS_H
#define DAGRAD_LAYERS_H

#include "core.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Weight initialisers. Fans are computed by the caller (dense: fan_in = inputs,
 *  fan_out = units). Normal samples use Box-Muller on the graph's generator. */
typedef enum dg_init_kind {
    DG_INIT_ZEROS,          /**< every element = 0 */
    DG_INIT_CONSTANT,       /**< every element = a */
    DG_INIT_UNIFORM,        /**< U(a, b) */
    DG_INIT_NORMAL,         /**< N(mean a, std b) */
    DG_INIT_XAVIER_UNIFORM, /**< U(-l, l), l = sqrt(6 / (fan_in + fan_out)) */
    DG_INIT_XAVIER_NORMAL,  /**< N(0, sqrt(2 / (fan_in + fan_out))) */
    DG_INIT_HE_UNIFORM,     /**< U(-l, l), l = sqrt(6 / fan_in) */
    DG_INIT_HE_NORMAL,      /**< N(0, sqrt(2 / fan_in)) */
} dg_init_kind;

/** An initialiser: a kind and its two numbers (their meaning is listed with each
 *  dg_init_kind; unused ones are ignored). */
typedef struct dg_init {
    dg_init_kind kind; /**< which distribution */
    float a;           /**< CONSTANT: the value; UNIFORM: low bound; NORMAL: mean */
    float b;           /**< UNIFORM: high bound; NORMAL: standard deviation */
} dg_init;

/** Fills a parameter (or any leaf) in place with the graph's generator. fan_in and
 *  fan_out (>= 1 for the Xavier/He kinds) give the scale. Returns DG_ERR_NULL for a NULL
 *  node, DG_ERR_ARG for an op node, an unknown kind or invalid numbers (fans, bounds,
 *  a negative standard deviation); the node is unchanged on error. */
dg_status dg_init_fill(dg_node *param, dg_init init, int64_t fan_in, int64_t fan_out);

/** Activation applied by a layer. */
typedef enum dg_activation {
    DG_ACT_NONE,       /**< identity */
    DG_ACT_RELU,       /**< max(x, 0) */
    DG_ACT_LEAKY_RELU, /**< slope 0.01 */
    DG_ACT_SIGMOID,    /**< 1 / (1 + e^-x) */
    DG_ACT_TANH,       /**< tanh(x) */
    DG_ACT_SOFTMAX,    /**< softmax over the last axis */
} dg_activation;

/** Applies an activation as its own layer (scope `name`, may be NULL for an automatic
 *  name). DG_ACT_NONE returns x. */
dg_node *dg_activation_layer(dg_graph *g, const char *name, dg_node *x, dg_activation act);

/** Dense (fully connected) layer: y = act(x W + b), x [N, in], W [in, units], b [units].
 *  Weights: Glorot uniform (He uniform for ReLU-family activations), bias zero. Parameters
 *  are named "<name>/W" and "<name>/b". `name` may be NULL ("dense1", "dense2", ...); a
 *  name whose "<name>/W" is already taken is DG_ERR_ARG (parameters are saved by name). */
dg_node *dg_dense(dg_graph *g, const char *name, dg_node *x, int64_t units, dg_activation act);

/** Options of dg_dense_ex; start from dg_dense_defaults() (a zeroed struct has no bias). */
typedef struct dg_dense_options {
    int use_bias;        /**< 1: add a bias b [units] (default 1) */
    dg_init weight_init; /**< initialiser of W (used when custom_init is 1) */
    dg_init bias_init;   /**< initialiser of b (used when custom_init is 1) */
    int custom_init;     /**< 0: use the defaults of dg_dense; 1: use the inits above */
} dg_dense_options;

/** Bias on, default initialisers (custom_init 0). */
dg_dense_options dg_dense_defaults(void);

/** dg_dense with options; `opts` NULL means dg_dense_defaults(). The bias initialiser is
 *  called with fans (1, units). */
dg_node *dg_dense_ex(dg_graph *g, const char *name, dg_node *x, int64_t units, dg_activation act,
                     const dg_dense_options *opts);

/** Flattens [N, ...] to [N, prod(...)]. */
dg_node *dg_flatten(dg_graph *g, const char *name, dg_node *x);

/** Inverted dropout: in training mode (dg_set_training) zeroes each element with
 *  probability `rate` (in [0,1)) and scales the rest by 1/(1-rate), with a fresh mask each
 *  run; in evaluation mode it is the identity. Masks come from a counter-based generator
 *  seeded from the graph's generator when the layer is built; its seed and run counter are
 *  the DG_STATE node "<name>/rng", so a checkpoint with state resumes the mask stream
 *  exactly, and masks do not depend on the thread count. The output is
 *  x * mask, where mask is a node (see dg_dropout_mask) holding 0 or 1/(1-rate) (all 1 in
 *  evaluation), so the gradient is dy * mask with the mask of the same run. */
dg_node *dg_dropout(dg_graph *g, const char *name, dg_node *x, float rate);

/** The mask node of a dg_dropout output (NULL if `y` is not one). */
dg_node *dg_dropout_mask(const dg_node *y);

/** Frozen: later training runs keep the last mask drawn instead of drawing a new one
 *  (for gradient checks and debugging). Evaluation mode still gives the identity. */
dg_status dg_dropout_set_frozen(dg_node *y, int frozen);

/** Draws the masks of later training runs as if the rows fed were rows [rows, rows + N) of
 *  a larger batch: element i of the mask is element i + rows x (elements per row) of the
 *  mask that batch would get in the same run. For data-parallel training
 *  (docs/DISTRIBUTED.md): a process feeding rows [lo, hi) of every global batch sets lo,
 *  and its masks are the ones one process draws for those rows. Default 0; a negative
 *  count or a node that is not a dg_dropout output is DG_ERR_ARG. */
dg_status dg_dropout_set_row_offset(dg_node *y, int64_t rows);

/** Number of trainable scalars in the graph. */
int64_t dg_param_count(const dg_graph *g);

/** Prints a Keras-style summary (layer, output shape, parameter count, total) of the
 *  layers (top-level scopes) in creation order. `out` NULL means stdout. A layer's output
 *  shape is that of the last node it built before the first dg_backward; the total counts
 *  every parameter, in a scope or not. */
dg_status dg_summary(const dg_graph *g, FILE *out);

/* ---- sequence models: recurrent cells, unrolling, embeddings ---- */

/** Kind of recurrent cell. */
typedef enum dg_cell_kind {
    DG_CELL_RNN,  /**< h' = tanh(x W + h U + b) */
    DG_CELL_GRU,  /**< gated recurrent unit, PyTorch's formulation */
    DG_CELL_LSTM, /**< long short-term memory with cell state c */
} dg_cell_kind;

/** Options of dg_cell_new; start from dg_cell_defaults(). */
typedef struct dg_cell_options {
    /** 1: layer-normalise x W and h U, each per gate, and scale them by learned gains
     *  "<name>/gain_x" and "<name>/gain_h" ([gates*units], starting at 1) before the biases
     *  are added. Default 0. */
    int layer_norm;
    float layer_norm_eps; /**< eps of that normalisation (default 1e-5) */
    float forget_bias;    /**< LSTM: initial bias of the forget gate (default 1) */
} dg_cell_options;

/** No layer norm, forget-gate bias 1. */
dg_cell_options dg_cell_defaults(void);

/** A recurrent cell (opaque): its parameters, shared by every step it is applied at. Owned
 *  by the graph. */
typedef struct dg_cell dg_cell;

/** Creates a cell's parameters in scope `name` (NULL: "lstm1", "gru1", ...), packed by gate
 *  (G gates; PyTorch's layout, transposed): "<name>/W" [inputs,G*units] for the input,
 *  "<name>/U" [units,G*units] for the state (each gate's block Glorot uniform) and a bias
 *  "<name>/b" [G*units] (zero; the LSTM's forget gate block opts->forget_bias). Gates: LSTM
 *  i, f, g, o (G = 4); GRU r, z, n (G = 3; plus "<name>/c" [3*units], the bias of h U, which
 *  for n sits inside the reset gate's product); RNN h (G = 1). A step computes the gates
 *  from x W + h U + b and applies dg_lstm_cell / dg_gru_cell / tanh. `opts` NULL means
 *  dg_cell_defaults(). Returns NULL with the graph's error set; the graph is then left as
 *  it was. */
dg_cell *dg_cell_new(dg_graph *g, dg_cell_kind kind, const char *name, int64_t inputs,
                     int64_t units, const dg_cell_options *opts);
/** dg_cell_new(g, DG_CELL_RNN, name, inputs, units, NULL). */
dg_cell *dg_rnn(dg_graph *g, const char *name, int64_t inputs, int64_t units);
/** dg_cell_new(g, DG_CELL_GRU, name, inputs, units, NULL). */
dg_cell *dg_gru(dg_graph *g, const char *name, int64_t inputs, int64_t units);
/** dg_cell_new(g, DG_CELL_LSTM, name, inputs, units, NULL): forget-gate bias 1. */
dg_cell *dg_lstm(dg_graph *g, const char *name, int64_t inputs, int64_t units);
/** The cell's layer name; NULL for NULL. */
const char *dg_cell_name(const dg_cell *cell);
/** The cell's state size; 0 for NULL. */
int64_t dg_cell_units(const dg_cell *cell);

/** The state a cell passes from step to step: h [B,units], and for an LSTM c [B,units]
 *  (NULL otherwise). */
typedef struct dg_cell_state {
    dg_node *h; /**< hidden state, also the step's output */
    dg_node *c; /**< LSTM cell state; NULL for RNN and GRU */
} dg_cell_state;

/** One step of the cell (in the cell's scope): from input x [B,inputs] and state `prev`,
 *  builds the new state into *next and returns its h (NULL on error, graph unchanged). */
dg_node *dg_cell_step(dg_graph *g, dg_cell *cell, dg_node *x, dg_cell_state prev,
                      dg_cell_state *next);

/** A cell unrolled over a segment of `steps` steps (see dg_unroll). */
typedef struct dg_unrolled {
    int steps;          /**< T */
    dg_node **h;        /**< the T outputs h_t [B,units] (array owned by the graph) */
    dg_cell_state init; /**< state entering step 0: batch inputs "<cell>/h0" ("<cell>/c0") */
    dg_cell_state last; /**< state after the last step */
    /** Copies `last` into `init` in place when run (after every other reader of `init` in
     *  the same run): run it with each training step to carry the state to the next
     *  segment (truncated backpropagation through time: gradients stop at the boundary). */
    dg_node *carry;
} dg_unrolled;

/** Unrolls `cell` over `steps` steps with inputs xs[0..steps) (each [B,inputs], all one
 *  shape), sharing the cell's parameters. Step t is built in scope "<cell>/t=<t>", which the
 *  DOT export collapses. The initial state is a pair of batch inputs holding zeros (named
 *  "<cell>/h0", "<cell>/c0"; "<cell>/h0.2" and so on for later unrolls of the same cell);
 *  after changing the batch size, or to start a new text, call dg_unrolled_reset. A loss
 *  over all steps: dg_seq_cross_entropy. On error *out is zeroed and the graph left as it
 *  was. */
dg_status dg_unroll(dg_graph *g, dg_cell *cell, int steps, dg_node *const *xs, dg_unrolled *out);
/** dg_unroll over token inputs: step t's input is the row of `table` [V,inputs] (an
 *  embedding, see dg_embedding) picked by column t of `tokens` [B,T] (integer ids as floats;
 *  T steps). The same as dg_unroll over dg_embedding_lookup(table, tokens[:,t]), but the
 *  table is multiplied by the cell's input weights once per run ((E W)[ids] = E[ids] W) and
 *  each step looks up rows of that product, instead of a matrix product per step; and the
 *  steps' lookups live inside the step scopes. An id outside [0, V) is a run-time error. */
dg_status dg_unroll_tokens(dg_graph *g, dg_cell *cell, dg_node *table, dg_node *tokens,
                           dg_unrolled *out);
/** Sets the unrolled state's initial state to zeros of `batch` rows. */
dg_status dg_unrolled_reset(const dg_unrolled *u, int64_t batch);

/** An embedding table "<name>/table" [vocab,dim] (scope `name`, NULL: "embedding1", ...),
 *  initialised N(0, 1) as PyTorch's nn.Embedding. Look rows up with dg_embedding_lookup;
 *  in an unrolled net, once per step on that step's indices (see dg_unstack). */
dg_node *dg_embedding(dg_graph *g, const char *name, int64_t vocab, int64_t dim);

/** Layer normalisation over the last axis with a learned gain "<name>/gain" (ones) and bias
 *  "<name>/bias" (zeros), both of the last axis' size: dg_layer_norm(x, eps) gain + bias.
 *  Scope `name` (NULL: "layer_norm1", ...). */
dg_node *dg_layer_norm_layer(dg_graph *g, const char *name, dg_node *x, float eps);

/** Loss over all steps of an unrolled sequence: the outputs are stacked to [B*T,units] (row
 *  b*T + t is step t of sequence b), a dense layer `name` maps them to `classes` logits, and
 *  the result is the mean cross-entropy against labels [B,T] (integer classes as floats).
 *  *logits (if not NULL) receives the logits [B*T,classes]. NULL on error (graph unchanged). */
dg_node *dg_seq_cross_entropy(dg_graph *g, const char *name, const dg_unrolled *u, dg_node *labels,
                              int64_t classes, dg_node **logits);
/* ---- CNN layers (images as [N,C,H,W]) ---- */

struct dg_conv2d_options; /* dagrad/ops.h */

/** Convolution layer: y = act(conv2d(x, W) + b) with x [N,C,H,W], W [filters,C,kernel,kernel]
 *  and b [filters], the same stride and zero padding along both axes (see dg_convolve2d).
 *  Weights: He uniform for ReLU-family activations, Glorot uniform otherwise, with
 *  fan_in = C kernel^2 and fan_out = filters kernel^2; bias zero. Parameters are named
 *  "<name>/W" and "<name>/b"; `name` may be NULL ("conv1", "conv2", ...). DG_ACT_SOFTMAX is
 *  refused (apply it to logits, not to feature maps). */
dg_node *dg_conv2d(dg_graph *g, const char *name, dg_node *x, int64_t filters, int kernel,
                   int stride, int padding, dg_activation act);

/** dg_conv2d with a kernel_h x kernel_w kernel, any geometry (`conv` NULL: stride 1, no
 *  padding; with groups, W is [filters, C/groups, kernel_h, kernel_w] and the fans count one
 *  group) and the bias optional (use_bias 0: none). */
dg_node *dg_conv2d_ex(dg_graph *g, const char *name, dg_node *x, int64_t filters, int kernel_h,
                      int kernel_w, const struct dg_conv2d_options *conv, dg_activation act,
                      int use_bias);

/** Max pooling layer over kernel x kernel windows (see dg_pool2d_max): no parameters. Scope
 *  `name`, or "maxpool1", "maxpool2", ... */
dg_node *dg_max_pool2d(dg_graph *g, const char *name, dg_node *x, int kernel, int stride,
                       int padding);

/** Average pooling layer (see dg_pool2d_avg). Scope `name`, or "avgpool1", ... */
dg_node *dg_avg_pool2d(dg_graph *g, const char *name, dg_node *x, int kernel, int stride,
                       int padding);

/** Global average pooling layer: [N,C,H,W] -> [N,C] (see dg_pool2d_global_avg). Scope
 *  `name`, or "gap1", ... */
dg_node *dg_global_avg_pool2d(dg_graph *g, const char *name, dg_node *x);

/** Batch normalisation layer over the channels (axis 1) of x [N,C] or [N,C,H,W] (see
 *  dg_batch_normalize): parameters "<name>/gamma" (ones) and "<name>/beta" (zeros), and the
 *  DG_STATE nodes "<name>/running_mean" (zeros) and "<name>/running_var" (ones), which
 *  training runs update and evaluation runs (dg_set_training(g, 0)) use. PyTorch's defaults
 *  are momentum 0.1 and eps 1e-5. Running statistics are state: save and load checkpoints
 *  with state to keep them. `name` may be NULL ("batchnorm1", ...). */
dg_node *dg_batch_norm(dg_graph *g, const char *name, dg_node *x, float momentum, float eps);

#ifdef __cplusplus
}
#endif
#endif
