/* builtins_display.c — plot, scatter, hist (SVG through engine/io/plot.c) and imshow,
 * imgrid (PNG through engine/io/png.c), each sent as one display_data bundle with a
 * text/plain fallback first ("<plot: 2 series, 100 points>"), which is what
 * `kiln run` prints. Tensors are read on the host as doubles, whatever their dtype
 * or device. */
#include "engine/lang/builtins_display.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/hostmem.h"
#include "engine/lang/interp.h"
#include "engine/io/plot.h"
#include "engine/io/png.h"
#include "engine/tensor/tensor_impl.h"

#define PLOT_MAX_SERIES 64
#define HIST_MAX_BINS 10000
#define IMSHOW_MIN_PX 224   /* imshow scales small images up to at least this */
#define IMGRID_TILE_PX 112  /* imgrid scales each tile up to at least this */
#define IMGRID_MAX_PX 1600  /* ... unless the grid gets wider than this */
#define IMGRID_GAP 2        /* pixels between tiles */
#define IMAGE_MAX_PX 4096   /* larger sides are refused (the PNG would be huge) */

int eng_display_bundle(eng_session *s, const eng_bundle *b, int update, eng_error *err)
{
    (void)err;
    eng_flush(s);
    if (s->sink && s->sink->display)
        s->sink->display(s->sink->user, b, update);
    return 0;
}

/* t's elements as malloc'ed doubles in row-major order; t must not be empty */
static double *host_doubles(const tensor *t, eng_error *err)
{
    int64_t n = tensor_numel(t);
    size_t es = tensor_dtype_size(t->dtype);
    unsigned char *raw = tensor_to_host(t, err);
    if (!raw)
        return NULL;
    double *v = eng_host_malloc((size_t)n * sizeof *v, "reading a tensor's values", err);
    if (!v) {
        free(raw);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        v[i] = tensor_host_load(t->dtype, raw + (size_t)i * es);
    free(raw);
    return v;
}

/* sends text/plain and one more representation */
static int send_two(eng_call *c, const char *text, const char *mime, const char *data)
{
    eng_bundle b = {.n = 2};
    b.items[0].mime = "text/plain";
    b.items[0].data = text;
    b.items[1].mime = mime;
    b.items[1].data = data;
    return eng_display_bundle(c->session, &b, 0, c->err);
}

/* ---- plot and scatter ---- */

/* plot([x,] y[, labels[, title]]), scatter(x, y[, labels[, title]]) */
static int plot_common(eng_call *c, plot_kind kind, int min_tensors, value *out)
{
    int rc = -1, ntensors = 0;
    tensor *xt = NULL, *yt = NULL;
    double *xv = NULL, *yv = NULL, *cols = NULL;
    char *labels = NULL, *svg = NULL;
    const char *label_arg = NULL, *title = NULL;
    plot_series series[PLOT_MAX_SERIES];
    *out = value_void();

    while (ntensors < c->argc && c->argv[ntensors].type != VAL_STRING)
        ntensors++;
    if (ntensors < min_tensors || ntensors > 2) {
        eng_fail(c->err, ERR_TYPE, "%s: expected %s, then an optional labels string and title string",
                 c->name, min_tensors == 1 ? "[x,] y" : "x, y");
        goto done;
    }
    if ((ntensors < c->argc && arg_string(c, ntensors, &label_arg)) ||
        (ntensors + 1 < c->argc && arg_string(c, ntensors + 1, &title)))
        goto done;
    if (arg_tensor(c, ntensors - 1, &yt) || (ntensors == 2 && arg_tensor(c, 0, &xt)))
        goto done;
    if (yt->ndim < 1 || yt->ndim > 2) {
        eng_fail(c->err, ERR_SHAPE, "%s: y must be 1-D (one series) or 2-D [n, k] (k series), got %d-D",
                 c->name, yt->ndim);
        goto done;
    }
    int64_t n = yt->shape[0], k = yt->ndim == 2 ? yt->shape[1] : 1;
    if (n == 0 || k == 0) {
        eng_fail(c->err, ERR_VALUE, "%s: y is empty", c->name);
        goto done;
    }
    if (k > PLOT_MAX_SERIES) {
        eng_fail(c->err, ERR_VALUE, "%s: y has %lld columns, at most %d series can be drawn", c->name,
                 (long long)k, PLOT_MAX_SERIES);
        goto done;
    }
    if (xt && (xt->ndim != 1 || xt->shape[0] != n)) {
        eng_fail(c->err, ERR_SHAPE,
                 "%s: x must be 1-D with one value per row of y (%lld), got %d-D with %lld element%s", c->name,
                 (long long)n, xt->ndim, (long long)tensor_numel(xt), eng_s(tensor_numel(xt)));
        goto done;
    }
    if (!(yv = host_doubles(yt, c->err)) || (xt && !(xv = host_doubles(xt, c->err))))
        goto done;
    if (!xt) {
        if (!(xv = eng_host_malloc((size_t)n * sizeof *xv, c->name, c->err)))
            goto done;
        for (int64_t i = 0; i < n; i++)
            xv[i] = (double)i;
    }
    if (k > 1) { /* columns of y, each contiguous */
        if (!(cols = eng_host_malloc((size_t)(n * k) * sizeof *cols, c->name, c->err)))
            goto done;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < k; j++)
                cols[j * n + i] = yv[i * k + j];
    }
    if (label_arg && !(labels = strdup(label_arg))) {
        eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
        goto done;
    }
    char *next = labels;
    for (int64_t j = 0; j < k; j++) {
        plot_series *ps = &series[j];
        memset(ps, 0, sizeof *ps);
        ps->x = xv;
        ps->y = cols ? cols + j * n : yv;
        ps->n = n;
        ps->kind = kind;
        if (next) { /* the j-th comma-separated label, spaces trimmed */
            char *end = strchr(next, ',');
            if (end)
                *end = '\0';
            while (*next == ' ')
                next++;
            size_t len = strlen(next);
            while (len && next[len - 1] == ' ')
                next[--len] = '\0';
            ps->label = *next ? next : NULL;
            next = end ? end + 1 : NULL;
        }
    }
    plot_spec spec = {.series = series, .nseries = (int)k, .title = title};
    if (!(svg = plot_svg(&spec))) {
        eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
        goto done;
    }
    char text[128];
    snprintf(text, sizeof text, "<%s: %lld series, %lld points>", c->name, (long long)k, (long long)n);
    rc = send_two(c, text, "image/svg+xml", svg);
done:
    tensor_decref(xt);
    tensor_decref(yt);
    free(xv);
    free(yv);
    free(cols);
    free(labels);
    free(svg);
    return rc;
}

int bi_plot(eng_call *c, value *out) { return plot_common(c, PLOT_LINE, 1, out); }
int bi_scatter(eng_call *c, value *out) { return plot_common(c, PLOT_SCATTER, 2, out); }

/* ---- hist ---- */

int bi_hist(eng_call *c, value *out)
{
    int rc = -1;
    tensor *t = NULL;
    double *v = NULL, *edges = NULL, *counts = NULL;
    char *svg = NULL;
    int64_t bins = 10;
    const char *title = NULL;
    *out = value_void();
    if (arg_tensor(c, 0, &t) || (c->argc > 1 && arg_int(c, 1, &bins)) || (c->argc > 2 && arg_string(c, 2, &title)))
        goto done;
    if (bins < 1 || bins > HIST_MAX_BINS) {
        eng_fail(c->err, ERR_VALUE, "hist: bins must be between 1 and %d, got %lld", HIST_MAX_BINS, (long long)bins);
        goto done;
    }
    int64_t n = tensor_numel(t), finite = 0;
    if (n == 0 || !(v = host_doubles(t, c->err))) {
        if (n == 0)
            eng_fail(c->err, ERR_VALUE, "hist: x is empty");
        goto done;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            finite++;
            lo = fmin(lo, v[i]);
            hi = fmax(hi, v[i]);
        }
    if (!finite) {
        eng_fail(c->err, ERR_VALUE, "hist: x has no finite values");
        goto done;
    }
    if (lo == hi) {
        lo -= 0.5;
        hi += 0.5;
    }
    double width = (hi - lo) / (double)bins;
    edges = malloc((size_t)bins * sizeof *edges);
    counts = calloc((size_t)bins, sizeof *counts);
    if (!edges || !counts) {
        eng_fail(c->err, ERR_MEMORY, "hist: out of memory");
        goto done;
    }
    for (int64_t b = 0; b < bins; b++)
        edges[b] = lo + (double)b * width;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            int64_t b = (int64_t)((v[i] - lo) / width);
            counts[b < 0 ? 0 : b >= bins ? bins - 1 : b] += 1;
        }
    plot_series s = {.x = edges, .y = counts, .n = bins, .kind = PLOT_BARS, .bar_width = width};
    plot_spec spec = {.series = &s, .nseries = 1, .title = title};
    if (!(svg = plot_svg(&spec))) {
        eng_fail(c->err, ERR_MEMORY, "hist: out of memory");
        goto done;
    }
    char text[128];
    snprintf(text, sizeof text, "<hist: %lld value%s, %lld bin%s>", (long long)finite, eng_s(finite), (long long)bins,
             eng_s(bins));
    rc = send_two(c, text, "image/svg+xml", svg);
done:
    tensor_decref(t);
    free(v);
    free(edges);
    free(counts);
    free(svg);
    return rc;
}

/* ---- imshow and imgrid ---- */

/* n values as 8-bit levels: grey (rgb 0) always min-max; RGB: u8 as is, values all in
 * [0, 1] times 255, anything else min-max. Non-finite values become 0. */
static void to_levels(const double *v, int64_t n, int rgb, tensor_dtype dt, unsigned char *level)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            lo = fmin(lo, v[i]);
            hi = fmax(hi, v[i]);
        }
    double offset = lo, scale = hi > lo ? 255.0 / (hi - lo) : 0;
    if (rgb && dt == DT_U8) {
        offset = 0;
        scale = 1;
    } else if (rgb && lo >= 0 && hi <= 1) {
        offset = 0;
        scale = 255;
    }
    for (int64_t i = 0; i < n; i++) {
        double x = isfinite(v[i]) ? (v[i] - offset) * scale : 0;
        level[i] = (unsigned char)(x < 0 ? 0 : x > 255 ? 255 : x + 0.5);
    }
}

/* count images [h, w, ch] of levels into a grid of ncols columns, each pixel a
 * scale x scale block, gap pixels of grey between tiles; sends it as image/png */
static int show_images(eng_call *c, const unsigned char *level, int64_t count, int64_t h, int64_t w, int ch,
                       int64_t ncols, int64_t scale, int gap)
{
    int rc = -1;
    unsigned char *pix = NULL, *png = NULL;
    char *b64 = NULL;
    size_t png_len;
    int64_t nrows = (count + ncols - 1) / ncols;
    int64_t W = ncols * w * scale + (ncols + 1) * gap, H = nrows * h * scale + (nrows + 1) * gap;
    if (W > 16384 || H > 16384 || W * H > (int64_t)40000000) {
        eng_fail(c->err, ERR_VALUE, "%s: the image would be %lldx%lld pixels, too large to show", c->name,
                 (long long)W, (long long)H);
        return -1;
    }
    if (!(pix = malloc((size_t)(W * H * ch)))) {
        eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
        goto done;
    }
    memset(pix, 128, (size_t)(W * H * ch));
    for (int64_t img = 0; img < count; img++) {
        int64_t x0 = gap + (img % ncols) * (w * scale + gap), y0 = gap + (img / ncols) * (h * scale + gap);
        const unsigned char *src = level + img * h * w * ch;
        for (int64_t y = 0; y < h * scale; y++) {
            unsigned char *row = pix + ((y0 + y) * W + x0) * ch;
            const unsigned char *srow = src + (y / scale) * w * ch;
            for (int64_t x = 0; x < w * scale; x++)
                memcpy(row + x * ch, srow + (x / scale) * ch, (size_t)ch);
        }
    }
    if (png_encode(pix, (int)W, (int)H, ch, &png, &png_len) || !(b64 = base64_encode(png, png_len))) {
        eng_fail(c->err, ERR_MEMORY, "%s: could not encode the PNG (out of memory)", c->name);
        goto done;
    }
    char text[200];
    if (count == 1)
        snprintf(text, sizeof text, "<image: %lldx%lld %s, shown at %lldx%lld>", (long long)w, (long long)h,
                 ch == 3 ? "RGB" : "grey", (long long)W, (long long)H);
    else
        snprintf(text, sizeof text, "<image grid: %lld image%s of %lldx%lld %s, %lld column%s, %lldx%lld>",
                 (long long)count, eng_s(count), (long long)w, (long long)h, ch == 3 ? "RGB" : "grey",
                 (long long)ncols, eng_s(ncols), (long long)W, (long long)H);
    rc = send_two(c, text, "image/png", b64);
done:
    free(pix);
    free(png);
    free(b64);
    return rc;
}

/* t's values as 8-bit levels (to_levels), malloc'ed */
static unsigned char *image_levels(eng_call *c, const tensor *t, int rgb, eng_error *err)
{
    int64_t n = tensor_numel(t);
    double *v = host_doubles(t, err);
    if (!v)
        return NULL;
    unsigned char *level = malloc((size_t)n);
    if (level)
        to_levels(v, n, rgb, t->dtype, level);
    else
        eng_fail(err, ERR_MEMORY, "%s: out of memory", c->name);
    free(v);
    return level;
}

int bi_imshow(eng_call *c, value *out)
{
    tensor *t = NULL;
    unsigned char *level = NULL;
    int rc = -1;
    *out = value_void();
    if (arg_tensor(c, 0, &t))
        return -1;
    int rgb = t->ndim == 3 && t->shape[2] == 3;
    if (!(t->ndim == 2 || rgb)) {
        eng_fail(c->err, ERR_SHAPE, "imshow: expected [H, W] (grey) or [H, W, 3] (RGB), got %d-D", t->ndim);
        goto done;
    }
    int64_t h = t->shape[0], w = t->shape[1];
    if (h < 1 || w < 1 || h > IMAGE_MAX_PX || w > IMAGE_MAX_PX) {
        eng_fail(c->err, ERR_VALUE, "imshow: an image of %lldx%lld cannot be shown (sides 1 to %d)",
                 (long long)w, (long long)h, IMAGE_MAX_PX);
        goto done;
    }
    int64_t side = h > w ? h : w, scale = (IMSHOW_MIN_PX + side - 1) / side;
    if (!(level = image_levels(c, t, rgb, c->err)))
        goto done;
    rc = show_images(c, level, 1, h, w, rgb ? 3 : 1, 1, scale < 1 ? 1 : scale, 0);
done:
    tensor_decref(t);
    free(level);
    return rc;
}

int bi_imgrid(eng_call *c, value *out)
{
    tensor *t = NULL;
    unsigned char *level = NULL;
    int rc = -1;
    int64_t ncols = 0;
    *out = value_void();
    if (arg_tensor(c, 0, &t))
        return -1;
    if (c->argc > 1 && arg_int(c, 1, &ncols))
        goto done;
    /* [N, H, W], [N, H, W, 3], or [N, 1, H, W] as models take it */
    int rgb = t->ndim == 4 && t->shape[3] == 3, nchw = t->ndim == 4 && t->shape[1] == 1 && !rgb;
    if (!(t->ndim == 3 || rgb || nchw)) {
        eng_fail(c->err, ERR_SHAPE, "imgrid: expected [N, H, W], [N, 1, H, W] or [N, H, W, 3], got %d-D", t->ndim);
        goto done;
    }
    int64_t count = t->shape[0], h = t->shape[nchw ? 2 : 1], w = t->shape[nchw ? 3 : 2];
    if (count < 1 || h < 1 || w < 1 || h > IMAGE_MAX_PX || w > IMAGE_MAX_PX) {
        eng_fail(c->err, ERR_VALUE, "imgrid: %lld images of %lldx%lld cannot be shown", (long long)count,
                 (long long)w, (long long)h);
        goto done;
    }
    if (c->argc > 1 && ncols < 1) {
        eng_fail(c->err, ERR_VALUE, "imgrid: ncols must be at least 1, got %lld", (long long)ncols);
        goto done;
    }
    if (!ncols)
        while (ncols * ncols < count)
            ncols++;
    if (ncols > count)
        ncols = count;
    int64_t side = h > w ? h : w, scale = (IMGRID_TILE_PX + side - 1) / side;
    while (scale > 1 && ncols * (w * scale + IMGRID_GAP) > IMGRID_MAX_PX)
        scale--;
    if (!(level = image_levels(c, t, rgb, c->err)))
        goto done;
    rc = show_images(c, level, count, h, w, rgb ? 3 : 1, ncols, scale, IMGRID_GAP);
done:
    tensor_decref(t);
    free(level);
    return rc;
}
