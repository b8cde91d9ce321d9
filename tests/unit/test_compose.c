/* test_compose.c — gradient checks of the composed shape and index ops
 * (engine/tensor/tensor_compose.c, tensor_einsum.c) and of index_add, the scatter-add
 * primitive autograd records as one node, against central finite differences in f64
 * (tests/unit/gradcheck.h); plus the exact values of a few cases with repeated indices
 * and the errors that name the op and the shapes; and that docs/tensors.md's section
 * "Shape, index and state ops" lists every built-in of engine/lang/builtins_shape.def and
 * builtins_state.def. Exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/autograd.h"
#include "tests/unit/check.h"
#define GRADCHECK_SEED 4242
#include "tests/unit/gradcheck.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers" /* the case table below */

static tensor *ints(const double *v, int nd, const int64_t *shape)
{
    return must(tensor_from_doubles(v, DT_I64, nd, shape, &err));
}

typedef struct ccase {
    const char *name;
    tensor *(*f)(tensor **p, const struct ccase *c);
    int np;
    int nd[3];
    int64_t shape[3][4];
    const char *spec; /* einsum */
    int k;            /* a dimension, a shift, a diagonal */
} ccase;

static tensor *f_einsum(tensor **p, const ccase *c) { return tensor_einsum(c->spec, p, c->np, &err); }
static tensor *f_repeat(tensor **p, const ccase *c)
{
    int64_t r[3] = {2, 1, 3};
    return tensor_repeat(p[0], 3, r, &err);
}
static tensor *f_tile(tensor **p, const ccase *c)
{
    int64_t r[1] = {2};
    return tensor_tile(p[0], 1, r, &err);
}
static tensor *f_interleave(tensor **p, const ccase *c) { return tensor_repeat_interleave(p[0], 3, c->k, &err); }
static tensor *f_flip(tensor **p, const ccase *c)
{
    int d[2] = {0, -1};
    return tensor_flip(p[0], d, 2, &err);
}
static tensor *f_roll(tensor **p, const ccase *c) { return tensor_roll(p[0], c->k, 1, &err); }
static tensor *f_roll_flat(tensor **p, const ccase *c) { return tensor_roll(p[0], c->k, TENSOR_ALLDIMS, &err); }
static tensor *f_tril(tensor **p, const ccase *c) { return tensor_tri(p[0], c->k, 0, &err); }
static tensor *f_triu(tensor **p, const ccase *c) { return tensor_tri(p[0], c->k, 1, &err); }
static tensor *f_diag(tensor **p, const ccase *c) { return tensor_diag(p[0], c->k, &err); }
static tensor *f_masked_fill(tensor **p, const ccase *c)
{
    tensor *m = must(tensor_binary_scalar(OP_GT, p[0], 0.0, 1, 0, &err));
    tensor *v = must(tensor_scalar(-3, DT_F64, &err));
    tensor *r = tensor_masked_fill(p[0], m, v, &err);
    tensor_decref(m);
    tensor_decref(v);
    return r;
}
static tensor *f_index_add(tensor **p, const ccase *c)
{
    double iv[4] = {2, 0, 2, -1}; /* repeated and negative */
    int64_t n = 4;
    tensor *idx = ints(iv, 1, &n);
    tensor *r = tensor_index_add(p[0], c->k, idx, p[1], &err);
    tensor_decref(idx);
    return r;
}
static tensor *f_scatter_add(tensor **p, const ccase *c)
{
    double iv[6] = {0, 2, 0, 1, 1, 3};
    int64_t s[2] = {2, 3};
    tensor *idx = ints(iv, 2, s);
    tensor *r = tensor_scatter_add(p[0], 1, idx, p[1], &err);
    tensor_decref(idx);
    return r;
}
static tensor *f_gather_twice(tensor **p, const ccase *c) /* gather's gradient is an index_add */
{
    double iv[5] = {1, 1, 0, 2, 1};
    int64_t n = 5;
    tensor *idx = ints(iv, 1, &n);
    tensor *r = tensor_gather(p[0], idx, &err);
    tensor_decref(idx);
    return r;
}

static const ccase cases[] = {
    {"einsum ij,jk->ik", f_einsum, 2, {2, 2}, {{3, 4}, {4, 5}}, "ij,jk->ik"},
    {"einsum bij,bjk->bik", f_einsum, 2, {3, 3}, {{2, 3, 4}, {2, 4, 2}}, "bij,bjk->bik"},
    {"einsum i,i->", f_einsum, 2, {1, 1}, {{5}, {5}}, "i,i->"},
    {"einsum ij->ji", f_einsum, 1, {2}, {{3, 4}}, "ij->ji"},
    {"einsum ij,j->i", f_einsum, 2, {2, 1}, {{3, 4}, {4}}, "ij,j->i"},
    {"einsum bi,bi->b", f_einsum, 2, {2, 2}, {{3, 4}, {3, 4}}, "bi,bi->b"},
    {"einsum ijk->ikj", f_einsum, 1, {3}, {{2, 3, 4}}, "ijk->ikj"},
    {"einsum ij->", f_einsum, 1, {2}, {{3, 4}}, "ij->"},
    {"einsum ij,jk,kl->il", f_einsum, 3, {2, 2, 2}, {{2, 3}, {3, 4}, {4, 2}}, "ij,jk,kl->il"},
    {"einsum i,j->ij", f_einsum, 2, {1, 1}, {{3}, {4}}, "i,j->ij"},
    {"einsum bij,bkj->bki", f_einsum, 2, {3, 3}, {{2, 3, 4}, {2, 5, 4}}, "bij,bkj->bki"},
    /* '...': broadcast batch dimensions (a size-1 one against 2, one missing), sums, moves */
    {"einsum ...ij,...jk->...ik", f_einsum, 2, {4, 3}, {{2, 1, 3, 4}, {3, 4, 2}}, "...ij,...jk->...ik"},
    {"einsum ...i->...", f_einsum, 1, {3}, {{2, 3, 4}}, "...i->..."},
    {"einsum i...->...i", f_einsum, 1, {3}, {{2, 3, 4}}, "i...->...i"},
    {"einsum ...i,...i,...i->...", f_einsum, 3, {2, 2, 1}, {{3, 4}, {1, 4}, {4}}, "...i,...i,...i->..."},
    {"repeat", f_repeat, 1, {2}, {{2, 3}}},
    {"tile", f_tile, 1, {2}, {{2, 3}}},
    {"repeat_interleave dim 1", f_interleave, 1, {2}, {{2, 3}}, NULL, 1},
    {"flip", f_flip, 1, {2}, {{3, 4}}},
    {"roll dim 1", f_roll, 1, {2}, {{3, 4}}, NULL, -3},
    {"roll flat", f_roll_flat, 1, {2}, {{3, 4}}, NULL, 5},
    {"tril", f_tril, 1, {3}, {{2, 3, 4}}, NULL, 0},
    {"triu k=1", f_triu, 1, {2}, {{4, 3}}, NULL, 1},
    {"diag of vector k=-1", f_diag, 1, {1}, {{3}}, NULL, -1},
    {"diag of matrix k=1", f_diag, 1, {2}, {{3, 4}}, NULL, 1},
    {"masked_fill", f_masked_fill, 1, {2}, {{3, 4}}},
    {"index_add dim 0", f_index_add, 2, {2, 2}, {{3, 2}, {4, 2}}, NULL, 0},
    {"index_add dim 1", f_index_add, 2, {2, 2}, {{2, 3}, {2, 4}}, NULL, 1},
    {"scatter_add dim 1", f_scatter_add, 2, {2, 2}, {{2, 4}, {2, 3}}},
    {"gather (index_add back)", f_gather_twice, 1, {2}, {{3, 2}}},
};

static tensor *run_case(tensor **p, const void *ctx)
{
    const ccase *c = ctx;
    return c->f(p, c);
}

static void expect_error(const char *what, tensor *t, const char *want)
{
    CHECK(t == NULL);
    if (t)
        tensor_decref(t);
    else if (!strstr(err.msg, want)) {
        fprintf(stderr, "%s: error '%s' lacks '%s'\n", what, err.msg, want);
        failures++;
    }
    memset(&err, 0, sizeof err); /* an error is filled once: clear it for the next */
}

static void test_values_and_errors(void)
{
    /* index_add with repeated indices adds up; ints too (the i64 kernel) */
    double iv[3] = {1, 1, 0}, sv[3] = {5, 7, 11};
    int64_t n = 3, xs[1] = {2};
    tensor *idx = ints(iv, 1, &n), *src = ints(sv, 1, &n), *x = must(tensor_full(DT_I64, 1, xs, 1, &err));
    tensor *r = must(tensor_index_add(x, 0, idx, src, &err));
    CHECK(r->dtype == DT_I64 && tensor_get_flat(r, 0) == 12 && tensor_get_flat(r, 1) == 13);
    CHECK(tensor_get_flat(x, 0) == 1); /* x untouched */
    tensor_decref(r);
    /* an index out of range names one (the extreme: the index check reads back the min and max) */
    double bad[3] = {0, 2, 5};
    tensor *bidx = ints(bad, 1, &n);
    expect_error("index_add range", tensor_index_add(x, 0, bidx, src, &err), "index_add: index 5 is out of range for dimension 0 of size 2");
    expect_error("one_hot range", tensor_one_hot(bidx, 4, &err), "one_hot: index 5 is out of range for 4 classes");
    tensor *sh = tensor_one_hot(bidx, -1, &err);
    CHECK(sh && sh->ndim == 2 && sh->shape[1] == 6);
    tensor_decref(sh);
    /* einsum's messages name the spec */
    tensor *ops[2] = {x, x};
    expect_error("einsum dots", tensor_einsum("..i->i", ops, 1, &err), "a '.' that is not part of '...'");
    expect_error("einsum dots twice", tensor_einsum("......->", ops, 1, &err), "operand 1 has '...' twice");
    expect_error("einsum trace", tensor_einsum("ii->", ops, 1, &err), "repeats 'i'");
    expect_error("einsum letters", tensor_einsum("ij->i", ops, 1, &err), "operand 1 has 2 letters for a 1-d tensor");
    expect_error("einsum count", tensor_einsum("i->i", ops, 2, &err), "names 1 operand but 2 were given");
    int64_t s34[2] = {3, 4}, s53[2] = {5, 3};
    tensor *a = must(tensor_full(DT_F32, 2, s34, 1, &err)), *b = must(tensor_full(DT_F32, 2, s53, 1, &err));
    tensor *ab[2] = {a, b};
    expect_error("einsum sizes", tensor_einsum("ij,jk->ik", ab, 2, &err), "'j' is 4 in operand 1 but 5 in operand 2");
    expect_error("einsum ... broadcast", tensor_einsum("...,...", ab, 2, &err),
                 "the '...' dimensions do not broadcast: operand 1 has shape [3, 4], operand 2 [5, 3]");
    expect_error("einsum ... output", tensor_einsum("...j->j", ab, 1, &err),
                 "'...' stands for 1 dimension of the operands but the output has no '...'");
    expect_error("einsum ... trace", tensor_einsum("...ii->...", ab, 1, &err), "repeats 'i'");
    expect_error("einsum ... letters", tensor_einsum("...ijk", ab, 1, &err),
                 "operand 1 has 3 letters and '...' for a 2-d tensor");
    tensor *m = must(tensor_binary_scalar(OP_GT, b, 0, 0, 0, &err)), *v = must(tensor_scalar(1, DT_F32, &err));
    expect_error("masked_fill shape", tensor_masked_fill(a, m, v, &err),
                 "masked_fill: mask of shape [5, 3] does not broadcast to the tensor's shape [3, 4]");
    tensor_decref(m);
    tensor_decref(v);
    tensor_decref(a);
    tensor_decref(b);
    tensor_decref(idx);
    tensor_decref(bidx);
    tensor_decref(src);
    tensor_decref(x);
}

/* each built-in of the two .def files appears in the docs' section as `name( or .name( */
static const char *const documented[] = {
#define BUILTIN(name, fn, mn, mx, ret, sig, doc) name,
#include "engine/lang/builtins_shape.def"
#include "engine/lang/builtins_state.def"
#undef BUILTIN
};

static void test_docs(void)
{
    FILE *f = fopen("docs/tensors.md", "r");
    CHECK(f != NULL);
    if (!f)
        return;
    static char text[1 << 16];
    char line[1024];
    size_t len = 0;
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## ", 3))
            in = !strcmp(line, "## Shape, index and state ops\n");
        if (in && len + strlen(line) < sizeof text) {
            memcpy(text + len, line, strlen(line) + 1);
            len += strlen(line);
        }
    }
    fclose(f);
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "`%s(", documented[i]);
        snprintf(b, sizeof b, ".%s(", documented[i]);
        if (!strstr(text, a) && !strstr(text, b)) {
            fprintf(stderr, "docs/tensors.md, 'Shape, index and state ops': '%s' is not listed\n", documented[i]);
            failures++;
        }
    }
    printf("docs/tensors.md lists the %zu shape, index and state built-ins\n",
           sizeof documented / sizeof documented[0]);
}

int main(void)
{
    ag_install();
    printf("gradient checks of the composed ops (f64, central differences):\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t(*sh)[4] = cases[i].shape;
        gradcheck(cases[i].name, run_case, &cases[i], cases[i].np, cases[i].nd, sh, 0, 0, 0);
    }
    test_values_and_errors();
    test_docs();
    if (failures) {
        fprintf(stderr, "test_compose: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_compose: all passed (%zu gradient checks)\n", sizeof cases / sizeof cases[0]);
    return 0;
}
