"""Building a run: the one place its trick stack, networks, optimisers and step are made.

:func:`build_networks` is the network recipe (training, the memory estimate, ``ganlab bench``
and inference all use it); :func:`build_session` adds the optimisers, the learning-rate
schedule, the trick context and the step, and :meth:`Session.iterate` is the loop's body.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ganlab.config import TrainConfig
from ganlab.losses import L1_ONLY
from ganlab.nets import build_discriminator, build_generator
from ganlab.runtime import Runtime
from ganlab.stats import report
from ganlab.train.graphs import GraphedStep
from ganlab.train.step import Batch, Pix2PixStep
from ganlab.trick._stack import TrickStack
from ganlab.trick import NetSpec, OptimSpec, StepContext, Trick

if TYPE_CHECKING:
    from ganlab.train.distributed import Dist

__all__ = ["Session", "build_networks", "build_session", "build_stack", "differing", "effective_settings", "linear_decay",
           "make_optimizer", "net_spec", "optim_spec", "overridden_setting", "overridden_trick_param", "set_learning_rates", "total_steps"]


def net_spec(cfg: TrainConfig) -> NetSpec:
    return NetSpec(
        generator=cfg.generator,
        discriminator=cfg.discriminator,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        size=cfg.size,
        ngf=cfg.ngf,
        ndf=cfg.ndf,
        n_layers=cfg.n_layers,
        g_norm=cfg.norm,
        d_norm=cfg.norm,
        backbone_weights=cfg.backbone_weights if cfg.generator == "resnet18-unet" else "none",
    )


def optim_spec(cfg: TrainConfig) -> OptimSpec:
    betas = (cfg.beta1, cfg.beta2)
    return OptimSpec(lr_g=cfg.lr, lr_d=cfg.lr, betas_g=betas, betas_d=betas)


def build_stack(cfg: TrainConfig) -> TrickStack:
    """The run's trick stack; an unknown trick or an impossible stack is refused here."""
    return TrickStack.from_specs([(t.name, t.values) for t in cfg.tricks], cfg.gan_mode)


def build_networks(cfg: TrainConfig, stack: TrickStack | None = None, *, with_d: bool = True,
                   backbone: bool = True) -> tuple[NetSpec, nn.Module, nn.Module | None]:
    """The one recipe for G and D: the configuration's spec, transformed by the tricks, built,
    then the tricks' module changes. ``with_d=False`` builds G alone (inference);
    ``backbone=False`` leaves a pretrained encoder's weights unloaded (a checkpoint or the
    memory estimate's shapes replace them). Call under ``torch.device("meta")`` for shapes only."""
    stack = build_stack(cfg) if stack is None else stack
    spec = stack.configure_nets(net_spec(cfg))
    if not backbone:
        spec = dataclasses.replace(spec, backbone_weights="none")
    G = build_generator(spec)
    D = build_discriminator(spec) if with_d else None
    G, D = stack.configure_modules(G, D)
    return spec, G, D


def make_optimizer(params, lr: float, betas, weight_decay: float, device: torch.device, fused: bool | None = None) -> torch.optim.Adam:
    """Adam; ``fused`` (default: on CUDA) runs the fused kernel, one pass over the parameters."""
    kwargs: dict[str, Any] = {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay}
    if device.type == "cuda" if fused is None else fused:
        kwargs["fused"] = True
    return torch.optim.Adam(params, **kwargs)


def linear_decay(total: int, decay_steps: int) -> Callable[[int], float]:
    """LR factor: 1 until the last ``decay_steps`` iterations, then linearly down to 0."""
    start = total - decay_steps

    def factor(step: int) -> float:
        if decay_steps <= 0 or step < start:
            return 1.0
        return max(0.0, 1.0 - (step - start + 1) / (decay_steps + 1))

    return factor


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    if cfg.steps is not None:
        adversarial = cfg.steps
    else:
        epochs = cfg.epochs if cfg.epochs is not None else 200
        adversarial = math.ceil(epochs * n_train / cfg.batch_size)
    return cfg.pretrain_steps + adversarial


@dataclass
class Session:
    """A training session: the networks, optimisers, learning-rate schedule, trick stack and
    step of a run, built by :func:`build_session`; :meth:`iterate` is the loop's body."""

    cfg: TrainConfig
    runtime: Runtime
    stack: TrickStack
    spec: NetSpec
    G: nn.Module
    D: nn.Module | None  # None in the L1-only control (--gan-mode none)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    lr_factor: Callable[[int], float]
    ctx: StepContext
    step_fn: Pix2PixStep


    def iterate(self, step: int, next_batch: Callable[[], Batch]) -> None:
        """One iteration of the run at ``step``: the learning rates, the pre-training or the
        adversarial step, and the learning rates reported. The only loop body: training,
        ``ganlab bench`` and the conformance checks all call it."""
        self.ctx.step = step
        set_learning_rates(self, step)
        if step < self.cfg.pretrain_steps:
            self.step_fn.pretrain(next_batch)
        else:
            self.step_fn(next_batch)
        report("lr/G", self.opt_g.param_groups[0]["base_lr"] * self.lr_factor(step))
        if self.opt_d is not None:
            report("lr/D", self.opt_d.param_groups[0]["base_lr"] * self.lr_factor(step))


def build_session(cfg: TrainConfig, runtime: Runtime, total: int, dist: Dist | None = None) -> Session:
    """``dist`` trains over processes: BatchNorm becomes synchronised BatchNorm and the step
    runs G and D wrapped in DistributedDataParallel; ``Session.G``/``Session.D`` stay the plain
    modules (their checkpoints are the same)."""
    stack = build_stack(cfg)
    torch.manual_seed(cfg.seed)
    adversarial = cfg.gan_mode != L1_ONLY  # the L1-only control builds no D
    spec, G, D = build_networks(cfg, stack, with_d=adversarial)
    if dist is not None and dist.enabled:
        G, D = dist.sync_batchnorm(G), dist.sync_batchnorm(D) if adversarial else None
    G = G.to(runtime.device, memory_format=runtime.memory_format)
    ospec = stack.configure_optim(optim_spec(cfg))
    opt_g = make_optimizer(G.parameters(), ospec.lr_g, ospec.betas_g, ospec.weight_decay, runtime.device, runtime.fused_adam)
    opt_d = None
    if adversarial:
        D = D.to(runtime.device, memory_format=runtime.memory_format)
        opt_d = make_optimizer(D.parameters(), ospec.lr_d, ospec.betas_d, ospec.weight_decay, runtime.device, runtime.fused_adam)
    for opt in _optimizers(opt_g, opt_d):
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    rng = torch.Generator(device=runtime.device).manual_seed(cfg.seed + 1)
    mode = stack.configure_loss(cfg.gan_mode)  # a trick may replace the adversarial loss
    ctx = StepContext(cfg=cfg, G=G, D=D, opt_g=opt_g, opt_d=opt_d, rng=rng, device=runtime.device, gan_mode=mode, total_steps=total)
    stack.setup(ctx)
    G_run, D_run = (dist.wrap(G), dist.wrap(D) if adversarial else None) if dist is not None and dist.enabled else (G, D)
    step_fn = Pix2PixStep(G_run, D_run, opt_g, opt_d, gan_mode=mode, lambda_l1=cfg.lambda_l1, stack=stack, ctx=ctx,
                          autocast=runtime.autocast, compile=runtime.compile)
    if runtime.cuda_graphs:
        step_fn = GraphedStep(step_fn)
    return Session(cfg, runtime, stack, spec, G, D, opt_g, opt_d, linear_decay(total, cfg.lr_decay_steps), ctx, step_fn)


def _optimizers(*opts):
    return [opt for opt in opts if opt is not None]


def set_learning_rates(session: Session, step: int) -> None:
    """The learning rates at ``step``: each optimiser's base rate times the decay factor."""
    factor = session.lr_factor(step)
    for opt in _optimizers(session.opt_g, session.opt_d):
        for group in opt.param_groups:
            if isinstance(group["lr"], torch.Tensor):  # a captured CUDA graph reads this tensor
                group["lr"].fill_(group["base_lr"] * factor)
            else:
                group["lr"] = group["base_lr"] * factor


# --------------------------------------------------------------------------------------------
# What a run actually uses: the settings that flow through the tricks' build hooks
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value that compares equal across rebuilt tricks: a callable (a ``d_wrap`` entry, a
    bound method of a trick) by its qualified name, a tuple entry by entry."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if callable(value):
        fn = getattr(value, "__func__", value)
        return f"<{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}>"
    return value


def effective_settings(cfg: TrainConfig, stack: TrickStack | Sequence[Trick] = ()) -> dict[str, Any]:
    """The build-time settings the run uses after the tricks' hooks, one flat dict:
    ``nets.<field>`` (the :class:`NetSpec` after ``configure_nets``), ``optim.<field>`` (the
    :class:`OptimSpec` after ``configure_optim``) and ``loss`` (after ``configure_loss``).

    ``stack`` is a :class:`TrickStack` or a plain list of tricks, folded in the stack's order
    (ascending ``order``, then name) without its compatibility checks, so that a combination
    this ``gan_mode`` would refuse can still be asked what it does. Callables in the spec
    (``d_wrap``) are compared by their qualified name, not by what they close over.
    Nothing is built; this is cheap enough to call per trial."""
    if not isinstance(stack, TrickStack):
        stack = TrickStack(list(stack), cfg.gan_mode, checked=False)  # the stack's own fold and order
    nets, optim, loss = stack.configure_nets(net_spec(cfg)), stack.configure_optim(optim_spec(cfg)), stack.configure_loss(cfg.gan_mode)
    out: dict[str, Any] = {f"nets.{f.name}": _plain(getattr(nets, f.name)) for f in dataclasses.fields(nets)}
    out.update({f"optim.{f.name}": _plain(getattr(optim, f.name)) for f in dataclasses.fields(optim)})
    out["loss"] = loss
    return out


def differing(settings: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The keys whose values are not the same in all of ``settings`` (effective settings)."""
    if not settings:
        return ()
    first = settings[0]
    return tuple(k for k in first if any(s.get(k) != first[k] for s in settings[1:]))


def overridden_setting(cfg: TrainConfig, name: str, values: Sequence[Any],
                       stack: TrickStack | Sequence[Trick]) -> tuple[str, ...]:
    """Whether the base setting ``name`` is dead under ``stack``, without naming any trick.

    Sets ``name`` to each of ``values`` in ``cfg`` (the two ends of a search range, or every
    choice) and compares the effective settings. Returns the effective settings ``name``
    reaches without tricks (``optim.lr_g``, ``optim.lr_d`` for ``lr``) when, under ``stack``,
    it reaches none of them any more: the tricks set them themselves, and the setting is dead.
    Returns ``()`` when it is live: it still changes something under ``stack``, or it never
    passes through a build hook at all (``lambda_l1``, ``batch_size``, ``lr_decay_steps``: the
    step reads them directly, so no trick can override them through these hooks)."""
    variants = [cfg.replace(**{name: v}) for v in values]
    alone = differing([effective_settings(c) for c in variants])
    if not alone:
        return ()
    under = differing([effective_settings(c, stack) for c in variants])
    return () if under else alone


def overridden_trick_param(cfg: TrainConfig, variants: Sequence[Trick], others: Sequence[Trick]) -> tuple[str, ...]:
    """The same question for a trick's parameter: ``variants`` are the trick built with the
    parameter at each of its values, ``others`` the rest of the stack. Returns the effective
    settings the parameter reaches with its trick alone when, with ``others`` folded in, it
    reaches none of them (a trick later in the fold sets them itself); ``()`` when it is live.
    Only the build hooks are seen: a parameter that reaches nothing here (``n_critic``, a
    penalty's weight) acts in the step and is live; one that reaches a build setting and is
    read by a step hook as well would be called dead when that setting is overridden."""
    alone = differing([effective_settings(cfg, [v]) for v in variants])
    if not alone:
        return ()
    under = differing([effective_settings(cfg, [*others, v]) for v in variants])
    return () if under else alone
