"""An exponential moving average of the generator's weights, used for evaluation.

Yazıcı, Foo, Winkler, Yap, Piliouras, Chandrasekhar: "The Unusual Effectiveness of Averaging
in GAN Training", ICLR 2019; Karras et al., "Progressive Growing of GANs", ICLR 2018.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ganlab.trick import Capability, StepContext, Trick, param


@dataclass(frozen=True)
class GEmaParams:
    decay: float = param(0.999, low=0.0, high=1.0, search=(0.99, 0.9999), help="weight of the old average at each update")
    warmup: bool = param(True, search=(), help="use decay min(decay, (1+n)/(10+n)) for the n-th update, so early averages are not stuck at the initial G")


class GEma(Trick):
    """G-EMA: a shadow copy of G whose weights follow G's as an exponential moving average,
    ema <- decay * ema + (1 - decay) * G after every generator update (BatchNorm statistics
    are copied). Training is unchanged; evaluation, the samples, the checkpoint's ``G_ema``
    and ``ganlab colorize --checkpoint ema`` use the average, which smooths out the
    generator's oscillation around the equilibrium.

    Papers: Yazıcı et al., "The Unusual Effectiveness of Averaging in GAN Training", ICLR 2019;
    Karras et al., "Progressive Growing of GANs", ICLR 2018.
    """

    name = "g-ema"
    Params = GEmaParams
    summary = "exponential moving average of G's weights, used for evaluation and colorize"
    paper = "Yazıcı et al., The Unusual Effectiveness of Averaging in GAN Training, ICLR 2019"
    order = 90
    needs_discriminator = False  # acts on G; the L1-only control can run it
    provides = frozenset({Capability.G_AVERAGE})
    identity = {}  # training is identical at every setting; only evaluation uses the average

    def __init__(self, params=None):
        super().__init__(params)
        self.ema: torch.nn.Module | None = None
        self.updates = 0

    def setup(self, ctx: StepContext) -> None:
        self.ema = copy.deepcopy(ctx.G).eval().requires_grad_(False)
        self.updates = 0

    def decay(self) -> float:
        d = self.params.decay
        if self.params.warmup:
            d = min(d, (1.0 + self.updates) / (10.0 + self.updates))
        return d

    @torch.no_grad()
    def after_g_update(self, ctx: StepContext) -> None:
        d = self.decay()
        ema_p = [p for p in self.ema.parameters()]
        g_p = [p.detach() for p in ctx.G.parameters()]
        if ema_p:
            torch._foreach_lerp_(ema_p, g_p, 1.0 - d)
        for b_ema, b in zip(self.ema.buffers(), ctx.G.buffers()):
            b_ema.copy_(b)
        self.updates += 1

    def eval_generator(self, G, ctx: StepContext):
        return self.ema if self.ema is not None else G

    def g_copies(self) -> int:
        return 1

    def state_dict(self) -> dict:
        return {"updates": self.updates, "ema": None if self.ema is None else self.ema.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state.get("updates", 0))
        if state.get("ema") is not None and self.ema is not None:
            self.ema.load_state_dict(state["ema"])
