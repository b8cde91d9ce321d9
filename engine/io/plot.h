/* plot.h — SVG charts: line plots, scatter plots and histograms as one standalone
 * <svg> document (axes, 1-2-5 ticks with labels, grid, one colour per series, a legend
 * when any series has a label, an optional title).
 *
 * The caller owns the data; plot_svg only reads it and returns malloc'ed text.
 * engine/lang/builtins_display.c builds the spec from tensors and sends it as image/svg+xml.
 * Every series is one element with class="series" (a <path>, or a <g> of markers or
 * bars), so tests and styles can find them.
 */
#ifndef KILN_PLOT_H
#define KILN_PLOT_H

#include <stdint.h>

typedef enum plot_kind {
    PLOT_LINE,    /* a path through (x[i], y[i]); non-finite points break it */
    PLOT_SCATTER, /* a circle at each finite (x[i], y[i]) */
    PLOT_BARS     /* a bar from 0 to y[i] over [x[i], x[i] + bar_width] */
} plot_kind;

typedef struct plot_series {
    const double *x;   /* n values (bars: left edges) */
    const double *y;   /* n values */
    int64_t n;         /* number of points */
    const char *label; /* legend text, or NULL */
    plot_kind kind;    /* how it is drawn */
    double bar_width;  /* PLOT_BARS only */
} plot_series;

typedef struct plot_spec {
    const plot_series *series; /* nseries entries, drawn in order, colours in order */
    int nseries;
    const char *title;         /* or NULL */
    int width, height;         /* pixels; 0 gives 640 x 400 */
} plot_spec;

/* The SVG document, malloc'ed; NULL on allocation failure. */
char *plot_svg(const plot_spec *spec);

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about target ticks over
 * [lo, hi]; exported for tests. */
double plot_nice_step(double lo, double hi, int target);

#endif
