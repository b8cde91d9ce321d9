/* builtins_tensor.c — the language's tensor built-ins: argument conventions on top of
 * the tensor API (engine/tensor/tensor.h).
 *
 * Conventions: shapes are ints or one tuple (zeros(2, 3), zeros(x.shape)); creation
 * functions take an optional trailing dtype; reductions take (x[, dim[, keepdim]]);
 * cat and stack take the tensors then an optional trailing int dim. Elementwise math
 * functions given plain numbers compute in C and return numbers (sqrt(2.0 / 784) is a
 * float), so they serve scalar code too. Every error names the built-in.
 */
#include "engine/lang/builtins_tensor.h"

#include <math.h>

#include "engine/tensor/op_eval.h"
#include <stdlib.h>
#include <string.h>

#include "engine/tensor/tensor_impl.h"

static int is_scalar(value v)
{
    return v.type == VAL_INT || v.type == VAL_FLOAT || v.type == VAL_BOOL;
}

/* a trailing dtype argument: removes it from *argc and sets *dt (else leaves *dt) */
static void trailing_dtype(eng_call *c, int *argc, tensor_dtype *dt, int *given)
{
    *argc = c->argc;
    if (given)
        *given = 0;
    if (c->argc > 0 && c->argv[c->argc - 1].type == VAL_DTYPE) {
        *dt = (tensor_dtype)c->argv[c->argc - 1].as.i;
        (*argc)--;
        if (given)
            *given = 1;
    }
}

/* arguments [from, to) as a shape: ints, or one tuple */
static int shape_args(eng_call *c, int from, int to, int *nd, int64_t *shape)
{
    *nd = 0;
    if (to - from == 1 && c->argv[from].type == VAL_TUPLE) {
        eng_tuple *tp = c->argv[from].as.tup;
        if (tp->n > TENSOR_MAXDIM)
            return eng_fail(c->err, ERR_VALUE, "%s: %d dimensions; at most %d are supported", c->name, tp->n,
                            TENSOR_MAXDIM);
        for (int k = 0; k < tp->n; k++)
            shape[k] = tp->v[k];
        *nd = tp->n;
        return 0;
    }
    if (to - from > TENSOR_MAXDIM)
        return eng_fail(c->err, ERR_VALUE, "%s: %d dimensions; at most %d are supported", c->name, to - from,
                        TENSOR_MAXDIM);
    for (int i = from; i < to; i++)
        if (arg_int(c, i, &shape[(*nd)++]) < 0)
            return -1;
    return 0;
}

/* ---- creation ---- */

static int create(eng_call *c, value *out, double v, int fill)
{
    tensor_dtype dt = DT_F32;
    int argc, nd;
    int64_t shape[TENSOR_MAXDIM];
    trailing_dtype(c, &argc, &dt, NULL);
    if (shape_args(c, 0, argc, &nd, shape) < 0)
        return -1;
    tensor *t = fill ? tensor_full(dt, nd, shape, v, c->err) : tensor_empty(dt, nd, shape, c->err);
    return value_put_tensor(out, t);
}

int bi_zeros(eng_call *c, value *out) { return create(c, out, 0, 1); }
int bi_ones(eng_call *c, value *out) { return create(c, out, 1, 1); }
int bi_empty(eng_call *c, value *out) { return create(c, out, 0, 0); }

int bi_full(eng_call *c, value *out)
{
    tensor_dtype dt = DT_F32;
    int argc, nd;
    int64_t shape[TENSOR_MAXDIM];
    double v;
    trailing_dtype(c, &argc, &dt, NULL);
    if (argc < 1)
        return eng_fail(c->err, ERR_TYPE, "full: needs a value to fill with");
    if (arg_double(c, argc - 1, &v) < 0 || shape_args(c, 0, argc - 1, &nd, shape) < 0)
        return -1;
    return value_put_tensor(out, tensor_full(dt, nd, shape, v, c->err));
}

int bi_arange(eng_call *c, value *out)
{
    tensor_dtype dt = DT_I64;
    int argc, given;
    trailing_dtype(c, &argc, &dt, &given);
    if (argc < 1 || argc > 3)
        return eng_fail(c->err, ERR_TYPE, "arange: takes ([start,] stop[, step][, dtype])");
    double a[3];
    int all_int = 1;
    for (int i = 0; i < argc; i++) {
        if (arg_double(c, i, &a[i]) < 0)
            return -1;
        if (c->argv[i].type == VAL_FLOAT || (c->argv[i].type == VAL_TENSOR && tensor_dtype_is_float(c->argv[i].as.t->dtype)))
            all_int = 0;
    }
    double start = argc >= 2 ? a[0] : 0, stop = argc >= 2 ? a[1] : a[0], step = argc == 3 ? a[2] : 1;
    if (!given)
        dt = all_int ? DT_I64 : DT_F32;
    return value_put_tensor(out, tensor_arange(start, stop, step, dt, c->err));
}

int bi_linspace(eng_call *c, value *out)
{
    tensor_dtype dt = DT_F32;
    int argc;
    double a, b;
    int64_t n;
    trailing_dtype(c, &argc, &dt, NULL);
    if (argc != 3)
        return eng_fail(c->err, ERR_TYPE, "linspace: takes (start, stop, n[, dtype])");
    if (arg_double(c, 0, &a) < 0 || arg_double(c, 1, &b) < 0 || arg_int(c, 2, &n) < 0)
        return -1;
    tensor *t = tensor_linspace(a, b, n, c->err);
    if (t && dt != DT_F32) {
        tensor *r = tensor_cast(t, dt, c->err);
        tensor_decref(t);
        t = r;
    }
    return value_put_tensor(out, t);
}

int bi_eye(eng_call *c, value *out)
{
    tensor_dtype dt = DT_F32;
    int argc;
    int64_t n, m = -1;
    trailing_dtype(c, &argc, &dt, NULL);
    if (argc < 1 || argc > 2)
        return eng_fail(c->err, ERR_TYPE, "eye: takes (n[, m][, dtype])");
    if (arg_int(c, 0, &n) < 0 || (argc == 2 && arg_int(c, 1, &m) < 0))
        return -1;
    if (n < 0 || (argc == 2 && m < 0))
        return eng_fail(c->err, ERR_VALUE, "eye: sizes must not be negative");
    return value_put_tensor(out, tensor_eye(n, m, dt, c->err));
}

static tensor *cast_if(tensor *t, tensor_dtype dt, eng_error *err)
{
    if (!t || t->dtype == dt)
        return t;
    tensor *r = tensor_cast(t, dt, err);
    tensor_decref(t);
    return r;
}

static int random_builtin(eng_call *c, value *out, int kind)
{
    tensor_dtype dt = kind == 2 ? DT_I64 : DT_F32;
    int argc, nd, from = kind == 2 ? 2 : 0;
    int64_t shape[TENSOR_MAXDIM], lo = 0, hi = 0;
    trailing_dtype(c, &argc, &dt, NULL);
    if (kind == 2 && (argc < 2 || arg_int(c, 0, &lo) < 0 || arg_int(c, 1, &hi) < 0))
        return argc < 2 ? eng_fail(c->err, ERR_TYPE, "randint: takes (lo, hi, d0, d1, ...[, dtype])") : -1;
    if (shape_args(c, from, argc, &nd, shape) < 0)
        return -1;
    tensor_rng *rng = eng_session_rng(c->session);
    tensor *t = kind == 0 ? tensor_rand(rng, nd, shape, c->err)
              : kind == 1 ? tensor_randn(rng, nd, shape, c->err)
                          : tensor_randint(rng, lo, hi, nd, shape, c->err);
    return value_put_tensor(out, cast_if(t, dt, c->err));
}

int bi_rand(eng_call *c, value *out) { return random_builtin(c, out, 0); }
int bi_randn(eng_call *c, value *out) { return random_builtin(c, out, 1); }
int bi_randint(eng_call *c, value *out) { return random_builtin(c, out, 2); }

static int like(eng_call *c, value *out, double v, int fill)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor_dtype dt = x->dtype;
    if (c->argc == 2 && arg_dtype(c, 1, &dt) < 0) {
        tensor_decref(x);
        return -1;
    }
    tensor *t = fill ? tensor_full(dt, x->ndim, x->shape, v, c->err) : tensor_empty(dt, x->ndim, x->shape, c->err);
    tensor_decref(x);
    return value_put_tensor(out, t);
}

int bi_zeros_like(eng_call *c, value *out) { return like(c, out, 0, 1); }
int bi_ones_like(eng_call *c, value *out) { return like(c, out, 1, 1); }
int bi_empty_like(eng_call *c, value *out) { return like(c, out, 0, 0); }

/* ---- elementwise ---- */

/* the rows that keep an integer dtype: their scalar form keeps an int an int */
static int keeps_int(op_id op)
{
    switch (op) {
#define KEEPS_INT_FLOAT 0
#define KEEPS_INT_KEEP 1
#define KEEPS_INT_ARITH 1
#define KEEPS_INT_BOOL 2 /* a bool */
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) \
    case OP_##ID: return KEEPS_INT_##DT;
#include "engine/tensor/ops.def"
    default: return 0;
    }
}

static int unary(eng_call *c, value *out, op_id op, double p0, double p1)
{
    if (c->argc < 1)
        return eng_fail(c->err, ERR_TYPE, "%s: needs an argument", c->name);
    value v = c->argv[0];
    if (is_scalar(v)) {
        double x = v.type == VAL_FLOAT ? v.as.f : (double)v.as.i;
        double r = om_unary_double(op, x, p0, p1);
        if (keeps_int(op) == 2)
            *out = value_bool(r != 0);
        else if (v.type != VAL_FLOAT && keeps_int(op) && (op != OP_CLAMP || (r == floor(r))))
            *out = value_int((int64_t)r);
        else
            *out = value_float(r);
        return 0;
    }
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_unary(op, x, p0, p1, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

#define OP_DEF_UN_BUILTIN(ID) \
    int bi_un_##ID(eng_call *c, value *out) { return unary(c, out, OP_##ID, 0, 0); }
#define OP_DEF_UN_OPERATOR(ID)
#define OP_DEF_UN_OWN(ID)
#define OP_DEF_UN_INTERNAL(ID)
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) OP_DEF_UN_##API(ID)
#include "engine/tensor/ops.def"

int bi_clamp(eng_call *c, value *out)
{
    double lo, hi;
    if (arg_double(c, 1, &lo) < 0 || arg_double(c, 2, &hi) < 0)
        return -1;
    if (lo > hi)
        return eng_fail(c->err, ERR_VALUE, "%s: lo %g is greater than hi %g", c->name, lo, hi); /* or clip */
    return unary(c, out, OP_CLAMP, lo, hi);
}

static int binary(eng_call *c, value *out, op_id op)
{
    tensor *a = NULL, *b = NULL, *r = NULL;
    double sa = 0, sb = 0;
    int fa = 0, fb = 0;
    if (arg_tensor_or_scalar(c, 0, &a, &sa, &fa) < 0)
        return -1;
    if (arg_tensor_or_scalar(c, 1, &b, &sb, &fb) < 0) {
        tensor_decref(a);
        return -1;
    }
    if (!a && !b) {
        double v = om_binary_double(op, sa, sb);
        if (!fa && !fb && op != OP_POW)
            *out = value_int((int64_t)v);
        else
            *out = value_float(v);
        return 0;
    }
    if (a && b)
        r = tensor_binary(op, a, b, c->err);
    else if (a)
        r = tensor_binary_scalar(op, a, sb, fb, 0, c->err);
    else
        r = tensor_binary_scalar(op, b, sa, fa, 1, c->err);
    tensor_decref(a);
    tensor_decref(b);
    return value_put_tensor(out, r);
}

#define OP_DEF_BIN_BUILTIN(ID) \
    int bi_bin_##ID(eng_call *c, value *out) { return binary(c, out, OP_##ID); }
#define OP_DEF_BIN_OPERATOR(ID)
#define OP_DEF_BIN_OWN(ID)
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) OP_DEF_BIN_##API(ID)
#include "engine/tensor/ops.def"

/* a composite of ops.def: x a tensor, or a number (computed as a 0-d f64 tensor, the
 * result a float), then the row's parameter (its default when not given) */
typedef tensor *(*composite_fn)(const tensor *x, double p0, eng_error *err);
static int composite(eng_call *c, value *out, composite_fn f, double p0)
{
    if (c->argc < 1)
        return eng_fail(c->err, ERR_TYPE, "%s: needs an argument", c->name);
    if (c->argc > 1 && arg_double(c, 1, &p0) < 0)
        return -1;
    value v = c->argv[0];
    if (is_scalar(v)) {
        double xv = v.type == VAL_FLOAT ? v.as.f : (double)v.as.i, rv = 0;
        tensor *x = tensor_scalar(xv, DT_F64, c->err), *r = x ? f(x, p0, c->err) : NULL;
        int rc = r ? tensor_item(r, &rv, c->err) : -1;
        tensor_decref(x);
        tensor_decref(r);
        if (rc < 0)
            return -1;
        *out = value_float(rv);
        return 0;
    }
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = f(x, p0, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

#define OP_COMPOSITE(name, sig, NP, P0, DOM, EXPR, doc) \
    int bi_comp_##name(eng_call *c, value *out) { return composite(c, out, tensor_##name, P0); }
#include "engine/tensor/ops.def"

int bi_where(eng_call *c, value *out)
{
    tensor *cond = NULL, *t[2] = {NULL, NULL}, *r = NULL;
    double s[2] = {0, 0};
    int f[2] = {0, 0};
    if (arg_tensor(c, 0, &cond) < 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (arg_tensor_or_scalar(c, i + 1, &t[i], &s[i], &f[i]) < 0)
            goto done;
    /* numbers are weak: they take the other operand's dtype (f32 for a float with an
     * integer tensor); two numbers give f32 or i64 */
    for (int i = 0; i < 2; i++) {
        if (t[i])
            continue;
        tensor *other = t[1 - i];
        tensor_dtype dt;
        if (other)
            dt = f[i] && !tensor_dtype_is_float(other->dtype) ? DT_F32 : other->dtype;
        else
            dt = f[0] || f[1] ? DT_F32 : DT_I64;
        if (!(t[i] = tensor_scalar(s[i], dt, c->err)))
            goto done;
    }
    r = tensor_where(cond, t[0], t[1], c->err);
done:
    tensor_decref(cond);
    tensor_decref(t[0]);
    tensor_decref(t[1]);
    return value_put_tensor(out, r);
}

/* ---- reductions ---- */

static int reduce(eng_call *c, value *out, op_id op)
{
    tensor *x;
    int64_t dim = TENSOR_ALLDIMS;
    int keep = 0;
    if (c->argc >= 2 && arg_int(c, 1, &dim) < 0)
        return -1;
    if (c->argc >= 3 && arg_bool(c, 2, &keep) < 0)
        return -1;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    if (c->argc >= 2 && (dim < -TENSOR_MAXDIM || dim >= TENSOR_MAXDIM)) {
        tensor_decref(x);
        return eng_fail(c->err, ERR_INDEX, "%s: dimension %lld is out of range for a %d-d tensor", c->name,
                        (long long)dim, x->ndim);
    }
    tensor *r = tensor_reduce(op, x, (int)dim, keep, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_sum(eng_call *c, value *out) { return reduce(c, out, OP_SUM); }
int bi_mean(eng_call *c, value *out) { return reduce(c, out, OP_MEAN); }
int bi_max(eng_call *c, value *out) { return reduce(c, out, OP_MAX); }
int bi_min(eng_call *c, value *out) { return reduce(c, out, OP_MIN); }
int bi_argmax(eng_call *c, value *out) { return reduce(c, out, OP_ARGMAX); }
int bi_argmin(eng_call *c, value *out) { return reduce(c, out, OP_ARGMIN); }
int bi_std(eng_call *c, value *out) { return reduce(c, out, OP_STD); }
int bi_var(eng_call *c, value *out) { return reduce(c, out, OP_VAR); }
int bi_norm(eng_call *c, value *out) { return reduce(c, out, OP_NORM); }

/* ---- shape ---- */

int bi_reshape(eng_call *c, value *out)
{
    tensor *x;
    int nd;
    int64_t shape[TENSOR_MAXDIM];
    if (shape_args(c, 1, c->argc, &nd, shape) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_reshape(x, nd, shape, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_flatten(eng_call *c, value *out)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_flatten(x, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_transpose(eng_call *c, value *out)
{
    tensor *x, *r = NULL;
    int64_t d0 = 0, d1 = 1;
    if (c->argc == 2)
        return eng_fail(c->err, ERR_TYPE, "transpose: give both dimensions, transpose(x, d0, d1), or none");
    if (c->argc == 3 && (arg_int(c, 1, &d0) < 0 || arg_int(c, 2, &d1) < 0))
        return -1;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    if (c->argc == 1 && x->ndim < 2) {
        r = x; /* a vector is its own transpose, as in NumPy */
        return value_put_tensor(out, r);
    }
    if (c->argc == 1 && x->ndim > 2) {
        eng_fail(c->err, ERR_SHAPE, "transpose: x is %d-d; give the two dimensions to swap, transpose(x, d0, d1)",
                 x->ndim);
    } else if (d0 < -TENSOR_MAXDIM || d0 >= TENSOR_MAXDIM || d1 < -TENSOR_MAXDIM || d1 >= TENSOR_MAXDIM) {
        eng_fail(c->err, ERR_INDEX, "transpose: dimension out of range for a %d-d tensor", x->ndim);
    } else {
        r = tensor_transpose(x, (int)d0, (int)d1, c->err);
    }
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_permute(eng_call *c, value *out)
{
    tensor *x;
    int nd;
    int64_t dims[TENSOR_MAXDIM];
    int d32[TENSOR_MAXDIM];
    if (shape_args(c, 1, c->argc, &nd, dims) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    for (int i = 0; i < nd; i++)
        d32[i] = dims[i] < -TENSOR_MAXDIM || dims[i] >= TENSOR_MAXDIM ? TENSOR_MAXDIM : (int)dims[i];
    tensor *r = tensor_permute(x, d32, nd, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_squeeze(eng_call *c, value *out)
{
    tensor *x;
    int64_t dim = -1000;
    if (c->argc == 2 && arg_int(c, 1, &dim) < 0)
        return -1;
    if (c->argc == 2 && (dim < -TENSOR_MAXDIM || dim >= TENSOR_MAXDIM))
        dim = TENSOR_MAXDIM;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_squeeze(x, (int)dim, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_unsqueeze(eng_call *c, value *out)
{
    tensor *x;
    int64_t dim;
    if (arg_int(c, 1, &dim) < 0 || arg_tensor(c, 0, &x) < 0)
        return -1;
    if (dim < -TENSOR_MAXDIM - 1 || dim > TENSOR_MAXDIM)
        dim = TENSOR_MAXDIM + 1;
    tensor *r = tensor_unsqueeze(x, (int)dim, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

static int join(eng_call *c, value *out, int stack)
{
    int n = c->argc;
    int64_t dim = 0;
    if (n >= 2 && (c->argv[n - 1].type == VAL_INT || c->argv[n - 1].type == VAL_BOOL)) {
        dim = c->argv[n - 1].as.i;
        n--;
    }
    if (n < 1)
        return eng_fail(c->err, ERR_TYPE, "%s: needs at least one tensor", c->name);
    if (dim < -TENSOR_MAXDIM - 1 || dim > TENSOR_MAXDIM)
        dim = TENSOR_MAXDIM + 1;
    tensor **ts = calloc((size_t)n, sizeof *ts), *r = NULL;
    if (!ts)
        return eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
    for (int i = 0; i < n; i++)
        if (arg_tensor(c, i, &ts[i]) < 0)
            goto done;
    r = stack ? tensor_stack(ts, n, (int)dim, c->err) : tensor_cat(ts, n, (int)dim, c->err);
done:
    for (int i = 0; i < n; i++)
        tensor_decref(ts[i]);
    free(ts);
    return value_put_tensor(out, r);
}

int bi_cat(eng_call *c, value *out) { return join(c, out, 0); }
int bi_stack(eng_call *c, value *out) { return join(c, out, 1); }

int bi_clone(eng_call *c, value *out)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_clone(x, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_contiguous(eng_call *c, value *out)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    tensor *r = tensor_contiguous(x, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

/* ---- linear algebra ---- */

static int two_tensors(eng_call *c, value *out, tensor *(*fn)(const tensor *, const tensor *, eng_error *))
{
    tensor *a, *b;
    if (arg_tensor(c, 0, &a) < 0)
        return -1;
    if (arg_tensor(c, 1, &b) < 0) {
        tensor_decref(a);
        return -1;
    }
    tensor *r = fn(a, b, c->err);
    tensor_decref(a);
    tensor_decref(b);
    return value_put_tensor(out, r);
}

int bi_matmul(eng_call *c, value *out) { return two_tensors(c, out, tensor_matmul); }
int bi_dot(eng_call *c, value *out) { return two_tensors(c, out, tensor_dot); }
int bi_outer(eng_call *c, value *out) { return two_tensors(c, out, tensor_outer); }

/* ---- files ---- */

int bi_load_npy(eng_call *c, value *out)
{
    const char *path;
    if (arg_string(c, 0, &path) < 0)
        return -1;
    return value_put_tensor(out, tensor_load_npy(path, c->err));
}

int bi_save_npy(eng_call *c, value *out)
{
    int pi = 0, ti = 1;
    if (c->argc == 2 && c->argv[0].type == VAL_TENSOR && c->argv[1].type == VAL_STRING) {
        pi = 1;
        ti = 0;
    }
    const char *path;
    tensor *x;
    if (arg_string(c, pi, &path) < 0 || arg_tensor(c, ti, &x) < 0)
        return -1;
    int rc = tensor_save_npy(x, path, c->err);
    tensor_decref(x);
    *out = value_void();
    return rc;
}

int bi_load_idx(eng_call *c, value *out)
{
    const char *path;
    if (arg_string(c, 0, &path) < 0)
        return -1;
    return value_put_tensor(out, tensor_load_idx(path, c->err));
}

/* ---- tensors and scalars ---- */

int bi_item(eng_call *c, value *out)
{
    value v = c->argv[0];
    if (is_scalar(v)) {
        *out = v;
        return 0;
    }
    if (v.type != VAL_TENSOR)
        return eng_fail(c->err, ERR_TYPE, "item: argument 1 must be a tensor, got %s", value_type_name(v.type));
    tensor *t = v.as.t;
    int64_t n = tensor_numel(t);
    if (n != 1) {
        char b[TENSOR_SHAPE_BUF];
        return eng_fail(c->err, ERR_VALUE, "item: a tensor of shape %s has %lld elements, not 1",
                        tensor_shape_str(t->ndim, t->shape, b, sizeof b), (long long)n);
    }
    if (t->dtype == DT_I64) {
        int64_t iv;
        if (t->storage->backend->to_host(&iv, tensor_data_ptr(t), 8, c->err) < 0)
            return -1;
        *out = value_int(iv);
        return 0;
    }
    double d;
    if (tensor_item(t, &d, c->err) < 0)
        return -1;
    if (t->dtype == DT_BOOL)
        *out = value_bool(d != 0);
    else if (tensor_dtype_is_float(t->dtype))
        *out = value_float(d);
    else
        *out = value_int((int64_t)d);
    return 0;
}

int bi_to(eng_call *c, value *out)
{
    tensor *x;
    value w = c->argv[1];
    if (w.type != VAL_DTYPE && w.type != VAL_DEVICE)
        return eng_fail(c->err, ERR_TYPE, "to: argument 2 must be a dtype (f32, i64, ...) or a device (cpu, cuda, sim), got %s",
                        value_type_name(w.type));
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    if (w.type == VAL_DEVICE) { /* through the host; x itself when it is there already */
        eng_error e = {0};
        const eng_backend *be = eng_backend_named(value_device_name(w.as.i), &e);
        tensor *r = be ? tensor_to(x, be, c->err) : NULL;
        tensor_decref(x);
        if (!be)
            return eng_fail(c->err, e.kind, "to(x, %s): %s (the simulator backend, sim, runs the CUDA kernels on "
                            "the CPU: x.to(sim))", value_device_name(w.as.i), e.msg);
        return value_put_tensor(out, r);
    }
    tensor *r = tensor_cast(x, (tensor_dtype)w.as.i, c->err);
    tensor_decref(x);
    return value_put_tensor(out, r);
}

int bi_numel(eng_call *c, value *out)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    *out = value_int(tensor_numel(x));
    tensor_decref(x);
    return 0;
}

int bi_shape(eng_call *c, value *out)
{
    tensor *x;
    if (arg_tensor(c, 0, &x) < 0)
        return -1;
    eng_tuple *tp = eng_tuple_new(x->ndim, x->shape);
    tensor_decref(x);
    if (!tp)
        return eng_fail(c->err, ERR_MEMORY, "shape: out of memory");
    *out = (value){VAL_TUPLE, {.tup = tp}};
    return 0;
}
