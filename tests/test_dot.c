/* DOT export: for an MLP (forward only, with backward, collapsed layers), a double
 * backward, annotated values, gradient heat, NaN marking and hostile names, the DOT text
 * must parse with Graphviz's `dot -Tsvg` (no error or warning) and hold exactly the graph's
 * nodes and edges, counted by Graphviz's `gc` and by reading the text, against counts made
 * here from the graph API. Graphviz checks are skipped, visibly, when `dot` is missing. */
#include "test_util.h"

#include <stdint.h>
#include <string.h>

/* Under LeakSanitizer: Graphviz's text layout (libgvc with fontconfig, pango, cairo and
 * glib) keeps process-wide caches that it never frees; those are not dagrad's leaks. This
 * is LSan's documented hook and is ignored when the sanitizer is off. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libgvc.so\nleak:libgvplugin\nleak:libfontconfig.so\nleak:libpango\n"
           "leak:libcairo.so\nleak:libglib-2.0.so\nleak:libgobject-2.0.so\n";
}

static int have_dot, have_gc;
static char out_dir[1024];

static void path_for(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", out_dir, name);
}

/* Expected counts from the graph API alone: shown nodes, their input edges, and one dashed
 * edge per (value, gradient) pair with both ends shown. */
static int shown(const dg_node *n, int backward, int max_pass) {
    int p = dg_node_backward_pass(n);
    return p == 0 || (backward && (max_pass <= 0 || p <= max_pass));
}

static void expected_counts(const dg_graph *g, int backward, int max_pass, int *nodes, int *edges,
                            int *grad_edges) {
    *nodes = *edges = *grad_edges = 0;
    for (int i = 0; i < dg_graph_node_count(g); i++) {
        dg_node *x = dg_graph_node(g, i);
        if (!shown(x, backward, max_pass)) continue;
        ++*nodes;
        for (int k = 0; k < dg_node_input_count(x); k++)
            if (shown(dg_node_input(x, k), backward, max_pass)) ++*edges;
        dg_node *gx = dg_grad(x);
        if (gx && gx != x && shown(gx, backward, max_pass)) ++*grad_edges;
        dg_node *of = dg_node_grad_of(x);
        if (of && dg_node_backward_pass(x) > 0 && dg_grad(of) != x && shown(of, backward, max_pass))
            ++*grad_edges;
    }
}

/* Counts statements in our own output: graph nodes "n<id> [", layer boxes "b<k> [",
 * legend entries, edges, dashed edges. */
typedef struct dot_counts {
    int nodes, boxes, legend, edges, dashed, legend_edges;
} dot_counts;

static dot_counts count_text(const char *text) {
    dot_counts c = {0};
    const char *line = text;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *p = line;
        while (*p == ' ') p++;
        int is_edge = 0;
        for (const char *q = p; q + 3 < line + len && *q != '['; q++)
            if (q[0] == ' ' && q[1] == '-' && q[2] == '>') is_edge = 1;
        if (is_edge) {
            if (strncmp(p, "legend_", 7) == 0)
                c.legend_edges++;
            else {
                c.edges++;
                char buf[4096];
                snprintf(buf, sizeof buf, "%.*s", (int)len, line);
                if (strstr(buf, "style=dashed")) c.dashed++;
            }
        } else if (p[0] == 'n' && p[1] >= '0' && p[1] <= '9')
            c.nodes++;
        else if (p[0] == 'b' && p[1] >= '0' && p[1] <= '9')
            c.boxes++;
        else if (strncmp(p, "legend_", 7) == 0)
            c.legend++;
        line = end ? end + 1 : NULL;
    }
    return c;
}

/* Runs `dot -Tsvg` on the file; 1 if it exits 0 and prints nothing (no warning either). */
static int graphviz_parses(const char *dot_path) {
    char svg[1100], err[1100], cmd[4000];
    snprintf(svg, sizeof svg, "%s.svg", dot_path);
    snprintf(err, sizeof err, "%s.err", dot_path);
    snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%s' 2>'%s'", dot_path, svg, err);
    int rc = system(cmd);
    FILE *f = fopen(err, "rb");
    long size = -1;
    if (f) {
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
    }
    if (rc != 0 || size != 0) {
        fprintf(stderr, "dot -Tsvg %s: exit %d, stderr:\n", dot_path, rc);
        snprintf(cmd, sizeof cmd, "cat '%s' >&2", err);
        if (system(cmd) != 0) fprintf(stderr, "(could not show it)\n");
    }
    return rc == 0 && size == 0;
}

/* Graphviz's own count of nodes and edges (`gc -n -e` prints "nodes edges name"), or -1s. */
static void graphviz_counts(const char *dot_path, int *nodes, int *edges) {
    char cmd[2200];
    *nodes = *edges = -1;
    snprintf(cmd, sizeof cmd, "gc -n -e '%s'", dot_path);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (fscanf(p, " %d %d", nodes, edges) != 2) *nodes = *edges = -1;
    pclose(p);
}

/* Writes the DOT file `name`, checks it parses and that Graphviz and our reading of the text
 * both count the expected nodes and edges (the legend must be off for gc's totals). */
static char *write_and_check(const dg_graph *g, const char *name, const dg_dot_options *o,
                             int exp_nodes, int exp_edges, int exp_dashed) {
    char path[1100];
    path_for(path, sizeof path, name);
    CHECK_OK(dg_dot_write(g, path, o));
    char *text = dg_dot_string(g, o);
    CHECK(text != NULL);
    if (!text) return NULL;
    dot_counts c = count_text(text);
    CHECK_MSG(c.nodes + c.boxes == exp_nodes, "%s: %d nodes in DOT, expected %d", name,
              c.nodes + c.boxes, exp_nodes);
    CHECK_MSG(c.edges == exp_edges + exp_dashed, "%s: %d edges in DOT, expected %d + %d", name,
              c.edges, exp_edges, exp_dashed);
    if (exp_dashed >= 0)
        CHECK_MSG(c.dashed == exp_dashed, "%s: %d dashed, expected %d", name, c.dashed, exp_dashed);
    if (have_dot) CHECK_MSG(graphviz_parses(path), "%s does not parse", name);
    if (have_gc && !o->legend) {
        int gn, ge;
        graphviz_counts(path, &gn, &ge);
        CHECK_MSG(gn == exp_nodes && ge == exp_edges + exp_dashed,
                  "%s: gc counts %d nodes %d edges, expected %d and %d", name, gn, ge, exp_nodes,
                  exp_edges + exp_dashed);
    }
    return text;
}

/* The line of node n ("  n<id> [...];"), copied into buf; "" if absent. */
static const char *node_line(const char *text, const dg_node *n, char *buf, size_t size) {
    char key[32];
    snprintf(key, sizeof key, "\n  n%d [", dg_node_id(n));
    const char *p = strstr(text, key);
    buf[0] = 0;
    if (!p) return buf;
    p++;
    const char *e = strchr(p, '\n');
    snprintf(buf, size, "%.*s", (int)(e ? e - p : (long)strlen(p)), p);
    return buf;
}

/* The fill colour of a node's line as r, g, b; 0 if absent. */
static int node_fill(const char *line, int rgb[3]) {
    const char *p = strstr(line, "fillcolor=\"#");
    if (!p) return 0;
    unsigned r, g, b;
    if (sscanf(p + 12, "%2x%2x%2x", &r, &g, &b) != 3) return 0;
    rgb[0] = (int)r, rgb[1] = (int)g, rgb[2] = (int)b;
    return 1;
}

/* ---- graphs ---- */

typedef struct mlp {
    dg_graph *g;
    dg_node *x, *labels, *loss;
} mlp;

/* x[4,3] -> dense1 (8, relu) -> dense2 (3) -> cross-entropy, fed with fixed data. */
static mlp build_mlp(void) {
    mlp m;
    m.g = dg_graph_new(7);
    m.x = dg_input(m.g, "x", dg_shape2(4, 3));
    m.labels = dg_input(m.g, "labels", dg_shape1(4));
    dg_node *h = dg_dense(m.g, "dense1", m.x, 8, DG_ACT_RELU);
    dg_node *z = dg_dense(m.g, "dense2", h, 3, DG_ACT_NONE);
    m.loss = dg_cross_entropy_loss(m.g, z, m.labels);
    dg_node_set_name(m.loss, "loss");
    test_fill(m.x, -1, 1);
    float lab[4] = {0, 2, 1, 2};
    dg_feed(m.labels, lab, 4);
    return m;
}

/* Runs the loss and the gradient of every forward node that has one. */
static void run_grads(dg_graph *g, dg_node *loss) {
    int count = dg_graph_node_count(g), n = 0;
    dg_node **targets = malloc((size_t)(count + 1) * sizeof *targets);
    CHECK(targets != NULL);
    if (!targets) return;
    targets[n++] = loss;
    for (int i = 0; i < count; i++) {
        dg_node *x = dg_graph_node(g, i);
        if (dg_node_backward_pass(x) == 0 && dg_grad(x)) targets[n++] = dg_grad(x);
    }
    CHECK_OK(dg_run_many(g, n, targets));
    free(targets);
}

static dg_dot_options plain_options(void) {
    dg_dot_options o = dg_dot_defaults();
    o.legend = 0; /* so Graphviz's totals are the graph's own */
    return o;
}

static void test_mlp_forward_and_backward(void) {
    mlp m = build_mlp();
    CHECK(m.loss != NULL);
    dg_dot_options o = plain_options();
    o.show_backward = 0;
    o.loss = m.loss;
    int n, e, d;
    expected_counts(m.g, 0, 0, &n, &e, &d);
    CHECK(n == 12 && d == 0); /* x, labels, 2 x (W, matmul, b, add), relu, loss */
    char *t = write_and_check(m.g, "mlp_forward.dot", &o, n, e, d);
    if (t) {
        CHECK(strstr(t, "label=<<B>dense1</B>>") && strstr(t, "label=<<B>dense2</B>>"));
        CHECK(strstr(t, "doubleoctagon") != NULL); /* the loss */
        CHECK(strstr(t, "backward pass") == NULL); /* forward only */
    }
    free(t);

    CHECK_OK(dg_backward(m.g, m.loss));
    run_grads(m.g, m.loss);
    expected_counts(m.g, 1, 0, &n, &e, &d);
    o.show_backward = 1;
    t = write_and_check(m.g, "mlp_backward.dot", &o, n, e, d);
    if (t) {
        CHECK(strstr(t, "backward pass 1") && strstr(t, "forward pass"));
        /* each parameter has its dashed edge to its gradient node, drawn as "∇ <name>" */
        for (int i = 0; i < dg_graph_node_count(m.g); i++) {
            dg_node *w = dg_graph_node(m.g, i);
            if (dg_node_kind_of(w) != DG_PARAM) continue;
            char key[64], line[2048];
            snprintf(key, sizeof key, "n%d -> n%d [style=dashed", dg_node_id(w),
                     dg_node_id(dg_grad(w)));
            CHECK_MSG(strstr(t, key) != NULL, "no dashed edge %s", key);
            node_line(t, dg_grad(w), line, sizeof line);
            CHECK_MSG(strstr(line, "&#8711; ") && strstr(line, dg_node_name(w)),
                      "gradient of %s is labelled %s", dg_node_name(w), line);
        }
    }
    free(t);
    /* forward only still leaves the gradient nodes out after a backward */
    o.show_backward = 0;
    expected_counts(m.g, 0, 0, &n, &e, &d);
    free(write_and_check(m.g, "mlp_forward_after.dot", &o, n, e, d));

    /* the legend adds only legend_* nodes and invisible legend edges */
    o = dg_dot_defaults();
    o.loss = m.loss;
    o.grad_heat = 1;
    t = dg_dot_string(m.g, &o);
    CHECK(t != NULL);
    if (t) {
        dot_counts c = count_text(t);
        expected_counts(m.g, 1, 0, &n, &e, &d);
        CHECK(c.legend >= 5 && c.nodes == n && c.edges == e + d);
        CHECK(c.legend_edges == c.legend - 1);
        CHECK(strstr(t, "gradient norm (log scale)") != NULL);
    }
    free(t);
    o.rankdir = "LR";
    t = dg_dot_string(m.g, &o);
    CHECK(t && strstr(t, "rankdir=LR"));
    free(t);
    char path[1100];
    path_for(path, sizeof path, "mlp_legend.dot");
    CHECK_OK(dg_dot_write(m.g, path, &o));
    if (have_dot) CHECK(graphviz_parses(path));
    dg_graph_free(m.g);
}

static void test_collapsed(void) {
    mlp m = build_mlp();
    dg_dot_options o = plain_options();
    o.collapse_scopes = 1;
    o.show_backward = 0;
    /* expected: unscoped nodes as themselves, one box per layer; edges between distinct
     * endpoints merged */
    int ids[64], n_end = 0, n = dg_graph_node_count(m.g);
    const char *layer[64];
    for (int i = 0; i < n && i < 64; i++) {
        const char *s = dg_node_scope(dg_graph_node(m.g, i));
        layer[i] = s;
        int id = 1000 + i;
        if (s) {
            id = -1;
            for (int j = 0; j < i; j++)
                if (layer[j] && strcmp(layer[j], s) == 0) id = ids[j];
            if (id < 0) id = n_end;
        }
        if (id == n_end || id >= 1000) n_end++;
        ids[i] = id;
    }
    int pairs[256][2], n_pairs = 0;
    for (int i = 0; i < n && i < 64; i++) {
        dg_node *x = dg_graph_node(m.g, i);
        for (int k = 0; k < dg_node_input_count(x); k++) {
            int a = ids[dg_node_id(dg_node_input(x, k))], b = ids[i], dup = a == b;
            for (int j = 0; j < n_pairs && !dup; j++) dup = pairs[j][0] == a && pairs[j][1] == b;
            if (!dup) pairs[n_pairs][0] = a, pairs[n_pairs++][1] = b;
        }
    }
    CHECK(n_end == 5); /* x, labels, dense1, dense2, loss */
    char *t = write_and_check(m.g, "mlp_collapsed.dot", &o, n_end, n_pairs, 0);
    if (t) {
        dot_counts c = count_text(t);
        CHECK(c.boxes == 2);
        CHECK(strstr(t, "<B>dense1</B>") && strstr(t, "<B>dense2</B>"));
        CHECK(strstr(t, "W [3,8]") && strstr(t, "W [8,3]")); /* parameters listed */
    }
    free(t);

    /* with the backward pass, the layers' gradient nodes collapse too */
    CHECK_OK(dg_backward(m.g, m.loss));
    run_grads(m.g, m.loss);
    o.show_backward = 1;
    o.grad_heat = 1;
    o.grad_norms = 1;
    char path[1100];
    path_for(path, sizeof path, "mlp_collapsed_backward.dot");
    CHECK_OK(dg_dot_write(m.g, path, &o));
    t = dg_dot_string(m.g, &o);
    if (t) {
        dot_counts c = count_text(t);
        int full, e, d;
        expected_counts(m.g, 1, 0, &full, &e, &d);
        CHECK(c.boxes == 4);
        /* every node is drawn on its own or counted in exactly one box ("<k> nodes") */
        int in_boxes = 0;
        for (const char *p = strstr(t, " nodes"); p; p = strstr(p + 1, " nodes")) {
            const char *q = p;
            while (q > t && q[-1] >= '0' && q[-1] <= '9') q--;
            in_boxes += atoi(q);
        }
        CHECK_MSG(c.nodes + in_boxes == full, "%d drawn + %d in boxes != %d", c.nodes, in_boxes,
                  full);
        CHECK(strstr(t, "<B>&#8711; dense1") && strstr(t, "<B>&#8711; dense2"));
        CHECK(strstr(t, "&#8214;&#8711;params&#8214;") != NULL);
    }
    free(t);
    if (have_dot) CHECK(graphviz_parses(path));
    dg_graph_free(m.g);
}

/* y = sum(tanh(w) * w), g = dy/dw, z = sum(g * g): a second backward of z (pass 2). */
static void test_double_backward(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *w = dg_param(g, "w", dg_shape1(3));
    test_fill(w, -1, 1);
    dg_node *y = dg_sum(g, dg_mul(g, dg_tanh(g, w), w));
    CHECK_OK(dg_backward(g, y));
    dg_node *gw = dg_grad(w);
    dg_node *z = dg_sum(g, dg_mul(g, gw, gw));
    CHECK_OK(dg_backward(g, z));
    CHECK(dg_node_backward_pass(dg_grad(w)) == 2);
    CHECK_OK(dg_run(g, dg_grad(w)));
    dg_dot_options o = plain_options();
    o.loss = z;
    int n, e, d;
    expected_counts(g, 1, 0, &n, &e, &d);
    char *t = write_and_check(g, "double_backward.dot", &o, n, e, d);
    if (t) CHECK(strstr(t, "backward pass 1") && strstr(t, "backward pass 2"));
    free(t);
    o.max_backward_pass = 1;
    int n1, e1, d1;
    expected_counts(g, 1, 1, &n1, &e1, &d1);
    CHECK(n1 < n);
    t = write_and_check(g, "double_backward_max1.dot", &o, n1, e1, d1);
    if (t) CHECK(strstr(t, "backward pass 1") && !strstr(t, "backward pass 2"));
    free(t);
    dg_graph_free(g);
}

/* Values and gradient norms after a run; the heat scale puts a tiny gradient at the blue
 * end and a huge one at the red end. */
static void test_annotations_and_heat(void) {
    dg_graph *g = dg_graph_new(2);
    dg_node *x = dg_input(g, "x", dg_shape1(4));
    dg_node *a = dg_param(g, "a", dg_shape1(4)), *b = dg_param(g, "b", dg_shape1(4));
    float xv[4] = {-2, 0.5f, 1, 3};
    CHECK_OK(dg_feed(x, xv, 4));
    test_fill(a, 0.5f, 1);
    test_fill(b, 0.5f, 1);
    /* loss = 1e-6 * sum(a*x) + 1e3 * sum(b*x): |grad a| ~ 4e-6, |grad b| ~ 4e3 */
    dg_node *loss = dg_add(g, dg_scale(g, dg_sum(g, dg_mul(g, a, x)), 1e-6f),
                           dg_scale(g, dg_sum(g, dg_mul(g, b, x)), 1e3f));
    CHECK_OK(dg_backward(g, loss));
    run_grads(g, loss);
    dg_dot_options o = plain_options();
    o.loss = loss;
    o.annotate_values = 1;
    o.grad_norms = 1;
    o.grad_heat = 1;
    int n, e, d;
    expected_counts(g, 1, 0, &n, &e, &d);
    char *t = write_and_check(g, "annotated.dot", &o, n, e, d);
    if (t) {
        char want[256], line[2048];
        /* statistics of x computed here */
        snprintf(want, sizeof want, "min %.3g &#183; mean %.3g &#183; max %.3g", -2.0, 0.625, 3.0);
        node_line(t, x, line, sizeof line);
        CHECK_MSG(strstr(line, want) != NULL, "x: %s", line);
        /* gradient norms computed here from the gradient nodes' values */
        dg_node *ps[2] = {a, b};
        int rgb[2][3];
        for (int k = 0; k < 2; k++) {
            const float *gv = dg_node_data(dg_grad(ps[k]));
            double s = 0;
            for (int i = 0; i < 4; i++) s += (double)gv[i] * gv[i];
            snprintf(want, sizeof want, "&#8214;&#8711;&#8214; %.2e", sqrt(s));
            node_line(t, ps[k], line, sizeof line);
            CHECK_MSG(strstr(line, want) != NULL, "want %s in %s", want, line);
            CHECK(node_fill(line, rgb[k]));
        }
        CHECK_MSG(rgb[0][2] > rgb[0][0] + 60, "tiny gradient not blue: %d,%d,%d", rgb[0][0],
                  rgb[0][1], rgb[0][2]);
        CHECK_MSG(rgb[1][0] > rgb[1][2] + 60, "huge gradient not red: %d,%d,%d", rgb[1][0],
                  rgb[1][1], rgb[1][2]);
        /* x needs no gradient: white under the heat scale */
        node_line(t, x, line, sizeof line);
        int wx[3];
        CHECK(node_fill(line, wx) && wx[0] == 255 && wx[1] == 255 && wx[2] == 255);
        /* the scalar loss shows its value */
        snprintf(want, sizeof want, "= %.4g", (double)dg_value(loss));
        node_line(t, loss, line, sizeof line);
        CHECK_MSG(strstr(line, want) != NULL, "loss: %s", line);
    }
    free(t);
    dg_graph_free(g);
}

/* A NaN (log of a negative number) and an Inf (division by zero) are marked; finite nodes
 * are not; the marking can be turned off. */
static void test_nonfinite(void) {
    dg_graph *g = dg_graph_new(3);
    dg_node *x = dg_input(g, "x", dg_shape1(3));
    float xv[3] = {-1, 0, 2};
    CHECK_OK(dg_feed(x, xv, 3));
    dg_node *lg = dg_log(g, x);                      /* NaN, -Inf, log 2 */
    dg_node *inv = dg_div(g, dg_scalar(g, 1.0f), x); /* -1, Inf, 0.5 */
    dg_node *ok = dg_exp(g, x);
    dg_node *ts[3] = {lg, inv, ok};
    CHECK_OK(dg_run_many(g, 3, ts));
    dg_dot_options o = plain_options();
    int n, e, d;
    expected_counts(g, 1, 0, &n, &e, &d);
    char *t = write_and_check(g, "nonfinite.dot", &o, n, e, d);
    if (t) {
        char line[2048];
        node_line(t, lg, line, sizeof line);
        CHECK_MSG(strstr(line, "NaN &#215;1") && strstr(line, "Inf &#215;1"), "log: %s", line);
        int rgb[3];
        CHECK(node_fill(line, rgb) && rgb[0] > 200 && rgb[1] < 100 && rgb[2] < 100);
        node_line(t, inv, line, sizeof line);
        CHECK_MSG(strstr(line, "Inf &#215;1") && !strstr(line, "NaN"), "div: %s", line);
        node_line(t, ok, line, sizeof line);
        CHECK(!strstr(line, "NaN") && !strstr(line, "Inf"));
        CHECK(node_fill(line, rgb) && !(rgb[0] > 200 && rgb[1] < 100));
    }
    free(t);
    o.mark_nonfinite = 0;
    t = dg_dot_string(g, &o);
    CHECK(t && !strstr(t, "NaN"));
    free(t);
    dg_graph_free(g);
}

/* Names with DOT and HTML syntax, newlines, control characters, valid and invalid UTF-8. */
static void test_hostile_names(void) {
    static const char *names[] = {
        "quote\" and \\\" backslash\\",
        "line1\nline2\r\n",
        "braces {} [] ; -> -- | pipes | <ports>",
        "<B>not bold</B> & &amp; &#x41; ]]>",
        "na\xC3\xAFve \xE2\x88\x82x/\xE2\x88\x82y \xF0\x9F\x94\xA5",
        "bad utf8 \xFF\xFE \xC3 \xE2\x82 \xED\xA0\x80 end",
        "ctrl \x01\x02\x1B[31m \x7F tab\there",
        "' single 'quotes' \\N \\G \\L \\n",
        "",
    };
    int count = (int)(sizeof names / sizeof names[0]);
    dg_graph *g = dg_graph_new(4);
    CHECK_OK(dg_scope_push(g, "layer \"one\" {<|>}\n\xFF"));
    dg_node *x = dg_input(g, names[0], dg_shape2(2, 2));
    dg_node *h = x;
    for (int i = 1; i < count; i++) {
        dg_node *p = dg_param(g, names[i], dg_shape2(2, 2));
        test_fill(p, -1, 1);
        h = dg_tanh(g, dg_add(g, h, p));
        CHECK_OK(dg_node_set_name(h, names[count - 1 - i]));
    }
    CHECK_OK(dg_scope_pop(g));
    /* a scope name with more '/' than clusters nest: its node is still drawn once */
    char deep[200] = "deep";
    for (int i = 0; i < 40; i++) strcat(deep, "/d");
    CHECK_OK(dg_scope_push(g, deep));
    h = dg_relu(g, h);
    CHECK_OK(dg_scope_push(g, "/"));
    h = dg_neg(g, dg_neg(g, h));
    CHECK_OK(dg_scope_pop(g));
    CHECK_OK(dg_scope_pop(g));
    test_fill(x, -1, 1);
    dg_node *loss = dg_mean(g, h);
    CHECK_OK(dg_backward(g, loss));
    run_grads(g, loss);
    dg_dot_options o = plain_options();
    o.loss = loss;
    o.annotate_values = 1;
    o.grad_norms = 1;
    o.title = "title \"}\n<&>\xFF";
    int n, e, d;
    expected_counts(g, 1, 0, &n, &e, &d);
    char *t = write_and_check(g, "hostile.dot", &o, n, e, d);
    if (t) {
        CHECK(strstr(t, "na\xC3\xAFve \xE2\x88\x82x/\xE2\x88\x82y") != NULL); /* UTF-8 kept */
        CHECK(strchr(t, '\xFF') == NULL && strchr(t, '\x01') == NULL && strchr(t, '\r') == NULL);
        CHECK(strstr(t, "&lt;B&gt;not bold&lt;/B&gt; &amp; &amp;amp; &amp;#x41;") != NULL);
        CHECK(strstr(t, "line1<BR/>line2") != NULL);
    }
    free(t);
    o.collapse_scopes = 1;
    o.legend = 1;
    char path[1100];
    path_for(path, sizeof path, "hostile_collapsed.dot");
    CHECK_OK(dg_dot_write(g, path, &o));
    if (have_dot) CHECK(graphviz_parses(path));
    dg_graph_free(g);
}

static void test_errors_and_render(void) {
    dg_graph *g = dg_graph_new(5), *other = dg_graph_new(6);
    dg_node *x = dg_input(g, "x", dg_shape1(2));
    dg_node *y = dg_sum(g, dg_exp(g, x));
    dg_node *z = dg_input(other, "z", dg_shape1(2));
    CHECK(dg_dot_string(NULL, NULL) == NULL);
    CHECK(dg_dot_write(NULL, "x.dot", NULL) == DG_ERR_NULL);
    CHECK(dg_dot_write(g, NULL, NULL) == DG_ERR_NULL);
    CHECK(dg_dot_write_file(g, NULL, NULL) == DG_ERR_NULL);
    dg_dot_options o = dg_dot_defaults();
    o.rankdir = "sideways";
    CHECK(dg_dot_string(g, &o) == NULL && dg_graph_status(g) == DG_ERR_ARG);
    CHECK(strstr(dg_graph_error(g), "rankdir") != NULL);
    o = dg_dot_defaults();
    o.grad_heat = 1;
    o.heat_log10_min = 2, o.heat_log10_max = -2;
    CHECK(dg_dot_string(g, &o) == NULL && dg_graph_status(g) == DG_ERR_ARG);
    o = dg_dot_defaults();
    o.loss = z;
    CHECK(dg_dot_string(g, &o) == NULL && dg_graph_status(g) == DG_ERR_GRAPH);
    CHECK(dg_dot_write(g, "/nonexistent-dir/x.dot", NULL) == DG_ERR_IO);
    CHECK(strstr(dg_graph_error(g), "/nonexistent-dir/x.dot") != NULL);
    /* the graph stays usable */
    float xv[2] = {0, 1};
    CHECK_OK(dg_feed(x, xv, 2));
    CHECK_OK(dg_run(g, y));
    CHECK_NEAR(dg_value(y), 1.0 + exp(1.0), 1e-5);

    /* writing to a stream gives the same text as the string */
    char path[1100];
    path_for(path, sizeof path, "stream.dot");
    FILE *f = fopen(path, "wb+");
    CHECK(f != NULL);
    if (f) {
        CHECK_OK(dg_dot_write_file(g, f, NULL));
        long size = ftell(f);
        char *t = dg_dot_string(g, NULL);
        CHECK(t && size == (long)strlen(t));
        free(t);
        fclose(f);
    }

    char svg[1100], png[1100];
    path_for(svg, sizeof svg, "render.svg");
    path_for(png, sizeof png, "render.png");
    if (dg_dot_render_available()) {
        CHECK_OK(dg_dot_render(g, svg, "svg", NULL));
        CHECK_OK(dg_dot_render(g, png, "png", NULL));
        char head[256] = {0};
        f = fopen(svg, "rb");
        if (f) {
            size_t k = fread(head, 1, sizeof head - 1, f);
            head[k] = 0;
            fclose(f);
        }
        CHECK(strstr(head, "<svg") || strstr(head, "<?xml"));
        unsigned char sig[8] = {0};
        f = fopen(png, "rb");
        if (f) {
            CHECK(fread(sig, 1, 8, f) == 8);
            fclose(f);
        }
        CHECK(sig[0] == 0x89 && sig[1] == 'P' && sig[2] == 'N' && sig[3] == 'G');
        CHECK(dg_dot_render(g, svg, "no-such-format", NULL) != DG_OK);
        CHECK(dg_dot_render(g, "/nonexistent-dir/x.svg", "svg", NULL) != DG_OK);
    } else {
        printf("dg_dot_render: built without Graphviz's library; checking the fallback\n");
        CHECK(dg_dot_render(g, svg, "svg", NULL) == DG_ERR_UNSUPPORTED);
        CHECK(strstr(dg_graph_error(g), "dot -Tsvg") != NULL);
    }
    CHECK(dg_dot_render(NULL, svg, "svg", NULL) != DG_OK);
    dg_graph_free(g);
    dg_graph_free(other);
}

/* The pictures of docs/DOT.md: the MLP with its backward pass, values and gradient heat;
 * and a deeper sigmoid network, collapsed per layer, whose gradients shrink layer by layer.
 * Both must parse; docs/images/ holds their renderings. */
static void test_docs_examples(void) {
    mlp m = build_mlp();
    CHECK_OK(dg_backward(m.g, m.loss));
    run_grads(m.g, m.loss);
    dg_dot_options o = dg_dot_defaults();
    o.loss = m.loss;
    o.grad_heat = 1;
    o.grad_norms = 1;
    o.title = "x -> dense1 (relu) -> dense2 -> cross-entropy: forward, backward, gradient norms";
    char path[1100];
    path_for(path, sizeof path, "docs_mlp.dot");
    CHECK_OK(dg_dot_write(m.g, path, &o));
    if (have_dot) CHECK(graphviz_parses(path));
    dg_graph_free(m.g);

    dg_graph *g = dg_graph_new(11);
    dg_node *x = dg_input(g, "x", dg_shape2(16, 8));
    dg_node *labels = dg_input(g, "labels", dg_shape1(16));
    dg_node *h = x;
    for (int i = 0; i < 6; i++) h = dg_dense(g, NULL, h, 16, DG_ACT_SIGMOID);
    dg_node *loss = dg_cross_entropy_loss(g, dg_dense(g, "out", h, 4, DG_ACT_NONE), labels);
    CHECK(loss != NULL);
    test_fill(x, -1, 1);
    float lab[16];
    for (int i = 0; i < 16; i++) lab[i] = (float)(i % 4);
    CHECK_OK(dg_feed(labels, lab, 16));
    CHECK_OK(dg_backward(g, loss));
    run_grads(g, loss);
    o = dg_dot_defaults();
    o.loss = loss;
    o.grad_heat = 1;
    o.grad_norms = 1;
    o.collapse_scopes = 1;
    o.show_backward = 0;
    o.rankdir = "LR";
    o.title = "6 sigmoid layers, collapsed: gradient norms shrink towards the input";
    path_for(path, sizeof path, "docs_deep_collapsed.dot");
    CHECK_OK(dg_dot_write(g, path, &o));
    if (have_dot) CHECK(graphviz_parses(path));
    dg_graph_free(g);
}

/* Issue 17's pictures: an optimizer's nodes in their own "update" cluster, its state
 * collapsed into the updates unless asked for, nodes never run say "not computed", nodes
 * whose memory the plan reused say "not kept", batch dimensions read N, the legend is one
 * row. */
static void test_update_cluster_and_values(void) {
    mlp m = build_mlp();
    dg_node *probs = dg_softmax(m.g, m.loss ? dg_node_input(m.loss, 0) : NULL);
    dg_optim_config c = dg_optim_defaults(DG_ADAM);
    dg_optimizer *opt = dg_optimizer_new(m.g, m.loss, &c);
    CHECK(opt && probs);
    if (!opt || !probs) {
        dg_graph_free(m.g);
        return;
    }
    CHECK_OK(dg_optimizer_step(opt));
    dg_dot_options o = dg_dot_defaults();
    o.loss = m.loss;
    o.annotate_values = 1;
    char path[1100];
    path_for(path, sizeof path, "update_cluster.dot");
    CHECK_OK(dg_dot_write(m.g, path, &o));
    if (have_dot) CHECK(graphviz_parses(path));
    char *text = dg_dot_string(m.g, &o);
    CHECK(text != NULL);
    if (text) {
        const char *upd = strstr(text, "subgraph cluster_update");
        CHECK(upd != NULL);
        /* every update op is inside that cluster, and names what it writes */
        char buf[2048];
        int updates = 0;
        for (int i = 0; i < dg_graph_node_count(m.g); i++) {
            dg_node *x = dg_graph_node(m.g, i);
            if (strncmp(dg_node_op_name(x), "update_", 7) != 0) continue;
            updates++;
            const char *line = node_line(text, x, buf, sizeof buf);
            CHECK(upd && strstr(upd, line) != NULL && line[0]);
            CHECK_MSG(strstr(line, "+ 2 state tensors") != NULL, "%s", line);
        }
        CHECK(updates == 4);
        CHECK(strstr(text, "cylinder") == NULL || strstr(text, "cylinder") < upd);
        /* the softmax was never run; the matmul's memory was reused */
        CHECK_MSG(strstr(node_line(text, probs, buf, sizeof buf), "not computed") != NULL, "%s",
                  buf);
        dg_node *mm = dg_node_input(dg_node_input(dg_node_input(m.loss, 0), 0), 0);
        CHECK_MSG(strstr(node_line(text, mm, buf, sizeof buf), "not kept") != NULL, "%s", buf);
        CHECK(strstr(text, "{ rank=same; legend_0;") != NULL);
        free(text);
    }
    /* expanded: the moments are drawn as state */
    o.show_optimizer_state = 1;
    text = dg_dot_string(m.g, &o);
    int cylinders = 0;
    for (const char *p = text; p && (p = strstr(p, "shape=cylinder")); p++) cylinders++;
    CHECK_MSG(cylinders == 2 * 4 + 2 + 1, "%d state nodes drawn", cylinders);
    free(text);
    dg_graph_free(m.g);
    /* a batch input's leading dimension reads N */
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape2(DG_BATCH, 3));
    dg_node *r = dg_relu(g, x);
    float v[6] = {0};
    dg_feed(x, v, 6);
    CHECK_OK(dg_run(g, r));
    o = dg_dot_defaults();
    text = dg_dot_string(g, &o);
    char buf[2048];
    CHECK_MSG(text && strstr(node_line(text, r, buf, sizeof buf), "[N,3]") != NULL, "%s", buf);
    free(text);
    dg_graph_free(g);
}

int main(void) {
    const char *bin = getenv("DG_BINARY_DIR");
    snprintf(out_dir, sizeof out_dir, "%s/tests/dot_out", bin ? bin : ".");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", out_dir);
    if (system(cmd) != 0) snprintf(out_dir, sizeof out_dir, ".");
    have_dot = system("dot -V >/dev/null 2>&1") == 0;
    have_gc = have_dot && system("gc -? >/dev/null 2>&1; command -v gc >/dev/null") == 0;
    if (!have_dot) printf("SKIPPED: Graphviz `dot` is not installed; DOT is not parsed\n");
    test_mlp_forward_and_backward();
    test_collapsed();
    test_double_backward();
    test_annotations_and_heat();
    test_nonfinite();
    test_hostile_names();
    test_errors_and_render();
    test_docs_examples();
    test_update_cluster_and_values();
    return test_summary("test_dot");
}
