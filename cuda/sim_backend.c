/* sim_backend.c — the simulator backend: the CUDA backend's own built-in kernels
 * (cuda/kernels/, compiled for the host by cuda/sim_backend_kernels.cc against the CUDA
 * simulator) run on host memory behind the eng_backend interface. Always built, so CI
 * checks the GPU kernels' logic, their launch geometry and the CUDA backend's host-side
 * dispatch (cuda/kernels/kk_dispatch.c) without a GPU; tests/conformance compares it
 * with the CPU backend op by op.
 *
 * Memory comes through the CUDA backend's caching allocator (cuda/cu_alloc.c) over
 * 256-byte aligned host blocks (cudaMalloc's alignment), so the allocator runs in every
 * conformance test too. Matmul is the 16 x 16 tiled kernel (cuBLAS has no simulator).
 *
 * Selected with KILN_DEVICE=sim in the environment or %device sim (the session's new
 * tensors are then made here); tensors report device "sim".
 *
 * The blocks are host memory, so they also count against the host memory budget
 * (engine/base/hostmem.h); a refusal there is the MemoryError's message.
 * KILN_SIM_CAPACITY=BYTES (read at the first allocation; suffixes k, M, G for KiB, MiB,
 * GiB) gives the simulated device that much memory: the raw allocations past it fail,
 * so the allocator's out-of-memory path (release the cache, retry, then the message
 * with the size asked for and what is free) runs as it would on a full GPU. Unset: the
 * host's memory, with no limit of its own.
 */
#include "cuda/sim_backend.h"
#include "cuda/cu_alloc.h"
#include "engine/base/hostmem.h"
#include "cuda/kernels/kk_dispatch.h"
#include "cuda/sim/sim_runtime.h"
#include "engine/tensor/kdriver.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cu_allocator *sim_alloc_state;
static pthread_once_t sim_alloc_once = PTHREAD_ONCE_INIT;
static int sim_status[4]; /* the kernels' user-error flag ("device" memory) */

/* the simulated device's memory: KILN_SIM_CAPACITY, 0 for no limit */
static size_t sim_capacity, sim_raw_used;
static pthread_mutex_t sim_raw_lock = PTHREAD_MUTEX_INITIALIZER;
static int sim_host_refused; /* the last raw allocation failed the host budget (engine/base/hostmem.h) */

/* raw blocks carry their size in a 256-byte header (the block stays 256-aligned) */
#define SIM_HEADER 256

static void *sim_raw_alloc(size_t bytes, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&sim_raw_lock);
    int over = sim_capacity && (bytes > sim_capacity || sim_raw_used > sim_capacity - bytes);
    if (!over)
        sim_raw_used += bytes;
    pthread_mutex_unlock(&sim_raw_lock);
    if (over)
        return NULL;
    /* the simulated device's memory is the host's: the host budget applies too */
    sim_host_refused = eng_hostmem_check(bytes, NULL, NULL) < 0;
    void *p = NULL;
    if (sim_host_refused || bytes > SIZE_MAX - SIM_HEADER || posix_memalign(&p, 256, bytes + SIM_HEADER) != 0) {
        pthread_mutex_lock(&sim_raw_lock);
        sim_raw_used -= bytes;
        pthread_mutex_unlock(&sim_raw_lock);
        return NULL;
    }
    memcpy(p, &bytes, sizeof bytes);
    eng_hostmem_track(bytes);
    return (char *)p + SIM_HEADER;
}

static void sim_raw_free(void *p, void *ctx)
{
    (void)ctx;
    if (!p)
        return;
    char *base = (char *)p - SIM_HEADER;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
    pthread_mutex_lock(&sim_raw_lock);
    sim_raw_used -= bytes;
    pthread_mutex_unlock(&sim_raw_lock);
    eng_hostmem_untrack(bytes);
    free(base);
}

/* what cudaMemGetInfo would say: only with a capacity (the host's memory is not ours) */
static int sim_mem_info(size_t *free_bytes, size_t *total_bytes, void *ctx)
{
    (void)ctx;
    if (!sim_capacity)
        return -1;
    pthread_mutex_lock(&sim_raw_lock);
    *total_bytes = sim_capacity;
    *free_bytes = sim_capacity - sim_raw_used;
    pthread_mutex_unlock(&sim_raw_lock);
    return 0;
}

/* "1000000", "64M", "2G", "512k" -> bytes; 0 when unset or malformed */
static size_t parse_capacity(const char *s)
{
    if (!s || !*s)
        return 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0)
        return 0;
    switch (*end) {
    case 'k': case 'K': v *= 1024.0; end++; break;
    case 'm': case 'M': v *= 1024.0 * 1024; end++; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    return *end || v >= 1e18 ? 0 : (size_t)v;
}

static void sim_alloc_init(void)
{
    sim_capacity = parse_capacity(getenv("KILN_SIM_CAPACITY"));
    cu_alloc_ops ops = {sim_raw_alloc, sim_raw_free, sim_mem_info, NULL};
    sim_alloc_state = cu_alloc_new(&ops);
}

static cu_allocator *sim_allocator(void)
{
    pthread_once(&sim_alloc_once, sim_alloc_init);
    return sim_alloc_state;
}

static void *sim_alloc(size_t bytes)
{
    cu_allocator *a = sim_allocator();
    return a ? cu_alloc_get(a, bytes) : NULL;
}

static void sim_free(void *p)
{
    if (p && sim_alloc_state)
        cu_alloc_put(sim_alloc_state, p);
}

static int sim_copy_bytes(void *dst, const void *src, size_t bytes, eng_error *err)
{
    (void)err;
    if (bytes)
        memcpy(dst, src, bytes);
    return 0;
}

static int sim_context(kk_ctx *c, eng_error *err)
{
    (void)err;
    int nt = sim_host_threads();
    c->stream = NULL;
    c->max_blocks = 4 * (nt > 0 ? nt : 1);
    c->status = sim_status;
    return 0;
}

static int sim_fail(int code, const char *what, const kk_ctx *c, eng_error *err)
{
    return eng_fail(err, ERR_RUNTIME, "%s: the simulator's launch failed (%d): %s", what, code,
                    c->msg[0] ? c->msg : "no message");
}

static const kk_device sim_dev = {&kk_sim_ops, &sim_backend, sim_context, sim_fail};

static int sim_unary(op_id op, tensor *out, const tensor *x, double p0, double p1, eng_error *err)
{
    return kk_unary(&sim_dev, op, out, x, p0, p1, err);
}
static int sim_binary(op_id op, tensor *out, const tensor *a, const tensor *b, eng_error *err)
{
    return kk_binary(&sim_dev, op, out, a, b, err);
}
static int sim_reduce(op_id op, tensor *out, const tensor *x, int dim, eng_error *err)
{
    return kk_reduce(&sim_dev, op, out, x, dim, err);
}
static int sim_copy(tensor *dst, const tensor *src, eng_error *err)
{
    return kk_copy(&sim_dev, dst, src, err);
}
static int sim_fill(tensor *dst, double v, eng_error *err)
{
    return kk_fill(&sim_dev, dst, v, err);
}
static int sim_arange(tensor *dst, double start, double step, eng_error *err)
{
    return kk_arange(&sim_dev, dst, start, step, err);
}
static int sim_random(int kind, tensor *dst, const tensor_rng *rng, int64_t lo, int64_t hi, eng_error *err)
{
    return kk_random(&sim_dev, kind, dst, rng, lo, hi, err);
}
static int sim_matmul(tensor *out, const tensor *a, const tensor *c, eng_error *err)
{
    return kk_matmul_tiled(&sim_dev, out, a, c, err);
}
static int sim_where(tensor *out, const tensor *cond, const tensor *a, const tensor *b, eng_error *err)
{
    return kk_where(&sim_dev, out, cond, a, b, err);
}
static int sim_gather(tensor *out, const tensor *x, const tensor *idx, int trusted, eng_error *err)
{
    return kk_gather(&sim_dev, out, x, idx, trusted, err);
}
static int sim_argsort(tensor *idx, const tensor *x, int descending, eng_error *err)
{
    return kk_argsort(&sim_dev, idx, x, descending, err);
}
static int sim_scan(int kind, int flags, tensor *out, const tensor *x, const tensor *w, int dim, eng_error *err)
{
    return kk_scan(&sim_dev, kind, flags, out, x, w, dim, err);
}
static int sim_im2col(tensor *cols, const tensor *x, int kh, int kw, int stride, int pad, eng_error *err)
{
    return kk_im2col(&sim_dev, cols, x, kh, kw, stride, pad, err);
}
static int sim_col2im(tensor *img, const tensor *cols, int kh, int kw, int stride, int pad, eng_error *err)
{
    return kk_col2im(&sim_dev, img, cols, kh, kw, stride, pad, err);
}
static int sim_adamw_step(tensor *p, const tensor *g, tensor *m, tensor *v, const eng_step_args *a, eng_error *err)
{
    return kk_adamw_step(&sim_dev, p, g, m, v, a, err);
}
static int sim_sgd_step(tensor *p, const tensor *g, tensor *buf, const eng_step_args *a, eng_error *err)
{
    return kk_sgd_step(&sim_dev, p, g, buf, a, err);
}
static int sim_cross_entropy(tensor *rows, const tensor *logits, const tensor *labels, int check, eng_error *err)
{
    return kk_cross_entropy(&sim_dev, rows, logits, labels, check, err);
}
static int sim_cross_entropy_backward(tensor *dx, const tensor *logits, const tensor *labels, const tensor *gout,
                                    double scale, eng_error *err)
{
    return kk_cross_entropy_backward(&sim_dev, dx, logits, labels, gout, scale, err);
}

static void sim_last_oom(char *buf, size_t len)
{
    if (sim_host_refused)
        eng_hostmem_last(buf, len);
    else if (sim_alloc_state)
        cu_alloc_last_error(sim_alloc_state, buf, len);
    else if (len)
        buf[0] = 0;
}

size_t sim_backend_capacity(void)
{
    sim_allocator();
    return sim_capacity;
}

void sim_backend_stats(cu_alloc_stats *out)
{
    cu_allocator *a = sim_allocator();
    if (a)
        cu_alloc_get_stats(a, out);
    else
        memset(out, 0, sizeof *out);
}

const eng_backend sim_backend = {
    .name = "sim",
    .alloc = sim_alloc,
    .free = sim_free,
    .to_host = sim_copy_bytes,
    .from_host = sim_copy_bytes,
    .unary = sim_unary,
    .binary = sim_binary,
    .reduce = sim_reduce,
    .copy = sim_copy,
    .fill = sim_fill,
    .arange = sim_arange,
    .random = sim_random,
    .matmul = sim_matmul,
    .where = sim_where,
    .gather = sim_gather,
    .argsort = sim_argsort,
    .scan = sim_scan,
    .im2col = sim_im2col,
    .col2im = sim_col2im,
    .adamw_step = sim_adamw_step,
    .sgd_step = sim_sgd_step,
    .cross_entropy = sim_cross_entropy,
    .cross_entropy_backward = sim_cross_entropy_backward,
    .kernels = &sim_kdriver, /* cell kernels on sim tensors (host memory): the simulator */
    .last_oom = sim_last_oom,
    .alloc_stats = sim_backend_stats,
    .capacity = sim_backend_capacity,
};
