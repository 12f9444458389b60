/* A small SVG line-plot writer for the examples: one or more panels side by side, each
 * with axes, "nice" ticks, a title, axis labels and a legend. No dependencies; the files
 * open in any browser. */
#ifndef EX_PLOT_H
#define EX_PLOT_H

#define EX_PLOT_MAX_SERIES 40

typedef struct ex_series {
    const char *label; /**< legend text; NULL keeps the series out of the legend */
    const double *x, *y;
    int n;
    const char *color; /**< any SVG colour ("#d62728"); NULL picks from a palette */
    double width;      /**< stroke width in px; 0 means 2 */
    int dashed;
    int markers; /**< draw a dot at each point (for short series such as epochs) */
} ex_series;

enum { EX_LEGEND_TOP_RIGHT, EX_LEGEND_TOP_LEFT, EX_LEGEND_BOTTOM_RIGHT };

#define EX_PLOT_MAX_BANDS 4

/** A shaded stretch of the x axis behind the curves, e.g. the epochs trained on distorted
 *  images; listed in the legend with a swatch when it has a label. */
typedef struct ex_band {
    double x0, x1;
    const char *label;
    const char *color; /**< fill colour; NULL: a light grey */
} ex_band;

typedef struct ex_panel {
    const char *title, *xlabel, *ylabel;
    ex_series series[EX_PLOT_MAX_SERIES];
    int nseries;
    ex_band bands[EX_PLOT_MAX_BANDS];
    int nbands;
    int fixed_y;   /**< 1: use [ymin, ymax] instead of the data's range */
    int x_integer; /**< 1: x ticks at whole numbers only (epochs) */
    double ymin, ymax;
    int legend; /**< where the legend goes: EX_LEGEND_TOP_RIGHT (0), ..._TOP_LEFT, ..._BOTTOM_RIGHT
                 */
} ex_panel;

/** Adds a series to a panel (ignored past EX_PLOT_MAX_SERIES); returns it for tweaks. */
ex_series *ex_panel_add(ex_panel *p, const char *label, const double *x, const double *y, int n);

/** Adds a shaded band from x0 to x1 (ignored past EX_PLOT_MAX_BANDS); returns it. */
ex_band *ex_panel_band(ex_panel *p, double x0, double x1, const char *label);

/** Writes the panels side by side (each width x height px) to `path`. Returns 0, or -1
 *  with a message on stderr if the file cannot be written. */
int ex_svg_write(const char *path, const ex_panel *panels, int npanels, int width, int height);

/** ex_svg_write with a caption: lines of smaller text under the panels, separated by
 *  '\n' (NULL or "" for none), saying what the figure shows. */
int ex_svg_write_captioned(const char *path, const ex_panel *panels, int npanels, int width,
                           int height, const char *caption);

#endif
