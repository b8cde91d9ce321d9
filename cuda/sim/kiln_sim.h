/* kiln_sim.h — CUDA C emulation for the simulator: compiles a kernel's CUDA source as
 * host C++17 (g++/clang++), to run under cuda/sim/sim_runtime.h.
 *
 * Gives: dim3, uint3 and the vector types; threadIdx, blockIdx, blockDim, gridDim,
 * warpSize; the qualifiers (__global__, __device__, __host__, __forceinline__,
 * __restrict__, __launch_bounds__, __align__...); __shared__ (static: a `static
 * thread_local`, one per host thread = per block) and dynamic shared memory
 * (KILN_EXTERN_SHARED, or `extern __shared__ T name[];` rewritten by the sim driver);
 * __syncthreads(), __syncwarp(); atomics (real ones: blocks run on several host
 * threads); warp shuffles, ballot, any/all, __activemask; math functions and
 * intrinsics; __half and __nv_bfloat16 (storage types converting through float).
 *
 * The current simulated thread is `kiln_sim_cur`, a thread_local pointer that the
 * kernel's body sets before calling the kernel and that every operation which may
 * switch fibers (barriers, warp operations) saves and restores around the switch.
 * Kept light on purpose (C headers only) so that a kernel compiles fast.
 */
#ifndef KILN_SIM_H
#define KILN_SIM_H

#ifndef __cplusplus
#error "kiln_sim.h is C++ (compile kernels with g++ -std=c++17)"
#endif

#include <assert.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim_runtime.h"

#define KILN_SIM 1

/* ---- qualifiers --------------------------------------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local
#define __grid_constant__

/* ---- the current thread ------------------------------------------------------------- */
inline thread_local sim_thread *kiln_sim_cur;

typedef sim_uint3 uint3;

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define threadIdx (kiln_sim_cur->thread_idx)
#define blockIdx (kiln_sim_cur->block_idx)
#define blockDim (kiln_sim_cur->block_dim)
#define gridDim (kiln_sim_cur->grid_dim)
#define warpSize 32

/* dynamic shared memory: a reference to the host thread's buffer (fixed address) */
#define KILN_EXTERN_SHARED(T, name) \
    static thread_local T(&name)[] = *reinterpret_cast<T(*)[]>(kiln_sim_cur->dyn_shared)

/* ---- barriers ----------------------------------------------------------------------- */
inline void kiln_sim_syncthreads(const char *file, int line, const void *site) {
    sim_thread *me = kiln_sim_cur;
    me->ops->syncthreads(me, file, line, site);
    kiln_sim_cur = me;
    __asm__ __volatile__("" ::: "memory");
}
/* each call site has its own static byte, so that two __syncthreads() on one line are
 * two barriers */
#define __syncthreads()                                                     \
    ({                                                                      \
        static const char kiln_sim_site = 0;                                \
        kiln_sim_syncthreads(__FILE__, __LINE__, &kiln_sim_site);           \
    })

inline unsigned kiln_sim_syncwarp(void) {
    sim_thread *me = kiln_sim_cur;
    unsigned m = me->ops->syncwarp(me);
    kiln_sim_cur = me;
    __asm__ __volatile__("" ::: "memory");
    return m;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)mask; kiln_sim_syncwarp(); }
inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* __syncthreads_count/and/or: a block-wide count through a per-block variable */
inline int __syncthreads_count(int pred) {
    static thread_local int count;
    __syncthreads(); /* everyone has read the previous count */
    if (kiln_sim_cur->linear == 0) count = 0;
    __syncthreads();
    if (pred) __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
    __syncthreads();
    return count;
}
inline int __syncthreads_and(int pred) {
    unsigned n = blockDim.x * blockDim.y * blockDim.z;
    return __syncthreads_count(pred) == (int)n;
}
inline int __syncthreads_or(int pred) { return __syncthreads_count(pred) != 0; }

#define __trap() kiln_sim_cur->ops->trap(kiln_sim_cur, "__trap() called", __FILE__, __LINE__)
/* device code cannot end the program: these end the block with an error, like __trap() */
#define abort() kiln_sim_cur->ops->trap(kiln_sim_cur, "abort() called", __FILE__, __LINE__)
#define exit(code) kiln_sim_cur->ops->trap(kiln_sim_cur, "exit() called", __FILE__, __LINE__)
#define quick_exit(code) kiln_sim_cur->ops->trap(kiln_sim_cur, "quick_exit() called", __FILE__, __LINE__)
#undef assert
#define assert(e) \
    ((e) ? (void)0 : kiln_sim_cur->ops->trap(kiln_sim_cur, "assertion failed: " #e, __FILE__, __LINE__))

/* ---- warp operations ------------------------------------------------------------------ */
/* every lane writes its value, the warp meets, every lane reads the source lane's value;
 * two alternating halves of the exchange array make one barrier per exchange enough */
inline unsigned long long kiln_sim_exchange(unsigned long long v, int src, unsigned *mask_out) {
    sim_thread *me = kiln_sim_cur;
    unsigned long long *x = me->warp_xch + 32 * me->xch_parity;
    me->xch_parity ^= 1u;
    x[me->lane] = v;
    unsigned mask = me->ops->syncwarp(me);
    kiln_sim_cur = me;
    __asm__ __volatile__("" ::: "memory");
    if (mask_out) *mask_out = mask;
    if (src < 0 || src >= 32 || !(mask >> src & 1u)) return v;
    return x[src];
}

template <class T> inline T kiln_sim_shfl(T v, int src) {
    static_assert(sizeof(T) <= 8, "warp shuffles take values of at most 8 bytes");
    unsigned long long bits = 0, r;
    memcpy(&bits, &v, sizeof(T));
    r = kiln_sim_exchange(bits, src, nullptr);
    T out;
    memcpy(&out, &r, sizeof(T));
    return out;
}

template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    (void)mask;
    int lane = (int)kiln_sim_cur->lane;
    return kiln_sim_shfl(v, (lane / width) * width + ((src % width + width) % width));
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void)mask;
    int lane = (int)kiln_sim_cur->lane;
    int src = (lane % width) >= (int)delta ? lane - (int)delta : lane;
    return kiln_sim_shfl(v, src);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void)mask;
    int lane = (int)kiln_sim_cur->lane;
    int src = (lane % width) + (int)delta < width ? lane + (int)delta : lane;
    return kiln_sim_shfl(v, src);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int lanemask, int width = 32) {
    (void)mask;
    int lane = (int)kiln_sim_cur->lane;
    int src = lane ^ lanemask;
    if (src / width > lane / width) src = lane; /* later groups: own value */
    return kiln_sim_shfl(v, src);
}

inline unsigned kiln_sim_ballot(int pred) {
    unsigned long long *x = kiln_sim_cur->warp_xch + 32 * kiln_sim_cur->xch_parity;
    unsigned mask;
    kiln_sim_exchange(pred ? 1ull : 0ull, -1, &mask);
    unsigned r = 0;
    for (int i = 0; i < 32; i++)
        if ((mask >> i & 1u) && x[i]) r |= 1u << i;
    return r;
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return kiln_sim_ballot(pred) & mask; }
inline int __any_sync(unsigned mask, int pred) { return (kiln_sim_ballot(pred) & mask) != 0; }
inline int __all_sync(unsigned mask, int pred) {
    unsigned long long *x = kiln_sim_cur->warp_xch + 32 * kiln_sim_cur->xch_parity;
    unsigned live;
    kiln_sim_exchange(pred ? 1ull : 0ull, -1, &live);
    for (int i = 0; i < 32; i++)
        if ((live & mask) >> i & 1u && !x[i]) return 0;
    return 1;
}
inline unsigned __activemask(void) {
    unsigned live;
    kiln_sim_exchange(0, -1, &live);
    return live;
}
inline unsigned __lanemask_lt(void) { return (1u << kiln_sim_cur->lane) - 1u; }

/* ---- atomics (relaxed, like CUDA's) ------------------------------------------------- */
#define KILN_SIM_ATOMIC_INT(T)                                                                   \
    inline T atomicAdd(T *p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }        \
    inline T atomicSub(T *p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }        \
    inline T atomicAnd(T *p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }        \
    inline T atomicOr(T *p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }          \
    inline T atomicXor(T *p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }        \
    inline T atomicExch(T *p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }      \
    inline T atomicCAS(T *p, T cmp, T v) {                                                      \
        __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);     \
        return cmp;                                                                              \
    }                                                                                            \
    inline T atomicMin(T *p, T v) {                                                             \
        T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                            \
        while (v < old && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED,       \
                                                       __ATOMIC_RELAXED)) {}                     \
        return old;                                                                              \
    }                                                                                            \
    inline T atomicMax(T *p, T v) {                                                             \
        T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                            \
        while (v > old && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED,       \
                                                       __ATOMIC_RELAXED)) {}                     \
        return old;                                                                              \
    }
KILN_SIM_ATOMIC_INT(int)
KILN_SIM_ATOMIC_INT(unsigned)
KILN_SIM_ATOMIC_INT(unsigned long long)
KILN_SIM_ATOMIC_INT(long long)
#undef KILN_SIM_ATOMIC_INT

/* floating point: a compare-and-swap loop on the bits */
#define KILN_SIM_ATOMIC_FP(T, U)                                                                 \
    template <class F> inline T kiln_sim_atomic_fp(T *p, F f) {                                  \
        U *q = reinterpret_cast<U *>(p);                                                         \
        U old = __atomic_load_n(q, __ATOMIC_RELAXED), nw;                                        \
        T o, n;                                                                                  \
        do {                                                                                     \
            memcpy(&o, &old, sizeof o);                                                          \
            n = f(o);                                                                            \
            memcpy(&nw, &n, sizeof n);                                                           \
        } while (!__atomic_compare_exchange_n(q, &old, nw, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)); \
        return o;                                                                                \
    }                                                                                            \
    inline T atomicAdd(T *p, T v) { return kiln_sim_atomic_fp(p, [v](T o) { return o + v; }); } \
    inline T atomicSub(T *p, T v) { return kiln_sim_atomic_fp(p, [v](T o) { return o - v; }); } \
    inline T atomicMin(T *p, T v) { return kiln_sim_atomic_fp(p, [v](T o) { return v < o ? v : o; }); } \
    inline T atomicMax(T *p, T v) { return kiln_sim_atomic_fp(p, [v](T o) { return v > o ? v : o; }); } \
    inline T atomicExch(T *p, T v) {                                                             \
        U b, r;                                                                                  \
        memcpy(&b, &v, sizeof b);                                                                \
        r = __atomic_exchange_n(reinterpret_cast<U *>(p), b, __ATOMIC_RELAXED);                  \
        T o;                                                                                     \
        memcpy(&o, &r, sizeof o);                                                                \
        return o;                                                                                \
    }
KILN_SIM_ATOMIC_FP(float, unsigned)
KILN_SIM_ATOMIC_FP(double, unsigned long long)
#undef KILN_SIM_ATOMIC_FP

inline unsigned atomicInc(unsigned *p, unsigned lim) {
    unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, old >= lim ? 0u : old + 1u, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {}
    return old;
}
inline unsigned atomicDec(unsigned *p, unsigned lim) {
    unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, (old == 0u || old > lim) ? lim : old - 1u, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd

/* ---- min / max (CUDA's overloads, mixed types as C arithmetic does) ------------------ */
template <class A, class B> inline auto min(A a, B b) -> decltype(a + b) {
    decltype(a + b) x = a, y = b;
    return y < x ? y : x;
}
template <class A, class B> inline auto max(A a, B b) -> decltype(a + b) {
    decltype(a + b) x = a, y = b;
    return x < y ? y : x;
}

/* ---- math intrinsics -------------------------------------------------------------- */
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float *s, float *c) { *s = sinf(x); *c = cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f)); }
inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
inline double normcdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
inline int __mul24(int a, int b) { return (int)((long long)((a << 8) >> 8) * ((b << 8) >> 8)); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    unsigned long long v = ((unsigned long long)hi << 32 | lo) << (s & 31);
    return (unsigned)(v >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    return (unsigned)(((unsigned long long)hi << 32 | lo) >> (s & 31));
}

inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
inline unsigned __float2uint_rz(float x) { return (unsigned)x; }
inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
inline int __double2int_rn(double x) { return (int)nearbyint(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline float __double2float_rn(double x) { return (float)x; }
inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float x) { int i; memcpy(&i, &x, 4); return i; }
inline float __uint_as_float(unsigned x) { float f; memcpy(&f, &x, 4); return f; }
inline unsigned __float_as_uint(float x) { unsigned i; memcpy(&i, &x, 4); return i; }
inline double __longlong_as_double(long long x) { double f; memcpy(&f, &x, 8); return f; }
inline long long __double_as_longlong(double x) { long long i; memcpy(&i, &x, 8); return i; }
template <class T> inline T __ldg(const T *p) { return *p; }
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline T __ldcs(const T *p) { return *p; }
template <class T> inline void __stcg(T *p, T v) { *p = v; }
template <class T> inline void __stcs(T *p, T v) { *p = v; }
inline long long clock64(void) {
#if defined(__x86_64__)
    return (long long)__builtin_ia32_rdtsc();
#else
    unsigned long long v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return (long long)v;
#endif
}

/* ---- vector types --------------------------------------------------------------------- */
#define KILN_SIM_VEC2(NAME, T, AL)                                                       \
    struct __attribute__((aligned(AL))) NAME { T x, y; };                                \
    inline NAME make_##NAME(T x, T y) { return NAME{x, y}; }
#define KILN_SIM_VEC3(NAME, T)                                                           \
    struct NAME { T x, y, z; };                                                          \
    inline NAME make_##NAME(T x, T y, T z) { return NAME{x, y, z}; }
#define KILN_SIM_VEC4(NAME, T, AL)                                                       \
    struct __attribute__((aligned(AL))) NAME { T x, y, z, w; };                          \
    inline NAME make_##NAME(T x, T y, T z, T w) { return NAME{x, y, z, w}; }
KILN_SIM_VEC2(float2, float, 8)
KILN_SIM_VEC3(float3, float)
KILN_SIM_VEC4(float4, float, 16)
KILN_SIM_VEC2(int2, int, 8)
KILN_SIM_VEC3(int3, int)
KILN_SIM_VEC4(int4, int, 16)
KILN_SIM_VEC2(uint2, unsigned, 8)
KILN_SIM_VEC4(uint4, unsigned, 16)
KILN_SIM_VEC2(double2, double, 16)
KILN_SIM_VEC2(longlong2, long long, 16)
KILN_SIM_VEC4(char4, signed char, 4)
KILN_SIM_VEC4(uchar4, unsigned char, 4)
#undef KILN_SIM_VEC2
#undef KILN_SIM_VEC3
#undef KILN_SIM_VEC4
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

/* ---- half and bfloat16 (storage types; arithmetic in float) -------------------------- */
inline unsigned short kiln_sim_f2h(float f) {
    unsigned x;
    memcpy(&x, &f, 4);
    unsigned sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, m = x & 0x7fffffu;
    if (e == 0xffu) return (unsigned short)(sign | 0x7c00u | (m ? 0x200u : 0u));
    int ex = (int)e - 127 + 15;
    if (ex >= 31) return (unsigned short)(sign | 0x7c00u);
    if (ex <= 0) {
        if (ex < -10) return (unsigned short)sign;
        m |= 0x800000u;
        unsigned shift = (unsigned)(14 - ex), r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (unsigned short)(sign | r);
    }
    unsigned r = ((unsigned)ex << 10) | (m >> 13), rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (unsigned short)(sign | r);
}
inline float kiln_sim_h2f(unsigned short h) {
    unsigned sign = (unsigned)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        if (m == 0) x = sign;
        else {
            e = 113;
            while (!(m & 0x400u)) { m <<= 1; e--; }
            x = sign | (e << 23) | ((m & 0x3ffu) << 13);
        }
    } else if (e == 31) x = sign | 0x7f800000u | (m << 13);
    else x = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}
struct __half {
    unsigned short x;
    __half() = default;
    __half(float f) : x(kiln_sim_f2h(f)) {}
    __half(double f) : x(kiln_sim_f2h((float)f)) {}
    __half(int i) : x(kiln_sim_f2h((float)i)) {}
    operator float() const { return kiln_sim_h2f(x); }
};
struct __nv_bfloat16 {
    unsigned short x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) {
        unsigned u;
        memcpy(&u, &f, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) x = (unsigned short)((u >> 16) | 0x40u);
        else x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    __nv_bfloat16(double f) : __nv_bfloat16((float)f) {}
    __nv_bfloat16(int i) : __nv_bfloat16((float)i) {}
    operator float() const {
        unsigned u = (unsigned)x << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
};
typedef __half half;
typedef __nv_bfloat16 nv_bfloat16;
inline __half __float2half(float f) { return __half(f); }
inline float __half2float(__half h) { return (float)h; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }

/* ---- debug builds (KILN_SIM_DEBUG, cuda/sim/sim_debug.c inserts the calls) ------------ */
#ifdef KILN_SIM_DEBUG
#include <type_traits>
/* is the current simulated thread the one being debugged? */
inline bool kiln_dbg_me(void) {
    const sim_thread *t = kiln_sim_cur;
    if (!t) return false;
    const sim_dbg_target *d = t->ops->dbg;
    return d->on && t->thread_idx.x == d->thread.x && t->thread_idx.y == d->thread.y &&
           t->thread_idx.z == d->thread.z && t->block_idx.x == d->block.x && t->block_idx.y == d->block.y &&
           t->block_idx.z == d->block.z;
}
/* one per function body: the target thread's call depth */
struct kiln_dbg_frame_t {
    bool me;
    explicit kiln_dbg_frame_t(const char *f) : me(kiln_dbg_me()) {
        if (me) kiln_sim_cur->ops->dbg_frame(kiln_sim_cur, f, 1);
    }
    ~kiln_dbg_frame_t() {
        if (me) kiln_sim_cur->ops->dbg_frame(kiln_sim_cur, nullptr, 0);
    }
};
template <class T> inline const char *kiln_dbg_tname(void) {
    typedef typename std::remove_cv<T>::type U;
    if (std::is_same<U, bool>::value) return "bool";
    if (std::is_same<U, char>::value) return "char";
    if (std::is_same<U, signed char>::value) return "signed char";
    if (std::is_same<U, unsigned char>::value) return "unsigned char";
    if (std::is_same<U, short>::value) return "short";
    if (std::is_same<U, unsigned short>::value) return "unsigned short";
    if (std::is_same<U, int>::value) return "int";
    if (std::is_same<U, unsigned>::value) return "unsigned int";
    if (std::is_same<U, long>::value) return "long";
    if (std::is_same<U, unsigned long>::value) return "unsigned long";
    if (std::is_same<U, long long>::value) return "long long";
    if (std::is_same<U, unsigned long long>::value) return "unsigned long long";
    if (std::is_same<U, float>::value) return "float";
    if (std::is_same<U, double>::value) return "double";
    if (std::is_same<U, __half>::value) return "__half";
    if (std::is_same<U, __nv_bfloat16>::value) return "__nv_bfloat16";
    if (std::is_same<U, dim3>::value) return "dim3";
    if (std::is_same<U, uint3>::value) return "uint3";
    if (std::is_same<U, void>::value) return "void";
    return "?";
}
/* a scalar as text; 0 when T is not one */
template <class T> inline int kiln_dbg_text(char *out, size_t cap, const T &x) {
    typedef typename std::remove_cv<T>::type U;
    if constexpr (std::is_same<U, bool>::value) snprintf(out, cap, "%s", x ? "true" : "false");
    else if constexpr (std::is_integral<U>::value && std::is_signed<U>::value) snprintf(out, cap, "%lld", (long long)x);
    else if constexpr (std::is_integral<U>::value) snprintf(out, cap, "%llu", (unsigned long long)x);
    else if constexpr (std::is_floating_point<U>::value) snprintf(out, cap, "%.9g", (double)x);
    else if constexpr (std::is_same<U, __half>::value || std::is_same<U, __nv_bfloat16>::value)
        snprintf(out, cap, "%.6g", (double)(float)x);
    else if constexpr (std::is_same<U, dim3>::value || std::is_same<U, uint3>::value)
        snprintf(out, cap, "(%u, %u, %u)", x.x, x.y, x.z);
    else return 0;
    return 1;
}
/* the variables of one stop */
struct kiln_dbg_vars_t {
    sim_dbg_var v[64];
    int n = 0;
    template <class T> void add(const char *name, const T &x) {
        if (n >= 64) return;
        sim_dbg_var *p = &v[n++];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->ptr = nullptr;
        p->is_ptr = 0;
        if constexpr (std::is_pointer<T>::value) {
            typedef typename std::remove_pointer<T>::type E;
            snprintf(p->type, sizeof p->type, "%s%s *", std::is_const<E>::value ? "const " : "", kiln_dbg_tname<E>());
            p->ptr = (const void *)x;
            p->is_ptr = 1;
            snprintf(p->value, sizeof p->value, "%p", (const void *)x);
        } else if constexpr (std::is_array<T>::value) {
            typedef typename std::remove_extent<T>::type E;
            const size_t N = std::extent<T>::value;
            snprintf(p->type, sizeof p->type, "%s[%zu]", kiln_dbg_tname<E>(), N);
            size_t len = 0;
            p->value[0] = '\0';
            if constexpr (std::is_arithmetic<typename std::remove_cv<E>::type>::value) {
                for (size_t i = 0; i < N && len + 24 < sizeof p->value; i++) {
                    char one[32];
                    kiln_dbg_text(one, sizeof one, x[i]);
                    len += (size_t)snprintf(p->value + len, sizeof p->value - len, "%s%s", i ? ", " : "[", one);
                }
                snprintf(p->value + len, sizeof p->value - len, "%s", len + 24 < sizeof p->value ? "]" : ", ...]");
            } else {
                snprintf(p->value, sizeof p->value, "(not shown)");
            }
            p->ptr = (const void *)&x[0];
        } else {
            snprintf(p->type, sizeof p->type, "%s", kiln_dbg_tname<T>());
            if (!kiln_dbg_text(p->value, sizeof p->value, x)) snprintf(p->value, sizeof p->value, "(not shown)");
        }
    }
    void line(const char *file, int ln, const char *func) {
        sim_thread *me = kiln_sim_cur;
        me->ops->dbg_line(me, file, ln, func, v, n);
        kiln_sim_cur = me;
    }
};
#define KILN_DBG_FRAME kiln_dbg_frame_t kiln_dbg_frame_(__func__);
#endif

/* ---- launching a statically compiled kernel (see sim_runtime.h) ----------------------- */
template <class F> inline void kiln_sim_body_of(void *p, sim_thread *t) {
    kiln_sim_cur = t;
    (*static_cast<F *>(p))();
}
template <class... P, class... A>
inline int kiln_sim_launch(void (*k)(P...), dim3 grid, dim3 block, size_t shared, int needs_fibers,
                           char *err, size_t errlen, A... a) {
    auto call = [=]() { k(a...); };
    unsigned g[3] = {grid.x, grid.y, grid.z}, b[3] = {block.x, block.y, block.z};
    return sim_launch(&kiln_sim_body_of<decltype(call)>, &call, g, b, shared, needs_fibers, err, errlen);
}
#define KILN_SIM_LAUNCH(kernel, grid, block, shared, needs_fibers, err, errlen, ...) \
    kiln_sim_launch(kernel, grid, block, shared, needs_fibers, err, errlen, __VA_ARGS__)

/* ---- calling a kernel from an array of argument pointers (the sim driver's entry) ----- */
template <class T> struct kiln_sim_plain { typedef T type; };
template <class T> struct kiln_sim_plain<const T> { typedef T type; };
template <class T> struct kiln_sim_plain<volatile T> { typedef T type; };
template <class T> struct kiln_sim_plain<const volatile T> { typedef T type; };
template <unsigned... I> struct kiln_sim_seq {};
template <unsigned N, unsigned... I> struct kiln_sim_mkseq : kiln_sim_mkseq<N - 1, N - 1, I...> {};
template <unsigned... I> struct kiln_sim_mkseq<0, I...> { typedef kiln_sim_seq<I...> type; };
template <class... P, unsigned... I>
inline void kiln_sim_call_seq(void (*k)(P...), void **a, kiln_sim_seq<I...>) {
    k(*static_cast<typename kiln_sim_plain<P>::type *>(a[I])...);
}
template <class... P> inline void kiln_sim_call(void (*k)(P...), void **a) {
    kiln_sim_call_seq(k, a, typename kiln_sim_mkseq<sizeof...(P)>::type());
}
template <class... P> constexpr unsigned kiln_sim_nparams(void (*)(P...)) { return sizeof...(P); }

#endif
