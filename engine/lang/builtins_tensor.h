/* builtins_tensor.h — the C functions behind the language's tensor built-ins, one per
 * line of engine/lang/builtins_tensor.def (which engine/lang/builtins.c includes into its table).
 * Each follows eng_builtin_fn: returns 0 with *out a new reference, or -1 with c->err
 * filled by a message that names the built-in.
 */
#ifndef KILN_BUILTINS_TENSOR_H
#define KILN_BUILTINS_TENSOR_H

#include "engine/lang/value.h"

#define BUILTIN(name, fn, mn, mx, ret, sig, doc) int fn(eng_call *c, value *out);
#include "engine/lang/builtins_tensor.def"
#undef BUILTIN

#endif
