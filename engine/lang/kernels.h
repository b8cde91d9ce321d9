/* kernels.h — the session's CUDA C: __device__ functions and __global__ kernels.
 *
 * A cell's `__global__` / `__device__` definition (engine/lang/parse.c: AST_KERNEL) is kept
 * here verbatim with the cell and line it came from. __device__ definitions are kept in
 * definition order (a redefinition of a name replaces it in place); __global__ kernels
 * carry their parsed signature (eng_kparam, engine/tensor/kdriver.h). A launch
 * `k<<<grid, block[, shared]>>>(args)` is checked here against the signature and the
 * driver's limits, then compiled through the driver of the tensors' backend (the
 * translation unit: every __device__ source in order, then the kernel's, each after a
 * `#line N "cell[k]"`) and run.
 *
 * Ownership: the table owns its kernels, their strings and their compiled modules
 * (given back to the driver that built them when a kernel is replaced, when a
 * __device__ function changes the translation unit, and on %reset). Every function
 * fills eng_error and returns -1 / NULL on failure.
 */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stdint.h>
#include "engine/tensor/kdriver.h"
#include "engine/lang/value.h"

typedef struct eng_kernel {
    char *name;            /* the function's name (malloc'ed) */
    int is_global;         /* 1 __global__ (launchable), 0 __device__ */
    char *source;          /* verbatim, #define lines before it included (malloc'ed) */
    char *defines;         /* the session's #defines it sees, as text that precedes it in a
                              translation unit (eng_kernel_prelude), or NULL (malloc'ed) */
    char *cell;            /* the cell it came from: "cell[3]", "kernels.kn" (malloc'ed) */
    int line;              /* line of source's first line within cell */
    eng_kparam *params;    /* __global__: its parameters (malloc'ed), else NULL */
    int nparams;
    char *signature;       /* "__global__ void k(float *out, int n)" (malloc'ed) */
    /* __global__: the compiled module, kept while the translation unit is unchanged */
    eng_kmodule *mod;      /* NULL until the first launch */
    const eng_kdriver *drv; /* the driver that built mod */
    int mod_check;         /* mod is a checking build (%sim check: 1) or a debug build (2) */
    unsigned mod_gen;      /* the table's dev_gen that mod was built against */
    eng_kinfo info;        /* what its compile reported */
    int compiled;          /* info holds a compile's report (kept after %reset of mod) */
    long launches;         /* launches so far */
} eng_kernel;

/* An object-like `#define NAME value` of an earlier cell that became a host constant
 * (engine/lang/defines.c): later definitions see it while the global NAME still holds
 * the value it made. */
typedef struct eng_kdefine {
    char *name;            /* malloc'ed */
    char *text;            /* "#undef NAME\n#line L \"cell\"\n#define NAME value\n" (malloc'ed) */
    int global;            /* the global's index */
    value v;               /* the int or float it made */
} eng_kdefine;

typedef struct eng_ktable {
    eng_kernel **items;    /* every definition, in definition order */
    int n, cap;
    eng_kdefine *defs;     /* the session's #defines, in the order first made */
    int ndefs, capdefs;
    unsigned dev_gen;      /* bumped when a __device__ definition changes */
    int check;             /* %sim check: compile checking builds */
    /* following one thread of a kernel (engine/lang/kdebug.c) */
    eng_kdebug kdbg;       /* the thread, breakpoints and on_stop of debugged launches */
    int kdbg_thread_set;   /* %debug_thread chose the thread */
    unsigned kdbg_sel[2][3]; /* ... its block and thread */
    int kdbg_trace;        /* %ktrace: lines printed per launch (0: off) */
    int kdbg_count;        /* stops in the launch running */
    int kdbg_bps;          /* the debugger set breakpoints in kernel code */
    void *kdbg_session;    /* the session (for output and the debugger) */
    int kdbg_dap;          /* this launch stops in the debugger (breakpoints, a step in) */
    int kdbg_stopped;      /* the debugger is stopped inside a kernel: no launch until it goes on */
    char kdbg_cond[ENG_KBPS][160]; /* kdbg.bp[i]'s condition ("" none) */
    const value *kdbg_args; /* the launch's arguments (during a debugged launch) */
    int kdbg_nargs;
    struct eng_kcellpath *kdbg_paths; /* cell name -> debugger path (malloc'ed) */
    int kdbg_npaths;
} eng_ktable;

eng_ktable *eng_ktable_new(void);               /* NULL when out of memory */
void eng_ktable_free(eng_ktable *t);
void eng_ktable_clear(eng_ktable *t);           /* %reset: every definition goes */

/* The definition named name (__global__ or __device__), or NULL. */
eng_kernel *eng_kernel_find(const eng_ktable *t, const char *name, int len);

/* sizeof of a C type as written ("float", "unsigned long", "const float *", "float4"):
 * bytes, or -1 for a type it does not know. Host code's `sizeof(T)` (parse.c). */
long eng_ctype_sizeof(const char *text, size_t len);

/* Parses the parameter list of the function `name` in a __global__ definition's source.
 * *params is malloc'ed (NULL when there are none). An unsupported type (a struct, a
 * template, a reference, a pointer to a pointer...) is an error naming the parameter. */
int eng_kernel_parse_params(const char *src, const char *name, eng_kparam **params, int *nparams,
                            eng_error *err);

/* Adds or replaces a definition. A __global__ one's parameters are parsed here. defines
 * (may be NULL) is the text of the session's #defines it sees (eng_kernel_prelude);
 * it goes before the source in every translation unit. A redefinition with the very
 * same source and defines keeps what was compiled. */
int eng_kernel_define(eng_ktable *t, const char *src, int srclen, const char *defines, const char *name,
                      int is_global, const char *cell, int line, eng_error *err);


/* The translation unit for kernel k (malloc'ed): the __device__ sources in order, then
 * k's, each after its #line directive. */
char *eng_kernel_tu(const eng_ktable *t, const eng_kernel *k);

/* A grid or block size: an int, or a tuple of 1 to 3 ints from dim3(x, y, z); each
 * at least 1. what names it in messages ("grid", "block"). */
int eng_kernel_dims(value v, const char *kname, const char *what, unsigned out[3], eng_error *err);

/* Checks a launch of k with argc argument values (borrowed) against its signature and
 * the driver's limits, compiles k if needed, and launches it. On failure err is set;
 * for a compile error, *details (malloc'ed, may be NULL) receives the compiler's
 * messages, one per line, for the report. */
int eng_kernel_launch(eng_ktable *t, eng_kernel *k, const unsigned grid[3], const unsigned block[3],
                      int64_t shared, const value *args, int argc, char **details, eng_error *err);

/* A __global__ definition checked where it is made: compiles k for the driver of the
 * current backend (the module is kept: the first launch on that backend reuses it).
 * -1 with err (and *details, the compiler's messages) when the compiler rejects the
 * code or the compile was interrupted; err->line/col then point at the compiler's first
 * error when it lies in `cell` (whose text starts at line first_line of the name), else
 * stay 0. 0 when it compiled, and also when it could not be compiled here for a reason
 * that is not the code (no C++ compiler, no driver, out of memory): the launch says so. */
int eng_kernel_check_def(eng_ktable *t, eng_kernel *k, const char *cell, int first_line, char **details,
                         eng_error *err);

/* Compiles k (if needed) for the driver of the current backend, without launching;
 * for %ptx. Returns the module, or NULL with err (and *details) set. */
eng_kmodule *eng_kernel_module(eng_ktable *t, eng_kernel *k, const eng_kdriver **drv, char **details,
                               eng_error *err);

/* The message for argument i of k having the wrong kind (a tensor where a scalar is
 * declared or the other way round), or NULL when got_tensor suits the parameter. The
 * checker and the launch use the same words. buf receives it. */
const char *eng_kernel_kind_error(const eng_kernel *k, int i, int got_tensor, const char *got, char *buf,
                                  size_t n);

/* "k takes 4 arguments (float *out, ..., int n), 3 given" into buf. */
const char *eng_kernel_count_error(const eng_kernel *k, int argc, char *buf, size_t n);

/* Text for inspect and %whos: the signature, attributes of the last compile, and
 * (with_source) the source. malloc'ed. */
char *eng_kernel_describe(const eng_kernel *k, int with_source);
/* "regs 32, static shared 0 B, max threads 1024, compiled in 812 ms" or "not compiled yet" */
void eng_kernel_attrs(const eng_kernel *k, char *buf, size_t n);

#endif
