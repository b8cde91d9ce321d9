"""Devices through jupyter_client: %device (the session stays on the CPU when there is
no GPU, and says why), %gpu as text/plain and an HTML table (the allocator's counters of
the simulator backend, the largest live tensors by variable name), and out of memory on
a device: the simulator backend given 64 MiB (KILN_SIM_CAPACITY) fails an allocation
past it with a MemoryError naming the size asked for, what is free and the largest live
variables, and the next cell runs. The same through `kiln run`. On a machine with a GPU
the CUDA parts are checked by make test-gpu; these tests hold on either."""
import os
import re
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from kiln_testing import run, start, stop

KILN = os.environ.get("KILN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "kiln"))


def sim_env(**extra):
    env = dict(os.environ)
    env.update({"KILN_DEVICE": "sim", "KILN_SIM_CAPACITY": "64M"}, **extra)
    return env


class TestDeviceMagics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start()

    @classmethod
    def tearDownClass(cls):
        stop(cls.km, cls.kc)

    def test_device_alone_lists_what_is_available(self):
        r = run(self.kc, "%device")
        self.assertEqual(r.status, "ok", r.outputs)
        out = r.stream()
        self.assertRegex(out, r"^Device: (cpu|sim|cuda) \(new tensors are made there\)\n")
        self.assertIn("sim (the CUDA backend's kernels on the CUDA simulator", out)
        self.assertRegex(out, r"; (cuda|not cuda: .+)\n$")

    def test_device_switch_and_back(self):
        r = run(self.kc, "%device sim\ntensor on_sim = ones(3);\nprint(on_sim.device);\n%device cpu\n"
                         "print(ones(1).device, (on_sim * 2).device);")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertRegex(r.stream(), r"^Device: sim \(new tensors are made there; .*\nsim\nDevice: cpu .*\ncpu sim\n$")

    def test_device_cuda_without_gpu_stays(self):
        probe = run(self.kc, "%device")
        if "not cuda" not in probe.stream():
            self.skipTest("this machine has a CUDA device")
        run(self.kc, "%device cpu")
        r = run(self.kc, "%device cuda")
        self.assertEqual(r.status, "error")
        self.assertEqual(r.content["ename"], "RuntimeError")
        self.assertRegex(r.content["evalue"], r"%device cuda: (no CUDA device on this machine|this build has no "
                                              r"CUDA backend).*the session stays on cpu .*%device sim")
        self.assertIn("cpu", run(self.kc, "print(ones(1).device);").stream())

    def test_to_cuda_without_gpu(self):
        probe = run(self.kc, "%device")
        if "not cuda" not in probe.stream():
            self.skipTest("this machine has a CUDA device")
        r = run(self.kc, "ones(2).to(cuda)")
        self.assertEqual(r.status, "error")
        self.assertIn("to(x, cuda):", r.content["evalue"])
        self.assertIn("x.to(sim)", r.content["evalue"])

    def test_mixed_devices_error(self):
        r = run(self.kc, "%device cpu\ntensor mc = ones(4);\ntensor ms = ones(4).to(sim);\nmc - ms")
        self.assertEqual(r.status, "error")
        self.assertEqual(r.content["ename"], "RuntimeError")
        self.assertEqual(r.content["evalue"],
                         "sub: tensors on different devices (operand 1 on cpu, operand 2 on sim); move them to "
                         "one device first, e.g. x.to(sim)")
        r = run(self.kc, "(mc - ms.to(cpu)).sum()")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(r.result, "0.0")

    def test_gpu_text_and_html(self):
        r = run(self.kc, "%device sim\ntensor gbig = zeros(256, 256);\ntensor gsmall = ones(3);\n"
                         "tensor gview = gbig[1:3];\n%gpu")
        self.assertEqual(r.status, "ok", r.outputs)
        disp = r.of_type("display_data")
        self.assertEqual(len(disp), 1)
        data = disp[0]["content"]["data"]
        text, html = data["text/plain"], data["text/html"]
        self.assertIn("Session device: sim", text)
        self.assertRegex(text, r"(No CUDA device: no GPU memory or CUDA allocator to show\.|GPU \d+: .*compute "
                               r"capability \d+\.\d+)")
        self.assertIn("sim allocator: in use ", text)
        self.assertRegex(text, r"allocations \d+ \(cache hits \d+\), raw allocations \d+, raw frees \d+, "
                               r"out of memory \d+")
        # the largest first, a view counted once (under the first variable holding it)
        rows = re.findall(r"^  (\S+)\s+(cpu|sim|cuda)\s+(\S+)\s+(\[[^\]]*\])\s+(.+)$", text, re.M)
        names = [row[0] for row in rows]
        self.assertEqual(rows[0][:4], ("gbig", "sim", "f32", "[256, 256]"))
        self.assertEqual(rows[0][4], "256.00 KiB")
        self.assertNotIn("gview", names)
        self.assertIn("gsmall", names)
        ET.fromstring("<div>" + html + "</div>")  # well-formed
        self.assertIn("<td>gbig</td><td>sim</td><td>f32</td><td>[256, 256]</td><td>262144</td>", html)
        run(self.kc, "%device cpu")


class TestOutOfMemory(unittest.TestCase):
    """The simulator backend with 64 MiB: past it, a MemoryError with the allocator's
    words and the largest variables; the session goes on."""

    def setUp(self):  # a fresh kernel (and 64 MiB) for each test
        self.km, self.kc = start(env=sim_env())

    def tearDown(self):
        stop(self.km, self.kc)

    def test_oom_message_then_next_cell(self):
        r = run(self.kc, "tensor big1 = ones(6 << 20);\ntensor big2 = ones(4 << 20);\nprint(big1.device);")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(r.stream(), "sim\n")
        r = run(self.kc, "tensor third = ones(8 << 20);")  # 32 MiB more than the 24 MiB free
        self.assertEqual(r.status, "error")
        self.assertEqual(r.content["ename"], "MemoryError")
        msg = r.content["evalue"]
        self.assertIn("out of memory on sim for an f32 tensor of shape [8388608]", msg)
        self.assertIn("asked for 32.00 MiB (33554432 bytes", msg)
        self.assertRegex(msg, r"the device has [\d.]+ [KM]iB free of 64.00 MiB")
        self.assertIn("largest live tensors on sim: big1 24.00 MiB, big2 16.00 MiB", msg)
        r = run(self.kc, "%gpu")
        text = r.of_type("display_data")[0]["content"]["data"]["text/plain"]
        self.assertIn("capacity 64.00 MiB", text)
        self.assertRegex(text, r"out of memory [1-9]\d*")
        # the session goes on: free one, and the same allocation fits
        r = run(self.kc, "big1 = ones(1);\ntensor third = ones(8 << 20);\nprint(third.sum().item());")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(r.stream(), "8388608.0\n")

    def test_oom_in_an_op(self):
        # 20 MiB each: q, q2 and the temporaries of q2 * q2 * q2 do not fit into 64 MiB
        r = run(self.kc, "tensor q = ones(5 << 20);\ntensor q2 = q + q;\ntensor q3 = (q2 * q2 + 1) * q2;")
        self.assertEqual(r.status, "error", r.outputs)
        self.assertEqual(r.content["ename"], "MemoryError")
        self.assertIn("out of memory on sim", r.content["evalue"])
        self.assertIn("largest live tensors on sim: q 20.00 MiB, q2 20.00 MiB", r.content["evalue"])
        r = run(self.kc, "print(ones(2).sum().item());")
        self.assertEqual(r.stream(), "2.0\n")


class TestKilnRun(unittest.TestCase):
    def test_oom_through_kiln_run(self):
        cells = ("tensor a = ones(10 << 20);\n//%%\ntensor b = ones(10 << 20);\n//%%\n"
                 "print(\"next\", a.device, a.sum().item());\n")
        with tempfile.NamedTemporaryFile("w", suffix=".kn", delete=False) as f:
            f.write(cells)
        try:
            p = subprocess.run([KILN, "run", "-k", f.name], capture_output=True, text=True, timeout=60,
                               env=sim_env())
        finally:
            os.unlink(f.name)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(":3:12: MemoryError: out of memory on sim for an f32 tensor of shape [10485760]", p.stderr)
        self.assertIn("largest live tensors on sim: a 40.00 MiB", p.stderr)
        self.assertEqual(p.stdout, "next sim 1.048576e+07\n")


if __name__ == "__main__":
    unittest.main()
