"""Where a value's words live: its storage.

A view (the ``view`` trait) passes its operand's words on (:func:`~.core.view_origin`).  A
concat written in place (the ``in_place_parts`` trait, ``sqnxt.concat_view``) is its parts'
words one after the other, so a part's words are a slice of the concat's, and a concat in
place that is itself a part of another is a slice of that one's: the **root** of a value
is the outermost concat in place its words belong to (or its view origin when it belongs
to none), and its **offset** the word where its slice starts in the root.  Readers of a
part, of an inner concat or of the root all read the root's words (a slice of them).
"""
from __future__ import annotations

from .core import Op, Value, part_offsets, view_origin
from .graph import Graph


def containing(graph: Graph, v: Value) -> tuple[Op, int] | None:
    """The concat in place whose part ``v``'s words (through views) are, with the part's
    word offset in it; None when they are no part (the ``concat-in-place`` pass makes a
    value a part of at most one)."""
    o = view_origin(v)
    for user in word_readers(graph, o):
        if user.has_trait("in_place_parts"):
            for p, off in part_offsets(user):
                if view_origin(p) is o:
                    return user, off
    return None


def storage(graph: Graph, v: Value) -> tuple[Value, int]:
    """(root, offset) of ``v`` (module doc): its view origin when no concat in place holds
    it, else the outermost such concat's result and the word where ``v``'s slice starts."""
    o, off = view_origin(v), 0
    while True:
        c = containing(graph, o)
        if c is None:
            return o, off
        cv, at = c
        o, off = cv.result, off + at


def word_readers(graph: Graph, v: Value) -> list[Op]:
    """The ops that read ``v``'s words, through views (a view's reader reads its origin's
    words); an op that reads them twice is listed twice; an op that reads only the static
    shape (``reads_shape_only``) is no reader."""
    out = []
    for user, _port in graph.uses(v):
        if user.has_trait("reads_shape_only"):
            continue
        if user.has_trait("view"):
            out.extend(word_readers(graph, user.result))
        else:
            out.append(user)
    return out
