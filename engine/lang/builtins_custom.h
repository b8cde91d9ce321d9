/* builtins_custom.h — the C functions behind engine/lang/builtins_custom.def (which
 * engine/lang/builtins.c includes into its table). Each follows eng_builtin_fn. */
#ifndef KILN_BUILTINS_CUSTOM_H
#define KILN_BUILTINS_CUSTOM_H

#include "engine/lang/value.h"

#define BUILTIN(name, fn, mn, mx, ret, sig, doc) int fn(eng_call *c, value *out);
#include "engine/lang/builtins_custom.def"
#undef BUILTIN

#endif
