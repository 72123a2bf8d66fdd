"""Adversarial ramp: the weight of G's adversarial term rises from 0 to 1 after the hand-over.

A generator pre-trained with L1 keeps its reconstruction while the adversarial term comes in
gradually, instead of taking the full gradient of an untrained discriminator at once. The
ramp-up of an added loss term is the schedule of Laine & Aila, "Temporal Ensembling for
Semi-Supervised Learning", ICLR 2017 (unsupervised weight ramped up from 0), used for the
adversarial term of pre-trained generators, e.g. Wang et al., "ESRGAN", ECCV 2018 workshops
(PSNR-oriented pre-training, then the GAN stage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganlab.trick import Phase, StepContext, Trick, above, param
from ganlab.stats import report


@dataclass(frozen=True)
class AdvRampParams:
    steps: int = param(100, low=0, high=10_000_000, search=(0, 1000),
                       help="adversarial iterations over which the weight rises to 1 (0: no ramp)")
    start: float = param(0.0, low=0.0, high=1.0, search=(), help="the weight at the hand-over",
                         active_if={"steps": above(0)})
    shape: str = param("linear", choices=("linear", "cosine"), help="linear, or a half cosine (slow start and end)",
                       active_if={"steps": above(0)})


def ramp_weight(t: int, steps: int, start: float = 0.0, shape: str = "linear") -> float:
    """The adversarial weight at adversarial iteration ``t`` (0-based): ``start`` at 0, 1 from ``steps`` on."""
    if steps <= 0 or t >= steps:
        return 1.0
    frac = max(t, 0) / steps
    if shape == "cosine":
        frac = 0.5 - 0.5 * math.cos(math.pi * frac)
    return start + (1.0 - start) * frac


class AdvRamp(Trick):
    """Adversarial ramp: G's adversarial term is multiplied by a weight that rises from
    ``start`` (0) at the first adversarial iteration (after ``--pretrain-steps``; step 0
    without pre-training) to 1 at iteration ``steps``, linearly or along a half cosine; the
    L1 term and D's update are unchanged. The weight is logged as ``tricks/adv_weight``.

    Sources: Laine & Aila, "Temporal Ensembling for Semi-Supervised Learning", ICLR 2017 (a
    loss term ramped up from 0); Wang et al., "ESRGAN", ECCV 2018 workshops (an L1-pre-trained
    generator handed to the adversarial stage).
    """

    name = "adv-ramp"
    Params = AdvRampParams
    summary = "G's adversarial weight ramped from 0 to 1 over N iterations after the hand-over"
    paper = "Laine & Aila, ICLR 2017 (ramp-up); Wang et al., ESRGAN, ECCVW 2018"
    order = 85  # after the loss tricks that add terms; scales only 'adv'
    identity = {"steps": 0}

    def weight(self, ctx: StepContext) -> float:
        p = self.params
        return ramp_weight(ctx.adv_step, p.steps, p.start, p.shape)

    def g_loss(self, terms: dict[str, torch.Tensor], phase: Phase, ctx: StepContext):
        w = self.weight(ctx)
        report("tricks/adv_weight", w)
        if w == 1.0:
            return terms
        return {k: v * w if k == "adv" else v for k, v in terms.items()}
