"""R1: a zero-centred gradient penalty on real data, per patch of a PatchGAN, optionally lazy.

Mescheder, Geiger, Nowozin: "Which Training Methods for GANs do actually Converge?",
ICML 2018; lazy regularisation from Karras et al., "Analyzing and Improving the Image Quality
of StyleGAN", CVPR 2020.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganlab.stats import report
from ganlab.trick import Phase, StepContext, Trick, param


@dataclass(frozen=True)
class R1Params:
    gamma: float = param(0.1, low=0.0, high=1000.0, search=(0.01, 0.3), log=True,
                         help="penalty weight: gamma/2 * E||grad_x D(x)||^2 per patch logit, as in the paper for one logit")
    every: int = param(1, low=1, high=1000, search=(1, 16), help="lazy regularisation: penalise every k-th step, scaled by k")
    schedule: str = param("constant", choices=("constant", "cosine"), search=(),
                          help="gamma constant, or cosine-decayed to gamma*final over the adversarial steps (R3GAN)")
    final: float = param(0.1, low=0.0, high=1.0, search=(), help="with schedule=cosine: the last gamma as a fraction of gamma (R3GAN: 0.1)")


def gamma_at(gamma: float, schedule: str, final: float, ctx) -> float:
    """gamma at the context's step: constant, or R3GAN's cosine decay from gamma to gamma*final
    over the run's adversarial steps (after --pretrain-steps), final from then on."""
    if schedule == "constant" or gamma == 0.0:
        return gamma
    pre = ctx.cfg.pretrain_steps if ctx.cfg is not None else 0
    span = max(ctx.total_steps - pre, 1)
    t = min(max(ctx.step - pre, 0) / span, 1.0)
    end = gamma * final
    return end + 0.5 * (gamma - end) * (1.0 + math.cos(math.pi * t))


def r1_penalty(d_forward, cond: torch.Tensor, real: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """E over samples and patch logits of ||grad_x D_p(cond, x)||^2 at the real images.

    Each logit ``D_p`` of D's map is one discriminator of the paper (it judges the patch it
    sees), so the penalty means the same for a 1-logit D, a 70x70 PatchGAN and a PixelGAN, at
    every image size. Computed with one backward pass as ``||grad_x sum_p v_p D_p||^2 / P``
    with ``v`` Rademacher signs (one per sample and logit, drawn from ``generator``): since
    ``E[v_p v_q] = [p = q]``, this is an *unbiased* estimate of the mean over logits of the
    per-logit squared gradient norms (and its gradient an unbiased estimate of that mean's
    gradient). Each draw adds a zero-mean cross term ``sum_{p != q} v_p v_q <grad D_p, grad D_q>
    / P``, so it is *exact* when no input pixel reaches two logits (1x1 patches without
    BatchNorm); with overlapping 70x70 patches one draw is within about 13% (32 px), 5% (64 px)
    and 3% (128 px) of the exact value (batch 2), without bias. Without the signs, the gradient
    of the plain sum is biased by those cross terms, by a factor that depends on the image
    size (0.65x, 0.42x and 0.26x the exact value at 32, 64 and 128 px for the default
    PatchGAN). A D with one logit per sample draws no signs: the usual gradient of the batch's
    summed logits. The
    gradient is with respect to the whole input batch, so with a BatchNorm D it includes what a
    logit owes to the other samples through the batch statistics. Without ``generator`` the
    signs come from the global RNG.
    """
    x = real.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = d_forward(cond.detach(), x).flatten(1)
        n = logits.shape[1]
        if n > 1:
            signs = torch.randint(0, 2, logits.shape, generator=generator, device=logits.device).to(logits.dtype).mul_(2).sub_(1)
            logits = logits * signs
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.flatten(1).float().pow(2).sum(1).mean() / n


class R1(Trick):
    """R1 penalty: gamma/2 * E[||grad_x D_p(cond, x)||^2] at the real images, added to D's loss,
    the expectation over the samples *and over the logits D_p of D's patch map*: each patch
    logit is penalised as the paper penalises its one-logit D, so a gamma from the literature
    means the same at every --size and for every --n-layers (the old form, the gradient of the
    map's mean, shrank with the number of patches: 6x weaker at 32 px, 88x at 64 px, 740x at
    128 px, for the default PatchGAN). It pulls D's gradient on the data towards zero, which
    makes the training dynamics converge locally. One extra backward pass: the per-patch sum is
    estimated without bias with random signs (see :func:`r1_penalty`; exact for
    non-overlapping patches). With ``every=k`` (lazy regularisation) the penalty is computed
    only every k-th step and multiplied by k. Logged as ``D/r1``. Works with every --gan-mode.
    ``schedule=cosine`` decays gamma to ``final`` x gamma over the adversarial steps (R3GAN's
    schedule: 0.05 -> 0.005 on CIFAR-10); the current gamma is logged as ``tricks/r1_gamma``.

    The default gamma is 0.1: with ganlab's BatchNorm PatchGAN (64 px, BSDS500, 300 steps) 1
    holds D at chance (accuracy 0.51/0.50, gradient norm 0.3) and 0.3 nearly so (0.66/0.67),
    0.1 calms it (loss oscillation 0.14 against the baseline's 0.23) while it still learns, and
    0.01 is close to no penalty; a study searches 0.01-0.3.

    The penalty needs an extra D pass on the real batch; with a BatchNorm discriminator that
    pass also updates the running statistics (as D's own real pass does).

    Papers: Mescheder et al., "Which Training Methods for GANs do actually Converge?",
    ICML 2018; Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR
    2020 (lazy regularisation).
    """

    name = "r1"
    Params = R1Params
    summary = "zero-centred gradient penalty on real data, gamma/2 E||grad D||^2 per patch logit, optionally lazy"
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
        gamma = gamma_at(p.gamma, p.schedule, p.final, ctx)
        if p.schedule != "constant":
            report("tricks/r1_gamma", gamma)
        penalty = r1_penalty(phase.d_forward, phase.cond, phase.real, ctx.rng)
        return {**terms, "r1": (0.5 * gamma * p.every) * penalty}
