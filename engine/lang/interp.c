/* interp.c — the tree-walking interpreter.
 *
 * Walks a checked cell: eval() computes an expression into a value the caller owns,
 * exec() runs a statement and says how control leaves it. Frames live on the session's
 * value stack: a call evaluates its arguments into the next free slots, which become
 * the callee's first locals. Errors travel up as -1 / EX_ERROR with the eng_error
 * filled; the first node that sees an error without a position gives it its own.
 * The interrupt flag is checked at every loop back-edge, call and tensor operation.
 * Every recursive entry checks the C stack left (engine/base/stack.h): past the limit the
 * cell fails with an error naming the calls in progress. A long chain (a + b + c...,
 * x.T.T..., marked by the checker) is evaluated with a loop (eval_chain), not recursion.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tensor/backend.h"
#include "engine/lang/interp.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/lang/kernels.h"
#include "engine/lang/indexing.h"
#include "engine/lang/custom_ops.h"
#include "engine/base/stack.h"
#include "engine/lang/debug.h"

enum { EX_OK = 0, EX_BREAK, EX_CONTINUE, EX_RETURN, EX_ERROR };

typedef struct interp {
    eng_session *s;     /* the session */
    value *fp;          /* the current frame's first slot */
    eng_error *err;     /* the error being built */
    eng_source *src;    /* the source of the code running now */
    eng_source **err_src; /* where err's position points */
    eng_trace *trace;   /* call chain of the error */
    value ret;          /* a return statement's value */
    ast *builtin_call;  /* the built-in call running now: a user function it calls back (fit's
                           model) reports its errors into this interp's chain (interp_call) */
    uintptr_t stack_limit; /* eval and exec stop with an error below it (engine/base/stack.h) */
} interp;

static int eval(interp *it, ast *n, value *out);
static int eval_chain(interp *it, ast *n, value *out);
static int exec(interp *it, ast *n);
static inline int fast_int(interp *it, ast *n, int64_t *out);

/* ---- errors ---- */

/* gives the pending error the position of n, if it has none yet */
static int located(interp *it, ast *n)
{
    if (it->err->kind == ERR_NONE)
        eng_fail(it->err, ERR_RUNTIME, "internal error: an operation failed without saying why");
    if (it->err->line == 0 && n) {
        it->err->line = n->line;
        it->err->col = n->col;
        *it->err_src = it->src;
        if (__atomic_load_n(&it->s->dbg_active, __ATOMIC_RELAXED)) /* where it is raised, frames intact */
            eng_dbg_error(it->s, it->src, n, it->err);
    }
    return -1;
}

static int fail(interp *it, ast *n, eng_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(interp *it, ast *n, eng_errkind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eng_vfail(it->err, kind, fmt, ap);
    va_end(ap);
    return located(it, n);
}

/* the C stack is nearly used up (engine/base/stack.h): an error instead of a crash */
static int __attribute__((noinline, cold)) too_deep(interp *it, ast *n)
{
    double mb = (double)eng_stack_usable() / (1 << 20);
    if (it->s->depth > 1)
        return fail(it, n, ERR_RUNTIME, "recursion too deep: %d calls in progress used all %.1f MB of the stack",
                    it->s->depth, mb);
    return fail(it, n, ERR_RUNTIME,
                "expression nested too deeply: evaluating it used all %.1f MB of the stack; split it into "
                "several statements", mb);
}

/* at each recursive entry of eval and exec: one compare */
#define RECURSING(it, n)                                 \
    do {                                                 \
        if (eng_stack_exhausted((it)->stack_limit))      \
            return too_deep(it, n);                      \
    } while (0)

static int interrupted(interp *it, ast *n)
{
    if (!eng_ctx_flag_get(&it->s->ctx.interrupt))
        return 0;
    return fail(it, n, ERR_INTERRUPT, "interrupted");
}

static void trace_add(eng_trace *t, const char *line)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        char **p = realloc(t->lines, sizeof *p * (size_t)cap);
        if (!p)
            return;
        t->lines = p;
        t->cap = cap;
    }
    char *copy = strdup(line);
    if (copy)
        t->lines[t->n++] = copy;
}

void eng_trace_free(eng_trace *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->lines[i]);
    free(t->lines);
    t->lines = NULL;
    t->n = t->cap = 0;
}

/* ---- values ---- */

static void store(value *slot, value v)
{
    value old = *slot;
    *slot = v;
    value_decref(old);
}

static int is_num(value v) { return v.type == VAL_INT || v.type == VAL_BOOL || v.type == VAL_FLOAT; }
static double num(value v) { return v.type == VAL_FLOAT ? v.as.f : (double)v.as.i; }

static int tensor_scalar_value(interp *it, ast *n, tensor *t, const char *what, double *d)
{
    if (tensor_numel(t) != 1)
        return fail(it, n, ERR_TYPE, "%s: needs one value, got a tensor of %lld elements", what,
                    (long long)tensor_numel(t));
    if (tensor_item(t, d, it->err))
        return located(it, n);
    return 0;
}

static int truthy(interp *it, ast *n, value v, int *out)
{
    switch (v.type) {
    case VAL_INT:
    case VAL_BOOL: *out = v.as.i != 0; return 0;
    case VAL_FLOAT: *out = v.as.f != 0; return 0;
    case VAL_TENSOR: {
        double d;
        if (tensor_numel(v.as.t) != 1)
            return fail(it, n, ERR_TYPE,
                        "the truth value of a tensor of %lld elements is ambiguous (reduce it first, e.g. "
                        "sum(x > 0) > 0)", (long long)tensor_numel(v.as.t));
        if (tensor_item(v.as.t, &d, it->err))
            return located(it, n);
        *out = d != 0;
        return 0;
    }
    default: return fail(it, n, ERR_TYPE, "%s cannot be used as a condition", value_type_a(v.type));
    }
}

/* converts v (owned) in place to a declared type */
static int convert(interp *it, ast *n, ast_type ty, value *v, const char *name)
{
    double d;
    switch (ty) {
    case TY_INT:
    case TY_FLOAT:
    case TY_BOOL:
        if (v->type == VAL_TENSOR) {
            int rc = tensor_scalar_value(it, n, v->as.t, name, &d);
            int is_float = tensor_dtype_is_float(v->as.t->dtype);
            value_decref(*v);
            *v = value_void();
            if (rc)
                return -1;
            *v = is_float ? value_float(d) : value_int((int64_t)d);
        }
        if (!is_num(*v))
            return fail(it, n, ERR_TYPE, "%s: cannot convert %s to %s", name, value_type_name(v->type),
                        ty == TY_INT ? "int" : ty == TY_BOOL ? "bool" : "float");
        if (ty == TY_INT && v->type != VAL_INT) {
            if (v->type == VAL_FLOAT && !(fabs(v->as.f) < 9.2e18))
                return fail(it, n, ERR_VALUE, "%s: %g does not fit in an int", name, v->as.f);
            *v = value_int(v->type == VAL_FLOAT ? (int64_t)v->as.f : v->as.i);
        } else if (ty == TY_FLOAT && v->type != VAL_FLOAT)
            *v = value_float((double)v->as.i);
        else if (ty == TY_BOOL && v->type != VAL_BOOL)
            *v = value_bool(v->type == VAL_FLOAT ? v->as.f != 0 : v->as.i != 0);
        return 0;
    case TY_TENSOR:
        if (v->type == VAL_TENSOR)
            return 0;
        if (is_num(*v)) {
            tensor *t = tensor_scalar(num(*v), v->type == VAL_FLOAT ? DT_F32 : v->type == VAL_BOOL ? DT_BOOL : DT_I64,
                                      it->err);
            if (!t)
                return located(it, n);
            *v = value_tensor(t);
            return 0;
        }
        return fail(it, n, ERR_TYPE, "%s: cannot convert %s to tensor", name, value_type_name(v->type));
    case TY_STRING:
        if (v->type != VAL_STRING)
            return fail(it, n, ERR_TYPE, "%s: cannot convert %s to string", name, value_type_name(v->type));
        return 0;
    default: return 0;
    }
}

static ast_type value_static_type(value v)
{
    switch (v.type) {
    case VAL_INT: return TY_INT;
    case VAL_FLOAT: return TY_FLOAT;
    case VAL_BOOL: return TY_BOOL;
    case VAL_STRING: return TY_STRING;
    case VAL_TENSOR: return TY_TENSOR;
    case VAL_TUPLE: return TY_TUPLE;
    case VAL_DTYPE: return TY_DTYPE;
    case VAL_DEVICE: return TY_DEVICE;
    case VAL_FUNC: return TY_FUNC;
    default: return TY_UNKNOWN;
    }
}

/* ---- tensor literals ---- */

static int list_shape(interp *it, ast *n, int depth, int64_t *shape, int *ndim)
{
    if (depth >= TENSOR_MAXDIM)
        return fail(it, n, ERR_VALUE, "tensor literal: more than %d levels of braces", TENSOR_MAXDIM);
    if (depth == *ndim) {
        shape[depth] = n->nlist;
        (*ndim)++;
        if (n->nlist > 0 && n->list[0]->kind == AST_LIST)
            return list_shape(it, n->list[0], depth + 1, shape, ndim);
    }
    return 0;
}

static int list_fill(interp *it, ast *n, int depth, const int64_t *shape, int ndim, double *data, int64_t *pos,
                     int *any_float, int *all_bool)
{
    if (n->nlist != shape[depth])
        return fail(it, n, ERR_SHAPE, "tensor literal: ragged rows (%d item%s here, %lld in the first row)", n->nlist,
                    eng_s(n->nlist), (long long)shape[depth]);
    for (int i = 0; i < n->nlist; i++) {
        ast *item = n->list[i];
        if (depth + 1 < ndim) {
            if (item->kind != AST_LIST)
                return fail(it, item, ERR_SHAPE, "tensor literal: expected a nested { } list here");
            if (list_fill(it, item, depth + 1, shape, ndim, data, pos, any_float, all_bool))
                return -1;
            continue;
        }
        if (item->kind == AST_LIST)
            return fail(it, item, ERR_SHAPE, "tensor literal: too deeply nested here");
        value v;
        if (eval(it, item, &v))
            return -1;
        double d;
        if (v.type == VAL_TENSOR) {
            if (!tensor_dtype_is_float(v.as.t->dtype))
                *all_bool = 0;
            else
                *any_float = 1, *all_bool = 0;
            int rc = tensor_scalar_value(it, item, v.as.t, "tensor literal", &d);
            value_decref(v);
            if (rc)
                return -1;
        } else if (is_num(v)) {
            d = num(v);
            if (v.type == VAL_FLOAT)
                *any_float = 1;
            if (v.type != VAL_BOOL)
                *all_bool = 0;
        } else {
            value_decref(v);
            return fail(it, item, ERR_TYPE, "tensor literal: items must be numbers, got %s", value_type_name(v.type));
        }
        data[(*pos)++] = d;
    }
    return 0;
}

static int eval_list(interp *it, ast *n, value *out)
{
    int64_t shape[TENSOR_MAXDIM];
    int ndim = 0;
    if (list_shape(it, n, 0, shape, &ndim))
        return -1;
    int64_t total = 1;
    for (int i = 0; i < ndim; i++)
        total *= shape[i];
    double *data = malloc(sizeof(double) * (size_t)(total > 0 ? total : 1));
    if (!data)
        return fail(it, n, ERR_MEMORY, "tensor literal: out of memory");
    int64_t pos = 0;
    int any_float = 0, all_bool = total > 0;
    int rc = list_fill(it, n, 0, shape, ndim, data, &pos, &any_float, &all_bool);
    if (!rc) {
        tensor_dtype dt = any_float ? DT_F32 : all_bool ? DT_BOOL : total == 0 ? DT_F32 : DT_I64;
        tensor *t = tensor_from_doubles(data, dt, ndim, shape, it->err);
        if (!t)
            rc = located(it, n);
        else
            *out = value_tensor(t);
    }
    free(data);
    return rc;
}

/* ---- operators (engine/lang/operators.c) ---- */

static int int_binop(interp *it, ast *n, int op, int64_t a, int64_t b, value *out)
{
    return eng_int_binop(op, a, b, out, it->err) ? located(it, n) : 0;
}

/* a op b for any two values (borrowed); *out is new */
static int binop(interp *it, ast *n, int op, value a, value b, value *out)
{
    if ((a.type == VAL_TENSOR || b.type == VAL_TENSOR) && interrupted(it, n))
        return -1;
    return eng_binop(op, a, b, out, it->err) ? located(it, n) : 0;
}

/* ---- names and places ---- */

static value *global_slot(interp *it, ast *n)
{
    eng_global *g = &it->s->globals[n->slot];
    if (!g->defined) {
        fail(it, n, ERR_NAME, "'%s' is not defined any more (reset, or its declaring cell failed)", g->name);
        return NULL;
    }
    return &g->v;
}

static int eval_const(interp *it, ast *n, value *out)
{
    const char *name = n->str;
    int dt = tensor_dtype_from_name(name);
    if (dt >= 0)
        *out = value_dtype((tensor_dtype)dt);
    else if (value_device_index(name) >= 0)
        *out = value_device(value_device_index(name));
    else if (!strcmp(name, "stdout"))
        *out = value_int(1);
    else if (!strcmp(name, "stderr"))
        *out = value_int(2);
    else if (!strcmp(name, "M_PI"))
        *out = value_float(M_PI);
    else if (!strcmp(name, "INFINITY"))
        *out = value_float(INFINITY);
    else if (!strcmp(name, "NAN"))
        *out = value_float(NAN);
    else
        return fail(it, n, ERR_NAME, "unknown constant '%s'", name);
    return 0;
}

/* the slot a NAME refers to, and its declared type */
static value *name_slot(interp *it, ast *n, ast_type *type)
{
    if (n->res == RES_LOCAL) {
        *type = n->type;
        return &it->fp[n->slot];
    }
    if (n->res == RES_GLOBAL) {
        value *v = global_slot(it, n);
        *type = it->s->globals[n->slot].type;
        return v;
    }
    fail(it, n, ERR_TYPE, "cannot assign to '%s'", n->str);
    return NULL;
}

/* x[items]: engine/lang/indexing.c, through these callbacks */
static int index_eval(void *ctx, ast *n, value *out) { return eval(ctx, n, out); }
static int index_located(void *ctx, ast *n) { return located(ctx, n); }
#define INDEX_ENV(it) {(it), (it)->s, (it)->err, index_eval, index_located}

/* base[items] for the value of n->a (consumed) */
static int eval_index(interp *it, ast *n, value base, value *out)
{
    int rc = 0;
    if (base.type == VAL_TUPLE || base.type == VAL_LIST) { /* one int index, negative from the end */
        value iv;
        int64_t idx = 0, len = base.type == VAL_LIST ? base.as.list->n : base.as.tup->n;
        const char *what = value_type_name(base.type);
        if (n->nlist != 1 || n->list[0]->kind == AST_SLICE) {
            rc = fail(it, n, ERR_INDEX, "a %s takes one int index", what);
        } else if (!(rc = eval(it, n->list[0], &iv))) {
            eng_call c = {it->s, "index", 1, &iv, it->err};
            rc = arg_int(&c, 0, &idx);
            value_decref(iv);
            if (rc)
                located(it, n->list[0]);
            else if (idx < -len || idx >= len)
                rc = fail(it, n, ERR_INDEX, "index %lld is out of range for a %s of %lld", (long long)idx, what,
                          (long long)len);
            else if (base.type == VAL_LIST)
                value_incref(*out = base.as.list->v[idx < 0 ? idx + len : idx]);
            else
                *out = value_int(base.as.tup->v[idx < 0 ? idx + len : idx]);
        }
    } else if (base.type == VAL_TENSOR) {
        tensor *t;
        if (interrupted(it, n))
            rc = -1;
        else if (!(rc = eng_index_read(&(eng_index_env)INDEX_ENV(it), n, base.as.t, &t)))
            *out = value_tensor(t);
    } else
        rc = fail(it, n, ERR_TYPE, "cannot index %s", value_type_a(base.type));
    value_decref(base);
    return rc;
}

/* base.member for the value of n->a (consumed) */
static int eval_member(interp *it, ast *n, value base, value *out)
{
    if (base.type != VAL_TENSOR) {
        fail(it, n, ERR_TYPE, "%s has no member '%s'", value_type_a(base.type), n->str);
        value_decref(base);
        return -1;
    }
    tensor *t = base.as.t;
    const char *m = n->str;
    int rc = 0;
    if (!strcmp(m, "shape")) {
        eng_tuple *tup = eng_tuple_new(t->ndim, t->shape);
        if (!tup)
            rc = fail(it, n, ERR_MEMORY, "out of memory");
        else
            *out = (value){VAL_TUPLE, {.tup = tup}};
    } else if (!strcmp(m, "ndim"))
        *out = value_int(t->ndim);
    else if (!strcmp(m, "numel"))
        *out = value_int(tensor_numel(t));
    else if (!strcmp(m, "dtype"))
        *out = value_dtype(t->dtype);
    else if (!strcmp(m, "device"))
        *out = value_device(value_device_index(t->storage->backend->name));
    else if (!strcmp(m, "T")) {
        int dims[TENSOR_MAXDIM];
        for (int i = 0; i < t->ndim; i++)
            dims[i] = t->ndim - 1 - i;
        tensor *tt = tensor_permute(t, dims, t->ndim, it->err);
        if (!tt)
            rc = located(it, n);
        else
            *out = value_tensor(tt);
    } else if (!strcmp(m, "grad")) {
        if (t->grad) {
            tensor_incref(t->grad);
            *out = value_tensor(t->grad);
        } else
            *out = value_void();
    } else
        rc = fail(it, n, ERR_TYPE, "a tensor has no member '%s'", m);
    value_decref(base);
    return rc;
}

/* target op= rhs, where the target is a tensor view: in place */
static int assign_into_tensor(interp *it, ast *n, int op, tensor *dst, value rhs)
{
    if (interrupted(it, n))
        return -1;
    tensor *src = NULL;
    if (rhs.type == VAL_TENSOR) {
        src = rhs.as.t;
        tensor_incref(src);
    } else if (is_num(rhs)) {
        const eng_backend *prev = tensor_place(dst->storage->backend);
        src = tensor_scalar(num(rhs), dst->dtype, it->err);
        tensor_place(prev);
        if (!src)
            return located(it, n);
    } else
        return fail(it, n, ERR_TYPE, "cannot store %s into a tensor", value_type_a(rhs.type));
    int rc;
    if (op == TK_ASSIGN)
        rc = tensor_assign(dst, src, it->err);
    else {
        op_id id = eng_tensor_op(check_compound_op(op));
        rc = id == OP_COUNT ? eng_fail(it->err, ERR_TYPE, "operator '%s' does not apply in place to tensors",
                                      eng_op_name(check_compound_op(op)))
                           : tensor_binary_inplace(id, dst, src, it->err);
    }
    tensor_decref(src);
    return rc ? located(it, n) : 0;
}

static int eval_assign(interp *it, ast *n, value *out)
{
    ast *target = n->a;
    value rhs;
    int64_t r;
    if ((n->op == TK_PLUSEQ || n->op == TK_MINUSEQ) && target->kind == AST_NAME && fast_int(it, n->b, &r)) {
        /* the hot path of counting loops: s += i on an int variable */
        value *slot = target->res == RES_LOCAL ? &it->fp[target->slot]
                    : target->res == RES_GLOBAL && it->s->globals[target->slot].defined
                        ? &it->s->globals[target->slot].v : NULL;
        if (slot && slot->type == VAL_INT) {
            uint64_t a = (uint64_t)slot->as.i;
            slot->as.i = (int64_t)(n->op == TK_PLUSEQ ? a + (uint64_t)r : a - (uint64_t)r);
            *out = *slot;
            return 0;
        }
    }
    RECURSING(it, n);
    if (eval(it, n->b, &rhs))
        return -1;
    int rc = 0;
    if (target->kind == AST_NAME) {
        ast_type type;
        value *slot = name_slot(it, target, &type);
        if (!slot) {
            rc = -1;
        } else if (n->op == TK_ASSIGN) {
            if (!(rc = convert(it, n->b, type, &rhs, target->str))) {
                value_incref(rhs);
                store(slot, rhs);
            }
        } else if (slot->type == VAL_TENSOR && n->op != TK_ATEQ) {
            rc = assign_into_tensor(it, n, n->op, slot->as.t, rhs);
            if (!rc) {
                value_decref(rhs);
                rhs = *slot;
                value_incref(rhs);
            }
        } else if (slot->type == VAL_INT && rhs.type == VAL_INT && (type == TY_INT || type == TY_UNKNOWN) &&
                   (n->op == TK_PLUSEQ || n->op == TK_MINUSEQ)) {
            /* the hot path of counting loops: s += i */
            uint64_t a = (uint64_t)slot->as.i, b = (uint64_t)rhs.as.i;
            slot->as.i = (int64_t)(n->op == TK_PLUSEQ ? a + b : a - b);
            rhs = *slot;
        } else {
            value result;
            if (slot->type == VAL_VOID)
                rc = fail(it, target, ERR_NAME, "'%s' is used before it has a value", target->str);
            else if (!(rc = binop(it, n, check_compound_op(n->op), *slot, rhs, &result))) {
                value_decref(rhs);
                rhs = result;
                if (!(rc = convert(it, n, type, &rhs, target->str))) {
                    value_incref(rhs);
                    store(slot, rhs);
                }
            }
        }
    } else if (target->kind == AST_INDEX) {
        value base;
        if (!(rc = eval(it, target->a, &base))) {
            if (base.type != VAL_TENSOR)
                rc = fail(it, target, ERR_TYPE, "only tensor elements can be assigned, not %s elements",
                          value_type_name(base.type));
            else {
                tensor *view;
                eng_index_env env = INDEX_ENV(it);
                if (!(rc = eng_index_assign(&env, n, base.as.t, rhs, &view)) && view)
                    rc = assign_into_tensor(it, n, n->op, view, rhs);
                tensor_decref(view);
            }
            value_decref(base);
        }
    } else if (target->kind == AST_MEMBER && !strcmp(target->str, "grad")) {
        value base;
        if (!(rc = eval(it, target->a, &base))) {
            if (base.type != VAL_TENSOR)
                rc = fail(it, target, ERR_TYPE, "%s has no member 'grad'", value_type_a(base.type));
            else if (rhs.type == VAL_VOID) {
                if (base.as.t->grad)
                    tensor_decref(base.as.t->grad);
                base.as.t->grad = NULL;
            } else if (rhs.type != VAL_TENSOR || n->op != TK_ASSIGN)
                rc = fail(it, target, ERR_TYPE, "x.grad = takes a tensor");
            else {
                tensor_incref(rhs.as.t);
                if (base.as.t->grad)
                    tensor_decref(base.as.t->grad);
                base.as.t->grad = rhs.as.t;
            }
            value_decref(base);
        }
    } else
        rc = fail(it, target, ERR_TYPE, "cannot assign to this expression");
    if (rc) {
        value_decref(rhs);
        return -1;
    }
    *out = rhs;
    return 0;
}

static int eval_incdec(interp *it, ast *n, value *out)
{
    ast *target = n->a;
    int delta = n->op == TK_INC ? 1 : -1;
    if (target->kind == AST_NAME) {
        ast_type type;
        value *slot = name_slot(it, target, &type);
        if (!slot)
            return -1;
        value old = *slot;
        if (old.type == VAL_INT) {
            slot->as.i = (int64_t)((uint64_t)old.as.i + (uint64_t)(int64_t)delta);
            *out = n->ival ? *slot : old;
            return 0;
        }
        if (old.type == VAL_FLOAT) {
            slot->as.f += delta;
            *out = n->ival ? *slot : old;
            return 0;
        }
        if (old.type == VAL_TENSOR) {
            if (assign_into_tensor(it, n, TK_PLUSEQ, old.as.t, value_int(delta)))
                return -1;
            value_incref(*slot);
            *out = *slot;
            return 0;
        }
        return fail(it, n, ERR_TYPE, "'%s' needs a number or a tensor, got %s", delta > 0 ? "++" : "--",
                    value_type_name(old.type));
    }
    RECURSING(it, n);
    value v;
    if (eval(it, target, &v))
        return -1;
    if (v.type != VAL_TENSOR) {
        value_decref(v);
        return fail(it, n, ERR_TYPE, "'%s' needs a variable or a tensor element", delta > 0 ? "++" : "--");
    }
    int rc = assign_into_tensor(it, n, TK_PLUSEQ, v.as.t, value_int(delta));
    if (rc) {
        value_decref(v);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- calls ---- */

static int call_plain(interp *it, ast *site, eng_func *fn, value *args, int argc, value *out)
{
    eng_session *s = it->s;
    ast *def = fn->def;
    if (s->depth >= ENG_MAX_DEPTH)
        return fail(it, site, ERR_RUNTIME, "recursion too deep: more than %d calls in progress (in %s)",
                    ENG_MAX_DEPTH, fn->name);
    int extra = fn->frame_size - argc;
    if (args + argc + extra > s->stack + ENG_STACK_SLOTS)
        return fail(it, site, ERR_RUNTIME, "stack overflow: too many locals in calls in progress (in %s)", fn->name);
    for (int i = 0; i < argc; i++)
        if (convert(it, site, def->list[i]->type, &args[i], def->list[i]->str))
            return -1;
    for (int i = argc; i < fn->frame_size; i++)
        args[i] = value_void();
    value *saved_fp = it->fp;
    eng_source *saved_src = it->src;
    int saved_used = s->stack_used;
    s->stack_used = (int)(args - s->stack) + fn->frame_size;
    it->fp = args;
    it->src = fn->src;
    s->depth++;
    s->dframes[s->depth] = (eng_dbg_frec){fn, fn->src, args, NULL, NULL, 0}; /* for the debugger */
    int ex = exec(it, def->a);
    s->depth--;
    it->fp = saved_fp;
    it->src = saved_src;
    for (int i = argc; i < fn->frame_size; i++) {
        value_decref(args[i]);
        args[i] = value_void();
    }
    s->stack_used = saved_used;
    if (ex == EX_ERROR) {
        char line[300];
        const eng_builtin *by = site->kind == AST_CALL && site->a && site->a->res == RES_BUILTIN &&
                                        !eng_shadow_func(it->s, site->a->slot)
                                    ? eng_builtin_at(site->a->slot) : NULL;
        if (by) /* called back by a built-in: fit(model, ...) */
            snprintf(line, sizeof line, "  in %s(), called by %s() at %s:%d:%d", fn->name, by->name, it->src->name,
                     site->line + it->src->first_line - 1, site->col);
        else
            snprintf(line, sizeof line, "  in %s(), called from %s:%d:%d", fn->name, it->src->name,
                     site->line + it->src->first_line - 1, site->col);
        trace_add(it->trace, line);
        return -1;
    }
    if (ex == EX_RETURN) {
        *out = it->ret;
        it->ret = value_void();
        if (def->type != TY_VOID && convert(it, site, def->type, out, fn->name)) {
            return -1;
        }
        return 0;
    }
    if (def->type != TY_VOID && def->type != TY_UNKNOWN)
        return fail(it, site, ERR_RUNTIME, "%s() ended without returning a value", fn->name);
    *out = value_void();
    return 0;
}

/* A function paired by set_backward, called with an argument that requires grad: its
 * body runs with grad mode off and its result gets one node (engine/lang/custom_ops.c). */
static int call_function(interp *it, ast *site, eng_func *fn, value *args, int argc, value *out)
{
    if (!eng_custom_wants(it->s, fn, args, argc))
        return call_plain(it, site, fn, args, argc, out);
    void *ctx = NULL;
    for (int i = 0; i < argc; i++)
        if (convert(it, site, fn->def->list[i]->type, &args[i], fn->def->list[i]->str))
            return -1;
    if (eng_custom_begin(it->s, fn, args, argc, &ctx, it->err)) /* grad mode off from here */
        return located(it, site);
    int rc = call_plain(it, site, fn, args, argc, out);
    return eng_custom_finish(ctx, rc, out, it->err) ? (rc ? -1 : located(it, site)) : 0;
}

/* f(args), or x.f(args) with recv the value of x (consumed) when the caller has it */
static int eval_call(interp *it, ast *n, value *recv, value *out)
{
    eng_session *s = it->s;
    ast *callee = n->a;
    int extra = callee->kind == AST_MEMBER;
    int argc = n->nlist + extra;
    if (interrupted(it, n) ||
        (s->stack_used + argc + 1 > ENG_STACK_SLOTS &&
         fail(it, n, ERR_RUNTIME, "stack overflow: expressions nested too deeply"))) {
        if (recv)
            value_decref(*recv);
        return -1;
    }
    value *args = s->stack + s->stack_used;
    int base_used = s->stack_used;
    int done = 0, rc = 0;
    if (extra) {
        value v;
        if (recv)
            v = *recv;
        else if (eval(it, callee->a, &v))
            return -1;
        args[0] = v;
        done = 1;
        s->stack_used++;
    }
    for (int i = 0; i < n->nlist; i++) {
        value v; /* not straight into args[done]: a nested call uses that slot as scratch */
        if (eval(it, n->list[i], &v)) {
            rc = -1;
            goto out;
        }
        args[done++] = v;
        s->stack_used++;
    }
    /* a built-in's name may be shadowed by a user function (or the shadow deleted):
     * resolved here, at each call, so code checked earlier follows (engine/lang/shadow.c) */
    const eng_builtin *b = NULL;
    eng_global *g = NULL;
    if (callee->res == RES_BUILTIN) {
        eng_func *sf = eng_shadow_func(s, callee->slot);
        b = sf ? NULL : eng_builtin_at(callee->slot);
        g = sf ? &s->globals[s->shadow[callee->slot] - 1] : NULL;
    } else if (callee->res == RES_GLOBAL) {
        g = &s->globals[callee->slot];
        if ((!g->defined || g->v.type != VAL_FUNC) && (b = eng_builtin_find(g->name, (int)strlen(g->name))))
            g = NULL;
    }
    if (b && callee->res == RES_GLOBAL && (argc < b->min_args || (b->max_args >= 0 && argc > b->max_args))) {
        rc = fail(it, n, ERR_TYPE, "%s() does not take %d argument%s (%s): the function '%s' that shadowed the "
                  "built-in is gone", b->name, argc, argc == 1 ? "" : "s", b->signature, b->name);
    } else if (b) {
        eng_call c = {s, b->name, argc, args, it->err};
        value result = value_void();
        /* what the built-in makes from nothing goes where its first tensor argument is
         * (zeros_like(x), dropout's mask, ...); with none, on the session's device */
        const eng_backend *place = NULL;
        for (int i = 0; i < argc && !place; i++)
            if (args[i].type == VAL_TENSOR)
                place = args[i].as.t->storage->backend;
        const eng_backend *prev = place ? tensor_place(place) : NULL;
        ast *outer_call = it->builtin_call;
        it->builtin_call = n;
        const char *prev_op = tensor_set_op_context(b->name); /* named in MemoryErrors */
        int bad = b->fn(&c, &result);
        tensor_set_op_context(prev_op);
        it->builtin_call = outer_call;
        if (place)
            tensor_place(prev);
        if (bad)
            rc = located(it, n);
        else
            *out = result;
    } else if (g) {
        if (!g->defined || g->v.type != VAL_FUNC) {
            rc = fail(it, callee, ERR_NAME, "'%s' is not a function any more", g->name);
        } else {
            eng_func *fn = g->v.as.fn;
            fn->refcount++; /* the function may be redefined while it runs */
            if (fn->def->nlist != argc)
                rc = fail(it, n, ERR_TYPE, "%s() takes %d argument%s, %d given", fn->name, fn->def->nlist,
                          eng_s(fn->def->nlist), argc);
            else
                rc = call_function(it, n, fn, args, argc, out);
            eng_func_decref(fn);
        }
    } else
        rc = fail(it, callee, ERR_NAME, "cannot call this");
out:
    for (int i = 0; i < done; i++) {
        value_decref(args[i]);
        args[i] = value_void();
    }
    s->stack_used = base_used;
    return rc;
}

/* a compiler's messages (one per line) as lines of the error's report */
static void trace_details(interp *it, char *details)
{
    for (char *line = details, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char buf[700];
        snprintf(buf, sizeof buf, "  %s", line);
        trace_add(it->trace, buf);
    }
}

/* a __global__ or __device__ definition: kept, and a __global__ one compiled at once,
 * so that a compile error fails this cell at the compiler's line (kernels.h) */
static int exec_kernel_def(interp *it, ast *n)
{
    eng_ktable *t = it->s->kernels;
    char *details = NULL;
    int first = it->src->first_line;
    char *pre = eng_kernel_prelude(it->s, n->str, n->slen); /* the earlier cells' #defines it sees */
    if (!pre)
        return fail(it, n, ERR_MEMORY, "out of memory defining %s", n->name), EX_ERROR;
    int rc = eng_kernel_define(t, n->str, n->slen, pre, n->name, n->ival == 1, it->src->name, n->line + first - 1,
                               it->err);
    free(pre);
    if (rc ||
        (n->ival == 1 &&
         eng_kernel_check_def(t, eng_kernel_find(t, n->name, (int)strlen(n->name)), it->src->name, first,
                              &details, it->err))) {
        if (it->err->line)
            *it->err_src = it->src;
        located(it, n), trace_details(it, details);
        free(details);
        return EX_ERROR;
    }
    return EX_OK;
}

/* k<<<grid, block[, shared]>>>(args): sizes and arguments are evaluated left to right,
 * then engine/lang/kernels.c checks, compiles (once) and launches. A compile error's
 * messages from the compiler follow the error as lines of its report. */
static int eval_launch(interp *it, ast *n, value *out)
{
    eng_session *s = it->s;
    ast *name = n->a;
    if (interrupted(it, n))
        return -1;
    unsigned dims[2][3] = {{1, 1, 1}, {1, 1, 1}};
    int64_t shared = 0;
    for (int i = 0; i < n->nlist; i++) {
        value v;
        if (eval(it, n->list[i], &v))
            return -1;
        int rc = 0;
        if (i < 2)
            rc = eng_kernel_dims(v, name->str, i ? "block" : "grid", dims[i], it->err);
        else if (v.type == VAL_INT)
            shared = v.as.i;
        else
            rc = eng_fail(it->err, ERR_TYPE, "%s<<<...>>>: the shared memory size must be an int (bytes), got %s",
                          name->str, value_type_name(v.type));
        value_decref(v);
        if (rc)
            return located(it, n->list[i]);
    }
    ast *call = n->b;
    int argc = call->nlist;
    value *args = s->stack + s->stack_used;
    if (s->stack_used + argc + 1 > ENG_STACK_SLOTS)
        return fail(it, n, ERR_RUNTIME, "stack overflow: expressions nested too deeply");
    int base_used = s->stack_used, done = 0, rc = 0;
    for (int i = 0; i < argc; i++) {
        value v;
        if (eval(it, call->list[i], &v)) {
            rc = -1;
            goto out;
        }
        args[done++] = v;
        s->stack_used++;
    }
    eng_kernel *k = eng_kernel_find(s->kernels, name->str, name->slen);
    if (!k) {
        rc = fail(it, name, ERR_NAME, "no kernel named '%s' any more (the session was reset?)", name->str);
        goto out;
    }
    char *details = NULL;
    eng_flush(s); /* the cell's printed text goes out before the kernel's printf (fd 1) */
    if (eng_kernel_launch(s->kernels, k, dims[0], dims[1], shared, args, argc, &details, it->err))
        rc = located(it, n), trace_details(it, details);
    free(details);
    *out = value_void();
out:
    for (int i = 0; i < done; i++) {
        value_decref(args[i]);
        args[i] = value_void();
    }
    s->stack_used = base_used;
    return rc;
}

/* a op b for a the value of n->a (consumed), for a link of a chain and for && and ||,
 * which evaluate b only when needed (eval inlines the rest, for the hot path) */
static inline int eval_binary(interp *it, ast *n, value a, value *out)
{
    value b;
    if (n->op == TK_ANDAND || n->op == TK_OROR) {
        int ta, tb;
        int rc = truthy(it, n->a, a, &ta);
        value_decref(a);
        if (rc)
            return -1;
        if ((n->op == TK_ANDAND) != ta) {
            *out = value_bool(ta);
            return 0;
        }
        if (eval(it, n->b, &b))
            return -1;
        rc = truthy(it, n->b, b, &tb);
        value_decref(b);
        if (rc)
            return -1;
        *out = value_bool(tb);
        return 0;
    }
    if (eval(it, n->b, &b)) {
        value_decref(a);
        return -1;
    }
    if (a.type == VAL_INT && b.type == VAL_INT) {
        switch (n->op) { /* the hot path of loops */
        case TK_LT: *out = value_bool(a.as.i < b.as.i); return 0;
        case TK_PLUS: *out = value_int((int64_t)((uint64_t)a.as.i + (uint64_t)b.as.i)); return 0;
        default: return int_binop(it, n, n->op, a.as.i, b.as.i, out);
        }
    }
    int rc = binop(it, n, n->op, a, b, out);
    value_decref(a);
    value_decref(b);
    return rc;
}

/* applies the link n of a chain to acc, the value on its left (consumed) */
static int eval_link(interp *it, ast *n, value acc, value *out)
{
    switch (n->kind) {
    case AST_BINARY: return eval_binary(it, n, acc, out);
    case AST_MEMBER: return eval_member(it, n, acc, out);
    case AST_INDEX: return eval_index(it, n, acc, out);
    default: return eval_call(it, n, &acc, out);
    }
}

/* A long chain (a + b + c..., x.T.T..., z[0][0]..., x.f().g()...: engine/lang/ast.h; the
 * checker marks its links) as a loop: its leftmost operand, then each link on the value
 * so far, so that no link costs stack. Only the operands on the right (b, the indices,
 * the arguments) recurse. */
static int __attribute__((noinline)) eval_chain(interp *it, ast *n, value *out)
{
    ast *few[32], **links = few, *base = n;
    int nlinks = 0, cap = 32, rc = 0;
    for (; ast_chain_left(base); base = ast_chain_left(base)) {
        if (nlinks == cap) {
            ast **more = malloc(sizeof *more * (size_t)cap * 2);
            if (!more) {
                rc = fail(it, n, ERR_MEMORY, "out of memory walking a chain of %d operators", nlinks);
                goto out;
            }
            memcpy(more, links, sizeof *links * (size_t)nlinks);
            if (links != few)
                free(links);
            links = more;
            cap *= 2;
        }
        links[nlinks++] = base;
    }
    value acc;
    if (eval(it, base, &acc)) {
        rc = -1;
        goto out;
    }
    for (int i = nlinks - 1; i >= 0; i--) {
        value next;
        if (eval_link(it, links[i], acc, &next)) {
            rc = -1;
            goto out;
        }
        acc = next;
    }
    *out = acc;
out:
    if (links != few)
        free(links);
    return rc;
}

/* ---- expressions ---- */

static int eval(interp *it, ast *n, value *out)
{
    value a;
    switch (n->kind) { /* leaves first; every other case checks the stack (RECURSING) */
    case AST_INT: *out = value_int(n->ival); return 0;
    case AST_FLOAT: *out = value_float(n->fval); return 0;
    case AST_BOOL: *out = value_bool((int)n->ival); return 0;
    case AST_STRING: {
        eng_string *s = eng_string_new(n->str, n->slen);
        if (!s)
            return fail(it, n, ERR_MEMORY, "out of memory");
        out->type = VAL_STRING;
        out->as.s = s;
        return 0;
    }
    case AST_NAME: {
        value *v;
        if (n->res == RES_LOCAL)
            v = &it->fp[n->slot];
        else if (n->res == RES_GLOBAL) {
            if (!(v = global_slot(it, n)))
                return -1;
        } else if (n->res == RES_BUILTIN) { /* gradcheck(tanh, x) only (check.c): its name */
            eng_string *name = eng_string_new(n->str, n->slen);
            if (!name)
                return fail(it, n, ERR_MEMORY, "out of memory");
            *out = (value){VAL_STRING, {.s = name}};
            return 0;
        } else
            return eval_const(it, n, out);
        if (v->type == VAL_VOID)
            return fail(it, n, ERR_NAME, "'%s' is used before it has a value", n->str);
        value_incref(*v);
        *out = *v;
        return 0;
    }
    case AST_UNARY:
        RECURSING(it, n);
        if (eval(it, n->a, &a))
            return -1;
        switch (a.type) {
        case VAL_INT:
        case VAL_BOOL:
            *out = n->op == TK_MINUS ? value_int((int64_t)(0 - (uint64_t)a.as.i))
                 : n->op == TK_NOT   ? value_bool(!a.as.i)
                 : n->op == TK_TILDE ? value_int(~a.as.i)
                                     : value_int(a.as.i);
            return 0;
        case VAL_FLOAT:
            if (n->op == TK_TILDE)
                return fail(it, n, ERR_TYPE, "operator '~' takes an int, got float");
            *out = n->op == TK_MINUS ? value_float(-a.as.f) : n->op == TK_NOT ? value_bool(a.as.f == 0) : a;
            return 0;
        case VAL_TENSOR: {
            tensor *t = NULL;
            if (n->op == TK_PLUS) {
                *out = a;
                return 0;
            }
            if (n->op == TK_TILDE) {
                value_decref(a);
                return fail(it, n, ERR_TYPE, "operator '~' does not apply to tensors");
            }
            if (!interrupted(it, n))
                t = tensor_unary(n->op == TK_MINUS ? OP_NEG : OP_NOT, a.as.t, 0, 0, it->err);
            value_decref(a);
            if (!t)
                return located(it, n);
            *out = value_tensor(t);
            return 0;
        }
        default:
            value_decref(a);
            return fail(it, n, ERR_TYPE, "a unary operator cannot take %s", value_type_name(a.type));
        }
    case AST_BINARY: {
        RECURSING(it, n);
        if (n->chain)
            return eval_chain(it, n, out);
        if (eval(it, n->a, &a))
            return -1;
        return eval_binary(it, n, a, out);
    }
    case AST_TERNARY: {
        int t;
        RECURSING(it, n);
        if (eval(it, n->a, &a))
            return -1;
        int rc = truthy(it, n->a, a, &t);
        value_decref(a);
        if (rc)
            return -1;
        return eval(it, t ? n->b : n->c, out);
    }
    case AST_ASSIGN: return eval_assign(it, n, out);
    case AST_INCDEC: return eval_incdec(it, n, out);
    case AST_CALL:
        RECURSING(it, n);
        if (n->chain)
            return eval_chain(it, n, out);
        return eval_call(it, n, NULL, out);
    case AST_INDEX:
    case AST_MEMBER:
        RECURSING(it, n);
        if (n->chain)
            return eval_chain(it, n, out);
        if (eval(it, n->a, &a))
            return -1;
        return n->kind == AST_INDEX ? eval_index(it, n, a, out) : eval_member(it, n, a, out);
    case AST_LIST:
        RECURSING(it, n);
        return eval_list(it, n, out);
    case AST_LAUNCH:
        RECURSING(it, n);
        return eval_launch(it, n, out);
    case AST_CAST:
        RECURSING(it, n);
        if (eval(it, n->a, out))
            return -1;
        return convert(it, n, n->type, out, "cast");
    default: return fail(it, n, ERR_RUNTIME, "this expression cannot be evaluated here");
    }
}

/* ---- statements ---- */

static void clear_slots(interp *it, int from, int to)
{
    for (int i = from; i < to; i++) {
        value_decref(it->fp[i]);
        it->fp[i] = value_void();
    }
}

static int default_value(ast_type t, value *v)
{
    switch (t) {
    case TY_INT: *v = value_int(0); return 0;
    case TY_FLOAT: *v = value_float(0); return 0;
    case TY_BOOL: *v = value_bool(0); return 0;
    default: *v = value_void(); return 0;
    }
}

static int exec_decl(interp *it, ast *n)
{
    for (int i = 0; i < n->nlist; i++) {
        ast *var = n->list[i];
        value v;
        if (var->a) {
            if (eval(it, var->a, &v))
                return EX_ERROR;
            if (convert(it, var->a, var->type, &v, var->str)) {
                value_decref(v);
                return EX_ERROR;
            }
        } else
            default_value(var->type, &v);
        if (var->res == RES_LOCAL)
            store(&it->fp[var->slot], v);
        else {
            eng_global *g = &it->s->globals[var->slot];
            store(&g->v, v);
            g->type = var->type == TY_UNKNOWN ? value_static_type(v) : var->type;
            g->defined = 1;
        }
    }
    return EX_OK;
}

static int exec_func_def(interp *it, ast *n)
{
    eng_func *fn = calloc(1, sizeof *fn);
    char *name = strndup(n->str, (size_t)n->slen);
    if (!fn || !name) {
        free(fn);
        free(name);
        return fail(it, n, ERR_MEMORY, "out of memory defining %s()", n->str), EX_ERROR;
    }
    fn->refcount = 1;
    fn->src = it->src;
    it->src->refcount++;
    fn->def = n;
    fn->frame_size = (int)n->ival;
    fn->name = name;
    eng_global *g = &it->s->globals[n->slot];
    store(&g->v, (value){VAL_FUNC, {.fn = fn}});
    g->type = TY_FUNC;
    g->defined = 1;
    return EX_OK;
}

static int exec_loop_body(interp *it, ast *body, int *stop)
{
    int ex = exec(it, body);
    *stop = 0;
    if (ex == EX_BREAK) {
        *stop = 1;
        return EX_OK;
    }
    if (ex == EX_RETURN || ex == EX_ERROR) {
        *stop = 1;
        return ex;
    }
    return EX_OK;
}

/* an operand that is an int without evaluating it: a literal, or a variable holding an
 * int; 0 when it is anything else (then the generic path runs) */
static inline int fast_int(interp *it, ast *n, int64_t *out)
{
    const value *v;
    if (n->kind == AST_INT) {
        *out = n->ival;
        return 1;
    }
    if (n->kind != AST_NAME)
        return 0;
    if (n->res == RES_LOCAL)
        v = &it->fp[n->slot];
    else if (n->res == RES_GLOBAL && it->s->globals[n->slot].defined)
        v = &it->s->globals[n->slot].v;
    else
        return 0;
    if (v->type != VAL_INT)
        return 0;
    *out = v->as.i;
    return 1;
}

static int cond_true(interp *it, ast *c, int *t)
{
    value v;
    int64_t a, b;
    if (c->kind == AST_BINARY && fast_int(it, c->a, &a) && fast_int(it, c->b, &b)) {
        switch (c->op) { /* loop conditions: i < n */
        case TK_LT: *t = a < b; return 0;
        case TK_LE: *t = a <= b; return 0;
        case TK_GT: *t = a > b; return 0;
        case TK_GE: *t = a >= b; return 0;
        case TK_NE: *t = a != b; return 0;
        case TK_EQ: *t = a == b; return 0;
        default: break;
        }
    }
    if (eval(it, c, &v))
        return -1;
    if (v.type == VAL_BOOL || v.type == VAL_INT) {
        *t = v.as.i != 0;
        return 0;
    }
    int rc = truthy(it, c, v, t);
    value_decref(v);
    return rc;
}

/* the debugger's statement hook (engine/lang/debug.h), out of exec's hot path */
static int __attribute__((noinline, cold)) debug_hook(interp *it, ast *n)
{
    return n->kind != AST_BLOCK && eng_dbg_statement(it->s, it->src, n, it->err) ? located(it, n) : 0;
}

static int exec(interp *it, ast *n)
{
    value v;
    int t, stop, ex;
    if (eng_stack_exhausted(it->stack_limit))
        return too_deep(it, n), EX_ERROR;
    if (__builtin_expect(__atomic_load_n(&it->s->dbg_active, __ATOMIC_RELAXED), 0) && debug_hook(it, n))
        return EX_ERROR;
    switch (n->kind) {
    case AST_EXPR:
        if (eval(it, n->a, &v))
            return EX_ERROR;
        value_decref(v);
        return EX_OK;
    case AST_DECL: return exec_decl(it, n);
    case AST_BLOCK:
        ex = EX_OK;
        for (int i = 0; i < n->nlist && ex == EX_OK; i++)
            ex = exec(it, n->list[i]);
        clear_slots(it, n->slot, (int)n->ival);
        return ex;
    case AST_IF:
        if (cond_true(it, n->a, &t))
            return EX_ERROR;
        if (t)
            return exec(it, n->b);
        return n->c ? exec(it, n->c) : EX_OK;
    case AST_WHILE:
        for (;;) {
            if (interrupted(it, n) || cond_true(it, n->a, &t))
                return EX_ERROR;
            if (!t)
                return EX_OK;
            ex = exec_loop_body(it, n->b, &stop);
            if (stop)
                return ex;
        }
    case AST_DO:
        for (;;) {
            ex = exec_loop_body(it, n->b, &stop);
            if (stop)
                return ex;
            if (interrupted(it, n) || cond_true(it, n->a, &t))
                return EX_ERROR;
            if (!t)
                return EX_OK;
        }
    case AST_FOR:
        ex = EX_OK;
        if (n->a && (n->a->kind == AST_DECL ? exec_decl(it, n->a) : exec(it, n->a)) != EX_OK)
            ex = EX_ERROR;
        while (ex == EX_OK) {
            if (interrupted(it, n)) {
                ex = EX_ERROR;
                break;
            }
            if (n->b) {
                if (cond_true(it, n->b, &t)) {
                    ex = EX_ERROR;
                    break;
                }
                if (!t)
                    break;
            }
            ex = exec_loop_body(it, n->d, &stop);
            if (stop)
                break;
            if (n->c) {
                if (eval(it, n->c, &v)) {
                    ex = EX_ERROR;
                    break;
                }
                value_decref(v);
            }
        }
        clear_slots(it, n->slot, (int)n->ival);
        return ex;
    case AST_BREAK: return EX_BREAK;
    case AST_CONTINUE: return EX_CONTINUE;
    case AST_RETURN:
        if (n->a) {
            if (eval(it, n->a, &v))
                return EX_ERROR;
            store(&it->ret, v);
        }
        return EX_RETURN;
    case AST_FUNC: return exec_func_def(it, n);
    case AST_KERNEL: return exec_kernel_def(it, n);
    case AST_MAGIC: return eng_magic(it->s, n->str, it->src, it->err) ? (located(it, n), EX_ERROR) : EX_OK;
    case AST_EMPTY: return EX_OK;
    default: return fail(it, n, ERR_RUNTIME, "this statement cannot run here"), EX_ERROR;
    }
}

int interp_call(eng_session *s, eng_func *fn, int argc, value *argv, value *out, eng_error *err)
{
    eng_source *err_src = NULL;
    eng_trace trace = {0};
    interp *outer = s->running;
    interp it = {s, s->stack, err, fn->src, &err_src, &trace, value_void(), NULL, eng_stack_limit()};
    ast site = {.kind = AST_CALL, .line = fn->def->line, .col = fn->def->col};
    ast *call_site = &site;
    if (outer && outer->builtin_call) {
        /* called back by a built-in (fit, lr_find): an error keeps its own cell, line and
         * column and joins the running cell's call chain at the built-in's call */
        it.src = outer->src;
        it.err_src = outer->err_src;
        it.trace = outer->trace;
        call_site = outer->builtin_call;
    }
    if (argc != fn->def->nlist)
        return eng_fail(err, ERR_TYPE, "%s() takes %d argument%s, %d given", fn->name, fn->def->nlist,
                          eng_s(fn->def->nlist), argc);
    value *args = s->stack + s->stack_used;
    if (s->stack_used + fn->frame_size > ENG_STACK_SLOTS)
        return eng_fail(err, ERR_RUNTIME, "stack overflow calling %s()", fn->name);
    for (int i = 0; i < argc; i++) {
        value_incref(argv[i]);
        args[i] = argv[i];
    }
    s->running = &it;
    int rc = call_function(&it, call_site, fn, args, argc, out);
    s->running = outer;
    for (int i = 0; i < argc; i++) {
        value_decref(args[i]);
        args[i] = value_void();
    }
    value_decref(it.ret);
    eng_trace_free(&trace);
    return rc;
}

int interp_trace_mark(eng_session *s)
{
    return s->running && s->running->trace ? s->running->trace->n : 0;
}

void interp_trace_reset(eng_session *s, int mark)
{
    eng_trace *t = s->running ? s->running->trace : NULL;
    while (t && t->n > mark)
        free(t->lines[--t->n]);
}

int interp_run_cell(eng_session *s, ast_cell *cell, eng_source *src, int frame_size, eng_error *err,
                    eng_source **err_src, eng_trace *trace)
{
    eng_dbg_scope *sc = s->eval_scope; /* the debugger evaluates on a stopped frame */
    value *fp = sc ? sc->fp : s->stack + s->stack_used;
    int first = sc ? sc->base : 0, saved_used = s->stack_used;
    if (fp - s->stack + frame_size > ENG_STACK_SLOTS)
        return eng_fail(err, ERR_RUNTIME, "stack overflow: the cell needs %d local slots", frame_size);
    for (int i = first; i < frame_size; i++)
        fp[i] = value_void();
    if (fp - s->stack + frame_size > s->stack_used)
        s->stack_used = (int)(fp - s->stack) + frame_size;
    interp it = {s, fp, err, src, err_src, trace, value_void(), NULL, eng_stack_limit()};
    interp *outer = s->running;
    s->running = &it;
    eng_dbg_frec outer_rec = s->dframes[s->depth]; /* a cell run by a magic inside a cell */
    if (!sc)
        s->dframes[s->depth] = (eng_dbg_frec){NULL, src, fp, NULL, cell->stmts, cell->nstmts};
    int rc = 0;
    for (int i = 0; i < cell->nstmts && !rc; i++) {
        ast *n = cell->stmts[i];
        if (n->kind == AST_EXPR && n->ival == 1 && i == cell->nstmts - 1) {
            value v;
            if ((s->dbg_active && eng_dbg_statement(s, src, n, err)) || eval(&it, n->a, &v))
                rc = located(&it, n);
            else if (sc && sc->keep_result) {
                sc->result = v;
                sc->has_result = 1;
            } else {
                if (v.type != VAL_VOID && eng_show(s, v, 1, NULL, 0, err))
                    rc = located(&it, n);
                value_decref(v);
            }
        } else if (exec(&it, n) != EX_OK)
            rc = -1;
    }
    s->running = outer;
    if (!sc)
        s->dframes[s->depth] = outer_rec;
    value_decref(it.ret);
    clear_slots(&it, first, frame_size);
    s->stack_used = saved_used;
    return rc;
}
