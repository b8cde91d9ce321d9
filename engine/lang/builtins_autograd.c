/* builtins_autograd.c — param, backward, zero_grad, set_grad_enabled, is_grad_enabled and
 * detach: the language's face of engine/train/autograd.c, one function per line of
 * builtins_autograd.def. */
#include "engine/lang/builtins_autograd.h"

#include "engine/train/autograd.h"

int bi_param(eng_call *c, value *out)
{
    tensor *t;
    if (c->argv[0].type != VAL_TENSOR)
        return eng_fail(c->err, ERR_TYPE, "param: argument 1 must be a tensor, got %s",
                        value_type_name(c->argv[0].type));
    if (!(t = ag_param(c->argv[0].as.t, c->err)))
        return -1;
    *out = value_tensor(t);
    return 0;
}

int bi_backward(eng_call *c, value *out)
{
    if (c->argv[0].type != VAL_TENSOR)
        return eng_fail(c->err, ERR_TYPE, "backward: argument 1 must be a tensor, got %s",
                        value_type_name(c->argv[0].type));
    *out = value_void();
    return ag_backward(c->argv[0].as.t, c->err);
}

int bi_zero_grad(eng_call *c, value *out)
{
    for (int i = 0; i < c->argc; i++)
        if (c->argv[i].type != VAL_TENSOR)
            return eng_fail(c->err, ERR_TYPE, "zero_grad: argument %d must be a tensor, got %s", i + 1,
                            value_type_name(c->argv[i].type));
    for (int i = 0; i < c->argc; i++) {
        tensor *t = c->argv[i].as.t;
        tensor_decref(t->grad);
        t->grad = NULL;
    }
    *out = value_void();
    return 0;
}

int bi_set_grad_enabled(eng_call *c, value *out)
{
    int on;
    if (arg_bool(c, 0, &on))
        return -1;
    ag_set_grad_mode(on != 0);
    *out = value_void();
    return 0;
}

int bi_is_grad_enabled(eng_call *c, value *out)
{
    (void)c;
    *out = value_bool(ag_grad_mode());
    return 0;
}

int bi_detach(eng_call *c, value *out)
{
    tensor *t;
    if (c->argv[0].type != VAL_TENSOR)
        return eng_fail(c->err, ERR_TYPE, "detach: argument 1 must be a tensor, got %s",
                        value_type_name(c->argv[0].type));
    if (!(t = ag_detach(c->argv[0].as.t, c->err)))
        return -1;
    *out = value_tensor(t);
    return 0;
}
