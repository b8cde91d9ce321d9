/* execute.c — execute_request: runs a cell through the engine with a sink that turns
 * each output into an IOPub message (stream, display_data, update_display_data,
 * execute_result, error, clear_output) and each input() into an input_request on
 * stdin; evaluates user_expressions; records history; answers queued executes with
 * an abort after a failure when stop_on_error is set. Runs on the shell thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "kernel/kn_core.h"

#define STDIN_POLL_MS 100 /* how often a pending input() looks for an interrupt */

/* The sink's user data: one execute request in flight. */
typedef struct exec_ctx {
    kn_channel *ch;     /* the shell channel */
    const jp_msg *req;  /* the request (its header parents every output) */
    int silent;         /* 1: publish nothing on IOPub */
    int allow_stdin;    /* 1: input() may send input_request */
    int count;          /* the cell's execution_count */
    json_t *error;      /* {ename, evalue, traceback} of the cell's (first) error */
    char *result_text;  /* text/plain of the result, for the history */
    json_t *result;     /* user_expressions mode: the captured data object */
} exec_ctx;

/* ---- bundles ------------------------------------------------------------------------ */

static int is_json_mime(const char *mime)
{
    size_t n = strlen(mime);
    return strcmp(mime, "application/json") == 0 || (n > 5 && strcmp(mime + n - 5, "+json") == 0);
}

/* {mime: data, ...}; JSON types are embedded as JSON when they parse. */
static json_t *bundle_data(const eng_bundle *b)
{
    json_t *data = json_object();
    for (int i = 0; data && b && i < b->n && i < ENG_BUNDLE_MAX; i++) {
        const char *mime = b->items[i].mime, *text = b->items[i].data;
        json_t *v = NULL;
        if (!mime || !text)
            continue;
        if (is_json_mime(mime))
            v = json_loads(text, JSON_DECODE_ANY, NULL);
        if (!v)
            v = jp_json_text(text, strlen(text));
        json_object_set_new(data, mime, v);
    }
    return data;
}

static const char *bundle_plain(const eng_bundle *b)
{
    for (int i = 0; b && i < b->n && i < ENG_BUNDLE_MAX; i++)
        if (b->items[i].mime && strcmp(b->items[i].mime, "text/plain") == 0)
            return b->items[i].data;
    return NULL;
}

/* ---- the sink ----------------------------------------------------------------------- */

/* Before each output of the cell's own: what the cell wrote to fd 1/2 before it
 * (kernel printf, library warnings) reaches IOPub first (capture.c). */
static void captured_first(exec_ctx *x)
{
    if (!x->silent)
        kn_capture_sync(x->ch->k);
}

static void sink_stream(void *user, int fd, const char *text, size_t len)
{
    exec_ctx *x = user;
    if (x->silent || !len)
        return;
    captured_first(x);
    kn_publish_stream(x->ch, x->req->header, fd, text, len);
}

static void sink_display(void *user, const eng_bundle *b, int update)
{
    exec_ctx *x = user;
    json_t *transient;
    if (x->silent)
        return;
    if (update && !b->display_id)
        return; /* an update needs a display_id */
    captured_first(x);
    transient = b->display_id ? json_pack("{s:s}", "display_id", b->display_id) : json_object();
    kn_publish_take(x->ch, update ? "update_display_data" : "display_data", x->req->header,
                   json_pack("{s:o*, s:{}, s:o*}", "data", bundle_data(b), "metadata",
                             "transient", transient));
}

static void sink_result(void *user, const eng_bundle *b)
{
    exec_ctx *x = user;
    const char *plain = bundle_plain(b);
    free(x->result_text);
    x->result_text = plain ? strdup(plain) : NULL;
    if (x->result) { /* user_expressions mode */
        json_decref(x->result);
        x->result = bundle_data(b);
        return;
    }
    if (x->silent)
        return;
    captured_first(x);
    kn_publish_take(x->ch, "execute_result", x->req->header,
                   json_pack("{s:i, s:o*, s:{}}", "execution_count", x->count, "data",
                             bundle_data(b), "metadata"));
}

static json_t *error_json(const char *ename, const char *evalue, const char **tb, int ntb)
{
    json_t *arr = json_array();
    for (int i = 0; arr && tb && i < ntb; i++)
        if (tb[i])
            json_array_append_new(arr, jp_json_text(tb[i], strlen(tb[i])));
    return json_pack("{s:o*, s:o*, s:o*}", "ename",
                     jp_json_text(ename ? ename : "Error", strlen(ename ? ename : "Error")),
                     "evalue", jp_json_text(evalue ? evalue : "", strlen(evalue ? evalue : "")),
                     "traceback", arr);
}

static void sink_error(void *user, const eng_error_report *err)
{
    exec_ctx *x = user;
    if (x->error)
        return; /* exactly one error message per failed cell */
    x->error = error_json(err->ename, err->evalue, err->traceback, err->ntraceback);
    if (x->error && !x->silent && !x->result) {
        captured_first(x);
        kn_publish_take(x->ch, "error", x->req->header, json_deep_copy(x->error));
    }
}

static void sink_clear_output(void *user, int wait)
{
    exec_ctx *x = user;
    captured_first(x);
    if (!x->silent)
        kn_publish_take(x->ch, "clear_output", x->req->header,
                       json_pack("{s:b}", "wait", wait));
}

/* Sends input_request on stdin and waits for the input_reply; NULL when input is not
 * allowed, on interrupt or shutdown. The value may hold NUL characters: *len is its
 * length. */
static char *sink_input(void *user, const char *prompt, int password, size_t *len)
{
    exec_ctx *x = user;
    kn_kernel *k = x->ch->k;
    jp_frames out = {0};
    zmq_pollitem_t item = {k->stdin_sock, 0, ZMQ_POLLIN, 0};
    char *value = NULL;
    if (!x->allow_stdin)
        return NULL;
    for (;;) { /* replies to an earlier, abandoned request */
        jp_frames stale = {0};
        if (jp_frames_recv(k->stdin_sock, &stale, ZMQ_DONTWAIT) != 0)
            break;
        jp_frames_free(&stale);
    }
    captured_first(x);
    kn_publish_flush(x->ch); /* show what was printed before the prompt */
    if (kn_encode_take(k, &x->req->idents, "input_request", x->req->header,
                      json_pack("{s:o*, s:b}", "prompt",
                                jp_json_text(prompt ? prompt : "", strlen(prompt ? prompt : "")),
                                "password", password),
                      &out) != 0 ||
        jp_frames_send(k->stdin_sock, &out) != 0) {
        kn_log("stdin: could not send input_request");
        goto done;
    }
    while (!value && !atomic_load(&k->interrupt_pending) && !atomic_load(&k->shutdown)) {
        jp_frames in = {0};
        jp_msg rep;
        char err[200];
        int n = zmq_poll(&item, 1, STDIN_POLL_MS);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (jp_frames_recv(k->stdin_sock, &in, ZMQ_DONTWAIT) != 0)
            continue;
        if (jp_msg_decode(&in, k->auth, k->max_json, &rep, err, sizeof err) != JP_OK) {
            kn_log("stdin: dropped a message: %s", err);
        } else if (strcmp(rep.msg_type, "input_reply") == 0) {
            json_t *v = json_object_get(rep.content, "value");
            size_t vlen = json_is_string(v) ? json_string_length(v) : 0;
            value = malloc(vlen + 1);
            if (value) {
                memcpy(value, vlen ? json_string_value(v) : "", vlen);
                value[vlen] = '\0';
                *len = vlen;
            } else {
                kn_log("stdin: out of memory");
            }
            jp_msg_clear(&rep);
            jp_frames_free(&in);
            break;
        } else {
            kn_log("stdin: unexpected %s ignored", rep.msg_type);
        }
        jp_msg_clear(&rep);
        jp_frames_free(&in);
    }
done:
    jp_frames_free(&out);
    return value;
}

static void sink_init(eng_sink *s, exec_ctx *x)
{
    memset(s, 0, sizeof *s);
    s->user = x;
    s->stream = sink_stream;
    s->display = sink_display;
    s->result = sink_result;
    s->error = sink_error;
    s->clear_output = sink_clear_output;
    s->input = sink_input;
}

/* Runs code in the engine with the interrupt plumbing around it: a cell, or (expression
 * 1) one user expression, evaluated without side effects (eng_evaluate). */
static int run_engine(kn_kernel *k, const char *code, const char *name, eng_sink *sink, int expression)
{
    int rc;
    atomic_store(&k->interrupt_pending, 0);
    atomic_store(&k->cell_running, 1);
    rc = expression ? eng_evaluate(k->eng, code, name, sink) : eng_execute(k->eng, code, name, 1, sink);
    atomic_store(&k->cell_running, 0);
    if (!expression)
        kn_debug_cell_end(k);
    return rc;
}

/* ---- user_expressions --------------------------------------------------------------- */

/* Each expression is evaluated on its own, after a successful cell, by eng_evaluate:
 * expressions only, nothing that could change the session (docs/kernel.md). A refused
 * or failed one gives {status: "error", ename, evalue, traceback} under its key. */
static json_t *eval_user_expressions(kn_channel *ch, const jp_msg *req, json_t *exprs)
{
    json_t *out = json_object();
    const char *key;
    json_t *val;
    if (!out || !json_is_object(exprs))
        return out;
    json_object_foreach(exprs, key, val) {
        exec_ctx x = {0};
        eng_sink sink;
        json_t *res;
        if (!json_is_string(val))
            continue;
        x.ch = ch;
        x.req = req;
        x.silent = 1;
        x.result = json_object(); /* capture mode */
        sink_init(&sink, &x);
        sink.stream = NULL;
        sink.display = NULL;
        sink.clear_output = NULL;
        sink.input = NULL;
        if (run_engine(ch->k, json_string_value(val), "user_expression", &sink, 1) != 0 || x.error) {
            res = x.error ? json_incref(x.error)
                          : error_json("Error", "the expression failed", NULL, 0);
            if (res)
                json_object_set_new(res, "status", json_string("error"));
        } else {
            res = json_pack("{s:s, s:O, s:{}}", "status", "ok", "data", x.result, "metadata");
        }
        json_object_set_new(out, key, res ? res : json_null());
        json_decref(x.error);
        json_decref(x.result);
        free(x.result_text);
    }
    return out;
}

/* ---- the handlers ------------------------------------------------------------------- */

/* Code that holds a NUL character (valid JSON: "\u0000") cannot be Kiln source, and
 * the engine reads code up to its first NUL: such a cell fails with a SyntaxError
 * naming the line and column (in characters) of the first NUL, without running. */
static void refuse_nul(exec_ctx *x, const char *code, size_t len)
{
    size_t at = strlen(code);
    int line = 1, col = 1;
    char evalue[160], where[256];
    const char *tb[1] = {where};
    for (size_t i = 0; i < at && i < len; i++) {
        if (code[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)code[i] & 0xc0) != 0x80) {
            col++;
        }
    }
    snprintf(evalue, sizeof evalue,
             "the code holds a NUL character (U+0000) at line %d, column %d; Kiln source "
             "cannot contain one", line, col);
    snprintf(where, sizeof where, "cell[%d]:%d:%d: SyntaxError: %s", x->count, line, col, evalue);
    sink_error(x, &(eng_error_report){"SyntaxError", evalue, tb, 1});
}

/* The code for the history: NUL characters become U+FFFD. */
static char *history_text(const char *code, size_t len)
{
    size_t nul = 0, o = 0;
    char *out;
    for (size_t i = 0; i < len; i++)
        nul += code[i] == '\0';
    out = malloc(len + 2 * nul + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (code[i]) {
            out[o++] = code[i];
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
    }
    out[o] = '\0';
    return out;
}

static int flag(const jp_msg *req, const char *name, int def)
{
    json_t *v = json_object_get(req->content, name);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

void kn_handle_execute(kn_channel *ch, const jp_msg *req)
{
    kn_kernel *k = ch->k;
    json_t *codev = json_object_get(req->content, "code"), *content, *uexpr;
    const char *code = json_is_string(codev) ? json_string_value(codev) : NULL;
    int store_history = flag(req, "store_history", 1);
    int stop_on_error = flag(req, "stop_on_error", 1);
    exec_ctx x = {0};
    eng_sink sink;
    char name[32];
    int rc, failed, has_nul;

    x.ch = ch;
    x.req = req;
    x.silent = flag(req, "silent", 0);
    x.allow_stdin = flag(req, "allow_stdin", 0);
    if (x.silent)
        store_history = 0;
    if (!code) {
        kn_log("shell: execute_request without code");
        kn_reply_take(ch, req, "execute_reply",
                     json_pack("{s:s, s:i, s:s, s:s, s:[], s:{}, s:[]}", "status", "error",
                               "execution_count", k->execution_count, "ename", "BadRequest",
                               "evalue", "execute_request has no code", "traceback",
                               "user_expressions", "payload"));
        return;
    }
    x.count = store_history ? ++k->execution_count : k->execution_count;
    /* fd 1/2 output from now on belongs to this request (late output of the last one
     * is published under it first); a silent request's goes to the original fds */
    kn_capture_sync(k);
    kn_capture_begin(k, x.silent ? NULL : req->header);
    if (!x.silent)
        kn_publish_take(ch, "execute_input", req->header,
                       json_pack("{s:s, s:i}", "code", code, "execution_count", x.count));
    snprintf(name, sizeof name, "cell[%d]", x.count);
    sink_init(&sink, &x);
    has_nul = strlen(code) != json_string_length(codev);
    if (has_nul) {
        refuse_nul(&x, code, json_string_length(codev));
        rc = 1;
    } else {
        kn_debug_cell_begin(ch, req, code); /* the cell's source path (debugger.c) */
        rc = run_engine(k, code, name, &sink, 0);
    }
    failed = rc != 0 || x.error != NULL;
    if (failed && !x.error) {
        /* the engine promised an error report; keep "one error per failed cell" */
        sink_error(&x, &(eng_error_report){"Error", "the cell failed", NULL, 0});
    }
    if (store_history && has_nul) {
        char *text = history_text(code, json_string_length(codev));
        kn_history_add(k->history, x.count, text ? text : "", x.result_text);
        free(text);
    } else if (store_history) {
        kn_history_add(k->history, x.count, code, x.result_text);
    }

    if (failed) {
        content = json_deep_copy(x.error);
        if (content) {
            json_object_set_new(content, "status", json_string("error"));
            json_object_set_new(content, "execution_count", json_integer(x.count));
            json_object_set_new(content, "user_expressions", json_object());
            json_object_set_new(content, "payload", json_array());
        }
    } else {
        uexpr = eval_user_expressions(ch, req, json_object_get(req->content, "user_expressions"));
        content = json_pack("{s:s, s:i, s:o*, s:[]}", "status", "ok", "execution_count",
                            x.count, "user_expressions", uexpr, "payload");
    }
    /* everything the cell wrote to fd 1/2 is on IOPub before the reply and the idle */
    kn_capture_sync(k);
    kn_capture_end(k);
    if (failed && stop_on_error)
        kn_abort_queued(k); /* what the client sent before it could see this failure */
    kn_reply_take(ch, req, "execute_reply", content);
    json_decref(x.error);
    free(x.result_text);
}

void kn_abort_queued(kn_kernel *k)
{
    kn_queue *q = &k->queued;
    k->aborting = 1;
    for (;;) {
        jp_frames f = {0};
        if (jp_frames_recv(k->shell, &f, ZMQ_DONTWAIT) != 0)
            break;
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 16;
            jp_frames *v = realloc(q->v, cap * sizeof *v);
            if (!v) {
                kn_log("shell: out of memory: a queued request is dropped");
                jp_frames_free(&f);
                continue;
            }
            q->v = v;
            q->cap = cap;
        }
        q->v[q->n++] = f;
    }
}

void kn_abort_execute(kn_channel *ch, const jp_msg *req)
{
    kn_log("shell: execute_request %s aborted (an earlier cell failed)", req->msg_id);
    kn_reply_take(ch, req, "execute_reply",
                 json_pack("{s:s, s:i, s:s, s:s, s:[], s:{}, s:[]}", "status", "error",
                           "execution_count", ch->k->execution_count, "ename",
                           "ExecutionAborted", "evalue",
                           "not run: an earlier cell failed (stop_on_error)", "traceback",
                           "user_expressions", "payload"));
}
