/* Resuming from a checkpoint: N training steps without interruption, and k steps, a save
 * with state, a fresh graph (built from another seed, so every initial value differs), a
 * load and N-k more steps, must end with the same parameters and optimizer state bit for
 * bit. The optimizer is stateful in every way it can be (Adam moments, step count driving
 * bias correction, warm-up and a cosine schedule, weight decay, clipping by global norm).
 * A dropout layer draws a fresh mask every step; its generator state is saved too.
 * Loading without state must not reproduce the run: the control shows the test can fail. */
#include "test_util.h"

#include <string.h>
#include <unistd.h>

enum { N = 20, K = 7, BATCH = 16, IN = 4, CLASSES = 3, N_BATCHES = 4 };

static float batch_x[N_BATCHES][BATCH * IN], batch_y[N_BATCHES][BATCH];

typedef struct run {
    dg_graph *g;
    dg_node *x, *y;
    dg_optimizer *opt;
} run;

static run build(uint64_t seed) {
    run r;
    r.g = dg_graph_new(seed);
    r.x = dg_input(r.g, "x", dg_shape2(BATCH, IN));
    r.y = dg_input(r.g, "y", dg_shape1(BATCH));
    dg_node *h = dg_dense(r.g, "hidden", r.x, 8, DG_ACT_TANH);
    h = dg_dropout(r.g, "drop", h, 0.25f);
    dg_node *logits = dg_dense(r.g, "out", h, CLASSES, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(r.g, logits, r.y);
    dg_optim_config cfg = dg_optim_defaults(DG_ADAMW);
    cfg.lr = 0.02f;
    cfg.clip_norm = 0.5f;
    cfg.schedule = DG_SCHED_COSINE;
    cfg.t_max = N;
    cfg.lr_min = 0.001f;
    cfg.warmup_steps = 3;
    r.opt = dg_optimizer_new(r.g, loss, &cfg);
    CHECK_MSG(r.opt != NULL, "optimizer_new: %s", dg_graph_error(r.g));
    return r;
}

/* Steps `from` .. `to`-1, step t on batch t mod N_BATCHES. */
static void train(run *r, int from, int to) {
    for (int t = from; t < to && r->opt; t++) {
        CHECK_OK(dg_feed(r->x, batch_x[t % N_BATCHES], BATCH * IN));
        CHECK_OK(dg_feed(r->y, batch_y[t % N_BATCHES], BATCH));
        CHECK_OK(dg_optimizer_step(r->opt));
    }
}

/* The bytes of every parameter (and state node if with_state), in creation order. */
static size_t snapshot(const run *r, int with_state, unsigned char *out, size_t cap) {
    size_t n = 0;
    for (int i = 0; i < dg_graph_node_count(r->g); i++) {
        dg_node *node = dg_graph_node(r->g, i);
        dg_node_kind k = dg_node_kind_of(node);
        if (k != DG_PARAM && !(with_state && k == DG_STATE)) continue;
        size_t b = (size_t)dg_node_numel(node) * sizeof(float);
        if (n + b > cap) return 0;
        memcpy(out + n, dg_node_data(node), b);
        n += b;
    }
    return n;
}

int main(void) {
    for (int b = 0; b < N_BATCHES; b++) {
        for (int i = 0; i < BATCH * IN; i++) batch_x[b][i] = test_uniform(-2, 2);
        for (int i = 0; i < BATCH; i++) batch_y[b][i] = (float)(int)test_uniform(0, CLASSES);
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/dg_resume_%ld.ckpt", (long)getpid());

    /* Uninterrupted. */
    run a = build(5);
    train(&a, 0, N);
    static unsigned char want[1 << 16], got[1 << 16], params_only[1 << 16];
    size_t nw = snapshot(&a, 1, want, sizeof want);
    size_t np = snapshot(&a, 0, params_only, sizeof params_only);
    CHECK(nw > np && np > 0);
    CHECK(dg_optimizer_steps(a.opt) == N);

    /* Interrupted after K steps, resumed in a new graph. */
    run b = build(5);
    train(&b, 0, K);
    CHECK_OK(dg_checkpoint_save(b.g, path, 1));
    dg_graph_free(b.g);
    run c = build(99);
    CHECK_OK(dg_checkpoint_load(c.g, path, 1));
    CHECK(dg_optimizer_steps(c.opt) == K);
    train(&c, K, N);
    size_t nc = snapshot(&c, 1, got, sizeof got);
    CHECK_MSG(nc == nw && memcmp(want, got, nw) == 0,
              "resumed training differs from uninterrupted training");
    CHECK(dg_optimizer_steps(c.opt) == N);

    /* Control: the same resume without the optimizer state starts Adam afresh (zero
     * moments, step 0) and must end elsewhere, or the comparison above proves nothing. */
    run d = build(99);
    CHECK_OK(dg_checkpoint_load(d.g, path, 0));
    CHECK(dg_optimizer_steps(d.opt) == 0);
    train(&d, K, N);
    size_t nd = snapshot(&d, 0, got, sizeof got);
    CHECK_MSG(nd == np && memcmp(params_only, got, np) != 0,
              "resuming without state matched too: the test cannot tell");

    printf("resume: %zu bytes of parameters and state identical after %d + %d steps\n", nw, K,
           N - K);
    remove(path);
    dg_graph_free(a.g);
    dg_graph_free(c.g);
    dg_graph_free(d.g);
    return test_summary("test_checkpoint_resume");
}
