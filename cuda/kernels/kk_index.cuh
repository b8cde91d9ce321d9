/* kk_index.cuh — index_add: the rows of src added into the rows of out that an index
 * names (engine/tensor/backend.h's index_add), with atomics so repeated indices add up.
 * Included by kk_all.cuh inside the device's namespace, once for nvcc (the GPU) and
 * once for the simulator. One thread per element of src, grid-stride. */

/* CUDA has atomicAdd for float, double, int and unsigned long long: an i64 adds as
 * its unsigned twin (two's complement wraps alike) */
KK_DEV void kk_atomic_add(float *p, float v) { atomicAdd(p, v); }
KK_DEV void kk_atomic_add(double *p, double v) { atomicAdd(p, v); }
KK_DEV void kk_atomic_add(int32_t *p, int32_t v) { atomicAdd((int *)p, (int)v); }
KK_DEV void kk_atomic_add(int64_t *p, int64_t v)
{
    atomicAdd((unsigned long long *)p, (unsigned long long)v);
}

template <typename T>
__global__ void kk_index_add_kernel(kk_index_add_job j)
{
    int64_t total = j.n * j.cols;
    for (int64_t e = kk_gtid(); e < total; e += kk_gstride()) {
        int64_t k = e / j.cols, col = e - k * j.cols;
        int64_t v = j.idx[k];
        if (v < 0)
            v += j.rows;
        kk_atomic_add((T *)j.out + v * j.cols + col, ((const T *)j.src)[e]);
    }
}

static int KK_NAME(index_add)(kk_ctx *c, const kk_index_add_job *j)
{
    int64_t total = j->n * j->cols;
    if (total == 0)
        return 0;
    unsigned g = kk_blocks(c, total, 1);
    switch (j->dt) {
    case KK_F32: { auto k = kk_index_add_kernel<float>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    case KK_F64: { auto k = kk_index_add_kernel<double>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    case KK_I32: { auto k = kk_index_add_kernel<int32_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    default: { auto k = kk_index_add_kernel<int64_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    }
}
