/* kk_elementwise.cuh — elementwise built-in kernels: unary and binary ops of
 * engine/tensor/ops.def, copy with cast, fill, arange, where, gather, and the Philox random
 * fills. Included once per compilation (see kk_api.h); the launchers are at the end.
 *
 * Every elementwise op has two kernels: a contiguous one (output dense, each input dense
 * or a broadcast scalar, with 4-element vector loads and stores when every dense pointer
 * is aligned to the vector) and a strided one (the merged kk_iter, one element per
 * thread-iteration, offsets from the linear index). Both are grid-stride loops, so any
 * size runs on a bounded grid.
 *
 * The typed ops (f32, f64, i32, i64) reproduce the CPU backend's typed kernels
 * (cpu/cpu_elementwise.c): integer arithmetic wraps, integer / and % truncate as C and
 * flag a zero divisor, MIN / -1 wraps, integer pow squares. Every other dtype (bool, u8,
 * f16, bf16, or an output dtype that differs) goes through double with the ops.def
 * expression, as the CPU's generic path does.
 */
#ifndef KILN_KK_ELEMENTWISE_CUH
#define KILN_KK_ELEMENTWISE_CUH

#include "cuda/kernels/kk_common.cuh"

#define PHILOX_DEVICE KK_DEV_PHILOX
#ifdef __CUDACC__
#define KK_DEV_PHILOX __device__
#else
#define KK_DEV_PHILOX
#endif
#include "numeric/philox.h"

/* ---- the op functors: one specialisation per row of engine/tensor/ops.def, from the row's
 * expressions (FEXPR for floats, IEXPR for integers) ---- */

template <int OP, typename T>
struct kk_un; /* every unary row defines it below */

#define KK_IEXPR_FLOAT(e) x /* never instantiated: FLOAT rows have no integer kernels */
#define KK_IEXPR_BOOL(e) x
#define KK_IEXPR_KEEP(e) (T)(e)
#define KK_IEXPR_ARITH(e) (T)(e)
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc)                          \
    template <typename T>                                                          \
    struct kk_un<OP_##ID, T> {                                                  \
        T p0, p1; /* the op's parameters (clamp's bounds) */                       \
        KK_DEV T operator()(T x) const                                             \
        {                                                                          \
            if constexpr (std::is_floating_point<T>::value) {                      \
                return (T)(FE);                                                    \
            } else {                                                               \
                typedef typename std::make_unsigned<T>::type U;                    \
                (void)sizeof(U);                                                   \
                return KK_IEXPR_##DT(IE);                                          \
            }                                                                      \
        }                                                                          \
    };
#include "engine/tensor/ops.def"

template <int OP>
struct kk_is_compare {
    static constexpr bool value = false;
};

template <int OP, typename T>
struct kk_bin; /* every binary and comparison row defines it below */

#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc)                    \
    template <typename T>                                                          \
    struct kk_bin<OP_##ID, T> {                                                 \
        typedef T out_t;                                                           \
        int *zerodiv; /* set to 1 by an integer division by zero */                \
        KK_DEV T operator()(T a, T b) const                                        \
        {                                                                          \
            if constexpr (std::is_floating_point<T>::value) {                      \
                return (T)(FE);                                                    \
            } else {                                                               \
                typedef typename std::make_unsigned<T>::type U;                    \
                (void)sizeof(U);                                                   \
                return (T)(IE);                                                    \
            }                                                                      \
        }                                                                          \
    };
#define OP_COMPARE(ID, name, API, E, doc)                                         \
    template <>                                                                    \
    struct kk_is_compare<OP_##ID> {                                             \
        static constexpr bool value = true;                                        \
    };                                                                             \
    template <typename T>                                                          \
    struct kk_bin<OP_##ID, T> {                                                 \
        typedef uint8_t out_t;                                                     \
        int *zerodiv; /* unused */                                                 \
        KK_DEV uint8_t operator()(T a, T b) const { return (uint8_t)(E); }        \
    };
#include "engine/tensor/ops.def"

static inline int kk_op_is_compare(int op)
{
    switch (op) {
#define OP_COMPARE(ID, name, API, E, doc) \
    case OP_##ID: return 1;
#include "engine/tensor/ops.def"
    default: return 0;
    }
}

/* the ops.def expressions in double: the generic path (engine/tensor/op_eval.h) */
KK_DEV double kk_unary_double(int op, double x, double p0, double p1)
{
    return om_unary_double(op, x, p0, p1);
}

KK_DEV double kk_binary_double(int op, double a, double b)
{
    return om_binary_double(op, a, b);
}

/* ---- kernels ---- */

template <typename T, int V>
struct alignas(sizeof(T) * V) kk_vec {
    T v[V];
};

/* unary, contiguous: out[i] = f(x[i]); vec: 4-wide loads/stores (aligned, checked by the launcher) */
template <typename TO, typename TI, typename F>
__global__ void kk_un_contig(TO *out, const TI *x, int64_t n, int vec, F f)
{
    int64_t t = kk_gtid(), step = kk_gstride(), i0 = 0;
    if (vec) {
        int64_t nv = n / 4;
        for (int64_t i = t; i < nv; i += step) {
            kk_vec<TI, 4> a = ((const kk_vec<TI, 4> *)x)[i];
            kk_vec<TO, 4> o;
    KK_UNROLL
            for (int k = 0; k < 4; k++)
                o.v[k] = f(a.v[k]);
            ((kk_vec<TO, 4> *)out)[i] = o;
        }
        i0 = nv * 4;
    }
    for (int64_t i = i0 + t; i < n; i += step)
        out[i] = f(x[i]);
}

template <typename TO, typename TI, typename F>
__global__ void kk_un_strided(kk_iter it, F f)
{
    for (int64_t i = kk_gtid(); i < it.numel; i += kk_gstride()) {
        int64_t off[2];
        kk_offsets<2>(it, i, off);
        *(TO *)(it.base[0] + off[0]) = f(*(const TI *)(it.base[1] + off[1]));
    }
}

/* binary, contiguous: each input dense or a scalar (sa / sb: 1 dense, 0 scalar) */
template <typename TO, typename TI, typename F>
__global__ void kk_bin_contig(TO *out, const TI *a, const TI *b, int sa, int sb, int64_t n, int vec, F f)
{
    int64_t t = kk_gtid(), step = kk_gstride(), i0 = 0;
    if (vec) { /* both dense */
        int64_t nv = n / 4;
        for (int64_t i = t; i < nv; i += step) {
            kk_vec<TI, 4> va = ((const kk_vec<TI, 4> *)a)[i], vb = ((const kk_vec<TI, 4> *)b)[i];
            kk_vec<TO, 4> o;
    KK_UNROLL
            for (int k = 0; k < 4; k++)
                o.v[k] = f(va.v[k], vb.v[k]);
            ((kk_vec<TO, 4> *)out)[i] = o;
        }
        i0 = nv * 4;
    }
    for (int64_t i = i0 + t; i < n; i += step)
        out[i] = f(a[sa ? i : 0], b[sb ? i : 0]);
}

template <typename TO, typename TI, typename F>
__global__ void kk_bin_strided(kk_iter it, F f)
{
    for (int64_t i = kk_gtid(); i < it.numel; i += kk_gstride()) {
        int64_t off[3];
        kk_offsets<3>(it, i, off);
        *(TO *)(it.base[0] + off[0]) = f(*(const TI *)(it.base[1] + off[1]), *(const TI *)(it.base[2] + off[2]));
    }
}

/* generic: values through double, any dtypes */
__global__ void kk_un_generic(kk_iter it, int op, int dout, int din, double p0, double p1)
{
    for (int64_t i = kk_gtid(); i < it.numel; i += kk_gstride()) {
        int64_t off[2];
        kk_offsets<2>(it, i, off);
        double x = kk_load(din, it.base[1] + off[1]);
        kk_store(dout, it.base[0] + off[0], kk_unary_double(op, x, p0, p1));
    }
}

__global__ void kk_bin_generic(kk_iter it, int op, int dout, int din, int *status)
{
    int intdiv = din != KK_F16 && din != KK_BF16 && din != KK_F32 && din != KK_F64 &&
                 (op == OP_DIV || op == OP_MOD);
    for (int64_t i = kk_gtid(); i < it.numel; i += kk_gstride()) {
        int64_t off[3];
        kk_offsets<3>(it, i, off);
        double a = kk_load(din, it.base[1] + off[1]), b = kk_load(din, it.base[2] + off[2]), r;
        if (intdiv && b == 0) {
            *status = 1;
            r = 0;
        } else if (intdiv && op == OP_DIV) {
            r = trunc(a / b);
        } else {
            r = kk_binary_double(op, a, b);
        }
        kk_store(dout, it.base[0] + off[0], r);
    }
}

__global__ void kk_copy_generic(kk_iter it, int ddst, int dsrc)
{
    for (int64_t i = kk_gtid(); i < it.numel; i += kk_gstride()) {
        int64_t off[2];
        kk_offsets<2>(it, i, off);
        kk_store(ddst, it.base[0] + off[0], kk_load(dsrc, it.base[1] + off[1]));
    }
}

/* identity functor for same-dtype copies */
template <typename T>
struct kk_ident {
    KK_DEV T operator()(T x) const { return x; }
};

/* fill: operand 0 of it, with an esize-byte pattern */
template <typename T>
__global__ void kk_fill_kernel(kk_iter it, T v)
{
    if (it.contig) {
        T *o = (T *)it.base[0];
        for (int64_t i = kk_gtid(); i < it.numel; i += kk_gstride())
            o[i] = v;
        return;
    }
    for (int64_t i = kk_gtid(); i < it.numel; i += kk_gstride()) {
        int64_t off[1];
        kk_offsets<1>(it, i, off);
        *(T *)(it.base[0] + off[0]) = v;
    }
}

__global__ void kk_arange_kernel(int dt, char *dst, int64_t n, double start, double step, int exact_i64)
{
    int64_t a = (int64_t)start, b = (int64_t)step;
    for (int64_t i = kk_gtid(); i < n; i += kk_gstride()) {
        if (dt == KK_F32)
            ((float *)dst)[i] = (float)(start + (double)i * step);
        else if (exact_i64)
            ((int64_t *)dst)[i] = a + i * b;
        else
            kk_store(dt, dst + i * (dt == KK_F64 || dt == KK_I64 ? 8 : dt == KK_I32 ? 4 : dt >= KK_F16 && dt <= KK_BF16 ? 2 : 1),
                     start + (double)i * step);
    }
}

template <typename T>
__global__ void kk_where_kernel(kk_iter it)
{
    for (int64_t i = kk_gtid(); i < it.numel; i += kk_gstride()) {
        int64_t off[4];
        kk_offsets<4>(it, i, off);
        *(T *)(it.base[0] + off[0]) = *(const uint8_t *)(it.base[1] + off[1]) ? *(const T *)(it.base[2] + off[2])
                                                                              : *(const T *)(it.base[3] + off[3]);
    }
}

__global__ void kk_random_kernel(int kind, int dt, char *dst, int64_t n, uint64_t seed, uint64_t offset,
                                 int64_t lo, uint64_t range)
{
    const double two_pi = 6.283185307179586476925286766559;
    int es = dt == KK_F64 || dt == KK_I64 ? 8 : dt == KK_F32 || dt == KK_I32 ? 4 : dt == KK_F16 || dt == KK_BF16 ? 2 : 1;
    for (int64_t i = kk_gtid(); i < n; i += kk_gstride()) {
        uint32_t r[4];
        philox_block(seed, offset + (uint64_t)i, r);
        if (kind == 0) {
            float u = philox_uniform(r);
            if (dt == KK_F32)
                ((float *)dst)[i] = u;
            else
                kk_store(dt, dst + i * es, u);
        } else if (kind == 1) {
            double u1, u2;
            philox_boxmuller_uniforms(r, &u1, &u2);
            float z = (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
            if (dt == KK_F32)
                ((float *)dst)[i] = z;
            else
                kk_store(dt, dst + i * es, z);
        } else {
            int64_t v = philox_int(r, lo, range);
            if (dt == KK_I64)
                ((int64_t *)dst)[i] = v;
            else
                kk_store(dt, dst + i * es, (double)v);
        }
    }
}

__global__ void kk_gather_check_kernel(const int64_t *idx, int64_t n, int64_t rows, int *status)
{
    for (int64_t i = kk_gtid(); i < n; i += kk_gstride()) {
        int64_t v = idx[i];
        if (v < -rows || v >= rows)
            *status = 1;
    }
}

template <typename T>
__global__ void kk_gather_kernel(kk_gather_job j)
{
    int64_t total = j.nidx * j.rowel;
    for (int64_t e = kk_gtid(); e < total; e += kk_gstride()) {
        int64_t k = e / j.rowel, r = e - k * j.rowel;
        int64_t v = j.idx[k];
        if (v < 0)
            v += j.rows;
        int64_t off = v * j.row_stride;
        for (int d = j.ndim - 1; d >= 0; d--) {
            int64_t s = j.shape[d];
            int64_t q = r / s;
            off += (r - q * s) * j.stride[d];
            r = q;
        }
        ((T *)j.out)[e] = *(const T *)(j.x + off);
    }
}

/* ---- launchers ---- */

static inline int kk_aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

template <typename TO, typename TI, typename F>
static int kk_launch_unary(kk_ctx *c, const kk_iter *it, F f)
{
    if (it->numel == 0)
        return 0;
    if (it->contig && it->stride[1][0] == (int64_t)sizeof(TI)) {
        TO *o = (TO *)it->base[0];
        const TI *x = (const TI *)it->base[1];
        int vec = kk_aligned(o, sizeof(TO) * 4) && kk_aligned(x, sizeof(TI) * 4);
        auto kfn = kk_un_contig<TO, TI, F>;
        return KK_LAUNCH(c, 0, kfn, kk_blocks(c, it->numel, vec ? 4 : 1), KK_BLOCK, 0, o, x, it->numel, vec, f);
    }
    auto kfn = kk_un_strided<TO, TI, F>;
    return KK_LAUNCH(c, 0, kfn, kk_blocks(c, it->numel, 1), KK_BLOCK, 0, *it, f);
}

template <typename TO, typename TI, typename F>
static int kk_launch_binary(kk_ctx *c, const kk_iter *it, F f)
{
    if (it->numel == 0)
        return 0;
    if (it->contig) {
        TO *o = (TO *)it->base[0];
        const TI *a = (const TI *)it->base[1], *b = (const TI *)it->base[2];
        int sa = it->stride[1][0] != 0, sb = it->stride[2][0] != 0;
        int vec = sa && sb && kk_aligned(o, sizeof(TO) * 4) && kk_aligned(a, sizeof(TI) * 4) &&
                  kk_aligned(b, sizeof(TI) * 4);
        auto kfn = kk_bin_contig<TO, TI, F>;
        return KK_LAUNCH(c, 0, kfn, kk_blocks(c, it->numel, vec ? 4 : 1), KK_BLOCK, 0, o, a, b, sa, sb, it->numel,
                         vec, f);
    }
    auto kfn = kk_bin_strided<TO, TI, F>;
    return KK_LAUNCH(c, 0, kfn, kk_blocks(c, it->numel, 1), KK_BLOCK, 0, *it, f);
}

/* the typed kernels of a row, by its dtype rule: floats for every rule but BOOL (its
 * result dtype differs: the generic path), integers for KEEP and ARITH */
#define KK_TYPED_FLOAT(T) std::is_floating_point<T>::value
#define KK_TYPED_KEEP(T) true
#define KK_TYPED_ARITH(T) true
#define KK_TYPED_BOOL(T) false

template <typename T>
static int kk_unary_typed(kk_ctx *c, int op, const kk_iter *it, double p0, double p1, int *handled)
{
    *handled = 1;
    switch (op) {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc)                          \
    case OP_##ID:                                                               \
        if constexpr (KK_TYPED_##DT(T))                                            \
            return kk_launch_unary<T, T>(c, it, kk_un<OP_##ID, T>{OM_PARAM(T, p0), OM_PARAM(T, p1)}); \
        break;
#include "engine/tensor/ops.def"
    default: break;
    }
    *handled = 0;
    return 0;
}

template <typename T>
static int kk_binary_typed(kk_ctx *c, int op, int dout, const kk_iter *it, int *handled)
{
    *handled = 1;
    switch (op) {
#define KK_BIN(ID)                                                                                         \
    case OP_##ID:                                                                                       \
        if (dout != (kk_is_compare<OP_##ID>::value ? KK_BOOL : dout))                                   \
            break;                                                                                         \
        return kk_launch_binary<typename kk_bin<OP_##ID, T>::out_t, T>(c, it, kk_bin<OP_##ID, T>{c->status});
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) KK_BIN(ID)
#define OP_COMPARE(ID, name, API, E, doc) KK_BIN(ID)
#include "engine/tensor/ops.def"
#undef KK_BIN
    default: break;
    }
    *handled = 0;
    return 0;
}

static int KK_NAME(unary)(kk_ctx *c, int op, int dout, int din, const kk_iter *it, double p0, double p1)
{
    if (it->numel == 0)
        return 0;
    int handled = 0, rc = 0;
    if (dout == din) {
        switch (din) {
        case KK_F32: rc = kk_unary_typed<float>(c, op, it, p0, p1, &handled); break;
        case KK_F64: rc = kk_unary_typed<double>(c, op, it, p0, p1, &handled); break;
        case KK_I32: rc = kk_unary_typed<int32_t>(c, op, it, p0, p1, &handled); break;
        case KK_I64: rc = kk_unary_typed<int64_t>(c, op, it, p0, p1, &handled); break;
        default: break;
        }
    }
    if (handled)
        return rc;
    return KK_LAUNCH(c, 0, kk_un_generic, kk_blocks(c, it->numel, 1), KK_BLOCK, 0, *it, op, dout, din, p0, p1);
}

static int KK_NAME(binary)(kk_ctx *c, int op, int dout, int din, const kk_iter *it)
{
    if (it->numel == 0)
        return 0;
    int handled = 0, rc = 0;
    int cmp = kk_op_is_compare(op);
    if (cmp ? dout == KK_BOOL : dout == din) {
        switch (din) {
        case KK_F32: rc = kk_binary_typed<float>(c, op, dout, it, &handled); break;
        case KK_F64: rc = kk_binary_typed<double>(c, op, dout, it, &handled); break;
        case KK_I32: rc = kk_binary_typed<int32_t>(c, op, dout, it, &handled); break;
        case KK_I64: rc = kk_binary_typed<int64_t>(c, op, dout, it, &handled); break;
        default: break;
        }
    }
    if (handled)
        return rc;
    return KK_LAUNCH(c, 0, kk_bin_generic, kk_blocks(c, it->numel, 1), KK_BLOCK, 0, *it, op, dout, din, c->status);
}

static int KK_NAME(copy)(kk_ctx *c, int ddst, int dsrc, const kk_iter *it)
{
    if (it->numel == 0)
        return 0;
    if (ddst == dsrc || (ddst == KK_U8 && dsrc == KK_BOOL)) {
        size_t es = ddst == KK_F64 || ddst == KK_I64 ? 8 : ddst == KK_F32 || ddst == KK_I32 ? 4
                  : ddst == KK_F16 || ddst == KK_BF16 ? 2 : 1;
        switch (es) {
        case 1: return kk_launch_unary<uint8_t, uint8_t>(c, it, kk_ident<uint8_t>());
        case 2: return kk_launch_unary<uint16_t, uint16_t>(c, it, kk_ident<uint16_t>());
        case 4: return kk_launch_unary<uint32_t, uint32_t>(c, it, kk_ident<uint32_t>());
        default: return kk_launch_unary<uint64_t, uint64_t>(c, it, kk_ident<uint64_t>());
        }
    }
    return KK_LAUNCH(c, 0, kk_copy_generic, kk_blocks(c, it->numel, 1), KK_BLOCK, 0, *it, ddst, dsrc);
}

static int KK_NAME(fill)(kk_ctx *c, int esize, uint64_t pattern, const kk_iter *it)
{
    if (it->numel == 0)
        return 0;
    unsigned g = kk_blocks(c, it->numel, 1);
    switch (esize) {
    case 1: { auto k = kk_fill_kernel<uint8_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *it, (uint8_t)pattern); }
    case 2: { auto k = kk_fill_kernel<uint16_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *it, (uint16_t)pattern); }
    case 4: { auto k = kk_fill_kernel<uint32_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *it, (uint32_t)pattern); }
    default: { auto k = kk_fill_kernel<uint64_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *it, pattern); }
    }
}

static int KK_NAME(arange)(kk_ctx *c, int dt, char *dst, int64_t n, double start, double step)
{
    if (n == 0)
        return 0;
    int exact = dt == KK_I64 && start == (double)(int64_t)start && step == (double)(int64_t)step;
    return KK_LAUNCH(c, 0, kk_arange_kernel, kk_blocks(c, n, 1), KK_BLOCK, 0, dt, dst, n, start, step, exact);
}

static int KK_NAME(where)(kk_ctx *c, int esize, const kk_iter *it)
{
    if (it->numel == 0)
        return 0;
    unsigned g = kk_blocks(c, it->numel, 1);
    switch (esize) {
    case 1: { auto k = kk_where_kernel<uint8_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *it); }
    case 2: { auto k = kk_where_kernel<uint16_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *it); }
    case 4: { auto k = kk_where_kernel<uint32_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *it); }
    default: { auto k = kk_where_kernel<uint64_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *it); }
    }
}

static int KK_NAME(random)(kk_ctx *c, int kind, int dt, char *dst, int64_t n, uint64_t seed, uint64_t offset,
                           int64_t lo, uint64_t range)
{
    if (n == 0)
        return 0;
    return KK_LAUNCH(c, 0, kk_random_kernel, kk_blocks(c, n, 1), KK_BLOCK, 0, kind, dt, dst, n, seed, offset, lo,
                     range);
}

static int KK_NAME(gather_check)(kk_ctx *c, const int64_t *idx, int64_t n, int64_t rows)
{
    if (n == 0)
        return 0;
    return KK_LAUNCH(c, 0, kk_gather_check_kernel, kk_blocks(c, n, 1), KK_BLOCK, 0, idx, n, rows, c->status);
}

static int KK_NAME(gather)(kk_ctx *c, const kk_gather_job *j)
{
    int64_t total = j->nidx * j->rowel;
    if (total == 0)
        return 0;
    unsigned g = kk_blocks(c, total, 1);
    switch (j->esize) {
    case 1: { auto k = kk_gather_kernel<uint8_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    case 2: { auto k = kk_gather_kernel<uint16_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    case 4: { auto k = kk_gather_kernel<uint32_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    default: { auto k = kk_gather_kernel<uint64_t>; return KK_LAUNCH(c, 0, k, g, KK_BLOCK, 0, *j); }
    }
}

#endif
