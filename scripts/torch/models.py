#!/usr/bin/env python3
"""PyTorch counterpart of benches/models.rs: forward + backward + optimizer step of
torchvision's ResNet-18 (CIFAR stem, 3x32x32, batch 64, SGD momentum) and timm's ViT-Tiny
(patch 4, 1x28x28, batch 256, AdamW), one warm-up step then the median of STEPS steps.

    THREADS=2 .venv/bin/python scripts/torch/models.py [resnet|vit]
"""

import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from timm.models.vision_transformer import VisionTransformer


def time_steps(name, model, opt, x, y, steps):
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i > 0:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"{name}: {med:.3f} s/step (median of {steps}), {x.shape[0] / med:.1f} images/s")


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    steps = int(os.environ.get("STEPS", "3"))
    want = sys.argv[1:]
    torch.manual_seed(0)
    if not want or any(w in "resnet18" for w in want):
        net = torchvision.models.resnet18(num_classes=10)
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        time_steps("resnet18 cifar-stem 3x32x32 batch 64", net.train(), opt, torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)), steps)
    if not want or any(w in "vit_tiny" for w in want):
        vit = VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=192, depth=12, num_heads=3)
        opt = torch.optim.AdamW(vit.parameters(), lr=1e-3, weight_decay=0.05)
        time_steps("vit_tiny patch4 1x28x28 batch 256", vit.train(), opt, torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,)), steps)


if __name__ == "__main__":
    main()
