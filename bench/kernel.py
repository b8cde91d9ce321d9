#!/usr/bin/env python3
"""Kiln kernel benchmarks (issue 3): Kiln against ipykernel, both started by the same
jupyter_client in the same run.

Usage: bench/kernel.py [--no-save] [--out DIR] [--quick] build/kiln

Metrics (medians; ratio = ipykernel / Kiln, so ratio > 1 means Kiln is faster):
  execute_rt_empty, execute_rt_1plus1   execute_request sent -> its status idle received
                                        on IOPub (goal: ratio >= 5)
  start_ready_raw                       Popen of the kernelspec's argv -> first
                                        kernel_info_reply over raw ZeroMQ (goal: >= 10)
  start_ready_jupyter_client            KernelManager.start_kernel() +
                                        client.wait_for_ready() (goal: >= 10)

Writes bench/results/kernel-cpu-<date>-<shortcommit>.json (the same shape as
bench/run.py's) and prints a table. See bench/README.md.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import cpu_model, dirty_files, exit_status, git, save_results
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable            # runs jupyter_client here and ipykernel as the peer
TIMEOUT = 30                   # seconds for any one wait on a kernel

RT_WARMUP = 20                 # round trips per kernel and cell before timing
RT_BLOCKS = 4                  # interleaved blocks (Kiln, ipykernel) ...
RT_PER_BLOCK = 50              # ... of this many timed round trips: 200 per kernel/cell
STARTS = 10                    # timed starts per kernel and method (after one warm-up)
POLL_S = 0.002                 # raw start: a new kernel_info_request every 2 ms

CELLS = [("execute_rt_empty", "", None), ("execute_rt_1plus1", "1 + 1", "2")]
PEER = "ipykernel"
# the kernels' own output (ipykernel warns about TCP without encryption at each start)
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
RATIO_DEF = ("ratio = peer / ours for times (lower is better): ratio > 1 means Kiln is "
             "faster, ratio < 1 means the peer is faster")


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# a throw-away Jupyter home with both kernelspecs

def setup_jupyter_home(kiln, tmp):
    """JUPYTER_* and IPYTHONDIR into TMP (set before jupyter_client reads its paths);
    kernelspec `kiln` through kernel/kernelspec/install.py (as `make install` does), and
    `python3` written directly so ipykernel runs from this very python."""
    env = {"JUPYTER_DATA_DIR": os.path.join(tmp, "data"),
           "JUPYTER_RUNTIME_DIR": os.path.join(tmp, "runtime"),
           "JUPYTER_CONFIG_DIR": os.path.join(tmp, "config"),
           "IPYTHONDIR": os.path.join(tmp, "ipython"),
           "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           # the temporary data dir before the venv's share/jupyter, so that our python3
           # spec (this python, explicitly) wins over the venv's own
           "JUPYTER_PREFER_ENV_PATH": "0"}
    os.environ.update(env)
    for d in ("data", "runtime", "config", "ipython"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    p = subprocess.run([PY, os.path.join(ROOT, "kernel", "kernelspec", "install.py"), kiln],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise SystemExit("bench/kernel.py: kernelspec install failed:\n%s%s"
                         % (p.stdout, p.stderr))
    spec_dir = os.path.join(env["JUPYTER_DATA_DIR"], "kernels", "python3")
    os.makedirs(spec_dir, exist_ok=True)
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump({"argv": [PY, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": "Python 3 (ipykernel)", "language": "python",
                   "metadata": {"debugger": True}}, f, indent=1)
    from jupyter_client.kernelspec import KernelSpecManager
    ksm = KernelSpecManager()
    specs = {name: ksm.get_kernel_spec(name) for name in ("kiln", "python3")}
    if specs["kiln"].argv[0] != kiln:
        raise SystemExit("bench/kernel.py: kernelspec kiln runs %s, not %s"
                         % (specs["kiln"].argv[0], kiln))
    if specs["python3"].argv[0] != PY:
        raise SystemExit("bench/kernel.py: kernelspec python3 runs %s, not %s"
                         % (specs["python3"].argv[0], PY))
    return specs


# ---------------------------------------------------------------------------------------
# a lean client: raw pyzmq sockets, jupyter_client's Session for signing

def url(info, channel):
    if info["transport"] == "ipc":
        return "ipc://%s-%d" % (info["ip"], info[channel + "_port"])
    return "tcp://%s:%d" % (info["ip"], info[channel + "_port"])


class LeanClient:
    """Shell DEALER and IOPub SUB on a kernel started by a KernelManager. Sends with
    jupyter_client.session.Session (signed with the kernel's key); on IOPub it only
    parses the header and parent header of each message, so that the client's own cost
    is as small as Python allows and the same for both kernels."""

    def __init__(self, km, ctx):
        import zmq
        from jupyter_client.session import Session
        self.zmq = zmq
        info = km.get_connection_info()
        self.session = Session(key=info["key"], signature_scheme=info["signature_scheme"])
        self.shell = ctx.socket(zmq.DEALER)
        self.shell.linger = 0
        self.shell.connect(url(info, "shell"))
        self.iopub = ctx.socket(zmq.SUB)
        self.iopub.linger = 0
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.iopub.connect(url(info, "iopub"))
        self.hb = ctx.socket(zmq.REQ)
        self.hb.linger = 0
        self.hb.connect(url(info, "hb"))
        self.poller_iopub = zmq.Poller()
        self.poller_iopub.register(self.iopub, zmq.POLLIN)
        self.poller_shell = zmq.Poller()
        self.poller_shell.register(self.shell, zmq.POLLIN)

    def close(self):
        self.shell.close()
        self.iopub.close()
        self.hb.close()

    def hb_echo(self, timeout=TIMEOUT):
        """One heartbeat ping -> echo: seconds. Both kernels echo in a ZeroMQ device, so
        this is the floor of this client and the transport, with no kernel work."""
        t0 = time.perf_counter_ns()
        self.hb.send(b"ping")
        if not self.hb.poll(timeout * 1000):
            raise BenchError("no heartbeat echo within %gs" % timeout)
        self.hb.recv()
        return (time.perf_counter_ns() - t0) / 1e9

    def send_execute(self, code):
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        msg = self.session.msg("execute_request", content)
        self.session.send(self.shell, msg)
        return msg["header"]["msg_id"]

    @staticmethod
    def _parts(frames):
        i = frames.index(b"<IDS|MSG>")
        return frames[i + 2:]       # header, parent, metadata, content, buffers...

    def wait_idle(self, msg_id, timeout, collect=None):
        """Reads IOPub until the status idle parented to msg_id; returns the time it was
        read (perf_counter_ns). COLLECT, if a list, gets (msg_type, content) of every
        message parented to msg_id."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.poller_iopub.poll(left * 1000):
                raise BenchError("no status idle within %gs" % timeout)
            while True:
                try:
                    frames = self.iopub.recv_multipart(self.zmq.NOBLOCK)
                except self.zmq.Again:
                    break
                header, parent = self._parts(frames)[:2]
                if msg_id.encode() not in parent:
                    continue
                hdr = json.loads(header)
                par = json.loads(parent)
                if par.get("msg_id") != msg_id:
                    continue
                mtype = hdr.get("msg_type")
                if collect is not None:
                    collect.append((mtype, json.loads(self._parts(frames)[3])))
                if mtype == "status" and b'"idle"' in self._parts(frames)[3]:
                    return time.perf_counter_ns()

    def recv_reply(self, msg_id, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.poller_shell.poll(left * 1000):
                raise BenchError("no execute_reply within %gs" % timeout)
            parts = self._parts(self.shell.recv_multipart())
            if json.loads(parts[1]).get("msg_id") == msg_id:
                return json.loads(parts[3])

    def execute(self, code, timeout=TIMEOUT, collect=None):
        """One round trip; returns (ns from send to idle, reply content)."""
        t0 = time.perf_counter_ns()
        msg_id = self.send_execute(code)
        t1 = self.wait_idle(msg_id, timeout, collect)
        reply = self.recv_reply(msg_id, timeout)
        return t1 - t0, reply

    def until_live(self, timeout=TIMEOUT):
        """Empty executes with a short wait until one's idle arrives (the SUB socket's
        subscription has reached the kernel)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg_id = self.send_execute("")
            try:
                self.wait_idle(msg_id, 0.5)
                self.recv_reply(msg_id, TIMEOUT)
                return
            except BenchError:
                continue
        raise BenchError("kernel's IOPub never delivered an idle in %gs" % timeout)


def start_managed(name):
    from jupyter_client.manager import KernelManager
    km = KernelManager(kernel_name=name)
    km.start_kernel(**QUIET)
    return km


def bench_roundtrip(names):
    """Both kernels up at once; interleaved blocks of round trips per kernel and cell."""
    import zmq
    ctx = zmq.Context()
    kms, clients, errors = {}, {}, {}
    samples = {(k, c[0]): [] for k in names for c in CELLS}
    checks, hb = {}, {}
    try:
        for k in names:
            try:
                kms[k] = start_managed(names[k])
                clients[k] = LeanClient(kms[k], ctx)
                clients[k].until_live()
                # warm-up, and proof that each cell really runs: status ok, and `1 + 1`
                # publishes an execute_result of 2
                for cname, code, want in CELLS:
                    for i in range(RT_WARMUP):
                        got = [] if i == 0 else None
                        _, reply = clients[k].execute(code, collect=got)
                        if reply.get("status") != "ok":
                            raise BenchError("%r: reply status %r" % (code, reply.get("status")))
                        if got is not None:
                            res = [c["data"].get("text/plain") for t, c in got
                                   if t == "execute_result"]
                            if want is not None and res != [want]:
                                raise BenchError("%r: execute_result %r, want [%r]"
                                                 % (code, res, want))
                            checks[(k, cname)] = [t for t, _ in got]
                for _ in range(RT_WARMUP):
                    clients[k].hb_echo()
                hb[k] = statistics.median(clients[k].hb_echo()
                                          for _ in range(RT_BLOCKS * RT_PER_BLOCK))
            except Exception as e:
                errors[k] = "%s: %s" % (type(e).__name__, e)
        for _ in range(RT_BLOCKS):
            for k in names:
                if k in errors:
                    continue
                try:
                    for cname, code, _ in CELLS:
                        gc.disable()
                        try:
                            for _ in range(RT_PER_BLOCK):
                                dt, reply = clients[k].execute(code)
                                if reply.get("status") != "ok":
                                    raise BenchError("%r: reply status %r"
                                                     % (code, reply.get("status")))
                                samples[(k, cname)].append(dt / 1e9)
                        finally:
                            gc.enable()
                except Exception as e:
                    errors[k] = "%s: %s" % (type(e).__name__, e)
    finally:
        for k in list(clients):
            clients[k].close()
        for k in list(kms):
            try:
                kms[k].shutdown_kernel(now=True)
            except Exception:
                pass
        ctx.term()
    return samples, errors, checks, hb


# ---------------------------------------------------------------------------------------
# start to ready

def start_raw(spec, ctx):
    """Popen of the kernelspec's argv with a connection file written here (random free
    ports), then signed kernel_info_requests on shell every POLL_S (new msg_id each) until
    a kernel_info_reply arrives. Returns seconds from Popen to the reply."""
    import zmq
    from jupyter_client.connect import write_connection_file
    from jupyter_client.session import Session
    runtime = os.environ["JUPYTER_RUNTIME_DIR"]
    fname = os.path.join(runtime, "bench-raw-%s.json" % uuid.uuid4())
    key = uuid.uuid4().hex
    fname, cfg = write_connection_file(fname, ip="127.0.0.1", key=key.encode(),
                                       transport="tcp", signature_scheme="hmac-sha256",
                                       kernel_name=spec.display_name)
    session = Session(key=key.encode(), signature_scheme="hmac-sha256")
    argv = [a.replace("{connection_file}", fname) for a in spec.argv]
    env = dict(os.environ)
    env.update(spec.env or {})
    shell = ctx.socket(zmq.DEALER)
    shell.linger = 0
    # try to (re)connect every ms while the kernel has not bound yet (default: 100 ms),
    # and queue nothing for a connection that does not exist yet
    shell.setsockopt(zmq.RECONNECT_IVL, 1)
    shell.setsockopt(zmq.RECONNECT_IVL_MAX, 1)
    shell.setsockopt(zmq.IMMEDIATE, 1)
    shell.connect("tcp://127.0.0.1:%d" % cfg["shell_port"])
    poller = zmq.Poller()
    poller.register(shell, zmq.POLLIN)
    proc = None
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                shell.send_multipart(session.serialize(session.msg("kernel_info_request", {})),
                                     zmq.NOBLOCK)
            except zmq.Again:
                pass
            if poller.poll(POLL_S * 1000):
                frames = shell.recv_multipart()
                t1 = time.perf_counter()
                i = frames.index(b"<IDS|MSG>")
                if json.loads(frames[i + 2]).get("msg_type") == "kernel_info_reply":
                    return t1 - t0
            if proc.poll() is not None:
                raise BenchError("%s exited with %d before replying" % (argv[0], proc.returncode))
            if time.monotonic() > deadline:
                raise BenchError("no kernel_info_reply in %ds" % TIMEOUT)
    finally:
        shell.close()
        if proc is not None:
            proc.kill()
            proc.wait()
        try:
            os.unlink(fname)
        except OSError:
            pass


def start_jupyter_client(name):
    """KernelManager.start_kernel() + client.wait_for_ready(): seconds."""
    from jupyter_client.manager import KernelManager
    km = KernelManager(kernel_name=name)
    kc = None
    try:
        t0 = time.perf_counter()
        km.start_kernel(**QUIET)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        return time.perf_counter() - t0
    finally:
        if kc is not None:
            kc.stop_channels()
        km.shutdown_kernel(now=True)


def bench_start(names, specs, starts):
    """One warm-up start per kernel and method, then STARTS timed ones, interleaved
    (Kiln raw, ipykernel raw, Kiln jupyter_client, ipykernel jupyter_client, ...)."""
    import zmq
    ctx = zmq.Context()
    methods = {"raw": lambda k: start_raw(specs[names[k]], ctx),
               "jupyter_client": lambda k: start_jupyter_client(names[k])}
    samples = {(k, m): [] for k in names for m in methods}
    errors = {}
    try:
        for i in range(starts + 1):
            for m, fn in methods.items():
                for k in names:
                    if (k, m) in errors:
                        continue
                    try:
                        dt = fn(k)
                    except Exception as e:
                        errors[(k, m)] = "%s: %s" % (type(e).__name__, e)
                        continue
                    if i > 0:
                        samples[(k, m)].append(dt)
    finally:
        ctx.term()
    return samples, errors


# ---------------------------------------------------------------------------------------
# records, environment, table

def metric(name, unit, goal, min_ratio, ours, peer_value, error=None, detail=None):
    m = {"name": name, "unit": unit, "ours": ours, "peer": PEER, "peer_value": peer_value,
         "ratio": None, "goal": goal, "min_ratio": min_ratio, "met": None}
    if error is None and ours and peer_value is not None:
        m["ratio"] = peer_value / ours
    if error is not None:
        m["error"] = error
    if min_ratio is not None:
        m["met"] = bool(m["ratio"] is not None and m["ratio"] >= min_ratio)
    if detail:
        m["detail"] = detail
    return m


def summary(xs):
    if not xs:
        return None
    q = statistics.quantiles(xs, n=10) if len(xs) >= 10 else [None] * 9
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs),
            "p10": q[0], "p90": q[8], "max": max(xs)}


def environment(kiln):
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    import ipykernel
    import jupyter_client
    import zmq
    v = subprocess.run([kiln, "--version"], capture_output=True, text=True, timeout=30)
    return {
        "device": {"kind": "cpu", "model": cpu_model(), "cores": cores,
                   "hostname": socket.gethostname()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        "dirty": dirty_files(),
        "kiln": (v.stdout or v.stderr).strip(),
        "python": platform.python_version(),
        "jupyter_client": jupyter_client.__version__,
        "ipykernel": ipykernel.__version__,
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "s":
        return "%.3f ms" % (v * 1e3) if v < 0.01 else "%.1f ms" % (v * 1e3)
    return "%.2f %s" % (v, unit)


def table(metrics):
    rows = [("metric", "kiln", "peer", "peer value", "ratio", "goal", "met")]
    for m in metrics:
        ratio = "%.2fx" % m["ratio"] if m["ratio"] is not None else "FAILED"
        met = {True: "yes", False: "NO", None: "-"}[m["met"]]
        rows.append((m["name"], fmt(m["ours"], m["unit"]), m["peer"],
                     fmt(m["peer_value"], m["unit"]), ratio, m["goal"], met))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    for m in metrics:
        if m.get("error"):
            lines.append("ERROR %s: %s" % (m["name"], m["error"]))
    return "\n".join(lines)


def main():
    global RT_BLOCKS, RT_PER_BLOCK
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kiln", help="path to the kiln binary (build/kiln)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    ap.add_argument("--quick", action="store_true",
                    help="fewer samples (2x10 round trips, 3 starts): a smoke test")
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    if not os.access(kiln, os.X_OK):
        sys.exit("bench/kernel.py: %s is not an executable (run make first)" % kiln)
    starts = STARTS
    if args.quick:
        RT_BLOCKS, RT_PER_BLOCK, starts = 2, 10, 3

    tmp = tempfile.mkdtemp(prefix="kiln-bench-kernel-")
    try:
        specs = setup_jupyter_home(kiln, tmp)
        env = environment(kiln)
        print("kiln kernel bench: %s, %d cores, commit %s%s; jupyter_client %s, ipykernel %s"
              % (env["device"]["model"], env["device"]["cores"], (env["commit"] or "?")[:10],
                 " (dirty tree)" if env["dirty"] else "", env["jupyter_client"],
                 env["ipykernel"]), flush=True)
        names = {"kiln": "kiln", PEER: "python3"}
        t_start = time.perf_counter()

        t0 = time.perf_counter()
        rt, rt_err, rt_checks, rt_hb = bench_roundtrip(names)
        print("  execute round trips: %.1fs" % (time.perf_counter() - t0), flush=True)
        t0 = time.perf_counter()
        st, st_err = bench_start(names, specs, starts)
        print("  starts: %.1fs" % (time.perf_counter() - t0), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    metrics = []
    for cname, code, _ in CELLS:
        ours, peer = rt[("kiln", cname)], rt[(PEER, cname)]
        err = "; ".join("%s: %s" % (k, rt_err[k]) for k in names if k in rt_err) or None
        metrics.append(metric(
            cname, "s", ">= 5x lower median than ipykernel", 5.0,
            statistics.median(ours) if ours and not err else None,
            statistics.median(peer) if peer and not err else None, err,
            {"code": code, "measure": "execute_request sent -> status idle (parent = it) "
             "read from IOPub; raw pyzmq DEALER/SUB, signed by jupyter_client.session",
             "warmup": RT_WARMUP, "blocks": RT_BLOCKS, "per_block": RT_PER_BLOCK,
             "iopub_msgs_ours": rt_checks.get(("kiln", cname)),
             "iopub_msgs_peer": rt_checks.get((PEER, cname)),
             "ours_summary": summary(ours), "peer_summary": summary(peer),
             "heartbeat_echo_median_ours": rt_hb.get("kiln"),
             "heartbeat_echo_median_peer": rt_hb.get(PEER)}))
    for m, desc in (("raw", "Popen of the kernelspec argv -> first kernel_info_reply; "
                     "signed kernel_info_request every %g ms over a DEALER "
                     "(RECONNECT_IVL 1 ms, IMMEDIATE)" % (POLL_S * 1e3)),
                    ("jupyter_client", "KernelManager.start_kernel() + km.client()"
                     ".start_channels() + wait_for_ready() (which waits for 0.2 s of IOPub "
                     "silence after the kernel_info_reply)")):
        ours, peer = st[("kiln", m)], st[(PEER, m)]
        err = "; ".join("%s: %s" % (k, st_err[(k, m)]) for k in names if (k, m) in st_err) \
            or None
        metrics.append(metric(
            "start_ready_" + m, "s", ">= 10x faster than ipykernel", 10.0,
            statistics.median(ours) if ours and not err else None,
            statistics.median(peer) if peer and not err else None, err,
            {"measure": desc, "starts": starts, "warmup_starts": 1,
             "ours_runs": ours, "peer_runs": peer}))

    env["wall_s"] = round(time.perf_counter() - t_start, 1)
    env["loadavg_at_end"] = list(os.getloadavg())
    result = dict(env)
    result["ratio_definition"] = RATIO_DEF
    result["metrics"] = metrics

    print()
    print(table(metrics))
    if rt_hb:
        print("\nheartbeat echo (this client + ZeroMQ, no kernel work), median: %s"
              % ", ".join("%s %s" % (k, fmt(v, "s")) for k, v in rt_hb.items()))
    print("medians; ratio = ipykernel / kiln: > 1 means Kiln is faster.")
    if not args.no_save:
        save_results(result, args.out, "kernel-cpu", env["commit"])
    return exit_status(metrics, "bench/kernel.py")


if __name__ == "__main__":
    sys.exit(main())
