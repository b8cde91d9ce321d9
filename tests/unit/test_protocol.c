/* test_protocol.c — unit tests of protocol/: connection file, HMAC signing and
 * verification, replay history, decoding of good and bad frames, headers, UTF-8.
 * Exits non-zero when a check fails. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/jp_auth.h"
#include "protocol/jp_connection.h"
#include "protocol/jp_message.h"
#include "tests/unit/check.h"



static void test_connection(void)
{
    char path[] = "/tmp/kiln-conn-XXXXXX";
    char ep[300], err[256];
    jp_connection c;
    int fd = mkstemp(path);
    FILE *f;
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    f = fdopen(fd, "w");
    fputs("{\"shell_port\": 5001, \"iopub_port\": 5002, \"stdin_port\": 5003,"
          " \"control_port\": 5004, \"hb_port\": 5005, \"ip\": \"127.0.0.1\","
          " \"key\": \"abc-def\", \"transport\": \"tcp\","
          " \"signature_scheme\": \"hmac-sha256\", \"kernel_name\": \"kiln\"}",
          f);
    fclose(f);
    CHECK(jp_connection_load(path, &c, err, sizeof err) == 0);
    CHECK(c.shell_port == 5001 && c.hb_port == 5005);
    CHECK(c.keylen == 7 && strcmp(c.key, "abc-def") == 0);
    CHECK(jp_connection_endpoint(&c, c.iopub_port, ep, sizeof ep) == 0);
    CHECK(strcmp(ep, "tcp://127.0.0.1:5002") == 0);
    strcpy(c.transport, "ipc");
    strcpy(c.ip, "/tmp/kiln-test");
    CHECK(jp_connection_endpoint(&c, 7, ep, sizeof ep) == 0);
    CHECK(strcmp(ep, "ipc:///tmp/kiln-test-7") == 0);
    jp_connection_clear(&c);

    f = fopen(path, "w");
    fputs("{\"shell_port\": \"x\"}", f);
    fclose(f);
    CHECK(jp_connection_load(path, &c, err, sizeof err) == -1);
    CHECK(strstr(err, "shell_port") != NULL);
    f = fopen(path, "w");
    fputs("{not json", f);
    fclose(f);
    CHECK(jp_connection_load(path, &c, err, sizeof err) == -1);
    unlink(path);
    CHECK(jp_connection_load(path, &c, err, sizeof err) == -1);
}

static void test_hmac(void)
{
    /* the HMAC-SHA256 of "The quick brown fox jumps over the lazy dog" keyed "key",
     * split over the four parts to exercise the streaming API */
    const char *want = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
    jp_part parts[4] = {{"The quick ", 10}, {"brown fox ", 10}, {"jumps over ", 11},
                        {"the lazy dog", 12}};
    char hex[JP_SIG_HEX_LEN + 1], upper[JP_SIG_HEX_LEN + 1];
    jp_auth *a = jp_auth_new("key", 3, 8);
    jp_auth *none = jp_auth_new("", 0, 0);
    CHECK(a && none);
    if (!a || !none)
        return;
    jp_auth_sign(a, parts, hex);
    CHECK(strcmp(hex, want) == 0);
    CHECK(jp_auth_verify(a, hex, 64, parts) == JP_AUTH_OK);
    CHECK(jp_auth_verify(a, hex, 64, parts) == JP_AUTH_REPLAY);
    for (int i = 0; i < 64; i++)
        upper[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
    upper[64] = '\0';
    CHECK(jp_auth_verify(a, upper, 64, parts) == JP_AUTH_REPLAY); /* same digest */
    CHECK(jp_auth_verify(a, hex, 63, parts) == JP_AUTH_BAD_LENGTH);
    CHECK(jp_auth_verify(a, hex, 0, parts) == JP_AUTH_BAD_LENGTH);
    hex[10] = hex[10] == '0' ? '1' : '0';
    CHECK(jp_auth_verify(a, hex, 64, parts) == JP_AUTH_MISMATCH);
    memset(hex, 'z', 64);
    CHECK(jp_auth_verify(a, hex, 64, parts) == JP_AUTH_MISMATCH);
    /* a long key (Jupyter keys are uuids; any length must work) */
    jp_auth_free(a);
    a = jp_auth_new("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", 65,
                    8);
    CHECK(a != NULL);
    /* the history is bounded: 100 distinct messages keep working */
    for (int i = 0; i < 100 && a; i++) {
        char body[32];
        jp_part p[4] = {{body, 0}, {"", 0}, {"", 0}, {"", 0}};
        p[0].len = (size_t)snprintf(body, sizeof body, "msg %d", i);
        jp_auth_sign(a, p, hex);
        CHECK(jp_auth_verify(a, hex, 64, p) == JP_AUTH_OK);
        CHECK(jp_auth_verify(a, hex, 64, p) == JP_AUTH_REPLAY);
    }
    jp_auth_sign(none, parts, hex);
    CHECK(hex[0] == '\0');
    CHECK(jp_auth_verify(none, "", 0, parts) == JP_AUTH_OK);
    CHECK(!jp_auth_enabled(none) && (!a || jp_auth_enabled(a)));
    jp_auth_free(a);
    jp_auth_free(none);
}

/* Builds a valid message for "kernel_info_request" with one identity and a buffer. */
static int make_message(jp_auth *a, jp_frames *out)
{
    jp_frames ids = {0}, bufs = {0};
    json_t *h = jp_header_new("kernel_info_request", "sess", "user");
    json_t *c = json_pack("{s:s}", "code", "x + 1");
    int rc = -1;
    if (!h || !c || jp_frames_push_str(&ids, "client-1") || jp_frames_push(&bufs, "\0\1\2", 3))
        goto done;
    rc = jp_msg_encode(a, &ids, h, NULL, NULL, c, &bufs, out);
done:
    json_decref(h);
    json_decref(c);
    jp_frames_free(&ids);
    jp_frames_free(&bufs);
    return rc;
}

static jp_decode_status decode(jp_auth *a, const jp_frames *f, size_t max)
{
    jp_msg m;
    char err[200];
    jp_decode_status st = jp_msg_decode(f, a, max, &m, err, sizeof err);
    jp_msg_clear(&m);
    return st;
}

static void test_decode(void)
{
    jp_auth *a = jp_auth_new("secret", 6, 64);
    jp_frames f = {0}, g = {0};
    jp_msg m;
    char err[200];
    CHECK(a != NULL);
    if (!a)
        return;
    CHECK(make_message(a, &f) == 0);
    CHECK(f.n == 8); /* ident, delimiter, signature, 4 JSON parts, 1 buffer */
    CHECK(jp_msg_decode(&f, a, 0, &m, err, sizeof err) == JP_OK);
    CHECK(strcmp(m.msg_type, "kernel_info_request") == 0);
    CHECK(m.idents.n == 1 && m.idents.v[0].len == 8);
    CHECK(m.buffers.n == 1 && m.buffers.v[0].len == 3);
    CHECK(strcmp(json_string_value(json_object_get(m.content, "code")), "x + 1") == 0);
    jp_msg_clear(&m);
    /* the same frames again: a replay */
    CHECK(decode(a, &f, 0) == JP_ERR_REPLAY);
    jp_frames_free(&f);

    /* tampered content */
    CHECK(make_message(a, &f) == 0);
    f.v[6].data[2] = 'X';
    CHECK(decode(a, &f, 0) == JP_ERR_SIGNATURE);
    jp_frames_free(&f);

    /* short signature */
    CHECK(make_message(a, &f) == 0);
    f.v[2].len = 10;
    CHECK(decode(a, &f, 0) == JP_ERR_SIGNATURE);
    jp_frames_free(&f);

    /* oversized JSON */
    CHECK(make_message(a, &f) == 0);
    CHECK(decode(a, &f, 16) == JP_ERR_TOO_BIG);
    jp_frames_free(&f);

    /* missing frames, no delimiter */
    jp_frames_push_str(&g, "<IDS|MSG>");
    jp_frames_push_str(&g, "sig");
    CHECK(decode(a, &g, 0) == JP_ERR_MISSING_FRAMES);
    jp_frames_free(&g);
    jp_frames_push_str(&g, "garbage");
    CHECK(decode(a, &g, 0) == JP_ERR_NO_DELIMITER);
    jp_frames_free(&g);
    CHECK(decode(a, &g, 0) == JP_ERR_NO_DELIMITER); /* zero frames */

    /* malformed JSON, correctly signed */
    {
        jp_auth *none = jp_auth_new("", 0, 0);
        jp_frames_push_str(&g, "<IDS|MSG>");
        jp_frames_push_str(&g, "");
        jp_frames_push_str(&g, "{\"msg_type\": \"x\"");
        jp_frames_push_str(&g, "{}");
        jp_frames_push_str(&g, "{}");
        jp_frames_push_str(&g, "{}");
        CHECK(decode(none, &g, 0) == JP_ERR_JSON);
        free(g.v[2].data);
        g.v[2].data = (unsigned char *)strdup("{\"msg_id\": \"1\"}");
        g.v[2].len = strlen((char *)g.v[2].data);
        CHECK(decode(none, &g, 0) == JP_ERR_HEADER);
        free(g.v[2].data);
        g.v[2].data = (unsigned char *)strdup("[1, 2]");
        g.v[2].len = 6;
        CHECK(decode(none, &g, 0) == JP_ERR_JSON);
        free(g.v[2].data);
        g.v[2].data = (unsigned char *)strdup("{\"msg_type\": \"ok\"}");
        g.v[2].len = strlen((char *)g.v[2].data);
        CHECK(decode(none, &g, 0) == JP_OK);
        CHECK(decode(none, &g, 0) == JP_OK); /* unsigned: no replay history */

        /* "\u0000" in a string is kept, with its length */
        free(g.v[5].data);
        g.v[5].data = (unsigned char *)strdup("{\"code\": \"a\\u0000b\"}");
        g.v[5].len = strlen((char *)g.v[5].data);
        CHECK(jp_msg_decode(&g, none, 0, &m, err, sizeof err) == JP_OK);
        CHECK(json_string_length(json_object_get(m.content, "code")) == 3);
        jp_msg_clear(&m);

        /* content that does not parse: the header, msg_type and identities stay */
        free(g.v[5].data);
        g.v[5].data = (unsigned char *)strdup("{\"code\": ");
        g.v[5].len = strlen((char *)g.v[5].data);
        CHECK(jp_msg_decode(&g, none, 0, &m, err, sizeof err) == JP_ERR_JSON);
        CHECK(m.header && m.msg_type && strcmp(m.msg_type, "ok") == 0 && !m.content);
        CHECK(strstr(err, "content is not a JSON object") != NULL);
        jp_msg_clear(&m);

        /* a msg_type with a NUL is refused */
        free(g.v[2].data);
        g.v[2].data = (unsigned char *)strdup("{\"msg_type\": \"ok\\u0000x\"}");
        g.v[2].len = strlen((char *)g.v[2].data);
        CHECK(decode(none, &g, 0) == JP_ERR_HEADER);
        jp_frames_free(&g);
        jp_auth_free(none);
    }
    jp_auth_free(a);
}

static void test_header_pieces(void)
{
    char id[JP_UUID_LEN + 1], id2[JP_UUID_LEN + 1], date[JP_DATE_LEN];
    regex_t re;
    json_t *h, *s;
    jp_uuid(id);
    jp_uuid(id2);
    CHECK(strlen(id) == 36 && strcmp(id, id2) != 0);
    CHECK(regcomp(&re, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                  REG_EXTENDED) == 0);
    CHECK(regexec(&re, id, 0, NULL, 0) == 0);
    regfree(&re);
    jp_iso_date(date, sizeof date);
    CHECK(regcomp(&re, "^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\."
                       "[0-9]{6}Z$",
                  REG_EXTENDED) == 0);
    CHECK(regexec(&re, date, 0, NULL, 0) == 0);
    regfree(&re);
    h = jp_header_new("status", "S", "U");
    CHECK(h && strcmp(json_string_value(json_object_get(h, "version")), "5.3") == 0);
    json_decref(h);

    s = jp_json_text("ok \xff bad \xc3\xa9", 12);
    CHECK(s && strcmp(json_string_value(s), "ok \xef\xbf\xbd bad \xc3\xa9") == 0);
    json_decref(s);
    s = jp_json_text("\xe2\x82", 2); /* truncated sequence */
    CHECK(s && json_string_length(s) == 6);
    json_decref(s);

    /* "é = 1" : code point 2 is byte 3 */
    CHECK(jp_utf8_cp_to_byte("\xc3\xa9 = 1", 2) == 3);
    CHECK(jp_utf8_byte_to_cp("\xc3\xa9 = 1", 3) == 2);
    CHECK(jp_utf8_cp_to_byte("ab", 10) == 2);
}

int main(void)
{
    if (jp_init() != 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    test_connection();
    test_hmac();
    test_decode();
    test_header_pieces();
    return check_finish("test_protocol");
}
