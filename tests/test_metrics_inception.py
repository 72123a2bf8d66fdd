"""The FID feature network: weights lookup and checksum, the offline rule, the uint8 pipeline
(with random-weight stand-ins, never the real weights), and the real-feature cache."""

import numpy as np
import pytest
import torch
from torch import nn

from ganlab.errors import GanlabError, UsageError
from ganlab.metrics import inception as inc
from ganlab.metrics.fid import RealFeatureCache, cached_real_features, fid_kid, files_digest, stats_key
from ganlab.metrics.frechet import fid_from_features


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """An empty torch hub cache, no weights variable, one intra-op thread."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    inc._VERIFIED.clear()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class StandIn(nn.Module):
    """A small random network with the Inception wrapper's interface: [0, 1] RGB -> [(N, D, 1, 1)]."""

    def __init__(self, dims=24):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, dims, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x):
        return [self.body(2 * x - 1)]


def build_stand_in(state):
    net = StandIn()
    net.load_state_dict(state)
    return net


def save_stand_in(path, seed=0):
    torch.manual_seed(seed)
    torch.save(StandIn().state_dict(), path)
    return inc.sha256_file(path)


def images(n, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def test_stand_in_network_through_the_loading_and_fid_path(tmp_path):
    path = tmp_path / "stand_in.pth"
    digest = save_stand_in(path)
    fe = inc.load_feature_network(path, build=build_stand_in, expected_sha256=digest, implementation="stand-in")
    assert digest[:12] in fe.implementation
    real = images(40)
    f_real = fe(real).numpy()
    assert f_real.shape == (40, 24) and np.isfinite(f_real).all()
    assert fid_from_features(f_real, f_real) == pytest.approx(0.0, abs=1e-8)
    darker = (real.float() * 0.5).round().to(torch.uint8)
    res = fid_kid(f_real, fe(darker).numpy(), seed=0)
    assert res["fid"] > 0 and res["kid"] > 0 and res["n_fake"] == 40
    # Batching does not change the features.
    fe.batch_size = 7
    assert np.allclose(fe(real).numpy(), f_real, atol=1e-6)


def test_a_file_with_the_wrong_checksum_is_refused_in_one_line(tmp_path):
    path = tmp_path / "stand_in.pth"
    save_stand_in(path)
    with pytest.raises(GanlabError) as err:
        inc.load_feature_network(path, build=build_stand_in, expected_sha256="0" * 64, implementation="x")
    assert "checksum" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GanlabError, match="checksum"):
        inc.find_inception_weights(path)  # a stand-in is not the FID Inception file


def test_absent_and_offline_is_one_line_naming_file_checksum_place_and_alternatives(tmp_path):
    with pytest.raises(inc.WeightsUnavailable) as err:
        inc.find_inception_weights(download=False)
    msg = str(err.value)
    assert "\n" not in msg
    for part in (inc.FID_WEIGHTS_FILE, inc.FID_WEIGHTS_SHA256_PREFIX, str(tmp_path / "hub" / "checkpoints"),
                 "--inception-weights", inc.ENV_VAR, "SWD"):
        assert part in msg
    assert inc.inception_status(download=False) == (None, msg)


def test_a_failed_download_is_reported_the_same_way(monkeypatch):
    calls = []

    def offline(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(inc.WeightsUnavailable, match="download failed"):
        inc.find_inception_weights(download=True, timeout=0.1)
    assert calls == [(inc.FID_WEIGHTS_URL, inc.FID_WEIGHTS_SHA256_PREFIX)]


def test_weights_in_the_hub_cache_are_found_and_checked(tmp_path):
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / inc.FID_WEIGHTS_FILE).write_bytes(b"not the weights")
    with pytest.raises(GanlabError, match="checksum"):
        inc.find_inception_weights(download=False)


def test_explicit_path_and_environment_variable(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="no such file"):
        inc.find_inception_weights(tmp_path / "missing.pth")
    monkeypatch.setenv(inc.ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(UsageError, match=inc.ENV_VAR):
        inc.find_inception_weights()


def test_pytorch_fid_network_on_uint8_tensors_matches_its_own_file_route(tmp_path):
    """pytorch-fid's InceptionV3 (random weights) fed uint8 tensors gives the features its
    file-based route gives for the same pixels saved as PNG."""
    import torchvision
    from PIL import Image
    from pytorch_fid.fid_score import get_activations

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    # Scale the default init so activations keep their size through the 90-odd layers.
    state = {k: (v * 2.45 if v.ndim == 4 else v) for k, v in net.state_dict().items()}
    path = tmp_path / "random_inception.pth"
    torch.save(state, path)
    fe = inc.load_feature_network(
        path, build=inc.pytorch_fid_inception, expected_sha256=inc.sha256_file(path), implementation=inc.implementation_name()
    )
    x = images(2, 40, seed=1)
    ours = fe(x).numpy()
    files = []
    for i, img in enumerate(x):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(files[-1])
    theirs = get_activations([str(f) for f in files], fe.net, batch_size=2, dims=2048, device="cpu", num_workers=0)
    assert ours.shape == (2, 2048)
    assert np.abs(ours).mean() > 1e-3
    assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    assert "pytorch-fid" in fe.implementation and "299" in fe.implementation


def test_real_feature_cache_round_trip_and_atomic_files(tmp_path):
    cache = RealFeatureCache(tmp_path / "fid")
    feats = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    calls = []

    def compute():
        calls.append(1)
        return feats

    a, stats_a, hit_a = cached_real_features(compute, key="k1", cache=cache)
    b, stats_b, hit_b = cached_real_features(compute, key="k1", cache=cache)
    assert (hit_a, hit_b) == (False, True) and len(calls) == 1
    assert np.array_equal(a, b) and np.allclose(stats_a.sigma, stats_b.sigma) and stats_b.n == 20
    assert [p.name for p in (tmp_path / "fid").iterdir()] == ["k1.npz"]  # no temporary files left
    (tmp_path / "fid" / "k2.npz").write_bytes(b"damaged")
    assert cache.load("k2") is None


def test_cache_key_follows_file_contents_and_settings(tmp_path):
    f1, f2 = tmp_path / "a.png", tmp_path / "b.png"
    f1.write_bytes(b"one")
    f2.write_bytes(b"two")
    d = files_digest([f1, f2])
    assert d == files_digest([f1, f2])
    k = stats_key(d, {"size": 64, "n": 2})
    assert k != stats_key(d, {"size": 128, "n": 2})
    f2.write_bytes(b"changed")
    assert stats_key(files_digest([f1, f2]), {"size": 64, "n": 2}) != k


def test_cache_directory_follows_the_environment(tmp_path, monkeypatch):
    from ganlab.metrics.fid import cache_dir

    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" / "fid"
