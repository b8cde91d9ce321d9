#!/usr/bin/env python3
""""No expert needed", measured (issue 17): for each model and seed, Kiln's `fit` with no
learning rate typed (lr_find chooses it) against the same `fit` given each rate of a
log-spaced grid (1e-4 to 1e-1, 7 points) as its peak rate `max_lr`; per seed, the gap in
test accuracy between the rate fit chose and the best rate of the grid.

Usage: bench/train_seeds.py [--models mlp,cnn] [--seeds 5] [--cnn-seeds 3]
           [--mlp-ntrain 60000] [--mlp-epochs 2] [--cnn-ntrain 10000] [--cnn-epochs 2]
           [--parts fit,grid,sf] [--reuse-fit F.json] [--reuse-grid G.json] [--reuse-sf S.json]
           [--no-save] build/kiln

The models are bench/train.py's (mlp: 784-512-256-10; cnn: 32-64-64 convolutions with
batch norm, notebook 03's). Each seed s is one `kiln run`: the data (the first NTRAIN
training images, the full 10,000-image test set as the validation set), then for each run
`seed(s)`, the model's parameters and a new AdamW, and `fit(..., epochs, 64, max_lr)`
with max_lr 0 (run a: lr_find chooses) or a grid rate (runs b). So every run of a seed
starts from the same initial weights; the data order differs between runs (lr_find draws
its batches from the same RNG first), which is part of the noise the gap must live with.

Goal: on every seed, fit's accuracy within 0.3 points of the best grid rate's.
--parts sf adds a run of fit with schedule-free AdamW (adamw_sf, no rate typed) per seed.
--reuse-grid takes the grid runs from earlier results files (comma-separated) (the grid runs do not depend
on lr_find's rule, as fit given max_lr runs no lr_find), --reuse-fit the fit runs,
--reuse-sf the adamw_sf runs: so the parts can run apart (--parts grid, --parts fit,
--parts sf) and be put together; each file's commit, date and wall time is recorded.
Writes bench/results/cpu-train-seeds-<date>-<commit>.json (metrics: per model and seed,
ours = fit's accuracy, peer = the best grid rate, ratio = ours / best).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from benchlib import cpu_model, dirty_files, exit_status, git, save_results
from train import DATA_KN, FMNIST, MODELS_KN, kiln_env

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 64
GRID = [float("%.3g" % g) for g in np.logspace(-4, -1, 7)]  # 1e-4, 3.16e-4, ..., 1e-1
GOAL_POINTS = 0.3
RUN_RE = re.compile(r"^RUN (\S+) (\S+)$")
LR_RE = re.compile(r"^fit: (?:one cycle to|schedule-free AdamW at) lr ([^ ,]+)")
SUG_RE = re.compile(r"^lr_find: .*$")


def program(model, seed, ntrain, epochs, rates):
    """One kiln program: the data once, then one fit per rate (0: lr_find chooses; -1:
    lr_find chooses for schedule-free AdamW, the model's optimiser made by adamw_sf)."""
    src = DATA_KN % (FMNIST, ntrain, ntrain)
    for r in rates:
        kn = MODELS_KN[model].replace("int opt = adamw(", "int opt = adamw_sf(") if r < 0 else MODELS_KN[model]
        src += "seed(%d);\n%s\nfloat acc = fit(model, opt, xtrain, ytrain, xtest, ytest, %d, %d, %r);\n" \
               "printf(\"RUN %r %%.6f\\n\", acc);\n" % (seed, kn, epochs, BATCH, max(r, 0.0), r)
    return src


def run_seed(kiln, model, seed, ntrain, epochs, rates):
    with tempfile.NamedTemporaryFile("w", suffix=".kn", prefix="bench-seeds-", delete=False) as f:
        f.write(program(model, seed, ntrain, epochs, rates))
        path = f.name
    try:
        t0 = time.perf_counter()
        p = subprocess.run([kiln, "run", path], capture_output=True, text=True, timeout=7200, env=kiln_env("cpu"))
        wall = time.perf_counter() - t0
    finally:
        os.unlink(path)
    if p.returncode != 0:
        raise RuntimeError("kiln run failed: %s" % (p.stdout[-800:] + p.stderr[-800:]))
    lines = p.stdout.splitlines()
    lrs = [float(m.group(1)) for m in map(LR_RE.match, lines) if m]
    accs = [(float(m.group(1)), float(m.group(2))) for m in map(RUN_RE.match, lines) if m]
    if len(accs) != len(rates) or len(lrs) != len(rates):
        raise RuntimeError("expected %d runs, got %d:\n%s" % (len(rates), len(accs), p.stdout[-800:]))
    found = [ln for ln in lines if SUG_RE.match(ln)]
    return [{"max_lr_given": r, "max_lr": lr, "acc": a} for (r, a), lr in zip(accs, lrs)], found, wall


def load_reused(names):
    """The runs of one or more earlier results files (comma-separated), merged model by
    model and seed by seed (a later file's seed replaces an earlier one's only where it
    has the runs), with the files' names, commits, dates and wall times; None for none."""
    if not names:
        return None
    merged = {"runs": {}, "files": []}
    for name in names.split(","):
        r = json.load(open(name))
        merged["files"].append({"file": os.path.basename(name), "commit": r.get("commit"), "date": r.get("date"),
                                "wall_s": r.get("wall_s"), "sizes": r.get("sizes")})
        for m, seeds in r.get("runs", {}).items():
            for sd, rec in seeds.items():
                old = merged["runs"].setdefault(m, {}).setdefault(sd, {})
                for k, v in rec.items():
                    if v or k not in old:
                        old[k] = v
    return merged


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kiln")
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--cnn-seeds", type=int, default=3, help="seeds for the CNN (its runs are ~10x the MLP's on a CPU)")
    ap.add_argument("--mlp-ntrain", type=int, default=60000)
    ap.add_argument("--mlp-epochs", type=int, default=2)
    ap.add_argument("--cnn-ntrain", type=int, default=10000)
    ap.add_argument("--cnn-epochs", type=int, default=2)
    ap.add_argument("--parts", default="fit,grid",
                    help="fit (no rate), grid (the 7 rates), sf (fit with adamw_sf, no rate)")
    ap.add_argument("--reuse-grid", help="take the grid runs from this earlier results file")
    ap.add_argument("--reuse-fit", help="take the fit runs from this earlier results file")
    ap.add_argument("--reuse-sf", help="take the adamw_sf runs from this earlier results file")
    ap.add_argument("--note", help="a note for the results file (e.g. how the parts were run)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    if not os.path.exists(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")):
        sys.exit("bench/train_seeds.py: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    parts = args.parts.split(",")
    reused, reused_fit, reused_sf = load_reused(args.reuse_grid), load_reused(args.reuse_fit), load_reused(args.reuse_sf)
    t_start = time.perf_counter()
    commit, dirty = git("rev-parse", "HEAD"), bool(dirty_files())  # what the runs are of: taken before they start
    print("train seeds bench: %s, %d cores; grid %s" % (cpu_model(), len(os.sched_getaffinity(0)), GRID), flush=True)
    metrics, runs, sizes = [], {}, {}
    for m in args.models.split(","):
        ntrain = args.mlp_ntrain if m == "mlp" else args.cnn_ntrain
        epochs = args.mlp_epochs if m == "mlp" else args.cnn_epochs
        nseeds = args.seeds if m == "mlp" else min(args.seeds, args.cnn_seeds)
        sizes[m] = {"ntrain": ntrain, "nval": 10000, "epochs": epochs, "seeds": nseeds, "batch_size": BATCH}
        runs[m] = {}
        for s in range(nseeds):
            rates = (([0.0] if "fit" in parts and not reused_fit else []) +
                     (GRID if "grid" in parts and not reused else []) +
                     ([-1.0] if "sf" in parts and not reused_sf else []))
            print("  %s seed %d: %d runs on %d images, %d epochs ..." % (m, s, len(rates), ntrain, epochs), flush=True)
            try:
                res, found, wall = run_seed(kiln, m, s, ntrain, epochs, rates) if rates else ([], [], 0)
            except Exception as e:  # noqa: BLE001 - reported as the metric's error
                metrics.append({"name": "%s_seed%d_gap" % (m, s), "error": str(e)})
                print("    ERROR %s" % e, flush=True)
                continue
            fit = [r for r in res if r["max_lr_given"] == 0]
            grid = [r for r in res if r["max_lr_given"] > 0]
            sf = [r for r in res if r["max_lr_given"] < 0]
            if reused:
                grid = reused["runs"].get(m, {}).get(str(s), {}).get("grid", [])
            if reused_fit:
                old = reused_fit["runs"].get(m, {}).get(str(s), {})
                fit, found, wall = [old["fit"]] if old.get("fit") else [], old.get("lr_find", []), old.get("wall_s", 0)
            if reused_sf:
                old = reused_sf["runs"].get(m, {}).get(str(s), {}).get("fit_adamw_sf")
                sf = [old] if old else []
            rec = {"fit": fit[0] if fit else None, "grid": grid, "lr_find": found, "wall_s": round(wall, 1)}
            if sf:
                rec["fit_adamw_sf"] = sf[0]
            runs[m][str(s)] = rec
            if fit and grid:
                best = max(grid, key=lambda r: r["acc"])
                gap = 100 * (best["acc"] - fit[0]["acc"])
                print("    fit lr %.3g acc %.2f %%; best grid lr %.3g acc %.2f %%; gap %.2f points (%s)" % (
                    fit[0]["max_lr"], 100 * fit[0]["acc"], best["max_lr"], 100 * best["acc"], gap,
                    "met" if gap <= GOAL_POINTS else "NOT met"), flush=True)
                metrics.append({"name": "%s_seed%d_accuracy_fit_vs_best_grid" % (m, s), "unit": "fraction",
                                "ours": fit[0]["acc"], "peer": "fit at the best grid rate %.3g" % best["max_lr"],
                                "peer_value": best["acc"], "ratio": fit[0]["acc"] / best["acc"],
                                "goal": "fit within %.1f accuracy points of the best grid rate" % GOAL_POINTS,
                                "met": gap <= GOAL_POINTS,
                                "detail": {"gap_points": round(gap, 3), "fit_lr": fit[0]["max_lr"],
                                           "fit_adamw_sf": sf[0] if sf else None,
                                           "best_lr": best["max_lr"],
                                           "grid": {"%.3g" % r["max_lr"]: r["acc"] for r in grid}}})
            else:
                print("    %s" % json.dumps(res), flush=True)
            if not args.no_save and rates:  # what is done so far, in case the run is cut short
                os.makedirs(args.out, exist_ok=True)
                with open(os.path.join(args.out, "partial-train-seeds.json"), "w") as f:
                    json.dump({"commit": commit, "dirty": dirty, "sizes": sizes, "runs": runs}, f, indent=1)
    result = {"device": {"kind": "cpu", "model": cpu_model(), "cores": len(os.sched_getaffinity(0))},
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
              "dirty": dirty, "peer": "the same fit at each rate of the grid",
              "grid": GRID, "sizes": sizes, "parts": parts, "note": args.note,
              "grid_from": reused["files"] if reused else None,
              "fit_from": reused_fit["files"] if reused_fit else None,
              "sf_from": reused_sf["files"] if reused_sf else None,
              "kiln_env": {k: kiln_env("cpu")[k] for k in ("OMP_WAIT_POLICY", "KILN_DEVICE")},
              "wall_s": round(time.perf_counter() - t_start, 1), "loadavg_at_end": list(os.getloadavg()),
              "ratio_definition": "fit's accuracy / the best grid rate's (1: as good as the best rate of the grid)",
              "metrics": metrics, "runs": runs}
    print()
    print("%-5s %-5s %-10s %-8s %-10s %-8s %-6s %s" % ("model", "seed", "fit lr", "fit acc", "best lr", "best acc",
                                                       "gap", "adamw_sf lr, acc"))
    for m, seeds in runs.items():
        for s, r in seeds.items():
            if r["fit"] and r["grid"]:
                b = max(r["grid"], key=lambda x: x["acc"])
                sfr = r.get("fit_adamw_sf")
                print("%-5s %-5s %-10.3g %-8.2f %-10.3g %-8.2f %-6.2f %s" % (
                    m, s, r["fit"]["max_lr"], 100 * r["fit"]["acc"], b["max_lr"], 100 * b["acc"],
                    100 * (b["acc"] - r["fit"]["acc"]), "%.3g, %.2f" % (sfr["max_lr"], 100 * sfr["acc"]) if sfr else "-"))
    if not args.no_save:
        save_results(result, args.out, "cpu-train-seeds", result["commit"])
    return exit_status(metrics, "bench/train_seeds.py")


if __name__ == "__main__":
    sys.exit(main())
