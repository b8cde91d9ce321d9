"""Issue 13, items 1 and 2: long operator chains and deep recursion once overflowed the
C stack (SIGSEGV). The parser, checker and interpreter now check the stack they really
use (engine/stack.h) on a 64 MB thread: chains of the issue's lengths evaluate, longer
ones and recursion past the stack end in a RuntimeError naming the problem. Every cell
is generated here."""
from abuse import AbuseCase

# the reproducers: they fit in kiln's 64 MB stack and must evaluate correctly
# (in the AddressSanitizer build, whose frames are larger, the guard may stop them
# first: then the error must name the problem)
STACK_ERRORS = ("nested too deeply", "recursion too deep")


class TestOperatorChains(AbuseCase):
    def fits(self, code, want):
        """code evaluates to want, or (where the stack is smaller) a clear stack error"""
        r = self.attack(code, timeout=120)
        if r.status == "ok":
            self.assertEqual(r.result, want)
        else:
            text = self.assert_error(r, "RuntimeError")
            self.assertTrue(any(w in text for w in STACK_ERRORS), text)

    def test_plus_chain_50000(self):
        self.fits("1" + "+1" * 50000, "50001")

    def test_andand_chain_50000(self):
        self.fits("true" + "&&true" * 50000, "true")

    def test_oror_chain_50000(self):
        self.fits("false" + "||false" * 50000 + "||true", "true")

    def test_string_plus_chain_50000(self):
        self.fits('("a"' + '+"a"' * 50000 + ") == \"" + "a" * 50001 + '"', "true")

    def test_transpose_chain_100000(self):
        self.fits("tensor x = ones(2, 3);\n(x" + ".T" * 100001 + ").shape", "(3, 2)")

    def test_index_chain_100000(self):
        # the second [0] indexes a 0-d tensor: an IndexError, not a crash
        r = self.attack("tensor z = ones(2);\nz" + "[0]" * 100000, timeout=120)
        self.assertEqual(r.status, "error")
        text = self.assert_error(r)
        self.assertTrue("IndexError" in text or any(w in text for w in STACK_ERRORS), text)

    def test_slice_chain_100000(self):
        self.fits("tensor z = ones(4);\nsum(z" + "[0:3]" * 100000 + ").item()", "3.0")

    def test_chains_past_the_stack(self):
        # a million links cannot fit: the checker or the interpreter says so
        for code in ("1" + "+1" * 1000000,
                     "true" + "&&true" * 1000000,
                     '"a"' + '+"a"' * 1000000,
                     "abuse_t" + ".T" * 1000000,
                     "abuse_t" + "[0]" * 1000000):
            with self.subTest(code=code[:20]):
                r = self.attack(code, timeout=120)
                self.assert_error(r, "RuntimeError", "nested too deeply")
                self.assertIn("stack", r.content["evalue"])


class TestRecursion(AbuseCase):
    def test_forty_minus_signs_f999(self):
        # within both count limits (1,000 calls, 256 nesting levels): 40,000 nested
        # evaluations; it must run or stop with a clear error, never crash
        code = "int f(int n) { return n <= 0 ? 0 : " + "- " * 40 + "f(n - 1); }\nf(999)"
        r = self.attack(code, timeout=120)
        if r.status == "ok":
            self.assertEqual(r.result, "0")
        else:
            self.assert_error(r, "RuntimeError", "recursion too deep")

    def test_recursion_bounded_by_stack_not_count(self):
        # each call holds a chain of 20,000 operators: far below 1,000 calls, the stack
        # runs out; the message names the calls in progress and the stack
        code = "int g(int n) { return n <= 0 ? 0 : g(n - 1)" + " + 1" * 20000 + "; }\ng(999)"
        r = self.attack(code, timeout=120)
        text = self.assert_error(r, "RuntimeError", "recursion too deep", "calls in progress", "MB of the stack")
        self.assertNotIn("1000 calls", text)
        # the function is still defined and works at a depth that fits
        r = self.attack("g(2)")
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, "40000")

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
