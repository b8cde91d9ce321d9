/* arena.c — bump allocator in chained blocks, reference-counted. */
#include "engine/base/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *next; /* older block */
    size_t used, cap;   /* bytes used and available in data */
    _Alignas(16) unsigned char data[];
} block;

struct arena {
    int refcount; /* the cell being run, and functions defined in it */
    block *head;  /* newest block */
};

arena *arena_new(void)
{
    arena *a = calloc(1, sizeof *a);
    if (a)
        a->refcount = 1;
    return a;
}

void arena_incref(arena *a) { a->refcount++; }

void arena_decref(arena *a)
{
    if (!a || --a->refcount > 0)
        return;
    for (block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
}

void *arena_alloc(arena *a, size_t n)
{
    if (n > SIZE_MAX / 4) /* the rounding and the header below must not wrap */
        return NULL;
    n = (n + 15) & ~(size_t)15;
    block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}
