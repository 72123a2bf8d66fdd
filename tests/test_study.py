"""Studies: trials add up in the storage, impossible stacks are never trained, NaN does not stop a study."""

import json
import optuna
import pytest

from conftest import nan_loss_trick
from ganlab.trick import register

TINY_TRAIN = """
[train]
data = "{data}"
size = 32
load_size = 40
ngf = 4
ndf = 4
batch_size = 2
log_every = 1
device = "cpu"
precision = "fp32"
"""


def study_file(tmp_path, data, body, name="tiny"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f"# Question: a test.\n[study]\nname = \"{name}\"\nsteps = 6\neval_every = 3\n{body}\n" + TINY_TRAIN.format(data=data))
    return path


def load(tmp_path, name="tiny"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs' / 'studies.db'}")


def test_a_three_trial_pareto_study_and_its_continuation(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["swd", "instability"]\npopulation_size = 2\n'
                   '[search]\nlr = { low = 1e-4, high = 1e-3, log = true }\n[tricks]\noptional = ["label-flip"]\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "3", "--out", tmp_path / "runs")
    assert code == 0, err
    study = load(tmp_path)
    assert len(study.directions) == 2
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 3 and len(done) == 3
    for t in done:
        assert len(t.values) == 2 and t.values[0] > 0 and t.values[1] >= 0
        run_dir = t.user_attrs["run_dir"]
        assert json.loads(open(f"{run_dir}/trial.json").read())["trial"] == t.number
        assert json.loads(open(f"{run_dir}/config.json").read())["steps"] == 6
    # again: the same study grows
    code, _, err = run_cli("study", "--study", f, "--trials", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    assert len(load(tmp_path).trials) == 5
    assert "the study holds 5" in err

    # HParams went to each trial's TensorBoard folder
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(done[0].user_attrs["run_dir"])
    acc.Reload()
    assert "hparams/swd" in acc.Tags()["scalars"]

    # the report
    code, _, err = run_cli("report", "tiny", "--runs", tmp_path / "runs")
    assert code == 0, err
    report = tmp_path / "runs" / "tiny" / "report"
    text = (report / "report.md").read_text()
    assert "## Pareto front" in text and "label-flip" in text and "## Each trick on and off" in text
    for png in ("pareto.png", "curves.png"):
        assert (report / png).stat().st_size > 1000
    assert len((report / "trials.csv").read_text().splitlines()) == 6


def test_an_impossible_stack_is_refused_not_trained(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["val_l1"]\nsampler = "random"\n'
                   '[search]\ngan_mode = ["hinge"]\n[tricks]\nalways = ["label-flip"]\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    study = load(tmp_path)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all("label-flip" in t.user_attrs["refused"] and "hinge" in t.user_attrs["refused"] for t in study.trials)
    assert not (tmp_path / "runs" / "tiny").exists() or not any((tmp_path / "runs" / "tiny").iterdir())


def test_a_drawn_batch_that_cannot_fit_is_refused_not_trained(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["val_l1"]\nsampler = "random"\n'
                   '[search]\nbatch_size = [100000000]\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    (trial,) = load(tmp_path).trials
    assert trial.state == optuna.trial.TrialState.PRUNED and "images fit per step" in trial.user_attrs["refused"]


NanAfterTwo = nan_loss_trick("test-nan", 2)


def test_a_diverged_trial_is_recorded_and_the_study_goes_on(tmp_path, image_dir, run_cli):
    register(NanAfterTwo)
    f = study_file(tmp_path, image_dir, 'objectives = ["val_l1"]\nsampler = "random"\nseed = 0\n'
                   '[tricks]\noptional = ["test-nan"]\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "4", "--out", tmp_path / "runs")
    assert code == 0, err
    study = load(tmp_path)
    states = {t.number: t.state for t in study.trials}
    assert len(states) == 4
    assert "Traceback" not in err
    diverged = [t for t in study.trials if "diverged_step" in t.user_attrs]
    assert diverged and all(t.state == optuna.trial.TrialState.FAIL and t.user_attrs["diverged_step"] == 2 for t in diverged)
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_a_scalarised_study_prunes(tmp_path, image_dir, run_cli):
    f = study_file(tmp_path, image_dir, 'objectives = ["swd", "instability"]\nweights = { swd = 1.0, instability = 1.0 }\n'
                   'sampler = "tpe"\npruner = "median"\nprune_on = "val/L1"\n[search]\nlr = { low = 1e-5, high = 1e-3, log = true }\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "4", "--out", tmp_path / "runs")
    assert code == 0, err
    study = load(tmp_path)
    assert len(study.directions) == 1
    assert all(t.intermediate_values for t in study.trials)  # reported at each evaluation
    assert study.user_attrs["objectives"] == ["weighted"]


@pytest.mark.parametrize(
    "body,needle",
    [
        ("objectives = [\"swd\"]\nsampler = \"grid\"\n", "'study.sampler'"),
        ("objectives = [\"beauty\"]\n", "unknown objective 'beauty'"),
        ("objectives = [\"swd\"]\nstepz = 3\n", "unknown key 'study.stepz'"),
        ("objectives = [\"swd\"]\npopulation_size = \"many\"\n", "'study.population_size'"),
        ("objectives = [\"swd\", \"instability\"]\npruner = \"hyperband\"\n", "pruned by ganlab's median rule only"),
        ("objectives = [\"swd\"]\nseeds = 3\npruner = \"successive-halving\"\n", "with seeds > 1"),
        ("objectives = [\"swd\"]\n[tricks]\noptional = [\"nope\"]\n", "unknown trick 'nope'"),
        ("objectives = [\"swd\"]\n[search]\nlr = { low = 1 }\n", "needs low and high"),
        ("objectives = [\"swd\"]\n[tricks]\noptional = [\"label-flip\"]\n[tricks.params.label-flip]\nq = {low=0, high=1}\n", "unknown parameter"),
    ],
)
def test_bad_study_files(tmp_path, image_dir, run_cli, body, needle):
    f = study_file(tmp_path, image_dir, body)
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


def test_bad_storage_and_syntax(tmp_path, run_cli):
    bad = tmp_path / "broken.toml"
    bad.write_text("[study\n")
    code, _, err = run_cli("study", "--study", bad)
    assert code == 2 and "not valid TOML" in err and len(err.strip().splitlines()) == 1
    notdb = tmp_path / "x.db"
    notdb.write_text("hello")
    code, _, err = run_cli("study", "--storage", f"sqlite:///{notdb}", "--trials", "1")
    assert code == 2 and "not a SQLite database" in err
    code, _, err = run_cli("study", "--storage", "postgresql://nobody@127.0.0.1:1/none", "--trials", "1")
    assert code == 2 and "cannot open the study storage" in err and len(err.strip().splitlines()) == 1


def test_builtin_studies_parse():
    from ganlab.study import builtin_studies, load_study_file

    names = set(builtin_studies())
    assert {"quickstart", "label-tricks", "loss-and-critic", "architecture", "baseline-vs-resnet",
            "bce-vs-wgangp", "ganhacks"} <= names
    for name in names:
        spec = load_study_file(name)
        assert spec.source.startswith("#"), f"{name} opens with the question it answers"


# --- pruning watches the objective; a pruned trial never shows a proxy under the objective's name


def _spec(body: str):
    from ganlab.study import parse_study

    return parse_study("[study]\n" + body, "--study t.toml", "t")


def test_the_pruner_watches_the_objective_when_training_measures_it():
    from ganlab.study.objective import PRUNE_PROXY, WEIGHTED
    from ganlab.study.objective import scalar_for_pruning as _scalar_for_pruning

    metrics = {"val/L1": 0.05, "val/swd": 108.8, "val/psnr": 20.0, "val/colorfulness_gap": -3.0}
    spec = _spec('objectives = ["swd"]\npruner = "median"\n')
    assert spec.pruning_target == ("swd", True) and _scalar_for_pruning(spec, metrics) == 108.8
    spec = _spec('objectives = ["psnr"]\npruner = "median"\n')
    assert spec.pruning_target == ("psnr", True) and _scalar_for_pruning(spec, metrics) == 20.0
    spec = _spec('objectives = ["colorfulness_gap"]\npruner = "median"\n')
    assert _scalar_for_pruning(spec, metrics) == 3.0  # as the objective counts it
    # not measured in the loop: the stated proxy
    for objective in ("instability", "fid"):
        spec = _spec(f'objectives = ["{objective}"]\npruner = "median"\n')
        assert spec.pruning_target == (PRUNE_PROXY, False) and _scalar_for_pruning(spec, metrics) == 108.8
    assert PRUNE_PROXY == "val/swd"  # a distribution distance, never per-pixel fidelity (which prefers grey)
    # weighted: the weighted objective where every term is measured in the loop
    spec = _spec('objectives = ["swd", "psnr"]\nweights = { swd = 1.0, psnr = 2.0 }\npruner = "median"\n')
    assert spec.pruning_target == (WEIGHTED, True) and _scalar_for_pruning(spec, metrics) == 108.8 - 40.0
    spec = _spec('objectives = ["swd", "instability"]\nweights = { swd = 1.0, instability = 2.0 }\npruner = "median"\n')
    assert spec.pruning_target == (PRUNE_PROXY, False)
    # prune_on overrides; a higher-is-better metric in a minimised study is negated
    spec = _spec('objectives = ["swd", "instability"]\nweights = { swd = 1.0, instability = 2.0 }\n'
                 'pruner = "median"\nprune_on = "val/psnr"\n')
    assert spec.pruning_target == ("val/psnr", False) and _scalar_for_pruning(spec, metrics) == -20.0
    spec = _spec('objectives = ["swd"]\npruner = "median"\nprune_on = "val/L1"\n')
    assert spec.pruning_target == ("val/L1", False) and _scalar_for_pruning(spec, metrics) == 0.05


@pytest.mark.parametrize("value,needle", [("beauty", "'study.prune_on' = 'beauty'"),
                                          ("fid", "not measured during training"),
                                          ("weighted", "needs study.weights")])
def test_a_bad_prune_on_is_one_line(tmp_path, image_dir, run_cli, value, needle):
    f = study_file(tmp_path, image_dir, f'objectives = ["swd"]\npruner = "median"\nprune_on = "{value}"\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganlab: error:") and needle in lines[0], err


def test_a_one_objective_study_reports_its_objective_to_the_pruner(tmp_path, image_dir, run_cli):
    from ganlab.stats import read_series

    f = study_file(tmp_path, image_dir, 'objectives = ["swd"]\nsampler = "random"\npruner = "median"\n'
                   '[search]\nlr = { low = 1e-4, high = 1e-3, log = true }\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "3", "--out", tmp_path / "runs")
    assert code == 0, err
    assert "on the objective (swd)" in err
    study = load(tmp_path)
    assert study.user_attrs["prune_on"] == "swd"
    for t in study.trials:
        assert t.intermediate_values, t
        series = read_series(f"{t.user_attrs['run_dir']}/stats.jsonl")
        swd = {step + 1: v for step, v in series["val/swd"]}  # logged at the step index, reported after it
        for step, value in t.intermediate_values.items():
            assert value == pytest.approx(swd[step]), (step, value, swd)
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values[0] == pytest.approx(swd[max(swd)])


def _cells(table, column: str) -> list[str]:
    (col,) = [c for c in table.columns if c.header == column]
    return [str(c) for c in col._cells]


def _study_with_a_pruned_trial(attrs: dict):
    from optuna.distributions import FloatDistribution

    study = optuna.create_study(study_name="p", directions=["minimize"])
    study.set_user_attr("objectives", ["swd"])
    dist = {"lr": FloatDistribution(1e-5, 1e-3, log=True)}
    study.add_trial(optuna.trial.create_trial(value=106.3, params={"lr": 2e-4}, distributions=dist,
                                              intermediate_values={10: 120.0, 20: 106.3}))
    t = study.ask(dist)
    t.report(0.05547, 10)  # what the old default watched: val/L1
    for k, v in attrs.items():
        t.set_user_attr(k, v)
    study.tell(t, state=optuna.trial.TrialState.PRUNED)
    assert study.trials[-1].values == [0.05547]  # Optuna keeps the last reported value
    return study


@pytest.mark.parametrize("attrs", [{"pruned_step": 10, "pruned_on": "val/L1", "pruned_on_objective": False,
                                    "pruned_value": 0.05547}, {}])
def test_a_pruned_trial_shows_no_proxy_value_under_the_objective(tmp_path, attrs):
    from ganlab.study.report import trials_csv, write_report
    from ganlab.study.spec import StudySpec
    from ganlab.study.table import trials_table

    study = _study_with_a_pruned_trial(attrs)
    table = trials_table(study, StudySpec(name="p", objectives=("swd",)))
    swd, state = _cells(table, "swd"), _cells(table, "state")
    assert swd == ["106.3", "-"], swd
    assert state[1].startswith("pruned@10") and "0.05547" in state[1]
    if attrs:
        assert "val/L1 = 0.05547" in state[1]
    rows = trials_csv(study, ["swd"]).splitlines()
    header = rows[0].split(",")
    assert rows[2].split(",")[header.index("swd")] == ""
    text = write_report(study, tmp_path / "report").read_text()
    assert "pruned at step 10" in text and "0.05547" in text.split("## Not trained")[1]
    assert "| 0.05547" not in text


def test_a_trial_pruned_on_its_objective_shows_the_value_with_its_step():
    from ganlab.study.spec import StudySpec
    from ganlab.study.table import trials_table

    study = _study_with_a_pruned_trial({"pruned_step": 10, "pruned_on": "swd", "pruned_on_objective": True,
                                        "pruned_value": 0.05547})
    table = trials_table(study, StudySpec(name="p", objectives=("swd",)))
    assert _cells(table, "swd")[1] == "0.05547 @10" and _cells(table, "state")[1] == "pruned@10"


# --- the table, the summary, trials.csv and the importances caveat


def test_the_parameters_column_is_not_cut():
    import io

    from optuna.distributions import FloatDistribution
    from rich.console import Console

    from ganlab.study.spec import StudySpec
    from ganlab.study.table import trials_table

    study = optuna.create_study(study_name="w", directions=["minimize"])
    params = {f"soft-labels.parameter_{i}": 0.123456 for i in range(6)}
    study.add_trial(optuna.trial.create_trial(value=1.0, params=params,
                                              distributions={k: FloatDistribution(0, 1) for k in params}))
    buf = io.StringIO()
    Console(file=buf, width=100).print(trials_table(study, StudySpec(name="w", objectives=("swd",))))
    flat = "".join(line.split("│")[3].strip() for line in buf.getvalue().splitlines() if line.count("│") > 3)
    assert all(f"soft-labels.parameter_{i}=0.1235" in flat for i in range(6)), buf.getvalue()


def test_the_summary_is_on_its_own_line_and_counts_a_retried_trial(tmp_path, image_dir, run_cli):
    import socket
    import subprocess
    import sys

    f = study_file(tmp_path, image_dir, 'objectives = ["val_l1"]\nsampler = "random"\n')
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    summary = [line for line in err.splitlines() if "trial(s) in" in line]
    assert summary and summary[0].startswith("1 trial(s) in") and "1 complete" in summary[0], err
    # a trial whose worker died: the next worker fails it, retries it, and counts the retry
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study = load(tmp_path)
    t = study.ask()
    t.set_user_attr("worker", {"host": socket.gethostname(), "pid": int(dead.stdout), "pid_start": "0", "trial": t.number})
    code, _, err = run_cli("study", "--study", f, "--trials", "1", "--out", tmp_path / "runs")
    assert code == 0, err
    assert f"trial(s) {t.number}: their worker died" in err
    summary = [line for line in err.splitlines() if "trial(s) in" in line]
    assert summary and summary[0].startswith("1 trial(s) in") and "1 complete" in summary[0], err
    retried = [x for x in load(tmp_path).trials if x.system_attrs.get("failed_trial") == t.number]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE


def test_trials_csv_has_each_column_once_and_few_trials_get_a_caveat(tmp_path):
    import csv
    import io

    from optuna.distributions import FloatDistribution

    from ganlab.study.report import write_report

    study = optuna.create_study(study_name="c", directions=["minimize", "minimize"])
    study.set_user_attr("objectives", ["swd", "instability"])
    dist = {"lr": FloatDistribution(1e-5, 1e-3, log=True)}
    for i, lr in enumerate((1e-4, 2e-4, 4e-4, 8e-4)):
        study.add_trial(optuna.trial.create_trial(values=[100.0 + i, 0.5 - 0.1 * i], params={"lr": lr}, distributions=dist,
                                                  user_attrs={"instability": 0.5 - 0.1 * i, "tricks": []}))
    path = write_report(study, tmp_path / "report")
    header = next(csv.reader(io.StringIO((tmp_path / "report" / "trials.csv").read_text())))
    assert len(header) == len(set(header)), header
    assert header.count("instability") == 1
    text = path.read_text()
    assert "Caveat: these importances come from only 4 finished trials" in text
