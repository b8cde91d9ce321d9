/* backend.h — the interface every device implements (cpu/ now; cuda/ later).
 *
 * The tensor front end (engine/tensor*.c) does every shape, broadcast and dtype
 * decision, then calls one of these with tensors already laid out: inputs are strided
 * views broadcast to the output's shape (stride 0 where broadcast), outputs are freshly
 * allocated contiguous tensors unless said otherwise. Ops are named by op_id from
 * engine/tensor/ops.def. Each returns 0, or -1 with err filled.
 */
#ifndef KILN_BACKEND_H
#define KILN_BACKEND_H

#include "engine/tensor/tensor.h"
#include "engine/base/hostmem.h"

struct eng_kdriver;
struct eng_step_args;

/* A caching allocator's counters (cuda/cu_alloc.c keeps them; %gpu shows them). */
typedef struct eng_alloc_stats {
    size_t in_use;        /* bytes (rounded) of the blocks handed out now */
    size_t requested;     /* bytes asked for by the blocks handed out now */
    size_t cached;        /* bytes of the free blocks kept for reuse */
    size_t peak;          /* highest in_use seen */
    size_t reserved;      /* in_use + cached: what the raw allocator holds for us */
    uint64_t n_alloc;     /* allocations that returned memory */
    uint64_t n_hit;       /* ... of which served from the cache */
    uint64_t n_raw_alloc; /* raw allocations (cudaMalloc) that succeeded */
    uint64_t n_raw_free;  /* raw frees (cudaFree) */
    uint64_t n_oom;       /* requests that failed even after releasing the cache */
    uint64_t n_flush;     /* times the cache was released to retry an allocation */
} eng_alloc_stats;

/* The physical device behind a backend (%gpu). */
typedef struct eng_device_info {
    int ordinal;      /* the device's ordinal */
    char name[256];   /* "NVIDIA H100 80GB HBM3" */
    int major, minor; /* compute capability */
    char arch[16];    /* "sm_90" */
    int sm_count;     /* multiprocessors */
    size_t total_mem; /* bytes */
    size_t free_mem;  /* bytes free now, when have_free */
    int have_free;    /* 0: the free memory could not be read */
} eng_device_info;

typedef struct eng_backend {
    const char *name; /* "cpu", "cuda" */

    void *(*alloc)(size_t bytes);  /* NULL on failure */
    void (*free)(void *p);
    /* host <-> backend memory (memcpy on the CPU) */
    int (*to_host)(void *dst, const void *src, size_t bytes, eng_error *err);
    int (*from_host)(void *dst, const void *src, size_t bytes, eng_error *err);

    /* out = op(x, p0, p1); x has out's shape; out and x may differ in dtype */
    int (*unary)(op_id op, tensor *out, const tensor *x, double p0, double p1, eng_error *err);
    /* out = op(a, b); a and b share one dtype (the compute dtype) and out's shape;
     * out's dtype is that dtype, or bool for comparisons */
    int (*binary)(op_id op, tensor *out, const tensor *a, const tensor *b, eng_error *err);
    /* reduce x along dim (or every dim when dim == TENSOR_ALLDIMS) into out, whose
     * shape is x's with dim removed (keepdim is the front end's business) */
    int (*reduce)(op_id op, tensor *out, const tensor *x, int dim, eng_error *err);
    /* dst = src elementwise with cast; same shape; dst may be any strided view */
    int (*copy)(tensor *dst, const tensor *src, eng_error *err);
    int (*fill)(tensor *dst, double v, eng_error *err);
    int (*arange)(tensor *dst, double start, double step, eng_error *err); /* contiguous 1-D */
    /* kind 0: uniform [0,1), 1: normal, 2: integers [lo, hi); counters from rng->offset */
    int (*random)(int kind, tensor *dst, const tensor_rng *rng, int64_t lo, int64_t hi, eng_error *err);
    /* out[b] = a[b] @ c[b] for 3-D views [B,M,K] x [B,K,N] -> contiguous [B,M,N]; float
     * dtypes; a and c may be transposed or batch-broadcast views */
    int (*matmul)(tensor *out, const tensor *a, const tensor *c, eng_error *err);
    /* nonzero when matmul also multiplies f16 and bf16 (out, a and c of one dtype,
     * accumulated in f32: cuBLAS's tensor cores); elsewhere the front end computes a
     * half-precision product in f32 and rounds the result */
    int matmul_half;
    /* out = cond ? a : b; all of out's shape; a, b of out's dtype */
    int (*where)(tensor *out, const tensor *cond, const tensor *a, const tensor *b, eng_error *err);
    /* out = x[idx] along dim 0; idx is i32 or i64, checked in range by the backend */
    /* trusted: the caller knows every index is in range (fit's batches are slices of a
     * permutation), so a device backend skips its check and the host read of its status */
    int (*gather)(tensor *out, const tensor *x, const tensor *idx, int trusted, eng_error *err);

    /* ordering and scans (engine/tensor/tensor_order.c). argsort: x a contiguous [R, N] of
     * f32, f64, i32 or i64, idx a contiguous i64 [R, N]: each row's indices in sorted
     * order, ascending (descending 0) or descending, stable (equal keys keep their order),
     * NaN above every number. scan: out and x (and w when not NULL) contiguous, of one
     * dtype (f32, f64 or i64) and shape; a running sum (ENG_SCAN_SUM) or product along
     * dim, from the end with ENG_SCAN_REVERSE, excluding the element itself (identity
     * first) with ENG_SCAN_EXCLUSIVE; w (sums only): the carry is multiplied by w at the
     * element it leaves, out[i] = x[i] + w[i-1] out[i-1] (reverse: w[i+1] out[i+1]) */
    int (*argsort)(tensor *idx, const tensor *x, int descending, eng_error *err);
    int (*scan)(int kind, int flags, tensor *out, const tensor *x, const tensor *w, int dim, eng_error *err);

    /* runs the cells' __global__ kernels on this backend's memory (engine/tensor/kdriver.h) */
    const struct eng_kdriver *kernels;

    /* optional: the message of the last failed alloc ("" if none) — the size asked
     * for and what the device has free (on the CPU: the host memory limit or what the
     * machine has available, engine/base/hostmem.h) — for the MemoryError */
    void (*last_oom)(char *buf, size_t len);

    /* optional, for %time and %timeit on a device that runs asynchronously (NULL on the
     * CPU): wait for the work queued so far; and time the device's own work between
     * timer_start and timer_stop (CUDA events on the session's stream), in seconds */
    int (*sync)(eng_error *err);
    int (*timer_start)(eng_error *err);
    int (*timer_stop)(double *seconds, eng_error *err);

    /* optional (NULL: conv2d and the pools build their windows from views), for conv2d
     * and pooling (engine/train/nn.c). x is a contiguous [N, C, H, W], cols a contiguous
     * [N, C*kh*kw, OH*OW] of x's dtype (f32 or f64), OH = (H + 2 pad - kh) / stride + 1
     * (OW likewise): im2col writes cols[n, (c*kh + i)*kw + j, oh*OW + ow] =
     * x[n, c, oh*stride - pad + i, ow*stride - pad + j] (0 outside x); col2im is its
     * adjoint: img (contiguous [N, C, H, W]) = the sum of the cols entries that read
     * each element (img is overwritten, not added to) */
    int (*im2col)(tensor *cols, const tensor *x, int kh, int kw, int stride, int pad, eng_error *err);
    int (*col2im)(tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, eng_error *err);

    /* optional (NULL: engine/train/optim.c updates with one tensor op at a time), one launch
     * per parameter: p, g and the state buffers contiguous, of one shape and one dtype
     * (f32 or f64), updated in place with the scalars of a (engine/train/optim.h), each step
     * rounded to the dtype as the op-by-op path rounds it:
     *   adamw_step:  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g*g;
     *                p = p * wdf;  p -= lr/bc1 * m / (sqrt(v / bc2) + eps)
     *   sgd_step:    buf NULL (momentum 0): p = p * wdf - lr g; else
     *                buf = beta1 buf + g;  d = nesterov ? g + beta1 buf : buf;
     *                p = p * wdf - lr d */
    int (*adamw_step)(tensor *p, const tensor *g, tensor *m, tensor *v, const struct eng_step_args *a,
                      eng_error *err);
    int (*sgd_step)(tensor *p, const tensor *g, tensor *buf, const struct eng_step_args *a, eng_error *err);

    /* optional (NULL, or dtypes other than f32/f64: engine/train/nn.c composes cross_entropy
     * from log_softmax and a one-hot mask). logits a contiguous [N, C] (f32 or f64),
     * labels a contiguous [N] (i32, i64 or u8), both on this backend.
     * cross_entropy: rows (contiguous [N], logits' dtype) = logsumexp(logits[i]) -
     * logits[i, labels[i]], max-subtracted. check 1: a label outside [0, C) is the
     * IndexError "cross_entropy: label L out of range for C classes" (L the smallest
     * label when negative, else the largest: the composed path's message), which may
     * cost the device a host synchronisation; check 0: the caller has checked the
     * labels' range already (fit: once per call), nothing is read back, and a row with a
     * bad label gets NaN instead of an error.
     * cross_entropy_backward: dx (contiguous [N, C], logits' dtype) = (softmax(logits) -
     * onehot(labels)) * gout * scale, gout a 0-d tensor of logits' dtype on this backend
     * that the kernel reads itself (no host read), scale the host's factor (1/N) */
    int (*cross_entropy)(tensor *rows, const tensor *logits, const tensor *labels, int check, eng_error *err);
    int (*cross_entropy_backward)(tensor *dx, const tensor *logits, const tensor *labels, const tensor *gout,
                                  double scale, eng_error *err);

    /* ---- optional entries for the magics (%device, %gpu, %ptx): what the engine may
     * know of a device without including its code ---- */
    /* 0 when the backend can run here; -1 with err saying why not (no device, a driver
     * too old). NULL: always usable. */
    int (*usable)(eng_error *err);
    /* the device behind the backend; -1 with err when it cannot be opened */
    int (*device_info)(eng_device_info *info, eng_error *err);
    /* the backend's caching allocator's counters */
    void (*alloc_stats)(eng_alloc_stats *st);
    /* the memory the backend may use in bytes, 0 for no limit (the simulator's
     * $KILN_SIM_CAPACITY) */
    size_t (*capacity)(void);
} eng_backend;

/* scan's kinds and flags (argsort and scan above) */
#define ENG_SCAN_SUM 0
#define ENG_SCAN_PROD 1
#define ENG_SCAN_REVERSE 1
#define ENG_SCAN_EXCLUSIVE 2

/* The scalars of one optimiser step (adamw_step, sgd_step above; engine/train/optim.c). */
typedef struct eng_step_args {
    double lr;       /* learning rate */
    double beta1;    /* AdamW's beta1; SGD's momentum */
    double beta2;    /* AdamW only */
    double eps;      /* AdamW only */
    double bc1, bc2; /* AdamW's bias corrections 1 - beta1^t, 1 - beta2^t */
    double wdf;      /* decoupled weight decay factor 1 - lr*wd (1: no decay) */
    int nesterov;    /* SGD only */
} eng_step_args;

/* ---- the registry (engine/tensor/backend.c) ----
 * The backends this build links: cpu (cpu/), sim (cuda/sim_backend.c: the CUDA kernels
 * on the simulator) and, when built with the CUDA toolkit, cuda (cuda/cu_backend.c).
 * The engine names them by their symbols only; it includes none of their headers. */
extern const eng_backend cpu_backend;

/* The backend new tensors are made on (the running session's device, held in its
 * eng_ctx): $KILN_DEVICE (cpu, sim, cuda) at start, the CPU when unset or unusable. */
const eng_backend *eng_current_backend(void);
/* Makes be the running session's device (%device). */
void eng_set_current_backend(const eng_backend *be);
/* The backend named "cpu", "sim" (the CUDA kernels on the simulator) or "cuda"; NULL
 * with err when this build or machine lacks it. */
const eng_backend *eng_backend_named(const char *name, eng_error *err);
/* The backend of that name if this build links it, usable here or not (%gpu, %ptx);
 * NULL otherwise. */
const eng_backend *eng_backend_linked(const char *name);
/* eng_human_bytes ("1.50 GiB" style, for messages): engine/base/hostmem.h */

#endif
