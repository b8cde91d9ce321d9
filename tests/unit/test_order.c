/* test_order.c — unit tests of engine/tensor/tensor_order.c: the gradients of cumsum,
 * cumprod (with exact zeros in a row, where dividing by x would fail), sort, topk,
 * nan_to_num and shuffle against central finite differences in f64 (tests/unit/gradcheck.h),
 * and the properties finite differences cannot see: sort's stability and NaN order,
 * randperm being a permutation and reproducible from the seed, multinomial never drawing
 * a zero weight. Exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tensor/backend.h"
#include "engine/tensor/tensor_order.h"
#include "engine/train/autograd.h"
#include "tests/unit/check.h"
#define GRADCHECK_SEED 4242
#include "tests/unit/gradcheck.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers" /* the case table below */

typedef struct ocase {
    const char *name;
    int kind; /* which function of run below */
    int nd;
    int64_t shape[4];
    int dim, flag; /* dim; descending / largest */
    int64_t k;
} ocase;

/* x with exact zeros at flat positions 1 and 4 at the point where the check starts:
 * x - shift, shift holding p's starting values there (two zeros in one row) */
static tensor *with_zeros(tensor *p)
{
    static double z[2];
    static int have;
    if (!have) {
        z[0] = tensor_get_flat(p, 1);
        z[1] = tensor_get_flat(p, 4);
        have = 1;
    }
    int64_t n = tensor_numel(p);
    double *v = calloc((size_t)n, sizeof *v);
    v[1] = z[0];
    v[4] = z[1];
    tensor *s = must(tensor_from_doubles(v, DT_F64, p->ndim, p->shape, &err));
    free(v);
    tensor *r = tensor_binary(OP_SUB, p, s, &err);
    tensor_decref(s);
    return r;
}

static tensor *run(tensor **p, const void *ctx)
{
    const ocase *c = ctx;
    switch (c->kind) {
    case 0: return tensor_scan(ENG_SCAN_SUM, p[0], c->dim, &err);
    case 1: return tensor_scan(ENG_SCAN_PROD, p[0], c->dim, &err);
    case 2: {
        tensor *x = must(with_zeros(p[0]));
        tensor *r = tensor_scan(ENG_SCAN_PROD, x, c->dim, &err);
        tensor_decref(x);
        return r;
    }
    case 3: return tensor_sort(p[0], c->dim, c->flag, &err);
    case 4: return tensor_topk(p[0], c->k, c->dim, c->flag, 0, &err);
    case 5: return tensor_nan_to_num(p[0], 0, 1, -1, &err);
    default: {
        tensor_rng g = {7, 0}; /* the same permutation at every call */
        return tensor_shuffle(&g, p[0], &err);
    }
    }
}

static const ocase cases[] = {
    {"cumsum dim 0", 0, 2, {3, 4}, 0},
    {"cumsum dim -1", 0, 3, {2, 3, 4}, -1},
    {"cumprod dim 1", 1, 2, {3, 5}, 1},
    {"cumprod dim 0, 3-d", 1, 3, {4, 2, 3}, 0},
    {"cumprod, two zeros in a row", 2, 2, {2, 6}, 1},
    {"sort dim 1", 3, 2, {3, 5}, 1, 0},
    {"sort dim 0 descending", 3, 3, {4, 2, 3}, 0, 1},
    {"topk k=2 dim -1", 4, 2, {3, 5}, -1, 1, 2},
    {"topk smallest k=3 dim 0", 4, 2, {4, 3}, 0, 0, 3},
    {"nan_to_num", 5, 2, {3, 4}, 0},
    {"shuffle", 6, 2, {5, 3}, 0},
};

static void test_properties(void)
{
    /* stable ties and NaN placement: 2 1 NaN 1 2 -> ascending 1 3 0 4 2, descending 2 0 4 1 3 */
    double v[5] = {2, 1, NAN, 1, 2};
    int64_t n = 5;
    tensor *x = must(tensor_from_doubles(v, DT_F32, 1, &n, &err));
    tensor *a = must(tensor_argsort(x, 0, 0, &err)), *d = must(tensor_argsort(x, 0, 1, &err));
    const int64_t wa[5] = {1, 3, 0, 4, 2}, wd[5] = {2, 0, 4, 1, 3};
    for (int i = 0; i < 5; i++) {
        CHECK(tensor_get_flat(a, i) == wa[i]);
        CHECK(tensor_get_flat(d, i) == wd[i]);
    }
    tensor_decref(a);
    tensor_decref(d);
    tensor_decref(x);
    /* randperm: a permutation, the same for the same generator state, advancing it */
    tensor_rng g = {11, 0}, h = {11, 0};
    tensor *p = must(tensor_randperm(&g, 1000, &err)), *q = must(tensor_randperm(&h, 1000, &err));
    char seen[1000] = {0};
    int same = 1;
    for (int i = 0; i < 1000; i++) {
        int64_t k = (int64_t)tensor_get_flat(p, i);
        CHECK(k >= 0 && k < 1000 && !seen[k]);
        if (k >= 0 && k < 1000)
            seen[k] = 1;
        same &= tensor_get_flat(q, i) == k;
    }
    CHECK(same);
    CHECK(g.offset == 1000);
    tensor_decref(p);
    tensor_decref(q);
    /* multinomial never draws a zero weight, with or without replacement */
    double w[6] = {0, 1, 0, 3, 0, 0.5};
    n = 6;
    tensor *pw = must(tensor_from_doubles(w, DT_F32, 1, &n, &err));
    tensor *m1 = must(tensor_multinomial(&g, pw, 5000, 1, &err)), *m2 = must(tensor_multinomial(&g, pw, 3, 0, &err));
    for (int i = 0; i < 5000; i++)
        CHECK(w[(int)tensor_get_flat(m1, i)] > 0);
    double s = 0;
    for (int i = 0; i < 3; i++)
        s += tensor_get_flat(m2, i);
    CHECK(s == 1 + 3 + 5);
    CHECK(!tensor_multinomial(&g, pw, 4, 0, &err) && err.kind == ERR_VALUE);
    tensor_decref(m1);
    tensor_decref(m2);
    tensor_decref(pw);
}

int main(void)
{
    printf("gradient checks of tensor_order.c (f64, central differences):\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int nd[1] = {cases[i].nd};
        int64_t shape[1][4];
        memcpy(shape[0], cases[i].shape, sizeof shape[0]);
        gradcheck(cases[i].name, run, &cases[i], 1, nd, (const int64_t(*)[4])shape, 0, 1e-6, 1e-6);
    }
    test_properties();
    if (failures) {
        fprintf(stderr, "test_order: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_order: all passed\n");
    return 0;
}
