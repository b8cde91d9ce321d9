/* strbuf.c — the growable buffer of strbuf.h; large growth asks engine/base/hostmem.h. */
#include "engine/base/strbuf.h"
#include "engine/base/hostmem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_put(strbuf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    size_t need;
    if (eng_size_add(b->len, n, &need) < 0 || eng_size_add(need, 1, &need) < 0 || need > ((size_t)1 << 62)) {
        b->oom = 1;
        return;
    }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
            cap *= 2;
        /* large text is checked against the host memory budget (not tracked: it is
         * transient); a refusal makes the caller's MemoryError */
        if (cap >= HOSTMEM_PROBE / 16 && eng_hostmem_check(cap, NULL, NULL) < 0) {
            b->oom = 1;
            return;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void strbuf_printf(strbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        strbuf_put(b, tmp, (size_t)n);
        return;
    }
    char *big = eng_host_malloc((size_t)n + 1, NULL, NULL);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    strbuf_put(b, big, (size_t)n);
    free(big);
}

char *strbuf_finish(strbuf *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p ? b->p : strdup("");
}
