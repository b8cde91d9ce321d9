/* debugger.c — the Jupyter debug protocol: DAP requests in debug_request on the
 * control channel, their responses in debug_reply, DAP events in debug_event on IOPub
 * (docs/debugger.md).
 *
 * Threads. The control thread receives every debug_request. What needs no engine
 * state (initialize, attach, breakpoints, dumpCell, source, pause, the resume
 * commands) it answers itself. What reads or runs the session (stackTrace, scopes,
 * variables, evaluate, inspectVariables, richInspectVariables, copyToGlobals) must
 * run on the shell thread, the session's only thread: the control thread leaves the
 * request in a one-slot mailbox and waits (bounded) for the answer. The shell thread
 * serves the mailbox while a cell is stopped (the engine's `stopped` callback, which
 * loops here until continue/step, an interrupt, a shutdown or a detach) and while it
 * is idle (woken through KN_WAKE_INPROC). While a cell runs and is not stopped, such
 * requests are answered with an error at once.
 *
 * Cells and paths: each cell's code gets the path TMP/kiln_PID/HASH.kn where HASH is
 * Murmur2 (x86, 32 bits) of the code's UTF-8 bytes with a fixed seed; debugInfo
 * gives the method, seed, prefix and suffix so that JupyterLab computes the same path
 * for a cell before it runs, and sets breakpoints on it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <zmq.h>

#include "kernel/kn_core.h"

#define HASH_SEED 0xc70f6907u /* as ipykernel's, so both kernels' paths look alike */
#define ANSWER_WAIT_S 15       /* the control thread's wait for the shell thread (KILN_DEBUG_WAIT_S) */
#define STOP_POLL_MS 50        /* a stopped cell looks for an interrupt this often */

enum { ST_IDLE, ST_RUNNING, ST_STOPPED };

struct kn_debugger {
    pthread_mutex_t mu;     /* guards everything below */
    pthread_cond_t cv;      /* mailbox, answers, resume */
    int attached;           /* attach seen, no disconnect since */
    int state;              /* ST_*: what the shell thread is doing */
    json_t *pending;        /* a request for the shell thread (owned) */
    json_t *answer;         /* its answer: {success, message?, body?} (owned) */
    long pending_id;        /* the id of the latest request put in the mailbox */
    long answer_id;         /* the id of the request `answer` answers */
    int resume;             /* -1 none, else an eng_dbg_action for the stopped cell */
    json_t *bps;            /* {path: [breakpoint...]}: what debugInfo reports */
    char tmpdir[256];       /* TMP/kiln_PID */
    kn_channel *shell;      /* the shell channel (events of a stop are sent from it) */
    json_t *parent;         /* the running execute_request's header (owned) */
    atomic_int seq;         /* DAP sequence numbers of our messages */
    char stop_reason[32];   /* the current (or last) stop's reason */
    char stop_desc[1200];   /* and description (exceptionInfo) */
};

/* ---- Murmur2 and paths ---------------------------------------------------------- */

static uint32_t murmur2(const unsigned char *p, size_t len, uint32_t seed)
{
    const uint32_t m = 0x5bd1e995u;
    uint32_t h = seed ^ (uint32_t)len;
    while (len >= 4) {
        uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
        p += 4;
        len -= 4;
    }
    switch (len) {
    case 3: h ^= (uint32_t)p[2] << 16; /* fall through */
    case 2: h ^= (uint32_t)p[1] << 8; /* fall through */
    case 1: h ^= p[0]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

static void cell_path(kn_debugger *d, const char *code, char *out, size_t n)
{
    snprintf(out, n, "%s/%u.kn", d->tmpdir, murmur2((const unsigned char *)code, strlen(code), HASH_SEED));
}

/* writes code to its path (the folder made first); 0 or -1 */
static int dump_code(kn_debugger *d, const char *code, char *path, size_t n)
{
    FILE *f;
    cell_path(d, code, path, n);
    if (mkdir(d->tmpdir, 0700) != 0 && errno != EEXIST)
        return -1;
    f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(code, f);
    return fclose(f) == 0 ? 0 : -1;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (64l << 20) && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        size_t got = fread(buf, 1, (size_t)n, f);
        buf[got] = '\0';
    }
    fclose(f);
    return buf;
}

/* ---- setup ------------------------------------------------------------------------ */

int kn_debug_init(kn_kernel *k)
{
    kn_debugger *d = calloc(1, sizeof *d);
    const char *tmp = getenv("TMPDIR");
    if (!d)
        return -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->resume = -1;
    d->bps = json_object();
    snprintf(d->tmpdir, sizeof d->tmpdir, "%s/kiln_%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    k->dbg = d;
    return d->bps ? 0 : -1;
}

void kn_debug_free(kn_kernel *k)
{
    kn_debugger *d = k->dbg;
    DIR *dir;
    if (!d)
        return;
    dir = opendir(d->tmpdir); /* the dumped cells go with the process */
    if (dir) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(dir)) != NULL) {
            size_t n = strlen(e->d_name);
            if (n > 3 && strcmp(e->d_name + n - 3, ".kn") == 0) {
                snprintf(p, sizeof p, "%s/%s", d->tmpdir, e->d_name);
                unlink(p);
            }
        }
        closedir(dir);
        rmdir(d->tmpdir);
    }
    json_decref(d->pending);
    json_decref(d->answer);
    json_decref(d->bps);
    json_decref(d->parent);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
    k->dbg = NULL;
}

void kn_debug_wake(kn_kernel *k)
{
    if (!k->dbg)
        return;
    pthread_mutex_lock(&k->dbg->mu);
    pthread_cond_broadcast(&k->dbg->cv);
    pthread_mutex_unlock(&k->dbg->mu);
}

/* ---- messages ----------------------------------------------------------------------- */

static void send_event(kn_channel *ch, kn_debugger *d, json_t *parent, const char *event, json_t *body)
{
    kn_publish_take(ch, "debug_event", parent,
                    json_pack("{s:i, s:s, s:s, s:o}", "seq", atomic_fetch_add(&d->seq, 1) + 1, "type", "event",
                              "event", event, "body", body ? body : json_object()));
}

static json_t *ok_answer(json_t *body)
{
    return json_pack("{s:b, s:o}", "success", 1, "body", body ? body : json_object());
}

static json_t *err_answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *err_answer(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:s, s:{}}", "success", 0, "message", msg, "body");
}

static void reply(kn_channel *ch, const jp_msg *req, kn_debugger *d, json_t *answer)
{
    json_t *dap = req->content;
    json_t *out = json_pack("{s:i, s:s, s:O, s:s}", "seq", atomic_fetch_add(&d->seq, 1) + 1, "type", "response",
                            "request_seq", json_object_get(dap, "seq") ? json_object_get(dap, "seq") : json_integer(0),
                            "command", json_string_value(json_object_get(dap, "command")) ?: "");
    if (out && answer)
        json_object_update(out, answer);
    json_decref(answer);
    kn_reply_take(ch, req, "debug_reply", out);
}

static json_t *args_of(json_t *req)
{
    json_t *a = json_object_get(req, "arguments");
    return json_is_object(a) ? a : NULL;
}

static const char *arg_str(json_t *req, const char *name)
{
    return json_string_value(json_object_get(args_of(req), name));
}

static long arg_int(json_t *req, const char *name, long def)
{
    json_t *v = json_object_get(args_of(req), name);
    return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

/* ---- what runs on the shell thread ---------------------------------------------------- */

static json_t *var_json(const eng_dbg_var *v)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i}", "name", v->name ? v->name : "", "value", v->value ? v->value : "",
                          "type", v->type ? v->type : "", "variablesReference", v->ref);
    if (o && v->ref > 0)
        json_object_set_new(o, "namedVariables", json_integer(v->nchildren));
    return o;
}

static json_t *vars_json(kn_kernel *k, int ref, int start, int count)
{
    eng_dbg_var *v;
    int n;
    json_t *arr;
    if (eng_debug_vars(k->eng, ref, start, count, &v, &n) != 0)
        return NULL;
    arr = json_array();
    for (int i = 0; arr && i < n; i++)
        json_array_append_new(arr, var_json(&v[i]));
    eng_debug_vars_free(v, n);
    free(v);
    return arr;
}

static int is_name(const char *s)
{
    if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return 0;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

static void rich_show(void *user, const eng_bundle *b)
{
    json_t *data = user;
    for (int i = 0; i < b->n; i++)
        json_object_set_new(data, b->items[i].mime, json_string(b->items[i].data));
}

/* a string argument that holds no NUL character (code is run as C text) */
static int has_nul(json_t *req, const char *name)
{
    json_t *v = json_object_get(args_of(req), name);
    return json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v);
}

static json_t *serve(kn_kernel *k, json_t *req)
{
    const char *cmd = json_string_value(json_object_get(req, "command"));
    char err[1024] = "";
    eng_dbg_var v;
    if (has_nul(req, "expression") || has_nul(req, "variableName"))
        return err_answer("%s: the code holds a NUL character", cmd);
    if (!strcmp(cmd, "stackTrace")) {
        eng_dbg_frame fr[256];
        int n = eng_debug_stack(k->eng, fr, 256), start = (int)arg_int(req, "startFrame", 0);
        int levels = (int)arg_int(req, "levels", 0), shown = n < 256 ? n : 256;
        if (start < 0)
            start = 0;
        json_t *frames = json_array();
        for (int i = start; i < shown && (levels <= 0 || i < start + levels); i++) {
            const char *slash = strrchr(fr[i].path, '/');
            json_array_append_new(frames, json_pack("{s:i, s:s, s:i, s:i, s:{s:s, s:s}}", "id", fr[i].id, "name",
                                                    fr[i].name, "line", fr[i].line, "column", fr[i].col, "source",
                                                    "name", slash ? slash + 1 : fr[i].path, "path", fr[i].path));
        }
        return ok_answer(json_pack("{s:o, s:i}", "stackFrames", frames, "totalFrames", n));
    }
    if (!strcmp(cmd, "scopes")) {
        int frame = (int)arg_int(req, "frameId", 0);
        int locals = eng_debug_scope(k->eng, frame, 0), globals = eng_debug_scope(k->eng, 0, 1);
        json_t *scopes = json_array();
        if (locals)
            json_array_append_new(scopes, json_pack("{s:s, s:i, s:b, s:s}", "name", "Locals", "variablesReference",
                                                    locals, "expensive", 0, "presentationHint", "locals"));
        json_array_append_new(scopes, json_pack("{s:s, s:i, s:b}", "name", "Globals", "variablesReference", globals,
                                                "expensive", 0));
        return ok_answer(json_pack("{s:o}", "scopes", scopes));
    }
    if (!strcmp(cmd, "variables")) {
        json_t *vars = vars_json(k, (int)arg_int(req, "variablesReference", 0), (int)arg_int(req, "start", 0),
                                 (int)arg_int(req, "count", 0));
        if (!vars)
            return err_answer("no variables with that reference (they last until the cell continues)");
        return ok_answer(json_pack("{s:o}", "variables", vars));
    }
    if (!strcmp(cmd, "inspectVariables")) {
        json_t *vars = vars_json(k, eng_debug_scope(k->eng, 0, 1), 0, 0);
        return vars ? ok_answer(json_pack("{s:o}", "variables", vars)) : err_answer("cannot list the globals");
    }
    if (!strcmp(cmd, "evaluate")) {
        const char *expr = arg_str(req, "expression");
        json_t *body;
        if (!expr)
            return err_answer("evaluate needs an expression");
        if (eng_debug_evaluate(k->eng, (int)arg_int(req, "frameId", 0), expr, &v, err, sizeof err))
            return err_answer("%s", err);
        body = json_pack("{s:s, s:s, s:i}", "result", v.value ? v.value : "", "type", v.type ? v.type : "",
                         "variablesReference", v.ref);
        eng_debug_vars_free(&v, 1);
        return ok_answer(body);
    }
    if (!strcmp(cmd, "richInspectVariables")) {
        const char *name = arg_str(req, "variableName");
        json_t *data = json_object();
        if (!name)
            return err_answer("richInspectVariables needs a variableName");
        if (eng_debug_rich(k->eng, (int)arg_int(req, "frameId", 0), name, rich_show, data, err, sizeof err)) {
            json_decref(data);
            return err_answer("%s", err);
        }
        return ok_answer(json_pack("{s:o, s:{}}", "data", data, "metadata"));
    }
    if (!strcmp(cmd, "copyToGlobals")) {
        const char *src = arg_str(req, "srcVariableName"), *dst = arg_str(req, "dstVariableName");
        char code[600];
        if (!is_name(src) || !is_name(dst) || strlen(src) > 250 || strlen(dst) > 250)
            return err_answer("copyToGlobals needs srcVariableName and dstVariableName, each a name");
        snprintf(code, sizeof code, "auto %s = %s;", dst, src);
        if (eng_debug_evaluate(k->eng, (int)arg_int(req, "srcFrameId", 0), code, &v, err, sizeof err))
            return err_answer("%s", err);
        eng_debug_vars_free(&v, 1);
        return ok_answer(NULL);
    }
    return err_answer("%s is not served on the shell thread", cmd);
}

/* Serves the mailbox while there is a request in it; called with d->mu held. idle: no
 * cell runs, so the request counts as one for interrupts (an evaluation that loops
 * can be interrupted). */
static void serve_pending_locked(kn_kernel *k, int idle)
{
    kn_debugger *d = k->dbg;
    while (d->pending) {
        json_t *req = d->pending, *answer;
        long id = d->pending_id;
        d->pending = NULL;
        pthread_mutex_unlock(&d->mu);
        if (idle) {
            atomic_store(&k->interrupt_pending, 0);
            atomic_store(&k->cell_running, 1);
        }
        answer = serve(k, req);
        if (idle)
            atomic_store(&k->cell_running, 0);
        json_decref(req);
        pthread_mutex_lock(&d->mu);
        json_decref(d->answer);
        d->answer = answer ? answer : err_answer("out of memory");
        d->answer_id = id;
        pthread_cond_broadcast(&d->cv);
    }
}

void kn_debug_serve(kn_kernel *k)
{
    if (!k->dbg)
        return;
    pthread_mutex_lock(&k->dbg->mu);
    serve_pending_locked(k, 1);
    pthread_mutex_unlock(&k->dbg->mu);
}

/* the engine's stop callback: on the shell thread, inside the running cell */
static eng_dbg_action on_stopped(void *user, const char *reason, const char *description)
{
    kn_kernel *k = user;
    kn_debugger *d = k->dbg;
    eng_dbg_action a = ENG_DBG_CONTINUE;
    /* what the cell wrote so far, before the stop (the capture's sync is the shell
     * thread's; a simulator worker reporting a stop while the shell thread waits for it
     * skips it) */
    if (pthread_equal(pthread_self(), k->shell_thread))
        kn_capture_sync(k);
    pthread_mutex_lock(&d->mu);
    if (!d->attached || !d->shell) {
        pthread_mutex_unlock(&d->mu);
        return ENG_DBG_CONTINUE;
    }
    d->state = ST_STOPPED;
    d->resume = -1;
    snprintf(d->stop_reason, sizeof d->stop_reason, "%s", reason);
    snprintf(d->stop_desc, sizeof d->stop_desc, "%s", description);
    pthread_mutex_unlock(&d->mu);
    send_event(d->shell, d, d->parent, "stopped",
               json_pack("{s:s, s:s, s:i, s:b, s:b}", "reason", reason, "description", description, "threadId", 1,
                         "allThreadsStopped", 1, "preserveFocusHint", 0));
    pthread_mutex_lock(&d->mu);
    for (;;) {
        struct timespec until;
        if (d->pending) {
            serve_pending_locked(k, 0);
            continue;
        }
        if (d->resume >= 0) {
            a = (eng_dbg_action)d->resume;
            break;
        }
        if (atomic_load(&k->interrupt_pending) || atomic_load(&k->shutdown)) {
            a = ENG_DBG_ABORT; /* the cell ends with Interrupted, the session's state kept */
            break;
        }
        if (!d->attached) {
            a = ENG_DBG_CONTINUE;
            break;
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += STOP_POLL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->cv, &d->mu, &until);
    }
    d->resume = -1;
    d->state = ST_RUNNING;
    pthread_mutex_unlock(&d->mu);
    send_event(d->shell, d, d->parent, "continued", json_pack("{s:i, s:b}", "threadId", 1, "allThreadsContinued", 1));
    return a;
}

void kn_debug_cell_begin(kn_channel *ch, const jp_msg *req, const char *code)
{
    kn_kernel *k = ch->k;
    kn_debugger *d = k->dbg;
    char path[600];
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    serve_pending_locked(k, 1); /* a request that arrived while idle goes first */
    d->state = ST_RUNNING;
    d->shell = ch;
    json_decref(d->parent);
    d->parent = json_incref(req->header);
    if (d->attached)
        dump_code(d, code, path, sizeof path); /* `source` finds every cell that ran */
    else
        cell_path(d, code, path, sizeof path);
    pthread_mutex_unlock(&d->mu);
    eng_debug_set_next_path(k->eng, path);
}

void kn_debug_cell_end(kn_kernel *k)
{
    kn_debugger *d = k->dbg;
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->state = ST_IDLE;
    serve_pending_locked(k, 1);
    pthread_mutex_unlock(&d->mu);
}

/* ---- the control thread's side --------------------------------------------------------- */

/* hands req to the shell thread and waits for its answer */
static json_t *forward(kn_channel *ch, kn_debugger *d, json_t *req)
{
    struct timespec until;
    json_t *answer = NULL;
    jp_frames w = {0};
    const char *env = getenv("KILN_DEBUG_WAIT_S");
    int wait_s = env && atoi(env) > 0 ? atoi(env) : ANSWER_WAIT_S;
    long id;
    pthread_mutex_lock(&d->mu);
    if (d->state == ST_RUNNING) {
        pthread_mutex_unlock(&d->mu);
        return err_answer("the kernel is running a cell: %s is answered while it is stopped or idle",
                          json_string_value(json_object_get(req, "command")));
    }
    json_decref(d->pending);
    d->pending = json_incref(req);
    id = ++d->pending_id;
    if (d->state == ST_IDLE && jp_frames_push_str(&w, "debug") == 0)
        jp_frames_send(ch->wake_push, &w); /* the shell loop serves the mailbox */
    jp_frames_free(&w);
    pthread_cond_broadcast(&d->cv);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_s;
    while (!(d->answer && d->answer_id == id))
        if (pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT)
            break;
    if (d->answer && d->answer_id == id) {
        answer = d->answer;
        d->answer = NULL;
    } else if (d->pending_id == id && d->pending) {
        json_decref(d->pending); /* not taken yet: withdrawn (a late answer is dropped) */
        d->pending = NULL;
    }
    pthread_mutex_unlock(&d->mu);
    return answer ? answer
                  : err_answer("no answer within %d s (an evaluation still running? interrupt the kernel)", wait_s);
}

static json_t *set_breakpoints(kn_kernel *k, kn_debugger *d, json_t *req)
{
    json_t *src = json_object_get(args_of(req), "source"), *want = json_object_get(args_of(req), "breakpoints");
    const char *path = json_string_value(json_object_get(src, "path"));
    json_t *out = json_array(), *kept = json_array(), *b;
    eng_dbg_bp *bps;
    char *code;
    size_t i, n = json_array_size(want);
    if (!path)
        return err_answer("setBreakpoints needs arguments.source.path");
    bps = calloc(n ? n : 1, sizeof *bps);
    if (!bps || !out || !kept)
        return err_answer("out of memory");
    code = read_file(path);
    json_array_foreach(want, i, b) {
        int line = (int)json_integer_value(json_object_get(b, "line"));
        int at = code && line > 0 ? eng_debug_statement_line(code, line) : -1;
        int verified = at != 0; /* -1: the source is unknown or does not parse: kept as asked */
        bps[i].line = at > 0 ? at : line;
        bps[i].condition = json_string_value(json_object_get(b, "condition"));
        bps[i].hit_condition = json_string_value(json_object_get(b, "hitCondition"));
        bps[i].log_message = json_string_value(json_object_get(b, "logMessage"));
        json_array_append_new(out, json_pack("{s:b, s:i, s:{s:s}, s:i}", "verified", verified, "line", bps[i].line,
                                             "source", "path", path, "id", (int)(i + 1)));
        if (!verified)
            json_object_set_new(json_array_get(out, i), "message",
                                json_string("no statement on or after this line"));
        json_array_append_new(kept, json_pack("{s:i}", "line", bps[i].line));
        if (bps[i].condition)
            json_object_set_new(json_array_get(kept, i), "condition", json_string(bps[i].condition));
        if (bps[i].hit_condition)
            json_object_set_new(json_array_get(kept, i), "hitCondition", json_string(bps[i].hit_condition));
        if (bps[i].log_message)
            json_object_set_new(json_array_get(kept, i), "logMessage", json_string(bps[i].log_message));
    }
    eng_debug_set_breakpoints(k->eng, path, bps, (int)n);
    pthread_mutex_lock(&d->mu);
    if (n)
        json_object_set(d->bps, path, kept);
    else
        json_object_del(d->bps, path);
    pthread_mutex_unlock(&d->mu);
    json_decref(kept);
    free(bps);
    free(code);
    return ok_answer(json_pack("{s:o}", "breakpoints", out));
}

static json_t *debug_info(kn_debugger *d)
{
    json_t *bps = json_array(), *v;
    const char *path;
    char prefix[300];
    pthread_mutex_lock(&d->mu);
    json_object_foreach(d->bps, path, v)
        json_array_append_new(bps, json_pack("{s:s, s:O}", "source", path, "breakpoints", v));
    snprintf(prefix, sizeof prefix, "%s/", d->tmpdir);
    json_t *body = json_pack("{s:b, s:s, s:I, s:s, s:s, s:o, s:[], s:b, s:[], s:b}", "isStarted", d->attached,
                             "hashMethod", "Murmur2", "hashSeed", (json_int_t)HASH_SEED, "tmpFilePrefix", prefix,
                             "tmpFileSuffix", ".kn", "breakpoints", bps, "stoppedThreads", "richRendering", 1,
                             "exceptionPaths", "copyToGlobals", 1);
    if (body && d->state == ST_STOPPED)
        json_array_append_new(json_object_get(body, "stoppedThreads"), json_integer(1));
    pthread_mutex_unlock(&d->mu);
    return ok_answer(body);
}

static const eng_dbg_host *host_of(kn_kernel *k)
{
    static eng_dbg_host host; /* one kernel per process */
    host.user = k;
    host.stopped = on_stopped;
    return &host;
}

/* continue, next, stepIn, stepOut: resume the stopped cell */
static json_t *resume(kn_debugger *d, eng_dbg_action a, const char *cmd)
{
    pthread_mutex_lock(&d->mu);
    if (d->state != ST_STOPPED) {
        pthread_mutex_unlock(&d->mu);
        return err_answer("%s: the kernel is not stopped", cmd);
    }
    d->resume = (int)a;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return ok_answer(a == ENG_DBG_CONTINUE ? json_pack("{s:b}", "allThreadsContinued", 1) : NULL);
}

void kn_debug_request(kn_channel *ch, const jp_msg *req)
{
    kn_kernel *k = ch->k;
    kn_debugger *d = k->dbg;
    json_t *dap = req->content, *answer = NULL;
    const char *cmd = json_string_value(json_object_get(dap, "command"));
    int initialized = 0, terminated = 0;
    if (!d || !cmd) {
        if (d)
            reply(ch, req, d, err_answer("a debug_request needs a DAP request with a command"));
        return;
    }
    if (!strcmp(cmd, "initialize")) {
        answer = ok_answer(json_pack(
            "{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:[]}", "supportsConfigurationDoneRequest", 1,
            "supportsLogPoints", 1,
            "supportsConditionalBreakpoints", 1, "supportsHitConditionalBreakpoints", 1,
            "supportsEvaluateForHovers", 1, "supportsSetVariable", 0, "supportsStepBack", 0,
            "supportsDelayedStackTraceLoading", 0, "supportsExceptionInfoRequest", 1, "exceptionBreakpointFilters"));
        json_array_append_new(json_object_get(json_object_get(answer, "body"), "exceptionBreakpointFilters"),
                              json_pack("{s:s, s:s, s:s, s:b}", "filter", "raised", "label", "Errors",
                                        "description", "Stop where an error is raised, before it ends the cell",
                                        "default", 0));
        initialized = 1;
    } else if (!strcmp(cmd, "attach")) {
        pthread_mutex_lock(&d->mu);
        d->attached = 1;
        pthread_mutex_unlock(&d->mu);
        eng_debug_attach(k->eng, host_of(k));
        answer = ok_answer(NULL);
    } else if (!strcmp(cmd, "disconnect")) {
        eng_debug_attach(k->eng, NULL); /* breakpoints go; a stopped cell goes on */
        pthread_mutex_lock(&d->mu);
        d->attached = 0;
        json_object_clear(d->bps);
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        answer = ok_answer(NULL);
        terminated = 1;
    } else if (!strcmp(cmd, "debugInfo")) {
        answer = debug_info(d);
    } else if (!strcmp(cmd, "dumpCell")) {
        const char *code = arg_str(dap, "code");
        char path[600];
        if (!code)
            answer = err_answer("dumpCell needs arguments.code");
        else if (dump_code(d, code, path, sizeof path) != 0)
            answer = err_answer("cannot write %s: %s", path, strerror(errno));
        else
            answer = ok_answer(json_pack("{s:s}", "sourcePath", path));
    } else if (!strcmp(cmd, "setBreakpoints")) {
        answer = set_breakpoints(k, d, dap);
    } else if (!strcmp(cmd, "setExceptionBreakpoints")) {
        json_t *filters = json_object_get(args_of(dap), "filters"), *f, *out = json_array();
        size_t i;
        int on = 0;
        json_array_foreach(filters, i, f) {
            int known = json_is_string(f) && !strcmp(json_string_value(f), "raised");
            on |= known;
            json_array_append_new(out, json_pack("{s:b}", "verified", known));
        }
        eng_debug_stop_on_errors(k->eng, on);
        answer = ok_answer(json_pack("{s:o}", "breakpoints", out));
    } else if (!strcmp(cmd, "exceptionInfo")) {
        pthread_mutex_lock(&d->mu);
        if (d->state == ST_STOPPED && !strcmp(d->stop_reason, "exception")) {
            size_t n = strcspn(d->stop_desc, ":");
            answer = ok_answer(json_pack("{s:s#, s:s, s:s, s:{s:s, s:s#}}", "exceptionId", d->stop_desc, (int)n,
                                         "description", d->stop_desc, "breakMode", "always", "details",
                                         "message", d->stop_desc, "typeName", d->stop_desc, (int)n));
        } else
            answer = err_answer("exceptionInfo: the kernel is not stopped at an error");
        pthread_mutex_unlock(&d->mu);
    } else if (!strcmp(cmd, "configurationDone")) {
        answer = ok_answer(NULL);
    } else if (!strcmp(cmd, "threads")) {
        answer = ok_answer(json_pack("{s:[{s:i, s:s}]}", "threads", "id", 1, "name", "Kiln cell"));
    } else if (!strcmp(cmd, "pause")) {
        eng_debug_pause(k->eng);
        answer = ok_answer(NULL);
    } else if (!strcmp(cmd, "continue")) {
        answer = resume(d, ENG_DBG_CONTINUE, cmd);
    } else if (!strcmp(cmd, "next")) {
        answer = resume(d, ENG_DBG_NEXT, cmd);
    } else if (!strcmp(cmd, "stepIn")) {
        answer = resume(d, ENG_DBG_STEP_IN, cmd);
    } else if (!strcmp(cmd, "stepOut")) {
        answer = resume(d, ENG_DBG_STEP_OUT, cmd);
    } else if (!strcmp(cmd, "source")) {
        const char *path = json_string_value(json_object_get(json_object_get(args_of(dap), "source"), "path"));
        char *text = path ? read_file(path) : NULL;
        answer = text ? ok_answer(json_pack("{s:s}", "content", text))
                      : err_answer("no source at %s", path ? path : "(no path given)");
        free(text);
    } else if (!strcmp(cmd, "loadedSources")) {
        answer = ok_answer(json_pack("{s:[]}", "sources"));
    } else if (!strcmp(cmd, "stackTrace") || !strcmp(cmd, "scopes") || !strcmp(cmd, "variables") ||
               !strcmp(cmd, "evaluate") || !strcmp(cmd, "inspectVariables") ||
               !strcmp(cmd, "richInspectVariables") || !strcmp(cmd, "copyToGlobals")) {
        answer = forward(ch, d, dap);
    } else {
        answer = err_answer("the Kiln kernel does not support the DAP command \"%s\" (docs/debugger.md)", cmd);
    }
    reply(ch, req, d, answer);
    if (initialized)
        send_event(ch, d, req->header, "initialized", NULL);
    if (terminated)
        send_event(ch, d, req->header, "terminated", NULL);
}
