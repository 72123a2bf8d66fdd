"""The scripts behind docs/findings.md: the budget rule of the learning curve, and the tables from
a confirmation (test-split measurement once per run, intervals, verdicts)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from test_arms import ARMS
from test_study import study_file

FINDINGS = Path(__file__).resolve().parents[1] / "studies" / "findings"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"findings_{name}", FINDINGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_budget_is_where_the_mean_curve_stops_improving_by_more_than_the_seed_spread():
    curve = _module("curve")
    steps = list(range(100, 2100, 100))
    # every seed falls from 300 to 200 by step 1000 and is flat after; seeds differ by +-20
    shape = [max(200.0, 300.0 - 0.1 * s) for s in steps]
    curves = [{s: v + off for s, v in zip(steps, shape)} for off in (-20.0, 0.0, 20.0)]
    result = curve.choose(curves, window=1)
    assert result["spread"] == pytest.approx(20.0)
    assert result["chosen"] == 900  # from 900 (210) the best later value (200) is within the spread of 20
    noisy = [{s: v + off + (15.0 if (s // 100) % 2 else -15.0) for s, v in zip(steps, shape)} for off in (-20.0, 0.0, 20.0)]
    assert curve.choose(noisy, window=3)["chosen"] <= 1000  # the smoothing keeps the zig-zag from moving it late


def test_the_budget_is_the_last_step_when_the_curve_still_improves_by_more_than_the_spread():
    curve = _module("curve")
    steps = list(range(100, 1100, 100))
    curves = [{s: 1000.0 - s + off for s in steps} for off in (-1.0, 0.0, 1.0)]
    assert curve.choose(curves, window=1)["chosen"] == 1000


def test_tables_measure_each_run_on_the_test_split_once_and_decide_against_the_baseline(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, "control = false\n" + ARMS)
    runs = tmp_path / "runs"
    assert run_cli("study", "--study", f, "--runs", runs)[0] == 0
    code, _, err = run_cli("confirm", "tiny", "--seeds", "2", "--runs", runs, "--n-jobs", "1")
    assert code == 0, err
    data = tmp_path / "data"
    data.mkdir()
    (data / "test").symlink_to(image_dir, target_is_directory=True)
    argv = [sys.executable, str(FINDINGS / "tables.py"), "--runs", str(runs), "--data", str(data), "--docs",
            str(tmp_path / "docs"), "--study", "tiny"]
    done = subprocess.run(argv, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    text = (runs / "findings" / "tables.md").read_text()
    assert "6 finished runs; 6 steps, 32 px" in text
    assert "| flip (label-flip:p=0.1) | 2 |" in text and "| baseline | 2 |" in text
    assert "| flip (label-flip:p=0.1) | baseline |" in text and "too few seeds" in text
    assert "test: a/b SWD alone, family of 2 (Holm, 5% family-wise)" in text
    measured = sorted(runs.glob("tiny-confirm/*/test-metrics.json"))
    assert len(measured) == 6
    stamps = [p.stat().st_mtime_ns for p in measured]
    again = subprocess.run(argv, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert again.returncode == 0, again.stderr[-2000:]
    assert [p.stat().st_mtime_ns for p in measured] == stamps  # reused, not measured again
    assert (runs / "findings" / "tables.md").read_text() == text


def _stub_bin(tmp_path, fail: str = "") -> Path:
    """``ganlab`` and ``python`` that only write down how they were called (``fail``: a word that
    makes a call fail)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ganlab", "python"):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/calls"\n'
                        + (f'case "$*" in *{fail}*) exit 1;; esac\n' if fail else "") + "exit 0\n")
        stub.chmod(0o755)
    return bin_dir


def _findings(tmp_path, bin_dir: Path, data: Path, **env):
    import os

    script = FINDINGS.parent / "findings.sh"
    return subprocess.run(["bash", str(script)], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "DATA": str(data),
                               "RUNS": str(tmp_path / "runs"), **env})


def test_findings_sh_runs_every_question_in_order_and_goes_on_past_a_failure(tmp_path):
    data = tmp_path / "bsds500"
    for split in ("train", "val", "test"):
        (data / split).mkdir(parents=True)
    done = _findings(tmp_path, _stub_bin(tmp_path, fail="confirm q2-wgan-pixeltcl"), data)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert done.returncode == 1 and "== FAILED: ganlab confirm q2-wgan-pixeltcl" in done.stdout
    assert calls[0].startswith("python ") and "curve.py" in calls[0]
    order = [c.split()[2] for c in calls if c.startswith("ganlab confirm")]
    assert order == ["q3-weak-d", "q2-wgan-pixeltcl", "q4-ganhacks", "q6-modern", "q1-adversarial"]
    assert any(c.startswith("ganlab study") and "q4-ganhacks.toml" in c and "--n-jobs auto" in c for c in calls)
    assert any(c.startswith("ganlab confirm q4-ganhacks") and "--top 1" in c for c in calls)
    assert all("--seeds 10" in c for c in calls if c.startswith("ganlab confirm"))
    assert calls[-1].startswith("python ") and "tables.py" in calls[-1]


def test_findings_sh_runs_only_what_it_is_asked_and_refuses_a_missing_dataset(tmp_path):
    data = tmp_path / "bsds500"
    for split in ("train", "val", "test"):
        (data / split).mkdir(parents=True)
    done = _findings(tmp_path, _stub_bin(tmp_path), data, ONLY="q3", SEEDS="12")
    calls = (tmp_path / "calls").read_text().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [c.split()[:3] for c in calls] == [["ganlab", "study", "--study"], ["ganlab", "confirm", "q3-weak-d"]]
    assert "--seeds 12" in calls[1]
    missing = _findings(tmp_path, tmp_path / "bin", tmp_path / "nowhere")
    assert missing.returncode == 2 and "set DATA to the BSDS500 folder" in missing.stderr
