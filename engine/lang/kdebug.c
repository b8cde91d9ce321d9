/* kdebug.c — following one thread of a kernel on the CUDA simulator (engine/lang/kdebug.h):
 * %debug_thread chooses the thread, %ktrace prints the lines it runs with its locals,
 * and the on_stop the simulator calls at each stop of that thread. While tracing (or
 * while the debugger has breakpoints in kernel code) kernels are compiled as debug
 * builds (kdriver.h: compile with check 2). */
#include "engine/lang/kdebug.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lang/interp.h"
#include "engine/lang/debug.h"
#include "engine/tensor/tensor.h"

/* a cell's name and its debugger path */
typedef struct eng_kcellpath {
    char *cell, *path;
} eng_kcellpath;

int eng_kdebug_active(const eng_ktable *t) { return t && (t->kdbg_trace > 0 || t->kdbg_bps); }

static int trace_stop(eng_kdebug *d, const char *kname, const eng_kstop *s);
/* one term of a kernel breakpoint's condition on a local: name op value */
typedef struct kterm {
    char name[40];
    char op[3];
    double v;
} kterm;
static int parse_cond(const char *c, unsigned block[3], unsigned thread[3], int *chosen, kterm *terms, int *nterms,
                      int max, char *why, size_t n);
static int cond_holds(const char *cond, const eng_kstop *s, char *why, size_t n);
static int dap_stop(eng_kdebug *d, const char *kname, const eng_kstop *s);

void eng_kdebug_free(eng_ktable *t)
{
    for (int i = 0; i < t->kdbg_npaths; i++) {
        free(t->kdbg_paths[i].cell);
        free(t->kdbg_paths[i].path);
    }
    free(t->kdbg_paths);
    t->kdbg_paths = NULL;
    t->kdbg_npaths = 0;
}

static void note_cell(eng_ktable *t, const char *cell, const char *path)
{
    if (!cell)
        return;
    for (int i = 0; i < t->kdbg_npaths; i++)
        if (!strcmp(t->kdbg_paths[i].cell, cell)) {
            char *p = path ? strdup(path) : NULL;
            free(t->kdbg_paths[i].path);
            t->kdbg_paths[i].path = p;
            return;
        }
    if (!path)
        return;
    eng_kcellpath *np = realloc(t->kdbg_paths, (size_t)(t->kdbg_npaths + 1) * sizeof *np);
    if (!np)
        return; /* out of memory: that cell's kernels do not stop (nothing else changes) */
    t->kdbg_paths = np;
    char *c = strdup(cell), *p = strdup(path);
    if (!c || !p) {
        free(c);
        free(p);
        return;
    }
    np[t->kdbg_npaths].cell = c;
    np[t->kdbg_npaths].path = p;
    t->kdbg_npaths++;
}

void eng_kdebug_defined(eng_ktable *t, const char *cell)
{
    eng_session *s = t->kdbg_session;
    if (!s || !s->dframes || !cell)
        return;
    const eng_source *src = s->dframes[s->depth].src; /* the source running now */
    if (src && src->name && !strcmp(src->name, cell))
        note_cell(t, cell, src->path);
}

static const char *cell_path(const eng_ktable *t, const char *cell)
{
    for (int i = 0; i < t->kdbg_npaths; i++)
        if (!strcmp(t->kdbg_paths[i].cell, cell))
            return t->kdbg_paths[i].path;
    return NULL;
}

/* lines of a kernel's source (its #define lines included) */
static int source_lines(const char *src)
{
    int n = 1;
    for (const char *p = src; *p; p++)
        n += *p == '\n' && p[1];
    return n;
}

/* t->kdbg.bp: the debugger's breakpoints on lines of kernel code, in the cells that
 * defined kernels, with their conditions; choose: a condition naming the thread sets
 * t->kdbg's thread (1 returned when one did) */
static int collect_bps(eng_ktable *t, eng_session *s, int choose)
{
    t->kdbg.nbp = 0;
    int chosen = !choose;
    for (int c = 0; c < t->kdbg_npaths; c++) {
        int lines[ENG_KBPS];
        char conds[ENG_KBPS][160];
        int n = eng_dbg_breakpoints_in(s, t->kdbg_paths[c].path, lines, conds, ENG_KBPS);
        for (int i = 0; i < n && t->kdbg.nbp < ENG_KBPS; i++) {
            int in_kernel = 0;
            for (int k = 0; k < t->n && !in_kernel; k++) {
                const eng_kernel *kk = t->items[k];
                in_kernel = !strcmp(kk->cell, t->kdbg_paths[c].cell) && lines[i] >= kk->line &&
                            lines[i] < kk->line + source_lines(kk->source);
            }
            if (!in_kernel)
                continue;
            eng_kbp *b = &t->kdbg.bp[t->kdbg.nbp++];
            snprintf(b->file, sizeof b->file, "%s", t->kdbg_paths[c].cell);
            b->line = lines[i];
            snprintf(t->kdbg_cond[t->kdbg.nbp - 1], sizeof t->kdbg_cond[0], "%.159s", conds[i]);
            /* a condition naming the thread chooses it */
            unsigned bl[3] = {0, 0, 0}, th[3] = {0, 0, 0};
            char why[300];
            kterm terms[16];
            int nterms, has_thread = 0;
            if (!chosen && conds[i][0] &&
                parse_cond(conds[i], bl, th, &has_thread, terms, &nterms, 16, why, sizeof why) == 0 && has_thread) {
                memcpy(t->kdbg.block, bl, sizeof bl);
                memcpy(t->kdbg.thread, th, sizeof th);
                chosen = 1;
            }
        }
    }
    return choose && chosen;
}

void eng_kdebug_prepare(eng_ktable *t, const value *args, int argc)
{
    eng_session *s = t->kdbg_session;
    t->kdbg_args = args;
    t->kdbg_nargs = argc;
    t->kdbg_bps = 0;
    t->kdbg_dap = 0;
    t->kdbg.nbp = 0;
    memcpy(t->kdbg.block, t->kdbg_sel[0], sizeof t->kdbg.block);
    memcpy(t->kdbg.thread, t->kdbg_sel[1], sizeof t->kdbg.thread);
    t->kdbg.on_stop = t->kdbg_trace ? trace_stop : NULL;
    t->kdbg.stop_first = t->kdbg_trace > 0;
    t->kdbg.ctx = t;
    if (!s || !eng_dbg_attached(s))
        return;
    int chosen = collect_bps(t, s, 1);
    int step_in = eng_dbg_step_mode(s) == ENG_DBG_STEP_IN; /* step in at the launch: its first line */
    if (!t->kdbg.nbp && !step_in)
        return;
    if (!chosen) { /* %debug_thread's, or thread 0 of block 0 */
        memcpy(t->kdbg.block, t->kdbg_sel[0], sizeof t->kdbg.block);
        memcpy(t->kdbg.thread, t->kdbg_sel[1], sizeof t->kdbg.thread);
    }
    t->kdbg_bps = 1;
    t->kdbg_dap = 1;
    t->kdbg.stop_first = step_in;
    t->kdbg.on_stop = dap_stop;
}

static const char *skip_ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* "a,b,c" into v (missing ones 0); the end, or NULL */
static const char *parse_triple(const char *p, unsigned v[3])
{
    v[0] = v[1] = v[2] = 0;
    for (int i = 0; i < 3; i++) {
        p = skip_ws(p);
        if (!isdigit((unsigned char)*p))
            return NULL;
        char *e;
        unsigned long x = strtoul(p, &e, 10);
        if (x > 0x7fffffffUL)
            return NULL;
        v[i] = (unsigned)x;
        p = skip_ws(e);
        if (*p != ',')
            return p;
        p++;
    }
    return NULL; /* a fourth number */
}


/* "t1 && t2 ...": blockIdx.c == N / threadIdx.c == N terms into block/thread (*chosen
 * set), NAME OP NUMBER terms (== != < <= > >=) into terms; -1 with why */
static int parse_cond(const char *c, unsigned block[3], unsigned thread[3], int *chosen, kterm *terms, int *nterms,
                      int max, char *why, size_t n)
{
    const char *p = skip_ws(c);
    *nterms = 0;
    *chosen = 0;
    while (*p) {
        const char *t0 = p;
        char name[40];
        int k = 0;
        while ((isalnum((unsigned char)*p) || *p == '_' || *p == '.') && k < 39)
            name[k++] = *p++;
        name[k] = '\0';
        p = skip_ws(p);
        char op[3] = "";
        if (!strncmp(p, "==", 2) || !strncmp(p, "!=", 2) || !strncmp(p, "<=", 2) || !strncmp(p, ">=", 2)) {
            memcpy(op, p, 2);
            op[2] = '\0';
            p += 2;
        } else if (*p == '<' || *p == '>') {
            op[0] = *p++;
            op[1] = '\0';
        }
        p = skip_ws(p);
        char *e;
        double v = strtod(p, &e);
        if (!k || !op[0] || e == p || isdigit((unsigned char)name[0])) {
            snprintf(why, n, "cannot read '%.*s' in '%s': a kernel's condition is terms like blockIdx.x == 3, "
                     "threadIdx.y == 2 (they choose the thread) or i > 5 (a local or parameter against a number) "
                     "joined by &&", (int)strcspn(t0, "&"), t0, c);
            return -1;
        }
        p = skip_ws(e);
        int is_b = !strncmp(name, "blockIdx.", 9), is_t = !strncmp(name, "threadIdx.", 10);
        if (is_b || is_t) {
            const char *comp = name + (is_b ? 9 : 10);
            if (comp[1] || comp[0] < 'x' || comp[0] > 'z') {
                snprintf(why, n, "in '%s': %s is not a component (%s.x, .y or .z)", c, name, is_b ? "blockIdx" : "threadIdx");
                return -1;
            }
            if (strcmp(op, "==") != 0 || v < 0 || v != (double)(unsigned)v) {
                snprintf(why, n, "in '%s': %s takes == and a whole number (it chooses the thread)", c, name);
                return -1;
            }
            (is_b ? block : thread)[comp[0] - 'x'] = (unsigned)v;
            *chosen = 1;
        } else if (strchr(name, '.')) {
            snprintf(why, n, "in '%s': '%s' is not a local or parameter of the kernel", c, name);
            return -1;
        } else if (*nterms < max) {
            kterm *t = &terms[(*nterms)++];
            snprintf(t->name, sizeof t->name, "%s", name);
            snprintf(t->op, sizeof t->op, "%s", op);
            t->v = v;
        }
        if (!*p)
            return 0;
        if (strncmp(p, "&&", 2) != 0) {
            snprintf(why, n, "in '%s': terms are joined by && only", c);
            return -1;
        }
        p = skip_ws(p + 2);
    }
    snprintf(why, n, "the condition '%s' is empty", c);
    return -1;
}

int eng_kdebug_parse_thread(const char *spec, unsigned block[3], unsigned thread[3], char *why, size_t n)
{
    const char *p = skip_ws(spec);
    memset(block, 0, 3 * sizeof *block);
    memset(thread, 0, 3 * sizeof *thread);
    if (isdigit((unsigned char)*p)) { /* bx,by,bz tx,ty,tz */
        p = parse_triple(p, block);
        if (p && *skip_ws(p))
            p = parse_triple(p, thread);
        if (!p || *skip_ws(p))
            goto usage;
        return 0;
    }
    kterm terms[8];
    int nterms, chosen;
    if (parse_cond(p, block, thread, &chosen, terms, &nterms, 8, why, n) < 0) {
        if (!strncmp(why, "cannot read", 11)) /* not a condition at all: say what %debug_thread takes */
            goto usage;
        return -1;
    }
    if (nterms) {
        snprintf(why, n, "'%s': %%debug_thread takes terms blockIdx.x == N or threadIdx.y == N joined by && "
                 "(a component it does not name is 0)", spec);
        return -1;
    }
    return 0;
usage:
    snprintf(why, n, "'%s' is not a block and a thread: write %%debug_thread bx,by,bz tx,ty,tz "
             "(e.g. 0 7 or 1,0,0 7,0,0) or a condition like blockIdx.x == 3 && threadIdx.x == 7", spec);
    return -1;
}

/* is the condition's part on locals true at this stop? 1 yes, 0 no, -1 (why) when it
 * cannot be told */
static int cond_holds(const char *cond, const eng_kstop *s, char *why, size_t n)
{
    unsigned b[3], t[3];
    kterm terms[16];
    int nterms, chosen;
    if (parse_cond(cond, b, t, &chosen, terms, &nterms, 16, why, n) < 0)
        return -1;
    for (int i = 0; i < nterms; i++) {
        const eng_kvar *v = NULL;
        for (int j = s->nvars - 1; j >= 0 && !v; j--)
            if (!strcmp(s->vars[j].name, terms[i].name))
                v = &s->vars[j];
        if (!v) {
            snprintf(why, n, "'%.39s' is not in scope at this line", terms[i].name);
            return -1;
        }
        char *e;
        double x = !strcmp(v->value, "true") ? 1 : !strcmp(v->value, "false") ? 0 : strtod(v->value, &e);
        if (strcmp(v->value, "true") && strcmp(v->value, "false") && (e == v->value || *e)) {
            snprintf(why, n, "'%.39s' is not a number (%.39s)", terms[i].name, v->type);
            return -1;
        }
        const char *op = terms[i].op;
        double y = terms[i].v;
        int ok = !strcmp(op, "==") ? x == y : !strcmp(op, "!=") ? x != y : !strcmp(op, "<") ? x < y
               : !strcmp(op, "<=") ? x <= y : !strcmp(op, ">") ? x > y : x >= y;
        if (!ok)
            return 0;
    }
    return 1;
}

void eng_kdebug_var_text(const eng_ktable *t, const char *kname, const eng_kvar *v, char *out, size_t n)
{
    if (v->arg >= 0) {
        eng_kernel *k = eng_kernel_find(t, kname, (int)strlen(kname));
        const char *pname = k && v->arg < k->nparams && k->params[v->arg].name[0] ? k->params[v->arg].name : NULL;
        char at[120];
        if (pname)
            snprintf(at, sizeof at, "&%.60s[%lld]", pname, v->elem);
        else
            snprintf(at, sizeof at, "&(argument %d)[%lld]", v->arg + 1, v->elem);
        long long es = k && v->arg < k->nparams ? (long long)eng_ctype_size(k->params[v->arg].ctype) : 0;
        if (v->outside && es > 0 && t->kdbg_args && v->arg < t->kdbg_nargs &&
            t->kdbg_args[v->arg].type == VAL_TENSOR)
            snprintf(out, n, "%s (outside it: %lld elements)", at, (long long)tensor_numel(t->kdbg_args[v->arg].as.t));
        else if (v->outside)
            snprintf(out, n, "%s (outside it)", at);
        else
            snprintf(out, n, "%s", at);
        return;
    }
    if (strchr(v->type, '*') && strcmp(v->value, "(nil)") != 0) {
        snprintf(out, n, "(a pointer outside the arguments)");
        return;
    }
    snprintf(out, n, "%s", !strcmp(v->value, "(nil)") ? "NULL" : v->value);
}

/* %ktrace's on_stop: one line per stop, then on to the next line */
static int trace_stop(eng_kdebug *d, const char *kname, const eng_kstop *s)
{
    eng_ktable *t = d->ctx;
    eng_session *ses = t->kdbg_session;
    if (t->kdbg_count >= t->kdbg_trace) {
        return ENG_KCONTINUE;
    }
    char buf[4096];
    size_t len = 0;
    if (t->kdbg_count == 0)
        len += (size_t)snprintf(buf, sizeof buf, "%s: thread (%u,%u,%u) of block (%u,%u,%u)\n", kname, s->thread[0],
                                s->thread[1], s->thread[2], s->block[0], s->block[1], s->block[2]);
    const eng_kframe *f = &s->frames[0];
    len += (size_t)snprintf(buf + len, sizeof buf - len, "  %s:%d%s%s%s", f->file, f->line,
                            s->nframes > 1 ? " in " : "", s->nframes > 1 ? f->func : "", s->nframes > 1 ? ":" : "");
    for (int i = 0; i < s->nvars && len + 200 < sizeof buf; i++) {
        char val[128];
        eng_kdebug_var_text(t, kname, &s->vars[i], val, sizeof val);
        len += (size_t)snprintf(buf + len, sizeof buf - len, " %s=%s", s->vars[i].name, val);
    }
    t->kdbg_count++;
    if (t->kdbg_count == t->kdbg_trace && len + 80 < sizeof buf)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "\n  ... (%%ktrace stops after %d lines)", t->kdbg_trace);
    buf[len++] = '\n';
    eng_stream(ses, 1, buf, len);
    return t->kdbg_count >= t->kdbg_trace ? ENG_KCONTINUE : ENG_KSTEP_IN;
}

void eng_kdebug_after(eng_ktable *t, const char *kname, const unsigned grid[3], const unsigned block[3])
{
    if (!t->kdbg_trace || t->kdbg_dap || t->kdbg_count)
        return;
    const unsigned *b = t->kdbg.block, *th = t->kdbg.thread;
    if (b[0] < grid[0] && b[1] < grid[1] && b[2] < grid[2] && th[0] < block[0] && th[1] < block[1] &&
        th[2] < block[2])
        return;
    char buf[300];
    int n = snprintf(buf, sizeof buf, "%.64s: thread (%u,%u,%u) of block (%u,%u,%u) is not in this launch (grid "
                     "%ux%ux%u, blocks of %ux%ux%u): no lines\n", kname, th[0], th[1], th[2], b[0], b[1], b[2],
                     grid[0], grid[1], grid[2], block[0], block[1], block[2]);
    eng_stream(t->kdbg_session, 1, buf, (size_t)n);
}

static void describe_thread(eng_ktable *t, eng_session *s)
{
    char buf[200];
    int n = snprintf(buf, sizeof buf, "Kernel debugging follows thread (%u,%u,%u) of block (%u,%u,%u)%s\n",
                     t->kdbg_sel[1][0], t->kdbg_sel[1][1], t->kdbg_sel[1][2], t->kdbg_sel[0][0], t->kdbg_sel[0][1],
                     t->kdbg_sel[0][2], t->kdbg_thread_set ? "" : " (the default; %debug_thread chooses another)");
    eng_stream(s, 1, buf, (size_t)n);
}

/* the magic's argument without trailing blanks */
static void trimmed(const char *rest, char *out, size_t n)
{
    snprintf(out, n, "%s", skip_ws(rest));
    size_t l = strlen(out);
    while (l && isspace((unsigned char)out[l - 1]))
        out[--l] = '\0';
}

int eng_kdebug_magic_thread(eng_ktable *t, void *session, const char *line, eng_error *err)
{
    char rest[400];
    trimmed(line, rest, sizeof rest);
    if (!strcmp(rest, "off")) {
        memset(t->kdbg_sel, 0, sizeof t->kdbg_sel);
        t->kdbg_thread_set = 0;
    } else if (*rest) {
        char why[400];
        unsigned b[3], th[3];
        if (eng_kdebug_parse_thread(rest, b, th, why, sizeof why) < 0)
            return eng_fail(err, ERR_VALUE, "%%debug_thread: %s", why);
        memcpy(t->kdbg_sel[0], b, sizeof b);
        memcpy(t->kdbg_sel[1], th, sizeof th);
        t->kdbg_thread_set = 1;
    }
    describe_thread(t, session);
    return 0;
}

int eng_kdebug_magic_trace(eng_ktable *t, void *session, const char *line, eng_error *err)
{
    char rest[100];
    trimmed(line, rest, sizeof rest);
    eng_session *s = session;
    if (!strcmp(rest, "off")) {
        t->kdbg_trace = 0;
        t->kdbg.on_stop = NULL;
        t->kdbg.stop_first = 0;
        eng_stream(s, 1, "Kernel trace off\n", 17);
        return 0;
    }
    long n = 100;
    if (*rest) {
        char *e;
        n = strtol(rest, &e, 10);
        if (e == rest || *skip_ws(e) || n <= 0 || n > 100000)
            return eng_fail(err, ERR_VALUE, "%%ktrace takes a number of lines (1 to 100000) or off, got '%s'", rest);
    }
    t->kdbg_trace = (int)n;
    t->kdbg.on_stop = trace_stop;
    t->kdbg.ctx = t;
    t->kdbg.stop_first = 1;
    t->kdbg_session = s;
    char buf[300];
    int k = snprintf(buf, sizeof buf, "Kernel trace on: each launch prints the first %ld lines that thread (%u,%u,%u) "
                     "of block (%u,%u,%u) runs%s\n", n, t->kdbg_sel[1][0], t->kdbg_sel[1][1], t->kdbg_sel[1][2],
                     t->kdbg_sel[0][0], t->kdbg_sel[0][1], t->kdbg_sel[0][2],
                     t->kdbg_thread_set ? "" : " (the default; %debug_thread chooses another)");
    eng_stream(s, 1, buf, (size_t)k);
    return 0;
}

/* ---- stops in the debugger (the Jupyter debug protocol, engine/lang/debug.h) ---- */

typedef struct dap_ctx {
    eng_ktable *t;
    const char *kname;
    const eng_kstop *stop;
    tensor *live[64];           /* the pointer arguments as they are now (copies, made on demand) */
} dap_ctx;

/* pointer argument i's current contents as a tensor shaped like the argument (made at
 * the first look, for this stop only); NULL when it cannot be made */
static tensor *live_arg(dap_ctx *c, int i)
{
    const eng_kstop *s = c->stop;
    eng_ktable *t = c->t;
    if (c->live[i] || i >= s->nargs || i >= t->kdbg_nargs || !s->arg_data[i])
        return c->live[i];
    value a = t->kdbg_args[i];
    if (a.type != VAL_TENSOR)
        return NULL;
    const tensor *x = a.as.t;
    size_t nb = (size_t)tensor_numel(x) * tensor_dtype_size(x->dtype);
    if (nb != s->arg_bytes[i])
        return NULL;
    eng_error e = {0};
    tensor *copy = tensor_clone(x, &e); /* on x's backend: host memory (the simulator's) */
    if (copy)
        memcpy(tensor_data_ptr(copy), s->arg_data[i], nb);
    return c->live[i] = copy;
}

/* one kernel frame of a stop, for its Locals provider */
typedef struct dap_frame {
    dap_ctx *c;
    int i;                      /* 0 innermost */
} dap_frame;

/* a kernel frame's Locals: threadIdx/blockIdx/blockDim/gridDim, then the parameters and
 * locals (in the kernel's own frame the pointer parameters as tensors of their current
 * contents; other pointers as &arg[i]); a caller's as at its call */
static void dap_locals(void *user, eng_dbg_varsink *out)
{
    dap_frame *f = user;
    dap_ctx *c = f->c;
    const eng_kstop *s = c->stop;
    char v[160];
    snprintf(v, sizeof v, "(%u, %u, %u)", s->thread[0], s->thread[1], s->thread[2]);
    eng_dbg_add_text(out, "threadIdx", "uint3", v);
    snprintf(v, sizeof v, "(%u, %u, %u)", s->block[0], s->block[1], s->block[2]);
    eng_dbg_add_text(out, "blockIdx", "uint3", v);
    snprintf(v, sizeof v, "(%u, %u, %u)", s->block_dim[0], s->block_dim[1], s->block_dim[2]);
    eng_dbg_add_text(out, "blockDim", "dim3", v);
    snprintf(v, sizeof v, "(%u, %u, %u)", s->grid_dim[0], s->grid_dim[1], s->grid_dim[2]);
    eng_dbg_add_text(out, "gridDim", "dim3", v);
    const eng_kvar *vars = f->i == 0 ? s->vars : f->i <= ENG_KSTOP_CALLERS ? s->cvars[f->i - 1] : NULL;
    int n = f->i == 0 ? s->nvars : f->i <= ENG_KSTOP_CALLERS ? s->ncvars[f->i - 1] : 0;
    if (!vars) {
        eng_dbg_add_text(out, "(locals)", "", "not kept this far from the innermost frame");
        return;
    }
    eng_kernel *k = eng_kernel_find(c->t, c->kname, (int)strlen(c->kname));
    int kernel_frame = f->i == s->nframes - 1;
    for (int i = 0; i < n; i++) {
        const eng_kvar *x = &vars[i];
        /* a kernel parameter pointing at its argument's start: the tensor itself */
        int is_param = kernel_frame && k && x->arg >= 0 && x->arg < k->nparams && !x->outside &&
                       !strcmp(k->params[x->arg].name, x->name) && x->elem == 0;
        if (is_param && x->arg < 64 && live_arg(c, x->arg)) {
            eng_dbg_add_value(out, x->name, value_tensor(c->live[x->arg]));
            continue;
        }
        eng_kdebug_var_text(c->t, c->kname, x, v, sizeof v);
        eng_dbg_add_text(out, x->name, x->type, v);
    }
}

static int dap_stop(eng_kdebug *d, const char *kname, const eng_kstop *s)
{
    eng_ktable *t = d->ctx;
    eng_session *ses = t->kdbg_session;
    dap_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.kname = kname;
    c.stop = s;
    eng_dbg_xframe fr[ENG_KSTOP_FRAMES];
    dap_frame fu[ENG_KSTOP_FRAMES];
    int nf = s->nframes < ENG_KSTOP_FRAMES ? s->nframes : ENG_KSTOP_FRAMES;
    for (int i = 0; i < nf; i++) {
        memset(&fr[i], 0, sizeof fr[i]);
        const eng_kframe *f = &s->frames[i];
        if (i == nf - 1)
            snprintf(fr[i].name, sizeof fr[i].name, "%s [block (%u,%u,%u) thread (%u,%u,%u)]", f->func, s->block[0],
                     s->block[1], s->block[2], s->thread[0], s->thread[1], s->thread[2]);
        else
            snprintf(fr[i].name, sizeof fr[i].name, "%s", f->func);
        const char *path = cell_path(t, f->file);
        snprintf(fr[i].path, sizeof fr[i].path, "%s", path ? path : "");
        fr[i].line = f->line;
        fr[i].col = 1;
        fu[i].c = &c;
        fu[i].i = i;
        fr[i].locals = dap_locals;
        fr[i].user = &fu[i];
    }
    /* a breakpoint's condition on locals */
    int reason = s->reason;
    char why[300] = "";
    for (int i = 0; reason == 1 && i < t->kdbg.nbp; i++) {
        if (t->kdbg.bp[i].line != s->frames[0].line || strcmp(t->kdbg.bp[i].file, s->frames[0].file) != 0 ||
            !t->kdbg_cond[i][0])
            continue;
        int h = cond_holds(t->kdbg_cond[i], s, why, sizeof why);
        if (h == 0)
            reason = s->stepping ? 0 : -1;
        break;
    }
    if (reason < 0)
        return ENG_KCONTINUE;
    char desc[400];
    if (why[0])
        snprintf(desc, sizeof desc, "the breakpoint's condition cannot be evaluated in the kernel: %s", why);
    else
        snprintf(desc, sizeof desc, "%s in kernel %s, thread (%u,%u,%u) of block (%u,%u,%u), at %s:%d",
             reason == 1 ? "breakpoint" : "step", kname, s->thread[0], s->thread[1], s->thread[2], s->block[0],
             s->block[1], s->block[2], s->frames[0].file, s->frames[0].line);
    t->kdbg_stopped = 1;
    eng_dbg_action a = eng_dbg_stop(ses, reason == 1 ? "breakpoint" : "step", desc, fr, nf);
    t->kdbg_stopped = 0;
    if (a == ENG_DBG_STEP_OUT && s->nframes == 1) /* out of the kernel: to the launch's next statement */
        eng_dbg_set_step(ses, ENG_DBG_NEXT);
    collect_bps(t, ses, 0); /* breakpoints set or cleared during the stop apply now */
    for (int i = 0; i < 64; i++)
        if (c.live[i])
            tensor_decref(c.live[i]);
    switch (a) {
    case ENG_DBG_NEXT: return ENG_KNEXT;
    case ENG_DBG_STEP_IN: return ENG_KSTEP_IN;
    case ENG_DBG_STEP_OUT: return ENG_KSTEP_OUT;
    case ENG_DBG_ABORT: return ENG_KABORT;
    default: return ENG_KCONTINUE;
    }
}
