#!/usr/bin/env python3
"""Where PyTorch's time goes in one of ssl_steps.py's training steps: torch.profiler over
STEPS steps (after two warm-up steps) of METHOD, the ops sorted by their own CPU time, to
set beside `perf` on tessera's `models --bench ssl/<method>` (BENCHMARKS, "Twentieth
session").

    THREADS=2 STEPS=3 .venv/bin/python scripts/torch/profile_step.py mae

METHOD is one of ssl_steps.py's cases (simclr, simclr-b256, moco-v2, rotation, mae, simmim,
clip). The profiler adds its own overhead: compare shares, not the step time.
"""

import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from ssl_steps import CASES


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit(f"profile_step.py: name one method of {', '.join(CASES)}")
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    steps = int(os.environ.get("STEPS", "3"))
    _, make, batch, views = CASES[sys.argv[1]]
    torch.manual_seed(0)
    method = make().train()
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-6)
    xs = [torch.randn(batch, 1, 28, 28) for _ in range(views)]

    def step():
        opt.zero_grad(set_to_none=True)
        method.loss(xs[0], xs[-1]).backward()
        opt.step()
        method.after_step()

    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    print(f"{sys.argv[1]}: {steps} steps, batch {batch}, {torch.get_num_threads()} threads")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
