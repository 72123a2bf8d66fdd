"""Networks: built from a :class:`ganlab.trick.NetSpec` so tricks can change how."""

from __future__ import annotations

from torch import nn

from ganlab.errors import UsageError
from ganlab.trick import NetSpec
from ganlab.nets.blocks import count_params, init_weights
from ganlab.nets.patchgan import PatchDiscriminator, PixelDiscriminator, receptive_field
from ganlab.nets.resnet_unet import ResNetUnetGenerator
from ganlab.nets.unet import UnetGenerator, unet_depth

GENERATORS = {"unet": UnetGenerator, "resnet18-unet": ResNetUnetGenerator}
DISCRIMINATORS = {"patch": PatchDiscriminator, "pixel": PixelDiscriminator}


def build_generator(spec: NetSpec) -> nn.Module:
    if spec.generator not in GENERATORS:
        raise UsageError(f"--generator {spec.generator}: unknown; choose from {', '.join(GENERATORS)}")
    G = GENERATORS[spec.generator](spec)
    if isinstance(G, ResNetUnetGenerator):
        # Keep torchvision's initialisation (or ImageNet weights) in the encoder.
        for m in G.decoder_modules():
            init_weights(m)
        if not G.pretrained:
            init_weights(G.stem)
    else:
        init_weights(G)
    return G


def build_discriminator(spec: NetSpec) -> nn.Module:
    if spec.discriminator not in DISCRIMINATORS:
        raise UsageError(f"--discriminator {spec.discriminator}: unknown; choose from {', '.join(DISCRIMINATORS)}")
    D = DISCRIMINATORS[spec.discriminator](spec)
    init_weights(D)
    return D


def generator_stride(G: nn.Module) -> int:
    """The factor an input's height and width must be a multiple of."""
    return int(getattr(G, "stride", 1))


__all__ = [
    "build_generator",
    "build_discriminator",
    "generator_stride",
    "receptive_field",
    "unet_depth",
    "count_params",
    "UnetGenerator",
    "ResNetUnetGenerator",
    "PatchDiscriminator",
    "PixelDiscriminator",
]
