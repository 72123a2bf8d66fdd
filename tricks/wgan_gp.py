"""WGAN-GP: a Wasserstein critic with a gradient penalty on interpolates.

Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville: "Improved Training of Wasserstein GANs",
NeurIPS 2017 (Algorithm 1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ganlab.trick import Capability, NetSpec, OptimSpec, Phase, StepContext, StepPlan, Trick, param
from ganlab.stats import report


@dataclass(frozen=True)
class WganGpParams:
    lambda_: float = param(10.0, low=0.0, high=1000.0, search=(1.0, 100.0), log=True, help="weight of the gradient penalty")
    n_critic: int = param(5, low=1, high=50, search=(1, 10), help="critic updates per generator update (each on a fresh batch)")
    lr: float = param(1e-4, low=1e-6, high=1e-2, search=(2e-5, 5e-4), log=True, help="Adam learning rate of G and the critic")
    beta1: float = param(0.5, low=0.0, high=0.99, search=(0.0, 0.5), help="Adam beta1 of G and the critic")
    beta2: float = param(0.9, low=0.0, high=0.9999, search=(0.9, 0.999), help="Adam beta2 of G and the critic")
    critic_norm: str = param("layer", choices=("layer", "instance", "none"), help="the critic's normalisation (never BatchNorm)")


def critic_score(d_out: torch.Tensor) -> torch.Tensor:
    """One critic value per sample: the mean over a PatchGAN's map of outputs."""
    return d_out.flatten(1).mean(1)


def gradient_penalty(
    d_forward, cond: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """E[(||grad_x f(cond, x_hat)||_2 - 1)^2] with x_hat = real + alpha (fake - real).

    alpha ~ U[0, 1] per sample; only the generated channels are interpolated, the condition
    stays fixed. Returns the penalty (with the graph to the critic's parameters, for the
    double backward) and the gradient norms (detached).
    """
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device, dtype=real.dtype)
    x_hat = torch.lerp(real.detach(), fake.detach(), alpha).requires_grad_(True)
    with torch.enable_grad():
        score = critic_score(d_forward(cond.detach(), x_hat))
        (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    # sqrt(sum g^2 + tiny) keeps the derivative finite where the gradient vanishes.
    norm = grad.flatten(1).float().pow(2).sum(1).add(1e-12).sqrt()
    return (norm - 1.0).pow(2).mean(), norm.detach()


class WganGp(Trick):
    """WGAN-GP: the adversarial loss becomes the Wasserstein one, L_D = E[D(fake)] - E[D(real)]
    + lambda * E[(||grad D(x_hat)||_2 - 1)^2] and L_G = -E[D(fake)], whatever --gan-mode says.

    Done as the paper does it: alpha ~ U[0, 1] per sample; x_hat interpolates only the
    generated channels while the condition stays fixed; the gradient is the critic's w.r.t.
    x_hat (the critic's value per sample being the mean of its patch map); lambda = 10; the
    critic has no BatchNorm (``critic_norm`` = layer, instance or none: BatchNorm couples the
    samples of a batch, and the penalty is per sample); ``n_critic`` = 5 critic updates, each on
    a fresh batch, per generator update; Adam(1e-4, betas (0.5, 0.9)) for both networks unless
    overridden here or by ``ttur``. The critic's Wasserstein estimate E[D(real)] - E[D(fake)] is
    logged as ``tricks/wasserstein``, the penalty term as ``D/gp``.

    Paper: Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
    """

    name = "wgan-gp"
    Params = WganGpParams
    summary = "Wasserstein critic + gradient penalty on interpolates, n_critic critic steps, no BatchNorm in D"
    paper = "Gulrajani et al., Improved Training of Wasserstein GANs, NeurIPS 2017"
    order = 10
    provides = frozenset({Capability.GRADIENT_PENALTY})
    replaces = frozenset({Capability.ADVERSARIAL_LOSS, Capability.UPDATE_RATIO})
    removes = frozenset({Capability.LABEL_TARGETS})
    conflicts = {Capability.GRADIENT_PENALTY: "both penalise the critic's input gradient (WGAN-GP on interpolates, R1 on real data); keep one",
                 Capability.GAN_RPGAN: "WGAN-GP replaces the adversarial loss with the Wasserstein one, and rpgan is another loss; keep one"}
    identity = None

    def configure_nets(self, spec: NetSpec) -> NetSpec:
        return dataclasses.replace(spec, d_norm=self.params.critic_norm)

    def configure_loss(self, gan_mode: str) -> str:
        return "wgan"

    def configure_optim(self, spec: OptimSpec) -> OptimSpec:
        p = self.params
        betas = (p.beta1, p.beta2)
        return dataclasses.replace(spec, lr_g=p.lr, lr_d=p.lr, betas_g=betas, betas_d=betas)

    def plan(self, plan: StepPlan, ctx: StepContext) -> StepPlan:
        return dataclasses.replace(plan, d_steps=self.params.n_critic)

    def penalty_passes(self, step: int) -> int:
        return int(self.params.lambda_ > 0)

    def d_loss(self, terms: dict, phase: Phase, ctx: StepContext) -> dict:
        # The step halves its two terms (pix2pix's D objective); the Wasserstein loss does not.
        d_real, d_fake = critic_score(phase.d_real), critic_score(phase.d_fake)
        terms = {**terms, "fake": d_fake.mean(), "real": -d_real.mean()}
        if self.params.lambda_ > 0:
            gp, norms = gradient_penalty(phase.d_forward, phase.cond, phase.real, phase.fake, ctx.rng)
            terms["gp"] = self.params.lambda_ * gp
            report("tricks/gp_grad_norm", norms.mean())
        report("tricks/wasserstein", d_real.mean() - d_fake.mean())
        return terms
