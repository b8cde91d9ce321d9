#!/usr/bin/env bash
# tests/gpu/run.sh — the GPU twins of the CPU tests (make test-gpu).
#
# Where there is no CUDA device (or the build is CPU-only) it says so and exits 0. On a
# GPU machine it runs every GPU suite that exists and exits 1 if any fails:
#   1. test_nvrtc's GPU part: saxpy through cuda_kdriver, the memory cache, > 48 KiB of
#      dynamic shared memory, a bad launch survived, a lost context reported;
#   2. the golden files (tests/lang/*.kn but devices.kn) with KILN_DEVICE=cuda: the
#      language's examples on the GPU, custom kernels through NVRTC, not the simulator;
#   3. the backend conformance suite with KILN_DEVICE=cuda ($BUILD/tests/test_conformance
#      or tests/conformance/run.py, whichever exists);
#   4. out of memory on the GPU through jupyter_client (tests/gpu/test_oom.py).
# A suite that does not exist yet is named as "not present" (not a failure).
#
# Env: BUILD (absolute build folder, required), PYTHON, CUDA (the Makefile's 0/1).
set -u
BUILD=${BUILD:?set BUILD to the absolute build folder}
PYTHON=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [[ ${CUDA:-1} != 1 ]]; then
    echo "test-gpu: CPU-only build (no CUDA toolkit): skipped"
    exit 0
fi
desc=$("$BUILD/tests/gpu_probe")
rc=$?
if [[ $rc == 3 ]]; then
    echo "test-gpu: no CUDA device: skipped"
    exit 0
elif [[ $rc != 0 ]]; then
    echo "test-gpu: the device probe failed ($rc): $desc"
    exit 1
fi
echo "test-gpu: on $desc"

failed=()
ran=0
run() { # NAME CMD...: runs a suite, records its failure
    local name=$1
    shift
    echo "== $name"
    ran=$((ran + 1))
    if ! "$@"; then
        failed+=("$name")
    fi
}

# 1. the NVRTC driver on the device; its output must not say it skipped the GPU part
nvrtc_gpu() {
    local out
    out=$("$BUILD/tests/test_nvrtc" 2>&1)
    local st=$?
    echo "$out"
    if grep -q "GPU part skipped" <<<"$out"; then
        echo "test_nvrtc skipped its GPU part on a machine with a device"
        return 1
    fi
    return $st
}
run test_nvrtc nvrtc_gpu

# 2. the golden files on the GPU: the language's examples (design_examples.kn is
#    language.md's), autograd, training and the custom kernels through NVRTC. devices.kn is
#    left out: it tests the default device being the CPU. Where the GPU's output differs by
#    design (its limits, NVRTC's messages, the last digit of expf), NAME.cuda.out/.err hold it.
shopt -s nullglob
kn=()
for f in "$root"/tests/lang/*.kn; do
    n=$(basename "${f%.kn}")
    [[ $n == devices ]] || kn+=("$n")
done
if ((${#kn[@]})); then
    run "golden ${kn[*]} (cuda)" env KILN_DEVICE=cuda "$PYTHON" "$root/tests/lang/run_golden.py" "$BUILD/kiln" "${kn[@]}"
else
    echo "== golden files: not present (tests/lang/*.kn)"
fi

# 3. backend conformance on the GPU
if [[ -x $BUILD/tests/test_conformance ]]; then
    run "conformance (cuda)" env KILN_DEVICE=cuda "$BUILD/tests/test_conformance"
elif [[ -f $root/tests/conformance/run.py ]]; then
    run "conformance (cuda)" env KILN_DEVICE=cuda "$PYTHON" "$root/tests/conformance/run.py" "$BUILD/kiln"
else
    echo "== conformance: not present (tests/conformance/run.py or test_conformance)"
fi

# 4. out of memory on the GPU through jupyter_client (a real kernel process): the message,
#    then the session goes on; sizes follow the device's memory from the probe
oom() {
    local gib
    gib=$(sed -n 's/.*, \([0-9.]*\) GiB)$/\1/p' <<<"$desc")
    KILN=$BUILD/kiln KILN_GPU_GIB=${gib:-79} "$PYTHON" "$here/test_oom.py" -v
}
if "$PYTHON" -c "import jupyter_client" 2>/dev/null; then
    run "out of memory (cuda, jupyter_client)" oom
else
    echo "== out of memory: jupyter_client is not installed for $PYTHON: not run"
fi

if ((${#failed[@]})); then
    echo "test-gpu: ${#failed[@]} of $ran suite(s) failed: ${failed[*]}"
    exit 1
fi
echo "test-gpu: $ran suite(s) passed on $desc"
