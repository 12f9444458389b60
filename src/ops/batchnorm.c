/* Batch normalisation of x [N,C,...] per channel c (axis 1), over the batch and every axis
 * after the channel (M = N x H x W values per channel for images):
 *
 *   training:   m = mean(x_c),  v = mean((x_c - m)^2)          (batch statistics)
 *               running_mean <- (1 - momentum) running_mean + momentum m
 *               running_var  <- (1 - momentum) running_var  + momentum v M / (M - 1)
 *   evaluation: m = running_mean, v = running_var
 *   y = gamma (x - m) / sqrt(v + eps) + beta  =  x s + t,   s = gamma / sqrt(v + eps),
 *                                                           t = beta - m s
 * (PyTorch's definition: the running variance is unbiased, normalisation uses the biased
 * one.) Two ops give the statistics and update the running ones in place (their `writes`):
 *   batch_norm_mean (x, running_mean)      dx = f dm / M              broadcast over x
 *   batch_norm_var  (x, m, running_var)    dx = f 2 (x - m) dv / M,   dm = -sum(dx)
 * where f = 1 in training mode and 0 in evaluation (the statistics are then constants);
 * f is itself a node (batch_norm_training, no gradient), so the backward graph serves both
 * modes and whatever the run decides. Everything else (s, t, y) is ordinary ops, so the
 * engine differentiates it, twice if asked. Channel sums run in double, one channel per
 * loop iteration, in a fixed order: bitwise the same for any thread count. */
#include "kernels.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef struct bn_attrs {
    float momentum;
} bn_attrs;

static const dg_attr_field bn_fields[] = {
    {"momentum", DG_ATTR_FLOAT, offsetof(bn_attrs, momentum), 1}, {NULL, DG_ATTR_INT, 0, 0}};

/* x [N,C,...] as [N, C, S]. */
typedef struct bn_geom {
    int64_t n, c, s;
} bn_geom;

static bn_geom bn_geometry(dg_shape x) {
    bn_geom g = {x.dim[0], x.dim[1], 1};
    for (int i = 2; i < x.ndim; i++) g.s *= x.dim[i];
    return g;
}

/* x has rank 2-4, and every other input is a vector of its C channels. */
static dg_status bn_check(dg_node *const *in, int n, dg_shape *out, char *msg, size_t size) {
    dg_shape xs = in[0]->shape;
    char sx[64], sv[64];
    dg_shape_str(xs, sx, sizeof sx);
    if (xs.ndim < 2) {
        snprintf(msg, size, "input must be [N,C] or [N,C,H,W], got %s", sx);
        return DG_ERR_SHAPE;
    }
    for (int i = 1; i < n; i++) {
        dg_shape v = in[i]->shape;
        if (v.ndim != 1 || v.dim[0] != xs.dim[1]) {
            snprintf(msg, size, "statistics %s do not match the %lld channels of input %s",
                     dg_shape_str(v, sv, sizeof sv), (long long)xs.dim[1], sx);
            return DG_ERR_SHAPE;
        }
    }
    *out = dg_shape1(xs.dim[1]);
    return DG_OK;
}

static dg_status mean_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                           size_t size) {
    (void)a;
    return bn_check(in, n, out, msg, size);
}

typedef struct bn_job {
    bn_geom g;
    const float *x, *m;
    float *out, *running;
    float momentum;
    int training;
} bn_job;

/* Per channel: sum over n and s of x (or of (x - m)^2 when m is given), in double. */
static void channel_range(void *ctx, int64_t lo, int64_t hi) {
    const bn_job *j = ctx;
    const bn_geom *g = &j->g;
    double count = (double)(g->n * g->s);
    for (int64_t c = lo; c < hi; c++) {
        double acc = 0.0;
        double mc = j->m ? j->m[c] : 0.0;
        for (int64_t n = 0; n < g->n; n++) {
            const float *x = j->x + (n * g->c + c) * g->s;
            if (j->m)
                for (int64_t i = 0; i < g->s; i++) acc += ((double)x[i] - mc) * ((double)x[i] - mc);
            else
                for (int64_t i = 0; i < g->s; i++) acc += x[i];
        }
        double stat = acc / count;
        j->out[c] = (float)stat;
        /* the variance goes into the running average unbiased */
        if (j->m) stat *= count / (count - 1.0);
        j->running[c] = (1.0f - j->momentum) * j->running[c] + j->momentum * (float)stat;
    }
}

static dg_status stat_forward(dg_node *self, const float *m, dg_node *running) {
    dg_node *x = self->inputs[0];
    bn_job j = {bn_geometry(x->shape),
                x->value,
                m,
                self->value,
                running->value,
                ((const bn_attrs *)self->attrs)->momentum,
                dg_is_training(self->graph)};
    if (!j.training) {
        for (int64_t c = 0; c < j.g.c; c++) j.out[c] = j.running[c];
        return DG_OK;
    }
    if (m && j.g.n * j.g.s < 2) {
        char sx[64];
        return dg_set_error(self->graph, DG_ERR_SHAPE,
                            "batch_norm: training needs more than one value per channel, got "
                            "input %s (use evaluation mode for single values)",
                            dg_shape_str(x->shape, sx, sizeof sx));
    }
    dg_parallel_for(j.g.c, j.g.n * j.g.s * 3, channel_range, &j);
    return DG_OK;
}

/* inputs: x, running_mean (written) */
static dg_status mean_forward(dg_node *self) { return stat_forward(self, NULL, self->inputs[1]); }

/* inputs: x, m, running_var (written) */
static dg_status var_forward(dg_node *self) {
    return stat_forward(self, self->inputs[1]->value, self->inputs[2]);
}

/* ---- the training flag ---- */

static dg_status flag_rule(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                           size_t size) {
    (void)in, (void)n, (void)a, (void)msg, (void)size;
    *out = dg_shape0();
    return DG_OK;
}

static dg_status flag_forward(dg_node *self) {
    self->value[0] = dg_is_training(self->graph) ? 1.0f : 0.0f;
    return DG_OK;
}

/* Reads nothing of its input but its graph's mode. */
static const dg_op_def flag_op = {.name = "batch_norm_training",
                                  .n_inputs = 1,
                                  .flags = DG_OP_NO_GRAD,
                                  .shape_only = 1u << 0,
                                  .infer_shape = flag_rule,
                                  .forward = flag_forward};

/* ---- backward rules ---- */

/* x's channel vectors [C] as [C,1,...]: they broadcast against x [N,C,...]. */
static dg_node *as_channels(dg_graph *g, dg_node *v, dg_shape xs) {
    dg_shape s = dg_shape1(xs.dim[1]);
    s.ndim = xs.ndim - 1;
    for (int i = 1; i < s.ndim; i++) s.dim[i] = 1;
    return dg_reshape(g, v, s);
}

/* f / M as a scalar: the factor every statistic's gradient carries. */
static dg_node *flag_over_count(dg_graph *g, dg_node *x, dg_node *running) {
    dg_node *count = dg_div(g, dg_numel_of(g, x), dg_scalar(g, (float)dg_node_shape(x).dim[1]));
    return dg_div(g, dg_apply(g, &flag_op, 1, &running, NULL, 0), count);
}

static dg_status mean_backward(dg_graph *g, dg_node *self, dg_node *dm, dg_node **dx) {
    dg_node *x = self->inputs[0];
    dg_node *d = dg_mul(g, dm, flag_over_count(g, x, self->inputs[1]));
    dx[0] = dg_broadcast_like(g, as_channels(g, d, x->shape), x);
    return dx[0] ? DG_OK : dg_graph_status(g);
}

static dg_status var_backward(dg_graph *g, dg_node *self, dg_node *dv, dg_node **dx) {
    dg_node *x = self->inputs[0], *m = self->inputs[1];
    dg_node *d = dg_scale(g, dg_mul(g, dv, flag_over_count(g, x, self->inputs[2])), 2.0f);
    dg_node *gx = dg_mul(g, dg_sub(g, x, as_channels(g, m, x->shape)), as_channels(g, d, x->shape));
    if (!gx) return dg_graph_status(g);
    if (x->requires_grad) dx[0] = gx;
    if (m->requires_grad) {
        dg_node *sum = dg_sum_to(g, gx, dg_node_shape(as_channels(g, m, x->shape)));
        if (!(dx[1] = dg_neg(g, dg_reshape_like(g, sum, m)))) return dg_graph_status(g);
    }
    return DG_OK;
}

static const dg_op_def mean_op = {.name = "batch_norm_mean",
                                  .n_inputs = 2,
                                  .writes = 1u << 1,
                                  .infer_shape = mean_rule,
                                  .forward = mean_forward,
                                  .backward = mean_backward,
                                  .attr_fields = bn_fields};

static const dg_op_def var_op = {.name = "batch_norm_var",
                                 .n_inputs = 3,
                                 .writes = 1u << 2,
                                 .infer_shape = mean_rule,
                                 .forward = var_forward,
                                 .backward = var_backward,
                                 .attr_fields = bn_fields};

dg_node *dg_batch_normalize(dg_graph *g, dg_node *x, dg_node *gamma, dg_node *beta,
                            dg_node *running_mean, dg_node *running_var, float momentum,
                            float eps) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "batch_norm: graph is NULL"), NULL;
    if (!(momentum >= 0.0f && momentum <= 1.0f) || !(eps > 0.0f) || !isfinite(eps))
        return dg_set_error(g, DG_ERR_ARG,
                            "batch_norm: momentum must be in [0, 1] and eps > 0, got %g and %g",
                            (double)momentum, (double)eps),
               NULL;
    if (!running_mean || !running_var)
        return dg_set_error(g, DG_ERR_NULL, "batch_norm: running statistics are NULL"), NULL;
    const dg_node *stats[2] = {running_mean, running_var};
    for (int i = 0; i < 2; i++)
        if (stats[i]->kind == DG_OP_NODE)
            return dg_set_error(g, DG_ERR_ARG,
                                "batch_norm: running statistics must be leaves (dg_state), node "
                                "%d is op %s",
                                stats[i]->id, stats[i]->op->name),
                   NULL;
    dg_node *affine[2] = {gamma, beta};
    for (int i = 0; i < 2 && x; i++) {
        dg_shape v = dg_node_shape(affine[i]), xs = dg_node_shape(x);
        if (affine[i] && (xs.ndim < 2 || v.ndim != 1 || v.dim[0] != xs.dim[1])) {
            char b0[64], b1[64];
            return dg_set_error(g, DG_ERR_SHAPE,
                                "batch_norm: %s %s does not match the channels of input %s",
                                i ? "beta" : "gamma", dg_shape_str(v, b0, sizeof b0),
                                dg_shape_str(xs, b1, sizeof b1)),
                   NULL;
        }
    }
    bn_attrs a = {momentum};
    dg_mark mk = dg_graph_mark(g);
    dg_node *m = dg__apply2(g, &mean_op, x, running_mean, &a, sizeof a);
    dg_node *in[3] = {x, m, running_var};
    dg_node *v = m ? dg_apply(g, &var_op, 3, in, &a, sizeof a) : NULL;
    dg_node *s = dg_pow(g, dg_shift(g, v, eps), -0.5f);
    if (gamma) s = dg_mul(g, s, gamma);
    dg_node *t = dg_neg(g, dg_mul(g, m, s));
    if (beta) t = dg_add(g, t, beta);
    dg_node *y = NULL;
    if (t) {
        dg_shape xs = x->shape;
        y = dg_add(g, dg_mul(g, x, as_channels(g, s, xs)), as_channels(g, t, xs));
    }
    if (!y) dg_graph_rollback(g, mk, "batch_norm");
    return y;
}
