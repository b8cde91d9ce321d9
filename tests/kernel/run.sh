#!/usr/bin/env bash
# Kernel tests with real Jupyter clients against build/kiln (`make test-kernel`).
# Installs the kernelspec into a temporary JUPYTER_DATA_DIR, then runs the pytest
# suites in this folder: jupyter_kernel_test, behaviour through jupyter_client, raw
# ZeroMQ robustness, jupyter console and nbclient.
#   KILN=/abs/build/kiln PYTHON=/abs/.venv/bin/python tests/kernel/run.sh [pytest args]
# e.g. tests/kernel/run.sh test_wire.py::TestWire::test_replay
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
    exec "$PYTHON" -m pytest -v -p no:cacheprovider "$@"
fi
# the message decoder under libFuzzer for a bounded time (KILN_FUZZ_SECONDS, 0: skip)
fuzz_seconds=${KILN_FUZZ_SECONDS:-15}
if [ "$fuzz_seconds" -gt 0 ] && command -v clang >/dev/null; then
    echo "== libFuzzer over the message decoder for ${fuzz_seconds}s"
    clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -I"$root" \
        "$here/fuzz_jp_decode.c" "$root/protocol/jp_auth.c" "$root/protocol/jp_message.c" \
        -lzmq -ljansson -lsodium -lpthread -o "$tmp/fuzz_jp_decode"
    mkdir -p "$tmp/corpus"
    "$tmp/fuzz_jp_decode" -max_total_time="$fuzz_seconds" -max_len=4096 -timeout=10 \
        "$tmp/corpus" "$here/fuzz_corpus" >"$tmp/fuzz.log" 2>&1 \
        || { tail -n 40 "$tmp/fuzz.log"; echo "fuzz_jp_decode: crash" >&2; exit 1; }
    tail -n 1 "$tmp/fuzz.log"
fi
exec "$PYTHON" -m pytest -v -p no:cacheprovider .
