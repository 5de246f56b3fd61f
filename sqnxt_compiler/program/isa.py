"""The accelerator's instruction set: every record's fields, declared once.

A program is a table of layer descriptors (:class:`Layer`, one 512-bit record per layer:
what is fixed for all the tiles of a layer) and a stream of fixed-width 256-bit
instructions (:class:`Load`, :class:`Store`, :class:`Compute`, :class:`Sync`,
:class:`Finish`: what changes from tile to tile).  ``docs/isa.md`` is the reference.

Each record kind is one :class:`Record` declaration: its name, opcode, queue and a tuple of
:class:`Field` (name, width in bits, range or enumeration, meaning).  The dataclass of the
record, the range checks (:func:`verify_fields`), the binary encoder and decoder
(:mod:`.encoding`), the text printer and parser (:mod:`.asm`) and the tables of
``docs/isa.md`` (:func:`docs_table`) are all derived from that declaration; nothing else
states a field.

Fields are packed least-significant bit first, in declaration order, from bit 0 of the
record; the bits after the last field are reserved and must be zero.  Values in Python:
``int`` for numbers, ``str`` for enumerations (the name; its index is encoded), ``float``
for ``f32`` fields (an IEEE-754 binary32 value, NaN not allowed), ``str`` for the layer
name (kept in the program's string table).
"""
from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass
from typing import ClassVar

#: Instruction width and layer-descriptor width, in bits.
INSN_BITS = 256
LAYER_BITS = 512
#: Buffer word addresses are this wide (2^20 words = 2 MiB of 16-bit words).
BUF_ADDR_BITS = 20
#: DRAM word addresses are this wide (2^32 words = 8 GiB).
DRAM_ADDR_BITS = 32

QUEUES = ("load", "compute", "store")


@dataclass(frozen=True)
class Field:
    """One field of a record.

    ``kind``: ``"uint"`` (``lo``..``hi``, ``hi`` defaults to ``2**bits - 1``), ``"sint"``
    (two's complement, ``lo``..``hi``), ``"enum"`` (``values[i]`` is encoded as ``i``),
    ``"f32"`` (IEEE-754 binary32 bits, finite) or ``"name"`` (a string in the program's
    string table: two fields on the wire, a 32-bit byte offset and a 16-bit byte length,
    see :data:`NAME_BITS`)."""

    name: str
    bits: int
    doc: str
    lo: int = 0
    hi: int | None = None
    kind: str = "uint"
    values: tuple[str, ...] = ()

    @property
    def max(self) -> int:
        if self.hi is not None:
            return self.hi
        if self.kind == "sint":
            return (1 << (self.bits - 1)) - 1
        if self.kind == "enum":
            return len(self.values) - 1
        return (1 << self.bits) - 1

    @property
    def default(self):
        if self.kind == "enum":
            return self.values[0]
        if self.kind == "f32":
            return 0.0
        if self.kind == "name":
            return ""
        return max(self.lo, 0) if self.kind == "uint" else min(max(self.lo, 0), self.max)

    def range_text(self) -> str:
        """The range as the docs table writes it: ``0..65535``, ``1..3``, ``input, weight``
        (an enumeration's names in code order, from 0), ``f32``, ``string``."""
        if self.kind == "enum":
            return ", ".join(self.values)
        if self.kind == "f32":
            return "f32"
        if self.kind == "name":
            return "string"
        return f"{self.lo}..{self.max}"

    def check(self, value) -> str | None:
        """None if ``value`` is a legal value of this field, else the problem."""
        if self.kind == "enum":
            if value not in self.values:
                return f"field '{self.name}' = {value!r} is not one of {'|'.join(self.values)}"
            return None
        if self.kind == "f32":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return f"field '{self.name}' = {value!r} is not a finite number"
            try:
                back = struct.unpack("<f", struct.pack("<f", value))[0]
            except OverflowError:
                return f"field '{self.name}' = {value!r} is out of the binary32 range"
            if back != value:
                return f"field '{self.name}' = {value!r} is not exactly a binary32 value"
            return None
        if self.kind == "name":
            if not isinstance(value, str):
                return f"field '{self.name}' = {value!r} is not a string"
            if len(value.encode("utf-8", "surrogatepass")) >= 1 << NAME_LEN_BITS:
                return f"field '{self.name}' is longer than {(1 << NAME_LEN_BITS) - 1} bytes"
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return f"field '{self.name}' = {value!r} is not an integer"
        if not self.lo <= value <= self.max:
            return f"field '{self.name}' = {value} out of range [{self.lo}, {self.max}]"
        return None

    def to_raw(self, value) -> int:
        """The field's bits (an unsigned int of ``bits`` bits) for a legal ``value``."""
        if self.kind == "enum":
            return self.values.index(value)
        if self.kind == "f32":
            return struct.unpack("<I", struct.pack("<f", value))[0]
        if self.kind == "sint":
            return value & ((1 << self.bits) - 1)
        return value

    def from_raw(self, raw: int):
        """The value of the field's bits ``raw``; raises ValueError if they are no legal
        value (the message names the field)."""
        if self.kind == "enum":
            if raw >= len(self.values):
                raise ValueError(f"field '{self.name}' = {raw} is not a valid code (0..{len(self.values) - 1}: "
                                 f"{'|'.join(self.values)})")
            return self.values[raw]
        if self.kind == "f32":
            v = struct.unpack("<f", struct.pack("<I", raw))[0]
            if not math.isfinite(v):
                raise ValueError(f"field '{self.name}' = 0x{raw:08x} is not a finite binary32 value")
            return v
        if self.kind == "sint" and raw >= 1 << (self.bits - 1):
            raw -= 1 << self.bits
        problem = self.check(raw)
        if problem:
            raise ValueError(problem)
        return raw


#: A name field on the wire: byte offset into the string table, then byte length.
NAME_OFF_BITS = 32
NAME_LEN_BITS = 16
NAME_BITS = NAME_OFF_BITS + NAME_LEN_BITS


def field_bits(f: Field) -> int:
    return NAME_BITS if f.kind == "name" else f.bits


# ----------------------------------------------------------------------------- fields
def _flag(name: str, doc: str) -> Field:
    return Field(name, 1, doc)


def _u(name: str, bits: int, doc: str, lo: int = 0, hi: int | None = None) -> Field:
    return Field(name, bits, doc, lo, hi)


def _e(name: str, bits: int, values: tuple[str, ...], doc: str) -> Field:
    return Field(name, bits, doc, kind="enum", values=values)


OP_BITS = 4
TOKENS = (
    _flag("pop_prev", "wait for and take a token from the previous queue (load <- store, compute <- load, "
          "store <- compute)"),
    _flag("pop_next", "wait for and take a token from the next queue (load <- compute, compute <- store)"),
    _flag("push_prev", "when done, give a token to the previous queue (compute -> load, store -> compute)"),
    _flag("push_next", "when done, give a token to the next queue (load -> compute, compute -> store, "
          "store -> load)"),
)
#: The queues' neighbours: a ring load -> compute -> store -> load (docs/isa.md,
#: "Dependency tokens"); the store -> load direction carries tokens only that way.
NEXT_QUEUE = {"load": "compute", "compute": "store", "store": "load"}
PREV_QUEUE = {"load": "store", "compute": "load", "store": "compute"}
#: The token counters, "producer->consumer", in the order the simulators keep them.
TOKEN_COUNTERS = ("load->compute", "compute->load", "compute->store", "store->compute", "store->load")
LAYER_REF = _u("layer", 16, "index of the layer descriptor this instruction belongs to")

#: The buffer-side operand addresses of a COMPUTE.
_BUF = (1 << BUF_ADDR_BITS) - 1
_SPAN = (1 << 16) - 1

LOAD_KINDS = ("input", "weight", "psum", "residual", "bias")
STORE_KINDS = ("output", "psum")
LAYER_KINDS = ("conv", "fc", "maxpool", "avgpool", "gap", "add", "eltwise", "move")
DATAFLOWS = ("WS", "OS")
ACTS = ("none", "relu", "relu6", "leaky_relu", "hard_sigmoid", "hard_swish", "sigmoid", "tanh", "swish",
        "gelu", "gelu_tanh")
POST_ACTS = ("none", "relu", "relu6")
POOLS = ("none", "max", "avg")
PAD_VALUES = ("zero", "min")
#: Element functions of eltwise and move layers (``fn``); ``none`` for every other kind.
ELEMENT_FNS = ("none", "relu", "leaky_relu", "prelu", "clip", "batchnorm", "hard_sigmoid",
               "hard_swish", "sigmoid", "tanh", "add", "sub", "mul", "div", "softmax", "lrn",
               "resize_linear", "erf", "sqrt", "exp", "reciprocal", "neg", "abs", "pow",
               "layer_norm", "reduce", "concat", "transpose", "pad", "resize_nearest", "expand",
               "slice", "gather", "copy", "other", "gelu", "gelu_tanh")

_BOX = (
    _u("dram", DRAM_ADDR_BITS, "DRAM word address of the box's first element (element [0,0,0])"),
    _u("buf", BUF_ADDR_BITS, "buffer word address of the box's first word (bias: entry of the bias memory)"),
    _u("n0", 16, "box size along dim 0 (columns), elements", 1),
    _u("n1", 16, "box size along dim 1 (rows), elements", 1),
    _u("n2", 16, "box size along dim 2 (channels), elements", 1),
    _u("ds0", 8, "DRAM stride of dim 0, words (1 dense; the stride of a 1x1 strided conv skips columns)", 1),
    _u("ds1", 24, "DRAM stride of dim 1, words"),
    _u("ds2", 32, "DRAM stride of dim 2, words"),
)
_PADS = (
    _u("pt", 8, "pad rows inserted above the box"),
    _u("pb", 8, "pad rows inserted below the box"),
    _u("pl", 8, "pad columns inserted left of the box"),
    _u("pr", 8, "pad columns inserted right of the box"),
)


@dataclass(frozen=True)
class Record:
    """The declaration of one record kind (module doc)."""

    mnemonic: str
    opcode: int            # 0 for the layer descriptor (not an instruction)
    queue: str | None      # the queue an instruction goes to; None: SYNC (its ``q``), LAYER
    bits: int
    fields: tuple[Field, ...]
    doc: str

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        assert len(set(names)) == len(names), self.mnemonic
        used = (OP_BITS if self.opcode else 0) + sum(field_bits(f) for f in self.fields)
        assert used <= self.bits, (self.mnemonic, used)

    @property
    def used_bits(self) -> int:
        return (OP_BITS if self.opcode else 0) + sum(field_bits(f) for f in self.fields)

    def layout(self) -> list[tuple[Field, int]]:
        """(field, bit offset) of every field, in order."""
        out, at = [], OP_BITS if self.opcode else 0
        for f in self.fields:
            out.append((f, at))
            at += field_bits(f)
        return out


LOAD = Record("LOAD", 1, "load", INSN_BITS, TOKENS + (
    LAYER_REF,
    _e("kind", 3, LOAD_KINDS, "what the box is: an input tile, a weight (or parameter-vector) tile, "
       "a partial-sum reload, a residual tile, the layer's bias vector"),
    _u("ew", 2, "words per element (1; a partial sum: the accumulator's words, 2)", 1, 3),
    _e("padv", 1, PAD_VALUES, "value of inserted padding: zero, or min (the most negative value, "
       "-32768 / -inf: max pooling)"),
) + _BOX + _PADS, "DRAM -> buffer: a 3-D strided box, padding inserted while loading")

STORE = Record("STORE", 2, "store", INSN_BITS, TOKENS + (
    LAYER_REF,
    _e("kind", 1, STORE_KINDS, "what the box is: a finished output tile, a partial-sum spill"),
    _u("ew", 2, "words per element (1; a partial sum: 2)", 1, 3),
) + _BOX, "buffer -> DRAM: a 3-D strided box")

COMPUTE = Record("COMPUTE", 3, "compute", INSN_BITS, TOKENS + (
    LAYER_REF,
    _flag("acc", "1: add into the accumulators at acc; 0: overwrite them (first input-channel tile)"),
    _flag("fin", "1: last input-channel tile: apply the epilogue and write the output tile at out"),
    _flag("padded", "1: the input tile in the buffer holds its padding (inserted by LOAD); "
          "0: padding is synthesized by the array's input path"),
    _u("oy", 16, "first output row of the tile (pooled row with a fused pool)"),
    _u("ox", 16, "first output column of the tile"),
    _u("oh", 16, "output rows of the tile", 1),
    _u("ow", 16, "output columns of the tile", 1),
    _u("k0", 16, "first output channel of the tile (layer-wide index, group included)"),
    _u("kc", 16, "output channels of the tile", 1),
    _u("cc", 16, "input channels of the tile, per group (channel-wise layers: = kc)", 1),
    _u("in_addr", BUF_ADDR_BITS, "buffer address of the input tile (operand 0); resident: of its first element in place"),
    _u("w_addr", BUF_ADDR_BITS, "buffer address of the weight tile [kc][cc][R*S] (eltwise: parameter vectors [kc][params])"),
    _u("acc_addr", BUF_ADDR_BITS, "buffer address of the accumulator tile [kc][rows][cols], accumulator words each"),
    _u("out_addr", BUF_ADDR_BITS, "buffer address of the output tile [kc][oh][ow] (resident output: in place)"),
    _u("in2_addr", BUF_ADDR_BITS, "buffer address of the residual tile (conv/fc) or of operand 1 (add, eltwise)"),
    Field("d2", 17, "an add of 3 with operands 1 and 2 resident: operand 2 is read in place at in2_addr + d2 "
          "(words, signed)", lo=-(1 << 16), kind="sint"),
), "one tile of one layer on the array")

SYNC = Record("SYNC", 4, None, INSN_BITS, TOKENS + (
    LAYER_REF,
    _e("q", 2, QUEUES, "the queue the SYNC goes to"),
), "only its tokens: wait for / give tokens in the order of its queue")

FINISH = Record("FINISH", 5, "compute", INSN_BITS, TOKENS[:2],
                "the end of the program (compute queue): the machine stops when it retires")

LAYER = Record("LAYER", 0, None, LAYER_BITS, (
    Field("name", 0, "the layer's name (string table)", kind="name"),
    _e("kind", 3, LAYER_KINDS, "layer kind"),
    _e("df", 1, DATAFLOWS, "dataflow: weight stationary or output stationary"),
    _flag("chanwise", "output channel k reads input channel k only (depthwise, pools, gap, add, eltwise, move)"),
    _e("act", 4, ACTS, "fused activation applied to each result as it leaves the array"),
    _flag("res", "fused residual add after act: y = post_act(act(conv + b) + r)"),
    _e("post_act", 2, POST_ACTS, "activation applied after the residual add (and by an add layer)"),
    _e("pool", 2, POOLS, "fused pool over the conv's output"),
    _flag("inc_pad", "average pools: the divisor counts the declared padding (count_include_pad)"),
    _flag("bias", "the epilogue adds the bias memory's entry k0+i to output channel k0+i"),
    _flag("in_res", "operand 0 is resident: COMPUTE reads it in place (strides of the whole tensor)"),
    _flag("in2_res", "the residual / operand 1 is resident: read in place"),
    _flag("out_res", "the output is resident: the finished tile is written in place"),
    _u("n_in", 4, "input tensors (add, eltwise, move)", 1),
    _e("fn", 6, ELEMENT_FNS, "element function (eltwise, move)"),
    _u("e_ops", 8, "eltwise: PE operations per element"),
    _u("e_funcs", 8, "eltwise: nonlinear functions per element"),
    _u("params", 8, "eltwise: per-channel parameter vectors (loaded as weights)"),
    _u("C", 16, "input channels (all groups)", 1),
    _u("K", 16, "output channels (all groups)", 1),
    _u("groups", 16, "groups", 1),
    _u("H", 16, "input rows", 1),
    _u("W", 16, "input columns", 1),
    _u("P", 16, "output rows (pooled with a fused pool)", 1),
    _u("Q", 16, "output columns (pooled with a fused pool)", 1),
    _u("R", 16, "kernel rows (gap: H)", 1),
    _u("S", 16, "kernel columns (gap: W)", 1),
    _u("sh", 8, "stride along rows", 1),
    _u("sw", 8, "stride along columns", 1),
    _u("dh", 8, "dilation along rows", 1),
    _u("dw", 8, "dilation along columns", 1),
    _u("pt", 8, "pad top (a ceil-mode overhang included)"),
    _u("pl", 8, "pad left"),
    _u("pb", 8, "pad bottom"),
    _u("pr", 8, "pad right"),
    _u("xb", 8, "of pb, the ceil-mode overhang (never counted by an average)"),
    _u("xr", 8, "of pr, the ceil-mode overhang"),
    _u("pool_r", 8, "fused pool: window rows"),
    _u("pool_s", 8, "fused pool: window columns"),
    _u("pool_sh", 8, "fused pool: stride along rows"),
    _u("pool_sw", 8, "fused pool: stride along columns"),
    _u("pool_pt", 8, "fused pool: pad top"),
    _u("pool_pl", 8, "fused pool: pad left"),
    _u("pool_pb", 8, "fused pool: pad bottom (ceil-mode overhang included)"),
    _u("pool_pr", 8, "fused pool: pad right"),
    _u("pool_xb", 8, "fused pool: of pool_pb, the ceil-mode overhang"),
    _u("pool_xr", 8, "fused pool: of pool_pr, the ceil-mode overhang"),
    Field("alpha", 32, "activation or element function parameter (leaky_relu slope, "
          "hard_sigmoid alpha, clip min)", kind="f32"),
    Field("beta", 32, "second parameter (hard_sigmoid beta, clip max)", kind="f32"),
    _u("nz_num", 16, "OS: fraction of nonzero weights streamed, numerator", 0),
    _u("nz_den", 16, "OS: fraction of nonzero weights streamed, denominator", 1),
    _flag("swap", "binary element function with one data tile: the tile is its second argument "
          "(f(other, tile): sub, div, pow of a constant by the tile)"),
    _u("axes", 3, "reducing element function: the grid axes it spans (bit 0 channels, bit 1 rows, "
       "bit 2 columns): softmax over them, lrn over a window of channels (1)"),
    _u("lrn_k", 7, "lrn: the bias k in eighths (k = lrn_k / 8; y = x / (k + alpha * sum of the R "
       "channels' squares)^beta)"),
), "a layer descriptor: what is fixed for all the tiles of a layer")

INSTRUCTIONS: tuple[Record, ...] = (LOAD, STORE, COMPUTE, SYNC, FINISH)
RECORDS: tuple[Record, ...] = INSTRUCTIONS + (LAYER,)
BY_OPCODE = {r.opcode: r for r in INSTRUCTIONS}
BY_MNEMONIC = {r.mnemonic: r for r in RECORDS}

#: Which token flags are meaningful on each queue (the others must be 0): a LOAD never
#: signals a STORE (no load -> store counter).
ALLOWED_TOKENS = {
    "load": ("pop_prev", "pop_next", "push_next"),
    "compute": ("pop_prev", "pop_next", "push_prev", "push_next"),
    "store": ("pop_prev", "push_prev", "push_next"),
}


# ----------------------------------------------------------------------------- classes
class Insn:
    """Base of the generated record classes: ``RECORD`` is the declaration."""

    RECORD: ClassVar[Record]

    def __post_init__(self) -> None:
        problems = verify_fields(self)
        if problems:
            raise ValueError(f"{self.RECORD.mnemonic}: {problems[0]}")

    @property
    def mnemonic(self) -> str:
        return self.RECORD.mnemonic

    @property
    def queue(self) -> str:
        """The queue the instruction goes to."""
        return self.q if self.RECORD is SYNC else self.RECORD.queue  # type: ignore[attr-defined]

    def values(self) -> dict:
        return {f.name: getattr(self, f.name) for f in self.RECORD.fields}


def _make_class(rec: Record, cls_name: str):
    fields = [(f.name, object, dataclasses.field(default=f.default)) for f in rec.fields]
    cls = dataclasses.make_dataclass(cls_name, fields, bases=(Insn,), frozen=True,
                                     namespace={"RECORD": rec, "__doc__": f"{rec.mnemonic}: {rec.doc}."})
    cls.__module__ = __name__
    return cls


Load = _make_class(LOAD, "Load")
Store = _make_class(STORE, "Store")
Compute = _make_class(COMPUTE, "Compute")
Sync = _make_class(SYNC, "Sync")
Finish = _make_class(FINISH, "Finish")
Layer = _make_class(LAYER, "Layer")
CLASSES = {rec.mnemonic: cls for rec, cls in
           zip(RECORDS, (Load, Store, Compute, Sync, Finish, Layer))}


def verify_fields(rec) -> list[str]:
    """Every range problem of record ``rec`` (each field against its declaration, and the
    token flags against its queue), in field order; [] when it is legal."""
    out = [p for f in rec.RECORD.fields if (p := f.check(getattr(rec, f.name))) is not None]
    if out or rec.RECORD is LAYER:
        return out
    allowed = ALLOWED_TOKENS[rec.queue]
    for t in TOKENS:
        if getattr(rec, t.name, 0) and t.name not in allowed:
            out.append(f"field '{t.name}' = 1 is not allowed on the {rec.queue} queue")
    return out


@dataclass(frozen=True)
class Program:
    """A program: its layer descriptors and its instruction stream."""

    layers: tuple = ()
    insns: tuple = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "insns", tuple(self.insns))


def verify_program(prog: Program) -> list[tuple[int, str]]:
    """Structural problems of ``prog`` as (instruction index, message): a layer index out
    of the table, FINISH missing, repeated or not last.  (Token balance and addresses are
    the program verifier's, with the memory plan at hand.)"""
    out: list[tuple[int, str]] = []
    n = len(prog.layers)
    for i, insn in enumerate(prog.insns):
        layer = getattr(insn, "layer", None)
        if layer is not None and layer >= n:
            out.append((i, f"field 'layer' = {layer} refers to no layer descriptor (the program has {n})"))
        if insn.RECORD is FINISH and i != len(prog.insns) - 1:
            out.append((i, "FINISH before the end of the program"))
    if not prog.insns or prog.insns[-1].RECORD is not FINISH:
        out.append((len(prog.insns), "the program does not end with FINISH"))
    return out


def token_balance(prog: Program) -> dict[str, int]:
    """Pushes minus pops on each token counter (:data:`TOKEN_COUNTERS`); all 0 in a
    balanced program."""
    bal = dict.fromkeys(TOKEN_COUNTERS, 0)
    nxt, prv = NEXT_QUEUE, PREV_QUEUE
    for insn in prog.insns:
        q = insn.queue
        if getattr(insn, "push_next", 0):
            bal[f"{q}->{nxt[q]}"] += 1
        if getattr(insn, "push_prev", 0):
            bal[f"{q}->{prv[q]}"] += 1
        if getattr(insn, "pop_next", 0):
            bal[f"{nxt[q]}->{q}"] -= 1
        if getattr(insn, "pop_prev", 0):
            bal[f"{prv[q]}->{q}"] -= 1
    return bal


def docs_table(rec: Record) -> str:
    """The markdown table of ``rec``'s fields as ``docs/isa.md`` shows it: bit offset,
    width, range and meaning of each field (the opcode first for an instruction)."""
    rows = ["| field | bits | width | range | meaning |", "| --- | --- | --- | --- | --- |"]
    if rec.opcode:
        rows.append(f"| op | 0..{OP_BITS - 1} | {OP_BITS} | {rec.opcode} | opcode |")
    for f, at in rec.layout():
        w = field_bits(f)
        rows.append(f"| {f.name} | {at}..{at + w - 1} | {w} | {f.range_text()} | {f.doc} |")
    rows.append(f"| (reserved) | {rec.used_bits}..{rec.bits - 1} | {rec.bits - rec.used_bits} | 0 | must be zero |")
    return "\n".join(rows)
