/* kk_dispatch.h — the host half of the built-in kernels: what the CUDA backend
 * (cuda/cu_backend.c) and the simulator backend (cuda/sim_backend.c) share.
 *
 * A kk_device names a kernel table (kk_ops), the eng_backend whose memory the tensors
 * live in (for temporaries and host reads), and how to get a launch context and turn a
 * launcher's error code into an eng_error. The kk_* functions below implement the
 * eng_backend entry points of the same names on top of it: merging dimensions, picking
 * the contiguous fast path, making inputs contiguous where a kernel needs it, reading
 * back the kernels' user-error flag (integer division by zero, gather index), and
 * producing the same error messages as the CPU backend.
 */
#ifndef KILN_KK_DISPATCH_H
#define KILN_KK_DISPATCH_H

#include "engine/tensor/backend.h"
#include "cuda/kernels/kk_api.h"

typedef struct kk_device {
    const kk_ops *ops;           /* the launchers */
    const eng_backend *be;       /* the backend owning the memory */
    /* fills c (stream, max_blocks, status) making the device ready; -1 with err */
    int (*context)(kk_ctx *c, eng_error *err);
    /* err from a launcher's nonzero code; returns -1 */
    int (*fail)(int code, const char *what, const kk_ctx *c, eng_error *err);
} kk_device;

int kk_unary(const kk_device *d, op_id op, tensor *out, const tensor *x, double p0, double p1, eng_error *err);
int kk_binary(const kk_device *d, op_id op, tensor *out, const tensor *a, const tensor *b, eng_error *err);
int kk_reduce(const kk_device *d, op_id op, tensor *out, const tensor *x, int dim, eng_error *err);
int kk_copy(const kk_device *d, tensor *dst, const tensor *src, eng_error *err);
int kk_fill(const kk_device *d, tensor *dst, double v, eng_error *err);
int kk_arange(const kk_device *d, tensor *dst, double start, double step, eng_error *err);
int kk_random(const kk_device *d, int kind, tensor *dst, const tensor_rng *rng, int64_t lo, int64_t hi,
              eng_error *err);
int kk_where(const kk_device *d, tensor *out, const tensor *cond, const tensor *a, const tensor *b, eng_error *err);
int kk_gather(const kk_device *d, tensor *out, const tensor *x, const tensor *idx, int trusted, eng_error *err);
/* the tiled kernel (the simulator's matmul; cuBLAS on the GPU) */
int kk_matmul_tiled(const kk_device *d, tensor *out, const tensor *a, const tensor *c, eng_error *err);
/* the eng_backend entries of the same names (cuda/kernels/kk_conv.cuh) */
int kk_im2col(const kk_device *d, tensor *cols, const tensor *x, int kh, int kw, int stride, int pad, eng_error *err);
int kk_col2im(const kk_device *d, tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, eng_error *err);

/* the eng_backend entries of the same names (cuda/kernels/kk_train.cuh) */
int kk_adamw_step(const kk_device *d, tensor *p, const tensor *g, tensor *m, tensor *v, const eng_step_args *a,
                  eng_error *err);
int kk_sgd_step(const kk_device *d, tensor *p, const tensor *g, tensor *buf, const eng_step_args *a, eng_error *err);
/* check reads the status word back (one synchronisation); without it nothing is read */
int kk_cross_entropy(const kk_device *d, tensor *rows, const tensor *logits, const tensor *labels, int check,
                     eng_error *err);
int kk_cross_entropy_backward(const kk_device *d, tensor *dx, const tensor *logits, const tensor *labels,
                              const tensor *gout, double scale, eng_error *err);

/* the eng_backend entries of the same names (cuda/kernels/kk_order.c, kernels in kk_sort.cuh) */
int kk_argsort(const kk_device *d, tensor *idx, const tensor *x, int descending, eng_error *err);
int kk_scan(const kk_device *d, int kind, int flags, tensor *out, const tensor *x, const tensor *w, int dim,
            eng_error *err);

/* a contiguous tensor on d's backend (for temporaries); NULL with err */
tensor *kk_temp(const kk_device *d, tensor_dtype dt, int ndim, const int64_t *shape, eng_error *err);
/* t itself (new reference) if contiguous, else a contiguous copy on d's backend */
tensor *kk_contiguous(const kk_device *d, const tensor *t, eng_error *err);

#endif
