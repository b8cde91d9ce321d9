/* builtins_vocab.h — the C functions behind engine/lang/builtins_vocab.def (which
 * engine/lang/builtins.c includes into its table). Each follows eng_builtin_fn: 0 with
 * *out a new reference, or -1 with c->err filled. clip is builtins_tensor.c's bi_clamp.
 */
#ifndef KILN_BUILTINS_VOCAB_H
#define KILN_BUILTINS_VOCAB_H

#include "engine/lang/value.h"

#define BUILTIN(name, fn, mn, mx, ret, sig, doc) int fn(eng_call *c, value *out);
#include "engine/lang/builtins_vocab.def"
#undef BUILTIN

#endif
