/* jp_connection.h — the Jupyter connection file.
 *
 * A client starts a kernel with the path of a JSON file naming the transport ("tcp"
 * or "ipc"), the address, the five ports (shell, iopub, stdin, control, hb), the
 * signature scheme and the signing key. This module reads it and turns a port into a
 * ZeroMQ endpoint: "tcp://IP:PORT" or, for ipc, "ipc://IP-PORT" as jupyter_client
 * writes it.
 *
 * Ownership: a jp_connection owns its key; jp_connection_clear frees it.
 */
#ifndef KILN_JP_CONNECTION_H
#define KILN_JP_CONNECTION_H

#include <stddef.h>

typedef struct jp_connection {
    char transport[8];         /* "tcp" or "ipc" */
    char ip[256];              /* address for tcp, path prefix for ipc */
    int shell_port;            /* ROUTER: requests */
    int iopub_port;            /* XPUB: broadcast outputs and status */
    int stdin_port;            /* ROUTER: input_request to the client */
    int control_port;          /* ROUTER: shutdown, interrupt */
    int hb_port;               /* heartbeat echo */
    char signature_scheme[32]; /* "hmac-sha256" (the only one supported) */
    char kernel_name[64];      /* informational */
    char *key;                 /* signing key, malloc'ed, NUL-terminated ("" = unsigned) */
    size_t keylen;             /* key length in bytes */
} jp_connection;

/* Reads the connection file at path into c. Returns 0, or -1 with a one-line reason
 * in err. On failure c holds nothing to free. */
int jp_connection_load(const char *path, jp_connection *c, char *err, size_t errlen);

/* Writes the ZeroMQ endpoint of port into out. Returns 0, or -1 if out is too small. */
int jp_connection_endpoint(const jp_connection *c, int port, char *out, size_t outlen);

void jp_connection_clear(jp_connection *c);

#endif
