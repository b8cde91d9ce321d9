/* op_dsl.h — the little language that ops.def's gradients (GRAD) and composite ops
 * (OP_COMPOSITE) are written in: tensor expressions whose every step is one call of
 * the tensor front end, with the temporaries kept in a scratch list and freed together.
 * Used by engine/train/autograd.c (backward rules, grad mode off) and engine/tensor/composite.c
 * (composites, grad mode as the caller has it, so autograd records each primitive).
 *
 * A file includes it once for the types and helpers; around the code that expands
 * ops.def's expressions it includes it again with OP_DSL_NAMES defined (the names are
 * short macros: add, mul, div, ...; they use a `dsl_scratch *s` in scope) and once more
 * with OP_DSL_END defined to drop them. Every helper passes NULL through, so an
 * expression whose inner step failed yields NULL with s->err filled by that step.
 *
 *   add sub mul div pow(a, b)   tensor op tensor, broadcasting
 *   gt lt eq(a, b), both(a, b)  comparisons, logical and (bool results)
 *   adds subs muls divs maxs(t, v)   tensor op number;  rsubs rdivs(v, t)   number op tensor
 *   gts lts ges les eqs(t, v)   comparisons with a number
 *   neg(t), un(OP, t), clamp(t, lo, hi)   unary rows of ops.def
 *   where(c, a, b), zero(t)     select; a 0-d zero of t's dtype
 *   call(name, t)               a composite row (its parameter 0)
 */
#if !defined(OP_DSL_NAMES) && !defined(OP_DSL_END)
#ifndef KILN_OP_DSL_H
#define KILN_OP_DSL_H

#include "engine/tensor/tensor.h"

typedef struct dsl_scratch {
    tensor *t[32];  /* temporaries to free */
    int n;          /* how many */
    eng_error *err; /* where the steps report */
} dsl_scratch;

/* t kept in the scratch (NULL passes through; a full scratch fails rather than leaks) */
static inline tensor *dsl_keep(dsl_scratch *s, tensor *t)
{
    if (t && s->n < (int)(sizeof s->t / sizeof s->t[0]))
        s->t[s->n++] = t;
    else if (t) {
        tensor_decref(t);
        eng_fail(s->err, ERR_RUNTIME, "too many temporaries in one expression");
        return NULL;
    }
    return t;
}

static inline void dsl_free(dsl_scratch *s)
{
    for (int i = 0; i < s->n; i++)
        tensor_decref(s->t[i]);
    s->n = 0;
}

static inline tensor *dsl_bin(dsl_scratch *s, op_id op, const tensor *a, const tensor *b)
{
    return a && b ? dsl_keep(s, tensor_binary(op, a, b, s->err)) : NULL;
}

static inline tensor *dsl_sc(dsl_scratch *s, op_id op, const tensor *a, double v, int left)
{
    return a ? dsl_keep(s, tensor_binary_scalar(op, a, v, 1, left, s->err)) : NULL;
}

static inline tensor *dsl_un(dsl_scratch *s, op_id op, const tensor *a, double p0, double p1)
{
    return a ? dsl_keep(s, tensor_unary(op, a, p0, p1, s->err)) : NULL;
}

static inline tensor *dsl_where(dsl_scratch *s, const tensor *c, const tensor *a, const tensor *b)
{
    return c && a && b ? dsl_keep(s, tensor_where(c, a, b, s->err)) : NULL;
}

static inline tensor *dsl_zero(dsl_scratch *s, const tensor *like)
{
    return like ? dsl_keep(s, tensor_scalar(0.0, like->dtype, s->err)) : NULL;
}

static inline tensor *dsl_red(dsl_scratch *s, op_id op, const tensor *a, int dim, int keepdim)
{
    return a ? dsl_keep(s, tensor_reduce(op, a, dim, keepdim, s->err)) : NULL;
}

/* a composite row's function at parameter 0 */
typedef tensor *(*dsl_fn)(const tensor *x, double p0, eng_error *err);
static inline tensor *dsl_call(dsl_scratch *s, dsl_fn f, const tensor *a)
{
    return a ? dsl_keep(s, f(a, 0, s->err)) : NULL;
}

#endif /* KILN_OP_DSL_H */

#elif defined(OP_DSL_NAMES) /* the names, until OP_DSL_END */
#undef OP_DSL_NAMES
#define add(a, b) dsl_bin(s, OP_ADD, a, b)
#define sub(a, b) dsl_bin(s, OP_SUB, a, b)
#define mul(a, b) dsl_bin(s, OP_MUL, a, b)
#define div(a, b) dsl_bin(s, OP_DIV, a, b)
#define pow(a, b) dsl_bin(s, OP_POW, a, b)
#define gt(a, b) dsl_bin(s, OP_GT, a, b)
#define lt(a, b) dsl_bin(s, OP_LT, a, b)
#define eq(a, b) dsl_bin(s, OP_EQ, a, b)
#define both(a, b) dsl_bin(s, OP_AND, a, b)
#define adds(t, v) dsl_sc(s, OP_ADD, t, v, 0)
#define subs(t, v) dsl_sc(s, OP_SUB, t, v, 0)
#define muls(t, v) dsl_sc(s, OP_MUL, t, v, 0)
#define divs(t, v) dsl_sc(s, OP_DIV, t, v, 0)
#define maxs(t, v) dsl_sc(s, OP_MAXIMUM, t, v, 0)
#define rsubs(v, t) dsl_sc(s, OP_SUB, t, v, 1)
#define rdivs(v, t) dsl_sc(s, OP_DIV, t, v, 1)
#define gts(t, v) dsl_sc(s, OP_GT, t, v, 0)
#define lts(t, v) dsl_sc(s, OP_LT, t, v, 0)
#define ges(t, v) dsl_sc(s, OP_GE, t, v, 0)
#define les(t, v) dsl_sc(s, OP_LE, t, v, 0)
#define eqs(t, v) dsl_sc(s, OP_EQ, t, v, 0)
#define neg(t) dsl_un(s, OP_NEG, t, 0, 0)
#define un(OP, t) dsl_un(s, OP_##OP, t, 0, 0)
#define clamp(t, lo, hi) dsl_un(s, OP_CLAMP, t, lo, hi)
#define where(c, a, b) dsl_where(s, c, a, b)
#define zero(t) dsl_zero(s, t)
#define call(name, t) dsl_call(s, tensor_##name, t)

#else /* OP_DSL_END: drop the names */
#undef add
#undef sub
#undef mul
#undef div
#undef pow
#undef gt
#undef lt
#undef eq
#undef both
#undef adds
#undef subs
#undef muls
#undef divs
#undef maxs
#undef rsubs
#undef rdivs
#undef gts
#undef lts
#undef ges
#undef les
#undef eqs
#undef neg
#undef un
#undef clamp
#undef where
#undef zero
#undef call
#undef OP_DSL_END
#endif
