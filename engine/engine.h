/* engine.h — the public API of the Kiln language engine.
 *
 * The engine lexes, parses, checks and runs cells of the Kiln language (a small C with
 * tensors) against a session whose top-level variables, functions and kernels persist
 * from one cell to the next. It knows nothing of Jupyter, JSON or ZeroMQ: what a cell
 * prints, shows or fails with goes to an eng_sink supplied by the caller (kernel/ turns
 * each callback into an IOPub message; `kiln run` prints them).
 *
 * Ownership: the session owns everything it creates. Strings handed to sink callbacks
 * are borrowed for the duration of the call. Results returned by eng_complete and
 * eng_inspect are owned by the caller and freed with the matching _free function.
 *
 * Threads: one thread drives a session (execute, complete, inspect, is_complete).
 * eng_interrupt may be called from any thread or from a signal handler. Sessions are
 * independent (each holds all of its state, engine/base/context.h): several may live in one
 * process, taking turns on one thread or each driven by its own thread. What they
 * share is the process's devices (docs/architecture.md, "Where state lives").
 */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include <stddef.h>

typedef struct eng_session eng_session;

/* One MIME representation of a value: data is UTF-8 text (SVG, HTML, plain) or
 * base64 text for binary types (image/png), as Jupyter carries them. */
typedef struct eng_mime {
    const char *mime; /* "text/plain", "text/html", "image/svg+xml", "image/png" */
    const char *data; /* NUL-terminated */
} eng_mime;

#define ENG_BUNDLE_MAX 6
typedef struct eng_bundle {
    int n;                            /* number of entries in items */
    eng_mime items[ENG_BUNDLE_MAX];   /* text/plain always first */
    const char *display_id;           /* NULL, or the id for display updates */
} eng_bundle;

/* An error as the user sees it. ename/evalue follow Jupyter's error message; traceback
 * holds the full report (location, source line, caret), one line per entry. */
typedef struct eng_error_report {
    const char *ename;      /* "SyntaxError", "NameError", "TypeError", "ShapeError", ... */
    const char *evalue;     /* one-line message */
    const char **traceback; /* lines, no trailing newline */
    int ntraceback;
} eng_error_report;

/* Where a cell's outputs go. Any callback may be NULL (the output is dropped). */
typedef struct eng_sink {
    void *user;
    /* fd is 1 for stdout, 2 for stderr */
    void (*stream)(void *user, int fd, const char *text, size_t len);
    /* display_data (update == 0) or update_display_data (update == 1) */
    void (*display)(void *user, const eng_bundle *bundle, int update);
    /* the cell's result: its last expression statement written without ';' */
    void (*result)(void *user, const eng_bundle *bundle);
    /* called once per failed cell */
    void (*error)(void *user, const eng_error_report *err);
    /* clear_output(wait) */
    void (*clear_output)(void *user, int wait);
    /* input("prompt"): returns a malloc'ed line without its newline and sets *len to
     * its length in bytes (it may hold NUL bytes; a NUL follows it), or NULL where input
     * is not allowed, or when the wait ended with an interrupt (eng_interrupt called)
     * or a shutdown; the builtin then fails with a clear error, "Interrupted" when the
     * session was interrupted */
    char *(*input)(void *user, const char *prompt, int password, size_t *len);
} eng_sink;

eng_session *eng_session_new(void);
void eng_session_free(eng_session *s);

/* Runs one cell. cell_name names the cell in error reports ("cell[3]", "file.kn");
 * first_line is the line number of the cell's first line in that name (1 for a
 * notebook cell, the line after the `//%%` separator for a file).
 * Returns 0 when the cell ran to its end, 1 when it failed (error already sent). */
int eng_execute(eng_session *s, const char *code, const char *cell_name, int first_line,
                const eng_sink *sink);

/* Evaluates one expression for Jupyter's user_expressions: its value goes to the sink's
 * result callback, a failure to its error callback. Nothing may change the session: a
 * statement or declaration, an assignment, ++/--, a kernel launch, a call of a user
 * function or of a built-in with side effects (output, random draws, files, training
 * state) is refused with an error that points at it. Returns 0, or 1 (error sent). */
int eng_evaluate(eng_session *s, const char *expr, const char *name, const eng_sink *sink);

/* Jupyter's is_complete_request. For ENG_INCOMPLETE, indent receives the suggested
 * indent of the next line (spaces), NUL-terminated, at most indent_size-1 chars. */
typedef enum { ENG_COMPLETE, ENG_INCOMPLETE, ENG_INVALID } eng_completeness;
eng_completeness eng_is_complete(const char *code, char *indent, size_t indent_size);

/* Completion at a byte offset `cursor` into code: the candidates replace
 * code[cursor_start, cursor_end). */
typedef struct eng_completions {
    char **matches; /* sorted, unique */
    int n;
    int cursor_start, cursor_end;
} eng_completions;
eng_completions eng_complete(eng_session *s, const char *code, int cursor);
void eng_completions_free(eng_completions *c);

/* Inspection of the name at or just before cursor. Returns a malloc'ed text/plain
 * description (type, shape, dtype, device of a variable; signature and doc of a
 * function or built-in), or NULL when nothing is found. detail_level 0 or 1. */
char *eng_inspect(eng_session *s, const char *code, int cursor, int detail_level);

/* Asks the running cell to stop at its next loop back-edge, call or tensor op with an
 * "Interrupted" error; the session's state is kept. Async-signal-safe. */
void eng_interrupt(eng_session *s);

/* Names the engine knows, for the kernel's kernel_info banner and help. */
const char *eng_version(void);

/* ---- the debugger (docs/debugger.md) ------------------------------------------------
 * A host (kernel/debugger.c: the Jupyter debug protocol) attaches to a session; the
 * interpreter then calls a hook at every statement and stops there on a breakpoint,
 * after a step, or when paused. A stop calls host->stopped on the thread running the
 * cell, which blocks until it returns what to do next; inside it (on that thread) the
 * host reads the stack, variables and evaluates expressions with the eng_debug_*
 * queries below. Functions marked "any thread" take the debugger's lock; the others
 * run on the session's thread, during a stop or while no cell runs. Kernel frames on
 * the simulator plug in through engine/lang/debug.h (eng_dbg_stop with extra frames). */
typedef enum eng_dbg_action {
    ENG_DBG_CONTINUE,  /* run to the next breakpoint */
    ENG_DBG_NEXT,      /* stop at the next statement of this frame or a caller */
    ENG_DBG_STEP_IN,   /* stop at the next statement anywhere */
    ENG_DBG_STEP_OUT,  /* stop at the next statement of a caller */
    ENG_DBG_ABORT      /* end the cell with "Interrupted" (state kept) */
} eng_dbg_action;

typedef struct eng_dbg_host {
    void *user;
    /* reason: "breakpoint", "step", "pause", "exception"; description: a sentence for
     * the UI ("ShapeError: ..." for an exception).
     * Blocks until the host decides; returns the action. */
    eng_dbg_action (*stopped)(void *user, const char *reason, const char *description);
} eng_dbg_host;

/* Attaches host (copied), or detaches with NULL (breakpoints cleared, stepping off).
 * Any thread. */
void eng_debug_attach(eng_session *s, const eng_dbg_host *host);
/* One breakpoint: line in the source, an optional condition (an expression evaluated
 * in the frame; stops when true) and hit condition (">= 3", "== 2", "% 4", or "5":
 * stops on that hit count). Strings are copied. */
typedef struct eng_dbg_bp {
    int line;
    const char *condition;     /* NULL or "" for none */
    const char *hit_condition; /* NULL or "" for none */
    const char *log_message;   /* NULL or "": stop; else a log point: prints this line
                                  ({expression} parts evaluated in the frame), no stop */
} eng_dbg_bp;
/* Replaces the breakpoints of the source at path (n 0 clears them). Any thread. */
int eng_debug_set_breakpoints(eng_session *s, const char *path, const eng_dbg_bp *bps, int n);
/* The first line at or after line (1-based) where a statement of code starts, or 0
 * when there is none (or code does not parse): where a breakpoint there will stop. */
int eng_debug_statement_line(const char *code, int line);
/* 1: stop where an error is raised (reason "exception", the description "Ename:
 * message"), before it ends the cell; 0: errors end the cell without a stop. Any thread. */
void eng_debug_stop_on_errors(eng_session *s, int on);
/* Stops the running cell at its next statement (reason "pause"). Any thread. */
void eng_debug_pause(eng_session *s);
/* The debugger's name for the next cell's source (a path: breakpoints name it); NULL:
 * none. Copied. The session's thread, before eng_execute. */
void eng_debug_set_next_path(eng_session *s, const char *path);

/* A frame of the stopped stack; id is stable for this stop. */
typedef struct eng_dbg_frame {
    int id;          /* > 0 */
    char name[128];  /* "f", "<cell>", a kernel's "k [block (3,0,0) thread (7,0,0)]" */
    char path[512];  /* the source path ("" when the source has none) */
    int line, col;   /* 1-based, in path's text */
} eng_dbg_frame;
/* The frames of the current stop, innermost first: how many (at most max copied). */
int eng_debug_stack(eng_session *s, eng_dbg_frame *out, int max);
/* A variable as the debugger shows it; every string malloc'ed. */
typedef struct eng_dbg_var {
    char *name;
    char *value;     /* one line of text */
    char *type;      /* "int", "tensor", ... */
    int ref;         /* > 0: it has children, read with eng_debug_vars(ref) */
    int nchildren;   /* how many, when ref > 0 */
} eng_dbg_var;
/* The reference of frame_id's locals (globals 0) or of the globals (globals 1); 0 when
 * there is no such frame. Valid until the stop ends (or the next cell, when idle). */
int eng_debug_scope(eng_session *s, int frame_id, int globals);
/* The children of ref from start (count 0: all): *out malloc'ed, *n of them. -1 when
 * ref is unknown. */
int eng_debug_vars(eng_session *s, int ref, int start, int count, eng_dbg_var **out, int *n);
void eng_debug_vars_free(eng_dbg_var *v, int n);
/* Evaluates code in frame_id's scope (its locals, then the globals; 0: globals only):
 * one expression (its value into *out) or statements (*out's value "" then); a
 * declaration at its top level declares a global. Output of print goes to the running
 * cell's sink. On failure 1, with the error's text in err. */
int eng_debug_evaluate(eng_session *s, int frame_id, const char *code, eng_dbg_var *out,
                       char *err, size_t errlen);
/* As eng_debug_evaluate, handing the value's display bundle (text/plain, and for a
 * tensor text/html) to show. */
int eng_debug_rich(eng_session *s, int frame_id, const char *code,
                   void (*show)(void *user, const eng_bundle *b), void *user, char *err,
                   size_t errlen);

#endif
