/* cpu_sort.c — the CPU backend's ordering and scan entries (engine/tensor/backend.h):
 * argsort of the rows of a contiguous [R, N] (a stable merge sort of indices, NaN above
 * every number: the order the CUDA kernels' bitonic network gives, since (key, index)
 * is a total order) and running sums and products along one dimension, accumulated in
 * the dtype, element by element, as NumPy's cumsum and the CUDA kernels do.
 * Rows (lines of a scan) are shared among OpenMP threads; the interrupt flag is checked
 * between rows.
 */
#include "cpu/cpu_internal.h"

#include <math.h>
#include <stdlib.h>

/* ---- argsort ---- */

/* a before b in ascending (desc 0) or descending order; ties and NaNs by index */
#define CPU_KEY_BEFORE(T, x, a, b, desc)                                               \
    static inline int cpu_before_##T(const x *v, int64_t a, int64_t b, int desc)       \
    {                                                                                  \
        x va = v[a], vb = v[b];                                                        \
        int na = va != va, nb = vb != vb;                                              \
        int lt = na ? 0 : nb ? 1 : va < vb, gt = nb ? 0 : na ? 1 : va > vb;           \
        if (desc ? gt : lt)                                                            \
            return 1;                                                                  \
        if (desc ? lt : gt)                                                            \
            return 0;                                                                  \
        return a < b;                                                                  \
    }
CPU_KEY_BEFORE(f32, float, a, b, desc)
CPU_KEY_BEFORE(f64, double, a, b, desc)
CPU_KEY_BEFORE(i32, int32_t, a, b, desc)
CPU_KEY_BEFORE(i64, int64_t, a, b, desc)

/* bottom-up merge sort of idx[0..n) by the keys v, tmp of n elements */
#define CPU_MSORT(T, x)                                                                \
    static void cpu_msort_##T(const x *v, int64_t *idx, int64_t *tmp, int64_t n, int desc) \
    {                                                                                  \
        int64_t *src = idx, *dst = tmp;                                                \
        for (int64_t w = 1; w < n; w *= 2) {                                           \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                                \
                int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n; \
                int64_t i = lo, j = mid, k = lo;                                       \
                while (i < mid && j < hi)                                              \
                    dst[k++] = cpu_before_##T(v, src[j], src[i], desc) ? src[j++] : src[i++]; \
                while (i < mid)                                                        \
                    dst[k++] = src[i++];                                               \
                while (j < hi)                                                         \
                    dst[k++] = src[j++];                                               \
            }                                                                          \
            int64_t *t = src;                                                          \
            src = dst;                                                                 \
            dst = t;                                                                   \
        }                                                                              \
        if (src != idx)                                                                \
            memcpy(idx, src, sizeof(int64_t) * (size_t)n);                             \
    }
CPU_MSORT(f32, float)
CPU_MSORT(f64, double)
CPU_MSORT(i32, int32_t)
CPU_MSORT(i64, int64_t)

int cpu_argsort(tensor *idx, const tensor *x, int descending, eng_error *err)
{
    int64_t rows = x->ndim == 2 ? x->shape[0] : 1, n = x->ndim == 2 ? x->shape[1] : tensor_numel(x);
    if (x->dtype != DT_F32 && x->dtype != DT_F64 && x->dtype != DT_I32 && x->dtype != DT_I64)
        return eng_fail(err, ERR_TYPE, "argsort: the CPU backend sorts f32, f64, i32 or i64, not %s",
                        tensor_dtype_name(x->dtype));
    if (rows == 0 || n == 0)
        return 0;
    const char *xb = cpu_ptr(x);
    int64_t *ib = (int64_t *)cpu_ptr(idx);
    size_t es = tensor_dtype_size(x->dtype);
    volatile sig_atomic_t *intr = eng_ctx_interrupt_flag();
    int failed = 0, stopped = 0;
#pragma omp parallel if (rows > 1 && rows * n >= CPU_PAR_THRESHOLD)
    {
        int64_t *tmp = malloc(sizeof(int64_t) * (size_t)n);
        if (!tmp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t r = 0; r < rows; r++) {
            if (!tmp || failed || stopped)
                continue;
            if (eng_ctx_flag_get(intr)) {
#pragma omp atomic write
                stopped = 1;
                continue;
            }
            int64_t *row = ib + r * n;
            const char *v = xb + (size_t)(r * n) * es;
            for (int64_t i = 0; i < n; i++)
                row[i] = i;
            switch (x->dtype) {
            case DT_F32: cpu_msort_f32((const float *)v, row, tmp, n, descending); break;
            case DT_F64: cpu_msort_f64((const double *)v, row, tmp, n, descending); break;
            case DT_I32: cpu_msort_i32((const int32_t *)v, row, tmp, n, descending); break;
            default: cpu_msort_i64((const int64_t *)v, row, tmp, n, descending); break;
            }
        }
        free(tmp);
    }
    if (failed)
        return eng_fail(err, ERR_MEMORY, "argsort: out of memory for a row of %lld elements", (long long)n);
    if (stopped)
        return eng_fail(err, ERR_INTERRUPT, "interrupted");
    return 0;
}

/* ---- scans ---- */

#define CPU_SCAN(T, x)                                                                           \
    static void cpu_scan_##T(int kind, int flags, x *o, const x *in, const x *w, int64_t n,        \
                             int64_t inner)                                                      \
    {                                                                                            \
        int rev = flags & ENG_SCAN_REVERSE, excl = flags & ENG_SCAN_EXCLUSIVE;                   \
        x acc = kind == ENG_SCAN_PROD ? (x)1 : (x)0;                                             \
        int64_t prev = -1;                                                                       \
        for (int64_t s = 0; s < n; s++) {                                                        \
            int64_t i = rev ? n - 1 - s : s;                                                     \
            x v = in[i * inner];                                                                 \
            if (w && prev >= 0)                                                                  \
                acc = acc * w[prev * inner];                                                     \
            if (excl)                                                                            \
                o[i * inner] = acc;                                                              \
            acc = kind == ENG_SCAN_PROD ? acc * v : acc + v;                                     \
            if (!excl)                                                                           \
                o[i * inner] = acc;                                                              \
            prev = i;                                                                            \
        }                                                                                        \
    }
CPU_SCAN(f32, float)
CPU_SCAN(f64, double)

/* integers wrap as NumPy's (unsigned arithmetic) */
static void cpu_scan_i64(int kind, int flags, int64_t *o, const int64_t *in, const int64_t *w, int64_t n,
                         int64_t inner)
{
    int rev = flags & ENG_SCAN_REVERSE, excl = flags & ENG_SCAN_EXCLUSIVE;
    uint64_t acc = kind == ENG_SCAN_PROD ? 1 : 0;
    int64_t prev = -1;
    for (int64_t s = 0; s < n; s++) {
        int64_t i = rev ? n - 1 - s : s;
        uint64_t v = (uint64_t)in[i * inner];
        if (w && prev >= 0)
            acc = acc * (uint64_t)w[prev * inner];
        if (excl)
            o[i * inner] = (int64_t)acc;
        acc = kind == ENG_SCAN_PROD ? acc * v : acc + v;
        if (!excl)
            o[i * inner] = (int64_t)acc;
        prev = i;
    }
}

int cpu_scan(int kind, int flags, tensor *out, const tensor *x, const tensor *w, int dim, eng_error *err)
{
    if (x->dtype != DT_F32 && x->dtype != DT_F64 && x->dtype != DT_I64)
        return eng_fail(err, ERR_TYPE, "scan: the CPU backend scans f32, f64 or i64, not %s",
                        tensor_dtype_name(x->dtype));
    int64_t outer = 1, n = x->ndim ? x->shape[dim] : 1, inner = 1;
    for (int d = 0; d < dim; d++)
        outer *= x->shape[d];
    for (int d = dim + 1; d < x->ndim; d++)
        inner *= x->shape[d];
    int64_t lines = outer * inner;
    if (lines == 0 || n == 0)
        return 0;
    size_t es = tensor_dtype_size(x->dtype);
    char *ob = cpu_ptr(out);
    const char *xb = cpu_ptr(x), *wb = w ? cpu_ptr(w) : NULL;
    volatile sig_atomic_t *intr = eng_ctx_interrupt_flag();
    int stopped = 0;
#pragma omp parallel for if (lines > 1 && lines * n >= CPU_PAR_THRESHOLD) schedule(static)
    for (int64_t l = 0; l < lines; l++) {
        if (stopped)
            continue;
        if ((l & 1023) == 0 && eng_ctx_flag_get(intr)) {
#pragma omp atomic write
            stopped = 1;
            continue;
        }
        int64_t a = l / inner, b = l - a * inner;
        size_t off = (size_t)(a * n * inner + b) * es;
        switch (x->dtype) {
        case DT_F32:
            cpu_scan_f32(kind, flags, (float *)(ob + off), (const float *)(xb + off),
                         wb ? (const float *)(wb + off) : NULL, n, inner);
            break;
        case DT_F64:
            cpu_scan_f64(kind, flags, (double *)(ob + off), (const double *)(xb + off),
                         wb ? (const double *)(wb + off) : NULL, n, inner);
            break;
        default:
            cpu_scan_i64(kind, flags, (int64_t *)(ob + off), (const int64_t *)(xb + off),
                         wb ? (const int64_t *)(wb + off) : NULL, n, inner);
            break;
        }
    }
    if (stopped)
        return eng_fail(err, ERR_INTERRUPT, "interrupted");
    return 0;
}
