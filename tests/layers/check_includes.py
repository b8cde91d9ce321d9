#!/usr/bin/env python3
"""The engine's layers, checked from the includes (issue 12; docs/architecture.md).

Each folder of engine/ has a rank; a file may include headers of its own folder and of
folders ranked below it, never above. engine/engine.h is the session API: a contract with
no includes of its own, that the language implements and kernel/ calls. numeric/ is
below everything. Also: no folder-level include cycle anywhere in the tree (engine,
cpu, cuda, numeric, kernel, protocol). Prints each violation; exits 1 if any.
  tests/layers/check_includes.py [ROOT]
"""
import os
import re
import sys

RANK = {"numeric": 0, "engine/base": 1, "engine/tensor": 2, "engine/io": 3, "engine/train": 4,
        "engine/lang": 5}
TOP = ["engine", "cpu", "cuda", "numeric", "kernel", "protocol"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCE = (".c", ".h", ".cc", ".cu", ".cuh", ".def")


def folder_of(path):
    parts = path.split("/")
    if parts[0] == "engine" and len(parts) > 2:
        return "engine/" + parts[1]
    return parts[0] if len(parts) > 1 else "."


def main(root):
    bad = []
    edges = {}
    for top in TOP:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if not f.endswith(SOURCE):
                    continue
                path = os.path.relpath(os.path.join(d, f), root)
                src = folder_of(path)
                text = open(os.path.join(root, path), errors="replace").read()
                for inc in INCLUDE.findall(text):
                    if not os.path.exists(os.path.join(root, inc)):
                        continue  # a system or generated header, or a sibling by bare name
                    dst = folder_of(inc)
                    if dst != src:
                        edges.setdefault(src, set()).add(dst)
                    if inc == "engine/engine.h":
                        continue
                    if src in RANK and dst in RANK and RANK[dst] > RANK[src]:
                        bad.append(f"{path}: includes {inc} ({dst} is above {src})")
                    if src.startswith("engine") and dst in ("cpu", "cuda", "kernel", "protocol"):
                        bad.append(f"{path}: the engine includes {inc}")
    # folder-level cycles (depth-first search over the folder graph)
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                bad.append("include cycle between folders: " + " -> ".join(stack[stack.index(m):] + [m]))
            elif not state.get(m):
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if not state.get(n):
            visit(n)
    for b in bad:
        print(b)
    print(f"{len(bad)} layering problems in the include graph")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
