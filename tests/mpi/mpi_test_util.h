/* Shared by the MPI tests: a small classifier, its data, launching helpers. Every rank
 * builds the same global batches from a seed and takes its own rows of each. */
#ifndef DG_MPI_TEST_UTIL_H
#define DG_MPI_TEST_UTIL_H

#include "dagrad.h"
#include "dagrad/mpi.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { FEATURES = 20, CLASSES = 5 };

typedef struct mt_model {
    dg_graph *g;
    dg_node *x, *y, *logits, *loss;
} mt_model;

/* 20 -> 32 tanh -> 16 tanh -> 5, cross-entropy. hidden2 (default 16) lets a test build a
 * model that differs. */
static inline int mt_build(mt_model *m, uint64_t seed, int hidden2) {
    memset(m, 0, sizeof *m);
    m->g = dg_graph_new(seed);
    m->x = dg_input(m->g, "x", dg_shape2(DG_BATCH, FEATURES));
    m->y = dg_input(m->g, "y", dg_shape1(DG_BATCH));
    dg_node *h = dg_dense(m->g, "fc1", m->x, 32, DG_ACT_TANH);
    h = dg_dense(m->g, "fc2", h, hidden2, DG_ACT_TANH);
    m->logits = dg_dense(m->g, "fc3", h, CLASSES, DG_ACT_NONE);
    m->loss = dg_cross_entropy_loss(m->g, m->logits, m->y);
    if (!m->loss) {
        fprintf(stderr, "building the model: %s\n", dg_graph_error(m->g));
        return 1;
    }
    return 0;
}

/* Global batch `step` (rows x FEATURES features, labels), the same on every rank: a
 * linear rule with noise, so the model has something to learn. */
static inline void mt_batch(int step, int rows, float *x, float *y) {
    uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(step + 1);
    for (int i = 0; i < rows; i++) {
        float score[CLASSES] = {0};
        for (int j = 0; j < FEATURES; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            float v = (float)((double)(s >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
            x[i * FEATURES + j] = v;
            score[j % CLASSES] += v * (float)(1 + j % 3);
        }
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (score[c] > score[best]) best = c;
        y[i] = (float)best;
    }
}

/* This rank's rows [lo, hi) of a global batch of `rows`. */
static inline void mt_shard(int rows, int rank, int size, int *lo, int *hi) {
    *lo = (int)((int64_t)rows * rank / size);
    *hi = (int)((int64_t)rows * (rank + 1) / size);
}

/* FNV-1a over every parameter's bytes, in creation order. */
static inline uint64_t mt_param_hash(dg_graph *g) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *p = dg_graph_node(g, i);
        if (dg_node_kind_of(p) != DG_PARAM) continue;
        const unsigned char *b = (const unsigned char *)dg_node_data(p);
        for (int64_t k = 0; k < 4 * dg_node_numel(p); k++) h = (h ^ b[k]) * 0x100000001b3ull;
    }
    return h;
}

#endif
