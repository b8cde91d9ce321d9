/* sim_backend_kernels.cc — the built-in kernels (the .cuh files of cuda/kernels/) compiled by the
 * host C++ compiler against the CUDA simulator's emulation header: exports kk_sim_ops,
 * which the simulator backend (cuda/sim_backend.c) runs on host memory. Always built,
 * so CI checks the CUDA kernels' logic without a GPU. */
#include "cuda/kernels/kk_all.cuh"
