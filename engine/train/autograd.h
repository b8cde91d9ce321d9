/* autograd.h — reverse-mode automatic differentiation over the tensor front end.
 *
 * A tensor computed, while grad mode is on, from an input that requires a gradient gets
 * requires_grad = 1 and a node (tensor->autograd) that records the op, holds references
 * to its inputs and the few parameters backward needs. The nodes form the tape; it lives
 * exactly as long as the tensors that point at it: tensor_decref releases a tensor's
 * node when the tensor dies, and backward releases the whole graph below the loss once
 * it has filled the leaves' .grad. Leaves are tensors marked by ag_param (no node).
 *
 * The hook: each recorded front-end function (tensor_ops.c, the views of tensor.c)
 * starts with `if (TENSOR_RECORDS(x)) return tensor_recorder_hooks->xxx(...)`
 * (engine/tensor/record.h: the tensor layer knows the interface, not autograd), which
 * ag_install points at the ag_xxx twins below; ag_xxx turns grad mode off, calls the
 * same function again (so internal helper calls record nothing), turns it back on and
 * records one node for the result. With nothing requiring grad that costs one
 * branch. Grad mode belongs to the running session (its eng_ctx, engine/base/context.h):
 * set_grad_enabled(false) in one session leaves another recording.
 */
#ifndef KILN_AUTOGRAD_H
#define KILN_AUTOGRAD_H

#include "engine/tensor/tensor.h"
#include "engine/tensor/record.h"

/* The running session's grad mode: 1 at start; set_grad_enabled(false) clears it. */
int ag_grad_mode(void);
/* Sets it (0 or 1); returns the previous mode, to be put back with ag_set_grad_mode. */
int ag_set_grad_mode(int on);

/* Installs the recording twins below as the tensor layer's recorder (record.h); called
 * by eng_session_new and by ag_param, so it is in place before any tensor requires grad. */
void ag_install(void);
/* nn.c's fused nodes: the same test */
#define AG_WANTS(t) TENSOR_RECORDS(t)

/* ---- the language's built-ins ---- */
/* marks t (float) as a leaf that requires a gradient; a new reference to it */
tensor *ag_param(tensor *t, eng_error *err);
/* fills .grad of every leaf below loss (a one-element float tensor), accumulating, and
 * frees the graph below loss */
int ag_backward(tensor *loss, eng_error *err);
/* a view of x's storage that requires no gradient and has no node */
tensor *ag_detach(tensor *x, eng_error *err);

/* ---- debugging ---- */
int64_t ag_live_nodes(void); /* nodes allocated and not yet freed */

/* ---- called by tensor.c ---- */
void ag_node_release(void *node); /* tensor_decref of a tensor with a node */
/* the error for an in-place write into a tensor that requires grad (grad mode on) */
int ag_refuse_inplace(const tensor *t, eng_error *err);

/* ---- the recording twins of the front end (the recorder's entries) ---- */
tensor *ag_unary(op_id op, const tensor *x, double p0, double p1, eng_error *err);
tensor *ag_binary(op_id op, const tensor *a, const tensor *b, eng_error *err);
tensor *ag_binary_scalar(op_id op, const tensor *t, double s, int s_is_float, int scalar_left,
                         eng_error *err);
tensor *ag_where(const tensor *c, const tensor *a, const tensor *b, eng_error *err);
tensor *ag_reduce(op_id op, const tensor *x, int dim, int keepdim, eng_error *err);
tensor *ag_matmul(const tensor *a, const tensor *b, eng_error *err);
tensor *ag_cat(tensor *const *ts, int n, int dim, eng_error *err);
tensor *ag_gather(const tensor *x, const tensor *idx, eng_error *err);
tensor *ag_scan(int kind, const tensor *x, int dim, eng_error *err); /* cumsum, cumprod */
tensor *ag_cast(const tensor *t, tensor_dtype dt, eng_error *err);
tensor *ag_slice(tensor *t, int dim, int64_t start, int64_t stop, int64_t step, eng_error *err);
tensor *ag_select(tensor *t, int dim, int64_t index, eng_error *err);
tensor *ag_transpose(tensor *t, int d0, int d1, eng_error *err);
tensor *ag_permute(tensor *t, const int *dims, int n, eng_error *err);
tensor *ag_expand(tensor *t, int ndim, const int64_t *shape, eng_error *err);
tensor *ag_squeeze(tensor *t, int dim, eng_error *err);
tensor *ag_unsqueeze(tensor *t, int dim, eng_error *err);
tensor *ag_reshape(tensor *t, int ndim, const int64_t *shape, eng_error *err);
/* nn_im2col through the backend (engine/train/nn.c): its gradient is col2im */
tensor *ag_im2col(const tensor *x, int kh, int kw, int stride, int pad, eng_error *err);
/* nn_xent_fused (the backend's cross_entropy) as one node: its gradient is the fused
 * backward, dlogits = (softmax - onehot) * g / N */
tensor *ag_cross_entropy(const tensor *logits, const tensor *labels, int check, eng_error *err);
/* ---- custom nodes: a function of the language with its own backward (set_backward,
 * engine/lang/custom_ops.c); the callback lives in the language, above this layer ---- */
typedef struct ag_custom_fn {
    /* fills grads[i] (zero-filled, each with in[i]'s shape, dtype and device) from the
     * inputs, the output (a view without a node) and its gradient gout (contiguous);
     * grad mode is off; 0, or -1 with err filled */
    int (*backward)(void *ctx, tensor *const *in, int nin, tensor *out, tensor *gout, tensor *const *grads,
                    eng_error *err);
    void (*release)(void *ctx); /* the node is freed: drop ctx */
} ag_custom_fn;
/* Records one AG_CUSTOM node for out (computed with grad mode off from in[0..nin)) when
 * an input requires grad and out is float. Steals out and ctx; returns out, or a fresh
 * view of it when out is an input or records already, or NULL with err filled. */
tensor *ag_custom(tensor *out, tensor *const *in, int nin, const ag_custom_fn *fns, void *ctx, eng_error *err);
struct eng_backend;
tensor *ag_to(const tensor *t, const struct eng_backend *be, eng_error *err);

#endif
