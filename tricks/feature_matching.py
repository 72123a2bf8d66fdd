"""Discriminator feature matching: G matches D's intermediate features on the real pair.

Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs",
CVPR 2018 (pix2pixHD; official code: NVIDIA/pix2pixHD, models/pix2pixHD_model.py); Salimans et
al., "Improved Techniques for Training GANs", NeurIPS 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.trick import Phase, StepContext, Trick, param


@dataclass(frozen=True)
class FeatureMatchingParams:
    lambda_feat: float = param(10.0, low=0.0, high=1000.0, search=(1.0, 30.0), log=True, help="weight of the feature-matching loss (pix2pixHD: 10)")


_CONVS = (nn.Conv2d, nn.Conv1d, nn.Conv3d)


def discriminators(D: nn.Module) -> list[nn.Module]:
    """The discriminators inside ``D``: the scales of a multi-scale D, else D itself."""
    D = getattr(D, "module", D)  # DistributedDataParallel
    return list(D.scales) if hasattr(D, "scales") else [D]


class FeatureTap:
    """Records, while active, the input of every convolution of each discriminator but its
    first: the output of each block before it, i.e. D's intermediate features in forward order
    (pix2pixHD's getIntermFeat without the final logits)."""

    def __init__(self, D: nn.Module):
        self.convs = [[m for m in d.modules() if isinstance(m, _CONVS)][1:] for d in discriminators(D)]
        self.features: list[list[torch.Tensor]] = []

    def run(self, fn, *args) -> list[list[torch.Tensor]]:
        self.features = [[] for _ in self.convs]
        handles = []
        for i, convs in enumerate(self.convs):
            for m in convs:
                handles.append(m.register_forward_pre_hook(lambda mod, inp, i=i: self.features[i].append(inp[0])))
        try:
            fn(*args)
        finally:
            for h in handles:
                h.remove()
        return self.features


def feature_matching_loss(fake_feats: list[list[torch.Tensor]], real_feats: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD's loss_G_GAN_Feat without lambda: sum over discriminators i and layers j of
    (1 / num_D) * (4 / layers_i) * L1(fake_ij, real_ij), the real features detached."""
    total = None
    for fakes, reals in zip(fake_feats, real_feats):
        w = (1.0 / len(fake_feats)) * (4.0 / max(len(fakes), 1))
        for f, r in zip(fakes, reals):
            term = w * F.l1_loss(f.float(), r.detach().float())
            total = term if total is None else total + term
    return total


class FeatureMatching(Trick):
    """Feature matching: lambda_feat * sum_i sum_j (1/num_D) (4/L_i) |D_i^(j)(cond, G(cond)) -
    D_i^(j)(cond, real)|_1 added to G's loss, D_i^(j) the output of block j of discriminator i
    (every block but the last, which gives the logits; with ``multiscale-d`` every scale), the
    L1 a mean over elements, the real features a constant: G is asked to make D's internal
    response to its output match the response to the photograph of the same input, which is a
    steadier target than D's verdict. pix2pixHD's recipe: lambda_feat 10, weights 1/num_D and
    4/(n_layers + 1) (here 4 over the number of features a D has, the same for a PatchGAN).

    The features come from two passes of its own through D (frozen, in the G update): the
    clean (condition, G(cond)) pair with the graph to G, and the clean real pair without one;
    pix2pixHD reuses its adversarial passes, which in ganlab other tricks may have augmented or
    noised differently for the real and the fake, and features of two different views would
    not be comparable position by position. Logged as ``G/fm``.

    Papers: Wang et al. (pix2pixHD), CVPR 2018; Salimans et al., "Improved Techniques for
    Training GANs", NeurIPS 2016.
    """

    name = "feature-matching"
    Params = FeatureMatchingParams
    summary = "G matches D's intermediate features on the real pair, L1, lambda_feat 10 (pix2pixHD)"
    paper = "Wang et al., High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs, CVPR 2018"
    order = 86
    identity = {"lambda_feat": 0.0}

    def extra_passes(self, step: int) -> dict:
        return {"d_for_g": 2 if self.params.lambda_feat > 0 else 0}

    def g_loss(self, terms: dict, phase: Phase, ctx: StepContext) -> dict:
        if self.params.lambda_feat == 0.0:
            return terms
        tap = FeatureTap(ctx.D)
        fake_feats = tap.run(phase.d_forward, phase.cond, phase.fake)
        with torch.no_grad():
            real_feats = tap.run(phase.d_forward, phase.cond, phase.real)
        return {**terms, "fm": self.params.lambda_feat * feature_matching_loss(fake_feats, real_feats)}
