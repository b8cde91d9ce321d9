/* control.c — the control thread and the heartbeat thread.
 *
 * Control serves its ROUTER with the same dispatcher as shell (busy/idle around every
 * request) but its own handler column: interrupt_request, shutdown_request and
 * kernel_info_request, answered while a cell runs on the shell thread. After a
 * shutdown it wakes the shell thread through KN_WAKE_INPROC and exits. The heartbeat
 * thread echoes every message back to its sender (a ROUTER proxied onto itself, as
 * ipykernel does), until the context is shut down.
 *
 * The control thread also watches the process that started the kernel, as ipykernel's
 * parent poller does: when JPY_PARENT_PID (set by jupyter_client) names a process, it
 * looks every PARENT_POLL_MS whether that process still exists (and, when it is this
 * process's parent, whether this process was reparented); if not, the kernel shuts
 * down as for a shutdown_request (the running cell interrupted), and SIGALRM ends the
 * process if that has not finished within PARENT_GRACE_S (a cell stuck where
 * interrupts do not reach).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "kernel/kn_core.h"

#define PARENT_POLL_MS 250 /* how often the parent is looked for */
#define PARENT_GRACE_S 10  /* then the process ends even if a cell does not stop */

void kn_parent_watch_init(kn_kernel *k)
{
    const char *env = getenv("JPY_PARENT_PID");
    char *end;
    long pid;
    k->parent_pid = 0;
    if (!env || !*env)
        return;
    pid = strtol(env, &end, 10);
    if (*end || pid <= 1) {
        kn_log("JPY_PARENT_PID=\"%s\" is not a process id: the parent is not watched", env);
        return;
    }
    k->parent_pid = (pid_t)pid;
    k->start_ppid = getppid();
}

/* 1 when the watched parent is gone: no such process, or (when it is this process's
 * own parent) this process was reparented, which also catches its pid being reused.
 * A launcher in between that exits (JPY_PARENT_PID is then not our parent) changes
 * nothing while the named process lives. */
static int parent_gone(const kn_kernel *k)
{
    if (!k->parent_pid)
        return 0;
    if (kill(k->parent_pid, 0) != 0 && errno == ESRCH)
        return 1;
    return k->start_ppid == k->parent_pid && getppid() != k->start_ppid;
}

static void *control_main(void *arg)
{
    kn_kernel *k = arg;
    kn_channel ch = {0};
    zmq_pollitem_t item;
    ch.k = k;
    ch.sock = k->control;
    ch.name = "control";
    ch.is_control = 1;
    ch.iopub_push = kn_iopub_push_new(k);
    ch.wake_push = zmq_socket(k->zctx, ZMQ_PUSH);
    if (ch.wake_push) {
        int linger = 0;
        zmq_setsockopt(ch.wake_push, ZMQ_LINGER, &linger, sizeof linger);
    }
    if (!ch.iopub_push || !ch.wake_push || zmq_connect(ch.wake_push, KN_WAKE_INPROC) != 0) {
        kn_log("control: cannot create its inproc sockets; control is not served");
        goto done;
    }
    item.socket = k->control;
    item.fd = 0;
    item.events = ZMQ_POLLIN;
    while (!atomic_load(&k->shutdown)) {
        jp_frames f = {0};
        int n = zmq_poll(&item, 1, k->parent_pid ? PARENT_POLL_MS : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM: the process is ending */
        }
        if (parent_gone(k)) {
            kn_log("the parent process %ld is gone: shutting down", (long)k->parent_pid);
            alarm(PARENT_GRACE_S); /* SIGALRM's default action ends the process */
            kn_request_shutdown(&ch);
            break;
        }
        if (n == 0)
            continue;
        if (jp_frames_recv(k->control, &f, ZMQ_DONTWAIT) != 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            break;
        }
        kn_dispatch(&ch, &f);
        jp_frames_free(&f);
    }
    if (atomic_load(&k->shutdown)) {
        /* sent after this thread's last IOPub message, so the IOPub thread, stopped by
         * the shell thread once woken, finds those already queued */
        jp_frames w = {0};
        if (jp_frames_push_str(&w, "wake") == 0)
            jp_frames_send(ch.wake_push, &w);
        jp_frames_free(&w);
    }
done:
    if (ch.iopub_push)
        zmq_close(ch.iopub_push);
    if (ch.wake_push)
        zmq_close(ch.wake_push);
    zmq_close(k->control);
    k->control = NULL;
    return NULL;
}

int kn_control_start(kn_kernel *k, pthread_t *thread)
{
    if (pthread_create(thread, NULL, control_main, k) != 0) {
        kn_log("cannot start the control thread");
        return -1;
    }
    return 0;
}

static void *heartbeat_main(void *arg)
{
    kn_kernel *k = arg;
    /* returns when the context is shut down (ETERM) */
    zmq_proxy(k->hb, k->hb, NULL);
    zmq_close(k->hb);
    k->hb = NULL;
    return NULL;
}

int kn_heartbeat_start(kn_kernel *k, pthread_t *thread)
{
    if (pthread_create(thread, NULL, heartbeat_main, k) != 0) {
        kn_log("cannot start the heartbeat thread");
        return -1;
    }
    return 0;
}
