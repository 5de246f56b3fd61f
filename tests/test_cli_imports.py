"""Imports that match the command (issue 27): the command line's start-up loads neither
onnx nor onnxruntime (nor matplotlib, Dask): they come with the commands that read a model,
run a reference, plot or sweep.  Each check is a fresh interpreter, so no module imported
by another test can hide a regression."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("onnx", "onnxruntime", "matplotlib", "dask", "distributed")


def _loaded_after(code: str) -> set[str]:
    """The heavy modules loaded once ``code`` ran (a fresh interpreter; the module list is
    the last line of stdout, after whatever the code printed)."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n' + ' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout.splitlines()[-1].split()
    return {m for m in HEAVY if m in out}


def test_the_cli_and_the_driver_import_no_model_library():
    assert _loaded_after("import sqnxt_compiler.cli, sqnxt_compiler.driver") == set()


def test_help_and_targets_list_run_without_them():
    code = ("import sys\nfrom sqnxt_compiler.cli import main\n"
            "for args in (['--help'], ['targets', 'list']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code in (0, None), e.code\n")
    assert _loaded_after(code) == set()


def test_a_compile_loads_onnx_but_not_the_reference():
    code = ("from sqnxt_compiler import driver\n"
            "from sqnxt_compiler.targets import load_target\n"
            "driver.compile('zoo:1.0-SqNxt-23', target=load_target('pe16x16'), schedule={'jobs': 1})\n")
    assert _loaded_after(code) == {"onnx"}


def test_no_graph_library_before_a_graph_is_built():
    """networkx comes with the first IR graph (ir/graph.py imports it then): the command
    line, the driver, --help and targets list never load it."""
    code = ("import sys\nimport sqnxt_compiler.cli, sqnxt_compiler.driver\nfrom sqnxt_compiler.cli import main\n"
            "for args in (['--help'], ['targets', 'list']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code in (0, None), e.code\n"
            "assert 'networkx' not in sys.modules\n"
            "from sqnxt_compiler.ir.graph import Graph\nGraph()\nassert 'networkx' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
