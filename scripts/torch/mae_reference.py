"""MAE pretraining in PyTorch on the embedded Fashion-MNIST subset, evaluated as tessera
evaluates (kNN k=20 on L2-normalized features, mean-pooled and class token), to place
tessera's MAE preset against the reference recipe on the same data and budget.

    THREADS=2 STEPS=78 .venv/bin/python scripts/torch/mae_reference.py [--lr 1.5e-3] [--init mae|timm]

The model is the reference code's (facebookresearch/mae `models_mae.py`) at tessera's preset
sizes: ViT-Tiny/4 on 1×28×28, fixed 2-D sin-cos positions, decoder 128 wide × 2 blocks ×
4 heads, mask ratio 0.75, norm-pix loss; AdamW β (0.9, 0.95), wd 0.05 on matrices, warmup
then cosine; random resized crop (0.2, 1) and flip.
"""
import argparse, gzip, math, os, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from models import TinyMae

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "ssl", "data", "fashion-mnist-subset")


def idx(name):
    with gzip.open(os.path.join(ROOT, name)) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def sincos(dim, grid):
    q = dim // 4
    omega = 1.0 / 10000 ** (np.arange(q) / q)
    rows = []
    for i in range(grid):
        for j in range(grid):
            row = []
            for pos in (j, i):
                row += list(np.sin(pos * omega)) + list(np.cos(pos * omega))
            rows.append(row)
    return torch.tensor(np.concatenate([np.zeros((1, dim)), np.array(rows)]), dtype=torch.float32)[None]


class Mae(TinyMae):
    """models.py's TinyMae (the same layers, masking and loss) with the reference code's
    fixed sin-cos tables and its initialization (`init="mae"`: Xavier matrices, class token
    std 0.02) or timm's (`init="timm"`)."""

    def __init__(self, init):
        super().__init__()
        dim, ddim, grid = self.norm.normalized_shape[0], self.dec_embed.out_features, int(self.L ** 0.5)
        self.pos.copy_(sincos(dim, grid))
        self.dec_pos.copy_(sincos(ddim, grid))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if init == "mae":
                    nn.init.xavier_uniform_(m.weight)
                else:
                    nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        if init == "mae":
            w = self.patch_embed.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls, std=0.02 if init == "mae" else 1e-6)
        nn.init.normal_(self.mask_token, std=0.02)

    def loss(self, imgs):
        return self(imgs)

    @torch.no_grad()
    def features(self, x):
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos[:, 1:]
        h = torch.cat([(self.cls + self.pos[:, :1]).expand(h.shape[0], -1, -1), h], 1)
        for b in self.blocks:
            h = b(h)
        return {"mean": self.norm(h[:, 1:].mean(1)), "mean-of-normed": self.norm(h)[:, 1:].mean(1), "cls": self.norm(h)[:, 0]}


def crop_flip(x, scale=(0.2, 1.0)):
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        for _ in range(10):
            area = h * w * np.random.uniform(*scale)
            ratio = math.exp(np.random.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                break
        else:
            cw, ch = w, h
        t, l = np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1)
        c = F.interpolate(x[i:i + 1, :, t:t + ch, l:l + cw], size=(h, w), mode="bilinear", align_corners=False)
        out[i] = c.flip(-1)[0] if np.random.rand() < 0.5 else c[0]
    return out


def knn(train, ytr, test, yte, k=20, t=0.07):
    train, test = F.normalize(train, dim=1), F.normalize(test, dim=1)
    sim = test @ train.T
    s, i = sim.topk(k, dim=1)
    votes = F.one_hot(ytr[i], 10).float()
    plain = votes.sum(1).argmax(1)
    weighted = (votes * (s / t).exp()[..., None]).sum(1).argmax(1)
    return (plain == yte).float().mean().item(), (weighted == yte).float().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--init", default="mae")
    ap.add_argument("--steps", type=int, default=int(os.environ.get("STEPS", "78")))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--beta2", type=float, default=0.95)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.manual_seed(0), np.random.seed(0)
    xtr = torch.tensor(idx("train-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    xte = torch.tensor(idx("t10k-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    ytr = torch.tensor(idx("train-labels-idx1-ubyte.gz")).long()
    yte = torch.tensor(idx("t10k-labels-idx1-ubyte.gz")).long()
    mean, std = xtr.mean().item(), xtr.std().item()
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    model = Mae(a.init)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, a.beta2))
    per_epoch = len(xtr) // 256
    total = per_epoch * a.epochs
    warm = a.warmup * per_epoch

    def evaluate(tag):
        model.eval()
        ftr = [model.features(xtr[i:i + 500]) for i in range(0, len(xtr), 500)]
        fte = [model.features(xte[i:i + 500]) for i in range(0, len(xte), 500)]
        for key in ("mean", "mean-of-normed", "cls"):
            a_, b_ = torch.cat([f[key] for f in ftr]), torch.cat([f[key] for f in fte])
            print(f"{tag} {key}: kNN {knn(a_, ytr, b_, yte)[0]:.4f} / weighted {knn(a_, ytr, b_, yte)[1]:.4f}", flush=True)
        model.train()

    evaluate("random")
    start, step = time.time(), 0
    for epoch in range(a.epochs):
        perm = torch.randperm(len(xtr))
        for b in range(per_epoch):
            if step >= a.steps:
                break
            lr = a.lr * (step + 1) / warm if step < warm else a.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = model.loss(crop_flip(xtr[perm[b * 256:(b + 1) * 256]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 13 == 0:
                print(f"step {step} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
    print(f"{step} steps in {time.time() - start:.0f} s")
    evaluate("trained")


if __name__ == "__main__":
    main()
