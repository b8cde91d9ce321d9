/* session_eval.c — user_expressions (eng_evaluate): one expression evaluated without
 * side effects on the session (docs/kernel.md says what is refused). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/train/autograd.h"
#include "engine/lang/interp.h"
#include "engine/lang/kernels.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/lang/session.h"

/* ---- user expressions: evaluation without side effects ---- */

/* Built-ins that change nothing the session keeps: no output, no display, no random
 * draws (the RNG is the session's), no files, no optimiser, grad-mode or parameter
 * state. Everything else is refused in an expression evaluated by eng_evaluate (an
 * allow-list: a new built-in is refused there until it is added here). */
static const char *const pure_builtins[] = {
    "sprintf", "cdiv", "dim3", "str", "len", "time", "is_grad_enabled", "detach",
    "linear", "softmax", "log_softmax", "cross_entropy", "mse", "accuracy", "layer_norm", "conv2d",
    "max_pool2d", "avg_pool2d", "embedding",
    "zeros", "ones", "empty", "full", "arange", "linspace", "eye", "zeros_like", "ones_like", "empty_like",
    "abs", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "sin", "cos", "floor", "ceil", "round",
    "clamp", "pow", "maximum", "minimum", "where",
    "sum", "mean", "max", "min", "argmax", "argmin", "std", "var", "norm",
    "reshape", "flatten", "transpose", "permute", "squeeze", "unsqueeze", "cat", "stack", "clone", "contiguous",
    "matmul", "dot", "outer", "item", "to", "numel", "shape",
    "onecycle_lr", "onecycle_mom", "fit_history",
};

static int builtin_is_pure(const char *name)
{
    for (size_t i = 0; i < sizeof pure_builtins / sizeof pure_builtins[0]; i++)
        if (!strcmp(pure_builtins[i], name))
            return 1;
    return 0;
}

/* what a built-in that is not pure would do, for the message */
static const char *builtin_effect(const char *name)
{
    static const char *const out = " print printf fprintf display update_display clear_output plot scatter hist "
                                   "imshow imgrid ",
                      *rng = " rand randn randint dropout kaiming kaiming_uniform xavier seed ",
                      *files = " load_npy save_npy load_idx ";
    char word[64];
    snprintf(word, sizeof word, " %s ", name);
    if (strstr(out, word))
        return "writes output";
    if (strstr(rng, word))
        return "uses the session's random generator";
    if (strstr(files, word))
        return "uses files";
    if (!strcmp(name, "input"))
        return "asks the user";
    return "changes the session's state (parameters, gradients, optimisers, grad mode or statistics)";
}

/* The first node under n (checked) that could change the session: its error in *e. */
static ast *impure_node(ast *n, eng_error *e)
{
    if (!n)
        return NULL;
    switch (n->kind) {
    case AST_ASSIGN:
        eng_fail(e, ERR_SYNTAX, "user_expressions evaluate expressions only: an assignment would change the session");
        return n;
    case AST_INCDEC:
        eng_fail(e, ERR_SYNTAX, "user_expressions evaluate expressions only: '%s' would change the session",
                 n->op == TK_INC ? "++" : "--");
        return n;
    case AST_LAUNCH:
        eng_fail(e, ERR_VALUE, "user_expressions evaluate expressions only: a kernel launch writes into tensors");
        return n;
    case AST_CALL: {
        ast *callee = n->a;
        if (callee->res == RES_GLOBAL) {
            eng_fail(e, ERR_VALUE, "user_expressions do not call user functions (%s() may change globals); "
                     "evaluate what it returns in a cell", callee->str ? callee->str : "?");
            return n;
        }
        const eng_builtin *b = callee->res == RES_BUILTIN ? eng_builtin_at(callee->slot) : NULL;
        if (!b || !builtin_is_pure(b->name)) {
            eng_fail(e, ERR_VALUE, "user_expressions call only built-ins without side effects: %s() %s",
                     b ? b->name : "this", b ? builtin_effect(b->name) : "is not one");
            return n;
        }
        if (callee->kind == AST_MEMBER) { /* x.f(args): x is evaluated too */
            ast *bad = impure_node(callee->a, e);
            if (bad)
                return bad;
        }
        break;
    }
    default: break;
    }
    ast *kids[4] = {n->a, n->b, n->c, n->d};
    for (int i = 0; i < 4; i++) {
        if (n->kind == AST_CALL && i == 0)
            continue; /* the callee, handled above */
        ast *bad = impure_node(kids[i], e);
        if (bad)
            return bad;
    }
    for (int i = 0; i < n->nlist; i++) {
        ast *bad = impure_node(n->list[i], e);
        if (bad)
            return bad;
    }
    return NULL;
}

static const char *stmt_kind_text(const ast *n)
{
    switch (n->kind) {
    case AST_DECL: return "a declaration";
    case AST_FUNC: return "a function definition";
    case AST_KERNEL: return "a kernel definition";
    case AST_MAGIC: return "a magic";
    case AST_EXPR: return "a second expression";
    case AST_EMPTY: return "an empty statement";
    default: return "a statement";
    }
}

int eng_evaluate(eng_session *s, const char *expr, const char *name, const eng_sink *sink)
{
    eng_ctx *prev = eng_ctx_enter(&s->ctx);
    s->sink = sink;
    s->outlen = 0;
    int grad_mode = ag_grad_mode(), rc = 1;
    tensor_rng rng = s->rng;
    eng_error e = {0};
    /* a statement is refused before the checker sees it: a declaration would add a global */
    ast_cell pre;
    eng_error perr[1];
    memset(perr, 0, sizeof perr);
    int nperr = ast_parse(expr, &pre, perr, 1);
    if (!nperr && pre.arena) {
        ast *bad = NULL;
        if (pre.nstmts == 0)
            eng_fail(&e, ERR_SYNTAX, "user_expressions need an expression, got nothing");
        for (int i = 0; i < pre.nstmts && !bad; i++)
            if (pre.stmts[i]->kind != AST_EXPR || i > 0) {
                bad = pre.stmts[i];
                eng_fail(&e, ERR_SYNTAX, "user_expressions evaluate one expression, without side effects; "
                         "this is %s", stmt_kind_text(bad));
            }
        if (e.kind) {
            eng_source src = {1, pre.arena, pre.src ? pre.src : "", (char *)(name ? name : "user_expression"), 1, NULL, 0, 0};
            if (bad) {
                e.line = bad->line;
                e.col = bad->col;
            }
            eng_report(s, &src, &e, 1, 1, NULL, NULL);
        }
    }
    if (pre.arena)
        arena_decref(pre.arena);
    if (e.kind)
        goto out;
    eng_compiled *c = eng_compile(s, expr, name ? name : "user_expression", 1, NULL);
    if (!c)
        goto out;
    ast *stmt = c->cell.nstmts == 1 ? c->cell.stmts[0] : NULL;
    ast *bad = stmt && stmt->kind == AST_EXPR ? impure_node(stmt->a, &e) : NULL;
    if (bad) {
        e.line = bad->line;
        e.col = bad->col;
        eng_report(s, c->src, &e, 1, 1, NULL, NULL);
    } else if (stmt && stmt->kind == AST_EXPR) {
        stmt->ival = 1; /* its value is the result, with or without a ';' */
        rc = eng_run_compiled(s, c, NULL);
    }
    eng_compiled_free(c);
out:
    ag_set_grad_mode(grad_mode);
    s->rng = rng;
    eng_flush(s);
    eng_ctx_flag_set(&s->ctx.interrupt, 0);
    s->sink = NULL;
    eng_ctx_leave(prev);
    return rc;
}

