/* session.h — engine-internal entry points beyond engine.h (tests, fuzzing). */
#ifndef KILN_SESSION_H
#define KILN_SESSION_H

#include "engine/engine.h"
#include "engine/base/error.h"

/* Parses and checks code against the session without running anything; fills up to
 * max_errs errors and returns how many there were. For the fuzzer and unit tests. */
int eng_check_only(eng_session *s, const char *code, eng_error *errs, int max_errs);

/* ---- shared by session.c and its neighbours (session_report.c, session_eval.c) ---- */
struct eng_source;
struct eng_trace;
/* printf into a new malloc'ed string (NULL when out of memory) */
char *eng_fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sends errs[0..nshown) of a cell to the sink as one error, with "... and N more" when
 * ntotal > nshown; err_src and trace (both may be NULL) locate a runtime error inside a
 * function defined in another cell and give its call chain. */
/* line `line` of src as "    text" (at most 200 bytes of it around col, '…' where cut) and
 * "    ^" under column col, two strings to free; 0, or -1 when there is no such line */
int eng_source_excerpt(const struct eng_source *src, int line, int col, char **text, char **caret);
void eng_report(eng_session *s, const struct eng_source *src, const eng_error *errs, int nshown, int ntotal,
                const struct eng_source *err_src, const struct eng_trace *trace);

/* ---- completion's view of the code (complete_context.c, for session_complete.c) ---- */
struct eng_builtin;
struct eng_func;
extern const char *const eng_cuda_words[];        /* CUDA built-ins for a kernel body, NULL-ended */
int eng_complete_in_kernel(const char *code, int cursor); /* inside a __global__/__device__ body? */
int eng_complete_dot_type(eng_session *s, const char *code, int dot); /* VAL_* before code[dot], or -1 */
int eng_builtin_takes(const struct eng_builtin *b, int vtype); /* first argument of that type? */
int eng_func_takes(const struct eng_func *fn, int vtype);

#endif
