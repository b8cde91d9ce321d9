/* lint.c — warnings about cells that are valid but probably not what was meant. They
 * go to the cell's stderr stream, located like errors ("cell[3]:1:3: SyntaxWarning:
 * ..." with the line and a caret), and the cell still runs.
 *
 * One warning so far: `//` after an operand. Coming from Python, `c // 2` reads as
 * floor division, but in C `//` starts a comment, and the cell's last statement needs
 * no ';', so `c // 2` at the end of a cell silently shows c (and `int h = n // 2` sets h
 * to n). The rule: the cell's last statement ends without ';' or '}', a `//` comment
 * follows its last token on the same line, and the comment reads like an operand: it
 * starts with a digit, '.' and a digit, or '(', and holds no two words in a row (so
 * `x // 2 passes` or `x // 3 layers deep`, prose, is not flagged; `c // 2`, `c //2`,
 * `n // (k + 1)` are). Any other use of `//` (a statement ending in ';' or a comment on
 * a line of its own) is an ordinary comment. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/lang/interp.h"
#include "engine/lang/session.h"

/* does the comment text t (up to the end of the line) read like an operand? It must
 * start like one, and no two operands (words or numbers) may follow each other with
 * only blanks between ("2 passes over the data" is prose; "(n + 1) * 2" is not) */
int eng_comment_reads_as_operand(const char *t)
{
    while (*t == ' ' || *t == '\t')
        t++;
    if (!(isdigit((unsigned char)*t) || *t == '(' || (*t == '.' && isdigit((unsigned char)t[1]))))
        return 0;
    int prev_operand = 0;
    for (const char *p = t; *p && *p != '\n';) {
        if (isalnum((unsigned char)*p) || *p == '_' || *p == '.') {
            if (prev_operand)
                return 0;
            while (isalnum((unsigned char)*p) || *p == '_' || *p == '.')
                p++;
            prev_operand = 1;
        } else {
            if (*p != ' ' && *p != '\t')
                prev_operand = 0;
            p++;
        }
    }
    return 1;
}

static void warn(eng_session *s, const eng_source *src, int line, int col, const char *msg)
{
    char head[800];
    int n = snprintf(head, sizeof head, "%s:%d:%d: SyntaxWarning: %s\n", src->name, line + src->first_line - 1, col,
                     msg);
    if (n > 0)
        eng_stream(s, 2, head, (size_t)(n < (int)sizeof head ? n : (int)sizeof head - 1));
    char *text, *caret;
    if (eng_source_excerpt(src, line, col, &text, &caret) < 0)
        return;
    eng_stream(s, 2, text, strlen(text));
    eng_stream(s, 2, "\n", 1);
    eng_stream(s, 2, caret, strlen(caret));
    eng_stream(s, 2, "\n", 1);
    free(text);
    free(caret);
}

void eng_lint_cell(eng_session *s, const eng_source *src)
{
    if (!src || !src->text)
        return;
    lexer lx;
    lex_init(&lx, src->text);
    token last = {0};
    for (;;) {
        token t = lex_next(&lx);
        if (t.kind == TK_EOF)
            break;
        if (t.kind == TK_ERROR)
            return;
        last = t;
    }
    switch (last.kind) { /* only where the statement ends with an operand */
    case TK_NAME: case TK_INT: case TK_FLOAT: case TK_STRING: case TK_CHAR: case TK_TRUE: case TK_FALSE:
    case TK_RPAREN: case TK_RBRACKET: case TK_INC: case TK_DEC:
        break;
    default:
        return;
    }
    const char *p = last.start + last.len;
    while (*p == ' ' || *p == '\t')
        p++;
    if (p[0] != '/' || p[1] != '/' || !eng_comment_reads_as_operand(p + 2))
        return;
    /* the comment's line and column: count from the last token, which is on its line */
    int col = last.col + (int)(p - last.start);
    const char *text = p + 2, *eol = strchr(text, '\n');
    int tlen = eol ? (int)(eol - text) : (int)strlen(text);
    while (tlen > 0 && (text[tlen - 1] == ' ' || text[tlen - 1] == '\t' || text[tlen - 1] == '\r'))
        tlen--;
    while (tlen > 0 && (*text == ' ' || *text == '\t'))
        text++, tlen--;
    char msg[400];
    snprintf(msg, sizeof msg,
             "'//' starts a comment in C, so '%.*s' is ignored; to divide write '/' (integer division "
             "for ints), or put ';' before '//' to keep the comment",
             tlen > 60 ? 60 : tlen, text);
    warn(s, src, last.line, col, msg);
}
