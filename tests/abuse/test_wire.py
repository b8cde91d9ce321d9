"""Issue 13, the Jupyter side: files that would block the cell (FIFOs), NUL characters in
code and in input replies, unreadable signed requests, input() interrupted, the kernel's
parent dying, history that only grows, and a flood of IOPub subscriptions.

Each attack runs against a real build/kiln through jupyter_client, or over raw ZeroMQ
(or raw ZMTP over TCP) where jupyter_client cannot express it; each checks that the
kernel answers afterwards and that a variable defined before the attack is intact."""
import json
import os
import socket
import struct
import subprocess
import tempfile
import time
import unittest
from queue import Empty

import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from abuse import SENTINEL, TIMEOUT, AbuseCase, run, start, stop
from kiln_testing import header, kernel_pid, rss_kib, sign, shell_reply

KILN = os.environ.get("KILN") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "kiln")
TMP = os.environ.get("KILN_ABUSE_TMP") or tempfile.gettempdir()


def under_asan(pid):
    """AddressSanitizer's quarantine keeps freed memory resident (and malloc_trim does
    nothing there): RSS bounds are checked only without it."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def hostile_dir():
    return tempfile.mkdtemp(prefix="kiln-wire-", dir=TMP)


# ---- raw messages (as tests/kernel/test_wire.py builds them) ----------------------------

def signed(key, parts):
    """Frames after the identities, with parts (four bytes objects) signed as they are."""
    return [b"<IDS|MSG>", sign(key, parts), *parts]


def parse(frames):
    i = frames.index(b"<IDS|MSG>")
    return {"msg_type": json.loads(frames[i + 2])["msg_type"],
            "parent": json.loads(frames[i + 3]), "content": json.loads(frames[i + 5])}


def url(info, port):
    if info["transport"] == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"tcp://{info['ip']}:{port}"


class TestFiles(AbuseCase):
    """A file that is not a regular file is refused at once: the open never blocks."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = hostile_dir()
        cls.fifo = os.path.join(cls.dir, "pipe.npy")
        os.mkfifo(cls.fifo)

    def timed(self, code, limit=10):
        t0 = time.monotonic()
        r = self.attack(code)
        self.assertLess(time.monotonic() - t0, limit, "the cell blocked")
        return r

    def test_load_npy_fifo(self):
        r = self.timed(f'tensor x = load_npy("{self.fifo}");')
        self.assert_error(r, "IOError", "load_npy", self.fifo, "FIFO", "not a regular file")

    def test_load_idx_fifo(self):
        r = self.timed(f'tensor x = load_idx("{self.fifo}");')
        self.assert_error(r, "IOError", "load_idx", "FIFO")

    def test_save_npy_fifo_and_directory(self):
        r = self.timed(f'save_npy(abuse_t, "{self.fifo}");')
        self.assert_error(r, "IOError", "save_npy", "FIFO")
        r = self.timed(f'tensor x = load_npy("{self.dir}");')
        self.assert_error(r, "IOError", "directory")

    def test_session_load_fifo(self):
        r = self.timed(f"%load {self.fifo}")
        self.assert_error(r, "IOError", "%load", "FIFO")

    def test_fifo_with_a_writer(self):
        """A writer is waiting on the FIFO: still not a file, still refused at once."""
        writer = subprocess.Popen(["sh", "-c", f"sleep 30 > {self.fifo}"])
        try:
            r = self.timed(f'tensor x = load_npy("{self.fifo}");')
            self.assert_error(r, "IOError", "FIFO")
        finally:
            writer.kill()
            writer.wait()

    def test_fifo_then_interrupt(self):
        """An interrupt sent while the FIFO cell runs, and one right after: the cell ends
        (refused or Interrupted) and the session goes on."""
        msg_id = self.kc.execute(f'tensor x = load_npy("{self.fifo}");')
        self.km.interrupt_kernel()
        c = shell_reply(self.kc, msg_id, timeout=10)["content"]
        self.assertEqual(c["status"], "error", c)
        self.assertIn(c["ename"], ("IOError", "Interrupted"), c)
        self.km.interrupt_kernel()
        self.assert_alive()

    def test_regular_file_still_loads(self):
        path = os.path.join(self.dir, "ok.npy")
        r = self.attack(f'save_npy(abuse_t, "{path}"); sum(load_npy("{path}")).item()')
        self.assertEqual(r.status, "ok", r.errors)
        self.assertEqual(r.result, "10")


class TestInput(AbuseCase):
    def ask(self, code):
        msg_id = self.kc.execute(code, allow_stdin=True)
        req = self.kc.get_stdin_msg(timeout=TIMEOUT)
        self.assertEqual(req["msg_type"], "input_request")
        return msg_id

    def reply_to(self, msg_id):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                m = self.kc.get_shell_msg(timeout=0.5)
            except Empty:
                continue
            if m["parent_header"].get("msg_id") == msg_id:
                return m["content"]
        self.fail("no execute_reply")

    def test_interrupted_input_says_interrupted(self):
        msg_id = self.ask('string s = input("name? ");')
        self.km.interrupt_kernel()
        c = self.reply_to(msg_id)
        self.assertEqual(c["status"], "error")
        self.assertEqual(c["ename"], "Interrupted")
        self.assertIn("interrupted", c["evalue"])
        self.assertNotIn("does not support", c["evalue"])
        self.assert_alive()

    def test_input_reply_with_nul(self):
        msg_id = self.ask('string s = input("name? "); len(s)')
        self.kc.input("a\x00bc")
        c = self.reply_to(msg_id)
        self.assertEqual(c["status"], "ok", c)
        r = run(self.kc, "len(s)")
        self.assertEqual(r.result, "4")  # the NUL is kept: 4 characters
        self.assert_alive()


class TestNul(AbuseCase):
    def test_code_with_nul(self):
        r = self.attack("int nul_a = 1;\nint nul_b\x00 = 2;")
        text = self.assert_error(r, "SyntaxError", "NUL", "line 2, column 10")
        self.assertEqual(len(r.errors), 1, text)
        self.assertEqual(r.errors[0]["content"]["ename"], "SyntaxError")
        r = self.attack("nul_a")
        self.assert_error(r, "NameError")  # nothing of the cell ran

    def test_history_keeps_the_cell(self):
        self.attack("// before\x00after")
        reply = shell_reply(self.kc, self.kc.history(hist_access_type="tail", n=3))
        inputs = [h[2] for h in reply["content"]["history"]]
        self.assertIn("// before\ufffdafter", inputs)


class TestRawWire(AbuseCase):
    """Signed requests whose header reads but whose content does not."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        info = cls.km.get_connection_info()
        cls.key = info["key"]
        cls.ctx = zmq.Context()
        cls.shell = cls.ctx.socket(zmq.DEALER)
        cls.shell.connect(url(info, info["shell_port"]))
        cls.iopub = cls.ctx.socket(zmq.SUB)
        cls.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        cls.iopub.connect(url(info, info["iopub_port"]))
        time.sleep(0.5)

    @classmethod
    def tearDownClass(cls):
        cls.shell.close(linger=0)
        cls.iopub.close(linger=0)
        cls.ctx.term()
        super().tearDownClass()

    def send_parts(self, msg_type, content_bytes):
        hdr = header(msg_type)
        parts = [json.dumps(hdr).encode(), b"{}", b"{}", content_bytes]
        self.shell.send_multipart(signed(self.key, parts))
        return hdr["msg_id"]

    def reply(self, msg_id):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.shell.poll(500):
                m = parse(self.shell.recv_multipart())
                if m["parent"].get("msg_id") == msg_id:
                    return m
        self.fail("no reply")

    def states(self, msg_id, wait=5):
        got, deadline = [], time.monotonic() + wait
        while time.monotonic() < deadline and got[-1:] != ["idle"]:
            if self.iopub.poll(200):
                m = parse(self.iopub.recv_multipart())
                if m["parent"].get("msg_id") == msg_id and m["msg_type"] == "status":
                    got.append(m["content"]["execution_state"])
        return got

    def test_raw_nul_in_code(self):
        content = json.dumps({"code": "int raw_x = 5;\u0000", "silent": False,
                              "store_history": True, "user_expressions": {},
                              "allow_stdin": False, "stop_on_error": False}).encode()
        self.assertIn(b"\\u0000", content)
        msg_id = self.send_parts("execute_request", content)
        m = self.reply(msg_id)
        self.assertEqual(m["msg_type"], "execute_reply")
        self.assertEqual(m["content"]["status"], "error")
        self.assertIn("NUL", m["content"]["evalue"])
        self.assertEqual(self.states(msg_id), ["busy", "idle"])
        self.assert_alive()

    def test_unreadable_content_gets_an_error_reply(self):
        msg_id = self.send_parts("execute_request", b'{"code": "1 +')
        m = self.reply(msg_id)
        self.assertEqual(m["msg_type"], "execute_reply")
        self.assertEqual(m["content"]["status"], "error")
        self.assertEqual(m["content"]["ename"], "BadRequest")
        self.assertIn("content is not a JSON object", m["content"]["evalue"])
        self.assertIn("execution_count", m["content"])
        self.assertEqual(self.states(msg_id), ["busy", "idle"])
        msg_id = self.send_parts("kernel_info_request", b"\xff\xfe")
        self.assertEqual(self.reply(msg_id)["msg_type"], "kernel_info_reply")
        self.assert_alive()


class TestParentDeath(unittest.TestCase):
    """JPY_PARENT_PID names a process that dies: the kernel shuts down, a running cell
    included, within a few seconds."""

    def test_kernel_exits_when_parent_dies(self):
        d = hostile_dir()
        cf, info = write_connection_file(os.path.join(d, "conn.json"), ip="127.0.0.1")
        parent = subprocess.Popen(["sleep", "600"])
        log = open(os.path.join(d, "kernel.log"), "w")
        env = dict(os.environ, JPY_PARENT_PID=str(parent.pid))
        kernel = subprocess.Popen([KILN, "kernel", "-f", cf], env=env, stderr=log)
        kc = BlockingKernelClient(connection_file=cf)
        kc.load_connection_file()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=TIMEOUT)
            r = run(kc, SENTINEL)
            self.assertEqual(r.status, "ok", r.errors)
            kc.execute("int spin = 0; while (true) { spin = spin + 1; }")
            time.sleep(0.5)
            self.assertIsNone(kernel.poll(), "the kernel ended while its parent lives")
            parent.kill()
            parent.wait()  # reaped: the pid is gone, as a dead jupyter_client's would be
            t0 = time.monotonic()
            rc = kernel.wait(timeout=8)
            self.assertLess(time.monotonic() - t0, 5)
            self.assertEqual(rc, 0, "the kernel did not shut down cleanly")
            with open(log.name) as f:
                self.assertIn("parent process", f.read())
        finally:
            kc.stop_channels()
            if kernel.poll() is None:
                kernel.kill()
                kernel.wait()
            if parent.poll() is None:
                parent.kill()
                parent.wait()
            log.close()


class TestHistoryCap(AbuseCase):
    """Ten cells of a 5 MB comment with a 4 MiB history budget: the history keeps each
    input truncated to 1 MiB (with a note), the newest ones, and the memory stays put."""
    BUDGET = 4 << 20
    CELL = 5 << 20

    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, KILN_HISTORY_BYTES=str(cls.BUDGET))
        cls.km, cls.kc = start(env=env)

    def test_big_comments(self):
        pid = kernel_pid(self.km)
        for i in range(2):  # warm up: the transient buffers of one big cell exist once
            self.attack(f"// warm {i} " + "w" * self.CELL)
        before = rss_kib(pid)
        for i in range(10):
            r = run(self.kc, f"// cell {i} " + "x" * self.CELL, timeout=60)
            self.assertEqual(r.status, "ok", r.errors)
        grown = (rss_kib(pid) - before) / 1024
        if not under_asan(pid):
            self.assertLess(grown, 20, f"the kernel grew by {grown:.0f} MiB over ten 5 MB cells")
        self.assert_alive()
        reply = shell_reply(self.kc, self.kc.history(hist_access_type="tail", n=100))
        inputs = [h[2] for h in reply["content"]["history"]]
        self.assertLessEqual(sum(len(s.encode()) for s in inputs), self.BUDGET)
        big = [s for s in inputs if s.startswith("// cell ")]
        self.assertTrue(big, "the newest big cell was not kept")
        self.assertTrue(big[-1].startswith("// cell 9 "))
        self.assertIn("truncated to 1048576 in the history", big[-1])
        self.assertLessEqual(len(big[-1].encode()), (1 << 20) + 100)
        self.assertTrue(any("abuse_sentinel + sum" in s for s in inputs))


# ---- IOPub subscriptions over raw ZMTP (an unauthenticated peer) -----------------------

def zmtp_sub(host, port):
    """A TCP connection that speaks ZMTP 3.0 as a SUB socket (NULL mechanism)."""
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") +
              b"\0" * 32)
    got = b""
    while len(got) < 64:
        chunk = s.recv(64 - len(got))
        if not chunk:
            raise ConnectionError("closed during the greeting")
        got += chunk
    body = b"\x05READY" + bytes([11]) + b"Socket-Type" + struct.pack(">I", 3) + b"SUB"
    s.sendall(bytes([0x04, len(body)]) + body)
    return s


def zmtp_frame(body):
    if len(body) < 256:
        return bytes([0x00, len(body)]) + body
    return b"\x02" + struct.pack(">Q", len(body)) + body


class TestSubscriptionFlood(AbuseCase):
    def flood(self, n, size):
        """n distinct subscriptions of size bytes; reconnects when dropped, as libzmq's
        SUB would. Returns how many times the kernel dropped the connection."""
        info = self.km.get_connection_info()
        s, drops, batch = zmtp_sub(info["ip"], info["iopub_port"]), 0, []
        for i in range(n):
            batch.append(zmtp_frame(b"\x01" + os.urandom(size // 2 + 1).hex().encode()[:size]))
            if len(batch) == 100 or i == n - 1:
                try:
                    s.sendall(b"".join(batch))
                except OSError:
                    drops += 1
                    s.close()
                    s = zmtp_sub(info["ip"], info["iopub_port"])
                batch = []
        time.sleep(1)
        s.close()
        return drops

    def check(self, n, size):
        pid = kernel_pid(self.km)
        before = rss_kib(pid)
        self.flood(n, size)
        time.sleep(1.5)  # the dropped connections' memory is trimmed after 0.5 s
        grown = (rss_kib(pid) - before) / 1024
        if not under_asan(pid):
            self.assertLess(grown, 40, f"{n} subscriptions of {size} bytes grew the kernel "
                                       f"by {grown:.0f} MiB")
        self.assert_alive()

    def test_50000_subscriptions_of_1kb(self):
        self.check(50000, 1024)

    def test_50000_subscriptions_of_200_bytes(self):
        self.check(50000, 200)


if __name__ == "__main__":
    unittest.main()
