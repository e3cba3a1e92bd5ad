"""SimMIM pretraining in PyTorch on the embedded Fashion-MNIST subset at tessera's preset
recipe, evaluated as tessera evaluates (kNN k=20 on L2-normalized features and the
standardized linear probe; mean-pooled and class token), to tell whether the preset's result
is the method's at this budget or tessera's.

    THREADS=2 .venv/bin/python scripts/torch/simmim_reference.py [--lr 1e-4] [--init xavier|timm]
        [--epochs 1] [--batch 128] [--layer-scale 0.1]

The model is SimMIM's (microsoft/SimMIM) at tessera's sizes: ViT-Tiny/4 on 1x28x28 with a
learned absolute position table (std 0.02), masked patch embeddings replaced by a learned
mask token, mask ratio 0.6 on blocks of one patch (round(0.6 * 49) = 29 masked), a linear
head from each final-norm patch token to its 4x4 pixels, L1 over the masked pixels divided by
(their count + 1e-5) and the channel count. `--init xavier` is tessera's preset (MAE's
Xavier-uniform matrices, class token std 0.02), `timm` the reference's (std 0.02 matrices);
`--layer-scale` adds the reference ViT's per-channel residual scales (its INIT_VALUES, 0.1).
AdamW (0.9, 0.95), wd 0.05 on matrices, warm-up 0.2 epoch then cosine; crop (0.2, 1) and flip.
"""
import argparse, os
import numpy as np
import torch
import torch.nn as nn
from mae_reference import evaluate, load_embedded, pretrain
from timm.models.vision_transformer import Block


class SimMim(nn.Module):
    def __init__(self, init, layer_scale=None, img=28, patch=4, dim=192, depth=12, heads=3, ratio=0.6):
        super().__init__()
        self.p, self.L, self.masked = patch, (img // patch) ** 2, round(ratio * (img // patch) ** 2)
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, self.L + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, 4.0, qkv_bias=True, init_values=layer_scale) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, patch * patch)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if init == "xavier" and m is not self.head:
                    nn.init.xavier_uniform_(m.weight)
                else:
                    nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.weight.data
        if init == "xavier":
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        else:
            nn.init.trunc_normal_(w.view(w.shape[0], -1), std=0.02)
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.normal_(self.cls, std=0.02 if init == "xavier" else 1e-6)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def tokens(self, x, mask=None):
        h = self.patch_embed(x).flatten(2).transpose(1, 2)
        if mask is not None:
            w = mask[..., None].to(h.dtype)
            h = h * (1 - w) + self.mask_token * w
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], 1) + self.pos
        for b in self.blocks:
            h = b(h)
        return h

    def loss(self, imgs):
        n = imgs.shape[0]
        mask = torch.zeros(n, self.L)
        for i in range(n):
            mask[i, torch.randperm(self.L)[: self.masked]] = 1
        h = self.norm(self.tokens(imgs, mask))[:, 1:]
        g, p = int(self.L ** 0.5), self.p
        recon = self.head(h).reshape(n, g, g, p, p).permute(0, 1, 3, 2, 4).reshape(n, 1, g * p, g * p)
        pixel_mask = mask.reshape(n, g, g).repeat_interleave(p, 1).repeat_interleave(p, 2)[:, None]
        return ((imgs - recon).abs() * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / imgs.shape[1]

    @torch.no_grad()
    def features(self, x):
        h = self.tokens(x)
        return {"mean": self.norm(h[:, 1:].mean(1)), "cls": self.norm(h)[:, 0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--init", default="xavier")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--layer-scale", type=float, default=None)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.manual_seed(0), np.random.seed(0)
    xtr, ytr, xte, yte = load_embedded()
    model = SimMim(a.init, a.layer_scale)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95))
    data = (xtr, ytr, xte, yte)
    evaluate(model, "random", ("mean", "cls"), data)
    pretrain(model, opt, xtr, a.lr, a.batch, a.epochs, 0.2)
    evaluate(model, "trained", ("mean", "cls"), data)


if __name__ == "__main__":
    main()
