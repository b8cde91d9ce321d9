"""Custom CUDA kernels through jupyter_client (issue 4), on the simulator where there
is no GPU: the example of language.md across cells, a launch-check error, a compile
error's error reply (ename CompileError, the traceback naming the defining cell's
line), inspect and completion of kernel names, %whos, and the disk cache: a second
kernel process running the same cells is served from it instead of compiling, and a
kernel that uses an earlier cell's #define is compiled again when that #define changes."""
import os
import re
import shutil
import tempfile
import unittest

from kiln_testing import TIMEOUT, run, start, stop

DEVICE_CELL = "__device__ float sq(float v) { return v * v; }"
KERNEL_CELL = """__global__ void sqdiff(float *out, const float *a, const float *b, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = sq(a[i] - b[i]);
}"""
LAUNCH_CELL = """int n = 1 << 16;
tensor a = randn(n), b = randn(n), out = empty(n);
sqdiff<<<cdiv(n, 256), 256>>>(out, a, b, n);
mean(out)"""


def whos_text(kc):
    r = run(kc, "%whos")
    assert r.status == "ok", r.outputs
    return r.of_type("display_data")[0]["content"]["data"]["text/plain"]


class TestKernels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cache = tempfile.mkdtemp(prefix="kiln-kcache-")
        cls.env = dict(os.environ, XDG_CACHE_HOME=cls.cache)
        cls.km, cls.kc = start(env=cls.env)

    @classmethod
    def tearDownClass(cls):
        stop(cls.km, cls.kc)
        shutil.rmtree(cls.cache, ignore_errors=True)

    def test_1_language_md_example_across_cells(self):
        for cell in (DEVICE_CELL, KERNEL_CELL):
            r = run(self.kc, cell)
            self.assertEqual(r.status, "ok", r.outputs)
        r = run(self.kc, LAUNCH_CELL, timeout=120)
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertGreater(float(r.result), 1.5)  # E[(a - b)^2] = 2
        r = run(self.kc, "max(abs(out - (a - b) * (a - b))).item()")
        self.assertEqual(float(r.result), 0.0)

    def test_2_launch_check_error(self):
        r = run(self.kc, "sqdiff<<<1, 256>>>(out, a, b, 3000000000);")
        self.assertEqual(r.status, "error")
        self.assertEqual(r.content["ename"], "ValueError")
        self.assertIn("argument 4 ('n', int)", r.content["evalue"])
        self.assertIn("out of the range of int", r.content["evalue"])

    def test_3_compile_error_reply(self):
        # the definition is compiled at once: the defining cell fails, at the mistake's
        # own line and column
        r = run(self.kc, "__global__ void broken(float *y, int n) {\n    int i = threadIdx.x;\n"
                         "    if (i < n) y[i] = undeclared_value;\n}", timeout=120)
        self.assertEqual(r.status, "error", r.outputs)
        self.assertEqual(r.content["ename"], "CompileError")
        defining = r.reply["content"]["execution_count"]
        tb = "\n".join(r.content["traceback"])
        self.assertIn("undeclared_value", tb)
        self.assertRegex(tb, re.escape(f"cell[{defining}]") + r":3:\d+: CompileError")
        # a launch of it compiles it again and says the same, at the launch
        r = run(self.kc, "tensor ys = zeros(4);\nbroken<<<1, 32>>>(ys, 4);", timeout=120)
        self.assertEqual(r.status, "error")
        self.assertEqual(r.content["ename"], "CompileError")
        self.assertEqual(r.errors[0]["content"]["ename"], "CompileError")
        tb = "\n".join(r.content["traceback"])
        self.assertIn("undeclared_value", tb)
        # the compiler's message names the defining cell and the line of the mistake
        self.assertRegex(tb, re.escape(f"cell[{defining}]") + r"[:(]3\b")
        # the error is located at the launch: line 2 of the launching cell
        self.assertRegex(tb, r"cell\[\d+\]:2:1: CompileError")
        r = run(self.kc, "1 + 1")  # the session goes on
        self.assertEqual(r.result, "2")

    def test_4_inspect_complete_whos(self):
        reply = self.kc.inspect("sqdiff", 3, reply=True, timeout=TIMEOUT)["content"]
        self.assertTrue(reply["found"])
        text = reply["data"]["text/plain"]
        self.assertIn("__global__ void sqdiff(float *out, const float *a, const float *b, int n)", text)
        self.assertIn("out[i] = sq(a[i] - b[i]);", text)  # its source
        self.assertIn("max threads", text)
        reply = self.kc.complete("sqd", 3, reply=True, timeout=TIMEOUT)["content"]
        self.assertIn("sqdiff", reply["matches"])
        text = whos_text(self.kc)
        self.assertIn("__device__ float sq(float v)", text)
        self.assertIn("sqdiff", text)

    def test_5_disk_cache_serves_a_second_process(self):
        """A fresh kernel process with the same cache folder and the same cells (so the
        same cell names in the #line directives) compiles nothing."""
        km, kc = start(env=self.env)
        try:
            for cell in (DEVICE_CELL, KERNEL_CELL, LAUNCH_CELL):
                r = run(kc, cell, timeout=120)
                self.assertEqual(r.status, "ok", r.outputs)
            text = whos_text(kc)
            line = [l for l in text.splitlines() if "max threads" in l]
            self.assertTrue(line, text)
            self.assertIn("from the disk cache", line[0])
        finally:
            stop(km, kc)

    def test_6_earlier_define_is_part_of_the_cache_key(self):
        """A kernel sees the #define of an earlier cell: the same #define in a fresh
        process is served from the disk cache; a changed one compiles a new entry."""
        define = "#define SCALE_BY %s"
        kernel = ("__global__ void scale_by(float *y, int n) {\n"
                  "    int i = threadIdx.x;\n    if (i < n) y[i] = SCALE_BY * i;\n}")
        launch = "tensor sy = zeros(4);\nscale_by<<<1, 32>>>(sy, 4);\nsy[1].item()"

        def session(value):
            km, kc = start(env=self.env)
            try:
                for cell in (define % value, kernel, launch):
                    r = run(kc, cell, timeout=120)
                    self.assertEqual(r.status, "ok", r.outputs)
                self.assertEqual(float(r.result), float(value))
                text = whos_text(kc).splitlines()
                at = [i for i, l in enumerate(text) if "scale_by" in l]
                line = [l for l in text[at[0]:] if "max threads" in l] if at else []
                self.assertTrue(line, text)
                return line[0]
            finally:
                stop(km, kc)

        self.assertIn("compiled now", session(3))
        self.assertIn("from the disk cache", session(3))
        self.assertIn("compiled now", session(5))
        self.assertIn("from the disk cache", session(5))


if __name__ == "__main__":
    unittest.main()
