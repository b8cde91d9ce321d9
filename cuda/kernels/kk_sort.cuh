/* kk_sort.cuh — ordering and scans (engine/tensor/backend.h: argsort, scan).
 *
 * argsort: one block per row (grid-stride over the rows), a bitonic network over the
 * row's indices in place in global memory, keyed by (value, index): a total order, so
 * the result is the stable sort the CPU backend's merge sort gives, bit for bit. The
 * network is the form whose every compare-exchange puts the smaller key at the lower
 * position (each merge opens with a "flip" stage, i against base + k-1 - i); padding the
 * row to a power of two with +infinity then needs no storage: a pair whose upper
 * position lies past the row's end is already in order and is skipped. O(n log^2 n)
 * work per row; NaN sorts above every number (first when descending).
 *
 * scan: one thread per line (grid-stride), sequential along it in the dtype (integers
 * in unsigned arithmetic, wrapping as NumPy), the CPU backend's order of operations.
 */
#ifndef KILN_KK_SORT_CUH
#define KILN_KK_SORT_CUH

#include "cuda/kernels/kk_common.cuh"

template <typename T>
KK_DEV bool kk_sort_before(const T *v, int64_t a, int64_t b, int desc)
{
    T va = v[a], vb = v[b];
    bool na = va != va, nb = vb != vb;
    bool lt = na ? false : nb ? true : va < vb, gt = nb ? false : na ? true : va > vb;
    if (desc ? gt : lt)
        return true;
    if (desc ? lt : gt)
        return false;
    return a < b;
}

template <typename T>
__global__ void kk_argsort_kernel(kk_sort_job j)
{
    for (int64_t r = blockIdx.x; r < j.rows; r += gridDim.x) {
        const T *v = (const T *)j.x + r * j.n;
        int64_t *idx = j.idx + r * j.n;
        for (int64_t i = threadIdx.x; i < j.n; i += blockDim.x)
            idx[i] = i;
        __syncthreads();
        for (int64_t k = 2; k <= j.pow2; k <<= 1) {
            for (int64_t s = k >> 1; s > 0; s >>= 1) {
                for (int64_t t = threadIdx.x; t < j.pow2 / 2; t += blockDim.x) {
                    int64_t lo = (t / s) * 2 * s + (t % s);
                    int64_t hi = s == (k >> 1) ? (lo & ~(k - 1)) + (k - 1) - (lo & (k - 1)) : lo + s;
                    if (hi < j.n) {
                        int64_t a = idx[lo], b = idx[hi];
                        if (kk_sort_before(v, b, a, j.descending)) {
                            idx[lo] = b;
                            idx[hi] = a;
                        }
                    }
                }
                __syncthreads();
            }
        }
    }
}

template <typename T, typename A>
__global__ void kk_scan_kernel(kk_scan_job j)
{
    int64_t lines = j.outer * j.inner;
    int rev = j.flags & KK_SCAN_REVERSE, excl = j.flags & KK_SCAN_EXCLUSIVE;
    for (int64_t l = kk_gtid(); l < lines; l += kk_gstride()) {
        int64_t a = l / j.inner, b = l - a * j.inner, base = a * j.n * j.inner + b;
        const T *in = (const T *)j.x + base;
        const T *w = j.w ? (const T *)j.w + base : NULL;
        T *o = (T *)j.out + base;
        A acc = j.kind == KK_SCAN_PROD ? (A)1 : (A)0;
        int64_t prev = -1;
        for (int64_t s = 0; s < j.n; s++) {
            int64_t i = rev ? j.n - 1 - s : s;
            A x = (A)in[i * j.inner];
            if (w && prev >= 0)
                acc = acc * (A)w[prev * j.inner];
            if (excl)
                o[i * j.inner] = (T)acc;
            acc = j.kind == KK_SCAN_PROD ? acc * x : acc + x;
            if (!excl)
                o[i * j.inner] = (T)acc;
            prev = i;
        }
    }
}

static int KK_NAME(argsort)(kk_ctx *c, const kk_sort_job *j)
{
    if (j->rows == 0 || j->n == 0)
        return 0;
    unsigned g = (unsigned)(j->rows < c->max_blocks ? j->rows : c->max_blocks);
    switch (j->dt) {
    case KK_F32: return KK_LAUNCH(c, 1, kk_argsort_kernel<float>, g, KK_BLOCK, 0, *j);
    case KK_F64: return KK_LAUNCH(c, 1, kk_argsort_kernel<double>, g, KK_BLOCK, 0, *j);
    case KK_I32: return KK_LAUNCH(c, 1, kk_argsort_kernel<int32_t>, g, KK_BLOCK, 0, *j);
    default: return KK_LAUNCH(c, 1, kk_argsort_kernel<int64_t>, g, KK_BLOCK, 0, *j);
    }
}

static int KK_NAME(scan)(kk_ctx *c, const kk_scan_job *j)
{
    int64_t lines = j->outer * j->inner;
    if (lines == 0 || j->n == 0)
        return 0;
    unsigned g = kk_blocks(c, lines, 1);
    switch (j->dt) {
    case KK_F32: { auto k = kk_scan_kernel<float, float>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    case KK_F64: { auto k = kk_scan_kernel<double, double>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    default: { auto k = kk_scan_kernel<int64_t, uint64_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    }
}

#endif
