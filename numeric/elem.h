/* elem.h — one element of any storage dtype, loaded as a double or stored from one: the
 * generic (slow) paths' single definition for the CPU backend and the CUDA kernels, so
 * both round and saturate alike (f16/bf16 to nearest even, NaN to integer 0, out-of-range
 * values to the integer type's limit).
 *
 * The dtype codes are engine/tensor/tensor.h's tensor_dtype (DT_BOOL ... DT_F64), which is
 * defined from these. Plain C, `static inline`; under nvcc the functions are __host__ __device__
 * (NUM_DEVICE), so one inclusion serves host and kernels alike.
 */
#ifndef KILN_NUM_ELEM_H
#define KILN_NUM_ELEM_H

#include <stdint.h>

#ifndef NUM_DEVICE
#ifdef __CUDACC__
#define NUM_DEVICE __host__ __device__
#else
#define NUM_DEVICE
#endif
#endif
#ifndef HALF_DEVICE
#define HALF_DEVICE NUM_DEVICE
#endif
#include "numeric/half.h"

enum num_dtype_code { NUM_BOOL = 0, NUM_U8, NUM_I32, NUM_I64, NUM_F16, NUM_BF16, NUM_F32, NUM_F64 };

static inline NUM_DEVICE double num_load(int dt, const char *p)
{
    switch (dt) {
    case NUM_BOOL: return *(const uint8_t *)p != 0;
    case NUM_U8: return *(const uint8_t *)p;
    case NUM_I32: return *(const int32_t *)p;
    case NUM_I64: return (double)*(const int64_t *)p;
    case NUM_F16: return num_f16_to_f32(*(const uint16_t *)p);
    case NUM_BF16: return num_bf16_to_f32(*(const uint16_t *)p);
    case NUM_F32: return *(const float *)p;
    default: return *(const double *)p;
    }
}

/* double -> integer without undefined behaviour for NaN and out-of-range values */
static inline NUM_DEVICE int64_t num_d2i64(double v)
{
    if (v != v)
        return 0;
    if (v >= 9223372036854775807.0)
        return INT64_MAX;
    if (v <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)v;
}

static inline NUM_DEVICE void num_store(int dt, char *p, double v)
{
    switch (dt) {
    case NUM_BOOL: *(uint8_t *)p = v != 0; break;
    case NUM_U8: *(uint8_t *)p = (uint8_t)num_d2i64(v); break;
    case NUM_I32: *(int32_t *)p = (int32_t)num_d2i64(v); break;
    case NUM_I64: *(int64_t *)p = num_d2i64(v); break;
    case NUM_F16: *(uint16_t *)p = num_f32_to_f16((float)v); break;
    case NUM_BF16: *(uint16_t *)p = num_f32_to_bf16((float)v); break;
    case NUM_F32: *(float *)p = (float)v; break;
    default: *(double *)p = v; break;
    }
}

#endif
