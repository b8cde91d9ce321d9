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

int eng_kdebug_active(const eng_ktable *t) { return t && (t->kdbg_trace > 0 || t->kdbg_bps); }

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

int eng_kdebug_parse_thread(const char *spec, unsigned block[3], unsigned thread[3], char *why, size_t n)
{
    const char *p = skip_ws(spec);
    memset(block, 0, 3 * sizeof *block);
    memset(thread, 0, 3 * sizeof *thread);
    if (isdigit((unsigned char)*p)) { /* bx,by,bz tx,ty,tz */
        p = parse_triple(p, block);
        if (p && *skip_ws(p))
            p = parse_triple(p, thread);
        if (!p || *skip_ws(p)) {
            snprintf(why, n, "'%s' is not a block and a thread: write %%debug_thread bx,by,bz tx,ty,tz "
                     "(e.g. 0 7 or 1,0,0 7,0,0) or a condition like blockIdx.x == 3 && threadIdx.x == 7", spec);
            return -1;
        }
        return 0;
    }
    /* blockIdx.x == 3 && threadIdx.y == 2 ... */
    int terms = 0;
    while (*p) {
        unsigned *dst;
        if (!strncmp(p, "blockIdx.", 9)) {
            dst = block;
            p += 9;
        } else if (!strncmp(p, "threadIdx.", 10)) {
            dst = thread;
            p += 10;
        } else {
            break;
        }
        int c = *p - 'x';
        if (c < 0 || c > 2)
            break;
        p = skip_ws(p + 1);
        if (strncmp(p, "==", 2) != 0)
            break;
        p = skip_ws(p + 2);
        if (!isdigit((unsigned char)*p))
            break;
        char *e;
        unsigned long x = strtoul(p, &e, 10);
        if (x > 0x7fffffffUL)
            break;
        dst[c] = (unsigned)x;
        terms++;
        p = skip_ws(e);
        if (!*p)
            return 0;
        if (strncmp(p, "&&", 2) != 0)
            break;
        p = skip_ws(p + 2);
    }
    snprintf(why, n, "cannot read the thread condition '%s': it takes terms blockIdx.x == N or threadIdx.y == N "
             "joined by && (a component it does not name is 0)%s", spec, terms ? "" : "");
    return -1;
}

void eng_kdebug_var_text(const eng_ktable *t, const char *kname, const eng_kvar *v, char *out, size_t n)
{
    if (v->arg >= 0) {
        eng_kernel *k = eng_kernel_find(t, kname, (int)strlen(kname));
        const char *pname = k && v->arg < k->nparams && k->params[v->arg].name[0] ? k->params[v->arg].name : NULL;
        if (pname)
            snprintf(out, n, "&%s[%lld]", pname, v->elem);
        else
            snprintf(out, n, "&(argument %d)[%lld]", v->arg + 1, v->elem);
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

static void describe_thread(eng_ktable *t, eng_session *s)
{
    char buf[200];
    int n = snprintf(buf, sizeof buf, "Kernel debugging follows thread (%u,%u,%u) of block (%u,%u,%u)%s\n",
                     t->kdbg.thread[0], t->kdbg.thread[1], t->kdbg.thread[2], t->kdbg.block[0], t->kdbg.block[1],
                     t->kdbg.block[2], t->kdbg_thread_set ? "" : " (the default; %debug_thread chooses another)");
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
        memset(t->kdbg.block, 0, sizeof t->kdbg.block);
        memset(t->kdbg.thread, 0, sizeof t->kdbg.thread);
        t->kdbg_thread_set = 0;
    } else if (*rest) {
        char why[400];
        unsigned b[3], th[3];
        if (eng_kdebug_parse_thread(rest, b, th, why, sizeof why) < 0)
            return eng_fail(err, ERR_VALUE, "%%debug_thread: %s", why);
        memcpy(t->kdbg.block, b, sizeof b);
        memcpy(t->kdbg.thread, th, sizeof th);
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
                     "of block (%u,%u,%u) runs%s\n", n, t->kdbg.thread[0], t->kdbg.thread[1], t->kdbg.thread[2],
                     t->kdbg.block[0], t->kdbg.block[1], t->kdbg.block[2],
                     t->kdbg_thread_set ? "" : " (the default; %debug_thread chooses another)");
    eng_stream(s, 1, buf, (size_t)k);
    return 0;
}
