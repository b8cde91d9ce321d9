/* lex.c — the lexer: a cell's text to tokens.
 *
 * Like Lua's llex.c and clox's scanner, the lexer hands out one token at a time; each
 * token points into the cell's text with its line and column (1-based, columns in
 * bytes). Nothing is allocated and nothing is decoded here: the parser converts
 * numbers, decodes strings and turns TK_ERROR tokens into messages (the token's text
 * says what went wrong: an unknown character, an unterminated string or comment, a
 * malformed number, a stray '#' line).
 *
 * Two tokens cover whole lines or more, and only at the start of a statement (after
 * the cell's start, ';', '{', '}' or another such token) as the first non-blank of a
 * line: TK_MAGIC, a line starting with '%' (its text is the rest of the line), and
 * TK_KERNEL, a __global__ / __device__ definition taken verbatim to its matching '}'
 * together with the '#' lines directly before it; '#define' lines followed by no
 * kernel are one TK_DEFINES (their constants are the host's too: defines.c).
 */
#include "engine/lang/ast.h"

#include <string.h>

/* ---- characters ---- */

static int lex_isdigit(int c) { return c >= '0' && c <= '9'; }
static int lex_isalpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int lex_isalnum(int c) { return lex_isalpha(c) || lex_isdigit(c); }

/* Moves p one byte on, keeping line and column. */
static void lex_step(lexer *lx)
{
    if (*lx->p == '\n') {
        lx->line++;
        lx->col = 1;
    } else {
        lx->col++;
    }
    lx->p++;
}

/* Skips blanks and comments. An unterminated block comment stops at its start, so
 * that the caller can return it as an error token. */
static void lex_skip_space(lexer *lx)
{
    for (;;) {
        char c = *lx->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
            lex_step(lx);
        } else if (c == '/' && lx->p[1] == '/') {
            while (*lx->p && *lx->p != '\n')
                lex_step(lx);
        } else if (c == '/' && lx->p[1] == '*') {
            const char *end = strstr(lx->p + 2, "*/");
            if (!end)
                return; /* lex_next reports it */
            while (lx->p < end + 2)
                lex_step(lx);
        } else {
            return;
        }
    }
}

/* Is p the first non-blank byte of its line? */
static int lex_first_on_line(const lexer *lx)
{
    const char *q = lx->p;
    while (q > lx->src && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r' || q[-1] == '\f' || q[-1] == '\v'))
        q--;
    return q == lx->src || q[-1] == '\n';
}

/* Skips a string or char literal starting at *p (the quote), in raw text: stops after
 * the closing quote (*closed = 1), or at the newline or NUL that ends it unterminated. */
static const char *lex_skip_quoted(const char *p, int *closed)
{
    char q = *p++;
    while (*p && *p != q && *p != '\n') {
        if (*p == '\\' && p[1] && p[1] != '\n')
            p++;
        p++;
    }
    *closed = *p == q;
    return *p == q ? p + 1 : p;
}

/* Skips blanks and comments in raw text. */
static const char *lex_skip_raw_space(const char *p)
{
    for (;;) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\f' || *p == '\v') {
            p++;
        } else if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            if (!end)
                return p;
            p = end + 2;
        } else {
            return p;
        }
    }
}

/* Is p at the word __global__ or __device__ (not part of a longer name)? */
static int lex_at_kernel_word(const char *p)
{
    return (strncmp(p, "__global__", 10) == 0 || strncmp(p, "__device__", 10) == 0) &&
           !lex_isalnum((unsigned char)p[10]);
}

/* From the kernel word at p, the end of the definition: just past the '}' matching
 * its first '{' (or past a ';' that comes first: a prototype). NULL when the cell
 * ends before that. Braces in strings, chars and comments do not count. */
static const char *lex_kernel_end(const char *p)
{
    int depth = 0;
    while (*p) {
        if (*p == '"' || *p == '\'') {
            int closed;
            p = lex_skip_quoted(p, &closed);
        } else if (p[0] == '/' && (p[1] == '/' || p[1] == '*')) {
            const char *q = lex_skip_raw_space(p);
            if (q == p)
                return NULL; /* unterminated comment */
            p = q;
        } else if (*p == '{') {
            depth++;
            p++;
        } else if (*p == '}') {
            p++;
            if (--depth <= 0)
                return p;
        } else if (*p == ';' && depth == 0) {
            return p + 1;
        } else {
            p++;
        }
    }
    return NULL;
}

/* Skips '#' lines (with backslash continuations) starting at p. */
static const char *lex_skip_hash_lines(const char *p)
{
    for (;;) {
        const char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n' || *q == '\f' || *q == '\v')
            q++;
        if (*q != '#')
            return p;
        while (*q && *q != '\n') {
            if (*q == '\\' && q[1] == '\n')
                q++;
            else if (*q == '\\' && q[1] == '\r' && q[2] == '\n')
                q += 2;
            q++;
        }
        p = q;
    }
}

/* Are the '#' lines in [p, end) all '#define's? (Host code sees their constants.) */
static int lex_only_defines(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\f' || *p == '\v'))
            p++;
        if (p >= end)
            break;
        p++; /* '#' */
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "define", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
            return 0;
        while (p < end && *p != '\n') { /* to the end of the line, with its continuations */
            if (*p == '\\' && p[1] == '\n')
                p++;
            p++;
        }
    }
    return 1;
}

/* ---- tokens ---- */

static token lex_make(lexer *lx, tok_kind kind, const char *start, int line, int col)
{
    token t;
    t.kind = kind;
    t.start = start;
    t.len = (int)(lx->p - start);
    t.line = line;
    t.col = col;
    return t;
}

/* Moves p to end, keeping line and column. */
static void lex_advance_to(lexer *lx, const char *end)
{
    while (lx->p < end && *lx->p)
        lex_step(lx);
}

typedef struct lex_keyword {
    const char *word;
    tok_kind kind;
} lex_keyword;

static const lex_keyword lex_keywords[] = {
    {"int", TK_INT_KW},       {"float", TK_FLOAT_KW},   {"double", TK_DOUBLE_KW},
    {"bool", TK_BOOL_KW},     {"string", TK_STRING_KW}, {"tensor", TK_TENSOR_KW},
    {"auto", TK_AUTO_KW},     {"void", TK_VOID_KW},     {"if", TK_IF},
    {"else", TK_ELSE},        {"for", TK_FOR},          {"while", TK_WHILE},
    {"do", TK_DO},            {"break", TK_BREAK},      {"continue", TK_CONTINUE},
    {"return", TK_RETURN},    {"true", TK_TRUE},        {"false", TK_FALSE},
    {"const", TK_CONST},
};

static tok_kind lex_name_kind(const char *s, int n)
{
    for (size_t i = 0; i < sizeof lex_keywords / sizeof lex_keywords[0]; i++)
        if ((int)strlen(lex_keywords[i].word) == n && memcmp(lex_keywords[i].word, s, (size_t)n) == 0)
            return lex_keywords[i].kind;
    return TK_NAME;
}

/* A numeral: digits, letters, '_' and '.', with a sign after a decimal exponent.
 * TK_FLOAT when it has a '.' or (not hex) an exponent; the parser validates it. */
static tok_kind lex_number(lexer *lx)
{
    const char *s = lx->p;
    int hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    int is_float = 0;
    for (;;) {
        char c = *lx->p;
        if (lex_isalnum((unsigned char)c) || c == '.') {
            if (c == '.')
                is_float = 1;
            if (!hex && (c == 'e' || c == 'E')) {
                is_float = 1;
                if (lx->p[1] == '+' || lx->p[1] == '-')
                    lex_step(lx);
            }
            lex_step(lx);
        } else {
            break;
        }
    }
    return is_float ? TK_FLOAT : TK_INT;
}

void lex_init(lexer *lx, const char *src)
{
    lx->src = src ? src : "";
    lx->p = lx->src;
    lx->line = 1;
    lx->col = 1;
    lx->at_stmt_start = 1;
}

/* The two-character and three-character operators, longest first. */
typedef struct lex_op {
    const char *text;
    tok_kind kind;
} lex_op;

static const lex_op lex_ops[] = {
    {"<<<", TK_LAUNCH_OPEN}, {">>>", TK_LAUNCH_CLOSE}, {"<<=", TK_SHLEQ}, {">>=", TK_SHREQ},
    {"<<", TK_SHL},   {">>", TK_SHR},   {"<=", TK_LE},    {">=", TK_GE},
    {"==", TK_EQ},    {"!=", TK_NE},    {"&&", TK_ANDAND}, {"||", TK_OROR},
    {"+=", TK_PLUSEQ}, {"-=", TK_MINUSEQ}, {"*=", TK_STAREQ}, {"/=", TK_SLASHEQ},
    {"%=", TK_PERCENTEQ}, {"@=", TK_ATEQ}, {"&=", TK_AMPEQ}, {"|=", TK_PIPEEQ},
    {"^=", TK_CARETEQ}, {"++", TK_INC}, {"--", TK_DEC},
    {"(", TK_LPAREN}, {")", TK_RPAREN}, {"{", TK_LBRACE}, {"}", TK_RBRACE},
    {"[", TK_LBRACKET}, {"]", TK_RBRACKET}, {",", TK_COMMA}, {";", TK_SEMI},
    {":", TK_COLON}, {"?", TK_QUESTION}, {".", TK_DOT}, {"+", TK_PLUS}, {"-", TK_MINUS},
    {"*", TK_STAR}, {"/", TK_SLASH}, {"%", TK_PERCENT}, {"@", TK_AT}, {"&", TK_AMP},
    {"|", TK_PIPE}, {"^", TK_CARET}, {"~", TK_TILDE}, {"!", TK_NOT}, {"=", TK_ASSIGN},
    {"<", TK_LT}, {">", TK_GT},
};

static token lex_scan(lexer *lx)
{
    lex_skip_space(lx);
    const char *s = lx->p;
    int line = lx->line, col = lx->col;
    unsigned char c = (unsigned char)*s;

    if (c == 0)
        return lex_make(lx, TK_EOF, s, line, col);
    if (c == '/' && s[1] == '*') { /* unterminated comment: the rest of the cell */
        lex_advance_to(lx, s + strlen(s));
        return lex_make(lx, TK_ERROR, s, line, col);
    }
    if (lx->at_stmt_start && lex_first_on_line(lx)) {
        if (c == '%') {
            lex_step(lx);
            const char *body = lx->p;
            while (*lx->p && *lx->p != '\n')
                lex_step(lx);
            token t = lex_make(lx, TK_MAGIC, body, line, col + 1);
            return t;
        }
        if (c == '#') {
            /* '#' lines must lead to a kernel */
            const char *after = lex_skip_hash_lines(s);
            const char *k = lex_skip_raw_space(after);
            if (!lex_at_kernel_word(k)) {
                lex_advance_to(lx, after);
                return lex_make(lx, lex_only_defines(s, after) ? TK_DEFINES : TK_ERROR, s, line, col);
            }
            const char *end = lex_kernel_end(k);
            lex_advance_to(lx, end ? end : s + strlen(s));
            return lex_make(lx, end ? TK_KERNEL : TK_ERROR, s, line, col);
        }
    }
    if (lx->at_stmt_start && lex_at_kernel_word(s)) {
        const char *end = lex_kernel_end(s);
        lex_advance_to(lx, end ? end : s + strlen(s));
        return lex_make(lx, end ? TK_KERNEL : TK_ERROR, s, line, col);
    }
    if (lex_isalpha(c)) {
        while (lex_isalnum((unsigned char)*lx->p))
            lex_step(lx);
        token t = lex_make(lx, TK_NAME, s, line, col);
        t.kind = lex_name_kind(s, t.len);
        return t;
    }
    if (lex_isdigit(c) || (c == '.' && lex_isdigit((unsigned char)s[1])))
        return lex_make(lx, lex_number(lx), s, line, col);
    if (c == '"' || c == '\'') {
        int closed;
        const char *end = lex_skip_quoted(s, &closed);
        lex_advance_to(lx, end);
        return lex_make(lx, closed ? (c == '"' ? TK_STRING : TK_CHAR) : TK_ERROR, s, line, col);
    }
    for (size_t i = 0; i < sizeof lex_ops / sizeof lex_ops[0]; i++) {
        size_t n = strlen(lex_ops[i].text);
        if (strncmp(s, lex_ops[i].text, n) == 0) {
            lex_advance_to(lx, s + n);
            return lex_make(lx, lex_ops[i].kind, s, line, col);
        }
    }
    /* an unknown character: a whole UTF-8 sequence where there is one */
    lex_step(lx);
    if (c >= 0xC0)
        while (((unsigned char)*lx->p & 0xC0) == 0x80 && lx->p - s < 4)
            lex_step(lx);
    return lex_make(lx, TK_ERROR, s, line, col);
}

token lex_next(lexer *lx)
{
    token t = lex_scan(lx);
    lx->at_stmt_start = t.kind == TK_SEMI || t.kind == TK_LBRACE || t.kind == TK_RBRACE ||
                        t.kind == TK_MAGIC || t.kind == TK_KERNEL || t.kind == TK_DEFINES ||
                        (t.kind == TK_ERROR && t.len > 0 && t.start[0] == '#');
    return t;
}

const char *tok_kind_name(tok_kind k)
{
    switch (k) {
    case TK_EOF: return "end of cell";
    case TK_INT: return "integer";
    case TK_FLOAT: return "number";
    case TK_STRING: return "string";
    case TK_CHAR: return "character literal";
    case TK_NAME: return "identifier";
    case TK_MAGIC: return "magic line";
    case TK_KERNEL: return "kernel definition";
    case TK_DEFINES: return "#define line";
    case TK_INT_KW: return "'int'";
    case TK_FLOAT_KW: return "'float'";
    case TK_DOUBLE_KW: return "'double'";
    case TK_BOOL_KW: return "'bool'";
    case TK_STRING_KW: return "'string'";
    case TK_TENSOR_KW: return "'tensor'";
    case TK_AUTO_KW: return "'auto'";
    case TK_VOID_KW: return "'void'";
    case TK_IF: return "'if'";
    case TK_ELSE: return "'else'";
    case TK_FOR: return "'for'";
    case TK_WHILE: return "'while'";
    case TK_DO: return "'do'";
    case TK_BREAK: return "'break'";
    case TK_CONTINUE: return "'continue'";
    case TK_RETURN: return "'return'";
    case TK_TRUE: return "'true'";
    case TK_FALSE: return "'false'";
    case TK_CONST: return "'const'";
    case TK_ERROR: return "invalid token";
    case TK_NKINDS: return "?";
    default: break;
    }
    for (size_t i = 0; i < sizeof lex_ops / sizeof lex_ops[0]; i++)
        if (lex_ops[i].kind == k) {
            /* "'" + text + "'" in a static table built on first use would need state;
             * the operators are few, so name them from a fixed table instead */
            static const char *const quoted[] = {
                "'<<<'", "'>>>'", "'<<='", "'>>='", "'<<'", "'>>'", "'<='", "'>='",
                "'=='", "'!='", "'&&'", "'||'", "'+='", "'-='", "'*='", "'/='",
                "'%='", "'@='", "'&='", "'|='", "'^='", "'++'", "'--'",
                "'('", "')'", "'{'", "'}'", "'['", "']'", "','", "';'",
                "':'", "'?'", "'.'", "'+'", "'-'", "'*'", "'/'", "'%'", "'@'", "'&'",
                "'|'", "'^'", "'~'", "'!'", "'='", "'<'", "'>'",
            };
            return i < sizeof quoted / sizeof quoted[0] ? quoted[i] : "?";
        }
    return "?";
}
