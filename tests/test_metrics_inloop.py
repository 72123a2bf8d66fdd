"""The cheap in-loop metrics the trainer calls every --eval-every steps."""

import math

import pytest
import torch
import torch.nn.functional as F

from ganlab.color import to_uint8
from ganlab.errors import UsageError
from ganlab.metrics import inloop
from ganlab.metrics.inloop import inloop_feature_extractor, inloop_metrics


pytestmark = pytest.mark.usefixtures("one_thread")


def images(n=16, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 5, 5, generator=g), size=(size, size), mode="bicubic", align_corners=False)
    return to_uint8(x + 0.05 * torch.randn(n, 3, size, size, generator=g))


def dull(x):
    """What a colouriser that plays safe returns: the lightness right, the colour washed out."""
    grey = x.float().mean(dim=1, keepdim=True)
    return (0.7 * grey + 0.3 * x.float()).round().to(torch.uint8)


KEYS = {"val/swd", "val/ab_swd", "val/color_hist", "val/psnr", "val/ssim", "val/ab_l1", "val/colorfulness_gap"}


def test_keys_values_and_determinism():
    real = images()
    fake = dull(real)
    m = inloop_metrics(real, fake, seed=3)
    assert set(m) == KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    assert m == inloop_metrics(real, fake, seed=3)
    assert m["val/colorfulness_gap"] > 0  # duller fakes
    assert m["val/swd"] > 0 and m["val/color_hist"] > 0 and m["val/ab_l1"] > 0


def test_perfect_generator_scores_perfectly():
    real = images(8, 32)
    m = inloop_metrics(real, real.clone(), seed=0)
    assert m["val/swd"] == 0 and m["val/color_hist"] == 0 and m["val/ab_l1"] == 0
    assert m["val/ssim"] == pytest.approx(1.0) and m["val/psnr"] == 100.0  # capped, finite for logging
    assert m["val/colorfulness_gap"] == 0


def test_worse_fakes_score_worse():
    real = images(8, 32)
    slightly, badly = (to_uint8(real.float() / 255 * (1 - s) + s * 0.45) for s in (0.1, 0.6))
    a, b = inloop_metrics(real, slightly, seed=0), inloop_metrics(real, badly, seed=0)
    for k in ("val/swd", "val/color_hist", "val/ab_l1", "val/colorfulness_gap"):
        assert a[k] < b[k], k
    assert a["val/psnr"] > b["val/psnr"] and a["val/ssim"] > b["val/ssim"]


def test_kid_with_a_feature_extractor_caches_the_real_features():
    calls = []

    def extractor(x):
        calls.append(x.shape[0])
        return F.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1)

    real = images(12, 32)
    fake = 255 - real  # far from the real images in any feature space
    inloop._REAL_FEATS.clear()
    m1 = inloop_metrics(real, fake, seed=0, feature_extractor=extractor)
    m2 = inloop_metrics(real, fake, seed=0, feature_extractor=extractor)
    assert "val/kid" in m1 and m1["val/kid"] == m2["val/kid"]
    assert calls == [12, 12, 12]  # real once, fake twice
    same = inloop_metrics(real, real, seed=0, feature_extractor=extractor)["val/kid"]
    assert same < 0 < m1["val/kid"]  # unbiased: a set against itself dips below 0


def test_no_weights_no_extractor(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv("GANLAB_INCEPTION_WEIGHTS", raising=False)
    assert inloop_feature_extractor() is None


def test_bad_input_is_refused():
    real = images(4, 32)
    with pytest.raises(UsageError, match="uint8"):
        inloop_metrics(real.float(), real, seed=0)
    with pytest.raises(UsageError):
        inloop_metrics(real, real[:3], seed=0)
