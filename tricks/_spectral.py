"""Spectrally normalised layers: finding them and refreshing their power-iteration estimates,
shared by ``spectral-norm`` and ``multiscale-d`` (whose extra discriminators copy D's)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def spectral_normalised(module: nn.Module) -> list[nn.Module]:
    """The layers of ``module`` whose weight is spectrally normalised."""
    out = []
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight"):
            if any(type(p).__name__ == "_SpectralNorm" for p in m.parametrizations.weight):
                out.append(m)
    return out


@torch.no_grad()
def refresh_estimates(module: nn.Module, iterations: int = 15) -> None:
    """Re-run the power iteration of every spectrally normalised layer (after re-initialising
    its weight, the singular vectors estimated at wrap time are stale)."""
    for m in spectral_normalised(module):
        for p in m.parametrizations.weight:
            if type(p).__name__ == "_SpectralNorm":
                w = m.parametrizations.weight.original
                p._power_method(p._reshape_weight_to_matrix(w), iterations)
