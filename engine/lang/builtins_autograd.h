/* builtins_autograd.h — the C functions behind the language's autograd built-ins, one per
 * line of engine/lang/builtins_autograd.def (which engine/lang/builtins.c includes into its table).
 * Each follows eng_builtin_fn: 0 with *out a new reference, or -1 with c->err filled.
 */
#ifndef KILN_BUILTINS_AUTOGRAD_H
#define KILN_BUILTINS_AUTOGRAD_H

#include "engine/lang/value.h"

#define BUILTIN(name, fn, mn, mx, ret, sig, doc) int fn(eng_call *c, value *out);
#include "engine/lang/builtins_autograd.def"
#undef BUILTIN

#endif
