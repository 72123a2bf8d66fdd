"""The trick interface: the ``Trick`` base class, typed parameters, the stack and the registry.

A trick *transforms* values inside the training step. Every hook is a no-op by default; a
filter hook returns the (possibly transformed) value, and the :class:`TrickStack` chains the
tricks as a fold in an explicit, deterministic order: ascending ``order``, then name. The same
order is printed at the start of every run and written into the run folder.

Hook points, in the order a run meets them:

=====================  ===========================================  ========================
point                  hook                                         returns
=====================  ===========================================  ========================
building the networks  ``configure_nets(spec)``                     a :class:`NetSpec`
built networks         ``configure_modules(G, D)``                  (G, D); D is None when
                                                                    only G is built
adversarial loss       ``configure_loss(gan_mode)``                 the loss the step uses
building optimisers    ``configure_optim(spec)``                    an :class:`OptimSpec`
after building         ``setup(ctx)``                               nothing
start of an iteration  ``plan(plan, ctx)``                          a :class:`StepPlan`
D phase, inputs        ``d_inputs(real_pair, fake_pair, ctx)``      (real_pair, fake_pair)
D phase, targets       ``d_targets(t_real, t_fake, ctx)``           (t_real, t_fake)
D phase, loss terms    ``d_loss(terms, phase, ctx)``                terms
G phase, D's input     ``g_inputs(fake_pair, ctx)``                 fake_pair
G phase, loss terms    ``g_loss(terms, phase, ctx)``                terms
after each update      ``after_d_update(ctx)``, ``after_g_update``  nothing
evaluation             ``eval_generator(G, ctx)``                   the module to evaluate
checkpoint             ``state_dict()`` / ``load_state_dict(s)``
=====================  ===========================================  ========================

All randomness in a trick comes from ``ctx.generator``, which the step hands it and the
checkpoint saves, so a run is reproducible and a trick never disturbs the baseline's RNG.
"""

from __future__ import annotations

import dataclasses
import math
import typing
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, ClassVar, Mapping

import torch

from ganlab.errors import UsageError

ENTRY_POINT_GROUP = "ganlab.tricks"


# --------------------------------------------------------------------------------------------
# Typed parameters with their search ranges
# --------------------------------------------------------------------------------------------


def param(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    log: bool = False,
    search: tuple | None = None,
    help: str = "",
) -> Any:
    """A trick parameter: its default, the values it may take and the range a study searches.

    ``low``/``high`` bound the valid values (inclusive); ``choices`` lists them for categorical
    parameters. ``search`` narrows the range a study samples (defaults to ``(low, high)`` or
    ``choices``; ``()`` keeps the parameter out of searches); ``log`` asks for log-uniform
    sampling.
    """
    meta = {"low": low, "high": high, "choices": choices, "log": log, "search": search, "help": help}
    return field(default=default, metadata={"ganlab": meta})


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: type
    default: Any
    low: float | None
    high: float | None
    choices: tuple | None
    log: bool
    search: tuple | None
    help: str

    @property
    def key(self) -> str:
        """The name on the command line: the field name without the trailing underscore that
        escapes a Python keyword (field ``lambda_`` is given as ``lambda=10``)."""
        return self.name[:-1] if self.name.endswith("_") else self.name

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
        if self.choices is not None:
            return "|".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true|false"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"[{lo}, {hi}]"


def param_infos(params_cls: type) -> list[ParamInfo]:
    hints = typing.get_type_hints(params_cls)
    out = []
    for f in dataclasses.fields(params_cls):
        meta = f.metadata.get("ganlab", {})
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
            )
        )
    return out


def _coerce(trick: str, info: ParamInfo, value: Any) -> Any:
    where = f"--trick {trick}:{info.key}={value}"
    want = info.type
    try:
        if want is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError
                value = low in ("true", "1", "yes", "on")
            elif not isinstance(value, bool):
                raise ValueError
        elif want is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(value)
        elif want is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
        elif want is str:
            value = str(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: expected {want.__name__}; allowed: {info.describe_range()}") from None
    if want in (int, float):
        if not math.isfinite(value):
            raise UsageError(f"{where}: must be a finite number in {info.describe_range()}")
        if (info.low is not None and value < info.low) or (info.high is not None and value > info.high):
            raise UsageError(f"{where}: out of range; allowed: {info.describe_range()}")
    if info.choices is not None and value not in info.choices:
        raise UsageError(f"{where}: allowed values are {info.describe_range()}")
    return value


# --------------------------------------------------------------------------------------------
# What the hooks see and return
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetSpec:
    """How the networks are built. Tricks return a modified copy (``dataclasses.replace``).

    Block kinds are names in the factories of :mod:`ganlab.nets.blocks`, which a trick may
    extend (``register_upsample("pixeltcl", ...)``), so the core stays trick-agnostic.
    """

    generator: str = "unet"  # unet | resnet18-unet
    discriminator: str = "patch"  # patch | pixel
    in_channels: int = 1
    out_channels: int = 2
    size: int = 256
    ngf: int = 64
    ndf: int = 64
    n_layers: int = 3
    g_norm: str = "batch"
    d_norm: str = "batch"
    g_down_act: str = "leaky_relu"
    g_up_act: str = "relu"
    d_act: str = "leaky_relu"
    upsample: str = "convtranspose"
    downsample: str = "conv"
    g_dropout: float = 0.5
    d_dropout: float = 0.0
    d_width: float = 1.0  # multiplies ndf
    d_wrap: tuple[Callable[[torch.nn.Module], torch.nn.Module], ...] = ()  # applied to D's convs
    backbone_weights: str = "none"


@dataclass(frozen=True)
class OptimSpec:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas_g: tuple[float, float] = (0.5, 0.999)
    betas_d: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class StepPlan:
    """How many D and G updates this iteration makes (each on a fresh batch and fresh fakes)."""

    d_steps: int = 1
    g_steps: int = 1


@dataclass
class Phase:
    """What a loss hook can see. ``d_real``/``d_fake`` are D's outputs for this update.

    In the D phase ``fake`` is detached; in the G phase ``d_fake`` is D(cond, G(cond)) with the
    graph to G, taken on the pair ``g_inputs`` returned (``fake`` stays G's own output, which the
    L1 term compares with ``real``). ``d_forward(cond, x)`` runs D on a (condition, image) pair the way the step does
    (autocast included), for penalties that need extra D passes.
    """

    cond: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor
    d_real: torch.Tensor | None
    d_fake: torch.Tensor
    d_forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class StepContext:
    """Shared by all tricks of a run; the step updates ``step`` before every iteration."""

    cfg: Any
    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer | None
    opt_d: torch.optim.Optimizer | None
    generator: torch.Generator
    device: torch.device
    gan_mode: str
    step: int = 0
    total_steps: int = 0


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoParams:
    pass


class Trick:
    """Base class for tricks. Override only the hooks the trick needs.

    Class attributes a trick declares:

    - ``name``: the flag name (``--trick NAME``), as registered in the entry point.
    - ``Params``: a frozen dataclass whose fields use :func:`param` (defaults and ranges).
    - ``summary`` / ``paper``: one line each for ``ganlab tricks``.
    - ``order``: position in the stack (ascending; ties broken by name).
    - ``provides`` / ``requires`` / ``conflicts``: capability names. The base step provides
      ``gan:<mode>`` and, for the label-based modes (vanilla, lsgan), ``label-targets``.
      A capability in ``replaces`` is provided exclusively: two tricks replacing the same thing
      cannot be stacked. ``removes`` takes a capability away (a Wasserstein critic removes
      ``label-targets``); ``requires_reason``/``conflicts`` give the sentence a refusal prints.
    - ``identity``: parameter values at which the trick leaves the step bit-identical to the
      baseline (``None`` when the trick has no such setting).

    :mod:`ganlab.testing` holds the conformance checks every trick is expected to pass;
    ``tricks/_template.py`` is a commented example to copy.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    order: ClassVar[int] = 100
    provides: ClassVar[frozenset[str]] = frozenset()
    replaces: ClassVar[frozenset[str]] = frozenset()
    removes: ClassVar[frozenset[str]] = frozenset()
    requires: ClassVar[frozenset[str]] = frozenset()
    requires_reason: ClassVar[Mapping[str, str]] = {}  # capability -> why it is needed
    conflicts: ClassVar[Mapping[str, str]] = {}  # capability -> reason
    identity: ClassVar[Mapping[str, Any] | None] = None

    def __init__(self, params: Any = None):
        self.params = params if params is not None else self.Params()

    # Build time -------------------------------------------------------------------------------
    def configure_nets(self, spec: NetSpec) -> NetSpec:
        return spec

    def configure_modules(self, G: torch.nn.Module, D: torch.nn.Module | None):
        """Transform the built networks (before they move to the device and get optimisers).

        For what a :class:`NetSpec` cannot reach, such as the layers inside torchvision's
        ResNet encoder. ``D`` is None when only the generator is built (``ganlab colorize``),
        so a change that G's weights depend on must not depend on D. Must not add parameters
        that are missing from a checkpoint built the same way.
        """
        return G, D

    def configure_loss(self, gan_mode: str) -> str:
        """The adversarial loss the step computes (a name in :data:`ganlab.losses.GAN_MODES`)."""
        return gan_mode

    def configure_optim(self, spec: OptimSpec) -> OptimSpec:
        return spec

    def setup(self, ctx: StepContext) -> None:
        pass

    # Every iteration --------------------------------------------------------------------------
    def plan(self, plan: StepPlan, ctx: StepContext) -> StepPlan:
        return plan

    def d_inputs(self, real_pair, fake_pair, ctx: StepContext):
        return real_pair, fake_pair

    def d_targets(self, t_real: torch.Tensor, t_fake: torch.Tensor, ctx: StepContext):
        return t_real, t_fake

    def d_loss(self, terms: dict[str, torch.Tensor], phase: Phase, ctx: StepContext):
        return terms

    def g_inputs(self, fake_pair, ctx: StepContext):
        """The (condition, fake) pair D judges in the G update, the fake with its graph to G.

        For a trick that changes what D sees in both phases (instance noise): G's gradient is
        then taken through D on what D was trained on. A trick that shows D other samples
        (an image pool) has no business here: G's loss is about its current fakes.
        """
        return fake_pair

    def g_loss(self, terms: dict[str, torch.Tensor], phase: Phase, ctx: StepContext):
        return terms

    def after_d_update(self, ctx: StepContext) -> None:
        pass

    def after_g_update(self, ctx: StepContext) -> None:
        pass

    def eval_generator(self, G: torch.nn.Module, ctx: StepContext) -> torch.nn.Module:
        return G

    # Checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # Helpers ----------------------------------------------------------------------------------
    @classmethod
    def hooks_used(cls) -> list[str]:
        return [h for h in HOOKS if getattr(cls, h) is not getattr(Trick, h)]

    @classmethod
    def parse_params(cls, values: Mapping[str, Any]) -> Any:
        infos = {i.name: i for i in param_infos(cls.Params)}
        by_key = {**infos, **{i.key: i for i in infos.values()}}
        unknown = sorted(set(values) - set(by_key))
        if unknown:
            allowed = ", ".join(i.key for i in infos.values()) or "none"
            raise UsageError(f"--trick {cls.name}: unknown parameter '{unknown[0]}'; allowed: {allowed}")
        kwargs: dict[str, Any] = {}
        for k, v in values.items():
            info = by_key[k]
            if info.name in kwargs:
                raise UsageError(f"--trick {cls.name}: parameter '{info.key}' is given twice")
            kwargs[info.name] = _coerce(cls.name, info, v)
        try:
            return cls.Params(**kwargs)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--trick {cls.name}: {exc}") from None


HOOKS = (
    "configure_nets",
    "configure_modules",
    "configure_loss",
    "configure_optim",
    "setup",
    "plan",
    "d_inputs",
    "d_targets",
    "d_loss",
    "g_inputs",
    "g_loss",
    "after_d_update",
    "after_g_update",
    "eval_generator",
    "state_dict",
)


# --------------------------------------------------------------------------------------------
# Registry (entry points) and the trick spec strings of the command line
# --------------------------------------------------------------------------------------------

_extra: dict[str, type[Trick]] = {}


def register(cls: type[Trick]) -> type[Trick]:
    """Register a trick class in this process (tests, notebooks). Packages use entry points."""
    _extra[cls.name] = cls
    return cls


def registry() -> dict[str, type[Trick]]:
    """All tricks: the ``ganlab.tricks`` entry points (built-in ones included) and registered ones."""
    found: dict[str, type[Trick]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take ganlab down
            warnings.warn(f"trick plugin '{ep.name}' ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Trick)):
            warnings.warn(f"trick plugin '{ep.name}' ({ep.value}) is not a ganlab.hooks.Trick subclass; ignored", stacklevel=2)
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


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


def base_capabilities(gan_mode: str) -> set[str]:
    caps = {f"gan:{gan_mode}"}
    if gan_mode in ("vanilla", "lsgan"):
        caps.add("label-targets")
    return caps


class TrickStack:
    """Tricks in their fold order, with the checks that refuse an impossible stack."""

    def __init__(self, tricks: list[Trick], gan_mode: str = "vanilla"):
        names = [t.name for t in tricks]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise UsageError(f"--trick {dup} is given twice; give each trick once with all its parameters")
        self.tricks = sorted(tricks, key=lambda t: (t.order, t.name))
        self.gan_mode = gan_mode
        self.check()
        self._by_hook = {h: [t for t in self.tricks if h in type(t).hooks_used()] for h in HOOKS}

    @classmethod
    def from_specs(cls, specs, gan_mode: str) -> "TrickStack":
        return cls([build_trick(name, values) for name, values in specs], gan_mode)

    def check(self) -> None:
        """Refuse impossible stacks with one sentence naming both parties and the reason."""
        source = {c: f"--gan-mode {self.gan_mode}" for c in base_capabilities(self.gan_mode)}
        removed: dict[str, str] = {}
        replaced: dict[str, str] = {}
        for t in self.tricks:
            for r in t.replaces:
                if r in replaced:
                    raise UsageError(
                        f"--trick {t.name} cannot be combined with --trick {replaced[r]}: "
                        f"both replace the {r.replace('-', ' ')}; keep one"
                    )
                replaced[r] = t.name
            for c in t.provides | t.replaces:
                source.setdefault(c, f"--trick {t.name}")
            for c in t.removes:
                removed[c] = f"--trick {t.name}"
        for c in removed:
            source.pop(c, None)
        for t in self.tricks:
            for cap, reason in t.conflicts.items():
                if cap in source and source[cap] != f"--trick {t.name}":
                    raise UsageError(f"--trick {t.name} cannot be combined with {source[cap]}: {reason}")
            for cap in sorted(t.requires):
                if cap not in source:
                    why = t.requires_reason.get(cap, f"it needs '{cap}'")
                    if cap in removed:
                        raise UsageError(f"--trick {t.name} cannot be combined with {removed[cap]}: {why}")
                    raise UsageError(f"--trick {t.name} cannot be used with --gan-mode {self.gan_mode}: {why}")
        self.capabilities = frozenset(source)

    # The fold --------------------------------------------------------------------------------
    def configure_nets(self, spec: NetSpec) -> NetSpec:
        for t in self.tricks:
            spec = t.configure_nets(spec)
        return spec

    def configure_modules(self, G, D):
        for t in self._by_hook["configure_modules"]:
            G, D = t.configure_modules(G, D)
        return G, D

    def configure_loss(self, gan_mode: str | None = None) -> str:
        mode = self.gan_mode if gan_mode is None else gan_mode
        for t in self._by_hook["configure_loss"]:
            mode = t.configure_loss(mode)
        return mode

    def configure_optim(self, spec: OptimSpec) -> OptimSpec:
        for t in self.tricks:
            spec = t.configure_optim(spec)
        return spec

    def setup(self, ctx: StepContext) -> None:
        for t in self.tricks:
            t.setup(ctx)

    def plan(self, plan: StepPlan, ctx: StepContext) -> StepPlan:
        for t in self._by_hook["plan"]:
            plan = t.plan(plan, ctx)
        return plan

    def d_inputs(self, real_pair, fake_pair, ctx):
        for t in self._by_hook["d_inputs"]:
            real_pair, fake_pair = t.d_inputs(real_pair, fake_pair, ctx)
        return real_pair, fake_pair

    def d_targets(self, t_real, t_fake, ctx):
        for t in self._by_hook["d_targets"]:
            t_real, t_fake = t.d_targets(t_real, t_fake, ctx)
        return t_real, t_fake

    def d_loss(self, terms, phase, ctx):
        for t in self._by_hook["d_loss"]:
            terms = t.d_loss(terms, phase, ctx)
        return terms

    def g_inputs(self, fake_pair, ctx):
        for t in self._by_hook["g_inputs"]:
            fake_pair = t.g_inputs(fake_pair, ctx)
        return fake_pair

    def g_loss(self, terms, phase, ctx):
        for t in self._by_hook["g_loss"]:
            terms = t.g_loss(terms, phase, ctx)
        return terms

    def after_d_update(self, ctx) -> None:
        for t in self._by_hook["after_d_update"]:
            t.after_d_update(ctx)

    def after_g_update(self, ctx) -> None:
        for t in self._by_hook["after_g_update"]:
            t.after_g_update(ctx)

    def eval_generator(self, G, ctx):
        for t in self._by_hook["eval_generator"]:
            G = t.eval_generator(G, ctx)
        return G

    def state_dict(self) -> dict:
        return {t.name: t.state_dict() for t in self.tricks}

    def load_state_dict(self, state: Mapping[str, dict]) -> None:
        for t in self.tricks:
            if t.name in state:
                t.load_state_dict(state[t.name])

    # Description ----------------------------------------------------------------------------
    def describe(self) -> list[dict]:
        return [
            {
                "position": i,
                "name": t.name,
                "order": t.order,
                "hooks": type(t).hooks_used(),
                "params": {i.key: getattr(t.params, i.name) for i in param_infos(type(t.params))},
            }
            for i, t in enumerate(self.tricks)
        ]

    def __len__(self) -> int:
        return len(self.tricks)
