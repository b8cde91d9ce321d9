"""Installs the Jupyter kernelspec `kiln` for a built kiln executable.

    python kernel/kernelspec/install.py /abs/path/to/build/kiln [--name kiln] [--sys-prefix]

Fills kernel.json's argv with the executable's absolute path, copies the logos beside
it into a temporary folder, and runs `jupyter kernelspec install DIR --user --name NAME`
(or --sys-prefix), so JUPYTER_DATA_DIR is honoured. `make install` calls it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


def jupyter_command():
    """`jupyter` from this Python's environment when it has one, else from PATH."""
    try:
        import jupyter_core  # noqa: F401
        return [sys.executable, "-m", "jupyter"]
    except ImportError:
        exe = shutil.which("jupyter")
        if not exe:
            sys.exit("install.py: jupyter is not installed (pip install jupyter_client jupyter_core)")
        return [exe]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kiln", help="absolute path of the kiln executable")
    ap.add_argument("--name", default="kiln", help="kernelspec name (default: kiln)")
    ap.add_argument("--display-name", default=None, help="name shown in Jupyter (default: Kiln)")
    ap.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix, not --user")
    args = ap.parse_args()

    kiln = Path(args.kiln).resolve()
    if not (kiln.is_file() and os.access(kiln, os.X_OK)):
        sys.exit(f"install.py: {kiln} is not an executable file (run `make` first)")
    spec = json.loads((HERE / "kernel.json").read_text())
    spec["argv"] = [str(kiln) if a == "@KILN@" else a for a in spec["argv"]]
    if args.display_name:
        spec["display_name"] = args.display_name
    with tempfile.TemporaryDirectory(prefix="kiln-kernelspec-") as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        for logo in LOGOS:
            shutil.copy(HERE / logo, Path(tmp) / logo)
        where = ["--sys-prefix"] if args.sys_prefix else ["--user"]
        cmd = jupyter_command() + ["kernelspec", "install", tmp, *where, "--name", args.name]
        res = subprocess.run(cmd)
        if res.returncode != 0:
            sys.exit(f"install.py: `{' '.join(cmd)}` failed with status {res.returncode}")
    print(f"install.py: kernelspec '{args.name}' runs {kiln}")


if __name__ == "__main__":
    main()
