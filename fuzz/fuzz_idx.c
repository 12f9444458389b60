/* libFuzzer target: the IDX loader on arbitrary bytes. The input is split into an image
 * file and a label file at a point given by its first two bytes; bit 0 of the third byte
 * picks the path: memory (raw or inflated here) or temporary files read through zlib's
 * gzread (raw or gzip). A load that succeeds must describe arrays it really filled. */
#define _POSIX_C_SOURCE 200809L
#include "dagrad.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char img_path[64], lbl_path[64];

static void remove_temps(void) {
    remove(img_path);
    remove(lbl_path);
}

static int spit(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) == 0 && w == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 2);
    int from_files = data[2] & 1;
    const uint8_t *img = data + 3, *lbl = data + 3 + split;
    size_t img_n = split, lbl_n = size - 3 - split;
    dg_dataset d;
    dg_status s;
    if (from_files) {
        if (!img_path[0]) {
            /* Memory-backed files where there are any: creating files on disk would make
             * this path a hundred times slower than the parsing it exercises. */
            const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
            snprintf(img_path, sizeof img_path, "%s/dg_fuzz_idx_%ld_i", tmp, (long)getpid());
            snprintf(lbl_path, sizeof lbl_path, "%s/dg_fuzz_idx_%ld_l", tmp, (long)getpid());
            atexit(remove_temps);
        }
        if (!spit(img_path, img, img_n) || !spit(lbl_path, lbl, lbl_n)) return 0;
        s = dg_idx_load(img_path, lbl_path, &d);
    } else {
        s = dg_idx_load_mem(img, img_n, lbl, lbl_n, &d);
    }
    if (s == DG_OK) {
        if (d.count < 1 || d.rows < 1 || d.cols < 1 || !d.images || !d.labels) abort();
        volatile float sink = d.images[d.count * d.rows * d.cols - 1] + d.labels[d.count - 1];
        (void)sink;
        if (d.classes < 1 || d.classes > 256) abort();
    } else if (d.images || d.labels || d.count) {
        abort(); /* an error must leave the dataset zeroed */
    }
    dg_dataset_free(&d);
    return 0;
}
