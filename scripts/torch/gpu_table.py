#!/usr/bin/env python3
"""Folds the logs of `scripts/gpu-check.sh run` into the short table it ends with."""
import pathlib
import re
import sys

logs = pathlib.Path(sys.argv[1])


def read(name):
    p = logs / name
    return p.read_text(errors="replace") if p.exists() else ""


print()
print(f"GPU: {read('gpu').strip()}")
print()
print("| test binary | passed | failed | note |")
print("|---|---|---|---|")
for p in sorted(logs.glob("test.*")):
    text = p.read_text(errors="replace")
    passed = sum(int(m) for m in re.findall(r"(\d+) passed", text))
    failed = sum(int(m) for m in re.findall(r"(\d+) failed", text))
    note = "" if "test result" in text else "did not finish (see log above)"
    print(f"| {p.name[5:]} | {passed} | {failed} | {note} |")


def gemm(text):
    return {m[0]: float(m[1]) for m in re.findall(r"gemm \d+ ([\w-]+) ([\d.]+)", text)}


ours, theirs = gemm(read("gemm.tessera")), gemm(read("gemm.torch"))
print()
print("| GEMM 4096³ | tessera TFLOP/s | cuBLAS TFLOP/s | tessera / cuBLAS |")
print("|---|---|---|---|")
# (tessera's line, cuBLAS's line): f32 tensors under tessera's bf16 precision and bf16
# tensors both stand against cuBLAS on bf16 tensors; f16 tensors against cuBLAS's f16.
for k, t in (("fp32", "fp32"), ("tf32", "tf32"), ("bf16", "bf16"), ("bf16-native", "bf16"), ("f16-native", "f16")):
    a, b = ours.get(k), theirs.get(t)
    ratio = f"{a / b:.2f}" if a and b else "n/a"
    name = k if k == t else f"{k} (cuBLAS {t})"
    print(f"| {name} | {a if a is not None else 'n/a'} | {b if b is not None else 'n/a'} | {ratio} |")


def models(text):
    return {m[0].strip(): (float(m[1]), float(m[2])) for m in re.findall(r"^(.*?) \[cuda.*?forward\+backward ([\d.]+) s, full step ([\d.]+) s", text, re.M)}


ours, theirs = models(read("models.tessera")), models(read("models.torch"))
print()
print("| model (fwd+bwd) | tessera s | PyTorch s | tessera / PyTorch |")
print("|---|---|---|---|")
for k in sorted(set(ours) | set(theirs)):
    a, b = ours.get(k, (None,))[0], theirs.get(k, (None,))[0]
    ratio = f"{a / b:.2f}" if a and b else "n/a"
    print(f"| {k} | {a if a is not None else 'n/a'} | {b if b is not None else 'n/a'} | {ratio} |")
