/* tensor_print.c — tensors as text, the way NumPy's repr lays them out (without the
 * "array(" wrapper):
 *
 *     [[1. , 2.5],
 *      [3. , 4. ]]
 *
 * Floats: each element with the fewest fractional digits (at most 8) that give back
 * its value in its own dtype, all aligned on the point by padding on the right, then on
 * the left to one width; scientific notation ("1.5e-05") when the largest magnitude is
 * >= 1e8, the smallest non-zero one < 1e-4, or their ratio > 1e3, as NumPy decides.
 * Integers right-aligned; bools as true/false. Past 1000 elements the text is
 * summarised: each dimension longer than 6 shows 3 items at each edge around "...".
 * Rows wrap at 75 columns. A 0-d tensor prints as its one value ("3.0").
 */
#include "engine/tensor/tensor_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRINT_THRESHOLD 1000
#define PRINT_EDGE 3
#define PRINT_PRECISION 8
#define PRINT_LINEWIDTH 75

/* a growing string */
typedef struct sbuf {
    char *s;    /* NUL-terminated text, or NULL after a failed allocation */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
    if (!b->s)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            free(b->s);
            b->s = NULL;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_add(sbuf *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

static void sb_spaces(sbuf *b, int n)
{
    for (int i = 0; i < n; i++)
        sb_addn(b, " ", 1);
}

/* ---- elements ---- */

typedef struct pcell {
    double f;  /* float value */
    int64_t i; /* integer value (ints and bools) */
} pcell;

/* the element at a multi-index, read through the backend */
static pcell fetch(const tensor *t, const int64_t *idx)
{
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++)
        off += idx[d] * t->stride[d];
    size_t es = tensor_dtype_size(t->dtype);
    unsigned char raw[8] = {0};
    pcell c = {0, 0};
    if (t->storage->backend->to_host(raw, (char *)t->storage->data + off * (int64_t)es, es, NULL) < 0)
        return c;
    switch (t->dtype) {
    case DT_BOOL: c.i = raw[0] != 0; break;
    case DT_U8: c.i = raw[0]; break;
    case DT_I32: { int32_t v; memcpy(&v, raw, 4); c.i = v; break; }
    case DT_I64: memcpy(&c.i, raw, 8); break;
    default: c.f = tensor_host_load(t->dtype, raw); break;
    }
    return c;
}

/* the displayed indices of a dimension of size n; -1 marks the "..." */
static int shown(int64_t n, int summarise, int64_t *out)
{
    if (!summarise || n <= 2 * PRINT_EDGE) {
        for (int64_t i = 0; i < n; i++)
            out[i] = i;
        return (int)n;
    }
    int k = 0;
    for (int i = 0; i < PRINT_EDGE; i++)
        out[k++] = i;
    out[k++] = -1;
    for (int i = PRINT_EDGE; i > 0; i--)
        out[k++] = n - i;
    return k;
}

/* ---- float formatting ---- */

typedef struct ffmt {
    tensor_dtype dt;  /* element dtype */
    int expo;     /* scientific notation */
    int digits;   /* the most fractional (mantissa) digits any element needs */
    int width;    /* the widest element */
} ffmt;

/* does text s read back as v in dtype dt? */
static int round_trips(const char *s, double v, tensor_dtype dt)
{
    double r = strtod(s, NULL);
    if (dt == DT_F64)
        return r == v;
    if (dt == DT_F32)
        return (float)r == (float)v;
    /* half types: within half an ulp of v at the type's precision */
    int e;
    frexp(v, &e);
    int mant = dt == DT_F16 ? 11 : 8;
    if (dt == DT_F16 && e < -13)
        e = -13; /* subnormal halves have a fixed ulp */
    return fabs(r - v) <= ldexp(1.0, e - mant - 1);
}

/* fewest fractional digits (0..8) for v; returns them */
static int min_digits(double v, int expo, tensor_dtype dt)
{
    char s[64];
    for (int p = 0; p <= PRINT_PRECISION; p++) {
        snprintf(s, sizeof s, expo ? "%.*e" : "%.*f", p, v);
        if (round_trips(s, v, dt))
            return p;
    }
    return PRINT_PRECISION;
}

/* v as text with `digits` fractional digits of its own, padded right to `pad` */
static void float_text(char *out, size_t size, double v, const ffmt *f, int pad)
{
    if (v != v) {
        snprintf(out, size, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(out, size, v > 0 ? "inf" : "-inf");
        return;
    }
    int p = min_digits(v, f->expo, f->dt);
    if (!f->expo) {
        snprintf(out, size, "%.*f%s", p, v, p == 0 ? "." : "");
        size_t n = strlen(out);
        for (int k = p; k < pad && n + 1 < size; k++)
            out[n++] = ' ';
        out[n] = 0;
    } else {
        char m[64];
        snprintf(m, sizeof m, "%.*e", p, v);
        char *e = strchr(m, 'e');
        if (!e)
            e = m + strlen(m);
        size_t ml = (size_t)(e - m);
        char mant[64];
        memcpy(mant, m, ml);
        mant[ml] = 0;
        if (p == 0)
            strcat(mant, ".");
        size_t n = strlen(mant);
        for (int k = p; k < pad && n + 1 < sizeof mant; k++)
            mant[n++] = '0';
        mant[n] = 0;
        /* NumPy gives every mantissa the same digits, with zeros: "1.0000e-05, 1.2345e-05" */
        snprintf(out, size, "%s%s", mant, e);
    }
}

/* ---- layout ---- */

typedef struct pctx {
    const tensor *t;   /* what is printed */
    int summarise;     /* edges only */
    ffmt f;            /* float format */
    int width;         /* every element padded to this */
    sbuf *b;           /* output */
    int col;           /* current column on the line */
} pctx;

static void elem_text(const pctx *c, pcell v, char *out, size_t size)
{
    switch (c->t->dtype) {
    case DT_BOOL: snprintf(out, size, "%s", v.i ? "true" : "false"); break;
    case DT_U8: case DT_I32: case DT_I64: snprintf(out, size, "%lld", (long long)v.i); break;
    default: float_text(out, size, v.f, &c->f, c->f.digits); break;
    }
}

/* visit every displayed element (for measuring) */
static void visit(const pctx *c, int d, int64_t *idx, void (*fn)(const pctx *, pcell, void *), void *u)
{
    const tensor *t = c->t;
    if (d == t->ndim) {
        fn(c, fetch(t, idx), u);
        return;
    }
    int64_t list[2 * PRINT_EDGE + 1 + 1];
    int64_t *all = NULL;
    int64_t *li = list;
    if (!c->summarise || t->shape[d] <= 2 * PRINT_EDGE) {
        all = malloc(sizeof(int64_t) * (size_t)(t->shape[d] ? t->shape[d] : 1));
        if (!all)
            return;
        li = all;
    }
    int k = shown(t->shape[d], c->summarise, li);
    for (int i = 0; i < k; i++) {
        if (li[i] < 0)
            continue;
        idx[d] = li[i];
        visit(c, d + 1, idx, fn, u);
    }
    free(all);
}

typedef struct fstats {
    double maxabs, minabs; /* over finite values; minabs over non-zero ones */
    int any;               /* a finite non-zero value was seen */
    int digits;            /* most fractional digits */
    int width;             /* widest text */
    int neg;               /* a negative finite value */
} fstats;

static void stat_range(const pctx *c, pcell v, void *u)
{
    fstats *s = u;
    double a = fabs(v.f);
    if (!isfinite(v.f) || a == 0)
        return;
    if (!s->any || a > s->maxabs)
        s->maxabs = a;
    if (!s->any || a < s->minabs)
        s->minabs = a;
    s->any = 1;
}

static void stat_digits(const pctx *c, pcell v, void *u)
{
    fstats *s = u;
    if (!isfinite(v.f))
        return;
    int p = min_digits(v.f, c->f.expo, c->f.dt);
    if (p > s->digits)
        s->digits = p;
}

static void stat_width(const pctx *c, pcell v, void *u)
{
    fstats *s = u;
    char txt[96];
    elem_text(c, v, txt, sizeof txt);
    int w = (int)strlen(txt);
    if (w > s->width)
        s->width = w;
}

static void emit_elem(pctx *c, const char *txt, int first, int indent)
{
    int w = strcmp(txt, "...") == 0 ? 3 : c->width;
    if (!first) {
        if (c->col + 2 + w + 1 > PRINT_LINEWIDTH) {
            sb_add(c->b, ",\n");
            sb_spaces(c->b, indent);
            c->col = indent;
        } else {
            sb_add(c->b, ", ");
            c->col += 2;
        }
    }
    int len = (int)strlen(txt);
    sb_spaces(c->b, w - len);
    sb_add(c->b, txt);
    c->col += w;
}

static void layout(pctx *c, int d, int64_t *idx)
{
    const tensor *t = c->t;
    int64_t list[2 * PRINT_EDGE + 2];
    int64_t *all = NULL, *li = list;
    if (!c->summarise || t->shape[d] <= 2 * PRINT_EDGE) {
        all = malloc(sizeof(int64_t) * (size_t)(t->shape[d] ? t->shape[d] : 1));
        if (!all) {
            free(c->b->s);
            c->b->s = NULL;
            return;
        }
        li = all;
    }
    int k = shown(t->shape[d], c->summarise, li);
    sb_add(c->b, "[");
    c->col++;
    int indent = d + 1;
    for (int i = 0; i < k; i++) {
        if (d == t->ndim - 1) {
            char txt[96];
            if (li[i] < 0) {
                snprintf(txt, sizeof txt, "...");
            } else {
                idx[d] = li[i];
                elem_text(c, fetch(t, idx), txt, sizeof txt);
            }
            emit_elem(c, txt, i == 0, indent);
        } else {
            if (i > 0) {
                sb_add(c->b, ",");
                for (int n = 0; n < t->ndim - 1 - d; n++)
                    sb_add(c->b, "\n");
                sb_spaces(c->b, indent);
                c->col = indent;
            }
            if (li[i] < 0) {
                sb_add(c->b, "...");
                c->col += 3;
            } else {
                idx[d] = li[i];
                layout(c, d + 1, idx);
            }
        }
    }
    sb_add(c->b, "]");
    c->col++;
    free(all);
}

char *tensor_format(const tensor *t)
{
    sbuf b = {malloc(64), 0, 64};
    if (!b.s)
        return NULL;
    b.s[0] = 0;
    int64_t n = tensor_numel(t);
    pctx c = {.t = t, .summarise = n > PRINT_THRESHOLD, .b = &b};
    c.f.dt = t->dtype;
    int64_t idx[TENSOR_MAXDIM] = {0};
    if (n == 0) {
        sb_add(&b, "[]");
        return b.s;
    }
    if (tensor_dtype_is_float(t->dtype)) {
        fstats s = {0};
        visit(&c, 0, idx, stat_range, &s);
        c.f.expo = s.any && (s.maxabs >= 1e8 || s.minabs < 1e-4 || s.maxabs / s.minabs > 1e3);
        visit(&c, 0, idx, stat_digits, &s);
        c.f.digits = s.digits;
    }
    fstats w = {0};
    visit(&c, 0, idx, stat_width, &w);
    c.width = w.width;
    if (t->ndim == 0) {
        char txt[96];
        c.f.digits = 0;
        elem_text(&c, fetch(t, idx), txt, sizeof txt);
        size_t l = strlen(txt);
        if (l > 0 && txt[l - 1] == '.')
            strcat(txt, "0");
        sb_add(&b, txt);
        return b.s;
    }
    layout(&c, 0, idx);
    return b.s;
}

char *tensor_describe(const tensor *t)
{
    char shape[TENSOR_SHAPE_BUF];
    tensor_shape_str(t->ndim, t->shape, shape, sizeof shape);
    const char *dev = t->storage && t->storage->backend ? t->storage->backend->name : "cpu";
    size_t size = strlen(shape) + 80;
    char *s = malloc(size);
    if (s)
        snprintf(s, size, "tensor(shape=%s, dtype=%s, device=%s)", shape, tensor_dtype_name(t->dtype), dev);
    return s;
}
