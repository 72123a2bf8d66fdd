"""Image pool: a history buffer of earlier fakes shown to the discriminator.

Shrivastava, Pfister, Tuzel, Susskind, Wang, Webb: "Learning from Simulated and Unsupervised
Images through Adversarial Training", CVPR 2017 (section 2.3); the 50-image pool of CycleGAN
(Zhu et al., ICCV 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganlab.trick import StepContext, Trick, above, param


@dataclass(frozen=True)
class ImagePoolParams:
    size: int = param(50, low=0, high=10_000, search=(10, 200), help="how many earlier fakes the pool keeps (0: no pool)")
    p: float = param(0.5, low=0.0, high=1.0, search=(0.25, 0.75), help="chance that a sample is swapped for a pooled one once the pool is full",
                     active_if={"size": above(0)})


class ImagePool(Trick):
    """Image pool: D's fake batch mixes the current fakes with fakes G made earlier.

    The pool keeps up to ``size`` (condition, fake) pairs -- the condition travels with its
    fake, so D judges every pooled image against the input it was made from. While the pool
    fills, each fake is stored and shown as it is; once full, each sample is, with chance ``p``,
    swapped for a random pooled pair (which it replaces in the pool). Showing D its history
    keeps it from forgetting what G did earlier, which damps oscillation. The pool lives on
    the training device and is saved in checkpoints.

    Papers: Shrivastava et al., "Learning from Simulated and Unsupervised Images through
    Adversarial Training", CVPR 2017; Zhu et al., CycleGAN, ICCV 2017.
    """

    name = "image-pool"
    Params = ImagePoolParams
    summary = "D sees a mix of current fakes and earlier ones from a history buffer (size 50)"
    paper = "Shrivastava et al., Learning from Simulated and Unsupervised Images, CVPR 2017"
    order = 40
    identity = {"size": 0}

    def __init__(self, params=None):
        super().__init__(params)
        self.count = 0  # how many slots are filled
        self.cond: torch.Tensor | None = None
        self.fake: torch.Tensor | None = None

    def d_inputs(self, real_pair, fake_pair, ctx: StepContext):
        size = self.params.size
        if size == 0:
            return real_pair, fake_pair
        cond, fake = fake_pair
        cond, fake = cond.detach(), fake.detach()
        if self.fake is None:
            self.cond = cond.new_zeros((size,) + cond.shape[1:])
            self.fake = fake.new_zeros((size,) + fake.shape[1:])
        elif self.fake.device != fake.device:
            self.cond, self.fake = self.cond.to(cond.device), self.fake.to(fake.device)
        n = fake.shape[0]
        if self.count < size:  # filling: store what fits, show the batch as it is
            k = min(n, size - self.count)
            self.cond[self.count : self.count + k] = cond[:k]
            self.fake[self.count : self.count + k] = fake[:k]
            self.count += k
            if k == n:
                return real_pair, (cond, fake)
            cond_rest, fake_rest = self._swap(cond[k:], fake[k:], ctx)
            return real_pair, (torch.cat((cond[:k], cond_rest)), torch.cat((fake[:k], fake_rest)))
        return real_pair, self._swap(cond, fake, ctx)

    def _swap(self, cond: torch.Tensor, fake: torch.Tensor, ctx: StepContext):
        """With chance p, exchange each sample with a distinct random pool slot."""
        g = ctx.rng
        m = min(fake.shape[0], self.params.size)
        slots = torch.randperm(self.params.size, generator=g, device=fake.device)[:m]
        swap = torch.rand(m, generator=g, device=fake.device) < self.params.p
        pooled_cond, pooled_fake = self.cond[slots], self.fake[slots]
        sw_c = swap.view((m,) + (1,) * (cond.dim() - 1))
        sw_f = swap.view((m,) + (1,) * (fake.dim() - 1))
        shown_cond = torch.where(sw_c, pooled_cond, cond[:m])
        shown_fake = torch.where(sw_f, pooled_fake, fake[:m])
        # The pool keeps the current sample where it gave one away (slots are distinct).
        self.cond[slots] = torch.where(sw_c, cond[:m], pooled_cond)
        self.fake[slots] = torch.where(sw_f, fake[:m], pooled_fake)
        if m < fake.shape[0]:
            shown_cond = torch.cat((shown_cond, cond[m:]))
            shown_fake = torch.cat((shown_fake, fake[m:]))
        return shown_cond, shown_fake

    def state_dict(self) -> dict:
        if self.fake is None:
            return {"count": 0}
        return {"count": self.count, "cond": self.cond[: self.count].clone(), "fake": self.fake[: self.count].clone()}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state.get("count", 0))
        if self.count == 0 or "fake" not in state or self.params.size == 0:
            self.count, self.cond, self.fake = 0, None, None
            return
        cond, fake = state["cond"], state["fake"]
        size = self.params.size
        if self.count > size:  # resumed with a smaller pool: keep the newest
            cond, fake, self.count = cond[-size:], fake[-size:], size
        self.cond = cond.new_zeros((size,) + cond.shape[1:])
        self.fake = fake.new_zeros((size,) + fake.shape[1:])
        self.cond[: self.count] = cond
        self.fake[: self.count] = fake
