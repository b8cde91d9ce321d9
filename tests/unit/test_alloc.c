/* test_alloc.c — the CUDA backend's caching allocator (cuda/cu_alloc.c) on host memory
 * with an artificial capacity: size classes, reuse without raw frees, statistics, and
 * out-of-memory (release the cache, retry, then a clean error naming the size). */
#include "cuda/cu_alloc.h"
#include "tests/unit/check.h"

#include <stdlib.h>

typedef struct fake_dev {
    size_t capacity; /* bytes the fake device has */
    size_t used;     /* bytes raw-allocated now */
    int n_alloc, n_free;
} fake_dev;

/* each raw block carries its size in a header, so raw_free can account for it */
static void *fake_alloc(size_t bytes, void *ctx)
{
    fake_dev *d = ctx;
    if (d->used + bytes > d->capacity)
        return NULL;
    size_t *p = malloc(bytes + 16);
    if (!p)
        return NULL;
    p[0] = bytes;
    memset(p + 2, 0xab, bytes < 64 ? bytes : 64);
    d->used += bytes;
    d->n_alloc++;
    return p + 2;
}

static void fake_free(void *q, void *ctx)
{
    fake_dev *d = ctx;
    size_t *p = (size_t *)q - 2;
    d->used -= p[0];
    d->n_free++;
    free(p);
}

static int fake_info(size_t *f, size_t *t, void *ctx)
{
    fake_dev *d = ctx;
    *f = d->capacity - d->used;
    *t = d->capacity;
    return 0;
}

static void test_round(void)
{
    CHECK(cu_alloc_round(0) == 512);
    CHECK(cu_alloc_round(1) == 512);
    CHECK(cu_alloc_round(512) == 512);
    CHECK(cu_alloc_round(513) == 1024);
    CHECK(cu_alloc_round((1 << 20) - 1) == (1 << 20));
    CHECK(cu_alloc_round(1 << 20) == (2 << 20));       /* 2 MiB granules from 1 MiB */
    CHECK(cu_alloc_round((2 << 20) + 1) == (4 << 20));
    CHECK(cu_alloc_round((size_t)100 << 20) == (size_t)104 << 20); /* 8 MiB steps at 64..128 MiB */
    CHECK(cu_alloc_round((size_t)1 << 30) == (size_t)1 << 30);
    CHECK(cu_alloc_round(((size_t)1 << 30) + 1) == ((size_t)1 << 30) + ((size_t)128 << 20));
    /* waste is at most 12.5 % above 16 MiB */
    for (size_t s = (size_t)16 << 20; s < (size_t)8 << 30; s = s * 3 / 2 + 12345)
        CHECK(cu_alloc_round(s) >= s && cu_alloc_round(s) - s <= s / 8);
}

static void test_reuse_and_stats(void)
{
    fake_dev d = {.capacity = (size_t)64 << 20};
    cu_alloc_ops ops = {fake_alloc, fake_free, fake_info, &d};
    cu_allocator *a = cu_alloc_new(&ops);
    CHECK(a != NULL);
    cu_alloc_stats st;
    void *p = cu_alloc_get(a, 1000);
    CHECK(p != NULL);
    CHECK(cu_alloc_block_size(a, p) == 1024);
    cu_alloc_get_stats(a, &st);
    CHECK(st.in_use == 1024 && st.requested == 1000 && st.cached == 0 && st.n_raw_alloc == 1);
    cu_alloc_put(a, p);
    cu_alloc_get_stats(a, &st);
    CHECK(st.in_use == 0 && st.cached == 1024 && st.reserved == 1024 && st.n_raw_free == 0);
    /* a churn loop of the same size: one raw allocation in all, no raw frees */
    for (int i = 0; i < 1000; i++) {
        void *q = cu_alloc_get(a, 900 + (size_t)(i % 100)); /* all class 1024 */
        CHECK(q == p);
        cu_alloc_put(a, q);
    }
    cu_alloc_get_stats(a, &st);
    CHECK(st.n_raw_alloc == 1 && st.n_raw_free == 0 && st.n_hit == 1000 && st.n_alloc == 1001);
    CHECK(d.n_alloc == 1 && d.n_free == 0);
    /* a cached block up to a quarter larger serves a smaller class; a much larger one not */
    void *big = cu_alloc_get(a, (size_t)10 << 20); /* class 10 MiB */
    cu_alloc_put(a, big);
    void *b2 = cu_alloc_get(a, (size_t)9 << 20); /* class 10 MiB again (2 MiB steps) */
    CHECK(b2 == big);
    cu_alloc_put(a, b2);
    void *small = cu_alloc_get(a, (size_t)3 << 20); /* class 4 MiB: 10 MiB is too big */
    CHECK(small != big);
    /* peak and live accounting with several blocks */
    void *many[10];
    for (int i = 0; i < 10; i++)
        many[i] = cu_alloc_get(a, 4096);
    cu_alloc_get_stats(a, &st);
    CHECK(st.in_use == ((size_t)4 << 20) + 10 * 4096);
    CHECK(st.peak >= st.in_use);
    for (int i = 0; i < 10; i++)
        cu_alloc_put(a, many[i]);
    cu_alloc_put(a, small);
    cu_alloc_get_stats(a, &st);
    CHECK(st.in_use == 0 && st.requested == 0);
    CHECK(st.reserved == d.used); /* everything the fake device holds is our cache */
    cu_alloc_reset_peak(a);
    cu_alloc_get_stats(a, &st);
    CHECK(st.peak == 0);
    /* unknown pointers are counted, not freed */
    int x;
    cu_alloc_put(a, &x);
    CHECK(cu_alloc_bad_puts(a) == 1);
    size_t rel = cu_alloc_release_cache(a);
    CHECK(rel == st.cached);
    CHECK(d.used == 0);
    cu_alloc_destroy(a);
}

static void test_oom(void)
{
    fake_dev d = {.capacity = (size_t)16 << 20};
    cu_alloc_ops ops = {fake_alloc, fake_free, fake_info, &d};
    cu_allocator *a = cu_alloc_new(&ops);
    cu_alloc_stats st;
    /* fill the cache with 6 MiB of freed blocks, keep 4 MiB live */
    void *live = cu_alloc_get(a, (size_t)4 << 20);
    void *c1 = cu_alloc_get(a, (size_t)2 << 20), *c2 = cu_alloc_get(a, (size_t)4 << 20);
    CHECK(live && c1 && c2);
    cu_alloc_put(a, c1);
    cu_alloc_put(a, c2);
    /* 10 MiB does not fit beside 10 MiB reserved: the cache goes, the retry succeeds */
    void *p = cu_alloc_get(a, (size_t)10 << 20);
    CHECK(p != NULL);
    cu_alloc_get_stats(a, &st);
    CHECK(st.n_flush == 1 && st.cached == 0 && st.n_oom == 0);
    CHECK(st.in_use == ((size_t)14 << 20));
    /* past capacity: a clean failure with a message naming the size and what is free */
    void *q = cu_alloc_get(a, (size_t)8 << 20);
    CHECK(q == NULL);
    cu_alloc_get_stats(a, &st);
    CHECK(st.n_oom == 1);
    char msg[400];
    cu_alloc_last_error(a, msg, sizeof msg);
    CHECK(strstr(msg, "asked for 8.00 MiB") != NULL);
    CHECK(strstr(msg, "2.00 MiB free of 16.00 MiB") != NULL);
    CHECK(strstr(msg, "live tensors hold 14.00 MiB") != NULL);
    /* and the allocator goes on working */
    cu_alloc_put(a, p);
    q = cu_alloc_get(a, (size_t)8 << 20);
    CHECK(q != NULL);
    cu_alloc_put(a, q);
    cu_alloc_put(a, live);
    /* many live blocks: the hash table grows and finds them all */
    enum { NB = 3000 };
    void **bs = malloc(sizeof(void *) * NB);
    for (int i = 0; i < NB; i++)
        bs[i] = cu_alloc_get(a, 512 * (size_t)(1 + i % 7));
    for (int i = 0; i < NB; i++)
        CHECK(cu_alloc_block_size(a, bs[i]) == 512 * (size_t)(1 + i % 7));
    for (int i = NB - 1; i >= 0; i--)
        cu_alloc_put(a, bs[i]);
    free(bs);
    cu_alloc_get_stats(a, &st);
    CHECK(st.in_use == 0 && cu_alloc_bad_puts(a) == 0);
    cu_alloc_destroy(a);
    CHECK(d.used == 0);
}

int main(void)
{
    test_round();
    test_reuse_and_stats();
    test_oom();
    return check_finish("test_alloc");
}
