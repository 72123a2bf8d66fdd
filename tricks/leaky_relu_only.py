"""LeakyReLU everywhere, no max-pooling: "avoid sparse gradients".

Radford, Metz, Chintala: "Unsupervised Representation Learning with Deep Convolutional GANs"
(DCGAN), ICLR 2016; ganhacks (Chintala et al., NIPS 2016 workshop), tip 5.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from ganlab.trick import NetSpec, Trick, param


@dataclass(frozen=True)
class LeakyReluOnlyParams:
    slope: float = param(0.2, low=0.0, high=1.0, search=(0.01, 0.3), help="negative slope of the LeakyReLUs")


def replace_modules(root: nn.Module, slope: float) -> int:
    """Swap every ReLU for a LeakyReLU(slope) and every MaxPool2d for an AvgPool2d with the same
    window, in place; returns how many modules were swapped."""
    swapped = 0
    for parent in list(root.modules()):
        for child_name, child in list(parent.named_children()):
            new = None
            if isinstance(child, nn.ReLU):
                new = nn.LeakyReLU(slope, inplace=child.inplace)
            elif isinstance(child, nn.LeakyReLU) and child.negative_slope != slope:
                new = nn.LeakyReLU(slope, inplace=child.inplace)
            elif isinstance(child, nn.MaxPool2d):
                if child.dilation not in (1, (1, 1)) or child.return_indices:
                    raise ValueError(f"{type(root).__name__}.{child_name}: a dilated or index-returning max-pool has no average-pool twin")
                new = nn.AvgPool2d(child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode, count_include_pad=False)
            if new is not None:
                setattr(parent, child_name, new)
                swapped += 1
    return swapped


class LeakyReluOnly(Trick):
    """LeakyReLU-only networks: every ReLU in G and D becomes LeakyReLU(0.2) and no max-pooling
    remains; down-sampling is done by strided convolutions (the U-Net's and PatchGAN's own) or
    average pooling (what replaces the max-pool of the ResNet-18 encoder).

    Sparse gradients (ReLU's zero half, max-pool's winner-takes-all routing) starve G of
    gradient signal from D. The networks' own blocks are configured through the NetSpec; what
    that cannot reach (torchvision's ResNet body) is swapped after building, for G and D alike.

    Papers: Radford et al., "Unsupervised Representation Learning with Deep Convolutional
    GANs", ICLR 2016; Chintala et al., "How to Train a GAN?" (ganhacks), tip 5.
    """

    name = "leaky-relu-only"
    Params = LeakyReluOnlyParams
    summary = "every ReLU -> LeakyReLU(0.2), max-pooling -> strided conv / average pooling"
    paper = "Radford et al., DCGAN, ICLR 2016; ganhacks tip 5"
    order = 20
    needs_discriminator = False  # acts on G; the L1-only control can run it
    identity = None

    def configure_nets(self, spec: NetSpec) -> NetSpec:
        return dataclasses.replace(
            spec,
            g_down_act="leaky_relu",
            g_up_act="leaky_relu",
            d_act="leaky_relu",
        )

    def configure_modules(self, G, D):
        replace_modules(G, self.params.slope)
        if D is not None:
            replace_modules(D, self.params.slope)
        return G, D
