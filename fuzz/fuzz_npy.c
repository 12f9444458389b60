/* libFuzzer target: the .npy reader on arbitrary bytes. It must never crash, leak or read
 * out of bounds; a file it accepts must have a valid shape whose elements exactly fill the
 * bytes after the header. */
#include "dagrad.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    float *out = NULL;
    dg_shape shape;
    if (dg_npy_read_mem(data, size, &out, &shape) == DG_OK) {
        int64_t n = dg_shape_numel(shape);
        if (n < 1 || !out || (size_t)n * 4 > size) abort();
        volatile float sink = out[n - 1]; /* the whole array is readable */
        (void)sink;
        free(out);
    } else if (out) {
        abort(); /* an error must leave the output NULL */
    }
    return 0;
}
