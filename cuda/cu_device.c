#define _GNU_SOURCE /* dladdr */
/* cu_device.c — the session's CUDA device, stream and error reporting (cu_device.h). */
#include <pthread.h>
#include "cuda/cu_device.h"
#include "cuda/cu_check.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int avail = -1;          /* -1 not asked yet, 0 no device, 1 a device */
static int ready;               /* properties read and stream created */
static int lost;                /* a sticky error corrupted the context */
static char lost_msg[300];      /* the sticky error that lost it */
static cu_props props;          /* the device, once ready */
static cudaStream_t stream;     /* the session's non-blocking stream */
static __thread int thread_set; /* cudaSetDevice done on this thread */

/* The ordinal asked for by $KILN_CUDA_DEVICE, or 0. */
static int wanted_ordinal(void)
{
    const char *s = getenv("KILN_CUDA_DEVICE");
    if (!s || !*s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    return (*end || v < 0 || v > 1024) ? -1 : (int)v;
}

int cu_device_available(void)
{
    if (avail >= 0)
        return avail;
    const char *off = getenv("KILN_NO_CUDA");
    if (off && *off && strcmp(off, "0") != 0) {
        avail = 0;
        return 0;
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* no driver or no device: not an error of the session */
        n = 0;
    }
    int want = wanted_ordinal();
    avail = (n > 0 && want >= 0 && want < n) ? 1 : 0;
    return avail;
}

int cu_context_lost(void)
{
    return lost;
}

int cu_error_is_sticky(cudaError_t e)
{
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
    case cudaErrorTensorMemoryLeak:
    case cudaErrorECCUncorrectable:
    case cudaErrorContained:
    case cudaErrorExternalDevice:
        return 1;
    default:
        return 0;
    }
}

/* "cuda/nvrtc.c" from a __FILE__ that may carry a longer path. */
static const char *short_file(const char *file)
{
    const char *p = strstr(file, "cuda/");
    return p ? p : file;
}

static int fail_lost(eng_error *err)
{
    return eng_fail(err, ERR_CUDA,
                    "the CUDA context is lost (%s): every tensor on the GPU is gone and no more "
                    "GPU work can run in this process; restart the kernel to use the GPU again "
                    "(variables on the CPU are intact: save them first with %%save)", lost_msg);
}

int cu_fail(cudaError_t e, const char *what, const char *file, int line, eng_error *err)
{
    /* what: the call's text, cut at its '(' so that messages name the function only */
    char fn[64];
    size_t k = strcspn(what, "( ");
    if (k >= sizeof fn)
        k = sizeof fn - 1;
    memcpy(fn, what, k);
    fn[k] = 0;
    if (cu_error_is_sticky(e)) {
        if (!lost) {
            lost = 1;
            snprintf(lost_msg, sizeof lost_msg, "%s: %s, %s, at %s:%d", fn, cudaGetErrorString(e),
                     cudaGetErrorName(e), short_file(file), line);
        }
        return fail_lost(err);
    }
    cudaGetLastError(); /* a non-sticky error must not resurface at the next call */
    return eng_fail(err, ERR_CUDA, "%s failed: %s (%s) [%s:%d]", fn, cudaGetErrorString(e),
                    cudaGetErrorName(e), short_file(file), line);
}

/* Reads the properties and creates the stream (once). */
static int first_init(eng_error *err)
{
    struct cudaDeviceProp p;
    memset(&props, 0, sizeof props);
    props.ordinal = wanted_ordinal();
    CU_CHECK(cudaGetDeviceProperties(&p, props.ordinal), err);
    snprintf(props.name, sizeof props.name, "%s", p.name);
    props.major = p.major;
    props.minor = p.minor;
    snprintf(props.arch, sizeof props.arch, "sm_%d%d", p.major, p.minor);
    props.sm_count = p.multiProcessorCount;
    props.total_mem = p.totalGlobalMem;
    props.shared_per_block = p.sharedMemPerBlock;
    props.shared_per_block_optin = p.sharedMemPerBlockOptin ? p.sharedMemPerBlockOptin
                                                            : p.sharedMemPerBlock;
    props.shared_per_sm = p.sharedMemPerMultiprocessor;
    props.regs_per_block = p.regsPerBlock;
    props.warp_size = p.warpSize;
    props.max_threads_per_block = p.maxThreadsPerBlock;
    for (int i = 0; i < 3; i++) {
        props.max_block[i] = p.maxThreadsDim[i];
        props.max_grid[i] = p.maxGridSize[i];
    }
    props.l2_bytes = p.l2CacheSize;
    props.mem_bus_bits = p.memoryBusWidth;
    CU_CHECK(cudaRuntimeGetVersion(&props.runtime_version), err);
    CU_CHECK(cudaDriverGetVersion(&props.driver_version), err);
    CU_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), err);
    ready = 1;
    return 0;
}

int cu_device_init(eng_error *err)
{
    if (lost)
        return fail_lost(err);
    if (ready && thread_set)
        return 0;
    if (!cu_device_available())
        return eng_fail(err, ERR_CUDA, "no CUDA device: %s",
                        wanted_ordinal() < 0 ? "$KILN_CUDA_DEVICE is not a valid ordinal"
                                             : "this machine has no GPU or no CUDA driver");
    CU_CHECK(cudaSetDevice(wanted_ordinal()), err);
    thread_set = 1;
    if (!ready && first_init(err) < 0)
        return -1;
    return 0;
}

const cu_props *cu_device_props(void)
{
    return ready ? &props : NULL;
}

cudaStream_t cu_stream(void)
{
    return stream;
}

int cu_sync(eng_error *err)
{
    if (cu_device_init(err) < 0)
        return -1;
    CU_CHECK(cudaStreamSynchronize(stream), err);
    return 0;
}

void cu_device_describe(char *buf, size_t n)
{
    if (!n)
        return;
    if (!cu_device_available()) {
        snprintf(buf, n, "no CUDA device");
        return;
    }
    eng_error err = {0};
    if (cu_device_init(&err) < 0) {
        snprintf(buf, n, "CUDA device unusable: %s", err.msg);
        return;
    }
    snprintf(buf, n, "%s (%s, %d SMs, %.1f GiB)", props.name, props.arch, props.sm_count,
             props.total_mem / (1024.0 * 1024 * 1024));
}

int cu_timer_start(cu_timer *t, eng_error *err)
{
    if (cu_device_init(err) < 0)
        return -1;
    if (!t->start)
        CU_CHECK(cudaEventCreate(&t->start), err);
    if (!t->stop)
        CU_CHECK(cudaEventCreate(&t->stop), err);
    CU_CHECK(cudaEventRecord(t->start, stream), err);
    return 0;
}

int cu_timer_stop(cu_timer *t, double *ms, eng_error *err)
{
    if (cu_device_init(err) < 0)
        return -1;
    if (!t->start || !t->stop)
        return eng_fail(err, ERR_RUNTIME, "cu_timer_stop without cu_timer_start");
    float f = 0;
    CU_CHECK(cudaEventRecord(t->stop, stream), err);
    CU_CHECK(cudaEventSynchronize(t->stop), err);
    CU_CHECK(cudaEventElapsedTime(&f, t->start, t->stop), err);
    *ms = f;
    return 0;
}

void cu_timer_free(cu_timer *t)
{
    if (!lost) {
        if (t->start)
            cudaEventDestroy(t->start);
        if (t->stop)
            cudaEventDestroy(t->stop);
        cudaGetLastError();
    }
    t->start = t->stop = NULL;
}

static cu_launch_fn driver_launch;
static pthread_once_t driver_launch_once = PTHREAD_ONCE_INIT;

static void driver_launch_init(void)
{
    void *p = NULL;
    enum cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuLaunchKernel", &p, 12000, cudaEnableDefault, &q) == cudaSuccess &&
        q == cudaDriverEntryPointSuccess)
        driver_launch = (cu_launch_fn)p;
    else
        cudaGetLastError();
}

cu_launch_fn cu_driver_launch(void)
{
    pthread_once(&driver_launch_once, driver_launch_init);
    return driver_launch;
}

void *cu_dlopen(const char *stem, char *why, size_t whylen)
{
    char names[3][600];
    int n = 0;
    Dl_info di;
    if (dladdr((void *)&cudaGetDeviceCount, &di) && di.dli_fname && strchr(di.dli_fname, '/')) {
        const char *slash = strrchr(di.dli_fname, '/');
        snprintf(names[n++], sizeof names[0], "%.*s/%s.so.%d", (int)(slash - di.dli_fname), di.dli_fname, stem,
                 CUDART_VERSION / 1000);
    }
    snprintf(names[n++], sizeof names[0], "%s.so.%d", stem, CUDART_VERSION / 1000);
    snprintf(names[n++], sizeof names[0], "%s.so", stem);
    void *lib = NULL;
    for (int i = 0; i < n && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(why, whylen, "%s.so.%d: %s", stem, CUDART_VERSION / 1000, e ? e : "not found");
    }
    return lib;
}
