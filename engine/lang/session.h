/* session.h — engine-internal entry points beyond engine.h (tests, fuzzing). */
#ifndef KILN_SESSION_H
#define KILN_SESSION_H

#include "engine/engine.h"
#include "engine/base/error.h"

/* Parses and checks code against the session without running anything; fills up to
 * max_errs errors and returns how many there were. For the fuzzer and unit tests. */
int eng_check_only(eng_session *s, const char *code, eng_error *errs, int max_errs);

#endif
