/* Shared by src/optim: the optimizer record, the layout of the per-step control vector,
 * and the update ops. Not installed. */
#ifndef DG_OPTIM_INTERNAL_H
#define DG_OPTIM_INTERNAL_H

#include "dagrad/opkit.h"
#include "dagrad/optim.h"

struct dg_optimizer {
    dg_graph *g;
    dg_optim_config cfg;
    char name[48];       /* "adam", or "adam2" for a second Adam in the same graph */
    dg_node *loss;       /* what is minimised */
    dg_node *step_state; /* DG_STATE scalar: steps taken (exact up to 2^24) */
    dg_node *lr_state;   /* DG_STATE scalar: base learning rate */
    dg_node *ctl;        /* per-step control vector, see DG_CTL_* */
    dg_node *step;       /* the node whose run is one training step */
    int n_params;
};

/* The control vector computed once per step, before any update, by "optim_prepare". */
enum {
    DG_CTL_LR,    /* learning rate of this step (schedule and warm-up applied) */
    DG_CTL_SCALE, /* global-norm clipping factor (1 without clipping) */
    DG_CTL_BC1,   /* Adam bias corrections 1 - beta^t for this step's t (1-based) */
    DG_CTL_BC2,
    DG_CTL_T, /* this step's number, 1-based */
    DG_CTL_SIZE
};

/* The learning rate of the step taken after `t` steps, for base rate `base`. */
double dg__schedule_lr(const dg_optim_config *c, double base, double t);

/* The update op of an optimizer kind, and the number and names of its per-parameter
 * state tensors (moments). Inputs of an update: param, grad, ctl, then the states; it
 * writes the param and the states in place. Attributes: a pointer to the optimizer. */
const dg_op_def *dg__update_op(dg_optim_kind kind);
int dg__update_state_count(dg_optim_kind kind);
const char *dg__update_state_suffix(dg_optim_kind kind, int i);

#endif
