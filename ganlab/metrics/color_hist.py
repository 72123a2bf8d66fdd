"""Distance between the a/b colour histograms of two image sets.

Both sets (uint8 sRGB) are converted to CIE Lab and every pixel's (a, b) falls into a 2-D
histogram of ``bins x bins`` cells over [-110, 110]^2, normalised to a probability mass.

``kind="sw1"`` (default): the sliced 1-Wasserstein distance between the two histograms, in
Lab units. The histograms are projected onto ``directions`` evenly spaced unit vectors
(angles k*pi/K, no randomness), and for each projection the exact 1-D Wasserstein distance
``sum_j |CDF_real(p_j) - CDF_fake(p_j)| * (p_{j+1} - p_j)`` is taken; the result is the mean
over directions. A global shift of the ab plane by ``t`` moves it by about ``|t| * 2/pi``, a
desaturation ``ab -> s * ab`` by about ``(1 - s) * E|ab . u|``: it reads as "how far the
colours are".

``kind="js"``: the Jensen-Shannon divergence (base 2, in [0, 1]) between the histograms,
insensitive to how far apart the colours are, sensitive to any change in their spread.
"""

from __future__ import annotations

import math

import torch

from ganlab.color import rgb_to_lab
from ganlab.errors import UsageError
from ganlab.metrics._images import check_pair, check_uint8_rgb

AB_RANGE = 110.0


def ab_histogram(images: torch.Tensor, bins: int = 32, chunk: int = 64) -> torch.Tensor:
    """Normalised 2-D histogram ``(bins, bins)`` of the (a, b) values of uint8 RGB images."""
    check_uint8_rgb(images, "images")
    hist = torch.zeros(bins * bins, dtype=torch.float64, device=images.device)
    for i in range(0, images.shape[0], chunk):
        lab = rgb_to_lab(images[i : i + chunk].float() / 255.0)
        ab = lab[:, 1:].permute(1, 0, 2, 3).reshape(2, -1)
        idx = ((ab + AB_RANGE) / (2 * AB_RANGE) * bins).floor().long().clamp_(0, bins - 1)
        hist += torch.bincount(idx[0] * bins + idx[1], minlength=bins * bins).double()
    return (hist / hist.sum()).view(bins, bins)


def histogram_distance(h_real: torch.Tensor, h_fake: torch.Tensor, kind: str = "sw1", directions: int = 32) -> float:
    """Distance between two normalised ab histograms of the same shape (see module docstring)."""
    if h_real.shape != h_fake.shape:
        raise UsageError(f"histograms differ in shape: {tuple(h_real.shape)} vs {tuple(h_fake.shape)}")
    p, q = h_real.double().flatten(), h_fake.double().flatten().to(h_real.device)
    if kind == "js":
        m = 0.5 * (p + q)

        def kl(a: torch.Tensor) -> torch.Tensor:
            mask = a > 0
            return (a[mask] * torch.log2(a[mask] / m[mask])).sum()

        return float(0.5 * kl(p) + 0.5 * kl(q))
    if kind != "sw1":
        raise UsageError(f"colour-histogram distance kind must be 'sw1' or 'js', got {kind!r}")
    bins = h_real.shape[0]
    width = 2 * AB_RANGE / bins
    centres = -AB_RANGE + width * (torch.arange(bins, dtype=torch.float64, device=p.device) + 0.5)
    a, b = torch.meshgrid(centres, centres, indexing="ij")
    pts = torch.stack((a.flatten(), b.flatten()), dim=1)  # (bins^2, 2)
    angles = torch.arange(directions, dtype=torch.float64, device=p.device) * (math.pi / directions)
    u = torch.stack((angles.cos(), angles.sin()), dim=0)  # (2, K)
    proj = pts @ u  # (bins^2, K)
    order = proj.argsort(dim=0)
    pos = proj.gather(0, order)
    cdf_diff = (p[order] - q[order]).cumsum(dim=0)
    gaps = pos[1:] - pos[:-1]
    return float((cdf_diff[:-1].abs() * gaps).sum(dim=0).mean())


def color_histogram_distance(
    real: torch.Tensor, fake: torch.Tensor, *, bins: int = 32, kind: str = "sw1", directions: int = 32
) -> float:
    """Distance between the ab histograms of uint8 RGB image sets ``(N, 3, H, W)``; 0 for equal sets."""
    check_pair(real, fake)
    return histogram_distance(ab_histogram(real, bins), ab_histogram(fake, bins), kind=kind, directions=directions)
