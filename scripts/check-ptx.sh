#!/usr/bin/env bash
# The GPU-less kernel checks CI runs: the committed PTX is what ptx/kernels/*.cu gives, and
# every module assembles with ptxas for Ampere (sm_80) and Hopper (sm_90).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$(bash "$root/scripts/cuda-tools.sh")"
python3 "$root/scripts/gen-ptx.py" --check
ptxas="$tools/nvidia/cuda_nvcc/bin/ptxas"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
n=0
for f in "$root"/ptx/src/ptx/*.ptx; do
    for arch in sm_80 sm_90; do
        "$ptxas" --gpu-name "$arch" -O3 "$f" -o "$out/$(basename "$f" .ptx).$arch.cubin"
    done
    n=$((n + 1))
done
echo "ptxas: $n modules assemble for sm_80 and sm_90"
