/* A hash map from NUL-terminated strings to ints (open addressing, FNV-1a, linear probing),
 * for the names of an ONNX model's values and nodes. Keys are not copied: they live in the
 * model's arena. */
#include "onnx_internal.h"

#include <stdlib.h>
#include <string.h>

static size_t hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (size_t)(h ^ (h >> 32));
}

int ox_map_get(const ox_map *m, const char *key, int *val) {
    if (!m->cap) return 0;
    for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i]) return 0;
        if (strcmp(m->keys[i], key) == 0) {
            if (val) *val = m->vals[i];
            return 1;
        }
    }
}

static void insert(const char **keys, int *vals, size_t cap, const char *key, int val) {
    size_t i = hash(key) & (cap - 1);
    while (keys[i] && strcmp(keys[i], key) != 0) i = (i + 1) & (cap - 1);
    keys[i] = key;
    vals[i] = val;
}

dg_status ox_map_put(ox_map *m, const char *key, int val) {
    if (2 * (m->used + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        if (cap > SIZE_MAX / sizeof(int) / 2) return DG_ERR_NOMEM;
        const char **keys = calloc(cap, sizeof *keys);
        int *vals = calloc(cap, sizeof *vals);
        if (!keys || !vals) {
            free(keys), free(vals);
            return DG_ERR_NOMEM;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) insert(keys, vals, cap, m->keys[i], m->vals[i]);
        free(m->keys), free(m->vals);
        m->keys = keys, m->vals = vals, m->cap = cap;
    }
    if (!ox_map_get(m, key, NULL)) m->used++;
    insert(m->keys, m->vals, m->cap, key, val);
    return DG_OK;
}

void ox_map_free(ox_map *m) {
    free(m->keys), free(m->vals);
    memset(m, 0, sizeof *m);
}
