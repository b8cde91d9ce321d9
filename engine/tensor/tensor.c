/* tensor.c — tensors' storage and life, dtypes, views, creation and copies.
 *
 * A tensor is a view (shape, strides, offset, in elements) onto a storage owned by a
 * backend; both are reference-counted. Views share the storage and never copy; the
 * functions that make new data allocate on eng_current_backend() and hand the work to
 * its vtable (fill, arange, random, copy). Everything here that reads elements on the
 * host goes through the backend's to_host, so it works the same for device memory.
 */
#include "engine/tensor/tensor_impl.h"
#include "engine/tensor/record.h"
#include "engine/base/context.h"
#include "engine/base/hostmem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtypes ---- */

static const struct {
    const char *name; /* as the language spells it */
    size_t size;      /* bytes per element */
} dtype_info[DT_COUNT] = {
    [DT_BOOL] = {"bool", 1}, [DT_U8] = {"u8", 1},    [DT_I32] = {"i32", 4},
    [DT_I64] = {"i64", 8},   [DT_F16] = {"f16", 2},  [DT_BF16] = {"bf16", 2},
    [DT_F32] = {"f32", 4},   [DT_F64] = {"f64", 8},
};

size_t tensor_dtype_size(tensor_dtype dt)
{
    return (unsigned)dt < DT_COUNT ? dtype_info[dt].size : 0;
}

const char *tensor_dtype_name(tensor_dtype dt)
{
    return (unsigned)dt < DT_COUNT ? dtype_info[dt].name : "?";
}

int tensor_dtype_from_name(const char *name)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0)
            return i;
    return -1;
}

int tensor_dtype_is_float(tensor_dtype dt)
{
    return dt == DT_F16 || dt == DT_BF16 || dt == DT_F32 || dt == DT_F64;
}

tensor_dtype tensor_dtype_promote(tensor_dtype a, tensor_dtype b)
{
    if ((a == DT_F16 && b == DT_BF16) || (a == DT_BF16 && b == DT_F16))
        return DT_F32; /* neither holds the other */
    return a > b ? a : b;
}

/* ---- the recorder (record.h) ---- */

const tensor_recorder *tensor_recorder_hooks;

void tensor_set_recorder(const tensor_recorder *r)
{
    __atomic_store_n(&tensor_recorder_hooks, r, __ATOMIC_RELEASE);
}

/* ---- helpers ---- */

void tensor_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride)
{
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= shape[d] > 0 ? shape[d] : 1;
    }
}

float tensor_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15), e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 0x400), (int)e - 25);
    return sign ? -v : v;
}

double tensor_host_load(tensor_dtype dt, const void *p)
{
    switch (dt) {
    case DT_BOOL: return *(const uint8_t *)p != 0;
    case DT_U8: return *(const uint8_t *)p;
    case DT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case DT_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case DT_F16: { uint16_t v; memcpy(&v, p, 2); return tensor_f16_to_f32(v); }
    case DT_BF16: {
        uint16_t v;
        memcpy(&v, p, 2);
        uint32_t bits = (uint32_t)v << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    case DT_F32: { float v; memcpy(&v, p, 4); return v; }
    case DT_F64: { double v; memcpy(&v, p, 8); return v; }
    default: return 0;
    }
}

/* ---- life ---- */

static int check_shape(const char *op, int ndim, const int64_t *shape, tensor_dtype dt, size_t *bytes, eng_error *err)
{
    if (ndim < 0 || ndim > TENSOR_MAXDIM)
        return eng_fail(err, ERR_VALUE, "%s: %d dimensions; at most %d are supported", op, ndim,
                        TENSOR_MAXDIM);
    return eng_shape_bytes(op, ndim, shape, tensor_dtype_size(dt), tensor_dtype_name(dt), NULL, bytes, err);
}

/* ---- placement: which backend new tensors are made on ---- */

/* the scope and the note live in the running session's context (engine/base/context.h) */
const eng_backend *tensor_place(const eng_backend *be)
{
    eng_ctx *c = eng_ctx_current();
    const eng_backend *prev = c->placement;
    c->placement = be;
    return prev;
}

const eng_backend *tensor_placement(void)
{
    const eng_backend *be = eng_ctx_current()->placement;
    return be ? be : eng_current_backend();
}

const char *tensor_set_op_context(const char *name)
{
    eng_ctx *c = eng_ctx_current();
    const char *prev = c->op_context;
    c->op_context = name;
    return prev;
}

/* the MemoryError of a failed allocation: on a device backend, what the allocator
 * says (size asked for, what is free) and the largest live tensors by variable name */
static void oom_error(const eng_backend *be, tensor_dtype dt, int ndim, const int64_t *shape, size_t bytes,
                      eng_error *err)
{
    char b[TENSOR_SHAPE_BUF + 48], why[400] = "", live[300] = "";
    tensor_shape_str(ndim, shape, b, sizeof b);
    const char *op_context = eng_ctx_current()->op_context;
    if (op_context) /* "[2, 3] in zeros()" */
        snprintf(b + strlen(b), sizeof b - strlen(b), " in %s()", op_context);
    if (be->last_oom)
        be->last_oom(why, sizeof why);
    eng_ctx *c = eng_ctx_current();
    if (c->oom_note)
        c->oom_note(c->oom_note_user, be, live, sizeof live);
    if (be == &cpu_backend && !why[0]) {
        eng_fail(err, ERR_MEMORY, "out of memory for %s %s tensor of shape %s", eng_a(tensor_dtype_name(dt)),
                 tensor_dtype_name(dt), b);
        return;
    }
    if (why[0]) /* the allocator's words: the size asked for, what the device has free */
        eng_fail(err, ERR_MEMORY, "out of memory on %s for %s %s tensor of shape %s: %s%s%s", be->name,
                 eng_a(tensor_dtype_name(dt)), tensor_dtype_name(dt), b, why, live[0] ? "; " : "", live);
    else
        eng_fail(err, ERR_MEMORY, "out of memory on %s for %s %s tensor of shape %s (%zu bytes)%s%s", be->name,
                 eng_a(tensor_dtype_name(dt)), tensor_dtype_name(dt), b, bytes, live[0] ? "; " : "", live);
}

tensor *tensor_empty(tensor_dtype dt, int ndim, const int64_t *shape, eng_error *err)
{
    return tensor_empty_on(tensor_placement(), dt, ndim, shape, err);
}

tensor *tensor_empty_on(const eng_backend *be, tensor_dtype dt, int ndim, const int64_t *shape, eng_error *err)
{
    if ((unsigned)dt >= DT_COUNT) {
        eng_fail(err, ERR_TYPE, "empty: unknown dtype %d", (int)dt);
        return NULL;
    }
    size_t bytes;
    const char *op_context = eng_ctx_current()->op_context;
    if (check_shape(op_context ? op_context : "empty", ndim, shape, dt, &bytes, err) < 0)
        return NULL;
    tensor *t = calloc(1, sizeof *t);
    tensor_storage *s = calloc(1, sizeof *s);
    if (!t || !s)
        goto err;
    s->refcount = 1;
    s->backend = be;
    s->bytes = bytes;
    s->data = be->alloc(s->bytes);
    if (!s->data)
        goto err;
    t->refcount = 1;
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    tensor_contiguous_strides(ndim, shape, t->stride);
    t->storage = s;
    return t;
err:
    free(t);
    free(s);
    oom_error(be, dt, ndim, shape, bytes, err);
    return NULL;
}

void tensor_incref(tensor *t)
{
    if (t)
        t->refcount++;
}

void tensor_decref(tensor *t)
{
    if (!t || --t->refcount > 0)
        return;
    tensor_storage *s = t->storage;
    if (s && --s->refcount == 0) {
        s->backend->free(s->data);
        free(s);
    }
    if (t->grad)
        tensor_decref(t->grad);
    if (t->autograd)
        tensor_recorder_hooks->node_release(t->autograd);
    free(t);
}

int64_t tensor_numel(const tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] == 0)
            return 0; /* an empty tensor's other dims may multiply past int64 */
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

int tensor_merge_dims(int nop, const tensor *const *ts, int64_t *shape, int64_t (*stride)[TENSOR_MAXDIM],
                      int64_t *numel)
{
    const tensor *t0 = ts[0];
    int nd = 0;
    *numel = 1;
    for (int d = 0; d < t0->ndim; d++) {
        int64_t n = t0->shape[d];
        *numel *= n;
        if (n == 1)
            continue;
        int merge = nd > 0;
        for (int k = 0; k < nop && merge; k++)
            if (stride[k][nd - 1] != ts[k]->stride[d] * (int64_t)tensor_dtype_size(ts[k]->dtype) * n)
                merge = 0;
        int at = merge ? nd - 1 : nd;
        shape[at] = merge ? shape[at] * n : n;
        for (int k = 0; k < nop; k++)
            stride[k][at] = ts[k]->stride[d] * (int64_t)tensor_dtype_size(ts[k]->dtype);
        nd += !merge;
    }
    if (nd == 0) { /* one element (or none) */
        shape[0] = 1;
        for (int k = 0; k < nop; k++)
            stride[k][0] = (int64_t)tensor_dtype_size(ts[k]->dtype);
        nd = 1;
    }
    return nd;
}

int tensor_is_contiguous(const tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] == 0)
            return 1;
        if (t->shape[d] != 1 && t->stride[d] != s)
            return 0;
        s *= t->shape[d];
    }
    return 1;
}

void *tensor_data_ptr(const tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)tensor_dtype_size(t->dtype);
}

size_t tensor_nbytes(const tensor *t)
{
    return (size_t)tensor_numel(t) * tensor_dtype_size(t->dtype);
}

/* a new view header onto t's storage, with t's dtype; shape and strides to be set */
static tensor *view_of(const tensor *t, eng_error *err)
{
    tensor *v = calloc(1, sizeof *v);
    if (!v) {
        eng_fail(err, ERR_MEMORY, "out of memory");
        return NULL;
    }
    *v = *t;
    v->refcount = 1;
    v->grad = NULL;
    v->autograd = NULL;
    v->requires_grad = 0;
    v->storage->refcount++;
    return v;
}

/* ---- host transfer ---- */

tensor *tensor_from_host(const void *data, tensor_dtype dt, int ndim, const int64_t *shape, eng_error *err)
{
    tensor *t = tensor_empty(dt, ndim, shape, err);
    if (!t)
        return NULL;
    if (t->storage->backend->from_host(t->storage->data, data, tensor_nbytes(t), err) < 0) {
        tensor_decref(t);
        return NULL;
    }
    return t;
}

void *tensor_to_host(const tensor *t, eng_error *err)
{
    tensor *c = tensor_contiguous((tensor *)t, err);
    if (!c)
        return NULL;
    size_t n = tensor_nbytes(c);
    void *buf = eng_host_malloc(n, "copying a tensor to the host", err);
    if (!buf) {
        tensor_decref(c);
        return NULL;
    }
    if (c->storage->backend->to_host(buf, tensor_data_ptr(c), n, err) < 0) {
        free(buf);
        buf = NULL;
    }
    tensor_decref(c);
    return buf;
}

/* ---- creation ---- */

tensor *tensor_full(tensor_dtype dt, int ndim, const int64_t *shape, double value, eng_error *err)
{
    tensor *t = tensor_empty(dt, ndim, shape, err);
    if (t && t->storage->backend->fill(t, value, err) < 0) {
        tensor_decref(t);
        return NULL;
    }
    return t;
}

tensor *tensor_scalar(double v, tensor_dtype dt, eng_error *err)
{
    return tensor_full(dt, 0, NULL, v, err);
}

tensor *tensor_arange(double start, double stop, double step, tensor_dtype dt, eng_error *err)
{
    if (step == 0 || step != step) {
        eng_fail(err, ERR_VALUE, "arange: step must be non-zero");
        return NULL;
    }
    double len = ceil((stop - start) / step);
    if (!(len == len) || len > 1e15) {
        eng_fail(err, ERR_VALUE, "arange: bad range %g to %g by %g", start, stop, step);
        return NULL;
    }
    int64_t n = len > 0 ? (int64_t)len : 0;
    tensor *t = tensor_empty(dt, 1, &n, err);
    if (t && t->storage->backend->arange(t, start, step, err) < 0) {
        tensor_decref(t);
        return NULL;
    }
    return t;
}

tensor *tensor_linspace(double start, double stop, int64_t n, eng_error *err)
{
    if (n < 0) {
        eng_fail(err, ERR_VALUE, "linspace: number of points %lld is negative", (long long)n);
        return NULL;
    }
    size_t bytes;
    if (eng_shape_bytes("linspace", 1, &n, sizeof(double), NULL, NULL, &bytes, err) < 0)
        return NULL;
    double *v = eng_host_malloc(bytes, "linspace", err);
    if (!v)
        return NULL;
    double step = n > 1 ? (stop - start) / (double)(n - 1) : 0;
    for (int64_t i = 0; i < n; i++)
        v[i] = start + (double)i * step;
    if (n > 1)
        v[n - 1] = stop;
    tensor *t = tensor_from_doubles(v, DT_F32, 1, &n, err);
    free(v);
    return t;
}

tensor *tensor_eye(int64_t n, int64_t m, tensor_dtype dt, eng_error *err)
{
    int64_t shape[2] = {n, m < 0 ? n : m};
    tensor *t = tensor_full(dt, 2, shape, 0, err);
    if (!t)
        return NULL;
    /* the diagonal as a strided view, filled with ones */
    tensor *d = view_of(t, err);
    if (!d) {
        tensor_decref(t);
        return NULL;
    }
    d->ndim = 1;
    d->shape[0] = shape[0] < shape[1] ? shape[0] : shape[1];
    d->stride[0] = shape[1] + 1;
    int rc = t->storage->backend->fill(d, 1, err);
    tensor_decref(d);
    if (rc < 0) {
        tensor_decref(t);
        return NULL;
    }
    return t;
}

static tensor *random_tensor(int kind, tensor_dtype dt, tensor_rng *rng, int64_t lo, int64_t hi,
                             int ndim, const int64_t *shape, eng_error *err)
{
    tensor *t = tensor_empty(dt, ndim, shape, err);
    if (!t)
        return NULL;
    if (t->storage->backend->random(kind, t, rng, lo, hi, err) < 0) {
        tensor_decref(t);
        return NULL;
    }
    rng->offset += (uint64_t)tensor_numel(t);
    return t;
}

tensor *tensor_rand(tensor_rng *rng, int ndim, const int64_t *shape, eng_error *err)
{
    return random_tensor(0, DT_F32, rng, 0, 0, ndim, shape, err);
}

tensor *tensor_randn(tensor_rng *rng, int ndim, const int64_t *shape, eng_error *err)
{
    return random_tensor(1, DT_F32, rng, 0, 0, ndim, shape, err);
}

tensor *tensor_randint(tensor_rng *rng, int64_t lo, int64_t hi, int ndim, const int64_t *shape,
                       eng_error *err)
{
    if (hi <= lo) {
        eng_fail(err, ERR_VALUE, "randint: empty range [%lld, %lld)", (long long)lo, (long long)hi);
        return NULL;
    }
    return random_tensor(2, DT_I64, rng, lo, hi, ndim, shape, err);
}

tensor *tensor_from_doubles(const double *v, tensor_dtype dt, int ndim, const int64_t *shape,
                            eng_error *err)
{
    tensor *f = tensor_from_host(v, DT_F64, ndim, shape, err);
    if (!f || dt == DT_F64)
        return f;
    tensor *t = tensor_cast(f, dt, err);
    tensor_decref(f);
    return t;
}

/* ---- elements ---- */

double tensor_get_flat(const tensor *t, int64_t i)
{
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d] > 0 ? t->shape[d] : 1;
        off += (i % n) * t->stride[d];
        i /= n;
    }
    size_t es = tensor_dtype_size(t->dtype);
    unsigned char buf[8];
    if (t->storage->backend->to_host(buf, (char *)t->storage->data + off * (int64_t)es, es, NULL) < 0)
        return NAN;
    return tensor_host_load(t->dtype, buf);
}

int tensor_item(const tensor *t, double *out, eng_error *err)
{
    int64_t n = tensor_numel(t);
    if (n != 1) {
        char b[TENSOR_SHAPE_BUF];
        return eng_fail(err, ERR_VALUE, "item: a tensor of shape %s has %lld elements, not 1",
                        tensor_shape_str(t->ndim, t->shape, b, sizeof b), (long long)n);
    }
    *out = tensor_get_flat(t, 0);
    return 0;
}

/* ---- views ---- */

static int norm_dim(const char *op, int dim, int ndim, eng_error *err)
{
    int d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= ndim)
        return eng_fail(err, ERR_INDEX, "%s: dimension %d is out of range for a %d-d tensor", op,
                        dim, ndim);
    return d;
}

tensor *tensor_slice(tensor *t, int dim, int64_t start, int64_t stop, int64_t step, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->slice(t, dim, start, stop, step, err);
    int d = norm_dim("slice", dim, t->ndim, err);
    if (d < 0)
        return NULL;
    if (step == 0) {
        eng_fail(err, ERR_VALUE, "slice: step cannot be zero");
        return NULL;
    }
    int64_t n = t->shape[d];
    /* Python's slice.indices */
    if (step > 0) {
        if (start < 0) start += n;
        if (start < 0) start = 0;
        if (start > n) start = n;
        if (stop < 0) stop += n;
        if (stop < 0) stop = 0;
        if (stop > n) stop = n;
    } else {
        if (start < 0) start += n;
        if (start < 0) start = -1;
        if (start >= n) start = n - 1;
        if (stop < 0) stop += n;
        if (stop < 0) stop = -1;
        if (stop >= n) stop = n - 1;
    }
    /* start and stop are within [-1, n] now; a huge step gives one element (no
     * overflow: the distance is below 2^62, and -step is taken unsigned) */
    int64_t len = 0;
    if (step > 0 && stop > start)
        len = 1 + (stop - start - 1) / step;
    else if (step < 0 && stop < start)
        len = 1 + (int64_t)((uint64_t)(start - stop - 1) / (0 - (uint64_t)step));
    tensor *v = view_of(t, err);
    if (!v)
        return NULL;
    if (len > 0)
        v->offset += start * t->stride[d];
    v->shape[d] = len;
    if (len <= 1 || __builtin_mul_overflow(t->stride[d], step, &v->stride[d]))
        v->stride[d] = t->stride[d]; /* one element: its stride is never used to step */
    return v;
}

tensor *tensor_select(tensor *t, int dim, int64_t index, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->select(t, dim, index, err);
    int d = norm_dim("index", dim, t->ndim, err);
    if (d < 0)
        return NULL;
    int64_t n = t->shape[d], i = index < 0 ? index + n : index;
    if (i < 0 || i >= n) {
        eng_fail(err, ERR_INDEX, "index %lld is out of range for dimension %d of size %lld",
                 (long long)index, d, (long long)n);
        return NULL;
    }
    tensor *v = view_of(t, err);
    if (!v)
        return NULL;
    v->offset += i * t->stride[d];
    for (int k = d; k < t->ndim - 1; k++) {
        v->shape[k] = t->shape[k + 1];
        v->stride[k] = t->stride[k + 1];
    }
    v->ndim--;
    return v;
}

tensor *tensor_transpose(tensor *t, int d0, int d1, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->transpose(t, d0, d1, err);
    int a = norm_dim("transpose", d0, t->ndim, err), b;
    if (a < 0 || (b = norm_dim("transpose", d1, t->ndim, err)) < 0)
        return NULL;
    tensor *v = view_of(t, err);
    if (!v)
        return NULL;
    v->shape[a] = t->shape[b];
    v->stride[a] = t->stride[b];
    v->shape[b] = t->shape[a];
    v->stride[b] = t->stride[a];
    return v;
}

tensor *tensor_permute(tensor *t, const int *dims, int n, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->permute(t, dims, n, err);
    if (n != t->ndim) {
        eng_fail(err, ERR_VALUE, "permute: %d dimension%s given for a %d-d tensor", n, eng_s(n), t->ndim);
        return NULL;
    }
    int seen[TENSOR_MAXDIM] = {0}, p[TENSOR_MAXDIM];
    for (int i = 0; i < n; i++) {
        int d = norm_dim("permute", dims[i], n, err);
        if (d < 0)
            return NULL;
        if (seen[d]++) {
            eng_fail(err, ERR_VALUE, "permute: dimension %d appears twice", d);
            return NULL;
        }
        p[i] = d;
    }
    tensor *v = view_of(t, err);
    if (!v)
        return NULL;
    for (int i = 0; i < n; i++) {
        v->shape[i] = t->shape[p[i]];
        v->stride[i] = t->stride[p[i]];
    }
    return v;
}

tensor *tensor_expand(tensor *t, int ndim, const int64_t *shape, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->expand(t, ndim, shape, err);
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (ndim < t->ndim || ndim > TENSOR_MAXDIM) {
        eng_fail(err, ERR_SHAPE, "expand: shape %s cannot be broadcast to %s",
                 tensor_shape_str(t->ndim, t->shape, b1, sizeof b1),
                 tensor_shape_str(ndim, shape, b2, sizeof b2));
        return NULL;
    }
    tensor *v = view_of(t, err);
    if (!v)
        return NULL;
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int s = d - lead;
        if (s < 0) {
            v->shape[d] = shape[d];
            v->stride[d] = 0;
        } else if (t->shape[s] == shape[d]) {
            v->shape[d] = shape[d];
            v->stride[d] = t->stride[s];
        } else if (t->shape[s] == 1) {
            v->shape[d] = shape[d];
            v->stride[d] = 0;
        } else {
            tensor_decref(v);
            eng_fail(err, ERR_SHAPE, "expand: shape %s cannot be broadcast to %s",
                     tensor_shape_str(t->ndim, t->shape, b1, sizeof b1),
                     tensor_shape_str(ndim, shape, b2, sizeof b2));
            return NULL;
        }
    }
    v->ndim = ndim;
    return v;
}

tensor *tensor_squeeze(tensor *t, int dim, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->squeeze(t, dim, err);
    int d = -1;
    if (dim != -1000) {
        d = norm_dim("squeeze", dim, t->ndim, err);
        if (d < 0)
            return NULL;
    }
    tensor *v = view_of(t, err);
    if (!v)
        return NULL;
    int k = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 1 && (d < 0 || i == d))
            continue;
        v->shape[k] = t->shape[i];
        v->stride[k] = t->stride[i];
        k++;
    }
    v->ndim = k;
    return v;
}

tensor *tensor_unsqueeze(tensor *t, int dim, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->unsqueeze(t, dim, err);
    if (t->ndim >= TENSOR_MAXDIM) {
        eng_fail(err, ERR_VALUE, "unsqueeze: a tensor has at most %d dimensions", TENSOR_MAXDIM);
        return NULL;
    }
    int d = norm_dim("unsqueeze", dim, t->ndim + 1, err);
    if (d < 0)
        return NULL;
    tensor *v = view_of(t, err);
    if (!v)
        return NULL;
    for (int i = t->ndim; i > d; i--) {
        v->shape[i] = t->shape[i - 1];
        v->stride[i] = t->stride[i - 1];
    }
    v->shape[d] = 1;
    v->stride[d] = d + 1 < t->ndim + 1 ? v->shape[d + 1] * v->stride[d + 1] : 1;
    v->ndim = t->ndim + 1;
    return v;
}

/* strides for viewing (oshape, ostride) as nshape without copying (PyTorch's rule);
 * 0 on success, -1 when a copy is needed */
static int view_strides(int ond, const int64_t *oshape, const int64_t *ostride, int nnd,
                        const int64_t *nshape, int64_t *nstride)
{
    int64_t one_shape = 1, one_stride = 1;
    if (ond == 0) {
        ond = 1;
        oshape = &one_shape;
        ostride = &one_stride;
    }
    int view_d = nnd - 1;
    int64_t chunk = ostride[ond - 1], tnum = 1, vnum = 1;
    for (int td = ond - 1; td >= 0; td--) {
        tnum *= oshape[td];
        if (td == 0 || (oshape[td - 1] != 1 && ostride[td - 1] != tnum * chunk)) {
            while (view_d >= 0 && (vnum < tnum || nshape[view_d] == 1)) {
                nstride[view_d] = vnum * chunk;
                vnum *= nshape[view_d];
                view_d--;
            }
            if (vnum != tnum)
                return -1;
            if (td > 0) {
                chunk = ostride[td - 1];
                tnum = 1;
                vnum = 1;
            }
        }
    }
    return view_d == -1 ? 0 : -1;
}

tensor *tensor_reshape(tensor *t, int ndim, const int64_t *shape_in, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->reshape(t, ndim, shape_in, err);
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (ndim < 0 || ndim > TENSOR_MAXDIM) {
        eng_fail(err, ERR_VALUE, "reshape: %d dimensions; at most %d are supported", ndim,
                 TENSOR_MAXDIM);
        return NULL;
    }
    int64_t shape[TENSOR_MAXDIM], known = 1, numel = tensor_numel(t);
    int infer = -1;
    for (int d = 0; d < ndim; d++) {
        shape[d] = shape_in[d];
        if (shape[d] == -1) {
            if (infer >= 0) {
                eng_fail(err, ERR_VALUE, "reshape: only one dimension can be -1");
                return NULL;
            }
            infer = d;
        } else if (shape[d] < 0) {
            eng_fail(err, ERR_VALUE, "reshape: negative dimension %lld", (long long)shape[d]);
            return NULL;
        } else if (__builtin_mul_overflow(known, shape[d], &known)) {
            eng_fail(err, ERR_MEMORY, "reshape: shape %s is too large: its element count overflows",
                     tensor_shape_str(ndim, shape_in, b2, sizeof b2));
            return NULL;
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel % known != 0) {
            eng_fail(err, ERR_SHAPE, "reshape: cannot reshape %s (%lld element%s) into %s",
                     tensor_shape_str(t->ndim, t->shape, b1, sizeof b1), (long long)numel, eng_s(numel),
                     tensor_shape_str(ndim, shape_in, b2, sizeof b2));
            return NULL;
        }
        shape[infer] = numel / known;
        known = numel;
    }
    if (known != numel) {
        eng_fail(err, ERR_SHAPE, "reshape: cannot reshape %s (%lld element%s) into %s",
                 tensor_shape_str(t->ndim, t->shape, b1, sizeof b1), (long long)numel, eng_s(numel),
                 tensor_shape_str(ndim, shape_in, b2, sizeof b2));
        return NULL;
    }
    /* an empty tensor's dims may be large, but their strides must stay exact */
    if (eng_shape_bytes("reshape", ndim, shape, tensor_dtype_size(t->dtype), tensor_dtype_name(t->dtype), NULL, NULL,
                        err) < 0)
        return NULL;
    int64_t stride[TENSOR_MAXDIM];
    tensor *src = NULL;
    if (numel == 0) {
        tensor_contiguous_strides(ndim, shape, stride);
        src = t;
        tensor_incref(src);
    } else if (view_strides(t->ndim, t->shape, t->stride, ndim, shape, stride) == 0) {
        src = t;
        tensor_incref(src);
    } else {
        if (!(src = tensor_clone(t, err)))
            return NULL;
        tensor_contiguous_strides(ndim, shape, stride);
    }
    tensor *v = view_of(src, err);
    tensor_decref(src);
    if (!v)
        return NULL;
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        v->shape[d] = shape[d];
        v->stride[d] = stride[d];
    }
    return v;
}

tensor *tensor_flatten(tensor *t, eng_error *err)
{
    int64_t n = tensor_numel(t);
    return tensor_reshape(t, 1, &n, err);
}

/* ---- copies ---- */

tensor *tensor_contiguous(tensor *t, eng_error *err)
{
    if (tensor_is_contiguous(t)) {
        tensor_incref(t);
        return t;
    }
    return tensor_clone(t, err);
}

tensor *tensor_cast(const tensor *t, tensor_dtype dt, eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->cast(t, dt, err);
    tensor *c = tensor_empty_on(t->storage->backend, dt, t->ndim, t->shape, err);
    if (!c)
        return NULL;
    if (c->storage->backend->copy(c, t, err) < 0) {
        tensor_decref(c);
        return NULL;
    }
    return c;
}

tensor *tensor_clone(const tensor *t, eng_error *err)
{
    return tensor_cast(t, t->dtype, err);
}

int tensor_assign(tensor *dst, const tensor *src, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (TENSOR_RECORDS(dst))
        return tensor_recorder_hooks->refuse_inplace(dst, err);
    if (src->storage->backend != dst->storage->backend) {
        const tensor *ops[2] = {dst, src};
        if (!tensor_common_backend("assign", ops, 2, err))
            return -1;
        tensor *moved = tensor_to(src, dst->storage->backend, err); /* a 0-d value */
        if (!moved)
            return -1;
        int rc = tensor_assign(dst, moved, err);
        tensor_decref(moved);
        return rc;
    }
    if (src->ndim > dst->ndim) {
        /* leading size-1 dimensions of src may be dropped */
        int extra = src->ndim - dst->ndim;
        for (int d = 0; d < extra; d++)
            if (src->shape[d] != 1)
                return eng_fail(err, ERR_SHAPE, "assign: a value of shape %s does not fit into %s",
                                tensor_shape_str(src->ndim, src->shape, b1, sizeof b1),
                                tensor_shape_str(dst->ndim, dst->shape, b2, sizeof b2));
    }
    tensor tmp = *src;
    tmp.requires_grad = 0; /* a stack header: values only, never recorded */
    tmp.autograd = NULL;
    if (src->ndim > dst->ndim) {
        int extra = src->ndim - dst->ndim;
        tmp.ndim = dst->ndim;
        for (int d = 0; d < dst->ndim; d++) {
            tmp.shape[d] = src->shape[d + extra];
            tmp.stride[d] = src->stride[d + extra];
        }
    }
    eng_error local = {0};
    tensor *e = tensor_expand(&tmp, dst->ndim, dst->shape, &local);
    if (!e)
        return eng_fail(err, ERR_SHAPE, "assign: a value of shape %s does not fit into %s",
                        tensor_shape_str(src->ndim, src->shape, b1, sizeof b1),
                        tensor_shape_str(dst->ndim, dst->shape, b2, sizeof b2));
    /* expand made a view header from a stack copy: its storage ref was taken, fine */
    tensor *from = e;
    if (src->storage == dst->storage) { /* overlapping: copy the source first */
        from = tensor_clone(e, err);
        tensor_decref(e);
        if (!from)
            return -1;
    }
    int rc = dst->storage->backend->copy(dst, from, err);
    tensor_decref(from);
    return rc;
}

int tensor_fill(tensor *dst, double v, eng_error *err)
{
    if (TENSOR_RECORDS(dst))
        return tensor_recorder_hooks->refuse_inplace(dst, err);
    return dst->storage->backend->fill(dst, v, err);
}

/* ---- devices ---- */

const eng_backend *tensor_common_backend(const char *op, const tensor *const *ts, int n, eng_error *err)
{
    const eng_backend *be = NULL;
    for (int i = 0; i < n; i++) /* the device of the first operand with dimensions */
        if (ts[i] && ts[i]->ndim > 0 && !be)
            be = ts[i]->storage->backend;
    for (int i = 0; !be && i < n; i++)
        if (ts[i])
            be = ts[i]->storage->backend;
    for (int i = 0; i < n; i++) {
        if (!ts[i] || ts[i]->storage->backend == be || ts[i]->ndim == 0)
            continue;
        char list[200] = "";
        size_t l = 0;
        for (int k = 0; k < n && l < sizeof list; k++)
            if (ts[k])
                l += (size_t)snprintf(list + l, sizeof list - l, "%soperand %d on %s", l ? ", " : "", k + 1,
                                      ts[k]->storage->backend->name);
        const char *to = ts[i]->storage->backend == &cpu_backend ? be->name : ts[i]->storage->backend->name;
        eng_fail(err, ERR_RUNTIME,
                 "%s: tensors on different devices (%s); move them to one device first, e.g. x.to(%s)", op, list,
                 to);
        return NULL;
    }
    return be ? be : tensor_placement();
}

tensor *tensor_to(const tensor *t, const eng_backend *be, eng_error *err)
{
    if (t->storage->backend == be) {
        tensor_incref((tensor *)t);
        return (tensor *)t;
    }
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->to(t, be, err);
    void *host = tensor_to_host(t, err);
    if (!host)
        return NULL;
    tensor *r = tensor_empty_on(be, t->dtype, t->ndim, t->shape, err);
    if (r && be->from_host(r->storage->data, host, tensor_nbytes(r), err) < 0) {
        tensor_decref(r);
        r = NULL;
    }
    free(host);
    return r;
}
