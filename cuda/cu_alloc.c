/* cu_alloc.c — the caching allocator (see cu_alloc.h for the policy).
 *
 * Two tables: the live blocks (an open-addressing hash from pointer to size class and
 * requested bytes, so cu_alloc_put knows a block's size) and the cache (an array of free
 * blocks, searched for the best fit: the smallest block of at least the class and at
 * most a quarter above it). Both grow by doubling; a failure to grow them (host memory)
 * makes the request fail like an out-of-memory, never crash.
 */
#include "cuda/cu_alloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CU_SMALL_LIMIT ((size_t)1 << 20) /* below: 512 B granules */
#define CU_SMALL_GRAIN ((size_t)512)
#define CU_LARGE_GRAIN ((size_t)2 << 20) /* at least 2 MiB granules above */

typedef struct cu_live {
    void *p;          /* NULL: empty slot; CU_TOMB: deleted */
    size_t size;      /* size class */
    size_t requested; /* bytes asked for */
} cu_live;

typedef struct cu_free_block {
    void *p;     /* the block */
    size_t size; /* its size class */
} cu_free_block;

struct cu_allocator {
    cu_alloc_ops ops;       /* the memory underneath */
    pthread_mutex_t lock;   /* guards everything below */
    cu_live *live;          /* hash table, cap a power of two */
    size_t live_cap, live_n, live_used; /* slots, live entries, live + tombstones */
    cu_free_block *cache;   /* free blocks kept for reuse */
    size_t cache_n, cache_cap;
    cu_alloc_stats st;      /* counters */
    uint64_t bad_puts;      /* cu_alloc_put of a pointer we did not hand out */
};

/* The message of this thread's last failed cu_alloc_get, and on which allocator: per
 * thread, so a session running on one thread never reads the failure of a session
 * running on another (tensor.c reads it right after the failed allocation). */
static _Thread_local struct {
    const cu_allocator *a; /* NULL: no failure on this thread yet */
    char msg[400];
} last_error;

static char cu_tomb_byte;
#define CU_TOMB ((void *)&cu_tomb_byte)

size_t cu_alloc_round(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    if (bytes < CU_SMALL_LIMIT)
        return (bytes + CU_SMALL_GRAIN - 1) / CU_SMALL_GRAIN * CU_SMALL_GRAIN;
    size_t top = (size_t)1 << (63 - __builtin_clzll((unsigned long long)bytes));
    size_t grain = top / 8 > CU_LARGE_GRAIN ? top / 8 : CU_LARGE_GRAIN;
    if (bytes > SIZE_MAX - grain)
        return bytes; /* absurd request: let the raw allocator refuse it */
    return (bytes + grain - 1) / grain * grain;
}

cu_allocator *cu_alloc_new(const cu_alloc_ops *ops)
{
    cu_allocator *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->ops = *ops;
    a->live_cap = 256;
    a->live = calloc(a->live_cap, sizeof *a->live);
    if (!a->live) {
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

static size_t live_hash(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static cu_live *live_find(cu_allocator *a, const void *p)
{
    size_t i = live_hash(p, a->live_cap);
    for (size_t k = 0; k < a->live_cap; k++, i = (i + 1) & (a->live_cap - 1)) {
        if (a->live[i].p == NULL)
            return NULL;
        if (a->live[i].p == p)
            return &a->live[i];
    }
    return NULL;
}

/* 0, or -1 when the table cannot grow */
static int live_insert(cu_allocator *a, void *p, size_t size, size_t requested)
{
    if ((a->live_used + 1) * 2 > a->live_cap) {
        size_t ncap = a->live_n * 4 > a->live_cap ? a->live_cap * 2 : a->live_cap;
        cu_live *nt = calloc(ncap, sizeof *nt);
        if (!nt)
            return -1;
        for (size_t i = 0; i < a->live_cap; i++) {
            cu_live *e = &a->live[i];
            if (!e->p || e->p == CU_TOMB)
                continue;
            size_t j = live_hash(e->p, ncap);
            while (nt[j].p)
                j = (j + 1) & (ncap - 1);
            nt[j] = *e;
        }
        free(a->live);
        a->live = nt;
        a->live_cap = ncap;
        a->live_used = a->live_n;
    }
    size_t i = live_hash(p, a->live_cap);
    while (a->live[i].p && a->live[i].p != CU_TOMB)
        i = (i + 1) & (a->live_cap - 1);
    if (!a->live[i].p)
        a->live_used++;
    a->live[i] = (cu_live){p, size, requested};
    a->live_n++;
    return 0;
}

static size_t release_cache_locked(cu_allocator *a)
{
    size_t freed = 0;
    for (size_t i = 0; i < a->cache_n; i++) {
        a->ops.raw_free(a->cache[i].p, a->ops.ctx);
        a->st.n_raw_free++;
        freed += a->cache[i].size;
    }
    a->cache_n = 0;
    a->st.cached = 0;
    a->st.reserved = a->st.in_use;
    return freed;
}

void cu_alloc_destroy(cu_allocator *a)
{
    if (!a)
        return;
    if (last_error.a == a) /* a later allocator may get the same address */
        last_error.a = NULL;
    pthread_mutex_lock(&a->lock);
    release_cache_locked(a);
    pthread_mutex_unlock(&a->lock);
    pthread_mutex_destroy(&a->lock);
    free(a->cache);
    free(a->live);
    free(a);
}

/* index of the best cached block for a class, or -1 */
static long cache_pick(const cu_allocator *a, size_t size)
{
    long best = -1;
    size_t limit = size + size / 4;
    for (size_t i = 0; i < a->cache_n; i++) {
        size_t s = a->cache[i].size;
        if (s >= size && s <= limit && (best < 0 || s < a->cache[best].size)) {
            best = (long)i;
            if (s == size)
                break;
        }
    }
    return best;
}

static void set_oom_message(cu_allocator *a, size_t bytes, size_t size, const char *why)
{
    last_error.a = a;
    char asked[32], fr[32], tot[32], use[32];
    cu_alloc_human(asked, sizeof asked, (double)bytes);
    cu_alloc_human(use, sizeof use, (double)a->st.in_use);
    size_t f = 0, t = 0;
    if (a->ops.mem_info && a->ops.mem_info(&f, &t, a->ops.ctx) == 0) {
        cu_alloc_human(fr, sizeof fr, (double)f);
        cu_alloc_human(tot, sizeof tot, (double)t);
        snprintf(last_error.msg, sizeof last_error.msg,
                 "out of device memory: asked for %s (%zu bytes, class %zu)%s; the device has %s free of %s; "
                 "live tensors hold %s", asked, bytes, size, why, fr, tot, use);
    } else {
        snprintf(last_error.msg, sizeof last_error.msg,
                 "out of device memory: asked for %s (%zu bytes, class %zu)%s; live tensors hold %s", asked,
                 bytes, size, why, use);
    }
}

void *cu_alloc_get(cu_allocator *a, size_t bytes)
{
    size_t size = cu_alloc_round(bytes);
    pthread_mutex_lock(&a->lock);
    void *p = NULL;
    long k = cache_pick(a, size);
    if (k >= 0) {
        p = a->cache[k].p;
        size = a->cache[k].size;
        a->cache[k] = a->cache[--a->cache_n];
        a->st.cached -= size;
        a->st.n_hit++;
    } else {
        p = a->ops.raw_alloc(size, a->ops.ctx);
        if (!p && a->cache_n > 0) {
            a->st.n_flush++;
            release_cache_locked(a);
            p = a->ops.raw_alloc(size, a->ops.ctx);
        }
        if (!p) {
            a->st.n_oom++;
            set_oom_message(a, bytes, size, a->st.n_flush ? " even after releasing the cache" : "");
            pthread_mutex_unlock(&a->lock);
            return NULL;
        }
        a->st.n_raw_alloc++;
    }
    if (live_insert(a, p, size, bytes) < 0) { /* host memory: give it back */
        a->ops.raw_free(p, a->ops.ctx);
        a->st.n_raw_free++;
        if (k >= 0)
            a->st.reserved -= size; /* it came from the cache */
        a->st.n_oom++;
        last_error.a = a;
        snprintf(last_error.msg, sizeof last_error.msg, "out of host memory for the allocator's tables");
        pthread_mutex_unlock(&a->lock);
        return NULL;
    }
    a->st.in_use += size;
    a->st.requested += bytes;
    if (a->st.in_use > a->st.peak)
        a->st.peak = a->st.in_use;
    a->st.reserved = a->st.in_use + a->st.cached;
    a->st.n_alloc++;
    pthread_mutex_unlock(&a->lock);
    return p;
}

void cu_alloc_put(cu_allocator *a, void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&a->lock);
    cu_live *e = live_find(a, p);
    if (!e) {
        a->bad_puts++;
        pthread_mutex_unlock(&a->lock);
        return;
    }
    size_t size = e->size;
    a->st.in_use -= size;
    a->st.requested -= e->requested;
    e->p = CU_TOMB;
    a->live_n--;
    if (a->cache_n == a->cache_cap) {
        size_t ncap = a->cache_cap ? a->cache_cap * 2 : 64;
        cu_free_block *nc = realloc(a->cache, ncap * sizeof *nc);
        if (!nc) { /* cannot cache it: free it */
            a->ops.raw_free(p, a->ops.ctx);
            a->st.n_raw_free++;
            a->st.reserved = a->st.in_use + a->st.cached;
            pthread_mutex_unlock(&a->lock);
            return;
        }
        a->cache = nc;
        a->cache_cap = ncap;
    }
    a->cache[a->cache_n++] = (cu_free_block){p, size};
    a->st.cached += size;
    a->st.reserved = a->st.in_use + a->st.cached;
    pthread_mutex_unlock(&a->lock);
}

size_t cu_alloc_release_cache(cu_allocator *a)
{
    pthread_mutex_lock(&a->lock);
    size_t r = release_cache_locked(a);
    pthread_mutex_unlock(&a->lock);
    return r;
}

void cu_alloc_get_stats(cu_allocator *a, cu_alloc_stats *out)
{
    pthread_mutex_lock(&a->lock);
    *out = a->st;
    pthread_mutex_unlock(&a->lock);
}

void cu_alloc_reset_peak(cu_allocator *a)
{
    pthread_mutex_lock(&a->lock);
    a->st.peak = a->st.in_use;
    pthread_mutex_unlock(&a->lock);
}

size_t cu_alloc_block_size(cu_allocator *a, const void *p)
{
    pthread_mutex_lock(&a->lock);
    cu_live *e = p ? live_find(a, p) : NULL;
    size_t s = e ? e->size : 0;
    pthread_mutex_unlock(&a->lock);
    return s;
}

void cu_alloc_last_error(cu_allocator *a, char *buf, size_t len)
{
    snprintf(buf, len, "%s", last_error.a == a ? last_error.msg : "");
}

uint64_t cu_alloc_bad_puts(cu_allocator *a)
{
    pthread_mutex_lock(&a->lock);
    uint64_t n = a->bad_puts;
    pthread_mutex_unlock(&a->lock);
    return n;
}
