"""Rich output, inspection, path completion and %save/%load through jupyter_client:
a tensor result carries an HTML table, %whos a display with an HTML table, inspect on a
tensor its statistics and histogram, completion inside load_npy("...") file paths, and
a session saved in one kernel and loaded into a new one (NumPy reads the same file)."""
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
        self.assertIn("No CUDA device", r.stream())

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


if __name__ == "__main__":
    unittest.main()
