"""LeCam regularisation: D's outputs held near moving anchors of its own past outputs.

Tseng, Jiang, Zhang, Yang, Yang: "Regularizing Generative Adversarial Networks under Limited
Data", CVPR 2021 (official code: google/lecam-gan; the preset of PyTorch-StudioGAN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganlab.stats import report
from ganlab.trick import Phase, StepContext, Trick, param


@dataclass(frozen=True)
class LeCamParams:
    lambda_: float = param(0.3, low=0.0, high=100.0, search=(0.03, 1.0), log=True,
                           help="weight of the regulariser (StudioGAN's preset 0.3), against D's loss before pix2pix halves it")
    decay: float = param(0.99, low=0.0, high=1.0, search=(), help="EMA decay of the anchors (lecam-gan: 0.99)")
    start: int = param(1000, low=0, high=10_000_000, search=(),
                       help="adversarial steps before the anchors average (lecam-gan's start_itr 1000); until then each is the last batch's mean")


def lecam_term(d_real: torch.Tensor, d_fake: torch.Tensor, anchor_real: torch.Tensor, anchor_fake: torch.Tensor) -> torch.Tensor:
    """E[relu(D(x_r) - a_F)^2] + E[relu(a_R - D(x_f))^2], means over samples and patch logits."""
    return F.relu(d_real - anchor_fake).pow(2).mean() + F.relu(anchor_real - d_fake).pow(2).mean()


class LeCam(Trick):
    """LeCam: lambda * (E[relu(D(x_r) - a_F)^2] + E[relu(a_R - D(x_f))^2]) added to D's loss,
    where a_R and a_F are exponential moving averages (decay 0.99) of the mean of D's outputs
    on the real and on the generated pairs of each D update, updated before the term is taken
    (lecam-gan and StudioGAN do the same); for the first ``start`` adversarial steps the decay is
    0, so the anchors are the last batch's means. It keeps D's outputs on real data from
    running away above the fakes' usual level and vice versa, which bounds the divergence D can
    measure on a small set (the paper shows it is a LeCam divergence).

    Each patch logit of a PatchGAN is one of the paper's D outputs (the means run over samples
    and logits), so lambda means the same at every size. ganlab halves D's adversarial loss
    (pix2pix's 0.5 * (real + fake)); StudioGAN and lecam-gan do not, so the term is added as
    0.5 * lambda * (...), which keeps its ratio to the adversarial loss at the official
    lambda = 0.3. The anchors are logged as ``tricks/lecam_anchor_real``/``_fake``, the term as
    ``D/lecam``. The anchors are checkpointed.

    Paper: Tseng et al., "Regularizing Generative Adversarial Networks under Limited Data",
    CVPR 2021.
    """

    name = "lecam"
    Params = LeCamParams
    summary = "D's outputs pulled towards EMAs (0.99) of its past real/fake outputs: relu(D(x_r)-a_F)^2 + relu(a_R-D(x_f))^2"
    paper = "Tseng et al., Regularizing Generative Adversarial Networks under Limited Data, CVPR 2021"
    order = 82
    identity = {"lambda": 0.0}

    def __init__(self, params=None):
        super().__init__(params)
        self.anchor_real: torch.Tensor | None = None
        self.anchor_fake: torch.Tensor | None = None

    def _update(self, d_real: torch.Tensor, d_fake: torch.Tensor, ctx: StepContext) -> None:
        pre = ctx.cfg.pretrain_steps if ctx.cfg is not None else 0
        decay = self.params.decay if ctx.step - pre >= self.params.start else 0.0
        r, f = d_real.detach().float().mean(), d_fake.detach().float().mean()
        if self.anchor_real is None:
            self.anchor_real, self.anchor_fake = torch.zeros_like(r), torch.zeros_like(f)  # lecam-gan starts at 0
        self.anchor_real = self.anchor_real.to(r.device) * decay + r * (1.0 - decay)
        self.anchor_fake = self.anchor_fake.to(f.device) * decay + f * (1.0 - decay)

    def d_loss(self, terms: dict, phase: Phase, ctx: StepContext) -> dict:
        self._update(phase.d_real, phase.d_fake, ctx)
        report("tricks/lecam_anchor_real", self.anchor_real)
        report("tricks/lecam_anchor_fake", self.anchor_fake)
        if self.params.lambda_ == 0.0:
            return terms
        reg = lecam_term(phase.d_real.float(), phase.d_fake.float(), self.anchor_real, self.anchor_fake)
        return {**terms, "lecam": (0.5 * self.params.lambda_) * reg}

    def state_dict(self) -> dict:
        if self.anchor_real is None:
            return {}
        return {"anchor_real": self.anchor_real.clone(), "anchor_fake": self.anchor_fake.clone()}

    def load_state_dict(self, state: dict) -> None:
        if "anchor_real" in state:
            self.anchor_real, self.anchor_fake = state["anchor_real"].clone(), state["anchor_fake"].clone()
        else:
            self.anchor_real = self.anchor_fake = None
