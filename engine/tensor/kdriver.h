/* kdriver.h — how the engine hands a cell's CUDA C to a compiler and launches it.
 *
 * The engine (engine/lang/kernels.c) owns the kernels a session defines: their verbatim
 * source, their parsed signatures (eng_kparam) and the checks made before a launch.
 * A driver owns everything below: compiling a translation unit, caching what it built
 * (in memory and on disk, cuda/kcache.h), and running it. Two drivers exist:
 *   - the CUDA simulator (cuda/sim/), always built: compiles the CUDA C with the host's
 *     C++ compiler against a small emulation header and runs the threads of each block
 *     as fibers on the CPU, on host memory (the CPU backend's tensors);
 *   - NVRTC (cuda/nvrtc.c), built with KILN_HAVE_CUDA: compiles for the device's own
 *     architecture and launches on the session's stream, on device memory.
 * The driver used for a launch is the one of the backend holding the tensors
 * (eng_backend.kernels).
 *
 * Ownership: a driver returns an eng_kmodule it owns; the engine keeps it while the
 * kernel's source is unchanged and gives it back with release(). Every function fills
 * eng_error and returns -1 / NULL on failure; nothing here exits.
 */
#ifndef KILN_KDRIVER_H
#define KILN_KDRIVER_H

#include <stddef.h>
#include "engine/base/error.h"
#include "engine/tensor/tensor.h"

/* The C types a kernel parameter (or a pointer's pointee) may have. */
typedef enum eng_ctype {
    KT_BOOL, KT_I8, KT_U8, KT_I16, KT_U16, KT_I32, KT_U32, KT_I64, KT_U64,
    KT_F16, KT_BF16, KT_F32, KT_F64,
    KT_COUNT
} eng_ctype;

/* One parameter of a __global__ function, as parsed from its source. */
typedef struct eng_kparam {
    char name[64];      /* the parameter's name ("" if unnamed) */
    char type[96];      /* its type as written, normalised spaces: "const float *" */
    eng_ctype ctype;    /* the scalar type, or the pointee's type for a pointer */
    int is_ptr;         /* 1 for T *, T *__restrict__, const T * ... */
    int is_const;       /* pointee is const (pointers only) */
} eng_kparam;

/* Size in bytes of a ctype's value as passed to a kernel. */
size_t eng_ctype_size(eng_ctype t);
/* The tensor dtype a pointer to ctype takes, or -1 if none (u16, u32, u64, i8, i16). */
int eng_ctype_dtype(eng_ctype t);

/* What a compile produced, for %whos and inspect. */
typedef struct eng_kinfo {
    double compile_ms;     /* wall time of this compile (0 when served from a cache) */
    int cache;             /* 0 compiled now, 1 the session's memory, 2 the disk cache */
    int regs;              /* registers per thread (-1 where the driver cannot tell) */
    size_t static_shared;  /* bytes of static __shared__ memory (-1 cast: unknown) */
    int max_threads;       /* max threads per block for this kernel */
    char cache_path[512];  /* the disk cache entry ("" if none) */
} eng_kinfo;

/* The device's limits the engine checks a launch against. */
typedef struct eng_klimits {
    unsigned max_block[3];     /* max blockDim.x, .y, .z */
    unsigned max_threads;      /* max threads in a block */
    unsigned max_grid[3];      /* max gridDim.x, .y, .z */
    size_t max_shared;         /* max dynamic + static shared bytes per block (opt-in) */
} eng_klimits;

typedef struct eng_kmodule eng_kmodule; /* a compiled kernel, owned by its driver */

/* ---- kernel debugging (the simulator's debug builds: compile with check = 2) ----
 * A debug build reports the lines one chosen thread runs; a launch made while a
 * driver's debug(d) is in force stops that thread where d says and calls d->on_stop,
 * which answers how to go on. */
typedef struct eng_kvar {
    char name[40];
    char type[40];      /* "int", "const float *", "float[8]" */
    char value[96];     /* as text; "(not shown)" for a struct */
    int arg;            /* a pointer into pointer argument arg (0-based), else -1 */
    long long elem;     /* ... at this element of it */
    int outside;        /* ... which is outside it (before its start or past its end) */
} eng_kvar;

typedef struct eng_kframe {
    char func[64];      /* the function (the kernel, or a __device__ function it called) */
    char file[32];      /* "cell[3]" */
    int line;           /* its line in that cell (callers: the line of the call) */
} eng_kframe;

#define ENG_KSTOP_VARS 64
#define ENG_KSTOP_FRAMES 16
#define ENG_KSTOP_CALLERS 4     /* caller frames whose locals come with a stop */
#define ENG_KSTOP_CVARS 32
#define ENG_KBPS 32

typedef struct eng_kstop {
    int reason;                 /* 0 a step, 1 a breakpoint, 2 the first line (stop_first) */
    int stepping;               /* a step would have stopped here too */
    unsigned block[3], thread[3], block_dim[3], grid_dim[3];
    int nframes;                /* innermost first */
    eng_kframe frames[ENG_KSTOP_FRAMES];
    int nvars;                  /* the innermost frame's parameters and locals in scope */
    eng_kvar vars[ENG_KSTOP_VARS];
    /* the locals of frames 1..ENG_KSTOP_CALLERS (callers) as at their last line: the call */
    int ncvars[ENG_KSTOP_CALLERS];
    eng_kvar cvars[ENG_KSTOP_CALLERS][ENG_KSTOP_CVARS];
    int nargs;                  /* the launch's pointer arguments as they are now (live) */
    const void *arg_data[64];   /* their bytes (NULL for a scalar), valid during on_stop */
    size_t arg_bytes[64];
} eng_kstop;

enum { ENG_KCONTINUE, ENG_KNEXT, ENG_KSTEP_IN, ENG_KSTEP_OUT, ENG_KABORT };

typedef struct eng_kbp {
    char file[32];      /* "cell[3]" */
    int line;
} eng_kbp;

typedef struct eng_kdebug {
    unsigned block[3], thread[3];  /* the thread to follow */
    int stop_first;                /* stop at the first line it runs */
    int nbp;                       /* breakpoints (in that thread only) */
    eng_kbp bp[ENG_KBPS];
    /* called at each stop, in the launching thread; returns ENG_K*: ENG_KABORT ends the
     * launch with ERR_INTERRUPT. It may change bp / nbp (read again after it returns). */
    int (*on_stop)(struct eng_kdebug *d, const char *kname, const eng_kstop *s);
    void *ctx;
} eng_kdebug;

typedef struct eng_kdriver {
    const char *name; /* "sim", "cuda" */

    /* Compiles `src`, a whole translation unit whose lines carry #line directives
     * naming the cells ("cell[3]"), and finds the __global__ function `kname` whose
     * parameters are params[0..nparams). check 1 asks for a checking build (the
     * simulator: AddressSanitizer), 2 for a debug build (the simulator: each line
     * reports to the debugger, see debug below; other drivers build as usual). On a compile error: ERR_COMPILE with the compiler's
     * messages (first lines) in err->msg, and the first error's cell line in err->line
     * where it can be read. */
    eng_kmodule *(*compile)(const char *src, const char *kname, const eng_kparam *params, int nparams,
                            int check, eng_kinfo *info, eng_error *err);
    void (*release)(eng_kmodule *m);

    /* The device's limits (the simulator's are CUDA's usual ones). */
    void (*limits)(eng_klimits *out);

    /* Launches with grid/block sizes and dynamic shared bytes; args[i] points at the
     * value of parameter i, already converted to its ctype (a pointer parameter: at a
     * void * holding the tensor's first element's address). Errors the launch itself
     * reports (a barrier not reached by all threads, an out-of-bounds access seen by a
     * checking build, an illegal address on the GPU) come back in err. */
    int (*launch)(eng_kmodule *m, const unsigned grid[3], const unsigned block[3], size_t shared,
                  void **args, eng_error *err);

    /* Optional (NULL where the driver has none): launch, also given each argument's
     * extent: arg_bytes[i] is the number of bytes pointer argument i may reach from its
     * address (the tensor's storage from its first element), 0 for a scalar. The
     * simulator's checking build (compile with check 1) needs it to copy each buffer at
     * its exact size into an AddressSanitizer process; its plain launch refuses a checking
     * module. The engine calls launch_sized instead of launch whenever it is non-NULL. */
    int (*launch_sized)(eng_kmodule *m, const unsigned grid[3], const unsigned block[3], size_t shared,
                        void **args, const size_t *arg_bytes, eng_error *err);

    /* Waits for launched work to finish (a no-op for the simulator). */
    int (*sync)(eng_error *err);

    /* The compiled form as text (NVRTC: PTX; the simulator: the generated C++), malloc'ed;
     * NULL with err set if there is none. */
    char *(*code)(eng_kmodule *m, eng_error *err);

    /* Optional: compiles `src` to the driver's text form without a device (NVRTC: PTX
     * for sm_90), malloc'ed; NULL with err set. %ptx uses it when the session's tensors
     * are not on this driver's device. */
    char *(*code_offline)(const char *src, eng_error *err);

    /* Optional: the next launches from this thread run under d (NULL: no debugging);
     * their modules must be debug builds (compile with check = 2) for it to stop. */
    void (*debug)(eng_kdebug *d);
} eng_kdriver;

/* The simulator (cuda/sim/sim_driver.c). */
extern const eng_kdriver sim_kdriver;

#endif
