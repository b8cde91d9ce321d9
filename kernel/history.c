/* history.c — the session's input history, answered the way IPython answers
 * history_request: entries are [session, line, input] or, with output,
 * [session, line, [input, output]]. Kiln keeps the history of the running process in
 * memory (the latest MAX_ENTRIES cells); the session number is always 1, and a range
 * request for another session finds nothing. Owned by the shell thread. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/kn_core.h"

#define MAX_ENTRIES 10000 /* older entries are forgotten */
#define SESSION_NO 1      /* this process's history session */

/* One stored cell. */
typedef struct hist_entry {
    int line;     /* its execution count */
    char *input;  /* the code */
    char *output; /* text/plain of its result, or NULL */
} hist_entry;

struct kn_history {
    hist_entry *v; /* entries, oldest first */
    size_t n;      /* entries in use */
    size_t cap;    /* entries allocated */
};

kn_history *kn_history_new(void)
{
    return calloc(1, sizeof(kn_history));
}

static void entry_free(hist_entry *e)
{
    free(e->input);
    free(e->output);
}

void kn_history_free(kn_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        entry_free(&h->v[i]);
    free(h->v);
    free(h);
}

int kn_history_add(kn_history *h, int line, const char *input, const char *output)
{
    hist_entry e = {line, strdup(input ? input : ""), output ? strdup(output) : NULL};
    if (!e.input || (output && !e.output))
        goto err;
    if (h->n == MAX_ENTRIES) {
        entry_free(&h->v[0]);
        memmove(h->v, h->v + 1, (h->n - 1) * sizeof *h->v);
        h->n--;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        hist_entry *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            goto err;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = e;
    return 0;
err:
    entry_free(&e);
    return -1;
}

int kn_history_set_output(kn_history *h, int line, const char *output)
{
    hist_entry *e;
    char *copy;
    if (!h->n || h->v[h->n - 1].line != line)
        return -1;
    e = &h->v[h->n - 1];
    copy = output ? strdup(output) : NULL;
    if (output && !copy)
        return -1;
    free(e->output);
    e->output = copy;
    return 0;
}

static json_t *entry_json(const hist_entry *e, int output)
{
    json_t *in = jp_json_text(e->input, strlen(e->input));
    if (output) {
        json_t *out = e->output ? jp_json_text(e->output, strlen(e->output)) : json_null();
        in = json_pack("[o*, o*]", in, out);
    }
    return json_pack("[i, i, o*]", SESSION_NO, e->line, in);
}

/* Appends entries [from, to) of h (only those marked in keep, when keep is set). */
static void append_range(json_t *arr, const kn_history *h, size_t from, size_t to,
                         const unsigned char *keep, int output)
{
    for (size_t i = from; i < to; i++)
        if (!keep || keep[i])
            json_array_append_new(arr, entry_json(&h->v[i], output));
}

static long get_int(json_t *req, const char *name, long def)
{
    json_t *v = json_object_get(req, name);
    return json_is_integer(v) ? (long)json_integer_value(v)
           : json_is_real(v)  ? (long)json_real_value(v)
                              : def;
}

/* IPython: session 0 (or absent) is the current one, negative counts back from it. */
static int is_current_session(json_t *req)
{
    long s = get_int(req, "session", 0);
    return s == 0 || s == SESSION_NO;
}

static json_t *search(kn_history *h, json_t *req, int output)
{
    json_t *arr = json_array();
    json_t *pv = json_object_get(req, "pattern");
    const char *pattern = json_is_string(pv) ? json_string_value(pv) : "*";
    long n = get_int(req, "n", -1);
    int unique = json_is_true(json_object_get(req, "unique"));
    unsigned char *keep = calloc(h->n ? h->n : 1, 1);
    size_t matched = 0;
    if (!arr || !keep)
        goto done;
    for (size_t i = 0; i < h->n; i++)
        keep[i] = fnmatch(pattern, h->v[i].input, 0) == 0;
    if (unique) /* keep the latest of each input */
        for (size_t i = 0; i < h->n; i++)
            for (size_t j = i + 1; keep[i] && j < h->n; j++)
                if (keep[j] && strcmp(h->v[i].input, h->v[j].input) == 0)
                    keep[i] = 0;
    for (size_t i = 0; i < h->n; i++)
        matched += keep[i];
    if (n >= 0) /* the latest n matches */
        for (size_t i = 0; i < h->n && matched > (size_t)n; i++)
            if (keep[i]) {
                keep[i] = 0;
                matched--;
            }
    append_range(arr, h, 0, h->n, keep, output);
done:
    free(keep);
    return arr;
}

json_t *kn_history_query(kn_history *h, json_t *req)
{
    json_t *tv = json_object_get(req, "hist_access_type");
    const char *type = json_is_string(tv) ? json_string_value(tv) : "tail";
    int output = json_is_true(json_object_get(req, "output"));
    json_t *arr;
    if (strcmp(type, "search") == 0)
        return search(h, req, output);
    arr = json_array();
    if (!arr)
        return NULL;
    if (strcmp(type, "tail") == 0) {
        long n = get_int(req, "n", 10);
        size_t from = n < 0 || (size_t)n >= h->n ? 0 : h->n - (size_t)n;
        append_range(arr, h, from, h->n, NULL, output);
    } else if (strcmp(type, "range") == 0 && is_current_session(req)) {
        long start = get_int(req, "start", 0), stop = get_int(req, "stop", -1);
        for (size_t i = 0; i < h->n; i++) {
            int line = h->v[i].line;
            if (line >= start && (stop < 0 || line < stop))
                json_array_append_new(arr, entry_json(&h->v[i], output));
        }
    }
    return arr;
}
