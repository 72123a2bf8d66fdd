"""Differentiable augmentation (DiffAugment): the same random augmentation T on the real and the
generated images, in D's update and in G's.

Zhao, Liu, Lin, Zhu, Han: "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020 (official code: mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ganlab.trick import Capability, StepContext, Trick, param
from ganlab.tricks._augment import DIFFAUGMENT_POLICIES, diffaugment_pair


@dataclass(frozen=True)
class DiffAugmentParams:
    policy: str = param("color,translation,cutout", choices=DIFFAUGMENT_POLICIES,
                        search=("color,translation,cutout", "color,translation", "translation,cutout", "translation"),
                        help="which of DiffAugment's operations (its advice for ~100 images: all three)")
    translation_ratio: float = param(0.125, low=0.0, high=0.5, search=(), help="largest shift as a fraction of the size (DiffAugment: 1/8)")
    cutout_ratio: float = param(0.5, low=0.0, high=1.0, search=(), help="side of the cut-out square as a fraction of the size (DiffAugment: 1/2)")


class DiffAugment(Trick):
    """DiffAugment: T(x) for every image D sees -- the real and the fake pair of D's update and
    the fake pair of G's update (``g_inputs``, so G is trained through T as D is; without that,
    D learns the augmented distribution and G the plain one, and the generated images leak the
    augmentation) -- with fresh random draws per call and per sample, the operations
    differentiable so G's gradient flows through T.

    ``policy`` (default ``color,translation,cutout``, the paper's choice for the smallest sets):
    *color* -- brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5);
    *translation* -- up to 1/8 of the size, zero fill; *cutout* -- a square of half the size set
    to 0.

    **Paired data.** pix2pix's D sees (condition, image) pairs. Following the author's advice
    for image-to-image translation (data-efficient-gans issue #93: "color and cutout
    augmentation on only real & fake images, or translation augmentation on the concatenation
    of real (fake) and the label images"; issue #13: augment what goes into D, the concatenated
    pair), *translation* moves the condition and the image by the same shift, so D still
    judges whether an output fits its input pixel by pixel; *color* and *cutout* touch the
    image channels only (the generated a/b channels in colourisation, the B image in paired
    translation). Colour on the condition would show D a grey input that G was never given,
    and, being the same for the real and the fake pair of a batch position only by chance,
    would teach D nothing about G's outputs; the condition is G's input, not something G can
    change, so the augmentation has nothing to correct there. For an RGB target the colour
    operations are DiffAugment's as written. For colourisation's a/b channels they are what the
    RGB operations do to a/b: brightness moves L alone (the condition) and is left out,
    saturation and contrast scale the chroma by U(0, 2) and U(0.5, 1.5). (Applied to a/b as
    written, brightness's U(-0.5, 0.5) is a colour cast of up to 55 a/b units on every image,
    real and fake: on BSDS500 at 32 px, 150 steps, D then stayed at chance, accuracy 0.49/0.63,
    while translation or cutout alone left it learning, 0.72/0.82.)

    The author reports small gains on pix2pix (issue #13: "the Color DiffAugment may work but
    the performance gains are very limited"); ganlab's confirmation stage is the place to
    check that on your data.

    Paper: Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
    NeurIPS 2020.
    """

    name = "diffaugment"
    Params = DiffAugmentParams
    summary = "the same differentiable augmentation (color, translation, cutout) of D's real and fake inputs, in D's and G's updates"
    paper = "Zhao et al., Differentiable Augmentation for Data-Efficient GAN Training, NeurIPS 2020"
    order = 45
    provides = frozenset({Capability.AUGMENTATION})
    conflicts = {Capability.AUGMENTATION: "both augment what D sees; keep one augmentation"}
    identity = {"policy": "none"}

    def _augment(self, pair, ctx: StepContext):
        p = self.params
        if p.policy == "none":
            return pair
        return diffaugment_pair(pair[0], pair[1], p.policy, ctx.rng, chroma=ctx.cfg.out_channels == 2,
                                translation_ratio=p.translation_ratio, cutout_ratio=p.cutout_ratio)

    def d_inputs(self, real_pair, fake_pair, ctx: StepContext):
        return self._augment(real_pair, ctx), self._augment(fake_pair, ctx)

    def g_inputs(self, fake_pair, ctx: StepContext):
        return self._augment(fake_pair, ctx)
