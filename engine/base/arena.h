/* arena.h — bump allocation for a cell's syntax tree and text.
 *
 * Everything parsed from one cell lives in its arena and goes at once when the
 * arena's last reference is dropped: the running cell holds one, and every function
 * defined in the cell holds one, so a function outlives the cell that defined it.
 */
#ifndef KILN_ARENA_H
#define KILN_ARENA_H

#include <stddef.h>

typedef struct arena arena;

arena *arena_new(void);                 /* refcount 1; NULL on allocation failure */
void arena_incref(arena *a);
void arena_decref(arena *a);
void *arena_alloc(arena *a, size_t n);  /* zeroed, 16-byte aligned; NULL on failure */
char *arena_strndup(arena *a, const char *s, size_t n);

#endif
