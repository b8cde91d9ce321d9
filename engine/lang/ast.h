/* ast.h — tokens and the syntax tree of one cell.
 *
 * The lexer (engine/lang/lex.c) turns a cell into tokens that point into the cell's text
 * with line and column. The parser (engine/lang/parse.c) builds a tree of ast nodes in the
 * cell's arena (engine/base/arena.h): nodes are never freed one by one; the arena goes when
 * the last holder drops it (the cell's execution, or a function defined in the cell).
 * The checker (engine/lang/check.c) fills the resolution fields; the interpreter
 * (engine/lang/interp.c) walks the tree.
 */
#ifndef KILN_AST_H
#define KILN_AST_H

#include <stdint.h>
#include "engine/base/arena.h"
#include "engine/base/error.h"

/* ---- tokens ---- */
typedef enum tok_kind {
    TK_EOF = 0,
    TK_INT,      /* 42, 0x2a, 1 << 20 is three tokens */
    TK_FLOAT,    /* 1.5, 1e-3, 2.0f (the f suffix is accepted and ignored) */
    TK_STRING,   /* "text" with C escapes; text points at the opening quote */
    TK_CHAR,     /* 'a' : an int */
    TK_NAME,
    TK_MAGIC,    /* a whole line starting with % (at the start of a statement) */
    TK_KERNEL,   /* a whole __global__ / __device__ definition, verbatim; #define lines
                    directly before it are included */
    /* keywords */
    TK_INT_KW, TK_FLOAT_KW, TK_DOUBLE_KW, TK_BOOL_KW, TK_STRING_KW, TK_TENSOR_KW,
    TK_AUTO_KW, TK_VOID_KW, TK_IF, TK_ELSE, TK_FOR, TK_WHILE, TK_DO, TK_BREAK,
    TK_CONTINUE, TK_RETURN, TK_TRUE, TK_FALSE, TK_CONST,
    /* punctuation and operators */
    TK_LPAREN, TK_RPAREN, TK_LBRACE, TK_RBRACE, TK_LBRACKET, TK_RBRACKET,
    TK_COMMA, TK_SEMI, TK_COLON, TK_QUESTION, TK_DOT,
    TK_PLUS, TK_MINUS, TK_STAR, TK_SLASH, TK_PERCENT, TK_AT,
    TK_AMP, TK_PIPE, TK_CARET, TK_TILDE, TK_SHL, TK_SHR,
    TK_NOT, TK_ANDAND, TK_OROR,
    TK_EQ, TK_NE, TK_LT, TK_LE, TK_GT, TK_GE,
    TK_ASSIGN, TK_PLUSEQ, TK_MINUSEQ, TK_STAREQ, TK_SLASHEQ, TK_PERCENTEQ, TK_ATEQ,
    TK_AMPEQ, TK_PIPEEQ, TK_CARETEQ, TK_SHLEQ, TK_SHREQ,
    TK_INC, TK_DEC,
    TK_LAUNCH_OPEN,  /* <<< */
    TK_LAUNCH_CLOSE, /* >>> */
    TK_ERROR,        /* a character or literal the lexer could not read; text says which */
    TK_DEFINES,      /* '#define' lines not followed by a kernel (at the start of a statement) */
    TK_NKINDS
} tok_kind;

typedef struct token {
    tok_kind kind;     /* what it is */
    const char *start; /* points into the cell's text */
    int len;           /* bytes */
    int line, col;     /* 1-based; col counts bytes */
} token;

/* ---- declared types ---- */
typedef enum ast_type {
    TY_UNKNOWN = 0, /* not known before run time */
    TY_VOID, TY_BOOL, TY_INT, TY_FLOAT, TY_STRING, TY_TENSOR,
    TY_AUTO,        /* only in declarations: the initializer's type */
    TY_TUPLE, TY_DTYPE, TY_DEVICE, TY_FUNC
} ast_type;
/* "int", "tensor", ... as a declaration spells it ("unknown" for TY_UNKNOWN); check.c */
const char *ast_type_name(ast_type t);

/* ---- nodes ---- */
typedef enum ast_kind {
    /* expressions */
    AST_INT,       /* ival */
    AST_FLOAT,     /* fval */
    AST_BOOL,      /* ival 0/1 */
    AST_STRING,    /* str/slen: the decoded text (escapes applied), NUL-terminated */
    AST_NAME,      /* str/slen: the name */
    AST_UNARY,     /* op (TK_MINUS, TK_PLUS, TK_NOT, TK_TILDE) a */
    AST_BINARY,    /* a op b, op a binary operator token incl. TK_AT, TK_ANDAND, TK_OROR */
    AST_TERNARY,   /* a ? b : c */
    AST_ASSIGN,    /* a op b, op TK_ASSIGN or a compound TK_PLUSEQ...; a is a NAME, INDEX or MEMBER */
    AST_INCDEC,    /* op TK_INC/TK_DEC on a; ival 1 for prefix, 0 for postfix */
    AST_CALL,      /* a(list...) : a is a NAME, or a MEMBER for method sugar x.f(args) */
    AST_INDEX,     /* a[list...], each item an expression or an AST_SLICE */
    AST_SLICE,     /* a:b:c inside [], each of a, b, c may be NULL; ival AST_IDX_NEWAXIS
                      (None) or AST_IDX_ELLIPSIS (...) for those index items, else 0 */
    AST_MEMBER,    /* a.str */
    AST_CAST,      /* (type) a : a C cast to int, float, double, bool */
    AST_LIST,      /* { list... } a tensor literal (items are expressions or nested LISTs) */
    AST_LAUNCH,    /* a<<<list (grid, block[, shared])>>>(b->list args): b is an AST_CALL
                      holder whose list are the arguments; a is the kernel NAME */
    /* statements */
    AST_EXPR,      /* a; ival 1 when written without the closing ';' (shown as result) */
    AST_DECL,      /* type declared (TY_...); list of AST_VAR */
    AST_VAR,       /* str/slen name; a the initializer or NULL */
    AST_BLOCK,     /* { list... } */
    AST_IF,        /* if (a) b else c */
    AST_FOR,       /* for (a; b; c) d ; a is a DECL or EXPR or NULL, b and c may be NULL */
    AST_WHILE,     /* while (a) b */
    AST_DO,        /* do b while (a); */
    AST_BREAK,
    AST_CONTINUE,
    AST_RETURN,    /* a or NULL */
    AST_FUNC,      /* type = return type; str/slen name; list of AST_PARAM; a the body BLOCK */
    AST_PARAM,     /* type; str/slen name */
    AST_MAGIC,     /* str/slen: the line after '%' */
    AST_KERNEL,    /* str/slen: the CUDA source verbatim (with #defines before it);
                      ival 1 for __global__, 0 for __device__; name in name/nlen */
    AST_EMPTY,     /* ; or, with str, a cell's '#define' lines (TK_DEFINES) */
    AST_NKINDS
} ast_kind;

typedef struct ast {
    ast_kind kind;        /* what the node is */
    int op;               /* operator token kind, where one applies */
    int line, col;        /* where the node starts in the cell */
    ast_type type;        /* declared type (DECL, FUNC, PARAM); checker: static type of an expression */
    struct ast *a, *b, *c, *d; /* children, as each kind says */
    struct ast **list;    /* items (arguments, statements, declarators, parameters) */
    int nlist;            /* number of items */
    int chain;            /* checker: 1 on a link of a chain (ast_chain_left) with at least
                             AST_CHAIN_LOOP links from it down: the interpreter loops over them */
    int64_t ival;         /* integer literal, flags */
    double fval;          /* float literal */
    const char *str;      /* names, strings, magics, kernel source (arena memory, NUL-terminated) */
    int slen;             /* length of str */
    const char *name;     /* AST_KERNEL: the kernel's name */
    int nlen;             /* its length */
    /* filled by the checker, read by the interpreter */
    int res;              /* RES_* : how a NAME resolves */
    int slot;             /* local slot, global index, or built-in index */
    void *ext;            /* checker's extra data (e.g. a function's frame size) */
} ast;

/* The left operand of a link of a chain: a + b (any binary operator), x.m, x[i] and the
 * method call x.f(...) each apply to the value on their left. Chains are left-deep and
 * as long as the user writes them (`1+1+...+1`, `x.T.T...`), so the checker and the
 * interpreter walk them with a loop over this (from a link marked `chain`), not with
 * recursion. NULL for others. */
static inline struct ast *ast_chain_left(const struct ast *n)
{
    switch (n->kind) {
    case AST_BINARY: case AST_MEMBER: case AST_INDEX: return n->a;
    case AST_CALL: return n->a->kind == AST_MEMBER ? n->a->a : NULL;
    default: return NULL;
    }
}

/* Chains shorter than this recurse (it is cheaper); longer ones are loops. */
#define AST_CHAIN_LOOP 8

/* AST_SLICE's ival for the index items None and ... */
enum { AST_IDX_NEWAXIS = 1, AST_IDX_ELLIPSIS = 2 };

/* How a name resolves (ast.res). */
enum { RES_NONE = 0, RES_LOCAL, RES_GLOBAL, RES_BUILTIN, RES_CONST };

/* The parse of one cell. */
typedef struct ast_cell {
    ast **stmts;     /* top-level statements, in order */
    int nstmts;
    arena *arena;    /* owns the nodes and a copy of the cell's text */
    const char *src; /* the cell's text (in the arena) */
} ast_cell;

/* ---- lexer ---- */
typedef struct lexer {
    const char *src, *p; /* the cell and the next byte */
    int line, col;       /* of p */
    int at_stmt_start;   /* a '%' here starts a magic line */
} lexer;
void lex_init(lexer *lx, const char *src);
token lex_next(lexer *lx);
const char *tok_kind_name(tok_kind k); /* "'+'", "identifier", ... for messages */

/* Does the text of a '//' comment (just after the '//', to the end of the line) read
 * like an operand ("2", " (n + 1)"), not prose? For the '//' warning and hint (lint.c). */
int eng_comment_reads_as_operand(const char *text);

/* ---- parser ---- */
/* Parses code into a new arena. Every syntax error of the cell is appended to errs
 * (at most max_errs; the parser resynchronises at the next ';' or '}' after each).
 * Returns the number of errors; *out is filled even when there are errors (for
 * completion), or has nstmts 0. The caller owns out->arena (arena_decref). */
int ast_parse(const char *code, ast_cell *out, eng_error *errs, int max_errs);

/* Is this code complete enough to run (for Jupyter's is_complete)? Unclosed brackets,
 * braces, strings or comments: incomplete, with the depth of open braces for indent. */
int ast_open_depth(const char *code, int *invalid); /* -1 unterminated string/comment */

#endif
