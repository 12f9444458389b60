/* bench_rnn: seconds per training epoch of examples/textgen's default model (embedding 64,
 * one LSTM layer of 256, dense output; Adam lr 2e-3, gradient norm clipped at 5; 64 streams,
 * 64 characters unrolled per step, state carried between segments) on the King James Bible
 * (scripts/get_text.sh), and of the identical PyTorch model in the same run when
 * /usr/bin/python3 can import torch (bench_rnn_torch.py, torch.set_num_threads equal to
 * ours, OPENBLAS_NUM_THREADS=1). Each side trains N epochs (default 3) from a fresh model;
 * the table gives the median and range of epochs 2..N (epoch 1 includes planning and warm-up)
 * and the ratio of the medians, PyTorch's over dagrad's.
 *
 * usage: bench_rnn [--text FILE] [--threads N[,M]] [--epochs N] [--cell lstm|gru]
 *                  [--hidden N] [--max-chars N] [--no-torch] */
#include "dagrad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BATCH = 64, UNROLL = 64, EMBED = 64, MAX_EPOCHS = 20 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct setup {
    const char *text;
    int *cls;
    int64_t n;
    int vocab, hidden, epochs, gru;
    int64_t max_chars;
} setup;

static int load_text(setup *s) {
    FILE *f = fopen(s->text, "rb");
    if (!f) return 0;
    unsigned char *buf = malloc(8u << 20);
    size_t n = buf ? fread(buf, 1, 8u << 20, f) : 0;
    fclose(f);
    if (s->max_chars > 0 && (int64_t)n > s->max_chars) n = (size_t)s->max_chars;
    int map[256], seen[256] = {0};
    for (size_t i = 0; i < n; i++) seen[buf[i]] = 1;
    s->vocab = 0;
    for (int b = 0; b < 256; b++) map[b] = seen[b] ? s->vocab++ : -1;
    s->cls = malloc(sizeof *s->cls * (n ? n : 1));
    for (size_t i = 0; s->cls && i < n; i++) s->cls[i] = map[buf[i]];
    free(buf);
    s->n = (int64_t)n;
    return s->cls && n > 0;
}

/* Trains s->epochs epochs with `threads` threads from a fresh model; seconds of each epoch
 * into secs[], mean loss of the last epoch into *loss. 0 on error. */
static int dagrad_epochs(const setup *s, int threads, double *secs, double *loss) {
    dg_set_num_threads(threads);
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, UNROLL));
    dg_node *y = dg_input(g, "y", dg_shape2(DG_BATCH, UNROLL));
    dg_node *table = dg_embedding(g, "embed", s->vocab, EMBED);
    dg_cell *cell =
        table ? dg_cell_new(g, s->gru ? DG_CELL_GRU : DG_CELL_LSTM, "rnn", EMBED, s->hidden, NULL)
              : NULL;
    dg_unrolled u;
    dg_node *lossn = cell && dg_unroll_tokens(g, cell, table, x, &u) == DG_OK
                         ? dg_seq_cross_entropy(g, "out", &u, y, s->vocab, NULL)
                         : NULL;
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = 2e-3f;
    cfg.clip_norm = 5.0f;
    dg_optimizer *opt = lossn ? dg_optimizer_new(g, lossn, &cfg) : NULL;
    if (!opt) {
        fprintf(stderr, "bench_rnn: building the model failed: %s\n", dg_graph_error(g));
        dg_graph_free(g);
        return 0;
    }
    dg_node *targets[2] = {dg_optimizer_step_node(opt), u.carry};
    int64_t n_train = (int64_t)((double)s->n * 0.95), len = n_train / BATCH;
    int64_t segments = (len - 1) / UNROLL;
    float *xv = malloc(sizeof(float) * BATCH * UNROLL),
          *yv = malloc(sizeof(float) * BATCH * UNROLL);
    dg_status st = xv && yv ? DG_OK : DG_ERR_NOMEM;
    for (int e = 0; e < s->epochs && st == DG_OK; e++) {
        double sum = 0, start = now();
        st = dg_unrolled_reset(&u, BATCH);
        for (int64_t k = 0; k < segments && st == DG_OK; k++) {
            for (int b = 0; b < BATCH; b++)
                for (int t = 0; t < UNROLL; t++) {
                    int64_t p = b * len + k * UNROLL + t;
                    xv[b * UNROLL + t] = (float)s->cls[p];
                    yv[b * UNROLL + t] = (float)s->cls[p + 1];
                }
            st = dg_feed(x, xv, BATCH * UNROLL);
            if (st == DG_OK) st = dg_feed(y, yv, BATCH * UNROLL);
            if (st == DG_OK) st = dg_run_many(g, 2, targets);
            sum += dg_value(targets[0]);
        }
        secs[e] = now() - start;
        *loss = sum / (double)segments;
    }
    if (st != DG_OK) fprintf(stderr, "bench_rnn: training failed: %s\n", dg_graph_error(g));
    free(xv);
    free(yv);
    dg_graph_free(g);
    return st == DG_OK;
}

/* Runs the PyTorch script; 1 with every epoch's seconds, 0 if torch is unavailable. */
static int torch_epochs(const setup *s, int threads, double *secs, double *loss) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=%d /usr/bin/python3 %s/bench_rnn_torch.py "
             "'%s' %s %d %d %d %d %d %lld 2>&1",
             threads, DG_BENCH_DIR, s->text, s->gru ? "gru" : "lstm", s->hidden, BATCH, UNROLL,
             s->epochs, threads, (long long)s->max_chars);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    char line[1024];
    int got = 0, e;
    double sec, l;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "epoch %d seconds %lf loss %lf", &e, &sec, &l) == 3 && e >= 1 &&
            e <= s->epochs) {
            secs[e - 1] = sec;
            *loss = l;
            got++;
            continue;
        }
        fprintf(stderr, "  torch: %s", line);
    }
    return pclose(p) == 0 && got == s->epochs;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, min and max of epochs 2..N (all of them when N is 1). */
static void steady(const double *secs, int n, double *med, double *lo, double *hi) {
    double v[MAX_EPOCHS];
    int first = n > 1 ? 1 : 0, m = n - first;
    memcpy(v, secs + first, (size_t)m * sizeof *v);
    qsort(v, (size_t)m, sizeof *v, cmp_double);
    *med = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
    *lo = v[0];
    *hi = v[m - 1];
}

int main(int argc, char **argv) {
    setup s = {0};
    s.text = getenv("DG_TEXT") ? getenv("DG_TEXT") : "data/text/kjv.txt";
    s.hidden = 256;
    s.epochs = 3;
    const char *threads = "1,2";
    int no_torch = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--text") && i + 1 < argc)
            s.text = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = argv[++i];
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
            s.epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--hidden") && i + 1 < argc)
            s.hidden = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-chars") && i + 1 < argc)
            s.max_chars = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--cell") && i + 1 < argc)
            s.gru = !strcmp(argv[++i], "gru");
        else if (!strcmp(argv[i], "--no-torch"))
            no_torch = 1;
        else {
            fprintf(stderr, "usage: bench_rnn [--text FILE] [--threads N[,M]] [--epochs N] [--cell "
                            "lstm|gru] [--hidden N] [--max-chars N] [--no-torch]\n");
            return 2;
        }
    }
    if (s.epochs < 1 || s.epochs > MAX_EPOCHS || s.hidden < 1) {
        fprintf(stderr, "bench_rnn: --epochs must be 1..%d and --hidden >= 1\n", MAX_EPOCHS);
        return 2;
    }
    if (!load_text(&s)) {
        fprintf(stderr, "bench_rnn: cannot read '%s' (run scripts/get_text.sh)\n", s.text);
        return 1;
    }
    printf("textgen model: embedding %d, %s %d, dense %d; Adam 2e-3, clip 5; %d streams x %d "
           "steps; %lld characters (95%% trained on), %d epochs, steady state = epochs 2..%d\n",
           EMBED, s.gru ? "GRU" : "LSTM", s.hidden, s.vocab, BATCH, UNROLL, (long long)s.n,
           s.epochs, s.epochs);
    printf("threads  dagrad s/epoch (range)     loss   PyTorch s/epoch (range)    loss   ratio\n");
    const char *p = threads;
    while (*p) {
        int t = atoi(p);
        if (t < 1) break;
        double ds[MAX_EPOCHS], ts[MAX_EPOCHS], dl = NAN, tl = NAN, dm, dlo, dhi, tm = NAN,
                                               tlo = NAN, thi = NAN;
        if (!dagrad_epochs(&s, t, ds, &dl)) return 1;
        steady(ds, s.epochs, &dm, &dlo, &dhi);
        int have_torch = !no_torch && torch_epochs(&s, t, ts, &tl);
        if (have_torch) steady(ts, s.epochs, &tm, &tlo, &thi);
        printf("%7d  %7.2f (%6.2f-%6.2f)  %6.4f", t, dm, dlo, dhi, dl);
        if (have_torch)
            printf("   %7.2f (%6.2f-%6.2f)  %6.4f  %6.2f\n", tm, tlo, thi, tl, tm / dm);
        else
            printf("   (PyTorch not run)\n");
        fflush(stdout);
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
    }
    return 0;
}
