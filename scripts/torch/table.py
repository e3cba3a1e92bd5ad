#!/usr/bin/env python3
"""Joins the JSON lines of examples/bench_ops.rs (tessera) and scripts/torch/bench_ops.py
(PyTorch) on `key` and prints a markdown table.

Times are per call. The headline figure is the best sample (each sample times at least 50 ms
of back-to-back calls): on a shared machine it is the least disturbed measurement, and the
ratio and rates use it. The median sample follows in parentheses. When a file holds several
rounds of a case, each figure is the best over the rounds.

With the two peak files (from `--peak KEY` runs), a second table gives the peak memory of
the training cases.

Usage: table.py TESSERA.jsonl TORCH.jsonl [TESSERA.peak.jsonl TORCH.peak.jsonl]
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
            b = best.setdefault(r["key"], r)
            b["min_ms"] = min(b["min_ms"], r["min_ms"])
            b["median_ms"] = min(b["median_ms"], r["median_ms"])
    return best


def rate(r):
    if r is None:
        return "—"
    per_s = r["amount"] / (r["min_ms"] / 1e3) / 1e9
    return f"{per_s:.1f} GFLOP/s" if r["work"] == "flops" else f"{per_s:.1f} GB/s"


def main():
    ours, theirs = load(sys.argv[1]), load(sys.argv[2])
    keys = list(ours) + [k for k in theirs if k not in ours]
    print("| op | shape | tessera ms, best (median) | torch ms, best (median) | tessera / torch | tessera rate | torch rate |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for k in keys:
        a, b = ours.get(k), theirs.get(k)
        r = a or b
        ta = f"{a['min_ms']:.3f} ({a['median_ms']:.3f})" if a else "—"
        tb = f"{b['min_ms']:.3f} ({b['median_ms']:.3f})" if b else "—"
        ratio = f"{a['min_ms'] / b['min_ms']:.2f}" if a and b else "—"
        print(f"| {r['op']} | {r['shape']} | {ta} | {tb} | {ratio} | {rate(a)} | {rate(b)} |")
    print()
    print("tessera / torch is tessera's best time over PyTorch's: above 1 means tessera is slower.")
    print("Rates use the best time: GFLOP/s counts a multiply and an add as two FLOPs; GB/s counts")
    print("the bytes each op must read and write once.")
    if len(sys.argv) > 4:
        peaks(sys.argv[3], sys.argv[4], {**theirs, **ours})


def read_lines(path):
    try:
        with open(path) as f:
            return {r["key"]: r for r in (json.loads(l) for l in f if l.strip().startswith("{"))}
    except FileNotFoundError:
        return {}


def peaks(ours_path, theirs_path, cases):
    ours, theirs = read_lines(ours_path), read_lines(theirs_path)
    if not ours and not theirs:
        return
    print()
    print("| training case | tessera peak tensor MiB | torch peak tensor MiB | tessera / torch | tessera peak RSS growth MiB | torch peak RSS growth MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for k in list(ours) + [k for k in theirs if k not in ours]:
        a, b = ours.get(k) or {}, theirs.get(k) or {}
        ta, tb = a.get("peak_tensor_mib"), b.get("peak_tensor_mib")
        ratio = f"{ta / tb:.2f}" if ta and tb else "—"
        name = cases.get(k, {}).get("op", k)
        cells = [ta, tb, ratio, a.get("peak_rss_growth_mib"), b.get("peak_rss_growth_mib")]
        print(f"| {name} | " + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    print()
    print("Peak memory of the first forward+backward call, each side in a fresh process: tensor bytes")
    print("alive at the peak above those alive before (tessera's own counter; PyTorch's profiler")
    print("allocation records), and the growth of the process's peak resident set.")


if __name__ == "__main__":
    main()
