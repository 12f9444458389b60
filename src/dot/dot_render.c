/* Output side of the DOT export: writing the text of dg_dot_string to a stream or a file,
 * and rendering it to SVG/PNG through Graphviz's library (gvc) when the build found it
 * (DG_HAVE_GRAPHVIZ). Without Graphviz the library still builds and writes DOT; rendering
 * then reports DG_ERR_UNSUPPORTED with the command line to use instead. */
#include "dagrad/dot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DG_HAVE_GRAPHVIZ
#include <cgraph.h>
#include <gvc.h>
#endif

/* See dot.c: graphs are heap objects, so noting an error on a const one is well defined. */
static dg_graph *err_graph(const dg_graph *g) { return (dg_graph *)g; }

dg_status dg_dot_write_file(const dg_graph *g, FILE *out, const dg_dot_options *opts) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "dot_write_file: graph is NULL");
    if (!out) return dg_set_error(err_graph(g), DG_ERR_NULL, "dot_write_file: stream is NULL");
    char *text = dg_dot_string(g, opts);
    if (!text) return dg_graph_status(g);
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, out) == len && fflush(out) == 0;
    free(text);
    if (!ok)
        return dg_set_error(err_graph(g), DG_ERR_IO, "dot_write_file: write failed: %s",
                            strerror(errno));
    return DG_OK;
}

dg_status dg_dot_write(const dg_graph *g, const char *path, const dg_dot_options *opts) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "dot_write: graph is NULL");
    if (!path) return dg_set_error(err_graph(g), DG_ERR_NULL, "dot_write: path is NULL");
    /* build the text first so a bad option leaves no empty file behind */
    char *text = dg_dot_string(g, opts);
    if (!text) return dg_graph_status(g);
    FILE *f = fopen(path, "wb");
    if (!f) {
        dg_status s = dg_set_error(err_graph(g), DG_ERR_IO, "dot_write: cannot open \"%s\": %s",
                                   path, strerror(errno));
        free(text);
        return s;
    }
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    free(text);
    if (!ok) return dg_set_error(err_graph(g), DG_ERR_IO, "dot_write: writing \"%s\" failed", path);
    return DG_OK;
}

#ifdef DG_HAVE_GRAPHVIZ

int dg_dot_render_available(void) { return 1; }

/* Graphviz reports problems through a global callback; keep the last message for ours
 * instead of letting it print to stderr. Rendering is not meant to run on several threads
 * at once (Graphviz itself keeps global state). */
static char gv_message[256];
static int gv_error_sink(char *msg) {
    snprintf(gv_message, sizeof gv_message, "%s", msg);
    size_t n = strlen(gv_message);
    while (n && (gv_message[n - 1] == '\n' || gv_message[n - 1] == ' ')) gv_message[--n] = 0;
    return 0;
}

dg_status dg_dot_render(const dg_graph *g, const char *path, const char *format,
                        const dg_dot_options *opts) {
    if (!g) return dg_set_error(NULL, DG_ERR_NULL, "dot_render: graph is NULL");
    if (!path || !format)
        return dg_set_error(err_graph(g), DG_ERR_NULL, "dot_render: path or format is NULL");
    /* the text first, so bad options leave an existing file at `path` as it was */
    char *text = dg_dot_string(g, opts);
    if (!text) return dg_graph_status(g);
    /* Graphviz reports an unwritable output file but still returns success: check first */
    FILE *probe = fopen(path, "wb");
    if (!probe) {
        dg_status e = dg_set_error(err_graph(g), DG_ERR_IO, "dot_render: cannot open \"%s\": %s",
                                   path, strerror(errno));
        free(text);
        return e;
    }
    fclose(probe);
    dg_status s = DG_OK;
    gv_message[0] = 0;
    agusererrf prev = agseterrf(gv_error_sink);
    /* One context for the whole process, made before agmemread (it registers the HTML-label
     * parser) and never freed: Graphviz's pango text plugin caches a font name across
     * contexts, so freeing a context and making another reads freed memory (seen with
     * Graphviz 2.43 under ASan on a second render). */
    static GVC_t *gvc;
    if (!gvc) gvc = gvContext();
    Agraph_t *ag = gvc ? agmemread(text) : NULL;
    if (!gvc || !ag) {
        s = dg_set_error(err_graph(g), DG_ERR_FORMAT,
                         "dot_render: Graphviz could not read the "
                         "DOT text: %s",
                         gv_message[0] ? gv_message : "unknown error");
    } else if (gvLayout(gvc, ag, "dot") != 0) {
        s = dg_set_error(err_graph(g), DG_ERR_UNSUPPORTED,
                         "dot_render: Graphviz layout failed (is the dot layout plugin "
                         "installed?): %s",
                         gv_message[0] ? gv_message : "unknown error");
    } else {
        if (gvRenderFilename(gvc, ag, format, path) != 0)
            s = dg_set_error(err_graph(g), DG_ERR_ARG,
                             "dot_render: Graphviz could not write \"%s\" as \"%.16s\" (unknown "
                             "format or unwritable path): %s",
                             path, format, gv_message[0] ? gv_message : "unknown error");
        gvFreeLayout(gvc, ag);
    }
    if (ag) agclose(ag);
    agseterrf(prev);
    free(text);
    return s;
}

#else

int dg_dot_render_available(void) { return 0; }

dg_status dg_dot_render(const dg_graph *g, const char *path, const char *format,
                        const dg_dot_options *opts) {
    (void)opts;
    return dg_set_error(err_graph(g), DG_ERR_UNSUPPORTED,
                        "dot_render: this build has no Graphviz library (install libgraphviz-dev "
                        "and reconfigure); write DOT with dg_dot_write and run `dot -T%s "
                        "graph.dot -o %s`",
                        format ? format : "svg", path ? path : "graph.svg");
}

#endif
