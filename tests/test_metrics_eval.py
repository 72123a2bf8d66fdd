"""``ganlab eval RUN_DIR`` end to end on a tiny run: the table, metrics.json, the offline rule,
the real-feature cache (with a stand-in feature network) and one-line errors."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganlab.cli import main
from ganlab.metrics import inception as inc


def _write_images(folder, n, size, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.zeros((size, size, 3), np.float64)
        img[:] = rng.uniform(0, 255, 3)
        for _ in range(4):
            y, x = rng.integers(0, size - 8, 2)
            img[y : y + 12, x : x + 12] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 8, img.shape)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = _write_images(root / "data", 10, 40, seed=0)
    out = root / "runs"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(
            ["train", "--data", str(data), "--size", "32", "--load-size", "32", "--steps", "4", "--batch-size", "2",
             "--ngf", "8", "--ndf", "8", "--out", str(out), "--no-progress", "--eval-every", "2", "--log-every", "1",
             "--device", "cpu"]
        )
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.fixture(autouse=True)
def _isolated(no_weights_here, one_thread):
    yield


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_eval_offline_lists_fid_as_unavailable_and_computes_the_rest(run_dir, capsys):
    assert main(["eval", str(run_dir), "--no-download", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    notes = [line for line in err.splitlines() if "FID/KID unavailable" in line]
    assert len(notes) == 1 and inc.FID_WEIGHTS_FILE in notes[0] and inc.FID_WEIGHTS_SHA256_PREFIX in notes[0]
    assert "SWD" in out and "unavailable" in out
    result = _metrics(run_dir)
    m = result["metrics"]
    assert result["n"] == 2 and result["checkpoint"] == "latest"  # the 20 % split of 10 images
    for key in ("fid", "kid", "lpips"):
        assert m[key]["available"] is False and m[key]["reason"] and "value" not in m[key]
    for key in ("swd", "ab_swd", "color_hist", "psnr", "ssim", "uiqi", "ab_l1", "l1", "colorfulness_real", "colorfulness_fake"):
        assert m[key]["available"] is True, key
        assert isinstance(m[key]["value"], float) and math.isfinite(m[key]["value"]), key
        assert m[key]["n"] == 2 and m[key]["implementation"], key
    inst = m["instability"]
    assert inst["available"] and not inst["diverged"] and inst["steps"] >= 4
    assert not list(run_dir.glob(".metrics.json*"))  # written atomically, nothing left behind


class StandIn(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return [self.body(x)]


def test_eval_with_a_stand_in_feature_network_caches_real_features(run_dir, tmp_path, monkeypatch):
    path = tmp_path / "stand_in.pth"
    torch.manual_seed(0)
    torch.save(StandIn().state_dict(), path)

    def build(state):
        net = StandIn()
        net.load_state_dict(state)
        return net

    def load(weights=None, *, device="cpu", download=True, batch_size=64):
        return inc.load_feature_network(
            path, build=build, expected_sha256=inc.sha256_file(path), implementation="stand-in", device=device
        )

    monkeypatch.setattr(inc, "inception_status", lambda *a, **k: (path, None))
    monkeypatch.setattr(inc, "load_inception", load)
    assert main(["eval", str(run_dir), "--device", "cpu", "--no-download"]) == 0
    first = _metrics(run_dir)["metrics"]
    assert first["fid"]["available"] and first["fid"]["n"] == 2 and "stand-in" in first["fid"]["implementation"]
    assert first["fid"]["real_stats_cached"] is False and "biased" in first["fid"]["warning"]
    assert first["kid"]["available"] and math.isfinite(first["kid"]["value"])
    assert len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 1
    assert main(["eval", str(run_dir), "--device", "cpu", "--no-download"]) == 0
    second = _metrics(run_dir)["metrics"]
    assert second["fid"]["real_stats_cached"] is True
    assert second["fid"]["value"] == pytest.approx(first["fid"]["value"], rel=1e-9)


def test_eval_on_another_validation_folder(run_dir, tmp_path):
    val = _write_images(tmp_path / "val", 5, 36, seed=1)
    assert main(["eval", str(run_dir), "--data", str(val), "--n", "4", "--no-download", "--device", "cpu"]) == 0
    result = _metrics(run_dir)
    assert result["n"] == 4 and result["metrics"]["swd"]["n"] == 4


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["eval", "/no/such/run"], "no such run folder"),
        (["eval", "{run}", "--n", "1"], "--n 1"),
        (["eval", "{run}", "--checkpoint", "/no/such.pt", "--no-download"], "--checkpoint"),
        (["eval", "{run}", "--checkpoint", "ema", "--no-download"], "ema"),
        (["eval", "{run}", "--data", "/no/such/folder"], "--data"),
        (["eval", "{run}", "--device", "cuda:7", "--no-download"], "--device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_dir, capsys, argv, needle):
    if "--device" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    rc = main([a.format(run=run_dir) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len([line for line in err if line.startswith("ganlab: error")]) == 1
    assert needle in err[-1] and "Traceback" not in "\n".join(err)


def test_help_carries_the_instability_formula(capsys):
    try:
        rc = main(["eval", "--help"])
    except SystemExit as exc:
        rc = exc.code
    assert rc in (0, None)
    out = capsys.readouterr().out
    assert "I = 10 * (2 R + V) / 3" in out and "D/auc >= 0.99" in out and "no adversarial signal" in out


def test_a_diverged_generator_lists_image_metrics_as_unavailable(run_dir, tmp_path, capsys):
    (ckpt,) = sorted((run_dir / "checkpoints").glob("*.pt"))[-1:]
    payload = torch.load(ckpt, map_location="cpu", weights_only=True)
    payload["G"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in payload["G"].items()}
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    assert main(["eval", str(run_dir), "--checkpoint", str(broken), "--no-download", "--device", "cpu"]) == 0
    m = _metrics(run_dir)["metrics"]
    for key in ("fid", "swd", "psnr", "colorfulness_ratio"):
        assert m[key]["available"] is False and "NaN/Inf" in m[key]["reason"]
    assert m["instability"]["available"]


def test_a_checkpoint_file_as_run_dir_is_that_run_with_checkpoint_path(run_dir, capsys):
    ckpt = sorted((run_dir / "checkpoints").glob("step-*.pt"))[-1]
    (run_dir / "metrics.json").unlink(missing_ok=True)
    assert main(["eval", str(ckpt), "--no-download", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert not (run_dir / "checkpoints" / "metrics.json").exists()
    result = _metrics(run_dir)
    assert result["run"] == str(run_dir) and result["checkpoint"] == ckpt.name
    assert result["checkpoint_file"] == str(ckpt.resolve())
    assert result["metrics"]["instability"]["available"] is True
    assert ckpt.name in out and "latest" not in out.splitlines()[0]
    assert f"wrote {run_dir / 'metrics.json'}" in " ".join(err.split())


def test_a_checkpoint_file_outside_a_run_folder_is_one_line(run_dir, tmp_path, capsys):
    loose = tmp_path / "step-0000004.pt"
    loose.write_bytes(sorted((run_dir / "checkpoints").glob("step-*.pt"))[-1].read_bytes())
    assert main(["eval", str(loose), "--no-download", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ganlab: error:")
    assert "run folder" in err[0] and "--checkpoint PATH" in err[0]


def test_a_run_without_checkpoints_fails_before_any_note_or_download(run_dir, tmp_path, capsys, monkeypatch):
    import shutil

    empty = tmp_path / "00001-diverged"
    empty.mkdir()
    for name in ("config.json", "stats.jsonl"):
        shutil.copy(run_dir / name, empty / name)
    asked = []
    monkeypatch.setattr(inc, "inception_status", lambda *a, **k: asked.append(1) or (None, "no weights"))
    rc = main(["eval", str(empty), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and not asked
    assert len(err) == 1 and err[0].startswith("ganlab: error:") and str(empty) in err[0]
    assert "no checkpoint yet" in err[0] and "start a new run" not in err[0]


def test_ema_on_a_run_without_it_fails_before_any_note(run_dir, capsys, monkeypatch):
    asked = []
    monkeypatch.setattr(inc, "inception_status", lambda *a, **k: asked.append(1) or (None, "no weights"))
    rc = main(["eval", str(run_dir), "--checkpoint", "ema", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not asked
    assert len(err) == 1 and "--trick g-ema" in err[0] and "--checkpoint latest" in err[0]


def test_a_nan_metric_is_unavailable_with_a_reason(tmp_path, capsys):
    # a paired B -> A run whose A (the target) is grey: the real images have no colour
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    rng = np.random.default_rng(2)
    for i in range(10):
        b = rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)
        a = np.repeat(b.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
        Image.fromarray(np.concatenate((a, b), axis=1)).save(pairs / f"{i:02d}.png")
    assert main(["train", "--data", str(pairs), "--task", "paired", "--direction", "BtoA", "--size", "32",
                 "--load-size", "32", "--steps", "2", "--batch-size", "2", "--ngf", "4", "--ndf", "4",
                 "--out", str(tmp_path / "runs"), "--no-progress", "--device", "cpu"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    capsys.readouterr()
    assert main(["eval", str(run), "--no-download", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    m = _metrics(run)["metrics"]
    assert m["colorfulness_real"]["value"] == 0.0
    ratio = m["colorfulness_ratio"]
    assert ratio["available"] is False and "value" not in ratio and "no colour" in ratio["reason"]
    assert '"nan"' not in (run / "metrics.json").read_text().lower()
    (row,) = [line for line in out.splitlines() if "colourfulness ratio" in line]
    assert "unavailable" in row and "nan" not in row
