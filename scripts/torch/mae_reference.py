"""MAE pretraining in PyTorch on the embedded Fashion-MNIST subset, evaluated as tessera
evaluates (kNN k=20 on L2-normalized features, mean-pooled and class token), to place
tessera's MAE preset against the reference recipe on the same data and budget.

    THREADS=2 STEPS=78 .venv/bin/python scripts/torch/mae_reference.py [--lr 1.5e-3] [--init mae|timm]
        [--batch 256] [--epochs 2] [--mask-ratio 0.75] [--decoder-depth 2] [--raw-pixels]

tessera's Fashion-MNIST preset is `--lr 1e-3 --batch 128 --epochs 5 --steps 390 --raw-pixels`.

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

    def __init__(self, init, **sizes):
        super().__init__(**sizes)
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


def linear_probe(train, ytr, test, yte, epochs=30, lr=0.01, batch=256, wd=1e-4):
    """tessera's probe: standardized features, a linear layer, AdamW with cosine decay."""
    mean, std = train.mean(0), train.var(0, unbiased=False).add(1e-6).sqrt()
    train, test = (train - mean) / std, (test - mean) / std
    head = nn.Linear(train.shape[1], 10)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=wd)
    steps = epochs * math.ceil(len(train) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    for _ in range(epochs):
        perm = torch.randperm(len(train))
        for b in range(0, len(train), batch):
            i = perm[b:b + batch]
            loss = F.cross_entropy(head(train[i]), ytr[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return (head(test).argmax(1) == yte).float().mean().item()


def load_embedded():
    """The embedded subset as tessera normalizes it: [N, 1, 28, 28] standardized by the
    training set's pixel mean and std, with labels."""
    xtr = torch.tensor(idx("train-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    xte = torch.tensor(idx("t10k-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    ytr = torch.tensor(idx("train-labels-idx1-ubyte.gz")).long()
    yte = torch.tensor(idx("t10k-labels-idx1-ubyte.gz")).long()
    mean, std = xtr.mean().item(), xtr.std().item()
    return (xtr - mean) / std, ytr, (xte - mean) / std, yte


def evaluate(model, tag, keys, data):
    """kNN and linear probe of `model.features(x)[key]` for each key, printed."""
    xtr, ytr, xte, yte = data
    model.eval()
    ftr = [model.features(xtr[i:i + 500]) for i in range(0, len(xtr), 500)]
    fte = [model.features(xte[i:i + 500]) for i in range(0, len(xte), 500)]
    for key in keys:
        a_, b_ = torch.cat([f[key] for f in ftr]), torch.cat([f[key] for f in fte])
        plain, weighted = knn(a_, ytr, b_, yte)
        print(f"{tag} {key}: kNN {plain:.4f} / weighted {weighted:.4f} / linear {linear_probe(a_, ytr, b_, yte):.4f}", flush=True)
    model.train()


def pretrain(model, opt, xtr, lr, batch, epochs, warmup, max_steps=None):
    """tessera's schedule: linear warm-up over `warmup` epochs, then cosine to 0; batches of
    cropped and flipped images; `model.loss(images)` per step."""
    per_epoch = len(xtr) // batch
    total, warm = per_epoch * epochs, warmup * per_epoch
    max_steps = total if max_steps is None else max_steps
    start, step = time.time(), 0
    for epoch in range(epochs):
        perm = torch.randperm(len(xtr))
        for b in range(per_epoch):
            if step >= max_steps:
                break
            rate = lr * (step + 1) / warm if step < warm else lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
            for g in opt.param_groups:
                g["lr"] = rate
            loss = model.loss(crop_flip(xtr[perm[b * batch:(b + 1) * batch]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 13 == 0:
                print(f"step {step} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
    print(f"{step} steps in {time.time() - start:.0f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--init", default="mae")
    ap.add_argument("--steps", type=int, default=int(os.environ.get("STEPS", "78")))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--mask-ratio", type=float, default=0.75)
    ap.add_argument("--decoder-depth", type=int, default=2)
    ap.add_argument("--raw-pixels", action="store_true", help="norm_pix_loss off: raw-pixel targets")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.manual_seed(0), np.random.seed(0)
    xtr, ytr, xte, yte = load_embedded()
    model = Mae(a.init, ratio=a.mask_ratio, ddepth=a.decoder_depth, norm_pix=not a.raw_pixels)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, a.beta2))

    data = (xtr, ytr, xte, yte)
    evaluate(model, "random", ("mean", "mean-of-normed", "cls"), data)
    pretrain(model, opt, xtr, a.lr, a.batch, a.epochs, a.warmup, a.steps)
    evaluate(model, "trained", ("mean", "mean-of-normed", "cls"), data)


if __name__ == "__main__":
    main()
