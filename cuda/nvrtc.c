/* nvrtc.c — the NVRTC kernel driver (nvrtc.h): compile, cache, load, launch. */
#define _GNU_SOURCE /* memmem */
#include "cuda/nvrtc.h"
#include "cuda/cu_check.h"
#include "cuda/cu_device.h"
#include "cuda/kcache.h"

#include <ctype.h>
#include <dlfcn.h>
#include <nvrtc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_OPTS 24       /* options passed to nvrtcCompileProgram */
#define KEEP_UNUSED 32    /* loaded libraries kept after their last module is released */
#define DEFAULT_ARCH 90   /* sm_90 (H100, H200) where there is no device to ask */

/* A kernel loaded on the device: the in-memory cache's unit, shared by the modules of
 * the same key (refs), kept a while after the last one is released. */
struct eng_kmodule {
    char key[KCACHE_KEY_LEN + 1]; /* hash of TU, kernel name, options, arch, NVRTC version */
    char *src;                    /* the TU as handed to compile (exact match on a hit) */
    char *kname;                  /* the kernel's name as written */
    int refs;                     /* modules handed out and not yet released */
    cudaLibrary_t lib;            /* the loaded CUBIN (or PTX) */
    cudaKernel_t kernel;          /* the __global__ function in it */
    char *ptx;                    /* its PTX, for code() */
    int regs;                     /* registers per thread */
    size_t static_shared;         /* static __shared__ bytes */
    int max_threads;              /* max threads per block for this kernel */
    size_t dyn_max;               /* dynamic shared bytes allowed now (48 KiB - static) */
    struct eng_kmodule *next;     /* the cache's list, most recent first */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* the list and the stats */
static eng_kmodule *modules;                              /* every loaded library */
static cu_nvrtc_stats stats;

/* ---- NVRTC, loaded at first use ----------------------------------------------------
 * libnvrtc is dlopened, not linked: its static initialisers cost about 9 ms at every
 * process start, which a kernel that never compiles a CUDA kernel must not pay. The
 * functions below are called through pointers; the macros keep the call sites in
 * NVRTC's own names. The library is looked for beside libcudart (which is linked),
 * then by soname through the loader's usual path (the binary's RUNPATH included). */
#define NV_API(X)                                                                        \
    X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcGetNumSupportedArchs)                  \
    X(nvrtcGetSupportedArchs) X(nvrtcCreateProgram) X(nvrtcDestroyProgram)               \
    X(nvrtcAddNameExpression) X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize)           \
    X(nvrtcGetProgramLog) X(nvrtcGetLoweredName) X(nvrtcGetPTXSize) X(nvrtcGetPTX)       \
    X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN)
#define NV_PTR(f) static __typeof__(&f) p_##f;
NV_API(NV_PTR)
#undef NV_PTR

static pthread_once_t nv_once = PTHREAD_ONCE_INIT;
static int nv_ok;          /* every symbol resolved */
static char nv_why[400];   /* why not, when not */

static void nv_load_once(void)
{
    char why[300];
    void *lib = cu_dlopen("libnvrtc", why, sizeof why);
    if (!lib) {
        snprintf(nv_why, sizeof nv_why, "NVRTC is not available (%s)", why);
        return;
    }
#define NV_SYM(f)                                                                        \
    if (!(*(void **)&p_##f = dlsym(lib, #f))) {                                          \
        snprintf(nv_why, sizeof nv_why, "NVRTC is not usable: libnvrtc lacks %s", #f);   \
        return;                                                                          \
    }
    NV_API(NV_SYM)
#undef NV_SYM
    nv_ok = 1;
}

/* 0 once NVRTC is loaded; -1 with err (ERR_CUDA) where it cannot be. */
static int nv_load(eng_error *err)
{
    pthread_once(&nv_once, nv_load_once);
    return nv_ok ? 0 : eng_fail(err, ERR_CUDA, "%s", nv_why);
}

#define nvrtcVersion (*p_nvrtcVersion)
#define nvrtcGetErrorString (*p_nvrtcGetErrorString)
#define nvrtcGetNumSupportedArchs (*p_nvrtcGetNumSupportedArchs)
#define nvrtcGetSupportedArchs (*p_nvrtcGetSupportedArchs)
#define nvrtcCreateProgram (*p_nvrtcCreateProgram)
#define nvrtcDestroyProgram (*p_nvrtcDestroyProgram)
#define nvrtcAddNameExpression (*p_nvrtcAddNameExpression)
#define nvrtcCompileProgram (*p_nvrtcCompileProgram)
#define nvrtcGetProgramLogSize (*p_nvrtcGetProgramLogSize)
#define nvrtcGetProgramLog (*p_nvrtcGetProgramLog)
#define nvrtcGetLoweredName (*p_nvrtcGetLoweredName)
#define nvrtcGetPTXSize (*p_nvrtcGetPTXSize)
#define nvrtcGetPTX (*p_nvrtcGetPTX)
#define nvrtcGetCUBINSize (*p_nvrtcGetCUBINSize)
#define nvrtcGetCUBIN (*p_nvrtcGetCUBIN)

int cu_nvrtc_fail(nvrtcResult r, const char *what, const char *file, int line, eng_error *err)
{
    char fn[64];
    size_t k = strcspn(what, "( ");
    if (k >= sizeof fn)
        k = sizeof fn - 1;
    memcpy(fn, what, k);
    fn[k] = 0;
    const char *f = strstr(file, "cuda/");
    return eng_fail(err, ERR_CUDA, "%s failed: %s [%s:%d]", fn, nv_ok ? nvrtcGetErrorString(r) : "NVRTC not loaded",
                    f ? f : file, line);
}

/* ---- small helpers ---------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void count(unsigned long *field)
{
    pthread_mutex_lock(&lock);
    (*field)++;
    pthread_mutex_unlock(&lock);
}

void cu_nvrtc_get_stats(cu_nvrtc_stats *out)
{
    pthread_mutex_lock(&lock);
    *out = stats;
    pthread_mutex_unlock(&lock);
}

const char *cu_nvrtc_version(void)
{
    static char v[16];
    if (!v[0]) {
        int major = 0, minor = 0;
        if (nv_load(NULL) < 0 || nvrtcVersion(&major, &minor) != NVRTC_SUCCESS)
            major = minor = 0;
        snprintf(v, sizeof v, "%d.%d", major, minor);
    }
    return v;
}

/* NVRTC's supported architectures (nvrtcGetSupportedArchs), e.g. 75 80 ... 121. */
static int supported_archs(int *out, int cap)
{
    int n = 0;
    if (nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n <= 0 || n > cap)
        return 0;
    if (nvrtcGetSupportedArchs(out) != NVRTC_SUCCESS)
        return 0;
    return n;
}

/* The number of "sm_90", "sm_90a", "compute_90", "90"; -1 if none. *suffix gets "a"/"f"/"". */
static int parse_arch(const char *arch, char suffix[4])
{
    const char *p = arch;
    if (!strncmp(p, "sm_", 3))
        p += 3;
    else if (!strncmp(p, "compute_", 8))
        p += 8;
    if (!isdigit((unsigned char)*p))
        return -1;
    int v = 0;
    while (isdigit((unsigned char)*p) && v < 10000)
        v = v * 10 + (*p++ - '0');
    suffix[0] = 0;
    if ((*p == 'a' || *p == 'f') && !p[1]) {
        suffix[0] = *p;
        suffix[1] = 0;
    } else if (*p) {
        return -1;
    }
    return v;
}

/* The architecture to build for: out "sm_90" (CUBIN) or "compute_XX" (PTX only, when
 * NVRTC cannot target the device exactly), from arch or the device (default sm_90). */
static int choose_arch(const char *arch, int want_ptx_only, char out[24], eng_error *err)
{
    char dev[16] = "";
    if (!arch) {
        eng_error e = {0};
        if (cu_device_available() && cu_device_init(&e) == 0)
            snprintf(dev, sizeof dev, "%s", cu_device_props()->arch);
        else
            snprintf(dev, sizeof dev, "sm_%d", DEFAULT_ARCH);
        arch = dev;
    }
    char suffix[4];
    int v = parse_arch(arch, suffix);
    if (v < 0)
        return eng_fail(err, ERR_VALUE, "'%s' is not a GPU architecture (write sm_90, compute_90 or 90)",
                        arch);
    int sup[64], n = supported_archs(sup, 64);
    int exact = 0, below = 0;
    for (int i = 0; i < n; i++) {
        if (sup[i] == v)
            exact = 1;
        if (sup[i] <= v && sup[i] > below)
            below = sup[i];
    }
    if (n == 0)
        exact = 1; /* NVRTC would not list them: let it judge the option itself */
    if (exact) {
        snprintf(out, 24, "%s_%d%s", want_ptx_only ? "compute" : "sm", v, suffix);
        return 0;
    }
    if (!dev[0] || !below)
        return eng_fail(err, ERR_VALUE, "NVRTC %s cannot target %s%s (it supports sm_%d to sm_%d)",
                        cu_nvrtc_version(), dev[0] ? "the device's " : "", arch, sup[0], sup[n - 1]);
    snprintf(out, 24, "compute_%d", below); /* newer GPU than NVRTC: PTX, JIT by the driver */
    return 0;
}

/* The toolkit's include folder (for cuda_fp16.h ...), "" if not found. */
static const char *toolkit_include(void)
{
    static char dir[512];
    static int done;
    if (done)
        return dir;
    done = 1;
    const char *cands[] = {getenv("CUDA_HOME"), getenv("CUDA_PATH"), "/usr/local/cuda"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        char probe[600];
        if (!cands[i] || !*cands[i])
            continue;
        snprintf(probe, sizeof probe, "%s/include/cuda_fp16.h", cands[i]);
        if (access(probe, R_OK) == 0) {
            snprintf(dir, sizeof dir, "-I%s/include", cands[i]);
            break;
        }
    }
    return dir;
}

/* The compile's options (pointers into static storage and arch_opt) and their count. */
static int build_options(const char **opts, char arch_opt[48], const char *arch)
{
    static char extra[512];
    static char *extra_words[MAX_OPTS];
    static int n_extra = -1;
    if (n_extra < 0) {
        n_extra = 0;
        const char *env = getenv("KILN_NVRTC_FLAGS");
        snprintf(extra, sizeof extra, "%s", env ? env : "");
        for (char *tok = strtok(extra, " \t"); tok && n_extra < MAX_OPTS - 8; tok = strtok(NULL, " \t"))
            extra_words[n_extra++] = tok;
    }
    int n = 0;
    snprintf(arch_opt, 48, "--gpu-architecture=%s", arch);
    opts[n++] = arch_opt;
    opts[n++] = "-std=c++17";
    opts[n++] = "-lineinfo";
    if (toolkit_include()[0])
        opts[n++] = toolkit_include();
    for (int i = 0; i < n_extra; i++)
        opts[n++] = extra_words[i];
    return n;
}

/* The TU NVRTC compiles: the headers the source needs, then the source (malloc'ed). */
static char *with_prelude(const char *src)
{
    const char *fp16 = strstr(src, "half") ? "#include <cuda_fp16.h>\n" : "";
    const char *bf16 = strstr(src, "bfloat16") ? "#include <cuda_bf16.h>\n" : "";
    size_t n = strlen(fp16) + strlen(bf16) + strlen(src) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", fp16, bf16, src);
    return s;
}

/* The cache key of (kind, TU, kernel, options, arch, NVRTC version). */
static void make_key(const char *kind, const char *tu, const char *kname, const char **opts,
                     int nopts, char key[KCACHE_KEY_LEN + 1])
{
    kcache_hash h;
    kcache_hash_init(&h);
    kcache_hash_str(&h, "kiln-nvrtc-1");
    kcache_hash_str(&h, kind);
    kcache_hash_str(&h, tu);
    kcache_hash_str(&h, kname);
    for (int i = 0; i < nopts; i++)
        kcache_hash_str(&h, opts[i]);
    kcache_hash_str(&h, cu_nvrtc_version());
    kcache_hash_key(&h, key);
}

/* ---- compile errors ---------------------------------------------------------------- */

/* NVRTC's log as the cell's error: its error lines ("cell[3](5): error: ..."), one per
 * line as the engine expects (it shows the first and lists them all), err->line from
 * the first one and err->col from the caret under its source. */
static int compile_error(const char *log, eng_error *err)
{
    char msg[sizeof err->msg] = "";
    size_t used = 0;
    int first_line = 0, first_col = 0, seen = 0;
    const char *p = log;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        int is_msg = 0;
        /* "NAME(LINE): error: ..." / "... catastrophic error: ..." / warnings skipped */
        const char *paren = memchr(p, '(', len);
        if (paren && (memmem(p, len, "): error", 8) || memmem(p, len, "): catastrophic error", 21)))
            is_msg = 1;
        if (is_msg) {
            if (!seen) {
                first_line = atoi(paren + 1);
                /* the source line and a caret line follow: col = caret - 2 (NVRTC's indent) */
                const char *l2 = eol ? strchr(eol + 1, '\n') : NULL;
                if (l2) {
                    const char *c = l2 + 1;
                    const char *ce = strchr(c, '\n');
                    size_t cl = ce ? (size_t)(ce - c) : strlen(c);
                    const char *caret = memchr(c, '^', cl);
                    if (caret && caret - c >= 2)
                        first_col = (int)(caret - c) - 1;
                }
            }
            if (used + 3 < sizeof msg) {
                int w = snprintf(msg + used, sizeof msg - used, "%s%.*s", seen ? "\n" : "", (int)len, p);
                used = w < 0 ? used : (used + (size_t)w >= sizeof msg ? sizeof msg - 1 : used + (size_t)w);
            }
            seen++;
        }
        p = eol ? eol + 1 : p + len;
    }
    if (!seen) /* no line we recognise: the log's first line */
        snprintf(msg, sizeof msg, "%.*s", (int)strcspn(log, "\n"), *log ? log : "NVRTC failed without a message");
    eng_fail(err, ERR_COMPILE, "%s", msg);
    if (err && err->kind == ERR_COMPILE && first_line > 0) {
        err->line = first_line;
        err->col = first_col;
    }
    return -1;
}

/* ---- compiling ----------------------------------------------------------------------- */

/* Compiles tu with opts; kname NULL for PTX only. On success fills out (lowered name,
 * PTX, CUBIN when the arch is sm_XX). */
static int nvrtc_compile(const char *tu, const char *kname, const char **opts, int nopts,
                         int want_cubin, cu_nvrtc_image *out, eng_error *err)
{
    nvrtcProgram prog = NULL;
    char *log = NULL;
    int rc = -1;
    NVRTC_CHECK_GOTO(nvrtcCreateProgram(&prog, tu, "kiln.cu", 0, NULL, NULL), err, done);
    if (kname)
        NVRTC_CHECK_GOTO(nvrtcAddNameExpression(prog, kname), err, done);
    nvrtcResult r = nvrtcCompileProgram(prog, nopts, opts);
    if (r != NVRTC_SUCCESS) {
        size_t n = 0;
        if (r == NVRTC_ERROR_COMPILATION && nvrtcGetProgramLogSize(prog, &n) == NVRTC_SUCCESS &&
            (log = malloc(n + 1)) && nvrtcGetProgramLog(prog, log) == NVRTC_SUCCESS) {
            log[n] = 0;
            count(&stats.failed);
            compile_error(log, err);
        } else if (r == NVRTC_ERROR_COMPILATION) {
            eng_fail(err, ERR_MEMORY, "out of memory reading NVRTC's log");
        } else {
            cu_nvrtc_fail(r, "nvrtcCompileProgram", __FILE__, __LINE__, err);
        }
        goto done;
    }
    count(&stats.compiles);
    if (kname) {
        const char *lowered = NULL;
        nvrtcResult lr = nvrtcGetLoweredName(prog, kname, &lowered);
        if (lr != NVRTC_SUCCESS || !lowered) {
            eng_fail(err, ERR_COMPILE, "no __global__ function '%s' in the compiled source", kname);
            goto done;
        }
        if (!(out->lowered = strdup(lowered))) {
            eng_fail(err, ERR_MEMORY, "out of memory");
            goto done;
        }
    }
    size_t n = 0;
    NVRTC_CHECK_GOTO(nvrtcGetPTXSize(prog, &n), err, done);
    if (!(out->ptx = malloc(n + 1))) {
        eng_fail(err, ERR_MEMORY, "out of memory for %zu bytes of PTX", n);
        goto done;
    }
    NVRTC_CHECK_GOTO(nvrtcGetPTX(prog, out->ptx), err, done);
    out->ptx[n] = 0;
    if (want_cubin) {
        NVRTC_CHECK_GOTO(nvrtcGetCUBINSize(prog, &n), err, done);
        if (n == 0) {
            eng_fail(err, ERR_CUDA, "NVRTC produced no CUBIN for %s", out->arch);
            goto done;
        }
        if (!(out->cubin = malloc(n))) {
            eng_fail(err, ERR_MEMORY, "out of memory for %zu bytes of CUBIN", n);
            goto done;
        }
        NVRTC_CHECK_GOTO(nvrtcGetCUBIN(prog, out->cubin), err, done);
        out->cubin_len = n;
    }
    rc = 0;
done:
    free(log);
    if (prog)
        nvrtcDestroyProgram(&prog);
    return rc;
}

void cu_nvrtc_image_free(cu_nvrtc_image *im)
{
    if (!im)
        return;
    free(im->lowered);
    free(im->ptx);
    free(im->cubin);
    memset(im, 0, sizeof *im);
}

/* The disk entry of an image: "KNV1", then u32 LE lengths of the lowered name, the PTX
 * and the CUBIN, then those bytes. kcache adds its own magic, length and checksum. */
static void put_u32(unsigned char *p, size_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static size_t get_u32(const unsigned char *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
}

static void disk_put_image(const char *key, const cu_nvrtc_image *im)
{
    size_t ln = strlen(im->lowered), pn = strlen(im->ptx), total = 16 + ln + pn + im->cubin_len;
    unsigned char *b = malloc(total);
    if (!b)
        return;
    memcpy(b, "KNV1", 4);
    put_u32(b + 4, ln);
    put_u32(b + 8, pn);
    put_u32(b + 12, im->cubin_len);
    memcpy(b + 16, im->lowered, ln);
    memcpy(b + 16 + ln, im->ptx, pn);
    if (im->cubin_len)
        memcpy(b + 16 + ln + pn, im->cubin, im->cubin_len);
    if (kcache_put(key, "nvrtc", b, total, NULL) == 0)
        count(&stats.disk_puts);
    free(b);
}

/* 1 with im filled from the disk cache, 0 on a miss (a malformed entry is removed). */
static int disk_get_image(const char *key, cu_nvrtc_image *im)
{
    void *bytes = NULL;
    size_t len = 0;
    if (!kcache_get(key, "nvrtc", &bytes, &len))
        return 0;
    const unsigned char *b = bytes;
    int ok = 0;
    if (len >= 16 && !memcmp(b, "KNV1", 4)) {
        size_t ln = get_u32(b + 4), pn = get_u32(b + 8), cn = get_u32(b + 12);
        if (ln > 0 && 16 + ln + pn + cn == len && (im->lowered = malloc(ln + 1)) &&
            (im->ptx = malloc(pn + 1)) && (!cn || (im->cubin = malloc(cn)))) {
            memcpy(im->lowered, b + 16, ln);
            im->lowered[ln] = 0;
            memcpy(im->ptx, b + 16 + ln, pn);
            im->ptx[pn] = 0;
            if (cn)
                memcpy(im->cubin, b + 16 + ln + pn, cn);
            im->cubin_len = cn;
            ok = 1;
        }
    }
    free(bytes);
    if (!ok) {
        cu_nvrtc_image_free(im);
        kcache_remove(key, "nvrtc");
        return 0;
    }
    count(&stats.disk_hits);
    return 1;
}

/* The build behind cu_nvrtc_build, with the key handed back for the memory cache. */
static int build(const char *src, const char *kname, const char *arch, cu_nvrtc_image *out,
                 eng_kinfo *info, char key[KCACHE_KEY_LEN + 1], eng_error *err)
{
    memset(out, 0, sizeof *out);
    if (nv_load(err) < 0 || choose_arch(arch, 0, out->arch, err) < 0)
        return -1;
    char *tu = with_prelude(src);
    if (!tu)
        return eng_fail(err, ERR_MEMORY, "out of memory");
    const char *opts[MAX_OPTS];
    char arch_opt[48];
    int nopts = build_options(opts, arch_opt, out->arch);
    make_key("image", tu, kname, opts, nopts, key);
    double t0 = now_ms();
    int rc = 0;
    if (disk_get_image(key, out)) {
        if (info) {
            info->cache = 2;
            info->compile_ms = 0;
            kcache_path(key, "nvrtc", info->cache_path, sizeof info->cache_path);
        }
    } else {
        char keep[24];
        memcpy(keep, out->arch, sizeof keep);
        rc = nvrtc_compile(tu, kname, opts, nopts, !strncmp(out->arch, "sm_", 3), out, err);
        if (rc == 0) {
            disk_put_image(key, out);
            if (info) {
                info->cache = 0;
                info->compile_ms = now_ms() - t0;
                if (kcache_path(key, "nvrtc", info->cache_path, sizeof info->cache_path) < 0)
                    info->cache_path[0] = 0;
            }
        } else {
            cu_nvrtc_image_free(out);
            memcpy(out->arch, keep, sizeof keep);
        }
    }
    free(tu);
    return rc;
}

int cu_nvrtc_build(const char *src, const char *kname, const char *arch, cu_nvrtc_image *out,
                   eng_kinfo *info, eng_error *err)
{
    char key[KCACHE_KEY_LEN + 1];
    return build(src, kname, arch, out, info, key, err);
}

char *cu_nvrtc_ptx_info(const char *src, const char *arch, eng_kinfo *info, eng_error *err)
{
    char a[24];
    if (nv_load(err) < 0 || choose_arch(arch, 1, a, err) < 0)
        return NULL;
    char *tu = with_prelude(src);
    if (!tu) {
        eng_fail(err, ERR_MEMORY, "out of memory");
        return NULL;
    }
    const char *opts[MAX_OPTS];
    char arch_opt[48], key[KCACHE_KEY_LEN + 1];
    int nopts = build_options(opts, arch_opt, a);
    make_key("ptx", tu, "", opts, nopts, key);
    double t0 = now_ms();
    void *bytes = NULL;
    size_t len = 0;
    char *ptx = NULL;
    if (kcache_get(key, "ptx", &bytes, &len)) {
        if ((ptx = malloc(len + 1))) {
            memcpy(ptx, bytes, len);
            ptx[len] = 0;
            count(&stats.disk_hits);
            if (info) {
                info->cache = 2;
                info->compile_ms = 0;
            }
        }
        free(bytes);
    }
    if (!ptx) {
        cu_nvrtc_image im = {0};
        snprintf(im.arch, sizeof im.arch, "%s", a);
        if (nvrtc_compile(tu, NULL, opts, nopts, 0, &im, err) == 0) {
            ptx = im.ptx;
            im.ptx = NULL;
            if (kcache_put(key, "ptx", ptx, strlen(ptx), NULL) == 0)
                count(&stats.disk_puts);
            if (info) {
                info->cache = 0;
                info->compile_ms = now_ms() - t0;
            }
        }
        cu_nvrtc_image_free(&im);
    }
    if (ptx && info) {
        info->regs = -1;
        info->static_shared = (size_t)-1;
        info->max_threads = 0;
        if (kcache_path(key, "ptx", info->cache_path, sizeof info->cache_path) < 0)
            info->cache_path[0] = 0;
    }
    free(tu);
    return ptx;
}

char *cu_nvrtc_ptx(const char *src, const char *arch, eng_error *err)
{
    return cu_nvrtc_ptx_info(src, arch, NULL, err);
}

/* ---- the driver ---------------------------------------------------------------------- */

/* Unloads a library (errors ignored: after a lost context they are expected). */
static void unload(eng_kmodule *m)
{
    if (m->lib && !cu_context_lost()) {
        if (cudaLibraryUnload(m->lib) != cudaSuccess)
            cudaGetLastError();
    }
    free(m->src);
    free(m->kname);
    free(m->ptx);
    free(m);
}

/* Loads im on the device and reads the kernel's attributes into a new module. */
static eng_kmodule *load(const cu_nvrtc_image *im, const char *src, const char *kname,
                         const char *key, eng_error *err)
{
    eng_kmodule *m = calloc(1, sizeof *m);
    if (!m || !(m->src = strdup(src)) || !(m->kname = strdup(kname)) || !(m->ptx = strdup(im->ptx))) {
        eng_fail(err, ERR_MEMORY, "out of memory");
        goto fail;
    }
    snprintf(m->key, sizeof m->key, "%s", key);
    /* a CUBIN for sm_XX; NUL-terminated PTX (JIT by the driver) for compute_XX */
    const void *code = im->cubin ? im->cubin : (const void *)im->ptx;
    CU_CHECK_GOTO(cudaLibraryLoadData(&m->lib, code, NULL, NULL, 0, NULL, NULL, 0), err, fail);
    CU_CHECK_GOTO(cudaLibraryGetKernel(&m->kernel, m->lib, im->lowered), err, fail);
    struct cudaFuncAttributes a;
    /* a cudaKernel_t is accepted as the function (cuda_runtime_api.h, cudaFuncGetAttributes) */
    CU_CHECK_GOTO(cudaFuncGetAttributes(&a, (const void *)m->kernel), err, fail);
    m->regs = a.numRegs;
    m->static_shared = a.sharedSizeBytes;
    m->max_threads = a.maxThreadsPerBlock;
    m->dyn_max = a.maxDynamicSharedSizeBytes > 0 ? (size_t)a.maxDynamicSharedSizeBytes : 0;
    return m;
fail:
    if (m)
        unload(m);
    return NULL;
}

static void fill_info(const eng_kmodule *m, eng_kinfo *info)
{
    if (!info)
        return;
    info->regs = m->regs;
    info->static_shared = m->static_shared;
    info->max_threads = m->max_threads;
}

/* Drops unreferenced libraries beyond KEEP_UNUSED, oldest first (lock held). */
static void trim_locked(void)
{
    int unused = 0;
    for (eng_kmodule **pp = &modules; *pp;) {
        eng_kmodule *m = *pp;
        if (m->refs == 0 && ++unused > KEEP_UNUSED) {
            *pp = m->next;
            unload(m);
            stats.loaded--;
            continue;
        }
        pp = &m->next;
    }
}

static eng_kmodule *nv_compile(const char *src, const char *kname, const eng_kparam *params,
                               int nparams, int check, eng_kinfo *info, eng_error *err)
{
    (void)params;
    (void)nparams;
    (void)check; /* a checking build is the simulator's (%sim check); NVRTC builds one way */
    double t0 = now_ms();
    eng_kinfo local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    info->regs = -1;
    if (cu_device_init(err) < 0)
        return NULL;

    /* the session's memory: the same source and kernel already loaded */
    pthread_mutex_lock(&lock);
    for (eng_kmodule **pp = &modules; *pp; pp = &(*pp)->next) {
        eng_kmodule *m = *pp;
        if (!strcmp(m->kname, kname) && !strcmp(m->src, src)) {
            m->refs++;
            stats.mem_hits++;
            *pp = m->next; /* to the front: most recent first */
            m->next = modules;
            modules = m;
            pthread_mutex_unlock(&lock);
            fill_info(m, info);
            if (info) {
                info->cache = 1;
                kcache_path(m->key, "nvrtc", info->cache_path, sizeof info->cache_path);
            }
            return m;
        }
    }
    pthread_mutex_unlock(&lock);

    cu_nvrtc_image im;
    char key[KCACHE_KEY_LEN + 1];
    if (build(src, kname, NULL, &im, info, key, err) < 0)
        return NULL;
    eng_kmodule *m = load(&im, src, kname, key, err);
    if (!m && info->cache == 2 && !cu_context_lost()) {
        /* the disk's bytes passed their checksum but the loader refused them: rebuild */
        if (err)
            memset(err, 0, sizeof *err);
        kcache_remove(key, "nvrtc");
        cu_nvrtc_image_free(&im);
        if (build(src, kname, NULL, &im, info, key, err) < 0)
            return NULL;
        m = load(&im, src, kname, key, err);
    }
    cu_nvrtc_image_free(&im);
    if (!m)
        return NULL;
    m->refs = 1;
    pthread_mutex_lock(&lock);
    m->next = modules;
    modules = m;
    stats.loaded++;
    trim_locked();
    pthread_mutex_unlock(&lock);
    fill_info(m, info);
    if (info && info->cache == 0)
        info->compile_ms = now_ms() - t0;
    return m;
}

static void nv_release(eng_kmodule *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&lock);
    if (m->refs > 0)
        m->refs--;
    trim_locked();
    pthread_mutex_unlock(&lock);
}

static void nv_limits(eng_klimits *out)
{
    eng_error e = {0};
    const cu_props *p = cu_device_init(&e) == 0 ? cu_device_props() : NULL;
    if (p) {
        for (int i = 0; i < 3; i++) {
            out->max_block[i] = (unsigned)p->max_block[i];
            out->max_grid[i] = (unsigned)p->max_grid[i];
        }
        out->max_threads = (unsigned)p->max_threads_per_block;
        out->max_shared = p->shared_per_block_optin;
        return;
    }
    /* no device: CUDA's limits for compute capability 9.0 */
    const unsigned blk[3] = {1024, 1024, 64}, grd[3] = {2147483647u, 65535, 65535};
    memcpy(out->max_block, blk, sizeof blk);
    memcpy(out->max_grid, grd, sizeof grd);
    out->max_threads = 1024;
    out->max_shared = 232448; /* 227 KiB opt-in */
}

static int nv_launch(eng_kmodule *m, const unsigned grid[3], const unsigned block[3], size_t shared,
                     void **args, eng_error *err)
{
    if (cu_device_init(err) < 0) /* a flag test after the first call; fails once lost */
        return -1;
    if (shared > m->dyn_max) {
        const cu_props *p = cu_device_props();
        if (shared + m->static_shared > p->shared_per_block_optin)
            return eng_fail(err, ERR_VALUE,
                            "%s asks for %zu bytes of dynamic shared memory; with its %zu static "
                            "bytes that is over the device's %zu per block",
                            m->kname, shared, m->static_shared, p->shared_per_block_optin);
        CU_CHECK(cudaFuncSetAttribute((const void *)m->kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)shared), err);
        m->dyn_max = shared;
    }
    /* the driver's entry point costs the host less per launch; cudaLaunchKernel where it
     * is missing or refuses, so that a failure is reported as the runtime's error */
    cu_launch_fn launch = cu_driver_launch();
    if (launch && launch((void *)m->kernel, grid[0], grid[1], grid[2], block[0], block[1], block[2],
                         (unsigned)shared, (void *)cu_stream(), args, NULL) == 0)
        return 0;
    dim3 g = {grid[0], grid[1], grid[2]}, b = {block[0], block[1], block[2]};
    CU_CHECK(cudaLaunchKernel((const void *)m->kernel, g, b, args, shared, cu_stream()), err);
    return 0;
}

static int nv_sync(eng_error *err)
{
    return cu_sync(err);
}

static char *nv_code(eng_kmodule *m, eng_error *err)
{
    char *s = m && m->ptx ? strdup(m->ptx) : NULL;
    if (!s)
        eng_fail(err, m && m->ptx ? ERR_MEMORY : ERR_VALUE, m && m->ptx ? "out of memory" : "no PTX kept");
    return s;
}

static char *nv_code_offline(const char *src, eng_error *err)
{
    return cu_nvrtc_ptx(src, NULL, err);
}

const eng_kdriver cuda_kdriver = {
    .name = "cuda",
    .compile = nv_compile,
    .release = nv_release,
    .limits = nv_limits,
    .launch = nv_launch,
    .sync = nv_sync,
    .code = nv_code,
    .code_offline = nv_code_offline,
};
