/* kcache.h — the disk cache of compiled kernels, shared by the CUDA simulator (cuda/sim)
 * and the NVRTC driver (cuda/nvrtc.c). Always built (CPU-only builds too).
 *
 * Key: KCACHE_KEY_LEN hex characters, a 128-bit hash of everything that decides the
 * compiled bytes: the translation unit, the compile options, the target (GPU
 * architecture, or the host compiler's identity) and the compiler's version string.
 * Build it with kcache_hash_init / kcache_hash_add / kcache_hash_str / kcache_hash_key;
 * each add is hashed with its length, so ("ab","c") and ("a","bc") differ.
 *
 * Entries live in kcache_dir(): $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln (created
 * 0700 on the first put), one file per entry named <key>.<ext> (ext: "so", "cubin",
 * "ptx"...). A file holds an 8-byte magic "KILNKC01", the payload length (u64 LE), the
 * payload and a 64-bit checksum of the payload. kcache_put writes a temporary file in
 * the same folder and renames it over the entry, so a reader sees a whole entry or
 * none. kcache_get verifies magic, length and checksum: a truncated or damaged entry is
 * a miss and is removed, so the caller rebuilds and puts a fresh one. If the bytes pass
 * the checksum but the loader still refuses them (dlopen, cuModuleLoadData), the caller
 * calls kcache_remove and rebuilds.
 *
 * The cache is best-effort: no function here fails a compile. kcache_get returns 0 on
 * any trouble; kcache_put returns -1 (err filled if non-NULL) and the caller goes on
 * with what it compiled. Thread-safe (no shared state); several processes may share a
 * folder (atomic rename; the last writer wins with identical bytes).
 */
#ifndef KILN_KCACHE_H
#define KILN_KCACHE_H

#include <stddef.h>
#include <stdint.h>
#include "engine/base/error.h"

#define KCACHE_KEY_LEN 32

typedef struct kcache_hash {
    uint64_t h1, h2; /* two 64-bit lanes of the running hash */
} kcache_hash;

void kcache_hash_init(kcache_hash *h);
void kcache_hash_add(kcache_hash *h, const void *data, size_t len);
void kcache_hash_str(kcache_hash *h, const char *s); /* NULL adds as "" */
void kcache_hash_key(const kcache_hash *h, char key[KCACHE_KEY_LEN + 1]);

/* The cache folder into out (no trailing slash); -1 if neither XDG_CACHE_HOME nor HOME
 * is set or the path does not fit (the cache is then off). Does not create it. */
int kcache_dir(char *out, size_t cap);

/* The entry's path, <dir>/<key>.<ext>; -1 as kcache_dir. */
int kcache_path(const char *key, const char *ext, char *out, size_t cap);

/* A hit: 1 with *bytes (malloc'ed, the caller frees) and *len. A miss, a damaged entry
 * (removed) or any error: 0. */
int kcache_get(const char *key, const char *ext, void **bytes, size_t *len);

/* Stores len bytes under key.ext atomically; creates the folder. 0, or -1 with err
 * (kind ERR_IO) filled when err is non-NULL. */
int kcache_put(const char *key, const char *ext, const void *bytes, size_t len, eng_error *err);

/* Removes an entry the loader refused (no error if absent). */
void kcache_remove(const char *key, const char *ext);

#endif
