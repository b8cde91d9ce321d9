/* kk_matmul.cuh — a batched matrix product by 16 x 16 shared-memory tiles: the
 * simulator backend's matmul (the CUDA backend uses cuBLAS; this kernel is compiled for
 * the GPU too, as a fallback and for tests). out[b] = a[b] @ c[b] with any element
 * strides for a and c (transposed or broadcast views need no copy), accumulating in the
 * element type as BLAS does. Grid: (N / 16, M / 16, B) tiles.
 */
#ifndef KILN_KK_MATMUL_CUH
#define KILN_KK_MATMUL_CUH

#include "cuda/kernels/kk_common.cuh"

#define KK_TILE 16

template <typename T>
__global__ void kk_matmul_tiled(kk_matmul_job j)
{
    __shared__ T ta[KK_TILE][KK_TILE];
    __shared__ T tc[KK_TILE][KK_TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int64_t row = (int64_t)blockIdx.y * KK_TILE + ty, col = (int64_t)blockIdx.x * KK_TILE + tx;
    int64_t b = blockIdx.z;
    const T *A = (const T *)j.a + b * j.sa[0];
    const T *C = (const T *)j.c + b * j.sc[0];
    T acc = 0;
    for (int64_t k0 = 0; k0 < j.K; k0 += KK_TILE) {
        int64_t ka = k0 + tx, kc = k0 + ty;
        ta[ty][tx] = row < j.M && ka < j.K ? A[row * j.sa[1] + ka * j.sa[2]] : (T)0;
        tc[ty][tx] = kc < j.K && col < j.N ? C[kc * j.sc[1] + col * j.sc[2]] : (T)0;
        __syncthreads();
    KK_UNROLL
        for (int k = 0; k < KK_TILE; k++)
            acc += ta[ty][k] * tc[k][tx];
        __syncthreads();
    }
    if (row < j.M && col < j.N)
        ((T *)j.out)[(b * j.M + row) * j.N + col] = acc;
}

/* B <= 65535 (grid z), M and N tiles within the grid */
static int KK_NAME(matmul)(kk_ctx *c, const kk_matmul_job *j)
{
    if (j->B * j->M * j->N == 0)
        return 0;
    dim3 grid((unsigned)((j->N + KK_TILE - 1) / KK_TILE), (unsigned)((j->M + KK_TILE - 1) / KK_TILE),
              (unsigned)j->B);
    dim3 block(KK_TILE, KK_TILE);
    if (j->dt == KK_F64) {
        auto kfn = kk_matmul_tiled<double>;
        return KK_LAUNCH(c, 1, kfn, grid, block, 0, *j);
    }
    auto kfn = kk_matmul_tiled<float>;
    return KK_LAUNCH(c, 1, kfn, grid, block, 0, *j);
}

#endif
