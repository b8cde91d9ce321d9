/* gradcheck.h — gradients against central finite differences in f64, shared by
 * test_autograd.c and test_nn.c. Include after check.h, with GRADCHECK_SEED defined
 * (the seed of the small LCG that draws parameters, so a test does not depend on the
 * session RNG).
 *
 * A check builds L = sum(f(params) * R) for a fixed random R, so every output element
 * weighs differently, and compares dL/dp from backward with (L(p+h) - L(p-h)) / 2h,
 * passing when |analytic - numeric| <= tol * max(1, |analytic|, |numeric|) (a NaN on
 * either side fails). It also
 * checks that no autograd node is left alive afterwards. */
#ifndef KILN_TEST_GRADCHECK_H
#define KILN_TEST_GRADCHECK_H

#include <stdint.h>
#include <stdlib.h>

#include "engine/train/autograd.h"

static eng_error err; /* the error of the last tensor call */

static tensor *must(tensor *t)
{
    if (!t) {
        fprintf(stderr, "unexpected failure: %s\n", err.msg);
        exit(1);
    }
    return t;
}

static uint64_t lcg = GRADCHECK_SEED;
static double urand(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

/* f64 values in [-2, 2), or in [0.5, 2) when positive */
static tensor *random_f64(int nd, const int64_t *shape, int positive)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v)
        return must(NULL);
    for (int64_t i = 0; i < n; i++)
        v[i] = positive ? 0.5 + 1.5 * urand() : 4.0 * urand() - 2.0;
    tensor *t = must(tensor_from_doubles(v, DT_F64, nd, shape, &err));
    free(v);
    return t;
}

/* the function under test: the parameters, and the test's own description of the case */
typedef tensor *(*gradcheck_fn)(tensor **p, const void *ctx);

/* L = sum(f(p) * R); R is made at the first call from the output's shape */
static double gradcheck_loss(gradcheck_fn f, const void *ctx, tensor **p, tensor **R, tensor **keep_loss)
{
    tensor *y = must(f(p, ctx));
    if (!*R)
        *R = random_f64(y->ndim, y->shape, 0);
    tensor *m = must(tensor_binary(OP_MUL, y, *R, &err));
    tensor *l = must(tensor_reduce(OP_SUM, m, TENSOR_ALLDIMS, 0, &err));
    tensor_decref(y);
    tensor_decref(m);
    double v = 0;
    tensor_item(l, &v, &err);
    if (keep_loss)
        *keep_loss = l;
    else
        tensor_decref(l);
    return v;
}

/* np parameters (at most 3) of shapes nd[i], shape[i]; tol and h 0 mean 1e-6 */
static void gradcheck(const char *name, gradcheck_fn f, const void *ctx, int np, const int *nd,
                      const int64_t (*shape)[4], int positive, double tol, double h)
{
    tensor *p[3] = {0}, *R = NULL, *loss = NULL;
    double worst = 0;
    tol = tol ? tol : 1e-6;
    h = h ? h : 1e-6;
    for (int i = 0; i < np; i++)
        p[i] = must(ag_param(random_f64(nd[i], shape[i], positive), &err)), tensor_decref(p[i]);
    ag_set_grad_mode(1);
    gradcheck_loss(f, ctx, p, &R, &loss);
    if (ag_backward(loss, &err) < 0) {
        fprintf(stderr, "gradcheck %s: backward failed: %s\n", name, err.msg);
        failures++;
        goto done;
    }
    tensor_decref(loss);
    loss = NULL;
    ag_set_grad_mode(0);
    for (int i = 0; i < np; i++) {
        double *x = tensor_data_ptr(p[i]);
        if (!p[i]->grad) {
            fprintf(stderr, "gradcheck %s: parameter %d got no gradient\n", name, i);
            failures++;
            continue;
        }
        CHECK(p[i]->grad->dtype == DT_F64 && p[i]->grad->ndim == p[i]->ndim);
        for (int64_t k = 0; k < tensor_numel(p[i]); k++) {
            double x0 = x[k];
            x[k] = x0 + h;
            double lp = gradcheck_loss(f, ctx, p, &R, NULL);
            x[k] = x0 - h;
            double lm = gradcheck_loss(f, ctx, p, &R, NULL);
            x[k] = x0;
            double num = (lp - lm) / (2 * h), ana = tensor_get_flat(p[i]->grad, k);
            double e = fabs(num - ana) / fmax(1.0, fmax(fabs(num), fabs(ana)));
            if (e > worst || e != e)
                worst = e;
            if (!(e <= tol)) { /* NaN fails too */
                fprintf(stderr, "gradcheck %s: parameter %d element %lld: backward %.10g, finite differences %.10g\n",
                        name, i, (long long)k, ana, num);
                failures++;
                break;
            }
        }
    }
    printf("  %-26s max rel error %.2e\n", name, worst);
done:
    ag_set_grad_mode(1);
    tensor_decref(loss);
    tensor_decref(R);
    for (int i = 0; i < np; i++)
        tensor_decref(p[i]);
    if (ag_live_nodes() != 0) {
        fprintf(stderr, "gradcheck %s: %lld nodes still alive\n", name, (long long)ag_live_nodes());
        failures++;
    }
}

#endif
