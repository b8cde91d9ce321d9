/* train.c — the one-cycle schedule, lr_find, its choice of a rate, and fit (see
 * train.h), after fastai's fastai/callback/schedule.py (SchedCos, combined_cos,
 * LRFinder and valley), with a lag-free choice of the rate of our own. */
#include "engine/train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"
#include "engine/train/nn.h"
#include "engine/io/plot.h"
#include "engine/base/strbuf.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/tensor/tensor_order.h"

/* ---- schedules ---- */

static double sched_cos(double start, double end, double pos)
{
    return start + (1 + cos(M_PI * (1 - pos))) * (end - start) / 2;
}

/* fastai's combined_cos(0.25, a, b, c) at position pos in [0, 1] */
static double combined_cos(double pos, double a, double b, double c)
{
    if (!(pos > 0))
        pos = 0;
    if (pos > 1)
        pos = 1;
    return pos < 0.25 ? sched_cos(a, b, pos / 0.25) : sched_cos(b, c, (pos - 0.25) / 0.75);
}

double train_onecycle_lr(double step, double total, double max_lr)
{
    return combined_cos(total > 0 ? step / total : 1, max_lr / 25, max_lr, max_lr / 1e5);
}

double train_onecycle_mom(double step, double total)
{
    return combined_cos(total > 0 ? step / total : 1, 0.95, 0.85, 0.95);
}

int train_valley(const double *losses, int n)
{
    if (n <= 0)
        return 0;
    int *lds = malloc((size_t)n * sizeof *lds);
    if (!lds)
        return n / 2;
    int max_start = 0, max_end = 0;
    for (int i = 0; i < n; i++)
        lds[i] = 1;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            if (losses[i] < losses[j] && lds[i] < lds[j] + 1)
                lds[i] = lds[j] + 1;
            if (lds[max_end] < lds[i]) {
                max_end = i;
                max_start = max_end - lds[max_end];
            }
        }
    free(lds);
    double sections = (max_end - max_start) / 3.0;
    int idx = max_start + (int)sections + (int)(sections / 2);
    return idx < 0 ? 0 : idx >= n ? n - 1 : idx;
}

/* ---- the choice of a learning rate (see train.h) ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the median of v[0 .. n) (sorted in place) */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* the starting level: the median of the first tenth (at least 3) of the finite losses */
static double start_level(const double *losses, int n)
{
    double v[64];
    int k = 0, want = n / 10 < 3 ? 3 : n / 10 > 64 ? 64 : n / 10;
    for (int i = 0; i < n && k < want; i++)
        if (isfinite(losses[i]))
            v[k++] = losses[i];
    return k ? median(v, k) : NAN;
}

void train_lr_smooth(const double *losses, int n, double *out)
{
    double clip = 2 * fabs(start_level(losses, n)), w[3 * TRAIN_LR_SIGMA + 1];
    for (int d = 0; d <= 3 * TRAIN_LR_SIGMA; d++)
        w[d] = exp(-0.5 * d * d / (double)(TRAIN_LR_SIGMA * TRAIN_LR_SIGMA));
    for (int i = 0; i < n; i++) {
        double sw = 0, sv = 0;
        for (int j = i - 3 * TRAIN_LR_SIGMA; j <= i + 3 * TRAIN_LR_SIGMA; j++) {
            if (j < 0 || j >= n || !isfinite(losses[j]))
                continue;
            double v = losses[j] > clip && isfinite(clip) ? clip : losses[j];
            sw += w[abs(i - j)];
            sv += w[abs(i - j)] * v;
        }
        out[i] = sw > 0 ? sv / sw : NAN;
    }
}

const char *train_lr_flags_text(int flags, char *buf, int cap)
{
    static const char *words[] = {"noisy curve", "flat curve", "loss rises from the start", "too few steps",
                                  "no minimum: the loss falls up to the largest rate"};
    int len = 0;
    buf[0] = 0;
    for (int b = 0; b < 5 && len < cap; b++)
        if (flags & (1 << b))
            len += snprintf(buf + len, (size_t)(cap - len), "%s%s", len ? ", " : "", words[b]);
    return buf;
}

int train_lr_suggest(const double *lrs, const double *losses, int n, train_lr_choice *c)
{
    memset(c, 0, sizeof *c);
    c->lr = TRAIN_LR_FALLBACK;
    int m = 0;
    while (m < n && isfinite(losses[m]) && lrs[m] > 0)
        m++;
    n = m; /* the points before the first non-finite loss */
    c->n = n;
    if (n < 10) {
        c->flags = TRAIN_LR_SHORT;
        return 0;
    }
    double *sm = malloc((size_t)n * sizeof *sm), *res = malloc((size_t)n * sizeof *res);
    if (!sm || !res) {
        free(sm);
        free(res);
        c->flags = TRAIN_LR_SHORT;
        return -1;
    }
    train_lr_smooth(losses, n, sm);
    /* the minimum, and the noise of the raw losses around the smoothed curve */
    int im = 0;
    for (int i = 1; i < n; i++)
        if (sm[i] < sm[im])
            im = i;
    /* the noise near the minimum (minibatch noise grows with the loss): from the second
     * differences of the raw losses, which a smooth trend hardly moves (for independent
     * noise of deviation s, a second difference has deviation s sqrt(6)), by their median
     * (robust to outliers) */
    double clip = 2 * fabs(start_level(losses, n));
    int k = 0;
    for (int i = im - 4 * TRAIN_LR_SIGMA < 1 ? 1 : im - 4 * TRAIN_LR_SIGMA; i < n - 1 && i <= im + TRAIN_LR_SIGMA; i++)
        res[k++] = fabs(fmin(losses[i - 1], clip) - 2 * fmin(losses[i], clip) + fmin(losses[i + 1], clip));
    c->noise = k ? 1.4826 * median(res, k) / sqrt(6.0) : 0;
    /* the smoothed curve's standard error: the noise over the root of the Gaussian's
     * effective number of points, 2 sqrt(pi) sigma */
    double se = c->noise / sqrt(2 * sqrt(M_PI) * TRAIN_LR_SIGMA), decade = log10(lrs[n - 1] / lrs[0]) / (n - 1);
    int lo = im, hi = im;
    while (lo > 0 && sm[lo - 1] <= sm[im] + 2 * se)
        lo--;
    while (hi < n - 1 && sm[hi + 1] <= sm[im] + 2 * se)
        hi++;
    c->basin = (hi - lo) * decade;
    c->drop = sm[0] - sm[im];
    /* the steepest descent of the smoothed curve before the minimum */
    int is = 0;
    double steepest = INFINITY;
    for (int i = 1; i <= im && i < n - 1; i++) {
        double d = sm[i + 1] - sm[i - 1];
        if (d < steepest) {
            steepest = d;
            is = i;
        }
    }
    /* fastai's valley on the de-biased exponential average, without the first tenth and
     * the last 5 points */
    double avg = 0;
    for (int i = 0; i < n; i++) {
        avg = 0.98 * avg + 0.02 * (losses[i] > clip ? clip : losses[i]);
        res[i] = avg / (1 - pow(0.98, i + 1));
    }
    int from = n / 10, to = n - 5;
    if (to - from < 2) {
        from = 0;
        to = n;
    }
    c->i_valley = from + train_valley(res + from, to - from);
    c->i_min = im;
    c->i_steep = is;
    double top = sm[0];
    for (int i = im; i < n; i++)
        top = fmax(top, sm[i]);
    if (im < n / 10 && top - sm[im] >= 0.03 * fabs(sm[0]))
        c->flags |= TRAIN_LR_DIVERGES;
    else if (c->drop < 0.03 * fabs(sm[0]))
        c->flags |= TRAIN_LR_FLAT;
    else if (hi == n - 1)
        c->flags |= TRAIN_LR_NO_MIN;
    else if (c->basin > TRAIN_LR_NOISY_DECADES || c->drop < 4 * se)
        c->flags |= TRAIN_LR_NOISY;
    c->lr = c->flags & TRAIN_LR_FLAT       ? TRAIN_LR_FALLBACK
            : c->flags & TRAIN_LR_DIVERGES ? lrs[0]
            : c->flags & TRAIN_LR_NO_MIN   ? lrs[is]
                                           : lrs[im] / TRAIN_LR_MIN_DIV;
    free(sm);
    free(res);
    return 0;
}

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int interrupted(const train_host *h) { return eng_ctx_flag_get(h->interrupt) != 0; }

/* model(x) as a new tensor reference */
static tensor *call_model(const train_host *h, tensor *x, eng_error *err)
{
    return h->forward(h->ctx, x, err);
}

/* a uniformly shuffled 0..n-1 from the session's RNG (the same order batches() draws) */
static int shuffle(const train_host *h, int64_t *perm, int64_t n, eng_error *err)
{
    return tensor_shuffle_order(h->rng, perm, n, err);
}

/* the permutation as an i64 tensor on the session's device, uploaded once per epoch so
 * that a step's batch indices are a slice of it (no host-to-device copy per step) */
static tensor *perm_tensor(const int64_t *perm, int64_t n, eng_error *err)
{
    double *d = malloc((size_t)n * sizeof *d);
    if (!d) {
        eng_fail(err, ERR_MEMORY, "fit: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        d[i] = (double)perm[i];
    int64_t shape[1] = {n};
    tensor *t = tensor_from_doubles(d, DT_I64, 1, shape, err);
    free(d);
    return t;
}

/* x[perm[from .. from+n-1]] and y[...] */
static int gather_batch(tensor *x, tensor *y, tensor *perm, int64_t from, int64_t n, tensor **xb, tensor **yb,
                        eng_error *err)
{
    tensor *idx = tensor_slice(perm, 0, from, from + n, 1, err);
    if (!idx)
        return -1;
    /* a slice of a permutation of the rows: in range, so no check and no read back */
    *xb = tensor_gather_trusted(x, idx, err);
    *yb = *xb ? tensor_gather_trusted(y, idx, err) : NULL;
    tensor_decref(idx);
    if (!*yb) {
        tensor_decref(*xb);
        *xb = NULL;
        return -1;
    }
    return 0;
}

/* one training step on (xb, yb) at learning rate lr. The labels lie in yr[0] .. yr[1]
 * (nn_label_range of the whole label tensor, once per call), so cross_entropy reads
 * nothing back. With log NULL, *loss gets the batch loss (a read: lr_find needs each
 * loss to decide when to stop); else the loss is written into (*log)[slot] on the
 * device (*log made at the first step: slots elements of the loss's dtype) and nothing
 * is read, so the host runs ahead of the GPU (fit reads the log when it shows progress). */
static int train_step(const train_host *h, opt_state *o, tensor *xb, tensor *yb, const int64_t *yr,
                      double lr, double *loss, tensor **log, int64_t slot, int64_t slots, eng_error *err)
{
    ag_set_grad_mode(1);
    tensor *logits = call_model(h, xb, err);
    if (!logits)
        return -1;
    tensor *l = nn_cross_entropy_ranged(logits, yb, yr[0], yr[1], err);
    tensor_decref(logits);
    if (!l)
        return -1;
    int rc;
    if (!log) {
        rc = tensor_item(l, loss, err);
    } else {
        tensor *at = NULL;
        if (!*log) {
            const eng_backend *prev = tensor_place(l->storage->backend);
            *log = tensor_full(l->dtype, 1, &slots, NAN, err);
            tensor_place(prev);
        }
        rc = !*log || !(at = tensor_slice(*log, 0, slot, slot + 1, 1, err)) || tensor_assign(at, l, err) ? -1 : 0;
        tensor_decref(at);
    }
    if (!rc)
        rc = ag_backward(l, err);
    tensor_decref(l);
    if (!rc)
        rc = opt_step(o, lr, err);
    opt_zero_grad(o);
    return rc;
}

static int check_data(const char *who, tensor *x, tensor *y, eng_error *err)
{
    if (x->ndim < 1 || y->ndim != 1 || x->shape[0] != y->shape[0])
        return eng_fail(err, ERR_SHAPE, "%s: x must be [N, ...] and y [N] labels with the same N, got %lld and %lld rows",
                        who, (long long)(x->ndim ? x->shape[0] : 0), (long long)(y->ndim ? y->shape[0] : 0));
    if (tensor_dtype_is_float(y->dtype))
        return eng_fail(err, ERR_TYPE, "%s: labels must be an integer tensor, got %s", who, tensor_dtype_name(y->dtype));
    if (x->shape[0] == 0)
        return eng_fail(err, ERR_VALUE, "%s: no data (0 rows)", who);
    return 0;
}

/* ---- lr_find ---- */

#define LRF_STEPS 100
#define LRF_START 1e-7
#define LRF_END 10.0
#define SMOOTH_BETA 0.98

/* folds the losses log[*nread .. upto) into the epoch's sum and the smoothed loss, in
 * step order (done: steps taken in all; the last folded is step done - 1), the smoothed
 * loss of each step into trace[step]: one copy to the host of the news */
static int fold_losses(tensor *log, int64_t *nread, int64_t upto, int64_t done, double *esum, double *avg,
                       double *sm, double *trace, eng_error *err)
{
    int64_t k = upto - *nread;
    if (k <= 0)
        return 0;
    tensor *sl = tensor_slice(log, 0, *nread, upto, 1, err), *d = NULL, *h = NULL;
    int rc = -1;
    if (!sl || !(d = tensor_cast(sl, DT_F64, err)) || !(h = tensor_to(d, &cpu_backend, err)))
        goto out;
    const double *v = (const double *)h->storage->data + h->offset; /* a fresh contiguous copy */
    for (int64_t i = 0; i < k; i++) {
        int64_t step = done - k + i + 1; /* 1-based over the whole fit */
        *esum += v[i];
        *avg = SMOOTH_BETA * *avg + (1 - SMOOTH_BETA) * v[i];
        *sm = *avg / (1 - pow(SMOOTH_BETA, (double)step));
        trace[step - 1] = *sm;
    }
    *nread = upto;
    rc = 0;
out:
    tensor_decref(sl);
    tensor_decref(d);
    tensor_decref(h);
    return rc;
}

/* the curve as an SVG chart (the raw losses as dots, the smoothed curve, the chosen rate
 * and the alternatives marked) with a short text table as its plain-text form */
static void show_lr_find(const train_host *h, const double *lrs, const double *raw, int n, int sweeps,
                         const train_lr_choice *c, eng_error *err)
{
    if (n < 1) { /* the first step's loss was not finite: nothing to draw */
        char line[160];
        snprintf(line, sizeof line, "lr_find: the first step's loss is not finite; suggested learning rate %.3g "
                                    "(the default)", c->lr);
        eng_bundle b1 = {.n = 1};
        b1.items[0].mime = "text/plain";
        b1.items[0].data = line;
        h->display(h->ctx, &b1, 0, err);
        return;
    }
    double *lx = malloc((size_t)n * sizeof *lx), *sm = malloc((size_t)n * sizeof *sm);
    double *rw = malloc((size_t)n * sizeof *rw);
    char *text = malloc(4096);
    if (!lx || !sm || !rw || !text)
        goto out;
    train_lr_smooth(raw, n, sm);
    double top = 1.5 * sm[0];
    for (int i = 0; i < n; i++) {
        lx[i] = log10(lrs[i]);
        rw[i] = raw[i] <= top ? raw[i] : NAN; /* a blow-up's losses would flatten the chart */
    }
    double *shown = malloc((size_t)n * sizeof *shown); /* the smoothed curve up to the same height */
    if (!shown)
        goto out;
    for (int i = 0; i < n; i++)
        shown[i] = sm[i] <= top ? sm[i] : NAN;
    char flags[128];
    train_lr_flags_text(c->flags, flags, sizeof flags);
    int len = snprintf(text, 4096,
                       "lr_find: %d steps%s, suggested learning rate %.3g (%s); minimum %.3g, steepest %.3g, "
                       "valley %.3g%s%s\n%10s  %s\n",
                       n, sweeps > 1 ? " (two sweeps averaged)" : "", c->lr,
                       c->flags & TRAIN_LR_FLAT       ? "the default: no rate helps"
                       : c->flags & TRAIN_LR_DIVERGES ? "the smallest rate tried"
                       : c->flags & TRAIN_LR_NO_MIN   ? "the steepest descent"
                       : c->flags & TRAIN_LR_SHORT    ? "the default"
                                                      : "where the smoothed loss is lowest",
                       lrs[c->i_min], lrs[c->i_steep], lrs[c->i_valley], *flags ? "; " : "", flags, "lr",
                       "smoothed loss");
    int every = n > 10 ? (n + 9) / 10 : 1;
    for (int i = 0; i < n && len < 3800; i++) {
        const char *mark = i == c->i_min    ? "  <- minimum"
                           : i == c->i_steep  ? "  <- steepest"
                           : i == c->i_valley ? "  <- valley"
                                              : "";
        if (i % every == 0 || i == n - 1 || *mark)
            len += snprintf(text + len, (size_t)(4096 - len), "%10.3g  %.4g%s\n", lrs[i], sm[i], mark);
    }
    if (len > 0 && text[len - 1] == '\n')
        text[len - 1] = 0;
    char title[320];
    snprintf(title, sizeof title, "lr_find: loss against log10(lr); suggested %.3g%s%s", c->lr, *flags ? "; " : "",
             flags);
    double sx[1] = {log10(c->lr)}, sy[1] = {c->lr == lrs[c->i_min] ? sm[c->i_min] : NAN};
    for (int i = 0; i < n && !isfinite(sy[0]); i++) /* a default rate: marked on the curve where it lies */
        if (lrs[i] >= c->lr)
            sy[0] = sm[i];
    if (!isfinite(sy[0]))
        sy[0] = sm[n - 1];
    int ix[3] = {c->i_min, c->i_steep, c->i_valley};
    double ax[3][1], ay[3][1];
    for (int k = 0; k < 3; k++) {
        ax[k][0] = lx[ix[k]];
        ay[k][0] = sm[ix[k]];
    }
    /* drawn in order: the suggestion last, on top of the minimum where they coincide */
    plot_series series[6] = {{lx, rw, n, "loss per step", PLOT_SCATTER, 0},
                             {lx, shown, n, "smoothed", PLOT_LINE, 0},
                             {ax[0], ay[0], 1, "minimum", PLOT_SCATTER, 0},
                             {ax[1], ay[1], 1, "steepest", PLOT_SCATTER, 0},
                             {ax[2], ay[2], 1, "valley", PLOT_SCATTER, 0},
                             {sx, sy, 1, "suggested", PLOT_SCATTER, 0}};
    plot_spec spec = {series, 6, title, 0, 0};
    char *svg = plot_svg(&spec);
    free(shown);
    eng_bundle b = {.n = svg ? 2 : 1};
    b.items[0].mime = "text/plain";
    b.items[0].data = text;
    if (svg) {
        b.items[1].mime = "image/svg+xml";
        b.items[1].data = svg;
    }
    h->display(h->ctx, &b, 0, err);
    free(svg);
out:
    free(text);
    free(lx);
    free(sm);
    free(rw);
}

/* one sweep of LRF_STEPS steps (fewer once the smoothed loss passes 4x its best) from o
 * as it is: rates into lrs, raw losses into raw, their number into *nrec. The caller
 * puts o and the running statistics back. */
static int lr_sweep(const train_host *h, opt_state *o, tensor *x, tensor *y, int64_t batch_size,
                    const int64_t *yr, int64_t *perm, double *lrs, double *raw, int *nrec, eng_error *err)
{
    int64_t n = x->shape[0], pos = n;
    tensor *pt = NULL; /* the permutation on the device */
    double avg = 0, best = INFINITY;
    int rc = -1;
    *nrec = 0;
    opt_zero_grad(o);
    for (int i = 0; i < LRF_STEPS; i++) {
        if (interrupted(h)) {
            eng_fail(err, ERR_INTERRUPT, "lr_find: interrupted (the parameters are restored)");
            goto done;
        }
        if (pos + batch_size > n) {
            tensor_decref(pt);
            if (shuffle(h, perm, n, err) || !(pt = perm_tensor(perm, n, err)))
                goto done;
            pos = 0;
        }
        tensor *xb, *yb;
        if (gather_batch(x, y, pt, pos, batch_size, &xb, &yb, err))
            goto done;
        pos += batch_size;
        double lr = LRF_START * pow(LRF_END / LRF_START, (double)i / LRF_STEPS), loss;
        int r = train_step(h, o, xb, yb, yr, lr, &loss, NULL, 0, 0, err);
        tensor_decref(xb);
        tensor_decref(yb);
        if (r)
            goto done;
        avg = SMOOTH_BETA * avg + (1 - SMOOTH_BETA) * loss;
        double sm = avg / (1 - pow(SMOOTH_BETA, i + 1));
        lrs[*nrec] = lr;
        raw[(*nrec)++] = loss;
        if (sm < best)
            best = sm;
        if (!isfinite(sm) || sm > 4 * best)
            break;
    }
    rc = 0;
done:
    tensor_decref(pt);
    return rc;
}

int train_lr_find(const train_host *h, opt_state *o, tensor *x, tensor *y, int64_t batch_size,
                  int quiet, double *suggested, eng_error *err)
{
    if (check_data("lr_find", x, y, err))
        return -1;
    int64_t n = x->shape[0];
    if (batch_size <= 0)
        return eng_fail(err, ERR_VALUE, "lr_find: batch size must be positive, got %lld", (long long)batch_size);
    if (batch_size > n)
        batch_size = n;
    int saved_grad = ag_grad_mode(), rc = -1, nrec = 0, sweeps = 0;
    /* the session's random numbers come back too: fit then trains on the same batches,
     * with the same dropout, as it would given the rate found as max_lr */
    tensor_rng saved_rng = *h->rng;
    opt_state *snap = opt_snapshot(o, err);
    int64_t *perm = malloc((size_t)n * sizeof *perm), yr[2];
    double lrs[LRF_STEPS], raw[LRF_STEPS], lrs2[LRF_STEPS], raw2[LRF_STEPS];
    train_lr_choice c;
    if (!snap || !perm) {
        if (snap)
            eng_fail(err, ERR_MEMORY, "lr_find: out of memory");
        goto out;
    }
    if (nn_label_range(y, &yr[0], &yr[1], err))
        goto out;
    if (opt_sf_mode(o, 0, err)) /* schedule-free: sweep at y; the restore puts x back where it was */
        goto out;
    /* one sweep; a second where the first's minimum is uncertain (NOISY), its losses
     * averaged step by step with the first's (the rates are the same) */
    for (sweeps = 1; sweeps <= 2; sweeps++) {
        int k = 0;
        nn_stats_journal_open(); /* batch_norm's running statistics come back too */
        rc = lr_sweep(h, o, x, y, batch_size, yr, perm, sweeps == 1 ? lrs : lrs2, sweeps == 1 ? raw : raw2,
                      sweeps == 1 ? &nrec : &k, err);
        eng_error rerr = {0};
        if (opt_restore(o, snap, rc ? &rerr : err))
            rc = -1;
        if (nn_stats_journal_close(1, rc ? &rerr : err))
            rc = -1;
        if (rc)
            goto out;
        if (sweeps == 2) {
            nrec = k < nrec ? k : nrec;
            for (int i = 0; i < nrec; i++)
                raw[i] = (raw[i] + raw2[i]) / 2;
        }
        train_lr_suggest(lrs, raw, nrec, &c);
        if (!(c.flags & TRAIN_LR_NOISY))
            break;
    }
    if (sweeps > 2)
        sweeps = 2;
    *suggested = c.lr;
    if (!quiet)
        show_lr_find(h, lrs, raw, c.n, sweeps, &c, err);
    rc = 0;
out:
    ag_set_grad_mode(saved_grad);
    *h->rng = saved_rng;
    opt_free(snap);
    free(perm);
    return rc;
}

/* ---- fit ---- */

/* an out-of-memory error that a smaller batch may avoid: clears err for the retry and
 * says so on the cell's stdout ("fit: out of memory at batch size 512 (...); ...") */
static int oom_backoff(const train_host *h, eng_error *err, int64_t batch_size, const char *what, const char *then)
{
    if (!err || err->kind != ERR_MEMORY || batch_size < 2)
        return 0;
    char line[900];
    snprintf(line, sizeof line, "%s: out of memory at batch size %lld (%s); %s\n", what, (long long)batch_size,
             err->msg, then);
    h->stream(h->ctx, line, strlen(line));
    *err = (eng_error){0};
    if (h->recovered)
        h->recovered(h->ctx);
    return 1;
}

/* mean loss and accuracy of model over (x, y), in batches of *bs (1024 at first), with
 * grad recording off; out of memory halves *bs and starts again */
static int evaluate(const train_host *h, tensor *x, tensor *y, const int64_t *yr, int64_t *bs, double *loss,
                    double *acc, eng_error *err)
{
    int64_t n = x->shape[0];
    double lsum = 0, asum = 0;
    int saved = ag_grad_mode();
    ag_set_grad_mode(0);
    int rc = 0;
    for (int64_t a = 0; a < n && !rc; a += *bs) {
        int64_t b = a + *bs < n ? a + *bs : n;
        tensor *xb = tensor_slice(x, 0, a, b, 1, err), *yb = xb ? tensor_slice(y, 0, a, b, 1, err) : NULL;
        tensor *logits = yb ? call_model(h, xb, err) : NULL, *l = NULL, *ac = NULL;
        double lv = 0, av = 0;
        if (!logits || !(l = nn_cross_entropy_ranged(logits, yb, yr[0], yr[1], err)) || !(ac = nn_accuracy(logits, yb, err)) ||
            tensor_item(l, &lv, err) || tensor_item(ac, &av, err))
            rc = -1;
        lsum += lv * (double)(b - a);
        asum += av * (double)(b - a);
        tensor_decref(xb);
        tensor_decref(yb);
        tensor_decref(logits);
        tensor_decref(l);
        tensor_decref(ac);
        char then[96];
        snprintf(then, sizeof then, "evaluating again at batch size %lld", (long long)(*bs / 2));
        if (rc && oom_backoff(h, err, *bs, "fit", then)) {
            *bs /= 2;
            a = -*bs; /* from the start */
            lsum = asum = 0;
            rc = 0;
        }
    }
    ag_set_grad_mode(saved);
    *loss = lsum / (double)n;
    *acc = asum / (double)n;
    return rc;
}

/* schedule-free AdamW before an evaluation: the average x into the parameters, and
 * batch norm's running statistics recomputed there, as its authors advise, by forward
 * passes in training mode (recording on: the model's is_grad_enabled()) over up to 50 of
 * this epoch's batches (0.9^50: what the statistics held before weighs under 1 %) */
static int sf_to_average(const train_host *h, opt_state *o, tensor *xtr, tensor *pt, int64_t nb,
                         int64_t batch_size, eng_error *err)
{
    if (opt_sf_mode(o, 1, err))
        return -1;
    int saved = ag_grad_mode(), rc = 0;
    ag_set_grad_mode(1);
    for (int64_t bi = 0; bi < nb && bi < 50 && !rc; bi++) {
        tensor *idx = tensor_slice(pt, 0, bi * batch_size, (bi + 1) * batch_size, 1, err);
        tensor *xb = idx ? tensor_gather_trusted(xtr, idx, err) : NULL;
        tensor *logits = xb ? call_model(h, xb, err) : NULL;
        rc = logits ? 0 : -1;
        tensor_decref(idx);
        tensor_decref(xb);
        tensor_decref(logits);
    }
    ag_set_grad_mode(saved);
    return rc;
}

/* fit's live picture, one display updated in place: the progress line as text/plain
 * (what kiln run and the console show) and, for front ends that render HTML, a progress
 * bar with that line, an SVG plot of the smoothed training loss per step and the
 * validation loss per epoch, and the finished epochs as a table */
typedef struct fit_view {
    const char *id;
    const double *trace; /* smoothed training loss per step, done of them */
    const double *hist;  /* nhist rows of OPT_HIST_COLS: train loss, val loss, val accuracy, seconds */
    int nhist;
    int64_t nb, total;   /* steps per epoch, in all */
} fit_view;

static char *fit_html(const fit_view *v, int64_t done, const char *text)
{
    strbuf h = {0};
    strbuf_printf(&h, "<div class=\"kiln-fit\"><div><progress value=\"%lld\" max=\"%lld\" style=\"width:320px\">"
                      "</progress> <code>%s</code></div>\n",
                  (long long)done, (long long)v->total, text); /* the line has no markup characters */
    enum { MAXPTS = 400 };
    double sx[MAXPTS + 1], sy[MAXPTS + 1], vx[64], vy[64];
    int ns = 0, nv = 0;
    int64_t stride = done / MAXPTS + 1;
    for (int64_t i = 0; i < done && ns < MAXPTS; i += stride) {
        sx[ns] = (double)(i + 1);
        sy[ns++] = v->trace[i];
    }
    if (done > 0 && ns <= MAXPTS && sx[ns - 1] != (double)done) {
        sx[ns] = (double)done;
        sy[ns++] = v->trace[done - 1];
    }
    int vfrom = v->nhist > 64 ? v->nhist - 64 : 0;
    for (int e = vfrom; e < v->nhist; e++) {
        vx[nv] = (double)((e + 1) * v->nb);
        vy[nv++] = v->hist[e * OPT_HIST_COLS + 1];
    }
    if (ns > 1) {
        plot_series series[2] = {{sx, sy, ns, "training loss (smoothed)", PLOT_LINE, 0},
                                 {vx, vy, nv, "validation loss", PLOT_SCATTER, 0}};
        plot_spec spec = {series, nv ? 2 : 1, "loss against step", 480, 260};
        char *svg = plot_svg(&spec);
        if (svg)
            strbuf_printf(&h, "%s", svg);
        free(svg);
    }
    if (v->nhist) {
        strbuf_printf(&h, "<table><tr><th>epoch</th><th>train loss</th><th>val loss</th><th>val accuracy</th>"
                          "<th>seconds</th></tr>\n");
        for (int e = 0; e < v->nhist; e++) {
            const double *r = v->hist + (size_t)e * OPT_HIST_COLS;
            strbuf_printf(&h, "<tr><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.2f</td></tr>\n", e + 1,
                          r[0], r[1], r[2], r[3]);
        }
        strbuf_printf(&h, "</table>");
    }
    strbuf_printf(&h, "</div>");
    return strbuf_finish(&h);
}

static void progress(const train_host *h, const fit_view *v, int update, const char *text, int64_t done)
{
    char *html = fit_html(v, done, text);
    eng_bundle b = {.n = html ? 2 : 1, .display_id = v->id};
    b.items[0].mime = "text/plain";
    b.items[0].data = text;
    if (html) {
        b.items[1].mime = "text/html";
        b.items[1].data = html;
    }
    eng_error e = {0};
    h->display(h->ctx, &b, update, &e);
    free(html);
}

static void progress_text(char *buf, size_t cap, int64_t epoch, int64_t epochs, int64_t done, int64_t total,
                          double loss, double lr, double elapsed)
{
    char bar[31];
    int fill = total > 0 ? (int)(30 * done / total) : 30;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    char lt[32] = "-";
    if (done > 0)
        snprintf(lt, sizeof lt, "%.4f", loss);
    snprintf(buf, cap, "epoch %lld/%lld [%s] %3d%%  step %lld/%lld  loss %s  lr %.2e  %.1f s",
             (long long)epoch, (long long)epochs, bar, total > 0 ? (int)(100 * done / total) : 100,
             (long long)done, (long long)total, lt, lr, elapsed);
}

/* the trace of smoothed losses per step, done steps of it, in steps of half the batch:
 * each value twice (after an out-of-memory back-off), in a buffer for total steps */
static double *trace_halve(double *trace, int64_t done, int64_t total)
{
    double *t = realloc(trace, (size_t)(total > 0 ? total : 1) * sizeof *t);
    if (!t)
        return NULL;
    for (int64_t i = done - 1; i >= 0; i--)
        t[2 * i] = t[2 * i + 1] = t[i];
    return t;
}

int train_fit(const train_host *h, opt_state *o, tensor *xtr, tensor *ytr, tensor *xval,
              tensor *yval, int64_t epochs, int64_t batch_size, double max_lr, double *val_acc, eng_error *err)
{
    if (check_data("fit", xtr, ytr, err) || check_data("fit", xval, yval, err))
        return -1;
    if (epochs <= 0 || batch_size <= 0 || epochs > 1000000)
        return eng_fail(err, ERR_VALUE, "fit: epochs (at most 1000000) and batch size must be positive, got %lld and %lld",
                        (long long)epochs, (long long)batch_size);
    if (!(max_lr >= 0) || !isfinite(max_lr))
        return eng_fail(err, ERR_VALUE, "fit: max_lr must be a positive learning rate (or 0: find it), got %g", max_lr);
    int64_t n = xtr->shape[0];
    if (batch_size > n)
        batch_size = n;
    int given = max_lr > 0;
    char line[256], id[64], then[160];
    /* out of memory in lr_find (which restores the parameters): the sweep again at half
     * the batch; the rate it finds is then the half batch's own */
    while (!given && train_lr_find(h, o, xtr, ytr, batch_size, 0, &max_lr, err)) {
        snprintf(then, sizeof then, "finding the rate again at batch size %lld", (long long)(batch_size / 2));
        if (!oom_backoff(h, err, batch_size, "lr_find", then))
            return -1;
        batch_size /= 2;
    }
    if (!(max_lr > 0) || !isfinite(max_lr))
        max_lr = 1e-3;
    int sf = o->kind == OPT_ADAMW_SF;
    int64_t nb = n / batch_size, total = epochs * nb, done = 0, cur = 1, eval_bs = 1024;
    /* schedule-free: a constant rate after a linear warm-up over the first 5 % of the
     * steps (unless the optimiser has its own warmup) */
    int64_t warm = sf && o->warmup == 0 ? (total / 20 > 0 ? total / 20 : 1) : 0;
    if (sf)
        snprintf(line, sizeof line,
                 "fit: schedule-free AdamW at lr %.3g%s (warm-up %lld step%s), %lld epoch%s, batch size %lld\n",
                 max_lr, given ? " (given)" : "", (long long)(warm ? warm : o->warmup),
                 eng_s(warm ? warm : o->warmup), (long long)epochs, eng_s(epochs), (long long)batch_size);
    else
        snprintf(line, sizeof line, "fit: one cycle to lr %.3g%s, %lld epoch%s, batch size %lld\n", max_lr,
                 given ? " (given)" : "", (long long)epochs, eng_s(epochs), (long long)batch_size);
    h->stream(h->ctx, line, strlen(line));
    snprintf(id, sizeof id, "kiln-fit-%d-%ld", ++*h->nfits, (long)time(NULL));

    int64_t *perm = malloc((size_t)n * sizeof *perm);
    double *hist = malloc((size_t)epochs * OPT_HIST_COLS * sizeof *hist);
    double *trace = malloc((size_t)(total > 0 ? total : 1) * sizeof *trace);
    if (!perm || !hist || !trace) {
        free(perm);
        free(hist);
        free(trace);
        return eng_fail(err, ERR_MEMORY, "fit: out of memory");
    }
    int nhist = 0;
    fit_view view = {id, trace, hist, 0, nb, total};
    int saved_grad = ag_grad_mode(), rc = -1;
    int64_t yr[2], vr[2]; /* the labels' ranges: checked against C once, not per step */
    tensor *pt = NULL, *log = NULL; /* log: this epoch's step losses, on the device */
    double saved_beta1 = o->beta1, t0 = now_s(), last_shown = 0, avg = 0, sm = 0, lr = 0;
    char text[512], note[96] = "";
    progress_text(text, sizeof text, 1, epochs, 0, total, NAN, sf ? max_lr / (double)(warm ? warm : 1) : max_lr / 25, 0);
    progress(h, &view, 0, text, 0);
    opt_zero_grad(o);
    if (nn_label_range(ytr, &yr[0], &yr[1], err) || nn_label_range(yval, &vr[0], &vr[1], err) ||
        opt_sf_mode(o, 0, err)) /* schedule-free: train at y (a last fit left x in the parameters) */
        goto done;
    for (int64_t e = 0; e < epochs; e++) {
        if (opt_sf_mode(o, 0, err)) /* schedule-free: back to y after an evaluation at x */
            goto done;
        tensor_decref(pt);
        if (shuffle(h, perm, n, err) || !(pt = perm_tensor(perm, n, err)))
            goto done;
        double esum = 0, te = now_s();
        /* the log's slots from lbase to nread are read; esteps: the steps in esum */
        int64_t nread = 0, lbase = 0, esteps = 0;
        cur = e + 1;
        for (int64_t bi = 0; bi < nb; bi++) {
            if (interrupted(h)) {
                eng_fail(err, ERR_INTERRUPT,
                         "fit: interrupted at epoch %lld, step %lld of %lld; the parameters keep their values",
                         (long long)e + 1, (long long)done, (long long)total);
                goto done;
            }
            if (sf) {
                lr = warm && done < warm ? max_lr * (double)(done + 1) / (double)warm : max_lr;
            } else {
                lr = train_onecycle_lr((double)done, (double)total, max_lr);
                o->beta1 = train_onecycle_mom((double)done, (double)total);
            }
            tensor *xb, *yb;
            int r = gather_batch(xtr, ytr, pt, bi * batch_size, batch_size, &xb, &yb, err);
            if (!r) {
                r = train_step(h, o, xb, yb, yr, lr, NULL, &log, bi, nb, err);
                tensor_decref(xb);
                tensor_decref(yb);
            }
            if (r) {
                /* out of memory: go on at half the batch from the same sample, the peak
                 * rate over sqrt(2) (Adam's square-root scaling rule), the schedule and
                 * the trace counted in the new steps */
                snprintf(then, sizeof then, "going on at batch size %lld, peak lr %.3g (the rate over sqrt(2))",
                         (long long)(batch_size / 2), max_lr / sqrt(2));
                if (!oom_backoff(h, err, batch_size, "fit", then))
                    goto done;
                if (fold_losses(log, &nread, bi, done, &esum, &avg, &sm, trace, err))
                    goto done;
                esteps += nread - lbase;
                tensor_decref(log);
                log = NULL;
                int64_t nb2 = n / (batch_size / 2);
                int64_t total2 = 2 * done + (nb2 - 2 * bi) + (epochs - e - 1) * nb2;
                double *t2 = trace_halve(trace, done, total2);
                if (!t2) {
                    eng_fail(err, ERR_MEMORY, "fit: out of memory");
                    goto done;
                }
                view.trace = trace = t2;
                batch_size /= 2;
                max_lr /= sqrt(2);
                done *= 2;
                warm *= 2;
                bi = 2 * bi - 1; /* the loop's bi++ makes it 2 bi: the step that failed, in halves */
                nread = lbase = bi + 1;
                view.nb = nb = nb2;
                view.total = total = total2;
                snprintf(note, sizeof note, "  batch %lld (out of memory at %lld)", (long long)batch_size,
                         (long long)batch_size * 2);
                continue;
            }
            done++;
            double t = now_s();
            if (t - last_shown >= 0.25 || bi == nb - 1) { /* the log's news: the one wait for the GPU */
                if (fold_losses(log, &nread, bi + 1, done, &esum, &avg, &sm, trace, err))
                    goto done;
                last_shown = t;
                progress_text(text, sizeof text, e + 1, epochs, done, total, sm, lr, t - t0);
                strncat(text, note, sizeof text - strlen(text) - 1);
                progress(h, &view, 1, text, done);
            }
        }
        esteps += nread - lbase;
        double vloss, vacc, train_s = now_s() - te;
        if (sf && sf_to_average(h, o, xtr, pt, nb, batch_size, err))
            goto done;
        if (evaluate(h, xval, yval, vr, &eval_bs, &vloss, &vacc, err))
            goto done;
        *val_acc = vacc;
        double *row = hist + (size_t)nhist++ * OPT_HIST_COLS;
        view.nhist = nhist;
        row[0] = esteps ? esum / (double)esteps : NAN;
        row[1] = vloss;
        row[2] = vacc;
        row[3] = train_s;
        snprintf(line, sizeof line, "epoch %lld/%lld  train loss %.4f  val loss %.4f  val accuracy %.4f  (%.2f s)\n",
                 (long long)e + 1, (long long)epochs, row[0], vloss, vacc, train_s);
        h->stream(h->ctx, line, strlen(line));
    }
    rc = 0;
done:
    tensor_decref(pt);
    tensor_decref(log);
    ag_set_grad_mode(saved_grad);
    o->beta1 = saved_beta1;
    opt_zero_grad(o);
    free(perm);
    if (opt_set_history(o, hist, nhist, rc ? &(eng_error){0} : err))
        rc = -1;
    progress_text(text, sizeof text, cur, epochs, done, total, sm, lr, now_s() - t0);
    strncat(text, note, sizeof text - strlen(text) - 1);
    if (rc)
        strncat(text, "  (stopped)", sizeof text - strlen(text) - 1);
    progress(h, &view, 1, text, done);
    free(trace);
    free(hist);
    return rc;
}
