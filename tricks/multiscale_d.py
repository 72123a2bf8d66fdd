"""A multi-scale discriminator: the same PatchGAN at the full size and on down-sampled copies.

Wang, Liu, Zhu, Tao, Kautz, Catanzaro: "High-Resolution Image Synthesis and Semantic
Manipulation with Conditional GANs", CVPR 2018 (pix2pixHD; official code: NVIDIA/pix2pixHD,
models/networks.py MultiscaleDiscriminator).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.trick import NetSpec, Trick, param


@dataclass(frozen=True)
class MultiscaleDParams:
    num_d: int = param(2, low=1, high=3, search=(2, 3), help="discriminators, each on an input half the size of the one before (pix2pixHD: 2-3)")


def layers_that_fit(size: int, n_layers: int) -> int:
    """The most stride-2 layers (at most ``n_layers``, at least 1) a PatchGAN can have at
    ``size`` and still give one logit: size / 2^n - 2 >= 1."""
    n = n_layers
    while n > 1 and size // 2**n - 2 < 1:
        n -= 1
    return n


class MultiscaleDiscriminator(nn.Module):
    """``scales[i]`` judges the input average-pooled i times (3x3, stride 2, padding 1, the
    padding left out of the average: pix2pixHD's down-sampling). The output is one map with a
    channel per scale: the coarser maps are repeated (nearest) up to the finest map's size, so
    each scale weighs the same in the mean a loss takes (pix2pixHD sums the scales' means)."""

    def __init__(self, scales: list[nn.Module]):
        super().__init__()
        self.scales = nn.ModuleList(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i, D in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outs.append(D(x))
        size = outs[0].shape[-2:]
        return torch.cat([outs[0]] + [F.interpolate(o, size=size, mode="nearest") for o in outs[1:]], 1)


class MultiscaleD(Trick):
    """Multi-scale D: ``num_d`` PatchGANs of the same architecture (whatever --discriminator,
    --ndf, --norm and the other tricks make of it, spectral norm included) but separate weights,
    the first on the full-size pair, each further one on the pair average-pooled once more; a
    coarse scale sees a larger part of the image per patch (global consistency), the fine one
    the texture. A scale whose input is too small for --n-layers gets as many stride-2 layers
    as leave at least one logit (at 32 px with --n-layers 3 the second scale has 2).

    Every scale's logit map goes into the loss, each scale with the same weight: the coarser
    maps are repeated up to the finest map's size (nearest), and D's output has one channel per
    scale. pix2pixHD *sums* the scales' losses; ganlab averages them, so --lambda-l1 keeps its
    meaning against a single D's loss. Every trick that reads D's output (R1/R2 per logit,
    accuracies, LeCam) sees all scales. The extra discriminators' FLOPs and activations are
    part of the built D, so ``ganlab bench`` and the memory check count them.

    Paper: Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with
    Conditional GANs" (pix2pixHD), CVPR 2018.
    """

    name = "multiscale-d"
    Params = MultiscaleDParams
    summary = "num_d PatchGANs on the pair at full, 1/2 (and 1/4) size, each scale weighted equally (pix2pixHD)"
    paper = "Wang et al., High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs, CVPR 2018"
    order = 98  # after every trick that changes D's spec, which the extra scales copy
    identity = {"num_d": 1}

    def __init__(self, params=None):
        super().__init__(params)
        self.spec: NetSpec | None = None

    def configure_nets(self, spec: NetSpec) -> NetSpec:
        self.spec = spec
        return spec

    def configure_modules(self, G, D):
        if D is None or self.params.num_d == 1:
            return G, D
        from ganlab.nets import build_discriminator
        from ganlab.tricks._spectral import refresh_estimates

        scales = [D]
        size = self.spec.size
        for _ in range(1, self.params.num_d):
            size = (size + 1) // 2
            if self.spec.discriminator == "patch" and size // 2 - 2 < 1:
                raise ValueError(f"--trick multiscale-d:num_d={self.params.num_d} at --size {self.spec.size}: discriminator "
                                 f"{len(scales) + 1} would see {size} px, too small for a PatchGAN (at least 6 px); "
                                 "lower num_d or raise --size")
            spec = dataclasses.replace(self.spec, size=size, n_layers=layers_that_fit(size, self.spec.n_layers))
            extra = build_discriminator(spec)
            if not any(p.is_meta for p in extra.parameters()):
                refresh_estimates(extra)  # spectral norm's estimate, stale after the initialisation
            scales.append(extra)
        return G, MultiscaleDiscriminator(scales)
