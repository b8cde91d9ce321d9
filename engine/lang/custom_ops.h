/* custom_ops.h — functions of the language with their own backward (set_backward) and
 * gradcheck: engine/lang/custom_ops.c and engine/lang/gradcheck.c.
 *
 * The session keeps a table of pairs (function name -> backward's name), looked up by
 * name when the function is called, so redefining either keeps the pair. A call of a
 * paired function with a tensor argument that requires grad (grad mode on) runs the
 * body with grad mode off and records one autograd node (engine/train/autograd.h,
 * ag_custom) whose backward calls the backward function with f's arguments, the output,
 * the output's gradient and one zero-filled gradient buffer per tensor parameter. The
 * node owns a snapshot of the arguments and a reference to the backward function.
 */
#ifndef KILN_CUSTOM_OPS_H
#define KILN_CUSTOM_OPS_H

#include "engine/lang/interp.h"

/* the session's table of pairs (owned by the session) */
typedef struct eng_custom_pair {
    char *fname;  /* the function, malloc'ed */
    char *bwname; /* its backward, malloc'ed */
} eng_custom_pair;

typedef struct eng_custom_table {
    eng_custom_pair *v; /* in the order they were set */
    int n, cap;
} eng_custom_table;

/* pairs fname with bwname (replacing fname's earlier backward); -1 on OOM */
int eng_custom_set(eng_session *s, const char *fname, const char *bwname, eng_error *err);
/* the name of fname's backward, or NULL */
const char *eng_custom_backward_of(const eng_session *s, const char *fname);
/* forgets every pair (%reset) and frees the table (session end) */
void eng_custom_clear(eng_session *s);
void eng_custom_free(eng_session *s);

/* what the pairs say of the function called name, for %whos and inspect: "backward:
 * sq_backward", "backward of sq", both joined by "; ", or "" */
void eng_custom_describe(const eng_session *s, const char *name, char *buf, size_t n);

/* whether bw has the signature f's backward needs; -1 with an error that says what it expected */
int eng_custom_check(const eng_func *f, const eng_func *bw, const char *who, eng_error *err);

/* ---- interp.c's hook around a call of a user function ---- */
/* whether this call records one custom node: fn has a backward, grad mode is on and a
 * tensor argument requires grad */
int eng_custom_wants(const eng_session *s, const eng_func *fn, const value *args, int argc);
/* before the body runs: finds the backward, snapshots the (converted) arguments into
 * *ctx and turns grad mode off; -1 with err filled (no backward any more, or a
 * mismatching one), grad mode untouched */
int eng_custom_begin(eng_session *s, eng_func *fn, const value *args, int argc, void **ctx, eng_error *err);
/* after the body ran (rc its status): puts grad mode back and, when rc is 0, attaches
 * the node to *out (which it may replace); consumes ctx; -1 when rc was not 0 or with
 * err filled */
int eng_custom_finish(void *ctx, int rc, value *out, eng_error *err);

#endif
