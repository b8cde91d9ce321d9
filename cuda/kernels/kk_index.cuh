/* kk_index.cuh — the indexing kernels (engine/tensor/backend.h's mask_positions and
 * index_put; engine/tensor/tensor_index.c drives them): a mask's compaction into the
 * positions of its true elements, and rows put into (or added to) a strided view at
 * flat indices. Included by kk_all.cuh inside the device's namespace.
 *
 * The compaction is one block walking the mask in chunks of KK_BLOCK runs of KK_MASK_RUN
 * bytes: each thread counts the true bytes of its run, the counts are scanned in shared
 * memory (Hillis-Steele), and each thread writes the positions of its run from the
 * running total plus its prefix. Simple and deterministic (positions come out in order),
 * with one scan per 8 KiB of mask; its cost is a pass over the mask on one
 * multiprocessor (a multi-block scan would be the next step for huge masks).
 */

#define KK_MASK_RUN 32 /* mask bytes each thread walks per chunk */

__global__ void kk_mask_positions_kernel(const uint8_t *m, int64_t n, int64_t *out)
{
    __shared__ int64_t scan[KK_BLOCK];
    __shared__ int64_t base;
    int t = (int)threadIdx.x;
    if (t == 0)
        base = 0;
    __syncthreads();
    const int64_t chunk = (int64_t)KK_BLOCK * KK_MASK_RUN;
    for (int64_t start = 0; start < n; start += chunk) {
        int64_t lo = start + (int64_t)t * KK_MASK_RUN, hi = lo + KK_MASK_RUN, cnt = 0;
        if (hi > n)
            hi = n;
        for (int64_t i = lo; i < hi; i++)
            cnt += m[i] != 0;
        scan[t] = cnt;
        __syncthreads();
        for (int off = 1; off < KK_BLOCK; off <<= 1) { /* inclusive scan of the runs' counts */
            int64_t add = t >= off ? scan[t - off] : 0;
            __syncthreads();
            scan[t] += add;
            __syncthreads();
        }
        int64_t at = base + scan[t] - cnt;
        for (int64_t i = lo; i < hi; i++)
            if (m[i])
                out[at++] = i;
        __syncthreads();
        if (t == KK_BLOCK - 1)
            base += scan[KK_BLOCK - 1];
        __syncthreads();
    }
}

/* the byte offset in dst of element e of the rows put: row k = e / rowel at the flat
 * index idx[k] over the leading dims, element e % rowel of it */
KK_DEV int64_t kk_put_offset(const kk_index_put_job &j, int64_t e, int64_t *k_out)
{
    int64_t k = e / j.rowel, r = e - k * j.rowel, f = j.idx[k], off = 0;
    for (int d = j.nlead - 1; d >= 0; d--) {
        int64_t s = j.lshape[d], q = f / s;
        off += (f - q * s) * j.lstride[d];
        f = q;
    }
    for (int d = j.nrow - 1; d >= 0; d--) {
        int64_t s = j.rshape[d], q = r / s;
        off += (r - q * s) * j.rstride[d];
        r = q;
    }
    *k_out = k;
    return off;
}

template <typename T>
__global__ void kk_index_set_kernel(kk_index_put_job j)
{
    int64_t total = j.n * j.rowel, k;
    for (int64_t e = kk_gtid(); e < total; e += kk_gstride())
        *(T *)(j.dst + kk_put_offset(j, e, &k)) = ((const T *)j.src)[e];
}

/* accumulate: every row adds, repeated indices included (atomics) */
template <typename T, typename A>
__global__ void kk_index_add_kernel(kk_index_put_job j)
{
    int64_t total = j.n * j.rowel, k;
    for (int64_t e = kk_gtid(); e < total; e += kk_gstride())
        atomicAdd((A *)(j.dst + kk_put_offset(j, e, &k)), (A)((const T *)j.src)[e]);
}

static int KK_NAME(mask_positions)(kk_ctx *c, const uint8_t *mask, int64_t n, int64_t *out)
{
    if (n == 0)
        return 0;
    return KK_LAUNCH(c, 1, kk_mask_positions_kernel, 1, KK_BLOCK, 0, mask, n, out); /* fibers: it syncs */
}

static int KK_NAME(index_put)(kk_ctx *c, const kk_index_put_job *j)
{
    int64_t total = j->n * j->rowel;
    if (total == 0)
        return 0;
    unsigned g = kk_blocks(c, total, 1);
    if (j->accumulate) {
        switch (j->dt) {
        case KK_F32: { auto k = kk_index_add_kernel<float, float>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
        case KK_F64: { auto k = kk_index_add_kernel<double, double>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
        case KK_I32: { auto k = kk_index_add_kernel<int, int>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
        default: { /* i64: two's complement adds alike as unsigned */
            auto k = kk_index_add_kernel<unsigned long long, unsigned long long>;
            return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j);
        }
        }
    }
    switch (j->esize) {
    case 1: { auto k = kk_index_set_kernel<uint8_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    case 2: { auto k = kk_index_set_kernel<uint16_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    case 4: { auto k = kk_index_set_kernel<uint32_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    default: { auto k = kk_index_set_kernel<uint64_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    }
}
