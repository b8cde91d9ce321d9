/* jp_message.h — Jupyter wire messages: frames, decoding, encoding, headers.
 *
 * A Jupyter message on the wire is
 *     [identities...] "<IDS|MSG>" signature header parent_header metadata content [buffers...]
 * This module turns received frames into a jp_msg (checking the signature through
 * jp_auth, refusing replays, parsing the four JSON frames) and builds outgoing frames
 * from JSON parts (serialising and signing them). It also makes the pieces a header is
 * made of: uuid msg_ids, ISO 8601 dates with microseconds, the protocol version.
 *
 * Ownership: a jp_frames owns copies of its frames' bytes. A decoded jp_msg owns its
 * identities, buffers and one reference to each JSON part; jp_msg_clear releases them.
 * jp_msg_encode borrows every argument and fills a jp_frames that the caller frees.
 * Nothing here touches a socket except jp_frames_recv / jp_frames_send, which the
 * socket's owning thread calls.
 */
#ifndef KILN_JP_MESSAGE_H
#define KILN_JP_MESSAGE_H

#include <stddef.h>
#include <jansson.h>

#include "protocol/jp_auth.h"

#define JP_PROTOCOL_VERSION "5.3"
#define JP_DELIMITER "<IDS|MSG>"
#define JP_UUID_LEN 36 /* 8-4-4-4-12 hex digits and dashes */
#define JP_DATE_LEN 32 /* "2026-11-24T12:34:56.123456Z" and room to spare */

/* One frame: owned bytes (data may be NULL when len is 0). */
typedef struct jp_frame {
    unsigned char *data; /* malloc'ed copy of the frame's bytes */
    size_t len;          /* number of bytes in data */
} jp_frame;

/* A growable list of frames. */
typedef struct jp_frames {
    jp_frame *v; /* the frames, in wire order */
    size_t n;    /* frames in use */
    size_t cap;  /* frames allocated */
} jp_frames;

/* Appends a copy of len bytes. Returns 0, or -1 when out of memory. */
int jp_frames_push(jp_frames *f, const void *data, size_t len);
int jp_frames_push_str(jp_frames *f, const char *s);
/* Moves every frame of src to the end of dst; src is left empty. */
int jp_frames_append(jp_frames *dst, jp_frames *src);
void jp_frames_free(jp_frames *f);

/* Receives one whole multipart message from a ZeroMQ socket (zmq flags, e.g.
 * ZMQ_DONTWAIT). Returns 0, or -1 with errno set (EAGAIN, EINTR, ETERM, ENOMEM). */
int jp_frames_recv(void *sock, jp_frames *out, int flags);
/* Sends every frame as one multipart message. Returns 0, or -1 with errno set. */
int jp_frames_send(void *sock, const jp_frames *f);

/* A decoded message. */
typedef struct jp_msg {
    jp_frames idents;     /* routing identities before the delimiter */
    json_t *header;       /* object: msg_id, session, username, date, msg_type, version */
    json_t *parent;       /* object: the parent's header, or {} */
    json_t *metadata;     /* object */
    json_t *content;      /* object */
    jp_frames buffers;    /* binary buffers after content, passed through */
    const char *msg_type; /* borrowed from header */
    const char *msg_id;   /* borrowed from header, "" when absent */
} jp_msg;

/* Why a message was refused. */
typedef enum {
    JP_OK = 0,
    JP_ERR_NO_DELIMITER,   /* no "<IDS|MSG>" frame */
    JP_ERR_MISSING_FRAMES, /* fewer than five frames after the delimiter */
    JP_ERR_TOO_BIG,        /* a JSON frame larger than the limit */
    JP_ERR_SIGNATURE,      /* signature of wrong length, not hex, or not matching */
    JP_ERR_REPLAY,         /* a signature seen before */
    JP_ERR_JSON,           /* a part that is not a JSON object */
    JP_ERR_HEADER,         /* header without a string msg_type */
    JP_ERR_NOMEM           /* out of memory */
} jp_decode_status;

const char *jp_decode_status_text(jp_decode_status st);

/* Decodes frames into msg (which must be zeroed or cleared). max_json bounds each
 * JSON frame (0: no bound). JSON strings may hold NUL characters ("\u0000": use
 * json_string_length); a msg_type may not. On failure err (if non-NULL) receives a
 * one-line reason and msg is left cleared, except for JP_ERR_JSON or JP_ERR_TOO_BIG in
 * the parent, metadata or content of a correctly signed message (a part over the
 * limit is hashed, not parsed): then msg keeps its identities,
 * header, msg_type and msg_id (the other parts NULL), so that the receiver can answer
 * with an error reply. Call jp_msg_clear after any decode. */
jp_decode_status jp_msg_decode(const jp_frames *in, jp_auth *auth, size_t max_json,
                               jp_msg *msg, char *err, size_t errlen);
void jp_msg_clear(jp_msg *msg);

/* Serialises and signs a message into out (which must be empty). idents and buffers
 * may be NULL; parent and metadata may be NULL (sent as {}). Returns 0 or -1. */
int jp_msg_encode(const jp_auth *auth, const jp_frames *idents, json_t *header,
                  json_t *parent, json_t *metadata, json_t *content,
                  const jp_frames *buffers, jp_frames *out);

/* A new header object for msg_type, with a fresh msg_id and the current date.
 * Returns a new reference, or NULL when out of memory. */
json_t *jp_header_new(const char *msg_type, const char *session, const char *username);

/* Initialises libsodium once; returns 0 or -1. Safe to call more than once. */
int jp_init(void);
/* A random (version 4) uuid, lowercase, NUL-terminated: out needs JP_UUID_LEN + 1. */
void jp_uuid(char *out);
/* The current UTC time as ISO 8601 with zero-padded microseconds. */
void jp_iso_date(char *out, size_t outlen);

/* A JSON string from len bytes that may be invalid UTF-8: invalid sequences become
 * U+FFFD. Returns a new reference, or NULL when out of memory. */
json_t *jp_json_text(const char *s, size_t len);

/* Conversions between Jupyter cursor positions (Unicode code points, protocol 5.2+)
 * and byte offsets into a UTF-8 string, clamped to the string. */
size_t jp_utf8_cp_to_byte(const char *s, long cp);
long jp_utf8_byte_to_cp(const char *s, size_t byte);

#endif
