"""How the networks are built: :class:`NetSpec`, the one description every network builder reads.

The configuration gives the first spec (:func:`ganlab.train.build.net_spec`); tricks return
changed copies of it from ``configure_nets``; the registered builders
(:data:`ganlab.registry.GENERATORS`, :data:`ganlab.registry.DISCRIMINATORS`) build from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torch import nn

__all__ = ["NetSpec"]


@dataclass(frozen=True)
class NetSpec:
    """How the networks are built. Tricks return a modified copy (``dataclasses.replace``).

    ``generator`` and ``discriminator`` are names in the network registries; the block kinds
    (``g_norm``, ``d_norm``, ``*_act``, ``upsample``, ``downsample``) are names in the factories
    of :mod:`ganlab.nets.blocks`, which a trick may extend (:func:`ganlab.nets.register_upsample`
    and its siblings), so the core stays trick-agnostic. ``d_wrap`` holds callables that every
    discriminator applies to each of its convolutions (spectral normalisation is one).
    """

    generator: str = "unet"
    discriminator: str = "patch"
    in_channels: int = 1
    out_channels: int = 2
    size: int = 256
    ngf: int = 64
    ndf: int = 64
    n_layers: int = 3
    g_norm: str = "batch"
    d_norm: str = "batch"
    g_down_act: str = "leaky_relu"
    g_up_act: str = "relu"
    d_act: str = "leaky_relu"
    upsample: str = "convtranspose"
    downsample: str = "conv"
    g_dropout: float = 0.5
    d_dropout: float = 0.0
    d_width: float = 1.0  # multiplies ndf
    d_wrap: tuple[Callable[["nn.Module"], "nn.Module"], ...] = ()  # applied to D's convs
    backbone_weights: str = "none"
