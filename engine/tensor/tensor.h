/* tensor.h — n-dimensional arrays: storage, strided views, and the operations the
 * language's built-ins call.
 *
 * A tensor is a reference-counted view (shape, strides in elements, offset) onto a
 * reference-counted storage that belongs to one backend (engine/tensor/backend.h). Views
 * (slices, transposes, broadcasts, selects) share the storage; operations return new
 * contiguous tensors. Every function that returns a tensor returns a NEW reference
 * (free it with tensor_decref) or NULL with err filled; arguments are borrowed.
 * Shape, dtype and broadcasting logic live here, once; the arithmetic lives in the
 * backends, driven by engine/tensor/ops.def.
 */
#ifndef KILN_TENSOR_H
#define KILN_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include "engine/base/error.h"
#include "numeric/elem.h" /* the dtype codes and the generic element load/store */

#define TENSOR_MAXDIM 8

/* Order matters: tensor_promote uses it (bool < u8 < i32 < i64 < f16 < bf16 < f32 < f64). */
typedef enum tensor_dtype {
    DT_BOOL = NUM_BOOL, /* 1 byte, 0 or 1 */
    DT_U8 = NUM_U8,
    DT_I32 = NUM_I32,
    DT_I64 = NUM_I64,
    DT_F16 = NUM_F16,   /* storage only on the CPU: reserved for the CUDA backend */
    DT_BF16 = NUM_BF16, /* likewise */
    DT_F32 = NUM_F32,   /* the default dtype */
    DT_F64 = NUM_F64,
    DT_COUNT
} tensor_dtype;

typedef enum op_id {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) OP_##ID,
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) OP_##ID,
#define OP_COMPARE(ID, name, API, E, doc) OP_##ID,
#define OP_REDUCE(ID, name, DT, G) OP_##ID,
#include "engine/tensor/ops.def"
    OP_COUNT
} op_id;

struct eng_backend;

typedef struct tensor_storage {
    int refcount;                      /* views and tensors that hold it */
    void *data;                        /* backend memory (host memory on the CPU) */
    size_t bytes;                      /* size of data */
    const struct eng_backend *backend; /* who allocated data and runs ops on it */
} tensor_storage;

typedef struct tensor {
    int refcount;                   /* values, views and tapes that hold it */
    tensor_dtype dtype;                 /* element type */
    int ndim;                       /* 0 for a scalar tensor */
    int64_t shape[TENSOR_MAXDIM];   /* extent of each dimension */
    int64_t stride[TENSOR_MAXDIM];  /* in elements; 0 for a broadcast dimension */
    int64_t offset;                 /* first element, in elements from storage->data */
    tensor_storage *storage;        /* shared by views */
    struct tensor *grad;            /* accumulated gradient (autograd), or NULL */
    void *autograd;                 /* autograd's node for this tensor, or NULL */
    int requires_grad;              /* a parameter or computed from one */
} tensor;

/* The session's counter-based random generator (Philox 4x32-10): each draw of n
 * numbers uses counters offset .. offset+n-1 under key seed, then advances offset,
 * so CPU and GPU give the same stream for the same seed. */
typedef struct tensor_rng {
    uint64_t seed;   /* key */
    uint64_t offset; /* next unused counter */
} tensor_rng;

/* ---- dtypes ---- */
size_t tensor_dtype_size(tensor_dtype dt);
const char *tensor_dtype_name(tensor_dtype dt);      /* "f32" */
int tensor_dtype_from_name(const char *name);    /* -1 if unknown */
int tensor_dtype_is_float(tensor_dtype dt);
tensor_dtype tensor_dtype_promote(tensor_dtype a, tensor_dtype b);
const char *tensor_op_name(op_id op);          /* "add", from ops.def */

/* ---- life ---- */
tensor *tensor_empty(tensor_dtype dt, int ndim, const int64_t *shape, eng_error *err);
void tensor_incref(tensor *t);
void tensor_decref(tensor *t);
int64_t tensor_numel(const tensor *t);
int tensor_is_contiguous(const tensor *t);
/* The layout a backend walks nop operands of ts[0]'s shape in: dimensions of size 1
 * dropped, neighbours merged where every operand steps evenly across them; shape and
 * stride[k] (in bytes, operand k) filled innermost last; *numel their product. Returns
 * the merged ndim, at least 1 (one element: shape {1}, strides of one element). */
int tensor_merge_dims(int nop, const tensor *const *ts, int64_t *shape, int64_t (*stride)[TENSOR_MAXDIM],
                      int64_t *numel);
void *tensor_data_ptr(const tensor *t); /* address of the first element */
size_t tensor_nbytes(const tensor *t);  /* numel * dtype size */

/* ---- creation ---- */
tensor *tensor_full(tensor_dtype dt, int ndim, const int64_t *shape, double value, eng_error *err);
tensor *tensor_arange(double start, double stop, double step, tensor_dtype dt, eng_error *err);
tensor *tensor_linspace(double start, double stop, int64_t n, eng_error *err);
tensor *tensor_eye(int64_t n, int64_t m, tensor_dtype dt, eng_error *err);
tensor *tensor_rand(tensor_rng *rng, int ndim, const int64_t *shape, eng_error *err);  /* U[0,1) f32 */
tensor *tensor_randn(tensor_rng *rng, int ndim, const int64_t *shape, eng_error *err); /* N(0,1) f32 */
tensor *tensor_randint(tensor_rng *rng, int64_t lo, int64_t hi, int ndim, const int64_t *shape,
                       eng_error *err); /* i64 in [lo, hi) */
/* from n doubles in row-major order (tensor literals, tests) */
tensor *tensor_from_doubles(const double *v, tensor_dtype dt, int ndim, const int64_t *shape,
                            eng_error *err);
tensor *tensor_scalar(double v, tensor_dtype dt, eng_error *err); /* 0-d */

/* ---- elements ---- */
double tensor_get_flat(const tensor *t, int64_t i); /* i-th element in row-major order */
int tensor_item(const tensor *t, double *out, eng_error *err); /* numel must be 1 */

/* ---- views (share storage) ---- */
/* x[start:stop:step] along dim, Python semantics for negative and clamped bounds */
tensor *tensor_slice(tensor *t, int dim, int64_t start, int64_t stop, int64_t step, eng_error *err);
tensor *tensor_select(tensor *t, int dim, int64_t index, eng_error *err); /* drops dim; negative from end */
tensor *tensor_transpose(tensor *t, int d0, int d1, eng_error *err);
tensor *tensor_permute(tensor *t, const int *dims, int n, eng_error *err);
tensor *tensor_expand(tensor *t, int ndim, const int64_t *shape, eng_error *err); /* broadcast view */
tensor *tensor_squeeze(tensor *t, int dim, eng_error *err);  /* dim -1000: every size-1 dim */
tensor *tensor_unsqueeze(tensor *t, int dim, eng_error *err);
/* view when possible, else a copy; one -1 in shape is inferred */
tensor *tensor_reshape(tensor *t, int ndim, const int64_t *shape, eng_error *err);
tensor *tensor_flatten(tensor *t, eng_error *err);

/* ---- copies ---- */
tensor *tensor_contiguous(tensor *t, eng_error *err); /* t itself (new ref) if already */
tensor *tensor_clone(const tensor *t, eng_error *err);
tensor *tensor_cast(const tensor *t, tensor_dtype dt, eng_error *err);
/* dst[...] = src with broadcasting and cast (dst may be a view: x[1:3] = y) */
int tensor_assign(tensor *dst, const tensor *src, eng_error *err);
int tensor_fill(tensor *dst, double v, eng_error *err);

/* ---- arithmetic (ops.def) ---- */
/* Result dtype: unary float ops on integer input give f32; NEG/ABS/CLAMP/ROUND... keep it. */
tensor *tensor_unary(op_id op, const tensor *x, double p0, double p1, eng_error *err);
/* Broadcasting; dtype by tensor_dtype_promote; comparisons give bool; integer DIV and MOD
 * follow C (truncation) and fail with ERR_ZERODIV on a zero divisor. */
tensor *tensor_binary(op_id op, const tensor *a, const tensor *b, eng_error *err);
/* a op= b in place (a keeps its dtype and shape; b must broadcast to a) */
int tensor_binary_inplace(op_id op, tensor *a, const tensor *b, eng_error *err);
/* A scalar operand is "weak": it takes the tensor's dtype unless the tensor is integer
 * and the scalar a float (then f32). scalar_left: the scalar is the left operand. */
tensor *tensor_binary_scalar(op_id op, const tensor *t, double s, int s_is_float, int scalar_left,
                             eng_error *err);
/* The composite ops of ops.def (OP_COMPOSITE): tensor_softplus(x, p0, err) and the
 * rest, each a composition of the front-end calls above (so autograd records the
 * primitives); p0 is the op's parameter (leaky_relu's slope, elu's alpha), else unused. */
#define OP_COMPOSITE(name, sig, NP, P0, DOM, EXPR, doc) \
    tensor *tensor_##name(const tensor *x, double p0, eng_error *err);
#include "engine/tensor/ops.def"
/* dim < 0 is counted from the end; TENSOR_ALLDIMS reduces everything to a 0-d tensor.
 * ARGMAX/ARGMIN give i64; MEAN/VAR/STD/NORM give float; VAR/STD are population
 * (ddof 0, as NumPy's default). */
#define TENSOR_ALLDIMS (-1000)
tensor *tensor_reduce(op_id op, const tensor *x, int dim, int keepdim, eng_error *err);
/* the smallest and largest element of an integer tensor (indices, labels), read back to the
 * host: lo = 0, hi = -1 when it is empty. Records nothing. */
int tensor_int_range(const tensor *t, int64_t *lo, int64_t *hi, eng_error *err);
tensor *tensor_where(const tensor *c, const tensor *a, const tensor *b, eng_error *err);

/* ---- linear algebra ---- */
/* NumPy matmul semantics: 1-D operands promoted, batch dimensions broadcast */
tensor *tensor_matmul(const tensor *a, const tensor *b, eng_error *err);
tensor *tensor_dot(const tensor *a, const tensor *b, eng_error *err);   /* 1-D · 1-D → 0-d */
tensor *tensor_outer(const tensor *a, const tensor *b, eng_error *err); /* 1-D ⊗ 1-D → 2-D */

/* ---- joining and gathering ---- */
tensor *tensor_cat(tensor *const *ts, int n, int dim, eng_error *err);
tensor *tensor_stack(tensor *const *ts, int n, int dim, eng_error *err);
/* x[idx] with an integer tensor idx along dim 0: shape idx.shape + x.shape[1:] */
tensor *tensor_gather(const tensor *x, const tensor *idx, eng_error *err);
/* tensor_gather for indices the caller knows are in [0, x.shape[0]) (slices of a
 * permutation): a device backend launches no check and reads nothing back. Not recorded
 * for autograd (x with a gradient goes through tensor_gather). */
tensor *tensor_gather_trusted(const tensor *x, const tensor *idx, eng_error *err);

/* ---- composed shape and index ops (engine/tensor/tensor_compose.c, tensor_einsum.c) ----
 * Each a composition of the recorded calls above, so autograd differentiates it. */
/* x + src's rows added at the rows idx names along dim 0 (repeated indices add up): idx
 * integer of any shape, src of shape idx.shape + x.shape[1:]; the backends' scatter-add,
 * recorded as one node. index_add is PyTorch's x.index_add(dim, idx, src) (idx 1-d);
 * scatter_add its x.scatter_add(dim, idx, src) (idx and src of one shape). */
tensor *tensor_index_add_rows(const tensor *x, const tensor *idx, const tensor *src, eng_error *err);
tensor *tensor_index_add(tensor *x, int dim, const tensor *idx, tensor *src, eng_error *err);
tensor *tensor_scatter_add(tensor *x, int dim, const tensor *idx, tensor *src, eng_error *err);
/* i64 [..., n]: 1 where the class is idx; n -1: the largest index + 1 */
tensor *tensor_one_hot(const tensor *idx, int64_t n, eng_error *err);
/* PyTorch's x.repeat(reps) (NumPy's tile with at least ndim counts); tile pads reps with
 * leading ones; repeat_interleave repeats each element r times along dim
 * (TENSOR_ALLDIMS: the flattened tensor), NumPy's repeat */
tensor *tensor_repeat(tensor *x, int n, const int64_t *reps, eng_error *err);
tensor *tensor_tile(tensor *x, int n, const int64_t *reps, eng_error *err);
tensor *tensor_repeat_interleave(tensor *x, int64_t r, int dim, eng_error *err);
/* reversed along each of dims (a view, as NumPy's flip) */
tensor *tensor_flip(tensor *x, const int *dims, int n, eng_error *err);
/* shifted by shift along dim, wrapping (TENSOR_ALLDIMS: the flattened tensor) */
tensor *tensor_roll(tensor *x, int64_t shift, int dim, eng_error *err);
/* zeros above (tril) or below (triu) diagonal k of the last two dimensions */
tensor *tensor_tri(tensor *x, int64_t k, int upper, eng_error *err);
/* 1-d: the square matrix with x on diagonal k; 2-d: diagonal k of x */
tensor *tensor_diag(tensor *x, int64_t k, eng_error *err);
/* v (0-d) where mask (bool, broadcast to x) is true, else x */
tensor *tensor_masked_fill(tensor *x, const tensor *mask, const tensor *v, eng_error *err);
/* NumPy's einsum for one to three operands: letters a-zA-Z, "->" optional (implicit:
 * the letters seen once, sorted); no "...", no letter twice in one operand */
tensor *tensor_einsum(const char *spec, tensor *const *ops, int n, eng_error *err);
/* ---- NumPy indexing (engine/tensor/tensor_index.c) ---- */
typedef enum tensor_index_kind {
    TIX_INT,      /* i: selects one element of a dimension, dropping it */
    TIX_SLICE,    /* start:stop:step (tensor_slice's clamping) */
    TIX_NEWAXIS,  /* None: a new dimension of size 1 */
    TIX_ELLIPSIS, /* ...: as many full slices as the other items leave */
    TIX_TENSOR    /* an integer tensor (i32, i64, u8) or a bool mask over the next t.ndim dims */
} tensor_index_kind;
typedef struct tensor_index_item {
    tensor_index_kind kind;
    int64_t i;                 /* TIX_INT, negative from the end */
    int64_t start, stop, step; /* TIX_SLICE */
    const tensor *t;           /* TIX_TENSOR (borrowed) */
} tensor_index_item;
/* x[items]: a view when every item is basic (int, slice, None, ...), else a new tensor
 * (one gather, recorded by autograd). On failure NULL, err filled and *bad the item to
 * blame (-1: the whole index). */
tensor *tensor_index(tensor *x, const tensor_index_item *items, int n, int *bad, eng_error *err);
/* x[items] = src (op OP_COUNT) or x[items] = x[items] op src (NumPy's x[i] op= v: a
 * repeated index is written once, with one of its values; src broadcasts to the
 * selection's shape and is cast to x's dtype). In place: refused where x records. */
int tensor_index_assign(tensor *x, const tensor_index_item *items, int n, op_id op, const tensor *src, int *bad,
                        eng_error *err);
/* the row-major positions of mask's true elements: a new i64 [count] (count read back) */
tensor *tensor_mask_positions(const tensor *mask, eng_error *err);
/* for each k: dst's row at flat index idx[k] over dst.shape[:nlead] =, or (accumulate)
 * +=, row k of src; idx contiguous i64 [n] in range (unchecked), src contiguous of dst's
 * dtype [n] + dst.shape[nlead:]; accumulate needs f32, f64, i32 or i64. Not recorded. */
int tensor_index_put(tensor *dst, int nlead, const tensor *idx, const tensor *src, int accumulate, eng_error *err);
/* idx (an integer tensor) on be as i64, checked against size (the IndexError "index I is
 * out of range for dimension xdim of size S") and wrapped to [0, size) */
tensor *tensor_index_checked(const tensor *idx, int64_t size, int xdim, const struct eng_backend *be, eng_error *err);

/* ---- devices ---- */
/* t on backend be (x.to(cuda)): a copy through the host with t's dtype and shape, or t
 * itself (a new reference) when it is there already. A tensor that requires grad gives
 * one that does too, whose gradient flows back to t's device. */
tensor *tensor_to(const tensor *t, const struct eng_backend *be, eng_error *err);

/* ---- text ---- */
/* NumPy-like text (summarised past 1000 elements, like NumPy's threshold); malloc'ed */
char *tensor_format(const tensor *t);
/* "tensor(shape=[2, 3], dtype=f32, device=cpu)" style one-liner; malloc'ed */
char *tensor_describe(const tensor *t);

/* ---- files ---- */
tensor *tensor_load_npy(const char *path, eng_error *err);
int tensor_save_npy(const tensor *t, const char *path, eng_error *err);
/* the same through memory (the session file's .npz members); name is for messages */
tensor *tensor_load_npy_mem(const void *buf, size_t len, const char *name, eng_error *err);
unsigned char *tensor_npy_encode(const tensor *t, size_t *len, eng_error *err); /* malloc'ed */
tensor *tensor_load_idx(const char *path, eng_error *err); /* .gz or plain; u8 etc. */

/* ---- interrupt ----
 * Long-running tensor work checks the running session's flag between chunks:
 * eng_ctx_interrupted() and eng_ctx_interrupt_flag() in engine/base/context.h. */

#endif
