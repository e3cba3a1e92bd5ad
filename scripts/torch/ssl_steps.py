#!/usr/bin/env python3
"""PyTorch counterpart of the `ssl` cases of benches/models.rs: one training step of each
method as tessera's Method API runs it with its default options (views -> loss -> backward ->
AdamW -> momentum/queue update), one warm-up step then the median of STEPS steps, on the CPU,
printed in the Rust bench's line format so scripts/compare-ssl-steps can pair them.

    THREADS=2 STEPS=3 .venv/bin/python scripts/torch/ssl_steps.py [simclr|moco-v2|rotation|mae|simmim|clip]

DTYPE=bf16-mixed runs each forward and loss under torch.autocast("cpu", dtype=torch.bfloat16)
(the model stays f32), as the Rust bench does with the same variable.

The models match tessera's shapes: the narrow ResNet (3x3 stem of 16, no max-pool, one
BasicBlock per stage, widths 16/32/64/128), SimCLR's 128->512->128 BN head with NT-Xent
(tau 0.5), MoCo v2 as in the paper (asymmetric, 512->128 head, queue 4096, tau 0.2, m 0.99,
key batch normalized in 4 shuffled groups), RotNet (4 x 64 rotated images, 128->256->4 BN
head), ViT-Tiny/4 MAE (models.py's TinyMae) and SimMIM (all tokens, mask token, linear
pixel head, L1 on the masked pixels) at batch 256, and CLIP (ViT-Tiny/4 + 2-layer text
transformer) at batch 256.
"""

import copy
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from memory import peak_rss
from torchvision.models.resnet import BasicBlock


class NarrowResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64, 128), stem=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        layers, cin = [], stem
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != w:
                down = nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False), nn.BatchNorm2d(w))
            layers.append(BasicBlock(cin, w, stride, down))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.dim = cin

    def forward(self, x):
        return self.layers(self.stem(x)).mean((2, 3))


def mlp(din, hidden, dout):
    return nn.Sequential(nn.Linear(din, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dout))


class SimClr(nn.Module):
    def __init__(self, tau=0.5):
        super().__init__()
        self.net, self.tau = NarrowResNet(), tau
        self.head = mlp(self.net.dim, 512, 128)

    def loss(self, x1, x2):
        z = F.normalize(self.head(self.net(torch.cat([x1, x2]))), dim=1)
        n = x1.shape[0]
        logits = z @ z.t() / self.tau
        logits.fill_diagonal_(float("-inf"))
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
        return F.cross_entropy(logits, target)

    def after_step(self):
        pass


class MocoV2(nn.Module):
    def __init__(self, tau=0.2, m=0.99, queue=4096, groups=4):
        super().__init__()
        self.net = NarrowResNet()
        self.head = mlp(self.net.dim, 512, 128)
        self.key_net, self.key_head = copy.deepcopy(self.net), copy.deepcopy(self.head)
        for p in list(self.key_net.parameters()) + list(self.key_head.parameters()):
            p.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(queue, 128), dim=1))
        self.tau, self.m, self.groups, self.ptr, self.pending = tau, m, groups, 0, None

    @torch.no_grad()
    def keys(self, x):
        perm = torch.randperm(x.shape[0])
        k = torch.cat([self.key_head(self.key_net(chunk)) for chunk in x[perm].chunk(self.groups)])
        return F.normalize(k[torch.argsort(perm)], dim=1)

    def loss(self, x1, x2):
        q = F.normalize(self.head(self.net(x1)), dim=1)
        k = self.keys(x2)
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ self.queue.t()], 1) / self.tau
        self.pending = k
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))

    @torch.no_grad()
    def after_step(self):
        for online, key in ((self.net, self.key_net), (self.head, self.key_head)):
            for po, pk in zip(online.parameters(), key.parameters()):
                pk.mul_(self.m).add_(po, alpha=1 - self.m)
        n = self.pending.shape[0]
        self.queue[self.ptr : self.ptr + n] = self.pending
        self.ptr = (self.ptr + n) % self.queue.shape[0]


class Rotation(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = NarrowResNet()
        self.head = mlp(self.net.dim, 256, 4)

    def loss(self, x, _):
        rotated = torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])
        labels = torch.arange(4).repeat_interleave(x.shape[0])
        return F.cross_entropy(self.head(self.net(rotated)), labels)

    def after_step(self):
        pass


class SimMim(nn.Module):
    """SimMIM on ViT-Tiny/4: every patch enters, masked ones replaced by a learned token."""

    def __init__(self, img=28, patch=4, dim=192, depth=12, heads=3, ratio=0.6):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.p, self.L, self.ratio = patch, (img // patch) ** 2, ratio
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, self.L + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, 4.0, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, patch * patch)

    def loss(self, imgs, _):
        n, c, h, w = imgs.shape
        x = self.patch_embed(imgs).flatten(2).transpose(1, 2)
        masked = int(self.L * self.ratio)
        ids = torch.argsort(torch.rand(n, self.L), dim=1)
        mask = torch.zeros(n, self.L)
        mask.scatter_(1, ids[:, :masked], 1.0)
        w_ = mask.unsqueeze(-1)
        x = x * (1 - w_) + self.mask_token * w_ + self.pos[:, 1:]
        x = torch.cat([(self.cls + self.pos[:, :1]).expand(n, -1, -1), x], 1)
        for b in self.blocks:
            x = b(x)
        pred = self.pred(self.norm(x)[:, 1:])  # [n, L, p*p]
        g, p = h // self.p, self.p
        rec = pred.reshape(n, g, g, p, p).permute(0, 1, 3, 2, 4).reshape(n, 1, h, w)
        pix = mask.reshape(n, g, g, 1, 1).expand(-1, -1, -1, p, p).permute(0, 1, 3, 2, 4).reshape(n, 1, h, w)
        return ((imgs - rec).abs() * pix).sum() / (pix.sum() + 1e-5) / c

    def after_step(self):
        pass


class Mae(nn.Module):
    def __init__(self):
        super().__init__()
        from models import TinyMae

        self.model = TinyMae()

    def loss(self, x, _):
        return self.model(x)

    def after_step(self):
        pass


class Clip(nn.Module):
    """CLIP as tessera's `clip` bench case builds it with the default options: a ViT-Tiny/4
    image tower (class token) with a bias-free projection to 128, a text transformer (vocab
    1024, context 24, width 128, 4 heads, 2 pre-norm causal blocks with MLP ratio 4, final
    LayerNorm, features at the end-of-text token) with its projection, and the symmetric
    contrastive loss with a learnable log logit scale (ln(1/0.07)). Captions are random
    token rows with the end-of-text token (the largest id) at a random position, since a
    step's cost does not depend on what they say."""

    def __init__(self, batch=256, vocab=1024, ctx=24, width=128, heads=4, layers=2, embed=128):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.visual = VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=0, embed_dim=192, depth=12, num_heads=3, global_pool="token")
        self.visual_proj = nn.Parameter(torch.randn(192, embed) * 192**-0.5)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.randn(ctx, width) * 0.01)
        block = lambda: nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.ModuleList([block() for _ in range(layers)])
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, embed) * width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.register_buffer("causal", torch.triu(torch.full((ctx, ctx), float("-inf")), 1))
        g = torch.Generator().manual_seed(0)
        tokens = torch.randint(1, vocab - 1, (batch, ctx), generator=g)
        tokens[torch.arange(batch), torch.randint(2, ctx, (batch,), generator=g)] = vocab - 1
        self.register_buffer("tokens", tokens)

    def encode_text(self, tokens):
        x = self.token_embedding(tokens) + self.positional_embedding
        for b in self.transformer:
            x = b(x, src_mask=self.causal, is_causal=True)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection

    def loss(self, x, _):
        img = F.normalize(self.visual(x) @ self.visual_proj, dim=-1)
        txt = F.normalize(self.encode_text(self.tokens[: x.shape[0]]), dim=-1)
        logits = self.logit_scale.exp() * img @ txt.t()
        target = torch.arange(x.shape[0])
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2

    @torch.no_grad()
    def after_step(self):
        self.logit_scale.clamp_(max=math.log(100))


# name: (tessera bench line prefix, model, batch, views, lr, weight decay)
CASES = {
    "simclr": ("simclr step, resnet-narrow 1x28x28 batch 64", SimClr, 64, 2),
    "simclr-b256": ("simclr step, resnet-narrow 1x28x28 batch 256", SimClr, 256, 2),
    "moco-v2": ("moco-v2 step, resnet-narrow 1x28x28 batch 64", MocoV2, 64, 2),
    "rotation": ("rotation step, resnet-narrow 1x28x28 batch 64", Rotation, 64, 1),
    "mae": ("mae step, vit-tiny 1x28x28 batch 256", Mae, 256, 1),
    "simmim": ("simmim step, vit-tiny 1x28x28 batch 256", SimMim, 256, 1),
    "clip": ("clip step, vit-tiny + 2-layer text 1x28x28 batch 256", Clip, 256, 1),
}


def time_case(label, make, batch, views, steps):
    mixed = os.environ.get("DTYPE", "f32") == "bf16-mixed"
    if mixed:
        label += " bf16-mixed"
    torch.manual_seed(0)
    method = make().train()
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-6)
    xs = [torch.randn(batch, 1, 28, 28) for _ in range(views)]
    x1, x2 = xs[0], xs[-1]
    rss_before = peak_rss(True)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            loss = method.loss(x1, x2)
        loss.backward()
        opt.step()
        method.after_step()
        if i > 0:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    growth = max(peak_rss(False) - rss_before, 0)
    print(
        f"{label} [cpu]: {step:.4f} s (median of {steps}), {batch / step:.1f} images/s, "
        f"peak RSS growth {growth / 2**20:.1f} MiB",
        flush=True,
    )


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    steps = int(os.environ.get("STEPS", "3"))
    want = sys.argv[1:]
    for name, (label, make, batch, views) in CASES.items():
        if not want or name in want:
            time_case(label, make, batch, views, steps)


if __name__ == "__main__":
    main()
