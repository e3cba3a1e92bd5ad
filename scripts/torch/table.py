#!/usr/bin/env python3
"""Joins the JSON lines of examples/bench_ops.rs (tessera) and scripts/torch/bench_ops.py
(PyTorch) on `key` and prints a markdown table. When a file holds several rounds of the same
case, the fastest median is kept (the machine is shared; the best round is the least
disturbed one).

Usage: table.py TESSERA.jsonl TORCH.jsonl
"""

import json
import sys


def load(path):
    best = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r["key"] not in best or r["median_ms"] < best[r["key"]]["median_ms"]:
                best[r["key"]] = r
    return best


def rate(r):
    if r is None:
        return "—"
    per_s = r["amount"] / (r["median_ms"] / 1e3) / 1e9
    return f"{per_s:.1f} GFLOP/s" if r["work"] == "flops" else f"{per_s:.1f} GB/s"


def main():
    ours, theirs = load(sys.argv[1]), load(sys.argv[2])
    keys = list(ours) + [k for k in theirs if k not in ours]
    print("| op | shape | tessera ms | torch ms | tessera / torch | tessera rate | torch rate |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for k in keys:
        a, b = ours.get(k), theirs.get(k)
        r = a or b
        ta = f"{a['median_ms']:.3f}" if a else "—"
        tb = f"{b['median_ms']:.3f}" if b else "—"
        ratio = f"{a['median_ms'] / b['median_ms']:.2f}" if a and b else "—"
        print(f"| {r['op']} | {r['shape']} | {ta} | {tb} | {ratio} | {rate(a)} | {rate(b)} |")
    print()
    print("tessera / torch is tessera's time over PyTorch's: above 1 means tessera is slower.")


if __name__ == "__main__":
    main()
