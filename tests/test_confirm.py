"""The confirmation stage and the evidence it gives: intervals, pairing by seed, verdicts."""

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from ganlab.study.evidence import HELPS, HURTS, MIN_SEEDS, NO_EFFECT, paired_effect, summarise
from test_study import load, study_file


def _pairs(diffs, base=10.0):
    return {s: base + d for s, d in enumerate(diffs)}, {s: base for s in range(len(diffs))}


def test_a_clear_effect_is_found_and_its_side_named():
    rng = np.random.default_rng(0)
    diffs = -1.0 + 0.1 * rng.normal(size=8)
    x, y = _pairs(diffs)
    assert paired_effect(x, y, "minimize").verdict == HELPS
    assert paired_effect(x, y, "maximize").verdict == HURTS
    e = paired_effect(x, y, "minimize")
    assert e.n == 8 and e.low < e.mean < e.high < 0


def test_the_verdict_is_no_effect_with_too_few_seeds_or_a_zero_effect():
    rng = np.random.default_rng(0)
    diffs = -1.0 + 0.1 * rng.normal(size=8)
    few = _pairs(diffs[: MIN_SEEDS - 1])
    e = paired_effect(*few, "minimize")
    assert e.verdict == NO_EFFECT and "need" in e.why and math.isnan(e.low)
    zero = _pairs([0.0] * 8)
    e = paired_effect(*zero, "minimize")
    assert e.verdict == NO_EFFECT and "identical" in e.why
    noise = _pairs([0.3, -0.2, 0.5, -0.6, 0.1, -0.1, 0.25, -0.2])  # no effect, only noise
    assert paired_effect(*noise, "minimize").verdict == NO_EFFECT


def test_pairs_are_matched_by_seed_not_by_position():
    x = {3: 5.0, 1: 2.0, 2: 3.0, 0: 1.0, 4: 9.0}
    y = {0: 1.0, 1: 2.0, 2: 3.0, 3: 5.0, 4: 9.0, 7: 100.0}  # seed 7 has no partner
    e = paired_effect(x, y, "minimize")
    assert e.n == 5 and e.mean == 0.0 and e.verdict == NO_EFFECT


def test_a_summary_has_the_t_interval():
    s = summarise([1.0, 2.0, 3.0])
    assert s.n == 3 and s.mean == 2.0 and s.sd == 1.0
    assert s.low == pytest.approx(2.0 - 4.302652729911275 / 3 ** 0.5)


def test_confirm_then_report_gives_verdicts_and_an_identity_trick_never_helps(tmp_path, image_dir, run_cli):
    # the only configuration of the search is label-flip at its identity setting (p = 0), which
    # trains bit for bit like the baseline: the evidence must say it does nothing
    f = study_file(tmp_path, image_dir, 'objectives = ["swd", "instability"]\npopulation_size = 2\n'
                   '[tricks]\nalways = ["label-flip"]\n[tricks.fixed.label-flip]\np = 0.0\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    code, _, err = run_cli("confirm", "tiny", "--seeds", "2", "--runs", tmp_path / "runs", "--equivalence", "swd=1000")
    assert code == 0, err
    assert "3 arms (trial-0, baseline, l1-only) x 2 seeds" in err
    assert "with 2 seeds no verdict is possible" in err and "3 comparisons at 5% family-wise (Holm) need at least 7 seeds" in err
    confirm = optuna.load_study(study_name="tiny-confirm", storage=f"sqlite:///{tmp_path / 'runs' / 'studies.db'}")
    runs = [t for t in confirm.trials if t.state == TrialState.COMPLETE]
    assert len(runs) == 6
    assert {(t.user_attrs["arm"]["label"], t.user_attrs["arm"]["seed"]) for t in runs} == {
        (a, s) for a in ("trial-0", "baseline", "l1-only") for s in (1000, 1001)}
    code, _, err = run_cli("report", "tiny", "--runs", tmp_path / "runs")
    assert code == 0, err
    report = tmp_path / "runs" / "tiny" / "report"
    text = (report / "report.md").read_text()
    evidence = text.split("# The search")[0]
    assert "## What the evidence supports" in evidence and "(confounded screening)" in text
    verdicts = [line for line in evidence.splitlines() if line.startswith("- **")]
    assert verdicts and not any(f"**{HELPS}**" in v or f"**{HURTS}**" in v for v in verdicts)
    assert "too few seeds" in evidence and "a verdict needs 7" in evidence, evidence  # two seeds: no verdict
    assert (report / "evidence.png").stat().st_size > 1000

    # the same command with more seeds continues it: the new seeds are added to every arm
    code, _, err = run_cli("confirm", "tiny", "--seeds", "5", "--runs", tmp_path / "runs")
    assert code == 0, err
    assert "9 runs to go" in err
    code, _, err = run_cli("report", "tiny", "--runs", tmp_path / "runs")
    assert code == 0, err
    evidence = (report / "report.md").read_text().split("# The search")[0]
    lines = [line for line in evidence.splitlines() if line.startswith("- **")]
    identity = [line for line in lines if line.startswith("- **trial-0") or line.startswith("- **label-flip")]
    assert len(identity) == 2, lines  # against the baseline, and the leave-one-out ablation
    for line in identity:
        assert line.count(f"**{NO_EFFECT}**") == 2 and "identical results on every seed" in line, line
    assert "| trial-0 | label-flip:p=0 |" in evidence
    assert "swd D = 1000" in evidence and "family of 3 (Holm, 5% family-wise)" in evidence

    # a margin is declared before the results: changing it afterwards is refused in one line
    code, _, err = run_cli("confirm", "tiny", "--runs", tmp_path / "runs", "--equivalence", "swd=2")
    assert code != 0 and "cannot change once declared" in err and "Traceback" not in err
    code, _, err = run_cli("confirm", "tiny", "--runs", tmp_path / "runs", "--primary")
    assert code != 0 and "declared before any result" in err
    # the planner reads the paired spread of the runs so far and trains nothing
    code, out, err = run_cli("confirm", "tiny", "--runs", tmp_path / "runs", "--plan", "--effect", "swd=5")
    assert code == 0, err
    assert "A family of 3 comparisons at 5% (Holm)" in out and "| swd | 5 |" in out and "| 5 (" in out, out


def test_a_killed_confirmation_worker_loses_no_run(tmp_path, image_dir, run_cli):
    import os
    import signal
    import subprocess
    import sys
    import time

    f = study_file(tmp_path, image_dir, 'objectives = ["swd"]\nsampler = "random"\n[tricks]\nalways = ["label-flip"]\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    storage = f"sqlite:///{tmp_path / 'runs' / 'studies.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "victim.log", "w")
    # one worker (--n-jobs 1): its running run is the one killed
    victim = subprocess.Popen([sys.executable, "-m", "ganlab", "confirm", "tiny", "--seeds", "2", "--runs",
                               str(tmp_path / "runs"), "--n-jobs", "1"], stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    target, deadline = None, time.monotonic() + 300
    while target is None and time.monotonic() < deadline and victim.poll() is None:
        try:
            confirm = optuna.load_study(study_name="tiny-confirm", storage=storage)
        except KeyError:
            time.sleep(0.1)
            continue
        running = [t for t in confirm.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
        if running:
            os.killpg(victim.pid, signal.SIGSTOP)  # frozen, so that the run cannot finish before the kill
            now = {t.number: t.state for t in confirm.get_trials(deepcopy=False)}
            if now.get(running[0].number) == TrialState.RUNNING:
                target = running[0].number
                break
            os.killpg(victim.pid, signal.SIGCONT)
        time.sleep(0.1)
    assert target is not None, (tmp_path / "victim.log").read_text()[-2000:]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    code, _, err = run_cli("confirm", "tiny", "--seeds", "2", "--runs", tmp_path / "runs")
    assert code == 0, err
    assert "queued again" in err
    trials = optuna.load_study(study_name="tiny-confirm", storage=storage).trials
    done = {(t.user_attrs["arm"]["label"], t.user_attrs["arm"]["seed"]) for t in trials if t.state == TrialState.COMPLETE}
    assert done == {(a, s) for a in ("trial-0", "baseline", "l1-only") for s in (1000, 1001)}
    assert next(t for t in trials if t.number == target).state == TrialState.FAIL


@pytest.mark.slow
def test_until_decided_adds_seeds_in_rounds_and_the_report_names_its_looks(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["swd"]\nsampler = "random"\n[tricks]\nalways = ["label-flip"]\n'
                   '[tricks.fixed.label-flip]\np = 0.0\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    code, _, err = run_cli("confirm", "tiny", "--seeds", "2", "--until-decided", "--max-seeds", "3",
                           "--runs", tmp_path / "runs")
    assert code == 0, err
    assert "undecided at 2 seeds; adding seeds" in err and "undecided at 3 seeds" in err, err
    confirm = optuna.load_study(study_name="tiny-confirm", storage=f"sqlite:///{tmp_path / 'runs' / 'studies.db'}")
    assert confirm.user_attrs["looks"] == [2, 3]
    assert len([t for t in confirm.trials if t.state == TrialState.COMPLETE]) == 9  # 3 arms x 3 seeds
    code, _, err = run_cli("confirm", "tiny", "--seeds", "2", "--until-decided", "--max-seeds", "5",
                           "--runs", tmp_path / "runs")
    assert code != 0 and "looks at 2, 3 seeds" in err
    code, _, err = run_cli("report", "tiny", "--runs", tmp_path / "runs")
    assert code == 0, err
    evidence = (tmp_path / "runs" / "tiny" / "report" / "report.md").read_text().split("# The search")[0]
    assert "spent over looks at 3 (5.00%) seeds" in evidence, evidence
