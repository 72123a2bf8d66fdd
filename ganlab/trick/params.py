"""A trick's typed parameters: how a trick declares them (:func:`param`, :func:`above`) and how
ganlab reads the declaration (:class:`ParamInfo`, :func:`param_infos`, :func:`coerce_param`).

One declaration serves ``ganlab tricks``, ``--trick NAME:key=value`` and the study's search
space. Plain Python: importing this module loads no library.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from ganlab.coerce import BadValue, check_bounds, coerce, describe_bounds
from ganlab.errors import UsageError

__all__ = ["Above", "ParamInfo", "above", "coerce_param", "param", "param_infos"]


@dataclass(frozen=True)
class Above:
    """A condition of ``active_if``: the controlling parameter is greater than ``threshold``."""

    threshold: float

    def __call__(self, value: Any) -> bool:
        return value > self.threshold

    def __str__(self) -> str:
        return f"> {self.threshold:g}"


def above(threshold: float) -> Above:
    """For ``active_if``: the parameter acts only while the controlling one is greater than
    ``threshold`` (``active_if={"k": above(1)}``)."""
    return Above(threshold)


def param(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    log: bool = False,
    search: tuple | None = None,
    help: str = "",
    active_if: Mapping[str, Any] | None = None,
) -> Any:
    """A trick parameter: its default, the values it may take and the range a study searches.

    ``low``/``high`` bound the valid values (inclusive); ``choices`` lists them for categorical
    parameters. ``search`` narrows the range a study samples (defaults to ``(low, high)`` or
    ``choices``; ``()`` keeps the parameter out of searches); ``log`` asks for log-uniform
    sampling.

    ``active_if`` says when the parameter acts at all, as conditions on other parameters of the
    same trick, all of which must hold: ``{"two_sided": True}`` (equal to a value),
    ``{"favour": ("d", "g")}`` (one of several values), ``{"k": above(1)}`` (greater than a
    number). A study draws the parameter only where its conditions hold, so no trial carries a
    value that does nothing; ``ganlab tricks NAME`` prints the conditions. A controlling
    parameter must itself be unconditional.
    """
    meta = {"low": low, "high": high, "choices": choices, "log": log, "search": search, "help": help,
            "active_if": dict(active_if or {})}
    return field(default=default, metadata={"ganlab": meta})


def _key(name: str) -> str:
    return name[:-1] if name.endswith("_") else name


def _matches(condition: Any, value: Any) -> bool:
    if isinstance(condition, Above):
        return condition(value)
    if isinstance(condition, (tuple, list, frozenset, set)):
        return value in condition
    return value == condition


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _describe(key: str, condition: Any) -> str:
    if isinstance(condition, Above):
        return f"{key} {condition}"
    if isinstance(condition, (tuple, list, frozenset, set)):
        return f"{key} in {'|'.join(_show(v) for v in condition)}"
    return f"{key} = {_show(condition)}"


@dataclass(frozen=True)
class ParamInfo:
    """One declared parameter, as ganlab reads it (the command line, the study, ``ganlab tricks``)."""

    name: str
    type: type
    default: Any
    low: float | None
    high: float | None
    choices: tuple | None
    log: bool
    search: tuple | None
    help: str
    active_if: tuple[tuple[str, Any], ...] = ()  # (controlling parameter's key, condition)

    @property
    def key(self) -> str:
        """The name on the command line: the field name without the trailing underscore that
        escapes a Python keyword (field ``lambda_`` is given as ``lambda=10``)."""
        return _key(self.name)

    def search_space(self) -> tuple | None:
        """``("float"|"int", lo, hi, log)`` or ``("categorical", choices)``, or None if fixed."""
        if self.search is not None and len(self.search) == 0:
            return None
        if self.search is not None and self.type not in (int, float):
            return ("categorical", tuple(self.search))
        if self.type is bool:
            return ("categorical", (False, True))
        if self.choices is not None:
            return ("categorical", tuple(self.search or self.choices))
        lo, hi = self.search if self.search is not None else (self.low, self.high)
        if lo is None or hi is None:
            return None
        return ("int" if self.type is int else "float", lo, hi, self.log)

    def describe_range(self) -> str:
        return describe_bounds(self.type, self.low, self.high, self.choices)

    def is_active(self, values: Mapping[str, Any]) -> bool:
        """Whether the parameter acts, given the trick's parameter values by key."""
        return all(_matches(cond, values[k]) for k, cond in self.active_if)

    def describe_condition(self) -> str:
        """``"two_sided = true"``, ``"k > 1"``; empty for an unconditional parameter."""
        return " and ".join(_describe(k, cond) for k, cond in self.active_if)


def param_infos(params_cls: type) -> list[ParamInfo]:
    """The declared parameters of a trick's ``Params`` dataclass, in declaration order.

    Refuses (``TypeError``) an ``active_if`` that names no parameter of the class, or one that
    is itself conditional."""
    hints = typing.get_type_hints(params_cls)
    fields = dataclasses.fields(params_cls)
    by_key = {**{f.name: _key(f.name) for f in fields}, **{_key(f.name): _key(f.name) for f in fields}}
    conditional = {_key(f.name) for f in fields if f.metadata.get("ganlab", {}).get("active_if")}
    out = []
    for f in fields:
        meta = f.metadata.get("ganlab", {})
        active_if = []
        for ref, cond in dict(meta.get("active_if") or {}).items():
            if ref not in by_key or by_key[ref] == _key(f.name):
                raise TypeError(f"{params_cls.__name__}.{f.name}: active_if names '{ref}', which is not another "
                                f"parameter of {params_cls.__name__}")
            if by_key[ref] in conditional:
                raise TypeError(f"{params_cls.__name__}.{f.name}: active_if names '{ref}', which is conditional "
                                "itself; a controlling parameter must be unconditional")
            active_if.append((by_key[ref], cond))
        out.append(
            ParamInfo(
                name=f.name,
                type=hints[f.name],
                default=f.default,
                low=meta.get("low"),
                high=meta.get("high"),
                choices=meta.get("choices"),
                log=meta.get("log", False),
                search=meta.get("search"),
                help=meta.get("help", ""),
                active_if=tuple(active_if),
            )
        )
    return out


def coerce_param(trick: str, info: ParamInfo, value: Any) -> Any:
    """A trick parameter's value (a string from the command line, or a TOML value), checked."""
    where = f"--trick {trick}:{info.key}={value}"
    try:
        value = coerce(value, info.type, text=True)
    except BadValue as exc:
        raise UsageError(f"{where}: {exc}; allowed: {info.describe_range()}") from None
    try:
        return check_bounds(value, info.type, info.low, info.high, info.choices)
    except BadValue as exc:
        raise UsageError(f"{where}: {exc}") from None
