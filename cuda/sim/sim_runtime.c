/* sim_runtime.c — runs a simulated CUDA grid on the CPU (see sim_runtime.h).
 *
 * Each host thread (OpenMP) owns one sim_block, reused for every block it runs: the
 * simulated threads' sim_thread records, their fibers (stacks kept across blocks), the
 * warps' exchange slots and the dynamic shared buffer (fixed address for the thread's
 * life, because kernels keep a thread_local reference to it). Fibers switch with a few
 * lines of assembly on x86_64 and aarch64 (callee-saved registers and the stack
 * pointer; no signal mask, no syscall), ucontext elsewhere. The scheduler is
 * cooperative round-robin: a fiber runs until it waits at a barrier or returns, then
 * the next runnable fiber in index order runs.
 */
#define _GNU_SOURCE
#include "cuda/sim/sim_runtime.h"

#include <omp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif

#if defined(SIM_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
/* a fiber's stack: a GPU's per-thread limit (512 KiB), mapped MAP_NORESERVE so that only
 * the pages a thread touches cost memory, below a PROT_NONE guard of SIM_GUARD bytes
 * (kernels are built with -fstack-clash-protection, so a large frame probes its pages and
 * meets the guard instead of jumping over it) */
#define SIM_STACK_SIZE (512u * 1024u)
#define SIM_GUARD (64u * 1024u)

#if !defined(SIM_FORCE_UCONTEXT) && (defined(__x86_64__) || defined(__aarch64__))
#define SIM_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

/* ---- context switch ------------------------------------------------------------------ */

#if defined(SIM_ASM_SWITCH)
/* sim_switch(&save_sp, new_sp): pushes the callee-saved registers, stores the stack
 * pointer in *save_sp, loads new_sp and pops the other context's registers. A new
 * fiber's stack is laid out so that the pops end in sim_trampoline with the fiber's
 * function and argument in callee-saved registers. */
void sim_switch(void **save_sp, void *new_sp);
void sim_trampoline(void);
#if defined(__x86_64__)
__asm__(".text\n"
        ".globl sim_switch\n"
        ".hidden sim_switch\n"
        ".type sim_switch,@function\n"
        "sim_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size sim_switch,.-sim_switch\n"
        ".globl sim_trampoline\n"
        ".hidden sim_trampoline\n"
        ".type sim_trampoline,@function\n"
        "sim_trampoline:\n"
        "  movq %rbx, %rdi\n"
        "  callq *%r12\n"
        "  ud2\n"
        ".size sim_trampoline,.-sim_trampoline\n");
#define SIM_FRAME_WORDS 8 /* mxcsr/fpcw word, r15 r14 r13 r12 rbx rbp, return address */
static void *sim_frame_init(char *top, void (*fn)(void *), void *arg) {
    uintptr_t base = ((uintptr_t)top & ~(uintptr_t)15) - 16;
    void **sp = (void **)(base - SIM_FRAME_WORDS * sizeof(void *));
    uint32_t csr[2] = {0x1f80, 0x037f}; /* default MXCSR and x87 control word */
    memcpy(&sp[0], csr, sizeof csr);
    sp[1] = NULL;       /* r15 */
    sp[2] = NULL;       /* r14 */
    sp[3] = NULL;       /* r13 */
    sp[4] = (void *)fn; /* r12 */
    sp[5] = arg;        /* rbx */
    sp[6] = NULL;       /* rbp */
    sp[7] = (void *)sim_trampoline;
    return sp; /* after the 8 pops rsp == base: 16-aligned before the trampoline's call */
}
#else /* aarch64 */
__asm__(".text\n"
        ".globl sim_switch\n"
        ".hidden sim_switch\n"
        ".type sim_switch,%function\n"
        "sim_switch:\n"
        "  sub sp, sp, #176\n"
        "  stp x19, x20, [sp, #0]\n  stp x21, x22, [sp, #16]\n  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n  stp x27, x28, [sp, #64]\n  stp x29, x30, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n  stp d10, d11, [sp, #112]\n  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n  mrs x9, fpcr\n  str x9, [sp, #160]\n"
        "  mov x9, sp\n  str x9, [x0]\n"
        "  mov sp, x1\n"
        "  ldp x19, x20, [sp, #0]\n  ldp x21, x22, [sp, #16]\n  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n  ldp x27, x28, [sp, #64]\n  ldp x29, x30, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n  ldp d10, d11, [sp, #112]\n  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n  ldr x9, [sp, #160]\n  msr fpcr, x9\n"
        "  add sp, sp, #176\n"
        "  ret\n"
        ".size sim_switch,.-sim_switch\n"
        ".globl sim_trampoline\n"
        ".hidden sim_trampoline\n"
        ".type sim_trampoline,%function\n"
        "sim_trampoline:\n"
        "  mov x0, x19\n"
        "  blr x20\n"
        "  brk #0\n"
        ".size sim_trampoline,.-sim_trampoline\n");
static void *sim_frame_init(char *top, void (*fn)(void *), void *arg) {
    uintptr_t base = ((uintptr_t)top & ~(uintptr_t)15) - 16;
    void **sp = (void **)(base - 176);
    memset(sp, 0, 176);
    sp[0] = arg;                   /* x19 */
    sp[1] = (void *)fn;            /* x20 */
    sp[11] = (void *)sim_trampoline; /* x30 */
    return sp;
}
#endif
#endif

/* ---- the per-host-thread block ---------------------------------------------------------- */

enum { F_RUN, F_BAR, F_WARP, F_DONE };

typedef struct sim_fiber {
    char *map;          /* the mapping: guard page + stack */
    size_t map_size;
    void *sp;           /* saved stack pointer (asm switch) */
#if defined(SIM_ASAN)
    void *fake;         /* ASan's fake stack while switched out */
#endif
#if !defined(SIM_ASM_SWITCH)
    ucontext_t uc;
#endif
} sim_fiber;

typedef struct sim_block {
    unsigned cap;                 /* threads the arrays below hold */
    unsigned nfibers;             /* fibers with a stack so far */
    sim_thread *threads;          /* [cap] */
    unsigned char *state;         /* [cap] F_RUN ... */
    const char **bar_file;        /* [cap] where a thread waits at __syncthreads */
    int *bar_line;                /* [cap] */
    const void **bar_site;        /* [cap] the call site's identity */
    sim_fiber *fibers;            /* [cap] */
    unsigned long long *xch;      /* [cap/32 + 1][2][32] warp exchange slots */
    unsigned *warp_arrived;       /* [warps] lanes waiting at the warp barrier */
    unsigned *warp_live;          /* [warps] lanes not returned */
    unsigned *warp_acc;           /* [warps] mask of the lanes that arrived */
    unsigned *warp_mask;          /* [warps] mask of the last completed warp barrier */
    void *dyn_shared;             /* SIM_MAX_SHARED bytes, fixed for the thread's life */

    /* the block being run */
    unsigned n;                   /* threads in the block */
    unsigned live;                /* threads not returned */
    unsigned bar_arrived;         /* threads waiting at __syncthreads */
    unsigned cur;                 /* the running fiber */
    int fibers_mode;              /* 1: fibers, 0: a plain loop */
    int failed;                   /* the block failed: msg holds why */
    char msg[512];
    sim_body body;
    void *args;
    void *sched_sp;               /* the host thread's own context */
#if !defined(SIM_ASM_SWITCH)
    ucontext_t sched_uc;
#endif
#if defined(SIM_ASAN)
    const void *host_stack;       /* the host thread's stack, for ASan's fiber switches */
    size_t host_stack_size;
    void *host_fake;
#endif
    jmp_buf trap_jb;              /* the plain loop's way out of a trapped thread */
    int running;                  /* a block is being run (for sim_fault_describe) */
    char *host_lo;                /* isolated mode: the host thread's stack, its lowest byte */
} sim_block;

static __thread sim_block *tls_block;

/* isolated mode (sim_runtime_isolate): host threads get a signal stack */
static int sim_isolated;

void sim_runtime_isolate(void) { sim_isolated = 1; }

static void rt_syncthreads(sim_thread *t, const char *file, int line, const void *site);
static unsigned rt_syncwarp(sim_thread *t);
static void rt_trap(sim_thread *t, const char *what, const char *file, int line);
static void rt_dbg_line(sim_thread *t, const char *file, int line, const char *func, const sim_dbg_var *vars, int n);
static void rt_dbg_frame(sim_thread *t, const char *func, int enter);
static sim_dbg_target rt_dbg_target;      /* written between launches only */
static sim_dbg_line_fn rt_dbg_line_fn;
static sim_dbg_frame_fn rt_dbg_frame_fn;
static const sim_ops sim_ops_table = {rt_syncthreads, rt_syncwarp, rt_trap, rt_dbg_line, rt_dbg_frame, &rt_dbg_target};

void sim_debug_set(const sim_dbg_target *target, sim_dbg_line_fn line, sim_dbg_frame_fn frame) {
    if (target && target->on) rt_dbg_target = *target;
    else memset(&rt_dbg_target, 0, sizeof rt_dbg_target);
    rt_dbg_line_fn = line;
    rt_dbg_frame_fn = frame;
}

static void rt_dbg_line(sim_thread *t, const char *file, int line, const char *func, const sim_dbg_var *vars, int n) {
    if (rt_dbg_line_fn) rt_dbg_line_fn(t, file, line, func, vars, n);
}

static void rt_dbg_frame(sim_thread *t, const char *func, int enter) {
    if (rt_dbg_frame_fn) rt_dbg_frame_fn(t, func, enter);
}

/* the lowest address and the size of the calling thread's own stack (NULL, 0: unknown) */
static void own_stack(void **lo, size_t *size) {
    pthread_attr_t attr;
    *lo = NULL;
    *size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, lo, size);
        pthread_attr_destroy(&attr);
    }
}

static sim_block *block_get(void) {
    if (tls_block) return tls_block;
    sim_block *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->dyn_shared = aligned_alloc(64, SIM_MAX_SHARED);
    if (!b->dyn_shared) {
        free(b);
        return NULL;
    }
    memset(b->dyn_shared, 0, SIM_MAX_SHARED);
    if (sim_isolated) { /* a signal stack (a fault on an exhausted stack still reaches the
                         * handler) and where this thread's own stack ends */
        stack_t ss;
        memset(&ss, 0, sizeof ss);
        ss.ss_size = 64 * 1024;
        ss.ss_sp = malloc(ss.ss_size);
        if (ss.ss_sp) sigaltstack(&ss, NULL);
        void *lo;
        size_t size;
        own_stack(&lo, &size);
        b->host_lo = lo;
    }
#if defined(SIM_ASAN)
    void *lo;
    own_stack(&lo, &b->host_stack_size);
    b->host_stack = lo;
#endif
    tls_block = b;
    return b;
}

/* grows the per-thread arrays to hold n threads (never shrinks) */
static int block_reserve(sim_block *b, unsigned n) {
    if (n <= b->cap) return 0;
    unsigned cap = n < 32 ? 32 : n;
    unsigned warps = cap / 32 + 1;
    sim_thread *th = calloc(cap, sizeof *th);
    unsigned char *st = calloc(cap, 1);
    const char **bf = calloc(cap, sizeof *bf);
    int *bl = calloc(cap, sizeof *bl);
    const void **bs = calloc(cap, sizeof *bs);
    sim_fiber *fb = calloc(cap, sizeof *fb);
    unsigned long long *xch = calloc((size_t)warps * 64, sizeof *xch);
    unsigned *wa = calloc(warps * 4, sizeof *wa);
    if (!th || !st || !bf || !bl || !bs || !fb || !xch || !wa) {
        free(th); free(st); free(bf); free(bl); free(bs); free(fb); free(xch); free(wa);
        return -1;
    }
    if (b->fibers) memcpy(fb, b->fibers, b->nfibers * sizeof *fb); /* keep the stacks */
    free(b->threads); free(b->state); free(b->bar_file); free(b->bar_line); free(b->bar_site); free(b->fibers);
    free(b->xch); free(b->warp_arrived);
    b->threads = th;
    b->state = st;
    b->bar_file = bf;
    b->bar_line = bl;
    b->bar_site = bs;
    b->fibers = fb;
    b->xch = xch;
    b->warp_arrived = wa;
    b->warp_live = wa + warps;
    b->warp_acc = wa + 2 * warps;
    b->warp_mask = wa + 3 * warps;
    b->cap = cap;
    return 0;
}

/* gives fibers [nfibers, n) a stack: a guard of SIM_GUARD bytes below SIM_STACK_SIZE */
static int block_stacks(sim_block *b, unsigned n) {
    for (; b->nfibers < n; b->nfibers++) {
        sim_fiber *f = &b->fibers[b->nfibers];
        size_t size = SIM_STACK_SIZE + SIM_GUARD;
        char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return -1;
        if (mprotect(m, SIM_GUARD, PROT_NONE) < 0) {
            munmap(m, size);
            return -1;
        }
        f->map = m;
        f->map_size = size;
    }
    return 0;
}

static void block_fail(sim_block *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void block_fail(sim_block *b, const char *fmt, ...) {
    if (b->failed) return;
    b->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msg, sizeof b->msg, fmt, ap);
    va_end(ap);
}

/* ---- switching ---------------------------------------------------------------------------- */

/* switches from fiber `from` (or the host context: -1) to fiber `to` (or the host: -1);
 * for_good: `from` is never resumed */
static void sim_jump(sim_block *b, unsigned from, unsigned to, int for_good) {
#if defined(SIM_ASAN)
    void **fake = for_good ? NULL : from == (unsigned)-1 ? &b->host_fake : &b->fibers[from].fake;
    if (to == (unsigned)-1)
        __sanitizer_start_switch_fiber(fake, b->host_stack, b->host_stack_size);
    else
        __sanitizer_start_switch_fiber(fake, b->fibers[to].map + (b->fibers[to].map_size - SIM_STACK_SIZE),
                                       SIM_STACK_SIZE);
#else
    (void)for_good;
#endif
#if defined(SIM_ASM_SWITCH)
    void **save = from == (unsigned)-1 ? &b->sched_sp : &b->fibers[from].sp;
    void *next = to == (unsigned)-1 ? b->sched_sp : b->fibers[to].sp;
    sim_switch(save, next);
#else
    ucontext_t *save = from == (unsigned)-1 ? &b->sched_uc : &b->fibers[from].uc;
    ucontext_t *next = to == (unsigned)-1 ? &b->sched_uc : &b->fibers[to].uc;
    swapcontext(save, next);
#endif
#if defined(SIM_ASAN)
    __sanitizer_finish_switch_fiber(from == (unsigned)-1 ? b->host_fake : b->fibers[from].fake, NULL, NULL);
#endif
}

/* the running fiber gives up for good (the launch failed): back to the host context */
static void __attribute__((noreturn)) block_abandon(sim_block *b) {
    sim_jump(b, b->cur, (unsigned)-1, 1);
    __builtin_unreachable();
}

/* ---- where the threads are, for error messages ---------------------------------------- */

static void where_of(const sim_block *b, unsigned i, char *out, size_t cap) {
    switch (b->state[i]) {
    case F_BAR: {
        /* several call sites on one line: say which, by their order in the code */
        const void *lower[64];
        int nlower = 0, other = 0;
        for (unsigned j = 0; j < b->n; j++) {
            if (b->state[j] != F_BAR || b->bar_line[j] != b->bar_line[i] || b->bar_site[j] == b->bar_site[i] ||
                strcmp(b->bar_file[j], b->bar_file[i]) != 0)
                continue;
            other = 1;
            /* GCC lays the sites' static bytes out last first */
            if ((uintptr_t)b->bar_site[j] > (uintptr_t)b->bar_site[i]) {
                int seen = 0;
                for (int k = 0; k < nlower; k++) seen |= lower[k] == b->bar_site[j];
                if (!seen && nlower < 64) lower[nlower++] = b->bar_site[j];
            }
        }
        if (other)
            snprintf(out, cap, "wait at __syncthreads() %s:%d (call %d on that line)", b->bar_file[i], b->bar_line[i],
                     nlower + 1);
        else
            snprintf(out, cap, "wait at __syncthreads() %s:%d", b->bar_file[i], b->bar_line[i]);
        break;
    }
    case F_WARP: snprintf(out, cap, "wait at a warp operation (shuffle, ballot, __syncwarp)"); break;
    case F_DONE: snprintf(out, cap, "returned"); break;
    default: snprintf(out, cap, "run"); break;
    }
}

/* "threads 0-4 wait at ..., threads 5-31 returned" (linear thread indices) */
static void describe_threads(const sim_block *b, char *out, size_t cap) {
    size_t len = 0;
    int groups = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < b->n;) {
        char w[200], w2[200];
        where_of(b, i, w, sizeof w);
        unsigned j = i + 1;
        for (; j < b->n; j++) {
            where_of(b, j, w2, sizeof w2);
            if (strcmp(w, w2) != 0) break;
        }
        if (groups == 4) {
            snprintf(out + len, cap - len, ", ...");
            return;
        }
        int k = j - i == 1 ? snprintf(out + len, cap - len, "%sthread %u %s", groups ? ", " : "", i, w)
                           : snprintf(out + len, cap - len, "%sthreads %u-%u %s", groups ? ", " : "", i, j - 1, w);
        if (k < 0 || (size_t)k >= cap - len) return;
        len += (size_t)k;
        groups++;
        i = j;
    }
}

static void fail_deadlock(sim_block *b, const char *what) {
    char who[400];
    describe_threads(b, who, sizeof who);
    const sim_uint3 *bi = &b->threads[0].block_idx;
    block_fail(b, "%s: __syncthreads() not reached by every thread of block (%u,%u,%u): %s", what, bi->x, bi->y,
               bi->z, who);
}

/* ---- the scheduler ------------------------------------------------------------------------- */

/* fiber i cannot go on: run the next runnable fiber after it, or fail the block */
static void run_next(sim_block *b, unsigned i) {
    for (unsigned k = 1; k <= b->n; k++) {
        unsigned j = (i + k) % b->n;
        if (b->state[j] == F_RUN) {
            if (j == i) return;
            b->cur = j;
            sim_jump(b, i, j, b->state[i] == F_DONE);
            b->cur = i;
            return;
        }
    }
    fail_deadlock(b, "deadlock");
    block_abandon(b);
}

static int same_site(const sim_block *b, unsigned i, unsigned j) {
    if (b->bar_site[i] || b->bar_site[j]) return b->bar_site[i] == b->bar_site[j];
    return b->bar_line[i] == b->bar_line[j] &&
           (b->bar_file[i] == b->bar_file[j] || strcmp(b->bar_file[i], b->bar_file[j]) == 0);
}

/* every live thread waits at __syncthreads: check they wait at the same one, release */
static void release_block_barrier(sim_block *b) {
    unsigned first = (unsigned)-1;
    for (unsigned j = 0; j < b->n; j++) {
        if (b->state[j] != F_BAR) continue;
        if (first == (unsigned)-1) first = j;
        else if (!same_site(b, first, j)) {
            fail_deadlock(b, "barrier divergence");
            block_abandon(b);
        }
    }
    for (unsigned j = 0; j < b->n; j++)
        if (b->state[j] == F_BAR) b->state[j] = F_RUN;
    b->bar_arrived = 0;
}

static void release_warp(sim_block *b, unsigned w) {
    unsigned lo = w * 32, hi = lo + 32 < b->n ? lo + 32 : b->n;
    for (unsigned j = lo; j < hi; j++)
        if (b->state[j] == F_WARP) b->state[j] = F_RUN;
    b->warp_mask[w] = b->warp_acc[w];
    b->warp_acc[w] = 0;
    b->warp_arrived[w] = 0;
}

static void rt_syncthreads(sim_thread *t, const char *file, int line, const void *site) {
    sim_block *b = t->rt;
    if (!b->fibers_mode) {
        if (b->n > 1) rt_trap(t, "__syncthreads() in a kernel launched without fibers", file, line);
        return;
    }
    unsigned i = t->linear;
    b->state[i] = F_BAR;
    b->bar_file[i] = file;
    b->bar_line[i] = line;
    b->bar_site[i] = site;
    if (++b->bar_arrived == b->live) {
        release_block_barrier(b);
        return;
    }
    run_next(b, i);
}

static unsigned rt_syncwarp(sim_thread *t) {
    sim_block *b = t->rt;
    unsigned i = t->linear, w = i / 32;
    if (!b->fibers_mode) {
        if (b->n > 1) rt_trap(t, "warp operation in a kernel launched without fibers", "?", 0);
        return 1u;
    }
    b->state[i] = F_WARP;
    b->warp_acc[w] |= 1u << (i % 32);
    if (++b->warp_arrived[w] == b->warp_live[w]) {
        release_warp(b, w);
        return b->warp_mask[w];
    }
    run_next(b, i);
    return b->warp_mask[w];
}

static void rt_trap(sim_thread *t, const char *what, const char *file, int line) {
    sim_block *b = t->rt;
    block_fail(b, "%s at %s:%d (thread (%u,%u,%u) of block (%u,%u,%u))", what, file, line, t->thread_idx.x,
               t->thread_idx.y, t->thread_idx.z, t->block_idx.x, t->block_idx.y, t->block_idx.z);
    if (b->fibers_mode) block_abandon(b);
    longjmp(b->trap_jb, 1);
}

/* a fiber's whole life: run the thread, then leave for good */
static void fiber_main(void *arg) {
    sim_thread *t = arg;
    sim_block *b = t->rt;
#if defined(SIM_ASAN)
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    b->body(b->args, t);
    unsigned i = t->linear, w = i / 32;
    b->state[i] = F_DONE;
    b->live--;
    b->warp_live[w]--;
    if (b->live == 0) block_abandon(b); /* the block is done */
    if (b->bar_arrived && b->bar_arrived == b->live) release_block_barrier(b);
    if (b->warp_arrived[w] && b->warp_arrived[w] == b->warp_live[w]) release_warp(b, w);
    run_next(b, i);
    /* run_next returns only if i itself is runnable: impossible, it is done */
    block_fail(b, "internal error: a finished fiber was resumed");
    block_abandon(b);
}

#if !defined(SIM_ASM_SWITCH)
static void fiber_main_uc(unsigned hi, unsigned lo) {
    fiber_main((void *)(uintptr_t)(((uint64_t)hi << 32) | lo));
}
#endif

/* ---- one block ---------------------------------------------------------------------------- */

static void thread_init(sim_block *b, sim_thread *t, unsigned linear, const unsigned bdim[3],
                        const unsigned gdim[3], sim_uint3 bidx) {
    t->thread_idx.x = linear % bdim[0];
    t->thread_idx.y = (linear / bdim[0]) % bdim[1];
    t->thread_idx.z = linear / (bdim[0] * bdim[1]);
    t->block_idx = bidx;
    t->block_dim = (sim_uint3){bdim[0], bdim[1], bdim[2]};
    t->grid_dim = (sim_uint3){gdim[0], gdim[1], gdim[2]};
    t->linear = linear;
    t->lane = linear % 32;
    t->xch_parity = 0;
    t->warp_xch = b->xch + (size_t)(linear / 32) * 64;
    t->dyn_shared = b->dyn_shared;
    t->ops = &sim_ops_table;
    t->rt = b;
}

static void run_block_plain(sim_block *b, const unsigned bdim[3], const unsigned gdim[3], sim_uint3 bidx) {
    sim_thread *t = &b->threads[0];
    thread_init(b, t, 0, bdim, gdim, bidx);
    b->n = bdim[0] * bdim[1] * bdim[2];
    if (setjmp(b->trap_jb)) return;
    for (unsigned z = 0; z < bdim[2]; z++)
        for (unsigned y = 0; y < bdim[1]; y++)
            for (unsigned x = 0; x < bdim[0]; x++) {
                t->thread_idx = (sim_uint3){x, y, z};
                t->linear = x + bdim[0] * (y + bdim[1] * z);
                t->lane = t->linear % 32;
                b->body(b->args, t);
            }
}

static void run_block_fibers(sim_block *b, const unsigned bdim[3], const unsigned gdim[3], sim_uint3 bidx) {
    unsigned n = bdim[0] * bdim[1] * bdim[2], warps = (n + 31) / 32;
    b->n = n;
    b->live = n;
    b->bar_arrived = 0;
    for (unsigned w = 0; w < warps; w++) {
        b->warp_arrived[w] = 0;
        b->warp_acc[w] = 0;
        b->warp_mask[w] = 0;
        b->warp_live[w] = (w + 1) * 32 <= n ? 32 : n - w * 32;
    }
    for (unsigned i = 0; i < n; i++) {
        sim_thread *t = &b->threads[i];
        thread_init(b, t, i, bdim, gdim, bidx);
        b->state[i] = F_RUN;
        sim_fiber *f = &b->fibers[i];
#if defined(SIM_ASM_SWITCH)
        f->sp = sim_frame_init(f->map + f->map_size, fiber_main, t);
#else
        getcontext(&f->uc);
        f->uc.uc_stack.ss_sp = f->map + (f->map_size - SIM_STACK_SIZE);
        f->uc.uc_stack.ss_size = SIM_STACK_SIZE;
        f->uc.uc_link = NULL;
        makecontext(&f->uc, (void (*)(void))fiber_main_uc, 2, (unsigned)((uintptr_t)t >> 32),
                    (unsigned)(uintptr_t)t);
#endif
    }
    b->cur = 0;
    sim_jump(b, (unsigned)-1, 0, 0);
}

int sim_host_threads(void) { return omp_get_max_threads(); }

/* ---- the grid ----------------------------------------------------------------------------- */


typedef struct launch_ctx {
    sim_body body;
    void *args;
    const unsigned *grid, *block;
    int needs_fibers;
    unsigned nthreads;
    unsigned long long nblocks;
    unsigned long long next;  /* the next block to run (atomic) */
    int failed;               /* atomic */
    pthread_mutex_t lock;     /* guards first_msg */
    char first_msg[512];
} launch_ctx;

static void ctx_fail(launch_ctx *c, const char *msg) {
    pthread_mutex_lock(&c->lock);
    if (!c->failed) {
        snprintf(c->first_msg, sizeof c->first_msg, "%s", msg);
        __atomic_store_n(&c->failed, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&c->lock);
}

/* one host thread's share of the grid: blocks taken one at a time from c->next */
static void run_blocks(launch_ctx *c) {
    sim_block *b = block_get();
    int ok = b && block_reserve(b, c->nthreads) == 0 && (!c->needs_fibers || block_stacks(b, c->nthreads) == 0);
    if (!ok) {
        ctx_fail(c, "out of memory for the simulator's fibers");
        return;
    }
    b->body = c->body;
    b->args = c->args;
    b->fibers_mode = c->needs_fibers;
    for (;;) {
        if (__atomic_load_n(&c->failed, __ATOMIC_RELAXED)) break;
        unsigned long long k = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (k >= c->nblocks) break;
        const unsigned *grid = c->grid;
        sim_uint3 bidx = {(unsigned)(k % grid[0]), (unsigned)((k / grid[0]) % grid[1]),
                          (unsigned)(k / ((unsigned long long)grid[0] * grid[1]))};
        b->failed = 0;
        b->running = 1;
        if (c->needs_fibers) run_block_fibers(b, c->block, grid, bidx);
        else run_block_plain(b, c->block, grid, bidx);
        b->running = 0;
        if (b->failed) ctx_fail(c, b->msg);
    }
}

int sim_launch(sim_body body, void *args, const unsigned grid[3], const unsigned block[3], size_t shared,
               int needs_fibers, char *err, size_t errlen) {
    unsigned long long nblocks = (unsigned long long)grid[0] * grid[1] * grid[2];
    unsigned long long nthreads = (unsigned long long)block[0] * block[1] * block[2];
    if (err && errlen) err[0] = '\0';
    if (nthreads == 0 || nthreads > SIM_MAX_THREADS) {
        if (err) snprintf(err, errlen, "block of %llu threads: the simulator runs 1 to %u", nthreads, SIM_MAX_THREADS);
        return -1;
    }
    if (shared > SIM_MAX_SHARED) {
        if (err) snprintf(err, errlen, "%zu bytes of dynamic shared memory: the simulator gives at most %u", shared,
                          SIM_MAX_SHARED);
        return -1;
    }
    if (nblocks == 0) return 0;
    launch_ctx c;
    memset(&c, 0, sizeof c);
    c.body = body;
    c.args = args;
    c.grid = grid;
    c.block = block;
    c.needs_fibers = needs_fibers;
    c.nthreads = (unsigned)nthreads;
    c.nblocks = nblocks;
    pthread_mutex_init(&c.lock, NULL);
#pragma omp parallel if (nblocks > 1)
    run_blocks(&c);
    pthread_mutex_destroy(&c.lock);
    if (c.failed) {
        if (err) snprintf(err, errlen, "%s", c.first_msg);
        return -1;
    }
    return 0;
}

/* ---- faults (isolated mode) ---------------------------------------------------------------- */

int sim_fault_describe(const void *addr, char *out, size_t cap) {
    sim_block *b = tls_block;
    out[0] = '\0';
    if (!b || !b->running || !b->threads) return 0;
    const sim_thread *t = &b->threads[b->fibers_mode ? b->cur : 0];
    const char *a = addr;
    int stack = 0;
    if (b->fibers_mode && b->cur < b->nfibers) {
        const sim_fiber *f = &b->fibers[b->cur];
        stack = a >= f->map && a < f->map + SIM_GUARD;
    } else if (b->host_lo) {
        stack = a >= b->host_lo - SIM_GUARD && a < b->host_lo;
    }
    snprintf(out, cap, "thread (%u,%u,%u) of block (%u,%u,%u)", t->thread_idx.x, t->thread_idx.y, t->thread_idx.z,
             t->block_idx.x, t->block_idx.y, t->block_idx.z);
    return stack ? 2 : 1;
}
