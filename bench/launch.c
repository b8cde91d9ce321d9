/* launch.c — the floor for Kiln's launch overhead: a raw cuLaunchKernel loop in C.
 *
 * Loads libcuda.so.1 with dlopen at run time (never linked: the binary builds and starts
 * on machines without a driver, where it says so and exits 2), JIT-loads an empty
 * kernel from PTX, and times
 *   launch_us       N back-to-back launches on one stream, then one sync: the time per
 *                   launch (what a loop of launches costs the host);
 *   launch_sync_us  launch + cuStreamSynchronize, one at a time: the round trip.
 * Prints one JSON object on stdout. Built by `make bench-gpu` (or bench/kernels_gpu.py):
 *   cc -O2 -o launch bench/launch.c -ldl
 * Usage: launch [N]   (default 100000)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int CUresult; /* CUDA_SUCCESS == 0 */
typedef int CUdevice;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream;

/* an empty kernel; PTX 7.0 for sm_70 is JIT-compiled by the driver for any newer GPU */
static const char PTX[] =
    ".version 7.0\n"
    ".target sm_70\n"
    ".address_size 64\n"
    ".visible .entry empty()\n"
    "{\n"
    "\tret;\n"
    "}\n";

static struct {
    CUresult (*Init)(unsigned);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*PrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*StreamCreate)(CUstream *, unsigned);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, CUstream, void **, void **);
    CUresult (*GetErrorString)(CUresult, const char **);
} cu;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int check(CUresult r, const char *what)
{
    if (r == 0)
        return 0;
    const char *s = "?";
    if (cu.GetErrorString)
        cu.GetErrorString(r, &s);
    fprintf(stderr, "launch: %s failed: %s (%d)\n", what, s, r);
    return -1;
}

#define SYM(field, name)                                                  \
    do {                                                                  \
        *(void **)&cu.field = dlsym(lib, name);                           \
        if (!cu.field) {                                                  \
            fprintf(stderr, "launch: libcuda.so.1 lacks %s\n", name);     \
            return 1;                                                     \
        }                                                                 \
    } while (0)

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    if (n < 1)
        n = 1;
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("{\"skipped\": \"no CUDA driver (libcuda.so.1 not found)\"}\n");
        fprintf(stderr, "launch: no CUDA driver (libcuda.so.1): skipped\n");
        return 2;
    }
    SYM(Init, "cuInit");
    SYM(DeviceGet, "cuDeviceGet");
    SYM(DeviceGetName, "cuDeviceGetName");
    SYM(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    SYM(CtxSetCurrent, "cuCtxSetCurrent");
    SYM(ModuleLoadData, "cuModuleLoadData");
    SYM(ModuleGetFunction, "cuModuleGetFunction");
    SYM(StreamCreate, "cuStreamCreate");
    SYM(StreamSynchronize, "cuStreamSynchronize");
    SYM(LaunchKernel, "cuLaunchKernel");
    SYM(GetErrorString, "cuGetErrorString");

    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction fn;
    CUstream stream;
    char name[256] = "";
    if (cu.Init(0) != 0 || cu.DeviceGet(&dev, 0) != 0) {
        printf("{\"skipped\": \"no CUDA device\"}\n");
        fprintf(stderr, "launch: no CUDA device: skipped\n");
        return 2;
    }
    if (check(cu.DeviceGetName(name, sizeof name, dev), "cuDeviceGetName") ||
        check(cu.PrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain") ||
        check(cu.CtxSetCurrent(ctx), "cuCtxSetCurrent") ||
        check(cu.ModuleLoadData(&mod, PTX), "cuModuleLoadData") ||
        check(cu.ModuleGetFunction(&fn, mod, "empty"), "cuModuleGetFunction") ||
        check(cu.StreamCreate(&stream, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate"))
        return 1;

    /* warm-up */
    for (int i = 0; i < 1000; i++)
        if (check(cu.LaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, stream, NULL, NULL), "cuLaunchKernel"))
            return 1;
    if (check(cu.StreamSynchronize(stream), "cuStreamSynchronize"))
        return 1;

    /* best of 5 runs of n launches then one sync */
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        for (long i = 0; i < n; i++)
            if (check(cu.LaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, stream, NULL, NULL), "cuLaunchKernel"))
                return 1;
        if (check(cu.StreamSynchronize(stream), "cuStreamSynchronize"))
            return 1;
        double per = (now_s() - t0) / n;
        if (per < best)
            best = per;
    }
    /* launch + sync round trips */
    long m = n / 10 > 1000 ? n / 10 : 1000;
    double t0 = now_s();
    for (long i = 0; i < m; i++) {
        if (check(cu.LaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, stream, NULL, NULL), "cuLaunchKernel") ||
            check(cu.StreamSynchronize(stream), "cuStreamSynchronize"))
            return 1;
    }
    double rt = (now_s() - t0) / m;
    printf("{\"device\": \"%s\", \"launches\": %ld, \"launch_us\": %.4f, \"launch_sync_us\": %.4f}\n", name, n,
           best * 1e6, rt * 1e6);
    return 0;
}
