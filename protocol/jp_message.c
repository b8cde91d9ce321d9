/* jp_message.c — frames, decoding and encoding of Jupyter messages (see jp_message.h). */
#include "protocol/jp_message.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zmq.h>

/* ---- frames ---------------------------------------------------------------------- */

int jp_frames_push(jp_frames *f, const void *data, size_t len)
{
    unsigned char *copy = NULL;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        jp_frame *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    if (len) {
        copy = malloc(len);
        if (!copy)
            return -1;
        memcpy(copy, data, len);
    }
    f->v[f->n].data = copy;
    f->v[f->n].len = len;
    f->n++;
    return 0;
}

int jp_frames_push_str(jp_frames *f, const char *s)
{
    return jp_frames_push(f, s, strlen(s));
}

int jp_frames_append(jp_frames *dst, jp_frames *src)
{
    for (size_t i = 0; i < src->n; i++) {
        if (dst->n == dst->cap) {
            size_t cap = dst->cap ? dst->cap * 2 : 8;
            jp_frame *v = realloc(dst->v, cap * sizeof *v);
            if (!v)
                return -1; /* frames already moved stay in dst; the rest in src */
            dst->v = v;
            dst->cap = cap;
        }
        dst->v[dst->n++] = src->v[i];
        src->v[i].data = NULL;
        src->v[i].len = 0;
    }
    jp_frames_free(src);
    return 0;
}

void jp_frames_free(jp_frames *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].data);
    free(f->v);
    f->v = NULL;
    f->n = f->cap = 0;
}

int jp_frames_recv(void *sock, jp_frames *out, int flags)
{
    zmq_msg_t part;
    int more = 1, rc = 0, saved = 0;
    size_t more_size = sizeof more;
    while (more) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, out->n ? 0 : flags) < 0) {
            saved = errno;
            zmq_msg_close(&part);
            /* once the first frame is in, the rest of the message is already here */
            if (saved == EINTR && out->n)
                continue;
            rc = -1;
            break;
        }
        if (jp_frames_push(out, zmq_msg_data(&part), zmq_msg_size(&part)) != 0) {
            saved = ENOMEM;
            rc = -1;
        }
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_size);
        zmq_msg_close(&part);
    }
    if (rc != 0) {
        jp_frames_free(out);
        errno = saved;
    }
    return rc;
}

int jp_frames_send(void *sock, const jp_frames *f)
{
    for (size_t i = 0; i < f->n; i++) {
        int flags = i + 1 < f->n ? ZMQ_SNDMORE : 0;
        while (zmq_send(sock, f->v[i].data ? (const void *)f->v[i].data : "", f->v[i].len,
                        flags) < 0) {
            if (errno != EINTR)
                return -1;
        }
    }
    return 0;
}

/* ---- decoding --------------------------------------------------------------------- */

const char *jp_decode_status_text(jp_decode_status st)
{
    switch (st) {
    case JP_OK: return "ok";
    case JP_ERR_NO_DELIMITER: return "no <IDS|MSG> delimiter";
    case JP_ERR_MISSING_FRAMES: return "missing frames";
    case JP_ERR_TOO_BIG: return "frame too large";
    case JP_ERR_SIGNATURE: return "invalid signature";
    case JP_ERR_REPLAY: return "replayed signature";
    case JP_ERR_JSON: return "malformed JSON";
    case JP_ERR_HEADER: return "invalid header";
    case JP_ERR_NOMEM: return "out of memory";
    }
    return "unknown";
}

/* JSON text may hold "\u0000" (valid JSON): kept, so that a string's length is
 * json_string_length and consumers decide what a NUL means to them. */
static json_t *parse_object(const jp_frame *f)
{
    json_t *v = json_loadb(f->data ? (const char *)f->data : "", f->len, JSON_ALLOW_NUL, NULL);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

jp_decode_status jp_msg_decode(const jp_frames *in, jp_auth *auth, size_t max_json,
                               jp_msg *msg, char *err, size_t errlen)
{
    static const char *names[4] = {"header", "parent_header", "metadata", "content"};
    jp_decode_status st = JP_OK;
    const jp_frame *sig, *parts;
    jp_part hp[4];
    json_t **dst[4];
    json_t *mt, *mid;
    size_t d, nlen = strlen(JP_DELIMITER);
    char why[160] = "";
    int big = -1; /* the first part over max_json (not the header), if any */

    memset(msg, 0, sizeof *msg);
    for (d = 0; d < in->n; d++)
        if (in->v[d].len == nlen && memcmp(in->v[d].data, JP_DELIMITER, nlen) == 0)
            break;
    if (d == in->n) {
        st = JP_ERR_NO_DELIMITER;
        goto err;
    }
    if (in->n - d - 1 < 5) {
        st = JP_ERR_MISSING_FRAMES;
        snprintf(why, sizeof why, "%zu frames after the delimiter, 5 needed", in->n - d - 1);
        goto err;
    }
    sig = &in->v[d + 1];
    parts = &in->v[d + 2];
    for (int i = 0; i < 4; i++) {
        if (max_json && parts[i].len > max_json && big < 0) {
            big = i;
            snprintf(why, sizeof why, "%s frame of %zu bytes (limit %zu)", names[i],
                     parts[i].len, max_json);
            if (i == 0) { /* nothing can be answered without the header */
                st = JP_ERR_TOO_BIG;
                goto err;
            }
        }
        hp[i].data = parts[i].data ? (const void *)parts[i].data : "";
        hp[i].len = parts[i].len;
    }
    switch (jp_auth_verify(auth, (const char *)sig->data, sig->len, hp)) {
    case JP_AUTH_OK: break;
    case JP_AUTH_BAD_LENGTH:
        st = JP_ERR_SIGNATURE;
        snprintf(why, sizeof why, "signature of %zu characters, %d expected", sig->len,
                 JP_SIG_HEX_LEN);
        goto err;
    case JP_AUTH_MISMATCH:
        st = JP_ERR_SIGNATURE;
        snprintf(why, sizeof why, "signature does not match");
        goto err;
    case JP_AUTH_REPLAY:
        st = JP_ERR_REPLAY;
        goto err;
    }
    dst[0] = &msg->header;
    dst[1] = &msg->parent;
    dst[2] = &msg->metadata;
    dst[3] = &msg->content;
    msg->header = parse_object(&parts[0]);
    if (!msg->header) {
        st = JP_ERR_JSON;
        snprintf(why, sizeof why, "header is not a JSON object");
        goto err;
    }
    mt = json_object_get(msg->header, "msg_type");
    if (!json_is_string(mt) || json_string_length(mt) == 0) {
        st = JP_ERR_HEADER;
        snprintf(why, sizeof why, "header has no msg_type");
        goto err;
    }
    if (strlen(json_string_value(mt)) != json_string_length(mt)) {
        st = JP_ERR_HEADER;
        snprintf(why, sizeof why, "msg_type holds a NUL character");
        goto err;
    }
    mid = json_object_get(msg->header, "msg_id");
    msg->msg_type = json_string_value(mt);
    msg->msg_id = json_is_string(mid) ? json_string_value(mid) : "";
    for (size_t i = 0; i < d; i++)
        if (jp_frames_push(&msg->idents, in->v[i].data, in->v[i].len)) {
            st = JP_ERR_NOMEM;
            goto err;
        }
    if (big > 0) {
        /* signed, with a readable header: the caller may answer with an error */
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", jp_decode_status_text(JP_ERR_TOO_BIG), why);
        return JP_ERR_TOO_BIG;
    }
    for (int i = 1; i < 4; i++) {
        *dst[i] = parse_object(&parts[i]);
        if (!*dst[i]) {
            /* signed, with a readable header: the caller may answer with an error */
            if (err && errlen)
                snprintf(err, errlen, "%s: %s is not a JSON object",
                         jp_decode_status_text(JP_ERR_JSON), names[i]);
            return JP_ERR_JSON;
        }
    }
    for (size_t i = d + 6; i < in->n; i++)
        if (jp_frames_push(&msg->buffers, in->v[i].data, in->v[i].len)) {
            st = JP_ERR_NOMEM;
            goto err;
        }
    return JP_OK;
err:
    if (err && errlen)
        snprintf(err, errlen, "%s%s%s", jp_decode_status_text(st), why[0] ? ": " : "", why);
    jp_msg_clear(msg);
    return st;
}

void jp_msg_clear(jp_msg *msg)
{
    jp_frames_free(&msg->idents);
    jp_frames_free(&msg->buffers);
    json_decref(msg->header);
    json_decref(msg->parent);
    json_decref(msg->metadata);
    json_decref(msg->content);
    memset(msg, 0, sizeof *msg);
}

/* ---- encoding --------------------------------------------------------------------- */

int jp_msg_encode(const jp_auth *auth, const jp_frames *idents, json_t *header,
                  json_t *parent, json_t *metadata, json_t *content,
                  const jp_frames *buffers, jp_frames *out)
{
    json_t *empty = json_object();
    json_t *src[4];
    char *text[4] = {NULL, NULL, NULL, NULL};
    jp_part parts[4];
    char sig[JP_SIG_HEX_LEN + 1];
    int rc = -1;

    if (!empty)
        goto done;
    src[0] = header;
    src[1] = parent ? parent : empty;
    src[2] = metadata ? metadata : empty;
    src[3] = content ? content : empty;
    for (int i = 0; i < 4; i++) {
        text[i] = json_dumps(src[i], JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text[i])
            goto done;
        parts[i].data = text[i];
        parts[i].len = strlen(text[i]);
    }
    jp_auth_sign(auth, parts, sig);
    for (size_t i = 0; idents && i < idents->n; i++)
        if (jp_frames_push(out, idents->v[i].data, idents->v[i].len))
            goto done;
    if (jp_frames_push_str(out, JP_DELIMITER) || jp_frames_push_str(out, sig))
        goto done;
    for (int i = 0; i < 4; i++)
        if (jp_frames_push(out, parts[i].data, parts[i].len))
            goto done;
    for (size_t i = 0; buffers && i < buffers->n; i++)
        if (jp_frames_push(out, buffers->v[i].data, buffers->v[i].len))
            goto done;
    rc = 0;
done:
    for (int i = 0; i < 4; i++)
        free(text[i]);
    json_decref(empty);
    if (rc != 0)
        jp_frames_free(out);
    return rc;
}

/* ---- header pieces ---------------------------------------------------------------- */

int jp_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void jp_uuid(char *out)
{
    unsigned char b[16];
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void jp_iso_date(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    char base[24];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%06ldZ", base, ts.tv_nsec / 1000);
}

json_t *jp_header_new(const char *msg_type, const char *session, const char *username)
{
    char id[JP_UUID_LEN + 1], date[JP_DATE_LEN];
    jp_uuid(id);
    jp_iso_date(date, sizeof date);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "msg_id", id, "session", session,
                     "username", username, "date", date, "msg_type", msg_type, "version",
                     JP_PROTOCOL_VERSION);
}

/* ---- UTF-8 ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

json_t *jp_json_text(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char *buf;
    size_t i = 0, o = 0;
    json_t *res;
    /* fast path: already valid (and NUL-free: jansson takes embedded NULs, keep them) */
    for (i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k)
            break;
        i += k;
    }
    if (i == len)
        return json_stringn(s, len);
    buf = malloc(len * 3 + 1); /* each bad byte becomes 3 bytes (U+FFFD) at most */
    if (!buf)
        return NULL;
    for (i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);
        if (k) {
            memcpy(buf + o, u + i, k);
            o += k;
            i += k;
        } else {
            buf[o++] = 0xef;
            buf[o++] = 0xbf;
            buf[o++] = 0xbd;
            i++;
        }
    }
    res = json_stringn((const char *)buf, o);
    free(buf);
    return res;
}

size_t jp_utf8_cp_to_byte(const char *s, long cp)
{
    size_t i = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (cp > 0 && u[i]) {
        i++;
        while ((u[i] & 0xc0) == 0x80)
            i++;
        cp--;
    }
    return i;
}

long jp_utf8_byte_to_cp(const char *s, size_t byte)
{
    long cp = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < byte && u[i]; i++)
        if ((u[i] & 0xc0) != 0x80)
            cp++;
    return cp;
}
