/* interp.h — the session's state and the engine's internal interfaces between the
 * checker (engine/lang/check.c), the interpreter (engine/lang/interp.c), the built-ins
 * (engine/builtins*.c) and the session API (engine/lang/session.c).
 *
 * The session owns its globals (top-level variables and functions, by index, found by
 * name through a hash table), the RNG, the optimisers, the value stack the
 * interpreter's frames live on, the sink of the running cell, and its context (grad
 * mode, device, interrupt flag, ...: engine/base/context.h), current on the thread while
 * the session runs. A global's index never changes once given, so
 * checked code refers to globals by index; re-declaring a name rebinds the same index.
 */
#ifndef KILN_INTERP_H
#define KILN_INTERP_H

#include <signal.h>
#include "engine/lang/ast.h"
#include "engine/base/context.h"
#include "engine/train/optim.h"
#include "engine/engine.h"
#include "engine/lang/value.h"

/* Where code came from: a cell, kept alive by its arena, so that errors inside a
 * function defined in cell 2 and called from cell 5 point into cell 2. */
typedef struct eng_source {
    int refcount;        /* the running cell and each function defined in it */
    arena *arena;        /* the parse tree; dropped with the source */
    const char *text;    /* the cell's text (arena memory) */
    char *name;          /* "cell[3]", "train.kn" (malloc'ed) */
    int first_line;      /* line number of the text's first line within name */
    char *path;          /* the debugger's path of the cell (malloc'ed), or NULL */
    int dbg_gen;         /* the debugger's breakpoint generation dbg_has_bp was found for */
    int dbg_has_bp;      /* a breakpoint is set in path (engine/lang/debug.c) */
} eng_source;

/* A user function. */
typedef struct eng_func {
    int refcount;        /* globals and values that hold it */
    eng_source *src;     /* the cell that defined it */
    ast *def;            /* its AST_FUNC node (in src->arena) */
    int frame_size;      /* local slots its body needs (parameters first) */
    char *name;          /* malloc'ed */
} eng_func;

typedef struct eng_global {
    char *name;          /* malloc'ed */
    ast_type type;       /* declared type; TY_FUNC for a function */
    value v;             /* current value (VAL_VOID until its declaration runs) */
    int defined;         /* a declaration has run: later cells may use it */
} eng_global;

#define ENG_STACK_SLOTS (1 << 16)
#define ENG_MAX_DEPTH 1000
#define ENG_STREAM_BUF 8192

struct eng_session {
    eng_ctx ctx;          /* what the layers below reach without a session (context.h) */
    eng_global *globals;  /* by index */
    int nglobals, capglobals;
    int *hash;            /* open addressing: index+1 into globals, 0 empty */
    int hashcap;          /* power of two */
    tensor_rng rng;       /* seed(n) resets it */
    opt_registry optims;  /* the optimisers' int handles (engine/train/optim.h) */
    int nfits;            /* fit calls so far, for their progress bars' display ids */
    value *stack;         /* ENG_STACK_SLOTS values for frames */
    const eng_sink *sink; /* the running cell's sink */
    char outbuf[ENG_STREAM_BUF]; /* stdout text not yet sent */
    int outlen;
    double last_flush;    /* monotonic seconds of the last stream flush */
    int ncells;           /* cells executed, for default names */
    int stack_used;       /* slots of stack in use by running frames */
    int depth;            /* calls in progress */
    struct eng_ktable *kernels; /* __global__ and __device__ definitions (engine/lang/kernels.h) */
    struct eng_custom_table *customs; /* set_backward's pairs, NULL until the first (engine/lang/custom_ops.h) */
    struct interp *running; /* the innermost interpreter running (engine/lang/interp.c), so that a
                               user function a built-in calls back reports into its chain */
    int *shadow;          /* by built-in index: 1 + the global of the same name, 0 none; a call
                             of the built-in runs that global instead while it holds a function */
    /* the debugger (engine/lang/debug.h) */
    int dbg_active;             /* a host is attached: the interpreter calls the hook (atomic) */
    struct eng_debug *dbg;      /* breakpoints, step mode, host, variable references */
    struct eng_dbg_frec *dframes; /* per depth: the frame's function, source, slots, statement */
    struct eng_dbg_scope *eval_scope; /* while evaluating in a frame: its locals (check, run) */
};

/* ---- globals ---- */
int eng_global_find(eng_session *s, const char *name, int len); /* -1 if none */
int eng_global_add(eng_session *s, const char *name, int len);  /* index, or -1 on OOM */
/* The user function that shadows built-in index b (a function defined with its name,
 * not deleted), or NULL: calls of the built-in go to it (engine/lang/shadow.c). Inline:
 * the interpreter asks at every call of a built-in. */
static inline struct eng_func *eng_shadow_func(const eng_session *s, int b)
{
    int g = s->shadow[b] - 1; /* b is a built-in's index, checked by the checker */
    return g >= 0 && s->globals[g].defined && s->globals[g].v.type == VAL_FUNC ? s->globals[g].v.as.fn : NULL;
}
/* %del: forgets a global (its value released, no longer defined); -1 with err when
 * name is not a defined global */
int eng_global_delete(eng_session *s, const char *name, eng_error *err);

/* ---- checker ---- */
/* Resolves names and checks types of a parsed cell against the session; stores
 * errors (at most max_errs) and returns how many there were. New top-level names get
 * global indices >= s->nglobals, in order of appearance. */
typedef struct check_result {
    int nnew;            /* new top-level names: globals s->nglobals .. +nnew-1 */
    const char **names;  /* their names (cell arena memory); malloc'ed array */
    int frame_size;      /* local slots the cell's own code needs */
} check_result;
int check_cell(eng_session *s, ast_cell *cell, eng_error *errs, int max_errs, check_result *res);

/* the names the language defines (f32, cpu, stderr, M_PI, ...): index of name or -1,
 * and the i-th name (NULL past the end) */
int check_constant_index(const char *name, int len);
const char *check_constant_name(int i);
/* the binary operator of a compound assignment: TK_PLUSEQ gives TK_PLUS; 0 for others */
int check_compound_op(int op);

/* ---- operators (engine/lang/operators.c) ---- */
/* a op b for two values (borrowed) into *out (new), op a binary operator token; -1 with
 * err filled (no position) when the operator does not apply or fails */
int eng_binop(int op, value a, value b, value *out, eng_error *err);
int eng_int_binop(int op, int64_t a, int64_t b, value *out, eng_error *err);
const char *eng_op_name(int op);  /* "+", "<<", ...; "?" for others */
op_id eng_tensor_op(int op);    /* the op table's id of an operator, OP_COUNT for none */

/* ---- interpreter ---- */
/* Runs a checked cell. Returns 0, or -1 with *err set, *err_src the source whose lines
 * err's line/col refer to, and trace (malloc'ed lines, caller frees) the call chain. */
typedef struct eng_trace {
    char **lines;         /* "  in f() at cell[2]:4:5" ... */
    int n, cap;
} eng_trace;
int interp_run_cell(eng_session *s, ast_cell *cell, eng_source *src, int frame_size, eng_error *err,
                    eng_source **err_src, eng_trace *trace);
void eng_trace_free(eng_trace *t);
/* the running cell's call chain: its length now, and dropping what was added since (a
 * built-in that recovers from its callback's error: fit backing off out of memory,
 * gradcheck retrying in f32 when f refuses f64) */
int interp_trace_mark(eng_session *s);
void interp_trace_reset(eng_session *s, int mark);
/* calls a user function with argc values (borrowed) */
int interp_call(eng_session *s, eng_func *fn, int argc, value *argv, value *out, eng_error *err);

void eng_source_decref(eng_source *src);
void eng_func_decref(eng_func *fn);

/* ---- output ---- */
void eng_stream(eng_session *s, int fd, const char *text, size_t len);
void eng_flush(eng_session *s);
/* text/plain of a value: repr 1 quotes strings (cell results); malloc'ed; _n also
 * gives its length (a string may hold NULs) */
char *eng_value_text(value v, int repr);
char *eng_value_text_n(value v, int repr, size_t *len);
/* C printf over values: argv[first] is the format; the text and its length (a %s of
 * a string with NULs keeps them). Widths and precisions above ENG_FORMAT_MAX are a
 * ValueError naming the conversion; an interrupt stops it between conversions. */
#define ENG_FORMAT_MAX 1000000
int eng_format(eng_call *c, int first, char **out, size_t *len);
/* sends a value as display_data (update 0/1) or as the cell's result (as_result 1) */
int eng_show(eng_session *s, value v, int as_result, const char *display_id, int update, eng_error *err);

/* ---- compiling and running code (engine/lang/session.c) ---- */
typedef struct eng_compiled {
    ast_cell cell;       /* the parse, checked */
    eng_source *src;     /* holds the arena */
    int frame_size;      /* local slots of the cell's own code */
} eng_compiled;
eng_compiled *eng_compile(eng_session *s, const char *code, const char *cell_name, int first_line,
                          eng_error *quiet_err);
int eng_run_compiled(eng_session *s, eng_compiled *c, eng_error *quiet_err);
void eng_compiled_free(eng_compiled *c);
/* warnings about a cell that compiled (engine/lang/lint.c): to its stderr stream */
void eng_lint_cell(eng_session *s, const eng_source *src);
/* a parsed cell's object-like #define lines as host constants (engine/lang/defines.c),
 * before the cell is checked */
void eng_cell_defines(eng_session *s, const ast_cell *cell, const char *cell_name, int first_line);
/* The text of the session's #defines that a __global__/__device__ definition of source
 * src[0, srclen) sees (kernels.h, eng_kdefine): each whose global is defined and still
 * holds the value it made, except names that src's own '#' lines define or #undef (its
 * own win). malloc'ed, "" when none; NULL when out of memory. */
char *eng_kernel_prelude(eng_session *s, const char *src, int srclen);
/* Records a #define name[0, nlen) kept as text (malloc'ed, taken) that made global g
 * hold v, replacing an earlier one of that name; -1 when out of memory. */
struct eng_ktable;
int eng_kdefine_set(struct eng_ktable *t, const char *name, size_t nlen, char *text, int g, value v);
void eng_session_reset(eng_session *s);
extern const char *const eng_magic_names[];

/* ---- magics ---- */
/* %del NAME ... (engine/lang/shadow.c) and %source NAME (engine/lang/magic_source.c),
 * rows of magic.c's table */
int eng_magic_del(eng_session *s, const char *magic, const char *rest, eng_source *src, eng_error *err);
int eng_magic_source(eng_session *s, const char *magic, const char *rest, eng_source *src, eng_error *err);
int eng_magic(eng_session *s, const char *line, eng_source *src, eng_error *err);
/* The largest tensors that session user's variables hold on backend be, by name, as
 * one line into buf ("largest live tensors on sim: a 64.00 MiB, ..."); the session
 * sets it as its context's oom_note for out-of-memory errors (engine/lang/magic.c). */
struct eng_backend;
void eng_oom_note(void *user, const struct eng_backend *be, char *buf, size_t n);

/* ---- built-ins ---- */
int eng_builtin_index(const eng_builtin *b);
int eng_builtin_count(void);

#endif
