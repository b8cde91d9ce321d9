/* value.c — reference counting of values, strings and tuples, device names. The
 * argument helpers built-ins read their arguments with are in args.c. */
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
    case VAL_LIST: v.as.list->refcount++; break;
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
    case VAL_LIST:
        if (--v.as.list->refcount == 0) {
            for (int i = 0; i < v.as.list->n; i++)
                value_decref(v.as.list->v[i]);
            free(v.as.list->v);
            free(v.as.list);
        }
        break;
    default: break;
    }
}

eng_list *eng_list_new(int n)
{
    eng_list *l = malloc(sizeof *l);
    value *items = calloc((size_t)(n > 0 ? n : 1), sizeof *items);
    if (!l || !items) {
        free(l);
        free(items);
        return NULL;
    }
    l->refcount = 1;
    l->n = n;
    l->v = items; /* calloc: VAL_VOID */
    return l;
}

const char *value_type_name(val_type t)
{
    static const char *const names[VAL_NTYPES] = {"void", "bool", "int", "float", "string",
                                            "tensor", "tuple", "dtype", "device", "function", "list"};
    return t < VAL_NTYPES ? names[t] : "?";
}

const char *value_type_a(val_type t)
{
    static const char *const names[VAL_NTYPES] = {"a void", "a bool", "an int", "a float", "a string",
                                            "a tensor", "a tuple", "a dtype", "a device", "a function"};
    return t < VAL_NTYPES ? names[t] : "a ?";
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
