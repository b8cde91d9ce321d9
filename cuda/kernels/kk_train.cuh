/* kk_train.cuh — the fused training kernels (engine/tensor/backend.h: adamw_step, sgd_step,
 * cross_entropy, cross_entropy_backward).
 *
 * The optimiser steps are one grid-stride kernel per parameter, one thread per element,
 * doing in registers the chain of tensor ops that engine/train/optim.c's op-by-op path runs
 * (about ten launches and five temporaries per parameter on this backend); each step
 * is rounded to the parameter's dtype as that path rounds it (the scalars cast to it
 * first), so only contraction into FMAs by nvcc separates the two.
 *
 * Cross-entropy is a warp per row (KK_BLOCK / 32 rows per block, grid-stride over the
 * rows): the row's max by shuffles, the sum of exp(x - max) in double, then lane 0
 * writes the row's loss (forward), or every lane writes its columns of (softmax -
 * onehot) * gout * scale (backward; gout read from device memory, so the host never
 * waits). A bad label (outside [0, C)) gives the row NaN, and with j.check a store of 1
 * into the status word, which the dispatcher reads only when asked to check.
 */
#ifndef KILN_KK_TRAIN_CUH
#define KILN_KK_TRAIN_CUH

#include "cuda/kernels/kk_common.cuh"

template <typename T>
__global__ void kk_adamw_k(kk_step_job j)
{
    const T b1 = (T)j.beta1, c1 = (T)(1 - j.beta1), b2 = (T)j.beta2, c2 = (T)(1 - j.beta2);
    const T bc2 = (T)j.bc2, eps = (T)j.eps, wdf = (T)j.wdf, step = (T)(j.lr / j.bc1);
    T *p = (T *)j.p, *m = (T *)j.m, *v = (T *)j.v;
    const T *g = (const T *)j.g;
    for (int64_t i = kk_gtid(); i < j.n; i += kk_gstride()) {
        T gi = g[i];
        T mi = m[i] * b1;
        mi = mi + gi * c1;
        T g2 = gi * gi;
        T vi = v[i] * b2;
        vi = vi + g2 * c2;
        m[i] = mi;
        v[i] = vi;
        T den = kk_sqrt(vi / bc2);
        den = den + eps;
        T upd = mi / den;
        T pi = p[i] * wdf;
        p[i] = pi - upd * step;
    }
}

template <typename T>
__global__ void kk_sgd_k(kk_step_job j)
{
    const T mom = (T)j.beta1, wdf = (T)j.wdf, lr = (T)j.lr;
    T *p = (T *)j.p, *buf = (T *)j.m;
    const T *g = (const T *)j.g;
    for (int64_t i = kk_gtid(); i < j.n; i += kk_gstride()) {
        T gi = g[i], d = gi;
        if (buf) {
            T b = buf[i] * mom;
            b = b + gi;
            buf[i] = b;
            if (j.nesterov) {
                d = b * mom;
                d = d + gi;
            } else {
                d = b;
            }
        }
        T pi = p[i] * wdf;
        p[i] = pi - d * lr;
    }
}

static int KK_NAME(adamw_step)(kk_ctx *c, const kk_step_job *j)
{
    if (j->n == 0)
        return 0;
    if (j->dt == KK_F64) {
        auto kfn = kk_adamw_k<double>;
        return KK_LAUNCH(c, 0, kfn, kk_blocks(c, j->n, 1), KK_BLOCK, 0, *j);
    }
    auto kfn = kk_adamw_k<float>;
    return KK_LAUNCH(c, 0, kfn, kk_blocks(c, j->n, 1), KK_BLOCK, 0, *j);
}

static int KK_NAME(sgd_step)(kk_ctx *c, const kk_step_job *j)
{
    if (j->n == 0)
        return 0;
    if (j->dt == KK_F64) {
        auto kfn = kk_sgd_k<double>;
        return KK_LAUNCH(c, 0, kfn, kk_blocks(c, j->n, 1), KK_BLOCK, 0, *j);
    }
    auto kfn = kk_sgd_k<float>;
    return KK_LAUNCH(c, 0, kfn, kk_blocks(c, j->n, 1), KK_BLOCK, 0, *j);
}

/* ---- cross-entropy: a warp per row ---- */

KK_DEV int64_t kk_label_at(const char *lab, int ldt, int64_t i)
{
    switch (ldt) {
    case KK_I64: return ((const int64_t *)lab)[i];
    case KK_I32: return ((const int32_t *)lab)[i];
    default: return ((const uint8_t *)lab)[i];
    }
}

template <typename T>
KK_DEV T kk_warp_max(T v)
{
    for (int o = 16; o > 0; o /= 2) {
        T w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}

KK_DEV double kk_warp_sum(double v)
{
    for (int o = 16; o > 0; o /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* the row's max and sum of exp(x - max), in every lane */
template <typename T>
KK_DEV void kk_xent_row(const T *x, int64_t C, int lane, T *mx_out, double *se_out)
{
    T mx = x[0];
    for (int64_t k = lane; k < C; k += 32)
        mx = x[k] > mx ? x[k] : mx;
    mx = kk_warp_max(mx);
    double se = 0;
    for (int64_t k = lane; k < C; k += 32)
        se += (double)kk_exp(x[k] - mx);
    *mx_out = mx;
    *se_out = kk_warp_sum(se);
}

template <typename T>
__global__ void kk_xent_fwd_k(kk_xent_job j)
{
    int lane = (int)(threadIdx.x & 31);
    int64_t wpb = blockDim.x / 32, r0 = (int64_t)blockIdx.x * wpb + threadIdx.x / 32;
    for (int64_t r = r0; r < j.N; r += (int64_t)gridDim.x * wpb) {
        const T *x = (const T *)j.x + r * j.C;
        T mx;
        double se;
        kk_xent_row<T>(x, j.C, lane, &mx, &se);
        if (lane == 0) {
            int64_t y = kk_label_at(j.labels, j.ldt, r);
            int bad = y < 0 || y >= j.C;
            if (bad && j.check)
                j.status[0] = 1;
            ((T *)j.out)[r] = bad ? (T)NAN : (T)(log(se) + (double)mx - (double)x[y]);
        }
    }
}

template <typename T>
__global__ void kk_xent_bwd_k(kk_xent_job j)
{
    int lane = (int)(threadIdx.x & 31);
    int64_t wpb = blockDim.x / 32, r0 = (int64_t)blockIdx.x * wpb + threadIdx.x / 32;
    T gs = *(const T *)j.gout * (T)j.scale;
    for (int64_t r = r0; r < j.N; r += (int64_t)gridDim.x * wpb) {
        const T *x = (const T *)j.x + r * j.C;
        T *dx = (T *)j.out + r * j.C;
        T mx;
        double se;
        kk_xent_row<T>(x, j.C, lane, &mx, &se);
        int64_t y = kk_label_at(j.labels, j.ldt, r);
        T inv = (T)(1.0 / se);
        for (int64_t k = lane; k < j.C; k += 32)
            dx[k] = (kk_exp(x[k] - mx) * inv - (T)(k == y)) * gs;
    }
}

/* blocks for N rows, KK_BLOCK / 32 per block */
static inline unsigned kk_xent_blocks(const kk_ctx *c, int64_t N)
{
    int64_t wpb = KK_BLOCK / 32, b = (N + wpb - 1) / wpb;
    if (b > c->max_blocks)
        b = c->max_blocks;
    return (unsigned)(b < 1 ? 1 : b);
}

/* N >= 1 and C >= 1 here (the dispatcher handles empty cases) */
static int KK_NAME(xent)(kk_ctx *c, const kk_xent_job *j)
{
    if (j->dt == KK_F64) {
        auto kfn = kk_xent_fwd_k<double>;
        return KK_LAUNCH(c, 1, kfn, kk_xent_blocks(c, j->N), KK_BLOCK, 0, *j);
    }
    auto kfn = kk_xent_fwd_k<float>;
    return KK_LAUNCH(c, 1, kfn, kk_xent_blocks(c, j->N), KK_BLOCK, 0, *j);
}

static int KK_NAME(xent_backward)(kk_ctx *c, const kk_xent_job *j)
{
    if (j->dt == KK_F64) {
        auto kfn = kk_xent_bwd_k<double>;
        return KK_LAUNCH(c, 1, kfn, kk_xent_blocks(c, j->N), KK_BLOCK, 0, *j);
    }
    auto kfn = kk_xent_bwd_k<float>;
    return KK_LAUNCH(c, 1, kfn, kk_xent_blocks(c, j->N), KK_BLOCK, 0, *j);
}

#endif
