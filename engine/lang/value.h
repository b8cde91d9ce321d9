/* value.h — the values of the language, and the interface of built-in functions.
 *
 * A value is a small tagged union passed by copy. Scalars (int, float, bool) live in
 * it; strings, tuples, tensors and functions are reference-counted objects it points
 * to. value_incref/value_decref manage those references; a value returned from a
 * function is a new reference the caller owns; argv arrays are borrowed.
 *
 * Built-ins have one C signature (eng_builtin_fn) and are listed in
 * engine/lang/builtins_core.def and engine/lang/builtins_tensor.def; the arg_* helpers convert
 * arguments and produce errors that name the built-in and the argument.
 */
#ifndef KILN_VALUE_H
#define KILN_VALUE_H

#include <stdint.h>
#include "engine/base/error.h"
#include "engine/tensor/tensor.h"

typedef enum val_type {
    VAL_VOID = 0, /* no value (a void function's result) */
    VAL_BOOL,     /* as.i is 0 or 1 */
    VAL_INT,      /* as.i, 64-bit */
    VAL_FLOAT,    /* as.f, 64-bit (float and double) */
    VAL_STRING,   /* as.s */
    VAL_TENSOR,   /* as.t */
    VAL_TUPLE,    /* as.tup: a shape, e.g. x.shape */
    VAL_DTYPE,    /* as.i: a tensor_dtype (f32, i64, ...) */
    VAL_DEVICE,   /* as.i: 0 cpu, 1 cuda, 2 sim (value_device_name) */
    VAL_FUNC,     /* as.fn: a user function */
    VAL_LIST,     /* as.list: the results of a multi-result built-in (split, chunk) */
    VAL_NTYPES
} val_type;

typedef struct eng_string {
    int refcount; /* values that hold it */
    int64_t len;  /* bytes, without the NUL */
    char data[];  /* NUL-terminated */
} eng_string;

typedef struct eng_tuple {
    int refcount; /* values that hold it */
    int n;        /* number of items */
    int64_t v[];  /* the items */
} eng_tuple;

/* A list of values, read-only once made: what a built-in with several results returns
 * (split(x, 2) gives [tensor, tensor, ...]); indexed like a tuple, len() counts it. */
typedef struct eng_list {
    int refcount; /* values that hold it */
    int n;        /* number of items */
    struct value *v; /* the items, each holding its own reference */
} eng_list;

struct eng_func;
struct eng_session;

typedef struct value {
    val_type type; /* which member of as is live */
    union {
        int64_t i;
        double f;
        eng_string *s;
        tensor *t;
        eng_tuple *tup;
        struct eng_func *fn;
        eng_list *list;
    } as;
} value;

static inline value value_int(int64_t i) { value v = {VAL_INT, {.i = i}}; return v; }
static inline value value_float(double f) { value v = {VAL_FLOAT, {.f = f}}; return v; }
static inline value value_bool(int b) { value v = {VAL_BOOL, {.i = b != 0}}; return v; }
static inline value value_void(void) { value v = {VAL_VOID, {.i = 0}}; return v; }
/* steals the reference to t */
static inline value value_tensor(tensor *t) { value v = {VAL_TENSOR, {.t = t}}; return v; }
/* a built-in's tensor result: *out = t and 0, or -1 when t is NULL (its error filled) */
static inline int value_put_tensor(value *out, tensor *t)
{
    if (!t)
        return -1;
    *out = value_tensor(t);
    return 0;
}
static inline value value_dtype(tensor_dtype d) { value v = {VAL_DTYPE, {.i = d}}; return v; }
/* devices as values: "cpu", "cuda", "sim" (the backend's name) <-> as.i; -1 if unknown */
const char *value_device_name(int64_t i);
int value_device_index(const char *name);
static inline value value_device(int i) { value v = {VAL_DEVICE, {.i = i}}; return v; }

void value_incref_obj(value v); /* the out-of-line part for reference-counted types */
void value_decref_obj(value v);
static inline int value_is_counted(value v)
{
    return v.type == VAL_STRING || v.type == VAL_TENSOR || v.type == VAL_TUPLE || v.type == VAL_FUNC ||
           v.type == VAL_LIST;
}
static inline void value_incref(value v)
{
    if (value_is_counted(v))
        value_incref_obj(v);
}
static inline void value_decref(value v)
{
    if (value_is_counted(v))
        value_decref_obj(v);
}
const char *value_type_name(val_type t); /* "int", "tensor", ... */
const char *value_type_a(val_type t);    /* with its article: "an int", "a tensor", ... */

eng_string *eng_string_new(const char *s, int64_t len); /* NULL on allocation failure */
/* A string of len bytes to fill (data[len] is the NUL), checked against the host memory
 * budget (engine/base/hostmem.h) and tracked until freed; NULL with a MemoryError naming
 * what ("joining strings") when it does not fit. */
eng_string *eng_string_alloc(int64_t len, const char *what, eng_error *err);
eng_tuple *eng_tuple_new(int n, const int64_t *items);
/* a list of n void items to fill (the list owns what is stored in v[i]); NULL on
 * allocation failure */
eng_list *eng_list_new(int n);

/* What a built-in sees. */
typedef struct eng_call {
    struct eng_session *session; /* for the RNG and the sink */
    const char *name;            /* the built-in's name, for messages */
    int argc;                    /* number of arguments */
    value *argv;                 /* borrowed */
    eng_error *err;              /* filled on failure */
} eng_call;

/* Returns 0 with *out a new reference, or -1 with c->err filled. */
typedef int (*eng_builtin_fn)(eng_call *c, value *out);

/* Argument helpers: 0, or -1 with an error like "randn: argument 2 must be an int, got tensor". */
int arg_int(eng_call *c, int i, int64_t *out);      /* int, bool, or a 1-element integer tensor */
int arg_double(eng_call *c, int i, double *out);    /* int, float, bool, or a 1-element tensor */
int arg_bool(eng_call *c, int i, int *out);
int arg_string(eng_call *c, int i, const char **out);
int arg_dtype(eng_call *c, int i, tensor_dtype *out);
/* a NEW reference; an int becomes a 0-d i64 tensor, a float a 0-d f32, a bool a bool */
int arg_tensor(eng_call *c, int i, tensor **out);
/* arguments from..argc-1 as a shape: ints (randn(2, 3)) or one tuple (zeros(x.shape)) */
int args_shape(eng_call *c, int from, int *ndim, int64_t shape[TENSOR_MAXDIM]);
/* args_shape with nothing after the sizes (no trailing dtype or option): repeat, tile,
 * expand, view, kaiming */
int args_dims(eng_call *c, int from, int *ndim, int64_t shape[TENSOR_MAXDIM]);
/* argument i as an optimiser handle (the int adamw, sgd or adamw_sf returned) */
struct opt_state;
int arg_optimiser(eng_call *c, int i, struct opt_state **o);
/* argument i as a tensor (new ref), or NULL when it is a scalar (then *scalar, *is_float) */
int arg_tensor_or_scalar(eng_call *c, int i, tensor **t, double *scalar, int *is_float);

tensor_rng *eng_session_rng(struct eng_session *s);

/* One entry of the built-in table. */
typedef struct eng_builtin {
    const char *name;      /* as written in the language */
    eng_builtin_fn fn;     /* implementation */
    int min_args, max_args;/* max_args -1: any number */
    char ret;              /* result type for the checker: 'T' tensor, 'I' int, 'F' float,
                              'B' bool, 'S' string, 'V' void, '?' depends on arguments */
    const char *signature; /* "randn(d0, d1, ...) -> tensor" */
    const char *doc;       /* one or two sentences */
} eng_builtin;

const eng_builtin *eng_builtin_find(const char *name, int len);
const eng_builtin *eng_builtin_at(int i); /* NULL past the end: for completion */

#endif
