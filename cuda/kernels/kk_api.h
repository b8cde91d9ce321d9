/* kk_api.h — the built-in kernels' interface, shared by the C dispatcher
 * (cuda/kernels/kk_dispatch.c) and the kernels' launchers (the .cuh files of cuda/kernels/).
 *
 * The built-in kernels are written once, in CUDA C++ (the .cuh files of cuda/kernels/), and compiled
 * twice: by nvcc for the GPU (cuda/kernels/cuda_kernels.cu, only with CUDA) and by the
 * host C++ compiler against the CUDA simulator's header (cuda/sim_backend_kernels.cc,
 * always), so CI runs their logic without a GPU. Each compilation exports one kk_ops
 * table of launchers (kk_cuda_ops, kk_sim_ops). The C dispatcher does what is common to
 * both devices: dimension merging, dtype choices, temporaries, error messages; the
 * launchers only pick the kernel template and launch it on the context's stream.
 *
 * Launchers return 0 or a nonzero code: a cudaError_t on the GPU, -1 on the simulator
 * with the message in kk_ctx.msg. Kernels that detect a user error (an integer division
 * by zero, a gather index out of range) store 1 into ctx->status[0] (device memory);
 * the dispatcher reads it back. Plain stores of the same value: no atomics needed.
 *
 * All strides here are in BYTES; all pointers are device pointers.
 */
#ifndef KILN_KK_API_H
#define KILN_KK_API_H

#include <stdint.h>
#include "numeric/elem.h" /* the dtype codes KK_* mirror */

#ifdef __cplusplus
extern "C" {
#endif

#define KK_MAXDIM 8 /* = TENSOR_MAXDIM */
#define KK_MAXOP 4

/* dtype codes: the same numbers as tensor_dtype (engine/tensor/tensor.h) */
enum { KK_BOOL = NUM_BOOL, KK_U8 = NUM_U8, KK_I32 = NUM_I32, KK_I64 = NUM_I64, KK_F16 = NUM_F16, KK_BF16 = NUM_BF16, KK_F32 = NUM_F32, KK_F64 = NUM_F64 };

/* Up to KK_MAXOP operands of one shape, dimensions merged where contiguous in all. */
typedef struct kk_iter {
    int ndim;                             /* >= 1 */
    int nop;                              /* operands; operand 0 is the output */
    int64_t numel;                        /* elements */
    int64_t shape[KK_MAXDIM];             /* merged shape, innermost last */
    int64_t stride[KK_MAXOP][KK_MAXDIM];  /* bytes */
    char *base[KK_MAXOP];                 /* first element of each operand */
    int contig;                           /* 1: ndim 1 and every operand dense or (inputs) stride 0 */
} kk_iter;

/* One reduction: contiguous x seen as [outer, n, inner], reducing n. */
typedef struct kk_reduce_job {
    int op;              /* op_id of the reduction (SUM ... NORM) */
    int dt, odt;         /* input and output dtypes */
    const char *x;       /* input */
    char *out;           /* contiguous output, outer * inner elements */
    int64_t outer, n, inner;
    int splits;          /* rows (inner 1): parts per row, one block each; 0: a thread per output */
    void *partial;       /* temp: outer * inner * max(splits, 1) kk_red_state */
    double *mean;        /* temp: outer * inner doubles (var/std) */
} kk_reduce_job;

/* The running state of one reduction (kernels' and dispatcher's view agree on size). */
typedef struct kk_red_state {
    double sum;      /* float sum, sum of squares or squared deviations */
    uint64_t isum;   /* integer sum, wrapping */
    double best;     /* extreme so far (floats) */
    int64_t ibest;   /* extreme so far (integers), exact */
    int64_t idx;     /* its index; -1: no element seen */
    int32_t nan;     /* a NaN was seen */
    int32_t pad;
} kk_red_state;

/* out[b] = a[b] @ c[b], strides in elements; the simulator's (and fallback) matmul */
typedef struct kk_matmul_job {
    int dt;                          /* KK_F32 or KK_F64 */
    int64_t B, M, N, K;
    const char *a, *c;               /* first elements */
    char *out;                       /* contiguous [B, M, N] */
    int64_t sa[3], sc[3];            /* strides of a and c (batch, row, col), elements */
} kk_matmul_job;

/* x's rows gathered along dim 0: out (contiguous) row k = x[idx[k]] */
typedef struct kk_gather_job {
    int esize;                       /* element size */
    int ndim;                        /* dims of a row (x.ndim - 1), merged */
    int64_t shape[KK_MAXDIM];        /* a row's shape */
    int64_t stride[KK_MAXDIM];       /* x's strides of those dims, bytes */
    int64_t row_stride;              /* x's stride of dim 0, bytes */
    int64_t rowel;                   /* elements per row */
    int64_t nidx;                    /* rows gathered */
    int64_t rows;                    /* x.shape[0] */
    const char *x;                   /* x's first element */
    const int64_t *idx;              /* contiguous i64 indices (may be negative) */
    char *out;
} kk_gather_job;

/* im2col (src: contiguous images [NC, H, W], dst: columns [NC*kh*kw, OH*OW]) or col2im
 * (src: the columns, dst: the images, overwritten); see engine/tensor/backend.h */
typedef struct kk_conv_job {
    int dt;                          /* KK_F32 or KK_F64 */
    int64_t NC, H, W;                /* image planes (N*C) and their size */
    int64_t kh, kw, stride, pad;     /* the window */
    int64_t OH, OW;                  /* output positions */
    const char *src;
    char *dst;
} kk_conv_job;

/* One optimiser step of one parameter (engine/tensor/backend.h's adamw_step and sgd_step):
 * p, g, m, v contiguous, n elements of dtype dt each */
typedef struct kk_step_job {
    int dt;                          /* KK_F32 or KK_F64 */
    int nesterov;                    /* SGD */
    int64_t n;
    char *p;
    const char *g;
    char *m;                         /* AdamW's first moment; SGD's momentum buffer or NULL */
    char *v;                         /* AdamW's second moment */
    double lr, beta1, beta2, eps, bc1, bc2, wdf;
} kk_step_job;

/* cross_entropy's forward (out: the row losses [N]) or backward (out: dx [N, C]) */
typedef struct kk_xent_job {
    int dt;                          /* KK_F32 or KK_F64: the logits */
    int ldt;                         /* KK_I32, KK_I64 or KK_U8: the labels */
    int check;                       /* forward: store 1 into status[0] for a label outside [0, C) */
    int64_t N, C;
    const char *x;                   /* contiguous logits [N, C] */
    const char *labels;              /* contiguous [N] */
    char *out;
    const char *gout;                /* backward: the 0-d output gradient (dtype dt, device) */
    double scale;                    /* backward: dx = (softmax - onehot) * gout * scale */
    int *status;                     /* the context's status word */
} kk_xent_job;

/* argsort of each row of a contiguous [rows, n] (engine/tensor/backend.h's argsort) */
typedef struct kk_sort_job {
    int dt;                          /* KK_F32, KK_F64, KK_I32 or KK_I64 */
    int descending;
    int64_t rows, n;
    int64_t pow2;                    /* the smallest power of two >= n */
    const char *x;                   /* contiguous keys */
    int64_t *idx;                    /* contiguous [rows, n] i64 */
} kk_sort_job;

/* = ENG_SCAN_* of engine/tensor/backend.h */
enum { KK_SCAN_SUM = 0, KK_SCAN_PROD = 1, KK_SCAN_REVERSE = 1, KK_SCAN_EXCLUSIVE = 2 };

/* a running sum or product along n of contiguous [outer, n, inner] (backend.h's scan) */
typedef struct kk_scan_job {
    int dt;                          /* KK_F32, KK_F64 or KK_I64 */
    int kind, flags;                 /* ENG_SCAN_SUM/PROD; ENG_SCAN_REVERSE | ENG_SCAN_EXCLUSIVE */
    int64_t outer, n, inner;
    const char *x, *w;               /* w: NULL, or the carry's multipliers */
    char *out;
} kk_scan_job;

/* Where a launch runs. */
typedef struct kk_ctx {
    void *stream;        /* cudaStream_t (GPU), NULL (simulator) */
    int max_blocks;      /* grid-stride kernels use at most this many blocks */
    int *status;         /* device int[4]: [0] user error flag */
    char msg[256];       /* the simulator's launch error */
} kk_ctx;

typedef struct kk_ops {
    const char *name;    /* "cuda", "sim" */
    /* out = op(x) elementwise; it: operands out, x */
    int (*unary)(kk_ctx *c, int op, int dout, int din, const kk_iter *it, double p0, double p1);
    /* out = op(a, b); it: out, a, b */
    int (*binary)(kk_ctx *c, int op, int dout, int din, const kk_iter *it);
    /* dst = (cast) src; it: dst, src */
    int (*copy)(kk_ctx *c, int ddst, int dsrc, const kk_iter *it);
    /* every element of it's operand 0 = the esize-byte pattern */
    int (*fill)(kk_ctx *c, int esize, uint64_t pattern, const kk_iter *it);
    int (*arange)(kk_ctx *c, int dt, char *dst, int64_t n, double start, double step);
    /* it: out, cond (bool), a, b */
    int (*where)(kk_ctx *c, int esize, const kk_iter *it);
    /* kind 0 uniform, 1 normal, 2 integers in [lo, lo + range) */
    int (*random)(kk_ctx *c, int kind, int dt, char *dst, int64_t n, uint64_t seed, uint64_t offset,
                  int64_t lo, uint64_t range);
    /* status[0] = 1 if some idx[k] is outside [-rows, rows) */
    int (*gather_check)(kk_ctx *c, const int64_t *idx, int64_t n, int64_t rows);
    int (*gather)(kk_ctx *c, const kk_gather_job *j);
    int (*reduce)(kk_ctx *c, const kk_reduce_job *j);
    int (*matmul)(kk_ctx *c, const kk_matmul_job *j);
    int (*im2col)(kk_ctx *c, const kk_conv_job *j);
    int (*col2im)(kk_ctx *c, const kk_conv_job *j);
    int (*adamw_step)(kk_ctx *c, const kk_step_job *j);
    int (*sgd_step)(kk_ctx *c, const kk_step_job *j);
    int (*xent)(kk_ctx *c, const kk_xent_job *j);
    int (*xent_backward)(kk_ctx *c, const kk_xent_job *j);
    int (*argsort)(kk_ctx *c, const kk_sort_job *j); /* cuda/kernels/kk_sort.cuh */
    int (*scan)(kk_ctx *c, const kk_scan_job *j);
} kk_ops;

extern const kk_ops kk_sim_ops;  /* cuda/sim_backend_kernels.cc: always */
extern const kk_ops kk_cuda_ops; /* cuda/kernels/cuda_kernels.cu: CUDA builds */

#ifdef __cplusplus
}
#endif

#endif
