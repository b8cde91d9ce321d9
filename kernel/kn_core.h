/* kn_core.h — what the kernel's files share: the kernel state, channels, the
 * dispatcher's helpers, IOPub publishing, the handler table and the history.
 *
 * Threads and ownership (see docs/kernel.md):
 *  - the shell thread (the one that called kn_kernel_main) owns the shell and stdin
 *    ROUTERs, the engine session, the history and the execution count;
 *  - the control thread owns the control ROUTER (interrupt, shutdown, kernel_info);
 *  - the heartbeat thread owns the heartbeat ROUTER and echoes whatever arrives;
 *  - the IOPub thread owns the XPUB socket: every other thread hands it messages
 *    through its own inproc PUSH socket; it greets subscribers with iopub_welcome and
 *    coalesces stream output;
 *  - the capture thread (capture.c) reads the pipes now at fd 1 and 2 and feeds what
 *    arrives to IOPub as stream text on the shell thread's PUSH, under a mutex that
 *    both take (the one socket used by two threads, always serialised by that lock).
 * Sockets are created by kn_kernel_main and handed to their owner before that thread
 * starts; no socket is ever used by two threads. Cross-thread state is atomic.
 */
#ifndef KILN_KN_CORE_H
#define KILN_KN_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/engine.h"
#include "protocol/jp_auth.h"
#include "protocol/jp_connection.h"
#include "protocol/jp_message.h"

#define KN_IOPUB_INPROC "inproc://kiln-iopub"
#define KN_WAKE_INPROC "inproc://kiln-wake"
/* IOPub subscriptions (iopub.c): a longer topic drops its sender. Real clients
 * subscribe once, to "". */
#define KN_IOPUB_TOPIC_MAX 255
#define KN_IOPUB_SUB_HWM 1 /* subscriptions queued per subscriber before libzmq stops reading */

typedef struct kn_history kn_history;
typedef struct kn_capture kn_capture;
typedef struct kn_debugger kn_debugger;

/* Shell requests received while a failed cell's reply was not yet sent. */
typedef struct kn_queue {
    jp_frames *v; /* the requests' frames, in arrival order */
    size_t n;     /* requests in v */
    size_t cap;   /* requests allocated */
    size_t head;  /* next request to serve */
} kn_queue;

typedef struct kn_kernel {
    void *zctx;                    /* the ZeroMQ context */
    jp_connection conn;            /* what the connection file said */
    jp_auth *auth;                 /* signing and replay history, shared (thread-safe) */
    char session[JP_UUID_LEN + 1]; /* this process's session id, new at every start */
    char username[64];             /* header username */
    size_t max_json;               /* largest JSON frame accepted (bytes) */
    eng_session *eng;              /* the language session: shell thread only */

    void *shell;      /* ROUTER: shell thread */
    void *stdin_sock; /* ROUTER: shell thread (input_request / input_reply) */
    void *control;    /* ROUTER: control thread */
    void *hb;         /* ROUTER: heartbeat thread (echo) */
    void *iopub;      /* XPUB: IOPub thread */
    void *iopub_pull; /* PULL (inproc): IOPub thread, fed by every other thread */
    void *wake_pull;  /* PULL (inproc): shell thread, woken by control on shutdown */
    char iopub_endpoint[512]; /* where iopub is bound (iopub.c binds it again) */

    atomic_int cell_running;      /* 1 while eng_execute runs on the shell thread */
    atomic_int interrupt_pending; /* an interrupt arrived while a cell ran */
    atomic_int shutdown;          /* 1 once a shutdown_request has been answered */
    atomic_int signals_ready;     /* 1 while the SIGINT handler serves shell_thread */
    pthread_t shell_thread;       /* the thread that runs cells (gets SIGINT) */
    pid_t parent_pid;             /* JPY_PARENT_PID, watched by control; 0: none */
    pid_t start_ppid;             /* getppid() at start: a change means reparented */

    int execution_count;  /* shell thread: cells run with store_history */
    int aborting;         /* shell thread: answer queued executes with an abort */
    kn_queue queued;      /* shell thread: requests queued behind a failed cell */
    kn_history *history;  /* shell thread: inputs and outputs of this session */
    kn_capture *capture;  /* fd 1 and 2 captured (capture.c); NULL when they are not */
    kn_debugger *dbg;     /* the debug protocol's state (debugger.c; its own lock) */
} kn_kernel;

/* One serving thread's view: the ROUTER it answers on and its IOPub feed. */
typedef struct kn_channel {
    kn_kernel *k;      /* the kernel */
    void *sock;        /* the ROUTER this thread serves (shell or control) */
    void *iopub_push;  /* this thread's PUSH to the IOPub thread */
    pthread_mutex_t *push_mu; /* non-NULL: iopub_push is shared with the capture thread */
    void *wake_push;   /* control thread only: PUSH to the shell thread's wake socket */
    const char *name;  /* "shell" or "control", for logs and the handler table */
    int is_control;    /* 1 on the control thread */
} kn_channel;

/* ---- kernel.c --------------------------------------------------------------------- */
/* A line on the kernel's log fd (stderr; the original stderr once fd 2 is captured),
 * prefixed "kiln: ", written with one write(2). */
void kn_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Where kn_log writes (capture.c points it at the saved original stderr). */
void kn_log_set_fd(int fd);
/* Decodes one request and runs it through the handler table, with busy and idle on
 * IOPub around it. Bad messages are logged and dropped. Frees nothing of frames. */
void kn_dispatch(kn_channel *ch, const jp_frames *frames);
/* Sends a reply to req on ch->sock, routed by req's identities. Steals content. */
int kn_reply_take(kn_channel *ch, const jp_msg *req, const char *reply_type, json_t *content);
/* Encodes a message for idents with a new header; steals content. 0 or -1. */
int kn_encode_take(kn_kernel *k, const jp_frames *idents, const char *msg_type,
                  json_t *parent, json_t *content, jp_frames *out);
/* Marks the kernel as shutting down and interrupts a running cell. */
void kn_request_shutdown(kn_channel *ch);
/* Interrupts the running cell, if any (safe from any thread). */
void kn_interrupt(kn_kernel *k);

/* ---- iopub.c ---------------------------------------------------------------------- */
/* Starts the IOPub thread (owner of k->iopub and k->iopub_pull). */
int kn_iopub_start(kn_kernel *k, pthread_t *thread);
/* A new PUSH socket connected to the IOPub thread, for the calling thread. */
void *kn_iopub_push_new(kn_kernel *k);
/* Publishes msg_type with parent (may be NULL: {}); steals content. */
int kn_publish_take(kn_channel *ch, const char *msg_type, json_t *parent, json_t *content);
/* Publishes status busy/idle parented to parent. */
int kn_publish_status(kn_channel *ch, json_t *parent, const char *state);
/* Hands stream text (fd 1 or 2) to the IOPub thread, which coalesces it. */
int kn_publish_stream(kn_channel *ch, json_t *parent, int fd, const char *text, size_t len);
/* The same with the parent header as JSON text. */
int kn_publish_stream_text(kn_channel *ch, const char *parent_json, int fd, const char *text,
                           size_t len);
/* Asks the IOPub thread to send the stream text it holds now. */
int kn_publish_flush(kn_channel *ch);
/* Asks the IOPub thread to drain what it was sent and exit. */
int kn_iopub_stop(void *push);

/* ---- capture.c -------------------------------------------------------------------- */
/* Points fd 1 and 2 at pipes read by a new thread that publishes what arrives as stream
 * output on shell's PUSH (shell->push_mu is set); kn_log moves to the saved original
 * stderr. 0, or -1 with nothing changed. Call with IOPub running, SIGINT blocked. */
int kn_capture_start(kn_kernel *k, kn_channel *shell);
/* Shell thread: captured output is parented to parent from now on (a copy is kept);
 * NULL: it goes to the original fd 1/2 (before any request, silent requests). */
void kn_capture_begin(kn_kernel *k, json_t *parent);
/* Shell thread, after a request: output arriving between requests goes to the latest
 * parent given to kn_capture_begin (NULL: to the original fds). */
void kn_capture_end(kn_kernel *k);
/* Shell thread: flushes libc's stdout/stderr and waits (bounded) until everything
 * written to fd 1/2 so far has reached the IOPub thread. 0, or -1 after the timeout. */
int kn_capture_sync(kn_kernel *k);
/* Publishes what is left, stops the reader, puts the original fd 1 and 2 back and
 * unshares shell's PUSH. */
void kn_capture_stop(kn_kernel *k, kn_channel *shell);

/* ---- handlers.c ------------------------------------------------------------------- */
typedef void (*kn_handler)(kn_channel *ch, const jp_msg *req);
/* The handler of msg_type on that channel, or NULL when there is none. */
kn_handler kn_find_handler(const char *msg_type, int is_control);

/* ---- execute.c -------------------------------------------------------------------- */
void kn_handle_execute(kn_channel *ch, const jp_msg *req);
/* Answers an execute_request with an error status without running it. */
void kn_abort_execute(kn_channel *ch, const jp_msg *req);
/* After a failed cell with stop_on_error, before its reply: takes every request already
 * waiting on the shell socket into k->queued and sets k->aborting, so that the shell
 * loop serves them next, aborting the executes among them. */
void kn_abort_queued(kn_kernel *k);

/* ---- history.c -------------------------------------------------------------------- */
kn_history *kn_history_new(void);
void kn_history_free(kn_history *h);
/* Records cell `line` (its execution count) with its input and output (may be NULL). */
int kn_history_add(kn_history *h, int line, const char *input, const char *output);
/* Sets the output of the latest entry when its line is `line`. */
int kn_history_set_output(kn_history *h, int line, const char *output);
/* Answers a history_request's content: returns the "history" array (new reference). */
json_t *kn_history_query(kn_history *h, json_t *request);

/* ---- debugger.c (docs/debugger.md) ------------------------------------------------ */
int kn_debug_init(kn_kernel *k);
void kn_debug_free(kn_kernel *k);
/* control: a debug_request (DAP) answered with a debug_reply */
void kn_debug_request(kn_channel *ch, const jp_msg *req);
/* shell thread, around a cell: the cell's source path, events parented to req */
void kn_debug_cell_begin(kn_channel *ch, const jp_msg *req, const char *code);
void kn_debug_cell_end(kn_kernel *k);
/* shell thread, idle: serves a request the control thread left for it */
void kn_debug_serve(kn_kernel *k);
/* any thread: a stopped cell looks again at the interrupt and shutdown flags */
void kn_debug_wake(kn_kernel *k);

/* ---- control.c -------------------------------------------------------------------- */
/* Reads JPY_PARENT_PID: the control thread then shuts the kernel down when that
 * process (or the one that started this one) is gone. */
void kn_parent_watch_init(kn_kernel *k);
int kn_control_start(kn_kernel *k, pthread_t *thread);
int kn_heartbeat_start(kn_kernel *k, pthread_t *thread);

#endif
