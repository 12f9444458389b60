/* DOT export: turns a graph into Graphviz DOT text that makes backprop visible. Forward
 * nodes sit in a "forward pass" cluster (nested clusters per layer scope), the nodes built
 * by each dg_backward in a "backward pass k" cluster, and a dashed edge runs from each value
 * to its gradient node. Optional annotations: value statistics, gradient norms, a log-scale
 * heat colour by gradient norm, NaN/Inf marking; optional collapsing of each layer into
 * one box. This file only reads the graph and builds text; writing files and rendering
 * through Graphviz's library live in dot_render.c.
 *
 * Every user-supplied string (node names, scope names, the title) goes into HTML-like
 * labels through html_text(), which escapes markup characters, turns newlines into <BR/>,
 * drops control characters and replaces invalid UTF-8, so any name gives valid DOT. */
#include "dagrad/dot.h"
#include "dagrad/opkit.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growable string ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
sb_printf(sbuf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        sb_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, big, (size_t)n);
    free(big);
}

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if the bytes there are not
 * one (stray continuation byte, overlong form, surrogate, beyond U+10FFFF, truncated). */
static int utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    int n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the terminating NUL */
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp > 0x10FFFF) return 0;
    return n;
}

/* Appends `s` as text inside an HTML-like label: & < > " ' become entities (so braces,
 * pipes, quotes and backslashes are plain text there), a newline becomes <BR/>, other
 * control characters are dropped and invalid UTF-8 bytes become U+FFFD. `max` > 0 cuts
 * the text after that many characters with an ellipsis (labels stay readable). */
static void html_text(sbuf *b, const char *s, int max) {
    if (!s) return;
    const unsigned char *p = (const unsigned char *)s;
    int chars = 0;
    while (*p) {
        if (max > 0 && chars == max) {
            sb_puts(b, "&#8230;");
            return;
        }
        unsigned c = *p;
        int n = utf8_len(p);
        chars++;
        if (n == 0) {
            sb_puts(b, "&#xFFFD;");
            p++;
            continue;
        }
        if (n > 1) {
            sb_put(b, (const char *)p, (size_t)n);
            p += n;
            continue;
        }
        p++;
        switch (c) {
        case '&': sb_puts(b, "&amp;"); break;
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        case '\'': sb_puts(b, "&#39;"); break;
        case '\n': sb_puts(b, "<BR/>"); break;
        case '\t': sb_puts(b, " "); break;
        default:
            if (c >= 0x20 && c != 0x7F) {
                char ch = (char)c;
                sb_put(b, &ch, 1);
            }
            break;
        }
    }
}

/* ---- options ---- */

dg_dot_options dg_dot_defaults(void) {
    dg_dot_options o;
    memset(&o, 0, sizeof o);
    o.show_backward = 1;
    o.heat_log10_min = -7.0;
    o.heat_log10_max = 3.0;
    o.mark_nonfinite = 1;
    o.cluster_scopes = 1;
    o.legend = 1;
    o.small_consts = 1;
    o.show_optimizer_state = 0;
    o.collapse_steps = 1;
    return o;
}

/* Graphs are always heap objects, so recording an error on one that the export received
 * as const (it only reads the graph otherwise) is well defined. */
static dg_graph *err_graph(const dg_graph *g) { return (dg_graph *)g; }

/* ---- what is known about each node ---- */

typedef struct ninfo {
    int shown;
    int box;          /* collapsed box, or -1 when drawn on its own */
    int names;        /* gradient node: id of the value its label names, or -1 */
    int64_t nan, inf; /* non-finite values held */
    int has_stats;    /* min/mean/max over the finite values */
    int no_value;     /* 1: never computed; 2: computed, but its memory was reused */
    int update;       /* part of an optimizer's update (drawn in the "update" cluster) */
    int hidden_state; /* written state collapsed into the update that writes it */
    double min, mean, max;
    int has_gnorm; /* forward node with a gradient node */
    double gnorm;  /* L2 norm of the gradient's values (NaN if they hold NaN/Inf) */
} ninfo;

typedef struct box {
    int pass;
    char *name;  /* top-level scope component (or a step box's label), owned */
    char *scope; /* step boxes: the scope holding the collapsed steps ("lstm1"), owned */
    int count, last, n_params;
    int64_t nan, inf;
    double gnorm2;
    int has_gnorm;
} box;

typedef struct dot_ctx {
    const dg_graph *g;
    const dg_dot_options *o;
    sbuf *b;
    ninfo *info;
    box *boxes;
    int n_boxes;
    int cluster_id;
    int max_pass;   /* highest pass among shown nodes */
    int any_update; /* an optimizer's update is drawn */
} dot_ctx;

static void node_stats(const dg_node *n, ninfo *in) {
    const float *v = dg_node_data(n);
    int64_t count = dg_node_numel(n), finite = 0;
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < count; i++) {
        double x = v[i];
        if (isnan(x))
            in->nan++;
        else if (isinf(x))
            in->inf++;
        else {
            finite++;
            sum += x;
            if (x < lo) lo = x;
            if (x > hi) hi = x;
        }
    }
    in->has_stats = finite > 0;
    if (finite) in->min = lo, in->mean = sum / (double)finite, in->max = hi;
}

static double l2_norm(const dg_node *n) {
    const float *v = dg_node_data(n);
    double s = 0;
    for (int64_t i = 0; i < dg_node_numel(n); i++) s += (double)v[i] * v[i];
    return sqrt(s); /* NaN or Inf values make it NaN or Inf, which the label then says */
}

/* ---- colours ---- */

/* Heat scale for gradient norms, ColorBrewer's diverging RdYlBu reversed: dark blue for
 * vanishing, pale yellow in the middle of the range, dark red for exploding. */
static const unsigned char heat_stops[5][3] = {{0x31, 0x63, 0xB0},
                                               {0x9E, 0xCA, 0xE1},
                                               {0xFF, 0xFF, 0xBF},
                                               {0xFD, 0xAE, 0x61},
                                               {0xC8, 0x17, 0x1C}};
#define HEAT_ZERO      "#A9B4C2" /* an exactly-zero gradient */
#define NONFINITE_FILL "#FF4040"
#define NONFINITE_LINE "#A00000"

/* t in [0,1] along the scale; writes "#RRGGBB" and whether the text should be white. */
static int heat_colour_t(double t, char out[8]) {
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double x = t * 4;
    int k = (int)x;
    if (k > 3) k = 3;
    double f = x - k;
    int rgb[3];
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(heat_stops[k][c] + f * (heat_stops[k + 1][c] - heat_stops[k][c]));
    snprintf(out, 8, "#%02X%02X%02X", rgb[0], rgb[1], rgb[2]);
    return t < 0.15 || t > 0.85;
}

/* Position of a norm on the log10 scale [lo, hi]. */
static double heat_t(const dg_dot_options *o, double norm) {
    return (log10(norm) - o->heat_log10_min) / (o->heat_log10_max - o->heat_log10_min);
}

/* ---- labels ---- */

/* "[N,784]": a leading dimension that follows the batch reads N (the shapes of the
 * latest run would otherwise mix the batch sizes of training and evaluation). */
static void shape_text(sbuf *b, const dg_node *n) {
    char buf[96];
    dg_shape s = dg_node_shape(n);
    if (s.ndim == 0) {
        sb_puts(b, "scalar");
        return;
    }
    dg_shape_str(s, buf, sizeof buf);
    if (dg_node_batch_leading(n)) {
        const char *comma = strchr(buf, ',');
        sb_printf(b, "[N%s", comma ? comma : "]");
    } else {
        sb_puts(b, buf);
    }
}

/* How a gradient node names what it is the gradient of: the target's name, "∇(…)" for a
 * gradient of a gradient, or "op #id". */
static void target_text(sbuf *b, const dg_node *t, int depth) {
    const char *name = dg_node_name(t);
    if (name)
        html_text(b, name, 40);
    else if (dg_node_grad_of(t) && depth < 3) {
        sb_puts(b, "\xE2\x88\x87(");
        target_text(b, dg_node_grad_of(t), depth + 1);
        sb_puts(b, ")");
    } else
        sb_printf(b, "%s #%d", dg_node_op_name(t), dg_node_id(t));
}

static const char *kind_word(const dg_node *n) {
    switch (dg_node_kind_of(n)) {
    case DG_INPUT: return "input";
    case DG_PARAM: return "param";
    case DG_CONST: return "const";
    case DG_STATE: return "state";
    case DG_OP_NODE: break;
    }
    return NULL;
}

#define SMALL           "<FONT POINT-SIZE=\"8\" COLOR=\"#495057\">"
#define SMALL_ON(white) ((white) ? "<FONT POINT-SIZE=\"8\" COLOR=\"#F8F9FA\">" : SMALL)

static void annotations(dot_ctx *c, const ninfo *in, int white) {
    sbuf *b = c->b;
    if (c->o->annotate_values && in->no_value)
        sb_printf(b, "<BR/>%s%s</FONT>", SMALL_ON(white),
                  in->no_value == 1 ? "not computed" : "not kept (dg_keep to see it)");
    if (c->o->annotate_values && in->has_stats) {
        sb_printf(b, "<BR/>%s", SMALL_ON(white));
        if (in->min == in->max)
            sb_printf(b, "= %.4g", in->min);
        else
            sb_printf(b, "min %.3g &#183; mean %.3g &#183; max %.3g", in->min, in->mean, in->max);
        sb_puts(b, "</FONT>");
    }
    if (c->o->grad_norms && in->has_gnorm)
        sb_printf(b, "<BR/>%s&#8214;&#8711;&#8214; %.2e</FONT>", SMALL_ON(white), in->gnorm);
    if (c->o->mark_nonfinite && (in->nan || in->inf)) {
        sb_puts(b, "<BR/><FONT COLOR=\"#FFFFFF\"><B>");
        if (in->nan) sb_printf(b, "NaN &#215;%lld", (long long)in->nan);
        if (in->nan && in->inf) sb_puts(b, "  ");
        if (in->inf) sb_printf(b, "Inf &#215;%lld", (long long)in->inf);
        sb_puts(b, "</B></FONT>");
    }
}

/* The name as shown inside its scope's cluster: "dense1/W" reads "W" in cluster dense1. */
static const char *short_name(const dot_ctx *c, const dg_node *n) {
    const char *name = dg_node_name(n), *scope = dg_node_scope(n);
    if (name && !*name) return NULL; /* an empty name is no name */
    if (!name || !scope || !c->o->cluster_scopes || c->o->collapse_scopes) return name;
    size_t k = strlen(scope);
    if (strncmp(name, scope, k) == 0 && name[k] == '/' && name[k + 1]) return name + k + 1;
    return name;
}

static int all_equal(const dg_node *n) {
    const float *v = dg_node_data(n);
    for (int64_t i = 1; i < dg_node_numel(n); i++)
        if (v[i] != v[0]) return 0;
    return 1;
}

/* For an op that writes leaves in place: "writes fc1/W, and 2 state tensors (m, v)" when
 * the state it writes is collapsed into it. */
static void writes_text(const dot_ctx *c, const dg_node *n, int white) {
    const dg_op_def *op = dg_node_op(n);
    if (!op || !op->writes) return;
    int hidden = 0;
    sbuf *b = c->b;
    sb_printf(b, "<BR/>%swrites ", SMALL_ON(white));
    for (int k = 0, shown = 0; k < dg_node_input_count(n) && k < 64; k++) {
        const dg_node *leaf = dg_node_input(n, k);
        if (!(op->writes >> k & 1)) continue;
        if (c->info[dg_node_id(leaf)].hidden_state) {
            hidden++;
            continue;
        }
        if (shown++) sb_puts(b, ", ");
        if (dg_node_name(leaf))
            html_text(b, dg_node_name(leaf), 40);
        else
            sb_printf(b, "#%d", dg_node_id(leaf));
    }
    if (hidden) sb_printf(b, " + %d state tensor%s", hidden, hidden == 1 ? "" : "s");
    sb_puts(b, "</FONT>");
}

/* One node statement: shape and colours say what the node is, the label what it holds. */
static void emit_node(dot_ctx *c, const dg_node *n) {
    sbuf *b = c->b;
    const dg_dot_options *o = c->o;
    const ninfo *in = &c->info[dg_node_id(n)];
    dg_node_kind kind = dg_node_kind_of(n);
    int pass = dg_node_backward_pass(n);
    int is_grad = dg_node_grad_of(n) != NULL && pass > 0;
    int is_loss = o->loss == n;
    int small = o->small_consts && kind == DG_CONST && !is_loss && !is_grad;
    const char *shape = "box", *style = "filled,rounded", *fill = "#FFFFFF", *line = "#495057";
    double pen = 1.0;
    char heat[8];
    int white = 0;

    switch (kind) {
    case DG_INPUT: shape = "ellipse", style = "filled", fill = "#DBEAFE", line = "#1D4ED8"; break;
    case DG_PARAM:
        shape = "box", style = "filled", fill = "#D3F9D8", line = "#2B8A3E", pen = 2;
        break;
    case DG_CONST: shape = "box", fill = "#F1F3F5", line = "#ADB5BD"; break;
    case DG_STATE: shape = "cylinder", style = "filled", fill = "#EDE9FE", line = "#6D28D9"; break;
    case DG_OP_NODE: break;
    }
    if (pass > 0) {
        fill = is_grad ? "#FFD8A8" : "#FFF4E6";
        line = is_grad ? "#D9480F" : "#F08C00";
        if (is_grad) pen = 2;
        if (kind == DG_CONST) fill = "#FFF4E6", line = "#F08C00";
    }
    if (in->update && kind == DG_OP_NODE) fill = "#EBFBEE", line = "#2F9E44";
    if (is_loss)
        shape = "doubleoctagon", style = "filled", fill = "#FFE066", line = "#E67700", pen = 2;
    if (o->grad_heat && pass == 0 && !is_loss) {
        if (!in->has_gnorm)
            fill = "#FFFFFF";
        else if (in->gnorm == 0)
            fill = HEAT_ZERO;
        else if (isfinite(in->gnorm)) {
            white = heat_colour_t(heat_t(o, in->gnorm), heat);
            fill = heat;
        }
    }
    int bad = o->mark_nonfinite && (in->nan || in->inf || (in->has_gnorm && !isfinite(in->gnorm)));
    if (bad) fill = NONFINITE_FILL, line = NONFINITE_LINE, pen = 3, white = 1;

    sb_printf(b, "  n%d [shape=%s, style=\"%s\", fillcolor=\"%s\", color=\"%s\", penwidth=%.1f",
              dg_node_id(n), shape, style, fill, line, pen);
    if (white) sb_puts(b, ", fontcolor=\"#FFFFFF\"");
    if (small) sb_puts(b, ", fontsize=8, height=0.2, margin=\"0.04,0.02\"");
    sb_puts(b, ", label=<");
    const char *name = short_name(c, n);
    if (small) {
        if (name)
            html_text(b, name, 40);
        else if (dg_node_has_value(n) && dg_node_numel(n) >= 1 && all_equal(n))
            sb_printf(b, "%g", dg_node_data(n)[0]);
        else
            sb_puts(b, "const");
        sb_puts(b, " ");
        shape_text(b, n);
    } else {
        if (is_grad) {
            sb_puts(b, "<B>&#8711; ");
            target_text(b, in->names >= 0 ? dg_graph_node(c->g, in->names) : dg_node_grad_of(n), 0);
            sb_printf(b, "</B><BR/>%s%s &#183; ", SMALL_ON(white), dg_node_op_name(n));
        } else {
            const char *word = kind_word(n);
            sb_puts(b, "<B>");
            html_text(b, word ? word : dg_node_op_name(n), 40);
            sb_puts(b, "</B>");
            if (name) {
                sb_puts(b, "<BR/>");
                html_text(b, name, 48);
            }
            sb_printf(b, "<BR/>%s", SMALL_ON(white));
        }
        shape_text(b, n);
        sb_printf(b, " &#183; #%d</FONT>", dg_node_id(n));
        writes_text(c, n, white);
    }
    annotations(c, in, white);
    sb_puts(b, ">];\n");
}

/* ---- clusters ---- */

static int in_scope(const char *scope, const char *prefix, size_t k) {
    return scope && strncmp(scope, prefix, k) == 0 && (scope[k] == 0 || scope[k] == '/');
}

/* Clusters nest at most this deep; deeper scopes (a name may hold many '/') are drawn in
 * the deepest cluster, so every node is still drawn exactly once. */
#define MAX_CLUSTER_DEPTH 24

static void emit_step_boxes(dot_ctx *c, int pass, const char *path);

/* Emits the shown nodes of `pass` whose scope is exactly `path` (NULL: no scope), then one
 * nested cluster per child scope of `path`, children in order of first appearance. */
static void emit_scope(dot_ctx *c, int pass, const char *path, int depth) {
    const dg_graph *g = c->g;
    int n = dg_graph_node_count(g);
    size_t k = path ? strlen(path) : 0;
    int last = depth >= MAX_CLUSTER_DEPTH;
    for (int i = 0; i < n; i++) {
        const dg_node *x = dg_graph_node(g, i);
        if (!c->info[i].shown || c->info[i].update || dg_node_backward_pass(x) != pass) continue;
        if (c->info[i].box >= 0) continue; /* drawn as part of a collapsed run of steps */
        const char *s = c->o->cluster_scopes ? dg_node_scope(x) : NULL;
        if ((!path && !s) || (path && s && (last ? in_scope(s, path, k) : !strcmp(s, path))))
            emit_node(c, x);
    }
    emit_step_boxes(c, pass, c->o->cluster_scopes ? path : NULL);
    if (!c->o->cluster_scopes || last) return;
    /* children: the next path component after `path/` of each node's scope */
    const char **seen = NULL;
    size_t *seen_len = NULL;
    int n_seen = 0;
    for (int i = 0; i < n; i++) {
        const dg_node *x = dg_graph_node(g, i);
        const char *s = dg_node_scope(x);
        if (!c->info[i].shown || c->info[i].update || dg_node_backward_pass(x) != pass || !s ||
            c->info[i].box >= 0)
            continue;
        if (path && !(in_scope(s, path, k) && s[k] == '/')) continue;
        const char *start = path ? s + k + 1 : s;
        const char *slash = strchr(start, '/');
        size_t len = (size_t)((slash ? slash : start + strlen(start)) - s);
        int dup = 0;
        for (int j = 0; j < n_seen && !dup; j++)
            dup = seen_len[j] == len && strncmp(seen[j], s, len) == 0;
        if (dup) continue;
        const char **ns = realloc(seen, (size_t)(n_seen + 1) * sizeof *ns);
        if (ns) seen = ns;
        size_t *nl = ns ? realloc(seen_len, (size_t)(n_seen + 1) * sizeof *nl) : NULL;
        if (!ns || !nl) {
            c->b->oom = 1;
            break;
        }
        seen_len = nl;
        seen[n_seen] = s;
        seen_len[n_seen++] = len;
    }
    for (int j = 0; j < n_seen && !c->b->oom; j++) {
        char *child = malloc(seen_len[j] + 1);
        if (!child) {
            c->b->oom = 1;
            break;
        }
        memcpy(child, seen[j], seen_len[j]);
        child[seen_len[j]] = 0;
        const char *label = path ? child + k + 1 : child;
        sb_printf(c->b,
                  " subgraph cluster_%d {\n  style=\"rounded,filled\"; fillcolor=\"%s\"; "
                  "color=\"#868E96\"; fontsize=11; label=<<B>",
                  c->cluster_id++, pass ? "#FFF9F0" : (depth % 2 ? "#F8F9FA" : "#F1F3F5"));
        html_text(c->b, label, 60);
        sb_puts(c->b, "</B>>;\n");
        emit_scope(c, pass, child, depth + 1);
        sb_puts(c->b, " }\n");
        free(child);
    }
    free(seen);
    free(seen_len);
}

/* ---- collapsed layers ---- */

/* The layer a node belongs to when collapsing: its own top-level scope; for an unscoped
 * node built by a backward pass, the layer of the value it is the gradient of, or else of
 * the first gradient-pass input that has one (a vector-Jacobian product belongs to the
 * layer whose gradient flows into it). Returns a box index or -1. */
static int find_box(dot_ctx *c, const char *name, size_t len, int pass) {
    for (int i = 0; i < c->n_boxes; i++)
        if (c->boxes[i].pass == pass && strlen(c->boxes[i].name) == len &&
            strncmp(c->boxes[i].name, name, len) == 0)
            return i;
    box *nb = realloc(c->boxes, (size_t)(c->n_boxes + 1) * sizeof *nb);
    if (!nb) return c->b->oom = 1, -1;
    c->boxes = nb;
    box *bx = &c->boxes[c->n_boxes];
    memset(bx, 0, sizeof *bx);
    bx->pass = pass;
    bx->name = malloc(len + 1);
    if (!bx->name) return c->b->oom = 1, -1;
    memcpy(bx->name, name, len);
    bx->name[len] = 0;
    return c->n_boxes++;
}

static void assign_boxes(dot_ctx *c) {
    const dg_graph *g = c->g;
    int n = dg_graph_node_count(g);
    for (int i = 0; i < n && !c->b->oom; i++) {
        const dg_node *x = dg_graph_node(g, i);
        ninfo *in = &c->info[i];
        in->box = -1;
        if (!in->shown || in->update) continue;
        int pass = dg_node_backward_pass(x);
        const char *s = dg_node_scope(x);
        const char *from = NULL; /* top-level layer name */
        size_t len = 0;
        if (s) {
            from = s;
            const char *slash = strchr(s, '/');
            len = slash ? (size_t)(slash - s) : strlen(s);
        } else if (pass > 0) {
            int src = -1;
            const dg_node *t = dg_node_grad_of(x);
            if (t && c->info[dg_node_id(t)].box >= 0) src = c->info[dg_node_id(t)].box;
            for (int k = 0; src < 0 && k < dg_node_input_count(x); k++) {
                const dg_node *p = dg_node_input(x, k);
                if (dg_node_backward_pass(p) > 0 && c->info[dg_node_id(p)].box >= 0)
                    src = c->info[dg_node_id(p)].box;
            }
            if (src >= 0) from = c->boxes[src].name, len = strlen(from);
        }
        if (!from) continue;
        in->box = find_box(c, from, len, pass);
        if (in->box < 0) continue;
        box *bx = &c->boxes[in->box];
        bx->count++;
        bx->last = i;
        bx->nan += in->nan;
        bx->inf += in->inf;
        if (dg_node_kind_of(x) == DG_PARAM) {
            bx->n_params++;
            if (in->has_gnorm) bx->has_gnorm = 1, bx->gnorm2 += in->gnorm * in->gnorm;
        }
    }
}

static void emit_box(dot_ctx *c, int k) {
    const box *bx = &c->boxes[k];
    const dg_dot_options *o = c->o;
    sbuf *b = c->b;
    const char *fill = bx->pass ? "#FFD8A8" : "#E7F5FF", *line = bx->pass ? "#D9480F" : "#1864AB";
    char heat[8];
    int white = 0;
    double gn = sqrt(bx->gnorm2);
    if (o->grad_heat && bx->pass == 0) {
        if (!bx->has_gnorm)
            fill = "#FFFFFF";
        else if (gn == 0)
            fill = HEAT_ZERO;
        else if (isfinite(gn))
            white = heat_colour_t(heat_t(o, gn), heat), fill = heat;
    }
    int bad = o->mark_nonfinite && (bx->nan || bx->inf || (bx->has_gnorm && !isfinite(gn)));
    if (bad) fill = NONFINITE_FILL, line = NONFINITE_LINE, white = 1;
    sb_printf(b,
              "  b%d [shape=box3d, margin=\"0.15,0.08\", style=\"filled\", fillcolor=\"%s\", "
              "color=\"%s\", "
              "penwidth=2%s, label=<<B>%s",
              k, fill, line, white ? ", fontcolor=\"#FFFFFF\"" : "", bx->pass ? "&#8711; " : "");
    html_text(b, bx->name, 60);
    sb_printf(b, "</B><BR/>%s%d nodes", SMALL_ON(white), bx->count);
    if (bx->pass == 0) {
        /* the layer's parameters and output shape */
        const dg_graph *g = c->g;
        for (int i = 0; i < dg_graph_node_count(g); i++) {
            const dg_node *x = dg_graph_node(g, i);
            if (c->info[i].box != k || dg_node_kind_of(x) != DG_PARAM) continue;
            sb_puts(b, "<BR/>");
            const char *name = dg_node_name(x);
            size_t l = strlen(bx->name);
            if (name && strncmp(name, bx->name, l) == 0 && name[l] == '/') name += l + 1;
            if (name)
                html_text(b, name, 40);
            else
                sb_printf(b, "param #%d", i);
            sb_puts(b, " ");
            shape_text(b, x);
        }
        sb_puts(b, "<BR/>out ");
        shape_text(b, dg_graph_node(g, bx->last));
        if (o->grad_norms && bx->has_gnorm)
            sb_printf(b, "<BR/>&#8214;&#8711;params&#8214; %.2e", gn);
    }
    sb_puts(b, "</FONT>");
    if (o->mark_nonfinite && (bx->nan || bx->inf))
        sb_printf(b, "<BR/><B>NaN &#215;%lld  Inf &#215;%lld</B>", (long long)bx->nan,
                  (long long)bx->inf);
    sb_puts(b, ">];\n");
}

/* ---- collapsed steps of unrolled cells ---- */

/* Step K of a cell unrolled by dg_unroll lives in a scope with the component "t=K" (K in
 * decimal). Returns K (the outermost such component) and sets *prefix to the length of the
 * scope before "/t=K" (0 when it is the first component), or returns -1. */
static long step_of(const char *scope, size_t *prefix) {
    for (const char *p = scope; p && *p;) {
        size_t len = strcspn(p, "/");
        if (len > 2 && p[0] == 't' && p[1] == '=' && strspn(p + 2, "0123456789") == len - 2 &&
            len < 12) {
            *prefix = p == scope ? 0 : (size_t)(p - scope - 1);
            return strtol(p + 2, NULL, 10);
        }
        p += len + (p[len] == '/');
    }
    return -1;
}

static void add_to_box(dot_ctx *c, int i) {
    box *bx = &c->boxes[c->info[i].box];
    bx->count++;
    if (i > bx->last) bx->last = i;
    bx->nan += c->info[i].nan;
    bx->inf += c->info[i].inf;
}

typedef struct step_group {
    const char *scope; /* a scope of the group's steps; the prefix is its first len bytes */
    size_t len;
    long lo, hi; /* first and last step drawn */
} step_group;

/* With collapse_steps: the forward nodes of every step of an unrolled cell but the first and
 * the last go into one box per cell ("lstm1: t=1 ... t=62"), and the gradient nodes made for
 * them into one box per backward pass, so a net unrolled over any number of steps is drawn
 * as the first step, a box, and the last step. */
static void assign_step_boxes(dot_ctx *c) {
    const dg_graph *g = c->g;
    int n = dg_graph_node_count(g), n_groups = 0;
    step_group *groups = calloc((size_t)(n > 0 ? n : 1), sizeof *groups);
    if (!groups) {
        c->b->oom = 1;
        return;
    }
    for (int i = 0; i < n; i++) {
        const dg_node *x = dg_graph_node(g, i);
        size_t len;
        long k = c->info[i].shown && dg_node_backward_pass(x) == 0 ? step_of(dg_node_scope(x), &len)
                                                                   : -1;
        if (k < 0) continue;
        int j = 0;
        while (j < n_groups &&
               !(groups[j].len == len && !strncmp(groups[j].scope, dg_node_scope(x), len)))
            j++;
        if (j == n_groups) groups[n_groups++] = (step_group){dg_node_scope(x), len, k, k};
        if (k < groups[j].lo) groups[j].lo = k;
        if (k > groups[j].hi) groups[j].hi = k;
    }
    for (int i = 0; i < n && !c->b->oom; i++) {
        const dg_node *x = dg_graph_node(g, i);
        ninfo *in = &c->info[i];
        if (!in->shown || in->update) continue;
        int pass = dg_node_backward_pass(x), src = -1;
        if (pass > 0) {
            /* the gradient of a collapsed value, or a product made from such gradients */
            const dg_node *t = dg_node_grad_of(x);
            if (t)
                src = c->info[dg_node_id(t)].box;
            else
                for (int k = 0; src < 0 && k < dg_node_input_count(x); k++) {
                    const dg_node *p = dg_node_input(x, k);
                    if (dg_node_backward_pass(p) > 0) src = c->info[dg_node_id(p)].box;
                }
            if (src >= 0) {
                const char *label = c->boxes[src].name; /* owned by the box, not moved */
                in->box = find_box(c, label, strlen(label), pass);
            }
        } else {
            size_t len;
            long k = step_of(dg_node_scope(x), &len);
            int j = 0;
            while (k >= 0 && j < n_groups &&
                   !(groups[j].len == len && !strncmp(groups[j].scope, dg_node_scope(x), len)))
                j++;
            if (k < 0 || j == n_groups || k <= groups[j].lo || k >= groups[j].hi) continue;
            char label[300];
            snprintf(label, sizeof label, "%.*s%st=%ld \xE2\x80\xA6 t=%ld",
                     (int)(len < 200 ? len : 200), dg_node_scope(x), len ? ": " : "",
                     groups[j].lo + 1, groups[j].hi - 1);
            in->box = find_box(c, label, strlen(label), 0);
            if (in->box >= 0 && !c->boxes[in->box].scope && len) {
                c->boxes[in->box].scope = malloc(len + 1);
                if (!c->boxes[in->box].scope) {
                    c->b->oom = 1;
                    break;
                }
                memcpy(c->boxes[in->box].scope, dg_node_scope(x), len);
                c->boxes[in->box].scope[len] = 0;
            }
        }
        if (in->box >= 0) add_to_box(c, i);
    }
    /* Backward nodes that are no value's gradient (a slice of a stacked gradient, say) join
     * the box of their consumers when these all lie in one box: newest first, so that a
     * node's consumers are placed before it. cons[i]: -2 none yet, -1 several, else a box. */
    int *cons = malloc(sizeof *cons * (size_t)(n > 0 ? n : 1));
    for (int i = 0; cons && i < n; i++) cons[i] = -2;
    for (int i = n - 1; cons && i >= 0 && !c->b->oom; i--) {
        const dg_node *x = dg_graph_node(g, i);
        ninfo *in = &c->info[i];
        if (!in->shown) continue;
        if (in->box < 0 && cons[i] >= 0 && dg_node_backward_pass(x) > 0 && !dg_node_grad_of(x) &&
            c->boxes[cons[i]].pass == dg_node_backward_pass(x)) {
            in->box = cons[i];
            add_to_box(c, i);
        }
        for (int k = 0; k < dg_node_input_count(x); k++) {
            int p = dg_node_id(dg_node_input(x, k));
            cons[p] = cons[p] == -2 || cons[p] == in->box ? in->box : -1;
        }
    }
    if (!cons) c->b->oom = 1;
    free(cons);
    free(groups);
}

/* The step boxes of `pass` that belong in the cluster of scope `path` (NULL: outside any). */
static void emit_step_boxes(dot_ctx *c, int pass, const char *path) {
    if (c->o->collapse_scopes) return; /* whole layers are boxes already */
    for (int k = 0; k < c->n_boxes; k++) {
        const box *bx = &c->boxes[k];
        const char *scope = c->o->cluster_scopes && pass == 0 ? bx->scope : NULL;
        if (bx->pass == pass && ((!path && !scope) || (path && scope && !strcmp(path, scope))))
            emit_box(c, k);
    }
}

/* ---- edges ---- */

enum { EDGE_FORWARD, EDGE_BACKWARD, EDGE_SAVED, EDGE_GRAD };

static void emit_edge_attrs(sbuf *b, int type) {
    switch (type) {
    case EDGE_FORWARD: sb_puts(b, " [color=\"#495057\"]"); break;
    case EDGE_BACKWARD: sb_puts(b, " [dir=back, color=\"#E8590C\", penwidth=1.5]"); break;
    case EDGE_SAVED: sb_puts(b, " [color=\"#ADB5BD\", arrowsize=0.5, constraint=false]"); break;
    case EDGE_GRAD:
        sb_puts(b, " [style=dashed, color=\"#C92A2A\", penwidth=1.3, arrowhead=vee, "
                   "minlen=0]");
        break;
    }
}

static int edge_type(const dg_node *from, const dg_node *to) {
    if (dg_node_backward_pass(to) == 0) return EDGE_FORWARD;
    return dg_node_backward_pass(from) > 0 ? EDGE_BACKWARD : EDGE_SAVED;
}

/* An endpoint as drawn: "n<id>" or, when collapsing, "b<box>". */
static void endpoint(const dot_ctx *c, const dg_node *x, char *out, size_t size) {
    int bx = c->info[dg_node_id(x)].box; /* -1 unless collapsed (layers or steps) */
    if (bx >= 0)
        snprintf(out, size, "b%d", bx);
    else
        snprintf(out, size, "n%d", dg_node_id(x));
}

typedef struct edge_rec {
    char from[24], to[24];
    int type;
} edge_rec;

/* Gradient flow (backward to backward) is written consumer -> producer with dir=back: the
 * arrow still points at the consumer, but Graphviz ranks the gradient chain upwards, so the
 * backward pass mirrors the forward one level by level and each gradient lands beside its
 * value. Saved forward values feeding backward ops do not constrain the layout. */
static void emit_edge(sbuf *b, const edge_rec *e) {
    if (e->type == EDGE_BACKWARD)
        sb_printf(b, "  %s -> %s", e->to, e->from);
    else
        sb_printf(b, "  %s -> %s", e->from, e->to);
    emit_edge_attrs(b, e->type);
    sb_puts(b, ";\n");
}

static int edge_cmp(const void *a, const void *b) {
    const edge_rec *x = a, *y = b;
    int r = strcmp(x->from, y->from);
    if (!r) r = strcmp(x->to, y->to);
    if (!r) r = x->type - y->type;
    return r;
}

/* Every input edge between shown nodes; then dashed edges from each shown value to its
 * shown gradient: first to dg_grad(x) (one gradient node can be the gradient of several
 * values, e.g. both inputs of an add), then from the value a gradient node of an earlier
 * pass was made for (dg_node_grad_of). Collapsed mode merges parallel edges and drops
 * those inside a box. */
static void emit_edges(dot_ctx *c) {
    const dg_graph *g = c->g;
    int n = dg_graph_node_count(g);
    edge_rec *list = NULL;
    size_t len = 0, cap = 0;
    for (int phase = 0; phase < 3; phase++) {
        for (int i = 0; i < n; i++) {
            const dg_node *x = dg_graph_node(g, i);
            if (!c->info[i].shown) continue;
            int m = phase ? 1 : dg_node_input_count(x);
            for (int k = 0; k < m; k++) {
                const dg_node *from = x, *to = x;
                if (phase == 0)
                    from = dg_node_input(x, k);
                else if (phase == 1)
                    to = dg_grad(x);
                else {
                    from = dg_node_grad_of(x);
                    if (dg_node_backward_pass(x) == 0 || dg_grad(from) == x) continue;
                }
                if (!from || !to || from == to || !c->info[dg_node_id(from)].shown ||
                    !c->info[dg_node_id(to)].shown)
                    continue;
                edge_rec e;
                endpoint(c, from, e.from, sizeof e.from);
                endpoint(c, to, e.to, sizeof e.to);
                e.type = phase ? EDGE_GRAD : edge_type(from, to);
                if (!c->n_boxes) {
                    emit_edge(c->b, &e);
                    continue;
                }
                if (strcmp(e.from, e.to) == 0) continue;
                if (len == cap) {
                    cap = cap ? 2 * cap : 256;
                    edge_rec *nl = realloc(list, cap * sizeof *nl);
                    if (!nl) {
                        c->b->oom = 1;
                        free(list);
                        return;
                    }
                    list = nl;
                }
                list[len++] = e;
            }
        }
    }
    if (len) qsort(list, len, sizeof *list, edge_cmp);
    for (size_t i = 0; i < len; i++) {
        if (i && edge_cmp(&list[i], &list[i - 1]) == 0) continue;
        emit_edge(c->b, &list[i]);
    }
    free(list);
}

/* ---- legend ---- */

/* Legend entries stand in one row (same rank, ordered by invisible edges), so they add one
 * rank to the drawing instead of one rank each, which the graph's own ranks would space
 * far apart. */
static void legend_item(sbuf *b, int *k, const char *attrs, const char *label) {
    sb_printf(b, "  legend_%d [%s, label=<%s>];\n", *k, attrs, label);
    if (*k) sb_printf(b, "  legend_%d -> legend_%d [style=invis];\n", *k - 1, *k);
    (*k)++;
}

/* A column of sample nodes (ids legend_*, joined only by invisible edges) and the heat
 * colour bar as one HTML table. */
static void emit_legend(dot_ctx *c, const int *kinds_seen, int any_grad, int any_bw_op,
                        int any_bad) {
    sbuf *b = c->b;
    const dg_dot_options *o = c->o;
    int k = 0;
    sb_puts(b, " subgraph cluster_legend {\n  label=<<B>legend</B>>; fontsize=11; "
               "style=\"rounded\"; color=\"#ADB5BD\";\n  node [fontsize=9];\n");
    if (o->collapse_scopes)
        legend_item(b, &k,
                    "shape=box3d, style=filled, fillcolor=\"#E7F5FF\", color=\"#1864AB\", "
                    "penwidth=2",
                    "layer<BR/>(collapsed)");
    if (kinds_seen[DG_INPUT])
        legend_item(b, &k, "shape=ellipse, style=filled, fillcolor=\"#DBEAFE\", color=\"#1D4ED8\"",
                    "input");
    if (kinds_seen[DG_PARAM])
        legend_item(b, &k,
                    "shape=box, style=filled, fillcolor=\"#D3F9D8\", color=\"#2B8A3E\", "
                    "penwidth=2",
                    "parameter");
    if (kinds_seen[DG_CONST])
        legend_item(b, &k,
                    "shape=box, style=\"filled,rounded\", fillcolor=\"#F1F3F5\", "
                    "color=\"#ADB5BD\", fontsize=8",
                    "constant");
    if (kinds_seen[DG_STATE])
        legend_item(b, &k, "shape=cylinder, style=filled, fillcolor=\"#EDE9FE\", color=\"#6D28D9\"",
                    "state");
    if (kinds_seen[DG_OP_NODE])
        legend_item(b, &k, "shape=box, style=\"filled,rounded\", fillcolor=\"#FFFFFF\"",
                    "op (forward)");
    if (c->any_update)
        legend_item(b, &k,
                    "shape=box, style=\"filled,rounded\", fillcolor=\"#EBFBEE\", "
                    "color=\"#2F9E44\"",
                    "update<BR/><FONT POINT-SIZE=\"8\">writes a parameter<BR/>in place</FONT>");
    if (o->loss && c->info[dg_node_id(o->loss)].shown)
        legend_item(b, &k,
                    "shape=doubleoctagon, style=filled, fillcolor=\"#FFE066\", "
                    "color=\"#E67700\", penwidth=2",
                    "loss");
    if (any_grad)
        legend_item(b, &k,
                    "shape=box, style=\"filled,rounded\", fillcolor=\"#FFD8A8\", "
                    "color=\"#D9480F\", penwidth=2",
                    "&#8711; x: gradient of x<BR/>"
                    "<FONT POINT-SIZE=\"8\">dashed red edge: x &#8594; &#8711; x</FONT>");
    if (any_bw_op)
        legend_item(b, &k,
                    "shape=box, style=\"filled,rounded\", fillcolor=\"#FFF4E6\", "
                    "color=\"#F08C00\"",
                    "backward op<BR/><FONT POINT-SIZE=\"8\">orange edge: gradient flow;<BR/>"
                    "grey edge: saved forward value</FONT>");
    if (any_bad)
        legend_item(b, &k,
                    "shape=box, style=filled, fillcolor=\"" NONFINITE_FILL
                    "\", color=\"" NONFINITE_LINE "\", penwidth=3, fontcolor=\"#FFFFFF\"",
                    "holds NaN/Inf");
    if (o->grad_heat) {
        /* the colour bar: one cell per decade (at most 12 labelled cells) */
        double lo = o->heat_log10_min, hi = o->heat_log10_max;
        int steps = (int)ceil(hi - lo);
        if (steps > 11) steps = 11;
        if (steps < 1) steps = 1;
        if (k) sb_printf(b, "  legend_%d -> legend_%d [style=invis];\n", k - 1, k);
        sb_printf(b,
                  "  legend_%d [shape=plain, label=<<TABLE BORDER=\"0\" CELLBORDER=\"1\" "
                  "CELLSPACING=\"0\" CELLPADDING=\"3\"><TR><TD COLSPAN=\"%d\"><B>&#8214;&#8711;"
                  "&#8214;</B> gradient norm (log scale)</TD></TR><TR>",
                  k++, steps + 3);
        sb_puts(b, "<TD BGCOLOR=\"#FFFFFF\"><FONT POINT-SIZE=\"8\">none</FONT></TD>");
        sb_puts(b, "<TD BGCOLOR=\"" HEAT_ZERO "\"><FONT POINT-SIZE=\"8\">0</FONT></TD>");
        for (int i = 0; i <= steps; i++) {
            char col[8];
            double e = lo + (hi - lo) * i / steps;
            int white = heat_colour_t((double)i / steps, col);
            sb_printf(b, "<TD BGCOLOR=\"%s\"><FONT POINT-SIZE=\"8\"%s>1e%+.0f</FONT></TD>", col,
                      white ? " COLOR=\"#FFFFFF\"" : "", e);
        }
        sb_puts(b, "</TR><TR><TD COLSPAN=\"2\"></TD><TD COLSPAN=\"");
        sb_printf(b, "%d\" ALIGN=\"LEFT\"><FONT POINT-SIZE=\"8\">&#8592; vanishing</FONT></TD>",
                  (steps + 1) / 2);
        sb_printf(b,
                  "<TD COLSPAN=\"%d\" ALIGN=\"RIGHT\"><FONT POINT-SIZE=\"8\">exploding "
                  "&#8594;</FONT></TD></TR></TABLE>>];\n",
                  steps + 1 - (steps + 1) / 2);
    }
    sb_puts(b, "  { rank=same;");
    for (int i = 0; i < k; i++) sb_printf(b, " legend_%d;", i);
    sb_puts(b, " }\n }\n");
}

/* ---- the update part ---- */

/* Marks the update part of the graph: ops built by a backward pass that write leaves in
 * place (optimizer updates, the step counter), what depends on them (the training step),
 * the state they write, and the nodes of a backward pass that feed only the update (the
 * learning rate, the clipping norm). Parameters stay with the forward pass. Unless
 * show_optimizer_state is set, the state leaves are not drawn: each update's label counts
 * them. Returns 0, or -1 when out of memory. */
static int mark_updates(dot_ctx *c) {
    const dg_graph *g = c->g;
    int n = dg_graph_node_count(g);
    int *total = calloc((size_t)(n ? n : 1), sizeof *total);
    int *in_update = calloc((size_t)(n ? n : 1), sizeof *in_update);
    if (!total || !in_update) {
        free(total);
        free(in_update);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const dg_node *x = dg_graph_node(g, i);
        for (int k = 0; k < dg_node_input_count(x); k++) total[dg_node_id(dg_node_input(x, k))]++;
    }
    for (int i = 0; i < n; i++) {
        const dg_node *x = dg_graph_node(g, i);
        const dg_op_def *op = dg_node_op(x);
        if (!op || dg_node_backward_pass(x) == 0) continue;
        int u = op->writes != 0;
        for (int k = 0; !u && k < dg_node_input_count(x); k++) {
            const dg_node *in = dg_node_input(x, k);
            u = dg_node_op(in) && c->info[dg_node_id(in)].update;
        }
        if (!u) continue;
        c->info[i].update = 1;
        for (int k = 0; k < dg_node_input_count(x) && k < 64; k++) {
            const dg_node *leaf = dg_node_input(x, k);
            if ((op->writes >> k & 1) && dg_node_backward_pass(leaf) > 0 &&
                dg_node_kind_of(leaf) == DG_STATE)
                c->info[dg_node_id(leaf)].update = 1;
        }
    }
    /* consumers have larger ids: going down, a node's consumers are all decided */
    for (int i = n - 1; i >= 0; i--) {
        const dg_node *x = dg_graph_node(g, i);
        ninfo *in = &c->info[i];
        if (!in->update && dg_node_backward_pass(x) > 0 && !dg_node_grad_of(x) && total[i] > 0 &&
            in_update[i] == total[i])
            in->update = 1;
        if (!in->update) continue;
        for (int k = 0; k < dg_node_input_count(x); k++)
            in_update[dg_node_id(dg_node_input(x, k))]++;
        if (!in->shown) continue;
        c->any_update = 1;
        if (!c->o->show_optimizer_state && dg_node_kind_of(x) == DG_STATE)
            in->hidden_state = 1, in->shown = 0;
    }
    free(total);
    free(in_update);
    return 0;
}

/* ---- the whole graph ---- */

static int rankdir_ok(const char *r) {
    return !strcmp(r, "TB") || !strcmp(r, "LR") || !strcmp(r, "BT") || !strcmp(r, "RL");
}

static void emit_pass(dot_ctx *c, int pass) {
    if (!c->o->collapse_scopes) {
        emit_scope(c, pass, NULL, 0);
        return;
    }
    const dg_graph *g = c->g;
    for (int i = 0; i < dg_graph_node_count(g); i++)
        if (c->info[i].shown && !c->info[i].update && c->info[i].box < 0 &&
            dg_node_backward_pass(dg_graph_node(g, i)) == pass)
            emit_node(c, dg_graph_node(g, i));
    for (int k = 0; k < c->n_boxes; k++)
        if (c->boxes[k].pass == pass) emit_box(c, k);
}

char *dg_dot_string(const dg_graph *g, const dg_dot_options *opts) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "dot: graph is NULL"), NULL;
    dg_dot_options o = opts ? *opts : dg_dot_defaults();
    const char *rankdir = o.rankdir ? o.rankdir : "TB";
    if (!rankdir_ok(rankdir))
        return dg_set_error(err_graph(g), DG_ERR_ARG,
                            "dot: rankdir must be \"TB\", \"LR\", \"BT\" or \"RL\", got \"%.32s\"",
                            rankdir),
               NULL;
    if (o.grad_heat && !(o.heat_log10_min < o.heat_log10_max))
        return dg_set_error(err_graph(g), DG_ERR_ARG,
                            "dot: heat scale needs heat_log10_min < heat_log10_max, got %g and %g",
                            o.heat_log10_min, o.heat_log10_max),
               NULL;
    if (o.loss && dg_node_graph(o.loss) != g)
        return dg_set_error(err_graph(g), DG_ERR_GRAPH,
                            "dot: the loss node belongs to another graph"),
               NULL;

    int n = dg_graph_node_count(g);
    sbuf b = {0};
    dot_ctx c = {g, &o, &b, NULL, NULL, 0, 0, 0, 0};
    c.info = calloc((size_t)(n ? n : 1), sizeof *c.info);
    if (!c.info) return dg_set_error(err_graph(g), DG_ERR_NOMEM, "dot: out of memory"), NULL;

    int kinds_seen[5] = {0}, any_grad = 0, any_bw_op = 0, any_bad = 0;
    for (int i = 0; i < n; i++) c.info[i].names = -1;
    for (int i = 0; i < n; i++) {
        const dg_node *x = dg_graph_node(g, i);
        ninfo *in = &c.info[i];
        int pass = dg_node_backward_pass(x);
        in->shown = pass == 0 ||
                    (o.show_backward && (o.max_backward_pass <= 0 || pass <= o.max_backward_pass));
        in->box = -1;
        /* A gradient node can be the gradient of several values (an add passes dy through to
         * both inputs). Its label names the latest such value, the one it was made for as
         * the gradient flows back, or a named one (a parameter) when there is one. */
        const dg_node *gr = dg_grad(x);
        if (gr && gr != x) {
            ninfo *gi = &c.info[dg_node_id(gr)];
            if (gi->names < 0 || dg_node_name(x) || !dg_node_name(dg_graph_node(g, gi->names)))
                gi->names = i;
        }
        if (!in->shown) continue;
        if (pass > c.max_pass) c.max_pass = pass;
        if (!dg_node_has_value(x))
            in->no_value = dg_node_computed(x) ? 2 : 1;
        else if (o.annotate_values || o.mark_nonfinite)
            node_stats(x, in);
        if (pass == 0 && gr && dg_node_has_value(gr) &&
            (o.grad_norms || o.grad_heat || o.collapse_scopes))
            in->has_gnorm = 1, in->gnorm = l2_norm(gr);
        if (pass == 0)
            kinds_seen[dg_node_kind_of(x)] = 1;
        else if (dg_node_grad_of(x))
            any_grad = 1;
        else
            any_bw_op = 1;
        if (o.mark_nonfinite && (in->nan || in->inf || (in->has_gnorm && !isfinite(in->gnorm))))
            any_bad = 1;
    }
    if (mark_updates(&c) != 0) b.oom = 1;
    for (int i = 0; i < n; i++) /* drawn state of an update counts for the legend too */
        if (c.info[i].shown && dg_node_kind_of(dg_graph_node(g, i)) == DG_STATE)
            kinds_seen[DG_STATE] = 1;
    if (o.collapse_scopes)
        assign_boxes(&c);
    else if (o.collapse_steps)
        assign_step_boxes(&c);

    sb_printf(&b,
              "digraph dagrad {\n graph [rankdir=%s, fontname=\"Helvetica\", newrank=true, "
              "nodesep=0.25, ranksep=0.3, labelloc=t, fontsize=16",
              rankdir);
    if (o.title) {
        sb_puts(&b, ", label=<<B>");
        html_text(&b, o.title, 200);
        sb_puts(&b, "</B>>");
    }
    sb_puts(&b, "];\n node [fontname=\"Helvetica\", fontsize=10, margin=\"0.1,0.03\", "
                "height=0.3];\n edge [arrowsize=0.7];\n");
    if (o.legend) emit_legend(&c, kinds_seen, any_grad, any_bw_op, any_bad);
    for (int pass = 0; pass <= c.max_pass && !b.oom; pass++) {
        /* wrap each pass in its own cluster once there is more than the forward pass */
        int wrap = c.max_pass > 0;
        if (wrap && pass == 0)
            sb_printf(&b, " subgraph cluster_pass0 {\n  label=<<B>forward pass</B>>; "
                          "fontsize=13; style=\"rounded\"; color=\"#1864AB\"; penwidth=1.5;\n");
        else if (wrap)
            sb_printf(&b,
                      " subgraph cluster_pass%d {\n  label=<<B>backward pass %d</B>>; "
                      "fontsize=13; style=\"rounded,filled\"; fillcolor=\"#FFFAF3\"; "
                      "color=\"#D9480F\"; penwidth=1.5;\n",
                      pass, pass);
        emit_pass(&c, pass);
        if (wrap) sb_puts(&b, " }\n");
    }
    if (c.any_update && !b.oom) {
        sb_puts(&b, " subgraph cluster_update {\n  label=<<B>update</B>>; fontsize=13; "
                    "style=\"rounded,filled\"; fillcolor=\"#F4FCF5\"; color=\"#2F9E44\"; "
                    "penwidth=1.5;\n");
        for (int i = 0; i < n; i++)
            if (c.info[i].shown && c.info[i].update) emit_node(&c, dg_graph_node(g, i));
        sb_puts(&b, " }\n");
    }
    emit_edges(&c);
    sb_puts(&b, "}\n");

    for (int i = 0; i < c.n_boxes; i++) free(c.boxes[i].name), free(c.boxes[i].scope);
    free(c.boxes);
    free(c.info);
    if (b.oom) {
        free(b.p);
        return dg_set_error(err_graph(g), DG_ERR_NOMEM, "dot: out of memory building DOT text"),
               NULL;
    }
    return b.p;
}
