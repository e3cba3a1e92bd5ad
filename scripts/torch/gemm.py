#!/usr/bin/env python3
"""cuBLAS, through PyTorch, on the GEMMs benches/gpu_gemm.rs times: 4096³ in FP32 (no TF32),
TF32, BF16 and FP16 (bf16 / f16 inputs and result, f32 accumulate: the counterparts of
tessera's bf16-native and f16-native). Prints `gemm 4096 <precision> <TFLOP/s>` lines.

    python3 scripts/torch/gemm.py [N]
"""
import sys
import time

import torch


def tflops(a, b, iters=20):
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    n = a.shape[0]
    return 2 * n**3 * iters / (time.perf_counter() - t) / 1e12


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    if not torch.cuda.is_available():
        print("skipping: no CUDA device for PyTorch")
        return
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.rand(n, n, device="cuda", generator=g)
    b = torch.rand(n, n, device="cuda", generator=g)
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"gemm {n} fp32 {tflops(a, b):.2f}")
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"gemm {n} tf32 {tflops(a, b):.2f}")
    print(f"gemm {n} bf16 {tflops(a.bfloat16(), b.bfloat16()):.2f}")
    # f32 accumulation all the way, as tessera's f16 kernel does (PyTorch lets cuBLAS reduce
    # split-K partial sums in f16 by default).
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    print(f"gemm {n} f16 {tflops(a.half(), b.half()):.2f}")


if __name__ == "__main__":
    main()
