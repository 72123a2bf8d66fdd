"""Weight-free distribution distances: SWD on Laplacian patches and the ab-histogram distance."""

import math

import pytest
import torch
import torch.nn.functional as F

from ganlab.color import lab_to_rgb, rgb_to_lab, to_uint8
from ganlab.errors import UsageError
from ganlab.metrics.color_hist import ab_histogram, color_histogram_distance, histogram_distance
from ganlab.metrics.swd import laplacian_pyramid
from ganlab.metrics.swd import ab_sliced_wasserstein as _ab_swd
from ganlab.metrics.swd import sliced_wasserstein as _swd


def sliced_wasserstein(real, fake, **kw):
    """The metric with fewer patches and directions than its defaults, to keep the tests quick."""
    kw.setdefault("patches_per_image", 48)
    kw.setdefault("dirs_per_repeat", 32)
    return _swd(real, fake, **kw)


def ab_sliced_wasserstein(real, fake, **kw):
    kw.setdefault("patches_per_image", 48)
    kw.setdefault("dirs_per_repeat", 32)
    return _ab_swd(real, fake, **kw)


pytestmark = pytest.mark.usefixtures("one_thread")


def make_images(n=8, size=64, seed=0) -> torch.Tensor:
    """Colourful test images: a smooth colour field, saturated rectangles and fine texture."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bicubic", align_corners=False)
    img = base.clamp(0, 1)
    for _ in range(6):
        for i in range(n):
            y0, x0 = torch.randint(0, size - 8, (2,), generator=g).tolist()
            h, w = torch.randint(6, size // 2, (2,), generator=g).tolist()
            img[i, :, y0 : y0 + h, x0 : x0 + w] = torch.rand(3, 1, 1, generator=g)
    img = img + 0.06 * torch.randn(n, 3, size, size, generator=g)
    return to_uint8(img)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    f = F.pad(x.float() / 255, (r, r, r, r), mode="reflect")
    f = F.conv2d(f, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    f = F.conv2d(f, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return to_uint8(f)


def desaturate(x: torch.Tensor, keep: float) -> torch.Tensor:
    lab = rgb_to_lab(x.float() / 255)
    lab[:, 1:] *= keep
    return to_uint8(lab_to_rgb(lab))


def colour_shift(x: torch.Tensor, da: float, db: float) -> torch.Tensor:
    lab = rgb_to_lab(x.float() / 255)
    lab[:, 1] += da
    lab[:, 2] += db
    return to_uint8(lab_to_rgb(lab))


DEGRADATIONS = {
    "blur": [lambda x: blur(x, 0.8), lambda x: blur(x, 2.0)],
    "desaturation": [lambda x: desaturate(x, 0.6), lambda x: desaturate(x, 0.1)],
    "colour shift": [lambda x: colour_shift(x, 8, -6), lambda x: colour_shift(x, 25, -20)],
}


@pytest.fixture(scope="module")
def real():
    return make_images()


@pytest.mark.parametrize("kind", list(DEGRADATIONS))
def test_swd_grows_as_images_are_degraded(real, kind):
    mild, strong = (f(real) for f in DEGRADATIONS[kind])
    d0 = sliced_wasserstein(real, real, seed=3)
    d1 = sliced_wasserstein(real, mild, seed=3)
    d2 = sliced_wasserstein(real, strong, seed=3)
    assert d0 == 0.0
    assert 0 < d1 < d2


@pytest.mark.parametrize("kind", list(DEGRADATIONS))
def test_color_histogram_distance_grows_as_images_are_degraded(real, kind):
    mild, strong = (f(real) for f in DEGRADATIONS[kind])
    for metric in ("sw1", "js"):
        d0 = color_histogram_distance(real, real, kind=metric)
        d1 = color_histogram_distance(real, mild, kind=metric)
        d2 = color_histogram_distance(real, strong, kind=metric)
        assert d0 == 0.0
        assert 0 < d1 < d2, metric


@pytest.mark.parametrize("kind", ["desaturation", "colour shift"])
def test_ab_swd_grows_with_colour_errors(real, kind):
    mild, strong = (f(real) for f in DEGRADATIONS[kind])
    d = [ab_sliced_wasserstein(real, x, seed=3) for x in (real, mild, strong)]
    assert d[0] == 0.0 and 0 < d[1] < d[2]


def test_ab_swd_reads_colour_not_luminance(real):
    """A change of L alone (brighter, in the gamut's middle) moves RGB SWD far more than a/b SWD."""
    lab = rgb_to_lab(real.float() / 255)
    lab[:, 0] = (lab[:, 0] * 0.8 + 10).clamp(0, 100)
    lighter = to_uint8(lab_to_rgb(lab))
    assert ab_sliced_wasserstein(real, lighter, seed=0) < 0.5 * sliced_wasserstein(real, lighter, seed=0)
    assert ab_sliced_wasserstein(real, lighter, seed=0) < ab_sliced_wasserstein(real, desaturate(real, 0.6), seed=0)
    with pytest.raises(UsageError):
        ab_sliced_wasserstein(real.float(), real)


def test_swd_is_deterministic_under_a_seed_and_independent_of_chunking(real):
    fake = blur(real, 1.0)
    a = sliced_wasserstein(real, fake, seed=7)
    assert a == sliced_wasserstein(real, fake, seed=7)
    assert a == pytest.approx(sliced_wasserstein(real, fake, seed=7, chunk=5), rel=1e-6)
    assert a != sliced_wasserstein(real, fake, seed=8)


def test_swd_levels_follow_the_pyramid(real):
    mean, levels = sliced_wasserstein(real, blur(real, 1.5), seed=0, per_level=True)
    assert len(levels) == 3  # 64, 32, 16 px
    assert mean == pytest.approx(sum(levels) / 3)
    # Blur removes fine detail: the finest level moves most.
    assert levels[0] > levels[-1]


def test_reference_per_set_normalisation_is_blind_to_a_global_cast(real):
    """The reference normalisation hides a uniform colour cast that ganlab's default sees."""
    cast = colour_shift(real, 25, -20)
    ours = sliced_wasserstein(real, cast, seed=0, normalize="real")
    reference = sliced_wasserstein(real, cast, seed=0, normalize="per_set")
    assert ours > 2 * reference


def test_laplacian_pyramid_reconstructs_the_image():
    x = make_images(2, 32).float()
    pyr = laplacian_pyramid(x, 3)
    from ganlab.metrics.swd import _pyr_up

    rec = pyr[-1]
    for level in reversed(pyr[:-1]):
        rec = level + _pyr_up(rec)
    assert torch.allclose(rec, x, atol=1e-3)


def test_histogram_sw1_reads_in_lab_units():
    """A pure shift of a single colour by t along a moves the sliced W1 by t * mean|cos|."""
    bins = 64
    h1 = torch.zeros(bins, bins, dtype=torch.float64)
    h2 = torch.zeros_like(h1)
    h1[20, 32] = 1.0
    h2[30, 32] = 1.0  # 10 bins = 10 * 220/64 Lab units along a
    t = 10 * 220 / bins
    expected = t * 2 / math.pi  # mean |cos| over directions
    assert histogram_distance(h1, h2, directions=256) == pytest.approx(expected, rel=0.02)


def test_ab_histogram_is_a_distribution(real):
    h = ab_histogram(real)
    assert h.shape == (32, 32)
    assert float(h.sum()) == pytest.approx(1.0)
    grey = to_uint8(real.float().mean(dim=1, keepdim=True).expand(-1, 3, -1, -1) / 255)
    hg = ab_histogram(grey)
    assert float(hg[15:17, 15:17].sum()) == pytest.approx(1.0)  # all mass at a = b = 0


def test_float_input_is_refused_with_one_line(real):
    with pytest.raises(UsageError, match="uint8"):
        sliced_wasserstein(real.float(), real)
    with pytest.raises(UsageError, match="size"):
        color_histogram_distance(real, real[:, :, :32, :32])


def test_the_kept_real_side_of_one_channel_space_never_serves_the_other(real):
    from ganlab.metrics import swd

    fake = desaturate(real, 0.5)
    swd._REAL.clear()
    ab_fresh = ab_sliced_wasserstein(real, fake, seed=2)
    swd._REAL.clear()
    rgb_fresh = sliced_wasserstein(real, fake, seed=2)
    for _ in range(2):  # alternating, as the in-loop evaluation calls them: each keeps its own
        assert ab_sliced_wasserstein(real, fake, seed=2) == ab_fresh
        assert sliced_wasserstein(real, fake, seed=2) == rgb_fresh
    assert len(swd._REAL) == 2
