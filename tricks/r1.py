"""R1: a zero-centred gradient penalty on real data, per patch of a PatchGAN, optionally lazy.

Mescheder, Geiger, Nowozin: "Which Training Methods for GANs do actually Converge?",
ICML 2018; lazy regularisation from Karras et al., "Analyzing and Improving the Image Quality
of StyleGAN", CVPR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass


from ganlab.trick import Capability, above, param
from ganlab.tricks._penalty import ZeroCentredPenalty, gamma_at, r1_penalty

__all__ = ["R1", "R1Params", "gamma_at", "r1_penalty"]


@dataclass(frozen=True)
class R1Params:
    gamma: float = param(0.1, low=0.0, high=1000.0, search=(0.01, 0.3), log=True,
                         help="penalty weight: gamma/2 * E||grad_x D(x)||^2 per patch logit, as in the paper for one logit")
    every: int = param(1, low=1, high=1000, search=(1, 16), help="lazy regularisation: penalise every k-th step, scaled by k",
                       active_if={"gamma": above(0)})
    schedule: str = param("constant", choices=("constant", "cosine"), search=(),
                          help="gamma constant, or cosine-decayed to gamma*final over the adversarial steps (R3GAN)")
    final: float = param(0.1, low=0.0, high=1.0, search=(), help="with schedule=cosine: the last gamma as a fraction of gamma (R3GAN: 0.1)")


class R1(ZeroCentredPenalty):
    """R1 penalty: gamma/2 * E[||grad_x D_p(cond, x)||^2] at the real images, added to D's loss,
    the expectation over the samples *and over the logits D_p of D's patch map*: each patch
    logit is penalised as the paper penalises its one-logit D, so a gamma from the literature
    means the same at every --size and for every --n-layers (the gradient of the map's mean
    would shrink with the number of patches). It pulls D's gradient on the data towards zero, which
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
    provides = frozenset({Capability.GRADIENT_PENALTY})
    conflicts = {Capability.GRADIENT_PENALTY: "both penalise the critic's input gradient (R1 on real data, WGAN-GP on interpolates); keep one"}
    identity = {"gamma": 0.0}
    at = "real"
