/* kk_common.cuh — what the built-in kernels share, written so that one source compiles
 * with nvcc for the GPU and with the host C++ compiler against the CUDA simulator
 * (cuda/sim/kiln_sim.h):
 *   KK_DEV        a device helper (__device__ __forceinline__ / inline on the host)
 *   KK_LAUNCH     kernel<<<grid, block, shmem, stream>>>(args) on the GPU, the
 *                 simulator's static launch (KILN_SIM_LAUNCH) otherwise; evaluates to 0
 *                 or an error code (cudaError_t, or -1 with ctx->msg filled)
 *   KK_NAME(x)    the exported launcher's name: kk_cuda_x or kk_sim_x
 * plus element loads and stores by dtype that give exactly the CPU backend's
 * conversions (cpu/cpu_internal.h): f16 and bf16 round to nearest even, float to
 * integer truncates, NaN becomes 0, out-of-range values saturate to i64 first.
 */
#ifndef KILN_KK_COMMON_CUH
#define KILN_KK_COMMON_CUH

#include <stdint.h>
#include <string.h>
#include <math.h>
#include <type_traits>

#include "engine/tensor.h" /* kn_opid */
#include "cuda/kernels/kk_api.h"

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define KK_DEV __device__ __forceinline__
#define KK_ON_GPU 1
#define KK_NAME(x) kk_cuda_##x
#define KK_LAUNCH(ctx, fibers, kfn, grid, block, shmem, ...)                                        \
    (kfn<<<(grid), (block), (shmem), (cudaStream_t)(ctx)->stream>>>(__VA_ARGS__), (int)cudaGetLastError())
#else
#include "cuda/sim/kiln_sim.h"
#define KK_DEV inline
#define KK_ON_GPU 0
#define KK_NAME(x) kk_sim_##x
#define KK_LAUNCH(ctx, fibers, kfn, grid, block, shmem, ...)                                        \
    KILN_SIM_LAUNCH(kfn, dim3(grid), dim3(block), (shmem), (fibers), (ctx)->msg, sizeof (ctx)->msg, \
                    __VA_ARGS__)
#endif

#ifdef __CUDACC__
#define KK_UNROLL _Pragma("unroll")
#else
#define KK_UNROLL
#endif

#define KK_BLOCK 256 /* threads per block of the grid-stride kernels */

/* blocks for `work` items of a grid-stride kernel */
static inline unsigned kk_blocks(const kk_ctx *c, int64_t work, int per_thread)
{
    int64_t b = (work + (int64_t)KK_BLOCK * per_thread - 1) / ((int64_t)KK_BLOCK * per_thread);
    if (b > c->max_blocks)
        b = c->max_blocks;
    return (unsigned)(b < 1 ? 1 : b);
}

KK_DEV int64_t kk_gtid(void)
{
    return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}

KK_DEV int64_t kk_gstride(void)
{
    return (int64_t)gridDim.x * blockDim.x;
}

/* ---- half precision: cpu/half.h, the CPU's own conversions, as device code ---- */
#ifdef __CUDACC__
#define HALF_DEVICE __device__
#endif
#include "cpu/half.h"
#define kk_f16_to_f32 kn_f16_to_f32
#define kk_f32_to_f16 kn_f32_to_f16
#define kk_bf16_to_f32 kn_bf16_to_f32
#define kk_f32_to_bf16 kn_f32_to_bf16

/* pow in double for the generic paths (engine/ops.def): cpu/powd.h, shared with the CPU */
#ifdef __CUDACC__
#define POWD_DEVICE __device__
#endif
#include "cpu/powd.h"

/* ---- element access by runtime dtype (the generic paths) ---- */
KK_DEV double kk_load(int dt, const char *p)
{
    switch (dt) {
    case KK_BOOL: return *(const uint8_t *)p != 0;
    case KK_U8: return *(const uint8_t *)p;
    case KK_I32: return *(const int32_t *)p;
    case KK_I64: return (double)*(const int64_t *)p;
    case KK_F16: return kk_f16_to_f32(*(const uint16_t *)p);
    case KK_BF16: return kk_bf16_to_f32(*(const uint16_t *)p);
    case KK_F32: return *(const float *)p;
    default: return *(const double *)p;
    }
}

KK_DEV int64_t kk_d2i64(double v)
{
    if (v != v)
        return 0;
    if (v >= 9223372036854775807.0)
        return INT64_MAX;
    if (v <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)v;
}

KK_DEV void kk_store(int dt, char *p, double v)
{
    switch (dt) {
    case KK_BOOL: *(uint8_t *)p = v != 0; break;
    case KK_U8: *(uint8_t *)p = (uint8_t)kk_d2i64(v); break;
    case KK_I32: *(int32_t *)p = (int32_t)kk_d2i64(v); break;
    case KK_I64: *(int64_t *)p = kk_d2i64(v); break;
    case KK_F16: *(uint16_t *)p = kk_f32_to_f16((float)v); break;
    case KK_BF16: *(uint16_t *)p = kk_f32_to_bf16((float)v); break;
    case KK_F32: *(float *)p = (float)v; break;
    default: *(double *)p = v; break;
    }
}

/* byte offsets of element i of an iterator's NOP operands */
template <int NOP>
KK_DEV void kk_offsets(const kk_iter &it, int64_t i, int64_t *off)
{
    KK_UNROLL
    for (int k = 0; k < NOP; k++)
        off[k] = 0;
    for (int d = it.ndim - 1; d >= 0; d--) {
        int64_t s = it.shape[d];
        int64_t q = d > 0 ? i / s : 0;
        int64_t r = i - q * s;
        i = q;
    KK_UNROLL
        for (int k = 0; k < NOP; k++)
            off[k] += r * it.stride[k][d];
    }
}

/* ---- typed math: one overload per float type ---- */
KK_DEV float kk_exp(float x) { return expf(x); }
KK_DEV double kk_exp(double x) { return exp(x); }
KK_DEV float kk_log(float x) { return logf(x); }
KK_DEV double kk_log(double x) { return log(x); }
KK_DEV float kk_sqrt(float x) { return sqrtf(x); }
KK_DEV double kk_sqrt(double x) { return sqrt(x); }
KK_DEV float kk_tanh(float x) { return tanhf(x); }
KK_DEV double kk_tanh(double x) { return tanh(x); }
KK_DEV float kk_erfc(float x) { return erfcf(x); }
KK_DEV double kk_erfc(double x) { return erfc(x); }
KK_DEV float kk_sin(float x) { return sinf(x); }
KK_DEV double kk_sin(double x) { return sin(x); }
KK_DEV float kk_cos(float x) { return cosf(x); }
KK_DEV double kk_cos(double x) { return cos(x); }
KK_DEV float kk_floor(float x) { return floorf(x); }
KK_DEV double kk_floor(double x) { return floor(x); }
KK_DEV float kk_ceil(float x) { return ceilf(x); }
KK_DEV double kk_ceil(double x) { return ceil(x); }
KK_DEV float kk_rint(float x) { return rintf(x); }
KK_DEV double kk_rint(double x) { return rint(x); }
KK_DEV float kk_fabs(float x) { return fabsf(x); }
KK_DEV double kk_fabs(double x) { return fabs(x); }
KK_DEV float kk_pow(float a, float b) { return powf(a, b); }
KK_DEV double kk_pow(double a, double b) { return pow(a, b); }
KK_DEV float kk_fmod(float a, float b) { return fmodf(a, b); }
KK_DEV double kk_fmod(double a, double b) { return fmod(a, b); }

#endif
