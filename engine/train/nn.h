/* nn.h — layers, losses and initialisers for training, built on the tensor front end
 * (engine/tensor/tensor.h) so that autograd (engine/train/autograd.c) records them: each function
 * composes recorded ops, and gradients come from their rules.
 *
 * Every function that returns a tensor returns a NEW reference (free it with
 * tensor_decref) or NULL with err filled; arguments are borrowed. Dimensions may be
 * negative (counted from the end). The language's face is engine/lang/builtins_nn.c.
 */
#ifndef KILN_NN_H
#define KILN_NN_H

#include "engine/tensor/tensor.h"

/* ---- activations and their normalised forms ---- */
tensor *nn_softmax(const tensor *x, int dim, eng_error *err);
tensor *nn_log_softmax(const tensor *x, int dim, eng_error *err); /* x - logsumexp(x), stable */

/* ---- losses ---- */
/* logits [N, C] float, labels [N] integer (i32, i64 or u8) in [0, C): the mean over N of
 * -log_softmax(logits)[i, labels[i]]; stable for any finite logits. 0-d, differentiable
 * in logits. Fused (one kernel forward, one backward) where the backend has it, else
 * composed from log_softmax and a one-hot mask. */
tensor *nn_cross_entropy(const tensor *logits, const tensor *labels, eng_error *err);
/* The labels' smallest and largest values (two reads of the device; lo > hi when there
 * are none), for nn_cross_entropy_ranged. */
int nn_label_range(const tensor *labels, int64_t *lo, int64_t *hi, eng_error *err);
/* nn_cross_entropy for labels known to lie in [lo, hi] (fit: nn_label_range of the whole
 * label tensor, once): the range is checked against C on the host, with the same
 * IndexError, and the step reads nothing back from the device. */
tensor *nn_cross_entropy_ranged(const tensor *logits, const tensor *labels, int64_t lo, int64_t hi,
                                eng_error *err);
/* With the backend's fused cross_entropy (engine/tensor/backend.h; f32/f64 logits), the loss is
 * one recorded node (autograd.c) whose gradient is the fused backward; these two are its
 * unrecorded halves: the mean loss (0-d; check as the backend entry's) and
 * dlogits = (softmax - onehot) * g / N for the loss's 0-d gradient g. */
tensor *nn_xent_fused(const tensor *logits, const tensor *labels, int check, eng_error *err);
tensor *nn_xent_backward(const tensor *logits, const tensor *labels, const tensor *g, eng_error *err);
tensor *nn_mse(const tensor *a, const tensor *b, eng_error *err); /* mean((a - b)^2), 0-d */
/* fraction of rows whose argmax equals the label; 0-d f32, never recorded */
tensor *nn_accuracy(const tensor *logits, const tensor *labels, eng_error *err);

/* ---- layers ---- */
/* x @ w + b; w is [in, out], b [out] or NULL */
tensor *nn_linear(const tensor *x, const tensor *w, const tensor *b, eng_error *err);
/* inverted dropout: zeroes each element with probability p and scales the rest by
 * 1/(1-p), drawing from rng; x itself (new reference) when !training or p == 0 */
tensor *nn_dropout(const tensor *x, double p, int training, tensor_rng *rng, eng_error *err);
/* normalises over the last dimension, then * gamma + beta (both [D], either may be NULL) */
tensor *nn_layer_norm(const tensor *x, const tensor *gamma, const tensor *beta, double eps,
                      eng_error *err);
/* x [N, C] or [N, C, H, W]; normalises each channel over the batch (and H, W) when
 * training, and updates running_mean/running_var ([C], either may be NULL) in place,
 * unrecorded: r = (1 - momentum) r + momentum * batch (variance unbiased, as PyTorch);
 * with the running statistics when !training. gamma, beta [C] or NULL. */
tensor *nn_batch_norm(const tensor *x, const tensor *gamma, const tensor *beta,
                      tensor *running_mean, tensor *running_var, int training, double momentum,
                      double eps, eng_error *err);
/* The running-statistics journal, for lr_find (engine/train/train.c), which must put back
 * everything its steps changed: while it is open, nn_batch_norm keeps a copy of each
 * running statistic before its first in-place update. nn_stats_journal_close puts the
 * copies back when restore is set (-1 with err filled if that fails) and empties the
 * journal either way. One journal per session, in its context (engine/base/context.h). */
void nn_stats_journal_open(void);
int nn_stats_journal_close(int restore, eng_error *err);
/* x [N, C, H, W] → its kh x kw windows (stride, zero padding pad) as the columns
 * [N, C*kh*kw, OH*OW] of a matrix, row (c*kh + i)*kw + j. With the backend's im2col for
 * f32/f64 (one recorded node whose gradient is col2im); otherwise built from recorded
 * slices and a stack. conv2d and the pools are built on it. */
tensor *nn_im2col(const tensor *x, int kh, int kw, int stride, int pad, eng_error *err);
/* its adjoint, unrecorded: cols [N, C*kh*kw, OH*OW] summed back into [N, C, H, W]
 * through the backend's col2im (an error when the backend has none) */
tensor *nn_col2im(const tensor *cols, int64_t C, int64_t H, int64_t W, int kh, int kw, int stride, int pad,
                  eng_error *err);
/* x [N, C, H, W], w [O, C, kH, kW], b [O] or NULL → [N, O, H', W']: im2col, then one
 * batched matmul with w as [O, C*kH*kW] */
tensor *nn_conv2d(const tensor *x, const tensor *w, const tensor *b, int stride, int padding,
                  eng_error *err);
/* x [N, C, H, W] (or [C, H, W]); windows k x k, stride (<= 0: k); no padding */
tensor *nn_max_pool2d(const tensor *x, int k, int stride, eng_error *err);
tensor *nn_avg_pool2d(const tensor *x, int k, int stride, eng_error *err);
/* rows of table [V, D] at the integer indices idx: shape idx.shape + [D] */
tensor *nn_embedding(const tensor *idx, const tensor *table, eng_error *err);

/* ---- initialisers (f32, from rng) ---- */
/* Kaiming (He) normal: randn * sqrt(2 / fan_in) */
tensor *nn_kaiming_normal(tensor_rng *rng, int64_t fan_in, int ndim, const int64_t *shape,
                          eng_error *err);
/* Kaiming uniform: U(-a, a), a = sqrt(6 / fan_in) */
tensor *nn_kaiming_uniform(tensor_rng *rng, int64_t fan_in, int ndim, const int64_t *shape,
                           eng_error *err);
/* Xavier (Glorot) uniform for a [fan_in, fan_out] matrix: U(-a, a), a = sqrt(6/(in+out)) */
tensor *nn_xavier_uniform(tensor_rng *rng, int64_t fan_in, int64_t fan_out, eng_error *err);

#endif
