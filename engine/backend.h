/* backend.h — the interface every device implements (cpu/ now; cuda/ later).
 *
 * The tensor front end (engine/tensor*.c) does every shape, broadcast and dtype
 * decision, then calls one of these with tensors already laid out: inputs are strided
 * views broadcast to the output's shape (stride 0 where broadcast), outputs are freshly
 * allocated contiguous tensors unless said otherwise. Ops are named by kn_opid from
 * engine/ops.def. Each returns 0, or -1 with err filled.
 */
#ifndef KILN_BACKEND_H
#define KILN_BACKEND_H

#include "engine/tensor.h"

struct eng_kdriver;
struct eng_step_args;

typedef struct eng_backend {
    const char *name; /* "cpu", "cuda" */

    void *(*alloc)(size_t bytes);  /* NULL on failure */
    void (*free)(void *p);
    /* host <-> backend memory (memcpy on the CPU) */
    int (*to_host)(void *dst, const void *src, size_t bytes, eng_error *err);
    int (*from_host)(void *dst, const void *src, size_t bytes, eng_error *err);

    /* out = op(x, p0, p1); x has out's shape; out and x may differ in dtype */
    int (*unary)(kn_opid op, tensor *out, const tensor *x, double p0, double p1, eng_error *err);
    /* out = op(a, b); a and b share one dtype (the compute dtype) and out's shape;
     * out's dtype is that dtype, or bool for comparisons */
    int (*binary)(kn_opid op, tensor *out, const tensor *a, const tensor *b, eng_error *err);
    /* reduce x along dim (or every dim when dim == TENSOR_ALLDIMS) into out, whose
     * shape is x's with dim removed (keepdim is the front end's business) */
    int (*reduce)(kn_opid op, tensor *out, const tensor *x, int dim, eng_error *err);
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

    /* runs the cells' __global__ kernels on this backend's memory (engine/kdriver.h) */
    const struct eng_kdriver *kernels;

    /* optional: the message of the last failed alloc ("" if none) — the size asked
     * for and what the device has free (on the CPU: the host memory limit or what the
     * machine has available, engine/hostmem.h) — for the MemoryError */
    void (*last_oom)(char *buf, size_t len);

    /* optional, for %time and %timeit on a device that runs asynchronously (NULL on the
     * CPU): wait for the work queued so far; and time the device's own work between
     * timer_start and timer_stop (CUDA events on the session's stream), in seconds */
    int (*sync)(eng_error *err);
    int (*timer_start)(eng_error *err);
    int (*timer_stop)(double *seconds, eng_error *err);

    /* optional (NULL: conv2d and the pools build their windows from views), for conv2d
     * and pooling (engine/nn.c). x is a contiguous [N, C, H, W], cols a contiguous
     * [N, C*kh*kw, OH*OW] of x's dtype (f32 or f64), OH = (H + 2 pad - kh) / stride + 1
     * (OW likewise): im2col writes cols[n, (c*kh + i)*kw + j, oh*OW + ow] =
     * x[n, c, oh*stride - pad + i, ow*stride - pad + j] (0 outside x); col2im is its
     * adjoint: img (contiguous [N, C, H, W]) = the sum of the cols entries that read
     * each element (img is overwritten, not added to) */
    int (*im2col)(tensor *cols, const tensor *x, int kh, int kw, int stride, int pad, eng_error *err);
    int (*col2im)(tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, eng_error *err);

    /* optional (NULL: engine/optim.c updates with one tensor op at a time), one launch
     * per parameter: p, g and the state buffers contiguous, of one shape and one dtype
     * (f32 or f64), updated in place with the scalars of a (engine/optim.h), each step
     * rounded to the dtype as the op-by-op path rounds it:
     *   adamw_step:  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g*g;
     *                p = p * wdf;  p -= lr/bc1 * m / (sqrt(v / bc2) + eps)
     *   sgd_step:    buf NULL (momentum 0): p = p * wdf - lr g; else
     *                buf = beta1 buf + g;  d = nesterov ? g + beta1 buf : buf;
     *                p = p * wdf - lr d */
    int (*adamw_step)(tensor *p, const tensor *g, tensor *m, tensor *v, const struct eng_step_args *a,
                      eng_error *err);
    int (*sgd_step)(tensor *p, const tensor *g, tensor *buf, const struct eng_step_args *a, eng_error *err);

    /* optional (NULL, or dtypes other than f32/f64: engine/nn.c composes cross_entropy
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
} eng_backend;

/* The scalars of one optimiser step (adamw_step, sgd_step above; engine/optim.c). */
typedef struct eng_step_args {
    double lr;       /* learning rate */
    double beta1;    /* AdamW's beta1; SGD's momentum */
    double beta2;    /* AdamW only */
    double eps;      /* AdamW only */
    double bc1, bc2; /* AdamW's bias corrections 1 - beta1^t, 1 - beta2^t */
    double wdf;      /* decoupled weight decay factor 1 - lr*wd (1: no decay) */
    int nesterov;    /* SGD only */
} eng_step_args;

/* The CPU backend (cpu/). */
extern const eng_backend cpu_backend;

/* The backend new tensors are made on (the session's device): $KILN_DEVICE (cpu, sim,
 * cuda) at start, the CPU when unset or unavailable (cuda/kernels/kk_devices.c). */
const eng_backend *eng_current_backend(void);
/* Makes be the session's device (%device). */
void eng_set_current_backend(const eng_backend *be);
/* The backend named "cpu", "sim" (the CUDA kernels on the simulator) or "cuda"; NULL
 * with err when this build or machine lacks it. */
const eng_backend *eng_backend_named(const char *name, eng_error *err);

#endif
