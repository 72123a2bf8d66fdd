"""The trick interface: the ``Trick`` base class, its typed parameters, and what its hooks see.

A trick *transforms* values inside the training step. Every hook is a no-op by default; a
filter hook returns the (possibly transformed) value, and the ``TrickStack`` chains the
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
cost model             ``penalty_passes(step)``, ``g_copies()``,    ints (FLOPs, memory)
                       ``extra_passes(step)``
=====================  ===========================================  ========================

All randomness in a trick comes from ``ctx.rng``, a ``torch.Generator`` that the step hands it
and the checkpoint saves, so a run is reproducible and a trick never disturbs the baseline's
random numbers.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import torch

from ganlab.coerce import BadValue, check_bounds, coerce, describe_bounds
from ganlab.errors import UsageError

if TYPE_CHECKING:
    from ganlab.config import TrainConfig

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
        return describe_bounds(self.type, self.low, self.high, self.choices)


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

    In the D phase ``fake`` is detached; in the G phase ``d_real`` is None (under ``--gan-mode
    rpgan``: D's output on the real pair, without a graph) and ``d_fake`` is D(cond, G(cond)) with the
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
    """Shared by all tricks of a run; the loop updates ``step`` before every iteration.

    ``cfg`` is the run's resolved configuration; ``rng`` the random-number generator every
    trick draws from (saved with the checkpoint); ``G`` and ``D`` the plain networks."""

    cfg: "TrainConfig"
    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer | None
    opt_d: torch.optim.Optimizer | None
    rng: torch.Generator
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
    - ``needs_discriminator``: False for a trick that acts on G alone (its architecture, a moving
      average of its weights), which the L1-only control (``--gan-mode none``) can run.

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
    needs_discriminator: ClassVar[bool] = True

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

    # What the cost model needs to know (ganlab bench's FLOPs, the memory check) ---------------
    def penalty_passes(self, step: int) -> int:
        """Extra passes through D that the trick makes per D update at ``step``, each a forward
        and a double backward (a gradient penalty: WGAN-GP's, R1's)."""
        return 0

    def g_copies(self) -> int:
        """Copies of G's weights the trick keeps besides G itself (a moving average keeps one)."""
        return 0

    def extra_passes(self, step: int) -> Mapping[str, int]:
        """Passes through D the trick makes besides the step's own and its penalties, by kind:
        ``"d_update"`` per D update (a forward and a backward with D trained: a consistency
        term on augmented inputs), ``"d_for_g"`` per G update (D frozen: feature matching's)."""
        return {}

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
            kwargs[info.name] = coerce_param(cls.name, info, v)
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
    "penalty_passes",
    "g_copies",
    "extra_passes",
)
