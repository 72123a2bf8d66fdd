"""PixelTCL: the pixel transposed convolutional layer, an up-sampling layer without checkerboards.

Gao, Yuan, Wang, Ji: "Pixel Transposed Convolutional Networks", IEEE TPAMI 42(5), 2019
(arXiv:1705.06820, first as "Pixel Deconvolutional Networks").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.nets import register_upsample
from ganlab.trick import Capability, NetSpec, Trick, param

# The masked convolution sees the four direct neighbours of a position: on the 2x grid those
# are exactly the positions the first two feature maps already filled.
_CROSS = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


class PixelTCL(nn.Module):
    """2x up-sampling whose four output sub-grids are made one after another.

    With ``y`` the (2H, 2W) output and ``x`` the (H, W) input:

    1. ``f1 = conv1(x)`` fills ``y[0::2, 0::2]``;
    2. ``f2 = conv2(f1)`` -- from the first map, not from the input -- fills ``y[1::2, 1::2]``,
       so the two form a checkerboard on the output grid;
    3. the remaining positions ``y[0::2, 1::2]`` and ``y[1::2, 0::2]`` come from a 3x3
       convolution over that checkerboard whose kernel is masked to a position's four direct
       neighbours, all of which are already filled.

    Every output pixel therefore depends on its neighbours, unlike transposed convolution,
    whose four sub-grids are computed independently from the input (the cause of its
    checkerboard artefacts).
    """

    def __init__(self, c_in: int, c_out: int, bias: bool = True, kernel_size: int = 3, balanced: bool = True):
        super().__init__()
        pad = kernel_size // 2
        self.balanced = balanced
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size, 1, pad, bias=bias)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size, 1, pad, bias=bias)
        self.conv3 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=bias)
        self.register_buffer("mask", _CROSS.clone().view(1, 1, 3, 3), persistent=False)

    def refine_init(self, gain: float) -> None:
        """After the network's own draw (pix2pix: every conv ~ N(0, gain)): with ``balanced``,
        the second map's conv and the masked conv are drawn so that each keeps the variance of
        what it reads (std 1 / sqrt(fan-in): 9 c_out inputs for the second map, the 4 unmasked
        neighbours x c_out for the rest), so the four sub-grids start at the scale of the first.
        Under N(0, 0.02) alone each convolution in the chain shrinks its input, and a fresh layer's
        sub-grids differ by 10-40x: a checkerboard at initialisation, the artefact the layer exists
        to avoid, that training must first unlearn."""
        if not self.balanced:
            return
        c = self.conv2.out_channels
        k = self.conv2.kernel_size[0] * self.conv2.kernel_size[1]
        nn.init.normal_(self.conv2.weight, 0.0, (k * c) ** -0.5)
        nn.init.normal_(self.conv3.weight, 0.0, (int(self.mask.sum()) * c) ** -0.5)

    @staticmethod
    def interleave(s00: torch.Tensor, s01: torch.Tensor, s10: torch.Tensor, s11: torch.Tensor) -> torch.Tensor:
        """Four (B, C, H, W) sub-grids -> one (B, C, 2H, 2W) map with ``y[r::2, s::2] = s_rs``."""
        b, c, h, w = s00.shape
        return F.pixel_shuffle(torch.stack((s00, s01, s10, s11), 2).reshape(b, c * 4, h, w), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.conv1(x)
        f2 = self.conv2(f1)
        zero = torch.zeros_like(f1)
        board = self.interleave(f1, zero, zero, f2)
        filled = F.conv2d(board, self.conv3.weight * self.mask, self.conv3.bias, padding=1)
        return self.interleave(f1, filled[..., 0::2, 1::2], filled[..., 1::2, 0::2], f2)


def _factory(c_in: int, c_out: int, bias: bool) -> nn.Module:
    return PixelTCL(c_in, c_out, bias=bias)


def _factory_unbalanced(c_in: int, c_out: int, bias: bool) -> nn.Module:
    return PixelTCL(c_in, c_out, bias=bias, balanced=False)


def _register() -> None:
    register_upsample("pixeltcl", _factory)
    register_upsample("pixeltcl-unbalanced", _factory_unbalanced)


_register()


@dataclass(frozen=True)
class PixelTclParams:
    init: str = param("balanced", choices=("balanced", "network"), search=(),
                      help="balanced: the four sub-grids start at one scale (no checkerboard at "
                           "initialisation); network: every conv drawn as the network's others (pix2pix N(0, 0.02))")


class PixelTcl(Trick):
    """PixelTCL up-sampling: every transposed convolution of the generator (the U-Net's decoder,
    the ResNet-18 U-Net's decoder) becomes a PixelTCL layer. The interleaved sub-grids of the 2x
    output are made one after another -- a first feature map from the input, a second from the
    first, placed on a checkerboard, and the remaining positions filled by a masked convolution
    over what is already there -- so neighbouring output pixels depend on each other and the
    checkerboard artefacts of transposed convolution go.

    ``init = balanced`` (the default) draws the second map's and the masked convolution's weights
    so that every sub-grid starts at the first one's scale; under pix2pix's N(0, 0.02) alone
    (``init = network``) a fresh layer's sub-grids differ by 10-40x, a checkerboard at
    initialisation that training has to unlearn first.

    Paper: Gao et al., "Pixel Transposed Convolutional Networks", IEEE TPAMI 2019.
    """

    name = "pixeltcl"
    Params = PixelTclParams
    summary = "G's transposed convolutions -> PixelTCL up-sampling (no checkerboard artefacts)"
    paper = "Gao et al., Pixel Transposed Convolutional Networks, TPAMI 2019"
    order = 20
    needs_discriminator = False  # acts on G; the L1-only control can run it
    replaces = frozenset({Capability.UPSAMPLING})
    identity = None

    def configure_nets(self, spec: NetSpec) -> NetSpec:
        _register()  # idempotent; survives a reset of the factories
        return dataclasses.replace(spec, upsample="pixeltcl" if self.params.init == "balanced" else "pixeltcl-unbalanced")
