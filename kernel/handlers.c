/* handlers.c — the handler table (msg_type → handler, per channel) and every handler
 * but execute's. Handlers send their reply and any IOPub output; busy and idle around
 * them are the dispatcher's job (kernel.c). Handlers that touch the engine session
 * (complete, inspect) are only in the shell column: the session has one thread. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/kn_core.h"

/* ---- request helpers ------------------------------------------------------------- */

static const char *content_str(const jp_msg *req, const char *name, const char *def)
{
    json_t *v = json_object_get(req->content, name);
    return json_is_string(v) ? json_string_value(v) : def;
}

static long content_int(const jp_msg *req, const char *name, long def)
{
    json_t *v = json_object_get(req->content, name);
    return json_is_integer(v) ? (long)json_integer_value(v)
           : json_is_real(v)  ? (long)json_real_value(v)
                              : def;
}

/* The byte offset of the request's cursor_pos (code points; default: end of code). */
static size_t cursor_byte(const jp_msg *req, const char *code)
{
    long cp = content_int(req, "cursor_pos", -1);
    if (cp < 0)
        return strlen(code);
    return jp_utf8_cp_to_byte(code, cp);
}

/* ---- kernel_info ------------------------------------------------------------------- */

/* A file:// link to docs/language.md next to the build folder, when it exists. */
static json_t *help_links(void)
{
    char exe[PATH_MAX], doc[PATH_MAX + 64];
    json_t *links = json_array();
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash;
    if (!links || n <= 0)
        return links;
    exe[n] = '\0';
    slash = strrchr(exe, '/'); /* .../build/kiln → .../build */
    if (slash)
        *slash = '\0';
    slash = strrchr(exe, '/'); /* .../build → ... */
    if (slash)
        *slash = '\0';
    snprintf(doc, sizeof doc, "%s/docs/language.md", exe);
    if (access(doc, R_OK) == 0) {
        char url[PATH_MAX + 80];
        snprintf(url, sizeof url, "file://%s", doc);
        json_array_append_new(links, json_pack("{s:s, s:s}", "text", "Kiln language reference",
                                               "url", url));
    }
    return links;
}

static void h_kernel_info(kn_channel *ch, const jp_msg *req)
{
    char banner[256];
    const char *version = eng_version();
    snprintf(banner, sizeof banner,
             "Kiln %s: a small C with tensors.\n"
             "int x = 3;  then  x + 1  shows 4.  print(...), printf(...), %%whos, %%lsmagic.",
             version);
    kn_reply_take(ch, req, "kernel_info_reply",
                 json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, "
                           "s:o, s:b, s:[s]}",
                           "status", "ok", "protocol_version", JP_PROTOCOL_VERSION,
                           "implementation", "kiln", "implementation_version", version,
                           "language_info", "name", "kiln", "version", version, "mimetype",
                           "text/x-csrc", "file_extension", ".kn", "pygments_lexer", "c",
                           "codemirror_mode", "text/x-csrc", "banner", banner,
                           "help_links", help_links(), "debugger", 1,
                           "supported_features", "debugger"));
}

/* ---- complete, inspect, is_complete ---------------------------------------------- */

static void h_complete(kn_channel *ch, const jp_msg *req)
{
    const char *code = content_str(req, "code", "");
    size_t cur = cursor_byte(req, code);
    eng_completions c = eng_complete(ch->k->eng, code, (int)cur);
    json_t *matches = json_array();
    size_t start = c.cursor_start < 0 ? cur : (size_t)c.cursor_start;
    size_t end = c.cursor_end < 0 ? cur : (size_t)c.cursor_end;
    for (int i = 0; matches && i < c.n; i++)
        json_array_append_new(matches, jp_json_text(c.matches[i], strlen(c.matches[i])));
    kn_reply_take(ch, req, "complete_reply",
                 json_pack("{s:s, s:o*, s:I, s:I, s:{}}", "status", "ok", "matches", matches,
                           "cursor_start", (json_int_t)jp_utf8_byte_to_cp(code, start),
                           "cursor_end", (json_int_t)jp_utf8_byte_to_cp(code, end),
                           "metadata"));
    eng_completions_free(&c);
}

static void h_inspect(kn_channel *ch, const jp_msg *req)
{
    const char *code = content_str(req, "code", "");
    size_t cur = cursor_byte(req, code);
    int detail = content_int(req, "detail_level", 0) ? 1 : 0;
    char *text = eng_inspect(ch->k->eng, code, (int)cur, detail);
    json_t *data = json_object();
    if (text && data)
        json_object_set_new(data, "text/plain", jp_json_text(text, strlen(text)));
    kn_reply_take(ch, req, "inspect_reply",
                 json_pack("{s:s, s:b, s:o*, s:{}}", "status", "ok", "found", text != NULL,
                           "data", data, "metadata"));
    free(text);
}

static void h_is_complete(kn_channel *ch, const jp_msg *req)
{
    char indent[64] = "";
    const char *code = content_str(req, "code", "");
    eng_completeness c = eng_is_complete(code, indent, sizeof indent);
    json_t *content;
    if (c == ENG_INCOMPLETE)
        content = json_pack("{s:s, s:s}", "status", "incomplete", "indent", indent);
    else
        content = json_pack("{s:s}", "status", c == ENG_COMPLETE ? "complete" : "invalid");
    kn_reply_take(ch, req, "is_complete_reply", content);
}

/* ---- history ------------------------------------------------------------------------ */

static void h_history(kn_channel *ch, const jp_msg *req)
{
    json_t *hist = kn_history_query(ch->k->history, req->content);
    kn_reply_take(ch, req, "history_reply",
                 json_pack("{s:s, s:o*}", "status", "ok", "history", hist ? hist : json_array()));
}

/* ---- comms -------------------------------------------------------------------------- */

static void h_comm_info(kn_channel *ch, const jp_msg *req)
{
    kn_reply_take(ch, req, "comm_info_reply", json_pack("{s:s, s:{}}", "status", "ok", "comms"));
}

/* Kiln registers no comm targets: every comm_open is closed at once. */
static void h_comm_open(kn_channel *ch, const jp_msg *req)
{
    const char *id = content_str(req, "comm_id", "");
    kn_log("comm_open for unknown target \"%s\": closing it",
           content_str(req, "target_name", ""));
    kn_publish_take(ch, "comm_close", req->header,
                   json_pack("{s:s, s:{}}", "comm_id", id, "data"));
}

static void h_comm_ignore(kn_channel *ch, const jp_msg *req)
{
    (void)ch;
    (void)req; /* messages to comms that do not exist */
}

/* ---- shutdown, interrupt ------------------------------------------------------------ */

static void h_shutdown(kn_channel *ch, const jp_msg *req)
{
    int restart = json_is_true(json_object_get(req->content, "restart"));
    kn_reply_take(ch, req, "shutdown_reply",
                 json_pack("{s:s, s:b}", "status", "ok", "restart", restart));
    /* protocol 5.4 also broadcasts it, for other clients of the same kernel */
    kn_publish_take(ch, "shutdown_reply", req->header,
                   json_pack("{s:s, s:b}", "status", "ok", "restart", restart));
    kn_request_shutdown(ch);
}

static void h_interrupt(kn_channel *ch, const jp_msg *req)
{
    kn_interrupt(ch->k);
    kn_reply_take(ch, req, "interrupt_reply", json_pack("{s:s}", "status", "ok"));
}

/* ---- the table ---------------------------------------------------------------------- */

/* One row per msg_type: its handler on shell and on control (NULL: not served there). */
static const struct {
    const char *msg_type; /* request type */
    kn_handler shell;     /* handler on the shell thread */
    kn_handler control;   /* handler on the control thread */
} table[] = {
    {"execute_request", kn_handle_execute, NULL},
    {"kernel_info_request", h_kernel_info, h_kernel_info},
    {"complete_request", h_complete, NULL},
    {"inspect_request", h_inspect, NULL},
    {"is_complete_request", h_is_complete, NULL},
    {"history_request", h_history, NULL},
    {"comm_info_request", h_comm_info, h_comm_info},
    {"comm_open", h_comm_open, NULL},
    {"comm_msg", h_comm_ignore, NULL},
    {"comm_close", h_comm_ignore, NULL},
    {"shutdown_request", h_shutdown, h_shutdown},
    {"interrupt_request", h_interrupt, h_interrupt},
    {"debug_request", NULL, kn_debug_request},
};

kn_handler kn_find_handler(const char *msg_type, int is_control)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].msg_type, msg_type) == 0)
            return is_control ? table[i].control : table[i].shell;
    return NULL;
}
