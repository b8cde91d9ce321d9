/* cu_check.h — the cudaCheck-style macro family of cuda/: each wraps one call into the
 * CUDA runtime or NVRTC and, when it fails, fills the caller's eng_error (ERR_CUDA or
 * ERR_COMPILE) with what failed, the runtime's own words and the file and line of the
 * call, then leaves the function: `return -1` (CU_CHECK), `return NULL` (CU_CHECK_NULL)
 * or `goto LABEL` (CU_CHECK_GOTO). Nothing here prints, exits or aborts: a kernel process
 * lives for the whole session and the error travels back to the cell.
 *
 * A sticky error (an illegal address, a failed launch ...) also marks the session's
 * CUDA context lost (cu_device.h): the message then says so, what was lost and how to
 * go on. Only for files compiled with KILN_HAVE_CUDA.
 */
#ifndef KILN_CU_CHECK_H
#define KILN_CU_CHECK_H

#include <nvrtc.h>
#include "cuda/cu_device.h"

/* Fills err from a failed runtime call (see cu_fail) and returns -1 from the caller. */
#define CU_CHECK(call, err)                                                 \
    do {                                                                    \
        cudaError_t cu_e_ = (call);                                         \
        if (cu_e_ != cudaSuccess)                                           \
            return cu_fail(cu_e_, #call, __FILE__, __LINE__, (err));        \
    } while (0)

/* The same, returning NULL. */
#define CU_CHECK_NULL(call, err)                                            \
    do {                                                                    \
        cudaError_t cu_e_ = (call);                                         \
        if (cu_e_ != cudaSuccess) {                                         \
            cu_fail(cu_e_, #call, __FILE__, __LINE__, (err));               \
            return NULL;                                                    \
        }                                                                   \
    } while (0)

/* The same, jumping to the function's one cleanup label. */
#define CU_CHECK_GOTO(call, err, label)                                     \
    do {                                                                    \
        cudaError_t cu_e_ = (call);                                         \
        if (cu_e_ != cudaSuccess) {                                         \
            cu_fail(cu_e_, #call, __FILE__, __LINE__, (err));               \
            goto label;                                                     \
        }                                                                   \
    } while (0)

/* An NVRTC call other than nvrtcCompileProgram (whose failure is the user's compile
 * error, read from the program's log): fills err as ERR_CUDA and jumps to label. */
#define NVRTC_CHECK_GOTO(call, err, label)                                  \
    do {                                                                    \
        nvrtcResult nv_r_ = (call);                                         \
        if (nv_r_ != NVRTC_SUCCESS) {                                       \
            cu_nvrtc_fail(nv_r_, #call, __FILE__, __LINE__, (err));         \
            goto label;                                                     \
        }                                                                   \
    } while (0)

/* Fills err for a failed NVRTC call and returns -1 (defined in cuda/nvrtc.c, which
 * loads NVRTC). */
int cu_nvrtc_fail(nvrtcResult r, const char *what, const char *file, int line, eng_error *err);

#endif
