/* cpu_index.c — the CPU backend's index_add (engine/tensor/backend.h): the rows of src
 * added into the rows of out that an index names, in index order, so repeated indices
 * add up and the sums are the same run to run.
 */
#include "cpu/cpu_internal.h"

#include <stdlib.h>

#define CPU_INDEX_ADD(T)                                                                      \
    static void index_add_##T(T *out, const int64_t *iv, const T *src, int64_t n, int64_t cols) \
    {                                                                                         \
        for (int64_t k = 0; k < n; k++) {                                                     \
            T *o = out + iv[k] * cols;                                                        \
            const T *s = src + k * cols;                                                      \
            for (int64_t j = 0; j < cols; j++)                                                \
                o[j] += s[j];                                                                 \
        }                                                                                     \
    }
CPU_INDEX_ADD(float)
CPU_INDEX_ADD(double)
CPU_INDEX_ADD(int32_t)
#undef CPU_INDEX_ADD

/* an i64 sum wraps as NumPy's does: add as the unsigned twin */
static void index_add_int64_t(int64_t *out, const int64_t *iv, const int64_t *src, int64_t n, int64_t cols)
{
    for (int64_t k = 0; k < n; k++) {
        uint64_t *o = (uint64_t *)(out + iv[k] * cols);
        const int64_t *s = src + k * cols;
        for (int64_t j = 0; j < cols; j++)
            o[j] += (uint64_t)s[j];
    }
}

int cpu_index_add(tensor *out, const tensor *idx, const tensor *src, eng_error *err)
{
    int64_t n = tensor_numel(idx), rows = out->shape[0], cols = out->shape[1];
    const int64_t *ip = (const int64_t *)idx->storage->data + idx->offset;
    int64_t *iv = eng_host_malloc(sizeof(int64_t) * (size_t)(n ? n : 1), "index_add", err);
    if (!iv)
        return -1;
    for (int64_t k = 0; k < n; k++) {
        int64_t v = ip[k] < 0 ? ip[k] + rows : ip[k];
        if (v < 0 || v >= rows) {
            free(iv);
            return eng_fail(err, ERR_INDEX, "index %lld is out of range for dimension 0 of size %lld",
                            (long long)ip[k], (long long)rows);
        }
        iv[k] = v;
    }
    void *o = tensor_data_ptr(out);
    const void *s = tensor_data_ptr(src);
    switch (out->dtype) {
    case DT_F32: index_add_float(o, iv, s, n, cols); break;
    case DT_F64: index_add_double(o, iv, s, n, cols); break;
    case DT_I32: index_add_int32_t(o, iv, s, n, cols); break;
    case DT_I64: index_add_int64_t(o, iv, s, n, cols); break;
    default:
        free(iv);
        return eng_fail(err, ERR_TYPE, "index_add: no CPU kernel for %s", tensor_dtype_name(out->dtype));
    }
    free(iv);
    return 0;
}
