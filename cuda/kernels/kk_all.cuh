/* kk_all.cuh — the whole set of built-in kernels and its kk_ops table, included by
 * exactly one translation unit per device: cuda/kernels/cuda_kernels.cu (nvcc) and
 * cuda/sim_backend_kernels.cc (host C++ with the simulator's header). Both end up in
 * one executable, so everything but the exported table lives in a namespace of its
 * own per device (kk_gpu, kk_simk). */
#ifndef KILN_KK_ALL_CUH
#define KILN_KK_ALL_CUH

/* outside the namespace: the system, engine and emulation headers */
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <type_traits>
#include "engine/tensor/tensor.h"
#include "cuda/kernels/kk_api.h"
#ifdef __CUDACC__
#include <cuda_runtime.h>
#include <pthread.h>
#include <tuple>
#include <utility>
#define KK_NS kk_gpu
#else
#include "cuda/sim/kiln_sim.h"
#define KK_NS kk_simk
#endif

namespace KK_NS {
#include "cuda/kernels/kk_elementwise.cuh"
#include "cuda/kernels/kk_reduce.cuh"
#include "cuda/kernels/kk_matmul.cuh"
#include "cuda/kernels/kk_conv.cuh"
#include "cuda/kernels/kk_train.cuh"
#include "cuda/kernels/kk_sort.cuh"
}

extern "C" const kk_ops KK_NAME(ops) = {
    KK_ON_GPU ? "cuda" : "sim",
    KK_NS::KK_NAME(unary),
    KK_NS::KK_NAME(binary),
    KK_NS::KK_NAME(copy),
    KK_NS::KK_NAME(fill),
    KK_NS::KK_NAME(arange),
    KK_NS::KK_NAME(where),
    KK_NS::KK_NAME(random),
    KK_NS::KK_NAME(gather_check),
    KK_NS::KK_NAME(gather),
    KK_NS::KK_NAME(reduce),
    KK_NS::KK_NAME(matmul),
    KK_NS::KK_NAME(im2col),
    KK_NS::KK_NAME(col2im),
    KK_NS::KK_NAME(adamw_step),
    KK_NS::KK_NAME(sgd_step),
    KK_NS::KK_NAME(xent),
    KK_NS::KK_NAME(xent_backward),
    KK_NS::KK_NAME(argsort),
    KK_NS::KK_NAME(scan),
};

#endif
