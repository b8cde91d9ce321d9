/* test_sim.c — the CUDA simulator (cuda/sim) through sim_kdriver, with hand-written
 * translation units shaped like the engine's (#line "cell[N]"), and the disk cache
 * (cuda/kcache) in a temporary XDG_CACHE_HOME, fresh processes made with fork. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cuda/kcache.h"
#include "cuda/sim/sim_runtime.h"
#include "engine/tensor/kdriver.h"
#include "engine/tensor/tensor.h"
#include "engine/base/context.h"
#include "tests/unit/check.h"

static const eng_kdriver *D = &sim_kdriver;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* compiles or reports; nparams counted by the caller */
static eng_kmodule *build(const char *src, const char *kname, int nparams, eng_kinfo *info) {
    eng_error err = {0};
    eng_kparam params[8];
    memset(params, 0, sizeof params);
    eng_kmodule *m = D->compile(src, kname, params, nparams, 0, info, &err);
    if (!m) fprintf(stderr, "compile of %s failed: %s\n", kname, err.msg);
    return m;
}

static int launch(eng_kmodule *m, unsigned gx, unsigned gy, unsigned bx, unsigned by, unsigned bz, size_t shared,
                  void **args, eng_error *err) {
    unsigned g[3] = {gx, gy, 1}, b[3] = {bx, by, bz};
    return D->launch(m, g, b, shared, args, err);
}

static const char *saxpy_src =
    "#line 1 \"cell[1]\"\n"
    "__global__ void saxpy(float *y, const float *x, float a, int n) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n) y[i] = a * x[i] + y[i];\n"
    "}\n";

static void test_saxpy(void) {
    eng_kinfo info;
    eng_kmodule *m = build(saxpy_src, "saxpy", 4, &info);
    CHECK(m != NULL);
    if (!m) return;
    CHECK(info.cache == 0 && info.compile_ms > 0 && info.regs == -1 && info.max_threads == 1024);
    CHECK(strstr(info.cache_path, "/kiln/") != NULL);
    int n = 1 << 20;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), a = 3.0f;
    for (int i = 0; i < n; i++) {
        x[i] = (float)i;
        y[i] = 1.0f;
    }
    void *px = x, *py = y;
    void *args[] = {&py, &px, &a, &n};
    eng_error err = {0};
    double t0 = now_ms();
    CHECK(launch(m, (n + 255) / 256, 1, 256, 1, 1, 0, args, &err) == 0);
    printf("saxpy 1M: %.2f ms\n", now_ms() - t0);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += y[i] != 3.0f * i + 1.0f;
    CHECK(bad == 0);
    /* the memory cache */
    eng_kmodule *m2 = build(saxpy_src, "saxpy", 4, &info);
    CHECK(m2 && info.cache == 1 && info.compile_ms == 0);
    char *code = D->code(m, &err);
    CHECK(code && strstr(code, "#include \"kiln_sim.h\"") && strstr(code, "a * x[i] + y[i]"));
    free(code);
    if (m2) D->release(m2);
    D->release(m);
    free(x);
    free(y);
}

static void test_block_reduce(void) {
    const char *src = "#line 1 \"cell[2]\"\n"
                      "__global__ void bsum(const float *x, float *out, int n) {\n"
                      "    __shared__ float s[256];\n"
                      "    int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;\n"
                      "    s[t] = i < n ? x[i] : 0.0f;\n"
                      "    __syncthreads();\n"
                      "    for (int k = blockDim.x / 2; k > 0; k >>= 1) {\n"
                      "        if (t < k) s[t] += s[t + k];\n"
                      "        __syncthreads();\n"
                      "    }\n"
                      "    if (t == 0) out[blockIdx.x] = s[0];\n"
                      "}\n";
    eng_kmodule *m = build(src, "bsum", 3, NULL);
    CHECK(m != NULL);
    if (!m) return;
    int n = 4096 * 256;
    float *x = malloc(n * sizeof *x), *out = calloc(4096, sizeof *out);
    for (int i = 0; i < n; i++) x[i] = (float)(i % 7);
    void *px = x, *po = out;
    void *args[] = {&px, &po, &n};
    eng_error err = {0};
    double t0 = now_ms();
    CHECK(launch(m, 4096, 1, 256, 1, 1, 0, args, &err) == 0);
    printf("shared-memory reduction, 4096 blocks of 256: %.2f ms\n", now_ms() - t0);
    int bad = 0;
    for (int b = 0; b < 4096; b++) {
        double want = 0;
        for (int i = 0; i < 256; i++) want += (b * 256 + i) % 7;
        bad += out[b] != (float)want;
    }
    CHECK(bad == 0);
    D->release(m);
    free(x);
    free(out);
}

static void test_warp_ops(void) {
    /* a warp-shuffle reduction into one float with atomicAdd, an inclusive scan with
     * __shfl_up_sync, a butterfly with __shfl_xor_sync, a broadcast and a ballot */
    const char *src = "#line 1 \"cell[3]\"\n"
                      "__device__ float warp_sum(float v) {\n"
                      "    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffff, v, o);\n"
                      "    return v;\n"
                      "}\n"
                      "#line 1 \"cell[4]\"\n"
                      "__global__ void warps(const float *x, float *total, int *scan, int *bfly, int *bcast,\n"
                      "                      unsigned *ballot, int n) {\n"
                      "    int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % warpSize;\n"
                      "    float v = warp_sum(i < n ? x[i] : 0.0f);\n"
                      "    if (lane == 0) atomicAdd(total, v);\n"
                      "    int s = 1;\n"
                      "    for (int o = 1; o < 32; o *= 2) { int u = __shfl_up_sync(0xffffffff, s, o); if (lane >= o) s += u; }\n"
                      "    int b = lane;\n"
                      "    for (int o = 16; o > 0; o /= 2) b = max(b, __shfl_xor_sync(0xffffffff, b, o));\n"
                      "    int c = __shfl_sync(0xffffffff, lane * 10, 3);\n"
                      "    unsigned bl = __ballot_sync(0xffffffff, lane % 3 == 0);\n"
                      "    if (i < n) { scan[i] = s; bfly[i] = b; bcast[i] = c; ballot[i] = bl; }\n"
                      "}\n";
    eng_kmodule *m = build(src, "warps", 7, NULL);
    CHECK(m != NULL);
    if (!m) return;
    int n = 1 << 18;
    float *x = malloc(n * sizeof *x), total = 0.0f;
    int *scan = malloc(n * sizeof *scan), *bfly = malloc(n * sizeof *bfly), *bcast = malloc(n * sizeof *bcast);
    unsigned *ballot = malloc(n * sizeof *ballot);
    for (int i = 0; i < n; i++) x[i] = (float)(i % 4);
    void *px = x, *pt = &total, *ps = scan, *pb = bfly, *pc = bcast, *pl = ballot;
    void *args[] = {&px, &pt, &ps, &pb, &pc, &pl, &n};
    eng_error err = {0};
    double t0 = now_ms();
    CHECK(launch(m, n / 256, 1, 256, 1, 1, 0, args, &err) == 0);
    printf("warp operations, %d threads: %.2f ms\n", n, now_ms() - t0);
    CHECK(total == 1.5f * n);
    unsigned want_ballot = 0;
    for (int l = 0; l < 32; l += 3) want_ballot |= 1u << l;
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += scan[i] != i % 32 + 1 || bfly[i] != 31 || bcast[i] != 30 || ballot[i] != want_ballot;
    CHECK(bad == 0);
    D->release(m);
    free(x);
    free(scan);
    free(bfly);
    free(bcast);
    free(ballot);
}

static void test_histogram(void) {
    const char *src = "#line 7 \"cell[5]\"\n"
                      "__global__ void hist(const int *v, int *h, float *w, int n) {\n"
                      "    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {\n"
                      "        atomicAdd(&h[v[i]], 1);\n"
                      "        atomicAdd(&w[v[i]], 0.5f);\n"
                      "    }\n"
                      "}\n";
    eng_kmodule *m = build(src, "hist", 4, NULL);
    CHECK(m != NULL);
    if (!m) return;
    int n = 100000, h[16] = {0};
    float w[16] = {0};
    int *v = malloc(n * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = (i * 7) % 16;
    void *pv = v, *ph = h, *pw = w;
    void *args[] = {&pv, &ph, &pw, &n};
    eng_error err = {0};
    CHECK(launch(m, 64, 1, 128, 1, 1, 0, args, &err) == 0);
    int bad = 0;
    for (int k = 0; k < 16; k++) {
        int want = n / 16 + (k < n % 16 ? 1 : 0);
        bad += h[k] != want || w[k] != 0.5f * want;
    }
    CHECK(bad == 0);
    D->release(m);
    free(v);
}

static void test_matmul(void) {
    /* tiled matmul, dim3 grid and block, the two tiles in dynamic shared memory */
    const char *src = "#line 1 \"cell[6]\"\n"
                      "#define TILE 16\n"
                      "__global__ void mm(const float *A, const float *B, float *C, int M, int N, int K) {\n"
                      "    extern __shared__ float tiles[];\n"
                      "    float *As = tiles, *Bs = tiles + TILE * TILE;\n"
                      "    int r = blockIdx.y * TILE + threadIdx.y, c = blockIdx.x * TILE + threadIdx.x;\n"
                      "    float acc = 0.0f;\n"
                      "    for (int k0 = 0; k0 < K; k0 += TILE) {\n"
                      "        As[threadIdx.y * TILE + threadIdx.x] = (r < M && k0 + threadIdx.x < K) ? A[r * K + k0 + threadIdx.x] : 0.0f;\n"
                      "        Bs[threadIdx.y * TILE + threadIdx.x] = (c < N && k0 + threadIdx.y < K) ? B[(k0 + threadIdx.y) * N + c] : 0.0f;\n"
                      "        __syncthreads();\n"
                      "        for (int k = 0; k < TILE; k++) acc += As[threadIdx.y * TILE + k] * Bs[k * TILE + threadIdx.x];\n"
                      "        __syncthreads();\n"
                      "    }\n"
                      "    if (r < M && c < N) C[r * N + c] = acc;\n"
                      "}\n";
    eng_kmodule *m = build(src, "mm", 6, NULL);
    CHECK(m != NULL);
    if (!m) return;
    int M = 70, N = 45, K = 33;
    float *A = malloc(M * K * sizeof *A), *B = malloc(K * N * sizeof *B), *C = calloc(M * N, sizeof *C);
    for (int i = 0; i < M * K; i++) A[i] = (float)((i * 37) % 11) - 5.0f;
    for (int i = 0; i < K * N; i++) B[i] = (float)((i * 13) % 7) - 3.0f;
    void *pa = A, *pb = B, *pc = C;
    void *args[] = {&pa, &pb, &pc, &M, &N, &K};
    eng_error err = {0};
    CHECK(launch(m, (N + 15) / 16, (M + 15) / 16, 16, 16, 1, 2 * 16 * 16 * sizeof(float), args, &err) == 0);
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float want = 0.0f;
            for (int k = 0; k < K; k++) want += A[i * K + k] * B[k * N + j];
            bad += C[i * N + j] != want;
        }
    CHECK(bad == 0);
    D->release(m);
    free(A);
    free(B);
    free(C);
}

static void test_indices_and_shared_names(void) {
    /* 3-D blocks and 2-D grids; a __device__ helper whose parameter has the name of the
     * kernel's extern __shared__ array (the rewrite must not touch it) */
    const char *src = "#line 1 \"cell[7]\"\n"
                      "__device__ void put(volatile int *sdata, int i, int v) { sdata[i] = v; }\n"
                      "__global__ void ids(int *out) {\n"
                      "    extern __shared__ __align__(16) int sdata[];\n"
                      "    int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);\n"
                      "    int b = blockIdx.x + gridDim.x * blockIdx.y;\n"
                      "    int nt = blockDim.x * blockDim.y * blockDim.z;\n"
                      "    put(sdata, t, b * 1000 + t);\n"
                      "    __syncthreads();\n"
                      "    out[b * nt + t] = sdata[nt - 1 - t];\n"
                      "}\n";
    eng_kmodule *m = build(src, "ids", 1, NULL);
    CHECK(m != NULL);
    if (!m) return;
    int nt = 4 * 3 * 2, nb = 2 * 3;
    int *out = calloc(nt * nb, sizeof *out);
    void *po = out;
    void *args[] = {&po};
    eng_error err = {0};
    CHECK(launch(m, 2, 3, 4, 3, 2, nt * sizeof(int), args, &err) == 0);
    int bad = 0;
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < nt; t++) bad += out[b * nt + t] != b * 1000 + (nt - 1 - t);
    CHECK(bad == 0);
    D->release(m);
    free(out);
}

static void test_launch_errors(void) {
    /* a barrier inside `if (threadIdx.x < 5)`: the threads wait at different barriers */
    const char *src = "#line 1 \"cell[8]\"\n"
                      "__global__ void bad_barrier(float *x) {\n"
                      "    if (threadIdx.x < 5) __syncthreads();\n"
                      "    x[threadIdx.x] = 1.0f;\n"
                      "    __syncthreads();\n"
                      "}\n"
                      "__global__ void stuck(float *x) {\n"
                      "    if (threadIdx.x < 16) x[0] = __shfl_sync(0xffffffff, 1.0f, 0);\n"
                      "    else __syncthreads();\n"
                      "}\n"
                      "__global__ void checked(float *x, int n) {\n"
                      "    assert(threadIdx.x < n);\n"
                      "    x[threadIdx.x] = 2.0f;\n"
                      "}\n";
    float x[64];
    void *px = x;
    void *args[] = {&px, NULL};
    eng_error err = {0};
    eng_kmodule *m = build(src, "bad_barrier", 1, NULL);
    CHECK(m != NULL);
    if (m) {
        CHECK(launch(m, 3, 1, 32, 1, 1, 0, args, &err) < 0);
        CHECK(err.kind == ERR_RUNTIME);
        CHECK(strstr(err.msg, "__syncthreads() not reached by every thread of block (") != NULL);
        CHECK(strstr(err.msg, "threads 0-4 wait at __syncthreads() cell[8]:2") != NULL);
        CHECK(strstr(err.msg, "threads 5-31 wait at __syncthreads() cell[8]:4") != NULL);
        D->release(m);
    }
    /* half the block at a warp shuffle, half at __syncthreads: no thread can go on */
    m = build(src, "stuck", 1, NULL);
    CHECK(m != NULL);
    if (m) {
        memset(&err, 0, sizeof err);
        CHECK(launch(m, 1, 1, 32, 1, 1, 0, args, &err) < 0);
        CHECK(strncmp(err.msg, "kernel 'stuck': ", 16) == 0 && strstr(err.msg, "deadlock") != NULL);
        D->release(m);
    }
    /* a failed assert names the cell line and the thread */
    m = build(src, "checked", 2, NULL);
    CHECK(m != NULL);
    if (m) {
        int n = 40;
        args[1] = &n;
        memset(&err, 0, sizeof err);
        CHECK(launch(m, 1, 1, 64, 1, 1, 0, args, &err) < 0);
        CHECK(strstr(err.msg, "assertion failed: threadIdx.x < n at cell[8]:11 (thread (40,0,0) of block (0,0,0))") !=
              NULL);
        D->release(m);
    }
    /* the driver's limits and the runtime's own checks */
    eng_klimits lim;
    D->limits(&lim);
    CHECK(lim.max_threads == 1024 && lim.max_block[2] == 64 && lim.max_grid[1] == 65535 && lim.max_shared == 48 * 1024);
    char msg[256];
    unsigned g[3] = {1, 1, 1}, b[3] = {2048, 1, 1};
    CHECK(sim_launch(NULL, NULL, g, b, 0, 0, msg, sizeof msg) < 0 && strstr(msg, "2048 threads"));
}

static void test_compile_error(void) {
    const char *src = "#line 1 \"cell[2]\"\n"
                      "__device__ float sq(float v) { return v * v; }\n"
                      "#line 3 \"cell[9]\"\n"
                      "__global__ void broken(float *x) {\n"
                      "    x[threadIdx.x] = sq(undefined_name);\n"
                      "}\n";
    eng_error err = {0};
    eng_kparam p[1];
    memset(p, 0, sizeof p);
    eng_kinfo info;
    CHECK(D->compile(src, "broken", p, 1, 0, &info, &err) == NULL);
    CHECK(err.kind == ERR_COMPILE);
    CHECK(strncmp(err.msg, "cell[9]:4:", 10) == 0 && strstr(err.msg, "undefined_name") != NULL);
    CHECK(err.line == 4);
    CHECK(strstr(err.msg, "/tmp") == NULL && strchr(err.msg, '\n') == NULL);
    memset(&err, 0, sizeof err);
    CHECK(D->compile(saxpy_src, "nosuch", p, 1, 0, &info, &err) == NULL);
    CHECK(strstr(err.msg, "no __global__ function named 'nosuch'") != NULL);
}

static void test_check_mode(void) {
    /* an out-of-bounds write found by the AddressSanitizer build, with its cell line */
    const char *src = "#line 1 \"cell[11]\"\n"
                      "__global__ void scale(float *y, const float *x, int n) {\n"
                      "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
                      "    if (i <= n) y[i] = 2.0f * x[i < n ? i : 0];\n"
                      "}\n";
    eng_kparam p[3];
    memset(p, 0, sizeof p);
    p[0].is_ptr = 1;
    p[0].ctype = KT_F32;
    p[1].is_ptr = 1;
    p[1].is_const = 1;
    p[1].ctype = KT_F32;
    p[2].ctype = KT_I32;
    eng_error err = {0};
    eng_kinfo info;
    double t0 = now_ms();
    eng_kmodule *m = D->compile(src, "scale", p, 3, 1, &info, &err);
    printf("checking build: %.0f ms\n", now_ms() - t0);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(info.cache == 0 && strstr(info.cache_path, ".chk") != NULL);
    int n = 100;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    for (int i = 0; i < n; i++) {
        x[i] = (float)i;
        y[i] = -1.0f;
    }
    void *px = x, *py = y;
    void *args[] = {&py, &px, &n};
    size_t bytes[] = {n * sizeof(float), n * sizeof(float), 0};
    unsigned g[3] = {4, 1, 1}, b[3] = {32, 1, 1};
    CHECK(D->launch(m, g, b, 0, args, &err) < 0 && strstr(err.msg, "launch_sized") != NULL); /* sizes needed */
    memset(&err, 0, sizeof err);
    t0 = now_ms();
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) < 0);
    printf("checked launch: %.0f ms\n", now_ms() - t0);
    CHECK(err.kind == ERR_RUNTIME);
    CHECK(strstr(err.msg, "out-of-bounds write of 4 bytes at cell[11]:3 in kernel 'scale' (thread (4,0,0) of block (3,0,0))") != NULL);
    if (failures) fprintf(stderr, "got: %s\n", err.msg);
    /* within bounds: runs, and the results come back */
    n = 96;
    memset(&err, 0, sizeof err);
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0);
    int bad = 0;
    for (int i = 0; i < 96; i++) bad += y[i] != 2.0f * i;
    CHECK(bad == 0 && x[5] == 5.0f);
    D->release(m);
    free(x);
    free(y);
}


/* ---- isolated launches (the engine's launch_sized in fast mode) ------------------------------ */

/* sets the launching thread's interrupt flag (arg: its address) from another thread, as
 * the kernel's control thread does */
static void *raise_interrupt(void *arg) {
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    eng_ctx_flag_set((volatile sig_atomic_t *)arg, 1);
    return NULL;
}

static void test_isolated(void) {
    const char *src = "#line 1 \"cell[12]\"\n"
                      "__global__ void iso(float *y, const float *x, int n, int mode) {\n"
                      "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
                      "    if (mode == 1) { float *p = 0; p[i] = 1; }\n"
                      "    if (mode == 2) while (((volatile float *)y)[0] == 0) {}\n"
                      "    if (i < n || mode == 3) y[i] = 2.0f * x[i % n];\n"
                      "}\n";
    eng_kparam p[4];
    memset(p, 0, sizeof p);
    p[0].is_ptr = 1;
    p[0].ctype = KT_F32;
    snprintf(p[0].name, sizeof p[0].name, "y");
    p[1].is_ptr = 1;
    p[1].is_const = 1;
    p[1].ctype = KT_F32;
    p[2].ctype = KT_I32;
    p[3].ctype = KT_I32;
    eng_error err = {0};
    eng_kinfo info;
    eng_kmodule *m = D->compile(src, "iso", p, 4, 0, &info, &err);
    CHECK(m != NULL);
    if (!m) return;
    int n = 100, mode = 0;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    for (int i = 0; i < n; i++) {
        x[i] = (float)i;
        y[i] = 0.0f;
    }
    void *px = x, *py = y;
    void *args[] = {&py, &px, &n, &mode};
    size_t bytes[] = {n * sizeof(float), n * sizeof(float), 0, 0};
    unsigned g[3] = {4, 1, 1}, b[3] = {32, 1, 1};
    /* runs in the worker; the writes come back */
    double t0 = now_ms();
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0);
    printf("isolated launch (worker start included): %.1f ms\n", now_ms() - t0);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += y[i] != 2.0f * i;
    CHECK(bad == 0);
    t0 = now_ms();
    for (int k = 0; k < 100; k++) CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0);
    printf("isolated launch, 128 threads: %.3f ms\n", (now_ms() - t0) / 100);
    /* a null pointer write: ERR_CUDA with the line, thread and block; this process lives */
    mode = 1;
    y[0] = -5.0f;
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) < 0 && err.kind == ERR_CUDA);
    /* (the first faulting thread is any of them when blocks run on several CPU threads:
     * address (nil) for thread 0 of block 0, 0x80 for block 1's thread 0, ...) */
    CHECK(strstr(err.msg, "invalid memory write at address ") && strstr(err.msg, "(SIGSEGV) at cell[12]:3 in kernel 'iso' (thread "));
    CHECK(y[0] == -5.0f); /* a failed launch writes nothing */
    if (failures) fprintf(stderr, "got: %s\n", err.msg);
    /* past the end of y: the element and the argument named */
    mode = 3;
    memset(&err, 0, sizeof err);
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) < 0 && err.kind == ERR_CUDA);
    CHECK(strstr(err.msg, "out-of-bounds write at cell[12]:5 in kernel 'iso' (thread (4,0,0) of block (3,0,0)): "
                          "element 100 of argument 1 ('y', 100 elements)") != NULL);
    if (failures) fprintf(stderr, "got: %s\n", err.msg);
    /* an endless loop: the interrupt flag stops it */
    mode = 2;
    y[0] = 0.0f;
    memset(&err, 0, sizeof err);
    pthread_t th;
    pthread_create(&th, NULL, raise_interrupt, (void *)eng_ctx_interrupt_flag());
    t0 = now_ms();
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) < 0 && err.kind == ERR_INTERRUPT);
    CHECK(now_ms() - t0 < 5000);
    pthread_join(th, NULL);
    eng_ctx_flag_set(eng_ctx_interrupt_flag(), 0);
    /* and the next launch runs (a new worker) */
    mode = 0;
    memset(y, 0, n * sizeof *y);
    CHECK(D->launch_sized(m, g, b, 0, args, bytes, &err) == 0 && y[99] == 198.0f);
    D->release(m);
    free(x);
    free(y);
}

/* ---- the disk cache ------------------------------------------------------------------------ */

/* in a fresh process: compile src and exit with 10 + info.cache (or 1) */
static int child_compile(const char *src, const char *kname) {
    pid_t pid = fork();
    if (pid == 0) {
        eng_kinfo info;
        eng_kmodule *m = build(src, kname, 4, &info);
        if (!m) _exit(1);
        /* a cache hit must also run */
        int n = 4;
        float x[4] = {1, 2, 3, 4}, y[4] = {0};
        void *px = x, *py = y, *args[] = {&py, &px, &(float){2.0f}, &n};
        eng_error err = {0};
        if (launch(m, 1, 1, 4, 1, 1, 0, args, &err) < 0 || y[3] != 8.0f) _exit(2);
        if (info.cache == 2 && info.compile_ms != 0) _exit(3);
        _exit(10 + info.cache);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) return -1;
    if (!WIFEXITED(st)) fprintf(stderr, "child_compile: the child died (status %d)\n", st);
    else if (WEXITSTATUS(st) < 10) fprintf(stderr, "child_compile: the child failed (%d)\n", WEXITSTATUS(st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_disk_cache(void) {
    const char *src = "#line 1 \"cell[10]\"\n"
                      "__global__ void axpy2(float *y, const float *x, float a, int n) {\n"
                      "    int i = threadIdx.x; if (i < n) y[i] = a * x[i] + y[i];\n"
                      "}\n";
    CHECK(child_compile(src, "axpy2") == 10); /* compiled */
    double t0 = now_ms();
    CHECK(child_compile(src, "axpy2") == 12); /* a fresh process hits the disk */
    printf("fresh-process disk cache hit (fork, compile, launch): %.2f ms\n", now_ms() - t0);

    /* the entry: the one .so in this test's own cache folder (found without compiling
     * in this process, so that the children forked later do not inherit it in their
     * memory cache) */
    char dir[400], path[800] = "";
    CHECK(kcache_dir(dir, sizeof dir) == 0);
    DIR *d = opendir(dir);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[800];
        struct stat sb;
        size_t l = strlen(e->d_name);
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (l > 3 && strcmp(e->d_name + l - 3, ".so") == 0 && stat(p, &sb) == 0) {
            count++;
            snprintf(path, sizeof path, "%s", p);
        }
    }
    if (d) closedir(d);
    CHECK(count == 1);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    /* truncated: detected, rebuilt, then served again */
    CHECK(truncate(path, st.st_size / 2) == 0);
    CHECK(child_compile(src, "axpy2") == 10);
    CHECK(child_compile(src, "axpy2") == 12);
    /* a bad byte in the middle: the checksum catches it */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, st.st_size / 3, SEEK_SET);
        int c = fgetc(f);
        fseek(f, st.st_size / 3, SEEK_SET);
        fputc(c ^ 0x5a, f);
        fclose(f);
    }
    CHECK(child_compile(src, "axpy2") == 10);
    /* right checksum, but not a library dlopen takes: rebuilt */
    const char *base = strrchr(path, '/');
    char key[KCACHE_KEY_LEN + 1];
    snprintf(key, sizeof key, "%.32s", base ? base + 1 : "");
    CHECK(kcache_put(key, "so", "not an ELF file", 15, NULL) == 0);
    CHECK(child_compile(src, "axpy2") == 10);
    CHECK(child_compile(src, "axpy2") == 12);
}

static void test_kcache(void) {
    kcache_hash a, b;
    char ka[KCACHE_KEY_LEN + 1], kb[KCACHE_KEY_LEN + 1];
    kcache_hash_init(&a);
    kcache_hash_str(&a, "ab");
    kcache_hash_str(&a, "c");
    kcache_hash_init(&b);
    kcache_hash_str(&b, "a");
    kcache_hash_str(&b, "bc");
    kcache_hash_key(&a, ka);
    kcache_hash_key(&b, kb);
    CHECK(strlen(ka) == KCACHE_KEY_LEN && strcmp(ka, kb) != 0);
    void *bytes;
    size_t len;
    CHECK(kcache_get(ka, "bin", &bytes, &len) == 0);
    CHECK(kcache_put(ka, "bin", "hello", 5, NULL) == 0);
    CHECK(kcache_get(ka, "bin", &bytes, &len) == 1 && len == 5 && memcmp(bytes, "hello", 5) == 0);
    free(bytes);
    kcache_remove(ka, "bin");
    CHECK(kcache_get(ka, "bin", &bytes, &len) == 0);
}

int main(void) {
    char dir[] = "/tmp/kiln-test-sim-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("XDG_CACHE_HOME", dir, 1);
    printf("simulator on %d host threads\n", sim_host_threads());
    test_kcache();
    test_saxpy();
    test_block_reduce();
    test_warp_ops();
    test_histogram();
    test_matmul();
    test_indices_and_shared_names();
    test_launch_errors();
    test_compile_error();
    test_check_mode();
    test_isolated();
    char sub[sizeof dir + 8];
    snprintf(sub, sizeof sub, "%s/disk", dir);
    setenv("XDG_CACHE_HOME", sub, 1); /* a folder of its own: one entry in it */
    test_disk_cache();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_finish("test_sim");
}
