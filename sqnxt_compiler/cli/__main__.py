"""``python -m sqnxt_compiler.cli``: the ``sqnxtc`` command.  Python imports this package
(the whole command line) before running this file, so an interrupt during that import is
Python's; ``python -m sqnxt_compiler`` installs the handlers first."""
from ..entry import run

run(prog_name="sqnxtc")
