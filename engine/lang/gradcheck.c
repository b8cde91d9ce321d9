/* gradcheck.c — gradcheck(f, args...): f's gradient from backward (a built-in's rule or
 * set_backward's function) against central finite differences at args. The loss is
 * sum(f(args) * r) for a fixed random r, so one backward gives every input's analytic
 * gradient, and each element of each float tensor argument costs two evaluations of f
 * (grad mode off). It runs in f64 when f accepts f64 inputs, else in the arguments' own
 * dtype with looser tolerances. Prints the worst element of each input; returns a bool.
 */
#include "engine/lang/builtins_custom.h"
#include "engine/lang/interp.h"
#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"
#include "engine/tensor/tensor_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GC_MAX_ELEMENTS 20000 /* two calls of f per element */

typedef struct gc_fn {
    eng_func *fn;          /* a user function, or */
    const eng_builtin *b;  /* a built-in */
    const char *name;
} gc_fn;

static int gc_call(eng_call *c, const gc_fn *f, value *argv, int argc, value *out)
{
    *out = value_void();
    if (f->fn)
        return interp_call(c->session, f->fn, argc, argv, out, c->err);
    eng_call cc = {c->session, f->b->name, argc, argv, c->err};
    return f->b->fn(&cc, out);
}

/* f(argv) as a float tensor (new reference) */
static tensor *gc_forward(eng_call *c, const gc_fn *f, value *argv, int argc)
{
    value y;
    if (gc_call(c, f, argv, argc, &y))
        return NULL;
    if (y.type != VAL_TENSOR || !tensor_dtype_is_float(y.as.t->dtype)) {
        eng_fail(c->err, ERR_TYPE, "gradcheck: %s must return a float tensor, it returned %s", f->name,
                 y.type == VAL_TENSOR ? tensor_dtype_name(y.as.t->dtype) : value_type_name(y.type));
        value_decref(y);
        return NULL;
    }
    return y.as.t;
}

/* sum(y * r) as a 0-d tensor (recorded when grad mode is on) */
static tensor *gc_project(tensor *y, const tensor *r, eng_error *err)
{
    tensor *p = tensor_binary(OP_MUL, y, r, err);
    tensor *l = p ? tensor_reduce(OP_SUM, p, TENSOR_ALLDIMS, 0, err) : NULL;
    tensor_decref(p);
    return l;
}

static int gc_loss(eng_call *c, const gc_fn *f, value *argv, int argc, const tensor *r, double *L)
{
    tensor *y = gc_forward(c, f, argv, argc);
    if (!y)
        return -1;
    tensor *l = gc_project(y, r, c->err);
    int rc = l ? tensor_item(l, L, c->err) : -1;
    tensor_decref(l);
    tensor_decref(y);
    return rc;
}

/* "[1, 2]" of flat index k in shape */
static void unravel(const tensor *t, int64_t k, char *buf, size_t n)
{
    int64_t idx[TENSOR_MAXDIM];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] ? k % t->shape[d] : 0;
        k = t->shape[d] ? k / t->shape[d] : 0;
    }
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (at < n)
        snprintf(buf + at, n - at, "]");
}

typedef struct gc_run {
    int argc;
    value *args;      /* f's arguments, the checked ones replaced by leaves */
    int *checked;     /* 1 for a float tensor argument */
    tensor_dtype dt;  /* F64, or -1: each argument's own dtype */
} gc_run;

static void run_free(gc_run *g)
{
    for (int i = 0; i < g->argc; i++)
        value_decref(g->args[i]);
    free(g->args);
    g->args = NULL;
}

/* One gradcheck in dtype g->dt; 1 pass, 0 fail, -1 error, -2 the forward failed (f64 refused) */
static int gc_run_once(eng_call *c, const gc_fn *f, gc_run *g, const char *note, int *ok_out)
{
    const eng_backend *cpu = eng_backend_linked("cpu");
    int argc = g->argc, rc = -1;
    value *argv = c->argv + 1;
    tensor *y = NULL, *r = NULL, *loss = NULL;
    g->args = calloc((size_t)argc, sizeof *g->args);
    if (!g->args)
        return eng_fail(c->err, ERR_MEMORY, "gradcheck: out of memory");
    ag_set_grad_mode(0);
    for (int i = 0; i < argc; i++) {
        if (!g->checked[i]) {
            g->args[i] = argv[i];
            value_incref(argv[i]);
            continue;
        }
        const tensor *a = argv[i].as.t;
        tensor *cst = tensor_cast(a, (int)g->dt >= 0 ? g->dt : a->dtype, c->err);
        tensor *leaf = cst ? tensor_clone(cst, c->err) : NULL;
        tensor_decref(cst);
        if (!leaf)
            goto out;
        g->args[i] = value_tensor(leaf);
        tensor *p = ag_param(leaf, c->err);
        if (!p)
            goto out;
        tensor_decref(p);
    }
    /* the analytic side: one backward of sum(f(x) * r) */
    ag_set_grad_mode(1);
    y = gc_forward(c, f, g->args, argc);
    if (!y) {
        rc = (int)g->dt >= 0 ? -2 : -1;
        goto out;
    }
    tensor_rng rng = {20261206u, 0};
    const eng_backend *prev = tensor_place(y->storage->backend);
    tensor *r32 = tensor_randn(&rng, y->ndim, y->shape, c->err);
    tensor_place(prev);
    r = r32 ? tensor_cast(r32, y->dtype, c->err) : NULL;
    tensor_decref(r32);
    if (!r || !(loss = gc_project(y, r, c->err)))
        goto out;
    if (loss->requires_grad && ag_backward(loss, c->err))
        goto out;
    ag_set_grad_mode(0);
    int dt_shown = 0, ok = 1;
    char line[512], at[128];
    for (int i = 0; i < argc; i++) {
        if (!g->checked[i])
            continue;
        tensor *leaf = g->args[i].as.t;
        if (!dt_shown) {
            snprintf(line, sizeof line, "gradcheck %s in %s%s:\n", f->name, tensor_dtype_name(leaf->dtype), note);
            eng_stream(c->session, 1, line, strlen(line));
            dt_shown = 1;
        }
        int f64 = leaf->dtype == DT_F64;
        double h = f64 ? 1e-6 : 1e-2, atol = f64 ? 1e-6 : 1e-2, rtol = f64 ? 1e-5 : 1e-2;
        tensor *xv = tensor_clone(leaf, c->err); /* perturbed in place, records nothing */
        tensor *xh = xv ? tensor_to(xv, cpu, c->err) : NULL;
        tensor *gh = leaf->grad ? tensor_to(leaf->grad, cpu, c->err) : NULL;
        int64_t n = tensor_numel(leaf), flat_shape[1] = {n}, worst_k = -1;
        tensor *flat = xv ? tensor_reshape(xv, 1, flat_shape, c->err) : NULL;
        double worst = -1, wa = 0, wn = 0;
        int bad = !xv || !xh || (leaf->grad && !gh) || !flat;
        value keep = g->args[i];
        g->args[i] = value_tensor(xv);
        for (int64_t k = 0; !bad && k < n; k++) {
            double v0 = tensor_get_flat(xh, k), up = v0 + h, down = v0 - h, lp, lm;
            if (!f64) { /* the step the dtype can hold */
                up = (double)(float)up;
                down = (double)(float)down;
            }
            tensor *e = tensor_select(flat, 0, k, c->err);
            bad = !e || tensor_fill(e, up, c->err) || gc_loss(c, f, g->args, argc, r, &lp) ||
                  tensor_fill(e, down, c->err) || gc_loss(c, f, g->args, argc, r, &lm) || tensor_fill(e, v0, c->err);
            tensor_decref(e);
            if (bad)
                break;
            double num = (lp - lm) / (up - down), ana = gh ? tensor_get_flat(gh, k) : 0.0;
            double score = fabs(ana - num) / (atol + rtol * fabs(num));
            if (!(score <= worst) || worst_k < 0) { /* NaN counts as worst */
                worst = score;
                worst_k = k;
                wa = ana;
                wn = num;
            }
        }
        g->args[i] = keep; /* xv's reference goes with the decref below */
        tensor_decref(flat);
        tensor_decref(xh);
        tensor_decref(gh);
        tensor_decref(xv);
        if (bad)
            goto out;
        int pass = worst <= 1.0;
        ok &= pass;
        const char *pname = f->fn ? f->fn->def->list[i]->str : NULL;
        char who[160];
        if (pname)
            snprintf(who, sizeof who, "%s", pname);
        else
            snprintf(who, sizeof who, "argument %d", i + 1);
        if (worst_k < 0)
            snprintf(line, sizeof line, "  %s: no elements\n", who);
        else {
            unravel(leaf, worst_k, at, sizeof at);
            snprintf(line, sizeof line, "  %s: worst at %s: analytic %.6g, numeric %.6g, error %.1e %s\n", who, at,
                     wa, wn, fabs(wa - wn), pass ? "ok" : "FAILED");
        }
        eng_stream(c->session, 1, line, strlen(line));
    }
    if (!ok) {
        snprintf(line, sizeof line, "  (passes when |analytic - numeric| <= %g + %g * |numeric| everywhere)\n",
                 g->dt == DT_F64 ? 1e-6 : 1e-2, g->dt == DT_F64 ? 1e-5 : 1e-2);
        eng_stream(c->session, 1, line, strlen(line));
    }
    *ok_out = ok;
    rc = 0;
out:
    tensor_decref(loss);
    tensor_decref(r);
    tensor_decref(y);
    run_free(g);
    return rc;
}

int bi_gradcheck(eng_call *c, value *out)
{
    gc_fn f = {0};
    value fv = c->argv[0];
    if (fv.type == VAL_FUNC) {
        f.fn = fv.as.fn;
        f.name = f.fn->name;
        if (f.fn->def->nlist != c->argc - 1)
            return eng_fail(c->err, ERR_TYPE, "gradcheck: %s() takes %d argument%s, %d given", f.name,
                            f.fn->def->nlist, eng_s(f.fn->def->nlist), c->argc - 1);
    } else if (fv.type == VAL_STRING && (f.b = eng_builtin_find(fv.as.s->data, (int)fv.as.s->len))) {
        f.name = f.b->name;
        if (c->argc - 1 < f.b->min_args || (f.b->max_args >= 0 && c->argc - 1 > f.b->max_args))
            return eng_fail(c->err, ERR_TYPE, "gradcheck: wrong number of arguments for %s", f.b->signature);
    } else
        return eng_fail(c->err, ERR_TYPE, "gradcheck: argument 1 must be a function (yours or a built-in's name), got %s",
                        value_type_name(fv.type));
    int argc = c->argc - 1, nchecked = 0;
    int64_t total = 0;
    int *checked = calloc((size_t)argc + 1, sizeof *checked);
    if (!checked)
        return eng_fail(c->err, ERR_MEMORY, "gradcheck: out of memory");
    for (int i = 0; i < argc; i++) {
        value v = c->argv[i + 1];
        if (v.type == VAL_TENSOR && tensor_dtype_is_float(v.as.t->dtype)) {
            checked[i] = 1;
            nchecked++;
            total += tensor_numel(v.as.t);
        }
    }
    int rc = -1, ok = 0;
    if (!nchecked) {
        eng_fail(c->err, ERR_VALUE, "gradcheck: %s has no float tensor argument to check", f.name);
        goto done;
    }
    if (total > GC_MAX_ELEMENTS) {
        eng_fail(c->err, ERR_VALUE,
                 "gradcheck: %lld elements in the float tensor arguments, at most %d (each costs two calls of %s): "
                 "check on smaller inputs", (long long)total, GC_MAX_ELEMENTS, f.name);
        goto done;
    }
    int mode = ag_grad_mode();
    gc_run g = {argc, NULL, checked, DT_F64};
    int trace_len = interp_trace_mark(c->session);
    rc = gc_run_once(c, &f, &g, "", &ok);
    if (rc == -2) { /* f refused f64 (a kernel taking float *): in the arguments' own dtype */
        char note[200];
        snprintf(note, sizeof note, " (it does not run in f64: %.120s)", c->err->msg);
        *c->err = (eng_error){0};
        interp_trace_reset(c->session, trace_len);
        g.dt = (tensor_dtype)-1;
        rc = gc_run_once(c, &f, &g, note, &ok);
    }
    ag_set_grad_mode(mode);
done:
    free(checked);
    if (rc)
        return -1;
    *out = value_bool(ok);
    return 0;
}
