/* indexing.h — the language's side of NumPy indexing: x[items] and x[items] op= v with
 * the items of an AST_INDEX node (ints, slices, None, ..., integer tensors, masks)
 * evaluated through the interpreter's callbacks, then handed to engine/tensor's
 * tensor_index / tensor_index_assign (engine/tensor/tensor_index.c). Kept out of
 * interp.c, which calls it for every x[...] on a tensor.
 */
#ifndef KILN_INDEXING_H
#define KILN_INDEXING_H

#include "engine/lang/interp.h"

/* What indexing needs of the interpreter running the cell. */
typedef struct eng_index_env {
    void *ctx;                                  /* the interpreter */
    eng_session *s;                             /* its session */
    eng_error *err;                             /* the error being built */
    int (*eval)(void *ctx, ast *n, value *out); /* n's value (a new reference); -1 with err */
    int (*located)(void *ctx, ast *n);          /* gives the pending error n's position; -1 */
} eng_index_env;

/* base[items] for the AST_INDEX node n: a view, or a new tensor for integer-tensor and
 * mask indices; -1 with the error located */
int eng_index_read(const eng_index_env *e, ast *n, tensor *base, tensor **out);
/* The assignment node asg (target base[items], operator asg->op) with value rhs. When
 * every item is basic, *view is set to the view to write through (the caller's usual
 * in-place path) and nothing is written; otherwise the write is done here and *view is
 * NULL. -1 with the error located. */
int eng_index_assign(const eng_index_env *e, ast *asg, tensor *base, value rhs, tensor **view);

#endif
