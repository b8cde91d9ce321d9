/* tensor_order.c — ordering, scans, counting and sampling on top of the backends'
 * argsort and scan entries and the ops of tensor.h (see engine/tensor/tensor_order.h).
 *
 * Layout: an op along dim works on x with dim swapped to the end (a view), made
 * contiguous and seen as [R, N] rows. Sorted values are gathered from the flattened x
 * at row * N + index (tensor_gather, so autograd records them and their gradient goes
 * back through the permutation); index work runs with grad mode off. unique and
 * bincount read their input back to the host (their result's size depends on the
 * values), count there and copy the result to x's device.
 */
#include "engine/tensor/tensor_order.h"
#include "engine/tensor/record.h"
#include "engine/tensor/tensor_impl.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(t, buf) tensor_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

/* grad mode off for index work (nothing of it is differentiable); returns the old mode */
static int no_grad(void)
{
    eng_ctx *c = eng_ctx_current();
    int prev = c->grad_enabled;
    c->grad_enabled = 0;
    return prev;
}
static void grad_restore(int prev) { eng_ctx_current()->grad_enabled = prev; }

/* dim normalised into *d (a 0-d tensor has the one dimension 0 / -1) */
static int norm_dim(const char *op, const tensor *x, int dim, int *d, eng_error *err)
{
    char b[TENSOR_SHAPE_BUF];
    int nd = x->ndim ? x->ndim : 1;
    *d = dim < 0 ? dim + nd : dim;
    if (*d < 0 || *d >= nd)
        return eng_fail(err, ERR_INDEX, "%s: dimension %d is out of range for a %d-d tensor of shape %s", op, dim,
                        x->ndim, SHAPE(x, b));
    return 0;
}

/* x as at least 1-d (a 0-d tensor as [1]; a new reference) */
static tensor *at_least_1d(const tensor *x, eng_error *err)
{
    int64_t one = 1;
    if (x->ndim)
        return tensor_reshape((tensor *)x, x->ndim, x->shape, err);
    return tensor_reshape((tensor *)x, 1, &one, err);
}

/* a header over contiguous t's storage seen as [R, N], N its last extent */
static tensor rows_view(const tensor *t)
{
    tensor v = *t;
    int64_t n = t->ndim ? t->shape[t->ndim - 1] : 1, numel = tensor_numel(t);
    v.ndim = 2;
    v.shape[0] = n ? numel / n : 0;
    v.shape[1] = n;
    v.stride[0] = n;
    v.stride[1] = 1;
    return v;
}

/* ---- scans ---- */

static tensor_dtype scan_dtype(tensor_dtype dt)
{
    return dt == DT_F32 || dt == DT_F64 ? dt : dt == DT_F16 || dt == DT_BF16 ? DT_F32 : DT_I64;
}

tensor *tensor_scan_raw(int kind, int flags, const tensor *x, const tensor *w, int dim, eng_error *err)
{
    const char *op = kind == ENG_SCAN_PROD ? "cumprod" : "cumsum";
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    int d;
    if (norm_dim(op, x, dim, &d, err) < 0)
        return NULL;
    if (w && (w->ndim != x->ndim || memcmp(w->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim)))
        return eng_fail(err, ERR_SHAPE, "%s: multipliers of shape %s for x of shape %s", op, SHAPE(w, b1),
                        SHAPE(x, b2)),
               NULL;
    if (w && w->storage->backend != x->storage->backend)
        return eng_fail(err, ERR_RUNTIME, "%s: the multipliers are on %s, x on %s", op, w->storage->backend->name,
                        x->storage->backend->name),
               NULL;
    const eng_backend *be = x->storage->backend;
    const eng_backend *prev = tensor_place(be);
    int gm = no_grad();
    tensor_dtype cd = scan_dtype(x->dtype), final = x->dtype == DT_F16 || x->dtype == DT_BF16 ? x->dtype : cd;
    tensor *xc = tensor_cast(x, cd, err), *wc = NULL, *out = NULL, *r = NULL;
    if (!xc || (w && !(wc = tensor_cast(w, cd, err))) || !(out = tensor_empty_on(be, cd, x->ndim, x->shape, err)))
        goto done;
    if (be->scan(kind, flags, out, xc, wc, x->ndim ? d : 0, err) < 0)
        goto done;
    if (final != cd)
        r = tensor_cast(out, final, err);
    else {
        r = out;
        out = NULL;
    }
done:
    tensor_decref(xc);
    tensor_decref(wc);
    tensor_decref(out);
    grad_restore(gm);
    tensor_place(prev);
    return r;
}

tensor *tensor_scan(int kind, const tensor *x, int dim, eng_error *err)
{
    if (TENSOR_RECORDS(x))
        return tensor_recorder_hooks->scan(kind, x, dim, err);
    return tensor_scan_raw(kind, 0, x, NULL, dim, err);
}

/* ---- argsort, sort, topk ---- */

/* the indices that sort x with dimension d moved last (a contiguous i64 of that shape) */
static tensor *argsort_last(const tensor *x, int d, int desc, eng_error *err)
{
    const eng_backend *be = x->storage->backend;
    int gm = no_grad();
    tensor *x1 = at_least_1d(x, err), *xt = NULL, *k = NULL, *idx = NULL;
    if (!x1 || !(xt = tensor_transpose(x1, d, x1->ndim - 1, err)))
        goto done;
    tensor_dtype kd = x->dtype == DT_BOOL || x->dtype == DT_U8 ? DT_I32
                    : x->dtype == DT_F16 || x->dtype == DT_BF16 ? DT_F32 : x->dtype;
    if (!(k = tensor_cast(xt, kd, err)) || !(idx = tensor_empty_on(be, DT_I64, xt->ndim, xt->shape, err)))
        goto done;
    tensor kv = rows_view(k), iv = rows_view(idx);
    if (be->argsort(&iv, &kv, desc, err) < 0) {
        tensor_decref(idx);
        idx = NULL;
    }
done:
    tensor_decref(x1);
    tensor_decref(xt);
    tensor_decref(k);
    grad_restore(gm);
    return idx;
}

/* x's values at idx (contiguous i64 in the layout of argsort_last, last extent K) along
 * d, back in x's layout: a gather from flattened x, recorded when x requires grad */
static tensor *take_along(const tensor *x, const tensor *idx, int d, eng_error *err)
{
    tensor *x1 = at_least_1d(x, err), *xt = NULL, *xf = NULL, *off = NULL, *flat = NULL, *g = NULL, *gv = NULL,
           *r = NULL;
    if (!x1 || !(xt = tensor_transpose(x1, d, x1->ndim - 1, err)))
        goto done;
    int64_t n = xt->shape[xt->ndim - 1], numel = tensor_numel(xt), kk = idx->shape[idx->ndim - 1];
    int64_t rows = n ? numel / n : 0;
    int64_t shape[TENSOR_MAXDIM];
    memcpy(shape, xt->shape, sizeof shape);
    shape[xt->ndim - 1] = kk;
    if (rows * kk == 0) { /* nothing to gather */
        if (!(g = tensor_empty_on(x->storage->backend, x->dtype, xt->ndim, shape, err)))
            goto done;
    } else {
        int gm = no_grad();
        int64_t rk[2] = {rows, kk}, r1[2] = {rows, 1};
        tensor *i2 = tensor_reshape((tensor *)idx, 2, rk, err), *o1 = NULL;
        if (i2 && (off = tensor_arange(0, (double)(rows * n), (double)n, DT_I64, err)) &&
            (o1 = tensor_reshape(off, 2, r1, err)))
            flat = tensor_binary(OP_ADD, i2, o1, err);
        tensor_decref(i2);
        tensor_decref(o1);
        grad_restore(gm);
        if (!flat || !(xf = tensor_reshape(xt, 1, &numel, err)))
            goto done;
        tensor *gg = TENSOR_RECORDS(xf) ? tensor_gather(xf, flat, err) : tensor_gather_trusted(xf, flat, err);
        if (!gg)
            goto done;
        g = tensor_reshape(gg, xt->ndim, shape, err);
        tensor_decref(gg);
        if (!g)
            goto done;
    }
    if (!(gv = tensor_transpose(g, d, xt->ndim - 1, err)))
        goto done;
    if (x->ndim == 0)
        r = tensor_reshape(gv, 0, shape, err);
    else
        r = tensor_contiguous(gv, err);
done:
    tensor_decref(x1);
    tensor_decref(xt);
    tensor_decref(xf);
    tensor_decref(off);
    tensor_decref(flat);
    tensor_decref(g);
    tensor_decref(gv);
    return r;
}

/* idx (argsort_last's layout) moved back to x's layout */
static tensor *indices_back(const tensor *x, tensor *idx, int d, eng_error *err)
{
    if (x->ndim == 0)
        return tensor_reshape(idx, 0, idx->shape, err);
    tensor *v = tensor_transpose(idx, d, x->ndim - 1, err);
    tensor *r = v ? tensor_contiguous(v, err) : NULL;
    tensor_decref(v);
    return r;
}

tensor *tensor_argsort(const tensor *x, int dim, int descending, eng_error *err)
{
    int d;
    if (norm_dim("argsort", x, dim, &d, err) < 0)
        return NULL;
    const eng_backend *prev = tensor_place(x->storage->backend);
    tensor *idx = argsort_last(x, d, descending, err);
    tensor *r = idx ? indices_back(x, idx, d, err) : NULL;
    tensor_decref(idx);
    tensor_place(prev);
    return r;
}

tensor *tensor_sort(const tensor *x, int dim, int descending, eng_error *err)
{
    int d;
    if (norm_dim("sort", x, dim, &d, err) < 0)
        return NULL;
    const eng_backend *prev = tensor_place(x->storage->backend);
    tensor *idx = argsort_last(x, d, descending, err);
    tensor *r = idx ? take_along(x, idx, d, err) : NULL;
    tensor_decref(idx);
    tensor_place(prev);
    return r;
}

tensor *tensor_topk(const tensor *x, int64_t k, int dim, int largest, int indices, eng_error *err)
{
    char b[TENSOR_SHAPE_BUF];
    const char *op = indices ? "topk_indices" : "topk";
    int d;
    if (norm_dim(op, x, dim, &d, err) < 0)
        return NULL;
    int64_t n = x->ndim ? x->shape[d] : 1;
    if (k < 0 || k > n)
        return eng_fail(err, ERR_VALUE, "%s: k = %lld is out of range for dimension %d of size %lld (shape %s)", op,
                        (long long)k, d, (long long)n, SHAPE(x, b)),
               NULL;
    const eng_backend *prev = tensor_place(x->storage->backend);
    tensor *idx = argsort_last(x, d, largest, err), *ik = NULL, *r = NULL;
    if (idx) {
        int gm = no_grad();
        tensor *v = tensor_slice(idx, idx->ndim - 1, 0, k, 1, err);
        ik = v ? tensor_contiguous(v, err) : NULL;
        tensor_decref(v);
        grad_restore(gm);
    }
    if (ik)
        r = indices ? indices_back(x, ik, d, err) : take_along(x, ik, d, err);
    tensor_decref(idx);
    tensor_decref(ik);
    tensor_place(prev);
    return r;
}

/* ---- unique, bincount (host) ---- */

tensor *tensor_unique(const tensor *x, eng_error *err)
{
    const eng_backend *prev = tensor_place(x->storage->backend);
    int gm = no_grad();
    int64_t n = tensor_numel(x);
    tensor *flat = tensor_reshape((tensor *)x, 1, &n, err), *s = NULL, *r = NULL;
    char *h = NULL;
    if (!flat || !(s = tensor_sort(flat, 0, 0, err)) || !(h = tensor_to_host(s, err)))
        goto done;
    size_t es = tensor_dtype_size(x->dtype);
    int fl = tensor_dtype_is_float(x->dtype);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *p = h + (size_t)i * es;
        if (m > 0) {
            const char *q = h + (size_t)(m - 1) * es;
            if (fl) {
                double a = tensor_host_load(x->dtype, p), b = tensor_host_load(x->dtype, q);
                if (a == b || (a != a && b != b))
                    continue;
            } else if (!memcmp(p, q, es)) {
                continue;
            }
        }
        memmove(h + (size_t)m * es, p, es);
        m++;
    }
    r = tensor_from_host(h, x->dtype, 1, &m, err);
done:
    free(h);
    tensor_decref(flat);
    tensor_decref(s);
    grad_restore(gm);
    tensor_place(prev);
    return r;
}

tensor *tensor_bincount(const tensor *x, const tensor *w, int64_t minlength, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (tensor_dtype_is_float(x->dtype))
        return eng_fail(err, ERR_TYPE, "bincount: x must be a tensor of non-negative integers, got %s of shape %s",
                        tensor_dtype_name(x->dtype), SHAPE(x, b1)),
               NULL;
    if (x->ndim != 1)
        return eng_fail(err, ERR_SHAPE, "bincount: x must be 1-d, got shape %s", SHAPE(x, b1)), NULL;
    if (w && (w->ndim != 1 || w->shape[0] != x->shape[0]))
        return eng_fail(err, ERR_SHAPE, "bincount: weights of shape %s for x of shape %s", SHAPE(w, b1),
                        SHAPE(x, b2)),
               NULL;
    if (minlength < 0)
        return eng_fail(err, ERR_VALUE, "bincount: minlength must be non-negative, got %lld", (long long)minlength),
               NULL;
    const eng_backend *prev = tensor_place(x->storage->backend);
    int gm = no_grad();
    int64_t n = x->shape[0], len = minlength;
    tensor *xi = tensor_cast(x, DT_I64, err), *wd = NULL, *r = NULL;
    int64_t *xh = NULL;
    double *wh = NULL;
    void *acc = NULL;
    if (!xi || !(xh = tensor_to_host(xi, err)))
        goto done;
    if (w && (!(wd = tensor_cast(w, DT_F64, err)) || !(wh = tensor_to_host(wd, err))))
        goto done;
    for (int64_t i = 0; i < n; i++) {
        if (xh[i] < 0) {
            eng_fail(err, ERR_VALUE, "bincount: x has a negative value %lld (at index %lld, shape %s)",
                     (long long)xh[i], (long long)i, SHAPE(x, b1));
            goto done;
        }
        if (xh[i] >= len)
            len = xh[i] + 1;
    }
    size_t bytes;
    int64_t numel;
    if (eng_shape_bytes("bincount", 1, &len, 8, w ? "f64" : "i64", &numel, &bytes, err) < 0 ||
        !(acc = eng_host_malloc(bytes ? bytes : 1, "bincount", err)))
        goto done;
    memset(acc, 0, bytes);
    for (int64_t i = 0; i < n; i++) {
        if (w)
            ((double *)acc)[xh[i]] += wh[i];
        else
            ((int64_t *)acc)[xh[i]]++;
    }
    r = tensor_from_host(acc, w ? DT_F64 : DT_I64, 1, &len, err);
done:
    free(xh);
    free(wh);
    free(acc);
    tensor_decref(xi);
    tensor_decref(wd);
    grad_restore(gm);
    tensor_place(prev);
    return r;
}

/* ---- any, all, allclose, nan_to_num ---- */

/* err's message with its first skip characters replaced by "op:" (skip 0: "op: " added) */
static void prefix_msg(eng_error *err, const char *op, size_t skip)
{
    char msg[sizeof err->msg + 32];
    snprintf(msg, sizeof msg, "%s:%s%s", op, skip ? "" : " ", err->msg + skip);
    memcpy(err->msg, msg, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = 0;
}

static tensor *any_all(int all, const tensor *x, int dim, int keepdim, eng_error *err)
{
    const eng_backend *prev = tensor_place(x->storage->backend);
    int gm = no_grad();
    /* any: some x != 0 (NaN counts, as NumPy); all: no x == 0 */
    tensor *m = tensor_binary_scalar(all ? OP_EQ : OP_NE, x, 0, 0, 0, err);
    tensor *s = m ? tensor_reduce(OP_SUM, m, dim, keepdim, err) : NULL;
    tensor *r = s ? tensor_binary_scalar(all ? OP_EQ : OP_GT, s, 0, 0, 0, err) : NULL;
    if (!r && err->kind == ERR_INDEX && !strncmp(err->msg, "sum:", 4)) { /* the message names the op asked for */
        prefix_msg(err, all ? "all" : "any", 4);
    }
    tensor_decref(m);
    tensor_decref(s);
    grad_restore(gm);
    tensor_place(prev);
    return r;
}

tensor *tensor_any(const tensor *x, int dim, int keepdim, eng_error *err) { return any_all(0, x, dim, keepdim, err); }
tensor *tensor_all(const tensor *x, int dim, int keepdim, eng_error *err) { return any_all(1, x, dim, keepdim, err); }

int tensor_allclose(const tensor *a, const tensor *b, double rtol, double atol, int *result, eng_error *err)
{
    int gm = no_grad();
    int rc = -1;
    tensor_dtype cd = tensor_dtype_promote(tensor_dtype_promote(a->dtype, b->dtype), DT_F64);
    tensor *a64 = tensor_cast(a, cd, err), *b64 = a64 ? tensor_cast(b, cd, err) : NULL;
    tensor *diff = NULL, *ad = NULL, *ab = NULL, *lim = NULL, *ok = NULL, *all = NULL;
    if (!b64 || !(diff = tensor_binary(OP_SUB, a64, b64, err)) || !(ad = tensor_unary(OP_ABS, diff, 0, 0, err)) ||
        !(ab = tensor_unary(OP_ABS, b64, 0, 0, err)) ||
        !(lim = tensor_binary_scalar(OP_MUL, ab, rtol, 1, 0, err)))
        goto done;
    tensor *lim2 = tensor_binary_scalar(OP_ADD, lim, atol, 1, 0, err);
    if (!lim2)
        goto done;
    tensor_decref(lim);
    lim = lim2;
    /* equal values pass even when infinite (inf - inf is NaN); NaN fails */
    tensor *close = tensor_binary(OP_LE, ad, lim, err), *eq = close ? tensor_binary(OP_EQ, a64, b64, err) : NULL;
    ok = eq ? tensor_binary(OP_OR, close, eq, err) : NULL;
    tensor_decref(close);
    tensor_decref(eq);
    double v;
    if (!ok || !(all = any_all(1, ok, TENSOR_ALLDIMS, 0, err)) || tensor_item(all, &v, err) < 0)
        goto done;
    *result = v != 0;
    rc = 0;
done:
    if (rc < 0 && err->kind == ERR_SHAPE && !strncmp(err->msg, "sub:", 4)) { /* the broadcast */
        prefix_msg(err, "allclose", 4);
    }
    tensor_decref(a64);
    tensor_decref(b64);
    tensor_decref(diff);
    tensor_decref(ad);
    tensor_decref(ab);
    tensor_decref(lim);
    tensor_decref(ok);
    tensor_decref(all);
    grad_restore(gm);
    return rc;
}

double tensor_dtype_max(tensor_dtype dt)
{
    switch (dt) {
    case DT_F16: return 65504.0;
    case DT_BF16: return 3.3895313892515355e38;
    case DT_F32: return FLT_MAX;
    default: return DBL_MAX;
    }
}

tensor *tensor_nan_to_num(const tensor *x, double nan, double posinf, double neginf, eng_error *err)
{
    if (!tensor_dtype_is_float(x->dtype)) {
        tensor_incref((tensor *)x);
        return (tensor *)x;
    }
    /* three wheres over x's own masks: the gradient flows where x is finite */
    const eng_backend *prev = tensor_place(x->storage->backend);
    tensor *m[3] = {0}, *v[3] = {0}, *r = NULL, *cur = (tensor *)x;
    const op_id tests[3] = {OP_ISNAN, OP_EQ, OP_EQ};
    const double by[3] = {nan, posinf, neginf}, cmp[3] = {0, INFINITY, -INFINITY};
    tensor_incref(cur);
    for (int k = 0; k < 3; k++) {
        int gm = no_grad();
        m[k] = k == 0 ? tensor_unary(OP_ISNAN, x, 0, 0, err) : tensor_binary_scalar(tests[k], x, cmp[k], 1, 0, err);
        v[k] = m[k] ? tensor_scalar(by[k], x->dtype, err) : NULL;
        grad_restore(gm);
        tensor *nx = v[k] ? tensor_where(m[k], v[k], cur, err) : NULL;
        tensor_decref(cur);
        cur = nx;
        if (!cur)
            break;
    }
    r = cur;
    for (int k = 0; k < 3; k++) {
        tensor_decref(m[k]);
        tensor_decref(v[k]);
    }
    tensor_place(prev);
    return r;
}

/* ---- sampling ---- */

tensor *tensor_randperm(tensor_rng *rng, int64_t n, eng_error *err)
{
    if (n < 0)
        return eng_fail(err, ERR_VALUE, "randperm: n must be non-negative, got %lld", (long long)n), NULL;
    /* argsort of 62-bit random keys: ties (probability about n^2 / 2^63) keep their
     * order, so the result is a permutation on every backend, and the same one */
    tensor *keys = tensor_randint(rng, 0, (int64_t)1 << 62, 1, &n, err);
    tensor *r = keys ? tensor_argsort(keys, 0, 0, err) : NULL;
    tensor_decref(keys);
    return r;
}

int tensor_shuffle_order(tensor_rng *rng, int64_t *perm, int64_t n, eng_error *err)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    if (n < 2)
        return 0;
    const eng_backend *prev = tensor_place(&cpu_backend);
    tensor *u = tensor_rand(rng, 1, &n, err);
    tensor_place(prev);
    if (!u)
        return -1;
    const float *uv = tensor_data_ptr(u);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)((double)uv[i] * (double)(i + 1));
        if (j > i)
            j = i;
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    tensor_decref(u);
    return 0;
}

tensor *tensor_shuffle(tensor_rng *rng, const tensor *x, eng_error *err)
{
    char b[TENSOR_SHAPE_BUF];
    if (x->ndim == 0)
        return eng_fail(err, ERR_SHAPE, "shuffle: x must have a dimension to shuffle, got shape %s", SHAPE(x, b)),
               NULL;
    const eng_backend *prev = tensor_place(x->storage->backend);
    tensor *p = tensor_randperm(rng, x->shape[0], err), *r = NULL;
    if (p)
        r = TENSOR_RECORDS(x) ? tensor_gather(x, p, err) : tensor_gather_trusted(x, p, err);
    tensor_decref(p);
    tensor_place(prev);
    return r;
}

tensor *tensor_multinomial(tensor_rng *rng, const tensor *probs, int64_t n, int replacement, eng_error *err)
{
    char b[TENSOR_SHAPE_BUF];
    if (probs->ndim != 1 && probs->ndim != 2)
        return eng_fail(err, ERR_SHAPE, "multinomial: probs must be 1-d or 2-d, got shape %s", SHAPE(probs, b)), NULL;
    int64_t c = probs->shape[probs->ndim - 1], rows = probs->ndim == 2 ? probs->shape[0] : 1;
    if (n < 0)
        return eng_fail(err, ERR_VALUE, "multinomial: the number of samples must be non-negative, got %lld",
                        (long long)n),
               NULL;
    if (c == 0)
        return eng_fail(err, ERR_VALUE, "multinomial: probs of shape %s has no categories", SHAPE(probs, b)), NULL;
    int64_t p2s[2] = {rows, c}, out_shape[2] = {rows, n};
    if (rows == 0) /* no rows: no draws */
        return tensor_empty_on(probs->storage->backend, DT_I64, 2, out_shape, err);
    const eng_backend *prev = tensor_place(probs->storage->backend);
    int gm = no_grad();
    tensor *p = NULL, *p2 = NULL, *bad = NULL, *nz = NULL, *cnt = NULL, *mn = NULL, *cdf = NULL, *u = NULL,
           *tot = NULL, *t = NULL, *le = NULL, *idx = NULL, *keys = NULL, *lp = NULL, *gl = NULL, *r = NULL;
    double v;
    if (!(p = tensor_cast(probs, DT_F64, err)) || !(p2 = tensor_reshape(p, 2, p2s, err)))
        goto done;
    /* every weight finite and >= 0, each row with a positive sum (enough of them without replacement) */
    tensor *neg = tensor_binary_scalar(OP_LT, p2, 0, 0, 0, err), *fin = neg ? tensor_unary(OP_ISFINITE, p2, 0, 0, err) : NULL;
    tensor *nfin = fin ? tensor_unary(OP_NOT, fin, 0, 0, err) : NULL;
    bad = nfin ? tensor_binary(OP_OR, neg, nfin, err) : NULL;
    tensor_decref(neg);
    tensor_decref(fin);
    tensor_decref(nfin);
    tensor *anyb = bad ? tensor_any(bad, TENSOR_ALLDIMS, 0, err) : NULL;
    int rcv = anyb ? tensor_item(anyb, &v, err) : -1;
    tensor_decref(anyb);
    if (rcv < 0)
        goto done;
    if (v != 0) {
        eng_fail(err, ERR_VALUE, "multinomial: probs of shape %s has a negative, infinite or NaN weight",
                 SHAPE(probs, b));
        goto done;
    }
    if (!(nz = tensor_binary_scalar(OP_GT, p2, 0, 0, 0, err)) || !(cnt = tensor_reduce(OP_SUM, nz, 1, 0, err)) ||
        !(mn = tensor_reduce(OP_MIN, cnt, TENSOR_ALLDIMS, 0, err)) || tensor_item(mn, &v, err) < 0)
        goto done;
    if (v == 0) {
        eng_fail(err, ERR_VALUE, "multinomial: a row of probs (shape %s) sums to zero", SHAPE(probs, b));
        goto done;
    }
    if (!replacement && n > (int64_t)v) {
        eng_fail(err, ERR_VALUE,
                 "multinomial: %lld samples without replacement, but a row of probs (shape %s) has only %lld "
                 "nonzero weight%s",
                 (long long)n, SHAPE(probs, b), (long long)v, v == 1 ? "" : "s");
        goto done;
    }
    if (replacement) {
        /* inverse CDF: sample i is the number of categories whose running sum is <= t[i]
         * = u[i] * total. Counted for every sample at once by one stable sort of the row's
         * running sums followed by its t's (a sum equal to a t sorts first, so it counts):
         * the running count of sums at each sorted position, read at each t's position
         * (the inverse permutation, a second argsort). O((C + n) log) time, O(C + n) memory */
        int64_t tshape[2] = {rows, 1};
        tensor *uf = tensor_rand(rng, 2, out_shape, err), *tot2 = NULL, *keys2 = NULL, *order = NULL, *mark = NULL,
               *run = NULL, *inv = NULL, *pos = NULL, *pc = NULL;
        if (!uf)
            goto done;
        u = tensor_cast(uf, DT_F64, err);
        tensor_decref(uf);
        if (!u || !(cdf = tensor_scan_raw(ENG_SCAN_SUM, 0, p2, NULL, 1, err)))
            goto done;
        tensor *last = tensor_slice(cdf, 1, c - 1, c, 1, err);
        tot2 = last ? tensor_reshape(last, 2, tshape, err) : NULL;
        tensor_decref(last);
        t = tot2 ? tensor_binary(OP_MUL, u, tot2, err) : NULL;
        tensor *both[2] = {cdf, t};
        if (t && (keys2 = tensor_cat(both, 2, 1, err)) && (order = tensor_argsort(keys2, 1, 0, err)) &&
            (mark = tensor_binary_scalar(OP_LT, order, (double)c, 0, 0, err)) &&
            (run = tensor_scan_raw(ENG_SCAN_SUM, 0, mark, NULL, 1, err)) && (inv = tensor_argsort(order, 1, 0, err)) &&
            (pos = tensor_slice(inv, 1, c, c + n, 1, err)) && (pc = tensor_contiguous(pos, err)))
            le = take_along(run, pc, 1, err);
        /* u * total rounded up to total counts every sum: the last category */
        idx = le ? tensor_unary(OP_CLAMP, le, 0, (double)(c - 1), err) : NULL;
        tensor_decref(tot2);
        tensor_decref(keys2);
        tensor_decref(order);
        tensor_decref(mark);
        tensor_decref(run);
        tensor_decref(inv);
        tensor_decref(pos);
        tensor_decref(pc);
    } else {
        /* Gumbel top-k: log p - log(-log u), the first n of it in order, is sequential
         * sampling without replacement */
        int64_t gshape[2] = {rows, c};
        tensor *uf = tensor_rand(rng, 2, gshape, err);
        if (!uf)
            goto done;
        u = tensor_cast(uf, DT_F64, err);
        tensor_decref(uf);
        tensor *l1 = u ? tensor_unary(OP_LOG, u, 0, 0, err) : NULL, *l2 = NULL;
        tensor *nl1 = l1 ? tensor_unary(OP_NEG, l1, 0, 0, err) : NULL;
        l2 = nl1 ? tensor_unary(OP_LOG, nl1, 0, 0, err) : NULL;
        lp = l2 ? tensor_unary(OP_LOG, p2, 0, 0, err) : NULL;
        keys = lp ? tensor_binary(OP_SUB, lp, l2, err) : NULL;
        tensor_decref(l1);
        tensor_decref(nl1);
        tensor_decref(l2);
        idx = keys ? tensor_topk(keys, n, 1, 1, 1, err) : NULL;
    }
    if (idx)
        r = probs->ndim == 2 ? tensor_reshape(idx, 2, out_shape, err) : tensor_reshape(idx, 1, &n, err);
done:
    tensor_decref(p);
    tensor_decref(p2);
    tensor_decref(bad);
    tensor_decref(nz);
    tensor_decref(cnt);
    tensor_decref(mn);
    tensor_decref(cdf);
    tensor_decref(u);
    tensor_decref(tot);
    tensor_decref(t);
    tensor_decref(le);
    tensor_decref(idx);
    tensor_decref(keys);
    tensor_decref(lp);
    tensor_decref(gl);
    grad_restore(gm);
    tensor_place(prev);
    return r;
}
