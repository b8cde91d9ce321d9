"""Sizes, integer edge cases, memory exhaustion and output widths (issue 13, items 3, 4,
5 and 12, and the "also seen" messages): each reproducer that once crashed, wedged or
bloated the kernel, through jupyter_client. The kernel must answer, the sentinel must be
intact, and the error must name the op and the numbers.

TestLimits runs with no host memory limit (the machine's MemAvailable decides);
TestHostMemoryLimit starts its kernel with KILN_HOST_MEMORY_LIMIT=256M, so that the
string doubling and the tensor over the limit fail fast and safely."""
import os
import time

from abuse import AbuseCase, run, start

INT64_MIN = "(-9223372036854775807 - 1)"


def mem_available():
    """MemAvailable in bytes (0 when unknown)"""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def env_without_limit(**extra):
    env = {k: v for k, v in os.environ.items() if k != "KILN_HOST_MEMORY_LIMIT"}
    env.update(extra)
    return env


class TestLimits(AbuseCase):
    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start(env=env_without_limit())

    # ---- item 3: byte counts that wrapped to a small malloc ----
    def test_linspace_size_overflow(self):
        r = self.attack("tensor l = linspace(0, 1, 2305843009213693952);")
        self.assert_error(r, "MemoryError", "linspace", "[2305843009213693952]", "too large")

    def test_zeros_size_overflow(self):
        r = self.attack("zeros(1 << 40, 1 << 40)")
        self.assert_error(r, "MemoryError", "zeros", "[1099511627776, 1099511627776]", "too large")
        r = self.attack("ones(1 << 31, 1 << 31, i64)")
        self.assert_error(r, "MemoryError", "ones", "of i64", "too large")

    def test_reshape_size_overflow(self):
        r = self.attack("arange(4).reshape(1 << 32, 1 << 32, 0)")
        self.assert_error(r, "MemoryError", "reshape", "[4294967296, 4294967296, 0]", "overflows")

    def test_cat_total_overflow(self):
        r = self.attack("tensor e = zeros(0, 1 << 60);\ncat(e, e, e, e, e, e, e, e, 1)")
        text = self.assert_error(r, "MemoryError", "cat", "total size along dimension 1 overflows")
        self.assertNotIn("negative dimension", text)

    def test_slice_with_a_huge_step(self):
        r = self.attack("print(arange(10)[0:10:9223372036854775807], arange(10)[9:0:%s]);" % INT64_MIN)
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.stream(), "[0] [9]\n")

    # ---- item 4: INT64_MIN / -1 ----
    def test_cdiv_int_min_by_minus_one(self):
        r = self.attack("cdiv(%s, -1)" % INT64_MIN)
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, "-9223372036854775808")  # wraps, as the '/' operator does
        r = self.attack("cdiv(%s, 0)" % INT64_MIN)
        self.assert_error(r, "ZeroDivisionError", "cdiv", "division by zero")

    def test_integer_division_paths(self):
        r = self.attack("int m = %s;\nprint(m / -1, m %% -1, cdiv(m, 2));\n"
                        "tensor a = {%s, 7};\nprint(a / -1, a %% -1);\n"
                        "tensor b = ({-2147483647 - 1, 5}).to(i32);\nprint(b / -1, b %% -1);" % (INT64_MIN, INT64_MIN))
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.stream(), "-9223372036854775808 0 -4611686018427387904\n"
                                     "[-9223372036854775808,                   -7] [0, 0]\n"
                                     "[-2147483648,          -5] [0, 0]\n")
        r = self.attack("({1, 2}).to(i32) % ({0, 1}).to(i32)")
        self.assert_error(r, "ZeroDivisionError", "mod")

    # ---- item 5: more than the machine has, with no limit set ----
    def test_empty_past_mem_available(self):
        avail = mem_available()
        if not avail:
            self.skipTest("no /proc/meminfo")
        # 20 GB as in the issue, or 1.5x what is available on a bigger machine
        rows = max(50000, int(avail * 1.5 / 4 / 100000) + 1)
        t0 = time.monotonic()
        r = self.attack("tensor huge = empty(%d, 100000);" % rows)
        self.assertLess(time.monotonic() - t0, 20)
        self.assert_error(r, "MemoryError", "shape [%d, 100000]" % rows, "empty()", "(%d bytes)" % (rows * 400000),
                          "available")
        r = self.attack("%memory")
        self.assertEqual(r.status, "ok", r.errors)
        self.assertIn("Limit: none", r.stream())
        self.assertIn("Available on this machine", r.stream())

    def test_untouched_tensors_count(self):
        """empty() does not touch its pages, so the system does not count them yet: two
        tensors of half the available memory each would both pass a MemAvailable check
        and then be killed when written; the second is refused."""
        avail = mem_available()
        if not avail:
            self.skipTest("no /proc/meminfo")
        rows = int(avail * 0.5 / 4 / 100000)
        r = self.attack("tensor half1 = empty(%d, 100000);" % rows)
        self.assertEqual(r.status, "ok", r.errors)
        r = self.attack("tensor half2 = empty(%d, 100000);" % rows)
        self.assert_error(r, "MemoryError", "in empty()", "available")
        r = self.attack("half1 = zeros(0);\ntensor half2 = empty(%d, 100000);\nhalf2 = zeros(0);" % rows)
        self.assertEqual(r.status, "ok", r.errors)

    # ---- item 12: output widths ----
    def test_printf_huge_precision(self):
        t0 = time.monotonic()
        r = self.attack('printf("%.*f\\n", 2000000000, 1.0)', timeout=20)
        self.assertLess(time.monotonic() - t0, 10)
        self.assert_error(r, "ValueError", "printf", "precision 2000000000", "'%.*f'", "at most 1000000")

    def test_printf_huge_width(self):
        t0 = time.monotonic()
        r = self.attack('printf("%*d\\n", 2000000000, 1)', timeout=20)
        self.assertLess(time.monotonic() - t0, 10)
        self.assert_error(r, "ValueError", "printf", "width 2000000000", "'%*d'")
        self.assertEqual(r.stream(), "")  # nothing was sent
        r = self.attack('sprintf("%3000000s", "x")')
        self.assert_error(r, "ValueError", "sprintf", "width 3000000", "'%3000000s'")

    def test_printf_widths_within_the_bound(self):
        r = self.attack('printf("[%*d|%-*d|%.*f]\\n", 5, 1, -4, 2, 2, 1.5); print(len(sprintf("%1000000d", 1)));')
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.stream(), "[    1|2   |1.50]\n1000000\n")

    # ---- also seen ----
    def test_too_many_indices(self):
        r = self.attack("tensor x1 = arange(3);\nx1[0, 0, 0]")
        text = self.assert_error(r, "IndexError", "too many indices for a 1-d tensor", "3 given")
        self.assertNotIn("0-d", text)

    def test_print_keeps_nul(self):
        r = self.attack('string nul = "a" + sprintf("%c", 0) + "b";\nprint(nul, len(nul));\nprintf("%s|\\n", nul);')
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.stream(), "a\x00b 3\na\x00b|\n")

    def test_long_line_is_clipped_in_the_traceback(self):
        code = 'string q = "' + "x" * 800000 + '"; int b = nosuch_name + 1;'
        r = self.attack(code, timeout=60)
        self.assert_error(r, "NameError", "nosuch_name")
        tb = r.content["traceback"]
        self.assertLess(sum(len(line) for line in tb), 2000, "the 800 KB line came back whole")
        excerpt = [line for line in tb if "nosuch_name + 1" in line and "NameError" not in line]
        self.assertEqual(len(excerpt), 1, tb)
        self.assertTrue(excerpt[0].lstrip().startswith("\u2026"), excerpt[0][:40])
        caret = tb[tb.index(excerpt[0]) + 1]
        self.assertEqual(caret.rstrip()[-1], "^")
        self.assertEqual(excerpt[0][len(caret.rstrip()) - 1], "n")  # under the name's first letter


class TestHostMemoryLimit(AbuseCase):
    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start(env=env_without_limit(KILN_HOST_MEMORY_LIMIT="256M"))

    def test_string_doubling_33_times(self):
        t0 = time.monotonic()
        r = self.attack('string s = "a";\nfor (int i = 0; i < 33; i++) s = s + s;', timeout=60)
        self.assertLess(time.monotonic() - t0, 20)
        self.assert_error(r, "MemoryError", "joining strings", "asked for 256.00 MiB",
                          "host memory limit of 256.00 MiB (KILN_HOST_MEMORY_LIMIT)")
        r = self.attack("len(s)")  # the last string that fitted is still there
        self.assertEqual(r.result, str(1 << 27))
        self.attack('s = "";')

    def test_tensor_over_the_limit_then_raised(self):
        r = self.attack("tensor big = zeros(100 << 20);")  # 400 MiB of f32
        self.assert_error(r, "MemoryError", "out of memory on cpu for an f32 tensor of shape [104857600] in zeros()",
                          "(419430400 bytes)", "host memory limit of 256.00 MiB")
        r = self.attack("%memory limit 1G\ntensor big = ones(100 << 20);\nprint(big.sum().item());\n%memory")
        self.assertEqual(r.status, "ok", r.errors)
        self.assertIn("Host memory limit: 1.00 GiB", r.stream())
        self.assertIn("1.048576e+08", r.stream())
        self.assertIn("Limit: 1.00 GiB (set by %memory limit)", r.stream())
        self.assertRegex(r.stream(), r"Host memory: 400\.\d\d MiB held")
        # a limit below what is held: said so, and allocations fail until big goes
        r = run(self.kc, "%memory limit 256M\ntensor t2 = ones(10);")
        self.assertIn("400.00 MiB is in use already", r.stream())
        self.assert_error(r, "MemoryError", "over the host memory limit of 256.00 MiB")
        r = self.attack("big = zeros(0);\n%memory")
        self.assertIn("Limit: 256.00 MiB (set by %memory limit)", r.stream())

    def test_bad_limit(self):
        r = self.attack("%memory limit lots")
        self.assert_error(r, "ValueError", "%memory limit takes a size", "'lots'")
