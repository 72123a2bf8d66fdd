"""Zero-centred gradient penalties per patch logit, shared by ``r1`` (at the real images) and
``r2`` (at the generated ones), and R3GAN's cosine schedule of their weight."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from ganlab.stats import report
from ganlab.trick import Phase, StepContext, Trick


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


class ZeroCentredPenalty(Trick):
    """gamma/2 * E||grad_x D_p(cond, x)||^2 added to D's loss every ``every``-th step (scaled by
    ``every``), at the real images (``at = "real"``: R1) or at the step's fakes (``"fake"``: R2);
    the subclass declares ``at`` and a ``Params`` with ``gamma``, ``every``, ``schedule`` and
    ``final``. The term is logged as ``D/<name>``, a scheduled gamma as ``tricks/<name>_gamma``."""

    at: ClassVar[str] = "real"

    def penalty_passes(self, step: int) -> int:
        return int(self.params.gamma > 0 and step % self.params.every == 0)

    def d_loss(self, terms: dict, phase: Phase, ctx: StepContext) -> dict:
        p = self.params
        if p.gamma == 0.0 or ctx.step % p.every:
            return terms
        gamma = gamma_at(p.gamma, p.schedule, p.final, ctx)
        if p.schedule != "constant":
            report(f"tricks/{self.name}_gamma", gamma)
        x = phase.real if self.at == "real" else phase.fake
        penalty = r1_penalty(phase.d_forward, phase.cond, x, ctx.rng)
        return {**terms, self.name: (0.5 * gamma * p.every) * penalty}
