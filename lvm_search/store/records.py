"""One validator for every record lvm-search reads: JSON state files, YAML space files and recipes,
and the trainer's settings.

``parse(tp, raw, where)`` checks a value parsed from JSON or YAML against a type annotation and
builds it: a dataclass (field by field, from a mapping), ``list[T]``, ``tuple[T, ...]`` (from a
list), ``dict[str, T]``, unions and ``Optional``, ``Literal`` choices, ``int``, ``float``, ``str``,
``bool`` (no integer here, whatever Python says), ``Any``, and the ``Inside`` and ``Weight`` rules
of the run records. A dataclass field may bound its number with
``field(default=0, metadata={"range": (0, MAX_SEED)})`` (either end None: unbounded), and a field
the program fills in (the file a record came from) is marked ``metadata=NOT_READ``: a file may not
set it. Every mistake is one ``UserError`` line naming the file (``where``) and the field, quoting
the value as ``errors.shown`` does.

What differs between the formats, the caller says: JSON records ignore keys they do not know (a
later version may add fields), take any float and name a nested field ``best: checkpoint``; YAML
files refuse unknown keys, want finite numbers and name it ``data.k``; a space file's number fields
(the bounds of a searched range, say) also take ``1e-4``, which YAML 1.1 reads as text (a float
needs a dot there), as the number its writer meant.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal, NewType

from ..errors import UserError, is_finite_number, shown

# Field types with a rule of their own: a path that stays inside the folder holding the record, and
# an ensemble weight (finite, >= 0).
Inside = NewType("Inside", str)
Weight = NewType("Weight", float)

# The metadata of a field the program fills in, never read from the file: a key of its name is unknown.
NOT_READ = types.MappingProxyType({"read": False})


class Mismatch(UserError):
    """A value of the wrong type or out of its range; ``expected`` says in words what would do, for
    a caller that words its own message (the trainer's ``batch_size expects an integer``)."""

    def __init__(self, message: str, expected: str):
        super().__init__(message)
        self.expected = expected

    def __reduce__(self):  # an error raised in a Ray worker is pickled back to the driver
        return type(self), (str(self), self.expected)


def _mismatch(here: str, expected: str, value, got: str | None = None) -> Mismatch:
    return Mismatch(f"{here}: expected {expected}, got {shown(value) if got is None else got}", expected)


@dataclass(frozen=True)
class _Rules:
    where: str  # the file (and line), first in every message
    unknown: str  # refuse or ignore keys that no field takes
    finite: bool  # floats must be finite
    float_text: bool  # a float may come as text ("1e-4")
    sep: str  # between a field and the record holding it, in messages

    def here(self, at: str) -> str:
        return f"{self.where}: {at}" if at else self.where


def parse(
    tp,
    raw,
    where: str,
    at: str = "",
    *,
    bounds: tuple | None = None,
    unknown: str = "refuse",
    finite: bool = True,
    float_text: bool = False,
    sep: str = ".",
):
    """``raw`` as type ``tp``, or a ``UserError`` naming ``where`` and the field. ``at`` is where
    ``raw`` lies inside the file (``resources``; "" for the whole file), ``bounds`` a (low, high) for a
    number given alone; the keywords are the format's rules (the module's docstring)."""
    if unknown not in ("refuse", "ignore"):
        raise ValueError(f"unknown={unknown!r}: refuse or ignore")
    return _parse(tp, raw, at, _Rules(where, unknown, finite, float_text, sep), bounds)


def parse_field(cls, name: str, raw, where: str, at: str | None = None, **rules):
    """``raw`` as field ``name`` of dataclass ``cls`` declares it (its type and range): one setting
    given alone, such as a flag that overrides a file's value. ``at`` defaults to the field's name."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return parse(
        _hints(cls)[name], raw, where, name if at is None else at, bounds=f.metadata.get("range"), **rules
    )


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _parse(tp, value, at: str, rules: _Rules, bounds=None):
    if tp is Any:
        return value
    if tp is Inside:
        return _inside(value, at, rules)
    if tp is Weight:
        return _weight(value, at, rules)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _union(tp, value, at, rules, bounds)
    if origin is Literal:
        return _choice(typing.get_args(tp), value, at, rules)
    if dataclasses.is_dataclass(tp):
        return _record(tp, value, at, rules)
    if tp in (list, tuple) or origin in (list, tuple):
        return _sequence(tp, value, at, rules, bounds)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise _mismatch(rules.here(at), "a mapping", value)
        args = typing.get_args(tp)
        if not args:
            return value
        return {k: _parse(args[1], v, f"{at}.{k}" if at else str(k), rules, bounds) for k, v in value.items()}
    if tp in (int, float):
        return _number(tp, value, at, rules, bounds)
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise _mismatch(rules.here(at), "text" if tp is str else "true or false", value)
        return value
    raise TypeError(f"no rule for {tp}")  # a record declared with a type this reader lacks


def _record(cls, value, at: str, rules: _Rules):
    here = rules.here(at)
    if not isinstance(value, dict):
        raise _mismatch(here, "a mapping", value)
    fields = [f for f in dataclasses.fields(cls) if f.metadata.get("read", True)]
    allowed = {f.name for f in fields}
    unknown = set(map(str, value)) - allowed
    if unknown and rules.unknown == "refuse":
        raise UserError(f"{here}: unknown key(s) {sorted(unknown)} (allowed: {', '.join(sorted(allowed))})")
    hints, kwargs = _hints(cls), {}
    for f in fields:
        if f.name in value:
            path = f"{at}{rules.sep}{f.name}" if at else f.name
            kwargs[f.name] = _parse(hints[f.name], value[f.name], path, rules, f.metadata.get("range"))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise UserError(f"{here}: missing field '{f.name}'")
    return cls(**kwargs)


def _union(tp, value, at: str, rules: _Rules, bounds):
    options = typing.get_args(tp)
    if value is None and type(None) in options:
        return None
    words = tuple(w for o in options if typing.get_origin(o) is Literal for w in typing.get_args(o))
    if any(_same(value, w) for w in words):
        return value
    others = [o for o in options if o is not type(None) and typing.get_origin(o) is not Literal]
    if not others:
        return _choice(words, value, at, rules)
    if words:  # the type's message, with the words beside the field: "top_k (or all): expected ..."
        at = f"{at} (or {' or '.join(map(str, words))})".strip()
    errors = []
    for option in others:
        try:
            return _parse(option, value, at, rules, bounds)
        except UserError as e:
            errors.append(e)
    if words and isinstance(errors[0], Mismatch):  # the caller's own wording names the words too
        raise Mismatch(str(errors[0]), f"{errors[0].expected}, or {' or '.join(map(str, words))}")
    raise errors[0]


def _same(value, choice) -> bool:
    return type(value) is type(choice) and value == choice  # True is not the choice 1


def _choice(choices: tuple, value, at: str, rules: _Rules):
    if not any(_same(value, c) for c in choices):
        raise _mismatch(rules.here(at), f"one of {choices!r}", value)
    return value


def _sequence(tp, value, at: str, rules: _Rules, bounds):
    if not isinstance(value, (list, tuple)):
        raise _mismatch(rules.here(at), "a list", value)
    args = typing.get_args(tp)
    is_tuple = tp is tuple or typing.get_origin(tp) is tuple
    if is_tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
        raise TypeError(f"no rule for {tp}: a record's tuple is tuple[T, ...]")
    item = args[0] if args else Any
    items = [_parse(item, v, f"{at}[{i}]", rules, bounds) for i, v in enumerate(value)]
    return tuple(items) if is_tuple else items


def _number(tp, value, at: str, rules: _Rules, bounds):
    here = rules.here(at)
    if tp is float and rules.float_text and isinstance(value, str):  # YAML 1.1 reads 1e-4 as text
        try:
            value = float(value)
        except ValueError:
            pass
    if tp is int:
        ok, words = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif rules.finite:
        ok, words = is_finite_number(value), "a finite number"
    else:
        ok, words = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        if ok and isinstance(value, int) and not is_finite_number(value):  # JSON allows 400-digit integers
            raise _mismatch(
                here, "a number a float can hold", value, got=f"an integer of {len(str(value))} digits"
            )
    low, high = bounds or (None, None)
    # The message names the bound that was broken: below low (or no number at all), or above high.
    if not ok or (low is not None and value < low):
        raise _mismatch(here, words if low is None else f"{words} >= {low}", value)
    if high is not None and value > high:
        within = f"<= {high:,}" if low is None else f"from {low} to {high:,}"
        raise _mismatch(here, f"{words} {within}", value)
    return float(value) if tp is float else value


def _inside(value, at: str, rules: _Rules) -> str:
    text = _parse(str, value, at, rules)
    if not text or PurePath(text).is_absolute() or ".." in PurePath(text).parts:
        raise _mismatch(rules.here(at), "a path inside its folder", text)
    return text


def _weight(value, at: str, rules: _Rules) -> float:
    weight = _parse(float, value, at, rules)
    if not (math.isfinite(weight) and weight >= 0):
        raise _mismatch(rules.here(at), "a finite weight >= 0", weight)
    return weight
