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

#include "engine/tensor/tensor.h" /* op_id */
#include "cuda/kernels/kk_api.h"

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define KK_DEV __device__ __forceinline__
#define KK_ON_GPU 1
#define KK_NAME(x) kk_cuda_##x
#define KK_LAUNCH(ctx, fibers, kfn, grid, block, shmem, ...) \
    kk_launch_gpu(kfn, dim3(grid), dim3(block), (unsigned)(shmem), (ctx)->stream, __VA_ARGS__)
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
/* ---- launching on the GPU ----
 * Built-in kernels are launched with the driver's cuLaunchKernel (cu_driver_launch in
 * cuda/cu_device.c: the entry point the runtime hands out; libcuda is never linked) on
 * the CUfunction that cudaGetFuncBySymbol gives. Host cost per launch of a small kernel measured on an H100 by
 * bench/launch_paths.cu: <<<>>> 4.06 us, cudaLaunchKernel 3.88 us, cuLaunchKernel 3.39
 * us; a loop of small ops is all launches. Where the entry point or the function cannot
 * be had, or the driver refuses, the launch goes through cudaLaunchKernel, whose error
 * code (a cudaError_t) is what the caller reports. */
/* <pthread.h>, <tuple>, <utility>: included by kk_all.cuh outside the namespace */
/* cuda/cu_device.c: the driver's cuLaunchKernel or NULL (cu_launch_fn in cu_device.h) */
typedef int (*kk_drv_launch_fn)(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                unsigned bz, unsigned shmem, void *stream, void **args, void **extra);
extern "C" kk_drv_launch_fn cu_driver_launch(void);

enum { KK_FN_SLOTS = 1024 }; /* open addressing: well above the number of built-in kernels */
static struct {
    pthread_mutex_t lock;
    const void *key[KK_FN_SLOTS];
    void *fn[KK_FN_SLOTS];
} kk_gpu_fns = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}};

/* the CUfunction of a kernel's host stub, NULL where there is none */
static void *kk_gpu_fn(const void *kfn)
{
    size_t h = ((uintptr_t)kfn >> 4) * 0x9E3779B97F4A7C15ull >> 54; /* 10 bits */
    void *f = NULL;
    pthread_mutex_lock(&kk_gpu_fns.lock);
    for (size_t k = 0; k < KK_FN_SLOTS; k++) {
        size_t i = (h + k) % KK_FN_SLOTS;
        if (kk_gpu_fns.key[i] == kfn) {
            f = kk_gpu_fns.fn[i];
            break;
        }
        if (!kk_gpu_fns.key[i]) {
            cudaFunction_t cf;
            if (cudaGetFuncBySymbol(&cf, kfn) == cudaSuccess) {
                kk_gpu_fns.key[i] = kfn;
                kk_gpu_fns.fn[i] = f = (void *)cf;
            } else {
                cudaGetLastError();
            }
            break;
        }
    }
    pthread_mutex_unlock(&kk_gpu_fns.lock);
    return f;
}

static int kk_gpu_launch(const void *kfn, dim3 g, dim3 b, unsigned shmem, void *stream, void **args)
{
    kk_drv_launch_fn launch = cu_driver_launch();
    if (launch) {
        void *f = kk_gpu_fn(kfn);
        if (f && launch(f, g.x, g.y, g.z, b.x, b.y, b.z, shmem, stream, args, NULL) == 0)
            return 0;
    }
    return (int)cudaLaunchKernel(kfn, g, b, args, shmem, (cudaStream_t)stream);
}

template <typename Tuple, size_t... I>
static void kk_arg_ptrs(void **args, Tuple &t, std::index_sequence<I...>)
{
    ((args[I] = (void *)&std::get<I>(t)), ...);
}

/* kfn's arguments converted to its parameter types, then their addresses, as a launch
 * takes them */
template <typename... P, typename... A>
static int kk_launch_gpu(void (*kfn)(P...), dim3 g, dim3 b, unsigned shmem, void *stream, A &&...a)
{
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    std::tuple<typename std::decay<P>::type...> t(std::forward<A>(a)...);
    void *args[sizeof...(P) + 1];
    kk_arg_ptrs(args, t, std::index_sequence_for<P...>{});
    return kk_gpu_launch((const void *)kfn, g, b, shmem, stream, args);
}

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

/* ---- half precision and element access by runtime dtype (the generic paths):
 * numeric/elem.h and numeric/half.h, the CPU backend's own definitions, as device code ---- */
#include "numeric/elem.h"
#define kk_f16_to_f32 num_f16_to_f32
#define kk_f32_to_f16 num_f32_to_f16
#define kk_bf16_to_f32 num_bf16_to_f32
#define kk_f32_to_bf16 num_f32_to_bf16
#define kk_load num_load
#define kk_store num_store
#define kk_d2i64 num_d2i64

/* the om_ math that ops.def's expressions are written in (numeric/op_math.h) and the
 * generic path in double (engine/tensor/op_eval.h; pow by numeric/powd.h), shared with the CPU */
#ifdef __CUDACC__
#define POWD_DEVICE __device__
#define OM_DEVICE __device__
#endif
#include "engine/tensor/op_eval.h"

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
