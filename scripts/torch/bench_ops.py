#!/usr/bin/env python3
"""Times the cases of `examples/bench_ops.rs` in PyTorch and prints one JSON line per case.

Same keys, shapes, work and timing protocol as the Rust side: one warm-up call, calibrate
the calls per sample so a sample lasts at least 50 ms, then up to 15 samples within about
2 s (at least 5); report the median and the minimum per call.

Adding a row: add a case with the same key to `cases()` here and in examples/bench_ops.rs.

Run: .venv/bin/python scripts/torch/bench_ops.py --threads 2 [FILTER...]
"""

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from memory import peak_rss


DEVICE = torch.device(os.environ.get("DEVICE", "cpu"))


def cases():
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32).to(DEVICE)

    out = training_cases(randn)
    for n in (256, 512, 1024):
        a, b = randn(n, n), randn(n, n)
        out.append(dict(key=f"matmul_{n}", op="matmul f32", shape=f"{n}x{n} @ {n}x{n}", work="flops",
                        amount=2.0 * n**3, run=lambda a=a, b=b: torch.matmul(a, b)))
    n, cin, h, w, cout, k = 64, 64, 32, 32, 64, 3
    x, wt, bias = randn(n, cin, h, w), randn(cout, cin, k, k), randn(cout)
    out.append(dict(key="conv2d_64x64x32x32_k3", op="conv2d f32 fwd", shape=f"[{n},{cin},{h},{w}] * [{cout},{cin},{k},{k}], pad 1",
                    work="flops", amount=2.0 * n * cout * h * w * cin * k * k,
                    run=lambda: F.conv2d(x, wt, bias, stride=1, padding=1)))
    out += resnet18_conv_cases(randn)
    out += narrow_conv_cases(randn)
    s = randn(4096, 1024)
    out.append(dict(key="softmax_4096x1024", op="softmax f32 (last axis)", shape="[4096,1024]", work="bytes",
                    amount=2.0 * 4 * s.numel(), run=lambda: torch.softmax(s, dim=-1)))
    xa, row = randn(256, 1024), randn(1024)
    out.append(dict(key="add_256x1024_1024", op="broadcast add f32", shape="[256,1024] + [1024]", work="bytes",
                    amount=4.0 * (2 * xa.numel() + row.numel()), run=lambda: xa + row))
    return out


def training_cases(randn):
    """The MLP and small conv net of examples/bench_ops.rs, forward + backward, batch 256."""
    import torch.nn as nn

    batch = 256
    labels = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(1)).to(DEVICE)
    mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(DEVICE)
    x = randn(batch, 784)
    macs = batch * (784 * 512 + 512 * 512 + 512 * 10)

    def mlp_step():
        F.cross_entropy(mlp(x), labels).backward()
        mlp.zero_grad(set_to_none=True)

    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 10)).to(DEVICE)
    xi = randn(batch, 1, 28, 28)
    cmacs = batch * (32 * 9 * 784 + 64 * 288 * 196 + 3136 * 10)

    def conv_step():
        F.cross_entropy(net(xi), labels).backward()
        net.zero_grad(set_to_none=True)

    return [
        dict(key="mlp_784_512_512_10_fwd_bwd", op="MLP fwd+bwd f32", shape="batch 256, 784-512-512-10", work="flops",
             amount=3.0 * 2.0 * macs, run=mlp_step, grad=True),
        dict(key="convnet_b256_1x28x28_fwd_bwd", op="conv net fwd+bwd f32", shape="batch 256, 1x28x28, conv32-pool-conv64-pool-fc10",
             work="flops", amount=3.0 * 2.0 * cmacs, run=conv_step, grad=True),
    ]


def resnet18_conv_cases(randn):
    """The convolutions of ResNet-18 with the CIFAR stem, batch 64 (see examples/bench_ops.rs)."""
    return conv_cases(randn, "r18conv", 64, [(64, 32, 64, 3, 1, 1), (64, 32, 128, 3, 2, 1), (64, 32, 128, 1, 2, 0),
                                            (128, 16, 128, 3, 1, 1), (256, 8, 256, 3, 1, 1), (512, 4, 512, 3, 1, 1)])


def narrow_conv_cases(randn):
    """The convolutions of the default SimCLR model, the narrow ResNet on 1x28x28 images, at
    512 images (see examples/bench_ops.rs)."""
    return conv_cases(randn, "narrowconv", 512, [
        (1, 28, 16, 3, 1, 1), (16, 28, 16, 3, 1, 1), (16, 28, 32, 3, 2, 1), (16, 28, 32, 1, 2, 0),
        (32, 14, 32, 3, 1, 1), (32, 14, 64, 3, 2, 1), (32, 14, 64, 1, 2, 0), (64, 7, 64, 3, 1, 1),
        (64, 7, 128, 3, 2, 1), (64, 7, 128, 1, 2, 0), (128, 4, 128, 3, 1, 1)])


def conv_cases(randn, prefix, n, shapes):
    """Forward, input gradient and weight gradient of each (cin, size, cout, kernel, stride,
    padding) on a batch of n square images, keyed as examples/bench_ops.rs keys them."""
    out = []
    for cin, hw, cout, k, s, p in shapes:
        x, wt = randn(n, cin, hw, hw), randn(cout, cin, k, k)
        oh = (hw + 2 * p - k) // s + 1
        gy = randn(n, cout, oh, oh)
        flops = 2.0 * n * cout * oh * oh * cin * k * k
        name = f"{cin}x{hw}_k{cout}x{k}_s{s}"
        shape = f"[{n},{cin},{hw},{hw}] * [{cout},{cin},{k},{k}], stride {s}, pad {p}"
        out.append(dict(key=f"{prefix}_fwd_{name}", op="conv2d f32 fwd", shape=shape, work="flops", amount=flops,
                        run=lambda x=x, wt=wt, s=s, p=p: F.conv2d(x, wt, None, stride=s, padding=p)))
        out.append(dict(key=f"{prefix}_dx_{name}", op="conv2d f32 input grad", shape=shape, work="flops", amount=flops,
                        run=lambda x=x, wt=wt, gy=gy, s=s, p=p: torch.nn.grad.conv2d_input(x.shape, wt, gy, stride=s, padding=p)))
        out.append(dict(key=f"{prefix}_dw_{name}", op="conv2d f32 weight grad", shape=shape, work="flops", amount=flops,
                        run=lambda x=x, wt=wt, gy=gy, s=s, p=p: torch.nn.grad.conv2d_weight(x, wt.shape, gy, stride=s, padding=p)))
    return out


def report_peak(key):
    """`--peak KEY`: the memory of the first call of a training case, in a fresh process, as
    examples/bench_ops.rs measures it: the peak of tensor bytes allocated during the call
    (from the profiler's per-op allocation records, replayed in time order) and the growth
    of the process's peak resident set."""
    from torch.profiler import ProfilerActivity, profile

    case = next(c for c in cases() if c["key"] == key)
    rss = peak_rss(True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        case["run"]()
    live = peak = 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += e.self_cpu_memory_usage
        peak = max(peak, live)
    print(json.dumps(dict(key=key, peak_rss_growth_mib=round((peak_rss(False) - rss) / 2**20, 1),
                          peak_tensor_mib=round(peak / 2**20, 1))))


def timeit(run):
    """Median and minimum seconds per call (on a GPU each call waits for its kernels, as the
    Rust side does)."""
    if DEVICE.type == "cuda":
        inner = run

        def run():
            inner()
            torch.cuda.synchronize()
    run()

    def sample(calls):
        t = time.perf_counter()
        for _ in range(calls):
            run()
        return time.perf_counter() - t

    calls = 1
    first = sample(calls)
    while first < 0.05:
        calls *= 2
        first = sample(calls)
    samples = min(max(int(2.0 / first), 5), 15)
    per_call = sorted(sample(calls) / calls for _ in range(samples))
    return per_call[len(per_call) // 2], per_call[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peak", metavar="KEY", help="report the peak memory of one training case")
    p.add_argument("filters", nargs="*")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak:
        return report_peak(args.peak)
    for case in cases():
        if args.filters and not any(f in case["key"] for f in args.filters):
            continue
        # Inference cases run without autograd bookkeeping, as tessera's plain tensor ops do.
        with torch.inference_mode(not case.pop("grad", False)):
            median, best = timeit(case.pop("run"))
        case.update(median_ms=round(median * 1e3, 4), min_ms=round(best * 1e3, 4), threads=str(torch.get_num_threads()),
                    impl=f"torch {torch.__version__}")
        print(json.dumps(case), flush=True)


if __name__ == "__main__":
    main()
