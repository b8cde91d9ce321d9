/* context.h — the session's state that code below the language reaches without a
 * session pointer: the interrupt flag, grad mode, the session's device and the current
 * placement, the out-of-memory note, autograd's bookkeeping and batch_norm's journal.
 *
 * Every eng_session embeds one eng_ctx (engine/lang/interp.h), as a lua_State holds Lua's
 * state, so two sessions in one process never share any of it. The tensor front end,
 * autograd, nn and optim find the running session's context through a per-thread
 * pointer: eng_execute, eng_inspect and eng_session_free make their session's context
 * current on the calling thread for their duration (eng_ctx_enter ... eng_ctx_leave,
 * which nest) and put the previous one back. A thread that runs no session (unit
 * tests, the conformance suite, a backend's worker) gets a context of its own,
 * thread-local, with grad mode on and the device of $KILN_DEVICE. So sessions may take
 * turns on one thread or run on two threads at once.
 *
 * What a session can reach with its own pointer (the optimiser registry, the RNG, the
 * globals) stays in eng_session itself and is passed explicitly.
 *
 * The interrupt flag is the one field written from outside the session's thread:
 * eng_interrupt stores 1 into it from any thread or a signal handler (a lock-free
 * relaxed store to a volatile sig_atomic_t, async-signal-safe). Code that runs on other
 * threads on the session's behalf (the CPU backend's OpenMP workers) takes the flag's
 * address on the calling thread first (eng_ctx_interrupt_flag) and reads it through it.
 */
#ifndef KILN_CONTEXT_H
#define KILN_CONTEXT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct eng_backend;
struct tensor;

/* The session's writer of "largest live tensors on sim: a 64.00 MiB, ..." for a
 * MemoryError on backend be (engine/lang/magic.c's eng_oom_note). */
typedef void (*eng_oom_note_fn)(void *user, const struct eng_backend *be, char *buf, size_t n);

/* batch_norm's running-statistics journal while lr_find runs (engine/train/nn.c) */
typedef struct eng_bn_journal {
    int open, n, cap;
    struct tensor **live, **copy;        /* references: the statistic, its first value */
} eng_bn_journal;

typedef struct eng_ctx {
    volatile sig_atomic_t interrupt;     /* eng_interrupt sets it; cleared when a cell ends */
    int grad_enabled;                    /* autograd records ops (set_grad_enabled); 1 at start */
    const struct eng_backend *device;    /* the session's device (%device); NULL: $KILN_DEVICE's,
                                            resolved at first use (eng_current_backend) */
    const struct eng_backend *placement; /* innermost tensor_place scope, or NULL: device */
    eng_oom_note_fn oom_note;            /* adds the largest variables to MemoryErrors, or NULL */
    void *oom_note_user;                 /* its argument: the session */
    const char *op_context;              /* the built-in running now ("zeros"), named in MemoryErrors */
    /* autograd (engine/train/autograd.c) */
    int64_t ag_live_nodes;               /* nodes allocated and not yet freed */
    void *ag_pending;                    /* nodes waiting to be freed (ag_node_release) */
    int ag_draining;                     /* ag_node_release is freeing the pending list */
    unsigned ag_stamp;                   /* the last visit stamp of backward's sort */
    eng_bn_journal bn_journal;           /* lr_find's, for batch_norm (engine/train/nn.c) */
} eng_ctx;

/* A fresh context: grad mode on, everything else empty. */
void eng_ctx_init(eng_ctx *c);
/* The context of the session running on this thread, or the thread's own. Never NULL. */
eng_ctx *eng_ctx_current(void);
/* Makes c current on this thread; returns what was current (NULL: the thread's own),
 * to hand to eng_ctx_leave. */
eng_ctx *eng_ctx_enter(eng_ctx *c);
void eng_ctx_leave(eng_ctx *prev);

/* The interrupt flag is read and written as a relaxed atomic (a plain load or store on
 * the machines we run on, lock-free, so still async-signal-safe): eng_interrupt stores
 * it from another thread or a signal handler while the session's thread reads it. */
static inline int eng_ctx_flag_get(const volatile sig_atomic_t *f) { return __atomic_load_n(f, __ATOMIC_RELAXED); }
static inline void eng_ctx_flag_set(volatile sig_atomic_t *f, int v) { __atomic_store_n(f, v, __ATOMIC_RELAXED); }

/* The current context's interrupt flag: nonzero once eng_interrupt was called for the
 * running session. Take the pointer before handing work to other threads. */
static inline volatile sig_atomic_t *eng_ctx_interrupt_flag(void) { return &eng_ctx_current()->interrupt; }
static inline int eng_ctx_interrupted(void) { return eng_ctx_flag_get(eng_ctx_interrupt_flag()) != 0; }

#endif
