"""Executes notebooks headlessly with nbclient on the Kiln kernel and prints every
cell's source and outputs as a terminal would show them.

    python scripts/run_notebook.py [--kernel kiln] [--save OUT.ipynb] NOTEBOOK...

Exits 1 when a cell fails that is not tagged "raises-exception"."""
import argparse
import os
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def show_output(out, count):
    kind = out.get("output_type")
    if kind == "stream":
        stream = sys.stderr if out.get("name") == "stderr" else sys.stdout
        stream.write(out.get("text", ""))
        stream.flush()
    elif kind == "execute_result":
        print(f"Out[{count}]: {out.get('data', {}).get('text/plain', '')}")
    elif kind == "display_data":
        data = out.get("data", {})
        print(data.get("text/plain", "[" + ", ".join(sorted(data)) + "]"))
    elif kind == "error":
        for line in out.get("traceback", []) or [f"{out.get('ename')}: {out.get('evalue')}"]:
            print(line)


def run(path, kernel, save):
    nb = nbformat.read(path, as_version=4)
    print(f"==> {path} (kernel {kernel})")
    client = NotebookClient(nb, kernel_name=kernel, timeout=600,
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    failed = None
    try:
        client.execute()
    except CellExecutionError as e:
        failed = e
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count = cell.get("execution_count") or " "
        print(f"\nIn [{count}]:")
        for line in cell.source.splitlines():
            print(f"    {line}")
        for out in cell.get("outputs", []):
            show_output(out, count)
    if save:
        nbformat.write(nb, save)
    if failed:
        print(f"\n{path}: a cell failed:\n{failed}", file=sys.stderr)
        return 1
    print(f"\n==> {path}: every cell ran")
    return 0


def main():
    ap = argparse.ArgumentParser(description="Run notebooks on the Kiln kernel and print outputs.")
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--kernel", default="kiln")
    ap.add_argument("--save", help="write the executed notebook here (one notebook only)")
    args = ap.parse_args()
    rc = 0
    for path in args.notebooks:
        rc |= run(path, args.kernel, args.save)
    return rc


if __name__ == "__main__":
    sys.exit(main())
