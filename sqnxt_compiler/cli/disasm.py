"""``sqnxtc disasm`` and ``sqnxtc asm``: a program's binary form to its text and back
(docs/isa.md)."""
from __future__ import annotations

import click

from .paths import check_output_file


@click.command("disasm")
@click.argument("program", type=click.Path(dir_okay=True))
@click.option("-o", "--output", "output", default="-", show_default=True, type=click.Path(),
              help="Where to write the text ('-': standard output).")
def disasm_cmd(program: str, output: str) -> None:
    """Disassemble PROGRAM (a .bin program file) to its text form.

    The text is canonical: `sqnxtc asm` of it gives back the same bytes.  A corrupt,
    truncated or foreign file is a one-line error naming the byte offset (exit 3)."""
    from ..outputs import write_file
    from ..program import format_program, read_program

    if output != "-":
        check_output_file(output)
    text = format_program(read_program(program))
    write_file(output, text)


@click.command("asm")
@click.argument("source", type=click.Path(dir_okay=True))
@click.option("-o", "--output", "output", required=True, type=click.Path(),
              help="Where to write the binary program ('-': standard output).")
def asm_cmd(source: str, output: str) -> None:
    """Assemble SOURCE (a program's text form) into its binary form.

    A malformed line is a one-line error naming the line (exit 3); nothing is written."""
    from ..outputs import write_file
    from ..program import encode, read_text

    if output != "-":
        check_output_file(output)
    write_file(output, encode(read_text(source)))
