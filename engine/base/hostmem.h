/* hostmem.h — checked size arithmetic, and the host memory budget.
 *
 * Sizes: every byte count formed from user numbers (a shape times a dtype size, a
 * string's length, a header's dimensions) is computed with eng_size_mul / eng_size_add
 * (__builtin_*_overflow), or with eng_shape_bytes, which names the op and the shape when
 * the count does not fit; nothing wraps to a small allocation.
 *
 * Budget: host memory the user's numbers ask for is refused with a MemoryError, and the
 * session goes on, instead of being taken by the OOM killer. A request is refused when
 *   - a limit is set (KILN_HOST_MEMORY_LIMIT at start, `%memory limit SIZE` from a cell)
 *     and the tracked bytes in use (the CPU backend's tensor storage, the sim backend's
 *     memory and strings) plus the request pass it; or
 *   - it is HOSTMEM_PROBE bytes or more and more than three quarters of what the machine
 *     has available at the time of the request: MemAvailable in /proc/meminfo, and the
 *     cgroup's limit less its usage where one is set, less what this process holds
 *     without having touched it yet.
 * Transient buffers (a tensor's copy to the host, a file's bytes, formatted text) are
 * checked without being tracked. The count and the limit are process-wide (the memory
 * is the process's, whatever session holds it); the last refusal's reason is per thread.
 */
#ifndef KILN_HOSTMEM_H
#define KILN_HOSTMEM_H

#include <stddef.h>
#include <stdint.h>
#include "engine/base/error.h"

/* requests of at least this many bytes also ask the machine what is available */
#define HOSTMEM_PROBE ((size_t)16 << 20)

/* a * b or a + b into *out; 0, or -1 when it does not fit a size_t */
static inline int eng_size_mul(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out) ? -1 : 0; }
static inline int eng_size_add(size_t a, size_t b, size_t *out) { return __builtin_add_overflow(a, b, out) ? -1 : 0; }

/* The element count and byte count of shape (ndim dims, each >= 0) with elements of
 * esize bytes. -1 with a MemoryError "op: shape [..] of NAME is too large: its size
 * passes 2^62 bytes" when the product of its non-zero dims times esize passes 2^62
 * (byte offsets and strides in int64 stay exact; an empty tensor keeps its dims); numel
 * or bytes may be NULL. dtype_name may be NULL. */
int eng_shape_bytes(const char *op, int ndim, const int64_t *shape, size_t esize, const char *dtype_name,
                    int64_t *numel, size_t *bytes, eng_error *err);

/* 0 when bytes may be allocated now (the limit and the machine), else -1 with the
 * reason kept for eng_hostmem_last and, when err is given, the MemoryError
 * "what: out of memory: asked for ...". */
int eng_hostmem_check(size_t bytes, const char *what, eng_error *err);
/* the same, against the limit only (memory already held, as a reused cached block) */
int eng_hostmem_check_limit(size_t bytes, const char *what, eng_error *err);
/* malloc(bytes) after eng_hostmem_check (not tracked); NULL with err filled */
void *eng_host_malloc(size_t bytes, const char *what, eng_error *err);

/* tracked bytes held (the CPU backend's blocks, the sim backend's, strings) */
void eng_hostmem_track(size_t bytes);
void eng_hostmem_untrack(size_t bytes);
size_t eng_hostmem_used(void);

/* the reason of the last refusal ("asked for 1.00 GiB (1073741824 bytes), ..."): the
 * CPU backend's last_oom; and the note of a malloc that failed after the checks passed */
void eng_hostmem_last(char *buf, size_t len);
void eng_hostmem_note_failure(size_t bytes);

/* the limit in bytes, 0 for none; KILN_HOST_MEMORY_LIMIT is read at the first call */
size_t eng_hostmem_limit(void);
/* sets it (0: none); source says who set it, for messages ("%memory limit") */
void eng_hostmem_set_limit(size_t bytes, const char *source);
/* where the limit came from ("KILN_HOST_MEMORY_LIMIT", "%memory limit"), or a note
 * when the variable was malformed and ignored; "" when no limit */
const char *eng_hostmem_limit_source(void);
/* what the machine has available now (MemAvailable, the cgroup's room), less the
 * tracked bytes the process holds but has not touched yet (empty(...): the system does
 * not count them until they are written); in bytes, SIZE_MAX when unknown */
size_t eng_hostmem_available(void);

/* "2G", "512M", "64k", "1.5G", "1048576" (K, M, G, T: powers of 1024; an optional
 * "iB" or "B" after) into bytes; -1 when malformed or out of range */
int eng_parse_bytes(const char *s, size_t *out);
/* "1.50 GiB" */
void eng_human_bytes(char *buf, size_t len, double bytes);
/* A shape as "[2, 3]" into buf (ENG_SHAPE_BUF bytes are always enough); returns buf. */
char *eng_shape_str(int ndim, const int64_t *shape, char *buf, size_t size);
#define ENG_SHAPE_BUF 200

#endif
