/* iopub.c — the IOPub thread and the functions other threads use to feed it.
 *
 * Only the IOPub thread touches the XPUB socket. Every other thread owns a PUSH socket
 * connected to KN_IOPUB_INPROC and sends it one of these (the first frame is a tag):
 *   "M" frames...            a complete, signed wire message: forwarded as it is
 *   "S" fd parent text       stream text: coalesced, sent as one `stream` message when
 *                            the stream or parent changes, another message comes, the
 *                            buffer is large, or FLUSH_MS have passed
 *   "F"                      send buffered stream text now
 *   "Q"                      drain what is queued, then exit
 * Messages sent on one PUSH keep their order; the capture thread (capture.c) sends on
 * the shell thread's PUSH under ch->push_mu, so its text and the shell's messages
 * reach this thread in the order they were sent. On XPUB, each subscription (verbose mode:
 * every subscriber, even to a topic already subscribed) is greeted with iopub_welcome.
 *
 * What subscriptions cost is bounded: libzmq keeps every subscribed topic in a trie of
 * about 35 bytes per topic byte, for as long as the subscriber stays connected, and the
 * IOPub port takes anyone who can reach it (subscriptions are not signed). So a topic
 * longer than KN_IOPUB_TOPIC_MAX bytes makes libzmq drop its sender (ZMQ_MAXMSGSIZE,
 * set by kernel.c before the bind), libzmq takes in one subscription per subscriber
 * ahead of this thread (ZMQ_RCVHWM 1, kernel.c), and every CHECK_EVERY subscriptions
 * the connections that have sent more than HEAVY_BYTES are ended (check_subscribers):
 * libzmq then forgets their topics and queued messages, and the freed memory goes back
 * to the system (malloc_trim) once the dropped pipes are gone. zmq_unbind would not
 * do: it stops the listener but keeps the connections it accepted. Welcomes are rate-limited
 * (WELCOME_BURST, then WELCOME_RATE a second): a welcome goes to every subscriber whose
 * topic matches, "" included, so a flood of subscriptions would otherwise become a
 * flood of welcomes to every real client.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received (glibc's lacks it) */
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "kernel/kn_core.h"

#define FLUSH_MS 50                       /* longest time stream text waits */
#define FLUSH_BYTES ((size_t)256 << 10)   /* stream text sent once this much waits */
#define XPUB_HWM 100000                   /* messages queued per slow subscriber */
#define HEAVY_BYTES ((long long)4 << 10)  /* a subscriber that sent more is dropped */
#define CHECK_EVERY 256                   /* subscriptions between checks of the senders */
#define MAX_PEERS 4096                    /* IOPub connections looked at in a check */
#define TRIM_DELAY_MS 500                 /* malloc_trim this long after a drop */
#define WELCOME_BURST 64                  /* welcomes sent at once at most, */
#define WELCOME_RATE 10                   /* then this many a second */

/* What the IOPub thread knows of its subscribers. */
typedef struct subs_state {
    unsigned long seen;   /* subscription notices so far */
    long long trim_ms;    /* monotonic time of a pending malloc_trim; 0 when none */
    int warned;           /* 1 once the drop has been logged */
    double tokens;        /* welcomes that may be sent now (refilled at WELCOME_RATE) */
    long long refill_ms;  /* when tokens was last refilled */
    int rate_warned;      /* 1 once an ungreeted subscription has been logged */
} subs_state;

/* Stream text waiting to be sent, for one stream and one parent. */
typedef struct stream_buf {
    int fd;           /* 1 stdout, 2 stderr; 0 when empty */
    char *parent;     /* the parent header as JSON text (malloc'ed) */
    char *text;       /* the text (malloc'ed) */
    size_t len;       /* bytes in text */
    size_t cap;       /* bytes allocated for text */
    long long due_ms; /* monotonic time by which it must be sent */
} stream_buf;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends frames on the XPUB socket; failures are logged (IOPub is best-effort). */
static void xpub_send(kn_kernel *k, const jp_frames *f)
{
    if (jp_frames_send(k->iopub, f) != 0 && errno != ETERM)
        kn_log("iopub: send failed: %s", zmq_strerror(errno));
}

/* Length of an incomplete UTF-8 sequence at the end of s (0 when it ends cleanly). */
static size_t utf8_tail(const char *s, size_t len)
{
    size_t back = 0;
    while (back < 3 && back < len && ((unsigned char)s[len - 1 - back] & 0xc0) == 0x80)
        back++;
    if (back < len) {
        unsigned c = (unsigned char)s[len - 1 - back];
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (need > back + 1)
            return back + 1;
    }
    return 0;
}

/* Sends buffered stream text. Unless force, an incomplete UTF-8 character at the end
 * stays in the buffer for the next write to complete. */
static void stream_flush(kn_kernel *k, stream_buf *b, int force)
{
    size_t keep, send_len;
    char topic[96];
    json_t *parent = NULL, *content = NULL, *text;
    jp_frames ids = {0}, out = {0};
    if (!b->fd || !b->len)
        goto reset;
    keep = force ? 0 : utf8_tail(b->text, b->len);
    send_len = b->len - keep;
    if (!send_len) {
        b->due_ms = now_ms() + FLUSH_MS;
        return;
    }
    parent = json_loads(b->parent, 0, NULL);
    text = jp_json_text(b->text, send_len);
    content = json_pack("{s:s, s:o*}", "name", b->fd == 2 ? "stderr" : "stdout", "text", text);
    snprintf(topic, sizeof topic, "kernel.%s.stream", k->session);
    if (jp_frames_push_str(&ids, topic) != 0) {
        json_decref(content);
        kn_log("iopub: out of memory: stream output dropped");
    } else if (kn_encode_take(k, &ids, "stream", parent, content, &out) != 0)
        kn_log("iopub: could not encode stream output");
    else
        xpub_send(k, &out);
    json_decref(parent);
    jp_frames_free(&ids);
    jp_frames_free(&out);
    memmove(b->text, b->text + send_len, keep);
    b->len = keep;
    if (keep) {
        b->due_ms = now_ms() + FLUSH_MS; /* wait for the rest of the character */
        return;
    }
reset:
    b->fd = 0;
    b->len = 0;
    free(b->parent);
    b->parent = NULL;
}

/* Adds stream text from an "S" message. */
static void stream_add(kn_kernel *k, stream_buf *b, const jp_frames *f)
{
    int fd;
    const jp_frame *pf, *tf;
    if (f->n != 4 || f->v[1].len != 1)
        return;
    fd = f->v[1].data[0] == '2' ? 2 : 1;
    pf = &f->v[2];
    tf = &f->v[3];
    if (b->fd && (b->fd != fd || strlen(b->parent) != pf->len ||
                  memcmp(b->parent, pf->data, pf->len) != 0))
        stream_flush(k, b, 1);
    if (!b->fd) {
        b->parent = malloc(pf->len + 1);
        if (!b->parent)
            return;
        memcpy(b->parent, pf->data, pf->len);
        b->parent[pf->len] = '\0';
        b->fd = fd;
        b->len = 0;
        b->due_ms = now_ms() + FLUSH_MS;
    }
    if (b->len + tf->len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *t;
        while (cap < b->len + tf->len)
            cap *= 2;
        t = realloc(b->text, cap);
        if (!t) {
            kn_log("iopub: out of memory: stream output dropped");
            return;
        }
        b->text = t;
        b->cap = cap;
    }
    if (tf->len)
        memcpy(b->text + b->len, tf->data, tf->len);
    b->len += tf->len;
    if (b->len >= FLUSH_BYTES)
        stream_flush(k, b, 0);
}

/* 1 when fd is a connection accepted on the IOPub endpoint: a connected socket whose
 * local address is the endpoint's (TCP port, or IPC path). */
static int is_iopub_peer(const kn_kernel *k, int fd)
{
    struct sockaddr_storage me, peer;
    socklen_t mlen = sizeof me, plen = sizeof peer;
    if (getsockname(fd, (struct sockaddr *)&me, &mlen) != 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &plen) != 0)
        return 0;
    if (me.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&me)->sin_port) == k->conn.iopub_port;
    if (me.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&me)->sin6_port) == k->conn.iopub_port;
    if (me.ss_family == AF_UNIX) {
        const char *path = ((struct sockaddr_un *)&me)->sun_path;
        const char *ep = strncmp(k->iopub_endpoint, "ipc://", 6) == 0 ? k->iopub_endpoint + 6 : NULL;
        return ep && mlen > offsetof(struct sockaddr_un, sun_path) && strcmp(path, ep) == 0;
    }
    return 0;
}

/* Bytes fd has received (TCP), or -1 when the transport does not say. */
static long long bytes_received(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return -1;
    return (long long)ti.tcpi_bytes_received;
}

/* Every CHECK_EVERY subscriptions: ends the IOPub connections that have sent more
 * than HEAVY_BYTES. What a subscriber costs in libzmq's trie is bounded by the bytes it
 * sent (about 35 bytes of memory per topic byte), and a real client sends about 100:
 * the greeting and one subscription to "". shutdown(2) on libzmq's socket makes its
 * I/O thread end the connection, which drops the peer's pipe with its topics and
 * queued messages; a libzmq SUB reconnects by itself. Light connections are never
 * touched. Over IPC (no byte count; reachable only through the file system) nothing is
 * dropped. */
static void check_subscribers(kn_kernel *k, subs_state *st)
{
    int fds[MAX_PEERS], n = 0, heavy = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d) {
        kn_log("iopub: /proc/self/fd cannot be read (%s): subscribers are not checked",
               strerror(errno));
        return;
    }
    while ((e = readdir(d)) && n < MAX_PEERS) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == dirfd(d))
            continue;
        if (is_iopub_peer(k, (int)fd))
            fds[n++] = (int)fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        if (bytes_received(fds[i]) > HEAVY_BYTES) {
            shutdown(fds[i], SHUT_RDWR);
            heavy++;
        }
    }
    if (!heavy)
        return;
    if (!st->warned)
        kn_log("iopub: %d of %d subscriber connections dropped: each sent over %lld bytes "
               "of subscriptions (logged once)", heavy, n, HEAVY_BYTES);
    st->warned = 1;
    st->trim_ms = now_ms() + TRIM_DELAY_MS;
}

/* A subscription notice (verbose XPUB: frame "\x01" + topic; "\x00" + topic when the
 * last subscriber of a topic goes): checks the senders now and then, and greets a new
 * subscriber. */
static void on_subscription(kn_kernel *k, subs_state *st, const jp_frames *f)
{
    jp_frames ids = {0}, out = {0};
    json_t *content;
    char *topic;
    if (f->n < 1 || f->v[0].len < 1)
        return;
    if (f->v[0].data[0] != 1)
        return; /* an unsubscription, or a dropped subscriber's topic */
    if (++st->seen % CHECK_EVERY == 0)
        check_subscribers(k, st);
    {
        long long now = now_ms();
        st->tokens += (double)(now - st->refill_ms) * WELCOME_RATE / 1000.0;
        if (st->tokens > WELCOME_BURST)
            st->tokens = WELCOME_BURST;
        st->refill_ms = now;
        if (st->tokens < 1) {
            if (!st->rate_warned)
                kn_log("iopub: subscriptions arrive faster than %d a second: some are not "
                       "greeted with iopub_welcome (logged once)", WELCOME_RATE);
            st->rate_warned = 1;
            return;
        }
        st->tokens -= 1;
    }
    topic = strndup(f->v[0].len > 1 ? (const char *)f->v[0].data + 1 : "", f->v[0].len - 1);
    if (!topic)
        return;
    content = json_pack("{s:o*}", "subscription", jp_json_text(topic, strlen(topic)));
    if (topic[0] && jp_frames_push_str(&ids, topic)) {
        json_decref(content);
        goto done;
    }
    if (kn_encode_take(k, &ids, "iopub_welcome", NULL, content, &out) == 0)
        xpub_send(k, &out);
done:
    jp_frames_free(&ids);
    jp_frames_free(&out);
    free(topic);
}

/* Handles one message from a feeding thread; returns 1 on "Q". */
static int from_feeder(kn_kernel *k, stream_buf *b, jp_frames *f)
{
    char tag;
    if (f->n < 1 || f->v[0].len != 1)
        return 0;
    tag = (char)f->v[0].data[0];
    if (tag == 'S') {
        stream_add(k, b, f);
        return 0;
    }
    stream_flush(k, b, 1);
    if (tag == 'M' && f->n > 1) {
        jp_frames body = {0};
        /* forward frames 1..n-1: move them into a view without copying */
        body.v = f->v + 1;
        body.n = f->n - 1;
        xpub_send(k, &body);
    }
    return tag == 'Q';
}

static void *iopub_main(void *arg)
{
    kn_kernel *k = arg;
    stream_buf buf = {0};
    subs_state subs = {0};
    subs.tokens = WELCOME_BURST;
    subs.refill_ms = now_ms();
    zmq_pollitem_t items[2] = {{k->iopub_pull, 0, ZMQ_POLLIN, 0}, {k->iopub, 0, ZMQ_POLLIN, 0}};
    int quit = 0;
    while (!quit) {
        long timeout = -1;
        int n;
        if (buf.fd || subs.trim_ms) {
            long long due = buf.fd ? buf.due_ms : subs.trim_ms, left;
            if (subs.trim_ms && subs.trim_ms < due)
                due = subs.trim_ms;
            left = due - now_ms();
            timeout = left > 0 ? (long)left : 0;
        }
        n = zmq_poll(items, 2, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM */
        }
        if (buf.fd && now_ms() >= buf.due_ms)
            stream_flush(k, &buf, 0);
        if (subs.trim_ms && now_ms() >= subs.trim_ms) {
            subs.trim_ms = 0;
            malloc_trim(0); /* the dropped subscribers' topics and queues */
        }
        if (items[1].revents & ZMQ_POLLIN) {
            jp_frames f = {0};
            if (jp_frames_recv(k->iopub, &f, ZMQ_DONTWAIT) == 0) {
                on_subscription(k, &subs, &f);
                jp_frames_free(&f);
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            jp_frames f = {0};
            if (jp_frames_recv(k->iopub_pull, &f, ZMQ_DONTWAIT) == 0) {
                quit = from_feeder(k, &buf, &f);
                jp_frames_free(&f);
            }
        }
    }
    /* drain what the other threads sent before the "Q" */
    for (;;) {
        jp_frames f = {0};
        if (jp_frames_recv(k->iopub_pull, &f, ZMQ_DONTWAIT) != 0)
            break;
        from_feeder(k, &buf, &f);
        jp_frames_free(&f);
    }
    stream_flush(k, &buf, 1);
    free(buf.text);
    free(buf.parent);
    zmq_close(k->iopub_pull);
    zmq_close(k->iopub);
    k->iopub_pull = k->iopub = NULL;
    return NULL;
}

int kn_iopub_start(kn_kernel *k, pthread_t *thread)
{
    int hwm = XPUB_HWM;
    zmq_setsockopt(k->iopub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (pthread_create(thread, NULL, iopub_main, k) != 0) {
        kn_log("cannot start the IOPub thread");
        return -1;
    }
    return 0;
}

void *kn_iopub_push_new(kn_kernel *k)
{
    void *s = zmq_socket(k->zctx, ZMQ_PUSH);
    int linger = 2000;
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, KN_IOPUB_INPROC) != 0) {
        kn_log("cannot connect to the IOPub thread: %s", zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Sends f on ch's PUSH, under its lock when the PUSH is shared. */
static int push_send(kn_channel *ch, const jp_frames *f)
{
    int rc;
    if (ch->push_mu)
        pthread_mutex_lock(ch->push_mu);
    rc = jp_frames_send(ch->iopub_push, f);
    if (ch->push_mu)
        pthread_mutex_unlock(ch->push_mu);
    return rc;
}

/* Sends a one-frame tag to the IOPub thread. */
static int send_tag(void *push, const char *tag)
{
    jp_frames f = {0};
    int rc = jp_frames_push_str(&f, tag) == 0 ? jp_frames_send(push, &f) : -1;
    jp_frames_free(&f);
    return rc;
}

int kn_publish_take(kn_channel *ch, const char *msg_type, json_t *parent, json_t *content)
{
    jp_frames f = {0}, ids = {0}, out = {0};
    char topic[96];
    int rc = -1;
    snprintf(topic, sizeof topic, "kernel.%s.%s", ch->k->session, msg_type);
    if (jp_frames_push_str(&ids, topic) != 0) {
        json_decref(content);
        goto done;
    }
    if (kn_encode_take(ch->k, &ids, msg_type, parent, content, &out) != 0) {
        kn_log("%s: could not encode %s", ch->name, msg_type);
        goto done;
    }
    if (jp_frames_push_str(&f, "M") || jp_frames_append(&f, &out))
        goto done;
    rc = push_send(ch, &f);
done:
    jp_frames_free(&f);
    jp_frames_free(&ids);
    jp_frames_free(&out);
    return rc;
}

int kn_publish_status(kn_channel *ch, json_t *parent, const char *state)
{
    return kn_publish_take(ch, "status", parent, json_pack("{s:s}", "execution_state", state));
}

int kn_publish_stream_text(kn_channel *ch, const char *parent_json, int fd, const char *text,
                           size_t len)
{
    jp_frames f = {0};
    int rc = -1;
    if (jp_frames_push_str(&f, "S") || jp_frames_push_str(&f, fd == 2 ? "2" : "1") ||
        jp_frames_push_str(&f, parent_json ? parent_json : "{}") || jp_frames_push(&f, text, len))
        goto done;
    rc = push_send(ch, &f);
done:
    jp_frames_free(&f);
    return rc;
}

int kn_publish_stream(kn_channel *ch, json_t *parent, int fd, const char *text, size_t len)
{
    char *ptext = parent ? json_dumps(parent, JSON_COMPACT) : NULL;
    int rc = kn_publish_stream_text(ch, ptext, fd, text, len);
    free(ptext);
    return rc;
}

int kn_publish_flush(kn_channel *ch)
{
    jp_frames f = {0};
    int rc = jp_frames_push_str(&f, "F") == 0 ? push_send(ch, &f) : -1;
    jp_frames_free(&f);
    return rc;
}

int kn_iopub_stop(void *push)
{
    return send_tag(push, "Q");
}
