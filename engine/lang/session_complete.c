/* session_complete.c — what a front end asks while the user types: is_complete,
 * completion (names, members, file paths) and inspection (Shift+Tab). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/train/autograd.h"
#include "engine/lang/interp.h"
#include "engine/lang/kernels.h"
#include "engine/lang/custom_ops.h"
#include "engine/tensor/tensor_impl.h"
#include "engine/lang/session.h"
#include "engine/lang/session_file.h"

/* ---- is_complete ---- */

eng_completeness eng_is_complete(const char *code, char *indent, size_t indent_size)
{
    if (indent_size > 0)
        indent[0] = 0;
    int invalid = 0;
    int depth = ast_open_depth(code, &invalid);
    if (invalid)
        return ENG_INVALID;
    if (depth != 0) {
        int n = depth > 0 ? depth * 4 : 0;
        if (indent_size > 0) {
            if ((size_t)n >= indent_size)
                n = (int)indent_size - 1;
            memset(indent, ' ', (size_t)n);
            indent[n] = 0;
        }
        return ENG_INCOMPLETE;
    }
    eng_error errs[4];
    memset(errs, 0, sizeof errs);
    ast_cell cell;
    int nerr = ast_parse(code, &cell, errs, 4);
    if (cell.arena)
        arena_decref(cell.arena);
    if (!nerr)
        return ENG_COMPLETE;
    /* an error at the very end (an operator waiting for its operand) means more is to come */
    const char *eof = tok_kind_name(TK_EOF);
    for (int i = 0; i < nerr && i < 4; i++)
        if (strstr(errs[i].msg, eof) && !strstr(errs[i].msg, "expected ';'"))
            return ENG_INCOMPLETE;
    return ENG_INVALID;
}

/* ---- completion ---- */

static const char *const keywords[] = {"int", "float", "double", "bool", "string", "tensor", "auto", "void", "if",
                                 "else", "for", "while", "do", "break", "continue", "return", "true",
                                 "false", "const", "__global__", "__device__"};
static const char *const members[] = {"shape", "ndim", "numel", "dtype", "device", "T", "grad"};
const char *const eng_magic_names[] = {"time", "timeit", "whos", "gpu", "save", "load", "reset", "seed", "device",
                                       "ptx", "sim", "memory", "del", "source", "lsmagic", "help", "debug_thread",
                                       "ktrace", NULL};

typedef struct matchlist {
    char **v;
    int n, cap;
    int sorted; /* v[0, sorted) is in its final order (sort_from) */
} matchlist;

static void match_add(matchlist *m, const char *name, const char *prefix, int plen, const char *lead)
{
    if (strncmp(name, prefix, (size_t)plen) != 0)
        return;
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 32;
        char **p = realloc(m->v, sizeof *p * (size_t)cap);
        if (!p)
            return;
        m->v = p;
        m->cap = cap;
    }
    char *s = eng_fmt_alloc("%s%s", lead, name);
    if (s)
        m->v[m->n++] = s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_ident(int c) { return isalnum(c) || c == '_'; }

/* sorts the matches added since group start `from` as one group; later matches come after */
static void sort_from(matchlist *m, int from)
{
    if (from < m->sorted)
        from = m->sorted;
    if (m->n - from > 1)
        qsort(m->v + from, (size_t)(m->n - from), sizeof *m->v, cmp_str);
    m->sorted = m->n;
}

/* the identifiers of the kernel definition around code[0, cursor) (its parameters and
 * locals so far), for completion inside its body */
static void match_kernel_names(matchlist *m, const char *code, int start, const char *prefix, int plen)
{
    int from = start; /* the word being typed starts at start: only the words before it */
    while (from > 0 && !(from + 10 <= start && (!strncmp(code + from, "__global__", 10) ||
                                                  !strncmp(code + from, "__device__", 10))))
        from--;
    int count = 0;
    for (int i = from; i < start && count < 500;) {
        if (code[i] == '/' && code[i + 1] == '/') {
            while (i < start && code[i] != '\n')
                i++;
        } else if ((isalpha((unsigned char)code[i]) || code[i] == '_') &&
                   (i == 0 || !is_ident((unsigned char)code[i - 1]))) {
            int j = i;
            while (j < start && is_ident((unsigned char)code[j]))
                j++;
            if (j - i < 64) {
                char word[64];
                memcpy(word, code + i, (size_t)(j - i));
                word[j - i] = 0;
                match_add(m, word, prefix, plen, "");
                count++;
            }
            i = j;
        } else {
            i++;
        }
    }
}

/* Inside the string argument of a file built-in (load_npy("/usr/sh|): the offset of
 * the path's first character, or -1. */
static int path_arg_start(const char *code, int cursor)
{
    static const char *const file_fns[] = {"load_npy", "load_idx", "save_npy"};
    int q = cursor;
    while (q > 0 && code[q - 1] != '"' && code[q - 1] != '\n')
        q--;
    if (q == 0 || code[q - 1] != '"')
        return -1;
    int p = q - 1; /* the opening quote: it must follow "name(" with blanks allowed */
    while (p > 0 && code[p - 1] == ' ')
        p--;
    if (p == 0 || code[p - 1] != '(')
        return -1;
    p--;
    while (p > 0 && code[p - 1] == ' ')
        p--;
    for (size_t i = 0; i < sizeof file_fns / sizeof file_fns[0]; i++) {
        int n = (int)strlen(file_fns[i]);
        if (p >= n && !strncmp(code + p - n, file_fns[i], (size_t)n) && (p == n || !is_ident((unsigned char)code[p - n - 1])))
            return q;
    }
    return -1;
}

/* file names that complete the path code[start, cursor); directories end in '/' */
static void match_paths(matchlist *m, const char *code, int start, int cursor)
{
    char prefix[4096];
    int plen = cursor - start;
    if (plen >= (int)sizeof prefix)
        return;
    memcpy(prefix, code + start, (size_t)plen);
    prefix[plen] = 0;
    char *slash = strrchr(prefix, '/');
    char dir[4096];
    const char *base;
    if (slash) {
        int dl = (int)(slash - prefix) + 1;
        memcpy(dir, prefix, (size_t)dl);
        dir[dl] = 0;
        base = slash + 1;
    } else {
        strcpy(dir, "");
        base = prefix;
    }
    DIR *d = opendir(*dir ? dir : ".");
    if (!d)
        return;
    struct dirent *e;
    size_t blen = strlen(base);
    int count = 0;
    while ((e = readdir(d)) && count < 1000) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strncmp(e->d_name, base, blen) || (e->d_name[0] == '.' && base[0] != '.'))
            continue;
        char full[8192];
        snprintf(full, sizeof full, "%s%s", *dir ? dir : "./", e->d_name);
        struct stat st;
        int isdir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
        char *cand = eng_fmt_alloc("%s%s%s", dir, e->d_name, isdir ? "/" : "");
        if (cand) {
            match_add(m, cand, "", 0, "");
            free(cand);
            count++;
        }
    }
    closedir(d);
}

eng_completions eng_complete(eng_session *s, const char *code, int cursor)
{
    eng_completions r = {0};
    int len = (int)strlen(code);
    if (cursor < 0 || cursor > len)
        cursor = len;
    int start = cursor;
    while (start > 0 && is_ident((unsigned char)code[start - 1]))
        start--;
    const char *prefix = code + start;
    int plen = cursor - start;
    matchlist m = {0};
    int line_start = start;
    while (line_start > 0 && code[line_start - 1] != '\n')
        line_start--;
    int only_blank = 1;
    for (int i = line_start; i < start - 1; i++)
        if (!isspace((unsigned char)code[i]))
            only_blank = 0;
    int path_start = path_arg_start(code, cursor);
    if (path_start >= 0) {
        start = path_start;
        match_paths(&m, code, start, cursor);
    } else if (start > 0 && code[start - 1] == '%' && only_blank) {
        for (int i = 0; eng_magic_names[i]; i++)
            match_add(&m, eng_magic_names[i], prefix, plen, "");
    } else if (start > 0 && code[start - 1] == '.' && eng_complete_in_kernel(code, start)) {
        static const char *const fields[] = {"x", "y", "z", "w"}; /* threadIdx.x, a float4's .w */
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            match_add(&m, fields[i], prefix, plen, "");
    } else if (start > 0 && code[start - 1] == '.') {
        /* the members and methods of the value's type first (sorted apart), then, only
         * where none matches, every built-in (x.f(a) is f(x, a) for any f) */
        int vt = eng_complete_dot_type(s, code, start - 1);
        if (vt == VAL_TENSOR)
            for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
                match_add(&m, members[i], prefix, plen, "");
        sort_from(&m, 0);
        int typed = m.n;
        if (vt >= 0) {
            for (int i = 0; i < s->nglobals; i++)
                if (s->globals[i].defined && s->globals[i].v.type == VAL_FUNC &&
                    eng_func_takes(s->globals[i].v.as.fn, vt))
                    match_add(&m, s->globals[i].name, prefix, plen, "");
            for (int i = 0; eng_builtin_at(i); i++)
                if (eng_builtin_takes(eng_builtin_at(i), vt))
                    match_add(&m, eng_builtin_at(i)->name, prefix, plen, "");
        }
        sort_from(&m, typed);
        if (m.n == 0)
            for (int i = 0; eng_builtin_at(i); i++)
                match_add(&m, eng_builtin_at(i)->name, prefix, plen, "");
        sort_from(&m, m.n);
    } else if (eng_complete_in_kernel(code, start)) {
        /* CUDA's built-ins, and the names the kernel has used so far (parameters, locals) */
        for (int i = 0; eng_cuda_words[i]; i++)
            match_add(&m, eng_cuda_words[i], prefix, plen, "");
        match_kernel_names(&m, code, start, prefix, plen);
    } else {
        for (int i = 0; i < s->nglobals; i++)
            if (s->globals[i].defined)
                match_add(&m, s->globals[i].name, prefix, plen, "");
        for (int i = 0; i < s->kernels->n; i++)
            match_add(&m, s->kernels->items[i]->name, prefix, plen, "");
        for (int i = 0; eng_builtin_at(i); i++)
            match_add(&m, eng_builtin_at(i)->name, prefix, plen, "");
        for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
            match_add(&m, keywords[i], prefix, plen, "");
        for (int i = 0; check_constant_name(i); i++)
            match_add(&m, check_constant_name(i), prefix, plen, "");
    }
    sort_from(&m, m.sorted);
    int k = 0; /* without repeats, keeping the first of each (groups keep their order) */
    for (int i = 0; i < m.n; i++) {
        int seen = 0;
        for (int j = 0; j < k && !seen; j++)
            seen = !strcmp(m.v[j], m.v[i]);
        if (seen)
            free(m.v[i]);
        else
            m.v[k++] = m.v[i];
    }
    r.matches = m.v;
    r.n = k;
    r.cursor_start = start;
    r.cursor_end = cursor;
    return r;
}

void eng_completions_free(eng_completions *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->matches[i]);
    free(c->matches);
    c->matches = NULL;
    c->n = 0;
}

/* ---- inspection ---- */

#define STATS_MAX_ELEMENTS 10000000LL /* past this, statistics are over an even sample */
#define STATS_SAMPLE 1000000LL
#define HIST_BINS 10

/* statistics and a histogram of a tensor's values, as text lines (malloc'ed) */
static char *tensor_stats_text(const tensor *t)
{
    int64_t n = tensor_numel(t);
    if (n == 0)
        return eng_fmt_alloc("(no elements)\n");
    int64_t step = n > STATS_MAX_ELEMENTS ? n / STATS_SAMPLE : 1;
    eng_error err = {0};
    double *xd = NULL; /* small tensors: one f64 copy on the host; huge ones: read the sample */
    if (step == 1) {   /* (cast on the tensor's device, then one copy to the host) */
        tensor *d = tensor_cast(t, DT_F64, &err);
        xd = d ? tensor_to_host(d, &err) : NULL;
        tensor_decref(d);
        if (!xd)
            return eng_fmt_alloc("statistics unavailable: %s\n", err.msg);
    }
#define X(i) (xd ? xd[i] : tensor_get_flat(t, i))
    int64_t used = 0, nans = 0, infs = 0, finite = 0;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i += step) {
        double v = X(i);
        used++;
        if (isnan(v))
            nans++;
        else if (isinf(v))
            infs++;
        else {
            finite++;
            sum += v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    double mean = finite ? sum / (double)finite : NAN, ss = 0;
    int64_t bins[HIST_BINS] = {0};
    for (int64_t i = 0; i < n; i += step) {
        double v = X(i);
        if (!isfinite(v))
            continue;
        ss += (v - mean) * (v - mean);
        int b = hi > lo ? (int)((v - lo) / (hi - lo) * HIST_BINS) : 0;
        bins[b >= HIST_BINS ? HIST_BINS - 1 : b < 0 ? 0 : b]++;
    }
#undef X
    free(xd);
    double sd = finite ? sqrt(ss / (double)finite) : NAN;
    char head[512];
    if (finite)
        snprintf(head, sizeof head, "min %.6g  max %.6g  mean %.6g  std %.6g  NaN %lld  Inf %lld\n", lo, hi, mean, sd,
                 (long long)nans, (long long)infs);
    else
        snprintf(head, sizeof head, "no finite values  NaN %lld  Inf %lld\n", (long long)nans, (long long)infs);
    char sample[160] = "";
    if (step > 1)
        snprintf(sample, sizeof sample, "(over a sample of %lld of %lld elements: every %lld-th)\n", (long long)used,
                 (long long)n, (long long)step);
    if (!finite)
        return eng_fmt_alloc("%s%s", head, sample);
    /* one row per bin: its range, a bar of block characters and its count */
    static const char *const eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    int64_t top = 1;
    for (int b = 0; b < HIST_BINS; b++)
        top = bins[b] > top ? bins[b] : top;
    char hist[HIST_BINS * 200] = "histogram:\n";
    for (int b = 0; b < HIST_BINS; b++) {
        double a = lo + (hi - lo) * b / HIST_BINS, z = lo + (hi - lo) * (b + 1) / HIST_BINS;
        int units = (int)((double)bins[b] * 30 * 8 / (double)top + 0.5);
        char bar[200] = "";
        for (int k = 0; k < units / 8; k++)
            strcat(bar, "█");
        strcat(bar, eighths[units % 8]);
        size_t l = strlen(hist);
        snprintf(hist + l, sizeof hist - l, "  [%10.4g, %10.4g%c %s %lld\n", a, z, b == HIST_BINS - 1 ? ']' : ')', bar,
                 (long long)bins[b]);
        if (hi <= lo)
            break; /* every value is the same: one bin */
    }
    return eng_fmt_alloc("%s%s%s", head, sample, hist);
}

static char *inspect(eng_session *s, const char *code, int cursor, int detail_level)
{
    int len = (int)strlen(code);
    if (cursor < 0 || cursor > len)
        cursor = len;
    int start = cursor, end = cursor;
    while (start > 0 && is_ident((unsigned char)code[start - 1]))
        start--;
    while (end < len && is_ident((unsigned char)code[end]))
        end++;
    if (start == end) { /* just after "f(": look at the name before the parenthesis */
        int p = cursor;
        while (p > 0 && (code[p - 1] == '(' || code[p - 1] == ' '))
            p--;
        end = p;
        start = p;
        while (start > 0 && is_ident((unsigned char)code[start - 1]))
            start--;
        if (start == end)
            return NULL;
    }
    const char *name = code + start;
    int nlen = end - start;
    int g = eng_global_find(s, name, nlen);
    if (g >= 0 && s->globals[g].defined) {
        value v = s->globals[g].v;
        if (v.type == VAL_TENSOR) {
            tensor *t = v.as.t;
            char *desc = tensor_describe(t);
            char *stats = tensor_stats_text(t);
            char *text = detail_level > 0 || tensor_numel(t) <= 100 ? eng_value_text(v, 1) : NULL;
            char *r = eng_fmt_alloc("%.*s: %s\nbytes %zu%s\n%s%s%s", nlen, name, desc ? desc : "tensor", tensor_nbytes(t),
                                t->requires_grad ? ", requires grad" : "", stats ? stats : "", text ? "\n" : "",
                                text ? text : "");
            free(desc);
            free(stats);
            free(text);
            return r;
        }
        char *text = eng_value_text(v, 1);
        char *r;
        if (v.type == VAL_FUNC) {
            /* the user's definition; one that takes a built-in's name says what it hides;
             * set_backward's pairs */
            const eng_func *fn = v.as.fn;
            const eng_builtin *b = eng_builtin_find(name, nlen);
            const char *def = NULL;
            size_t dlen = 0;
            if (eng_func_text(fn, &def, &dlen))
                def = NULL;
            char shadow[600] = "", pair[300];
            eng_custom_describe(s, s->globals[g].name, pair, sizeof pair);
            if (b)
                snprintf(shadow, sizeof shadow, "\nshadows the built-in %s: calls of %s() run this function "
                         "(%%del %s brings the built-in back)", b->signature, b->name, b->name);
            r = eng_fmt_alloc("function %s%s%s\ndefined in %s, line %d%s%s%.*s", text ? text : "", pair[0] ? "\n" : "",
                              pair, fn->src->name, fn->def->line + fn->src->first_line - 1, shadow, def ? "\n\n" : "",
                              def ? (int)dlen : 0, def ? def : "");
        } else
            r = eng_fmt_alloc("%.*s: %s = %s", nlen, name, value_type_name(v.type), text ? text : "");
        free(text);
        return r;
    }
    eng_kernel *k = eng_kernel_find(s->kernels, name, nlen);
    if (k) {
        char *d = eng_kernel_describe(k, 1);
        char *r = d ? eng_fmt_alloc("%s %s", k->is_global ? "kernel" : "__device__ function", d) : NULL;
        free(d);
        return r;
    }
    const eng_builtin *b = eng_builtin_find(name, nlen);
    if (b)
        return eng_fmt_alloc("built-in %s\n\n%s", b->signature, b->doc);
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if ((int)strlen(keywords[i]) == nlen && !strncmp(keywords[i], name, (size_t)nlen))
            return eng_fmt_alloc("keyword %s (see docs/language.md)", keywords[i]);
    return NULL;
}

char *eng_inspect(eng_session *s, const char *code, int cursor, int detail_level)
{
    eng_ctx *prev = eng_ctx_enter(&s->ctx); /* the statistics are tensor ops of this session */
    char *r = inspect(s, code, cursor, detail_level);
    eng_ctx_leave(prev);
    return r;
}

