/* test_conformance.c — the backend conformance suite: every op of engine/tensor/ops.def plus
 * the composites (OP_COMPOSITE rows), matmul, where, gather, random, copy/cast, fill,
 * assign into views and arange, sort/argsort/topk and the scans (conf_order.h), and
 * the fused training ops (cross_entropy forward and backward, AdamW and SGD steps), run
 * through the tensor front end on the CPU backend (the reference) and on a second
 * backend, on random shapes (broadcasting, transposed and stepped views, empty tensors,
 * sizes 1, 7, 33, 1025, 4099 ...) and every dtype, compared element by element within
 * the tolerances of tol_for() below. Errors must agree too (kind, and the message for
 * gather's bad index and integer division by zero).
 *
 * The second backend is $KILN_DEVICE: "sim" (default: the CUDA kernels on the
 * simulator, what CI runs) or "cuda" (make test-gpu). Exit 0 when every case agrees.
 * Usage: test_conformance [cases-per-group (default 60)] [seed] [group, e.g. train]
 */
#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"
#include "engine/train/nn.h"
#include "engine/train/optim.h"
#include "engine/tensor/tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const eng_backend *other;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static long n_cases, n_elems, n_fail, n_both_err;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int rndi(int n) { return (int)(rnd() % (uint64_t)n); }

static const tensor_dtype all_dtypes[] = {DT_BOOL, DT_U8, DT_I32, DT_I64, DT_F16, DT_BF16, DT_F32, DT_F64};
#define NDT 8

/* ---- what one case compares ---- */

typedef struct tol {
    double rel, abs; /* |a - b| <= rel * max(|a|, |b|) + abs */
} tol;

static void fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *what, const char *fmt, ...)
{
    n_fail++;
    if (n_fail > 30)
        return;
    va_list ap;
    fprintf(stderr, "FAIL %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* compares the results (or the errors) of one case */
static void compare(const char *what, tensor *r0, eng_error *e0, tensor *r1, eng_error *e1, tol t, int same_msg)
{
    n_cases++;
    if (!r0 || !r1) {
        if (r0 || r1) {
            fail(what, "one backend failed: cpu: %s | %s: %s", r0 ? "ok" : e0->msg, other->name, r1 ? "ok" : e1->msg);
        } else {
            n_both_err++;
            if (e0->kind != e1->kind)
                fail(what, "error kinds differ: cpu %s '%s', %s %s '%s'", eng_errkind_name(e0->kind), e0->msg,
                     other->name, eng_errkind_name(e1->kind), e1->msg);
            else if (same_msg && strcmp(e0->msg, e1->msg))
                fail(what, "messages differ: cpu '%s', %s '%s'", e0->msg, other->name, e1->msg);
        }
        goto done;
    }
    if (r0->dtype != r1->dtype || r0->ndim != r1->ndim) {
        fail(what, "dtype/ndim differ: %s/%d vs %s/%d", tensor_dtype_name(r0->dtype), r0->ndim, tensor_dtype_name(r1->dtype),
             r1->ndim);
        goto done;
    }
    for (int d = 0; d < r0->ndim; d++)
        if (r0->shape[d] != r1->shape[d]) {
            fail(what, "shapes differ at dim %d", d);
            goto done;
        }
    if (strcmp(r1->storage->backend->name, other->name)) {
        fail(what, "result lives on %s, not %s", r1->storage->backend->name, other->name);
        goto done;
    }
    int64_t n = tensor_numel(r0);
    int shown = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = tensor_get_flat(r0, i), b = tensor_get_flat(r1, i);
        n_elems++;
        if ((a != a) && (b != b))
            continue;
        if (a == b)
            continue;
        double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
        if (isfinite(a) && isfinite(b) && fabs(a - b) <= t.rel * m + t.abs)
            continue;
        if (!shown++)
            fail(what, "element %lld of %lld: cpu %.17g, %s %.17g (%s)", (long long)i, (long long)n, a, other->name, b,
                 tensor_dtype_name(r0->dtype));
    }
done:
    tensor_decref(r0);
    tensor_decref(r1);
}

/* ---- inputs: the same values, layout and view on both backends ---- */

typedef struct spec {
    tensor_dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAXDIM]; /* the view's shape */
    int view;                     /* 0 contiguous, 1 transposed (last two dims), 2 stepped slice of dim 0 */
    int positive;                 /* values > 0 (log, sqrt, divisors) */
    int nonzero;                  /* integers != 0 */
    uint64_t seed;                /* of the values */
} spec;

static double value_for(const spec *s, uint64_t *st)
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t r = *st >> 20;
    double u = (double)(r & 0xfffffff) / (double)0x10000000;
    switch (s->dt) {
    case DT_BOOL: return s->nonzero ? 1 : (double)(r & 1);
    case DT_U8: return s->nonzero ? 1 + (double)(r % 200) : (double)(r % 256);
    case DT_I32: case DT_I64: {
        double v = (double)((int64_t)(r % 41) - 20);
        if (s->positive)
            v = fabs(v) + 1;
        if (s->nonzero && v == 0)
            v = 3;
        return v;
    }
    default: {
        double v = u * 6 - 3;
        if (s->positive)
            v = u * 4 + 0.01;
        if ((r >> 30) % 17 == 0 && !s->positive)
            v = (double)((int)(v * 2)) / 2; /* some exact halves and integers: ties for round, equal compares */
        return v;
    }
    }
}

/* builds the spec's tensor on backend be */
static tensor *make_on(const eng_backend *be, const spec *s, eng_error *err)
{
    eng_set_current_backend(be);
    int64_t base[TENSOR_MAXDIM];
    memcpy(base, s->shape, sizeof base);
    if (s->view == 1 && s->ndim >= 2) { /* store transposed, view back */
        int64_t t = base[s->ndim - 1];
        base[s->ndim - 1] = base[s->ndim - 2];
        base[s->ndim - 2] = t;
    } else if (s->view == 2 && s->ndim >= 1) {
        base[0] = s->shape[0] * 2 + 1;
    }
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++)
        n *= base[d];
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    uint64_t st = s->seed;
    for (int64_t i = 0; i < n; i++)
        v[i] = value_for(s, &st);
    tensor *t = tensor_from_doubles(v, s->dt, s->ndim, base, err);
    free(v);
    if (!t)
        return NULL;
    tensor *r = t;
    if (s->view == 1 && s->ndim >= 2)
        r = tensor_transpose(t, s->ndim - 2, s->ndim - 1, err);
    else if (s->view == 2 && s->ndim >= 1)
        r = tensor_slice(t, 0, 1, base[0], 2, err);
    if (r != t)
        tensor_decref(t);
    return r;
}

static const int64_t sizes[] = {1, 2, 3, 7, 1, 33, 5, 0, 4, 17, 1025, 4099};

static void random_shape(spec *s, int maxdim, int allow_big)
{
    s->ndim = rndi(maxdim + 1);
    int64_t total = 1;
    for (int d = 0; d < s->ndim; d++) {
        int k = rndi(allow_big ? 12 : 10);
        if (sizes[k] == 0 && rndi(3))
            k = 2; /* empty tensors: some, not most */
        s->shape[d] = sizes[k];
        total *= sizes[k];
        if (total > 70000) {
            s->shape[d] = 1;
            total /= sizes[k];
        }
    }
    s->view = s->ndim >= 2 ? rndi(3) : s->ndim == 1 ? 2 * rndi(2) : 0;
    s->seed = rnd();
}

static int is_float(tensor_dtype dt) { return dt == DT_F16 || dt == DT_BF16 || dt == DT_F32 || dt == DT_F64; }

/* tolerance of an op's result in dtype dt; exact: an op that must match bit for bit */
static tol tol_for(tensor_dtype dt, int exact)
{
    if (exact)
        return (tol){0, 0};
    switch (dt) {
    case DT_F16: return (tol){2e-3, 1e-4};  /* one f16 rounding of an f32 result */
    case DT_BF16: return (tol){1.6e-2, 1e-3};
    case DT_F32: return (tol){4e-6, 1e-6};  /* a few ulp: libm vs CUDA math vs cpu_expf */
    case DT_F64: return (tol){1e-13, 1e-14};
    default: return (tol){0, 0};
    }
}

static void run_both(const char *what, const spec *in, int nin, tol t, int same_msg,
                     tensor *(*fn)(tensor **x, void *ctx, eng_error *err), void *ctx)
{
    tensor *x0[4] = {0}, *x1[4] = {0}, *r0 = NULL, *r1 = NULL;
    eng_error e0 = {0}, e1 = {0};
    for (int k = 0; k < nin; k++) {
        x0[k] = make_on(&cpu_backend, &in[k], &e0);
        x1[k] = make_on(other, &in[k], &e1);
        if (!x0[k] || !x1[k]) {
            fail(what, "could not make the inputs: %s / %s", e0.msg, e1.msg);
            goto done;
        }
    }
    eng_set_current_backend(&cpu_backend);
    r0 = fn(x0, ctx, &e0);
    eng_set_current_backend(other);
    r1 = fn(x1, ctx, &e1);
    compare(what, r0, &e0, r1, &e1, t, same_msg);
done:
    for (int k = 0; k < nin; k++) {
        tensor_decref(x0[k]);
        tensor_decref(x1[k]);
    }
}

/* ---- the ops ---- */

typedef struct opctx {
    op_id op;
    int dim, keepdim;
    tensor_dtype dt;
    double a, b;
    void (*fn)(void); /* a composite's function (group_composite) */
} opctx;

static tensor *do_unary(tensor **x, void *c, eng_error *err)
{
    opctx *o = c;
    return tensor_unary(o->op, x[0], o->a, o->b, err);
}
static tensor *do_binary(tensor **x, void *c, eng_error *err)
{
    return tensor_binary(((opctx *)c)->op, x[0], x[1], err);
}
static tensor *do_reduce(tensor **x, void *c, eng_error *err)
{
    opctx *o = c;
    return tensor_reduce(o->op, x[0], o->dim, o->keepdim, err);
}
static tensor *do_matmul(tensor **x, void *c, eng_error *err)
{
    return tensor_matmul(x[0], x[1], err);
}
static tensor *do_where(tensor **x, void *c, eng_error *err)
{
    return tensor_where(x[0], x[1], x[2], err);
}
static tensor *do_gather(tensor **x, void *c, eng_error *err)
{
    return tensor_gather(x[0], x[1], err);
}
static tensor *do_cast(tensor **x, void *c, eng_error *err)
{
    return tensor_cast(x[0], ((opctx *)c)->dt, err);
}
static tensor *do_fill_view(tensor **x, void *c, eng_error *err)
{
    /* fills the view (shared storage) and returns the whole base: writes stay inside */
    if (tensor_fill(x[0], ((opctx *)c)->a, err) < 0)
        return NULL;
    return tensor_clone(x[0], err);
}
static tensor *do_assign(tensor **x, void *c, eng_error *err)
{
    if (tensor_assign(x[0], x[1], err) < 0)
        return NULL;
    return tensor_clone(x[0], err);
}
static tensor *do_inplace(tensor **x, void *c, eng_error *err)
{
    tensor *a = tensor_clone(x[0], err);
    if (a && tensor_binary_inplace(((opctx *)c)->op, a, x[1], err) < 0) {
        tensor_decref(a);
        return NULL;
    }
    return a;
}

/* every unary row of ops.def: inputs by its DOM, exact (bit for bit) for the rows that
 * keep the dtype or give bool, and sqrt (correctly rounded in IEEE); others by tol_for */
#define UN_EXACT_FLOAT 0
#define UN_EXACT_KEEP 1
#define UN_EXACT_ARITH 1
#define UN_EXACT_BOOL 1
static void group_unary(int cases)
{
    static const struct {
        op_id op;
        int positive, exact;
    } ops[] = {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) {OP_##ID, DOM_POS_##DOM, UN_EXACT_##DT},
#define DOM_POS_ANY 0
#define DOM_POS_POS 1
#include "engine/tensor/ops.def"
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (int i = 0; i < cases; i++) {
            spec s = {.dt = all_dtypes[i % NDT]};
            random_shape(&s, 4, 1);
            s.positive = ops[o].positive && i % 3;
            opctx c = {.op = ops[o].op, .a = -1, .b = 1.5};
            char what[96];
            snprintf(what, sizeof what, "%s(%s)", tensor_op_name(ops[o].op), tensor_dtype_name(s.dt));
            int exact = ops[o].exact || ops[o].op == OP_SQRT;
            /* integer input of a float function gives f32 */
            tensor_dtype rdt = is_float(s.dt) ? s.dt : DT_F32;
            run_both(what, &s, 1, tol_for(rdt, exact), 0, do_unary, &c);
        }
}

/* every composite row: its primitives on both backends, f32 and f64 */
static tensor *do_composite(tensor **x, void *c, eng_error *err)
{
    opctx *o = c;
    return ((tensor * (*)(const tensor *, double, eng_error *)) o->fn)(x[0], o->a, err);
}

static void group_composite(int cases)
{
    static const struct {
        const char *name;
        tensor *(*fn)(const tensor *, double, eng_error *);
        int positive;
    } ops[] = {
#define OP_COMPOSITE(name, sig, NP, P0, DOM, EXPR, doc) {#name, tensor_##name, DOM_POS_##DOM},
#include "engine/tensor/ops.def"
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (int i = 0; i < cases; i++) {
            spec s = {.dt = i % 2 ? DT_F32 : DT_F64};
            random_shape(&s, 3, 1);
            s.positive = ops[o].positive;
            opctx c = {.a = 0.3, .fn = (void (*)(void))ops[o].fn};
            char what[96];
            snprintf(what, sizeof what, "%s(%s)", ops[o].name, tensor_dtype_name(s.dt));
            tol t = tol_for(s.dt, 0);
            t.abs += s.dt == DT_F32 ? 1e-6 : 1e-14; /* differences of nearly equal terms */
            run_both(what, &s, 1, t, 0, do_composite, &c);
        }
}

static void group_binary(int cases)
{
    static const op_id ops[] = {
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) OP_##ID,
#define OP_COMPARE(ID, name, API, E, doc) OP_##ID,
#include "engine/tensor/ops.def"
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (int i = 0; i < cases; i++) {
            spec s[2];
            memset(s, 0, sizeof s);
            s[0].dt = s[1].dt = all_dtypes[i % NDT];
            if (i % 5 == 4)
                s[1].dt = all_dtypes[rndi(NDT)]; /* mixed dtypes: promotion */
            random_shape(&s[0], 4, 1);
            s[1] = (spec){.dt = s[1].dt, .ndim = s[0].ndim, .seed = rnd()};
            memcpy(s[1].shape, s[0].shape, sizeof s[0].shape);
            /* broadcasting: drop leading dims or set some to 1, on either side */
            int side = rndi(3);
            if (side) {
                spec *b = &s[side - 1];
                for (int d = 0; d < b->ndim; d++)
                    if (rndi(3) == 0)
                        b->shape[d] = 1;
                int drop = rndi(b->ndim + 1);
                memmove(b->shape, b->shape + drop, sizeof(int64_t) * (size_t)(b->ndim - drop));
                b->ndim -= drop;
            }
            s[1].view = s[1].ndim >= 2 ? rndi(3) : 0;
            int intdiv = (ops[o] == OP_DIV || ops[o] == OP_MOD);
            s[1].nonzero = intdiv && i % 7;   /* and now and then a zero divisor: ZeroDivisionError */
            s[1].positive = ops[o] == OP_POW && i % 2;
            opctx c = {.op = ops[o]};
            char what[96];
            snprintf(what, sizeof what, "%s(%s, %s)", tensor_op_name(ops[o]), tensor_dtype_name(s[0].dt), tensor_dtype_name(s[1].dt));
            tensor_dtype rdt = tensor_dtype_promote(s[0].dt, s[1].dt);
            int exact = ops[o] != OP_POW;
            if (rdt == DT_F16 || rdt == DT_BF16)
                exact = 0; /* f32 math rounded back: same, but allow the rounding's tie cases */
            run_both(what, s, 2, tol_for(rdt, exact), 1, do_binary, &c);
            if (i % 4 == 0 && s[1].ndim <= s[0].ndim && s[0].view == 0) { /* a op= b */
                snprintf(what, sizeof what, "%s=(%s, %s)", tensor_op_name(ops[o]), tensor_dtype_name(s[0].dt),
                         tensor_dtype_name(s[1].dt));
                run_both(what, s, 2, tol_for(s[0].dt, exact), 1, do_inplace, &c);
            }
        }
}

static void group_reduce(int cases)
{
    static const op_id ops[] = {
#define OP_REDUCE(ID, name, DT, G) OP_##ID,
#include "engine/tensor/ops.def"
    };
    static const tensor_dtype rdts[] = {DT_BOOL, DT_U8, DT_I32, DT_I64, DT_F16, DT_F32, DT_F64, DT_BF16};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (int i = 0; i < cases; i++) {
            spec s = {.dt = rdts[i % 8]};
            random_shape(&s, 3, 1);
            if (i % 6 == 0) { /* one long row: split among blocks */
                s.ndim = 1;
                s.shape[0] = 50000 + rndi(30000);
                s.view = 0;
            }
            opctx c = {.op = ops[o], .dim = s.ndim && rndi(3) ? rndi(s.ndim) : TENSOR_ALLDIMS, .keepdim = rndi(2)};
            char what[96];
            snprintf(what, sizeof what, "%s(%s, dim %d)", tensor_op_name(ops[o]), tensor_dtype_name(s.dt), c.dim);
            int ext = ops[o] == OP_MAX || ops[o] == OP_MIN || ops[o] == OP_ARGMAX || ops[o] == OP_ARGMIN;
            tol t = tol_for(is_float(s.dt) ? s.dt : DT_F32, ext || (ops[o] == OP_SUM && !is_float(s.dt)));
            if (!ext) /* double accumulation in another order, rounded once: a last-bit difference */
                t.rel = s.dt == DT_F64 ? 1e-12 : s.dt == DT_F16 ? 2e-3 : s.dt == DT_BF16 ? 1.6e-2 : 1e-6;
            run_both(what, &s, 1, t, 1, do_reduce, &c);
        }
}

static void group_matmul(int cases)
{
    for (int i = 0; i < cases; i++) {
        spec s[2];
        memset(s, 0, sizeof s);
        tensor_dtype dt = i % 3 == 0 ? DT_F64 : i % 7 == 1 ? DT_I32 : i % 7 == 2 ? DT_F16 : i % 7 == 4 ? DT_BF16 : DT_F32;
        int64_t M = sizes[rndi(10)], K = sizes[rndi(10)], N = sizes[rndi(10)], B = 1 + rndi(3);
        if (i % 5 == 0) {
            M = 40 + rndi(30);
            K = 60 + rndi(40);
            N = 20 + rndi(50);
        }
        int nb = rndi(3); /* 0: 2-D; 1: batched a with shared c; 2: both batched */
        s[0] = (spec){.dt = dt, .ndim = nb ? 3 : 2, .seed = rnd(), .view = rndi(2)};
        s[1] = (spec){.dt = dt, .ndim = nb == 2 ? 3 : 2, .seed = rnd(), .view = rndi(2)};
        if (nb) {
            s[0].shape[0] = B;
            s[0].shape[1] = M;
            s[0].shape[2] = K;
        } else {
            s[0].shape[0] = M;
            s[0].shape[1] = K;
        }
        if (nb == 2) {
            s[1].shape[0] = B;
            s[1].shape[1] = K;
            s[1].shape[2] = N;
        } else {
            s[1].shape[0] = K;
            s[1].shape[1] = N;
        }
        if (i % 9 == 3) { /* a vector on one side */
            s[1].ndim = 1;
            s[1].shape[0] = K;
            s[1].view = 0;
        }
        char what[96];
        snprintf(what, sizeof what, "matmul(%s, M %lld K %lld N %lld)", tensor_dtype_name(dt), (long long)M, (long long)K,
                 (long long)N);
        /* half products: one backend may round an f32 product (CPU), the other accumulate
         * in f32 on tensor cores and round once (cuBLAS): a unit in the last place apart */
        tol t = {dt == DT_F64 ? 1e-13 : dt == DT_F16 ? 2e-3 : dt == DT_BF16 ? 1.6e-2 : 1e-5, (dt == DT_F64 ? 1e-12 : 2e-5) * (double)(K + 1)};
        if (dt == DT_I32)
            t = (tol){0, 0};
        run_both(what, s, 2, t, 0, do_matmul, NULL);
    }
}

/* im2col and col2im (engine/tensor/backend.h), through engine/train/nn.c: random windows, strides
 * and padding over f32 and f64 images (some stored transposed: nn_im2col makes them
 * contiguous first); kernels larger than the padded image must fail alike */
typedef struct convctx {
    int kh, kw, stride, pad;
    int64_t C, H, W;
} convctx;

static tensor *do_im2col(tensor **x, void *c, eng_error *err)
{
    convctx *k = c;
    return nn_im2col(x[0], k->kh, k->kw, k->stride, k->pad, err);
}
static tensor *do_col2im(tensor **x, void *c, eng_error *err)
{
    convctx *k = c;
    return nn_col2im(x[0], k->C, k->H, k->W, k->kh, k->kw, k->stride, k->pad, err);
}

static void group_conv(int cases)
{
    for (int i = 0; i < cases; i++) {
        tensor_dtype dt = i % 2 ? DT_F64 : DT_F32;
        convctx k = {1 + rndi(4), 1 + rndi(4), 1 + rndi(3), rndi(3), 1 + rndi(4), 1 + rndi(12), 1 + rndi(12)};
        int64_t N = 1 + rndi(3);
        if (i % 7 == 0) { /* a larger image: the parallel loops */
            k.C = 8 + rndi(8);
            k.H = 20 + rndi(12);
            k.W = 20 + rndi(12);
            N = 4 + rndi(4);
        }
        spec s = {.dt = dt, .ndim = 4, .seed = rnd(), .view = rndi(2), .shape = {N, k.C, k.H, k.W}};
        char what[128];
        snprintf(what, sizeof what, "im2col(%s [%lld, %lld, %lld, %lld], %dx%d, stride %d, pad %d)",
                 tensor_dtype_name(dt), (long long)N, (long long)k.C, (long long)k.H, (long long)k.W, k.kh, k.kw,
                 k.stride, k.pad);
        run_both(what, &s, 1, (tol){0, 0}, 1, do_im2col, &k);
        if (k.H + 2 * k.pad < k.kh || k.W + 2 * k.pad < k.kw)
            continue;
        int64_t OH = (k.H + 2 * k.pad - k.kh) / k.stride + 1, OW = (k.W + 2 * k.pad - k.kw) / k.stride + 1;
        spec cs = {.dt = dt, .ndim = 3, .seed = rnd(), .view = rndi(2), .shape = {N, k.C * k.kh * k.kw, OH * OW}};
        memcpy(what, "col2im", 6);
        run_both(what, &cs, 1, tol_for(dt, 0), 1, do_col2im, &k);
    }
}

static void group_data(int cases)
{
    for (int i = 0; i < cases; i++) {
        char what[96];
        /* where(c, a, b) with broadcasting */
        spec s[3];
        memset(s, 0, sizeof s);
        random_shape(&s[0], 3, 1);
        s[0].dt = DT_BOOL;
        tensor_dtype dt = all_dtypes[i % NDT];
        s[1] = (spec){.dt = dt, .ndim = s[0].ndim, .seed = rnd()};
        s[2] = (spec){.dt = dt, .ndim = 0, .seed = rnd()};
        memcpy(s[1].shape, s[0].shape, sizeof s[0].shape);
        snprintf(what, sizeof what, "where(%s)", tensor_dtype_name(dt));
        run_both(what, s, 3, tol_for(dt, 1), 0, do_where, NULL);

        /* cast between every pair, from views */
        spec c0 = {.dt = all_dtypes[rndi(NDT)]};
        random_shape(&c0, 3, 1);
        opctx oc = {.dt = all_dtypes[rndi(NDT)]};
        snprintf(what, sizeof what, "cast(%s -> %s)", tensor_dtype_name(c0.dt), tensor_dtype_name(oc.dt));
        run_both(what, &c0, 1, tol_for(oc.dt, 1), 0, do_cast, &oc);

        /* fill a view */
        spec f0 = {.dt = all_dtypes[i % NDT]};
        random_shape(&f0, 3, 0);
        opctx of = {.a = (i % 3) ? 2.5 : -7};
        snprintf(what, sizeof what, "fill(%s)", tensor_dtype_name(f0.dt));
        run_both(what, &f0, 1, tol_for(f0.dt, 1), 0, do_fill_view, &of);

        /* assign a broadcast source into a view, with a cast */
        spec a2[2];
        memset(a2, 0, sizeof a2);
        a2[0].dt = all_dtypes[rndi(NDT)];
        random_shape(&a2[0], 3, 0);
        a2[1] = (spec){.dt = all_dtypes[rndi(NDT)], .ndim = a2[0].ndim ? 1 : 0, .seed = rnd()};
        a2[1].shape[0] = a2[0].ndim ? a2[0].shape[a2[0].ndim - 1] : 1;
        snprintf(what, sizeof what, "assign(%s <- %s)", tensor_dtype_name(a2[0].dt), tensor_dtype_name(a2[1].dt));
        run_both(what, a2, 2, tol_for(a2[0].dt, 1), 0, do_assign, NULL);

        /* gather rows, indices i32/i64, negative ones, and now and then a bad one */
        spec g[2];
        memset(g, 0, sizeof g);
        g[0].dt = all_dtypes[rndi(NDT)];
        random_shape(&g[0], 3, 0);
        if (g[0].ndim == 0) {
            g[0].ndim = 1;
            g[0].shape[0] = 5;
        }
        if (g[0].shape[0] == 0)
            g[0].shape[0] = 3;
        g[1] = (spec){.dt = rndi(2) ? DT_I32 : DT_I64, .ndim = 1 + rndi(2), .seed = rnd()};
        g[1].shape[0] = 1 + rndi(9);
        g[1].shape[1] = 1 + rndi(3);
        snprintf(what, sizeof what, "gather(%s rows %lld)", tensor_dtype_name(g[0].dt), (long long)g[0].shape[0]);
        /* index values are in [-20, 20]: in range only for big enough x; errors must match */
        run_both(what, g, 2, tol_for(g[0].dt, 1), 1, do_gather, NULL);
    }
}

static void group_random(int cases)
{
    for (int i = 0; i < cases; i++) {
        int64_t shape[3] = {1 + rndi(40), 1 + rndi(40), 1 + rndi(3)};
        int nd = 1 + rndi(3);
        tensor_rng g0 = {rnd(), rnd() % 1000000}, g1 = g0;
        eng_error e0 = {0}, e1 = {0};
        int kind = i % 3;
        tensor *r0, *r1;
        eng_set_current_backend(&cpu_backend);
        r0 = kind == 0 ? tensor_rand(&g0, nd, shape, &e0) : kind == 1 ? tensor_randn(&g0, nd, shape, &e0)
                                                                      : tensor_randint(&g0, -5, 1000003, nd, shape, &e0);
        eng_set_current_backend(other);
        r1 = kind == 0 ? tensor_rand(&g1, nd, shape, &e1) : kind == 1 ? tensor_randn(&g1, nd, shape, &e1)
                                                                      : tensor_randint(&g1, -5, 1000003, nd, shape, &e1);
        if (g0.offset != g1.offset)
            fail("random", "offsets advanced differently");
        compare(kind == 0 ? "rand" : kind == 1 ? "randn" : "randint", r0, &e0, r1, &e1, (tol){kind == 1 ? 2e-7 : 0, 0},
                0);
        /* arange in several dtypes */
        tensor_dtype adt = all_dtypes[2 + rndi(6)];
        double start = rndi(2) ? -3 : 0.5, step = rndi(2) ? 1 : 0.25, stop = start + step * (double)rndi(3000);
        eng_set_current_backend(&cpu_backend);
        r0 = tensor_arange(start, stop, step, adt, &e0);
        eng_set_current_backend(other);
        r1 = tensor_arange(start, stop, step, adt, &e1);
        compare("arange", r0, &e0, r1, &e1, tol_for(adt, 1), 0);
    }
}

/* ---- the fused training ops: cross_entropy (forward, backward), AdamW and SGD steps ---- */

typedef struct trainctx {
    int kind;            /* 0 loss, 1 gradient, 2 loss with the labels' range given (fit's form),
                          * 3 AdamW (the parameter), 4 AdamW (the second moment), 5 SGD */
    double scale;        /* the logits are multiplied by it (1e4: stability) */
    tensor_dtype ldt;        /* labels */
    int64_t n;
    double *labels;      /* host values */
    int64_t lo, hi;
    int momentum, nesterov;
} trainctx;

static tensor *xent_inputs(tensor *x, const trainctx *k, tensor **lab, eng_error *err)
{
    *lab = tensor_from_doubles(k->labels, k->ldt, 1, &k->n, err);
    if (!*lab)
        return NULL;
    if (k->scale == 1) { /* x as made: views too */
        tensor_incref(x);
        return x;
    }
    return tensor_binary_scalar(OP_MUL, x, k->scale, 1, 0, err);
}

static tensor *do_xent(tensor **x, void *c, eng_error *err)
{
    trainctx *k = c;
    tensor *lab, *xs = xent_inputs(x[0], k, &lab, err), *r = NULL;
    if (xs && k->kind == 1) {
        tensor *p = ag_param(xs, err), *l = p ? nn_cross_entropy(p, lab, err) : NULL;
        if (l && ag_backward(l, err) == 0 && p->grad) {
            r = p->grad;
            tensor_incref(r);
        }
        tensor_decref(l);
        tensor_decref(p);
    } else if (xs) {
        r = k->kind == 2 ? nn_cross_entropy_ranged(xs, lab, k->lo, k->hi, err) : nn_cross_entropy(xs, lab, err);
    }
    tensor_decref(xs);
    tensor_decref(lab);
    return r;
}

/* three steps of an optimiser over x[0] with gradients x[1] * (t + 1) */
static tensor *do_step(tensor **x, void *c, eng_error *err)
{
    trainctx *k = c;
    tensor *p = tensor_clone(x[0], err), *r = NULL;
    if (!p)
        return NULL;
    opt_state *o = k->kind == 5 ? opt_sgd_new(&p, 1, err) : opt_adamw_new(&p, 1, err);
    if (o && k->kind == 5 && k->momentum &&
        (opt_set(o, "momentum", 0.9, err) || opt_set(o, "nesterov", k->nesterov, err)))
        goto done;
    if (o && opt_set(o, "wd", 0.05, err) == 0 && opt_set(o, "wd_1d", 1, err) == 0) {
        for (int t = 0; t < 3; t++) {
            tensor_decref(p->grad);
            if (!(p->grad = tensor_binary_scalar(OP_MUL, x[1], t + 1, 1, 0, err)) || opt_step(o, 0.1, err))
                goto done;
        }
        r = k->kind == 4 ? o->v[0] : p;
        if (r)
            tensor_incref(r);
    }
done:
    opt_free(o);
    tensor_decref(p);
    return r;
}

static void group_train(int cases)
{
    static const int64_t ns[] = {1, 2, 7, 33, 64, 129}, cs[] = {1, 2, 10, 31, 33, 100, 1000};
    static const tensor_dtype ldts[3] = {DT_I64, DT_I32, DT_U8};
    for (int i = 0; i < cases; i++) {
        tensor_dtype dt = i % 2 ? DT_F64 : DT_F32;
        int64_t N = ns[rndi(6)], C = cs[rndi(7)];
        if (C > 255)
            C = 255 - rndi(3); /* u8 labels */
        trainctx k = {.scale = rndi(4) == 0 ? 1e4 : 1, .ldt = ldts[rndi(3)], .n = N};
        k.labels = malloc(sizeof(double) * (size_t)N);
        for (int64_t r = 0; r < N; r++)
            k.labels[r] = (double)rndi((int)C);
        int bad = i % 9 == 4;
        if (bad) /* a label out of range: the same IndexError and message */
            k.labels[rndi((int)N)] = k.ldt == DT_U8 ? (double)C : rndi(2) ? (double)C + 2 : -3;
        k.lo = k.hi = (int64_t)k.labels[0];
        for (int64_t r = 1; r < N; r++) {
            k.lo = (int64_t)k.labels[r] < k.lo ? (int64_t)k.labels[r] : k.lo;
            k.hi = (int64_t)k.labels[r] > k.hi ? (int64_t)k.labels[r] : k.hi;
        }
        spec s = {.dt = dt, .ndim = 2, .seed = rnd(), .view = rndi(3), .shape = {N, C}};
        char what[160];
        for (int kind = 0; kind < 3; kind++) {
            k.kind = kind;
            snprintf(what, sizeof what, "cross_entropy %s(%s [%lld, %lld] x %g, %s labels%s)",
                     kind == 1 ? "backward " : kind == 2 ? "ranged " : "", tensor_dtype_name(dt), (long long)N,
                     (long long)C, k.scale, tensor_dtype_name(k.ldt), bad ? ", one bad" : "");
            run_both(what, &s, 1, tol_for(dt, 0), 1, do_xent, &k);
        }
        free(k.labels);

        /* the optimisers over a random shape (0-d, empty, odd sizes; views made contiguous) */
        spec ps[2] = {{.dt = dt}, {.dt = dt}};
        random_shape(&ps[0], 3, 1);
        ps[1] = ps[0];
        ps[1].seed = rnd();
        ps[1].view = rndi(3) && ps[0].ndim >= 2 ? 1 : 0;
        for (int kind = 3; kind < 6; kind++) {
            k.kind = kind;
            k.momentum = rndi(3) > 0;
            k.nesterov = rndi(2);
            snprintf(what, sizeof what, "%s (%s, %lld elements%s%s)", kind == 5 ? "sgd" : kind == 4 ? "adamw v" : "adamw p",
                     tensor_dtype_name(dt), (long long)(ps[0].ndim ? ps[0].shape[0] : 1),
                     kind == 5 && k.momentum ? ", momentum" : "", kind == 5 && k.nesterov ? ", nesterov" : "");
            run_both(what, ps, 2, tol_for(dt, 0), 1, do_step, &k);
        }
    }
}

#include "tests/conformance/conf_order.h" /* group_order */

int main(int argc, char **argv)
{
    int cases = argc > 1 ? atoi(argv[1]) : 60;
    if (argc > 2)
        rng_state = strtoull(argv[2], NULL, 0) | 1;
    const char *dev = getenv("KILN_DEVICE");
    if (!dev || !*dev || !strcmp(dev, "cpu"))
        dev = "sim";
    eng_error err = {0};
    other = eng_backend_named(dev, &err);
    if (!other) {
        fprintf(stderr, "test_conformance: %s\n", err.msg);
        return 1;
    }
    clock_t t0 = clock();
    struct { const char *name; void (*fn)(int); int mult; } groups[] = {
        {"unary", group_unary, 1},   {"binary", group_binary, 1}, {"reduce", group_reduce, 1},
        {"matmul", group_matmul, 4}, {"data", group_data, 4},     {"random", group_random, 2},
        {"conv", group_conv, 2},     {"train", group_train, 2},   {"compose", group_composite, 1}, {"order", group_order, 2},
    };
    const char *only = argc > 3 ? argv[3] : NULL;
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        long c0 = n_cases, f0 = n_fail;
        if (only && strcmp(only, groups[g].name))
            continue;
        groups[g].fn(cases * groups[g].mult / 2 > 0 ? cases * groups[g].mult / 2 : 1);
        printf("  %-7s %6ld cases, %ld failed\n", groups[g].name, n_cases - c0, n_fail - f0);
    }
    eng_set_current_backend(&cpu_backend);
    printf("conformance cpu vs %s: %ld cases (%ld where both backends report the same error), %ld elements "
           "compared, %ld failures, %.1f s CPU\n",
           other->name, n_cases, n_both_err, n_elems, n_fail, (double)(clock() - t0) / CLOCKS_PER_SEC);
    return n_fail ? 1 : 0;
}
