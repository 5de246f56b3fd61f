"""Programs: the accelerator's instruction stream (``docs/isa.md``).

``isa`` declares every record (instructions and layer descriptors) once, with the field
widths and ranges; ``encoding`` is the binary form (header, checksum), ``asm`` the text
form.  ``lower`` lowers a scheduled (and planned) graph to a program over the DRAM layout
of ``layout``; ``verify`` checks a lowered network (boxes, buffer regions, tokens, the cost
model's transfer counts).  The simulators build on these.
"""
from __future__ import annotations

from .asm import format_program, parse_program, read_text
from .encoding import decode, encode, read_program
from .isa import (CLASSES, INSTRUCTIONS, RECORDS, Compute, Finish, Layer, Load, Program, Store, Sync,
                  token_balance, verify_fields, verify_program)
from .layout import ALIGN, DramLayout, Region, dram_layout
from .lower import Lowered, UnsupportedLowering, lower
from .verify import verify_lowered

__all__ = ["CLASSES", "INSTRUCTIONS", "RECORDS", "Compute", "Finish", "Layer", "Load", "Program",
           "Store", "Sync", "decode", "encode", "format_program", "parse_program", "read_program",
           "read_text", "token_balance", "verify_fields", "verify_program", "ALIGN", "DramLayout", "Region",
           "dram_layout", "Lowered", "UnsupportedLowering", "lower", "verify_lowered"]
