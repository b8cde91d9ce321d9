"""What the benchmark scripts (run.py, kernel.py, the GPU ones, train.py) share: the machine and the commit
they ran on, for the results JSON."""
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git(*args):
    """git's output in the checkout, or None where git fails. KILN_BENCH_COMMIT, where set,
    answers rev-parse HEAD: the GPU machine's copy of the tree carries a .git that can lag
    behind the files it runs (the commit is then recorded by the caller)."""
    if args == ("rev-parse", "HEAD") and os.environ.get("KILN_BENCH_COMMIT"):
        return os.environ["KILN_BENCH_COMMIT"]
    try:
        p = subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None
    except OSError:
        return None


def dirty_files():
    """The tracked files changed in the checkout (empty for a clean tree); with
    KILN_BENCH_COMMIT set, the list in KILN_BENCH_DIRTY (space-separated)."""
    if os.environ.get("KILN_BENCH_COMMIT"):
        return os.environ.get("KILN_BENCH_DIRTY", "").split()
    return [l.split(None, 1)[1] for l in (git("status", "--porcelain", "--untracked-files=no") or "").splitlines()
            if len(l.split(None, 1)) == 2]


def device_slug(device, default="gpu"):
    """A file-name prefix from a device's name: "NVIDIA H100 80GB HBM3 (sm_90)" -> "nvidia-h100-80gb-hbm3"."""
    import re
    return re.sub(r"[^A-Za-z0-9]+", "-", device.split(" (")[0]).strip("-").lower() or default


def save_results(result, out_dir, prefix, commit):
    """Writes result as bench/results-style JSON named PREFIX-<date>T<time>-<commit>.json
    and returns its path (a time in the name keeps two runs of a day apart)."""
    import datetime
    import json
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = os.path.join(out_dir, "%s-%s-%s.json" % (prefix, stamp, (commit or "nocommit")[:7]))
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("wrote %s" % os.path.relpath(path, os.getcwd()))
    return path


def exit_status(metrics, label):
    """1 when a metric failed to run (named on stdout), else 0."""
    failed = [m["name"] for m in metrics if m.get("error")]
    if failed:
        print("%s: %d metric(s) failed: %s" % (label, len(failed), ", ".join(failed)))
    return 1 if failed else 0


class BenchError(Exception):
    """A benchmark step that could not produce its figure (reported as the metric's error)."""


def run_json(cmd, env=None, timeout=600):
    """Runs cmd (a bench program or a peer's script) and returns the JSON object on the
    last line of its stdout that starts with "{"; BenchError when it cannot run, prints no
    such line, or reports {"error": ...}."""
    import json
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except OSError as e:
        raise BenchError("%s: %s" % (os.path.basename(cmd[0]), e))
    lines = [l for l in p.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        raise BenchError("%s: exit %d, no result: %s" % (os.path.basename(cmd[0]), p.returncode,
                                                       (p.stderr or p.stdout).strip()[-400:]))
    out = json.loads(lines[-1])
    if "error" in out:
        raise BenchError("%s: %s" % (os.path.basename(cmd[0]), out["error"]))
    return out


def gpu_result(device, t_start, ratio_definition, metrics, **extra):
    """The results record of a GPU benchmark (kernels_gpu.py, gpu_ops.py): the device, the
    date, the commit and dirty files, the wall time since t_start (time.time()), and any
    extra fields before the metrics."""
    import datetime
    import time
    r = {"device": {"kind": "cuda", "model": device, "hostname": platform.node()},
         "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "commit": git("rev-parse", "HEAD"), "dirty": dirty_files(), "python": platform.python_version()}
    r.update(extra)
    r.update({"wall_s": round(time.time() - t_start, 1), "ratio_definition": ratio_definition,
              "metrics": metrics})
    return r
