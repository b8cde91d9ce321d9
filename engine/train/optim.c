/* optim.c — SGD, AdamW and schedule-free AdamW (see optim.h): updates with grad
 * recording off, and the registry of optimiser handles the language uses.
 *
 * Each parameter's update is one call of the backend's fused step (adamw_step,
 * sgd_step: one pass, one kernel launch on the GPU) where the backend has it and the
 * tensors qualify (f32 or f64, contiguous, one dtype and device); otherwise a chain of
 * in-place tensor ops, about ten per parameter, which is also the reference the fused
 * steps are tested against (tests/unit/test_optim.c, on a CPU backend without them).
 *
 * AdamW, as fastai's Adam with decoupled weight decay (and PyTorch's AdamW):
 *   p *= 1 - lr*wd                       (not for 1-D parameters unless wd_1d)
 *   m  = beta1 m + (1 - beta1) g
 *   v  = beta2 v + (1 - beta2) g^2
 *   p -= lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)
 * SGD (PyTorch's form, weight decay decoupled as above):
 *   buf = momentum buf + g;  d = nesterov ? g + momentum buf : buf (g when momentum 0)
 *   p -= lr d
 */
#include "engine/train/optim.h"
#include "engine/tensor/tensor_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"

static opt_state *opt_alloc(opt_kind kind, tensor *const *params, int n, eng_error *err)
{
    for (int i = 0; i < n; i++)
        if (!tensor_dtype_is_float(params[i]->dtype)) {
            eng_fail(err, ERR_TYPE, "%s: parameter %d must be a float tensor, got %s", opt_kind_name(kind), i + 1,
                     tensor_dtype_name(params[i]->dtype));
            return NULL;
        }
    opt_state *o = calloc(1, sizeof *o);
    if (o) {
        o->params = calloc((size_t)n + 1, sizeof *o->params);
        o->m = calloc((size_t)n + 1, sizeof *o->m);
        o->v = calloc((size_t)n + 1, sizeof *o->v);
    }
    if (!o || !o->params || !o->m || !o->v) {
        opt_free(o);
        eng_fail(err, ERR_MEMORY, "optimiser: out of memory");
        return NULL;
    }
    o->kind = kind;
    o->n = n;
    for (int i = 0; i < n; i++) {
        tensor_incref(params[i]);
        o->params[i] = params[i];
    }
    return o;
}

opt_state *opt_adamw_new(tensor *const *params, int n, eng_error *err)
{
    opt_state *o = opt_alloc(OPT_ADAMW, params, n, err);
    if (o) {
        o->beta1 = 0.9;
        o->beta2 = 0.99;
        o->eps = 1e-5;
        o->wd = 0.01;
    }
    return o;
}

opt_state *opt_sgd_new(tensor *const *params, int n, eng_error *err)
{
    return opt_alloc(OPT_SGD, params, n, err);
}

opt_state *opt_adamw_sf_new(tensor *const *params, int n, eng_error *err)
{
    opt_state *o = opt_alloc(OPT_ADAMW_SF, params, n, err);
    if (o) {
        o->beta1 = 0.9;
        o->beta2 = 0.999;
        o->eps = 1e-8;
        o->wd = 0.01;
    }
    return o;
}

void opt_free(opt_state *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n; i++) {
        if (o->params)
            tensor_decref(o->params[i]);
        if (o->m)
            tensor_decref(o->m[i]);
        if (o->v)
            tensor_decref(o->v[i]);
    }
    free(o->params);
    free(o->m);
    free(o->v);
    free(o->hist);
    free(o);
}

int opt_set_history(opt_state *o, const double *rows, int n, eng_error *err)
{
    double *h = NULL;
    if (n > 0) {
        h = malloc((size_t)n * OPT_HIST_COLS * sizeof *h);
        if (!h)
            return eng_fail(err, ERR_MEMORY, "optimiser: out of memory");
        memcpy(h, rows, (size_t)n * OPT_HIST_COLS * sizeof *h);
    }
    free(o->hist);
    o->hist = h;
    o->nhist = n;
    return 0;
}

void opt_zero_grad(opt_state *o)
{
    for (int i = 0; i < o->n; i++) {
        tensor_decref(o->params[i]->grad);
        o->params[i]->grad = NULL;
    }
}

/* t op= s */
static int inplace_scalar(op_id op, tensor *t, double s, eng_error *err)
{
    tensor *st = tensor_scalar(s, t->dtype, err);
    if (!st)
        return -1;
    int rc = tensor_binary_inplace(op, t, st, err);
    tensor_decref(st);
    return rc;
}

/* t op= a * s (a borrowed) */
static int inplace_scaled(op_id op, tensor *t, const tensor *a, double s, eng_error *err)
{
    tensor *as = tensor_binary_scalar(OP_MUL, a, s, 1, 0, err);
    if (!as)
        return -1;
    int rc = tensor_binary_inplace(op, t, as, err);
    tensor_decref(as);
    return rc;
}

static int zeros_like(tensor **slot, const tensor *p, eng_error *err)
{
    if (*slot)
        return 0;
    const eng_backend *prev = tensor_place(p->storage->backend); /* moments live with their parameter */
    *slot = tensor_full(p->dtype, p->ndim, p->shape, 0.0, err);
    tensor_place(prev);
    return *slot ? 0 : -1;
}

/* the decoupled weight decay factor of parameter p: 1 - lr*wd, or 1 where it is not decayed */
static double decay_factor(const opt_state *o, const tensor *p, double lr)
{
    return o->wd != 0 && (p->ndim > 1 || o->wd_1d) ? 1 - lr * o->wd : 1;
}

/* the backend has a fused step (has) and it serves p: f32 or f64, and p, its gradient
 * and the state buffers (any may be NULL) contiguous, of p's dtype, on p's backend */
static int fused_ok(int has, const tensor *p, const tensor *g, const tensor *m, const tensor *v)
{
    const eng_backend *be = p->storage->backend;
    if (!has || (p->dtype != DT_F32 && p->dtype != DT_F64) || !tensor_is_contiguous(p))
        return 0;
    const tensor *o[3] = {g, m, v};
    for (int k = 0; k < 3; k++)
        if (o[k] && (o[k]->dtype != p->dtype || !tensor_is_contiguous(o[k]) || o[k]->storage->backend != be))
            return 0;
    return 1;
}

static int adamw_param(opt_state *o, int i, double lr, double bc1, double bc2, eng_error *err)
{
    tensor *p = o->params[i], *g = p->grad;
    if (zeros_like(&o->m[i], p, err) || zeros_like(&o->v[i], p, err))
        return -1;
    const eng_backend *be = p->storage->backend;
    if (fused_ok(be->adamw_step != NULL, p, g, o->m[i], o->v[i])) {
        eng_step_args a = {.lr = lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps, .bc1 = bc1, .bc2 = bc2,
                           .wdf = decay_factor(o, p, lr)};
        return be->adamw_step(p, g, o->m[i], o->v[i], &a, err);
    }
    tensor *m = o->m[i], *v = o->v[i], *g2 = NULL, *den = NULL, *upd = NULL;
    int rc = -1;
    if (inplace_scalar(OP_MUL, m, o->beta1, err) || inplace_scaled(OP_ADD, m, g, 1 - o->beta1, err) ||
        inplace_scalar(OP_MUL, v, o->beta2, err) || !(g2 = tensor_binary(OP_MUL, g, g, err)) ||
        inplace_scaled(OP_ADD, v, g2, 1 - o->beta2, err))
        goto done;
    /* den = sqrt(v / bc2) + eps; upd = m / den */
    tensor_decref(g2);
    if (!(g2 = tensor_binary_scalar(OP_DIV, v, bc2, 1, 0, err)) ||
        !(den = tensor_unary(OP_SQRT, g2, 0, 0, err)) || inplace_scalar(OP_ADD, den, o->eps, err) ||
        !(upd = tensor_binary(OP_DIV, m, den, err)))
        goto done;
    if ((o->wd != 0 && (p->ndim > 1 || o->wd_1d) && inplace_scalar(OP_MUL, p, 1 - lr * o->wd, err)) ||
        inplace_scaled(OP_SUB, p, upd, lr / bc1, err))
        goto done;
    rc = 0;
done:
    tensor_decref(g2);
    tensor_decref(den);
    tensor_decref(upd);
    return rc;
}

/* schedule-free AdamW on parameter i (see optim.h): lr is this step's lr_k, c its
 * averaging weight; p holds y */
static int adamw_sf_param(opt_state *o, int i, double lr, double c, eng_error *err)
{
    tensor *p = o->params[i], *g = p->grad, *g2 = NULL, *den = NULL, *u = NULL, *d = NULL;
    if (!o->m[i]) { /* z starts at the parameter */
        const eng_backend *prev = tensor_place(p->storage->backend);
        o->m[i] = tensor_clone(p, err);
        tensor_place(prev);
        if (!o->m[i])
            return -1;
    }
    if (zeros_like(&o->v[i], p, err))
        return -1;
    tensor *z = o->m[i], *v = o->v[i];
    int rc = -1;
    /* v = beta2 v + (1 - beta2) g^2; u = g / (sqrt(v) + eps) (+ wd y) */
    if (inplace_scalar(OP_MUL, v, o->beta2, err) || !(g2 = tensor_binary(OP_MUL, g, g, err)) ||
        inplace_scaled(OP_ADD, v, g2, 1 - o->beta2, err) || !(den = tensor_unary(OP_SQRT, v, 0, 0, err)) ||
        inplace_scalar(OP_ADD, den, o->eps, err) || !(u = tensor_binary(OP_DIV, g, den, err)))
        goto done;
    if (o->wd != 0 && (p->ndim > 1 || o->wd_1d) && inplace_scaled(OP_ADD, u, p, o->wd, err))
        goto done;
    /* y' = y + c (z - y) + lr (beta1 (1 - c) - 1) u, which is beta1 x' + (1 - beta1) z'
     * with z' = z - lr u and x' = (1 - c) x + c z'; then z = z' */
    if (!(d = tensor_binary(OP_SUB, z, p, err)) || inplace_scaled(OP_ADD, p, d, c, err) ||
        inplace_scaled(OP_ADD, p, u, lr * (o->beta1 * (1 - c) - 1), err) || inplace_scaled(OP_SUB, z, u, lr, err))
        goto done;
    rc = 0;
done:
    tensor_decref(g2);
    tensor_decref(den);
    tensor_decref(u);
    tensor_decref(d);
    return rc;
}

int opt_sf_mode(opt_state *o, int eval, eng_error *err)
{
    if (o->kind != OPT_ADAMW_SF || !o->sf_eval == !eval)
        return 0;
    if (!(o->beta1 > 0))
        return eng_fail(err, ERR_VALUE, "adamw_sf: beta1 must be positive to average (got %g)", o->beta1);
    /* to x: y + (1 - 1/beta1) (z - y); to y: x + (1 - beta1) (z - x) */
    double w = eval ? 1 - 1 / o->beta1 : 1 - o->beta1;
    int saved = ag_grad_mode(), rc = 0;
    ag_set_grad_mode(0);
    for (int i = 0; i < o->n && !rc; i++) {
        if (!o->m[i])
            continue; /* never stepped: x = y = z */
        tensor *d = tensor_binary(OP_SUB, o->m[i], o->params[i], err);
        rc = !d || inplace_scaled(OP_ADD, o->params[i], d, w, err) ? -1 : 0;
        tensor_decref(d);
    }
    ag_set_grad_mode(saved);
    if (!rc)
        o->sf_eval = eval;
    return rc;
}

static int sgd_param(opt_state *o, int i, double lr, eng_error *err)
{
    tensor *p = o->params[i], *g = p->grad, *d = NULL;
    int rc = -1;
    const eng_backend *be = p->storage->backend;
    if (fused_ok(be->sgd_step != NULL, p, g, o->m[i], NULL)) {
        /* the momentum buffer starts at zero: 0 * momentum + g is the op-by-op path's clone of g */
        if (o->beta1 != 0 && zeros_like(&o->m[i], p, err))
            return -1;
        eng_step_args a = {.lr = lr, .beta1 = o->beta1, .wdf = decay_factor(o, p, lr), .nesterov = o->nesterov};
        return be->sgd_step(p, g, o->beta1 != 0 ? o->m[i] : NULL, &a, err);
    }
    if (o->wd != 0 && (p->ndim > 1 || o->wd_1d) && inplace_scalar(OP_MUL, p, 1 - lr * o->wd, err))
        return -1;
    if (o->beta1 == 0)
        return inplace_scaled(OP_SUB, p, g, lr, err);
    if (!o->m[i]) {
        if (!(o->m[i] = tensor_clone(g, err)))
            return -1;
    } else if (inplace_scalar(OP_MUL, o->m[i], o->beta1, err) ||
               tensor_binary_inplace(OP_ADD, o->m[i], g, err))
        return -1;
    if (o->nesterov) {
        if (!(d = tensor_binary_scalar(OP_MUL, o->m[i], o->beta1, 1, 0, err)) ||
            tensor_binary_inplace(OP_ADD, d, g, err))
            goto done;
    } else {
        d = o->m[i];
        tensor_incref(d);
    }
    rc = inplace_scaled(OP_SUB, p, d, lr, err);
done:
    tensor_decref(d);
    return rc;
}

int opt_step(opt_state *o, double lr, eng_error *err)
{
    if (o->kind == OPT_ADAMW_SF && o->sf_eval) /* the gradient was taken at x, not at y */
        return eng_fail(err, ERR_VALUE, "step: the schedule-free optimiser holds its average x (opt_eval): "
                                        "opt_train(opt) before computing the loss");
    int saved = ag_grad_mode(), rc = 0;
    ag_set_grad_mode(0);
    o->steps++;
    double bc1 = 1 - pow(o->beta1, (double)o->steps), bc2 = 1 - pow(o->beta2, (double)o->steps), c = 0;
    if (o->kind == OPT_ADAMW_SF) {
        lr *= (o->warmup > 0 && o->steps < o->warmup ? (double)o->steps / (double)o->warmup : 1) * sqrt(bc2);
        o->sf_lr_max = fmax(o->sf_lr_max, lr);
        o->sf_weight_sum += o->sf_lr_max * o->sf_lr_max;
        c = o->sf_weight_sum > 0 ? o->sf_lr_max * o->sf_lr_max / o->sf_weight_sum : 0;
    }
    for (int i = 0; i < o->n && !rc; i++) {
        tensor *p = o->params[i];
        if (!p->grad)
            continue;
        if (p->grad->ndim != p->ndim || memcmp(p->grad->shape, p->shape, sizeof(int64_t) * (size_t)p->ndim)) {
            rc = eng_fail(err, ERR_SHAPE, "step: parameter %d and its gradient differ in shape", i + 1);
            break;
        }
        rc = o->kind == OPT_ADAMW      ? adamw_param(o, i, lr, bc1, bc2, err)
             : o->kind == OPT_ADAMW_SF ? adamw_sf_param(o, i, lr, c, err)
                                       : sgd_param(o, i, lr, err);
    }
    ag_set_grad_mode(saved);
    return rc;
}

int opt_set(opt_state *o, const char *name, double value, eng_error *err)
{
    int adam = o->kind != OPT_SGD, sf = o->kind == OPT_ADAMW_SF;
    if (!isfinite(value) || value < 0)
        return eng_fail(err, ERR_VALUE, "opt_set: '%s' must be a finite number >= 0, got %g", name, value);
    if (sf && (!strcmp(name, "beta1") || !strcmp(name, "momentum")) && !(value > 0 && value < 1))
        return eng_fail(err, ERR_VALUE, "opt_set: adamw_sf's beta1 must lie in (0, 1), got %g", value);
    if (!strcmp(name, "wd"))
        o->wd = value;
    else if (!strcmp(name, "wd_1d"))
        o->wd_1d = value != 0;
    else if (!strcmp(name, adam ? "beta1" : "momentum") || (adam && !strcmp(name, "momentum")))
        o->beta1 = value;
    else if (adam && !strcmp(name, "beta2"))
        o->beta2 = value;
    else if (adam && !strcmp(name, "eps"))
        o->eps = value;
    else if (!adam && !strcmp(name, "nesterov"))
        o->nesterov = value != 0;
    else if (sf && !strcmp(name, "warmup"))
        o->warmup = (int64_t)value;
    else
        return eng_fail(err, ERR_VALUE, "opt_set: %s has no setting '%s' (%s)", opt_kind_name(o->kind), name,
                        sf     ? "beta1, beta2, eps, wd, wd_1d, warmup"
                        : adam ? "beta1, beta2, eps, wd, wd_1d"
                               : "momentum, nesterov, wd, wd_1d");
    return 0;
}

static tensor *clone_or_null(const tensor *t, int *failed, eng_error *err)
{
    if (!t || *failed)
        return NULL;
    tensor *c = tensor_clone(t, err);
    if (!c)
        *failed = 1;
    return c;
}

opt_state *opt_snapshot(const opt_state *o, eng_error *err)
{
    int saved = ag_grad_mode(), failed = 0;
    ag_set_grad_mode(0);
    opt_state *s = calloc(1, sizeof *s);
    if (s) {
        *s = *o;
        s->hist = NULL; /* the history stays with o */
        s->nhist = 0;
        s->params = calloc((size_t)o->n + 1, sizeof *s->params);
        s->m = calloc((size_t)o->n + 1, sizeof *s->m);
        s->v = calloc((size_t)o->n + 1, sizeof *s->v);
    }
    if (!s || !s->params || !s->m || !s->v) {
        failed = 1;
        eng_fail(err, ERR_MEMORY, "optimiser: out of memory");
    }
    for (int i = 0; s && s->params && s->m && s->v && i < o->n; i++) {
        s->params[i] = clone_or_null(o->params[i], &failed, err);
        s->m[i] = clone_or_null(o->m[i], &failed, err);
        s->v[i] = clone_or_null(o->v[i], &failed, err);
    }
    ag_set_grad_mode(saved);
    if (failed) {
        opt_free(s);
        return NULL;
    }
    return s;
}

static int restore_buf(tensor **dst, tensor *src, eng_error *err)
{
    if (!src) {
        tensor_decref(*dst);
        *dst = NULL;
        return 0;
    }
    if (*dst)
        return tensor_assign(*dst, src, err);
    *dst = tensor_clone(src, err);
    return *dst ? 0 : -1;
}

int opt_restore(opt_state *o, const opt_state *snap, eng_error *err)
{
    int saved = ag_grad_mode(), rc = 0;
    ag_set_grad_mode(0);
    for (int i = 0; i < o->n && !rc; i++)
        rc = tensor_assign(o->params[i], snap->params[i], err) || restore_buf(&o->m[i], snap->m[i], err) ||
                     restore_buf(&o->v[i], snap->v[i], err)
                 ? -1
                 : 0;
    if (!rc) {
        o->beta1 = snap->beta1;
        o->beta2 = snap->beta2;
        o->eps = snap->eps;
        o->wd = snap->wd;
        o->nesterov = snap->nesterov;
        o->wd_1d = snap->wd_1d;
        o->steps = snap->steps;
        o->sf_weight_sum = snap->sf_weight_sum;
        o->sf_lr_max = snap->sf_lr_max;
        o->warmup = snap->warmup;
        o->sf_eval = snap->sf_eval;
    }
    ag_set_grad_mode(saved);
    opt_zero_grad(o);
    return rc;
}

/* ---- registry ---- */

void opt_registry_clear(opt_registry *r)
{
    for (int i = 0; i < r->n; i++)
        opt_free(r->v[i]);
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

static int registry_grow(opt_registry *r, int need)
{
    if (need <= r->cap)
        return 0;
    int cap = r->cap ? 2 * r->cap : 16;
    while (cap < need)
        cap *= 2;
    opt_state **v = realloc(r->v, (size_t)cap * sizeof *v);
    if (!v)
        return -1;
    for (int i = r->cap; i < cap; i++)
        v[i] = NULL;
    r->v = v;
    r->cap = cap;
    return 0;
}

int opt_register(opt_registry *r, opt_state *o)
{
    if (registry_grow(r, r->n + 1)) {
        opt_free(o);
        return -1;
    }
    r->v[r->n++] = o;
    return r->n;
}

int opt_register_at(opt_registry *r, int64_t handle, opt_state *o, eng_error *err)
{
    if (handle < 1 || handle > 1 << 20) {
        opt_free(o);
        return eng_fail(err, ERR_VALUE, "optimiser handle %lld is out of range", (long long)handle);
    }
    if (registry_grow(r, (int)handle)) {
        opt_free(o);
        return eng_fail(err, ERR_MEMORY, "optimiser: out of memory");
    }
    opt_free(r->v[handle - 1]);
    r->v[handle - 1] = o;
    if (handle > r->n)
        r->n = (int)handle;
    return 0;
}

int opt_max_handle(const opt_registry *r) { return r->n; }

const char *opt_kind_name(opt_kind k) { return k == OPT_ADAMW ? "adamw" : k == OPT_ADAMW_SF ? "adamw_sf" : "sgd"; }

int opt_kind_from_name(const char *name)
{
    return !strcmp(name, "adamw") ? OPT_ADAMW : !strcmp(name, "adamw_sf") ? OPT_ADAMW_SF : !strcmp(name, "sgd") ? OPT_SGD : -1;
}

opt_state *opt_lookup(const opt_registry *r, int64_t handle)
{
    return handle >= 1 && handle <= r->n ? r->v[handle - 1] : NULL;
}
