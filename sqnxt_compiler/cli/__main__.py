"""``python -m sqnxt_compiler.cli``: the ``sqnxtc`` command."""
from . import main

main(prog_name="sqnxtc")
