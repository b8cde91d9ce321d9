/* sim_isolate.c — runs the launches of cell kernels in the simulator's worker process,
 * so that no kernel can take the kiln process down or wedge it (the fast mode).
 *
 * The worker is this very executable (/proc/self/exe) started with KILN_SIM_WORKER set:
 * a constructor here sees it before main() and serves launches until its socket closes.
 * It is started at the first launch, and again after it died (a fault) or was killed (an
 * interrupt, a timeout). It loads each kernel's library from the memfd the driver loaded
 * it from (passed over the socket, SCM_RIGHTS) and keeps it, so __device__ variables
 * keep their values across launches as on a GPU, and OpenMP's threads stay warm.
 *
 * A launch: the pointer arguments' extents are merged where they overlap (two pointers
 * into one tensor stay one buffer) and copied into a memfd shared with the worker; the
 * worker maps each range alone in the middle of a PROT_NONE reservation of 32 GiB on
 * either side, placed so that its data ends within 16 bytes of a page end (its address
 * keeps its alignment modulo 16): a write past a tensor, far past it, or before it (an
 * int index gone negative) faults at once. The worker runs the grid, says so on the
 * socket, and the parent copies the ranges of non-const arguments back. A fault
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT...) is caught in the worker on a signal
 * stack: the simulated thread and block, the address, the argument it falls near (and
 * the element), a stack overflow (a fiber's or host thread's guard), the program
 * counter's offset in the library, which the parent turns into the cell's line with
 * addr2line (kernels are built with -g1); then the worker exits. A launch that fails
 * writes nothing back.
 *
 * The parent waits on the socket, waking every 50 ms to look at the engine's interrupt
 * flag (eng_interrupt, also set by a shutdown): an interrupt kills the worker's process
 * group and the launch ends with ERR_INTERRUPT. KILN_SIM_TIMEOUT=SECONDS (unset: none)
 * stops a launch that runs longer (ERR_CUDA).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "cuda/sim/sim_internal.h"
#include "cuda/sim/sim_runtime.h"
#include "engine/tensor/tensor.h"
#include "engine/base/context.h"

extern char **environ;

#define ISO_GAP (32ull << 30)   /* PROT_NONE on either side of a range in the worker */
#define ISO_ALIGN 16            /* a range keeps its address modulo this */
#define ISO_KEEP (64u << 20)    /* the memfd keeps at most this much between launches */
#define ISO_MAXR 64
#define WK_SOCK_FD 3            /* the worker's socket */
#define WK_SHM_FD 4             /* the worker's view of the memfd */
#define WK_MAXLIBS 512

enum { ST_NONE, ST_OK, ST_LAUNCH_ERROR, ST_FAULT };

/* the memfd's first page: what the worker says */
typedef struct iso_result {
    int state;                /* ST_... */
    int sig;                  /* the fault's signal */
    int code;                 /* its si_code */
    int write;                /* 1 write, 0 read, -1 unknown */
    int stack;                /* the address is a stack guard */
    int arg;                  /* the argument the address falls near (-1: none) */
    long long elem;           /* its element index there */
    void *addr;               /* the fault address */
    int has_pc;               /* pc_off is known */
    unsigned long pc_off;     /* the program counter's offset in the kernel's library */
    char where[128];          /* "thread (..) of block (..)" */
    char msg[512];            /* ST_LAUNCH_ERROR: the runtime's message */
} iso_result;

/* one merged range of pointer arguments */
typedef struct iso_range {
    char *start, *end;        /* in the parent */
    unsigned long long off;   /* its page-aligned offset in the memfd */
    unsigned long long pad;   /* data begins pad bytes after off */
    unsigned long long map;   /* bytes mapped (whole pages) */
    int writable;             /* some non-const argument reaches it */
} iso_range;

/* a launch as the parent sends it */
typedef struct wk_req {
    unsigned long long lib_id;        /* the library's identity */
    int has_fd;                       /* its memfd comes with this message */
    int needs_fibers;
    unsigned grid[3], block[3];
    unsigned long long shared;
    int nranges;
    iso_range rg[ISO_MAXR];
    int arg_range[ISO_MAXR];          /* a pointer argument's range (-1: a scalar or empty) */
    unsigned long long arg_off[ISO_MAXR]; /* its offset from the range's start */
    unsigned long long scalar[ISO_MAXR];  /* a scalar's bytes */
    sim_check_params params;
    unsigned long long arg_bytes[ISO_MAXR]; /* a pointer argument's extent */
    struct {                          /* kernel debugging (a debug build's target thread) */
        int on, stop_first, nbp;
        unsigned block[3], thread[3];
        eng_kbp bp[ENG_KBPS];
    } dbg;
} wk_req;

/* worker -> parent while a launch runs: 'd' (done, one byte) or a stop */
typedef struct wk_stop_msg {
    char tag;                         /* 'b' */
    eng_kstop s;
} wk_stop_msg;

/* parent -> worker after a stop: how to go on */
typedef struct wk_cmd {
    int cmd;                          /* ENG_KCONTINUE ... ENG_KSTEP_OUT */
    int nbp;
    eng_kbp bp[ENG_KBPS];
} wk_cmd;

/* ---- the worker ------------------------------------------------------------------------- */

static iso_result *wk_res;          /* the memfd's first page */
static const wk_req *wk_cur;        /* the launch running */
static char *wk_ptr[ISO_MAXR];      /* each argument's address in the worker */
static char *wk_base[ISO_MAXR];     /* each range's data in the worker */
static unsigned long wk_lib_base;   /* the running library's load address */

static void wk_fault(int sig, siginfo_t *si, void *ucv) {
    iso_result *r = wk_res;
    const wk_req *q = wk_cur;
    ucontext_t *uc = ucv;
    unsigned long pc = 0;
    r->sig = sig;
    r->code = si->si_code;
    r->addr = si->si_addr;
    r->write = -1;
    r->arg = -1;
#if defined(__x86_64__)
    pc = (unsigned long)uc->uc_mcontext.gregs[REG_RIP];
    if (sig == SIGSEGV || sig == SIGBUS) r->write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#elif defined(__aarch64__)
    pc = (unsigned long)uc->uc_mcontext.pc;
#else
    (void)uc;
#endif
    if (pc && wk_lib_base && pc >= wk_lib_base) {
        r->has_pc = 1;
        r->pc_off = pc - wk_lib_base;
    }
    if (q && (sig == SIGSEGV || sig == SIGBUS)) {
        const char *a = si->si_addr;
        for (int i = 0; i < q->params.n && i < ISO_MAXR; i++) {
            int k = q->arg_range[i];
            if (k < 0 || !q->params.is_ptr[i]) continue;
            const iso_range *g = &q->rg[k];
            const char *lo = wk_base[k] - g->pad, *hi = lo + g->map;
            size_t n = (size_t)(g->end - g->start) - q->arg_off[i];
            if (a >= lo - ISO_GAP && a < hi + ISO_GAP && (a < wk_ptr[i] || a >= wk_ptr[i] + n)) {
                long long es = q->params.elem[i] ? q->params.elem[i] : 1;
                r->arg = i;
                r->elem = a >= wk_ptr[i] ? (long long)(a - wk_ptr[i]) / es : -(long long)((wk_ptr[i] - a + es - 1) / es);
                break;
            }
        }
    }
    r->stack = sim_fault_describe(si->si_addr, r->where, sizeof r->where) == 2;
    r->state = ST_FAULT;
    _exit(70);
}

/* ---- the worker's side of kernel debugging: the target thread's lines and frames ---- */

static struct {
    int mode, ref_depth, depth, first_done, stop_first, nbp;
    eng_kframe frames[ENG_KSTOP_FRAMES]; /* outermost first */
    eng_kbp bp[ENG_KBPS];
} wd;
static wk_stop_msg wd_msg;
static sim_dbg_var wd_vars[ENG_KSTOP_FRAMES][ENG_KSTOP_CVARS]; /* each frame's last locals */
static int wd_nvars[ENG_KSTOP_FRAMES];

static void wk_dbg_frame(sim_thread *t, const char *func, int enter) {
    (void)t;
    if (enter) {
        if (wd.depth < ENG_KSTOP_FRAMES) {
            snprintf(wd.frames[wd.depth].func, sizeof wd.frames[0].func, "%s", func ? func : "?");
            wd.frames[wd.depth].file[0] = '\0';
            wd.frames[wd.depth].line = 0;
        }
        wd.depth++;
    } else if (wd.depth > 0) {
        wd.depth--;
    }
}

/* the worker's side of a variable: a pointer into (or near) an argument found */
static void wk_dbg_var(eng_kvar *o, const sim_dbg_var *v) {
    const wk_req *q = wk_cur;
    memcpy(o->name, v->name, sizeof o->name);
    memcpy(o->type, v->type, sizeof o->type);
    memcpy(o->value, v->value, sizeof o->value);
    o->name[sizeof o->name - 1] = o->type[sizeof o->type - 1] = o->value[sizeof o->value - 1] = '\0';
    o->arg = -1;
    if (!v->is_ptr || !q) return;
    const char *pv = v->ptr;
    for (int pass = 0; pass < 2 && o->arg < 0; pass++) /* inside an argument, else near one */
        for (int a = 0; a < q->params.n && a < ISO_MAXR; a++) {
            if (!q->params.is_ptr[a] || q->arg_range[a] < 0 || !wk_ptr[a]) continue;
            const char *lo = wk_ptr[a], *hi = lo + q->arg_bytes[a];
            long long es = q->params.elem[a] ? q->params.elem[a] : 1;
            if (pass == 0 ? pv >= lo && pv <= hi : pv >= lo - ISO_GAP && pv < hi + ISO_GAP) {
                o->arg = a;
                o->elem = pv >= lo ? (long long)(pv - lo) / es : -(long long)((lo - pv + es - 1) / es);
                o->outside = pass;
                break;
            }
        }
}

static void wk_dbg_line(sim_thread *t, const char *file, int line, const char *func, const sim_dbg_var *vars, int n) {
    int d = wd.depth > 0 ? wd.depth : 1;
    if (d <= ENG_KSTOP_FRAMES) { /* this frame's locals as at this line (a caller's: its call) */
        wd_nvars[d - 1] = n < ENG_KSTOP_CVARS ? n : ENG_KSTOP_CVARS;
        memcpy(wd_vars[d - 1], vars, (size_t)wd_nvars[d - 1] * sizeof *vars);
    }
    if (wd.depth == 0) { /* a line outside any instrumented body: its own frame */
        snprintf(wd.frames[0].func, sizeof wd.frames[0].func, "%s", func ? func : "?");
    }
    if (d <= ENG_KSTOP_FRAMES) {
        snprintf(wd.frames[d - 1].file, sizeof wd.frames[0].file, "%s", file);
        wd.frames[d - 1].line = line;
    }
    int reason = -1;
    for (int i = 0; i < wd.nbp && reason < 0; i++)
        if (wd.bp[i].line == line && !strcmp(wd.bp[i].file, file)) reason = 1;
    int stepping = (!wd.first_done && wd.stop_first) || wd.mode == ENG_KSTEP_IN ||
                   (wd.mode == ENG_KNEXT && wd.depth <= wd.ref_depth) ||
                   (wd.mode == ENG_KSTEP_OUT && wd.depth < wd.ref_depth);
    if (reason < 0 && stepping) reason = !wd.first_done && wd.stop_first ? 2 : 0;
    wd.first_done = 1;
    if (reason < 0) return;
    eng_kstop *s = &wd_msg.s;
    memset(&wd_msg, 0, sizeof wd_msg);
    wd_msg.tag = 'b';
    s->reason = reason;
    s->stepping = stepping;
    const sim_uint3 *v3[4] = {&t->block_idx, &t->thread_idx, &t->block_dim, &t->grid_dim};
    unsigned *o3[4] = {s->block, s->thread, s->block_dim, s->grid_dim};
    for (int k = 0; k < 4; k++) {
        o3[k][0] = v3[k]->x;
        o3[k][1] = v3[k]->y;
        o3[k][2] = v3[k]->z;
    }
    int nf = d < ENG_KSTOP_FRAMES ? d : ENG_KSTOP_FRAMES;
    for (int i = 0; i < nf; i++) s->frames[i] = wd.frames[nf - 1 - i];
    s->nframes = nf;
    for (int i = 0; i < n && i < ENG_KSTOP_VARS; i++) wk_dbg_var(&s->vars[i], &vars[i]);
    s->nvars = n < ENG_KSTOP_VARS ? n : ENG_KSTOP_VARS;
    for (int f = 1; f <= ENG_KSTOP_CALLERS && f < nf; f++) { /* callers: as at their call */
        int at = nf - 1 - f; /* wd_vars is outermost first */
        s->ncvars[f - 1] = wd_nvars[at];
        for (int i = 0; i < wd_nvars[at]; i++) wk_dbg_var(&s->cvars[f - 1][i], &wd_vars[at][i]);
    }
    fflush(stdout);
    fflush(stderr);
    if (send(WK_SOCK_FD, &wd_msg, sizeof wd_msg, MSG_NOSIGNAL) != (ssize_t)sizeof wd_msg) _exit(0);
    wk_cmd c;
    for (;;) {
        ssize_t k = recv(WK_SOCK_FD, &c, sizeof c, 0);
        if (k == (ssize_t)sizeof c) break;
        if (k < 0 && errno == EINTR) continue;
        _exit(0); /* the parent is gone */
    }
    wd.mode = c.cmd;
    wd.ref_depth = wd.depth;
    wd.nbp = c.nbp < ENG_KBPS ? c.nbp : ENG_KBPS;
    memcpy(wd.bp, c.bp, sizeof wd.bp);
}

static void wk_dbg_begin(const wk_req *q) {
    if (!q->dbg.on) {
        sim_debug_set(NULL, NULL, NULL);
        return;
    }
    memset(&wd, 0, sizeof wd);
    wd.mode = ENG_KCONTINUE;
    wd.stop_first = q->dbg.stop_first;
    wd.nbp = q->dbg.nbp < ENG_KBPS ? q->dbg.nbp : ENG_KBPS;
    memcpy(wd.bp, q->dbg.bp, sizeof wd.bp);
    sim_dbg_target tg = {1, {q->dbg.block[0], q->dbg.block[1], q->dbg.block[2]},
                         {q->dbg.thread[0], q->dbg.thread[1], q->dbg.thread[2]}};
    sim_debug_set(&tg, wk_dbg_line, wk_dbg_frame);
}

/* one launch in the worker; 0, or -1 when the worker should end */
static int wk_launch(const wk_req *q, sim_body entry) {
    char *res[ISO_MAXR];
    size_t res_len[ISO_MAXR];
    int ok = 1;
    memset(res, 0, sizeof res);
    wk_res->state = ST_NONE;
    for (int k = 0; k < q->nranges && ok; k++) {
        const iso_range *g = &q->rg[k];
        res_len[k] = ISO_GAP * 2 + g->map;
        char *r = mmap(NULL, res_len[k], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r == MAP_FAILED) { /* no room for the guards: the range alone */
            res_len[k] = 0;
            r = NULL;
        }
        res[k] = r;
        char *at = r ? r + ISO_GAP : NULL;
        char *m = mmap(at, g->map, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0), WK_SHM_FD, (off_t)g->off);
        if (m == MAP_FAILED) {
            snprintf(wk_res->msg, sizeof wk_res->msg, "the simulator's worker cannot map a buffer: %s", strerror(errno));
            ok = 0;
            break;
        }
        if (!r) {
            res[k] = m;
            res_len[k] = g->map;
        }
        wk_base[k] = m + g->pad;
    }
    if (ok) {
        void *ptrs[ISO_MAXR], *cargs[ISO_MAXR];
        for (int i = 0; i < q->params.n; i++) {
            if (q->params.is_ptr[i]) {
                wk_ptr[i] = q->arg_range[i] >= 0 ? wk_base[q->arg_range[i]] + q->arg_off[i] : NULL;
                ptrs[i] = wk_ptr[i];
                cargs[i] = &ptrs[i];
            } else {
                cargs[i] = (void *)&q->scalar[i];
            }
        }
        char err[512];
        wk_cur = q;
        wk_dbg_begin(q);
        int rc = sim_launch(entry, cargs, q->grid, q->block, (size_t)q->shared, q->needs_fibers, err, sizeof err);
        wk_cur = NULL;
        fflush(stdout);
        fflush(stderr);
        if (rc < 0) {
            snprintf(wk_res->msg, sizeof wk_res->msg, "%s", err);
            wk_res->state = ST_LAUNCH_ERROR;
        } else {
            wk_res->state = ST_OK;
        }
    } else {
        wk_res->state = ST_LAUNCH_ERROR;
    }
    for (int k = 0; k < q->nranges; k++)
        if (res[k]) munmap(res[k], res_len[k]);
    char done = 'd';
    return send(WK_SOCK_FD, &done, 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static void __attribute__((noreturn)) wk_main(pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    signal(SIGINT, SIG_IGN); /* the parent stops launches (it kills this process) */
    signal(SIGPIPE, SIG_IGN);
    int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom >= 0) {
        if (write(oom, "1000", 4) < 0) {}
        close(oom);
    }
    wk_res = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_SHARED, WK_SHM_FD, 0);
    if (wk_res == MAP_FAILED) _exit(2);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = wk_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
    sim_runtime_isolate();
    static struct { unsigned long long id; sim_body entry; unsigned long base; } libs[WK_MAXLIBS];
    int nlibs = 0;
    static wk_req q;
    for (;;) {
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {&q, sizeof q};
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        ssize_t n = recvmsg(WK_SOCK_FD, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n != (ssize_t)sizeof q) _exit(0); /* the parent is gone */
        int fd = -1;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof fd);
        sim_body entry = NULL;
        wk_lib_base = 0;
        for (int i = 0; i < nlibs; i++)
            if (libs[i].id == q.lib_id) {
                entry = libs[i].entry;
                wk_lib_base = libs[i].base;
            }
        if (!entry && fd >= 0 && nlibs < WK_MAXLIBS) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* fd stays open: see load_bytes */
            entry = h ? (sim_body)dlsym(h, "kiln_sim_entry") : NULL;
            struct link_map *lm = NULL;
            if (entry && dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm) wk_lib_base = (unsigned long)lm->l_addr;
            if (entry) {
                libs[nlibs].id = q.lib_id;
                libs[nlibs].entry = entry;
                libs[nlibs].base = wk_lib_base;
                nlibs++;
            }
        } else if (fd >= 0) {
            close(fd);
        }
        if (!entry) {
            wk_res->state = ST_LAUNCH_ERROR;
            snprintf(wk_res->msg, sizeof wk_res->msg, "the simulator's worker cannot load the kernel: %s",
                     dlerror() ? dlerror() : "?");
            char done = 'd';
            if (send(WK_SOCK_FD, &done, 1, MSG_NOSIGNAL) != 1) _exit(0);
            continue;
        }
        if (wk_launch(&q, entry) < 0) _exit(0);
    }
}

/* KILN_SIM_WORKER=PARENT_PID: this process is the simulator's worker */
__attribute__((constructor)) static void wk_constructor(void) {
    const char *v = getenv("KILN_SIM_WORKER");
    if (!v) return;
    pid_t parent = (pid_t)atol(v);
    unsetenv("KILN_SIM_WORKER");
    wk_main(parent);
}

/* ---- the parent ------------------------------------------------------------------------ */

static pthread_mutex_t iso_lock = PTHREAD_MUTEX_INITIALIZER;
static int iso_fd = -1;       /* the memfd */
static char *iso_map;         /* its mapping in this process */
static size_t iso_cap;        /* its size */
static pid_t wk_pid;          /* the worker (0: none) */
static int wk_sock = -1;      /* our end of its socket */
static unsigned long long wk_gen; /* bumped at each start: libraries are sent again */
static int wk_nlibs;          /* libraries this worker holds (each an fd there) */
#define WK_LIBS_PER_WORKER 256  /* then a fresh worker: fds stay under RLIMIT_NOFILE */
#define WK_SENT_MAX 4096
static struct { const void *lib; unsigned long long gen; } wk_sent[WK_SENT_MAX];
static __thread eng_kdebug *iso_dbg; /* kernel debugging for this thread's launches */

void sim_isolate_debug(eng_kdebug *d) { iso_dbg = d; }
static int wk_nsent;

static void wk_stop(void) {
    if (wk_pid > 0) {
        kill(-wk_pid, SIGKILL);
        kill(wk_pid, SIGKILL);
        while (waitpid(wk_pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    if (wk_sock >= 0) close(wk_sock);
    wk_pid = 0;
    wk_sock = -1;
}

static int wk_start(eng_error *err, const char *kname) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return eng_fail(err, ERR_RUNTIME, "kernel '%s': cannot start the simulator's worker: %s", kname,
                        strerror(errno));
    int hi = fcntl(sv[1], F_DUPFD_CLOEXEC, 10); /* past the worker's fds 3 and 4 */
    close(sv[1]);
    sv[1] = hi;
    if (hi < 0) {
        close(sv[0]);
        return eng_fail(err, ERR_RUNTIME, "kernel '%s': cannot start the simulator's worker: %s", kname,
                        strerror(errno));
    }
    size_t nenv = 0;
    while (environ[nenv]) nenv++;
    char **env = calloc(nenv + 3, sizeof *env);
    char wenv[64];
    snprintf(wenv, sizeof wenv, "KILN_SIM_WORKER=%d", (int)getpid());
    size_t k = 0;
    if (env) {
        env[k++] = wenv;
        for (size_t i = 0; i < nenv; i++)
            if (strncmp(environ[i], "KILN_SIM_WORKER=", 16) != 0) env[k++] = environ[i];
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], WK_SOCK_FD);
    posix_spawn_file_actions_adddup2(&fa, iso_fd, WK_SHM_FD);
    char *argv[] = {"kiln-sim-worker", NULL};
    pid_t pid;
    int rc = env ? posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, env) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        return eng_fail(err, ERR_RUNTIME, "kernel '%s': cannot start the simulator's worker: %s", kname,
                        strerror(rc));
    }
    wk_pid = pid;
    wk_sock = sv[0];
    wk_gen++;
    wk_nlibs = 0;
    return 0;
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* the memfd with at least cap bytes mapped at iso_map */
static int iso_reserve(size_t cap) {
    if (iso_fd < 0) {
        int fd = memfd_create("kiln-sim-buffers", MFD_CLOEXEC);
        if (fd < 0) return -1;
        iso_fd = fcntl(fd, F_DUPFD_CLOEXEC, 10); /* past the worker's fds 3 and 4 */
        close(fd);
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
    munmap(iso_map, iso_cap); /* the worker maps the ranges per launch: shrinking is safe */
    iso_map = NULL;
    iso_cap = 0;
    if (ftruncate(iso_fd, 0) < 0) {}
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "cell[3]:5" for offset pc_off in the library loaded from this process's so_fd, from
 * addr2line; "" when it cannot tell */
static void pc_line(int so_fd, unsigned long pc_off, char *out, size_t cap) {
    out[0] = '\0';
    if (so_fd < 0) return;
    char file[64], addr[32];
    snprintf(file, sizeof file, "/proc/%d/fd/%d", (int)getpid(), so_fd);
    snprintf(addr, sizeof addr, "0x%lx", pc_off);
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
            /* the compiler's folder is "." in the debug information (sim_driver.c's
             * -fdebug-prefix-map): the cells' relative names come back after "./" */
            const char *shown = ln;
            while (strncmp(shown, "./", 2) == 0) shown += 2;
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


static int wk_sent_has(const void *lib) {
    for (int i = 0; i < wk_nsent; i++)
        if (wk_sent[i].lib == lib) return wk_sent[i].gen == wk_gen;
    return 0;
}

static void wk_sent_add(const void *lib) {
    for (int i = 0; i < wk_nsent; i++)
        if (wk_sent[i].lib == lib) {
            wk_sent[i].gen = wk_gen;
            return;
        }
    int i = wk_nsent < WK_SENT_MAX ? wk_nsent++ : -1;
    for (int j = 0; i < 0 && j < wk_nsent; j++) /* full: forget one an older worker had */
        if (wk_sent[j].gen != wk_gen) i = j;
    if (i >= 0) {
        wk_sent[i].lib = lib;
        wk_sent[i].gen = wk_gen;
    }
}

/* the worker's debugged thread stopped: the engine says how to go on, the worker is
 * told; -1 when the launch is to end (ENG_KABORT, an interrupt, the worker gone) */
static int iso_stopped(eng_kstop *s, eng_kdebug *dbg, const char *kname, const sim_check_params *p,
                       const wk_req *q) {
    wk_cmd c;
    memset(&c, 0, sizeof c);
    c.cmd = ENG_KCONTINUE;
    if (dbg && dbg->on_stop) {
        s->nargs = p->n;
        for (int i = 0; i < p->n && i < 64; i++) {
            int k = q->arg_range[i];
            if (!p->is_ptr[i] || k < 0) continue;
            s->arg_data[i] = iso_map + q->rg[k].off + q->rg[k].pad + q->arg_off[i];
            s->arg_bytes[i] = (size_t)q->arg_bytes[i];
        }
        c.cmd = dbg->on_stop(dbg, kname, s);
        if (c.cmd == ENG_KABORT || eng_ctx_interrupted()) return -1;
        c.nbp = dbg->nbp < ENG_KBPS ? dbg->nbp : ENG_KBPS;
        memcpy(c.bp, dbg->bp, sizeof c.bp);
    }
    return send(wk_sock, &c, sizeof c, MSG_NOSIGNAL) == (ssize_t)sizeof c ? 0 : -1;
}

static int launch_locked(int so_fd, const void *lib, const char *kname, const sim_check_params *p, int needs_fibers,
                         const unsigned grid[3], const unsigned block[3], size_t shared, void **args,
                         const size_t *arg_bytes, eng_error *err) {
    static wk_req q;
    memset(&q, 0, sizeof q);
    if (p->n > ISO_MAXR) return eng_fail(err, ERR_VALUE, "kernel '%s': too many parameters", kname);
    if (so_fd < 0) return eng_fail(err, ERR_RUNTIME, "kernel '%s': its library has no file to give the worker", kname);
    size_t bytes[ISO_MAXR];
    for (int i = 0; i < p->n; i++) bytes[i] = arg_bytes ? arg_bytes[i] : 0;
    int nr = make_ranges(p, args, bytes, q.rg, q.arg_range);
    /* the memfd's layout: the result page, then each range's whole pages */
    size_t pg = page_size(), off = pg;
    for (int k = 0; k < nr; k++) {
        iso_range *g = &q.rg[k];
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
                        "simulator's worker: %s", kname, off, strerror(errno));
    iso_result *res = (iso_result *)iso_map;
    memset(res, 0, sizeof *res);
    res->arg = -1;
    for (int k = 0; k < nr; k++)
        memcpy(iso_map + q.rg[k].off + q.rg[k].pad, q.rg[k].start, (size_t)(q.rg[k].end - q.rg[k].start));
    q.lib_id = (unsigned long long)(uintptr_t)lib;
    q.needs_fibers = needs_fibers;
    memcpy(q.grid, grid, sizeof q.grid);
    memcpy(q.block, block, sizeof q.block);
    q.shared = shared;
    q.nranges = nr;
    q.params = *p;
    eng_kdebug *dbg = iso_dbg;
    if (dbg) {
        q.dbg.on = 1;
        q.dbg.stop_first = dbg->stop_first;
        q.dbg.nbp = dbg->nbp < ENG_KBPS ? dbg->nbp : ENG_KBPS;
        memcpy(q.dbg.bp, dbg->bp, sizeof q.dbg.bp);
        memcpy(q.dbg.block, dbg->block, sizeof q.dbg.block);
        memcpy(q.dbg.thread, dbg->thread, sizeof q.dbg.thread);
    }
    for (int i = 0; i < p->n; i++) {
        q.arg_bytes[i] = bytes[i];
        if (p->is_ptr[i]) {
            if (q.arg_range[i] >= 0) q.arg_off[i] = (unsigned long long)(*(char **)args[i] - q.rg[q.arg_range[i]].start);
        } else {
            memcpy(&q.scalar[i], args[i], p->size[i] < 8 ? p->size[i] : 8);
        }
    }
    if (wk_pid > 0 && wk_nlibs >= WK_LIBS_PER_WORKER && !wk_sent_has(lib))
        wk_stop();
    if (wk_pid <= 0 && wk_start(err, kname) < 0) return -1;
    fflush(stdout);
    fflush(stderr);
    /* the request, with the library's memfd the first time this worker sees it */
    struct iovec iov = {&q, sizeof q};
    struct msghdr mh;
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    int send_fd = !wk_sent_has(lib);
    if (send_fd) {
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &so_fd, sizeof so_fd);
        q.has_fd = 1;
    }
    if (sendmsg(wk_sock, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof q) {
        wk_stop();
        return eng_fail(err, ERR_RUNTIME, "kernel '%s': the simulator's worker did not take the launch", kname);
    }
    if (send_fd) {
        wk_sent_add(lib);
        wk_nlibs++;
    }
    const char *tenv = getenv("KILN_SIM_TIMEOUT");
    double limit = tenv ? atof(tenv) : 0, t0 = now_s();
    int stopped = 0, dead = 0; /* stopped: 1 interrupt, 2 timeout */
    for (;;) {
        struct pollfd pf = {wk_sock, POLLIN, 0};
        int n = poll(&pf, 1, 50);
        if (n > 0) {
            static wk_stop_msg msg;
            ssize_t k = recv(wk_sock, &msg, sizeof msg, MSG_DONTWAIT);
            if (k == 1 && msg.tag == 'd') break;
            if (k == (ssize_t)sizeof msg && msg.tag == 'b') { /* the debugged thread stopped */
                if (iso_stopped(&msg.s, dbg, kname, p, &q) < 0) {
                    stopped = 1;
                    break;
                }
                t0 = now_s(); /* a stop does not count against KILN_SIM_TIMEOUT */
                continue;
            }
            if (k >= 0 || (errno != EAGAIN && errno != EINTR)) {
                dead = 1;
                break;
            }
        }
        if (eng_ctx_interrupted()) stopped = 1;
        else if (limit > 0 && now_s() - t0 > limit) stopped = 2;
        if (stopped) break;
    }
    int st = 0;
    if (dead) { /* it ended by itself (a fault, most likely): its status says how */
        while (waitpid(wk_pid, &st, 0) < 0 && errno == EINTR) {}
        kill(-wk_pid, SIGKILL);
        close(wk_sock);
        wk_pid = 0;
        wk_sock = -1;
    } else if (stopped) {
        wk_stop();
    }
    int rc = -1;
    if (stopped == 1) {
        eng_fail(err, ERR_INTERRUPT, "interrupted (kernel '%s' was stopped)", kname);
    } else if (stopped == 2) {
        eng_fail(err, ERR_CUDA, "kernel '%s' ran past KILN_SIM_TIMEOUT=%g s and was stopped", kname, limit);
    } else if (!dead && res->state == ST_OK) {
        for (int k = 0; k < nr; k++)
            if (q.rg[k].writable)
                memcpy(q.rg[k].start, iso_map + q.rg[k].off + q.rg[k].pad, (size_t)(q.rg[k].end - q.rg[k].start));
        rc = 0;
    } else if (!dead && res->state == ST_LAUNCH_ERROR) {
        eng_fail(err, ERR_RUNTIME, "kernel '%s': %s", kname, res->msg);
    } else if (res->state == ST_FAULT) {
        char what[200], line[300] = "", near[200] = "";
        sig_what(res, what, sizeof what);
        if (res->stack)
            snprintf(what, sizeof what, "stack overflow (a thread's stack is 512 KiB; deep recursion or large "
                     "local arrays)");
        if (res->has_pc) pc_line(so_fd, res->pc_off, line, sizeof line);
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
        eng_fail(err, ERR_CUDA, "kernel '%s': the simulator's worker died of signal %d (%s)", kname, WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    } else {
        eng_fail(err, ERR_CUDA, "kernel '%s' ended the simulator's worker (exit status %d) before the grid finished",
                 kname, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    iso_trim();
    return rc;
}

int sim_isolated_launch(int so_fd, const void *lib, const char *kname, const sim_check_params *p, int needs_fibers,
                        const unsigned grid[3], const unsigned block[3], size_t shared, void **args,
                        const size_t *arg_bytes, eng_error *err) {
    pthread_mutex_lock(&iso_lock);
    int rc = launch_locked(so_fd, lib, kname, p, needs_fibers, grid, block, shared, args, arg_bytes, err);
    pthread_mutex_unlock(&iso_lock);
    return rc;
}
