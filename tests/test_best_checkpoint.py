"""The best checkpoint and weights-only finished runs.

A run keeps ``checkpoints/best.pt`` (weights only) of the in-loop evaluation with the best
``--best-metric`` value and names it in status.json; a resume carries the best so far on; ``ganlab
eval --checkpoint best`` and ``ganlab colorize --checkpoint best`` use it and say so.
``slim_run`` turns a finished run's step checkpoints into ``final.pt`` (weights only), after which
colorize and eval still work and a resume is refused in one line. ``checkpoint_bytes`` predicts
the size of both kinds of file from the networks alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY, only_run, straight_and_resumed, write_images
from ganlab.errors import GanlabError
from ganlab.train.checkpoint import (BEST_FILE, FINAL_FILE, checkpoint_bytes, checkpoint_files, read_checkpoint,
                                     slim_run)

EVALS = ["--steps", "8", "--eval-every", "2", "--save-every", "4", "--log-every", "1"]
WEIGHTS_KEYS = {"format", "kind", "step", "config", "G"}


def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def _evaluations(run: Path, metric: str) -> dict[int, float]:
    """{steps done: value} of every in-loop evaluation in stats.jsonl (logged at steps done - 1)."""
    out = {}
    for line in (run / "stats.jsonl").read_text().splitlines():
        row = json.loads(line)
        if metric in row:
            out[row["step"] + 1] = row[metric]
    return out


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganlab: error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """A finished tiny run with a moving average of G, evaluated every 2 of 8 steps."""
    from ganlab.cli import main

    root = tmp_path_factory.mktemp("best")
    folder = write_images(root / "images", 6)
    assert main(["train", "--data", str(folder), *TINY, *EVALS, "--trick", "g-ema", "--out", str(root / "runs")]) == 0
    return only_run(root / "runs")


@pytest.fixture
def ema_copy(tmp_path, ema_run) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(ema_run, copy)
    return copy


@pytest.mark.parametrize("metric,better", [("val/swd", min), ("val/psnr", max)])
def test_best_pt_holds_the_evaluation_with_the_best_logged_value(tmp_path, image_dir, run_cli, metric, better, one_thread):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, *EVALS, "--best-metric", metric, "--out", tmp_path / "r")
    assert code == 0, err
    run = only_run(tmp_path / "r")
    logged = _evaluations(run, metric)
    assert sorted(logged) == [2, 4, 6, 8]
    step = better(logged, key=lambda s: (logged[s], s) if better is min else (logged[s], -s))
    best = _status(run)["best"]
    assert best == {"checkpoint": "checkpoints/best.pt", "metric": metric, "value": pytest.approx(logged[step]), "step": step}
    payload = torch.load(run / best["checkpoint"], weights_only=True)  # plain data
    assert set(payload) == WEIGHTS_KEYS | {"best"} and payload["kind"] == "weights" and payload["step"] == step
    assert payload["best"] == {"metric": metric, "value": pytest.approx(logged[step]), "step": step}
    if (run / "checkpoints" / f"step-{step:07d}.pt").is_file():  # the same generator as that step's checkpoint
        full = torch.load(run / "checkpoints" / f"step-{step:07d}.pt", weights_only=True)
        assert all(torch.equal(full["G"][k], payload["G"][k]) for k in full["G"])
    assert BEST_FILE not in {p.name for p in checkpoint_files(run)}  # never one of the step checkpoints (nor pruned with them)
    assert f"best checkpoint:  {run / 'checkpoints' / 'best.pt'} (step {step}" in err


def test_the_best_so_far_survives_a_resume(tmp_path, image_dir, run_cli, one_thread):
    common = ["--data", image_dir, *TINY, "--eval-every", "2", "--save-every", "4", "--log-every", "1"]
    _, _, run_b, _ = straight_and_resumed(run_cli, tmp_path, common, steps=8, half=4)
    a, b = _status(only_run(tmp_path / "a"))["best"], _status(run_b)["best"]
    assert a == b
    pa = torch.load(only_run(tmp_path / "a") / "checkpoints" / BEST_FILE, weights_only=True)
    pb = torch.load(run_b / "checkpoints" / BEST_FILE, weights_only=True)
    assert pa["step"] == pb["step"] and all(torch.equal(pa["G"][k], pb["G"][k]) for k in pa["G"])


def test_a_best_pt_from_after_the_checkpoint_is_kept_on_resume(tmp_path, image_dir, run_cli, one_thread):
    """A run stopped after an evaluation's best.pt but before its step checkpoint: the resume
    trains those steps again from the checkpoint and ends with the straight run's best."""
    common = ["--data", image_dir, *TINY, "--eval-every", "2", "--save-every", "4", "--log-every", "1",
              "--best-metric", "val/L1"]
    assert run_cli("train", *common, "--steps", "8", "--out", tmp_path / "a")[0] == 0
    straight = _status(only_run(tmp_path / "a"))["best"]
    assert straight["step"] > 4  # val/L1 still falls at the end of this tiny run
    assert run_cli("train", *common, "--steps", "8", "--out", tmp_path / "b")[0] == 0
    run = only_run(tmp_path / "b")
    (run / "checkpoints" / "step-0000008.pt").unlink()  # as if stopped after step 8's best.pt was written
    code, _, err = run_cli("train", "--resume", run, "--steps", "8", "--no-progress")
    assert code == 0, err
    assert _status(run)["best"] == straight
    pa = torch.load(only_run(tmp_path / "a") / "checkpoints" / BEST_FILE, weights_only=True)
    pb = torch.load(run / "checkpoints" / BEST_FILE, weights_only=True)
    assert all(torch.equal(pa["G"][k], pb["G"][k]) for k in pa["G"])


def test_a_resume_with_another_best_metric_starts_a_new_best(tmp_path, image_dir, run_cli):
    common = ["--data", image_dir, *TINY, "--eval-every", "2", "--log-every", "1"]
    assert run_cli("train", *common, "--steps", "4", "--out", tmp_path / "r")[0] == 0
    run = only_run(tmp_path / "r")
    code, _, err = run_cli("train", "--resume", run, "--steps", "6", "--best-metric", "val/psnr", "--no-progress")
    assert code == 0, err
    assert "chosen by val/swd" in err
    best = _status(run)["best"]
    assert best["metric"] == "val/psnr" and best["step"] == 6  # the only evaluation by val/psnr
    assert torch.load(run / "checkpoints" / BEST_FILE, weights_only=True)["best"]["metric"] == "val/psnr"


def test_eval_and_colorize_use_the_best_checkpoint_and_say_so(ema_run, tmp_path, run_cli, image_dir, no_weights_here):
    best = _status(ema_run)["best"]
    code, _, err = run_cli("eval", ema_run, "--checkpoint", "best", "--no-download", "--device", "cpu")
    assert code == 0, err
    assert f"generator: checkpoints/best.pt (step {best['step']}, val/swd {best['value']:.4g}" in err
    result = json.loads((ema_run / "metrics.json").read_text())
    assert result["checkpoint"] == "best" and result["checkpoint_file"] == str((ema_run / "checkpoints" / BEST_FILE).resolve())
    assert result["checkpoint_step"] == best["step"] and result["best"]["value"] == pytest.approx(best["value"])
    assert result["weights"] == "G_ema"  # the generator that was evaluated when best.pt was chosen
    code, _, err = run_cli("colorize", ema_run, image_dir, "--out", tmp_path / "col", "--checkpoint", "best", "--device", "cpu")
    assert code == 0, err
    assert f"generator: checkpoints/best.pt (step {best['step']}" in err and "the moving average of G" in err
    code, _, err = run_cli("colorize", ema_run, image_dir, "--out", tmp_path / "col", "--checkpoint", "best",
                           "--weights", "latest", "--device", "cpu")
    assert code == 0 and "checkpoints/best.pt" in err and "moving average" not in err
    code, _, err = run_cli("colorize", ema_run, image_dir, "--out", tmp_path / "col", "--device", "cpu")
    assert code == 0 and "generator: checkpoints/step-0000008.pt (step 8, the moving average of G)" in err
    code, _, err = run_cli("colorize", ema_run / "checkpoints" / "step-0000008.pt", image_dir, "--out", tmp_path / "col",
                           "--checkpoint", "best", "--device", "cpu")
    assert code == 2 and "give the run folder" in _one_line(err)


def test_without_a_best_metric_there_is_no_best_checkpoint(tmp_path, image_dir, run_cli, no_weights_here):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "2", "--best-metric", "none", "--out", tmp_path / "r")
    assert code == 0, err
    run = only_run(tmp_path / "r")
    assert "best" not in _status(run) and not (run / "checkpoints" / BEST_FILE).exists()
    code, _, err = run_cli("eval", run, "--checkpoint", "best", "--no-download", "--device", "cpu")
    assert code != 0 and "--best-metric none" in _one_line(err)
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "2", "--best-metric", "val/fid", "--out", tmp_path / "r")
    line = _one_line(err)
    assert code == 2 and "--best-metric val/fid" in line and "val/swd" in line and "none" in line


def test_slim_run_keeps_final_and_best_weights_and_refuses_a_resume(ema_copy, tmp_path, run_cli, image_dir, no_weights_here):
    steps = checkpoint_files(ema_copy)
    last = torch.load(steps[0], weights_only=True)
    sizes = sum(p.stat().st_size for p in steps)
    out = slim_run(ema_copy)
    folder = ema_copy / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [BEST_FILE, FINAL_FILE]
    assert out["kept"] == [folder / FINAL_FILE, folder / BEST_FILE]
    assert out["freed_bytes"] == sizes - (folder / FINAL_FILE).stat().st_size > 0
    final = torch.load(folder / FINAL_FILE, weights_only=True)
    assert set(final) == WEIGHTS_KEYS | {"G_ema"} and final["kind"] == "weights" and final["step"] == 8
    for key in ("G", "G_ema"):
        assert all(torch.equal(final[key][k], last[key][k]) for k in last[key])
    assert slim_run(ema_copy) == {"freed_bytes": 0, "kept": out["kept"]}  # idempotent
    with pytest.raises(GanlabError, match="weights only"):
        read_checkpoint(folder / FINAL_FILE, for_resume=True)

    code, _, err = run_cli("colorize", ema_copy, image_dir, "--out", tmp_path / "col", "--device", "cpu")
    assert code == 0 and "generator: checkpoints/final.pt (step 8, the moving average of G)" in err, err
    code, _, err = run_cli("colorize", ema_copy, image_dir, "--out", tmp_path / "col", "--checkpoint", "best", "--device", "cpu")
    assert code == 0 and "checkpoints/best.pt" in err, err
    code, _, err = run_cli("eval", ema_copy, "--no-download", "--device", "cpu")
    assert code == 0 and "generator: checkpoints/final.pt (step 8, G)" in err, err
    code, _, err = run_cli("train", "--resume", ema_copy, "--steps", "10", "--no-progress")
    line = _one_line(err)
    assert code == 1 and "training state was dropped" in line and 'keep_checkpoints = "all"' in line


def test_slim_run_refuses_a_run_that_is_not_finished(ema_copy):
    status = _status(ema_copy)
    (ema_copy / "status.json").write_text(json.dumps(dict(status, status="stopped")))
    before = sorted(p.name for p in (ema_copy / "checkpoints").iterdir())
    with pytest.raises(GanlabError, match="the run is stopped, not finished") as info:
        slim_run(ema_copy)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in (ema_copy / "checkpoints").iterdir()) == before


@pytest.mark.parametrize("extra", [[], ["--trick", "g-ema"], ["--gan-mode", "none"]], ids=["plain", "g-ema", "l1-only"])
def test_checkpoint_bytes_matches_real_files(tmp_path, image_dir, run_cli, extra):
    """The disk-size model (ganlab.train.disk) within 1% of the files a tiny run writes (measured:
    0-0.2% under; what it leaves out is the first storage's alignment padding and a few pickle bytes
    per tensor)."""
    from ganlab.config import TrainConfig

    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--steps", "2", *extra, "--out", tmp_path / "r")
    assert code == 0, err
    run = only_run(tmp_path / "r")
    full, weights = checkpoint_bytes(TrainConfig.from_dict(json.loads((run / "config.json").read_text())))
    assert full == pytest.approx((run / "checkpoints" / "step-0000002.pt").stat().st_size, rel=0.01)
    assert weights == pytest.approx((run / "checkpoints" / BEST_FILE).stat().st_size, rel=0.01)
    slim_run(run)
    assert weights == pytest.approx((run / "checkpoints" / FINAL_FILE).stat().st_size, rel=0.01)


def test_checkpoint_bytes_of_the_defaults_allocates_nothing():
    """The default 256 px networks, counted on the meta device (measured once against real files:
    686,256,921 and 217,706,733 bytes)."""
    from ganlab.config import TrainConfig

    full, weights = checkpoint_bytes(TrainConfig())
    assert full == pytest.approx(686_256_921, rel=0.01) and weights == pytest.approx(217_706_733, rel=0.01)
