/* test_sessions.c — two sessions in one process do not interfere (engine.h only, plus
 * the test thread's own context): variables, grad mode, the device, the optimiser
 * registry, RNG streams, interrupts and the out-of-memory note, with the sessions
 * taking turns on one thread and running on two threads at once; freeing one leaves
 * the other working. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/train/autograd.h"
#include "engine/tensor/backend.h"
#include "engine/base/context.h"
#include "engine/engine.h"
#include "tests/unit/check.h"

/* ---- a sink that keeps what a cell printed and how it failed ---- */

typedef struct out {
    char text[16384];  /* stdout and results, in order */
    size_t len;
    char ename[64];    /* the error's kind, "" if none */
    char evalue[2048]; /* its message */
    /* input(): called with the out, returns a malloc'ed line */
    char *(*input)(struct out *o, const char *prompt);
    void *user;        /* for input */
} out;

static void add_text(out *o, const char *t, size_t n)
{
    if (n > sizeof o->text - 1 - o->len)
        n = sizeof o->text - 1 - o->len;
    memcpy(o->text + o->len, t, n);
    o->len += n;
    o->text[o->len] = 0;
}

static void on_stream(void *user, int fd, const char *t, size_t n)
{
    (void)fd;
    add_text(user, t, n);
}

static void on_result(void *user, const eng_bundle *b)
{
    add_text(user, b->items[0].data, strlen(b->items[0].data));
    add_text(user, "\n", 1);
}

static void on_error(void *user, const eng_error_report *e)
{
    out *o = user;
    snprintf(o->ename, sizeof o->ename, "%s", e->ename);
    snprintf(o->evalue, sizeof o->evalue, "%s", e->evalue);
}

static char *on_input(void *user, const char *prompt, int password, size_t *len)
{
    (void)password;
    out *o = user;
    char *line = o->input ? o->input(o, prompt) : NULL;
    if (line && len)
        *len = strlen(line);
    return line;
}

/* runs code in s; o (cleared first, its input hook kept) gets the cell's output */
static int run(eng_session *s, const char *code, out *o)
{
    o->len = 0;
    o->text[0] = o->ename[0] = o->evalue[0] = 0;
    eng_sink sink = {.user = o, .stream = on_stream, .result = on_result, .error = on_error, .input = on_input};
    return eng_execute(s, code, "test", 1, &sink);
}

/* runs code that must succeed and returns its output (o's buffer) */
static const char *ok(eng_session *s, const char *code, out *o)
{
    if (run(s, code, o) != 0) {
        fprintf(stderr, "cell failed: %s\n  %s: %s\n", code, o->ename, o->evalue);
        failures++;
    }
    return o->text;
}

/* ---- taking turns on one thread ---- */

static void test_variables(void)
{
    eng_session *a = eng_session_new(), *b = eng_session_new();
    out o = {0};
    ok(a, "int x = 1; tensor only_a = ones(2);", &o);
    ok(b, "int x = 2;", &o);
    CHECK_STR(ok(a, "printf(\"%d\\n\", x);", &o), "1\n");
    CHECK_STR(ok(b, "printf(\"%d\\n\", x);", &o), "2\n");
    CHECK(run(b, "only_a", &o) == 1 && !strcmp(o.ename, "NameError"));
    eng_session_free(a);
    CHECK_STR(ok(b, "x += 1; printf(\"%d\\n\", x);", &o), "3\n"); /* b outlives a */
    eng_session_free(b);
}

static void test_grad_mode(void)
{
    eng_session *a = eng_session_new(), *b = eng_session_new();
    out o = {0};
    const char *loss = "tensor w = param(ones(3)); tensor l = sum(w * w); backward(l);";
    ok(a, "set_grad_enabled(false);", &o);
    /* b records while a does not */
    ok(b, loss, &o);
    CHECK_STR(ok(b, "printf(\"%d %.1f\\n\", is_grad_enabled(), sum(w.grad).item());", &o), "1 6.0\n");
    CHECK_STR(ok(a, "printf(\"%d\\n\", is_grad_enabled());", &o), "0\n");
    CHECK(run(a, loss, &o) == 1 && strstr(o.evalue, "does not require grad"));
    CHECK(ag_grad_mode() == 1); /* the test thread's own context */
    /* and the other way round */
    ok(b, "set_grad_enabled(false);", &o);
    ok(a, "set_grad_enabled(true);", &o);
    CHECK(run(a, loss, &o) == 0);
    CHECK(run(b, loss, &o) == 1 && strstr(o.evalue, "does not require grad"));
    CHECK(ag_grad_mode() == 1);
    eng_session_free(a);
    eng_session_free(b);
}

static void test_device(void)
{
    eng_session *a = eng_session_new(), *b = eng_session_new();
    out o = {0};
    char before[32], cmd[64], want[40];
    snprintf(before, sizeof before, "%s", ok(b, "printf(\"%s\\n\", zeros(1).device);", &o));
    const char *other = strcmp(before, "sim\n") ? "sim" : "cpu";
    snprintf(cmd, sizeof cmd, "%%device %s", other);
    ok(a, cmd, &o);
    snprintf(want, sizeof want, "%s\n", other);
    CHECK_STR(ok(a, "printf(\"%s\\n\", zeros(1).device);", &o), want);
    CHECK_STR(ok(b, "printf(\"%s\\n\", zeros(1).device);", &o), before);
    snprintf(want, sizeof want, "%s\n", eng_current_backend()->name); /* the test thread's own */
    CHECK_STR(want, before);
    eng_session_free(a);
    eng_session_free(b);
}

static void test_optimisers(void)
{
    eng_session *a = eng_session_new(), *b = eng_session_new();
    out o = {0};
    CHECK_STR(ok(a, "tensor p = param(ones(2)); int opt = sgd(p); printf(\"%d\\n\", opt);", &o), "1\n");
    /* b's handles start at 1 too: its registry is its own */
    CHECK_STR(ok(b, "tensor q = param(ones(2)); int s1 = adamw(q); int s2 = sgd(q); printf(\"%d %d\\n\", s1, s2);",
                 &o), "1 2\n");
    /* a's handle 1 is a's SGD over p: p = 1 - 0.25 * 2 */
    CHECK_STR(ok(a, "backward(sum(p * p)); step(opt, 0.25); printf(\"%.2f\\n\", sum(p).item());", &o), "1.00\n");
    CHECK(run(a, "step(2, 0.1);", &o) == 1 && strstr(o.evalue, "2 is not an optimiser"));
    /* b's steps leave a's parameters alone */
    ok(b, "backward(sum(q * q)); step(s1, 0.1); step(s2, 0.1);", &o);
    CHECK_STR(ok(a, "printf(\"%.2f\\n\", sum(p).item());", &o), "1.00\n");
    CHECK_STR(ok(b, "printf(\"%d\\n\", sum(q).item() < 1.9);", &o), "1\n");
    eng_session_free(b);
    CHECK_STR(ok(a, "opt_zero_grad(opt); backward(sum(p * p)); step(opt, 0.25); printf(\"%.2f\\n\", sum(p).item());",
                 &o), "0.50\n");
    eng_session_free(a);
}

static void test_rng(void)
{
    eng_session *a = eng_session_new(), *b = eng_session_new();
    out o = {0};
    char prev[512] = "", first_draw[512] = "";
    ok(a, "seed(7);", &o);
    ok(b, "seed(7);", &o);
    const char *draws[] = {"print(rand(3));", "print(randn(4));", "print(randint(0, 100, 5));", "print(rand(3));"};
    for (int i = 0; i < 4; i++) { /* interleaved: a, b, a, b, ... */
        char first[512];
        snprintf(first, sizeof first, "%s", ok(a, draws[i], &o));
        CHECK_STR(ok(b, draws[i], &o), first);
        CHECK(strcmp(first, prev) != 0); /* the stream moves on */
        snprintf(prev, sizeof prev, "%s", first);
        if (i == 0)
            snprintf(first_draw, sizeof first_draw, "%s", first);
    }
    ok(a, "rand(10);", &o); /* a draws more: b's stream does not move */
    snprintf(prev, sizeof prev, "%s", ok(b, "print(rand(2));", &o));
    CHECK(strcmp(ok(a, "print(rand(2));", &o), prev) != 0);
    ok(a, "seed(7);", &o);
    CHECK_STR(ok(a, "print(rand(3));", &o), first_draw); /* the seed starts the stream again */
    eng_session_free(a);
    eng_session_free(b);
}

static void test_interrupt_pending(void)
{
    eng_session *a = eng_session_new(), *b = eng_session_new();
    out o = {0};
    /* on the CPU backend, whose workers check the running session's flag between chunks */
    const char *work = "tensor big = ones(1000000); float t = sum(big * 2).item(); int k = 0;\n"
                       "for (int i = 0; i < 1000; i++) k += i;\nprintf(\"%.0f %d\\n\", t, k);";
    ok(a, "%device cpu", &o);
    ok(b, "%device cpu", &o);
    eng_interrupt(a); /* a's next cell stops; b's do not */
    CHECK_STR(ok(b, work, &o), "2000000 499500\n");
    CHECK(!eng_ctx_interrupted()); /* nor does the test thread's own tensor work */
    CHECK(run(a, work, &o) == 1 && !strcmp(o.ename, "Interrupted"));
    CHECK_STR(ok(a, work, &o), "2000000 499500\n"); /* cleared when the cell ended */
    eng_session_free(a);
    eng_session_free(b);
}

static void test_oom_note(void)
{
    eng_session *a = eng_session_new(), *b = eng_session_new();
    out o = {0};
    ok(a, "%device sim\ntensor big_of_a = zeros(4000000);", &o); /* 16 MB of the 64 MiB */
    ok(b, "%device sim\ntensor big_of_b = zeros(2000000);", &o); /* 8 MB */
    CHECK(run(a, "tensor huge = zeros(100000000);", &o) == 1 && !strcmp(o.ename, "MemoryError"));
    CHECK(strstr(o.evalue, "big_of_a") && !strstr(o.evalue, "big_of_b"));
    CHECK(strstr(o.evalue, "out of device memory")); /* the allocator's own words, read back */
    CHECK(run(b, "tensor huge = zeros(100000000);", &o) == 1 && !strcmp(o.ename, "MemoryError"));
    CHECK(strstr(o.evalue, "big_of_b") && !strstr(o.evalue, "big_of_a"));
    eng_session_free(a);
    CHECK(run(b, "tensor huge = zeros(100000000);", &o) == 1 && strstr(o.evalue, "big_of_b"));
    CHECK_STR(ok(b, "printf(\"%.0f\\n\", sum(big_of_b + 1).item());", &o), "2000000\n");
    eng_session_free(b);
}

/* ---- two threads at once ---- */

typedef struct worker {
    eng_session *s;
    const char *code;
    out o;
    int rc;
    atomic_int in_input;   /* the cell is inside input() */
    atomic_int release;    /* input() may return */
} worker;

static void *worker_run(void *p)
{
    worker *w = p;
    w->rc = run(w->s, w->code, &w->o);
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* input(): says it is there, then waits for the test's go-ahead */
static char *wait_input(out *o, const char *prompt)
{
    (void)prompt;
    worker *w = o->user;
    atomic_store(&w->in_input, 1);
    while (!atomic_load(&w->release))
        sleep_ms(1);
    return strdup("");
}

static void test_interrupt_threads(void)
{
    worker a = {.s = eng_session_new()}, b = {.s = eng_session_new()};
    a.o.input = b.o.input = wait_input;
    a.o.user = &a;
    b.o.user = &b;
    atomic_store(&a.release, 1); /* a goes straight on into its loop */
    /* b stops mid-cell, grad mode off, its context current on its thread */
    b.code = "set_grad_enabled(false); string go = input(\"go\");\n"
             "tensor big = ones(1000000); float t = sum(big * 2).item(); int k = 0;\n"
             "for (int i = 0; i < 100000; i++) k += i;\n"
             "printf(\"%.0f %d %d\\n\", t, k, is_grad_enabled());";
    a.code = "string go = input(\"go\"); int n = 0;\n"
             "for (int i = 0; i < 2000000000; i++) { n += 1; tensor t = ones(4) * 2; }";
    out o = {0};
    ok(b.s, "%device cpu", &o);
    pthread_t ta, tb;
    CHECK(pthread_create(&tb, NULL, worker_run, &b) == 0);
    while (!atomic_load(&b.in_input))
        sleep_ms(1);
    CHECK(pthread_create(&ta, NULL, worker_run, &a) == 0);
    while (!atomic_load(&a.in_input))
        sleep_ms(1);
    sleep_ms(50);    /* a is in its loop, b in the middle of its cell */
    eng_interrupt(a.s);
    pthread_join(ta, NULL);
    CHECK(a.rc == 1 && !strcmp(a.o.ename, "Interrupted"));
    atomic_store(&b.release, 1);
    pthread_join(tb, NULL);
    CHECK(b.rc == 0);
    CHECK_STR(b.o.text, "2000000 4999950000 0\n");
    /* b's grad mode went off on its thread: a's and this thread's stay on */
    CHECK_STR(ok(a.s, "printf(\"%d\\n\", is_grad_enabled());", &o), "1\n");
    CHECK_STR(ok(b.s, "printf(\"%d\\n\", is_grad_enabled());", &o), "0\n");
    CHECK(ag_grad_mode() == 1);
    eng_session_free(a.s);
    eng_session_free(b.s);
}

/* both sessions train at once on two threads, each its own model, seed and optimiser:
 * each gets what it gets alone */
static void test_train_threads(void)
{
    const char *code = "seed(3); tensor w = param(randn(8, 1)); tensor x = randn(64, 8);\n"
                       "tensor y = x @ ones(8, 1); int opt = sgd(w);\n"
                       "for (int i = 0; i < 200; i++) { tensor l = mean((x @ w - y) * (x @ w - y));\n"
                       "  backward(l); step(opt, 0.05); opt_zero_grad(opt); }\n"
                       "set_grad_enabled(false); printf(\"%.6f\\n\", mean((x @ w - y) * (x @ w - y)).item());";
    eng_session *alone = eng_session_new();
    out o = {0};
    char want[64];
    snprintf(want, sizeof want, "%s", ok(alone, code, &o));
    eng_session_free(alone);
    worker a = {.s = eng_session_new(), .code = code}, b = {.s = eng_session_new(), .code = code};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, worker_run, &a) == 0);
    CHECK(pthread_create(&tb, NULL, worker_run, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.rc == 0 && b.rc == 0);
    CHECK_STR(a.o.text, want);
    CHECK_STR(b.o.text, want);
    eng_session_free(a.s);
    eng_session_free(b.s);
}

int main(void)
{
    setenv("KILN_SIM_CAPACITY", "64M", 1); /* read at the simulator's first allocation */
    test_variables();
    test_grad_mode();
    test_device();
    test_optimisers();
    test_rng();
    test_interrupt_pending();
    test_oom_note();
    test_interrupt_threads();
    test_train_threads();
    return check_finish("test_sessions");
}
