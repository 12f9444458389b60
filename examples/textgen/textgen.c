/* textgen: a character-level language model (LSTM, GRU or plain RNN) trained on real
 * English text, the King James Bible from Debian's bible-kjv packages
 * (scripts/get_text.sh writes data/text/kjv.txt), then used to write new text.
 *
 * Training walks the text as `batch` parallel streams, `unroll` characters at a time
 * (truncated backpropagation through time): each step predicts every next character of a
 * segment, and the recurrent state at the end of one segment is carried into the next.
 * The last 5% of the text is held out; after every epoch the program prints the held-out
 * bits per character (cross-entropy in bits) and, with --save, writes a checkpoint (the
 * weights, the optimizer state, the model's configuration and its alphabet).
 *
 *   textgen [--text FILE] [--cell lstm|gru|rnn] [--layers N] [--hidden N] [--epochs N]
 *           [--save FILE]                                          train
 *   textgen --load FILE --sample N [--temperature T] [--prime TEXT]    write text
 *
 * Bad input is reported, never crashed on: a text shorter than one segment per stream, a
 * checkpoint of another model, a prime text with characters the model has never seen. */
#define _POSIX_C_SOURCE 200809L
#include "dagrad.h"
#include "ex_args.h"
#include "ex_progress.h"
#include "ex_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 4
#define CONFIG_LEN 8

static const char *prog = "textgen";

typedef struct options {
    const char *text, *cell, *optimizer, *save, *load, *prime, *dot;
    int layers, hidden, embed, unroll, batch, epochs, threads, seed, sample, layer_norm, max_chars;
    double lr, clip, holdout, temperature, expect_bpc;
} options;

/* What a checkpoint must record to rebuild the model: saved as the state node
 * "textgen/config" = {cell kind, layers, hidden, embed, layer_norm, vocab, 0, 0}. */
typedef struct model_cfg {
    int cell, layers, hidden, embed, layer_norm, vocab;
} model_cfg;

typedef struct model {
    dg_graph *g;
    model_cfg c;
    int steps;
    dg_node *x, *y, *loss, *logits;
    dg_unrolled u[MAX_LAYERS];
    dg_node *config, *alphabet;
    dg_optimizer *opt;
    dg_node *targets[MAX_LAYERS + 1]; /* the step (or loss, or logits), then each carry */
} model;

/* ---- the alphabet ---- */

typedef struct alphabet {
    int n;
    unsigned char byte[256]; /* class -> byte */
    int cls[256];            /* byte -> class, -1 if absent */
} alphabet;

static void alphabet_from_text(alphabet *a, const unsigned char *s, size_t n) {
    int seen[256] = {0};
    for (size_t i = 0; i < n; i++) seen[s[i]] = 1;
    a->n = 0;
    for (int b = 0; b < 256; b++) {
        a->cls[b] = seen[b] ? a->n : -1;
        if (seen[b]) a->byte[a->n++] = (unsigned char)b;
    }
}

static void describe_byte(int b, char *buf, size_t size) {
    if (b >= 0x20 && b < 0x7F)
        snprintf(buf, size, "'%c' (byte 0x%02X)", b, b);
    else
        snprintf(buf, size, "byte 0x%02X", b);
}

/* ---- building the model ---- */

static const char *cell_names[] = {"rnn", "gru", "lstm"};

static int build(model *m, const model_cfg *c, int steps, int train, const options *o) {
    memset(m, 0, sizeof *m);
    m->c = *c;
    m->steps = steps;
    dg_graph *g = m->g = dg_graph_new((uint64_t)o->seed);
    if (!g) return 0;
    float cfg[CONFIG_LEN] = {(float)c->cell,  (float)c->layers,     (float)c->hidden,
                             (float)c->embed, (float)c->layer_norm, (float)c->vocab};
    m->config = dg_state(g, "textgen/config", dg_shape1(CONFIG_LEN));
    m->alphabet = dg_state(g, "textgen/alphabet", dg_shape1(256));
    if (m->config) dg_feed(m->config, cfg, CONFIG_LEN);
    m->x = dg_input(g, "x", dg_shape2(DG_BATCH, steps));
    m->y = dg_input(g, "y", dg_shape2(DG_BATCH, steps));
    dg_node *table = dg_embedding(g, "embed", c->vocab, c->embed);
    int ok = table != NULL;
    dg_cell_options co = dg_cell_defaults();
    co.layer_norm = c->layer_norm;
    for (int l = 0; ok && l < c->layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "%s%d", cell_names[c->cell], l + 1);
        dg_cell *cell =
            dg_cell_new(g, (dg_cell_kind)c->cell, name, l ? c->hidden : c->embed, c->hidden, &co);
        /* the first layer looks its inputs up in the embedding, the others read the last */
        ok = cell && (l ? dg_unroll(g, cell, steps, m->u[l - 1].h, &m->u[l])
                        : dg_unroll_tokens(g, cell, table, m->x, &m->u[l])) == DG_OK;
    }
    if (ok)
        m->loss = dg_seq_cross_entropy(g, "out", &m->u[c->layers - 1], m->y, c->vocab, &m->logits);
    if (!m->loss) return 0;
    if (train) {
        dg_optim_config oc =
            dg_optim_defaults(strcmp(o->optimizer, "rmsprop") ? DG_ADAM : DG_RMSPROP);
        oc.lr = (float)o->lr;
        oc.alpha = 0.9f; /* RMSprop's decay as KANN's textgen has it (PyTorch's is 0.99) */
        oc.clip_norm = (float)o->clip;
        if (!(m->opt = dg_optimizer_new(g, m->loss, &oc))) return 0;
    }
    m->targets[0] = train ? dg_optimizer_step_node(m->opt) : m->loss;
    for (int l = 0; l < c->layers; l++) m->targets[l + 1] = m->u[l].carry;
    return dg_keep(m->logits) == DG_OK;
}

static dg_status reset_state(model *m, int64_t batch) {
    dg_status s = DG_OK;
    for (int l = 0; l < m->c.layers && s == DG_OK; l++) s = dg_unrolled_reset(&m->u[l], batch);
    return s;
}

/* ---- reading a checkpoint's configuration (format in docs/FORMATS.md) ---- */

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Finds state tensor `name` of `want` floats in the checkpoint bytes; 1 if found. The full
 * validation is dg_checkpoint_load's: this only walks the records to find two tensors. */
static int find_tensor(const unsigned char *b, size_t n, const char *name, float *out, int want) {
    if (n < 24 || memcmp(b, "DAGRADCK", 8) != 0) return -1;
    uint32_t count = rd32(b + 12);
    size_t at = 16, nl = strlen(name);
    for (uint32_t r = 0; r < count; r++) {
        if (at + 8 > n) return -1;
        uint32_t len = rd32(b + at + 4);
        if (len > 4096 || at + 8 + len + 4 > n) return -1;
        const unsigned char *nm = b + at + 8;
        at += 8 + len;
        uint32_t nd = rd32(b + at);
        at += 4;
        if (nd > 4 || at + 8 * (size_t)nd > n) return -1;
        uint64_t numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v = 0;
            for (int k = 7; k >= 0; k--) v = v << 8 | b[at + 8 * d + (size_t)k];
            if (v == 0 || v > ((uint64_t)1 << 40) || numel > ((uint64_t)1 << 40) / v) return -1;
            numel *= v;
        }
        at += 8 * (size_t)nd;
        if (numel * 4 > n - at) return -1;
        if (len == nl && memcmp(nm, name, nl) == 0 && numel == (uint64_t)want) {
            memcpy(out, b + at, (size_t)want * sizeof(float));
            return 1;
        }
        at += (size_t)numel * 4;
    }
    return 0;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        unsigned char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The model configuration and alphabet stored in a textgen checkpoint, or an error. */
static int checkpoint_config(const char *path, model_cfg *c, alphabet *a) {
    size_t n = 0;
    unsigned char *b = read_file(path, &n);
    if (!b) {
        fprintf(stderr, "%s: cannot read checkpoint '%s'\n", prog, path);
        return 0;
    }
    float cfg[CONFIG_LEN], al[256];
    int f1 = find_tensor(b, n, "textgen/config", cfg, CONFIG_LEN);
    int f2 = f1 == 1 ? find_tensor(b, n, "textgen/alphabet", al, 256) : f1;
    free(b);
    if (f1 < 0 || f2 < 0) {
        fprintf(stderr, "%s: '%s' is not a dagrad checkpoint (or it is damaged)\n", prog, path);
        return 0;
    }
    if (!f1 || !f2) {
        fprintf(stderr,
                "%s: '%s' is a checkpoint of another model: it holds no textgen/config and "
                "textgen/alphabet (save one with textgen --save)\n",
                prog, path);
        return 0;
    }
    c->cell = (int)cfg[0], c->layers = (int)cfg[1], c->hidden = (int)cfg[2];
    c->embed = (int)cfg[3], c->layer_norm = (int)cfg[4], c->vocab = (int)cfg[5];
    int ok = c->cell >= 0 && c->cell <= 2 && c->layers >= 1 && c->layers <= MAX_LAYERS &&
             c->hidden >= 1 && c->embed >= 1 && c->vocab >= 2 && c->vocab <= 256;
    a->n = 0;
    for (int b2 = 0; b2 < 256; b2++) a->cls[b2] = -1;
    for (int k = 0; ok && k < c->vocab; k++) {
        int byte = (int)al[k];
        ok = byte >= 0 && byte < 256 && a->cls[byte] < 0;
        if (ok) a->cls[byte] = k, a->byte[k] = (unsigned char)byte, a->n++;
    }
    if (!ok) fprintf(stderr, "%s: '%s' holds an invalid textgen configuration\n", prog, path);
    return ok;
}

static void store_alphabet(model *m, const alphabet *a) {
    float al[256];
    for (int k = 0; k < 256; k++) al[k] = k < a->n ? (float)a->byte[k] : -1.0f;
    dg_feed(m->alphabet, al, 256);
}

/* ---- training and evaluation ---- */

/* Mean cross-entropy (nats) of predicting every next character of text[0..n) cut into
 * `batch` streams, segment by segment with the state carried; 0 if too short. */
typedef struct walk {
    const int *cls;
    int64_t len; /* characters per stream */
    int batch, steps;
    int64_t segments;
} walk;

static walk make_walk(const int *cls, int64_t n, int batch, int steps) {
    walk w = {cls, n / batch, batch, steps, 0};
    w.segments = w.len > 0 ? (w.len - 1) / steps : 0;
    return w;
}

static void fill_segment(const walk *w, int64_t s, float *x, float *y) {
    for (int b = 0; b < w->batch; b++)
        for (int t = 0; t < w->steps; t++) {
            int64_t p = (int64_t)b * w->len + s * w->steps + t;
            x[b * w->steps + t] = (float)w->cls[p];
            y[b * w->steps + t] = (float)w->cls[p + 1];
        }
}

static int run_walk(model *m, const walk *w, int train, double *mean_loss, const char *label) {
    float *x = malloc(sizeof(float) * (size_t)w->batch * (size_t)w->steps);
    float *y = malloc(sizeof(float) * (size_t)w->batch * (size_t)w->steps);
    if (!x || !y) {
        free(x), free(y);
        fprintf(stderr, "%s: out of memory\n", prog);
        return 0;
    }
    ex_progress bar;
    int64_t total = w->segments * w->batch * w->steps;
    ex_progress_begin(&bar, total, ex_stdout_is_tty());
    ex_progress_epoch(&bar, label, total);
    dg_set_training(m->g, train);
    dg_status s = reset_state(m, w->batch);
    double sum = 0;
    for (int64_t k = 0; k < w->segments && s == DG_OK; k++) {
        fill_segment(w, k, x, y);
        s = dg_feed(m->x, x, (int64_t)w->batch * w->steps);
        if (s == DG_OK) s = dg_feed(m->y, y, (int64_t)w->batch * w->steps);
        if (s == DG_OK) s = dg_run_many(m->g, 1 + m->c.layers, m->targets);
        if (s == DG_OK) sum += dg_value(m->targets[0]);
        ex_progress_update(&bar, (k + 1) * w->batch * w->steps, sum / (double)(k + 1), -1);
    }
    ex_progress_finish(&bar);
    free(x);
    free(y);
    if (s != DG_OK) return ex_fail(prog, m->g, train ? "training step" : "evaluation"), 0;
    *mean_loss = sum / (double)w->segments;
    return 1;
}

/* ---- sampling ---- */

static int sample_text(const options *o) {
    model_cfg c;
    alphabet a;
    if (!checkpoint_config(o->load, &c, &a)) return EX_EXIT_FAIL;
    model m;
    if (!build(&m, &c, 1, 0, o))
        return ex_fail(prog, m.g, "building the model"), dg_graph_free(m.g), EX_EXIT_FAIL;
    if (dg_checkpoint_load(m.g, o->load, 0) != DG_OK) {
        int r = ex_fail(prog, m.g, "loading the checkpoint");
        dg_graph_free(m.g);
        return r;
    }
    dg_set_training(m.g, 0);
    reset_state(&m, 1);
    const char *prime = o->prime && o->prime[0] ? o->prime : "\n";
    for (const unsigned char *p = (const unsigned char *)prime; *p; p++)
        if (a.cls[*p] < 0) {
            char d[40];
            describe_byte(*p, d, sizeof d);
            fprintf(stderr, "%s: the prime text holds %s, which is not in the model's alphabet\n",
                    prog, d);
            dg_graph_free(m.g);
            return EX_EXIT_USAGE;
        }
    ex_rng rng;
    ex_rng_seed(&rng, (uint64_t)o->seed);
    double *p = malloc(sizeof *p * (size_t)c.vocab);
    dg_node *targets[MAX_LAYERS + 1] = {m.logits};
    for (int l = 0; l < c.layers; l++) targets[l + 1] = m.u[l].carry;
    fputs(prime, stdout);
    float next = (float)a.cls[(unsigned char)prime[0]], zero = 0;
    size_t plen = strlen(prime);
    dg_status s = DG_OK;
    for (size_t i = 0; p && s == DG_OK && i < plen + (size_t)o->sample - 1; i++) {
        /* feed the prime's characters, then each sampled one */
        if (i < plen) next = (float)a.cls[(unsigned char)prime[i]];
        s = dg_feed(m.x, &next, 1);
        if (s == DG_OK) s = dg_feed(m.y, &zero, 1);
        if (s == DG_OK) s = dg_run_many(m.g, 1 + c.layers, targets);
        if (s != DG_OK || i + 1 < plen) continue;
        const float *z = dg_node_data(m.logits);
        double mx = -INFINITY, sum = 0;
        for (int k = 0; k < c.vocab; k++)
            mx = z[k] / o->temperature > mx ? z[k] / o->temperature : mx;
        for (int k = 0; k < c.vocab; k++) sum += p[k] = exp(z[k] / o->temperature - mx);
        double r = ex_rng_uniform(&rng) * sum;
        int k = 0;
        while (k < c.vocab - 1 && (r -= p[k]) >= 0) k++;
        next = (float)k;
        putchar(a.byte[k]);
    }
    putchar('\n');
    free(p);
    int rc = s == DG_OK ? EX_EXIT_OK : ex_fail(prog, m.g, "sampling");
    dg_graph_free(m.g);
    return rc;
}

/* ---- main ---- */

int main(int argc, char **argv) {
    options o = {0};
    o.cell = "lstm", o.optimizer = "adam", o.layers = 1, o.hidden = 256, o.embed = 64;
    o.unroll = 64, o.batch = 64, o.epochs = 3, o.seed = 1, o.lr = 2e-3, o.clip = 5;
    o.holdout = 0.05, o.temperature = 0.8, o.expect_bpc = 0;
    ex_arg args[] = {
        {"--text", EX_ARG_STRING, &o.text, "FILE",
         "text to train on (default data/text/kjv.txt, see scripts/get_text.sh)", NULL, 0, 0},
        {"--cell", EX_ARG_CHOICE, &o.cell, "KIND", "recurrent cell (default lstm)", "lstm|gru|rnn",
         0, 0},
        {"--layers", EX_ARG_INT, &o.layers, "N", "stacked recurrent layers (default 1)", NULL, 1,
         MAX_LAYERS},
        {"--hidden", EX_ARG_INT, &o.hidden, "N", "state size per layer (default 256)", NULL, 1,
         8192},
        {"--embed", EX_ARG_INT, &o.embed, "N", "embedding size (default 64)", NULL, 1, 8192},
        {"--layer-norm", EX_ARG_FLAG, &o.layer_norm, NULL, "layer-normalise the gates", NULL, 0, 0},
        {"--unroll", EX_ARG_INT, &o.unroll, "T", "characters per segment (default 64)", NULL, 1,
         1000},
        {"--batch", EX_ARG_INT, &o.batch, "N", "parallel streams (default 64)", NULL, 1, 65536},
        {"--epochs", EX_ARG_INT, &o.epochs, "N", "epochs (default 3)", NULL, 1, 100000},
        {"--optimizer", EX_ARG_CHOICE, &o.optimizer, "NAME",
         "optimizer (default adam; rmsprop decays by 0.9)", "adam|rmsprop", 0, 0},
        {"--lr", EX_ARG_FLOAT, &o.lr, "LR", "learning rate (default 2e-3)", NULL, 1e-7, 10},
        {"--clip", EX_ARG_FLOAT, &o.clip, "NORM", "gradient norm clipping (default 5, 0: off)",
         NULL, 0, 1e6},
        {"--holdout", EX_ARG_FLOAT, &o.holdout, "F", "held-out fraction at the end (default 0.05)",
         NULL, 0.001, 0.5},
        {"--max-chars", EX_ARG_INT, &o.max_chars, "N", "use only the first N characters", NULL, 0,
         2000000000},
        {"--threads", EX_ARG_INT, &o.threads, "N", "OpenMP threads (default: OpenMP's)", NULL, 0,
         1024},
        {"--seed", EX_ARG_INT, &o.seed, "S", "seed for weights and sampling (default 1)", NULL, 0,
         2000000000},
        {"--save", EX_ARG_STRING, &o.save, "FILE", "checkpoint after every epoch", NULL, 0, 0},
        {"--load", EX_ARG_STRING, &o.load, "FILE",
         "start from this checkpoint (training resumes it; --sample writes with it)", NULL, 0, 0},
        {"--sample", EX_ARG_INT, &o.sample, "N", "write N characters with --load's model", NULL, 0,
         100000000},
        {"--temperature", EX_ARG_FLOAT, &o.temperature, "T",
         "sampling temperature (default 0.8; lower is more conservative)", NULL, 0.01, 100},
        {"--prime", EX_ARG_STRING, &o.prime, "TEXT", "text to start the sample with", NULL, 0, 0},
        {"--dot", EX_ARG_STRING, &o.dot, "FILE", "write the unrolled training graph as DOT", NULL,
         0, 0},
        {"--expect-bpc", EX_ARG_FLOAT, &o.expect_bpc, "B",
         "exit with status 1 unless the last held-out bits per character are at most B", NULL, 0,
         100},
    };
    int pr = ex_parse_args(argc, argv,
                           "Character-level LSTM/GRU/RNN language model: trains on English text, "
                           "reports held-out bits per character, writes text.",
                           args, (int)(sizeof args / sizeof *args));
    if (pr) return pr > 0 ? EX_EXIT_OK : EX_EXIT_USAGE;
    if (o.threads > 0) dg_set_num_threads(o.threads);
    if (o.sample) {
        if (!o.load) {
            fprintf(stderr, "%s: --sample needs a model: --load FILE (a checkpoint from --save)\n",
                    prog);
            return EX_EXIT_USAGE;
        }
        return sample_text(&o);
    }

    /* the text */
    const char *path = o.text ? o.text : "data/text/kjv.txt";
    size_t n = 0;
    unsigned char *text = read_file(path, &n);
    if (!text) {
        fprintf(stderr, "%s: cannot read '%s' (run scripts/get_text.sh for the default text)\n",
                prog, path);
        return EX_EXIT_FAIL;
    }
    if (o.max_chars > 0 && n > (size_t)o.max_chars) n = (size_t)o.max_chars;
    model_cfg c = {0, o.layers, o.hidden, o.embed, o.layer_norm, 0};
    c.cell = !strcmp(o.cell, "rnn") ? 0 : !strcmp(o.cell, "gru") ? 1 : 2;
    alphabet a;
    if (o.load) {
        if (!checkpoint_config(o.load, &c, &a)) return free(text), EX_EXIT_FAIL;
    } else {
        alphabet_from_text(&a, text, n);
        c.vocab = a.n;
    }
    int *cls = malloc(sizeof *cls * (n ? n : 1));
    for (size_t i = 0; cls && i < n; i++)
        if ((cls[i] = a.cls[text[i]]) < 0) {
            char d[40];
            describe_byte(text[i], d, sizeof d);
            fprintf(stderr,
                    "%s: '%s' holds %s at offset %zu, which is not in the alphabet of the model in "
                    "'%s'\n",
                    prog, path, d, i, o.load);
            return free(text), free(cls), EX_EXIT_FAIL;
        }
    free(text);
    int64_t n_train = (int64_t)((double)n * (1.0 - o.holdout));
    walk tw = make_walk(cls, n_train, o.batch, o.unroll);
    int eval_batch = o.batch;
    while (eval_batch > 1 && (n - (size_t)n_train) / (size_t)eval_batch < (size_t)o.unroll + 1)
        eval_batch /= 2;
    walk ew = make_walk(cls + n_train, (int64_t)n - n_train, eval_batch, o.unroll);
    if (tw.segments < 1 || ew.segments < 1) {
        fprintf(stderr,
                "%s: the text is too short: %zu characters give %d streams of %lld training "
                "characters and %lld held-out ones, but a segment needs %d + 1 (lower --batch or "
                "--unroll, or use a longer text)\n",
                prog, n, o.batch, (long long)tw.len, (long long)ew.len, o.unroll);
        free(cls);
        return EX_EXIT_FAIL;
    }
    printf("text: %s, %zu characters, alphabet of %d; %lld for training, %lld held out\n", path, n,
           c.vocab, (long long)n_train, (long long)((int64_t)n - n_train));

    model m;
    if (!build(&m, &c, o.unroll, 1, &o)) {
        int r = ex_fail(prog, m.g, "building the model");
        return dg_graph_free(m.g), free(cls), r;
    }
    store_alphabet(&m, &a);
    if (o.load && dg_checkpoint_load(m.g, o.load, 1) != DG_OK) {
        int r = ex_fail(prog, m.g, "loading the checkpoint");
        return dg_graph_free(m.g), free(cls), r;
    }
    printf("model: embedding %d, %d x %s %d%s, dense %d; %lld parameters; %s lr %g, clip %g; "
           "%d streams x %d characters per step, %lld steps per epoch\n",
           c.embed, c.layers, cell_names[c.cell], c.hidden, c.layer_norm ? " (layer norm)" : "",
           c.vocab, (long long)dg_param_count(m.g), o.optimizer, o.lr, o.clip, o.batch, o.unroll,
           (long long)tw.segments);
    if (o.dot) {
        dg_dot_options d = dg_dot_defaults();
        d.show_backward = 0;
        d.title = "textgen: the unrolled training graph (forward pass)";
        if (dg_dot_write(m.g, o.dot, &d) != DG_OK) {
            int r = ex_fail(prog, m.g, "writing the DOT graph");
            return dg_graph_free(m.g), free(cls), r;
        }
        printf("wrote %s\n", o.dot);
    }
    double bpc = 0;
    int rc = EX_EXIT_OK;
    for (int e = 1; e <= o.epochs && rc == EX_EXIT_OK; e++) {
        char label[32];
        snprintf(label, sizeof label, "epoch %d/%d", e, o.epochs);
        double t0 = ex_now(), train_loss, held;
        if (!run_walk(&m, &tw, 1, &train_loss, label) || !run_walk(&m, &ew, 0, &held, "held-out")) {
            rc = EX_EXIT_FAIL;
            break;
        }
        bpc = held / log(2.0);
        printf("epoch %d/%d: train %.3f bits/char, held-out %.3f bits/char, %.1f s\n", e, o.epochs,
               train_loss / log(2.0), bpc, ex_now() - t0);
        fflush(stdout);
        if (o.save) {
            if (dg_checkpoint_save(m.g, o.save, 1) != DG_OK)
                rc = ex_fail(prog, m.g, "saving the checkpoint");
            else
                printf("saved %s\n", o.save);
        }
    }
    if (rc == EX_EXIT_OK && o.expect_bpc > 0 && !(bpc <= o.expect_bpc)) {
        fprintf(stderr, "%s: held-out %.3f bits/char, expected at most %.3f\n", prog, bpc,
                o.expect_bpc);
        rc = EX_EXIT_FAIL;
    }
    dg_graph_free(m.g);
    free(cls);
    return rc;
}
