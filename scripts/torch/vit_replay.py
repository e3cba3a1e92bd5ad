"""The PyTorch side of `cargo run --release --example vit_replay`: loads tessera's initial
ViT-Tiny weights into timm (strict), trains the same 30 batches with the same AdamW groups
(weight decay 0.05 on matrices only) and prints each step's loss, to compare line by line.

    .venv/bin/python scripts/torch/vit_replay.py [patch 7] [lr 1e-3]
"""
import os, sys
import torch
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
patch = int(sys.argv[1]) if len(sys.argv) > 1 else 7
lr = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-3
root = os.path.join(os.path.dirname(__file__), "..", "..", "target", "vit-replay")
m = VisionTransformer(img_size=28, patch_size=patch, in_chans=1, num_classes=10, embed_dim=192, depth=12, num_heads=3, qkv_bias=True)
m.load_state_dict(load_file(os.path.join(root, "init.safetensors")), strict=True)
batches = load_file(os.path.join(root, "batches.safetensors"))
groups = [
    {"params": [p for p in m.parameters() if p.ndim >= 2], "weight_decay": 0.05},
    {"params": [p for p in m.parameters() if p.ndim < 2], "weight_decay": 0.0},
]
opt = torch.optim.AdamW(groups, lr=lr)
m.train()
for step in range(len(batches) // 2):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(m(batches[f"x{step}"]), batches[f"y{step}"])
    loss.backward()
    opt.step()
    print(f"step {step} loss {loss.item():.4f}")
