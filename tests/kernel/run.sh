#!/usr/bin/env bash
# Kernel tests with real Jupyter clients against build/kiln (`make test-kernel`).
# Installs the kernelspec into a temporary JUPYTER_DATA_DIR, then runs the unittest
# suites in this folder: jupyter_kernel_test, behaviour through jupyter_client, raw
# ZeroMQ robustness, jupyter console and nbclient.
#   KILN=/abs/build/kiln PYTHON=/abs/.venv/bin/python tests/kernel/run.sh [unittest args]
# e.g. tests/kernel/run.sh test_wire.TestWire.test_replay
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
KILN=${KILN:-$root/build/kiln}
PYTHON=${PYTHON:-$root/.venv/bin/python}
if [ ! -x "$KILN" ]; then
    echo "tests/kernel/run.sh: $KILN is not built (run make)" >&2
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-kernel-tests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export JUPYTER_DATA_DIR=$tmp/data JUPYTER_RUNTIME_DIR=$tmp/runtime \
       JUPYTER_CONFIG_DIR=$tmp/config IPYTHONDIR=$tmp/ipython JUPYTER_PLATFORM_DIRS=1 \
       PYTHONDONTWRITEBYTECODE=1
"$PYTHON" "$root/kernel/kernelspec/install.py" "$KILN" >/dev/null
cd "$here"
if [ $# -gt 0 ]; then
    exec "$PYTHON" -m unittest -v "$@"
fi
exec "$PYTHON" -m unittest discover -v -s . -p 'test_*.py'
