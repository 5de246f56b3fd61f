"""``python -m sqnxt_compiler.cli``: the ``sqnxtc`` command (with its signal handling)."""
from ..entry import run

run(prog_name="sqnxtc")
