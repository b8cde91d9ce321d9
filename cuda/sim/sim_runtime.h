/* sim_runtime.h — the CUDA simulator's runtime: runs a kernel's grid on the CPU.
 *
 * A kernel is compiled by the host C++ compiler against cuda/sim/kiln_sim.h (the CUDA
 * emulation header) into a *thread body*: a function that runs one CUDA thread,
 * `void body(void *args, sim_thread *t)`. It must start with `kiln_sim_cur = t;` (the
 * header's per-host-thread pointer that threadIdx, blockIdx... read) and then call the
 * kernel. sim_launch runs the body once per thread of every block:
 *   - blocks are spread over the host's CPUs (OpenMP threads), one block at a time per
 *     host thread, so `static thread_local` variables are per block (that is how the
 *     header implements static __shared__);
 *   - with needs_fibers 0 the threads of a block run one after the other on the host
 *     thread's own stack (right for kernels without barriers or warp operations);
 *   - with needs_fibers 1 each thread is a fiber (own mmap'ed stack, 512 KiB like a
 *     GPU's per-thread limit, MAP_NORESERVE, above a 64 KiB guard; reused across blocks) and a round-robin scheduler switches fibers at
 *     __syncthreads() and at warp operations (shuffles, ballots, __syncwarp), so
 *     shared-memory algorithms see the ordering a GPU gives them.
 * The body reaches the runtime only through t->ops (a table of function pointers), so
 * a dlopen'ed kernel .so needs no symbol from the kiln executable.
 *
 * Barrier rules (stricter than a GPU, so that bugs show): a __syncthreads() completes
 * when every thread of the block that has not returned waits at the same
 * __syncthreads() (same file and line); threads that returned count as arrived. Threads
 * waiting at different __syncthreads(), or a block where no thread can go on (some at
 * a block barrier, some at a warp barrier), end the launch with an error message that
 * names the block and where its threads wait. A warp operation waits for the live lanes
 * of its warp (the mask argument is not used to pick lanes).
 *
 * Errors are values: sim_launch returns 0, or -1 with a one-line message in err. A
 * failed assert() / __trap() in a kernel ends its block and reports file and line.
 *
 * Statically compiled kernels (C++ files compiled with kiln_sim.h into kiln itself):
 * launch with the KILN_SIM_LAUNCH macro of kiln_sim.h, e.g.
 *     char msg[256];
 *     if (KILN_SIM_LAUNCH(my_kernel, dim3(blocks), dim3(256), 0, 1, msg, sizeof msg,
 *                         out, in, n) < 0) ... msg ...
 * (arguments: kernel, grid, block, dynamic shared bytes, needs_fibers, err, errlen, then
 * the kernel's arguments). Write dynamic shared memory there as
 * `KILN_EXTERN_SHARED(float, smem);` (kiln_sim.h's spelling of `extern __shared__ float
 * smem[];`; the sim driver rewrites the latter itself for cell kernels).
 */
#ifndef KILN_SIM_RUNTIME_H
#define KILN_SIM_RUNTIME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest dynamic shared memory a launch may ask for (CUDA's default 48 KiB). */
#define SIM_MAX_SHARED (48u * 1024u)
#define SIM_MAX_THREADS 1024u

typedef struct sim_uint3 {
    unsigned x, y, z;
} sim_uint3;

typedef struct sim_thread sim_thread;

/* Kernel debugging (a debug build, KILN_SIM_DEBUG: see cuda/sim/sim_debug.c). One scalar
 * local or parameter of the stopped thread, formatted by the kernel's own code. */
typedef struct sim_dbg_var {
    char name[40];
    char type[40];     /* "int", "const float *", "float[8]", "?" */
    char value[96];    /* the value as text ("(not shown)" for a struct) */
    const void *ptr;   /* a pointer's value (is_ptr) */
    int is_ptr;
} sim_dbg_var;

/* The thread a debug build reports on (on 0: none). */
typedef struct sim_dbg_target {
    int on;
    sim_uint3 block, thread;
} sim_dbg_target;

/* What a kernel body may ask of the runtime. */
typedef struct sim_ops {
    /* __syncthreads() at file:line (site: the call site's identity, two calls on one
     * line differ); returns when the block's barrier completes (or never, when the
     * launch fails: the fiber is abandoned) */
    void (*syncthreads)(sim_thread *t, const char *file, int line, const void *site);
    /* a warp barrier; returns the mask of the warp's lanes that took part */
    unsigned (*syncwarp)(sim_thread *t);
    /* ends the block with an error (assert, __trap); does not return */
    void (*trap)(sim_thread *t, const char *what, const char *file, int line);
    /* debug builds, in the target thread only: a line is about to run (vars: the locals
     * and parameters in scope); a function of the kernel is entered (enter 1) or left */
    void (*dbg_line)(sim_thread *t, const char *file, int line, const char *func, const sim_dbg_var *vars, int n);
    void (*dbg_frame)(sim_thread *t, const char *func, int enter);
    const sim_dbg_target *dbg;     /* the target thread (never NULL) */
} sim_ops;

/* One simulated thread as the kernel sees it (the fields kiln_sim.h reads). */
struct sim_thread {
    sim_uint3 thread_idx;          /* threadIdx */
    sim_uint3 block_idx;           /* blockIdx */
    sim_uint3 block_dim;           /* blockDim */
    sim_uint3 grid_dim;            /* gridDim */
    unsigned linear;               /* x + y*bx + z*bx*by within the block */
    unsigned lane;                 /* linear % 32 */
    unsigned xch_parity;           /* which half of warp_xch the next exchange uses */
    unsigned long long *warp_xch;  /* this warp's exchange slots: [2][32] */
    void *dyn_shared;              /* the host thread's dynamic shared buffer (fixed address) */
    const sim_ops *ops;            /* the runtime's functions */
    void *rt;                      /* runtime-private */
};

typedef void (*sim_body)(void *args, sim_thread *t);

/* Runs body for every thread of grid x block. shared: dynamic shared bytes (at most
 * SIM_MAX_SHARED). needs_fibers: 0 only when the kernel uses no __syncthreads, warp
 * operation or __syncwarp (the fast path; such a call then fails the launch). Returns
 * 0, or -1 with err (errlen bytes) filled. Thread-safe; launches do not overlap. */
int sim_launch(sim_body body, void *args, const unsigned grid[3], const unsigned block[3],
               size_t shared, int needs_fibers, char *err, size_t errlen);

/* Number of host threads blocks are spread over (OpenMP's). */
int sim_host_threads(void);

/* Isolated mode, for the simulator's worker process (sim_isolate.c): each host thread
 * gets a signal stack and notes its stack's end, for sim_fault_describe. */
void sim_runtime_isolate(void);

/* Debug builds: the thread to report on and the functions that get its lines and
 * frames (the worker's, sim_isolate.c); target NULL or target->on 0 turns it off. */
typedef void (*sim_dbg_line_fn)(sim_thread *t, const char *file, int line, const char *func,
                                const sim_dbg_var *vars, int n);
typedef void (*sim_dbg_frame_fn)(sim_thread *t, const char *func, int enter);
void sim_debug_set(const sim_dbg_target *target, sim_dbg_line_fn line, sim_dbg_frame_fn frame);

/* From a fault's signal handler on a host thread of the grid: "thread (x,y,z) of block
 * (x,y,z)" (the simulated thread running) in out; returns 0 when no block runs on this
 * host thread, 2 when addr is in that thread's stack guard (a stack overflow), else 1. */
int sim_fault_describe(const void *addr, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
