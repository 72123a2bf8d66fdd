"""Small factories the networks are built from: norm, activation, down- and up-sampling.

Each factory is a table keyed by a string ``kind`` (the block kinds of a
:class:`~ganlab.nets.NetSpec`), so a trick can add a kind (the PixelTCL up-sampling layer, say)
without the networks knowing about it::

    register_upsample("pixeltcl", lambda c_in, c_out, bias: PixelTCL(c_in, c_out, bias=bias))

A network builder makes its layers with :func:`norm`, :func:`act`, :func:`down` and :func:`up`,
so that every registered kind reaches it. The ``register_*`` functions are part of the public
surface of :mod:`ganlab.nets`; registering a kind again replaces its factory.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from ganlab.errors import UsageError

NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": lambda c: nn.BatchNorm2d(c),
    "instance": lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False),
    "layer": lambda c: nn.GroupNorm(1, c),
    "none": lambda c: nn.Identity(),
}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
    "none": lambda: nn.Identity(),
}

# (c_in, c_out, bias) -> a module that halves / doubles the spatial size.
DOWNSAMPLES: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "conv": lambda ci, co, bias: nn.Conv2d(ci, co, 4, 2, 1, bias=bias),
    "avgpool": lambda ci, co, bias: nn.Sequential(nn.Conv2d(ci, co, 3, 1, 1, bias=bias), nn.AvgPool2d(2)),
}

UPSAMPLES: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "convtranspose": lambda ci, co, bias: nn.ConvTranspose2d(ci, co, 4, 2, 1, bias=bias),
    "nearest-conv": lambda ci, co, bias: nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ci, co, 3, 1, 1, bias=bias)
    ),
}


def _get(table: dict, kind: str, what: str):
    try:
        return table[kind]
    except KeyError:
        raise UsageError(f"unknown {what} '{kind}'; known: {', '.join(table)}") from None


def norm(kind: str, channels: int) -> nn.Module:
    return _get(NORMS, kind, "norm")(channels)


def act(kind: str) -> nn.Module:
    return _get(ACTIVATIONS, kind, "activation")()


def down(kind: str, c_in: int, c_out: int, bias: bool) -> nn.Module:
    return _get(DOWNSAMPLES, kind, "downsample")(c_in, c_out, bias)


def up(kind: str, c_in: int, c_out: int, bias: bool) -> nn.Module:
    return _get(UPSAMPLES, kind, "upsample")(c_in, c_out, bias)


def register_norm(kind: str, factory: Callable[[int], nn.Module]) -> None:
    """A normalisation kind (``g_norm``/``d_norm``): ``factory(channels) -> module``."""
    NORMS[kind] = factory


def register_activation(kind: str, factory: Callable[[], nn.Module]) -> None:
    """An activation kind (``g_down_act``, ``g_up_act``, ``d_act``): ``factory() -> module``."""
    ACTIVATIONS[kind] = factory


def register_downsample(kind: str, factory: Callable[[int, int, bool], nn.Module]) -> None:
    """A down-sampling kind (``downsample``): ``factory(c_in, c_out, bias) -> module`` that
    halves the height and width."""
    DOWNSAMPLES[kind] = factory


def register_upsample(kind: str, factory: Callable[[int, int, bool], nn.Module]) -> None:
    """An up-sampling kind (``upsample``): ``factory(c_in, c_out, bias) -> module`` that doubles
    the height and width."""
    UPSAMPLES[kind] = factory


def conv_bias(norm_kind: str) -> bool:
    """pix2pix's rule: a conv followed by BatchNorm needs no bias (its shift is the norm's)."""
    return norm_kind != "batch"


def _raw_weight(m: nn.Module) -> torch.Tensor:
    """The stored weight of a layer, also when a wrapper computes ``m.weight`` from it
    (``torch.nn.utils.parametrizations.spectral_norm`` and the older hook-based ``spectral_norm``)."""
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    return getattr(m, "weight_orig", m.weight)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The pix2pix initialisation: convs ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0.
    Networks built on the meta device (shapes only) have no values to draw: skipped, since
    torch draws them there through a slow Python path (seconds for a 256 px U-Net)."""
    if any(p.is_meta for p in module.parameters()):
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = _raw_weight(m)
            nn.init.normal_(weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    # A layer whose parts must start in proportion to each other (PixelTCL's sub-grids) refines
    # its own draw afterwards: ``refine_init(gain)``.
    for m in module.modules():
        refine = getattr(m, "refine_init", None)
        if callable(refine):
            refine(gain)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


