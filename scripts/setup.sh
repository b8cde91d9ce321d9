#!/usr/bin/env bash
# Installs what Kiln needs on a fresh Debian machine (idempotent; skips what is there):
#   Debian packages: compiler and build tools, ZeroMQ, Jansson, libsodium, OpenBLAS, zlib,
#   clang with libFuzzer and sanitizer runtimes, Lua 5.4 (a benchmark peer), Fashion-MNIST,
#   Chromium (the browser test drives it with Playwright; no browser is downloaded);
#   Python tools in a virtual environment in the checkout (.venv): jupyter_client,
#   nbclient, jupyter_kernel_test, ipykernel (a benchmark peer), NumPy (test and bench peer),
#   JupyterLab and Playwright (the browser test, tests/browser).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkgs=(build-essential pkg-config clang libclang-rt-14-dev libzmq3-dev libjansson-dev libsodium-dev
      libopenblas-pthread-dev zlib1g-dev lua5.4 dataset-fashion-mnist python3-venv python3-pip
      chromium)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ! -x "$root/.venv/bin/python" ]; then
    python3 -m venv "$root/.venv"
fi
"$root/.venv/bin/python" -m pip install -q --upgrade pip
"$root/.venv/bin/python" -m pip install -q -r "$root/scripts/requirements.txt"
