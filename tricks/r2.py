"""R2: the zero-centred gradient penalty on generated data, per patch of a PatchGAN.

Huang, Gokaslan, Kuleshov, Tompkin: "The GAN is dead; long live the GAN! A Modern GAN
Baseline", NeurIPS 2024 (R3GAN: relativistic pairing loss + R1 + R2); the R2 penalty from
Mescheder, Geiger, Nowozin, ICML 2018.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganlab.trick import Capability, above, param
from ganlab.tricks._penalty import ZeroCentredPenalty


@dataclass(frozen=True)
class R2Params:
    gamma: float = param(0.1, low=0.0, high=1000.0, search=(0.01, 0.3), log=True,
                         help="penalty weight: gamma/2 * E||grad_x D(x)||^2 per patch logit at the generated images")
    every: int = param(1, low=1, high=1000, search=(), help="lazy regularisation: penalise every k-th step, scaled by k",
                       active_if={"gamma": above(0)})
    schedule: str = param("constant", choices=("constant", "cosine"), search=(),
                          help="gamma constant, or cosine-decayed to gamma*final over the adversarial steps (R3GAN)")
    final: float = param(0.1, low=0.0, high=1.0, search=(), help="with schedule=cosine: the last gamma as a fraction of gamma (R3GAN: 0.1)")


class R2(ZeroCentredPenalty):
    """R2 penalty: gamma/2 * E[||grad_x D_p(cond, x)||^2] at the *generated* images of D's
    update (the fakes D is trained on), added to D's loss; the expectation is over the samples
    and over the logits D_p of the patch map, exactly as ganlab's ``r1`` takes it on the real
    images (one backward pass, per-logit signs; see :func:`ganlab.tricks._penalty.r1_penalty`), so
    the same gamma means the same for both. R3GAN's D loss is the relativistic pairing loss +
    gamma/2 (R1 + R2), both every step, with gamma cosine-decayed to a tenth
    (``--gan-mode rpgan --trick r1:schedule=cosine --trick r2:schedule=cosine``); the R3GAN
    paper argues that with R1 alone D can stay steep around the fakes, which R2 regularises.
    Works with every --gan-mode but WGAN-GP's critic (which has its own penalty on
    interpolates). Logged as ``D/r2``.

    The penalty is taken at the step's fakes with their condition, before any ``d_inputs``
    transformation (as ``r1`` takes the real ones); with a BatchNorm D the extra pass updates
    the running statistics.

    Paper: Huang et al., "The GAN is dead; long live the GAN! A Modern GAN Baseline",
    NeurIPS 2024 (official code: brownvc/R3GAN, R3GAN/Trainer.py).
    """

    name = "r2"
    Params = R2Params
    summary = "zero-centred gradient penalty on generated data, gamma/2 E||grad D||^2 per patch logit (R3GAN's R2)"
    paper = "Huang et al., The GAN is dead; long live the GAN! A Modern GAN Baseline, NeurIPS 2024"
    order = 80
    provides = frozenset({Capability.FAKE_GRADIENT_PENALTY})
    conflicts = {Capability.ADVERSARIAL_LOSS: "WGAN-GP's critic has its own gradient penalty (on interpolates), and R2 is for a "
                                     "logistic or relativistic D; keep one"}
    identity = {"gamma": 0.0}
    at = "fake"
