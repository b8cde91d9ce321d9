/* sim_check.c — the simulator's checking mode (`%sim check`): the kernel and the
 * runtime compiled with AddressSanitizer into a small executable that runs each launch
 * in a child process, so an out-of-bounds access is reported with the kernel's own
 * cell line instead of corrupting the session.
 *
 * A launch: the parent writes the launch shape and every argument (a pointer's bytes at
 * its exact extent, a scalar's value) into a memfd given to the child as fd 3; the
 * child mallocs each buffer at its exact size (ASan's redzones sit right after it),
 * runs the grid with the ordinary runtime (fibers annotated for ASan), and writes the
 * buffers back into fd 4; the parent copies them into the non-const arguments. Exit
 * 99 is an ASan report (stderr, fd 2, a memfd): its first frame inside a cell and the
 * simulated thread (printed by the __asan_on_error hook) make the message.
 * Limits: arguments are copied separately, so two pointers into one tensor do not see
 * each other's writes; dynamic and static shared memory are not bounds-checked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda/kcache.h"
#include "cuda/sim/sim_internal.h"

extern char **environ;

/* the runtime's source and header, embedded for the checking build */
__asm__(".section .rodata\n"
        ".balign 16\n"
        "sim_src_runtime:\n"
        ".incbin \"cuda/sim/sim_runtime.c\"\n"
        ".byte 0\n"
        ".balign 16\n"
        "sim_src_runtime_h:\n"
        ".incbin \"cuda/sim/sim_runtime.h\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char sim_src_runtime[] __asm__("sim_src_runtime");
extern const char sim_src_runtime_h[] __asm__("sim_src_runtime_h");

const char sim_check_main[] =
    "\n#line 1 \"kiln-check-main\"\n"
    "#include <unistd.h>\n"
    "extern \"C\" void __asan_on_error(void) {\n"
    "    sim_thread *t = kiln_sim_cur;\n"
    "    if (!t) return;\n"
    "    char b[200];\n"
    "    int n = snprintf(b, sizeof b, \"\\nKILN-SIM-THREAD thread (%u,%u,%u) of block (%u,%u,%u)\\n\",\n"
    "                     t->thread_idx.x, t->thread_idx.y, t->thread_idx.z, t->block_idx.x, t->block_idx.y, t->block_idx.z);\n"
    "    if (n > 0 && write(2, b, (size_t)n) < 0) {}\n"
    "}\n"
    "static int kiln_io(int fd, void *p, size_t n, int wr) {\n"
    "    char *c = (char *)p;\n"
    "    while (n) {\n"
    "        ssize_t k = wr ? write(fd, c, n) : read(fd, c, n);\n"
    "        if (k <= 0) return -1;\n"
    "        c += k; n -= (size_t)k;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "int main(void) {\n"
    "    unsigned h[8]; unsigned long long shared;\n"
    "    if (kiln_io(3, h, sizeof h, 0) || kiln_io(3, &shared, 8, 0)) return 2;\n"
    "    unsigned np = h[6];\n"
    "    void **args = (void **)calloc(np + 1, sizeof(void *)), **ptrs = (void **)calloc(np + 1, sizeof(void *));\n"
    "    unsigned long long *sizes = (unsigned long long *)calloc(np + 1, 8);\n"
    "    unsigned char *isp = (unsigned char *)calloc(np + 1, 1);\n"
    "    if (!args || !ptrs || !sizes || !isp) return 2;\n"
    "    for (unsigned i = 0; i < np; i++) {\n"
    "        if (kiln_io(3, &isp[i], 1, 0) || kiln_io(3, &sizes[i], 8, 0)) return 2;\n"
    "        void *buf = malloc(sizes[i] ? sizes[i] : 1);\n"
    "        if (!buf || kiln_io(3, buf, sizes[i], 0)) return 2;\n"
    "        if (isp[i]) { ptrs[i] = buf; args[i] = &ptrs[i]; } else args[i] = buf;\n"
    "    }\n"
    "    char err[512];\n"
    "    if (sim_launch(kiln_sim_entry, args, h, h + 3, (size_t)shared, (int)h[7], err, sizeof err) < 0) {\n"
    "        fprintf(stderr, \"\\nKILN-SIM-ERROR %s\\n\", err);\n"
    "        return 3;\n"
    "    }\n"
    "    for (unsigned i = 0; i < np; i++)\n"
    "        if (isp[i] && kiln_io(4, ptrs[i], sizes[i], 1)) return 2;\n"
    "    return 0;\n"
    "}\n";

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int memfd_with(const void *bytes, size_t len) {
    int fd = memfd_create("kiln-sim-check", 0); /* no CLOEXEC: children exec it */
    if (fd < 0) return -1;
    if (write_all(fd, bytes, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int sim_check_build(const char *cxx, const char *full, const char *kname, const char *key, int *exe_fd,
                    int *cache, char *cache_path, size_t cap, eng_error *err) {
    void *bytes;
    size_t len;
    *cache = 0;
    cache_path[0] = '\0';
    if (kcache_get(key, "chk", &bytes, &len)) {
        *exe_fd = memfd_with(bytes, len);
        free(bytes);
        if (*exe_fd >= 0) {
            *cache = 2;
            kcache_path(key, "chk", cache_path, cap);
            return 0;
        }
    }
    const char *tmp = getenv("TMPDIR");
    char dir[512], kp[600], rp[600], exe[600], errp[600];
    snprintf(dir, sizeof dir, "%s/kiln-simchk-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) return eng_fail(err, ERR_IO, "simulator: cannot make a temporary folder: %s", strerror(errno));
    snprintf(kp, sizeof kp, "%s/kernel.cc", dir);
    snprintf(rp, sizeof rp, "%s/sim_runtime.c", dir);
    snprintf(exe, sizeof exe, "%s/check", dir);
    snprintf(errp, sizeof errp, "%s/compiler.txt", dir);
    int rc = -1;
    FILE *f = fopen(kp, "w"), *g = fopen(rp, "w");
    int ok = f && g && fputs(full, f) >= 0;
    if (ok) { /* the runtime with its header inline */
        const char *inc = strstr(sim_src_runtime, "#include \"cuda/sim/sim_runtime.h\"");
        ok = inc && fwrite(sim_src_runtime, 1, (size_t)(inc - sim_src_runtime), g) == (size_t)(inc - sim_src_runtime) &&
             fputs(sim_src_runtime_h, g) >= 0 && fputs(strchr(inc, '\n'), g) >= 0;
    }
    if (f && fclose(f) != 0) ok = 0;
    if (g && fclose(g) != 0) ok = 0;
    if (!ok) {
        eng_fail(err, ERR_IO, "simulator: cannot write the checking build's sources in %s", dir);
        goto done;
    }
    char *argv[] = {(char *)cxx, "-g", "-O1", "-fsanitize=address", "-fno-omit-frame-pointer", "-fopenmp", "-w",
                    "-fdiagnostics-color=never", "-fno-diagnostics-show-caret", "-fmax-errors=8", "-x", "c",
                    rp, "-x", "c++", "-std=c++17", kp, "-o", exe, NULL};
    int st = sim_run_compiler(argv, errp);
    if (st != 0) {
        char *out = sim_read_file(errp, NULL);
        if (st < 0) sim_compiler_failed(st, cxx, err);
        else sim_compile_error(out ? out : "", dir, kname, err);
        free(out);
        goto done;
    }
    bytes = sim_read_file(exe, &len);
    if (!bytes) {
        eng_fail(err, ERR_IO, "simulator: cannot read the checking build %s", exe);
        goto done;
    }
    if (kcache_put(key, "chk", bytes, len, NULL) == 0) kcache_path(key, "chk", cache_path, cap);
    *exe_fd = memfd_with(bytes, len);
    free(bytes);
    if (*exe_fd < 0) {
        eng_fail(err, ERR_IO, "simulator: cannot keep the checking build: %s", strerror(errno));
        goto done;
    }
    rc = 0;
done:
    unlink(kp);
    unlink(rp);
    unlink(exe);
    unlink(errp);
    rmdir(dir);
    return rc;
}

/* ---- a launch --------------------------------------------------------------------------- */

static char *read_fd(int fd) {
    off_t n = lseek(fd, 0, SEEK_END);
    if (n < 0 || lseek(fd, 0, SEEK_SET) < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    size_t got = 0;
    while (got < (size_t)n) {
        ssize_t k = read(fd, s + got, (size_t)n - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    s[got] = '\0';
    return s;
}

/* the ASan report as one line: "out-of-bounds write of 4 bytes at cell[3]:5 (thread ...)" */
static void asan_message(const char *rep, const char *kname, eng_error *err) {
    const char *e = strstr(rep, "ERROR: AddressSanitizer: ");
    char kind[80] = "memory error", access[80] = "", where[160] = "", thread[120] = "";
    if (e) {
        sscanf(e + 25, "%79[^ \n]", kind);
        if (strcmp(kind, "heap-buffer-overflow") == 0 || strcmp(kind, "global-buffer-overflow") == 0 ||
            strcmp(kind, "stack-buffer-overflow") == 0)
            snprintf(kind, sizeof kind, "out-of-bounds");
        else if (strcmp(kind, "SEGV") == 0)
            snprintf(kind, sizeof kind, "invalid address (SEGV)");
        const char *rw = strstr(e, "\nREAD of size ");
        const char *wr = strstr(e, "\nWRITE of size ");
        unsigned sz = 0;
        if (wr && (!rw || wr < rw) && sscanf(wr, "\nWRITE of size %u", &sz) == 1)
            snprintf(access, sizeof access, " write of %u bytes", sz);
        else if (rw && sscanf(rw, "\nREAD of size %u", &sz) == 1)
            snprintf(access, sizeof access, " read of %u bytes", sz);
        /* the first stack frame in the user's source: "    #0 0x.. in k(float*, int) cell[3]:5:9"
         * (the location is the line's last word; frames in the emulation header, the
         * runtime or the sanitizer are skipped) */
        for (const char *ln = e; ln && *ln; ln = strchr(ln, '\n'), ln = ln ? ln + 1 : NULL) {
            const char *q = ln;
            while (*q == ' ')
                q++;
            if (*q != '#' || q[1] < '0' || q[1] > '9')
                continue;
            size_t n = strcspn(q, "\n");
            const char *lastsp = NULL;
            for (const char *r = q; r < q + n; r++)
                if (*r == ' ')
                    lastsp = r;
            if (!lastsp)
                continue;
            char loc[120];
            snprintf(loc, sizeof loc, "%.*s", (int)(q + n - lastsp - 1 < 110 ? q + n - lastsp - 1 : 110), lastsp + 1);
            if (loc[0] == '(' || loc[0] == '<' || strstr(loc, "kiln_sim") || strstr(loc, "sim_runtime") ||
                strstr(loc, "libasan") || strstr(loc, "sanitizer") || !strchr(loc, ':'))
                continue;
            /* drop a trailing :column: keep "NAME:LINE" */
            char *c1 = strrchr(loc, ':');
            char *c0 = NULL;
            for (char *r = loc; r < c1; r++)
                if (*r == ':')
                    c0 = r;
            if (c0 && c1 > c0) {
                *c1 = '\0';
                c1 = c0;
            }
            /* ASan writes a relative file name (the cell's) after the working folder */
            char cwd[512];
            const char *shown = loc;
            size_t cl = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
            if (cl && strncmp(loc, cwd, cl) == 0 && loc[cl] == '/')
                shown = loc + cl + 1;
            snprintf(where, sizeof where, " at %s", shown);
            if (err)
                err->line = atoi(c1 + 1);
            break;
        }
    }
    const char *t = strstr(rep, "KILN-SIM-THREAD ");
    if (t) {
        size_t n = strcspn(t + 16, "\n");
        snprintf(thread, sizeof thread, " (%.*s)", (int)(n < 100 ? n : 100), t + 16);
    }
    int line = err ? err->line : 0;
    eng_fail(err, ERR_RUNTIME, "%s%s%s in kernel '%s'%s", kind, access, where, kname, thread);
    if (err) err->line = line;
}

/* fd moved to a number >= 10 (closing the original); -1 stays -1 */
static int high_fd(int fd) {
    if (fd < 0 || fd >= 10) return fd;
    int h = fcntl(fd, F_DUPFD, 10);
    close(fd);
    return h;
}

int sim_check_launch(int exe_fd, const char *kname, const sim_check_params *p, int needs_fibers,
                     const unsigned grid[3], const unsigned block[3], size_t shared, void **args,
                     const size_t *arg_bytes, eng_error *err) {
    if (!arg_bytes)
        return eng_fail(err, ERR_RUNTIME, "kernel '%s': a checking build needs each argument's size (launch_sized)",
                        kname);
    /* every fd the child gets is numbered 10 or more, so that the dup2s onto 2, 3 and 4
     * below cannot overwrite one of them (the executable's memfd is often fd 3) */
    int in = high_fd(memfd_create("kiln-sim-in", 0)), out = high_fd(memfd_create("kiln-sim-out", 0));
    int errfd = high_fd(memfd_create("kiln-sim-err", 0)), xfd = high_fd(dup(exe_fd));
    char **env = NULL;
    int rc = -1;
    if (in < 0 || out < 0 || errfd < 0 || xfd < 0) {
        eng_fail(err, ERR_IO, "kernel '%s': %s", kname, strerror(errno));
        goto done;
    }
    unsigned h[8] = {grid[0], grid[1], grid[2], block[0], block[1], block[2], (unsigned)p->n, (unsigned)needs_fibers};
    unsigned long long sh = shared;
    int ok = write_all(in, h, sizeof h) == 0 && write_all(in, &sh, 8) == 0;
    for (int i = 0; ok && i < p->n; i++) {
        unsigned char isp = p->is_ptr[i];
        unsigned long long n = isp ? arg_bytes[i] : p->size[i];
        const void *src = isp ? *(void **)args[i] : args[i];
        ok = write_all(in, &isp, 1) == 0 && write_all(in, &n, 8) == 0 && (n == 0 || write_all(in, src, n) == 0);
    }
    if (!ok || lseek(in, 0, SEEK_SET) < 0) {
        eng_fail(err, ERR_IO, "kernel '%s': cannot pass the arguments to the checking process", kname);
        goto done;
    }
    size_t nenv = 0;
    while (environ[nenv]) nenv++;
    env = calloc(nenv + 2, sizeof *env);
    if (!env) {
        eng_fail(err, ERR_MEMORY, "out of memory");
        goto done;
    }
    size_t k = 0;
    env[k++] = "ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:exitcode=99:abort_on_error=0:color=never:"
               "detect_stack_use_after_return=0:allocator_may_return_null=1";
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0) env[k++] = environ[i];
    char exe[64];
    snprintf(exe, sizeof exe, "/proc/self/fd/%d", xfd);
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        eng_fail(err, ERR_MEMORY, "out of memory");
        goto done;
    }
    posix_spawn_file_actions_adddup2(&fa, in, 3);
    posix_spawn_file_actions_adddup2(&fa, out, 4);
    posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    char *argv[] = {"kiln-sim-check", NULL};
    pid_t pid;
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    int sp = posix_spawn(&pid, exe, &fa, &at, argv, env);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (sp != 0) {
        eng_fail(err, ERR_RUNTIME, "kernel '%s': cannot start the checking process: %s", kname, strerror(sp));
        goto done;
    }
    int st = 0;
    const char *tenv = getenv("KILN_SIM_TIMEOUT");
    int w = sim_wait_child(pid, &st, tenv ? atof(tenv) : 0);
    if (w == SIM_WAIT_INTERRUPTED) {
        eng_fail(err, ERR_INTERRUPT, "interrupted (kernel '%s' was stopped)", kname);
        goto done;
    }
    if (w == SIM_WAIT_TIMEOUT) {
        eng_fail(err, ERR_CUDA, "kernel '%s' ran past KILN_SIM_TIMEOUT=%g s and was stopped", kname, atof(tenv));
        goto done;
    }
    if (w < 0) {
        eng_fail(err, ERR_RUNTIME, "kernel '%s': lost the checking process", kname);
        goto done;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        if (lseek(out, 0, SEEK_SET) < 0) goto readfail;
        for (int i = 0; i < p->n; i++) {
            if (!p->is_ptr[i]) continue;
            char *dst = *(void **)args[i];
            size_t n = arg_bytes[i], got = 0;
            char tmp[65536];
            while (got < n) { /* const arguments are read and dropped */
                size_t want = n - got < sizeof tmp ? n - got : sizeof tmp;
                ssize_t r = read(out, p->is_const[i] ? tmp : dst + got, want);
                if (r <= 0) goto readfail;
                got += (size_t)r;
            }
        }
        rc = 0;
        goto done;
    readfail:
        eng_fail(err, ERR_RUNTIME, "kernel '%s': the checking process did not give the buffers back", kname);
        goto done;
    }
    char *rep = read_fd(errfd);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 99) {
        asan_message(rep ? rep : "", kname, err);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 3 && rep && strstr(rep, "KILN-SIM-ERROR ")) {
        const char *m = strstr(rep, "KILN-SIM-ERROR ") + 15;
        eng_fail(err, ERR_RUNTIME, "kernel '%s': %.*s", kname, (int)strcspn(m, "\n"), m);
    } else {
        const char *tail = rep ? rep + (strlen(rep) > 300 ? strlen(rep) - 300 : 0) : "";
        eng_fail(err, ERR_RUNTIME, "kernel '%s': the checking process %s %d: %s", kname,
                 WIFSIGNALED(st) ? "died of signal" : "exited with", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
                 tail);
        for (char *c = err ? err->msg : NULL; c && *c; c++)
            if (*c == '\n') *c = ' ';
    }
    free(rep);
done:
    free(env);
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    if (errfd >= 0) close(errfd);
    if (xfd >= 0) close(xfd);
    return rc;
}
