/* jp_auth.h — message signing (HMAC-SHA256) and replay protection.
 *
 * Jupyter signs the four JSON frames of a message (header, parent header, metadata,
 * content, in that order, exactly as sent) with HMAC-SHA256 keyed by the connection
 * file's `key`, and sends the lowercase hex digest. Keys may be of any length, so the
 * streaming libsodium API is used. A received signature is checked for its length
 * (64 hex digits) before a constant-time compare, and every accepted signature is
 * remembered in a bounded history so that a replayed message is refused, as
 * jupyter_client's Session does. An empty key means messages are neither signed nor
 * checked (a warning is printed on stderr when the key is loaded).
 *
 * Ownership and threads: a jp_auth owns a copy of the key and the replay history.
 * jp_auth_sign only reads the key and may be called from any thread; jp_auth_verify
 * updates the history under an internal mutex, so shell and control may share one.
 */
#ifndef KILN_JP_AUTH_H
#define KILN_JP_AUTH_H

#include <stddef.h>

#define JP_SIG_HEX_LEN 64 /* hex digits of an HMAC-SHA256 digest */

typedef struct jp_auth jp_auth;

/* One part of the signed message. */
typedef struct jp_part {
    const void *data; /* the part's bytes, exactly as on the wire */
    size_t len;       /* number of bytes */
} jp_part;

typedef enum {
    JP_AUTH_OK = 0,     /* signature valid and new (or signing disabled) */
    JP_AUTH_BAD_LENGTH, /* not 64 characters */
    JP_AUTH_MISMATCH,   /* not hex, or not the digest of the parts */
    JP_AUTH_REPLAY      /* valid, but seen before */
} jp_auth_result;

/* A signer for key (keylen bytes, may be 0). history_size bounds the number of
 * remembered signatures (0: a default of 65536). Returns NULL when out of memory. */
jp_auth *jp_auth_new(const void *key, size_t keylen, size_t history_size);
void jp_auth_free(jp_auth *a);

/* 1 when messages are signed (non-empty key), else 0. */
int jp_auth_enabled(const jp_auth *a);

/* Writes the lowercase hex digest of the four parts and a NUL into hex (65 bytes).
 * With signing disabled, writes "". */
void jp_auth_sign(const jp_auth *a, const jp_part parts[4], char *hex);

/* Checks sig (siglen bytes, not NUL-terminated) against the four parts, then the
 * replay history; a new valid signature is added to the history. */
jp_auth_result jp_auth_verify(jp_auth *a, const char *sig, size_t siglen,
                              const jp_part parts[4]);

#endif
