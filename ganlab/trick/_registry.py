"""Private to ganlab (not the trick author's API; may change without notice): the trick registry, i.e.
the ``ganlab.tricks`` entry points (built-in tricks included) and tricks registered in this
process, and the ``NAME:key=value,...`` strings of the command line.

A trick author needs only :func:`register` / :func:`registered` of this module, which
:mod:`ganlab.trick` exports. Plain Python: importing this module loads no library.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ganlab.config import parse_trick_arg  # the command line's NAME:key=value strings, parsed with the configuration
from ganlab.errors import UsageError
from ganlab.registry import Registry

if TYPE_CHECKING:  # torch loads with the tricks, not with the command line's parsing
    from ganlab.trick.base import Trick

__all__ = ["ENTRY_POINT_GROUP", "TRICKS", "build_trick", "parse_trick_arg", "register", "registered", "registry"]

ENTRY_POINT_GROUP = "ganlab.tricks"


def _check_trick(name: str, cls: Any) -> type[Trick]:
    from ganlab.trick.base import Trick

    if not (isinstance(cls, type) and issubclass(cls, Trick)):
        raise TypeError("is not a ganlab.trick.Trick subclass")
    if not cls.name:
        cls.name = name
    elif cls.name != name:
        raise ValueError(f"calls itself '{cls.name}' (the entry point's name and the class's name must agree)")
    return cls


TRICKS = Registry(
    "trick", ENTRY_POINT_GROUP, flag="--trick", check=_check_trick,
    contract="""Tricks: subclasses of :class:`ganlab.trick.Trick` whose ``name`` is the entry point's name.""",
)


def register(cls: type[Trick]) -> type[Trick]:
    """Register a trick class in this process (a notebook, a test), under its ``name``; usable
    as a class decorator. Packages register theirs under the entry-point group ``ganlab.tricks``."""
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"{getattr(cls, '__name__', cls)!r}: a trick registered in-process needs a name")
    TRICKS.register(name, cls)
    return cls


@contextlib.contextmanager
def registered(*classes: type[Trick]) -> Iterator[None]:
    """Register ``classes`` for the duration of a ``with`` block; what was registered before is
    restored afterwards (a test registers its own tricks without leaking them)."""
    for cls in classes:
        if not getattr(cls, "name", ""):
            raise ValueError(f"{getattr(cls, '__name__', cls)!r}: a trick registered in-process needs a name")
    with TRICKS.registered({cls.name: cls for cls in classes}):
        yield


def registry() -> dict[str, type[Trick]]:
    """All tricks by name: the ``ganlab.tricks`` entry points (built-in ones included) and
    registered ones. A plugin that fails to load is left out with a warning."""
    return TRICKS.load_all()


def build_trick(name: str, values: Mapping[str, Any]) -> Trick:
    """The trick ``name`` with its parameters parsed from ``values``; an unknown name or a bad
    value is a one-line :class:`~ganlab.errors.UsageError`."""
    known = registry()
    if name not in known:
        raise UsageError(f"--trick {name}: unknown trick; known: {', '.join(known) or 'none'} (see `ganlab tricks`)")
    cls = known[name]
    return cls(cls.parse_params(values))
