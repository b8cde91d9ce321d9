"""Helpers shared by the kernel tests: start a Kiln kernel through jupyter_client,
run a cell and collect what it published, read a process's resident memory.

Every test drives the real build/kiln through the kernelspec that run.sh installs
into a temporary JUPYTER_DATA_DIR: real sockets, real clients, no mocks."""
import os
import sys
import hashlib
import hmac
import time
import unittest
import uuid
from datetime import datetime, timezone
from queue import Empty

from jupyter_client.manager import KernelManager, start_new_kernel

KERNEL_NAME = os.environ.get("KILN_KERNEL_NAME", "kiln")
TIMEOUT = 30

try:
    import pexpect
except ImportError:  # pragma: no cover
    pexpect = None


def console():
    """`jupyter console` on the Kiln kernel in a pseudo-terminal (pexpect), plain prompts;
    the caller closes it. Tests that use it skip where pexpect is missing."""
    return pexpect.spawn(sys.executable, ["-m", "jupyter_console", "--kernel", KERNEL_NAME,
                                          "--simple-prompt", "--no-confirm-exit"],
                         encoding="utf-8", timeout=60, dimensions=(40, 200))


def start(**kw):
    """A started kernel and a ready BlockingKernelClient."""
    return start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=TIMEOUT, **kw)


def manager(**kw):
    return KernelManager(kernel_name=KERNEL_NAME, **kw)


def stop(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=False)


class SharedKernel(unittest.TestCase):
    """One kernel for the whole class (they are cheap, but tests are clearer in order)."""

    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start()

    @classmethod
    def tearDownClass(cls):
        stop(cls.km, cls.kc)


class Ran:
    """What a cell did: its reply and its IOPub outputs (status and execute_input left out)."""

    def __init__(self, reply, outputs):
        self.reply = reply
        self.content = reply["content"]
        self.status = self.content["status"]
        self.outputs = outputs

    def of_type(self, msg_type):
        return [m for m in self.outputs if m["msg_type"] == msg_type]

    def stream(self, name="stdout"):
        return "".join(m["content"]["text"] for m in self.of_type("stream")
                       if m["content"]["name"] == name)

    @property
    def result(self):
        res = self.of_type("execute_result")
        return res[-1]["content"]["data"]["text/plain"] if res else None

    @property
    def errors(self):
        return self.of_type("error")

    def __repr__(self):
        return f"Ran(status={self.status!r}, outputs={[m['msg_type'] for m in self.outputs]})"


def run(kc, code, timeout=TIMEOUT, **kw):
    """Executes code and waits for idle; returns a Ran."""
    outputs = []

    def hook(msg):
        if msg["msg_type"] not in ("status", "execute_input"):
            outputs.append(msg)

    reply = kc.execute_interactive(code, output_hook=hook, timeout=timeout, **kw)
    return Ran(reply, outputs)


def iopub_until_idle(kc, msg_id, timeout=TIMEOUT):
    """IOPub messages parented to msg_id, up to and including its idle status."""
    msgs, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs
    raise TimeoutError(f"no idle for {msg_id}")


def shell_reply(kc, msg_id, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_shell_msg(timeout=0.5)
        except Empty:
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg
    raise TimeoutError(f"no reply to {msg_id}")


def kernel_pid(km):
    return km.provisioner.process.pid


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_busy(kc, msg_id, timeout=TIMEOUT):
    """Waits until the request msg_id is running (its busy status was published)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except Empty:
            continue
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input"):
            return
    raise TimeoutError("the cell never started")


# ---- raw wire messages (for the attacks jupyter_client cannot express) ----

def header(msg_type, session="wire-test"):
    """A message header as the Jupyter protocol 5.3 wants it."""
    return {"msg_id": uuid.uuid4().hex, "session": session, "username": "test",
            "date": datetime.now(timezone.utc).isoformat(), "msg_type": msg_type,
            "version": "5.3"}


def sign(key, parts):
    """The HMAC-SHA256 signature of the four message parts, hex, as bytes."""
    h = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        h.update(p)
    return h.hexdigest().encode()
