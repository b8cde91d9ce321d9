/* sim_driver.c — sim_kdriver: compiles a cell's CUDA C with the host C++ compiler
 * against kiln_sim.h and runs it with the simulator's runtime (sim_runtime.h).
 *
 * compile() builds one C++ file: the emulation header (sim_runtime.h + kiln_sim.h,
 * embedded in this object at build time with .incbin, so the binary works wherever it
 * goes), the engine's translation unit (its #line directives keep the compiler's
 * messages on the cells' lines; `extern __shared__ T name[];` is rewritten in place to
 * KILN_EXTERN_SHARED(T, name);), and an extern "C" entry `kiln_sim_entry` that sets
 * the current thread and calls the kernel with its arguments unpacked from void **args
 * by the kernel's own parameter types. `c++ -std=c++17 -O2 -shared -fPIC` makes a .so
 * that is dlopen'ed (from a memfd when it comes from the disk cache).
 *
 * Caches: in memory for the process (key -> loaded library; never unloaded) and on disk
 * (cuda/kcache.h, entries "<key>.so"); the key hashes the generated C++, the compile
 * flags, the compiler's identity (resolved path, size, mtime) and the machine.
 *
 * Launches: launch_sized (the engine's) runs the grid in the simulator's worker process
 * (sim_isolate.c), so that no kernel can crash or wedge kiln; the unsized launch (unit
 * tests, trusted callers) runs it in this process. Check mode (check = 1): an
 * AddressSanitizer executable run per launch in a child process, see sim_check.c; it
 * needs launch_sized (each pointer argument's extent).
 */
#define _GNU_SOURCE
#include "engine/tensor/kdriver.h"

#include <ctype.h>
#include <limits.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "cuda/kcache.h"
#include "cuda/sim/sim_internal.h"
#include "engine/base/strbuf.h"
#include "cuda/sim/sim_runtime.h"
#include "engine/base/context.h"

extern char **environ;

/* the emulation headers, embedded at build time (NUL-terminated) */
__asm__(".section .rodata\n"
        ".balign 16\n"
        "sim_hdr_runtime:\n"
        ".incbin \"cuda/sim/sim_runtime.h\"\n"
        ".byte 0\n"
        ".balign 16\n"
        "sim_hdr_kiln:\n"
        ".incbin \"cuda/sim/kiln_sim.h\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char sim_hdr_runtime[] __asm__("sim_hdr_runtime");
extern const char sim_hdr_kiln[] __asm__("sim_hdr_kiln");

#define SIM_CXXFLAGS "-std=c++17", "-O2", "-g1", "-fstack-clash-protection", "-shared", "-fPIC", \
                     "-fvisibility=hidden", "-w", \
                     "-fdiagnostics-color=never", "-fno-diagnostics-show-caret", "-fmax-errors=8"

/* ---- one loaded library (lives for the process) ------------------------------------------ */

typedef struct sim_lib {
    char key[KCACHE_KEY_LEN + 1];
    char path[512];           /* the disk cache entry ("" if none) */
    void *handle;             /* dlopen handle */
    sim_body entry;           /* kiln_sim_entry */
    int needs_fibers;         /* the source uses barriers or warp operations */
    int check;                /* a checking build: runs in a child process */
    int debug;                /* a debug build (sim_debug.c's hooks) */
    int so_fd;                /* the memfd the library was loaded from (-1 if none) */
    int exe_fd;               /* check: a memfd holding the checking executable */
    sim_check_params params;  /* check: the parameters' kinds and sizes */
    char *code;               /* the generated C++ as shown by code() */
    struct sim_lib *next;
} sim_lib;

struct eng_kmodule {
    sim_lib *lib;
    char kname[64];
};

static pthread_mutex_t sim_lock = PTHREAD_MUTEX_INITIALIZER;
static sim_lib *sim_libs; /* the in-memory cache */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- growable text ------------------------------------------------------------------------ */

static void buf_str(strbuf *b, const char *s) { strbuf_put(b, s, strlen(s)); }


/* ---- source rewriting ------------------------------------------------------------------------ */

static int is_ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* does the source use anything that needs fibers (barriers, warp operations)? */
static int source_needs_fibers(const char *src) {
    static const char *const words[] = {"__syncthreads", "__syncwarp", "__shfl", "__ballot", "__any_sync",
                                        "__all_sync", "__activemask", "__match", "__reduce_"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(src, words[i])) return 1;
    return 0;
}

/* copies src to out, turning `extern __shared__ T name[];` into
 * `KILN_EXTERN_SHARED(T, name);` on the same line (__align__(n) dropped) */
static void rewrite_source(strbuf *out, const char *src) {
    const char *p = src;
    for (;;) {
        const char *e = strstr(p, "extern");
        if (!e) break;
        int word = (e == src || !is_ident(e[-1])) && !is_ident(e[6]);
        const char *q = e + 6;
        while (*q == ' ' || *q == '\t') q++;
        if (!word || strncmp(q, "__shared__", 10) != 0 || is_ident(q[10])) {
            strbuf_put(out, p, (size_t)(e + 6 - p));
            p = e + 6;
            continue;
        }
        const char *decl = q + 10, *br = decl;
        while (*br && *br != '[' && *br != ';' && *br != '\n') br++;
        if (*br != '[' || br[1] != ']') { /* not the form we know: leave it to the compiler */
            strbuf_put(out, p, (size_t)(decl - p));
            p = decl;
            continue;
        }
        const char *ne = br;
        while (ne > decl && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
        const char *ns = ne;
        while (ns > decl && is_ident(ns[-1])) ns--;
        strbuf_put(out, p, (size_t)(e - p));
        buf_str(out, "KILN_EXTERN_SHARED(");
        for (const char *t = decl; t < ns;) { /* the type, without __align__(...) */
            if (strncmp(t, "__align__", 9) == 0) {
                const char *c = strchr(t, ')');
                if (c && c < ns) {
                    t = c + 1;
                    continue;
                }
            }
            strbuf_put(out, t, 1);
            t++;
        }
        buf_str(out, ",");
        strbuf_put(out, ns, (size_t)(ne - ns));
        buf_str(out, ")");
        p = br + 2;
    }
    buf_str(out, p);
}

/* ---- the compiler ---------------------------------------------------------------------------- */

static char sim_cxx[512];        /* resolved compiler path ("" until found) */
static char sim_cxx_id[PATH_MAX + 256];     /* path, size, mtime, machine: part of every key */

static int find_in_path(const char *name, char *out, size_t cap) {
    if (strchr(name, '/')) {
        if (access(name, X_OK) != 0) return -1;
        snprintf(out, cap, "%s", name);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *c = strchr(path, ':');
        size_t n = c ? (size_t)(c - path) : strlen(path);
        if (n && (size_t)snprintf(out, cap, "%.*s/%s", (int)n, path, name) < cap && access(out, X_OK) == 0) return 0;
        path += n + (c ? 1 : 0);
    }
    return -1;
}

/* under sim_lock */
static int resolve_compiler(eng_error *err) {
    if (sim_cxx[0]) return 0;
    const char *env = getenv("KILN_SIM_CXX");
    const char *cands[] = {env, "c++", "g++", "clang++"};
    for (size_t i = 0; i < 4; i++) {
        if (!cands[i] || !cands[i][0]) continue;
        if (find_in_path(cands[i], sim_cxx, sizeof sim_cxx) == 0) break;
        sim_cxx[0] = '\0';
    }
    if (!sim_cxx[0])
        return eng_fail(err, ERR_COMPILE, "the CUDA simulator needs a C++ compiler: install g++ (or set KILN_SIM_CXX)");
    struct stat st;
    char real[PATH_MAX];
    struct utsname un;
    if (!realpath(sim_cxx, real)) snprintf(real, sizeof real, "%s", sim_cxx);
    if (stat(real, &st) != 0) memset(&st, 0, sizeof st);
    if (uname(&un) != 0) memset(&un, 0, sizeof un);
    snprintf(sim_cxx_id, sizeof sim_cxx_id, "%s|%lld|%lld|%s", real, (long long)st.st_size,
             (long long)st.st_mtime, un.machine);
    return 0;
}

int sim_wait_child(pid_t pid, int *status, double limit_s) {
    double t0 = now_ms();
    long nap = 1000000; /* 1 ms, growing to 20 ms */
    int stopped = 0;
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid) return 0;
        if (w < 0 && errno != EINTR) return -1;
        if (eng_ctx_interrupted()) stopped = SIM_WAIT_INTERRUPTED;
        else if (limit_s > 0 && now_ms() - t0 > limit_s * 1e3) stopped = SIM_WAIT_TIMEOUT;
        if (stopped) break;
        struct timespec ts = {0, nap};
        nanosleep(&ts, NULL);
        if (nap < 20000000) nap += nap / 2;
    }
    kill(-pid, SIGKILL); /* its group (the compiler's own children) */
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {}
    return stopped;
}

/* the compiler's environment: the session's, with LC_ALL=C, so that its messages read
 * the same on every machine (plain ASCII quotes, English): users' reports and the golden
 * tests compare them. malloc'ed array (the strings are environ's); NULL when out of memory */
static char **compiler_env(void) {
    static char c_locale[] = "LC_ALL=C";
    size_t n = 0, k = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LC_ALL=", 7)) env[k++] = environ[i];
    env[k] = c_locale;
    return env;
}

/* runs argv with stdout+stderr into errpath in a process group of its own, bounded by
 * KILN_SIM_COMPILE_TIMEOUT seconds (default 120) and the interrupt flag; returns the
 * exit status, -1 if it did not run, SIM_WAIT_INTERRUPTED / SIM_WAIT_TIMEOUT (negated) */
int sim_run_compiler(char *const argv[], const char *errpath) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    if (posix_spawn_file_actions_init(&fa) != 0) return -1;
    if (posix_spawnattr_init(&at) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    char **cenv = compiler_env();
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, cenv ? cenv : environ);
    free(cenv);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) return -1;
    const char *env = getenv("KILN_SIM_COMPILE_TIMEOUT");
    double limit = env && atof(env) > 0 ? atof(env) : 120.0;
    int status = 0, w = sim_wait_child(pid, &status, limit);
    if (w != 0) return w < 0 ? -1 : -w;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

void sim_compiler_failed(int st, const char *cxx, eng_error *err) {
    const char *env = getenv("KILN_SIM_COMPILE_TIMEOUT");
    if (st == -SIM_WAIT_INTERRUPTED) eng_fail(err, ERR_INTERRUPT, "interrupted (the C++ compiler was stopped)");
    else if (st == -SIM_WAIT_TIMEOUT)
        eng_fail(err, ERR_COMPILE, "the C++ compiler ran past %g s (KILN_SIM_COMPILE_TIMEOUT) and was stopped: "
                 "does the kernel #include a pipe, a device or a huge file?",
                 env && atof(env) > 0 ? atof(env) : 120.0);
    else eng_fail(err, ERR_COMPILE, "simulator: cannot run %s", cxx);
}

char *sim_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    strbuf b = {0};
    char tmp[8192];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) strbuf_put(&b, tmp, n);
    fclose(f);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (!b.p) strbuf_put(&b, "", 0);
    if (len) *len = b.len;
    return b.p;
}

/* turns the compiler's output into err: the error lines, one line of text, the first
 * error's cell line in err->line */
void sim_compile_error(const char *out, const char *tmpdir, const char *kname, eng_error *err) {
    char msg[sizeof err->msg];
    size_t len = 0;
    int shown = 0, more = 0, line = 0, col = 0;
    msg[0] = '\0';
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char ln[600];
        snprintf(ln, sizeof ln, "%.*s", (int)(n < sizeof ln - 1 ? n : sizeof ln - 1), p);
        p += n + (nl ? 1 : 0);
        char *e = strstr(ln, ": error: ");
        if (!e) e = strstr(ln, ": fatal error: ");
        if (!e) continue;
        if (shown == 3) {
            more++;
            continue;
        }
        char *text = ln;
        size_t tl = strlen(tmpdir); /* never show the temporary folder */
        if (strncmp(text, tmpdir, tl) == 0) text += tl + (text[tl] == '/');
        if (strncmp(text, "kiln-entry", 10) == 0 && strstr(text, "not declared")) {
            snprintf(ln, sizeof ln, "no __global__ function named '%s' in the kernel's source", kname);
            text = ln;
        } else if (!shown && strncmp(text, "cell[", 5) == 0) {
            const char *c = strchr(text, ':');
            if (c) sscanf(c + 1, "%d:%d", &line, &col);
        }
        int k = snprintf(msg + len, sizeof msg - len, "%s%s", shown ? "; " : "", text);
        if (k < 0 || (size_t)k >= sizeof msg - len) break;
        len += (size_t)k;
        shown++;
    }
    if (!shown) snprintf(msg, sizeof msg, "the C++ compiler failed: %.500s", out[0] ? out : "(no output)");
    else if (more && len + 40 < sizeof msg)
        snprintf(msg + len, sizeof msg - len, " (and %d more error%s)", more, more == 1 ? "" : "s");
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    eng_fail(err, ERR_COMPILE, "%s", msg);
    if (err && line > 0) {
        err->line = line;
        err->col = col;
    }
}

/* ---- loading --------------------------------------------------------------------------------- */

static int load_lib(sim_lib *lib, const char *path) {
    lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib->handle) return -1;
    lib->entry = (sim_body)dlsym(lib->handle, "kiln_sim_entry");
    if (!lib->entry) {
        dlclose(lib->handle);
        lib->handle = NULL;
        return -1;
    }
    return 0;
}

/* loads a .so from bytes (the disk cache) through a memfd */
static int load_bytes(sim_lib *lib, const void *bytes, size_t len) {
    int fd = memfd_create("kiln-sim-kernel", MFD_CLOEXEC);
    if (fd < 0) return -1;
    const char *p = bytes;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int rc = load_lib(lib, path);
    if (rc == 0)
        lib->so_fd = fd;
    /* the memfd stays open while the library lives (for the process): closed, its number
     * (and so the path /proc/self/fd/N) would be reused by the next cached load, and
     * dlopen would hand back this library for that one, matched by name */
    if (rc)
        close(fd);
    return rc;
}

/* ---- compile ------------------------------------------------------------------------------------ */

static void free_lib(sim_lib *lib) {
    if (!lib) return;
    if (lib->handle) dlclose(lib->handle);
    if (lib->exe_fd >= 0) close(lib->exe_fd);
    free(lib->code);
    free(lib);
}

/* compiles `full` (the whole C++ file) into lib; under sim_lock */
static int build_lib(sim_lib *lib, const char *full, const char *kname, int debug, eng_error *err) {
    const char *tmp = getenv("TMPDIR");
    char dir[512], srcp[600], sop[600], errp[600];
    snprintf(dir, sizeof dir, "%s/kiln-sim-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) return eng_fail(err, ERR_IO, "simulator: cannot make a temporary folder: %s", strerror(errno));
    snprintf(srcp, sizeof srcp, "%s/kernel.cc", dir);
    snprintf(sop, sizeof sop, "%s/kernel.so", dir);
    snprintf(errp, sizeof errp, "%s/compiler.txt", dir);
    int rc = -1;
    FILE *f = fopen(srcp, "w");
    if (!f || fputs(full, f) < 0 || fclose(f) != 0) {
        if (f) fclose(f);
        eng_fail(err, ERR_IO, "simulator: cannot write %s", srcp);
        goto done;
    }
    /* the folder the compiler runs in becomes "." in the debug information, so that a
     * library from the disk cache names its cells alike whoever compiled it (the
     * worker's addr2line turns faults into "cell[3]:5") */
    char cwd[400], prefix_map[440] = "-g1";
    if (getcwd(cwd, sizeof cwd)) snprintf(prefix_map, sizeof prefix_map, "-fdebug-prefix-map=%s=.", cwd);
    /* a debug build: -O0 compiles faster, and its hooks keep every local alive anyway */
    char *argv[] = {sim_cxx, SIM_CXXFLAGS, prefix_map, debug ? "-O0" : "-O2", "-o", sop, srcp, NULL};
    int st = sim_run_compiler(argv, errp);
    if (st != 0) {
        char *out = sim_read_file(errp, NULL);
        if (st < 0) sim_compiler_failed(st, sim_cxx, err);
        else sim_compile_error(out ? out : "", dir, kname, err);
        free(out);
        goto done;
    }
    size_t len;
    char *bytes = sim_read_file(sop, &len);
    if (!bytes) {
        eng_fail(err, ERR_IO, "simulator: cannot read the compiled kernel %s", sop);
        goto done;
    }
    if (kcache_put(lib->key, "so", bytes, len, NULL) == 0) kcache_path(lib->key, "so", lib->path, sizeof lib->path);
    /* loaded from a memfd like a cached one: a temporary path could come back later
     * (mkdtemp reuses freed names) and dlopen would match it to this library */
    int lrc = load_bytes(lib, bytes, len);
    free(bytes);
    if (lrc < 0) {
        const char *why = dlerror();
        eng_fail(err, ERR_COMPILE, "simulator: cannot load the compiled kernel: %s", why ? why : "?");
        goto done;
    }
    rc = 0;
done:
    unlink(srcp);
    unlink(sop);
    unlink(errp);
    rmdir(dir);
    return rc;
}

static eng_kmodule *sim_compile(const char *src, const char *kname, const eng_kparam *params, int nparams,
                                int check, eng_kinfo *info, eng_error *err) {
    double t0 = now_ms();
    if (info) {
        memset(info, 0, sizeof *info);
        info->regs = -1;
        info->static_shared = (size_t)-1;
        info->max_threads = SIM_MAX_THREADS;
    }
    if (nparams < 0 || nparams > 64) {
        eng_fail(err, ERR_VALUE, "kernel '%s' has %d parameters: the simulator takes at most 64", kname, nparams);
        return NULL;
    }
    for (const char *c = kname; *c; c++)
        if (!is_ident(*c)) {
            eng_fail(err, ERR_VALUE, "bad kernel name '%s'", kname);
            return NULL;
        }
    eng_kmodule *m = calloc(1, sizeof *m);
    strbuf body = {0}, full = {0}, shown = {0};
    sim_lib *lib = NULL;
    if (!m) goto oom;
    snprintf(m->kname, sizeof m->kname, "%s", kname);

    /* the kernel's part: the engine's source rewritten (a debug build: instrumented),
     * then the entry */
    int debug = check == 2;
    if (debug) {
        strbuf plain = {0};
        rewrite_source(&plain, src);
        if (plain.oom || sim_debug_instrument(&body, plain.p ? plain.p : "") < 0) {
            free(plain.p);
            goto oom;
        }
        free(plain.p);
        check = 0;
    } else {
        rewrite_source(&body, src);
    }
    strbuf_printf(&body,
            "\n#line 1 \"kiln-entry\"\n"
            "extern \"C\" __attribute__((visibility(\"default\"))) void kiln_sim_entry(void *args, sim_thread *t) {\n"
            "    kiln_sim_cur = t;\n"
            "    kiln_sim_call(&%s, (void **)args);\n"
            "}\n"
            "static_assert(kiln_sim_nparams(&%s) == %d, \"kernel '%s' does not have the %d parameters kiln parsed\");\n",
            kname, kname, nparams, kname, nparams);
    /* the file compiled: the headers inline; the file shown: #include */
    if (debug) buf_str(&full, "#define KILN_SIM_DEBUG 1\n");
    buf_str(&full, "#line 1 \"sim_runtime.h\"\n");
    buf_str(&full, sim_hdr_runtime);
    buf_str(&full, "#line 1 \"kiln_sim.h\"\n");
    const char *inc = strstr(sim_hdr_kiln, "#include \"sim_runtime.h\"");
    if (inc) {
        strbuf_put(&full, sim_hdr_kiln, (size_t)(inc - sim_hdr_kiln));
        buf_str(&full, "//");
        buf_str(&full, inc);
    } else {
        buf_str(&full, sim_hdr_kiln);
    }
    buf_str(&full, "\n");
    buf_str(&full, body.p ? body.p : "");
    if (check) buf_str(&full, sim_check_main);
    if (debug) buf_str(&shown, "#define KILN_SIM_DEBUG 1\n");
    buf_str(&shown, "#include \"kiln_sim.h\"\n");
    buf_str(&shown, body.p ? body.p : "");
    if (body.oom || full.oom || shown.oom) goto oom;
    (void)params;

    pthread_mutex_lock(&sim_lock);
    if (resolve_compiler(err) < 0) {
        pthread_mutex_unlock(&sim_lock);
        goto fail;
    }
    kcache_hash h;
    char key[KCACHE_KEY_LEN + 1];
    kcache_hash_init(&h);
    kcache_hash_str(&h, "kiln-sim-2"); /* 2: debug names relative to "." */
    kcache_hash_str(&h, full.p);
    const char *flags[] = {SIM_CXXFLAGS};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) kcache_hash_str(&h, flags[i]);
    kcache_hash_str(&h, sim_cxx_id);
    kcache_hash_str(&h, check ? "check" : debug ? "debug" : "plain");
    kcache_hash_key(&h, key);

    for (sim_lib *l = sim_libs; l; l = l->next)
        if (strcmp(l->key, key) == 0) {
            pthread_mutex_unlock(&sim_lock);
            m->lib = l;
            if (info) {
                info->cache = 1;
                snprintf(info->cache_path, sizeof info->cache_path, "%s", l->path);
            }
            free(body.p);
            free(full.p);
            free(shown.p);
            return m;
        }

    lib = calloc(1, sizeof *lib);
    if (!lib) {
        pthread_mutex_unlock(&sim_lock);
        goto oom;
    }
    lib->exe_fd = -1;
    lib->so_fd = -1;
    memcpy(lib->key, key, sizeof key);
    lib->needs_fibers = source_needs_fibers(src);
    lib->debug = debug;
    lib->code = shown.p;
    shown.p = NULL;
    int cache = 0;
    void *bytes;
    size_t len;
    lib->params.n = nparams;
    for (int i = 0; i < nparams; i++) {
        lib->params.is_ptr[i] = (unsigned char)params[i].is_ptr;
        lib->params.is_const[i] = (unsigned char)params[i].is_const;
        lib->params.size[i] = params[i].is_ptr ? sizeof(void *) : eng_ctype_size(params[i].ctype);
        lib->params.elem[i] = (unsigned)eng_ctype_size(params[i].ctype);
        snprintf(lib->params.name[i], sizeof lib->params.name[i], "%s", params[i].name);
    }
    if (check) {
        lib->check = 1;
        if (sim_check_build(sim_cxx, full.p, kname, key, &lib->exe_fd, &cache, lib->path, sizeof lib->path, err) < 0) {
            pthread_mutex_unlock(&sim_lock);
            goto fail;
        }
    } else if (kcache_get(key, "so", &bytes, &len)) {
        if (load_bytes(lib, bytes, len) == 0) {
            cache = 2;
            kcache_path(key, "so", lib->path, sizeof lib->path);
        } else {
            kcache_remove(key, "so"); /* the loader refused it: rebuild */
        }
        free(bytes);
    }
    if (!check && !cache && build_lib(lib, full.p, kname, debug, err) < 0) {
        pthread_mutex_unlock(&sim_lock);
        goto fail;
    }
    lib->next = sim_libs;
    sim_libs = lib;
    pthread_mutex_unlock(&sim_lock);
    m->lib = lib;
    if (info) {
        info->cache = cache;
        info->compile_ms = cache ? 0.0 : now_ms() - t0;
        snprintf(info->cache_path, sizeof info->cache_path, "%s", lib->path);
    }
    free(body.p);
    free(full.p);
    return m;
oom:
    eng_fail(err, ERR_MEMORY, "out of memory compiling kernel '%s'", kname);
fail:
    free_lib(lib);
    free(m);
    free(body.p);
    free(full.p);
    free(shown.p);
    return NULL;
}

static void sim_release(eng_kmodule *m) { free(m); /* the library stays in the session's cache */ }

static void sim_limits(eng_klimits *out) {
    out->max_block[0] = 1024;
    out->max_block[1] = 1024;
    out->max_block[2] = 64;
    out->max_threads = SIM_MAX_THREADS;
    out->max_grid[0] = 2147483647u;
    out->max_grid[1] = 65535;
    out->max_grid[2] = 65535;
    out->max_shared = SIM_MAX_SHARED;
}

static int sim_klaunch_sized(eng_kmodule *m, const unsigned grid[3], const unsigned block[3], size_t shared,
                             void **args, const size_t *arg_bytes, eng_error *err) {
    char msg[512];
    if (m->lib->check)
        return sim_check_launch(m->lib->exe_fd, m->kname, &m->lib->params, m->lib->needs_fibers, grid, block, shared,
                                args, arg_bytes, err);
    if (arg_bytes) /* the engine's launches: in a child process that no kernel can take down */
        return sim_isolated_launch(m->lib->so_fd, m->lib, m->kname, &m->lib->params, m->lib->needs_fibers, grid,
                                   block, shared, args, arg_bytes, err);
    /* an unsized launch (tests, trusted callers): in this process */
    if (sim_launch(m->lib->entry, args, grid, block, shared, m->lib->needs_fibers, msg, sizeof msg) < 0)
        return eng_fail(err, ERR_RUNTIME, "kernel '%s': %s", m->kname, msg);
    return 0;
}

static int sim_klaunch(eng_kmodule *m, const unsigned grid[3], const unsigned block[3], size_t shared, void **args,
                       eng_error *err) {
    return sim_klaunch_sized(m, grid, block, shared, args, NULL, err);
}

static int sim_sync(eng_error *err) { return 0; }

static void sim_debug(eng_kdebug *d) { sim_isolate_debug(d); }

static char *sim_code(eng_kmodule *m, eng_error *err) {
    char *s = strdup(m->lib->code);
    if (!s) eng_fail(err, ERR_MEMORY, "out of memory");
    return s;
}

const eng_kdriver sim_kdriver = {
    .name = "sim",
    .compile = sim_compile,
    .release = sim_release,
    .limits = sim_limits,
    .launch = sim_klaunch,
    .launch_sized = sim_klaunch_sized,
    .sync = sim_sync,
    .code = sim_code,
    .debug = sim_debug,
};
