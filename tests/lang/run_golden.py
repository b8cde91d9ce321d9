#!/usr/bin/env python3
"""Golden tests of the language: each tests/lang/NAME.kn runs through `kiln run -k`;
its stdout must equal NAME.out and its stderr NAME.err (empty when there is no .err
file). With KILN_DEVICE=DEV set, NAME.DEV.out and NAME.DEV.err are expected instead where
they exist (a GPU's limits and NVRTC's messages differ from the simulator's). The exit status must be 1 when the expected stderr reports an error
("file:line:col: SomeError: ..."), else 0.

    run_golden.py KILN [--update] [NAME...]

--update rewrites the expected files from what kiln prints now: read the diff before
committing it."""
import difflib
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ERROR_LINE = re.compile(r"^\S+:\d+:\d+: (\w+Error|Interrupted): ", re.M)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    kiln = os.path.abspath(args[0])
    update = "--update" in args
    names = [a for a in args[1:] if a != "--update"]
    tests = sorted(f[:-3] for f in os.listdir(HERE) if f.endswith(".kn"))
    if names:
        tests = [t for t in tests if t in names]
    failed = 0
    for name in tests:
        # relative paths in the tests resolve from tests/lang
        proc = subprocess.run([kiln, "run", "-k", name + ".kn"], cwd=HERE, capture_output=True,
                              text=True, timeout=120)
        out_path = os.path.join(HERE, name + ".out")
        err_path = os.path.join(HERE, name + ".err")
        dev = os.environ.get("KILN_DEVICE")
        if dev and not update:
            for ext in (".out", ".err"):
                alt = os.path.join(HERE, "%s.%s%s" % (name, dev, ext))
                if os.path.exists(alt):
                    if ext == ".out":
                        out_path = alt
                    else:
                        err_path = alt
        if update:
            with open(out_path, "w") as f:
                f.write(proc.stdout)
            if proc.stderr:
                with open(err_path, "w") as f:
                    f.write(proc.stderr)
            elif os.path.exists(err_path):
                os.remove(err_path)
            print(f"updated {name}")
            continue
        want_out = open(out_path).read() if os.path.exists(out_path) else ""
        want_err = open(err_path).read() if os.path.exists(err_path) else ""
        want_rc = 1 if ERROR_LINE.search(want_err) else 0
        problems = []
        if proc.returncode != want_rc:
            problems.append(f"exit status {proc.returncode}, expected {want_rc}")
        for label, got, want in (("stdout", proc.stdout, want_out), ("stderr", proc.stderr, want_err)):
            if got != want:
                diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                    f"expected {label}", f"actual {label}"))
                problems.append(diff)
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(p)
        else:
            print(f"ok   {name}")
    print(f"{len(tests) - failed}/{len(tests)} golden tests passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
