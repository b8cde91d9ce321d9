"""The small frictions of typing cells (issue 15), through real clients: %timeit sends
one stream and no result per loop, %time shows the value once, a declaration without
';' ends a cell (jupyter_client's is_complete and `jupyter console` agree), the '//'
warning on stderr, #define constants and sizeof in host code, a 0-d result without the
tensor box, and completion by the value's type and inside a kernel body."""
import unittest

from kiln_testing import TIMEOUT, SharedKernel, console, pexpect, run, shell_reply



def complete(kc, code):
    return kc.complete(code, len(code), reply=True, timeout=TIMEOUT)["content"]["matches"]


class TestMagicsAndCells(SharedKernel):
    def test_timeit_sends_one_stream_and_no_result(self):
        run(self.kc, "tensor tx = randn(1000);")
        r = run(self.kc, "%timeit sum(tx)", timeout=120)
        self.assertEqual(r.status, "ok")
        self.assertEqual(r.of_type("execute_result"), [])
        self.assertEqual(r.of_type("display_data"), [])
        streams = r.of_type("stream")
        self.assertEqual(len(streams), 1, streams)
        self.assertRegex(streams[0]["content"]["text"],
                         r"^\S+ \S+ ± \S+ \S+ per loop \(mean ± std\. dev\. of 7 runs, \d+ loops? each\)\n$")

    def test_time_shows_the_value_once(self):
        run(self.kc, "int tv = 41;")
        r = run(self.kc, "%time tv + 1")
        self.assertEqual(r.status, "ok")
        self.assertEqual(len(r.of_type("execute_result")), 1)
        self.assertEqual(r.result, "42")
        self.assertRegex(r.stream("stdout"), r"^Wall time: ")
        # the timing first, then the value, as IPython shows them
        kinds = [m["msg_type"] for m in r.outputs]
        self.assertEqual(kinds, ["stream", "execute_result"], kinds)
        r = run(self.kc, '%time printf("side\\n"); tv')
        self.assertEqual(r.stream("stdout").split("\n")[0], "side")
        self.assertEqual([m["msg_type"] for m in r.outputs][-1], "execute_result")
        self.assertEqual(r.result, "41")

    def test_declaration_ends_the_cell(self):
        code = "tensor tdecl = randn(2, 3)"
        msg_id = self.kc.is_complete(code)
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "complete")
        r = run(self.kc, code)
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(run(self.kc, "tdecl.shape").result, "(2, 3)")
        # still incomplete where more is to come
        msg_id = self.kc.is_complete("tensor tdecl2 = randn(2,")
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "incomplete")

    def test_slash_slash_warning_and_the_cell_runs(self):
        r = run(self.kc, "int c15 = 15;\nc15 // 2")
        self.assertEqual(r.status, "ok")
        self.assertEqual(r.result, "15")
        err = r.stream("stderr")
        self.assertIn(":2:5: SyntaxWarning: '//' starts a comment in C, so '2' is ignored", err)
        self.assertEqual(r.errors, [])
        # a ';' before the comment: no warning
        self.assertEqual(run(self.kc, "c15; // 2").stream("stderr"), "")

    def test_define_and_sizeof_in_host_code(self):
        r = run(self.kc, "#define BLOCK_F 64\nBLOCK_F * sizeof(float)")
        self.assertEqual((r.status, r.result), ("ok", "256"))
        self.assertEqual(run(self.kc, "BLOCK_F + 1").result, "65")

    def test_zero_d_result_is_its_value(self):
        r = run(self.kc, "sum(ones(4))")
        data = r.of_type("execute_result")[0]["content"]["data"]
        self.assertEqual(data["text/plain"], "4.0")
        self.assertNotIn("text/html", data)
        self.assertIn("text/html", run(self.kc, "ones(2)").of_type("execute_result")[0]["content"]["data"])


class TestCompletion(SharedKernel):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        run(cls.kc, 'tensor ct = randn(3); string cs = "a"; int copt = adamw(ct);\n'
                    "tensor ctwice(tensor v) { return 2 * v; }")

    def test_after_a_tensor(self):
        m = complete(self.kc, "ct.")
        self.assertEqual(m[:7], ["T", "device", "dtype", "grad", "ndim", "numel", "shape"])
        for name in ("sum", "reshape", "relu", "ctwice"):
            self.assertIn(name, m)
        for name in ("adamw", "sgd", "zeros", "load_npy", "printf", "fit"):
            self.assertNotIn(name, m)
        self.assertEqual(complete(self.kc, "ct.res"), ["reshape"])
        self.assertIn("shape", complete(self.kc, "ct.T."))
        self.assertIn("sum", complete(self.kc, "randn(2).s"))
        m = complete(self.kc, "ct.sh")  # the member first, then methods (shuffle, ...)
        self.assertEqual(m[0], "shape")
        self.assertTrue(all(x.startswith("sh") for x in m), m)

    def test_after_a_string_and_an_optimiser(self):
        m = complete(self.kc, "cs.")
        self.assertIn("load_npy", m)
        self.assertIn("len", m)
        self.assertNotIn("relu", m)
        self.assertNotIn("shape", m)
        m = complete(self.kc, "copt.")
        self.assertIn("step", m)
        self.assertNotIn("relu", m)

    def test_after_a_list(self):
        run(self.kc, "auto cparts = split(arange(4), 2);")
        self.assertEqual(complete(self.kc, "cparts."), ["len"])

    def test_unknown_type_offers_every_builtin(self):
        m = complete(self.kc, "(ct + 1).")
        self.assertIn("adamw", m)
        self.assertIn("shape", m)

    def test_inside_a_kernel_body(self):
        head = "__global__ void k(float *out, int n) {\n    int i = "
        self.assertEqual(complete(self.kc, head + "blockI"), ["blockIdx"])
        m = complete(self.kc, head + "threadIdx.")
        self.assertEqual(m, ["w", "x", "y", "z"])
        m = complete(self.kc, head + "i;\n    __sh")
        self.assertIn("__shfl_down_sync", m)
        self.assertIn("__shared__", m)
        self.assertEqual(complete(self.kc, head + "i;\n    if (i < n) ou"), ["out"])
        self.assertIn("atomicAdd", complete(self.kc, head + "i;\n    atomic"))
        # after the kernel's closing brace: host completion again
        self.assertNotIn("blockIdx", complete(self.kc, "__global__ void k() { }\nbl"))


class TestConsole(unittest.TestCase):
    @unittest.skipIf(pexpect is None, "pexpect is not installed")
    def test_declaration_without_semicolon(self):
        child = console()
        try:
            child.expect(r"In \[1\]: ")
            child.sendline("tensor t = randn(2, 3)")
            # complete as typed: the next prompt, not a continuation line, and no error
            i = child.expect([r"In \[2\]: ", r"\.\.\.: ", "SyntaxError"])
            self.assertEqual(i, 0, child.before)
            child.sendline("t.shape")
            child.expect(r"Out\[2\]: \(2, 3\)")
            child.expect(r"In \[3\]: ")
            child.sendeof()
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
