"""LPIPS: the offline rule, and the network with random stand-in weights (never the real ones)."""

import pytest
import torch

from ganlab.metrics import lpips as lp
from ganlab.metrics.inception import WeightsUnavailable, sha256_file


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(lp.LIN_ENV, raising=False)
    monkeypatch.delenv(lp.BACKBONE_ENV, raising=False)
    monkeypatch.setattr(lp, "_lin_candidates", lambda: [p for p in _candidates() if "site-packages" not in str(p)])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_candidates = lp._lin_candidates


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """Random AlexNet features and random non-negative heads, checksummed like the real files."""
    torch.manual_seed(0)
    backbone = {f"features.{k}": v for k, v in lp.alexnet_features().state_dict().items()}
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(lp.CHANNELS)}
    b, h = tmp_path / "alexnet.pth", tmp_path / "heads.pth"
    torch.save(backbone, b)
    torch.save(heads, h)
    monkeypatch.setenv(lp.BACKBONE_ENV, str(b))
    monkeypatch.setenv(lp.LIN_ENV, str(h))
    monkeypatch.setattr(lp, "BACKBONE_SHA256_PREFIX", sha256_file(b)[:8])
    monkeypatch.setattr(lp, "LIN_SHA256", sha256_file(h))
    return lp.load_lpips(download=False)


def images(n=3, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def test_absent_weights_are_one_line_naming_both_files():
    with pytest.raises(WeightsUnavailable) as err:
        lp.load_lpips(download=False)
    msg = str(err.value)
    assert "\n" not in msg and lp.BACKBONE_FILE in msg and "alex.pth" in msg and "LPIPS unavailable" in msg


def test_wrong_checksum_is_refused(tmp_path, monkeypatch):
    h = tmp_path / "heads.pth"
    torch.save({}, h)
    monkeypatch.setenv(lp.LIN_ENV, str(h))
    from ganlab.errors import GanlabError

    with pytest.raises(GanlabError, match="checksum"):
        lp.find_lpips_weights(download=False)


def test_lpips_is_zero_on_identical_images_and_grows_with_distortion(stand_in):
    x = images()
    g = torch.Generator().manual_seed(1)
    noise = lambda s: (x.float() + s * torch.randn(x.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)  # noqa: E731
    assert lp.lpips_distance(stand_in, x, x) == pytest.approx(0.0, abs=1e-7)
    d1, d2 = lp.lpips_distance(stand_in, x, noise(10)), lp.lpips_distance(stand_in, x, noise(60))
    assert 0 < d1 < d2


def test_alexnet_features_match_torchvision_layout():
    from torchvision.models import alexnet

    ours = {k: v.shape for k, v in lp.alexnet_features().state_dict().items()}
    with torch.device("meta"):  # the layout only: no time spent on random initialisation
        theirs = {k: v.shape for k, v in alexnet(weights=None).features.state_dict().items()}
    assert ours == theirs


def test_lpips_is_symmetric_and_per_image(stand_in):
    x, y = images(seed=2), images(seed=3)
    a, b = stand_in(x, y), stand_in(y, x)
    assert a.shape == (3,) and torch.allclose(a, b, rtol=1e-5)
    assert lp.lpips_distance(stand_in, x, y, batch_size=2) == pytest.approx(float(a.mean()), rel=1e-5)
