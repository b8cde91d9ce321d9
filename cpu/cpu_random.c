/* cpu_random.c — the CPU backend's random fills, from the Philox mapping documented in
 * numeric/philox.h: element i of a draw comes from the block for counter rng->offset + i, so
 * the numbers depend only on (seed, offset, i) and any split among threads (or GPU
 * threads) gives the same tensor. The front end advances rng->offset afterwards.
 */
#include "cpu/cpu_internal.h"
#include "numeric/philox.h"

#include <math.h>

int cpu_random(int kind, tensor *dst, const tensor_rng *rng, int64_t lo, int64_t hi, eng_error *err)
{
    if (!tensor_is_contiguous(dst))
        return eng_fail(err, ERR_RUNTIME, "random: the destination must be contiguous");
    if (kind == 2 && hi <= lo)
        return eng_fail(err, ERR_VALUE, "randint: empty range [%lld, %lld)", (long long)lo,
                        (long long)hi);
    int64_t n = tensor_numel(dst);
    char *o = cpu_ptr(dst);
    tensor_dtype dt = dst->dtype;
    size_t es = tensor_dtype_size(dt);
    uint64_t seed = rng->seed, off = rng->offset;
    uint64_t range = (uint64_t)hi - (uint64_t)lo;
    const double two_pi = 6.283185307179586476925286766559;
#pragma omp parallel for if (n >= CPU_PAR_THRESHOLD) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint32_t r[4];
        philox_block(seed, off + (uint64_t)i, r);
        if (kind == 0) {
            float u = philox_uniform(r);
            if (dt == DT_F32)
                ((float *)o)[i] = u;
            else
                cpu_store(dt, o + i * (int64_t)es, u);
        } else if (kind == 1) {
            double u1, u2;
            philox_boxmuller_uniforms(r, &u1, &u2);
            float z = (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
            if (dt == DT_F32)
                ((float *)o)[i] = z;
            else
                cpu_store(dt, o + i * (int64_t)es, z);
        } else {
            int64_t v = philox_int(r, lo, range);
            if (dt == DT_I64)
                ((int64_t *)o)[i] = v;
            else
                cpu_store(dt, o + i * (int64_t)es, (double)v);
        }
    }
    return 0;
}
