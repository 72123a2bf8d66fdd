"""The L1-only control (``--gan-mode none``), the like-with-like train-validation gap, the
study's control row and the pruning default that does not favour grey images."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution

from conftest import TINY, only_run, straight_and_resumed
from ganlab.metrics.stability import instability_score, val_gap
from ganlab.stats import read_series


def test_gan_mode_none_trains_g_alone_and_is_labelled_degenerate(run_cli, image_dir, tmp_path):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--gan-mode", "none", "--steps", "8",
                           "--eval-every", "4", "--log-every", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    assert "no D (--gan-mode none: the L1-only control)" in err
    run = only_run(tmp_path / "runs")
    ckpt = torch.load(run / "checkpoints" / "step-0000008.pt", weights_only=True)
    assert ckpt["D"] == {} and ckpt["opt_d"] == {} and ckpt["G"]  # no discriminator was built
    series = read_series(run / "stats.jsonl")
    assert not [k for k in series if k.startswith("D/") or k == "lr/D"]  # no D update, no D statistics
    assert {"G/L1", "G/total", "G/grad_norm", "val/L1", "train/L1"} <= set(series)
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished" and status["degenerate"] == "no adversarial signal"
    code, _, err = run_cli("eval", run, "--device", "cpu", "--no-download")
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["instability"]["degenerate"] == "no adversarial signal"
    # a label, not a penalty of the quality-based score; the loss-shape score keeps it behind a real D
    assert math.isfinite(metrics["instability"]["value"]) and metrics["instability"]["loss_shape"] >= 10
    assert metrics["instability"]["adv_grad_share"] is None  # no adversarial term: nothing measured


def test_the_l1_only_control_resumes_exactly(run_cli, image_dir, tmp_path):
    common = ["--data", image_dir, *TINY, "--gan-mode", "none", "--save-every", "3", "--eval-every", "0"]
    a, b, _, err = straight_and_resumed(run_cli, tmp_path, common, steps=6, half=3)
    assert "resuming" in err
    for k in a["G"]:
        assert torch.equal(a["G"][k], b["G"][k]), k


@pytest.mark.parametrize("trick", ["label-flip", "soft-labels", "wgan-gp", "r1", "spectral-norm", "ttur"])
def test_tricks_that_act_on_d_are_refused_with_the_control(run_cli, trick):
    code, _, err = run_cli("train", "--gan-mode", "none", "--trick", trick, "--dry-run")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert f"--trick {trick} cannot be used with --gan-mode none" in lines[0]


@pytest.mark.parametrize("trick", ["g-ema", "pixeltcl", "leaky-relu-only"])
def test_tricks_on_g_alone_run_with_the_control(run_cli, trick):
    code, out, err = run_cli("train", "--gan-mode", "none", "--trick", trick, "--dry-run")
    assert code == 0, err
    assert json.loads(out)["config"]["gan_mode"] == "none"


def test_the_control_needs_an_l1_term(run_cli):
    code, _, err = run_cli("train", "--gan-mode", "none", "--lambda-l1", "0", "--dry-run")
    assert code == 2 and "leaves it nothing to learn" in err


def test_the_gap_compares_the_evaluation_generator_on_both_splits():
    # G/L1 (the training step's loss, G in train mode with dropout) is far above both; the gap
    # is read from train/L1, the evaluation generator on training crops, as val/L1 is measured.
    series = {
        "G/L1": [(s, 0.30) for s in range(20)],
        "val/L1": [(9, 0.12), (19, 0.15)],
        "train/L1": [(9, 0.10), (19, 0.10)],
    }
    assert val_gap(series) == pytest.approx(0.5)
    del series["train/L1"]  # a run from before train/L1: the step's own loss
    assert val_gap(series) == 0.0


def test_in_loop_evaluation_logs_train_l1_with_val_l1(run_cli, image_dir, tmp_path):
    code, _, err = run_cli("train", "--data", image_dir, *TINY, "--trick", "g-ema", "--steps", "6", "--eval-every", "3",
                           "--out", tmp_path / "runs")
    assert code == 0, err
    series = read_series(only_run(tmp_path / "runs") / "stats.jsonl")
    assert [s for s, _ in series["train/L1"]] == [s for s, _ in series["val/L1"]] == [2, 5]
    score = instability_score(series)
    assert "val_gap" in score.diagnostics


def test_the_report_shows_the_l1_only_control_as_its_own_row(tmp_path):
    from ganlab.study.report import write_report

    study = optuna.create_study(study_name="ctl", directions=["minimize", "minimize"])
    study.set_user_attr("objectives", ["swd", "instability"])
    dist = {"gan_mode": CategoricalDistribution(["none", "vanilla"])}
    for i, (mode, values, degenerate) in enumerate([("none", [140.0, 10.2], "no adversarial signal"),
                                                    ("vanilla", [120.0, 1.5], None), ("vanilla", [125.0, 2.0], None)]):
        attrs = {"tricks": [], "gan_mode": mode, **({"degenerate": degenerate} if degenerate else {})}
        study.add_trial(optuna.create_trial(params={"gan_mode": mode}, distributions=dist, values=values, user_attrs=attrs))
    text = write_report(study, tmp_path / "report").read_text()
    assert "## The L1-only control" in text
    assert "| L1-only control | 140" in text and "| adversarial | 122.5" in text
    assert "## Degenerate runs" in text and "#0 [no tricks] (L1-only control): no adversarial signal" in text


def test_a_study_not_measured_in_the_loop_prunes_on_a_distribution_distance():
    from ganlab.study import parse_study
    from ganlab.study.objective import scalar_for_pruning

    spec = parse_study('[study]\nobjectives = ["instability"]\npruner = "median"\n', "--study t.toml", "t")
    # a grey generator has the better L1 and the worse SWD: the pruner must see the SWD
    assert spec.pruning_target == ("val/swd", False)
    assert scalar_for_pruning(spec, {"val/L1": 0.04, "val/swd": 180.0}) == 180.0


def test_the_built_in_control_study_parses():
    from ganlab.study import load_study_file

    spec = load_study_file("adversarial-vs-l1")
    assert dict(spec.search)["gan_mode"].choices[0] == "none"
