/* kk_dispatch.c — the built-in kernels' host side, shared by the CUDA and simulator
 * backends (see kk_dispatch.h). Mirrors the CPU backend's semantics and messages;
 * every launch goes through the device's kk_ops table. */
#include "cuda/kernels/kk_dispatch.h"
#include "numeric/elem.h" /* num_store: a fill value in the destination's bytes */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KK_SPLIT_MAX 1024 /* parts of one long row in a reduction */

static int kk_ctx_get(const kk_device *d, kk_ctx *c, eng_error *err)
{
    memset(c, 0, sizeof *c);
    return d->context(c, err);
}

static int kk_check(const kk_device *d, int code, const char *what, const kk_ctx *c, eng_error *err)
{
    return code ? d->fail(code, what, c, err) : 0;
}

/* ---- the iterator: tensor_merge_dims's layout, plus the contiguous fast path ---- */

static void kk_iter_init(kk_iter *it, int nop, const tensor *const *ts)
{
    const tensor *t0 = ts[0];
    memset(it, 0, sizeof *it);
    it->nop = nop;
    for (int k = 0; k < nop; k++)
        it->base[k] = (char *)ts[k]->storage->data + ts[k]->offset * (int64_t)tensor_dtype_size(ts[k]->dtype);
    it->ndim = tensor_merge_dims(nop, ts, it->shape, it->stride, &it->numel);
    it->contig = it->ndim == 1 && it->stride[0][0] == (int64_t)tensor_dtype_size(t0->dtype);
    for (int k = 1; k < nop && it->contig; k++)
        if (it->stride[k][0] != 0 && it->stride[k][0] != (int64_t)tensor_dtype_size(ts[k]->dtype))
            it->contig = 0;
}

/* ---- temporaries ---- */

tensor *kk_temp(const kk_device *d, tensor_dtype dt, int ndim, const int64_t *shape, eng_error *err)
{
    tensor *t = calloc(1, sizeof *t);
    tensor_storage *s = calloc(1, sizeof *s);
    int64_t n = 1;
    for (int k = 0; k < ndim; k++)
        n *= shape[k];
    if (!t || !s)
        goto err;
    s->refcount = 1;
    s->backend = d->be;
    s->bytes = (size_t)n * tensor_dtype_size(dt);
    s->data = d->be->alloc(s->bytes ? s->bytes : 1);
    if (!s->data)
        goto err;
    t->refcount = 1;
    t->dtype = dt;
    t->ndim = ndim;
    int64_t st = 1;
    for (int k = ndim - 1; k >= 0; k--) {
        t->shape[k] = shape[k];
        t->stride[k] = st;
        st *= shape[k];
    }
    t->storage = s;
    return t;
err:
    free(t);
    free(s);
    eng_fail(err, ERR_MEMORY, "%s: out of memory for a temporary of %lld elements", d->be->name, (long long)n);
    return NULL;
}

tensor *kk_contiguous(const kk_device *d, const tensor *t, eng_error *err)
{
    if (tensor_is_contiguous(t)) {
        tensor_incref((tensor *)t);
        return (tensor *)t;
    }
    tensor *c = kk_temp(d, t->dtype, t->ndim, t->shape, err);
    if (c && kk_copy(d, c, t, err) < 0) {
        tensor_decref(c);
        return NULL;
    }
    return c;
}

/* reads and clears the kernels' user-error flag */
static int kk_status(const kk_device *d, kk_ctx *c, int *flag, eng_error *err)
{
    int st[4] = {0};
    if (d->be->to_host(st, c->status, sizeof(int), err) < 0)
        return -1;
    *flag = st[0];
    if (st[0]) {
        int zero = 0;
        if (d->be->from_host(c->status, &zero, sizeof zero, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- elementwise ---- */

int kk_unary(const kk_device *d, op_id op, tensor *out, const tensor *x, double p0, double p1, eng_error *err)
{
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    const tensor *ts[2] = {out, x};
    kk_iter it;
    kk_iter_init(&it, 2, ts);
    return kk_check(d, d->ops->unary(&c, op, out->dtype, x->dtype, &it, p0, p1), tensor_op_name(op), &c, err);
}

int kk_binary(const kk_device *d, op_id op, tensor *out, const tensor *a, const tensor *b, eng_error *err)
{
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    const tensor *ts[3] = {out, a, b};
    kk_iter it;
    kk_iter_init(&it, 3, ts);
    if (kk_check(d, d->ops->binary(&c, op, out->dtype, a->dtype, &it), tensor_op_name(op), &c, err) < 0)
        return -1;
    if ((op == OP_DIV || op == OP_MOD) && !tensor_dtype_is_float(a->dtype) && it.numel > 0) {
        int flag;
        if (kk_status(d, &c, &flag, err) < 0)
            return -1;
        if (flag)
            return eng_fail(err, ERR_ZERODIV, "%s: integer division by zero", op == OP_MOD ? "mod" : "div");
    }
    return 0;
}

int kk_copy(const kk_device *d, tensor *dst, const tensor *src, eng_error *err)
{
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    const tensor *ts[2] = {dst, src};
    kk_iter it;
    kk_iter_init(&it, 2, ts);
    return kk_check(d, d->ops->copy(&c, dst->dtype, src->dtype, &it), "copy", &c, err);
}

int kk_fill(const kk_device *d, tensor *dst, double v, eng_error *err)
{
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    uint64_t pattern = 0;
    num_store(dst->dtype, (char *)&pattern, v); /* little-endian: the low bytes */
    const tensor *ts[1] = {dst};
    kk_iter it;
    kk_iter_init(&it, 1, ts);
    return kk_check(d, d->ops->fill(&c, (int)tensor_dtype_size(dst->dtype), pattern, &it), "fill", &c, err);
}

int kk_arange(const kk_device *d, tensor *dst, double start, double step, eng_error *err)
{
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    char *o = (char *)dst->storage->data + dst->offset * (int64_t)tensor_dtype_size(dst->dtype);
    return kk_check(d, d->ops->arange(&c, dst->dtype, o, tensor_numel(dst), start, step), "arange", &c, err);
}

int kk_random(const kk_device *d, int kind, tensor *dst, const tensor_rng *rng, int64_t lo, int64_t hi,
              eng_error *err)
{
    if (!tensor_is_contiguous(dst))
        return eng_fail(err, ERR_RUNTIME, "random: the destination must be contiguous");
    if (kind == 2 && hi <= lo)
        return eng_fail(err, ERR_VALUE, "randint: empty range [%lld, %lld)", (long long)lo, (long long)hi);
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    char *o = (char *)dst->storage->data + dst->offset * (int64_t)tensor_dtype_size(dst->dtype);
    return kk_check(d, d->ops->random(&c, kind, dst->dtype, o, tensor_numel(dst), rng->seed, rng->offset, lo,
                                      (uint64_t)hi - (uint64_t)lo), "random", &c, err);
}

int kk_where(const kk_device *d, tensor *out, const tensor *cond, const tensor *a, const tensor *b, eng_error *err)
{
    if (cond->dtype != DT_BOOL && cond->dtype != DT_U8)
        return eng_fail(err, ERR_TYPE, "where: the condition must be bool, got %s", tensor_dtype_name(cond->dtype));
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    const tensor *ts[4] = {out, cond, a, b};
    kk_iter it;
    kk_iter_init(&it, 4, ts);
    return kk_check(d, d->ops->where(&c, (int)tensor_dtype_size(out->dtype), &it), "where", &c, err);
}

/* ---- gather ---- */

int kk_gather(const kk_device *d, tensor *out, const tensor *x, const tensor *idx, int trusted, eng_error *err)
{
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    int64_t nidx = tensor_numel(idx);
    int64_t rows = x->ndim > 0 ? x->shape[0] : 1;
    tensor *iv;
    int rc = -1, flag = 0;
    if (idx->dtype == DT_I64 && tensor_is_contiguous(idx)) { /* the kernel reads it as it is */
        iv = (tensor *)idx;
        tensor_incref(iv);
    } else {
        if (!(iv = kk_temp(d, DT_I64, idx->ndim, idx->shape, err)))
            return -1;
        if (kk_copy(d, iv, idx, err) < 0)
            goto done;
    }
    int64_t *ip = (int64_t *)iv->storage->data + iv->offset;
    /* trusted indices (in range by construction) skip the check and its status read */
    if (!trusted && kk_check(d, d->ops->gather_check(&c, ip, nidx, rows), "gather", &c, err) < 0)
        goto done;
    if (!trusted && nidx > 0 && kk_status(d, &c, &flag, err) < 0)
        goto done;
    if (flag) { /* find the first bad index on the host, for the CPU's message */
        int64_t *h = malloc(sizeof(int64_t) * (size_t)nidx);
        if (!h) {
            eng_fail(err, ERR_MEMORY, "gather: out of memory");
            goto done;
        }
        if (d->be->to_host(h, ip, sizeof(int64_t) * (size_t)nidx, err) == 0) {
            for (int64_t k = 0; k < nidx; k++)
                if (h[k] < -rows || h[k] >= rows) {
                    eng_fail(err, ERR_INDEX, "index %lld is out of range for dimension 0 of size %lld",
                             (long long)h[k], (long long)rows);
                    break;
                }
        }
        free(h);
        goto done;
    }
    kk_gather_job j;
    memset(&j, 0, sizeof j);
    size_t es = tensor_dtype_size(x->dtype);
    j.esize = (int)es;
    j.rows = rows;
    j.row_stride = x->ndim > 0 ? x->stride[0] * (int64_t)es : 0;
    j.rowel = 1;
    for (int k = 1; k < x->ndim; k++) {
        j.shape[j.ndim] = x->shape[k];
        j.stride[j.ndim] = x->stride[k] * (int64_t)es;
        j.ndim++;
        j.rowel *= x->shape[k];
    }
    j.nidx = nidx;
    j.x = (const char *)x->storage->data + x->offset * (int64_t)es;
    j.idx = ip;
    j.out = (char *)out->storage->data + out->offset * (int64_t)es;
    rc = kk_check(d, d->ops->gather(&c, &j), "gather", &c, err);
done:
    tensor_decref(iv);
    return rc;
}

/* ---- indexing ---- */

int kk_mask_positions(const kk_device *d, tensor *out, const tensor *mask, eng_error *err)
{
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    const uint8_t *m = (const uint8_t *)mask->storage->data + mask->offset;
    int64_t *o = (int64_t *)out->storage->data + out->offset;
    return kk_check(d, d->ops->mask_positions(&c, m, tensor_numel(mask), o), "mask_positions", &c, err);
}

int kk_index_put(const kk_device *d, tensor *dst, int nlead, const tensor *idx, const tensor *src, int accumulate,
                 eng_error *err)
{
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    kk_index_put_job j;
    memset(&j, 0, sizeof j);
    size_t es = tensor_dtype_size(dst->dtype);
    j.dt = dst->dtype;
    j.esize = (int)es;
    j.accumulate = accumulate;
    j.nlead = nlead;
    for (int k = 0; k < nlead; k++) {
        j.lshape[k] = dst->shape[k];
        j.lstride[k] = dst->stride[k] * (int64_t)es;
    }
    j.rowel = 1;
    for (int k = nlead; k < dst->ndim; k++) {
        j.rshape[j.nrow] = dst->shape[k];
        j.rstride[j.nrow] = dst->stride[k] * (int64_t)es;
        j.nrow++;
        j.rowel *= dst->shape[k];
    }
    j.n = tensor_numel(idx);
    j.idx = (const int64_t *)idx->storage->data + idx->offset;
    j.src = (const char *)src->storage->data + src->offset * (int64_t)es;
    j.dst = (char *)dst->storage->data + dst->offset * (int64_t)es;
    return kk_check(d, d->ops->index_put(&c, &j), "index_put", &c, err);
}

/* ---- reductions ---- */

int kk_reduce(const kk_device *d, op_id op, tensor *out, const tensor *x, int dim, eng_error *err)
{
    switch (x->dtype) {
    case DT_F32: case DT_F64: case DT_I32: case DT_I64: case DT_U8: case DT_BOOL: break;
    default:
        return eng_fail(err, ERR_TYPE, "%s: dtype %s is not supported by the %s backend's reductions",
                        tensor_op_name(op), tensor_dtype_name(x->dtype), d->be->name);
    }
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    kk_reduce_job j;
    memset(&j, 0, sizeof j);
    j.op = op;
    j.dt = x->dtype;
    j.odt = out->dtype;
    j.outer = j.inner = 1;
    if (dim == TENSOR_ALLDIMS) {
        j.n = tensor_numel(x);
    } else {
        for (int k = 0; k < dim; k++)
            j.outer *= x->shape[k];
        j.n = x->shape[dim];
        for (int k = dim + 1; k < x->ndim; k++)
            j.inner *= x->shape[k];
    }
    int64_t nout = j.outer * j.inner;
    if (nout == 0)
        return 0;
    if (j.n == 0) { /* as the CPU: sum and norm 0, mean/var/std 0/0 */
        double v = op == OP_SUM || op == OP_NORM ? 0.0 : NAN;
        return kk_fill(d, out, v, err);
    }
    tensor *xc = kk_contiguous(d, x, err);
    if (!xc)
        return -1;
    if (j.inner == 1) {
        if (j.n <= 64) {
            j.splits = 0; /* short rows: a thread each */
        } else {
            int64_t want = (c.max_blocks + j.outer - 1) / j.outer, most = (j.n + 2047) / 2048;
            if (want > most)
                want = most;
            if (want > KK_SPLIT_MAX)
                want = KK_SPLIT_MAX;
            j.splits = (int)(want < 1 ? 1 : want);
        }
    }
    size_t nparts = (size_t)nout * (size_t)(j.splits > 0 ? j.splits : 1);
    int rc = -1;
    j.partial = d->be->alloc(nparts * sizeof(kk_red_state));
    j.mean = (op == OP_VAR || op == OP_STD) ? d->be->alloc((size_t)nout * sizeof(double)) : NULL;
    if (!j.partial || ((op == OP_VAR || op == OP_STD) && !j.mean)) {
        eng_fail(err, ERR_MEMORY, "%s: out of memory for the reduction's partial results", tensor_op_name(op));
        goto done;
    }
    j.x = (const char *)xc->storage->data + xc->offset * (int64_t)tensor_dtype_size(xc->dtype);
    j.out = (char *)out->storage->data + out->offset * (int64_t)tensor_dtype_size(out->dtype);
    rc = kk_check(d, d->ops->reduce(&c, &j), tensor_op_name(op), &c, err);
done:
    /* the frees are stream-ordered on the GPU (the cache reuses blocks on the same stream) */
    if (j.partial)
        d->be->free(j.partial);
    if (j.mean)
        d->be->free(j.mean);
    tensor_decref(xc);
    return rc;
}

/* ---- matmul by tiles ---- */

int kk_matmul_tiled(const kk_device *d, tensor *out, const tensor *a, const tensor *cm, eng_error *err)
{
    if (out->dtype != DT_F32 && out->dtype != DT_F64)
        return eng_fail(err, ERR_TYPE, "matmul: the %s backend multiplies f32 and f64, got %s", d->be->name,
                        tensor_dtype_name(out->dtype));
    int64_t B = a->shape[0], M = a->shape[1], K = a->shape[2], N = cm->shape[2];
    if (B * M * N == 0)
        return 0;
    if (K == 0)
        return kk_fill(d, out, 0, err);
    if ((N + 15) / 16 > 0x7fffffff || (M + 15) / 16 > 65535)
        return eng_fail(err, ERR_VALUE, "matmul: dimensions too large for the %s backend's tiled kernel", d->be->name);
    kk_ctx c;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    size_t es = tensor_dtype_size(out->dtype);
    kk_matmul_job j;
    memset(&j, 0, sizeof j);
    j.dt = out->dtype;
    j.M = M;
    j.N = N;
    j.K = K;
    for (int k = 0; k < 3; k++) {
        j.sa[k] = a->stride[k];
        j.sc[k] = cm->stride[k];
    }
    for (int64_t b0 = 0; b0 < B; b0 += 65535) { /* grid z holds 65535 batches */
        j.B = B - b0 < 65535 ? B - b0 : 65535;
        j.a = (const char *)a->storage->data + (a->offset + b0 * a->stride[0]) * (int64_t)es;
        j.c = (const char *)cm->storage->data + (cm->offset + b0 * cm->stride[0]) * (int64_t)es;
        j.out = (char *)out->storage->data + (out->offset + b0 * M * N) * (int64_t)es;
        if (kk_check(d, d->ops->matmul(&c, &j), "matmul", &c, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- im2col, col2im ---- */

/* one job from the image and the columns (both contiguous, shapes set by engine/train/nn.c) */
static int kk_conv_setup(const kk_device *d, kk_conv_job *j, const tensor *img, const tensor *cols, int kh, int kw,
                         int stride, int pad, const char *who, eng_error *err)
{
    if (img->dtype != DT_F32 && img->dtype != DT_F64)
        return eng_fail(err, ERR_TYPE, "%s: the %s backend takes f32 and f64, got %s", who, d->be->name,
                        tensor_dtype_name(img->dtype));
    if (img->ndim != 4 || cols->ndim != 3 || !tensor_is_contiguous(img) || !tensor_is_contiguous(cols) ||
        kh < 1 || kw < 1 || stride < 1 || pad < 0 || img->shape[2] + 2 * pad < kh || img->shape[3] + 2 * pad < kw)
        return eng_fail(err, ERR_SHAPE, "%s: contiguous [N, C, H, W] and [N, C*kh*kw, OH*OW] expected", who);
    memset(j, 0, sizeof *j);
    j->dt = img->dtype;
    j->NC = img->shape[0] * img->shape[1];
    j->H = img->shape[2];
    j->W = img->shape[3];
    j->kh = kh;
    j->kw = kw;
    j->stride = stride;
    j->pad = pad;
    j->OH = (j->H + 2 * pad - kh) / stride + 1;
    j->OW = (j->W + 2 * pad - kw) / stride + 1;
    if (cols->shape[1] != img->shape[1] * kh * kw || cols->shape[2] != j->OH * j->OW)
        return eng_fail(err, ERR_SHAPE, "%s: the columns' shape does not match the image", who);
    return 0;
}

int kk_im2col(const kk_device *d, tensor *cols, const tensor *x, int kh, int kw, int stride, int pad, eng_error *err)
{
    kk_conv_job j;
    kk_ctx c;
    size_t es = tensor_dtype_size(x->dtype);
    if (kk_conv_setup(d, &j, x, cols, kh, kw, stride, pad, "im2col", err) < 0 || kk_ctx_get(d, &c, err) < 0)
        return -1;
    j.src = (const char *)x->storage->data + x->offset * (int64_t)es;
    j.dst = (char *)cols->storage->data + cols->offset * (int64_t)es;
    return kk_check(d, d->ops->im2col(&c, &j), "im2col", &c, err);
}

int kk_col2im(const kk_device *d, tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, eng_error *err)
{
    kk_conv_job j;
    kk_ctx c;
    size_t es = tensor_dtype_size(img->dtype);
    if (kk_conv_setup(d, &j, img, cols, kh, kw, stride, pad, "col2im", err) < 0 || kk_ctx_get(d, &c, err) < 0)
        return -1;
    j.src = (const char *)cols->storage->data + cols->offset * (int64_t)es;
    j.dst = (char *)img->storage->data + img->offset * (int64_t)es;
    return kk_check(d, d->ops->col2im(&c, &j), "col2im", &c, err);
}

/* ---- the fused training steps (cuda/kernels/kk_train.cuh) ---- */

/* p, and each non-NULL tensor of o: contiguous, p's dtype (f32 or f64) and size */
static int kk_step_check(const kk_device *d, const tensor *p, const tensor *const *o, int n, const char *who,
                         eng_error *err)
{
    if ((p->dtype != DT_F32 && p->dtype != DT_F64) || !tensor_is_contiguous(p))
        return eng_fail(err, ERR_TYPE, "%s: the %s backend's fused step takes contiguous f32 and f64 parameters",
                        who, d->be->name);
    for (int k = 0; k < n; k++)
        if (o[k] && (o[k]->dtype != p->dtype || !tensor_is_contiguous(o[k]) || tensor_numel(o[k]) != tensor_numel(p)))
            return eng_fail(err, ERR_SHAPE,
                            "%s: the gradient and state must be contiguous, of the parameter's shape and dtype", who);
    return 0;
}

static void *kk_at(const tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)tensor_dtype_size(t->dtype);
}

static void kk_step_job_init(kk_step_job *j, tensor *p, const tensor *g, tensor *m, tensor *v,
                             const eng_step_args *a)
{
    memset(j, 0, sizeof *j);
    j->dt = p->dtype;
    j->n = tensor_numel(p);
    j->p = kk_at(p);
    j->g = kk_at(g);
    j->m = m ? kk_at(m) : NULL;
    j->v = v ? kk_at(v) : NULL;
    j->lr = a->lr;
    j->beta1 = a->beta1;
    j->beta2 = a->beta2;
    j->eps = a->eps;
    j->bc1 = a->bc1;
    j->bc2 = a->bc2;
    j->wdf = a->wdf;
    j->nesterov = a->nesterov;
}

int kk_adamw_step(const kk_device *d, tensor *p, const tensor *g, tensor *m, tensor *v, const eng_step_args *a,
                  eng_error *err)
{
    const tensor *o[3] = {g, m, v};
    if (!m || !v)
        return eng_fail(err, ERR_RUNTIME, "adamw: the moment buffers are missing");
    kk_ctx c;
    if (kk_step_check(d, p, o, 3, "adamw", err) < 0 || kk_ctx_get(d, &c, err) < 0)
        return -1;
    kk_step_job j;
    kk_step_job_init(&j, p, g, m, v, a);
    return kk_check(d, d->ops->adamw_step(&c, &j), "adamw", &c, err);
}

int kk_sgd_step(const kk_device *d, tensor *p, const tensor *g, tensor *buf, const eng_step_args *a, eng_error *err)
{
    const tensor *o[2] = {g, buf};
    kk_ctx c;
    if (kk_step_check(d, p, o, 2, "sgd", err) < 0 || kk_ctx_get(d, &c, err) < 0)
        return -1;
    kk_step_job j;
    kk_step_job_init(&j, p, g, buf, NULL, a);
    return kk_check(d, d->ops->sgd_step(&c, &j), "sgd", &c, err);
}

/* ---- cross-entropy ---- */

static int kk_xent_setup(const kk_device *d, kk_xent_job *j, const tensor *out, const tensor *logits,
                         const tensor *labels, const char *who, eng_error *err)
{
    if ((logits->dtype != DT_F32 && logits->dtype != DT_F64) || logits->ndim != 2 || !tensor_is_contiguous(logits))
        return eng_fail(err, ERR_TYPE, "%s: the %s backend takes contiguous f32 or f64 logits [N, C]", who,
                        d->be->name);
    if ((labels->dtype != DT_I64 && labels->dtype != DT_I32 && labels->dtype != DT_U8) || labels->ndim != 1 ||
        labels->shape[0] != logits->shape[0] || !tensor_is_contiguous(labels))
        return eng_fail(err, ERR_TYPE, "%s: contiguous integer labels [N] expected", who);
    if (out->dtype != logits->dtype || !tensor_is_contiguous(out))
        return eng_fail(err, ERR_TYPE, "%s: a contiguous output of the logits' dtype expected", who);
    memset(j, 0, sizeof *j);
    j->dt = logits->dtype;
    j->ldt = labels->dtype;
    j->N = logits->shape[0];
    j->C = logits->shape[1];
    j->x = kk_at(logits);
    j->labels = kk_at(labels);
    j->out = kk_at(out);
    return 0;
}

/* after the kernel flagged a bad label: the composed path's message, from the labels */
static int kk_xent_label_error(const kk_device *d, const tensor *labels, int64_t C, eng_error *err)
{
    int64_t N = labels->shape[0];
    size_t es = tensor_dtype_size(labels->dtype);
    char *h = malloc(es * (size_t)N);
    if (!h)
        return eng_fail(err, ERR_MEMORY, "cross_entropy: out of memory");
    if (d->be->to_host(h, kk_at(labels), es * (size_t)N, err) < 0) {
        free(h);
        return -1;
    }
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int64_t i = 0; i < N; i++) {
        int64_t y = labels->dtype == DT_I64 ? ((int64_t *)h)[i]
                    : labels->dtype == DT_I32 ? ((int32_t *)h)[i] : ((uint8_t *)h)[i];
        lo = y < lo ? y : lo;
        hi = y > hi ? y : hi;
    }
    free(h);
    return eng_fail(err, ERR_INDEX, "cross_entropy: label %lld out of range for %lld classes",
                    (long long)(lo < 0 ? lo : hi), (long long)C);
}

int kk_cross_entropy(const kk_device *d, tensor *rows, const tensor *logits, const tensor *labels, int check,
                     eng_error *err)
{
    kk_xent_job j;
    kk_ctx c;
    if (kk_xent_setup(d, &j, rows, logits, labels, "cross_entropy", err) < 0)
        return -1;
    if (tensor_numel(rows) != j.N)
        return eng_fail(err, ERR_SHAPE, "cross_entropy: the row losses must be [N]");
    if (j.N == 0)
        return 0;
    if (j.C == 0) /* every label is out of range */
        return check ? kk_xent_label_error(d, labels, 0, err)
                     : eng_fail(err, ERR_SHAPE, "cross_entropy: no classes (C = 0)");
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    j.check = check;
    j.status = c.status;
    if (kk_check(d, d->ops->xent(&c, &j), "cross_entropy", &c, err) < 0)
        return -1;
    if (!check)
        return 0;
    int flag;
    if (kk_status(d, &c, &flag, err) < 0)
        return -1;
    return flag ? kk_xent_label_error(d, labels, j.C, err) : 0;
}

int kk_cross_entropy_backward(const kk_device *d, tensor *dx, const tensor *logits, const tensor *labels,
                              const tensor *gout, double scale, eng_error *err)
{
    kk_xent_job j;
    kk_ctx c;
    if (kk_xent_setup(d, &j, dx, logits, labels, "cross_entropy backward", err) < 0)
        return -1;
    if (tensor_numel(dx) != tensor_numel(logits) || gout->dtype != logits->dtype || tensor_numel(gout) != 1)
        return eng_fail(err, ERR_SHAPE, "cross_entropy backward: dx [N, C] and a 0-d gradient expected");
    if (j.N * j.C == 0)
        return 0;
    if (kk_ctx_get(d, &c, err) < 0)
        return -1;
    j.gout = kk_at(gout);
    j.scale = scale;
    return kk_check(d, d->ops->xent_backward(&c, &j), "cross_entropy backward", &c, err);
}
