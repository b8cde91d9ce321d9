/* main.c — the one executable: `kiln kernel -f FILE` serves Jupyter (kernel/kernel.c),
 * `kiln run FILE...` runs cells from files (kernel/run.c). */
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

int main(int argc, char **argv)
{
    omp_passive(argv);
    if (argc >= 2 && !strcmp(argv[1], "run"))
        return kn_run_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "kernel"))
        return kn_kernel_main(argc - 1, argv + 1);
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
