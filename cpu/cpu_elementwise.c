/* cpu_elementwise.c — the CPU backend's unary and binary elementwise ops.
 *
 * Every op of engine/tensor/ops.def has a generic path (values through double: the row's
 * expression by engine/tensor/op_eval.h) that serves any dtype. The dtypes that matter (f32,
 * f64, i32, i64) have typed kernels instead: one function per row and dtype, generated
 * from the row's own expression (FEXPR for floats, IEXPR for integers, in the om_ math
 * of numeric/op_math.h), with fast loops for contiguous operands and for a broadcast
 * scalar operand that the compiler vectorises (`omp simd`), and a strided loop for the
 * rest. The dispatch is generated from the same rows, so every row has its typed
 * kernels; a typed operand without one is an error, never a silent slow path. The kernels are
 * compiled twice (x86-64 baseline and x86-64-v3: AVX2 + FMA) and picked at load time.
 * (No trapping math in this file: it lets the compiler turn the float compares of
 * clamps and NaN tests into vector selects.)
 *
 * f32 exp, sigmoid and the like use cpu_expf_inline, a Cephes-style expf (range
 * reduction by ln 2 split in two, a degree-6 polynomial, scaling by 2^n through the
 * exponent bits in two steps so subnormal results come out right), within about 1 ulp
 * of the correctly rounded value, and vectorisable where libm's expf is not.
 */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed" /* omp simd is a hint where clang cannot */
#elif defined(__GNUC__)
#pragma GCC optimize("no-math-errno", "no-trapping-math")
#endif
#include "cpu/cpu_internal.h"

#include <math.h>


#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CPU_HOT
#endif

static inline float cpu_expf_inline(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -104.0f ? -104.0f : x;
    x = x > 89.0f ? 89.0f : x;
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    uint32_t tb;
    memcpy(&tb, &t, 4);
    int32_t ni = (int32_t)(tb - 0x4b400000u); /* n as an integer, from t's low bits */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n = 2^n1 * 2^n2, each within the normal exponent range */
    int32_t n1 = ni / 2, n2 = ni - n1;
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return p * s1 * s2;
}

float cpu_expf(float x)
{
    return x != x ? x : cpu_expf_inline(x);
}

static inline float expf_nan(float x)
{
    float y = cpu_expf_inline(x); /* computed always: a select, not a branch, vectorises */
    return x != x ? x : y;
}

/* the om_ math of ops.def's expressions, with this file's vectorisable f32 exp */
#define OM_EXPF expf_nan
#include "engine/tensor/op_eval.h"

/* ---- unary ---- */

typedef struct un_ctx {
    op_id op;          /* the op */
    tensor_dtype din, dout;  /* input and output dtypes (generic path) */
    double p0, p1;       /* scalar parameters (clamp bounds) */
} un_ctx;

/* one typed kernel: y = EXPR for each element x of type TT (p0, p1 as TT) */
#define UN_KERNEL(fname, TT, UU, EXPR)                                             \
    CPU_HOT static void fname(void *vctx, int64_t n, char **p, const int64_t *s)   \
    {                                                                              \
        typedef TT T;                                                              \
        typedef UU U __attribute__((unused));                                      \
        const un_ctx *ctx = vctx;                                                  \
        const T p0 = OM_PARAM(T, ctx->p0), p1 = OM_PARAM(T, ctx->p1);              \
        (void)p0;                                                                  \
        (void)p1;                                                                  \
        if (s[0] == sizeof(T) && s[1] == sizeof(T)) {                              \
            T *restrict o = (T *)p[0];                                             \
            const T *restrict in = (const T *)p[1];                                \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++)                    \
            {                                                                      \
                T x = in[i];                                                       \
                o[i] = (T)(EXPR);                                                  \
            }                                                                      \
            return;                                                                \
        }                                                                          \
        for (int64_t i = 0; i < n; i++) {                                          \
            T x = *(const T *)(p[1] + i * s[1]);                                   \
            *(T *)(p[0] + i * s[0]) = (T)(EXPR);                                   \
        }                                                                          \
    }

/* which typed kernels a row has, by its dtype rule: floats for every rule but BOOL
 * (its result dtype differs: the generic path), integers for KEEP and ARITH */
#define UN_F_FLOAT(ID, E) UN_KERNEL(un_##ID##_f32, float, uint32_t, E) UN_KERNEL(un_##ID##_f64, double, uint64_t, E)
#define UN_F_KEEP UN_F_FLOAT
#define UN_F_ARITH UN_F_FLOAT
#define UN_F_BOOL(ID, E)
#define UN_I_KEEP(ID, E) UN_KERNEL(un_##ID##_i32, int32_t, uint32_t, E) UN_KERNEL(un_##ID##_i64, int64_t, uint64_t, E)
#define UN_I_ARITH UN_I_KEEP
#define UN_I_FLOAT(ID, E)
#define UN_I_BOOL(ID, E)
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) UN_F_##DT(ID, FE) UN_I_##DT(ID, IE)
#include "engine/tensor/ops.def"

#define UN_PICK_FLOAT(ID, dt) (dt == DT_F32 ? un_##ID##_f32 : dt == DT_F64 ? un_##ID##_f64 : NULL)
#define UN_PICK_KEEP(ID, dt) \
    (dt == DT_I32 ? un_##ID##_i32 : dt == DT_I64 ? un_##ID##_i64 : UN_PICK_FLOAT(ID, dt))
#define UN_PICK_ARITH UN_PICK_KEEP
#define UN_PICK_BOOL(ID, dt) NULL

/* the typed kernel of (op, dt), or NULL where the row has none for dt */
static cpu_kernel unary_kernel(op_id op, tensor_dtype dt)
{
    switch (op) {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) \
    case OP_##ID: return UN_PICK_##DT(ID, dt);
#include "engine/tensor/ops.def"
    default: return NULL;
    }
}

/* does a typed kernel exist for (op, dt) by the row's dtype rule? */
static int unary_has_typed(op_id op, tensor_dtype dt)
{
    int fl = dt == DT_F32 || dt == DT_F64, in = dt == DT_I32 || dt == DT_I64;
    switch (op) {
#define UN_HAS_FLOAT fl
#define UN_HAS_KEEP (fl || in)
#define UN_HAS_ARITH (fl || in)
#define UN_HAS_BOOL 0
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) \
    case OP_##ID: return UN_HAS_##DT;
#include "engine/tensor/ops.def"
    default: return 0;
    }
}

static void un_generic(void *vctx, int64_t n, char **p, const int64_t *s)
{
    const un_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++) {
        double x = cpu_load(c->din, p[1] + i * s[1]);
        cpu_store(c->dout, p[0] + i * s[0], om_unary_double(c->op, x, c->p0, c->p1));
    }
}

int cpu_unary(op_id op, tensor *out, const tensor *x, double p0, double p1, eng_error *err)
{
    un_ctx c = {op, x->dtype, out->dtype, p0, p1};
    cpu_kernel k = NULL;
    if (out->dtype == x->dtype && unary_has_typed(op, x->dtype) && !(k = unary_kernel(op, x->dtype)))
        return eng_fail(err, ERR_RUNTIME, "cpu: %s has no %s kernel", tensor_op_name(op), tensor_dtype_name(x->dtype));
    if (!k)
        k = un_generic;
    const tensor *ts[2] = {out, x};
    cpu_iter it;
    cpu_iter_init(&it, 2, ts);
    return cpu_iter_run(&it, k, &c, 1, err);
}

/* ---- binary ---- */

typedef struct bin_ctx {
    op_id op;      /* the op */
    tensor_dtype din;    /* operands' dtype */
    tensor_dtype dout;   /* output dtype (bool for comparisons) */
    int zerodiv;     /* set when an integer division met a zero divisor */
} bin_ctx;

/* one typed kernel: z = EXPR for elements a, b of type TT into TO. Integer division
 * (om_idiv) stores into *zerodiv and is never vectorised: x86 has no vector integer
 * division, and the flag's atomic store keeps the loop scalar. */
#define BIN_KERNEL(fname, TT, UU, TO, EXPR)                                        \
    CPU_HOT static void fname(void *vctx, int64_t n, char **p, const int64_t *s)   \
    {                                                                              \
        typedef TT T;                                                              \
        typedef UU U __attribute__((unused));                                      \
        int *zerodiv = &((bin_ctx *)vctx)->zerodiv;                                \
        (void)zerodiv;                                                             \
        TO *restrict o = (TO *)p[0];                                               \
        const T *restrict pa = (const T *)p[1], *restrict pb = (const T *)p[2];    \
        if (s[0] == sizeof(TO) && s[1] == sizeof(T) && s[2] == sizeof(T)) {        \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++)                    \
            {                                                                      \
                T a = pa[i], b = pb[i];                                            \
                o[i] = (TO)(EXPR);                                                 \
            }                                                                      \
        } else if (s[0] == sizeof(TO) && s[1] == sizeof(T) && s[2] == 0) {         \
            const T b = pb[0];                                                     \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++)                    \
            {                                                                      \
                T a = pa[i];                                                       \
                o[i] = (TO)(EXPR);                                                 \
            }                                                                      \
        } else if (s[0] == sizeof(TO) && s[1] == 0 && s[2] == sizeof(T)) {         \
            const T a = pa[0];                                                     \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++)                    \
            {                                                                      \
                T b = pb[i];                                                       \
                o[i] = (TO)(EXPR);                                                 \
            }                                                                      \
        } else {                                                                   \
            for (int64_t i = 0; i < n; i++) {                                      \
                T a = *(const T *)(p[1] + i * s[1]), b = *(const T *)(p[2] + i * s[2]); \
                *(TO *)(p[0] + i * s[0]) = (TO)(EXPR);                             \
            }                                                                      \
        }                                                                          \
    }

/* every binary and comparison row has kernels for the four typed dtypes */
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc)                      \
    BIN_KERNEL(bin_##ID##_f32, float, uint32_t, float, FE)                         \
    BIN_KERNEL(bin_##ID##_f64, double, uint64_t, double, FE)                       \
    BIN_KERNEL(bin_##ID##_i32, int32_t, uint32_t, int32_t, IE)                     \
    BIN_KERNEL(bin_##ID##_i64, int64_t, uint64_t, int64_t, IE)
#define OP_COMPARE(ID, name, API, E, doc)                                          \
    BIN_KERNEL(bin_##ID##_f32, float, uint32_t, uint8_t, E)                        \
    BIN_KERNEL(bin_##ID##_f64, double, uint64_t, uint8_t, E)                       \
    BIN_KERNEL(bin_##ID##_i32, int32_t, uint32_t, uint8_t, E)                      \
    BIN_KERNEL(bin_##ID##_i64, int64_t, uint64_t, uint8_t, E)
#include "engine/tensor/ops.def"

static void bin_generic(void *vctx, int64_t n, char **p, const int64_t *s)
{
    bin_ctx *c = vctx;
    int intdiv = !tensor_dtype_is_float(c->din) && (c->op == OP_DIV || c->op == OP_MOD);
    for (int64_t i = 0; i < n; i++) {
        double a = cpu_load(c->din, p[1] + i * s[1]), b = cpu_load(c->din, p[2] + i * s[2]), r;
        if (intdiv && b == 0) {
            __atomic_store_n(&c->zerodiv, 1, __ATOMIC_RELAXED);
            r = 0;
        } else if (intdiv && c->op == OP_DIV) {
            r = trunc(a / b);
        } else {
            r = om_binary_double(c->op, a, b);
        }
        cpu_store(c->dout, p[0] + i * s[0], r);
    }
}

#define BIN_PICK(ID, dt)                                                            \
    (dt == DT_F32 ? bin_##ID##_f32 : dt == DT_F64 ? bin_##ID##_f64 : dt == DT_I32 ? bin_##ID##_i32 \
     : dt == DT_I64 ? bin_##ID##_i64 : NULL)

static cpu_kernel binary_kernel(op_id op, tensor_dtype dt)
{
    switch (op) {
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) \
    case OP_##ID: return BIN_PICK(ID, dt);
#define OP_COMPARE(ID, name, API, E, doc) \
    case OP_##ID: return BIN_PICK(ID, dt);
#include "engine/tensor/ops.def"
    default: return NULL;
    }
}

static int is_compare(op_id op)
{
    switch (op) {
#define OP_COMPARE(ID, name, API, E, doc) \
    case OP_##ID: return 1;
#include "engine/tensor/ops.def"
    default: return 0;
    }
}

int cpu_binary(op_id op, tensor *out, const tensor *a, const tensor *b, eng_error *err)
{
    bin_ctx c = {op, a->dtype, out->dtype, 0};
    int compare = is_compare(op);
    cpu_kernel k = NULL;
    tensor_dtype dt = a->dtype;
    int typed = dt == DT_F32 || dt == DT_F64 || dt == DT_I32 || dt == DT_I64;
    if (typed && b->dtype == dt && (compare ? out->dtype == DT_BOOL : out->dtype == dt) &&
        !(k = binary_kernel(op, dt)))
        return eng_fail(err, ERR_RUNTIME, "cpu: %s has no %s kernel", tensor_op_name(op), tensor_dtype_name(dt));
    if (!k)
        k = bin_generic;
    const tensor *ts[3] = {out, a, b};
    cpu_iter it;
    cpu_iter_init(&it, 3, ts);
    /* integer division is not vectorised: threads still help */
    if (cpu_iter_run(&it, k, &c, 1, err) < 0)
        return -1;
    if (c.zerodiv)
        return eng_fail(err, ERR_ZERODIV, "%s: integer division by zero",
                        op == OP_MOD ? "mod" : "div");
    return 0;
}
