/* nvrtc_bench.c — Kiln's NVRTC driver (cuda/nvrtc.h) timed at its own interface, for
 * bench/kernels_gpu.py. The device is initialised before any timing (as the CuPy peer's
 * is), so every number is the driver's own cost. One JSON object on stdout.
 *
 *   nvrtc_bench compile NONCE   compile a small saxpy (NONCE makes its source unique, so
 *                               a fresh $XDG_CACHE_HOME gives a cold compile and a warm
 *                               one a disk hit): {"ms": ..., "cache": 0|2}
 *   nvrtc_bench mem NONCE       compile, then compile the same again in the process:
 *                               the second is the session's cache: {"ms": ..., "cache": 1}
 *   nvrtc_bench launch N        an empty kernel: best of 5 runs of N launches + one sync
 *                               through cuda_kdriver.launch, and launch + sync round trips:
 *                               {"launch_us": ..., "launch_sync_us": ...}
 * Exits 2 with {"skipped": ...} where there is no device (or a CPU-only build). */
#define _GNU_SOURCE /* asprintf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KILN_HAVE_CUDA
int main(void)
{
    printf("{\"skipped\": \"CPU-only build\"}\n");
    return 2;
}
#else
#include <time.h>
#include "cuda/cu_device.h"
#include "cuda/nvrtc.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int fail(const char *what, const eng_error *err)
{
    printf("{\"error\": \"%s: %s\"}\n", what, err->msg);
    return 1;
}

static char *saxpy_src(const char *nonce)
{
    char *s = NULL;
    if (asprintf(&s,
                 "#line 1 \"cell[1]\"\n"
                 "// %s\n"
                 "__global__ void saxpy(float a, const float *x, float *y, int n) {\n"
                 "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
                 "    if (i < n) y[i] = a * x[i] + y[i];\n"
                 "}\n",
                 nonce) < 0)
        return NULL;
    return s;
}

static int bench_compile(const char *nonce, int twice)
{
    eng_error err = {0};
    eng_kinfo info;
    char *src = saxpy_src(nonce);
    if (!src)
        return 1;
    eng_kmodule *m = NULL;
    if (twice && !(m = cuda_kdriver.compile(src, "saxpy", NULL, 0, 0, &info, &err)))
        return fail("compile", &err);
    double t0 = now_s();
    eng_kmodule *m2 = cuda_kdriver.compile(src, "saxpy", NULL, 0, 0, &info, &err);
    double t1 = now_s();
    if (!m2)
        return fail("compile", &err);
    printf("{\"ms\": %.4f, \"cache\": %d, \"regs\": %d, \"nvrtc\": \"%s\"}\n", (t1 - t0) * 1e3, info.cache,
           info.regs, cu_nvrtc_version());
    cuda_kdriver.release(m2);
    if (m)
        cuda_kdriver.release(m);
    free(src);
    return 0;
}

static int bench_launch(long n)
{
    eng_error err = {0};
    eng_kinfo info;
    eng_kmodule *m = cuda_kdriver.compile("#line 1 \"cell[1]\"\n__global__ void empty() {}\n", "empty", NULL, 0,
                                          0, &info, &err);
    if (!m)
        return fail("compile", &err);
    const unsigned one[3] = {1, 1, 1};
    for (int i = 0; i < 1000; i++)
        if (cuda_kdriver.launch(m, one, one, 0, NULL, &err) < 0)
            return fail("launch", &err);
    if (cuda_kdriver.sync(&err) < 0)
        return fail("sync", &err);
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        for (long i = 0; i < n; i++)
            if (cuda_kdriver.launch(m, one, one, 0, NULL, &err) < 0)
                return fail("launch", &err);
        if (cuda_kdriver.sync(&err) < 0)
            return fail("sync", &err);
        double per = (now_s() - t0) / n;
        best = per < best ? per : best;
    }
    long k = n / 10 > 1000 ? n / 10 : 1000;
    double t0 = now_s();
    for (long i = 0; i < k; i++)
        if (cuda_kdriver.launch(m, one, one, 0, NULL, &err) < 0 || cuda_kdriver.sync(&err) < 0)
            return fail("launch+sync", &err);
    double rt = (now_s() - t0) / k;
    printf("{\"launches\": %ld, \"launch_us\": %.4f, \"launch_sync_us\": %.4f}\n", n, best * 1e6, rt * 1e6);
    cuda_kdriver.release(m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: nvrtc_bench compile|mem NONCE | launch N\n");
        return 1;
    }
    eng_error err = {0};
    if (!cu_device_available()) {
        printf("{\"skipped\": \"no CUDA device\"}\n");
        return 2;
    }
    if (cu_device_init(&err) < 0)
        return fail("device", &err);
    if (!strcmp(argv[1], "compile"))
        return bench_compile(argv[2], 0);
    if (!strcmp(argv[1], "mem"))
        return bench_compile(argv[2], 1);
    if (!strcmp(argv[1], "launch"))
        return bench_launch(atol(argv[2]) > 0 ? atol(argv[2]) : 100000);
    fprintf(stderr, "nvrtc_bench: unknown mode %s\n", argv[1]);
    return 1;
}
#endif
