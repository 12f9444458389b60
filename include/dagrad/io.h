/** \file
 * dagrad file I/O: checkpoints of a graph's parameters (and optimizer state), single
 * tensors as NumPy .npy files, and datasets in the IDX format of MNIST.
 *
 * Every loader validates the whole input before it changes anything and never trusts a
 * size it read: on any error it returns a status (DG_ERR_IO for files that cannot be
 * opened, read or written; DG_ERR_FORMAT for malformed or corrupt contents; DG_ERR_SHAPE
 * for tensors whose shape differs from the node they are loaded into) with a message
 * naming the file and what is wrong, and leaves the graph, node or output untouched.
 * The byte layouts are described in docs/FORMATS.md.
 */
#ifndef DAGRAD_IO_H
#define DAGRAD_IO_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- checkpoints ---- */

/** Saves every DG_PARAM node of g (and every DG_STATE node when with_state is non-zero)
 *  by name, with its shape and float32 data, to `path`. A node without a name is saved
 *  as "param#k" (or "state#k"), k being its index among the graph's nodes of that kind
 *  in creation order; two nodes with the same saved name are an error.
 *  The save is atomic: the data go to a hidden temporary file of this call's own in the
 *  same directory (created exclusively, named after the target and ending in ".dgtmp"),
 *  which is flushed, synced and renamed over `path`; on any failure the temporary file is
 *  removed and a previous file at `path` is left as it was. Saves to one path from several
 *  threads or processes each publish a whole file. A save also removes the temporaries
 *  that killed saves to the same path left behind. An existing file keeps its permission
 *  bits; one the caller may not write is refused (DG_ERR_IO), as cp refuses it. The
 *  naming and the rules are in docs/FORMATS.md. */
dg_status dg_checkpoint_save(dg_graph *g, const char *path, int with_state);

/** Loads a checkpoint written by dg_checkpoint_save into g. The file is read and checked
 *  completely first: magic, version, every size against the file length, the checksum,
 *  and that the parameters in the file and in the graph are the same set of names with
 *  identical shapes (with_state: the same for DG_STATE nodes; state the file holds is
 *  ignored without with_state). Only then are values copied; on any error g's values
 *  are unchanged. */
dg_status dg_checkpoint_load(dg_graph *g, const char *path, int with_state);

/** dg_checkpoint_load from `size` bytes in memory. */
dg_status dg_checkpoint_load_mem(dg_graph *g, const void *data, size_t size, int with_state);

/* ---- NumPy .npy (float32 little-endian '<f4', C order) ---- */

/** Writes the node's current values as a version 1.0 .npy file with the node's shape
 *  (a scalar node gives shape ()). Atomic like dg_checkpoint_save. */
dg_status dg_npy_save(const dg_node *node, const char *path);

/** Writes `shape`'s element count of floats from `data` as a .npy file. */
dg_status dg_npy_write(const char *path, const float *data, dg_shape shape);

/** Reads a .npy file into the node, whose shape must equal the file's. The node must be a
 *  leaf (DG_ERR_ARG for an op result); an input loaded this way counts as fed. */
dg_status dg_npy_load(dg_node *node, const char *path);

/** Reads a .npy file (format version 1.0, 2.0 or 3.0; dtype '<f4'; fortran_order False;
 *  at most DG_MAX_DIMS dimensions, none of them zero). On success *data is a malloc'd
 *  array of dg_shape_numel(*shape) floats that the caller releases with free(); on error
 *  *data is NULL. */
dg_status dg_npy_read(const char *path, float **data, dg_shape *shape);

/** dg_npy_read from `size` bytes in memory. */
dg_status dg_npy_read_mem(const void *buf, size_t size, float **data, dg_shape *shape);

/* ---- IDX datasets (MNIST, Fashion-MNIST) ---- */

/** Images and labels loaded from a pair of IDX files. Arrays are malloc'd; release them
 *  with dg_dataset_free. */
typedef struct dg_dataset {
    int64_t count;   /**< number of images (= number of labels) */
    int64_t rows;    /**< image height (28 for MNIST) */
    int64_t cols;    /**< image width (28 for MNIST) */
    float *images;   /**< count * rows * cols pixels, row-major, each byte / 255 */
    float *labels;   /**< count labels, each the label byte as a float (0 .. 255) */
    int64_t classes; /**< 1 + the largest label */
} dg_dataset;

/** Loads an image file (IDX magic 0x00000803: unsigned bytes, 3 dimensions) and a label
 *  file (0x00000801: unsigned bytes, 1 dimension). Each may be gzip-compressed or raw,
 *  told apart by its first bytes, not its name. Checks magic numbers, dimensions, that
 *  both hold the same count, and that each file holds exactly the bytes its header
 *  announces (truncated or over-long files are errors). On error *out is zeroed. */
dg_status dg_idx_load(const char *images_path, const char *labels_path, dg_dataset *out);

/** dg_idx_load from two buffers in memory (each gzip-compressed or raw). */
dg_status dg_idx_load_mem(const void *images, size_t images_size, const void *labels,
                          size_t labels_size, dg_dataset *out);

/** Loads the MNIST-style pair `prefix` ("train", "t10k") from directory `dir`, trying for
 *  the images "<prefix>-images-idx3-ubyte.gz", "<prefix>-images-idx3-ubyte",
 *  "<prefix>-images.idx3-ubyte.gz" and "<prefix>-images.idx3-ubyte" in that order, and
 *  the same names with "labels" and "idx1" for the labels; every label must be 0..9. */
dg_status dg_mnist_load(const char *dir, const char *prefix, dg_dataset *out);

/** Frees the dataset's arrays and zeroes it. NULL is a no-op. */
void dg_dataset_free(dg_dataset *d);

#ifdef __cplusplus
}
#endif
#endif
