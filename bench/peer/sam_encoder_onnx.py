#!/usr/bin/python3
"""Exports a SAM ViT-B image encoder (random weights) to ONNX for the ONNX Runtime peer
benchmark (bench/peer/ort_vs_nephroseg.sh). Not part of the tests.

The module is written here from the method description (shared/specs/sam_dinov2.md):
ViT-B, 1024 x 1024 input, 16 x 16 patches, 12 blocks of width 768 and 12 heads,
14 x 14 windows except the global blocks 2, 5, 8, 11, decomposed relative positions,
and the 256-channel neck. Timing does not depend on the weight values.

Usage: /usr/bin/python3 sam_encoder_onnx.py OUT.onnx
"""
import sys

import torch
import torch.nn.functional as F
from torch import nn

DIM, DEPTH, HEADS, WINDOW, GRID, OUT = 768, 12, 12, 14, 64, 256
GLOBAL = {2, 5, 8, 11}


def rel_table(size, table):
    # [2*size-1, hd] -> [size, size, hd]: entry (i, j) is table[i - j + size - 1]
    idx = torch.arange(size)[:, None] - torch.arange(size)[None, :] + (size - 1)
    return table[idx]


class Attention(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size
        hd = DIM // HEADS
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)
        self.rel_h = nn.Parameter(torch.randn(2 * size - 1, hd) * 0.02)
        self.rel_w = nn.Parameter(torch.randn(2 * size - 1, hd) * 0.02)
        self.scale = hd ** -0.5

    def forward(self, x):  # [B, S, S, C]
        b, s, _, c = x.shape
        n = s * s
        qkv = self.qkv(x).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * HEADS, n, c // HEADS).unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        rq = q.reshape(b * HEADS, s, s, -1)
        rh = torch.einsum("bhwc,hkc->bhwk", rq, rel_table(s, self.rel_h))
        rw = torch.einsum("bhwc,wkc->bhwk", rq, rel_table(s, self.rel_w))
        logits = (logits.view(-1, s, s, s, s) + rh[:, :, :, :, None] + rw[:, :, :, None, :])
        attn = logits.view(-1, n, n).softmax(-1)
        out = (attn @ v).view(b, HEADS, s, s, -1).permute(0, 2, 3, 1, 4).reshape(b, s, s, c)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, windowed):
        super().__init__()
        self.windowed = windowed
        self.norm1 = nn.LayerNorm(DIM, eps=1e-6)
        self.attn = Attention(WINDOW if windowed else GRID)
        self.norm2 = nn.LayerNorm(DIM, eps=1e-6)
        self.fc1 = nn.Linear(DIM, 4 * DIM)
        self.fc2 = nn.Linear(4 * DIM, DIM)

    def forward(self, x):  # [1, 64, 64, C]
        y = self.norm1(x)
        if self.windowed:
            pad = (WINDOW - GRID % WINDOW) % WINDOW
            y = F.pad(y, (0, 0, 0, pad, 0, pad))
            g = (GRID + pad) // WINDOW
            y = y.view(1, g, WINDOW, g, WINDOW, DIM).permute(0, 1, 3, 2, 4, 5)
            y = self.attn(y.reshape(-1, WINDOW, WINDOW, DIM))
            y = y.view(1, g, g, WINDOW, WINDOW, DIM).permute(0, 1, 3, 2, 4, 5)
            y = y.reshape(1, g * WINDOW, g * WINDOW, DIM)[:, :GRID, :GRID]
        else:
            y = self.attn(y)
        x = x + y
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class LayerNorm2d(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + 1e-6)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, DIM, 16, stride=16)
        self.pos = nn.Parameter(torch.randn(1, GRID, GRID, DIM) * 0.02)
        self.blocks = nn.ModuleList(Block(i not in GLOBAL) for i in range(DEPTH))
        self.neck = nn.Sequential(nn.Conv2d(DIM, OUT, 1, bias=False), LayerNorm2d(OUT),
                                  nn.Conv2d(OUT, OUT, 3, padding=1, bias=False), LayerNorm2d(OUT))

    def forward(self, x):
        h = self.patch(x).permute(0, 2, 3, 1) + self.pos
        for blk in self.blocks:
            h = blk(h)
        return self.neck(h.permute(0, 3, 1, 2))


def main():
    torch.manual_seed(0)
    model = Encoder().eval()
    x = torch.randn(1, 3, 1024, 1024)
    with torch.no_grad():
        torch.onnx.export(model, x, sys.argv[1], opset_version=17, input_names=["image"],
                          output_names=["embedding"])
    print(f"exported SAM ViT-B encoder ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M "
          f"parameters) to {sys.argv[1]}")


if __name__ == "__main__":
    main()
