"""The Jupyter debug protocol (docs/debugger.md) through jupyter_client: DAP requests in
debug_request on the control channel, debug_event on IOPub, against the real kernel.

The flow is JupyterLab's: initialize, attach, debugInfo, dumpCell, setBreakpoints,
configurationDone; a cell that calls a function defined in an earlier cell stops on the
function's breakpoint; stackTrace, scopes, variables (a tensor expanded), evaluate in
a frame, next / stepIn / stepOut, continue; clearing breakpoints; an interrupt while
stopped; debug requests answered while stopped."""
import time
import unittest
from queue import Empty

from kiln_testing import TIMEOUT, run, shell_reply, start, stop

SEED = 0xC70F6907


def murmur2(data: bytes, seed: int) -> int:
    """Murmur2 x86 32-bit, as JupyterLab computes a cell's path."""
    m, h = 0x5BD1E995, (seed ^ len(data)) & 0xFFFFFFFF
    end = len(data) & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = len(data) & 3
    if rest:
        k = 0
        for j in range(rest - 1, -1, -1):
            k = (k << 8) | data[end + j]
        h = ((h ^ k) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


DEFINE = """\
float scale(float x, int times) {
    float acc = x;
    for (int i = 0; i < times; i++) {
        acc = acc * 2;
    }
    tensor t = ones(2, 3) * acc;
    return acc + t.sum().item();
}
float outer(float y) {
    float z = scale(y, 2);
    return z + 1;
}"""

CALL = """\
int before = 5;
float r = outer(1.5);
int after = before + 1;
after"""


class Debugger(unittest.TestCase):
    def setUp(self):
        self.km, self.kc = start()
        self.seq = 0
        self.events = []

    def tearDown(self):
        stop(self.km, self.kc)

    # ---- helpers ----
    def dap(self, command, arguments=None, timeout=TIMEOUT):
        self.seq += 1
        msg = self.kc.session.msg("debug_request", {"type": "request", "seq": self.seq, "command": command,
                                                    "arguments": arguments or {}})
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                rep = self.kc.control_channel.get_msg(timeout=0.5)
            except Empty:
                continue
            if rep["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                self.assertEqual(rep["msg_type"], "debug_reply")
                c = rep["content"]
                self.assertEqual(c["type"], "response")
                self.assertEqual(c["request_seq"], self.seq)
                self.assertEqual(c["command"], command)
                return c
        raise TimeoutError(f"no debug_reply to {command}")

    def ok(self, command, arguments=None):
        c = self.dap(command, arguments)
        self.assertTrue(c["success"], f"{command} failed: {c.get('message')}")
        return c["body"]

    def event(self, name, timeout=TIMEOUT):
        """The next debug_event `name` on IOPub (others seen on the way are kept)."""
        for i, e in enumerate(self.events):
            if e["event"] == name:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except Empty:
                continue
            if msg["msg_type"] != "debug_event":
                continue
            if msg["content"]["event"] == name:
                return msg["content"]
            self.events.append(msg["content"])
        raise TimeoutError(f"no debug_event {name}")

    def start_debugger(self):
        body = self.ok("initialize", {"clientID": "test", "adapterID": "kiln", "linesStartAt1": True,
                                      "columnsStartAt1": True, "pathFormat": "path"})
        self.assertTrue(body["supportsConfigurationDoneRequest"])
        self.assertTrue(body["supportsConditionalBreakpoints"])
        self.assertEqual([f["filter"] for f in body["exceptionBreakpointFilters"]], ["raised"])
        self.event("initialized")
        self.ok("attach", {})
        info = self.ok("debugInfo")
        self.assertTrue(info["isStarted"])
        self.assertEqual(info["hashMethod"], "Murmur2")
        self.ok("configurationDone")
        return info

    def dump(self, code):
        return self.ok("dumpCell", {"code": code})["sourcePath"]

    def stopped_at(self):
        """After a stop: the stack's frames, innermost first."""
        ev = self.event("stopped")
        self.assertEqual(ev["body"]["threadId"], 1)
        frames = self.ok("stackTrace", {"threadId": 1})["stackFrames"]
        return ev, frames

    def variables(self, ref, **kw):
        return {v["name"]: v for v in self.ok("variables", {"variablesReference": ref, **kw})["variables"]}

    def scopes(self, frame_id):
        return {s["name"]: s["variablesReference"] for s in self.ok("scopes", {"frameId": frame_id})["scopes"]}

    # ---- tests ----
    def test_kernel_info_advertises_the_debugger(self):
        self.kc.kernel_info()
        rep = self.kc.get_shell_msg(timeout=TIMEOUT)["content"]
        self.assertTrue(rep["debugger"])
        self.assertIn("debugger", rep["supported_features"])

    def test_paths_and_breakpoints_match_jupyterlab_hash(self):
        info = self.start_debugger()
        code = "int x = 1;\nint y = x + 1;\n"
        path = self.dump(code)
        self.assertEqual(path, f"{info['tmpFilePrefix']}{murmur2(code.encode(), info['hashSeed'])}"
                               f"{info['tmpFileSuffix']}")
        self.assertEqual(info["hashSeed"], SEED)
        with open(path) as f:
            self.assertEqual(f.read(), code)
        # non-ASCII: UTF-8 bytes are hashed
        code2 = "string s = \"héllo → ü\";"
        self.assertEqual(self.dump(code2), f"{info['tmpFilePrefix']}{murmur2(code2.encode(), SEED)}.kn")
        # breakpoints are verified and moved to the next statement; blank lines after the end are not
        bps = self.ok("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": 2}, {"line": 9}]})
        self.assertEqual([(b["verified"], b["line"]) for b in bps["breakpoints"]], [(True, 2), (False, 9)])
        info = self.ok("debugInfo")
        self.assertEqual(info["breakpoints"], [{"source": path, "breakpoints": [{"line": 2}, {"line": 9}]}])
        self.assertEqual(self.ok("source", {"source": {"path": path}})["content"], code)
        self.assertEqual(self.ok("threads")["threads"], [{"id": 1, "name": "Kiln cell"}])
        c = self.dap("frobnicate")
        self.assertFalse(c["success"])
        self.assertIn("frobnicate", c["message"])

    def test_bad_requests_are_answered(self):
        self.start_debugger()
        self.kc.execute_interactive("int kept = 9;", timeout=TIMEOUT)
        for command, args in [("variables", {"variablesReference": 99999}),
                              ("variables", {"variablesReference": "x"}),
                              ("evaluate", {}),
                              ("evaluate", {"expression": "kept\u0000 + 1"}),
                              ("evaluate", {"expression": "int f( {"}),
                              ("richInspectVariables", {"variableName": 3}),
                              ("copyToGlobals", {"srcVariableName": "kept; kept = 0", "dstVariableName": "x"}),
                              ("source", {"source": {"path": "/nonexistent/kiln.kn"}}),
                              ("setBreakpoints", {"source": {}}),
                              ("dumpCell", {"code": 5}),
                              ("next", {"threadId": 1})]:
            c = self.dap(command, args)
            self.assertFalse(c["success"], (command, args, c))
            self.assertTrue(c["message"], (command, args))
        # odd but harmless arguments are answered normally
        self.assertEqual(self.ok("stackTrace", {"threadId": 1, "startFrame": -5, "levels": "all"})["stackFrames"], [])
        self.ok("setBreakpoints", {"source": {"path": "/nonexistent/kiln.kn"}, "breakpoints": "none"})
        bps = self.ok("setBreakpoints", {"source": {"path": "/nonexistent/kiln.kn"}, "breakpoints": [{"line": "x"}]})
        self.assertEqual(len(bps["breakpoints"]), 1)
        self.assertEqual(self.ok("evaluate", {"expression": "kept * 2"})["result"], "18")
        r = self.kc.execute_interactive("kept", timeout=TIMEOUT)
        self.assertEqual(r["content"]["status"], "ok")

    def test_stop_in_function_step_and_inspect(self):
        self.start_debugger()
        def_path = self.dump(DEFINE)
        call_path = self.dump(CALL)
        # a breakpoint in scale() at `acc = acc * 2;` (line 4), set before either cell ran
        self.ok("setBreakpoints", {"source": {"path": def_path}, "breakpoints": [{"line": 4}]})
        self.assertEqual(self.kc.execute_interactive(DEFINE, timeout=TIMEOUT)["content"]["status"], "ok")
        msg_id = self.kc.execute(CALL)
        ev, frames = self.stopped_at()
        self.assertEqual(ev["body"]["reason"], "breakpoint")
        self.assertEqual([(f["name"], f["line"], f["source"]["path"]) for f in frames],
                         [("scale", 4, def_path), ("outer", 10, def_path), ("cell[2]", 2, call_path)])
        # locals of scale: parameters, acc, and the loop's i; globals hold `before`
        sc = self.scopes(frames[0]["id"])
        loc = self.variables(sc["Locals"])
        self.assertEqual({k: (v["value"], v["type"]) for k, v in loc.items()},
                         {"x": ("1.5", "float"), "times": ("2", "int"), "acc": ("1.5", "float"), "i": ("0", "int")})
        glob = self.variables(sc["Globals"])
        self.assertEqual(glob["before"]["value"], "5")
        self.assertEqual(glob["scale"]["type"], "function")
        self.assertNotIn("after", glob)
        # the caller's frame sees its own locals
        self.assertEqual(self.variables(self.scopes(frames[1]["id"])["Locals"])["y"]["value"], "1.5")
        # evaluate in a frame's scope, in another frame's, and in the globals
        ev1 = self.ok("evaluate", {"expression": "acc * times + i", "frameId": frames[0]["id"], "context": "repl"})
        self.assertEqual((ev1["result"], ev1["type"]), ("3.0", "float"))
        self.assertEqual(self.ok("evaluate", {"expression": "y + 1", "frameId": frames[1]["id"]})["result"], "2.5")
        bad = self.dap("evaluate", {"expression": "nope + 1", "frameId": frames[0]["id"]})
        self.assertFalse(bad["success"])
        self.assertIn("nope", bad["message"])
        # continue: the breakpoint is hit again on the second iteration, i is 1
        self.ok("continue", {"threadId": 1})
        self.event("continued")
        ev, frames = self.stopped_at()
        loc = self.variables(self.scopes(frames[0]["id"])["Locals"])
        self.assertEqual((loc["i"]["value"], loc["acc"]["value"]), ("1", "3.0"))
        # next: over the loop's end to `tensor t = ...` (line 6), then to the return
        self.ok("next", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual((ev["body"]["reason"], frames[0]["line"]), ("step", 6))
        self.ok("next", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual(frames[0]["line"], 7)
        # a tensor expands to shape, dtype, device, statistics and its values (paged)
        t = self.variables(self.scopes(frames[0]["id"])["Locals"])["t"]
        self.assertEqual(t["type"], "tensor")
        self.assertGreater(t["variablesReference"], 0)
        kids = self.variables(t["variablesReference"])
        self.assertEqual(kids["shape"]["value"], "[2, 3]")
        self.assertEqual(kids["dtype"]["value"], "f32")
        self.assertEqual(kids["device"]["value"], "cpu")
        self.assertEqual((kids["min"]["value"], kids["max"]["value"], kids["mean"]["value"], kids["std"]["value"]),
                         ("6", "6", "6", "0"))
        vals = self.variables(kids["values"]["variablesReference"], start=2, count=3)
        self.assertEqual(list(vals), ["[0, 2]", "[1, 0]", "[1, 1]"])
        self.assertEqual(vals["[1, 0]"]["value"], "6")
        rich = self.ok("richInspectVariables", {"variableName": "t", "frameId": frames[0]["id"]})
        self.assertIn("<table", rich["data"]["text/html"])
        self.assertIn("6", rich["data"]["text/plain"])
        # evaluate changes a local in the frame: scale() returns 10 + 36
        self.assertEqual(self.ok("evaluate", {"expression": "acc = 10;", "frameId": frames[0]["id"]})["result"], "")
        # stepOut: back in outer(), at `return z + 1;`
        self.ok("stepOut", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual([(f["name"], f["line"]) for f in frames[:1]], [("outer", 11)])
        self.assertEqual(self.variables(self.scopes(frames[0]["id"])["Locals"])["z"]["value"], "46.0")
        # copyToGlobals: a local becomes a global
        self.ok("copyToGlobals", {"srcVariableName": "z", "dstVariableName": "z_copy", "srcFrameId": frames[0]["id"]})
        # stepOut again: into the cell at its next statement
        self.ok("stepOut", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual([(f["name"], f["line"]) for f in frames], [("cell[2]", 3)])
        # stepIn from the cell: the next statement (no call on it)
        self.ok("stepIn", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual(frames[0]["line"], 4)
        self.ok("continue", {"threadId": 1})
        reply = shell_reply(self.kc, msg_id)
        self.assertEqual(reply["content"]["status"], "ok")
        # the state is intact and the copy exists
        r = self.kc.execute_interactive("z_copy + after", timeout=TIMEOUT)
        self.assertEqual(r["content"]["status"], "ok")
        # idle: inspectVariables lists the globals
        names = {v["name"]: v for v in self.ok("inspectVariables")["variables"]}
        self.assertEqual(names["r"]["value"], "47.0")
        self.assertEqual(names["z_copy"]["value"], "46.0")
        # clearing the breakpoints: the call runs through
        self.ok("setBreakpoints", {"source": {"path": def_path}, "breakpoints": []})
        self.assertEqual(self.ok("debugInfo")["breakpoints"], [])
        r = self.kc.execute_interactive("outer(1.5)", timeout=TIMEOUT)
        self.assertEqual(r["content"]["status"], "ok")

    def test_step_in_enters_the_call(self):
        self.start_debugger()
        self.kc.execute_interactive(DEFINE, timeout=TIMEOUT)
        path = self.dump(CALL)
        self.ok("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": 2}]})
        msg_id = self.kc.execute(CALL)
        ev, frames = self.stopped_at()
        self.assertEqual(frames[0]["line"], 2)
        self.ok("stepIn", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual([(f["name"], f["line"]) for f in frames[:2]], [("outer", 10), ("cell[2]", 2)])
        self.ok("stepIn", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual((frames[0]["name"], frames[0]["line"]), ("scale", 2))
        self.ok("continue", {"threadId": 1})
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "ok")

    def test_conditional_and_hit_count_breakpoints(self):
        self.start_debugger()
        code = "int total = 0;\nfor (int k = 0; k < 10; k++) {\n    total += k;\n}\ntotal"
        path = self.dump(code)
        self.ok("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": 3, "condition": "k == 7"}]})
        msg_id = self.kc.execute(code)
        ev, frames = self.stopped_at()
        loc = self.variables(self.scopes(frames[0]["id"])["Locals"])
        self.assertEqual(loc["k"]["value"], "7")
        self.assertEqual(self.ok("evaluate", {"expression": "total", "frameId": frames[0]["id"]})["result"], "21")
        self.ok("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": 3, "hitCondition": "2"}]})
        self.ok("continue", {"threadId": 1})
        ev, frames = self.stopped_at()  # the 2nd hit since the breakpoint was set: k == 9
        loc = self.variables(self.scopes(frames[0]["id"])["Locals"])
        self.assertEqual(loc["k"]["value"], "9")
        self.ok("continue", {"threadId": 1})
        rep = shell_reply(self.kc, msg_id)
        self.assertEqual(rep["content"]["status"], "ok")

    def test_log_points_print_without_stopping(self):
        self.start_debugger()
        code = "int total = 0;\nfor (int k = 0; k < 3; k++) {\n    total += k;\n}\ntotal"
        path = self.dump(code)
        self.ok("setBreakpoints", {"source": {"path": path}, "breakpoints": [
            {"line": 3, "logMessage": "k={k} total={total} twice={total * 2} bad={nope} {unclosed"}]})
        ran = run(self.kc, code)
        self.assertEqual(ran.status, "ok")
        self.assertEqual(ran.result, "3")
        lines = ran.stream().splitlines()
        self.assertEqual([l.split(" bad=")[0] for l in lines], ["k=0 total=0 twice=0", "k=1 total=0 twice=0",
                                                                  "k=2 total=1 twice=2"])
        self.assertIn("nope", lines[0])
        self.assertTrue(lines[0].endswith("{unclosed"))
        self.assertEqual(ran.of_type("debug_event"), [])  # no stop (it would also hang the cell)

    def test_stop_on_errors(self):
        self.start_debugger()
        self.kc.execute_interactive("tensor mix(tensor a, int n) {\n    tensor b = ones(n, 3);\n"
                                    "    return a @ b;\n}", timeout=TIMEOUT)
        c = self.dap("exceptionInfo", {"threadId": 1})
        self.assertFalse(c["success"])
        bps = self.ok("setExceptionBreakpoints", {"filters": ["raised"]})["breakpoints"]
        self.assertEqual(bps, [{"verified": True}])
        msg_id = self.kc.execute("int keep = 1;\ntensor r = mix(ones(2, 3), 2);\nkeep = 2;")
        ev, frames = self.stopped_at()
        self.assertEqual(ev["body"]["reason"], "exception")
        self.assertIn("ShapeError", ev["body"]["description"])
        self.assertEqual([(f["name"], f["line"]) for f in frames[:2]], [("mix", 3), ("cell[2]", 2)])
        loc = self.variables(self.scopes(frames[0]["id"])["Locals"])
        self.assertEqual(set(loc), {"a", "n", "b"})
        info = self.ok("exceptionInfo", {"threadId": 1})
        self.assertEqual(info["exceptionId"], "ShapeError")
        self.assertEqual(info["breakMode"], "always")
        # continuing lets the error end the cell as usual; the rest of the cell does not run
        self.ok("continue", {"threadId": 1})
        rep = shell_reply(self.kc, msg_id)["content"]
        self.assertEqual((rep["status"], rep["ename"]), ("error", "ShapeError"))
        self.assertEqual(self.ok("evaluate", {"expression": "keep"})["result"], "1")
        # filters off: the same error fails the cell without a stop
        self.ok("setExceptionBreakpoints", {"filters": []})
        rep = self.kc.execute_interactive("mix(ones(2, 3), 2)", timeout=TIMEOUT)["content"]
        self.assertEqual(rep["ename"], "ShapeError")

    def test_interrupt_while_stopped_and_requests_while_stopped(self):
        self.start_debugger()
        code = "int kept = 41;\nkept = kept + 1;\nkept = 0;"
        path = self.dump(code)
        self.ok("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": 3}]})
        msg_id = self.kc.execute(code)
        ev, frames = self.stopped_at()
        # the control channel keeps answering: kernel_info, more debug requests
        ki = self.kc.session.msg("kernel_info_request", {})
        self.kc.control_channel.send(ki)
        rep = self.kc.control_channel.get_msg(timeout=TIMEOUT)
        self.assertEqual(rep["msg_type"], "kernel_info_reply")
        self.assertEqual(self.ok("debugInfo")["stoppedThreads"], [1])
        self.assertEqual(self.ok("evaluate", {"expression": "kept", "frameId": frames[0]["id"]})["result"], "42")
        # continuing is refused while running, not while stopped; pause is accepted
        self.kc.control_channel.send(self.kc.session.msg("interrupt_request", {}))
        self.assertEqual(self.kc.control_channel.get_msg(timeout=TIMEOUT)["msg_type"], "interrupt_reply")
        rep = shell_reply(self.kc, msg_id)
        self.assertEqual(rep["content"]["status"], "error")
        self.assertEqual(rep["content"]["ename"], "Interrupted")
        # the statement after the stop never ran; the state is kept
        r = self.kc.execute_interactive("kept", timeout=TIMEOUT, store_history=False)
        self.assertEqual(r["content"]["status"], "ok")
        names = {v["name"]: v["value"] for v in self.ok("inspectVariables")["variables"]}
        self.assertEqual(names["kept"], "42")
        c = self.dap("continue", {"threadId": 1})
        self.assertFalse(c["success"])

    def test_pause_and_disconnect(self):
        self.start_debugger()
        msg_id = self.kc.execute("int n = 0;\nwhile (true) {\n    n++;\n}")
        time.sleep(0.3)
        # while running, engine queries are refused at once (not stopped)
        c = self.dap("stackTrace", {"threadId": 1})
        self.assertFalse(c["success"])
        self.ok("pause", {"threadId": 1})
        ev, frames = self.stopped_at()
        self.assertEqual(ev["body"]["reason"], "pause")
        self.assertIn(frames[0]["line"], (2, 3))
        # disconnect lets the cell go on; then an interrupt ends it
        self.ok("disconnect", {"restart": False, "terminateDebuggee": False})
        self.event("terminated")
        self.event("continued")
        self.kc.control_channel.send(self.kc.session.msg("interrupt_request", {}))
        rep = shell_reply(self.kc, msg_id)
        self.assertEqual(rep["content"]["ename"], "Interrupted")
        self.assertFalse(self.ok("debugInfo")["isStarted"])


class DebuggerEvaluateLoops(unittest.TestCase):
    """An evaluation that never ends, while idle: the control thread's wait for it is
    bounded (KILN_DEBUG_WAIT_S), then an interrupt stops it and the session goes on."""

    def test_interrupt_a_looping_evaluation(self):
        import os
        km, kc = start(env={**os.environ, "KILN_DEBUG_WAIT_S": "2"})
        try:
            kc.execute_interactive("int kept = 3;", timeout=TIMEOUT)
            msg = kc.session.msg("debug_request", {"type": "request", "seq": 1, "command": "evaluate",
                                                   "arguments": {"expression": "while (true) { kept = kept; }"}})
            kc.control_channel.send(msg)
            rep = kc.control_channel.get_msg(timeout=TIMEOUT)["content"]
            self.assertFalse(rep["success"])
            self.assertIn("no answer within 2 s", rep["message"])
            kc.control_channel.send(kc.session.msg("interrupt_request", {}))
            self.assertEqual(kc.control_channel.get_msg(timeout=TIMEOUT)["msg_type"], "interrupt_reply")
            r = kc.execute_interactive("kept + 1", timeout=TIMEOUT)
            self.assertEqual(r["content"]["status"], "ok")
            # the interrupt ended the evaluation, not the next cell
            r = kc.execute_interactive("int later = kept * 2;", timeout=TIMEOUT)
            self.assertEqual(r["content"]["status"], "ok")
        finally:
            stop(km, kc)


if __name__ == "__main__":
    unittest.main()
