/* kernel.c — the kernel process: setup, the shell loop, the dispatcher, signals and
 * shutdown (see kernel.h and kn_core.h). */
#include "kernel/kernel.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "kernel/kn_core.h"

#define DEFAULT_MAX_JSON ((size_t)64 << 20) /* 64 MiB per JSON frame */
#define SOCKET_LINGER_MS 1000               /* time to flush replies at shutdown */

static kn_kernel *volatile g_kernel; /* for the SIGINT handler; set while serving */
static atomic_int g_log_fd = 2;      /* kn_log's fd: the saved stderr while fd 2 is captured */

void kn_log_set_fd(int fd)
{
    atomic_store(&g_log_fd, fd);
}

void kn_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;
    memcpy(line, "kiln: ", 6);
    va_start(ap, fmt);
    n = vsnprintf(line + 6, sizeof line - 7, fmt, ap);
    va_end(ap);
    n = n < 0 ? 0 : n > (int)sizeof line - 8 ? (int)sizeof line - 8 : n;
    line[6 + n] = '\n';
    /* one write: lines from several threads do not mix; a failure has nowhere to go */
    if (write(atomic_load(&g_log_fd), line, (size_t)n + 7) < 0)
        return;
}

/* Marks the running cell as interrupted; 1 when a cell was running. */
static int interrupt_cell(kn_kernel *k)
{
    if (!atomic_load(&k->cell_running))
        return 0;
    atomic_store(&k->interrupt_pending, 1);
    eng_interrupt(k->eng);
    return 1;
}

void kn_interrupt(kn_kernel *k)
{
    /* from another thread (control's interrupt_request, shutdown, the parent watch):
     * SIGINT to the shell thread too, so that a system call blocked in the cell returns
     * EINTR (the handler has no SA_RESTART) and the cell sees the flag */
    if (interrupt_cell(k) && atomic_load(&k->signals_ready) &&
        !pthread_equal(pthread_self(), k->shell_thread)) {
        pthread_kill(k->shell_thread, SIGINT);
        kn_debug_wake(k); /* a cell stopped in the debugger ends now */
    }
}

static void on_sigint(int sig)
{
    kn_kernel *k = g_kernel;
    (void)sig;
    if (k)
        interrupt_cell(k); /* atomics and eng_interrupt: async-signal-safe */
}

void kn_request_shutdown(kn_channel *ch)
{
    atomic_store(&ch->k->shutdown, 1);
    kn_interrupt(ch->k);
}

int kn_encode_take(kn_kernel *k, const jp_frames *idents, const char *msg_type,
                  json_t *parent, json_t *content, jp_frames *out)
{
    json_t *header = jp_header_new(msg_type, k->session, k->username);
    int rc = -1;
    if (!header || !content)
        goto done;
    rc = jp_msg_encode(k->auth, idents, header, parent, NULL, content, NULL, out);
done:
    json_decref(header);
    json_decref(content);
    return rc;
}

int kn_reply_take(kn_channel *ch, const jp_msg *req, const char *reply_type, json_t *content)
{
    jp_frames out = {0};
    int rc = -1;
    if (kn_encode_take(ch->k, &req->idents, reply_type, req->header, content, &out) != 0) {
        kn_log("%s: could not encode %s", ch->name, reply_type);
        goto done;
    }
    if (jp_frames_send(ch->sock, &out) != 0) {
        kn_log("%s: could not send %s: %s", ch->name, reply_type, zmq_strerror(errno));
        goto done;
    }
    rc = 0;
done:
    jp_frames_free(&out);
    return rc;
}

/* A correctly signed request whose header reads but whose parent, metadata or content
 * does not (not JSON, or over the size limit): busy, an error reply naming the problem
 * ("X_request" gets "X_reply"), idle. Other message types are only logged. */
static void reply_bad_request(kn_channel *ch, const jp_msg *req, const char *why)
{
    size_t n = strlen(req->msg_type), suffix = strlen("_request");
    char reply_type[128];
    json_t *content;
    if (n <= suffix || n - suffix + sizeof "_reply" > sizeof reply_type ||
        strcmp(req->msg_type + n - suffix, "_request") != 0) {
        kn_log("%s: dropped a %s: %s", ch->name, req->msg_type, why);
        return;
    }
    snprintf(reply_type, sizeof reply_type, "%.*s_reply", (int)(n - suffix), req->msg_type);
    kn_log("%s: answered a %s with an error: %s", ch->name, req->msg_type, why);
    kn_publish_status(ch, req->header, "busy");
    content = json_pack("{s:s, s:s, s:s+, s:[]}", "status", "error", "ename", "BadRequest",
                        "evalue", "the kernel could not read this request: ", why, "traceback");
    if (content && strcmp(req->msg_type, "execute_request") == 0) {
        json_object_set_new(content, "execution_count", json_integer(ch->k->execution_count));
        json_object_set_new(content, "user_expressions", json_object());
        json_object_set_new(content, "payload", json_array());
    }
    kn_reply_take(ch, req, reply_type, content);
    kn_publish_status(ch, req->header, "idle");
}

void kn_dispatch(kn_channel *ch, const jp_frames *frames)
{
    kn_kernel *k = ch->k;
    jp_msg req;
    char err[256];
    kn_handler handler;
    jp_decode_status st = jp_msg_decode(frames, k->auth, k->max_json, &req, err, sizeof err);
    if (st != JP_OK) {
        if ((st == JP_ERR_JSON || st == JP_ERR_TOO_BIG) && req.header)
            reply_bad_request(ch, &req, err);
        else
            kn_log("%s: dropped a message (%zu frames): %s", ch->name, frames->n, err);
        jp_msg_clear(&req);
        return;
    }
    kn_publish_status(ch, req.header, "busy");
    if (!ch->is_control && k->aborting && strcmp(req.msg_type, "execute_request") == 0) {
        kn_abort_execute(ch, &req);
    } else {
        handler = kn_find_handler(req.msg_type, ch->is_control);
        if (handler)
            handler(ch, &req);
        else
            kn_log("%s: unknown msg_type \"%s\": ignored", ch->name, req.msg_type);
    }
    kn_publish_status(ch, req.header, "idle");
    jp_msg_clear(&req);
}

/* Serves the next request taken by kn_abort_queued; returns 0 when there is none. */
static int serve_queued(kn_channel *ch)
{
    kn_queue *q = &ch->k->queued;
    jp_frames f;
    if (q->head == q->n) {
        q->head = q->n = 0;
        ch->k->aborting = 0;
        return 0;
    }
    f = q->v[q->head];
    q->v[q->head++] = (jp_frames){0};
    kn_dispatch(ch, &f);
    jp_frames_free(&f);
    return 1;
}

/* Serves the shell socket until shutdown. */
static void shell_loop(kn_channel *ch)
{
    kn_kernel *k = ch->k;
    zmq_pollitem_t items[2] = {{k->shell, 0, ZMQ_POLLIN, 0}, {k->wake_pull, 0, ZMQ_POLLIN, 0}};
    while (!atomic_load(&k->shutdown)) {
        jp_frames f = {0};
        int n;
        /* after a failed cell: the requests that were queued behind it, in order */
        if (serve_queued(ch))
            continue;
        n = zmq_poll(items, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            kn_log("shell: poll failed: %s", zmq_strerror(errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            if (jp_frames_recv(k->wake_pull, &f, ZMQ_DONTWAIT) == 0)
                jp_frames_free(&f);
            kn_debug_serve(k); /* a debug request the control thread left (debugger.c) */
            continue; /* the loop condition sees the shutdown flag */
        }
        if (items[0].revents & ZMQ_POLLIN) {
            if (jp_frames_recv(k->shell, &f, ZMQ_DONTWAIT) != 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                kn_log("shell: receive failed: %s", zmq_strerror(errno));
                break;
            }
            kn_dispatch(ch, &f);
            jp_frames_free(&f);
        }
    }
}

/* Finds the connection file in argv: "-f FILE", "-f=FILE", "--f=FILE",
 * "--connection-file FILE" or "--connection-file=FILE". */
static const char *connection_path(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-f") == 0 || strcmp(a, "--f") == 0 ||
             strcmp(a, "--connection-file") == 0) && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(a, "-f=", 3) == 0)
            return a + 3;
        if (strncmp(a, "--f=", 4) == 0)
            return a + 4;
        if (strncmp(a, "--connection-file=", 18) == 0)
            return a + 18;
    }
    return NULL;
}

/* Creates a socket of type, sets its linger and binds it to endpoint. */
static void *bind_socket(kn_kernel *k, int type, const char *endpoint)
{
    void *s = zmq_socket(k->zctx, type);
    int linger = SOCKET_LINGER_MS;
    if (!s)
        goto err;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (type == ZMQ_XPUB) {
        int verbose = 1; /* pass every subscription up, so each subscriber is greeted */
        int64_t max_sub = 1 + KN_IOPUB_TOPIC_MAX; /* "\x01" + topic; longer: dropped */
        int sub_hwm = KN_IOPUB_SUB_HWM; /* subscriptions libzmq takes in ahead of us */
        zmq_setsockopt(s, ZMQ_XPUB_VERBOSE, &verbose, sizeof verbose);
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_sub, sizeof max_sub);
        zmq_setsockopt(s, ZMQ_RCVHWM, &sub_hwm, sizeof sub_hwm);
        snprintf(k->iopub_endpoint, sizeof k->iopub_endpoint, "%s", endpoint);
    }
    if (zmq_bind(s, endpoint) != 0)
        goto err;
    return s;
err:
    kn_log("cannot bind %s: %s", endpoint, zmq_strerror(errno));
    if (s)
        zmq_close(s);
    return NULL;
}

static int bind_port(kn_kernel *k, void **out, int type, int port)
{
    char ep[512];
    if (jp_connection_endpoint(&k->conn, port, ep, sizeof ep) != 0) {
        kn_log("endpoint too long");
        return -1;
    }
    *out = bind_socket(k, type, ep);
    return *out ? 0 : -1;
}

static void close_socket(void **s)
{
    if (*s)
        zmq_close(*s);
    *s = NULL;
}

int kn_kernel_main(int argc, char **argv)
{
    kn_kernel k;
    kn_channel shell = {0};
    pthread_t iopub_t, control_t, hb_t;
    int iopub_started = 0, control_started = 0, hb_started = 0;
    struct sigaction sa, old_sa;
    sigset_t block, old_mask;
    const char *path = connection_path(argc, argv), *user, *max_env;
    char err[512];
    int rc = 1;

    memset(&k, 0, sizeof k);
    memset(&old_sa, 0, sizeof old_sa);
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    /* block SIGINT before any thread exists (ZeroMQ's I/O threads included), so that
     * only this thread, which unblocks it below, ever runs the handler */
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);

    if (!path) {
        fprintf(stderr, "usage: kiln kernel -f CONNECTION_FILE\n");
        rc = 2;
        goto out;
    }
    if (jp_init() != 0) {
        kn_log("libsodium failed to initialise");
        goto out;
    }
    if (jp_connection_load(path, &k.conn, err, sizeof err) != 0) {
        kn_log("%s", err);
        rc = 2;
        goto out;
    }
    if (k.conn.keylen == 0)
        kn_log("warning: the connection file has an empty key: messages are not signed "
               "and anyone who can reach the ports can run code");
    k.auth = jp_auth_new(k.conn.key, k.conn.keylen, 0);
    jp_uuid(k.session);
    user = getenv("USER");
    snprintf(k.username, sizeof k.username, "%s", user && *user ? user : "kiln");
    max_env = getenv("KILN_MAX_MESSAGE_BYTES");
    k.max_json = max_env && atol(max_env) > 0 ? (size_t)atol(max_env) : DEFAULT_MAX_JSON;
    k.history = kn_history_new();
    k.eng = eng_session_new();
    k.zctx = zmq_ctx_new();
    if (!k.auth || !k.history || !k.eng || !k.zctx || kn_debug_init(&k) != 0) {
        kn_log("out of memory at startup");
        goto out;
    }
    if (bind_port(&k, &k.shell, ZMQ_ROUTER, k.conn.shell_port) ||
        bind_port(&k, &k.control, ZMQ_ROUTER, k.conn.control_port) ||
        bind_port(&k, &k.stdin_sock, ZMQ_ROUTER, k.conn.stdin_port) ||
        bind_port(&k, &k.hb, ZMQ_ROUTER, k.conn.hb_port) ||
        bind_port(&k, &k.iopub, ZMQ_XPUB, k.conn.iopub_port))
        goto out;
    k.iopub_pull = bind_socket(&k, ZMQ_PULL, KN_IOPUB_INPROC);
    k.wake_pull = bind_socket(&k, ZMQ_PULL, KN_WAKE_INPROC);
    if (!k.iopub_pull || !k.wake_pull)
        goto out;
    shell.k = &k;
    shell.sock = k.shell;
    shell.name = "shell";
    shell.iopub_push = kn_iopub_push_new(&k);
    if (!shell.iopub_push)
        goto out;
    if (kn_iopub_start(&k, &iopub_t) != 0)
        goto out;
    iopub_started = 1;
    if (kn_heartbeat_start(&k, &hb_t) != 0)
        goto out;
    hb_started = 1;
    kn_parent_watch_init(&k);
    if (kn_control_start(&k, &control_t) != 0)
        goto out;
    control_started = 1;
    /* fd 1 and 2 (kernel printf, library warnings) become stream output; on failure
     * they stay where they were and the kernel serves on */
    kn_capture_start(&k, &shell);

    g_kernel = &k;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking call in a cell ends with EINTR */
    sigaction(SIGINT, &sa, &old_sa);
    k.shell_thread = pthread_self();
    pthread_sigmask(SIG_UNBLOCK, &block, NULL);
    atomic_store(&k.signals_ready, 1);

    kn_publish_status(&shell, NULL, "starting");
    shell_loop(&shell);
    rc = 0;

out:
    atomic_store(&k.signals_ready, 0);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    if (g_kernel) {
        g_kernel = NULL;
        sigaction(SIGINT, &old_sa, NULL);
    }
    kn_capture_stop(&k, &shell); /* publishes what is left while IOPub still runs */
    if (iopub_started) {
        kn_iopub_stop(shell.iopub_push);
        pthread_join(iopub_t, NULL);
    }
    close_socket(&shell.iopub_push);
    if (k.zctx)
        zmq_ctx_shutdown(k.zctx); /* wakes control and heartbeat with ETERM */
    if (control_started)
        pthread_join(control_t, NULL);
    if (hb_started)
        pthread_join(hb_t, NULL);
    /* sockets whose thread never started (or that belong to this thread) */
    if (!iopub_started) {
        close_socket(&k.iopub);
        close_socket(&k.iopub_pull);
    }
    if (!control_started)
        close_socket(&k.control);
    if (!hb_started)
        close_socket(&k.hb);
    close_socket(&k.shell);
    close_socket(&k.stdin_sock);
    close_socket(&k.wake_pull);
    if (k.zctx)
        zmq_ctx_term(k.zctx);
    if (k.eng)
        eng_session_free(k.eng);
    kn_debug_free(&k);
    for (size_t i = 0; i < k.queued.n; i++)
        jp_frames_free(&k.queued.v[i]);
    free(k.queued.v);
    kn_history_free(k.history);
    jp_auth_free(k.auth);
    jp_connection_clear(&k.conn);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return rc;
}
