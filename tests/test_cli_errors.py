"""Bad input through the command line: the documented exit code, exactly one
``sqnxtc: error:`` line on stderr naming the place, no traceback, no output file or
temporary file left behind; plus --debug, and stdout carrying only the requested output."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sqnxt_compiler.diagnostics import ExitCode
from support import ROOT, make_model

N = helper.make_node


def good_model():
    rng = np.random.default_rng(0)
    return make_model([N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["y"])],
                      [("x", [1, 3, 8, 8])], [("y", [1, 4, 8, 8])],
                      [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))])


def _write_bytes(data):
    def make(d):
        p = d / "m.onnx"
        p.write_bytes(data() if callable(data) else data)
        return str(p)
    return make


def _write_model(build):
    def make(d):
        p = d / "m.onnx"
        onnx.save(build(), str(p))
        return str(p)
    return make


def _one_node(op, **attrs):
    return lambda: make_model([N(op, ["x"], ["y"], name="the_node", **attrs)],
                              [("x", [1, 3, 4, 4])], [("y", [1, 3, 4, 4])])


def _with_input(shape):
    return lambda: make_model([N("Relu", ["x"], ["y"], name="r")], [("x", shape)], [("y", shape)])


def _undefined_tensor():
    return make_model([N("Add", ["x", "ghost"], ["y"], name="adder")], [("x", [1, 3, 4, 4])],
                      [("y", [1, 3, 4, 4])])


def _bad_attr():
    m = _one_node("Relu")()
    m.graph.node[0].attribute.append(helper.make_attribute("bogus", 1))
    return m


def _empty_graph():
    g = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _conv_model(w_shape, y_shape, **attrs):
    return lambda: make_model([N("Conv", ["x", "w"], ["y"], name="c", **attrs)], [("x", [1, 4, 8, 8])],
                              [("y", y_shape)], [("w", np.ones(w_shape, np.float32))])


def _relu_model(shape, opset=13):
    return lambda: make_model([N("Relu", ["x"], ["y"], name="r")], [("x", shape)], [("y", shape)], opset=opset)


def _no_outputs():
    m = make_model([N("Relu", ["x"], ["a"])], [("x", [1, 3, 4, 4])], [("a", [1, 3, 4, 4])])
    del m.graph.output[:]
    return m


def _dilation():
    """A dilated max pool (a dilated conv is supported; a dilated pool is not)."""
    return make_model([N("MaxPool", ["x"], ["y"], name="dil_pool", kernel_shape=[2, 2], dilations=[2, 2])],
                      [("x", [1, 3, 8, 8])], [("y", [1, 3, 6, 6])])


def _absurd():
    return make_model([N("Conv", ["x", "w"], ["y"], name="huge")],
                      [("x", [1, 3, 100000, 100000])], [("y", [1, 2, 100000, 100000])],
                      [("w", np.ones((2, 3, 1, 1), np.float32))])


def _bad_utf8(field, good, bad):
    """good_model() with the UTF-8 string ``good`` in ``field`` replaced by invalid bytes."""
    def data():
        m = good_model()
        if field == "node":
            m.graph.node[0].name = good
        elif field == "op":
            m.graph.node[1].op_type = good
        else:
            m.graph.doc_string = good
        out = m.SerializeToString()
        assert out.count(good.encode()) == 1
        return out.replace(good.encode(), bad)
    return data


def _external(location, make_file=None):
    """good_model() with its weight in external data at ``location``."""
    def make(d):
        m = good_model()
        w = m.graph.initializer[0]
        onnx.external_data_helper.set_external_data(w, location=location)
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        if make_file:
            make_file(d)
        p = d / "m.onnx"
        p.write_bytes(m.SerializeToString())
        return str(p)
    return make


def _weight_input():
    m = good_model()
    w = m.graph.initializer.pop()
    m.graph.input.append(helper.make_tensor_value_info(w.name, TensorProto.FLOAT, list(w.dims)))
    return m


def _same_pool(op, k, s, size, auto="SAME_UPPER"):
    o = -(-size // s)
    return lambda: make_model([N(op, ["x"], ["y"], name="p", kernel_shape=[k, k], strides=[s, s], auto_pad=auto)],
                              [("x", [1, 2, size, size])], [("y", [1, 2, o, o])])


def _same_conv(k, s, size, auto):
    o = -(-size // s)
    return lambda: make_model([N("Conv", ["x", "w"], ["y"], name="c", strides=[s, s], auto_pad=auto)],
                              [("x", [1, 2, size, size])], [("y", [1, 2, o, o])],
                              [("w", np.ones((2, 2, k, k), np.float32))])


def _truncated():
    data = good_model().SerializeToString()
    return data[:int(len(data) * 0.6)]


def _tensorproto():
    return numpy_helper.from_array(np.ones((4, 4), np.float32), "t").SerializeToString()


def _graphproto():
    return good_model().graph.SerializeToString()


CASES = {
    # name: (make(dir) -> model path, exit code, extra args, pieces the message must contain)
    "missing-file": (lambda d: str(d / "nope.onnx"), ExitCode.BAD_INPUT, (), ["nope.onnx", "no such file"]),
    "directory": (lambda d: str(d), ExitCode.BAD_INPUT, (), ["is a directory"]),
    "empty-file": (_write_bytes(b""), ExitCode.BAD_INPUT, (), ["m.onnx", "empty file"]),
    "text-file": (_write_bytes(b"hello, this is not a model\n" * 20), ExitCode.BAD_INPUT, (),
                  ["m.onnx", "not an ONNX model"]),
    "truncated": (_write_bytes(_truncated), ExitCode.BAD_INPUT, (), ["m.onnx", "ONNX model"]),
    "random-bytes": (_write_bytes(np.random.default_rng(1).bytes(4096)), ExitCode.BAD_INPUT, (),
                     ["m.onnx", "ONNX model"]),
    "tensorproto": (_write_bytes(_tensorproto), ExitCode.BAD_INPUT, (), ["m.onnx", "not an ONNX model"]),
    "graphproto": (_write_bytes(_graphproto), ExitCode.BAD_INPUT, (), ["m.onnx", "not an ONNX model"]),
    "undefined-tensor": (_write_model(_undefined_tensor), ExitCode.BAD_INPUT, (),
                         ["m.onnx", "invalid ONNX model", "ghost", "adder"]),
    "unsupported-hardmax": (_write_model(_one_node("Hardmax")), ExitCode.UNSUPPORTED, (),
                            ["m.onnx", "node 'the_node'", "unsupported op 'Hardmax' (node 'the_node')",
                             "`sqnxtc ops`"]),
    "unsupported-sin": (_write_model(_one_node("Sin")), ExitCode.UNSUPPORTED, (),
                        ["m.onnx", "node 'the_node'", "unsupported op 'Sin'"]),
    "dynamic-dim": (_write_model(_with_input([1, 3, "h", 4])), ExitCode.UNSUPPORTED, (),
                    ["m.onnx", "input x", "dynamic dimension 'h' at axis 2"]),
    "batch-4": (_write_model(_with_input([4, 3, 4, 4])), ExitCode.UNSUPPORTED, (),
                ["m.onnx", "input x", "batch size 4"]),
    "bad-attribute": (_write_model(lambda: _bad_attr()), ExitCode.BAD_INPUT, (),
                      ["m.onnx", "invalid ONNX model", "bogus", "the_node"]),
    "empty-graph": (_write_model(_empty_graph), ExitCode.BAD_INPUT, (), ["m.onnx", "empty graph"]),
    "no-outputs": (_write_model(_no_outputs), ExitCode.BAD_INPUT, (), ["m.onnx", "no outputs"]),
    "weights-disagree-with-channels": (_write_model(_conv_model((2, 3, 3, 3), [1, 2, 6, 6])), ExitCode.BAD_INPUT,
                                       (), ["node 'c'", "invalid model", "expects 3 input channels, input has 4"]),
    "groups-0": (_write_model(_conv_model((3, 4, 3, 3), [1, 3, 6, 6], group=0)), ExitCode.BAD_INPUT, (),
                 ["node 'c'", "invalid model", "groups=0"]),
    "pool-pads-as-large-as-the-window": (
        _write_model(lambda: make_model([N("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], pads=[2, 2, 2, 2])],
                                        [("x", [1, 4, 8, 8])], [("y", [1, 4, 11, 11])])),
        ExitCode.BAD_INPUT, (), ["node 'p'", "invalid model", "smaller than the kernel"]),
    "opset-30": (_write_model(_relu_model([1, 4, 8, 8], opset=30)), ExitCode.BAD_INPUT, (),
                 ["m.onnx", "opset 30 does not exist"]),
    "batch-0": (_write_model(_relu_model([0, 4, 8, 8])), ExitCode.UNSUPPORTED, (),
                ["input x", "dimension 0 at axis 0: an empty tensor"]),
    "height-0": (_write_model(_relu_model([1, 4, 0, 8])), ExitCode.UNSUPPORTED, (),
                 ["input x", "dimension 0 at axis 2: an empty tensor"]),
    "utf8-node-name": (_write_bytes(_bad_utf8("node", "cname", b"c\xff\xfeme")), ExitCode.BAD_INPUT, (),
                       ["m.onnx", "invalid UTF-8 in model.graph.node[0].name"]),
    "utf8-op-type": (_write_bytes(_bad_utf8("op", "Relu", b"Re\xffu")), ExitCode.BAD_INPUT, (),
                     ["m.onnx", "invalid UTF-8 in model.graph.node[1].op_type"]),
    "utf8-doc-string": (_write_bytes(_bad_utf8("doc", "docxx", b"do\xc3\x28x")), ExitCode.BAD_INPUT, (),
                        ["m.onnx", "invalid UTF-8 in model.graph.doc_string"]),
    "external-data-missing": (_external("w.bin"), ExitCode.BAD_INPUT, (), ["m.onnx", "w.bin", "not regular file"]),
    "external-data-outside": (_external("../w.bin", lambda d: (d.parent / "w.bin").write_bytes(bytes(432))),
                              ExitCode.BAD_INPUT, (), ["m.onnx", "points outside the directory"]),
    "external-data-absolute": (_external("/etc/hostname"), ExitCode.BAD_INPUT, (),
                               ["m.onnx", "should be a relative path"]),
    "zero-output-channels": (_write_model(_conv_model((0, 4, 3, 3), [1, 0, 6, 6])), ExitCode.UNSUPPORTED, (),
                             ["node 'c'", "tensor 'y' is empty (tensor<1x0x6x6xf32>)"]),
    "weights-as-graph-input": (_write_model(_weight_input), ExitCode.UNSUPPORTED, (),
                               ["node 'input w'", "is a parameter of Conv node", "as initializers"]),
    "maxpool-same-negative-pad": (_write_model(_same_pool("MaxPool", 1, 3, 8)), ExitCode.UNSUPPORTED, (),
                                  ["node 'p'", "auto_pad SAME_UPPER with stride 3 > kernel 1",
                                   "onnxruntime rejects it"]),
    "avgpool-same-negative-pad": (_write_model(_same_pool("AveragePool", 2, 5, 8, "SAME_LOWER")),
                                  ExitCode.UNSUPPORTED, (), ["node 'p'", "SAME_LOWER with stride 5 > kernel 2"]),
    "conv-same-shifted-windows": (_write_model(_same_conv(1, 4, 7, "SAME_UPPER")), ExitCode.UNSUPPORTED, (),
                                  ["node 'c'", "padding is negative (head -1, tail -1)", "shifts the windows"]),
    "dilation-2": (_write_model(_dilation), ExitCode.UNSUPPORTED, (),
                   ["m.onnx", "node 'dil_pool'", "dilations [2, 2]"]),
    "absurd-size": (_write_model(_absurd), ExitCode.UNSUPPORTED, (),
                    ["m.onnx", "node 'input x'", "30000000000 elements"]),
    "unknown-pass": (_write_model(good_model), ExitCode.USAGE, ("--passes", "canonicalize,fold-bm"),
                     ["unknown pass 'fold-bm'", "did you mean 'fold-bn'?"]),
    "bad-option": (_write_model(good_model), ExitCode.USAGE, ("--passes", "fuse-relu{max=6}"),
                   ["pass 'fuse-relu' has no option 'max'"]),
    "bad-syntax": (_write_model(good_model), ExitCode.USAGE, ("--passes", "canonicalize{"),
                   ["bad pipeline string"]),
    "print-after-unknown": (_write_model(good_model), ExitCode.USAGE,
                            ("--print-ir-after", "fold-bm"), ["--print-ir-after", "fold-bm"]),
    "print-after-not-in-pipeline": (_write_model(good_model), ExitCode.USAGE,
                                    ("--passes", "canonicalize", "--print-ir-after", "fuse-relu"),
                                    ["fuse-relu", "pipeline: canonicalize"]),
}


def _assert_one_line_error(stderr, pieces, where):
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sqnxtc: error: "), lines[0]
    for piece in pieces:
        assert piece in lines[0], (piece, lines[0])
    if where:
        assert where in lines[0]


@pytest.mark.parametrize("command", ["compile", "check"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(cli, tmp_path, case, command):
    make, code, extra, pieces = CASES[case]
    work = tmp_path / "in"
    work.mkdir()
    path = make(work)
    outdir = tmp_path / "out"
    outdir.mkdir()
    args = [command, path, *extra]
    if command == "compile":
        args += ["-o", outdir / "out.ir"]
    r = cli(*args)
    assert r.exit_code == int(code), (r.exit_code, r.stderr)
    where = None if code == ExitCode.USAGE else os.path.basename(path) or path
    _assert_one_line_error(r.stderr, pieces, where)
    assert "Traceback" not in r.stdout
    assert r.stdout == ""
    assert os.listdir(outdir) == []  # no output, no temporary file


@pytest.mark.parametrize("case,extra", [("unsupported-hardmax", []), ("truncated", []),
                                        ("absurd-size", ["-o", "out.ir"])])
def test_real_process_prints_no_traceback(tmp_path, case, extra):
    make, code, args, pieces = CASES[case]
    path = make(tmp_path)
    exe = ROOT / ".venv" / "bin" / "sqnxtc"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sqnxt_compiler"]
    p = subprocess.run(cmd + ["compile", path, *args, *extra], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert p.returncode == int(code), p.stderr
    _assert_one_line_error(p.stderr, pieces, "m.onnx")
    assert p.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_module_entry_point_in_a_real_process(tmp_path):
    path = CASES["no-outputs"][0](tmp_path)
    p = subprocess.run([sys.executable, "-m", "sqnxt_compiler", "check", path],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == int(ExitCode.BAD_INPUT)
    _assert_one_line_error(p.stderr, ["no outputs"], "m.onnx")


def test_debug_shows_a_traceback(cli, tmp_path):
    path = _write_model(_one_node("Hardmax"))(tmp_path)
    r = cli("--debug", "compile", path)
    assert r.exit_code == int(ExitCode.UNSUPPORTED)
    assert "Traceback (most recent call last)" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("sqnxtc: error: ")


def test_unwritable_output_is_a_one_line_error(cli, tmp_path):
    path = _write_model(good_model)(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("compile", path, "-o", blocker / "sub" / "out.ir")
    assert r.exit_code == int(ExitCode.OUTPUT)
    _assert_one_line_error(r.stderr, ["cannot write output"], "out.ir")


# ------------------------------------------------------------------------ stdout hygiene
def test_stdout_is_only_the_ir(cli, tmp_path):
    path = _write_model(good_model)(tmp_path)
    plain = cli("compile", path)
    assert plain.exit_code == 0 and plain.stderr == ""
    r = cli("compile", path, "--print-ir-after-all", "--pass-statistics", "--pass-timing")
    assert r.exit_code == 0
    assert r.stdout == plain.stdout  # diagnostics never reach stdout
    assert r.stdout.startswith("sqnxt.graph @") and r.stdout.rstrip().endswith("}")
    assert r.stdout.count("sqnxt.graph @") == 1
    for piece in ("IR Dump After canonicalize", "IR Dump After fold-bn", "IR Dump After fuse-relu",
                  "Pass statistics report", "relu-fused-into-conv", "Pass execution timing report"):
        assert piece in r.stderr and piece not in r.stdout


def test_output_file_has_the_same_text_as_stdout(cli, tmp_path):
    path = _write_model(good_model)(tmp_path)
    out = tmp_path / "o" / "out.ir"
    r = cli("compile", path, "-o", out)
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    assert out.read_text() == cli("compile", path).stdout
    assert sorted(os.listdir(out.parent)) == ["out.ir"]


def test_failed_compile_keeps_an_existing_output_file(cli, tmp_path):
    out = tmp_path / "out.ir"
    out.write_text("previous\n")
    path = _write_model(_one_node("Hardmax"))(tmp_path)
    r = cli("compile", path, "-o", out)
    assert r.exit_code == int(ExitCode.UNSUPPORTED)
    assert out.read_text() == "previous\n"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "out.ir"]


def test_check_passes_and_reports(cli, tmp_path):
    path = _write_model(good_model)(tmp_path)
    r = cli("check", path, "--samples", 2)
    assert r.exit_code == 0, r.stderr
    assert "PASS" in r.stdout and "Traceback" not in r.stderr


def _many_unsupported(kinds: int):
    """Sin twice, Hardmax once, a custom-domain op, then ``kinds - 3`` more kinds of
    custom ops: every kind is unsupported."""
    nodes = [N("Sin", ["x"], ["a"], name="sin1"), N("Relu", ["a"], ["b"], name="ok"),
             N("Sin", ["b"], ["c"], name="sin2"), N("Hardmax", ["c"], ["d"], name="hm"),
             N("Fancy", ["d"], ["e"], name="fancy", domain="my.ops")]
    for i in range(kinds - 3):
        nodes.append(N(f"Op{i}", [nodes[-1].output[0]], [f"o{i}"], name=f"n{i}", domain="my.ops"))
    m = make_model(nodes, [("x", [1, 3, 4, 4])], [(nodes[-1].output[0], [1, 3, 4, 4])])
    m.opset_import.append(onnx.helper.make_opsetid("my.ops", 1))
    return m


@pytest.mark.parametrize("kinds", [3, 12])
def test_every_unsupported_op_kind_is_reported_in_one_line(cli, tmp_path, kinds):
    """One run names every unsupported kind (node count, first node) in one short line
    that points at `sqnxtc ops`; beyond eight kinds it says how many more."""
    p = tmp_path / "m.onnx"
    p.write_bytes(_many_unsupported(kinds).SerializeToString())
    r = cli("compile", str(p))
    assert r.exit_code == ExitCode.UNSUPPORTED
    line, = r.stderr.strip().splitlines()
    assert f"{kinds} unsupported op kinds: 'Sin' (2 nodes, first 'sin1'), 'Hardmax' (node 'hm'), " \
           "'my.ops.Fancy' (node 'fancy')" in line
    assert line.startswith("sqnxtc: error: ") and str(p) in line and "`sqnxtc ops`" in line
    if kinds > 8:
        assert f"and {kinds - 8} more kinds" in line and "'my.ops.Op5'" not in line
    assert len(line) < 600


def test_ops_lists_every_importable_op(cli):
    from sqnxt_compiler.frontend.onnx_import import LOWERINGS

    r = cli("ops")
    assert r.exit_code == 0
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert set(rows) == set(LOWERINGS)
    assert "sqnxt.conv" in rows["Conv"] and rows["Conv"].endswith("array")
    assert rows["Reshape"].endswith("free") and rows["MaxPool"].split()[1] == "sqnxt.maxpool"


def _three_outputs():
    """A feature extractor's outputs: an inner activation that is also read further on, the
    pooled head, and the input passed through."""
    rng = np.random.default_rng(3)
    return make_model([N("Conv", ["x", "w1"], ["r"], pads=[1, 1, 1, 1], name="c1"),
                       N("Relu", ["r"], ["a"], name="relu"), N("Conv", ["a", "w2"], ["b"], name="c2"),
                       N("GlobalAveragePool", ["b"], ["g"], name="gap")],
                      [("x", [1, 4, 12, 12])], [("a", [1, 8, 12, 12]), ("g", [1, 8, 1, 1]), ("x", [1, 4, 12, 12])],
                      inits=[("w1", rng.standard_normal((8, 4, 3, 3)).astype(np.float32)),
                             ("w2", rng.standard_normal((8, 8, 1, 1)).astype(np.float32))])


def test_a_model_with_several_outputs_compiles_checks_and_plans_each(cli, tmp_path):
    import json

    path = _write_model(_three_outputs)(tmp_path)
    for extra in ([], ["-t", "pe8x8", "--tiled"], ["-t", "pe16x16", "--tiled", "--precision", "int16"]):
        r = cli("check", path, *extra)
        assert r.exit_code == 0, r.output
        rows = [line.split()[0] for line in r.stdout.splitlines() if line.split() and line.split()[-1] == "ok"]
        assert rows == ["a", "g", "x"], r.stdout
    r = cli("compile", path, "-t", "pe16x16", "--emit", "schedule")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    homes = {t["name"]: (t["home"], t["reason"]) for t in doc["plan"]["tensors"]}
    # the graph's outputs leave through DRAM, even the one read again inside the network
    assert homes["c1"] == ("dram", "the graph output") and homes["gap"] == ("dram", "the graph output")
    r = cli("compile", path)
    assert r.exit_code == 0 and 'sqnxt.output(' in r.stdout and 'names = ["a", "g", "x"]' in r.stdout


@pytest.mark.parametrize("name,shown", [
    ("bad\nnode\r\tname", "node 'bad\\nnode\\r\\tname'"),
    ("n" * 100_000, "…"),
])
def test_hostile_node_names_keep_the_error_one_short_line(cli, tmp_path, name, shown):
    """A node name with line breaks is escaped, a huge one cut around an ellipsis: the
    error stays one line of bounded length (in the location and in the message)."""
    m = make_model([N("Hardmax", ["x"], ["y"], name=name)], [("x", [1, 3, 4, 4])], [("y", [1, 3, 4, 4])])
    p = tmp_path / "m.onnx"
    p.write_bytes(m.SerializeToString())
    r = cli("compile", str(p))
    assert r.exit_code == ExitCode.UNSUPPORTED
    _assert_one_line_error(r.stderr, [shown, "unsupported op 'Hardmax'"], "m.onnx")
    assert len(r.stderr) < 1500


@pytest.mark.parametrize("args", [["compile", "-t", "pe8x8", "--time-limit", "nan"],
                                  ["compile", "-t", "pe8x8", "--time-limit", "inf"],
                                  ["check", "--rtol", "nan"], ["check", "--atol", "inf"],
                                  ["check", "--seed", "-1"]])
def test_non_finite_or_negative_numbers_are_usage_errors(cli, tmp_path, args):
    path = _write_model(good_model)(tmp_path)
    r = cli(args[0], path, *args[1:])
    assert r.exit_code == ExitCode.USAGE, r.output
    assert "Traceback" not in r.output and args[-2] in r.stderr


def test_the_comparison_agrees_on_matching_nan_and_infinities():
    """A NaN where onnxruntime gives NaN, or the same infinity, agrees; one that differs
    (or a NaN on one side only) is a mismatch with an infinite error, never 'err 0'."""
    from sqnxt_compiler.reference.check import compare

    ref = np.array([1.0, np.nan, np.inf, -np.inf, 2.0])
    assert compare(ref.copy(), ref, 1e-4, 1e-5) == (0.0, 0.0, True)
    for bad in ([1.0, 0.0, np.inf, -np.inf, 2.0], [1.0, np.nan, -np.inf, -np.inf, 2.0],
                [np.nan, np.nan, np.inf, -np.inf, 2.0]):
        a, r, ok = compare(np.array(bad), ref, 1e-4, 1e-5)
        assert not ok and a == r == float("inf")
    a, _, ok = compare(np.array([1.5, np.nan, np.inf, -np.inf, 2.0]), ref, 1e-4, 1e-5)
    assert not ok and a == 0.5


def test_check_of_a_model_that_overflows_prints_no_numpy_warning(cli, tmp_path):
    """x * 1e38 overflows float32 to inf the same way in sqnxtc and onnxruntime (and on
    through sigmoid and a division): the check passes, and numpy's RuntimeWarning (with
    its install path) does not leak."""
    m = make_model([N("Mul", ["x", "big"], ["m"], name="scale"), N("Sigmoid", ["m"], ["s"], name="sig"),
                    N("Div", ["m", "s"], ["y"], name="div")],
                   [("x", [1, 3, 4, 4])], [("y", [1, 3, 4, 4])], [("big", np.float32(1e38))])
    p = tmp_path / "m.onnx"
    p.write_bytes(m.SerializeToString())
    r = cli("check", str(p))
    assert "RuntimeWarning" not in r.stderr and "site-packages" not in r.stderr, r.stderr
    assert r.exit_code == 0 and "PASS" in r.stdout, r.output


@pytest.mark.parametrize("args,piece,where", [
    (("compile", "m.onnx", "--time-limit", "nan"), "'nan' is not a finite number", "sqnxtc compile"),
    (("check", "m.onnx", "--rtol", "nan"), "'nan' is not a finite number", "sqnxtc check"),
    (("compile", "m.onnx", "--bogus"), "No such option '--bogus'", "sqnxtc compile"),
    (("compil", "m.onnx"), "No such command 'compil'", "sqnxtc"),
    (("zoo", "export", "1.0-SqNxt-23", "--seed", "-1", "-o", "x.onnx"), "-1 is not in the range", "sqnxtc zoo export"),
])
def test_command_line_errors_are_one_line_too(cli, args, piece, where):
    r = cli(*args)
    assert r.exit_code == int(ExitCode.USAGE)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("sqnxtc: error: "), r.stderr
    assert piece in r.stderr and r.stderr.rstrip().endswith(f"(try '{where} --help')"), r.stderr
    assert r.stdout == ""


def _commands(group, prefix=()):
    """Every command path of the CLI, groups included: ('compile',), ('zoo', 'list'), ..."""
    import click

    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_help_text_reads_as_prose(cli):
    """`sqnxtc CMD --help` for every command: exit 0, and no run of spaces inside the
    description (a docstring whose indentation leaked into the text: it did for every
    command whose docstring had more than one line and got the schedule flags' paragraph)."""
    from sqnxt_compiler.cli import main

    paths = list(_commands(main))
    assert ("compare",) in paths and ("sweep",) in paths
    for path in paths:
        r = cli(*path, "--help")
        assert r.exit_code == 0, (path, r.output)
        desc = r.stdout.split("Options:")[0]
        bad = [ln for ln in desc.splitlines() if "   " in ln.strip()]
        assert not bad, (path, bad)
