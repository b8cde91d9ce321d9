/* jp_auth.c — HMAC-SHA256 signing and verification, replay history (see jp_auth.h).
 *
 * The replay history keeps two generations of open-addressed hash sets of digests.
 * New digests go into the current generation; when it is half full it becomes the old
 * generation and the previous old one is dropped. A digest is "seen" when either
 * generation holds it, so between history_size/2 and history_size of the latest
 * signatures are always remembered, in bounded memory and O(1) time.
 */
#include "protocol/jp_auth.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define DIGEST_LEN crypto_auth_hmacsha256_BYTES /* 32 */

/* One generation of remembered digests. */
typedef struct digest_set {
    unsigned char (*slots)[DIGEST_LEN]; /* nslots digests; all-zero means empty */
    size_t nslots;                      /* a power of two */
    size_t count;                       /* digests stored */
} digest_set;

struct jp_auth {
    unsigned char *key;   /* copy of the key (NULL when keylen is 0) */
    size_t keylen;        /* key length in bytes */
    pthread_mutex_t lock; /* guards gens and cur */
    digest_set gens[2];   /* the two generations */
    int cur;              /* index of the current generation in gens */
};

static int set_init(digest_set *s, size_t nslots)
{
    s->slots = calloc(nslots, DIGEST_LEN);
    s->nslots = nslots;
    s->count = 0;
    return s->slots ? 0 : -1;
}

static size_t set_hash(const unsigned char *d)
{
    uint64_t h; /* an HMAC digest is uniformly distributed: its first bytes will do */
    memcpy(&h, d, sizeof h);
    return (size_t)h;
}

static int is_zero(const unsigned char *d)
{
    for (size_t i = 0; i < DIGEST_LEN; i++)
        if (d[i])
            return 0;
    return 1;
}

/* Returns 1 when s holds d. */
static int set_has(const digest_set *s, const unsigned char *d)
{
    size_t mask = s->nslots - 1;
    for (size_t i = set_hash(d) & mask;; i = (i + 1) & mask) {
        if (is_zero(s->slots[i]))
            return 0;
        if (memcmp(s->slots[i], d, DIGEST_LEN) == 0)
            return 1;
    }
}

static void set_add(digest_set *s, const unsigned char *d)
{
    size_t mask = s->nslots - 1;
    size_t i = set_hash(d) & mask;
    while (!is_zero(s->slots[i]))
        i = (i + 1) & mask;
    memcpy(s->slots[i], d, DIGEST_LEN);
    s->count++;
}

jp_auth *jp_auth_new(const void *key, size_t keylen, size_t history_size)
{
    jp_auth *a = calloc(1, sizeof *a);
    size_t nslots = 16;
    if (!a)
        goto err;
    if (history_size == 0)
        history_size = 65536;
    /* each generation holds history_size/2 digests at most half its slots */
    while (nslots < history_size)
        nslots <<= 1;
    if (keylen) {
        a->key = malloc(keylen);
        if (!a->key)
            goto err;
        memcpy(a->key, key, keylen);
        a->keylen = keylen;
    }
    if (set_init(&a->gens[0], nslots) || set_init(&a->gens[1], nslots))
        goto err;
    if (pthread_mutex_init(&a->lock, NULL))
        goto err;
    return a;
err:
    if (a) {
        free(a->gens[0].slots);
        free(a->gens[1].slots);
        free(a->key);
        free(a);
    }
    return NULL;
}

void jp_auth_free(jp_auth *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a->gens[0].slots);
    free(a->gens[1].slots);
    if (a->key)
        sodium_memzero(a->key, a->keylen);
    free(a->key);
    free(a);
}

int jp_auth_enabled(const jp_auth *a)
{
    return a && a->keylen > 0;
}

static void digest(const jp_auth *a, const jp_part parts[4], unsigned char *out)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, a->key, a->keylen);
    for (int i = 0; i < 4; i++)
        crypto_auth_hmacsha256_update(&st, parts[i].data, parts[i].len);
    crypto_auth_hmacsha256_final(&st, out);
}

void jp_auth_sign(const jp_auth *a, const jp_part parts[4], char *hex)
{
    unsigned char d[DIGEST_LEN];
    if (!jp_auth_enabled(a)) {
        hex[0] = '\0';
        return;
    }
    digest(a, parts, d);
    sodium_bin2hex(hex, JP_SIG_HEX_LEN + 1, d, sizeof d);
}

jp_auth_result jp_auth_verify(jp_auth *a, const char *sig, size_t siglen,
                              const jp_part parts[4])
{
    unsigned char want[DIGEST_LEN], got[DIGEST_LEN];
    size_t gotlen = 0;
    jp_auth_result res = JP_AUTH_OK;
    if (!jp_auth_enabled(a))
        return JP_AUTH_OK;
    if (siglen != JP_SIG_HEX_LEN)
        return JP_AUTH_BAD_LENGTH;
    if (sodium_hex2bin(got, sizeof got, sig, siglen, NULL, &gotlen, NULL) != 0 ||
        gotlen != DIGEST_LEN)
        return JP_AUTH_MISMATCH;
    digest(a, parts, want);
    if (sodium_memcmp(want, got, DIGEST_LEN) != 0)
        return JP_AUTH_MISMATCH;
    if (is_zero(got))
        return JP_AUTH_OK; /* 2^-256: cannot be stored in the set; accept */
    pthread_mutex_lock(&a->lock);
    if (set_has(&a->gens[0], got) || set_has(&a->gens[1], got)) {
        res = JP_AUTH_REPLAY;
    } else {
        digest_set *cur = &a->gens[a->cur];
        if (cur->count >= cur->nslots / 2) {
            /* retire the current generation; reuse the oldest one's memory */
            a->cur ^= 1;
            cur = &a->gens[a->cur];
            memset(cur->slots, 0, cur->nslots * DIGEST_LEN);
            cur->count = 0;
        }
        set_add(cur, got);
    }
    pthread_mutex_unlock(&a->lock);
    return res;
}
