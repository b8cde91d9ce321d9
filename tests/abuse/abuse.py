"""What every abuse case needs: a kernel with a sentinel variable, the attack, then proof
that the kernel still answers and the sentinel is intact.

Built on tests/kernel/kiln_testing.py (real build/kiln, real jupyter_client)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "kernel"))
from kiln_testing import TIMEOUT, SharedKernel, run, start, stop  # noqa: E402,F401

SENTINEL = "int abuse_sentinel = 4242; tensor abuse_t = arange(5);"


class AbuseCase(SharedKernel):
    """One kernel per test class; each test defines the sentinel, attacks, and checks."""

    def setUp(self):
        r = run(self.kc, SENTINEL)
        self.assertEqual(r.status, "ok", r.errors)

    def assert_alive(self):
        """The kernel answers and the session's state survived."""
        self.assertTrue(self.km.is_alive(), "the kernel process died")
        r = run(self.kc, "abuse_sentinel + sum(abuse_t).item()", timeout=TIMEOUT)
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, "4252")

    def attack(self, code, timeout=TIMEOUT, **kw):
        """Runs a hostile cell; returns its Ran after checking the kernel survived."""
        r = run(self.kc, code, timeout=timeout, **kw)
        self.assert_alive()
        return r

    def assert_error(self, r, *words):
        """The cell failed with an error whose name or text contains every word."""
        self.assertEqual(r.status, "error", f"expected an error, got {r}")
        text = (r.content.get("ename", "") + ": " + r.content.get("evalue", ""))
        for w in words:
            self.assertIn(w, text)
        return text
