/* powd.h — pow in double for the generic elementwise paths (u8, bool, f16, bf16 and mixed
 * dtypes), the one definition for the CPU backend, the CUDA kernels and the front end's
 * scalar arithmetic (engine/tensor/ops.def names it).
 *
 * An integral exponent of magnitude up to 64 is computed by squaring: IEEE products are
 * correctly rounded, so both backends agree bit for bit and integral results below 2^53
 * are exact (CUDA's pow() may be an ulp off, and 15.999999999999998 stored into a u8 is
 * 15, not 16). Any other exponent goes to pow(). Define POWD_DEVICE as __device__ to use
 * it in CUDA code, as cuda/kernels/kk_common.cuh does (cf. numeric/half.h).
 */
#ifndef KILN_POWD_H
#define KILN_POWD_H

#include <math.h>

#ifndef POWD_DEVICE
#define POWD_DEVICE
#endif

static inline POWD_DEVICE double num_powd(double a, double b)
{
    if (!(b >= -64 && b <= 64) || b != (double)(int)b)
        return pow(a, b);
    int e = (int)b;
    unsigned u = e < 0 ? (unsigned)-e : (unsigned)e;
    double r = 1, x = a;
    while (u) {
        if (u & 1)
            r *= x;
        x *= x;
        u >>= 1;
    }
    return e < 0 ? 1 / r : r;
}

#endif
