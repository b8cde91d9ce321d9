/* tensor_index.c — NumPy indexing of tensors: x[items] and x[items] (op)= v, where an
 * item is an int, a slice, None (a new axis), ... (an ellipsis), an integer tensor or a
 * boolean mask.
 *
 * Basic items (ints, slices, None, ...) give a view. Integer tensors and masks are
 * "advanced": a mask over k dimensions stands for the row-major positions of its true
 * elements (a 1-D index over those k dimensions, tensor_mask_positions); every advanced
 * index is checked and wrapped (negative from the end), the advanced indices broadcast
 * together to a shape B, and they fold into one flat index over the advanced dimensions
 * moved to the front of the view. A read is then one gather (autograd records it: its
 * gradient is an index_put that accumulates), an assignment one index_put. The result's
 * B dimensions stand where the advanced indices stood when those (and the ints, once a
 * tensor index is present) are adjacent, else first: NumPy's rule.
 */
#include <stdlib.h>
#include <string.h>
#include "engine/tensor/tensor_impl.h"
#include "engine/tensor/record.h"

#define SHAPE_OF(t, buf) tensor_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

/* one advanced index once the items are walked */
typedef struct adv_index {
    const tensor *t; /* the integer tensor or the mask (borrowed) */
    int pos;         /* its first dimension in the view */
    int ndims;       /* dimensions it covers: 1, or a mask's ndim */
    int xdim;        /* that dimension in x, for messages */
    int item;        /* its item, for the caller's location */
} adv_index;

/* the basic part applied and the advanced part folded into one flat index */
typedef struct index_plan {
    tensor *view;                 /* x with the basic items applied, advanced dims first */
    int lead;                     /* leading dims of view the flat index covers (0: none) */
    tensor *flat;                 /* contiguous i64 [nsel]: flat indices over them */
    int nb;                       /* the advanced indices' broadcast shape B */
    int64_t bshape[TENSOR_MAXDIM];
    int front;                    /* B's dims go at this position of the result */
} index_plan;

static void plan_free(index_plan *p)
{
    tensor_decref(p->view);
    tensor_decref(p->flat);
    memset(p, 0, sizeof *p);
}

/* ---- the backend entries' front ends ---- */

tensor *tensor_mask_positions(const tensor *mask, eng_error *err)
{
    if (mask->dtype != DT_BOOL) {
        eng_fail(err, ERR_TYPE, "mask_positions: the mask must be bool, got %s", tensor_dtype_name(mask->dtype));
        return NULL;
    }
    tensor *m = tensor_contiguous((tensor *)mask, err);
    if (!m)
        return NULL;
    tensor *out = NULL, *cnt = NULL;
    double count = 0;
    const eng_backend *prev = tensor_place(m->storage->backend);
    int64_t n = tensor_numel(m);
    if (n > 0) {
        tensor *flat = tensor_reshape(m, 1, &n, err);
        cnt = flat ? tensor_reduce(OP_SUM, flat, TENSOR_ALLDIMS, 0, err) : NULL;
        tensor_decref(flat);
        if (!cnt || tensor_item(cnt, &count, err) < 0)
            goto done;
    }
    int64_t c = (int64_t)count;
    if (!(out = tensor_empty(DT_I64, 1, &c, err)))
        goto done;
    if (c > 0 && m->storage->backend->mask_positions(out, m, err) < 0) {
        tensor_decref(out);
        out = NULL;
    }
done:
    tensor_place(prev);
    tensor_decref(cnt);
    tensor_decref(m);
    return out;
}

int tensor_index_put(tensor *dst, int nlead, const tensor *idx, const tensor *src, int accumulate, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (TENSOR_RECORDS(dst))
        return tensor_recorder_hooks->refuse_inplace(dst, err);
    if (nlead < 1 || nlead > dst->ndim || idx->dtype != DT_I64 || idx->ndim != 1 || !tensor_is_contiguous(idx) ||
        src->dtype != dst->dtype || !tensor_is_contiguous(src) || src->ndim != dst->ndim - nlead + 1 ||
        src->shape[0] != idx->shape[0])
        return eng_fail(err, ERR_SHAPE, "index_put: rows %s cannot go into %s at %lld indices over %d dimensions",
                        tensor_shape_str(src->ndim, src->shape, b1, sizeof b1),
                        tensor_shape_str(dst->ndim, dst->shape, b2, sizeof b2), (long long)tensor_numel(idx), nlead);
    for (int d = nlead; d < dst->ndim; d++)
        if (src->shape[d - nlead + 1] != dst->shape[d])
            return eng_fail(err, ERR_SHAPE, "index_put: rows %s do not match %s",
                            tensor_shape_str(src->ndim, src->shape, b1, sizeof b1),
                            tensor_shape_str(dst->ndim, dst->shape, b2, sizeof b2));
    if (accumulate && dst->dtype != DT_F32 && dst->dtype != DT_F64 && dst->dtype != DT_I32 && dst->dtype != DT_I64)
        return eng_fail(err, ERR_TYPE, "index_put: accumulating needs f32, f64, i32 or i64, got %s",
                        tensor_dtype_name(dst->dtype));
    const tensor *ops[3] = {dst, idx, src};
    if (!tensor_common_backend("index_put", ops, 3, err))
        return -1;
    if (tensor_numel(src) == 0)
        return 0;
    return dst->storage->backend->index_put(dst, nlead, idx, src, accumulate, err);
}

/* ---- walking the items ---- */

/* a new reference to t on backend be (index tensors may live on the CPU for a device x) */
static tensor *on_backend(const tensor *t, const eng_backend *be, eng_error *err)
{
    return tensor_to(t, be, err);
}

tensor *tensor_index_checked(const tensor *idx, int64_t size, int xdim, const eng_backend *be, eng_error *err)
{
    tensor *t = on_backend(idx, be, err), *i64 = NULL, *r = NULL;
    if (!t)
        return NULL;
    const eng_backend *prev = tensor_place(be);
    if (!(i64 = tensor_cast(t, DT_I64, err)))
        goto done;
    if (tensor_numel(i64) > 0) {
        int64_t lo = 0, hi = -1;
        if (tensor_int_range(i64, &lo, &hi, err) < 0)
            goto done;
        if (lo < -size || hi >= size) {
            eng_fail(err, ERR_INDEX, "index %lld is out of range for dimension %d of size %lld",
                     (long long)(lo < -size ? lo : hi), xdim, (long long)size);
            goto done;
        }
        if (lo < 0) { /* i + size * (i < 0) */
            tensor *neg = tensor_binary_scalar(OP_LT, i64, 0, 0, 0, err);
            tensor *negi = neg ? tensor_cast(neg, DT_I64, err) : NULL;
            tensor *add = negi ? tensor_binary_scalar(OP_MUL, negi, (double)size, 0, 0, err) : NULL;
            r = add ? tensor_binary(OP_ADD, i64, add, err) : NULL;
            tensor_decref(neg);
            tensor_decref(negi);
            tensor_decref(add);
            goto done;
        }
    }
    r = i64;
    i64 = NULL;
done:
    tensor_place(prev);
    tensor_decref(t);
    tensor_decref(i64);
    return r;
}

/* Applies the basic items to x and folds the advanced ones into p; -1 with err and
 * *bad the failing item (-1: the whole index). */
static int plan_index(tensor *x, const tensor_index_item *items, int n, index_plan *p, int *bad, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    memset(p, 0, sizeof *p);
    *bad = -1;
    int consumed = 0, ellipsis = -1, any_tensor = 0;
    for (int i = 0; i < n; i++) {
        const tensor_index_item *it = &items[i];
        switch (it->kind) {
        case TIX_INT: case TIX_SLICE: consumed++; break;
        case TIX_NEWAXIS: break;
        case TIX_ELLIPSIS:
            if (ellipsis >= 0) {
                *bad = i;
                return eng_fail(err, ERR_INDEX, "an index can have only one ellipsis ('...')");
            }
            ellipsis = i;
            break;
        case TIX_TENSOR:
            any_tensor = 1;
            if (it->t->dtype == DT_BOOL) {
                if (it->t->ndim == 0) {
                    *bad = i;
                    return eng_fail(err, ERR_INDEX, "a 0-d boolean index is not supported; use a 1-d mask or where()");
                }
                consumed += it->t->ndim;
            } else if (it->t->dtype == DT_I32 || it->t->dtype == DT_I64 || it->t->dtype == DT_U8 ||
                       tensor_numel(it->t) == 0) { /* an empty literal x[{}] is f32: NumPy's x[[]] */
                consumed++;
            } else {
                *bad = i;
                return eng_fail(err, ERR_TYPE, "an index tensor must be an integer (i32, i64, u8) or bool tensor, "
                                "got %s", tensor_dtype_name(it->t->dtype));
            }
            break;
        }
        if (consumed > x->ndim) {
            *bad = i;
            int total = consumed;
            for (int k = i + 1; k < n; k++)
                total += items[k].kind == TIX_INT || items[k].kind == TIX_SLICE ||
                         (items[k].kind == TIX_TENSOR && items[k].t->dtype != DT_BOOL) ? 1
                         : items[k].kind == TIX_TENSOR ? items[k].t->ndim : 0;
            return eng_fail(err, ERR_INDEX, "too many indices for a %d-d tensor: %d given", x->ndim, total);
        }
    }
    const eng_backend *be = x->storage->backend;
    tensor *v = x;
    tensor_incref(v);
    adv_index adv[TENSOR_MAXDIM];
    int nadv = 0, dim = 0, xdim = 0, first_adv_item = -1, last_adv_item = -1, first_pos = 0, adjacent = 1;
    for (int i = 0; i < n; i++) {
        const tensor_index_item *it = &items[i];
        tensor *next = NULL;
        int is_adv = it->kind == TIX_TENSOR || (it->kind == TIX_INT && any_tensor);
        if (is_adv) {
            if (first_adv_item < 0) {
                first_adv_item = i;
                first_pos = dim;
            } else if (last_adv_item != i - 1)
                adjacent = 0;
            last_adv_item = i;
        } else if (it->kind == TIX_ELLIPSIS && x->ndim - consumed == 0) {
            if (last_adv_item == i - 1)
                last_adv_item = i; /* an empty ellipsis separates nothing */
        }
        switch (it->kind) {
        case TIX_ELLIPSIS:
            dim += x->ndim - consumed;
            xdim += x->ndim - consumed;
            continue;
        case TIX_SLICE:
            next = tensor_slice(v, dim, it->start, it->stop, it->step, err);
            dim++;
            xdim++;
            break;
        case TIX_NEWAXIS:
            if (v->ndim >= TENSOR_MAXDIM) {
                eng_fail(err, ERR_INDEX, "None: a tensor has at most %d dimensions", TENSOR_MAXDIM);
                break;
            }
            next = tensor_unsqueeze(v, dim, err);
            dim++;
            break;
        case TIX_INT: {
            int64_t size = v->shape[dim];
            if (it->i < -size || it->i >= size)
                eng_fail(err, ERR_INDEX, "index %lld is out of range for dimension %d of size %lld", (long long)it->i,
                         xdim, (long long)size);
            else
                next = tensor_select(v, dim, it->i, err);
            xdim++;
            break;
        }
        case TIX_TENSOR: {
            int k = it->t->dtype == DT_BOOL ? it->t->ndim : 1;
            if (k > 1 || it->t->dtype == DT_BOOL) {
                int ok = 1;
                for (int d = 0; d < k; d++)
                    ok = ok && it->t->shape[d] == v->shape[dim + d];
                if (!ok) {
                    char b3[TENSOR_SHAPE_BUF];
                    eng_fail(err, ERR_SHAPE, "boolean index of shape %s does not match the indexed dimensions "
                             "%s of the tensor of shape %s", tensor_shape_str(k, it->t->shape, b1, sizeof b1),
                             tensor_shape_str(k, v->shape + dim, b2, sizeof b2), SHAPE_OF(x, b3));
                    break;
                }
            }
            adv[nadv++] = (adv_index){it->t, dim, k, xdim, i};
            dim += k;
            xdim += k;
            next = v;
            tensor_incref(next);
            break;
        }
        }
        if (!next) {
            *bad = i;
            tensor_decref(v);
            return -1;
        }
        tensor_decref(v);
        v = next;
    }
    p->view = v;
    if (nadv == 0)
        return 0;
    /* the advanced dims to the front, in order; the others after, in order */
    int perm[TENSOR_MAXDIM], np = 0, lead = 0;
    char is_adv_dim[TENSOR_MAXDIM] = {0};
    for (int a = 0; a < nadv; a++)
        for (int d = 0; d < adv[a].ndims; d++) {
            perm[np++] = adv[a].pos + d;
            is_adv_dim[adv[a].pos + d] = 1;
        }
    lead = np;
    for (int d = 0; d < v->ndim; d++)
        if (!is_adv_dim[d])
            perm[np++] = d;
    int64_t sizes[TENSOR_MAXDIM]; /* each advanced index's range */
    for (int a = 0; a < nadv; a++) {
        sizes[a] = 1;
        for (int d = 0; d < adv[a].ndims; d++)
            sizes[a] *= v->shape[adv[a].pos + d];
    }
    tensor *vp = tensor_permute(v, perm, v->ndim, err);
    if (!vp) {
        plan_free(p);
        return -1;
    }
    tensor_decref(p->view);
    p->view = v = vp;
    p->lead = lead;
    p->front = adjacent ? first_pos : 0;
    /* each advanced index as an i64 index over its own dims, then folded */
    tensor *flat = NULL;
    const eng_backend *prev = tensor_place(be);
    int rc = -1;
    p->nb = 0;
    for (int a = 0; a < nadv; a++) {
        int64_t size = sizes[a];
        tensor *ia;
        if (adv[a].t->dtype == DT_BOOL) {
            tensor *m = on_backend(adv[a].t, be, err);
            ia = m ? tensor_mask_positions(m, err) : NULL;
            tensor_decref(m);
        } else
            ia = tensor_index_checked(adv[a].t, size, adv[a].xdim, be, err);
        if (!ia) {
            *bad = adv[a].item;
            goto done;
        }
        /* B: the broadcast of the index shapes */
        int nd = ia->ndim > p->nb ? ia->ndim : p->nb;
        int64_t bs[TENSOR_MAXDIM];
        for (int d = 0; d < nd; d++) {
            int da = d - (nd - ia->ndim), db = d - (nd - p->nb);
            int64_t sa = da >= 0 ? ia->shape[da] : 1, sb = db >= 0 ? p->bshape[db] : 1;
            if (sa != sb && sa != 1 && sb != 1) {
                eng_fail(err, ERR_SHAPE, "shape mismatch: index tensors of shapes %s and %s cannot be broadcast "
                         "together", tensor_shape_str(p->nb, p->bshape, b1, sizeof b1), SHAPE_OF(ia, b2));
                *bad = adv[a].item;
                tensor_decref(ia);
                goto done;
            }
            bs[d] = sa == 1 ? sb : sa;
        }
        p->nb = nd;
        memcpy(p->bshape, bs, sizeof bs);
        if (!flat) {
            flat = ia;
            continue;
        }
        tensor *scaled = tensor_binary_scalar(OP_MUL, flat, (double)size, 0, 0, err);
        tensor *sum = scaled ? tensor_binary(OP_ADD, scaled, ia, err) : NULL;
        tensor_decref(scaled);
        tensor_decref(ia);
        tensor_decref(flat);
        if (!(flat = sum))
            goto done;
    }
    if (p->nb + (v->ndim - lead) > TENSOR_MAXDIM) {
        eng_fail(err, ERR_INDEX, "the index gives more than %d dimensions", TENSOR_MAXDIM);
        goto done;
    }
    int64_t nsel = tensor_numel(flat); /* flat has shape B: one index, or the broadcast of the sums */
    tensor *fx = tensor_contiguous(flat, err);
    tensor *fc = fx ? tensor_reshape(fx, 1, &nsel, err) : NULL;
    tensor_decref(fx);
    if (!(p->flat = fc))
        goto done;
    rc = 0;
done:
    tensor_place(prev);
    tensor_decref(flat);
    if (rc)
        plan_free(p);
    return rc;
}

/* the result's shape: B at p->front among the view's dims after the lead */
static int result_shape(const index_plan *p, int64_t *shape)
{
    int nd = 0, nrest = p->view->ndim - p->lead;
    for (int d = 0; d < p->front; d++)
        shape[nd++] = p->view->shape[p->lead + d];
    for (int d = 0; d < p->nb; d++)
        shape[nd++] = p->bshape[d];
    for (int d = p->front; d < nrest; d++)
        shape[nd++] = p->view->shape[p->lead + d];
    return nd;
}

/* the selected rows, [nsel] + the view's dims after the lead (recorded by autograd) */
static tensor *gather_rows(const index_plan *p, eng_error *err)
{
    int64_t shape[TENSOR_MAXDIM], L = 1;
    int nd = 0;
    for (int d = 0; d < p->lead; d++)
        L *= p->view->shape[d];
    shape[nd++] = L;
    for (int d = p->lead; d < p->view->ndim; d++)
        shape[nd++] = p->view->shape[d];
    tensor *r = p->lead == 1 ? p->view : tensor_reshape(p->view, nd, shape, err); /* one dim: no copy */
    if (r == p->view)
        tensor_incref(r);
    tensor *g = r ? tensor_gather(r, p->flat, err) : NULL;
    tensor_decref(r);
    return g;
}

/* rows [nsel] + rest <-> the result's layout (dims moved so B stands at front) */
static tensor *rows_to_result(const index_plan *p, tensor *rows, int to_result, eng_error *err)
{
    int nrest = p->view->ndim - p->lead, nd = p->nb + nrest;
    int64_t shape[TENSOR_MAXDIM];
    int perm[TENSOR_MAXDIM], np = 0;
    if (to_result) {
        for (int d = 0; d < p->nb; d++)
            shape[d] = p->bshape[d];
        for (int d = 0; d < nrest; d++)
            shape[p->nb + d] = p->view->shape[p->lead + d];
        tensor *b = tensor_reshape(rows, nd, shape, err);
        if (!b || p->front == 0)
            return b;
        for (int d = 0; d < p->front; d++)
            perm[np++] = p->nb + d;
        for (int d = 0; d < p->nb; d++)
            perm[np++] = d;
        for (int d = p->front; d < nrest; d++)
            perm[np++] = p->nb + d;
        tensor *r = tensor_permute(b, perm, nd, err);
        tensor_decref(b);
        return r;
    }
    tensor *b = rows;
    tensor_incref(b);
    if (p->front > 0) {
        for (int d = 0; d < p->nb; d++)
            perm[np++] = p->front + d;
        for (int d = 0; d < p->front; d++)
            perm[np++] = d;
        for (int d = p->front + p->nb; d < nd; d++)
            perm[np++] = d;
        tensor *q = tensor_permute(b, perm, nd, err);
        tensor_decref(b);
        if (!(b = q))
            return NULL;
    }
    shape[0] = tensor_numel(p->flat);
    for (int d = 0; d < nrest; d++)
        shape[1 + d] = p->view->shape[p->lead + d];
    tensor *r = tensor_reshape(b, 1 + nrest, shape, err);
    tensor_decref(b);
    return r;
}

tensor *tensor_index(tensor *x, const tensor_index_item *items, int n, int *bad, eng_error *err)
{
    index_plan p;
    if (plan_index(x, items, n, &p, bad, err) < 0)
        return NULL;
    if (!p.flat) {
        tensor *v = p.view;
        p.view = NULL;
        return v;
    }
    tensor *rows = gather_rows(&p, err);
    tensor *r = rows ? rows_to_result(&p, rows, 1, err) : NULL;
    tensor_decref(rows);
    plan_free(&p);
    return r;
}

int tensor_index_assign(tensor *x, const tensor_index_item *items, int n, op_id op, const tensor *src, int *bad,
                        eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    *bad = -1;
    if (TENSOR_RECORDS(x))
        return tensor_recorder_hooks->refuse_inplace(x, err);
    index_plan p;
    if (plan_index(x, items, n, &p, bad, err) < 0)
        return -1;
    int rc = -1;
    tensor *s = NULL, *se = NULL, *rows = NULL, *cur = NULL, *sum = NULL, *cast = NULL;
    const eng_backend *prev = tensor_place(x->storage->backend);
    if (!p.flat) { /* a view: the ordinary in-place paths */
        rc = op == OP_COUNT ? tensor_assign(p.view, src, err) : tensor_binary_inplace(op, p.view, src, err);
        goto done;
    }
    int64_t rshape[TENSOR_MAXDIM];
    int rnd = result_shape(&p, rshape);
    if (!(s = tensor_to(src, x->storage->backend, err)))
        goto done;
    if (!(se = tensor_expand(s, rnd, rshape, NULL))) {
        eng_fail(err, ERR_SHAPE, "shape mismatch: a value of shape %s cannot be broadcast to the indexing result of "
                 "shape %s", SHAPE_OF(src, b1), tensor_shape_str(rnd, rshape, b2, sizeof b2));
        goto done;
    }
    if (!(rows = rows_to_result(&p, se, 0, err)))
        goto done;
    if (op != OP_COUNT) { /* x[i] op= v is x[i] = x[i] op v: a repeated index takes one v */
        if (!(cur = gather_rows(&p, err)) || !(sum = tensor_binary(op, cur, rows, err)))
            goto done;
        tensor_decref(rows);
        rows = sum;
        sum = NULL;
    }
    if (!(cast = tensor_cast(rows, x->dtype, err)))
        goto done;
    rc = tensor_index_put(p.view, p.lead, p.flat, cast, 0, err);
done:
    tensor_place(prev);
    tensor_decref(s);
    tensor_decref(se);
    tensor_decref(rows);
    tensor_decref(cur);
    tensor_decref(sum);
    tensor_decref(cast);
    plan_free(&p);
    return rc;
}
