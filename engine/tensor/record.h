/* record.h — how the tensor layer lets autograd, a layer above it (engine/train), record
 * the ops it runs, without knowing autograd.
 *
 * Each recorded front-end function (tensor_ops.c, the views of tensor.c) starts with
 * `if (TENSOR_RECORDS(x)) return tensor_recorder_hooks->xxx(...)`: when an input requires
 * a gradient and the running session's grad mode is on, the installed recorder runs the
 * op (with grad mode off, so helper calls record nothing) and attaches one node to the
 * result. autograd installs its recorder (engine/train/autograd.c, ag_install) when a
 * session starts or a tensor is first marked as a parameter; only then can a tensor
 * require a gradient, so with no recorder installed nothing ever asks to record. The
 * pointer is process-wide and written once (the same table for every session).
 */
#ifndef KILN_TENSOR_RECORD_H
#define KILN_TENSOR_RECORD_H

#include "engine/tensor/tensor.h"
#include "engine/base/context.h"

struct eng_backend;

typedef struct tensor_recorder {
    tensor *(*unary)(op_id op, const tensor *x, double p0, double p1, eng_error *err);
    tensor *(*binary)(op_id op, const tensor *a, const tensor *b, eng_error *err);
    tensor *(*binary_scalar)(op_id op, const tensor *t, double s, int s_is_float, int scalar_left,
                             eng_error *err);
    tensor *(*where)(const tensor *c, const tensor *a, const tensor *b, eng_error *err);
    tensor *(*reduce)(op_id op, const tensor *x, int dim, int keepdim, eng_error *err);
    tensor *(*matmul)(const tensor *a, const tensor *b, eng_error *err);
    tensor *(*cat)(tensor *const *ts, int n, int dim, eng_error *err);
    tensor *(*gather)(const tensor *x, const tensor *idx, eng_error *err);
    tensor *(*scan)(int kind, const tensor *x, int dim, eng_error *err); /* cumsum, cumprod */
    tensor *(*cast)(const tensor *t, tensor_dtype dt, eng_error *err);
    tensor *(*slice)(tensor *t, int dim, int64_t start, int64_t stop, int64_t step, eng_error *err);
    tensor *(*select)(tensor *t, int dim, int64_t index, eng_error *err);
    tensor *(*transpose)(tensor *t, int d0, int d1, eng_error *err);
    tensor *(*permute)(tensor *t, const int *dims, int n, eng_error *err);
    tensor *(*expand)(tensor *t, int ndim, const int64_t *shape, eng_error *err);
    tensor *(*squeeze)(tensor *t, int dim, eng_error *err);
    tensor *(*unsqueeze)(tensor *t, int dim, eng_error *err);
    tensor *(*reshape)(tensor *t, int ndim, const int64_t *shape, eng_error *err);
    tensor *(*to)(const tensor *t, const struct eng_backend *be, eng_error *err);
    /* tensor_decref of a tensor with a node */
    void (*node_release)(void *node);
    /* the error for an in-place write into a tensor that requires grad */
    int (*refuse_inplace)(const tensor *t, eng_error *err);
} tensor_recorder;

/* The installed recorder, or NULL (engine/tensor/tensor.c). */
extern const tensor_recorder *tensor_recorder_hooks;
/* Installs r (autograd's ag_install does). */
void tensor_set_recorder(const tensor_recorder *r);

/* the running session's grad mode (its eng_ctx) */
static inline int tensor_grad_mode(void) { return eng_ctx_current()->grad_enabled; }

#define TENSOR_RECORDS(t) ((t)->requires_grad && tensor_recorder_hooks && tensor_grad_mode())
#define TENSOR_RECORDS2(a, b) \
    (((a)->requires_grad || (b)->requires_grad) && tensor_recorder_hooks && tensor_grad_mode())

#endif
