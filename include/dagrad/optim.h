/** \file
 * dagrad optimizers: graph builders that attach the parameter update to the graph, so one
 * run of the optimizer's step node does forward, backward and update. Per-parameter state
 * (moments) and the step count are DG_STATE nodes, saved in checkpoints with state.
 * The optimizer is owned by the graph and freed with it.
 *
 * Names of the state nodes (an optimizer is named after its kind, "adam"; a second one of
 * the same kind in the graph is "adam2"):
 *   "<opt>/step"  steps taken (a float, exact up to 2^24 steps)
 *   "<opt>/lr"    base learning rate (dg_optimizer_set_lr writes it)
 *   "<param>/<opt>_m", "<param>/<opt>_v"     ADAM, ADAMW moments
 *   "<param>/<opt>_buf"                      MOMENTUM, NESTEROV buffer
 *   "<param>/<opt>_square_avg"               RMSPROP
 * (an unnamed parameter is called "param<id>"). Loading them restores the optimizer,
 * including dg_optimizer_steps and the schedule position.
 *
 * Order within a step: each gradient element is first clamped to [-clip_value,
 * clip_value], then all gradients are scaled by min(1, clip_norm / (norm + 1e-6)) where
 * norm is the global L2 norm of the clamped gradients (PyTorch's clip_grad_norm_), then
 * the L2 weight decay term wd * p is added (not for ADAMW, whose decay is decoupled:
 * p -= lr wd p before the Adam step), then the rule of the kind is applied.
 *
 * Learning rate of the step taken after t steps (t = 0 for the first step):
 *   schedule(t) as listed in dg_schedule_kind, times (t + 1) / warmup_steps while
 *   t < warmup_steps (linear warm-up reaching the scheduled rate at step warmup_steps). */
#ifndef DAGRAD_OPTIM_H
#define DAGRAD_OPTIM_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Update rules (g: the gradient after clipping and L2 decay, p: the parameter). */
typedef enum dg_optim_kind {
    DG_SGD,      /**< p -= lr g */
    DG_MOMENTUM, /**< v = mu v + g; p -= lr v              (PyTorch SGD momentum) */
    DG_NESTEROV, /**< v = mu v + g; p -= lr (g + mu v)      (PyTorch nesterov=True) */
    DG_ADAM,     /**< bias-corrected Adam, L2 weight decay added to g */
    DG_ADAMW,    /**< Adam with decoupled weight decay p -= lr wd p */
    DG_RMSPROP,  /**< s = a s + (1-a) g^2; p -= lr g / (sqrt(s) + eps) */
} dg_optim_kind;

/** Learning-rate schedules: the rate of the step taken after t steps. */
typedef enum dg_schedule_kind {
    DG_SCHED_CONSTANT,    /**< lr = base */
    DG_SCHED_STEP,        /**< lr = base gamma^floor(t / step_size) */
    DG_SCHED_EXPONENTIAL, /**< lr = base gamma^t */
    DG_SCHED_COSINE,      /**< lr = min + (base - min)(1 + cos(pi t / t_max)) / 2; stays at min
                               for t >= t_max */
} dg_schedule_kind;

/** Optimizer configuration; start from dg_optim_defaults(kind). */
typedef struct dg_optim_config {
    dg_optim_kind kind;        /**< the update rule */
    float lr;                  /**< base learning rate */
    float momentum;            /**< MOMENTUM, NESTEROV (default 0.9) */
    float beta1;               /**< ADAM, ADAMW first-moment decay (0.9) */
    float beta2;               /**< ADAM, ADAMW second-moment decay (0.999) */
    float alpha;               /**< RMSPROP smoothing (0.99) */
    float eps;                 /**< ADAM, ADAMW (1e-8), RMSPROP (1e-8) */
    float weight_decay;        /**< L2 (decoupled for ADAMW); default 0 (ADAMW 0.01) */
    float clip_norm;           /**< > 0: scale gradients so their global L2 norm is at most this */
    float clip_value;          /**< > 0: clamp each gradient element to [-v, v] */
    dg_schedule_kind schedule; /**< learning-rate schedule (default constant) */
    float gamma;               /**< STEP, EXPONENTIAL decay factor */
    int64_t step_size;         /**< STEP */
    int64_t t_max;             /**< COSINE period in steps */
    float lr_min;              /**< COSINE floor */
    int64_t warmup_steps;      /**< linear warm-up from 0 to the scheduled lr over these steps */
} dg_optim_config;

/** PyTorch's defaults for the kind, lr 1e-3 (SGD family 1e-2). */
dg_optim_config dg_optim_defaults(dg_optim_kind kind);

/** An optimizer (opaque): its update nodes live in the graph, which owns and frees it. */
typedef struct dg_optimizer dg_optimizer;

/** Builds the gradient of scalar `loss` (dg_backward, so dg_grad works afterwards) and the
 *  update of every parameter that receives a gradient from it; the loss keeps its value
 *  after each step (dg_keep), so dg_value(loss) reads it. Returns NULL on error (graph
 *  error set, graph left as it was). Owned by the graph. */
dg_optimizer *dg_optimizer_new(dg_graph *g, dg_node *loss, const dg_optim_config *cfg);

/** Ways to take part in building an optimizer (all optional). */
typedef struct dg_optim_hooks {
    /** Called once, after the gradients are built and before the updates: may replace
     *  grads[i] (the gradient of params[i]) by another node of the same shape built in g,
     *  which the clipping and the update of params[i] then use. For gradient averaging
     *  across processes (the MPI layer), noise, custom clipping. Returns DG_OK or an error,
     *  which makes the optimizer's construction fail and roll back. */
    dg_status (*gradients)(void *ctx, dg_graph *g, int n, dg_node *const *params, dg_node **grads);
    void *ctx; /**< passed to the hooks */
} dg_optim_hooks;

/** dg_optimizer_new with hooks (NULL: none). */
dg_optimizer *dg_optimizer_new_ex(dg_graph *g, dg_node *loss, const dg_optim_config *cfg,
                                  const dg_optim_hooks *hooks);
/** One training step: runs forward, backward and the update with the current inputs.
 *  Returns the status of that dg_run (DG_ERR_NULL for a NULL optimizer); a run that fails
 *  before the update (an unfed input, a bad label, an anomaly, a loss that is not finite:
 *  DG_ERR_NONFINITE) leaves the parameters, moments and step count as they were.
 *  Afterwards dg_value(dg_optimizer_step_node(opt)) is the loss before the update. */
dg_status dg_optimizer_step(dg_optimizer *opt);
/** The node whose run performs one step. Run with other targets (dg_run_many), every other
 *  node that reads a parameter runs before the parameter's update, whenever it was built,
 *  so it sees the values from before the step. */
dg_node *dg_optimizer_step_node(const dg_optimizer *opt);
/** Sets the base learning rate (takes effect at the next step; the schedule and warm-up
 *  still apply on top of it). DG_ERR_ARG if lr is negative or not finite. */
dg_status dg_optimizer_set_lr(dg_optimizer *opt, float lr);
/** The learning rate the next step will use (schedule and warm-up applied); NaN for NULL. */
float dg_optimizer_lr(const dg_optimizer *opt);
/** Steps taken so far (restored by checkpoint loads with state); 0 for NULL. */
int64_t dg_optimizer_steps(const dg_optimizer *opt);
/** The loss node the optimizer minimises; NULL for NULL. */
dg_node *dg_optimizer_loss(const dg_optimizer *opt);

#ifdef __cplusplus
}
#endif
#endif
