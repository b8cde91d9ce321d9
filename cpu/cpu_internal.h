/* cpu_internal.h — what the CPU backend's files share: the strided iterator that every
 * elementwise loop runs on, the names of the shared element loads and stores
 * (numeric/elem.h), and the entry points each file contributes to cpu_backend.
 *
 * The iterator takes up to CPU_MAXOP operands of one shape with strides in bytes,
 * merges dimensions that are contiguous in every operand, and calls a kernel on runs
 * of the innermost dimension. Large iterations are split into chunks run by OpenMP
 * threads; between chunks it checks the running session's interrupt flag (its address
 * taken on the calling thread: engine/base/context.h).
 */
#ifndef KILN_CPU_INTERNAL_H
#define KILN_CPU_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include "engine/tensor/backend.h"
#include "engine/base/context.h"
#include "numeric/elem.h"

#define CPU_MAXOP 4
/* elements per chunk of work: below this an op runs on one thread */
#define CPU_PAR_THRESHOLD 32768

/* A kernel over one run of n elements: p[k] points at operand k's first element,
 * s[k] is its stride in bytes. ctx is the caller's. */
typedef void (*cpu_kernel)(void *ctx, int64_t n, char **p, const int64_t *s);

typedef struct cpu_iter {
    int ndim;                                 /* after merging, >= 1 */
    int nop;                                  /* operands */
    int64_t numel;                            /* product of shape */
    int64_t shape[TENSOR_MAXDIM];             /* merged shape, innermost last */
    int64_t stride[CPU_MAXOP][TENSOR_MAXDIM]; /* bytes, per operand and merged dim */
    char *base[CPU_MAXOP];                    /* first element of each operand */
} cpu_iter;

/* Builds an iterator over tensors ts[0..nop-1], all of shape ts[0]'s. */
void cpu_iter_init(cpu_iter *it, int nop, const tensor *const *ts);
/* Runs kern over everything, on several threads when numel is large and parallel is
 * set. Returns 0, or -1 with an "interrupted" error when the session was interrupted. */
int cpu_iter_run(const cpu_iter *it, cpu_kernel kern, void *ctx, int parallel, eng_error *err);

/* ---- generic element access (slow paths only): numeric/elem.h, shared with the CUDA kernels ---- */
#define cpu_load num_load
#define cpu_store num_store
#define cpu_d2i64 num_d2i64
#define cpu_f16_to_f32 num_f16_to_f32
#define cpu_f32_to_f16 num_f32_to_f16
#define cpu_bf16_to_f32 num_bf16_to_f32
#define cpu_f32_to_bf16 num_f32_to_bf16

/* ---- entry points (one file each) ---- */
int cpu_unary(op_id op, tensor *out, const tensor *x, double p0, double p1, eng_error *err);
int cpu_binary(op_id op, tensor *out, const tensor *a, const tensor *b, eng_error *err);
int cpu_reduce(op_id op, tensor *out, const tensor *x, int dim, eng_error *err);
int cpu_copy(tensor *dst, const tensor *src, eng_error *err);
int cpu_fill(tensor *dst, double v, eng_error *err);
int cpu_matmul(tensor *out, const tensor *a, const tensor *c, eng_error *err);
int cpu_random(int kind, tensor *dst, const tensor_rng *rng, int64_t lo, int64_t hi, eng_error *err);
int cpu_arange(tensor *dst, double start, double step, eng_error *err);
int cpu_where(tensor *out, const tensor *cond, const tensor *a, const tensor *b, eng_error *err);
int cpu_gather(tensor *out, const tensor *x, const tensor *idx, int trusted, eng_error *err); /* checks even trusted indices: it costs the CPU nothing */
int cpu_im2col(tensor *cols, const tensor *x, int kh, int kw, int stride, int pad, eng_error *err); /* cpu_conv.c */
int cpu_col2im(tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, eng_error *err);
/* cpu_train.c */
int cpu_adamw_step(tensor *p, const tensor *g, tensor *m, tensor *v, const eng_step_args *a, eng_error *err);
int cpu_sgd_step(tensor *p, const tensor *g, tensor *buf, const eng_step_args *a, eng_error *err);
int cpu_cross_entropy(tensor *rows, const tensor *logits, const tensor *labels, int check, eng_error *err);
int cpu_cross_entropy_backward(tensor *dx, const tensor *logits, const tensor *labels, const tensor *gout,
                               double scale, eng_error *err);

/* cpu_sort.c */
int cpu_argsort(tensor *idx, const tensor *x, int descending, eng_error *err);
int cpu_scan(int kind, int flags, tensor *out, const tensor *x, const tensor *w, int dim, eng_error *err);

/* vectorisable expf, about 1 ulp (cpu_elementwise.c) */
float cpu_expf(float x);

/* pointer to element 0 of a tensor's view */
static inline char *cpu_ptr(const tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)tensor_dtype_size(t->dtype);
}

#endif
