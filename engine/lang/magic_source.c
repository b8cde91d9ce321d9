/* magic_source.c — %source NAME: the definition of what a name runs.
 *
 * - A user function: its text from its cell (and, when it takes a built-in's name, that
 *   it shadows the built-in: engine/lang/shadow.c). A kernel: its CUDA C from its cell.
 * - A row of the op table (engine/tensor/ops.def): the row as written there (ops.def is
 *   embedded in this object at build time), the CPU expression the row gives
 *   cpu/cpu_elementwise.c, the CUDA source nvcc and the simulator compile for it
 *   (cuda/kernels/kk_*.cuh, embedded by cuda/kernels/kk_source.c: the row's functor as its
 *   X-macro expands, then the kernels that apply it), and its gradient rule.
 * - Another built-in: its signature and documentation (it is written in C).
 * Everything shown is taken from the files the build compiled, so it cannot drift from
 * the code. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/strbuf.h"
#include "engine/lang/interp.h"
#include "engine/lang/kernels.h"
#include "engine/lang/session_file.h"

/* cuda/kernels/kk_source.c, named by symbol as the engine names backends */
const char *kk_source_text(const char *file);

__asm__(".section .rodata\n"
        ".balign 16\n"
        "eng_src_ops_def:\n"
        ".incbin \"engine/tensor/ops.def\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char eng_src_ops_def[] __asm__("eng_src_ops_def");

/* one row of ops.def, its fields as written (the X-macros' arguments, stringified) */
typedef struct op_row {
    const char *kind;   /* "OP_UNARY", "OP_BINARY", "OP_COMPARE", "OP_REDUCE", "OP_COMPOSITE" */
    const char *id;     /* "GELU"; a composite's name */
    const char *name;   /* "gelu" */
    const char *api;    /* BUILTIN, OPERATOR, OWN, INTERNAL; NULL for reductions, composites */
    const char *dt;     /* the dtype rule */
    const char *fexpr;  /* float expression (a comparison's; a composite's DSL expression) */
    const char *iexpr;  /* integer expression, or NOINT / NULL */
    const char *grad_a; /* GRAD(...) or NOGRAD (x's, or a's) */
    const char *grad_b; /* b's, binary rows only */
    const char *doc;
} op_row;

static const op_row op_rows[] = {
#define OP_UNARY(ID, name, API, DT, DOM, FEXPR, IEXPR, GRAD, doc) \
    {"OP_UNARY", #ID, name, #API, #DT, #FEXPR, #IEXPR, #GRAD, NULL, doc},
#define OP_BINARY(ID, name, API, DT, DOM, FEXPR, IEXPR, GRAD_A, GRAD_B, doc) \
    {"OP_BINARY", #ID, name, #API, #DT, #FEXPR, #IEXPR, #GRAD_A, #GRAD_B, doc},
#define OP_COMPARE(ID, name, API, EXPR, doc) {"OP_COMPARE", #ID, name, #API, "BOOL", #EXPR, NULL, "NOGRAD", NULL, doc},
#define OP_REDUCE(ID, name, DT, GRAD) {"OP_REDUCE", #ID, name, NULL, #DT, NULL, NULL, #GRAD, NULL, NULL},
#define OP_COMPOSITE(name, sig, NP, P0, DOM, EXPR, doc) \
    {"OP_COMPOSITE", #name, #name, NULL, NULL, #EXPR, NULL, NULL, NULL, doc},
#include "engine/tensor/ops.def"
};

static const op_row *find_row(const char *name)
{
    for (size_t i = 0; i < sizeof op_rows / sizeof op_rows[0]; i++)
        if (!strcmp(op_rows[i].name, name))
            return &op_rows[i];
    return NULL;
}

/* the row as written in ops.def: from the line that opens it to its closing
 * parenthesis, with its line number */
static void put_def_row(strbuf *b, const op_row *r)
{
    char key[96];
    if (!strcmp(r->kind, "OP_COMPOSITE"))
        snprintf(key, sizeof key, "%s(%s,", r->kind, r->id);
    else
        snprintf(key, sizeof key, "%s(%s,", r->kind, r->id);
    const char *t = eng_src_ops_def, *p = t;
    for (;;) { /* a row starts a line: skip the mentions in the header comment */
        p = strstr(p, key);
        if (!p || p == t || p[-1] == '\n')
            break;
        p++;
    }
    if (!p) {
        strbuf_printf(b, "  (row not found in the embedded ops.def)\n");
        return;
    }
    int line = 1;
    for (const char *q = t; q < p; q++)
        line += *q == '\n';
    int depth = 0;
    const char *e = p;
    for (; *e; e++) {
        if (*e == '"') { /* the doc string may hold parentheses */
            for (e++; *e && *e != '"'; e++)
                if (*e == '\\' && e[1])
                    e++;
            continue;
        }
        if (*e == '(')
            depth++;
        else if (*e == ')' && --depth == 0)
            break;
    }
    strbuf_printf(b, "engine/tensor/ops.def, line %d:\n  %.*s\n", line, (int)(e - p + (*e ? 1 : 0)), p);
}

/* the text of a GRAD(e) field without the GRAD( ) around it */
static void put_rule(strbuf *b, const char *label, const char *g)
{
    size_t n = strlen(g);
    if (!strncmp(g, "GRAD(", 5) && n > 6 && g[n - 1] == ')')
        strbuf_printf(b, "  %s = %.*s\n", label, (int)(n - 6), g + 5);
    else
        strbuf_printf(b, "  %s: none (%s: zero almost everywhere, not differentiated)\n", label, g);
}

/* The lines of a .cuh file from the one holding `marker` (backed up over the template
 * line and the comment just above it) to the brace that closes that definition. */
static int put_cuh_block(strbuf *b, const char *file, const char *marker)
{
    const char *t = kk_source_text(file);
    const char *m = t ? strstr(t, marker) : NULL;
    if (!m)
        return -1;
    const char *start = m;
    while (start > t && start[-1] != '\n')
        start--;
    for (int k = 0; k < 3 && start > t; k++) { /* up over template <...> and a comment */
        const char *prev = start - 1;
        while (prev > t && prev[-1] != '\n')
            prev--;
        if (strncmp(prev, "template", 8) && strncmp(prev, "/*", 2))
            break;
        start = prev;
    }
    const char *e = strchr(m, '{');
    int depth = 0;
    for (; e && *e; e++) {
        if (*e == '{')
            depth++;
        else if (*e == '}' && --depth == 0)
            break;
    }
    if (!e || !*e)
        return -1;
    int line = 1;
    for (const char *q = t; q < start; q++)
        line += *q == '\n';
    strbuf_printf(b, "  // cuda/kernels/%s, line %d\n", file, line);
    for (const char *q = start; q <= e;) {
        const char *nl = strchr(q, '\n');
        int len = nl && nl < e + 1 ? (int)(nl - q) : (int)(e + 1 - q);
        strbuf_printf(b, "  %.*s\n", len, q);
        q += len + 1;
    }
    return 0;
}

/* a row's functor as its X-macro in cuda/kernels/kk_elementwise.cuh expands: the macro's
 * body with the row's arguments put in for its parameters (## pasted) */
static int put_functor(strbuf *b, const op_row *r, const char *macro)
{
    const char *t = kk_source_text("kk_elementwise.cuh");
    char key[64];
    snprintf(key, sizeof key, "#define %s(", macro);
    const char *d = t ? strstr(t, key) : NULL;
    if (!d)
        return -1;
    const char *params = d + strlen(key), *close = strchr(params, ')');
    if (!close)
        return -1;
    /* the parameter names, in order, and the row's arguments for them */
    const char *args_u[] = {r->id, r->name, r->api, r->dt, "DOM", r->fexpr, r->iexpr, r->grad_a, "doc"};
    const char *args_b[] = {r->id, r->name, r->api, r->dt, "DOM", r->fexpr, r->iexpr, r->grad_a, r->grad_b, "doc"};
    const char *args_c[] = {r->id, r->name, r->api, r->fexpr, "doc"};
    const char **args = !strcmp(macro, "OP_UNARY") ? args_u : !strcmp(macro, "OP_BINARY") ? args_b : args_c;
    char pname[12][16];
    int np = 0;
    for (const char *p = params; p < close && np < 12;) {
        while (p < close && !isalnum((unsigned char)*p) && *p != '_')
            p++;
        int n = 0;
        while (p < close && (isalnum((unsigned char)*p) || *p == '_'))
            if (n < 15)
                pname[np][n++] = *p++;
            else
                p++;
        if (n)
            pname[np][n] = 0, np++;
    }
    int line = 1;
    for (const char *q = t; q < d; q++)
        line += *q == '\n';
    strbuf_printf(b, "  // cuda/kernels/kk_elementwise.cuh, line %d: %s(...) for this row", line, macro);
    const char *p = close + 1;
    while (*p == ' ')
        p++;
    int at_line_start = 0;
    for (; *p; p++) {
        if (*p == '\\' && p[1] == '\n') { /* a continued line: keep the break, drop the backslash */
            while (b->len && b->p[b->len - 1] == ' ')
                b->len--;
            strbuf_printf(b, "\n  ");
            p++;
            at_line_start = 1;
            continue;
        }
        if (*p == '\n')
            break;
        if (at_line_start && *p == ' ' && p[1] == ' ' && p[2] == ' ' && p[3] == ' ') {
            p += 3; /* the macro's own indentation */
            at_line_start = 0;
            continue;
        }
        at_line_start = 0;
        if (p[0] == '#' && p[1] == '#')
            p += 2;
        if (isalpha((unsigned char)*p) || *p == '_') {
            const char *s = p;
            while (isalnum((unsigned char)p[1]) || p[1] == '_')
                p++;
            int n = (int)(p + 1 - s), k;
            for (k = 0; k < np; k++)
                if ((int)strlen(pname[k]) == n && !strncmp(pname[k], s, (size_t)n))
                    break;
            if (k < np && args[k])
                strbuf_printf(b, "%s", args[k]);
            else
                strbuf_put(b, s, (size_t)n);
            if (p[1] == '#' && p[2] == '#')
                p += 2;
            continue;
        }
        strbuf_put(b, p, 1);
    }
    while (b->len && (b->p[b->len - 1] == ' ' || b->p[b->len - 1] == '\n'))
        b->len--;
    strbuf_printf(b, "\n");
    return 0;
}

/* the internal rows a rule applies (un(GELU_GRAD, x)): each one's float expression */
static void put_helpers(strbuf *b, const char *rule)
{
    for (const char *p = rule; rule && (p = strstr(p, "un(")); p += 3) {
        if (p > rule && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
            continue;
        for (size_t i = 0; i < sizeof op_rows / sizeof op_rows[0]; i++) {
            size_t n = strlen(op_rows[i].id);
            if (!strcmp(op_rows[i].kind, "OP_UNARY") && !strcmp(op_rows[i].api, "INTERNAL") &&
                !strncmp(p + 3, op_rows[i].id, n) && p[3 + n] == ',')
                strbuf_printf(b, "  where un(%s, x) is the internal op %s: %s\n", op_rows[i].id, op_rows[i].name,
                              op_rows[i].fexpr);
        }
    }
}

static void put_op(strbuf *b, const op_row *r, const eng_builtin *bi)
{
    int unary = !strcmp(r->kind, "OP_UNARY"), binary = !strcmp(r->kind, "OP_BINARY");
    int compare = !strcmp(r->kind, "OP_COMPARE"), reduce = !strcmp(r->kind, "OP_REDUCE");
    const char *what = unary ? "a primitive unary op" : binary ? "a primitive binary op"
                       : compare ? "a comparison" : reduce ? "a reduction" : "a composite op";
    strbuf_printf(b, "%s: %s of the op table", r->name, what);
    if (bi)
        strbuf_printf(b, " (built-in %s)", bi->signature);
    else if (r->api && !strcmp(r->api, "OPERATOR"))
        strbuf_printf(b, " (the operator %s)", r->doc);
    else if (r->api && !strcmp(r->api, "INTERNAL"))
        strbuf_printf(b, " (internal: a gradient rule's helper, no built-in)");
    strbuf_printf(b, "\n\n");
    put_def_row(b, r);

    strbuf_printf(b, "\nCPU (cpu/");
    if (unary || binary || compare) {
        const char *fn = unary ? "un" : "bin";
        strbuf_printf(b, "cpu_elementwise.c: one typed loop per dtype generated from the row, "
                         "%s_%s_f32 ... with T the element type):\n", fn, r->id);
        const char *v = unary ? "x" : "a, b";
        if (compare)
            strbuf_printf(b, "  f32, f64, i32, i64:     out[i] = f(%s) = %s, a bool result\n", v, r->fexpr);
        else
            strbuf_printf(b, "  floats (f32, f64):      out[i] = f(%s) = %s\n", v, r->fexpr);
        if (compare)
            ;
        else if (r->iexpr && strcmp(r->iexpr, "NOINT"))
            strbuf_printf(b, "  integers (i32, i64):    out[i] = %s\n", r->iexpr);
        else
            strbuf_printf(b, "  integers:               none (%s: integer and bool inputs compute in f32)\n", r->dt);
        strbuf_printf(b, "  other dtypes (bool, u8, f16, bf16, mixed): the same expression in double "
                         "(engine/tensor/op_eval.h)\n");
    } else if (reduce) {
        strbuf_printf(b, "cpu_reduce.c): written by hand, not from an expression: the input seen as "
                         "[outer, n, inner], typed loops per dtype, float sums in double; dtype rule %s\n", r->dt);
    } else {
        strbuf_printf(b, "and every backend): no code of its own: each step of the expression is a recorded front-end "
                         "call (engine/tensor/composite.c, in the DSL of engine/tensor/op_dsl.h):\n  %s(x) = %s\n",
                      r->name, r->fexpr);
    }

    strbuf_printf(b, "\nCUDA (compiled by nvcc for the GPU and by the host C++ compiler for the simulator):\n");
    if (unary || binary || compare) {
        put_functor(b, r, unary ? "OP_UNARY" : binary ? "OP_BINARY" : "OP_COMPARE");
        strbuf_printf(b, "  // the kernels that apply the functor f (contiguous operands; strided ones: "
                         "%s_strided)\n", unary ? "kk_un" : "kk_bin");
        put_cuh_block(b, "kk_elementwise.cuh", unary ? "__global__ void kk_un_contig" : "__global__ void kk_bin_contig");
    } else if (reduce) {
        char mark[48];
        snprintf(mark, sizeof mark, "OP_%s", r->id);
        strbuf_printf(b, "  // the reduction kernels switch on the op; those of %s:\n", r->name);
        put_cuh_block(b, "kk_reduce.cuh", "__global__ void kk_red_rows");
        put_cuh_block(b, "kk_reduce.cuh", "__global__ void kk_red_cols");
    } else {
        strbuf_printf(b, "  no kernel of its own: each primitive of the expression launches its own "
                         "(%%source of each shows it)\n");
    }

    strbuf_printf(b, "\nGradient (engine/train/autograd.c, in the DSL of engine/tensor/op_dsl.h; g is the "
                     "output's gradient, y the output%s):\n",
                  reduce ? ", gk and yk them with the reduced dimension kept, cnt the count reduced" : "");
    if (unary) {
        put_rule(b, "dx", r->grad_a);
        put_helpers(b, r->grad_a);
    } else if (binary) {
        put_rule(b, "da", r->grad_a);
        put_rule(b, "db", r->grad_b);
    } else if (compare)
        strbuf_printf(b, "  none: a comparison's result is bool\n");
    else if (reduce)
        put_rule(b, "dx", r->grad_a);
    else
        strbuf_printf(b, "  no rule of its own: autograd records each step of the expression, and each "
                         "step's rule applies\n");
}

int eng_magic_source(eng_session *s, const char *magic, const char *rest, eng_source *src, eng_error *err)
{
    char name[128];
    int n = 0;
    while (isalnum((unsigned char)rest[n]) || rest[n] == '_')
        n++;
    const char *after = rest + n;
    while (isspace((unsigned char)*after))
        after++;
    if (!n || *after)
        return eng_fail(err, ERR_VALUE, "%%source takes one name, as in %%source gelu");
    if (n >= (int)sizeof name)
        return eng_fail(err, ERR_NAME, "%%source: no function, kernel or built-in named '%.40s...'", rest);
    memcpy(name, rest, (size_t)n);
    name[n] = 0;
    const eng_builtin *bi = eng_builtin_find(name, n);
    const op_row *row = find_row(name);
    strbuf b = {0};
    int g = eng_global_find(s, name, n);
    eng_kernel *k = eng_kernel_find(s->kernels, name, n);
    if (g >= 0 && s->globals[g].defined && s->globals[g].v.type == VAL_FUNC) {
        eng_func *fn = s->globals[g].v.as.fn;
        const char *text;
        size_t len;
        strbuf_printf(&b, "%s: a function defined in %s, line %d\n", name, fn->src->name,
                      fn->def->line + fn->src->first_line - 1);
        if (bi)
            strbuf_printf(&b, "It shadows the built-in %s: calls of %s() run it (%%del %s brings the "
                              "built-in back)\n", bi->signature, name, name);
        if (!eng_func_text(fn, &text, &len))
            strbuf_printf(&b, "\n%.*s\n", (int)len, text);
    } else if (k) {
        strbuf_printf(&b, "%s: a %s defined in %s, line %d\n\n%s\n", name,
                      k->is_global ? "__global__ kernel" : "__device__ function", k->cell, k->line, k->source);
    } else if (g >= 0 && s->globals[g].defined && !bi && !row) {
        free(strbuf_finish(&b));
        return eng_fail(err, ERR_TYPE, "%%source: '%s' is a variable (%s), not a function: it has no source",
                        name, value_type_name(s->globals[g].v.type));
    } else if (row) {
        put_op(&b, row, bi);
    } else if (bi) {
        strbuf_printf(&b, "%s: a built-in written in C (engine/lang/builtins_*.c), not a row of the op table\n\n"
                          "%s\n%s\n", name, bi->signature, bi->doc);
    } else {
        free(strbuf_finish(&b));
        return eng_fail(err, ERR_NAME, "%%source: no function, kernel or built-in named '%s'", name);
    }
    char *text = strbuf_finish(&b);
    if (!text)
        return eng_fail(err, ERR_MEMORY, "%%source: out of memory");
    eng_stream(s, 1, text, strlen(text));
    free(text);
    return 0;
}
