"""Command-line flags generated from the configuration's field metadata.

Every setting is declared once, in :class:`ganlab.config.TrainConfig` (its type, default,
choices, bound, help and group); the commands that take settings (``train``, ``bench``) add
them from there, so a flag's name, type, choices and help can never disagree with the setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Iterable, Mapping

from ganlab.coerce import unwrap_optional
from ganlab.config import TrainConfig, flag_name

__all__ = ["add_setting_flags", "resumable_settings", "setting_values"]

# The settings whose flag differs from the field's name.
_FLAG = {"tricks": "--trick"}
_DEST = {"tricks": "trick"}
# Settings that exclude each other on the command line.
_EXCLUSIVE = (("steps", "epochs"),)


def _fields(cls=TrainConfig):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("ganlab")
        if meta is not None and meta.get("flag", True):
            yield f, hints[f.name], meta


def add_setting_flags(
    parser: argparse.ArgumentParser,
    *,
    only: Iterable[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    helps: Mapping[str, str] | None = None,
    groups: dict[str, Any] | None = None,
    group_title: str | None = None,
) -> dict[str, Any]:
    """Add a flag for each setting (``only`` these, in declaration order), in argument groups
    named by the settings' ``group`` (or all in ``group_title``). Flags default to None so that
    a layered configuration sees only what was given; ``defaults`` gives a command its own
    defaults instead, and ``helps`` its own words for a flag whose meaning it narrows. Returns
    the groups, by title, for further flags."""
    wanted = set(only) if only is not None else None
    defaults = dict(defaults or {})
    groups = {} if groups is None else groups
    exclusive: dict[str, Any] = {}
    for f, hint, meta in _fields():
        if wanted is not None and f.name not in wanted:
            continue
        title = group_title or meta["group"]
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        target = groups[title]
        for pair in _EXCLUSIVE:
            if f.name in pair and (wanted is None or all(n in wanted for n in pair)):
                key = (title, pair)
                if key not in exclusive:
                    exclusive[key] = target.add_mutually_exclusive_group()
                target = exclusive[key]
        default = defaults.get(f.name, f.default)
        help_text = (helps or {}).get(f.name, meta["help"])
        help_text = help_text.format(default=default) if "{default" in help_text else help_text
        kwargs: dict[str, Any] = {"help": help_text, "default": defaults.get(f.name)}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if f.name == "tricks":
            kwargs.update(action="append", dest=_DEST[f.name])
        else:
            base, _ = unwrap_optional(hint)
            if meta.get("choices") is not None:
                kwargs["choices"] = meta["choices"]
            elif base in (int, float):
                kwargs["type"] = base
            kwargs["dest"] = f.name
        target.add_argument(_FLAG.get(f.name, flag_name(f.name)), **kwargs)
    return groups


def setting_values(args: argparse.Namespace, *, only: Iterable[str] | None = None) -> dict[str, Any]:
    """The settings given on the command line (None: not given), as configuration fields."""
    wanted = set(only) if only is not None else None
    values: dict[str, Any] = {}
    for f, _, _ in _fields():
        if wanted is not None and f.name not in wanted:
            continue
        value = getattr(args, _DEST.get(f.name, f.name), None)
        if value is not None:
            values[f.name] = list(value) if f.name == "tricks" else value
    return values


def resumable_settings() -> list[str]:
    """The settings ``--resume`` may change: the run's length and where and how often it reports."""
    return [f.name for f, _, meta in _fields() if meta.get("resumable")]
