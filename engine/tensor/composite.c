/* composite.c — the composite ops of engine/tensor/ops.def (OP_COMPOSITE rows): each row's
 * expression, in the language of engine/tensor/op_dsl.h, becomes tensor_NAME(x, p0, err), a
 * chain of front-end calls. Autograd records each primitive step, so a composite's
 * gradient comes for free; the steps run on x's backend like any op.
 */
#include "engine/tensor/tensor.h"

#include <math.h>

#include "engine/tensor/op_dsl.h"

#define OP_DSL_NAMES
#include "engine/tensor/op_dsl.h"

#define OP_COMPOSITE(name, sig, NP, P0, DOM, EXPR, doc)                            \
    tensor *tensor_##name(const tensor *x, double p0, eng_error *err)              \
    {                                                                              \
        dsl_scratch scratch = {.err = err}, *s = &scratch;                         \
        (void)p0;                                                                  \
        tensor *r = (EXPR);                                                        \
        if (r)                                                                     \
            tensor_incref(r);                                                      \
        dsl_free(s);                                                               \
        return r;                                                                  \
    }
#include "engine/tensor/ops.def"

#define OP_DSL_END
#include "engine/tensor/op_dsl.h"
