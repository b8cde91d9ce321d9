"""Bad messages over raw ZeroMQ: a wrong key, tampered content, short, missing and
malformed signatures, a replay, garbage and missing frames, malformed JSON, an
oversized frame, an unknown msg_type. Each gets no reply (and is logged on the
kernel's stderr), and the kernel answers the next valid request; the exception is a
correctly signed request whose header reads but whose content does not (not JSON, or
over the size limit): it gets an error reply."""
import json
import os
import tempfile
import time
import unittest

import zmq

from kiln_testing import TIMEOUT, header, manager, sign

QUIET = 0.4  # seconds to wait for a reply that must not come


def message(key, msg_type="kernel_info_request", content=None, hdr=None):
    """Wire frames (after the identities) of a correctly signed message."""
    parts = [json.dumps(hdr or header(msg_type)).encode(), b"{}", b"{}",
             json.dumps(content or {}).encode()]
    return [b"<IDS|MSG>", sign(key, parts), *parts]


class TestWire(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.log = tempfile.NamedTemporaryFile(prefix="kiln-wire-", suffix=".log", delete=False)
        cls.km = manager()
        env = dict(os.environ, KILN_MAX_MESSAGE_BYTES=str(1 << 20))
        cls.km.start_kernel(env=env, stderr=cls.log)
        cls.kc = cls.km.client()
        cls.kc.start_channels()
        cls.kc.wait_for_ready(timeout=TIMEOUT)
        info = cls.km.get_connection_info()
        cls.key = info["key"]
        cls.ctx = zmq.Context()

        def url(port):
            if info["transport"] == "ipc":
                return f"ipc://{info['ip']}-{port}"
            return f"tcp://{info['ip']}:{port}"

        cls.url = url
        cls.shell = cls.ctx.socket(zmq.DEALER)
        cls.shell.connect(url(info["shell_port"]))
        cls.control = cls.ctx.socket(zmq.DEALER)
        cls.control.connect(url(info["control_port"]))
        cls.iopub = cls.ctx.socket(zmq.SUB)
        cls.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        cls.iopub.connect(url(info["iopub_port"]))
        # the kernel greets the subscription: once that arrives, IOPub is connected
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if cls.iopub.poll(500) and cls.parse(cls.iopub.recv_multipart())["msg_type"] == "iopub_welcome":
                break

    @classmethod
    def tearDownClass(cls):
        for s in (cls.shell, cls.control, cls.iopub):
            s.close(linger=0)
        cls.ctx.term()
        cls.kc.stop_channels()
        cls.km.shutdown_kernel(now=False)
        cls.log.close()
        os.unlink(cls.log.name)

    @staticmethod
    def parse(frames):
        i = frames.index(b"<IDS|MSG>")
        hdr = json.loads(frames[i + 2])
        return {"msg_type": hdr["msg_type"], "header": hdr, "parent": json.loads(frames[i + 3]),
                "content": json.loads(frames[i + 5]), "signature": frames[i + 1],
                "parts": frames[i + 2:i + 6]}

    def replies(self, sock, wait=QUIET):
        got = []
        while sock.poll(int(wait * 1000)):
            got.append(self.parse(sock.recv_multipart()))
            wait = 0.05
        return got

    def assert_alive(self, sock=None):
        sock = sock or self.shell
        sock.send_multipart(message(self.key))
        got = self.replies(sock, wait=TIMEOUT)
        self.assertEqual([m["msg_type"] for m in got], ["kernel_info_reply"])
        self.assertEqual(got[0]["signature"], sign(self.key, got[0]["parts"]))

    def assert_dropped(self, frames, sock=None, log_text=None):
        sock = sock or self.shell
        sock.send_multipart(frames)
        self.assertEqual(self.replies(sock), [], "a bad message got a reply")
        self.assert_alive(sock)
        if log_text:
            with open(self.log.name) as f:
                self.assertIn(log_text, f.read())

    def test_valid(self):
        self.assert_alive()
        self.assert_alive(self.control)

    def test_wrong_key(self):
        self.assert_dropped(message(b"not-the-key"), log_text="signature does not match")

    def test_tampered_content(self):
        frames = message(self.key, "execute_request", {"code": "1 + 1", "silent": False})
        frames[5] = json.dumps({"code": "2 + 2", "silent": False}).encode()
        self.assert_dropped(frames)

    def test_short_signature(self):
        frames = message(self.key)
        frames[1] = frames[1][:20]
        self.assert_dropped(frames, log_text="signature of 20 characters")

    def test_empty_and_non_hex_signature(self):
        frames = message(self.key)
        frames[1] = b""
        self.assert_dropped(frames)
        frames = message(self.key)
        frames[1] = b"z" * 64
        self.assert_dropped(frames)

    def test_replay(self):
        frames = message(self.key)
        self.shell.send_multipart(frames)
        self.assertEqual(len(self.replies(self.shell, wait=TIMEOUT)), 1)
        self.assert_dropped(frames, log_text="replayed signature")
        self.assert_dropped(frames, sock=self.control)  # one history for every channel

    def test_garbage_frames(self):
        self.assert_dropped([b"hello"], log_text="no <IDS|MSG> delimiter")
        self.assert_dropped([os.urandom(100) for _ in range(7)])
        self.assert_dropped([b"\x00" * 3, b"<IDS|MSG>"], log_text="missing frames")
        self.assert_dropped(message(self.key)[:4])
        self.assert_dropped([b"garbage"], sock=self.control)

    def test_malformed_json(self):
        parts = [b'{"msg_type": "kernel_info_request"', b"{}", b"{}", b"{}"]
        self.assert_dropped([b"<IDS|MSG>", sign(self.key, parts), *parts],
                            log_text="malformed JSON")
        parts = [b"[1, 2, 3]", b"{}", b"{}", b"{}"]
        self.assert_dropped([b"<IDS|MSG>", sign(self.key, parts), *parts])

    def test_unreadable_content_is_answered(self):
        """Signed, with a readable header, but the content is not JSON: the request
        gets an error reply naming the problem (busy/idle around it), not silence."""
        parts = [json.dumps(header("kernel_info_request")).encode(), b"{}", b"{}", b"\xff\xfe"]
        self.shell.send_multipart([b"<IDS|MSG>", sign(self.key, parts), *parts])
        got = self.replies(self.shell, wait=TIMEOUT)
        self.assertEqual([m["msg_type"] for m in got], ["kernel_info_reply"])
        self.assertEqual(got[0]["content"]["status"], "error")
        self.assertIn("content is not a JSON object", got[0]["content"]["evalue"])
        self.assert_alive()

    def test_header_without_msg_type(self):
        hdr = header("kernel_info_request")
        del hdr["msg_type"]
        self.assert_dropped(message(self.key, hdr=hdr), log_text="header has no msg_type")

    def test_oversized_frame(self):
        """A content over the limit in a signed request with a readable header: an
        error reply that names the limit (the client would otherwise wait forever);
        an oversized header is dropped."""
        frames = message(self.key, "execute_request", {"code": "// " + "x" * (2 << 20)})
        self.shell.send_multipart(frames)
        got = self.replies(self.shell, wait=TIMEOUT)
        self.assertEqual([m["msg_type"] for m in got], ["execute_reply"])
        self.assertEqual(got[0]["content"]["status"], "error")
        self.assertIn("content frame of", got[0]["content"]["evalue"])
        self.assertIn("limit 1048576", got[0]["content"]["evalue"])
        hdr = header("kernel_info_request")
        hdr["padding"] = "x" * (2 << 20)
        self.assert_dropped(message(self.key, hdr=hdr), log_text="frame too large")

    def test_unknown_msg_type(self):
        frames = message(self.key, "frobnicate_request")
        msg_id = json.loads(frames[2])["msg_id"]
        while self.iopub.poll(100):
            self.iopub.recv_multipart()
        self.assert_dropped(frames, log_text='unknown msg_type "frobnicate_request"')
        states = []
        while self.iopub.poll(500):
            m = self.parse(self.iopub.recv_multipart())
            if m["parent"].get("msg_id") == msg_id:
                self.assertEqual(m["msg_type"], "status")
                states.append(m["content"]["execution_state"])
        self.assertEqual(states, ["busy", "idle"])

    def test_execute_after_abuse(self):
        for _ in range(20):
            self.shell.send_multipart([os.urandom(32), b"<IDS|MSG>", os.urandom(64)])
        self.shell.send_multipart(message(self.key, "execute_request",
                                          {"code": "40 + 2", "silent": False,
                                           "store_history": True, "user_expressions": {},
                                           "allow_stdin": False, "stop_on_error": True}))
        got = self.replies(self.shell, wait=TIMEOUT)
        self.assertEqual([m["msg_type"] for m in got], ["execute_reply"])
        self.assertEqual(got[0]["content"]["status"], "ok")


if __name__ == "__main__":
    unittest.main()
