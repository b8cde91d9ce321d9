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

typedef enum opt_kind { OPT_SGD, OPT_ADAMW, OPT_ADAMW_SF } opt_kind;

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
    /* schedule-free AdamW only (m holds z, v the second moment; the parameters hold y while
     * training, x = the average while sf_eval) */
    double sf_weight_sum; /* the sum of the averaging weights, lr_max^2 per step */
    double sf_lr_max;     /* the largest (warmed-up, bias-corrected) rate so far */
    int64_t warmup;       /* linear warm-up over this many steps (0: none) */
    int sf_eval;          /* 1: the parameters hold x (opt_sf_mode) */
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
/* Schedule-free AdamW (Defazio et al., 2024, "The Road Less Scheduled"; the reference
 * implementation facebookresearch/schedule_free adamw_schedulefree_reference.py): no
 * schedule, a constant rate (after an optional linear warm-up). Per step k (from 0),
 * with lr_k = lr * min(1, (k+1)/warmup) * sqrt(1 - beta2^(k+1)), lr_max the largest
 * lr_k so far, c = lr_max^2 / (sum of lr_max^2 over the steps so far):
 *   v  = beta2 v + (1 - beta2) g^2;   u = g / (sqrt(v) + eps) + wd y   (wd: not on 1-D)
 *   z -= lr_k u;   x = (1 - c) x + c z;   y = beta1 x + (1 - beta1) z
 * where the gradient g is taken at y, which the parameters hold while training. Only z
 * and v are kept: x = (y - (1 - beta1) z) / beta1. opt_sf_mode(o, 1) puts x into the
 * parameters (to evaluate; batch norm's statistics want recomputing there), 0 puts y
 * back; a step in eval mode is an error (its gradient was taken at x). Defaults: beta1 0.9, beta2 0.999,
 * eps 1e-8, wd 0.01 decoupled (at y), none on 1-D parameters. */
opt_state *opt_adamw_sf_new(tensor *const *params, int n, eng_error *err);
/* eval 1: the parameters to x; 0: back to y (no-op for other optimisers or when already
 * there); 0, or -1 with err */
int opt_sf_mode(opt_state *o, int eval, eng_error *err);
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
 * "nesterov", "wd_1d", "warmup" (schedule-free AdamW: steps). 0, or -1 with err for an unknown name or bad value. */
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
/* "adamw", "adamw_sf" or "sgd", and back (-1 for an unknown name) */
const char *opt_kind_name(opt_kind k);
int opt_kind_from_name(const char *name);

#endif
