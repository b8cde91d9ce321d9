/* indexing.c — x[items] and x[items] op= v for the interpreter (engine/lang/indexing.h):
 * the items evaluated into engine/tensor's tensor_index_item array, then one call of
 * tensor_index or tensor_index_assign. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "engine/lang/indexing.h"
#include "engine/tensor/tensor_impl.h"

static int fail(const eng_index_env *e, ast *n, eng_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(const eng_index_env *e, ast *n, eng_errkind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eng_vfail(e->err, kind, fmt, ap);
    va_end(ap);
    return e->located(e->ctx, n);
}

/* The items of x[items] evaluated (engine/tensor/tensor.h's NumPy index); the tensors
 * among them are held in held[0..*nheld) until index_items_release. */
static int index_items(const eng_index_env *e, ast *n, tensor_index_item *items, tensor **held, int *nheld)
{
    *nheld = 0;
    if (n->nlist > 2 * TENSOR_MAXDIM)
        return fail(e, n->list[2 * TENSOR_MAXDIM], ERR_INDEX, "too many indices: %d given", n->nlist);
    for (int i = 0; i < n->nlist; i++) {
        ast *item = n->list[i];
        tensor_index_item *ti = &items[i];
        memset(ti, 0, sizeof *ti);
        if (item->kind == AST_SLICE && item->ival) {
            ti->kind = item->ival == AST_IDX_NEWAXIS ? TIX_NEWAXIS : TIX_ELLIPSIS;
        } else if (item->kind == AST_SLICE) {
            int64_t bounds[3] = {0, 0, 1};
            int given[3] = {0, 0, 0};
            ast *parts[3] = {item->a, item->b, item->c};
            for (int k = 0; k < 3; k++) {
                if (!parts[k])
                    continue;
                value bv;
                if (e->eval(e->ctx, parts[k], &bv))
                    return -1;
                eng_call c = {e->s, "slice", 1, &bv, e->err};
                int rc = arg_int(&c, 0, &bounds[k]);
                value_decref(bv);
                if (rc)
                    return e->located(e->ctx, parts[k]);
                given[k] = 1;
            }
            if (bounds[2] == 0)
                return fail(e, item, ERR_VALUE, "slice step cannot be zero");
            const int64_t far = INT64_MAX / 4;
            ti->kind = TIX_SLICE;
            ti->start = given[0] ? bounds[0] : bounds[2] > 0 ? -far : far;
            ti->stop = given[1] ? bounds[1] : bounds[2] > 0 ? far : -far;
            ti->step = bounds[2];
        } else {
            value iv;
            if (e->eval(e->ctx, item, &iv))
                return -1;
            if (iv.type == VAL_TENSOR && (iv.as.t->ndim > 0 || iv.as.t->dtype == DT_BOOL)) {
                ti->kind = TIX_TENSOR;
                ti->t = held[(*nheld)++] = iv.as.t; /* the reference moves to held */
            } else {
                eng_call c = {e->s, "index", 1, &iv, e->err};
                int rc = arg_int(&c, 0, &ti->i);
                value_decref(iv);
                if (rc)
                    return e->located(e->ctx, item);
                ti->kind = TIX_INT;
            }
        }
    }
    return 0;
}

static void index_items_release(tensor **held, int nheld)
{
    for (int i = 0; i < nheld; i++)
        tensor_decref(held[i]);
}

int eng_index_read(const eng_index_env *e, ast *n, tensor *base, tensor **out)
{
    tensor_index_item items[2 * TENSOR_MAXDIM];
    tensor *held[2 * TENSOR_MAXDIM];
    int nheld, bad = -1, rc = index_items(e, n, items, held, &nheld);
    if (!rc && !(*out = tensor_index(base, items, n->nlist, &bad, e->err)))
        rc = e->located(e->ctx, bad >= 0 ? n->list[bad] : n);
    index_items_release(held, nheld);
    return rc;
}

int eng_index_assign(const eng_index_env *e, ast *asg, tensor *base, value rhs, tensor **view)
{
    ast *target = asg->a;
    tensor_index_item items[2 * TENSOR_MAXDIM];
    tensor *held[2 * TENSOR_MAXDIM], *src = NULL;
    int nheld, bad = -1, advanced = 0, rc = index_items(e, target, items, held, &nheld);
    *view = NULL;
    for (int i = 0; !rc && i < target->nlist; i++)
        advanced |= items[i].kind == TIX_TENSOR;
    if (rc) {
    } else if (!advanced) { /* a view: the caller's in-place path writes through it */
        if (!(*view = tensor_index(base, items, target->nlist, &bad, e->err)))
            rc = e->located(e->ctx, bad >= 0 ? target->list[bad] : target);
    } else {
        op_id op = asg->op == TK_ASSIGN ? OP_COUNT : eng_tensor_op(check_compound_op(asg->op));
        if (asg->op != TK_ASSIGN && op == OP_COUNT)
            rc = fail(e, asg, ERR_TYPE, "operator '%s' does not apply in place to tensors",
                      eng_op_name(check_compound_op(asg->op)));
        else if (rhs.type == VAL_TENSOR) {
            src = rhs.as.t;
            tensor_incref(src);
        } else if (rhs.type == VAL_INT || rhs.type == VAL_BOOL || rhs.type == VAL_FLOAT) {
            /* a float into an integer tensor with op=: computed in f64, as NumPy */
            tensor_dtype dt = rhs.type == VAL_FLOAT && !tensor_dtype_is_float(base->dtype) && op != OP_COUNT
                                  ? DT_F64 : base->dtype;
            const eng_backend *prev = tensor_place(base->storage->backend);
            src = tensor_scalar(rhs.type == VAL_FLOAT ? rhs.as.f : (double)rhs.as.i, dt, e->err);
            tensor_place(prev);
            if (!src)
                rc = e->located(e->ctx, asg);
        } else
            rc = fail(e, asg, ERR_TYPE, "cannot store a %s into a tensor", value_type_name(rhs.type));
        if (!rc && eng_ctx_flag_get(&e->s->ctx.interrupt))
            rc = fail(e, asg, ERR_INTERRUPT, "interrupted");
        if (!rc && tensor_index_assign(base, items, target->nlist, op, src, &bad, e->err) < 0)
            rc = e->located(e->ctx, bad >= 0 ? target->list[bad] : asg);
    }
    tensor_decref(src);
    index_items_release(held, nheld);
    return rc;
}
