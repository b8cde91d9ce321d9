/* strbuf.h — a growable, NUL-terminated byte buffer for building text and files.
 * The owner frees p (or takes it with strbuf_finish). An allocation failure sets oom
 * and makes later appends do nothing, so callers check once at the end. */
#ifndef KILN_STRBUF_H
#define KILN_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *p;         /* the bytes, malloc'ed, NUL-terminated; NULL while empty */
    size_t len, cap; /* bytes used (without the NUL) and allocated */
    int oom;         /* an allocation failed */
} strbuf;

void strbuf_put(strbuf *b, const void *s, size_t n);
void strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* the text (an empty string when nothing was put), or NULL after a failed allocation;
 * the caller owns it */
char *strbuf_finish(strbuf *b);

#endif
