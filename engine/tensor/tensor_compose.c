/* tensor_compose.c — shape and index ops a PyTorch or NumPy user reaches for, each a
 * composition of the front end's recorded primitives (views, where, matmul, reduce,
 * gather, cat), so they run on their operand's backend and autograd differentiates
 * them for free: one_hot, repeat / tile / repeat_interleave, flip, roll, tril /
 * triu, diag, masked_fill, index_add and scatter_add. One primitive lives here too:
 * tensor_index_add_rows, a scatter-add (the backends' index_put with accumulate, of
 * engine/tensor/tensor_index.c: cpu/cpu_index.c, cuda/kernels/kk_index.cuh) that
 * autograd records as one node (its gradient a gather; gather's gradient is it).
 *
 * Every function returns a new reference or NULL with err filled; arguments are
 * borrowed. Temporaries are freed on every path (one cleanup label per function).
 */
#include "engine/tensor/tensor.h"
#include "engine/tensor/record.h"
#include "engine/tensor/tensor_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(t, buf) tensor_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

/* dim counted from the end when negative, checked against x's dimensions */
static int dim_of(const char *op, int dim, const tensor *x, eng_error *err)
{
    char b[TENSOR_SHAPE_BUF];
    int d = dim < 0 ? dim + x->ndim : dim;
    if (d < 0 || d >= x->ndim) {
        eng_fail(err, ERR_INDEX, "%s: dimension %d is out of range for a %d-d tensor of shape %s", op, dim, x->ndim,
                 SHAPE(x, b));
        return -1;
    }
    return d;
}

static int is_int_dtype(tensor_dtype dt)
{
    return dt == DT_I32 || dt == DT_I64 || dt == DT_U8;
}

/* ---- index_add: the primitive ---- */

tensor *tensor_index_add_rows(const tensor *x, const tensor *idx, const tensor *src, eng_error *err)
{
    if (TENSOR_RECORDS2(x, src))
        return tensor_recorder_hooks->index_add(x, idx, src, err);
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF], b3[TENSOR_SHAPE_BUF];
    if (!is_int_dtype(idx->dtype)) {
        eng_fail(err, ERR_TYPE, "index_add: the index must be an integer tensor, got %s",
                 tensor_dtype_name(idx->dtype));
        return NULL;
    }
    int ok = x->ndim >= 1 && idx->ndim + x->ndim - 1 == src->ndim && src->ndim <= TENSOR_MAXDIM;
    for (int d = 0; ok && d < idx->ndim; d++)
        ok = src->shape[d] == idx->shape[d];
    for (int d = 1; ok && d < x->ndim; d++)
        ok = src->shape[idx->ndim + d - 1] == x->shape[d];
    if (!ok) {
        eng_fail(err, ERR_SHAPE, "index_add: adding rows of shape %s at index %s into %s: the source must "
                 "have the index's shape followed by the target's rows", SHAPE(src, b1), SHAPE(idx, b2),
                 SHAPE(x, b3));
        return NULL;
    }
    const tensor *ts[3] = {x, idx, src};
    const eng_backend *be = tensor_common_backend("index_add", ts, 3, err);
    if (!be)
        return NULL;
    const eng_backend *prev = tensor_place(be);
    /* index_put accumulates f32, f64, i32, i64; the others add in f32 or i64 and round back */
    tensor_dtype dt = x->dtype, work = dt;
    if (dt == DT_F16 || dt == DT_BF16)
        work = DT_F32;
    else if (dt == DT_BOOL || dt == DT_U8)
        work = DT_I64;
    int64_t rows = x->shape[0], cols = 1, n = tensor_numel(idx);
    for (int d = 1; d < x->ndim; d++)
        cols *= x->shape[d];
    int64_t s2[2] = {rows, cols}, i1[1] = {n}, r2[2] = {n, cols};
    tensor *out = NULL, *o = NULL, *ic = NULL, *i64 = NULL, *sc = NULL, *sv = NULL, *o2 = NULL, *s2t = NULL;
    if (!(o = tensor_cast(x, work, err)) || !(out = tensor_contiguous(o, err)))
        goto fail;
    if (out == x) { /* a cast to the same dtype is x itself: never write into it */
        tensor_decref(out);
        if (!(out = tensor_clone(x, err)))
            goto fail;
    }
    if (!(ic = tensor_cast(idx, DT_I64, err)) || !(i64 = tensor_contiguous(ic, err)) ||
        !(sc = tensor_cast(src, work, err)) || !(sv = tensor_contiguous(sc, err)) ||
        !(o2 = tensor_reshape(out, 2, s2, err)) || !(s2t = tensor_reshape(sv, 2, r2, err)))
        goto fail;
    tensor *iflat = tensor_reshape(i64, 1, i1, err);
    tensor *iw = iflat ? tensor_index_checked(iflat, rows, 0, be, err) : NULL; /* negatives wrapped */
    tensor_decref(iflat);
    int rc = iw ? tensor_index_put(o2, 1, iw, s2t, 1, err) : -1; /* accumulate: repeated indices add up */
    tensor_decref(iw);
    if (rc < 0) {
        if (err->kind == ERR_INDEX && strncmp(err->msg, "index_add", 9)) { /* the backend's words, the op's name */
            size_t len = strlen(err->msg);
            if (len + 11 < sizeof err->msg) {
                memmove(err->msg + 11, err->msg, len + 1);
                memcpy(err->msg, "index_add: ", 11);
            }
        }
        goto fail;
    }
    if (work != dt) {
        tensor *back = tensor_cast(out, dt, err);
        tensor_decref(out);
        out = back;
    }
    goto done;
fail:
    tensor_decref(out);
    out = NULL;
done:
    tensor_decref(o);
    tensor_decref(ic);
    tensor_decref(i64);
    tensor_decref(sc);
    tensor_decref(sv);
    tensor_decref(o2);
    tensor_decref(s2t);
    tensor_place(prev);
    return out;
}

/* x with dim d moved to the front (a view) or back (inverse) */
static tensor *move_front(tensor *x, int d, int inverse, eng_error *err)
{
    int perm[TENSOR_MAXDIM], k = 0;
    if (!inverse) {
        perm[k++] = d;
        for (int i = 0; i < x->ndim; i++)
            if (i != d)
                perm[k++] = i;
    } else {
        for (int i = 0; i < x->ndim; i++)
            perm[i] = i == d ? 0 : i < d ? i + 1 : i;
    }
    return tensor_permute(x, perm, x->ndim, err);
}

tensor *tensor_index_add(tensor *x, int dim, const tensor *idx, tensor *src, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF], b3[TENSOR_SHAPE_BUF];
    int d = dim_of("index_add", dim, x, err);
    if (d < 0)
        return NULL;
    int ok = idx->ndim == 1 && src->ndim == x->ndim;
    for (int k = 0; ok && k < x->ndim; k++)
        ok = src->shape[k] == (k == d ? idx->shape[0] : x->shape[k]);
    if (!ok) {
        eng_fail(err, ERR_SHAPE, "index_add: source %s does not fit target %s with index %s along dimension %d "
                 "(the source must be the target's shape with dimension %d the index's length)",
                 SHAPE(src, b1), SHAPE(x, b2), SHAPE(idx, b3), d, d);
        return NULL;
    }
    tensor *xf = move_front(x, d, 0, err), *sf = xf ? move_front(src, d, 0, err) : NULL;
    tensor *r = sf ? tensor_index_add_rows(xf, idx, sf, err) : NULL;
    tensor *out = r ? move_front(r, d, 1, err) : NULL;
    tensor_decref(xf);
    tensor_decref(sf);
    tensor_decref(r);
    return out;
}

tensor *tensor_scatter_add(tensor *x, int dim, const tensor *idx, tensor *src, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF], b3[TENSOR_SHAPE_BUF];
    int d = dim_of("scatter_add", dim, x, err);
    if (d < 0)
        return NULL;
    if (!is_int_dtype(idx->dtype)) {
        eng_fail(err, ERR_TYPE, "scatter_add: the index must be an integer tensor, got %s",
                 tensor_dtype_name(idx->dtype));
        return NULL;
    }
    int ok = idx->ndim == x->ndim && src->ndim == x->ndim;
    for (int k = 0; ok && k < x->ndim; k++)
        ok = idx->shape[k] == src->shape[k] && (k == d || idx->shape[k] <= x->shape[k]);
    if (!ok) {
        eng_fail(err, ERR_SHAPE, "scatter_add: index %s and source %s must have one shape, no larger than the "
                 "target %s outside dimension %d", SHAPE(idx, b1), SHAPE(src, b2), SHAPE(x, b3), d);
        return NULL;
    }
    int64_t lo = 0, hi = -1;
    if (tensor_numel(idx) > 0) {
        if (tensor_int_range(idx, &lo, &hi, err) < 0)
            return NULL;
        if (lo < 0 || hi >= x->shape[d]) {
            eng_fail(err, ERR_INDEX, "scatter_add: index %lld is out of range for dimension %d of size %lld",
                     (long long)(lo < 0 ? lo : hi), d, (long long)x->shape[d]);
            return NULL;
        }
    }
    const eng_backend *prev = tensor_place(idx->storage->backend);
    /* each source element's flat position in the contiguous target */
    int64_t xstride[TENSOR_MAXDIM];
    tensor_contiguous_strides(x->ndim, x->shape, xstride);
    tensor *pos = tensor_cast(idx, DT_I64, err), *t = NULL, *out = NULL, *xs = NULL, *ss = NULL, *pf = NULL;
    tensor *r = NULL;
    if (pos && xstride[d] != 1) {
        t = tensor_binary_scalar(OP_MUL, pos, (double)xstride[d], 0, 0, err);
        tensor_decref(pos);
        pos = t;
    }
    for (int k = 0; pos && k < x->ndim; k++) {
        if (k == d || idx->shape[k] == 1)
            continue;
        int64_t shp[TENSOR_MAXDIM];
        for (int j = 0; j < x->ndim; j++)
            shp[j] = j == k ? idx->shape[k] : 1;
        tensor *ar = tensor_arange(0, (double)idx->shape[k], 1, DT_I64, err);
        tensor *ar2 = ar ? tensor_binary_scalar(OP_MUL, ar, (double)xstride[k], 0, 0, err) : NULL;
        tensor *arv = ar2 ? tensor_reshape(ar2, x->ndim, shp, err) : NULL;
        t = arv ? tensor_binary(OP_ADD, pos, arv, err) : NULL;
        tensor_decref(ar);
        tensor_decref(ar2);
        tensor_decref(arv);
        tensor_decref(pos);
        pos = t;
    }
    int64_t one[2] = {tensor_numel(x), 1}, srows[2] = {tensor_numel(src), 1}, pn[1] = {tensor_numel(idx)};
    if (pos && (xs = tensor_reshape(x, 2, one, err)) && (ss = tensor_reshape(src, 2, srows, err)) &&
        (pf = tensor_reshape(pos, 1, pn, err)) && (r = tensor_index_add_rows(xs, pf, ss, err)))
        out = tensor_reshape(r, x->ndim, x->shape, err);
    tensor_decref(pos);
    tensor_decref(xs);
    tensor_decref(ss);
    tensor_decref(pf);
    tensor_decref(r);
    tensor_place(prev);
    return out;
}

/* ---- one_hot ---- */

tensor *tensor_one_hot(const tensor *idx, int64_t n, eng_error *err)
{
    if (!is_int_dtype(idx->dtype)) {
        eng_fail(err, ERR_TYPE, "one_hot: the indices must be an integer tensor, got %s",
                 tensor_dtype_name(idx->dtype));
        return NULL;
    }
    if (idx->ndim >= TENSOR_MAXDIM) {
        eng_fail(err, ERR_SHAPE, "one_hot: indices of %d dimensions leave no room for the classes", idx->ndim);
        return NULL;
    }
    int64_t lo = 0, hi = -1;
    if (tensor_numel(idx) > 0 && tensor_int_range(idx, &lo, &hi, err) < 0)
        return NULL;
    if (n < 0) { /* as PyTorch: one more than the largest index */
        if (n != -1) {
            eng_fail(err, ERR_VALUE, "one_hot: the number of classes must be positive (or -1: inferred), got %lld",
                     (long long)n);
            return NULL;
        }
        n = hi + 1;
    }
    if (lo < 0 || hi >= n) {
        eng_fail(err, ERR_INDEX, "one_hot: index %lld is out of range for %lld classes", (long long)(lo < 0 ? lo : hi),
                 (long long)n);
        return NULL;
    }
    const eng_backend *prev = tensor_place(idx->storage->backend);
    tensor *col = tensor_unsqueeze((tensor *)idx, idx->ndim, err);
    tensor *ar = col ? tensor_arange(0, (double)n, 1, DT_I64, err) : NULL;
    tensor *eq = ar ? tensor_binary(OP_EQ, col, ar, err) : NULL;
    tensor *out = eq ? tensor_cast(eq, DT_I64, err) : NULL;
    tensor_decref(col);
    tensor_decref(ar);
    tensor_decref(eq);
    tensor_place(prev);
    return out;
}

/* ---- repeat, tile, repeat_interleave ---- */

tensor *tensor_repeat(tensor *x, int n, const int64_t *reps, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF];
    if (n < x->ndim) {
        eng_fail(err, ERR_VALUE, "repeat: %d repeat counts for a %d-d tensor %s: give at least one per dimension "
                 "(tile pads them with ones)", n, x->ndim, SHAPE(x, b1));
        return NULL;
    }
    if (2 * n > TENSOR_MAXDIM && n > 0) { /* the interleaved view needs 2n dims; fold to fit */
        int64_t shp[TENSOR_MAXDIM];
        for (int k = 0; k < n; k++)
            if (reps[k] < 0) {
                eng_fail(err, ERR_VALUE, "repeat: repeat count %lld is negative", (long long)reps[k]);
                return NULL;
            }
        if (n > TENSOR_MAXDIM) {
            eng_fail(err, ERR_VALUE, "repeat: %d repeat counts; at most %d dimensions are supported", n,
                     TENSOR_MAXDIM);
            return NULL;
        }
        /* repeat one dimension at a time */
        int pad = n - x->ndim;
        for (int k = 0; k < n; k++)
            shp[k] = k < pad ? 1 : x->shape[k - pad];
        tensor *cur = tensor_reshape(x, n, shp, err);
        for (int k = 0; cur && k < n; k++) { /* dimension k: reps[k] copies joined by cat */
            if (reps[k] == 1)
                continue;
            if (reps[k] > (1 << 24)) {
                eng_fail(err, ERR_VALUE, "repeat: repeat count %lld is too large", (long long)reps[k]);
                tensor_decref(cur);
                return NULL;
            }
            tensor *next = NULL;
            if (reps[k] == 0)
                next = tensor_slice(cur, k, 0, 0, 1, err);
            else {
                tensor **copies = malloc(sizeof *copies * (size_t)reps[k]);
                if (!copies)
                    eng_fail(err, ERR_MEMORY, "repeat: out of memory");
                else {
                    for (int64_t r = 0; r < reps[k]; r++)
                        copies[r] = cur;
                    next = tensor_cat(copies, (int)reps[k], k, err);
                    free(copies);
                }
            }
            tensor_decref(cur);
            cur = next;
        }
        return cur;
    }
    int64_t view[TENSOR_MAXDIM], big[TENSOR_MAXDIM], outs[TENSOR_MAXDIM], total = 1;
    int pad = n - x->ndim;
    for (int k = 0; k < n; k++) {
        int64_t s = k < pad ? 1 : x->shape[k - pad];
        if (reps[k] < 0) {
            eng_fail(err, ERR_VALUE, "repeat: repeat count %lld is negative", (long long)reps[k]);
            return NULL;
        }
        view[2 * k] = 1;
        view[2 * k + 1] = s;
        big[2 * k] = reps[k];
        big[2 * k + 1] = s;
        if (__builtin_mul_overflow(s, reps[k], &outs[k])) {
            eng_fail(err, ERR_MEMORY, "repeat: the result's size overflows");
            return NULL;
        }
    }
    for (int k = 0; k < n && total; k++) /* the view below must count its elements in an int64 too */
        if (outs[k] == 0)
            total = 0;
    for (int k = 0; k < n && total; k++)
        if (__builtin_mul_overflow(total, outs[k], &total)) {
            eng_fail(err, ERR_MEMORY, "repeat: the result's size overflows");
            return NULL;
        }
    tensor *v = tensor_reshape(x, 2 * n, view, err);
    tensor *e = v ? tensor_expand(v, 2 * n, big, err) : NULL;
    tensor *out = e ? tensor_reshape(e, n, outs, err) : NULL;
    tensor_decref(v);
    tensor_decref(e);
    return out;
}

tensor *tensor_tile(tensor *x, int n, const int64_t *reps, eng_error *err)
{
    int64_t full[TENSOR_MAXDIM];
    int m = n > x->ndim ? n : x->ndim;
    if (m > TENSOR_MAXDIM) {
        eng_fail(err, ERR_VALUE, "tile: %d repeat counts; at most %d dimensions are supported", n, TENSOR_MAXDIM);
        return NULL;
    }
    for (int k = 0; k < m; k++)
        full[k] = k < m - n ? 1 : reps[k - (m - n)];
    return tensor_repeat(x, m, full, err);
}

tensor *tensor_repeat_interleave(tensor *x, int64_t r, int dim, eng_error *err)
{
    if (r < 0) {
        eng_fail(err, ERR_VALUE, "repeat_interleave: repeat count %lld is negative", (long long)r);
        return NULL;
    }
    tensor *src = x;
    int d;
    if (dim == TENSOR_ALLDIMS) { /* NumPy's and PyTorch's default: the flattened tensor */
        if (!(src = tensor_flatten(x, err)))
            return NULL;
        d = 0;
    } else {
        if ((d = dim_of("repeat_interleave", dim, x, err)) < 0)
            return NULL;
        tensor_incref(src);
    }
    if (src->ndim >= TENSOR_MAXDIM) {
        tensor_decref(src);
        eng_fail(err, ERR_SHAPE, "repeat_interleave: a %d-d tensor has no room for the repeat", src->ndim);
        return NULL;
    }
    int64_t big[TENSOR_MAXDIM], outs[TENSOR_MAXDIM], total = 1;
    for (int k = 0, j = 0; k < src->ndim; k++) {
        big[j++] = src->shape[k];
        if (k == d)
            big[j++] = r;
        outs[k] = src->shape[k];
        if (k == d && __builtin_mul_overflow(src->shape[k], r, &outs[k]))
            total = -1;
        else if (total > 0 && outs[k] != 0 && __builtin_mul_overflow(total, outs[k], &total))
            total = -1;
    }
    if (total < 0) { /* the expanded view must count its elements in an int64 too */
        tensor_decref(src);
        eng_fail(err, ERR_MEMORY, "repeat_interleave: the result's size overflows");
        return NULL;
    }
    tensor *u = tensor_unsqueeze(src, d + 1, err);
    tensor *e = u ? tensor_expand(u, src->ndim + 1, big, err) : NULL;
    tensor *out = e ? tensor_reshape(e, src->ndim, outs, err) : NULL;
    tensor_decref(src);
    tensor_decref(u);
    tensor_decref(e);
    return out;
}

/* ---- flip, roll ---- */

tensor *tensor_flip(tensor *x, const int *dims, int n, eng_error *err)
{
    int seen[TENSOR_MAXDIM] = {0};
    tensor *cur = x;
    tensor_incref(cur);
    for (int i = 0; i < n; i++) {
        int d = dim_of("flip", dims[i], x, err);
        if (d < 0 || seen[d]++) {
            if (d >= 0)
                eng_fail(err, ERR_VALUE, "flip: dimension %d is given twice", dims[i]);
            tensor_decref(cur);
            return NULL;
        }
        int64_t len = x->shape[d];
        tensor *next = tensor_slice(cur, d, len - 1, -len - 1, -1, err);
        tensor_decref(cur);
        if (!(cur = next))
            return NULL;
    }
    return cur;
}

tensor *tensor_roll(tensor *x, int64_t shift, int dim, eng_error *err)
{
    if (dim == TENSOR_ALLDIMS) { /* PyTorch and NumPy: roll the flattened tensor, keep the shape */
        tensor *f = tensor_flatten(x, err);
        tensor *r = f ? tensor_roll(f, shift, 0, err) : NULL;
        tensor *out = r ? tensor_reshape(r, x->ndim, x->shape, err) : NULL;
        tensor_decref(f);
        tensor_decref(r);
        return out;
    }
    int d = dim_of("roll", dim, x, err);
    if (d < 0)
        return NULL;
    int64_t len = x->shape[d];
    int64_t s = len ? ((shift % len) + len) % len : 0;
    if (s == 0) /* a copy all the same (recorded, as a cat of one) */
        return tensor_cat(&x, 1, d, err);
    tensor *parts[2];
    parts[0] = tensor_slice(x, d, len - s, len, 1, err);
    parts[1] = parts[0] ? tensor_slice(x, d, 0, len - s, 1, err) : NULL;
    tensor *out = parts[1] ? tensor_cat(parts, 2, d, err) : NULL;
    tensor_decref(parts[0]);
    tensor_decref(parts[1]);
    return out;
}

/* ---- tril, triu, diag ---- */

/* bool [R, C]: col - row <= k (lower) or >= k (upper, when upper) or == k (diag, 2) */
static tensor *band_mask(int64_t rows, int64_t cols, int64_t k, int kind, eng_error *err)
{
    int64_t rs[2] = {rows, 1};
    tensor *r = tensor_arange(0, (double)rows, 1, DT_I64, err);
    tensor *rc = r ? tensor_reshape(r, 2, rs, err) : NULL;
    tensor *c = rc ? tensor_arange(0, (double)cols, 1, DT_I64, err) : NULL;
    tensor *diff = c ? tensor_binary(OP_SUB, c, rc, err) : NULL;
    tensor *m = diff ? tensor_binary_scalar(kind == 0 ? OP_LE : kind == 1 ? OP_GE : OP_EQ, diff, (double)k, 0, 0, err)
                     : NULL;
    tensor_decref(r);
    tensor_decref(rc);
    tensor_decref(c);
    tensor_decref(diff);
    return m;
}

tensor *tensor_tri(tensor *x, int64_t k, int upper, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF];
    const char *op = upper ? "triu" : "tril";
    if (x->ndim < 2) {
        eng_fail(err, ERR_SHAPE, "%s: needs a matrix (or a batch of them), got shape %s", op, SHAPE(x, b1));
        return NULL;
    }
    const eng_backend *prev = tensor_place(x->storage->backend);
    tensor *m = band_mask(x->shape[x->ndim - 2], x->shape[x->ndim - 1], k, upper, err);
    tensor *z = m ? tensor_scalar(0, x->dtype, err) : NULL;
    tensor *out = z ? tensor_where(m, x, z, err) : NULL;
    tensor_decref(m);
    tensor_decref(z);
    tensor_place(prev);
    return out;
}

tensor *tensor_diag(tensor *x, int64_t k, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF];
    if (k > ((int64_t)1 << 40) || k < -((int64_t)1 << 40)) {
        eng_fail(err, ERR_VALUE, "diag: diagonal %lld is too far from the main one", (long long)k);
        return NULL;
    }
    const eng_backend *prev = tensor_place(x->storage->backend);
    tensor *out = NULL;
    int64_t ak = k < 0 ? -k : k;
    if (x->ndim == 1) { /* a square matrix with x on diagonal k */
        int64_t n = x->shape[0], m = n + ak, zs[1] = {ak};
        tensor *z = tensor_full(x->dtype, 1, zs, 0, err);
        tensor *parts[2] = {x, z};
        tensor *vp = z ? tensor_cat(parts, 2, 0, err) : NULL; /* x, then |k| zeros */
        tensor *col = vp ? tensor_unsqueeze(vp, k >= 0 ? 1 : 0, err) : NULL;
        tensor *mask = col ? band_mask(m, m, k, 2, err) : NULL;
        tensor *zero = mask ? tensor_scalar(0, x->dtype, err) : NULL;
        out = zero ? tensor_where(mask, col, zero, err) : NULL;
        tensor_decref(z);
        tensor_decref(vp);
        tensor_decref(col);
        tensor_decref(mask);
        tensor_decref(zero);
    } else if (x->ndim == 2) { /* diagonal k of a matrix: a gather of the flattened matrix */
        int64_t R = x->shape[0], C = x->shape[1];
        int64_t r0 = k >= 0 ? 0 : -k, c0 = k >= 0 ? k : 0;
        int64_t len = R - r0 < C - c0 ? R - r0 : C - c0;
        if (len < 0)
            len = 0;
        tensor *f = tensor_flatten(x, err);
        tensor *ar = f ? tensor_arange((double)(r0 * C + c0), (double)(r0 * C + c0 + len * (C + 1)), (double)(C + 1),
                                       DT_I64, err)
                       : NULL;
        if (ar && tensor_numel(ar) != len) { /* C + 1 steps of a float arange: trust len */
            tensor *s = tensor_slice(ar, 0, 0, len, 1, err);
            tensor_decref(ar);
            ar = s;
        }
        out = ar ? tensor_gather(f, ar, err) : NULL;
        tensor_decref(f);
        tensor_decref(ar);
    } else
        eng_fail(err, ERR_SHAPE, "diag: needs a 1-d tensor (to make a diagonal matrix) or a 2-d one (to take its "
                 "diagonal), got shape %s", SHAPE(x, b1));
    tensor_place(prev);
    return out;
}

/* ---- masked_fill ---- */

tensor *tensor_masked_fill(tensor *x, const tensor *mask, const tensor *v, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (mask->dtype != DT_BOOL) {
        eng_fail(err, ERR_TYPE, "masked_fill: the mask must be a bool tensor (a comparison such as x > 0), got %s",
                 tensor_dtype_name(mask->dtype));
        return NULL;
    }
    if (v->ndim != 0) {
        eng_fail(err, ERR_SHAPE, "masked_fill: the value must be a number or a 0-d tensor, got shape %s",
                 SHAPE(v, b1));
        return NULL;
    }
    int ok = mask->ndim <= x->ndim;
    for (int k = 0; ok && k < mask->ndim; k++) {
        int64_t ms = mask->shape[mask->ndim - 1 - k];
        ok = ms == 1 || ms == x->shape[x->ndim - 1 - k];
    }
    if (!ok) {
        eng_fail(err, ERR_SHAPE, "masked_fill: mask of shape %s does not broadcast to the tensor's shape %s",
                 SHAPE(mask, b1), SHAPE(x, b2));
        return NULL;
    }
    tensor *vc = tensor_cast(v, x->dtype, err);
    tensor *out = vc ? tensor_where(mask, vc, x, err) : NULL;
    tensor_decref(vc);
    return out;
}
