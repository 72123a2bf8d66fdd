"""Spectral normalisation of the discriminator's convolutions.

Miyato, Kataoka, Koyama, Yoshida: "Spectral Normalization for Generative Adversarial
Networks", ICLR 2018.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ganlab.trick import NetSpec, Trick, param
from ganlab.tricks._spectral import refresh_estimates, spectral_normalised

__all__ = ["SpectralNorm", "SpectralNormParams", "refresh_estimates", "spectral_normalised"]


@dataclass(frozen=True)
class SpectralNormParams:
    n_power_iterations: int = param(1, low=1, high=10, search=(), help="power iterations per forward pass in training")
    d_norm: str = param("none", choices=("none", "keep"), search=(),
                        help="D's normalisation layers: none (the paper's D) or keep (--norm's, which cancel the constraint)")
    g: bool = param(False, search=(), help="also every convolution of G, as SPADE does (Park et al., CVPR 2019)")
    g_norm: str = param("keep", choices=("keep", "none"), search=(),
                        help="with g: G's normalisation layers: keep (SPADE's G keeps them) or none (every conv of G constrained)")


class SpectralNorm(Trick):
    """Spectral norm: every convolution of the discriminator is divided by its largest singular
    value (estimated by power iteration, one step per forward pass in training), so each layer
    is 1-Lipschitz and D's gradients cannot explode. Uses
    ``torch.nn.utils.parametrizations.spectral_norm``; the estimate is refreshed (15 power
    iterations) after the weights are initialised.

    The discriminator has no normalisation layers (``d_norm=none``, the default), as in the
    paper: a BatchNorm after a normalised convolution divides by the batch's standard
    deviation, which undoes the division by sigma (BatchNorm(c W x) = BatchNorm(W x)), and its
    learnt scale is unconstrained, so with ganlab's default ``--norm batch`` only D's first and
    last convolutions would be constrained (instance and layer norm rescale the same way; the
    critic_norm of wgan-gp is overridden too). Without them D is a chain of 1-Lipschitz
    convolutions and LeakyReLUs, so its Lipschitz constant is at most the product of
    ceil(kernel/stride) over its convolutions (the overlap of their windows), whatever its
    weights. ``d_norm=keep`` keeps the normalisation --norm asks for (for ablations, and for
    checkpoints trained with it).

    ``g=true`` normalises G's convolutions and transposed convolutions too, as SPADE (Park et
    al., CVPR 2019) does for its generator, after SAGAN (Zhang et al., ICML 2019), which found
    it steadies training. G's normalisation layers stay (``g_norm=keep``, the default): SPADE
    keeps its own in G, and without them ganlab's U-Net loses what holds its activations in
    range. Then, as in SPADE, a BatchNorm after a normalised convolution divides out its
    sigma again (BatchNorm(c W x) = BatchNorm(W x)), so the constraint holds in scale only
    where no norm follows: G's first and innermost encoder convolutions and its last decoder
    convolution; elsewhere it only reparametrises the weight (W / sigma(W)), which changes the
    optimisation's steps, not the function class. ``g_norm=none`` removes G's norms too, for a
    G whose every layer is 1-Lipschitz. A checkpoint made with ``g`` has G's weights stored
    as the parametrisation's (``parametrizations.weight.original``), so load it with the same
    trick setting.

    Paper: Miyato et al., "Spectral Normalization for Generative Adversarial Networks",
    ICLR 2018.
    """

    name = "spectral-norm"
    Params = SpectralNormParams
    summary = "spectral normalisation of every convolution of D, and no normalisation layers in D; g=true: G's too (SPADE)"
    paper = "Miyato et al., Spectral Normalization for GANs, ICLR 2018"
    order = 20
    identity = None


    def configure_nets(self, spec: NetSpec) -> NetSpec:
        norm = spec.d_norm if self.params.d_norm == "keep" else "none"
        spec = dataclasses.replace(spec, d_norm=norm, d_wrap=spec.d_wrap + (self._wrap,))
        if self.params.g and self.params.g_norm == "none":
            spec = dataclasses.replace(spec, g_norm="none")
        return spec

    def _wrap(self, conv: nn.Module) -> nn.Module:
        return spectral_norm(conv, n_power_iterations=self.params.n_power_iterations)

    def configure_modules(self, G, D):
        if self.params.g:
            for m in list(G.modules()):
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and not parametrize.is_parametrized(m, "weight"):
                    spectral_norm(m, n_power_iterations=self.params.n_power_iterations)
            if not any(p.is_meta for p in G.parameters()):
                refresh_estimates(G)
        if D is not None and not any(p.is_meta for p in D.parameters()):
            refresh_estimates(D)
        return G, D
