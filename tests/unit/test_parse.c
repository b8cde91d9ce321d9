/* test_parse.c — unit tests of the lexer (engine/lang/lex.c) and parser (engine/lang/parse.c).
 *
 * Each parse test prints the tree of a cell as an S-expression and compares it with
 * the expected text; error tests compare the count, positions and messages of the
 * syntax errors. Uses only the lexer, parser, arena and error functions. Exits 1 on
 * any failure.
 */
#include "engine/lang/ast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

/* ---- a small growable string ---- */
typedef struct sbuf {
    char buf[8192];
    size_t n;
} sbuf;

static void sb_put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void sb_put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (b->n < sizeof b->buf) {
        int k = vsnprintf(b->buf + b->n, sizeof b->buf - b->n, fmt, ap);
        if (k > 0)
            b->n += (size_t)k;
        if (b->n >= sizeof b->buf)
            b->n = sizeof b->buf - 1;
    }
    va_end(ap);
}

static const char *op_text(int op)
{
    static char buf[8];
    const char *q = tok_kind_name((tok_kind)op);
    size_t n = strlen(q);
    if (n >= 2 && q[0] == '\'' && n - 2 < sizeof buf) {
        memcpy(buf, q + 1, n - 2);
        buf[n - 2] = 0;
        return buf;
    }
    return q;
}

static const char *type_text(ast_type t)
{
    switch (t) {
    case TY_VOID: return "void";
    case TY_BOOL: return "bool";
    case TY_INT: return "int";
    case TY_FLOAT: return "float";
    case TY_STRING: return "string";
    case TY_TENSOR: return "tensor";
    case TY_AUTO: return "auto";
    default: return "?";
    }
}

static void dump(sbuf *b, const ast *n);

static void dump_list(sbuf *b, const ast *n)
{
    for (int i = 0; i < n->nlist; i++) {
        sb_put(b, " ");
        dump(b, n->list[i]);
    }
}

static void dump_opt(sbuf *b, const ast *n)
{
    if (n)
        dump(b, n);
    else
        sb_put(b, "_");
}

static void dump(sbuf *b, const ast *n)
{
    switch (n->kind) {
    case AST_INT: sb_put(b, "%lld", (long long)n->ival); break;
    case AST_FLOAT: sb_put(b, "%g", n->fval); break;
    case AST_BOOL: sb_put(b, "%s", n->ival ? "true" : "false"); break;
    case AST_STRING:
        sb_put(b, "\"");
        for (int i = 0; i < n->slen; i++) {
            unsigned char c = (unsigned char)n->str[i];
            if (c == '\n')
                sb_put(b, "\\n");
            else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
                sb_put(b, "\\x%02x", c);
            else
                sb_put(b, "%c", c);
        }
        sb_put(b, "\"");
        break;
    case AST_NAME: sb_put(b, "%s", n->str); break;
    case AST_UNARY: sb_put(b, "(%s ", op_text(n->op)); dump(b, n->a); sb_put(b, ")"); break;
    case AST_BINARY:
    case AST_ASSIGN:
        sb_put(b, "(%s ", op_text(n->op));
        dump(b, n->a);
        sb_put(b, " ");
        dump(b, n->b);
        sb_put(b, ")");
        break;
    case AST_TERNARY:
        sb_put(b, "(? ");
        dump(b, n->a);
        sb_put(b, " ");
        dump(b, n->b);
        sb_put(b, " ");
        dump(b, n->c);
        sb_put(b, ")");
        break;
    case AST_INCDEC:
        sb_put(b, "(%s%s ", n->ival ? "pre" : "post", op_text(n->op));
        dump(b, n->a);
        sb_put(b, ")");
        break;
    case AST_CALL: sb_put(b, "(call "); dump(b, n->a); dump_list(b, n); sb_put(b, ")"); break;
    case AST_INDEX: sb_put(b, "(index "); dump(b, n->a); dump_list(b, n); sb_put(b, ")"); break;
    case AST_SLICE:
        if (n->ival) { /* None, ... */
            sb_put(b, n->ival == AST_IDX_NEWAXIS ? "None" : "...");
            break;
        }
        sb_put(b, "(: ");
        dump_opt(b, n->a);
        sb_put(b, " ");
        dump_opt(b, n->b);
        sb_put(b, " ");
        dump_opt(b, n->c);
        sb_put(b, ")");
        break;
    case AST_MEMBER: sb_put(b, "(. "); dump(b, n->a); sb_put(b, " %s)", n->str); break;
    case AST_CAST: sb_put(b, "(cast %s ", type_text(n->type)); dump(b, n->a); sb_put(b, ")"); break;
    case AST_LIST: sb_put(b, "{"); dump_list(b, n); sb_put(b, " }"); break;
    case AST_LAUNCH:
        sb_put(b, "(launch ");
        dump(b, n->a);
        sb_put(b, " <");
        dump_list(b, n);
        sb_put(b, " > (args");
        dump_list(b, n->b);
        sb_put(b, "))");
        break;
    case AST_EXPR: sb_put(b, "(expr%s ", n->ival ? "!" : ""); dump(b, n->a); sb_put(b, ")"); break;
    case AST_DECL: sb_put(b, "(decl%s %s", n->ival ? " const" : "", type_text(n->type)); dump_list(b, n); sb_put(b, ")"); break;
    case AST_VAR:
        sb_put(b, "%s", n->str);
        if (n->a) {
            sb_put(b, "=");
            dump(b, n->a);
        }
        break;
    case AST_BLOCK: sb_put(b, "(block"); dump_list(b, n); sb_put(b, ")"); break;
    case AST_IF:
        sb_put(b, "(if ");
        dump(b, n->a);
        sb_put(b, " ");
        dump(b, n->b);
        sb_put(b, " ");
        dump_opt(b, n->c);
        sb_put(b, ")");
        break;
    case AST_FOR:
        sb_put(b, "(for ");
        dump_opt(b, n->a);
        sb_put(b, " ");
        dump_opt(b, n->b);
        sb_put(b, " ");
        dump_opt(b, n->c);
        sb_put(b, " ");
        dump(b, n->d);
        sb_put(b, ")");
        break;
    case AST_WHILE: sb_put(b, "(while "); dump(b, n->a); sb_put(b, " "); dump(b, n->b); sb_put(b, ")"); break;
    case AST_DO: sb_put(b, "(do "); dump(b, n->b); sb_put(b, " "); dump(b, n->a); sb_put(b, ")"); break;
    case AST_BREAK: sb_put(b, "(break)"); break;
    case AST_CONTINUE: sb_put(b, "(continue)"); break;
    case AST_RETURN: sb_put(b, "(return "); dump_opt(b, n->a); sb_put(b, ")"); break;
    case AST_FUNC:
        sb_put(b, "(func %s %s (", type_text(n->type), n->str);
        for (int i = 0; i < n->nlist; i++)
            sb_put(b, "%s%s %s", i ? " " : "", type_text(n->list[i]->type), n->list[i]->str);
        sb_put(b, ") ");
        dump(b, n->a);
        sb_put(b, ")");
        break;
    case AST_PARAM: sb_put(b, "(param %s)", n->str); break;
    case AST_MAGIC: sb_put(b, "(magic \"%s\")", n->str); break;
    case AST_KERNEL: sb_put(b, "(kernel %s %s)", n->ival ? "global" : "device", n->name); break;
    case AST_EMPTY: sb_put(b, "(empty)"); break;
    default: sb_put(b, "(?%d)", (int)n->kind); break;
    }
}

/* Parses code; expects no error and the statements' dump to equal want. */
static void check_tree(int line, const char *code, const char *want)
{
    ast_cell cell;
    eng_error errs[8];
    memset(errs, 0, sizeof errs);
    int n = ast_parse(code, &cell, errs, 8);
    sbuf b;
    b.n = 0;
    b.buf[0] = 0;
    for (int i = 0; i < cell.nstmts; i++) {
        if (i)
            sb_put(&b, " ");
        dump(&b, cell.stmts[i]);
    }
    checks++;
    if (n != 0 || strcmp(b.buf, want) != 0) {
        failures++;
        fprintf(stderr, "test_parse.c:%d: parse of\n  %s\ngave %d error(s)%s%s\n  got:  %s\n  want: %s\n", line, code, n,
                n ? ", first: " : "", n ? errs[0].msg : "", b.buf, want);
    }
    arena_decref(cell.arena);
}
#define TREE(code, want) check_tree(__LINE__, code, want)

/* Expects errors: want is "L:C msg-substring|L:C msg-substring|..." (all of them). */
static void check_errors(int line, const char *code, const char *want)
{
    ast_cell cell;
    eng_error errs[16];
    memset(errs, 0, sizeof errs);
    int n = ast_parse(code, &cell, errs, 16);
    char got[4096];
    size_t g = 0;
    got[0] = 0;
    for (int i = 0; i < n && i < 16; i++)
        g += (size_t)snprintf(got + g, sizeof got - g > 0 ? sizeof got - g : 0, "%s%d:%d %s", i ? "|" : "",
                              errs[i].line, errs[i].col, errs[i].msg);
    /* compare item by item: position exact, message as a substring */
    int ok = 1, k = 0;
    const char *w = want;
    while (*w) {
        const char *bar = strchr(w, '|');
        size_t wl = bar ? (size_t)(bar - w) : strlen(w);
        int wline = 0, wcol = 0, used = 0;
        if (sscanf(w, "%d:%d %n", &wline, &wcol, &used) < 2 || k >= n || k >= 16) {
            ok = 0;
            break;
        }
        char sub[600];
        snprintf(sub, sizeof sub, "%.*s", (int)(wl - (size_t)used), w + used);
        if (errs[k].kind != ERR_SYNTAX || errs[k].line != wline || errs[k].col != wcol || !strstr(errs[k].msg, sub))
            ok = 0;
        k++;
        w += wl;
        if (*w == '|')
            w++;
    }
    if (k != n)
        ok = 0;
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "test_parse.c:%d: errors of\n  %.200s\n  got:  %s\n  want: %s\n", line, code, got, want);
    }
    arena_decref(cell.arena);
}
#define ERRORS(code, want) check_errors(__LINE__, code, want)

static void expect(int line, int cond, const char *what)
{
    checks++;
    if (!cond) {
        failures++;
        fprintf(stderr, "test_parse.c:%d: failed: %s\n", line, what);
    }
}
#define EXPECT(cond) expect(__LINE__, (cond), #cond)

static void test_lexer(void)
{
    lexer lx;
    lex_init(&lx, "int x = 0x1F; // c\n  y <<<a>>> @= 'c' \"s\\\"\"\n/* */ 1.5e-3f");
    tok_kind want[] = {TK_INT_KW, TK_NAME, TK_ASSIGN, TK_INT, TK_SEMI, TK_NAME, TK_LAUNCH_OPEN, TK_NAME,
                       TK_LAUNCH_CLOSE, TK_ATEQ, TK_CHAR, TK_STRING, TK_FLOAT, TK_EOF};
    token t;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        t = lex_next(&lx);
        char what[96];
        snprintf(what, sizeof what, "token %zu is %s, got %s", i, tok_kind_name(want[i]), tok_kind_name(t.kind));
        expect(__LINE__, t.kind == want[i], what);
        if (i == 5)
            EXPECT(t.line == 2 && t.col == 3 && t.len == 1);
        if (i == 12)
            EXPECT(t.line == 3 && t.col == 7 && t.len == 7);
    }
    t = lex_next(&lx);
    EXPECT(t.kind == TK_EOF);
    EXPECT(strcmp(tok_kind_name(TK_SEMI), "';'") == 0);
    EXPECT(strcmp(tok_kind_name(TK_RPAREN), "')'") == 0);
    EXPECT(strcmp(tok_kind_name(TK_GT), "'>'") == 0);
    EXPECT(strcmp(tok_kind_name(TK_LAUNCH_OPEN), "'<<<'") == 0);
    EXPECT(strcmp(tok_kind_name(TK_INC), "'++'") == 0);
    EXPECT(strcmp(tok_kind_name(TK_NAME), "identifier") == 0);
    for (int k = 0; k < TK_NKINDS; k++)
        EXPECT(tok_kind_name((tok_kind)k) != NULL && strcmp(tok_kind_name((tok_kind)k), "?") != 0);

    /* a magic only at the start of a statement and of a line */
    lex_init(&lx, "  %time x\na % b;\n%whos");
    t = lex_next(&lx);
    EXPECT(t.kind == TK_MAGIC && t.len == 6 && memcmp(t.start, "time x", 6) == 0 && t.col == 4);
    t = lex_next(&lx);
    EXPECT(t.kind == TK_NAME);
    t = lex_next(&lx);
    EXPECT(t.kind == TK_PERCENT);
    lex_next(&lx);
    lex_next(&lx);
    t = lex_next(&lx);
    EXPECT(t.kind == TK_MAGIC && t.line == 3);
}

static void test_expressions(void)
{
    TREE("a + b * c @ d", "(expr! (+ a (@ (* b c) d)))");
    TREE("a = b = c + 1;", "(expr (= a (= b (+ c 1))))");
    TREE("x += 1; y @= w; z <<= 2; q %= 3", "(expr (+= x 1)) (expr (@= y w)) (expr (<<= z 2)) (expr! (%= q 3))");
    TREE("a || b && c | d ^ e & f == g < h << i + j * k",
         "(expr! (|| a (&& b (| c (^ d (& e (== f (< g (<< h (+ i (* j k)))))))))))");
    TREE("a - b - c", "(expr! (- (- a b) c))");
    TREE("c ? a : b ? d : e", "(expr! (? c a (? b d e)))");
    TREE("!a && ~b", "(expr! (&& (! a) (~ b)))");
    TREE("-a[1].T", "(expr! (- (. (index a 1) T)))");
    TREE("++i; i--; --a[0]", "(expr (pre++ i)) (expr (post-- i)) (expr! (pre-- (index a 0)))");
    TREE("(int) x + (float) 2 * (double)(y) + (bool) z",
         "(expr! (+ (+ (cast int x) (* (cast float 2) (cast float y))) (cast bool z)))");
    TREE("(x) + (x + 1) * 2", "(expr! (+ x (* (+ x 1) 2)))");
    TREE("f(); g(1, a + 2); x.reshape(2, -1)",
         "(expr (call f)) (expr (call g 1 (+ a 2))) (expr! (call (. x reshape) 2 (- 1)))");
    TREE("x[:, 0]; x[::2]; x[1:-1]; x[a:b:c, ::]; x[:]; x[i, j:]",
         "(expr (index x (: _ _ _) 0)) (expr (index x (: _ _ 2))) (expr (index x (: 1 (- 1) _))) "
         "(expr (index x (: a b c) (: _ _ _))) (expr (index x (: _ _ _))) (expr! (index x i (: j _ _)))");
    TREE("x[c ? 1 : 2]", "(expr! (index x (? c 1 2)))");
    TREE("x[None, ..., 1:]; x[None + 1]; x[...][None]",
         "(expr (index x None ... (: 1 _ _))) (expr (index x (+ None 1))) (expr! (index (index x ...) None))");
    TREE("k<<<g, 256>>>(out, a, n); k<<<cdiv(n, 256), 256, 1024>>>()",
         "(expr (launch k < g 256 > (args out a n))) (expr! (launch k < (call cdiv n 256) 256 1024 > (args)))");
    TREE("42; 0x2a; 052; 7u; 9UL; 'a'; '\\n'; 1.5; 1e3; 2.5f; .5; true; false",
         "(expr 42) (expr 42) (expr 42) (expr 7) (expr 9) (expr 97) (expr 10) (expr 1.5) (expr 1000) (expr 2.5) "
         "(expr 0.5) (expr true) (expr! false)");
    TREE("9223372036854775807", "(expr! 9223372036854775807)");
    TREE("\"a\\tb\" \"c\\x41\\0d\\\\\"", "(expr! \"a\\x09bcA\\x00d\\x5c\")");
    TREE("\"\"", "(expr! \"\")");
    TREE("a < b > c <= d >= e != f", "(expr! (!= (>= (<= (> (< a b) c) d) e) f))");
    TREE("x = {1, 2, {3, 4,},}", "(expr! (= x { 1 2 { 3 4 } }))");
}

static void test_statements(void)
{
    TREE("int x = 1, y; const float z = 2.0; tensor a = {{1, 2}, {3, 4}}; auto s = \"hi\";",
         "(decl int x=1 y) (decl const float z=2) (decl tensor a={ { 1 2 } { 3 4 } }) (decl auto s=\"hi\")");
    TREE("double d; bool b = true; string s;", "(decl float d) (decl bool b=true) (decl string s)");
    TREE("tensor f(tensor x, int k) { return x * k; }",
         "(func tensor f (tensor x int k) (block (return (* x k))))");
    TREE("void g(void) { return; } int h() { }", "(func void g () (block (return _))) (func int h () (block))");
    TREE("if (a) b; else if (c) { d; } else e;",
         "(if a (expr b) (if c (block (expr d)) (expr e)))");
    TREE("if (a) if (b) c; else d;", "(if a (if b (expr c) (expr d)) _)");
    TREE("for (int i = 0; i < n; i++) s += i;",
         "(for (decl int i=0) (< i n) (post++ i) (expr (+= s i)))");
    TREE("for (;;) break; for (i = 0; ; ) continue;",
         "(for _ _ _ (break)) (for (expr (= i 0)) _ _ (continue))");
    TREE("while (x) { x--; } do { y++; } while (y < 3);",
         "(while x (block (expr (post-- x)))) (do (block (expr (post++ y))) (< y 3))");
    TREE("; { ; }", "(empty) (block (empty))");
    ERRORS("{ int x = 1; x }", "1:15 expected ';' after expression");
    TREE("x; y", "(expr x) (expr! y)");
    TREE("x; y // last\n/* c */\n", "(expr x) (expr! y)");
    TREE("%time f(x)\n%whos  \nx", "(magic \"time f(x)\") (magic \"whos\") (expr! x)");
    TREE("x = 1;\n  %timeit   y = 2", "(expr (= x 1)) (magic \"timeit   y = 2\")");
}

static void test_kernels(void)
{
    const char *src =
        "#define N 4\n"
        "#define SQ(x) ((x) * (x))\n"
        "__global__ void sqdiff(float *out, const float *a, int n) {\n"
        "    int i = blockIdx.x; // }\n"
        "    const char *s = \"}\"; char c = '}'; /* } */\n"
        "    if (i < n) { out[i] = SQ(a[i]); }\n"
        "}\n"
        "__device__ float sq(float v) { return v * v; }\n"
        "int n = 1 << 20;\n"
        "sqdiff<<<cdiv(n, 256), 256>>>(out, a, n);\n";
    ast_cell cell;
    eng_error errs[4];
    int n = ast_parse(src, &cell, errs, 4);
    EXPECT(n == 0);
    EXPECT(cell.nstmts == 4);
    if (n == 0 && cell.nstmts == 4) {
        ast *k = cell.stmts[0];
        EXPECT(k->kind == AST_KERNEL && k->ival == 1 && k->nlen == 6 && strcmp(k->name, "sqdiff") == 0);
        EXPECT(k->line == 1 && k->col == 1);
        EXPECT(strncmp(k->str, "#define N 4\n", 12) == 0);
        EXPECT(k->str[k->slen - 1] == '}' && (int)strlen(k->str) == k->slen);
        EXPECT(strstr(k->str, "if (i < n) { out[i] = SQ(a[i]); }\n}") != NULL);
        ast *d = cell.stmts[1];
        EXPECT(d->kind == AST_KERNEL && d->ival == 0 && strcmp(d->name, "sq") == 0 && d->line == 8 && d->col == 1);
        EXPECT(strcmp(d->str, "__device__ float sq(float v) { return v * v; }") == 0);
        EXPECT(cell.stmts[3]->kind == AST_EXPR && cell.stmts[3]->a->kind == AST_LAUNCH);
        EXPECT(cell.stmts[2]->line == 9 && cell.stmts[2]->col == 1);
    }
    arena_decref(cell.arena);
    TREE("__global__ void __launch_bounds__(256) k2(int *p) { }", "(kernel global k2)");
    TREE("x = 1;\n  __device__ int f(int a);", "(expr (= x 1)) (kernel device f)");
}

static void test_errors(void)
{
    ERRORS("x = (1 + 2;", "1:11 expected ')' to close '(' at line 1, column 5, found ';'");
    ERRORS("x = 1\ny = 2\nz", "1:6 expected ';' after expression|2:6 expected ';' after expression");
    ERRORS("{ x = 1 }", "1:8 expected ';' after expression");
    TREE("if (a) b", "(if a (expr b) _)"); /* the end of the cell ends it (not a result) */
    ERRORS("if (a) b\nc", "1:9 expected ';' after expression");
    ERRORS("int x = 1;\nfoo(;\nint y = $;\nz = 3 +;\nok();",
           "2:5 expected an expression, found ';'|3:9 unexpected character '$'|4:8 expected an expression, found ';'");
    ERRORS("void f() {\n  int g() { }\n  x = 1;\n  y = ;\n}",
           "2:3 functions can only be defined at top level|4:7 expected an expression");
    ERRORS("1 + 2 = 3;", "1:3 cannot assign to this expression"); /* a binary node is at its operator */
    ERRORS("f() = 3;", "1:1 cannot assign to this expression");
    ERRORS("x = 99999999999999999999;", "1:5 integer literal '99999999999999999999' is too large");
    ERRORS("x = 0x10000000000000000;", "1:5 integer literal '0x10000000000000000' is too large");
    ERRORS("x = 12ab; y = 08;", "1:5 malformed number '12ab'|1:15 malformed number '08'");
    ERRORS("s = \"abc;\nt = 1;", "1:5 unterminated string");
    ERRORS("x = 1; /* never\n closed", "1:8 unterminated comment");
    ERRORS("x = \"\\q\";", "1:6 unknown escape sequence '\\q'");
    ERRORS("c = 'ab';", "1:5 exactly one character");
    ERRORS("#include <x.h>\nint x = 1;", "1:1 preprocessor lines are only allowed before __global__ / __device__");
    ERRORS("#define N 4\n#include <x.h>\nint x = 1;", "1:1 preprocessor lines are only allowed before");
    ERRORS("void f() {\n#define N 4\n}", "2:1 #define lines are only allowed at top level");
    TREE("#define N 4\n#define M (N * 2)\nint x = N;", "(empty) (decl int x=N)");
    TREE("x = 4 * sizeof(float) + sizeof(unsigned long long) + sizeof(const float *);", "(expr (= x (+ (+ (* 4 4) 8) 8)))");
    ERRORS("__global__ void k(int *p) {\n  p[0] = 1;\n", "1:1 unterminated kernel definition");
    ERRORS("void f() {\n__global__ void k() {}\n}", "2:1 __global__ / __device__ functions can only be defined at top level");
    ERRORS("x = a ? b;", "1:10 expected ':' for the '?' at line 1, column 7, found ';'");
    ERRORS("}\nx = 1;", "1:1 unexpected '}'");
    ERRORS("k<<<1>>>(x);", "1:2 a launch takes <<<grid, block>>>");
    ERRORS("x = (tensor) y;", "1:6 cannot cast to 'tensor'");
    ERRORS("void x = 1;", "1:1 a variable cannot be void");
    ERRORS("x[] = 1;", "1:3 expected an index or a slice, found ']'");
    ERRORS("x[..];", "1:5 expected '...' (an ellipsis) in the index");
    ERRORS("x[. . .];", "1:5 expected '...' (an ellipsis) in the index");
    ERRORS("a.(1);", "1:3 expected a member name after '.', found '('");
    ERRORS("else x;", "1:1 'else' without an 'if'");
    ERRORS("x = 1 2;", "1:6 expected ';' after expression");
    ERRORS("for (i = 0; i < n) x;", "1:18 expected ';' after the loop's condition, found ')'");
    ERRORS("while x) y;", "1:7 expected '(' after 'while', found 'x'");
    ERRORS("f(1, 2;\ng(3);", "1:7 expected ')' to close '(' at line 1, column 2, found ';'");
    ERRORS("x = \xc3\xa9;", "1:5 unexpected character '\xc3\xa9'");
    ERRORS("x = \x01;", "1:5 unexpected character '\\x01'");
    ERRORS("tensor f(tensor) {}", "1:16 expected a parameter name, found ')'");
    ERRORS("++3;", "1:1 cannot apply '++' to this expression");
    ERRORS("int x = 1 int y = 2;", "1:10 expected ';' after the declaration, found 'int'");
    /* the end of the cell ends a top-level declaration (and do-while); nothing nested */
    TREE("double d = 1", "(decl float d=1)");
    TREE("int x = 1;\ndouble d = 2 // a comment", "(decl int x=1) (decl float d=2)");
    ERRORS("int x = 1\nint y = 2", "1:10 expected ';' after the declaration, found 'int'");
    ERRORS("void f() { int x = 1", "1:21 expected ';' after the declaration, found end of cell");
    ERRORS("if (c) int x = 1", "1:17 expected ';' after the declaration, found end of cell");
    TREE("for (i = 0; i < 3; i++) s += i", "(for (expr (= i 0)) (< i 3) (post++ i) (expr (+= s i)))");
    TREE("while (1) break", "(while 1 (break))");
    TREE("do x++; while (x < 3)", "(do (expr (post++ x)) (< x 3))");
    ERRORS("void f() { while (1) break", "1:27 expected ';' after 'break', found end of cell");
    ERRORS("x = n // 2;\ny = 1;", "1:6 expected ';' after expression ('//' starts a comment in C: to divide write '/')");
    ERRORS("int h = n //(k+1);\nint y = 1;", "1:10 expected ';' after the declaration, found 'int' ('//' starts");
    ERRORS("x = n // a note\ny = 1;", "1:6 expected ';' after expression");
    ERRORS("void f() { if (x) { y = 1 } }", "1:26 expected ';' after expression");
    ERRORS("return 1 + ;; x = ;", "1:12 expected an expression|1:19 expected an expression");

    /* nesting too deep: one error, no crash */
    static char deep[20000];
    memset(deep, '(', 10000);
    deep[10000] = 0;
    ERRORS(deep, "1:256 nesting too deep");
    memset(deep, 0, sizeof deep);
    for (int i = 0; i < 5000; i++)
        memcpy(deep + 2 * i, "-~", 2);
    deep[10000] = 'x';
    ERRORS(deep, "1:256 nesting too deep");
    memset(deep, 0, sizeof deep);
    for (int i = 0; i < 3000; i++)
        memcpy(deep + 4 * i, "a = ", 4);
    deep[12000] = 'b';
    deep[12001] = 0;
    ERRORS(deep, "1:1021 nesting too deep");
    memset(deep, 0, sizeof deep);
    memset(deep, '{', 5000);
    ERRORS(deep, "1:257 nesting too deep");

    /* more errors than room: all counted, max_errs stored */
    ast_cell cell;
    eng_error errs[2];
    int n = ast_parse("a = ;\nb = ;\nc = ;\n", &cell, errs, 2);
    EXPECT(n == 3);
    EXPECT(errs[0].line == 1 && errs[1].line == 2);
    arena_decref(cell.arena);
    n = ast_parse("a = ;", &cell, NULL, 0);
    EXPECT(n == 1);
    arena_decref(cell.arena);
}

static void test_open_depth(void)
{
    int inv;
    EXPECT(ast_open_depth("x = 1;", &inv) == 0 && inv == 0);
    EXPECT(ast_open_depth("void f() {\n  if (x) {", &inv) == 2 && inv == 0);
    EXPECT(ast_open_depth("f(a, [1,", &inv) == 2 && inv == 0);
    EXPECT(ast_open_depth("s = \"abc", &inv) == -1);
    EXPECT(ast_open_depth("/* abc", &inv) == -1);
    EXPECT(ast_open_depth("x = \"{\" + '(' // {\n", &inv) == 0 && inv == 0);
    EXPECT(ast_open_depth("x = 1; }", &inv) == 0 && inv == 1);
    EXPECT(ast_open_depth("f(]", &inv) == 0 && inv == 1);
    EXPECT(ast_open_depth("%time f(\n", &inv) == 0 && inv == 0);
    EXPECT(ast_open_depth("", &inv) == 0 && inv == 0);
}

int main(void)
{
    test_lexer();
    test_expressions();
    test_statements();
    test_kernels();
    test_errors();
    test_open_depth();
    if (failures) {
        fprintf(stderr, "test_parse: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_parse: all %d checks passed\n", checks);
    return 0;
}
