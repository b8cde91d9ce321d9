/* sim_backend.h — the simulator backend (cuda/sim_backend.c): the CUDA backend's
 * built-in kernels run by the CUDA simulator on host memory, behind engine/tensor/backend.h.
 * For tests (tests/conformance) and for KILN_BACKEND=sim; always built. */
#ifndef KILN_SIM_BACKEND_H
#define KILN_SIM_BACKEND_H

#include "engine/tensor/backend.h"
#include "cuda/cu_alloc.h"

extern const eng_backend sim_backend;

/* The simulator backend's allocator statistics (the CUDA allocator over host memory). */
void sim_backend_stats(cu_alloc_stats *out);
/* The simulated device's memory from $KILN_SIM_CAPACITY in bytes, 0 for no limit. */
size_t sim_backend_capacity(void);

#endif
