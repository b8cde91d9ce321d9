"""Captured fd 1 and fd 2 (kernel/capture.c) through jupyter_client: printf inside a
custom kernel on the simulator (libc, on OpenMP threads, straight to fd 1) arrives as
`stream` messages of the request that ran it, before its idle status and in order with
the engine's own printf; fprintf(stderr) arrives as stderr; 1 MB of kernel printf
neither deadlocks nor loses a byte; the engine's printf arrives exactly once; the
kernel's own log lines stay out of the notebook."""
import os
import shutil
import tempfile
import unittest

from kiln_testing import TIMEOUT, iopub_until_idle, run, start, stop

HELLO = """__global__ void hello(int n) {
    if (threadIdx.x < n) printf("thread %d\\n", threadIdx.x);
}"""
WARN = """__global__ void warn(int code) {
    if (threadIdx.x == 0) fprintf(stderr, "warning %d from the kernel\\n", code);
}"""
# 40 blocks x 256 threads x 100-byte lines = 1,024,000 bytes
BIG_BLOCKS, BIG_THREADS, BIG_LINE = 40, 256, 100
BIG = """__global__ void big(int unused) {
    printf("%05d %04d DOTS\\n", blockIdx.x, threadIdx.x);
}""".replace("DOTS", "." * (BIG_LINE - len("00000 0000 \n")))


class TestCapture(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cache = tempfile.mkdtemp(prefix="kiln-capture-")
        cls.env = dict(os.environ, XDG_CACHE_HOME=cls.cache)
        cls.km, cls.kc = start(env=cls.env)
        for cell in (HELLO, WARN, BIG):
            r = run(cls.kc, cell)
            assert r.status == "ok", r.outputs

    @classmethod
    def tearDownClass(cls):
        stop(cls.km, cls.kc)
        shutil.rmtree(cls.cache, ignore_errors=True)

    def execute(self, code, timeout=120):
        """Runs code; returns (reply, IOPub messages parented to it up to its idle)."""
        msg_id = self.kc.execute(code)
        msgs = iopub_until_idle(self.kc, msg_id, timeout=timeout)
        reply = self.kc.get_shell_msg(timeout=TIMEOUT)
        self.assertEqual(reply["parent_header"]["msg_id"], msg_id)
        return reply, msgs

    @staticmethod
    def text(msgs, name="stdout"):
        return "".join(m["content"]["text"] for m in msgs
                       if m["msg_type"] == "stream" and m["content"]["name"] == name)

    def test_1_kernel_printf_is_stream_output_of_its_request(self):
        reply, msgs = self.execute("hello<<<1, 4>>>(4);")
        self.assertEqual(reply["content"]["status"], "ok")
        # iopub_until_idle keeps only this request's messages and stops at its idle:
        # every line is there, parented to the request, before the idle status
        self.assertEqual(sorted(self.text(msgs).splitlines()),
                         [f"thread {i}" for i in range(4)])
        self.assertEqual(msgs[-1]["content"]["execution_state"], "idle")
        self.assertEqual(self.text(msgs, "stderr"), "")

    def test_2_order_with_the_engines_printf(self):
        for _ in range(20):  # two threads feed IOPub here: a race would show up
            r = run(self.kc, 'printf("before\\n");\nhello<<<1, 2>>>(2);\nprintf("after\\n");\n42',
                    timeout=120)
            self.assertEqual(r.status, "ok", r.outputs)
            lines = r.stream().splitlines()
            self.assertEqual(lines[0], "before")
            self.assertEqual(sorted(lines[1:3]), ["thread 0", "thread 1"])
            self.assertEqual(lines[3:], ["after"])
            # the kernel's output is published before the result
            kinds = [m["msg_type"] for m in r.outputs]
            self.assertEqual(kinds[-1], "execute_result", kinds)

    def test_3_stderr(self):
        r = run(self.kc, "warn<<<1, 32>>>(7);", timeout=120)
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(r.stream("stderr"), "warning 7 from the kernel\n")
        self.assertEqual(r.stream("stdout"), "")

    def test_4_a_megabyte_of_kernel_printf(self):
        reply, msgs = self.execute(f"big<<<{BIG_BLOCKS}, {BIG_THREADS}>>>(0);", timeout=240)
        self.assertEqual(reply["content"]["status"], "ok")
        out = self.text(msgs)
        self.assertEqual(len(out), BIG_BLOCKS * BIG_THREADS * BIG_LINE)
        lines = out.splitlines()
        self.assertEqual(len(set(lines)), BIG_BLOCKS * BIG_THREADS)
        self.assertEqual(sorted(lines)[0][:10], "00000 0000")
        self.assertEqual(sorted(lines)[-1][:10], f"{BIG_BLOCKS - 1:05d} {BIG_THREADS - 1:04d}")
        r = run(self.kc, "1 + 1")  # the kernel goes on, with nothing left over
        self.assertEqual(r.result, "2")
        self.assertEqual(r.stream(), "")

    def test_5_engine_printf_arrives_once(self):
        r = run(self.kc, 'printf("only once %d\\n", 7);')
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(r.stream(), "only once 7\n")
        self.assertEqual(len(r.of_type("stream")), 1, r.outputs)

    def test_6_kernel_log_stays_out_of_notebooks(self):
        # an unknown request type makes the kernel log a line ("kiln: shell: unknown ...")
        msg = self.kc.session.msg("no_such_request", {})
        self.kc.shell_channel.send(msg)
        msgs = iopub_until_idle(self.kc, msg["header"]["msg_id"])
        r = run(self.kc, "hello<<<1, 1>>>(1);", timeout=120)
        self.assertEqual(r.stream(), "thread 0\n")
        self.assertNotIn("kiln:", self.text(msgs) + r.stream() + r.stream("stderr"))

    def test_7_silent_requests_publish_nothing(self):
        msg_id = self.kc.execute("hello<<<1, 3>>>(3);", silent=True)
        msgs = iopub_until_idle(self.kc, msg_id, timeout=120)
        self.assertEqual([m["msg_type"] for m in msgs], ["status", "status"])
        r = run(self.kc, "1")  # nothing of the silent cell leaks into the next one
        self.assertEqual(r.stream(), "")


if __name__ == "__main__":
    unittest.main()
