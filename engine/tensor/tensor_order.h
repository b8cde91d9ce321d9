/* tensor_order.h — ordering, scans, counting and sampling: the tensor front end of
 * sort, argsort, topk, cumsum, cumprod, unique, bincount, any/all, allclose,
 * nan_to_num, randperm, multinomial and shuffle (engine/tensor/tensor_order.c), on the
 * backends' argsort and scan entries (engine/tensor/backend.h) and the ops of tensor.h.
 *
 * Conventions as tensor.h: results are new references or NULL with err filled; dim < 0
 * counts from the end; every error names the op and the shapes. Sorting is stable (equal
 * keys keep their order) with NaN above every number, so both backends give the same
 * indices. Values follow autograd: sort and topk take their values with tensor_gather
 * (recorded), cumsum and cumprod record a node of their own (engine/train/autograd.c).
 */
#ifndef KILN_TENSOR_ORDER_H
#define KILN_TENSOR_ORDER_H

#include "engine/tensor/tensor.h"

/* ---- scans ---- */
/* cumsum (ENG_SCAN_SUM) or cumprod (ENG_SCAN_PROD) along dim, as NumPy: bool and
 * integers give i64, floats keep their dtype (f16/bf16 computed in f32). Recorded. */
tensor *tensor_scan(int kind, const tensor *x, int dim, eng_error *err);
/* the backend's scan with its flags and multiplier w (backend.h), never recorded (for
 * backward rules): x and w of any dtype, computed as tensor_scan's dtype rule says */
tensor *tensor_scan_raw(int kind, int flags, const tensor *x, const tensor *w, int dim, eng_error *err);

/* ---- ordering ---- */
tensor *tensor_argsort(const tensor *x, int dim, int descending, eng_error *err); /* i64 */
tensor *tensor_sort(const tensor *x, int dim, int descending, eng_error *err);
/* the k largest (largest 1) or smallest along dim, in order: values, or their indices
 * (i64) with indices set */
tensor *tensor_topk(const tensor *x, int64_t k, int dim, int largest, int indices, eng_error *err);
/* the sorted distinct values of x, flattened (NaNs count as one value); host work */
tensor *tensor_unique(const tensor *x, eng_error *err);
/* counts of each value 0..max(x) (at least minlength of them) of a 1-d tensor of
 * non-negative integers: i64, or with weights (w of x's shape) their sums in f64 */
tensor *tensor_bincount(const tensor *x, const tensor *w, int64_t minlength, eng_error *err);

/* ---- predicates and cleaning ---- */
/* whether any (all) element is nonzero, whole (TENSOR_ALLDIMS) or along dim: bool */
tensor *tensor_any(const tensor *x, int dim, int keepdim, eng_error *err);
tensor *tensor_all(const tensor *x, int dim, int keepdim, eng_error *err);
/* NumPy's allclose: |a - b| <= atol + rtol |b| everywhere, broadcasting; NaNs unequal */
int tensor_allclose(const tensor *a, const tensor *b, double rtol, double atol, int *result, eng_error *err);
/* NaN -> nan, +inf -> posinf, -inf -> neginf (floats; integer tensors come back as they are) */
tensor *tensor_nan_to_num(const tensor *x, double nan, double posinf, double neginf, eng_error *err);
/* the largest finite value of a float dtype (nan_to_num's default bounds) */
double tensor_dtype_max(tensor_dtype dt);

/* ---- sampling (the session's generator) ---- */
tensor *tensor_randperm(tensor_rng *rng, int64_t n, eng_error *err); /* i64 */
/* perm[0..n) = a uniformly shuffled 0..n-1 on the host: Fisher-Yates on n f32 Philox
 * draws (U[0,1), drawn on the CPU backend: the same stream as on a device), so fit's and
 * batches' epochs shuffle alike for one seed. 0, or -1 with err filled. */
int tensor_shuffle_order(tensor_rng *rng, int64_t *perm, int64_t n, eng_error *err);
/* n category indices per row of probs ([C] or [R, C], non-negative weights, not
 * necessarily normalised), with or without replacement: i64 [n] or [R, n] */
tensor *tensor_multinomial(tensor_rng *rng, const tensor *probs, int64_t n, int replacement, eng_error *err);
/* x's rows (dim 0) in a random order */
tensor *tensor_shuffle(tensor_rng *rng, const tensor *x, eng_error *err);

#endif
