/* test_nn.c — unit tests of engine/train/nn.c: the gradient of every layer and loss against
 * central finite differences in f64 (the approach of test_autograd.c: L = sum(f(p) * R)
 * for a fixed random R; h = 1e-6, relative tolerance 1e-6), values against values
 * computed by hand here, conv2d against a direct nested-loop reference, cross_entropy
 * stable for logits of +-1000 and its fused path against the composed one, batch_norm's
 * running statistics, the initialisers'
 * ranges, and no autograd node left alive. Exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"
#include "engine/train/nn.h"
#include "tests/unit/check.h"
#define GRADCHECK_SEED 4242
#include "tests/unit/gradcheck.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers" /* the case table below */

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol) * fmax(1.0, fabs(b)))

static tensor *vec(const double *v, tensor_dtype dt, int nd, const int64_t *shape)
{
    return must(tensor_from_doubles(v, dt, nd, shape, &err));
}

typedef struct gcase gcase;
typedef tensor *(*fwd_fn)(tensor **p, const gcase *c);
struct gcase {
    const char *name;
    fwd_fn f;
    int np;              /* parameters (at most 3) */
    int nd[3];
    int64_t shape[3][4];
    int a, b;            /* per-case integers: dim, stride, padding, k */
};

static tensor *labels4(void)
{
    double l[4] = {2, 0, 4, 2};
    int64_t n = 4;
    return vec(l, DT_I64, 1, &n);
}

static tensor *f_log_softmax(tensor **p, const gcase *c) { return nn_log_softmax(p[0], c->a, &err); }
static tensor *f_softmax(tensor **p, const gcase *c) { return nn_softmax(p[0], c->a, &err); }
static tensor *f_cross_entropy(tensor **p, const gcase *c)
{
    tensor *l = labels4();
    tensor *r = nn_cross_entropy(p[0], l, &err);
    tensor_decref(l);
    return r;
}
static tensor *f_mse(tensor **p, const gcase *c) { return nn_mse(p[0], p[1], &err); }
static tensor *f_linear(tensor **p, const gcase *c) { return nn_linear(p[0], p[1], c->np > 2 ? p[2] : NULL, &err); }
static tensor *f_dropout(tensor **p, const gcase *c)
{
    tensor_rng rng = {7, 0}; /* the same mask at every call */
    return nn_dropout(p[0], 0.4, 1, &rng, &err);
}
static tensor *f_layer_norm(tensor **p, const gcase *c) { return nn_layer_norm(p[0], p[1], p[2], 1e-5, &err); }
static tensor *f_batch_norm(tensor **p, const gcase *c)
{
    return nn_batch_norm(p[0], p[1], p[2], NULL, NULL, 1, 0.1, 1e-5, &err);
}
static tensor *f_batch_norm_eval(tensor **p, const gcase *c)
{
    double m[3] = {0.5, -0.2, 0.1}, v[3] = {1.5, 0.7, 2.0};
    int64_t n = 3;
    tensor *rm = vec(m, DT_F64, 1, &n), *rv = vec(v, DT_F64, 1, &n);
    tensor *r = nn_batch_norm(p[0], p[1], p[2], rm, rv, 0, 0.1, 1e-5, &err);
    tensor_decref(rm);
    tensor_decref(rv);
    return r;
}
static tensor *f_conv2d(tensor **p, const gcase *c) { return nn_conv2d(p[0], p[1], c->np > 2 ? p[2] : NULL, c->a, c->b, &err); }
static tensor *f_max_pool(tensor **p, const gcase *c) { return nn_max_pool2d(p[0], c->a, c->b, &err); }
static tensor *f_avg_pool(tensor **p, const gcase *c) { return nn_avg_pool2d(p[0], c->a, c->b, &err); }
static tensor *f_embedding(tensor **p, const gcase *c)
{
    double iv[6] = {1, 3, 1, 0, 4, 4};
    int64_t s[2] = {2, 3};
    tensor *idx = vec(iv, DT_I32, 2, s);
    tensor *r = nn_embedding(idx, p[0], &err);
    tensor_decref(idx);
    return r;
}

static tensor *run_case(tensor **p, const void *ctx)
{
    const gcase *c = ctx;
    return c->f(p, c);
}

static void check_case(const gcase *c)
{
    gradcheck(c->name, run_case, c, c->np, c->nd, c->shape, 0, 0, 0);
}

static const gcase cases[] = {
    {"log_softmax dim 1", f_log_softmax, 1, {2}, {{3, 5}}, 1},
    {"log_softmax dim -1 (3-d)", f_log_softmax, 1, {3}, {{2, 3, 4}}, -1},
    {"softmax dim 0", f_softmax, 1, {2}, {{4, 3}}, 0},
    {"cross_entropy", f_cross_entropy, 1, {2}, {{4, 5}}},
    {"mse", f_mse, 2, {2, 2}, {{3, 4}, {3, 4}}},
    {"mse broadcast", f_mse, 2, {2, 1}, {{3, 4}, {4}}},
    {"linear", f_linear, 3, {2, 2, 1}, {{5, 4}, {4, 3}, {3}}},
    {"linear no bias, 3-d x", f_linear, 2, {3, 2}, {{2, 5, 4}, {4, 3}}},
    {"dropout (training)", f_dropout, 1, {2}, {{4, 6}}},
    {"layer_norm", f_layer_norm, 3, {2, 1, 1}, {{3, 5}, {5}, {5}}},
    {"batch_norm [N, C]", f_batch_norm, 3, {2, 1, 1}, {{6, 3}, {3}, {3}}},
    {"batch_norm [N, C, H, W]", f_batch_norm, 3, {4, 1, 1}, {{3, 2, 3, 3}, {2}, {2}}},
    {"batch_norm eval", f_batch_norm_eval, 3, {2, 1, 1}, {{4, 3}, {3}, {3}}},
    {"conv2d", f_conv2d, 3, {4, 4, 1}, {{2, 2, 5, 5}, {3, 2, 3, 3}, {3}}, 1, 0},
    {"conv2d stride 2 padding 1", f_conv2d, 3, {4, 4, 1}, {{2, 2, 5, 5}, {3, 2, 3, 3}, {3}}, 2, 1},
    {"conv2d no bias 1x2", f_conv2d, 2, {4, 4}, {{1, 3, 4, 4}, {2, 3, 1, 2}}, 1, 0},
    {"conv2d 2x3 stride 3 padding 2", f_conv2d, 3, {4, 4, 1}, {{2, 2, 6, 7}, {2, 2, 2, 3}, {2}}, 3, 2},
    {"conv2d stride 2 edges dropped", f_conv2d, 3, {4, 4, 1}, {{1, 2, 6, 6}, {3, 2, 3, 3}, {3}}, 2, 0},
    {"max_pool2d k 2", f_max_pool, 1, {4}, {{2, 2, 4, 4}}, 2, 0},
    {"max_pool2d k 3 stride 1", f_max_pool, 1, {3}, {{2, 5, 5}}, 3, 1},
    {"avg_pool2d k 3 stride 2", f_avg_pool, 1, {4}, {{1, 2, 5, 5}}, 3, 2},
    {"max_pool2d k 2 odd size", f_max_pool, 1, {4}, {{2, 3, 5, 5}}, 2, 0},
    {"embedding", f_embedding, 1, {2}, {{5, 3}}},
};

/* ---- values ---- */

static void test_values(void)
{
    /* cross_entropy of [[1, 2, 3], [1, 1, 1]] with labels [2, 0], by hand */
    double lv[6] = {1, 2, 3, 1, 1, 1}, yv[2] = {2, 0}, out;
    int64_t ls[2] = {2, 3}, n2 = 2;
    tensor *logits = vec(lv, DT_F64, 2, ls), *lab = vec(yv, DT_U8, 1, &n2);
    tensor *ce = must(nn_cross_entropy(logits, lab, &err));
    double e1 = -log(exp(3.0) / (exp(1.0) + exp(2.0) + exp(3.0))), e2 = log(3.0);
    CHECK(ce->ndim == 0 && tensor_item(ce, &out, &err) == 0 && NEAR(out, (e1 + e2) / 2, 1e-12));
    tensor *acc = must(nn_accuracy(logits, lab, &err));
    CHECK(acc->dtype == DT_F32 && tensor_item(acc, &out, &err) == 0 && NEAR(out, 1.0, 1e-7));
    tensor *sm = must(nn_softmax(logits, -1, &err));
    CHECK(NEAR(tensor_get_flat(sm, 0), exp(1.0) / (exp(1.0) + exp(2.0) + exp(3.0)), 1e-12));
    CHECK(NEAR(tensor_get_flat(sm, 4), 1.0 / 3, 1e-12));
    tensor_decref(ce), tensor_decref(acc), tensor_decref(sm), tensor_decref(logits), tensor_decref(lab);

    /* stable for logits of +-1000: loss (0 + 2000) / 2, finite gradient */
    double bv[6] = {1000, -1000, 0, -1000, 1000, 0}, bl[2] = {0, 0};
    tensor *big = must(ag_param(vec(bv, DT_F32, 2, ls), &err));
    tensor_decref(big);
    tensor *bigl = vec(bl, DT_I32, 1, &n2);
    ce = must(nn_cross_entropy(big, bigl, &err));
    CHECK(tensor_item(ce, &out, &err) == 0 && NEAR(out, 1000.0, 1e-6));
    CHECK(ag_backward(ce, &err) == 0);
    CHECK(big->grad && NEAR(tensor_get_flat(big->grad, 0), 0.0, 1e-6) && NEAR(tensor_get_flat(big->grad, 3), -0.5, 1e-6) &&
          NEAR(tensor_get_flat(big->grad, 4), 0.5, 1e-6) && isfinite(tensor_get_flat(big->grad, 5)));
    tensor_decref(ce), tensor_decref(big), tensor_decref(bigl);

    /* bad labels */
    double badv[2] = {0, 3};
    logits = vec(lv, DT_F64, 2, ls);
    lab = vec(badv, DT_I64, 1, &n2);
    CHECK(nn_cross_entropy(logits, lab, &err) == NULL && err.kind == ERR_INDEX);
    tensor_decref(logits), tensor_decref(lab);

    /* mse by hand */
    double av[3] = {1, 2, 3}, cv[3] = {0, 2, 5};
    int64_t n3 = 3;
    tensor *a = vec(av, DT_F32, 1, &n3), *b = vec(cv, DT_F32, 1, &n3);
    tensor *m = must(nn_mse(a, b, &err));
    CHECK(tensor_item(m, &out, &err) == 0 && NEAR(out, 5.0 / 3, 1e-6));
    tensor_decref(m);

    /* dropout: identity in evaluation, inverted scaling in training */
    tensor_rng rng = {1, 0};
    int64_t big_n = 100000;
    tensor *ones = must(tensor_full(DT_F32, 1, &big_n, 1, &err));
    tensor *d = must(nn_dropout(a, 0.5, 0, &rng, &err));
    CHECK(d == a);
    tensor_decref(d);
    d = must(nn_dropout(ones, 0.25, 1, &rng, &err));
    int zeros = 0, others = 0;
    for (int64_t i = 0; i < big_n; i++) {
        double v = tensor_get_flat(d, i);
        zeros += v == 0;
        others += v != 0 && !NEAR(v, 1 / 0.75, 1e-6);
    }
    CHECK(others == 0 && zeros > 24000 && zeros < 26000);
    tensor_decref(d), tensor_decref(ones), tensor_decref(a), tensor_decref(b);

    /* layer_norm of [1, 2, 3]: (x - 2) / sqrt(2/3 + eps) */
    a = vec(av, DT_F64, 1, &n3);
    tensor *ln = must(nn_layer_norm(a, NULL, NULL, 1e-5, &err));
    CHECK(NEAR(tensor_get_flat(ln, 2), 1 / sqrt(2.0 / 3 + 1e-5), 1e-12));
    tensor_decref(ln), tensor_decref(a);
}

static void test_batch_norm_running(void)
{
    /* x [4, 1]: batch mean 2.5, biased var 1.25, unbiased 5/3 */
    double xv[4] = {1, 2, 3, 4}, out;
    int64_t xs[2] = {4, 1}, one = 1;
    tensor *x = vec(xv, DT_F32, 2, xs);
    tensor *rm = must(tensor_full(DT_F32, 1, &one, 0, &err)), *rv = must(tensor_full(DT_F32, 1, &one, 1, &err));
    tensor *y = must(nn_batch_norm(x, NULL, NULL, rm, rv, 1, 0.1, 1e-5, &err));
    CHECK(NEAR(tensor_get_flat(rm, 0), 0.25, 1e-6));
    CHECK(NEAR(tensor_get_flat(rv, 0), 0.9 + 0.1 * 5.0 / 3, 1e-6));
    CHECK(NEAR(tensor_get_flat(y, 0), -1.5 / sqrt(1.25 + 1e-5), 1e-5));
    tensor_decref(y);
    y = must(nn_batch_norm(x, NULL, NULL, rm, rv, 0, 0.1, 1e-5, &err));
    out = tensor_get_flat(y, 3);
    CHECK(NEAR(out, (4 - 0.25) / sqrt(0.9 + 0.1 * 5.0 / 3 + 1e-5), 1e-5));
    tensor_decref(y), tensor_decref(x), tensor_decref(rm), tensor_decref(rv);
}

/* conv2d against the direct definition */
static void test_conv_reference(void)
{
    int64_t xs[4] = {2, 3, 7, 6}, ws[4] = {4, 3, 3, 2}, bs = 4;
    tensor *x = random_f64(4, xs, 0), *w = random_f64(4, ws, 0), *b = random_f64(1, &bs, 0);
    int configs[3][2] = {{1, 0}, {2, 1}, {3, 2}};
    for (int ci = 0; ci < 3; ci++) {
        int st = configs[ci][0], pad = configs[ci][1];
        tensor *y = must(nn_conv2d(x, w, b, st, pad, &err));
        int64_t Ho = (7 + 2 * pad - 3) / st + 1, Wo = (6 + 2 * pad - 2) / st + 1;
        CHECK(y->ndim == 4 && y->shape[0] == 2 && y->shape[1] == 4 && y->shape[2] == Ho && y->shape[3] == Wo);
        double worst = 0;
        for (int64_t n = 0; n < 2; n++)
            for (int64_t o = 0; o < 4; o++)
                for (int64_t i = 0; i < Ho; i++)
                    for (int64_t j = 0; j < Wo; j++) {
                        double acc = tensor_get_flat(b, o);
                        for (int64_t c = 0; c < 3; c++)
                            for (int64_t ki = 0; ki < 3; ki++)
                                for (int64_t kj = 0; kj < 2; kj++) {
                                    int64_t r = i * st + ki - pad, q = j * st + kj - pad;
                                    if (r < 0 || r >= 7 || q < 0 || q >= 6)
                                        continue;
                                    acc += tensor_get_flat(x, ((n * 3 + c) * 7 + r) * 6 + q) *
                                           tensor_get_flat(w, ((o * 3 + c) * 3 + ki) * 2 + kj);
                                }
                        double got = tensor_get_flat(y, ((n * 4 + o) * Ho + i) * Wo + j);
                        worst = fmax(worst, fabs(got - acc));
                    }
        CHECK(worst < 1e-12);
        printf("  conv2d stride %d padding %d vs loops: max abs error %.2e\n", st, pad, worst);
        tensor_decref(y);
    }
    /* pooling by hand: [[1, 2], [3, 4]] in a 2x2 window */
    double pv[4] = {1, 2, 3, 4}, out;
    int64_t ps[4] = {1, 1, 2, 2};
    tensor *p = vec(pv, DT_F32, 4, ps);
    tensor *mp = must(nn_max_pool2d(p, 2, 0, &err)), *ap = must(nn_avg_pool2d(p, 2, 0, &err));
    CHECK(tensor_numel(mp) == 1 && tensor_item(mp, &out, &err) == 0 && out == 4);
    CHECK(tensor_item(ap, &out, &err) == 0 && NEAR(out, 2.5, 1e-7));
    tensor_decref(mp), tensor_decref(ap), tensor_decref(p);
    tensor_decref(x), tensor_decref(w), tensor_decref(b);
}

/* the backend's im2col/col2im path (the CPU's) against the path built from views (the
 * same CPU backend with the two entries removed): conv2d and the pools, values and
 * gradients of every input */
static void test_im2col_paths(void)
{
    eng_backend plain = cpu_backend;
    plain.im2col = NULL;
    plain.col2im = NULL;
    int64_t xs[4] = {3, 2, 9, 8}, ws[4] = {4, 2, 3, 3}, bs = 4;
    int configs[3][2] = {{1, 1}, {2, 0}, {2, 2}};
    for (int ci = 0; ci < 4; ci++) {
        double worst = 0;
        tensor *xg[2] = {0}, *wg[2] = {0}, *bg[2] = {0}, *y[2] = {0}, *R = NULL;
        tensor *x0 = random_f64(4, xs, 0), *w0 = random_f64(4, ws, 0), *b0 = random_f64(1, &bs, 0);
        for (int path = 0; path < 2; path++) { /* the same inputs both ways */
            const eng_backend *be = path ? &plain : &cpu_backend;
            tensor *x = must(tensor_to(x0, be, &err)), *w = must(tensor_to(w0, be, &err)), *b = must(tensor_to(b0, be, &err));
            CHECK(x->storage->backend == be);
            tensor *px = must(ag_param(x, &err)), *pw = must(ag_param(w, &err)), *pb = must(ag_param(b, &err));
            tensor *out = ci < 3 ? must(nn_conv2d(px, pw, pb, configs[ci][0], configs[ci][1], &err))
                                 : must(nn_max_pool2d(px, 3, 2, &err));
            if (!R)
                R = random_f64(out->ndim, out->shape, 0);
            tensor *Rb = must(tensor_to(R, be, &err));
            tensor *pr = must(tensor_binary(OP_MUL, out, Rb, &err));
            tensor *loss = must(tensor_reduce(OP_SUM, pr, TENSOR_ALLDIMS, 0, &err));
            CHECK(ag_backward(loss, &err) == 0);
            y[path] = must(tensor_to(out, &cpu_backend, &err));
            xg[path] = must(tensor_to(px->grad, &cpu_backend, &err));
            if (ci < 3) {
                wg[path] = must(tensor_to(pw->grad, &cpu_backend, &err));
                bg[path] = must(tensor_to(pb->grad, &cpu_backend, &err));
            }
            tensor_decref(loss), tensor_decref(pr), tensor_decref(Rb), tensor_decref(out);
            tensor_decref(px), tensor_decref(pw), tensor_decref(pb), tensor_decref(x), tensor_decref(w), tensor_decref(b);
        }
        tensor_decref(x0), tensor_decref(w0), tensor_decref(b0), tensor_decref(R);
        tensor *pairs[4][2] = {{y[0], y[1]}, {xg[0], xg[1]}, {wg[0], wg[1]}, {bg[0], bg[1]}};
        for (int k = 0; k < 4; k++) {
            if (!pairs[k][0])
                continue;
            CHECK(tensor_numel(pairs[k][0]) == tensor_numel(pairs[k][1]));
            for (int64_t i = 0; i < tensor_numel(pairs[k][0]); i++)
                worst = fmax(worst, fabs(tensor_get_flat(pairs[k][0], i) - tensor_get_flat(pairs[k][1], i)));
            tensor_decref(pairs[k][0]), tensor_decref(pairs[k][1]);
        }
        CHECK(worst < 1e-12);
        printf("  %s: im2col path vs views path, values and gradients: max abs difference %.2e\n",
               ci < 3 ? "conv2d" : "max_pool2d 3 stride 2", worst);
    }
}

/* the fused cross_entropy (the CPU backend's entry) against the composed one (a copy of
 * the backend without it): loss and gradient, f32 and f64, each label dtype, odd
 * shapes, C = 1, N = 1, logits of 1e4; bad labels give the same error both ways */
static void test_xent_paths(void)
{
    eng_backend plain = cpu_backend;
    plain.cross_entropy = NULL;
    plain.cross_entropy_backward = NULL;
    const int64_t shapes[6][2] = {{4, 5}, {1, 7}, {9, 1}, {13, 33}, {3, 70}, {1, 1}};
    const tensor_dtype ldts[3] = {DT_I64, DT_I32, DT_U8};
    double worst[2] = {0, 0};
    err.kind = ERR_NONE;
    for (int si = 0; si < 6; si++)
        for (int f = 0; f < 2; f++)
            for (int big = 0; big < 2; big++) {
                tensor_dtype dt = f ? DT_F64 : DT_F32, ldt = ldts[(si + f) % 3];
                int64_t N = shapes[si][0], C = shapes[si][1];
                tensor *x0 = random_f64(2, shapes[si], 0);
                if (big) { /* logits of 1e4 and -1e4 */
                    tensor *t = must(tensor_binary_scalar(OP_MUL, x0, 5e3, 1, 0, &err));
                    tensor_decref(x0);
                    x0 = t;
                }
                double *lv = malloc(sizeof *lv * (size_t)N);
                for (int64_t i = 0; i < N; i++)
                    lv[i] = (double)((i * 7 + si) % C);
                tensor *l0 = vec(lv, ldt, 1, &N);
                free(lv);
                double loss[2] = {0, 0};
                tensor *g[2] = {0};
                for (int path = 0; path < 2; path++) {
                    const eng_backend *be = path ? &plain : &cpu_backend;
                    tensor *xc = must(tensor_cast(x0, dt, &err)), *xb = must(tensor_to(xc, be, &err));
                    tensor *lb = must(tensor_to(l0, be, &err));
                    tensor *px = must(ag_param(xb, &err));
                    tensor *ce = must(nn_cross_entropy(px, lb, &err));
                    CHECK(ce->ndim == 0 && ce->dtype == dt && tensor_item(ce, &loss[path], &err) == 0);
                    CHECK(ag_backward(ce, &err) == 0);
                    g[path] = must(tensor_to(px->grad, &cpu_backend, &err));
                    tensor_decref(ce), tensor_decref(px), tensor_decref(lb), tensor_decref(xb), tensor_decref(xc);
                }
                double tol = f ? 1e-12 : 2e-6;
                CHECK(isfinite(loss[0]) && NEAR(loss[0], loss[1], tol));
                worst[f] = fmax(worst[f], fabs(loss[0] - loss[1]) / fmax(1, fabs(loss[1])));
                for (int64_t i = 0; i < N * C; i++) {
                    double a = tensor_get_flat(g[0], i), b = tensor_get_flat(g[1], i);
                    CHECK(isfinite(a) && fabs(a - b) <= tol);
                    worst[f] = fmax(worst[f], fabs(a - b));
                }
                tensor_decref(g[0]), tensor_decref(g[1]), tensor_decref(x0), tensor_decref(l0);
            }
    printf("  cross_entropy fused vs composed, losses and gradients: max difference %.2e (f32), %.2e (f64)\n",
           worst[0], worst[1]);

    /* bad labels: the same IndexError both ways, and from the ranged form (fit's) */
    int64_t xs[2] = {3, 10}, n3 = 3;
    double bad[2][3] = {{1, 12, 3}, {-2, 4, 12}};
    const char *want[2] = {"cross_entropy: label 12 out of range for 10 classes",
                           "cross_entropy: label -2 out of range for 10 classes"};
    tensor *x = random_f64(2, xs, 0);
    for (int k = 0; k < 2; k++)
        for (int path = 0; path < 2; path++) {
            const eng_backend *be = path ? &plain : &cpu_backend;
            tensor *xb = must(tensor_to(x, be, &err)), *l = vec(bad[k], DT_I64, 1, &n3), *lb = must(tensor_to(l, be, &err));
            err.kind = ERR_NONE;
            CHECK(nn_cross_entropy(xb, lb, &err) == NULL && err.kind == ERR_INDEX && !strcmp(err.msg, want[k]));
            err.kind = ERR_NONE;
            CHECK(nn_cross_entropy_ranged(xb, lb, k ? -2 : 1, 12, &err) == NULL && err.kind == ERR_INDEX &&
                  !strcmp(err.msg, want[k]));
            err.kind = ERR_NONE;
            tensor_decref(xb), tensor_decref(l), tensor_decref(lb);
        }
    tensor_decref(x);
}

static void test_init(void)
{
    tensor_rng rng = {3, 0};
    int64_t s[2] = {200, 300};
    tensor *k = must(nn_kaiming_normal(&rng, 200, 2, s, &err));
    tensor *sd = must(tensor_reduce(OP_STD, k, TENSOR_ALLDIMS, 0, &err));
    double v;
    CHECK(k->dtype == DT_F32 && tensor_item(sd, &v, &err) == 0 && fabs(v - sqrt(2.0 / 200)) < 0.02 * sqrt(2.0 / 200));
    tensor *x = must(nn_xavier_uniform(&rng, 200, 300, &err));
    tensor *mx = must(tensor_reduce(OP_MAX, x, TENSOR_ALLDIMS, 0, &err));
    tensor *mn = must(tensor_reduce(OP_MIN, x, TENSOR_ALLDIMS, 0, &err));
    double a = sqrt(6.0 / 500), hi, lo;
    tensor_item(mx, &hi, &err);
    tensor_item(mn, &lo, &err);
    CHECK(hi <= a && hi > 0.99 * a && lo >= -a && lo < -0.99 * a);
    tensor *u = must(nn_kaiming_uniform(&rng, 50, 2, s, &err));
    tensor *umx = must(tensor_reduce(OP_MAX, u, TENSOR_ALLDIMS, 0, &err));
    tensor_item(umx, &hi, &err);
    CHECK(hi <= sqrt(6.0 / 50) && hi > 0.99 * sqrt(6.0 / 50));
    CHECK(nn_kaiming_normal(&rng, 0, 2, s, &err) == NULL);
    tensor_decref(k), tensor_decref(sd), tensor_decref(x), tensor_decref(mx), tensor_decref(mn);
    tensor_decref(u), tensor_decref(umx);
}

int main(void)
{
    printf("gradient checks (f64, central differences, h = 1e-6, rel tol 1e-6):\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
    test_values();
    test_batch_norm_running();
    test_conv_reference();
    test_im2col_paths();
    test_xent_paths();
    test_init();
    CHECK(ag_live_nodes() == 0);
    if (failures) {
        fprintf(stderr, "test_nn: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_nn: all passed (%zu gradient checks)\n", sizeof cases / sizeof cases[0]);
    return 0;
}
