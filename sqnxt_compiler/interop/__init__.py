"""Exports of a compiled network for other tools (docs/interop.md)."""
