/* sim_isolate.c — runs one launch of a cell kernel in a forked child process, so that
 * no kernel can take the kiln process down or wedge it (the simulator's fast mode).
 *
 * A launch: the pointer arguments' extents are merged where they overlap (two pointers
 * into one tensor stay one buffer); every merged range that some non-const argument
 * reaches is copied into a memfd (kept across launches), the process forks, and the
 * child maps each range alone in the middle of a PROT_NONE reservation of 32 GiB on
 * either side, placed so that its data ends at (within 16 bytes of) a page end: a write
 * past a tensor, or far before or after it (an int index gone negative), faults at
 * once. Const-only ranges are read in place (the child's copy-on-write view). The child
 * runs the grid on pthreads of its own (sim_runtime_isolate), writes the outcome into
 * the memfd's first page and _exits; on success the parent copies the ranges back into
 * the tensors. A fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT...) is caught in the
 * child on a signal stack: the simulated thread and block, the address, which argument
 * it falls near (and the element index), a stack overflow (the fiber's or host thread's
 * guard), and the program counter, which the parent turns into the cell's line with
 * addr2line (kernels are built with -g1). A launch that fails writes nothing back.
 *
 * The parent waits on a pipe that closes when the child ends, waking every 50 ms to
 * look at the engine's interrupt flag (eng_interrupt, also set by shutdown): an
 * interrupt kills the child's process group and the launch ends with ERR_INTERRUPT.
 * KILN_SIM_TIMEOUT=SECONDS (unset: none) stops a launch that runs longer (ERR_CUDA).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <dlfcn.h>

#include "cuda/sim/sim_internal.h"
#include "cuda/sim/sim_runtime.h"
#include "engine/tensor.h"

extern char **environ;

#define ISO_GAP (32ull << 30)   /* PROT_NONE on either side of a range in the child */
#define ISO_ALIGN 16            /* a range keeps its address modulo this */
#define ISO_KEEP (64u << 20)    /* the memfd keeps at most this much between launches */
#define ISO_MAXR 64

enum { ST_NONE, ST_OK, ST_LAUNCH_ERROR, ST_FAULT };

/* the memfd's first page: what the child says */
typedef struct iso_result {
    int state;                /* ST_... */
    int sig;                  /* the fault's signal */
    int code;                 /* its si_code */
    int write;                /* 1 write, 0 read, -1 unknown */
    int stack;                /* the address is a stack guard */
    int arg;                  /* the argument the address falls near (-1: none) */
    long long elem;           /* its element index there */
    void *addr;               /* the fault address */
    void *pc;                 /* the program counter */
    char where[128];          /* "thread (..) of block (..)" */
    char msg[512];            /* ST_LAUNCH_ERROR: the runtime's message */
} iso_result;

/* one merged range of pointer arguments */
typedef struct iso_range {
    char *start, *end;        /* in the parent */
    size_t off;               /* its page-aligned offset in the memfd */
    size_t pad;               /* data begins pad bytes after off */
    size_t map;               /* bytes mapped (whole pages) */
    int writable;             /* some non-const argument reaches it */
    char *child;              /* the child's address of start */
} iso_range;

static int iso_fd = -1;       /* the memfd */
static char *iso_map;         /* its mapping in this process */
static size_t iso_cap;        /* its size */

/* ---- the child ------------------------------------------------------------------------- */

static iso_result *ch_res;
static const sim_check_params *ch_params;
static iso_range *ch_ranges;
static int ch_nranges;
static int ch_arg_range[ISO_MAXR]; /* the range of each pointer argument (-1: none) */
static char *ch_arg_ptr[ISO_MAXR];  /* the child's pointer for each argument */
static size_t *ch_arg_bytes;

static void ch_fault(int sig, siginfo_t *si, void *ucv) {
    iso_result *r = ch_res;
    ucontext_t *uc = ucv;
    r->sig = sig;
    r->code = si->si_code;
    r->addr = si->si_addr;
    r->write = -1;
    r->arg = -1;
#if defined(__x86_64__)
    r->pc = (void *)uc->uc_mcontext.gregs[REG_RIP];
    if (sig == SIGSEGV || sig == SIGBUS) r->write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#elif defined(__aarch64__)
    r->pc = (void *)uc->uc_mcontext.pc;
#else
    (void)uc;
#endif
    if (sig == SIGSEGV || sig == SIGBUS) {
        const char *a = si->si_addr;
        for (int i = 0; i < ch_params->n && i < ISO_MAXR; i++) {
            int k = ch_arg_range[i];
            if (k < 0 || !ch_params->is_ptr[i] || !ch_ranges[k].writable) continue;
            const iso_range *g = &ch_ranges[k];
            const char *lo = g->child - g->pad, *hi = g->child - g->pad + g->map;
            if (a >= lo - ISO_GAP && a < hi + ISO_GAP && (a < ch_arg_ptr[i] || a >= ch_arg_ptr[i] + ch_arg_bytes[i])) {
                long long es = ch_params->elem[i] ? ch_params->elem[i] : 1;
                r->arg = i;
                r->elem = (a >= ch_arg_ptr[i] ? (long long)(a - ch_arg_ptr[i]) : -(long long)(ch_arg_ptr[i] - a) - es + 1) / es;
                break;
            }
        }
    }
    r->stack = sim_fault_describe(si->si_addr, r->where, sizeof r->where) == 2;
    r->state = ST_FAULT;
    _exit(70);
}

static void __attribute__((noreturn)) child_main(sim_body entry, const sim_check_params *p, int needs_fibers,
                                                  const unsigned grid[3], const unsigned block[3], size_t shared,
                                                  void **args, size_t *arg_bytes, iso_range *rg, int nr,
                                                  const int *arg_range, unsigned host_threads) {
    ch_res = (iso_result *)iso_map;
    ch_params = p;
    ch_ranges = rg;
    ch_nranges = nr;
    ch_arg_bytes = arg_bytes;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom >= 0) {
        if (write(oom, "1000", 4) < 0) {}
        close(oom);
    }
    /* each writable range alone in a PROT_NONE reservation */
    for (int k = 0; k < nr; k++) {
        iso_range *g = &rg[k];
        if (!g->writable) continue;
        char *res = mmap(NULL, ISO_GAP * 2 + g->map, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        char *at = res == MAP_FAILED ? NULL : res + ISO_GAP;
        char *m = mmap(at, g->map, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0), iso_fd, (off_t)g->off);
        if (m == MAP_FAILED) {
            snprintf(ch_res->msg, sizeof ch_res->msg, "cannot map a buffer in the simulator's process: %s",
                     strerror(errno));
            ch_res->state = ST_LAUNCH_ERROR;
            _exit(71);
        }
        g->child = m + g->pad;
    }
    void *ptrs[ISO_MAXR], *cargs[ISO_MAXR];
    for (int i = 0; i < p->n; i++) {
        cargs[i] = args[i];
        ch_arg_range[i] = arg_range[i];
        if (!p->is_ptr[i] || arg_range[i] < 0) continue;
        const iso_range *g = &rg[arg_range[i]];
        char *orig = *(char **)args[i];
        ch_arg_ptr[i] = g->writable ? g->child + (orig - g->start) : orig;
        ptrs[i] = ch_arg_ptr[i];
        cargs[i] = &ptrs[i];
    }
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_size = 64 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    if (ss.ss_sp) sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = ch_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
    sim_runtime_isolate(host_threads);
    char err[512];
    int rc = sim_launch(entry, cargs, grid, block, shared, needs_fibers, err, sizeof err);
    fflush(stdout);
    fflush(stderr);
    if (rc < 0) {
        snprintf(ch_res->msg, sizeof ch_res->msg, "%s", err);
        ch_res->state = ST_LAUNCH_ERROR;
    } else {
        ch_res->state = ST_OK;
    }
    _exit(0);
}

/* ---- the parent ------------------------------------------------------------------------ */

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* the memfd with at least cap bytes mapped at iso_map */
static int iso_reserve(size_t cap) {
    if (iso_fd < 0) {
        iso_fd = memfd_create("kiln-sim-buffers", MFD_CLOEXEC);
        if (iso_fd < 0) return -1;
    }
    if (cap <= iso_cap && iso_map) return 0;
    if (iso_map) munmap(iso_map, iso_cap);
    iso_map = NULL;
    iso_cap = 0;
    if (ftruncate(iso_fd, (off_t)cap) < 0) return -1;
    char *m = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, iso_fd, 0);
    if (m == MAP_FAILED) return -1;
    iso_map = m;
    iso_cap = cap;
    return 0;
}

/* drops the memfd's pages past ISO_KEEP after a big launch */
static void iso_trim(void) {
    if (iso_cap <= ISO_KEEP) return;
    munmap(iso_map, iso_cap);
    iso_map = NULL;
    iso_cap = 0;
    if (ftruncate(iso_fd, 0) < 0) {}
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "cell[3]:5" for a program counter inside the kernel's library, from addr2line;
 * "" when it cannot tell */
static void pc_line(void *pc, const char *lib_path, char *out, size_t cap) {
    out[0] = '\0';
    Dl_info di;
    if (!pc || !dladdr(pc, &di) || !di.dli_fbase) return;
    char file[600];
    (void)lib_path; /* the disk cache's entry has a header: read the loaded memfd */
    if (di.dli_fname && strncmp(di.dli_fname, "/proc/self/", 11) == 0)
        snprintf(file, sizeof file, "/proc/%d/%s", (int)getpid(), di.dli_fname + 11);
    else if (di.dli_fname && di.dli_fname[0] == '/')
        snprintf(file, sizeof file, "%s", di.dli_fname);
    else return;
    char addr[32];
    snprintf(addr, sizeof addr, "0x%lx", (unsigned long)((char *)pc - (char *)di.dli_fbase));
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"addr2line", "-i", "-e", file, addr, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "addr2line", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return;
    }
    char buf[4096];
    size_t len = 0;
    double t0 = now_s();
    while (len < sizeof buf - 1 && now_s() - t0 < 5) {
        struct pollfd pf = {fds[0], POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0) continue;
        ssize_t k = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (k <= 0) break;
        len += (size_t)k;
    }
    buf[len] = '\0';
    close(fds[0]);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    /* innermost first: the first frame in the user's source (not the emulation header) */
    for (char *ln = buf; ln && *ln;) {
        char *nl = strchr(ln, '\n');
        if (nl) *nl = '\0';
        char *disc = strstr(ln, " (discriminator");
        if (disc) *disc = '\0';
        if (ln[0] && ln[0] != '?' && !strstr(ln, "kiln_sim.h") && !strstr(ln, "sim_runtime.h") &&
            !strstr(ln, "kiln-entry") && !strstr(ln, "/kiln-sim-") && !strstr(ln, ":?") && !strstr(ln, ":0")) {
            /* the compiler ran in this folder: its relative names (the cells') come back
             * after it */
            char cwd[512];
            const char *shown = ln;
            size_t cl = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
            if (cl && strncmp(ln, cwd, cl) == 0 && ln[cl] == '/') shown = ln + cl + 1;
            snprintf(out, cap, "%.*s", (int)(cap - 1 < 200 ? cap - 1 : 200), shown);
            return;
        }
        ln = nl ? nl + 1 : NULL;
    }
}

static const char *sig_what(const iso_result *r, char *buf, size_t cap) {
    switch (r->sig) {
    case SIGSEGV:
    case SIGBUS:
        snprintf(buf, cap, "invalid memory %s at address %p (%s)",
                 r->write == 1 ? "write" : r->write == 0 ? "read" : "access", r->addr,
                 r->sig == SIGSEGV ? "SIGSEGV" : "SIGBUS");
        break;
    case SIGFPE:
        snprintf(buf, cap, "arithmetic exception (SIGFPE%s)",
                 r->code == FPE_INTDIV ? ": integer division by zero" : r->code == FPE_INTOVF ? ": integer overflow" : "");
        break;
    case SIGABRT: snprintf(buf, cap, "abort() (SIGABRT)"); break;
    case SIGILL: snprintf(buf, cap, "illegal instruction (SIGILL)"); break;
    default: snprintf(buf, cap, "signal %d (%s)", r->sig, strsignal(r->sig)); break;
    }
    return buf;
}

/* merges the pointer arguments' extents into ranges; arg_range[i] their range */
static int make_ranges(const sim_check_params *p, void **args, const size_t *arg_bytes, iso_range *rg,
                       int *arg_range) {
    int nr = 0;
    for (int i = 0; i < p->n; i++) {
        arg_range[i] = -1;
        if (!p->is_ptr[i] || !arg_bytes[i]) continue;
        char *s = *(char **)args[i], *e = s + arg_bytes[i];
        rg[nr].start = s;
        rg[nr].end = e;
        rg[nr].writable = !p->is_const[i];
        arg_range[i] = nr++;
    }
    /* merge overlapping ranges (quadratic: at most 64) */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int a = 0; a < nr && !changed; a++)
            for (int b = a + 1; b < nr && !changed; b++) {
                if (rg[a].start < rg[b].end && rg[b].start < rg[a].end) {
                    if (rg[b].start < rg[a].start) rg[a].start = rg[b].start;
                    if (rg[b].end > rg[a].end) rg[a].end = rg[b].end;
                    rg[a].writable |= rg[b].writable;
                    rg[b] = rg[--nr];
                    for (int i = 0; i < p->n; i++) {
                        if (arg_range[i] == b) arg_range[i] = a;
                        else if (arg_range[i] == nr) arg_range[i] = b;
                    }
                    changed = 1;
                }
            }
    }
    return nr;
}

int sim_isolated_launch(sim_body entry, const char *kname, const char *lib_path, const sim_check_params *p,
                        int needs_fibers, const unsigned grid[3], const unsigned block[3], size_t shared,
                        void **args, const size_t *arg_bytes, eng_error *err) {
    if (p->n > ISO_MAXR) return eng_fail(err, ERR_VALUE, "kernel '%s': too many parameters", kname);
    iso_range rg[ISO_MAXR];
    int arg_range[ISO_MAXR];
    size_t bytes[ISO_MAXR];
    for (int i = 0; i < p->n; i++) bytes[i] = arg_bytes ? arg_bytes[i] : 0;
    int nr = make_ranges(p, args, bytes, rg, arg_range);
    /* the memfd's layout: the result page, then each writable range's whole pages */
    size_t pg = page_size(), off = pg;
    for (int k = 0; k < nr; k++) {
        iso_range *g = &rg[k];
        if (!g->writable) continue;
        size_t n = (size_t)(g->end - g->start);
        g->map = (n + pg - 1) / pg * pg;
        size_t slack = g->map - n;
        size_t mis = (uintptr_t)g->start % ISO_ALIGN; /* keep the address modulo ISO_ALIGN */
        g->pad = slack < mis ? slack : (slack - mis) / ISO_ALIGN * ISO_ALIGN + mis;
        if (g->pad > slack) { /* cannot keep the alignment within the slack: one more page */
            g->map += pg;
            g->pad = (g->map - n - mis) / ISO_ALIGN * ISO_ALIGN + mis;
        }
        g->off = off;
        if (off > SIZE_MAX - g->map) return eng_fail(err, ERR_MEMORY, "kernel '%s': arguments too large", kname);
        off += g->map;
    }
    if (iso_reserve(off) < 0)
        return eng_fail(err, ERR_MEMORY, "kernel '%s': cannot allocate %zu bytes to share the arguments with the "
                        "simulator's process: %s", kname, off, strerror(errno));
    iso_result *res = (iso_result *)iso_map;
    memset(res, 0, sizeof *res);
    res->arg = -1;
    for (int k = 0; k < nr; k++)
        if (rg[k].writable) memcpy(iso_map + rg[k].off + rg[k].pad, rg[k].start, (size_t)(rg[k].end - rg[k].start));
    int hostn = sim_host_threads();
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return eng_fail(err, ERR_IO, "kernel '%s': %s", kname, strerror(errno));
    fflush(stdout);
    fflush(stderr);
    size_t cbytes[ISO_MAXR];
    memcpy(cbytes, bytes, sizeof(size_t) * (size_t)p->n);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_main(entry, p, needs_fibers, grid, block, shared, args, cbytes, rg, nr, arg_range,
                   (unsigned)(hostn > 0 ? hostn : 1));
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return eng_fail(err, ERR_MEMORY, "kernel '%s': cannot start the simulator's process: %s", kname,
                        strerror(errno));
    }
    const char *tenv = getenv("KILN_SIM_TIMEOUT");
    double limit = tenv ? atof(tenv) : 0, t0 = now_s();
    int st = 0, reaped = 0, stopped = 0; /* stopped: 1 interrupt, 2 timeout */
    for (;;) {
        struct pollfd pf = {fds[0], POLLIN, 0};
        int n = poll(&pf, 1, 50);
        if (n > 0) { /* the child ended (or only its descendants hold the pipe) */
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) {
                reaped = 1;
                break;
            }
            if (pf.revents & (POLLHUP | POLLERR)) {
                while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {}
                reaped = 1;
                break;
            }
        } else if (waitpid(pid, &st, WNOHANG) == pid) {
            reaped = 1;
            break;
        }
        if (tensor_interrupt_flag) stopped = 1;
        else if (limit > 0 && now_s() - t0 > limit) stopped = 2;
        if (stopped) break;
    }
    close(fds[0]);
    kill(-pid, SIGKILL); /* the child's group: whatever it started goes too */
    if (!reaped) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    }
    int rc = -1;
    if (stopped == 1) {
        eng_fail(err, ERR_INTERRUPT, "interrupted (kernel '%s' was stopped)", kname);
    } else if (stopped == 2) {
        eng_fail(err, ERR_CUDA, "kernel '%s' ran past KILN_SIM_TIMEOUT=%g s and was stopped", kname, limit);
    } else if (res->state == ST_OK && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        for (int k = 0; k < nr; k++)
            if (rg[k].writable) memcpy(rg[k].start, iso_map + rg[k].off + rg[k].pad, (size_t)(rg[k].end - rg[k].start));
        rc = 0;
    } else if (res->state == ST_LAUNCH_ERROR) {
        eng_fail(err, ERR_RUNTIME, "kernel '%s': %s", kname, res->msg);
    } else if (res->state == ST_FAULT) {
        char what[200], line[300] = "", near[200] = "";
        sig_what(res, what, sizeof what);
        if (res->stack)
            snprintf(what, sizeof what, "stack overflow (a thread's stack is 512 KiB; deep recursion or large "
                     "local arrays)");
        pc_line(res->pc, lib_path, line, sizeof line);
        if (!res->stack && res->arg >= 0 && res->arg < p->n) {
            int i = res->arg;
            size_t es = p->elem[i] ? p->elem[i] : 1;
            snprintf(near, sizeof near, ": element %lld of argument %d ('%s', %zu elements)", res->elem, i + 1,
                     p->name[i], bytes[i] / es);
            snprintf(what, sizeof what, "out-of-bounds %s",
                     res->write == 1 ? "write" : res->write == 0 ? "read" : "access");
        }
        eng_fail(err, ERR_CUDA, "%s%s%s in kernel '%s'%s%s%s%s", what, line[0] ? " at " : "", line, kname,
                 res->where[0] ? " (" : "", res->where, res->where[0] ? ")" : "", near);
        const char *c = strrchr(line, ':');
        if (err && c) err->line = atoi(c + 1);
    } else if (WIFSIGNALED(st)) {
        eng_fail(err, ERR_CUDA, "kernel '%s': the simulator's process died of signal %d (%s)", kname, WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    } else {
        eng_fail(err, ERR_CUDA, "kernel '%s' ended the simulator's process (exit status %d) before the grid finished",
                 kname, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    iso_trim();
    return rc;
}
