/* Each optimizer's first three updates against the published update rules, evaluated
 * here in double precision: PyTorch's SGD (plain, momentum, Nesterov's look-ahead form),
 * Adam with bias correction, AdamW's decoupled decay, RMSprop, L2 weight decay, clipping by
 * global norm and by value; the learning rate of every schedule and of warm-up; the step
 * counter and learning rate living in state nodes. */
#include "test_util.h"

#include <string.h>

#define N 4
static const float w0[N] = {0.5f, -1.5f, 2.0f, 0.25f};
static const float cc[N] = {1.0f, -2.0f, 0.5f, 3.0f};

/* loss = sum(c w) + 0.5 sum(w^2), so the gradient is c + w: it changes as w moves. */
typedef struct setup {
    dg_graph *g;
    dg_node *w, *loss;
    dg_optimizer *opt;
} setup;

static setup make(const dg_optim_config *cfg) {
    setup s;
    s.g = dg_graph_new(7);
    s.w = dg_param(s.g, "w", dg_shape1(N));
    dg_feed(s.w, w0, N);
    dg_node *c = dg_const(s.g, "c", dg_shape1(N), cc, 0);
    s.loss = dg_add(s.g, dg_sum(s.g, dg_mul(s.g, c, s.w)),
                    dg_scale(s.g, dg_sum(s.g, dg_mul(s.g, s.w, s.w)), 0.5f));
    s.opt = dg_optimizer_new(s.g, s.loss, cfg);
    CHECK_MSG(s.opt != NULL, "optimizer_new: %s", dg_graph_error(s.g));
    return s;
}

/* The reference: state of the hand computation. */
typedef struct ref {
    double p[N], b[N], m[N], v[N];
} ref;

static double ref_lr(const dg_optim_config *c, int t) {
    const double pi = 3.14159265358979323846;
    double lr = c->lr;
    if (c->schedule == DG_SCHED_STEP) lr = c->lr * pow(c->gamma, t / c->step_size);
    if (c->schedule == DG_SCHED_EXPONENTIAL) lr = c->lr * pow(c->gamma, t);
    if (c->schedule == DG_SCHED_COSINE) {
        int tt = t < c->t_max ? t : (int)c->t_max;
        lr = c->lr_min + (c->lr - c->lr_min) * 0.5 * (1 + cos(pi * tt / (double)c->t_max));
    }
    if (t < c->warmup_steps) lr *= (t + 1.0) / (double)c->warmup_steps;
    return lr;
}

/* One step of the published rule; t is the 0-based step index. */
static void ref_step(const dg_optim_config *c, ref *r, int t) {
    double lr = ref_lr(c, t), grad[N], sq = 0;
    for (int i = 0; i < N; i++) {
        double gi = cc[i] + r->p[i];
        if (c->clip_value > 0) gi = fmax(-c->clip_value, fmin(c->clip_value, gi));
        grad[i] = gi;
        sq += gi * gi;
    }
    double scale = 1.0;
    if (c->clip_norm > 0) scale = fmin(1.0, c->clip_norm / (sqrt(sq) + 1e-6));
    double b1t = 1 - pow(c->beta1, t + 1), b2t = 1 - pow(c->beta2, t + 1);
    for (int i = 0; i < N; i++) {
        double gi = grad[i] * scale;
        if (c->kind != DG_ADAMW) gi += c->weight_decay * r->p[i];
        switch (c->kind) {
        case DG_SGD: r->p[i] -= lr * gi; break;
        case DG_MOMENTUM:
            r->b[i] = c->momentum * r->b[i] + gi;
            r->p[i] -= lr * r->b[i];
            break;
        case DG_NESTEROV:
            r->b[i] = c->momentum * r->b[i] + gi;
            r->p[i] -= lr * (gi + c->momentum * r->b[i]);
            break;
        case DG_ADAMW: r->p[i] *= 1 - lr * c->weight_decay; /* fall through */
        case DG_ADAM: {
            r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * gi;
            r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * gi * gi;
            double mhat = r->m[i] / b1t, vhat = r->v[i] / b2t;
            r->p[i] -= lr * mhat / (sqrt(vhat) + c->eps);
            break;
        }
        case DG_RMSPROP:
            r->v[i] = c->alpha * r->v[i] + (1 - c->alpha) * gi * gi;
            r->p[i] -= lr * gi / (sqrt(r->v[i]) + c->eps);
            break;
        }
    }
}

static void three_steps(const char *what, dg_optim_config cfg) {
    setup s = make(&cfg);
    if (!s.opt) {
        dg_graph_free(s.g);
        return;
    }
    ref r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < N; i++) r.p[i] = w0[i];
    for (int t = 0; t < 3; t++) {
        CHECK_NEAR(dg_optimizer_lr(s.opt), ref_lr(&cfg, t), 1e-7 * fabs(ref_lr(&cfg, t)) + 1e-12);
        /* the loss before the update, from the step node */
        double loss = 0;
        for (int i = 0; i < N; i++) loss += cc[i] * r.p[i] + 0.5 * r.p[i] * r.p[i];
        CHECK_OK(dg_optimizer_step(s.opt));
        CHECK_NEAR(dg_value(dg_optimizer_step_node(s.opt)), loss, 1e-5 * fabs(loss) + 1e-6);
        ref_step(&cfg, &r, t);
        const float *w = dg_node_data(s.w);
        for (int i = 0; i < N; i++)
            CHECK_MSG(fabs(w[i] - r.p[i]) <= 2e-6 * fabs(r.p[i]) + 1e-6,
                      "%s step %d w[%d] = %.9g, rule gives %.9g", what, t + 1, i, (double)w[i],
                      r.p[i]);
        CHECK(dg_optimizer_steps(s.opt) == t + 1);
    }
    dg_graph_free(s.g);
}

static dg_node *find(dg_graph *g, const char *name) {
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        const char *n = dg_node_name(dg_graph_node(g, i));
        if (n && strcmp(n, name) == 0) return dg_graph_node(g, i);
    }
    return NULL;
}

static void rules(void) {
    dg_optim_config c = dg_optim_defaults(DG_SGD);
    c.lr = 0.1f;
    three_steps("sgd", c);
    c.weight_decay = 0.2f;
    three_steps("sgd+wd", c);
    c.weight_decay = 0;
    c.clip_norm = 0.5f; /* the first gradient has norm ~5: clipping is active */
    three_steps("sgd+clip_norm", c);
    c.clip_norm = 0;
    c.clip_value = 0.3f;
    three_steps("sgd+clip_value", c);
    c.clip_norm = 1.0f;
    three_steps("sgd+clip_value+clip_norm", c);

    c = dg_optim_defaults(DG_MOMENTUM);
    c.lr = 0.1f;
    three_steps("momentum", c);
    c.weight_decay = 0.1f;
    three_steps("momentum+wd", c);

    c = dg_optim_defaults(DG_NESTEROV);
    c.lr = 0.1f;
    c.momentum = 0.8f;
    three_steps("nesterov", c);
    c.weight_decay = 0.1f;
    three_steps("nesterov+wd", c);

    c = dg_optim_defaults(DG_ADAM);
    c.lr = 0.1f;
    three_steps("adam", c);
    c.beta1 = 0.5f;
    c.beta2 = 0.75f;
    c.eps = 1e-3f;
    three_steps("adam betas", c);
    c.weight_decay = 0.3f;
    three_steps("adam+l2", c);
    c.clip_norm = 0.5f;
    three_steps("adam+l2+clip_norm", c);

    c = dg_optim_defaults(DG_ADAMW);
    CHECK_NEAR(c.weight_decay, 0.01, 1e-9);
    c.lr = 0.1f;
    c.weight_decay = 0.5f;
    three_steps("adamw", c);

    c = dg_optim_defaults(DG_RMSPROP);
    c.lr = 0.01f;
    three_steps("rmsprop", c);
    c.alpha = 0.9f;
    c.weight_decay = 0.1f;
    three_steps("rmsprop+wd", c);
}

static void schedules(void) {
    dg_optim_config c = dg_optim_defaults(DG_SGD);
    c.lr = 0.2f;
    c.schedule = DG_SCHED_STEP;
    c.gamma = 0.5f;
    c.step_size = 2;
    three_steps("sgd step schedule", c); /* lr 0.2, 0.2, 0.1 */
    c.schedule = DG_SCHED_EXPONENTIAL;
    c.gamma = 0.7f;
    three_steps("sgd exponential schedule", c);
    c.schedule = DG_SCHED_COSINE;
    c.t_max = 4;
    c.lr_min = 0.01f;
    three_steps("sgd cosine schedule", c);
    c.schedule = DG_SCHED_CONSTANT;
    c.warmup_steps = 3;
    three_steps("sgd warm-up", c);

    /* the lr values over a longer run, with known numbers */
    c = dg_optim_defaults(DG_SGD);
    c.lr = 1.0f;
    c.schedule = DG_SCHED_COSINE;
    c.t_max = 4;
    c.lr_min = 0.0f;
    setup s = make(&c);
    const double cosine[7] = {1.0, 0.853553390593, 0.5, 0.146446609407, 0.0, 0.0, 0.0};
    for (int t = 0; t < 7; t++) {
        CHECK_NEAR(dg_optimizer_lr(s.opt), cosine[t], 1e-6);
        CHECK_OK(dg_optimizer_step(s.opt));
    }
    dg_graph_free(s.g);

    c.schedule = DG_SCHED_STEP;
    c.gamma = 0.1f;
    c.step_size = 3;
    c.warmup_steps = 2;
    s = make(&c);
    const double stepped[8] = {0.5, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01};
    for (int t = 0; t < 8; t++) {
        CHECK_NEAR(dg_optimizer_lr(s.opt), stepped[t], 1e-7);
        CHECK_OK(dg_optimizer_step(s.opt));
    }
    dg_graph_free(s.g);
}

/* Set lr between steps; the counter and base lr are state nodes, read back from them. */
static void state_and_lr(void) {
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    setup s = make(&c);
    dg_node *steps = find(s.g, "adam/step"), *lr = find(s.g, "adam/lr");
    CHECK(steps && lr);
    CHECK(find(s.g, "w/adam_m") && find(s.g, "w/adam_v"));
    CHECK(steps && dg_node_kind_of(steps) == DG_STATE);
    CHECK(find(s.g, "w/adam_m") && dg_node_kind_of(find(s.g, "w/adam_m")) == DG_STATE);
    CHECK(dg_optimizer_steps(s.opt) == 0);
    CHECK_OK(dg_optimizer_step(s.opt));
    CHECK_OK(dg_optimizer_step(s.opt));
    CHECK(steps && dg_value(steps) == 2.0f);
    CHECK_OK(dg_optimizer_set_lr(s.opt, 0.25f));
    CHECK(lr && dg_value(lr) == 0.25f);
    CHECK_NEAR(dg_optimizer_lr(s.opt), 0.25, 1e-9);
    CHECK(dg_optimizer_set_lr(s.opt, -1.0f) == DG_ERR_ARG);
    CHECK(dg_optimizer_set_lr(s.opt, NAN) == DG_ERR_ARG);
    /* a loaded counter (as a checkpoint load writes it) is what the optimizer reports */
    if (steps) {
        float v = 41.0f;
        CHECK_OK(dg_feed(steps, &v, 1));
        CHECK(dg_optimizer_steps(s.opt) == 41);
        CHECK_OK(dg_optimizer_step(s.opt));
        CHECK(dg_optimizer_steps(s.opt) == 42);
    }
    /* a second optimizer of the same kind gets its own names */
    dg_optimizer *o2 = dg_optimizer_new(s.g, s.loss, &c);
    CHECK(o2 != NULL);
    CHECK(find(s.g, "adam2/step") && find(s.g, "w/adam2_m"));
    CHECK(dg_optimizer_loss(o2) == s.loss);
    dg_graph_free(s.g);

    /* the set lr is used by the next SGD step: the change is exactly lr * grad */
    c = dg_optim_defaults(DG_SGD);
    s = make(&c);
    CHECK_OK(dg_optimizer_set_lr(s.opt, 0.5f));
    CHECK_OK(dg_optimizer_step(s.opt));
    for (int i = 0; i < N; i++)
        CHECK_NEAR(dg_node_data(s.w)[i], w0[i] - 0.5 * (cc[i] + w0[i]), 1e-6);
    dg_graph_free(s.g);
}

/* Only parameters the loss depends on are updated; errors leave the graph untouched. */
static void scope_and_errors(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *a = dg_param(g, "a", dg_shape1(2)), *b = dg_param(g, "b", dg_shape1(2));
    float one[2] = {1, 1};
    dg_feed(a, one, 2);
    dg_feed(b, one, 2);
    dg_node *lb = dg_sum(g, dg_mul(g, b, b));
    CHECK_OK(dg_backward(g, lb)); /* b now has a stale gradient from another loss */
    dg_node *la = dg_sum(g, dg_mul(g, a, a));
    int before = dg_graph_node_count(g);

    dg_optim_config c = dg_optim_defaults(DG_SGD);
    c.lr = -1;
    CHECK(dg_optimizer_new(g, la, &c) == NULL);
    CHECK(dg_graph_status(g) == DG_ERR_ARG);
    CHECK(strstr(dg_graph_error(g), "lr") != NULL);
    c = dg_optim_defaults(DG_SGD);
    c.schedule = DG_SCHED_COSINE;
    CHECK(dg_optimizer_new(g, la, &c) == NULL);
    CHECK(strstr(dg_graph_error(g), "t_max") != NULL);
    c = dg_optim_defaults(DG_ADAM);
    c.beta1 = 1.0f;
    CHECK(dg_optimizer_new(g, la, &c) == NULL);
    c = dg_optim_defaults(DG_SGD);
    c.schedule = DG_SCHED_STEP;
    CHECK(dg_optimizer_new(g, la, &c) == NULL);
    CHECK(dg_optimizer_new(g, NULL, &c) == NULL);
    CHECK(dg_optimizer_new(g, la, NULL) == NULL);
    CHECK(dg_optimizer_new(NULL, la, &c) == NULL);
    dg_node *x = dg_input(g, "x", dg_shape1(2));
    dg_set_requires_grad(x, 1);
    c = dg_optim_defaults(DG_SGD);
    CHECK(dg_optimizer_new(g, dg_sum(g, x), &c) == NULL); /* no parameter */
    CHECK(strstr(dg_graph_error(g), "no parameter") != NULL);
    CHECK(dg_graph_node_count(g) == before + 2); /* only x and its sum were added */

    c.lr = 0.5f;
    dg_optimizer *o = dg_optimizer_new(g, la, &c);
    CHECK(o != NULL);
    CHECK_OK(dg_optimizer_step(o));
    CHECK_NEAR(dg_node_data(a)[0], 0.0, 1e-7); /* 1 - 0.5 * 2 */
    CHECK(dg_node_data(b)[0] == 1.0f);         /* untouched */
    CHECK(dg_grad(a) != NULL);                 /* dg_backward was used */
    CHECK(dg_optimizer_step(NULL) == DG_ERR_NULL);
    CHECK(dg_optimizer_steps(NULL) == 0);
    CHECK(isnan(dg_optimizer_lr(NULL)));
    dg_graph_free(g);
}

int main(void) {
    rules();
    schedules();
    state_and_lr();
    scope_and_errors();
    return test_summary("test_optim_rules");
}
