"""One-sided (or two-sided) label smoothing with random targets.

Salimans, Goodfellow, Zaremba, Cheung, Radford, Chen: "Improved Techniques for Training GANs",
NeurIPS 2016 (section 3.4). Goodfellow's NIPS 2016 tutorial advises smoothing the real targets
only: smoothing the fake ones moves the optimal discriminator in the wrong place.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganlab.trick import Capability, StepContext, Trick, param, uniform_like


@dataclass(frozen=True)
class SoftLabelsParams:
    low: float = param(0.9, low=0.5, high=1.0, search=(0.7, 1.0), help="lowest real target")
    high: float = param(1.0, low=0.5, high=1.2, search=(), help="highest real target")
    two_sided: bool = param(False, help="also soften the fake targets, drawn from [fake_low, fake_high]")
    fake_low: float = param(0.0, low=0.0, high=0.5, search=(0.0, 0.1), help="lowest fake target (two_sided)",
                            active_if={"two_sided": True})
    fake_high: float = param(0.1, low=0.0, high=0.5, search=(0.1, 0.3), help="highest fake target (two_sided)",
                             active_if={"two_sided": True})

    def __post_init__(self):
        if self.low > self.high:
            raise ValueError(f"low={self.low} must not exceed high={self.high}")
        if self.fake_low > self.fake_high:
            raise ValueError(f"fake_low={self.fake_low} must not exceed fake_high={self.fake_high}")


class SoftLabels(Trick):
    """Soft labels: D's real targets are drawn per element from U[low, high] (default 0.9-1.0).

    One-sided by default (the fake targets stay 0); ``two_sided=true`` also draws the fake
    targets from U[fake_low, fake_high] (default 0.0-0.1). Needs label targets, so it works
    with ``--gan-mode vanilla`` and ``lsgan`` and not under a Wasserstein or hinge loss.

    Paper: Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016.
    """

    name = "soft-labels"
    Params = SoftLabelsParams
    summary = "real targets ~ U[low, high] (0.9-1.0); optionally fake targets ~ U[0, 0.1]"
    paper = "Salimans et al., Improved Techniques for Training GANs, NeurIPS 2016"
    order = 60
    requires = frozenset({Capability.LABEL_TARGETS})
    requires_reason = {Capability.LABEL_TARGETS: "soft labels change D's 0/1 targets, and a Wasserstein or hinge loss has no targets"}
    replaces = frozenset({Capability.TARGET_VALUES})
    identity = {"low": 1.0, "high": 1.0, "two_sided": False}

    def d_targets(self, t_real, t_fake, ctx: StepContext):
        p = self.params
        t_real = uniform_like(t_real, p.low, p.high, ctx.rng)
        if p.two_sided:
            t_fake = uniform_like(t_fake, p.fake_low, p.fake_high, ctx.rng)
        return t_real, t_fake
