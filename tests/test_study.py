"""Studies: trials add up in the storage, impossible stacks are never trained, NaN does not stop a study."""

import json
import optuna
import pytest

from conftest import nan_loss_trick
from ganlab.hooks import register

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
        ("objectives = [\"swd\", \"instability\"]\npruner = \"median\"\n", "cannot be pruned"),
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
