/* tensor_impl.h — helpers shared by the tensor layer's own files (engine/tensor*.c,
 * npy.c, idx.c); not part of the tensor API.
 */
#ifndef KILN_TENSOR_IMPL_H
#define KILN_TENSOR_IMPL_H

#include "engine/tensor/backend.h"

/* "[3, 4]" into buf (always NUL-terminated); returns buf */
/* "[2, 3]" (engine/base/hostmem.c, where the size checks' messages need it too) */
#define tensor_shape_str eng_shape_str
#define TENSOR_SHAPE_BUF ENG_SHAPE_BUF

/* a value of dtype dt at host address p, as a double (f16/bf16 decoded) */
double tensor_host_load(tensor_dtype dt, const void *p);
/* f16 <-> f32 on the host, for npy */
float tensor_f16_to_f32(uint16_t h);

/* A new tensor of shape (ndim, shape) made from host memory laid out row-major (copied). */
tensor *tensor_from_host(const void *data, tensor_dtype dt, int ndim, const int64_t *shape,
                         eng_error *err);
/* A malloc'ed host copy of t's elements, row-major (contiguous); NULL with err filled. */
void *tensor_to_host(const tensor *t, eng_error *err);

/* ---- placement ----
 * New tensors are made on the session's device (eng_current_backend) unless a
 * tensor_place scope says otherwise: the tensor front end (tensor_ops.c) places the
 * results of an op on its operands' backend, the interpreter places what a built-in
 * makes on the backend of its first tensor argument, backward on the gradient's. */
/* Makes be (NULL: the session's device) where tensor_empty allocates; returns the
 * previous placement, to be restored with tensor_place(prev). */
const eng_backend *tensor_place(const eng_backend *be);
/* Where tensor_empty allocates now. */
const eng_backend *tensor_placement(void);
tensor *tensor_empty_on(const eng_backend *be, tensor_dtype dt, int ndim, const int64_t *shape, eng_error *err);
/* The backend an op named op runs on for these operands (NULL entries skipped): the one
 * they share. 0-d operands may live anywhere (tensor_to brings them over, as PyTorch
 * does for CPU scalars). Operands on two backends: NULL and a RuntimeError naming the
 * op, each operand's device and the fix (x.to(...)). */
const eng_backend *tensor_common_backend(const char *op, const tensor *const *ts, int n, eng_error *err);

/* The built-in running now ("zeros"; NULL: none), named in the errors of tensor_empty
 * (a shape too large, out of memory); returns the previous one, to be restored. */
const char *tensor_set_op_context(const char *name);

/* contiguous strides for shape into stride */
void tensor_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);

#endif
