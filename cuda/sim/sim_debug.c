/* sim_debug.c — the source side of the simulator's debug builds: instruments a kernel's
 * C++ so that one chosen thread reports each line it runs, with its locals.
 *
 * sim_debug_instrument copies the translation unit, adding on the same physical line
 * (so the #line directives keep every cell line where it was):
 *   - after the `{` of each function body: `KILN_DBG_FRAME` (kiln_sim.h), an object
 *     whose constructor and destructor tell the runtime the target thread entered or
 *     left a function (its call depth, for next / step out);
 *   - before the first token of a line that starts a statement inside a function body:
 *     `if (kiln_dbg_me()) { kiln_dbg_vars_t v; v.add("i", i); ...; v.line(__FILE__,
 *     __LINE__, __func__); }` with every parameter and local declared before that line
 *     and still in scope (an inner one hides an outer one of the same name). The types
 *     are the compiler's (kiln_dbg_vars_t::add is a template): scalars, pointers (the
 *     worker turns them into an argument and an element), fixed arrays; anything else
 *     is named with "(not shown)".
 *
 * It is a lexical pass, not a C++ parser. What it recognises: declarations at the
 * start of a statement (`T a = ..., *b, c[4];`, `for (int i = 0; ...)`, range for), the
 * parameters of a function whose `{` follows its `)`. What gets no hook (the line still
 * runs, the debugger just does not stop on it): a line continuing a statement, the body
 * of an `if`/`for`/`while` written without braces, a line starting with `else` or with
 * the `while` of a do-while, lambdas and initializer lists, constexpr functions,
 * one-line function bodies. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/sim/sim_internal.h"

enum { K_OTHER, K_FUNC, K_BLOCK };
#define DB_MAXB 256
#define DB_MAXV 512
#define DB_NAME 40

typedef struct dbg_var {
    char name[DB_NAME];
    int depth; /* the brace depth it lives at */
} dbg_var;

typedef struct dbg_st {
    int kind[DB_MAXB], func_base[DB_MAXB]; /* brace stack: kind, first visible var */
    int nb;
    dbg_var v[DB_MAXV];
    int nv;
    int base;                   /* vars visible from here (the innermost function's) */
    int pd;                     /* paren/bracket depth */
    int plambda[DB_MAXB];       /* a '(' opened right after ']' */
    int pfor[DB_MAXB];          /* a '(' opened right after 'for' */
    /* the parameters of the last top-level paren group (outside function bodies) */
    char par[64][DB_NAME];
    int npar, seg_nid, seg_stop;
    char seg_last[DB_NAME];
    int constexpr_seen;
    /* the statement being read */
    int st_state;               /* 0 prefix, 1 declarators, 2 not a declaration */
    int st_nid, st_depth, st_angle, st_q, st_expect, st_first;
    int st_iangle;              /* template arguments open in an initializer (f<A, B>) */
    char st_last[DB_NAME];
    char pend[32][DB_NAME];
    int npend;
    int dim_watch;              /* the pending declarator whose [size] is being read (-1) */
    int in_for_init, for_pd;
    char forv[32][DB_NAME];
    int nforv, for_pending;
    /* the token before */
    char prev[DB_NAME];
    int prev_id;                /* prev is an identifier */
    int last_lambda;            /* the last ')' closed a paren opened after ']' */
    int last_closed;            /* kind of the brace the last '}' closed */
} dbg_st;

static int db_ident(int c) { return isalnum(c) || c == '_'; }

static int db_top(const dbg_st *s) { return s->nb ? s->kind[s->nb - 1] : K_OTHER; }

static void add_var(dbg_st *s, const char *name, int depth) {
    if (s->nv < DB_MAXV && name[0]) {
        snprintf(s->v[s->nv].name, DB_NAME, "%s", name);
        s->v[s->nv].depth = depth;
        s->nv++;
    }
}

/* BLOCK, N_2: a macro's name (an array size that is a compile-time constant) */
static int all_caps(const char *w) {
    for (; *w; w++)
        if (islower((unsigned char)*w)) return 0;
    return 1;
}

static void st_reset(dbg_st *s) {
    s->dim_watch = -1;
    s->st_state = 0;
    s->st_nid = s->st_depth = s->st_angle = s->st_q = s->st_expect = s->st_iangle = 0;
    s->st_first = 1;
    s->st_last[0] = '\0';
}

static void pend_add(dbg_st *s, const char *name) {
    if (s->npend < 32) snprintf(s->pend[s->npend++], DB_NAME, "%s", name);
}

static int is_stop_word(const char *w) {
    static const char *const words[] = {"return", "if", "else", "for", "while", "do", "switch", "case", "default",
                                        "goto", "break", "continue", "delete", "throw", "using", "typedef", "sizeof",
                                        "new", "namespace", "template", "static_assert", "asm", "__asm__", "try",
                                        "catch", "operator", "friend", "public", "private", "protected",
                                        "co_return", "__syncthreads", "alignof",
                                        "decltype", "KILN_EXTERN_SHARED"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(w, words[i])) return 1;
    return 0;
}

/* a token of the statement being read (declaration recognition) */
static void st_token(dbg_st *s, const char *tok, int is_id) {
    int first = s->st_first;
    s->st_first = 0;
    if (s->st_state == 2) return;
    if (s->st_angle) { /* inside template arguments of the type */
        if (!strcmp(tok, "<")) s->st_angle++;
        else if (!strcmp(tok, ">")) s->st_angle--;
        else if (!strcmp(tok, ">>")) s->st_angle = s->st_angle > 2 ? s->st_angle - 2 : 0;
        else if (!strcmp(tok, ";") || !strcmp(tok, "{")) s->st_state = 2;
        return;
    }
    if (s->st_state == 0) {
        if (is_id) {
            if (first && is_stop_word(tok)) {
                s->st_state = 2;
                return;
            }
            s->st_nid++;
            snprintf(s->st_last, DB_NAME, "%s", tok);
            return;
        }
        int term = !strcmp(tok, "=") || !strcmp(tok, ";") || !strcmp(tok, "[") || !strcmp(tok, ",") ||
                   !strcmp(tok, "(") || (s->in_for_init && !strcmp(tok, ":"));
        if (term && s->st_nid >= 2 && s->prev_id) {
            pend_add(s, s->st_last);
            if (!strcmp(tok, "[")) s->dim_watch = s->npend - 1;
            s->st_state = 1;
            if (strcmp(tok, ",") == 0) s->st_expect = 1;
            else if (strcmp(tok, ";") != 0 && strcmp(tok, ":") != 0) s->st_depth = 1; /* inside = ... [ ( */
            if (!strcmp(tok, "=")) s->st_depth = 0;
            return;
        }
        if (s->st_nid >= 1 && (!strcmp(tok, "*") || !strcmp(tok, "&") || !strcmp(tok, "&&") || !strcmp(tok, "::")))
            return;
        if (s->st_nid >= 1 && !strcmp(tok, "<")) {
            s->st_angle = 1;
            return;
        }
        if (!strcmp(tok, "::")) return;
        s->st_state = 2;
        return;
    }
    /* st_state 1: after a declarator; more after a ',' at depth 0 */
    if (s->dim_watch >= 0 && s->st_depth > 0 && is_id && strcmp(tok, "sizeof") != 0 && !all_caps(tok))
        s->pend[s->dim_watch][0] = '\0'; /* float buf[n]: maybe variable-length, not shown */
    if (s->st_expect == 2 && !s->st_depth) { /* after the name of a declarator past a ',' */
        if (!strcmp(tok, "=") || !strcmp(tok, ",") || !strcmp(tok, ";") || !strcmp(tok, "[") || !strcmp(tok, "(")) {
            pend_add(s, s->st_last);
            if (!strcmp(tok, "[")) s->dim_watch = s->npend - 1;
        }
        s->st_expect = !strcmp(tok, ",") ? 1 : 0;
        if (!strcmp(tok, "[") || !strcmp(tok, "(")) s->st_depth = 1;
        return;
    }
    if (!strcmp(tok, "(") || !strcmp(tok, "[") || !strcmp(tok, "{")) {
        s->st_depth++;
        s->st_expect = 0;
        return;
    }
    if (!strcmp(tok, ")") || !strcmp(tok, "]") || !strcmp(tok, "}")) {
        if (s->st_depth > 0) s->st_depth--;
        if (!s->st_depth) s->dim_watch = -1;
        return;
    }
    if (s->st_depth) return;
    /* f<A, B>(x) in an initializer: its commas separate no declarators (a '<' after a
     * name is taken for template arguments; a comparison there hides what follows) */
    if (!strcmp(tok, "<") && s->prev_id) {
        s->st_iangle++;
        return;
    }
    if (s->st_iangle) {
        if (!strcmp(tok, ">")) s->st_iangle--;
        else if (!strcmp(tok, ">>")) s->st_iangle = s->st_iangle > 2 ? s->st_iangle - 2 : 0;
        return;
    }
    if (!strcmp(tok, ",")) {
        s->st_expect = 1;
        s->st_last[0] = '\0';
        return;
    }
    if (s->st_expect == 1) {
        if (!strcmp(tok, "*") || !strcmp(tok, "&")) return;
        if (is_id) {
            snprintf(s->st_last, DB_NAME, "%s", tok);
            s->st_expect = 2;
            return;
        }
        s->st_expect = 0;
        return;
    }
}

/* the statement ends: its declarations become visible at the current depth */
static void st_commit(dbg_st *s) {
    for (int i = 0; i < s->npend; i++)
        if (s->pend[i][0]) add_var(s, s->pend[i], s->nb);
    s->npend = 0;
}

/* the hook for a line: every visible variable, inner ones hiding outer ones */
static void put_hook(strbuf *out, const dbg_st *s) {
    strbuf_printf(out, "if (__builtin_expect(kiln_dbg_me(), 0)) { kiln_dbg_vars_t kiln_dbg_v_; ");
    for (int i = s->base; i < s->nv; i++) {
        int hidden = 0;
        for (int j = i + 1; j < s->nv && !hidden; j++) hidden = !strcmp(s->v[i].name, s->v[j].name);
        if (!hidden) strbuf_printf(out, "kiln_dbg_v_.add(\"%s\", %s); ", s->v[i].name, s->v[i].name);
    }
    strbuf_printf(out, "kiln_dbg_v_.line(__FILE__, __LINE__, __func__); } ");
}

static int line_may_hook(const dbg_st *s, const char *tok) {
    int top = db_top(s);
    if ((top != K_FUNC && top != K_BLOCK) || s->pd || s->for_pending) return 0;
    if (!strcmp(tok, "else") || !strcmp(tok, "catch") || !strcmp(tok, "#")) return 0;
    if (!strcmp(tok, "}") && top != K_FUNC) return 0; /* a block's end: only a function's stops */
    if (!strcmp(s->prev, ";") || !strcmp(s->prev, "{")) return 1;
    if (!strcmp(s->prev, "}")) return s->last_closed != K_OTHER && strcmp(tok, "while") != 0;
    if (!strcmp(s->prev, ":")) return !s->st_q; /* a label, not a ?: */
    return 0;
}

static void on_open_brace(dbg_st *s, strbuf *out) {
    int top = db_top(s), kind = K_OTHER;
    if (top == K_OTHER) {
        if (!strcmp(s->prev, ")") && !s->last_lambda && !s->constexpr_seen) kind = K_FUNC;
    } else if ((!strcmp(s->prev, ")") && !s->last_lambda) || !strcmp(s->prev, ";") || !strcmp(s->prev, "{") ||
               !strcmp(s->prev, "}") || !strcmp(s->prev, "else") || !strcmp(s->prev, "do") ||
               !strcmp(s->prev, "try") || (!strcmp(s->prev, ":") && !s->st_q)) {
        kind = K_BLOCK;
    }
    if (s->nb >= DB_MAXB) return;
    s->func_base[s->nb] = s->base;
    s->kind[s->nb++] = kind;
    if (kind == K_FUNC) {
        s->base = s->nv;
        for (int i = 0; i < s->npar; i++) add_var(s, s->par[i], s->nb);
        strbuf_printf(out, " KILN_DBG_FRAME ");
    } else if (kind == K_BLOCK && s->for_pending) {
        for (int i = 0; i < s->nforv; i++) add_var(s, s->forv[i], s->nb);
    }
    s->nforv = 0;
    s->for_pending = 0;
    s->npar = 0;
    s->constexpr_seen = 0;
}

static void on_close_brace(dbg_st *s) {
    if (!s->nb) return;
    while (s->nv > 0 && s->v[s->nv - 1].depth >= s->nb) s->nv--;
    s->nb--;
    s->last_closed = s->kind[s->nb];
    s->base = s->func_base[s->nb];
    if (s->base > s->nv) s->base = s->nv;
}

/* param collection: a token in a top-level paren group */
static void par_token(dbg_st *s, const char *tok, int is_id) {
    if (s->pd != 1) return;
    if (is_id && !s->seg_stop) {
        s->seg_nid++;
        snprintf(s->seg_last, DB_NAME, "%s", tok);
    } else if (!strcmp(tok, "=") || !strcmp(tok, "[")) {
        s->seg_stop = 1;
    }
}

static void par_end_segment(dbg_st *s) {
    if (s->seg_nid >= 2 && s->npar < 64 && strcmp(s->seg_last, "void")) snprintf(s->par[s->npar++], DB_NAME, "%s", s->seg_last);
    s->seg_nid = 0;
    s->seg_stop = 0;
    s->seg_last[0] = '\0';
}

/* one token (tok, NUL-terminated) */
static void on_token(dbg_st *s, strbuf *out, const char *tok, int is_id) {
    int top = db_top(s);
    int in_body = top == K_FUNC || top == K_BLOCK;
    /* the statement machine (in function bodies, or in a for's init clause) */
    if ((in_body && (s->pd == 0 || s->in_for_init)) || s->st_state == 1) st_token(s, tok, is_id);
    if (!strcmp(tok, "?")) s->st_q = 1;
    if (top == K_OTHER && is_id && !strcmp(tok, "constexpr")) s->constexpr_seen = 1;
    if (s->for_pending && strcmp(tok, "{") != 0) { /* a for body without braces */
        s->for_pending = 0;
        s->nforv = 0;
    }
    if (!strcmp(tok, "(") || !strcmp(tok, "[")) {
        if (s->pd < DB_MAXB) {
            s->plambda[s->pd] = !strcmp(s->prev, "]");
            s->pfor[s->pd] = in_body && !strcmp(tok, "(") && !strcmp(s->prev, "for");
        }
        if (top == K_OTHER && s->pd == 0 && !strcmp(tok, "(")) {
            s->npar = 0;
            s->seg_nid = s->seg_stop = 0;
        }
        s->pd++;
        if (s->pd - 1 < DB_MAXB && s->pfor[s->pd - 1]) { /* for ( : its init clause */
            st_reset(s);
            s->npend = 0;
            s->in_for_init = 1;
            s->for_pd = s->pd;
        }
    } else if (!strcmp(tok, ")") || !strcmp(tok, "]")) {
        if (top == K_OTHER && s->pd == 1 && !strcmp(tok, ")")) par_end_segment(s);
        if (s->pd > 0) s->pd--;
        s->last_lambda = s->pd < DB_MAXB && s->plambda[s->pd];
        if (s->pd < DB_MAXB && s->pfor[s->pd]) {
            s->pfor[s->pd] = 0;
            if (s->in_for_init) { /* a range for: its variable */
                s->in_for_init = 0;
                for (int i = 0; i < s->npend && s->nforv < 32; i++) snprintf(s->forv[s->nforv++], DB_NAME, "%s", s->pend[i]);
                s->npend = 0;
            }
            s->for_pending = 1;
            s->st_state = 2;
        }
    } else if (!strcmp(tok, ",") && top == K_OTHER && s->pd == 1) {
        par_end_segment(s);
    } else if (!strcmp(tok, ";")) {
        if (s->in_for_init && s->pd == s->for_pd) {
            s->in_for_init = 0;
            for (int i = 0; i < s->npend && s->nforv < 32; i++) snprintf(s->forv[s->nforv++], DB_NAME, "%s", s->pend[i]);
            s->npend = 0;
            s->st_state = 2;
        } else if (in_body && s->pd == 0) {
            st_commit(s);
        }
        if (top == K_OTHER && s->pd == 0) s->constexpr_seen = 0;
    } else if (!strcmp(tok, "{")) {
        if (s->pd == 0 || top == K_OTHER) {
            on_open_brace(s, out);
        }
    } else if (!strcmp(tok, "}")) {
        if (s->pd == 0 || top == K_OTHER) on_close_brace(s);
    }
    if (top == K_OTHER) par_token(s, tok, is_id);
    /* a statement starts after ; { } or a label's : (in a body, outside parens) */
    int now = db_top(s);
    if ((now == K_FUNC || now == K_BLOCK) && s->pd == 0 && !s->in_for_init &&
        (!strcmp(tok, ";") || !strcmp(tok, "{") || !strcmp(tok, "}") || (!strcmp(tok, ":") && !s->st_q && s->st_nid <= 2))) {
        if (strcmp(tok, "}") != 0 || s->last_closed != K_OTHER) {
            s->npend = 0;
            st_reset(s);
        }
    }
    snprintf(s->prev, DB_NAME, "%s", tok);
    s->prev_id = is_id;
}

/* the punctuators that matter as one token */
static size_t punct_len(const char *p) {
    static const char *const two[] = {"::", "->", "++", "--", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||",
                                      "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^="};
    for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
        if (p[0] == two[i][0] && p[1] == two[i][1]) return 2;
    return 1;
}

int sim_debug_instrument(strbuf *out, const char *src) {
    dbg_st *s = calloc(1, sizeof *s); /* about 40 KB: not on the stack */
    if (!s) return -1;
    st_reset(s);
    const char *p = src;
    int line_start = 1;
    while (*p) {
        char c = *p;
        if (c == '\n') {
            strbuf_put(out, p, 1);
            p++;
            line_start = 1;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            strbuf_put(out, p, 1);
            p++;
            continue;
        }
        if (c == '/' && p[1] == '/') {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            strbuf_put(out, p, n);
            p += n;
            continue;
        }
        if (c == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            size_t n = e ? (size_t)(e + 2 - p) : strlen(p);
            strbuf_put(out, p, n);
            p += n;
            continue;
        }
        if (line_start && c == '#') { /* a preprocessor line, with its continuations */
            const char *e = p;
            while (*e && *e != '\n') {
                if (*e == '\\' && e[1] == '\n') e++;
                e++;
            }
            strbuf_put(out, p, (size_t)(e - p));
            p = e;
            continue;
        }
        /* a token */
        char tok[DB_NAME];
        size_t n;
        int is_id = 0;
        if (db_ident((unsigned char)c)) {
            n = 0;
            while (db_ident((unsigned char)p[n])) n++;
            is_id = !isdigit((unsigned char)c);
            if (!is_id) /* a number: its exponent sign and dots too */
                while (p[n] == '.' || ((p[n] == '+' || p[n] == '-') && (p[n - 1] == 'e' || p[n - 1] == 'E' ||
                                                                        p[n - 1] == 'p' || p[n - 1] == 'P')) ||
                       db_ident((unsigned char)p[n]))
                    n++;
        } else if (c == '"' || c == '\'') {
            n = 1;
            while (p[n] && p[n] != c && p[n] != '\n') n += p[n] == '\\' && p[n + 1] ? 2 : 1;
            if (p[n] == c) n++;
        } else if (c == '.' && isdigit((unsigned char)p[1])) {
            n = 1;
            while (db_ident((unsigned char)p[n]) || p[n] == '.') n++;
        } else {
            n = punct_len(p);
        }
        snprintf(tok, sizeof tok, "%.*s", (int)(n < sizeof tok - 1 ? n : sizeof tok - 1), p);
        if (c == '"' || c == '\'') snprintf(tok, sizeof tok, "\"\""); /* a literal: its text does not matter */
        else if (!is_id && db_ident((unsigned char)c)) snprintf(tok, sizeof tok, "0");
        if (line_start && line_may_hook(s, tok)) put_hook(out, s);
        line_start = 0;
        strbuf_put(out, p, n);
        p += n;
        on_token(s, out, tok, is_id);
    }
    free(s);
    return out->oom ? -1 : 0;
}
