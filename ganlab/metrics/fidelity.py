"""Per-image fidelity of generated against real images, all on uint8 sRGB ``(N, 3, H, W)``.

* :func:`psnr` -- 10 log10(255^2 / MSE) per image over the three RGB channels, averaged.
* :func:`ssim` -- Wang et al. 2004: Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03,
  data range 255, population (co)variances, mean over valid windows and channels; the same
  number as ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=0)``.
* :func:`uiqi` -- the universal image quality index of Wang & Bovik 2002,
  Q = 4 s_xy m_x m_y / ((s_x^2 + s_y^2)(m_x^2 + m_y^2)) over 8x8 sliding windows (SSIM with
  C1 = C2 = 0 and a flat window), with the reference code's rules for zero denominators.
* :func:`ab_l1` -- mean |a_real - a_fake| and |b_real - b_fake| in Lab units, computed from the
  uint8 images (so it sees what a viewer sees, after clipping and rounding).
* :func:`colorfulness` -- Hasler & Suesstrunk 2003: rg = R - G, yb = (R + G)/2 - B,
  M = sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2) on the 0..255 scale, per image.
  A colouriser that paints everything brown has a much lower M than the real images.
"""

from __future__ import annotations

import math

import torch

from ganlab.color import rgb_to_lab
from ganlab.errors import UsageError
from ganlab.metrics._filter import separable_valid
from ganlab.metrics._images import check_pair, check_uint8_rgb


def psnr_per_image(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    diff = real.double() - fake.double()
    mse = diff.pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(255.0**2 / mse)  # inf where identical


def psnr(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Mean per-image PSNR in dB (``inf`` only if every pair is identical)."""
    check_pair(real, fake, same_count=True)
    return float(psnr_per_image(real, fake).mean())


def _gauss_window(size: int, sigma: float, ref: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=ref.dtype, device=ref.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, k1d: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of (N, C, H, W) by the 1-D kernel in both directions."""
    return separable_valid(x, k1d)


def _moments(x: torch.Tensor, y: torch.Tensor, k1d: torch.Tensor):
    mx, my = _filter(x, k1d), _filter(y, k1d)
    sxx = _filter(x * x, k1d) - mx * mx
    syy = _filter(y * y, k1d) - my * my
    sxy = _filter(x * y, k1d) - mx * my
    return mx, my, sxx, syy, sxy


def ssim_per_image(real: torch.Tensor, fake: torch.Tensor, win: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x, y = real.double(), fake.double()
    k = _gauss_window(win, sigma, x)
    mx, my, sxx, syy, sxy = _moments(x, y, k)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(dim=1)


def ssim(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Mean SSIM over images (Gaussian 11x11 window, sigma 1.5, on the RGB channels)."""
    check_pair(real, fake, same_count=True)
    if min(real.shape[2:]) < 11:
        raise UsageError(f"SSIM needs images of at least 11x11 px, got {tuple(real.shape[2:])}")
    return float(ssim_per_image(real, fake).mean())


def uiqi_per_image(real: torch.Tensor, fake: torch.Tensor, block: int = 8) -> torch.Tensor:
    x, y = real.double(), fake.double()
    k = torch.full((block,), 1.0 / block, dtype=x.dtype, device=x.device)
    mx, my, sxx, syy, sxy = _moments(x, y, k)
    # The reference code's rules (Wang & Bovik's MATLAB): the full formula where both
    # denominators are non-zero; 2 m_x m_y / (m_x^2 + m_y^2) on flat blocks with non-zero
    # means; 1 elsewhere. (The variance normalisation cancels in the ratio.)
    den1 = sxx + syy
    den2 = mx * mx + my * my
    eps = 1e-9
    q = torch.ones_like(mx)
    flat = (den1 <= eps) & (den2 > eps)
    q = torch.where(flat, 2 * mx * my / den2.clamp_min(eps), q)
    full = (den1 > eps) & (den2 > eps)
    q = torch.where(full, 4 * sxy * mx * my / (den1 * den2).clamp_min(eps * eps), q)
    return q.flatten(1).mean(dim=1)


def uiqi(real: torch.Tensor, fake: torch.Tensor, block: int = 8) -> float:
    """Mean universal image quality index (1 for identical images; 8x8 sliding windows)."""
    check_pair(real, fake, same_count=True)
    if min(real.shape[2:]) < block:
        raise UsageError(f"UIQI needs images of at least {block}x{block} px, got {tuple(real.shape[2:])}")
    return float(uiqi_per_image(real, fake, block).mean())


def ab_l1(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Mean absolute difference of the a and b channels in Lab units (divide by 110 for the training scale)."""
    check_pair(real, fake, same_count=True)
    ab_r = rgb_to_lab(real.float() / 255.0)[:, 1:]
    ab_f = rgb_to_lab(fake.float() / 255.0)[:, 1:]
    return float((ab_r - ab_f).abs().mean())


def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk colourfulness M of each uint8 RGB image, shape ``(N,)``."""
    check_uint8_rgb(images, "images")
    r, g, b = images.double().unbind(1)
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = torch.sqrt(rg.flatten(1).var(dim=1, unbiased=False) + yb.flatten(1).var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.flatten(1).mean(dim=1) ** 2 + yb.flatten(1).mean(dim=1) ** 2)
    return std + 0.3 * mean


def colorfulness_stats(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Mean colourfulness of each set, their gap (real - fake: > 0 means duller fakes) and ratio."""
    cr = float(colorfulness(real).mean())
    cf = float(colorfulness(fake).mean())
    return {
        "colorfulness_real": cr,
        "colorfulness_fake": cf,
        "colorfulness_gap": cr - cf,
        "colorfulness_ratio": cf / cr if cr > 0 else math.nan,
    }
