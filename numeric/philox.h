/* philox.h — the Philox 4x32-10 counter-based generator (Salmon et al., "Parallel
 * random numbers: as easy as 1, 2, 3", SC 2011) and the exact mapping from counters to
 * the numbers Kiln's rand, randn and randint produce.
 *
 * Plain C, `static inline`, no libc except sqrt/log/cos for the normal draw, so that the
 * same file compiles for the CPU backend and inside CUDA kernels (define PHILOX_DEVICE
 * as __device__ there). The CPU and the GPU give the same stream for the same seed.
 *
 * THE MAPPING (what a GPU implementation must reproduce):
 *   A draw of n numbers under a tensor_rng {seed, offset} gives element i (row-major,
 *   0 <= i < n) from one Philox block:
 *       key     = { lo32(seed), hi32(seed) }
 *       counter = { lo32(offset + i), hi32(offset + i), 0, 0 }
 *       r[0..3] = philox4x32_10(counter, key)
 *   then
 *     uniform (rand, f32 in [0, 1)):   u = (r[0] >> 8) * 2^-24           (exact in f32)
 *     normal  (randn, f32):            u1 = (r[0] + 1) * 2^-32            in (0, 1]
 *                                      u2 = r[1] * 2^-32                  in [0, 1)
 *                                      z  = sqrt(-2 ln u1) * cos(2 pi u2)
 *                                      computed in double, rounded once to f32
 *     integer (randint, i64 in [lo, hi)): v = (r[1] << 32) | r[0] (64 bits)
 *                                      x = lo + v mod (hi - lo)
 *   and the session's offset then advances by n. Only r[0] and r[1] are used; one block
 *   per element keeps the mapping trivially parallel on any device.
 */
#ifndef KILN_PHILOX_H
#define KILN_PHILOX_H

#include <stdint.h>

#ifndef PHILOX_DEVICE
#define PHILOX_DEVICE
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* One Philox4x32 round: two 32x32->64 multiplies, xors with the key. */
PHILOX_DEVICE static inline void philox_round(uint32_t c[4], const uint32_t k[2])
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k[0];
    uint32_t n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

/* Philox4x32 with 10 rounds: out = the block for counter ctr under key. */
PHILOX_DEVICE static inline void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                                               uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

/* The block for element number `index` (= offset + i) under seed. */
PHILOX_DEVICE static inline void philox_block(uint64_t seed, uint64_t index, uint32_t out[4])
{
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), 0u, 0u};
    philox4x32_10(ctr, key, out);
}

/* uniform f32 in [0, 1) from the block */
PHILOX_DEVICE static inline float philox_uniform(const uint32_t r[4])
{
    return (float)(r[0] >> 8) * (1.0f / 16777216.0f);
}

/* the two uniforms of Box-Muller, as doubles: u1 in (0, 1], u2 in [0, 1) */
PHILOX_DEVICE static inline void philox_boxmuller_uniforms(const uint32_t r[4], double *u1, double *u2)
{
    *u1 = ((double)r[0] + 1.0) * (1.0 / 4294967296.0);
    *u2 = (double)r[1] * (1.0 / 4294967296.0);
}

/* integer in [lo, lo + range) for range >= 1 */
PHILOX_DEVICE static inline int64_t philox_int(const uint32_t r[4], int64_t lo, uint64_t range)
{
    uint64_t v = ((uint64_t)r[1] << 32) | r[0];
    return (int64_t)((uint64_t)lo + v % range);
}

#endif
