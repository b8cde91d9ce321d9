/* value.c — reference counting of values, strings and tuples, and the argument
 * helpers built-ins use to read their arguments with clear errors. */
#include "engine/lang/value.h"

#include <stdlib.h>
#include <string.h>

#include "engine/base/hostmem.h"
#include "engine/lang/interp.h"

void value_incref_obj(value v)
{
    switch (v.type) {
    case VAL_STRING: v.as.s->refcount++; break;
    case VAL_TENSOR: tensor_incref(v.as.t); break;
    case VAL_TUPLE: v.as.tup->refcount++; break;
    case VAL_FUNC: v.as.fn->refcount++; break;
    default: break;
    }
}

void value_decref_obj(value v)
{
    switch (v.type) {
    case VAL_STRING:
        if (--v.as.s->refcount == 0) {
            eng_hostmem_untrack(sizeof *v.as.s + (size_t)v.as.s->len + 1);
            free(v.as.s);
        }
        break;
    case VAL_TENSOR: tensor_decref(v.as.t); break;
    case VAL_TUPLE:
        if (--v.as.tup->refcount == 0)
            free(v.as.tup);
        break;
    case VAL_FUNC: eng_func_decref(v.as.fn); break;
    default: break;
    }
}

const char *value_type_name(val_type t)
{
    static const char *const names[VAL_NTYPES] = {"void", "bool", "int", "float", "string",
                                            "tensor", "tuple", "dtype", "device", "function"};
    return t < VAL_NTYPES ? names[t] : "?";
}

eng_string *eng_string_alloc(int64_t len, const char *what, eng_error *err)
{
    size_t bytes;
    if (len < 0 || eng_size_add(sizeof(eng_string) + 1, (size_t)len, &bytes) < 0 || len > ((int64_t)1 << 62)) {
        eng_fail(err, ERR_MEMORY, "%s: a string of %lld bytes is too large", what, (long long)len);
        return NULL;
    }
    eng_string *str = eng_host_malloc(bytes, what, err);
    if (!str)
        return NULL;
    eng_hostmem_track(bytes);
    str->refcount = 1;
    str->len = len;
    str->data[len] = 0;
    return str;
}

eng_string *eng_string_new(const char *s, int64_t len)
{
    eng_string *str = eng_string_alloc(len, "string", NULL);
    if (str)
        memcpy(str->data, s, (size_t)len);
    return str;
}

eng_tuple *eng_tuple_new(int n, const int64_t *items)
{
    eng_tuple *t = malloc(sizeof *t + sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    if (!t)
        return NULL;
    t->refcount = 1;
    t->n = n;
    if (n > 0)
        memcpy(t->v, items, sizeof(int64_t) * (size_t)n);
    return t;
}

static int arg_missing(eng_call *c, int i, const char *want)
{
    if (i < c->argc)
        return 0;
    return eng_fail(c->err, ERR_TYPE, "%s: missing argument %d (%s)", c->name, i + 1, want);
}

static int arg_wrong(eng_call *c, int i, const char *want)
{
    return eng_fail(c->err, ERR_TYPE, "%s: argument %d must be %s, got %s", c->name, i + 1, want,
                    value_type_name(c->argv[i].type));
}

/* a one-element tensor as a double, for scalars that arrive as 0-d tensors */
static int tensor_scalar_arg(eng_call *c, int i, double *out)
{
    tensor *t = c->argv[i].as.t;
    if (tensor_numel(t) != 1)
        return eng_fail(c->err, ERR_TYPE, "%s: argument %d must be a scalar, got a tensor of %lld elements",
                        c->name, i + 1, (long long)tensor_numel(t));
    return tensor_item(t, out, c->err);
}

int arg_int(eng_call *c, int i, int64_t *out)
{
    if (arg_missing(c, i, "an int"))
        return -1;
    value v = c->argv[i];
    if (v.type == VAL_INT || v.type == VAL_BOOL) {
        *out = v.as.i;
        return 0;
    }
    if (v.type == VAL_TENSOR && !tensor_dtype_is_float(v.as.t->dtype)) {
        double d;
        if (tensor_scalar_arg(c, i, &d))
            return -1;
        *out = (int64_t)d;
        return 0;
    }
    return arg_wrong(c, i, "an int");
}

int arg_double(eng_call *c, int i, double *out)
{
    if (arg_missing(c, i, "a number"))
        return -1;
    value v = c->argv[i];
    switch (v.type) {
    case VAL_INT:
    case VAL_BOOL: *out = (double)v.as.i; return 0;
    case VAL_FLOAT: *out = v.as.f; return 0;
    case VAL_TENSOR: return tensor_scalar_arg(c, i, out);
    default: return arg_wrong(c, i, "a number");
    }
}

int arg_bool(eng_call *c, int i, int *out)
{
    double d;
    if (arg_double(c, i, &d))
        return -1;
    *out = d != 0;
    return 0;
}

int arg_string(eng_call *c, int i, const char **out)
{
    if (arg_missing(c, i, "a string"))
        return -1;
    if (c->argv[i].type != VAL_STRING)
        return arg_wrong(c, i, "a string");
    *out = c->argv[i].as.s->data;
    return 0;
}

int arg_dtype(eng_call *c, int i, tensor_dtype *out)
{
    if (arg_missing(c, i, "a dtype"))
        return -1;
    if (c->argv[i].type != VAL_DTYPE)
        return arg_wrong(c, i, "a dtype (f32, f64, i32, i64, u8, bool)");
    *out = (tensor_dtype)c->argv[i].as.i;
    return 0;
}

int arg_tensor(eng_call *c, int i, tensor **out)
{
    if (arg_missing(c, i, "a tensor"))
        return -1;
    value v = c->argv[i];
    switch (v.type) {
    case VAL_TENSOR:
        tensor_incref(v.as.t);
        *out = v.as.t;
        return 0;
    case VAL_INT: *out = tensor_scalar((double)v.as.i, DT_I64, c->err); break;
    case VAL_BOOL: *out = tensor_scalar((double)v.as.i, DT_BOOL, c->err); break;
    case VAL_FLOAT: *out = tensor_scalar(v.as.f, DT_F32, c->err); break;
    default: return arg_wrong(c, i, "a tensor");
    }
    return *out ? 0 : -1;
}

int arg_tensor_or_scalar(eng_call *c, int i, tensor **t, double *scalar, int *is_float)
{
    if (arg_missing(c, i, "a tensor or a number"))
        return -1;
    value v = c->argv[i];
    *t = NULL;
    switch (v.type) {
    case VAL_TENSOR:
        tensor_incref(v.as.t);
        *t = v.as.t;
        return 0;
    case VAL_INT:
    case VAL_BOOL: *scalar = (double)v.as.i; *is_float = 0; return 0;
    case VAL_FLOAT: *scalar = v.as.f; *is_float = 1; return 0;
    default: return arg_wrong(c, i, "a tensor or a number");
    }
}

int args_shape(eng_call *c, int from, int *ndim, int64_t shape[TENSOR_MAXDIM])
{
    *ndim = 0;
    if (from < c->argc && c->argv[from].type == VAL_TUPLE) {
        eng_tuple *tup = c->argv[from].as.tup;
        if (tup->n > TENSOR_MAXDIM)
            return eng_fail(c->err, ERR_VALUE, "%s: %d dimensions, at most %d are supported", c->name,
                            tup->n, TENSOR_MAXDIM);
        for (int k = 0; k < tup->n; k++)
            shape[k] = tup->v[k];
        *ndim = tup->n;
        return 0;
    }
    for (int i = from; i < c->argc; i++) {
        value v = c->argv[i];
        if (v.type != VAL_INT && v.type != VAL_BOOL && v.type != VAL_TENSOR)
            break; /* a trailing dtype or other option */
        if (*ndim == TENSOR_MAXDIM)
            return eng_fail(c->err, ERR_VALUE, "%s: more than %d dimensions", c->name, TENSOR_MAXDIM);
        if (arg_int(c, i, &shape[*ndim]))
            return -1;
        (*ndim)++;
    }
    return 0;
}

tensor_rng *eng_session_rng(struct eng_session *s) { return &s->rng; }

/* ---- devices ---- */

static const char *const device_names[] = {"cpu", "cuda", "sim"};

const char *value_device_name(int64_t i)
{
    return i >= 0 && i < (int64_t)(sizeof device_names / sizeof device_names[0]) ? device_names[i] : "?";
}

int value_device_index(const char *name)
{
    for (int i = 0; i < (int)(sizeof device_names / sizeof device_names[0]); i++)
        if (!strcmp(name, device_names[i]))
            return i;
    return -1;
}
