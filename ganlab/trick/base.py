"""The ``Trick`` base class and what its hooks see and return.

A trick *transforms* values inside the training step. Every hook is a no-op by default; a
filter hook returns the (possibly transformed) value, and the stack chains the tricks as a
fold in an explicit, deterministic order: ascending ``order``, then name. The same order is
printed at the start of every run and written into the run folder.

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
after D's update       ``after_d_update(ctx)``                      nothing
G phase, D's input     ``g_inputs(fake_pair, ctx)``                 fake_pair
G phase, loss terms    ``g_loss(terms, phase, ctx)``                terms
after G's update       ``after_g_update(ctx)``                      nothing
evaluation             ``eval_generator(G, ctx)``                   the module to evaluate
checkpoint             ``state_dict()`` / ``load_state_dict(s)``    plain data / nothing
cost model             ``penalty_passes(step)``, ``g_copies()``,    ints (FLOPs, memory)
                       ``extra_passes(step)``
=====================  ===========================================  ========================

What a trick may change, and where (everything else it only reads, through :class:`StepContext`):

1. the values its filter hooks return (a new value; the arguments are never changed in place);
2. the networks' *structure* in ``configure_nets`` (through the spec) and ``configure_modules``
   (the built modules, before they get optimisers);
3. the networks' *weights* in place (``with torch.no_grad()``), in ``after_d_update`` and
   ``after_g_update`` only: weight clipping, a projection, a repair of G's weights;
4. the learning rates and Adam betas, in ``configure_optim`` only (the optimisers and their
   param groups are read-only afterwards: the learning-rate schedule owns ``lr``);
5. its own state (``self``), saved through ``state_dict``;
6. the state of ``ctx.rng``, by drawing from it (never re-seeding it).

Inside a real step, ``ganlab.testing``'s conformance checks hold every hook to 1 and 4 and
refuse a per-step hook that changes the networks' structure (their parameters and buffers);
the context refuses assignment.

All randomness in a trick comes from ``ctx.rng``, a ``torch.Generator`` that the step hands it
and the checkpoint saves, so a run is reproducible and a trick never disturbs the baseline's
random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import torch

from ganlab.errors import UsageError
from ganlab.nets.spec import NetSpec
from ganlab.trick.params import coerce_param, param_infos

if TYPE_CHECKING:
    from ganlab.config import TrainConfig

__all__ = ["HOOKS", "NetSpec", "NoParams", "OptimSpec", "Phase", "StepContext", "StepPlan", "Trick", "uniform_like"]


# --------------------------------------------------------------------------------------------
# What the hooks see and return
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimSpec:
    """The optimisers' settings (Adam for both networks). Tricks return a modified copy."""

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


@dataclass(frozen=True)
class Phase:
    """What a loss hook can see. ``d_real``/``d_fake`` are D's outputs for this update.

    In the D phase ``fake`` is detached; in the G phase ``d_real`` is None (under ``--gan-mode
    rpgan``: D's output on the real pair, without a graph) and ``d_fake`` is D(cond, G(cond)) with the
    graph to G, taken on the pair ``g_inputs`` returned (``fake`` stays G's own output, which the
    L1 term compares with ``real``). ``d_forward(cond, x)`` runs D on a
    (condition, image) pair the way the step does (autocast included), for penalties that need
    extra D passes.
    """

    cond: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor
    d_real: torch.Tensor | None
    d_fake: torch.Tensor
    d_forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class StepContext:
    """What a trick reads of the run; shared by all tricks of a run. Read-only to tricks.

    ``cfg``          the run's resolved configuration, a frozen :class:`~ganlab.config.TrainConfig`
                     (None for a step built by hand)
    ``step``         the iteration about to run (0-based, pre-training included); the loop
                     advances it before every iteration
    ``total_steps``  the run's iterations, pre-training included
    ``adv_step``     the iteration's index in the adversarial stage: ``step - cfg.pretrain_steps``
                     (negative during pre-training)
    ``adv_total_steps``  the adversarial stage's length: ``total_steps - cfg.pretrain_steps``
    ``gan_mode``     the adversarial loss the step computes (after ``configure_loss``)
    ``device``       the training device
    ``rng``          the ``torch.Generator`` (on ``device``) every trick draws its random numbers
                     from; the checkpoint saves it
    ``G``, ``D``     the plain networks (D is None under ``--gan-mode none``); a trick reads them,
                     and changes their weights in place only in ``after_d_update`` /
                     ``after_g_update`` (see the module's list of what a trick may change)
    ``opt_g``, ``opt_d``  the optimisers, to read (the current learning rate: ``param_groups``)

    Assigning to any of these raises ``AttributeError``; only the loop moves ``step``.
    """

    __slots__ = ("_cfg", "_G", "_D", "_opt_g", "_opt_d", "_rng", "_device", "_gan_mode", "_step", "_total_steps")

    def __init__(self, cfg: "TrainConfig | None", G: torch.nn.Module | None, D: torch.nn.Module | None,
                 opt_g: torch.optim.Optimizer | None, opt_d: torch.optim.Optimizer | None, rng: torch.Generator,
                 device: torch.device, gan_mode: str, step: int = 0, total_steps: int = 0):
        for name, value in (("cfg", cfg), ("G", G), ("D", D), ("opt_g", opt_g), ("opt_d", opt_d), ("rng", rng),
                            ("device", device), ("gan_mode", gan_mode), ("step", step), ("total_steps", total_steps)):
            object.__setattr__(self, "_" + name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "step":  # the loop's clock
            object.__setattr__(self, "_step", value)
            return
        raise AttributeError(f"StepContext.{name} is read-only: a trick changes the step through what its hooks "
                             "return (see 'What a trick may change' in ganlab.trick.base)")

    def __repr__(self) -> str:
        return (f"StepContext(step={self._step}, total_steps={self._total_steps}, gan_mode={self._gan_mode!r}, "
                f"device={self._device})")

    cfg = property(lambda self: self._cfg, doc="The run's configuration (frozen).")
    G = property(lambda self: self._G, doc="The generator (the plain module).")
    D = property(lambda self: self._D, doc="The discriminator (the plain module), or None.")
    opt_g = property(lambda self: self._opt_g, doc="G's optimiser, to read.")
    opt_d = property(lambda self: self._opt_d, doc="D's optimiser, to read, or None.")
    rng = property(lambda self: self._rng, doc="The generator every trick draws random numbers from.")
    device = property(lambda self: self._device, doc="The training device.")
    gan_mode = property(lambda self: self._gan_mode, doc="The adversarial loss the step computes.")
    total_steps = property(lambda self: self._total_steps, doc="The run's iterations, pre-training included.")

    @property
    def step(self) -> int:
        """The iteration about to run (0-based, pre-training included)."""
        return self._step

    @property
    def pretrain_steps(self) -> int:
        """The L1-only iterations before the adversarial stage (0 without a configuration)."""
        return self._cfg.pretrain_steps if self._cfg is not None else 0

    @property
    def adv_step(self) -> int:
        """The index of this iteration in the adversarial stage (0 at the hand-over from
        pre-training; negative before it)."""
        return self._step - self.pretrain_steps

    @property
    def adv_total_steps(self) -> int:
        """The length of the adversarial stage, in iterations."""
        return max(self._total_steps - self.pretrain_steps, 0)


def uniform_like(t: torch.Tensor, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """A new tensor shaped like ``t`` (its dtype and device) with elements ~ U[low, high], drawn
    from ``generator`` (a trick passes ``ctx.rng``): random targets, noise levels."""
    u = torch.rand(t.shape, generator=generator, device=t.device, dtype=t.dtype)
    return u.mul_(high - low).add_(low)


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoParams:
    """The ``Params`` of a trick without parameters."""


class Trick:
    """Base class for tricks. Override only the hooks the trick needs.

    Class attributes a trick declares:

    - ``name``: the flag name (``--trick NAME``), as registered in the entry point.
    - ``Params``: a frozen dataclass whose fields use :func:`~ganlab.trick.param` (defaults,
      ranges, and the conditions under which a parameter acts).
    - ``summary`` / ``paper``: one line each for ``ganlab tricks``.
    - ``order``: position in the stack (ascending; ties broken by name).
    - ``provides`` / ``requires`` / ``conflicts``: capability names
      (:class:`~ganlab.trick.Capability`). The base step provides ``Capability.gan(mode)``
      and, for the label-based modes (vanilla, lsgan), ``Capability.LABEL_TARGETS``. A
      capability in ``replaces`` is provided exclusively: two tricks replacing the same thing
      cannot be stacked. ``removes`` takes a capability away (a Wasserstein critic removes
      ``LABEL_TARGETS``); ``requires_reason``/``conflicts`` give the sentence a refusal prints.
    - ``identity``: parameter values at which the trick leaves the step bit-identical to the
      baseline (``None`` when the trick has no such setting).
    - ``needs_discriminator``: False for a trick that acts on G alone (its architecture, a moving
      average of its weights), which the L1-only control (``--gan-mode none``) can run.

    ``self.params`` is the trick's ``Params`` instance. Hooks receive ``ctx``, a read-only
    :class:`StepContext`; what a trick may change is listed in :mod:`ganlab.trick.base`.
    :mod:`ganlab.testing` holds the conformance checks every trick is expected to pass;
    ``tricks/_template.py`` (installed as ``ganlab.tricks._template``) is a commented example
    to copy.
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
        """How the networks are built. Runs once, before anything is built (also for inference,
        the memory estimate and ``ganlab bench``), in stack order.

        Receives the :class:`NetSpec` the configuration and the earlier tricks made; returns it,
        or a changed copy (``dataclasses.replace``). Block kinds it names must be registered
        (:func:`ganlab.nets.register_upsample` and its siblings).
        """
        return spec

    def configure_modules(self, G: torch.nn.Module, D: torch.nn.Module | None):
        """Transform the built networks, before they move to the device and get optimisers.

        For what a :class:`NetSpec` cannot reach, such as the layers inside torchvision's
        ResNet encoder. Receives G and D (``D`` is None when only the generator is built, for
        ``ganlab colorize``), so a change that G's weights depend on must not depend on D.
        Returns ``(G, D)``: the same modules changed in place, or replacements. Must not add
        parameters that are missing from a checkpoint built the same way.
        """
        return G, D

    def configure_loss(self, gan_mode: str) -> str:
        """The adversarial loss the step computes. Runs once at build time; receives the mode
        the configuration and earlier tricks chose and returns a name in
        :data:`ganlab.losses.GAN_MODES` (a trick that replaces the loss declares
        ``replaces = {Capability.ADVERSARIAL_LOSS}``)."""
        return gan_mode

    def configure_optim(self, spec: OptimSpec) -> OptimSpec:
        """The optimisers' learning rates, betas and weight decay. Runs once at build time;
        receives the :class:`OptimSpec` from the configuration and earlier tricks and returns it
        or a changed copy. The only place a trick sets learning rates (``--lr-decay-steps``
        still scales what it returns)."""
        return spec

    def setup(self, ctx: StepContext) -> None:
        """Called once, after the networks and optimisers exist and before the first iteration
        (also when a run is resumed, before the checkpoint's trick state is loaded). Creates
        what the trick keeps beside the networks (a copy of G's weights, a buffer) from
        ``ctx.G``/``ctx.D``; returns nothing and changes nothing it is given."""

    # Every iteration --------------------------------------------------------------------------
    def plan(self, plan: StepPlan, ctx: StepContext) -> StepPlan:
        """How many D and G updates this iteration makes. Called at the start of every
        adversarial iteration (not during pre-training); receives the plan so far (1 and 1 by
        default) and returns a :class:`StepPlan` (``d_steps``/``g_steps`` whole numbers >= 0, not
        both 0). Every extra update draws a fresh batch. A trick that sets the ratio declares
        ``replaces = {Capability.UPDATE_RATIO}``."""
        return plan

    def d_inputs(self, real_pair, fake_pair, ctx: StepContext):
        """What D is trained on, in each D update before D's forward passes.

        Receives ``real_pair = (cond, real)`` and ``fake_pair = (cond, fake)`` (``fake``
        detached) and returns both pairs, each tensor with the shape, dtype and device it came
        with (noise added, a sample swapped for a pooled one). The G update does not see this
        hook's changes; see :meth:`g_inputs`.
        """
        return real_pair, fake_pair

    def d_targets(self, t_real: torch.Tensor, t_fake: torch.Tensor, ctx: StepContext):
        """D's targets, in each D update of a label-based loss (vanilla, lsgan) only.

        Receives the target tensors for the real and fake outputs (ones and zeros shaped like
        D's output map, or what earlier tricks made of them) and returns ``(t_real, t_fake)``,
        new tensors of the same shapes and dtypes with finite values. A trick using this hook
        declares ``requires = {Capability.LABEL_TARGETS}``.
        """
        return t_real, t_fake

    def d_loss(self, terms: dict[str, torch.Tensor], phase: Phase, ctx: StepContext):
        """D's loss terms, in each D update before the backward pass.

        Receives the terms so far (``{"fake": ..., "real": ...}``, each half the pix2pix
        objective's term, plus what earlier tricks added) and the :class:`Phase` (the batch,
        D's outputs and ``d_forward`` for extra passes). Returns a new dict of finite scalar
        tensors; the step minimises their sum and logs each added term as ``D/<name>``.
        """
        return terms

    def after_d_update(self, ctx: StepContext) -> None:
        """Called after each optimiser step of D. May change ``ctx.D``'s weights in place under
        ``torch.no_grad()`` (weight clipping), and the trick's own state; returns nothing."""

    def g_inputs(self, fake_pair, ctx: StepContext):
        """The (condition, fake) pair D judges in the G update, the fake with its graph to G.

        For a trick that changes what D sees in both phases (instance noise): G's gradient is
        then taken through D on what D was trained on. Returns a pair of the same shapes, the
        fake still differentiable. A trick that shows D other samples (an image pool) has no
        business here: G's loss is about its current fakes.
        """
        return fake_pair

    def g_loss(self, terms: dict[str, torch.Tensor], phase: Phase, ctx: StepContext):
        """G's loss terms, in each G update before the backward pass.

        Receives the terms so far (``{"adv": ..., "l1": lambda_l1 * L1}`` plus what earlier
        tricks added) and the :class:`Phase` (``d_fake`` with its graph to G). Returns a new dict
        of finite scalar tensors with a gradient to G; the step minimises their sum and logs
        each added term as ``G/<name>``.
        """
        return terms

    def after_g_update(self, ctx: StepContext) -> None:
        """Called after each optimiser step of G in the adversarial stage and in the L1-only
        control (``--gan-mode none``), not in pre-training. May change ``ctx.G``'s weights in place under ``torch.no_grad()`` and the trick's own
        state (a moving average of G's weights); returns nothing."""

    def eval_generator(self, G: torch.nn.Module, ctx: StepContext) -> torch.nn.Module:
        """The module that evaluation, the sample grids, the checkpoint's ``G_ema`` and
        ``ganlab colorize`` use in place of G. Receives G (or what an earlier trick returned)
        and returns a module with G's input and output shapes; must not change G."""
        return G

    # Checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The trick's own state that a resumed run needs (counters, buffers, averages), as
        plain data: tensors, numbers, strings, None, lists and dicts (checkpoints are read with
        ``weights_only=True``). Called whenever a checkpoint is written."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned, after :meth:`setup`, when a run resumes.
        Keys a checkpoint from an earlier version lacks should fall back to defaults."""

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

    # Used by ganlab (not hooks) ----------------------------------------------------------------
    @classmethod
    def hooks_used(cls) -> list[str]:
        """The hooks this class overrides, in the order of :data:`HOOKS`."""
        return [h for h in HOOKS if getattr(cls, h) is not getattr(Trick, h)]

    @classmethod
    def parse_params(cls, values: Mapping[str, Any]) -> Any:
        """A ``Params`` instance from ``{key: value}`` (strings from the command line or typed
        values), checked against the declared ranges; a bad key or value is a one-line error."""
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
