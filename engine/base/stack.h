/* stack.h — how much C stack the running thread has left, for the recursive walkers.
 *
 * The parser, the checker and the interpreter recurse over the syntax tree, so a long
 * operator chain (`1+1+...+1`, `x.T.T...`) or deep recursion in user code uses C stack
 * in proportion. Counting levels is no bound on stack use (counts multiply: 40 nested
 * operators in a function called 1,000 deep), so each recursive entry compares the
 * stack pointer with a limit computed once per thread from the thread's real stack
 * (pthread_getattr_np, else getrlimit), which leaves a reserve for the deepest built-in
 * below the last check (printf, BLAS, dlopen, the compiler driver). Crossing the limit
 * is an error that travels up to the cell, never a crash.
 *
 * kiln runs its commands on a thread with a 64 MB stack (kernel/main.c), lazily
 * committed, so that legitimate deep code has room; the guard holds on any thread.
 * Stacks grow down on every target kiln builds for.
 */
#ifndef KILN_STACK_H
#define KILN_STACK_H

#include <stddef.h>
#include <stdint.h>

/* The lowest stack address the recursion may reach on this thread (cached per thread;
 * the first call asks the system). */
uintptr_t eng_stack_limit(void);

/* Bytes of this thread's stack the recursion may use (its size less the reserve), for
 * messages. */
size_t eng_stack_usable(void);

/* The stack pointer, the real one even where AddressSanitizer keeps locals on a fake
 * stack. */
static inline uintptr_t eng_stack_pointer(void)
{
    uintptr_t sp;
#if defined(__GNUC__) && defined(__x86_64__)
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__ volatile("mov %0, sp" : "=r"(sp));
#else
    sp = (uintptr_t)__builtin_frame_address(0);
#endif
    return sp;
}

/* Has the recursion used the stack down to limit? One compare: cheap enough for every
 * eval(). */
static inline int eng_stack_exhausted(uintptr_t limit)
{
    return eng_stack_pointer() < limit;
}

#endif
