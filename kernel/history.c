/* history.c — the session's input history, answered the way IPython answers
 * history_request: entries are [session, line, input] or, with output,
 * [session, line, [input, output]]. Kiln keeps the history of the running process in
 * memory (the latest MAX_ENTRIES cells, and no more than a byte budget); the session
 * number is always 1, and a range request for another session finds nothing. Owned by
 * the shell thread.
 *
 * The byte budget (KILN_HISTORY_BYTES, default DEFAULT_BYTES) bounds what the inputs
 * and outputs kept take: the oldest entries go first. An input or output longer than
 * a quarter of the budget (at most ENTRY_MAX) is kept truncated to that length, at a
 * UTF-8 boundary, followed by a comment line saying so, so that a recalled entry is
 * still Kiln source that says what it lost. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/kn_core.h"

#define MAX_ENTRIES 10000 /* older entries are forgotten */
#define DEFAULT_BYTES ((size_t)64 << 20) /* inputs and outputs kept, in all */
#define ENTRY_MAX ((size_t)1 << 20)      /* longest input or output kept whole */
#define MIN_BYTES ((size_t)4 << 10)      /* smallest budget KILN_HISTORY_BYTES may set */
#define SESSION_NO 1      /* this process's history session */

/* One stored cell. */
typedef struct hist_entry {
    int line;     /* its execution count */
    char *input;  /* the code */
    char *output; /* text/plain of its result, or NULL */
} hist_entry;

struct kn_history {
    hist_entry *v;    /* entries, oldest first */
    size_t n;         /* entries in use */
    size_t cap;       /* entries allocated */
    size_t bytes;     /* bytes of every entry's input and output */
    size_t max_bytes; /* the budget for bytes */
    size_t entry_max; /* longest input or output kept whole */
};

kn_history *kn_history_new(void)
{
    kn_history *h = calloc(1, sizeof(kn_history));
    const char *env = getenv("KILN_HISTORY_BYTES");
    if (!h)
        return NULL;
    h->max_bytes = DEFAULT_BYTES;
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0' && v > 0)
            h->max_bytes = v < MIN_BYTES ? MIN_BYTES : (size_t)v;
    }
    h->entry_max = h->max_bytes / 4 < ENTRY_MAX ? h->max_bytes / 4 : ENTRY_MAX;
    return h;
}

static void entry_free(hist_entry *e)
{
    free(e->input);
    free(e->output);
}

static size_t entry_bytes(const hist_entry *e)
{
    return (e->input ? strlen(e->input) : 0) + (e->output ? strlen(e->output) : 0);
}

/* A copy of s for the history: whole, or its first h->entry_max bytes (cut at a UTF-8
 * boundary) and a comment line giving the length it had. */
static char *kept_copy(const kn_history *h, const char *s)
{
    size_t len = strlen(s), keep;
    char note[96], *out;
    int nlen;
    if (len <= h->entry_max)
        return strdup(s);
    keep = h->entry_max;
    while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
        keep--;
    nlen = snprintf(note, sizeof note, "\n// [kiln: %zu bytes, truncated to %zu in the history]\n",
                    len, keep);
    out = malloc(keep + (size_t)nlen + 1);
    if (!out)
        return NULL;
    memcpy(out, s, keep);
    memcpy(out + keep, note, (size_t)nlen + 1);
    return out;
}

/* Forgets the oldest entries until h fits its budgets with `extra` more bytes. */
static void make_room(kn_history *h, size_t extra)
{
    size_t drop = 0;
    while (drop < h->n && (h->n - drop >= MAX_ENTRIES || h->bytes + extra > h->max_bytes)) {
        h->bytes -= entry_bytes(&h->v[drop]);
        entry_free(&h->v[drop]);
        drop++;
    }
    if (drop) {
        memmove(h->v, h->v + drop, (h->n - drop) * sizeof *h->v);
        h->n -= drop;
    }
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
    hist_entry e = {line, kept_copy(h, input ? input : ""), output ? kept_copy(h, output) : NULL};
    size_t size;
    if (!e.input || (output && !e.output))
        goto err;
    size = entry_bytes(&e);
    make_room(h, size);
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        hist_entry *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            goto err;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = e;
    h->bytes += size;
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
    copy = output ? kept_copy(h, output) : NULL;
    if (output && !copy)
        return -1;
    h->bytes -= e->output ? strlen(e->output) : 0;
    free(e->output);
    e->output = copy;
    h->bytes += copy ? strlen(copy) : 0;
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
