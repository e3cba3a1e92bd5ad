#!/usr/bin/env bash
# The GPU check in two halves, for a GPU machine that has the NVIDIA driver and PyTorch with
# CUDA but no Rust toolchain and no network:
#
#   bash scripts/gpu-check.sh build   # here: stripped test + bench binaries into gpu-bundle/
#   bash scripts/gpu-check.sh run     # there, from a copy of the repo with gpu-bundle/ beside
#   GPU_CHECK_TESTS="engine_conv engine_half" bash scripts/gpu-check.sh build|run   # a re-check:
#                                     # only these test binaries, no benches or pretraining runs
#
# `run` executes every test binary that holds GPU parity checks (CPU vs CUDA on the same
# inputs), times 4096³ GEMMs (FP32 SIMT, TF32, BF16) against cuBLAS through PyTorch, and the
# forward+backward of the benchmark models against PyTorch eager on the same GPU, then prints
# one short table, then the per-op table of examples/bench_ops.rs on the GPU. It is sized to
# finish within 8 minutes (about one on an H100).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$root/gpu-bundle"
# The test files with GPU checks (each file's CPU tests run too: they are quick).
tests=(engine_half engine_elementwise engine_reduce engine_softmax engine_matmul engine_conv engine_pool engine_index engine_shape engine_views engine_random engine_errors autograd_composite autograd_gpu_memory nn_optim)
only="${GPU_CHECK_TESTS:-}"

build() {
    cd "$root"
    rm -rf "$bundle" && mkdir -p "$bundle/bin"
    local args=()
    for t in ${only:-"${tests[@]}"}; do args+=(--test "$t"); done
    # Cargo prints each built executable as JSON; keep the ones we asked for.
    { cargo test --no-run --message-format=json "${args[@]}"
      if [[ -z "$only" ]]; then
          cargo bench --no-run --message-format=json --bench gpu_gemm --bench models
          cargo build --release --message-format=json --example bench_ops --bin tessera
      fi; } \
        | python3 -c '
import json, sys, shutil, subprocess
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] in (["test"], ["bench"], ["example"], ["bin"]):
        dest = sys.argv[1] + "/bin/" + m["target"]["name"]
        subprocess.run(["strip", "-o", dest, m["executable"]], check=True)
' "$bundle"
    # The binaries share most of their code: xz shrinks them about tenfold, well inside the
    # 64 MiB the device tool carries beside the working tree.
    local count
    count=$(ls "$bundle/bin" | wc -l)
    tar -C "$bundle/bin" -cJf "$bundle/bundle.tar.xz" .
    rm -rf "$bundle/bin"
    echo "gpu-bundle: $count binaries, $(du -m "$bundle/bundle.tar.xz" | cut -f1) MiB compressed"
}

run() {
    cd "$root"
    [[ -f "$bundle/bundle.tar.xz" ]] || { echo "no gpu-bundle/bundle.tar.xz: run 'bash scripts/gpu-check.sh build' on a machine with cargo first" >&2; exit 1; }
    local logs bin
    logs="$(mktemp -d)"
    bin="$(mktemp -d)"
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle/bundle.tar.xz" "$bin"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$logs/gpu" 2>&1 || echo "nvidia-smi failed" > "$logs/gpu"
    for t in ${only:-"${tests[@]}"}; do
        [[ -x "$bin/$t" ]] || { echo "missing $t" > "$logs/test.$t"; continue; }
        (cd "$bin" && timeout 120 "./$t" --test-threads 2 > "$logs/test.$t" 2>&1) || true
    done
    if [[ -n "$only" ]]; then
        for f in "$logs"/test.*; do
            echo "==== $(basename "$f")"; grep -E "^test .*(FAILED|ok)$|^test result|panicked|GPU .* vs" "$f" | tail -n 40
        done
        return
    fi
    (GEMM_VARIANTS=_s4,_w8 timeout 90 "$bin/gpu_gemm" > "$logs/gemm.tessera" 2>&1) || true
    (timeout 60 python3 scripts/torch/gemm.py > "$logs/gemm.torch" 2>&1) || true
    (DEVICE=cuda STEPS=5 PROFILE=1 timeout 120 "$bin/models" > "$logs/models.tessera" 2>&1) || true
    (DEVICE=cuda STEPS=5 timeout 90 python3 scripts/torch/models.py > "$logs/models.torch" 2>&1) || true
    # The same steps with the model and data in bf16 (both sides: `model.to(bfloat16)`).
    (DEVICE=cuda DTYPE=bf16 STEPS=5 timeout 90 "$bin/models" >> "$logs/models.tessera" 2>&1) || true
    (DEVICE=cuda DTYPE=bf16 STEPS=5 timeout 60 python3 scripts/torch/models.py >> "$logs/models.torch" 2>&1) || true
    # And mixed precision: f32 models, autocast to bf16 (torch.autocast on the PyTorch side).
    (DEVICE=cuda DTYPE=bf16-mixed STEPS=5 timeout 90 "$bin/models" >> "$logs/models.tessera" 2>&1) || true
    (DEVICE=cuda DTYPE=bf16-mixed STEPS=5 timeout 60 python3 scripts/torch/models.py >> "$logs/models.torch" 2>&1) || true
    # The main job's pipeline on the GPU, end to end, on a short budget.
    (timeout 150 "$bin/tessera" pretrain --method simclr --device cuda --max-steps 20 --out "$bin/run" > "$logs/pretrain.cuda" 2>&1) || true
    # The other methods' steps on the GPU (ViT encoders, packed attention, the MAE decoder,
    # CLIP's text tower): a few steps each, no evaluation, the last lines of each log kept.
    for m in moco-v2 mae simmim clip rotation; do
        (timeout 60 "$bin/tessera" pretrain --method "$m" --device cuda --max-steps 8 --no-eval --out "$bin/run-$m" > "$logs/pretrain-$m.cuda" 2>&1) || echo "exit $?" >> "$logs/pretrain-$m.cuda"
    done
    # Per-op times on the GPU, tessera beside PyTorch (the compare-torch cases).
    (DEVICE=cuda timeout 90 "$bin/bench_ops" > "$logs/ops.tessera.jsonl" 2>&1) || true
    (DEVICE=cuda timeout 90 python3 scripts/torch/bench_ops.py > "$logs/ops.torch.jsonl" 2>&1) || true
    # Logs: the failure reports of test binaries that failed, and the tail of the rest.
    for f in "$logs"/*; do
        case "$(basename "$f")" in
        test.*) grep -q "test result: ok" "$f" || { echo "==== $(basename "$f")"; sed -n '/^failures:/,$p' "$f" | head -n 60; tail -n 5 "$f"; } ;;
        ops.*) ;;
        pretrain-*) echo "==== $(basename "$f")"; tail -n 3 "$f" ;;
        *) echo "==== $(basename "$f")"; tail -n 40 "$f" ;;
        esac
    done
    python3 scripts/torch/gpu_table.py "$logs"
    echo
    python3 scripts/torch/table.py "$logs/ops.tessera.jsonl" "$logs/ops.torch.jsonl" || true
}

case "${1:-}" in
build) build ;;
run) run ;;
*) echo "usage: bash scripts/gpu-check.sh build|run" >&2; exit 2 ;;
esac
