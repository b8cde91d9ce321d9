/* nn.c — layers, losses and initialisers (engine/train/nn.h), composed from the recorded ops
 * of the tensor front end so that autograd differentiates them with its own rules.
 *
 * Each function keeps its intermediate tensors in a small scope (nn_scope) and drops
 * them on its one exit path; the result gets its own reference first. Work that must
 * not be recorded (the max that stabilises log-softmax, one-hot masks, running
 * statistics, accuracy) runs with grad mode off, restored on every path.
 */
#include "engine/train/nn.h"
#include "engine/base/context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"
#include "engine/tensor/tensor_impl.h"

#define NN_SCOPE_MAX 256

typedef struct nn_scope {
    tensor *t[NN_SCOPE_MAX]; /* intermediates owned by the function */
    int n;                   /* how many */
} nn_scope;

/* keeps t (may be NULL) in the scope; returns t */
static tensor *keep(nn_scope *s, tensor *t)
{
    if (t && s->n < NN_SCOPE_MAX)
        s->t[s->n++] = t;
    return t;
}

static void drop(nn_scope *s)
{
    for (int i = 0; i < s->n; i++)
        tensor_decref(s->t[i]);
    s->n = 0;
}

/* returns a new reference to r and drops the scope (r may be in it) */
static tensor *finish(nn_scope *s, tensor *r)
{
    if (r)
        tensor_incref(r);
    drop(s);
    return r;
}

/* K(expr): evaluate a tensor expression, keep it in scope `s`, or jump to fail */
#define K(expr)                                 \
    ({                                          \
        tensor *k_t_ = (expr);                  \
        if (!k_t_)                              \
            goto fail;                          \
        keep(&s, k_t_);                         \
    })

static tensor *fail_null(eng_error *err, eng_errkind kind, const char *fmt, const char *a)
{
    eng_fail(err, kind, fmt, a);
    return NULL;
}

static int norm_dim(const tensor *x, int dim, const char *who, eng_error *err)
{
    int d = dim < 0 ? dim + x->ndim : dim;
    if (d < 0 || d >= x->ndim) {
        eng_fail(err, ERR_INDEX, "%s: dimension %d out of range for a %d-d tensor", who, dim, x->ndim);
        return -1;
    }
    return d;
}

static int need_float(const tensor *x, const char *who, const char *what, eng_error *err)
{
    if (tensor_dtype_is_float(x->dtype))
        return 0;
    eng_fail(err, ERR_TYPE, "%s: %s must be a float tensor, got %s", who, what, tensor_dtype_name(x->dtype));
    return -1;
}

static int is_int_dtype(tensor_dtype dt) { return dt == DT_U8 || dt == DT_I32 || dt == DT_I64; }

/* the views of tensor.h take a non-const tensor; they never write through it */
#define MUT(t) ((tensor *)(t))

/* ---- activations ---- */

tensor *nn_log_softmax(const tensor *x, int dim, eng_error *err)
{
    nn_scope s = {0};
    int d, saved = ag_grad_mode();
    if (need_float(x, "log_softmax", "x", err) || (d = norm_dim(x, dim, "log_softmax", err)) < 0)
        return NULL;
    if (tensor_numel(x) == 0)
        return tensor_clone(x, err);
    ag_set_grad_mode(0); /* the shift cancels: it needs no gradient */
    tensor *m = keep(&s, tensor_reduce(OP_MAX, x, d, 1, err));
    ag_set_grad_mode(saved);
    if (!m)
        goto fail;
    tensor *z = K(tensor_binary(OP_SUB, x, m, err));
    tensor *e = K(tensor_unary(OP_EXP, z, 0, 0, err));
    tensor *se = K(tensor_reduce(OP_SUM, e, d, 1, err));
    tensor *lse = K(tensor_unary(OP_LOG, se, 0, 0, err));
    return finish(&s, K(tensor_binary(OP_SUB, z, lse, err)));
fail:
    drop(&s);
    return NULL;
}

tensor *nn_softmax(const tensor *x, int dim, eng_error *err)
{
    tensor *lp = nn_log_softmax(x, dim, err);
    if (!lp)
        return NULL;
    tensor *r = tensor_unary(OP_EXP, lp, 0, 0, err);
    tensor_decref(lp);
    return r;
}

/* ---- losses ---- */

static int check_labels(const tensor *logits, const tensor *labels, const char *who, eng_error *err)
{
    if (logits->ndim != 2)
        return eng_fail(err, ERR_SHAPE, "%s: logits must be [N, C], got a %d-d tensor", who, logits->ndim);
    if (!is_int_dtype(labels->dtype))
        return eng_fail(err, ERR_TYPE, "%s: labels must be an integer tensor (i32, i64 or u8), got %s", who,
                        tensor_dtype_name(labels->dtype));
    if (labels->ndim != 1 || labels->shape[0] != logits->shape[0])
        return eng_fail(err, ERR_SHAPE, "%s: labels must be [N] with N = %lld (the rows of logits)", who,
                        (long long)logits->shape[0]);
    return 0;
}

/* a float one-hot [N, C] of labels, unrecorded; check: checks the labels' range (two
 * reads of the device), else the caller has */
static tensor *one_hot(const tensor *labels, int64_t C, tensor_dtype dt, int check, const char *who, eng_error *err)
{
    nn_scope s = {0};
    int saved = ag_grad_mode();
    tensor *r = NULL;
    int64_t lo = 0, hi = -1;
    ag_set_grad_mode(0);
    if (check && tensor_numel(labels) > 0) {
        if (tensor_int_range(labels, &lo, &hi, err) < 0)
            goto fail;
        if (lo < 0 || hi >= C) {
            eng_fail(err, ERR_INDEX, "%s: label %lld out of range for %lld classes", who,
                     (long long)(lo < 0 ? lo : hi), (long long)C);
            goto fail;
        }
    }
    const eng_backend *prev = tensor_place(labels->storage->backend); /* the classes beside the labels */
    tensor *cls = keep(&s, tensor_arange(0, (double)C, 1, DT_I64, err));
    tensor_place(prev);
    if (!cls)
        goto fail;
    tensor *col = K(tensor_unsqueeze(MUT(labels), 1, err));
    tensor *eq = K(tensor_binary(OP_EQ, col, cls, err));
    r = K(tensor_cast(eq, dt, err));
    ag_set_grad_mode(saved);
    return finish(&s, r);
fail:
    ag_set_grad_mode(saved);
    drop(&s);
    return NULL;
}

/* the backend's fused cross-entropy serves (logits, labels) */
static int has_fused_xent(const tensor *logits, const tensor *labels)
{
    const eng_backend *be = logits->storage->backend;
    return be->cross_entropy && be->cross_entropy_backward && labels->storage->backend == be &&
           (logits->dtype == DT_F32 || logits->dtype == DT_F64) && logits->shape[1] > 0;
}

tensor *nn_xent_fused(const tensor *logits, const tensor *labels, int check, eng_error *err)
{
    const eng_backend *be = logits->storage->backend;
    int saved = ag_grad_mode();
    ag_set_grad_mode(0);
    tensor *xc = tensor_contiguous(MUT(logits), err), *lc = xc ? tensor_contiguous(MUT(labels), err) : NULL;
    tensor *rows = lc ? tensor_empty_on(be, logits->dtype, 1, logits->shape, err) : NULL, *r = NULL;
    if (rows && be->cross_entropy(rows, xc, lc, check, err) == 0)
        r = tensor_reduce(OP_MEAN, rows, TENSOR_ALLDIMS, 0, err);
    ag_set_grad_mode(saved);
    tensor_decref(rows);
    tensor_decref(lc);
    tensor_decref(xc);
    return r;
}

tensor *nn_xent_backward(const tensor *logits, const tensor *labels, const tensor *g, eng_error *err)
{
    const eng_backend *be = logits->storage->backend;
    int saved = ag_grad_mode();
    ag_set_grad_mode(0);
    tensor *xc = tensor_contiguous(MUT(logits), err), *lc = xc ? tensor_contiguous(MUT(labels), err) : NULL;
    tensor *gm = lc ? tensor_to(g, be, err) : NULL; /* a 0-d gradient: no read of its value */
    tensor *gc = !gm ? NULL : gm->dtype == logits->dtype ? (tensor_incref(gm), gm) : tensor_cast(gm, logits->dtype, err);
    tensor *dx = gc ? tensor_empty_on(be, logits->dtype, 2, logits->shape, err) : NULL;
    if (dx && be->cross_entropy_backward(dx, xc, lc, gc, 1.0 / (double)logits->shape[0], err) < 0) {
        tensor_decref(dx);
        dx = NULL;
    }
    ag_set_grad_mode(saved);
    tensor_decref(gc);
    tensor_decref(gm);
    tensor_decref(lc);
    tensor_decref(xc);
    return dx;
}

/* cross_entropy; check 0: the caller has checked that the labels lie in [0, C) */
static tensor *cross_entropy(const tensor *logits, const tensor *labels, int check, eng_error *err)
{
    nn_scope s = {0};
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (N == 0)
        return fail_null(err, ERR_VALUE, "%s: empty batch (N = 0)", "cross_entropy");
    if (has_fused_xent(logits, labels))
        return AG_WANTS(logits) ? ag_cross_entropy(logits, labels, check, err)
                                : nn_xent_fused(logits, labels, check, err);
    tensor *lp = K(nn_log_softmax(logits, 1, err));
    tensor *oh = K(one_hot(labels, C, logits->dtype, check, "cross_entropy", err));
    tensor *picked = K(tensor_binary(OP_MUL, lp, oh, err));
    tensor *total = K(tensor_reduce(OP_SUM, picked, TENSOR_ALLDIMS, 0, err));
    return finish(&s, K(tensor_binary_scalar(OP_MUL, total, -1.0 / (double)N, 1, 0, err)));
fail:
    drop(&s);
    return NULL;
}

tensor *nn_cross_entropy(const tensor *logits, const tensor *labels, eng_error *err)
{
    if (need_float(logits, "cross_entropy", "logits", err) || check_labels(logits, labels, "cross_entropy", err))
        return NULL;
    return cross_entropy(logits, labels, 1, err);
}

int nn_label_range(const tensor *labels, int64_t *lo, int64_t *hi, eng_error *err)
{
    *lo = 0;
    *hi = -1;
    if (tensor_numel(labels) == 0)
        return 0;
    int saved = ag_grad_mode();
    ag_set_grad_mode(0);
    int rc = tensor_int_range(labels, lo, hi, err);
    ag_set_grad_mode(saved);
    return rc;
}

tensor *nn_cross_entropy_ranged(const tensor *logits, const tensor *labels, int64_t lo, int64_t hi, eng_error *err)
{
    if (need_float(logits, "cross_entropy", "logits", err) || check_labels(logits, labels, "cross_entropy", err))
        return NULL;
    int64_t C = logits->shape[1];
    if (logits->shape[0] > 0 && lo <= hi && (lo < 0 || hi >= C)) {
        eng_fail(err, ERR_INDEX, "cross_entropy: label %lld out of range for %lld classes",
                 (long long)(lo < 0 ? lo : hi), (long long)C);
        return NULL;
    }
    return cross_entropy(logits, labels, 0, err);
}

tensor *nn_mse(const tensor *a, const tensor *b, eng_error *err)
{
    nn_scope s = {0};
    tensor *d = K(tensor_binary(OP_SUB, a, b, err));
    if (need_float(d, "mse", "a - b", err))
        goto fail;
    tensor *sq = K(tensor_binary(OP_MUL, d, d, err));
    return finish(&s, K(tensor_reduce(OP_MEAN, sq, TENSOR_ALLDIMS, 0, err)));
fail:
    drop(&s);
    return NULL;
}

tensor *nn_accuracy(const tensor *logits, const tensor *labels, eng_error *err)
{
    nn_scope s = {0};
    int saved = ag_grad_mode();
    if (check_labels(logits, labels, "accuracy", err))
        return NULL;
    if (logits->shape[0] == 0)
        return fail_null(err, ERR_VALUE, "%s: empty batch (N = 0)", "accuracy");
    ag_set_grad_mode(0);
    tensor *am = K(tensor_reduce(OP_ARGMAX, logits, 1, 0, err));
    tensor *eq = K(tensor_binary(OP_EQ, am, labels, err));
    tensor *f = K(tensor_cast(eq, DT_F32, err));
    tensor *r = K(tensor_reduce(OP_MEAN, f, TENSOR_ALLDIMS, 0, err));
    ag_set_grad_mode(saved);
    return finish(&s, r);
fail:
    ag_set_grad_mode(saved);
    drop(&s);
    return NULL;
}

/* ---- layers ---- */

tensor *nn_linear(const tensor *x, const tensor *w, const tensor *b, eng_error *err)
{
    if (w->ndim != 2)
        return fail_null(err, ERR_SHAPE, "%s: w must be [in, out]", "linear");
    if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[0]) {
        eng_fail(err, ERR_SHAPE, "linear: x's last dimension (%lld) must equal w's first (%lld)",
                 (long long)(x->ndim ? x->shape[x->ndim - 1] : 0), (long long)w->shape[0]);
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[1])) {
        eng_fail(err, ERR_SHAPE, "linear: b must be [out] with out = %lld", (long long)w->shape[1]);
        return NULL;
    }
    tensor *h = tensor_matmul(x, w, err);
    if (!h || !b)
        return h;
    tensor *r = tensor_binary(OP_ADD, h, b, err);
    tensor_decref(h);
    return r;
}

tensor *nn_dropout(const tensor *x, double p, int training, tensor_rng *rng, eng_error *err)
{
    nn_scope s = {0};
    if (!(p >= 0 && p <= 1))
        return fail_null(err, ERR_VALUE, "%s: p must be in [0, 1]", "dropout");
    if (!training || p == 0) {
        tensor_incref(MUT(x));
        return MUT(x);
    }
    if (need_float(x, "dropout", "x", err))
        return NULL;
    if (p == 1)
        return tensor_binary_scalar(OP_MUL, x, 0.0, 1, 0, err);
    tensor *u = K(tensor_rand(rng, x->ndim, x->shape, err));
    tensor *keepm = K(tensor_binary_scalar(OP_GE, u, p, 1, 0, err));
    tensor *mf = K(tensor_cast(keepm, x->dtype, err));
    tensor *scaled = K(tensor_binary_scalar(OP_MUL, mf, 1.0 / (1.0 - p), 1, 0, err));
    return finish(&s, K(tensor_binary(OP_MUL, x, scaled, err)));
fail:
    drop(&s);
    return NULL;
}

tensor *nn_layer_norm(const tensor *x, const tensor *gamma, const tensor *beta, double eps, eng_error *err)
{
    nn_scope s = {0};
    if (need_float(x, "layer_norm", "x", err))
        return NULL;
    if (x->ndim < 1)
        return fail_null(err, ERR_SHAPE, "%s: x must have at least one dimension", "layer_norm");
    tensor *mu = K(tensor_reduce(OP_MEAN, x, -1, 1, err));
    tensor *xc = K(tensor_binary(OP_SUB, x, mu, err));
    tensor *sq = K(tensor_binary(OP_MUL, xc, xc, err));
    tensor *var = K(tensor_reduce(OP_MEAN, sq, -1, 1, err));
    tensor *ve = K(tensor_binary_scalar(OP_ADD, var, eps, 1, 0, err));
    tensor *sd = K(tensor_unary(OP_SQRT, ve, 0, 0, err));
    tensor *y = K(tensor_binary(OP_DIV, xc, sd, err));
    if (gamma)
        y = K(tensor_binary(OP_MUL, y, gamma, err));
    if (beta)
        y = K(tensor_binary(OP_ADD, y, beta, err));
    return finish(&s, y);
fail:
    drop(&s);
    return NULL;
}

/* t [C] as [1, C] or [1, C, 1, 1] for broadcasting against x */
static tensor *channel_view(const tensor *t, int ndim, eng_error *err)
{
    int64_t shape[4] = {1, t->shape[0], 1, 1};
    return tensor_reshape(MUT(t), ndim, shape, err);
}

/* ---- the running-statistics journal (nn.h) ---- */

/* the journal is the running session's (engine/base/context.h): lr_find in one session
 * journals nothing of another's */
void nn_stats_journal_open(void)
{
    eng_ctx_current()->bn_journal.open = 1;
}

/* a copy of t in the journal unless it has one already */
static int journal_note(tensor *t, eng_error *err)
{
    eng_bn_journal *journal = &eng_ctx_current()->bn_journal;
    if (!journal->open || !t)
        return 0;
    for (int i = 0; i < journal->n; i++)
        if (journal->live[i] == t)
            return 0;
    if (journal->n == journal->cap) {
        int cap = journal->cap ? 2 * journal->cap : 8;
        tensor **l = realloc(journal->live, (size_t)cap * sizeof *l);
        if (l)
            journal->live = l;
        tensor **c = l ? realloc(journal->copy, (size_t)cap * sizeof *c) : NULL;
        if (c)
            journal->copy = c;
        if (!l || !c)
            return eng_fail(err, ERR_MEMORY, "batch_norm: out of memory");
        journal->cap = cap;
    }
    tensor *c = tensor_clone(t, err);
    if (!c)
        return -1;
    tensor_incref(t);
    journal->live[journal->n] = t;
    journal->copy[journal->n++] = c;
    return 0;
}

int nn_stats_journal_close(int restore, eng_error *err)
{
    eng_bn_journal *journal = &eng_ctx_current()->bn_journal;
    int rc = 0, saved = ag_grad_mode();
    ag_set_grad_mode(0);
    for (int i = 0; i < journal->n; i++) {
        if (restore && !rc && tensor_assign(journal->live[i], journal->copy[i], err))
            rc = -1;
        tensor_decref(journal->live[i]);
        tensor_decref(journal->copy[i]);
    }
    ag_set_grad_mode(saved);
    free(journal->live);
    free(journal->copy);
    memset(journal, 0, sizeof *journal);
    return rc;
}

tensor *nn_batch_norm(const tensor *x, const tensor *gamma, const tensor *beta, tensor *running_mean,
                      tensor *running_var, int training, double momentum, double eps, eng_error *err)
{
    nn_scope s = {0};
    int saved = ag_grad_mode();
    if (need_float(x, "batch_norm", "x", err))
        return NULL;
    if (x->ndim != 2 && x->ndim != 4)
        return fail_null(err, ERR_SHAPE, "%s: x must be [N, C] or [N, C, H, W]", "batch_norm");
    int64_t C = x->shape[1];
    const tensor *chk[4] = {gamma, beta, running_mean, running_var};
    static const char *const names[4] = {"gamma", "beta", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++)
        if (chk[i] && (chk[i]->ndim != 1 || chk[i]->shape[0] != C)) {
            eng_fail(err, ERR_SHAPE, "batch_norm: %s must be [C] with C = %lld", names[i], (long long)C);
            return NULL;
        }
    tensor *mu, *var;
    if (training) {
        int64_t n = tensor_numel(x) / (C ? C : 1);
        if (n < 1)
            return fail_null(err, ERR_VALUE, "%s: empty batch", "batch_norm");
        int dims[3] = {0, 2, 3}, nd = x->ndim == 4 ? 3 : 1;
        mu = K(tensor_reduce(OP_MEAN, x, 0, 1, err));
        for (int i = 1; i < nd; i++)
            mu = K(tensor_reduce(OP_MEAN, mu, dims[i], 1, err));
        tensor *xc = K(tensor_binary(OP_SUB, x, mu, err));
        tensor *sq = K(tensor_binary(OP_MUL, xc, xc, err));
        var = K(tensor_reduce(OP_MEAN, sq, 0, 1, err));
        for (int i = 1; i < nd; i++)
            var = K(tensor_reduce(OP_MEAN, var, dims[i], 1, err));
        /* running statistics, in place and unrecorded */
        ag_set_grad_mode(0);
        tensor *stats[2] = {running_mean, running_var}, *batch[2] = {mu, var};
        for (int i = 0; i < 2; i++) {
            if (!stats[i])
                continue;
            if (journal_note(stats[i], err))
                goto fail;
            int64_t cs = C;
            tensor *bv = K(tensor_reshape(batch[i], 1, &cs, err));
            if (i == 1 && n > 1)
                bv = K(tensor_binary_scalar(OP_MUL, bv, (double)n / (double)(n - 1), 1, 0, err));
            tensor *a = K(tensor_binary_scalar(OP_MUL, stats[i], 1.0 - momentum, 1, 0, err));
            tensor *bm = K(tensor_binary_scalar(OP_MUL, bv, momentum, 1, 0, err));
            tensor *nv = K(tensor_binary(OP_ADD, a, bm, err));
            if (tensor_assign(stats[i], nv, err))
                goto fail;
        }
        ag_set_grad_mode(saved);
    } else {
        if (!running_mean || !running_var)
            return fail_null(err, ERR_VALUE, "%s: evaluation mode needs running_mean and running_var",
                             "batch_norm");
        mu = K(channel_view(running_mean, x->ndim, err));
        var = K(channel_view(running_var, x->ndim, err));
    }
    tensor *xc = K(tensor_binary(OP_SUB, x, mu, err));
    tensor *ve = K(tensor_binary_scalar(OP_ADD, var, eps, 1, 0, err));
    tensor *sd = K(tensor_unary(OP_SQRT, ve, 0, 0, err));
    tensor *y = K(tensor_binary(OP_DIV, xc, sd, err));
    if (gamma) {
        tensor *g = K(channel_view(gamma, x->ndim, err));
        y = K(tensor_binary(OP_MUL, y, g, err));
    }
    if (beta) {
        tensor *bb = K(channel_view(beta, x->ndim, err));
        y = K(tensor_binary(OP_ADD, y, bb, err));
    }
    return finish(&s, y);
fail:
    ag_set_grad_mode(saved);
    drop(&s);
    return NULL;
}

/* x [N, C, H, W] → the k x k windows stacked as [N, C, kh*kw, Ho, Wo] (scope-owned) */
static tensor *windows(nn_scope *sc, tensor *x, int64_t kh, int64_t kw, int64_t stride, int64_t Ho,
                       int64_t Wo, eng_error *err)
{
    tensor *parts[64];
    int np = 0;
    if (kh * kw > 64) {
        eng_fail(err, ERR_VALUE, "conv2d/pool: windows of more than 64 elements are not supported (%lld x %lld)",
                 (long long)kh, (long long)kw);
        return NULL;
    }
    for (int64_t i = 0; i < kh; i++) {
        tensor *rows = keep(sc, tensor_slice(x, 2, i, i + stride * (Ho - 1) + 1, stride, err));
        if (!rows)
            return NULL;
        for (int64_t j = 0; j < kw; j++) {
            tensor *p = keep(sc, tensor_slice(rows, 3, j, j + stride * (Wo - 1) + 1, stride, err));
            if (!p)
                return NULL;
            parts[np++] = p;
        }
    }
    return keep(sc, tensor_stack(parts, np, 2, err));
}

static int out_size(int64_t in, int64_t k, int64_t stride, int64_t *out, const char *who, eng_error *err)
{
    if (k < 1 || stride < 1)
        return eng_fail(err, ERR_VALUE, "%s: kernel size and stride must be positive", who);
    if (in < k)
        return eng_fail(err, ERR_SHAPE, "%s: kernel %lld larger than the (padded) input %lld", who, (long long)k,
                        (long long)in);
    *out = (in - k) / stride + 1;
    return 0;
}

/* im2col from recorded ops, for backends without the entry (and dtypes it lacks):
 * zero padding by cat, the windows by strided slices and a stack */
static tensor *im2col_views(const tensor *x, int kh, int kw, int stride, int pad, eng_error *err)
{
    nn_scope s = {0};
    int64_t N = x->shape[0], C = x->shape[1], Ho, Wo;
    tensor *xp = MUT(x);
    if (pad > 0) { /* the zeros on x's device */
        const eng_backend *prev = tensor_place(x->storage->backend);
        int64_t zs[4] = {N, C, pad, x->shape[3]}, zs2[4] = {N, C, x->shape[2] + 2 * pad, pad};
        tensor *zh = keep(&s, tensor_full(x->dtype, 4, zs, 0, err));
        tensor *zw = zh ? keep(&s, tensor_full(x->dtype, 4, zs2, 0, err)) : NULL;
        tensor_place(prev);
        if (!zw)
            goto fail;
        tensor *th[3] = {zh, xp, zh};
        xp = K(tensor_cat(th, 3, 2, err));
        tensor *tw[3] = {zw, xp, zw};
        xp = K(tensor_cat(tw, 3, 3, err));
    }
    if (out_size(xp->shape[2], kh, stride, &Ho, "im2col", err) || out_size(xp->shape[3], kw, stride, &Wo, "im2col", err))
        goto fail;
    tensor *win = windows(&s, xp, kh, kw, stride, Ho, Wo, err);
    if (!win)
        goto fail;
    int64_t cs[3] = {N, C * kh * kw, Ho * Wo};
    return finish(&s, K(tensor_reshape(win, 3, cs, err)));
fail:
    drop(&s);
    return NULL;
}

/* the backend's im2col and col2im serve x */
static int has_im2col(const tensor *x)
{
    const eng_backend *be = x->storage->backend;
    return be->im2col && be->col2im && (x->dtype == DT_F32 || x->dtype == DT_F64);
}

tensor *nn_im2col(const tensor *x, int kh, int kw, int stride, int pad, eng_error *err)
{
    if (x->ndim != 4)
        return fail_null(err, ERR_SHAPE, "%s: x must be [N, C, H, W]", "im2col");
    if (pad < 0)
        return fail_null(err, ERR_VALUE, "%s: padding must be >= 0", "im2col");
    if (!has_im2col(x))
        return im2col_views(x, kh, kw, stride, pad, err);
    if (AG_WANTS(x))
        return ag_im2col(x, kh, kw, stride, pad, err);
    int64_t Ho, Wo;
    if (out_size(x->shape[2] + 2 * pad, kh, stride, &Ho, "im2col", err) ||
        out_size(x->shape[3] + 2 * pad, kw, stride, &Wo, "im2col", err))
        return NULL;
    const eng_backend *be = x->storage->backend;
    int64_t cs[3] = {x->shape[0], x->shape[1] * kh * kw, Ho * Wo};
    tensor *xc = tensor_contiguous(MUT(x), err);
    tensor *cols = xc ? tensor_empty_on(be, x->dtype, 3, cs, err) : NULL;
    if (cols && be->im2col(cols, xc, kh, kw, stride, pad, err) < 0) {
        tensor_decref(cols);
        cols = NULL;
    }
    tensor_decref(xc);
    return cols;
}

tensor *nn_col2im(const tensor *cols, int64_t C, int64_t H, int64_t W, int kh, int kw, int stride, int pad,
                  eng_error *err)
{
    const eng_backend *be = cols->storage->backend;
    if (!be->col2im)
        return fail_null(err, ERR_RUNTIME, "col2im: the %s backend has no col2im", be->name);
    if (cols->ndim != 3)
        return fail_null(err, ERR_SHAPE, "%s: the columns must be [N, C*kh*kw, OH*OW]", "col2im");
    int saved = ag_grad_mode();
    ag_set_grad_mode(0);
    int64_t is[4] = {cols->shape[0], C, H, W};
    tensor *cc = tensor_contiguous(MUT(cols), err);
    tensor *img = cc ? tensor_empty_on(be, cols->dtype, 4, is, err) : NULL;
    ag_set_grad_mode(saved);
    if (img && be->col2im(img, cc, kh, kw, stride, pad, err) < 0) {
        tensor_decref(img);
        img = NULL;
    }
    tensor_decref(cc);
    return img;
}

tensor *nn_conv2d(const tensor *x, const tensor *w, const tensor *b, int stride, int padding, eng_error *err)
{
    nn_scope s = {0};
    if (need_float(x, "conv2d", "x", err) || need_float(w, "conv2d", "w", err))
        return NULL;
    if (x->ndim != 4 || w->ndim != 4)
        return fail_null(err, ERR_SHAPE, "%s: x must be [N, C, H, W] and w [O, C, kH, kW]", "conv2d");
    if (w->shape[1] != x->shape[1]) {
        eng_fail(err, ERR_SHAPE, "conv2d: w has %lld input channels, x has %lld", (long long)w->shape[1],
                 (long long)x->shape[1]);
        return NULL;
    }
    if (padding < 0)
        return fail_null(err, ERR_VALUE, "%s: padding must be >= 0", "conv2d");
    int64_t N = x->shape[0], C = x->shape[1], O = w->shape[0], kh = w->shape[2], kw = w->shape[3], Ho, Wo;
    if (b && (b->ndim != 1 || b->shape[0] != O))
        return fail_null(err, ERR_SHAPE, "%s: b must be [O]", "conv2d");
    if (out_size(x->shape[2] + 2 * padding, kh, stride, &Ho, "conv2d", err) ||
        out_size(x->shape[3] + 2 * padding, kw, stride, &Wo, "conv2d", err))
        return NULL;
    if (kh * kw > 64 && !has_im2col(x))
        return fail_null(err, ERR_VALUE, "%s: windows of more than 64 elements need the backend's im2col", "conv2d");
    tensor *cols = K(nn_im2col(x, (int)kh, (int)kw, stride, padding, err));
    int64_t ws[2] = {O, C * kh * kw}, os[4] = {N, O, Ho, Wo};
    tensor *w2 = K(tensor_reshape(MUT(w), 2, ws, err));
    tensor *y = K(tensor_matmul(w2, cols, err));
    y = K(tensor_reshape(y, 4, os, err));
    if (b) {
        tensor *bb = K(channel_view(b, 4, err));
        y = K(tensor_binary(OP_ADD, y, bb, err));
    }
    return finish(&s, y);
fail:
    drop(&s);
    return NULL;
}

static tensor *pool2d(const tensor *x, int k, int stride, op_id op, const char *who, eng_error *err)
{
    nn_scope s = {0};
    if (need_float(x, who, "x", err))
        return NULL;
    if (x->ndim != 4 && x->ndim != 3) {
        eng_fail(err, ERR_SHAPE, "%s: x must be [N, C, H, W] or [C, H, W]", who);
        return NULL;
    }
    if (stride <= 0)
        stride = k;
    tensor *x4 = x->ndim == 4 ? MUT(x) : K(tensor_unsqueeze(MUT(x), 0, err));
    int64_t Ho, Wo;
    if (out_size(x4->shape[2], k, stride, &Ho, who, err) || out_size(x4->shape[3], k, stride, &Wo, who, err))
        goto fail;
    tensor *win;
    if (has_im2col(x4)) { /* the columns [N, C*k*k, L] as [N, C, k*k, L] */
        tensor *cols = K(nn_im2col(x4, k, k, stride, 0, err));
        int64_t ws[4] = {x4->shape[0], x4->shape[1], (int64_t)k * k, Ho * Wo};
        win = K(tensor_reshape(cols, 4, ws, err));
    } else if (!(win = windows(&s, x4, k, k, stride, Ho, Wo, err))) {
        goto fail;
    }
    tensor *y = K(tensor_reduce(op, win, 2, 0, err));
    int64_t ys[4] = {x4->shape[0], x4->shape[1], Ho, Wo};
    y = K(tensor_reshape(y, 4, ys, err));
    if (x->ndim == 3)
        y = K(tensor_squeeze(y, 0, err));
    return finish(&s, y);
fail:
    drop(&s);
    return NULL;
}

tensor *nn_max_pool2d(const tensor *x, int k, int stride, eng_error *err)
{
    return pool2d(x, k, stride, OP_MAX, "max_pool2d", err);
}

tensor *nn_avg_pool2d(const tensor *x, int k, int stride, eng_error *err)
{
    return pool2d(x, k, stride, OP_MEAN, "avg_pool2d", err);
}

tensor *nn_embedding(const tensor *idx, const tensor *table, eng_error *err)
{
    if (!is_int_dtype(idx->dtype))
        return fail_null(err, ERR_TYPE, "%s: indices must be an integer tensor", "embedding");
    if (table->ndim != 2)
        return fail_null(err, ERR_SHAPE, "%s: table must be [V, D]", "embedding");
    return tensor_gather(table, idx, err);
}

/* ---- initialisers ---- */

static tensor *scaled(tensor *t, double mul, double add, eng_error *err)
{
    if (!t)
        return NULL;
    tensor *a = tensor_binary_scalar(OP_MUL, t, mul, 1, 0, err);
    tensor_decref(t);
    if (!a || add == 0)
        return a;
    tensor *r = tensor_binary_scalar(OP_ADD, a, add, 1, 0, err);
    tensor_decref(a);
    return r;
}

tensor *nn_kaiming_normal(tensor_rng *rng, int64_t fan_in, int ndim, const int64_t *shape, eng_error *err)
{
    if (fan_in < 1)
        return fail_null(err, ERR_VALUE, "%s: fan_in must be positive", "kaiming");
    return scaled(tensor_randn(rng, ndim, shape, err), sqrt(2.0 / (double)fan_in), 0, err);
}

tensor *nn_kaiming_uniform(tensor_rng *rng, int64_t fan_in, int ndim, const int64_t *shape, eng_error *err)
{
    if (fan_in < 1)
        return fail_null(err, ERR_VALUE, "%s: fan_in must be positive", "kaiming_uniform");
    double a = sqrt(6.0 / (double)fan_in);
    return scaled(tensor_rand(rng, ndim, shape, err), 2 * a, -a, err);
}

tensor *nn_xavier_uniform(tensor_rng *rng, int64_t fan_in, int64_t fan_out, eng_error *err)
{
    if (fan_in < 1 || fan_out < 1)
        return fail_null(err, ERR_VALUE, "%s: both dimensions must be positive", "xavier");
    double a = sqrt(6.0 / (double)(fan_in + fan_out));
    int64_t shape[2] = {fan_in, fan_out};
    return scaled(tensor_rand(rng, 2, shape, err), 2 * a, -a, err);
}
