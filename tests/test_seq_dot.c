/* DOT export of unrolled nets: the steps between the first and the last collapse into one
 * box per cell (and their gradient nodes into one box per backward pass), so the picture of
 * a net unrolled over 40 steps has as many nodes as that of one unrolled over 4. */
#include "test_util.h"

#include <string.h>

/* Number of node statements ("  n12 [shape" or "  b3 [shape") starting with `prefix` ("n",
 * "b"), or of occurrences of any other text. */
static int count(const char *dot, const char *prefix) {
    int n = 0;
    if (strlen(prefix) == 1) {
        for (const char *p = dot; (p = strstr(p, "\n  ")) != NULL; p++) {
            const char *q = p + 3;
            if (*q++ != prefix[0]) continue;
            while (*q >= '0' && *q <= '9') q++;
            n += strncmp(q, " [shape", 7) == 0;
        }
        return n;
    }
    for (const char *p = dot; (p = strstr(p, prefix)) != NULL; p++) n++;
    return n;
}

static char *unrolled_dot(int steps, int backward, int collapse, int *nodes) {
    dg_graph *g = dg_graph_new(1);
    dg_cell *cell = dg_gru(g, "gru", 8, 6);
    dg_node *table = dg_embedding(g, "embed", 10, 8);
    dg_node *tokens = dg_input(g, "tokens", dg_shape2(DG_BATCH, steps));
    dg_node *labels = dg_input(g, "labels", dg_shape2(DG_BATCH, steps));
    dg_unrolled u;
    CHECK_OK(dg_unroll_tokens(g, cell, table, tokens, &u));
    dg_node *loss = dg_seq_cross_entropy(g, "out", &u, labels, 10, NULL);
    CHECK(loss != NULL);
    if (backward) CHECK_OK(dg_backward(g, loss));
    *nodes = dg_graph_node_count(g);
    dg_dot_options o = dg_dot_defaults();
    o.collapse_steps = collapse;
    o.loss = loss;
    char *dot = dg_dot_string(g, &o);
    CHECK_MSG(dot != NULL, "%s", dg_graph_error(g));
    dg_graph_free(g);
    return dot;
}

int main(void) {
    int n4, n40;
    for (int backward = 0; backward < 2; backward++) {
        char *a = unrolled_dot(4, backward, 1, &n4), *b = unrolled_dot(40, backward, 1, &n40);
        if (a && b) {
            CHECK(n40 > 5 * n4 / 2);
            /* drawn: steps 0 and T-1 in full, the rest as one box */
            CHECK_MSG(count(a, "n") == count(b, "n"), "%d vs %d node statements", count(a, "n"),
                      count(b, "n"));
            CHECK(strstr(a, "gru: t=1 \xE2\x80\xA6 t=2") != NULL);
            CHECK(strstr(b, "gru: t=1 \xE2\x80\xA6 t=38") != NULL);
            CHECK(strstr(b, "label=<<B>t=39</B>>") != NULL && strstr(b, "label=<<B>t=0</B>>"));
            CHECK(strstr(b, "label=<<B>t=5</B>>") == NULL);
            CHECK(count(b, "b") == 1 + backward);
            if (backward) CHECK(strstr(b, "&#8711; gru: t=1 \xE2\x80\xA6 t=38") != NULL);
        }
        free(a);
        free(b);
    }
    /* without collapsing, every step is drawn */
    char *full = unrolled_dot(40, 0, 0, &n40);
    CHECK(full && strstr(full, "label=<<B>t=5</B>>") != NULL && count(full, "b") == 0);
    free(full);
    return test_summary("test_seq_dot");
}
