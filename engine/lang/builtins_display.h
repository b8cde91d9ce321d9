/* builtins_display.h — plot, scatter, hist, imshow and imgrid: the C functions behind
 * engine/lang/builtins_display.def (which engine/lang/builtins.c includes into its table), and
 * eng_display_bundle, which sends a ready bundle of several MIME types as display_data.
 * Each built-in follows eng_builtin_fn: 0 with *out a new reference, or -1 with c->err.
 */
#ifndef KILN_BUILTINS_DISPLAY_H
#define KILN_BUILTINS_DISPLAY_H

#include "engine/engine.h"
#include "engine/lang/value.h"

#define BUILTIN(name, fn, mn, mx, ret, sig, doc) int fn(eng_call *c, value *out);
#include "engine/lang/builtins_display.def"
#undef BUILTIN

/* Flushes pending stdout, then sends b (borrowed) to the running cell's sink as
 * display_data (update 0) or update_display_data (update 1). Returns 0. */
int eng_display_bundle(eng_session *s, const eng_bundle *b, int update, eng_error *err);

#endif
