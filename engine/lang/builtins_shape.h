/* builtins_shape.h — the C functions behind engine/lang/builtins_shape.def (shape and index
 * built-ins, the conversion methods), which engine/lang/builtins.c includes into its table.
 * Each follows eng_builtin_fn: 0 with *out a new reference, or -1 with c->err filled.
 */
#ifndef KILN_BUILTINS_SHAPE_H
#define KILN_BUILTINS_SHAPE_H

#include "engine/lang/value.h"

#define BUILTIN(name, fn, mn, mx, ret, sig, doc) int fn(eng_call *c, value *out);
#include "engine/lang/builtins_shape.def"
#undef BUILTIN

#endif
