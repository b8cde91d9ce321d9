#!/usr/bin/env python3
"""Built-in tensor ops on the GPU (issue 5): Kiln's CUDA backend against the device's
measured copy bandwidth and against PyTorch eager, all in the same run on the same GPU.

Usage: bench/gpu_ops.py [--no-save] [--out DIR] [--quick] [--dry-run DEVICE] build/kiln

Without a CUDA device it prints "no CUDA device: skipped (why)" and exits 0.
--dry-run sim (or cpu) runs every Kiln script on that device with tiny sizes, to check
the scripts and the parsing on a machine without a GPU; it saves nothing.

Kiln is driven through `kiln run` scripts that time themselves with the language's
time() builtin; `.item()` of one element (a device-to-host copy on the session's stream,
then a stream sync) closes each timed region, so the GPU work is inside it.

Metrics (ratio = peer / ours for times, ours / peer for bandwidths: ratio > 1 means
Kiln is better):
  copy_bw                 a 2^28 f32 copy (x.to(f32)), GB/s (read + write); peer:
                          PyTorch's y.copy_(x) (the device's copy bandwidth)
  add, mul, exp           elementwise on 2^28 f32, GB/s moved (add/mul: 2 reads + 1
                          write; exp: 1 + 1), as a fraction of the copy bandwidth
                          (goal: at least 0.85); the same ops in PyTorch for context
  sum, max                whole-tensor reductions of 2^28 f32, GB/s read, as a
                          fraction of the copy bandwidth (goal: at least 0.85)
  matmul_{4096,8192}_{f32,tf32,bf16}
                          TFLOP/s of an N^3 product against a raw cublasGemmEx call
                          (bench/cublas_raw.c: same types and compute mode, buffers made
                          once; goal: at least 0.97 of it), with torch.matmul beside it
                          (detail.torch_TFLOPs, detail.ratio_vs_torch). TF32: KILN_TF32=1
                          for Kiln, CUBLAS_COMPUTE_32F_FAST_TF32 raw,
                          torch.backends.cuda.matmul.allow_tf32 for PyTorch. bf16: bf16
                          operands and result, f32 accumulation on all three.
  small_op_loop           c = a + b on 1,000 f32 in a loop, us per op, against
                          PyTorch eager (goal: at most half PyTorch's time); detail
                          holds bench/launch_paths's host cost of one launch of such a
                          kernel by API path (<<<>>>, cudaLaunchKernel, cuLaunchKernel)
  alloc_churn             zeros() of 16 sizes from 4 KiB to 128 MiB in turn, us per
                          allocation + fill + free, against PyTorch's caching allocator

Writes bench/results/<device>-gpu-ops-<date>-<shortcommit>.json through benchlib.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from benchlib import BenchError, device_slug, exit_status, gpu_result, run_json, save_results

HERE = os.path.dirname(os.path.abspath(__file__))
RATIO_DEF = ("ratio = peer / ours for times and ours / peer for rates: ratio > 1 means Kiln is "
             "better, ratio < 1 means the peer is")
GB = 1e9


def run_kiln(kiln, source, env=None, timeout=600):
    """Runs a Kiln script; returns {name: float} from its 'name value' lines."""
    with tempfile.NamedTemporaryFile("w", suffix=".kn", prefix="gpu-ops-", delete=False) as f:
        f.write(source)
        path = f.name
    try:
        p = subprocess.run([kiln, "run", path], capture_output=True, text=True, timeout=timeout,
                           env=env)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        raise BenchError("kiln run: %s" % (p.stderr or p.stdout).strip()[-500:])
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.match(r"^[a-z0-9_]+$", parts[0]):
            out[parts[0]] = float(parts[1])
    return out


def kiln_header(device):
    return "%%device %s\n" % device


def kiln_timed(name, setup_stmt, stmt, sync, reps):
    """Kiln source timing stmt reps times after one warm-up; prints 'name seconds_per_rep'."""
    return ("%s\n%s\nfloat s_%s = %s;\nfloat t_%s = time();\n"
            "for (int i = 0; i < %d; i++) { %s }\ns_%s = %s;\n"
            "printf(\"%s %%.9g\\n\", (time() - t_%s) / %d);\n"
            % (setup_stmt, stmt, name, sync, name, reps, stmt, name, sync, name, name, reps))


def kiln_bandwidth(kiln, device, n, reps):
    src = kiln_header(device) + "tensor a = rand(%d);\ntensor b = rand(%d);\ntensor c = a + b;\n" % (n, n)
    src += kiln_timed("copy", "", "c = a.to(f32);", "c[0].item()", reps)
    src += kiln_timed("add", "", "c = a + b;", "c[0].item()", reps)
    src += kiln_timed("mul", "", "c = a * b;", "c[0].item()", reps)
    src += kiln_timed("exp", "", "c = exp(a);", "c[0].item()", reps)
    src += kiln_timed("sum", "tensor r = a.sum();", "r = a.sum();", "r.item()", reps)
    src += kiln_timed("max", "", "r = a.max();", "r.item()", reps)
    return run_kiln(kiln, src)


def kiln_matmul(kiln, device, n, dtype, reps, tf32):
    src = kiln_header(device) + "tensor a = randn(%d, %d).to(%s);\ntensor b = randn(%d, %d).to(%s);\n" % (
        n, n, dtype, n, n, dtype)
    src += kiln_timed("mm", "tensor c = a @ b;", "c = a @ b;", "c[0, 0].item()", reps)
    env = dict(os.environ)
    env["KILN_TF32"] = "1" if tf32 else "0"
    return run_kiln(kiln, src, env)["mm"]


def kiln_small_and_churn(kiln, device, reps_small, reps_churn):
    src = kiln_header(device) + "tensor a = rand(1000);\ntensor b = rand(1000);\ntensor c = a + b;\n"
    src += kiln_timed("small", "", "c = a + b;", "c[0].item()", reps_small)
    # 16 sizes, 4 KiB .. 128 MiB, each allocated, filled and freed in turn
    src += kiln_timed("churn", "tensor z = zeros(1024);\nint k = 0;",
                      "z = zeros(1024 << (k % 16)); k = k + 1;", "z[0].item()", reps_churn)
    return run_kiln(kiln, src)


TORCH = r"""
import json, sys, time
import torch
n, reps, quick = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
dev = torch.device("cuda")
def timed(fn, r):
    fn(); torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(r): fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / r
out = {"torch": torch.__version__}
a = torch.rand(n, device=dev); b = torch.rand(n, device=dev); c = torch.empty_like(a)
out["copy"] = timed(lambda: c.copy_(a), reps)
out["add"] = timed(lambda: torch.add(a, b), reps)
out["mul"] = timed(lambda: torch.mul(a, b), reps)
out["exp"] = timed(lambda: torch.exp(a), reps)
out["sum"] = timed(lambda: a.sum(), reps)
out["max"] = timed(lambda: a.max(), reps)
del a, b, c
for m in ([4096] if quick else [4096, 8192]):
    for name, dt, tf32 in (("f32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        x = torch.randn(m, m, device=dev).to(dt); y = torch.randn(m, m, device=dev).to(dt)
        out["mm_%d_%s" % (m, name)] = timed(lambda: x @ y, 5 if m == 8192 else 10)
        del x, y
torch.backends.cuda.matmul.allow_tf32 = False
a = torch.rand(1000, device=dev); b = torch.rand(1000, device=dev)
out["small"] = timed(lambda: a + b, 20000)
sizes = [1024 << k for k in range(16)]
i = [0]
def churn():
    z = torch.zeros(sizes[i[0] % 16], device=dev); i[0] += 1
    return z
out["churn"] = timed(churn, 2000)
print(json.dumps(out))
"""


def torch_numbers(n, reps, quick):
    return run_json([sys.executable, "-c", TORCH, str(n), str(reps), "1" if quick else "0"], timeout=900)


def metric(name, unit, ours, peer, peer_value, goal, met, detail, higher_better):
    ratio = None
    if ours and peer_value:
        ratio = ours / peer_value if higher_better else peer_value / ours
    return {"name": name, "unit": unit, "ours": ours, "peer": peer, "peer_value": peer_value,
            "ratio": ratio, "goal": goal, "met": met, "detail": detail}


def failed(name, unit, exc):
    print("  %s: FAILED: %s" % (name, exc))
    return {"name": name, "unit": unit, "error": str(exc)}


def probe_device(kiln, build):
    """(description, None) with a CUDA device, else (None, why)."""
    probe = os.path.join(build, "tests", "gpu_probe")
    if os.path.exists(probe):
        p = subprocess.run([probe], capture_output=True, text=True)
        return (p.stdout.strip(), None) if p.returncode == 0 else (None, p.stdout.strip())
    try:
        run_kiln(kiln, "%device cuda\n", timeout=120)
    except BenchError as e:
        return None, str(e)
    return "cuda", None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dry-run", metavar="DEVICE", choices=["sim", "cpu"])
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    build = os.path.dirname(kiln)
    if args.dry_run:
        dev = args.dry_run
        r = kiln_bandwidth(kiln, dev, 1 << 12, 3)
        r.update(kiln_small_and_churn(kiln, dev, 10, 16))
        r["mm"] = kiln_matmul(kiln, dev, 64, "f32", 2, False)
        r["mm_bf16"] = kiln_matmul(kiln, dev, 64, "bf16", 2, False)
        for k in sorted(r):
            print("  %-8s %.3g s" % (k, r[k]))
        want = {"copy", "add", "mul", "exp", "sum", "max", "small", "churn", "mm", "mm_bf16"}
        if set(r) != want or any(v <= 0 for v in r.values()):
            print("bench/gpu_ops.py --dry-run: missing or bad figures: %s" % sorted(want ^ set(r)))
            return 1
        print("bench/gpu_ops.py --dry-run %s: the Kiln scripts run (nothing saved)" % dev)
        return 0
    device, why = probe_device(kiln, build)
    if not device:
        print("bench/gpu_ops.py: no CUDA device: skipped (%s)" % why)
        return 0
    quick = args.quick
    n = 1 << 28
    reps = 5 if quick else 20
    t_start = time.time()
    print("gpu_ops on %s" % device)
    metrics = []
    try:
        pt = torch_numbers(n, reps, quick)
    except (BenchError, subprocess.TimeoutExpired) as e:
        print("  PyTorch: not available (%s); Kiln's own copy is the bandwidth reference" % e)
        pt = {}

    try:
        k = kiln_bandwidth(kiln, "cuda", n, reps)
        nbytes = 4.0 * n
        copy_k = 2 * nbytes / k["copy"] / GB
        copy_p = 2 * nbytes / pt["copy"] / GB if "copy" in pt else None
        ref = copy_p or copy_k
        metrics.append(metric("copy_bw", "GB/s", copy_k, "torch copy_", copy_p, "(the reference)", None,
                              {"kiln_s": k["copy"], "torch_s": pt.get("copy")}, True))
        for op, moved in (("add", 3), ("mul", 3), ("exp", 2), ("sum", 1), ("max", 1)):
            bw = moved * nbytes / k[op] / GB
            frac = bw / ref
            peer_bw = moved * nbytes / pt[op] / GB if op in pt else None
            metrics.append(metric(op, "GB/s", bw, "device copy bandwidth (%s)" % ("torch" if copy_p else "kiln"),
                                  ref, "at least 0.85 of the copy bandwidth", frac >= 0.85,
                                  {"fraction_of_copy": frac, "kiln_s": k[op], "torch_GBps": peer_bw,
                                   "bytes_moved": moved * nbytes}, True))
    except (BenchError, subprocess.TimeoutExpired, KeyError) as e:
        metrics.append(failed("bandwidth", "GB/s", e))

    raw = {}
    for m in ([4096] if quick else [4096, 8192]):
        try:
            raw.update(run_json([os.path.join(build, "bench", "cublas_raw"), "5" if m == 8192 else "10", str(m)]))
        except BenchError as e:
            print("  raw cuBLAS: %s" % e)
    for m in ([4096] if quick else [4096, 8192]):
        for name, dtype, tf32 in (("f32", "f32", False), ("tf32", "f32", True), ("bf16", "bf16", False)):
            mname = "matmul_%d_%s" % (m, name)
            try:
                s = kiln_matmul(kiln, "cuda", m, dtype, 5 if m == 8192 else 10, tf32)
                tf = 2.0 * m ** 3 / s / 1e12
                key = "mm_%d_%s" % (m, name)
                tpeer = 2.0 * m ** 3 / pt[key] / 1e12 if key in pt else None
                peer = 2.0 * m ** 3 / raw[key] / 1e12 if key in raw else None
                metrics.append(metric(mname, "TFLOP/s", tf, "raw cublasGemmEx", peer,
                                      "at least 0.97 of raw cuBLAS", (tf / peer >= 0.97) if peer else None,
                                      {"kiln_s": s, "cublas_s": raw.get(key), "torch_s": pt.get(key),
                                       "torch_TFLOPs": tpeer, "ratio_vs_torch": tf / tpeer if tpeer else None},
                                      True))
            except (BenchError, subprocess.TimeoutExpired) as e:
                metrics.append(failed(mname, "TFLOP/s", e))

    try:
        k = kiln_small_and_churn(kiln, "cuda", 20000, 2000)
        us, peer = k["small"] * 1e6, pt["small"] * 1e6 if "small" in pt else None
        try:
            paths = run_json([os.path.join(build, "bench", "launch_paths"), "100000"])
        except BenchError as e:
            paths = {"error": str(e)}
        metrics.append(metric("small_op_loop", "us/op", us, "torch eager", peer, "at most half PyTorch's time",
                              (us * 2 <= peer) if peer else None, {"elements": 1000, "launch_paths": paths}, False))
        us, peer = k["churn"] * 1e6, pt["churn"] * 1e6 if "churn" in pt else None
        metrics.append(metric("alloc_churn", "us/alloc", us, "torch caching allocator", peer, "(context)", None,
                              {"sizes": "4 KiB .. 128 MiB, 16 in turn, each zero-filled"}, False))
    except (BenchError, subprocess.TimeoutExpired, KeyError) as e:
        metrics.append(failed("small_op_loop", "us/op", e))

    for m in metrics:
        if "error" not in m:
            print("  %-20s ours %10.3f %-8s %s %s%s" % (
                m["name"], m["ours"], m["unit"], m["peer"],
                "%.3f" % m["peer_value"] if m["peer_value"] else "-",
                "  ratio %.3f" % m["ratio"] if m["ratio"] else ""))
            d = m.get("detail") or {}
            if d.get("ratio_vs_torch"):
                print("  %-20s torch.matmul %.3f TFLOP/s, ratio %.3f" % ("", d["torch_TFLOPs"], d["ratio_vs_torch"]))
            if d.get("launch_paths"):
                print("  %-20s host cost of a launch: %s" % ("", d["launch_paths"]))
    result = gpu_result(device, t_start, RATIO_DEF, metrics, torch=pt.get("torch"))
    if not args.no_save:
        save_results(result, args.out, "%s-gpu-ops" % device_slug(device), result["commit"])
    return exit_status(metrics, "gpu_ops")


if __name__ == "__main__":
    sys.exit(main())
