/* Small helpers shared by the examples: output directories, paths, error reporting and a
 * reproducible random generator for data shuffling. */
#ifndef EX_UTIL_H
#define EX_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "dagrad.h"

/** Creates `dir` and its parents if missing. Returns 0, or -1 with a message on stderr. */
int ex_mkdir_p(const char *dir);
/** Writes "dir/name" into buf (always NUL-terminated); returns buf. */
char *ex_path(char *buf, size_t size, const char *dir, const char *name);
/** 1 if `path` is an existing regular file. */
int ex_file_exists(const char *path);
/** 1 if `path` is an existing directory. */
int ex_dir_exists(const char *path);

/** Checks up front that files can be written in `dir` (made with its parents if missing),
 *  so a long run does not fail at its end: creates and removes a probe file. Returns 0, or
 *  -1 with "prog: cannot write in 'dir': reason" on stderr. */
int ex_check_out_dir(const char *prog, const char *dir);

/* A checkpoint's sidecar, "<checkpoint>.meta": lines "key=value" recording how the model
 * was made (data set, layer widths) where the checkpoint, which holds tensors only, has no
 * place for it. */

/** Writes the sidecar of `ckpt` with the n pairs keys[i]=values[i] (atomically: a
 *  temporary file renamed into place). Returns 0, or -1 with a message on stderr. */
int ex_meta_write(const char *ckpt, const char *const *keys, const char *const *values, int n);
/** Reads the value of `key` from the sidecar of `ckpt` into buf. Returns 1 if found, 0 if
 *  the key is not there, -1 if there is no readable sidecar. */
int ex_meta_get(const char *ckpt, const char *key, char *buf, size_t size);

/** Prints "prog: what: <the graph's (or thread's) last error>" to stderr; returns
 *  EX_EXIT_FAIL so callers can `return ex_fail(...)`. */
int ex_fail(const char *prog, dg_graph *g, const char *what);

/* MNIST-style classification: ten classes of 28x28 images. */

/** Index of the largest of v[0..n) (the first on ties). */
int ex_argmax(const float *v, int n);
/** Name of class c (0-9): the digit, or with dataset "fashion" the Fashion-MNIST class. */
const char *ex_class_name(const char *dataset, int c);
/** Prints a prediction: the ten probabilities, the argmax and the true label with their
 *  class names and whether they agree, and the 28x28 image as ASCII art (pixels in [0,1],
 *  two characters per pixel). */
void ex_print_prediction(const char *dataset, const float *probs, int label, const float *img);

/** xorshift64* generator: the same seed gives the same stream on every machine. */
typedef struct ex_rng {
    uint64_t s;
} ex_rng;
void ex_rng_seed(ex_rng *r, uint64_t seed);
uint64_t ex_rng_next(ex_rng *r);
/** Uniform in [0, n). */
uint64_t ex_rng_below(ex_rng *r, uint64_t n);
/** Uniform in [0, 1). */
double ex_rng_uniform(ex_rng *r);
/** Fisher-Yates shuffle of idx[0..n). */
void ex_shuffle(ex_rng *r, int64_t *idx, int64_t n);

#endif
