/* session.c — the engine's public API (engine.h): sessions and their globals, running
 * a cell (parse → check → run) and interrupts. Beside it: session_report.c (how errors
 * are shown), session_eval.c (user_expressions without side effects) and
 * session_complete.c (is_complete, completion, inspection). */
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
#include "engine/lang/custom_ops.h"
#include "engine/train/nn.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/lang/session.h"
#include "engine/lang/debug.h"

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
    s->shadow = calloc((size_t)eng_builtin_count() + 1, sizeof *s->shadow);
    s->dbg = eng_dbg_new();
    s->dframes = calloc(ENG_MAX_DEPTH + 2, sizeof *s->dframes);
    if (!s->stack || !s->hash || !s->kernels || !s->shadow || !s->dbg || !s->dframes) {
        free(s->shadow);
        free(s->stack);
        free(s->hash);
        eng_dbg_free(s->dbg);
        free(s->dframes);
        eng_ktable_free(s->kernels);
        free(s);
        return NULL;
    }
    eng_ctx_init(&s->ctx);
    s->ctx.oom_note = eng_oom_note; /* MemoryErrors name this session's largest variables */
    s->ctx.oom_note_user = s;
    s->kernels->kdbg_session = s; /* the kernel debugger's output and stops */
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
    free(s->shadow);
    eng_ktable_free(s->kernels);
    eng_custom_free(s);
    eng_dbg_free(s->dbg);
    free(s->dframes);
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
    eng_custom_clear(s);
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
    const eng_builtin *b = eng_builtin_find(name, len);
    if (b) /* a global named like a built-in: calls of the built-in look at it */
        s->shadow[eng_builtin_index(b)] = s->nglobals + 1;
    return s->nglobals++;
}

void eng_source_decref(eng_source *src)
{
    if (!src || --src->refcount > 0)
        return;
    arena_decref(src->arena);
    free(src->name);
    free(src->path);
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
            eng_report(s, NULL, &e, 1, 1, NULL, NULL);
        return NULL;
    }
    c->src = src;
    src->refcount = 1;
    src->arena = c->cell.arena;
    src->text = c->cell.src ? c->cell.src : "";
    src->first_line = first_line > 0 ? first_line : 1;
    src->name = cell_name ? strdup(cell_name) : eng_fmt_alloc("cell[%d]", s->ncells);
    src->path = eng_dbg_take_next_path(s);
    if (!src->name) {
        nerr = 1;
        eng_fail(&errs[0], ERR_MEMORY, "out of memory");
    }
    check_result cr = {0};
    if (!nerr)
        eng_cell_defines(s, &c->cell, src->name, src->first_line);
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
        eng_report(s, src, errs, nerr < MAX_CELL_ERRORS ? nerr : MAX_CELL_ERRORS, nerr, NULL, NULL);
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
            eng_report(s, c->src, &err, 1, 1, err_src, &trace);
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
    eng_dbg_forget(s);
    int grad_mode = ag_grad_mode();
    eng_compiled *c = eng_compile(s, code, cell_name, first_line, NULL);
    if (c)
        eng_lint_cell(s, c->src);
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

