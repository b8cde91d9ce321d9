/* sim_internal.h — what the simulator's driver (sim_driver.c) and its checking mode
 * (sim_check.c) share; not for use outside cuda/sim. */
#ifndef KILN_SIM_INTERNAL_H
#define KILN_SIM_INTERNAL_H

#include <stddef.h>
#include "engine/base/error.h"

/* runs argv (argv[0] a path) with stdout+stderr into errpath: the exit status, -1 if it
 * did not run */
int sim_run_compiler(char *const argv[], const char *errpath);
/* a whole file, malloc'ed and NUL-terminated; NULL on failure */
char *sim_read_file(const char *path, size_t *len);
/* the compiler's output as an ERR_COMPILE in err (error lines only, tmpdir removed,
 * err->line from the first cell error) */
void sim_compile_error(const char *out, const char *tmpdir, const char *kname, eng_error *err);

/* ---- checking mode (sim_check.c) ---- */

/* C++ appended to a checking build's translation unit: main() of the checking process */
extern const char sim_check_main[];

/* Builds the checking executable from `full` (the kernel's C++ with sim_check_main) and
 * the runtime's source with cxx under AddressSanitizer, or takes it from the disk cache
 * (key, ext "chk"). *exe_fd: a memfd holding it (kept open while the module lives);
 * *cache 0 or 2; cache_path the entry. 0, or -1 with err. */
int sim_check_build(const char *cxx, const char *full, const char *kname, const char *key, int *exe_fd,
                    int *cache, char *cache_path, size_t cap, eng_error *err);

/* The parameters of a checked kernel. */
typedef struct sim_check_params {
    int n;
    unsigned char is_ptr[64], is_const[64];
    size_t size[64]; /* a scalar's bytes */
} sim_check_params;

/* Runs a launch in a child process: buffers copied in at their exact sizes (arg_bytes),
 * written back for non-const pointers on success; an AddressSanitizer report becomes
 * ERR_RUNTIME naming the kernel's cell line, the access and the simulated thread. */
int sim_check_launch(int exe_fd, const char *kname, const sim_check_params *p, int needs_fibers,
                     const unsigned grid[3], const unsigned block[3], size_t shared, void **args,
                     const size_t *arg_bytes, eng_error *err);

#endif
