/* Bad input to every function of dagrad/io.h and dagrad/dot.h: NULL pointers and paths,
 * paths in missing directories, directories instead of files, empty files, files of the
 * wrong kind, a .npy of the wrong shape, checkpoints of another model, invalid shapes and
 * options. Each must fail with a status and a message naming the function and the
 * problem, leave nodes, outputs and existing files as they were, and the graph must
 * still work afterwards. */
#define _POSIX_C_SOURCE 200809L
#include "test_robust_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static const char *in_dir(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

/* Size of a file, -1 if absent. */
static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* 1 if `d` holds a temporary of a save to a file named `name` (docs/FORMATS.md: hidden,
 * starting with the name, ending in ".dgtmp"). */
static int leftover(const char *d, const char *name) {
    DIR *dh = opendir(d);
    if (!dh) return 0;
    struct dirent *e;
    int found = 0;
    size_t n = strlen(name);
    while ((e = readdir(dh))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' && strncmp(e->d_name + 1, name, n) == 0 && len > 6 &&
            strcmp(e->d_name + len - 6, ".dgtmp") == 0)
            found = 1;
    }
    closedir(dh);
    return found;
}

static void test_checkpoint(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
    dg_node *d = dg_dense(g, "d", x, 2, DG_ACT_NONE);
    CHECK(d != NULL);
    char good[256];
    snprintf(good, sizeof good, "%s", in_dir("good.ckpt"));
    CHECK_OK(dg_checkpoint_save(g, good, 0));
    long good_size = file_size(good);
    CHECK(good_size > 0);

    /* saving */
    EXPECT_LAST(dg_checkpoint_save(NULL, good, 0), DG_ERR_NULL, "checkpoint_save: graph is NULL");
    CHECK(dg_checkpoint_save(g, NULL, 0) == DG_ERR_NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "checkpoint_save: path is NULL");
    CHECK(dg_checkpoint_save(g, "/nonexistent-dir/x.ckpt", 0) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "checkpoint_save '/nonexistent-dir/x.ckpt': cannot create");
    CHECK(dg_checkpoint_save(g, dir, 0) == DG_ERR_IO); /* a directory */
    CHECK(!leftover("/tmp", strrchr(dir, '/') + 1));
    EXPECT_ERROR(g, DG_ERR_IO, "checkpoint_save");
    mkdir(in_dir("sub"), 0700);
    CHECK(dg_checkpoint_save(g, in_dir("sub"), 0) == DG_ERR_IO);
    CHECK(!leftover(dir, "sub"));
    EXPECT_ERROR(g, DG_ERR_IO, "sub': the path is a directory, not a file");
    CHECK(dg_checkpoint_save(g, "", 0) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "checkpoint_save '': the path names no file");
    CHECK(dg_checkpoint_save(g, in_dir("sub/"), 0) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "sub/': the path names no file");
    CHECK(!leftover(dir, ""));
    /* a component that is a file, not a directory: refused before anything is written */
    char below[300];
    snprintf(below, sizeof below, "%s/x.ckpt", good);
    CHECK(dg_checkpoint_save(g, below, 0) == DG_ERR_IO);
    char why[128];
    snprintf(why, sizeof why, "cannot use the path: %s", strerror(ENOTDIR));
    EXPECT_ERROR(g, DG_ERR_IO, why);
    /* a name colliding with the fallback name of an unnamed parameter */
    dg_graph *dup = dg_graph_new(2);
    dg_param(dup, NULL, dg_shape1(2));
    dg_param(dup, "param#0", dg_shape1(3));
    CHECK(dg_checkpoint_save(dup, good, 0) == DG_ERR_ARG);
    EXPECT_ERROR(dup, DG_ERR_ARG, "two nodes are named 'param#0'");
    /* a name longer than the format allows */
    dg_graph *longg = dg_graph_new(3);
    char *longname = malloc(5000);
    memset(longname, 'a', 4999);
    longname[4999] = 0;
    dg_param(longg, longname, dg_shape1(2));
    free(longname);
    CHECK(dg_checkpoint_save(longg, good, 0) == DG_ERR_ARG);
    EXPECT_ERROR(longg, DG_ERR_ARG, "name is 4999 bytes long (at most 4096)");
    CHECK(file_size(good) == good_size); /* none of the failed saves touched it */

    /* loading: parameters must be left exactly as they were */
    dg_node *w = dg_node_input(dg_node_input(d, 0), 1);
    float w0[6];
    CHECK_OK(dg_read(w, w0, 6));
    for (int i = 0; i < 6; i++) dg_node_data(w)[i] = 100.0f + (float)i;
    CHECK_OK(dg_read(w, w0, 6));
    EXPECT_LAST(dg_checkpoint_load(NULL, good, 0), DG_ERR_NULL, "checkpoint_load: graph is NULL");
    CHECK(dg_checkpoint_load(g, NULL, 0) == DG_ERR_NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "checkpoint_load: path is NULL");
    CHECK(dg_checkpoint_load(g, in_dir("missing.ckpt"), 0) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "missing.ckpt': cannot open");
    CHECK(dg_checkpoint_load(g, "/nonexistent-dir/x.ckpt", 0) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "checkpoint_load '/nonexistent-dir/x.ckpt': cannot open");
    CHECK(dg_checkpoint_load(g, dir, 0) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "is not a regular file");
    write_bytes(in_dir("empty"), "", 0);
    CHECK(dg_checkpoint_load(g, in_dir("empty"), 0) == DG_ERR_FORMAT);
    EXPECT_ERROR(g, DG_ERR_FORMAT, "empty': truncated at byte 0");
    const char text[] = "this is not a checkpoint, just some text";
    write_bytes(in_dir("text"), text, sizeof text);
    CHECK(dg_checkpoint_load(g, in_dir("text"), 0) == DG_ERR_FORMAT);
    EXPECT_ERROR(g, DG_ERR_FORMAT, "not a dagrad checkpoint (bad magic)");
    const float v[3] = {1, 2, 3};
    CHECK_OK(dg_npy_write(in_dir("v.npy"), v, dg_shape1(3)));
    CHECK(dg_checkpoint_load(g, in_dir("v.npy"), 0) == DG_ERR_FORMAT);
    EXPECT_ERROR(g, DG_ERR_FORMAT, "bad magic");
    /* a checkpoint of another model */
    dg_graph *other = dg_graph_new(4);
    dg_node *ox = dg_input(other, "x", dg_shape2(2, 3));
    CHECK(dg_dense(other, "d", ox, 5, DG_ACT_NONE) != NULL);
    CHECK_OK(dg_checkpoint_save(other, in_dir("other.ckpt"), 0));
    CHECK(dg_checkpoint_load(g, in_dir("other.ckpt"), 0) == DG_ERR_SHAPE);
    EXPECT_ERROR(g, DG_ERR_SHAPE, "shape mismatch for parameter 'd/");
    dg_graph *more = dg_graph_new(5);
    dg_node *mx = dg_input(more, "x", dg_shape2(2, 3));
    CHECK(dg_dense(more, "e", dg_dense(more, "d", mx, 2, DG_ACT_NONE), 1, DG_ACT_NONE) != NULL);
    CHECK(dg_checkpoint_load(more, good, 0) == DG_ERR_SHAPE);
    EXPECT_ERROR(more, DG_ERR_SHAPE, "the graph's parameter 'e/W' [2,1] is not in the checkpoint");
    dg_graph_free(more);
    /* state asked for but not saved */
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    dg_node *t = dg_input(g, "t", dg_shape2(2, 2));
    CHECK(dg_optimizer_new(g, dg_mse_loss(g, d, t), &c) != NULL);
    CHECK(dg_checkpoint_load(g, good, 1) == DG_ERR_SHAPE);
    EXPECT_ERROR(g, DG_ERR_SHAPE, "(saved without state?)");
    CHECK(memcmp(dg_node_data(w), w0, sizeof w0) == 0);
    /* from memory */
    CHECK(dg_checkpoint_load_mem(NULL, text, sizeof text, 0) == DG_ERR_NULL);
    CHECK_HAS(dg_last_error(), "checkpoint_load: graph is NULL");
    CHECK(dg_checkpoint_load_mem(g, NULL, 100, 0) == DG_ERR_NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "checkpoint_load: data is NULL");
    CHECK(dg_checkpoint_load_mem(g, NULL, 0, 0) == DG_ERR_FORMAT);
    EXPECT_ERROR(g, DG_ERR_FORMAT, "checkpoint_load: truncated at byte 0");
    CHECK(memcmp(dg_node_data(w), w0, sizeof w0) == 0);
    /* loading still works in this graph (which the checks above grew: save it anew) */
    CHECK_OK(dg_checkpoint_save(g, good, 1));
    for (int i = 0; i < 6; i++) dg_node_data(w)[i] = -1.0f;
    CHECK_OK(dg_checkpoint_load(g, good, 1));
    CHECK(memcmp(dg_node_data(w), w0, sizeof w0) == 0);
    dg_graph_free(g);
    dg_graph_free(dup);
    dg_graph_free(longg);
    dg_graph_free(other);
}

static void test_npy(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *p = dg_param(g, "p", dg_shape2(2, 3));
    const float six[6] = {1, 2, 3, 4, 5, 6};
    CHECK_OK(dg_feed(p, six, 6));
    char good[256];
    snprintf(good, sizeof good, "%s", in_dir("p.npy"));
    CHECK_OK(dg_npy_save(p, good));
    long good_size = file_size(good);

    /* saving and writing */
    EXPECT_LAST(dg_npy_save(NULL, good), DG_ERR_NULL, "npy_save: node is NULL");
    CHECK(dg_npy_save(p, NULL) == DG_ERR_NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "npy_save: path is NULL");
    CHECK(dg_npy_save(p, "/nonexistent-dir/p.npy") == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "npy_save '/nonexistent-dir/p.npy': cannot create");
    mkdir(in_dir("npydir"), 0700);
    CHECK(dg_npy_save(p, in_dir("npydir")) == DG_ERR_IO);
    CHECK(!leftover(dir, "npydir"));
    EXPECT_ERROR(g, DG_ERR_IO, "npy_save");
    EXPECT_LAST(dg_npy_write(NULL, six, dg_shape1(6)), DG_ERR_NULL, "npy_write: path is NULL");
    EXPECT_LAST(dg_npy_write(good, NULL, dg_shape1(6)), DG_ERR_NULL, "npy_write: data is NULL");
    dg_shape bad[4] = {dg_shape2(0, 3), dg_shape1(-6), dg_shape4(1 << 20, 1 << 20, 1 << 20, 2),
                       dg_shape2(2, 3)};
    bad[3].ndim = 5;
    for (int i = 0; i < 4; i++)
        EXPECT_LAST(dg_npy_write(good, six, bad[i]), DG_ERR_SHAPE, "npy_write '");
    CHECK_HAS(dg_last_error(), "invalid shape");
    EXPECT_LAST(dg_npy_write("/nonexistent-dir/v.npy", six, dg_shape1(6)), DG_ERR_IO,
                "npy_write '/nonexistent-dir/v.npy': cannot create");
    CHECK(file_size(good) == good_size);

    /* loading into a node */
    dg_node *q = dg_param(g, "q", dg_shape2(2, 3));
    float q0[6];
    CHECK_OK(dg_read(q, q0, 6));
    EXPECT_LAST(dg_npy_load(NULL, good), DG_ERR_NULL, "npy_load: node is NULL");
    CHECK(dg_npy_load(q, NULL) == DG_ERR_NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "npy_load: path is NULL");
    CHECK(dg_npy_load(q, in_dir("missing.npy")) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "missing.npy': cannot open");
    CHECK(dg_npy_load(q, dir) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "is not a regular file");
    write_bytes(in_dir("empty.npy"), "", 0);
    CHECK(dg_npy_load(q, in_dir("empty.npy")) == DG_ERR_FORMAT);
    EXPECT_ERROR(g, DG_ERR_FORMAT, "not a .npy file (too short)");
    dg_graph *cg = dg_graph_new(9);
    dg_param(cg, "w", dg_shape1(4));
    CHECK_OK(dg_checkpoint_save(cg, in_dir("c.ckpt"), 0));
    dg_graph_free(cg);
    CHECK(dg_npy_load(q, in_dir("c.ckpt")) == DG_ERR_FORMAT);
    EXPECT_ERROR(g, DG_ERR_FORMAT, "not a .npy file (bad magic)");
    /* wrong shapes: same count in another layout, other count, other rank */
    const dg_shape wrong[3] = {dg_shape2(3, 2), dg_shape1(6), dg_shape3(1, 2, 3)};
    const char *wants[3] = {"the file holds [2,3], node", "node", "node"};
    for (int i = 0; i < 3; i++) {
        dg_node *r = dg_param(g, NULL, wrong[i]);
        CHECK(dg_npy_load(r, good) == DG_ERR_SHAPE);
        EXPECT_ERROR(g, DG_ERR_SHAPE, wants[i]);
        CHECK(dg_node_data(r)[0] == 0.0f);
    }
    CHECK(dg_npy_load(q, in_dir("v.npy")) == DG_ERR_SHAPE);
    EXPECT_ERROR(g, DG_ERR_SHAPE, "the file holds [3], node");
    CHECK(memcmp(dg_node_data(q), q0, sizeof q0) == 0);
    /* into a computed node: refused (its next run would overwrite the values) */
    dg_node *op = dg_add(g, p, p);
    CHECK(dg_npy_load(op, good) == DG_ERR_ARG);
    EXPECT_ERROR(g, DG_ERR_ARG, "is computed, not a leaf");
    CHECK_HAS(dg_last_error(), "npy_load '");
    /* into an input: it counts as fed, so a run can use it */
    dg_node *in = dg_input(g, "in", dg_shape2(2, 3));
    dg_node *s = dg_sum(g, in);
    CHECK(dg_run(g, s) == DG_ERR_STATE);
    dg_graph_clear_error(g);
    CHECK_OK(dg_npy_load(in, good));
    CHECK_OK(dg_run(g, s));
    CHECK_NEAR(dg_value(s), 21, 0);

    /* reading into memory: outputs are NULL after every failure */
    float *data = (float *)six;
    dg_shape shape;
    EXPECT_LAST(dg_npy_read(NULL, &data, &shape), DG_ERR_NULL, "npy_read: a pointer argument");
    CHECK(data == NULL);
    EXPECT_LAST(dg_npy_read(good, NULL, &shape), DG_ERR_NULL, "npy_read");
    EXPECT_LAST(dg_npy_read(good, &data, NULL), DG_ERR_NULL, "npy_read");
    data = (float *)six;
    EXPECT_LAST(dg_npy_read(in_dir("empty.npy"), &data, &shape), DG_ERR_FORMAT, "npy_read '");
    CHECK(data == NULL);
    EXPECT_LAST(dg_npy_read(dir, &data, &shape), DG_ERR_IO, "is not a regular file");
    EXPECT_LAST(dg_npy_read("/nonexistent-dir/x.npy", &data, &shape), DG_ERR_IO, "cannot open");
    EXPECT_LAST(dg_npy_read_mem(NULL, 10, &data, &shape), DG_ERR_NULL, "npy_read");
    EXPECT_LAST(dg_npy_read_mem(NULL, 0, &data, &shape), DG_ERR_FORMAT,
                "npy_read: not a .npy file (too short)");
    EXPECT_LAST(dg_npy_read_mem(six, sizeof six, NULL, &shape), DG_ERR_NULL, "npy_read");
    CHECK_OK(dg_npy_read(good, &data, &shape));
    CHECK(data && dg_shape_equal(shape, dg_shape2(2, 3)) && memcmp(data, six, sizeof six) == 0);
    free(data);
    robust_still_works(g, __LINE__);
    dg_graph_free(g);
}

/* A raw IDX file: magic 0x00000800 | (type 0x08 << 8 is in the magic) | ndim, dims big-endian. */
static size_t idx_bytes(unsigned char *out, int ndim, const uint32_t *dims, unsigned char fill) {
    size_t n = 0, count = 1;
    out[n++] = 0, out[n++] = 0, out[n++] = 8, out[n++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        for (int b = 3; b >= 0; b--) out[n++] = (unsigned char)(dims[i] >> (8 * b));
        count *= dims[i];
    }
    for (size_t i = 0; i < count; i++) out[n++] = (unsigned char)(fill + i % 3);
    return n;
}

static int dataset_zero(const dg_dataset *d) {
    return d->count == 0 && d->rows == 0 && d->cols == 0 && !d->images && !d->labels &&
           d->classes == 0;
}

static void test_idx(void) {
    unsigned char img[64], lab[64];
    const uint32_t idims[3] = {3, 2, 2}, ldims[1] = {3}, l4[1] = {4};
    size_t ni = idx_bytes(img, 3, idims, 10), nl = idx_bytes(lab, 1, ldims, 0);
    write_bytes(in_dir("img.idx"), img, ni);
    write_bytes(in_dir("lab.idx"), lab, nl);
    dg_dataset ds;
    CHECK_OK(dg_idx_load(in_dir("img.idx"), in_dir("lab.idx"), &ds));
    CHECK(ds.count == 3 && ds.rows == 2 && ds.cols == 2 && ds.classes == 3);
    dg_dataset_free(&ds);
    CHECK(dataset_zero(&ds));
    dg_dataset_free(&ds); /* twice is harmless */
    dg_dataset_free(NULL);

#define GARBAGE(d) memset(&(d), 0x5a, sizeof(d))
    GARBAGE(ds);
    EXPECT_LAST(dg_idx_load(NULL, in_dir("lab.idx"), &ds), DG_ERR_NULL, "idx_load: a pointer");
    CHECK(dataset_zero(&ds));
    EXPECT_LAST(dg_idx_load(in_dir("img.idx"), NULL, &ds), DG_ERR_NULL, "idx_load");
    EXPECT_LAST(dg_idx_load(in_dir("img.idx"), in_dir("lab.idx"), NULL), DG_ERR_NULL, "idx_load");
    const struct {
        const char *img, *lab;
        dg_status st;
        const char *msg;
    } bad[] = {
        {"missing", "lab.idx", DG_ERR_IO, "idx_load: cannot open images"},
        {"img.idx", "missing", DG_ERR_IO, "idx_load: cannot open labels"},
        {"empty", "lab.idx", DG_ERR_FORMAT, "idx_load: images"},
        {"img.idx", "empty", DG_ERR_FORMAT, "idx_load: labels"},
        {"lab.idx", "img.idx", DG_ERR_FORMAT, "idx_load"}, /* swapped */
        {"img.idx", "img.idx", DG_ERR_FORMAT, "idx_load"},
        {"img.idx", "lab4.idx", DG_ERR_FORMAT, "idx_load"}, /* 3 images, 4 labels */
        {"text", "lab.idx", DG_ERR_FORMAT, "idx_load: images"},
    };
    write_bytes(in_dir("empty"), "", 0);
    nl = idx_bytes(lab, 1, l4, 0);
    write_bytes(in_dir("lab4.idx"), lab, nl);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        GARBAGE(ds);
        char ip[256], lp[256];
        snprintf(ip, sizeof ip, "%s", in_dir(bad[i].img));
        snprintf(lp, sizeof lp, "%s", in_dir(bad[i].lab));
        dg_status s = dg_idx_load(ip, lp, &ds);
        CHECK_MSG(s == bad[i].st, "case %zu: %s (%s)", i, dg_status_name(s), dg_last_error());
        CHECK_HAS(dg_last_error(), bad[i].msg);
        CHECK(dataset_zero(&ds));
    }
    /* a directory is not an IDX file */
    GARBAGE(ds);
    CHECK(dg_idx_load(dir, in_dir("lab.idx"), &ds) != DG_OK);
    CHECK_HAS(dg_last_error(), "idx_load");
    CHECK(dataset_zero(&ds));

    GARBAGE(ds);
    EXPECT_LAST(dg_idx_load_mem(NULL, 10, lab, nl, &ds), DG_ERR_NULL, "idx_load: a pointer");
    CHECK(dataset_zero(&ds));
    EXPECT_LAST(dg_idx_load_mem(img, ni, NULL, 5, &ds), DG_ERR_NULL, "idx_load");
    EXPECT_LAST(dg_idx_load_mem(img, ni, lab, nl, NULL), DG_ERR_NULL, "idx_load");
    EXPECT_LAST(dg_idx_load_mem(NULL, 0, NULL, 0, &ds), DG_ERR_FORMAT, "idx_load");
    CHECK(dataset_zero(&ds));

    /* MNIST directory layout */
    GARBAGE(ds);
    EXPECT_LAST(dg_mnist_load(NULL, "train", &ds), DG_ERR_NULL, "mnist_load: a pointer");
    CHECK(dataset_zero(&ds));
    EXPECT_LAST(dg_mnist_load(dir, NULL, &ds), DG_ERR_NULL, "mnist_load");
    EXPECT_LAST(dg_mnist_load(dir, "train", NULL), DG_ERR_NULL, "mnist_load");
    EXPECT_LAST(dg_mnist_load("/nonexistent-dir", "train", &ds), DG_ERR_IO,
                "mnist_load: no images file for 'train' in '/nonexistent-dir'");
    EXPECT_LAST(dg_mnist_load(in_dir("img.idx"), "train", &ds), DG_ERR_IO, "mnist_load: no images");
    EXPECT_LAST(dg_mnist_load(dir, "t10k", &ds), DG_ERR_IO, "mnist_load: no images file");
    char longp[400];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    EXPECT_LAST(dg_mnist_load(dir, longp, &ds), DG_ERR_ARG, "mnist_load: directory or prefix");
    CHECK(dataset_zero(&ds));
    /* images present, labels missing; then labels that are not digits */
    write_bytes(in_dir("x-images-idx3-ubyte"), img, ni);
    EXPECT_LAST(dg_mnist_load(dir, "x", &ds), DG_ERR_IO, "mnist_load: no labels file for 'x'");
    unsigned char big[16];
    size_t nb = idx_bytes(big, 1, ldims, 7); /* labels 7, 8, 9 */
    big[nb - 1] = 12;
    write_bytes(in_dir("x-labels-idx1-ubyte"), big, nb);
    EXPECT_LAST(dg_mnist_load(dir, "x", &ds), DG_ERR_FORMAT, "label 12 of item 2 is not a digit");
    CHECK(dataset_zero(&ds));
    big[nb - 1] = 9;
    write_bytes(in_dir("x-labels-idx1-ubyte"), big, nb);
    CHECK_OK(dg_mnist_load(dir, "x", &ds));
    CHECK(ds.count == 3 && ds.labels[2] == 9.0f);
    dg_dataset_free(&ds);
#undef GARBAGE
}

static void test_dot(void) {
    dg_graph *g = dg_graph_new(1), *h = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape2(2, 3));
    dg_node *loss = dg_mean(g, dg_dense(g, NULL, x, 2, DG_ACT_RELU));
    CHECK_OK(dg_backward(g, loss));
    char path[256];
    snprintf(path, sizeof path, "%s", in_dir("g.dot"));
    CHECK_OK(dg_dot_write(g, path, NULL));
    long size = file_size(path);
    CHECK(size > 0);

    CHECK(dg_dot_string(NULL, NULL) == NULL);
    CHECK_HAS(dg_last_error(), "dot: graph is NULL");
    EXPECT_LAST(dg_dot_write(NULL, path, NULL), DG_ERR_NULL, "dot_write: graph is NULL");
    CHECK(dg_dot_write(g, NULL, NULL) == DG_ERR_NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "dot_write: path is NULL");
    CHECK(dg_dot_write(g, "/nonexistent-dir/g.dot", NULL) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "dot_write: cannot open \"/nonexistent-dir/g.dot\"");
    CHECK(dg_dot_write(g, dir, NULL) == DG_ERR_IO);
    EXPECT_ERROR(g, DG_ERR_IO, "dot_write: cannot open");
    EXPECT_LAST(dg_dot_write_file(NULL, stdout, NULL), DG_ERR_NULL, "dot_write_file: graph");
    CHECK(dg_dot_write_file(g, NULL, NULL) == DG_ERR_NULL);
    EXPECT_ERROR(g, DG_ERR_NULL, "dot_write_file: stream is NULL");
    FILE *ro = fopen("/dev/null", "r");
    if (ro) {
        CHECK(dg_dot_write_file(g, ro, NULL) == DG_ERR_IO);
        EXPECT_ERROR(g, DG_ERR_IO, "dot_write_file: write failed");
        fclose(ro);
    }

    /* invalid options: refused before any file is opened, so an existing file survives */
    dg_dot_options bad[5];
    for (int i = 0; i < 5; i++) bad[i] = dg_dot_defaults();
    bad[0].rankdir = "XY";
    bad[1].rankdir = "";
    bad[2].grad_heat = 1;
    bad[2].heat_log10_min = 3;
    bad[2].heat_log10_max = -7;
    bad[3].grad_heat = 1;
    bad[3].heat_log10_min = NAN;
    bad[4].loss = dg_sum(h, dg_param(h, "hp", dg_shape1(2)));
    const dg_status want[5] = {DG_ERR_ARG, DG_ERR_ARG, DG_ERR_ARG, DG_ERR_ARG, DG_ERR_GRAPH};
    const char *msg[5] = {"dot: rankdir must be", "rankdir", "heat_log10_min < heat_log10_max",
                          "heat_log10_min < heat_log10_max",
                          "dot: the loss node belongs to another graph"};
    for (int i = 0; i < 5; i++) {
        CHECK(dg_dot_string(g, &bad[i]) == NULL);
        EXPECT_ERROR(g, want[i], msg[i]);
        CHECK(dg_dot_write(g, path, &bad[i]) == want[i]);
        EXPECT_ERROR(g, want[i], msg[i]);
        CHECK(dg_dot_render(g, path, "svg", &bad[i]) ==
              (dg_dot_render_available() ? want[i] : DG_ERR_UNSUPPORTED));
        dg_graph_clear_error(g);
        CHECK_MSG(file_size(path) == size, "case %d: %s was changed", i, path);
    }
    CHECK(dg_graph_status(h) == DG_OK);

    /* rendering: arguments checked before Graphviz is called */
    EXPECT_LAST(dg_dot_render(NULL, path, "svg", NULL),
                dg_dot_render_available() ? DG_ERR_NULL : DG_ERR_UNSUPPORTED, "dot_render");
    if (dg_dot_render_available()) {
        CHECK(dg_dot_render(g, NULL, "svg", NULL) == DG_ERR_NULL);
        EXPECT_ERROR(g, DG_ERR_NULL, "dot_render: path or format is NULL");
        CHECK(dg_dot_render(g, path, NULL, NULL) == DG_ERR_NULL);
        EXPECT_ERROR(g, DG_ERR_NULL, "dot_render: path or format is NULL");
        CHECK(dg_dot_render(g, "/nonexistent-dir/g.svg", "svg", NULL) == DG_ERR_IO);
        EXPECT_ERROR(g, DG_ERR_IO, "dot_render: cannot open \"/nonexistent-dir/g.svg\"");
        CHECK(dg_dot_render(g, dir, "svg", NULL) == DG_ERR_IO);
        EXPECT_ERROR(g, DG_ERR_IO, "dot_render: cannot open");
    } else {
        CHECK(dg_dot_render(g, path, "svg", NULL) == DG_ERR_UNSUPPORTED);
        EXPECT_ERROR(g, DG_ERR_UNSUPPORTED, "dot_render: this build has no Graphviz");
    }
    CHECK(file_size(path) == size);
    /* the text is still produced */
    char *t = dg_dot_string(g, NULL);
    CHECK(t && strstr(t, "digraph"));
    free(t);
    dg_graph_free(g);
    dg_graph_free(h);
}

/* Removes every file in dir (none of the tests makes nested files), then dir. */
static void remove_dir(const char *d) {
    DIR *dh = opendir(d);
    if (!dh) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(dh))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        if (remove(p) != 0) rmdir(p);
    }
    closedir(dh);
    rmdir(d);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dg_robust_io_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_checkpoint();
    test_npy();
    test_idx();
    test_dot();
    remove_dir(dir);
    return test_summary("test_robust_io");
}
