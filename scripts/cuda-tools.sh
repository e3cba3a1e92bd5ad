#!/usr/bin/env bash
# Installs the two CUDA tools tessera's PTX checks need into the git-ignored .tools/cuda:
# NVRTC (compiles ptx/kernels/*.cu to PTX) and ptxas (assembles PTX for sm_80 / sm_90).
# Both come from pinned PyPI wheels, so no CUDA toolkit is ever installed by hand.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/cuda"
stamp="$dest/.installed-12.4"
if [[ ! -f "$stamp" ]]; then
    rm -rf "$dest"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dest" \
        "nvidia-cuda-nvrtc-cu12==12.4.127" "nvidia-cuda-nvcc-cu12==12.4.131"
    touch "$stamp"
fi
echo "$dest"
