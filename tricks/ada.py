"""Adaptive discriminator augmentation (ADA): augment everything D sees, with a probability p
that a feedback loop sets from how sure D is on the real data.

Karras, Aittala, Hellsten, Laine, Lehtinen, Aila: "Training Generative Adversarial Networks
with Limited Data", NeurIPS 2020 (official code: NVlabs/stylegan2-ada-pytorch,
training/training_loop.py and training/augment.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganlab.losses import RELATIVISTIC_MODES, decision_threshold
from ganlab.stats import report
from ganlab.trick import Capability, Phase, StepContext, Trick, param
from ganlab.tricks._augment import ada_pair


@dataclass(frozen=True)
class AdaParams:
    target: float = param(0.6, low=0.0, high=1.0, search=(0.4, 0.8),
                          help="the r_t = E[sign(D(real))] that p is steered to (ADA: 0.6); 1 keeps p at p_init")
    interval: int = param(4, low=1, high=1000, search=(), help="D updates between adjustments of p (ADA: 4 minibatches)")
    kimg: float = param(500.0, low=1e-3, high=1e6, search=(50.0, 500.0), log=True,
                        help="thousands of images for p to move by 1 (ADA: 500)")
    p_init: float = param(0.0, low=0.0, high=1.0, search=(), help="p at the start (ADA: 0)")


class Ada(Trick):
    """ADA: every pair D sees -- the real and the fake pair of D's update, and the fake pair G's
    loss is taken through -- is augmented, each operation applied to a sample with probability
    p; p starts at ``p_init`` (0) and every ``interval`` (4) D updates moves by
    sign(r_t - target) * batch * interval / (kimg * 1000), never below 0, where r_t is the mean
    of sign(D(real)) over those updates' real logits (every patch logit of a PatchGAN; the
    sign about --gan-mode's decision threshold, 0.5 for lsgan; under rpgan, where only
    differences of logits mean anything, sign(D(real) - D(fake)) of the paired logits). D
    memorising the small set drives r_t towards 1 and p up; a D that cannot tell real from fake
    lets p fall. The adjustment is ADA's; with batch 4 and the defaults p can move by at most
    0.008 per 1000 steps, so short runs need a smaller ``kimg``.

    The pipeline is ADA's 'bgc' reduced to what needs no resampling (which at 32-64 px blurs
    more than it augments): geometric x-flip, rotation by multiples of 90 degrees and integer
    translation up to 1/8 of the size (reflect padding) on the condition and image together;
    brightness, contrast and saturation (ADA's strengths) on the image channels only, with
    saturation about grey (RGB) or about a = b = 0 (colourisation's a/b channels, where
    brightness, which moves L alone, the condition, is left out). Dropped:
    fractional translation, isotropic and anisotropic scaling, arbitrary rotation, luma flip,
    hue rotation, the filters and noise. All operations are differentiable, so G's gradient
    flows through the augmentation of its fakes.

    ``p`` and the accumulated signs are checkpointed and resumed exactly; ``tricks/ada_p``
    (every D update) and ``tricks/ada_rt`` (every adjustment) go to TensorBoard.

    Paper: Karras et al., "Training Generative Adversarial Networks with Limited Data",
    NeurIPS 2020.
    """

    name = "ada"
    Params = AdaParams
    summary = "adaptive augmentation of D's inputs (flip, rot90, integer shift; colour on the image channels), p steered to r_t = 0.6"
    paper = "Karras et al., Training Generative Adversarial Networks with Limited Data, NeurIPS 2020"
    order = 45
    provides = frozenset({Capability.AUGMENTATION})
    conflicts = {Capability.AUGMENTATION: "both augment what D sees; keep one augmentation"}
    identity = {"target": 1.0}

    def __init__(self, params=None):
        super().__init__(params)
        self.p = float(self.params.p_init)
        self.sign_sum = 0.0  # sum of the signs since the last adjustment
        self.sign_count = 0
        self.updates = 0  # D updates since the last adjustment
        self._pending: list[torch.Tensor] = []  # this interval's sums, kept on the device

    def _augment(self, pair, ctx: StepContext):
        if self.p <= 0.0:
            return pair
        cond, img = pair
        return ada_pair(cond, img, self.p, ctx.rng, chroma=ctx.cfg.out_channels == 2)

    def d_inputs(self, real_pair, fake_pair, ctx: StepContext):
        return self._augment(real_pair, ctx), self._augment(fake_pair, ctx)

    def g_inputs(self, fake_pair, ctx: StepContext):
        return self._augment(fake_pair, ctx)

    def d_loss(self, terms: dict, phase: Phase, ctx: StepContext) -> dict:
        d_real = phase.d_real.detach()
        if ctx.gan_mode in RELATIVISTIC_MODES:
            signs = torch.sign(d_real - phase.d_fake.detach())
        else:
            signs = torch.sign(d_real - decision_threshold(ctx.gan_mode))
        self._pending.append(signs.sum())
        self.sign_count += signs.numel()
        return terms

    def after_d_update(self, ctx: StepContext) -> None:
        self.updates += 1
        if self.updates >= self.params.interval:
            if self._pending:
                self.sign_sum += float(torch.stack(self._pending).sum())
                self._pending = []
            r_t = self.sign_sum / max(self.sign_count, 1)
            batch = ctx.cfg.batch_size if ctx.cfg is not None else 1
            adjust = math.copysign(1.0, r_t - self.params.target) if r_t != self.params.target else 0.0
            self.p = max(self.p + adjust * batch * self.params.interval / (self.params.kimg * 1000.0), 0.0)
            report("tricks/ada_rt", r_t)
            self.sign_sum, self.sign_count, self.updates = 0.0, 0, 0
        report("tricks/ada_p", self.p)

    def state_dict(self) -> dict:
        pending = float(torch.stack(self._pending).sum()) if self._pending else 0.0
        return {"p": self.p, "sign_sum": self.sign_sum + pending, "sign_count": self.sign_count, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state.get("p", self.params.p_init))
        self.sign_sum = float(state.get("sign_sum", 0.0))
        self.sign_count = int(state.get("sign_count", 0))
        self.updates = int(state.get("updates", 0))
        self._pending = []
