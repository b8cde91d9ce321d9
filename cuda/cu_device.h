/* cu_device.h — the session's CUDA device: found lazily, described once, one stream.
 *
 * Nothing here touches the CUDA runtime until a function below is first called, so a
 * kernel on a machine without a GPU (or without a driver: libcuda.so.1 absent) starts as
 * fast as a CPU-only build. cu_device_available() answers "is there a device?" quietly
 * and is cached; cu_device_init() makes the device current and creates the session's
 * one non-blocking stream. Every other CUDA module (the NVRTC driver, the CUDA tensor
 * backend, cuBLAS) calls cu_device_init() before its first CUDA call and then works on
 * cu_stream().
 *
 * Device choice: ordinal 0, or $KILN_CUDA_DEVICE (an ordinal). $KILN_NO_CUDA=1 makes
 * cu_device_available() answer 0 on any machine (tests of the CPU-only path on a GPU).
 *
 * Errors: cu_fail() turns a cudaError_t into an eng_error of kind ERR_CUDA. Sticky errors
 * (an illegal address, a failed launch, a device assert, ...: the CUDA context is
 * corrupt and every later CUDA call returns the same error) mark the context lost: the
 * message says what happened, that every tensor on the device is gone, and that the
 * kernel must be restarted to use the GPU again, while the CPU session state is intact.
 * After that cu_device_init() fails at once with the same explanation, so no module
 * issues CUDA calls into a dead context.
 *
 * Threads: call from the thread that runs cells (the runtime's current device is per
 * thread; cu_device_init() sets it on the calling thread each time it is called from a
 * new one). Only for files compiled with KILN_HAVE_CUDA.
 */
#ifndef KILN_CU_DEVICE_H
#define KILN_CU_DEVICE_H

#include <stddef.h>
#include <cuda_runtime_api.h>
#include "engine/base/error.h"

/* What the session's device is, read once by cu_device_init(). */
typedef struct cu_props {
    int ordinal;                  /* the device's CUDA ordinal */
    char name[256];               /* "NVIDIA H100 80GB HBM3" */
    int major, minor;             /* compute capability: 9, 0 */
    char arch[16];                /* NVRTC's --gpu-architecture: "sm_90" */
    int sm_count;                 /* streaming multiprocessors */
    size_t total_mem;             /* bytes of global memory */
    size_t shared_per_block;      /* default shared memory per block (48 KiB) */
    size_t shared_per_block_optin;/* with cudaFuncAttributeMaxDynamicSharedMemorySize */
    size_t shared_per_sm;         /* shared memory per multiprocessor */
    int regs_per_block;           /* 32-bit registers per block */
    int warp_size;                /* 32 */
    int max_threads_per_block;    /* 1024 */
    int max_block[3];             /* max blockDim.x, .y, .z */
    int max_grid[3];              /* max gridDim.x, .y, .z */
    int l2_bytes;                 /* L2 cache size */
    int mem_bus_bits;             /* memory bus width in bits */
    int runtime_version;          /* cudaRuntimeGetVersion: 13000 */
    int driver_version;           /* cudaDriverGetVersion: the driver's CUDA version */
} cu_props;

/* 1 when a usable CUDA device exists, else 0 (no device, no driver, a driver too old,
 * $KILN_NO_CUDA=1). Asks the runtime once (cudaGetDeviceCount) and caches the answer;
 * never prints, never fails. Still 1 after the context is lost (see cu_context_lost). */
int cu_device_available(void);

/* Selects the device on the calling thread and, the first time, reads its properties
 * and creates the session's stream. Idempotent and cheap after the first call. Fails
 * (ERR_CUDA, -1) when there is no device or the context was lost. */
int cu_device_init(eng_error *err);

/* The device's properties, or NULL when cu_device_init() has not succeeded. */
const cu_props *cu_device_props(void);

/* The session's non-blocking stream (valid after cu_device_init() succeeded). All of
 * Kiln's device work goes on it, so work is ordered without device-wide syncs. */
cudaStream_t cu_stream(void);

/* Waits for the stream; an asynchronous error of earlier work (an illegal address in a
 * kernel) comes back here as ERR_CUDA, with the context marked lost when sticky. */
int cu_sync(eng_error *err);

/* 1 once a sticky error has corrupted the context (the process must restart to use CUDA). */
int cu_context_lost(void);

/* 1 when e is one of CUDA's sticky errors (the context is unusable afterwards). */
int cu_error_is_sticky(cudaError_t e);

/* Fills err (ERR_CUDA, unless err is already set) from a failed call named `what` at
 * file:line, clears the runtime's non-sticky last error, marks the context lost for a
 * sticky error, and returns -1. The message reads, for example:
 *   "cudaLaunchKernel failed: an illegal memory access was encountered
 *    (cudaErrorIllegalAddress) [cuda/nvrtc.c:412]"
 * or, for a sticky error, "the CUDA context is lost: ... ; every tensor on the GPU is
 * gone; restart the kernel to use the GPU again (variables on the CPU are intact)". */
int cu_fail(cudaError_t e, const char *what, const char *file, int line, eng_error *err);

/* GPU time of work on the session's stream, for %time: cu_timer_start records an event
 * on the stream, cu_timer_stop records a second one, waits for it and gives the time
 * between them in milliseconds (cudaEventElapsedTime: about 0.5 us resolution). The
 * events are created once and reused; a timer is not reentrant. */
typedef struct cu_timer {
    cudaEvent_t start, stop; /* NULL until the first start */
} cu_timer;
int cu_timer_start(cu_timer *t, eng_error *err);
int cu_timer_stop(cu_timer *t, double *ms, eng_error *err);
/* Destroys the timer's events (errors ignored). */
void cu_timer_free(cu_timer *t);

/* dlopens a CUDA library that is loaded at first use rather than linked (its static
 * initialisers cost milliseconds at every start): "libnvrtc" is looked for as
 * libnvrtc.so.<major> beside the libcudart in use, then by soname through the loader's
 * path, then as libnvrtc.so. NULL with why filled ("libnvrtc.so.13: <dlerror>") when it cannot be loaded. */
void *cu_dlopen(const char *stem, char *why, size_t whylen);

/* The driver's cuLaunchKernel, from the runtime's cudaGetDriverEntryPointByVersion (libcuda
 * is never linked), or NULL where it cannot be had. It takes a CUfunction (the built-in
 * kernels: cudaGetFuncBySymbol) or a CUkernel (NVRTC's modules: cudaLibraryGetKernel) and
 * returns a CUresult (0: launched). It costs the host less per launch than <<<>>> or
 * cudaLaunchKernel (bench/launch_paths.cu: 3.39 against 4.06 and 3.88 us on an H100). */
typedef int (*cu_launch_fn)(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                            unsigned bz, unsigned shmem, void *stream, void **args, void **extra);
cu_launch_fn cu_driver_launch(void);

/* One line about the device for %gpu and logs: "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs,
 * 79.1 GiB)", or "no CUDA device" — into buf (always terminated). */
void cu_device_describe(char *buf, size_t n);

#endif
