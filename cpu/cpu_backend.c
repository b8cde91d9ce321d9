/* cpu_backend.c — the CPU backend's table, its memory, and the strided iterator.
 *
 * Memory: every block carries a 64-byte header with its capacity and is 64-byte
 * aligned. Freed blocks of 256 KiB and more are kept in a small cache (at most
 * CPU_CACHE_SLOTS blocks and CPU_CACHE_BYTES in all) and handed out again for a
 * request that fits without wasting more than a quarter: a loop that makes a new 40 MB
 * tensor every iteration then reuses pages already mapped instead of faulting them in
 * again. The cache is guarded by a mutex.
 *
 * Also here: copy (with casts), fill, arange, where and gather, the data-movement ops.
 */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed" /* omp simd is a hint where clang cannot */
#endif
#include "cpu/cpu_internal.h"
#include "engine/base/hostmem.h"
#include "engine/tensor/kdriver.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

#define CPU_HDR 64
#define CPU_CACHE_MIN (256u << 10)
#define CPU_CACHE_SLOTS 16
#define CPU_CACHE_BYTES ((size_t)768 << 20)

typedef struct cpu_cached {
    void *base;  /* block start (header) */
    size_t cap;  /* usable bytes after the header */
} cpu_cached;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cpu_cached cache[CPU_CACHE_SLOTS]; /* base NULL: empty slot */
static size_t cache_bytes;                /* sum of cap over the cache */

/* frees every cached block (when the machine runs short of memory) */
static void cache_flush(void)
{
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < CPU_CACHE_SLOTS; i++)
        if (cache[i].base) {
            free(cache[i].base);
            cache[i].base = NULL;
        }
    cache_bytes = 0;
    pthread_mutex_unlock(&cache_lock);
}

/* Every live block's capacity is tracked by engine/base/hostmem.h; a request past the host
 * budget (a limit, or what the machine has available: the cache is released and the
 * machine asked again first) returns NULL, and cpu_last_oom says why. */
static void *cpu_alloc(size_t bytes)
{
    if (bytes >= CPU_CACHE_MIN) {
        pthread_mutex_lock(&cache_lock);
        int best = -1;
        for (int i = 0; i < CPU_CACHE_SLOTS; i++)
            if (cache[i].base && cache[i].cap >= bytes && cache[i].cap - bytes <= bytes / 4 &&
                (best < 0 || cache[i].cap < cache[best].cap))
                best = i;
        if (best >= 0 && eng_hostmem_check_limit(cache[best].cap, NULL, NULL) == 0) {
            void *base = cache[best].base;
            size_t cap = cache[best].cap;
            cache_bytes -= cap;
            cache[best].base = NULL;
            pthread_mutex_unlock(&cache_lock);
            eng_hostmem_track(cap);
            return (char *)base + CPU_HDR;
        }
        pthread_mutex_unlock(&cache_lock);
    }
    if (bytes > SIZE_MAX - CPU_HDR - 4096) {
        eng_hostmem_note_failure(bytes);
        return NULL;
    }
    size_t cap = (bytes + 63) & ~(size_t)63;
    if (eng_hostmem_check(cap, NULL, NULL) < 0) {
        if (!cache_bytes || (cache_flush(), eng_hostmem_check(cap, NULL, NULL) < 0))
            return NULL;
    }
    void *base = NULL;
    if (posix_memalign(&base, 64, cap + CPU_HDR) != 0) {
        eng_hostmem_note_failure(cap);
        return NULL;
    }
    *(size_t *)base = cap;
    eng_hostmem_track(cap);
    return (char *)base + CPU_HDR;
}

/* why the last allocation failed: the size asked for and the limit or what the
 * machine has available (engine/tensor/tensor.c's MemoryError) */
static void cpu_last_oom(char *buf, size_t len)
{
    eng_hostmem_last(buf, len);
}

static void cpu_free(void *p)
{
    if (!p)
        return;
    void *base = (char *)p - CPU_HDR;
    size_t cap = *(size_t *)base;
    eng_hostmem_untrack(cap);
    if (cap >= CPU_CACHE_MIN && cap <= CPU_CACHE_BYTES) {
        pthread_mutex_lock(&cache_lock);
        /* evict the largest blocks until this one fits */
        while (cache_bytes + cap > CPU_CACHE_BYTES) {
            int big = -1;
            for (int i = 0; i < CPU_CACHE_SLOTS; i++)
                if (cache[i].base && (big < 0 || cache[i].cap > cache[big].cap))
                    big = i;
            if (big < 0)
                break;
            free(cache[big].base);
            cache_bytes -= cache[big].cap;
            cache[big].base = NULL;
        }
        int slot = -1;
        for (int i = 0; i < CPU_CACHE_SLOTS && slot < 0; i++)
            if (!cache[i].base)
                slot = i;
        if (slot < 0) { /* full: replace the smallest if this one is larger */
            for (int i = 0; i < CPU_CACHE_SLOTS; i++)
                if (slot < 0 || cache[i].cap < cache[slot].cap)
                    slot = i;
            if (cache[slot].cap >= cap) {
                pthread_mutex_unlock(&cache_lock);
                free(base);
                return;
            }
            free(cache[slot].base);
            cache_bytes -= cache[slot].cap;
        }
        cache[slot].base = base;
        cache[slot].cap = cap;
        cache_bytes += cap;
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    free(base);
}

static int cpu_to_host(void *dst, const void *src, size_t bytes, eng_error *err)
{
    if (bytes)
        memcpy(dst, src, bytes);
    return 0;
}

/* ---- the iterator ---- */

void cpu_iter_init(cpu_iter *it, int nop, const tensor *const *ts)
{
    it->nop = nop;
    for (int k = 0; k < nop; k++)
        it->base[k] = cpu_ptr(ts[k]);
    it->ndim = tensor_merge_dims(nop, ts, it->shape, it->stride, &it->numel);
}

/* elements [i0, i1) in row-major order of the merged shape */
static void iter_range(const cpu_iter *it, int64_t i0, int64_t i1, cpu_kernel kern, void *ctx)
{
    int nd = it->ndim;
    int64_t idx[TENSOR_MAXDIM];
    int64_t rem = i0;
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = rem % it->shape[d];
        rem /= it->shape[d];
    }
    int64_t i = i0;
    while (i < i1) {
        char *p[CPU_MAXOP];
        int64_t s[CPU_MAXOP];
        for (int k = 0; k < it->nop; k++) {
            char *q = it->base[k];
            for (int d = 0; d < nd; d++)
                q += idx[d] * it->stride[k][d];
            p[k] = q;
            s[k] = it->stride[k][nd - 1];
        }
        int64_t run = it->shape[nd - 1] - idx[nd - 1];
        if (run > i1 - i)
            run = i1 - i;
        kern(ctx, run, p, s);
        i += run;
        idx[nd - 1] += run;
        for (int d = nd - 1; d > 0 && idx[d] >= it->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
}

int cpu_iter_run(const cpu_iter *it, cpu_kernel kern, void *ctx, int parallel, eng_error *err)
{
    int64_t n = it->numel;
    if (n == 0)
        return 0;
    volatile sig_atomic_t *stop_flag = eng_ctx_interrupt_flag(); /* the workers have no session */
    int nthreads = parallel ? omp_get_max_threads() : 1;
    if (nthreads <= 1 || n < 2 * CPU_PAR_THRESHOLD) {
        iter_range(it, 0, n, kern, ctx);
        return eng_ctx_flag_get(stop_flag) ? eng_fail(err, ERR_INTERRUPT, "interrupted") : 0;
    }
    /* many chunks handed out dynamically: a thread the OS preempts holds back one
     * chunk (at most 256K elements), not a fixed share of the work */
    int64_t chunk = n / ((int64_t)nthreads * 8);
    if (chunk < CPU_PAR_THRESHOLD)
        chunk = CPU_PAR_THRESHOLD;
    if (chunk > ((int64_t)1 << 18))
        chunk = (int64_t)1 << 18;
    int64_t nchunks = (n + chunk - 1) / chunk;
    int stopped = 0;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t c = 0; c < nchunks; c++) {
        if (eng_ctx_flag_get(stop_flag)) {
            __atomic_store_n(&stopped, 1, __ATOMIC_RELAXED);
            continue;
        }
        int64_t i0 = c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        iter_range(it, i0, i1, kern, ctx);
    }
    if (stopped || eng_ctx_flag_get(stop_flag))
        return eng_fail(err, ERR_INTERRUPT, "interrupted");
    return 0;
}

/* ---- copy with cast ---- */

typedef struct copy_ctx {
    tensor_dtype dt_dst, dt_src; /* element types */
} copy_ctx;

#define COPY_SAME(T, name)                                                         \
    static void name(void *ctx, int64_t n, char **p, const int64_t *s)             \
    {                                                                              \
        (void)ctx;                                                                 \
        if (s[0] == (int64_t)sizeof(T) && s[1] == (int64_t)sizeof(T)) {            \
            memcpy(p[0], p[1], (size_t)n * sizeof(T));                             \
            return;                                                                \
        }                                                                          \
        char *o = p[0];                                                            \
        const char *a = p[1];                                                      \
        for (int64_t i = 0; i < n; i++)                                            \
            *(T *)(o + i * s[0]) = *(const T *)(a + i * s[1]);                     \
    }
COPY_SAME(uint8_t, copy_1)
COPY_SAME(uint16_t, copy_2)
COPY_SAME(uint32_t, copy_4)
COPY_SAME(uint64_t, copy_8)

/* typed conversions between the common dtypes; DCONV turns a source value into the
 * destination type (bool destinations test != 0) */
#define CONV(TD, TS, name, DCONV)                                                  \
    static void name(void *ctx, int64_t n, char **p, const int64_t *s)             \
    {                                                                              \
        (void)ctx;                                                                 \
        if (s[0] == (int64_t)sizeof(TD) && s[1] == (int64_t)sizeof(TS)) {          \
            TD *restrict o = (TD *)p[0];                                           \
            const TS *restrict a = (const TS *)p[1];                               \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = DCONV(a[i]); \
            return;                                                                \
        }                                                                          \
        for (int64_t i = 0; i < n; i++)                                            \
            *(TD *)(p[0] + i * s[0]) = DCONV(*(const TS *)(p[1] + i * s[1]));      \
    }
#define CV_PLAIN(x) (x)
#define CV_F2I(x) ((x) != (x) ? 0 : (x))
#define CV_BOOL(x) ((x) != 0)
CONV(float, double, conv_f32_f64, (float)CV_PLAIN)
CONV(double, float, conv_f64_f32, (double)CV_PLAIN)
CONV(float, int32_t, conv_f32_i32, (float)CV_PLAIN)
CONV(float, int64_t, conv_f32_i64, (float)CV_PLAIN)
CONV(float, uint8_t, conv_f32_u8, (float)CV_PLAIN)
CONV(double, int32_t, conv_f64_i32, (double)CV_PLAIN)
CONV(double, int64_t, conv_f64_i64, (double)CV_PLAIN)
CONV(double, uint8_t, conv_f64_u8, (double)CV_PLAIN)
CONV(int64_t, int32_t, conv_i64_i32, (int64_t)CV_PLAIN)
CONV(int64_t, uint8_t, conv_i64_u8, (int64_t)CV_PLAIN)
CONV(int32_t, uint8_t, conv_i32_u8, (int32_t)CV_PLAIN)
CONV(int32_t, int64_t, conv_i32_i64, (int32_t)CV_PLAIN)
CONV(uint8_t, float, conv_bool_f32, CV_BOOL)
CONV(uint8_t, double, conv_bool_f64, CV_BOOL)
CONV(uint8_t, int32_t, conv_bool_i32, CV_BOOL)
CONV(uint8_t, int64_t, conv_bool_i64, CV_BOOL)
CONV(uint8_t, uint8_t, conv_bool_u8, CV_BOOL)

static void copy_generic(void *vctx, int64_t n, char **p, const int64_t *s)
{
    const copy_ctx *c = vctx;
    for (int64_t i = 0; i < n; i++)
        cpu_store(c->dt_dst, p[0] + i * s[0], cpu_load(c->dt_src, p[1] + i * s[1]));
}

static cpu_kernel conv_kernel(tensor_dtype d, tensor_dtype s)
{
#define PAIR(a, b) ((a) * DT_COUNT + (b))
    switch (PAIR(d, s)) {
    case PAIR(DT_F32, DT_F64): return conv_f32_f64;
    case PAIR(DT_F64, DT_F32): return conv_f64_f32;
    case PAIR(DT_F32, DT_I32): return conv_f32_i32;
    case PAIR(DT_F32, DT_I64): return conv_f32_i64;
    case PAIR(DT_F32, DT_U8): case PAIR(DT_F32, DT_BOOL): return conv_f32_u8;
    case PAIR(DT_F64, DT_I32): return conv_f64_i32;
    case PAIR(DT_F64, DT_I64): return conv_f64_i64;
    case PAIR(DT_F64, DT_U8): case PAIR(DT_F64, DT_BOOL): return conv_f64_u8;
    case PAIR(DT_I64, DT_I32): return conv_i64_i32;
    case PAIR(DT_I64, DT_U8): case PAIR(DT_I64, DT_BOOL): return conv_i64_u8;
    case PAIR(DT_I32, DT_U8): case PAIR(DT_I32, DT_BOOL): return conv_i32_u8;
    case PAIR(DT_I32, DT_I64): return conv_i32_i64;
    case PAIR(DT_BOOL, DT_F32): return conv_bool_f32;
    case PAIR(DT_BOOL, DT_F64): return conv_bool_f64;
    case PAIR(DT_BOOL, DT_I32): return conv_bool_i32;
    case PAIR(DT_BOOL, DT_I64): return conv_bool_i64;
    case PAIR(DT_BOOL, DT_U8): return conv_bool_u8;
    case PAIR(DT_U8, DT_BOOL): return copy_1;
    default: return NULL;
    }
#undef PAIR
}

int cpu_copy(tensor *dst, const tensor *src, eng_error *err)
{
    const tensor *ts[2] = {dst, src};
    cpu_iter it;
    cpu_iter_init(&it, 2, ts);
    copy_ctx c = {dst->dtype, src->dtype};
    cpu_kernel k = NULL;
    if (dst->dtype == src->dtype) {
        switch (tensor_dtype_size(dst->dtype)) {
        case 1: k = copy_1; break;
        case 2: k = copy_2; break;
        case 4: k = copy_4; break;
        default: k = copy_8; break;
        }
    } else {
        k = conv_kernel(dst->dtype, src->dtype);
    }
    /* conversions to integers from floats go through the guarded generic path */
    if (!k || (!tensor_dtype_is_float(dst->dtype) && dst->dtype != DT_BOOL && tensor_dtype_is_float(src->dtype)))
        k = copy_generic;
    return cpu_iter_run(&it, k, &c, 1, err);
}

/* ---- fill, arange ---- */

typedef struct fill_ctx {
    unsigned char pattern[8]; /* the value in the destination's representation */
    size_t size;              /* element size */
} fill_ctx;

static void fill_kernel(void *vctx, int64_t n, char **p, const int64_t *s)
{
    const fill_ctx *c = vctx;
    if (c->size == 4 && s[0] == 4) {
        uint32_t v;
        memcpy(&v, c->pattern, 4);
        uint32_t *o = (uint32_t *)p[0];
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            o[i] = v;
        return;
    }
    if (c->size == 8 && s[0] == 8) {
        uint64_t v;
        memcpy(&v, c->pattern, 8);
        uint64_t *o = (uint64_t *)p[0];
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            o[i] = v;
        return;
    }
    if (c->size == 1 && s[0] == 1) {
        memset(p[0], c->pattern[0], (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy(p[0] + i * s[0], c->pattern, c->size);
}

int cpu_fill(tensor *dst, double v, eng_error *err)
{
    fill_ctx c;
    memset(&c, 0, sizeof c);
    c.size = tensor_dtype_size(dst->dtype);
    cpu_store(dst->dtype, (char *)c.pattern, v);
    const tensor *ts[1] = {dst};
    cpu_iter it;
    cpu_iter_init(&it, 1, ts);
    return cpu_iter_run(&it, fill_kernel, &c, 1, err);
}

int cpu_arange(tensor *dst, double start, double step, eng_error *err)
{
    int64_t n = tensor_numel(dst);
    char *o = cpu_ptr(dst);
    size_t es = tensor_dtype_size(dst->dtype);
    if (dst->dtype == DT_F32) {
        float *f = (float *)o;
        for (int64_t i = 0; i < n; i++)
            f[i] = (float)(start + (double)i * step);
    } else if (dst->dtype == DT_I64 && start == (double)(int64_t)start && step == (double)(int64_t)step) {
        int64_t *q = (int64_t *)o, a = (int64_t)start, b = (int64_t)step;
        for (int64_t i = 0; i < n; i++)
            q[i] = a + i * b;
    } else {
        for (int64_t i = 0; i < n; i++)
            cpu_store(dst->dtype, o + (size_t)i * es, start + (double)i * step);
    }
    return 0;
}

/* ---- where ---- */

#define WHERE(T, name)                                                             \
    static void name(void *ctx, int64_t n, char **p, const int64_t *s)             \
    {                                                                              \
        (void)ctx;                                                                 \
        if (s[0] == sizeof(T) && s[1] == 1 && s[2] == sizeof(T) && s[3] == sizeof(T)) { \
            T *restrict o = (T *)p[0];                                             \
            const uint8_t *restrict c = (const uint8_t *)p[1];                     \
            const T *restrict a = (const T *)p[2], *restrict b = (const T *)p[3];  \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) o[i] = c[i] ? a[i] : b[i]; \
            return;                                                                \
        }                                                                          \
        for (int64_t i = 0; i < n; i++)                                            \
            *(T *)(p[0] + i * s[0]) = *(const uint8_t *)(p[1] + i * s[1])          \
                                          ? *(const T *)(p[2] + i * s[2])          \
                                          : *(const T *)(p[3] + i * s[3]);         \
    }
WHERE(uint8_t, where_1)
WHERE(uint16_t, where_2)
WHERE(uint32_t, where_4)
WHERE(uint64_t, where_8)

int cpu_where(tensor *out, const tensor *cond, const tensor *a, const tensor *b, eng_error *err)
{
    if (cond->dtype != DT_BOOL && cond->dtype != DT_U8)
        return eng_fail(err, ERR_TYPE, "where: the condition must be bool, got %s",
                        tensor_dtype_name(cond->dtype));
    const tensor *ts[4] = {out, cond, a, b};
    cpu_iter it;
    cpu_iter_init(&it, 4, ts);
    cpu_kernel k;
    switch (tensor_dtype_size(out->dtype)) {
    case 1: k = where_1; break;
    case 2: k = where_2; break;
    case 4: k = where_4; break;
    default: k = where_8; break;
    }
    return cpu_iter_run(&it, k, NULL, 1, err);
}

/* ---- gather ---- */

int cpu_gather(tensor *out, const tensor *x, const tensor *idx, int trusted, eng_error *err)
{
    int64_t nidx = tensor_numel(idx);
    int64_t rows = x->ndim > 0 ? x->shape[0] : 1;
    int64_t *iv = eng_host_malloc(sizeof(int64_t) * (size_t)nidx, "gather", err);
    if (!iv)
        return -1;
    /* indices in row-major order, checked */
    for (int64_t k = 0; k < nidx; k++) {
        int64_t v = (int64_t)tensor_get_flat(idx, k);
        if (v < 0)
            v += rows;
        if (v < 0 || v >= rows) {
            int64_t orig = (int64_t)tensor_get_flat(idx, k);
            free(iv);
            return eng_fail(err, ERR_INDEX, "index %lld is out of range for dimension 0 of size %lld",
                            (long long)orig, (long long)rows);
        }
        iv[k] = v;
    }
    /* each selected row of x is a view x[v] of shape x.shape[1:], copied to out row k */
    tensor row = *x;
    row.ndim = x->ndim - 1;
    for (int d = 1; d < x->ndim; d++) {
        row.shape[d - 1] = x->shape[d];
        row.stride[d - 1] = x->stride[d];
    }
    tensor dst = *out;
    dst.ndim = row.ndim;
    int64_t rowel = 1;
    for (int d = 0; d < row.ndim; d++) {
        dst.shape[d] = row.shape[d];
        rowel *= row.shape[d];
    }
    int64_t st = 1;
    for (int d = row.ndim - 1; d >= 0; d--) {
        dst.stride[d] = st;
        st *= dst.shape[d];
    }
    int rc = 0;
    if (x->ndim == 1 && out->dtype == x->dtype) { /* one element per index (sort's values): copied by size */
        size_t es = tensor_dtype_size(x->dtype);
        const char *xb = cpu_ptr(x);
        char *ob = cpu_ptr(out);
        for (int64_t k = 0; k < nidx; k++)
            memcpy(ob + (size_t)k * es, xb + iv[k] * x->stride[0] * (int64_t)es, es);
        nidx = 0;
    }
    for (int64_t k = 0; k < nidx && rc == 0; k++) {
        row.offset = x->offset + iv[k] * x->stride[0];
        dst.offset = out->offset + k * rowel;
        rc = cpu_copy(&dst, &row, err);
    }
    free(iv);
    return rc;
}

const eng_backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .last_oom = cpu_last_oom,
    .to_host = cpu_to_host,
    .from_host = cpu_to_host,
    .unary = cpu_unary,
    .binary = cpu_binary,
    .reduce = cpu_reduce,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .arange = cpu_arange,
    .random = cpu_random,
    .matmul = cpu_matmul,
    .where = cpu_where,
    .gather = cpu_gather,
    .argsort = cpu_argsort,
    .scan = cpu_scan,
    .kernels = &sim_kdriver,
    .im2col = cpu_im2col,
    .col2im = cpu_col2im,
    .adamw_step = cpu_adamw_step,
    .sgd_step = cpu_sgd_step,
    .cross_entropy = cpu_cross_entropy,
    .cross_entropy_backward = cpu_cross_entropy_backward,
};
