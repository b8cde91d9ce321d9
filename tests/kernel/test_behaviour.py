"""The Kiln kernel driven by jupyter_client: state across cells, errors, interrupts
(interrupt_request and SIGINT), stop_on_error, stdin, silent and store_history,
user_expressions, complete/inspect/is_complete, comms, history, heartbeat, the ipc
transport, shutdown and restart, and resident memory over 1,000 executes."""
import os
import signal
import tempfile
import time
import unittest
from queue import Empty

from kiln_testing import (TIMEOUT, SharedKernel, iopub_until_idle, kernel_pid, manager, rss_kib, run,
                          shell_reply, start, stop, wait_busy)

LONG_LOOP = "int s = 0; for (int i = 0; i < 2000000000; i++) s += i;"
FOREVER = "while (true) { }"


class TestCells(SharedKernel):
    def test_state_across_cells(self):
        self.assertEqual(run(self.kc, "int x = 3;").status, "ok")
        r = run(self.kc, "x + 1")
        self.assertEqual(r.status, "ok")
        self.assertEqual(r.result, "4")
        self.assertEqual(r.of_type("execute_result")[0]["content"]["execution_count"],
                         r.content["execution_count"])

    def test_print_and_stderr(self):
        r = run(self.kc, 'int v = 5; print(v); printf("%d\\n", v); fprintf(stderr, "oops\\n");')
        self.assertEqual(r.status, "ok")
        self.assertEqual(r.stream("stdout"), "5\n5\n")
        self.assertEqual(r.stream("stderr"), "oops\n")

    def test_display_update_clear(self):
        r = run(self.kc, 'display(1, "d1"); update_display(2, "d1"); clear_output(true);')
        self.assertEqual(r.status, "ok")
        self.assertEqual([m["msg_type"] for m in r.outputs],
                         ["display_data", "update_display_data", "clear_output"])
        shown, updated, cleared = (m["content"] for m in r.outputs)
        self.assertEqual(shown["transient"], {"display_id": "d1"})
        self.assertEqual(updated["transient"], {"display_id": "d1"})
        self.assertEqual(updated["data"]["text/plain"], "2")
        self.assertIs(cleared["wait"], True)

    def test_stream_coalesced_and_ordered(self):
        r = run(self.kc, 'for (int i = 0; i < 2000; i++) printf("%d\\n", i); '
                         'fprintf(stderr, "e\\n"); print("end");')
        self.assertEqual(r.stream("stdout"), "".join(f"{i}\n" for i in range(2000)) + "end\n")
        self.assertLess(len(r.of_type("stream")), 50)
        names = [m["content"]["name"] for m in r.of_type("stream")]
        self.assertEqual(names[-2:], ["stderr", "stdout"])

    def test_error_keeps_state(self):
        run(self.kc, "int kept = 11;")
        r = run(self.kc, "kept + no_such_name")
        self.assertEqual(r.status, "error")
        self.assertEqual(len(r.errors), 1, r)
        err = r.errors[0]["content"]
        for key in ("ename", "evalue", "traceback"):
            self.assertEqual(err[key], r.content[key])
        self.assertTrue(err["traceback"], "the traceback is empty")
        self.assertEqual(run(self.kc, "kept").result, "11")

    def test_execution_count(self):
        a = run(self.kc, "1;").content["execution_count"]
        b = run(self.kc, "2;").content["execution_count"]
        self.assertEqual(b, a + 1)
        c = run(self.kc, "3;", store_history=False).content["execution_count"]
        d = run(self.kc, "4;").content["execution_count"]
        self.assertEqual(d, b + 1, (a, b, c, d))

    def test_silent(self):
        msg_id = self.kc.execute('print("hidden"); 1 + 1', silent=True)
        msgs = iopub_until_idle(self.kc, msg_id)
        reply = shell_reply(self.kc, msg_id)
        self.assertEqual(reply["content"]["status"], "ok")
        self.assertEqual([m["msg_type"] for m in msgs], ["status", "status"], msgs)

    def test_user_expressions(self):
        run(self.kc, "int ue = 20;")
        r = run(self.kc, "ue = ue + 1;", user_expressions={"a": "ue * 2", "b": "nope_nope"})
        ue = r.content["user_expressions"]
        self.assertEqual(ue["a"]["status"], "ok")
        self.assertEqual(ue["a"]["data"]["text/plain"], "42")
        self.assertEqual(ue["b"]["status"], "error")
        self.assertTrue(ue["b"]["ename"])
        self.assertEqual(r.outputs, [])

    def test_complete_inspect_is_complete(self):
        run(self.kc, "tensor my_tensor = zeros(2, 3);")
        reply = self.kc.complete("my_te", 5, reply=True, timeout=TIMEOUT)["content"]
        self.assertIn("my_tensor", reply["matches"])
        self.assertEqual((reply["cursor_start"], reply["cursor_end"]), (0, 5))
        # cursor positions count code points, not bytes
        code = '"é"; my_te'
        reply = self.kc.complete(code, len(code), reply=True, timeout=TIMEOUT)["content"]
        self.assertIn("my_tensor", reply["matches"])
        self.assertEqual(reply["cursor_end"], len(code))
        reply = self.kc.inspect("my_tensor", 9, reply=True, timeout=TIMEOUT)["content"]
        self.assertTrue(reply["found"])
        self.assertIn("tensor", reply["data"]["text/plain"])
        reply = self.kc.inspect("zzz_unknown", 3, reply=True, timeout=TIMEOUT)["content"]
        self.assertFalse(reply["found"])
        msg_id = self.kc.is_complete("for (int i = 0; i < 3; i++) {")
        reply = shell_reply(self.kc, msg_id)["content"]
        self.assertEqual(reply["status"], "incomplete")
        self.assertIn("indent", reply)

    def test_history(self):
        run(self.kc, "int hist_marker = 1;")
        run(self.kc, "hist_marker + 41")
        h = self.kc.history(hist_access_type="tail", n=2, output=True, raw=True, reply=True,
                            timeout=TIMEOUT)["content"]["history"]
        self.assertEqual([e[2][0] for e in h], ["int hist_marker = 1;", "hist_marker + 41"])
        self.assertEqual(h[1][2][1], "42")
        h = self.kc.history(hist_access_type="search", pattern="int hist_marker*", raw=True,
                            output=False, reply=True, timeout=TIMEOUT)["content"]["history"]
        self.assertEqual(len(h), 1)
        line = h[0][1]
        h = self.kc.history(hist_access_type="range", session=0, start=line, stop=line + 2,
                            raw=True, output=False, reply=True, timeout=TIMEOUT)["content"]
        self.assertEqual([e[2] for e in h["history"]], ["int hist_marker = 1;", "hist_marker + 41"])

    def test_comms(self):
        reply = self.kc.comm_info(reply=True, timeout=TIMEOUT)["content"]
        self.assertEqual(reply, {"status": "ok", "comms": {}})
        msg = self.kc.session.msg("comm_open", {"comm_id": "c-1", "target_name": "nobody",
                                                "data": {}})
        self.kc.shell_channel.send(msg)
        msgs = iopub_until_idle(self.kc, msg["header"]["msg_id"])
        closes = [m for m in msgs if m["msg_type"] == "comm_close"]
        self.assertEqual(len(closes), 1)
        self.assertEqual(closes[0]["content"]["comm_id"], "c-1")

    def test_kernel_info(self):
        reply = self.kc.kernel_info(reply=True, timeout=TIMEOUT)["content"]
        self.assertEqual(reply["implementation"], "kiln")
        self.assertEqual(reply["protocol_version"], "5.3")
        li = reply["language_info"]
        self.assertEqual((li["name"], li["mimetype"], li["file_extension"], li["pygments_lexer"],
                          li["codemirror_mode"]),
                         ("kiln", "text/x-csrc", ".kn", "c", "text/x-csrc"))
        self.assertTrue(reply["banner"])
        self.assertIn("help_links", reply)

    def test_heartbeat(self):
        # start_new_kernel started the heartbeat channel; it pings every 3 s by default
        time.sleep(1.0)
        self.assertTrue(self.kc.hb_channel.is_alive())
        self.assertTrue(self.kc.hb_channel.is_beating())

    def test_stdin(self):
        msg_id = self.kc.execute('string name = input("name? "); print(name);', allow_stdin=True)
        req = self.kc.get_stdin_msg(timeout=TIMEOUT)
        self.assertEqual(req["msg_type"], "input_request")
        self.assertEqual(req["parent_header"]["msg_id"], msg_id)
        self.assertEqual(req["content"]["prompt"], "name? ")
        self.kc.input("kiln")
        msgs = iopub_until_idle(self.kc, msg_id)
        out = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
        self.assertIn("kiln", out)
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "ok")

    def test_stdin_not_allowed(self):
        r = run(self.kc, 'string nm = input("x");', allow_stdin=False)
        self.assertEqual(r.status, "error")
        self.assertEqual(len(r.errors), 1)


class TestInterrupt(SharedKernel):
    def interrupt_case(self, code, how):
        run(self.kc, "int before = 7;")
        msg_id = self.kc.execute(code)
        wait_busy(self.kc, msg_id)
        time.sleep(0.3)
        t0 = time.monotonic()
        if how == "message":
            self.km.interrupt_kernel()  # interrupt_mode "message": interrupt_request on control
        else:
            self.km.signal_kernel(signal.SIGINT)
        reply = shell_reply(self.kc, msg_id, timeout=10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(reply["content"]["status"], "error")
        self.assertIn("interrupt", reply["content"]["ename"].lower())
        self.assertTrue(self.km.is_alive())
        self.assertEqual(run(self.kc, "before").result, "7")
        self.assertEqual(run(self.kc, "before + 1").result, "8")

    def test_interrupt_request(self):
        self.interrupt_case(LONG_LOOP, "message")

    def test_sigint(self):
        self.interrupt_case(LONG_LOOP, "signal")

    def test_interrupt_while_true(self):
        self.interrupt_case(FOREVER, "message")

    def test_sigint_while_true(self):
        self.interrupt_case(FOREVER, "signal")

    def test_control_answers_while_running(self):
        msg_id = self.kc.execute(LONG_LOOP)
        wait_busy(self.kc, msg_id)
        t0 = time.monotonic()
        msg = self.kc.session.msg("kernel_info_request", {})
        self.kc.control_channel.send(msg)
        reply = self.kc.get_control_msg(timeout=5)
        self.assertEqual(reply["msg_type"], "kernel_info_reply")
        self.assertLess(time.monotonic() - t0, 2)
        self.km.interrupt_kernel()
        self.assertEqual(shell_reply(self.kc, msg_id)["content"]["status"], "error")

    def test_interrupt_when_idle_is_harmless(self):
        self.km.interrupt_kernel()
        time.sleep(0.2)
        self.assertEqual(run(self.kc, "2 + 2").result, "4")


class TestStopOnError(SharedKernel):
    def test_queued_cells_are_aborted(self):
        run(self.kc, "int counter = 0;")
        slow = self.kc.execute("for (int i = 0; i < 3000000; i++) { } counter = counter + 1;")
        bad = self.kc.execute("counter = counter + no_such_name;")
        queued = [self.kc.execute("counter = counter + 100;") for _ in range(2)]
        self.assertEqual(shell_reply(self.kc, slow)["content"]["status"], "ok")
        self.assertEqual(shell_reply(self.kc, bad)["content"]["status"], "error")
        for q in queued:
            reply = shell_reply(self.kc, q)["content"]
            self.assertEqual(reply["status"], "error")
            self.assertEqual(reply["ename"], "ExecutionAborted")
        self.assertEqual(run(self.kc, "counter").result, "1")  # the queued cells never ran
        self.assertEqual(run(self.kc, "counter + 1").result, "2")  # and the next one runs

    def test_no_abort_without_stop_on_error(self):
        run(self.kc, "int c2 = 0;")
        bad = self.kc.execute("c2 = c2 + no_such_name;", stop_on_error=False)
        nxt = self.kc.execute("c2 = c2 + 5;")
        self.assertEqual(shell_reply(self.kc, bad)["content"]["status"], "error")
        self.assertEqual(shell_reply(self.kc, nxt)["content"]["status"], "ok")
        self.assertEqual(run(self.kc, "c2").result, "5")


class TestLifecycle(unittest.TestCase):
    def test_shutdown_exits_cleanly(self):
        km, kc = start()
        proc = km.provisioner.process
        run(kc, "int z = 1;")
        kc.shutdown()
        reply = kc.get_control_msg(timeout=TIMEOUT)
        self.assertEqual(reply["msg_type"], "shutdown_reply")
        self.assertEqual(proc.wait(timeout=5), 0)
        kc.stop_channels()
        km.cleanup_resources()

    def test_shutdown_while_running(self):
        km, kc = start()
        proc = km.provisioner.process
        msg_id = kc.execute(FOREVER)
        wait_busy(kc, msg_id)
        kc.shutdown()
        self.assertEqual(proc.wait(timeout=5), 0)
        kc.stop_channels()
        km.cleanup_resources()

    def test_restart(self):
        km, kc = start()
        try:
            run(kc, "int gone = 5;")
            old = kernel_pid(km)
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=TIMEOUT)
            self.assertNotEqual(kernel_pid(km), old)
            r = run(kc, "gone")
            self.assertEqual(r.status, "error")  # a restart is a new process
            self.assertEqual(run(kc, "1 + 1").result, "2")
        finally:
            stop(km, kc)

    def test_ipc_transport(self):
        km = manager(transport="ipc")
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=TIMEOUT)
            self.assertEqual(run(kc, "3 * 3").result, "9")
        finally:
            stop(km, kc)

    def test_empty_key_means_unsigned(self):
        km = manager()
        km.session.key = b""
        with tempfile.NamedTemporaryFile(prefix="kiln-nokey-", suffix=".log") as log:
            km.start_kernel(stderr=log)
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=TIMEOUT)
                self.assertEqual(run(kc, "20 + 22").result, "42")
                with open(log.name) as f:
                    self.assertIn("empty key", f.read())
            finally:
                stop(km, kc)

    def test_memory_bounded_over_1000_executes(self):
        km, kc = start()
        with open(f"/proc/{kernel_pid(km)}/maps") as f:
            if "libasan" in f.read():
                stop(km, kc)
                self.skipTest("AddressSanitizer's quarantine keeps freed memory resident")
        try:
            run(kc, "int m = 0;")
            for _ in range(100):
                run(kc, "m = m + 1; m")
            base = rss_kib(kernel_pid(km))
            for _ in range(1000):
                run(kc, "m = m + 1; m")
            grown = rss_kib(kernel_pid(km)) - base
            self.assertEqual(run(kc, "m").result, "1100")
            self.assertLess(grown, 8 * 1024, f"RSS grew by {grown} KiB over 1,000 executes")
        finally:
            stop(km, kc)


if __name__ == "__main__":
    unittest.main()
