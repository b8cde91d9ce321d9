/* launch_paths.cu — what a launch of a built-in kernel costs the host, by API path, to
 * choose how Kiln's built-in kernels are launched (cuda/kernels/kk_common.cuh). Times N
 * back-to-back launches of a small elementwise kernel (c = a + b on 1,000 floats) on one
 * stream, then one sync, through:
 *   chevron      kernel<<<g, b, 0, stream>>>(args) + cudaGetLastError (what KK_LAUNCH did)
 *   runtime      cudaLaunchKernel(func, g, b, args, 0, stream)
 *   driver       cuLaunchKernel on the CUfunction from cudaGetFuncBySymbol, through the
 *                entry point cudaGetDriverEntryPointByVersion gives (libcuda is not linked)
 * Prints one JSON object of microseconds per launch. Built by `make bench-gpu`.
 * Usage: launch_paths [N]
 */
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__global__ void add(float *c, const float *a, const float *b, long long n)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        c[i] = a[i] + b[i];
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHECK(x)                                                                         \
    do {                                                                                 \
        int rc_ = (int)(x);                                                              \
        if (rc_) {                                                                       \
            fprintf(stderr, "launch_paths: %s failed (%d) at line %d\n", #x, rc_, __LINE__); \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void **, void **);

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    long long len = 1000;
    float *a, *b, *c;
    CHECK(cudaMalloc(&a, len * 4));
    CHECK(cudaMalloc(&b, len * 4));
    CHECK(cudaMalloc(&c, len * 4));
    cudaStream_t st;
    CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    dim3 g(4), bl(256);
    void *args[] = {&c, &a, &b, &len};
    cudaFunction_t f;
    CHECK(cudaGetFuncBySymbol(&f, (const void *)add));
    launch_fn drv = NULL;
    cudaDriverEntryPointQueryResult q;
    CHECK(cudaGetDriverEntryPointByVersion("cuLaunchKernel", (void **)&drv, 12000, cudaEnableDefault, &q));
    double r[3];
    for (int path = 0; path < 3; path++) {
        for (int rep = 0; rep < 2; rep++) { /* the first round warms up */
            CHECK(cudaStreamSynchronize(st));
            double t0 = now_s();
            for (int i = 0; i < n; i++) {
                if (path == 0) {
                    add<<<g, bl, 0, st>>>(c, a, b, len);
                    CHECK(cudaGetLastError());
                } else if (path == 1) {
                    CHECK(cudaLaunchKernel((const void *)add, g, bl, args, 0, st));
                } else {
                    CHECK(drv((CUfunction)f, 4, 1, 1, 256, 1, 1, 0, (CUstream)st, args, NULL));
                }
            }
            CHECK(cudaStreamSynchronize(st));
            r[path] = (now_s() - t0) / n * 1e6;
        }
    }
    printf("{\"chevron_us\": %.4f, \"runtime_us\": %.4f, \"driver_us\": %.4f, \"launches\": %d}\n", r[0], r[1], r[2],
           n);
    return 0;
}
