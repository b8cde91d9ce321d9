/* kk_order.c — the host side of the ordering and scan kernels (cuda/kernels/kk_sort.cuh),
 * shared by the CUDA and simulator backends: the eng_backend entries argsort and scan
 * (engine/tensor/backend.h) on a kk_device, with the CPU backend's dtype rules and
 * messages. The front end (engine/tensor/tensor_order.c) hands both contiguous tensors. */
#include "cuda/kernels/kk_dispatch.h"

#include <string.h>

static int kk_order_ctx(const kk_device *d, kk_ctx *c, eng_error *err)
{
    memset(c, 0, sizeof *c);
    return d->context(c, err);
}

static const char *kk_order_ptr(const tensor *t)
{
    return (const char *)t->storage->data + t->offset * (int64_t)tensor_dtype_size(t->dtype);
}

int kk_argsort(const kk_device *d, tensor *idx, const tensor *x, int descending, eng_error *err)
{
    if (x->dtype != DT_F32 && x->dtype != DT_F64 && x->dtype != DT_I32 && x->dtype != DT_I64)
        return eng_fail(err, ERR_TYPE, "argsort: the %s backend sorts f32, f64, i32 or i64, not %s", d->be->name,
                        tensor_dtype_name(x->dtype));
    kk_ctx c;
    if (kk_order_ctx(d, &c, err) < 0)
        return -1;
    kk_sort_job j;
    memset(&j, 0, sizeof j);
    j.dt = x->dtype;
    j.descending = descending != 0;
    j.rows = x->ndim == 2 ? x->shape[0] : 1;
    j.n = x->ndim == 2 ? x->shape[1] : tensor_numel(x);
    for (j.pow2 = 1; j.pow2 < j.n; j.pow2 <<= 1) {
    }
    j.x = kk_order_ptr(x);
    j.idx = (int64_t *)kk_order_ptr(idx);
    int rc = d->ops->argsort(&c, &j);
    return rc ? d->fail(rc, "argsort", &c, err) : 0;
}

int kk_scan(const kk_device *d, int kind, int flags, tensor *out, const tensor *x, const tensor *w, int dim,
            eng_error *err)
{
    if (x->dtype != DT_F32 && x->dtype != DT_F64 && x->dtype != DT_I64)
        return eng_fail(err, ERR_TYPE, "scan: the %s backend scans f32, f64 or i64, not %s", d->be->name,
                        tensor_dtype_name(x->dtype));
    kk_ctx c;
    if (kk_order_ctx(d, &c, err) < 0)
        return -1;
    kk_scan_job j;
    memset(&j, 0, sizeof j);
    j.dt = x->dtype;
    j.kind = kind;
    j.flags = flags;
    j.outer = j.inner = 1;
    j.n = x->ndim ? x->shape[dim] : 1;
    for (int k = 0; k < dim; k++)
        j.outer *= x->shape[k];
    for (int k = dim + 1; k < x->ndim; k++)
        j.inner *= x->shape[k];
    j.x = kk_order_ptr(x);
    j.w = w ? kk_order_ptr(w) : NULL;
    j.out = (char *)kk_order_ptr(out);
    int rc = d->ops->scan(&c, &j);
    return rc ? d->fail(rc, "scan", &c, err) : 0;
}
