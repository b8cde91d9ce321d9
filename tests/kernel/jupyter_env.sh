# jupyter_env.sh — sourced by the suites that drive build/kiln through real Jupyter
# clients (tests/kernel/run.sh, tests/abuse/run.sh): checks KILN, makes a temporary
# JUPYTER_DATA_DIR (and friends) removed on exit, and installs the kernelspec there.
# Expects $root (the checkout) and $suite (a name for messages and the temp folder);
# sets KILN, PYTHON and tmp.
KILN=${KILN:-$root/build/kiln}
PYTHON=${PYTHON:-$root/.venv/bin/python}
if [ ! -x "$KILN" ]; then
    echo "tests/$suite/run.sh: $KILN is not built (run make)" >&2
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-$suite-tests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export JUPYTER_DATA_DIR=$tmp/data JUPYTER_RUNTIME_DIR=$tmp/runtime \
       JUPYTER_CONFIG_DIR=$tmp/config IPYTHONDIR=$tmp/ipython JUPYTER_PLATFORM_DIRS=1 \
       PYTHONDONTWRITEBYTECODE=1
"$PYTHON" "$root/kernel/kernelspec/install.py" "$KILN" >/dev/null
