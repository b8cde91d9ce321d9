/* context.c — the per-thread pointer to the running session's context (context.h). */
#include "engine/base/context.h"

#include <string.h>

static _Thread_local eng_ctx *current;   /* the running session's, or NULL */
static _Thread_local eng_ctx own = {.grad_enabled = 1}; /* for threads with no session */

void eng_ctx_init(eng_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->grad_enabled = 1;
}

eng_ctx *eng_ctx_current(void)
{
    return current ? current : &own;
}

eng_ctx *eng_ctx_enter(eng_ctx *c)
{
    eng_ctx *prev = current;
    current = c;
    return prev;
}

void eng_ctx_leave(eng_ctx *prev)
{
    current = prev;
}
