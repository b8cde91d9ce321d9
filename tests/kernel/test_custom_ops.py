"""set_backward through jupyter_client (issue 14): a custom kernel with its own backward
trained by fit (its backward demonstrably called), shown by %whos and inspect, and the
pair surviving %save, a kernel restart (a fresh process) and %load; on the CPU backend
and with %device sim."""
import os
import tempfile
import unittest

from kiln_testing import TIMEOUT, run, start, stop

GELU = r"""
__global__ void gelu_fwd(float *y, const float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { float v = x[i]; y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678f)); }
}
__global__ void gelu_bwd(float *dx, const float *x, const float *dy, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i], cdf = 0.5f * (1.0f + erff(v * 0.70710678f)), pdf = 0.39894228f * expf(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}
tensor mygelu(tensor x) { tensor y = empty_like(x); gelu_fwd<<<cdiv(x.numel, 256), 256>>>(y, x, x.numel); return y; }
int calls = 0;
void mygelu_backward(tensor x, tensor y, tensor dy, tensor dx) {
    calls += 1;
    gelu_bwd<<<cdiv(x.numel, 256), 256>>>(dx, x, dy, x.numel);
}
set_backward(mygelu, mygelu_backward);
"""

BLOBS = """
seed(1);
tensor centers = randn(4, 8) * 3.0;
tensor y = randint(0, 4, 3000);
tensor x = centers[y] + randn(3000, 8);
tensor w = param(randn(8, 16) * 0.3), b = param(zeros(16)), w2 = param(randn(16, 4) * 0.3);
tensor model(tensor xb) { return mygelu(xb @ w + b) @ w2; }
int opt = adamw(w, b, w2);
"""

FIT = "float acc = fit(model, opt, x[0:2500], y[0:2500], x[2500:3000], y[2500:3000], 2, 32);\n" \
      "printf(\"calls %d acc %.3f\\n\", calls, acc);"


class TestCustomOps(unittest.TestCase):
    def fit_and_check(self, kc):
        r = run(kc, GELU + BLOBS, timeout=120)
        self.assertEqual(r.status, "ok", r.outputs)
        r = run(kc, 'gradcheck(mygelu, randn(3, 5))', timeout=120)
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertIn("gradcheck mygelu in f32", r.stream())
        self.assertEqual(r.result, "true")
        r = run(kc, FIT, timeout=300)
        self.assertEqual(r.status, "ok", r.outputs)
        last = r.stream().strip().splitlines()[-1].split()
        calls, acc = int(last[1]), float(last[3])
        self.assertGreater(calls, 156)  # lr_find's steps and the 2 epochs' 156 steps
        self.assertGreater(acc, 0.9)

    def test_fit_trains_a_custom_op_cpu_and_sim(self):
        km, kc = start()
        try:
            self.fit_and_check(kc)
            r = run(kc, "%device sim\nint reset_calls = 0;")
            self.assertEqual(r.status, "ok", r.outputs)
            self.fit_and_check(kc)
        finally:
            stop(km, kc)

    def test_whos_inspect_and_save_load_into_a_fresh_process(self):
        path = os.path.join(tempfile.mkdtemp(), "custom.npz")
        km, kc = start()
        try:
            r = run(kc, GELU, timeout=120)
            self.assertEqual(r.status, "ok", r.outputs)
            r = run(kc, "%whos")
            text = r.of_type("display_data")[0]["content"]["data"]["text/plain"]
            self.assertIn("[backward: mygelu_backward]", text)
            self.assertIn("[backward of mygelu]", text)
            reply = kc.inspect("mygelu", 6, reply=True, timeout=TIMEOUT)["content"]
            self.assertIn("backward: mygelu_backward", reply["data"]["text/plain"])
            self.assertEqual(run(kc, f"%save {path}").status, "ok")
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=TIMEOUT)
            self.assertEqual(run(kc, "mygelu").status, "error")  # a fresh process
            r = run(kc, f"%load {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            r = run(kc, "tensor p = param(randn(4)), q = param(clone(detach(p)));\n"
                        "backward(sum(mygelu(p)));\nbackward(sum(gelu(q)));\n"
                        "printf(\"%d %d\\n\", calls, max(abs(p.grad - q.grad)).item() < 1e-5);", timeout=120)
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertEqual(r.stream().strip(), "1 1")  # the loaded backward ran once, and is right
            r = run(kc, "%whos")
            self.assertIn("[backward: mygelu_backward]", r.of_type("display_data")[0]["content"]["data"]["text/plain"])
        finally:
            stop(km, kc)


if __name__ == "__main__":
    unittest.main()
