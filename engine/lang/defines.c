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
 * reads already. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lang/interp.h"
#include "engine/lang/session.h"

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

/* one '#' line at p (to its end, continuations included): defines it if it is an
 * object-like #define with a host value; returns the end of the line */
static const char *define_line(eng_session *s, const char *p)
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
        if (c)
            eng_run_compiled(s, c, &quiet);
        eng_compiled_free(c);
    }
    free(code);
    free(cname);
    return end;
}

void eng_cell_defines(eng_session *s, const ast_cell *cell)
{
    for (int i = 0; i < cell->nstmts; i++) {
        const ast *n = cell->stmts[i];
        if (!((n->kind == AST_KERNEL || n->kind == AST_EMPTY) && n->str))
            continue;
        /* the '#' lines lead the text (a kernel's definition follows them) */
        const char *p = n->str;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
                p++;
            if (*p != '#')
                break;
            p = define_line(s, p);
        }
    }
}
