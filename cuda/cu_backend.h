/* cu_backend.h — the CUDA tensor backend (cuda/cu_backend.c): tensors in device memory
 * from the caching allocator (cuda/cu_alloc.h), the built-in kernels of cuda/kernels/
 * (compiled by nvcc) on the session's stream (cuda/cu_device.h), matmul through cuBLAS.
 * Only in CUDA builds (KILN_HAVE_CUDA). Nothing touches the CUDA runtime until the
 * first tensor is made on it.
 */
#ifndef KILN_CU_BACKEND_H
#define KILN_CU_BACKEND_H

#include <stddef.h>
#include "engine/tensor/backend.h"
#include "cuda/cu_alloc.h"

extern const eng_backend cuda_backend;

/* The device allocator's statistics for %gpu (zeros before the first allocation). */
void cu_backend_stats(cu_alloc_stats *out);
/* Frees the allocator's cached blocks back to the device; returns the bytes freed. */
size_t cu_backend_release_cache(void);
/* The last allocation failure's message ("" if none): the size asked for, what the
 * device has free, what live tensors hold. The engine adds the variables' names. */
void cu_backend_last_oom(char *buf, size_t len);
/* TF32 tensor cores for f32 matmul: off by default (f32 results as the CPU's); on with
 * 1 (or KILN_TF32=1 in the environment at the first matmul). */
void cu_backend_set_tf32(int on);
int cu_backend_tf32(void);

#endif
