import numpy as np
import pytest
import torch
from skimage import color as skcolor

from ganlab.color import lab_to_rgb, rgb_to_lab, rgb_to_scaled_lab, scaled_lab_to_rgb


def _chw(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)


def _hwc(t):
    return t.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgb_to_lab_matches_scikit_image(dtype):
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 1, (40, 50, 3))
    rgb[0, :5] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]  # the corners of the gamut
    ours = _hwc(rgb_to_lab(_chw(rgb).to(dtype)).double())
    assert np.abs(ours - skcolor.rgb2lab(rgb)).max() < 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lab_to_rgb_matches_scikit_image(dtype):
    rng = np.random.default_rng(1)
    lab = np.stack([rng.uniform(0, 100, (30, 30)), rng.uniform(-90, 90, (30, 30)), rng.uniform(-90, 90, (30, 30))], -1)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = skcolor.lab2rgb(lab)
    ours = _hwc(lab_to_rgb(_chw(lab).to(dtype)).double())
    assert np.abs(ours - ref).max() < 1e-3


def test_batched_and_scaled_round_trip():
    rng = np.random.default_rng(2)
    rgb = torch.from_numpy(rng.uniform(0, 1, (4, 3, 16, 16))).float()
    L, ab = rgb_to_scaled_lab(rgb)
    assert L.shape == (4, 1, 16, 16) and ab.shape == (4, 2, 16, 16)
    assert L.min() >= -1.0 - 1e-6 and L.max() <= 1.0 + 1e-6 and ab.abs().max() <= 1.0
    assert torch.allclose(scaled_lab_to_rgb(L, ab), rgb, atol=1e-4)


def test_uint8_input_is_scaled():
    rgb = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
    assert torch.allclose(rgb_to_lab(rgb), rgb_to_lab(rgb.float() / 255.0))
