/* train.h — training loops as in fastai (see ../shared/design/anchors.md, "Training
 * algorithms"): the one-cycle schedule, the learning-rate finder and fit.
 *
 * A model is a user function `tensor model(tensor x)` returning logits [N, C]; labels
 * are integer [N]; the loss is nn_cross_entropy. The parameters and their optimiser
 * state are an opt_state (engine/optim.h).
 */
#ifndef KILN_TRAIN_H
#define KILN_TRAIN_H

#include "engine/interp.h"
#include "engine/optim.h"

/* one cycle at step (0-based) of total: the learning rate goes from max/25 up to max by
 * a cosine over the first 25 % of the steps, then down to max/1e5 by a cosine; the
 * momentum (Adam's beta1) 0.95 -> 0.85 -> 0.95 on the same phases */
double train_onecycle_lr(double step, double total, double max_lr);
double train_onecycle_mom(double step, double total);

/* fastai's "valley": the middle of the longest run of falling loss (losses as given;
 * lr_find passes the smoothed losses without the first 10 % and the last 5) */
int train_valley(const double *losses, int n);

/* lr_find: an exponential sweep of the learning rate from 1e-7 to 10 over 100 steps of
 * minibatches of batch_size; the loss is smoothed by a de-biased exponential average
 * (beta 0.98) and the sweep stops once it exceeds 4x the best; the parameters and the
 * optimiser state are restored afterwards. Shows the curve (SVG, with a text table as
 * text/plain) unless quiet. *suggested gets the valley learning rate. */
int train_lr_find(eng_session *s, eng_func *model, opt_state *o, tensor *x, tensor *y, int64_t batch_size,
                  int quiet, double *suggested, eng_error *err);

/* fit: lr_find (unless max_lr > 0: an expert's peak rate, used as given; 0: find it),
 * then epochs of one cycle (to that rate) with o, minibatches
 * shuffled each epoch with the session's RNG; live progress in one display updated in
 * place; one printed line per epoch (train loss, validation loss and accuracy).
 * *val_acc gets the last validation accuracy. The epochs finished (all of them, or those
 * before an interrupt) replace o's history (opt_state.hist): train loss, validation
 * loss and accuracy, and training seconds per epoch. */
int train_fit(eng_session *s, eng_func *model, opt_state *o, tensor *xtr, tensor *ytr, tensor *xval,
              tensor *yval, int64_t epochs, int64_t batch_size, double max_lr, double *val_acc, eng_error *err);

#endif
