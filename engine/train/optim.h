/* optim.h — optimisers: SGD (momentum, Nesterov, decoupled weight decay) and AdamW with
 * fastai's defaults (beta1 0.9, beta2 0.99, eps 1e-5, weight decay 0.01 applied as
 * p *= 1 - lr*wd, none on 1-D parameters such as biases and norm weights).
 *
 * An optimiser holds references to its parameters and its per-parameter state (the
 * momentum or first-moment buffer m, the second moment v). Updates run with grad
 * recording off, on whatever device the parameters live: one fused step per parameter
 * where the backend has it, else in-place tensor ops.
 *
 * The language refers to an optimiser by an int handle (`int opt = adamw(w, b);`):
 * a registry maps handles to optimisers. Each session holds its own (eng_session's
 * optims, freed with the session), so handle 1 of one session is not another's. %save writes every registered optimiser (its handle, kind,
 * hyperparameters, step count, parameters and moment buffers) and %load puts it back
 * under the same handle (engine/lang/session_file.c, docs/session-file.md).
 */
#ifndef KILN_OPTIM_H
#define KILN_OPTIM_H

#include "engine/tensor/tensor.h"

typedef enum opt_kind { OPT_SGD, OPT_ADAMW } opt_kind;

typedef struct opt_state {
    opt_kind kind;
    int n;              /* number of parameters */
    tensor **params;    /* references */
    tensor **m;         /* SGD momentum buffer / Adam first moment (NULL until first step) */
    tensor **v;         /* Adam second moment (NULL until first step) */
    double beta1;       /* Adam beta1, or SGD momentum (0: plain SGD) */
    double beta2;       /* Adam only */
    double eps;         /* Adam only */
    double wd;          /* decoupled weight decay: p *= 1 - lr*wd before the step */
    int nesterov;       /* SGD only */
    int wd_1d;          /* also decay 1-D parameters (0 by default) */
    int64_t steps;      /* updates done (Adam's bias correction) */
    /* the last fit's record: nhist epochs of OPT_HIST_COLS values each (malloc'ed) */
    double *hist;
    int nhist;
} opt_state;

/* a fit history row: train loss, validation loss, validation accuracy, training seconds */
#define OPT_HIST_COLS 4
/* replaces o's history with n rows (copied); 0, or -1 with err */
int opt_set_history(opt_state *o, const double *rows, int n, eng_error *err);

/* New optimisers over n float parameters (each gets a new reference). */
opt_state *opt_adamw_new(tensor *const *params, int n, eng_error *err);
opt_state *opt_sgd_new(tensor *const *params, int n, eng_error *err);
void opt_free(opt_state *o);

/* One update with learning rate lr from each parameter's .grad (parameters without a
 * gradient are skipped). Grad recording is off during the update. A parameter takes
 * the backend's fused step (engine/tensor/backend.h: adamw_step, sgd_step) when the backend
 * has one and the parameter, gradient and state are contiguous f32 or f64 of one
 * dtype; else the op-by-op path. */
int opt_step(opt_state *o, double lr, eng_error *err);
/* Clears every parameter's .grad. */
void opt_zero_grad(opt_state *o);

/* Sets a hyperparameter by name: "momentum" (SGD) / "beta1", "beta2", "eps", "wd",
 * "nesterov", "wd_1d". 0, or -1 with err for an unknown name or bad value. */
int opt_set(opt_state *o, const char *name, double value, eng_error *err);

/* A snapshot of the parameters' values and the optimiser's state, and its restore
 * (lr_find). The snapshot is an opt_state whose params are clones. */
opt_state *opt_snapshot(const opt_state *o, eng_error *err);
int opt_restore(opt_state *o, const opt_state *snap, eng_error *err);

/* ---- the registry of handles (one per session; zero-initialised is empty) ---- */
typedef struct opt_registry {
    opt_state **v;   /* v[h - 1]: handle h's optimiser, or NULL */
    int n, cap;      /* handles given (the largest so far), room in v */
} opt_registry;
/* a handle > 0, or -1 on allocation failure (o is then freed) */
int opt_register(opt_registry *r, opt_state *o);
opt_state *opt_lookup(const opt_registry *r, int64_t handle);
/* Puts o under the given handle (%load), freeing an optimiser already there; later
 * opt_register calls give handles above it. 0, or -1 with err (o is then freed). */
int opt_register_at(opt_registry *r, int64_t handle, opt_state *o, eng_error *err);
/* the largest handle given so far (0: none); opt_lookup of a lower one may be NULL */
int opt_max_handle(const opt_registry *r);
/* frees every optimiser; r is empty again */
void opt_registry_clear(opt_registry *r);
/* "adamw" or "sgd", and back (-1 for an unknown name) */
const char *opt_kind_name(opt_kind k);
int opt_kind_from_name(const char *name);

#endif
