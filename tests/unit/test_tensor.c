/* test_tensor.c — unit tests of the tensor layer and the CPU backend: dtypes and
 * promotion, views (slices, transposes, broadcasts, reshape), elementwise ops and
 * their fast paths against the generic path, reductions, matmul, printing, the Philox
 * generator (Random123's known answers; same seed, same numbers), .npy and IDX files
 * and their errors. Exits non-zero on the first failure.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "numeric/philox.h"
#include "engine/tensor/backend.h"
#include "engine/base/context.h"
#include "tests/unit/check.h"


static tensor *from(const double *v, tensor_dtype dt, int nd, const int64_t *shape)
{
    eng_error e = {0};
    tensor *t = tensor_from_doubles(v, dt, nd, shape, &e);
    if (!t) {
        fprintf(stderr, "from_doubles failed: %s\n", e.msg);
        exit(1);
    }
    return t;
}

static tensor *iota(tensor_dtype dt, int nd, const int64_t *shape)
{
    eng_error e = {0};
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    tensor *a = tensor_arange(0, (double)n, 1, dt, &e);
    tensor *r = tensor_reshape(a, nd, shape, &e);
    tensor_decref(a);
    return r;
}

static void check_format(const tensor *t, const char *want)
{
    char *s = tensor_format(t);
    CHECK_STR(s, want);
    free(s);
}

static void test_dtypes(void)
{
    CHECK(tensor_dtype_promote(DT_I32, DT_F32) == DT_F32);
    CHECK(tensor_dtype_promote(DT_BOOL, DT_U8) == DT_U8);
    CHECK(tensor_dtype_promote(DT_I64, DT_F64) == DT_F64);
    CHECK(tensor_dtype_promote(DT_F16, DT_BF16) == DT_F32);
    CHECK(tensor_dtype_from_name("bf16") == DT_BF16);
    CHECK(tensor_dtype_from_name("f128") == -1);
    CHECK(tensor_dtype_size(DT_F16) == 2);
    CHECK(strcmp(tensor_op_name(OP_ADD), "add") == 0);
}

static void test_views(void)
{
    eng_error e = {0};
    tensor *a = iota(DT_F32, 2, (int64_t[]){3, 4});
    tensor *t = tensor_transpose(a, 0, 1, &e);
    CHECK(t && t->shape[0] == 4 && !tensor_is_contiguous(t));
    CHECK(tensor_get_flat(t, 1) == 4); /* t[0][1] = a[1][0] */
    tensor *s = tensor_slice(a, 1, -1, -5, -2, &e); /* a[:, ::-2] from the end: cols 3, 1 */
    CHECK(s && s->shape[1] == 2 && tensor_get_flat(s, 0) == 3 && tensor_get_flat(s, 1) == 1);
    tensor *sel = tensor_select(a, 0, -1, &e);
    CHECK(sel && sel->ndim == 1 && tensor_get_flat(sel, 0) == 8);
    eng_error e2 = {0};
    CHECK(tensor_select(a, 0, 7, &e2) == NULL && e2.kind == ERR_INDEX);
    CHECK(strstr(e2.msg, "index 7 is out of range for dimension 0 of size 3") != NULL);
    /* reshape of a transpose copies; of a contiguous tensor it is a view */
    tensor *r1 = tensor_reshape(a, 2, (int64_t[]){2, -1}, &e);
    CHECK(r1 && r1->storage == a->storage && r1->shape[1] == 6);
    tensor *r2 = tensor_reshape(t, 1, (int64_t[]){-1}, &e);
    CHECK(r2 && r2->storage != a->storage && tensor_get_flat(r2, 1) == 4);
    /* reshape of a slice that stays viewable */
    tensor *rows = tensor_slice(a, 0, 0, 2, 1, &e);
    tensor *r3 = tensor_reshape(rows, 1, (int64_t[]){8}, &e);
    CHECK(r3 && r3->storage == a->storage);
    eng_error e3 = {0};
    CHECK(tensor_reshape(a, 2, (int64_t[]){5, -1}, &e3) == NULL && e3.kind == ERR_SHAPE);
    tensor *u = tensor_unsqueeze(a, 1, &e);
    CHECK(u && u->ndim == 3 && u->shape[1] == 1);
    tensor *q = tensor_squeeze(u, -1000, &e);
    CHECK(q && q->ndim == 2);
    tensor *p = tensor_permute(a, (int[]){1, 0}, 2, &e);
    CHECK(p && p->shape[0] == 4 && tensor_get_flat(p, 1) == 4);
    tensor *x = tensor_expand(sel, 2, (int64_t[]){5, 4}, &e);
    CHECK(x && x->stride[0] == 0 && tensor_get_flat(x, 4) == 8);
    /* assignment into a strided view: a[:, 1] = 100 */
    tensor *col = tensor_select(a, 1, 1, &e);
    CHECK(tensor_fill(col, 100, &e) == 0 && tensor_get_flat(a, 5) == 100);
    /* overlapping assignment a[0, 1:] = a[0, :-1] */
    tensor *row = tensor_select(a, 0, 0, &e);
    tensor *dst = tensor_slice(row, 0, 1, 4, 1, &e), *src = tensor_slice(row, 0, 0, 3, 1, &e);
    CHECK(tensor_assign(dst, src, &e) == 0);
    CHECK(tensor_get_flat(a, 0) == 0 && tensor_get_flat(a, 1) == 0 && tensor_get_flat(a, 2) == 100 &&
          tensor_get_flat(a, 3) == 2);
    tensor *vs[] = {t, s, sel, r1, r2, rows, r3, u, q, p, x, col, row, dst, src};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        tensor_decref(vs[i]);
    tensor_decref(a);
}

static void test_broadcast_promotion(void)
{
    eng_error e = {0};
    tensor *a = iota(DT_I32, 2, (int64_t[]){3, 1});
    tensor *b = from((double[]){0.5, 1.5}, DT_F32, 1, (int64_t[]){2});
    tensor *c = tensor_binary(OP_ADD, a, b, &e);
    CHECK(c && c->dtype == DT_F32 && c->ndim == 2 && c->shape[0] == 3 && c->shape[1] == 2);
    CHECK(c && tensor_get_flat(c, 5) == 3.5);
    tensor *bad = from((double[]){1, 2, 3, 4, 5}, DT_F32, 1, (int64_t[]){5});
    tensor *m = iota(DT_F32, 2, (int64_t[]){3, 4});
    eng_error e2 = {0};
    CHECK(tensor_binary(OP_ADD, m, bad, &e2) == NULL && e2.kind == ERR_SHAPE);
    CHECK_STR(e2.msg, "add: shapes [3, 4] and [5] do not broadcast");
    /* weak scalars */
    tensor *s1 = tensor_binary_scalar(OP_MUL, a, 2, 0, 0, &e);
    CHECK(s1 && s1->dtype == DT_I32 && tensor_get_flat(s1, 2) == 4);
    tensor *s2 = tensor_binary_scalar(OP_MUL, a, 0.5, 1, 0, &e);
    CHECK(s2 && s2->dtype == DT_F32 && tensor_get_flat(s2, 1) == 0.5);
    tensor *s3 = tensor_binary_scalar(OP_SUB, a, 10, 0, 1, &e); /* 10 - a */
    CHECK(s3 && tensor_get_flat(s3, 2) == 8);
    tensor *cmp = tensor_binary_scalar(OP_GT, m, 5, 0, 0, &e);
    CHECK(cmp && cmp->dtype == DT_BOOL && tensor_get_flat(cmp, 6) == 1 && tensor_get_flat(cmp, 5) == 0);
    /* bool arithmetic counts, as C's */
    tensor *bb = tensor_binary(OP_ADD, cmp, cmp, &e);
    CHECK(bb && bb->dtype == DT_I64 && tensor_get_flat(bb, 11) == 2);
    /* integer division: C truncation, zero divisor fails */
    tensor *n = from((double[]){-7, 7}, DT_I64, 1, (int64_t[]){2});
    tensor *d = from((double[]){2, 0}, DT_I64, 1, (int64_t[]){2});
    tensor *q = tensor_binary_scalar(OP_DIV, n, 2, 0, 0, &e);
    CHECK(q && tensor_get_flat(q, 0) == -3);
    tensor *md = tensor_binary_scalar(OP_MOD, n, 2, 0, 0, &e);
    CHECK(md && tensor_get_flat(md, 0) == -1);
    eng_error e3 = {0};
    CHECK(tensor_binary(OP_DIV, n, d, &e3) == NULL && e3.kind == ERR_ZERODIV);
    /* unary float fn of ints gives f32 */
    tensor *ex = tensor_unary(OP_EXP, a, 0, 0, &e);
    CHECK(ex && ex->dtype == DT_F32 && fabs(tensor_get_flat(ex, 1) - M_E) < 1e-6);
    /* in place with broadcast */
    eng_error e5 = {0};
    CHECK(tensor_binary_inplace(OP_ADD, m, b, &e5) < 0 && e5.kind == ERR_SHAPE);
    tensor *row = from((double[]){1, 1, 1, 1}, DT_F32, 1, (int64_t[]){4});
    eng_error e4 = {0};
    CHECK(tensor_binary_inplace(OP_ADD, m, row, &e4) == 0 && tensor_get_flat(m, 11) == 12);
    /* where, with broadcasting */
    tensor *w = tensor_where(cmp, m, row, &e);
    CHECK(w && tensor_get_flat(w, 0) == 1 && tensor_get_flat(w, 11) == 12);
    /* f16 storage computes in f32 and rounds back */
    tensor *h = tensor_cast(b, DT_F16, &e);
    tensor *h2 = tensor_binary(OP_MUL, h, h, &e);
    CHECK(h2 && h2->dtype == DT_F16 && tensor_get_flat(h2, 1) == 2.25);
    tensor *vs[] = {a, b, c, bad, m, s1, s2, s3, cmp, bb, n, d, q, md, ex, row, w, h, h2};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        tensor_decref(vs[i]);
}

/* the typed fast paths against a plain double computation, on contiguous, strided and
 * broadcast operands, across the parallel threshold */
static void test_elementwise_paths(void)
{
    eng_error e = {0};
    int64_t n = 100003;
    tensor *rng_t;
    tensor_rng rng = {7, 0};
    rng_t = tensor_randn(&rng, 1, &n, &e);
    tensor *two = tensor_reshape(rng_t, 2, (int64_t[]){1, n}, &e);
    tensor *step = tensor_slice(rng_t, 0, 0, n, 3, &e);
    static const op_id ops[] = {OP_EXP, OP_TANH, OP_SIGMOID, OP_RELU, OP_ABS, OP_GELU};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        tensor *y = tensor_unary(ops[k], step, 0, 0, &e);
        CHECK(y != NULL);
        double worst = 0;
        for (int64_t i = 0; y && i < y->shape[0]; i++) {
            double x = tensor_get_flat(step, i), want;
            switch (ops[k]) {
            case OP_EXP: want = exp(x); break;
            case OP_TANH: want = tanh(x); break;
            case OP_SIGMOID: want = 1 / (1 + exp(-x)); break;
            case OP_RELU: want = x > 0 ? x : 0; break;
            case OP_ABS: want = fabs(x); break;
            default: want = 0.5 * x * (1 + erf(x / sqrt(2.0))); break;
            }
            double rel = fabs(tensor_get_flat(y, i) - want) / (fabs(want) + 1e-30);
            if (rel > worst)
                worst = rel;
        }
        double tol = ops[k] == OP_GELU ? 2e-6 : 4e-7; /* f32: a few ulp */
        if (worst >= tol)
            fprintf(stderr, "op %s: worst relative error %g\n", tensor_op_name(ops[k]), worst);
        CHECK(worst < tol);
        tensor_decref(y);
    }
    /* exp at the edges: overflow, underflow into subnormals, NaN */
    tensor *edge = from((double[]){89, -104, -100, NAN, 88.5, 0}, DT_F32, 1, (int64_t[]){6});
    tensor *ee = tensor_unary(OP_EXP, edge, 0, 0, &e);
    CHECK(isinf(tensor_get_flat(ee, 0)) && tensor_get_flat(ee, 1) < 1e-44);
    CHECK(fabs(tensor_get_flat(ee, 2) - (double)expf(-100.0f)) <= 2e-45);
    CHECK(isnan(tensor_get_flat(ee, 3)) && tensor_get_flat(ee, 5) == 1);
    CHECK(fabs(tensor_get_flat(ee, 4) / exp(88.5) - 1) < 3e-7);
    /* binary: contiguous + broadcast row + strided */
    tensor *sum = tensor_binary(OP_SUB, two, step, &e);
    CHECK(sum == NULL); /* [1, n] and [ceil(n/3)] do not broadcast */
    e.kind = ERR_NONE;
    tensor *col = tensor_reshape(step, 2, (int64_t[]){-1, 1}, &e);
    tensor *small = tensor_slice(rng_t, 0, 0, 7, 1, &e);
    tensor *outer = tensor_binary(OP_MUL, col, small, &e);
    CHECK(outer && outer->shape[0] == step->shape[0] && outer->shape[1] == 7);
    int bad = 0;
    for (int64_t i = 0; outer && i < outer->shape[0]; i += 97)
        for (int j = 0; j < 7; j++) {
            float want = (float)tensor_get_flat(step, i) * (float)tensor_get_flat(small, j);
            if (tensor_get_flat(outer, i * 7 + j) != want)
                bad++;
        }
    CHECK(bad == 0);
    tensor *vs[] = {rng_t, two, step, edge, ee, col, small, outer};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        tensor_decref(vs[i]);
}

static void test_reductions(void)
{
    eng_error e = {0};
    tensor *a = iota(DT_F32, 3, (int64_t[]){2, 3, 4});
    tensor *s = tensor_reduce(OP_SUM, a, TENSOR_ALLDIMS, 0, &e);
    CHECK(s && s->ndim == 0 && tensor_get_flat(s, 0) == 276);
    tensor *s1 = tensor_reduce(OP_SUM, a, 1, 1, &e);
    CHECK(s1 && s1->ndim == 3 && s1->shape[1] == 1 && tensor_get_flat(s1, 0) == 12);
    tensor *mx = tensor_reduce(OP_ARGMAX, a, -1, 0, &e);
    CHECK(mx && mx->dtype == DT_I64 && tensor_get_flat(mx, 5) == 3);
    tensor *v = tensor_reduce(OP_VAR, a, 0, 0, &e);
    CHECK(v && tensor_get_flat(v, 0) == 36);
    tensor *ai = iota(DT_I32, 2, (int64_t[]){3, 4});
    tensor *si = tensor_reduce(OP_SUM, ai, 0, 0, &e);
    CHECK(si && si->dtype == DT_I64 && tensor_get_flat(si, 3) == 21);
    tensor *mi = tensor_reduce(OP_MEAN, ai, TENSOR_ALLDIMS, 0, &e);
    CHECK(mi && mi->dtype == DT_F32 && tensor_get_flat(mi, 0) == 5.5);
    /* NaN propagates through max, argmax finds the first NaN */
    tensor *nn = from((double[]){1, NAN, 3, NAN}, DT_F32, 1, (int64_t[]){4});
    tensor *nm = tensor_reduce(OP_MAX, nn, TENSOR_ALLDIMS, 0, &e);
    tensor *na = tensor_reduce(OP_ARGMAX, nn, TENSOR_ALLDIMS, 0, &e);
    CHECK(nm && isnan(tensor_get_flat(nm, 0)) && na && tensor_get_flat(na, 0) == 1);
    /* empty */
    tensor *em = tensor_empty(DT_F32, 2, (int64_t[]){0, 3}, &e);
    tensor *es = tensor_reduce(OP_SUM, em, 0, 0, &e);
    CHECK(es && es->shape[0] == 3 && tensor_get_flat(es, 2) == 0);
    eng_error e2 = {0};
    CHECK(tensor_reduce(OP_MAX, em, 0, 0, &e2) == NULL && e2.kind == ERR_VALUE);
    /* a long f32 sum is accurate: 1e7 values of 0.1 */
    int64_t n = 10000000;
    tensor *big = tensor_full(DT_F32, 1, &n, 0.1, &e);
    tensor *bs = tensor_reduce(OP_SUM, big, TENSOR_ALLDIMS, 0, &e);
    CHECK(bs && fabs(tensor_get_flat(bs, 0) / (1e7 * (double)0.1f) - 1) < 1e-6);
    tensor *bm = tensor_reduce(OP_ARGMIN, big, TENSOR_ALLDIMS, 0, &e);
    CHECK(bm && tensor_get_flat(bm, 0) == 0);
    /* along a dim of a transposed view */
    tensor *t = tensor_transpose(a, 0, 2, &e);
    tensor *ts = tensor_reduce(OP_MIN, t, 1, 0, &e);
    CHECK(ts && ts->shape[0] == 4 && ts->shape[1] == 2 && tensor_get_flat(ts, 1) == 12);
    tensor *vs[] = {a, s, s1, mx, v, ai, si, mi, nn, nm, na, em, es, big, bs, bm, t, ts};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        tensor_decref(vs[i]);
}

static void test_matmul(void)
{
    eng_error e = {0};
    tensor *a = iota(DT_F32, 2, (int64_t[]){2, 3});
    tensor *b = iota(DT_F32, 2, (int64_t[]){3, 2});
    tensor *c = tensor_matmul(a, b, &e);
    CHECK(c && c->shape[0] == 2 && c->shape[1] == 2);
    CHECK(c && tensor_get_flat(c, 0) == 10 && tensor_get_flat(c, 3) == 28 + 12);
    /* transposed operands go to BLAS as transposes */
    tensor *at = tensor_transpose(b, 0, 1, &e); /* [2, 3] */
    tensor *bt = tensor_transpose(a, 0, 1, &e); /* [3, 2] */
    tensor *c2 = tensor_matmul(at, bt, &e);     /* b^T a^T = (a b)^T */
    CHECK(c2 && tensor_get_flat(c2, 1) == tensor_get_flat(c, 2));
    /* batched with broadcast, 1-d operands, integer matmul */
    tensor *batch = iota(DT_F64, 3, (int64_t[]){4, 2, 3});
    tensor *cb = tensor_matmul(batch, b, &e);
    CHECK(cb && cb->dtype == DT_F64 && cb->ndim == 3 && cb->shape[0] == 4 && tensor_get_flat(cb, 0) == 10);
    tensor *v = iota(DT_I32, 1, (int64_t[]){3});
    tensor *mv = tensor_matmul(a, v, &e);
    CHECK(mv && mv->ndim == 1 && mv->shape[0] == 2 && tensor_get_flat(mv, 1) == 14);
    tensor *vi = iota(DT_I64, 2, (int64_t[]){2, 3});
    tensor *vv = tensor_matmul(v, v, &e);
    CHECK(vv && vv->ndim == 0 && vv->dtype == DT_I32 && tensor_get_flat(vv, 0) == 5);
    eng_error e2 = {0};
    tensor *x = iota(DT_F32, 2, (int64_t[]){3, 4}), *y = iota(DT_F32, 2, (int64_t[]){5, 6});
    CHECK(tensor_matmul(x, y, &e2) == NULL);
    CHECK_STR(e2.msg, "matmul: [3, 4] @ [5, 6]: inner dimensions 4 and 5 differ");
    tensor *o = tensor_outer(v, v, &e);
    CHECK(o && o->shape[0] == 3 && tensor_get_flat(o, 8) == 4);
    tensor *vs[] = {a, b, c, at, bt, c2, batch, cb, v, mv, vi, vv, x, y, o};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        tensor_decref(vs[i]);
}

static void test_join_gather(void)
{
    eng_error e = {0};
    tensor *a = iota(DT_F32, 2, (int64_t[]){2, 3});
    tensor *b = iota(DT_I32, 2, (int64_t[]){1, 3});
    tensor *ts[] = {a, b};
    tensor *c = tensor_cat(ts, 2, 0, &e);
    CHECK(c && c->dtype == DT_F32 && c->shape[0] == 3 && tensor_get_flat(c, 7) == 1);
    tensor *ts2[] = {a, a};
    tensor *s = tensor_stack(ts2, 2, 1, &e);
    CHECK(s && s->ndim == 3 && s->shape[1] == 2 && tensor_get_flat(s, 3) == 0);
    tensor *idx = from((double[]){1, 0, -1}, DT_I64, 1, (int64_t[]){3});
    tensor *g = tensor_gather(a, idx, &e);
    CHECK(g && g->shape[0] == 3 && tensor_get_flat(g, 0) == 3 && tensor_get_flat(g, 8) == 5);
    tensor *bad = from((double[]){2}, DT_I64, 1, (int64_t[]){1});
    eng_error e2 = {0};
    CHECK(tensor_gather(a, bad, &e2) == NULL && e2.kind == ERR_INDEX);
    tensor *vs[] = {a, b, c, s, idx, g, bad};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        tensor_decref(vs[i]);
}

static void test_printing(void)
{
    eng_error e = {0};
    tensor *a = from((double[]){1, 2, 3, 4}, DT_F32, 2, (int64_t[]){2, 2});
    check_format(a, "[[1., 2.],\n [3., 4.]]");
    tensor *b = from((double[]){1, 2.5, -0.25}, DT_F32, 1, (int64_t[]){3});
    check_format(b, "[ 1.  ,  2.5 , -0.25]");
    tensor *f = from((double[]){0.1, 0.3}, DT_F32, 1, (int64_t[]){2});
    check_format(f, "[0.1, 0.3]");
    tensor *ex = from((double[]){1e-5, 1}, DT_F64, 1, (int64_t[]){2});
    check_format(ex, "[1.e-05, 1.e+00]");
    tensor *i = iota(DT_I64, 2, (int64_t[]){2, 3});
    check_format(i, "[[0, 1, 2],\n [3, 4, 5]]");
    tensor *bo = tensor_binary_scalar(OP_GT, i, 2, 0, 0, &e);
    check_format(bo, "[[false, false, false],\n [ true,  true,  true]]");
    tensor *sc = tensor_scalar(3, DT_F32, &e);
    check_format(sc, "3.0");
    tensor *nanv = from((double[]){NAN, INFINITY, 1}, DT_F32, 1, (int64_t[]){3});
    check_format(nanv, "[nan, inf,  1.]");
    tensor *em = tensor_empty(DT_F32, 2, (int64_t[]){0, 3}, &e);
    check_format(em, "[]");
    tensor *big = iota(DT_I64, 1, (int64_t[]){2000});
    check_format(big, "[   0,    1,    2, ..., 1997, 1998, 1999]");
    tensor *big2 = iota(DT_I64, 2, (int64_t[]){100, 20});
    check_format(big2, "[[   0,    1,    2, ...,   17,   18,   19],\n"
                       " [  20,   21,   22, ...,   37,   38,   39],\n"
                       " [  40,   41,   42, ...,   57,   58,   59],\n"
                       " ...,\n"
                       " [1940, 1941, 1942, ..., 1957, 1958, 1959],\n"
                       " [1960, 1961, 1962, ..., 1977, 1978, 1979],\n"
                       " [1980, 1981, 1982, ..., 1997, 1998, 1999]]");
    tensor *three = iota(DT_I32, 3, (int64_t[]){2, 1, 2});
    check_format(three, "[[[0, 1]],\n\n [[2, 3]]]");
    char *d = tensor_describe(a);
    CHECK_STR(d, "tensor(shape=[2, 2], dtype=f32, device=cpu)");
    free(d);
    tensor *vs[] = {a, b, f, ex, i, bo, sc, nanv, em, big, big2, three};
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++)
        tensor_decref(vs[k]);
}

static void test_rng(void)
{
    /* Random123 known-answer vectors for Philox4x32-10 */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        philox4x32_10(kat[k], kat[k] + 4, out);
        CHECK(memcmp(out, kat[k] + 6, sizeof out) == 0);
    }
    eng_error e = {0};
    tensor_rng r1 = {42, 0}, r2 = {42, 0};
    int64_t n = 100000;
    tensor *a = tensor_randn(&r1, 1, &n, &e), *b = tensor_randn(&r2, 1, &n, &e);
    CHECK(a && b && memcmp(tensor_data_ptr(a), tensor_data_ptr(b), tensor_nbytes(a)) == 0);
    CHECK(r1.offset == (uint64_t)n);
    /* the mapping: element i of a draw at offset o is the block for counter o + i */
    uint32_t blk[4];
    philox_block(42, 5, blk);
    double u1, u2;
    philox_boxmuller_uniforms(blk, &u1, &u2);
    CHECK(tensor_get_flat(a, 5) == (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586476925286766559 * u2)));
    /* the next draw continues the stream; splitting a draw gives the same numbers */
    tensor_rng r3 = {42, 0};
    int64_t h = n / 2;
    tensor *c1 = tensor_randn(&r3, 1, &h, &e), *c2 = tensor_randn(&r3, 1, &h, &e);
    CHECK(memcmp(tensor_data_ptr(c1), tensor_data_ptr(a), tensor_nbytes(c1)) == 0);
    CHECK(memcmp(tensor_data_ptr(c2), (char *)tensor_data_ptr(a) + tensor_nbytes(c1), tensor_nbytes(c2)) == 0);
    /* moments */
    tensor *m = tensor_reduce(OP_MEAN, a, TENSOR_ALLDIMS, 0, &e);
    tensor *s = tensor_reduce(OP_STD, a, TENSOR_ALLDIMS, 0, &e);
    CHECK_NEAR(tensor_get_flat(m, 0), 0, 0.02);
    CHECK_NEAR(tensor_get_flat(s, 0), 1, 0.02);
    tensor_rng r4 = {1, 0};
    tensor *u = tensor_rand(&r4, 1, &n, &e);
    tensor *umin = tensor_reduce(OP_MIN, u, TENSOR_ALLDIMS, 0, &e);
    tensor *umax = tensor_reduce(OP_MAX, u, TENSOR_ALLDIMS, 0, &e);
    CHECK(tensor_get_flat(umin, 0) >= 0 && tensor_get_flat(umax, 0) < 1);
    tensor *ri = tensor_randint(&r4, -3, 4, 1, &n, &e);
    tensor *rmin = tensor_reduce(OP_MIN, ri, TENSOR_ALLDIMS, 0, &e);
    tensor *rmax = tensor_reduce(OP_MAX, ri, TENSOR_ALLDIMS, 0, &e);
    CHECK(tensor_get_flat(rmin, 0) == -3 && tensor_get_flat(rmax, 0) == 3);
    tensor *vs[] = {a, b, c1, c2, m, s, u, umin, umax, ri, rmin, rmax};
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++)
        tensor_decref(vs[k]);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void test_files(void)
{
    char dir[] = "/tmp/kiln_test_XXXXXX";
    if (!mkdtemp(dir)) {
        failures++;
        return;
    }
    char path[256];
    eng_error e = {0};
    /* npy round trip of every dtype, including a non-contiguous source */
    static const tensor_dtype dts[] = {DT_BOOL, DT_U8, DT_I32, DT_I64, DT_F16, DT_F32, DT_F64};
    tensor *base = iota(DT_F64, 2, (int64_t[]){3, 4});
    tensor *tr = tensor_transpose(base, 0, 1, &e);
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        tensor *x = tensor_cast(tr, dts[k], &e);
        snprintf(path, sizeof path, "%s/%s.npy", dir, tensor_dtype_name(dts[k]));
        CHECK(tensor_save_npy(x, path, &e) == 0);
        tensor *y = tensor_load_npy(path, &e);
        CHECK(y && y->dtype == dts[k] && y->ndim == 2 && y->shape[0] == 4);
        for (int64_t i = 0; y && i < 12; i++)
            CHECK(tensor_get_flat(y, i) == tensor_get_flat(x, i));
        tensor_decref(x);
        tensor_decref(y);
    }
    /* errors name the file */
    eng_error e1 = {0};
    CHECK(tensor_load_npy("/nonexistent/x.npy", &e1) == NULL && e1.kind == ERR_IO);
    CHECK(strstr(e1.msg, "/nonexistent/x.npy") != NULL);
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    write_file(path, "hello world", 11);
    eng_error e2 = {0};
    CHECK(tensor_load_npy(path, &e2) == NULL && e2.kind == ERR_IO && strstr(e2.msg, "not a .npy file"));
    /* truncated data */
    snprintf(path, sizeof path, "%s/f32.npy", dir);
    FILE *f = fopen(path, "rb");
    char buf[4096];
    size_t got = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "%s/trunc.npy", dir);
    write_file(path, buf, got - 5);
    eng_error e3 = {0};
    CHECK(tensor_load_npy(path, &e3) == NULL && strstr(e3.msg, "truncated"));
    /* unsupported dtype */
    char *descr = memmem(buf, got, "<f4", 3);
    if (descr)
        memcpy(descr, "<c8", 3);
    snprintf(path, sizeof path, "%s/complex.npy", dir);
    write_file(path, buf, got);
    eng_error e4 = {0};
    CHECK(tensor_load_npy(path, &e4) == NULL && strstr(e4.msg, "'<c8'"));
    /* IDX: plain and gzipped, big-endian i16 */
    unsigned char idx[] = {0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0x01, 0x02, 0xff, 0xfe, 0, 7, 0x80, 0};
    snprintf(path, sizeof path, "%s/a.idx", dir);
    write_file(path, idx, sizeof idx);
    tensor *t = tensor_load_idx(path, &e);
    CHECK(t && t->dtype == DT_I32 && t->shape[0] == 2 && tensor_get_flat(t, 0) == 258 &&
          tensor_get_flat(t, 1) == -2 && tensor_get_flat(t, 3) == -32768);
    tensor_decref(t);
    snprintf(path, sizeof path, "%s/a.idx.gz", dir);
    gzFile g = gzopen(path, "wb");
    gzwrite(g, idx, sizeof idx);
    gzclose(g);
    t = tensor_load_idx(path, &e);
    CHECK(t && tensor_get_flat(t, 2) == 7);
    tensor_decref(t);
    snprintf(path, sizeof path, "%s/short.idx", dir);
    write_file(path, idx, sizeof idx - 1);
    eng_error e5 = {0};
    CHECK(tensor_load_idx(path, &e5) == NULL && e5.kind == ERR_IO && strstr(e5.msg, "truncated") &&
          strstr(e5.msg, path));
    idx[2] = 0x42;
    snprintf(path, sizeof path, "%s/type.idx", dir);
    write_file(path, idx, sizeof idx);
    eng_error e6 = {0};
    CHECK(tensor_load_idx(path, &e6) == NULL && strstr(e6.msg, "unknown element type 0x42"));
    eng_error e7 = {0};
    CHECK(tensor_load_idx("/nonexistent.idx", &e7) == NULL && strstr(e7.msg, "/nonexistent.idx"));
    tensor_decref(base);
    tensor_decref(tr);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void test_interrupt(void)
{
    eng_error e = {0};
    int64_t n = 1 << 20;
    tensor *a = tensor_full(DT_F32, 1, &n, 1, &e);
    eng_ctx_current()->interrupt = 1; /* this thread's own context: no session runs here */
    eng_error e1 = {0}, e2 = {0};
    CHECK(tensor_binary(OP_ADD, a, a, &e1) == NULL && e1.kind == ERR_INTERRUPT);
    CHECK(tensor_reduce(OP_SUM, a, TENSOR_ALLDIMS, 0, &e2) == NULL && e2.kind == ERR_INTERRUPT);
    eng_ctx_current()->interrupt = 0;
    tensor *b = tensor_binary(OP_ADD, a, a, &e);
    CHECK(b && tensor_get_flat(b, n - 1) == 2);
    tensor_decref(a);
    tensor_decref(b);
}

int main(void)
{
    test_dtypes();
    test_views();
    test_broadcast_promotion();
    test_elementwise_paths();
    test_reductions();
    test_matmul();
    test_join_gather();
    test_printing();
    test_rng();
    test_files();
    test_interrupt();
    return check_finish("test_tensor");
}
