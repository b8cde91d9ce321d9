#!/usr/bin/env bash
# The browser test (`make test-browser`): JupyterLab, headless Chromium driven by
# Playwright, opens notebooks/02-inspect.ipynb on the Kiln kernel, runs every cell and
# checks what JupyterLab rendered. Everything lives in a temporary folder (kernelspec,
# Jupyter and JupyterLab settings, the notebook's copy); the screenshot is kept in
# ARTIFACTS (default build/browser/02-inspect.png). test_debugger_ui.py drives JupyterLab's
# debugger over notebooks/05-debugging.ipynb (screenshot 05-debugger.png).
#   KILN=/abs/build/kiln PYTHON=/abs/.venv/bin/python tests/browser/run.sh [pytest args]
# Skips (exit 0) only when /usr/bin/chromium is missing; scripts/setup.sh installs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
KILN=${KILN:-$root/build/kiln}
PYTHON=${PYTHON:-$root/.venv/bin/python}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    echo "test-browser: skipped: chromium not installed ($CHROMIUM; scripts/setup.sh installs it)"
    exit 0
fi
if [ ! -x "$KILN" ]; then
    echo "tests/browser/run.sh: $KILN is not built (run make)" >&2
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-browser-tests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export JUPYTER_DATA_DIR=$tmp/data JUPYTER_RUNTIME_DIR=$tmp/runtime \
       JUPYTER_CONFIG_DIR=$tmp/config IPYTHONDIR=$tmp/ipython JUPYTER_PLATFORM_DIRS=1 \
       JUPYTERLAB_SETTINGS_DIR=$tmp/lab-settings JUPYTERLAB_WORKSPACES_DIR=$tmp/lab-workspaces \
       PYTHONDONTWRITEBYTECODE=1 KILN_BROWSER_TMP=$tmp
export ARTIFACTS=${ARTIFACTS:-$(dirname "$KILN")/browser}
"$PYTHON" "$root/kernel/kernelspec/install.py" "$KILN" >/dev/null
cd "$here"
exec "$PYTHON" -m pytest -v -p no:cacheprovider "$@" test_jupyterlab.py test_debugger_ui.py
