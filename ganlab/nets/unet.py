"""The pix2pix U-Net generator.

Depth follows the size: ``num_downs = min(8, log2 of the largest power of two dividing
size)``, so 8 down-samplings at 256 (a 1x1 bottleneck), 5 at 32. Channels ngf, 2ngf, 4ngf,
8ngf, 8ngf...; the decoder mirrors the encoder with skip connections; dropout 0.5 in the inner
8ngf decoder blocks (as in pix2pix: ``num_downs - 5`` of them); tanh output.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.nets.spec import NetSpec
from ganlab.nets import blocks


def unet_depth(size: int) -> int:
    depth = 0
    while size % 2 == 0 and depth < 8:
        size //= 2
        depth += 1
    return depth


class UnetGenerator(nn.Module):
    def __init__(self, spec: NetSpec):
        super().__init__()
        self.depth = unet_depth(spec.size)
        ngf, bias = spec.ngf, blocks.conv_bias(spec.g_norm)
        chans = [ngf * min(2**i, 8) for i in range(self.depth)]
        self.stride = 2**self.depth
        self.encoder = nn.ModuleList()
        for i, c_out in enumerate(chans):
            c_in = spec.in_channels if i == 0 else chans[i - 1]
            layers: list[nn.Module] = []
            if i > 0:  # the outermost block convolves the raw input
                layers.append(blocks.act(spec.g_down_act))
            layers.append(blocks.down(spec.downsample, c_in, c_out, bias))
            if 0 < i < self.depth - 1:  # no norm at the outermost and innermost blocks
                layers.append(blocks.norm(spec.g_norm, c_out))
            self.encoder.append(nn.Sequential(*layers))
        n_dropout = max(self.depth - 5, 0)
        self.decoder = nn.ModuleList()
        for i in reversed(range(self.depth)):
            innermost, outermost = i == self.depth - 1, i == 0
            c_in = chans[i] if innermost else chans[i] * 2
            c_out = spec.out_channels if outermost else chans[i - 1]
            layers = [blocks.act(spec.g_up_act), blocks.up(spec.upsample, c_in, c_out, True if outermost else bias)]
            if outermost:
                layers.append(nn.Tanh())
            else:
                layers.append(blocks.norm(spec.g_norm, c_out))
                # pix2pix: the blocks between the innermost and the four outer ones use dropout.
                if not innermost and i >= self.depth - 1 - n_dropout and spec.g_dropout > 0:
                    layers.append(nn.Dropout(spec.g_dropout))
            self.decoder.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips.pop()  # the innermost output feeds the decoder directly
        for i, block in enumerate(self.decoder):
            if i > 0:
                x = torch.cat((skips.pop(), x), dim=1)
            x = block(x)
        return x


def build_unet(spec: NetSpec) -> UnetGenerator:
    """The ``unet`` generator (entry point of ``ganlab.generators``), with pix2pix's initialisation."""
    G = UnetGenerator(spec)
    blocks.init_weights(G)
    return G
