/* test_optim.c — unit tests of engine/train/optim.c and the schedules of engine/train/train.c:
 * AdamW and SGD (momentum, Nesterov, weight decay) steps against the update rules
 * written out in scalar C, no weight decay on 1-D parameters by default, snapshot and
 * restore, the one-cycle schedule's fixed points, and fastai's valley on known curves;
 * the backend's fused steps (adamw_step, sgd_step) against the op-by-op path (a copy of
 * the CPU backend without them), f32 and f64, bit for bit. Exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"
#include "engine/train/optim.h"
#include "engine/train/train.h"
#include "tests/unit/check.h"

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol) * (1 + fabs(b)))

static eng_error err;

static tensor *must(tensor *t)
{
    if (!t) {
        fprintf(stderr, "test_optim: unexpected failure: %s\n", err.msg);
        exit(1);
    }
    return t;
}

static tensor *vec(const double *v, int ndim, const int64_t *shape)
{
    return must(tensor_from_doubles(v, DT_F64, ndim, shape, &err));
}

/* a [2, 2] weight and a [2] bias, with gradients g*(step+1) set by the caller */
static void set_grads(tensor *w, tensor *b, const double *gw, const double *gb, double scale)
{
    double sw[4], sb[2];
    for (int i = 0; i < 4; i++)
        sw[i] = gw[i] * scale;
    for (int i = 0; i < 2; i++)
        sb[i] = gb[i] * scale;
    tensor_decref(w->grad);
    tensor_decref(b->grad);
    w->grad = vec(sw, w->ndim, w->shape);
    b->grad = vec(sb, b->ndim, b->shape);
}

static void test_adamw(void)
{
    const double w0[4] = {1, -2, 0.5, 3}, b0[2] = {0.1, -0.1}, gw[4] = {0.3, -1, 2, 0.01}, gb[2] = {-0.5, 4};
    int64_t s2[2] = {2, 2}, s1[1] = {2};
    tensor *w = must(ag_param(vec(w0, 2, s2), &err)), *b = must(ag_param(vec(b0, 1, s1), &err));
    tensor_decref(w); /* ag_param returned a new reference to the same tensor */
    tensor_decref(b);
    tensor *ps[2] = {w, b};
    opt_state *o = opt_adamw_new(ps, 2, &err);
    CHECK(o && o->beta1 == 0.9 && o->beta2 == 0.99 && o->eps == 1e-5 && o->wd == 0.01);
    double rw[4], rb[2], mw[4] = {0}, vw[4] = {0}, mb[2] = {0}, vb[2] = {0};
    for (int i = 0; i < 4; i++)
        rw[i] = w0[i];
    for (int i = 0; i < 2; i++)
        rb[i] = b0[i];
    const double lrs[3] = {0.1, 0.05, 0.2};
    for (int t = 1; t <= 3; t++) {
        double lr = lrs[t - 1], bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.99, t);
        set_grads(w, b, gw, gb, t);
        CHECK(opt_step(o, lr, &err) == 0);
        for (int i = 0; i < 4; i++) { /* 2-D: decayed */
            double g = gw[i] * t;
            rw[i] *= 1 - lr * 0.01;
            mw[i] = 0.9 * mw[i] + 0.1 * g;
            vw[i] = 0.99 * vw[i] + 0.01 * g * g;
            rw[i] -= lr / bc1 * mw[i] / (sqrt(vw[i] / bc2) + 1e-5);
        }
        for (int i = 0; i < 2; i++) { /* 1-D: not decayed */
            double g = gb[i] * t;
            mb[i] = 0.9 * mb[i] + 0.1 * g;
            vb[i] = 0.99 * vb[i] + 0.01 * g * g;
            rb[i] -= lr / bc1 * mb[i] / (sqrt(vb[i] / bc2) + 1e-5);
        }
    }
    for (int i = 0; i < 4; i++)
        CHECK(NEAR(tensor_get_flat(w, i), rw[i], 1e-12));
    for (int i = 0; i < 2; i++)
        CHECK(NEAR(tensor_get_flat(b, i), rb[i], 1e-12));

    /* snapshot, a step, restore: back to the snapshot exactly, gradients cleared */
    double w_before = tensor_get_flat(w, 0), b_before = tensor_get_flat(b, 1);
    opt_state *snap = opt_snapshot(o, &err);
    CHECK(snap != NULL);
    set_grads(w, b, gw, gb, 1);
    CHECK(opt_step(o, 1.0, &err) == 0);
    CHECK(fabs(tensor_get_flat(w, 0) - rw[0]) > 1e-3);
    CHECK(opt_restore(o, snap, &err) == 0);
    CHECK(tensor_get_flat(w, 0) == w_before && tensor_get_flat(b, 1) == b_before && o->steps == 3);
    CHECK(w->grad == NULL && b->grad == NULL);
    opt_free(snap);

    CHECK(opt_set(o, "beta2", 0.999, &err) == 0 && o->beta2 == 0.999);
    CHECK(opt_set(o, "nesterov", 1, &err) == -1 && err.kind == ERR_VALUE);
    err.kind = ERR_NONE;
    opt_free(o);
    tensor_decref(w);
    tensor_decref(b);
}

static void test_sgd(void)
{
    const double p0[3] = {1, 2, 3}, g[3] = {0.5, -1, 2};
    int64_t s[2] = {1, 3};
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        tensor *p = vec(p0, 2, s);
        opt_state *o = opt_sgd_new(&p, 1, &err);
        CHECK(opt_set(o, "momentum", 0.9, &err) == 0 && opt_set(o, "nesterov", nesterov, &err) == 0 &&
              opt_set(o, "wd", 0.1, &err) == 0);
        double r[3] = {1, 2, 3}, buf[3] = {0};
        for (int t = 0; t < 3; t++) {
            tensor_decref(p->grad);
            p->grad = vec(g, 2, s);
            CHECK(opt_step(o, 0.1, &err) == 0);
            for (int i = 0; i < 3; i++) {
                r[i] *= 1 - 0.1 * 0.1;
                buf[i] = t == 0 ? g[i] : 0.9 * buf[i] + g[i];
                r[i] -= 0.1 * (nesterov ? g[i] + 0.9 * buf[i] : buf[i]);
            }
        }
        for (int i = 0; i < 3; i++)
            CHECK(NEAR(tensor_get_flat(p, i), r[i], 1e-12));
        opt_free(o);
        tensor_decref(p);
    }
}

static void test_schedules(void)
{
    CHECK(NEAR(train_onecycle_lr(0, 100, 1.0), 1.0 / 25, 1e-12));
    CHECK(NEAR(train_onecycle_lr(25, 100, 1.0), 1.0, 1e-12));
    CHECK(NEAR(train_onecycle_lr(100, 100, 1.0), 1e-5, 1e-12));
    CHECK(NEAR(train_onecycle_lr(12.5, 100, 2.0), (2.0 / 25 + 2.0) / 2, 1e-12));
    CHECK(NEAR(train_onecycle_lr(62.5, 100, 1.0), (1.0 + 1e-5) / 2, 1e-12));
    CHECK(NEAR(train_onecycle_mom(0, 100), 0.95, 1e-12));
    CHECK(NEAR(train_onecycle_mom(25, 100), 0.85, 1e-12));
    CHECK(NEAR(train_onecycle_mom(100, 100), 0.95, 1e-12));
    for (int i = 1; i < 100; i++) /* rising, then falling */
        CHECK(i <= 25 ? train_onecycle_lr(i, 100, 1) > train_onecycle_lr(i - 1, 100, 1)
                      : train_onecycle_lr(i, 100, 1) < train_onecycle_lr(i - 1, 100, 1));
}

static void test_valley(void)
{
    /* falls over indices 2..11 (longest run), then rises: fastai's middle of the run */
    double l[16] = {5, 6, 5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5, 1, 0.5, 2, 4, 8, 16};
    /* lds[11] = 11 (0,2..11), max_start = 0, sections = 11/3: idx = 3 + 1 = 4 */
    CHECK(train_valley(l, 16) == 4);
    double flat[4] = {1, 1, 1, 1};
    CHECK(train_valley(flat, 4) == 0);
}

/* ---- the fused steps against the op-by-op path ---- */

/* k-th pseudo-random value in [-1, 1) of stream seed (no state) */
static double prand(uint64_t seed, uint64_t k)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + k * 0xbf58476d1ce4e5b9ull + 1;
    z ^= z >> 31;
    z *= 0x94d049bb133111ebull;
    z ^= z >> 29;
    return (double)(z >> 11) / 4503599627370496.0 - 1.0;
}

static tensor *rand_on(const eng_backend *be, tensor_dtype dt, int ndim, const int64_t *shape, uint64_t seed,
                       double scale)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * prand(seed, (uint64_t)i);
    tensor *h = must(tensor_from_doubles(v, dt, ndim, shape, &err));
    tensor *t = must(tensor_to(h, be, &err));
    free(v);
    tensor_decref(h);
    return t;
}

/* opt (kind, settings by name) over a [7, 5] weight and a [5] bias on each backend,
 * four steps with fresh gradients: parameters and state must agree bit for bit */
static void fused_case(opt_kind kind, tensor_dtype dt, const char *const *names, const double *values, int nset)
{
    eng_backend plain = cpu_backend;
    plain.adamw_step = NULL;
    plain.sgd_step = NULL;
    const eng_backend *bes[2] = {&cpu_backend, &plain};
    int64_t ws[2] = {7, 5}, bs[1] = {5};
    tensor *ps[2][2];
    opt_state *os[2];
    for (int k = 0; k < 2; k++) {
        ps[k][0] = rand_on(bes[k], dt, 2, ws, 1, 1.0);
        ps[k][1] = rand_on(bes[k], dt, 1, bs, 2, 0.5);
        os[k] = kind == OPT_ADAMW ? opt_adamw_new(ps[k], 2, &err) : opt_sgd_new(ps[k], 2, &err);
        CHECK(os[k] != NULL);
        for (int i = 0; i < nset; i++)
            CHECK(opt_set(os[k], names[i], values[i], &err) == 0);
    }
    const double lrs[4] = {0.1, 0.03, 0.3, 0.01};
    for (int t = 0; t < 4; t++)
        for (int k = 0; k < 2; k++) {
            for (int j = 0; j < 2; j++) {
                tensor_decref(ps[k][j]->grad);
                ps[k][j]->grad = rand_on(bes[k], dt, ps[k][j]->ndim, ps[k][j]->shape, 10 + (uint64_t)(t * 2 + j), 2.0);
            }
            CHECK(opt_step(os[k], lrs[t], &err) == 0);
        }
    int same = 1;
    for (int j = 0; j < 2; j++) {
        tensor *pairs[3][2] = {{ps[0][j], ps[1][j]}, {os[0]->m[j], os[1]->m[j]}, {os[0]->v[j], os[1]->v[j]}};
        for (int q = 0; q < 3; q++) {
            CHECK((pairs[q][0] == NULL) == (pairs[q][1] == NULL));
            if (!pairs[q][0] || !pairs[q][1])
                continue;
            CHECK(pairs[q][0]->storage->backend == bes[0] && pairs[q][1]->storage->backend == bes[1]);
            for (int64_t i = 0; i < tensor_numel(pairs[q][0]); i++)
                same &= tensor_get_flat(pairs[q][0], i) == tensor_get_flat(pairs[q][1], i);
        }
    }
    CHECK(same);
    CHECK(tensor_get_flat(ps[0][0], 0) != prand(1, 0)); /* it moved */
    for (int k = 0; k < 2; k++) {
        opt_free(os[k]);
        tensor_decref(ps[k][0]);
        tensor_decref(ps[k][1]);
    }
}

static void test_fused(void)
{
    const char *adam_names[4] = {"wd", "wd_1d", "beta2", "eps"};
    const double adam_a[4] = {0.1, 1, 0.999, 1e-8}, adam_b[4] = {0, 0, 0.99, 1e-5};
    const char *sgd_names[3] = {"momentum", "nesterov", "wd"};
    const double sgd_cfg[4][3] = {{0, 0, 0}, {0, 0, 0.05}, {0.9, 0, 0.01}, {0.8, 1, 0.1}};
    for (int f = 0; f < 2; f++) {
        tensor_dtype dt = f ? DT_F64 : DT_F32;
        fused_case(OPT_ADAMW, dt, NULL, NULL, 0);
        fused_case(OPT_ADAMW, dt, adam_names, adam_a, 4);
        fused_case(OPT_ADAMW, dt, adam_names, adam_b, 4);
        for (int c = 0; c < 4; c++)
            fused_case(OPT_SGD, dt, sgd_names, sgd_cfg[c], 3);
    }
}

int main(void)
{
    test_adamw();
    test_sgd();
    test_fused();
    test_schedules();
    test_valley();
    return check_finish("test_optim");
}
