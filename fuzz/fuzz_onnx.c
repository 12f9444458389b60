/* libFuzzer target: the ONNX loader on arbitrary bytes. Besides never crashing, leaking or
 * reading out of bounds, it checks the loader's contract on every input:
 *   - a failed load leaves the graph empty and says why;
 *   - a loaded model runs (inputs fed with zeros), saves again, and what it saves loads and
 *     saves to the same bytes (export -> import -> export is stable).
 * Graph inputs are capped at 4096 elements per batch row and every value at 65536, so that
 * each run stays fast. */
#include "dagrad.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const dg_onnx_load_options opts = {.max_input_elements = 4096,
                                          .max_value_elements = 1 << 16};

/* Saves a loaded model to memory (abort if it cannot: everything loaded has an ONNX form). */
static void *save(dg_graph *g, const dg_onnx_model *m, size_t *n) {
    dg_onnx_save_options o = {.output_names = m->output_names, .opset = (int)m->opset};
    void *p = NULL;
    if (dg_onnx_save_mem(g, m->n_inputs, m->inputs, m->n_outputs, m->outputs, &o, &p, n) != DG_OK)
        abort();
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dg_graph *g = dg_graph_new(1);
    dg_onnx_model m;
    if (dg_onnx_load_mem(g, data, size, &opts, &m) != DG_OK) {
        if (dg_graph_node_count(g) != 0 || !dg_graph_error(g)[0] || m.outputs) abort();
        dg_graph_free(g);
        return 0;
    }
    if (m.n_outputs < 1 || !m.outputs || !m.output_names) abort();
    for (int i = 0; i < m.n_inputs; i++) {
        int64_t n = dg_node_numel(m.inputs[i]);
        float *zeros = calloc((size_t)n, sizeof *zeros);
        if (!zeros || dg_feed(m.inputs[i], zeros, n) != DG_OK) abort();
        free(zeros);
    }
    if (dg_run_many(g, m.n_outputs, m.outputs) != DG_OK) abort();
    size_t n1, n2;
    void *first = save(g, &m, &n1);
    dg_graph *g2 = dg_graph_new(2);
    dg_onnx_model m2;
    if (dg_onnx_load_mem(g2, first, n1, &opts, &m2) != DG_OK) abort();
    void *second = save(g2, &m2, &n2);
    if (n1 != n2 || memcmp(first, second, n1) != 0) abort();
    free(first), free(second);
    dg_onnx_model_free(&m2);
    dg_onnx_model_free(&m);
    dg_graph_free(g2);
    dg_graph_free(g);
    return 0;
}
