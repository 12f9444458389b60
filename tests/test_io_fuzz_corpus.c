/* Replays the fuzzers' seed corpus (fuzz/corpus/<target>/) and every input that once made
 * a loader fail (fuzz/regressions/<target>/, if any) through the same calls the fuzz
 * targets make, in the ordinary test build: under -DDG_SANITIZE=ON this is the fuzzers'
 * crash check without clang. The seeds were written by fuzz/make_corpus.py, an independent
 * implementation of docs/FORMATS.md, and fuzz/make_onnx_corpus.py (the ONNX project's Python
 * package, and PyTorch), so the valid ones must also load. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <dirent.h>
#include <string.h>

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *size = n;
    return buf;
}

/* fuzz_onnx's checks: a failed load leaves nothing; a loaded model runs, saves, and what it
 * saves loads and saves to the same bytes. */
static dg_status replay_onnx(const unsigned char *data, size_t size) {
    dg_onnx_load_options opts = {.max_input_elements = 4096, .max_value_elements = 1 << 16};
    dg_graph *g = dg_graph_new(1), *g2 = dg_graph_new(2);
    dg_onnx_model m, m2;
    dg_status s = dg_onnx_load_mem(g, data, size, &opts, &m);
    if (s != DG_OK) {
        CHECK(dg_graph_node_count(g) == 0 && dg_graph_error(g)[0]);
    } else {
        for (int i = 0; i < m.n_inputs; i++) {
            float *zeros = calloc((size_t)dg_node_numel(m.inputs[i]), sizeof *zeros);
            CHECK_OK(dg_feed(m.inputs[i], zeros, dg_node_numel(m.inputs[i])));
            free(zeros);
        }
        CHECK_OK(dg_run_many(g, m.n_outputs, m.outputs));
        dg_onnx_save_options o = {.output_names = m.output_names, .opset = (int)m.opset};
        void *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(dg_onnx_save_mem(g, m.n_inputs, m.inputs, m.n_outputs, m.outputs, &o, &a, &na));
        CHECK_OK(dg_onnx_load_mem(g2, a, na, &opts, &m2));
        o.output_names = m2.output_names;
        CHECK_OK(
            dg_onnx_save_mem(g2, m2.n_inputs, m2.inputs, m2.n_outputs, m2.outputs, &o, &b, &nb));
        CHECK(na == nb && a && b && memcmp(a, b, na) == 0);
        free(a), free(b);
        dg_onnx_model_free(&m2);
        dg_onnx_model_free(&m);
    }
    dg_graph_free(g2);
    dg_graph_free(g);
    return s;
}

/* The calls of fuzz/fuzz_<target>.c; returns the status of the main load. */
static dg_status replay(const char *target, const unsigned char *data, size_t size) {
    if (strcmp(target, "onnx") == 0) return replay_onnx(data, size);
    if (strcmp(target, "npy") == 0) {
        float *out = NULL;
        dg_shape shape;
        dg_status s = dg_npy_read_mem(data, size, &out, &shape);
        CHECK(s == DG_OK ? out != NULL : out == NULL);
        free(out);
        return s;
    }
    if (strcmp(target, "checkpoint") == 0) {
        dg_graph *g = dg_graph_new(1);
        dg_node *w = dg_param(g, "w", dg_shape2(2, 3));
        dg_param(g, "b", dg_shape1(3));
        dg_param(g, NULL, dg_shape1(1));
        dg_state(g, "step", dg_shape0());
        dg_node_data(w)[0] = 42;
        dg_status s = dg_checkpoint_load_mem(g, data, size, 1);
        if (s != DG_OK) CHECK(dg_node_data(w)[0] == 42);
        dg_graph_free(g);
        return s;
    }
    if (size < 3) return DG_ERR_ARG;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 2);
    dg_dataset d;
    dg_status s = dg_idx_load_mem(data + 3, split, data + 3 + split, size - 3 - split, &d);
    CHECK(s == DG_OK ? d.images != NULL : d.images == NULL);
    dg_dataset_free(&d);
    return s;
}

static int replay_dir(const char *root, const char *sub, const char *target, int *loaded) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz/%s/%s", root, sub, target);
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char file[1400];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        size_t size = 0;
        unsigned char *data = slurp(file, &size);
        CHECK_MSG(data != NULL, "cannot read %s", file);
        if (!data) continue;
        dg_status s = replay(target, data, size);
        /* Seeds named like this are valid files and must load. */
        int valid = strcmp(e->d_name, "with_state") == 0 || strcmp(e->d_name, "params_only") == 0 ||
                    strncmp(e->d_name, "v1_", 3) == 0 || strcmp(e->d_name, "v2_4d") == 0 ||
                    strncmp(e->d_name, "raw_", 4) == 0 || strncmp(e->d_name, "gz_", 3) == 0 ||
                    strcmp(e->d_name, "mnist_like") == 0 || strncmp(e->d_name, "valid_", 6) == 0;
        if (strcmp(sub, "corpus") == 0 && valid) {
            /* params_only lacks the state the replay asks for. */
            dg_status want = strcmp(e->d_name, "params_only") == 0 ? DG_ERR_SHAPE : DG_OK;
            CHECK_MSG(s == want, "%s: %s (%s)", file, dg_status_name(s), dg_last_error());
            *loaded += s == DG_OK;
        }
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

int main(void) {
    const char *root = getenv("DG_SOURCE_DIR");
    if (!root) {
        printf("SKIP: DG_SOURCE_DIR not set (run through ctest)\n");
        return 0;
    }
    static const char *targets[] = {"idx", "checkpoint", "npy", "onnx"};
    int seeds = 0, regressions = 0, loaded = 0;
    for (int t = 0; t < 4; t++) {
        int n = replay_dir(root, "corpus", targets[t], &loaded);
        CHECK_MSG(n > 0, "no seeds for %s", targets[t]);
        seeds += n;
        regressions += replay_dir(root, "regressions", targets[t], &loaded);
    }
    printf("replayed %d seeds (%d valid ones loaded) and %d regression inputs\n", seeds, loaded,
           regressions);
    return test_summary("test_io_fuzz_corpus");
}
