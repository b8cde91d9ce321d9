/* kdebug.h — following one thread of a __global__ kernel on the CUDA simulator: the
 * thread chosen (%debug_thread), the line trace (%ktrace) and the engine's side of a
 * stop (eng_kdebug.on_stop, engine/tensor/kdriver.h). The simulator's side is
 * cuda/sim/sim_debug.c (the instrumented debug build) and sim_isolate.c (the stops). */
#ifndef KILN_KDEBUG_H
#define KILN_KDEBUG_H

#include <stddef.h>
#include "engine/lang/kernels.h"

/* Parses a thread choice: "bx,by,bz tx,ty,tz" (missing numbers are 0: "3 7" is block
 * (3,0,0), thread (7,0,0)), or a condition "blockIdx.x == 3 && threadIdx.x == 7" (the
 * components it does not name are 0). 0, or -1 with why. */
int eng_kdebug_parse_thread(const char *spec, unsigned block[3], unsigned thread[3], char *why, size_t n);

/* Do launches run under the kernel debugger (debug builds)? (%ktrace, or kernel
 * breakpoints from the debugger) */
int eng_kdebug_active(const eng_ktable *t);

/* %debug_thread SPEC|off and %ktrace [N|off] (rest: the magic's line after its name);
 * session: the eng_session (for output). 0, or -1 with err. */
int eng_kdebug_magic_thread(eng_ktable *t, void *session, const char *rest, eng_error *err);
int eng_kdebug_magic_trace(eng_ktable *t, void *session, const char *rest, eng_error *err);

/* A kernel is being defined in cell: when that is the cell running, its debugger path
 * (eng_source.path) is noted, and breakpoints in that path map to the kernel's lines. */
void eng_kdebug_defined(eng_ktable *t, const char *cell);
/* Before a launch: reads the attached debugger's breakpoints inside kernel code (and a
 * pending step in), and sets t->kdbg for them; args: the launch's arguments. */
void eng_kdebug_prepare(eng_ktable *t, const value *args, int argc);
/* After a debugged launch of kname: %ktrace says when the followed thread was not in
 * the launch's grid. */
void eng_kdebug_after(eng_ktable *t, const char *kname, const unsigned grid[3], const unsigned block[3]);
/* Frees what the table's kernel debugging holds. */
void eng_kdebug_free(eng_ktable *t);

/* A stopped variable's value as the trace and the debugger show it: a pointer into an
 * argument as "&x[5]" (the kernel's parameter name), others as their text. */
void eng_kdebug_var_text(const eng_ktable *t, const char *kname, const eng_kvar *v, char *out, size_t n);

#endif
