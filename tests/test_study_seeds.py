"""Seed-replicated trials, the study-wide budget, and pruning a Pareto study."""

import json
import math
import statistics

import optuna
from optuna.trial import TrialState

from ganlab.metrics.stability import instability_from_run
from ganlab.study.objective import seed_term

from test_study import load, study_file


def test_a_two_seed_study_stores_each_seed_and_their_mean(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["swd", "instability"]\npopulation_size = 2\nseeds = 2\n'
                   '[tricks]\noptional = ["label-flip"]\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "3", "--out", tmp_path / "runs")
    assert code == 0, err
    assert "2 seeds per trial" in err
    study = load(tmp_path)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3
    for t in done:
        runs = t.user_attrs["seed_runs"]
        assert [r["seed"] for r in runs] == [0, 1]
        per_seed = t.user_attrs["seed_values"]
        assert len(per_seed["swd"]) == 2 and len(per_seed["instability"]) == 2
        assert math.isclose(t.values[0], statistics.mean(per_seed["swd"]), rel_tol=1e-9)
        # each seed keeps its run's own score (as a confirmation records it); the trial adds the
        # seeds' spread of final quality on top
        spread = t.user_attrs["instability_terms"]["seed_spread"]
        assert math.isclose(t.values[1], statistics.mean(per_seed["instability"]) + seed_term(spread), rel_tol=1e-9)
        for r, v in zip(runs, per_seed["instability"]):
            assert math.isclose(v, instability_from_run(r["run_dir"]).score, rel_tol=1e-12)
        assert per_seed["swd"][0] != per_seed["swd"][1]  # the seeds are different runs
        # each seed is an ordinary run folder, tagged with its trial and seed, on one validation split
        seen = set()
        for r in runs:
            tag = json.loads(open(f"{r['run_dir']}/trial.json").read())
            cfg = json.loads(open(f"{r['run_dir']}/config.json").read())
            assert (tag["trial"], tag["seed"], cfg["seed"]) == (t.number, r["seed"], r["seed"])
            assert cfg["split_seed"] == 0
            seen.add(r["run_dir"])
        assert len(seen) == 2
        assert 0.0 <= spread <= 1.0
        assert 0.0 < t.user_attrs["adv_grad_share"] < 1.0  # reported as a number, over the seeds
        assert math.isfinite(t.user_attrs["loss_shape"])
    # the live table and trials.csv show mean ± sd and the per-seed values
    assert "±" in err
    code, _, err = run_cli("report", "tiny", "--runs", tmp_path / "runs")
    assert code == 0, err
    csv = (tmp_path / "runs" / "tiny" / "report" / "trials.csv").read_text().splitlines()
    header = csv[0].split(",")
    assert "swd_per_seed" in header and "diverged_seeds" in header and "swd_sd" in header
    assert "loss_shape" in header and "adv_grad_share" in header
    row = dict(zip(header, csv[1].split(",")))
    assert len(row["swd_per_seed"].split(";")) == 2 and row["seeds"] == "2"


def test_the_total_budget_holds_over_several_workers(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["swd"]\nsampler = "random"\n'
                   '[tricks]\noptional = ["label-flip"]\n')
    code, _, err = run_cli("study", "--study", f, "--n-jobs", "3", "--total-trials", "4", "--out", tmp_path / "runs")
    assert code == 0, err
    trained = [t for t in load(tmp_path).trials if not t.user_attrs.get("discarded")]
    assert len(trained) == 4, [(t.number, t.state, t.user_attrs.get("discarded")) for t in load(tmp_path).trials]
    assert all(t.state == TrialState.COMPLETE for t in trained)
    # the same command again: the budget is spent, nothing more is trained
    code, _, err = run_cli("study", "--study", f, "--total-trials", "4", "--out", tmp_path / "runs")
    assert code == 0, err
    assert "budget of 4 trials is spent" in err
    assert len([t for t in load(tmp_path).trials if not t.user_attrs.get("discarded")]) == 4


def test_a_pareto_study_prunes_a_clearly_bad_trial_early(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["swd", "instability"]\npopulation_size = 2\npruner = "median"\n'
                   '[search]\nlr = { choices = [2e-4, 0.5] }\n')
    text = f.read_text().replace("steps = 6\neval_every = 3", "steps = 9\neval_every = 3")
    f.write_text(text)
    storage = f"sqlite:///{tmp_path / 'runs' / 'studies.db'}"
    (tmp_path / "runs").mkdir()
    study = optuna.create_study(study_name="tiny", storage=storage, directions=["minimize", "minimize"])
    for lr in (2e-4, 2e-4, 0.5):  # two good trials, then one whose steps throw G far off
        study.enqueue_trial({"lr": lr})
    code, _, err = run_cli("study", "--study", f, "--trials", "3", "--out", tmp_path / "runs")
    assert code == 0, err
    trials = load(tmp_path).trials
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE] * 2
    bad = trials[2]
    assert bad.state == TrialState.PRUNED, (bad.state, bad.user_attrs)
    assert bad.user_attrs["pruned_step"] == 3  # at its first evaluation, not at the end
    assert bad.user_attrs["pruned_on"] == "val/swd"
    assert "pruned@3" in err
