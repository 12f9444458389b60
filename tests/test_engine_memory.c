/* Planned memory. Training with planning (intermediate results sharing one arena, views and
 * in-place ops) is bitwise identical to training with every value kept, in any plan order;
 * the arena is smaller than the intermediates it holds; a value that was not kept reads as
 * a clear error, never stale memory, and dg_keep makes it readable; a chain of
 * elementwise ops runs in place in one block; a reshape shares its input's memory; scratch
 * memory is there during forward only. Under AddressSanitizer, a kernel reading a block the
 * plan released is caught (the arena is poisoned), shown in a child process. */
#define _GNU_SOURCE
#include "test_util.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

enum { ROWS = 32, IN = 12, H1 = 24, H2 = 16, OUT = 5, STEPS = 40 };

typedef struct net {
    dg_graph *g;
    dg_node *x, *y, *h1, *logits, *loss;
    dg_optimizer *opt;
} net;

static net build(uint64_t seed) {
    net n;
    n.g = dg_graph_new(seed);
    n.x = dg_input(n.g, "x", dg_shape2(DG_BATCH, IN));
    n.y = dg_input(n.g, "y", dg_shape1(DG_BATCH));
    n.h1 = dg_dense(n.g, "fc1", n.x, H1, DG_ACT_RELU);
    dg_node *d = dg_dropout(n.g, "drop", n.h1, 0.2f);
    dg_node *h2 = dg_dense(n.g, "fc2", d, H2, DG_ACT_TANH);
    n.logits = dg_dense(n.g, "fc3", h2, OUT, DG_ACT_NONE);
    n.loss = dg_cross_entropy_loss(n.g, n.logits, n.y);
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    c.lr = 0.01f;
    c.clip_norm = 1.0f;
    n.opt = dg_optimizer_new(n.g, n.loss, &c);
    CHECK(n.opt != NULL);
    return n;
}

static float xs[ROWS * IN], ys[ROWS];

/* Trains STEPS steps on batches of 32 and 20 rows; returns the concatenated parameters. */
static int train(net *n, float *params) {
    for (int s = 0; s < STEPS; s++) {
        int rows = s % 3 == 2 ? 20 : ROWS;
        CHECK_OK(dg_feed(n->x, xs, rows * IN));
        CHECK_OK(dg_feed(n->y, ys, rows));
        CHECK_OK(dg_optimizer_step(n->opt));
    }
    int k = 0;
    for (int i = 0; i < dg_graph_node_count(n->g); i++) {
        dg_node *p = dg_graph_node(n->g, i);
        if (dg_node_kind_of(p) != DG_PARAM) continue;
        memcpy(params + k, dg_node_data(p), (size_t)dg_node_numel(p) * sizeof(float));
        k += (int)dg_node_numel(p);
    }
    return k;
}

static void planned_equals_kept(void) {
    static float kept[4096], planned[4096];
    net a = build(5);
    dg_set_keep_all(a.g, 1);
    int na = train(&a, kept);
    dg_memory_stats ma, mb;
    CHECK_OK(dg_graph_memory(a.g, &ma));
    CHECK(ma.arena_bytes == 0 && ma.kept_bytes > 0);
    const dg_plan_order orders[3] = {DG_ORDER_CREATION, DG_ORDER_LATEST_FIRST, DG_ORDER_RANDOM};
    for (int o = 0; o < 3; o++) {
        net b = build(5);
        CHECK_OK(dg_set_plan_order(b.g, orders[o], 1234 + (uint64_t)o));
        int nb = train(&b, planned);
        CHECK(na == nb && na > 0);
        CHECK_MSG(memcmp(kept, planned, (size_t)na * sizeof(float)) == 0,
                  "order %d: planned training differs from keep-all", o);
        CHECK_OK(dg_graph_memory(b.g, &mb));
        /* the intermediates share memory: the arena holds much less than all of them */
        CHECK_MSG(mb.run_arena_bytes > 0 && 2 * mb.run_arena_bytes <= mb.planned_bytes,
                  "arena %zu bytes for %zu bytes of intermediates", mb.run_arena_bytes,
                  mb.planned_bytes);
        CHECK(mb.arena_bytes >= mb.run_arena_bytes);
        CHECK(mb.kept_bytes < ma.kept_bytes);
        if (o == 0) {
            /* an intermediate: gone after the run, with a message saying why */
            CHECK(!dg_node_has_value(b.h1) && dg_node_computed(b.h1));
            dg_graph_clear_error(b.g);
            CHECK(dg_node_data(b.h1) == NULL);
            CHECK(dg_graph_status(b.g) == DG_ERR_STATE);
            CHECK(strstr(dg_graph_error(b.g), "holds no value") != NULL);
            float buf[ROWS * H1];
            CHECK(dg_read(b.h1, buf, ROWS * H1) == DG_ERR_STATE);
            CHECK(!isnan(dg_value(b.loss))); /* an optimizer keeps its loss */
            /* kept, it is readable after the next run and equals the keep-all value */
            CHECK_OK(dg_keep(b.h1));
            CHECK_OK(dg_feed(b.x, xs, ROWS * IN));
            CHECK_OK(dg_run(b.g, b.logits));
            CHECK(dg_node_has_value(b.h1) && dg_node_has_value(b.logits));
            CHECK_OK(dg_feed(a.x, xs, ROWS * IN));
            CHECK_OK(dg_run(a.g, a.logits));
            CHECK(memcmp(dg_node_data(b.h1), dg_node_data(a.h1), sizeof buf) == 0);
        }
        dg_graph_free(b.g);
    }
    dg_graph_free(a.g);
}

static void in_place_chain(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape1(1000));
    test_fill(x, -1, 1);
    /* 20 elementwise ops: each may write into its dying input's block */
    dg_node *y = dg_exp(g, x);
    for (int i = 0; i < 20; i++) y = i % 2 ? dg_tanh(g, y) : dg_scale(g, y, 0.5f);
    dg_node *s = dg_sum(g, y);
    CHECK_OK(dg_run(g, s));
    dg_memory_stats m;
    CHECK_OK(dg_graph_memory(g, &m));
    CHECK_MSG(m.arena_bytes <= 1008 * sizeof(float), "arena %zu bytes for a chain of [1000]",
              m.arena_bytes);
    CHECK(m.planned_bytes == 21 * 1000 * sizeof(float));
    float planned = dg_value(s);
    dg_set_keep_all(g, 1);
    CHECK_OK(dg_run(g, s));
    CHECK(dg_value(s) == planned);
    dg_graph_free(g);
}

/* ---- a probe op recording where its inputs live, and an op using scratch ---- */

typedef struct probe {
    const float *seen[2];
    void *scratch_during, *scratch_after;
} probe;

static dg_status scalar_shape(dg_node *const *in, int n, const void *a, dg_shape *out, char *msg,
                              size_t size) {
    (void)in, (void)n, (void)a, (void)msg, (void)size;
    *out = dg_shape0();
    return DG_OK;
}

static dg_status probe_forward(dg_node *self) {
    probe *p = *(probe **)dg_node_attrs(self);
    for (int k = 0; k < dg_node_input_count(self) && k < 2; k++)
        p->seen[k] = dg_node_data(dg_node_input(self, k));
    float *scratch = dg_node_scratch(self);
    p->scratch_during = scratch;
    if (scratch)
        for (int i = 0; i < 100; i++) scratch[i] = (float)i; /* all of it is writable */
    dg_node_data(self)[0] = scratch ? scratch[99] : 0.0f;
    return DG_OK;
}

static size_t probe_scratch(const dg_node *self) {
    (void)self;
    return 100 * sizeof(float);
}

static const dg_op_def probe_op = {.name = "probe",
                                   .n_inputs = DG_VARIADIC,
                                   .infer_shape = scalar_shape,
                                   .forward = probe_forward,
                                   .scratch_bytes = probe_scratch};

static void views_and_scratch(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, 6));
    dg_node *h = dg_tanh(g, x);
    dg_node *r = dg_reshape(g, h, dg_shape3(-1, 2, 3));
    probe p;
    memset(&p, 0, sizeof p);
    probe *pp = &p;
    dg_node *in[2] = {h, r};
    dg_node *t = dg_apply(g, &probe_op, 2, in, &pp, sizeof pp);
    CHECK(t != NULL);
    float data[4 * 6] = {0};
    CHECK_OK(dg_feed(x, data, 24));
    CHECK_OK(dg_run(g, t));
    CHECK(p.seen[0] && p.seen[0] == p.seen[1]); /* the reshape is a view */
    CHECK(dg_node_shape(r).dim[0] == 4);
    CHECK(p.scratch_during != NULL && dg_value(t) == 99.0f);
    CHECK(dg_node_scratch(t) == NULL); /* only during its forward */
    /* a kept view gets a copy of its own */
    CHECK_OK(dg_keep(r));
    CHECK_OK(dg_run(g, t));
    CHECK(p.seen[0] != p.seen[1]);
    CHECK(memcmp(p.seen[0], p.seen[1], 24 * sizeof(float)) == 0);
    dg_graph_free(g);
}

#ifdef ASAN
/* ---- a kernel that keeps a pointer to a block the plan releases, then reads it ---- */
static const float *stale;
static dg_status grab_forward(dg_node *self) {
    stale = dg_node_data(dg_node_input(self, 0));
    dg_node_data(self)[0] = stale[0];
    return DG_OK;
}
static dg_status reuse_forward(dg_node *self) {
    dg_node_data(self)[0] = stale[0] + dg_node_data(dg_node_input(self, 0))[0];
    return DG_OK;
}
static const dg_op_def grab_op = {
    .name = "grab", .n_inputs = 1, .infer_shape = scalar_shape, .forward = grab_forward};
static const dg_op_def reuse_op = {
    .name = "reuse", .n_inputs = 1, .infer_shape = scalar_shape, .forward = reuse_forward};

static void poisoned_blocks_are_caught(void) {
    char report[] = "/tmp/dg_poison_XXXXXX";
    int fd = mkstemp(report);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* the child's AddressSanitizer report goes to a file, not into the test log */
        if (!freopen(report, "w", stderr)) _exit(3);
        dg_graph *g = dg_graph_new(1);
        dg_node *x = dg_input(g, "x", dg_shape1(64));
        float v[64] = {0};
        dg_feed(x, v, 64);
        dg_node *a = dg_exp(g, x);                          /* block A */
        dg_node *k = dg_apply(g, &grab_op, 1, &a, NULL, 0); /* last reader of A: A released */
        dg_node *b = dg_sqrt(g, dg_abs(g, x));              /* later blocks */
        dg_node *in[1] = {dg_sum(g, b)};
        dg_node *u = dg_apply(g, &reuse_op, 1, in, NULL, 0); /* reads A after its release */
        dg_node *t[2] = {k, u};
        dg_run_many(g, 2, t);
        _exit(0); /* not reached when the poisoning works */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(!(WIFEXITED(status) && WEXITSTATUS(status) == 0),
              "a read of a released block went unnoticed");
    /* and for the right reason */
    char text[4096] = "";
    FILE *f = fopen(report, "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
    }
    remove(report);
    CHECK_MSG(strstr(text, "use-after-poison") != NULL, "child's report: %.300s", text);
}
#endif

int main(void) {
    for (int i = 0; i < ROWS * IN; i++) xs[i] = test_uniform(-1, 1);
    for (int i = 0; i < ROWS; i++) ys[i] = (float)(i % OUT);
    planned_equals_kept();
    in_place_chain();
    views_and_scratch();
#ifdef ASAN
    poisoned_blocks_are_caught();
#else
    printf("note: not an AddressSanitizer build; the arena-poisoning check is skipped\n");
#endif
    return test_summary("test_engine_memory");
}
