"""The trick registry: the ``ganlab.tricks`` entry points (built-in tricks included) and tricks
registered in this process, and the ``NAME:key=value,...`` strings of the command line."""

from __future__ import annotations

import contextlib
import warnings
from importlib import metadata
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ganlab.errors import UsageError

if TYPE_CHECKING:  # torch loads with the tricks, not with the command line's parsing
    from ganlab.trick.base import Trick

ENTRY_POINT_GROUP = "ganlab.tricks"

_extra: dict[str, type[Trick]] = {}


def register(cls: type[Trick]) -> type[Trick]:
    """Register a trick class in this process (tests, notebooks). Packages use entry points."""
    _extra[cls.name] = cls
    return cls


@contextlib.contextmanager
def registered(*classes: type[Trick]) -> Iterator[None]:
    """Register ``classes`` for the duration of a ``with`` block; what was registered before is
    restored afterwards (a test registers its own tricks without leaking them)."""
    saved = dict(_extra)
    try:
        for cls in classes:
            register(cls)
        yield
    finally:
        _extra.clear()
        _extra.update(saved)


def registry() -> dict[str, type[Trick]]:
    """All tricks: the ``ganlab.tricks`` entry points (built-in ones included) and registered ones."""
    from ganlab.trick.base import Trick

    found: dict[str, type[Trick]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take ganlab down
            warnings.warn(f"trick plugin '{ep.name}' ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Trick)):
            warnings.warn(f"trick plugin '{ep.name}' ({ep.value}) is not a ganlab.trick.Trick subclass; ignored", stacklevel=2)
            continue
        if not cls.name:
            cls.name = ep.name
        elif cls.name != ep.name:
            warnings.warn(
                f"trick plugin '{ep.name}' ({ep.value}) calls itself '{cls.name}'; ignored "
                f"(the entry point's name and the class's name must agree)",
                stacklevel=2,
            )
            continue
        found[ep.name] = cls
    found.update(_extra)
    return dict(sorted(found.items()))


def parse_trick_arg(text: str) -> tuple[str, dict[str, str]]:
    """``"label-flip:p=0.05,two_sided=true"`` -> ``("label-flip", {"p": "0.05", ...})``."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"--trick '{text}': give a trick name, e.g. --trick label-flip:p=0.05")
    values: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--trick '{text}': write parameters as key=value, separated by commas")
        values[key.strip()] = value.strip()
    return name, values


def build_trick(name: str, values: Mapping[str, Any]) -> Trick:
    known = registry()
    if name not in known:
        raise UsageError(f"--trick {name}: unknown trick; known: {', '.join(known) or 'none'} (see `ganlab tricks`)")
    cls = known[name]
    return cls(cls.parse_params(values))
