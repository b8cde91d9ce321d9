/* autograd.c — the tape (one node per recorded op), the recording twins of the front
 * end, backward and the gradient of each op. See engine/train/autograd.h and docs/autograd.md.
 *
 * Gradients are computed with the tensor front end itself, with grad mode off, so they
 * run on whichever backend holds the tensors. The rules of the arithmetic ops (unary,
 * binary, reductions) are the GRAD fields of engine/tensor/ops.def, expanded here in the
 * expression language of engine/tensor/op_dsl.h. gather's gradient is an index_add
 * (the backends' scatter-add, atomics on a device), index_add's a gather.
 */
#include "engine/train/autograd.h"
#include "engine/base/context.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/train/nn.h"
#include "engine/tensor/op_dsl.h"
#include "engine/tensor/tensor_order.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* grad mode and the node count are the running session's (engine/base/context.h) */
int ag_grad_mode(void) { return eng_ctx_current()->grad_enabled; }

int ag_set_grad_mode(int on)
{
    eng_ctx *c = eng_ctx_current();
    int prev = c->grad_enabled;
    c->grad_enabled = on != 0;
    return prev;
}

typedef enum ag_kind {
    AG_UNARY,     /* op, p0, p1 */
    AG_BINARY,    /* op; in[1] may be a constant scalar tensor */
    AG_WHERE,     /* saved: the condition */
    AG_REDUCE,    /* op, dim (raw), keepdim */
    AG_MATMUL,
    AG_CAT,       /* dim (normalised) */
    AG_GATHER,    /* saved: the index tensor */
    AG_INDEX_ADD, /* x + src's rows added at the rows idx names; saved: idx */
    AG_CAST,
    AG_SLICE,     /* dim, start, stop, step as given */
    AG_SELECT,    /* dim, start (the index) */
    AG_TRANSPOSE, /* dim, dim2 */
    AG_PERMUTE,   /* perm (normalised) */
    AG_EXPAND,
    AG_RESHAPE,   /* reshape, squeeze, unsqueeze: back to the input's shape */
    AG_TO,        /* x.to(device): the gradient goes back to the input's device */
    AG_IM2COL,    /* nn_im2col: dim, dim2 the window, step the stride, start the padding */
    AG_XENT,      /* the fused cross_entropy (nn_xent_fused): saved the labels */
    AG_SCAN,      /* cumsum / cumprod (engine/tensor/tensor_order.c): dim (normalised), dim2 the kind */
    AG_CUSTOM     /* a user function with its own backward (ag_custom): saved a view of the output */
} ag_kind;

typedef struct ag_node {
    ag_kind kind;                /* which backward rule */
    op_id op;                  /* the ops.def op for UNARY, BINARY, REDUCE */
    double p0, p1;               /* unary parameters (clamp's bounds) */
    int dim, dim2, keepdim;      /* dimension parameters, see ag_kind */
    int64_t start, stop, step;   /* slice bounds, select index */
    int perm[TENSOR_MAXDIM];     /* permute's order */
    tensor *saved;               /* a non-differentiable operand (where's cond, gather's idx) */
    tensor *gacc;                /* the output's gradient, accumulated during backward */
    unsigned mark;               /* visit stamp of the topological sort */
    int ndim;                    /* the output's shape */
    int64_t shape[TENSOR_MAXDIM];
    tensor_dtype dtype;              /* the output's dtype */
    const ag_custom_fn *custom;  /* AG_CUSTOM: the backward callback and its context's release */
    void *custom_ctx;            /* AG_CUSTOM: owned, released with the node */
    struct ag_node *next_free;   /* pending list of ag_node_release */
    int nin;                     /* number of inputs */
    tensor *in[];                /* the inputs, held by reference */
} ag_node;

int64_t ag_live_nodes(void) { return eng_ctx_current()->ag_live_nodes; }

/* ---- life ---- */

static void node_free_now(ag_node *n)
{
    for (int i = 0; i < n->nin; i++)
        tensor_decref(n->in[i]);
    tensor_decref(n->saved);
    tensor_decref(n->gacc);
    if (n->custom)
        n->custom->release(n->custom_ctx);
    free(n);
    eng_ctx_current()->ag_live_nodes--;
}

/* Freeing a node drops its inputs, which may free their nodes: a work list instead of
 * recursion, so a chain of a million ops does not overflow the stack. */
void ag_node_release(void *node)
{
    eng_ctx *c = eng_ctx_current(); /* the pending list is the session's */
    ag_node *n = node;
    n->next_free = c->ag_pending;
    c->ag_pending = n;
    if (c->ag_draining)
        return;
    c->ag_draining = 1;
    while (c->ag_pending) {
        ag_node *p = c->ag_pending;
        c->ag_pending = p->next_free;
        node_free_now(p);
    }
    c->ag_draining = 0;
}

int ag_refuse_inplace(const tensor *t, eng_error *err)
{
    (void)t;
    return eng_fail(err, ERR_VALUE,
                    "in-place update of a tensor that requires grad; use set_grad_enabled(false) around updates");
}

/* Records a node for out (a new tensor) with nin inputs; returns the node for the
 * caller to fill, or NULL when out needs none (not float) or on failure (then out is
 * freed and *out_p set NULL with err filled). */
static ag_node *record(tensor **out_p, tensor *const *in, int nin, ag_kind kind, eng_error *err)
{
    tensor *out = *out_p;
    if (!out || !tensor_dtype_is_float(out->dtype) || out->autograd)
        return NULL;
    ag_node *n = calloc(1, sizeof *n + sizeof(tensor *) * (size_t)nin);
    if (!n) {
        eng_fail(err, ERR_MEMORY, "autograd: out of memory");
        tensor_decref(out);
        *out_p = NULL;
        return NULL;
    }
    eng_ctx_current()->ag_live_nodes++;
    n->kind = kind;
    n->nin = nin;
    for (int i = 0; i < nin; i++) {
        n->in[i] = in[i];
        tensor_incref(in[i]);
    }
    n->ndim = out->ndim;
    memcpy(n->shape, out->shape, sizeof n->shape);
    n->dtype = out->dtype;
    out->autograd = n;
    out->requires_grad = 1;
    return n;
}

/* ---- the recording twins: run the op with grad mode off, then record ---- */

#define RUN(call)                  \
    ag_set_grad_mode(0);           \
    tensor *out = call;            \
    ag_set_grad_mode(1)

tensor *ag_unary(op_id op, const tensor *x, double p0, double p1, eng_error *err)
{
    RUN(tensor_unary(op, x, p0, p1, err));
    tensor *in[1] = {(tensor *)x};
    ag_node *n = record(&out, in, 1, AG_UNARY, err); /* none for a bool result (not) */
    if (n) {
        n->op = op;
        n->p0 = p0;
        n->p1 = p1;
    }
    return out;
}

tensor *ag_binary(op_id op, const tensor *a, const tensor *b, eng_error *err)
{
    RUN(tensor_binary(op, a, b, err));
    tensor *in[2] = {(tensor *)a, (tensor *)b};
    ag_node *n = record(&out, in, 2, AG_BINARY, err); /* none for a bool result (comparisons) */
    if (n)
        n->op = op;
    return out;
}

tensor *ag_binary_scalar(op_id op, const tensor *t, double s, int s_is_float, int scalar_left,
                         eng_error *err)
{
    RUN(tensor_binary_scalar(op, t, s, s_is_float, scalar_left, err));
    if (!out || !tensor_dtype_is_float(out->dtype))
        return out;
    tensor *st = tensor_scalar(s, out->dtype, err); /* the constant operand */
    if (!st) {
        tensor_decref(out);
        return NULL;
    }
    tensor *in[2] = {scalar_left ? st : (tensor *)t, scalar_left ? (tensor *)t : st};
    ag_node *n = record(&out, in, 2, AG_BINARY, err);
    if (n)
        n->op = op;
    tensor_decref(st);
    return out;
}

tensor *ag_where(const tensor *c, const tensor *a, const tensor *b, eng_error *err)
{
    RUN(tensor_where(c, a, b, err));
    tensor *in[2] = {(tensor *)a, (tensor *)b};
    ag_node *n = record(&out, in, 2, AG_WHERE, err);
    if (n) {
        n->saved = (tensor *)c;
        tensor_incref(n->saved);
    }
    return out;
}

tensor *ag_reduce(op_id op, const tensor *x, int dim, int keepdim, eng_error *err)
{
    RUN(tensor_reduce(op, x, dim, keepdim, err));
    tensor *in[1] = {(tensor *)x};
    ag_node *n = record(&out, in, 1, AG_REDUCE, err); /* none for an i64 result (argmax) */
    if (n) {
        n->op = op;
        n->dim = dim;
        n->keepdim = keepdim;
    }
    return out;
}

tensor *ag_matmul(const tensor *a, const tensor *b, eng_error *err)
{
    RUN(tensor_matmul(a, b, err));
    tensor *in[2] = {(tensor *)a, (tensor *)b};
    record(&out, in, 2, AG_MATMUL, err);
    return out;
}

tensor *ag_cat(tensor *const *ts, int n, int dim, eng_error *err)
{
    RUN(tensor_cat(ts, n, dim, err));
    ag_node *node = record(&out, ts, n, AG_CAT, err);
    if (node)
        node->dim = dim < 0 ? dim + ts[0]->ndim : dim;
    return out;
}

tensor *ag_scan(int kind, const tensor *x, int dim, eng_error *err)
{
    RUN(tensor_scan(kind, x, dim, err));
    tensor *in[1] = {(tensor *)x};
    ag_node *n = record(&out, in, 1, AG_SCAN, err);
    if (n) {
        n->dim = dim < 0 ? dim + x->ndim : dim;
        n->dim2 = kind;
    }
    return out;
}

tensor *ag_gather(const tensor *x, const tensor *idx, eng_error *err)
{
    RUN(tensor_gather(x, idx, err));
    tensor *in[1] = {(tensor *)x};
    ag_node *n = record(&out, in, 1, AG_GATHER, err);
    if (n) {
        n->saved = (tensor *)idx;
        tensor_incref(n->saved);
    }
    return out;
}

tensor *ag_index_add(const tensor *x, const tensor *idx, const tensor *src, eng_error *err)
{
    RUN(tensor_index_add_rows(x, idx, src, err));
    tensor *in[2] = {(tensor *)x, (tensor *)src};
    ag_node *n = record(&out, in, 2, AG_INDEX_ADD, err);
    if (n) {
        n->saved = (tensor *)idx;
        tensor_incref(n->saved);
    }
    return out;
}

tensor *ag_cast(const tensor *t, tensor_dtype dt, eng_error *err)
{
    RUN(tensor_cast(t, dt, err));
    tensor *in[1] = {(tensor *)t};
    if (tensor_dtype_is_float(t->dtype))
        record(&out, in, 1, AG_CAST, err);
    return out;
}

tensor *ag_to(const tensor *t, const struct eng_backend *be, eng_error *err)
{
    RUN(tensor_to(t, be, err));
    tensor *in[1] = {(tensor *)t};
    record(&out, in, 1, AG_TO, err);
    return out;
}

tensor *ag_slice(tensor *t, int dim, int64_t start, int64_t stop, int64_t step, eng_error *err)
{
    RUN(tensor_slice(t, dim, start, stop, step, err));
    ag_node *n = record(&out, &t, 1, AG_SLICE, err);
    if (n) {
        n->dim = dim;
        n->start = start;
        n->stop = stop;
        n->step = step;
    }
    return out;
}

tensor *ag_select(tensor *t, int dim, int64_t index, eng_error *err)
{
    RUN(tensor_select(t, dim, index, err));
    ag_node *n = record(&out, &t, 1, AG_SELECT, err);
    if (n) {
        n->dim = dim;
        n->start = index;
    }
    return out;
}

tensor *ag_transpose(tensor *t, int d0, int d1, eng_error *err)
{
    RUN(tensor_transpose(t, d0, d1, err));
    ag_node *n = record(&out, &t, 1, AG_TRANSPOSE, err);
    if (n) {
        n->dim = d0;
        n->dim2 = d1;
    }
    return out;
}

tensor *ag_permute(tensor *t, const int *dims, int nd, eng_error *err)
{
    RUN(tensor_permute(t, dims, nd, err));
    ag_node *n = record(&out, &t, 1, AG_PERMUTE, err);
    if (n)
        for (int i = 0; i < nd; i++)
            n->perm[i] = dims[i] < 0 ? dims[i] + nd : dims[i];
    return out;
}

tensor *ag_expand(tensor *t, int ndim, const int64_t *shape, eng_error *err)
{
    RUN(tensor_expand(t, ndim, shape, err));
    record(&out, &t, 1, AG_EXPAND, err);
    return out;
}

tensor *ag_squeeze(tensor *t, int dim, eng_error *err)
{
    RUN(tensor_squeeze(t, dim, err));
    record(&out, &t, 1, AG_RESHAPE, err);
    return out;
}

tensor *ag_unsqueeze(tensor *t, int dim, eng_error *err)
{
    RUN(tensor_unsqueeze(t, dim, err));
    record(&out, &t, 1, AG_RESHAPE, err);
    return out;
}

tensor *ag_reshape(tensor *t, int ndim, const int64_t *shape, eng_error *err)
{
    RUN(tensor_reshape(t, ndim, shape, err));
    record(&out, &t, 1, AG_RESHAPE, err);
    return out;
}

tensor *ag_im2col(const tensor *x, int kh, int kw, int stride, int pad, eng_error *err)
{
    RUN(nn_im2col(x, kh, kw, stride, pad, err));
    tensor *in[1] = {(tensor *)x};
    ag_node *n = record(&out, in, 1, AG_IM2COL, err);
    if (n) {
        n->dim = kh;
        n->dim2 = kw;
        n->step = stride;
        n->start = pad;
    }
    return out;
}

tensor *ag_cross_entropy(const tensor *logits, const tensor *labels, int check, eng_error *err)
{
    RUN(nn_xent_fused(logits, labels, check, err));
    tensor *in[1] = {(tensor *)logits};
    ag_node *n = record(&out, in, 1, AG_XENT, err);
    if (n) {
        n->saved = (tensor *)labels;
        tensor_incref(n->saved);
    }
    return out;
}

tensor *ag_custom(tensor *out, tensor *const *in, int nin, const ag_custom_fn *fns, void *ctx, eng_error *err)
{
    int wants = 0;
    for (int i = 0; i < nin; i++)
        wants |= in[i]->requires_grad;
    if (!wants || !tensor_dtype_is_float(out->dtype)) {
        fns->release(ctx);
        return out;
    }
    int prev = ag_set_grad_mode(0);
    tensor *saved = ag_detach(out, err); /* the output as backward sees it: no node, no cycle */
    if (saved && (out->requires_grad || out->autograd)) {
        /* f returned one of its inputs or a tensor that records already: the node goes
         * on a fresh view of it */
        tensor_decref(out);
        out = saved;
        saved = ag_detach(out, err);
    }
    ag_set_grad_mode(prev);
    if (!saved) {
        fns->release(ctx);
        tensor_decref(out);
        return NULL;
    }
    ag_node *n = record(&out, in, nin, AG_CUSTOM, err);
    if (!n) {
        tensor_decref(saved);
        fns->release(ctx);
        return out;
    }
    n->saved = saved;
    n->custom = fns;
    n->custom_ctx = ctx;
    return out;
}

/* ---- backward helpers: scratch tensors freed together (engine/tensor/op_dsl.h); NULL-safe ---- */

typedef dsl_scratch scratch;
#define keep dsl_keep
#define scratch_free dsl_free

static tensor *s_red(scratch *s, op_id op, const tensor *a, int dim, int keepdim)
{
    return dsl_red(s, op, a, dim, keepdim);
}

static tensor *s_reshape(scratch *s, const tensor *a, int ndim, const int64_t *shape)
{
    return a ? keep(s, tensor_reshape((tensor *)a, ndim, shape, s->err)) : NULL;
}

static tensor *s_zeros(scratch *s, tensor_dtype dt, int ndim, const int64_t *shape)
{
    return keep(s, tensor_full(dt, ndim, shape, 0.0, s->err));
}

static tensor *s_zeros_like(scratch *s, const tensor *like)
{
    return like ? s_zeros(s, like->dtype, like->ndim, like->shape) : NULL;
}

/* g summed over the dimensions that broadcasting stretched, back to (ndim, shape) */
static tensor *sum_to(scratch *s, tensor *g, int ndim, const int64_t *shape)
{
    while (g && g->ndim > ndim)
        g = s_red(s, OP_SUM, g, 0, 0);
    for (int d = 0; g && d < ndim; d++)
        if (shape[d] == 1 && g->shape[d] != 1)
            g = s_red(s, OP_SUM, g, d, 1);
    return g;
}

/* ---- the rules of ops.def: each row's GRAD(expression) or NOGRAD ----
 * AG_RULE_##G pastes the row's gradient field: GRAD(e) gives e, NOGRAD a zero gradient
 * (zlike's shape); an empty or misspelt field is an undeclared identifier, so a row
 * without a gradient does not compile. y (yk) is the op's output, recomputed once from
 * the inputs when a rule uses it (a node never holds its own output). */
/* the output, computed at the first use (a function call: uses are sequenced) */
static tensor *y_unary(scratch *s, tensor **cache, ag_node *n, const tensor *x)
{
    return *cache ? *cache : (*cache = dsl_un(s, n->op, x, n->p0, n->p1));
}

static tensor *y_binary(scratch *s, tensor **cache, ag_node *n, const tensor *a, const tensor *b)
{
    return *cache ? *cache : (*cache = dsl_bin(s, n->op, a, b));
}

static tensor *y_reduce(scratch *s, tensor **cache, ag_node *n, const tensor *x)
{
    return *cache ? *cache : (*cache = s_red(s, n->op, x, n->dim, 1));
}

#define AG_RULE_GRAD(e) (e)
#define AG_RULE_NOGRAD s_zeros_like(s, zlike)
#define OP_DSL_NAMES
#include "engine/tensor/op_dsl.h"
#define red(OP, t) s_red(s, OP_##OP, t, n->dim, 1)

static tensor *unary_rule(scratch *s, ag_node *n, tensor *g)
{
    const tensor *x = n->in[0], *zlike = g;
    const double p0 = n->p0, p1 = n->p1;
    tensor *ycache = NULL;
#define y y_unary(s, &ycache, n, x)
    (void)p1;
    switch (n->op) {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) \
    case OP_##ID: return AG_RULE_##G;
#include "engine/tensor/ops.def"
    default: break;
    }
#undef y
    eng_fail(s->err, ERR_RUNTIME, "backward: %s is not a unary op", tensor_op_name(n->op));
    return NULL;
}

/* the gradient of input `which` (0: a, 1: b), before broadcasting is summed away */
static tensor *binary_rule(scratch *s, ag_node *n, tensor *g, int which)
{
    const tensor *a = n->in[0], *b = n->in[1], *zlike = g;
    tensor *ycache = NULL;
    (void)zlike;
#define y y_binary(s, &ycache, n, a, b)
    switch (n->op) {
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) \
    case OP_##ID: return which == 0 ? AG_RULE_##GA : AG_RULE_##GB;
#include "engine/tensor/ops.def"
    default: break;
    }
#undef y
    eng_fail(s->err, ERR_RUNTIME, "backward: %s has no gradient", tensor_op_name(n->op));
    return NULL;
}

/* gk: g with the reduced dimensions kept (size 1); cnt: how many were reduced */
static tensor *reduce_rule(scratch *s, ag_node *n, const tensor *x, tensor *gk, double cnt)
{
    const tensor *zlike = gk;
    tensor *ycache = NULL;
#define yk y_reduce(s, &ycache, n, x)
    (void)cnt;
    switch (n->op) {
#define OP_REDUCE(ID, name, DT, G) \
    case OP_##ID: return AG_RULE_##G;
#include "engine/tensor/ops.def"
    default: break;
    }
#undef yk
    eng_fail(s->err, ERR_RUNTIME, "backward: %s is not a reduction", tensor_op_name(n->op));
    return NULL;
}

#undef red
#define OP_DSL_END
#include "engine/tensor/op_dsl.h"

static void unary_grad(scratch *s, ag_node *n, tensor *g, tensor **gx)
{
    *gx = unary_rule(s, n, g);
}

static void binary_grad(scratch *s, ag_node *n, tensor *g, tensor **ga, tensor **gb)
{
    const tensor *a = n->in[0], *b = n->in[1];
    if (a->requires_grad)
        *ga = sum_to(s, binary_rule(s, n, g, 0), a->ndim, a->shape);
    if (b->requires_grad)
        *gb = sum_to(s, binary_rule(s, n, g, 1), b->ndim, b->shape);
}

static void reduce_grad(scratch *s, ag_node *n, tensor *g, tensor **gx)
{
    tensor *x = n->in[0];
    int all = n->dim == TENSOR_ALLDIMS, d = all ? 0 : (n->dim < 0 ? n->dim + x->ndim : n->dim);
    int64_t kshape[TENSOR_MAXDIM];
    for (int k = 0; k < x->ndim; k++)
        kshape[k] = (all || k == d) ? 1 : x->shape[k];
    double cnt = all ? (double)tensor_numel(x) : (double)x->shape[d];
    tensor *gk = s_reshape(s, g, x->ndim, kshape);
    tensor *r = gk ? reduce_rule(s, n, x, gk, cnt) : NULL;
    *gx = r ? keep(s, tensor_expand(r, x->ndim, x->shape, s->err)) : NULL;
}

static void matmul_grad(scratch *s, ag_node *n, tensor *g, tensor **ga, tensor **gb)
{
    tensor *a = n->in[0], *b = n->in[1];
    tensor *a2 = a->ndim == 1 ? keep(s, tensor_unsqueeze(a, 0, s->err)) : a;
    tensor *b2 = b->ndim == 1 ? keep(s, tensor_unsqueeze(b, 1, s->err)) : b;
    if (!a2 || !b2)
        return;
    int nbatch = g->ndim - (a->ndim == 1 ? 0 : 1) - (b->ndim == 1 ? 0 : 1);
    int64_t gs[TENSOR_MAXDIM];
    for (int d = 0; d < nbatch; d++)
        gs[d] = g->shape[d];
    gs[nbatch] = a2->shape[a2->ndim - 2];
    gs[nbatch + 1] = b2->shape[b2->ndim - 1];
    tensor *g2 = s_reshape(s, g, nbatch + 2, gs);
    if (!g2)
        return;
    if (a->requires_grad) {
        tensor *bt = keep(s, tensor_transpose(b2, -1, -2, s->err));
        tensor *r = bt ? keep(s, tensor_matmul(g2, bt, s->err)) : NULL;
        *ga = s_reshape(s, sum_to(s, r, a2->ndim, a2->shape), a->ndim, a->shape);
    }
    if (b->requires_grad) {
        tensor *at = keep(s, tensor_transpose(a2, -1, -2, s->err));
        tensor *r = at ? keep(s, tensor_matmul(at, g2, s->err)) : NULL;
        *gb = s_reshape(s, sum_to(s, r, b2->ndim, b2->shape), b->ndim, b->shape);
    }
}

/* cumsum: the running sum from the end. cumprod: y[j] = prod_{k<=j} x[k], so
 * dx[i] = sum_{j>=i} g[j] prod_{k<=j, k!=i} x[k] = E[i] r[i], E the exclusive running
 * product of x and r[i] = g[i] + x[i+1] r[i+1] the reverse recurrence: exact where x
 * has zeros (no division by x) */
static tensor *scan_grad(scratch *s, ag_node *n, tensor *g)
{
    if (n->dim2 == ENG_SCAN_SUM)
        return keep(s, tensor_scan_raw(ENG_SCAN_SUM, ENG_SCAN_REVERSE, g, NULL, n->dim, s->err));
    tensor *e = keep(s, tensor_scan_raw(ENG_SCAN_PROD, ENG_SCAN_EXCLUSIVE, n->in[0], NULL, n->dim, s->err));
    tensor *xg = e ? keep(s, tensor_cast(n->in[0], g->dtype, s->err)) : NULL;
    tensor *r = xg ? keep(s, tensor_scan_raw(ENG_SCAN_SUM, ENG_SCAN_REVERSE, g, xg, n->dim, s->err)) : NULL;
    return r ? keep(s, tensor_binary(OP_MUL, e, r, s->err)) : NULL;
}

/* the rows of g added back at the rows of x they were read from (repeated indices add) */
static tensor *gather_grad(scratch *s, ag_node *n, tensor *g)
{
    const tensor *x = n->in[0];
    tensor *z = s_zeros(s, g->dtype, x->ndim, x->shape);
    return z ? keep(s, tensor_index_add_rows(z, n->saved, g, s->err)) : NULL;
}

/* Fills gin[i] (borrowed from the scratch, or NULL for no gradient) for each input of n
 * from g; -1 on failure. */
static int node_grads(scratch *s, ag_node *n, tensor *g, tensor **gin)
{
    tensor *x = n->in[0];
    switch (n->kind) {
    case AG_UNARY: unary_grad(s, n, g, &gin[0]); break;
    case AG_BINARY: binary_grad(s, n, g, &gin[0], &gin[1]); break;
    case AG_WHERE: {
        tensor *zero = keep(s, tensor_scalar(0.0, g->dtype, s->err));
        if (!zero)
            return -1;
        if (n->in[0]->requires_grad)
            gin[0] = sum_to(s, keep(s, tensor_where(n->saved, g, zero, s->err)), n->in[0]->ndim, n->in[0]->shape);
        if (n->in[1]->requires_grad)
            gin[1] = sum_to(s, keep(s, tensor_where(n->saved, zero, g, s->err)), n->in[1]->ndim, n->in[1]->shape);
        break;
    }
    case AG_REDUCE: reduce_grad(s, n, g, &gin[0]); break;
    case AG_MATMUL: matmul_grad(s, n, g, &gin[0], &gin[1]); break;
    case AG_CAT: {
        int64_t at = 0;
        for (int i = 0; i < n->nin; i++) {
            int64_t len = n->in[i]->shape[n->dim];
            if (n->in[i]->requires_grad && !(gin[i] = keep(s, tensor_slice(g, n->dim, at, at + len, 1, s->err))))
                return -1;
            at += len;
        }
        break;
    }
    case AG_GATHER: gin[0] = gather_grad(s, n, g); break;
    case AG_SCAN: gin[0] = scan_grad(s, n, g); break;
    case AG_INDEX_ADD:
        if (n->in[0]->requires_grad)
            gin[0] = g;
        if (n->in[1]->requires_grad && !(gin[1] = keep(s, tensor_gather(g, n->saved, s->err))))
            return -1;
        break;
    case AG_CAST: gin[0] = g; break; /* accumulate casts back to the input's dtype */
    case AG_TO: gin[0] = keep(s, tensor_to(g, x->storage->backend, s->err)); break;
    case AG_SLICE: case AG_SELECT: {
        tensor *z = s_zeros(s, g->dtype, x->ndim, x->shape), *v;
        if (!z)
            return -1;
        v = keep(s, n->kind == AG_SLICE ? tensor_slice(z, n->dim, n->start, n->stop, n->step, s->err)
                                        : tensor_select(z, n->dim, n->start, s->err));
        if (!v || tensor_assign(v, g, s->err) < 0)
            return -1;
        gin[0] = z;
        break;
    }
    case AG_TRANSPOSE: gin[0] = keep(s, tensor_transpose(g, n->dim, n->dim2, s->err)); break;
    case AG_PERMUTE: {
        int inv[TENSOR_MAXDIM];
        for (int i = 0; i < x->ndim; i++)
            inv[n->perm[i]] = i;
        gin[0] = keep(s, tensor_permute(g, inv, x->ndim, s->err));
        break;
    }
    case AG_EXPAND: gin[0] = sum_to(s, g, x->ndim, x->shape); break;
    case AG_RESHAPE: gin[0] = s_reshape(s, g, x->ndim, x->shape); break;
    case AG_IM2COL: /* the adjoint: each window element back to where it was read */
        gin[0] = keep(s, nn_col2im(g, x->shape[1], x->shape[2], x->shape[3], n->dim, n->dim2, (int)n->step,
                                   (int)n->start, s->err));
        break;
    case AG_XENT: gin[0] = keep(s, nn_xent_backward(x, n->saved, g, s->err)); break;
    case AG_CUSTOM: { /* zero-filled buffers like the inputs, filled by the callback */
        tensor *gc = keep(s, tensor_contiguous(g, s->err));
        if (!gc)
            return -1;
        for (int i = 0; i < n->nin; i++) {
            const eng_backend *prev = tensor_place(n->in[i]->storage->backend);
            gin[i] = s_zeros_like(s, n->in[i]);
            tensor_place(prev);
            if (!gin[i])
                return -1;
        }
        if (n->custom->backward(n->custom_ctx, n->in, n->nin, n->saved, gc, gin, s->err) < 0)
            return -1;
        break;
    }
    }
    for (int i = 0; i < n->nin; i++)
        if (n->in[i]->requires_grad && !gin[i])
            return -1;
    return 0;
}

/* *slot += g (g cast to like's dtype; a fresh tensor when *slot is empty) */
static int accumulate(tensor **slot, tensor *g, const tensor *like, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    int same = g->ndim == like->ndim;
    for (int d = 0; same && d < g->ndim; d++)
        same = g->shape[d] == like->shape[d];
    if (!same)
        return eng_fail(err, ERR_SHAPE, "backward: a gradient of shape %s for a tensor of shape %s",
                        tensor_shape_str(g->ndim, g->shape, b1, sizeof b1),
                        tensor_shape_str(like->ndim, like->shape, b2, sizeof b2));
    tensor *gm = tensor_to(g, like->storage->backend, err); /* a 0-d input from another device */
    if (!gm)
        return -1;
    int rc = 0;
    if (!*slot)
        rc = (*slot = tensor_cast(gm, like->dtype, err)) ? 0 : -1;
    else
        rc = tensor_binary_inplace(OP_ADD, *slot, gm, err);
    tensor_decref(gm);
    return rc;
}

/* ---- backward ---- */

typedef struct tlist {
    tensor **v; /* each held by one reference */
    int64_t n, cap;
} tlist;

static int tlist_push(tlist *l, tensor *t, eng_error *err)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 64;
        tensor **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v)
            return eng_fail(err, ERR_MEMORY, "backward: out of memory");
        l->v = v;
        l->cap = cap;
    }
    tensor_incref(t);
    l->v[l->n++] = t;
    return 0;
}

/* the tensors with nodes below loss, inputs before their users (iterative DFS; the
 * graph holds every tensor in it alive while we walk) */
static int topo_sort(tensor *loss, tlist *order, eng_error *err)
{
    typedef struct frame {
        tensor *t; /* a tensor with a node */
        int next;  /* its next input to visit */
    } frame;
    unsigned mark = ++eng_ctx_current()->ag_stamp;
    frame *st = malloc(sizeof *st * 64);
    int64_t sn = 0, scap = 64;
    if (!st)
        return eng_fail(err, ERR_MEMORY, "backward: out of memory");
    st[sn++] = (frame){loss, 0};
    ((ag_node *)loss->autograd)->mark = mark;
    while (sn) {
        frame *f = &st[sn - 1];
        ag_node *n = f->t->autograd;
        if (f->next < n->nin) {
            tensor *in = n->in[f->next++];
            ag_node *m = in->autograd;
            if (!m || m->mark == mark)
                continue;
            m->mark = mark;
            if (sn == scap) {
                frame *g = realloc(st, sizeof *st * (size_t)(scap * 2));
                if (!g) {
                    free(st);
                    return eng_fail(err, ERR_MEMORY, "backward: out of memory");
                }
                st = g;
                scap *= 2;
            }
            st[sn++] = (frame){in, 0};
        } else {
            if (tlist_push(order, f->t, err) < 0) {
                free(st);
                return -1;
            }
            sn--;
        }
    }
    free(st);
    return 0;
}

/* drops the nodes of the tensors in order: they become plain tensors */
static void release_graph(tlist *order)
{
    for (int64_t i = 0; i < order->n; i++) {
        tensor *t = order->v[i];
        ag_node *n = t->autograd;
        t->autograd = NULL;
        t->requires_grad = 0;
        if (n)
            ag_node_release(n);
    }
    for (int64_t i = 0; i < order->n; i++)
        tensor_decref(order->v[i]);
    free(order->v);
}

int ag_backward(tensor *loss, eng_error *err)
{
    if (!tensor_dtype_is_float(loss->dtype) || tensor_numel(loss) != 1) {
        char shape[TENSOR_SHAPE_BUF];
        tensor_shape_str(loss->ndim, loss->shape, shape, sizeof shape);
        return eng_fail(err, ERR_VALUE,
                        "backward: the loss must be a one-element float tensor, got %s %s tensor of shape %s%s",
                        eng_a(tensor_dtype_name(loss->dtype)), tensor_dtype_name(loss->dtype), shape,
                        tensor_numel(loss) != 1 ? " (reduce it first, e.g. sum(out) or mean(out))" : "");
    }
    if (!loss->requires_grad)
        return eng_fail(err, ERR_VALUE,
                        "backward: the loss does not require grad (computed from no param, with grad mode "
                        "off, or its graph was freed by an earlier backward)");
    int saved_mode = ag_grad_mode(), rc = -1;
    ag_set_grad_mode(0);
    const eng_backend *prev_place = tensor_place(loss->storage->backend);
    tensor *one = tensor_full(loss->dtype, loss->ndim, loss->shape, 1.0, err);
    tensor_place(prev_place);
    if (!one)
        goto out;
    if (!loss->autograd) { /* the loss is a leaf itself */
        rc = accumulate(&loss->grad, one, loss, err);
        tensor_decref(one);
        goto out;
    }
    tlist order = {0};
    if (topo_sort(loss, &order, err) < 0) {
        tensor_decref(one);
        release_graph(&order);
        goto out;
    }
    ag_node *top = loss->autograd;
    top->gacc = one;
    scratch s = {.err = err};
    for (int64_t i = order.n - 1; i >= 0; i--) {
        ag_node *n = order.v[i]->autograd;
        if (!n->gacc)
            continue; /* reached only through inputs that need no gradient */
        tensor **gin = calloc((size_t)n->nin, sizeof *gin);
        /* what a rule makes from nothing (zeros, constants) goes on the gradient's device */
        const eng_backend *node_place = tensor_place(n->gacc->storage->backend);
        int bad = !gin ? eng_fail(err, ERR_MEMORY, "backward: out of memory") : node_grads(&s, n, n->gacc, gin);
        tensor_place(node_place);
        for (int k = 0; !bad && k < n->nin; k++) {
            tensor *in = n->in[k];
            if (!in->requires_grad || !gin[k])
                continue;
            ag_node *m = in->autograd;
            bad = m ? accumulate(&m->gacc, gin[k], in, err) : accumulate(&in->grad, gin[k], in, err);
        }
        free(gin);
        scratch_free(&s);
        tensor_decref(n->gacc);
        n->gacc = NULL;
        if (bad) {
            for (int64_t j = 0; j < order.n; j++) {
                ag_node *m = order.v[j]->autograd;
                tensor_decref(m->gacc);
                m->gacc = NULL;
            }
            release_graph(&order);
            goto out;
        }
    }
    release_graph(&order);
    rc = 0;
out:
    ag_set_grad_mode(saved_mode);
    return rc;
}

static const tensor_recorder ag_recorder = {
    .unary = ag_unary,
    .binary = ag_binary,
    .binary_scalar = ag_binary_scalar,
    .where = ag_where,
    .reduce = ag_reduce,
    .matmul = ag_matmul,
    .cat = ag_cat,
    .gather = ag_gather,
    .scan = ag_scan,
    .index_add = ag_index_add,
    .cast = ag_cast,
    .slice = ag_slice,
    .select = ag_select,
    .transpose = ag_transpose,
    .permute = ag_permute,
    .expand = ag_expand,
    .squeeze = ag_squeeze,
    .unsqueeze = ag_unsqueeze,
    .reshape = ag_reshape,
    .to = ag_to,
    .node_release = ag_node_release,
    .refuse_inplace = ag_refuse_inplace,
};

void ag_install(void)
{
    if (tensor_recorder_hooks != &ag_recorder)
        tensor_set_recorder(&ag_recorder);
}

tensor *ag_param(tensor *t, eng_error *err)
{
    ag_install();
    if (!tensor_dtype_is_float(t->dtype)) {
        eng_fail(err, ERR_TYPE, "param: a parameter must have a float dtype, got %s (cast it first: f32(x))",
                 tensor_dtype_name(t->dtype));
        return NULL;
    }
    if (t->autograd) { /* computed from a param: a fresh leaf over its values */
        tensor *d = ag_detach(t, err);
        if (d)
            d->requires_grad = 1;
        return d;
    }
    t->requires_grad = 1;
    tensor_incref(t);
    return t;
}

tensor *ag_detach(tensor *x, eng_error *err)
{
    int saved = ag_grad_mode();
    ag_set_grad_mode(0);
    tensor *v = tensor_expand(x, x->ndim, x->shape, err); /* a plain view of the same shape */
    ag_set_grad_mode(saved);
    return v;
}
