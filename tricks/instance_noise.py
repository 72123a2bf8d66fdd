"""Instance noise: Gaussian noise on everything the discriminator sees, annealed to zero.

Sønderby, Caballero, Theis, Shi, Huszár: "Amortised MAP Inference for Image Super-resolution",
ICLR 2017 (section 3.2 and the accompanying blog post on instance noise); Arjovsky & Bottou:
"Towards Principled Methods for Training Generative Adversarial Networks", ICLR 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganlab.trick import StepContext, Trick, above, param
from ganlab.stats import report

FLOOR = 0.01  # the exponential schedule reaches sigma0 * FLOOR after anneal_steps, then 0


@dataclass(frozen=True)
class InstanceNoiseParams:
    sigma0: float = param(0.1, low=0.0, high=2.0, search=(0.01, 0.5), log=True, help="initial noise std (images are in [-1, 1])")
    schedule: str = param("linear", choices=("linear", "exponential"), help="how sigma falls to 0",
                          active_if={"sigma0": above(0)})
    anneal_steps: int = param(0, low=0, high=10_000_000, search=(), help="steps until sigma is 0 (0: the whole adversarial run)",
                              active_if={"sigma0": above(0)})


def sigma_at(step: int, sigma0: float, schedule: str, anneal_steps: int) -> float:
    """The noise std at adversarial step ``step`` (0-based)."""
    if sigma0 == 0.0 or step >= anneal_steps:
        return 0.0
    frac = max(step, 0) / anneal_steps
    if schedule == "linear":
        return sigma0 * (1.0 - frac)
    return sigma0 * math.exp(math.log(FLOOR) * frac)


class InstanceNoise(Trick):
    """Instance noise: N(0, sigma^2) added to the images of both the real and the fake pair D
    sees (the condition is shared by both and left alone), with sigma annealed from ``sigma0``
    to 0 over ``anneal_steps`` adversarial steps. In the G update the fake D judges is noised
    the same way (same sigma, fresh noise from ``ctx.rng``), so G's gradient is taken
    through D on the noisy samples, as in both papers: G minimises the divergence between the
    *noised* distributions, which is what stays smooth when the supports do not overlap.

    ``schedule=linear``: sigma0 * (1 - t/N). ``schedule=exponential``: sigma0 * 0.01^(t/N),
    then 0 from step N on. ``anneal_steps=0`` follows the run's length (a run resumed with a
    new --steps re-times the schedule; give ``anneal_steps`` to pin it). Noise makes the
    supports of the real and fake distributions overlap, so D cannot separate them perfectly
    early in training and its gradients stay informative. The current sigma is logged as ``tricks/instance_noise_sigma``.

    Papers: Sønderby et al., "Amortised MAP Inference for Image Super-resolution", ICLR 2017;
    Arjovsky & Bottou, "Towards Principled Methods for Training GANs", ICLR 2017.
    """

    name = "instance-noise"
    Params = InstanceNoiseParams
    summary = "Gaussian noise on D's real and fake inputs (in the D and the G update), sigma annealed (linear|exponential) to 0"
    paper = "Sønderby et al., ICLR 2017; Arjovsky & Bottou, ICLR 2017"
    order = 50
    identity = {"sigma0": 0.0}

    def sigma(self, ctx: StepContext) -> float:
        n = self.params.anneal_steps or max(ctx.adv_total_steps, 1)
        return sigma_at(ctx.adv_step, self.params.sigma0, self.params.schedule, n)

    def d_inputs(self, real_pair, fake_pair, ctx: StepContext):
        sigma = self.sigma(ctx)
        report("tricks/instance_noise_sigma", sigma)
        if sigma == 0.0:
            return real_pair, fake_pair
        (c_real, x_real), (c_fake, x_fake) = real_pair, fake_pair
        return (c_real, self._noisy(x_real, sigma, ctx)), (c_fake, self._noisy(x_fake, sigma, ctx))

    def g_inputs(self, fake_pair, ctx: StepContext):
        # G's gradient goes through D on noisy fakes, as D was trained on them (fresh noise,
        # same sigma); the noise is added to the fake, so the graph to G is kept.
        sigma = self.sigma(ctx)
        if sigma == 0.0:
            return fake_pair
        c_fake, x_fake = fake_pair
        return c_fake, self._noisy(x_fake, sigma, ctx)

    @staticmethod
    def _noisy(x: torch.Tensor, sigma: float, ctx: StepContext) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=ctx.rng, device=x.device, dtype=x.dtype)
        return x + sigma * noise
