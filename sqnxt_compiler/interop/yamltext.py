"""A deterministic YAML writer for the export's files, and a reader of what it writes.

The export's files are plain data: mappings (keys in the order given), sequences, and
scalars (int, float, bool, None, str), with comments.  :func:`dump` writes them in one
fixed style (block mappings and sequences, flow sequences for short lists of scalars,
strings double-quoted unless they are plain words), so the same data gives the same bytes.
:func:`load` reads that subset back (the tests read the files with it: PyYAML is not a
dependency of sqnxtc; ZigZag, which reads them with PyYAML, is the other reader).

A comment is :class:`Comment` text placed as a mapping key (its value is ignored) or as a
sequence item: it is written as ``# text`` lines at that place.
"""
from __future__ import annotations

import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


class Comment(str):
    """Comment text: written as ``# ...`` lines (a mapping key or a sequence item)."""

    _n = 0

    def __new__(cls, text: str):
        obj = super().__new__(cls, text)
        Comment._n += 1
        obj._id = Comment._n  # distinct keys in one dict, whatever their text
        return obj

    def __hash__(self):
        return hash(("comment", self._id))

    def __eq__(self, other):
        return self is other


class Tagged:
    """A mapping written with a YAML tag (``- !Component`` then its keys): Timeloop's
    architecture nodes.  Read back as the mapping with the tag under the key ``"!"``."""

    def __init__(self, tag: str, data: dict):
        self.tag, self.data = tag, data


def scalar(v: Any) -> str:
    """One scalar in the writer's style."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"not a finite number: {v!r}")
        return repr(float(v))
    if isinstance(v, str):
        if _PLAIN.match(v) and v.lower() not in _RESERVED:
            return v
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    raise TypeError(f"cannot write {type(v).__name__} as YAML")


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str)) and not isinstance(v, Comment)


def _comment_lines(text: str, pad: str) -> list[str]:
    return [f"{pad}# {line}".rstrip() for line in str(text).split("\n")]


def _flow(items: list) -> str:
    return "[" + ", ".join(scalar(x) for x in items) + "]"


def _block(v: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(v, dict):
        for k, val in v.items():
            if isinstance(k, Comment):
                out += _comment_lines(k, pad)
                continue
            key = scalar(k)
            if _is_scalar(val):
                out.append(f"{pad}{key}: {scalar(val)}")
            elif isinstance(val, list) and all(_is_scalar(x) for x in val):
                out.append(f"{pad}{key}: {_flow(val)}")
            elif isinstance(val, (dict, list)) and not val:
                out.append(f"{pad}{key}: {'{}' if isinstance(val, dict) else '[]'}")
            else:
                out.append(f"{pad}{key}:")
                out += _block(val, indent + 2)
        return out
    if isinstance(v, list):
        for item in v:
            if isinstance(item, Comment):
                out += _comment_lines(item, pad)
            elif _is_scalar(item):
                out.append(f"{pad}- {scalar(item)}")
            elif isinstance(item, list) and all(_is_scalar(x) for x in item):
                out.append(f"{pad}- {_flow(item)}")
            elif isinstance(item, Tagged):
                out.append(f"{pad}- !{item.tag}")
                out += _block(item.data, indent + 2)
            else:
                sub = _block(item, indent + 2)
                first = next(i for i, line in enumerate(sub) if not line.lstrip().startswith("#"))
                out += sub[:first]
                out.append(f"{pad}- {sub[first][indent + 2:]}")
                out += sub[first + 1:]
        return out
    raise TypeError(f"cannot write {type(v).__name__} as a YAML block")


def dump(data: Any, header: str | None = None) -> str:
    """``data`` (a mapping or a sequence) as YAML text, ``header`` as comment lines first."""
    lines = _comment_lines(header, "") if header else []
    lines += _block(data, 0)
    return "\n".join(lines) + "\n"


# --- the reader -------------------------------------------------------------------------

class YamlSubsetError(ValueError):
    """Text outside the subset :func:`dump` writes (line number, reason)."""


def _strip_comment(line: str) -> str:
    out, quoted, i = [], False, 0
    while i < len(line):
        c = line[i]
        if quoted and c == "\\":
            out.append(line[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "#" and not quoted and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(c)
        i += 1
    return "".join(out).rstrip()


def parse_scalar(text: str, where: str = "") -> Any:
    t = text.strip()
    if t.startswith('"'):
        if len(t) < 2 or not t.endswith('"'):
            raise YamlSubsetError(f"{where}unterminated string {t!r}")
        body, out, i = t[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                out.append({"n": "\n", '"': '"', "\\": "\\"}.get(body[i + 1], body[i + 1]))
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if t == "null" or t == "~" or t == "":
        return None
    if t == "true":
        return True
    if t == "false":
        return False
    if re.fullmatch(r"[-+]?\d+", t):
        return int(t)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", t):
        return float(t)
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [parse_scalar(x, where) for x in _split_flow(inner)] if inner else []
    if t == "{}":
        return {}
    return t


def _split_flow(text: str) -> list[str]:
    parts, cur, quoted = [], [], False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _key_split(body: str) -> tuple[str, str] | None:
    """``key: rest`` of a mapping line (the key plain or quoted), or None."""
    if body.startswith('"'):
        m = re.match(r'^("(?:[^"\\]|\\.)*")\s*:(\s+|$)(.*)$', body)
        return (m.group(1), m.group(3)) if m else None
    m = re.match(r"^([^\s\"\[\]{},#:][^:#]*?)\s*:(\s+|$)(.*)$", body)
    return (m.group(1), m.group(3)) if m else None


def load(text: str) -> Any:
    """Parse the subset of YAML that :func:`dump` writes (module doc)."""
    lines = []
    for no, raw in enumerate(text.split("\n"), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlSubsetError(f"line {no}: tab in indentation")
        s = _strip_comment(raw)
        if s.strip():
            lines.append((no, len(s) - len(s.lstrip()), s.strip()))
    pos = 0

    def node(indent: int) -> Any:
        nonlocal pos
        no, ind, body = lines[pos]
        if ind != indent:
            raise YamlSubsetError(f"line {no}: indentation {ind}, expected {indent}")
        if body.startswith("- ") or body == "-":
            seq = []
            while pos < len(lines) and lines[pos][1] == indent and (lines[pos][2].startswith("- ")
                                                                    or lines[pos][2] == "-"):
                no, _, body = lines[pos]
                rest = body[2:].strip()
                if rest.startswith("!") and " " not in rest:   # a tagged mapping on the next lines
                    pos += 1
                    item = node(lines[pos][1]) if pos < len(lines) and lines[pos][1] > indent else {}
                    seq.append({"!": rest[1:], **item})
                elif not rest:
                    pos += 1
                    seq.append(node(lines[pos][1]))
                elif rest.startswith("- ") or _key_split(rest) is not None:
                    # a sequence or a mapping starting on the dash's line
                    lines[pos] = (no, indent + 2, rest)
                    seq.append(node(indent + 2))
                else:
                    seq.append(parse_scalar(rest, f"line {no}: "))
                    pos += 1
            return seq
        out: dict = {}
        while pos < len(lines) and lines[pos][1] == indent:
            no, _, body = lines[pos]
            kv = _key_split(body)
            if kv is None:
                raise YamlSubsetError(f"line {no}: expected 'key: value', got {body!r}")
            key = parse_scalar(kv[0], f"line {no}: ")
            if key in out:
                raise YamlSubsetError(f"line {no}: duplicate key {key!r}")
            pos += 1
            if kv[1].strip():
                out[key] = parse_scalar(kv[1], f"line {no}: ")
            elif pos < len(lines) and lines[pos][1] > indent:
                out[key] = node(lines[pos][1])
            elif pos < len(lines) and lines[pos][1] == indent and lines[pos][2].startswith("- "):
                out[key] = node(indent)  # a sequence at the key's own indentation
            else:
                out[key] = None
        return out

    if not lines:
        return None
    result = node(0)
    if pos != len(lines):
        raise YamlSubsetError(f"line {lines[pos][0]}: unexpected indentation")
    return result
