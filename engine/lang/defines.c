/* defines.c — a cell's object-like `#define NAME value` lines as host constants.
 *
 * `#define BLOCK 256` before a kernel (or on lines of its own) is the kernel's, and in
 * CUDA C the host code of the same file sees it too: `k<<<cdiv(n, BLOCK), BLOCK>>>`.
 * So before a cell is checked, each such line whose value is a host expression becomes
 * `const auto NAME = (value);`, run as a statement of its own: an int or a float
 * constant that this cell's later statements and later cells see, like any global
 * (%whos lists it, %reset removes it, %save keeps it). Running the cell again, or
 * another `#define NAME`, redefines it, as a declaration in a later cell does.
 * Function-like macros (`#define IDX(i, j) ...`), empty ones (`#define USE_FAST`) and
 * values that are not host expressions (`#define TID threadIdx.x`) stay the kernel's
 * only. Integer suffixes (u, l, ul, ll) are dropped; the float suffix f the language
 * reads already.
 *
 * Kernels see them too: each such constant is also kept as CUDA C text (kernels.h,
 * eng_kdefine: `#define NAME value` as written, after a `#line` naming its cell and
 * line), and a __global__ or __device__ definition made later takes, as its prelude,
 * every one whose global still holds the value it made (not %del'ed, %reset or
 * re-declared), except the names its own '#' lines define (its own win, as after an
 * #undef). The prelude is part of the definition: a changed #define changes the
 * translation unit of definitions made after it (the compilers' caches key on it);
 * definitions made before it keep what they saw. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lang/interp.h"
#include "engine/lang/session.h"
#include "engine/lang/kernels.h"

static int is_ident(int c) { return isalnum(c) || c == '_'; }

/* the value text v[0, n) with comments and integer suffixes removed and continuations
 * joined, into out (size cap); 0 when empty or too long */
static int clean_value(const char *v, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\\' && i + 1 < n && (v[i + 1] == '\n' || v[i + 1] == '\r'))
            continue; /* a continuation: the newline becomes a blank */
        if (v[i] == '/' && i + 1 < n && v[i + 1] == '/')
            break;
        if (v[i] == '/' && i + 1 < n && v[i + 1] == '*') {
            const char *e = NULL;
            for (size_t j = i + 2; j + 1 < n; j++)
                if (v[j] == '*' && v[j + 1] == '/') {
                    e = v + j;
                    break;
                }
            if (!e)
                break;
            i = (size_t)(e - v) + 1;
            if (k + 1 >= cap)
                return 0;
            out[k++] = ' ';
            continue;
        }
        if (isdigit((unsigned char)v[i]) && (i == 0 || !is_ident((unsigned char)v[i - 1]))) {
            /* a number: copy it, then drop u/l suffixes (not from 0x.., where they could be digits) */
            size_t j = i;
            int hex = v[i] == '0' && i + 1 < n && (v[i + 1] == 'x' || v[i + 1] == 'X');
            while (j < n && (is_ident((unsigned char)v[j]) || v[j] == '.' ||
                             ((v[j] == '+' || v[j] == '-') && !hex && (v[j - 1] == 'e' || v[j - 1] == 'E'))))
                j++;
            size_t end = j;
            while (end > i && strchr("uUlL", v[end - 1]))
                end--;
            if (k + (end - i) + 1 >= cap)
                return 0;
            memcpy(out + k, v + i, end - i);
            k += end - i;
            i = j - 1;
            continue;
        }
        if (k + 1 >= cap)
            return 0;
        out[k++] = v[i] == '\n' || v[i] == '\r' || v[i] == '\t' ? ' ' : v[i];
    }
    while (k > 0 && out[k - 1] == ' ')
        k--;
    out[k] = 0;
    size_t lead = strspn(out, " ");
    return out[lead] != 0;
}

/* keeps `#define NAME value` (value v[0, n) as written) for later kernels: global g holds it */
static void keep_for_kernels(eng_session *s, const char *name, size_t nlen, const char *v, size_t n,
                             const char *cell, int line, int g)
{
    char *text = malloc(n + nlen * 2 + strlen(cell) * 2 + 64);
    if (!text)
        return; /* out of memory: kernels do not see it */
    size_t k = (size_t)sprintf(text, "#undef %.*s\n#line %d \"", (int)nlen, name, line);
    for (const char *c = cell; *c; c++) {
        if (*c == '"' || *c == '\\')
            text[k++] = '\\';
        text[k++] = *c;
    }
    k += (size_t)sprintf(text + k, "\"\n#define %.*s ", (int)nlen, name);
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    for (size_t i = 0; i < n; i++) { /* one line: continuations joined */
        if (v[i] == '\\' && i + 1 < n && (v[i + 1] == '\n' || v[i + 1] == '\r'))
            continue;
        text[k++] = v[i] == '\n' || v[i] == '\r' ? ' ' : v[i];
    }
    while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t'))
        k--;
    text[k++] = '\n';
    text[k] = 0;
    eng_kdefine_set(s->kernels, name, nlen, text, g, s->globals[g].v);
}

/* one '#' line at p (to its end, continuations included): defines it if it is an
 * object-like #define with a host value; returns the end of the line */
static const char *define_line(eng_session *s, const char *p, const char *cell, int line)
{
    const char *end = p;
    while (*end && *end != '\n') {
        if (*end == '\\' && (end[1] == '\n' || (end[1] == '\r' && end[2] == '\n')))
            end += end[1] == '\r' ? 2 : 1;
        end++;
    }
    const char *q = p + 1;
    while (*q == ' ' || *q == '\t')
        q++;
    if (strncmp(q, "define", 6) != 0 || (q[6] != ' ' && q[6] != '\t'))
        return end;
    q += 6;
    while (*q == ' ' || *q == '\t')
        q++;
    const char *name = q;
    while (q < end && is_ident((unsigned char)*q))
        q++;
    size_t nlen = (size_t)(q - name);
    if (nlen == 0 || nlen > 100 || isdigit((unsigned char)*name) || *q == '(')
        return end; /* no name, or a function-like macro */
    char text[512];
    if (!clean_value(q, (size_t)(end - q), text, sizeof text))
        return end;
    char *code = eng_fmt_alloc("const auto %.*s = (%s);", (int)nlen, name, text);
    char *cname = eng_fmt_alloc("#define %.*s", (int)nlen, name);
    if (code && cname) {
        eng_error quiet = {0}; /* not a host expression: the kernel's alone, no message */
        eng_compiled *c = eng_compile(s, code, cname, 1, &quiet);
        int g;
        if (c && !eng_run_compiled(s, c, &quiet) && (g = eng_global_find(s, name, (int)nlen)) >= 0 &&
            s->globals[g].defined && (s->globals[g].v.type == VAL_INT || s->globals[g].v.type == VAL_FLOAT))
            keep_for_kernels(s, name, nlen, q, (size_t)(end - q), cell, line, g);
        eng_compiled_free(c);
    }
    free(code);
    free(cname);
    return end;
}

void eng_cell_defines(eng_session *s, const ast_cell *cell, const char *cell_name, int first_line)
{
    for (int i = 0; i < cell->nstmts; i++) {
        const ast *n = cell->stmts[i];
        if (!((n->kind == AST_KERNEL || n->kind == AST_EMPTY) && n->str))
            continue;
        /* the '#' lines lead the text (a kernel's definition follows them) */
        const char *p = n->str;
        int line = n->line + first_line - 1;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
                line += *p++ == '\n';
            if (*p != '#')
                break;
            const char *e = define_line(s, p, cell_name ? cell_name : "cell", line);
            for (; p < e; p++)
                line += *p == '\n';
        }
    }
}

/* ---- the #defines kernels see ---- */

int eng_kdefine_set(eng_ktable *t, const char *name, size_t nlen, char *text, int g, value v)
{
    int i = 0;
    while (i < t->ndefs && !(strlen(t->defs[i].name) == nlen && !memcmp(t->defs[i].name, name, nlen)))
        i++;
    if (i == t->ndefs) {
        char *nm = strndup(name, nlen);
        if (t->ndefs == t->capdefs) {
            int cap = t->capdefs ? t->capdefs * 2 : 8;
            eng_kdefine *d = nm ? realloc(t->defs, sizeof *d * (size_t)cap) : NULL;
            if (!d) {
                free(nm);
                free(text);
                return -1;
            }
            t->defs = d;
            t->capdefs = cap;
        }
        if (!nm) {
            free(text);
            return -1;
        }
        t->defs[t->ndefs++] = (eng_kdefine){nm, NULL, 0, value_void()};
    }
    free(t->defs[i].text);
    t->defs[i].text = text;
    t->defs[i].global = g;
    t->defs[i].v = v;
    return 0;
}

/* src's own '#' lines define or #undef name */
static int own_define(const char *src, int srclen, const char *name)
{
    size_t nl = strlen(name);
    const char *p = src, *end = src + srclen;
    while (p < end) {
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q < end && *q == '#') {
            q++;
            while (q < end && (*q == ' ' || *q == '\t'))
                q++;
            int w = end - q > 6 && !strncmp(q, "define", 6) ? 6 : end - q > 5 && !strncmp(q, "undef", 5) ? 5 : 0;
            if (w && (q[w] == ' ' || q[w] == '\t')) {
                q += w;
                while (q < end && (*q == ' ' || *q == '\t'))
                    q++;
                if ((size_t)(end - q) >= nl && !strncmp(q, name, nl) && (q + nl == end || !is_ident((unsigned char)q[nl])))
                    return 1;
            }
        }
        while (p < end && *p != '\n')
            p++;
        p++;
    }
    return 0;
}

char *eng_kernel_prelude(eng_session *s, const char *src, int srclen)
{
    const eng_ktable *t = s->kernels;
    size_t len = 0;
    for (int pass = 0; pass < 2; pass++) {
        char *out = pass ? malloc(len + 1) : NULL;
        if (pass && !out)
            return NULL;
        size_t k = 0;
        for (int i = 0; i < t->ndefs; i++) {
            const eng_kdefine *d = &t->defs[i];
            const eng_global *gl = d->global < s->nglobals ? &s->globals[d->global] : NULL;
            if (!gl || !gl->defined || gl->v.type != d->v.type ||
                (d->v.type == VAL_INT ? gl->v.as.i != d->v.as.i : memcmp(&gl->v.as.f, &d->v.as.f, sizeof(double))) ||
                own_define(src, srclen, d->name))
                continue; /* %del'ed, %reset, re-declared, or the definition's own */
            size_t n = strlen(d->text);
            if (pass)
                memcpy(out + k, d->text, n);
            k += n;
        }
        if (pass) {
            out[k] = 0;
            return out;
        }
        len = k;
    }
    return NULL;
}
