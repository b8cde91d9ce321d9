/* plot.c — SVG line, scatter and bar charts (engine/io/plot.h): data ranges widened to
 * 1-2-5 tick steps, axes with ticks and labels, a light grid, the series in the
 * tab10 palette, a legend box at the top right when any series has a label. */
#include "engine/io/plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define NPALETTE ((int)(sizeof palette / sizeof palette[0]))

/* ---- a growing text buffer ---- */
typedef struct sbuf {
    char *data;  /* malloc'ed, NUL-terminated */
    size_t len;  /* bytes used, without the NUL */
    size_t cap;  /* bytes allocated */
    int failed;  /* an allocation failed: data is dropped at the end */
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->data && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
}

/* text with &, <, >, " escaped for XML */
static void sb_escaped(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                sb_printf(b, "%c", *s);
        }
    }
}

/* ---- axes ---- */
double plot_nice_step(double lo, double hi, int target)
{
    double span = hi - lo;
    if (!(span > 0) || !isfinite(span))
        return 1;
    double raw = span / (target > 1 ? target - 1 : 1);
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nice * mag;
}

typedef struct axis {
    double lo, hi;   /* the axis' extent (multiples of step) */
    double step;     /* tick step */
    int decimals;    /* for tick labels; -1: %g */
} axis;

static void axis_fit(axis *a, double lo, double hi)
{
    if (!(lo <= hi)) { /* no finite data */
        lo = 0;
        hi = 1;
    }
    if (lo == hi) {
        double d = lo == 0 ? 1 : fabs(lo) * 0.5;
        lo -= d;
        hi += d;
    }
    a->step = plot_nice_step(lo, hi, 6);
    a->lo = floor(lo / a->step + 1e-9) * a->step;
    a->hi = ceil(hi / a->step - 1e-9) * a->step;
    double big = fmax(fabs(a->lo), fabs(a->hi));
    if (big >= 1e6 || a->step < 1e-4)
        a->decimals = -1;
    else
        a->decimals = a->step >= 1 ? 0 : (int)ceil(-log10(a->step) - 1e-9);
}

static void tick_label(const axis *a, double v, char *out, size_t size)
{
    if (fabs(v) < a->step * 1e-9)
        v = 0;
    if (a->decimals < 0)
        snprintf(out, size, "%g", v);
    else
        snprintf(out, size, "%.*f", a->decimals, v);
}

/* ---- the chart ---- */
typedef struct frame {
    double left, top, w, h; /* the plotting area in pixels */
    axis x, y;
} frame;

static double px(const frame *f, double x) { return f->left + (x - f->x.lo) / (f->x.hi - f->x.lo) * f->w; }
static double py(const frame *f, double y) { return f->top + f->h - (y - f->y.lo) / (f->y.hi - f->y.lo) * f->h; }

static void data_range(const plot_spec *spec, double *xlo, double *xhi, double *ylo, double *yhi)
{
    *xlo = *ylo = INFINITY;
    *xhi = *yhi = -INFINITY;
    for (int s = 0; s < spec->nseries; s++) {
        const plot_series *ps = &spec->series[s];
        for (int64_t i = 0; i < ps->n; i++) {
            double x = ps->x[i], y = ps->y[i];
            if (!isfinite(x) || !isfinite(y))
                continue;
            double x2 = ps->kind == PLOT_BARS ? x + ps->bar_width : x;
            *xlo = fmin(*xlo, fmin(x, x2));
            *xhi = fmax(*xhi, fmax(x, x2));
            *ylo = fmin(*ylo, y);
            *yhi = fmax(*yhi, y);
            if (ps->kind == PLOT_BARS) {
                *ylo = fmin(*ylo, 0);
                *yhi = fmax(*yhi, 0);
            }
        }
    }
}

static void draw_axes(sbuf *b, const frame *f)
{
    char label[64];
    sb_printf(b, "<g class=\"grid\" stroke=\"#e5e5e5\" stroke-width=\"1\">\n");
    int nx = (int)llround((f->x.hi - f->x.lo) / f->x.step), ny = (int)llround((f->y.hi - f->y.lo) / f->y.step);
    for (int i = 0; i <= nx; i++)
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px(f, f->x.lo + i * f->x.step),
                  f->top, px(f, f->x.lo + i * f->x.step), f->top + f->h);
    for (int i = 0; i <= ny; i++)
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", f->left,
                  py(f, f->y.lo + i * f->y.step), f->left + f->w, py(f, f->y.lo + i * f->y.step));
    sb_printf(b, "</g>\n<g class=\"axes\" stroke=\"#333\" stroke-width=\"1\">\n");
    sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", f->left, f->top + f->h,
              f->left + f->w, f->top + f->h);
    sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", f->left, f->top, f->left,
              f->top + f->h);
    for (int i = 0; i <= nx; i++) {
        double x = px(f, f->x.lo + i * f->x.step);
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, f->top + f->h, x,
                  f->top + f->h + 5);
    }
    for (int i = 0; i <= ny; i++) {
        double y = py(f, f->y.lo + i * f->y.step);
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", f->left - 5, y, f->left, y);
    }
    sb_printf(b, "</g>\n<g class=\"ticks\" font-family=\"sans-serif\" font-size=\"11\" fill=\"#333\">\n");
    for (int i = 0; i <= nx; i++) {
        tick_label(&f->x, f->x.lo + i * f->x.step, label, sizeof label);
        sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n",
                  px(f, f->x.lo + i * f->x.step), f->top + f->h + 18, label);
    }
    for (int i = 0; i <= ny; i++) {
        tick_label(&f->y, f->y.lo + i * f->y.step, label, sizeof label);
        sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", f->left - 8,
                  py(f, f->y.lo + i * f->y.step) + 4, label);
    }
    sb_printf(b, "</g>\n");
}

static void draw_series(sbuf *b, const frame *f, const plot_series *ps, const char *colour)
{
    switch (ps->kind) {
    case PLOT_LINE: {
        sb_printf(b, "<path class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"", colour);
        int pen = 0; /* 1 once the path has a point to continue from */
        for (int64_t i = 0; i < ps->n; i++) {
            if (!isfinite(ps->x[i]) || !isfinite(ps->y[i])) {
                pen = 0;
                continue;
            }
            sb_printf(b, "%s%.2f %.2f", pen ? " L" : (i ? " M" : "M"), px(f, ps->x[i]), py(f, ps->y[i]));
            pen = 1;
        }
        sb_printf(b, "\"/>\n");
        break;
    }
    case PLOT_SCATTER:
        sb_printf(b, "<g class=\"series\" fill=\"%s\" fill-opacity=\"0.8\">\n", colour);
        for (int64_t i = 0; i < ps->n; i++)
            if (isfinite(ps->x[i]) && isfinite(ps->y[i]))
                sb_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\"/>\n", px(f, ps->x[i]), py(f, ps->y[i]));
        sb_printf(b, "</g>\n");
        break;
    case PLOT_BARS:
        sb_printf(b, "<g class=\"series\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.5\">\n", colour);
        for (int64_t i = 0; i < ps->n; i++) {
            if (!isfinite(ps->x[i]) || !isfinite(ps->y[i]))
                continue;
            double x0 = px(f, ps->x[i]), x1 = px(f, ps->x[i] + ps->bar_width);
            double y0 = py(f, fmax(ps->y[i], 0)), y1 = py(f, fmin(ps->y[i], 0));
            sb_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", fmin(x0, x1), y0,
                      fabs(x1 - x0), y1 - y0);
        }
        sb_printf(b, "</g>\n");
        break;
    }
}

static void draw_legend(sbuf *b, const frame *f, const plot_spec *spec)
{
    int n = 0;
    size_t longest = 0;
    for (int s = 0; s < spec->nseries; s++)
        if (spec->series[s].label) {
            n++;
            size_t len = strlen(spec->series[s].label);
            longest = len > longest ? len : longest;
        }
    if (!n)
        return;
    double w = 34 + 7.0 * (double)(longest > 40 ? 40 : longest), h = 8 + 18.0 * n;
    double x = f->left + f->w - w - 8, y = f->top + 8;
    sb_printf(b, "<g class=\"legend\" font-family=\"sans-serif\" font-size=\"12\">\n");
    sb_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#fff\" "
                 "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n", x, y, w, h);
    int row = 0;
    for (int s = 0; s < spec->nseries; s++) {
        const plot_series *ps = &spec->series[s];
        if (!ps->label)
            continue;
        double cy = y + 13 + 18.0 * row++;
        const char *colour = palette[s % NPALETTE];
        if (ps->kind == PLOT_LINE)
            sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                      x + 6, cy, x + 26, cy, colour);
        else
            sb_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"12\" height=\"10\" fill=\"%s\"/>\n", x + 10, cy - 5,
                      colour);
        sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" fill=\"#333\">", x + 30, cy + 4);
        sb_escaped(b, ps->label);
        sb_printf(b, "</text>\n");
    }
    sb_printf(b, "</g>\n");
}

char *plot_svg(const plot_spec *spec)
{
    sbuf b = {0};
    int width = spec->width > 0 ? spec->width : 640, height = spec->height > 0 ? spec->height : 400;
    frame f = {.left = 64, .top = spec->title ? 36 : 16};
    f.w = width - f.left - 20;
    f.h = height - f.top - 36;
    double xlo, xhi, ylo, yhi;
    data_range(spec, &xlo, &xhi, &ylo, &yhi);
    axis_fit(&f.x, xlo, xhi);
    axis_fit(&f.y, ylo, yhi);

    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 %d %d\">\n", width, height, width, height);
    sb_printf(&b, "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", width, height);
    if (spec->title) {
        sb_printf(&b, "<text class=\"title\" x=\"%.2f\" y=\"22\" text-anchor=\"middle\" font-family=\"sans-serif\" "
                      "font-size=\"14\" fill=\"#222\">", f.left + f.w / 2);
        sb_escaped(&b, spec->title);
        sb_printf(&b, "</text>\n");
    }
    draw_axes(&b, &f);
    for (int s = 0; s < spec->nseries; s++)
        draw_series(&b, &f, &spec->series[s], palette[s % NPALETTE]);
    draw_legend(&b, &f, spec);
    sb_printf(&b, "</svg>\n");
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
