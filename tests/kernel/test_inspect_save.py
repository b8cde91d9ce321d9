"""Rich output, inspection, path completion and %save/%load through jupyter_client:
a tensor result carries an HTML table, %whos a display with an HTML table, inspect on a
tensor its statistics and histogram, completion inside load_npy("...") file paths, and
a session saved in one kernel and loaded into a new one (NumPy reads the same file),
including a training run: AdamW and SGD-momentum state, the RNG and fit's one cycle
continue after save, restart and load exactly as they would have without."""
import os
import tempfile
import unittest
import xml.etree.ElementTree as ET

import numpy as np

from kiln_testing import TIMEOUT, run, start, stop


class TestRichInspect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start()

    @classmethod
    def tearDownClass(cls):
        stop(cls.km, cls.kc)

    def test_tensor_result_has_html_table(self):
        r = run(self.kc, "tensor small = reshape(arange(6), 2, 3);\nsmall")
        self.assertEqual(r.status, "ok", r.outputs)
        data = r.of_type("execute_result")[0]["content"]["data"]
        self.assertIn("text/plain", data)
        html = data["text/html"]
        self.assertIn("<table", html)
        self.assertIn("shape [2, 3]", html)
        ET.fromstring(html)  # well-formed
        self.assertEqual(html.count("<tr>"), 3)  # header and two rows

    def test_scalar_result_is_plain_only(self):
        r = run(self.kc, "1 + 2")
        data = r.of_type("execute_result")[0]["content"]["data"]
        self.assertEqual(set(data), {"text/plain"})

    def test_whos_display_has_html(self):
        run(self.kc, "tensor w = zeros(4, 5);\nint count = 3;\nfloat twice(float a) { return 2 * a; }")
        r = run(self.kc, "%whos")
        self.assertEqual(r.status, "ok", r.outputs)
        shown = r.of_type("display_data")
        self.assertEqual(len(shown), 1)
        data = shown[0]["content"]["data"]
        self.assertIn("Variable", data["text/plain"])
        html = data["text/html"]
        self.assertIn("<table", html)
        self.assertIn("<td>w</td>", html)
        self.assertIn("float twice(float a)", html)
        self.assertIn("<td>80</td>", html)  # bytes of 4x5 f32
        ET.fromstring(html)

    def test_gpu_says_no_device(self):
        r = run(self.kc, "%gpu")
        self.assertEqual(r.status, "ok")
        text = r.of_type("display_data")[0]["content"]["data"]["text/plain"]
        self.assertRegex(text, r"No CUDA device|GPU \d+: ")  # the device, or plainly none

    def test_inspect_tensor_stats(self):
        run(self.kc, "tensor stat_t = arange(100);")
        reply = self.kc.inspect("stat_t", 6, reply=True, timeout=TIMEOUT)["content"]
        self.assertTrue(reply["found"])
        text = reply["data"]["text/plain"]
        for word in ("min 0", "max 99", "mean 49.5", "std", "NaN 0", "Inf 0", "bytes 800", "histogram", "█"):
            self.assertIn(word, text)

    def test_inspect_function_signature(self):
        run(self.kc, "float thrice(float a) { return 3 * a; }")
        reply = self.kc.inspect("thrice", 6, reply=True, timeout=TIMEOUT)["content"]
        self.assertIn("float thrice(float a)", reply["data"]["text/plain"])

    def test_complete_path_in_load_npy(self):
        code = 'tensor q = load_npy("/usr/sh'
        reply = self.kc.complete(code, len(code), reply=True, timeout=TIMEOUT)["content"]
        self.assertIn("/usr/share/", reply["matches"])
        self.assertEqual(reply["cursor_start"], code.index('"') + 1)
        self.assertEqual(reply["cursor_end"], len(code))

    def test_complete_members_still_work(self):
        run(self.kc, "tensor mem_t = zeros(2);")
        code = "mem_t.sha"
        reply = self.kc.complete(code, len(code), reply=True, timeout=TIMEOUT)["content"]
        self.assertIn("shape", reply["matches"])


class TestSaveLoad(unittest.TestCase):
    def test_save_new_kernel_load(self):
        path = os.path.join(tempfile.mkdtemp(), "session.npz")
        km, kc = start()
        try:
            setup = ("seed(11);\n"
                     "tensor a = randn(3, 4);\n"
                     "tensor idx = arange(5);\n"
                     "int steps = 42;\n"
                     "float lr = 0.125;\n"
                     "string label = \"run \\\"one\\\"\";\n"
                     "float sq(float v) { return v * v; }\n"
                     "tensor noise = rand(2);")
            self.assertEqual(run(kc, setup).status, "ok")
            r = run(kc, f"%save {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertIn("Saved", r.stream())
            after_save = run(kc, "rand(3)").result
            a_text = run(kc, "a").result
        finally:
            stop(km, kc)

        z = np.load(path)
        self.assertEqual(z["a"].shape, (3, 4))
        self.assertEqual(z["a"].dtype, np.float32)
        self.assertEqual(list(z["idx"]), [0, 1, 2, 3, 4])

        km, kc = start()
        try:
            r = run(kc, f"%load {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertEqual(run(kc, "a").result, a_text)
            self.assertEqual(run(kc, "steps").result, "42")
            self.assertEqual(run(kc, "lr").result, "0.125")
            self.assertEqual(run(kc, "label").result, '"run \\"one\\""')
            self.assertEqual(run(kc, "sq(3.0)").result, "9.0")
            self.assertEqual(run(kc, "rand(3)").result, after_save)  # the RNG continues
        finally:
            stop(km, kc)


TRAIN_SETUP = """
seed(7);
tensor x = randn(256, 12);
tensor y = randint(0, 4, 256);
tensor w1 = param(randn(12, 16) * 0.3);
tensor b1 = param(zeros(16));
tensor w2 = param(randn(16, 4) * 0.3);
tensor b2 = param(zeros(4));
tensor model(tensor xb) { return dropout(relu(xb @ w1 + b1), 0.2, true) @ w2 + b2; }
int opt = adamw(w1, b1, w2, b2);
tensor v = param(randn(12, 4) * 0.3);
tensor vb = param(zeros(4));
tensor lin(tensor xb) { return xb @ v + vb; }
int sg = sgd(v, vb);
opt_set(sg, "momentum", 0.9); opt_set(sg, "nesterov", 1); opt_set(sg, "wd", 0.05);
int t = 0;
int total = 12;
float trainstep() {
    tensor l = cross_entropy(model(x), y); backward(l);
    step(opt, onecycle_lr(t, total, 0.05)); opt_zero_grad(opt);
    tensor l2 = cross_entropy(lin(x), y); backward(l2);
    step(sg, 0.1); opt_zero_grad(sg);
    t = t + 1;
    return l.item() + 1000.0 * l2.item();
}
for (int i = 0; i < 5; i++) trainstep();
"""

# one more step; the losses as exact decimal text, the parameters as .npy files
TRAIN_STEP = """
float loss = trainstep();
printf("%.17g %d\\n", loss, t);
save_npy(w1, "{d}/w1.npy"); save_npy(b2, "{d}/b2.npy"); save_npy(v, "{d}/v.npy"); save_npy(vb, "{d}/vb.npy");
"""

FIT_SETUP = """
seed(3);
tensor centers = randn(4, 8) * 3.0;
tensor fy = randint(0, 4, 1200);
tensor fx = centers[fy] + randn(1200, 8);
tensor fw = param(randn(8, 4) * 0.3);
tensor fb = param(zeros(4));
tensor fmodel(tensor xb) { return xb @ fw + fb; }
int fopt = adamw(fw, fb);
fit(fmodel, fopt, fx[0:1000], fy[0:1000], fx[1000:1200], fy[1000:1200], 1, 32);
"""

FIT_AGAIN = """
save_npy(fit_history(fopt), "{d}/hist.npy");
float facc = fit(fmodel, fopt, fx[0:1000], fy[0:1000], fx[1000:1200], fy[1000:1200], 1, 32);
printf("%.17g\\n", facc);
save_npy(fw, "{d}/fw.npy");
"""


class TestSaveLoadTraining(unittest.TestCase):
    """Save, restart the kernel, load: the next training step gives the same loss and
    parameters, bit for bit, as the original kernel's next step."""

    def continue_both(self, setup, again, names):
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "train.npz")
        da, db = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        os.makedirs(da)
        os.makedirs(db)
        km, kc = start()
        try:
            r = run(kc, setup, timeout=120)
            self.assertEqual(r.status, "ok", r.outputs)
            r = run(kc, f"%save {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertIn("optimiser", r.stream())
            ra = run(kc, again.replace("{d}", da), timeout=120)
            self.assertEqual(ra.status, "ok", ra.outputs)
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=TIMEOUT)
            r = run(kc, "int probe = 1;")  # a fresh process: nothing of the run is left
            self.assertEqual(run(kc, "%whos").status, "ok")
            r = run(kc, "w1")
            self.assertEqual(r.status, "error")
            r = run(kc, f"%load {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertIn("optimiser", r.stream())
            rb = run(kc, again.replace("{d}", db), timeout=120)
            self.assertEqual(rb.status, "ok", rb.outputs)
        finally:
            stop(km, kc)
        last = lambda r: r.stream().strip().splitlines()[-1]  # noqa: E731
        self.assertEqual(last(ra), last(rb))
        for n in names:
            a, b = np.load(os.path.join(da, n + ".npy")), np.load(os.path.join(db, n + ".npy"))
            np.testing.assert_array_equal(a, b, err_msg=n)
        return path, last(ra)

    def test_adamw_sgd_step_after_load_is_identical(self):
        path, line = self.continue_both(TRAIN_SETUP, TRAIN_STEP, ["w1", "b2", "v", "vb"])
        self.assertTrue(line.endswith(" 6"), line)  # the schedule's step counter came back
        z = np.load(path)
        self.assertEqual(z["optimizer/1/m/0"].shape, (12, 16))   # AdamW's moments of w1
        self.assertEqual(z["optimizer/1/v/3"].shape, (4,))
        self.assertEqual(z["optimizer/2/m/0"].shape, (12, 4))    # SGD's momentum of v
        self.assertTrue(np.all(z["optimizer/1/v/0"] >= 0))

    def test_fit_continues_identically(self):
        path, _ = self.continue_both(FIT_SETUP, FIT_AGAIN, ["fw", "hist"])  # fit_history came back too
        self.assertEqual(len(np.load(os.path.join(os.path.dirname(path), "a", "hist.npy"))), 1)

    def test_schedule_free_fit_continues_identically(self):
        """adamw_sf's z, second moment, averaging weights and eval mode (fit leaves the
        average x in the parameters) come back: the next fit is the same."""
        setup = FIT_SETUP.replace("int fopt = adamw(fw, fb);", "int fopt = adamw_sf(fw, fb);")
        path, _ = self.continue_both(setup, FIT_AGAIN, ["fw", "hist"])
        z = np.load(path)
        self.assertEqual(z["optimizer/1/m/0"].shape, (8, 4))  # z of fw


class TestGradModeAfterError(unittest.TestCase):
    """A cell that fails inside set_grad_enabled(false) ... (true) leaves grad mode as it
    found it; a cell that succeeds keeps what it set."""

    def test_failed_cell_restores_grad_mode(self):
        km, kc = start()
        try:
            grad = ("tensor gp = param(ones(2));\nbackward(sum(gp * 2.0));\n"
                    "tensor gg = gp.grad;\ngg")
            r = run(kc, "set_grad_enabled(false);\ntensor bad = zeros(2) + zeros(3);\nset_grad_enabled(true);")
            self.assertEqual(r.status, "error")
            r = run(kc, grad)
            self.assertEqual(r.status, "ok", r.outputs)  # recording is on again
            self.assertEqual(r.result, "[2., 2.]")
            self.assertEqual(run(kc, "set_grad_enabled(false);").status, "ok")
            r = run(kc, grad)
            self.assertEqual(r.status, "error")  # off as set: backward has nothing to go through
            self.assertEqual(run(kc, "set_grad_enabled(true);").status, "ok")
        finally:
            stop(km, kc)


class TestSaveLoadKernels(unittest.TestCase):
    """__device__ and __global__ definitions come back: a function that launches a
    kernel, saved in one kernel process and loaded into a new one, gives the same result."""

    def test_kernels_come_back(self):
        path = os.path.join(tempfile.mkdtemp(), "kernels.npz")
        cells = ["__device__ float sq(float v) { return v * v; }",
                 "__global__ void sqdiff(float *out, const float *a, const float *b, int n) {\n"
                 "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
                 "    if (i < n) out[i] = sq(a[i] - b[i]);\n"
                 "}",
                 "tensor run_sqdiff(tensor a, tensor b) {\n"
                 "    tensor out = empty(a.numel);\n"
                 "    sqdiff<<<cdiv(a.numel, 128), 128>>>(out, a, b, a.numel);\n"
                 "    return out;\n"
                 "}\n"
                 "tensor ka = arange(300).to(f32);\n"
                 "tensor kb = ones(300);"]
        km, kc = start()
        try:
            for c in cells:
                r = run(kc, c)
                self.assertEqual(r.status, "ok", r.outputs)
            before = run(kc, "sum(run_sqdiff(ka, kb))").result
            r = run(kc, f"%save {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertIn("2 kernels", r.stream())
        finally:
            stop(km, kc)
        km, kc = start()
        try:
            r = run(kc, f"%load {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertIn("2 kernels", r.stream())
            self.assertEqual(run(kc, "sum(run_sqdiff(ka, kb))").result, before)
            r = run(kc, "tensor o2 = empty(3);\nsqdiff<<<1, 32>>>(o2, ka[0:3], kb[0:3], 3);\no2")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertEqual(r.result, "[1., 0., 1.]")  # (0-1)^2, (1-1)^2, (2-1)^2
            reply = kc.inspect("sqdiff", 3, reply=True, timeout=TIMEOUT)["content"]
            self.assertIn("sq(a[i] - b[i])", reply["data"]["text/plain"])
        finally:
            stop(km, kc)

    def test_kernel_keeps_the_defines_it_saw(self):
        """A kernel that uses an earlier cell's #define compiles after %load in a fresh
        process: the file keeps the #defines it saw (and %load checks them)."""
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "defines.npz")
        km, kc = start()
        try:
            for c in ("#define FILL_WITH 7", "__global__ void fill_with(float *y, int n) {\n"
                      "    if (threadIdx.x < n) y[threadIdx.x] = FILL_WITH;\n}"):
                r = run(kc, c)
                self.assertEqual(r.status, "ok", r.outputs)
            r = run(kc, f"%save {path}")
            self.assertEqual(r.status, "ok", r.outputs)
        finally:
            stop(km, kc)
        km, kc = start()
        try:
            r = run(kc, f"%load {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            r = run(kc, "tensor fw = zeros(2);\nfill_with<<<1, 32>>>(fw, 2);\nfw")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertEqual(r.result, "[7., 7.]")
        finally:
            stop(km, kc)
        # a defines field that holds more than #undef, #line and #define lines is refused
        import json
        import zipfile
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist()}
        man = json.loads(members["__kiln__.json"])
        self.assertIn("#define FILL_WITH 7", man["kernels"][0]["defines"])
        man["kernels"][0]["defines"] += '#include "/etc/passwd"\n'
        members["__kiln__.json"] = json.dumps(man).encode()
        bad = os.path.join(tmp, "bad.npz")
        with zipfile.ZipFile(bad, "w") as z:
            for n, data in members.items():
                z.writestr(n, data)
        km, kc = start()
        try:
            r = run(kc, f"%load {bad}")
            self.assertEqual(r.status, "error", r.outputs)
            self.assertIn("refused line 4 of its defines", r.content["evalue"])
        finally:
            stop(km, kc)


if __name__ == "__main__":
    unittest.main()
