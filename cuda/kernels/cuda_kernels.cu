/* cuda_kernels.cu — the built-in kernels compiled by nvcc for the GPU (sm_90 code and
 * compute_90 PTX, see the Makefile); exports kk_cuda_ops. Only in CUDA builds. */
#include "cuda/kernels/kk_all.cuh"
