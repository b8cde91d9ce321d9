/* debug.h — the debugger inside the engine: the statement hook the interpreter calls,
 * the frame records it keeps, and the interface through which code that is not the
 * interpreter (a kernel thread on the CUDA simulator) reports a stop of its own.
 *
 * The public side (attach a host, breakpoints, the stack, variables, evaluate) is in
 * engine/engine.h; docs/debugger.md says how the Jupyter kernel uses it.
 *
 * How a stop happens
 *   The interpreter calls eng_dbg_statement before each statement while a host is
 *   attached (one load and branch when none is). It decides from the breakpoints (of
 *   the statement's source path and line), the step mode and a pending pause whether to
 *   stop; a stop calls eng_dbg_stop, which calls the host's `stopped` callback on the
 *   thread running the cell. That callback blocks (serving the host's queries on that
 *   thread) until the user continues or steps, and returns the action; eng_dbg_stop
 *   records the step mode for the next statements and returns 0, or -1 with an
 *   "Interrupted" error when the host aborts (an interrupt while stopped).
 *
 * Plugging in other frames (the simulator's kernel threads)
 *   A kernel running on the simulator is not interpreted by interp.c, so it reports
 *   its own stops: at each kernel line it may call eng_dbg_breakpoint_at(s, path, line)
 *   (is a breakpoint there? it also counts hits and evaluates nothing), eng_dbg_want_step
 *   (is a step pending that should stop at the next line?), and to stop, eng_dbg_stop
 *   with its frames (innermost first): each an eng_dbg_xframe with a name, the source
 *   path and line, and a `locals` provider that lists the frame's variables into an
 *   eng_dbg_varsink with eng_dbg_add_text / eng_dbg_add_value. Those frames are shown
 *   above the interpreter's (the launch site and its callers), get ids above theirs,
 *   and their Locals scope calls the provider. Call it on the thread that runs the cell,
 *   or on a thread that the cell's thread is blocked waiting for (a simulator worker):
 *   the host's callback publishes on the cell thread's IOPub socket and runs the
 *   host's queries (the provider, evaluations) on the calling thread, during the stop.
 *   evaluate with an extra frame's id runs in the globals (the frame's own values are
 *   only what its provider lists; extend eng_dbg_xframe with an evaluator if needed).
 *   One stop at a time: a second eng_dbg_stop while one is in progress returns
 *   ENG_DBG_CONTINUE at once (other simulator threads wait at their barrier or line).
 *   A kernel defined in a cell has that cell's eng_source (its path, first_line): the
 *   kernel's lines are the cell's lines, and setBreakpoints verifies any of them. The returned action says how to go on;
 *   the caller implements next/stepIn/stepOut inside its kernel itself (e.g. stop at
 *   the next line of the same thread) and treats ENG_DBG_ABORT as an interrupt.
 */
#ifndef KILN_DEBUG_H
#define KILN_DEBUG_H

#include "engine/lang/interp.h"

/* What the interpreter records for each frame (s->dframes[depth]; depth 0 is the cell
 * that runs, 1.. the calls in progress). Written always (a few stores per call), read
 * only by the debugger. */
typedef struct eng_dbg_frec {
    struct eng_func *fn;  /* NULL for the cell's own code */
    eng_source *src;      /* the source its code comes from */
    value *fp;            /* its first local slot */
    ast *at;              /* the statement it is at (set by the hook while attached) */
    ast **stmts;          /* the cell's statements (fn NULL) */
    int nstmts;
} eng_dbg_frec;

/* Evaluating in a frame's scope (eng_debug_evaluate): the checker sees these locals
 * (s->eval_scope while it checks) and the interpreter runs the code on that frame. */
typedef struct eng_dbg_scope {
    int n;                /* locals visible */
    const char **names;   /* their names (NUL-terminated) */
    int *slots;           /* their slots relative to fp */
    ast_type *types;      /* their declared types */
    value *fp;            /* the frame */
    int base;             /* first slot the evaluated code may use for its own locals */
    int keep_result;      /* 1: the last expression's value goes to result, not shown */
    value result;         /* that value (owned) */
    int has_result;
} eng_dbg_scope;

/* The interpreter's hook, before statement n of source src runs in frame s->depth.
 * 0: go on; -1 with err set: the cell ends (interrupted while stopped). */
int eng_dbg_statement(eng_session *s, eng_source *src, ast *n, eng_error *err);

/* The interpreter's error hook: err was just raised at node n of src in frame s->depth
 * (its frames still live). Stops there (reason "exception") when the host asked to
 * stop on errors; the error then goes on as before. */
void eng_dbg_error(eng_session *s, eng_source *src, ast *n, const eng_error *err);

/* ---- for other frames (the simulator's kernel threads) ---- */
typedef struct eng_dbg_varsink eng_dbg_varsink;
typedef struct eng_dbg_xframe {
    char name[128];       /* shown in the call stack */
    char path[512];       /* the source path (the cell's, for a kernel defined in a cell) */
    int line, col;        /* 1-based in that source */
    /* lists the frame's variables: called during the stop, on the cell's thread */
    void (*locals)(void *user, eng_dbg_varsink *out);
    void *user;
} eng_dbg_xframe;
/* A variable with its text (and type, e.g. "int", "float3") */
void eng_dbg_add_text(eng_dbg_varsink *out, const char *name, const char *type, const char *text);
/* A variable holding a value (borrowed; a tensor becomes expandable) */
void eng_dbg_add_value(eng_dbg_varsink *out, const char *name, value v);
/* 1 when a breakpoint is set at path:line and its condition and hit count say stop
 * (conditions are evaluated in the innermost interpreter frame's scope). */
int eng_dbg_breakpoint_at(eng_session *s, const char *path, int line);
/* The pending step mode after the last stop: ENG_DBG_CONTINUE when none. */
eng_dbg_action eng_dbg_step_mode(eng_session *s);
/* Reports a stop with nx extra frames above the interpreter's; returns the action
 * (ENG_DBG_CONTINUE at once when no host is attached). The step mode it leaves
 * applies to the interpreter's frames; frames and providers are borrowed for the stop. */
eng_dbg_action eng_dbg_stop(eng_session *s, const char *reason, const char *description,
                            const eng_dbg_xframe *frames, int nx);

/* ---- for the kernel debugger (engine/lang/kdebug.c) ---- */
/* 1 while a host is attached. Any thread. */
int eng_dbg_attached(eng_session *s);
/* The breakpoints set in path, with no side effect (no hit counted): up to max lines
 * and their conditions (copied, "" for none); how many. Any thread. */
int eng_dbg_breakpoints_in(eng_session *s, const char *path, int *lines, char (*conds)[160], int max);

/* After a stop in other frames whose step leaves them (stepOut of a kernel's own frame):
 * the step the interpreter's frames go on with, from the current depth. */
void eng_dbg_set_step(eng_session *s, eng_dbg_action a);

/* ---- the session's side ---- */
struct eng_debug *eng_dbg_new(void);
void eng_dbg_free(struct eng_debug *d);
/* the path the next compiled source gets (malloc'ed copy, or NULL); clears it */
char *eng_dbg_take_next_path(eng_session *s);
/* drops the variable references (a new cell starts) */
void eng_dbg_forget(eng_session *s);

#endif
