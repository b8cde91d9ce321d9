"""Issue 13, items 1 and 2: long operator chains and deep recursion once overflowed the
C stack (SIGSEGV). The checker and the interpreter now walk chains with a loop, so the
issue's chains evaluate, at any length; recursion is bounded by the stack it really
uses (engine/base/stack.h), measured on the thread that runs the cells (64 MB, or
KILN_STACK_MB), and ends in a RuntimeError naming the calls and the stack. Every cell
is generated here."""
import os

from abuse import AbuseCase
from kiln_testing import start


class TestOperatorChains(AbuseCase):
    def evaluates(self, code, want, timeout=120):
        r = self.attack(code, timeout=timeout)
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, want)

    def test_plus_chain_50000(self):
        self.evaluates("1" + "+1" * 50000, "50001")

    def test_andand_chain_50000(self):
        self.evaluates("true" + "&&true" * 50000, "true")

    def test_oror_chain_50000(self):
        self.evaluates("false" + "||false" * 50000 + "||true", "true")

    def test_string_plus_chain_50000(self):
        self.evaluates('("a"' + '+"a"' * 50000 + ") == \"" + "a" * 50001 + '"', "true")

    def test_transpose_chain_100000(self):
        self.evaluates("tensor x = ones(2, 3);\n(x" + ".T" * 100001 + ").shape", "(3, 2)")

    def test_slice_chain_100000(self):
        self.evaluates("tensor z = ones(4);\nsum(z" + "[0:3]" * 100000 + ").item()", "3.0")

    def test_method_chain_20000(self):
        self.evaluates("sum(abuse_t" + ".abs()" * 20000 + ").item()", "10")

    def test_index_chain_100000(self):
        # the second [0] indexes a 0-d tensor: an IndexError at that link, no crash
        r = self.attack("tensor z = ones(2);\nz" + "[0]" * 100000, timeout=120)
        self.assert_error(r, "IndexError", "0-d")

    def test_chains_of_a_million(self):
        self.evaluates("1" + "+1" * 1000000, "1000001")
        self.evaluates("true" + "&&true" * 1000000, "true")
        self.evaluates("abuse_t" + ".T" * 1000000, "[0, 1, 2, 3, 4]")

    def test_error_deep_in_a_chain(self):
        r = self.attack("1" + "+1" * 100000 + '+"a"' + "+1" * 100000, timeout=120)
        self.assert_error(r, "TypeError", "int and string")


class TestRecursion(AbuseCase):
    def test_forty_minus_signs_f999(self):
        # within both count limits (1,000 calls, 256 nesting levels): 40,000 nested
        # evaluations, which fit in the 64 MB stack
        code = "int f(int n) { return n <= 0 ? 0 : " + "- " * 40 + "f(n - 1); }\nf(999)"
        r = self.attack(code, timeout=120)
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, "0")

    def test_deep_plain_recursion(self):
        code = "int h(int n) { return n <= 0 ? 0 : 1 + h(n - 1); }\nh(100000)"
        r = self.attack(code, timeout=120)
        self.assert_error(r, "RuntimeError", "recursion too deep: more than 1000 calls")
        r = self.attack("h(900)")
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, "900")

    def test_infinite_mutual_recursion(self):
        code = "int ping(int n) { return pong(n + 1); }\nint pong(int n) { return ping(n + 1); }\nping(0)"
        r = self.attack(code, timeout=120)
        self.assert_error(r, "RuntimeError", "recursion too deep")


class TestSmallStack(AbuseCase):
    """A kernel whose cells run on a 4 MB stack: the guard, not the count of calls,
    stops recursion that nests operators in each call."""

    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start(env=dict(os.environ, KILN_STACK_MB="4"))

    def test_forty_minus_signs_f999(self):
        code = "int f(int n) { return n <= 0 ? 0 : " + "- " * 40 + "f(n - 1); }\nf(999)"
        r = self.attack(code, timeout=120)
        text = self.assert_error(r, "RuntimeError", "recursion too deep", "calls in progress",
                                 "MB of the stack")
        self.assertNotIn("more than 1000", text)
        # the function is still defined and works where it fits
        r = self.attack("f(50)")
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, "0")

    def test_chains_need_no_stack(self):
        r = self.attack("1" + "+1" * 200000, timeout=120)
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, "200001")
