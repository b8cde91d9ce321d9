/* kk_reduce.cuh — reductions (sum, mean, max, min, argmax, argmin, var, std, norm) over
 * a contiguous input seen as [outer, n, inner], reducing n.
 *
 * Two shapes of kernel write one kk_red_state per (output, part):
 *   rows (inner == 1): grid (outputs, splits); the block's threads stride over their
 *     part of the row, then combine their states by a tree in shared memory; a long
 *     row is split into up to 1024 parts so a single output still fills the device;
 *   columns (inner > 1), or short rows (splits 0): one thread per output walks its
 *     elements (for columns the loads coalesce across neighbouring outputs).
 * A finishing kernel (one thread per output) merges the parts in order and stores the
 * value exactly as the CPU backend's `finish` (cpu/cpu_reduce.c) does. var and std run
 * two passes: the mean first (a sum, finished into job->mean), then the squared
 * deviations from it. Numerics as on the CPU: float sums accumulate in double, integer
 * sums in 64 bits wrapping; max/min propagate NaN; argmax/argmin give the first index
 * of the extreme (states keep the index, ties go to the smaller one).
 */
#ifndef KILN_KK_REDUCE_CUH
#define KILN_KK_REDUCE_CUH

#include "cuda/kernels/kk_common.cuh"

KK_DEV void kk_red_init(kk_red_state *s)
{
    s->sum = 0;
    s->isum = 0;
    s->best = 0;
    s->ibest = 0;
    s->idx = -1;
    s->nan = 0;
    s->pad = 0;
}

KK_DEV int kk_red_is_ext(int op)
{
    return op == OP_MAX || op == OP_MIN || op == OP_ARGMAX || op == OP_ARGMIN;
}

/* folds b into a (any order: ties and NaNs resolve by index) */
KK_DEV void kk_red_combine(int op, int isint, kk_red_state *a, const kk_red_state *b)
{
    a->sum += b->sum;
    a->isum += b->isum;
    if (!kk_red_is_ext(op) || b->idx < 0)
        return;
    int take;
    if (a->idx < 0) {
        take = 1;
    } else if (a->nan || b->nan) {
        take = b->nan && (!a->nan || b->idx < a->idx);
    } else {
        int mx = op == OP_MAX || op == OP_ARGMAX;
        int better = isint ? (mx ? b->ibest > a->ibest : b->ibest < a->ibest)
                           : (mx ? b->best > a->best : b->best < a->best);
        int equal = isint ? b->ibest == a->ibest : b->best == a->best;
        take = better || (equal && b->idx < a->idx);
    }
    if (take) {
        a->best = b->best;
        a->ibest = b->ibest;
        a->idx = b->idx;
        a->nan = b->nan;
    }
}

/* folds element v (index k) into s */
template <typename T>
KK_DEV void kk_red_add(int op, kk_red_state *s, T v, int64_t k, double mean)
{
    constexpr bool isf = std::is_floating_point<T>::value;
    switch (op) {
    case OP_SUM: case OP_MEAN:
        if constexpr (isf)
            s->sum += (double)v;
        else
            s->isum += (uint64_t)(int64_t)v;
        return;
    case OP_NORM: {
        double d = (double)v;
        s->sum += d * d;
        return;
    }
    case OP_VAR: case OP_STD: {
        double d = (double)v - mean;
        s->sum += d * d;
        return;
    }
    default: {
        kk_red_state e;
        e.sum = 0;
        e.isum = 0;
        e.best = (double)v;
        e.ibest = isf ? 0 : (int64_t)v;
        e.idx = k;
        e.nan = isf ? v != v : 0;
        e.pad = 0;
        kk_red_combine(op, !isf, s, &e);
        return;
    }
    }
}

/* The loops of one thread of kk_red_rows over its elements b + threadIdx.x, stepping by
 * blockDim.x (the warp's loads coalesce), four elements per step in flight with four
 * accumulators, and no per-element switch on the op. KIND 0 sums x, 1 sums x^2, 2 sums
 * (x - mean)^2; floats in double, integers (kind 0) in 64 bits wrapping. */
template <typename T, int KIND>
KK_DEV void kk_red_span_sum(kk_red_state *s, const T *x, int64_t b, int64_t e, double mean)
{
    const int64_t nt = blockDim.x;
    int64_t k = b + threadIdx.x;
    if constexpr (!std::is_floating_point<T>::value && KIND == 0) {
        uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (; k + 3 * nt < e; k += 4 * nt) {
            T v0 = x[k], v1 = x[k + nt], v2 = x[k + 2 * nt], v3 = x[k + 3 * nt];
            a0 += (uint64_t)(int64_t)v0;
            a1 += (uint64_t)(int64_t)v1;
            a2 += (uint64_t)(int64_t)v2;
            a3 += (uint64_t)(int64_t)v3;
        }
        for (; k < e; k += nt)
            a0 += (uint64_t)(int64_t)x[k];
        s->isum = a0 + a1 + a2 + a3;
    } else {
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#define KK_TERM(v) (KIND == 0 ? (double)(v) : KIND == 1 ? (double)(v) * (double)(v) \
                                : ((double)(v) - mean) * ((double)(v) - mean))
        for (; k + 3 * nt < e; k += 4 * nt) {
            T v0 = x[k], v1 = x[k + nt], v2 = x[k + 2 * nt], v3 = x[k + 3 * nt];
            a0 += KK_TERM(v0);
            a1 += KK_TERM(v1);
            a2 += KK_TERM(v2);
            a3 += KK_TERM(v3);
        }
        for (; k < e; k += nt)
            a0 += KK_TERM(x[k]);
#undef KK_TERM
        s->sum = (a0 + a1) + (a2 + a3);
    }
}

/* max (MX 1) or min (MX 0) of a thread's elements, as kk_red_span_sum walks them: the
 * value and whether a NaN was seen; the index recorded is the thread's first element
 * (the value alone is the result, so ties need no index) */
template <typename T, int MX>
KK_DEV void kk_red_span_ext(kk_red_state *s, const T *x, int64_t b, int64_t e)
{
    constexpr bool isf = std::is_floating_point<T>::value;
    const int64_t nt = blockDim.x;
    int64_t k = b + threadIdx.x;
    if (k >= e)
        return;
    T best = x[k];
    int nan = isf ? best != best : 0;
#define KK_PICK(v) (best = MX ? ((v) > best ? (v) : best) : ((v) < best ? (v) : best), nan |= isf ? (v) != (v) : 0)
    s->idx = k;
    k += nt;
    for (; k + 3 * nt < e; k += 4 * nt) {
        T v0 = x[k], v1 = x[k + nt], v2 = x[k + 2 * nt], v3 = x[k + 3 * nt];
        KK_PICK(v0);
        KK_PICK(v1);
        KK_PICK(v2);
        KK_PICK(v3);
    }
    for (; k < e; k += nt) {
        T v = x[k];
        KK_PICK(v);
    }
#undef KK_PICK
    s->best = (double)best;
    s->ibest = isf ? 0 : (int64_t)best;
    s->nan = nan;
}

template <typename T>
__global__ void kk_red_rows(kk_reduce_job j, int op)
{
    __shared__ kk_red_state sm[KK_BLOCK];
    int64_t o = blockIdx.x, part = blockIdx.y;
    int64_t b = j.n * part / j.splits, e = j.n * (part + 1) / j.splits;
    const T *x = (const T *)j.x + o * j.n;
    double mean = j.mean && (op == OP_VAR || op == OP_STD) ? j.mean[o] : 0;
    kk_red_state s;
    kk_red_init(&s);
    switch (op) {
    case OP_SUM: case OP_MEAN: kk_red_span_sum<T, 0>(&s, x, b, e, mean); break;
    case OP_NORM: kk_red_span_sum<T, 1>(&s, x, b, e, mean); break;
    case OP_VAR: case OP_STD: kk_red_span_sum<T, 2>(&s, x, b, e, mean); break;
    case OP_MAX: kk_red_span_ext<T, 1>(&s, x, b, e); break;
    case OP_MIN: kk_red_span_ext<T, 0>(&s, x, b, e); break;
    default: /* argmax, argmin: the index of each candidate matters */
        for (int64_t k = b + threadIdx.x; k < e; k += blockDim.x)
            kk_red_add<T>(op, &s, x[k], k, mean);
    }
    unsigned t = threadIdx.x;
    sm[t] = s;
    __syncthreads();
    for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
        if (t < h)
            kk_red_combine(op, !std::is_floating_point<T>::value, &sm[t], &sm[t + h]);
        __syncthreads();
    }
    if (t == 0)
        ((kk_red_state *)j.partial)[o * j.splits + part] = sm[0];
}

template <typename T>
__global__ void kk_red_cols(kk_reduce_job j, int op)
{
    int64_t nout = j.outer * j.inner;
    for (int64_t i = kk_gtid(); i < nout; i += kk_gstride()) {
        int64_t o = i / j.inner, c = i - o * j.inner;
        const T *x = (const T *)j.x + o * j.n * j.inner + c;
        double mean = j.mean && (op == OP_VAR || op == OP_STD) ? j.mean[i] : 0;
        kk_red_state s;
        kk_red_init(&s);
        for (int64_t k = 0; k < j.n; k++)
            kk_red_add<T>(op, &s, x[k * j.inner], k, mean);
        ((kk_red_state *)j.partial)[i] = s;
    }
}

/* stores output i from its merged state s as the CPU backend's `finish` does; to_mean:
 * writes sum / n into j.mean instead */
KK_DEV void kk_red_store(const kk_reduce_job &j, int op, int to_mean, int isint, int64_t i, kk_red_state s)
{
    double n = (double)j.n;
    if (isint && (op == OP_SUM || op == OP_MEAN))
        s.sum = (double)(int64_t)s.isum; /* sums of integers (norm, var, std sum in double) */
    if (to_mean) {
        j.mean[i] = s.sum / n;
        return;
    }
    char *o = j.out;
    int od = j.odt;
    int es = od == KK_F64 || od == KK_I64 ? 8 : od == KK_F32 || od == KK_I32 ? 4 : od == KK_F16 || od == KK_BF16 ? 2 : 1;
    switch (op) {
    case OP_SUM:
        if (isint && od == KK_I64)
            ((int64_t *)o)[i] = (int64_t)s.isum;
        else
            kk_store(od, o + i * es, s.sum);
        break;
    case OP_MEAN: case OP_VAR: kk_store(od, o + i * es, s.sum / n); break;
    case OP_STD: kk_store(od, o + i * es, sqrt(s.sum / n)); break;
    case OP_NORM: kk_store(od, o + i * es, sqrt(s.sum)); break;
    case OP_ARGMAX: case OP_ARGMIN: ((int64_t *)o)[i] = s.idx; break;
    default:
        if (isint && od == KK_I64)
            ((int64_t *)o)[i] = s.ibest;
        else
            kk_store(od, o + i * es, s.nan ? (double)NAN : s.best);
        break;
    }
}

KK_DEV int kk_red_isint(int dt)
{
    return dt != KK_F32 && dt != KK_F64 && dt != KK_F16 && dt != KK_BF16;
}

/* merges the parts of each output, one thread per output, in order */
__global__ void kk_red_finish(kk_reduce_job j, int op, int to_mean)
{
    int64_t nout = j.outer * j.inner;
    int isint = kk_red_isint(j.dt);
    int splits = j.inner == 1 && j.splits > 0 ? j.splits : 1;
    for (int64_t i = kk_gtid(); i < nout; i += kk_gstride()) {
        const kk_red_state *p = (const kk_red_state *)j.partial + i * splits;
        kk_red_state s = p[0];
        for (int k = 1; k < splits; k++)
            kk_red_combine(op, isint, &s, &p[k]);
        kk_red_store(j, op, to_mean, isint, i, s);
    }
}

/* merges the parts of output blockIdx.x with a block: many parts (a long row split over
 * the device) are read in parallel and combined by a tree, not by one thread's chain of
 * dependent loads (1024 of them cost more than reading 1 GiB) */
__global__ void kk_red_finish_wide(kk_reduce_job j, int op, int to_mean)
{
    __shared__ kk_red_state sm[KK_BLOCK];
    int isint = kk_red_isint(j.dt);
    int64_t i = blockIdx.x;
    const kk_red_state *p = (const kk_red_state *)j.partial + i * j.splits;
    unsigned t = threadIdx.x;
    kk_red_state s;
    kk_red_init(&s);
    for (int k = (int)t; k < j.splits; k += blockDim.x)
        kk_red_combine(op, isint, &s, &p[k]);
    sm[t] = s;
    __syncthreads();
    for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
        if (t < h)
            kk_red_combine(op, isint, &sm[t], &sm[t + h]);
        __syncthreads();
    }
    if (t == 0)
        kk_red_store(j, op, to_mean, isint, i, sm[0]);
}

template <typename T>
static int kk_reduce_pass(kk_ctx *c, const kk_reduce_job *j, int op, int to_mean)
{
    int rc;
    int64_t nout = j->outer * j->inner;
    if (j->inner == 1 && j->splits > 0) {
        auto kfn = kk_red_rows<T>;
        rc = KK_LAUNCH(c, 1, kfn, dim3((unsigned)j->outer, (unsigned)j->splits), KK_BLOCK, 0, *j, op);
    } else {
        auto kfn = kk_red_cols<T>;
        rc = KK_LAUNCH(c, 0, kfn, kk_blocks(c, nout, 1), KK_BLOCK, 0, *j, op);
    }
    if (rc)
        return rc;
    if (j->inner == 1 && j->splits > 32)
        return KK_LAUNCH(c, 1, kk_red_finish_wide, dim3((unsigned)nout), KK_BLOCK, 0, *j, op, to_mean);
    return KK_LAUNCH(c, 0, kk_red_finish, kk_blocks(c, nout, 1), KK_BLOCK, 0, *j, op, to_mean);
}

template <typename T>
static int kk_reduce_typed(kk_ctx *c, const kk_reduce_job *j)
{
    if (j->op == OP_VAR || j->op == OP_STD) {
        int rc = kk_reduce_pass<T>(c, j, OP_SUM, 1);
        if (rc)
            return rc;
    }
    return kk_reduce_pass<T>(c, j, j->op, 0);
}

/* outer * inner >= 1 and n >= 1 here (the dispatcher handles empty cases); outer fits
 * a grid's x dimension (2^31 - 1) and splits <= 1024 */
static int KK_NAME(reduce)(kk_ctx *c, const kk_reduce_job *j)
{
    switch (j->dt) {
    case KK_F32: return kk_reduce_typed<float>(c, j);
    case KK_F64: return kk_reduce_typed<double>(c, j);
    case KK_I32: return kk_reduce_typed<int32_t>(c, j);
    case KK_I64: return kk_reduce_typed<int64_t>(c, j);
    case KK_U8: case KK_BOOL: return kk_reduce_typed<uint8_t>(c, j);
    default: return -2; /* the dispatcher refuses other dtypes first */
    }
}

#endif
