/* cu_backend.c — the CUDA tensor backend: eng_backend on device memory.
 *
 * Memory: the caching allocator (cuda/cu_alloc.c) over cudaMalloc/cudaFree, created at
 * the first allocation (which is also when the device is initialised: a session that
 * never makes a CUDA tensor never touches the runtime). Frees go to the cache and are
 * reused by later work on the same stream, so no cudaFree on the hot path.
 *
 * Work: every op goes through the shared dispatcher (cuda/kernels/kk_dispatch.c) to
 * the nvcc-compiled built-in kernels (kk_cuda_ops) on the session's stream; host
 * copies are cudaMemcpyAsync on that stream followed by a stream sync (the host buffer
 * is the caller's and may go right after). Matmul is cuBLAS
 * (cublasGemmStridedBatchedEx): row-major views are handed over as the transposed
 * column-major product out^T = c^T a^T, a transposed view as a transpose flag, a
 * broadcast batch as stride 0; only views cuBLAS cannot describe are copied first.
 * f32 products use CUBLAS_COMPUTE_32F (no TF32) unless TF32 is switched on.
 *
 * Errors: a failed CUDA call or launch becomes ERR_CUDA through cu_fail (which also
 * marks a lost context); a failed allocation is NULL here and ERR_MEMORY in the front
 * end, with cu_backend_last_oom's message for the lead's hook.
 */
#include "cuda/cu_backend.h"
#include "cuda/cu_check.h"
#include "cuda/cu_device.h"
#include "cuda/kernels/kk_dispatch.h"
#include "cuda/nvrtc.h"

#include <cublas_v2.h>
#include <dlfcn.h>
#include <stdio.h>
#include <cuda_runtime_api.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static cu_allocator *cu_mem;           /* made at the first allocation */
static int *cu_status;                 /* the kernels' user-error flag, device int[4] */
static cublasHandle_t cu_blas;         /* made at the first matmul */
static int cu_tf32 = -1;               /* -1: not yet read from KILN_TF32 */
static pthread_mutex_t cu_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- memory ---- */

static void *cu_raw_alloc(size_t bytes, void *ctx)
{
    (void)ctx;
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is not sticky: clear it */
        return NULL;
    }
    return p;
}

static void cu_raw_free(void *p, void *ctx)
{
    (void)ctx;
    cudaFree(p);
}

static int cu_mem_info(size_t *f, size_t *t, void *ctx)
{
    (void)ctx;
    return cudaMemGetInfo(f, t) == cudaSuccess ? 0 : -1;
}

static cu_allocator *cu_allocator_get(void)
{
    pthread_mutex_lock(&cu_lock);
    if (!cu_mem && cu_device_init(NULL) == 0) {
        cu_alloc_ops ops = {cu_raw_alloc, cu_raw_free, cu_mem_info, NULL};
        cu_mem = cu_alloc_new(&ops);
    }
    pthread_mutex_unlock(&cu_lock);
    return cu_mem;
}

static void *cu_be_alloc(size_t bytes)
{
    cu_allocator *a = cu_allocator_get();
    return a ? cu_alloc_get(a, bytes) : NULL;
}

static void cu_be_free(void *p)
{
    if (p && cu_mem)
        cu_alloc_put(cu_mem, p);
}

void cu_backend_stats(cu_alloc_stats *out)
{
    if (cu_mem)
        cu_alloc_get_stats(cu_mem, out);
    else
        memset(out, 0, sizeof *out);
}

size_t cu_backend_release_cache(void)
{
    return cu_mem ? cu_alloc_release_cache(cu_mem) : 0;
}

void cu_backend_last_oom(char *buf, size_t len)
{
    if (cu_mem)
        cu_alloc_last_error(cu_mem, buf, len);
    else if (len)
        buf[0] = 0;
}

static int cu_be_to_host(void *dst, const void *src, size_t bytes, eng_error *err)
{
    if (!bytes)
        return 0;
    if (cu_device_init(err) < 0)
        return -1;
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu_stream()), err);
    return cu_sync(err);
}

static int cu_be_from_host(void *dst, const void *src, size_t bytes, eng_error *err)
{
    if (!bytes)
        return 0;
    if (cu_device_init(err) < 0)
        return -1;
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu_stream()), err);
    return cu_sync(err);
}

/* ---- the dispatcher's device ---- */

static int cu_context(kk_ctx *c, eng_error *err)
{
    if (cu_device_init(err) < 0)
        return -1;
    if (!cu_status) {
        void *p = NULL;
        CU_CHECK(cudaMalloc(&p, 4 * sizeof(int)), err);
        CU_CHECK(cudaMemsetAsync(p, 0, 4 * sizeof(int), cu_stream()), err);
        cu_status = p;
    }
    const cu_props *pr = cu_device_props();
    c->stream = (void *)cu_stream();
    c->max_blocks = pr ? pr->sm_count * 8 : 1024;
    c->status = cu_status;
    return 0;
}

static int cu_launch_fail(int code, const char *what, const kk_ctx *c, eng_error *err)
{
    (void)c;
    return cu_fail((cudaError_t)code, what, __FILE__, __LINE__, err);
}

static const kk_device cu_dev = {&kk_cuda_ops, &cuda_backend, cu_context, cu_launch_fail};

static int cu_unary(op_id op, tensor *out, const tensor *x, double p0, double p1, eng_error *err)
{
    return kk_unary(&cu_dev, op, out, x, p0, p1, err);
}
static int cu_binary(op_id op, tensor *out, const tensor *a, const tensor *b, eng_error *err)
{
    return kk_binary(&cu_dev, op, out, a, b, err);
}
static int cu_reduce(op_id op, tensor *out, const tensor *x, int dim, eng_error *err)
{
    return kk_reduce(&cu_dev, op, out, x, dim, err);
}
static int cu_copy(tensor *dst, const tensor *src, eng_error *err)
{
    return kk_copy(&cu_dev, dst, src, err);
}
static int cu_fill(tensor *dst, double v, eng_error *err)
{
    return kk_fill(&cu_dev, dst, v, err);
}
static int cu_arange(tensor *dst, double start, double step, eng_error *err)
{
    return kk_arange(&cu_dev, dst, start, step, err);
}
static int cu_random(int kind, tensor *dst, const tensor_rng *rng, int64_t lo, int64_t hi, eng_error *err)
{
    return kk_random(&cu_dev, kind, dst, rng, lo, hi, err);
}
static int cu_where(tensor *out, const tensor *cond, const tensor *a, const tensor *b, eng_error *err)
{
    return kk_where(&cu_dev, out, cond, a, b, err);
}
static int cu_gather(tensor *out, const tensor *x, const tensor *idx, int trusted, eng_error *err)
{
    return kk_gather(&cu_dev, out, x, idx, trusted, err);
}
static int cu_argsort(tensor *idx, const tensor *x, int descending, eng_error *err)
{
    return kk_argsort(&cu_dev, idx, x, descending, err);
}
static int cu_scan(int kind, int flags, tensor *out, const tensor *x, const tensor *w, int dim, eng_error *err)
{
    return kk_scan(&cu_dev, kind, flags, out, x, w, dim, err);
}
static int cu_im2col(tensor *cols, const tensor *x, int kh, int kw, int stride, int pad, eng_error *err)
{
    return kk_im2col(&cu_dev, cols, x, kh, kw, stride, pad, err);
}
static int cu_col2im(tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, eng_error *err)
{
    return kk_col2im(&cu_dev, img, cols, kh, kw, stride, pad, err);
}
static int cu_adamw_step(tensor *p, const tensor *g, tensor *m, tensor *v, const eng_step_args *a, eng_error *err)
{
    return kk_adamw_step(&cu_dev, p, g, m, v, a, err);
}
static int cu_sgd_step(tensor *p, const tensor *g, tensor *buf, const eng_step_args *a, eng_error *err)
{
    return kk_sgd_step(&cu_dev, p, g, buf, a, err);
}
static int cu_cross_entropy(tensor *rows, const tensor *logits, const tensor *labels, int check, eng_error *err)
{
    return kk_cross_entropy(&cu_dev, rows, logits, labels, check, err);
}
static int cu_cross_entropy_backward(tensor *dx, const tensor *logits, const tensor *labels, const tensor *gout,
                                    double scale, eng_error *err)
{
    return kk_cross_entropy_backward(&cu_dev, dx, logits, labels, gout, scale, err);
}

/* ---- matmul through cuBLAS ---- */

void cu_backend_set_tf32(int on)
{
    cu_tf32 = on != 0;
}

int cu_backend_tf32(void)
{
    if (cu_tf32 < 0) {
        const char *e = getenv("KILN_TF32");
        cu_tf32 = e && *e == '1';
    }
    return cu_tf32;
}

/* ---- cuBLAS, loaded at the first matmul ---------------------------------------------
 * libcublas (and libcublasLt behind it) costs about 80 ms at every process start when
 * linked, so a kernel on a CPU-only machine would start far slower than a CPU-only build.
 * It is dlopened at the first matmul instead (beside the libcudart in use, then by
 * soname), and called through pointers; the macros keep cuBLAS's own names at the call
 * sites (cublas_v2.h maps cublasCreate to cublasCreate_v2, hence the _v2 names). */
#define BLAS_API(X) X(cublasCreate_v2) X(cublasSetStream_v2) X(cublasGemmEx) X(cublasGemmStridedBatchedEx) \
                    X(cublasGetStatusString)
#define BLAS_PTR(f) static __typeof__(&f) p_##f;
BLAS_API(BLAS_PTR)
#undef BLAS_PTR
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static int blas_ok;         /* every symbol resolved */
static char blas_why[400];  /* why not, when not */

static void blas_load_once(void)
{
    char why[300];
    void *lib = cu_dlopen("libcublas", why, sizeof why);
    if (!lib) {
        snprintf(blas_why, sizeof blas_why, "cuBLAS is not available (%s)", why);
        return;
    }
#define BLAS_SYM(f)                                                                       \
    if (!(*(void **)&p_##f = dlsym(lib, #f))) {                                           \
        snprintf(blas_why, sizeof blas_why, "cuBLAS is not usable: libcublas lacks %s", #f); \
        return;                                                                           \
    }
    BLAS_API(BLAS_SYM)
#undef BLAS_SYM
    blas_ok = 1;
}

/* 0 once cuBLAS is loaded; -1 with err (ERR_CUDA) where it cannot be */
static int blas_load(eng_error *err)
{
    pthread_once(&blas_once, blas_load_once);
    return blas_ok ? 0 : eng_fail(err, ERR_CUDA, "%s", blas_why);
}
#undef cublasCreate
#undef cublasSetStream
#define cublasCreate (*p_cublasCreate_v2)
#define cublasSetStream (*p_cublasSetStream_v2)
#define cublasGemmEx (*p_cublasGemmEx)
#define cublasGemmStridedBatchedEx (*p_cublasGemmStridedBatchedEx)
#define cublasGetStatusString (*p_cublasGetStatusString)

static int blas_fail(cublasStatus_t s, const char *what, eng_error *err)
{
    return eng_fail(err, ERR_CUDA, "%s failed: %s (cuBLAS status %d)", what, cublasGetStatusString(s), (int)s);
}

/* How cuBLAS sees a row-major R x C view with element strides sr, sc as the column-major
 * C x R matrix X^T: *op CUBLAS_OP_N with *ld = sr when rows are contiguous (sc 1), or
 * CUBLAS_OP_T with *ld = sc when columns are (sr 1); -1 when it needs a copy. */
static int blas_view(int64_t R, int64_t C, int64_t sr, int64_t sc, cublasOperation_t *op, int64_t *ld)
{
    int64_t c1 = C > 1 ? C : 1, r1 = R > 1 ? R : 1;
    if ((sc == 1 || C == 1) && (R == 1 || sr >= c1)) {
        *op = CUBLAS_OP_N;
        *ld = R == 1 ? c1 : sr;
        return 0;
    }
    if ((sr == 1 || R == 1) && (C == 1 || sc >= r1)) {
        *op = CUBLAS_OP_T;
        *ld = C == 1 ? r1 : sc;
        return 0;
    }
    return -1;
}

static int cu_matmul(tensor *out, const tensor *a, const tensor *c, eng_error *err)
{
    if (out->dtype != DT_F32 && out->dtype != DT_F64 && out->dtype != DT_F16 && out->dtype != DT_BF16)
        return eng_fail(err, ERR_TYPE, "matmul: the cuda backend multiplies f16, bf16, f32 and f64, got %s",
                        tensor_dtype_name(out->dtype));
    int64_t B = a->shape[0], M = a->shape[1], K = a->shape[2], N = c->shape[2];
    if (B * M * N == 0)
        return 0;
    if (K == 0)
        return cu_fill(out, 0, err);
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || B > INT_MAX)
        return eng_fail(err, ERR_VALUE, "matmul: dimensions too large for cuBLAS");
    if (cu_device_init(err) < 0 || blas_load(err) < 0)
        return -1;
    pthread_mutex_lock(&cu_lock);
    if (!cu_blas) {
        cublasStatus_t s = cublasCreate(&cu_blas);
        if (s != CUBLAS_STATUS_SUCCESS) {
            cu_blas = NULL;
            pthread_mutex_unlock(&cu_lock);
            return blas_fail(s, "cublasCreate", err);
        }
    }
    pthread_mutex_unlock(&cu_lock);
    cublasSetStream(cu_blas, cu_stream());
    tensor *ac = NULL, *cc = NULL;
    int rc = -1;
    cublasOperation_t opa, opc;
    int64_t lda, ldc;
    if (blas_view(M, K, a->stride[1], a->stride[2], &opa, &lda) < 0) {
        if (!(ac = kk_contiguous(&cu_dev, a, err)))
            goto done;
        a = ac;
        blas_view(M, K, a->stride[1], a->stride[2], &opa, &lda);
    }
    if (blas_view(K, N, c->stride[1], c->stride[2], &opc, &ldc) < 0) {
        if (!(cc = kk_contiguous(&cu_dev, c, err)))
            goto done;
        c = cc;
        blas_view(K, N, c->stride[1], c->stride[2], &opc, &ldc);
    }
    {
        size_t es = tensor_dtype_size(out->dtype);
        const char *pa = (const char *)a->storage->data + a->offset * (int64_t)es;
        const char *pc = (const char *)c->storage->data + c->offset * (int64_t)es;
        char *po = (char *)out->storage->data + out->offset * (int64_t)es;
        int f64 = out->dtype == DT_F64;
        cudaDataType_t t = f64 ? CUDA_R_64F
                         : out->dtype == DT_F16 ? CUDA_R_16F
                         : out->dtype == DT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
        /* f16 and bf16 accumulate in f32 (tensor cores); f32 is TF32 only when asked */
        cublasComputeType_t ct = f64 ? CUBLAS_COMPUTE_64F
                                 : t == CUDA_R_32F && cu_backend_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                 : CUBLAS_COMPUTE_32F;
        float a32 = 1.0f, b32 = 0.0f;
        double a64 = 1.0, b64 = 0.0;
        const void *alpha = f64 ? (const void *)&a64 : (const void *)&a32;
        const void *beta = f64 ? (const void *)&b64 : (const void *)&b32;
        /* column-major: out^T [N x M] = c^T [N x K] * a^T [K x M]; one product through
         * cublasGemmEx, as a raw call makes it (cuBLAS may choose another kernel for a
         * strided batch of one) */
        cublasStatus_t s = B == 1
            ? cublasGemmEx(cu_blas, opc, opa, (int)N, (int)M, (int)K, alpha, pc, t, (int)ldc, pa, t, (int)lda, beta,
                           po, t, (int)N, ct, CUBLAS_GEMM_DEFAULT)
            : cublasGemmStridedBatchedEx(
            cu_blas, opc, opa, (int)N, (int)M, (int)K, alpha, pc, t, (int)ldc, (long long)c->stride[0], pa, t,
            (int)lda, (long long)a->stride[0], beta, po, t, (int)N, (long long)(M * N), (int)B, ct,
            CUBLAS_GEMM_DEFAULT);
        if (s != CUBLAS_STATUS_SUCCESS) {
            blas_fail(s, B == 1 ? "cublasGemmEx" : "cublasGemmStridedBatchedEx", err);
            goto done;
        }
    }
    rc = 0;
done:
    if (ac)
        tensor_decref(ac);
    if (cc)
        tensor_decref(cc);
    return rc;
}

/* ---- %time: GPU time from events on the session's stream ---------------------------- */
static cu_timer cu_be_timer; /* one %time at a time: cells run one after another */

static int cu_be_sync(eng_error *err)
{
    return cu_device_available() ? cu_sync(err) : 0;
}

static int cu_be_timer_start(eng_error *err)
{
    return cu_timer_start(&cu_be_timer, err);
}

static int cu_be_timer_stop(double *seconds, eng_error *err)
{
    double ms = 0;
    if (cu_timer_stop(&cu_be_timer, &ms, err) < 0)
        return -1;
    *seconds = ms / 1000.0;
    return 0;
}

/* %device and %gpu: is there a device, and what is it */
static int cu_be_usable(eng_error *err)
{
    if (cu_device_available())
        return 0;
    return eng_fail(err, ERR_RUNTIME, "no CUDA device on this machine");
}

static int cu_be_device_info(eng_device_info *info, eng_error *err)
{
    if (cu_be_usable(err) || cu_device_init(err))
        return -1;
    const cu_props *p = cu_device_props();
    memset(info, 0, sizeof *info);
    info->ordinal = p->ordinal;
    snprintf(info->name, sizeof info->name, "%s", p->name);
    info->major = p->major;
    info->minor = p->minor;
    snprintf(info->arch, sizeof info->arch, "%s", p->arch);
    info->sm_count = p->sm_count;
    size_t fr = 0, tot = 0;
    info->have_free = cudaMemGetInfo(&fr, &tot) == cudaSuccess;
    info->total_mem = info->have_free ? tot : p->total_mem;
    info->free_mem = fr;
    return 0;
}

const eng_backend cuda_backend = {
    .name = "cuda",
    .alloc = cu_be_alloc,
    .free = cu_be_free,
    .to_host = cu_be_to_host,
    .from_host = cu_be_from_host,
    .unary = cu_unary,
    .binary = cu_binary,
    .reduce = cu_reduce,
    .copy = cu_copy,
    .fill = cu_fill,
    .arange = cu_arange,
    .random = cu_random,
    .matmul = cu_matmul,
    .matmul_half = 1,
    .where = cu_where,
    .gather = cu_gather,
    .argsort = cu_argsort,
    .scan = cu_scan,
    .im2col = cu_im2col,
    .col2im = cu_col2im,
    .adamw_step = cu_adamw_step,
    .sgd_step = cu_sgd_step,
    .cross_entropy = cu_cross_entropy,
    .cross_entropy_backward = cu_cross_entropy_backward,
    .kernels = &cuda_kdriver, /* cuda/nvrtc.c */
    .last_oom = cu_backend_last_oom,
    .sync = cu_be_sync,
    .timer_start = cu_be_timer_start,
    .timer_stop = cu_be_timer_stop,
    .usable = cu_be_usable,
    .device_info = cu_be_device_info,
    .alloc_stats = cu_backend_stats,
};
