/* cpu_reduce.c — the CPU backend's reductions: sum, mean, max, min, argmax, argmin,
 * var, std and norm, over everything or along one dimension.
 *
 * The input is made contiguous and seen as [outer, n, inner], reducing n. Two shapes
 * of loop, both typed per dtype (f32, f64, i32, i64, u8/bool) by the macros below:
 *   inner == 1 ("rows"): each output reduces a contiguous run of n elements, with
 *     `omp simd` reductions; one long row is split among threads and the partial
 *     results merged; many rows are spread over threads.
 *   inner > 1 ("columns"): each output column is accumulated row after row, a block of
 *     up to CPU_COLS columns at a time, so the loads stay contiguous and vectorise.
 * Numerics: float sums, means and norms accumulate in double (f32 values are widened)
 * over 16 interleaved partial sums, so the error stays far below f32's resolution; var and std are two-pass (the mean first, then the sum of
 * squared deviations from it, in double); max and min propagate NaN as NumPy does, and
 * argmax/argmin return the first index of the extreme (or of the first NaN). Integer
 * sums accumulate in 64 bits, wrapping.
 */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed" /* omp simd is a hint where clang cannot */
#elif defined(__GNUC__)
#pragma GCC optimize("no-trapping-math") /* float compares become vector selects */
#endif
#include "cpu/cpu_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#define CPU_COLS 256

/* typed kernels compiled for x86-64 and x86-64-v3 (AVX2, FMA), chosen at load time */
#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CPU_HOT
#endif

/* What one reduction of a run of elements produced. */
typedef struct red_state {
    double sum;     /* float sum, sum of squares, or sum of squared deviations */
    uint64_t isum;  /* integer sum (wrapping) */
    double best;    /* max or min so far, as double (exact for everything but big i64) */
    int64_t ibest;  /* the same for integer types, exact */
    int64_t idx;    /* argmax/argmin: index of best */
    int nan;        /* a NaN was seen */
} red_state;

static int is_int(tensor_dtype dt)
{
    return !tensor_dtype_is_float(dt);
}

static int op_is_max(op_id op)
{
    return op == OP_MAX || op == OP_ARGMAX;
}

/* ROWS: reduce x[0..n) (contiguous) into st; mean is used by VAR/STD's second pass.
 * MAX/MIN and ARG* need n >= 1. ARG* gives the index of the first element equal to
 * the extreme (found by a second scan). The loops keep RED_LANES independent
 * accumulators (double for sums), which the compiler turns into several vector
 * registers: one accumulator would make every add wait for the previous one. */
#define RED_LANES 16
#define RED_ACC(EXPR)                                                             \
    do {                                                                          \
        double acc[RED_LANES] = {0};                                              \
        int64_t i = 0;                                                            \
        for (; i + RED_LANES <= n; i += RED_LANES)                                \
            for (int j = 0; j < RED_LANES; j++) {                                 \
                double v = (double)x[i + j];                                      \
                acc[j] += (EXPR);                                                 \
            }                                                                     \
        double s = 0;                                                             \
        for (; i < n; i++) {                                                      \
            double v = (double)x[i];                                              \
            s += (EXPR);                                                          \
        }                                                                         \
        for (int j = 0; j < RED_LANES; j++)                                       \
            s += acc[j];                                                          \
        st->sum = s;                                                              \
    } while (0)
#define RED_EXT(T, CMP)                                                            \
    do {                                                                          \
        T b[RED_LANES];                                                           \
        int nn[RED_LANES];                                                        \
        for (int j = 0; j < RED_LANES; j++) {                                     \
            b[j] = x[0];                                                          \
            nn[j] = 0;                                                            \
        }                                                                         \
        int64_t i = 0;                                                            \
        for (; i + RED_LANES <= n; i += RED_LANES)                                \
            for (int j = 0; j < RED_LANES; j++) {                                 \
                T v = x[i + j];                                                   \
                b[j] = v CMP b[j] ? v : b[j];                                     \
                nn[j] |= v != v;                                                  \
            }                                                                     \
        for (; i < n; i++) {                                                      \
            T v = x[i];                                                           \
            b[0] = v CMP b[0] ? v : b[0];                                         \
            nn[0] |= v != v;                                                      \
        }                                                                         \
        for (int j = 1; j < RED_LANES; j++) {                                     \
            b[0] = b[j] CMP b[0] ? b[j] : b[0];                                   \
            nn[0] |= nn[j];                                                       \
        }                                                                         \
        best = b[0];                                                              \
        nan = nn[0];                                                              \
    } while (0)
#define RED_ROW(S, T, ISF)                                                        \
    CPU_HOT static void row_##S(op_id op, const T *restrict x, int64_t n,       \
                                double mean, red_state *st)                       \
    {                                                                             \
        memset(st, 0, sizeof *st);                                                \
        switch (op) {                                                             \
        case OP_SUM: case OP_MEAN:                                          \
            if (!ISF) {                                                           \
                uint64_t s = 0;                                                   \
                _Pragma("omp simd reduction(+:s)") for (int64_t i = 0; i < n; i++) \
                    s += (uint64_t)(int64_t)x[i];                                 \
                st->isum = s;                                                     \
                st->sum = (double)(int64_t)s;                                     \
                return;                                                           \
            }                                                                     \
            RED_ACC(v);                                                           \
            return;                                                               \
        case OP_NORM:                                                          \
            RED_ACC(v * v);                                                       \
            return;                                                               \
        case OP_VAR: case OP_STD:                                           \
            RED_ACC((v - mean) * (v - mean));                                     \
            return;                                                               \
        default: {                                                                \
            int nan = 0;                                                          \
            T best;                                                               \
            if (op_is_max(op))                                                    \
                RED_EXT(T, >);                                                     \
            else                                                                  \
                RED_EXT(T, <);                                                     \
            st->nan = nan;                                                        \
            st->best = nan ? NAN : (double)best;                                  \
            st->ibest = ISF ? 0 : (int64_t)best;                                  \
            st->idx = -1;                                                         \
            if (op == OP_ARGMAX || op == OP_ARGMIN) {                       \
                for (int64_t i = 0; i < n; i++)                                   \
                    if (nan ? x[i] != x[i] : x[i] == best) {                      \
                        st->idx = i;                                              \
                        break;                                                    \
                    }                                                             \
            }                                                                     \
            return;                                                               \
        }                                                                         \
        }                                                                         \
    }

/* COLUMNS: out_state[j] for j in [0, w) reduces x[k * inner + j] over k < n */
#define RED_COLS(S, T, ISF)                                                       \
    CPU_HOT static void cols_##S(op_id op, const T *restrict x, int64_t n, int64_t inner, \
                         int w, const double *mean, red_state *st)                \
    {                                                                             \
        double acc[CPU_COLS];                                                     \
        T best[CPU_COLS];                                                         \
        int64_t idx[CPU_COLS];                                                    \
        uint64_t iacc[CPU_COLS];                                                  \
        for (int j = 0; j < w; j++) {                                             \
            acc[j] = 0;                                                           \
            iacc[j] = 0;                                                          \
            idx[j] = 0;                                                           \
            best[j] = n > 0 ? x[j] : 0;                                           \
        }                                                                         \
        switch (op) {                                                             \
        case OP_SUM: case OP_MEAN:                                          \
            for (int64_t k = 0; k < n; k++) {                                     \
                const T *r = x + k * inner;                                       \
                if (ISF) {                                                        \
                    _Pragma("omp simd") for (int j = 0; j < w; j++) acc[j] += (double)r[j]; \
                } else {                                                          \
                    _Pragma("omp simd") for (int j = 0; j < w; j++) {             \
                        iacc[j] += (uint64_t)(int64_t)r[j];                       \
                        acc[j] += (double)r[j];                                   \
                    }                                                             \
                }                                                                 \
            }                                                                     \
            break;                                                                \
        case OP_NORM:                                                          \
            for (int64_t k = 0; k < n; k++) {                                     \
                const T *r = x + k * inner;                                       \
                _Pragma("omp simd") for (int j = 0; j < w; j++) acc[j] += (double)r[j] * (double)r[j]; \
            }                                                                     \
            break;                                                                \
        case OP_VAR: case OP_STD:                                           \
            for (int64_t k = 0; k < n; k++) {                                     \
                const T *r = x + k * inner;                                       \
                _Pragma("omp simd") for (int j = 0; j < w; j++) {                 \
                    double d = (double)r[j] - mean[j];                            \
                    acc[j] += d * d;                                              \
                }                                                                 \
            }                                                                     \
            break;                                                                \
        default: {                                                                \
            int mx = op_is_max(op);                                               \
            for (int64_t k = 1; k < n; k++) {                                     \
                const T *r = x + k * inner;                                       \
                if (mx) {                                                         \
                    _Pragma("omp simd") for (int j = 0; j < w; j++) {             \
                        T v = r[j];                                               \
                        int take = v > best[j] || (v != v && best[j] == best[j]); \
                        best[j] = take ? v : best[j];                             \
                        idx[j] = take ? k : idx[j];                               \
                    }                                                             \
                } else {                                                          \
                    _Pragma("omp simd") for (int j = 0; j < w; j++) {             \
                        T v = r[j];                                               \
                        int take = v < best[j] || (v != v && best[j] == best[j]); \
                        best[j] = take ? v : best[j];                             \
                        idx[j] = take ? k : idx[j];                               \
                    }                                                             \
                }                                                                 \
            }                                                                     \
            break;                                                                \
        }                                                                         \
        }                                                                         \
        for (int j = 0; j < w; j++) {                                             \
            st[j].sum = acc[j];                                                   \
            st[j].isum = iacc[j];                                                 \
            st[j].nan = best[j] != best[j];                                       \
            st[j].best = (double)best[j];                                         \
            st[j].ibest = ISF ? 0 : (int64_t)best[j];                             \
            st[j].idx = idx[j];                                                   \
        }                                                                         \
    }

RED_ROW(f32, float, 1)
RED_ROW(f64, double, 1)
RED_ROW(i32, int32_t, 0)
RED_ROW(i64, int64_t, 0)
RED_ROW(u8, uint8_t, 0)
RED_COLS(f32, float, 1)
RED_COLS(f64, double, 1)
RED_COLS(i32, int32_t, 0)
RED_COLS(i64, int64_t, 0)
RED_COLS(u8, uint8_t, 0)

typedef void (*row_fn)(op_id, const void *, int64_t, double, red_state *);
typedef void (*cols_fn)(op_id, const void *, int64_t, int64_t, int, const double *, red_state *);

/* ---- the driver ---- */

typedef struct red_job {
    op_id op;          /* the reduction */
    tensor_dtype dt;         /* input dtype */
    const char *x;       /* contiguous input */
    int64_t outer, n, inner;
    row_fn row;          /* typed kernels */
    cols_fn cols;
    tensor *out;         /* contiguous output of outer * inner elements */
} red_job;

/* store the final value of output element i */
static void finish(const red_job *j, int64_t i, const red_state *st)
{
    char *o = cpu_ptr(j->out);
    tensor_dtype od = j->out->dtype;
    size_t es = tensor_dtype_size(od);
    double n = (double)j->n;
    switch (j->op) {
    case OP_SUM:
        if (is_int(j->dt) && od == DT_I64)
            ((int64_t *)o)[i] = (int64_t)st->isum;
        else if (is_int(j->dt))
            cpu_store(od, o + i * es, (double)(int64_t)st->isum);
        else
            cpu_store(od, o + i * es, st->sum);
        return;
    case OP_MEAN: cpu_store(od, o + i * es, st->sum / n); return;
    case OP_VAR: cpu_store(od, o + i * es, st->sum / n); return;
    case OP_STD: cpu_store(od, o + i * es, sqrt(st->sum / n)); return;
    case OP_NORM: cpu_store(od, o + i * es, sqrt(st->sum)); return;
    case OP_ARGMAX: case OP_ARGMIN: ((int64_t *)o)[i] = st->idx; return;
    default:
        if (is_int(j->dt) && od == DT_I64)
            ((int64_t *)o)[i] = st->ibest;
        else
            cpu_store(od, o + i * es, st->best);
        return;
    }
}

static void merge(op_id op, red_state *a, const red_state *b, int64_t b_start)
{
    a->sum += b->sum;
    a->isum += b->isum;
    if (op == OP_MAX || op == OP_MIN || op == OP_ARGMAX || op == OP_ARGMIN) {
        if (a->nan)
            return;
        int mx = op_is_max(op);
        int take = b->nan || (mx ? (b->ibest > a->ibest || b->best > a->best)
                                 : (b->ibest < a->ibest || b->best < a->best));
        if (take) {
            *a = (red_state){a->sum, a->isum, b->best, b->ibest, b->idx + b_start, b->nan};
        }
    }
}

/* one long row split among threads */
static int reduce_one_row(const red_job *j, const char *x, int64_t i_out, eng_error *err)
{
    size_t es = tensor_dtype_size(j->dt);
    int64_t n = j->n;
    int nt = omp_get_max_threads();
    /* several parts per thread, handed out dynamically, so that a thread the OS
     * preempts holds back one small part rather than half of the work; the split
     * depends only on n, so the result does not depend on the threads */
    int64_t parts = nt > 1 ? n / (2 * CPU_PAR_THRESHOLD) : 1;
    red_state st[64];
    if (parts > 64)
        parts = 64;
    if (parts < 1)
        parts = 1;
    double mean = 0;
    int pass2 = j->op == OP_VAR || j->op == OP_STD;
    for (int pass = 0; pass <= pass2; pass++) {
        op_id op = pass2 && pass == 0 ? OP_SUM : j->op;
#pragma omp parallel for if (parts > 1) schedule(dynamic, 1)
        for (int64_t p = 0; p < parts; p++) {
            int64_t b = n * p / parts, e = n * (p + 1) / parts;
            j->row(op, x + b * (int64_t)es, e - b, mean, &st[p]); /* idx within the part */
        }
        for (int64_t p = 1; p < parts; p++)
            merge(op, &st[0], &st[p], n * p / parts);
        if (pass2 && pass == 0)
            mean = st[0].sum / (double)n;
        if (eng_ctx_interrupted())
            return eng_fail(err, ERR_INTERRUPT, "interrupted");
    }
    finish(j, i_out, &st[0]);
    return 0;
}

static int reduce_rows(const red_job *j, eng_error *err)
{
    volatile sig_atomic_t *stop = eng_ctx_interrupt_flag(); /* the workers have no session */
    size_t es = tensor_dtype_size(j->dt);
    if (j->outer == 1)
        return reduce_one_row(j, j->x, 0, err);
    int pass2 = j->op == OP_VAR || j->op == OP_STD;
    int par = j->outer * j->n >= 2 * CPU_PAR_THRESHOLD;
#pragma omp parallel for if (par) schedule(static)
    for (int64_t o = 0; o < j->outer; o++) {
        if (eng_ctx_flag_get(stop))
            continue;
        const char *x = j->x + o * j->n * (int64_t)es;
        red_state st;
        double mean = 0;
        if (pass2) {
            j->row(OP_SUM, x, j->n, 0, &st);
            mean = st.sum / (double)j->n;
        }
        j->row(j->op, x, j->n, mean, &st);
        finish(j, o, &st);
    }
    return eng_ctx_flag_get(stop) ? eng_fail(err, ERR_INTERRUPT, "interrupted") : 0;
}

static int reduce_cols(const red_job *j, eng_error *err)
{
    volatile sig_atomic_t *stop = eng_ctx_interrupt_flag(); /* the workers have no session */
    size_t es = tensor_dtype_size(j->dt);
    int64_t nblk = (j->inner + CPU_COLS - 1) / CPU_COLS;
    int64_t tasks = j->outer * nblk;
    int pass2 = j->op == OP_VAR || j->op == OP_STD;
    int par = j->outer * j->n * j->inner >= 2 * CPU_PAR_THRESHOLD;
#pragma omp parallel for if (par) schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) {
        if (eng_ctx_flag_get(stop))
            continue;
        int64_t o = t / nblk, j0 = (t % nblk) * CPU_COLS;
        int w = (int)(j->inner - j0 < CPU_COLS ? j->inner - j0 : CPU_COLS);
        const char *x = j->x + (o * j->n * j->inner + j0) * (int64_t)es;
        red_state st[CPU_COLS];
        double mean[CPU_COLS];
        if (pass2) {
            j->cols(OP_SUM, x, j->n, j->inner, w, NULL, st);
            for (int c = 0; c < w; c++)
                mean[c] = st[c].sum / (double)j->n;
        }
        j->cols(j->op, x, j->n, j->inner, w, mean, st);
        for (int c = 0; c < w; c++)
            finish(j, o * j->inner + j0 + c, &st[c]);
    }
    return eng_ctx_flag_get(stop) ? eng_fail(err, ERR_INTERRUPT, "interrupted") : 0;
}

int cpu_reduce(op_id op, tensor *out, const tensor *x, int dim, eng_error *err)
{
    red_job j = {.op = op, .dt = x->dtype, .out = out};
    switch (x->dtype) {
    case DT_F32: j.row = (row_fn)row_f32; j.cols = (cols_fn)cols_f32; break;
    case DT_F64: j.row = (row_fn)row_f64; j.cols = (cols_fn)cols_f64; break;
    case DT_I32: j.row = (row_fn)row_i32; j.cols = (cols_fn)cols_i32; break;
    case DT_I64: j.row = (row_fn)row_i64; j.cols = (cols_fn)cols_i64; break;
    case DT_U8: case DT_BOOL: j.row = (row_fn)row_u8; j.cols = (cols_fn)cols_u8; break;
    default:
        return eng_fail(err, ERR_TYPE, "%s: dtype %s is not supported by the CPU backend's reductions",
                        "reduce", tensor_dtype_name(x->dtype));
    }
    tensor *xc = tensor_contiguous((tensor *)x, err);
    if (!xc)
        return -1;
    j.x = cpu_ptr(xc);
    int64_t numel = tensor_numel(xc);
    if (dim == TENSOR_ALLDIMS) {
        j.outer = 1;
        j.n = numel;
        j.inner = 1;
    } else {
        j.outer = 1;
        j.inner = 1;
        for (int d = 0; d < dim; d++)
            j.outer *= xc->shape[d];
        j.n = xc->shape[dim];
        for (int d = dim + 1; d < xc->ndim; d++)
            j.inner *= xc->shape[d];
    }
    int rc = 0;
    if (j.outer * j.inner == 0) {
        rc = 0;
    } else if (j.n == 0) {
        red_state st;
        memset(&st, 0, sizeof st);
        for (int64_t i = 0; i < j.outer * j.inner; i++)
            finish(&j, i, &st);
    } else if (j.inner == 1) {
        rc = reduce_rows(&j, err);
    } else {
        rc = reduce_cols(&j, err);
    }
    tensor_decref(xc);
    return rc;
}
