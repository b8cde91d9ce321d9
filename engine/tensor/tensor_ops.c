/* tensor_ops.c — the tensor front end: every shape, broadcast and dtype decision of the
 * arithmetic, then one call into the backend with operands already laid out.
 *
 * Rules (docs/tensors.md says them for users):
 *   - Broadcasting is NumPy's: shapes align at the right, a size-1 dimension stretches.
 *   - Binary ops compute in tensor_dtype_promote(a, b) (bool < u8 < i32 < i64 < f16 < bf16 <
 *     f32 < f64; f16 with bf16 gives f32); arithmetic on two bools computes in i64, as
 *     C's does; comparisons and logical ops give bool.
 *   - A scalar operand is weak: it takes the tensor's dtype, except a float scalar with
 *     an integer or bool tensor (f32), an int scalar with a bool tensor (i64), and an
 *     int the tensor's integer dtype cannot hold (u8 + 300 gives i32).
 *   - Unary float functions (exp, log, ...) of integer or bool tensors give f32.
 *   - f16 and bf16 are storage types on the CPU: ops compute in f32 and round back.
 * Operands are cast to the compute dtype at their own (unbroadcast) size, then expanded
 * to the output's shape as stride-0 views, so broadcasting never copies.
 */
#include "engine/tensor/tensor_impl.h"
#include "engine/tensor/record.h"

#include <stdlib.h>
#include <string.h>

const char *tensor_op_name(op_id op)
{
    switch (op) {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) case OP_##ID: return name;
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) case OP_##ID: return name;
#define OP_COMPARE(ID, name, API, E, doc) case OP_##ID: return name;
#define OP_REDUCE(ID, name, DT, G) case OP_##ID: return name;
#include "engine/tensor/ops.def"
    default: return "op";
    }
}

static int is_compare(op_id op)
{
    switch (op) {
#define OP_COMPARE(ID, name, API, E, doc) case OP_##ID: return 1;
#include "engine/tensor/ops.def"
    default: return 0;
    }
}

/* ---- the dtype rules of ops.def's rows ---- */
typedef enum dt_rule { RULE_FLOAT, RULE_KEEP, RULE_ARITH, RULE_BOOL, RULE_PROMOTE, RULE_SUM, RULE_INDEX } dt_rule;

static dt_rule op_dtype_rule(op_id op)
{
    switch (op) {
#define OP_UNARY(ID, name, API, DT, DOM, FE, IE, G, doc) case OP_##ID: return RULE_##DT;
#define OP_BINARY(ID, name, API, DT, DOM, FE, IE, GA, GB, doc) case OP_##ID: return RULE_##DT;
#define OP_COMPARE(ID, name, API, E, doc) case OP_##ID: return RULE_BOOL;
#define OP_REDUCE(ID, name, DT, G) case OP_##ID: return RULE_##DT;
#include "engine/tensor/ops.def"
    default: return RULE_KEEP;
    }
}

static int is_half(tensor_dtype dt)
{
    return dt == DT_F16 || dt == DT_BF16;
}

#define SHAPE(t, buf) tensor_shape_str((t)->ndim, (t)->shape, buf, sizeof buf)

/* x cast to dt (a new reference; x itself when it already is dt) */
static tensor *as_dtype(const tensor *x, tensor_dtype dt, eng_error *err)
{
    if (x->dtype == dt) {
        tensor_incref((tensor *)x);
        return (tensor *)x;
    }
    return tensor_cast(x, dt, err);
}

/* the broadcast shape of a and b into (nd, shape); -1 when they do not broadcast */
static int broadcast_shape(int nda, const int64_t *sa, int ndb, const int64_t *sb, int *nd,
                           int64_t *shape)
{
    int n = nda > ndb ? nda : ndb;
    for (int d = 0; d < n; d++) {
        int ia = d - (n - nda), ib = d - (n - ndb);
        int64_t x = ia >= 0 ? sa[ia] : 1, y = ib >= 0 ? sb[ib] : 1;
        if (x == y || y == 1)
            shape[d] = x;
        else if (x == 1)
            shape[d] = y;
        else
            return -1;
    }
    *nd = n;
    return 0;
}

/* ---- devices ----
 * Every op runs on its operands' backend and makes its result there (the session's
 * device only decides where tensors made from nothing go). operands_begin checks that
 * the operands share a backend (tensor_common_backend: the error names the op and each
 * operand's device), brings 0-d operands from elsewhere over, and places everything
 * the op makes on that backend until operands_end. */
typedef struct placed {
    const eng_backend *prev; /* the placement to restore */
    tensor *t[3];            /* the operands on the op's backend (new references) */
} placed;

static int operands_begin(placed *p, const char *op, const tensor *const *ts, int n, eng_error *err)
{
    memset(p, 0, sizeof *p);
    const eng_backend *be = tensor_common_backend(op, ts, n, err);
    if (!be)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!ts[i])
            continue;
        if (!(p->t[i] = tensor_to(ts[i], be, err))) {
            for (int k = 0; k < i; k++)
                tensor_decref(p->t[k]);
            return -1;
        }
    }
    p->prev = tensor_place(be);
    return 0;
}

static void operands_end(placed *p)
{
    tensor_place(p->prev);
    for (int i = 0; i < 3; i++)
        tensor_decref(p->t[i]);
}

/* ---- unary ---- */

static tensor *unary_impl(op_id op, const tensor *x, double p0, double p1, eng_error *err);

tensor *tensor_unary(op_id op, const tensor *x, double p0, double p1, eng_error *err)
{
    if (TENSOR_RECORDS(x))
        return tensor_recorder_hooks->unary(op, x, p0, p1, err);
    placed p;
    if (operands_begin(&p, tensor_op_name(op), &x, 1, err) < 0)
        return NULL;
    tensor *r = unary_impl(op, p.t[0], p0, p1, err);
    operands_end(&p);
    return r;
}

static tensor *unary_impl(op_id op, const tensor *x, double p0, double p1, eng_error *err)
{
    tensor_dtype cd = x->dtype, final;
    dt_rule rule = op_dtype_rule(op);
    if (rule == RULE_FLOAT && !tensor_dtype_is_float(cd))
        cd = DT_F32;
    if (rule == RULE_ARITH && cd == DT_BOOL)
        cd = DT_I64;
    if (is_half(cd))
        cd = DT_F32;
    final = is_half(x->dtype) ? x->dtype : cd;
    tensor_dtype od = cd;
    if (rule == RULE_BOOL) {
        cd = x->dtype;
        od = final = DT_BOOL;
    }
    tensor *xc = NULL, *out = NULL, *r = NULL;
    if (!(xc = as_dtype(x, cd, err)))
        goto err;
    if (!(out = tensor_empty(od, x->ndim, x->shape, err)))
        goto err;
    if (out->storage->backend->unary(op, out, xc, p0, p1, err) < 0)
        goto err;
    if (final != od) {
        r = tensor_cast(out, final, err);
        tensor_decref(out);
        out = r;
    }
    tensor_decref(xc);
    return out;
err:
    tensor_decref(xc);
    tensor_decref(out);
    return NULL;
}

/* ---- binary ---- */

/* a op b computed in cd (result cd, or bool for comparisons; f16/bf16 cd computes in f32) */
static tensor *binary_impl(op_id op, const tensor *a, const tensor *b, tensor_dtype cd, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    int nd;
    int64_t shape[TENSOR_MAXDIM];
    if (broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, shape) < 0) {
        eng_fail(err, ERR_SHAPE, "%s: shapes %s and %s do not broadcast", tensor_op_name(op), SHAPE(a, b1),
                 SHAPE(b, b2));
        return NULL;
    }
    tensor_dtype final = cd;
    if (is_half(cd))
        cd = DT_F32;
    int cmp = is_compare(op);
    if (cmp)
        final = DT_BOOL;
    tensor *ac = NULL, *bc = NULL, *ae = NULL, *be = NULL, *out = NULL;
    if (!(ac = as_dtype(a, cd, err)) || !(bc = as_dtype(b, cd, err)))
        goto err;
    if (!(ae = tensor_expand(ac, nd, shape, err)) || !(be = tensor_expand(bc, nd, shape, err)))
        goto err;
    if (!(out = tensor_empty(cmp ? DT_BOOL : cd, nd, shape, err)))
        goto err;
    if (out->storage->backend->binary(op, out, ae, be, err) < 0)
        goto err;
    if (out->dtype != final) {
        tensor *r = tensor_cast(out, final, err);
        tensor_decref(out);
        out = r;
    }
    tensor_decref(ac);
    tensor_decref(bc);
    tensor_decref(ae);
    tensor_decref(be);
    return out;
err:
    tensor_decref(ac);
    tensor_decref(bc);
    tensor_decref(ae);
    tensor_decref(be);
    tensor_decref(out);
    return NULL;
}

/* arithmetic on two bools computes in i64 (the ARITH rows) */
static int is_arith(op_id op)
{
    return op_dtype_rule(op) == RULE_ARITH;
}

tensor *tensor_binary(op_id op, const tensor *a, const tensor *b, eng_error *err)
{
    if (TENSOR_RECORDS2(a, b))
        return tensor_recorder_hooks->binary(op, a, b, err);
    tensor_dtype cd = tensor_dtype_promote(a->dtype, b->dtype);
    if (cd == DT_BOOL && is_arith(op))
        cd = DT_I64;
    placed p;
    const tensor *ops[2] = {a, b};
    if (operands_begin(&p, tensor_op_name(op), ops, 2, err) < 0)
        return NULL;
    tensor *r = binary_impl(op, p.t[0], p.t[1], cd, err);
    operands_end(&p);
    return r;
}

static int binary_inplace_impl(op_id op, tensor *a, const tensor *b, eng_error *err);

int tensor_binary_inplace(op_id op, tensor *a, const tensor *b, eng_error *err)
{
    if (TENSOR_RECORDS(a))
        return tensor_recorder_hooks->refuse_inplace(a, err);
    const tensor *ops[2] = {a, b};
    if (!tensor_common_backend(tensor_op_name(op), ops, 2, err))
        return -1;
    /* the result stays in a: b comes to a's backend (a 0-d one may come from anywhere) */
    placed p;
    if (operands_begin(&p, tensor_op_name(op), ops, 1, err) < 0)
        return -1;
    tensor *bm = tensor_to(b, a->storage->backend, err);
    int rc = bm ? binary_inplace_impl(op, a, bm, err) : -1;
    tensor_decref(bm);
    operands_end(&p);
    return rc;
}

static int binary_inplace_impl(op_id op, tensor *a, const tensor *b, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (is_compare(op))
        return eng_fail(err, ERR_TYPE, "%s: cannot be done in place", tensor_op_name(op));
    tensor_dtype cd = tensor_dtype_promote(a->dtype, b->dtype);
    if (cd == DT_BOOL && is_arith(op))
        cd = DT_I64;
    /* fast path: a is contiguous, already the compute dtype, and b is another storage */
    if (cd == a->dtype && !is_half(cd) && tensor_is_contiguous(a) && b->storage != a->storage) {
        tensor *bc = as_dtype(b, cd, err), *be = NULL;
        if (!bc)
            return -1;
        be = tensor_expand(bc, a->ndim, a->shape, NULL);
        tensor_decref(bc);
        if (!be)
            return eng_fail(err, ERR_SHAPE, "%s: shape %s cannot be broadcast to %s in place",
                            tensor_op_name(op), SHAPE(b, b1), SHAPE(a, b2));
        int rc = a->storage->backend->binary(op, a, a, be, err);
        tensor_decref(be);
        return rc;
    }
    tensor *r = binary_impl(op, a, b, cd, err);
    if (!r)
        return -1;
    int same = r->ndim == a->ndim;
    for (int d = 0; same && d < a->ndim; d++)
        same = r->shape[d] == a->shape[d];
    int rc;
    if (!same)
        rc = eng_fail(err, ERR_SHAPE, "%s: shape %s cannot be broadcast to %s in place",
                      tensor_op_name(op), SHAPE(b, b1), SHAPE(a, b2));
    else
        rc = tensor_assign(a, r, err);
    tensor_decref(r);
    return rc;
}

tensor *tensor_binary_scalar(op_id op, const tensor *t, double s, int s_is_float, int scalar_left,
                             eng_error *err)
{
    if (TENSOR_RECORDS(t))
        return tensor_recorder_hooks->binary_scalar(op, t, s, s_is_float, scalar_left, err);
    placed p;
    if (operands_begin(&p, tensor_op_name(op), &t, 1, err) < 0)
        return NULL;
    tensor_dtype cd = t->dtype;
    if (s_is_float && !tensor_dtype_is_float(cd))
        cd = DT_F32;
    else if (cd == DT_BOOL && (is_arith(op) || (!s_is_float && s != 0 && s != 1)))
        cd = DT_I64;
    /* an int that the tensor's integer dtype cannot hold widens it (u8 + 300) */
    if (!s_is_float && cd == DT_U8 && (s < 0 || s > 255))
        cd = s >= -2147483648.0 && s <= 2147483647.0 ? DT_I32 : DT_I64;
    else if (!s_is_float && cd == DT_I32 && (s < -2147483648.0 || s > 2147483647.0))
        cd = DT_I64;
    tensor *st = tensor_scalar(s, cd, err), *r = NULL;
    if (st)
        r = scalar_left ? binary_impl(op, st, t, cd, err) : binary_impl(op, t, st, cd, err);
    tensor_decref(st);
    operands_end(&p);
    return r;
}

/* ---- where ---- */

static tensor *where_impl(const tensor *c, const tensor *a, const tensor *b, eng_error *err);

tensor *tensor_where(const tensor *c, const tensor *a, const tensor *b, eng_error *err)
{
    if (TENSOR_RECORDS2(a, b))
        return tensor_recorder_hooks->where(c, a, b, err);
    placed p;
    const tensor *ops[3] = {c, a, b};
    if (operands_begin(&p, "where", ops, 3, err) < 0)
        return NULL;
    tensor *r = where_impl(p.t[0], p.t[1], p.t[2], err);
    operands_end(&p);
    return r;
}

static tensor *where_impl(const tensor *c, const tensor *a, const tensor *b, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF], b3[TENSOR_SHAPE_BUF];
    int nd, nd2;
    int64_t s1[TENSOR_MAXDIM], shape[TENSOR_MAXDIM];
    if (broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, s1) < 0 ||
        broadcast_shape(c->ndim, c->shape, nd, s1, &nd2, shape) < 0) {
        eng_fail(err, ERR_SHAPE, "where: shapes %s, %s and %s do not broadcast", SHAPE(c, b1),
                 SHAPE(a, b2), SHAPE(b, b3));
        return NULL;
    }
    tensor_dtype dt = tensor_dtype_promote(a->dtype, b->dtype);
    tensor *cc = NULL, *ac = NULL, *bc = NULL, *ce = NULL, *ae = NULL, *be = NULL, *out = NULL;
    if (!(cc = as_dtype(c, DT_BOOL, err)) || !(ac = as_dtype(a, dt, err)) || !(bc = as_dtype(b, dt, err)))
        goto err;
    if (!(ce = tensor_expand(cc, nd2, shape, err)) || !(ae = tensor_expand(ac, nd2, shape, err)) ||
        !(be = tensor_expand(bc, nd2, shape, err)))
        goto err;
    if (!(out = tensor_empty(dt, nd2, shape, err)))
        goto err;
    if (out->storage->backend->where(out, ce, ae, be, err) < 0) {
        tensor_decref(out);
        out = NULL;
    }
err:
    tensor_decref(cc);
    tensor_decref(ac);
    tensor_decref(bc);
    tensor_decref(ce);
    tensor_decref(ae);
    tensor_decref(be);
    return out;
}

/* ---- reductions ---- */

static tensor *reduce_impl(op_id op, const tensor *x, int dim, int keepdim, eng_error *err);

tensor *tensor_reduce(op_id op, const tensor *x, int dim, int keepdim, eng_error *err)
{
    if (TENSOR_RECORDS(x))
        return tensor_recorder_hooks->reduce(op, x, dim, keepdim, err);
    placed p;
    if (operands_begin(&p, tensor_op_name(op), &x, 1, err) < 0)
        return NULL;
    tensor *r = reduce_impl(op, p.t[0], dim, keepdim, err);
    operands_end(&p);
    return r;
}

int tensor_int_range(const tensor *t, int64_t *lo, int64_t *hi, eng_error *err)
{
    *lo = 0;
    *hi = -1;
    if (tensor_numel(t) == 0)
        return 0;
    double l = 0, h = 0;
    tensor *mn = tensor_reduce(OP_MIN, t, TENSOR_ALLDIMS, 0, err);
    tensor *mx = mn ? tensor_reduce(OP_MAX, t, TENSOR_ALLDIMS, 0, err) : NULL;
    int rc = mx && !tensor_item(mn, &l, err) && !tensor_item(mx, &h, err) ? 0 : -1;
    tensor_decref(mn);
    tensor_decref(mx);
    if (rc == 0) {
        *lo = (int64_t)l;
        *hi = (int64_t)h;
    }
    return rc;
}

static tensor *reduce_impl(op_id op, const tensor *x, int dim, int keepdim, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF];
    const char *name = tensor_op_name(op);
    int all = dim == TENSOR_ALLDIMS;
    int d = dim;
    if (!all) {
        d = dim < 0 ? dim + x->ndim : dim;
        if (d < 0 || d >= x->ndim) {
            eng_fail(err, ERR_INDEX, "%s: dimension %d is out of range for a %d-d tensor of shape %s",
                     name, dim, x->ndim, SHAPE(x, b1));
            return NULL;
        }
    }
    int64_t n = all ? tensor_numel(x) : x->shape[d];
    int extreme = op == OP_MAX || op == OP_MIN || op == OP_ARGMAX || op == OP_ARGMIN;
    if (extreme && n == 0) {
        if (all)
            eng_fail(err, ERR_VALUE, "%s: the tensor of shape %s is empty", name, SHAPE(x, b1));
        else
            eng_fail(err, ERR_VALUE, "%s: dimension %d of shape %s is empty", name, d, SHAPE(x, b1));
        return NULL;
    }
    /* dtypes: the input's compute dtype and the output's */
    tensor_dtype in = is_half(x->dtype) ? DT_F32 : x->dtype, od, final;
    switch (op_dtype_rule(op)) {
    case RULE_SUM: od = tensor_dtype_is_float(in) ? in : DT_I64; break;
    case RULE_INDEX: od = DT_I64; break;
    case RULE_KEEP: od = in; break;
    default: od = tensor_dtype_is_float(in) ? in : DT_F32; break;
    }
    final = is_half(x->dtype) && od == DT_F32 ? x->dtype : od;
    int ond = 0;
    int64_t oshape[TENSOR_MAXDIM];
    if (!all)
        for (int k = 0; k < x->ndim; k++)
            if (k != d)
                oshape[ond++] = x->shape[k];
    tensor *xc = NULL, *out = NULL, *r = NULL;
    if (!(xc = as_dtype(x, in, err)))
        goto err;
    if (!(out = tensor_empty(od, ond, oshape, err)))
        goto err;
    if (out->storage->backend->reduce(op, out, xc, all ? TENSOR_ALLDIMS : d, err) < 0)
        goto err;
    if (final != od) {
        if (!(r = tensor_cast(out, final, err)))
            goto err;
        tensor_decref(out);
        out = r;
    }
    if (keepdim) {
        int64_t kshape[TENSOR_MAXDIM];
        for (int k = 0; k < x->ndim; k++)
            kshape[k] = (all || k == d) ? 1 : x->shape[k];
        r = tensor_reshape(out, x->ndim, kshape, err);
        tensor_decref(out);
        out = r;
    }
    tensor_decref(xc);
    return out;
err:
    tensor_decref(xc);
    tensor_decref(out);
    return NULL;
}

/* ---- linear algebra ---- */

/* t (batch dims + 2 matrix dims, already expanded) as a 3-D view [B, R, C]: the batch
 * dims merge into one stride when they chain (stride-0 broadcast dims included), else
 * reshape copies */
static tensor *as_batched(tensor *t, int nbatch, eng_error *err)
{
    int64_t shape[3] = {1, t->shape[nbatch], t->shape[nbatch + 1]};
    for (int d = 0; d < nbatch; d++)
        shape[0] *= t->shape[d];
    return tensor_reshape(t, 3, shape, err);
}

static tensor *matmul_impl(const tensor *a, const tensor *b, eng_error *err);

tensor *tensor_matmul(const tensor *a, const tensor *b, eng_error *err)
{
    if (TENSOR_RECORDS2(a, b))
        return tensor_recorder_hooks->matmul(a, b, err);
    placed p;
    const tensor *ops[2] = {a, b};
    if (operands_begin(&p, "matmul", ops, 2, err) < 0)
        return NULL;
    tensor *r = matmul_impl(p.t[0], p.t[1], err);
    operands_end(&p);
    return r;
}

static tensor *matmul_impl(const tensor *a, const tensor *b, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (a->ndim == 0 || b->ndim == 0) {
        eng_fail(err, ERR_SHAPE, "matmul: %s @ %s: operands must have at least one dimension (use * for scalars)",
                 SHAPE(a, b1), SHAPE(b, b2));
        return NULL;
    }
    int64_t K = a->shape[a->ndim - 1];
    int64_t Kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (K != Kb) {
        eng_fail(err, ERR_SHAPE, "matmul: %s @ %s: inner dimensions %lld and %lld differ", SHAPE(a, b1),
                 SHAPE(b, b2), (long long)K, (long long)Kb);
        return NULL;
    }
    /* 1-D operands become matrices: a [K] -> [1, K], b [K] -> [K, 1] */
    tensor a2 = *a, b2t = *b;
    if (a->ndim == 1) {
        a2.ndim = 2;
        a2.shape[0] = 1;
        a2.shape[1] = K;
        a2.stride[0] = K;
        a2.stride[1] = a->stride[0];
    }
    if (b->ndim == 1) {
        b2t.ndim = 2;
        b2t.shape[0] = K;
        b2t.shape[1] = 1;
        b2t.stride[0] = b->stride[0];
        b2t.stride[1] = 1;
    }
    int nba = a2.ndim - 2, nbb = b2t.ndim - 2, nb;
    int64_t bshape[TENSOR_MAXDIM];
    if (broadcast_shape(nba, a2.shape, nbb, b2t.shape, &nb, bshape) < 0) {
        eng_fail(err, ERR_SHAPE, "matmul: %s @ %s: batch dimensions do not broadcast", SHAPE(a, b1),
                 SHAPE(b, b2));
        return NULL;
    }
    if (nb + 2 > TENSOR_MAXDIM) {
        eng_fail(err, ERR_SHAPE, "matmul: too many dimensions");
        return NULL;
    }
    int64_t M = a2.shape[a2.ndim - 2], N = b2t.shape[b2t.ndim - 1];
    tensor_dtype dt = tensor_dtype_promote(a->dtype, b->dtype), cd = dt, final = dt;
    if (!tensor_dtype_is_float(dt)) {
        cd = DT_F64;
        final = dt == DT_BOOL || dt == DT_U8 ? DT_I64 : dt;
    } else if (is_half(dt)) {
        cd = tensor_placement()->matmul_half ? dt : DT_F32;
    }
    int64_t sa[TENSOR_MAXDIM], sb[TENSOR_MAXDIM], so[TENSOR_MAXDIM];
    memcpy(sa, bshape, sizeof(int64_t) * (size_t)nb);
    memcpy(sb, bshape, sizeof(int64_t) * (size_t)nb);
    memcpy(so, bshape, sizeof(int64_t) * (size_t)nb);
    sa[nb] = M; sa[nb + 1] = K;
    sb[nb] = K; sb[nb + 1] = N;
    so[nb] = M; so[nb + 1] = N;
    tensor *ac = NULL, *bc = NULL, *ae = NULL, *be = NULL, *a3 = NULL, *b3 = NULL, *out = NULL, *r;
    /* a2/b2t are stack headers borrowing a's and b's storage: cast copies or new views */
    a2.refcount = b2t.refcount = 1;
    a2.grad = b2t.grad = NULL;
    if (!(ac = a2.dtype == cd ? tensor_expand(&a2, a2.ndim, a2.shape, err) : tensor_cast(&a2, cd, err)))
        goto err;
    if (!(bc = b2t.dtype == cd ? tensor_expand(&b2t, b2t.ndim, b2t.shape, err) : tensor_cast(&b2t, cd, err)))
        goto err;
    if (!(ae = tensor_expand(ac, nb + 2, sa, err)) || !(be = tensor_expand(bc, nb + 2, sb, err)))
        goto err;
    if (!(a3 = as_batched(ae, nb, err)) || !(b3 = as_batched(be, nb, err)))
        goto err;
    if (!(out = tensor_empty(cd, nb + 2, so, err)))
        goto err;
    {
        tensor o3 = *out;
        o3.ndim = 3;
        o3.shape[0] = a3->shape[0];
        o3.shape[1] = M;
        o3.shape[2] = N;
        tensor_contiguous_strides(3, o3.shape, o3.stride);
        if (out->storage->backend->matmul(&o3, a3, b3, err) < 0)
            goto err;
    }
    if (final != cd) {
        if (!(r = tensor_cast(out, final, err)))
            goto err;
        tensor_decref(out);
        out = r;
    }
    /* drop the dimensions that 1-D operands added */
    if (a->ndim == 1 || b->ndim == 1) {
        int64_t fs[TENSOR_MAXDIM];
        int fn = 0;
        for (int d = 0; d < nb; d++)
            fs[fn++] = bshape[d];
        if (a->ndim != 1)
            fs[fn++] = M;
        if (b->ndim != 1)
            fs[fn++] = N;
        if (!(r = tensor_reshape(out, fn, fs, err)))
            goto err;
        tensor_decref(out);
        out = r;
    }
    tensor_decref(ac);
    tensor_decref(bc);
    tensor_decref(ae);
    tensor_decref(be);
    tensor_decref(a3);
    tensor_decref(b3);
    return out;
err:
    tensor_decref(ac);
    tensor_decref(bc);
    tensor_decref(ae);
    tensor_decref(be);
    tensor_decref(a3);
    tensor_decref(b3);
    tensor_decref(out);
    return NULL;
}

tensor *tensor_dot(const tensor *a, const tensor *b, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (a->ndim != 1 || b->ndim != 1 || a->shape[0] != b->shape[0]) {
        eng_fail(err, ERR_SHAPE, "dot: needs two 1-d tensors of one length, got %s and %s",
                 SHAPE(a, b1), SHAPE(b, b2));
        return NULL;
    }
    return tensor_matmul(a, b, err);
}

tensor *tensor_outer(const tensor *a, const tensor *b, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (a->ndim != 1 || b->ndim != 1) {
        eng_fail(err, ERR_SHAPE, "outer: needs two 1-d tensors, got %s and %s", SHAPE(a, b1),
                 SHAPE(b, b2));
        return NULL;
    }
    tensor *col = tensor_unsqueeze((tensor *)a, 1, err); /* a real tensor, so autograd can hold it */
    if (!col)
        return NULL;
    tensor *r = tensor_binary(OP_MUL, col, b, err);
    tensor_decref(col);
    return r;
}

/* ---- joining and gathering ---- */

tensor *tensor_cat(tensor *const *ts, int n, int dim, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (n < 1) {
        eng_fail(err, ERR_VALUE, "cat: needs at least one tensor");
        return NULL;
    }
    const tensor *t0 = ts[0];
    if (t0->ndim == 0) {
        eng_fail(err, ERR_SHAPE, "cat: 0-d tensors cannot be concatenated (use stack)");
        return NULL;
    }
    int d = dim < 0 ? dim + t0->ndim : dim;
    if (d < 0 || d >= t0->ndim) {
        eng_fail(err, ERR_INDEX, "cat: dimension %d is out of range for %d-d tensors", dim, t0->ndim);
        return NULL;
    }
    int64_t shape[TENSOR_MAXDIM];
    memcpy(shape, t0->shape, sizeof shape);
    tensor_dtype dt = t0->dtype;
    for (int i = 0; tensor_grad_mode() && i < n; i++)
        if (ts[i]->requires_grad)
            return tensor_recorder_hooks->cat(ts, n, dim, err);
    const eng_backend *be = tensor_common_backend("cat", (const tensor *const *)ts, n, err);
    if (!be)
        return NULL;
    for (int i = 1; i < n; i++) {
        const tensor *t = ts[i];
        int ok = t->ndim == t0->ndim;
        for (int k = 0; ok && k < t0->ndim; k++)
            ok = k == d || t->shape[k] == t0->shape[k];
        if (!ok) {
            eng_fail(err, ERR_SHAPE, "cat: shapes %s and %s differ outside dimension %d", SHAPE(t0, b1),
                     SHAPE(t, b2), d);
            return NULL;
        }
        if (__builtin_add_overflow(shape[d], t->shape[d], &shape[d])) {
            eng_fail(err, ERR_MEMORY, "cat: the total size along dimension %d overflows (tensor %d of shape %s "
                     "makes it pass 2^63)", d, i + 1, SHAPE(t, b2));
            return NULL;
        }
        dt = tensor_dtype_promote(dt, t->dtype);
    }
    tensor *out = tensor_empty_on(be, dt, t0->ndim, shape, err);
    if (!out)
        return NULL;
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        tensor *part = tensor_slice(out, d, at, at + ts[i]->shape[d], 1, err);
        if (!part || tensor_assign(part, ts[i], err) < 0) {
            tensor_decref(part);
            tensor_decref(out);
            return NULL;
        }
        tensor_decref(part);
        at += ts[i]->shape[d];
    }
    return out;
}

tensor *tensor_stack(tensor *const *ts, int n, int dim, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (n < 1) {
        eng_fail(err, ERR_VALUE, "stack: needs at least one tensor");
        return NULL;
    }
    int nd = ts[0]->ndim;
    int d = dim < 0 ? dim + nd + 1 : dim;
    if (d < 0 || d > nd || nd >= TENSOR_MAXDIM) {
        eng_fail(err, ERR_INDEX, "stack: dimension %d is out of range for %d-d tensors", dim, nd);
        return NULL;
    }
    tensor **us = calloc((size_t)n, sizeof *us);
    tensor *out = NULL;
    if (!us) {
        eng_fail(err, ERR_MEMORY, "stack: out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        int ok = ts[i]->ndim == nd;
        for (int k = 0; ok && k < nd; k++)
            ok = ts[i]->shape[k] == ts[0]->shape[k];
        if (!ok) {
            eng_fail(err, ERR_SHAPE, "stack: shapes %s and %s differ", SHAPE(ts[0], b1), SHAPE(ts[i], b2));
            goto done;
        }
        if (!(us[i] = tensor_unsqueeze(ts[i], d, err)))
            goto done;
    }
    out = tensor_cat(us, n, d, err);
done:
    for (int i = 0; i < n; i++)
        tensor_decref(us[i]);
    free(us);
    return out;
}

static tensor *gather_impl(const tensor *x, const tensor *idx, int trusted, eng_error *err);

static tensor *gather_placed(const tensor *x, const tensor *idx, int trusted, eng_error *err)
{
    if (TENSOR_RECORDS(x))
        return tensor_recorder_hooks->gather(x, idx, err);
    placed p;
    const tensor *ops[2] = {x, idx};
    if (operands_begin(&p, "gather", ops, 2, err) < 0)
        return NULL;
    tensor *r = gather_impl(p.t[0], p.t[1], trusted, err);
    operands_end(&p);
    return r;
}

tensor *tensor_gather(const tensor *x, const tensor *idx, eng_error *err)
{
    return gather_placed(x, idx, 0, err);
}

tensor *tensor_gather_trusted(const tensor *x, const tensor *idx, eng_error *err)
{
    return gather_placed(x, idx, 1, err);
}

static tensor *gather_impl(const tensor *x, const tensor *idx, int trusted, eng_error *err)
{
    char b1[TENSOR_SHAPE_BUF], b2[TENSOR_SHAPE_BUF];
    if (idx->dtype != DT_I32 && idx->dtype != DT_I64) {
        eng_fail(err, ERR_TYPE, "gather: index tensor must be i32 or i64, got %s", tensor_dtype_name(idx->dtype));
        return NULL;
    }
    if (x->ndim == 0 || idx->ndim + x->ndim - 1 > TENSOR_MAXDIM) {
        eng_fail(err, ERR_SHAPE, "gather: cannot index %s with %s", SHAPE(x, b1), SHAPE(idx, b2));
        return NULL;
    }
    int64_t shape[TENSOR_MAXDIM];
    int nd = 0;
    for (int d = 0; d < idx->ndim; d++)
        shape[nd++] = idx->shape[d];
    for (int d = 1; d < x->ndim; d++)
        shape[nd++] = x->shape[d];
    tensor *out = tensor_empty(x->dtype, nd, shape, err);
    if (out && out->storage->backend->gather(out, x, idx, trusted, err) < 0) {
        tensor_decref(out);
        return NULL;
    }
    return out;
}
