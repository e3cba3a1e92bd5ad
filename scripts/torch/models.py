#!/usr/bin/env python3
"""PyTorch counterpart of benches/models.rs: forward + backward + optimizer step of
torchvision's ResNet-18 (CIFAR stem, 3x32x32, batch 64, SGD momentum) and timm's ViT-Tiny
(patch 4, 1x28x28, batch 256, AdamW) and an MAE step on that ViT (`mae`), one warm-up step then the median of STEPS steps, on the
CPU or (DEVICE=cuda) a GPU, with the same memory figures as the Rust bench.

    THREADS=2 .venv/bin/python scripts/torch/models.py [resnet|vit|mae]
    DEVICE=cuda python3 scripts/torch/models.py
    DEVICE=cuda DTYPE=bf16 python3 scripts/torch/models.py   # model and data in bf16 (or f16)
    DEVICE=cuda DTYPE=bf16-mixed python3 scripts/torch/models.py   # f32 model, torch.autocast
"""

import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from memory import peak_rss


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
# DTYPE=bf16-mixed / f16-mixed: the model stays f32, forward and loss run under autocast.
AUTOCAST = {"bf16-mixed": torch.bfloat16, "f16-mixed": torch.float16}


def classification_loss(model, x, y):
    return F.cross_entropy(model(x), y)


def time_steps(name, device, model, make_opt, x, y, steps, loss_of=classification_loss):
    dtype = os.environ.get("DTYPE", "f32")
    if dtype != "f32":
        name = f"{name} {dtype}"
    amp = AUTOCAST.get(dtype)
    store = torch.float32 if amp else DTYPES[dtype]
    model = model.to(device=device, dtype=store).train()
    opt = make_opt(model)
    x, y = x.to(device=device, dtype=store), (y.to(device) if y is not None else None)
    rss_before = peak_rss(True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    fwd_bwd, total = [], []
    for i in range(steps + 1):
        sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = loss_of(model, x, y)
        loss.backward()
        sync(device)
        fb = time.perf_counter() - t
        opt.step()
        sync(device)
        if i > 0:
            fwd_bwd.append(fb)
            total.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    growth = max(peak_rss(False) - rss_before, 0)
    fb, step = statistics.median(fwd_bwd), statistics.median(total)
    print(
        f"{name} [{device}]: forward+backward {fb:.4f} s, full step {step:.4f} s (median of {steps}), "
        f"{x.shape[0] / step:.1f} images/s, peak tensors {peak / 2**20:.1f} MiB, peak RSS growth {growth / 2**20:.1f} MiB"
    )


class TinyMae(nn.Module):
    """MAE as the reference code computes it (random masking by argsort of noise, encoder on
    the visible patches with fixed sin-cos positions, a light decoder, norm-pix MSE on the
    masked patches), at tessera's preset sizes: ViT-Tiny/4 on 1x28x28, decoder 128 wide, 2
    blocks, 4 heads, mask ratio 0.75. Sin-cos tables are left at zero: they cost nothing."""

    def __init__(self, img=28, patch=4, chans=1, dim=192, depth=12, heads=3, ddim=128, ddepth=2, dheads=4, ratio=0.75, norm_pix=True):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.p, self.ratio, self.L, self.norm_pix = patch, ratio, (img // patch) ** 2, norm_pix
        self.patch_embed = nn.Conv2d(chans, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos", torch.zeros(1, self.L + 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, 4.0, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.dec_embed = nn.Linear(dim, ddim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, ddim))
        self.register_buffer("dec_pos", torch.zeros(1, self.L + 1, ddim))
        self.dec_blocks = nn.ModuleList([Block(ddim, dheads, 4.0, qkv_bias=True) for _ in range(ddepth)])
        self.dec_norm = nn.LayerNorm(ddim, eps=1e-6)
        self.pred = nn.Linear(ddim, patch * patch * chans)

    def forward(self, imgs):
        n, c, h, w = imgs.shape
        x = self.patch_embed(imgs).flatten(2).transpose(1, 2) + self.pos[:, 1:]
        keep = int(self.L * (1 - self.ratio))
        ids_shuffle = torch.argsort(torch.rand(n, self.L, device=imgs.device), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, x.shape[2]))
        mask = torch.ones(n, self.L, device=imgs.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        x = torch.cat([(self.cls + self.pos[:, :1]).expand(n, -1, -1), x], 1)
        for b in self.blocks:
            x = b(x)
        x = self.dec_embed(self.norm(x))
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(n, self.L - keep, -1)], 1)
        tokens = torch.gather(tokens, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], tokens], 1) + self.dec_pos
        for b in self.dec_blocks:
            x = b(x)
        pred = self.pred(self.dec_norm(x))[:, 1:]
        p = self.p
        t = imgs.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(n, self.L, p * p * c)
        if self.norm_pix:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
        loss = ((pred - t) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum()


def main():
    import torchvision
    from timm.models.vision_transformer import VisionTransformer

    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    steps = int(os.environ.get("STEPS", "3"))
    device = torch.device(os.environ.get("DEVICE", "cpu"))
    want = sys.argv[1:]
    torch.manual_seed(0)
    if not want or any(w in "resnet18" for w in want):
        net = torchvision.models.resnet18(num_classes=10)
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        opt = lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        time_steps("resnet18 cifar-stem 3x32x32 batch 64", device, net, opt, torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)), steps)
    if not want or any(w in "vit_tiny" for w in want):
        vit = VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=192, depth=12, num_heads=3)
        opt = lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05)
        time_steps("vit_tiny patch4 1x28x28 batch 256", device, vit, opt, torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,)), steps)
    if not want or any(w in "mae" for w in want):
        opt = lambda m: torch.optim.AdamW(m.parameters(), lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05)
        x = torch.randn(256, 1, 28, 28)
        time_steps("mae vit_tiny patch4 1x28x28 batch 256", device, TinyMae(), opt, x, None, steps, lambda m, x, y: m(x))


if __name__ == "__main__":
    main()
