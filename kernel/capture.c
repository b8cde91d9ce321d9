/* capture.c — the process's own fd 1 and fd 2 as IOPub `stream` output (kernel mode).
 *
 * Whatever writes to the file descriptors rather than through the engine's sink —
 * printf in a kernel on the simulator (libc, on OpenMP threads), device printf on a GPU
 * (flushed to fd 1 at synchronisation), warnings from OpenBLAS, libgomp, NVRTC, a child
 * process — would otherwise reach the terminal of the Jupyter server. kn_capture_start
 * points fd 1 and fd 2 at pipes and keeps close-on-exec duplicates of the originals:
 * kn_log writes to the saved stderr from then on, so the kernel's own diagnostics stay
 * out of notebooks.
 *
 * One reader thread polls both pipes and a wake pipe. What it reads goes to the IOPub
 * thread as stream text ("S") on the shell thread's PUSH, under a mutex the shell
 * thread takes for its own sends too (the socket is shared, never used by both at
 * once), so the two threads' messages reach IOPub in the order they were sent. It is
 * parented to the execute_request the
 * shell thread declared with kn_capture_begin. With no parent (before the first
 * execute_request, or while a `silent` one runs) the text goes to the saved original
 * fd instead. Between requests the last request's parent stays: late output (a GPU's
 * printf flushed after the cell, a background library thread) is published under the
 * cell that most likely caused it, as ipykernel does.
 *
 * Ordering: the shell thread calls kn_capture_sync before each output of its own and
 * before the execute_reply. It flushes libc's stdout and stderr; when anything may be
 * in flight (a pipe holds bytes, or the reader read something since the last sync) it
 * writes a byte to the wake pipe with a new sequence number and waits. The reader,
 * woken, drains both pipes to EAGAIN (everything written before the wake byte), has
 * sent it all on the shared PUSH, and acknowledges the sequence. So the captured text
 * is ahead of the shell thread's next message (and of the reply's idle) on IOPub.
 * The wait is bounded (SYNC_TIMEOUT_MS): a stuck pipe delays a cell, never hangs it.
 */
#define _GNU_SOURCE /* pipe2, F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kernel/kn_core.h"

#define READ_CHUNK ((size_t)64 << 10)  /* bytes per read, per stream message to IOPub */
#define PIPE_BYTES (1 << 20)           /* pipe capacity asked for (best effort) */
#define SYNC_TIMEOUT_MS 5000           /* longest wait for the reader in kn_capture_sync */

struct kn_capture {
    kn_kernel *k;
    kn_channel ch;     /* the shell's channel: its PUSH, shared under push_mu */
    pthread_mutex_t push_mu; /* serialises sends on the shell's PUSH */
    int saved[3];      /* saved[1], saved[2]: the original fd 1 and fd 2 (close-on-exec) */
    int rd[3];         /* rd[1], rd[2]: the read ends of the pipes now at fd 1 and 2 */
    int wake_r, wake_w; /* the shell thread wakes the reader through this pipe */
    pthread_t thread;

    pthread_mutex_t mu;
    pthread_cond_t acked_cv;
    char *parent;      /* mu: parent header (JSON text) of captured output; NULL: saved fd */
    char *last;        /* mu: the latest non-NULL parent, put back by kn_capture_end */
    uint64_t want;     /* mu: the latest sync sequence asked for */
    uint64_t acked;    /* mu: the latest sequence whose text the reader has sent */
    int quit;          /* mu: the reader is to drain and exit */
    atomic_int dirty;  /* the reader read something since the last sync */
};

/* Writes all of buf to fd (the saved originals); errors are ignored. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* Forwards len bytes read from stream fd (1 or 2). */
static void forward(kn_capture *c, int fd, const char *buf, size_t len)
{
    char *parent;
    pthread_mutex_lock(&c->mu);
    parent = c->parent ? strdup(c->parent) : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!parent || kn_publish_stream_text(&c->ch, parent, fd, buf, len) != 0)
        write_all(c->saved[fd], buf, len);
    free(parent);
}

/* Reads what pipe fd holds now, at most `rounds` chunks (0: until EAGAIN or EOF).
 * Returns -1 at EOF or on an error, else 0. */
static int drain(kn_capture *c, int fd, char *buf, int rounds)
{
    for (int i = 0; rounds == 0 || i < rounds; i++) {
        ssize_t n = read(c->rd[fd], buf, READ_CHUNK);
        if (n > 0) {
            forward(c, fd, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    return 0;
}

/* The reader has sent everything up to sync sequence seq. */
static void ack(kn_capture *c, uint64_t seq)
{
    pthread_mutex_lock(&c->mu);
    if (seq > c->acked)
        c->acked = seq;
    pthread_cond_broadcast(&c->acked_cv);
    pthread_mutex_unlock(&c->mu);
}

static void *reader_main(void *arg)
{
    kn_capture *c = arg;
    char *buf = malloc(READ_CHUNK);
    struct pollfd p[3];
    int open_fd[3] = {0, 1, 1};
    if (!buf) {
        kn_log("capture: out of memory: fd 1 and 2 are not read");
        goto done;
    }
    for (;;) {
        int quit, n;
        uint64_t want;
        p[0] = (struct pollfd){c->wake_r, POLLIN, 0};
        p[1] = (struct pollfd){open_fd[1] ? c->rd[1] : -1, POLLIN, 0};
        p[2] = (struct pollfd){open_fd[2] ? c->rd[2] : -1, POLLIN, 0};
        n = poll(p, 3, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            kn_log("capture: poll failed: %s", strerror(errno));
            break;
        }
        for (int fd = 1; fd <= 2; fd++)
            if (open_fd[fd] && (p[fd].revents & (POLLIN | POLLHUP | POLLERR))) {
                atomic_store(&c->dirty, 1);
                if (drain(c, fd, buf, 4) != 0)
                    open_fd[fd] = 0;
            }
        if (!(p[0].revents & POLLIN))
            continue;
        while (read(c->wake_r, buf, READ_CHUNK) > 0) {
        }
        pthread_mutex_lock(&c->mu);
        want = c->want;
        quit = c->quit;
        pthread_mutex_unlock(&c->mu);
        /* everything written before the wake byte is in the pipes now */
        atomic_store(&c->dirty, 0);
        for (int fd = 1; fd <= 2; fd++)
            if (open_fd[fd] && drain(c, fd, buf, 0) != 0)
                open_fd[fd] = 0;
        ack(c, want);
        if (quit)
            break;
    }
done:
    free(buf);
    ack(c, UINT64_MAX); /* nobody waits for a reader that is gone */
    return NULL;
}

/* A pipe whose write end becomes target_fd; returns its read end or -1. */
static int pipe_onto(int target_fd)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    fcntl(fds[1], F_SETPIPE_SZ, PIPE_BYTES); /* fewer stalls under bursts; may fail */
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0 || dup2(fds[1], target_fd) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    close(fds[1]); /* target_fd holds the write end (without close-on-exec) */
    return fds[0];
}

static void capture_free(kn_capture *c)
{
    for (int fd = 1; fd <= 2; fd++) {
        if (c->saved[fd] >= 0)
            close(c->saved[fd]);
        if (c->rd[fd] >= 0)
            close(c->rd[fd]);
    }
    if (c->wake_r >= 0)
        close(c->wake_r);
    if (c->wake_w >= 0)
        close(c->wake_w);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->push_mu);
    pthread_cond_destroy(&c->acked_cv);
    free(c->parent);
    free(c->last);
    free(c);
}

/* Puts the saved originals back on fd 1 and 2 (their pipes' write ends close). */
static void restore_fds(kn_capture *c)
{
    fflush(stdout);
    fflush(stderr);
    for (int fd = 1; fd <= 2; fd++)
        if (c->saved[fd] >= 0)
            dup2(c->saved[fd], fd);
    kn_log_set_fd(2);
}

int kn_capture_start(kn_kernel *k, kn_channel *shell)
{
    kn_capture *c = calloc(1, sizeof *c);
    int wake[2];
    pthread_condattr_t ca;
    if (!c) {
        kn_log("capture: out of memory");
        return -1;
    }
    c->k = k;
    c->ch = *shell;
    c->ch.name = "capture";
    c->ch.push_mu = &c->push_mu;
    pthread_mutex_init(&c->push_mu, NULL);
    c->saved[1] = c->saved[2] = c->rd[1] = c->rd[2] = c->wake_r = c->wake_w = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->acked_cv, &ca);
    pthread_condattr_destroy(&ca);
    fflush(stdout);
    fflush(stderr);
    c->saved[1] = fcntl(1, F_DUPFD_CLOEXEC, 3);
    c->saved[2] = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (c->saved[1] < 0 || c->saved[2] < 0 || pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        kn_log("capture: cannot set up: %s; fd 1 and 2 are not captured", strerror(errno));
        capture_free(c);
        return -1;
    }
    c->wake_r = wake[0];
    c->wake_w = wake[1];
    c->rd[1] = pipe_onto(1);
    c->rd[2] = c->rd[1] >= 0 ? pipe_onto(2) : -1;
    if (c->rd[2] < 0) {
        restore_fds(c);
        kn_log("capture: cannot redirect fd 1 and 2: %s", strerror(errno));
        capture_free(c);
        return -1;
    }
    kn_log_set_fd(c->saved[2]);
    /* line-buffered: a kernel's printf lines go out as they are written, not 4 KiB later */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pthread_create(&c->thread, NULL, reader_main, c) != 0) {
        restore_fds(c);
        kn_log("capture: cannot start the reader thread; fd 1 and 2 are not captured");
        capture_free(c);
        return -1;
    }
    k->capture = c;
    shell->push_mu = &c->push_mu; /* from now on the shell thread locks its sends too */
    return 0;
}

void kn_capture_begin(kn_kernel *k, json_t *parent)
{
    kn_capture *c = k->capture;
    char *text = parent ? json_dumps(parent, JSON_COMPACT) : NULL;
    if (!c) {
        free(text);
        return;
    }
    pthread_mutex_lock(&c->mu);
    free(c->parent);
    c->parent = text;
    if (text) {
        free(c->last);
        c->last = strdup(text); /* NULL on no memory: late output goes to the saved fd */
    }
    pthread_mutex_unlock(&c->mu);
}

void kn_capture_end(kn_kernel *k)
{
    kn_capture *c = k->capture;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    free(c->parent);
    c->parent = c->last ? strdup(c->last) : NULL;
    pthread_mutex_unlock(&c->mu);
}

/* Bytes waiting in pipe fd. */
static int pending(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : 1;
}

/* Asks the reader for a drain-and-ack round and waits for it (or the timeout). */
static int sync_round(kn_capture *c, int quit)
{
    struct timespec until;
    uint64_t seq;
    int rc = 0;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += SYNC_TIMEOUT_MS / 1000;
    until.tv_nsec += (long)(SYNC_TIMEOUT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    seq = ++c->want;
    if (quit)
        c->quit = 1;
    pthread_mutex_unlock(&c->mu);
    while (write(c->wake_w, "w", 1) < 0 && errno == EINTR) {
    } /* EAGAIN: the pipe is full of wake bytes, the reader will wake anyway */
    pthread_mutex_lock(&c->mu);
    while (c->acked < seq && rc == 0)
        rc = pthread_cond_timedwait(&c->acked_cv, &c->mu, &until);
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) {
        kn_log("capture: output of fd 1/2 not drained after %d ms; going on", SYNC_TIMEOUT_MS);
        return -1;
    }
    return 0;
}

int kn_capture_sync(kn_kernel *k)
{
    kn_capture *c = k->capture;
    fflush(stdout);
    fflush(stderr);
    if (!c)
        return 0;
    /* nothing in the pipes and nothing read since the last round: nothing in flight */
    if (!atomic_load(&c->dirty) && pending(c->rd[1]) == 0 && pending(c->rd[2]) == 0)
        return 0;
    return sync_round(c, 0);
}

void kn_capture_stop(kn_kernel *k, kn_channel *shell)
{
    kn_capture *c = k->capture;
    if (!c)
        return;
    sync_round(c, 1); /* the reader publishes what is left and exits */
    pthread_join(c->thread, NULL);
    restore_fds(c);
    shell->push_mu = NULL;
    k->capture = NULL;
    capture_free(c);
}
