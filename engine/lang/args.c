/* args.c — the argument helpers built-ins use to read their arguments (value.h:
 * arg_int, arg_double, arg_tensor, args_shape, ...), each failing with an error that
 * names the built-in, the argument's position and what it wanted. */
#include "engine/lang/value.h"

#include <stdlib.h>
#include <string.h>

#include "engine/base/hostmem.h"
#include "engine/lang/interp.h"
#include "engine/train/optim.h"

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
    default: return arg_wrong(c, i, "a tensor or a number");
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

int args_dims(eng_call *c, int from, int *ndim, int64_t shape[TENSOR_MAXDIM])
{
    if (args_shape(c, from, ndim, shape) < 0)
        return -1;
    int used = from < c->argc && c->argv[from].type == VAL_TUPLE ? 1 : *ndim;
    if (from + used >= c->argc)
        return 0;
    int64_t k;
    if (arg_int(c, from + used, &k) < 0) /* names the argument and what it was */
        return -1;
    return eng_fail(c->err, ERR_TYPE, "%s: argument %d follows a tuple of sizes: give ints or one tuple, not both",
                    c->name, from + used + 1);
}

int arg_optimiser(eng_call *c, int i, struct opt_state **o)
{
    if (c->argv[i].type != VAL_INT)
        return eng_fail(c->err, ERR_TYPE, "%s: argument %d must be an optimiser (the int from adamw or sgd), got %s",
                        c->name, i + 1, value_type_name(c->argv[i].type));
    if (!(*o = opt_lookup(&c->session->optims, c->argv[i].as.i)))
        return eng_fail(c->err, ERR_VALUE, "%s: %lld is not an optimiser (make one with adamw or sgd)", c->name,
                        (long long)c->argv[i].as.i);
    return 0;
}
