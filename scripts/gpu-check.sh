#!/usr/bin/env bash
# The GPU check in two halves, for a GPU machine that has the NVIDIA driver and PyTorch with
# CUDA but no Rust toolchain and no network:
#
#   bash scripts/gpu-check.sh build   # here: stripped test + bench binaries into gpu-bundle/
#   bash scripts/gpu-check.sh run     # there, from a copy of the repo with gpu-bundle/ beside
#
# `run` executes every test binary that holds GPU parity checks (CPU vs CUDA on the same
# inputs), times 4096³ GEMMs (FP32 SIMT, TF32, BF16) against cuBLAS through PyTorch, and the
# forward+backward of the benchmark models against PyTorch eager on the same GPU, then prints
# one short table. It is sized to finish within 8 minutes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$root/gpu-bundle"
# The test files with GPU checks (each file's CPU tests run too: they are quick).
tests=(engine_elementwise engine_reduce engine_softmax engine_matmul engine_conv engine_index engine_views engine_random engine_errors autograd_composite)

build() {
    cd "$root"
    rm -rf "$bundle" && mkdir -p "$bundle"
    local args=()
    for t in "${tests[@]}"; do args+=(--test "$t"); done
    # Cargo prints each built executable as JSON; keep the ones we asked for.
    { cargo test --no-run --message-format=json "${args[@]}"; cargo bench --no-run --message-format=json --bench gpu_gemm --bench models; } \
        | python3 -c '
import json, sys, shutil, subprocess
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] in (["test"], ["bench"]):
        dest = sys.argv[1] + "/" + m["target"]["name"]
        subprocess.run(["strip", "-o", dest, m["executable"]], check=True)
' "$bundle"
    local size
    size=$(du -sm "$bundle" | cut -f1)
    echo "gpu-bundle: $(ls "$bundle" | wc -l) binaries, ${size} MiB (the device tool carries at most 64 MiB)"
    [[ "$size" -lt 64 ]] || { echo "gpu-bundle is too large to carry" >&2; exit 1; }
}

run() {
    cd "$root"
    [[ -d "$bundle" ]] || { echo "no gpu-bundle/: run 'bash scripts/gpu-check.sh build' on a machine with cargo first" >&2; exit 1; }
    local logs
    logs="$(mktemp -d)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$logs/gpu" 2>&1 || echo "nvidia-smi failed" > "$logs/gpu"
    for t in "${tests[@]}"; do
        [[ -x "$bundle/$t" ]] || { echo "missing $t" > "$logs/test.$t"; continue; }
        (cd "$bundle" && timeout 120 "./$t" --test-threads 2 > "$logs/test.$t" 2>&1) || true
    done
    (timeout 90 "$bundle/gpu_gemm" > "$logs/gemm.tessera" 2>&1) || true
    (timeout 60 python3 scripts/torch/gemm.py > "$logs/gemm.torch" 2>&1) || true
    (DEVICE=cuda STEPS=5 timeout 120 "$bundle/models" > "$logs/models.tessera" 2>&1) || true
    (DEVICE=cuda STEPS=5 timeout 90 python3 scripts/torch/models.py > "$logs/models.torch" 2>&1) || true
    for f in "$logs"/*; do echo "==== $(basename "$f")"; tail -n 40 "$f"; done
    python3 scripts/torch/gpu_table.py "$logs"
}

case "${1:-}" in
build) build ;;
run) run ;;
*) echo "usage: bash scripts/gpu-check.sh build|run" >&2; exit 2 ;;
esac
