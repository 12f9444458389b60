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

/** Prints "prog: what: <the graph's (or thread's) last error>" to stderr; returns
 *  EX_EXIT_FAIL so callers can `return ex_fail(...)`. */
int ex_fail(const char *prog, dg_graph *g, const char *what);

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
