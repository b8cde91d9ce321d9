/* test_autograd.c — unit tests of engine/train/autograd.c: the gradient of every recorded op
 * against central finite differences in f64 (one check generated per row of
 * engine/tensor/ops.def, composites included; small random shapes, broadcasting included), accumulation across backward calls, grad mode off recording nothing, the
 * refusal of in-place writes, detach, and the tape freed (no live node left) once the
 * loss is dropped or backward has run, and a custom node (ag_custom: set_backward's callback
 * called once with zero-filled buffers, its context released with the node). Exits
 * non-zero on failure.
 *
 * Each check: L = sum(f(params) * R) for a fixed random R, so every output element
 * weighs differently; analytic dL/dp from backward against (L(p+h) - L(p-h)) / 2h with
 * h = 1e-6, passing when |analytic - numeric| <= tol * max(1, |analytic|, |numeric|);
 * tol = 1e-6 unless the case says otherwise (a cast through f32: tol 1e-3, h 1e-2).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/autograd.h"
#include "tests/unit/check.h"
#define GRADCHECK_SEED 12345
#include "tests/unit/gradcheck.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers" /* the case table below */


typedef struct gcase gcase;
typedef tensor *(*fwd_fn)(tensor **p, const gcase *c);
struct gcase {
    const char *name;
    fwd_fn f;
    int np;                    /* parameters (at most 3) */
    int nd[3];
    int64_t shape[3][4];
    int positive;              /* parameters drawn from [0.5, 2) instead of [-2, 2) */
    op_id op;
    int dim, keepdim;          /* reductions, views */
    double p0, p1;             /* clamp bounds; scalar operand */
    double tol;                /* 0: 1e-6 */
    double h;                  /* 0: 1e-6 */
    void (*fn)(void);          /* a composite's tensor_NAME (f_composite) */
};

static tensor *f_unary(tensor **p, const gcase *c) { return tensor_unary(c->op, p[0], c->p0, c->p1, &err); }
static tensor *f_binary(tensor **p, const gcase *c) { return tensor_binary(c->op, p[0], p[1], &err); }
static tensor *f_scalar_r(tensor **p, const gcase *c) { return tensor_binary_scalar(c->op, p[0], c->p0, 1, 0, &err); }
static tensor *f_scalar_l(tensor **p, const gcase *c) { return tensor_binary_scalar(c->op, p[0], c->p0, 1, 1, &err); }
static tensor *f_reduce(tensor **p, const gcase *c) { return tensor_reduce(c->op, p[0], c->dim, c->keepdim, &err); }
static tensor *f_matmul(tensor **p, const gcase *c) { return tensor_matmul(p[0], p[1], &err); }
static tensor *f_dot(tensor **p, const gcase *c) { return tensor_dot(p[0], p[1], &err); }
static tensor *f_outer(tensor **p, const gcase *c) { return tensor_outer(p[0], p[1], &err); }
static tensor *f_slice(tensor **p, const gcase *c) { return tensor_slice(p[0], c->dim, 1, 5, 2, &err); }
static tensor *f_slice_neg(tensor **p, const gcase *c) { return tensor_slice(p[0], c->dim, -1, -100, -1, &err); }
static tensor *f_select(tensor **p, const gcase *c) { return tensor_select(p[0], c->dim, -1, &err); }
static tensor *f_transpose(tensor **p, const gcase *c) { return tensor_transpose(p[0], 0, 2, &err); }
static tensor *f_permute(tensor **p, const gcase *c)
{
    int dims[3] = {2, 0, 1};
    return tensor_permute(p[0], dims, 3, &err);
}
static tensor *f_reshape(tensor **p, const gcase *c)
{
    int64_t s[2] = {-1, 3};
    tensor *t = must(tensor_transpose(p[0], 0, 1, &err)); /* not viewable: reshape copies */
    tensor *r = tensor_reshape(t, 2, s, &err);
    tensor_decref(t);
    return r;
}
static tensor *f_expand(tensor **p, const gcase *c)
{
    int64_t s[3] = {2, 3, 4};
    return tensor_expand(p[0], 3, s, &err);
}
static tensor *f_squeeze(tensor **p, const gcase *c)
{
    tensor *t = must(tensor_squeeze(p[0], -1000, &err));
    tensor *r = tensor_unsqueeze(t, 0, &err);
    tensor_decref(t);
    return r;
}
static tensor *f_contiguous(tensor **p, const gcase *c)
{
    tensor *t = must(tensor_transpose(p[0], 0, 1, &err));
    tensor *r = tensor_contiguous(t, &err);
    tensor_decref(t);
    return r;
}
static tensor *f_cast(tensor **p, const gcase *c)
{
    tensor *t = must(tensor_cast(p[0], DT_F32, &err));
    tensor *r = tensor_unary(OP_TANH, t, 0, 0, &err);
    tensor_decref(t);
    return r;
}
static tensor *f_gather(tensor **p, const gcase *c)
{
    double iv[5] = {2, 0, 2, -1, 2}; /* repeated and negative indices */
    int64_t n = 5;
    tensor *idx = must(tensor_from_doubles(iv, DT_I64, 1, &n, &err));
    tensor *r = tensor_gather(p[0], idx, &err);
    tensor_decref(idx);
    return r;
}
static tensor *f_cat(tensor **p, const gcase *c) { return tensor_cat(p, c->np, c->dim, &err); }
static tensor *f_stack(tensor **p, const gcase *c) { return tensor_stack(p, c->np, c->dim, &err); }
static tensor *f_where(tensor **p, const gcase *c)
{
    tensor *cond = must(tensor_binary_scalar(OP_GT, p[0], 0.0, 1, 0, &err)); /* bool: no gradient */
    tensor *r = tensor_where(cond, p[0], p[1], &err);
    tensor_decref(cond);
    return r;
}
static tensor *f_mlp(tensor **p, const gcase *c) /* sum(relu(x @ w + b)), x a constant */
{
    int64_t xs[2] = {5, 4};
    uint64_t saved = lcg;
    lcg = 777; /* the same constant x at every call */
    tensor *x = random_f64(2, xs, 0);
    lcg = saved;
    tensor *h = must(tensor_matmul(x, p[0], &err));
    tensor *z = must(tensor_binary(OP_ADD, h, p[1], &err));
    tensor *r = tensor_unary(OP_RELU, z, 0, 0, &err);
    tensor_decref(x);
    tensor_decref(h);
    tensor_decref(z);
    return r;
}

/* L = sum(f(p) * R); R made at the first call from the output's shape */
static tensor *run_case(tensor **p, const void *ctx)
{
    const gcase *c = ctx;
    return c->f(p, c);
}

static void check_case(const gcase *c)
{
    gradcheck(c->name, run_case, c, c->np, c->nd, c->shape, c->positive, c->tol, c->h);
}

static tensor *f_composite(tensor **p, const gcase *c)
{
    return ((tensor * (*)(const tensor *, double, eng_error *)) c->fn)(p[0], c->p0, &err);
}

/* One check per row of engine/tensor/ops.def, generated from the table: every unary row with a
 * float result (a NOGRAD row too: its zero gradient must match finite differences, so
 * marking a differentiable op NOGRAD fails here), every binary row, every reduction
 * with a float result, every composite. */
#define POS_ANY 0
#define POS_POS 1
#define UN_CASE_FLOAT(ID, name, DOM) {name, f_unary, 1, {2}, {{3, 4}}, POS_##DOM, OP_##ID, 0, 0, -0.5, 0.7},
#define UN_CASE_KEEP UN_CASE_FLOAT
#define UN_CASE_ARITH UN_CASE_FLOAT
#define UN_CASE_BOOL(ID, name, DOM) /* a bool result has no gradient */
#define RED_CASE_SUM(ID, name) {name " dim 1", f_reduce, 1, {2}, {{3, 4}}, 0, OP_##ID, 1, 0},
#define RED_CASE_KEEP RED_CASE_SUM
#define RED_CASE_FLOAT RED_CASE_SUM
#define RED_CASE_INDEX(ID, name) /* an i64 result has no gradient */
static const gcase table_cases[] = {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) UN_CASE_##DT(ID, name, DOM)
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) \
    {name, f_binary, 2, {2, 2}, {{3, 4}, {3, 4}}, POS_##DOM, OP_##ID},
#define OP_REDUCE(ID, name, DT, G) RED_CASE_##DT(ID, name)
#define OP_COMPOSITE(name, sig, NP, P0, DOM, EXPR, doc) \
    {#name, f_composite, 1, {2}, {{3, 4}}, POS_##DOM, 0, 0, 0, 0.3, 0, 0, 0, (void (*)(void))tensor_##name},
#include "engine/tensor/ops.def"
};

#define S1(a, b, c_, d) 4, {{a, b, c_, d}}
static const gcase cases[] = {
    {"add broadcast", f_binary, 2, {2, 1}, {{3, 4}, {4}}, 0, OP_ADD},
    {"sub broadcast", f_binary, 2, {2, 2}, {{3, 1}, {1, 4}}, 0, OP_SUB},
    {"mul broadcast", f_binary, 2, {3, 2}, {{2, 3, 4}, {3, 1}}, 0, OP_MUL},
    {"div broadcast", f_binary, 2, {2, 0}, {{3, 4}, {0}}, 1, OP_DIV},
    {"pow", f_binary, 2, {2, 2}, {{3, 4}, {3, 4}}, 1, OP_POW},
    {"pow broadcast", f_binary, 2, {2, 1}, {{3, 4}, {1}}, 1, OP_POW},
    {"maximum broadcast", f_binary, 2, {2, 1}, {{3, 4}, {4}}, 0, OP_MAXIMUM},
    {"minimum", f_binary, 2, {2, 2}, {{3, 4}, {3, 4}}, 0, OP_MINIMUM},
    {"x + s", f_scalar_r, 1, {2}, {{3, 4}}, 0, OP_ADD, 0, 0, 1.7},
    {"x - s", f_scalar_r, 1, {2}, {{3, 4}}, 0, OP_SUB, 0, 0, 1.7},
    {"s - x", f_scalar_l, 1, {2}, {{3, 4}}, 0, OP_SUB, 0, 0, 1.7},
    {"x * s", f_scalar_r, 1, {2}, {{3, 4}}, 0, OP_MUL, 0, 0, 1.7},
    {"s / x", f_scalar_l, 1, {2}, {{3, 4}}, 1, OP_DIV, 0, 0, 1.7},
    {"x ^ s", f_scalar_r, 1, {2}, {{3, 4}}, 1, OP_POW, 0, 0, 2.5},
    {"s ^ x", f_scalar_l, 1, {2}, {{3, 4}}, 0, OP_POW, 0, 0, 1.7},
    {"sum all", f_reduce, 1, {2}, {{3, 4}}, 0, OP_SUM, TENSOR_ALLDIMS, 0},
    {"sum dim 1", f_reduce, 1, {3}, {{2, 3, 4}}, 0, OP_SUM, 1, 0},
    {"sum dim -1 keepdim", f_reduce, 1, {3}, {{2, 3, 4}}, 0, OP_SUM, -1, 1},
    {"mean all", f_reduce, 1, {2}, {{3, 4}}, 0, OP_MEAN, TENSOR_ALLDIMS, 0},
    {"mean dim 0 keepdim", f_reduce, 1, {2}, {{3, 4}}, 0, OP_MEAN, 0, 1},
    {"max all", f_reduce, 1, {2}, {{3, 4}}, 0, OP_MAX, TENSOR_ALLDIMS, 0},
    {"max dim 1", f_reduce, 1, {2}, {{3, 4}}, 0, OP_MAX, 1, 0},
    {"min dim 0 keepdim", f_reduce, 1, {2}, {{3, 4}}, 0, OP_MIN, 0, 1},
    {"var all", f_reduce, 1, {2}, {{3, 4}}, 0, OP_VAR, TENSOR_ALLDIMS, 0},
    {"var dim 1", f_reduce, 1, {2}, {{3, 4}}, 0, OP_VAR, 1, 0},
    {"std dim 0", f_reduce, 1, {2}, {{3, 4}}, 0, OP_STD, 0, 1},
    {"std all", f_reduce, 1, {2}, {{3, 4}}, 0, OP_STD, TENSOR_ALLDIMS, 0},
    {"norm all", f_reduce, 1, {2}, {{3, 4}}, 0, OP_NORM, TENSOR_ALLDIMS, 0},
    {"norm dim 1", f_reduce, 1, {2}, {{3, 4}}, 0, OP_NORM, 1, 0},
    {"matmul 2-d", f_matmul, 2, {2, 2}, {{3, 4}, {4, 5}}, 0},
    {"matmul batched", f_matmul, 2, {3, 3}, {{2, 3, 4}, {2, 4, 5}}, 0},
    {"matmul broadcast batch", f_matmul, 2, {3, 2}, {{2, 3, 4}, {4, 5}}, 0},
    {"matmul 1-d @ 2-d", f_matmul, 2, {1, 2}, {{4}, {4, 5}}, 0},
    {"matmul 3-d @ 1-d", f_matmul, 2, {3, 1}, {{2, 3, 4}, {4}}, 0},
    {"dot", f_dot, 2, {1, 1}, {{4}, {4}}, 0},
    {"outer", f_outer, 2, {1, 1}, {{3}, {4}}, 0},
    {"slice", f_slice, 1, {2}, {{3, 6}}, 0, 0, 1},
    {"slice reversed", f_slice_neg, 1, {2}, {{4, 3}}, 0, 0, 0},
    {"select", f_select, 1, {3}, {{2, 3, 4}}, 0, 0, 1},
    {"transpose", f_transpose, 1, {3}, {{2, 3, 4}}, 0},
    {"permute", f_permute, 1, {3}, {{2, 3, 4}}, 0},
    {"reshape (copy)", f_reshape, 1, {2}, {{4, 3}}, 0},
    {"expand", f_expand, 1, {2}, {{3, 1}}, 0},
    {"squeeze, unsqueeze", f_squeeze, 1, {3}, {{3, 1, 4}}, 0},
    {"contiguous", f_contiguous, 1, {2}, {{3, 4}}, 0},
    {"cast f64 -> f32", f_cast, 1, {2}, {{3, 4}}, 0, 0, 0, 0, 0, 0, 1e-3, 1e-2},
    {"gather", f_gather, 1, {2}, {{3, 4}}, 0},
    {"cat dim 1", f_cat, 3, {2, 2, 2}, {{3, 1}, {3, 4}, {3, 2}}, 0, 0, 1},
    {"stack dim 0", f_stack, 2, {2, 2}, {{3, 4}, {3, 4}}, 0, 0, 0},
    {"where broadcast", f_where, 2, {2, 1}, {{3, 4}, {4}}, 0},
    {"mlp", f_mlp, 2, {2, 1}, {{4, 3}, {3}}, 0},
};

static tensor *quadratic_loss(tensor *w) /* sum(w * w * 3) */
{
    tensor *a = must(tensor_binary(OP_MUL, w, w, &err));
    tensor *b = must(tensor_binary_scalar(OP_MUL, a, 3.0, 1, 0, &err));
    tensor *l = must(tensor_reduce(OP_SUM, b, TENSOR_ALLDIMS, 0, &err));
    tensor_decref(a);
    tensor_decref(b);
    return l;
}

static void test_accumulate_and_modes(void)
{
    double v[3] = {1, -2, 0.5};
    int64_t n = 3;
    tensor *w = must(ag_param(must(tensor_from_doubles(v, DT_F32, 1, &n, &err)), &err));
    tensor_decref(w); /* ag_param returned a second reference */
    for (int round = 0; round < 2; round++) {
        tensor *l = quadratic_loss(w);
        CHECK(l->requires_grad && ag_live_nodes() == 3);
        CHECK(ag_backward(l, &err) == 0);
        CHECK(ag_live_nodes() == 0); /* backward frees the graph below the loss */
        CHECK(ag_backward(l, &err) < 0); /* and a second backward of the same loss says so */
        CHECK(strstr(err.msg, "freed by an earlier backward") != NULL);
        err = (eng_error){0};
        tensor_decref(l);
    }
    for (int k = 0; k < 3; k++) /* two rounds of 6w */
        CHECK(fabs(tensor_get_flat(w->grad, k) - 12 * v[k]) < 1e-5);

    /* dropping the loss without backward frees the tape too */
    tensor *l = quadratic_loss(w);
    CHECK(ag_live_nodes() == 3);
    tensor_decref(l);
    CHECK(ag_live_nodes() == 0);

    /* grad mode off: nothing recorded, and in-place updates allowed */
    ag_set_grad_mode(0);
    l = quadratic_loss(w);
    CHECK(!l->requires_grad && !l->autograd && ag_live_nodes() == 0);
    tensor_decref(l);
    CHECK(tensor_binary_inplace(OP_SUB, w, w->grad, &err) == 0);
    ag_set_grad_mode(1);

    /* in place with grad mode on: refused, with the advice */
    tensor *one = must(tensor_scalar(1.0, DT_F32, &err));
    CHECK(w->requires_grad);
    int rc = tensor_binary_inplace(OP_ADD, w, one, &err);
    CHECK(rc < 0 && strstr(err.msg, "set_grad_enabled(false)"));
    err = (eng_error){0};
    CHECK(tensor_assign(w, one, &err) < 0);
    err = (eng_error){0};
    CHECK(tensor_fill(w, 0.0, &err) < 0);
    err = (eng_error){0};
    tensor_decref(one);

    /* detach: the same values, no gradient, no node */
    tensor *d = must(ag_detach(w, &err));
    tensor *y = must(tensor_binary(OP_MUL, d, d, &err));
    CHECK(!d->requires_grad && !y->requires_grad && ag_live_nodes() == 0);
    CHECK(tensor_get_flat(d, 0) == tensor_get_flat(w, 0));
    tensor_decref(y);
    tensor_decref(d);

    /* a loss that is not one float element */
    tensor *v2 = must(tensor_binary(OP_MUL, w, w, &err));
    rc = ag_backward(v2, &err);
    CHECK(rc < 0 && strstr(err.msg, "one-element"));
    err = (eng_error){0};
    tensor_decref(v2);

    /* integer tensors cannot be params */
    tensor *it = must(tensor_arange(0, 3, 1, DT_I64, &err));
    CHECK(!ag_param(it, &err));
    err = (eng_error){0};
    tensor_decref(it);

    /* a long chain: freed without recursion */
    tensor *x = w;
    tensor_incref(x);
    for (int i = 0; i < 200000; i++) {
        tensor *nx = must(tensor_binary_scalar(OP_MUL, x, 1.0, 1, 0, &err));
        tensor_decref(x);
        x = nx;
    }
    CHECK(ag_live_nodes() == 200000);
    tensor_decref(x);
    CHECK(ag_live_nodes() == 0);
    tensor_decref(w);
}

/* ag_custom: a node whose rule is a callback (set_backward's, engine/lang/custom_ops.c) */
typedef struct custom_probe {
    int calls, releases;  /* how often each callback ran */
    int zero_filled;      /* the buffers arrived zero-filled with the inputs' shapes */
    int saw_output;       /* the output view arrived, without a node */
} custom_probe;

static int probe_backward(void *ctx, tensor *const *in, int nin, tensor *out, tensor *gout, tensor *const *grads,
                          eng_error *e)
{
    custom_probe *p = ctx;
    p->calls++;
    p->saw_output = out && !out->autograd && gout && gout->ndim == out->ndim;
    p->zero_filled = nin == 2;
    for (int i = 0; i < nin; i++) {
        p->zero_filled &= grads[i]->ndim == in[i]->ndim && grads[i]->dtype == in[i]->dtype;
        for (int64_t k = 0; k < tensor_numel(grads[i]); k++)
            p->zero_filled &= tensor_get_flat(grads[i], k) == 0.0;
    }
    /* out = a * b: da = gout * b, db = gout * a, written into the buffers in place */
    tensor *da = tensor_binary(OP_MUL, gout, in[1], e), *db = tensor_binary(OP_MUL, gout, in[0], e);
    int rc = da && db && tensor_binary_inplace(OP_ADD, grads[0], da, e) == 0 &&
             tensor_binary_inplace(OP_ADD, grads[1], db, e) == 0 ? 0 : -1;
    tensor_decref(da);
    tensor_decref(db);
    return rc;
}

static void probe_release(void *ctx) { ((custom_probe *)ctx)->releases++; }

static const ag_custom_fn probe_fns = {probe_backward, probe_release};

static void test_custom_node(void)
{
    double va[3] = {1, -2, 0.5}, vb[3] = {3, 4, -1};
    int64_t n = 3;
    tensor *a = must(ag_param(must(tensor_from_doubles(va, DT_F64, 1, &n, &err)), &err));
    tensor *b = must(tensor_from_doubles(vb, DT_F64, 1, &n, &err)); /* needs no gradient */
    tensor_decref(a);
    custom_probe p = {0};
    ag_set_grad_mode(0);
    tensor *y = must(tensor_binary(OP_MUL, a, b, &err)); /* computed unrecorded, as the body runs */
    ag_set_grad_mode(1);
    tensor *in[2] = {a, b};
    y = must(ag_custom(y, in, 2, &probe_fns, &p, &err));
    CHECK(y->requires_grad && y->autograd && ag_live_nodes() == 1);
    tensor *l = must(tensor_reduce(OP_SUM, y, TENSOR_ALLDIMS, 0, &err));
    CHECK(ag_backward(l, &err) == 0);
    CHECK(p.calls == 1 && p.zero_filled && p.saw_output);
    for (int k = 0; k < 3; k++)
        CHECK(fabs(tensor_get_flat(a->grad, k) - vb[k]) < 1e-12);
    CHECK(b->grad == NULL); /* its buffer was ignored */
    CHECK(ag_live_nodes() == 0 && p.releases == 1); /* backward freed the node and its context */
    tensor_decref(l);
    tensor_decref(y);

    /* the output is an input: the node goes on a fresh view; dropping it releases all */
    custom_probe q = {0};
    tensor_incref(a);
    tensor *same = must(ag_custom(a, in, 2, &probe_fns, &q, &err));
    CHECK(same != a && same->autograd && !a->autograd && a->requires_grad);
    tensor_decref(same);
    CHECK(ag_live_nodes() == 0 && q.releases == 1 && q.calls == 0);

    /* nothing requires grad: no node, the context released at once */
    custom_probe r = {0};
    tensor *ins[1] = {b};
    tensor_incref(b);
    tensor *plain = must(ag_custom(b, ins, 1, &probe_fns, &r, &err));
    CHECK(plain == b && !plain->autograd && r.releases == 1);
    tensor_decref(plain);
    tensor_decref(b);
    tensor_decref(a);
}

int main(void)
{
    printf("gradient checks (f64, central differences, h = 1e-6, rel tol 1e-6 unless given):\n");
    printf("one per row of engine/tensor/ops.def:\n");
    for (size_t i = 0; i < sizeof table_cases / sizeof table_cases[0]; i++)
        check_case(&table_cases[i]);
    printf("the rest:\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
    test_accumulate_and_modes();
    test_custom_node();
    if (failures) {
        fprintf(stderr, "test_autograd: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_autograd: all passed (%zu gradient checks)\n",
           sizeof table_cases / sizeof table_cases[0] + sizeof cases / sizeof cases[0]);
    return 0;
}
