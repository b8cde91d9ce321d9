/* jp_connection.c — reading the connection file (see jp_connection.h). */
#include "protocol/jp_connection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Copies the string member name of obj into out; missing means def. */
static int get_str(json_t *obj, const char *name, const char *def, char *out, size_t outlen,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, name);
    const char *s = def;
    if (v) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "connection file: \"%s\" is not a string", name);
            return -1;
        }
        s = json_string_value(v);
    }
    if (strlen(s) >= outlen) {
        snprintf(err, errlen, "connection file: \"%s\" is too long", name);
        return -1;
    }
    strcpy(out, s);
    return 0;
}

static int get_port(json_t *obj, const char *name, int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, name);
    json_int_t p;
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "connection file: \"%s\" missing or not an integer", name);
        return -1;
    }
    p = json_integer_value(v);
    if (p < 0 || p > 65535) {
        snprintf(err, errlen, "connection file: \"%s\" out of range", name);
        return -1;
    }
    *out = (int)p;
    return 0;
}

int jp_connection_load(const char *path, jp_connection *c, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = NULL, *key;
    memset(c, 0, sizeof *c);
    root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "connection file %s: %s (line %d)", path, jerr.text, jerr.line);
        goto err;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "connection file %s: not a JSON object", path);
        goto err;
    }
    if (get_str(root, "transport", "tcp", c->transport, sizeof c->transport, err, errlen) ||
        get_str(root, "ip", "127.0.0.1", c->ip, sizeof c->ip, err, errlen) ||
        get_str(root, "signature_scheme", "hmac-sha256", c->signature_scheme,
                sizeof c->signature_scheme, err, errlen) ||
        get_str(root, "kernel_name", "", c->kernel_name, sizeof c->kernel_name, err, errlen))
        goto err;
    if (strcmp(c->transport, "tcp") != 0 && strcmp(c->transport, "ipc") != 0) {
        snprintf(err, errlen, "connection file: unknown transport \"%s\"", c->transport);
        goto err;
    }
    if (c->signature_scheme[0] && strcmp(c->signature_scheme, "hmac-sha256") != 0) {
        snprintf(err, errlen, "connection file: unsupported signature_scheme \"%s\"",
                 c->signature_scheme);
        goto err;
    }
    if (get_port(root, "shell_port", &c->shell_port, err, errlen) ||
        get_port(root, "iopub_port", &c->iopub_port, err, errlen) ||
        get_port(root, "stdin_port", &c->stdin_port, err, errlen) ||
        get_port(root, "control_port", &c->control_port, err, errlen) ||
        get_port(root, "hb_port", &c->hb_port, err, errlen))
        goto err;
    key = json_object_get(root, "key");
    if (key && !json_is_string(key)) {
        snprintf(err, errlen, "connection file: \"key\" is not a string");
        goto err;
    }
    c->keylen = key ? json_string_length(key) : 0;
    c->key = malloc(c->keylen + 1);
    if (!c->key) {
        snprintf(err, errlen, "connection file: out of memory");
        goto err;
    }
    if (c->keylen)
        memcpy(c->key, json_string_value(key), c->keylen);
    c->key[c->keylen] = '\0';
    json_decref(root);
    return 0;
err:
    json_decref(root);
    jp_connection_clear(c);
    return -1;
}

int jp_connection_endpoint(const jp_connection *c, int port, char *out, size_t outlen)
{
    int n;
    if (strcmp(c->transport, "ipc") == 0)
        n = snprintf(out, outlen, "ipc://%s-%d", c->ip, port);
    else
        n = snprintf(out, outlen, "tcp://%s:%d", c->ip, port);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

void jp_connection_clear(jp_connection *c)
{
    free(c->key);
    memset(c, 0, sizeof *c);
}
