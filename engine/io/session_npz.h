/* session_npz.h — the container of a session file (engine/lang/session_file.c, format in
 * docs/session-file.md): a zip archive whose members are stored without compression
 * (method 0, CRC32, no zip64), written into one strbuf and found by name, and a small
 * JSON reader for the manifest. Readers check every offset against the buffer's length.
 */
#ifndef KILN_SESSION_NPZ_H
#define KILN_SESSION_NPZ_H

#include <stddef.h>
#include "engine/base/error.h"
#include "engine/base/strbuf.h"

/* one member written so far: its central directory entry comes from this */
typedef struct npz_member {
    char *name;           /* malloc'ed */
    unsigned long crc;    /* CRC32 of the data */
    size_t size;          /* bytes of data */
    size_t offset;        /* of its local header */
} npz_member;

/* appends member name with its data to zip, filling *m; -1 with err set (over 4 GiB,
 * out of memory) */
int npz_add(strbuf *zip, npz_member *m, const char *name, const unsigned char *data, size_t size,
            eng_error *err);
/* the central directory and its end record, after the n members */
void npz_finish(strbuf *zip, const npz_member *ms, int n);
/* the data of member name (stored) inside buf, its size in *size; NULL when absent */
const unsigned char *npz_find(const unsigned char *buf, size_t len, const char *name, size_t *size);

/* the i-th member of the central directory: its name (not NUL-terminated) in *name and
 * *nlen, and whether it is stored (method 0, readable by npz_find); 0, or -1 past the
 * last member or when buf is not a zip archive. *count gets the number of members. */
int npz_member_at(const unsigned char *buf, size_t len, size_t i, const char **name, size_t *nlen, int *stored,
                  size_t *count);

/* The data of member name, stored or deflated (np.savez_compressed), as a malloc'ed
 * copy of *size bytes (checked against the host memory budget); NULL with err filled
 * when the member is absent (ERR_VALUE, "absent"), uses another method, or is corrupt.
 * what names the caller in messages. */
unsigned char *npz_read_member(const unsigned char *buf, size_t len, const char *name, size_t *size,
                               const char *what, eng_error *err);

/* s[0..n) as a JSON string literal, escaped */
void npz_json_string(strbuf *b, const char *s, size_t n);

/* a parsed JSON value */
typedef struct npz_json {
    char kind;               /* 'o' object, 'a' array, 's' string, 'n' number, 't', 'f', 'z' null */
    char *str;               /* string value, or the number's text (malloc'ed) */
    int n;                   /* items of an object or array */
    char **keys;             /* object keys */
    struct npz_json **items; /* values */
} npz_json;

/* parses the value at *p (nesting up to 64 deep), moving *p past it; NULL when malformed
 * or out of memory. Free with npz_json_free. */
npz_json *npz_json_parse(const char **p);
void npz_json_free(npz_json *v);
/* an object's member key, or NULL */
npz_json *npz_json_get(const npz_json *o, const char *key);
/* an object's member key as text: a string's value or a number's digits; else NULL */
const char *npz_json_str(const npz_json *o, const char *key);

#endif
