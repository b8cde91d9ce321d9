/* cpu_train.c — the fused training entries of engine/tensor/backend.h: one pass per optimiser
 * step of a parameter (AdamW, SGD) and cross-entropy's forward and backward.
 *
 * The optimiser loops do, element by element, what engine/train/optim.c's op-by-op path does
 * one tensor op at a time, with the same roundings: every scalar is cast to the
 * parameter's dtype first (as tensor_binary_scalar does) and each step is rounded to it,
 * so on this backend the two paths agree to the last bit (tests/unit/test_optim.c).
 *
 * Cross-entropy runs one row per OpenMP iteration: the row's max, the sum of exp(x -
 * max), then the loss (forward) or the row of softmax - onehot (backward). With check,
 * the labels are scanned once, serially, for their smallest and largest values first,
 * which gives the composed path's error message.
 */
#include "cpu/cpu_internal.h"

#include <math.h>
#include <omp.h>

#define PAR_MIN 32768 /* elements below which the loops stay serial */

#define ADAMW(T, SQRT, name)                                                                      \
    static void name(T *restrict p, const T *restrict g, T *restrict m, T *restrict v, int64_t n,  \
                     const eng_step_args *a)                                                      \
    {                                                                                             \
        const T b1 = (T)a->beta1, c1 = (T)(1 - a->beta1), b2 = (T)a->beta2, c2 = (T)(1 - a->beta2); \
        const T bc2 = (T)a->bc2, eps = (T)a->eps, wdf = (T)a->wdf, step = (T)(a->lr / a->bc1);    \
        _Pragma("omp parallel for schedule(static) if (n > PAR_MIN)")                             \
        for (int64_t i = 0; i < n; i++) {                                                         \
            T gi = g[i];                                                                          \
            T mi = m[i] * b1;                                                                     \
            mi = mi + gi * c1;                                                                    \
            T g2 = gi * gi;                                                                       \
            T vi = v[i] * b2;                                                                     \
            vi = vi + g2 * c2;                                                                    \
            m[i] = mi;                                                                            \
            v[i] = vi;                                                                            \
            T den = SQRT(vi / bc2);                                                               \
            den = den + eps;                                                                      \
            T upd = mi / den;                                                                     \
            T pi = p[i] * wdf;                                                                    \
            p[i] = pi - upd * step;                                                               \
        }                                                                                         \
    }

ADAMW(float, sqrtf, adamw_f32)
ADAMW(double, sqrt, adamw_f64)

#define SGD(T, name)                                                                              \
    static void name(T *restrict p, const T *restrict g, T *restrict buf, int64_t n,              \
                     const eng_step_args *a)                                                      \
    {                                                                                             \
        const T mom = (T)a->beta1, wdf = (T)a->wdf, lr = (T)a->lr;                                \
        const int nest = a->nesterov;                                                             \
        _Pragma("omp parallel for schedule(static) if (n > PAR_MIN)")                             \
        for (int64_t i = 0; i < n; i++) {                                                         \
            T gi = g[i], d = gi;                                                                  \
            if (buf) {                                                                            \
                T b = buf[i] * mom;                                                               \
                b = b + gi;                                                                       \
                buf[i] = b;                                                                       \
                if (nest) {                                                                       \
                    d = b * mom;                                                                  \
                    d = d + gi;                                                                   \
                } else                                                                            \
                    d = b;                                                                        \
            }                                                                                     \
            T pi = p[i] * wdf;                                                                    \
            p[i] = pi - d * lr;                                                                   \
        }                                                                                         \
    }

SGD(float, sgd_f32)
SGD(double, sgd_f64)

static int step_check(const tensor *p, const tensor *const *others, int n, const char *who, eng_error *err)
{
    if ((p->dtype != DT_F32 && p->dtype != DT_F64) || !tensor_is_contiguous(p))
        return eng_fail(err, ERR_TYPE, "%s: a contiguous f32 or f64 parameter expected", who);
    for (int k = 0; k < n; k++) {
        const tensor *t = others[k];
        if (!t)
            continue;
        if (t->dtype != p->dtype || !tensor_is_contiguous(t) || tensor_numel(t) != tensor_numel(p))
            return eng_fail(err, ERR_SHAPE, "%s: the gradient and state must be contiguous, of the parameter's shape and dtype",
                            who);
    }
    return 0;
}

int cpu_adamw_step(tensor *p, const tensor *g, tensor *m, tensor *v, const eng_step_args *a, eng_error *err)
{
    const tensor *o[3] = {g, m, v};
    if (!m || !v || step_check(p, o, 3, "adamw", err) < 0)
        return m && v ? -1 : eng_fail(err, ERR_RUNTIME, "adamw: the moment buffers are missing");
    int64_t n = tensor_numel(p);
    if (p->dtype == DT_F32)
        adamw_f32((float *)cpu_ptr(p), (const float *)cpu_ptr(g), (float *)cpu_ptr(m), (float *)cpu_ptr(v), n, a);
    else
        adamw_f64((double *)cpu_ptr(p), (const double *)cpu_ptr(g), (double *)cpu_ptr(m), (double *)cpu_ptr(v), n,
                  a);
    return 0;
}

int cpu_sgd_step(tensor *p, const tensor *g, tensor *buf, const eng_step_args *a, eng_error *err)
{
    const tensor *o[2] = {g, buf};
    if (step_check(p, o, 2, "sgd", err) < 0)
        return -1;
    int64_t n = tensor_numel(p);
    if (p->dtype == DT_F32)
        sgd_f32((float *)cpu_ptr(p), (const float *)cpu_ptr(g), buf ? (float *)cpu_ptr(buf) : NULL, n, a);
    else
        sgd_f64((double *)cpu_ptr(p), (const double *)cpu_ptr(g), buf ? (double *)cpu_ptr(buf) : NULL, n, a);
    return 0;
}

/* ---- cross-entropy ---- */

static inline int64_t label_at(const char *lab, tensor_dtype dt, int64_t i)
{
    switch (dt) {
    case DT_I64: return ((const int64_t *)lab)[i];
    case DT_I32: return ((const int32_t *)lab)[i];
    default: return ((const uint8_t *)lab)[i];
    }
}

/* the composed path's message: the smallest label when negative, else the largest */
static int check_labels(const char *lab, tensor_dtype dt, int64_t N, int64_t C, eng_error *err)
{
    if (N == 0)
        return 0;
    int64_t lo = label_at(lab, dt, 0), hi = lo;
    for (int64_t i = 1; i < N; i++) {
        int64_t y = label_at(lab, dt, i);
        lo = y < lo ? y : lo;
        hi = y > hi ? y : hi;
    }
    if (lo < 0 || hi >= C)
        return eng_fail(err, ERR_INDEX, "cross_entropy: label %lld out of range for %lld classes",
                        (long long)(lo < 0 ? lo : hi), (long long)C);
    return 0;
}

#define XENT(T, EXP, name)                                                                         \
    /* a row's largest logit (*mx) and the sum of exp(x - *mx), in double */                      \
    static inline double name##_sumexp(const T *xr, int64_t C, T *mx)                             \
    {                                                                                             \
        T m = xr[0];                                                                              \
        for (int64_t j = 1; j < C; j++)                                                           \
            m = xr[j] > m ? xr[j] : m;                                                            \
        double se = 0;                                                                            \
        for (int64_t j = 0; j < C; j++)                                                           \
            se += (double)EXP(xr[j] - m);                                                         \
        *mx = m;                                                                                  \
        return se;                                                                                \
    }                                                                                             \
    static void name##_fwd(T *restrict rows, const T *restrict x, const char *lab, tensor_dtype ldt,  \
                           int64_t N, int64_t C)                                                  \
    {                                                                                             \
        _Pragma("omp parallel for schedule(static) if (N * C > PAR_MIN)")                         \
        for (int64_t i = 0; i < N; i++) {                                                         \
            const T *xr = x + i * C;                                                              \
            int64_t y = label_at(lab, ldt, i);                                                    \
            T mx;                                                                                 \
            double se = name##_sumexp(xr, C, &mx);                                                \
            rows[i] = y < 0 || y >= C ? (T)NAN : (T)(log(se) + (double)mx - (double)xr[y]);       \
        }                                                                                         \
    }                                                                                             \
    static void name##_bwd(T *restrict dx, const T *restrict x, const char *lab, tensor_dtype ldt,     \
                           int64_t N, int64_t C, T gs)                                            \
    {                                                                                             \
        _Pragma("omp parallel for schedule(static) if (N * C > PAR_MIN)")                         \
        for (int64_t i = 0; i < N; i++) {                                                         \
            const T *xr = x + i * C;                                                              \
            T *dr = dx + i * C;                                                                   \
            int64_t y = label_at(lab, ldt, i);                                                    \
            T mx;                                                                                 \
            double se = name##_sumexp(xr, C, &mx);                                                \
            T inv = (T)(1.0 / se);                                                                \
            for (int64_t j = 0; j < C; j++)                                                       \
                dr[j] = (EXP(xr[j] - mx) * inv - (T)(j == y)) * gs;                               \
        }                                                                                         \
    }

XENT(float, expf, xent_f32)
XENT(double, exp, xent_f64)

static int xent_check(const tensor *logits, const tensor *labels, const tensor *out, const char *who, eng_error *err)
{
    if ((logits->dtype != DT_F32 && logits->dtype != DT_F64) || logits->ndim != 2 || !tensor_is_contiguous(logits))
        return eng_fail(err, ERR_TYPE, "%s: contiguous f32 or f64 logits [N, C] expected", who);
    if ((labels->dtype != DT_I64 && labels->dtype != DT_I32 && labels->dtype != DT_U8) || labels->ndim != 1 ||
        labels->shape[0] != logits->shape[0] || !tensor_is_contiguous(labels))
        return eng_fail(err, ERR_TYPE, "%s: contiguous integer labels [N] expected", who);
    if (out->dtype != logits->dtype || !tensor_is_contiguous(out))
        return eng_fail(err, ERR_TYPE, "%s: a contiguous output of the logits' dtype expected", who);
    return 0;
}

int cpu_cross_entropy(tensor *rows, const tensor *logits, const tensor *labels, int check, eng_error *err)
{
    if (xent_check(logits, labels, rows, "cross_entropy", err) < 0)
        return -1;
    int64_t N = logits->shape[0], C = logits->shape[1];
    const char *lab = cpu_ptr(labels);
    if (tensor_numel(rows) != N)
        return eng_fail(err, ERR_SHAPE, "cross_entropy: the row losses must be [N]");
    if (check && check_labels(lab, labels->dtype, N, C, err) < 0)
        return -1;
    if (C == 0)
        return eng_fail(err, ERR_SHAPE, "cross_entropy: no classes (C = 0)");
    if (logits->dtype == DT_F32)
        xent_f32_fwd((float *)cpu_ptr(rows), (const float *)cpu_ptr(logits), lab, labels->dtype, N, C);
    else
        xent_f64_fwd((double *)cpu_ptr(rows), (const double *)cpu_ptr(logits), lab, labels->dtype, N, C);
    return 0;
}

int cpu_cross_entropy_backward(tensor *dx, const tensor *logits, const tensor *labels, const tensor *gout,
                               double scale, eng_error *err)
{
    if (xent_check(logits, labels, dx, "cross_entropy backward", err) < 0)
        return -1;
    if (tensor_numel(dx) != tensor_numel(logits) || gout->dtype != logits->dtype || tensor_numel(gout) != 1)
        return eng_fail(err, ERR_SHAPE, "cross_entropy backward: dx [N, C] and a 0-d gradient expected");
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (N * C == 0)
        return 0;
    const char *lab = cpu_ptr(labels);
    if (logits->dtype == DT_F32) {
        float gs = *(const float *)cpu_ptr(gout) * (float)scale;
        xent_f32_bwd((float *)cpu_ptr(dx), (const float *)cpu_ptr(logits), lab, labels->dtype, N, C, gs);
    } else {
        double gs = *(const double *)cpu_ptr(gout) * scale;
        xent_f64_bwd((double *)cpu_ptr(dx), (const double *)cpu_ptr(logits), lab, labels->dtype, N, C, gs);
    }
    return 0;
}
