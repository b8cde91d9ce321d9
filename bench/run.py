#!/usr/bin/env python3
"""Kiln benchmark suite: every benchmark runs its peer in the same run and reports the ratio.

Usage: bench/run.py [--only interp,tensor,cells] [--no-save] [--out DIR] build/kiln

Writes bench/results/cpu-<host>-<date>-<shortcommit>.json and prints a table.
ratio = peer time / Kiln time, so ratio > 1 means Kiln is faster. See bench/README.md.
"""

import argparse
import datetime
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import cpu_model, dirty_files, exit_status, git, save_results

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable            # the peer CPython is the python running this script
TIMEOUT = 120                  # seconds for any one subprocess

RATIO_DEF = ("ratio = peer / ours for times (lower is better): ratio > 1 means Kiln is "
             "faster, ratio < 1 means the peer is faster")


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# helpers

def sh(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, **kw)
    except subprocess.TimeoutExpired:
        raise BenchError("timed out after %ds: %s" % (TIMEOUT, " ".join(map(str, cmd))))


def tail(text, n=600):
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


def run_kiln(kiln, source, tag):
    """Run SOURCE (cells separated by //%% lines) through `kiln run`; return stdout.
    Any non-zero exit status or error output is a BenchError naming the snippet."""
    with tempfile.NamedTemporaryFile("w", suffix=".kn", prefix="bench-%s-" % tag,
                                     delete=False) as f:
        f.write(source)
        path = f.name
    try:
        p = sh([kiln, "run", path])
    finally:
        os.unlink(path)
    if p.returncode != 0:
        raise BenchError("kiln run failed (exit %d) in %s: %s"
                         % (p.returncode, tag, tail(p.stderr + p.stdout)))
    return p.stdout


def parse_marks(out, mark, want, tag):
    """Floats from lines 'MARK <float>'; exactly WANT of them, all finite and >= 0."""
    vals = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == mark:
            try:
                vals.append(float(parts[1]))
            except ValueError:
                raise BenchError("%s: bad timing line %r" % (tag, line))
    if len(vals) != want:
        raise BenchError("%s: expected %d '%s' lines, got %d; output: %s"
                         % (tag, want, mark, len(vals), tail(out)))
    for v in vals:
        if not math.isfinite(v) or v < 0:
            raise BenchError("%s: bad time %r" % (tag, v))
    return vals


def check_line(out, expect, tag):
    if expect not in out.splitlines():
        raise BenchError("%s: expected output line %r not found; output: %s"
                         % (tag, expect, tail(out)))


def run_python(code, tag):
    p = sh([PY, "-c", code])
    if p.returncode != 0:
        raise BenchError("%s: python failed (exit %d): %s"
                         % (tag, p.returncode, tail(p.stderr + p.stdout)))
    return p.stdout


# ---------------------------------------------------------------------------------------
# metric records

def metric(name, unit, peer, goal, min_ratio, ours=None, peer_value=None, error=None,
           detail=None):
    """One metric. Times only (lower is better): ratio = peer_value / ours."""
    m = {"name": name, "unit": unit, "ours": ours, "peer": peer, "peer_value": peer_value,
         "ratio": None, "goal": goal, "min_ratio": min_ratio, "met": None}
    if error is None and ours is not None and peer_value is not None and ours > 0:
        m["ratio"] = peer_value / ours
    if error is not None:
        m["error"] = error
    if min_ratio is not None:
        m["met"] = bool(m["ratio"] is not None and m["ratio"] >= min_ratio)
    if detail:
        m["detail"] = detail
        # the best-of is the metric; the medians and the spread say how much to trust it
        o, p = detail.get("ours_runs"), detail.get("peer_runs")
        if o and p and error is None:
            mo, mp = median(o), median(p)
            detail["ours_median"], detail["peer_median"] = mo, mp
            if mo > 0:
                detail["ratio_of_medians"] = mp / mo
            spread = max(max(o) / min(o), max(p) / min(p)) if min(o) > 0 and min(p) > 0 else None
            detail["max_spread"] = spread
            m["noisy"] = bool(spread is not None and spread > 1.5)
    return m


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def interleaved(rounds, sides):
    """Run each side (a callable returning a list of samples) in turn, ROUNDS times, so a
    change in the machine's load hits Kiln and its peers alike. A side that fails is not
    run again. Returns [(samples or None, error or None)] per side."""
    samples, errors = [[] for _ in sides], [None] * len(sides)
    for r in range(rounds):
        for i, fn in enumerate(sides):
            if errors[i] is None:
                v, errors[i] = guarded(fn)
                if errors[i] is None:
                    samples[i] += v
    return [(None if e else s, e) for s, e in zip(samples, errors)]


def guarded(fn):
    """Run fn() -> value; a BenchError (or anything else) becomes (None, message)."""
    try:
        return fn(), None
    except BenchError as e:
        return None, str(e)
    except Exception as e:      # a bug here must not lose the other benchmarks
        return None, "%s: %s" % (type(e).__name__, e)


# ---------------------------------------------------------------------------------------
# 1. interpreter loop

N_LOOP = 10_000_000
LOOP_SUM = N_LOOP * (N_LOOP - 1) // 2
INTERP_REPEATS = 3             # rounds of (Kiln, CPython, Lua), one timing each

KILN_LOOP_CELL = """double t0 = time();
int s = 0; for (int i = 0; i < %d; i++) s += i;
double dt = time() - t0;
printf("BENCH %%.9f\\n", dt);
printf("SUM %%d\\n", s);
""" % N_LOOP

PY_LOOP = """import time
code = compile(%r, "<loop>", "exec")
best = []
for r in range(%d):
    t0 = time.perf_counter()
    exec(code, g := {})
    best.append(time.perf_counter() - t0)
    assert g["s"] == %d, g["s"]
for t in best:
    print("BENCH %%.9f" %% t)
""" % ("s = 0\nfor i in range(%d): s += i\n" % N_LOOP, 1, LOOP_SUM)

LUA_LOOP = """for r = 1, %d do
  local t0 = os.clock()
  local s = 0
  for i = 0, %d do s = s + i end
  local dt = os.clock() - t0
  assert(s == %d)
  print(string.format("BENCH %%.9f", dt))
end
""" % (1, N_LOOP - 1, LOOP_SUM)


def bench_interp(kiln):
    def ours():
        out = run_kiln(kiln, KILN_LOOP_CELL, "interp")
        sums = [l for l in out.splitlines() if l.startswith("SUM ")]
        if sums != ["SUM %d" % LOOP_SUM]:
            raise BenchError("interp: wrong sums %r (want %d)" % (sums, LOOP_SUM))
        return parse_marks(out, "BENCH", 1, "interp")

    def cpython():
        # the loop at module level, as written; exec() of the source keeps it at module
        # level (globals dict), timed in-process
        return parse_marks(run_python(PY_LOOP, "cpython loop"), "BENCH",
                           1, "cpython loop")

    def lua():
        lua = shutil.which("lua5.4")
        if not lua:
            raise BenchError("lua5.4 not found (Debian package lua5.4)")
        p = sh([lua, "-e", LUA_LOOP])
        if p.returncode != 0:
            raise BenchError("lua5.4 failed: %s" % tail(p.stderr + p.stdout))
        return parse_marks(p.stdout, "BENCH", 1, "lua loop")

    (k, kerr), (c, cerr), (l, lerr) = interleaved(INTERP_REPEATS, [ours, cpython, lua])
    kbest = min(k) if k else None
    res = []
    res.append(metric("interp_loop_10M", "s", "CPython %s" % platform.python_version(),
                      ">= 3x faster than CPython", 3.0,
                      ours=kbest, peer_value=min(c) if c else None, error=kerr or cerr,
                      detail={"ours_runs": k, "peer_runs": c, "best_of": INTERP_REPEATS}))
    res.append(metric("interp_loop_10M_lua", "s", "Lua 5.4", "none (reference only)", None,
                      ours=kbest, peer_value=min(l) if l else None, error=kerr or lerr,
                      detail={"ours_runs": k, "peer_runs": l, "best_of": INTERP_REPEATS}))
    return res


# ---------------------------------------------------------------------------------------
# 2. CPU tensors against NumPy

N_VEC = 10_000_000
TENSOR_ROUNDS = 2               # rounds of (Kiln, NumPy) per op, interleaved
TENSOR_REPEATS = 3              # timed repeats per round: best of 6 in all

# name, setup (kiln), setup (numpy), op (kiln, assigns a declared var), op (numpy), k iters
# `decl` declares the result variable once (that is also the warm-up run).
TENSOR_OPS = [
    ("add_1e7_f32", "randn(%d)" % N_VEC, 2,
     "tensor c = a + b;", "c = a + b;", "c = a + b", 10),
    ("mul_1e7_f32", "randn(%d)" % N_VEC, 2,
     "tensor c = a * b;", "c = a * b;", "c = a * b", 10),
    ("exp_1e7_f32", "randn(%d)" % N_VEC, 1,
     "tensor c = exp(a);", "c = exp(a);", "c = np.exp(a)", 5),
    ("sum_1e7_f32", "randn(%d)" % N_VEC, 1,
     "auto c = sum(a);", "c = sum(a);", "c = a.sum()", 20),
    ("max_1e7_f32", "randn(%d)" % N_VEC, 1,
     "auto c = max(a);", "c = max(a);", "c = a.max()", 20),
    ("matmul_1024_f32", "randn(1024, 1024)", 2,
     "tensor c = a @ b;", "c = a @ b;", "c = a @ b", 5),
    ("softmax_4096x1024_f32", "randn(4096, 1024)", 1,
     "tensor e = exp(a - max(a, 1, true)); tensor c = e / sum(e, 1, true);",
     "e = exp(a - max(a, 1, true)); c = e / sum(e, 1, true);",
     "e = np.exp(a - a.max(axis=1, keepdims=True)); c = e / e.sum(axis=1, keepdims=True)", 5),
]


def kiln_tensor_source(ctor, nargs, decl, op, k):
    names = ["a", "b"][:nargs]
    setup = "%device cpu\nseed(0);\n" + "".join(
        "tensor %s = %s;\n" % (n, ctor) for n in names)
    setup += 'print("DEVICE", a.device, a.dtype);\n'
    cells = [setup, decl + "\n" + op + '\nprint("WARM");\n']
    rep = ("double t0 = time();\nfor (int it = 0; it < %d; it++) { %s }\n"
           'printf("BENCH %%.9f\\n", (time() - t0) / %d);\n' % (k, op, k))
    cells += [rep] * TENSOR_REPEATS
    cells.append('print("DONE");\n')
    return "\n//%%\n".join(cells)


NUMPY_TEMPLATE = """import time, numpy as np
rng = np.random.default_rng(0)
shape = {shape}
a = rng.standard_normal(shape, dtype=np.float32)
b = rng.standard_normal(shape, dtype=np.float32)
{op}
{op}
for r in range({reps}):
    t0 = time.perf_counter()
    for it in range({k}):
        {op}
    print("BENCH %.9f" % ((time.perf_counter() - t0) / {k}))
print("DTYPE", np.asarray(c).dtype)
"""


def bench_tensor(kiln):
    res = []
    for name, ctor, nargs, decl, op, npop, k in TENSOR_OPS:
        tag = "tensor " + name

        def ours():
            out = run_kiln(kiln, kiln_tensor_source(ctor, nargs, decl, op, k), name)
            dev = [l for l in out.splitlines() if l.startswith("DEVICE ")]
            if not dev or dev[0].split()[1:] != ["cpu", "f32"]:
                raise BenchError("%s: expected a f32 tensor on cpu, got %r" % (tag, dev))
            check_line(out, "DONE", tag)
            return parse_marks(out, "BENCH", TENSOR_REPEATS, tag)

        def numpy():
            shape = tuple(int(x) for x in re.findall(r"\d+", ctor))
            code = NUMPY_TEMPLATE.format(shape=shape, op=npop, reps=TENSOR_REPEATS, k=k)
            out = run_python(code, "numpy " + name)
            check_line(out, "DTYPE float32", "numpy " + name)
            return parse_marks(out, "BENCH", TENSOR_REPEATS, "numpy " + name)

        (kt, kerr), (nt, nerr) = interleaved(TENSOR_ROUNDS, [ours, numpy])
        res.append(metric(name, "s", "NumPy", ">= NumPy's speed (ratio >= 1)", 1.0,
                          ours=min(kt) if kt else None, peer_value=min(nt) if nt else None,
                          error=kerr or nerr,
                          detail={"ours_runs": kt, "peer_runs": nt, "iters_per_run": k,
                                  "best_of": TENSOR_ROUNDS * TENSOR_REPEATS, "op_kiln": op, "op_numpy": npop}))
    return res


# ---------------------------------------------------------------------------------------
# 3. cell overhead

N_CELLS = 10_000
CELL_REPEATS = 3                # rounds of (Kiln one-cell file, Kiln full file, IPython)

IPY_TEMPLATE = """import os, sys, tempfile, time
os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="bench-ipy-")
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
for i in range(200):                     # warm-up
    sh.run_cell("x = 1")
for r in range({reps}):
    sh.run_cell("x = 0")
    t0 = time.perf_counter()
    for i in range({n}):
        sh.run_cell("x = x + 1")
    dt = time.perf_counter() - t0
    assert sh.user_ns["x"] == {n}, sh.user_ns["x"]
    print("BENCH %.9f" % (dt / {n} * 1e6))
import IPython
print("IPYTHON", IPython.__version__)
"""


def bench_cells(kiln):
    full = "\n//%%\n".join(["int x = 0;"] + ["x = x + 1;"] * N_CELLS
                           + ['printf("X %d\\n", x);']) + "\n"
    one = 'int x = 0; printf("X %d\\n", x);\n'
    extra_cells = N_CELLS + 1     # the full file has 10,002 cells, the baseline 1
    tmp = tempfile.mkdtemp(prefix="bench-cells-")
    pf, p1 = os.path.join(tmp, "full.kn"), os.path.join(tmp, "one.kn")
    with open(pf, "w") as f:
        f.write(full)
    with open(p1, "w") as f:
        f.write(one)

    def wall(path, want):
        t0 = time.perf_counter()
        p = sh([kiln, "run", path])
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise BenchError("cells: kiln run failed (exit %d): %s"
                             % (p.returncode, tail(p.stderr + p.stdout)))
        if p.stdout.strip() != "X %d" % want:
            raise BenchError("cells: unexpected output %r" % tail(p.stdout))
        return [dt]

    ver = []

    def ipython():
        out = run_python(IPY_TEMPLATE.format(reps=1, n=N_CELLS), "ipython cells")
        ver[:] = [l.split()[1] for l in out.splitlines() if l.startswith("IPYTHON ")]
        return parse_marks(out, "BENCH", 1, "ipython cells")

    try:
        (ones, e1), (fulls, e2), (ip, ierr) = interleaved(CELL_REPEATS, [
            lambda: wall(p1, 0), lambda: wall(pf, N_CELLS), ipython])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kerr = e1 or e2
    ours = (min(fulls) - min(ones)) / extra_cells * 1e6 if not kerr else None
    detail = {"best_of": CELL_REPEATS, "cells": N_CELLS, "startup_s_runs": ones,
              "full_s_runs": fulls, "peer_runs": ip,
              "ours_runs": None if kerr else [(f - min(ones)) / extra_cells * 1e6
                                               for f in fulls]}
    peer = "IPython %s InteractiveShell.run_cell" % (ver[0] if ver else "")
    return [metric("cell_overhead", "us/cell", peer.replace("  ", " "), "none (reported)", None,
                   ours=ours, peer_value=min(ip) if ip else None,
                   error=kerr or ierr, detail=detail)]


# ---------------------------------------------------------------------------------------
# environment

def environment(kiln):
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    import numpy
    v = sh([kiln, "--version"])
    lua = shutil.which("lua5.4")
    return {
        "device": {"kind": "cpu", "model": cpu_model(), "cores": cores,
                   "hostname": socket.gethostname()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        # the working tree is shared: say which tracked files differ from the commit
        "dirty": dirty_files(),
        "kiln": (v.stdout or v.stderr).strip(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "lua": (sh([lua, "-v"]).stdout.strip() if lua else None),
        "loadavg_at_start": list(os.getloadavg()),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                if k in os.environ},
    }


# ---------------------------------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "s":
        return "%.2f ms" % (v * 1e3) if v < 10 else "%.2f s" % v
    return "%.2f %s" % (v, unit)


def table(metrics):
    rows = [("metric", "kiln", "peer", "peer value", "ratio", "ratio of medians", "goal",
             "met")]
    for m in metrics:
        ratio = "%.2fx" % m["ratio"] if m["ratio"] is not None else "FAILED"
        met = {True: "yes", False: "NO", None: "-"}[m["met"]]
        if m["ratio"] is not None and m.get("noisy"):
            ratio += " (noisy)"
        rom = (m.get("detail") or {}).get("ratio_of_medians")
        rows.append((m["name"], fmt(m["ours"], m["unit"]), m["peer"],
                     fmt(m["peer_value"], m["unit"]), ratio,
                     "%.2fx" % rom if rom is not None else "-", m["goal"], met))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    for m in metrics:
        if m.get("error"):
            lines.append("ERROR %s: %s" % (m["name"], m["error"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kiln", help="path to the kiln binary (build/kiln)")
    ap.add_argument("--only", default="interp,tensor,cells",
                    help="comma-separated subset of interp,tensor,cells")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    if not os.access(kiln, os.X_OK):
        sys.exit("bench: %s is not an executable (run make first)" % kiln)

    env = environment(kiln)
    print("kiln bench: %s, %d cores, commit %s%s" % (
        env["device"]["model"], env["device"]["cores"], (env["commit"] or "?")[:10],
        " (dirty tree)" if env["dirty"] else ""), flush=True)
    suites = {"interp": bench_interp, "tensor": bench_tensor, "cells": bench_cells}
    metrics = []
    t_start = time.perf_counter()
    for key in args.only.split(","):
        key = key.strip()
        if key not in suites:
            sys.exit("bench: unknown benchmark %r" % key)
        t0 = time.perf_counter()
        ms = suites[key](kiln)
        print("  %s: %.1fs" % (key, time.perf_counter() - t0), flush=True)
        metrics += ms
    env["wall_s"] = round(time.perf_counter() - t_start, 1)
    env["loadavg_at_end"] = list(os.getloadavg())
    result = dict(env)
    result["ratio_definition"] = RATIO_DEF
    result["metrics"] = metrics

    print()
    print(table(metrics))
    print("\nratio = peer / kiln: > 1 means Kiln is faster. ratio is of the best runs; "
          "(noisy): a side's slowest run took > 1.5x its fastest")
    if not args.no_save:
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", env["device"]["hostname"])
        save_results(result, args.out, "cpu-%s" % host, env["commit"])
    return exit_status(metrics, "bench")


if __name__ == "__main__":
    sys.exit(main())
