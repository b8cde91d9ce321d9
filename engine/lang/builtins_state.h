/* builtins_state.h — the C functions behind engine/lang/builtins_state.def (named tensors
 * in .npz files, model checkpoints, minibatches), which engine/lang/builtins.c includes
 * into its table. Each follows eng_builtin_fn: 0 with *out a new reference, or -1 with
 * c->err filled.
 */
#ifndef KILN_BUILTINS_STATE_H
#define KILN_BUILTINS_STATE_H

#include "engine/lang/value.h"

#define BUILTIN(name, fn, mn, mx, ret, sig, doc) int fn(eng_call *c, value *out);
#include "engine/lang/builtins_state.def"
#undef BUILTIN

#endif
