"""Training tests (issue 6): AdamW steps and the one-cycle schedule against reference
values computed here with NumPy, lr_find on a toy problem, and fit on a 10,000-image
subset of Fashion-MNIST (>= 80 % test accuracy, no learning rate given).

Each test writes a small .kn program, runs it with `kiln run` (KILN, default
build/kiln) and reads what it prints or saves (.npy). Run: make test-train."""
import os
import re
import subprocess
import tempfile
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILN = os.path.abspath(os.environ.get("KILN", os.path.join(ROOT, "build", "kiln")))
FMNIST = "/usr/share/datasets/fashion-mnist"


def run_kn(code, timeout=120, ok=True):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.kn")
        with open(path, "w") as f:
            f.write(code.replace("@TMP@", d))
        t0 = time.monotonic()
        p = subprocess.run([KILN, "run", path], capture_output=True, text=True, timeout=timeout, cwd=d)
        elapsed = time.monotonic() - t0
        assert (p.returncode == 0) == ok, p.stdout + p.stderr
        arrays = {f[:-4]: np.load(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".npy")}
        return p.stdout + ("" if ok else p.stderr), arrays, elapsed


def test_adamw_matches_numpy():
    # loss = sum(w*w/2 + w*a) + sum(b*b/2 + b*c): grads w + a, b + c; lr from one cycle
    out, arr, _ = run_kn("""
seed(3);
tensor w = param(randn(3, 4).to(f64));
tensor b = param(randn(4).to(f64));
tensor a = randn(3, 4).to(f64);
tensor c = randn(4).to(f64);
save_npy(w, "@TMP@/w0.npy"); save_npy(b, "@TMP@/b0.npy");
save_npy(a, "@TMP@/a.npy"); save_npy(c, "@TMP@/c.npy");
int opt = adamw(w, b);
for (int t = 0; t < 6; t++) {
    tensor loss = sum(w * w * 0.5 + w * a) + sum(b * b * 0.5 + b * c);
    backward(loss);
    step(opt, onecycle_lr(t, 6, 0.3));
    opt_zero_grad(opt);
}
save_npy(w, "@TMP@/w.npy"); save_npy(b, "@TMP@/b.npy");
""")
    w, b = arr["w0"].copy(), arr["b0"].copy()
    a, c = arr["a"], arr["c"]
    mw, vw, mb, vb = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    b1, b2, eps, wd = 0.9, 0.99, 1e-5, 0.01
    for t in range(6):
        pos = t / 6
        mx = 0.3
        if pos < 0.25:
            lo, hi, p = mx / 25, mx, pos / 0.25
        else:
            lo, hi, p = mx, mx / 1e5, (pos - 0.25) / 0.75
        lr = lo + (1 + np.cos(np.pi * (1 - p))) * (hi - lo) / 2
        gw, gb = w + a, b + c
        w *= 1 - lr * wd  # decoupled weight decay, 2-D only
        mw = b1 * mw + (1 - b1) * gw
        vw = b2 * vw + (1 - b2) * gw**2
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb**2
        k = t + 1
        w -= lr / (1 - b1**k) * mw / (np.sqrt(vw / (1 - b2**k)) + eps)
        b -= lr / (1 - b1**k) * mb / (np.sqrt(vb / (1 - b2**k)) + eps)
    np.testing.assert_allclose(arr["w"], w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(arr["b"], b, rtol=1e-10, atol=1e-12)


def test_onecycle_matches_numpy():
    out, _, _ = run_kn("""
for (int i = 0; i <= 40; i++) printf("%.15g %.15g\\n", onecycle_lr(i, 40, 0.01), onecycle_mom(i, 40));
""")
    got = np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()])

    def combined_cos(pos, a, b, c):
        def cos_(s, e, p):
            return s + (1 + np.cos(np.pi * (1 - p))) * (e - s) / 2
        return np.where(pos < 0.25, cos_(a, b, pos / 0.25), cos_(b, c, (pos - 0.25) / 0.75))

    pos = np.arange(41) / 40
    np.testing.assert_allclose(got[:, 0], combined_cos(pos, 0.01 / 25, 0.01, 0.01 / 1e5), rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], combined_cos(pos, 0.95, 0.85, 0.95), rtol=1e-12)
    assert got[:, 0].argmax() == 10 and got[:, 1].argmin() == 10


TOY = """
seed(1);
tensor centers = randn(4, 8) * 3.0;
tensor y = randint(0, 4, 2000);
tensor x = centers[y] + randn(2000, 8);
tensor w = param(randn(8, 4) * 0.3);
tensor b = param(zeros(4));
tensor model(tensor xb) { return xb @ w + b; }
int opt = adamw(w, b);
"""


def test_lr_find_toy_suggests_a_sane_rate_and_restores():
    out, arr, _ = run_kn(TOY + """
save_npy(w, "@TMP@/w_before.npy");
float lr = lr_find(model, opt, x, y, 32);
save_npy(w, "@TMP@/w_after.npy");
printf("suggested %.6g\\n", lr);
""")
    lr = float(out.strip().splitlines()[-1].split()[1])
    # Adam on a well-conditioned softmax regression: the valley sits between 1e-4 and 1
    assert 1e-4 <= lr <= 1.0, out
    np.testing.assert_array_equal(arr["w_before"], arr["w_after"])
    assert "lr_find:" in out and "<- valley" in out


def test_fit_toy_learns():
    out, arr, _ = run_kn(TOY + """
save_npy(fit_history(opt), "@TMP@/h0.npy");
float acc = fit(model, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 2, 32);
save_npy(fit_history(opt), "@TMP@/h.npy");
printf("acc %.4f\\n", acc);
""")
    acc = float(out.strip().splitlines()[-1].split()[1])
    assert acc >= 0.9, out
    assert out.count("val accuracy") == 2
    # fit_history: one row per epoch, as printed: train loss, val loss, val accuracy, seconds
    assert arr["h0"].shape == (0, 4)
    h = arr["h"]
    assert h.shape == (2, 4) and h.dtype == np.float64
    lines = [ln.split() for ln in out.splitlines() if "val accuracy" in ln]
    for row, ln in zip(h, lines):
        np.testing.assert_allclose(row[:3], [float(ln[4]), float(ln[7]), float(ln[10])], atol=6e-5)
        assert row[3] >= 0
    assert abs(h[-1, 2] - acc) < 6e-5


def test_fit_tells_the_model_train_from_eval():
    """fit (and its lr_find) records in training steps and not in evaluation, so a model
    that passes is_grad_enabled() as batch_norm's and dropout's training flag uses batch
    statistics and dropout while it trains and the running statistics when evaluated."""
    out, arr, _ = run_kn("""
seed(0);
int ntrain_calls = 0;
int neval_calls = 0;
tensor centers = randn(4, 8) * 3.0;
tensor y = randint(0, 4, 2000);
tensor x = centers[y] + randn(2000, 8);
tensor w = param(randn(8, 4) * 0.3);
tensor g = param(ones(4));
tensor bt = param(zeros(4));
tensor rm = zeros(4);
tensor rv = ones(4);
tensor model(tensor xb) {
    if (is_grad_enabled()) ntrain_calls += 1; else neval_calls += 1;
    return batch_norm(dropout(xb, 0.1, is_grad_enabled()) @ w, g, bt, rm, rv, is_grad_enabled());
}
int opt = adamw(w, g, bt);
float acc = fit(model, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 2, 32);
printf("acc %.4f train %d eval %d grad %d\\n", acc, ntrain_calls, neval_calls, is_grad_enabled());
set_grad_enabled(false);
tensor logits = model(x[1500:2000]);
set_grad_enabled(true);
save_npy(logits, "@TMP@/logits.npy");
save_npy(w, "@TMP@/w.npy");
save_npy(g, "@TMP@/g.npy");
save_npy(bt, "@TMP@/bt.npy");
save_npy(rm, "@TMP@/rm.npy");
save_npy(rv, "@TMP@/rv.npy");
save_npy(x[1500:2000], "@TMP@/xv.npy");
""")
    words = out.strip().splitlines()[-1].split()
    # lr_find's 100 steps and 2 epochs of 1500 // 32 = 46 steps train; one batch per evaluation
    assert (int(words[3]), int(words[5]), int(words[7])) == (100 + 92, 2, 1), out
    assert float(words[1]) >= 0.9, out
    # evaluation used the running statistics (which training moved off 0 and 1) and no dropout
    rm, rv = arr["rm"], arr["rv"]
    assert np.abs(rm).max() > 0.05 and np.abs(rv - 1).max() > 0.05
    expect = (arr["xv"] @ arr["w"] - rm) / np.sqrt(rv + 1e-5) * arr["g"] + arr["bt"]
    np.testing.assert_allclose(arr["logits"], expect, rtol=1e-4, atol=1e-4)


def test_lr_find_restores_batch_norm_running_statistics():
    """lr_find's steps move batch_norm's running statistics (to inf or NaN once the rate
    is large enough, which one cycle could never wash out): it puts them back."""
    out, arr, _ = run_kn("""
seed(0);
tensor centers = randn(4, 8) * 3.0;
tensor y = randint(0, 4, 1000);
tensor x = centers[y] + randn(1000, 8) * 10.0 + 5.0;
tensor w = param(randn(8, 4) * 0.3);
tensor g = param(ones(4));
tensor bt = param(zeros(4));
tensor rm = full(4, 0.5);
tensor rv = full(4, 2.0);
tensor model(tensor xb) { return batch_norm(xb @ w, g, bt, rm, rv, is_grad_enabled()); }
int opt = adamw(w, g, bt);
float lr = lr_find(model, opt, x, y, 32);
save_npy(rm, "@TMP@/rm.npy");
save_npy(rv, "@TMP@/rv.npy");
tensor moved = model(x[0:32]);     // a training-mode call outside lr_find still updates them
save_npy(rm, "@TMP@/rm2.npy");
""")
    np.testing.assert_array_equal(arr["rm"], np.full(4, 0.5, np.float32))
    np.testing.assert_array_equal(arr["rv"], np.full(4, 2.0, np.float32))
    assert np.abs(arr["rm2"] - 0.5).max() > 0.01


@pytest.mark.skipif(not os.path.exists(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")),
                    reason="Fashion-MNIST not installed (Debian package dataset-fashion-mnist)")
def test_fit_fashion_mnist_mlp():
    out, _, elapsed = run_kn(f"""
seed(0);
tensor xtr = load_idx("{FMNIST}/train-images-idx3-ubyte.gz");
tensor ytr = load_idx("{FMNIST}/train-labels-idx1-ubyte.gz");
tensor xte = load_idx("{FMNIST}/t10k-images-idx3-ubyte.gz");
tensor yte = load_idx("{FMNIST}/t10k-labels-idx1-ubyte.gz");
xtr = reshape(xtr[0:10000].to(f32) / 255.0, 10000, 784);
ytr = ytr[0:10000].to(i64);
xte = reshape(xte.to(f32) / 255.0, 10000, 784);
yte = yte.to(i64);
tensor w1 = param(randn(784, 128) * sqrt(2.0 / 784));
tensor b1 = param(zeros(128));
tensor w2 = param(randn(128, 10) * sqrt(2.0 / 128));
tensor b2 = param(zeros(10));
tensor model(tensor x) {{ return relu(x @ w1 + b1) @ w2 + b2; }}
int opt = adamw(w1, b1, w2, b2);
float acc = fit(model, opt, xtr, ytr, xte, yte, 3);
printf("test accuracy %.4f\\n", acc);
""", timeout=300)
    acc = float(out.strip().splitlines()[-1].split()[-1])
    print(f"Fashion-MNIST MLP: test accuracy {acc:.4f} in {elapsed:.1f} s")
    assert acc >= 0.80, out
    assert elapsed < 60, f"took {elapsed:.1f} s"


def test_fit_takes_an_experts_rate():
    """fit's optional max_lr: the one cycle peaks at the rate given, with no lr_find (its
    100 steps would call the model 100 more times); 0 finds it; a negative rate is an
    error naming the argument."""
    out, _, _ = run_kn(TOY + """
int calls = 0;
tensor counted(tensor xb) { if (is_grad_enabled()) calls += 1; return model(xb); }
float acc = fit(counted, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 2, 32, 0.05);
printf("given acc %.4f calls %d\\n", acc, calls);
calls = 0;
acc = fit(counted, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 1, 32, 0);
printf("found calls %d\\n", calls);
fit(counted, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 1, 32, -0.1);
""", ok=False)
    assert "fit: one cycle to lr 0.05 (given), 2 epochs, batch size 32" in out, out
    lines = out.splitlines()
    given = next(ln for ln in lines if ln.startswith("given")).split()
    assert float(given[2]) >= 0.9 and int(given[4]) == 2 * (1500 // 32), out
    assert int(next(ln for ln in lines if ln.startswith("found")).split()[2]) >= 100 + 1500 // 32, out
    assert "ValueError: fit: max_lr must be a positive learning rate (or 0: find it), got -0.1" in out, out


def test_lr_find_sweeps_twice_when_noisy():
    """Minibatches of 2 from overlapping blobs make a curve too noisy for one sweep to
    place its minimum: lr_find sweeps a second time, averages the two step by step, says
    so, and says the curve is still noisy; the parameters come back either way."""
    out, arr, _ = run_kn("""
seed(1);
tensor centers = randn(4, 8) * 0.5;
tensor y = randint(0, 4, 2000);
tensor x = centers[y] + randn(2000, 8);
tensor w = param(randn(8, 4) * 0.3);
tensor b = param(zeros(4));
int calls = 0;
tensor model(tensor xb) { calls += 1; return xb @ w + b; }
int opt = adamw(w, b);
save_npy(w, "@TMP@/w0.npy");
float lr = lr_find(model, opt, x, y, 2);
save_npy(w, "@TMP@/w1.npy");
printf("calls %d lr %g\\n", calls, lr);
""")
    head = out.splitlines()[0]
    assert "(two sweeps averaged)" in head and head.endswith("noisy curve"), out
    calls, lr = out.strip().splitlines()[-1].split()[1::2]
    assert int(calls) == 200 and 1e-7 <= float(lr) <= 10, out
    np.testing.assert_array_equal(arr["w0"], arr["w1"])


def test_lr_find_names_its_choice_and_the_alternatives():
    """The header names the suggestion and why, then the minimum, the steepest descent and
    fastai's valley; the table marks each; the returned rate is the one named."""
    out, _, _ = run_kn(TOY + """
float lr = lr_find(model, opt, x, y, 32);
printf("returned %.3g\\n", lr);
""")
    head = out.splitlines()[0]
    m = re.match(r"lr_find: (\d+) steps, suggested learning rate (\S+) \(([^)]*)\); minimum (\S+), steepest (\S+), "
                 r"valley ([^;,\s]+)", head)
    assert m, head
    assert out.strip().splitlines()[-1] == "returned %s" % m.group(2), out
    for mark in ("<- minimum", "<- steepest", "<- valley"):
        assert mark in out, out


def test_adamw_sf_matches_numpy_step_by_step():
    """Schedule-free AdamW against the reference form (facebookresearch/schedule_free,
    adamw_schedulefree_reference.py) written out here with x, y and z kept apart: the
    parameters after every step (y), with a warm-up of 3 steps, weight decay at y on the
    2-D parameter only; opt_eval puts x in them and opt_train y back (mid-way, the
    steps go on from there), and a step while x is in them is an error."""
    out, arr, _ = run_kn("""
seed(5);
tensor w = param(randn(3, 4).to(f64));
tensor b = param(randn(4).to(f64));
tensor a = randn(3, 4).to(f64);
tensor c = randn(4).to(f64);
save_npy(w, "@TMP@/w0.npy"); save_npy(b, "@TMP@/b0.npy");
save_npy(a, "@TMP@/a.npy"); save_npy(c, "@TMP@/c.npy");
int opt = adamw_sf(w, b);
opt_set(opt, "warmup", 3);
tensor lrs = {0.05, 0.05, 0.1, 0.1, 0.02, 0.05, 0.05};
for (int t = 0; t < 7; t++) {
    if (t == 5) { opt_eval(opt); opt_train(opt); }
    tensor loss = sum(w * w * 0.5 + w * a) + sum(b * b * 0.5 + b * c);
    backward(loss);
    step(opt, lrs[t].item());
    opt_zero_grad(opt);
    save_npy(w, sprintf("@TMP@/w%d_y.npy", t)); save_npy(b, sprintf("@TMP@/b%d_y.npy", t));
}
opt_eval(opt);
opt_eval(opt);                        // twice: no change
save_npy(w, "@TMP@/w_x.npy"); save_npy(b, "@TMP@/b_x.npy");
opt_train(opt);
save_npy(w, "@TMP@/w_back.npy");
""")
    err, _, _ = run_kn("""
tensor w = param(randn(3));
int opt = adamw_sf(w);
backward(sum(w * w));
step(opt, 0.1);
opt_eval(opt);
backward(sum(w * w));
step(opt, 0.1);
""", ok=False)
    assert "ValueError: step: the schedule-free optimiser holds its average x (opt_eval): opt_train(opt) " \
           "before computing the loss" in err, err
    beta1, beta2, eps, wd, warmup = 0.9, 0.999, 1e-8, 0.01, 3
    lrs = np.float32([0.05, 0.05, 0.1, 0.1, 0.02, 0.05, 0.05]).astype(np.float64)  # as the f32 tensor holds them
    a, c = arr["a"], arr["c"]
    st = {k: {"z": arr[k + "0"].copy(), "x": arr[k + "0"].copy(), "y": arr[k + "0"].copy(),
              "v": np.zeros_like(arr[k + "0"])} for k in ("w", "b")}
    weight_sum, lr_max = 0.0, -1.0
    for k in range(7):
        sched = (k + 1) / warmup if k < warmup else 1.0
        lr = lrs[k] * sched * np.sqrt(1 - beta2 ** (k + 1))
        lr_max = max(lr, lr_max)
        weight = lr_max ** 2
        weight_sum += weight
        ckp1 = weight / weight_sum
        for name, shift in (("w", a), ("b", c)):
            s = st[name]
            g = s["y"] + shift                     # the gradient at y
            if name == "w":                        # decay at y, 2-D only
                s["z"] -= lr * wd * s["y"]
            s["v"] = beta2 * s["v"] + (1 - beta2) * g * g
            s["z"] -= lr * g / (np.sqrt(s["v"]) + eps)
            s["x"] = (1 - ckp1) * s["x"] + ckp1 * s["z"]
            s["y"] = beta1 * s["x"] + (1 - beta1) * s["z"]
            np.testing.assert_allclose(arr["%s%d_y" % (name, k)], s["y"], rtol=1e-10, atol=1e-12,
                                       err_msg="%s after step %d" % (name, k))
    np.testing.assert_allclose(arr["w_x"], st["w"]["x"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(arr["b_x"], st["b"]["x"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(arr["w_back"], st["w"]["y"], rtol=1e-10, atol=1e-12)


def test_fit_with_adamw_sf_evaluates_at_the_average():
    """fit with a schedule-free optimiser: a constant rate after a warm-up (said in its
    first line), evaluation at the average x with batch norm's statistics recomputed
    there, and x left in the parameters: evaluating the model afterwards gives fit's
    accuracy and loss, and opt_train moves the parameters back to y."""
    out, arr, _ = run_kn("""
seed(0);
tensor centers = randn(4, 8) * 3.0;
tensor y = randint(0, 4, 2000);
tensor x = centers[y] + randn(2000, 8) + 2.0;
tensor w = param(randn(8, 4) * 0.3);
tensor g = param(ones(4));
tensor bt = param(zeros(4));
tensor rm = zeros(4);
tensor rv = ones(4);
tensor model(tensor xb) { return batch_norm(xb @ w, g, bt, rm, rv, is_grad_enabled()); }
int opt = adamw_sf(w, g, bt);
float acc = fit(model, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 2, 32, 0.01);
set_grad_enabled(false);
tensor logits = model(x[1500:2000]);
printf("fit %.6f again %.6f loss %.6f\\n", acc, accuracy(logits, y[1500:2000]).item(),
       cross_entropy(logits, y[1500:2000]).item());
set_grad_enabled(true);
save_npy(w, "@TMP@/wx.npy");
opt_train(opt);
save_npy(w, "@TMP@/wy.npy");
""")
    assert "fit: schedule-free AdamW at lr 0.01 (given) (warm-up 4 steps), 2 epochs, batch size 32" in out, out
    words = out.strip().splitlines()[-1].split()
    assert float(words[1]) >= 0.9 and words[1] == words[3], out
    vloss = [float(ln.split()[7]) for ln in out.splitlines() if "val accuracy" in ln][-1]
    assert abs(vloss - float(words[5])) < 1e-4, out
    assert np.abs(arr["wx"] - arr["wy"]).max() > 1e-4


def test_lr_find_with_no_finite_loss_says_so():
    """Inputs with an infinity make every loss NaN: lr_find says so and suggests the
    default rate instead of failing or drawing nothing."""
    out, _, _ = run_kn("""
tensor x = randn(200, 4);
x[0:200, 0] = 1.0 / 0.0;
tensor y = randint(0, 2, 200);
tensor w = param(randn(4, 2));
tensor model(tensor xb) { return xb @ w; }
int opt = adamw(w);
printf("%g\\n", lr_find(model, opt, x, y, 16));
""")
    assert out.splitlines()[0] == ("lr_find: the first step's loss is not finite; suggested learning rate 0.001 "
                                   "(the default)"), out
    assert out.strip().splitlines()[-1] == "0.001", out


def test_fit_with_lr_find_trains_as_fit_given_that_rate():
    """lr_find puts the session's random numbers back with everything else, so fit with
    no rate is fit given the rate lr_find finds, bit for bit (same batches, same dropout):
    what makes bench/train_seeds.py's comparison with a grid of rates a paired one."""
    out, arr, _ = run_kn("""
seed(1);
tensor centers = randn(4, 8) * 3.0;
tensor y = randint(0, 4, 2000);
tensor x = centers[y] + randn(2000, 8);
tensor w = param(randn(8, 4) * 0.3);
tensor b = param(zeros(4));
tensor model(tensor xb) { return dropout(xb, 0.2, is_grad_enabled()) @ w + b; }
tensor w0 = clone(w);
int opt = adamw(w, b);
seed(5);
double r = lr_find(model, opt, x[0:1500], y[0:1500], 32);   // the rate fit will find
seed(5);
float acc1 = fit(model, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 2, 32);
save_npy(w, "@TMP@/w1.npy");
w = param(clone(w0)); b = param(zeros(4));
opt = adamw(w, b);
seed(5);
float acc2 = fit(model, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 2, 32, r);
save_npy(w, "@TMP@/w2.npy");
printf("%.6f %.6f %.17g\\n", acc1, acc2, r);
""")
    a1, a2, r = out.strip().splitlines()[-1].split()
    assert a1 == a2, out
    np.testing.assert_array_equal(arr["w1"], arr["w2"])


HUNGRY = TOY + """
int calls = 0;
// asks for 256 KiB per row of the batch: in training steps after the first 20 (TRAIN),
// in every training step (ALWAYS), or in evaluation (EVAL)
tensor hungry(tensor xb) {
    if (is_grad_enabled()) {
        calls += 1;
        if (MODE == 2 || (MODE == 1 && calls > 20)) { tensor pad = zeros(xb.shape[0], 65536); }
    } else if (MODE == 3) {
        tensor pad = zeros(xb.shape[0], 8192);
    }
    return model(xb);
}
"""


def test_fit_backs_off_the_batch_when_out_of_memory():
    """Issue 17 item 5: a MemoryError in a training step halves the batch, scales the
    peak rate by 1/sqrt(2), says so, and fit goes on from the same sample of the epoch
    with the schedule counted in the new steps. The host memory limit stands in for a
    GPU's memory: 8 MiB of padding at batch 32 passes a 6 MiB limit, 4 MiB does not."""
    out, arr, _ = run_kn(HUNGRY.replace("MODE", "1") + """
%memory limit 6M
float acc = fit(hungry, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 2, 32, 0.05);
save_npy(fit_history(opt), "@TMP@/h.npy");
printf("acc %.4f calls %d\\n", acc, calls);
""")
    assert re.search(r"fit: out of memory at batch size 32 \(out of memory on cpu for an f32 tensor of shape "
                     r"\[32, 65536\] in zeros\(\).*\); going on at batch size 16, peak lr 0\.0354 ", out), out
    assert out.count("out of memory at batch size") == 1, out
    # 20 steps of 32 = 40 of 16, then the rest of epoch 1 and all of epoch 2 at 16
    nb2 = 1500 // 16
    acc, calls = out.strip().splitlines()[-1].split()[1::2]
    assert int(calls) == 21 + (nb2 - 40) + nb2, out
    assert f"step {2 * nb2}/{2 * nb2}" in out and "batch 16 (out of memory at 32)" in out, out
    assert float(acc) >= 0.9 and arr["h"].shape == (2, 4) and np.all(np.isfinite(arr["h"])), out


def test_lr_find_and_evaluation_back_off_when_out_of_memory():
    out, _, _ = run_kn(HUNGRY.replace("MODE", "2") + """
%memory limit 6M
float acc = fit(hungry, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 1, 32);
printf("acc %.4f\\n", acc);
""")
    assert "lr_find: out of memory at batch size 32 (" in out, out
    assert "finding the rate again at batch size 16" in out and "1 epoch, batch size 16" in out, out
    assert "fit: out of memory at batch size 32" not in out and float(out.split()[-1]) >= 0.9, out
    # evaluation in batches of 1024 x 32 KiB passes a 12 MiB limit; 256 fit
    out, _, _ = run_kn(HUNGRY.replace("MODE", "3") + """
%memory limit 12M
float acc = fit(hungry, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 2, 32, 0.05);
printf("acc %.4f\\n", acc);
""")
    assert "fit: out of memory at batch size 1024 (" in out and "evaluating again at batch size 512" in out, out
    assert "fit: out of memory at batch size 512 (" in out and "evaluating again at batch size 256" in out, out
    # the second epoch's evaluation starts at 256: one back-off per size in all
    assert out.count("out of memory at batch size") == 2 and float(out.split()[-1]) >= 0.9, out


def test_fit_out_of_memory_at_batch_one_is_a_memory_error():
    out, _, _ = run_kn(HUNGRY.replace("MODE", "2") + """
%memory limit 200K
fit(hungry, opt, x[0:1500], y[0:1500], x[1500:2000], y[1500:2000], 1, 4, 0.05);
""", ok=False)
    assert out.count("fit: out of memory at batch size") == 2, out  # 4 -> 2 -> 1
    assert "MemoryError" in out and "shape [1, 65536] in zeros()" in out, out
    assert out.count("in hungry(), called by fit()") == 1, out  # the chains of the errors recovered from are gone
