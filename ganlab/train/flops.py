"""An analytic FLOP count of the exact training step, for model-FLOPs utilisation (MFU).

The count walks the built networks: one forward pass at batch 1 with hooks on every
convolution, transposed convolution and linear layer records the layer's forward FLOPs
(2 x multiply-adds, from its weight and its input and output shapes) and whether its input
needs a gradient when the network's input does not. FLOPs are linear in the batch size.

A step is then a sum of *passes*, each priced from the layers:

======================  ====================================================================
pass                    FLOPs (F = the layer's forward FLOPs, summed over layers)
======================  ====================================================================
G forward               F (the generated batch of every D and G update)
G backward              F for the weight gradients + F for every input gradient, except the
                        first layer, whose input (the condition) needs none
D pass of a D update    F forward + F weight gradients + F input gradients but the first
                        layer's (its input, the detached pair, needs none)
D pass of a G update    F forward + F input gradients (D's weights are frozen)
gradient penalty pass   F forward + F input gradients with a graph (first layer included)
                        + the double backward: 4F per layer, 2F for the last layer (its
                        incoming gradient is a constant)
======================  ====================================================================

So "backward = 2 x forward" holds layer by layer only where both gradients are computed; the
count says exactly which are. Norms, activations, losses and the optimiser are not counted:
they are memory-bound, and :class:`torch.utils.flop_counter.FlopCounterMode` (which the tests
check this count against, pass by pass) does not count them either.

How many passes of each kind a step makes depends on its :class:`~ganlab.trick.StepPlan`
(``d_steps`` D updates, ``g_steps`` G updates) and on the tricks (a gradient penalty adds a pass
per D update, as its trick declares with ``penalty_passes``). :func:`plan_passes` predicts them; :class:`PassCounter` counts the passes
a running step actually makes, which is what ``ganlab bench`` divides by the time.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganlab.modes import RELATIVISTIC_MODES
from ganlab.trick._stack import TrickStack

from ganlab.trick import StepPlan

__all__ = ["NetFlops", "PassCounter", "Passes", "describe", "extra_passes", "model_flops", "net_flops", "penalty_passes", "plan_passes",
           "session_step_flops", "step_flops"]

FLOP_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


@dataclass(frozen=True)
class Layer:
    """One layer that does the arithmetic, as seen in a forward pass at batch 1."""

    name: str
    kind: str  # conv | conv_transpose | linear
    flops: int  # forward FLOPs per image
    input_grad: bool  # its input needs a gradient even when the network's input does not
    weight_grad: bool  # its weight is trained
    last: bool  # its output is the network's output


def _layer_flops(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> tuple[str, int]:
    w = module.weight
    if isinstance(module, nn.Linear):
        return "linear", 2 * x.numel() * w.shape[0]
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        # Each input position scatters a (C_out / groups) x kernel block: the transposed view
        # of a convolution (as torch.utils.flop_counter prices it).
        return "conv_transpose", 2 * x.numel() * w[0].numel()
    return "conv", 2 * out.numel() * w[0].numel()


@dataclass(frozen=True)
class NetFlops:
    """The FLOP-doing layers of one network and the passes priced from them (per image)."""

    layers: tuple[Layer, ...]

    @property
    def forward(self) -> int:
        return sum(layer.flops for layer in self.layers)

    def backward(self, *, input_grad: bool, weight_grad: bool) -> int:
        """A backward pass. ``input_grad``: the network's input needs a gradient (so every layer
        computes its input gradient); ``weight_grad``: the weights get theirs."""
        total = 0
        for layer in self.layers:
            if weight_grad and layer.weight_grad:
                total += layer.flops
            if input_grad or layer.input_grad:
                total += layer.flops
        return total

    def penalty(self) -> int:
        """A gradient-penalty pass: the forward, the gradient w.r.t. the input with a graph, and
        the double backward to the weights (and the input) that the penalty's loss makes."""
        double = sum(2 * layer.flops if layer.last else 4 * layer.flops for layer in self.layers)
        return self.forward + self.backward(input_grad=True, weight_grad=False) + double


@torch.no_grad()
def _example(module: nn.Module, channels: int, size: int) -> torch.Tensor:
    p = next(module.parameters())
    return torch.zeros(1, channels, size, size, device=p.device, dtype=p.dtype)


def net_flops(module: nn.Module, example: torch.Tensor) -> NetFlops:
    """Walk ``module`` with one forward of ``example`` (batch 1; no gradient of its own).

    The module runs in eval mode (no running statistics or power iterations are updated, no
    dropout) and is put back in the mode it was in. Wrapped modules (DistributedDataParallel,
    ``torch.compile``) are unwrapped first.
    """
    module = unwrap(module)
    if example.shape[0] != 1:
        raise ValueError("net_flops: the example must be a batch of 1 (FLOPs scale with the batch)")
    records: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []
    names = {m: n for n, m in module.named_modules()}

    def hook(m, args, out):
        records.append((names.get(m, type(m).__name__), m, args[0], out))

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, FLOP_LAYERS)]
    was_training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            result = module(example.detach())
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    layers = []
    for name, m, x, out in records:
        kind, flops = _layer_flops(m, x, out)
        layers.append(Layer(name, kind, int(flops), bool(x.requires_grad), bool(m.weight.requires_grad), out is result))
    return NetFlops(tuple(layers))


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(module, DistributedDataParallel):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):  # torch.compile's wrapper
            module = module._orig_mod
        else:
            return module


def model_flops(G: nn.Module, D: nn.Module, in_channels: int, out_channels: int, size: int) -> tuple[NetFlops, NetFlops]:
    """The FLOP tables of a pix2pix G (condition in) and D (condition and image in)."""
    g = net_flops(G, _example(unwrap(G), in_channels, size))
    d = net_flops(D, _example(unwrap(D), in_channels + out_channels, size))
    return g, d


# ---------------------------------------------------------------------------------------------
# Passes
# ---------------------------------------------------------------------------------------------


@dataclass
class Passes:
    """How many passes of each kind a run of steps made (or will make), in batches."""

    g_forward: int = 0  # G forwards (each D update's fakes; a G update's fresh fakes)
    g_backward: int = 0  # G backward passes (one per G update)
    d_update: int = 0  # D passes inside D updates (fakes and reals: forward + backward)
    d_for_g: int = 0  # D passes inside G updates (D frozen: forward + input gradient)
    d_penalty: int = 0  # gradient-penalty passes (WGAN-GP, R1)

    def __add__(self, other: "Passes") -> "Passes":
        return Passes(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def scaled(self, k: int) -> "Passes":
        return Passes(*(k * a for a in dataclasses.astuple(self)))

    def __bool__(self) -> bool:
        return any(dataclasses.astuple(self))


def plan_passes(d_steps: int = 1, g_steps: int = 1, penalties_per_d_update: int = 0, *, d_per_d_update: int = 0,
                d_per_g_update: int = 0) -> Passes:
    """The passes of one iteration of :class:`ganlab.train.step.Pix2PixStep` under a StepPlan.

    Every D update generates its fakes (without a graph unless the G update that follows
    reuses them); every G update after the first generates fresh ones. ``d_per_d_update`` and
    ``d_per_g_update`` are D passes beyond the step's own two and one (a trick's, or rpgan's
    real pass in the G update).
    """
    g_forward = d_steps
    for j in range(g_steps):
        if d_steps == 0 or j > 0:
            g_forward += 1
    return Passes(
        g_forward=g_forward,
        g_backward=g_steps,
        d_update=(2 + d_per_d_update) * d_steps,
        d_for_g=(1 + d_per_g_update) * g_steps,
        d_penalty=penalties_per_d_update * d_steps,
    )


def penalty_passes(stack: TrickStack, step: int = 0) -> int:
    """Gradient-penalty passes per D update that the tricks of ``stack`` make at ``step``, as
    each declares with :meth:`ganlab.trick.Trick.penalty_passes`."""
    return sum(int(trick.penalty_passes(step)) for trick in stack.tricks)


def extra_passes(stack: TrickStack, step: int = 0) -> tuple[int, int]:
    """(D passes per D update, D passes per G update) beyond the step's own, that the tricks of
    ``stack`` declare with :meth:`ganlab.trick.Trick.extra_passes` and that the loss makes
    (``rpgan``: D on the real pair in every G update)."""
    d = sum(int(t.extra_passes(step).get("d_update", 0)) for t in stack.tricks)
    g = sum(int(t.extra_passes(step).get("d_for_g", 0)) for t in stack.tricks)
    return d, g


def step_flops(g: NetFlops, d: NetFlops, passes: Passes, batch_size: int) -> dict[str, Any]:
    """FLOPs of ``passes`` at ``batch_size``, with the breakdown by pass kind.

    Returns ``{"G forward", "G backward", "D update passes", "D passes of the G update",
    "gradient penalties", "total", "per_image"}`` (FLOPs; ``per_image`` divides by the images
    of one batch, so for one iteration it is the cost of the step per image).
    """
    parts = {
        "G forward": passes.g_forward * g.forward,
        "G backward": passes.g_backward * g.backward(input_grad=False, weight_grad=True),
        "D update passes": passes.d_update * (d.forward + d.backward(input_grad=False, weight_grad=True)),
        "D passes of the G update": passes.d_for_g * (d.forward + d.backward(input_grad=True, weight_grad=False)),
        "gradient penalties": passes.d_penalty * d.penalty(),
    }
    parts = {k: v * batch_size for k, v in parts.items()}
    total = sum(parts.values())
    return {**parts, "total": total, "per_image": total / batch_size}


def session_step_flops(session, plan=None, extra_d_passes: int | None = None) -> dict[str, Any]:
    """FLOPs of one iteration of a built :class:`ganlab.train.Session` at its batch size.

    ``plan`` (a StepPlan) defaults to what the session's trick stack plans at ``ctx.step``;
    ``extra_d_passes`` (gradient-penalty passes per D update) to what its tricks make
    (:func:`penalty_passes`).
    """
    cfg = session.cfg
    g, d = model_flops(session.G, session.D, cfg.in_channels, cfg.out_channels, cfg.size)
    if plan is None:
        plan = session.stack.plan(StepPlan(), session.ctx)
    if extra_d_passes is None:
        extra_d_passes = penalty_passes(session.stack, session.ctx.step)
    d_more, g_more = extra_passes(session.stack, session.ctx.step)
    g_more += int(session.ctx.gan_mode in RELATIVISTIC_MODES)
    passes = plan_passes(plan.d_steps, plan.g_steps, extra_d_passes, d_per_d_update=d_more, d_per_g_update=g_more)
    return step_flops(g, d, passes, cfg.batch_size)


# ---------------------------------------------------------------------------------------------
# Counting the passes a running step makes
# ---------------------------------------------------------------------------------------------


class PassCounter:
    """Counts the passes a :class:`~ganlab.train.step.Pix2PixStep` makes, step by step.

    It wraps the step's ``generate``, ``d_forward`` and ``g_update`` on the instance (the
    class is untouched) and classifies every D pass by what needs a gradient when it is made:
    the image but not D's weights (a G update), D's weights and the image (a penalty), or D's
    weights only (a D update). Python counters only: nothing waits for the device.
    """

    def __init__(self) -> None:
        self.current = Passes()
        self.steps: list[Passes] = []

    def end_step(self) -> None:
        self.steps.append(self.current)
        self.current = Passes()

    def total(self, first: int = 0, last: int | None = None) -> Passes:
        """Passes of steps ``first..last-1``. A step that made none (a CUDA-graph replay, which
        repeats the captured step) counts as the last step that did."""
        out, previous = Passes(), Passes()
        for i, p in enumerate(self.steps):
            if p:
                previous = p
            if i >= first and (last is None or i < last):
                out = out + (p if p else previous)
        return out

    @contextlib.contextmanager
    def attach(self, step_fn) -> Iterator["PassCounter"]:
        D = unwrap(step_fn.D)
        generate, d_forward, g_update = step_fn.generate, step_fn.d_forward, step_fn.g_update

        def counted_generate(*args, **kwargs):
            self.current.g_forward += 1
            return generate(*args, **kwargs)

        def counted_d_forward(cond, x, *args, **kwargs):
            d_trained = any(p.requires_grad for p in D.parameters())
            if not d_trained:
                self.current.d_for_g += 1
            elif x.requires_grad or cond.requires_grad:
                self.current.d_penalty += 1
            else:
                self.current.d_update += 1
            return d_forward(cond, x, *args, **kwargs)

        def counted_g_update(*args, **kwargs):
            self.current.g_backward += 1
            return g_update(*args, **kwargs)

        step_fn.generate, step_fn.d_forward, step_fn.g_update = counted_generate, counted_d_forward, counted_g_update
        try:
            yield self
        finally:
            for name in ("generate", "d_forward", "g_update"):
                step_fn.__dict__.pop(name, None)


def describe(flops: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if flops >= scale:
            return f"{flops / scale:.2f} {unit}"
    return f"{flops:.0f} FLOP"
