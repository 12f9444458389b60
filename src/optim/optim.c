/* Optimizers as graph builders. dg_optimizer_new adds, after the gradient nodes of
 * dg_backward, in this order:
 *   - DG_STATE scalars "<opt>/step" (steps taken) and "<opt>/lr" (base learning rate), and
 *     per parameter its moments "<param>/<opt>_<moment>", so checkpoints with state keep them;
 *   - with clipping by global norm, a chain of "optim_sumsq" nodes accumulating the sum of
 *     squares of every (value-clipped) gradient;
 *   - "optim_prepare", which reads the step count, the base lr and that sum, writes the
 *     step's control vector (lr from the schedule, clip scale, bias corrections) and
 *     increments the step count;
 *   - one update op per parameter (src/optim/updates.c), chained one after another;
 *   - "optim_step", which depends on the last update and yields the loss.
 * Nodes run in creation order, so every gradient (each of which may read the old
 * parameter values) is computed before the first update writes a parameter, and the global
 * norm is known before any update uses it. Nothing here allocates during a step. */
#include "optim_internal.h"

#include "../graph/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double pi = 3.14159265358979323846;

/* ---- schedules ---- */

double dg__schedule_lr(const dg_optim_config *c, double base, double t) {
    double lr = base;
    switch (c->schedule) {
    case DG_SCHED_CONSTANT: break;
    case DG_SCHED_STEP: lr = base * pow(c->gamma, floor(t / (double)c->step_size)); break;
    case DG_SCHED_EXPONENTIAL: lr = base * pow(c->gamma, t); break;
    case DG_SCHED_COSINE: {
        double tt = t < (double)c->t_max ? t : (double)c->t_max;
        lr = c->lr_min + (base - c->lr_min) * (1.0 + cos(pi * tt / (double)c->t_max)) / 2.0;
        break;
    }
    }
    if (c->warmup_steps > 0 && t < (double)c->warmup_steps)
        lr *= (t + 1.0) / (double)c->warmup_steps;
    return lr;
}

/* ---- the per-step ops ---- */

static dg_status scalar_rule(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                             size_t size) {
    (void)in, (void)a, (void)msg, (void)size;
    *out = dg_shape0();
    return DG_OK;
}

static dg_status ctl_rule(dg_node *const *in, const dg_attrs *a, dg_shape *out, char *msg,
                          size_t size) {
    (void)in, (void)a, (void)msg, (void)size;
    *out = dg_shape1(DG_CTL_SIZE);
    return DG_OK;
}

/* acc + sum_i clamp(g_i)^2. Sequential in double: one fixed order for any thread count. */
static dg_status sumsq_forward(dg_node *self) {
    const dg_optimizer *opt = self->attrs.ptr;
    const float cv = opt->cfg.clip_value;
    const float *restrict g = self->inputs[1]->value;
    double acc = 0.0;
    for (int64_t i = 0; i < self->inputs[1]->numel; i++) {
        float gi = g[i];
        if (cv > 0.0f) gi = gi < -cv ? -cv : (gi > cv ? cv : gi);
        acc += (double)gi * gi;
    }
    self->value[0] = (float)((double)self->inputs[0]->value[0] + acc);
    return DG_OK;
}
static const dg_op_def sumsq_op = {"optim_sumsq", 2,   DG_OP_NO_GRAD, scalar_rule,
                                   sumsq_forward, NULL};

/* Inputs: step count, base lr, sum of squared gradients. Clip scale as PyTorch's
 * clip_grad_norm_: min(1, max_norm / (norm + 1e-6)). */
static dg_status prepare_forward(dg_node *self) {
    const dg_optimizer *opt = self->attrs.ptr;
    const dg_optim_config *c = &opt->cfg;
    float *ctl = self->value, *steps = self->inputs[0]->value;
    double t = steps[0], base = self->inputs[1]->value[0];
    ctl[DG_CTL_LR] = (float)dg__schedule_lr(c, base, t);
    double scale = 1.0;
    if (c->clip_norm > 0.0f) {
        double norm = sqrt((double)self->inputs[2]->value[0]);
        double coef = c->clip_norm / (norm + 1e-6);
        if (coef < 1.0) scale = coef;
    }
    ctl[DG_CTL_SCALE] = (float)scale;
    ctl[DG_CTL_BC1] = (float)(1.0 - pow(c->beta1, t + 1.0));
    ctl[DG_CTL_BC2] = (float)(1.0 - pow(c->beta2, t + 1.0));
    ctl[DG_CTL_T] = (float)(t + 1.0);
    steps[0] = (float)(t + 1.0);
    return DG_OK;
}
static const dg_op_def prepare_op = {"optim_prepare", 3,   DG_OP_SIDE_EFFECT, ctl_rule,
                                     prepare_forward, NULL};

/* Inputs: last update (ordering), loss. The step's value is the loss before the update. */
static dg_status step_forward(dg_node *self) {
    self->value[0] = self->inputs[1]->value[0];
    return DG_OK;
}
static const dg_op_def step_op = {"optim_step", 2, DG_OP_NO_GRAD, scalar_rule, step_forward, NULL};

/* ---- configuration ---- */

static const char *kind_name(dg_optim_kind k) {
    switch (k) {
    case DG_SGD: return "sgd";
    case DG_MOMENTUM: return "momentum";
    case DG_NESTEROV: return "nesterov";
    case DG_ADAM: return "adam";
    case DG_ADAMW: return "adamw";
    case DG_RMSPROP: return "rmsprop";
    }
    return NULL;
}

dg_optim_config dg_optim_defaults(dg_optim_kind kind) {
    dg_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    int sgd_family = kind == DG_SGD || kind == DG_MOMENTUM || kind == DG_NESTEROV;
    c.lr = sgd_family ? 1e-2f : 1e-3f;
    c.momentum = (kind == DG_MOMENTUM || kind == DG_NESTEROV) ? 0.9f : 0.0f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.alpha = 0.99f;
    c.eps = 1e-8f;
    c.weight_decay = kind == DG_ADAMW ? 0.01f : 0.0f;
    c.schedule = DG_SCHED_CONSTANT;
    c.gamma = 0.1f;
    return c;
}

static int in_unit(float x) { return x >= 0.0f && x < 1.0f; }

static dg_status check_config(dg_graph *g, const dg_optim_config *c) {
    const char *w = "optimizer_new";
    if (!kind_name(c->kind)) return dg_set_error(g, DG_ERR_ARG, "%s: unknown kind %d", w, c->kind);
    if (!(c->lr >= 0.0f) || !isfinite(c->lr))
        return dg_set_error(g, DG_ERR_ARG, "%s: lr must be finite and >= 0, got %g", w, c->lr);
    if (!in_unit(c->momentum))
        return dg_set_error(g, DG_ERR_ARG, "%s: momentum must be in [0,1), got %g", w, c->momentum);
    if (!in_unit(c->beta1) || !in_unit(c->beta2))
        return dg_set_error(g, DG_ERR_ARG, "%s: betas must be in [0,1), got (%g, %g)", w, c->beta1,
                            c->beta2);
    if (!in_unit(c->alpha))
        return dg_set_error(g, DG_ERR_ARG, "%s: alpha must be in [0,1), got %g", w, c->alpha);
    if (!(c->eps >= 0.0f) || !isfinite(c->eps))
        return dg_set_error(g, DG_ERR_ARG, "%s: eps must be finite and >= 0, got %g", w, c->eps);
    if ((c->kind == DG_ADAM || c->kind == DG_ADAMW || c->kind == DG_RMSPROP) && c->eps == 0.0f)
        return dg_set_error(g, DG_ERR_ARG, "%s: eps must be > 0 for %s (it guards a division)", w,
                            kind_name(c->kind));
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return dg_set_error(g, DG_ERR_ARG, "%s: weight_decay must be finite and >= 0, got %g", w,
                            c->weight_decay);
    if (!(c->clip_norm >= 0.0f) || !(c->clip_value >= 0.0f) || !isfinite(c->clip_norm) ||
        !isfinite(c->clip_value))
        return dg_set_error(g, DG_ERR_ARG,
                            "%s: clip_norm (%g) and clip_value (%g) must be finite and >= 0 "
                            "(0 disables)",
                            w, c->clip_norm, c->clip_value);
    if (c->warmup_steps < 0)
        return dg_set_error(g, DG_ERR_ARG, "%s: warmup_steps must be >= 0, got %lld", w,
                            (long long)c->warmup_steps);
    if (c->schedule == DG_SCHED_STEP && c->step_size < 1)
        return dg_set_error(g, DG_ERR_ARG, "%s: step schedule needs step_size >= 1, got %lld", w,
                            (long long)c->step_size);
    switch (c->schedule) {
    case DG_SCHED_CONSTANT: break;
    case DG_SCHED_STEP:
    case DG_SCHED_EXPONENTIAL:
        if (!(c->gamma > 0.0f) || !isfinite(c->gamma))
            return dg_set_error(g, DG_ERR_ARG, "%s: schedule gamma must be > 0, got %g", w,
                                c->gamma);
        break;
    case DG_SCHED_COSINE:
        if (c->t_max < 1)
            return dg_set_error(g, DG_ERR_ARG, "%s: cosine schedule needs t_max >= 1, got %lld", w,
                                (long long)c->t_max);
        if (!(c->lr_min >= 0.0f) || !isfinite(c->lr_min))
            return dg_set_error(g, DG_ERR_ARG, "%s: lr_min must be finite and >= 0, got %g", w,
                                c->lr_min);
        break;
    default: return dg_set_error(g, DG_ERR_ARG, "%s: unknown schedule %d", w, c->schedule);
    }
    return DG_OK;
}

/* ---- building ---- */

static int name_taken(const dg_graph *g, const char *name) {
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        const char *n = dg_node_name(dg_graph_node(g, i));
        if (n && strcmp(n, name) == 0) return 1;
    }
    return 0;
}

/* Builds the state, prepare, update and step nodes; returns the status. */
static dg_status build(dg_optimizer *o, int n_before, int pass) {
    dg_graph *g = o->g;
    const dg_optim_config *c = &o->cfg;
    char nm[600];
    snprintf(nm, sizeof nm, "%s/step", o->name);
    o->step_state = dg_state(g, nm, dg_shape0());
    snprintf(nm, sizeof nm, "%s/lr", o->name);
    o->lr_state = dg_state(g, nm, dg_shape0());
    dg_node *acc = dg_scalar(g, 0.0f);
    if (!o->step_state || !o->lr_state || !acc) return g->status;
    o->lr_state->value[0] = c->lr;

    /* the parameters this loss depends on: those that received a gradient in this pass */
    for (int pi = 0; pi < n_before; pi++) {
        dg_node *p = g->nodes[pi];
        dg_node *gr = p->kind == DG_PARAM ? p->grad : NULL;
        if (!gr || gr->backward_pass != pass) continue;
        o->n_params++;
        if (c->clip_norm > 0.0f) {
            dg_attrs a = {{0}, {0}, {0, {0}}, o};
            if (!(acc = dg__apply2(g, &sumsq_op, acc, gr, &a))) return g->status;
        }
    }
    if (o->n_params == 0)
        return dg_set_error(g, DG_ERR_ARG,
                            "optimizer_new: the loss (node %d) depends on no parameter "
                            "(dg_param) through differentiable ops",
                            o->loss->id);
    dg_attrs a = {{0}, {0}, {0, {0}}, o};
    dg_node *pin[3] = {o->step_state, o->lr_state, acc};
    if (!(o->ctl = dg_apply(g, &prepare_op, 3, pin, &a))) return g->status;

    const dg_op_def *op = dg__update_op(c->kind);
    int ns = dg__update_state_count(c->kind);
    dg_node *prev = o->ctl;
    for (int pi = 0; pi < n_before; pi++) {
        dg_node *p = g->nodes[pi];
        dg_node *gr = p->kind == DG_PARAM ? p->grad : NULL;
        if (!gr || gr->backward_pass != pass) continue;
        dg_node *in[DG_MAX_INPUTS] = {p, gr, o->ctl, prev};
        for (int k = 0; k < ns; k++) {
            char pn[32];
            if (!p->name) snprintf(pn, sizeof pn, "param%d", p->id);
            snprintf(nm, sizeof nm, "%s/%s_%s", p->name ? p->name : pn, o->name,
                     dg__update_state_suffix(c->kind, k));
            if (!(in[4 + k] = dg_state(g, nm, p->shape))) return g->status;
        }
        if (!(prev = dg_apply(g, op, 4 + ns, in, &a))) return g->status;
    }
    dg_node *sin[2] = {prev, o->loss};
    if (!(o->step = dg_apply(g, &step_op, 2, sin, NULL))) return g->status;
    snprintf(nm, sizeof nm, "%s/train_step", o->name);
    return dg_node_set_name(o->step, nm);
}

dg_optimizer *dg_optimizer_new(dg_graph *g, dg_node *loss, const dg_optim_config *cfg) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "optimizer_new: graph is NULL"), NULL;
    if (!loss) return dg_set_error(g, DG_ERR_NULL, "optimizer_new: loss is NULL"), NULL;
    if (!cfg) return dg_set_error(g, DG_ERR_NULL, "optimizer_new: config is NULL"), NULL;
    if (loss->graph != g)
        return dg_set_error(g, DG_ERR_GRAPH, "optimizer_new: loss belongs to another graph"), NULL;
    if (check_config(g, cfg) != DG_OK) return NULL;
    dg_optimizer *o = calloc(1, sizeof *o);
    if (!o) return dg_set_error(g, DG_ERR_NOMEM, "optimizer_new: out of memory"), NULL;
    o->g = g;
    o->cfg = *cfg;
    o->loss = loss;
    /* "adam", then "adam2", ... so that state names stay unique for checkpoints */
    char probe[64];
    for (int k = 1;; k++) {
        if (k == 1)
            snprintf(o->name, sizeof o->name, "%s", kind_name(cfg->kind));
        else
            snprintf(o->name, sizeof o->name, "%s%d", kind_name(cfg->kind), k);
        snprintf(probe, sizeof probe, "%s/step", o->name);
        if (!name_taken(g, probe)) break;
    }

    int n0 = g->n_nodes, pass0 = g->n_backward;
    dg_status s = dg_backward(g, loss);
    if (s != DG_OK) {
        /* say whose call failed: "optimizer_new: backward: loss must be a scalar, ..." */
        char keep[sizeof g->err];
        memcpy(keep, g->err, sizeof keep);
        dg_set_error(g, s, "optimizer_new: %s", keep);
        free(o);
        return NULL;
    }
    /* the seed gradient of the loss was created by this pass */
    int pass = loss->grad->backward_pass;
    s = build(o, n0, pass);
    if (s == DG_OK) s = dg_graph_attach(g, o, free);
    if (s != DG_OK) {
        /* leave the graph as it was: drop the gradient and optimizer nodes */
        char keep[sizeof g->err];
        memcpy(keep, g->err, sizeof keep);
        dg__graph_truncate(g, n0);
        g->n_backward = pass0;
        free(o);
        dg_set_error(g, s, "%s", keep);
        return NULL;
    }
    return o;
}

/* ---- using ---- */

dg_status dg_optimizer_step(dg_optimizer *opt) {
    if (!opt) return dg_set_error(NULL, DG_ERR_NULL, "optimizer_step: optimizer is NULL");
    dg_status s = dg_run(opt->g, opt->step);
    if (s != DG_OK) {
        char keep[sizeof opt->g->err];
        memcpy(keep, opt->g->err, sizeof keep);
        dg_set_error(opt->g, s, "optimizer_step: %s", keep);
    }
    return s;
}

dg_node *dg_optimizer_step_node(const dg_optimizer *opt) { return opt ? opt->step : NULL; }
dg_node *dg_optimizer_loss(const dg_optimizer *opt) { return opt ? opt->loss : NULL; }

dg_status dg_optimizer_set_lr(dg_optimizer *opt, float lr) {
    if (!opt) return dg_set_error(NULL, DG_ERR_NULL, "optimizer_set_lr: optimizer is NULL");
    if (!(lr >= 0.0f) || !isfinite(lr))
        return dg_set_error(opt->g, DG_ERR_ARG,
                            "optimizer_set_lr: lr must be finite and >= 0, "
                            "got %g",
                            lr);
    opt->lr_state->value[0] = lr;
    return DG_OK;
}

float dg_optimizer_lr(const dg_optimizer *opt) {
    if (!opt) return NAN;
    return (float)dg__schedule_lr(&opt->cfg, opt->lr_state->value[0], opt->step_state->value[0]);
}

int64_t dg_optimizer_steps(const dg_optimizer *opt) {
    return opt ? (int64_t)opt->step_state->value[0] : 0;
}
