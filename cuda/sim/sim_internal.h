/* sim_internal.h — what the simulator's driver (sim_driver.c) and its checking mode
 * (sim_check.c) share; not for use outside cuda/sim. */
#ifndef KILN_SIM_INTERNAL_H
#define KILN_SIM_INTERNAL_H

#include <stddef.h>
#include "cuda/sim/sim_runtime.h"
#include "engine/base/error.h"
#include "engine/base/strbuf.h"
#include "engine/tensor/kdriver.h"

#include <sys/types.h>

/* Waits for child pid (status into *status), waking every few ms to look at the
 * engine's interrupt flag (tensor_interrupt_flag) and at limit_s seconds (0: none); on
 * either, kills the child's process group and the child, reaps it and returns
 * SIM_WAIT_INTERRUPTED or SIM_WAIT_TIMEOUT. 0 when it ended, -1 on a wait error. */
#define SIM_WAIT_INTERRUPTED 1
#define SIM_WAIT_TIMEOUT 2
int sim_wait_child(pid_t pid, int *status, double limit_s);

/* runs argv (argv[0] a path) with stdout+stderr into errpath, in its own process group,
 * for at most KILN_SIM_COMPILE_TIMEOUT seconds (default 120), interruptible: the exit
 * status, -1 if it did not run, -SIM_WAIT_INTERRUPTED or -SIM_WAIT_TIMEOUT */
int sim_run_compiler(char *const argv[], const char *errpath);
/* err for a negative sim_run_compiler status */
void sim_compiler_failed(int st, const char *cxx, eng_error *err);
/* a whole file, malloc'ed and NUL-terminated; NULL on failure */
char *sim_read_file(const char *path, size_t *len);
/* the compiler's output as an ERR_COMPILE in err (error lines only, tmpdir removed,
 * err->line from the first cell error) */
void sim_compile_error(const char *out, const char *tmpdir, const char *kname, eng_error *err);

/* ---- debug builds (sim_debug.c) ---- */

/* Appends src (a translation unit with #line directives) to out with the debug hooks
 * of kiln_sim.h (KILN_SIM_DEBUG) added on the lines they belong to; 0, or -1 out of
 * memory. */
int sim_debug_instrument(strbuf *out, const char *src);

/* ---- checking mode (sim_check.c) ---- */

/* C++ appended to a checking build's translation unit: main() of the checking process */
extern const char sim_check_main[];

/* Builds the checking executable from `full` (the kernel's C++ with sim_check_main) and
 * the runtime's source with cxx under AddressSanitizer, or takes it from the disk cache
 * (key, ext "chk"). *exe_fd: a memfd holding it (kept open while the module lives);
 * *cache 0 or 2; cache_path the entry. 0, or -1 with err. */
int sim_check_build(const char *cxx, const char *full, const char *kname, const char *key, int *exe_fd,
                    int *cache, char *cache_path, size_t cap, eng_error *err);

/* The parameters of a kernel (for checked and isolated launches). */
typedef struct sim_check_params {
    int n;
    unsigned char is_ptr[64], is_const[64];
    size_t size[64];   /* a scalar's bytes */
    unsigned elem[64]; /* a pointer's element bytes */
    char name[64][48]; /* the parameter's name */
} sim_check_params;

/* Runs a launch in a child process: buffers copied in at their exact sizes (arg_bytes),
 * written back for non-const pointers on success; an AddressSanitizer report becomes
 * ERR_RUNTIME naming the kernel's cell line, the access and the simulated thread. */
int sim_check_launch(int exe_fd, const char *kname, const sim_check_params *p, int needs_fibers,
                     const unsigned grid[3], const unsigned block[3], size_t shared, void **args,
                     const size_t *arg_bytes, eng_error *err);


/* ---- isolated launches (sim_isolate.c) ---- */

/* Runs a launch of a fast-mode kernel in the simulator's worker process (started on
 * demand, again after a crash): the library loaded from so_fd (lib: its identity), the
 * arguments' buffers shared with the worker through a guarded memfd and copied back on
 * success; a fault, a stack overflow or the worker's death becomes ERR_CUDA naming the
 * kernel, the simulated thread and block and, where it can tell, the cell's line and
 * the argument; an interrupt (tensor_interrupt_flag) kills the worker: ERR_INTERRUPT.
 * arg_bytes as launch_sized's. */
int sim_isolated_launch(int so_fd, const void *lib, const char *kname, const sim_check_params *p, int needs_fibers,
                        const unsigned grid[3], const unsigned block[3], size_t shared, void **args,
                        const size_t *arg_bytes, eng_error *err);

/* The next isolated launches from this thread run under d (NULL: none): a debug build's
 * target thread stops where d says and d->on_stop is called (eng_kdriver.debug). */
void sim_isolate_debug(eng_kdebug *d);

#endif
