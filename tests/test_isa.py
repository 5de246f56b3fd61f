"""The instruction set (docs/isa.md, sqnxt_compiler/program/): every record kind round-trips
text -> binary -> text and binary -> text -> binary byte for byte, random programs too;
the field declaration agrees with the docs' tables; the worked example assembles as
printed; corrupt binaries and malformed text give one documented line and exit 3 through
the command line, never a traceback, and leave no output; encoding is deterministic."""
from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqnxt_compiler.diagnostics import ExitCode, InputError
from sqnxt_compiler.program import (Compute, Finish, Layer, Load, Program, Store, Sync, decode, encode,
                                    format_program, parse_program, token_balance)
from sqnxt_compiler.program.encoding import CRC_AT, HEADER_BYTES, INSN_BYTES, LAYER_BYTES, checksum
from sqnxt_compiler.program.isa import (ALLOWED_TOKENS, INSTRUCTIONS, LAYER, OP_BITS, QUEUES, RECORDS, SYNC,
                                        TOKENS, docs_table, field_bits)
from support import ROOT

DOC = ROOT / "docs" / "isa.md"


def _example_text() -> str:
    m = re.search(r"```isa-example\n(.*?)```", DOC.read_text(), re.S)
    assert m, "docs/isa.md has no isa-example block"
    return m.group(1)


def sample_program() -> Program:
    """A program with every record kind and non-default values in most fields."""
    conv = Layer(name="stage1/block1/conv 3x3", kind="conv", df="WS", act="leaky_relu", res=1,
                 post_act="relu", bias=1, in_res=1, in2_res=0, out_res=1, C=32, K=64, groups=2, H=28, W=27,
                 P=14, Q=14, R=3, S=3, sh=2, sw=2, pt=1, pl=1, pb=1, pr=0, alpha=0.125, beta=-2.5,
                 nz_num=2, nz_den=5)
    pool = Layer(name="ünïcode \"pool\" # ; =", kind="conv", df="OS", pool="avg", inc_pad=1, C=3, K=8,
                 H=227, W=227, P=55, Q=55, R=7, S=7, sh=2, sw=2, pool_r=3, pool_s=3, pool_sh=2, pool_sw=2,
                 pool_pb=1, pool_pr=1, pool_xb=1, pool_xr=1, nz_num=3, nz_den=5)
    elt = Layer(name="", kind="eltwise", df="OS", chanwise=1, fn="sigmoid", n_in=2, e_ops=1, e_funcs=1,
                params=1, C=16, K=16, H=7, W=7, P=7, Q=7, R=1, S=1, nz_num=1, nz_den=1)
    insns = [
        Load(layer=0, kind="input", padv="min", ew=1, dram=123456, buf=4095, n0=17, n1=9, n2=5, ds0=2,
             ds1=56, ds2=784, pt=1, pb=0, pl=2, pr=3, push_next=1),
        Load(layer=0, kind="psum", ew=2, dram=(1 << 32) - 1, buf=(1 << 20) - 1, n0=65535, n1=1, n2=1,
             ds0=255, ds1=(1 << 24) - 1, ds2=(1 << 32) - 1, pop_next=1),
        Sync(layer=0, q="compute", pop_next=1, push_prev=1),
        Compute(layer=0, acc=1, fin=1, padded=1, oy=3, ox=4, oh=5, ow=6, k0=7, kc=8, cc=9, in_addr=10,
                w_addr=11, acc_addr=12, out_addr=13, in2_addr=14, pop_prev=1, pop_next=1, push_prev=1,
                push_next=1),
        Store(layer=1, kind="psum", ew=2, dram=99, buf=77, n0=3, n1=4, n2=5, ds0=2, ds1=6, ds2=24,
              pop_prev=1, push_prev=1),
        Sync(layer=2, q="store", pop_prev=1),
        Sync(layer=2, q="load", push_next=1),
        Compute(layer=2, oh=65535, ow=1, kc=1, cc=1),
        Finish(pop_prev=1, pop_next=1),
    ]
    return Program((conv, pool, elt), tuple(insns))


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def one_line_error(r, *pieces):
    assert r.exit_code == int(ExitCode.BAD_INPUT), (r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("sqnxtc: error: "), lines[0]
    for p in pieces:
        assert p in lines[0], (p, lines[0])
    assert r.stdout == ""
    return lines[0]


def reseal(data: bytes) -> bytes:
    """``data`` with its checksum recomputed (to reach the checks after the checksum)."""
    b = bytearray(data)
    b[CRC_AT:CRC_AT + 4] = struct.pack("<I", checksum(bytes(b)))
    return bytes(b)


# ----------------------------------------------------------------------------- round trips
def test_every_record_kind_round_trips():
    prog = sample_program()
    assert {type(i).RECORD for i in prog.insns} | {LAYER} == set(RECORDS)
    data = encode(prog)
    text = format_program(prog)
    assert decode(data) == prog
    assert parse_program(text) == prog
    assert format_program(decode(encode(parse_program(text)))) == text      # text -> bin -> text
    assert encode(parse_program(format_program(decode(data)))) == data      # bin -> text -> bin
    assert token_balance(Program(prog.layers, prog.insns)) is not None


@pytest.mark.parametrize("rec", INSTRUCTIONS, ids=lambda r: r.mnemonic)
def test_each_instruction_alone_round_trips(rec):
    prog = sample_program()
    insns = [i for i in prog.insns if i.RECORD is rec]
    if rec.mnemonic != "FINISH":
        insns.append(Finish())
    p = Program(prog.layers, tuple(insns))
    text = format_program(p)
    assert format_program(decode(encode(parse_program(text)))) == text
    assert encode(parse_program(format_program(decode(encode(p))))) == encode(p)


def test_sizes_and_layout():
    prog = sample_program()
    data = encode(prog)
    names = sum(len(lay.name.encode()) for lay in prog.layers)
    assert len(data) == HEADER_BYTES + LAYER_BYTES * 3 + INSN_BYTES * len(prog.insns) + names
    # the opcode is the low 4 bits of each instruction's first byte
    at = HEADER_BYTES + 3 * LAYER_BYTES
    assert [data[at + i * INSN_BYTES] & 15 for i in range(len(prog.insns))] == \
        [i.RECORD.opcode for i in prog.insns]


def test_determinism():
    a, b = encode(sample_program()), encode(sample_program())
    assert a == b
    assert format_program(sample_program()) == format_program(decode(a))


# random programs --------------------------------------------------------------------------
def _value(f):
    if f.kind == "enum":
        return st.sampled_from(f.values)
    if f.kind == "f32":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if f.kind == "name":
        return st.text(max_size=12)
    return st.one_of(st.integers(f.lo, f.max), st.sampled_from((f.lo, f.max)))


def _record(rec, n_layers):
    fields = {}
    for f in rec.fields:
        if f in TOKENS:
            continue
        if f.name == "layer":
            fields[f.name] = st.integers(0, n_layers - 1)
        else:
            fields[f.name] = _value(f)

    @st.composite
    def build(draw):
        values = {k: draw(s) for k, s in fields.items()}
        if rec.opcode:
            queue = values["q"] if rec is SYNC else rec.queue
            allowed = ALLOWED_TOKENS[queue]
            for t in TOKENS:
                if t.name in allowed and any(f.name == t.name for f in rec.fields):
                    values[t.name] = draw(st.integers(0, 1))
        from sqnxt_compiler.program import CLASSES
        return CLASSES[rec.mnemonic](**values)
    return build()


@st.composite
def programs(draw):
    n_layers = draw(st.integers(1, 4))
    layers = [draw(_record(LAYER, n_layers)) for _ in range(n_layers)]
    body = [r for r in INSTRUCTIONS if r.mnemonic != "FINISH"]
    insns = draw(st.lists(st.sampled_from(body).flatmap(lambda r: _record(r, n_layers)), max_size=12))
    fin = draw(_record(INSTRUCTIONS[-1], n_layers))
    return Program(tuple(layers), tuple(insns) + (fin,))


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(prog=programs())
def test_random_programs_round_trip(prog):
    data = encode(prog)
    assert decode(data) == prog
    text = format_program(prog)
    assert parse_program(text) == prog
    assert format_program(decode(encode(parse_program(text)))) == text
    assert encode(parse_program(format_program(decode(data)))) == data


# ----------------------------------------------------------------------------- the docs
def _doc_tables() -> dict[str, str]:
    text = DOC.read_text()
    out = {}
    for m in re.finditer(r"^### (\w+)[^\n]*\n(?:(?!\|)[^\n]*\n)*((?:\|[^\n]*\n)+)", text, re.M):
        out[m.group(1)] = m.group(2).rstrip("\n")
    return out


def _rows(table: str) -> list[tuple[str, ...]]:
    rows = [tuple(c.strip() for c in line.strip().strip("|").split("|")) for line in table.splitlines()]
    return rows[2:]


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.mnemonic)
def test_docs_table_agrees_with_the_declaration(rec):
    tables = _doc_tables()
    assert rec.mnemonic in tables, f"docs/isa.md has no table for {rec.mnemonic}"
    rows = _rows(tables[rec.mnemonic])
    # parsed, compared field by field: name, bit range, width, range
    expect = []
    if rec.opcode:
        expect.append(("op", f"0..{OP_BITS - 1}", str(OP_BITS), str(rec.opcode)))
    for f, at in rec.layout():
        w = field_bits(f)
        expect.append((f.name, f"{at}..{at + w - 1}", str(w), f.range_text()))
    expect.append(("(reserved)", f"{rec.used_bits}..{rec.bits - 1}", str(rec.bits - rec.used_bits), "0"))
    assert [r[:4] for r in rows] == expect
    assert tables[rec.mnemonic] == docs_table(rec)   # and the meanings too


def test_worked_example_assembles_as_printed():
    text = _example_text()
    prog = parse_program(text)
    assert format_program(prog) == text
    data = encode(prog)
    assert len(data) == 388
    assert data[:32].hex() == "53514e5850524700" "0100" "0000" "01000000" "09000000" "04000000" \
        + f"{checksum(data):08x}"[6:8] + f"{checksum(data):08x}"[4:6] + f"{checksum(data):08x}"[2:4] \
        + f"{checksum(data):08x}"[0:2] + "00000000"
    assert data[24:28].hex() in DOC.read_text()
    assert all(v == 0 for v in token_balance(prog).values())


def test_readme_lists_the_isa_doc():
    assert "isa.md" in (ROOT / "README.md").read_text()


# ----------------------------------------------------------------------------- range checks
def test_out_of_range_fields_are_refused_when_built():
    with pytest.raises(ValueError, match="field 'ew' = 0 out of range"):
        Load(ew=0)
    with pytest.raises(ValueError, match="not one of"):
        Load(kind="bogus")
    with pytest.raises(ValueError, match="'push_prev' = 1 is not allowed on the load queue"):
        Load(push_prev=1)                 # no load -> store counter
    with pytest.raises(ValueError, match="'pop_next' = 1 is not allowed on the store queue"):
        Sync(q="store", pop_next=1)
    assert Load(pop_prev=1).pop_prev == 1 and Store(push_next=1).push_next == 1   # store -> load
    with pytest.raises(ValueError, match="not exactly a binary32"):
        Layer(alpha=0.1)
    with pytest.raises(ValueError, match="FINISH"):
        encode(Program((Layer(),), (Load(),)))
    with pytest.raises(ValueError, match="refers to no layer descriptor"):
        encode(Program((), (Load(layer=0), Finish())))


# ----------------------------------------------------------------------------- bad binaries
@pytest.fixture(scope="module")
def small():
    p = Program((Layer(name="l0", C=2, K=2, H=2, W=2, P=2, Q=2, R=1, S=1),),
                (Load(layer=0, kind="input", push_next=1), Compute(layer=0, pop_prev=1, fin=1), Finish()))
    return encode(p)


def test_truncated_at_every_length(cli, tmp_path, small):
    for n in range(len(small)):
        path = write(tmp_path, "p.bin", small[:n])
        r = cli("disasm", path)
        line = one_line_error(r, "p.bin")
        assert ("empty file" in line) if n == 0 else ("truncated" in line), line


def test_every_flipped_byte_is_caught(cli, tmp_path, small):
    for at in range(len(small)):
        for mask in (0x01, 0x80, 0xFF):
            b = bytearray(small)
            b[at] ^= mask
            path = write(tmp_path, "p.bin", bytes(b))
            one_line_error(cli("disasm", path), "p.bin", "byte ")


def _patch(data: bytes, at: int, raw: bytes) -> bytes:
    b = bytearray(data)
    b[at:at + len(raw)] = raw
    return bytes(b)


def _insn_word(data, i):
    at = HEADER_BYTES + LAYER_BYTES + i * INSN_BYTES
    return at, int.from_bytes(data[at:at + INSN_BYTES], "little")


BAD = {
    # name: (mutate(data) -> data, pieces of the message)
    "wrong-magic": (lambda d: _patch(d, 0, b"NOTAPROG"), ["byte 0:", "not a sqnxtc program", "bad magic"]),
    "wrong-version": (lambda d: reseal(_patch(d, 8, struct.pack("<H", 2))),
                      ["byte 8:", "format version 2 is not supported", "reads version 1"]),
    "bad-checksum": (lambda d: _patch(d, CRC_AT, b"\0\0\0\0"), ["byte 24:", "checksum mismatch", "corrupt"]),
    "trailing-bytes": (lambda d: reseal(d + b"\0" * 5), ["5 trailing bytes"]),
    "reserved-header": (lambda d: reseal(_patch(d, 28, b"\1\0\0\0")), ["byte 28:", "reserved header"]),
    "field-out-of-range": (  # LOAD's ew (bits 27..28) = 0
        lambda d: reseal(_patch(d, _insn_word(d, 0)[0], (_insn_word(d, 0)[1] & ~(3 << 27)).to_bytes(32, "little"))),
        [f"byte {HEADER_BYTES + LAYER_BYTES}:", "instruction 0 (LOAD)", "field 'ew' = 0 out of range [1, 3]"]),
    "bad-enum": (  # LOAD's kind (bits 24..26) = 7
        lambda d: reseal(_patch(d, _insn_word(d, 0)[0], (_insn_word(d, 0)[1] | (7 << 24)).to_bytes(32, "little"))),
        ["instruction 0 (LOAD)", "field 'kind' = 7 is not a valid code"]),
    "unknown-opcode": (
        lambda d: reseal(_patch(d, _insn_word(d, 1)[0], bytes([(d[_insn_word(d, 1)[0]] & 0xF0) | 9]))),
        [f"byte {HEADER_BYTES + LAYER_BYTES + INSN_BYTES}:", "instruction 1: unknown opcode 9"]),
    "reserved-bits": (
        lambda d: reseal(_patch(d, _insn_word(d, 2)[0] + 31, b"\x80")),
        ["instruction 2 (FINISH)", "reserved bits"]),
    "token-not-allowed": (  # LOAD push_prev (bit 6): no load -> store counter
        lambda d: reseal(_patch(d, _insn_word(d, 0)[0], (_insn_word(d, 0)[1] | (1 << 6)).to_bytes(32, "little"))),
        ["instruction 0 (LOAD)", "'push_prev' = 1 is not allowed on the load queue"]),
    "layer-out-of-table": (  # COMPUTE's layer (bits 8..23) = 5
        lambda d: reseal(_patch(d, _insn_word(d, 1)[0] + 1, b"\x05")),
        ["instruction 1", "refers to no layer descriptor"]),
    "bad-name": (lambda d: reseal(d[:-2] + b"\xff\xfe"), ["layer descriptor 0", "not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_binary(cli, tmp_path, small, case):
    mutate, pieces = BAD[case]
    path = write(tmp_path, "p.bin", mutate(small))
    out = tmp_path / "out"
    out.mkdir()
    one_line_error(cli("disasm", path, "-o", out / "p.s"), "p.bin", *pieces)
    assert os.listdir(out) == []
    with pytest.raises(InputError):
        decode(mutate(small), "p.bin")


def test_missing_and_directory(cli, tmp_path):
    one_line_error(cli("disasm", tmp_path / "nope.bin"), "nope.bin", "no such file")
    one_line_error(cli("disasm", tmp_path), "is a directory")
    one_line_error(cli("asm", tmp_path / "nope.s", "-o", tmp_path / "x.bin"), "nope.s", "no such file")


# ----------------------------------------------------------------------------- bad text
GOOD_LINE = "LOAD layer=0 kind=input n0=1"
BAD_TEXT = {
    "unknown-mnemonic": ("JUMP to=3", ["line 3:", "unknown instruction 'JUMP'"]),
    "unknown-field": ("LOAD layer=0 size=3", ["line 3:", "LOAD has no field 'size'"]),
    "not-key-value": ("LOAD layer=0 n0 = 3", ["line 3:", "cannot read 'n0'"]),
    "not-an-integer": ("LOAD layer=0 n0=three", ["line 3:", "'n0' = 'three' is not an integer"]),
    "out-of-range": ("COMPUTE layer=0 kc=0", ["line 3:", "field 'kc' = 0 out of range [1, 65535]"]),
    "bad-enum": ("LOAD layer=0 kind=bogus", ["line 3:", "not one of input|weight|psum|residual|bias"]),
    "twice": ("LOAD layer=0 n0=1 n0=2", ["line 3:", "field 'n0' given twice"]),
    "undefined-layer": ("LOAD layer=1", ["line 3:", "refers to layer 1"]),
    "token-not-allowed": ("STORE layer=0 pop_next=1", ["line 3:", "not allowed on the store queue"]),
    "bad-string": ('LAYER name="unterminated', ["line 3:", "cannot read"]),
    "finish-early": ("FINISH", ["line 3:", "FINISH before the end"]),
}


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_bad_text(cli, tmp_path, case):
    line, pieces = BAD_TEXT[case]
    text = f"# a program\nLAYER name=\"a\"\n{line}   ; comment\n{GOOD_LINE}\nFINISH\n"
    path = write(tmp_path, "p.s", text)
    out = tmp_path / "out"
    out.mkdir()
    one_line_error(cli("asm", path, "-o", out / "p.bin"), "p.s", *pieces)
    assert os.listdir(out) == []


def test_text_without_finish_and_not_utf8(cli, tmp_path):
    one_line_error(cli("asm", write(tmp_path, "p.s", 'LAYER name="a"\nLOAD layer=0\n'), "-o", tmp_path / "o.bin"),
                   "p.s", "end of file", "does not end with FINISH")
    one_line_error(cli("asm", write(tmp_path, "q.s", b"LAYER name=\"\xff\"\n"), "-o", tmp_path / "o.bin"),
                   "q.s", "line 1", "not UTF-8")


def test_comments_order_and_defaults_are_accepted():
    text = ('; free-form text\nLAYER C=1 K=1 H=1 W=1 P=1 Q=1 R=1 S=1 name="x#y;z"  # a comment\n'
            "\tLOAD n0=2 kind=weight layer=0 push_next=1\n\nCOMPUTE pop_prev=1 layer=0\nFINISH\n")
    prog = parse_program(text)
    assert prog.layers[0].name == "x#y;z"
    assert prog.insns[0].kind == "weight" and prog.insns[0].n0 == 2 and prog.insns[0].ew == 1
    assert parse_program(format_program(prog)) == prog


# ----------------------------------------------------------------------------- the CLI
def test_cli_round_trip(cli, tmp_path):
    data = encode(sample_program())
    binp = write(tmp_path, "p.bin", data)
    r = cli("disasm", binp)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == format_program(sample_program())
    r = cli("disasm", binp, "-o", tmp_path / "p.s")
    assert r.exit_code == 0 and r.stdout == ""
    assert (tmp_path / "p.s").read_text(encoding="utf-8") == format_program(sample_program())
    r = cli("asm", tmp_path / "p.s", "-o", tmp_path / "q.bin")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "q.bin").read_bytes() == data


def test_real_process_no_traceback(tmp_path, small):
    path = write(tmp_path, "p.bin", small[:50])
    exe = ROOT / ".venv" / "bin" / "sqnxtc"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sqnxt_compiler"]
    p = subprocess.run(cmd + ["disasm", str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == int(ExitCode.BAD_INPUT), p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("sqnxtc: error: ") and p.stderr.count("\n") == 1
    assert "truncated" in p.stderr and p.stdout == ""


def test_checksum_is_crc32_of_the_file_with_a_zero_checksum(small):
    assert struct.unpack_from("<I", small, CRC_AT)[0] == zlib.crc32(small[:CRC_AT] + b"\0" * 4 + small[CRC_AT + 4:])
    assert set(QUEUES) == {"load", "compute", "store"}
