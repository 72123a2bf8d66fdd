"""Conditional discriminators: the PatchGAN (70x70 at n_layers=3) and the 1x1 PixelGAN.

Both see the condition and the image concatenated on the channel axis and return a map of
logits (one per patch).
"""

from __future__ import annotations

from torch import nn

from ganlab.nets.spec import NetSpec
from ganlab.nets import blocks


def _wrap(spec: NetSpec, conv: nn.Module) -> nn.Module:
    for wrap in spec.d_wrap:
        conv = wrap(conv)
    return conv


def _dropout(spec: NetSpec) -> list[nn.Module]:
    return [nn.Dropout(spec.d_dropout)] if spec.d_dropout > 0 else []


class PatchDiscriminator(nn.Module):
    def __init__(self, spec: NetSpec):
        super().__init__()
        ndf = max(1, round(spec.ndf * spec.d_width))
        bias = blocks.conv_bias(spec.d_norm)
        c_in = spec.in_channels + spec.out_channels
        layers: list[nn.Module] = [_wrap(spec, nn.Conv2d(c_in, ndf, 4, 2, 1)), blocks.act(spec.d_act)]
        mult = 1
        for n in range(1, spec.n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                _wrap(spec, nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=bias)),
                blocks.norm(spec.d_norm, ndf * mult),
                blocks.act(spec.d_act),
                *_dropout(spec),
            ]
        prev, mult = mult, min(2**spec.n_layers, 8)
        layers += [
            _wrap(spec, nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=bias)),
            blocks.norm(spec.d_norm, ndf * mult),
            blocks.act(spec.d_act),
            *_dropout(spec),
            _wrap(spec, nn.Conv2d(ndf * mult, 1, 4, 1, 1)),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class PixelDiscriminator(nn.Module):
    def __init__(self, spec: NetSpec):
        super().__init__()
        ndf = max(1, round(spec.ndf * spec.d_width))
        bias = blocks.conv_bias(spec.d_norm)
        c_in = spec.in_channels + spec.out_channels
        self.model = nn.Sequential(
            _wrap(spec, nn.Conv2d(c_in, ndf, 1)),
            blocks.act(spec.d_act),
            _wrap(spec, nn.Conv2d(ndf, ndf * 2, 1, bias=bias)),
            blocks.norm(spec.d_norm, ndf * 2),
            blocks.act(spec.d_act),
            *_dropout(spec),
            _wrap(spec, nn.Conv2d(ndf * 2, 1, 1)),
        )

    def forward(self, x):
        return self.model(x)


def build_patch(spec: NetSpec) -> PatchDiscriminator:
    """The ``patch`` discriminator (entry point of ``ganlab.discriminators``), initialised."""
    D = PatchDiscriminator(spec)
    blocks.init_weights(D)
    return D


def build_pixel(spec: NetSpec) -> PixelDiscriminator:
    """The ``pixel`` discriminator (entry point of ``ganlab.discriminators``), initialised."""
    D = PixelDiscriminator(spec)
    blocks.init_weights(D)
    return D


def receptive_field(n_layers: int) -> int:
    """Receptive field of the PatchGAN: 4x4 convs, stride 2 for the first n_layers, then two stride 1."""
    strides = [2] * n_layers + [1, 1]
    rf = 1
    for s in reversed(strides):
        rf = (rf - 1) * s + 4
    return rf
