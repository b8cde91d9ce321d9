"""Shadowing a built-in, %del, %source and kernel definitions checked where they are
made, through jupyter_client (issue 14): inspect on a function that takes a built-in's
name shows the user's definition and says what it shadows; completion lists the name
once; fit trains a model through the user's function (it counts its calls) and through
the built-in again after %del; %save/%load keeps a shadowing function; a __global__
with a compile error fails its own cell, at the mistake's line."""
import os
import re
import tempfile
import unittest

from kiln_testing import TIMEOUT, SharedKernel, run, start, stop

DATA = """
seed(5);
tensor centers = randn(3, 6) * 3.0;
tensor y = randint(0, 3, 512);
tensor x = centers[y] + randn(512, 6);
tensor w1 = param(randn(6, 16) * 0.3);
tensor w2 = param(randn(16, 3) * 0.3);
tensor model(tensor xb) { return gelu(xb @ w1) @ w2; }   // checked against the built-in
int opt = adamw(w1, w2);
"""

FAST_GELU = """
int gelu_calls = 0;
tensor gelu(tensor v) { gelu_calls += 1; return v * sigmoid(1.702 * v); }
"""


class TestShadowSource(SharedKernel):
    def test_1_fit_uses_the_shadow_then_the_builtin(self):
        self.assertEqual(run(self.kc, DATA).status, "ok")
        r = run(self.kc, FAST_GELU)
        self.assertEqual(r.status, "ok", r.outputs)
        r = run(self.kc, "fit(model, opt, x, y, x, y, 1, 64, 0.01)", timeout=120)
        self.assertEqual(r.status, "ok", r.errors)
        calls = int(run(self.kc, "gelu_calls").result)
        # 8 training steps of 64, and the validation pass: every one went through it
        self.assertGreaterEqual(calls, 8)
        r = run(self.kc, "%del gelu")
        self.assertIn("the built-in gelu(x) is back", r.stream())
        r = run(self.kc, "fit(model, opt, x, y, x, y, 1, 64, 0.01)", timeout=120)
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(int(run(self.kc, "gelu_calls").result), calls)  # not called again
        # the built-in's own values, through the model checked before any shadow
        r = run(self.kc, "max(abs(gelu(x @ w1) @ w2 - model(x))).item()")
        self.assertEqual(float(r.result), 0.0)

    def test_2_inspect_says_it_shadows(self):
        run(self.kc, FAST_GELU)
        reply = self.kc.inspect("gelu", 4, reply=True, timeout=TIMEOUT)["content"]
        self.assertTrue(reply["found"])
        text = reply["data"]["text/plain"]
        self.assertIn("tensor gelu(tensor v)", text)
        self.assertIn("shadows the built-in gelu(x)", text)
        self.assertIn("%del gelu", text)
        self.assertIn("gelu_calls += 1", text)  # the user's definition itself
        reply = self.kc.complete("gel", 3, reply=True, timeout=TIMEOUT)["content"]
        self.assertEqual(reply["matches"].count("gelu"), 1)
        run(self.kc, "%del gelu")
        reply = self.kc.inspect("gelu", 4, reply=True, timeout=TIMEOUT)["content"]
        self.assertIn("built-in gelu(x)", reply["data"]["text/plain"])
        self.assertNotIn("shadows", reply["data"]["text/plain"])

    def test_3_source_magic_and_completion(self):
        r = run(self.kc, "%source tanh")
        self.assertEqual(r.status, "ok", r.errors)
        text = r.stream()
        self.assertIn("OP_UNARY(TANH", text)                       # its ops.def row
        self.assertIn("om_tanh(x)", text)                          # the CPU expression
        self.assertIn("struct kk_un<OP_TANH, T>", text)            # the CUDA functor
        self.assertIn("__global__ void kk_un_contig", text)        # and its kernel
        self.assertIn("dx = mul(g, rsubs(1, mul(y, y)))", text)    # the gradient
        reply = self.kc.complete("%sou", 4, reply=True, timeout=TIMEOUT)["content"]
        self.assertIn("source", reply["matches"])

    def test_4_kernel_definition_fails_in_its_cell(self):
        r = run(self.kc, "int mark = 1;\n__global__ void k2(float *y) {\n    y[0] = 1\n}\nmark = 2;",
                timeout=120)
        self.assertEqual(r.status, "error")
        self.assertEqual(r.content["ename"], "CompileError")
        n = r.reply["content"]["execution_count"]
        tb = "\n".join(r.content["traceback"])
        self.assertRegex(tb, re.escape(f"cell[{n}]") + r":[34]:\d+: CompileError")
        self.assertEqual(run(self.kc, "mark").result, "1")  # the rest of the cell did not run


class TestShadowSaveLoad(unittest.TestCase):
    def test_save_load_keeps_the_shadow(self):
        path = os.path.join(tempfile.mkdtemp(), "shadow.npz")
        km, kc = start()
        try:
            r = run(kc, "tensor relu(tensor v) { return v * 2; }\n" f"%save {path}")
            self.assertEqual(r.status, "ok", r.outputs)
            self.assertNotIn("Not saved", r.stream())
        finally:
            stop(km, kc)
        km, kc = start()
        try:
            self.assertEqual(run(kc, f"%load {path}").status, "ok")
            self.assertEqual(run(kc, "relu({-1.0, 3.0})").result, "[-2.,  6.]")
        finally:
            stop(km, kc)


if __name__ == "__main__":
    unittest.main()
