"""Stopping inside a __global__ kernel on the CUDA simulator through the Jupyter debug
protocol (docs/debugger.md, "Kernels on the simulator"), with jupyter_client against the
real kernel: a breakpoint on a kernel line whose condition chooses the thread stops that
thread; the stack shows the kernel frame above the launching cell; the Locals scope
shows threadIdx/blockIdx, the kernel's parameters and locals with that thread's values,
and the pointer arguments as tensors of their contents at that moment; next steps line
by line and off the kernel's end to the cell's next statement; stepIn at a launch enters
the kernel in the thread %debug_thread chose; continue lets the launch finish."""
import unittest

import test_debugger as td
from kiln_testing import TIMEOUT, shell_reply, start, stop

KERNEL = """\
__global__ void scale2(float *y, const float *x, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = 0.0f;
    if (i < n) {
        v = x[i] * a;
        y[i] = v + 1.0f;
    }
}"""

LAUNCH = """\
tensor x = arange(8).to(f32), y = zeros(8);
scale2<<<2, 4>>>(y, x, 3.0, 8);
print(y);"""


class KernelDebugger(unittest.TestCase):
    # the protocol helpers of test_debugger.py
    dap, ok, event, start_debugger, dump, stopped_at, variables, scopes = (
        td.Debugger.dap, td.Debugger.ok, td.Debugger.event, td.Debugger.start_debugger, td.Debugger.dump,
        td.Debugger.stopped_at, td.Debugger.variables, td.Debugger.scopes)

    def setUp(self):
        self.km, self.kc = start()
        self.seq = 0
        self.events = []

    def tearDown(self):
        stop(self.km, self.kc)

    def locals_of(self, frame):
        loc = self.variables(self.scopes(frame["id"])["Locals"])
        return {k: v["value"] for k, v in loc.items() if v["type"] != "tensor"}, loc

    def test_breakpoint_in_kernel_thread_next_continue(self):
        self.start_debugger()
        kpath = self.dump(KERNEL)
        lpath = self.dump(LAUNCH)
        # line 5 (`v = x[i] * a;`), only in thread 2 of block 1 (i = 6)
        bp = self.ok("setBreakpoints", {"source": {"path": kpath}, "breakpoints": [
            {"line": 5, "condition": "blockIdx.x == 1 && threadIdx.x == 2"}]})
        self.assertEqual([(b["verified"], b["line"]) for b in bp["breakpoints"]], [(True, 5)])
        self.assertEqual(self.kc.execute_interactive(KERNEL, timeout=TIMEOUT)["content"]["status"], "ok")
        msg_id = self.kc.execute(LAUNCH)
        ev, frames = self.stopped_at()
        self.assertEqual(ev["body"]["reason"], "breakpoint")
        self.assertEqual([(f["name"], f["line"], f["source"]["path"]) for f in frames[:2]],
                         [("scale2 [block (1,0,0) thread (2,0,0)]", 5, kpath), ("cell[2]", 2, lpath)])
        plain, loc = self.locals_of(frames[0])
        self.assertEqual(plain, {"threadIdx": "(2, 0, 0)", "blockIdx": "(1, 0, 0)", "blockDim": "(4, 1, 1)",
                                 "gridDim": "(2, 1, 1)", "a": "3", "n": "8", "i": "6", "v": "0"})
        self.assertEqual((loc["i"]["type"], loc["v"]["type"], loc["a"]["type"]), ("int", "float", "float"))
        # the pointer arguments are tensors: their contents now (threads 0 and 1 of block 1
        # ran before thread 2; thread 2 has not written y[6] yet)
        self.assertEqual(loc["y"]["type"], "tensor")
        kids = self.variables(loc["y"]["variablesReference"])
        self.assertEqual((kids["shape"]["value"], kids["dtype"]["value"]), ("[8]", "f32"))
        vals = self.variables(kids["values"]["variablesReference"], start=4, count=3)
        self.assertEqual([v["value"] for v in vals.values()], ["13", "16", "0"])
        xs = self.variables(self.variables(loc["x"]["variablesReference"])["values"]["variablesReference"],
                            start=6, count=1)
        self.assertEqual([v["value"] for v in xs.values()], ["6"])
        # the launching cell's frame still shows the host's locals and globals
        glob = self.variables(self.scopes(frames[1]["id"])["Globals"])
        self.assertEqual((glob["x"]["type"], glob["y"]["type"]), ("tensor", "tensor"))
        # the debug console: host code runs against the globals; a launch is refused
        self.assertEqual(self.ok("evaluate", {"expression": "x.sum().item()", "frameId": frames[0]["id"]})["result"],
                         "28.0")
        bad = self.dap("evaluate", {"expression": "scale2<<<1, 1>>>(y, x, 1.0, 1);", "frameId": frames[1]["id"]})
        self.assertFalse(bad["success"])
        self.assertIn("stopped inside one", bad["message"])
        # next: line 6 with v computed, then the function's end (line 7 is a block's end)
        self.ok("next", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual((ev["body"]["reason"], frames[0]["line"]), ("step", 6))
        self.assertEqual(self.locals_of(frames[0])[0]["v"], "18")
        self.ok("next", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual(frames[0]["line"], 8)
        y_now = self.variables(self.variables(self.locals_of(frames[0])[1]["y"]["variablesReference"])["values"][
            "variablesReference"], start=6, count=1)
        self.assertEqual([v["value"] for v in y_now.values()], ["19"])
        # next off the kernel's end: the launch finishes, the cell stops at its next line
        self.ok("next", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual([(f["name"], f["line"]) for f in frames], [("cell[2]", 3)])
        self.ok("continue", {"threadId": 1})
        reply = shell_reply(self.kc, msg_id)
        self.assertEqual(reply["content"]["status"], "ok")
        # every thread's result, as without the debugger
        r = self.kc.execute_interactive("print(max(abs(y - (3 * x + 1))).item())", timeout=TIMEOUT)
        self.assertEqual(r["content"]["status"], "ok")
        # cleared: the launch runs through
        self.ok("setBreakpoints", {"source": {"path": kpath}, "breakpoints": []})
        r = self.kc.execute_interactive("scale2<<<2, 4>>>(y, x, 2.0, 8);", timeout=TIMEOUT)
        self.assertEqual(r["content"]["status"], "ok")

    def test_step_in_at_launch_enters_the_chosen_thread(self):
        self.start_debugger()
        self.assertEqual(self.kc.execute_interactive(KERNEL, timeout=TIMEOUT)["content"]["status"], "ok")
        self.assertEqual(self.kc.execute_interactive("%debug_thread 0 1", timeout=TIMEOUT)["content"]["status"],
                         "ok")
        lpath = self.dump(LAUNCH)
        self.ok("setBreakpoints", {"source": {"path": lpath}, "breakpoints": [{"line": 2}]})
        msg_id = self.kc.execute(LAUNCH)
        ev, frames = self.stopped_at()
        self.assertEqual([(f["name"], f["line"]) for f in frames], [("cell[3]", 2)])
        self.ok("stepIn", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual((frames[0]["name"], frames[0]["line"]), ("scale2 [block (0,0,0) thread (1,0,0)]", 2))
        self.ok("stepIn", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual((frames[0]["line"], self.locals_of(frames[0])[0]["i"]), (3, "1"))
        self.ok("continue", {"threadId": 1})
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "ok")

    def test_interrupt_while_stopped_in_kernel(self):
        self.start_debugger()
        kpath = self.dump(KERNEL)
        self.ok("setBreakpoints", {"source": {"path": kpath}, "breakpoints": [{"line": 3}]})
        self.kc.execute_interactive(KERNEL, timeout=TIMEOUT)
        msg_id = self.kc.execute(LAUNCH)
        ev, frames = self.stopped_at()
        self.assertEqual(frames[0]["name"], "scale2 [block (0,0,0) thread (0,0,0)]")
        self.km.interrupt_kernel()
        reply = shell_reply(self.kc, msg_id)
        self.assertEqual(reply["content"]["status"], "error")
        self.assertEqual(reply["content"]["ename"], "Interrupted")
        # the session lives; y is as before the launch (a stopped launch writes nothing)
        self.ok("setBreakpoints", {"source": {"path": kpath}, "breakpoints": []})
        self.assertEqual(self.ok("evaluate", {"expression": "y.sum().item() + 0.5"})["result"], "0.5")
        r = self.kc.execute_interactive("scale2<<<2, 4>>>(y, x, 2.0, 8);", timeout=TIMEOUT)
        self.assertEqual(r["content"]["status"], "ok")
        self.assertEqual(self.ok("evaluate", {"expression": "y.sum().item()"})["result"], "64.0")

    def test_condition_on_locals_in_the_chosen_thread(self):
        code = ("__global__ void acc(float *out, const float *x, int n) {\n"
                "    float s = 0.0f;\n"
                "    for (int j = 0; j < n; j++) {\n"
                "        s += x[j] * (threadIdx.x + 1);\n"
                "    }\n"
                "    out[threadIdx.x] = s;\n"
                "}")
        run = "tensor xs = arange(4).to(f32), o = zeros(2);\nacc<<<1, 2>>>(o, xs, 4);"
        self.start_debugger()
        kpath = self.dump(code)
        self.kc.execute_interactive(code, timeout=TIMEOUT)
        self.ok("setBreakpoints", {"source": {"path": kpath}, "breakpoints": [
            {"line": 4, "condition": "threadIdx.x == 1 && j >= 2"}]})
        msg_id = self.kc.execute(run)
        seen = []
        for _ in range(2):
            ev, frames = self.stopped_at()
            self.assertEqual(frames[0]["name"], "acc [block (0,0,0) thread (1,0,0)]")
            loc = self.locals_of(frames[0])[0]
            seen.append((frames[0]["line"], loc["j"], loc["s"]))
            self.ok("continue", {"threadId": 1})
        self.assertEqual(seen, [(4, "2", "2"), (4, "3", "6")])
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "ok")
        # a condition the kernel cannot evaluate stops and says why
        self.ok("setBreakpoints", {"source": {"path": kpath}, "breakpoints": [
            {"line": 4, "condition": "nosuch > 1"}]})
        msg_id = self.kc.execute("acc<<<1, 2>>>(o, xs, 4);")
        ev, frames = self.stopped_at()
        self.assertIn("'nosuch' is not in scope", ev["body"]["description"])
        self.assertEqual(frames[0]["name"], "acc [block (0,0,0) thread (0,0,0)]")
        self.ok("setBreakpoints", {"source": {"path": kpath}, "breakpoints": []})
        self.ok("continue", {"threadId": 1})
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "ok")

    def test_device_function_frame_and_its_caller(self):
        code = ("__device__ float twice(float v) {\n"
                "    float r = 2 * v;\n"
                "    return r;\n"
                "}\n"
                "__global__ void tw(float *y, int n) {\n"
                "    int i = threadIdx.x;\n"
                "    y[i] = twice(i + 0.5f);\n"
                "}")
        self.start_debugger()
        kpath = self.dump(code)
        self.kc.execute_interactive(code, timeout=TIMEOUT)
        self.ok("setBreakpoints", {"source": {"path": kpath}, "breakpoints": [
            {"line": 3, "condition": "threadIdx.x == 2"}]})
        msg_id = self.kc.execute("tensor yy = zeros(4);\ntw<<<1, 4>>>(yy, 4);\nfloat total = yy.sum().item();")
        ev, frames = self.stopped_at()
        self.assertEqual([(f["name"], f["line"]) for f in frames[:3]],
                         [("twice", 3), ("tw [block (0,0,0) thread (2,0,0)]", 7), ("cell[2]", 2)])
        inner = self.locals_of(frames[0])[0]
        self.assertEqual((inner["v"], inner["r"], inner["threadIdx"]), ("2.5", "5", "(2, 0, 0)"))
        plain, loc = self.locals_of(frames[1])  # the kernel's frame, as at its call
        self.assertEqual((plain["i"], plain["n"], loc["y"]["type"]), ("2", "4", "tensor"))
        # stepOut: back in the kernel, at its closing line with y[2] written
        self.ok("stepOut", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual((frames[0]["name"], frames[0]["line"]), ("tw [block (0,0,0) thread (2,0,0)]", 8))
        ys = self.variables(self.variables(self.locals_of(frames[0])[1]["y"]["variablesReference"])["values"][
            "variablesReference"], start=2, count=1)
        self.assertEqual([v["value"] for v in ys.values()], ["5"])
        # stepOut of the kernel: the launch finishes, the cell stops at its next statement
        self.ok("stepOut", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual([(f["name"], f["line"]) for f in frames], [("cell[2]", 3)])
        self.ok("continue", {"threadId": 1})
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "ok")


if __name__ == "__main__":
    unittest.main()
