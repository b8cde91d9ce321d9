/* main.c — the one executable: `kiln kernel -f FILE` serves Jupyter (kernel/kernel.c),
 * `kiln run FILE...` runs cells from files (kernel/run.c). Both run on a thread with a
 * 64 MB stack (see big_stack_run). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "kernel/kernel.h"
#include "kernel/run.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln run [-k] FILE...   run each file as cells separated by lines '//%%%%' ('-' reads stdin)\n"
            "       kiln kernel -f FILE     serve Jupyter with a connection file\n"
            "       kiln --version\n"
            "  -k, --keep-going   run the remaining cells after a cell fails (the exit status is still 1)\n");
}

/* OpenMP's worker threads spin after each parallel region by default, fighting
 * OpenBLAS's threads and anything else on the machine for its cores (an MLP step went
 * from 1.8 ms to 47 ms on a busy 2-core machine). libgomp reads OMP_WAIT_POLICY before
 * main, so when the user has not chosen one, kiln sets "passive" and executes itself
 * again, once (a few milliseconds at start). */
static void omp_passive(char **argv)
{
    if (getenv("OMP_WAIT_POLICY"))
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) == 0)
        execv("/proc/self/exe", argv); /* returns only on failure: go on as we are */
}

#define KILN_STACK_MB 64 /* the default; KILN_STACK_MB in the environment changes it */

typedef struct big_stack_call {
    int (*fn)(int, char **); /* the command */
    int argc;
    char **argv;
    int rc;                  /* its exit status */
} big_stack_call;

static void *big_stack_main(void *arg)
{
    big_stack_call *c = arg;
    c->rc = c->fn(c->argc, c->argv);
    return NULL;
}

/* The stack size in bytes: KILN_STACK_MB (1 to 4096) or 64 MB. */
static size_t stack_bytes(void)
{
    const char *env = getenv("KILN_STACK_MB");
    long mb = KILN_STACK_MB;
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 1 || v > 4096)
            fprintf(stderr, "kiln: KILN_STACK_MB=%s is not a number of MB from 1 to 4096; using %d\n", env,
                    KILN_STACK_MB);
        else
            mb = v;
    }
    return (size_t)mb << 20;
}

/* Runs a command on a thread with a 64 MB stack (KILN_STACK_MB) rather than the main
 * thread's (8 MB by default, or whatever ulimit -s says), so that deep user code has
 * room: the parser, checker and interpreter stop with an error where the stack runs out
 * (engine/base/stack.h); the pages are committed only as they are used. The cells run on
 * that one thread as they did on the main thread. The main thread only waits, with
 * SIGINT blocked so that the command's own handling of it is as before. Where the
 * thread cannot be made, the command runs here. */
static int big_stack_run(int (*fn)(int, char **), int argc, char **argv)
{
    big_stack_call c = {fn, argc, argv, 1};
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0)
        return fn(argc, argv);
    int made = pthread_attr_setstacksize(&attr, stack_bytes()) == 0 &&
               pthread_create(&t, &attr, big_stack_main, &c) == 0;
    pthread_attr_destroy(&attr);
    if (!made)
        return fn(argc, argv);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_join(t, NULL);
    return c.rc;
}

int main(int argc, char **argv)
{
    omp_passive(argv);
    if (argc >= 2 && !strcmp(argv[1], "run"))
        return big_stack_run(kn_run_main, argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "kernel"))
        return big_stack_run(kn_kernel_main, argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
        printf("kiln %s\n", eng_version());
        return 0;
    }
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
