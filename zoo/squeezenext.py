"""The parametric SqueezeNext builder (Gholami et al., 2018).

:class:`SqueezeNextConfig` names every degree of freedom the paper varies (width
multiplier, depth vector, conv1 kernel, groups, first-block style, input size) plus the
zoo's reconstruction of the Iterative Deep Aggregation variants; :func:`define` turns a
config into layers on a :class:`~.builder.GraphBuilder`.

Structure (the spec's rules, ``docs/spec/squeezenext.md``)::

    conv1    KxK (7 or 5), stride 2, no padding, 3 -> 64, BN, ReLU
    pool1    max 3x3, stride 2, ceil mode
    stage s  depth[s] blocks with C = width * (32, 64, 128, 256)[s] output channels;
             the first block of stages 2-4 has stride 2
    bottleneck  1x1, C4 -> 128, BN, ReLU    (Table 4's conv111)
    pool5    global average pool
    fc1000   128 -> 1000, no bias           (logits: no Softmax)

Every convolution has no bias and is followed by BatchNormalization and ReLU.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..diagnostics import UsageError
from .builder import RESIDUAL_BRANCH_SCALE, GraphBuilder, Value

BASE_CHANNELS = (32, 64, 128, 256)
CONV1_CHANNELS = 64
BOTTLENECK_CHANNELS = 128
NUM_CLASSES = 1000
FIRST_BLOCK_STYLES = ("baseline", "v5")


@dataclass(frozen=True)
class SqueezeNextConfig:
    """One SqueezeNext network.

    * ``width``: multiplies the block channels 32/64/128/256 only (conv1 stays 64 outputs,
      the bottleneck stays 128 outputs).
    * ``depth``: blocks per stage, four entries.
    * ``conv1_kernel``: 7 (227 -> 111) or 5 (227 -> 112), stride 2, no padding.
    * ``groups``: group count of squeeze1 and both separable convolutions (G-SqNxt: 2).
    * ``first_block``: ``"baseline"`` (the projection and squeeze1 both read the block input
      and both carry the stride) or ``"v5"`` (the projection comes first and the body reads
      its output, stride 1).
    * ``input_size``: square input side (227 in the paper).
    * ``ida``: add the zoo's reconstruction of Iterative Deep Aggregation over the stages
      (see :func:`_ida`).
    """

    width: float = 1.0
    depth: tuple[int, int, int, int] = (6, 6, 8, 1)
    conv1_kernel: int = 7
    groups: int = 1
    first_block: str = "baseline"
    input_size: int = 227
    ida: bool = False

    @property
    def channels(self) -> tuple[int, ...]:
        """Block output channels per stage: ``round(width * (32, 64, 128, 256))``."""
        return tuple(int(round(self.width * c)) for c in BASE_CHANNELS)

    def validate(self) -> None:
        """Raise :class:`UsageError` unless the config describes a buildable network."""
        if len(self.depth) != 4 or any(int(d) != d or d < 1 for d in self.depth):
            raise UsageError(f"depth must be four positive block counts, got {self.depth}")
        if self.conv1_kernel not in (5, 7):
            raise UsageError(f"conv1_kernel must be 5 or 7, got {self.conv1_kernel}")
        if self.first_block not in FIRST_BLOCK_STYLES:
            raise UsageError(f"first_block must be one of {FIRST_BLOCK_STYLES}, got '{self.first_block}'")
        if self.groups < 1:
            raise UsageError(f"groups must be >= 1, got {self.groups}")
        for c in self.channels:
            if c % 4 or (c // 4) % self.groups or (c // 2) % self.groups:
                raise UsageError(f"width {self.width} gives {c} channels: need a multiple of 4 "
                                 f"whose quarter is divisible by groups={self.groups}")
        if CONV1_CHANNELS % self.groups:
            raise UsageError(f"groups={self.groups} does not divide conv1's {CONV1_CHANNELS} channels")
        if self.input_size < 32 + self.conv1_kernel:
            raise UsageError(f"input_size {self.input_size} is too small for four stages")


def separable_kernels(block_index: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(kh, kw) of sep1 and sep2 of the ``block_index``-th block of the network (1-based).

    The order alternates over the whole network: odd blocks run 3x1 (kernel height 3) then
    1x3, even blocks 1x3 then 3x1.
    """
    tall, wide = (3, 1), (1, 3)
    return (tall, wide) if block_index % 2 == 1 else (wide, tall)


def separable_pads(kernel: tuple[int, int]) -> tuple[int, int, int, int]:
    """Padding 1 on the long side of a 3x1 / 1x3 kernel only (ONNX order t, l, b, r)."""
    kh, kw = kernel
    return (kh // 2, kw // 2, kh // 2, kw // 2)


def block(b: GraphBuilder, x: Value, prefix: str, cout: int, stride: int, *, first: bool,
          style: str, groups: int, block_index: int) -> Value:
    """One SqueezeNext block; returns ``ReLU(skip + expand)``.

    squeeze1 (1x1, stride s, -> C/2, grouped), squeeze2 (1x1, -> C/4), sep1 and sep2
    (3x1/1x3 in the alternating order, -> C/2, grouped), expand (1x1, -> C).  The first
    block of a stage always has a 1x1 projection ``proj`` (stride s, -> C) on its skip path,
    even when the channels and stride would allow an identity (2.0-SqNxt-23's first
    projection is 64 -> 64); other blocks add their input.
    """
    if first and style == "v5":
        skip = b.conv(x, f"{prefix}/proj", cout, 1, stride)
        body, body_stride = skip, 1
    elif first:
        skip = b.conv(x, f"{prefix}/proj", cout, 1, stride)
        body, body_stride = x, stride
    else:
        skip, body, body_stride = x, x, 1
    k1, k2 = separable_kernels(block_index)
    h = b.conv(body, f"{prefix}/squeeze1", cout // 2, 1, body_stride, group=groups)
    h = b.conv(h, f"{prefix}/squeeze2", cout // 4, 1)
    h = b.conv(h, f"{prefix}/sep1", cout // 2, k1, pads=separable_pads(k1), group=groups)
    h = b.conv(h, f"{prefix}/sep2", cout // 2, k2, pads=separable_pads(k2), group=groups)
    h = b.conv(h, f"{prefix}/expand", cout, 1, bn_scale=RESIDUAL_BRANCH_SCALE)
    return b.add(skip, h, f"{prefix}/add")


def _ida(b: GraphBuilder, stage_outputs: list[Value]) -> Value:
    """The zoo's reconstruction of Iterative Deep Aggregation over the four stages.

    Following Yu et al. (Deep Layer Aggregation), aggregation runs from the shallowest stage
    to the deepest, each node merging the running aggregate with the next stage's output::

        agg_1 = stage 1 output
        agg_s = N_s(P_s(agg_{s-1}), stage s output)                     s = 2, 3, 4
        P_s(a)    = ReLU(BN(Conv1x1 stride 2 (a) -> C_s))     (like DLA's ``project``)
        N_s(a, x) = ReLU(BN(Conv1x1(Concat(a, x)) -> C_s))    (DLA's aggregation node)

    ``P_s`` brings the aggregate to stage s's resolution and width exactly as the stage's
    own first-block projection does.  The stages are unchanged; the bottleneck reads
    ``agg_4`` instead of the stage-4 output.  At width 1.0 this adds 0.217M parameters.
    """
    agg = stage_outputs[0]
    for s, x in enumerate(stage_outputs[1:], start=2):
        down = b.conv(agg, f"ida/agg{s}/proj", x.shape[0], 1, 2)
        if down.shape != x.shape:
            raise UsageError(f"IDA: aggregate {down.shape} does not match stage {s} {x.shape}")
        cat = b.concat([down, x], f"ida/agg{s}/concat")
        agg = b.conv(cat, f"ida/agg{s}/node", x.shape[0], 1)
    return agg


def define(cfg: SqueezeNextConfig):
    """Return a network definition ``define(b) -> logits`` for :func:`~.builder.run_definition`."""
    cfg.validate()

    def build(b: GraphBuilder) -> Value:
        x = b.input()
        x = b.conv(x, "conv1", CONV1_CHANNELS, cfg.conv1_kernel, 2, pads=(0, 0, 0, 0))
        x = b.max_pool(x, "pool1", 3, 2, ceil_mode=True)
        index = 0
        stage_outputs = []
        for s, (n, cout) in enumerate(zip(cfg.depth, cfg.channels), start=1):
            for i in range(1, n + 1):
                index += 1
                stride = 2 if (i == 1 and s > 1) else 1
                x = block(b, x, f"stage{s}/block{i}", cout, stride, first=(i == 1),
                          style=cfg.first_block, groups=cfg.groups, block_index=index)
            stage_outputs.append(x)
        if cfg.ida:
            x = _ida(b, stage_outputs)
        x = b.conv(x, "bottleneck", BOTTLENECK_CHANNELS, 1)
        x = b.global_avg_pool(x, "pool5")
        x = b.flatten(x, "flatten")
        return b.fc(x, "fc1000", NUM_CLASSES, bias=False)

    return build
