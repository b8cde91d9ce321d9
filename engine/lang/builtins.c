/* builtins.c — the table of built-in functions, and those that are not tensor
 * operations: output (print, printf), the RNG seed, display, input.
 * Tensor built-ins live in engine/lang/builtins_tensor.c; both are listed in .def files
 * that this table includes, so the checker, completion and inspect see one list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/lang/builtins_autograd.h"
#include "engine/lang/builtins_custom.h"
#include "engine/lang/builtins_display.h"
#include "engine/lang/builtins_nn.h"
#include "engine/lang/builtins_tensor.h"
#include "engine/lang/builtins_train.h"
#include "engine/lang/builtins_vocab.h"
#include "engine/lang/interp.h"

#define BUILTIN(name, fn, mn, mx, ret, sig, doc) static int fn(eng_call *c, value *out);
#include "engine/lang/builtins_core.def"
#undef BUILTIN

static const eng_builtin builtin_table[] = {
#define BUILTIN(name, fn, mn, mx, ret, sig, doc) {name, fn, mn, mx, ret, sig, doc},
#include "engine/lang/builtins_core.def"
#include "engine/lang/builtins_tensor.def"
#include "engine/lang/builtins_autograd.def"
#include "engine/lang/builtins_display.def"
#include "engine/lang/builtins_nn.def"
#include "engine/lang/builtins_train.def"
#include "engine/lang/builtins_custom.def"
#include "engine/lang/builtins_vocab.def"
#undef BUILTIN
};
#define NBUILTINS ((int)(sizeof builtin_table / sizeof builtin_table[0]))

const eng_builtin *eng_builtin_find(const char *name, int len)
{
    for (int i = 0; i < NBUILTINS; i++)
        if ((int)strlen(builtin_table[i].name) == len && !memcmp(builtin_table[i].name, name, (size_t)len))
            return &builtin_table[i];
    return NULL;
}

const eng_builtin *eng_builtin_at(int i) { return i >= 0 && i < NBUILTINS ? &builtin_table[i] : NULL; }
int eng_builtin_index(const eng_builtin *b) { return (int)(b - builtin_table); }
int eng_builtin_count(void) { return NBUILTINS; }

/* ---- output ---- */

static int bi_print(eng_call *c, value *out)
{
    for (int i = 0; i < c->argc; i++) {
        size_t len; /* a string is printed whole, NULs included */
        char *text = eng_value_text_n(c->argv[i], 0, &len);
        if (!text)
            return eng_fail(c->err, ERR_MEMORY, "print: out of memory");
        if (i)
            eng_stream(c->session, 1, " ", 1);
        eng_stream(c->session, 1, text, len);
        free(text);
    }
    eng_stream(c->session, 1, "\n", 1);
    *out = value_void();
    return 0;
}

static int bi_printf(eng_call *c, value *out)
{
    char *text;
    size_t len;
    if (eng_format(c, 0, &text, &len))
        return -1;
    eng_stream(c->session, 1, text, len);
    free(text);
    *out = value_void();
    return 0;
}

static int bi_fprintf(eng_call *c, value *out)
{
    int64_t fd;
    if (c->argv[0].type != VAL_INT || (c->argv[0].as.i != 1 && c->argv[0].as.i != 2))
        return eng_fail(c->err, ERR_TYPE, "fprintf: argument 1 must be stdout or stderr");
    fd = c->argv[0].as.i;
    char *text;
    size_t len;
    if (eng_format(c, 1, &text, &len))
        return -1;
    eng_stream(c->session, (int)fd, text, len);
    free(text);
    *out = value_void();
    return 0;
}

static int bi_sprintf(eng_call *c, value *out)
{
    char *text;
    size_t len;
    if (eng_format(c, 0, &text, &len))
        return -1;
    eng_string *s = eng_string_alloc((int64_t)len, "sprintf", c->err);
    if (s)
        memcpy(s->data, text, len);
    free(text);
    if (!s)
        return -1;
    out->type = VAL_STRING;
    out->as.s = s;
    return 0;
}

static int bi_str(eng_call *c, value *out)
{
    size_t len = 0;
    char *text = eng_value_text_n(c->argv[0], 0, &len);
    eng_string *s = text ? eng_string_alloc((int64_t)len, "str", c->err) : NULL;
    if (s)
        memcpy(s->data, text, len);
    free(text);
    if (!s)
        return eng_fail(c->err, ERR_MEMORY, "str: out of memory");
    out->type = VAL_STRING;
    out->as.s = s;
    return 0;
}

static int bi_len(eng_call *c, value *out)
{
    value v = c->argv[0];
    switch (v.type) {
    case VAL_STRING: *out = value_int(v.as.s->len); return 0;
    case VAL_TUPLE: *out = value_int(v.as.tup->n); return 0;
    case VAL_TENSOR:
        if (v.as.t->ndim == 0)
            return eng_fail(c->err, ERR_TYPE, "len: a 0-d tensor has no length");
        *out = value_int(v.as.t->shape[0]);
        return 0;
    default: return eng_fail(c->err, ERR_TYPE, "len: %s has no length", value_type_name(v.type));
    }
}

static int bi_time(eng_call *c, value *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *out = value_float((double)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 0;
}

/* ---- numbers ---- */

static int bi_seed(eng_call *c, value *out)
{
    int64_t n;
    if (arg_int(c, 0, &n))
        return -1;
    c->session->rng.seed = (uint64_t)n;
    c->session->rng.offset = 0;
    *out = value_void();
    return 0;
}

static int bi_cdiv(eng_call *c, value *out)
{
    int64_t a, b;
    if (arg_int(c, 0, &a) || arg_int(c, 1, &b))
        return -1;
    if (b == 0)
        return eng_fail(c->err, ERR_ZERODIV, "cdiv: division by zero (cdiv(%lld, 0))", (long long)a);
    if (b == -1) { /* INT64_MIN / -1 overflows in C (SIGFPE): wrap as the '/' operator does */
        *out = value_int((int64_t)(0 - (uint64_t)a));
        return 0;
    }
    int64_t q = a / b, r = a % b;
    *out = value_int(q + ((r != 0) && ((r > 0) == (b > 0))));
    return 0;
}

/* dim3(x[, y[, z]]): a tuple of three ints, each at least 1, for <<<grid, block>>> */
static int bi_dim3(eng_call *c, value *out)
{
    int64_t d[3] = {1, 1, 1};
    for (int i = 0; i < c->argc; i++) {
        if (arg_int(c, i, &d[i]))
            return -1;
        if (d[i] < 1)
            return eng_fail(c->err, ERR_VALUE, "dim3: argument %d is %lld; sizes must be at least 1", i + 1,
                            (long long)d[i]);
    }
    eng_tuple *t = eng_tuple_new(3, d);
    if (!t)
        return eng_fail(c->err, ERR_MEMORY, "dim3: out of memory");
    out->type = VAL_TUPLE;
    out->as.tup = t;
    return 0;
}

/* ---- notebook ---- */

static int bi_input(eng_call *c, value *out)
{
    const char *prompt = "";
    if (c->argc > 0 && arg_string(c, 0, &prompt))
        return -1;
    eng_flush(c->session);
    const eng_sink *sink = c->session->sink;
    size_t len = 0;
    char *line = sink && sink->input ? sink->input(sink->user, prompt, 0, &len) : NULL;
    if (!line && eng_ctx_flag_get(&c->session->ctx.interrupt))
        return eng_fail(c->err, ERR_INTERRUPT, "input: interrupted while waiting for the input");
    if (!line)
        return eng_fail(c->err, ERR_RUNTIME, "input: this frontend does not support input requests");
    eng_string *s = eng_string_new(line, (int64_t)len);
    free(line);
    if (!s)
        return eng_fail(c->err, ERR_MEMORY, "input: out of memory");
    out->type = VAL_STRING;
    out->as.s = s;
    return 0;
}

static int display_common(eng_call *c, int update)
{
    const char *id = NULL;
    if (c->argc > 1 && arg_string(c, 1, &id))
        return -1;
    return eng_show(c->session, c->argv[0], 0, id, update, c->err);
}

static int bi_display(eng_call *c, value *out)
{
    *out = value_void();
    return display_common(c, 0);
}

static int bi_update_display(eng_call *c, value *out)
{
    *out = value_void();
    return display_common(c, 1);
}

static int bi_clear_output(eng_call *c, value *out)
{
    int wait = 0;
    if (c->argc > 0 && arg_bool(c, 0, &wait))
        return -1;
    eng_flush(c->session);
    const eng_sink *sink = c->session->sink;
    if (sink && sink->clear_output)
        sink->clear_output(sink->user, wait);
    *out = value_void();
    return 0;
}
