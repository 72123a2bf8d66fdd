"""Per-image fidelity: PSNR, SSIM, UIQI, ab-L1 and colourfulness, on uint8 RGB."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ganlab.color import lab_to_rgb, rgb_to_lab, to_uint8
from ganlab.errors import UsageError
from ganlab.metrics.fidelity import ab_l1, colorfulness, colorfulness_stats, psnr, ssim, uiqi


pytestmark = pytest.mark.usefixtures("one_thread")


def images(n=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=(size, size), mode="bilinear")
    return to_uint8(smooth + 0.05 * torch.randn(n, 3, size, size, generator=g))


def noisy(x, sigma, seed=1):
    g = torch.Generator().manual_seed(seed)
    return to_uint8(x.float() / 255 + sigma * torch.randn(x.shape, generator=g))


def test_psnr_matches_scikit_image():
    real, fake = images(), noisy(images(), 0.05)
    ref = np.mean(
        [peak_signal_noise_ratio(r.numpy(), f.numpy(), data_range=255) for r, f in zip(real, fake)]
    )
    assert psnr(real, fake) == pytest.approx(ref, rel=1e-9)
    assert psnr(real, real) == float("inf")


def test_ssim_matches_scikit_image_gaussian_reference_settings():
    real, fake = images(size=40), noisy(images(size=40), 0.08)
    ref = np.mean(
        [
            structural_similarity(
                r.numpy(), f.numpy(), channel_axis=0, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False, data_range=255,
            )
            for r, f in zip(real, fake)
        ]
    )
    assert ssim(real, fake) == pytest.approx(ref, abs=1e-9)
    assert ssim(real, real) == pytest.approx(1.0)


def _uiqi_brute_force(x: np.ndarray, y: np.ndarray, b: int = 8) -> float:
    """Wang & Bovik's index, window by window, straight from the formula (one channel)."""
    qs = []
    for i in range(x.shape[0] - b + 1):
        for j in range(x.shape[1] - b + 1):
            u, v = x[i : i + b, j : j + b].ravel(), y[i : i + b, j : j + b].ravel()
            mu, mv = u.mean(), v.mean()
            su, sv = u.var(ddof=1), v.var(ddof=1)
            suv = ((u - mu) * (v - mv)).sum() / (u.size - 1)
            qs.append(4 * suv * mu * mv / ((su + sv) * (mu**2 + mv**2)))
    return float(np.mean(qs))


def test_uiqi_matches_the_formula_window_by_window():
    real, fake = images(1, 16), noisy(images(1, 16), 0.1)
    ref = np.mean([_uiqi_brute_force(real[0, c].double().numpy(), fake[0, c].double().numpy()) for c in range(3)])
    assert uiqi(real, fake) == pytest.approx(ref, rel=1e-9)
    assert uiqi(real, real) == pytest.approx(1.0)


def test_uiqi_treats_flat_blocks_like_the_reference_code():
    flat = torch.full((1, 3, 16, 16), 100, dtype=torch.uint8)
    assert uiqi(flat, flat) == pytest.approx(1.0)
    # Flat blocks with different means: 2 m_x m_y / (m_x^2 + m_y^2).
    other = torch.full((1, 3, 16, 16), 50, dtype=torch.uint8)
    assert uiqi(flat, other) == pytest.approx(2 * 100 * 50 / (100**2 + 50**2))


@pytest.mark.parametrize("metric", [psnr, ssim, uiqi])
def test_fidelity_falls_as_noise_grows(metric):
    real = images()
    a, b = metric(real, noisy(real, 0.03)), metric(real, noisy(real, 0.15))
    assert a > b


def test_ab_l1_is_the_mean_ab_difference_in_lab_units():
    real = images()
    lab = rgb_to_lab(real.float() / 255)
    shifted = lab.clone()
    shifted[:, 1] += 6.0  # a + 6: |da| = 6, |db| = 0 -> mean 3 (up to uint8 rounding and gamut clipping)
    fake = to_uint8(lab_to_rgb(shifted))
    assert ab_l1(real, real) == 0.0
    assert ab_l1(real, fake) == pytest.approx(3.0, abs=0.6)


def test_colourfulness_follows_hasler_suesstrunk():
    x = images(2)
    rgb = x.double().numpy()
    for i in range(2):
        r, g, b = rgb[i]
        rg, yb = r - g, 0.5 * (r + g) - b
        m = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
        assert float(colorfulness(x)[i]) == pytest.approx(m)
    grey = to_uint8(x.float().mean(dim=1, keepdim=True).expand(-1, 3, -1, -1) / 255)
    assert float(colorfulness(grey).max()) == 0.0


def test_brown_images_show_up_in_the_colourfulness_gap():
    """A colouriser that plays safe: every pixel keeps its lightness and gets one brownish ab."""
    real = images(4)
    lab = rgb_to_lab(real.float() / 255)
    lab[:, 1], lab[:, 2] = 8.0, 18.0
    brown = to_uint8(lab_to_rgb(lab))
    stats = colorfulness_stats(real, brown)
    assert stats["colorfulness_gap"] > 0.4 * stats["colorfulness_real"]
    assert stats["colorfulness_ratio"] < 0.6
    assert colorfulness_stats(real, real)["colorfulness_gap"] == 0.0


def test_bad_input_is_one_clear_line():
    x = images()
    with pytest.raises(UsageError, match="uint8"):
        psnr(x.float(), x)
    with pytest.raises(UsageError, match="pair"):
        ssim(x, x[:2])
    with pytest.raises(UsageError, match="shape"):
        uiqi(x[:, :1], x[:, :1])
