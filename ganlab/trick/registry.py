"""The trick registry: the ``ganlab.tricks`` entry points (built-in tricks included) and tricks
registered in this process, and the ``NAME:key=value,...`` strings of the command line."""

from __future__ import annotations

import contextlib
import warnings
from importlib import metadata
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ganlab.config import parse_trick_arg  # the command line's NAME:key=value strings, parsed with the configuration
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


def build_trick(name: str, values: Mapping[str, Any]) -> Trick:
    known = registry()
    if name not in known:
        raise UsageError(f"--trick {name}: unknown trick; known: {', '.join(known) or 'none'} (see `ganlab tricks`)")
    cls = known[name]
    return cls(cls.parse_params(values))
