/* builtins_nn.c — the language's face of engine/train/nn.c, one function per line of
 * builtins_nn.def: argument conversion and defaults; the work is in nn_*.
 *
 * Tensor arguments are borrowed from argv (no conversion from numbers, except mse's,
 * which accepts numbers as builtins_tensor's binary ops do); batch_norm's running
 * statistics must be tensors, since it updates them in place.
 */
#include "engine/lang/builtins_nn.h"

#include "engine/train/nn.h"

/* argument i as a tensor (borrowed), or -1 with an error naming the built-in */
static int tensor_at(eng_call *c, int i, tensor **t)
{
    if (c->argv[i].type != VAL_TENSOR)
        return eng_fail(c->err, ERR_TYPE, "%s: argument %d must be a tensor, got %s", c->name, i + 1,
                        value_type_name(c->argv[i].type));
    *t = c->argv[i].as.t;
    return 0;
}

static int int_at(eng_call *c, int i, int lo, int *out)
{
    int64_t v;
    if (arg_int(c, i, &v))
        return -1;
    if (v < lo || v > 1 << 30)
        return eng_fail(c->err, ERR_VALUE, "%s: argument %d must be between %d and %d, got %lld", c->name, i + 1, lo,
                        1 << 30, (long long)v);
    *out = (int)v;
    return 0;
}

int bi_linear(eng_call *c, value *out)
{
    tensor *x = NULL, *w = NULL, *b = NULL;
    if (tensor_at(c, 0, &x) || tensor_at(c, 1, &w) || (c->argc > 2 && tensor_at(c, 2, &b)))
        return -1;
    return value_put_tensor(out, nn_linear(x, w, b, c->err));
}

static int softmax_common(eng_call *c, value *out, int log)
{
    tensor *x = NULL;
    int64_t dim = -1;
    if (tensor_at(c, 0, &x) || (c->argc > 1 && arg_int(c, 1, &dim)))
        return -1;
    return value_put_tensor(out, log ? nn_log_softmax(x, (int)dim, c->err) : nn_softmax(x, (int)dim, c->err));
}

int bi_softmax(eng_call *c, value *out) { return softmax_common(c, out, 0); }
int bi_log_softmax(eng_call *c, value *out) { return softmax_common(c, out, 1); }

int bi_cross_entropy(eng_call *c, value *out)
{
    tensor *logits = NULL, *labels = NULL;
    if (tensor_at(c, 0, &logits) || tensor_at(c, 1, &labels))
        return -1;
    return value_put_tensor(out, nn_cross_entropy(logits, labels, c->err));
}

int bi_mse(eng_call *c, value *out)
{
    tensor *a = NULL, *b = NULL;
    if (arg_tensor(c, 0, &a))
        return -1;
    if (arg_tensor(c, 1, &b)) {
        tensor_decref(a);
        return -1;
    }
    int rc = value_put_tensor(out, nn_mse(a, b, c->err));
    tensor_decref(a);
    tensor_decref(b);
    return rc;
}

int bi_accuracy(eng_call *c, value *out)
{
    tensor *logits = NULL, *labels = NULL;
    if (tensor_at(c, 0, &logits) || tensor_at(c, 1, &labels))
        return -1;
    return value_put_tensor(out, nn_accuracy(logits, labels, c->err));
}

int bi_dropout(eng_call *c, value *out)
{
    tensor *x = NULL;
    double p;
    int training;
    if (tensor_at(c, 0, &x) || arg_double(c, 1, &p) || arg_bool(c, 2, &training))
        return -1;
    return value_put_tensor(out, nn_dropout(x, p, training, eng_session_rng(c->session), c->err));
}

int bi_layer_norm(eng_call *c, value *out)
{
    tensor *x = NULL, *g = NULL, *b = NULL;
    double eps = 1e-5;
    if (tensor_at(c, 0, &x) || tensor_at(c, 1, &g) || tensor_at(c, 2, &b) || (c->argc > 3 && arg_double(c, 3, &eps)))
        return -1;
    return value_put_tensor(out, nn_layer_norm(x, g, b, eps, c->err));
}

int bi_batch_norm(eng_call *c, value *out)
{
    tensor *x = NULL, *g = NULL, *b = NULL, *rm = NULL, *rv = NULL;
    int training;
    double momentum = 0.1, eps = 1e-5;
    if (tensor_at(c, 0, &x) || tensor_at(c, 1, &g) || tensor_at(c, 2, &b) || tensor_at(c, 3, &rm) ||
        tensor_at(c, 4, &rv) || arg_bool(c, 5, &training) || (c->argc > 6 && arg_double(c, 6, &momentum)) ||
        (c->argc > 7 && arg_double(c, 7, &eps)))
        return -1;
    return value_put_tensor(out, nn_batch_norm(x, g, b, rm, rv, training, momentum, eps, c->err));
}

int bi_conv2d(eng_call *c, value *out)
{
    tensor *x = NULL, *w = NULL, *b = NULL;
    int stride = 1, padding = 0, i = 2;
    if (tensor_at(c, 0, &x) || tensor_at(c, 1, &w))
        return -1;
    if (c->argc > 2 && c->argv[2].type == VAL_TENSOR)
        b = c->argv[i++].as.t; /* conv2d(x, w, b, ...) */
    if ((c->argc > i && int_at(c, i, 1, &stride)) || (c->argc > i + 1 && int_at(c, i + 1, 0, &padding)))
        return -1;
    if (c->argc > i + 2)
        return eng_fail(c->err, ERR_TYPE, "conv2d: too many arguments (conv2d(x, w[, b, stride, padding]))");
    return value_put_tensor(out, nn_conv2d(x, w, b, stride, padding, c->err));
}

static int pool_common(eng_call *c, value *out, int max)
{
    tensor *x = NULL;
    int k, stride = 0;
    if (tensor_at(c, 0, &x) || int_at(c, 1, 1, &k) || (c->argc > 2 && int_at(c, 2, 1, &stride)))
        return -1;
    return value_put_tensor(out, max ? nn_max_pool2d(x, k, stride, c->err) : nn_avg_pool2d(x, k, stride, c->err));
}

int bi_max_pool2d(eng_call *c, value *out) { return pool_common(c, out, 1); }
int bi_avg_pool2d(eng_call *c, value *out) { return pool_common(c, out, 0); }

int bi_embedding(eng_call *c, value *out)
{
    tensor *idx = NULL, *table = NULL;
    if (tensor_at(c, 0, &idx) || tensor_at(c, 1, &table))
        return -1;
    return value_put_tensor(out, nn_embedding(idx, table, c->err));
}

static int kaiming_common(eng_call *c, value *out, int uniform)
{
    int64_t fan_in, shape[TENSOR_MAXDIM];
    int nd;
    if (arg_int(c, 0, &fan_in) || args_dims(c, 1, &nd, shape))
        return -1;
    tensor_rng *rng = eng_session_rng(c->session);
    return value_put_tensor(out, uniform ? nn_kaiming_uniform(rng, fan_in, nd, shape, c->err)
                            : nn_kaiming_normal(rng, fan_in, nd, shape, c->err));
}

int bi_kaiming(eng_call *c, value *out) { return kaiming_common(c, out, 0); }
int bi_kaiming_uniform(eng_call *c, value *out) { return kaiming_common(c, out, 1); }

int bi_xavier(eng_call *c, value *out)
{
    int64_t fi, fo;
    if (arg_int(c, 0, &fi) || arg_int(c, 1, &fo))
        return -1;
    return value_put_tensor(out, nn_xavier_uniform(eng_session_rng(c->session), fi, fo, c->err));
}
