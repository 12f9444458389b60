/* SVG line plots (see ex_plot.h). Ticks follow the usual "nice numbers" rule: a step of
 * 1, 2 or 5 times a power of ten giving about five intervals over the data's range. */
#include "ex_plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

ex_series *ex_panel_add(ex_panel *p, const char *label, const double *x, const double *y, int n) {
    if (p->nseries >= EX_PLOT_MAX_SERIES) return NULL;
    ex_series *s = &p->series[p->nseries++];
    memset(s, 0, sizeof *s);
    s->label = label;
    s->x = x;
    s->y = y;
    s->n = n;
    return s;
}

ex_band *ex_panel_band(ex_panel *p, double x0, double x1, const char *label) {
    if (p->nbands >= EX_PLOT_MAX_BANDS) return NULL;
    ex_band *b = &p->bands[p->nbands++];
    memset(b, 0, sizeof *b);
    b->x0 = x0;
    b->x1 = x1;
    b->label = label;
    return b;
}

#define BAND_COLOR "#efefef"

/* A step of 1, 2 or 5 x 10^k close to range / target_intervals. */
static double nice_step(double range, int target_intervals) {
    double raw = range / target_intervals;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * mag;
}

/* Writes text with the XML special characters escaped. */
static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void data_range(const ex_panel *p, int axis, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int s = 0; s < p->nseries; s++) {
        const double *v = axis == 0 ? p->series[s].x : p->series[s].y;
        for (int i = 0; i < p->series[s].n; i++) {
            if (!isfinite(v[i])) continue;
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
    }
    if (!(*lo <= *hi)) *lo = 0, *hi = 1;
    if (*hi - *lo < 1e-12) *lo -= 0.5, *hi += 0.5;
}

static void write_panel(FILE *f, const ex_panel *p, double ox, int w, int h) {
    /* Plot area inside margins that leave room for tick labels, title and axis labels. */
    const double ml = 62, mr = 16, mt = 34, mb = 48;
    const double x0 = ox + ml, x1 = ox + w - mr, y0 = mt, y1 = h - mb;
    double xlo, xhi, ylo, yhi;
    data_range(p, 0, &xlo, &xhi);
    int markers = 0;
    for (int s = 0; s < p->nseries; s++) markers |= p->series[s].markers;
    if (markers) { /* keep the dots at the ends inside the frame */
        double pad = 0.03 * (xhi - xlo);
        xlo -= pad;
        xhi += pad;
    }
    if (p->fixed_y) {
        ylo = p->ymin;
        yhi = p->ymax;
    } else {
        data_range(p, 1, &ylo, &yhi);
        double pad = 0.05 * (yhi - ylo);
        ylo -= pad;
        yhi += pad;
    }
    double xs = nice_step(xhi - xlo, 6), ys = nice_step(yhi - ylo, 5);
    if (p->x_integer && xs < 1) xs = 1; /* no "epoch 1.5" */
    if (!p->fixed_y) { /* extend to whole ticks so the frame ends on a labelled line */
        ylo = floor(ylo / ys + 1e-9) * ys;
        yhi = ceil(yhi / ys - 1e-9) * ys;
    }
#define PX(v) (x0 + ((v)-xlo) / (xhi - xlo) * (x1 - x0))
#define PY(v) (y1 - ((v)-ylo) / (yhi - ylo) * (y1 - y0))
    fprintf(f, "<g font-family=\"sans-serif\" font-size=\"12\">\n");
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" "
            "stroke=\"#444\"/>\n",
            x0, y0, x1 - x0, y1 - y0);
    /* Curves and bands are clipped to the frame, so a fixed y range or a stray value stays
     * inside. */
    static int clip_id = 0;
    clip_id++;
    fprintf(f,
            "<clipPath id=\"c%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/></clipPath>\n",
            clip_id, x0, y0, x1 - x0, y1 - y0);
    if (p->nbands > 0) { /* under the grid and the curves */
        fprintf(f, "<g clip-path=\"url(#c%d)\">\n", clip_id);
        for (int b = 0; b < p->nbands; b++) {
            const ex_band *band = &p->bands[b];
            double bx0 = PX(band->x0), bx1 = PX(band->x1);
            if (bx1 < bx0) {
                double t = bx0;
                bx0 = bx1;
                bx1 = t;
            }
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill=\"%s\"/>\n",
                    bx0, y0, bx1 - bx0, y1 - y0, band->color ? band->color : BAND_COLOR);
        }
        fprintf(f, "</g>\n");
    }
    for (double t = ceil(xlo / xs - 1e-9) * xs; t <= xhi + 1e-9 * xs; t += xs) {
        double px = PX(t);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n",
                px, y0, px, y1);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", px, y1 + 16,
                fabs(t) < 1e-12 * xs ? 0.0 : t);
    }
    for (double t = ceil(ylo / ys - 1e-9) * ys; t <= yhi + 1e-9 * ys; t += ys) {
        double py = PY(t);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n",
                x0, py, x1, py);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", x0 - 6, py + 4,
                fabs(t) < 1e-12 * ys ? 0.0 : t);
    }
    fprintf(f, "<g clip-path=\"url(#c%d)\">\n", clip_id);
    for (int s = 0; s < p->nseries; s++) {
        const ex_series *se = &p->series[s];
        const char *col = se->color ? se->color : palette[s % 10];
        double sw = se->width > 0 ? se->width : 2;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.2f\"%s points=\"", col,
                sw, se->dashed ? " stroke-dasharray=\"6,4\"" : "");
        for (int i = 0; i < se->n; i++)
            if (isfinite(se->x[i]) && isfinite(se->y[i]))
                fprintf(f, "%.2f,%.2f ", PX(se->x[i]), PY(se->y[i]));
        fprintf(f, "\"/>\n");
        if (se->markers)
            for (int i = 0; i < se->n; i++)
                if (isfinite(se->x[i]) && isfinite(se->y[i]))
                    fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n",
                            PX(se->x[i]), PY(se->y[i]), col);
    }
    fprintf(f, "</g>\n");
#undef PX
#undef PY
    /* Legend: one row per labelled series, then per labelled band, on a translucent box. */
    int rows = 0;
    double lw = 0;
    for (int s = 0; s < p->nseries + p->nbands; s++) {
        const char *label = s < p->nseries ? p->series[s].label : p->bands[s - p->nseries].label;
        if (!label) continue;
        rows++;
        double tw = 7.0 * (double)strlen(label);
        if (tw > lw) lw = tw;
    }
    if (rows > 0) {
        double bx = p->legend == EX_LEGEND_TOP_LEFT ? x0 + 6 : x1 - lw - 44;
        double by = p->legend == EX_LEGEND_BOTTOM_RIGHT ? y1 - 6 - (rows * 16 + 6) : y0 + 6;
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"#fff\" "
                "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
                bx, by, lw + 38, rows * 16 + 6);
        int r = 0;
        for (int s = 0; s < p->nseries; s++) {
            const ex_series *se = &p->series[s];
            if (!se->label) continue;
            double ly = by + 14 + 16 * r++;
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"%.2f\"%s/>\n",
                    bx + 6, ly - 4, bx + 28, ly - 4, se->color ? se->color : palette[s % 10],
                    se->width > 0 ? se->width : 2, se->dashed ? " stroke-dasharray=\"6,4\"" : "");
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", bx + 33, ly);
            put_text(f, se->label);
            fprintf(f, "</text>\n");
        }
        for (int b = 0; b < p->nbands; b++) {
            const ex_band *band = &p->bands[b];
            if (!band->label) continue;
            double ly = by + 14 + 16 * r++;
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"22\" height=\"10\" fill=\"%s\" "
                    "stroke=\"#bbb\"/>\n",
                    bx + 6, ly - 9, band->color ? band->color : BAND_COLOR);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", bx + 33, ly);
            put_text(f, band->label);
            fprintf(f, "</text>\n");
        }
    }
    fprintf(f,
            "<text x=\"%.1f\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" "
            "font-weight=\"bold\">",
            (x0 + x1) / 2);
    put_text(f, p->title);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (x0 + x1) / 2,
            (double)h - 10);
    put_text(f, p->xlabel);
    fprintf(f,
            "</text>\n<text transform=\"translate(%.1f,%.1f) rotate(-90)\" "
            "text-anchor=\"middle\">",
            ox + 16, (y0 + y1) / 2);
    put_text(f, p->ylabel);
    fprintf(f, "</text>\n</g>\n");
}

int ex_svg_write(const char *path, const ex_panel *panels, int npanels, int width, int height) {
    return ex_svg_write_captioned(path, panels, npanels, width, height, NULL);
}

int ex_svg_write_captioned(const char *path, const ex_panel *panels, int npanels, int width,
                           int height, const char *caption) {
    enum { LINE = 17 };
    int lines = 0;
    if (caption && *caption) {
        lines = 1;
        for (const char *c = caption; *c; c++) lines += *c == '\n';
    }
    int total = height + (lines ? lines * LINE + 10 : 0);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
            width * npanels, total, width * npanels, total);
    for (int i = 0; i < npanels; i++) write_panel(f, &panels[i], (double)i * width, width, height);
    if (lines) {
        fprintf(f, "<g font-family=\"sans-serif\" font-size=\"13\" fill=\"#333\">\n");
        const char *c = caption;
        for (int l = 0; l < lines; l++) {
            const char *end = strchr(c, '\n');
            size_t n = end ? (size_t)(end - c) : strlen(c);
            char buf[512];
            if (n >= sizeof buf) n = sizeof buf - 1;
            memcpy(buf, c, n);
            buf[n] = '\0';
            fprintf(f, "<text x=\"16\" y=\"%d\">", height + 4 + LINE * l + 12);
            put_text(f, buf);
            fprintf(f, "</text>\n");
            c = end ? end + 1 : c + n;
        }
        fprintf(f, "</g>\n");
    }
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}
