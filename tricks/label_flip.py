"""Label flipping: each sample's discriminator target swapped real <-> fake with probability p.

ganhacks (Chintala et al. 2016), tip 6: "occasionally flip the labels when training the
discriminator".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganlab.trick import Capability, StepContext, Trick, param


@dataclass(frozen=True)
class LabelFlipParams:
    p: float = param(0.05, low=0.0, high=0.5, search=(0.0, 0.2), help="probability that a sample's target is swapped")


class LabelFlip(Trick):
    """Label flipping: every sample shown to D has its target swapped (real <-> fake) with
    probability ``p`` (default 0.05), independently for the real and the fake half.

    A flipped real sample gets the fake target and a flipped fake sample the real one; when
    soft or noisy labels run too, the swap uses their values (this trick runs after them).
    Needs label targets (vanilla or lsgan).

    Source: Chintala et al., "How to Train a GAN?" (ganhacks, NIPS 2016 workshop), tip 6.
    """

    name = "label-flip"
    Params = LabelFlipParams
    summary = "swap each sample's D target real <-> fake with probability p"
    paper = "Chintala et al., How to Train a GAN? (ganhacks), NIPS 2016 workshop"
    order = 70
    requires = frozenset({Capability.LABEL_TARGETS})
    requires_reason = {Capability.LABEL_TARGETS: "label flipping swaps D's 0/1 targets, and a Wasserstein or hinge loss has no targets"}
    identity = {"p": 0.0}

    def d_targets(self, t_real, t_fake, ctx: StepContext):
        p = self.params.p
        flip_real = self._mask(t_real, p, ctx.rng)
        flip_fake = self._mask(t_fake, p, ctx.rng)
        # A flipped sample takes the other side's target, element for element.
        return torch.where(flip_real, t_fake, t_real), torch.where(flip_fake, t_real, t_fake)

    @staticmethod
    def _mask(t: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
        shape = (t.shape[0],) + (1,) * (t.dim() - 1)
        return torch.rand(shape, generator=generator, device=t.device) < p
