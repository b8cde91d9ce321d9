/* run.c — `kiln run FILE...`: each file is a sequence of cells separated by lines that
 * start with `//%%`; each cell runs in one session, printing what a notebook would show:
 * stdout and stderr as they come, a cell's result as text on stdout, errors (with their
 * location, source line and caret) on stderr. `-` reads standard input. Stops at the
 * first failing cell unless -k is given; the exit status is 1 after any error. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "kernel/run.h"

static eng_session *running; /* for the SIGINT handler */

static void on_sigint(int sig)
{
    (void)sig;
    if (running)
        eng_interrupt(running);
}

static void on_stream(void *user, int fd, const char *text, size_t len)
{
    (void)user;
    fwrite(text, 1, len, fd == 2 ? stderr : stdout);
    fflush(fd == 2 ? stderr : stdout);
}

static void print_bundle(const eng_bundle *b)
{
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->items[i].mime, "text/plain")) {
            fputs(b->items[i].data, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            return;
        }
}

static void on_display(void *user, const eng_bundle *b, int update)
{
    (void)user;
    (void)update;
    print_bundle(b);
}

static void on_result(void *user, const eng_bundle *b)
{
    (void)user;
    print_bundle(b);
}

static void on_error(void *user, const eng_error_report *e)
{
    (void)user;
    fflush(stdout);
    for (int i = 0; i < e->ntraceback; i++)
        fprintf(stderr, "%s\n", e->traceback[i]);
    fflush(stderr);
}

static char *on_input(void *user, const char *prompt, int password, size_t *len)
{
    (void)user;
    (void)password;
    fputs(prompt, stdout);
    fflush(stdout);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[--n] = 0;
    *len = (size_t)n;
    return line;
}

static char *read_all(FILE *f)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
    }
    buf[len] = 0;
    return buf;
}

static int is_separator(const char *line) { return !strncmp(line, "//%%", 4); }

/* runs every cell of text; returns the number of failed cells */
static int run_text(eng_session *s, const eng_sink *sink, char *text, const char *name, int keep_going)
{
    int failed = 0;
    char *cell = text;
    int cell_line = 1, line = 1;
    char *p = text;
    for (;;) {
        int at_end = *p == 0;
        if (at_end || ((p == text || p[-1] == '\n') && is_separator(p))) {
            char saved = *p;
            *p = 0;
            /* skip cells that hold only blanks */
            int blank = 1;
            for (char *q = cell; *q; q++)
                if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
                    blank = 0;
            if (!blank && eng_execute(s, cell, name, cell_line, sink)) {
                failed++;
                if (!keep_going) {
                    *p = saved;
                    return failed;
                }
            }
            *p = saved;
            if (at_end)
                break;
            /* skip the separator line */
            while (*p && *p != '\n')
                p++;
            if (*p == '\n')
                p++;
            line++;
            cell = p;
            cell_line = line;
            continue;
        }
        if (*p == '\n')
            line++;
        p++;
    }
    return failed;
}

int kn_run_main(int argc, char **argv)
{
    int keep_going = 0, nfiles = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-k") || !strcmp(argv[i], "--keep-going"))
            keep_going = 1;
        else
            nfiles++;
    }
    if (nfiles == 0) {
        fprintf(stderr, "usage: kiln run [-k] FILE... ('-' reads standard input)\n");
        return 2;
    }
    eng_session *s = eng_session_new();
    if (!s) {
        fprintf(stderr, "kiln: out of memory\n");
        return 1;
    }
    running = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    eng_sink sink = {NULL, on_stream, on_display, on_result, on_error, NULL, on_input};
    for (int i = 1; i < argc && (keep_going || !failed); i++) {
        const char *path = argv[i];
        if (!strcmp(path, "-k") || !strcmp(path, "--keep-going"))
            continue;
        FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
        if (!f) {
            fprintf(stderr, "kiln run: cannot open %s: %s\n", path, strerror(errno));
            failed++;
            continue;
        }
        char *text = read_all(f);
        if (f != stdin)
            fclose(f);
        if (!text) {
            fprintf(stderr, "kiln run: cannot read %s\n", path);
            failed++;
            continue;
        }
        failed += run_text(s, &sink, text, strcmp(path, "-") ? path : "<stdin>", keep_going);
        free(text);
    }
    running = NULL;
    eng_session_free(s);
    return failed ? 1 : 0;
}
