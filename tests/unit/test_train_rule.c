/* test_train_rule.c — unit tests of lr_find's choice of a learning rate
 * (train_lr_suggest in engine/train/train.c) on synthetic sweeps of 100 steps from 1e-7 to 10,
 * as lr_find makes them: a clean valley, the same with the noise of real minibatches
 * (20 noise draws: the choice stays within a factor of 2.5 of the true minimum's rate,
 * the smoothing pulling it a little to the left, towards the gentler side), very noisy, flat, rising from the start, falling to the end, too
 * short, and cut by a non-finite loss. Exits non-zero on failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/train/train.h"
#include "tests/unit/check.h"

#define N 100

static double lrs[N];

/* a deterministic standard normal (xorshift and Box-Muller) */
static uint64_t rng_state;
static double gauss(void)
{
    double u[2];
    for (int k = 0; k < 2; k++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        u[k] = ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

/* a loss that falls from 2.3 to about 0.5 around 1e-4 and blows up past 1e-2, as a
 * network's sweep does: its true minimum is found on the grid by the test */
static double valley_curve(double lr)
{
    double x = log10(lr);
    return 0.5 + 1.8 / (1 + exp(3 * (x + 4))) + 0.02 * exp(5 * (x + 2.5));
}

static int true_min(void)
{
    int im = 0;
    for (int i = 1; i < N; i++)
        if (valley_curve(lrs[i]) < valley_curve(lrs[im]))
            im = i;
    return im;
}

static void test_clean_valley(void)
{
    double l[N];
    for (int i = 0; i < N; i++)
        l[i] = valley_curve(lrs[i]);
    train_lr_choice c;
    CHECK(train_lr_suggest(lrs, l, N, &c) == 0);
    int im = true_min();
    CHECK(c.flags == 0);
    CHECK(c.n == N);
    CHECK(abs(c.i_min - im) <= 1);               /* the smoothing has no lag */
    CHECK(fabs(log10(c.lr / (lrs[im] / TRAIN_LR_MIN_DIV))) < 0.1);
    /* the steepest descent: where the logistic's slope peaks, near 1e-4 */
    CHECK(fabs(log10(lrs[c.i_steep]) + 4) < 0.25);
    CHECK(c.i_steep < c.i_min && c.i_valley < c.i_min);
    printf("clean valley: min %.3g (true %.3g), steepest %.3g, valley %.3g, drop %.3g, noise %.3g\n", lrs[c.i_min],
           lrs[im], lrs[c.i_steep], lrs[c.i_valley], c.drop, c.noise);
    CHECK(c.drop > 1.5 && c.noise < 0.01);
}

/* the noise of 64-image minibatches (about 0.25 on a loss near 1) in 20 draws: the
 * suggestion stays within a factor 2.5 of the true minimum's rate every time, and the
 * noise near the minimum is measured about right (from some 20 points) */
static void test_noisy_but_stable(void)
{
    double lo = INFINITY, hi = 0, vlo = INFINITY, vhi = 0;
    int im = true_min();
    for (int s = 1; s <= 20; s++) {
        rng_state = 0x9E3779B97F4A7C15ull * (uint64_t)s;
        double l[N];
        for (int i = 0; i < N; i++)
            l[i] = valley_curve(lrs[i]) * (1 + 0.25 * gauss());
        train_lr_choice c;
        CHECK(train_lr_suggest(lrs, l, N, &c) == 0);
        CHECK(!(c.flags & (TRAIN_LR_FLAT | TRAIN_LR_DIVERGES | TRAIN_LR_SHORT | TRAIN_LR_NO_MIN)));
        CHECK(fabs(log10(c.lr / (lrs[im] / TRAIN_LR_MIN_DIV))) < log10(2.5));
        /* the noise's deviation is 0.13 at the minimum, 0.35 at the window's start */
        CHECK(c.noise > 0.5 * 0.13 && c.noise < 0.3);
        lo = fmin(lo, c.lr);
        hi = fmax(hi, c.lr);
        vlo = fmin(vlo, lrs[c.i_valley]);
        vhi = fmax(vhi, lrs[c.i_valley]);
    }
    printf("noisy sweeps: suggestion %.3g to %.3g (fastai's valley %.3g to %.3g)\n", lo, hi, vlo, vhi);
    CHECK(hi / lo < 3);
}

/* noise as large as the fall: flagged, and still a rate inside the sweep */
static void test_very_noisy(void)
{
    rng_state = 12345;
    double l[N];
    for (int i = 0; i < N; i++)
        l[i] = valley_curve(lrs[i]) + 1.5 * gauss();
    train_lr_choice c;
    train_lr_suggest(lrs, l, N, &c);
    CHECK(c.flags & TRAIN_LR_NOISY);
    CHECK(c.lr >= lrs[0] && c.lr <= lrs[N - 1]);
    char buf[128];
    CHECK_STR(train_lr_flags_text(TRAIN_LR_NOISY, buf, sizeof buf), "noisy curve");
}

/* nothing learns: the default rate, flagged */
static void test_flat(void)
{
    rng_state = 777;
    double l[N];
    for (int i = 0; i < N; i++)
        l[i] = 2.3 + 0.02 * gauss();
    train_lr_choice c;
    train_lr_suggest(lrs, l, N, &c);
    CHECK(c.flags == TRAIN_LR_FLAT);
    CHECK(c.lr == TRAIN_LR_FALLBACK);
}

/* the loss rises from the first step (and lr_find stops once it passes 4x its best) */
static void test_diverging_from_the_start(void)
{
    double l[40];
    for (int i = 0; i < 40; i++)
        l[i] = 2.3 * exp(0.04 * i);
    train_lr_choice c;
    train_lr_suggest(lrs, l, 40, &c);
    CHECK(c.flags == TRAIN_LR_DIVERGES);
    CHECK(c.lr == lrs[0]);
    CHECK(c.n == 40 && c.i_min < 4);
}

/* an easy convex problem: the loss falls all the way; the steepest descent instead */
static void test_no_minimum(void)
{
    double l[N];
    for (int i = 0; i < N; i++)
        l[i] = 0.01 + 2.3 / (1 + exp(2 * (log10(lrs[i]) + 2)));
    train_lr_choice c;
    train_lr_suggest(lrs, l, N, &c);
    CHECK(c.flags == TRAIN_LR_NO_MIN);
    CHECK(c.lr == lrs[c.i_steep]);
    CHECK(fabs(log10(c.lr) + 2) < 0.25);
}

/* a sweep cut short by a non-finite loss uses the points before it; under 10 is too few */
static void test_short_and_cut(void)
{
    double l[N];
    for (int i = 0; i < N; i++)
        l[i] = valley_curve(lrs[i]);
    l[90] = NAN;
    train_lr_choice c;
    train_lr_suggest(lrs, l, N, &c);
    CHECK(c.n == 90 && c.flags == 0 && abs(c.i_min - true_min()) <= 1);
    l[5] = INFINITY;
    train_lr_suggest(lrs, l, N, &c);
    CHECK(c.n == 5 && c.flags == TRAIN_LR_SHORT && c.lr == TRAIN_LR_FALLBACK);
    train_lr_suggest(lrs, l, 0, &c);
    CHECK(c.flags == TRAIN_LR_SHORT && c.lr == TRAIN_LR_FALLBACK);
}

/* the smoothing: a constant stays put, a line keeps its slope away from the ends (no
 * lag), and a blow-up is clipped at twice the starting level */
static void test_smooth(void)
{
    double l[N], s[N];
    for (int i = 0; i < N; i++)
        l[i] = 3.0 - 0.01 * i;
    train_lr_smooth(l, N, s);
    for (int i = 3 * TRAIN_LR_SIGMA; i < N - 3 * TRAIN_LR_SIGMA; i++)
        CHECK_NEAR(s[i], l[i], 1e-9);
    for (int i = 0; i < N; i++)
        l[i] = i < 50 ? 1.0 : 1e6;
    train_lr_smooth(l, N, s);
    CHECK_NEAR(s[0], 1.0, 1e-12);
    CHECK_NEAR(s[N - 1], 2.0, 1e-12);
}

int main(void)
{
    for (int i = 0; i < N; i++)
        lrs[i] = 1e-7 * pow(1e8, (double)i / N);
    test_clean_valley();
    test_noisy_but_stable();
    test_very_noisy();
    test_flat();
    test_diverging_from_the_start();
    test_no_minimum();
    test_short_and_cut();
    test_smooth();
    return check_finish("test_train_rule");
}
