/* magic.c — lines that start with '%': %time, %timeit, %whos, %gpu, %save, %load, %reset, %seed, %device,
 * %ptx, %sim, %memory, %del and %source (their own files), %lsmagic, %help. A magic runs as a statement of its cell, in order. Also the
 * session's "largest live tensors" for out-of-memory errors (eng_oom_note). */
#include <ctype.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/tensor/backend.h"
#include "engine/base/hostmem.h"
#include "engine/lang/interp.h"
#include "engine/lang/kdebug.h"
#include "engine/lang/kernels.h"
#include "engine/lang/custom_ops.h"
#include "engine/lang/session.h"
#include "engine/lang/session_file.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void out(eng_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(eng_session *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        eng_stream(s, 1, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
}

static void human_time(char *buf, size_t n, double sec)
{
    if (sec < 1e-6)
        snprintf(buf, n, "%.1f ns", sec * 1e9);
    else if (sec < 1e-3)
        snprintf(buf, n, "%.2f µs", sec * 1e6);
    else if (sec < 1)
        snprintf(buf, n, "%.2f ms", sec * 1e3);
    else
        snprintf(buf, n, "%.3f s", sec);
}

static void human_bytes(char *buf, size_t n, double b)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4)
        b /= 1024, u++;
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* %time shows its timing before the statement's value, as IPython does: while it runs,
 * a sink that forwards everything to the cell's sink but holds the result back */
typedef struct held_sink {
    eng_sink sink;          /* what the statement writes to */
    const eng_sink *outer;  /* the cell's sink */
    eng_bundle b;           /* the held result (its strings below) */
    char *data[ENG_BUNDLE_MAX], *display_id;
    int held;               /* a result is held */
} held_sink;

static void held_stream(void *u, int fd, const char *t, size_t n)
{
    const eng_sink *o = ((held_sink *)u)->outer;
    if (o->stream)
        o->stream(o->user, fd, t, n);
}
static void held_display(void *u, const eng_bundle *b, int update)
{
    const eng_sink *o = ((held_sink *)u)->outer;
    if (o->display)
        o->display(o->user, b, update);
}
static void held_error(void *u, const eng_error_report *e)
{
    const eng_sink *o = ((held_sink *)u)->outer;
    if (o->error)
        o->error(o->user, e);
}
static void held_clear(void *u, int wait)
{
    const eng_sink *o = ((held_sink *)u)->outer;
    if (o->clear_output)
        o->clear_output(o->user, wait);
}
static char *held_input(void *u, const char *prompt, int password, size_t *len)
{
    const eng_sink *o = ((held_sink *)u)->outer;
    return o->input ? o->input(o->user, prompt, password, len) : NULL;
}
static void held_result(void *u, const eng_bundle *b)
{
    held_sink *h = u;
    if (h->held) /* one result per statement: keep the last */
        for (int i = 0; i < h->b.n; i++)
            free(h->data[i]);
    h->b = *b;
    h->held = 1;
    for (int i = 0; i < b->n && i < ENG_BUNDLE_MAX; i++) {
        h->data[i] = strdup(b->items[i].data ? b->items[i].data : "");
        h->b.items[i].data = h->data[i] ? h->data[i] : "";
    }
    free(h->display_id);
    h->display_id = b->display_id ? strdup(b->display_id) : NULL;
    h->b.display_id = h->display_id;
}

/* sends the held result on (after the timing), then frees it */
static void held_release(held_sink *h, int send)
{
    if (h->held && send && h->outer && h->outer->result)
        h->outer->result(h->outer->user, &h->b);
    for (int i = 0; h->held && i < h->b.n; i++)
        free(h->data[i]);
    free(h->display_id);
    h->held = 0;
    h->display_id = NULL;
}

static int magic_time(eng_session *s, const char *code, eng_source *src, eng_error *err, int repeat)
{
    if (!*code)
        return eng_fail(err, ERR_VALUE, "%%%s needs a statement, as in %%%s x = a @ b;", repeat ? "timeit" : "time",
                        repeat ? "timeit" : "time");
    char name[256];
    snprintf(name, sizeof name, "%s (%%%s)", src ? src->name : "cell", repeat ? "timeit" : "time");
    eng_compiled *c = eng_compile(s, code, name, 1, err);
    if (!c)
        return -1;
    if (repeat) /* %timeit shows the timing only, never the statement's value (once per loop) */
        for (int i = 0; i < c->cell.nstmts; i++)
            if (c->cell.stmts[i]->kind == AST_EXPR)
                c->cell.stmts[i]->ival = 0;
    int rc = 0;
    char t1[32], t2[32];
    /* on an asynchronous device, times include the queued work: sync before and after,
     * and %time also reports the device's own time (events) */
    const eng_backend *be = eng_current_backend();
    if (be->sync && be->sync(err)) {
        eng_compiled_free(c);
        return -1;
    }
    if (!repeat) {
        int timed = be->timer_start && be->timer_stop && be->timer_start(err) == 0;
        if (!timed && err->kind) {
            eng_compiled_free(c);
            return -1;
        }
        held_sink h = {.outer = s->sink};
        h.sink = (eng_sink){.user = &h, .stream = held_stream, .display = held_display, .result = held_result,
                            .error = held_error, .clear_output = held_clear, .input = held_input};
        const eng_sink *outer = s->sink;
        if (outer)
            s->sink = &h.sink;
        double t0 = now(), gpu = 0;
        rc = eng_run_compiled(s, c, err) ? -1 : 0;
        if (!rc && timed)
            rc = be->timer_stop(&gpu, err);
        if (!rc && be->sync)
            rc = be->sync(err);
        eng_flush(s); /* the statement's own output, through h, before the timing */
        s->sink = outer;
        if (!rc) {
            human_time(t1, sizeof t1, now() - t0);
            if (timed) {
                human_time(t2, sizeof t2, gpu);
                out(s, "Wall time: %s, GPU time: %s (CUDA events on the %s stream)\n", t1, t2, be->name);
            } else
                out(s, "Wall time: %s\n", t1);
            eng_flush(s);
        }
        held_release(&h, !rc);
        eng_compiled_free(c);
        return rc;
    }
    /* auto-range: loops per run so that a run takes at least 0.2 s, then 7 runs */
    long loops = 1;
    for (;;) {
        double t0 = now();
        for (long i = 0; i < loops && !rc; i++)
            rc = eng_run_compiled(s, c, err) ? -1 : 0;
        if (!rc && be->sync)
            rc = be->sync(err);
        double dt = now() - t0;
        if (rc || dt >= 0.2 || loops >= 100000000L)
            break;
        loops *= dt < 0.02 ? 10 : 2;
    }
    double sum = 0, sq = 0;
    const int runs = 7;
    for (int r = 0; r < runs && !rc; r++) {
        double t0 = now();
        for (long i = 0; i < loops && !rc; i++)
            rc = eng_run_compiled(s, c, err) ? -1 : 0;
        if (!rc && be->sync)
            rc = be->sync(err);
        double per = (now() - t0) / (double)loops;
        sum += per;
        sq += per * per;
    }
    if (!rc) {
        double mean = sum / runs, sd = sqrt(fmax(0, sq / runs - mean * mean));
        human_time(t1, sizeof t1, mean);
        human_time(t2, sizeof t2, sd);
        out(s, "%s ± %s per loop (mean ± std. dev. of %d runs, %ld loop%s each)\n", t1, t2, runs, loops,
            loops == 1 ? "" : "s");
    }
    eng_compiled_free(c);
    return rc;
}

static void html_escape(FILE *f, const char *t)
{
    for (; t && *t; t++) {
        switch (*t) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*t, f);
        }
    }
}

/* sends text (and html, if any) as one display_data; frees both */
static int send_display(eng_session *s, char *text, char *html, eng_error *err)
{
    if (!text) {
        free(html);
        return eng_fail(err, ERR_MEMORY, "out of memory");
    }
    size_t n = strlen(text);
    if (n && text[n - 1] == '\n')
        text[n - 1] = 0;
    eng_bundle b = {.n = 1};
    b.items[0].mime = "text/plain";
    b.items[0].data = text;
    if (html) {
        b.items[1].mime = "text/html";
        b.items[1].data = html;
        b.n = 2;
    }
    eng_flush(s);
    if (s->sink && s->sink->display)
        s->sink->display(s->sink->user, &b, 0);
    free(text);
    free(html);
    return 0;
}

static void shape_text(char *shape, size_t n, const tensor *t)
{
    snprintf(shape, n, "[");
    for (int d = 0; d < t->ndim; d++) {
        size_t l = strlen(shape);
        snprintf(shape + l, n - l, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    }
    strncat(shape, "]", n - strlen(shape) - 1);
}

/* A display written as text/plain and text/html side by side (%whos, %gpu). */
typedef struct dual_out {
    FILE *tf, *hf;      /* the two streams being written */
    char *text, *html;  /* their buffers once closed */
    size_t tl, hl;
} dual_out;

static int dual_open(dual_out *d, const char *magic, eng_error *err)
{
    memset(d, 0, sizeof *d);
    d->tf = open_memstream(&d->text, &d->tl);
    d->hf = open_memstream(&d->html, &d->hl);
    if (d->tf && d->hf)
        return 0;
    if (d->tf)
        fclose(d->tf);
    if (d->hf)
        fclose(d->hf);
    free(d->text);
    free(d->html);
    return eng_fail(err, ERR_MEMORY, "%%%s: out of memory", magic);
}

/* closes both streams and sends them (text only when with_html is 0) */
static int dual_send(eng_session *s, dual_out *d, int with_html, const char *magic, eng_error *err)
{
    if (fclose(d->tf) | fclose(d->hf)) {
        free(d->text);
        free(d->html);
        return eng_fail(err, ERR_MEMORY, "%%%s: out of memory", magic);
    }
    if (!with_html) {
        free(d->html);
        d->html = NULL;
    }
    return send_display(s, d->text, d->html, err);
}

/* %whos: text/plain in the layout of before, and an HTML table */
static int magic_whos(eng_session *s, eng_error *err)
{
    int any = 0;
    dual_out d;
    if (dual_open(&d, "whos", err))
        return -1;
    FILE *tf = d.tf, *hf = d.hf;
    fputs("<table class=\"kiln-whos\">\n<thead><tr><th>Name</th><th>Type</th><th>Dtype</th><th>Shape</th>"
          "<th>Device</th><th>Bytes</th><th>Requires grad</th><th>Value / signature</th></tr></thead>\n<tbody>\n",
          hf);
    for (int i = 0; i < s->nglobals; i++) {
        eng_global *g = &s->globals[i];
        if (!g->defined)
            continue;
        if (!any)
            fprintf(tf, "%-16s %-9s %-6s %-18s %-7s %s\n", "Variable", "Type", "Dtype", "Shape", "Device", "Data/Info");
        any = 1;
        value v = g->v;
        fputs("<tr><td>", hf);
        html_escape(hf, g->name);
        if (v.type == VAL_TENSOR) {
            tensor *t = v.as.t;
            char shape[128], bytes[32];
            shape_text(shape, sizeof shape, t);
            human_bytes(bytes, sizeof bytes, (double)tensor_nbytes(t));
            fprintf(tf, "%-16s %-9s %-6s %-18s %-7s %s%s\n", g->name, "tensor", tensor_dtype_name(t->dtype), shape,
                    t->storage->backend->name, bytes, t->requires_grad ? ", requires grad" : "");
            fprintf(hf, "</td><td>tensor</td><td>%s</td><td>%s</td><td>%s</td><td>%zu</td><td>%s</td><td></td></tr>\n",
                    tensor_dtype_name(t->dtype), shape, t->storage->backend->name, tensor_nbytes(t),
                    t->requires_grad ? "yes" : "no");
        } else {
            char *full = eng_value_text(v, 1);
            char *shown = full ? strdup(full) : NULL;
            if (shown && strlen(shown) > 40 && v.type != VAL_FUNC)
                strcpy(shown + 37, "...");
            char pair[300];
            eng_custom_describe(s, g->name, pair, sizeof pair); /* set_backward's pairs */
            if (shown && pair[0]) {
                char *both = eng_fmt_alloc("%s  [%s]", shown, pair);
                if (both) {
                    free(shown);
                    shown = both;
                }
            }
            fprintf(tf, "%-16s %-9s %-6s %-18s %-7s %s\n", g->name, value_type_name(v.type), "", "", "",
                    shown ? shown : "");
            fprintf(hf, "</td><td>%s</td><td></td><td></td><td></td><td></td><td></td><td><code>",
                    value_type_name(v.type));
            html_escape(hf, shown);
            fputs("</code></td></tr>\n", hf);
            free(full);
            free(shown);
        }
    }
    eng_ktable *kt = s->kernels;
    for (int i = 0; kt && i < kt->n; i++) {
        const eng_kernel *k = kt->items[i];
        char attrs[300];
        eng_kernel_attrs(k, attrs, sizeof attrs);
        if (i == 0)
            fprintf(tf, "%sKernels and __device__ functions (in definition order):\n", any ? "\n" : "");
        fprintf(tf, "  %s   [%s:%d]\n      %s\n", k->signature, k->cell, k->line, attrs);
        fputs("<tr><td>", hf);
        html_escape(hf, k->name);
        fprintf(hf, "</td><td>%s</td><td></td><td></td><td>%s</td><td></td><td></td><td><code>",
                k->is_global ? "kernel" : "__device__", k->drv ? k->drv->name : "");
        html_escape(hf, k->signature);
        fputs("</code><br>", hf);
        html_escape(hf, attrs);
        fputs("</td></tr>\n", hf);
        any = 1;
    }
    if (!any)
        fputs("The session has no variables yet.\n", tf);
    fputs("</tbody>\n</table>\n", hf);
    return dual_send(s, &d, any, "whos", err);
}

/* ---- the session's tensors by size: %gpu and out-of-memory errors ---- */

typedef struct live_tensor {
    const char *name;   /* the variable */
    int grad;           /* 1: its .grad */
    const tensor *t;    /* the tensor (borrowed from the session) */
} live_tensor;

static int live_cmp(const void *a, const void *b)
{
    size_t x = ((const live_tensor *)a)->t->storage->bytes, y = ((const live_tensor *)b)->t->storage->bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The distinct storages that the session's tensor variables and their gradients hold
 * (on be, or anywhere when be is NULL), largest first; *total gets their bytes. A view
 * counts once, under the first variable that holds its storage. malloc'ed; NULL when
 * there are none (or no memory). */
static live_tensor *live_tensors(eng_session *s, const eng_backend *be, int *n, double *total)
{
    live_tensor *v = NULL;
    int cap = 0;
    *n = 0;
    *total = 0;
    for (int i = 0; i < s->nglobals; i++) {
        eng_global *g = &s->globals[i];
        if (!g->defined || g->v.type != VAL_TENSOR)
            continue;
        const tensor *ts[2] = {g->v.as.t, g->v.as.t->grad};
        for (int k = 0; k < 2; k++) {
            const tensor *t = ts[k];
            if (!t || (be && t->storage->backend != be))
                continue;
            int dup = 0;
            for (int j = 0; j < *n && !dup; j++)
                dup = v[j].t->storage == t->storage;
            if (dup)
                continue;
            if (*n == cap) {
                int nc = cap ? cap * 2 : 32;
                live_tensor *nv = realloc(v, sizeof *v * (size_t)nc);
                if (!nv)
                    break;
                v = nv;
                cap = nc;
            }
            v[(*n)++] = (live_tensor){g->name, k, t};
            *total += (double)t->storage->bytes;
        }
    }
    if (*n)
        qsort(v, (size_t)*n, sizeof *v, live_cmp);
    return v;
}

void eng_oom_note(void *user, const eng_backend *be, char *buf, size_t n)
{
    eng_session *s = user;
    if (!n)
        return;
    buf[0] = 0;
    if (!s)
        return;
    int cnt;
    double total;
    live_tensor *v = live_tensors(s, be, &cnt, &total);
    if (!cnt) {
        snprintf(buf, n, "no variable holds a tensor on %s", be->name);
        free(v);
        return;
    }
    size_t l = (size_t)snprintf(buf, n, "largest live tensors on %s:", be->name);
    for (int i = 0; i < cnt && i < 5 && l < n; i++) {
        char hb[32];
        eng_human_bytes(hb, sizeof hb, (double)v[i].t->storage->bytes);
        l += (size_t)snprintf(buf + l, n - l, "%s %s%s %s", i ? "," : "", v[i].name, v[i].grad ? ".grad" : "", hb);
    }
    if (cnt > 5 && l < n)
        snprintf(buf + l, n - l, " (and %d more)", cnt - 5);
    free(v);
}

/* one allocator's counters as text lines and HTML rows */
static void alloc_report(FILE *tf, FILE *hf, const char *which, const eng_alloc_stats *st)
{
    char a[32], b[32], c[32], d[32];
    eng_human_bytes(a, sizeof a, (double)st->in_use);
    eng_human_bytes(b, sizeof b, (double)st->cached);
    eng_human_bytes(c, sizeof c, (double)st->peak);
    eng_human_bytes(d, sizeof d, (double)st->reserved);
    fprintf(tf, "%s allocator: in use %s, cached %s, reserved %s, peak %s\n", which, a, b, d, c);
    fprintf(tf, "  allocations %llu (cache hits %llu), raw allocations %llu, raw frees %llu, out of memory %llu, "
                "cache releases %llu\n",
            (unsigned long long)st->n_alloc, (unsigned long long)st->n_hit, (unsigned long long)st->n_raw_alloc,
            (unsigned long long)st->n_raw_free, (unsigned long long)st->n_oom, (unsigned long long)st->n_flush);
    fprintf(hf, "<tr><th colspan=\"2\">%s allocator</th></tr>\n", which);
    fprintf(hf, "<tr><td>in use</td><td>%s (%zu bytes)</td></tr>\n<tr><td>cached</td><td>%s</td></tr>\n"
                "<tr><td>reserved</td><td>%s</td></tr>\n<tr><td>peak</td><td>%s</td></tr>\n",
            a, st->in_use, b, d, c);
    fprintf(hf, "<tr><td>allocations</td><td>%llu</td></tr>\n<tr><td>cache hits</td><td>%llu</td></tr>\n"
                "<tr><td>raw allocations (cudaMalloc)</td><td>%llu</td></tr>\n<tr><td>raw frees</td><td>%llu</td></tr>\n"
                "<tr><td>out of memory</td><td>%llu</td></tr>\n<tr><td>cache releases</td><td>%llu</td></tr>\n",
            (unsigned long long)st->n_alloc, (unsigned long long)st->n_hit, (unsigned long long)st->n_raw_alloc,
            (unsigned long long)st->n_raw_free, (unsigned long long)st->n_oom, (unsigned long long)st->n_flush);
}

/* %gpu: the device, its allocator's counters and the largest live tensors by variable
 * name; text/plain and an HTML table. Only numbers something measured. */
static int magic_gpu(eng_session *s, eng_error *err)
{
    dual_out d;
    if (dual_open(&d, "gpu", err))
        return -1;
    FILE *tf = d.tf, *hf = d.hf;
    const eng_backend *cur = eng_current_backend();
    fprintf(tf, "Session device: %s\n", cur->name);
    fputs("<table class=\"kiln-gpu\">\n<tbody>\n", hf);
    fprintf(hf, "<tr><th>session device</th><td>%s</td></tr>\n", cur->name);
    int have_gpu = 0;
    const eng_backend *gpu = eng_backend_linked("cuda");
    eng_error e = {0};
    if (gpu && gpu->device_info && (!gpu->usable || !gpu->usable(&e))) {
        eng_device_info p;
        if (gpu->device_info(&p, &e) == 0) {
            char a[32], b[32];
            eng_human_bytes(a, sizeof a, (double)p.total_mem);
            eng_human_bytes(b, sizeof b, (double)p.free_mem);
            fprintf(tf, "GPU %d: %s, compute capability %d.%d (%s), %d SMs, memory %s", p.ordinal, p.name, p.major,
                    p.minor, p.arch, p.sm_count, a);
            if (p.have_free)
                fprintf(tf, ", %s free", b);
            fputc('\n', tf);
            fputs("<tr><th>GPU</th><td>", hf);
            html_escape(hf, p.name);
            fprintf(hf, " (ordinal %d)</td></tr>\n<tr><td>compute capability</td><td>%d.%d (%s), %d SMs</td></tr>\n"
                        "<tr><td>memory total</td><td>%s</td></tr>\n",
                    p.ordinal, p.major, p.minor, p.arch, p.sm_count, a);
            if (p.have_free)
                fprintf(hf, "<tr><td>memory free</td><td>%s</td></tr>\n", b);
            eng_alloc_stats st = {0};
            if (gpu->alloc_stats)
                gpu->alloc_stats(&st);
            alloc_report(tf, hf, "CUDA", &st);
            have_gpu = 1;
        } else {
            fprintf(tf, "GPU unusable: %s\n", e.msg);
            fputs("<tr><th>GPU</th><td>unusable: ", hf);
            html_escape(hf, e.msg);
            fputs("</td></tr>\n", hf);
        }
    }
    if (!have_gpu) {
        fputs("No CUDA device: no GPU memory or CUDA allocator to show.\n", tf);
        fputs("<tr><th>GPU</th><td>no CUDA device</td></tr>\n", hf);
    }
    const eng_backend *sim = eng_backend_linked("sim");
    eng_alloc_stats sst = {0};
    if (sim && sim->alloc_stats)
        sim->alloc_stats(&sst);
    if (sim && (cur == sim || sst.n_alloc)) {
        size_t cap = sim->capacity ? sim->capacity() : 0;
        char a[32];
        eng_human_bytes(a, sizeof a, (double)cap);
        fprintf(tf, "Simulator backend (sim: the CUDA kernels on the CPU, host memory%s%s):\n",
                cap ? ", capacity " : "", cap ? a : "");
        alloc_report(tf, hf, "sim", &sst);
    }
    int n;
    double total;
    live_tensor *v = live_tensors(s, NULL, &n, &total);
    char hb[32];
    eng_human_bytes(hb, sizeof hb, total);
    if (!n)
        fputs("No tensor variables.\n", tf);
    else
        fprintf(tf, "Largest live tensors (%d storage%s, %s in all):\n  %-20s %-6s %-6s %-18s %s\n", n,
                n == 1 ? "" : "s", hb, "Variable", "Device", "Dtype", "Shape", "Bytes");
    fprintf(hf, "<tr><th colspan=\"2\">largest live tensors (%d, %s in all)</th></tr>\n", n, hb);
    fputs("</tbody>\n</table>\n", hf);
    if (n)
        fputs("<table class=\"kiln-gpu-tensors\">\n<thead><tr><th>Variable</th><th>Device</th><th>Dtype</th>"
              "<th>Shape</th><th>Bytes</th></tr></thead>\n<tbody>\n", hf);
    for (int i = 0; i < n && i < 10; i++) {
        const tensor *t = v[i].t;
        char shape[128], name[300];
        shape_text(shape, sizeof shape, t);
        eng_human_bytes(hb, sizeof hb, (double)t->storage->bytes);
        snprintf(name, sizeof name, "%s%s", v[i].name, v[i].grad ? ".grad" : "");
        fprintf(tf, "  %-20s %-6s %-6s %-18s %s\n", name, t->storage->backend->name, tensor_dtype_name(t->dtype), shape,
                hb);
        fputs("<tr><td>", hf);
        html_escape(hf, name);
        fprintf(hf, "</td><td>%s</td><td>%s</td><td>%s</td><td>%zu</td></tr>\n", t->storage->backend->name,
                tensor_dtype_name(t->dtype), shape, t->storage->bytes);
    }
    if (n > 10)
        fprintf(tf, "  (and %d more)\n", n - 10);
    if (n)
        fputs("</tbody>\n</table>\n", hf);
    free(v);
    return dual_send(s, &d, 1, "gpu", err);
}

/* %device [cpu|cuda|sim]: where the session's new tensors are made */
static int magic_device(eng_session *s, const char *rest, eng_error *err)
{
    char name[32];
    int n = 0;
    while (rest[n] && !isspace((unsigned char)rest[n]) && n < (int)sizeof name - 1)
        name[n] = rest[n], n++;
    name[n] = 0;
    eng_error cuda_err = {0};
    const eng_backend *cuda = eng_backend_named("cuda", &cuda_err);
    if (!n) {
        out(s, "Device: %s (new tensors are made there)\n", eng_current_backend()->name);
        out(s, "Available: cpu; sim (the CUDA backend's kernels on the CUDA simulator, on the CPU: for testing)");
        if (cuda)
            out(s, "; cuda\n");
        else
            out(s, "; not cuda: %s\n", cuda_err.msg);
        return 0;
    }
    if (strcmp(name, "cpu") && strcmp(name, "cuda") && strcmp(name, "sim"))
        return eng_fail(err, ERR_VALUE, "%%device takes cpu, cuda or sim, got '%s'", name);
    eng_error e = {0};
    const eng_backend *be = eng_backend_named(name, &e);
    if (!be)
        return eng_fail(err, e.kind ? e.kind : ERR_RUNTIME,
                        "%%device %s: %s; the session stays on %s (%%device sim runs the CUDA backend's kernels on "
                        "the CUDA simulator, on the CPU)", name, e.msg, eng_current_backend()->name);
    eng_set_current_backend(be);
    out(s, "Device: %s (new tensors are made there; tensors made before stay where they are: x.to(%s) copies one)\n",
        be->name, be->name);
    return 0;
}

/* %ptx NAME: the kernel's compiled form, as the driver of the current backend gives it
 * (NVRTC: PTX; the simulator: the C++ it compiled) */
static int magic_ptx(eng_session *s, const char *rest, eng_error *err)
{
    int n = 0;
    while (isalnum((unsigned char)rest[n]) || rest[n] == '_')
        n++;
    if (!n)
        return eng_fail(err, ERR_VALUE, "%%ptx needs a kernel's name, as in %%ptx saxpy");
    eng_kernel *k = eng_kernel_find(s->kernels, rest, n);
    if (!k)
        return eng_fail(err, ERR_NAME, "%%ptx: no kernel named '%.*s'", n, rest);
    if (!k->is_global)
        return eng_fail(err, ERR_TYPE, "%%ptx: %s is a __device__ function: it is compiled into the kernels that "
                        "call it (%%ptx one of those)", k->name);
    const eng_kdriver *cur = eng_current_backend()->kernels;
    char *code = NULL;
    const eng_backend *gpu = eng_backend_linked("cuda");
    const eng_kdriver *nv = gpu ? gpu->kernels : NULL;
    if ((!cur || !strcmp(cur->name, "sim")) && nv && nv->code_offline) {
        /* tensors live on the CPU: NVRTC compiles PTX anyway (no device needed) */
        char *tu = eng_kernel_tu(s->kernels, k);
        if (!tu)
            return eng_fail(err, ERR_MEMORY, "%%ptx: out of memory");
        eng_error e = {0};
        code = nv->code_offline(tu, &e);
        free(tu);
        if (!code) /* e's line is the compiler's, not this cell's: the messages name it */
            return eng_fail(err, e.kind ? e.kind : ERR_COMPILE, "%%ptx: kernel %s did not compile: %s", k->name,
                            e.msg);
        out(s, "// PTX of %s from NVRTC for sm_90 (no GPU in use: the session's tensors are on the cpu)\n", k->name);
    }
    if (!code) {
        const eng_kdriver *drv = NULL;
        char *details = NULL;
        eng_kmodule *m = eng_kernel_module(s->kernels, k, &drv, &details, err);
        if (!m) {
            if (details) {
                size_t l = strlen(err->msg);
                snprintf(err->msg + l, sizeof err->msg - l, "\n%s", details);
            }
            free(details);
            return -1;
        }
        if (!drv->code)
            return eng_fail(err, ERR_RUNTIME, "%%ptx: the %s driver cannot show compiled code", drv->name);
        if (!(code = drv->code(m, err)))
            return -1;
        if (!strcmp(drv->name, "sim"))
            out(s, "// NVRTC is not in this build: %s runs on the CUDA simulator, whose generated C++ follows\n",
                k->name);
    }
    (void)cur;
    eng_flush(s);
    eng_stream(s, 1, code, strlen(code));
    if (*code && code[strlen(code) - 1] != '\n')
        eng_stream(s, 1, "\n", 1);
    free(code);
    return 0;
}

/* %memory: the host memory budget (engine/base/hostmem.h); %memory limit SIZE|off sets it */
static int magic_memory(eng_session *s, const char *rest, eng_error *err)
{
    if (!strncmp(rest, "limit", 5) && (!rest[5] || isspace((unsigned char)rest[5]))) {
        const char *v = rest + 5;
        while (isspace((unsigned char)*v))
            v++;
        size_t bytes = 0;
        if (!strncmp(v, "off", 3) || !strncmp(v, "none", 4))
            bytes = 0;
        else if (!*v || eng_parse_bytes(v, &bytes) < 0)
            return eng_fail(err, ERR_VALUE, "%%memory limit takes a size (as 2G, 512M, 1048576) or off, got '%s'",
                            v);
        eng_hostmem_set_limit(bytes, "set by %memory limit");
        char l[32];
        eng_human_bytes(l, sizeof l, (double)bytes);
        out(s, "Host memory limit: %s\n", bytes ? l : "none");
        if (bytes && eng_hostmem_used() >= bytes) {
            eng_human_bytes(l, sizeof l, (double)eng_hostmem_used());
            out(s, "(%s is in use already: new tensors and strings fail until some are freed)\n", l);
        }
        return 0;
    } else if (*rest)
        return eng_fail(err, ERR_VALUE, "%%memory takes nothing, or limit SIZE|off, got '%s'", rest);
    char u[32], l[32], a[32];
    size_t lim = eng_hostmem_limit(), avail = eng_hostmem_available();
    eng_human_bytes(u, sizeof u, (double)eng_hostmem_used());
    out(s, "Host memory: %s held by tensors and strings\n", u);
    if (lim) {
        eng_human_bytes(l, sizeof l, (double)lim);
        out(s, "Limit: %s (%s)\n", l, eng_hostmem_limit_source());
    } else
        out(s, "Limit: none%s%s\n", *eng_hostmem_limit_source() ? "; " : "", eng_hostmem_limit_source());
    if (avail != SIZE_MAX) {
        eng_human_bytes(a, sizeof a, (double)avail);
        out(s, "Available on this machine: %s; one allocation may take at most three quarters of it\n", a);
    }
    return 0;
}

/* ---- the dispatch table ---- */

/* %save PATH / %load PATH (a path may be quoted) */
static int magic_save_load(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    int save = !strcmp(name, "save");
    if (!*rest)
        return eng_fail(err, ERR_VALUE, "%%%s needs a file name, as in %%%s session.npz", name, name);
    char path[4096];
    snprintf(path, sizeof path, "%s", rest);
    size_t pl = strlen(path);
    while (pl > 0 && isspace((unsigned char)path[pl - 1]))
        path[--pl] = 0;
    if (pl >= 2 && (path[0] == '"' || path[0] == '\'') && path[pl - 1] == path[0]) {
        path[pl - 1] = 0;
        memmove(path, path + 1, pl - 1);
    }
    char *summary = NULL;
    int rc = save ? eng_session_save(s, path, &summary, err) : eng_session_load(s, path, &summary, err);
    if (!rc && summary)
        out(s, "%s", summary);
    free(summary);
    return rc;
}

static int magic_reset(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    eng_session_reset(s);
    out(s, "Session reset: every variable, function and kernel is gone.\n");
    return 0;
}

static int magic_seed(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    char *end;
    long long v = strtoll(rest, &end, 0);
    if (end == rest)
        return eng_fail(err, ERR_VALUE, "%%seed needs an integer, as in %%seed 42");
    s->rng.seed = (uint64_t)v;
    s->rng.offset = 0;
    return 0;
}

static int magic_sim(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    if (!strncmp(rest, "check", 5))
        s->kernels->check = 1;
    else if (!strncmp(rest, "fast", 4))
        s->kernels->check = 0;
    else if (*rest)
        return eng_fail(err, ERR_VALUE, "%%sim takes check or fast, got '%s'", rest);
    out(s, "Simulator: %s\n", s->kernels->check
                                  ? "checking builds (AddressSanitizer: out-of-bounds accesses are reported "
                                    "with the kernel's line; slower)"
                                  : "fast builds in a worker process (a crash, a hang or a write past a tensor's "
                                    "end is an error naming the line; %sim check also finds overruns of a few bytes)");
    return 0;
}

static int magic_debug_thread(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    return eng_kdebug_magic_thread(s->kernels, s, rest, err);
}
static int magic_ktrace(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    return eng_kdebug_magic_trace(s->kernels, s, rest, err);
}

/* the table's adapters for the magics written before it */
static int run_time(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    return magic_time(s, rest, src, err, !strcmp(name, "timeit"));
}
static int run_whos(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    return magic_whos(s, err);
}
static int run_gpu(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    return magic_gpu(s, err);
}
static int run_device(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    return magic_device(s, rest, err);
}
static int run_memory(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    return magic_memory(s, rest, err);
}
static int run_ptx(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    return magic_ptx(s, rest, err);
}
static int magic_lsmagic(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err);

/* One row per magic: its name, how it is used (for %lsmagic) and its handler, which
 * gets the name it was called by and the rest of the line, spaces skipped. */
typedef struct magic_row {
    const char *name;
    const char *usage;
    int (*run)(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err);
} magic_row;

static const magic_row magics[] = {
    {"time", "%time STMT", run_time},
    {"timeit", "%timeit STMT", run_time},
    {"whos", "%whos", run_whos},
    {"gpu", "%gpu", run_gpu},
    {"save", "%save PATH", magic_save_load},
    {"load", "%load PATH", magic_save_load},
    {"reset", "%reset", magic_reset},
    {"seed", "%seed N", magic_seed},
    {"device", "%device cpu|cuda|sim", run_device},
    {"ptx", "%ptx KERNEL", run_ptx},
    {"debug_thread", "%debug_thread bx,by,bz tx,ty,tz|off", magic_debug_thread},
    {"ktrace", "%ktrace [N|off]", magic_ktrace},
    {"sim", "%sim check|fast", magic_sim},
    {"memory", "%memory [limit SIZE|off]", run_memory},
    {"del", "%del NAME ...", eng_magic_del},
    {"source", "%source NAME", eng_magic_source},
    {"lsmagic", "%lsmagic", magic_lsmagic},
    {"help", "%help", magic_lsmagic},
};

static int magic_lsmagic(eng_session *s, const char *name, const char *rest, eng_source *src, eng_error *err)
{
    out(s, "Magics:");
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
        out(s, "%s %s", i ? "," : "", magics[i].usage);
    out(s, "\n");
    if (!strcmp(name, "help"))
        out(s, "The language is documented in docs/language.md; Shift+Tab on a name shows its signature.\n");
    return 0;
}

int eng_magic(eng_session *s, const char *line, eng_source *src, eng_error *err)
{
    while (isspace((unsigned char)*line))
        line++;
    int n = 0;
    while (isalnum((unsigned char)line[n]) || line[n] == '_')
        n++;
    const char *rest = line + n;
    while (isspace((unsigned char)*rest))
        rest++;
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
        if (n == (int)strlen(magics[i].name) && !strncmp(line, magics[i].name, (size_t)n))
            return magics[i].run(s, magics[i].name, rest, src, err);
    return eng_fail(err, ERR_NAME, "unknown magic '%%%.*s' (%%lsmagic lists them)", n, line);
}
