"""Networks, built from a :class:`NetSpec` so that tricks can change how.

The public surface for extending ganlab's networks:

- **A new generator or discriminator** is a builder, ``builder(spec: NetSpec) -> nn.Module``,
  registered under the entry-point group ``ganlab.generators`` or ``ganlab.discriminators``
  (``pyproject.toml``, as ganlab registers its own ``unet``, ``resnet18-unet``, ``patch`` and
  ``pixel``) or in this process with :func:`register_generator` / :func:`register_discriminator`.
  ``--generator NAME`` / ``--discriminator NAME`` then build it. What a builder must return is
  the contract of :data:`GENERATORS` / :data:`DISCRIMINATORS`; the conformance checks of
  :mod:`ganlab.testing` (``NetConformanceTests``) test it.
- **A new block kind** (a norm, an activation, a down- or up-sampling layer) is a factory
  registered with :func:`register_norm`, :func:`register_activation`,
  :func:`register_downsample` or :func:`register_upsample`; a trick then names it in the spec
  it returns from ``configure_nets`` (the ``pixeltcl`` trick adds the ``pixeltcl`` up-sampling
  this way). Builders make their layers through :mod:`ganlab.nets.blocks` (``norm``, ``act``,
  ``down``, ``up``) so that such kinds reach them.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ganlab.errors import GanlabError
from ganlab.nets import blocks
from ganlab.nets.blocks import (
    count_params,
    init_weights,
    register_activation,
    register_downsample,
    register_norm,
    register_upsample,
)
from ganlab.nets.patchgan import PatchDiscriminator, PixelDiscriminator, receptive_field
from ganlab.nets.resnet_unet import ResNetUnetGenerator
from ganlab.nets.spec import NetSpec
from ganlab.nets.unet import UnetGenerator, unet_depth
from ganlab.registry import DISCRIMINATORS, GENERATORS

Builder = Callable[[NetSpec], nn.Module]


def register_generator(name: str, builder: Builder | None = None) -> Any:
    """Register a generator builder as ``name`` in this process (``--generator name``); usable
    as a decorator. Packages register theirs under the entry-point group ``ganlab.generators``."""
    return GENERATORS.register(name, builder)


def register_discriminator(name: str, builder: Builder | None = None) -> Any:
    """Register a discriminator builder as ``name`` in this process (``--discriminator name``);
    usable as a decorator. Packages use the entry-point group ``ganlab.discriminators``."""
    return DISCRIMINATORS.register(name, builder)


def _built(registry, name: str, spec: NetSpec) -> nn.Module:
    net = registry.get(name)(spec)
    if not isinstance(net, nn.Module):
        raise GanlabError(f"{registry.flag} {name}: its builder returned {type(net).__name__}, not a torch.nn.Module")
    return net


def build_generator(spec: NetSpec) -> nn.Module:
    """G as ``spec.generator``'s registered builder makes it, with its initial weights."""
    return _built(GENERATORS, spec.generator, spec)


def build_discriminator(spec: NetSpec) -> nn.Module:
    """D as ``spec.discriminator``'s registered builder makes it, with its initial weights."""
    return _built(DISCRIMINATORS, spec.discriminator, spec)


def generator_stride(G: nn.Module) -> int:
    """The factor an input's height and width must be a multiple of."""
    return int(getattr(G, "stride", 1))


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "NetSpec",
    "PatchDiscriminator",
    "PixelDiscriminator",
    "ResNetUnetGenerator",
    "UnetGenerator",
    "blocks",
    "build_discriminator",
    "build_generator",
    "count_params",
    "generator_stride",
    "init_weights",
    "receptive_field",
    "register_activation",
    "register_discriminator",
    "register_downsample",
    "register_generator",
    "register_norm",
    "register_upsample",
    "unet_depth",
]
