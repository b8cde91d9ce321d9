/* cpu_index.c — the CPU backend's indexing entries (engine/tensor/backend.h):
 * mask_positions (the positions of a boolean mask's true elements, for x[mask]) and
 * index_put (rows of a strided view set from, or added to from, rows of a source: the
 * assignments x[idx] = v and x[mask] = v, and the gradient of a gather). The front end
 * (engine/tensor/tensor_index.c) has checked every index already. */
#include "cpu/cpu_internal.h"

int cpu_mask_positions(tensor *out, const tensor *mask, eng_error *err)
{
    (void)err;
    const uint8_t *m = (const uint8_t *)tensor_data_ptr(mask);
    int64_t *o = (int64_t *)tensor_data_ptr(out), n = tensor_numel(mask), cap = tensor_numel(out), k = 0;
    for (int64_t i = 0; i < n && k < cap; i++) { /* branch-free: random masks mispredict */
        o[k] = i;
        k += m[i] != 0;
    }
    return 0;
}

/* the element offset of the row at flat index f over dst's first nlead dimensions */
static int64_t lead_offset(const tensor *dst, int nlead, int64_t f)
{
    int64_t off = dst->offset;
    for (int d = nlead - 1; d >= 0; d--) {
        int64_t s = dst->shape[d], q = f / s;
        off += (f - q * s) * dst->stride[d];
        f = q;
    }
    return off;
}

int cpu_index_put(tensor *dst, int nlead, const tensor *idx, const tensor *src, int accumulate, eng_error *err)
{
    int64_t n = tensor_numel(idx);
    const int64_t *iv = (const int64_t *)tensor_data_ptr(idx);
    size_t es = tensor_dtype_size(dst->dtype);
    /* a row: dst's dimensions after the leading ones */
    tensor row = *dst, srow = *src;
    row.ndim = srow.ndim = dst->ndim - nlead;
    int64_t rowel = 1;
    for (int d = 0; d < row.ndim; d++) {
        row.shape[d] = srow.shape[d] = dst->shape[nlead + d];
        row.stride[d] = dst->stride[nlead + d];
        rowel *= row.shape[d];
    }
    int64_t st = 1;
    for (int d = row.ndim - 1; d >= 0; d--) {
        srow.stride[d] = st;
        st *= srow.shape[d];
    }
    char *db = (char *)dst->storage->data;
    const char *sb = (const char *)tensor_data_ptr(src);
    if (rowel == 1) { /* one element a row: no views */
        for (int64_t k = 0; k < n; k++) {
            char *p = db + lead_offset(dst, nlead, iv[k]) * (int64_t)es;
            const char *q = sb + k * (int64_t)es;
            if (!accumulate)
                memcpy(p, q, es);
            else if (dst->dtype == DT_I64)
                *(int64_t *)p = (int64_t)((uint64_t) * (int64_t *)p + (uint64_t) * (const int64_t *)q);
            else
                cpu_store(dst->dtype, p, cpu_load(dst->dtype, p) + cpu_load(dst->dtype, q));
        }
        return 0;
    }
    for (int64_t k = 0; k < n; k++) {
        row.offset = lead_offset(dst, nlead, iv[k]);
        srow.offset = src->offset + k * rowel;
        int rc = accumulate ? cpu_binary(OP_ADD, &row, &row, &srow, err) : cpu_copy(&row, &srow, err);
        if (rc)
            return rc;
    }
    return 0;
}
