/* session.c — the engine's public API (engine.h): sessions and their globals, running
 * a cell (parse → check → run) and reporting its errors, is_complete, completion,
 * inspection and interrupts. */
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
#include "engine/train/nn.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/lang/session.h"

#define MAX_CELL_ERRORS 20

const char *eng_version(void) { return "0.1.0"; }

/* ---- sessions ---- */

eng_session *eng_session_new(void)
{
    ag_install(); /* autograd records the tensor layer's ops (engine/tensor/record.h) */
    eng_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->stack = calloc(ENG_STACK_SLOTS, sizeof *s->stack);
    s->hashcap = 256;
    s->hash = calloc((size_t)s->hashcap, sizeof *s->hash);
    s->kernels = eng_ktable_new();
    if (!s->stack || !s->hash || !s->kernels) {
        free(s->stack);
        free(s->hash);
        eng_ktable_free(s->kernels);
        free(s);
        return NULL;
    }
    eng_ctx_init(&s->ctx);
    s->ctx.oom_note = eng_oom_note; /* MemoryErrors name this session's largest variables */
    s->ctx.oom_note_user = s;
    return s;
}

static void reset_globals(eng_session *s)
{
    for (int i = 0; i < s->nglobals; i++) {
        value v = s->globals[i].v;
        s->globals[i].v = value_void();
        s->globals[i].defined = 0;
        value_decref(v);
    }
}

void eng_session_free(eng_session *s)
{
    if (!s)
        return;
    eng_ctx *prev = eng_ctx_enter(&s->ctx); /* the tensors' nodes die in their own session */
    reset_globals(s);
    for (int i = 0; i < s->nglobals; i++)
        free(s->globals[i].name);
    free(s->globals);
    free(s->hash);
    free(s->stack);
    eng_ktable_free(s->kernels);
    opt_registry_clear(&s->optims);
    eng_error e = {0};
    nn_stats_journal_close(0, &e); /* empty unless lr_find was cut short */
    eng_ctx_leave(prev);
    free(s);
}


void eng_session_reset(eng_session *s)
{
    reset_globals(s);
    eng_ktable_clear(s->kernels);
}

/* async-signal-safe: one lock-free store to the session's flag (engine/base/context.h) */
void eng_interrupt(eng_session *s)
{
    eng_ctx_flag_set(&s->ctx.interrupt, 1);
}

static unsigned hash_name(const char *name, int len)
{
    unsigned h = 2166136261u;
    for (int i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h;
}

int eng_global_find(eng_session *s, const char *name, int len)
{
    unsigned mask = (unsigned)s->hashcap - 1;
    for (unsigned h = hash_name(name, len) & mask;; h = (h + 1) & mask) {
        int k = s->hash[h];
        if (!k)
            return -1;
        eng_global *g = &s->globals[k - 1];
        if ((int)strlen(g->name) == len && !memcmp(g->name, name, (size_t)len))
            return k - 1;
    }
}

static void hash_insert(eng_session *s, int index)
{
    unsigned mask = (unsigned)s->hashcap - 1;
    const char *name = s->globals[index].name;
    unsigned h = hash_name(name, (int)strlen(name)) & mask;
    while (s->hash[h])
        h = (h + 1) & mask;
    s->hash[h] = index + 1;
}

int eng_global_add(eng_session *s, const char *name, int len)
{
    int g = eng_global_find(s, name, len);
    if (g >= 0)
        return g;
    if (s->nglobals == s->capglobals) {
        int cap = s->capglobals ? s->capglobals * 2 : 64;
        eng_global *p = realloc(s->globals, sizeof *p * (size_t)cap);
        if (!p)
            return -1;
        s->globals = p;
        s->capglobals = cap;
    }
    if ((s->nglobals + 1) * 2 > s->hashcap) {
        int *h = calloc((size_t)s->hashcap * 2, sizeof *h);
        if (!h)
            return -1;
        free(s->hash);
        s->hash = h;
        s->hashcap *= 2;
        for (int i = 0; i < s->nglobals; i++)
            hash_insert(s, i);
    }
    char *copy = strndup(name, (size_t)len);
    if (!copy)
        return -1;
    eng_global *gl = &s->globals[s->nglobals];
    gl->name = copy;
    gl->type = TY_UNKNOWN;
    gl->v = value_void();
    gl->defined = 0;
    hash_insert(s, s->nglobals);
    return s->nglobals++;
}

void eng_source_decref(eng_source *src)
{
    if (!src || --src->refcount > 0)
        return;
    arena_decref(src->arena);
    free(src->name);
    free(src);
}

void eng_func_decref(eng_func *fn)
{
    if (!fn || --fn->refcount > 0)
        return;
    eng_source_decref(fn->src);
    free(fn->name);
    free(fn);
}

/* ---- error reports ---- */

typedef struct lines {
    char **v;
    int n, cap;
} lines;

static void lines_add(lines *l, char *owned)
{
    if (!owned)
        return;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->v, sizeof *p * (size_t)cap);
        if (!p) {
            free(owned);
            return;
        }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = owned;
}

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0)
        p = NULL;
    va_end(ap);
    return p;
}

/* "name:line:col: Kind: message", the source line (at most SOURCE_EXCERPT bytes of it,
 * around the column), and a caret under the column */
#define SOURCE_EXCERPT 200
static void describe_error(lines *out, const eng_source *src, const eng_error *e)
{
    const char *kind = eng_errkind_name(e->kind);
    if (!src || e->line <= 0) {
        lines_add(out, fmt_alloc("%s: %s: %s", src ? src->name : "cell", kind, e->msg));
        return;
    }
    lines_add(out, fmt_alloc("%s:%d:%d: %s: %s", src->name, e->line + src->first_line - 1, e->col, kind, e->msg));
    const char *p = src->text;
    for (int l = 1; l < e->line && p && *p; l++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || !*p)
        return;
    const char *end = strchr(p, '\n');
    size_t full = end ? (size_t)(end - p) : strlen(p);
    if (full > 0 && p[full - 1] == '\r')
        full--;
    /* a long line is clipped to an excerpt around the column, with '…' where cut */
    size_t from = 0, to = full, col = e->col > 0 ? (size_t)e->col - 1 : 0;
    if (full > SOURCE_EXCERPT) {
        from = col > SOURCE_EXCERPT / 2 ? col - SOURCE_EXCERPT / 2 : 0;
        if (from + SOURCE_EXCERPT > full)
            from = full - SOURCE_EXCERPT;
        to = from + SOURCE_EXCERPT;
        while (from > 0 && ((unsigned char)p[from] & 0xC0) == 0x80) /* whole UTF-8 characters */
            from--;
        while (to < full && ((unsigned char)p[to] & 0xC0) == 0x80)
            to++;
    }
    const char *head = from > 0 ? "\xe2\x80\xa6" : "", *tail = to < full ? "\xe2\x80\xa6" : "";
    lines_add(out, fmt_alloc("    %s%.*s%s", head, (int)(to - from), p + from, tail));
    char *caret = malloc(to - from + 8);
    if (!caret)
        return;
    size_t k = 0;
    for (int i = 0; i < 4 + (from > 0); i++) /* the '…' takes one column */
        caret[k++] = ' ';
    for (size_t i = from; i < col && i < to; i++)
        caret[k++] = p[i] == '\t' ? '\t' : ' ';
    caret[k++] = '^';
    caret[k] = 0;
    lines_add(out, caret);
}

static void report(eng_session *s, const eng_source *src, const eng_error *errs, int nshown, int ntotal,
                   const eng_source *err_src, const eng_trace *trace)
{
    lines out = {0};
    for (int i = 0; i < nshown; i++)
        describe_error(&out, err_src ? err_src : src, &errs[i]);
    if (ntotal > nshown)
        lines_add(&out, fmt_alloc("... and %d more errors", ntotal - nshown));
    if (trace) { /* deep recursion: the innermost and outermost calls, not a thousand lines */
        const int head = 6, tail = 5;
        for (int i = 0; i < trace->n; i++) {
            if (trace->n > head + tail + 1 && i == head) {
                lines_add(&out, fmt_alloc("  ... %d more calls ...", trace->n - head - tail));
                i = trace->n - tail - 1;
                continue;
            }
            lines_add(&out, strdup(trace->lines[i]));
        }
    }
    char evalue[700];
    if (ntotal > 1)
        snprintf(evalue, sizeof evalue, "%s (and %d more error%s)", errs[0].msg, ntotal - 1, ntotal > 2 ? "s" : "");
    else
        snprintf(evalue, sizeof evalue, "%s", errs[0].msg);
    eng_error_report r = {eng_errkind_name(errs[0].kind), evalue, (const char **)out.v, out.n};
    eng_flush(s);
    if (s->sink && s->sink->error)
        s->sink->error(s->sink->user, &r);
    for (int i = 0; i < out.n; i++)
        free(out.v[i]);
    free(out.v);
}

/* ---- running a cell ---- */

/* "name:line:col: " before an error's message, for errors reported inside another's */
static void prefix_location(eng_error *e, const char *name, int line, int col)
{
    char msg[sizeof e->msg];
    memcpy(msg, e->msg, sizeof msg);
    int n = snprintf(e->msg, sizeof e->msg, "%s:%d:%d: ", name, line, col);
    if (n > 0 && n < (int)sizeof e->msg) { /* the message, cut to what is left */
        size_t len = strnlen(msg, sizeof e->msg - (size_t)n - 1);
        memcpy(e->msg + n, msg, len);
        e->msg[(size_t)n + len] = 0;
    }
}

/* Parses and checks code, adding its new globals to the session; the caller runs the
 * returned cell with interp_run_cell and frees it with eng_compiled_free. On failure
 * returns NULL; the errors were reported to the sink, or, when quiet_err is given,
 * the first one is copied there (with its location in the message). */
eng_compiled *eng_compile(eng_session *s, const char *code, const char *cell_name, int first_line,
                          eng_error *quiet_err)
{
    eng_error errs[MAX_CELL_ERRORS];
    memset(errs, 0, sizeof errs);
    eng_compiled *c = calloc(1, sizeof *c);
    eng_source *src = calloc(1, sizeof *src);
    int nerr = c ? ast_parse(code, &c->cell, errs, MAX_CELL_ERRORS) : 0;
    if (!c || !src || !c->cell.arena) {
        if (c && c->cell.arena)
            arena_decref(c->cell.arena);
        free(c);
        free(src);
        eng_error e = {ERR_MEMORY, 0, 0, "out of memory"};
        if (quiet_err)
            *quiet_err = e;
        else
            report(s, NULL, &e, 1, 1, NULL, NULL);
        return NULL;
    }
    c->src = src;
    src->refcount = 1;
    src->arena = c->cell.arena;
    src->text = c->cell.src ? c->cell.src : "";
    src->first_line = first_line > 0 ? first_line : 1;
    src->name = cell_name ? strdup(cell_name) : fmt_alloc("cell[%d]", s->ncells);
    if (!src->name) {
        nerr = 1;
        eng_fail(&errs[0], ERR_MEMORY, "out of memory");
    }
    check_result cr = {0};
    if (!nerr)
        nerr = check_cell(s, &c->cell, errs, MAX_CELL_ERRORS, &cr);
    for (int i = 0; !nerr && i < cr.nnew; i++)
        if (eng_global_add(s, cr.names[i], (int)strlen(cr.names[i])) < 0)
            nerr = eng_fail(&errs[0], ERR_MEMORY, "out of memory adding globals") ? 1 : 1;
    free(cr.names);
    c->frame_size = cr.frame_size;
    if (!nerr)
        return c;
    if (quiet_err) {
        *quiet_err = errs[0];
        prefix_location(quiet_err, src->name ? src->name : "cell", errs[0].line + src->first_line - 1, errs[0].col);
        quiet_err->line = quiet_err->col = 0;
    } else
        report(s, src, errs, nerr < MAX_CELL_ERRORS ? nerr : MAX_CELL_ERRORS, nerr, NULL, NULL);
    eng_compiled_free(c);
    return NULL;
}

void eng_compiled_free(eng_compiled *c)
{
    if (!c)
        return;
    eng_source_decref(c->src);
    free(c);
}

/* Runs a compiled cell; a failure is reported to the sink, or copied to quiet_err. */
int eng_run_compiled(eng_session *s, eng_compiled *c, eng_error *quiet_err)
{
    eng_error err = {0};
    eng_source *err_src = NULL;
    eng_trace trace = {0};
    int rc = 0;
    if (interp_run_cell(s, &c->cell, c->src, c->frame_size, &err, &err_src, &trace)) {
        rc = 1;
        if (err.kind == ERR_NONE)
            eng_fail(&err, ERR_RUNTIME, "the cell failed");
        if (quiet_err) {
            *quiet_err = err;
            if (err_src && err.line > 0)
                prefix_location(quiet_err, err_src->name, err.line + err_src->first_line - 1, err.col);
            quiet_err->line = quiet_err->col = 0;
        } else
            report(s, c->src, &err, 1, 1, err_src, &trace);
    }
    eng_trace_free(&trace);
    return rc;
}

int eng_execute(eng_session *s, const char *code, const char *cell_name, int first_line, const eng_sink *sink)
{
    /* the interrupt flag is cleared when a cell ends, not when it starts, so that an
     * interrupt sent just as the cell begins still stops it */
    eng_ctx *prev = eng_ctx_enter(&s->ctx); /* grad mode, device, ...: this session's */
    s->sink = sink;
    s->ncells++;
    s->outlen = 0;
    eng_flush(s);
    int grad_mode = ag_grad_mode();
    eng_compiled *c = eng_compile(s, code, cell_name, first_line, NULL);
    int rc = c ? eng_run_compiled(s, c, NULL) : 1;
    eng_compiled_free(c);
    if (rc) /* a failed cell leaves grad mode as it found it (set_grad_enabled(false) before the error) */
        ag_set_grad_mode(grad_mode);
    eng_flush(s);
    eng_ctx_flag_set(&s->ctx.interrupt, 0);
    s->sink = NULL;
    eng_ctx_leave(prev);
    return rc;
}

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
            eng_source src = {1, pre.arena, pre.src ? pre.src : "", (char *)(name ? name : "user_expression"), 1};
            if (bad) {
                e.line = bad->line;
                e.col = bad->col;
            }
            report(s, &src, &e, 1, 1, NULL, NULL);
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
        report(s, c->src, &e, 1, 1, NULL, NULL);
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

int eng_check_only(eng_session *s, const char *code, eng_error *errs, int max_errs)
{
    ast_cell cell;
    int nerr = ast_parse(code, &cell, errs, max_errs);
    if (!nerr && cell.arena) {
        check_result cr = {0};
        nerr = check_cell(s, &cell, errs, max_errs, &cr);
        free(cr.names);
    }
    if (cell.arena)
        arena_decref(cell.arena);
    return nerr;
}

/* ---- is_complete ---- */

eng_completeness eng_is_complete(const char *code, char *indent, size_t indent_size)
{
    if (indent_size > 0)
        indent[0] = 0;
    int invalid = 0;
    int depth = ast_open_depth(code, &invalid);
    if (invalid)
        return ENG_INVALID;
    if (depth != 0) {
        int n = depth > 0 ? depth * 4 : 0;
        if (indent_size > 0) {
            if ((size_t)n >= indent_size)
                n = (int)indent_size - 1;
            memset(indent, ' ', (size_t)n);
            indent[n] = 0;
        }
        return ENG_INCOMPLETE;
    }
    eng_error errs[4];
    memset(errs, 0, sizeof errs);
    ast_cell cell;
    int nerr = ast_parse(code, &cell, errs, 4);
    if (cell.arena)
        arena_decref(cell.arena);
    if (!nerr)
        return ENG_COMPLETE;
    /* an error at the very end (an operator waiting for its operand) means more is to come */
    const char *eof = tok_kind_name(TK_EOF);
    for (int i = 0; i < nerr && i < 4; i++)
        if (strstr(errs[i].msg, eof) && !strstr(errs[i].msg, "expected ';'"))
            return ENG_INCOMPLETE;
    return ENG_INVALID;
}

/* ---- completion ---- */

static const char *const keywords[] = {"int", "float", "double", "bool", "string", "tensor", "auto", "void", "if",
                                 "else", "for", "while", "do", "break", "continue", "return", "true",
                                 "false", "const", "__global__", "__device__"};
static const char *const members[] = {"shape", "ndim", "numel", "dtype", "device", "T", "grad"};
const char *const eng_magic_names[] = {"time", "timeit", "whos", "gpu", "save", "load", "reset", "seed", "device",
                                       "ptx", "sim", "memory", "lsmagic", "help", NULL};

typedef struct matchlist {
    char **v;
    int n, cap;
} matchlist;

static void match_add(matchlist *m, const char *name, const char *prefix, int plen, const char *lead)
{
    if (strncmp(name, prefix, (size_t)plen) != 0)
        return;
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 32;
        char **p = realloc(m->v, sizeof *p * (size_t)cap);
        if (!p)
            return;
        m->v = p;
        m->cap = cap;
    }
    char *s = fmt_alloc("%s%s", lead, name);
    if (s)
        m->v[m->n++] = s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_ident(int c) { return isalnum(c) || c == '_'; }

/* Inside the string argument of a file built-in (load_npy("/usr/sh|): the offset of
 * the path's first character, or -1. */
static int path_arg_start(const char *code, int cursor)
{
    static const char *const file_fns[] = {"load_npy", "load_idx", "save_npy"};
    int q = cursor;
    while (q > 0 && code[q - 1] != '"' && code[q - 1] != '\n')
        q--;
    if (q == 0 || code[q - 1] != '"')
        return -1;
    int p = q - 1; /* the opening quote: it must follow "name(" with blanks allowed */
    while (p > 0 && code[p - 1] == ' ')
        p--;
    if (p == 0 || code[p - 1] != '(')
        return -1;
    p--;
    while (p > 0 && code[p - 1] == ' ')
        p--;
    for (size_t i = 0; i < sizeof file_fns / sizeof file_fns[0]; i++) {
        int n = (int)strlen(file_fns[i]);
        if (p >= n && !strncmp(code + p - n, file_fns[i], (size_t)n) && (p == n || !is_ident((unsigned char)code[p - n - 1])))
            return q;
    }
    return -1;
}

/* file names that complete the path code[start, cursor); directories end in '/' */
static void match_paths(matchlist *m, const char *code, int start, int cursor)
{
    char prefix[4096];
    int plen = cursor - start;
    if (plen >= (int)sizeof prefix)
        return;
    memcpy(prefix, code + start, (size_t)plen);
    prefix[plen] = 0;
    char *slash = strrchr(prefix, '/');
    char dir[4096];
    const char *base;
    if (slash) {
        int dl = (int)(slash - prefix) + 1;
        memcpy(dir, prefix, (size_t)dl);
        dir[dl] = 0;
        base = slash + 1;
    } else {
        strcpy(dir, "");
        base = prefix;
    }
    DIR *d = opendir(*dir ? dir : ".");
    if (!d)
        return;
    struct dirent *e;
    size_t blen = strlen(base);
    int count = 0;
    while ((e = readdir(d)) && count < 1000) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strncmp(e->d_name, base, blen) || (e->d_name[0] == '.' && base[0] != '.'))
            continue;
        char full[8192];
        snprintf(full, sizeof full, "%s%s", *dir ? dir : "./", e->d_name);
        struct stat st;
        int isdir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
        char *cand = fmt_alloc("%s%s%s", dir, e->d_name, isdir ? "/" : "");
        if (cand) {
            match_add(m, cand, "", 0, "");
            free(cand);
            count++;
        }
    }
    closedir(d);
}

eng_completions eng_complete(eng_session *s, const char *code, int cursor)
{
    eng_completions r = {0};
    int len = (int)strlen(code);
    if (cursor < 0 || cursor > len)
        cursor = len;
    int start = cursor;
    while (start > 0 && is_ident((unsigned char)code[start - 1]))
        start--;
    const char *prefix = code + start;
    int plen = cursor - start;
    matchlist m = {0};
    int line_start = start;
    while (line_start > 0 && code[line_start - 1] != '\n')
        line_start--;
    int only_blank = 1;
    for (int i = line_start; i < start - 1; i++)
        if (!isspace((unsigned char)code[i]))
            only_blank = 0;
    int path_start = path_arg_start(code, cursor);
    if (path_start >= 0) {
        start = path_start;
        match_paths(&m, code, start, cursor);
    } else if (start > 0 && code[start - 1] == '%' && only_blank) {
        for (int i = 0; eng_magic_names[i]; i++)
            match_add(&m, eng_magic_names[i], prefix, plen, "");
    } else if (start > 0 && code[start - 1] == '.') {
        for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
            match_add(&m, members[i], prefix, plen, "");
        for (int i = 0; eng_builtin_at(i); i++)
            match_add(&m, eng_builtin_at(i)->name, prefix, plen, "");
    } else {
        for (int i = 0; i < s->nglobals; i++)
            if (s->globals[i].defined)
                match_add(&m, s->globals[i].name, prefix, plen, "");
        for (int i = 0; i < s->kernels->n; i++)
            match_add(&m, s->kernels->items[i]->name, prefix, plen, "");
        for (int i = 0; eng_builtin_at(i); i++)
            match_add(&m, eng_builtin_at(i)->name, prefix, plen, "");
        for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
            match_add(&m, keywords[i], prefix, plen, "");
        for (int i = 0; check_constant_name(i); i++)
            match_add(&m, check_constant_name(i), prefix, plen, "");
    }
    if (m.n > 1)
        qsort(m.v, (size_t)m.n, sizeof *m.v, cmp_str);
    int k = 0;
    for (int i = 0; i < m.n; i++) {
        if (k > 0 && !strcmp(m.v[k - 1], m.v[i]))
            free(m.v[i]);
        else
            m.v[k++] = m.v[i];
    }
    r.matches = m.v;
    r.n = k;
    r.cursor_start = start;
    r.cursor_end = cursor;
    return r;
}

void eng_completions_free(eng_completions *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->matches[i]);
    free(c->matches);
    c->matches = NULL;
    c->n = 0;
}

/* ---- inspection ---- */

#define STATS_MAX_ELEMENTS 10000000LL /* past this, statistics are over an even sample */
#define STATS_SAMPLE 1000000LL
#define HIST_BINS 10

/* statistics and a histogram of a tensor's values, as text lines (malloc'ed) */
static char *tensor_stats_text(const tensor *t)
{
    int64_t n = tensor_numel(t);
    if (n == 0)
        return fmt_alloc("(no elements)\n");
    int64_t step = n > STATS_MAX_ELEMENTS ? n / STATS_SAMPLE : 1;
    eng_error err = {0};
    double *xd = NULL; /* small tensors: one f64 copy on the host; huge ones: read the sample */
    if (step == 1) {   /* (cast on the tensor's device, then one copy to the host) */
        tensor *d = tensor_cast(t, DT_F64, &err);
        xd = d ? tensor_to_host(d, &err) : NULL;
        tensor_decref(d);
        if (!xd)
            return fmt_alloc("statistics unavailable: %s\n", err.msg);
    }
#define X(i) (xd ? xd[i] : tensor_get_flat(t, i))
    int64_t used = 0, nans = 0, infs = 0, finite = 0;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i += step) {
        double v = X(i);
        used++;
        if (isnan(v))
            nans++;
        else if (isinf(v))
            infs++;
        else {
            finite++;
            sum += v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    double mean = finite ? sum / (double)finite : NAN, ss = 0;
    int64_t bins[HIST_BINS] = {0};
    for (int64_t i = 0; i < n; i += step) {
        double v = X(i);
        if (!isfinite(v))
            continue;
        ss += (v - mean) * (v - mean);
        int b = hi > lo ? (int)((v - lo) / (hi - lo) * HIST_BINS) : 0;
        bins[b >= HIST_BINS ? HIST_BINS - 1 : b < 0 ? 0 : b]++;
    }
#undef X
    free(xd);
    double sd = finite ? sqrt(ss / (double)finite) : NAN;
    char head[512];
    if (finite)
        snprintf(head, sizeof head, "min %.6g  max %.6g  mean %.6g  std %.6g  NaN %lld  Inf %lld\n", lo, hi, mean, sd,
                 (long long)nans, (long long)infs);
    else
        snprintf(head, sizeof head, "no finite values  NaN %lld  Inf %lld\n", (long long)nans, (long long)infs);
    char sample[160] = "";
    if (step > 1)
        snprintf(sample, sizeof sample, "(over a sample of %lld of %lld elements: every %lld-th)\n", (long long)used,
                 (long long)n, (long long)step);
    if (!finite)
        return fmt_alloc("%s%s", head, sample);
    /* one row per bin: its range, a bar of block characters and its count */
    static const char *const eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    int64_t top = 1;
    for (int b = 0; b < HIST_BINS; b++)
        top = bins[b] > top ? bins[b] : top;
    char hist[HIST_BINS * 200] = "histogram:\n";
    for (int b = 0; b < HIST_BINS; b++) {
        double a = lo + (hi - lo) * b / HIST_BINS, z = lo + (hi - lo) * (b + 1) / HIST_BINS;
        int units = (int)((double)bins[b] * 30 * 8 / (double)top + 0.5);
        char bar[200] = "";
        for (int k = 0; k < units / 8; k++)
            strcat(bar, "█");
        strcat(bar, eighths[units % 8]);
        size_t l = strlen(hist);
        snprintf(hist + l, sizeof hist - l, "  [%10.4g, %10.4g%c %s %lld\n", a, z, b == HIST_BINS - 1 ? ']' : ')', bar,
                 (long long)bins[b]);
        if (hi <= lo)
            break; /* every value is the same: one bin */
    }
    return fmt_alloc("%s%s%s", head, sample, hist);
}

static char *inspect(eng_session *s, const char *code, int cursor, int detail_level)
{
    int len = (int)strlen(code);
    if (cursor < 0 || cursor > len)
        cursor = len;
    int start = cursor, end = cursor;
    while (start > 0 && is_ident((unsigned char)code[start - 1]))
        start--;
    while (end < len && is_ident((unsigned char)code[end]))
        end++;
    if (start == end) { /* just after "f(": look at the name before the parenthesis */
        int p = cursor;
        while (p > 0 && (code[p - 1] == '(' || code[p - 1] == ' '))
            p--;
        end = p;
        start = p;
        while (start > 0 && is_ident((unsigned char)code[start - 1]))
            start--;
        if (start == end)
            return NULL;
    }
    const char *name = code + start;
    int nlen = end - start;
    int g = eng_global_find(s, name, nlen);
    if (g >= 0 && s->globals[g].defined) {
        value v = s->globals[g].v;
        if (v.type == VAL_TENSOR) {
            tensor *t = v.as.t;
            char *desc = tensor_describe(t);
            char *stats = tensor_stats_text(t);
            char *text = detail_level > 0 || tensor_numel(t) <= 100 ? eng_value_text(v, 1) : NULL;
            char *r = fmt_alloc("%.*s: %s\nbytes %zu%s\n%s%s%s", nlen, name, desc ? desc : "tensor", tensor_nbytes(t),
                                t->requires_grad ? ", requires grad" : "", stats ? stats : "", text ? "\n" : "",
                                text ? text : "");
            free(desc);
            free(stats);
            free(text);
            return r;
        }
        char *text = eng_value_text(v, 1);
        char *r = v.type == VAL_FUNC ? fmt_alloc("function %s", text ? text : "")
                                     : fmt_alloc("%.*s: %s = %s", nlen, name, value_type_name(v.type), text ? text : "");
        free(text);
        return r;
    }
    eng_kernel *k = eng_kernel_find(s->kernels, name, nlen);
    if (k) {
        char *d = eng_kernel_describe(k, 1);
        char *r = d ? fmt_alloc("%s %s", k->is_global ? "kernel" : "__device__ function", d) : NULL;
        free(d);
        return r;
    }
    const eng_builtin *b = eng_builtin_find(name, nlen);
    if (b)
        return fmt_alloc("built-in %s\n\n%s", b->signature, b->doc);
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if ((int)strlen(keywords[i]) == nlen && !strncmp(keywords[i], name, (size_t)nlen))
            return fmt_alloc("keyword %s (see docs/language.md)", keywords[i]);
    return NULL;
}

char *eng_inspect(eng_session *s, const char *code, int cursor, int detail_level)
{
    eng_ctx *prev = eng_ctx_enter(&s->ctx); /* the statistics are tensor ops of this session */
    char *r = inspect(s, code, cursor, detail_level);
    eng_ctx_leave(prev);
    return r;
}
