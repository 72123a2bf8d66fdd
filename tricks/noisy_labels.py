"""Noisy labels: real and fake targets drawn from wide uniform ranges, per element.

The "ganhacks" recipe (Chintala, Denton, Arjovsky, Mathieu, NIPS 2016 workshop talk "How to
Train a GAN?", tip 6): real targets ~ U[0.7, 1.2], fake targets ~ U[0.0, 0.3].
"""

from __future__ import annotations

from dataclasses import dataclass

from ganlab.trick import Capability, StepContext, Trick, param, uniform_like


@dataclass(frozen=True)
class NoisyLabelsParams:
    real_low: float = param(0.7, low=0.0, high=1.5, search=(0.6, 1.0), help="lowest real target")
    real_high: float = param(1.2, low=0.0, high=1.5, search=(1.0, 1.3), help="highest real target")
    fake_low: float = param(0.0, low=-0.5, high=1.0, search=(0.0, 0.1), help="lowest fake target")
    fake_high: float = param(0.3, low=-0.5, high=1.0, search=(0.1, 0.4), help="highest fake target")

    def __post_init__(self):
        if self.real_low > self.real_high:
            raise ValueError(f"real_low={self.real_low} must not exceed real_high={self.real_high}")
        if self.fake_low > self.fake_high:
            raise ValueError(f"fake_low={self.fake_low} must not exceed fake_high={self.fake_high}")


class NoisyLabels(Trick):
    """Noisy labels: every element of D's targets is drawn afresh, real ~ U[0.7, 1.2] and
    fake ~ U[0.0, 0.3] by default (ranges configurable).

    With ``--gan-mode vanilla`` a real target above 1 is a valid (if unusual) BCE target: it
    keeps pushing D's logit up. Needs label targets (vanilla or lsgan).

    Source: Chintala et al., "How to Train a GAN? Tips and tricks to make GANs work"
    (ganhacks, NIPS 2016 adversarial training workshop), tip 6.
    """

    name = "noisy-labels"
    Params = NoisyLabelsParams
    summary = "real targets ~ U[0.7, 1.2], fake targets ~ U[0.0, 0.3], per element"
    paper = "Chintala et al., How to Train a GAN? (ganhacks), NIPS 2016 workshop"
    order = 60
    requires = frozenset({Capability.LABEL_TARGETS})
    requires_reason = {Capability.LABEL_TARGETS: "noisy labels change D's 0/1 targets, and a Wasserstein or hinge loss has no targets"}
    replaces = frozenset({Capability.TARGET_VALUES})
    identity = {"real_low": 1.0, "real_high": 1.0, "fake_low": 0.0, "fake_high": 0.0}

    def d_targets(self, t_real, t_fake, ctx: StepContext):
        p = self.params
        return (
            uniform_like(t_real, p.real_low, p.real_high, ctx.rng),
            uniform_like(t_fake, p.fake_low, p.fake_high, ctx.rng),
        )
