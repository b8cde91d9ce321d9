/* stack.c — the running thread's stack bounds, for the guard in engine/base/stack.h.
 *
 * The bounds come from pthread_getattr_np (a thread's stack as created; for the main
 * thread glibc derives it from RLIMIT_STACK and the mappings), else from getrlimit
 * measured from the stack pointer at the first call. The reserve kept below the limit
 * is an eighth of the stack, at least 512 KB and at most 8 MB: room for whatever a
 * built-in calls after the interpreter's last check.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/resource.h>

#include "engine/base/stack.h"

#define STACK_RESERVE_MIN ((size_t)512 << 10)
#define STACK_RESERVE_MAX ((size_t)8 << 20)
#define STACK_FALLBACK ((size_t)8 << 20) /* when the system says nothing useful */

static __thread uintptr_t tls_top;   /* the stack's highest address (0: not asked yet) */
static __thread uintptr_t tls_limit; /* lowest address the recursion may reach */

static void stack_init(void)
{
    uintptr_t sp = eng_stack_pointer();
    uintptr_t lo = 0, top = 0;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr = NULL;
        size_t size = 0;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr && size) {
            lo = (uintptr_t)addr;
            top = lo + size;
        }
        pthread_attr_destroy(&attr);
    }
    if (!top || sp < lo || sp > top) {
        /* unknown: assume the soft limit (or 8 MB) counted from here, a little above */
        struct rlimit rl;
        size_t size = STACK_FALLBACK;
        if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < size)
            size = (size_t)rl.rlim_cur;
        top = sp + (64 << 10);
        lo = top > size ? top - size : 0;
    }
    size_t size = top - lo;
    size_t reserve = size / 8;
    if (reserve < STACK_RESERVE_MIN)
        reserve = STACK_RESERVE_MIN;
    if (reserve > STACK_RESERVE_MAX)
        reserve = STACK_RESERVE_MAX;
    if (reserve > size / 2)
        reserve = size / 2;
    tls_top = top;
    tls_limit = lo + reserve;
}

uintptr_t eng_stack_limit(void)
{
    if (!tls_top)
        stack_init();
    return tls_limit;
}

size_t eng_stack_usable(void)
{
    if (!tls_top)
        stack_init();
    return tls_top - tls_limit;
}
