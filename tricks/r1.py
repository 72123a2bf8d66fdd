"""R1: a zero-centred gradient penalty on real data, optionally lazy.

Mescheder, Geiger, Nowozin: "Which Training Methods for GANs do actually Converge?",
ICML 2018; lazy regularisation from Karras et al., "Analyzing and Improving the Image Quality
of StyleGAN", CVPR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganlab.trick import Phase, StepContext, Trick, param


@dataclass(frozen=True)
class R1Params:
    gamma: float = param(1.0, low=0.0, high=1000.0, search=(0.01, 100.0), log=True, help="penalty weight (the term is gamma/2 * E||grad||^2)")
    every: int = param(1, low=1, high=1000, search=(1, 16), help="lazy regularisation: penalise every k-th step, scaled by k")


def r1_penalty(d_forward, cond: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(cond, x)||^2] at the real images (D's value per sample: the mean of its map)."""
    x = real.detach().requires_grad_(True)
    with torch.enable_grad():
        score = d_forward(cond.detach(), x).flatten(1).mean(1)
        (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return grad.flatten(1).float().pow(2).sum(1).mean()


class R1(Trick):
    """R1 penalty: gamma/2 * E[||grad_x D(cond, x)||^2] at the real images, added to D's loss;
    it pulls D's gradient on the data towards zero, which makes the training dynamics converge
    locally. With ``every=k`` (lazy regularisation) the penalty is computed only every k-th
    step and multiplied by k. Logged as ``D/r1``. Works with every --gan-mode.

    The penalty needs an extra D pass on the real batch; with a BatchNorm discriminator that
    pass also updates the running statistics (as D's own real pass does).

    Papers: Mescheder et al., "Which Training Methods for GANs do actually Converge?",
    ICML 2018; Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR
    2020 (lazy regularisation).
    """

    name = "r1"
    Params = R1Params
    summary = "zero-centred gradient penalty on real data, gamma/2 E||grad D||^2, optionally lazy"
    paper = "Mescheder et al., Which Training Methods for GANs do actually Converge?, ICML 2018"
    order = 80
    provides = frozenset({"gradient-penalty"})
    conflicts = {"gradient-penalty": "both penalise the critic's input gradient (R1 on real data, WGAN-GP on interpolates); keep one"}
    identity = {"gamma": 0.0}

    def penalty_passes(self, step: int) -> int:
        return int(self.params.gamma > 0 and step % self.params.every == 0)

    def d_loss(self, terms: dict, phase: Phase, ctx: StepContext) -> dict:
        p = self.params
        if p.gamma == 0.0 or ctx.step % p.every:
            return terms
        penalty = r1_penalty(phase.d_forward, phase.cond, phase.real)
        return {**terms, "r1": (0.5 * p.gamma * p.every) * penalty}
