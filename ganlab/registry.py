"""Registries of named plugins: what a flag such as ``--generator NAME`` or ``--trick NAME`` can name.

A :class:`Registry` holds one kind of plugin. Its members come from two places:

- the entry points of its group (``ganlab.generators``, ``ganlab.discriminators``,
  ``ganlab.tricks``) of every installed package; ganlab's own plugins are declared there in
  ``pyproject.toml`` exactly as a third-party package declares its own;
- :meth:`Registry.register` in this process (a notebook, a test); a name registered here
  shadows an entry point of the same name.

Listing the names (:meth:`Registry.names`) reads the installed packages' metadata and imports
no plugin, so checking a configuration and printing ``--help`` never load torch; a plugin is
imported when it is first asked for (:meth:`Registry.get`). A plugin that fails to import is
reported with one line naming its entry point and the error.

Plain Python: importing this module loads no library.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Callable, Iterator

from ganlab.errors import GanlabError, UsageError

__all__ = ["DISCRIMINATORS", "GENERATORS", "Registry"]


class Registry:
    """Named plugins of one ``kind``, found through the entry-point ``group``.

    ``flag`` is where a user names a member (for error messages); ``default`` is the member a
    run uses unless told otherwise, listed first by :meth:`names` (the others follow by name).
    ``check(name, obj)`` validates a loaded member and returns it (or raises ``TypeError`` /
    ``ValueError`` with the reason, and the member is left out with a warning).
    ``contract`` says in one paragraph what a member must be; it is this registry's docstring.
    """

    def __init__(self, kind: str, group: str, *, flag: str, default: str | None = None, contract: str = "",
                 check: Callable[[str, Any], Any] | None = None):
        self.kind, self.group, self.flag, self.default = kind, group, flag, default
        self.__doc__ = contract
        self._check = check
        self._extra: dict[str, Any] = {}
        self._found: tuple[tuple[str, ...], dict[str, metadata.EntryPoint]] | None = None

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r})"

    # In-process registration ------------------------------------------------------------------
    def register(self, name: str, obj: Any = None):
        """Register ``obj`` as ``name`` in this process; usable as a decorator
        (``@GENERATORS.register("toy")``). Packages use entry points instead."""
        if not isinstance(name, str) or not name or name != name.strip() or any(c in name for c in " ,:="):
            raise ValueError(f"{self.kind} name {name!r}: use a plain name such as 'my-{self.kind}' "
                             "(no spaces, commas, colons or '=')")

        def add(target: Any) -> Any:
            self._extra[name] = self._validated(name, target) if self._check else target
            return target

        return add if obj is None else add(obj)

    @contextlib.contextmanager
    def registered(self, members: dict[str, Any]) -> Iterator[None]:
        """Register ``members`` (name -> plugin) for the duration of a ``with`` block; what was
        registered before is restored afterwards."""
        saved = dict(self._extra)
        try:
            for name, obj in members.items():
                self.register(name, obj)
            yield
        finally:
            self._extra.clear()
            self._extra.update(saved)

    # Reading ------------------------------------------------------------------------------------
    def entry_points(self) -> dict[str, metadata.EntryPoint]:
        """The group's entry points by name (one per name: the first found wins). Read once per
        import path: a package put on ``sys.path`` later is seen."""
        key = tuple(sys.path)
        if self._found is None or self._found[0] != key:
            found: dict[str, metadata.EntryPoint] = {}
            for ep in metadata.entry_points(group=self.group):
                found.setdefault(ep.name, ep)
            self._found = (key, found)
        return dict(self._found[1])

    def names(self) -> tuple[str, ...]:
        """Every member's name without importing any: the default first, then the rest by name."""
        names = set(self.entry_points()) | set(self._extra)
        first = [self.default] if self.default in names else []
        return (*first, *sorted(names - set(first)))

    def __contains__(self, name: object) -> bool:
        return name in self._extra or name in self.entry_points()

    def get(self, name: str) -> Any:
        """The member called ``name``, imported on first use; an unknown name or a plugin that
        fails to import raises an error naming the flag and what is known."""
        if name in self._extra:
            return self._extra[name]
        ep = self.entry_points().get(name)
        if ep is None:
            raise UsageError(f"{self.flag} {name}: unknown {self.kind}; choose from {', '.join(self.names()) or 'none'}")
        try:
            obj = ep.load()
        except Exception as exc:
            raise GanlabError(f"{self.flag} {name}: the {self.kind} plugin {ep.value} (entry point of "
                              f"'{self.group}') failed to load: {exc}") from None
        if self._check is None:
            return obj
        try:
            return self._check(name, obj)
        except (TypeError, ValueError) as exc:
            raise GanlabError(f"{self.flag} {name}: the {self.kind} plugin {ep.value} {exc}") from None

    def load_all(self) -> dict[str, Any]:
        """Every member, imported, by name. A plugin that fails to import or to pass the check
        is left out with a warning naming it: one broken package must not take ganlab down."""
        found: dict[str, Any] = {}
        for name, ep in self.entry_points().items():
            if name in self._extra:
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                warnings.warn(f"{self.kind} plugin '{name}' ({ep.value}) failed to load: {exc}", stacklevel=2)
                continue
            if self._check is not None:
                try:
                    obj = self._check(name, obj)
                except (TypeError, ValueError) as exc:
                    warnings.warn(f"{self.kind} plugin '{name}' ({ep.value}) {exc}; ignored", stacklevel=2)
                    continue
            found[name] = obj
        found.update(self._extra)
        return dict(sorted(found.items()))

    def _validated(self, name: str, obj: Any) -> Any:
        try:
            return self._check(name, obj)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.kind} '{name}': {exc}") from None

    @property
    def choices(self) -> "Names":
        """The names as a live sequence (for a setting's ``choices``): read when iterated or
        searched, so that what is registered later in the process is included."""
        return Names(self)


class Names(Sequence):
    """A registry's names, read afresh whenever they are used (``in``, iteration, ``len``)."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def __getitem__(self, i):
        return self.registry.names()[i]

    def __len__(self) -> int:
        return len(self.registry.names())

    def __iter__(self):
        return iter(self.registry.names())

    def __contains__(self, name: object) -> bool:
        return name in self.registry

    def __repr__(self) -> str:
        return repr(self.registry.names())


def _check_network(name: str, obj: Any) -> Any:
    if not callable(obj):
        raise TypeError(f"is {type(obj).__name__}, not a builder (a callable taking a NetSpec and returning a torch module)")
    return obj


GENERATORS = Registry(
    "generator", "ganlab.generators", flag="--generator", default="unet", check=_check_network,
    contract="""Generators: ``builder(spec: ganlab.nets.NetSpec) -> torch.nn.Module``.

    The module maps a condition of shape (B, spec.in_channels, H, W) to an image of shape
    (B, spec.out_channels, H, W) with values in [-1, 1], at spec.size and at every H and W that
    are multiples of its ``stride`` attribute (1 when it has none; inference pads to it). It is
    returned with its initial weights, builds under ``torch.device("meta")`` (the memory estimate builds
    shapes only), and reads the block kinds of the spec it can use (``g_norm``, ``g_down_act``,
    ``g_up_act``, ``upsample``, ``downsample``, ``g_dropout``) through :mod:`ganlab.nets.blocks`
    so that tricks can change them. ``ganlab.testing.NetConformanceTests`` checks all of this.
    """,
)

DISCRIMINATORS = Registry(
    "discriminator", "ganlab.discriminators", flag="--discriminator", default="patch", check=_check_network,
    contract="""Discriminators: ``builder(spec: ganlab.nets.NetSpec) -> torch.nn.Module``.

    The module maps a (condition, image) pair concatenated on the channel axis, of shape
    (B, spec.in_channels + spec.out_channels, H, W), to raw scores (logits, no sigmoid) of shape
    (B, ...): one per sample or a map of one per patch. It is returned with its initial
    weights, builds under ``torch.device("meta")``, passes each of its convolutions through
    every callable in ``spec.d_wrap`` (spectral normalisation is such a wrapper) and reads
    ``d_norm``, ``d_act``, ``d_dropout``, ``d_width`` and ``ndf`` where it has such layers.
    ``ganlab.testing.NetConformanceTests`` checks all of this.
    """,
)
