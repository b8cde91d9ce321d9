/* custom_ops.c — set_backward: a function of the language (which may launch its own
 * kernels) becomes one autograd node whose gradient is another function of the
 * language. The table of pairs, the signature check, the hook interp.c runs around a
 * call (begin, finish) and the callback autograd's AG_CUSTOM node calls during
 * backward (engine/train/autograd.h: the node knows the callback, not the language).
 * See engine/lang/custom_ops.h and docs/autograd.md ("Custom nodes").
 */
#include "engine/lang/custom_ops.h"
#include "engine/lang/builtins_custom.h"
#include "engine/train/autograd.h"
#include "engine/tensor/tensor_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the table ---- */

static eng_custom_pair *find_pair(const eng_session *s, const char *fname)
{
    const eng_custom_table *t = s->customs;
    for (int i = 0; t && i < t->n; i++)
        if (!strcmp(t->v[i].fname, fname))
            return &t->v[i];
    return NULL;
}

const char *eng_custom_backward_of(const eng_session *s, const char *fname)
{
    const eng_custom_pair *p = find_pair(s, fname);
    return p ? p->bwname : NULL;
}

int eng_custom_set(eng_session *s, const char *fname, const char *bwname, eng_error *err)
{
    char *bw = strdup(bwname);
    if (!bw)
        return eng_fail(err, ERR_MEMORY, "set_backward: out of memory");
    eng_custom_pair *p = find_pair(s, fname);
    if (p) {
        free(p->bwname);
        p->bwname = bw;
        return 0;
    }
    if (!s->customs && !(s->customs = calloc(1, sizeof *s->customs))) {
        free(bw);
        return eng_fail(err, ERR_MEMORY, "set_backward: out of memory");
    }
    eng_custom_table *t = s->customs;
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        eng_custom_pair *v = realloc(t->v, sizeof *v * (size_t)cap);
        if (!v) {
            free(bw);
            return eng_fail(err, ERR_MEMORY, "set_backward: out of memory");
        }
        t->v = v;
        t->cap = cap;
    }
    char *f = strdup(fname);
    if (!f) {
        free(bw);
        return eng_fail(err, ERR_MEMORY, "set_backward: out of memory");
    }
    t->v[t->n++] = (eng_custom_pair){f, bw};
    return 0;
}

void eng_custom_clear(eng_session *s)
{
    eng_custom_table *t = s->customs;
    for (int i = 0; t && i < t->n; i++) {
        free(t->v[i].fname);
        free(t->v[i].bwname);
    }
    if (t)
        t->n = 0;
}

void eng_custom_free(eng_session *s)
{
    eng_custom_clear(s);
    if (s->customs)
        free(s->customs->v);
    free(s->customs);
    s->customs = NULL;
}

void eng_custom_describe(const eng_session *s, const char *name, char *buf, size_t n)
{
    const eng_custom_table *t = s->customs;
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; t && i < t->n && at < n; i++) {
        if (!strcmp(t->v[i].fname, name))
            at += (size_t)snprintf(buf + at, n - at, "%sbackward: %s", at ? "; " : "", t->v[i].bwname);
        if (at < n && !strcmp(t->v[i].bwname, name))
            at += (size_t)snprintf(buf + at, n - at, "%sbackward of %s", at ? "; " : "", t->v[i].fname);
    }
}

/* ---- the signature ---- */

/* "void name(tensor x, float a)" of a defined function */
static void sig_of(const eng_func *fn, char *buf, size_t n)
{
    size_t at = (size_t)snprintf(buf, n, "%s %s(", ast_type_name(fn->def->type), fn->name);
    for (int i = 0; i < fn->def->nlist && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s %s", i ? ", " : "", ast_type_name(fn->def->list[i]->type),
                               fn->def->list[i]->str);
    if (at < n)
        snprintf(buf + at, n - at, ")");
}

/* the signature f's backward must have, with suggested names */
static void expected_of(const eng_func *f, const char *bwname, char *buf, size_t n)
{
    size_t at = (size_t)snprintf(buf, n, "void %s(", bwname);
    int np = f->def->nlist;
    for (int i = 0; i < np && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s %s, ", ast_type_name(f->def->list[i]->type), f->def->list[i]->str);
    if (at < n)
        at += (size_t)snprintf(buf + at, n - at, "tensor out, tensor dout");
    for (int i = 0; i < np && at < n; i++)
        if (f->def->list[i]->type == TY_TENSOR)
            at += (size_t)snprintf(buf + at, n - at, ", tensor d%s", f->def->list[i]->str);
    if (at < n)
        snprintf(buf + at, n - at, ")");
}

int eng_custom_check(const eng_func *f, const eng_func *bw, const char *who, eng_error *err)
{
    int np = f->def->nlist, ntensor = 0;
    for (int i = 0; i < np; i++)
        ntensor += f->def->list[i]->type == TY_TENSOR;
    char fs[512], want[512], got[512];
    sig_of(f, fs, sizeof fs);
    if (f->def->type != TY_TENSOR || !ntensor)
        return eng_fail(err, ERR_TYPE, "%s: %s must take at least one tensor and return a tensor, it is %s", who,
                        f->name, fs);
    int ok = bw->def->type == TY_VOID && bw->def->nlist == np + 2 + ntensor;
    for (int i = 0; ok && i < bw->def->nlist; i++)
        ok = bw->def->list[i]->type == (i < np ? f->def->list[i]->type : TY_TENSOR);
    if (ok)
        return 0;
    expected_of(f, bw->name, want, sizeof want);
    sig_of(bw, got, sizeof got);
    return eng_fail(err, ERR_TYPE,
                    "%s: %s does not fit %s: expected %s (%s's %d parameter%s, then its output and the output's "
                    "gradient, then one gradient buffer to fill per tensor parameter), got %s",
                    who, bw->name, fs, want, f->name, np, np == 1 ? "" : "s", got);
}

/* ---- the node's context and callback ---- */

typedef struct custom_ctx {
    eng_session *s;   /* whose interpreter runs the backward */
    int grad_mode;    /* the caller's, put back after the body */
    eng_func *bw;     /* the backward, held */
    int argc;         /* f's arguments ... */
    value args[];     /* ... as the body received them, held */
} custom_ctx;

static void ctx_release(void *p)
{
    custom_ctx *c = p;
    if (!c)
        return;
    for (int i = 0; i < c->argc; i++)
        value_decref(c->args[i]);
    eng_func_decref(c->bw);
    free(c);
}

static int ctx_backward(void *p, tensor *const *in, int nin, tensor *out, tensor *gout, tensor *const *grads,
                        eng_error *err)
{
    custom_ctx *c = p;
    (void)in;
    int n = c->argc + 2 + nin;
    value *argv = calloc((size_t)n, sizeof *argv);
    if (!argv)
        return eng_fail(err, ERR_MEMORY, "backward: out of memory");
    for (int i = 0; i < c->argc; i++)
        argv[i] = c->args[i];
    argv[c->argc] = value_tensor(out); /* borrowed: interp_call takes its own references */
    argv[c->argc + 1] = value_tensor(gout);
    for (int i = 0; i < nin; i++)
        argv[c->argc + 2 + i] = value_tensor(grads[i]);
    value ret = value_void();
    int rc = interp_call(c->s, c->bw, n, argv, &ret, err);
    value_decref(ret);
    free(argv);
    return rc;
}

static const ag_custom_fn custom_fns = {ctx_backward, ctx_release};

/* ---- interp.c's hook ---- */

int eng_custom_wants(const eng_session *s, const eng_func *fn, const value *args, int argc)
{
    if (!s->customs || !s->customs->n || !ag_grad_mode() || !find_pair(s, fn->name))
        return 0;
    for (int i = 0; i < argc; i++)
        if (args[i].type == VAL_TENSOR && args[i].as.t->requires_grad)
            return 1;
    return 0;
}

int eng_custom_begin(eng_session *s, eng_func *fn, const value *args, int argc, void **ctx, eng_error *err)
{
    const char *bwname = eng_custom_backward_of(s, fn->name);
    int g = bwname ? eng_global_find(s, bwname, (int)strlen(bwname)) : -1;
    if (g < 0 || !s->globals[g].defined || s->globals[g].v.type != VAL_FUNC)
        return eng_fail(err, ERR_NAME, "%s(): its backward %s (set_backward) is not a function any more", fn->name,
                        bwname ? bwname : "?");
    eng_func *bw = s->globals[g].v.as.fn;
    if (eng_custom_check(fn, bw, fn->name, err))
        return -1;
    custom_ctx *c = calloc(1, sizeof *c + sizeof(value) * (size_t)argc);
    if (!c)
        return eng_fail(err, ERR_MEMORY, "%s(): out of memory", fn->name);
    c->s = s;
    c->bw = bw;
    bw->refcount++;
    c->argc = argc;
    for (int i = 0; i < argc; i++) {
        c->args[i] = args[i];
        value_incref(args[i]);
    }
    c->grad_mode = ag_set_grad_mode(0);
    *ctx = c;
    return 0;
}

int eng_custom_finish(void *ctx, int rc, value *out, eng_error *err)
{
    custom_ctx *c = ctx;
    ag_set_grad_mode(c->grad_mode);
    if (rc) {
        ctx_release(c);
        return -1;
    }
    if (out->type != VAL_TENSOR) {
        ctx_release(c);
        return 0;
    }
    tensor *in[64];
    int nin = 0;
    for (int i = 0; i < c->argc; i++)
        if (c->args[i].type == VAL_TENSOR) {
            if (nin == (int)(sizeof in / sizeof in[0])) {
                ctx_release(c);
                return eng_fail(err, ERR_VALUE, "set_backward: at most 64 tensor parameters");
            }
            in[nin++] = c->args[i].as.t;
        }
    tensor *t = ag_custom(out->as.t, in, nin, &custom_fns, c, err); /* steals out and c */
    *out = t ? value_tensor(t) : value_void();
    return t ? 0 : -1;
}

/* ---- the built-in ---- */

int bi_set_backward(eng_call *c, value *out)
{
    for (int i = 0; i < 2; i++)
        if (c->argv[i].type != VAL_FUNC)
            return eng_fail(c->err, ERR_TYPE, "set_backward: argument %d must be a function defined in the session, got %s",
                            i + 1, value_type_name(c->argv[i].type));
    eng_func *f = c->argv[0].as.fn, *bw = c->argv[1].as.fn;
    if (f == bw || !strcmp(f->name, bw->name))
        return eng_fail(c->err, ERR_VALUE, "set_backward: %s cannot be its own backward", f->name);
    if (eng_custom_check(f, bw, "set_backward", c->err) || eng_custom_set(c->session, f->name, bw->name, c->err))
        return -1;
    *out = value_void();
    return 0;
}
