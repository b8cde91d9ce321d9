#!/usr/bin/env python3
"""Custom-kernel benchmarks on the GPU (issue 4): Kiln's NVRTC driver against CuPy's
RawKernel and a raw cuLaunchKernel loop, all in the same run on the same device.

Usage: bench/kernels_gpu.py [--no-save] [--out DIR] [--quick] build/kiln

Needs, beside build/kiln: build/bench/nvrtc_bench (the driver timed at its interface)
and build/bench/launch (raw cuLaunchKernel, libcuda dlopened), both built by
`make bench-gpu`. Without a CUDA device it prints "no CUDA device: skipped" and exits 0.

Metrics (medians; ratio = peer / ours for times, so ratio > 1 means Kiln is faster):
  nvrtc_cold_compile       a small saxpy never compiled before (fresh cache folders),
                           compile + load, device already initialised; peer: CuPy
                           RawKernel(...).compile() with a fresh CUPY_CACHE_DIR
                           (goal: no slower than CuPy)
  disk_cache_hit           the same kernel in a fresh process with a warm disk cache
                           (goal: under 5 ms; CuPy's disk cache as the peer)
  session_cache_hit        compiling the same kernel again in the same process
                           (CuPy's in-memory cache as the peer)
  launch_driver            an empty kernel launched N times through cuda_kdriver.launch,
                           then one sync, per launch; peer: raw cuLaunchKernel in C
                           (goal: adds under 10 us)
  launch_kiln              the same launched from a Kiln cell in a loop (`kiln run`,
                           N launches minus 0 launches, per launch), against raw
                           cuLaunchKernel (goal: adds under 10 us)
  launch_cupy              CuPy's RawKernel launch of the same empty kernel (context)

Writes bench/results/<device>-kernels-<date>-<shortcommit>.json through benchlib.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from benchlib import BenchError, device_slug, exit_status, gpu_result, run_json, save_results

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RATIO_DEF = ("ratio = peer / ours for times (lower is better): ratio > 1 means Kiln is "
             "faster, ratio < 1 means the peer is faster")

SAXPY_BODY = """__global__ void saxpy(float a, const float *x, float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"""

# CuPy's side, run in its own process: prints one JSON object
CUPY_COMPILE = r"""
import json, sys, time
import cupy as cp
cp.zeros(1); cp.cuda.runtime.deviceSynchronize()      # context first, as Kiln's side
src = '// %s\nextern "C" ' + sys.argv[2]
mode = sys.argv[1]
if mode == "mem":
    cp.RawKernel(src % sys.argv[3], "saxpy").compile()
t0 = time.perf_counter()
k = cp.RawKernel(src % sys.argv[3], "saxpy")
k.compile()
t1 = time.perf_counter()
print(json.dumps({"ms": (t1 - t0) * 1e3, "cupy": cp.__version__}))
"""

CUPY_LAUNCH = r"""
import json, sys, time
import cupy as cp
n = int(sys.argv[1])
k = cp.RawKernel('extern "C" __global__ void empty() {}', "empty")
s = cp.cuda.Stream(non_blocking=True)
with s:
    for _ in range(1000):
        k((1,), (1,), ())
    s.synchronize()
    best = 1e30
    for rep in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            k((1,), (1,), ())
        s.synchronize()
        best = min(best, (time.perf_counter() - t0) / n)
print(json.dumps({"launch_us": best * 1e6}))
"""


def env_with(**kw):
    e = dict(os.environ)
    e.update({k: str(v) for k, v in kw.items()})
    return e


def cupy_python():
    """A python that imports cupy (this one, else python3 on PATH), or None."""
    for py in (sys.executable, shutil.which("python3")):
        if py and subprocess.run([py, "-c", "import cupy"], capture_output=True).returncode == 0:
            return py
    return None


def metric(name, unit, ours, peer, peer_value, goal, met, detail, lower_better=True):
    m = {"name": name, "unit": unit, "ours": ours, "peer": peer, "peer_value": peer_value,
         "ratio": (peer_value / ours if lower_better else ours / peer_value)
         if (ours and peer_value) else None,
         "goal": goal, "met": met, "detail": detail}
    return m


def failed(name, unit, exc):
    print("  %s: FAILED: %s" % (name, exc))
    return {"name": name, "unit": unit, "error": str(exc)}


# ---------------------------------------------------------------------------------------

def bench_compiles(nb, cupy, reps):
    """Cold, disk-hit and session-hit compile times for Kiln and CuPy (ms lists)."""
    res = {"kiln": {"cold": [], "disk": [], "mem": []}, "cupy": {"cold": [], "disk": [], "mem": []}}
    for r in range(reps):
        nonce = uuid.uuid4().hex
        with tempfile.TemporaryDirectory(prefix="kiln-kc-") as kdir, \
                tempfile.TemporaryDirectory(prefix="cupy-kc-") as cdir:
            kenv = env_with(XDG_CACHE_HOME=kdir)
            cold = run_json([nb, "compile", nonce], kenv)
            if cold.get("cache") != 0:
                raise BenchError("kiln cold compile was served from cache %s" % cold.get("cache"))
            res["kiln"]["cold"].append(cold["ms"])
            disk = run_json([nb, "compile", nonce], kenv)
            if disk.get("cache") != 2:
                raise BenchError("kiln fresh-process compile was not a disk hit (cache %s)" % disk.get("cache"))
            res["kiln"]["disk"].append(disk["ms"])
            mem = run_json([nb, "mem", nonce], kenv)
            if mem.get("cache") != 1:
                raise BenchError("kiln second compile was not a session hit (cache %s)" % mem.get("cache"))
            res["kiln"]["mem"].append(mem["ms"])
            res["kiln_nvrtc"] = cold.get("nvrtc")
            if cupy:
                cenv = env_with(CUPY_CACHE_DIR=cdir)
                for mode in ("cold", "disk", "mem"):
                    out = run_json([cupy, "-c", CUPY_COMPILE, mode, SAXPY_BODY, nonce], cenv)
                    res["cupy"][mode].append(out["ms"])
                    res["cupy_version"] = out.get("cupy")
    return res


def kiln_launch_us(kiln, n):
    """Per-launch time of an empty kernel launched from a Kiln cell loop."""
    def script(count):
        return ("%%device cuda\n__global__ void empty() {}\nempty<<<1, 1>>>();\n"
                "for (int i = 0; i < %d; i++) { empty<<<1, 1>>>(); }\n" % count)

    def wall(count):
        with tempfile.NamedTemporaryFile("w", suffix=".kn", delete=False) as f:
            f.write(script(count))
            path = f.name
        try:
            t0 = time.perf_counter()
            p = subprocess.run([kiln, "run", path], capture_output=True, text=True, timeout=600)
            t1 = time.perf_counter()
        finally:
            os.unlink(path)
        if p.returncode != 0:
            raise BenchError("kiln run: %s" % (p.stderr or p.stdout).strip()[-300:])
        return t1 - t0

    base = statistics.median(wall(0) for _ in range(3))
    full = statistics.median(wall(n) for _ in range(3))
    return max(full - base, 0.0) / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    build = os.path.dirname(kiln)
    nb = os.path.join(build, "bench", "nvrtc_bench")
    raw = os.path.join(build, "bench", "launch")
    probe = os.path.join(build, "tests", "gpu_probe")
    for path in (nb, raw):
        if not os.path.exists(path):
            print("bench/kernels_gpu.py: %s is missing: run `make bench-gpu BUILD=%s`" % (path, build))
            return 1
    p = subprocess.run([probe] if os.path.exists(probe) else [nb, "launch", "1"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print("bench/kernels_gpu.py: no CUDA device: skipped (%s)" % p.stdout.strip())
        return 0
    device = p.stdout.strip()
    reps = 3 if args.quick else 7
    n_launch = 20000 if args.quick else 200000
    cupy = cupy_python()
    t_start = time.time()
    print("kernels_gpu on %s; CuPy: %s" % (device, cupy or "not found"))

    metrics = []
    try:
        c = bench_compiles(nb, cupy, reps)
        med = {who: {k: statistics.median(v) if v else None for k, v in d.items()}
               for who, d in c.items() if isinstance(d, dict)}
        k, cp_ = med["kiln"], med["cupy"]
        metrics.append(metric("nvrtc_cold_compile", "ms", k["cold"], "cupy RawKernel", cp_["cold"],
                              "no slower than CuPy's cold compile",
                              (k["cold"] <= cp_["cold"]) if cp_["cold"] else None,
                              {"kiln_ms": c["kiln"]["cold"], "cupy_ms": c["cupy"]["cold"],
                               "nvrtc": c.get("kiln_nvrtc"), "cupy": c.get("cupy_version")}))
        metrics.append(metric("disk_cache_hit", "ms", k["disk"], "cupy RawKernel", cp_["disk"],
                              "under 5 ms in a fresh process", k["disk"] < 5.0,
                              {"kiln_ms": c["kiln"]["disk"], "cupy_ms": c["cupy"]["disk"]}))
        metrics.append(metric("session_cache_hit", "ms", k["mem"], "cupy RawKernel", cp_["mem"],
                              "(context)", None,
                              {"kiln_ms": c["kiln"]["mem"], "cupy_ms": c["cupy"]["mem"]}))
    except (BenchError, subprocess.TimeoutExpired) as e:
        metrics.append(failed("nvrtc_compiles", "ms", e))

    raw_us = None
    try:
        r = run_json([raw, str(n_launch)])
        if "skipped" in r:
            raise BenchError(r["skipped"])
        raw_us = r["launch_us"]
        d = run_json([nb, "launch", str(n_launch)])
        metrics.append(metric("launch_driver", "us", d["launch_us"], "raw cuLaunchKernel (C)", raw_us,
                              "adds under 10 us per launch", d["launch_us"] - raw_us < 10.0,
                              {"driver": d, "raw": r}))
    except (BenchError, subprocess.TimeoutExpired) as e:
        metrics.append(failed("launch_driver", "us", e))
    try:
        if raw_us is None:
            raise BenchError("no raw cuLaunchKernel figure to compare with")
        us = kiln_launch_us(kiln, n_launch)
        metrics.append(metric("launch_kiln", "us", us, "raw cuLaunchKernel (C)", raw_us,
                              "adds under 10 us per launch", us - raw_us < 10.0, {"launches": n_launch}))
    except (BenchError, subprocess.TimeoutExpired) as e:
        metrics.append(failed("launch_kiln", "us", e))
    if cupy:
        try:
            cu = run_json([cupy, "-c", CUPY_LAUNCH, str(n_launch)])
            metrics.append(metric("launch_cupy", "us", cu["launch_us"], "raw cuLaunchKernel (C)", raw_us,
                                  "(context: CuPy's launch)", None, {}))
        except (BenchError, subprocess.TimeoutExpired) as e:
            metrics.append(failed("launch_cupy", "us", e))

    for m in metrics:
        if "error" not in m:
            print("  %-20s ours %10.4f %s   %s %s" % (m["name"], m["ours"], m["unit"], m["peer"],
                                                     "%.4f" % m["peer_value"] if m["peer_value"] else "-"))
    result = gpu_result(device, t_start, RATIO_DEF, metrics)
    if not args.no_save:
        save_results(result, args.out, "%s-kernels" % device_slug(device), result["commit"])
    return exit_status(metrics, "kernels_gpu")


if __name__ == "__main__":
    sys.exit(main())
