/* libFuzzer target: the checkpoint loader on arbitrary bytes, into a graph shaped like the
 * seed checkpoints (parameters "w" [2,3] and "b" [3], an unnamed parameter [1] saved as
 * "param#2", state "step" []). Besides never crashing or leaking, a failed load must leave
 * every value exactly as it was: the fuzzer aborts on a partial load. */
#include "dagrad.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static dg_graph *g;
static dg_node *nodes[4];

static void build(void) {
    g = dg_graph_new(1);
    nodes[0] = dg_param(g, "w", dg_shape2(2, 3));
    nodes[1] = dg_param(g, "b", dg_shape1(3));
    nodes[2] = dg_param(g, NULL, dg_shape1(1));
    nodes[3] = dg_state(g, "step", dg_shape0());
}

static size_t snapshot(float *out) {
    size_t k = 0;
    for (int i = 0; i < 4; i++) {
        memcpy(out + k, dg_node_data(nodes[i]), (size_t)dg_node_numel(nodes[i]) * 4);
        k += (size_t)dg_node_numel(nodes[i]);
    }
    return k;
}

/* Random mutations almost never keep the checksum valid, which would hide everything after
 * it (name, kind and shape matching) from the fuzzer; so each input is tried a second time
 * with its last 8 bytes replaced by the FNV-1a 64 of the rest. */
static void fix_checksum(uint8_t *p, size_t size) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size - 8; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    for (int i = 0; i < 8; i++) p[size - 8 + i] = (uint8_t)(h >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g) build();
    uint8_t *fixed = NULL;
    if (size >= 8 && (fixed = malloc(size))) {
        memcpy(fixed, data, size);
        fix_checksum(fixed, size);
    }
    for (int attempt = 0; attempt < (fixed ? 4 : 2); attempt++) {
        int with_state = attempt & 1;
        const uint8_t *input = attempt < 2 ? data : fixed;
        for (int i = 0; i < 4; i++)
            for (int64_t j = 0; j < dg_node_numel(nodes[i]); j++)
                dg_node_data(nodes[i])[j] = (float)(i * 10 + j);
        float before[16], after[16];
        size_t n = snapshot(before);
        dg_status s = dg_checkpoint_load_mem(g, input, size, with_state);
        snapshot(after);
        if (s != DG_OK && memcmp(before, after, n * 4) != 0) abort();
        if (s != DG_OK && dg_graph_error(g)[0] == 0) abort();
        dg_graph_clear_error(g);
    }
    free(fixed);
    return 0;
}
