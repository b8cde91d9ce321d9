/* test_optable.c — engine/tensor/ops.def against what is generated from it and what documents
 * it: docs/tensors.md's table of elementwise ops lists exactly the table's rows, each
 * with its kind (operator, primitive, internal, composite), its dtype rule and whether it has a
 * gradient; a composite's dtype is checked by running it on an i32 tensor. Every
 * built-in row is a built-in of the language with a number form. Run from the
 * repository root (make test-unit does). Exits non-zero on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/tensor/tensor.h"
#include "tests/unit/check.h"

typedef struct row {
    const char *name;  /* ops.def's name */
    const char *kind;  /* operator, primitive, composite */
    const char *dtype; /* the docs' words for its dtype rule */
    const char *grad;  /* yes, zero, none */
    tensor *(*fn)(const tensor *, double, eng_error *); /* a composite's function */
    int seen;          /* found in the docs */
} row;

#define KIND_OPERATOR "operator"
#define KIND_BUILTIN "primitive"
#define KIND_OWN "primitive"
#define KIND_INTERNAL "internal"
#define UDT_FLOAT "float (integers: f32)"
#define UDT_KEEP "keeps"
#define UDT_ARITH "keeps (bool: i64)"
#define UDT_BOOL "bool"
#define BDT_ARITH "promoted (two bools: i64)"
#define BDT_PROMOTE "promoted"
/* "yes" for GRAD(...), "zero" for NOGRAD ("none" where the result is bool) */
#define GRADWORD(G, isbool) (strncmp(#G, "GRAD(", 5) == 0 ? "yes" : (isbool) ? "none" : "zero")
#define ISBOOL_FLOAT 0
#define ISBOOL_KEEP 0
#define ISBOOL_ARITH 0
#define ISBOOL_BOOL 1

static row rows[64];
static int nrows;

static void table_rows(void)
{
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) \
    rows[nrows++] = (row){name, KIND_##API, UDT_##DT, GRADWORD(G, ISBOOL_##DT), NULL, 0};
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) \
    rows[nrows++] = (row){name, KIND_##API, BDT_##DT, GRADWORD(GA, 0), NULL, 0};
#define OP_COMPARE(ID, name, API, E, doc) rows[nrows++] = (row){name, KIND_##API, "bool", "none", NULL, 0};
#define OP_COMPOSITE(name, sig, NP, P0, DOM, EXPR, doc) \
    rows[nrows++] = (row){#name, "composite", NULL, "yes", tensor_##name, 0};
#include "engine/tensor/ops.def"
}

/* a composite's dtype rule, observed: its result for an i32 input */
static const char *composite_dtype(row *r)
{
    eng_error err = {0};
    int64_t n = 3;
    double v[3] = {-2, 0, 5};
    tensor *x = tensor_from_doubles(v, DT_I32, 1, &n, &err);
    tensor *y = x ? r->fn(x, 0.5, &err) : NULL;
    const char *word = !y ? "(failed)" : y->dtype == DT_F32 ? UDT_FLOAT : y->dtype == DT_I32 ? UDT_KEEP : "(other)";
    if (!y)
        fprintf(stderr, "%s on i32: %s\n", r->name, err.msg);
    tensor_decref(x);
    tensor_decref(y);
    return word;
}

/* s trimmed of spaces, in place */
static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

static void check_docs(void)
{
    FILE *f = fopen("docs/tensors.md", "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char line[512];
    int in = 0, listed = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## ", 3))
            in = !strcmp(line, "## Elementwise ops\n");
        if (!in || strncmp(line, "| `", 3))
            continue;
        /* | `op` | name | kind | dtype | gradient |: the last four cells, from the right
         * (the op cell may hold an escaped \|) */
        char *cell[6];
        int nc = 0;
        char *end = line + strlen(line);
        while (end > line && nc < 6) {
            char *bar = end - 1;
            while (bar > line && *bar != '|')
                bar--;
            *bar = 0;
            cell[nc++] = bar + 1;
            end = bar;
        }
        if (nc < 6) {
            fprintf(stderr, "docs/tensors.md: a row of the op table with too few cells\n");
            failures++;
            continue;
        }
        char *grad = trim(cell[1]), *dtype = trim(cell[2]), *kind = trim(cell[3]), *name = trim(cell[4]);
        listed++;
        row *r = NULL;
        for (int i = 0; i < nrows; i++)
            if (!strcmp(rows[i].name, name))
                r = &rows[i];
        if (!r) {
            fprintf(stderr, "docs/tensors.md lists '%s', which engine/tensor/ops.def has not\n", name);
            failures++;
            continue;
        }
        r->seen++;
        const char *want_dtype = r->dtype ? r->dtype : composite_dtype(r);
        if (strcmp(kind, r->kind) || strcmp(dtype, want_dtype) || strcmp(grad, r->grad)) {
            fprintf(stderr, "docs/tensors.md: %s: '%s | %s | %s', ops.def says '%s | %s | %s'\n", name, kind, dtype,
                    grad, r->kind, want_dtype, r->grad);
            failures++;
        }
    }
    fclose(f);
    for (int i = 0; i < nrows; i++)
        if (rows[i].seen != 1) {
            fprintf(stderr, "docs/tensors.md lists '%s' %d times (want once)\n", rows[i].name, rows[i].seen);
            failures++;
        }
    printf("docs/tensors.md: %d ops listed, engine/tensor/ops.def has %d\n", listed, nrows);
}

static void on_error(void *user, const eng_error_report *e)
{
    fprintf(stderr, "%s: %s: %s\n", (const char *)user, e->ename, e->evalue);
}

/* every built-in row and composite is a built-in that also takes a number */
static void check_builtins(void)
{
    eng_session *s = eng_session_new();
    CHECK(s != NULL);
    if (!s)
        return;
    int n = 0;
#define RUN_BUILTIN(name)                                                                      \
    do {                                                                                       \
        char code[128];                                                                        \
        snprintf(code, sizeof code, "float v = %s(2.0); tensor t = %s(ones(2, 3));", name, name); \
        eng_sink sink = {.user = (void *)name, .error = on_error};                             \
        if (eng_execute(s, code, "test", 1, &sink) != 0)                                       \
            failures++;                                                                        \
        n++;                                                                                   \
    } while (0);
#define RUN_UN_BUILTIN(name) RUN_BUILTIN(name)
#define RUN_UN_OPERATOR(name)
#define RUN_UN_OWN(name)
#define RUN_UN_INTERNAL(name)
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) RUN_UN_##API(name)
#define OP_COMPOSITE(name, sig, NP, P0, DOM, EXPR, doc) RUN_BUILTIN(#name)
#include "engine/tensor/ops.def"
    eng_session_free(s);
    printf("built-ins: %d (unary rows and composites) run on a number and on a tensor\n", n);
}

int main(void)
{
    table_rows();
    for (int i = 0; i < nrows; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(rows[i].name, rows[j].name)) {
                fprintf(stderr, "engine/tensor/ops.def: '%s' is two rows\n", rows[i].name);
                failures++;
            }
    check_docs();
    check_builtins();
    if (failures) {
        fprintf(stderr, "test_optable: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_optable: all passed\n");
    return 0;
}
