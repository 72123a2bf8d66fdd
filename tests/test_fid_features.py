"""``--fid-features FILE``: FID and KID with a TorchScript feature network in place of Inception,
in ``ganlab eval`` and in a study's ``fid`` objective; a wrong file is one line."""

import json
import math
import warnings

import optuna
import pytest
import torch
from torch import nn

from conftest import write_images
from ganlab.cli import main
from ganlab.metrics import inception as inc
from ganlab.metrics.inception import sha256_file


class TinyFeatures(nn.Module):
    """uint8 RGB (N, 3, H, W) -> float (N, 16): a convolution and a global average."""

    def __init__(self, dims: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(3, dims, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x.float() / 255.0)).mean(dim=(2, 3))


class Unflattened(nn.Module):
    """Forgets to flatten: (N, 16, 1, 1) instead of (N, 16)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.float() / 255.0).mean(dim=(2, 3), keepdim=True)


class NaNFeatures(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3)) * float("nan")


def scripted(module: nn.Module, path, seed: int = 0):
    torch.manual_seed(seed)
    for p in module.parameters():  # the weights come from the seed, whenever the module was made
        nn.init.normal_(p, std=0.5)
    with warnings.catch_warnings():  # torch marks TorchScript as deprecated
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.fixture(autouse=True)
def _isolated(no_weights_here, one_thread, monkeypatch):
    """No Inception weights anywhere, no download, a private feature cache, one thread."""
    monkeypatch.setattr(inc, "try_download", lambda *a, **k: "not found and the download failed (offline)")
    yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidfeatures")
    data = write_images(root / "data", 10, seed=0)
    out = root / "runs"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(["train", "--data", str(data), "--size", "32", "--load-size", "40", "--steps", "4", "--batch-size", "2",
                   "--ngf", "8", "--ndf", "8", "--out", str(out), "--no-progress", "--eval-every", "2", "--log-every", "1",
                   "--device", "cpu"])
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.fixture
def net(tmp_path):
    return scripted(TinyFeatures(), tmp_path / "tiny_features.pt")


def test_eval_with_a_torchscript_feature_network(run_dir, net, tmp_path, monkeypatch, capsys):
    def no_inception(*a, **k):
        raise AssertionError("Inception looked for although --fid-features was given")

    monkeypatch.setattr(inc, "inception_status", no_inception)
    monkeypatch.setattr(inc, "load_inception", no_inception)
    assert main(["eval", str(run_dir), "--fid-features", str(net), "--no-download", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "Inception weights" not in err and "FID/KID unavailable" not in err
    m = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    digest = sha256_file(net)
    for key in ("fid", "kid"):
        assert m[key]["available"] is True, m[key]
        assert isinstance(m[key]["value"], float) and math.isfinite(m[key]["value"]), m[key]
        assert m[key]["n"] == 2
        impl = m[key]["implementation"]
        assert f"torchscript feature network sha256:{digest[:16]}" in impl and net.name in impl and "16-d" in impl
    assert m["fid"]["real_stats_cached"] is False
    # the cache key holds the network's digest: a second network never reads the first one's features
    other = scripted(TinyFeatures(), tmp_path / "other.pt", seed=1)
    assert sha256_file(other) != digest
    assert main(["eval", str(run_dir), "--fid-features", str(other), "--no-download", "--device", "cpu"]) == 0
    second = json.loads((run_dir / "metrics.json").read_text())["metrics"]["fid"]
    assert second["real_stats_cached"] is False and sha256_file(other)[:16] in second["implementation"]
    assert len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 2
    # the same network again: its real features come from the cache, the FID is the same
    assert main(["eval", str(run_dir), "--fid-features", str(net), "--no-download", "--device", "cpu"]) == 0
    third = json.loads((run_dir / "metrics.json").read_text())["metrics"]["fid"]
    assert third["real_stats_cached"] is True and third["value"] == pytest.approx(m["fid"]["value"], rel=1e-9)


def _bad_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a network\n")
    state = tmp_path / "state_dict.pt"
    torch.save(TinyFeatures().state_dict(), state)
    return {
        "missing": (tmp_path / "no_such.pt", "no such file"),
        "text": (text, "not a TorchScript file"),
        "state_dict": (state, "not a TorchScript file"),
        "unflattened": (scripted(Unflattened(), tmp_path / "unflattened.pt"), "returned shape (2, 16, 1, 1)"),
        "nan": (scripted(NaNFeatures(), tmp_path / "nan.pt"), "NaN"),
    }


@pytest.mark.parametrize("which", ["missing", "text", "state_dict", "unflattened", "nan"])
def test_a_bad_feature_file_is_one_line(run_dir, tmp_path, capsys, which):
    path, needle = _bad_files(tmp_path)[which]
    rc = main(["eval", str(run_dir), "--fid-features", str(path), "--no-download", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and err[0].startswith("ganlab: error: --fid-features"), err
    assert needle in err[0] and str(path) in err[0]
    assert "Traceback" not in "\n".join(err)


STUDY = """\
# Question: does the fid objective finish with a feature network of one's own?
[study]
name = "{name}"
objectives = {objectives}
sampler = "random"
steps = 4
eval_every = 2
seed = 0

[train]
size = 32
load_size = 40
ngf = 8
ndf = 8
batch_size = 2
log_every = 1
device = "cpu"

[search]
lr = {{ low = 1e-4, high = 1e-3, log = true }}
"""


def _study_file(tmp_path, name, objectives):
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(name=name, objectives=json.dumps(objectives)))
    return path


def _load(out, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'studies.db'}")


@pytest.mark.parametrize("objectives", [["fid"], ["swd", "fid"]], ids=["fid", "swd-fid"])
def test_a_study_scores_fid_with_the_feature_network(tmp_path, net, capsys, objectives):
    name = "fid-" + "-".join(objectives)
    f, out = _study_file(tmp_path, name, objectives), tmp_path / "runs"
    rc = main(["study", "--study", str(f), "--trials", "2", "--fid-features", str(net), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    study = _load(out, name)
    digest = sha256_file(net)
    assert study.user_attrs["fid_network_sha256"] == digest
    assert f"sha256:{digest[:16]}" in study.user_attrs["fid_implementation"]
    assert len(study.trials) == 2
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE, (t.state, t.user_attrs)
        assert len(t.values) == len(objectives) and all(math.isfinite(v) for v in t.values), t.values
        assert t.user_attrs["fid_implementation"] == study.user_attrs["fid_implementation"]
        assert t.user_attrs["fid_n"] == 2
    if objectives == ["fid"]:
        # continuing with another feature network is refused with one line, before any trial
        other = scripted(TinyFeatures(), tmp_path / "other.pt", seed=1)
        rc = main(["study", "--study", str(f), "--trials", "1", "--fid-features", str(other), "--out", str(out)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, lines
        assert "FIDs of different feature networks do not compare" in lines[0] and "--name NEW" in lines[0]
        assert len(_load(out, name).trials) == 2


def test_the_study_flag_is_checked_before_any_trial(tmp_path, net, capsys):
    out = tmp_path / "runs"
    # no fid objective: the flag is refused
    f = _study_file(tmp_path, "swd-only", ["swd"])
    rc = main(["study", "--study", str(f), "--trials", "1", "--fid-features", str(net), "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "has no fid objective" in lines[0], lines
    # a wrong file: the same one line as in eval
    bad = scripted(Unflattened(), tmp_path / "unflattened.pt")
    f = _study_file(tmp_path, "fid-bad", ["fid"])
    rc = main(["study", "--study", str(f), "--trials", "1", "--fid-features", str(bad), "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "returned shape" in lines[0], lines
    # without the flag and without Inception's weights: the line names the alternative
    rc = main(["study", "--study", str(f), "--trials", "1", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(lines) == 1 and inc.FID_WEIGHTS_FILE in lines[0] and "--fid-features FILE" in lines[0], lines
    # kid is measured during training with Inception: the flag does not stand in for it
    f = _study_file(tmp_path, "kid-fid", ["kid", "fid"])
    rc = main(["study", "--study", str(f), "--trials", "1", "--fid-features", str(net), "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(lines) == 1 and "fid objective only" in lines[0], lines
    assert not (out / "studies.db").exists() or not optuna.get_all_study_summaries(f"sqlite:///{out / 'studies.db'}")


def test_a_fid_study_with_inception_present_finishes_and_records_it(tmp_path, net, monkeypatch, capsys):
    """The Inception route of the fid objective, with a stand-in for Inception (its weights cannot
    be had here); a continuation with --fid-features is then refused."""
    import ganlab.study.runner as runner

    weights = tmp_path / "stand_in.pth"
    weights.write_bytes(b"stand-in weights")
    digest = sha256_file(weights)
    torch.manual_seed(0)
    module = TinyFeatures()

    def load(path=None, *, device="cpu", download=True, batch_size=64):
        return inc.FeatureExtractor(module, implementation=inc.stamp("stand-in Inception", digest), sha256=digest,
                                    batch_size=batch_size)

    monkeypatch.setattr(inc, "inception_status", lambda *a, **k: (weights, None))
    monkeypatch.setattr(inc, "load_inception", load)
    monkeypatch.setattr(runner, "inception_identity", lambda *a, **k: (inc.stamp("stand-in Inception", digest), digest))
    f, out = _study_file(tmp_path, "fid-inception", ["fid"]), tmp_path / "runs"
    rc = main(["study", "--study", str(f), "--trials", "1", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    study = _load(out, "fid-inception")
    (t,) = study.trials
    assert t.state == optuna.trial.TrialState.COMPLETE and math.isfinite(t.values[0])
    assert study.user_attrs["fid_network_sha256"] == digest
    assert t.user_attrs["fid_implementation"] == study.user_attrs["fid_implementation"] == inc.stamp("stand-in Inception", digest)
    capsys.readouterr()
    rc = main(["study", "--study", str(f), "--trials", "1", "--fid-features", str(net), "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "stand-in Inception" in lines[0] and "do not compare" in lines[0], lines
