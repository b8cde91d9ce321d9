/* session_report.c — a cell's errors as the user reads them: "cell[3]:2:5: ShapeError:
 * ...", the source line clipped around the column with a caret under it, and the call
 * chain, sent to the sink's error callback. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/train/autograd.h"
#include "engine/lang/interp.h"
#include "engine/lang/kernels.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/lang/session.h"

/* ---- error reports ---- */

typedef struct lines {
    char **v;
    int n, cap;
} lines;

static void lines_add(lines *l, char *owned)
{
    if (!owned)
        return;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->v, sizeof *p * (size_t)cap);
        if (!p) {
            free(owned);
            return;
        }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = owned;
}

char *eng_fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0)
        p = NULL;
    va_end(ap);
    return p;
}

#define SOURCE_EXCERPT 200 /* bytes of a long source line shown around the column */

int eng_source_excerpt(const eng_source *src, int line, int col, char **text, char **caret)
{
    const char *p = src->text;
    for (int l = 1; l < line && p && *p; l++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || !*p)
        return -1;
    const char *end = strchr(p, '\n');
    size_t full = end ? (size_t)(end - p) : strlen(p);
    if (full > 0 && p[full - 1] == '\r')
        full--;
    /* a long line is clipped to an excerpt around the column, with '…' where cut */
    size_t from = 0, to = full, c = col > 0 ? (size_t)col - 1 : 0;
    if (full > SOURCE_EXCERPT) {
        from = c > SOURCE_EXCERPT / 2 ? c - SOURCE_EXCERPT / 2 : 0;
        if (from + SOURCE_EXCERPT > full)
            from = full - SOURCE_EXCERPT;
        to = from + SOURCE_EXCERPT;
        while (from > 0 && ((unsigned char)p[from] & 0xC0) == 0x80) /* whole UTF-8 characters */
            from--;
        while (to < full && ((unsigned char)p[to] & 0xC0) == 0x80)
            to++;
    }
    const char *head = from > 0 ? "\xe2\x80\xa6" : "", *tail = to < full ? "\xe2\x80\xa6" : "";
    *text = eng_fmt_alloc("    %s%.*s%s", head, (int)(to - from), p + from, tail);
    *caret = malloc(to - from + 8);
    if (!*text || !*caret) {
        free(*text);
        free(*caret);
        return -1;
    }
    size_t k = 0;
    for (int i = 0; i < 4 + (from > 0); i++) /* the '…' takes one column */
        (*caret)[k++] = ' ';
    for (size_t i = from; i < c && i < to; i++)
        (*caret)[k++] = p[i] == '\t' ? '\t' : ' ';
    (*caret)[k++] = '^';
    (*caret)[k] = 0;
    return 0;
}

/* "name:line:col: Kind: message", then eng_source_excerpt's two lines */
static void describe_error(lines *out, const eng_source *src, const eng_error *e)
{
    const char *kind = eng_errkind_name(e->kind);
    if (!src || e->line <= 0) {
        lines_add(out, eng_fmt_alloc("%s: %s: %s", src ? src->name : "cell", kind, e->msg));
        return;
    }
    lines_add(out, eng_fmt_alloc("%s:%d:%d: %s: %s", src->name, e->line + src->first_line - 1, e->col, kind, e->msg));
    char *text, *caret;
    if (eng_source_excerpt(src, e->line, e->col, &text, &caret) == 0) {
        lines_add(out, text);
        lines_add(out, caret);
    }
}

void eng_report(eng_session *s, const eng_source *src, const eng_error *errs, int nshown, int ntotal,
                   const eng_source *err_src, const eng_trace *trace)
{
    lines out = {0};
    for (int i = 0; i < nshown; i++)
        describe_error(&out, err_src ? err_src : src, &errs[i]);
    if (ntotal > nshown)
        lines_add(&out, eng_fmt_alloc("... and %d more error%s", ntotal - nshown, eng_s(ntotal - nshown)));
    if (trace) { /* deep recursion: the innermost and outermost calls, not a thousand lines */
        const int head = 6, tail = 5;
        for (int i = 0; i < trace->n; i++) {
            if (trace->n > head + tail + 1 && i == head) {
                lines_add(&out, eng_fmt_alloc("  ... %d more calls ...", trace->n - head - tail));
                i = trace->n - tail - 1;
                continue;
            }
            lines_add(&out, strdup(trace->lines[i]));
        }
    }
    char evalue[700];
    if (ntotal > 1)
        snprintf(evalue, sizeof evalue, "%s (and %d more error%s)", errs[0].msg, ntotal - 1, ntotal > 2 ? "s" : "");
    else
        snprintf(evalue, sizeof evalue, "%s", errs[0].msg);
    eng_error_report r = {eng_errkind_name(errs[0].kind), evalue, (const char **)out.v, out.n};
    eng_flush(s);
    if (s->sink && s->sink->error)
        s->sink->error(s->sink->user, &r);
    for (int i = 0; i < out.n; i++)
        free(out.v[i]);
    free(out.v);
}

