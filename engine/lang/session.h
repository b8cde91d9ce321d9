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
void eng_report(eng_session *s, const struct eng_source *src, const eng_error *errs, int nshown, int ntotal,
                const struct eng_source *err_src, const struct eng_trace *trace);

#endif
