"""Pass options, each declared once (xDSL's model: ``xdsl/utils/arg_spec.py``).

A pass's options are the fields of its frozen ``Options`` dataclass.  A field is the whole
declaration of its option: the annotation is its type (bool, int, float or str), the
default its default, and :func:`option` states the rest in the field's metadata:

============  =====================================================================
``choices``   the values a str option may take
``min``       the least value of a number (a float option is always finite)
``unit``      a float's unit, in the messages ("seconds")
``note``      what a bound means, in the messages ("0: one per CPU")
``recorded``  False: left out of the recorded pipeline (``Pass.spec``): it changes
              how fast, never what
``axis``      the key under which a sweep spec lists the values it varies the option
              over (``objectives``); a recorded option without one is the same for
              every point of a sweep (``[sweep] time_limit = 10``)
``short``     a one-letter flag beside ``--KEY`` (``-j``)
``directory`` a str option that names a directory (its flag refuses a file)
``help``      the flag's help, one sentence without its final period
============  =====================================================================

A plain field (``level: int = 1``, or ``field(default=..., metadata={"choices": ...})``)
is an option too, with the metadata it has.  :func:`options_of` reads the declaration
(:class:`Option`, checked when read: a default that its own checks refuse is a bug), and
everything that accepts an option's value derives from it:

* the pipeline parser (``schedule{time-limit=5}``): :meth:`Option.parse`, text to value;
* the options' construction: a :class:`PassOptions` dataclass checks and normalizes every
  value in ``__post_init__`` (:meth:`Option.check`: ``time_limit=5`` is ``5.0``), so that
  options built in Python, by the parser or by the command line's flags
  (``Pass.with_options``) meet the same rules;
* the command line's flags (``--time-limit``): ``sqnxt_compiler.cli.options.flag``;
* the sweep spec's ``[sweep]`` table: :meth:`Option.from_toml`.

The names: ``time_limit`` is the field, ``time-limit`` its key (pipeline text, the flag
``--time-limit``); the sweep spec's key is the field's name.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from ..diagnostics import UsageError

_TYPES = {"bool": bool, "int": int, "float": float, "str": str}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def option(default: Any, *, help: str = "", choices: tuple[str, ...] | None = None,  # noqa: A002
           min: float | None = None, unit: str = "", note: str = "", recorded: bool = True,  # noqa: A002
           axis: str | None = None, short: str | None = None, directory: bool = False) -> Any:
    """The dataclass field of an option (module doc: what each argument declares)."""
    meta: dict[str, Any] = {"help": help, "recorded": recorded}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if min is not None:
        meta["min"] = min
    meta.update({k: v for k, v in (("unit", unit), ("note", note), ("axis", axis), ("short", short),
                                   ("directory", directory)) if v})
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Option:
    """One option as declared (:func:`option`); see the module doc."""

    name: str                       # the field: time_limit
    type: type                      # bool | int | float | str
    default: Any
    help: str = ""
    choices: tuple[str, ...] | None = None
    min: float | None = None
    unit: str = ""
    note: str = ""
    recorded: bool = True
    axis: str | None = None
    short: str | None = None
    directory: bool = False

    @property
    def key(self) -> str:
        """The option in pipeline text and as a flag (without ``--``): ``time-limit``."""
        return self.name.replace("_", "-")

    @property
    def flag(self) -> str:
        return "--" + self.key

    @property
    def default_text(self) -> str | None:
        """The default as the help shows it (``0``, ``cycles``), None for an off flag or an
        empty string (nothing to show)."""
        if self.type is bool or self.default == "":
            return None
        return f"{self.default:g}" if self.type is float else str(self.default)

    # ---------------------------------------------------------------- the rules
    def bound(self) -> str:
        """What a number must be, for the messages: ``an integer >= 0 (0: one per CPU)``,
        ``>= 0 seconds``."""
        if self.type is int:
            text = "an integer" + (f" >= {self.min:g}" if self.min is not None else "")
        elif self.min is not None:
            text = f">= {self.min:g}" + (f" {self.unit}" if self.unit else "")
        else:
            text = "a finite number" + (f" of {self.unit}" if self.unit else "")
        return text + (f" ({self.note})" if self.note else "")

    def _in_range(self, v) -> bool:
        if self.type is float and not math.isfinite(v):
            return False
        return self.min is None or v >= self.min

    def check(self, pass_name: str, value: Any) -> Any:
        """``value`` (a Python value) checked against the declaration and normalized (a
        float option's value is a float); a UsageError names the pass and the option (by
        its key; a value of the wrong type for a bool or float, by its field name, as the
        pipeline parser's messages always have)."""
        where = f"pass '{pass_name}': option"
        if self.type is bool:
            if not isinstance(value, bool):
                raise UsageError(f"{where} '{self.name}' expects bool, got {value!r}")
            return value
        if self.type is float:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise UsageError(f"{where} '{self.name}' expects float, got {value!r}") from None
        elif self.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"{where} '{self.key}' must be {self.bound()}, got {value!r}")
        if self.type in (int, float):
            if not self._in_range(value):
                raise UsageError(f"{where} '{self.key}' must be {self.bound()}, got {value!r}")
            return value
        if self.choices and value not in self.choices:
            got = f"'{value}'" if isinstance(value, str) else repr(value)
            raise UsageError(f"{where} '{self.key}' must be one of {', '.join(self.choices)}, got {got}")
        return value

    def parse(self, pass_name: str, raw: str) -> Any:
        """Pipeline text (``edp``, ``5``, ``true``) to the option's value, checked
        (:meth:`check`); a UsageError names the pass and the option.  Booleans: 1, true,
        yes, on / 0, false, no, off (any case)."""
        raw = raw.strip()
        try:
            if self.type is bool:
                if raw.lower() in _TRUE:
                    return True
                if raw.lower() in _FALSE:
                    return False
                raise ValueError
            value = self.type(raw)
        except ValueError:
            raise UsageError(f"pass '{pass_name}': option '{self.name}' expects {self.type.__name__}, "
                             f"got '{raw}'") from None
        return self.check(pass_name, value)

    def from_toml(self, value: Any, key: str, where: str) -> Any:
        """A TOML value (a sweep spec's ``[sweep]`` entry, named ``key`` in the messages, in
        the file ``where``) checked against the declaration: the values the flag and the
        pipeline text accept.  A float option's value is a float."""
        def bad(must: str):
            return UsageError(f"'{key}' must be {must}, got {value!r}", where)

        if self.type is bool:
            if not isinstance(value, bool):
                raise bad("true or false")
            return value
        if self.type in (int, float):
            kinds = (int,) if self.type is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not self._in_range(value):
                if self.type is int:
                    raise bad(self.bound())
                unit = f" of {self.unit}" if self.unit else ""
                raise bad(f"a number{unit} >= {self.min:g}" if self.min is not None else f"a finite number{unit}")
            return self.type(value)
        if self.choices:
            if value not in self.choices:
                raise bad(" or ".join(f'"{c}"' for c in self.choices))
            return value
        if not isinstance(value, str):
            raise bad("a string")
        return value


def _declared(cls: type, f: dataclasses.Field, hints: dict) -> Option:
    typ = hints.get(f.name, f.type)
    if isinstance(typ, str):
        typ = _TYPES.get(typ, typ)
    if typ not in (bool, int, float, str):
        raise TypeError(f"{cls.__name__}.{f.name}: an option is a bool, int, float or str, not {typ!r}")
    if f.default is dataclasses.MISSING:
        raise TypeError(f"{cls.__name__}.{f.name}: an option needs a default")
    m = f.metadata
    o = Option(f.name, typ, f.default, help=m.get("help", ""), choices=m.get("choices"), min=m.get("min"),
               unit=m.get("unit", ""), note=m.get("note", ""), recorded=m.get("recorded", True),
               axis=m.get("axis"), short=m.get("short"), directory=m.get("directory", False))
    if o.choices is not None and typ is not str:
        raise TypeError(f"{cls.__name__}.{f.name}: only a str option has choices")
    if o.min is not None and typ not in (int, float):
        raise TypeError(f"{cls.__name__}.{f.name}: only a number has a least value")
    o.check(cls.__name__, o.default)   # a default its own rules refuse: a bug in the declaration
    return o


@functools.cache
def options_of(cls: type) -> tuple[Option, ...]:
    """The options of an ``Options`` dataclass, in declaration order (checked: module doc)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - annotations Python cannot resolve: read them as written
        hints = {}
    return tuple(_declared(cls, f, hints) for f in dataclasses.fields(cls))


class PassOptions:
    """Base of a pass's ``Options`` dataclass whose construction checks and normalizes every
    value against its declaration (:meth:`Option.check`).  ``pass_name`` (the pass's
    ``name``, set by :class:`~.pass_base.Pass` when the pass class declares these
    options) names the pass in the messages.  A subclass with a ``__post_init__`` of its
    own calls this one first."""

    pass_name: ClassVar[str] = ""

    def __post_init__(self):
        for o in options_of(type(self)):
            object.__setattr__(self, o.name, o.check(self.pass_name, getattr(self, o.name)))
