/* test_nvrtc.c — the NVRTC driver (cuda/nvrtc.h) and the device layer (cuda/cu_device.h).
 *
 * Without a GPU (CI): NVRTC itself runs — PTX for a small kernel, CUBIN and lowered name,
 * compile errors mapped to cells through #line, the disk cache (a temporary
 * XDG_CACHE_HOME: second request a hit, a damaged entry rebuilt), and a quiet
 * cu_device_available() == 0 with compile() refusing cleanly. With a GPU: saxpy through
 * cuda_kdriver on device buffers, the memory cache, > 48 KiB of dynamic shared memory,
 * a bad launch that the session survives, and last a sticky error that loses the
 * context with the message saying so. A CPU-only build prints a skip line. */
#ifndef KILN_HAVE_CUDA
#include <stdio.h>
int main(void)
{
    printf("test_nvrtc: skipped (CPU-only build, no CUDA toolkit)\n");
    return 0;
}
#else
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <cuda_runtime_api.h>
#include "cuda/cu_device.h"
#include "cuda/kcache.h"
#include "cuda/nvrtc.h"
#include "tests/unit/check.h"

static const char *SAXPY =
    "#line 1 \"cell[2]\"\n"
    "__device__ float twice(float v) { return 2.0f * v; }\n"
    "#line 4 \"cell[3]\"\n"
    "__global__ void saxpy(float a, const float *x, float *y, int n) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n) y[i] = a * x[i] + twice(y[i]) - y[i];\n"
    "}\n";

static const char *BAD =
    "#line 1 \"cell[2]\"\n"
    "__device__ float ok(float v) { return v; }\n"
    "#line 7 \"cell[5]\"\n"
    "__global__ void bad(float *y) {\n"
    "  y[0] = undefined_thing;\n"
    "}\n";

/* Runs cu_device_available() with stdout and stderr sent to a file; 1 if it printed. */
static int available_is_quiet(int *avail)
{
    char path[] = "/tmp/kiln-nvrtc-quiet-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    fflush(stdout);
    fflush(stderr);
    int o1 = dup(1), o2 = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    *avail = cu_device_available();
    fflush(stdout);
    fflush(stderr);
    dup2(o1, 1);
    dup2(o2, 2);
    close(o1);
    close(o2);
    off_t size = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(path);
    return size == 0;
}

/* 1 when a library whose path contains name is mapped into this process. */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        found |= strstr(line, name) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void test_ptx(void)
{
    eng_error err = {0};
    eng_kinfo info;
    memset(&info, 0, sizeof info);
    char *ptx = cu_nvrtc_ptx_info(SAXPY, cu_device_available() ? NULL : "sm_90", &info, &err);
    CHECK(ptx != NULL);
    if (!ptx) {
        fprintf(stderr, "ptx error: %s\n", err.msg);
        return;
    }
    CHECK(strstr(ptx, ".entry") != NULL);
    CHECK(strstr(ptx, "saxpy") != NULL);
    if (!cu_device_available())
        CHECK(strstr(ptx, ".target sm_90") != NULL);
    CHECK(info.cache == 0);
    CHECK(info.cache_path[0] != 0);

    /* the second request comes from the disk cache, byte for byte */
    cu_nvrtc_stats before, after;
    cu_nvrtc_get_stats(&before);
    eng_kinfo info2;
    memset(&info2, 0, sizeof info2);
    char *again = cu_nvrtc_ptx_info(SAXPY, cu_device_available() ? NULL : "sm_90", &info2, &err);
    cu_nvrtc_get_stats(&after);
    CHECK(again && !strcmp(again, ptx));
    CHECK(info2.cache == 2);
    CHECK(after.disk_hits == before.disk_hits + 1);
    CHECK(after.compiles == before.compiles);
    free(again);
    free(ptx);

    /* another architecture is another entry; compute_80 and 80 name the same target */
    ptx = cu_nvrtc_ptx(SAXPY, "80", &err);
    CHECK(ptx && strstr(ptx, ".target sm_80"));
    free(ptx);

    /* half: the prelude brings cuda_fp16.h */
    ptx = cu_nvrtc_ptx("#line 1 \"cell[9]\"\n__global__ void h(__half *x) { x[0] = __float2half(1.5f); }\n",
                       "sm_90", &err);
    CHECK(ptx && strstr(ptx, ".entry"));
    if (!ptx)
        fprintf(stderr, "half: %s\n", err.msg);
    free(ptx);

    /* not an architecture; one NVRTC cannot target */
    eng_error e2 = {0};
    CHECK(cu_nvrtc_ptx(SAXPY, "gfx90a", &e2) == NULL && e2.kind == ERR_VALUE);
    eng_error e3 = {0};
    CHECK(cu_nvrtc_ptx(SAXPY, "sm_10", &e3) == NULL && e3.kind == ERR_VALUE);
    CHECK(strstr(e3.msg, "cannot target") != NULL);
}

static void test_compile_error(void)
{
    eng_error err = {0};
    char *ptx = cu_nvrtc_ptx(BAD, "sm_90", &err);
    CHECK(ptx == NULL);
    CHECK(err.kind == ERR_COMPILE);
    CHECK(strstr(err.msg, "cell[5](8): error") != NULL);
    CHECK(strstr(err.msg, "undefined_thing") != NULL);
    CHECK(err.line == 8);
    CHECK(err.col == 10);
    if (err.line != 8 || err.col != 10)
        fprintf(stderr, "compile error: line %d col %d: %s\n", err.line, err.col, err.msg);

    /* a kernel name that the TU does not define */
    cu_nvrtc_image im;
    eng_error e2 = {0};
    CHECK(cu_nvrtc_build(SAXPY, "nosuch", "sm_90", &im, NULL, &e2) < 0);
    CHECK(e2.kind == ERR_COMPILE);
    CHECK(strstr(e2.msg, "nosuch") != NULL);
}

static void test_cubin_and_cache(void)
{
    cu_nvrtc_image im, im2, im3;
    eng_kinfo info;
    eng_error err = {0};
    memset(&info, 0, sizeof info);
    CHECK(cu_nvrtc_build(SAXPY, "saxpy", "sm_90", &im, &info, &err) == 0);
    if (err.kind) {
        fprintf(stderr, "build: %s\n", err.msg);
        return;
    }
    CHECK(!strcmp(im.arch, "sm_90"));
    CHECK(im.lowered && strstr(im.lowered, "saxpy") && !strcmp(im.lowered, "_Z5saxpyfPKfPfi"));
    CHECK(im.cubin_len > 4 && !memcmp(im.cubin, "\x7f" "ELF", 4));
    CHECK(im.ptx && strstr(im.ptx, im.lowered));
    CHECK(info.cache == 0 && info.compile_ms > 0);

    memset(&info, 0, sizeof info);
    CHECK(cu_nvrtc_build(SAXPY, "saxpy", "sm_90", &im2, &info, &err) == 0);
    CHECK(info.cache == 2);
    CHECK(im2.cubin_len == im.cubin_len && !memcmp(im2.cubin, im.cubin, im.cubin_len));
    CHECK(im2.lowered && !strcmp(im2.lowered, im.lowered));
    CHECK(im2.ptx && !strcmp(im2.ptx, im.ptx));

    /* a damaged entry is a miss, rebuilt and written again */
    CHECK(info.cache_path[0] != 0);
    FILE *f = fopen(info.cache_path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 40, SEEK_SET);
        fputs("garbage", f);
        fclose(f);
    }
    memset(&info, 0, sizeof info);
    CHECK(cu_nvrtc_build(SAXPY, "saxpy", "sm_90", &im3, &info, &err) == 0);
    CHECK(info.cache == 0);
    CHECK(im3.cubin_len == im.cubin_len);
    memset(&info, 0, sizeof info);
    cu_nvrtc_image_free(&im3);
    CHECK(cu_nvrtc_build(SAXPY, "saxpy", "sm_90", &im3, &info, &err) == 0);
    CHECK(info.cache == 2);
    cu_nvrtc_image_free(&im);
    cu_nvrtc_image_free(&im2);
    cu_nvrtc_image_free(&im3);
}

static void test_no_device(void)
{
    eng_error err = {0};
    eng_kinfo info;
    CHECK(cuda_kdriver.compile(SAXPY, "saxpy", NULL, 0, 0, &info, &err) == NULL);
    CHECK(err.kind == ERR_CUDA);
    CHECK(strstr(err.msg, "no CUDA device") != NULL);
    eng_klimits lim;
    cuda_kdriver.limits(&lim);
    CHECK(lim.max_threads == 1024 && lim.max_block[2] == 64 && lim.max_shared > 48 * 1024);
    char buf[128];
    cu_device_describe(buf, sizeof buf);
    CHECK_STR(buf, "no CUDA device");
}

/* ---- on a GPU ---------------------------------------------------------------------- */

static const char *BIGSHARED =
    "#line 1 \"cell[6]\"\n"
    "__global__ void rev(const float *x, float *y, int n) {\n"
    "    extern __shared__ float buf[];\n"
    "    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = x[i];\n"
    "    __syncthreads();\n"
    "    for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = buf[n - 1 - i];\n"
    "}\n";

static const char *OOB =
    "#line 1 \"cell[7]\"\n"
    "__global__ void oob(float *y) { y[(size_t)1 << 40] = 1.0f; }\n";

/* A copy ordered with the kernels: on the session's (non-blocking) stream, then waited. */
static void copy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    CHECK(cudaMemcpyAsync(dst, src, bytes, kind, cu_stream()) == cudaSuccess);
    CHECK(cudaStreamSynchronize(cu_stream()) == cudaSuccess);
}

static void test_gpu(void)
{
    eng_error err = {0};
    eng_kinfo info;
    CHECK(cu_device_init(&err) == 0);
    const cu_props *p = cu_device_props();
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "device: %s\n", err.msg);
        return;
    }
    char desc[256];
    cu_device_describe(desc, sizeof desc);
    printf("device: %s\n", desc);

    eng_kmodule *m = cuda_kdriver.compile(SAXPY, "saxpy", NULL, 0, 0, &info, &err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "compile: %s\n", err.msg);
        return;
    }
    CHECK(info.regs > 0 && info.max_threads > 0);
    enum { N = 100000 };
    float *hx = malloc(N * sizeof *hx), *hy = malloc(N * sizeof *hy);
    float *dx = NULL, *dy = NULL;
    CHECK(hx && hy);
    for (int i = 0; i < N; i++) {
        hx[i] = (float)i;
        hy[i] = 1.0f;
    }
    CHECK(cudaMalloc((void **)&dx, N * sizeof(float)) == cudaSuccess);
    CHECK(cudaMalloc((void **)&dy, N * sizeof(float)) == cudaSuccess);
    copy(dx, hx, N * sizeof(float), cudaMemcpyHostToDevice);
    copy(dy, hy, N * sizeof(float), cudaMemcpyHostToDevice);
    float a = 2.0f;
    int n = N;
    void *args[] = {&a, &dx, &dy, &n};
    unsigned grid[3] = {(N + 255) / 256, 1, 1}, block[3] = {256, 1, 1};
    cu_timer timer = {0};
    double ms = -1;
    CHECK(cu_timer_start(&timer, &err) == 0);
    CHECK(cuda_kdriver.launch(m, grid, block, 0, args, &err) == 0);
    CHECK(cu_timer_stop(&timer, &ms, &err) == 0);
    CHECK(ms > 0 && ms < 1000);
    printf("saxpy of %d: %.3f ms of GPU time\n", N, ms);
    cu_timer_free(&timer);
    CHECK(cuda_kdriver.sync(&err) == 0);
    copy(hy, dy, N * sizeof(float), cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += hy[i] != 2.0f * i + 1.0f;
    CHECK(bad == 0);

    /* the session's memory: the same TU and kernel give the same library */
    eng_kinfo info2;
    eng_kmodule *m2 = cuda_kdriver.compile(SAXPY, "saxpy", NULL, 0, 0, &info2, &err);
    CHECK(m2 == m && info2.cache == 1);
    cuda_kdriver.release(m2);
    char *code = cuda_kdriver.code(m, &err);
    CHECK(code && strstr(code, ".entry"));
    free(code);

    /* a block too large: an error the session survives */
    unsigned huge[3] = {4096, 1, 1};
    eng_error e2 = {0};
    CHECK(cuda_kdriver.launch(m, grid, huge, 0, args, &e2) < 0 && e2.kind == ERR_CUDA);
    CHECK(!cu_context_lost());
    CHECK(cuda_kdriver.launch(m, grid, block, 0, args, &err) == 0 && cuda_kdriver.sync(&err) == 0);
    cuda_kdriver.release(m);

    /* 64 KiB of dynamic shared memory: over the default 48 KiB, set per kernel */
    if (p->shared_per_block_optin >= 64 * 1024) {
        eng_kmodule *r = cuda_kdriver.compile(BIGSHARED, "rev", NULL, 0, 0, &info, &err);
        CHECK(r != NULL);
        int k = 16384; /* floats: 64 KiB */
        void *rargs[] = {&dx, &dy, &k};
        unsigned g1[3] = {1, 1, 1};
        CHECK(r && cuda_kdriver.launch(r, g1, block, k * sizeof(float), rargs, &err) == 0);
        CHECK(cuda_kdriver.sync(&err) == 0);
        copy(hy, dy, k * sizeof(float), cudaMemcpyDeviceToHost);
        CHECK(hy[0] == (float)(k - 1) && hy[k - 1] == 0.0f);
        if (err.kind)
            fprintf(stderr, "bigshared: %s\n", err.msg);
        cuda_kdriver.release(r);
    }

    /* last: an illegal address loses the context, and the message says so */
    memset(&err, 0, sizeof err);
    eng_kmodule *o = cuda_kdriver.compile(OOB, "oob", NULL, 0, 0, &info, &err);
    CHECK(o != NULL);
    void *oargs[] = {&dy};
    unsigned one[3] = {1, 1, 1};
    int rc = o ? cuda_kdriver.launch(o, one, one, 0, oargs, &err) : -1;
    if (rc == 0)
        rc = cuda_kdriver.sync(&err);
    CHECK(rc < 0 && err.kind == ERR_CUDA);
    CHECK(cu_context_lost());
    CHECK(strstr(err.msg, "context is lost") && strstr(err.msg, "restart the kernel"));
    printf("lost-context message: %s\n", err.msg);
    eng_error e3 = {0};
    CHECK(cu_device_init(&e3) < 0 && strstr(e3.msg, "context is lost"));
    cuda_kdriver.release(o);
    free(hx);
    free(hy);
}

int main(void)
{
    char dir[] = "/tmp/kiln-nvrtc-cache-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("XDG_CACHE_HOME", dir, 1);
    /* NVRTC is loaded at its first use, not at process start (its initialisers cost
     * every start about 9 ms): nothing may link it directly */
    CHECK(!mapped("libnvrtc"));
    printf("NVRTC %s\n", cu_nvrtc_version());
    CHECK(mapped("libnvrtc"));

    int avail = -1;
    CHECK(available_is_quiet(&avail));
    CHECK(avail == 0 || avail == 1);
    CHECK(cu_device_available() == avail); /* cached */

    test_ptx();
    test_compile_error();
    test_cubin_and_cache();
    if (!avail) {
        test_no_device();
        printf("test_nvrtc: GPU part skipped: no CUDA device\n");
    } else {
        test_gpu();
    }
    cu_nvrtc_stats st;
    cu_nvrtc_get_stats(&st);
    printf("NVRTC compiles %lu, compile errors %lu, disk hits %lu, disk writes %lu\n", st.compiles,
           st.failed, st.disk_hits, st.disk_puts);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_nvrtc");
}
#endif
