/* examples/mnist_cnn: a LeNet-style convolutional network on the full MNIST (60,000
 * training and 10,000 test images), end to end.
 *
 * Model (default): conv 32 5x5 (padding 2) ReLU -> max pool 2 -> conv 64 5x5 ReLU -> max pool 2
 * -> flatten 1600 -> dense 256 ReLU -> dropout 0.25 -> dense 10: 464,522 parameters. Adam
 * lr 1e-3 with a cosine decay to 0 over the run, batch 64, 10 epochs, softmax cross-entropy
 * on the logits. --batch-norm adds batch normalisation after each convolution.
 *
 * ONE graph does everything: its input is declared [DG_BATCH, 1, 28, 28], so it takes the
 * 64 rows of a training step, the 32 rows of the last, partial batch of an epoch (60,000 is
 * not a multiple of 64), 1,000 rows at a time for evaluation and a single image for
 * --predict; the engine re-infers every shape when the batch size changes and keeps one
 * memory layout per size. Evaluation switches the graph to evaluation mode (dropout off,
 * batch norm on its running statistics) and back.
 *
 * Data: IDX files (raw or gzip'd) from --data, else $DG_MNIST_DIR, else ../shared/data/mnist
 * next to the source tree, else data/mnist; --dataset fashion reads Debian's
 * dataset-fashion-mnist (or $DG_FASHION_MNIST_DIR). Writes the training curves (SVG), the
 * collapsed graph (DOT, and SVG when Graphviz's library is present) and, with --save, a
 * checkpoint with state (batch norm's running statistics are state) that --predict loads
 * and --resume continues.
 *
 * --distributed (under mpirun, with dagrad's MPI layer; examples/common/ex_dist.c): every
 * process trains the same model on its rows of every global batch, the gradients averaged
 * across the processes, and evaluates its share of the test images; rank 0 prints and
 * writes. With --batch-norm each process normalises with its own rows' statistics and the
 * running statistics are averaged over the processes after every step (docs/DISTRIBUTED.md). */
#include "dagrad.h"
#include "dagrad/dot.h"
#include "dagrad/io.h"
#include "ex_args.h"
#include "ex_dist.h"
#include "ex_plot.h"
#include "ex_progress.h"
#include "ex_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG    "mnist_cnn"
#define CLASSES 10
#define SIDE    28
#define PIXELS  (SIDE * SIDE)

#ifndef DG_EXAMPLES_SOURCE_DIR
#define DG_EXAMPLES_SOURCE_DIR "."
#endif
/* Debian's dataset-fashion-mnist installs here (dpkg -L dataset-fashion-mnist). */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

typedef struct options {
    const char *data, *dataset, *filters, *schedule, *save, *predict, *out, *resume;
    double lr, dropout, expect;
    int batch, epochs, hidden, threads, seed, index, eval_batch, batch_norm, no_dot, no_render;
    int train_limit, test_limit, flip, distributed, anomaly;
    int widths[2];
    ex_dist *dist; /* --distributed: this process's part of every batch */
} options;

typedef struct model {
    dg_graph *g;
    dg_node *x, *y, *logits, *probs, *loss;
    dg_optimizer *opt;
    dg_node *stats[4]; /* batch norm's running means and variances (state) */
    int n_stats;
} model;

/* Images and labels of one split (pointers into a loaded dataset). */
typedef struct split {
    const float *images, *labels;
    int64_t count;
} split;

/* ---- data ---- */

static int has_train_files(const char *dir) {
    char path[4096];
    const char *names[] = {"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
                           "train-images.idx3-ubyte.gz", "train-images.idx3-ubyte"};
    for (int i = 0; i < 4; i++)
        if (ex_file_exists(ex_path(path, sizeof path, dir, names[i]))) return 1;
    return 0;
}

/* --data, else the dataset's default places, in order. */
static const char *data_dir(const options *o) {
    static char buf[4096];
    if (o->data) return o->data;
    if (strcmp(o->dataset, "fashion") == 0) {
        const char *env = getenv("DG_FASHION_MNIST_DIR");
        return env && *env ? env : FASHION_DIR;
    }
    const char *env = getenv("DG_MNIST_DIR");
    if (env && *env) {
        /* relative to the current directory, or to the source tree (as CI sets it) */
        if (env[0] != '/' && !ex_dir_exists(env)) {
            snprintf(buf, sizeof buf, "%s/%s", DG_EXAMPLES_SOURCE_DIR, env);
            if (ex_dir_exists(buf)) return buf;
        }
        return env;
    }
    snprintf(buf, sizeof buf, "%s/../shared/data/mnist", DG_EXAMPLES_SOURCE_DIR);
    if (has_train_files(buf)) return buf;
    if (has_train_files("data/mnist")) return "data/mnist";
    snprintf(buf, sizeof buf, "%s/data/mnist", DG_EXAMPLES_SOURCE_DIR);
    return buf;
}

static int load_data(const options *o, dg_dataset *train, dg_dataset *test, split *tr, split *te) {
    const char *dir = data_dir(o);
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!has_train_files(dir)) {
        fprintf(stderr, PROG ": no %s training files (train-images-idx3-ubyte[.gz]) in '%s'\n",
                strcmp(o->dataset, "fashion") == 0 ? "Fashion-MNIST" : "MNIST", dir);
        if (strcmp(o->dataset, "fashion") == 0)
            fprintf(stderr, "  install Debian's package: apt-get install dataset-fashion-mnist\n");
        else
            fprintf(stderr, "  point --data DIR or DG_MNIST_DIR at the official MNIST IDX files "
                            "(train-* and t10k-*)\n");
        return EX_EXIT_FAIL;
    }
    if (dg_mnist_load(dir, "train", train) != DG_OK || dg_mnist_load(dir, "t10k", test) != DG_OK) {
        fprintf(stderr, PROG ": %s\n  (the CNN example needs both the train and the t10k files)\n",
                dg_last_error());
        return EX_EXIT_FAIL;
    }
    if (train->rows * train->cols != PIXELS || test->rows * test->cols != PIXELS) {
        fprintf(stderr, PROG ": %s: images are not 28x28\n", dir);
        return EX_EXIT_FAIL;
    }
    *tr = (split){train->images, train->labels, train->count};
    *te = (split){test->images, test->labels, test->count};
    if (o->train_limit > 0 && o->train_limit < tr->count) tr->count = o->train_limit;
    if (o->test_limit > 0 && o->test_limit < te->count) te->count = o->test_limit;
    printf("data: %lld training and %lld test images from %s\n", (long long)tr->count,
           (long long)te->count, dir);
    return 0;
}

/* ---- model ---- */

/* The network, with fixed layer names so checkpoints match ("conv1/W", ..., "output/b"). */
static int build_model(model *m, const options *o, int64_t total_steps) {
    memset(m, 0, sizeof *m);
    m->g = dg_graph_new((uint64_t)o->seed);
    if (!m->g) return ex_fail(PROG, NULL, "creating the graph");
    dg_graph *g = m->g;
    m->x = dg_input(g, "images", dg_shape4(DG_BATCH, 1, SIDE, SIDE));
    m->y = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_activation conv_act = o->batch_norm ? DG_ACT_NONE : DG_ACT_RELU;
    dg_node *h = dg_conv2d(g, "conv1", m->x, o->widths[0], 5, 1, 2, conv_act);
    if (o->batch_norm) h = dg_relu(g, dg_batch_norm(g, "bn1", h, 0.1f, 1e-5f));
    h = dg_max_pool2d(g, "pool1", h, 2, 2, 0);
    h = dg_conv2d(g, "conv2", h, o->widths[1], 5, 1, 0, conv_act);
    if (o->batch_norm) h = dg_relu(g, dg_batch_norm(g, "bn2", h, 0.1f, 1e-5f));
    h = dg_max_pool2d(g, "pool2", h, 2, 2, 0);
    h = dg_flatten(g, "flatten", h);
    h = dg_dense(g, "dense", h, o->hidden, DG_ACT_RELU);
    if (o->dropout > 0) h = dg_dropout(g, "dropout", h, (float)o->dropout);
    m->logits = dg_dense(g, "output", h, CLASSES, DG_ACT_NONE);
    m->probs = dg_softmax(g, m->logits);
    m->loss = dg_cross_entropy_loss(g, m->logits, m->y);
    if (!m->loss || !m->probs) return ex_fail(PROG, g, "building the model");
    dg_node_set_name(m->logits, "logits");
    dg_node_set_name(m->probs, "probabilities");
    dg_node_set_name(m->loss, "loss");
    /* the optimizer is part of the model even for --predict: its moments are state, and a
     * checkpoint with state (needed for batch norm's running statistics) holds them too */
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);
    cfg.lr = (float)o->lr;
    if (strcmp(o->schedule, "cosine") == 0) {
        cfg.schedule = DG_SCHED_COSINE; /* from lr down to 0 at the end of the last epoch */
        cfg.t_max = total_steps;
        cfg.lr_min = 0;
    }
    /* --distributed: the MPI layer's optimizer (refuses a model that differs between the
     * ranks) and rank 0's parameters and state on every rank */
    m->opt = ex_dist_optimizer(o->dist, g, m->loss, &cfg);
    if (!m->opt) return ex_fail(PROG, g, "building the optimizer");
    if (o->batch_norm) {
        const char *names[4] = {"bn1/running_mean", "bn1/running_var", "bn2/running_mean",
                                "bn2/running_var"};
        for (int i = 0; i < 4; i++)
            if (!(m->stats[m->n_stats++] = dg_graph_find(g, names[i])))
                return ex_fail(PROG, g, "finding batch norm's running statistics");
    }
    return 0;
}

/* Mean loss and accuracy over a split, o->eval_batch images per run (the last run takes
 * what is left), in evaluation mode. Under --distributed each rank evaluates its share of
 * the images and the sums are added over the ranks. */
static int evaluate(model *m, const options *o, const split *s, double *loss, double *acc) {
    dg_set_training(m->g, 0);
    double sum_loss = 0;
    int64_t correct = 0, lo, hi;
    int rc = 0;
    ex_dist_shard(o->dist, s->count, &lo, &hi);
    for (int64_t start = lo; start < hi && rc == 0; start += o->eval_batch) {
        int64_t n = hi - start < o->eval_batch ? hi - start : o->eval_batch;
        if (dg_feed_ref(m->x, s->images + start * PIXELS, n * PIXELS) != DG_OK ||
            dg_run(m->g, m->probs) != DG_OK) {
            rc = ex_fail(PROG, m->g, "evaluating");
            break;
        }
        const float *p = dg_node_data(m->probs);
        for (int64_t i = 0; i < n; i++) {
            int label = (int)s->labels[start + i];
            correct += ex_argmax(p + i * CLASSES, CLASSES) == label;
            sum_loss -= log(fmax((double)p[i * CLASSES + label], 1e-30));
        }
    }
    dg_set_training(m->g, 1);
    /* every rank learns whether one failed, then the sums over the ranks */
    rc = ex_dist_agree(o->dist, rc, "evaluate its share of the images");
    double v[2] = {sum_loss, (double)correct};
    if (!rc) rc = ex_dist_sum(o->dist, v, 2);
    *loss = v[0] / (double)s->count;
    *acc = v[1] / (double)s->count;
    return rc;
}

/* ---- output ---- */

/* Runs the graph on the single test image #index (a batch of one) and prints the result. */
static int predict_one(model *m, const options *o, const split *s) {
    if (o->index >= s->count) {
        fprintf(stderr, PROG ": --index %d is past the %lld test images\n", o->index,
                (long long)s->count);
        return EX_EXIT_FAIL;
    }
    const float *img = s->images + (int64_t)o->index * PIXELS;
    dg_set_training(m->g, 0);
    dg_status st = dg_feed(m->x, img, PIXELS);
    if (st == DG_OK) st = dg_run(m->g, m->probs);
    dg_set_training(m->g, 1);
    if (st != DG_OK) return ex_fail(PROG, m->g, "predicting");
    printf("\nprediction for test image #%d (a batch of one):\n", o->index);
    ex_print_prediction(o->dataset, dg_node_data(m->probs), (int)s->labels[o->index], img);
    return 0;
}

/* The curves of epochs from+1 .. epochs (h: 5 rows of `epochs` values). */
static int write_plot(const options *o, int from, int epochs, const double *h) {
    static ex_panel panels[2];
    memset(panels, 0, sizeof panels);
    const double *ep = h + from, *trl = h + epochs + from, *tel = h + 2 * epochs + from,
                 *tra = h + 3 * epochs + from, *tea = h + 4 * epochs + from;
    int n = epochs - from;
    panels[0].title = "Loss per epoch";
    panels[0].xlabel = "epoch";
    panels[0].ylabel = "cross-entropy";
    panels[1].title = "Accuracy per epoch";
    panels[1].xlabel = "epoch";
    panels[1].ylabel = "accuracy";
    panels[1].legend = EX_LEGEND_BOTTOM_RIGHT;
    ex_panel_add(&panels[0], "train (running mean)", ep, trl, n)->markers = 1;
    ex_panel_add(&panels[0], "test", ep, tel, n)->markers = 1;
    ex_panel_add(&panels[1], "train (during epoch)", ep, tra, n)->markers = 1;
    ex_panel_add(&panels[1], "test", ep, tea, n)->markers = 1;
    char path[4096];
    ex_path(path, sizeof path, o->out, "mnist_cnn_training.svg");
    if (ex_svg_write(path, panels, 2, 560, 400) != 0) return EX_EXIT_FAIL;
    printf("wrote %s\n", path);
    return 0;
}

/* The whole training graph with each layer collapsed into one box (forward, backward and
 * Adam's updates), coloured by the gradient norms of the last step. */
static int write_dot(const options *o, const model *m) {
    char path[4096];
    dg_dot_options d = dg_dot_defaults();
    d.loss = m->loss;
    d.collapse_scopes = 1;
    d.grad_heat = 1;
    d.grad_norms = 1;
    d.rankdir = "LR";
    d.title = "LeNet-style CNN on MNIST, layers collapsed: forward, backward and Adam updates; "
              "colour = log10 of each gradient's L2 norm after the last step";
    if (dg_dot_write(m->g, ex_path(path, sizeof path, o->out, "mnist_cnn_graph.dot"), &d) != DG_OK)
        return ex_fail(PROG, m->g, "writing the DOT graph");
    printf("wrote %s", path);
    if (dg_dot_render_available() && !o->no_render) {
        if (dg_dot_render(m->g, ex_path(path, sizeof path, o->out, "mnist_cnn_graph.svg"), "svg",
                          &d) != DG_OK)
            return ex_fail(PROG, m->g, "rendering the DOT graph");
        printf(" and %s", path);
    }
    printf("\n");
    return 0;
}

/* ---- training ---- */

/* Mirrors a 28x28 image left-right (clothes are nearly symmetric; digits are not). */
static void flip_image(float *dst, const float *src) {
    for (int r = 0; r < SIDE; r++)
        for (int c = 0; c < SIDE; c++) dst[r * SIDE + c] = src[r * SIDE + SIDE - 1 - c];
}

/* Far above ln 10, the loss of guessing: a run whose epoch averages this much diverged. */
#define DIVERGED_LOSS 50.0

static void diverged_help(const options *o) {
    fprintf(stderr, "  lower the learning rate (--lr %g; the default is 1e-3)%s\n", o->lr,
            o->anomaly ? ""
                       : ", or run with --anomaly to stop at the first op that produces an "
                         "infinity or NaN");
}

static int train(const options *o, model *m, const split *tr, const split *te, double *acc) {
    const int64_t B = o->batch, steps = (tr->count + B - 1) / B;
    /* --resume: --epochs counts the whole run, the checkpoint's epochs included, so the
     * cosine schedule (over all of them) goes on where it stopped */
    int64_t done = dg_optimizer_steps(m->opt);
    if (done % steps != 0) {
        fprintf(stderr,
                PROG ": --resume: the checkpoint stopped at step %lld, inside an epoch of %lld "
                     "steps (use the --batch and --train-limit it was trained with)\n",
                (long long)done, (long long)steps);
        return EX_EXIT_FAIL;
    }
    int first = (int)(done / steps) + 1;
    if (first > o->epochs) {
        fprintf(stderr,
                PROG ": --resume: the checkpoint has trained %d epochs already; --epochs counts "
                     "the whole run, so give more than %d\n",
                first - 1, first - 1);
        return EX_EXIT_USAGE;
    }
    int64_t *order = malloc(sizeof(int64_t) * (size_t)tr->count);
    double *hist = calloc(5 * (size_t)o->epochs, sizeof(double));
    float *xb = malloc(sizeof(float) * (size_t)(B * PIXELS)),
          *yb = malloc(sizeof(float) * (size_t)B);
    if (!order || !hist || !xb || !yb) {
        free(order), free(hist), free(xb), free(yb);
        fprintf(stderr, PROG ": out of memory\n");
        return EX_EXIT_FAIL;
    }
    for (int64_t i = 0; i < tr->count; i++) order[i] = i;
    printf("training: Adam lr %g%s, batch %d (the last of each epoch: %lld), %d epochs, %lld "
           "steps per epoch%s%s\n",
           o->lr, strcmp(o->schedule, "cosine") == 0 ? " with cosine decay to 0" : "", o->batch,
           (long long)(tr->count - (steps - 1) * B), o->epochs, (long long)steps,
           o->dropout > 0 ? ", dropout" : "", o->flip ? ", random left-right flips" : "");
    if (o->batch_norm && o->dist->on)
        printf("batch norm, distributed: each process normalises with the statistics of its own "
               "rows;\n  the running statistics are averaged over the processes after every "
               "step (weighted by rows)\n");
    ex_rng rng;
    ex_rng_seed(&rng, (uint64_t)o->seed);
    /* the epochs of the checkpoint: their shuffles and flips, so the data order goes on as
     * in a run that was never stopped */
    for (int e = 1; e < first; e++) {
        ex_shuffle(&rng, order, tr->count);
        for (int64_t i = 0; o->flip && i < tr->count; i++) ex_rng_below(&rng, 2);
    }
    if (first > 1) printf("resuming at epoch %d of %d\n", first, o->epochs);
    dg_node *targets[2] = {dg_optimizer_step_node(m->opt), m->logits};
    int tty = ex_stdout_is_tty(), rc = 0;
    double test_loss = 0, test_acc = 0, train_secs = 0;
    for (int e = first; e <= o->epochs && rc == 0; e++) {
        ex_shuffle(&rng, order, tr->count);
        char label[32];
        snprintf(label, sizeof label, "epoch %d/%d", e, o->epochs);
        ex_progress bar;
        ex_progress_begin(&bar, tr->count, tty); /* main's ex_progress API (one epoch a run) */
        ex_progress_epoch(&bar, label, tr->count);
        double t0 = ex_now(), sum_loss = 0;
        int64_t correct = 0, mine = 0;
        for (int64_t s = 0; s < steps; s++) {
            int64_t n = tr->count - s * B < B ? tr->count - s * B : B, lo, hi;
            /* this process's rows [lo, hi) of the global batch (--distributed); every
             * process draws the whole batch's flips, so the random stream is one process's */
            ex_dist_shard(o->dist, n, &lo, &hi);
            for (int64_t i = 0; i < n; i++) {
                int64_t k = order[s * B + i];
                const float *src = tr->images + k * PIXELS;
                int flip = o->flip && ex_rng_below(&rng, 2);
                if (i < lo || i >= hi) continue;
                if (flip)
                    flip_image(xb + i * PIXELS, src);
                else
                    memcpy(xb + i * PIXELS, src, sizeof(float) * PIXELS);
                yb[i] = tr->labels[k];
            }
            /* a process without rows in a last small batch steps on one row, weight 0 */
            /* fed by reference: the step reads xb and yb where they are, no copy */
            int64_t at = hi > lo ? lo : 0, fed = hi > lo ? hi - lo : 1;
            if (hi == lo) memcpy(xb, tr->images, sizeof(float) * PIXELS), yb[0] = tr->labels[0];
            if (dg_feed_ref(m->x, xb + at * PIXELS, fed * PIXELS) != DG_OK ||
                dg_feed_ref(m->y, yb + at, fed) != DG_OK ||
                ex_dist_step(o->dist, m->g, 2, targets, lo, hi) != DG_OK) {
                ex_progress_finish(&bar);
                rc = ex_fail(PROG, m->g, "training step");
                if (dg_graph_status(m->g) == DG_ERR_NONFINITE) diverged_help(o);
                break;
            }
            /* every process's batch norm statistics of this step, weighted by its rows */
            if (m->n_stats &&
                (rc = ex_dist_average(o->dist, m->stats, m->n_stats, (double)(hi - lo))) != 0)
                break;
            /* loss (over the global batch) and logits of this step's forward pass, before
             * its update */
            sum_loss += ex_dist_loss(o->dist, dg_value(targets[0])) * (double)n;
            const float *lg = dg_node_data(m->logits);
            for (int64_t i = lo; i < hi; i++)
                correct += ex_argmax(lg + (i - lo) * CLASSES, CLASSES) == (int)yb[i];
            mine += hi - lo;
            /* the accuracy shown is this process's rows' (all of them in one process) */
            ex_progress_update(&bar, s * B + n, sum_loss / (double)(s * B + n),
                               mine ? (double)correct / (double)mine : 0);
        }
        ex_progress_finish(&bar);
        double right = (double)correct; /* over every process's rows */
        if (!rc) rc = ex_dist_sum(o->dist, &right, 1);
        if (rc) break;
        correct = (int64_t)right;
        double secs = ex_now() - t0;
        train_secs += secs;
        if ((rc = evaluate(m, o, te, &test_loss, &test_acc)) != 0) break;
        hist[e - 1] = e;
        hist[o->epochs + e - 1] = sum_loss / (double)tr->count;
        hist[2 * o->epochs + e - 1] = test_loss;
        hist[3 * o->epochs + e - 1] = (double)correct / (double)tr->count;
        hist[4 * o->epochs + e - 1] = test_acc;
        printf("epoch %2d/%d  loss %.4f  train acc %.4f  test loss %.4f  test acc %.4f  "
               "(%.1f s, %.0f images/s)\n",
               e, o->epochs, hist[o->epochs + e - 1], hist[3 * o->epochs + e - 1], test_loss,
               test_acc, secs, (double)tr->count / secs);
        fflush(stdout);
        /* guessing uniformly costs ln 10 = 2.30; far above it, training diverged */
        if (!(hist[o->epochs + e - 1] < DIVERGED_LOSS)) {
            fprintf(stderr,
                    PROG ": training diverged: the mean loss of epoch %d is %g, far above the "
                         "%.2f of guessing uniformly among %d classes\n",
                    e, hist[o->epochs + e - 1], log((double)CLASSES), CLASSES);
            diverged_help(o);
            rc = EX_EXIT_FAIL;
        }
    }
    if (rc == 0) printf("training time: %.1f s\n", train_secs);
    if (rc == 0 && m->n_stats && o->dist->on) {
        /* the averaging keeps the running statistics (evaluation's) equal on every rank */
        int64_t k = 0;
        for (int i = 0; i < m->n_stats; i++) k += dg_node_numel(m->stats[i]);
        double *v = malloc(sizeof(double) * (size_t)k);
        rc = ex_dist_agree(o->dist, v ? 0 : EX_EXIT_FAIL, "allocate memory");
        int64_t at = 0;
        for (int i = 0; i < m->n_stats && rc == 0; i++) {
            const float *f = dg_node_data(m->stats[i]);
            for (int64_t j = 0; j < dg_node_numel(m->stats[i]); j++) v[at++] = f[j];
        }
        int same = rc ? -1 : ex_dist_same(o->dist, v, (int)k);
        free(v);
        if (same < 0) rc = EX_EXIT_FAIL;
        if (same == 0) {
            fprintf(stderr, PROG ": batch norm's running statistics differ between the ranks\n");
            rc = EX_EXIT_FAIL;
        }
        if (same > 0)
            printf("batch norm: running statistics equal on all %d processes\n", o->dist->size);
    }
    int trained = rc == 0; /* the same on every rank: failures so far were collective */
    if (rc == 0 && ex_dist_root(o->dist)) rc = write_plot(o, first - 1, o->epochs, hist);
    if (rc == 0 && !o->no_dot && ex_dist_root(o->dist)) rc = write_dot(o, m);
    if (trained) /* rank 0's files: every rank learns the outcome */
        rc = ex_dist_agree(o->dist, rc, "write the plot and the graph");
    *acc = test_acc;
    free(order), free(hist), free(xb), free(yb);
    return rc;
}

int main(int argc, char **argv) {
    options o = {.dataset = "mnist",
                 .filters = "32,64",
                 .schedule = "cosine",
                 .out = "out",
                 .lr = 1e-3,
                 .dropout = 0.25,
                 .expect = -1,
                 .batch = 64,
                 .epochs = 10,
                 .hidden = 256,
                 .seed = 1,
                 .index = 0,
                 .eval_batch = 1000,
                 .flip = -1};
    ex_arg args[] = {
        {"--data", EX_ARG_STRING, &o.data, "DIR",
         "IDX files (default: $DG_MNIST_DIR, then ../shared/data/mnist)", NULL, 0, 0},
        {"--dataset", EX_ARG_CHOICE, &o.dataset, "NAME", "which data set (default mnist)",
         "mnist|fashion", 0, 0},
        {"--filters", EX_ARG_STRING, &o.filters, "F1,F2",
         "filters of the two convolutions (default 32,64)", NULL, 0, 0},
        {"--hidden", EX_ARG_INT, &o.hidden, "N", "units of the dense layer (default 256)", NULL, 1,
         65536},
        {"--batch-norm", EX_ARG_FLAG, &o.batch_norm, NULL,
         "batch normalisation after each convolution", NULL, 0, 0},
        {"--dropout", EX_ARG_FLOAT, &o.dropout, "P", "dropout before the output (default 0.25)",
         NULL, 0, 0.95},
        {"--lr", EX_ARG_FLOAT, &o.lr, "LR", "Adam's learning rate (default 1e-3)", NULL, 1e-12, 10},
        {"--schedule", EX_ARG_CHOICE, &o.schedule, "NAME",
         "learning rate: cosine decay to 0 over the run (default) or constant", "cosine|constant",
         0, 0},
        {"--batch", EX_ARG_INT, &o.batch, "N", "training batch size (default 64)", NULL, 1, 65536},
        {"--epochs", EX_ARG_INT, &o.epochs, "N", "epochs (default 10)", NULL, 1, 100000},
        {"--eval-batch", EX_ARG_INT, &o.eval_batch, "N", "images per evaluation run (default 1000)",
         NULL, 1, 65536},
        {"--flip", EX_ARG_INT, &o.flip, "0|1",
         "mirror training images left-right half the time (default: 1 for fashion, 0 for digits)",
         NULL, 0, 1},
        {"--train-limit", EX_ARG_INT, &o.train_limit, "N",
         "train on the first N training images only (default: all)", NULL, 0, 2147483647},
        {"--test-limit", EX_ARG_INT, &o.test_limit, "N",
         "evaluate on the first N test images only (default: all)", NULL, 0, 2147483647},
        {"--threads", EX_ARG_INT, &o.threads, "N", "OpenMP threads (default: OpenMP's)", NULL, 0,
         1024},
        {"--seed", EX_ARG_INT, &o.seed, "S", "seed for weights, dropout and shuffling (default 1)",
         NULL, 0, 2147483647},
        {"--save", EX_ARG_STRING, &o.save, "FILE",
         "save a checkpoint (parameters and state) after training", NULL, 0, 0},
        {"--predict", EX_ARG_STRING, &o.predict, "FILE",
         "load a checkpoint, evaluate it and predict one image, without training", NULL, 0, 0},
        {"--resume", EX_ARG_STRING, &o.resume, "FILE",
         "continue a run from its --save checkpoint (any number of processes) up to --epochs "
         "in all",
         NULL, 0, 0},
        {"--distributed", EX_ARG_FLAG, &o.distributed, NULL,
         "data-parallel over MPI: under mpirun, each process trains on its part of every batch "
         "(docs/DISTRIBUTED.md)",
         NULL, 0, 0},
        {"--index", EX_ARG_INT, &o.index, "I", "test image to predict (default 0)", NULL, 0,
         2147483647},
        {"--out", EX_ARG_STRING, &o.out, "DIR", "directory for the plot and graph (default out)",
         NULL, 0, 0},
        {"--no-dot", EX_ARG_FLAG, &o.no_dot, NULL, "skip writing the DOT graph", NULL, 0, 0},
        {"--no-render", EX_ARG_FLAG, &o.no_render, NULL,
         "write the DOT graph but do not render it to SVG", NULL, 0, 0},
        {"--anomaly", EX_ARG_FLAG, &o.anomaly, NULL,
         "anomaly mode: stop at the first op or update that produces an infinity or NaN", NULL, 0,
         0},
        {"--expect-accuracy", EX_ARG_FLOAT, &o.expect, "A",
         "exit with status 1 if the final test accuracy is below A (for tests)", NULL, 0, 1},
    };
    int pr = ex_parse_args(argc, argv,
                           "Trains a LeNet-style CNN on MNIST (or Fashion-MNIST) and predicts a "
                           "test image.",
                           args, (int)(sizeof args / sizeof args[0]));
    if (pr != 0) return pr > 0 ? EX_EXIT_OK : EX_EXIT_USAGE;
    if (ex_parse_int_list(o.filters, o.widths, 2) != 2) {
        fprintf(stderr, PROG ": --filters expects two positive counts like 32,64, got '%s'\n",
                o.filters);
        return EX_EXIT_USAGE;
    }
    if (o.flip < 0) o.flip = strcmp(o.dataset, "fashion") == 0;
    if (o.predict && o.resume) {
        fprintf(stderr, PROG ": --predict and --resume contradict each other\n");
        return EX_EXIT_USAGE;
    }
    if (o.threads > 0) dg_set_num_threads(o.threads);
    ex_dist dist;
    int rc = ex_dist_start(&dist, o.distributed, PROG);
    if (rc) return rc;
    o.dist = &dist;

    dg_dataset train_set, test_set;
    split tr = {0}, te = {0};
    /* every rank reads the data; if one cannot, all stop */
    rc = ex_dist_agree(&dist, load_data(&o, &train_set, &test_set, &tr, &te), "load its data");
    if (!rc)
        rc = ex_dist_agree(&dist, ex_mkdir_p(o.out) ? EX_EXIT_FAIL : 0,
                           "create the output directory");
    model m = {0};
    if (!rc) rc = build_model(&m, &o, (tr.count + o.batch - 1) / o.batch * o.epochs);
    if (!rc && o.anomaly) dg_set_anomaly_mode(m.g, 1);
    /* parameters and optimizer state of a --save, from any number of processes */
    if (!rc && o.resume) {
        if (ex_dist_load(&dist, m.g, o.resume, 1) != DG_OK) {
            rc = ex_fail(PROG, m.g, "resuming");
            fprintf(stderr, "  (use the same --filters, --hidden, --batch-norm and --dropout as "
                            "when it was saved)\n");
        } else {
            printf("resumed %s after %lld steps\n", o.resume, (long long)dg_optimizer_steps(m.opt));
        }
    }
    double loss = 0, acc = 0;
    if (!rc && o.predict) {
        /* with state: the running statistics of batch norm (and Adam's moments) */
        if (ex_dist_load(&dist, m.g, o.predict, 1) != DG_OK) {
            fprintf(stderr, PROG ": cannot load checkpoint: %s\n", dg_graph_error(m.g));
            fprintf(stderr, "  (use the same --filters, --hidden, --batch-norm and --dropout as "
                            "when it was saved)\n");
            rc = EX_EXIT_FAIL;
        } else {
            printf("loaded checkpoint %s\n", o.predict);
        }
    } else if (!rc) {
        printf("\n");
        dg_summary(m.g, stdout);
        printf("(N is the batch dimension: the graph takes any batch size)\n\n");
        rc = train(&o, &m, &tr, &te, &acc);
    }
    if (!rc) rc = evaluate(&m, &o, &te, &loss, &acc);
    if (!rc)
        printf("\ntest set: loss %.4f, accuracy %.4f (%lld images)\n", loss, acc,
               (long long)te.count);
    if (!rc) rc = predict_one(&m, &o, &te);
    if (!rc && o.save) { /* rank 0 writes it; every rank learns the outcome */
        if (ex_dist_save(&dist, m.g, o.save, 1) != DG_OK)
            rc = ex_fail(PROG, m.g, "saving the checkpoint");
        else
            printf("saved checkpoint %s\n", o.save);
    }
    if (!rc && o.expect >= 0 && acc < o.expect) {
        fprintf(stderr, PROG ": test accuracy %.4f is below --expect-accuracy %.4f\n", acc,
                o.expect);
        rc = EX_EXIT_FAIL;
    }
    dg_graph_free(m.g);
    dg_dataset_free(&train_set);
    dg_dataset_free(&test_set);
    ex_dist_finish(&dist);
    return rc;
}
