/* op_math.h — the type-generic scalar math that the expressions of engine/tensor/ops.def are
 * written in, shared by the CPU backend (C), the CUDA kernels (nvcc) and the simulator
 * (the same kernels through the host C++ compiler), so each op's formula exists once.
 *
 * om_exp(x), om_log(x), ... pick the float or the double function from the argument's
 * type: _Generic in C, overloads in C++. An expression of ops.def sees x (a, b), the
 * element type T (and U, its unsigned twin, for integer rows) and the op's parameters
 * p0, p1; it writes constants as (T)c so one text serves f32, f64 and the integers.
 *
 * Knobs, defined before including:
 *   OM_DEVICE   __device__ for CUDA code (cuda/kernels/kk_common.cuh defines it)
 *   OM_EXPF     the f32 exp (the CPU backend's vectorisable expf; default expf)
 * Integer division sets a flag instead of trapping: om_idiv/om_imod take `int *zerodiv`
 * and store 1 there for a zero divisor (atomically on the host: the CPU runs threads).
 */
#ifndef KILN_OP_MATH_H
#define KILN_OP_MATH_H

#include <math.h>
#include <stdint.h>
#include "numeric/elem.h"

#ifndef OM_DEVICE
#define OM_DEVICE
#endif
#ifndef OM_EXPF
#define OM_EXPF expf
#endif

#if defined(__CUDACC__)
#define OM_HOSTDEV __host__ __device__ /* om_d2i64: also the launchers' */
#define OM_SET_FLAG(p) (*(p) = 1)
#else
#define OM_HOSTDEV
#define OM_SET_FLAG(p) __atomic_store_n((p), 1, __ATOMIC_RELAXED)
#endif

/* an op's double parameter (clamp's bounds) as element type T: integers saturate (NaN
 * to T's range (NaN gives 0), so clamp(i32, -inf, 0) is defined; floats convert as C
 * does. Only i32 and i64 have integer kernels. */
#define om_d2i64 num_d2i64 /* numeric/elem.h: the one saturating conversion */
static inline OM_HOSTDEV int32_t om_d2i32(double v)
{
    int64_t i = om_d2i64(v);
    return i > INT32_MAX ? INT32_MAX : i < INT32_MIN ? INT32_MIN : (int32_t)i;
}
#define OM_PARAM(T, v) ((T)0.5 != 0 ? (T)(v) : sizeof(T) == 4 ? (T)om_d2i32(v) : (T)om_d2i64(v))

/* ---- integers: C's truncating / and %, a zero divisor flagged, MIN / -1 wrapping;
 * pow by squaring, wrapping, a negative exponent truncating as 1 / a^-b would ---- */
#define OM_INT_FNS(S, T, U)                                                        \
    static inline OM_DEVICE T om_idiv_##S(T a, T b, int *zerodiv)                  \
    {                                                                              \
        if (b == 0) {                                                              \
            OM_SET_FLAG(zerodiv);                                                  \
            return 0;                                                              \
        }                                                                          \
        return b == -1 ? (T)((U)0 - (U)a) : (T)(a / b);                            \
    }                                                                              \
    static inline OM_DEVICE T om_imod_##S(T a, T b, int *zerodiv)                  \
    {                                                                              \
        if (b == 0) {                                                              \
            OM_SET_FLAG(zerodiv);                                                  \
            return 0;                                                              \
        }                                                                          \
        return b == -1 ? (T)0 : (T)(a % b);                                        \
    }                                                                              \
    static inline OM_DEVICE T om_ipow_##S(T a, T b)                                \
    {                                                                              \
        if (b < 0)                                                                 \
            return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;                  \
        U r = 1, x = (U)a;                                                         \
        while (b) {                                                                \
            if (b & 1)                                                             \
                r *= x;                                                            \
            x *= x;                                                                \
            b >>= 1;                                                               \
        }                                                                          \
        return (T)r;                                                               \
    }
OM_INT_FNS(i32, int32_t, uint32_t)
OM_INT_FNS(i64, int64_t, uint64_t)
#undef OM_INT_FNS

#ifdef __cplusplus
/* ---- C++ (nvcc, the simulator): overloads ---- */
#define OM_F1(name, ff, df)                                                        \
    static inline OM_DEVICE float name(float x) { return ff(x); }                  \
    static inline OM_DEVICE double name(double x) { return df(x); }
#define OM_F2(name, ff, df)                                                        \
    static inline OM_DEVICE float name(float a, float b) { return ff(a, b); }      \
    static inline OM_DEVICE double name(double a, double b) { return df(a, b); }
OM_F1(om_exp, OM_EXPF, exp)
OM_F1(om_expm1, expm1f, expm1)
OM_F1(om_log, logf, log)
OM_F1(om_log1p, log1pf, log1p)
OM_F1(om_sqrt, sqrtf, sqrt)
OM_F1(om_tanh, tanhf, tanh)
OM_F1(om_erfc, erfcf, erfc)
OM_F1(om_sin, sinf, sin)
OM_F1(om_cos, cosf, cos)
OM_F1(om_floor, floorf, floor)
OM_F1(om_ceil, ceilf, ceil)
OM_F1(om_rint, rintf, rint)
OM_F1(om_fabs, fabsf, fabs)
OM_F2(om_pow, powf, pow)
OM_F2(om_fmod, fmodf, fmod)
#undef OM_F1
#undef OM_F2
static inline OM_DEVICE int32_t om_idiv(int32_t a, int32_t b, int *z) { return om_idiv_i32(a, b, z); }
static inline OM_DEVICE int64_t om_idiv(int64_t a, int64_t b, int *z) { return om_idiv_i64(a, b, z); }
static inline OM_DEVICE int32_t om_imod(int32_t a, int32_t b, int *z) { return om_imod_i32(a, b, z); }
static inline OM_DEVICE int64_t om_imod(int64_t a, int64_t b, int *z) { return om_imod_i64(a, b, z); }
static inline OM_DEVICE int32_t om_ipow(int32_t a, int32_t b) { return om_ipow_i32(a, b); }
static inline OM_DEVICE int64_t om_ipow(int64_t a, int64_t b) { return om_ipow_i64(a, b); }
#else
/* ---- C: _Generic ---- */
#define OM_G1(x, ff, df) _Generic((x), float: ff, default: df)(x)
#define OM_G2(a, b, ff, df) _Generic((a), float: ff, default: df)(a, b)
#define om_exp(x) OM_G1(x, OM_EXPF, exp)
#define om_expm1(x) OM_G1(x, expm1f, expm1)
#define om_log(x) OM_G1(x, logf, log)
#define om_log1p(x) OM_G1(x, log1pf, log1p)
#define om_sqrt(x) OM_G1(x, sqrtf, sqrt)
#define om_tanh(x) OM_G1(x, tanhf, tanh)
#define om_erfc(x) OM_G1(x, erfcf, erfc)
#define om_sin(x) OM_G1(x, sinf, sin)
#define om_cos(x) OM_G1(x, cosf, cos)
#define om_floor(x) OM_G1(x, floorf, floor)
#define om_ceil(x) OM_G1(x, ceilf, ceil)
#define om_rint(x) OM_G1(x, nearbyintf, nearbyint)
#define om_fabs(x) OM_G1(x, fabsf, fabs)
#define om_pow(a, b) OM_G2(a, b, powf, pow)
#define om_fmod(a, b) OM_G2(a, b, fmodf, fmod)
#define om_idiv(a, b, z) _Generic((a), int32_t: om_idiv_i32, default: om_idiv_i64)(a, b, z)
#define om_imod(a, b, z) _Generic((a), int32_t: om_imod_i32, default: om_imod_i64)(a, b, z)
#define om_ipow(a, b) _Generic((a), int32_t: om_ipow_i32, default: om_ipow_i64)(a, b)
#endif

#endif
