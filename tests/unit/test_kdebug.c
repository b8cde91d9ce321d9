/* test_kdebug.c — following one thread of a kernel on the simulator: debug builds
 * (cuda/sim/sim_debug.c's instrumentation) compiled through sim_kdriver with check 2
 * and launched in the worker under an eng_kdebug whose on_stop plays a script of
 * commands (next, step in, step out, continue, abort) and logs every stop: its line,
 * frames, and chosen variables. The kernels' results must be those of a plain build. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "cuda/sim/sim_internal.h"
#include "engine/tensor/kdriver.h"
#include "engine/base/context.h"
#include "tests/unit/check.h"

static const eng_kdriver *D = &sim_kdriver;

/* what the script's on_stop saw and does */
typedef struct script {
    const int *cmds;     /* commands, one per stop; past the end: continue */
    int ncmds, at;
    const char *show[8]; /* variables to log (NULL-terminated) */
    char log[8192];
    size_t len;
} script;

static void logp(script *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logp(script *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (s->len + 200 < sizeof s->log) s->len += (size_t)vsnprintf(s->log + s->len, sizeof s->log - s->len, fmt, ap);
    va_end(ap);
}

static const eng_kvar *find_var(const eng_kstop *st, const char *name) {
    for (int i = 0; i < st->nvars; i++)
        if (!strcmp(st->vars[i].name, name)) return &st->vars[i];
    return NULL;
}

/* one log line per stop: "file:line [func<caller:line...] name=value..." */
static int on_stop(eng_kdebug *d, const char *kname, const eng_kstop *st) {
    script *s = d->ctx;
    (void)kname;
    logp(s, "%s:%d", st->frames[0].file, st->frames[0].line);
    if (st->nframes > 1) logp(s, " %s", st->frames[0].func);
    for (int i = 1; i < st->nframes; i++) logp(s, "<%s:%d", st->frames[i].func, st->frames[i].line);
    for (int i = 0; s->show[i]; i++) {
        const eng_kvar *v = find_var(st, s->show[i]);
        if (!v) continue;
        if (v->arg >= 0) logp(s, " %s=&arg%d[%lld]", v->name, v->arg, v->elem);
        else logp(s, " %s=%s", v->name, v->value);
    }
    if (st->nframes > 1) { /* the caller's locals, as at its call */
        logp(s, " |");
        for (int i = 0; s->show[i]; i++)
            for (int j = 0; j < st->ncvars[0]; j++) {
                const eng_kvar *v = &st->cvars[0][j];
                if (strcmp(v->name, s->show[i]) != 0) continue;
                if (v->arg >= 0) logp(s, " %s=&arg%d[%lld]", v->name, v->arg, v->elem);
                else logp(s, " %s=%s", v->name, v->value);
            }
    }
    logp(s, "\n");
    return s->at < s->ncmds ? s->cmds[s->at++] : ENG_KCONTINUE;
}

static eng_kmodule *build_dbg(const char *src, const char *kname, const eng_kparam *p, int np) {
    eng_error err = {0};
    eng_kinfo info;
    eng_kmodule *m = D->compile(src, kname, p, np, 2, &info, &err);
    if (!m) fprintf(stderr, "debug build of %s failed: %s\n", kname, err.msg);
    return m;
}

static void ptr_param(eng_kparam *p, const char *name, int is_const) {
    memset(p, 0, sizeof *p);
    p->is_ptr = 1;
    p->is_const = is_const;
    p->ctype = KT_F32;
    snprintf(p->name, sizeof p->name, "%s", name);
}

static void int_param(eng_kparam *p, const char *name) {
    memset(p, 0, sizeof *p);
    p->ctype = KT_I32;
    snprintf(p->name, sizeof p->name, "%s", name);
}

/* next steps over a __device__ call, step in enters it, step out leaves it; locals and
 * pointer arguments at each stop; the result is the plain build's */
static const char *calls_src =
    "#line 1 \"cell[1]\"\n"
    "__device__ float sq(float v) {\n"
    "    float r = v * v;\n"
    "    return r;\n"
    "}\n"
    "__global__ void k(float *y, const float *x, int n) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    const float *p = x + i;\n"
    "    float a = sq(*p);\n"
    "    float b = sq(a);\n"
    "    if (i < n)\n"
    "        y[i] = a + b;\n"
    "}\n";

static void test_stepping(void) {
    eng_kparam p[3];
    ptr_param(&p[0], "y", 0);
    ptr_param(&p[1], "x", 1);
    int_param(&p[2], "n");
    eng_kmodule *m = build_dbg(calls_src, "k", p, 3);
    CHECK(m != NULL);
    if (!m) return;
    int n = 8;
    float x[8], y[8];
    for (int i = 0; i < n; i++) {
        x[i] = (float)i;
        y[i] = 0;
    }
    void *px = x, *py = y;
    void *args[] = {&py, &px, &n};
    size_t bytes[] = {sizeof y, sizeof x, 0};
    unsigned g[3] = {2, 1, 1}, b[3] = {4, 1, 1};
    static const int cmds[] = {ENG_KNEXT, ENG_KNEXT, ENG_KSTEP_IN, ENG_KNEXT, ENG_KSTEP_OUT, ENG_KNEXT,
                               ENG_KNEXT, ENG_KCONTINUE};
    script s = {.cmds = cmds, .ncmds = 8, .show = {"i", "p", "a", "v", "r", NULL}};
    eng_kdebug d = {.block = {1, 0, 0}, .thread = {2, 0, 0}, .stop_first = 1, .on_stop = on_stop, .ctx = &s};
    eng_error err = {0};
    D->debug(&d);
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0);
    D->debug(NULL);
    CHECK_STR(s.log, "cell[1]:6\n"                                /* the first line of thread 6 */
                     "cell[1]:7 i=6\n"                            /* next */
                     "cell[1]:8 i=6 p=&arg1[6]\n"                 /* next: p points into x at 6 */
                     "cell[1]:2 sq<k:8 v=6 | i=6 p=&arg1[6]\n"    /* step in: sq's first line; k's locals */
                     "cell[1]:3 sq<k:8 v=6 r=36 | i=6 p=&arg1[6]\n" /* next in sq */
                     "cell[1]:9 i=6 p=&arg1[6] a=36\n"            /* step out: back in k */
                     "cell[1]:10 i=6 p=&arg1[6] a=36\n"           /* next over sq(a) */
                     "cell[1]:12 i=6 p=&arg1[6] a=36\n");         /* next: line 11 has no stop (if body) */
    int bad = 0;
    for (int i = 0; i < n; i++) bad += y[i] != (float)i * i + (float)i * i * i * i;
    CHECK(bad == 0);
    /* the same launch with no debugger: no stops, same result */
    for (int i = 0; i < n; i++) y[i] = 0;
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0);
    bad = 0;
    for (int i = 0; i < n; i++) bad += y[i] != (float)i * i + (float)i * i * i * i;
    CHECK(bad == 0);
    /* a breakpoint in sq, continue: it stops there on each call */
    script s2 = {.show = {"v", NULL}};
    eng_kdebug d2 = {.block = {0, 0, 0}, .thread = {3, 0, 0}, .nbp = 1, .on_stop = on_stop, .ctx = &s2};
    snprintf(d2.bp[0].file, sizeof d2.bp[0].file, "cell[1]");
    d2.bp[0].line = 3;
    D->debug(&d2);
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0);
    D->debug(NULL);
    CHECK_STR(s2.log, "cell[1]:3 sq<k:8 v=3 |\ncell[1]:3 sq<k:9 v=9 |\n");
    /* abort at a stop: ERR_INTERRUPT, nothing written back, the next launch works */
    static const int abort_cmd[] = {ENG_KABORT};
    script s3 = {.cmds = abort_cmd, .ncmds = 1, .show = {NULL}};
    eng_kdebug d3 = {.block = {0, 0, 0}, .thread = {0, 0, 0}, .stop_first = 1, .on_stop = on_stop, .ctx = &s3};
    for (int i = 0; i < n; i++) y[i] = -1;
    D->debug(&d3);
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) < 0 && err.kind == ERR_INTERRUPT);
    D->debug(NULL);
    CHECK(y[0] == -1 && y[7] == -1);
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0 && y[7] == 49.0f + 2401.0f);
    D->release(m);
}

/* a barrier: the followed thread sees the other threads' writes to shared memory
 * after __syncthreads(); loops, shadowing, for variables, arrays and tricky lines */
static const char *shared_src =
    "#line 1 \"cell[2]\"\n"
    "struct pair { int a, b; };\n"
    "__global__ void rev(float *y, const float *x) {\n"
    "    __shared__ float buf[4];\n"
    "    int t = threadIdx.x;\n"
    "    buf[t] = x[t];\n"
    "    __syncthreads();\n"
    "    float acc = 0.0f, w[2] = {1.0f, 2.0f};\n"
    "    for (int j = 0; j < 2; j++) {\n"
    "        int t = j;\n"
    "        acc += w[t] * buf[3 - j];\n"
    "    }\n"
    "    pair pr = {1, 2};\n"
    "    auto f = [&](int q) {\n"
    "        return q + pr.a;\n"
    "    };\n"
    "    float z = t > 1 ?\n"
    "        acc : -acc;\n"
    "    y[t] = z + f(0) - 1;\n"
    "}\n";

static void test_shared(void) {
    eng_kparam p[2];
    ptr_param(&p[0], "y", 0);
    ptr_param(&p[1], "x", 1);
    eng_kmodule *m = build_dbg(shared_src, "rev", p, 2);
    CHECK(m != NULL);
    if (!m) return;
    float x[4] = {10, 20, 30, 40}, y[4] = {0, 0, 0, 0};
    void *px = x, *py = y;
    void *args[] = {&py, &px};
    size_t bytes[] = {sizeof y, sizeof x};
    unsigned g[3] = {1, 1, 1}, b[3] = {4, 1, 1};
    static const int cmds[] = {ENG_KNEXT, ENG_KNEXT, ENG_KNEXT, ENG_KNEXT, ENG_KNEXT, ENG_KNEXT, ENG_KNEXT,
                               ENG_KNEXT, ENG_KNEXT, ENG_KNEXT, ENG_KNEXT, ENG_KNEXT, ENG_KNEXT, ENG_KNEXT};
    script s = {.cmds = cmds, .ncmds = 14, .show = {"t", "buf", "acc", "j", "pr", "z", NULL}};
    eng_kdebug d = {.thread = {2, 0, 0}, .stop_first = 1, .on_stop = on_stop, .ctx = &s};
    eng_error err = {0};
    D->debug(&d);
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0);
    D->debug(NULL);
    if (err.kind) fprintf(stderr, "%s\n", err.msg);
    CHECK_STR(s.log, "cell[2]:3\n"
                     "cell[2]:4 buf=[10, 20, 0, 0]\n"          /* threads 0, 1 wait at the barrier */
                     "cell[2]:5 t=2 buf=[10, 20, 0, 0]\n"
                     "cell[2]:6 t=2 buf=[10, 20, 30, 0]\n"
                     "cell[2]:7 t=2 buf=[10, 20, 30, 40]\n"      /* after the barrier: every write */
                     "cell[2]:8 t=2 buf=[10, 20, 30, 40] acc=0\n"
                     "cell[2]:9 t=2 buf=[10, 20, 30, 40] acc=0 j=0\n"
                     "cell[2]:10 t=0 buf=[10, 20, 30, 40] acc=0 j=0\n" /* the inner t hides the outer */
                     "cell[2]:9 t=2 buf=[10, 20, 30, 40] acc=40 j=1\n"
                     "cell[2]:10 t=1 buf=[10, 20, 30, 40] acc=40 j=1\n"
                     "cell[2]:12 t=2 buf=[10, 20, 30, 40] acc=100\n"
                     "cell[2]:13 t=2 buf=[10, 20, 30, 40] acc=100 pr=(not shown)\n"
                     "cell[2]:16 t=2 buf=[10, 20, 30, 40] acc=100 pr=(not shown)\n"
                     "cell[2]:18 t=2 buf=[10, 20, 30, 40] acc=100 pr=(not shown) z=100\n"
                     "cell[2]:19 t=2 buf=[10, 20, 30, 40] acc=100 pr=(not shown) z=100\n");
    CHECK(y[0] == -(1 * 40.0f + 2 * 30.0f) && y[2] == 100.0f && y[3] == 100.0f);
    D->release(m);
}

/* the instrumentation itself: which lines get a stop, with which variables */
static const char *instr_src =
    "#line 1 \"cell[3]\"\n"
    "#define N 4\n"                                              /* 1 */
    "__device__ int f(int a, int b) { return a + b; }\n"         /* 2: one-line body: no stop */
    "__global__ void g(float *y, const float *x, int n) {\n"     /* 3 */
    "    int a = f(1, 2), b[2] = {3, 4}, *c = &a;\n"             /* 4 */
    "    float w[N], v[n], q = 0.5f;\n"                          /* 5: v is variable-length */
    "    if (a > 1)\n"                                           /* 6 */
    "        q = 2;\n"                                           /* 7: an if without braces */
    "    else\n"                                                 /* 8 */
    "        q = 3;\n"                                           /* 9 */
    "    for (int i = 0; i < n;\n"                               /* 10 */
    "         i++) {\n"                                          /* 11: the for's header */
    "        q += x[i] > 0 ?\n"                                  /* 12 */
    "            1 : 2;\n"                                       /* 13: inside an expression */
    "    }\n"                                                    /* 14: a block's end */
    "    do {\n"                                                 /* 15 */
    "        a--;\n"                                             /* 16 */
    "    }\n"                                                    /* 17 */
    "    while (a > 0);\n"                                       /* 18: do's while */
    "    auto h = [&](int k) {\n"                                /* 19 */
    "        return k + a;\n"                                    /* 20: a lambda's body */
    "    };\n"                                                   /* 21 */
    "    struct S { int m; } s = {1};\n"                         /* 22 */
    "    y[0] = q + h(1) + s.m + w[0] * 0 + v[0] * 0;\n"         /* 23 */
    "}\n";                                                       /* 24: the function's end */

static void test_instrument(void) {
    strbuf out = {0};
    CHECK(sim_debug_instrument(&out, instr_src) == 0);
    char got[4096];
    size_t len = 0;
    int line = 0;
    got[0] = '\0';
    for (const char *p = out.p; p && *p && len + 200 < sizeof got; line++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (line >= 2) { /* past the #line and the #define */
            const char *h = strstr(p, "kiln_dbg_me()");
            len += (size_t)snprintf(got + len, sizeof got - len, "%d:", line);
            if (h && h < p + n) {
                for (const char *a = h; (a = strstr(a, ".add(\"")) && a < p + n; a++) {
                    const char *e = strchr(a + 6, '"');
                    len += (size_t)snprintf(got + len, sizeof got - len, " %.*s", (int)(e - a - 6), a + 6);
                }
            } else {
                len += (size_t)snprintf(got + len, sizeof got - len, " -");
            }
            len += (size_t)snprintf(got + len, sizeof got - len, "\n");
        }
        p += n + (nl ? 1 : 0);
    }
    CHECK_STR(got, "2: -\n3: -\n4: y x n\n5: y x n a b c\n6: y x n a b c w q\n7: -\n8: -\n9: -\n"
                   "10: y x n a b c w q\n11: -\n12: y x n a b c w q i\n13: -\n14: -\n15: y x n a b c w q\n"
                   "16: y x n a b c w q\n17: -\n18: -\n19: y x n a b c w q\n20: -\n21: -\n"
                   "22: y x n a b c w q h\n23: y x n a b c w q h\n24: y x n a b c w q h\n"); /* s: see docs */
    CHECK(strstr(out.p, "{ KILN_DBG_FRAME") != NULL);
    free(out.p);
    /* and it compiles and runs as the plain build does */
    eng_kparam p[3];
    ptr_param(&p[0], "y", 0);
    ptr_param(&p[1], "x", 1);
    int_param(&p[2], "n");
    eng_kmodule *m = build_dbg(instr_src, "g", p, 3);
    CHECK(m != NULL);
    if (!m) return;
    float x[2] = {1, -1}, y[1] = {0};
    int n = 2;
    void *px = x, *py = y;
    void *args[] = {&py, &px, &n};
    size_t bytes[] = {sizeof y, sizeof x, 0};
    unsigned g[3] = {1, 1, 1}, b[3] = {1, 1, 1};
    eng_error err = {0};
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0);
    CHECK(y[0] == 7.0f); /* q = 2 + 1 + 2, h(1) = 1 + 0, s.m = 1 */
    D->release(m);
}

/* the instrumentation on the project's own CUDA code (the .cuh files of cuda/kernels: templates,
 * lambdas, macros, 1,500 lines): the instrumented files must still compile */
static void test_instrument_builtin_kernels(const char *dir) {
    static const char *const files[] = {"kk_common", "kk_elementwise", "kk_reduce", "kk_matmul", "kk_conv",
                                        "kk_train"};
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/inst/cuda/kernels' && cp cuda/kernels/kk_all.cuh cuda/kernels/kk_api.h "
             "'%s/inst/cuda/kernels/'", dir, dir);
    if (system(cmd) != 0) {
        CHECK(!"cannot copy cuda/kernels (run from the repository's root)");
        return;
    }
    int hooks = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char in[256], outp[600];
        snprintf(in, sizeof in, "cuda/kernels/%s.cuh", files[i]);
        snprintf(outp, sizeof outp, "%s/inst/cuda/kernels/%s.cuh", dir, files[i]);
        FILE *f = fopen(in, "rb");
        CHECK(f != NULL);
        if (!f) return;
        strbuf src = {0}, out = {0};
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) strbuf_put(&src, buf, n);
        fclose(f);
        CHECK(sim_debug_instrument(&out, src.p) == 0);
        for (const char *p = out.p; (p = strstr(p, "kiln_dbg_me()")); p++) hooks++;
        FILE *o = fopen(outp, "wb");
        CHECK(o && fwrite(out.p, 1, out.len, o) == out.len);
        if (o) fclose(o);
        free(src.p);
        free(out.p);
    }
    CHECK(hooks > 500);
    snprintf(cmd, sizeof cmd, "c++ -std=c++17 -fsyntax-only -fopenmp -DKILN_SIM_DEBUG=1 -I'%s/inst' -I. "
             "cuda/sim_backend_kernels.cc", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    char dir[] = "/tmp/kiln-test-kdebug-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("XDG_CACHE_HOME", dir, 1);
    test_instrument();
    test_instrument_builtin_kernels(dir);
    test_stepping();
    test_shared();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_kdebug");
}
