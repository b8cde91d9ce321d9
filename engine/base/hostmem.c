/* hostmem.c — checked sizes and the host memory budget of hostmem.h: a process-wide
 * count of tracked bytes, an optional limit, and what the machine has available
 * (/proc/meminfo and the cgroup), read at the time of each large request. */
#include "engine/base/hostmem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the largest byte count a tensor may have: int64 byte offsets stay exact */
#define HOSTMEM_MAX_BYTES ((size_t)1 << 62)

static size_t used;                    /* tracked bytes (atomic) */
static size_t limit;                   /* 0: none (atomic) */
static char limit_source[160];         /* who set it, or why the variable was ignored */
static pthread_once_t limit_once = PTHREAD_ONCE_INIT;
static __thread char last[400];        /* this thread's last refusal's reason (as cu_alloc's
                                        * message: one session's never another's) */

void eng_human_bytes(char *buf, size_t len, double b)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (b >= 1024 && u < 6) {
        b /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f B", b);
    else
        snprintf(buf, len, "%.2f %s", b, units[u]);
}

int eng_parse_bytes(const char *s, size_t *out)
{
    if (!s)
        return -1;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!(*s >= '0' && *s <= '9') && *s != '.')
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0))
        return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && (end[0] == 'i' || end[0] == 'I') && (end[1] == 'B' || end[1] == 'b'))
        end += 2;
    else if (end[0] == 'B' || end[0] == 'b')
        end++;
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    v *= mul;
    if (*end || v >= 9.2e18)
        return -1;
    *out = (size_t)v;
    return 0;
}

/* ---- sizes ---- */

char *eng_shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int d = 0; d < ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

int eng_shape_bytes(const char *op, int ndim, const int64_t *shape, size_t esize, const char *dtype_name,
                    int64_t *numel, size_t *bytes, eng_error *err)
{
    size_t n = 1, b = 0; /* n: the product of the non-zero dims (NumPy's rule: an empty
                          * tensor's strides are still products of its dims) */
    int over = 0, empty = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            char sb[ENG_SHAPE_BUF];
            return eng_fail(err, ERR_VALUE, "%s: negative dimension in shape %s", op,
                            eng_shape_str(ndim, shape, sb, sizeof sb));
        }
        if (shape[d] == 0)
            empty = 1;
        else if (eng_size_mul(n, (size_t)shape[d], &n) < 0)
            over = 1;
    }
    if (!over && (eng_size_mul(n, esize ? esize : 1, &b) < 0 || b > HOSTMEM_MAX_BYTES))
        over = 1;
    if (over) {
        char sb[ENG_SHAPE_BUF];
        return eng_fail(err, ERR_MEMORY, "%s: shape %s%s%s is too large: its size passes 2^62 bytes", op,
                        eng_shape_str(ndim, shape, sb, sizeof sb), dtype_name ? " of " : "",
                        dtype_name ? dtype_name : "");
    }
    if (numel)
        *numel = empty ? 0 : (int64_t)n;
    if (bytes)
        *bytes = empty ? 0 : b;
    return 0;
}

/* ---- the limit ---- */

static void limit_init(void)
{
    const char *env = getenv("KILN_HOST_MEMORY_LIMIT");
    size_t v;
    if (!env || !*env)
        return;
    if (eng_parse_bytes(env, &v) < 0)
        snprintf(limit_source, sizeof limit_source,
                 "KILN_HOST_MEMORY_LIMIT=%.60s is not a size (as 2G, 512M): ignored", env);
    else if (v > 0) {
        limit = v;
        snprintf(limit_source, sizeof limit_source, "KILN_HOST_MEMORY_LIMIT");
    }
}

size_t eng_hostmem_limit(void)
{
    pthread_once(&limit_once, limit_init);
    return __atomic_load_n(&limit, __ATOMIC_RELAXED);
}

void eng_hostmem_set_limit(size_t bytes, const char *source)
{
    pthread_once(&limit_once, limit_init);
    __atomic_store_n(&limit, bytes, __ATOMIC_RELAXED);
    snprintf(limit_source, sizeof limit_source, "%s", bytes ? source : "");
}

const char *eng_hostmem_limit_source(void)
{
    pthread_once(&limit_once, limit_init);
    return limit_source;
}

void eng_hostmem_track(size_t bytes) { __atomic_add_fetch(&used, bytes, __ATOMIC_RELAXED); }
void eng_hostmem_untrack(size_t bytes) { __atomic_sub_fetch(&used, bytes, __ATOMIC_RELAXED); }
size_t eng_hostmem_used(void) { return __atomic_load_n(&used, __ATOMIC_RELAXED); }

/* ---- the machine ---- */

/* the value of "key" (in kB) in a /proc-style file, in bytes; SIZE_MAX if absent */
static size_t read_kv(const char *path, const char *key, size_t unit)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return SIZE_MAX;
    char line[256];
    size_t klen = strlen(key), r = SIZE_MAX;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && (line[klen] == ':' || line[klen] == ' ')) {
            unsigned long long v = strtoull(line + klen + 1, NULL, 10);
            r = v > SIZE_MAX / unit ? SIZE_MAX : (size_t)v * unit;
            break;
        }
    fclose(f);
    return r;
}

/* one number in a file ("max" or absent: SIZE_MAX) */
static size_t read_number(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return SIZE_MAX;
    char line[64] = "";
    size_t r = SIZE_MAX;
    if (fgets(line, sizeof line, f) && line[0] >= '0' && line[0] <= '9') {
        unsigned long long v = strtoull(line, NULL, 10);
        r = v >= (1ULL << 60) ? SIZE_MAX : (size_t)v; /* cgroup v1's "no limit" is near 2^63 */
    }
    fclose(f);
    return r;
}

/* the room under the cgroup's limit (v2, else v1): limit less usage, with the
 * reclaimable page cache (inactive files) counted as free */
static size_t cgroup_room(void)
{
    size_t max = read_number("/sys/fs/cgroup/memory.max"), cur, cache;
    if (max != SIZE_MAX) {
        cur = read_number("/sys/fs/cgroup/memory.current");
        cache = read_kv("/sys/fs/cgroup/memory.stat", "inactive_file", 1);
    } else {
        max = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
        if (max == SIZE_MAX)
            return SIZE_MAX;
        cur = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
        cache = read_kv("/sys/fs/cgroup/memory/memory.stat", "total_inactive_file", 1);
    }
    if (cur == SIZE_MAX)
        return SIZE_MAX;
    if (cache != SIZE_MAX && cache <= cur)
        cur -= cache;
    return cur >= max ? 0 : max - cur;
}

/* the process's resident bytes (/proc/self/statm); SIZE_MAX if unknown */
static size_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size, resident;
    size_t r = SIZE_MAX;
    if (!f)
        return r;
    if (fscanf(f, "%llu %llu", &size, &resident) == 2)
        r = (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
    fclose(f);
    return r;
}

size_t eng_hostmem_available(void)
{
    size_t avail = read_kv("/proc/meminfo", "MemAvailable", 1024), room = cgroup_room();
    if (room < avail)
        avail = room;
    /* tracked blocks not yet touched (empty(...)) are not counted by the system yet, but
     * will be: take them off, as far as the process's resident size does not hold them */
    size_t held = eng_hostmem_used(), rss = resident_bytes();
    if (avail != SIZE_MAX && rss != SIZE_MAX && held > rss)
        avail = held - rss < avail ? avail - (held - rss) : 0;
    return avail;
}

/* ---- checks ---- */

static int refuse(const char *what, eng_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(const char *what, eng_error *err, const char *fmt, ...)
{
    char why[sizeof last];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    memcpy(last, why, sizeof last);
    return eng_fail(err, ERR_MEMORY, "%s: out of memory: %s", what ? what : "allocation", why);
}

int eng_hostmem_check_limit(size_t bytes, const char *what, eng_error *err)
{
    size_t lim = eng_hostmem_limit(), u = eng_hostmem_used(), total;
    if (!lim || !bytes || (eng_size_add(u, bytes, &total) == 0 && total <= lim))
        return 0; /* nothing asked for always fits: x = zeros(0) frees x under any limit */
    char a[32], l[32], h[32];
    eng_human_bytes(a, sizeof a, (double)bytes);
    eng_human_bytes(l, sizeof l, (double)lim);
    eng_human_bytes(h, sizeof h, (double)u);
    return refuse(what, err, "asked for %s (%zu bytes), over the host memory limit of %s (%s) with %s in use", a,
                  bytes, l, eng_hostmem_limit_source(), h);
}

int eng_hostmem_check(size_t bytes, const char *what, eng_error *err)
{
    if (eng_hostmem_check_limit(bytes, what, err) < 0)
        return -1;
    if (bytes < HOSTMEM_PROBE)
        return 0;
    size_t avail = eng_hostmem_available();
    if (avail == SIZE_MAX || bytes <= avail / 4 * 3)
        return 0;
    char a[32], h[32];
    eng_human_bytes(a, sizeof a, (double)bytes);
    eng_human_bytes(h, sizeof h, (double)avail);
    return refuse(what, err,
                  "asked for %s (%zu bytes), but the machine has %s available and one allocation may take at "
                  "most three quarters of that (set a limit with %%memory limit or KILN_HOST_MEMORY_LIMIT)",
                  a, bytes, h);
}

void *eng_host_malloc(size_t bytes, const char *what, eng_error *err)
{
    if (eng_hostmem_check(bytes, what, err) < 0)
        return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        eng_hostmem_note_failure(bytes);
        char why[sizeof last];
        eng_hostmem_last(why, sizeof why);
        eng_fail(err, ERR_MEMORY, "%s: out of memory: %s", what ? what : "allocation", why);
    }
    return p;
}

void eng_hostmem_last(char *buf, size_t len)
{
    if (!len)
        return;
    snprintf(buf, len, "%s", last);
}

void eng_hostmem_note_failure(size_t bytes)
{
    char a[32];
    eng_human_bytes(a, sizeof a, (double)bytes);
    refuse(NULL, NULL, "asked for %s (%zu bytes) and the system refused it", a, bytes);
}
