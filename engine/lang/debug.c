/* debug.c — the engine's debugger: breakpoints, stepping and pausing decided at each
 * statement, stops reported to the attached host, and what a stop shows: the stack,
 * each frame's locals (the names in scope at its statement, found by walking the
 * function's tree to it), the globals, tensors expanded to shape, dtype, device,
 * statistics and first values, and evaluation in a frame's scope (the checker sees the
 * frame's locals, the interpreter runs on its slots). See debug.h and engine.h. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lang/debug.h"
#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"

#define MAX_SCOPE 1024         /* locals listed per frame */
#define MAX_VALUES 1000        /* a tensor's first values listed */
#define MAX_REFS 100000        /* variable references kept before they are dropped */
#define TEXT_MAX 300           /* a variable's one-line text */

typedef struct bpoint {
    char *path;      /* the source path */
    int line;        /* 1-based */
    char *cond;      /* NULL: none */
    char *hitcond;   /* NULL: none */
    char *logmsg;    /* NULL: a breakpoint; else a log point's message */
    long hits;       /* times reached */
} bpoint;

enum { R_LOCALS = 1, R_GLOBALS, R_XLOCALS, R_TENSOR, R_VALUES };
typedef struct dref {
    int kind;        /* R_* */
    int frame;       /* R_LOCALS: the frame id; R_XLOCALS: the extra frame's index */
    value v;         /* R_TENSOR, R_VALUES: the tensor (owned) */
} dref;

struct eng_debug {
    pthread_mutex_t mu;    /* guards host, bps, next_path */
    eng_dbg_host host;     /* the attached host (stopped NULL: none) */
    bpoint *bps;
    int nbps, capbps;
    int pause;             /* a pause is pending (atomic) */
    int gen;               /* breakpoint generation, from 1: changes with every set (atomic) */
    int on_errors;         /* stop where an error is raised (atomic) */
    char *next_path;       /* the next compiled source's path */
    /* the session's thread only */
    int busy;              /* inside a stop or an evaluation: the hook does nothing */
    eng_dbg_action step;   /* the step in progress (CONTINUE: none) */
    int step_depth;        /* the frame depth it started at */
    eng_source *step_src;  /* where it started: a later statement on that line is skipped */
    int step_line, step_col;
    int stopped;           /* a stop is in progress */
    const eng_dbg_xframe *x; /* its extra frames */
    int nx;
    dref *refs;            /* variable references: ref = index + 1 */
    int nrefs, caprefs;
};

struct eng_dbg_varsink {
    eng_session *s;
    eng_dbg_var *v;
    int n, cap;
};

/* ---- state ---- */

struct eng_debug *eng_dbg_new(void)
{
    struct eng_debug *d = calloc(1, sizeof *d);
    if (d) {
        pthread_mutex_init(&d->mu, NULL);
        d->gen = 1;
    }
    return d;
}

static void clear_bps(struct eng_debug *d, const char *path)
{
    int k = 0;
    for (int i = 0; i < d->nbps; i++) {
        if (path && strcmp(d->bps[i].path, path) != 0) {
            d->bps[k++] = d->bps[i];
            continue;
        }
        free(d->bps[i].path);
        free(d->bps[i].cond);
        free(d->bps[i].hitcond);
        free(d->bps[i].logmsg);
    }
    d->nbps = k;
}

static void forget_refs(struct eng_debug *d)
{
    for (int i = 0; i < d->nrefs; i++)
        value_decref(d->refs[i].v);
    d->nrefs = 0;
}

void eng_dbg_free(struct eng_debug *d)
{
    if (!d)
        return;
    clear_bps(d, NULL);
    free(d->bps);
    forget_refs(d);
    free(d->refs);
    free(d->next_path);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

void eng_dbg_forget(eng_session *s)
{
    forget_refs(s->dbg);
    s->dbg->step = ENG_DBG_CONTINUE; /* a step does not carry over into the next cell */
}

void eng_debug_attach(eng_session *s, const eng_dbg_host *host)
{
    struct eng_debug *d = s->dbg;
    pthread_mutex_lock(&d->mu);
    if (host)
        d->host = *host;
    else {
        memset(&d->host, 0, sizeof d->host);
        clear_bps(d, NULL);
    }
    __atomic_add_fetch(&d->gen, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->dbg_active, host != NULL, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&d->mu);
}

static char *dup_opt(const char *t)
{
    return t && *t ? strdup(t) : NULL;
}

int eng_debug_set_breakpoints(eng_session *s, const char *path, const eng_dbg_bp *bps, int n)
{
    struct eng_debug *d = s->dbg;
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    clear_bps(d, path);
    for (int i = 0; i < n; i++) {
        if (d->nbps == d->capbps) {
            int cap = d->capbps ? d->capbps * 2 : 16;
            bpoint *p = realloc(d->bps, sizeof *p * (size_t)cap);
            if (!p) {
                rc = -1;
                break;
            }
            d->bps = p;
            d->capbps = cap;
        }
        bpoint *b = &d->bps[d->nbps];
        b->path = strdup(path);
        if (!b->path) {
            rc = -1;
            break;
        }
        b->line = bps[i].line;
        b->cond = dup_opt(bps[i].condition);
        b->hitcond = dup_opt(bps[i].hit_condition);
        b->logmsg = dup_opt(bps[i].log_message);
        b->hits = 0;
        d->nbps++;
    }
    __atomic_add_fetch(&d->gen, 1, __ATOMIC_SEQ_CST); /* sources look again (has_bp) */
    pthread_mutex_unlock(&d->mu);
    return rc;
}

void eng_debug_stop_on_errors(eng_session *s, int on)
{
    __atomic_store_n(&s->dbg->on_errors, on != 0, __ATOMIC_SEQ_CST);
}

void eng_debug_pause(eng_session *s)
{
    __atomic_store_n(&s->dbg->pause, 1, __ATOMIC_SEQ_CST);
}

void eng_debug_set_next_path(eng_session *s, const char *path)
{
    struct eng_debug *d = s->dbg;
    pthread_mutex_lock(&d->mu);
    free(d->next_path);
    d->next_path = path ? strdup(path) : NULL;
    pthread_mutex_unlock(&d->mu);
}

char *eng_dbg_take_next_path(eng_session *s)
{
    struct eng_debug *d = s->dbg;
    pthread_mutex_lock(&d->mu);
    char *p = d->next_path;
    d->next_path = NULL;
    pthread_mutex_unlock(&d->mu);
    return p;
}

eng_dbg_action eng_dbg_step_mode(eng_session *s)
{
    return s->dbg->step;
}

/* ---- statement lines ---- */

/* the smallest line >= line where a statement under n starts (best: so far) */
static void stmt_lines(const ast *n, int line, int *best)
{
    if (!n)
        return;
    if (n->kind == AST_KERNEL) { /* any line of a kernel's body (the simulator's debugger) */
        int last = n->line;
        for (const char *p = n->str; p && *p; p++)
            last += *p == '\n';
        if (line >= n->line && line <= last && (!*best || line < *best))
            *best = line;
        else if (n->line >= line && (!*best || n->line < *best))
            *best = n->line;
        return;
    }
    if (n->kind != AST_BLOCK && n->line >= line && (!*best || n->line < *best))
        *best = n->line;
    switch (n->kind) {
    case AST_BLOCK:
        for (int i = 0; i < n->nlist; i++)
            stmt_lines(n->list[i], line, best);
        break;
    case AST_IF: stmt_lines(n->b, line, best); stmt_lines(n->c, line, best); break;
    case AST_WHILE: case AST_DO: stmt_lines(n->b, line, best); break;
    case AST_FOR: stmt_lines(n->d, line, best); break;
    case AST_FUNC: stmt_lines(n->a, line, best); break;
    default: break;
    }
}

int eng_debug_statement_line(const char *code, int line)
{
    ast_cell cell;
    eng_error errs[4];
    int best = 0;
    memset(errs, 0, sizeof errs);
    int nerr = ast_parse(code, &cell, errs, 4);
    if (!nerr)
        for (int i = 0; i < cell.nstmts; i++)
            stmt_lines(cell.stmts[i], line, &best);
    if (cell.arena)
        arena_decref(cell.arena);
    return nerr ? -1 : best;
}

/* ---- scopes ---- */

typedef struct lscope {
    const char *names[MAX_SCOPE];
    int slots[MAX_SCOPE];
    ast_type types[MAX_SCOPE];
    int n;
} lscope;

static void add_decl(lscope *l, const ast *decl)
{
    for (int i = 0; i < decl->nlist && l->n < MAX_SCOPE; i++) {
        const ast *v = decl->list[i];
        if (v->res != RES_LOCAL)
            continue; /* a top-level declaration: a global */
        l->names[l->n] = v->str;
        l->slots[l->n] = v->slot;
        l->types[l->n++] = v->type;
    }
}

/* Adds the locals declared before target on the path to it; 1 when target is under n
 * (its declarations kept), 0 when not (those of n dropped). */
static int walk_scope(const ast *n, const ast *target, lscope *l)
{
    int mark = l->n;
    if (!n)
        return 0;
    if (n == target)
        return 1;
    switch (n->kind) {
    case AST_BLOCK:
        for (int i = 0; i < n->nlist; i++) {
            if (walk_scope(n->list[i], target, l))
                return 1;
            if (n->list[i]->kind == AST_DECL)
                add_decl(l, n->list[i]);
        }
        break;
    case AST_IF:
        if (walk_scope(n->b, target, l) || walk_scope(n->c, target, l))
            return 1;
        break;
    case AST_WHILE: case AST_DO:
        if (walk_scope(n->b, target, l))
            return 1;
        break;
    case AST_FOR:
        if (n->a == target)
            return 1;
        if (n->a && n->a->kind == AST_DECL)
            add_decl(l, n->a);
        if (walk_scope(n->d, target, l))
            return 1;
        break;
    default: break;
    }
    l->n = mark;
    return 0;
}

/* the locals in scope in frame rec at its statement */
static void frame_scope(const eng_dbg_frec *f, lscope *l)
{
    l->n = 0;
    if (f->fn) {
        const ast *def = f->fn->def;
        for (int i = 0; i < def->nlist && l->n < MAX_SCOPE; i++) {
            l->names[l->n] = def->list[i]->str;
            l->slots[l->n] = def->list[i]->slot;
            l->types[l->n++] = def->list[i]->type;
        }
        walk_scope(def->a, f->at, l);
        return;
    }
    for (int i = 0; i < f->nstmts; i++)
        if (walk_scope(f->stmts[i], f->at, l))
            return;
    l->n = 0; /* the statement is not in this cell (not known yet): no locals */
}

/* ---- frames ---- */

static int nframes(eng_session *s)
{
    return s->dbg->stopped ? s->dbg->nx + s->depth + 1 : 0;
}

/* frame id -> interpreter depth (>= 0), or -(index + 1) of an extra frame, or INT_MIN */
#define NO_FRAME (-1000000)
static int frame_of(eng_session *s, int id)
{
    if (id >= 1 && id <= s->depth + 1)
        return id - 1;
    if (s->dbg->stopped && id >= s->depth + 2 && id < s->depth + 2 + s->dbg->nx)
        return -(id - s->depth - 2) - 1;
    return NO_FRAME;
}

int eng_debug_stack(eng_session *s, eng_dbg_frame *out, int max)
{
    struct eng_debug *d = s->dbg;
    int k = 0, total = nframes(s);
    for (int j = 0; j < d->nx && d->stopped && k < max; j++, k++) {
        const eng_dbg_xframe *x = &d->x[j];
        out[k].id = s->depth + 2 + j;
        snprintf(out[k].name, sizeof out[k].name, "%s", x->name);
        snprintf(out[k].path, sizeof out[k].path, "%s", x->path);
        out[k].line = x->line;
        out[k].col = x->col > 0 ? x->col : 1;
    }
    for (int depth = s->depth; d->stopped && depth >= 0 && k < max; depth--, k++) {
        const eng_dbg_frec *f = &s->dframes[depth];
        const eng_source *src = f->src;
        out[k].id = depth + 1;
        snprintf(out[k].name, sizeof out[k].name, "%s", f->fn ? f->fn->name : src ? src->name : "<cell>");
        snprintf(out[k].path, sizeof out[k].path, "%s", src && src->path ? src->path : "");
        const ast *at = f->at ? f->at : f->fn ? f->fn->def : NULL;
        out[k].line = at && src ? at->line + src->first_line - 1 : 1;
        out[k].col = at ? at->col : 1;
    }
    return total;
}

/* ---- variables ---- */

static int new_ref(struct eng_debug *d, int kind, int frame, value v)
{
    if (d->nrefs >= MAX_REFS)
        return 0;
    if (d->nrefs == d->caprefs) {
        int cap = d->caprefs ? d->caprefs * 2 : 64;
        dref *p = realloc(d->refs, sizeof *p * (size_t)cap);
        if (!p)
            return 0;
        d->refs = p;
        d->caprefs = cap;
    }
    value_incref(v);
    d->refs[d->nrefs] = (dref){kind, frame, v};
    return ++d->nrefs;
}

int eng_debug_scope(eng_session *s, int frame_id, int globals)
{
    if (globals)
        return new_ref(s->dbg, R_GLOBALS, 0, value_void());
    int f = frame_of(s, frame_id);
    if (f == NO_FRAME || !s->dbg->stopped)
        return 0;
    if (f < 0)
        return new_ref(s->dbg, R_XLOCALS, -f - 1, value_void());
    return new_ref(s->dbg, R_LOCALS, frame_id, value_void());
}

static const char *type_text(value v)
{
    switch (v.type) {
    case VAL_INT: return "int";
    case VAL_FLOAT: return "float";
    case VAL_BOOL: return "bool";
    case VAL_STRING: return "str"; /* the name debug UIs show the text of (JupyterLab) */
    case VAL_TENSOR: return "tensor";
    case VAL_TUPLE: return "tuple";
    case VAL_DTYPE: return "dtype";
    case VAL_DEVICE: return "device";
    case VAL_FUNC: return "function";
    default: return "void";
    }
}

/* one line of at most TEXT_MAX bytes */
static char *one_line(char *t)
{
    if (!t)
        return strdup("?");
    size_t n = strcspn(t, "\n");
    int cut = t[n] != '\0' || n > TEXT_MAX;
    if (n > TEXT_MAX)
        n = TEXT_MAX;
    t[n] = '\0';
    if (cut) {
        char *u = realloc(t, n + 4);
        if (u) {
            strcpy(u + n, "...");
            t = u;
        }
    }
    return t;
}

static int tensor_children(const tensor *t)
{
    return 9 + (t->grad != NULL);
}

static eng_dbg_var make_var(eng_session *s, const char *name, value v)
{
    eng_dbg_var out = {0};
    out.name = strdup(name);
    out.type = strdup(type_text(v));
    if (v.type == VAL_TENSOR) {
        out.value = one_line(tensor_describe(v.as.t));
        out.ref = new_ref(s->dbg, R_TENSOR, 0, v);
        out.nchildren = out.ref ? tensor_children(v.as.t) : 0;
    } else if (v.type == VAL_VOID) {
        out.value = strdup("(not set)");
    } else {
        out.value = one_line(eng_value_text(v, 1));
    }
    return out;
}

static int sink_grow(eng_dbg_varsink *vs)
{
    if (vs->n < vs->cap)
        return 0;
    int cap = vs->cap ? vs->cap * 2 : 32;
    eng_dbg_var *p = realloc(vs->v, sizeof *p * (size_t)cap);
    if (!p)
        return -1;
    vs->v = p;
    vs->cap = cap;
    return 0;
}

void eng_dbg_add_value(eng_dbg_varsink *vs, const char *name, value v)
{
    if (sink_grow(vs) == 0)
        vs->v[vs->n++] = make_var(vs->s, name, v);
}

void eng_dbg_add_text(eng_dbg_varsink *vs, const char *name, const char *type, const char *text)
{
    if (sink_grow(vs) != 0)
        return;
    eng_dbg_var *o = &vs->v[vs->n++];
    memset(o, 0, sizeof *o);
    o->name = strdup(name);
    o->type = strdup(type ? type : "");
    o->value = one_line(strdup(text ? text : ""));
}

static void add_fmt(eng_dbg_varsink *vs, const char *name, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_fmt(eng_dbg_varsink *vs, const char *name, const char *type, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    eng_dbg_add_text(vs, name, type, buf);
}

/* a reduction of t to a number, NAN when it does not apply */
static double stat(const tensor *t, op_id op)
{
    eng_error e = {0};
    double x = NAN;
    tensor *r = tensor_reduce(op, t, TENSOR_ALLDIMS, 0, &e);
    if (r) {
        if (tensor_item(r, &x, &e))
            x = NAN;
        tensor_decref(r);
    }
    return x;
}

static void tensor_vars(eng_session *s, eng_dbg_varsink *vs, value v)
{
    const tensor *t = v.as.t;
    char shape[256];
    int n = snprintf(shape, sizeof shape, "[");
    for (int i = 0; i < t->ndim && n < (int)sizeof shape - 24; i++)
        n += snprintf(shape + n, sizeof shape - (size_t)n, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    snprintf(shape + n, sizeof shape - (size_t)n, "]");
    int64_t numel = tensor_numel(t);
    /* "str", "int", "float", "bool": the types whose value JupyterLab's tree shows */
    eng_dbg_add_text(vs, "shape", "str", shape);
    eng_dbg_add_text(vs, "dtype", "str", tensor_dtype_name(t->dtype));
    eng_dbg_add_text(vs, "device", "str", t->storage->backend->name);
    add_fmt(vs, "numel", "int", "%lld", (long long)numel);
    eng_dbg_add_text(vs, "requires_grad", "bool", t->requires_grad ? "true" : "false");
    int grad = ag_set_grad_mode(0); /* statistics are not recorded for autograd */
    static const struct { const char *name; op_id op; } stats[] = {
        {"min", OP_MIN}, {"max", OP_MAX}, {"mean", OP_MEAN}, {"std", OP_STD}};
    for (size_t i = 0; i < 4; i++) {
        double x = numel > 0 ? stat(t, stats[i].op) : NAN;
        if (isnan(x) && numel > 0 && stats[i].op != OP_MEAN && stats[i].op != OP_STD)
            add_fmt(vs, stats[i].name, "float", "nan");
        else if (numel == 0)
            add_fmt(vs, stats[i].name, "float", "(empty)");
        else
            add_fmt(vs, stats[i].name, "float", "%.6g", x);
    }
    ag_set_grad_mode(grad);
    if (sink_grow(vs) == 0) {
        eng_dbg_var *o = &vs->v[vs->n++];
        int64_t shown = numel < MAX_VALUES ? numel : MAX_VALUES;
        memset(o, 0, sizeof *o);
        o->name = strdup("values");
        o->type = strdup("list");
        o->ref = shown ? new_ref(s->dbg, R_VALUES, 0, v) : 0;
        o->nchildren = o->ref ? (int)shown : 0;
        char *text = one_line(tensor_format(t));
        o->value = text;
    }
    if (t->grad)
        eng_dbg_add_value(vs, "grad", value_tensor(t->grad));
}

/* the i-th element's name: [i] for 1-d, [i, j, ...] otherwise */
static void index_name(const tensor *t, int64_t i, char *buf, size_t n)
{
    int64_t idx[TENSOR_MAXDIM];
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t ext = t->shape[d] > 0 ? t->shape[d] : 1;
        idx[d] = i % ext;
        i /= ext;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && k < n - 24; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)idx[d]);
    snprintf(buf + k, n - k, "]");
}

static void value_vars(eng_dbg_varsink *vs, const tensor *t, int start, int count)
{
    int64_t numel = tensor_numel(t), shown = numel < MAX_VALUES ? numel : MAX_VALUES;
    int64_t end = count > 0 && start + count < shown ? start + count : shown;
    for (int64_t i = start; i < end; i++) {
        char name[128];
        index_name(t, i, name, sizeof name);
        double x = tensor_get_flat(t, i);
        if (tensor_dtype_is_float(t->dtype))
            add_fmt(vs, name, "float", "%.8g", x);
        else
            add_fmt(vs, name, "int", "%lld", (long long)x);
    }
}

int eng_debug_vars(eng_session *s, int ref, int start, int count, eng_dbg_var **out, int *n)
{
    struct eng_debug *d = s->dbg;
    eng_dbg_varsink vs = {s, NULL, 0, 0};
    *out = NULL;
    *n = 0;
    if (ref < 1 || ref > d->nrefs)
        return -1;
    dref r = d->refs[ref - 1];
    if (start < 0)
        start = 0;
    switch (r.kind) {
    case R_GLOBALS:
        for (int i = 0; i < s->nglobals; i++)
            if (s->globals[i].defined)
                eng_dbg_add_value(&vs, s->globals[i].name, s->globals[i].v);
        break;
    case R_LOCALS: {
        int depth = frame_of(s, r.frame);
        if (depth < 0 || !d->stopped)
            return -1;
        lscope *l = malloc(sizeof *l);
        if (!l)
            return -1;
        frame_scope(&s->dframes[depth], l);
        for (int i = 0; i < l->n; i++) {
            int shadowed = 0; /* an inner declaration of the same name hides it */
            for (int j = i + 1; j < l->n && !shadowed; j++)
                shadowed = strcmp(l->names[i], l->names[j]) == 0;
            if (!shadowed)
                eng_dbg_add_value(&vs, l->names[i], s->dframes[depth].fp[l->slots[i]]);
        }
        free(l);
        break;
    }
    case R_XLOCALS:
        if (!d->stopped || r.frame >= d->nx)
            return -1;
        if (d->x[r.frame].locals)
            d->x[r.frame].locals(d->x[r.frame].user, &vs);
        break;
    case R_TENSOR: tensor_vars(s, &vs, r.v); break;
    case R_VALUES: value_vars(&vs, r.v.as.t, start, count); start = 0, count = 0; break;
    default: return -1;
    }
    /* paging over the full list (values page themselves) */
    if (start > 0 || count > 0) {
        int end = count > 0 && start + count < vs.n ? start + count : vs.n;
        int k = 0;
        for (int i = 0; i < vs.n; i++) {
            if (i >= start && i < end)
                vs.v[k++] = vs.v[i];
            else
                eng_debug_vars_free(&vs.v[i], 1);
        }
        vs.n = k;
    }
    *out = vs.v;
    *n = vs.n;
    return 0;
}

void eng_debug_vars_free(eng_dbg_var *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
        free(v[i].type);
    }
}

/* ---- evaluation ---- */

/* Runs code in frame_id's scope (0: globals only); the last expression's value goes to
 * *result (owned, VAL_VOID when none). 0, or 1 with the error's text in err. */
static int run_in_frame(eng_session *s, int frame_id, const char *code, value *result, char *err, size_t errlen)
{
    struct eng_debug *d = s->dbg;
    eng_dbg_scope sc = {0};
    lscope *l = calloc(1, sizeof *l);
    eng_error qe = {0};
    int rc = 1, depth = frame_id ? frame_of(s, frame_id) : NO_FRAME;
    *result = value_void();
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    if (depth >= 0) {
        const eng_dbg_frec *f = &s->dframes[depth];
        frame_scope(f, l);
        sc.fp = f->fp;
        sc.base = (int)(s->stack + s->stack_used - f->fp);
    } else {
        sc.fp = s->stack + s->stack_used;
        sc.base = 0;
    }
    sc.n = l->n;
    sc.names = l->names;
    sc.slots = l->slots;
    sc.types = l->types;
    sc.keep_result = 1;
    eng_dbg_scope *saved = s->eval_scope;
    eng_ctx *prev = eng_ctx_enter(&s->ctx);
    d->busy++;
    s->eval_scope = &sc;
    eng_compiled *c = eng_compile(s, code, "<debug>", 1, &qe);
    if (c) {
        rc = eng_run_compiled(s, c, &qe);
        eng_compiled_free(c);
    }
    s->eval_scope = saved;
    d->busy--;
    if (!s->running && !d->stopped) /* no cell runs: an interrupt of this evaluation ends here */
        eng_ctx_flag_set(&s->ctx.interrupt, 0);
    eng_ctx_leave(prev);
    if (rc) {
        snprintf(err, errlen, "%s", qe.msg[0] ? qe.msg : "the evaluation failed");
        value_decref(sc.result);
    } else if (sc.has_result)
        *result = sc.result;
    free(l);
    return rc;
}

int eng_debug_evaluate(eng_session *s, int frame_id, const char *code, eng_dbg_var *out, char *err, size_t errlen)
{
    value v;
    memset(out, 0, sizeof *out);
    if (run_in_frame(s, frame_id, code, &v, err, errlen))
        return 1;
    if (v.type == VAL_VOID) {
        out->name = strdup("");
        out->value = strdup("");
        out->type = strdup("void");
    } else
        *out = make_var(s, "", v);
    value_decref(v);
    return 0;
}

typedef struct rich_ctx {
    void (*show)(void *user, const eng_bundle *b);
    void *user;
} rich_ctx;

static void rich_result(void *user, const eng_bundle *b)
{
    rich_ctx *r = user;
    r->show(r->user, b);
}

int eng_debug_rich(eng_session *s, int frame_id, const char *code, void (*show)(void *user, const eng_bundle *b),
                   void *user, char *err, size_t errlen)
{
    value v;
    if (run_in_frame(s, frame_id, code, &v, err, errlen))
        return 1;
    rich_ctx r = {show, user};
    eng_sink sink = {0};
    sink.user = &r;
    sink.result = rich_result;
    const eng_sink *saved = s->sink;
    eng_error e = {0};
    s->sink = &sink; /* eng_show hands the bundle to the sink's result */
    int rc = eng_show(s, v, 1, NULL, 0, &e);
    s->sink = saved;
    value_decref(v);
    if (rc)
        snprintf(err, errlen, "%s", e.msg);
    return rc ? 1 : 0;
}

/* ---- breakpoints and stops ---- */

/* does the hit condition allow a stop at hit number hits? */
static int hit_ok(const char *hc, long hits)
{
    while (*hc == ' ')
        hc++;
    char op[3] = {0};
    int k = 0;
    while (k < 2 && strchr("<>=%!", hc[k])) {
        op[k] = hc[k];
        k++;
    }
    long n = strtol(hc + k, NULL, 10);
    if (!k || !strcmp(op, "==") || !strcmp(op, "="))
        return hits == n;
    if (!strcmp(op, ">="))
        return hits >= n;
    if (!strcmp(op, ">"))
        return hits > n;
    if (!strcmp(op, "<="))
        return hits <= n;
    if (!strcmp(op, "<"))
        return hits < n;
    if (!strcmp(op, "!="))
        return hits != n;
    if (!strcmp(op, "%"))
        return n > 0 && hits % n == 0;
    return 1;
}

static int truthy_value(value v)
{
    switch (v.type) {
    case VAL_INT: case VAL_BOOL: return v.as.i != 0;
    case VAL_FLOAT: return v.as.f != 0;
    case VAL_TENSOR: {
        double x = 0;
        eng_error e = {0};
        return tensor_numel(v.as.t) == 1 && !tensor_item(v.as.t, &x, &e) && x != 0;
    }
    default: return 0;
    }
}

/* A log point: msg with each {expression} replaced by its value in the innermost
 * frame (an error's text in its place), written to the cell's stdout as a line. */
static void log_point(eng_session *s, const char *msg)
{
    size_t cap = strlen(msg) + 64, len = 0;
    char *out = malloc(cap);
    for (const char *p = msg; out && *p;) {
        char piece[600];
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close && (size_t)(close - p) < sizeof piece) {
            value v;
            char err[300];
            memcpy(piece, p + 1, (size_t)(close - p - 1));
            piece[close - p - 1] = '\0';
            if (run_in_frame(s, s->depth + 1, piece, &v, err, sizeof err))
                snprintf(piece, sizeof piece, "<%s>", err);
            else {
                char *t = v.type == VAL_TENSOR ? tensor_describe(v.as.t) : eng_value_text(v, 0);
                snprintf(piece, sizeof piece, "%s", t ? t : "?");
                free(t);
                value_decref(v);
            }
            p = close + 1;
        } else {
            piece[0] = *p++;
            piece[1] = '\0';
        }
        size_t k = strlen(piece);
        if (len + k + 2 > cap) {
            char *o = realloc(out, (cap = (len + k + 2) * 2));
            if (!o)
                break;
            out = o;
        }
        memcpy(out + len, piece, k);
        len += k;
    }
    if (out) {
        out[len++] = '\n';
        eng_stream(s, 1, out, len);
        free(out);
    }
}

/* 1: stop at path:line (its hit count is counted; its condition evaluated in the
 * innermost frame; a log point prints and never stops); desc receives why */
static int bp_check(eng_session *s, const char *path, int line, char *desc, size_t n)
{
    struct eng_debug *d = s->dbg;
    char *cond = NULL, *logmsg = NULL;
    int stop = 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->nbps; i++) {
        bpoint *b = &d->bps[i];
        if (b->line != line || strcmp(b->path, path) != 0)
            continue;
        b->hits++;
        if (b->hitcond && !hit_ok(b->hitcond, b->hits))
            continue;
        stop = 1;
        snprintf(desc, n, "breakpoint at line %d (hit %ld)", line, b->hits);
        if (b->cond)
            cond = strdup(b->cond);
        if (b->logmsg)
            logmsg = strdup(b->logmsg);
        break;
    }
    pthread_mutex_unlock(&d->mu);
    if (stop && cond) {
        value v;
        char err[256];
        if (run_in_frame(s, s->depth + 1, cond, &v, err, sizeof err))
            snprintf(desc, n, "the breakpoint's condition `%s` failed: %s", cond, err);
        else {
            stop = truthy_value(v);
            value_decref(v);
        }
        free(cond);
    }
    if (logmsg) {
        if (stop) {
            d->busy++;
            log_point(s, logmsg);
            d->busy--;
        }
        free(logmsg);
        stop = 0;
    }
    return stop;
}

/* does any breakpoint name src's path? Found again only when the breakpoints change */
static int has_bp(struct eng_debug *d, eng_source *src)
{
    int gen = __atomic_load_n(&d->gen, __ATOMIC_ACQUIRE);
    if (src->dbg_gen != gen) {
        pthread_mutex_lock(&d->mu);
        src->dbg_has_bp = 0;
        for (int i = 0; i < d->nbps && !src->dbg_has_bp; i++)
            src->dbg_has_bp = strcmp(d->bps[i].path, src->path) == 0;
        src->dbg_gen = gen;
        pthread_mutex_unlock(&d->mu);
    }
    return src->dbg_has_bp;
}

int eng_dbg_breakpoint_at(eng_session *s, const char *path, int line)
{
    char desc[300];
    return path && *path && !s->dbg->busy && bp_check(s, path, line, desc, sizeof desc);
}

eng_dbg_action eng_dbg_stop(eng_session *s, const char *reason, const char *description, const eng_dbg_xframe *frames,
                            int nx)
{
    struct eng_debug *d = s->dbg;
    pthread_mutex_lock(&d->mu);
    eng_dbg_host host = d->host;
    pthread_mutex_unlock(&d->mu);
    if (!host.stopped || d->stopped)
        return ENG_DBG_CONTINUE;
    d->stopped = 1;
    d->x = frames;
    d->nx = nx;
    d->busy++;
    eng_flush(s); /* what the cell printed so far shows before the stop */
    eng_dbg_action a = host.stopped(host.user, reason, description ? description : reason);
    forget_refs(d);
    d->busy--;
    d->stopped = 0;
    d->x = NULL;
    d->nx = 0;
    d->step = a == ENG_DBG_ABORT ? ENG_DBG_CONTINUE : a;
    d->step_depth = s->depth;
    return a;
}

int eng_dbg_statement(eng_session *s, eng_source *src, ast *n, eng_error *err)
{
    struct eng_debug *d = s->dbg;
    if (d->busy)
        return 0;
    s->dframes[s->depth].at = n;
    int line = n->line + src->first_line - 1, depth = s->depth;
    const char *reason = NULL;
    char desc[300] = "";
    if (__atomic_load_n(&d->pause, __ATOMIC_RELAXED) && __atomic_exchange_n(&d->pause, 0, __ATOMIC_SEQ_CST)) {
        reason = "pause";
        snprintf(desc, sizeof desc, "paused at line %d", line);
    } else if (d->step != ENG_DBG_CONTINUE) {
        /* a later statement on the line the step started from is part of that line */
        int same_line = depth == d->step_depth && src == d->step_src && line == d->step_line && n->col > d->step_col;
        int ok = d->step == ENG_DBG_STEP_IN || (d->step == ENG_DBG_NEXT && depth <= d->step_depth) ||
                 (d->step == ENG_DBG_STEP_OUT && depth < d->step_depth);
        if (ok && !same_line) {
            reason = "step";
            snprintf(desc, sizeof desc, "step to line %d", line);
        }
    }
    if (!reason && src->path && has_bp(d, src) && bp_check(s, src->path, line, desc, sizeof desc))
        reason = "breakpoint";
    if (!reason)
        return 0;
    eng_dbg_action a = eng_dbg_stop(s, reason, desc, NULL, 0);
    d->step_src = src;
    d->step_line = line;
    d->step_col = n->col;
    if (a == ENG_DBG_ABORT)
        return eng_fail(err, ERR_INTERRUPT, "interrupted");
    return 0;
}

void eng_dbg_error(eng_session *s, eng_source *src, ast *n, const eng_error *err)
{
    struct eng_debug *d = s->dbg;
    char desc[sizeof err->msg + 64];
    if (d->busy || d->stopped || !__atomic_load_n(&d->on_errors, __ATOMIC_RELAXED) || err->kind == ERR_INTERRUPT)
        return;
    snprintf(desc, sizeof desc, "%s: %s (line %d)", eng_errkind_name(err->kind), err->msg,
             n->line + src->first_line - 1);
    if (!s->dframes[s->depth].at) /* the frame's position: the statement being run */
        s->dframes[s->depth].at = n;
    eng_dbg_stop(s, "exception", desc, NULL, 0);
    d->step = ENG_DBG_CONTINUE; /* the error unwinds: nothing to step to */
}

/* ---- for the kernel debugger (engine/lang/kdebug.c) ---- */

int eng_dbg_attached(eng_session *s)
{
    struct eng_debug *d = s->dbg;
    pthread_mutex_lock(&d->mu);
    int a = d->host.stopped != NULL;
    pthread_mutex_unlock(&d->mu);
    return a;
}

int eng_dbg_breakpoints_in(eng_session *s, const char *path, int *lines, char (*conds)[160], int max)
{
    struct eng_debug *d = s->dbg;
    int n = 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->nbps && n < max; i++) {
        if (strcmp(d->bps[i].path, path) != 0)
            continue;
        lines[n] = d->bps[i].line;
        snprintf(conds[n], sizeof conds[n], "%s", d->bps[i].cond ? d->bps[i].cond : "");
        n++;
    }
    pthread_mutex_unlock(&d->mu);
    return n;
}

void eng_dbg_set_step(eng_session *s, eng_dbg_action a)
{
    s->dbg->step = a == ENG_DBG_ABORT ? ENG_DBG_CONTINUE : a;
    s->dbg->step_depth = s->depth;
}
