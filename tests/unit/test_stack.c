/* test_stack.c — long operator chains and the C-stack guard (engine/base/stack.h) through
 * eng_execute: chains of any length evaluate (the checker and the interpreter loop over
 * them), recursion is bounded by the stack it really uses, on this process's main
 * thread and on a thread with a 2 MB stack, a cell with no stack left is refused with
 * an error, and the session goes on after each. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/base/stack.h"
#include "tests/unit/check.h"

typedef struct capture {
    char result[256];  /* text/plain of the cell's result (clipped) */
    size_t result_len; /* its full length */
    char error[700];   /* "Ename: evalue" of the cell's error */
} capture;

static void on_result(void *user, const eng_bundle *b)
{
    capture *c = user;
    c->result_len = strlen(b->items[0].data);
    snprintf(c->result, sizeof c->result, "%s", b->items[0].data);
}

static void on_error(void *user, const eng_error_report *e)
{
    capture *c = user;
    snprintf(c->error, sizeof c->error, "%s: %s", e->ename, e->evalue);
}

/* runs code in s; 0 or 1 as eng_execute, with the result or error in *c */
static int run(eng_session *s, const char *code, capture *c)
{
    memset(c, 0, sizeof *c);
    eng_sink sink = {.user = c, .result = on_result, .error = on_error};
    return eng_execute(s, code, "test", 1, &sink);
}

/* head followed by n copies of link, then tail (malloc'ed) */
static char *chain(const char *head, const char *link, int n, const char *tail)
{
    size_t hl = strlen(head), ll = strlen(link), tl = strlen(tail);
    char *s = malloc(hl + ll * (size_t)n + tl + 1);
    if (!s)
        return NULL;
    memcpy(s, head, hl);
    for (int i = 0; i < n; i++)
        memcpy(s + hl + ll * (size_t)i, link, ll);
    memcpy(s + hl + ll * (size_t)n, tail, tl + 1);
    return s;
}

/* code's result must be want */
static void expect_result(eng_session *s, char *code, const char *want)
{
    capture c;
    CHECK(code && run(s, code, &c) == 0);
    CHECK_STR(c.result, want);
    if (c.error[0])
        fprintf(stderr, "  (the cell failed: %s)\n", c.error);
    free(code);
}

/* code must fail with an error containing want */
static void expect_error(eng_session *s, char *code, const char *want)
{
    capture c;
    CHECK(code && run(s, code, &c) == 1);
    if (!strstr(c.error, want)) {
        fprintf(stderr, "%s:%d: error '%s' does not contain '%s'\n", __FILE__, __LINE__, c.error, want);
        failures++;
    }
    free(code);
}

/* the session survived: its variable is intact and it still computes */
static void expect_alive(eng_session *s)
{
    capture c;
    CHECK(run(s, "keep + 1", &c) == 0);
    CHECK_STR(c.result, "43");
}

static void test_chains(eng_session *s)
{
    expect_result(s, chain("1", "+1", 5000, ""), "5001");
    expect_result(s, chain("100", "-1", 3000, ""), "-2900");
    expect_result(s, chain("true", "&&true", 5000, ""), "true");
    expect_result(s, chain("false", "||false", 4999, "||true"), "true");
    expect_result(s, chain("(x", ".T", 5001, ").shape"), "(3, 2)");
    expect_result(s, chain("sum(x", "[0:2]", 5000, ").item()"), "6.0");
    expect_result(s, chain("sum(x", ".abs()", 5000, ").item()"), "6.0");
    expect_result(s, chain("sum(x", ".T[0:3].T", 5000, ").item()"), "6.0");
    capture c;
    char *code = chain("\"ab\"", "+\"ab\"", 5000, "");
    CHECK(code && run(s, code, &c) == 0);
    CHECK(c.result_len == 2 + 2 * 5001); /* quoted */
    free(code);
    /* chains are loops: their length costs no stack, far past what recursion allowed */
    expect_result(s, chain("1", "+1", 300000, ""), "300001");
    expect_result(s, chain("(x", ".T", 300001, ").shape"), "(3, 2)");
    /* an error inside a long chain names its link and leaves the session as it was */
    expect_error(s, chain("x", "[0]", 100000, ""), "IndexError");
    expect_error(s, chain("1", "+1", 100000, "+\"a\""), "TypeError");
    expect_alive(s);
    /* nested operators in a recursion within the limits (this thread's stack may be
     * 8 MB: kiln's is 64) */
    expect_result(s, chain("int f(int n) { return n <= 0 ? 0 : ", "- ", 40, "f(n - 1); }\nf(100)"), "0");
    expect_error(s, strdup("int h(int n) { return n <= 0 ? 0 : 1 + h(n - 1); }\nh(100000)"),
                 "recursion too deep: more than 1000 calls");
    expect_alive(s);
}

/* uses this thread's stack down to its limit, then runs code there */
static int __attribute__((noinline)) run_with_no_stack_left(eng_session *s, const char *code, capture *c)
{
    volatile char pad[1024];
    pad[0] = 1;
    int rc = eng_stack_pointer() > eng_stack_limit() ? run_with_no_stack_left(s, code, c) : run(s, code, c);
    return rc + pad[0] - 1;
}

/* on a thread with a 2 MB stack: the guard reads that thread's bounds */
static void *small_stack_main(void *arg)
{
    eng_session *s = arg;
    CHECK(eng_stack_usable() < ((size_t)2 << 20));
    /* chains still evaluate */
    expect_result(s, chain("1", "+1", 50000, ""), "50001");
    expect_result(s, chain("true", "&&true", 50000, ""), "true");
    /* forty operators nested in each of 999 calls: within the count of calls, past the
     * stack: an error naming the calls and the stack */
    expect_error(s, chain("int f2(int n) { return n <= 0 ? 0 : ", "- ", 40, "f2(n - 1); }\nf2(999)"),
                 "calls in progress used all");
    expect_alive(s);
    /* with no stack left at all, a cell is refused with an error, not a crash */
    capture c;
    CHECK(run_with_no_stack_left(s, "keep + - - 1", &c) == 1);
    CHECK(strstr(c.error, "too deep") != NULL);
    expect_alive(s);
    return NULL;
}

int main(void)
{
    eng_session *s = eng_session_new();
    CHECK(s != NULL);
    if (!s)
        return check_finish("test_stack");
    capture c;
    CHECK(run(s, "int keep = 42; tensor x = ones(2, 3);", &c) == 0);
    test_chains(s);

    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)2 << 20);
    CHECK(pthread_create(&t, &attr, small_stack_main, s) == 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&attr);

    expect_alive(s);
    eng_session_free(s);
    return check_finish("test_stack");
}
