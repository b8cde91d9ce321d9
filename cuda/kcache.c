/* kcache.c — the disk cache of compiled kernels (see kcache.h for the contract). */
#include "cuda/kcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char kcache_magic[8] = {'K', 'I', 'L', 'N', 'K', 'C', '0', '1'};
#define KCACHE_HEADER 16  /* magic + u64 length */
#define KCACHE_TRAILER 8  /* u64 checksum */
#define KCACHE_MAX_ENTRY ((size_t)1 << 31)

/* ---- hashing (two murmur3-style 64-bit lanes) -------------------------------------- */

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

void kcache_hash_init(kcache_hash *h) {
    h->h1 = 0x6b696c6e2d6b6331ULL; /* "kiln-kc1" */
    h->h2 = 0x9e3779b97f4a7c15ULL;
}

static void kcache_mix(kcache_hash *h, uint64_t k1, uint64_t k2) {
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h->h1 ^= k1;
    h->h1 = rotl64(h->h1, 27); h->h1 += h->h2; h->h1 = h->h1 * 5 + 0x52dce729;
    k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h->h2 ^= k2;
    h->h2 = rotl64(h->h2, 31); h->h2 += h->h1; h->h2 = h->h2 * 5 + 0x38495ab5;
}

void kcache_hash_add(kcache_hash *h, const void *data, size_t len) {
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
        uint64_t k1, k2;
        memcpy(&k1, p + i, 8);
        memcpy(&k2, p + i + 8, 8);
        kcache_mix(h, k1, k2);
    }
    unsigned char tail[16] = {0};
    memcpy(tail, p + i, len - i);
    uint64_t k1, k2;
    memcpy(&k1, tail, 8);
    memcpy(&k2, tail + 8, 8);
    kcache_mix(h, k1 ^ (uint64_t)len, k2 ^ ((uint64_t)len << 1));
    h->h1 = fmix64(h->h1 + h->h2);
    h->h2 = fmix64(h->h2 + h->h1);
}

void kcache_hash_str(kcache_hash *h, const char *s) {
    if (!s) s = "";
    kcache_hash_add(h, s, strlen(s));
}

void kcache_hash_key(const kcache_hash *h, char key[KCACHE_KEY_LEN + 1]) {
    snprintf(key, KCACHE_KEY_LEN + 1, "%016llx%016llx", (unsigned long long)h->h1,
             (unsigned long long)h->h2);
}

static uint64_t kcache_checksum(const void *data, size_t len) {
    kcache_hash h;
    kcache_hash_init(&h);
    kcache_hash_add(&h, data, len);
    return h.h1 ^ rotl64(h.h2, 17);
}

/* ---- paths --------------------------------------------------------------------------- */

int kcache_dir(char *out, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    int n;
    if (xdg && xdg[0] == '/') {
        n = snprintf(out, cap, "%s/kiln", xdg);
    } else {
        const char *home = getenv("HOME");
        if (!home || !home[0]) return -1;
        n = snprintf(out, cap, "%s/.cache/kiln", home);
    }
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int kcache_path(const char *key, const char *ext, char *out, size_t cap) {
    char dir[400];
    if (kcache_dir(dir, sizeof dir) < 0) return -1;
    int n = snprintf(out, cap, "%s/%s.%s", dir, key, ext);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* mkdir -p for the cache folder, 0700 */
static int kcache_mkdirs(const char *dir) {
    char tmp[512];
    size_t n = strlen(dir);
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST) return -1;
            tmp[i] = c;
        }
    }
    return 0;
}

/* ---- get / put ----------------------------------------------------------------------- */

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int kcache_get(const char *key, const char *ext, void **bytes, size_t *len) {
    char path[512];
    *bytes = NULL;
    *len = 0;
    if (kcache_path(key, ext, path, sizeof path) < 0) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char head[KCACHE_HEADER], tail[KCACHE_TRAILER];
    unsigned char *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) < 0) goto bad;
    if (fread(head, 1, KCACHE_HEADER, f) != KCACHE_HEADER) goto bad;
    if (memcmp(head, kcache_magic, 8) != 0) goto bad;
    uint64_t n = get_u64(head + 8);
    if (n > KCACHE_MAX_ENTRY || (uint64_t)st.st_size != n + KCACHE_HEADER + KCACHE_TRAILER) goto bad;
    buf = malloc(n ? n : 1);
    if (!buf) { fclose(f); return 0; } /* out of memory: a miss, keep the entry */
    if (fread(buf, 1, n, f) != n || fread(tail, 1, KCACHE_TRAILER, f) != KCACHE_TRAILER) goto bad;
    if (get_u64(tail) != kcache_checksum(buf, n)) goto bad;
    fclose(f);
    *bytes = buf;
    *len = n;
    return 1;
bad:
    free(buf);
    fclose(f);
    unlink(path);
    return 0;
}

int kcache_put(const char *key, const char *ext, const void *bytes, size_t len, eng_error *err) {
    char dir[400], path[512], tmp[560];
    if (kcache_dir(dir, sizeof dir) < 0) return eng_fail(err, ERR_IO, "kernel cache: no cache folder (set XDG_CACHE_HOME or HOME)");
    if (kcache_mkdirs(dir) < 0) return eng_fail(err, ERR_IO, "kernel cache: cannot create %s: %s", dir, strerror(errno));
    if (kcache_path(key, ext, path, sizeof path) < 0) return eng_fail(err, ERR_IO, "kernel cache: path too long");
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return eng_fail(err, ERR_IO, "kernel cache: cannot write in %s: %s", dir, strerror(errno));
    unsigned char head[KCACHE_HEADER], tail[KCACHE_TRAILER];
    memcpy(head, kcache_magic, 8);
    put_u64(head + 8, (uint64_t)len);
    put_u64(tail, kcache_checksum(bytes, len));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        return eng_fail(err, ERR_IO, "kernel cache: %s", strerror(errno));
    }
    int ok = fwrite(head, 1, sizeof head, f) == sizeof head && fwrite(bytes, 1, len, f) == len &&
             fwrite(tail, 1, sizeof tail, f) == sizeof tail;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return eng_fail(err, ERR_IO, "kernel cache: cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

void kcache_remove(const char *key, const char *ext) {
    char path[512];
    if (kcache_path(key, ext, path, sizeof path) == 0) unlink(path);
}
