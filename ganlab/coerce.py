"""One coercer for every value a user writes: command-line flags, TOML files (``--config``,
study definitions), ``config.json`` of a run, and trick parameters (``--trick NAME:key=value``).

:func:`coerce` turns a value into the declared type or raises :class:`BadValue` with what was
expected; :func:`check_bounds` checks a coerced number or choice against its declared range.
Callers put the place (``--size``, ``--config my.toml: 'size'``, ``--trick r1:gamma``) in front
of the message, so every layer refuses the same things with the same words.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

__all__ = ["BadValue", "check_bounds", "coerce", "describe_bounds", "type_name", "unwrap_optional"]

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class BadValue(ValueError):
    """A value that does not fit its declared type or range; ``str()`` says what is allowed."""


def unwrap_optional(typ: Any) -> tuple[Any, bool]:
    """``int | None`` -> ``(int, True)``; ``int`` -> ``(int, False)``."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        inner = [a for a in args if a is not type(None)]
        return inner[0], type(None) in args
    return typ, False


def type_name(typ: Any) -> str:
    return getattr(unwrap_optional(typ)[0], "__name__", str(typ))


def coerce(value: Any, typ: Any, *, text: bool = False) -> Any:
    """``value`` as ``typ`` (bool, int, float, str, or ``X | None``); other types pass unchanged.

    ``text=True`` also parses strings (``"0.05"``, ``"true"``), as the ``key=value`` of a
    ``--trick`` is written; typed sources (TOML, JSON) give numbers as numbers. A bool is never
    taken for a number, and a float with a fractional part never for a whole number.
    """
    typ, optional = unwrap_optional(typ)
    if value is None:
        if optional:
            return None
        raise BadValue(f"expected {type_name(typ)}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
    elif typ is int:
        if isinstance(value, str) and text:
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise BadValue(f"expected {type_name(typ)}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif typ is float:
        if isinstance(value, str) and text:
            try:
                return float(value)
            except ValueError:
                raise BadValue(f"expected {type_name(typ)}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
        if text and not isinstance(value, (dict, list, tuple)):
            return str(value)
    else:
        return value
    raise BadValue(f"expected {type_name(typ)}")


def describe_bounds(typ: Any, low: float | None = None, high: float | None = None, choices: tuple | None = None) -> str:
    """``[0, 1]``, ``a|b|c`` or ``true|false``: what ``ganlab tricks`` and errors print."""
    if choices is not None:
        return "|".join(str(c) for c in choices)
    if unwrap_optional(typ)[0] is bool:
        return "true|false"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"[{lo}, {hi}]"


def check_bounds(value: Any, typ: Any, low: float | None = None, high: float | None = None,
                 choices: tuple | None = None) -> Any:
    """Raise :class:`BadValue` when a coerced value is outside its range or choices."""
    if value is None:
        return value
    base, _ = unwrap_optional(typ)
    if base in (int, float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise BadValue(f"must be a finite number in {describe_bounds(typ, low, high)}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise BadValue(f"out of range; allowed: {describe_bounds(typ, low, high)}")
    if choices is not None and value not in choices:
        raise BadValue(f"allowed values are {describe_bounds(typ, choices=choices)}")
    return value
