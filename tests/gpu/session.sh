#!/usr/bin/env bash
# tests/gpu/session.sh — one call of a lent GPU's time, prepared: what every session
# that has a GPU should run first, in this order, each step bounded so that the whole
# fits one device call (10 minutes) with the start-up. Run it on the device machine as
#     source .gpu/setup.sh && tests/gpu/session.sh
# (carry: [".gpu"] after ../shared/gpu/pack.sh --data). Everything it prints and writes
# goes under $OUT (the device tool brings that folder back), or out/gpu-session here:
#   build.log            the build
#   test-gpu.log         make test-gpu: NVRTC, every golden with KILN_DEVICE=cuda,
#                        conformance on cuda, out of memory through jupyter_client
#   goldens/NAME.cuda.*  what each golden printed on the GPU where it differs from the
#                        expected files: read, and commit as NAME.cuda.out/.err where
#                        the difference is the device's (f32 digits, NVRTC's words)
#   train-seedS.log, *.json  bench/train.py --device cuda: cnn_vgg, seeds 0-4 (issue 17
#                        item 7: >= 93.5 % after 5 epochs on every seed), PyTorch's twin
#                        on seed 0; then bench-gpu's suites if time is left
# Steps that run past their budget are stopped and named; the rest still run.
set -u
OUT=${OUT:-$PWD/out/gpu-session}
mkdir -p "$OUT/goldens"
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && PY=.venv/bin/python
t0=$(date +%s)
step() { # NAME SECONDS CMD...: runs CMD with a time limit, logs to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (at $(($(date +%s) - t0)) s, limit $limit s)"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    [[ $rc == 124 ]] && echo "   $name: stopped after $limit s"
    echo "   $name: exit $rc; last lines:"
    tail -n 5 "$OUT/$name.log" | sed 's/^/     /'
    return 0
}

step build 240 make -j16 WERROR=1
make -s build/tests/gpu_probe >/dev/null 2>&1
if ! desc=$(build/tests/gpu_probe); then
    echo "== no usable CUDA device here ($desc): nothing more to run"
    exit 0
fi
echo "== on $desc"
step test-gpu 150 make test-gpu

# the goldens' GPU output where it differs from the expected files
for kn in tests/lang/*.kn; do
    name=$(basename "$kn" .kn)
    [[ $name == devices ]] && continue
    (cd tests/lang && KILN_DEVICE=cuda timeout 60 ../../build/kiln run -k "$name.kn" \
        >"$OUT/goldens/$name.cuda.out.new" 2>"$OUT/goldens/$name.cuda.err.new")
    for ext in out err; do
        want=tests/lang/$name.cuda.$ext
        [[ -f $want ]] || want=tests/lang/$name.$ext
        got=$OUT/goldens/$name.cuda.$ext.new
        if [[ -f $want ]] && cmp -s "$want" "$got"; then
            rm -f "$got"
        elif [[ ! -f $want && ! -s $got ]]; then
            rm -f "$got"
        fi
    done
done
echo "== goldens that differ on the GPU: $(ls "$OUT/goldens" | tr '\n' ' ')"

# one seed per call, so that each writes its results even if a later one runs out of time
step train-seed0 150 "$PY" bench/train.py --device cuda --models cnn_vgg --out "$OUT" build/kiln
for s in 1 2 3 4; do
    step train-seed$s 75 "$PY" bench/train.py --device cuda --models cnn_vgg --first-seed $s --no-torch \
        --out "$OUT" build/kiln
done
left=$((570 - ($(date +%s) - t0)))
if ((left > 60)); then
    step bench-gpu "$left" make bench-gpu
fi
echo "== done in $(($(date +%s) - t0)) s; results under $OUT"
