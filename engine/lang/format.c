/* format.c — text of values, C's printf over values, and the stream buffer that
 * gathers a cell's stdout before it goes to the sink. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/tensor/backend.h"
#include "engine/lang/interp.h"
#include "engine/base/strbuf.h"
#include "engine/base/context.h"

/* ---- a growable string ---- */
typedef strbuf sbuf;
#define sb_append strbuf_put
#define sb_printf strbuf_printf
#define sb_finish strbuf_finish

/* the shortest %g that reads back as the same double, always with a '.' or 'e' */
static void float_text(sbuf *b, double f)
{
    char tmp[40];
    if (isnan(f)) {
        sb_append(b, "nan", 3);
        return;
    }
    if (isinf(f)) {
        sb_append(b, f < 0 ? "-inf" : "inf", f < 0 ? 4 : 3);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    sb_append(b, tmp, strlen(tmp));
    if (!strpbrk(tmp, ".en"))
        sb_append(b, ".0", 2);
}

char *eng_value_text(value v, int repr)
{
    return eng_value_text_n(v, repr, NULL);
}

char *eng_value_text_n(value v, int repr, size_t *len)
{
    sbuf b = {0};
    switch (v.type) {
    case VAL_VOID: sb_append(&b, "void", 4); break;
    case VAL_BOOL: sb_printf(&b, "%s", v.as.i ? "true" : "false"); break;
    case VAL_INT: sb_printf(&b, "%lld", (long long)v.as.i); break;
    case VAL_FLOAT: float_text(&b, v.as.f); break;
    case VAL_STRING:
        if (!repr) {
            sb_append(&b, v.as.s->data, (size_t)v.as.s->len);
            break;
        }
        sb_append(&b, "\"", 1);
        for (int64_t i = 0; i < v.as.s->len; i++) {
            unsigned char ch = (unsigned char)v.as.s->data[i];
            switch (ch) {
            case '\n': sb_append(&b, "\\n", 2); break;
            case '\t': sb_append(&b, "\\t", 2); break;
            case '\\': sb_append(&b, "\\\\", 2); break;
            case '"': sb_append(&b, "\\\"", 2); break;
            default:
                if (ch < 32)
                    sb_printf(&b, "\\x%02x", ch);
                else
                    sb_append(&b, (const char *)&ch, 1);
            }
        }
        sb_append(&b, "\"", 1);
        break;
    case VAL_TENSOR: {
        char *t = tensor_format(v.as.t);
        if (!t)
            b.oom = 1;
        else
            sb_append(&b, t, strlen(t));
        free(t);
        break;
    }
    case VAL_TUPLE:
        sb_append(&b, "(", 1);
        for (int i = 0; i < v.as.tup->n; i++)
            sb_printf(&b, i ? ", %lld" : "%lld", (long long)v.as.tup->v[i]);
        sb_append(&b, v.as.tup->n == 1 ? ",)" : ")", v.as.tup->n == 1 ? 2 : 1);
        break;
    case VAL_LIST: /* [item, item]: each item's text as print shows it, strings quoted */
        sb_append(&b, "[", 1);
        for (int i = 0, multi = 0; i < v.as.list->n && !b.oom; i++) {
            char *t = eng_value_text(v.as.list->v[i], 1);
            if (!t)
                b.oom = 1;
            else {
                int m = strchr(t, '\n') != NULL;
                if (i) /* around a tensor of several lines, items go one under another */
                    sb_append(&b, m || multi ? ",\n " : ", ", m || multi ? 3 : 2);
                multi = m;
                for (const char *p = t, *nl; *p; p = nl + 1) { /* lines indented under the '[' */
                    nl = strchr(p, '\n');
                    sb_append(&b, p, nl ? (size_t)(nl - p + 1) : strlen(p));
                    if (!nl)
                        break;
                    sb_append(&b, " ", 1);
                }
            }
            free(t);
        }
        sb_append(&b, "]", 1);
        break;
    case VAL_DTYPE: sb_printf(&b, "%s", tensor_dtype_name((tensor_dtype)v.as.i)); break;
    case VAL_DEVICE: sb_printf(&b, "%s", value_device_name(v.as.i)); break;
    case VAL_FUNC: {
        ast *def = v.as.fn->def;
        static const char *const tn[] = {"?", "void", "bool", "int", "float", "string", "tensor", "auto",
                                   "tuple", "dtype", "device", "function"};
        sb_printf(&b, "%s %s(", tn[def->type], v.as.fn->name);
        for (int i = 0; i < def->nlist; i++)
            sb_printf(&b, "%s%s %s", i ? ", " : "", tn[def->list[i]->type], def->list[i]->str);
        sb_append(&b, ")", 1);
        break;
    }
    default: sb_append(&b, "?", 1); break;
    }
    if (len)
        *len = b.len;
    return sb_finish(&b);
}

/* ---- printf ---- */

enum { FMT_INT, FMT_LLONG, FMT_DOUBLE, FMT_STRING };

/* one conversion of spec (already checked) with nwp '*' values from wp */
static void fmt_one(sbuf *b, const char *spec, int nwp, const int64_t *wp, int kind, long long iv, double d,
                    const char *str)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#define FMT_EMIT(arg)                                                                  \
    (nwp == 2 ? sb_printf(b, spec, (int)wp[0], (int)wp[1], arg)                        \
     : nwp == 1 ? sb_printf(b, spec, (int)wp[0], arg) : sb_printf(b, spec, arg))
    switch (kind) {
    case FMT_INT: FMT_EMIT((int)iv); break;
    case FMT_LLONG: FMT_EMIT(iv); break;
    case FMT_DOUBLE: FMT_EMIT(d); break;
    default: FMT_EMIT(str); break;
    }
#undef FMT_EMIT
#pragma GCC diagnostic pop
}

/* the width or precision written in a format ("%2000000000d"): the n digits at p;
 * LLONG_MAX when they pass a long long */
static long long spec_number(const char *p, int n)
{
    long long v = 0;
    for (int i = 0; i < n; i++)
        v = v > (LLONG_MAX - 9) / 10 ? LLONG_MAX : v * 10 + (p[i] - '0');
    return v;
}

/* a width or precision beyond ENG_FORMAT_MAX: the error naming the conversion */
static int too_wide(eng_call *c, const char *what, long long v, const char *conv, int convlen)
{
    if (v == LLONG_MAX) /* more digits than Kiln reads */
        return eng_fail(c->err, ERR_VALUE, "%s: the %s in '%.*s' has too many digits (its value may be at most %d)",
                        c->name, what, convlen > 60 ? 60 : convlen, conv, ENG_FORMAT_MAX);
    return eng_fail(c->err, ERR_VALUE, "%s: %s %lld in '%.*s' is too large (at most %d)", c->name, what, v,
                    convlen > 60 ? 60 : convlen, conv, ENG_FORMAT_MAX);
}

int eng_format(eng_call *c, int first, char **out, size_t *outlen)
{
    const char *fmt;
    if (arg_string(c, first, &fmt))
        return -1;
    sbuf b = {0};
    int argi = first + 1;
    const char *p = fmt;
    while (*p) {
        if (eng_ctx_interrupted()) { /* a long format stops at the next conversion */
            free(b.p);
            return eng_fail(c->err, ERR_INTERRUPT, "interrupted");
        }
        const char *pct = strchr(p, '%');
        if (!pct) {
            sb_append(&b, p, strlen(p));
            break;
        }
        sb_append(&b, p, (size_t)(pct - p));
        p = pct + 1;
        if (*p == '%') {
            sb_append(&b, "%", 1);
            p++;
            continue;
        }
        /* flags, width, precision, length, conversion */
        char spec[64];
        int n = 0;
        spec[n++] = '%';
        while (*p && strchr("-+ #0", *p) && n < 20)
            spec[n++] = *p++;
        int star_w = 0, star_p = 0;
        long long lit_w = 0, lit_p = 0; /* widths written in the format */
        if (*p == '*') {
            star_w = 1;
            spec[n++] = *p++;
        } else {
            int from = n;
            while (*p >= '0' && *p <= '9' && n < 30)
                spec[n++] = *p++;
            lit_w = spec_number(spec + from, n - from);
            while (*p >= '0' && *p <= '9') /* digits past spec's room: too wide anyway */
                lit_w = LLONG_MAX, p++;
        }
        if (*p == '.') {
            spec[n++] = *p++;
            if (*p == '*') {
                star_p = 1;
                spec[n++] = *p++;
            } else {
                int from = n;
                while (*p >= '0' && *p <= '9' && n < 40)
                    spec[n++] = *p++;
                lit_p = spec_number(spec + from, n - from);
                while (*p >= '0' && *p <= '9')
                    lit_p = LLONG_MAX, p++;
            }
        }
        while (*p && strchr("hlLjzt", *p))
            p++; /* lengths are implied by the value */
        char conv = *p;
        if (!conv || !strchr("diuxXocsfFeEgGaA", conv)) {
            free(b.p);
            return eng_fail(c->err, ERR_VALUE, "%s: unknown conversion '%%%c' in the format",
                            c->name, conv ? conv : ' ');
        }
        p++;
        int convlen = (int)(p - pct);
        if (lit_w > ENG_FORMAT_MAX || lit_p > ENG_FORMAT_MAX) {
            free(b.p);
            return too_wide(c, lit_w > ENG_FORMAT_MAX ? "width" : "precision",
                            lit_w > ENG_FORMAT_MAX ? lit_w : lit_p, pct, convlen);
        }
        int64_t wp[2] = {0, 0};
        int nwp = 0;
        if (star_w || star_p) {
            for (int k = 0; k < star_w + star_p; k++) {
                if (argi >= c->argc || arg_int(c, argi, &wp[nwp])) {
                    free(b.p);
                    return eng_fail(c->err, ERR_TYPE, "%s: missing int argument for '*' in the format",
                                    c->name);
                }
                /* a negative width is the '-' flag; a negative precision is none */
                int is_w = star_w && k == 0;
                int64_t v = wp[nwp];
                if ((is_w && (v > ENG_FORMAT_MAX || v < -ENG_FORMAT_MAX)) || (!is_w && v > ENG_FORMAT_MAX)) {
                    free(b.p);
                    return too_wide(c, is_w ? "width" : "precision", (long long)v, pct, convlen);
                }
                argi++;
                nwp++;
            }
        }
        if (argi >= c->argc) {
            free(b.p);
            return eng_fail(c->err, ERR_TYPE, "%s: the format needs more arguments than the %d given",
                            c->name, c->argc - first - 1);
        }
        value v = c->argv[argi];
        int rc = 0;
        if (strchr("diuxXoc", conv)) {
            int64_t iv;
            if (v.type == VAL_FLOAT || (v.type == VAL_TENSOR && tensor_dtype_is_float(v.as.t->dtype)))
                rc = eng_fail(c->err, ERR_TYPE, "%s: '%%%c' needs an int, argument %d is a float "
                              "(use %%f, or (int) to convert)", c->name, conv, argi + 1);
            else
                rc = arg_int(c, argi, &iv);
            if (!rc) {
                if (conv == 'c') { /* %c prints one char: an int argument */
                    spec[n++] = 'c';
                    spec[n] = 0;
                    fmt_one(&b, spec, nwp, wp, FMT_INT, (long long)(unsigned char)iv, 0, NULL);
                } else {
                    spec[n++] = 'l';
                    spec[n++] = 'l';
                    spec[n++] = conv == 'i' ? 'd' : conv;
                    spec[n] = 0;
                    fmt_one(&b, spec, nwp, wp, FMT_LLONG, (long long)iv, 0, NULL);
                }
            }
        } else if (conv == 's') {
            size_t tlen = 0;
            char *text = eng_value_text_n(v, 0, &tlen);
            spec[n++] = 's';
            spec[n] = 0;
            if (!text)
                rc = eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
            else if (n == 2) /* a plain %s: every byte, NULs too */
                sb_append(&b, text, tlen);
            else
                fmt_one(&b, spec, nwp, wp, FMT_STRING, 0, 0, text);
            free(text);
        } else {
            double d;
            rc = arg_double(c, argi, &d);
            if (!rc) {
                spec[n++] = conv;
                spec[n] = 0;
                fmt_one(&b, spec, nwp, wp, FMT_DOUBLE, 0, d, NULL);
            }
        }
        if (rc) {
            free(b.p);
            return -1;
        }
        argi++;
    }
    if (argi < c->argc) {
        free(b.p);
        return eng_fail(c->err, ERR_TYPE, "%s: %d argument%s given but the format uses %d", c->name,
                        c->argc - first - 1, eng_s(c->argc - first - 1), argi - first - 1);
    }
    if (outlen)
        *outlen = b.len;
    *out = sb_finish(&b);
    return *out ? 0 : eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
}

/* ---- streams ---- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void eng_flush(eng_session *s)
{
    if (s->outlen > 0 && s->sink && s->sink->stream)
        s->sink->stream(s->sink->user, 1, s->outbuf, (size_t)s->outlen);
    s->outlen = 0;
    s->last_flush = now_seconds();
}

/* stdout is gathered and sent when the buffer fills, every 0.1 s of a long cell, and
 * at the end of the cell; stderr goes at once, after what stdout has gathered */
void eng_stream(eng_session *s, int fd, const char *text, size_t len)
{
    if (fd != 1) {
        eng_flush(s);
        if (s->sink && s->sink->stream)
            s->sink->stream(s->sink->user, fd, text, len);
        return;
    }
    while (len > 0) {
        size_t room = sizeof s->outbuf - (size_t)s->outlen;
        size_t n = len < room ? len : room;
        memcpy(s->outbuf + s->outlen, text, n);
        s->outlen += (int)n;
        text += n;
        len -= n;
        if (s->outlen == (int)sizeof s->outbuf)
            eng_flush(s);
    }
    if (s->outlen > 0 && now_seconds() - s->last_flush > 0.1)
        eng_flush(s);
}

/* text/html of a tensor: a caption (shape, dtype, device) and, for a 2-D (or 1-D)
 * tensor of at most 50×50, a table of its values; larger ones show the caption and
 * the NumPy-like text. malloc'ed, NULL on allocation failure. */
#define HTML_TABLE_MAX 50
static char *tensor_html(const tensor *t)
{
    sbuf b = {0};
    sb_append(&b, "<div class=\"kiln-tensor\">", 25);
    sb_printf(&b, "<div><code>tensor</code> shape [");
    for (int d = 0; d < t->ndim; d++)
        sb_printf(&b, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    sb_printf(&b, "], dtype %s, device %s</div>\n", tensor_dtype_name(t->dtype), t->storage->backend->name);
    int64_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = t->ndim == 2 ? t->shape[1] : t->ndim == 1 ? t->shape[0] : 0;
    if ((t->ndim == 2 || t->ndim == 1) && rows <= HTML_TABLE_MAX && cols <= HTML_TABLE_MAX && cols > 0 && rows > 0) {
        int isf = tensor_dtype_is_float(t->dtype);
        sb_printf(&b, "<table class=\"kiln-tensor-table\">\n<thead><tr><th></th>");
        for (int64_t j = 0; j < cols; j++)
            sb_printf(&b, "<th>%lld</th>", (long long)j);
        sb_printf(&b, "</tr></thead>\n<tbody>\n");
        for (int64_t i = 0; i < rows; i++) {
            sb_printf(&b, "<tr><th>%lld</th>", (long long)i);
            for (int64_t j = 0; j < cols; j++) {
                double x = tensor_get_flat(t, i * cols + j);
                if (t->dtype == DT_BOOL)
                    sb_printf(&b, "<td>%s</td>", x != 0 ? "true" : "false");
                else if (isf && isnan(x))
                    sb_printf(&b, "<td>nan</td>");
                else if (isf)
                    sb_printf(&b, "<td>%.6g</td>", x);
                else
                    sb_printf(&b, "<td>%lld</td>", (long long)x);
            }
            sb_printf(&b, "</tr>\n");
        }
        sb_printf(&b, "</tbody>\n</table>");
    } else {
        char *text = tensor_format(t);
        sb_printf(&b, "<pre>");
        for (const char *p = text; p && *p; p++) {
            if (*p == '<')
                sb_append(&b, "&lt;", 4);
            else if (*p == '>')
                sb_append(&b, "&gt;", 4);
            else if (*p == '&')
                sb_append(&b, "&amp;", 5);
            else
                sb_append(&b, p, 1);
        }
        sb_printf(&b, "</pre>");
        if (!text)
            b.oom = 1;
        free(text);
    }
    sb_printf(&b, "</div>\n");
    return sb_finish(&b);
}

int eng_show(eng_session *s, value v, int as_result, const char *display_id, int update, eng_error *err)
{
    char *text = eng_value_text(v, 1);
    if (!text)
        return eng_fail(err, ERR_MEMORY, "display: out of memory");
    eng_bundle b = {.n = 1, .display_id = display_id};
    b.items[0].mime = "text/plain";
    b.items[0].data = text;
    /* a 0-d tensor shows as its value alone, as NumPy shows a 0-d array's (no box) */
    char *html = v.type == VAL_TENSOR && v.as.t->ndim > 0 ? tensor_html(v.as.t) : NULL;
    if (html) {
        b.items[1].mime = "text/html";
        b.items[1].data = html;
        b.n = 2;
    }
    eng_flush(s);
    if (s->sink) {
        if (as_result && s->sink->result)
            s->sink->result(s->sink->user, &b);
        else if (!as_result && s->sink->display)
            s->sink->display(s->sink->user, &b, update);
    }
    free(text);
    free(html);
    return 0;
}
