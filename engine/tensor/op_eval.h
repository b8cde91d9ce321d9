/* op_eval.h — the expressions of engine/tensor/ops.def evaluated in double, for any op chosen
 * at run time: the generic path of the CPU backend and of the CUDA kernels (bool, u8,
 * f16, bf16 and mixed-dtype operands go through double) and the scalar forms of the
 * built-ins (sqrt(2.0) is a number). One definition, so the three cannot drift.
 *
 * pow here is num_powd (numeric/powd.h): integral exponents by squaring, so a u8 or f16
 * result agrees bit for bit on every backend; the typed f32/f64 kernels use pow().
 * Integer division is the caller's (it needs the dtype): om_binary_double computes the
 * float expressions only. Include after numeric/op_math.h's knobs (OM_DEVICE).
 */
#ifndef KILN_OP_EVAL_H
#define KILN_OP_EVAL_H

#include "numeric/op_math.h"
#ifndef POWD_DEVICE
#define POWD_DEVICE OM_DEVICE
#endif
#include "numeric/powd.h"

/* y = op(x) for a unary row of ops.def; NaN for an op that is not one */
static inline OM_DEVICE double om_unary_double(int op, double x, double p0, double p1)
{
    typedef double T;
    (void)sizeof(T);
    switch (op) {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) \
    case OP_##ID: return (double)(FE);
#include "engine/tensor/ops.def"
    default: return NAN;
    }
}

/* z = op(a, b) for a binary or comparison row; NaN for an op that is not one */
static inline OM_DEVICE double om_binary_double(int op, double a, double b)
{
    typedef double T;
    (void)sizeof(T);
#pragma push_macro("om_pow")
#undef om_pow
#define om_pow(a, b) num_powd(a, b)
    switch (op) {
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) \
    case OP_##ID: return (double)(FE);
#define OP_COMPARE(ID, name, API, E, doc) \
    case OP_##ID: return (double)(E);
#include "engine/tensor/ops.def"
    default: return NAN;
    }
#pragma pop_macro("om_pow")
}

#endif
