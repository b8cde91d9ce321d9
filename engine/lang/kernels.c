/* kernels.c — the session's CUDA C definitions, their signatures, and checked launches
 * (engine/lang/kernels.h). Compiling and running belong to a driver (engine/tensor/kdriver.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <sys/stat.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tensor/backend.h"
#include "engine/lang/kernels.h"
#include "engine/lang/kdebug.h"

/* ---- C types ---- */

size_t eng_ctype_size(eng_ctype t)
{
    switch (t) {
    case KT_BOOL: case KT_I8: case KT_U8: return 1;
    case KT_I16: case KT_U16: case KT_F16: case KT_BF16: return 2;
    case KT_I32: case KT_U32: case KT_F32: return 4;
    case KT_I64: case KT_U64: case KT_F64: return 8;
    default: return 0;
    }
}

int eng_ctype_dtype(eng_ctype t)
{
    switch (t) {
    case KT_BOOL: return DT_BOOL;
    case KT_U8: return DT_U8;
    case KT_I32: return DT_I32;
    case KT_I64: return DT_I64;
    case KT_F16: return DT_F16;
    case KT_BF16: return DT_BF16;
    case KT_F32: return DT_F32;
    case KT_F64: return DT_F64;
    default: return -1;
    }
}

static const char *ctype_name(eng_ctype t)
{
    static const char *const names[KT_COUNT] = {"bool", "char", "unsigned char", "short", "unsigned short",
                                                "int", "unsigned int", "long long", "unsigned long long",
                                                "__half", "__nv_bfloat16", "float", "double"};
    return t < KT_COUNT ? names[t] : "?";
}

/* ---- the table ---- */

static void kernel_release_module(eng_kernel *k)
{
    if (k->mod && k->drv && k->drv->release)
        k->drv->release(k->mod);
    k->mod = NULL;
    k->drv = NULL;
}

static void kernel_free(eng_kernel *k)
{
    if (!k)
        return;
    kernel_release_module(k);
    free(k->name);
    free(k->source);
    free(k->defines);
    free(k->cell);
    free(k->params);
    free(k->signature);
    free(k);
}

eng_ktable *eng_ktable_new(void) { return calloc(1, sizeof(eng_ktable)); }

void eng_ktable_clear(eng_ktable *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        kernel_free(t->items[i]);
    t->n = 0;
    t->dev_gen++;
    for (int i = 0; i < t->ndefs; i++) {
        free(t->defs[i].name);
        free(t->defs[i].text);
    }
    t->ndefs = 0;
}

void eng_ktable_free(eng_ktable *t)
{
    if (!t)
        return;
    eng_ktable_clear(t);
    free(t->items);
    free(t->defs);
    eng_kdebug_free(t);
    free(t);
}

eng_kernel *eng_kernel_find(const eng_ktable *t, const char *name, int len)
{
    for (int i = 0; t && i < t->n; i++)
        if ((int)strlen(t->items[i]->name) == len && !memcmp(t->items[i]->name, name, (size_t)len))
            return t->items[i];
    return NULL;
}

/* ---- signatures ---- */

static int is_ident_char(int c) { return isalnum(c) || c == '_'; }

/* A copy of src with comments, string and char literals and '#' lines blanked out
 * (newlines kept), so that a scan for names and brackets sees only code. */
static char *strip_source(const char *src)
{
    char *s = strdup(src);
    if (!s)
        return NULL;
    int line_start = 1;
    for (char *p = s; *p;) {
        if (line_start) {
            char *q = p;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '#') { /* a preprocessor line, with its continuations */
                while (*q && !(*q == '\n' && q[-1] != '\\'))
                    *q++ = ' ';
                p = q;
                continue;
            }
        }
        line_start = 0;
        if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n')
                *p++ = ' ';
        } else if (p[0] == '/' && p[1] == '*') {
            *p++ = ' ';
            *p++ = ' ';
            while (*p && !(p[0] == '*' && p[1] == '/')) {
                if (*p != '\n')
                    *p = ' ';
                p++;
            }
            if (*p)
                *p++ = ' ', *p++ = ' ';
        } else if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q && *p != '\n') {
                if (*p == '\\' && p[1])
                    *p++ = ' ';
                *p++ = ' ';
            }
            if (*p == q)
                p++;
        } else {
            if (*p == '\n')
                line_start = 1;
            p++;
        }
    }
    return s;
}

/* The span of the parameter list of `name` in stripped source s: just after its '('
 * up to its ')'. */
static int find_param_list(const char *s, const char *name, const char **open, const char **close)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(s, name); p; p = strstr(p + 1, name)) {
        if ((p > s && is_ident_char((unsigned char)p[-1])) || is_ident_char((unsigned char)p[nl]))
            continue;
        const char *q = p + nl;
        while (isspace((unsigned char)*q))
            q++;
        if (*q != '(')
            continue;
        int depth = 0;
        for (const char *r = q; *r; r++) {
            if (*r == '(')
                depth++;
            else if (*r == ')' && --depth == 0) {
                *open = q + 1;
                *close = r;
                return 0;
            }
        }
        return -1;
    }
    return -1;
}

/* the words a parameter's type is made of */
enum { W_UNSIGNED = 1, W_SIGNED = 2, W_CHAR = 4, W_SHORT = 8, W_INT = 16, W_FLOAT = 32, W_DOUBLE = 64,
       W_BOOL = 128 };

static const struct {
    const char *word;
    int fixed;       /* 1: a complete type on its own */
    eng_ctype ctype; /* for fixed words */
    int flag;        /* for the C words that combine */
} type_words[] = {
    {"unsigned", 0, 0, W_UNSIGNED}, {"signed", 0, 0, W_SIGNED}, {"char", 0, 0, W_CHAR},
    {"short", 0, 0, W_SHORT}, {"int", 0, 0, W_INT}, {"float", 0, 0, W_FLOAT}, {"double", 0, 0, W_DOUBLE},
    {"bool", 0, 0, W_BOOL}, {"long", 0, 0, 0},
    {"size_t", 1, KT_U64, 0}, {"ptrdiff_t", 1, KT_I64, 0}, {"ssize_t", 1, KT_I64, 0},
    {"int8_t", 1, KT_I8, 0}, {"uint8_t", 1, KT_U8, 0}, {"int16_t", 1, KT_I16, 0}, {"uint16_t", 1, KT_U16, 0},
    {"int32_t", 1, KT_I32, 0}, {"uint32_t", 1, KT_U32, 0}, {"int64_t", 1, KT_I64, 0},
    {"uint64_t", 1, KT_U64, 0}, {"__half", 1, KT_F16, 0}, {"half", 1, KT_F16, 0},
    {"__nv_bfloat16", 1, KT_BF16, 0}, {"nv_bfloat16", 1, KT_BF16, 0},
};

static int is_qualifier(const char *w)
{
    static const char *const q[] = {"const", "volatile", "__restrict__", "__restrict", "restrict",
                                    "__grid_constant__", NULL};
    for (int i = 0; q[i]; i++)
        if (!strcmp(w, q[i]))
            return 1;
    return 0;
}

/* The ctype of a combination of C words (unsigned long long ...); -1 if none. */
static int combine_words(int flags, int longs, int *bad)
{
    *bad = 0;
    int u = flags & W_UNSIGNED;
    if ((flags & W_UNSIGNED) && (flags & W_SIGNED))
        *bad = 1;
    if (flags & W_BOOL)
        return flags == W_BOOL && !longs ? KT_BOOL : (*bad = 1, -1);
    if (flags & W_FLOAT)
        return flags == W_FLOAT && !longs ? KT_F32 : (*bad = 1, -1);
    if (flags & W_DOUBLE)
        return flags == W_DOUBLE && longs == 0 ? KT_F64 : (*bad = 1, -1); /* long double: no */
    if (flags & W_CHAR)
        return (flags & (W_SHORT | W_INT)) || longs ? (*bad = 1, -1) : u ? KT_U8 : KT_I8;
    if (flags & W_SHORT)
        return longs ? (*bad = 1, -1) : u ? KT_U16 : KT_I16;
    if (longs > 2)
        return *bad = 1, -1;
    if (longs)
        return u ? KT_U64 : KT_I64; /* long is 64-bit on Linux, as in CUDA */
    if (flags & (W_INT | W_UNSIGNED | W_SIGNED))
        return u ? KT_U32 : KT_I32;
    return -1;
}

static void append(char *buf, size_t n, const char *s)
{
    size_t l = strlen(buf);
    if (l + 1 < n)
        snprintf(buf + l, n - l, "%s", s);
}

/* sizeof of the C type written in text[0, len) ("float", "unsigned long long",
 * "const float *", "int4"): its size in bytes, or -1 for a type this does not know */
long eng_ctype_sizeof(const char *text, size_t len)
{
    static const struct { const char *name; long size; } vec[] = {
        {"float2", 8}, {"float3", 12}, {"float4", 16}, {"int2", 8}, {"int3", 12}, {"int4", 16},
        {"double2", 16}, {"double4", 32}, {"__half2", 4}, {"half2", 4}, {"uint2", 8}, {"uint4", 16},
    };
    int flags = 0, longs = 0, fixed = -1, stars = 0, words = 0, wholes = 0; /* wholes: fixed or vector words */
    long vsize = -1;
    const char *p = text, *end = text + len;
    while (p < end) {
        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        if (*p == '*') {
            stars++;
            p++;
            continue;
        }
        if (!is_ident_char((unsigned char)*p) || stars)
            return -1; /* punctuation, or a word after a '*' */
        const char *w = p;
        while (p < end && is_ident_char((unsigned char)*p))
            p++;
        char word[64];
        if (p - w >= (long)sizeof word)
            return -1;
        snprintf(word, sizeof word, "%.*s", (int)(p - w), w);
        if (is_qualifier(word))
            continue;
        int known = 0;
        for (size_t k = 0; k < sizeof type_words / sizeof type_words[0] && !known; k++)
            if (!strcmp(word, type_words[k].word)) {
                known = 1;
                if (type_words[k].fixed)
                    fixed = (int)type_words[k].ctype, wholes++;
                else if (!strcmp(word, "long"))
                    longs++;
                else
                    flags |= type_words[k].flag;
            }
        for (size_t k = 0; k < sizeof vec / sizeof vec[0] && !known; k++)
            if (!strcmp(word, vec[k].name))
                known = 1, vsize = vec[k].size, wholes++;
        if (!known)
            return -1;
        words++;
    }
    if (!words || (wholes && words > 1))
        return -1; /* nothing, or "unsigned size_t" */
    if (stars)
        return 8;
    if (vsize > 0)
        return vsize;
    if (fixed >= 0)
        return (long)eng_ctype_size((eng_ctype)fixed);
    int bad = 0, t = combine_words(flags, longs, &bad);
    return t < 0 || bad ? -1 : (long)eng_ctype_size((eng_ctype)t);
}

/* one parameter from text [p, end); index i (0-based) for messages */
static int parse_param(const char *kname, int i, const char *p, const char *end, eng_kparam *out, eng_error *err)
{
    memset(out, 0, sizeof *out);
    char written[256] = "";   /* the parameter as written, normalised, for messages */
    char type[96] = "";
    int flags = 0, longs = 0, fixed = -1, stars = 0, const_before_star = 0, prev_star = 0;
    const char *unknown = NULL;
    char unknown_buf[64] = "", problem[256] = "";
    while (p < end) {
        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        if (is_ident_char((unsigned char)*p)) {
            const char *w = p;
            while (p < end && is_ident_char((unsigned char)*p))
                p++;
            char word[64];
            snprintf(word, sizeof word, "%.*s", (int)(p - w), w);
            if (*written)
                append(written, sizeof written, prev_star ? "" : " ");
            append(written, sizeof written, word);
            int known = 0;
            if (is_qualifier(word)) {
                known = 1;
                if (!strcmp(word, "const") && stars == 0)
                    const_before_star = 1;
            } else if (!strcmp(word, "struct") || !strcmp(word, "class") || !strcmp(word, "union") ||
                       !strcmp(word, "enum")) {
                snprintf(problem, sizeof problem, "%s %s type", eng_a(word), word);
                known = 1;
            } else if (!out->name[0]) {
                for (size_t k = 0; k < sizeof type_words / sizeof type_words[0]; k++)
                    if (!strcmp(word, type_words[k].word)) {
                        known = 1;
                        if (type_words[k].fixed)
                            fixed = (int)type_words[k].ctype;
                        else if (!strcmp(word, "long"))
                            longs++;
                        else
                            flags |= type_words[k].flag;
                    }
            }
            if (known) {
                if (!is_qualifier(word) || stars == 0 || strcmp(word, "const")) {
                    if (*type)
                        append(type, sizeof type, prev_star ? "" : " ");
                    append(type, sizeof type, word);
                }
            } else if (flags == 0 && longs == 0 && fixed < 0 && !unknown) {
                snprintf(unknown_buf, sizeof unknown_buf, "%s", word);
                unknown = unknown_buf;
            } else if (!out->name[0]) {
                snprintf(out->name, sizeof out->name, "%s", word);
            } else if (!*problem) {
                snprintf(problem, sizeof problem, "an unexpected word '%s'", word);
            }
            prev_star = 0;
            continue;
        }
        char c = *p++;
        char cs[2] = {c, 0};
        append(written, sizeof written, c == '*' ? (prev_star || !*written ? "*" : " *") : cs);
        if (c == '*') {
            if (out->name[0] && !*problem)
                snprintf(problem, sizeof problem, "a '*' after the name");
            stars++;
            append(type, sizeof type, prev_star ? "*" : " *");
            prev_star = 1;
            continue;
        }
        prev_star = 0;
        if (*problem)
            continue;
        if (c == '&')
            snprintf(problem, sizeof problem, "a reference (pass a pointer or a value)");
        else if (c == '[')
            snprintf(problem, sizeof problem, "an array (write it as a pointer, T *)");
        else if (c == '<' || c == '>')
            snprintf(problem, sizeof problem, "a template type");
        else if (c == '(' || c == ')')
            snprintf(problem, sizeof problem, "a function pointer");
        else if (c == ':')
            snprintf(problem, sizeof problem, "a qualified name (::)");
        else if (c == '=')
            snprintf(problem, sizeof problem, "a default value");
        else if (c == '.')
            snprintf(problem, sizeof problem, "a variadic list");
        else
            snprintf(problem, sizeof problem, "the character '%c'", c);
    }
    char pname[80];
    snprintf(pname, sizeof pname, "%s%s%s", out->name[0] ? " ('" : "", out->name, out->name[0] ? "')" : "");
    if (!*written)
        return eng_fail(err, ERR_TYPE, "%s: parameter %d is empty", kname, i + 1);
    if (!*problem && unknown)
        snprintf(problem, sizeof problem, "the type '%s', which a launch cannot pass", unknown);
    int bad = 0;
    int ct = fixed >= 0 ? ((flags || longs) ? (bad = 1, -1) : fixed) : combine_words(flags, longs, &bad);
    if (!*problem && (bad || ct < 0))
        snprintf(problem, sizeof problem, "a type these words do not make");
    if (!*problem && stars > 1)
        snprintf(problem, sizeof problem, "a pointer to a pointer");
    if (!*problem && stars == 1 && eng_ctype_dtype((eng_ctype)ct) < 0)
        snprintf(problem, sizeof problem, "a pointer to %s, for which there is no tensor dtype "
                 "(use bool, unsigned char, int, long long, float, double, __half or __nv_bfloat16)",
                 ctype_name((eng_ctype)ct));
    if (*problem)
        return eng_fail(err, ERR_TYPE,
                        "%s: parameter %d%s, '%s', has %s; kernel parameters are pointers to tensor "
                        "elements (float *, const int *, ...) or scalars (int, float, size_t, ...)",
                        kname, i + 1, pname, written, problem);
    out->ctype = (eng_ctype)ct;
    out->is_ptr = stars == 1;
    out->is_const = out->is_ptr && const_before_star;
    snprintf(out->type, sizeof out->type, "%s", type);
    return 0;
}

int eng_kernel_parse_params(const char *src, const char *name, eng_kparam **params, int *nparams, eng_error *err)
{
    *params = NULL;
    *nparams = 0;
    char *s = strip_source(src);
    if (!s)
        return eng_fail(err, ERR_MEMORY, "out of memory reading kernel %s", name);
    const char *open, *close;
    if (find_param_list(s, name, &open, &close)) {
        free(s);
        return eng_fail(err, ERR_SYNTAX, "%s: cannot find its parameter list", name);
    }
    /* split at commas outside brackets */
    int cap = 8, n = 0, rc = 0;
    eng_kparam *ps = calloc((size_t)cap, sizeof *ps);
    if (!ps) {
        free(s);
        return eng_fail(err, ERR_MEMORY, "out of memory reading kernel %s", name);
    }
    const char *item = open;
    int depth = 0, blank = 1;
    for (const char *p = open; p < close; p++)
        if (!isspace((unsigned char)*p))
            blank = 0;
    const char *q = open;
    while (q < close && isspace((unsigned char)*q))
        q++;
    if (close - q == 4 && !strncmp(q, "void", 4))
        blank = 1;
    for (const char *p = open; !blank && p <= close; p++) {
        if (p < close && (*p == '(' || *p == '<' || *p == '['))
            depth++;
        else if (p < close && (*p == ')' || *p == '>' || *p == ']'))
            depth--;
        if (p == close || (*p == ',' && depth == 0)) {
            if (n == cap) {
                eng_kparam *g = realloc(ps, sizeof *ps * (size_t)cap * 2);
                if (!g) {
                    rc = eng_fail(err, ERR_MEMORY, "out of memory reading kernel %s", name);
                    break;
                }
                ps = g;
                cap *= 2;
            }
            if ((rc = parse_param(name, n, item, p, &ps[n], err)))
                break;
            n++;
            item = p + 1;
        }
    }
    free(s);
    if (rc) {
        free(ps);
        return -1;
    }
    if (n == 0) {
        free(ps);
        ps = NULL;
    }
    *params = ps;
    *nparams = n;
    return 0;
}

/* "__global__ void k(float *out, int n)": the declaration as written, blanks collapsed */
static char *make_signature(const char *src)
{
    char *s = strip_source(src);
    if (!s)
        return NULL;
    char *p = s;
    while (*p && isspace((unsigned char)*p))
        p++;
    char *out = malloc(strlen(p) + 1);
    if (!out) {
        free(s);
        return NULL;
    }
    size_t n = 0;
    int depth = 0, space = 0;
    for (; *p; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')')
            depth--;
        else if ((*p == '{' || *p == ';') && depth == 0)
            break;
        if (isspace((unsigned char)*p)) {
            space = 1;
            continue;
        }
        if (space && n > 0 && out[n - 1] != '(' && *p != ')' && *p != ',')
            out[n++] = ' ';
        space = 0;
        out[n++] = *p;
    }
    out[n] = 0;
    free(s);
    return out;
}

int eng_kernel_define(eng_ktable *t, const char *src, int srclen, const char *defines, const char *name,
                      int is_global, const char *cell, int line, eng_error *err)
{
    eng_kdebug_defined(t, cell); /* the debugger's path of that cell, for breakpoints */
    eng_kernel *old = eng_kernel_find(t, name, (int)strlen(name));
    if (defines && !*defines)
        defines = NULL;
    if (old && old->is_global == is_global && (int)strlen(old->source) == srclen &&
        !memcmp(old->source, src, (size_t)srclen) &&
        !strcmp(old->defines ? old->defines : "", defines ? defines : "")) {
        /* the same source again (a cell run twice): keep what was compiled */
        char *c = strdup(cell);
        if (!c)
            return eng_fail(err, ERR_MEMORY, "out of memory defining %s", name);
        free(old->cell);
        old->cell = c;
        old->line = line;
        return 0;
    }
    eng_kernel *k = calloc(1, sizeof *k);
    if (!k)
        return eng_fail(err, ERR_MEMORY, "out of memory defining %s", name);
    k->is_global = is_global;
    k->line = line;
    k->name = strdup(name);
    k->source = strndup(src, (size_t)srclen);
    k->defines = defines ? strdup(defines) : NULL;
    k->cell = strdup(cell);
    if (!k->name || !k->source || !k->cell || (defines && !k->defines)) {
        kernel_free(k);
        return eng_fail(err, ERR_MEMORY, "out of memory defining %s", name);
    }
    k->signature = make_signature(k->source);
    if (!k->signature) {
        kernel_free(k);
        return eng_fail(err, ERR_MEMORY, "out of memory defining %s", name);
    }
    if (is_global && eng_kernel_parse_params(k->source, name, &k->params, &k->nparams, err)) {
        kernel_free(k);
        return -1;
    }
    if (old) { /* replaced in place: the order of __device__ definitions is kept */
        for (int i = 0; i < t->n; i++)
            if (t->items[i] == old)
                t->items[i] = k;
        if (!old->is_global)
            t->dev_gen++;
        kernel_free(old);
    } else {
        if (t->n == t->cap) {
            int cap = t->cap ? t->cap * 2 : 16;
            eng_kernel **p = realloc(t->items, sizeof *p * (size_t)cap);
            if (!p) {
                kernel_free(k);
                return eng_fail(err, ERR_MEMORY, "out of memory defining %s", name);
            }
            t->items = p;
            t->cap = cap;
        }
        t->items[t->n++] = k;
    }
    if (!is_global)
        t->dev_gen++;
    return 0;
}

/* ---- translation units ---- */

static int add_part(FILE *f, const eng_kernel *k)
{
    if (k->defines) /* the session's #defines it saw where it was defined */
        fputs(k->defines, f);
    fputs("#line ", f);
    fprintf(f, "%d \"", k->line);
    for (const char *c = k->cell; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc('\\', f);
        fputc(*c, f);
    }
    fputs("\"\n", f);
    fputs(k->source, f);
    return fputs("\n", f) < 0 ? -1 : 0;
}

char *eng_kernel_tu(const eng_ktable *t, const eng_kernel *k)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    int bad = 0;
    for (int i = 0; i < t->n; i++)
        if (!t->items[i]->is_global)
            bad |= add_part(f, t->items[i]);
    if (k->is_global)
        bad |= add_part(f, k);
    if (fclose(f) || bad) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- launches ---- */

int eng_kernel_dims(value v, const char *kname, const char *what, unsigned out[3], eng_error *err)
{
    int64_t d[3] = {1, 1, 1};
    int n = 1;
    if (v.type == VAL_INT) {
        d[0] = v.as.i;
    } else if (v.type == VAL_TUPLE && v.as.tup->n >= 1 && v.as.tup->n <= 3) {
        n = v.as.tup->n;
        for (int i = 0; i < n; i++)
            d[i] = v.as.tup->v[i];
    } else {
        return eng_fail(err, ERR_TYPE, "%s<<<...>>>: the %s size must be an int or dim3(x, y, z), got %s", kname,
                        what, v.type == VAL_TUPLE ? "a tuple of more than 3 items" : value_type_name(v.type));
    }
    static const char xyz[] = "xyz";
    for (int i = 0; i < 3; i++) {
        if (d[i] < 1)
            return eng_fail(err, ERR_VALUE, "%s<<<...>>>: %s.%c is %lld; each grid and block size must be at least 1",
                            kname, what, xyz[i], (long long)d[i]);
        if (d[i] > 0xffffffffLL)
            return eng_fail(err, ERR_VALUE, "%s<<<...>>>: %s.%c is %lld, past the largest possible (2^32 - 1)",
                            kname, what, xyz[i], (long long)d[i]);
        out[i] = (unsigned)d[i];
    }
    return 0;
}

const char *eng_kernel_kind_error(const eng_kernel *k, int i, int got_tensor, const char *got, char *buf, size_t n)
{
    const eng_kparam *p = &k->params[i];
    if (p->is_ptr && !got_tensor)
        snprintf(buf, n, "%s: argument %d ('%s', %s) is a pointer: pass a tensor, not %s", k->name, i + 1, p->name,
                 p->type, got);
    else if (!p->is_ptr && got_tensor)
        snprintf(buf, n, "%s: argument %d ('%s', %s) is a scalar: pass a number, not a tensor (x.item() reads a "
                 "one-element tensor)", k->name, i + 1, p->name, p->type);
    else
        return NULL;
    return buf;
}

const char *eng_kernel_count_error(const eng_kernel *k, int argc, char *buf, size_t n)
{
    snprintf(buf, n, "%s takes %d argument%s (", k->name, k->nparams, k->nparams == 1 ? "" : "s");
    for (int i = 0; i < k->nparams; i++) {
        const eng_kparam *p = &k->params[i];
        size_t l = strlen(buf), tl = strlen(p->type);
        snprintf(buf + l, n - l, "%s%s%s%s", i ? ", " : "", p->type, tl && p->type[tl - 1] == '*' ? "" : " ",
                 p->name);
    }
    size_t l = strlen(buf);
    snprintf(buf + l, n - l, "), %d given", argc);
    return buf;
}

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
    int e = (int)((x >> 23) & 0xff);
    if (e == 0xff)
        return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    int exp = e - 127 + 15;
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - exp;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)h;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

typedef union kslot {
    int8_t i8;
    uint8_t u8;
    int16_t i16;
    uint16_t u16;
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
    float f32;
    double f64;
    void *ptr;
} kslot;

/* a number into parameter i's ctype, range-checked */
static int convert_scalar(const eng_kernel *k, int i, value v, kslot *out, eng_error *err)
{
    const eng_kparam *p = &k->params[i];
    eng_ctype ct = p->ctype;
    int is_float = ct == KT_F16 || ct == KT_BF16 || ct == KT_F32 || ct == KT_F64;
    if (v.type != VAL_INT && v.type != VAL_BOOL && v.type != VAL_FLOAT)
        return eng_fail(err, ERR_TYPE, "%s: argument %d ('%s', %s) takes a number, got %s", k->name, i + 1,
                        p->name, p->type, value_type_name(v.type));
    if (is_float) {
        double d = v.type == VAL_FLOAT ? v.as.f : (double)v.as.i;
        double lim = ct == KT_F16 ? 65504.0 : ct == KT_BF16 ? 3.3895313892515355e38 : ct == KT_F32 ? FLT_MAX : DBL_MAX;
        if (isfinite(d) && fabs(d) > lim)
            return eng_fail(err, ERR_VALUE, "%s: argument %d ('%s', %s) is %g, out of the range of %s (largest %g)",
                            k->name, i + 1, p->name, p->type, d, ctype_name(ct), lim);
        switch (ct) {
        case KT_F16: out->u16 = f32_to_f16((float)d); break;
        case KT_BF16: out->u16 = f32_to_bf16((float)d); break;
        case KT_F32: out->f32 = (float)d; break;
        default: out->f64 = d; break;
        }
        return 0;
    }
    if (v.type == VAL_FLOAT)
        return eng_fail(err, ERR_TYPE, "%s: argument %d ('%s', %s) takes an integer, got the float %g (convert it "
                        "with (int))", k->name, i + 1, p->name, p->type, v.as.f);
    int64_t x = v.as.i;
    if (ct == KT_BOOL) {
        out->u8 = x != 0;
        return 0;
    }
    static const struct {
        int64_t lo;
        uint64_t hi;
    } range[KT_COUNT] = {
        [KT_I8] = {INT8_MIN, INT8_MAX},   [KT_U8] = {0, UINT8_MAX},   [KT_I16] = {INT16_MIN, INT16_MAX},
        [KT_U16] = {0, UINT16_MAX},       [KT_I32] = {INT32_MIN, INT32_MAX}, [KT_U32] = {0, UINT32_MAX},
        [KT_I64] = {INT64_MIN, INT64_MAX}, [KT_U64] = {0, UINT64_MAX},
    };
    if (x < range[ct].lo || (x > 0 && (uint64_t)x > range[ct].hi))
        return eng_fail(err, ERR_VALUE, "%s: argument %d ('%s', %s) is %lld, out of the range of %s (%lld to %llu)",
                        k->name, i + 1, p->name, p->type, (long long)x, ctype_name(ct), (long long)range[ct].lo,
                        (unsigned long long)range[ct].hi);
    switch (ct) {
    case KT_I8: out->i8 = (int8_t)x; break;
    case KT_U8: out->u8 = (uint8_t)x; break;
    case KT_I16: out->i16 = (int16_t)x; break;
    case KT_U16: out->u16 = (uint16_t)x; break;
    case KT_I32: out->i32 = (int32_t)x; break;
    case KT_U32: out->u32 = (uint32_t)x; break;
    case KT_U64: out->u64 = (uint64_t)x; break;
    default: out->i64 = x; break;
    }
    return 0;
}

/* The first line of the compiler's messages that says "error", for the one-line message. */
static void first_error_line(const char *msg, char *buf, size_t n)
{
    const char *best = msg, *p = msg;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *hit = strstr(p, "error");
        if (hit && hit < p + len) {
            best = p;
            break;
        }
        p = e ? e + 1 : NULL;
    }
    const char *e = strchr(best, '\n');
    size_t len = e ? (size_t)(e - best) : strlen(best);
    if (len >= n)
        len = n - 1;
    memcpy(buf, best, len);
    buf[len] = 0;
}

/* Refuses an #include of something that is not a regular file of reasonable size (a
 * FIFO, a device such as /dev/zero, a folder, a huge file): the compilers would block
 * on it or read it forever. Names resolved as given (absolute, or from the working
 * folder); system headers (<...> found through the compiler's search path) are not
 * looked at. */
#define KERNEL_INCLUDE_MAX (16 << 20)
static int check_includes(const eng_kernel *k, const char *tu, eng_error *err)
{
    for (const char *p = tu; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '#')
            continue;
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncmp(q, "include", 7) != 0)
            continue;
        q += 7;
        while (*q == ' ' || *q == '\t')
            q++;
        char close = *q == '"' ? '"' : *q == '<' ? '>' : 0;
        if (!close)
            continue;
        const char *e = strchr(q + 1, close), *nl = strchr(q + 1, '\n');
        if (!e || (nl && nl < e) || e - q - 1 >= 1024)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%.*s", (int)(e - q - 1), q + 1);
        struct stat st;
        if (stat(path, &st) != 0)
            continue; /* not found as given: the compiler looks it up (and reports it) */
        if (!S_ISREG(st.st_mode))
            return eng_fail(err, ERR_COMPILE, "kernel %s did not compile: #include \"%s\" is %s, not a regular "
                            "file", k->name, path, S_ISFIFO(st.st_mode) ? "a pipe (FIFO)" : S_ISDIR(st.st_mode) ?
                            "a folder" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a special file");
        if (st.st_size > KERNEL_INCLUDE_MAX)
            return eng_fail(err, ERR_COMPILE, "kernel %s did not compile: #include \"%s\" is %lld bytes, past the "
                            "limit of %d for a kernel's include", k->name, path, (long long)st.st_size,
                            KERNEL_INCLUDE_MAX);
    }
    return 0;
}

/* The name of the kernel's own `extern __shared__` array, or 0 (into buf). */
static int extern_shared_name(const eng_kernel *k, char *buf, size_t n)
{
    char *s = strip_source(k->source);
    int found = 0;
    for (char *p = s; p && (p = strstr(p, "extern")) != NULL; p += 6) {
        if ((p > s && is_ident_char((unsigned char)p[-1])) || is_ident_char((unsigned char)p[6]))
            continue;
        char *q = p + 6;
        while (isspace((unsigned char)*q))
            q++;
        if (strncmp(q, "__shared__", 10) != 0 || is_ident_char((unsigned char)q[10]))
            continue;
        char *br = q + 10;
        while (*br && *br != '[' && *br != ';')
            br++;
        if (*br != '[')
            continue;
        char *ne = br;
        while (ne > q && isspace((unsigned char)ne[-1]))
            ne--;
        char *ns = ne;
        while (ns > q && is_ident_char((unsigned char)ns[-1]))
            ns--;
        snprintf(buf, n, "%.*s", (int)(ne - ns), ns);
        found = 1;
        break;
    }
    free(s);
    return found;
}

static int ensure_module(eng_ktable *t, eng_kernel *k, const eng_kdriver *drv, char **details, eng_error *err)
{
    int build = eng_kdebug_active(t) && drv->debug ? 2 : t->check; /* 2: a debug build */
    if (k->mod && k->drv == drv && k->mod_check == build && k->mod_gen == t->dev_gen)
        return 0;
    kernel_release_module(k);
    char *tu = eng_kernel_tu(t, k);
    if (!tu)
        return eng_fail(err, ERR_MEMORY, "%s: out of memory assembling its source", k->name);
    if (check_includes(k, tu, err)) {
        free(tu);
        return -1;
    }
    eng_kinfo info;
    memset(&info, 0, sizeof info);
    eng_error e = {0};
    eng_kmodule *m = drv->compile(tu, k->name, k->params, k->nparams, build, &info, &e);
    if (!m && build == 2 && e.kind == ERR_COMPILE) {
        /* the source's own error (the usual message), or the instrumentation's */
        eng_error plain = {0};
        eng_kinfo pinfo;
        eng_kmodule *pm = drv->compile(tu, k->name, k->params, k->nparams, t->check, &pinfo, &plain);
        if (pm) {
            drv->release(pm);
            char first[400];
            first_error_line(e.msg, first, sizeof first);
            char *more = strstr(first, "; ");
            if (more)
                *more = '\0';
            free(tu);
            return eng_fail(err, ERR_COMPILE, "kernel %s compiles, but its debug build (the kernel debugger's "
                            "instrumentation, cuda/sim/sim_debug.c) does not: %s; %%ktrace off and clearing the "
                            "breakpoints in its lines run it as usual", k->name, first);
        }
        e = plain;
    }
    free(tu);
    if (!m) {
        if (e.kind == ERR_NONE)
            eng_fail(&e, ERR_COMPILE, "the %s driver could not compile it", drv->name);
        if (e.kind == ERR_COMPILE) {
            char first[400];
            first_error_line(e.msg, first, sizeof first);
            if (details)
                *details = strdup(e.msg);
            eng_fail(err, ERR_COMPILE, "kernel %s did not compile: %s", k->name, first);
            if (err && !err->line)
                err->col = e.col; /* the driver's column (NVRTC's caret), for eng_kernel_check_def;
                                     a launch's position replaces it */
            return -1;
        }
        return eng_fail(err, e.kind, "%s: %s", k->name, e.msg);
    }
    k->mod = m;
    k->drv = drv;
    k->mod_check = build;
    k->mod_gen = t->dev_gen;
    k->info = info;
    k->compiled = 1;
    return 0;
}

/* the line in "cell:12:5: error" (g++) or "cell(12): error" (NVRTC) when msg's first
 * error is in `cell`; *col 1 where the compiler gives none. 0 when it is elsewhere. */
static int error_line_in(const char *msg, const char *cell, int *col)
{
    char first[400];
    first_error_line(msg, first, sizeof first);
    size_t n = strlen(cell);
    if (strncmp(first, cell, n) || (first[n] != ':' && first[n] != '('))
        return 0;
    char *end;
    long line = strtol(first + n + 1, &end, 10);
    if (end == first + n + 1 || line <= 0 || line > 1 << 30)
        return 0;
    *col = 1;
    if (*end == ':') {
        long c = strtol(end + 1, &end, 10);
        if (c > 0 && c < 1 << 20)
            *col = (int)c;
    }
    return (int)line;
}

int eng_kernel_check_def(eng_ktable *t, eng_kernel *k, const char *cell, int first_line, char **details,
                         eng_error *err)
{
    const eng_kdriver *d = eng_current_backend()->kernels;
    if (!d || !k->is_global)
        return 0;
    eng_error e = {0};
    char *det = NULL;
    if (!ensure_module(t, k, d, &det, &e))
        return 0;
    int in_code = 0, col = 1, line = 0; /* the compiler's message names a line of the session's CUDA C */
    for (int i = 0; det && i < t->n && !in_code; i++)
        in_code = error_line_in(det, t->items[i]->cell, &col) > 0;
    if (e.kind != ERR_INTERRUPT && (e.kind != ERR_COMPILE || !in_code)) {
        free(det); /* not the code's fault (no compiler, out of memory...): the launch will say */
        return 0;
    }
    int driver_col = e.col;
    e.col = 0;
    *err = e;
    if ((line = error_line_in(det ? det : "", cell, &col)) > 0 && line - first_line + 1 >= 1) {
        err->line = line - first_line + 1;
        err->col = col == 1 && driver_col > 1 ? driver_col : col;
    }
    *details = det;
    return -1;
}

eng_kmodule *eng_kernel_module(eng_ktable *t, eng_kernel *k, const eng_kdriver **drv, char **details,
                               eng_error *err)
{
    const eng_kdriver *d = eng_current_backend()->kernels;
    if (!d) {
        eng_fail(err, ERR_RUNTIME, "%s: this build has no kernel driver for the %s backend", k->name,
                 eng_current_backend()->name);
        return NULL;
    }
    if (!k->is_global) {
        eng_fail(err, ERR_TYPE, "%s is a __device__ function: it is compiled into the __global__ kernels that "
                 "call it", k->name);
        return NULL;
    }
    if (ensure_module(t, k, d, details, err))
        return NULL;
    *drv = d;
    return k->mod;
}

int eng_kernel_launch(eng_ktable *t, eng_kernel *k, const unsigned grid[3], const unsigned block[3],
                      int64_t shared, const value *args, int argc, char **details, eng_error *err)
{
    if (!k->is_global)
        return eng_fail(err, ERR_TYPE, "%s is a __device__ function: only __global__ kernels can be launched",
                        k->name);
    char msg[sizeof err->msg];
    if (argc != k->nparams)
        return eng_fail(err, ERR_TYPE, "%s", eng_kernel_count_error(k, argc, msg, sizeof msg));
    if (t->kdbg_stopped) /* e.g. the debug console, stopped inside a kernel */
        return eng_fail(err, ERR_RUNTIME, "%s: no kernel can be launched while the debugger is stopped inside one "
                        "(continue or step out of it first)", k->name);
    eng_kdebug_prepare(t, args, argc); /* a debugger's kernel breakpoints: a debug build */
    /* the backend: that of the tensors, which must agree */
    const eng_backend *be = NULL;
    int first_tensor = -1;
    for (int i = 0; i < argc; i++) {
        int is_t = args[i].type == VAL_TENSOR;
        if (eng_kernel_kind_error(k, i, is_t, value_type_name(args[i].type), msg, sizeof msg))
            return eng_fail(err, ERR_TYPE, "%s", msg);
        if (!is_t)
            continue;
        const eng_backend *tb = args[i].as.t->storage->backend;
        if (!be) {
            be = tb;
            first_tensor = i;
        } else if (tb != be)
            return eng_fail(err, ERR_VALUE, "%s: argument %d ('%s') is on %s but argument %d ('%s') is on %s; "
                            "move them to one device with .to(...)", k->name, i + 1, k->params[i].name, tb->name,
                            first_tensor + 1, k->params[first_tensor].name, be->name);
    }
    if (!be)
        be = eng_current_backend();
    const eng_kdriver *drv = be->kernels;
    kslot *slots = calloc((size_t)argc + 1, sizeof *slots);
    void **argp = calloc((size_t)argc + 1, sizeof *argp);
    size_t *arg_bytes = calloc((size_t)argc + 1, sizeof *arg_bytes); /* a pointer's reach: its tensor */
    tensor **copies = calloc((size_t)argc + 1, sizeof *copies);
    int rc = -1, ncopies = 0;
    if (!slots || !argp || !arg_bytes || !copies) {
        eng_fail(err, ERR_MEMORY, "%s: out of memory", k->name);
        goto out;
    }
    for (int i = 0; i < argc; i++) {
        const eng_kparam *p = &k->params[i];
        argp[i] = &slots[i];
        if (!p->is_ptr) {
            if (convert_scalar(k, i, args[i], &slots[i], err))
                goto out;
            continue;
        }
        tensor *x = args[i].as.t;
        int want = eng_ctype_dtype(p->ctype);
        if ((int)x->dtype != want) {
            const char *dt = tensor_dtype_name((tensor_dtype)want);
            eng_fail(err, ERR_TYPE, "%s: argument %d ('%s', %s) needs %s %s tensor, got %s", k->name, i + 1, p->name,
                     p->type, eng_a(dt), dt, tensor_dtype_name(x->dtype));
            goto out;
        }
        if (!tensor_is_contiguous(x)) {
            if (!p->is_const) {
                eng_fail(err, ERR_VALUE, "%s: argument %d ('%s', %s) is not contiguous, and the kernel may write "
                         "into it: pass contiguous(%s) into a variable and use that (writes into a temporary copy "
                         "would be lost)", k->name, i + 1, p->name, p->type, p->name[0] ? p->name : "x");
                goto out;
            }
            tensor *c = tensor_contiguous(x, err); /* const: a contiguous copy, read only */
            if (!c)
                goto out;
            copies[ncopies++] = c;
            x = c;
        }
        slots[i].ptr = tensor_data_ptr(x);
        arg_bytes[i] = (size_t)tensor_numel(x) * tensor_dtype_size(x->dtype);
    }
    if (!drv) {
        eng_fail(err, ERR_RUNTIME, "%s: this build has no kernel driver for the %s backend (tensors on %s cannot "
                 "be passed to a kernel)", k->name, be->name, be->name);
        goto out;
    }
    eng_klimits lim;
    memset(&lim, 0, sizeof lim);
    drv->limits(&lim);
    static const char xyz[] = "xyz";
    uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
    for (int d = 0; d < 3; d++) {
        if (block[d] > lim.max_block[d]) {
            eng_fail(err, ERR_VALUE, "%s<<<...>>>: block.%c is %u, past the device's limit of %u", k->name, xyz[d],
                     block[d], lim.max_block[d]);
            goto out;
        }
        if (grid[d] > lim.max_grid[d]) {
            eng_fail(err, ERR_VALUE, "%s<<<...>>>: grid.%c is %u, past the device's limit of %u", k->name, xyz[d],
                     grid[d], lim.max_grid[d]);
            goto out;
        }
    }
    if (threads > lim.max_threads) {
        eng_fail(err, ERR_VALUE, "%s<<<...>>>: a block of %u x %u x %u = %llu threads is past the device's limit of "
                 "%u threads per block", k->name, block[0], block[1], block[2], (unsigned long long)threads,
                 lim.max_threads);
        goto out;
    }
    if (shared < 0 || (uint64_t)shared > lim.max_shared) {
        eng_fail(err, ERR_VALUE, "%s<<<...>>>: %lld bytes of dynamic shared memory %s", k->name, (long long)shared,
                 shared < 0 ? "is negative" : "is past the device's limit per block");
        if (shared >= 0) {
            size_t l = strlen(err->msg);
            snprintf(err->msg + l, sizeof err->msg - l, " (%zu bytes)", lim.max_shared);
        }
        goto out;
    }
    char ename[64];
    if (shared == 0 && extern_shared_name(k, ename, sizeof ename)) {
        eng_fail(err, ERR_VALUE, "%s<<<...>>>: the kernel declares extern __shared__ %s[] but the launch gives it 0 "
                 "bytes of dynamic shared memory (a GPU faults on its first use): pass the size as the third launch "
                 "parameter, %s<<<grid, block, bytes>>>(...)", k->name, ename, k->name);
        goto out;
    }
    if (ensure_module(t, k, drv, details, err))
        goto out;
    if (k->info.max_threads > 0 && threads > (uint64_t)k->info.max_threads) {
        eng_fail(err, ERR_VALUE, "%s<<<...>>>: a block of %llu threads is past this kernel's limit of %d (its "
                 "registers or __launch_bounds__)", k->name, (unsigned long long)threads, k->info.max_threads);
        goto out;
    }
    if (k->info.static_shared != (size_t)-1 && k->info.static_shared + (uint64_t)shared > lim.max_shared) {
        eng_fail(err, ERR_VALUE, "%s<<<...>>>: %zu bytes of static and %lld of dynamic shared memory are past the "
                 "device's limit of %zu bytes per block", k->name, k->info.static_shared, (long long)shared,
                 lim.max_shared);
        goto out;
    }
    eng_error e = {0};
    int debugged = k->mod_check == 2 && drv->debug;
    if (debugged) {
        t->kdbg_count = 0;
        drv->debug(&t->kdbg);
    }
    int lrc = drv->launch_sized ? drv->launch_sized(k->mod, grid, block, (size_t)shared, argp, arg_bytes, &e)
                                : drv->launch(k->mod, grid, block, (size_t)shared, argp, &e);
    if (debugged)
        drv->debug(NULL);
    if (debugged && !lrc)
        eng_kdebug_after(t, k->name, grid, block);
    t->kdbg_bps = 0; /* the next launch reads the debugger's breakpoints again */
    t->kdbg_args = NULL;
    if (lrc) {
        eng_fail(err, e.kind ? e.kind : ERR_RUNTIME, "%s: %s", k->name, e.kind ? e.msg : "the launch failed");
        goto out;
    }
    k->launches++;
    if (ncopies && drv->sync && drv->sync(&e)) { /* the copies must outlive the kernel's reads */
        eng_fail(err, e.kind ? e.kind : ERR_RUNTIME, "%s: %s", k->name, e.msg);
        goto out;
    }
    rc = 0;
out:
    for (int i = 0; copies && i < ncopies; i++)
        tensor_decref(copies[i]);
    free(copies);
    free(arg_bytes);
    free(slots);
    free(argp);
    return rc;
}

/* ---- description ---- */

void eng_kernel_attrs(const eng_kernel *k, char *buf, size_t n)
{
    if (!k->is_global) {
        snprintf(buf, n, "__device__ function (compiled into the kernels)");
        return;
    }
    if (!k->compiled) {
        snprintf(buf, n, "not compiled (its definition did not compile, or could not be compiled here: a launch compiles it)");
        return;
    }
    static const char *const cache[] = {"compiled now", "from the session's cache", "from the disk cache"};
    char regs[32] = "n/a", shared[32] = "n/a"; /* the simulator has no registers to count */
    if (k->info.regs >= 0)
        snprintf(regs, sizeof regs, "%d", k->info.regs);
    if (k->info.static_shared != (size_t)-1)
        snprintf(shared, sizeof shared, "%zu B", k->info.static_shared);
    snprintf(buf, n, "%s driver: regs %s, static shared %s, max threads %d, compile %.1f ms",
             k->drv ? k->drv->name : "no", regs, shared, k->info.max_threads, k->info.compile_ms);
    size_t l = strlen(buf);
    int c = k->info.cache >= 0 && k->info.cache <= 2 ? k->info.cache : 0;
    snprintf(buf + l, n - l, ", %s%s", cache[c], k->mod_check == 2 ? ", debug build" : k->mod_check ? ", checking build" : "");
}

char *eng_kernel_describe(const eng_kernel *k, int with_source)
{
    char attrs[300];
    eng_kernel_attrs(k, attrs, sizeof attrs);
    char *r = NULL;
    if (asprintf(&r, "%s\ndefined in %s, line %d\n%s%s%s", k->signature, k->cell, k->line, attrs,
                 with_source ? "\n\n" : "", with_source ? k->source : "") < 0)
        return NULL;
    return r;
}
