/* builtins_vocab.c — the language's side of engine/lang/builtins_vocab.def: argument
 * conventions over engine/tensor/tensor_order.h. A dim argument is an int counted from
 * the end when negative; flags (keepdim, descending, largest, replacement) are bools;
 * random draws use the session's generator. Errors name the built-in (tensor_order.c
 * names the op and the shapes).
 */
#include "engine/lang/builtins_vocab.h"
#include "engine/tensor/backend.h" /* ENG_SCAN_SUM, ENG_SCAN_PROD */
#include "engine/tensor/tensor_order.h"

/* optional int argument i (else *v keeps its default), as a dimension */
static int opt_dim(eng_call *c, int i, int *d)
{
    int64_t v;
    if (c->argc <= i)
        return 0;
    if (arg_int(c, i, &v) < 0)
        return -1;
    if (v < -TENSOR_MAXDIM - 1 || v > TENSOR_MAXDIM)
        return eng_fail(c->err, ERR_INDEX, "%s: dimension %lld is out of range", c->name, (long long)v);
    *d = (int)v;
    return 0;
}

static int opt_bool(eng_call *c, int i, int *b)
{
    return c->argc > i ? arg_bool(c, i, b) : 0;
}

int bi_nan_to_num(eng_call *c, value *out)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    double nan = 0, pinf = tensor_dtype_max(x->dtype), ninf = -pinf;
    if ((c->argc > 1 && arg_double(c, 1, &nan) < 0) || (c->argc > 2 && arg_double(c, 2, &pinf) < 0) ||
        (c->argc > 3 && arg_double(c, 3, &ninf) < 0)) {
        tensor_decref(x);
        return -1;
    }
    tensor *r = tensor_nan_to_num(x, nan, pinf, ninf, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

static int any_all(eng_call *c, value *out, int all)
{
    tensor *x;
    int dim = TENSOR_ALLDIMS, keep = 0;
    if (opt_dim(c, 1, &dim) < 0 || opt_bool(c, 2, &keep) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = all ? tensor_all(x, dim, keep, c->err) : tensor_any(x, dim, keep, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_any(eng_call *c, value *out) { return any_all(c, out, 0); }
int bi_all(eng_call *c, value *out) { return any_all(c, out, 1); }

int bi_allclose(eng_call *c, value *out)
{
    double rtol = 1e-5, atol = 1e-8;
    tensor *a = NULL, *b = NULL;
    int res = 0, rc = -1;
    if ((c->argc > 2 && arg_double(c, 2, &rtol) < 0) || (c->argc > 3 && arg_double(c, 3, &atol) < 0))
        return -1;
    if (arg_tensor(c, 0, &a) < 0 || arg_tensor(c, 1, &b) < 0)
        goto done;
    if (tensor_allclose(a, b, rtol, atol, &res, c->err) < 0)
        goto done;
    *out = value_bool(res);
    rc = 0;
done:
    tensor_decref(a);
    tensor_decref(b);
    return rc;
}

static int scan(eng_call *c, value *out, int kind)
{
    tensor *x, *r = NULL;
    int dim = 0;
    if (opt_dim(c, 1, &dim) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    if (c->argc > 1) {
        r = tensor_scan(kind, x, dim, c->err);
    } else { /* NumPy: no axis, the flattened array */
        tensor *f = tensor_flatten(x, c->err);
        r = f ? tensor_scan(kind, f, 0, c->err) : NULL;
        tensor_decref(f);
    }
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_cumsum(eng_call *c, value *out) { return scan(c, out, ENG_SCAN_SUM); }
int bi_cumprod(eng_call *c, value *out) { return scan(c, out, ENG_SCAN_PROD); }

static int sort_call(eng_call *c, value *out, int indices)
{
    tensor *x;
    int dim = -1, desc = 0;
    if (opt_dim(c, 1, &dim) < 0 || opt_bool(c, 2, &desc) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = indices ? tensor_argsort(x, dim, desc, c->err) : tensor_sort(x, dim, desc, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_sort(eng_call *c, value *out) { return sort_call(c, out, 0); }
int bi_argsort(eng_call *c, value *out) { return sort_call(c, out, 1); }

static int topk_call(eng_call *c, value *out, int indices)
{
    tensor *x;
    int64_t k;
    int dim = -1, largest = 1;
    if (arg_int(c, 1, &k) < 0 || opt_dim(c, 2, &dim) < 0 || opt_bool(c, 3, &largest) < 0 ||
        arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_topk(x, k, dim, largest, indices, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_topk(eng_call *c, value *out) { return topk_call(c, out, 0); }
int bi_topk_indices(eng_call *c, value *out) { return topk_call(c, out, 1); }

int bi_unique(eng_call *c, value *out)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_unique(x, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_bincount(eng_call *c, value *out)
{
    tensor *x = NULL, *w = NULL, *r = NULL;
    int64_t minlength = 0;
    int i = 1;
    if (c->argc > 1 && c->argv[1].type == VAL_TENSOR) { /* bincount(x, weights[, minlength]) */
        if (arg_tensor(c, 1, &w) < 0)
            return -1;
        i = 2;
    }
    if (c->argc > i + 1) {
        tensor_decref(w);
        return eng_fail(c->err, ERR_TYPE, "%s: argument %d must be a tensor of weights, got %s", c->name, 2,
                        value_type_name(c->argv[1].type));
    }
    if ((c->argc > i && arg_int(c, i, &minlength) < 0) || arg_tensor(c, 0, &x) < 0) {
        tensor_decref(w);
        return -1;
    }
    r = tensor_bincount(x, w, minlength, c->err);
    tensor_decref(x);
    tensor_decref(w);
    return value_put_tensor(out, r);
}

int bi_randperm(eng_call *c, value *out)
{
    int64_t n;
    if (arg_int(c, 0, &n) < 0)
        return -1;
    return value_put_tensor(out, tensor_randperm(eng_session_rng(c->session), n, c->err));
}

int bi_multinomial(eng_call *c, value *out)
{
    tensor *p;
    int64_t n;
    int repl = 0;
    if (arg_int(c, 1, &n) < 0 || opt_bool(c, 2, &repl) < 0 || arg_tensor(c, 0, &p) < 0)
        return -1;
    tensor *r = tensor_multinomial(eng_session_rng(c->session), p, n, repl, c->err);
    tensor_decref(p);
    return value_put_tensor(out, r);
}

int bi_shuffle(eng_call *c, value *out)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_shuffle(eng_session_rng(c->session), x, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}
