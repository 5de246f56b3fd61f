"""Reference layer lists for tests and benchmarks, independent of the ONNX pipeline.

* :func:`table4_layers` reads the paper's Table 4 (CSV with columns name, type, Wi, Hi,
  Ci, Kw, Kh, Wo, Ho, Co, S, Pw, Ph, Repeat, ...) into (Layer, repeat) pairs.  The table
  folds the alternating 1x3 / 3x1 order into one row per repeated layer and lists conv and
  fc layers only.
* :func:`squeezenext_layers` builds every layer of a SqueezeNext variant from the block
  rules of ``docs/spec/squeezenext.md`` (conv1, ceil-mode max pool, the blocks with
  their alternating separable pair and element-wise sums, the bottleneck conv, global
  average pool, fc): ``"1.0-SqNxt-23"`` (baseline first blocks) and ``"1.0-SqNxt-23v5"``
  (5x5 conv1, depth [2, 4, 14, 1], v5 first blocks).
"""
from __future__ import annotations

import csv
from pathlib import Path

from .layer import Layer


def table4_layers(path: str | Path) -> list[tuple[Layer, int]]:
    """(Layer, repeat) for every row of a Table-4 CSV."""
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            kind = "fc" if row["type"].strip().lower() == "fc" else "conv"
            ph, pw, s = int(row["Ph"]), int(row["Pw"]), int(row["S"])
            out.append((Layer(row["name"], kind, C=int(row["Ci"]), K=int(row["Co"]), H=int(row["Hi"]),
                              W=int(row["Wi"]), R=int(row["Kh"]), S=int(row["Kw"]), P=int(row["Ho"]),
                              Q=int(row["Wo"]), stride_h=s, stride_w=s, pad_top=ph, pad_bottom=ph,
                              pad_left=pw, pad_right=pw), int(row["Repeat"])))
    return out


def _conv(name, cin, cout, h, w, r=1, s=1, stride=1, pt=0, pl=0):
    p = (h + 2 * pt - r) // stride + 1
    q = (w + 2 * pl - s) // stride + 1
    return Layer(name, "conv", cin, cout, h, w, r, s, p, q, stride, stride, pt, pl, pt, pl)


def _ceil_pool(name, c, h, k=3, stride=2):
    """Caffe ceil-mode max pool: out = ceil((h - k) / stride) + 1, expressed with the
    bottom/right padding that makes (h + pad - k) // stride + 1 == out."""
    out = -(-(h - k) // stride) + 1
    extra = max(0, (out - 1) * stride + k - h)
    return Layer(name, "maxpool", c, c, h, h, k, k, out, out, stride, stride, 0, 0, extra, extra)


VARIANTS = {
    "1.0-SqNxt-23": dict(conv1=7, depth=(6, 6, 8, 1), v5=False),
    "1.0-SqNxt-23v5": dict(conv1=5, depth=(2, 4, 14, 1), v5=True),
}


def squeezenext_layers(variant: str = "1.0-SqNxt-23") -> list[Layer]:
    """Every layer of ``variant`` in execution order (see module doc)."""
    cfg = VARIANTS[variant]
    layers: list[Layer] = []
    k1 = cfg["conv1"]
    layers.append(_conv("conv1", 3, 64, 227, 227, k1, k1, 2))
    h = layers[-1].P
    layers.append(_ceil_pool("pool1", 64, h))
    h = layers[-1].P
    cin = 64
    b = 0
    for st, (ch, depth) in enumerate(zip((32, 64, 128, 256), cfg["depth"])):
        for i in range(depth):
            b += 1
            stride = 2 if (st > 0 and i == 0) else 1
            pre = f"s{st + 1}b{i + 1}"
            body_in, body_stride, hb = cin, stride, h
            if cin != ch or stride != 1:
                layers.append(_conv(f"{pre}_proj", cin, ch, h, h, stride=stride))
                if cfg["v5"]:
                    body_in, body_stride, hb = ch, 1, layers[-1].P
            layers.append(_conv(f"{pre}_sq1", body_in, ch // 2, hb, hb, stride=body_stride))
            h2 = layers[-1].P
            layers.append(_conv(f"{pre}_sq2", ch // 2, ch // 4, h2, h2))
            tall = (3, 1, 1, 0)   # 3x1: kernel height 3, padding on the long side
            wide = (1, 3, 0, 1)
            first, second = (tall, wide) if b % 2 == 1 else (wide, tall)
            r, s, pt, pl = first
            layers.append(_conv(f"{pre}_sep1", ch // 4, ch // 2, h2, h2, r, s, 1, pt, pl))
            r, s, pt, pl = second
            layers.append(_conv(f"{pre}_sep2", ch // 2, ch // 2, h2, h2, r, s, 1, pt, pl))
            layers.append(_conv(f"{pre}_exp", ch // 2, ch, h2, h2))
            layers.append(Layer(f"{pre}_add", "add", ch, ch, h2, h2, 1, 1, h2, h2, n_inputs=2))
            cin, h = ch, h2
    layers.append(_conv("conv111", cin, 128, h, h))
    layers.append(Layer("pool5", "gap", 128, 128, h, h, h, h, 1, 1))
    layers.append(Layer("fc1000", "fc", 128, 1000, 1, 1, 1, 1, 1, 1))
    return layers


def distinct(layers) -> list[Layer]:
    """The first layer of each distinct key, in order."""
    seen, out = set(), []
    for L in layers:
        if L.key() not in seen:
            seen.add(L.key())
            out.append(L)
    return out
