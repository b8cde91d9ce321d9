/* builtins_shape.c — the language's shape and index built-ins (einsum, one_hot, split,
 * chunk, repeat, tile, expand, flip, roll, tril, triu, diag, masked_fill, index_add,
 * scatter_add) and the methods PyTorch users type (x.size(d), x.view(...), x.float(),
 * x.long(), x.cpu(), ...), listed in engine/lang/builtins_shape.def. Argument
 * conventions on top of engine/tensor/tensor.h's composed ops; every error names the
 * built-in. split and chunk return a list value (engine/lang/value.h): the language's
 * one form for a built-in with several results.
 */
#include "engine/lang/builtins_shape.h"

#include <string.h>

#include "engine/tensor/backend.h"

/* argument i as an int when present, else dflt */
static int opt_int(eng_call *c, int i, int64_t dflt, int64_t *v)
{
    if (i >= c->argc) {
        *v = dflt;
        return 0;
    }
    return arg_int(c, i, v);
}

/* a dimension argument: an int within the range any tensor could have (the op checks
 * it against its tensor), so the number in the message is the one given */
static int dim_arg(eng_call *c, int i, int64_t *d)
{
    if (arg_int(c, i, d) < 0)
        return -1;
    if (*d < -TENSOR_MAXDIM || *d >= TENSOR_MAXDIM)
        return eng_fail(c->err, ERR_INDEX, "%s: dimension %lld is out of range (a tensor has at most %d)", c->name,
                        (long long)*d, TENSOR_MAXDIM);
    return 0;
}

int bi_einsum(eng_call *c, value *out)
{
    const char *spec;
    tensor *ops[3] = {NULL, NULL, NULL};
    int n = c->argc - 1, rc = -1;
    if (arg_string(c, 0, &spec) < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (arg_tensor(c, i + 1, &ops[i]) < 0)
            goto done;
    rc = value_put_tensor(out, tensor_einsum(spec, ops, n, c->err));
done:
    for (int i = 0; i < n; i++)
        tensor_decref(ops[i]);
    return rc;
}

int bi_one_hot(eng_call *c, value *out)
{
    tensor *idx;
    int64_t n;
    if (opt_int(c, 1, -1, &n) < 0 || arg_tensor(c, 0, &idx) < 0)
        return -1;
    tensor *r = tensor_one_hot(idx, n, c->err);
    tensor_decref(idx);
    return value_put_tensor(out, r);
}

/* split (by piece size) and chunk (by piece count): a list of slices along dim */
static int pieces(eng_call *c, value *out, int by_count)
{
    tensor *x;
    int64_t k, dim;
    if (arg_int(c, 1, &k) < 0 || opt_int(c, 2, 0, &dim) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    int rc = -1;
    if (x->ndim == 0) {
        eng_fail(c->err, ERR_SHAPE, "%s: a 0-d tensor has no dimension to cut", c->name);
        goto done;
    }
    int d = (int)(dim < 0 ? dim + x->ndim : dim);
    if (dim < -x->ndim || dim >= x->ndim) {
        char b[ENG_SHAPE_BUF];
        eng_fail(c->err, ERR_INDEX, "%s: dimension %lld is out of range for a %d-d tensor of shape %s", c->name,
                 (long long)dim, x->ndim, eng_shape_str(x->ndim, x->shape, b, sizeof b));
        goto done;
    }
    if (k <= 0) {
        eng_fail(c->err, ERR_VALUE, "%s: the %s must be positive, got %lld", c->name,
                 by_count ? "number of chunks" : "piece size", (long long)k);
        goto done;
    }
    /* ceilings written so that no sum overflows (k may be any positive int) */
    int64_t len = x->shape[d], size = by_count ? (len ? (len - 1) / k + 1 : 1) : k;
    int64_t np = len ? (len - 1) / size + 1 : by_count ? 0 : 1;
    if (np > (1 << 20)) {
        eng_fail(c->err, ERR_VALUE, "%s: %lld pieces is too many (at most %d)", c->name, (long long)np, 1 << 20);
        goto done;
    }
    eng_list *l = eng_list_new((int)np);
    if (!l) {
        eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
        goto done;
    }
    for (int64_t i = 0; i < np; i++) {
        tensor *p = tensor_slice(x, d, i * size, i * size + size, 1, c->err);
        if (!p) {
            value_decref((value){VAL_LIST, {.list = l}});
            goto done;
        }
        l->v[i] = value_tensor(p);
    }
    *out = (value){VAL_LIST, {.list = l}};
    rc = 0;
done:
    tensor_decref(x);
    return rc;
}

int bi_split(eng_call *c, value *out) { return pieces(c, out, 0); }
int bi_chunk(eng_call *c, value *out) { return pieces(c, out, 1); }

/* repeat, tile, expand: x then ints (or one tuple) */
static int with_counts(eng_call *c, value *out, int which)
{
    tensor *x;
    int nd;
    int64_t v[TENSOR_MAXDIM];
    if (args_dims(c, 1, &nd, v) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = NULL;
    if (which == 0)
        r = tensor_repeat(x, nd, v, c->err);
    else if (which == 1)
        r = tensor_tile(x, nd, v, c->err);
    else {
        char b1[ENG_SHAPE_BUF], b2[ENG_SHAPE_BUF];
        int ok = nd >= x->ndim;
        for (int k = 0; ok && k < nd; k++) { /* -1 keeps x's size, as PyTorch */
            int xk = k - (nd - x->ndim);
            if (v[k] == -1 && xk >= 0)
                v[k] = x->shape[xk];
            ok = v[k] >= 0 && (xk < 0 || x->shape[xk] == v[k] || x->shape[xk] == 1);
        }
        int64_t numel = 1;
        for (int k = 0; ok && k < nd; k++)
            if (__builtin_mul_overflow(numel, v[k], &numel))
                return tensor_decref(x), eng_fail(c->err, ERR_MEMORY, "expand: shape %s has more elements than "
                                                  "an int64 counts", eng_shape_str(nd, v, b2, sizeof b2));
        if (!ok)
            eng_fail(c->err, ERR_SHAPE, "expand: cannot expand shape %s to %s (only size-1 dimensions grow; -1 "
                     "keeps one)", eng_shape_str(x->ndim, x->shape, b1, sizeof b1), eng_shape_str(nd, v, b2, sizeof b2));
        else
            r = tensor_expand(x, nd, v, c->err);
    }
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_repeat(eng_call *c, value *out) { return with_counts(c, out, 0); }
int bi_tile(eng_call *c, value *out) { return with_counts(c, out, 1); }
int bi_expand(eng_call *c, value *out) { return with_counts(c, out, 2); }

int bi_repeat_interleave(eng_call *c, value *out)
{
    tensor *x;
    int64_t r, dim;
    dim = TENSOR_ALLDIMS;
    if (arg_int(c, 1, &r) < 0 || (c->argc > 2 && dim_arg(c, 2, &dim) < 0) || arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *t = tensor_repeat_interleave(x, r, (int)dim, c->err);
    tensor_decref(x);
    return value_put_tensor(out, t);
}

int bi_flip(eng_call *c, value *out)
{
    tensor *x;
    int dims[TENSOR_MAXDIM], n = 0;
    int64_t d;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    if (c->argc == 1)
        for (; n < x->ndim; n++)
            dims[n] = n;
    for (int i = 1; i < c->argc; i++) {
        if (n >= TENSOR_MAXDIM || dim_arg(c, i, &d) < 0) {
            if (n >= TENSOR_MAXDIM)
                eng_fail(c->err, ERR_VALUE, "flip: more than %d dimensions given", TENSOR_MAXDIM);
            tensor_decref(x);
            return -1;
        }
        dims[n++] = (int)d;
    }
    tensor *r = tensor_flip(x, dims, n, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_roll(eng_call *c, value *out)
{
    tensor *x;
    int64_t shift, dim;
    dim = TENSOR_ALLDIMS;
    if (arg_int(c, 1, &shift) < 0 || (c->argc > 2 && dim_arg(c, 2, &dim) < 0) || arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_roll(x, shift, (int)dim, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

static int tri(eng_call *c, value *out, int which)
{
    tensor *x;
    int64_t k;
    if (opt_int(c, 1, 0, &k) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = which == 2 ? tensor_diag(x, k, c->err) : tensor_tri(x, k, which, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_tril(eng_call *c, value *out) { return tri(c, out, 0); }
int bi_triu(eng_call *c, value *out) { return tri(c, out, 1); }
int bi_diag(eng_call *c, value *out) { return tri(c, out, 2); }

/* tolist: one element as a number of its kind (i64 read as stored: a double holds 2^53) */
static value list_elem(const tensor *h, int64_t i)
{
    if (h->dtype == DT_I64)
        return value_int(((const int64_t *)tensor_data_ptr(h))[i]);
    double d = tensor_get_flat(h, i);
    if (h->dtype == DT_BOOL)
        return value_bool(d != 0);
    if (h->dtype == DT_I32 || h->dtype == DT_U8)
        return value_int((int64_t)d);
    return value_float(d);
}

/* dimensions d.. of the contiguous host tensor h from element *flat on, as nested lists */
static int list_dims(const tensor *h, int d, int64_t *flat, value *out, eng_error *err)
{
    if (d == h->ndim) {
        *out = list_elem(h, (*flat)++);
        return 0;
    }
    eng_list *l = eng_list_new((int)h->shape[d]);
    if (!l)
        return eng_fail(err, ERR_MEMORY, "tolist: out of memory");
    *out = (value){VAL_LIST, {.list = l}};
    for (int64_t i = 0; i < h->shape[d]; i++)
        if (list_dims(h, d + 1, flat, &l->v[i], err) < 0)
            return -1; /* the caller frees *out */
    return 0;
}

int bi_tolist(eng_call *c, value *out)
{
    tensor *x = NULL, *h = NULL, *hc = NULL;
    *out = value_void();
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    int64_t n = tensor_numel(x), flat = 0;
    int rc = -1;
    char b[ENG_SHAPE_BUF];
    if (n > (1 << 20))
        eng_fail(c->err, ERR_VALUE, "tolist: x %s has %lld elements, at most %d (a list is for small tensors: "
                 "print, index or save_npy a large one)", eng_shape_str(x->ndim, x->shape, b, sizeof b),
                 (long long)n, 1 << 20);
    else if ((h = tensor_to(x, &cpu_backend, c->err)) && (hc = tensor_contiguous(h, c->err)))
        rc = list_dims(hc, 0, &flat, out, c->err);
    if (rc < 0 && out->type == VAL_LIST) {
        value_decref(*out);
        *out = value_void();
    }
    tensor_decref(hc);
    tensor_decref(h);
    tensor_decref(x);
    return rc;
}

int bi_masked_fill(eng_call *c, value *out)
{
    tensor *x = NULL, *m = NULL, *v = NULL;
    int rc = -1;
    if (arg_tensor(c, 0, &x) == 0 && arg_tensor(c, 1, &m) == 0 && arg_tensor(c, 2, &v) == 0)
        rc = value_put_tensor(out, tensor_masked_fill(x, m, v, c->err));
    tensor_decref(x);
    tensor_decref(m);
    tensor_decref(v);
    return rc;
}

static int add_at(eng_call *c, value *out, int scatter)
{
    tensor *x = NULL, *idx = NULL, *src = NULL;
    int64_t dim;
    int rc = -1;
    if (dim_arg(c, 1, &dim) == 0 && arg_tensor(c, 0, &x) == 0 && arg_tensor(c, 2, &idx) == 0 &&
        arg_tensor(c, 3, &src) == 0) {
        rc = value_put_tensor(out, scatter ? tensor_scatter_add(x, (int)dim, idx, src, c->err)
                                     : tensor_index_add(x, (int)dim, idx, src, c->err));
    }
    tensor_decref(x);
    tensor_decref(idx);
    tensor_decref(src);
    return rc;
}

int bi_index_add(eng_call *c, value *out) { return add_at(c, out, 0); }
int bi_scatter_add(eng_call *c, value *out) { return add_at(c, out, 1); }

/* ---- members as methods ---- */

int bi_size(eng_call *c, value *out)
{
    char b[ENG_SHAPE_BUF];
    tensor *x;
    int64_t d;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    int rc = 0;
    if (c->argc == 1) {
        eng_tuple *tp = eng_tuple_new(x->ndim, x->shape);
        if (!tp)
            rc = eng_fail(c->err, ERR_MEMORY, "size: out of memory");
        else
            *out = (value){VAL_TUPLE, {.tup = tp}};
    } else if ((rc = arg_int(c, 1, &d)) == 0) {
        if (d < -x->ndim || d >= x->ndim)
            rc = eng_fail(c->err, ERR_INDEX, "size: dimension %lld is out of range for a %d-d tensor of shape %s",
                          (long long)d, x->ndim, eng_shape_str(x->ndim, x->shape, b, sizeof b));
        else
            *out = value_int(x->shape[d < 0 ? d + x->ndim : d]);
    }
    tensor_decref(x);
    return rc;
}

int bi_view(eng_call *c, value *out)
{
    tensor *x;
    int nd;
    int64_t shape[TENSOR_MAXDIM];
    if (args_dims(c, 1, &nd, shape) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_reshape(x, nd, shape, c->err);
    if (!r && !strncmp(c->err->msg, "reshape:", 8)) /* the same checks: name the view */
        memcpy(c->err->msg, "view:   ", 8), memmove(c->err->msg + 5, c->err->msg + 8, strlen(c->err->msg + 8) + 1);
    if (r && r->storage != x->storage) { /* reshape had to copy: a view cannot */
        char b1[ENG_SHAPE_BUF], b2[ENG_SHAPE_BUF], b3[ENG_SHAPE_BUF];
        eng_fail(c->err, ERR_SHAPE, "view: a tensor of shape %s with strides %s is not laid out so that shape %s "
                 "can share its memory (it was transposed, permuted or sliced with a step); reshape(x, ...) "
                 "copies, or view(contiguous(x), ...)", eng_shape_str(x->ndim, x->shape, b1, sizeof b1),
                 eng_shape_str(x->ndim, x->stride, b2, sizeof b2), eng_shape_str(r->ndim, r->shape, b3, sizeof b3));
        tensor_decref(r);
        r = NULL;
    }
    tensor_decref(x);
    return value_put_tensor(out, r);
}

static int as_dtype(eng_call *c, value *out, tensor_dtype dt)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_cast(x, dt, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_float(eng_call *c, value *out) { return as_dtype(c, out, DT_F32); }
int bi_double(eng_call *c, value *out) { return as_dtype(c, out, DT_F64); }
int bi_long(eng_call *c, value *out) { return as_dtype(c, out, DT_I64); }
int bi_int(eng_call *c, value *out) { return as_dtype(c, out, DT_I32); }
int bi_bool(eng_call *c, value *out) { return as_dtype(c, out, DT_BOOL); }

static int on_device(eng_call *c, value *out, const char *dev)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    eng_error e = {0};
    const eng_backend *be = eng_backend_named(dev, &e);
    tensor *r = be ? tensor_to(x, be, c->err) : NULL;
    tensor_decref(x);
    if (!be)
        return eng_fail(c->err, e.kind, "x.%s(): %s (x.to(sim) runs the CUDA kernels on the simulator)", dev, e.msg);
    return value_put_tensor(out, r);
}

int bi_cpu(eng_call *c, value *out) { return on_device(c, out, "cpu"); }
int bi_cuda(eng_call *c, value *out) { return on_device(c, out, "cuda"); }
