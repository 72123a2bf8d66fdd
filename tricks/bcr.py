"""Balanced consistency regularisation (bCR): D must give an image and its augmented copy the
same output, for real and for generated images.

Zhang, Zhang, Odena, Lee: "Consistency Regularization for Generative Adversarial Networks",
ICLR 2020; Zhao, Singh, Lee, Zhang, Odena, Zhang: "Improved Consistency Regularization for
GANs", AAAI 2021 (bCR); the implementation and defaults of PyTorch-StudioGAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganlab.trick import Phase, StepContext, Trick, param
from ganlab.tricks._augment import translate


@dataclass(frozen=True)
class BcrParams:
    lambda_real: float = param(10.0, low=0.0, high=1000.0, search=(0.3, 10.0), log=True, help="weight of the real-image term (StudioGAN: 10)")
    lambda_fake: float = param(10.0, low=0.0, high=1000.0, search=(0.3, 10.0), log=True, help="weight of the generated-image term (StudioGAN: 10)")
    shift: float = param(0.125, low=0.0, high=0.5, search=(), help="largest translation as a fraction of the size (StudioGAN's 4 px at 32 px)")


def per_sample(d_out: torch.Tensor) -> torch.Tensor:
    """D's judgement of each sample: the mean of its patch map."""
    return d_out.flatten(1).float().mean(1)


def consistency_view(cond: torch.Tensor, img: torch.Tensor, shift: float, rng: torch.Generator):
    """T of bCR for a pair: a horizontal flip (chance 1/2) and a translation of up to ``shift``
    of the size (whole pixels, reflect padding), the same for the condition and the image."""
    n = img.shape[0]
    both = torch.cat((cond, img), 1)
    flip = torch.rand(n, generator=rng, device=img.device) < 0.5
    both = torch.where(flip.view(n, 1, 1, 1), both.flip(3), both)
    h, w = both.shape[-2:]
    sy, sx = int(h * shift + 0.5), int(w * shift + 0.5)
    dy = torch.randint(-sy, sy + 1, (n,), generator=rng, device=img.device)
    dx = torch.randint(-sx, sx + 1, (n,), generator=rng, device=img.device)
    both = translate(both, dx, dy, "reflect")
    return both[:, : cond.shape[1]], both[:, cond.shape[1]:]


class Bcr(Trick):
    """bCR: lambda_real * E||D(x_r) - D(T(x_r))||^2 + lambda_fake * E||D(x_f) - D(T(x_f))||^2
    added to D's loss, T a random flip and translation (StudioGAN's consistency augmentation:
    horizontal flip and a shift of up to 1/8 of the size), the same T for the condition and the
    image of a pair (its geometry must still match). Both sides carry D's gradient, as in
    StudioGAN. Two more D passes per D update (logged as ``D/bcr``).

    For a PatchGAN, D(x) is the mean of the patch map of each sample -- the image-level
    judgement a one-logit D gives; the map itself moves with the translation, so comparing it
    logit by logit would ask each patch to be blind to what slides under it. ganlab halves D's
    adversarial loss (StudioGAN does not), so the term is added as 0.5 * (...), keeping its
    ratio to the adversarial loss at StudioGAN's lambda = 10. x is the pair D's own pass saw
    when no other trick transforms D's inputs; with ada, diffaugment or instance noise D(x) is
    D on their transformed pair and T is applied to the plain one, so the term asks D to agree
    between two random views.

    The default is StudioGAN's lambda = 10. With ganlab's BatchNorm PatchGAN it can be too
    strong: on BSDS500 at 32 px (ngf = ndf = 8, 150 steps, one seed) lambda = 10 held D at
    chance (accuracy 0.45/0.58, "no adversarial signal") where lambda = 1 left it learning
    (0.76/0.82) and calmer than without bCR; a study searches 0.3-10.

    Papers: Zhang et al., "Consistency Regularization for GANs", ICLR 2020; Zhao et al.,
    "Improved Consistency Regularization for GANs", AAAI 2021.
    """

    name = "bcr"
    Params = BcrParams
    summary = "balanced consistency regularisation: ||D(x) - D(T(x))||^2 on real and fake pairs, T = flip + shift, lambda 10"
    paper = "Zhao et al., Improved Consistency Regularization for GANs, AAAI 2021"
    order = 83
    identity = {"lambda_real": 0.0, "lambda_fake": 0.0}

    def extra_passes(self, step: int) -> dict:
        return {"d_update": int(self.params.lambda_real > 0) + int(self.params.lambda_fake > 0)}

    def d_loss(self, terms: dict, phase: Phase, ctx: StepContext) -> dict:
        p = self.params
        total = None
        for weight, x, d_x in ((p.lambda_real, phase.real, phase.d_real), (p.lambda_fake, phase.fake, phase.d_fake)):
            if weight == 0.0:
                continue
            cond_t, x_t = consistency_view(phase.cond, x.detach(), p.shift, ctx.rng)
            d_t = phase.d_forward(cond_t, x_t)
            term = weight * (per_sample(d_x) - per_sample(d_t)).pow(2).mean()
            total = term if total is None else total + term
        if total is None:
            return terms
        return {**terms, "bcr": 0.5 * total}
