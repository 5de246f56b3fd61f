"""``python -m sqnxt_compiler``: the ``sqnxtc`` command, with its signal handling installed
before the command line is imported (as the console script does)."""
from .entry import run

run(prog_name="sqnxtc")
