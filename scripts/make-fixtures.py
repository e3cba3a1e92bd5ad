#!/usr/bin/env python3
"""PyTorch reference fixtures for tessera's `ssl::nn` (tests/nn_parity.rs).

Run in the project venv (scripts/compare-torch creates it with torch, torchvision, timm and
safetensors):

    scripts/compare-torch matmul_256                         # once: creates .venv
    .venv/bin/python scripts/make-fixtures.py                 # writes tests/fixtures/nn/
    .venv/bin/python scripts/make-fixtures.py --check-export DIR   # the other direction

Everything is seeded and built from torchvision's and timm's own classes with random
weights (no download). To keep the committed files small the models keep their topology
and parameter names but use narrow widths (see tests/fixtures/nn/README.md).

`--check-export DIR` reads the checkpoints tessera wrote with `save_model` (the ignored test
`nn_parity::export_for_torch` writes them, with its outputs on fixed inputs), loads them with
`safetensors.torch.load_file` + `load_state_dict(strict=True)` into the same torchvision/timm
models and checks that PyTorch's outputs match tessera's.
"""

import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "nn")


class NarrowResNet(torchvision.models.resnet.ResNet):
    """torchvision's ResNet (its BasicBlock/Bottleneck code and names) at `width/64` of the
    standard widths, with an optional CIFAR stem and any input channel count."""

    def __init__(self, block, layers, width, in_ch=3, num_classes=10, cifar=False):
        self._width = width
        super().__init__(block, layers, num_classes=num_classes)
        if cifar:
            self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_ch, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # the first stage starts from the narrow stem
            self.inplanes = self._width
        return super()._make_layer(block, planes * self._width // 64, blocks, stride, dilate)


def randomize_bn(model, gen):
    """Non-trivial BN parameters and running statistics, so eval mode tests something."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(7)


def prefixed(prefix, sd):
    return {f"{prefix}{k}": v.detach().contiguous().clone() for k, v in sd.items()}


def resnet_fixture(name, model, x, gen):
    randomize_bn(model, gen)
    model.eval()
    tensors = prefixed("model.", model.state_dict())
    tensors["io.input"] = x
    with torch.no_grad():
        tensors["io.eval_output"] = model(x)
        model.train()
        tensors["io.train_output"] = model(x)
    # Running statistics after that one training-mode batch.
    for k, v in model.state_dict().items():
        if "running" in k or "num_batches" in k:
            tensors[f"after_train.{k}"] = v.clone()
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"))


def vit_model():
    return VisionTransformer(img_size=32, patch_size=8, in_chans=3, num_classes=10, embed_dim=64, depth=2, num_heads=2, mlp_ratio=4.0, qkv_bias=True)


def vit_fixture(gen):
    torch.manual_seed(1)
    model = vit_model().eval()
    with torch.no_grad():  # a visible class token and non-trivial norms
        model.cls_token.normal_(0, 0.5, generator=gen)
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    x = torch.randn(2, 3, 32, 32, generator=gen)
    tensors = prefixed("model.", model.state_dict())
    tensors["io.input"] = x
    with torch.no_grad():
        tensors["io.output"] = model(x)
        tokens = model.forward_features(x)
        tensors["io.tokens"] = tokens
        # MAE-style: the encoder sees only some patches (per-sample indices).
        keep = torch.stack([torch.randperm(16, generator=gen)[:5] for _ in range(2)])
        t = model.patch_embed(x) + model.pos_embed[:, 1:, :]
        t = torch.gather(t, 1, keep.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
        cls = (model.cls_token + model.pos_embed[:, :1, :]).expand(2, -1, -1)
        h = torch.cat([cls, t], dim=1)
        for blk in model.blocks:
            h = blk(h)
        tensors["io.keep"] = keep
        tensors["io.kept_tokens"] = model.norm(h)
    save_file(tensors, os.path.join(OUT, "vit_narrow.safetensors"))


def attention_fixture(gen):
    """A causal and a plain multi-head self-attention (timm's qkv layout) on [2, 5, 8]."""
    dim, heads = 8, 2
    qkv = nn.Linear(dim, 3 * dim)
    proj = nn.Linear(dim, dim)
    x = torch.randn(2, 5, dim, generator=gen)
    out = {"qkv.weight": qkv.weight, "qkv.bias": qkv.bias, "proj.weight": proj.weight, "proj.bias": proj.bias, "input": x}
    with torch.no_grad():
        q, k, v = qkv(x).reshape(2, 5, 3, heads, dim // heads).permute(2, 0, 3, 1, 4).unbind(0)
        for causal in (False, True):
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            out[f"output_causal{int(causal)}"] = proj(o.transpose(1, 2).reshape(2, 5, dim))
    save_file({k: v.detach().contiguous() for k, v in out.items()}, os.path.join(OUT, "attention.safetensors"))


def batchnorm_fixture(gen):
    """BatchNorm2d and BatchNorm1d: two training batches (outputs, running statistics with
    the unbiased variance, num_batches_tracked), then eval mode."""
    out = {}
    for tag, bn, shape in (("bn2d", nn.BatchNorm2d(3), (4, 3, 5, 5)), ("bn1d", nn.BatchNorm1d(3), (6, 3))):
        with torch.no_grad():
            bn.weight.copy_(torch.rand(3, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(3, generator=gen))
        out[f"{tag}.weight"] = bn.weight.detach().clone()
        out[f"{tag}.bias"] = bn.bias.detach().clone()
        bn.train()
        for i in range(2):
            x = torch.randn(*shape, generator=gen) * 2 + 1
            out[f"{tag}.x{i}"] = x
            out[f"{tag}.y{i}"] = bn(x).detach()
        out[f"{tag}.running_mean"] = bn.running_mean.clone()
        out[f"{tag}.running_var"] = bn.running_var.clone()
        out[f"{tag}.num_batches_tracked"] = bn.num_batches_tracked.clone()
        bn.eval()
        x = torch.randn(*shape, generator=gen)
        out[f"{tag}.x_eval"] = x
        out[f"{tag}.y_eval"] = bn(x).detach()
    save_file(out, os.path.join(OUT, "batchnorm.safetensors"))


def lars_step(params, grads, bufs, lr, wd, momentum=0.9, eta=0.001):
    """SimCLR's LARS (classic momentum, no Nesterov) in plain torch ops; 1-D parameters are
    excluded from weight decay and adaptation."""
    for p, g, buf in zip(params, grads, bufs):
        excluded = p.dim() <= 1
        if not excluded:
            g = g + wd * p
        trust = torch.tensor(1.0)
        if not excluded:
            w_norm, g_norm = torch.norm(p), torch.norm(g)
            trust = torch.where(w_norm > 0, torch.where(g_norm > 0, eta * w_norm / g_norm, torch.tensor(1.0)), torch.tensor(1.0))
        scaled = lr * trust
        buf.mul_(momentum).add_(scaled * g)
        p.sub_(buf)


def optimizer_fixture(gen):
    """Five steps of SGD (momentum, Nesterov, weight decay), AdamW and LARS on a weight
    [4, 3] and a bias [4] with given gradients and a per-step learning rate."""
    steps = 5
    w0, b0 = torch.randn(4, 3, generator=gen), torch.randn(4, generator=gen)
    grads = [(torch.randn(4, 3, generator=gen), torch.randn(4, generator=gen)) for _ in range(steps)]
    factors = [0.5, 1.0, 0.9, 0.6, 0.3]
    out = {"w0": w0, "b0": b0, "lr_factors": torch.tensor(factors, dtype=torch.float64)}
    for i, (gw, gb) in enumerate(grads):
        out[f"grad{i}.w"], out[f"grad{i}.b"] = gw, gb
    configs = {
        "sgd": (0.1, 0.01, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
        "adamw": (0.01, 0.1, lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)),
    }
    for name, (lr, _, make) in configs.items():
        w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
        opt = make([w, b])
        for i, (gw, gb) in enumerate(grads):
            for group in opt.param_groups:
                group["lr"] = lr * factors[i]
            w.grad, b.grad = gw.clone(), gb.clone()
            opt.step()
            out[f"{name}.step{i}.w"], out[f"{name}.step{i}.b"] = w.detach().clone(), b.detach().clone()
    w, b = w0.clone(), b0.clone()
    bufs = [torch.zeros_like(w), torch.zeros_like(b)]
    for i, (gw, gb) in enumerate(grads):
        lars_step([w, b], [gw, gb], bufs, lr=0.5 * factors[i], wd=0.001)
        out[f"lars.step{i}.w"], out[f"lars.step{i}.b"] = w.clone(), b.clone()
    save_file(out, os.path.join(OUT, "optim.safetensors"))


def sincos_fixture():
    """MAE's 2-D sin-cos position table (its numpy code, transcribed) for D = 16, grid 3."""
    import numpy as np

    def one_d(d, pos):
        omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    d, g = 16, 3
    grid = np.meshgrid(np.arange(g, dtype=np.float32), np.arange(g, dtype=np.float32))
    grid = np.stack(grid, axis=0).reshape(2, 1, g, g)
    table = np.concatenate([one_d(d // 2, grid[0]), one_d(d // 2, grid[1])], axis=1)
    save_file({"table": torch.from_numpy(table)}, os.path.join(OUT, "sincos.safetensors"))


def make_all():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    bb, bn = torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck
    torch.manual_seed(0)
    resnet_fixture("resnet18_narrow", NarrowResNet(bb, [2, 2, 2, 2], width=8), torch.randn(2, 3, 32, 32, generator=gen), gen)
    torch.manual_seed(0)
    resnet_fixture("resnet50_narrow_cifar", NarrowResNet(bn, [3, 4, 6, 3], width=4, in_ch=1, cifar=True), torch.randn(2, 1, 16, 16, generator=gen), gen)
    vit_fixture(gen)
    attention_fixture(gen)
    batchnorm_fixture(gen)
    optimizer_fixture(gen)
    sincos_fixture()
    for f in sorted(os.listdir(OUT)):
        print(f"{f}: {os.path.getsize(os.path.join(OUT, f)) / 1024:.0f} KiB")


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def check_export(d):
    """Loads tessera's checkpoints strictly into the torch models and compares outputs."""
    ok = True
    bb = torchvision.models.resnet.BasicBlock
    cases = [
        ("resnet18_narrow", NarrowResNet(bb, [2, 2, 2, 2], width=8)),
        ("vit_narrow", vit_model()),
    ]
    for name, model in cases:
        sd = load_file(os.path.join(d, f"{name}.model.safetensors"))
        model.load_state_dict(sd, strict=True)
        io = load_file(os.path.join(d, f"{name}.io.safetensors"))
        model.eval()
        with torch.no_grad():
            y = model(io["input"])
        err = rel_err(y, io["output"])
        print(f"{name}: strict load ok, {len(sd)} tensors, eval output max rel err {err:.2e}")
        ok &= err < 1e-4
    return ok


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check-export", metavar="DIR", help="check tessera-written checkpoints in DIR instead")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.check_export:
        sys.exit(0 if check_export(args.check_export) else 1)
    make_all()
