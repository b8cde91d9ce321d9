/* nvrtc.h — the NVRTC kernel driver: CUDA C from cells compiled for the session's GPU.
 *
 * cuda_kdriver (engine/tensor/kdriver.h) compiles a translation unit with NVRTC for the device's
 * own architecture (--gpu-architecture=sm_XX from its compute capability), loads the
 * CUBIN with the runtime's library API (cudaLibraryLoadData, cudaLibraryGetKernel: no
 * link to libcuda, so the binary starts where there is no driver) and launches with
 * cudaLaunchKernel on the session's stream (cu_device.h).
 *
 * Finding the kernel: the engine hands plain C++ `__global__ void name(...)`. The driver
 * registers `name` with nvrtcAddNameExpression and loads the mangled name that
 * nvrtcGetLoweredName gives back, so the source is compiled verbatim (its #line
 * directives and overloads intact) and no `extern "C"` is needed.
 *
 * Options: -std=c++17 -lineinfo --gpu-architecture=..., -I<toolkit include> when the
 * toolkit's headers are found ($CUDA_HOME, $CUDA_PATH, /usr/local/cuda), and the words
 * of $KILN_NVRTC_FLAGS (e.g. "--use_fast_math", off by default). A TU that mentions half
 * or bfloat16 gets `#include <cuda_fp16.h>` / `<cuda_bf16.h>` prepended. If NVRTC cannot
 * target the device's exact architecture (a GPU newer than the toolkit), the driver
 * compiles PTX for the newest compute_XX it knows and lets the driver JIT it.
 *
 * Caches: in memory, one loaded library per (TU, kernel, options, architecture, NVRTC
 * version), shared by modules with the same key and refcounted; on disk through
 * cuda/kcache.h (ext "nvrtc": the lowered name, PTX and CUBIN; ext "ptx": PTX alone).
 * A launch does no hashing and no lookup: the engine keeps the module.
 *
 * Errors: a compile error is ERR_COMPILE with NVRTC's messages, which name the cells
 * through the #line directives ("cell[3](5): error: ...", one message per line), and
 * err->line/col at the first error; device errors are ERR_CUDA through cu_fail (cu_device.h).
 * Only built with KILN_HAVE_CUDA. libnvrtc is dlopened at the first compile (not linked:
 * its initialisers would cost every process start about 9 ms); where it cannot be loaded
 * every function here fails with ERR_CUDA saying so. NVRTC itself needs no GPU:
 * cu_nvrtc_ptx and cu_nvrtc_build work on any machine with the toolkit.
 */
#ifndef KILN_CU_NVRTC_H
#define KILN_CU_NVRTC_H

#include <stddef.h>
#include "engine/tensor/kdriver.h"

extern const eng_kdriver cuda_kdriver;

/* PTX for a whole translation unit (the same preparation as compile: prelude and
 * options), for `%ptx NAME` on any machine. arch: "sm_90", "compute_90" or "90"; NULL
 * takes the device's, or "sm_90" when there is no device. Served from the disk cache
 * when it holds it. Malloc'ed text, or NULL with err (ERR_COMPILE, ERR_VALUE). */
char *cu_nvrtc_ptx(const char *src, const char *arch, eng_error *err);
/* The same, telling in info (may be NULL) whether it was compiled or a cache hit. */
char *cu_nvrtc_ptx_info(const char *src, const char *arch, eng_kinfo *info, eng_error *err);

/* What NVRTC built for one kernel of a TU. */
typedef struct cu_nvrtc_image {
    char *lowered;     /* the kernel's mangled name (nvrtcGetLoweredName) */
    char *ptx;         /* NUL-terminated PTX */
    void *cubin;       /* the CUBIN, NULL when compiled to PTX only (compute_XX) */
    size_t cubin_len;  /* its bytes */
    char arch[24];     /* what it was compiled for: "sm_90" or "compute_120" */
} cu_nvrtc_image;

/* Compiles (or reads from the disk cache) the kernel `kname` of `src` for arch ("sm_90";
 * NULL: the device's) into out, no device needed. 0, or -1 with err. The caller frees
 * out with cu_nvrtc_image_free. Used by the driver's compile and by tests. */
int cu_nvrtc_build(const char *src, const char *kname, const char *arch, cu_nvrtc_image *out,
                   eng_kinfo *info, eng_error *err);
void cu_nvrtc_image_free(cu_nvrtc_image *im);

/* Counters since the process started, for tests and %gpu. */
typedef struct cu_nvrtc_stats {
    unsigned long compiles;   /* nvrtcCompileProgram calls that succeeded */
    unsigned long failed;     /* ... that reported a compile error */
    unsigned long mem_hits;   /* compile() served by a library already loaded */
    unsigned long disk_hits;  /* builds served by the disk cache */
    unsigned long disk_puts;  /* entries written to the disk cache */
    unsigned long loaded;     /* libraries loaded on the device now */
} cu_nvrtc_stats;
void cu_nvrtc_get_stats(cu_nvrtc_stats *out);

/* "13.0": NVRTC's version (part of every cache key). */
const char *cu_nvrtc_version(void);

#endif
