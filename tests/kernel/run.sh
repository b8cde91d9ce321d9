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
suite=kernel
. "$root/tests/kernel/jupyter_env.sh"
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
