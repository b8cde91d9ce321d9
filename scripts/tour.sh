#!/usr/bin/env bash
# Runs the tour notebook headlessly on the Kiln kernel and prints each cell's outputs.
# Installs (or refreshes) the kernelspec `kiln` for build/kiln first, so it works right
# after `make`. Usage: scripts/tour.sh [NOTEBOOK...]   (default notebooks/01-tour.ipynb)
# Environment: PYTHON (default .venv/bin/python, else python3), KILN (default build/kiln).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$root/.venv/bin/python" ]; then PYTHON=$root/.venv/bin/python; else PYTHON=python3; fi
fi
KILN=${KILN:-$root/build/kiln}
if [ ! -x "$KILN" ]; then
    echo "scripts/tour.sh: $KILN is missing: run make first" >&2
    exit 1
fi
"$PYTHON" "$root/kernel/kernelspec/install.py" "$KILN" >/dev/null
if [ $# -eq 0 ]; then
    set -- "$root/notebooks/01-tour.ipynb"
fi
exec "$PYTHON" "$root/scripts/run_notebook.py" "$@"
