"""State and trust (issue 13, items 16-19), through jupyter_client.

- %load runs no code: a session file whose function or kernel source was edited to
  hold a statement (save_npy, an assignment, a magic, an #include) is refused with an
  error naming the file, the entry and what was refused, and nothing of it happens.
- %load is all or nothing: a file whose third entry is bad (a bad name, a missing
  member, an optimiser tied to nothing, a function that does not check) leaves every
  variable, function and kernel as it was; names like int, "" and a b;c are refused,
  and zeros for a variable (a function may take a built-in's name: it shadows it).
- user_expressions evaluate expressions only: declarations, assignments, ++, calls of
  user functions and of built-ins with side effects are errors in that expression's
  result, and the session is unchanged.
- An error inside a model run by fit or lr_find keeps the model's own cell, line,
  column and source line, and the chain names the built-in that called it.

The hostile session files are made here: a session saved with %save, then its manifest
edited (docs/session-file.md)."""
import json
import os
import tempfile
import zipfile

from abuse import AbuseCase, run

TMP = os.environ.get("KILN_ABUSE_TMP") or tempfile.gettempdir()


def manifest(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("__kiln__.json"))


def rewrite(src, dst, edit):
    """Copies the session file src to dst with its manifest passed through edit(m)."""
    m = edit(manifest(src))
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
        for name in z.namelist():
            data = json.dumps(m).encode() if name == "__kiln__.json" else z.read(name)
            out.writestr(name, data)
    return dst


def entry(m, name):
    return next(g for g in m["globals"] if g["name"] == name)


class SessionFileCase(AbuseCase):
    """A saved session to edit: values, a function, a __device__ and a __global__ kernel."""

    SETUP = ("int victim = 1;\n"
             "tensor vt = arange(4);\n"
             "float vsq(float v) { return v * v; }\n")
    KERNELS = ["__device__ float vdsq(float v) { return v * v; }",
               "__global__ void vk(float *y, int n) {\n"
               "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
               "    if (i < n) y[i] = vdsq(2.0f);\n"
               "}"]

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(dir=TMP)
        self.saved = os.path.join(self.dir, "saved.npz")
        self.assertEqual(run(self.kc, self.SETUP).status, "ok")
        for k in self.KERNELS:
            self.assertEqual(run(self.kc, k).status, "ok")
        r = run(self.kc, f"%save {self.saved}")
        self.assertEqual(r.status, "ok", r.outputs)

    def state(self):
        """What the session holds now, as the texts of a few results."""
        out = []
        for code in ["victim", "vt", "vsq(3.0)",
                     "tensor vko = zeros(2);\nvk<<<1, 32>>>(vko, 2);\nvko"]:
            r = run(self.kc, code)
            out.append((r.status, r.result))
        return out

    def refused(self, path, *words):
        """%load path fails naming the file and the words; the session is unchanged."""
        before = self.state()
        r = self.attack(f"%load {path}")
        text = self.assert_error(r, os.path.basename(path), "nothing was loaded", *words)
        self.assertEqual(self.state(), before)
        return text


class TestLoadRunsNoCode(SessionFileCase):
    def test_statement_after_function_is_refused(self):
        pwned = os.path.join(self.dir, "pwned.npy")

        def edit(m):
            entry(m, "vsq")["source"] += f'\nsave_npy("{pwned}", arange(3)); victim = 99;'
            return m
        bad = rewrite(self.saved, os.path.join(self.dir, "stmt.npz"), edit)
        text = self.refused(bad, '"vsq"', "refused an expression statement", "save_npy")
        self.assertIn("2:1", text)  # where in the source
        self.assertFalse(os.path.exists(pwned), "the file's statement ran")
        self.assertEqual(run(self.kc, "victim").result, "1")

    def test_declaration_with_side_effect_is_refused(self):
        def edit(m):  # an initialiser that draws from the session's RNG
            entry(m, "vsq")["source"] = "float evil = rand(1).item();\n" + entry(m, "vsq")["source"]
            return m
        bad = rewrite(self.saved, os.path.join(self.dir, "decl.npz"), edit)
        want = run(self.kc, "seed(9);\nrand(2)").result
        run(self.kc, "seed(9);")
        self.refused(bad, "refused a declaration", "rand(1)")
        self.assertEqual(run(self.kc, "rand(2)").result, want)  # the initialiser did not run
        self.assertEqual(run(self.kc, "evil").status, "error")  # never declared

    def test_magic_line_is_refused(self):
        def edit(m):
            entry(m, "vsq")["source"] += "\n%reset"
            return m
        bad = rewrite(self.saved, os.path.join(self.dir, "magic.npz"), edit)
        self.refused(bad, "refused a magic")

    def test_function_source_defining_another_name_is_refused(self):
        def edit(m):  # read as a variable holding a function of the file (auto f = g;): there is none
            entry(m, "vsq")["source"] = "float vother(float v) { return v; }"
            return m
        bad = rewrite(self.saved, os.path.join(self.dir, "other.npz"), edit)
        self.refused(bad, '"vsq"', "holds the function vother, which the file does not define")
        self.assertEqual(run(self.kc, "vother").status, "error")

    def test_variable_holding_a_function_comes_back(self):
        path = os.path.join(self.dir, "alias.npz")
        self.assertEqual(run(self.kc, "auto valias = vsq;").status, "ok")
        self.assertEqual(run(self.kc, f"%save {path}").status, "ok")
        self.assertEqual(run(self.kc, "float vsq(float v) { return -v; }").status, "ok")
        r = self.attack(f"%load {path}")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(run(self.kc, "vsq(3.0)").result, "9.0")
        self.assertEqual(run(self.kc, "valias").result, run(self.kc, "vsq").result)

    def test_backward_pair_of_no_function_is_refused(self):
        def edit(m):  # set_backward's pairs (issue 14): both names must be functions of the file
            m["backwards"] = [{"function": "vsq", "backward": "victim"}]
            return m
        self.refused(rewrite(self.saved, os.path.join(self.dir, "pair.npz"), edit), "backwards[0]",
                     '"victim" is not a function of the file')

        def edit_self(m):
            m["backwards"] = [{"function": "vsq", "backward": "vsq"}]
            return m
        self.refused(rewrite(self.saved, os.path.join(self.dir, "pair2.npz"), edit_self), "backwards[0]",
                     "cannot be its own backward")

    def test_kernel_with_extra_code_or_include_is_refused(self):
        def extra(m):
            m["kernels"][1]["source"] += "\nint stolen = 1;"
            return m

        def include(m):
            m["kernels"][0]["source"] = '#include "/etc/passwd"\n' + m["kernels"][0]["source"]
            return m

        def cell(m):
            m["kernels"][0]["cell"] = 'x"\nint y = 1;\n#line 1 "z'
            return m
        self.refused(rewrite(self.saved, os.path.join(self.dir, "k1.npz"), extra), 'kernels[1] "vk"',
                     "refused a declaration")
        self.refused(rewrite(self.saved, os.path.join(self.dir, "k2.npz"), include), 'kernels[0] "vdsq"',
                     "#include")
        self.refused(rewrite(self.saved, os.path.join(self.dir, "k3.npz"), cell), "cell name")

    def test_load_says_it_is_code(self):
        r = self.attack(f"%load {self.saved}")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertIn("A session file is code", r.stream())
        self.assertIn("nothing in the file ran", r.stream())


class TestLoadIsAllOrNothing(SessionFileCase):
    SETUP = ("int victim = 1;\n"
             "tensor vt = arange(4);\n"
             "float vsq(float v) { return v * v; }\n"
             "tensor vw = param(ones(3));\n"
             "int vopt = adamw(vw);\n")

    def setUp(self):
        super().setUp()
        # the session moves on after the save: a load would change all of this
        r = run(self.kc, "victim = 2;\nvt = arange(4) * 10;\nfloat vsq(float v) { return v + 100.0; }\n"
                         "__device__ float vdsq(float v) { return v + 1.0f; }")
        self.assertEqual(r.status, "ok", r.outputs)

    def third_bad(self, name, edit3):
        """The saved file with its third globals entry changed by edit3; the first two
        are good, and the first would change the sentinel (4242 -> 1) if it were loaded."""
        def edit(m):
            g = m["globals"]
            self.assertEqual([e["name"] for e in g[:2]], ["abuse_sentinel", "abuse_t"])
            g[0]["value"] = 1
            edit3(g[2])
            return m
        return rewrite(self.saved, os.path.join(self.dir, name), edit)

    def test_bad_name_at_entry_three_changes_nothing(self):
        def edit3(e):
            e["name"] = "a b;c"
        text = self.refused(self.third_bad("name3.npz", edit3), 'globals[2] "a b;c"', "not an identifier")
        self.assertIn("NameError", text)
        self.assertEqual(run(self.kc, "victim").result, "2")
        self.assertEqual(run(self.kc, "vsq(1.0)").result, "101.0")

    def test_missing_member_at_entry_three_changes_nothing(self):
        def edit(m):
            g = m["globals"]
            g[0]["value"] = 1  # the sentinel, were the first entry loaded
            g.insert(2, {"name": "vghost", "type": "tensor", "kind": "tensor", "member": "nope.npy",
                         "dtype": "f32", "device": "cpu", "requires_grad": False, "shape": [2]})
            return m
        bad = rewrite(self.saved, os.path.join(self.dir, "member3.npz"), edit)
        self.refused(bad, 'globals[2] "vghost"', "no stored member")
        self.assertEqual(run(self.kc, "vghost").status, "error")

    def test_function_that_does_not_check_changes_nothing(self):
        def edit(m):
            entry(m, "vsq")["source"] = "float vsq(float v) { return v * no_such_global; }"
            return m
        bad = rewrite(self.saved, os.path.join(self.dir, "check.npz"), edit)
        self.refused(bad, "functions do not check", "no_such_global")

    def test_optimizer_tied_to_nothing_changes_nothing(self):
        def edit(m):
            m["optimizers"][0]["params"][0] = {"global": "victim"}
            return m
        bad = rewrite(self.saved, os.path.join(self.dir, "opt.npz"), edit)
        self.refused(bad, "optimizers[0]", "not a tensor of the file")

    def test_names_that_hide_or_break_the_language(self):
        for i, (name, why) in enumerate([("zeros", "built-in"), ("int", "keyword"), ("", "empty"),
                                         ("a b;c", "not an identifier"), ("__global__", "keyword"),
                                         ("f32", "defines"), ("1x", "not an identifier"),
                                         ("x\ny", "not an identifier"), ("print", "built-in")]):
            def edit3(e, name=name, why=why):
                if why == "built-in":  # a variable: a function may take a built-in's name (it shadows it)
                    e.clear()
                    e.update({"type": "int", "kind": "int", "value": 7})
                e["name"] = name
            with self.subTest(name=name):
                text = self.refused(self.third_bad(f"n{i}.npz", edit3), "refused the name", why)
                self.assertIn("NameError", text)
        r = run(self.kc, "zeros(2)")  # the built-in still works
        self.assertEqual(r.result, "[0., 0.]")

    def test_duplicate_name_changes_nothing(self):
        def edit(m):
            g = m["globals"]
            g[0]["value"] = 1
            g.insert(2, dict(g[0]))
            return m
        bad = rewrite(self.saved, os.path.join(self.dir, "dup.npz"), edit)
        self.refused(bad, 'globals[2] "abuse_sentinel"', "the name is also globals[0]")

    def test_good_file_loads_everything(self):
        r = self.attack(f"%load {self.saved}")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertEqual(run(self.kc, "victim").result, "1")
        self.assertEqual(run(self.kc, "vsq(3.0)").result, "9.0")
        r = run(self.kc, "tensor vko = zeros(2);\nvk<<<1, 32>>>(vko, 2);\nvko")
        self.assertEqual(r.result, "[4., 4.]", r.outputs)


class TestSaveSkipsUnloadableNames(AbuseCase):
    def test_variable_named_like_a_builtin_is_not_saved(self):
        path = os.path.join(tempfile.mkdtemp(dir=TMP), "shadow.npz")
        self.assertEqual(run(self.kc, "int step = 3;\nint kept_too = 4;").status, "ok")
        r = self.attack(f"%save {path}")
        self.assertEqual(r.status, "ok", r.outputs)
        self.assertIn("Not saved: step", r.stream())
        names = [g["name"] for g in manifest(path)["globals"]]
        self.assertNotIn("step", names)
        self.assertIn("kept_too", names)
        r = self.attack(f"%load {path}")
        self.assertEqual(r.status, "ok", r.outputs)


class TestUserExpressionsArePure(AbuseCase):
    def expressions(self, exprs):
        reply = self.kc.execute_interactive("abuse_sentinel", user_expressions=exprs, timeout=30)
        self.assertEqual(reply["content"]["status"], "ok")
        self.assert_alive()
        return reply["content"]["user_expressions"]

    def assert_refused(self, res, *words):
        self.assertEqual(res["status"], "error", res)
        for key in ("ename", "evalue", "traceback"):  # the messaging spec's error fields
            self.assertIn(key, res)
        text = res["ename"] + ": " + res["evalue"]
        for w in words:
            self.assertIn(w, text)

    def test_declarations_and_assignments_change_nothing(self):
        run(self.kc, "float ue_f() { abuse_sentinel = 1; return 1.0; }")
        res = self.expressions({
            "decl": "int abuse_sentinel = 7;",
            "new": "int ue_fresh = 7;",
            "assign": "abuse_sentinel = 5",
            "inner": "(abuse_sentinel = 5) + 1",
            "inc": "abuse_sentinel++",
            "store": "abuse_t[0] = 99",
            "compound": "abuse_t += 1",
            "func": "ue_f()",
            "magic": "%reset",
            "two": "1; abuse_sentinel = 3",
        })
        self.assert_refused(res["decl"], "SyntaxError", "declaration")
        self.assert_refused(res["new"], "SyntaxError", "declaration")
        self.assert_refused(res["assign"], "SyntaxError", "assignment")
        self.assert_refused(res["inner"], "assignment")
        self.assert_refused(res["inc"], "++")
        self.assert_refused(res["store"], "assignment")
        self.assert_refused(res["compound"], "assignment")
        self.assert_refused(res["func"], "user functions", "ue_f")
        self.assert_refused(res["magic"], "magic")
        self.assert_refused(res["two"], "one expression")
        self.assertEqual(run(self.kc, "ue_fresh").status, "error")  # not even declared
        self.assertEqual(run(self.kc, "abuse_t").result, "[0, 1, 2, 3, 4]")

    def test_builtins_with_side_effects_are_refused(self):
        path = os.path.join(tempfile.mkdtemp(dir=TMP), "ue.npy")
        run(self.kc, "seed(5);")
        want = run(self.kc, "seed(5);\nrand(2)").result
        run(self.kc, "seed(5);")
        res = self.expressions({
            "save": f'save_npy("{path}", abuse_t)',
            "seed": "seed(1)",
            "rand": "randn(2)",
            "print": 'print("x")',
            "nested": "sum(abuse_t) + len(sprintf(\"%d\", randint(0, 2, 1).item()))",
        })
        for k, why in [("save", "save_npy() uses files"), ("seed", "random generator"),
                       ("rand", "randn() uses the session's random generator"), ("print", "print() writes output"),
                       ("nested", "randint()")]:
            self.assert_refused(res[k], "ValueError", "side effects", why)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(run(self.kc, "rand(2)").result, want)  # the RNG did not move

    def test_pure_expressions_still_evaluate(self):
        res = self.expressions({"a": "abuse_sentinel * 2", "b": "abuse_t.shape", "c": "sum(abuse_t * 2).item()",
                                "d": "abuse_sentinel;", "e": "no_such_name"})
        self.assertEqual(res["a"]["data"]["text/plain"], "8484")
        self.assertEqual(res["b"]["data"]["text/plain"], "(5,)")
        self.assertEqual(res["c"]["data"]["text/plain"], "20")
        self.assertEqual(res["d"]["data"]["text/plain"], "4242")
        self.assert_refused(res["e"], "NameError", "no_such_name")


MODEL = """tensor fw = param(randn(8, 4) * 0.1);
tensor fmodel(tensor xb) {
    tensor h = xb @ fw;
    return h @ randn(5, 4);
}"""


class TestFitErrorKeepsItsPlace(AbuseCase):
    def setUp(self):
        super().setUp()
        r = run(self.kc, MODEL)
        self.assertEqual(r.status, "ok", r.outputs)
        self.model_cell = r.content["execution_count"]
        r = run(self.kc, "tensor fx = randn(64, 8);\ntensor fy = randint(0, 4, 64);\nint fo = adamw(fw);")
        self.assertEqual(r.status, "ok", r.outputs)

    def location(self, r):
        tb = r.content["traceback"]
        return tb, tb[0].split(": ")[0]

    def test_direct_call_and_fit_report_the_same_place(self):
        direct = self.attack("fmodel(fx)")
        self.assert_error(direct, "ShapeError", "matmul")
        tb_direct, where = self.location(direct)
        self.assertEqual(where, f"cell[{self.model_cell}]:4:14")
        for call in ["float acc = fit(fmodel, fo, fx, fy, fx, fy, 1, 16);",
                     "float lr = lr_find(fmodel, fo, fx, fy, 16);"]:
            with self.subTest(call=call):
                r = self.attack("int before_fit = 1;\n" + call)
                self.assert_error(r, "ShapeError", "matmul")
                tb, where_fit = self.location(r)
                cell = r.content["execution_count"]
                self.assertEqual(where_fit, where)  # the model's cell, line and column
                self.assertEqual(tb[1], tb_direct[1])  # its source line
                self.assertEqual(tb[2], tb_direct[2])  # and the caret
                builtin = call.split("=")[1].split("(")[0].strip()
                self.assertTrue(any(f"in fmodel(), called by {builtin}() at cell[{cell}]:2:" in line for line in tb),
                                tb)

    def test_model_calling_a_function_keeps_the_whole_chain(self):
        r = run(self.kc, "tensor fhead(tensor h) {\n    return h @ randn(5, 4);\n}\n"
                         "tensor fmodel2(tensor xb) { return fhead(xb @ fw); }")
        self.assertEqual(r.status, "ok", r.outputs)
        head_cell = r.content["execution_count"]
        r = self.attack("fit(fmodel2, fo, fx, fy, fx, fy, 1, 16);")
        tb, where = self.location(r)
        cell = r.content["execution_count"]
        self.assertEqual(where, f"cell[{head_cell}]:2:14")
        chain = [line.strip() for line in tb if line.strip().startswith("in ")]
        self.assertEqual(chain, [f"in fhead(), called from cell[{head_cell}]:4:36",
                                 f"in fmodel2(), called by fit() at cell[{cell}]:1:1"])

    def test_error_in_fits_evaluation_keeps_its_place(self):
        r = run(self.kc, "tensor fb = param(zeros(4));\n"
                         "tensor fmodel3(tensor xb) {\n"
                         "    if (is_grad_enabled()) return xb @ fw + fb;\n"
                         "    return (xb @ fw)[0:3] + fb[0:2];\n"
                         "}\n"
                         "int fo3 = adamw(fw, fb);")
        self.assertEqual(r.status, "ok", r.outputs)
        model_cell = r.content["execution_count"]
        r = self.attack("fit(fmodel3, fo3, fx, fy, fx, fy, 1, 16);")  # trains, then fails evaluating
        self.assert_error(r, "ShapeError")
        tb, where = self.location(r)
        self.assertTrue(where.startswith(f"cell[{model_cell}]:4:"), tb)
        self.assertIn("return (xb @ fw)[0:3] + fb[0:2];", tb[1])
        self.assertIn(f"in fmodel3(), called by fit() at cell[{r.content['execution_count']}]:1:1", tb[-1])
