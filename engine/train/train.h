/* train.h — training loops as in fastai (see ../shared/design/anchors.md, "Training
 * algorithms"): the one-cycle schedule, the learning-rate finder and fit.
 *
 * A model is a user function `tensor model(tensor x)` returning logits [N, C]; labels
 * are integer [N]; the loss is nn_cross_entropy. The parameters and their optimiser
 * state are an opt_state (engine/train/optim.h).
 */
#ifndef KILN_TRAIN_H
#define KILN_TRAIN_H

#include <signal.h>
#include "engine/engine.h"
#include "engine/train/optim.h"

/* What lr_find and fit need from the language above them, as callbacks: the train layer
 * includes nothing of engine/lang. engine/lang/builtins_train.c fills one from the
 * session and the model function for each call. */
typedef struct train_host {
    void *ctx;                        /* the session, passed back to the callbacks */
    /* model(x): a new reference to the logits, or NULL with err (located in the model's
     * cell: the language's call keeps the model's own line and the call chain) */
    tensor *(*forward)(void *ctx, tensor *x, eng_error *err);
    /* sends a display bundle; update: replaces the display named b->display_id */
    int (*display)(void *ctx, const eng_bundle *b, int update, eng_error *err);
    /* writes text to the cell's stdout */
    void (*stream)(void *ctx, const char *text, size_t len);
    tensor_rng *rng;                  /* the session's random numbers (shuffles) */
    volatile sig_atomic_t *interrupt; /* the session's interrupt flag */
    int *nfits;                       /* the session's count of fits (display ids) */
    /* forgets the call chain of a callback's error that fit recovered from (or NULL) */
    void (*recovered)(void *ctx);
} train_host;

/* one cycle at step (0-based) of total: the learning rate goes from max/25 up to max by
 * a cosine over the first 25 % of the steps, then down to max/1e5 by a cosine; the
 * momentum (Adam's beta1) 0.95 -> 0.85 -> 0.95 on the same phases */
double train_onecycle_lr(double step, double total, double max_lr);
double train_onecycle_mom(double step, double total);

/* fastai's "valley": the middle of the longest run of falling loss (losses as given;
 * lr_find passes the smoothed losses without the first 10 % and the last 5) */
int train_valley(const double *losses, int n);

/* lr_find's choice of a learning rate from one sweep (or the step-wise mean of two):
 * a pure function of the rates and the raw (unsmoothed) losses, unit-tested on synthetic
 * curves. The losses are smoothed with no lag (train_lr_smooth: a Gaussian over
 * TRAIN_LR_SIGMA steps either side, after clipping at twice the starting level, so a
 * blow-up does not drag the curve); the minimum of that curve is the rate where the
 * sweep's loss stops falling, which moves little with the seed (a factor of about 2,
 * where the valley and the steepest point move by 20), and the suggestion is that rate
 * over TRAIN_LR_MIN_DIV. The steepest descent before the minimum and fastai's valley (on
 * the de-biased exponential average) are reported beside it. Flags: NOISY (the basin of
 * the minimum, the points within two standard errors of the smoothed curve's noise, is
 * wider than TRAIN_LR_NOISY_DECADES, or the fall is under four standard errors), FLAT
 * (the smoothed loss falls by less than 3 % of its start: no rate in the sweep helps;
 * the suggestion is then TRAIN_LR_FALLBACK), DIVERGES (the minimum lies in the first
 * tenth of the sweep: the loss rises from the start; the suggestion is the smallest rate
 * tried), NO_MIN (the basin of the minimum reaches the end of the sweep: the loss never
 * turned up, as on an easy convex problem; the suggestion is then the steepest descent),
 * SHORT (under 10 finite losses: TRAIN_LR_FALLBACK). */
#define TRAIN_LR_SIGMA 4
#define TRAIN_LR_MIN_DIV 1.0
#define TRAIN_LR_NOISY_DECADES 1.0
#define TRAIN_LR_FALLBACK 1e-3
enum { TRAIN_LR_NOISY = 1, TRAIN_LR_FLAT = 2, TRAIN_LR_DIVERGES = 4, TRAIN_LR_SHORT = 8, TRAIN_LR_NO_MIN = 16 };
typedef struct train_lr_choice {
    double lr;                    /* the suggestion */
    int i_min, i_steep, i_valley; /* indices of the minimum, the steepest descent and the valley */
    int n;                        /* the points used: those before the first non-finite loss */
    int flags;                    /* TRAIN_LR_* */
    double noise;                 /* robust standard deviation of the raw losses around the smoothed curve */
    double drop;                  /* the smoothed curve's start minus its minimum */
    double basin;                 /* the minimum's basin, in decades of the rate */
} train_lr_choice;

/* the zero-lag smoothed curve of losses[0 .. n) into out (n values; see above) */
void train_lr_smooth(const double *losses, int n, double *out);

/* the choice from rates lrs[0 .. n) (increasing) and raw losses; 0, or -1 on allocation
 * failure (c then holds TRAIN_LR_FALLBACK, flagged SHORT) */
int train_lr_suggest(const double *lrs, const double *losses, int n, train_lr_choice *c);

/* the flags in words ("noisy curve", ...), or "" for none */
const char *train_lr_flags_text(int flags, char *buf, int cap);

/* lr_find: an exponential sweep of the learning rate from 1e-7 to 10 over 100 steps of
 * minibatches of batch_size; the sweep stops once the de-biased exponential average of
 * the loss (beta 0.98) exceeds 4x its best; the parameters, the optimiser state, batch
 * norm's running statistics and the session's random-number state are restored
 * afterwards (so fit with lr_find trains exactly as fit given the rate found). *suggested gets
 * train_lr_suggest's rate; where it flags the curve NOISY, a second sweep from the same
 * start is averaged with the first, step by step, and the choice made again. Shows the
 * curve (SVG: losses, smoothed curve, the choice and the alternatives marked; a text
 * table as text/plain) unless quiet. */
int train_lr_find(const train_host *h, opt_state *o, tensor *x, tensor *y, int64_t batch_size,
                  int quiet, double *suggested, eng_error *err);

/* fit: lr_find (unless max_lr > 0: an expert's peak rate, used as given; 0: find it),
 * then epochs of one cycle (to that rate) with o, minibatches
 * shuffled each epoch with the session's RNG; live progress in one display updated in
 * place; one printed line per epoch (train loss, validation loss and accuracy).
 * *val_acc gets the last validation accuracy. The epochs finished (all of them, or those
 * before an interrupt) replace o's history (opt_state.hist): train loss, validation
 * loss and accuracy, and training seconds per epoch.
 * Out of memory (a MemoryError from the model, the loss, the backward pass or the step)
 * does not end fit while the batch can shrink: lr_find is run again at half the batch;
 * a training step is taken again at half the batch from the same sample of the epoch,
 * with the peak rate divided by sqrt(2) (the square-root scaling rule for Adam-type
 * optimisers) and the schedule counted in the new, twice as many steps; evaluation goes
 * from batches of 1024 to half as many. Each back-off prints a line naming the batch
 * sizes and the error, and the progress line says the batch in use. */
int train_fit(const train_host *h, opt_state *o, tensor *xtr, tensor *ytr, tensor *xval,
              tensor *yval, int64_t epochs, int64_t batch_size, double max_lr, double *val_acc, eng_error *err);

#endif
