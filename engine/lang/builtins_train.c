/* builtins_train.c — adamw, adamw_sf, sgd, opt_set, step, opt_eval, opt_train,
 * opt_zero_grad, onecycle_lr, onecycle_mom, lr_find, fit and fit_history: the language's face of engine/train/optim.c and engine/train/train.c.
 * An optimiser is an int handle into the session's registry (engine/train/optim.h). */
#include "engine/lang/builtins_train.h"

#include "engine/lang/interp.h"
#include "engine/lang/builtins_display.h"
#include "engine/train/optim.h"
#include "engine/train/train.h"

static int new_opt(eng_call *c, value *out, opt_state *(*make)(tensor *const *, int, eng_error *))
{
    tensor *ps[256];
    if (c->argc > 256)
        return eng_fail(c->err, ERR_VALUE, "%s: at most 256 parameters", c->name);
    for (int i = 0; i < c->argc; i++) {
        if (c->argv[i].type != VAL_TENSOR)
            return eng_fail(c->err, ERR_TYPE, "%s: argument %d must be a tensor, got %s", c->name, i + 1,
                            value_type_name(c->argv[i].type));
        ps[i] = c->argv[i].as.t;
    }
    opt_state *o = make(ps, c->argc, c->err);
    if (!o)
        return -1;
    int h = opt_register(&c->session->optims, o);
    if (h < 0)
        return eng_fail(c->err, ERR_MEMORY, "%s: out of memory", c->name);
    *out = value_int(h);
    return 0;
}

int bi_adamw(eng_call *c, value *out) { return new_opt(c, out, opt_adamw_new); }
int bi_sgd(eng_call *c, value *out) { return new_opt(c, out, opt_sgd_new); }
int bi_adamw_sf(eng_call *c, value *out) { return new_opt(c, out, opt_adamw_sf_new); }

static int arg_model(eng_call *c, int i, eng_func **fn)
{
    if (c->argv[i].type != VAL_FUNC)
        return eng_fail(c->err, ERR_TYPE, "%s: argument %d must be a function tensor model(tensor x), got %s",
                        c->name, i + 1, value_type_name(c->argv[i].type));
    *fn = c->argv[i].as.fn;
    if (fn[0]->def->nlist != 1)
        return eng_fail(c->err, ERR_TYPE, "%s: the model %s() must take one argument (the batch), it takes %d",
                        c->name, fn[0]->name, fn[0]->def->nlist);
    return 0;
}

static int arg_tensor_only(eng_call *c, int i, tensor **t)
{
    if (c->argv[i].type != VAL_TENSOR)
        return eng_fail(c->err, ERR_TYPE, "%s: argument %d must be a tensor, got %s", c->name, i + 1,
                        value_type_name(c->argv[i].type));
    *t = c->argv[i].as.t;
    return 0;
}

int bi_opt_set(eng_call *c, value *out)
{
    opt_state *o;
    const char *name;
    double v;
    if (arg_optimiser(c, 0, &o) || arg_string(c, 1, &name) || arg_double(c, 2, &v))
        return -1;
    *out = value_void();
    return opt_set(o, name, v, c->err);
}

int bi_step(eng_call *c, value *out)
{
    opt_state *o;
    double lr;
    if (arg_optimiser(c, 0, &o) || arg_double(c, 1, &lr))
        return -1;
    *out = value_void();
    return opt_step(o, lr, c->err);
}

static int sf_mode(eng_call *c, value *out, int eval)
{
    opt_state *o;
    if (arg_optimiser(c, 0, &o))
        return -1;
    *out = value_void();
    return opt_sf_mode(o, eval, c->err);
}

int bi_opt_eval(eng_call *c, value *out) { return sf_mode(c, out, 1); }
int bi_opt_train(eng_call *c, value *out) { return sf_mode(c, out, 0); }

int bi_opt_zero_grad(eng_call *c, value *out)
{
    opt_state *o;
    if (arg_optimiser(c, 0, &o))
        return -1;
    opt_zero_grad(o);
    *out = value_void();
    return 0;
}

int bi_onecycle_lr(eng_call *c, value *out)
{
    double st, total, mx;
    if (arg_double(c, 0, &st) || arg_double(c, 1, &total) || arg_double(c, 2, &mx))
        return -1;
    *out = value_float(train_onecycle_lr(st, total, mx));
    return 0;
}

int bi_onecycle_mom(eng_call *c, value *out)
{
    double st, total;
    if (arg_double(c, 0, &st) || arg_double(c, 1, &total))
        return -1;
    *out = value_float(train_onecycle_mom(st, total));
    return 0;
}

/* ---- the train layer's host (engine/train/train.h): the session and the model ---- */

typedef struct model_call {
    eng_session *s;
    eng_func *model;
    int trace_mark; /* the cell's call chain before the built-in called the model */
} model_call;

/* model(x) as a new tensor reference; an error keeps its place in the model's cell */
static tensor *host_forward(void *ctx, tensor *x, eng_error *err)
{
    model_call *m = ctx;
    value arg = value_tensor(x), out = value_void();
    if (interp_call(m->s, m->model, 1, &arg, &out, err))
        return NULL;
    if (out.type != VAL_TENSOR) {
        eng_fail(err, ERR_TYPE, "%s() must return a tensor (logits), got %s", m->model->name,
                 value_type_name(out.type));
        value_decref(out);
        return NULL;
    }
    return out.as.t;
}

static int host_display(void *ctx, const eng_bundle *b, int update, eng_error *err)
{
    return eng_display_bundle(((model_call *)ctx)->s, b, update, err);
}

static void host_stream(void *ctx, const char *text, size_t len)
{
    eng_stream(((model_call *)ctx)->s, 1, text, len);
}

static void host_recovered(void *ctx)
{
    model_call *m = ctx;
    interp_trace_reset(m->s, m->trace_mark);
}

static train_host host_of(model_call *m)
{
    m->trace_mark = interp_trace_mark(m->s);
    train_host h = {m, host_forward, host_display, host_stream, eng_session_rng(m->s), &m->s->ctx.interrupt,
                    &m->s->nfits, host_recovered};
    return h;
}

int bi_lr_find(eng_call *c, value *out)
{
    eng_func *fn;
    opt_state *o;
    tensor *x = NULL, *y = NULL;
    int64_t bs = 64;
    double lr;
    if (arg_model(c, 0, &fn) || arg_optimiser(c, 1, &o) || arg_tensor_only(c, 2, &x) || arg_tensor_only(c, 3, &y) ||
        (c->argc > 4 && arg_int(c, 4, &bs)))
        return -1;
    model_call m = {c->session, fn, 0};
    train_host h = host_of(&m);
    if (train_lr_find(&h, o, x, y, bs, 0, &lr, c->err))
        return -1;
    *out = value_float(lr);
    return 0;
}

int bi_fit(eng_call *c, value *out)
{
    eng_func *fn;
    opt_state *o;
    tensor *xt = NULL, *yt = NULL, *xv = NULL, *yv = NULL;
    int64_t epochs, bs = 64;
    double acc = 0, max_lr = 0;
    if (arg_model(c, 0, &fn) || arg_optimiser(c, 1, &o) || arg_tensor_only(c, 2, &xt) || arg_tensor_only(c, 3, &yt) ||
        arg_tensor_only(c, 4, &xv) || arg_tensor_only(c, 5, &yv) || arg_int(c, 6, &epochs) ||
        (c->argc > 7 && arg_int(c, 7, &bs)) || (c->argc > 8 && arg_double(c, 8, &max_lr)))
        return -1;
    model_call m = {c->session, fn, 0};
    train_host h = host_of(&m);
    if (train_fit(&h, o, xt, yt, xv, yv, epochs, bs, max_lr, &acc, c->err))
        return -1;
    *out = value_float(acc);
    return 0;
}

int bi_fit_history(eng_call *c, value *out)
{
    opt_state *o;
    if (arg_optimiser(c, 0, &o))
        return -1;
    int64_t shape[2] = {o->nhist, OPT_HIST_COLS};
    double none = 0;
    tensor *t = tensor_from_doubles(o->nhist ? o->hist : &none, DT_F64, 2, shape, c->err);
    if (!t)
        return -1;
    *out = value_tensor(t);
    return 0;
}
