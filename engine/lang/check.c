/* check.c — the check pass: resolves every name of a cell to a local slot, a global
 * index, a built-in or a constant, infers the static type of each expression, and
 * reports every error of the cell (undeclared names, wrong argument counts, type
 * errors, break outside a loop...) before anything of it runs.
 *
 * Static types are for errors only: the interpreter checks dynamic types itself, since
 * a later cell may rebind a global to a value of another type.
 *
 * Chains (a + b + c, x.T.T, z[0][0], x.f().g()) are walked with a loop, and links with
 * AST_CHAIN_LOOP or more below them are marked (ast.chain) for the interpreter to loop
 * too; every other level checks the C stack left (engine/base/stack.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lang/interp.h"
#include "engine/lang/kernels.h"
#include "engine/base/stack.h"
#include "engine/lang/debug.h"

#define MAX_LOCALS 4096
#define MAX_NEW 4096
#define MAX_CELL_KERNELS 256

typedef struct local {
    const char *name; /* arena memory */
    int len;
    int slot;         /* frame slot */
    ast_type type;    /* declared (or inferred for auto) */
    int depth;        /* block depth it was declared at */
} local;

typedef struct checker {
    eng_session *s;
    eng_error *errs;     /* the caller's array */
    int max_errs, nerrs;
    local locals[MAX_LOCALS];
    int nlocals;
    int depth;           /* block depth; 0 is the cell's top level */
    int next_slot;       /* next free slot of the current frame */
    int max_slot;        /* high-water mark: the frame's size */
    int loops;           /* enclosing loops, for break/continue */
    ast *func;           /* function being checked, or NULL at top level */
    /* top-level names new to the session (indices s->nglobals + i) */
    const char *new_names[MAX_NEW];
    int nnew;
    /* per global index touched by this cell: defined here yet, type, function node */
    int cap;             /* size of the three arrays below */
    char *defined;       /* 1: declared in this cell before the current point */
    ast_type *types;     /* its type from this cell's declaration */
    ast **funcs;         /* AST_FUNC defined in this cell for that global */
    /* __global__ / __device__ definitions of this cell so far (name points into the
     * arena; params malloc'ed, freed at the end of the check) */
    eng_kernel kernels[MAX_CELL_KERNELS];
    int nkernels;
    uintptr_t stack_limit; /* the recursion stops with an error below it (engine/base/stack.h) */
    int too_deep;        /* it did: check nothing more */
} checker;

const char *ast_type_name(ast_type t)
{
    static const char *const names[] = {"unknown", "void", "bool", "int", "float", "string", "tensor",
                                  "auto", "tuple", "dtype", "device", "function"};
    return t <= TY_FUNC ? names[t] : "?";
}

static void error_at(checker *ck, ast *n, eng_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_at(checker *ck, ast *n, eng_errkind kind, const char *fmt, ...)
{
    if (ck->nerrs++ >= ck->max_errs)
        return;
    eng_error *e = &ck->errs[ck->nerrs - 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->kind = kind;
    e->line = n ? n->line : 0;
    e->col = n ? n->col : 0;
}

/* ---- globals known to this cell ---- */

static int grow_tables(checker *ck, int need)
{
    if (need <= ck->cap)
        return 0;
    int cap = ck->cap ? ck->cap : 64;
    while (cap < need)
        cap *= 2;
    char *d = realloc(ck->defined, (size_t)cap);
    if (!d)
        return -1;
    ck->defined = d;
    ast_type *t = realloc(ck->types, sizeof *t * (size_t)cap);
    if (!t)
        return -1;
    ck->types = t;
    ast **f = realloc(ck->funcs, sizeof *f * (size_t)cap);
    if (!f)
        return -1;
    ck->funcs = f;
    memset(ck->defined + ck->cap, 0, (size_t)(cap - ck->cap));
    memset(ck->types + ck->cap, 0, sizeof *t * (size_t)(cap - ck->cap));
    memset(ck->funcs + ck->cap, 0, sizeof *f * (size_t)(cap - ck->cap));
    ck->cap = cap;
    return 0;
}

/* index of a global name, existing or new in this cell; create: give it one */
static int global_index(checker *ck, const char *name, int len, int create)
{
    int g = eng_global_find(ck->s, name, len);
    if (g < 0) {
        for (int i = 0; i < ck->nnew; i++)
            if ((int)strlen(ck->new_names[i]) == len && !memcmp(ck->new_names[i], name, (size_t)len))
                return ck->s->nglobals + i;
        if (!create || ck->nnew == MAX_NEW)
            return -1;
        ck->new_names[ck->nnew++] = name;
        g = ck->s->nglobals + ck->nnew - 1;
    }
    if (grow_tables(ck, g + 1))
        return -1;
    return g;
}

/* a global visible here: declared in this cell already, or defined in the session */
static int global_visible(checker *ck, int g, ast_type *type, ast **fn)
{
    if (g < ck->cap && ck->defined[g]) {
        *type = ck->types[g];
        *fn = ck->funcs[g];
        return 1;
    }
    if (g < ck->s->nglobals && ck->s->globals[g].defined) {
        eng_global *gl = &ck->s->globals[g];
        *type = gl->type;
        *fn = gl->v.type == VAL_FUNC ? gl->v.as.fn->def : NULL;
        return 1;
    }
    return 0;
}

/* ---- locals ---- */

static local *find_local(checker *ck, const char *name, int len)
{
    for (int i = ck->nlocals - 1; i >= 0; i--)
        if (ck->locals[i].len == len && !memcmp(ck->locals[i].name, name, (size_t)len))
            return &ck->locals[i];
    return NULL;
}

static int declare_local(checker *ck, ast *n, const char *name, int len, ast_type type)
{
    for (int i = ck->nlocals - 1; i >= 0 && ck->locals[i].depth == ck->depth; i--)
        if (ck->locals[i].len == len && !memcmp(ck->locals[i].name, name, (size_t)len)) {
            error_at(ck, n, ERR_NAME, "'%.*s' is already declared in this block", len, name);
            return ck->locals[i].slot;
        }
    if (ck->nlocals == MAX_LOCALS) {
        error_at(ck, n, ERR_RUNTIME, "too many local variables (at most %d)", MAX_LOCALS);
        return 0;
    }
    local *l = &ck->locals[ck->nlocals++];
    l->name = name;
    l->len = len;
    l->slot = ck->next_slot++;
    l->type = type;
    l->depth = ck->depth;
    if (ck->next_slot > ck->max_slot)
        ck->max_slot = ck->next_slot;
    return l->slot;
}

static void pop_scope(checker *ck)
{
    while (ck->nlocals > 0 && ck->locals[ck->nlocals - 1].depth == ck->depth)
        ck->nlocals--;
    ck->depth--;
}

/* ---- types ---- */

static int is_scalar(ast_type t) { return t == TY_INT || t == TY_FLOAT || t == TY_BOOL; }
static int is_numeric(ast_type t) { return is_scalar(t) || t == TY_TENSOR || t == TY_UNKNOWN; }

/* can a value of static type from be stored where to is declared? */
static int assignable(ast_type to, ast_type from)
{
    if (to == TY_UNKNOWN || to == TY_AUTO || from == TY_UNKNOWN)
        return 1;
    switch (to) {
    case TY_INT:
    case TY_FLOAT:
    case TY_BOOL: return is_scalar(from) || from == TY_TENSOR;
    case TY_TENSOR: return is_scalar(from) || from == TY_TENSOR;
    default: return to == from;
    }
}

static ast_type ret_type(char r)
{
    switch (r) {
    case 'T': return TY_TENSOR;
    case 'I': return TY_INT;
    case 'F': return TY_FLOAT;
    case 'B': return TY_BOOL;
    case 'S': return TY_STRING;
    case 'V': return TY_VOID;
    default: return TY_UNKNOWN;
    }
}

/* names the language defines itself */
static const struct {
    const char *name;
    ast_type type;
} constants[] = {
    {"bool", TY_DTYPE}, {"f32", TY_DTYPE}, {"f64", TY_DTYPE}, {"f16", TY_DTYPE}, {"bf16", TY_DTYPE},
    {"i32", TY_DTYPE}, {"i64", TY_DTYPE}, {"u8", TY_DTYPE},  {"cpu", TY_DEVICE},
    {"cuda", TY_DEVICE}, {"sim", TY_DEVICE}, {"stdout", TY_INT}, {"stderr", TY_INT}, {"M_PI", TY_FLOAT},
    {"INFINITY", TY_FLOAT}, {"NAN", TY_FLOAT},
};

const char *check_constant_name(int i)
{
    return i >= 0 && i < (int)(sizeof constants / sizeof constants[0]) ? constants[i].name : NULL;
}

int check_constant_index(const char *name, int len)
{
    for (int i = 0; i < (int)(sizeof constants / sizeof constants[0]); i++)
        if ((int)strlen(constants[i].name) == len && !memcmp(constants[i].name, name, (size_t)len))
            return i;
    return -1;
}

static ast_type check_expr(checker *ck, ast *n);
static ast_type check_chain(checker *ck, ast *n);
static void check_stmt(checker *ck, ast *n);
static ast_type check_launch(checker *ck, ast *n);

static ast_type check_name(checker *ck, ast *n, int in_call)
{
    local *l = find_local(ck, n->str, n->slen);
    if (l) {
        n->res = RES_LOCAL;
        n->slot = l->slot;
        return n->type = l->type;
    }
    int g = global_index(ck, n->str, n->slen, 0);
    ast_type t;
    ast *fn;
    if (g >= 0 && global_visible(ck, g, &t, &fn)) {
        n->res = RES_GLOBAL;
        n->slot = g;
        return n->type = t;
    }
    const eng_builtin *b = eng_builtin_find(n->str, n->slen);
    int k = check_constant_index(n->str, n->slen);
    if (b && (in_call || k < 0)) { /* `cpu` uncalled is the device; x.cpu() the built-in */
        n->res = RES_BUILTIN;
        n->slot = eng_builtin_index(b);
        if (!in_call)
            error_at(ck, n, ERR_TYPE, "'%s' is a built-in function: call it, as in %s", b->name, b->signature);
        return n->type = TY_FUNC;
    }
    if (k >= 0) {
        n->res = RES_CONST;
        n->slot = k;
        return n->type = constants[k].type;
    }
    error_at(ck, n, ERR_NAME, "undeclared name '%s'", n->str);
    return n->type = TY_UNKNOWN;
}

static void check_args(checker *ck, ast *call, int first)
{
    for (int i = first; i < call->nlist; i++) {
        ast *arg = call->list[i];
        ast_type t = arg->kind == AST_LIST ? (check_expr(ck, arg), TY_TENSOR) : check_expr(ck, arg);
        if (t == TY_VOID)
            error_at(ck, arg, ERR_TYPE, "argument %d has no value (void)", i + 1);
    }
}

/* f(args), or x.f(args) which is f(x, args) with bt the type of x (checked already) */
static ast_type check_call(checker *ck, ast *n, ast_type bt)
{
    ast *callee = n->a;
    int extra = 0;
    const char *name;
    int len;
    if (callee->kind == AST_MEMBER) {
        if (bt == TY_VOID)
            error_at(ck, callee->a, ERR_TYPE, "a void value has no methods");
        extra = 1;
        name = callee->str;
        len = callee->slen;
    } else if (callee->kind == AST_NAME) {
        name = callee->str;
        len = callee->slen;
    } else {
        error_at(ck, callee, ERR_TYPE, "only named functions can be called");
        check_args(ck, n, 0);
        return TY_UNKNOWN;
    }
    /* gradcheck(tanh, x): a built-in's name as gradcheck's function (it gets the name) */
    int first = 0;
    if (!extra && len == 9 && !memcmp(name, "gradcheck", 9) && n->nlist > 0 && n->list[0]->kind == AST_NAME) {
        check_name(ck, n->list[0], 1);
        first = 1;
    }
    check_args(ck, n, first);
    int argc = n->nlist + extra;
    /* user functions first, so a user may shadow a built-in */
    local *l = extra ? NULL : find_local(ck, name, len);
    if (l) {
        error_at(ck, callee, ERR_TYPE, "'%.*s' is %s %s variable, not a function", len, name,
                 eng_a(ast_type_name(l->type)), ast_type_name(l->type));
        return TY_UNKNOWN;
    }
    int g = global_index(ck, name, len, 0);
    ast_type gt;
    ast *fn = NULL;
    if (g >= 0 && global_visible(ck, g, &gt, &fn)) {
        if (gt != TY_FUNC || !fn) {
            if (!extra) {
                error_at(ck, callee, ERR_TYPE, "'%.*s' is %s %s variable, not a function", len, name,
                         eng_a(ast_type_name(gt)), ast_type_name(gt));
                return TY_UNKNOWN;
            }
        } else {
            callee->res = RES_GLOBAL;
            callee->slot = g;
            if (argc != fn->nlist)
                error_at(ck, n, ERR_TYPE, "%.*s() takes %d argument%s, %d given", len, name, fn->nlist,
                         fn->nlist == 1 ? "" : "s", argc);
            else
                for (int i = extra; i < argc; i++) {
                    ast *arg = n->list[i - extra];
                    ast_type want = fn->list[i]->type;
                    ast_type got = arg->kind == AST_LIST ? TY_TENSOR : arg->type;
                    if (!assignable(want, got))
                        error_at(ck, arg, ERR_TYPE, "%.*s(): argument %d ('%s') must be %s, got %s", len, name,
                                 i + 1, fn->list[i]->str, ast_type_name(want), ast_type_name(got));
                }
            return fn->type;
        }
    }
    const eng_builtin *b = eng_builtin_find(name, len);
    if (!b) {
        if (extra)
            error_at(ck, callee, ERR_NAME, "no function or method named '%.*s'", len, name);
        else
            error_at(ck, callee, ERR_NAME, "undeclared function '%.*s'", len, name);
        return TY_UNKNOWN;
    }
    callee->res = RES_BUILTIN;
    callee->slot = eng_builtin_index(b);
    if (argc < b->min_args || (b->max_args >= 0 && argc > b->max_args)) {
        if (b->min_args == b->max_args)
            error_at(ck, n, ERR_TYPE, "%s() takes %d argument%s, %d given (%s)", b->name, b->min_args,
                     b->min_args == 1 ? "" : "s", argc, b->signature);
        else if (b->max_args < 0)
            error_at(ck, n, ERR_TYPE, "%s() takes at least %d argument%s, %d given (%s)", b->name,
                     b->min_args, b->min_args == 1 ? "" : "s", argc, b->signature);
        else
            error_at(ck, n, ERR_TYPE, "%s() takes %d to %d arguments, %d given (%s)", b->name, b->min_args,
                     b->max_args, argc, b->signature);
    }
    return ret_type(b->ret);
}

static const char *op_text(int op)
{
    switch (op) {
    case TK_PLUS: case TK_PLUSEQ: return "+";
    case TK_MINUS: case TK_MINUSEQ: return "-";
    case TK_STAR: case TK_STAREQ: return "*";
    case TK_SLASH: case TK_SLASHEQ: return "/";
    case TK_PERCENT: case TK_PERCENTEQ: return "%";
    case TK_AT: case TK_ATEQ: return "@";
    case TK_AMP: case TK_AMPEQ: return "&";
    case TK_PIPE: case TK_PIPEEQ: return "|";
    case TK_CARET: case TK_CARETEQ: return "^";
    case TK_SHL: case TK_SHLEQ: return "<<";
    case TK_SHR: case TK_SHREQ: return ">>";
    case TK_ANDAND: return "&&";
    case TK_OROR: return "||";
    case TK_EQ: return "==";
    case TK_NE: return "!=";
    case TK_LT: return "<";
    case TK_LE: return "<=";
    case TK_GT: return ">";
    case TK_GE: return ">=";
    case TK_NOT: return "!";
    case TK_TILDE: return "~";
    default: return "?";
    }
}

/* the compound operator's binary operator: += gives + */
int check_compound_op(int op)
{
    switch (op) {
    case TK_PLUSEQ: return TK_PLUS;
    case TK_MINUSEQ: return TK_MINUS;
    case TK_STAREQ: return TK_STAR;
    case TK_SLASHEQ: return TK_SLASH;
    case TK_PERCENTEQ: return TK_PERCENT;
    case TK_ATEQ: return TK_AT;
    case TK_AMPEQ: return TK_AMP;
    case TK_PIPEEQ: return TK_PIPE;
    case TK_CARETEQ: return TK_CARET;
    case TK_SHLEQ: return TK_SHL;
    case TK_SHREQ: return TK_SHR;
    default: return 0;
    }
}

static ast_type binary_type(checker *ck, ast *n, int op, ast_type l, ast_type r)
{
    if (l == TY_VOID || r == TY_VOID) {
        error_at(ck, n, ERR_TYPE, "operator '%s' cannot take a void value", op_text(op));
        return TY_UNKNOWN;
    }
    int cmp = op == TK_EQ || op == TK_NE || op == TK_LT || op == TK_LE || op == TK_GT || op == TK_GE;
    if (l == TY_STRING || r == TY_STRING) {
        if ((l == TY_STRING || l == TY_UNKNOWN) && (r == TY_STRING || r == TY_UNKNOWN)) {
            if (op == TK_PLUS)
                return TY_STRING;
            if (cmp)
                return TY_BOOL;
        }
        error_at(ck, n, ERR_TYPE, "operator '%s' cannot take %s and %s", op_text(op), ast_type_name(l),
                 ast_type_name(r));
        return TY_UNKNOWN;
    }
    if (l == TY_DTYPE || l == TY_DEVICE || r == TY_DTYPE || r == TY_DEVICE || l == TY_TUPLE || r == TY_TUPLE ||
        l == TY_FUNC || r == TY_FUNC) {
        if ((op == TK_EQ || op == TK_NE) && (l == r || l == TY_UNKNOWN || r == TY_UNKNOWN))
            return TY_BOOL;
        error_at(ck, n, ERR_TYPE, "operator '%s' cannot take %s and %s", op_text(op), ast_type_name(l),
                 ast_type_name(r));
        return TY_UNKNOWN;
    }
    int tensors = l == TY_TENSOR || r == TY_TENSOR;
    if (op == TK_AT) {
        if ((l != TY_TENSOR && l != TY_UNKNOWN) || (r != TY_TENSOR && r != TY_UNKNOWN))
            error_at(ck, n, ERR_TYPE, "'@' multiplies tensors, got %s and %s", ast_type_name(l), ast_type_name(r));
        return TY_TENSOR;
    }
    if (op == TK_ANDAND || op == TK_OROR) {
        if (tensors)
            error_at(ck, n, ERR_TYPE, "'%s' takes scalars; for tensors use logical_and / logical_or",
                     op_text(op));
        return TY_BOOL;
    }
    if (op == TK_AMP || op == TK_PIPE || op == TK_CARET || op == TK_SHL || op == TK_SHR) {
        if (l == TY_FLOAT || r == TY_FLOAT || tensors)
            error_at(ck, n, ERR_TYPE, "operator '%s' takes ints, got %s and %s", op_text(op), ast_type_name(l),
                     ast_type_name(r));
        return TY_INT;
    }
    if (tensors)
        return TY_TENSOR;
    if (cmp)
        return TY_BOOL;
    if (l == TY_UNKNOWN || r == TY_UNKNOWN)
        return TY_UNKNOWN;
    return l == TY_FLOAT || r == TY_FLOAT ? TY_FLOAT : TY_INT;
}

static void check_index_items(checker *ck, ast *n)
{
    for (int i = 0; i < n->nlist; i++) {
        ast *it = n->list[i];
        if (it->kind == AST_SLICE) {
            ast *parts[3] = {it->a, it->b, it->c};
            for (int k = 0; k < 3; k++)
                if (parts[k]) {
                    ast_type t = check_expr(ck, parts[k]);
                    if (t != TY_INT && t != TY_BOOL && t != TY_UNKNOWN && t != TY_TENSOR)
                        error_at(ck, parts[k], ERR_TYPE, "slice bounds must be ints, got %s", ast_type_name(t));
                }
        } else {
            ast_type t = check_expr(ck, it);
            if (t != TY_INT && t != TY_BOOL && t != TY_UNKNOWN && t != TY_TENSOR)
                error_at(ck, it, ERR_TYPE, "an index must be an int or an integer tensor, got %s", ast_type_name(t));
        }
    }
}

static void check_list(checker *ck, ast *n)
{
    for (int i = 0; i < n->nlist; i++) {
        ast *it = n->list[i];
        if (it->kind == AST_LIST) {
            check_list(ck, it);
            continue;
        }
        ast_type t = check_expr(ck, it);
        if (!is_scalar(t) && t != TY_UNKNOWN && t != TY_TENSOR)
            error_at(ck, it, ERR_TYPE, "a tensor literal holds numbers, got %s", ast_type_name(t));
    }
}

static const char *const tensor_members[] = {"shape", "ndim", "numel", "dtype", "device", "T", "grad"};
static const ast_type tensor_member_types[] = {TY_TUPLE, TY_INT, TY_INT, TY_DTYPE, TY_DEVICE, TY_TENSOR,
                                               TY_TENSOR};

static void check_target(checker *ck, ast *t)
{
    if (t->kind == AST_NAME && (t->res == RES_BUILTIN || t->res == RES_CONST))
        error_at(ck, t, ERR_TYPE, "cannot assign to '%s': it is a built-in name", t->str);
    else if (t->kind == AST_NAME && t->type == TY_FUNC)
        error_at(ck, t, ERR_TYPE, "cannot assign to '%s': it is a function", t->str);
    else if (t->kind == AST_MEMBER && strcmp(t->str, "grad") != 0)
        error_at(ck, t, ERR_TYPE, "cannot assign to member '%s'", t->str);
    else if (t->kind == AST_INDEX && t->a->type != TY_TENSOR && t->a->type != TY_UNKNOWN)
        error_at(ck, t, ERR_TYPE, "only tensor elements can be assigned, not %s elements", ast_type_name(t->a->type));
}

/* the C stack is nearly used up: one error for the cell, then nothing more is checked */
static int out_of_stack(checker *ck, ast *n)
{
    if (ck->too_deep)
        return 1;
    if (!eng_stack_exhausted(ck->stack_limit))
        return 0;
    ck->too_deep = 1;
    error_at(ck, n, ERR_RUNTIME,
             "expression nested too deeply: checking it used all %.1f MB of the stack; split it into "
             "several statements", (double)eng_stack_usable() / (1 << 20));
    return 1;
}

/* the type of the link n of a chain (engine/lang/ast.h), l the type on its left */
static ast_type check_link(checker *ck, ast *n, ast_type l)
{
    switch (n->kind) {
    case AST_BINARY: return n->type = binary_type(ck, n, n->op, l, check_expr(ck, n->b));
    case AST_INDEX:
        check_index_items(ck, n);
        if (l == TY_TUPLE)
            return n->type = TY_INT;
        if (l != TY_TENSOR && l != TY_UNKNOWN) {
            error_at(ck, n, ERR_TYPE, "cannot index a%s %s", l == TY_INT ? "n" : "", ast_type_name(l));
            return n->type = TY_UNKNOWN;
        }
        return n->type = TY_TENSOR;
    case AST_MEMBER:
        if (l == TY_TENSOR || l == TY_UNKNOWN) {
            for (int i = 0; i < (int)(sizeof tensor_members / sizeof tensor_members[0]); i++)
                if (!strcmp(n->str, tensor_members[i]))
                    return n->type = tensor_member_types[i];
            if (l == TY_TENSOR)
                error_at(ck, n, ERR_TYPE,
                         "a tensor has no member '%s' (members: shape, ndim, numel, dtype, device, T, grad; "
                         "methods: any built-in, as in x.reshape(2, -1))", n->str);
            return n->type = TY_UNKNOWN;
        }
        error_at(ck, n, ERR_TYPE, "a%s %s has no member '%s'", l == TY_INT ? "n" : "", ast_type_name(l), n->str);
        return n->type = TY_UNKNOWN;
    default: return n->type = check_call(ck, n, l);
    }
}

/* A chain (a + b + c, x.T.T, z[0][0], x.f().g()) as a loop: its leftmost operand,
 * then each link, so that no link costs stack. A plain call f(...) is a chain of none. */
static ast_type check_chain(checker *ck, ast *n)
{
    ast *few[32], **links = few, *base = n;
    int nlinks = 0, cap = 32;
    for (; ast_chain_left(base); base = ast_chain_left(base)) {
        if (nlinks == cap) {
            ast **more = malloc(sizeof *more * (size_t)cap * 2);
            if (!more) {
                error_at(ck, n, ERR_MEMORY, "out of memory checking a chain of %d operators", nlinks);
                break;
            }
            memcpy(more, links, sizeof *links * (size_t)nlinks);
            if (links != few)
                free(links);
            links = more;
            cap *= 2;
        }
        links[nlinks++] = base;
    }
    ast_type t = TY_UNKNOWN;
    if (base == n) /* f(...) */
        t = check_call(ck, n, TY_UNKNOWN);
    else if (!ast_chain_left(base)) {
        t = check_expr(ck, base);
        for (int i = nlinks - 1; i >= 0; i--) {
            links[i]->chain = nlinks - i >= AST_CHAIN_LOOP;
            t = check_link(ck, links[i], t);
        }
    }
    if (links != few)
        free(links);
    return t;
}

static ast_type check_expr(checker *ck, ast *n)
{
    ast_type l, r;
    if (out_of_stack(ck, n))
        return TY_UNKNOWN;
    switch (n->kind) {
    case AST_INT: return n->type = TY_INT;
    case AST_FLOAT: return n->type = TY_FLOAT;
    case AST_BOOL: return n->type = TY_BOOL;
    case AST_STRING: return n->type = TY_STRING;
    case AST_NAME: return check_name(ck, n, 0);
    case AST_UNARY:
        l = check_expr(ck, n->a);
        if (l == TY_VOID || l == TY_STRING || l == TY_DTYPE || l == TY_DEVICE || l == TY_TUPLE || l == TY_FUNC) {
            error_at(ck, n, ERR_TYPE, "operator '%s' cannot take %s", n->op == TK_MINUS ? "-" : op_text(n->op),
                     ast_type_name(l));
            return n->type = TY_UNKNOWN;
        }
        if (n->op == TK_TILDE && (l == TY_FLOAT || l == TY_TENSOR))
            error_at(ck, n, ERR_TYPE, "operator '~' takes an int, got %s", ast_type_name(l));
        if (n->op == TK_NOT)
            return n->type = l == TY_TENSOR ? TY_TENSOR : TY_BOOL;
        return n->type = l == TY_BOOL ? TY_INT : l;
    case AST_TERNARY: {
        ast_type c = check_expr(ck, n->a);
        if (!is_numeric(c))
            error_at(ck, n->a, ERR_TYPE, "the condition of '?:' must be a number or bool, got %s", ast_type_name(c));
        l = check_expr(ck, n->b);
        r = check_expr(ck, n->c);
        if (l == r)
            return n->type = l;
        if (is_scalar(l) && is_scalar(r))
            return n->type = (l == TY_FLOAT || r == TY_FLOAT) ? TY_FLOAT : TY_INT;
        return n->type = TY_UNKNOWN;
    }
    case AST_ASSIGN: {
        l = n->a->kind == AST_NAME ? check_name(ck, n->a, 0) : check_expr(ck, n->a);
        r = n->b->kind == AST_LIST ? (check_list(ck, n->b), TY_TENSOR) : check_expr(ck, n->b);
        check_target(ck, n->a);
        if (r == TY_VOID)
            error_at(ck, n->b, ERR_TYPE, "cannot assign a void value");
        else if (n->op != TK_ASSIGN)
            binary_type(ck, n, check_compound_op(n->op), l, r);
        else if (n->a->kind == AST_NAME && !assignable(l, r))
            error_at(ck, n->b, ERR_TYPE, "cannot assign %s to '%s', %s %s", ast_type_name(r), n->a->str,
                     eng_a(ast_type_name(l)), ast_type_name(l));
        return n->type = l;
    }
    case AST_INCDEC:
        l = n->a->kind == AST_NAME ? check_name(ck, n->a, 0) : check_expr(ck, n->a);
        check_target(ck, n->a);
        if (!is_numeric(l))
            error_at(ck, n, ERR_TYPE, "'%s' needs a number or a tensor, got %s", n->op == TK_INC ? "++" : "--",
                     ast_type_name(l));
        return n->type = l;
    case AST_BINARY:
    case AST_INDEX:
    case AST_MEMBER:
    case AST_CALL: return n->type = check_chain(ck, n);
    case AST_LIST:
        check_list(ck, n);
        return n->type = TY_TENSOR;
    case AST_CAST:
        l = check_expr(ck, n->a);
        if (!is_numeric(l))
            error_at(ck, n, ERR_TYPE, "cannot convert %s to %s", ast_type_name(l), ast_type_name(n->type));
        return n->type;
    case AST_SLICE:
        error_at(ck, n, ERR_SYNTAX, "a slice a:b is only allowed inside [ ]");
        return TY_UNKNOWN;
    case AST_LAUNCH: return n->type = check_launch(ck, n);
    default:
        error_at(ck, n, ERR_SYNTAX, "expected an expression");
        return TY_UNKNOWN;
    }
}

/* ---- kernels ---- */

/* a kernel defined earlier in this cell, else in the session */
static const eng_kernel *find_kernel(checker *ck, const char *name, int len)
{
    for (int i = ck->nkernels - 1; i >= 0; i--)
        if ((int)strlen(ck->kernels[i].name) == len && !memcmp(ck->kernels[i].name, name, (size_t)len))
            return &ck->kernels[i];
    return eng_kernel_find(ck->s->kernels, name, len);
}

/* a __global__ / __device__ definition: its parameters are parsed now, so that an
 * unsupported type is reported before the cell runs */
static void check_kernel_def(checker *ck, ast *n)
{
    if (ck->depth > 0 || ck->func) {
        error_at(ck, n, ERR_SYNTAX, "__global__ / __device__ functions can only be defined at top level");
        return;
    }
    eng_kernel k;
    memset(&k, 0, sizeof k);
    k.name = (char *)n->name;
    k.is_global = n->ival == 1;
    const char *end = n->str + n->slen;
    while (end > n->str && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        end--;
    if (k.is_global && end > n->str && end[-1] == ';') {
        error_at(ck, n, ERR_SYNTAX, "__global__ %s needs a body: a kernel cannot be only declared", n->name);
        return;
    }
    if (k.is_global) {
        eng_error e = {0};
        if (eng_kernel_parse_params(n->str, n->name, &k.params, &k.nparams, &e)) {
            error_at(ck, n, e.kind, "%s", e.msg);
            return;
        }
    }
    if (ck->nkernels == MAX_CELL_KERNELS) {
        free(k.params);
        error_at(ck, n, ERR_RUNTIME, "too many kernel definitions in one cell (at most %d)", MAX_CELL_KERNELS);
        return;
    }
    ck->kernels[ck->nkernels++] = k;
}

/* k<<<grid, block[, shared]>>>(args): the kernel, the launch sizes, the argument
 * count and which arguments are tensors, checked against the kernel's signature; the
 * launch checks the rest (dtypes, ranges, the device's limits) */
static ast_type check_launch(checker *ck, ast *n)
{
    ast *name = n->a;
    for (int i = 0; i < n->nlist; i++) {
        ast_type t = check_expr(ck, n->list[i]);
        int ok = t == TY_INT || t == TY_BOOL || t == TY_UNKNOWN || (i < 2 && t == TY_TUPLE);
        if (!ok)
            error_at(ck, n->list[i], ERR_TYPE, "%s<<<...>>>: the %s must be %s, got %s", name->str,
                     i == 0 ? "grid size" : i == 1 ? "block size" : "shared memory size (bytes)",
                     i < 2 ? "an int or dim3(x, y, z)" : "an int", ast_type_name(t));
    }
    check_args(ck, n->b, 0);
    const eng_kernel *k = find_kernel(ck, name->str, name->slen);
    if (!k) {
        ast_type t;
        ast *fn;
        local *l = find_local(ck, name->str, name->slen);
        int g = l ? -1 : global_index(ck, name->str, name->slen, 0);
        if (l || (g >= 0 && global_visible(ck, g, &t, &fn)))
        {
            const char *what = l ? ast_type_name(l->type) : t == TY_FUNC ? "function" : ast_type_name(t);
            error_at(ck, name, ERR_TYPE, "'%s' is a%s %s, not a __global__ kernel: only kernels can be launched",
                     name->str, strchr("aeiou", what[0]) ? "n" : "", what);
        }
        else if (eng_builtin_find(name->str, name->slen))
            error_at(ck, name, ERR_TYPE, "'%s' is a built-in function, not a __global__ kernel", name->str);
        else
            error_at(ck, name, ERR_NAME, "undeclared kernel '%s' (define it with __global__ first)", name->str);
        return TY_VOID;
    }
    if (!k->is_global) {
        error_at(ck, name, ERR_TYPE, "%s is a __device__ function: only __global__ kernels can be launched", k->name);
        return TY_VOID;
    }
    int argc = n->b->nlist;
    if (argc != k->nparams) {
        char msg[600];
        error_at(ck, n, ERR_TYPE, "%s", eng_kernel_count_error(k, argc, msg, sizeof msg));
        return TY_VOID;
    }
    for (int i = 0; i < argc; i++) {
        ast *arg = n->b->list[i];
        ast_type t = arg->kind == AST_LIST ? TY_TENSOR : arg->type;
        if (t == TY_UNKNOWN)
            continue;
        char msg[400];
        if (eng_kernel_kind_error(k, i, t == TY_TENSOR, ast_type_name(t), msg, sizeof msg))
            error_at(ck, arg, ERR_TYPE, "%s", msg);
        else if (t != TY_TENSOR && !is_scalar(t))
            error_at(ck, arg, ERR_TYPE, "%s: argument %d ('%s', %s) takes a number, got %s", k->name, i + 1,
                     k->params[i].name, k->params[i].type, ast_type_name(t));
    }
    return TY_VOID;
}

static void check_cond(checker *ck, ast *c, const char *what)
{
    ast_type t = check_expr(ck, c);
    if (!is_numeric(t))
        error_at(ck, c, ERR_TYPE, "the condition of '%s' must be a number or bool, got %s", what, ast_type_name(t));
}

static void check_decl(checker *ck, ast *n, int top)
{
    for (int i = 0; i < n->nlist; i++) {
        ast *v = n->list[i];
        ast_type init = TY_UNKNOWN;
        if (v->a)
            init = v->a->kind == AST_LIST ? (check_list(ck, v->a), TY_TENSOR) : check_expr(ck, v->a);
        ast_type t = n->type;
        if (t == TY_VOID)
            error_at(ck, v, ERR_TYPE, "a variable cannot be void");
        if (t == TY_AUTO) {
            if (!v->a)
                error_at(ck, v, ERR_TYPE, "'auto %s' needs an initializer", v->str);
            t = init == TY_AUTO ? TY_UNKNOWN : init;
        }
        if (v->a && init == TY_VOID)
            error_at(ck, v->a, ERR_TYPE, "'%s' is initialised with a void value", v->str);
        else if (v->a && !assignable(t, init))
            error_at(ck, v->a, ERR_TYPE, "cannot initialise '%s', %s %s, with %s", v->str, eng_a(ast_type_name(t)),
                     ast_type_name(t), ast_type_name(init));
        v->type = t;
        if (top) {
            int g = global_index(ck, v->str, v->slen, 1);
            if (g < 0) {
                error_at(ck, v, ERR_MEMORY, "too many globals");
                continue;
            }
            v->res = RES_GLOBAL;
            v->slot = g;
            ck->defined[g] = 1;
            ck->types[g] = t;
            ck->funcs[g] = NULL;
        } else {
            v->res = RES_LOCAL;
            v->slot = declare_local(ck, v, v->str, v->slen, t);
        }
    }
}

static void check_block(checker *ck, ast *n)
{
    ck->depth++;
    n->slot = ck->next_slot;
    for (int i = 0; i < n->nlist; i++)
        check_stmt(ck, n->list[i]);
    n->ival = ck->next_slot; /* the slots [slot, ival) are cleared when the block ends */
    ck->next_slot = n->slot;
    pop_scope(ck);
}

static void check_func(checker *ck, ast *n)
{
    int saved_next = ck->next_slot, saved_max = ck->max_slot, saved_loops = ck->loops;
    ast *saved_func = ck->func;
    ck->next_slot = 0;
    ck->max_slot = 0;
    ck->loops = 0;
    ck->func = n;
    ck->depth++;
    for (int i = 0; i < n->nlist; i++) {
        ast *p = n->list[i];
        if (p->type == TY_VOID || p->type == TY_AUTO)
            error_at(ck, p, ERR_TYPE, "parameter '%s' cannot be %s", p->str, ast_type_name(p->type));
        p->slot = declare_local(ck, p, p->str, p->slen, p->type);
    }
    check_block(ck, n->a);
    pop_scope(ck);
    n->ival = ck->max_slot; /* frame size */
    ck->next_slot = saved_next;
    ck->max_slot = saved_max;
    ck->loops = saved_loops;
    ck->func = saved_func;
}

static void check_stmt(checker *ck, ast *n)
{
    if (out_of_stack(ck, n))
        return;
    switch (n->kind) {
    case AST_EXPR: {
        ast_type t = check_expr(ck, n->a);
        (void)t;
        break;
    }
    case AST_DECL: check_decl(ck, n, ck->depth == 0); break;
    case AST_BLOCK: check_block(ck, n); break;
    case AST_IF:
        check_cond(ck, n->a, "if");
        check_stmt(ck, n->b);
        if (n->c)
            check_stmt(ck, n->c);
        break;
    case AST_WHILE:
    case AST_DO:
        check_cond(ck, n->a, n->kind == AST_WHILE ? "while" : "do-while");
        ck->loops++;
        check_stmt(ck, n->b);
        ck->loops--;
        break;
    case AST_FOR:
        ck->depth++;
        n->slot = ck->next_slot;
        if (n->a) {
            if (n->a->kind == AST_DECL)
                check_decl(ck, n->a, 0);
            else
                check_stmt(ck, n->a);
        }
        if (n->b)
            check_cond(ck, n->b, "for");
        if (n->c)
            check_expr(ck, n->c);
        ck->loops++;
        check_stmt(ck, n->d);
        ck->loops--;
        n->ival = ck->next_slot;
        ck->next_slot = n->slot;
        pop_scope(ck);
        break;
    case AST_BREAK:
    case AST_CONTINUE:
        if (!ck->loops)
            error_at(ck, n, ERR_SYNTAX, "'%s' outside a loop", n->kind == AST_BREAK ? "break" : "continue");
        break;
    case AST_RETURN: {
        if (!ck->func) {
            error_at(ck, n, ERR_SYNTAX, "'return' outside a function");
            if (n->a)
                check_expr(ck, n->a);
            break;
        }
        ast_type want = ck->func->type;
        if (!n->a) {
            if (want != TY_VOID)
                error_at(ck, n, ERR_TYPE, "%s() must return %s %s value", ck->func->str, eng_a(ast_type_name(want)),
                         ast_type_name(want));
            break;
        }
        ast_type got = n->a->kind == AST_LIST ? (check_list(ck, n->a), TY_TENSOR) : check_expr(ck, n->a);
        if (want == TY_VOID)
            error_at(ck, n->a, ERR_TYPE, "%s() is void and cannot return a value", ck->func->str);
        else if (!assignable(want, got))
            error_at(ck, n->a, ERR_TYPE, "%s() returns %s, but this is %s", ck->func->str, ast_type_name(want),
                     ast_type_name(got));
        break;
    }
    case AST_FUNC:
        if (ck->depth > 0) {
            error_at(ck, n, ERR_SYNTAX, "functions can only be defined at top level");
            break;
        }
        check_func(ck, n);
        break;
    case AST_MAGIC:
        if (ck->depth > 0 || ck->func)
            error_at(ck, n, ERR_SYNTAX, "a magic (%%%s) must be a line of its own at top level", n->str);
        break;
    case AST_KERNEL: check_kernel_def(ck, n); break;
    case AST_EMPTY: break;
    default: error_at(ck, n, ERR_SYNTAX, "expected a statement"); break;
    }
}

int check_cell(eng_session *s, ast_cell *cell, eng_error *errs, int max_errs, check_result *res)
{
    checker *ck = calloc(1, sizeof *ck);
    if (!ck) {
        if (max_errs > 0)
            eng_fail(&errs[0], ERR_MEMORY, "out of memory while checking the cell");
        return 1;
    }
    ck->s = s;
    ck->errs = errs;
    ck->max_errs = max_errs;
    ck->stack_limit = eng_stack_limit();
    if (s->eval_scope) { /* the debugger evaluates in a frame: its locals are visible */
        const eng_dbg_scope *sc = s->eval_scope;
        for (int i = 0; i < sc->n && i < MAX_LOCALS; i++)
            ck->locals[ck->nlocals++] = (local){sc->names[i], (int)strlen(sc->names[i]), sc->slots[i],
                                                sc->types[i], 0};
        ck->next_slot = ck->max_slot = sc->base;
    }
    /* functions are visible in the whole cell, so that they may call each other */
    for (int i = 0; i < cell->nstmts; i++) {
        ast *n = cell->stmts[i];
        if (n->kind != AST_FUNC)
            continue;
        int g = global_index(ck, n->str, n->slen, 1);
        if (g < 0) {
            error_at(ck, n, ERR_MEMORY, "too many globals");
            continue;
        }
        n->res = RES_GLOBAL;
        n->slot = g;
        ck->defined[g] = 1;
        ck->types[g] = TY_FUNC;
        ck->funcs[g] = n;
    }
    for (int i = 0; i < cell->nstmts; i++)
        check_stmt(ck, cell->stmts[i]);
    int nerrs = ck->nerrs;
    res->nnew = ck->nnew;
    res->names = NULL;
    res->frame_size = ck->max_slot;
    if (ck->nnew > 0) {
        res->names = malloc(sizeof *res->names * (size_t)ck->nnew);
        if (res->names)
            memcpy(res->names, ck->new_names, sizeof *res->names * (size_t)ck->nnew);
        else if (!nerrs && max_errs > 0)
{
            eng_fail(&errs[0], ERR_MEMORY, "out of memory while checking the cell");
            nerrs = 1;
        }
    }
    for (int i = 0; i < ck->nkernels; i++)
        free(ck->kernels[i].params);
    free(ck->defined);
    free(ck->types);
    free(ck->funcs);
    free(ck);
    return nerrs;
}
