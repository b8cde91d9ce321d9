/* parse.c — the parser: a cell's tokens to a syntax tree in the cell's arena.
 *
 * A recursive-descent parser in the manner of Lua's lparser.c and clox's compiler, with
 * one token of lookahead (and a peek at the next for casts) and the grammar rule of
 * each function in a comment above it. Expressions use precedence climbing over C's
 * binary operator levels ('@' binds like '*').
 *
 * Errors: every syntax error of a cell is reported, as wren and clox do. A parse error
 * is recorded and then unwinds (longjmp) to the statement being parsed in the innermost
 * block, which skips to the next ';' at depth 0, or past a '{...}' group, or stops
 * before the '}' closing the block (parse_sync), and goes on with the next statement.
 * Further errors of a statement that already failed are not reported (panic mode).
 * Errors from the lexer (unknown characters, unterminated strings) are all reported.
 * Nesting is capped at PARSE_MAX_DEPTH so that no input recurses without bound, and
 * each level checks the C stack left (engine/base/stack.h). Left-associative chains
 * (`a + b + c`, `x.T.T`, `z[0][0]`, calls) are loops, not recursion.
 *
 * Memory: nodes, lists and decoded strings are allocated in out->arena; a failed
 * allocation ends the parse with an ERR_MEMORY error.
 */
#include "engine/lang/ast.h"
#include "engine/lang/kernels.h"
#include "engine/base/stack.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_MAX_DEPTH 256

typedef struct parser {
    lexer lx;          /* over the arena's copy of the cell */
    token cur;         /* the lookahead */
    token prev;        /* the token just consumed */
    arena *ar;         /* the cell's arena */
    eng_error *errs;   /* caller's array */
    int max_errs;      /* its size */
    int nerrs;         /* errors found (may exceed max_errs) */
    int panic;         /* the current statement has failed: report nothing more */
    int oom;           /* an allocation failed: stop */
    int depth;         /* nesting of statements and expressions */
    uintptr_t stack_limit; /* the C stack may not be used below this (engine/base/stack.h) */
    int block_depth;   /* 0 at top level, > 0 inside a function body or block */
    jmp_buf *jb;       /* where a failed statement unwinds to */
    ast **stmts;       /* the cell's top-level statements so far */
    int nstmts, cap;   /* their count and room */
} parser;

/* ---- errors ---- */

static void parse_record(parser *p, eng_errkind kind, int line, int col, const char *fmt, va_list ap)
{
    if (p->nerrs < p->max_errs && p->errs) {
        eng_error *e = &p->errs[p->nerrs];
        e->kind = kind;
        e->line = line;
        e->col = col;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    p->nerrs++;
}

/* Records an error unless the statement has already failed. */
static void parse_error_at(parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void parse_error_at(parser *p, int line, int col, const char *fmt, ...)
{
    if (p->panic)
        return;
    va_list ap;
    va_start(ap, fmt);
    parse_record(p, ERR_SYNTAX, line, col, fmt, ap);
    va_end(ap);
    p->panic = 1;
}

/* Records an error and unwinds to the statement. */
static void parse_fail_at(parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
static void parse_fail_at(parser *p, int line, int col, const char *fmt, ...)
{
    if (!p->panic) {
        va_list ap;
        va_start(ap, fmt);
        parse_record(p, ERR_SYNTAX, line, col, fmt, ap);
        va_end(ap);
        p->panic = 1;
    }
    longjmp(*p->jb, 1);
}

static void parse_oom(parser *p) __attribute__((noreturn));
static void parse_oom(parser *p)
{
    if (!p->oom) {
        if (p->nerrs < p->max_errs && p->errs) {
            eng_error *e = &p->errs[p->nerrs];
            e->kind = ERR_MEMORY;
            e->line = p->cur.line;
            e->col = p->cur.col;
            snprintf(e->msg, sizeof e->msg, "out of memory while parsing the cell");
        }
        p->nerrs++;
    }
    p->oom = 1;
    longjmp(*p->jb, 1);
}

/* A token as a message shows it: "';'", "'foo'", "end of cell", "string". */
static const char *parse_describe(const token *t, char *buf, size_t n)
{
    switch (t->kind) {
    case TK_EOF: case TK_MAGIC: case TK_KERNEL: case TK_DEFINES: case TK_STRING:
        return tok_kind_name(t->kind);
    default:
        break;
    }
    int len = t->len > 40 ? 40 : t->len;
    int i;
    for (i = 0; i < len; i++)
        if (t->start[i] == '\n')
            break;
    snprintf(buf, n, "'%.*s%s'", i, t->start, i < t->len ? "..." : "");
    return buf;
}

/* Line and column just past the token t. */
static void parse_end_of(const token *t, int *line, int *col)
{
    *line = t->line;
    *col = t->col;
    for (int i = 0; i < t->len; i++) {
        if (t->start[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int parse_first_on_line(const char *src, const char *s)
{
    while (s > src && (s[-1] == ' ' || s[-1] == '\t' || s[-1] == '\r'))
        s--;
    return s == src || s[-1] == '\n';
}

static int parse_has_kernel_word(const token *t)
{
    for (int i = 0; i + 10 <= t->len; i++)
        if (memcmp(t->start + i, "__global__", 10) == 0 || memcmp(t->start + i, "__device__", 10) == 0)
            return 1;
    return 0;
}

/* Reports a TK_ERROR token from the lexer (always: these are distinct errors). */
static void parse_lex_error(parser *p, const token *t)
{
    char c = t->len ? t->start[0] : 0;
    p->panic = 0;
    if (c == '/' && t->len > 1 && t->start[1] == '*')
        parse_error_at(p, t->line, t->col, "unterminated comment");
    else if (c == '"')
        parse_error_at(p, t->line, t->col, "unterminated string");
    else if (c == '\'')
        parse_error_at(p, t->line, t->col, "unterminated character literal");
    else if ((c == '#' && parse_first_on_line(p->lx.src, t->start)) || c == '_') {
        if (parse_has_kernel_word(t))
            parse_error_at(p, t->line, t->col, "unterminated kernel definition: no '}' closes it");
        else
            parse_error_at(p, t->line, t->col,
                           "preprocessor lines are only allowed before __global__ / __device__ definitions");
    } else if ((unsigned char)c >= 0x80 || (c >= 0x20 && c < 0x7f))
        parse_error_at(p, t->line, t->col, "unexpected character '%.*s'", t->len, t->start);
    else
        parse_error_at(p, t->line, t->col, "unexpected character '\\x%02x'", (unsigned char)c);
    p->panic = 1;
}

/* ---- tokens ---- */

static void parse_advance(parser *p)
{
    p->prev = p->cur;
    for (;;) {
        p->cur = lex_next(&p->lx);
        if (p->cur.kind != TK_ERROR)
            return;
        parse_lex_error(p, &p->cur);
    }
}

static token parse_peek(parser *p)
{
    lexer copy = p->lx;
    return lex_next(&copy);
}

static int parse_accept(parser *p, tok_kind k)
{
    if (p->cur.kind != k)
        return 0;
    parse_advance(p);
    return 1;
}

/* Expects k ("expected ')' after the condition, found ';'"). */
static void parse_expect(parser *p, tok_kind k, const char *where)
{
    if (p->cur.kind == k) {
        parse_advance(p);
        return;
    }
    char buf[64];
    parse_fail_at(p, p->cur.line, p->cur.col, "expected %s%s%s, found %s", tok_kind_name(k),
                  where ? " " : "", where ? where : "", parse_describe(&p->cur, buf, sizeof buf));
}

/* Expects the closer k of the opener open. */
static void parse_expect_close(parser *p, tok_kind k, const token *open)
{
    if (p->cur.kind == k) {
        parse_advance(p);
        return;
    }
    char buf[64];
    parse_fail_at(p, p->cur.line, p->cur.col, "expected %s to close %s at line %d, column %d, found %s",
                  tok_kind_name(k), tok_kind_name(open->kind), open->line, open->col,
                  parse_describe(&p->cur, buf, sizeof buf));
}

static void parse_enter(parser *p)
{
    if (++p->depth > PARSE_MAX_DEPTH)
        parse_fail_at(p, p->cur.line, p->cur.col, "nesting too deep (more than %d levels)", PARSE_MAX_DEPTH);
    if (eng_stack_exhausted(p->stack_limit))
        parse_fail_at(p, p->cur.line, p->cur.col, "nesting too deep: parsing it used all %.1f MB of the stack",
                      (double)eng_stack_usable() / (1 << 20));
}

static void parse_leave(parser *p) { p->depth--; }

/* ---- nodes ---- */

static ast *parse_node(parser *p, ast_kind kind, int line, int col)
{
    ast *n = arena_alloc(p->ar, sizeof *n);
    if (!n)
        parse_oom(p);
    n->kind = kind;
    n->line = line;
    n->col = col;
    return n;
}

static ast *parse_node_at(parser *p, ast_kind kind, const token *t)
{
    return parse_node(p, kind, t->line, t->col);
}

static char *parse_strndup(parser *p, const char *s, size_t n)
{
    char *r = arena_strndup(p->ar, s, n);
    if (!r)
        parse_oom(p);
    return r;
}

/* A growing list of nodes in the arena (old copies are left to the arena). */
typedef struct parse_list {
    ast **items;
    int n, cap;
} parse_list;

static void parse_push(parser *p, parse_list *l, ast *n)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        ast **items = arena_alloc(p->ar, sizeof *items * (size_t)cap);
        if (!items)
            parse_oom(p);
        if (l->n)
            memcpy(items, l->items, sizeof *items * (size_t)l->n);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = n;
}

static void parse_set_list(ast *n, const parse_list *l)
{
    n->list = l->items;
    n->nlist = l->n;
}

static void parse_set_name(parser *p, ast *n, const token *t)
{
    n->str = parse_strndup(p, t->start, (size_t)t->len);
    n->slen = t->len;
}

/* ---- literals ---- */

/* INT: decimal, 0x hex or 0 octal, with u/l suffixes ignored */
static ast *parse_int_literal(parser *p, const token *t)
{
    int n = t->len;
    while (n > 0 && (t->start[n - 1] == 'u' || t->start[n - 1] == 'U' || t->start[n - 1] == 'l' ||
                     t->start[n - 1] == 'L'))
        n--;
    const char *s = t->start;
    int base = 10, i = 0;
    if (n > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    } else if (n > 1 && s[0] == '0') {
        base = 8;
        i = 1;
    }
    if (i >= n)
        parse_fail_at(p, t->line, t->col, "malformed number '%.*s'", t->len, t->start);
    uint64_t v = 0;
    int overflow = 0;
    for (; i < n; i++) {
        int c = (unsigned char)s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            d = 99;
        if (d >= base)
            parse_fail_at(p, t->line, t->col, "malformed number '%.*s'", t->len, t->start);
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            overflow = 1;
        else
            v = v * (uint64_t)base + (uint64_t)d;
    }
    if (overflow || v > (uint64_t)INT64_MAX)
        parse_fail_at(p, t->line, t->col, "integer literal '%.*s' is too large (the largest int is %lld)",
                      t->len > 64 ? 64 : t->len, t->start, (long long)INT64_MAX);
    ast *node = parse_node_at(p, AST_INT, t);
    node->ival = (int64_t)v;
    return node;
}

/* FLOAT: digits with '.' and/or an exponent, optional f suffix */
static ast *parse_float_literal(parser *p, const token *t)
{
    int n = t->len;
    if (n > 1 && (t->start[n - 1] == 'f' || t->start[n - 1] == 'F') &&
        !(t->start[0] == '0' && (t->start[1] == 'x' || t->start[1] == 'X')))
        n--;
    char *s = parse_strndup(p, t->start, (size_t)n);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s + n || n == 0)
        parse_fail_at(p, t->line, t->col, "malformed number '%.*s'", t->len, t->start);
    if (errno == ERANGE && (v > 1.0 || v < -1.0))
        parse_fail_at(p, t->line, t->col, "float literal '%.*s' is out of range", t->len > 64 ? 64 : t->len,
                      t->start);
    ast *node = parse_node_at(p, AST_FLOAT, t);
    node->fval = v;
    return node;
}

static int parse_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the quoted text of t (between its quotes) to out; returns the length. */
static int parse_decode(parser *p, const token *t, char *out)
{
    const char *s = t->start + 1, *end = t->start + t->len - 1;
    int n = 0;
    while (s < end) {
        if (*s != '\\') {
            out[n++] = *s++;
            continue;
        }
        const char *esc = s++;
        int col = t->col + (int)(esc - t->start);
        switch (*s) {
        case 'n': out[n++] = '\n'; s++; break;
        case 't': out[n++] = '\t'; s++; break;
        case 'r': out[n++] = '\r'; s++; break;
        case 'a': out[n++] = '\a'; s++; break;
        case 'b': out[n++] = '\b'; s++; break;
        case 'f': out[n++] = '\f'; s++; break;
        case 'v': out[n++] = '\v'; s++; break;
        case '\\': case '"': case '\'': case '?': out[n++] = *s++; break;
        case 'x': {
            s++;
            int v = 0, k = 0;
            while (k < 2 && s < end && parse_hexval((unsigned char)*s) >= 0) {
                v = v * 16 + parse_hexval((unsigned char)*s++);
                k++;
            }
            if (k == 0)
                parse_fail_at(p, t->line, col, "\\x used with no hex digits following it");
            out[n++] = (char)v;
            break;
        }
        default:
            if (*s >= '0' && *s <= '7') {
                int v = 0, k = 0;
                while (k < 3 && s < end && *s >= '0' && *s <= '7') {
                    v = v * 8 + (*s++ - '0');
                    k++;
                }
                out[n++] = (char)(v & 0xff);
            } else {
                parse_fail_at(p, t->line, col, "unknown escape sequence '\\%c'",
                              (*s >= 0x20 && *s < 0x7f) ? *s : '?');
            }
        }
    }
    return n;
}

/* string := STRING { STRING }   (adjacent literals are joined) */
static ast *parse_string(parser *p)
{
    token first = p->cur;
    lexer save = p->lx;
    size_t total = 0;
    token t = p->cur;
    while (t.kind == TK_STRING) {
        total += (size_t)t.len;
        t = lex_next(&save);
    }
    char *buf = arena_alloc(p->ar, total + 1);
    if (!buf)
        parse_oom(p);
    int n = 0;
    while (p->cur.kind == TK_STRING) {
        token s = p->cur;
        parse_advance(p);
        n += parse_decode(p, &s, buf + n);
    }
    buf[n] = 0;
    ast *node = parse_node_at(p, AST_STRING, &first);
    node->str = buf;
    node->slen = n;
    return node;
}

/* char := CHAR   ('a', '\n': an int) */
static ast *parse_char(parser *p)
{
    token t = p->cur;
    parse_advance(p);
    char buf[8];
    if (t.len > 6)
        parse_fail_at(p, t.line, t.col, "character literal %.*s has more than one character",
                      t.len > 40 ? 40 : t.len, t.start);
    int n = parse_decode(p, &t, buf);
    if (n != 1)
        parse_fail_at(p, t.line, t.col, "character literal %.*s must hold exactly one character", t.len,
                      t.start);
    ast *node = parse_node_at(p, AST_INT, &t);
    node->ival = (unsigned char)buf[0];
    return node;
}

/* ---- expressions ---- */

static ast *parse_expression(parser *p);
static ast *parse_unary(parser *p);

static int parse_is_lvalue(const ast *n)
{
    return n->kind == AST_NAME || n->kind == AST_INDEX || n->kind == AST_MEMBER;
}

/* args := [ expression { ',' expression } ]   (after '('; consumes the ')') */
static void parse_args(parser *p, ast *n, const token *open)
{
    parse_list l = {0};
    if (p->cur.kind != TK_RPAREN) {
        do {
            parse_push(p, &l, parse_expression(p));
        } while (parse_accept(p, TK_COMMA));
    }
    parse_expect_close(p, TK_RPAREN, open);
    parse_set_list(n, &l);
}

/* list := '{' [ item { ',' item } [','] ] '}'   item := list | expression */
static ast *parse_brace_list(parser *p)
{
    token open = p->cur;
    parse_enter(p);
    parse_advance(p);
    ast *n = parse_node_at(p, AST_LIST, &open);
    parse_list l = {0};
    while (p->cur.kind != TK_RBRACE) {
        parse_push(p, &l, p->cur.kind == TK_LBRACE ? parse_brace_list(p) : parse_expression(p));
        if (!parse_accept(p, TK_COMMA))
            break;
    }
    parse_expect_close(p, TK_RBRACE, &open);
    parse_set_list(n, &l);
    parse_leave(p);
    return n;
}

/* sizeof := 'sizeof' '(' C type ')'   the type's size in bytes, an int (as in CUDA C) */
static ast *parse_sizeof(parser *p)
{
    token kw = p->cur;
    parse_advance(p);
    token open = p->cur;
    parse_advance(p);
    const char *from = p->cur.start, *to = from;
    while (p->cur.kind != TK_RPAREN && p->cur.kind != TK_EOF && p->cur.kind != TK_SEMI) {
        to = p->cur.start + p->cur.len;
        parse_advance(p);
    }
    long size = eng_ctype_sizeof(from, (size_t)(to - from));
    if (size < 0)
        parse_fail_at(p, open.line, open.col + 1,
                      "sizeof takes a C type (int, float, double, char, short, long, bool, half, size_t, "
                      "int8_t ... uint64_t, float2, float4, T *), found '%.*s'", (int)(to - from > 60 ? 60 : to - from),
                      from);
    parse_expect_close(p, TK_RPAREN, &open);
    ast *n = parse_node_at(p, AST_INT, &kw);
    n->ival = size;
    return n;
}

/* primary := INT | FLOAT | string | CHAR | 'true' | 'false' | NAME | sizeof | '(' expression ')' | list */
static ast *parse_primary(parser *p)
{
    token t = p->cur;
    ast *n;
    char buf[64];
    switch (t.kind) {
    case TK_INT:
        parse_advance(p);
        return parse_int_literal(p, &t);
    case TK_FLOAT:
        parse_advance(p);
        return parse_float_literal(p, &t);
    case TK_STRING:
        return parse_string(p);
    case TK_CHAR:
        return parse_char(p);
    case TK_TRUE:
    case TK_FALSE:
        parse_advance(p);
        n = parse_node_at(p, AST_BOOL, &t);
        n->ival = t.kind == TK_TRUE;
        return n;
    case TK_NAME:
        if (t.len == 6 && !memcmp(t.start, "sizeof", 6) && parse_peek(p).kind == TK_LPAREN)
            return parse_sizeof(p);
        /* fall through */
    case TK_BOOL_KW: /* in an expression, `bool` names the dtype: x.to(bool) */
        parse_advance(p);
        n = parse_node_at(p, AST_NAME, &t);
        parse_set_name(p, n, &t);
        return n;
    case TK_LPAREN: /* nesting counted by parse_unary */
        parse_advance(p);
        n = parse_expression(p);
        parse_expect_close(p, TK_RPAREN, &t);
        return n;
    case TK_LBRACE:
        return parse_brace_list(p);
    default:
        parse_fail_at(p, t.line, t.col, "expected an expression, found %s", parse_describe(&t, buf, sizeof buf));
    }
}

/* item := expression | [expression] ':' [expression] [ ':' [expression] ] | 'None' | '...'
 * None (a new axis) and ... (an ellipsis) are AST_SLICE nodes with ival AST_IDX_NEWAXIS
 * or AST_IDX_ELLIPSIS and no parts (engine/lang/indexing.c gives them their meaning). */
static ast *parse_index_item(parser *p)
{
    token start = p->cur;
    ast *lo = NULL;
    int end_after = 0; /* the token after this one closes the item */
    if (p->cur.kind == TK_NAME && p->cur.len == 4 && !memcmp(p->cur.start, "None", 4)) {
        token nx = parse_peek(p);
        end_after = nx.kind == TK_COMMA || nx.kind == TK_RBRACKET;
    }
    if (end_after || p->cur.kind == TK_DOT) {
        ast *s = parse_node_at(p, AST_SLICE, &start);
        s->ival = end_after ? AST_IDX_NEWAXIS : AST_IDX_ELLIPSIS;
        if (end_after)
            parse_advance(p);
        else
            for (int k = 0; k < 3; k++) { /* '...' lexes as three '.' */
                if (p->cur.kind != TK_DOT || p->cur.line != start.line || p->cur.col != start.col + k)
                    parse_fail_at(p, p->cur.line, p->cur.col, "expected '...' (an ellipsis) in the index");
                parse_advance(p);
            }
        return s;
    }
    if (p->cur.kind != TK_COLON)
        lo = parse_expression(p);
    if (p->cur.kind != TK_COLON)
        return lo;
    ast *s = parse_node_at(p, AST_SLICE, &start);
    parse_advance(p);
    s->a = lo;
    if (p->cur.kind != TK_COLON && p->cur.kind != TK_COMMA && p->cur.kind != TK_RBRACKET)
        s->b = parse_expression(p);
    if (parse_accept(p, TK_COLON) && p->cur.kind != TK_COMMA && p->cur.kind != TK_RBRACKET)
        s->c = parse_expression(p);
    return s;
}

/* postfix := primary { '(' args ')' | '[' item { ',' item } ']' | '.' NAME | '++' | '--'
 *                    | '<<<' expression ',' expression [ ',' expression ] '>>>' '(' args ')' } */
static ast *parse_postfix(parser *p)
{
    ast *e = parse_primary(p);
    char buf[64];
    for (;;) {
        token t = p->cur;
        ast *n;
        switch (t.kind) {
        case TK_LPAREN:
            if (e->kind != AST_NAME && e->kind != AST_MEMBER)
                parse_error_at(p, t.line, t.col, "only a named function or a method can be called");
            parse_advance(p);
            n = parse_node(p, AST_CALL, e->line, e->col);
            n->a = e;
            parse_args(p, n, &t);
            e = n;
            break;
        case TK_LBRACKET: {
            parse_advance(p);
            n = parse_node(p, AST_INDEX, e->line, e->col);
            n->a = e;
            parse_list l = {0};
            if (p->cur.kind == TK_RBRACKET)
                parse_fail_at(p, p->cur.line, p->cur.col, "expected an index or a slice, found ']'");
            do {
                parse_push(p, &l, parse_index_item(p));
            } while (parse_accept(p, TK_COMMA));
            parse_expect_close(p, TK_RBRACKET, &t);
            parse_set_list(n, &l);
            e = n;
            break;
        }
        case TK_DOT:
            parse_advance(p);
            /* x.float(), x.int(), x.double(), x.bool(): type keywords name methods too */
            if (p->cur.kind == TK_INT_KW || p->cur.kind == TK_FLOAT_KW || p->cur.kind == TK_DOUBLE_KW ||
                p->cur.kind == TK_BOOL_KW)
                p->cur.kind = TK_NAME;
            if (p->cur.kind != TK_NAME)
                parse_fail_at(p, p->cur.line, p->cur.col, "expected a member name after '.', found %s",
                              parse_describe(&p->cur, buf, sizeof buf));
            n = parse_node(p, AST_MEMBER, e->line, e->col);
            n->a = e;
            parse_set_name(p, n, &p->cur);
            parse_advance(p);
            e = n;
            break;
        case TK_INC:
        case TK_DEC:
            if (!parse_is_lvalue(e))
                parse_error_at(p, t.line, t.col, "cannot apply %s to this expression", tok_kind_name(t.kind));
            parse_advance(p);
            n = parse_node(p, AST_INCDEC, e->line, e->col);
            n->op = t.kind;
            n->a = e;
            n->ival = 0;
            e = n;
            break;
        case TK_LAUNCH_OPEN: {
            if (e->kind != AST_NAME)
                parse_fail_at(p, t.line, t.col, "only a kernel name can be launched with <<<...>>>");
            parse_advance(p);
            n = parse_node(p, AST_LAUNCH, e->line, e->col);
            n->a = e;
            parse_list l = {0};
            do {
                parse_push(p, &l, parse_expression(p));
            } while (parse_accept(p, TK_COMMA));
            parse_expect_close(p, TK_LAUNCH_CLOSE, &t);
            if (l.n < 2 || l.n > 3)
                parse_error_at(p, t.line, t.col,
                               "a launch takes <<<grid, block>>> or <<<grid, block, shared_bytes>>>, not %d value%s",
                               l.n, l.n == 1 ? "" : "s");
            parse_set_list(n, &l);
            token open = p->cur;
            if (open.kind != TK_LPAREN)
                parse_fail_at(p, open.line, open.col, "expected '(' with the kernel's arguments after '>>>', found %s",
                              parse_describe(&open, buf, sizeof buf));
            parse_advance(p);
            n->b = parse_node_at(p, AST_CALL, &open);
            parse_args(p, n->b, &open);
            e = n;
            break;
        }
        default:
            return e;
        }
    }
}

static int parse_cast_type(tok_kind k, ast_type *ty)
{
    switch (k) {
    case TK_INT_KW: *ty = TY_INT; return 1;
    case TK_FLOAT_KW: case TK_DOUBLE_KW: *ty = TY_FLOAT; return 1;
    case TK_BOOL_KW: *ty = TY_BOOL; return 1;
    case TK_STRING_KW: case TK_TENSOR_KW: case TK_AUTO_KW: case TK_VOID_KW: *ty = TY_UNKNOWN; return 1;
    default: return 0;
    }
}

/* unary := ('-' | '+' | '!' | '~') unary | ('++' | '--') unary
 *        | '(' ('int' | 'float' | 'double' | 'bool') ')' unary | postfix */
static ast *parse_unary(parser *p)
{
    token t = p->cur;
    ast *n;
    parse_enter(p);
    switch (t.kind) {
    case TK_MINUS: case TK_PLUS: case TK_NOT: case TK_TILDE:
        parse_advance(p);
        n = parse_node_at(p, AST_UNARY, &t);
        n->op = t.kind;
        n->a = parse_unary(p);
        break;
    case TK_INC: case TK_DEC:
        parse_advance(p);
        n = parse_node_at(p, AST_INCDEC, &t);
        n->op = t.kind;
        n->ival = 1;
        n->a = parse_unary(p);
        if (!parse_is_lvalue(n->a))
            parse_error_at(p, t.line, t.col, "cannot apply %s to this expression", tok_kind_name(t.kind));
        break;
    case TK_LPAREN: {
        token ty = parse_peek(p);
        ast_type type;
        if (!parse_cast_type(ty.kind, &type)) {
            n = parse_postfix(p);
            break;
        }
        if (type == TY_UNKNOWN)
            parse_fail_at(p, ty.line, ty.col, "cannot cast to %s: casts are to int, float, double or bool",
                          tok_kind_name(ty.kind));
        parse_advance(p);
        parse_advance(p);
        parse_expect_close(p, TK_RPAREN, &t);
        n = parse_node_at(p, AST_CAST, &t);
        n->type = type;
        n->a = parse_unary(p);
        break;
    }
    default:
        n = parse_postfix(p);
    }
    parse_leave(p);
    return n;
}

/* Binding power of a binary operator, 0 for none. */
static int parse_binary_prec(tok_kind k)
{
    switch (k) {
    case TK_OROR: return 1;
    case TK_ANDAND: return 2;
    case TK_PIPE: return 3;
    case TK_CARET: return 4;
    case TK_AMP: return 5;
    case TK_EQ: case TK_NE: return 6;
    case TK_LT: case TK_LE: case TK_GT: case TK_GE: return 7;
    case TK_SHL: case TK_SHR: return 8;
    case TK_PLUS: case TK_MINUS: return 9;
    case TK_STAR: case TK_SLASH: case TK_PERCENT: case TK_AT: return 10;
    default: return 0;
    }
}

/* binary := unary { binop unary }   (C's levels from '||' up to '* / % @', left-assoc);
 * the node's position is its operator's */
static ast *parse_binary(parser *p, int min_prec)
{
    ast *left = parse_unary(p);
    for (;;) {
        int prec = parse_binary_prec(p->cur.kind);
        if (prec == 0 || prec < min_prec)
            return left;
        token op = p->cur;
        parse_advance(p);
        ast *n = parse_node(p, AST_BINARY, op.line, op.col); /* errors point at the operator */
        n->op = op.kind;
        n->a = left;
        n->b = parse_binary(p, prec + 1);
        left = n;
    }
}

/* ternary := binary [ '?' expression ':' ternary ] */
static ast *parse_ternary(parser *p)
{
    ast *cond = parse_binary(p, 1);
    if (p->cur.kind != TK_QUESTION)
        return cond;
    token q = p->cur;
    parse_enter(p);
    parse_advance(p);
    ast *n = parse_node(p, AST_TERNARY, cond->line, cond->col);
    n->a = cond;
    n->b = parse_expression(p);
    if (p->cur.kind != TK_COLON) {
        char buf[64];
        parse_fail_at(p, p->cur.line, p->cur.col, "expected ':' for the '?' at line %d, column %d, found %s",
                      q.line, q.col, parse_describe(&p->cur, buf, sizeof buf));
    }
    parse_advance(p);
    n->c = parse_ternary(p);
    parse_leave(p);
    return n;
}

static int parse_is_assign_op(tok_kind k)
{
    switch (k) {
    case TK_ASSIGN: case TK_PLUSEQ: case TK_MINUSEQ: case TK_STAREQ: case TK_SLASHEQ:
    case TK_PERCENTEQ: case TK_ATEQ: case TK_AMPEQ: case TK_PIPEEQ: case TK_CARETEQ:
    case TK_SHLEQ: case TK_SHREQ:
        return 1;
    default:
        return 0;
    }
}

/* expression := ternary [ assignop expression ]   (right-assoc; target NAME, INDEX or MEMBER) */
static ast *parse_expression(parser *p)
{
    ast *left = parse_ternary(p);
    if (parse_is_assign_op(p->cur.kind)) {
        token op = p->cur;
        if (!parse_is_lvalue(left))
            parse_error_at(p, left->line, left->col, "cannot assign to this expression");
        parse_enter(p);
        parse_advance(p);
        ast *n = parse_node(p, AST_ASSIGN, left->line, left->col);
        n->op = op.kind;
        n->a = left;
        n->b = parse_expression(p);
        left = n;
        parse_leave(p);
    }
    return left;
}

/* ---- statements ---- */

static ast *parse_statement(parser *p, int top);
static ast *parse_guarded(parser *p, int top);

static int parse_type_kw(tok_kind k, ast_type *ty)
{
    switch (k) {
    case TK_INT_KW: *ty = TY_INT; return 1;
    case TK_FLOAT_KW: case TK_DOUBLE_KW: *ty = TY_FLOAT; return 1;
    case TK_BOOL_KW: *ty = TY_BOOL; return 1;
    case TK_STRING_KW: *ty = TY_STRING; return 1;
    case TK_TENSOR_KW: *ty = TY_TENSOR; return 1;
    case TK_AUTO_KW: *ty = TY_AUTO; return 1;
    case TK_VOID_KW: *ty = TY_VOID; return 1;
    default: return 0;
    }
}

/* When a '//' comment that reads like a divisor follows the previous token (`n // 2;`
 * took the ';' into the comment), a hint for the message; else "". */
static const char *parse_slash_hint(parser *p)
{
    const char *s = p->prev.start ? p->prev.start + p->prev.len : NULL;
    while (s && (*s == ' ' || *s == '\t'))
        s++;
    if (s && s[0] == '/' && s[1] == '/' && eng_comment_reads_as_operand(s + 2))
        return " ('//' starts a comment in C: to divide write '/')";
    return "";
}

/* Expects ';' just after the previous token ("expected ';' after ..."). */
static void parse_semi(parser *p, const char *after)
{
    if (parse_accept(p, TK_SEMI))
        return;
    int line, col;
    char buf[64];
    parse_end_of(&p->prev, &line, &col);
    parse_fail_at(p, line, col, "expected ';' after %s, found %s%s", after, parse_describe(&p->cur, buf, sizeof buf),
                  parse_slash_hint(p));
}

/* parse_semi for a statement outside any braces, which the end of the cell also ends:
 * `tensor t = randn(2, 3)` or `for (...) s += i` as a cell's last line needs no ';' */
static void parse_semi_or_end(parser *p, const char *after, int end_ok)
{
    if (end_ok && p->cur.kind == TK_EOF)
        return;
    parse_semi(p, after);
}

/* block := '{' { statement } '}' */
static ast *parse_block(parser *p)
{
    token open = p->cur;
    parse_expect(p, TK_LBRACE, NULL);
    ast *n = parse_node_at(p, AST_BLOCK, &open);
    parse_list l = {0};
    p->block_depth++;
    while (p->cur.kind != TK_RBRACE && p->cur.kind != TK_EOF) {
        ast *s = parse_guarded(p, 0);
        if (s)
            parse_push(p, &l, s);
    }
    p->block_depth--;
    parse_expect_close(p, TK_RBRACE, &open);
    parse_set_list(n, &l);
    return n;
}

/* params := '(' [ 'void' | type NAME { ',' type NAME } ] ')' */
static void parse_params(parser *p, ast *fn)
{
    token open = p->cur;
    char buf[64];
    parse_advance(p);
    parse_list l = {0};
    if (p->cur.kind == TK_VOID_KW && parse_peek(p).kind == TK_RPAREN) {
        parse_advance(p);
    } else if (p->cur.kind != TK_RPAREN) {
        do {
            token t = p->cur;
            ast_type ty;
            if (!parse_type_kw(t.kind, &ty) || ty == TY_VOID || ty == TY_AUTO)
                parse_fail_at(p, t.line, t.col, "expected a parameter type (int, float, double, bool, string or tensor), found %s",
                              parse_describe(&t, buf, sizeof buf));
            parse_advance(p);
            if (p->cur.kind != TK_NAME)
                parse_fail_at(p, p->cur.line, p->cur.col, "expected a parameter name, found %s",
                              parse_describe(&p->cur, buf, sizeof buf));
            ast *prm = parse_node_at(p, AST_PARAM, &t);
            prm->type = ty;
            parse_set_name(p, prm, &p->cur);
            parse_advance(p);
            parse_push(p, &l, prm);
        } while (parse_accept(p, TK_COMMA));
    }
    parse_expect_close(p, TK_RPAREN, &open);
    parse_set_list(fn, &l);
}

/* declaration := ['const'] type declarator [ '=' initializer ] { ',' declarator [ '=' initializer ] } ';'
 * function    := type NAME params block   (top level only)
 * initializer := list | expression */
static ast *parse_declaration(parser *p, int allow_func)
{
    token start = p->cur;
    char buf[64];
    int is_const = parse_accept(p, TK_CONST);
    token tt = p->cur;
    ast_type ty;
    if (!parse_type_kw(tt.kind, &ty))
        parse_fail_at(p, tt.line, tt.col, "expected a type after 'const', found %s",
                      parse_describe(&tt, buf, sizeof buf));
    parse_advance(p);
    if (p->cur.kind != TK_NAME)
        parse_fail_at(p, p->cur.line, p->cur.col, "expected a name after %s, found %s", tok_kind_name(tt.kind),
                      parse_describe(&p->cur, buf, sizeof buf));
    token name = p->cur;
    if (parse_peek(p).kind == TK_LPAREN) {
        if (!allow_func || p->block_depth > 0)
            parse_fail_at(p, start.line, start.col, "functions can only be defined at top level");
        if (is_const)
            parse_fail_at(p, start.line, start.col, "a function cannot be const");
        parse_advance(p);
        ast *fn = parse_node_at(p, AST_FUNC, &start);
        fn->type = ty;
        parse_set_name(p, fn, &name);
        parse_params(p, fn);
        if (p->cur.kind != TK_LBRACE)
            parse_fail_at(p, p->cur.line, p->cur.col, "expected '{' to begin the body of '%.*s', found %s",
                          name.len, name.start, parse_describe(&p->cur, buf, sizeof buf));
        p->block_depth++;
        fn->a = parse_block(p);
        p->block_depth--;
        return fn;
    }
    if (ty == TY_VOID)
        parse_fail_at(p, tt.line, tt.col, "a variable cannot be void");
    ast *d = parse_node_at(p, AST_DECL, &start);
    d->type = ty;
    d->ival = is_const;
    parse_list l = {0};
    for (;;) {
        if (p->cur.kind != TK_NAME)
            parse_fail_at(p, p->cur.line, p->cur.col, "expected a name after ',', found %s",
                          parse_describe(&p->cur, buf, sizeof buf));
        ast *v = parse_node_at(p, AST_VAR, &p->cur);
        parse_set_name(p, v, &p->cur);
        parse_advance(p);
        if (parse_accept(p, TK_ASSIGN))
            v->a = p->cur.kind == TK_LBRACE ? parse_brace_list(p) : parse_expression(p);
        parse_push(p, &l, v);
        if (!parse_accept(p, TK_COMMA))
            break;
    }
    parse_set_list(d, &l);
    parse_semi_or_end(p, "the declaration", allow_func && p->block_depth == 0);
    return d;
}

/* a word of C's types that the host language lacks, written where a declaration would
 * start (`unsigned n = 3;`, `struct S {...}`): said plainly instead of "expected ';'" */
static int parse_c_only_type(const char *s, int len)
{
    static const char *const words[] = {"struct", "union", "enum", "unsigned", "signed", "char", "short", "long",
                                        "size_t", "int64_t", "int32_t", "uint8_t", "half", "float2", "float4"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if ((int)strlen(words[i]) == len && !memcmp(words[i], s, (size_t)len))
            return 1;
    return 0;
}

static int parse_starts_decl(parser *p)
{
    ast_type ty;
    return p->cur.kind == TK_CONST || parse_type_kw(p->cur.kind, &ty);
}

/* condition := '(' expression ')' */
static ast *parse_condition(parser *p, const char *what)
{
    token open = p->cur;
    char where[48];
    snprintf(where, sizeof where, "after '%s'", what);
    parse_expect(p, TK_LPAREN, where);
    ast *e = parse_expression(p);
    parse_expect_close(p, TK_RPAREN, &open);
    return e;
}

/* for := 'for' '(' [declaration | expression ';' | ';'] [expression] ';' [expression] ')' statement */
static ast *parse_for(parser *p)
{
    token kw = p->prev;
    ast *n = parse_node_at(p, AST_FOR, &kw);
    token open = p->cur;
    parse_expect(p, TK_LPAREN, "after 'for'");
    if (parse_starts_decl(p)) {
        n->a = parse_declaration(p, 0);
    } else if (!parse_accept(p, TK_SEMI)) {
        token t = p->cur;
        ast *e = parse_node_at(p, AST_EXPR, &t);
        e->a = parse_expression(p);
        n->a = e;
        parse_semi(p, "the loop's initialisation");
    }
    if (p->cur.kind != TK_SEMI)
        n->b = parse_expression(p);
    parse_semi(p, "the loop's condition");
    if (p->cur.kind != TK_RPAREN)
        n->c = parse_expression(p);
    parse_expect_close(p, TK_RPAREN, &open);
    n->d = parse_statement(p, 0);
    return n;
}

/* statement := MAGIC | KERNEL | declaration | function | block | if | for | while | do
 *            | 'break' ';' | 'continue' ';' | 'return' [expression] ';' | ';'
 *            | expression ';'   (the ';' may be left out after the cell's last statement) */
static ast *parse_statement(parser *p, int top)
{
    token t = p->cur;
    ast *n;
    parse_enter(p);
    switch (t.kind) {
    case TK_DEFINES: /* an empty statement holding the lines, for defines.c */
        parse_advance(p);
        if (p->block_depth > 0 || !top)
            parse_fail_at(p, t.line, t.col, "#define lines are only allowed at top level");
        n = parse_node_at(p, AST_EMPTY, &t);
        n->str = parse_strndup(p, t.start, (size_t)t.len);
        n->slen = t.len;
        break;
    case TK_MAGIC: {
        parse_advance(p);
        n = parse_node_at(p, AST_MAGIC, &t);
        const char *s = t.start;
        int len = t.len;
        while (len > 0 && (*s == ' ' || *s == '\t'))
            s++, len--;
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
            len--;
        n->str = parse_strndup(p, s, (size_t)len);
        n->slen = len;
        break;
    }
    case TK_KERNEL: {
        parse_advance(p);
        if (p->block_depth > 0)
            parse_fail_at(p, t.line, t.col, "__global__ / __device__ functions can only be defined at top level");
        n = parse_node_at(p, AST_KERNEL, &t);
        n->str = parse_strndup(p, t.start, (size_t)t.len);
        n->slen = t.len;
        /* the kernel word follows the '#' lines; the name precedes the first '(' */
        const char *s = n->str, *end = n->str + n->slen, *name = NULL;
        int nlen = 0;
        while (s < end && !((strncmp(s, "__global__", 10) == 0 || strncmp(s, "__device__", 10) == 0) &&
                            (s == n->str || s[-1] == '\n' || s[-1] == ' ' || s[-1] == '\t' || s[-1] == '/')))
            s++;
        n->ival = s < end && s[2] == 'g';
        const char *word = NULL;
        int wlen = 0, skip = 0;
        for (; s < end; s++) {
            if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_') {
                word = s;
                while (s + 1 < end && ((s[1] >= 'a' && s[1] <= 'z') || (s[1] >= 'A' && s[1] <= 'Z') ||
                                       (s[1] >= '0' && s[1] <= '9') || s[1] == '_'))
                    s++;
                wlen = (int)(s - word) + 1;
            } else if (*s == '(') {
                if (word && ((wlen == 17 && strncmp(word, "__launch_bounds__", 17) == 0) ||
                             (wlen == 13 && strncmp(word, "__attribute__", 13) == 0))) {
                    skip = 1;
                    int d = 0;
                    for (; s < end; s++) {
                        if (*s == '(')
                            d++;
                        else if (*s == ')' && --d == 0)
                            break;
                    }
                    word = NULL;
                    continue;
                }
                if (word) {
                    name = word;
                    nlen = wlen;
                }
                break;
            } else if (*s == '{' || *s == ';') {
                break;
            }
        }
        (void)skip;
        if (!name)
            parse_fail_at(p, t.line, t.col, "expected a kernel name before its parameter list");
        n->name = parse_strndup(p, name, (size_t)nlen);
        n->nlen = nlen;
        break;
    }
    case TK_LBRACE:
        n = parse_block(p);
        break;
    case TK_IF:
        parse_advance(p);
        n = parse_node_at(p, AST_IF, &t);
        n->a = parse_condition(p, "if");
        n->b = parse_statement(p, 0);
        if (parse_accept(p, TK_ELSE))
            n->c = parse_statement(p, 0);
        break;
    case TK_FOR:
        parse_advance(p);
        n = parse_for(p);
        break;
    case TK_WHILE:
        parse_advance(p);
        n = parse_node_at(p, AST_WHILE, &t);
        n->a = parse_condition(p, "while");
        n->b = parse_statement(p, 0);
        break;
    case TK_DO:
        parse_advance(p);
        n = parse_node_at(p, AST_DO, &t);
        n->b = parse_statement(p, 0);
        if (p->cur.kind != TK_WHILE) {
            char buf[64];
            parse_fail_at(p, p->cur.line, p->cur.col, "expected 'while' after the body of 'do', found %s",
                          parse_describe(&p->cur, buf, sizeof buf));
        }
        parse_advance(p);
        n->a = parse_condition(p, "while");
        parse_semi_or_end(p, "'do ... while (...)'", p->block_depth == 0);
        break;
    case TK_BREAK:
    case TK_CONTINUE:
        parse_advance(p);
        n = parse_node_at(p, t.kind == TK_BREAK ? AST_BREAK : AST_CONTINUE, &t);
        parse_semi_or_end(p, t.kind == TK_BREAK ? "'break'" : "'continue'", p->block_depth == 0);
        break;
    case TK_RETURN:
        parse_advance(p);
        n = parse_node_at(p, AST_RETURN, &t);
        if (p->cur.kind != TK_SEMI)
            n->a = parse_expression(p);
        parse_semi_or_end(p, "the returned value", p->block_depth == 0);
        break;
    case TK_SEMI:
        parse_advance(p);
        n = parse_node_at(p, AST_EMPTY, &t);
        break;
    case TK_ELSE: {
        parse_fail_at(p, t.line, t.col, "'else' without an 'if' before it");
    }
    default:
        if (parse_starts_decl(p)) {
            n = parse_declaration(p, top);
            break;
        }
        ast_type nty;
        token nx = t.kind == TK_NAME ? parse_peek(p) : t;
        if (t.kind == TK_NAME && (nx.kind == TK_NAME || parse_type_kw(nx.kind, &nty)) &&
            parse_c_only_type(t.start, t.len))
            parse_fail_at(p, t.line, t.col, "'%.*s' is a C type that host code does not have (its types: int, float, "
                          "double, bool, string, tensor, auto); C's types are for __global__ and __device__ code",
                          t.len, t.start);
        n = parse_node_at(p, AST_EXPR, &t);
        n->a = parse_expression(p);
        if (parse_accept(p, TK_SEMI)) {
            n->ival = 0;
        } else if (p->cur.kind == TK_EOF && p->block_depth == 0) {
            n->ival = top; /* the cell's result; or the end of `for (...) s += i` */
        } else {
            int line, col;
            parse_end_of(&p->prev, &line, &col);
            if (p->cur.line > p->prev.line) {
                /* the next line starts a new statement: report and go on with it */
                parse_error_at(p, line, col, "expected ';' after expression%s", parse_slash_hint(p));
            } else {
                parse_fail_at(p, line, col, "expected ';' after expression%s", parse_slash_hint(p));
            }
        }
        break;
    }
    parse_leave(p);
    return n;
}

/* ---- recovery ---- */

/* Skips to the next statement: past a ';' at depth 0, past a '{...}' group that
 * returns to depth 0, or up to (not past) a '}' at depth 0, a magic, a kernel or the
 * end of the cell. */
static void parse_sync(parser *p)
{
    int depth = 0;
    for (;;) {
        switch (p->cur.kind) {
        case TK_EOF:
            return;
        case TK_SEMI:
            parse_advance(p);
            if (depth == 0)
                return;
            break;
        case TK_LPAREN: case TK_LBRACKET: case TK_LBRACE:
            depth++;
            parse_advance(p);
            break;
        case TK_RBRACE:
            if (depth == 0)
                return;
            depth--;
            parse_advance(p);
            if (depth == 0)
                return;
            break;
        case TK_RPAREN: case TK_RBRACKET:
            if (depth > 0)
                depth--;
            parse_advance(p);
            break;
        case TK_MAGIC: case TK_KERNEL: case TK_DEFINES:
            if (depth == 0)
                return;
            parse_advance(p);
            break;
        default:
            parse_advance(p);
        }
    }
}

/* One statement with error recovery: NULL when it failed. */
static ast *parse_guarded(parser *p, int top)
{
    jmp_buf jb, *outer = p->jb;
    int depth = p->depth, block_depth = p->block_depth;
    const char *before = p->cur.start;
    ast *volatile n = NULL;
    p->panic = 0;
    p->jb = &jb;
    if (setjmp(jb) == 0) {
        n = parse_statement(p, top);
    } else {
        p->jb = outer;
        p->depth = depth;
        p->block_depth = block_depth;
        if (p->oom)
            longjmp(*outer, 1);
        n = NULL;
        parse_sync(p);
        if (p->cur.start == before && p->cur.kind != TK_EOF && p->cur.kind != TK_RBRACE)
            parse_advance(p); /* always make progress */
    }
    p->jb = outer;
    return n;
}

/* ---- entry points ---- */

/* cell := { statement } */
int ast_parse(const char *code, ast_cell *out, eng_error *errs, int max_errs)
{
    memset(out, 0, sizeof *out);
    if (!code)
        code = "";
    if (max_errs < 0)
        max_errs = 0;
    arena *ar = arena_new();
    char *src = ar ? arena_strndup(ar, code, strlen(code)) : NULL;
    if (!src) {
        arena_decref(ar);
        if (errs && max_errs > 0) {
            errs[0].kind = ERR_MEMORY;
            errs[0].line = 1;
            errs[0].col = 1;
            snprintf(errs[0].msg, sizeof errs[0].msg, "out of memory while parsing the cell");
        }
        return 1;
    }
    out->arena = ar;
    out->src = src;

    parser ps;
    memset(&ps, 0, sizeof ps);
    parser *p = &ps;
    p->ar = ar;
    p->errs = errs;
    p->max_errs = max_errs;
    p->stack_limit = eng_stack_limit();
    jmp_buf top;
    p->jb = &top;
    if (setjmp(top) == 0) {
        lex_init(&p->lx, src);
        parse_advance(p);
        while (p->cur.kind != TK_EOF) {
            if (p->cur.kind == TK_RBRACE) {
                if (!p->panic)
                    parse_error_at(p, p->cur.line, p->cur.col, "unexpected '}' with no '{' to close");
                parse_advance(p);
                continue;
            }
            ast *s = parse_guarded(p, 1);
            if (s) {
                parse_list l = {p->stmts, p->nstmts, p->cap};
                parse_push(p, &l, s);
                p->stmts = l.items;
                p->nstmts = l.n;
                p->cap = l.cap;
            }
        }
    }
    /* after an allocation failure, keep the statements parsed before it */
    out->stmts = p->stmts;
    out->nstmts = p->nstmts;
    return p->nerrs;
}

/* Depth of unclosed brackets, for is_complete; -1 for an unterminated string or comment. */
int ast_open_depth(const char *code, int *invalid)
{
    char stack[256];
    int depth = 0;
    if (invalid)
        *invalid = 0;
    if (!code)
        return 0;
    const char *s = code;
    int line_start = 1;
    while (*s) {
        char c = *s;
        if (line_start) {
            const char *q = s;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '%' || *q == '#') { /* magic and preprocessor lines */
                while (*q && *q != '\n')
                    q++;
                s = q;
                continue;
            }
        }
        line_start = c == '\n';
        if (c == '/' && s[1] == '/') {
            while (*s && *s != '\n')
                s++;
        } else if (c == '/' && s[1] == '*') {
            const char *e = strstr(s + 2, "*/");
            if (!e)
                return -1;
            s = e + 2;
        } else if (c == '"' || c == '\'') {
            s++;
            while (*s && *s != c && *s != '\n') {
                if (*s == '\\' && s[1])
                    s++;
                s++;
            }
            if (!*s)
                return -1;
            if (*s == '\n') {
                if (invalid)
                    *invalid = 1;
                continue;
            }
            s++;
        } else if (c == '(' || c == '[' || c == '{') {
            if (depth < (int)sizeof stack)
                stack[depth] = c;
            depth++;
            s++;
        } else if (c == ')' || c == ']' || c == '}') {
            char want = c == ')' ? '(' : c == ']' ? '[' : '{';
            if (depth == 0 || (depth <= (int)sizeof stack && stack[depth - 1] != want)) {
                if (invalid)
                    *invalid = 1;
                return 0;
            }
            depth--;
            s++;
        } else {
            s++;
        }
    }
    return depth;
}
