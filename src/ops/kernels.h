/* Shared by the op files in src/ops: the op kit plus the graph's internal layout (kernels
 * read node fields directly) and two shorthands for applying an op. Kernels never
 * allocate; results never depend on the number of threads. */
#ifndef DG_KERNELS_H
#define DG_KERNELS_H

#include "../graph/internal.h"
#include "dagrad/ops.h"
#include "dagrad/opkit.h"
#include "vector_clones.h"

#include <stddef.h>
#include <stdint.h>

/* Older spellings of op-kit functions, kept for the GEMM files. */
#define dg__parallel_for dg_parallel_for
#define dg__parallel_sum dg_parallel_sum
#define dg__threads_for  dg_threads_for

/* Apply with one or two inputs and an attribute struct (NULL for none). */
dg_node *dg__apply1(dg_graph *g, const dg_op_def *op, dg_node *x, const void *attrs,
                    size_t attrs_size);
dg_node *dg__apply2(dg_graph *g, const dg_op_def *op, dg_node *x, dg_node *y, const void *attrs,
                    size_t attrs_size);

/* 1 when the convolution and pooling kernels may take their AVX-512 paths: x86-64 built
 * with GCC or Clang, a CPU with AVX-512F, and DG_GEMM_KERNEL (the GEMM's override, for tests
 * and benchmarks) unset or "avx512". 0 otherwise. */
int dg__ops_use_avx512(void);

#endif
