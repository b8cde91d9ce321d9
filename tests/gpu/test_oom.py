"""Out of memory on the GPU through jupyter_client (make test-gpu): a real kernel process
with KILN_DEVICE=cuda fills most of the device, then asks for more than is free. The
cell fails with a MemoryError naming the size asked for, what the device has free and
the largest live tensors by variable name; %gpu counts the failure; then, with one
variable dropped, the same allocation succeeds and the session's other tensors still hold
their values. Also an op whose temporaries do not fit. Sizes follow the device's memory
(tests/gpu/run.sh passes it as KILN_GPU_GIB), so the test holds on 80 GB and 141 GB cards.

The kernelspec is written into a temporary JUPYTER_DATA_DIR here (kernel.json with
$KILN's absolute path), so the test needs jupyter_client and nothing installed.
Usage: KILN=build/kiln KILN_GPU_GIB=79.2 python3 tests/gpu/test_oom.py"""
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = tempfile.mkdtemp(prefix="kiln-gpu-oom-")
os.environ.update({"JUPYTER_DATA_DIR": os.path.join(DATA, "data"), "JUPYTER_RUNTIME_DIR": os.path.join(DATA, "rt"),
                   "JUPYTER_CONFIG_DIR": os.path.join(DATA, "config"), "JUPYTER_PLATFORM_DIRS": "1"})
_spec = json.load(open(os.path.join(HERE, "..", "..", "kernel", "kernelspec", "kernel.json")))
_kiln = os.path.abspath(os.environ.get("KILN", os.path.join(HERE, "..", "..", "build", "kiln")))
_spec["argv"] = [_kiln if a == "@KILN@" else a for a in _spec["argv"]]
os.makedirs(os.path.join(DATA, "data", "kernels", "kiln"))
with open(os.path.join(DATA, "data", "kernels", "kiln", "kernel.json"), "w") as _f:
    json.dump(_spec, _f)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernel"))
from kiln_testing import run, start, stop  # noqa: E402

GIB = float(os.environ.get("KILN_GPU_GIB", "79"))
# KILN_OOM_DEVICE=sim with KILN_SIM_CAPACITY checks the test itself on a machine without a GPU
DEV = os.environ.get("KILN_OOM_DEVICE", "cuda")


def floats(frac):
    """the number of f32 elements in frac of the device's memory, a multiple of 2^20"""
    return int(GIB * frac * (1 << 30) / 4) >> 20 << 20


class TestGpuOutOfMemory(unittest.TestCase):
    def setUp(self):
        env = dict(os.environ)
        env["KILN_DEVICE"] = DEV
        self.km, self.kc = start(env=env)

    def tearDown(self):
        stop(self.km, self.kc)

    def test_oom_message_then_the_session_goes_on(self):
        n1, n2, n3 = floats(0.45), floats(0.30), floats(0.40)
        r = run(self.kc, "tensor keep = arange(10).to(f32);\ntensor big1 = ones(%d);\ntensor big2 = ones(%d);\n"
                         "print(big1.device, big2.device);" % (n1, n2))
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(r.stream(), "%s %s\n" % (DEV, DEV))
        r = run(self.kc, "tensor third = ones(%d);" % n3)
        self.assertEqual(r.status, "error", r.outputs)
        self.assertEqual(r.content["ename"], "MemoryError")
        msg = r.content["evalue"]
        self.assertIn("out of memory on %s for an f32 tensor of shape [%d]" % (DEV, n3), msg)
        self.assertIn("(%d bytes" % (4 * n3), msg)
        self.assertRegex(msg, r"the device has [\d.]+ [KMG]iB free of [\d.]+ [MG]iB")
        self.assertRegex(msg, r"largest live tensors on %s: big1 [\d.]+ [MG]iB, big2 [\d.]+ [MG]iB" % DEV)
        r = run(self.kc, "%gpu")
        self.assertEqual(r.status, "ok", r.outputs)
        text = r.of_type("display_data")[0]["content"]["data"]["text/plain"]
        self.assertRegex(text, r"out of memory [1-9]\d*")
        # the session goes on: drop big1 and the same allocation fits; keep is intact
        r = run(self.kc, "big1 = ones(1);\ntensor third = ones(%d);\nprint(third[%d].item(), keep.sum().item());"
                % (n3, n3 - 1))
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(r.stream(), "1.0 45.0\n")

    def test_oom_inside_an_op(self):
        n = floats(0.30)
        r = run(self.kc, "tensor q = ones(%d);\ntensor q2 = q + q;\ntensor q3 = (q2 * q2 + 1) * q2;" % n)
        self.assertEqual(r.status, "error", r.outputs)
        self.assertEqual(r.content["ename"], "MemoryError")
        self.assertIn("out of memory on %s" % DEV, r.content["evalue"])
        self.assertRegex(r.content["evalue"], r"largest live tensors on %s: q2? [\d.]+ [MG]iB, q2? [\d.]+ [MG]iB" % DEV)
        r = run(self.kc, "q = ones(1);\nprint(q2[0].item(), ones(3).sum().item());")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(r.stream(), "2.0 3.0\n")


if __name__ == "__main__":
    try:
        unittest.main()
    finally:
        shutil.rmtree(DATA, ignore_errors=True)
