/* Optimizers as graph builders. dg_optimizer_new differentiates the loss (dg_backward) and
 * adds:
 *   - DG_STATE scalars "<opt>/step" (steps taken) and "<opt>/lr" (base learning rate), and
 *     per parameter its moments "<param>/<opt>_<moment>", so checkpoints with state keep them;
 *   - with clipping by global norm, one "optim_sumsq" node: the sum of squares of every
 *     (value-clipped) gradient;
 *   - "optim_prepare", which reads the step count, the base lr, the loss and that sum,
 *     refuses a non-finite loss (the step then stops before any parameter changes), writes
 *     the step's control vector (lr from the schedule, clip scale, bias corrections) and
 *     increments the step count in place;
 *   - one update op per parameter (src/optim/updates.c), writing the parameter and its
 *     moments in place;
 *   - "optim_step", which depends on every update and yields the loss.
 * Nothing here relies on creation order: each in-place write is declared in the op's
 * `writes`, so a plan runs every other reader of a parameter (its forward and backward
 * products, the gradients) before the parameter's update, and every update after
 * optim_prepare through the control vector it reads. Nothing allocates during a step. */
#include "optim_internal.h"

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

static dg_status scalar_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                             size_t size) {
    (void)in, (void)n, (void)a, (void)msg, (void)size;
    *out = dg_shape0();
    return DG_OK;
}

static dg_status ctl_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                          size_t size) {
    (void)in, (void)n, (void)a, (void)msg, (void)size;
    *out = dg_shape1(DG_CTL_SIZE);
    return DG_OK;
}

static const dg_optimizer *optimizer_of(const dg_node *self) {
    return *(dg_optimizer *const *)dg_node_attrs(self);
}

static const float *in_data(const dg_node *self, int k) {
    return dg_node_data(dg_node_input(self, k));
}

/* sum over all inputs (the gradients) of clamp(g_i)^2. Sequential in double: one fixed
 * order for any thread count. */
static dg_status sumsq_forward(dg_node *self) {
    const float cv = optimizer_of(self)->cfg.clip_value;
    double acc = 0.0;
    for (int k = 0; k < dg_node_input_count(self); k++) {
        const float *restrict g = in_data(self, k);
        int64_t n = dg_node_numel(dg_node_input(self, k));
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            if (cv > 0.0f) gi = gi < -cv ? -cv : (gi > cv ? cv : gi);
            acc += (double)gi * gi;
        }
    }
    dg_node_data(self)[0] = (float)acc;
    return DG_OK;
}
static const dg_op_def sumsq_op = {.name = "optim_sumsq",
                                   .n_inputs = DG_VARIADIC,
                                   .flags = DG_OP_NO_GRAD,
                                   .infer_shape = scalar_rule,
                                   .forward = sumsq_forward};

/* Inputs: step count (written), base lr, loss, and with clipping the sum of squared
 * gradients. Clip scale as PyTorch's clip_grad_norm_: min(1, max_norm / (norm + 1e-6)). */
static dg_status prepare_forward(dg_node *self) {
    const dg_optimizer *opt = optimizer_of(self);
    const dg_optim_config *c = &opt->cfg;
    float *ctl = dg_node_data(self), *steps = dg_node_data(dg_node_input(self, 0));
    double t = steps[0], base = in_data(self, 1)[0];
    float loss = in_data(self, 2)[0];
    if (!isfinite(loss))
        /* stop before any update: parameters and moments keep their last finite values */
        return dg_set_error(dg_node_graph(self), DG_ERR_NONFINITE,
                            "optimizer_step: the loss is %g at step %.0f, so no parameter was "
                            "updated (training diverged: lower the learning rate, or turn on "
                            "dg_set_anomaly_mode to find the op that first produced it)",
                            (double)loss, t + 1.0);
    ctl[DG_CTL_LR] = (float)dg__schedule_lr(c, base, t);
    double scale = 1.0;
    if (c->clip_norm > 0.0f) {
        double norm = sqrt((double)in_data(self, 3)[0]);
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
static const dg_op_def prepare_op = {.name = "optim_prepare",
                                     .n_inputs = DG_VARIADIC,
                                     .flags = DG_OP_NO_GRAD,
                                     .writes = 1u << 0,
                                     .infer_shape = ctl_rule,
                                     .forward = prepare_forward};

/* Inputs: the loss, then every update (for ordering). Its value is the loss before the
 * updates. */
static dg_status step_forward(dg_node *self) {
    dg_node_data(self)[0] = in_data(self, 0)[0];
    return DG_OK;
}
static const dg_op_def step_op = {.name = "optim_step",
                                  .n_inputs = DG_VARIADIC,
                                  .flags = DG_OP_NO_GRAD,
                                  .infer_shape = scalar_rule,
                                  .forward = step_forward};

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

/* The parameters the loss depends on: those that received a gradient in this pass. */
static int trained(const dg_node *p, int pass) {
    const dg_node *gr = dg_grad(p);
    return dg_node_kind_of(p) == DG_PARAM && gr && dg_node_backward_pass(gr) == pass;
}

/* Builds the state, prepare, update and step nodes for the parameters among the first
 * n_before nodes that got a gradient in backward pass `pass`; `hooks` may replace those
 * gradients first. */
static dg_status build(dg_optimizer *o, int n_before, int pass, const dg_optim_hooks *hooks) {
    dg_graph *g = o->g;
    const dg_optim_config *c = &o->cfg;
    char nm[600];
    snprintf(nm, sizeof nm, "%s/step", o->name);
    o->step_state = dg_state(g, nm, dg_shape0());
    snprintf(nm, sizeof nm, "%s/lr", o->name);
    o->lr_state = dg_state(g, nm, dg_shape0());
    if (!o->step_state || !o->lr_state) return dg_graph_status(g);
    dg_node_data(o->lr_state)[0] = c->lr;

    for (int pi = 0; pi < n_before; pi++) o->n_params += trained(dg_graph_node(g, pi), pass);
    if (o->n_params == 0)
        return dg_set_error(g, DG_ERR_ARG,
                            "optimizer_new: the loss (node %d) depends on no parameter "
                            "(dg_param) through differentiable ops",
                            dg_node_id(o->loss));
    /* the parameters, their gradients, and the inputs of the variadic step node */
    size_t n = (size_t)o->n_params;
    dg_node **params = malloc(n * sizeof *params), **grads = malloc(n * sizeof *grads);
    dg_node **list = malloc((n + 4) * sizeof *list);
    dg_status s = DG_OK;
    if (!params || !grads || !list) {
        s = dg_set_error(g, DG_ERR_NOMEM, "optimizer_new: out of memory");
        goto done;
    }
    for (int pi = 0, k = 0; pi < n_before; pi++) {
        dg_node *p = dg_graph_node(g, pi);
        if (trained(p, pass)) params[k] = p, grads[k++] = dg_grad(p);
    }
    if (hooks && hooks->gradients) {
        s = hooks->gradients(hooks->ctx, g, o->n_params, params, grads);
        for (int k = 0; s == DG_OK && k < o->n_params; k++)
            if (!grads[k] || dg_node_graph(grads[k]) != g ||
                !dg_shape_equal(dg_node_shape(grads[k]), dg_node_shape(params[k])))
                s = dg_set_error(g, DG_ERR_ARG,
                                 "optimizer_new: the gradients hook returned no gradient of "
                                 "parameter %d's shape in this graph",
                                 k);
        if (s != DG_OK) goto done;
    }
    const dg_optimizer *self = o;
    dg_node *pin[4] = {o->step_state, o->lr_state, o->loss, NULL};
    int n_pin = 3;
    if (c->clip_norm > 0.0f &&
        !(pin[n_pin++] = dg_apply(g, &sumsq_op, o->n_params, grads, &self, sizeof self)))
        goto fail;
    if (!(o->ctl = dg_apply(g, &prepare_op, n_pin, pin, &self, sizeof self))) goto fail;

    const dg_op_def *op = dg__update_op(c->kind);
    int ns = dg__update_state_count(c->kind), k = 0;
    list[k++] = o->loss;
    for (int i = 0; i < o->n_params; i++) {
        dg_node *p = params[i];
        dg_node *in[5] = {p, grads[i], o->ctl};
        for (int j = 0; j < ns; j++) {
            char pn[32];
            if (!dg_node_name(p)) snprintf(pn, sizeof pn, "param%d", dg_node_id(p));
            snprintf(nm, sizeof nm, "%s/%s_%s", dg_node_name(p) ? dg_node_name(p) : pn, o->name,
                     dg__update_state_suffix(c->kind, j));
            if (!(in[3 + j] = dg_state(g, nm, dg_node_shape(p)))) goto fail;
        }
        if (!(list[k++] = dg_apply(g, op, 3 + ns, in, &self, sizeof self))) goto fail;
    }
    if (!(o->step = dg_apply(g, &step_op, k, list, NULL, 0))) goto fail;
    snprintf(nm, sizeof nm, "%s/train_step", o->name);
    s = dg_node_set_name(o->step, nm);
    goto done;
fail:
    s = dg_graph_status(g);
done:
    free(params);
    free(grads);
    free(list);
    return s;
}

dg_optimizer *dg_optimizer_new(dg_graph *g, dg_node *loss, const dg_optim_config *cfg) {
    return dg_optimizer_new_ex(g, loss, cfg, NULL);
}

dg_optimizer *dg_optimizer_new_ex(dg_graph *g, dg_node *loss, const dg_optim_config *cfg,
                                  const dg_optim_hooks *hooks) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "optimizer_new: graph is NULL"), NULL;
    if (!loss) return dg_set_error(g, DG_ERR_NULL, "optimizer_new: loss is NULL"), NULL;
    if (!cfg) return dg_set_error(g, DG_ERR_NULL, "optimizer_new: config is NULL"), NULL;
    if (dg_node_graph(loss) != g)
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
        if (!dg_graph_find(g, probe)) break;
    }

    dg_mark m = dg_graph_mark(g);
    dg_status s = dg_backward(g, loss);
    if (s == DG_OK) {
        /* the gradients of this loss: their pass is the one of the loss's own gradient */
        s = build(o, m.nodes, dg_node_backward_pass(dg_grad(loss)), hooks);
        /* the loss stays readable after each step (dg_value(loss)) */
        if (s == DG_OK) s = dg_keep(loss);
        if (s == DG_OK) s = dg_graph_attach(g, o, free);
    }
    if (s != DG_OK) {
        /* leave the graph as it was: "optimizer_new: backward: loss must be a scalar, ..." */
        dg_graph_rollback(g, m, "optimizer_new");
        free(o);
        return NULL;
    }
    return o;
}

/* ---- using ---- */

dg_status dg_optimizer_step(dg_optimizer *opt) {
    if (!opt) return dg_set_error(NULL, DG_ERR_NULL, "optimizer_step: optimizer is NULL");
    dg_status s = dg_run(opt->g, opt->step);
    return s == DG_OK ? s : dg_error_prefix(opt->g, "optimizer_step");
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
    dg_node_data(opt->lr_state)[0] = lr;
    return DG_OK;
}

float dg_optimizer_lr(const dg_optimizer *opt) {
    if (!opt) return NAN;
    return (float)dg__schedule_lr(&opt->cfg, dg_node_data(opt->lr_state)[0],
                                  dg_node_data(opt->step_state)[0]);
}

int64_t dg_optimizer_steps(const dg_optimizer *opt) {
    return opt ? (int64_t)dg_node_data(opt->step_state)[0] : 0;
}
