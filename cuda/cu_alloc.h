/* cu_alloc.h — the CUDA backend's caching allocator, independent of CUDA.
 *
 * Device memory is slow to get (cudaMalloc synchronises the device and costs tens of
 * microseconds) and slower to give back (cudaFree synchronises too), so the backend
 * never frees on the hot path: a freed block goes to a cache and is handed out again
 * for the next request of its size class. The underlying allocate/free/query functions
 * are function pointers (cu_alloc_ops), so the same logic runs on host memory with an
 * artificial capacity in tests/unit/test_alloc.c and on cudaMalloc in cuda/cu_backend.c.
 *
 * Size classes (cu_alloc_round): requests below 1 MiB round up to a multiple of 512 B;
 * from 1 MiB on they round up to a multiple of max(2 MiB, 2^floor(log2(size)) / 8), so a
 * large block wastes at most 12.5 %. A cached block serves a request when its size is
 * the request's class or above by at most a quarter (blocks are never split).
 *
 * Out of memory: when the raw allocation fails, every cached block is released and the
 * allocation retried once; if it still fails, the allocator counts an OOM, records a
 * message naming the size asked for, what the device reports free and what this
 * allocator holds (cu_alloc_last_error), and returns NULL. The engine, which knows the
 * variables' names, adds the largest live tensors to the cell's error (not done here).
 *
 * Ownership: the allocator owns the cached blocks; a caller owns a block from
 * cu_alloc_get until cu_alloc_put. All functions are thread-safe (one mutex).
 */
#ifndef KILN_CU_ALLOC_H
#define KILN_CU_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include "engine/tensor/backend.h"

/* The memory underneath. */
typedef struct cu_alloc_ops {
    void *(*raw_alloc)(size_t bytes, void *ctx);  /* NULL when out of memory */
    void (*raw_free)(void *p, void *ctx);
    /* free and total bytes on the device (for the OOM message); may be NULL */
    int (*mem_info)(size_t *free_bytes, size_t *total_bytes, void *ctx);
    void *ctx;                                     /* passed to each */
} cu_alloc_ops;

/* What %gpu shows. */
/* the counters are engine/tensor/backend.h's, so %gpu reads them through the backend */
typedef eng_alloc_stats cu_alloc_stats;

typedef struct cu_allocator cu_allocator;

/* A new allocator over ops (copied); NULL if out of host memory. */
cu_allocator *cu_alloc_new(const cu_alloc_ops *ops);
/* Releases the cache; blocks still handed out are leaked to the raw allocator's owner. */
void cu_alloc_destroy(cu_allocator *a);

/* The size class of a request (> 0; 0 asks for 512 bytes). */
size_t cu_alloc_round(size_t bytes);

/* A block of at least `bytes`, or NULL (see cu_alloc_last_error). */
void *cu_alloc_get(cu_allocator *a, size_t bytes);
/* Gives a block back to the cache. NULL is ignored; an unknown pointer is ignored and
 * counted (cu_alloc_bad_puts), never freed. */
void cu_alloc_put(cu_allocator *a, void *p);
/* Frees every cached block to the raw allocator; returns the bytes released. */
size_t cu_alloc_release_cache(cu_allocator *a);

void cu_alloc_get_stats(cu_allocator *a, cu_alloc_stats *out);
void cu_alloc_reset_peak(cu_allocator *a);
/* The usable size of a block handed out (its class), 0 for an unknown pointer. */
size_t cu_alloc_block_size(cu_allocator *a, const void *p);
/* The message of the calling thread's last failed cu_alloc_get on a ("" if none):
 * copied into buf. Per thread, so sessions on two threads read their own failures. */
void cu_alloc_last_error(cu_allocator *a, char *buf, size_t len);
uint64_t cu_alloc_bad_puts(cu_allocator *a);

/* "1.50 GiB" style, for messages (engine/tensor/backend.c). */
#define cu_alloc_human eng_human_bytes

#endif
