/* Checkpoints: bit-exact round trips (with and without state, unnamed nodes), every way a
 * file can disagree with the graph, files truncated at every length and flipped at every
 * bit, and failed saves that must leave the previous checkpoint loadable. After each
 * failed load the graph's values must be exactly what they were. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <dirent.h>
#include <sys/stat.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define CHECK_HAS(msg, sub)                                                                        \
    CHECK_MSG(strstr((msg), (sub)) != NULL, "message '%s' lacks '%s'", msg, sub)

static char dir[64];

static const char *path_in_dir(const char *name, char *buf) {
    snprintf(buf, 256, "%s/%s", dir, name);
    return buf;
}

/* The model under test: named and unnamed parameters of several ranks (a scalar too),
 * named and unnamed state, and nodes that must not be saved (input, const, ops). */
typedef struct model {
    dg_graph *g;
    dg_node *nodes[6]; /* W, b, unnamed param, scalar param, state m, unnamed state */
} model;

static model build(dg_shape w_shape) {
    model m;
    m.g = dg_graph_new(1);
    dg_node *x = dg_input(m.g, "x", dg_shape2(2, 3));
    m.nodes[0] = dg_param(m.g, "fc/W", w_shape);
    m.nodes[1] = dg_param(m.g, "fc/b", dg_shape1(4));
    m.nodes[2] = dg_param(m.g, NULL, dg_shape3(2, 1, 3));
    m.nodes[3] = dg_param(m.g, "scale", dg_shape0());
    dg_const(m.g, "c", dg_shape1(4), NULL, 2.0f);
    m.nodes[4] = dg_state(m.g, "opt/m", w_shape);
    m.nodes[5] = dg_state(m.g, NULL, dg_shape0());
    if (dg_shape_equal(w_shape, dg_shape2(3, 4)))
        dg_add(m.g, dg_matmul(m.g, x, m.nodes[0]), m.nodes[1]);
    return m;
}

static void fill_all(model *m, float lo, float hi) {
    for (int i = 0; i < 6; i++) {
        float *d = dg_node_data(m->nodes[i]);
        for (int64_t j = 0; j < dg_node_numel(m->nodes[i]); j++) d[j] = test_uniform(lo, hi);
    }
}

/* Concatenated bytes of all six nodes, for bit-exact comparisons. */
static size_t snapshot(const model *m, unsigned char *out) {
    size_t n = 0;
    for (int i = 0; i < 6; i++) {
        size_t k = (size_t)dg_node_numel(m->nodes[i]) * sizeof(float);
        memcpy(out + n, dg_node_data(m->nodes[i]), k);
        n += k;
    }
    return n;
}

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(1 << 16);
    *size = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void spit(const char *path, const unsigned char *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, n, f);
    fclose(f);
}

static int contains(const unsigned char *buf, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(buf + i, s, k) == 0) return 1;
    return 0;
}

static int count_temp_files(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static void test_round_trip(void) {
    char p[256];
    model a = build(dg_shape2(3, 4)), b = build(dg_shape2(3, 4));
    fill_all(&a, -3, 3);
    /* Values whose bits are easy to lose in a text or double round trip. */
    dg_node_data(a.nodes[0])[0] = -0.0f;
    dg_node_data(a.nodes[0])[1] = 1e-40f; /* subnormal */
    dg_node_data(a.nodes[0])[2] = NAN;
    dg_node_data(a.nodes[0])[3] = -INFINITY;
    CHECK_OK(dg_checkpoint_save(a.g, path_in_dir("full.ckpt", p), 1));
    CHECK_OK(dg_checkpoint_load(b.g, p, 1));
    unsigned char sa[4096], sb[4096];
    size_t n = snapshot(&a, sa);
    CHECK(snapshot(&b, sb) == n && memcmp(sa, sb, n) == 0);

    /* Without state: parameters load, state stays as it was. */
    model c = build(dg_shape2(3, 4));
    CHECK_OK(dg_checkpoint_load(c.g, p, 0));
    for (int i = 0; i < 4; i++)
        CHECK(memcmp(dg_node_data(a.nodes[i]), dg_node_data(c.nodes[i]),
                     (size_t)dg_node_numel(a.nodes[i]) * 4) == 0);
    CHECK(dg_node_data(c.nodes[4])[0] == 0.0f && dg_node_data(c.nodes[5])[0] == 0.0f);

    /* A parameter-only file loads without state but is rejected when state is asked for. */
    CHECK_OK(dg_checkpoint_save(a.g, path_in_dir("params.ckpt", p), 0));
    model d = build(dg_shape2(3, 4));
    CHECK_OK(dg_checkpoint_load(d.g, p, 0));
    CHECK(memcmp(dg_node_data(a.nodes[1]), dg_node_data(d.nodes[1]), 16) == 0);
    model e = build(dg_shape2(3, 4));
    CHECK(dg_checkpoint_load(e.g, p, 1) == DG_ERR_SHAPE);
    CHECK_HAS(dg_graph_error(e.g), "not in the checkpoint");
    CHECK(dg_node_data(e.nodes[1])[0] == 0.0f); /* untouched: nothing was loaded */

    /* The unnamed parameter is saved as "param#2" (third parameter) and found again. */
    size_t size;
    unsigned char *bytes = slurp(path_in_dir("full.ckpt", p), &size);
    CHECK(bytes && contains(bytes, size, "param#2") && contains(bytes, size, "state#1"));
    free(bytes);
    dg_graph_free(a.g);
    dg_graph_free(b.g);
    dg_graph_free(c.g);
    dg_graph_free(d.g);
    dg_graph_free(e.g);
}

/* Loads `path` into a fresh model with every node set to known values and checks the
 * error and that no value changed. */
static void expect_load_error(const char *path, int with_state, dg_shape w_shape, dg_status want,
                              const char *sub, int line) {
    model m = build(w_shape);
    fill_all(&m, 5, 6);
    unsigned char before[4096], after[4096];
    size_t n = snapshot(&m, before);
    dg_status s = dg_checkpoint_load(m.g, path, with_state);
    CHECK_MSG(s == want, "line %d: %s, expected %s (%s)", line, dg_status_name(s),
              dg_status_name(want), dg_graph_error(m.g));
    CHECK_MSG(strstr(dg_graph_error(m.g), sub) != NULL, "line %d: message '%s' lacks '%s'", line,
              dg_graph_error(m.g), sub);
    CHECK_MSG(snapshot(&m, after) == n && memcmp(before, after, n) == 0,
              "line %d: a failed load changed the graph", line);
    dg_graph_free(m.g);
}

static void test_mismatches(void) {
    char p[256], q[256];
    model a = build(dg_shape2(3, 4));
    fill_all(&a, -1, 1);
    CHECK_OK(dg_checkpoint_save(a.g, path_in_dir("a.ckpt", p), 1));

    /* Same names, one shape differs: the message names the tensor and both shapes. */
    expect_load_error(p, 0, dg_shape2(4, 3), DG_ERR_SHAPE, "'fc/W'", __LINE__);
    expect_load_error(p, 0, dg_shape2(4, 3), DG_ERR_SHAPE,
                      "graph has [4,3], the checkpoint has [3,4]", __LINE__);
    /* Missing file, a directory, an empty file. */
    expect_load_error(path_in_dir("nope.ckpt", q), 1, dg_shape2(3, 4), DG_ERR_IO, "nope.ckpt",
                      __LINE__);
    expect_load_error(dir, 1, dg_shape2(3, 4), DG_ERR_IO, "not a regular file", __LINE__);
    spit(path_in_dir("empty.ckpt", q), (const unsigned char *)"", 0);
    expect_load_error(q, 1, dg_shape2(3, 4), DG_ERR_FORMAT, "truncated at byte 0", __LINE__);
    spit(path_in_dir("text.ckpt", q), (const unsigned char *)"hello, this is not a checkpoint", 31);
    expect_load_error(q, 1, dg_shape2(3, 4), DG_ERR_FORMAT, "bad magic", __LINE__);

    /* A graph with an extra parameter, and a graph lacking one of the file's. */
    dg_graph *g = dg_graph_new(1);
    dg_param(g, "fc/W", dg_shape2(3, 4));
    dg_param(g, "fc/b", dg_shape1(4));
    dg_param(g, NULL, dg_shape3(2, 1, 3));
    dg_param(g, "scale", dg_shape0());
    dg_param(g, "extra", dg_shape1(7));
    CHECK(dg_checkpoint_load(g, p, 0) == DG_ERR_SHAPE);
    CHECK_HAS(dg_graph_error(g), "parameter 'extra' [7] is not in the checkpoint");
    dg_graph_free(g);
    g = dg_graph_new(1);
    dg_param(g, "fc/W", dg_shape2(3, 4));
    CHECK(dg_checkpoint_load(g, p, 0) == DG_ERR_SHAPE);
    CHECK_HAS(dg_graph_error(g), "the graph has no parameter of that name");
    dg_graph_free(g);

    /* Same name, different kind. */
    g = dg_graph_new(1);
    dg_param(g, "fc/W", dg_shape2(3, 4));
    dg_param(g, "fc/b", dg_shape1(4));
    dg_param(g, NULL, dg_shape3(2, 1, 3));
    dg_param(g, "scale", dg_shape0());
    dg_param(g, "opt/m", dg_shape2(3, 4));
    dg_state(g, NULL, dg_shape0());
    dg_state(g, NULL, dg_shape0());
    CHECK(dg_checkpoint_load(g, p, 1) != DG_OK);
    CHECK_HAS(dg_graph_error(g), "'opt/m' is parameter in the graph but state in the checkpoint");
    dg_graph_free(g);

    /* Two nodes saved under one name could not be told apart: the second is refused when
     * it is made, not later when a checkpoint is saved. */
    g = dg_graph_new(1);
    dg_param(g, "w", dg_shape1(2));
    CHECK(dg_param(g, "w", dg_shape1(3)) == NULL);
    CHECK_HAS(dg_graph_error(g), "param: the name 'w' is already used by node 0 (param)");
    CHECK(dg_state(g, "w", dg_shape1(3)) == NULL);
    CHECK_HAS(dg_graph_error(g), "state: the name 'w' is already used by node 0 (param)");
    CHECK(dg_graph_node_count(g) == 1);
    /* A name colliding with the fallback of an unnamed node is a duplicate too. */
    dg_graph_free(g);
    g = dg_graph_new(1);
    dg_param(g, NULL, dg_shape1(2));
    dg_param(g, "param#0", dg_shape1(3));
    CHECK(dg_checkpoint_save(g, q, 0) == DG_ERR_ARG);
    dg_graph_free(g);

    /* NULL arguments. */
    CHECK(dg_checkpoint_save(NULL, p, 0) == DG_ERR_NULL);
    CHECK(dg_checkpoint_save(a.g, NULL, 0) == DG_ERR_NULL);
    CHECK(dg_checkpoint_load(a.g, NULL, 0) == DG_ERR_NULL);
    CHECK(dg_checkpoint_load_mem(a.g, NULL, 10, 0) == DG_ERR_NULL);
    dg_graph_free(a.g);
}

/* Every proper prefix of a valid file is rejected; every single-bit flip is rejected. */
static void test_truncation_and_bit_flips(void) {
    char p[256], q[256];
    model a = build(dg_shape2(3, 4));
    fill_all(&a, -1, 1);
    CHECK_OK(dg_checkpoint_save(a.g, path_in_dir("small.ckpt", p), 1));
    size_t size;
    unsigned char *bytes = slurp(p, &size);
    CHECK(bytes && size > 100);
    if (!bytes) return;
    int truncated_msgs = 0;
    for (size_t len = 0; len < size; len++) {
        spit(path_in_dir("cut.ckpt", q), bytes, len);
        model m = build(dg_shape2(3, 4));
        fill_all(&m, 5, 6);
        unsigned char before[4096], after[4096];
        size_t n = snapshot(&m, before);
        dg_status s = dg_checkpoint_load(m.g, q, 1);
        CHECK_MSG(s == DG_ERR_FORMAT, "length %zu: %s (%s)", len, dg_status_name(s),
                  dg_graph_error(m.g));
        truncated_msgs += strstr(dg_graph_error(m.g), "truncated at byte") != NULL;
        CHECK_MSG(snapshot(&m, after) == n && memcmp(before, after, n) == 0,
                  "length %zu changed the graph", len);
        dg_graph_free(m.g);
    }
    /* Every cut inside the records says where the file ended. */
    CHECK_MSG(truncated_msgs == (int)size, "%d of %zu cuts said 'truncated at byte'",
              truncated_msgs, size);

    /* Bit flips, in memory (the file path only adds the read). */
    int checksum_msgs = 0;
    for (size_t bit = 0; bit < size * 8; bit++) {
        bytes[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        model m = build(dg_shape2(3, 4));
        fill_all(&m, 5, 6);
        unsigned char before[4096], after[4096];
        size_t n = snapshot(&m, before);
        dg_status s = dg_checkpoint_load_mem(m.g, bytes, size, 1);
        CHECK_MSG(s == DG_ERR_FORMAT, "bit %zu: %s (%s)", bit, dg_status_name(s),
                  dg_graph_error(m.g));
        checksum_msgs += strstr(dg_graph_error(m.g), "checksum mismatch") != NULL;
        CHECK_MSG(snapshot(&m, after) == n && memcmp(before, after, n) == 0,
                  "bit %zu changed the graph", bit);
        dg_graph_free(m.g);
        bytes[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    /* Flips in names and data leave the framing intact and are caught by the checksum:
     * the data alone are more than half the bits. */
    CHECK_MSG(checksum_msgs > (int)(size * 8 / 2), "only %d checksum errors", checksum_msgs);

    /* The intact bytes still load (the loop restored every bit). */
    model m = build(dg_shape2(3, 4));
    CHECK_OK(dg_checkpoint_load_mem(m.g, bytes, size, 1));
    dg_graph_free(m.g);

    /* Trailing garbage after a valid file. */
    unsigned char *longer = malloc(size + 3);
    memcpy(longer, bytes, size);
    memcpy(longer + size, "xyz", 3);
    spit(path_in_dir("long.ckpt", q), longer, size + 3);
    expect_load_error(q, 1, dg_shape2(3, 4), DG_ERR_FORMAT, "", __LINE__);
    free(longer);
    free(bytes);
    dg_graph_free(a.g);
}

static void put_u64le(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Rewrites the trailing FNV-1a 64 checksum (docs/FORMATS.md) after a patch. */
static void fix_checksum(unsigned char *buf, size_t size) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i + 8 < size; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
    put_u64le(buf + size - 8, h);
}

/* A dimension of 0 or above 2^40, or too many elements: the message names the tensor, the
 * dimension and its value, with a correct checksum so only the shape is wrong. */
static void test_bad_dimensions(void) {
    char p[256], q[256];
    model a = build(dg_shape2(3, 4));
    fill_all(&a, -1, 1);
    CHECK_OK(dg_checkpoint_save(a.g, path_in_dir("dims.ckpt", p), 0));
    dg_graph_free(a.g);
    size_t size;
    unsigned char *good = slurp(p, &size);
    CHECK(good != NULL);
    if (!good) return;
    /* The first record is fc/W: kind, name length, "fc/W", ndim 2, then its two dims. */
    const size_t dim0 = 16 + 4 + 4 + 4 + 4;
    CHECK(good[dim0] == 3 && good[dim0 + 8] == 4);
    static const struct {
        uint64_t d0, d1;
        const char *sub;
    } bad[] = {
        {3, 0, "tensor 'fc/W': dimension 1 (counting from 0) is 0, must be 1..2^40 (at byte 40)"},
        {(1ull << 40) + 1, 4, "tensor 'fc/W': dimension 0 (counting from 0) is 1099511627777"},
        {3, 1ull << 63, "dimension 1 (counting from 0) is 9223372036854775808"},
        {1ull << 20, 1ull << 21, "tensor 'fc/W' [1048576,2097152] has more than 2^40 elements"},
    };
    unsigned char *buf = malloc(size);
    for (size_t i = 0; buf && i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(buf, good, size);
        put_u64le(buf + dim0, bad[i].d0);
        put_u64le(buf + dim0 + 8, bad[i].d1);
        fix_checksum(buf, size);
        spit(path_in_dir("dims_bad.ckpt", q), buf, size);
        expect_load_error(q, 0, dg_shape2(3, 4), DG_ERR_FORMAT, bad[i].sub, __LINE__);
    }
    free(buf);
    free(good);
}

/* A save that cannot complete leaves the previous file as it was and no temporary behind. */
static void test_failed_saves(void) {
    char p[256], q[256];
    model a = build(dg_shape2(3, 4));
    fill_all(&a, -1, 1);
    CHECK_OK(dg_checkpoint_save(a.g, path_in_dir("keep.ckpt", p), 1));
    unsigned char saved[4096];
    size_t n = snapshot(&a, saved);
    fill_all(&a, 7, 8); /* new values that must not reach the old file */

    /* The target is a directory: the temporary is written, the rename fails. */
    CHECK(mkdir(path_in_dir("adir", q), 0700) == 0);
    CHECK(dg_checkpoint_save(a.g, q, 1) == DG_ERR_IO);
    CHECK_HAS(dg_graph_error(a.g), "adir");
    CHECK(count_temp_files() == 0);
    /* A directory that does not exist: the temporary cannot be created. */
    CHECK(dg_checkpoint_save(a.g, path_in_dir("missing/x.ckpt", q), 1) == DG_ERR_IO);
    CHECK_HAS(dg_graph_error(a.g), "cannot create");
    CHECK(count_temp_files() == 0);

    model b = build(dg_shape2(3, 4));
    CHECK_OK(dg_checkpoint_load(b.g, p, 1));
    unsigned char got[4096];
    CHECK(snapshot(&b, got) == n && memcmp(saved, got, n) == 0);
    dg_graph_free(a.g);
    dg_graph_free(b.g);
}

static void cleanup(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (remove(p) != 0) rmdir(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    strcpy(dir, "/tmp/dg_ckpt_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_mismatches();
    test_truncation_and_bit_flips();
    test_bad_dimensions();
    test_failed_saves();
    cleanup();
    return test_summary("test_checkpoint");
}
