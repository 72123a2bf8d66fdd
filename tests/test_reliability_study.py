"""A study's trials are never lost and its storage is data:

- Ctrl-C (a real SIGINT to this process) at several points of a trial's life -- reading the
  data, the run folder just made, the first evaluation -- leaves the trial queued again; after a
  re-run, ``trials = 2`` gives 2 complete trials;
- a waiting trial whose ``resume_from`` names a folder outside the study's runs folder is
  refused, and that folder is not touched;
- a trial that another worker failed before this one told its result (a worker paused past its
  heartbeat) is one warning line, and the worker runs its remaining trials;
- a killed worker's run folder says ``stopped``, not ``running``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ganlab.study.recovery import RESUME_ATTR, WORKER_ATTR, recover_dead_trials, requeue
from ganlab.study.spec import parse_study

from test_study import TINY_TRAIN


def _study_file(tmp_path: Path, data: Path, trials: int = 2, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"# Question: a test.\n[study]\nname = \"{name}\"\nsteps = 6\neval_every = 3\ntrials = {trials}\n"
                    "[search]\nlr = { low = 1e-4, high = 1e-3, log = true }\n" + TINY_TRAIN.format(data=data))
    return path


def _runs_flag() -> str:
    """The study command's flag for the runs folder."""
    from ganlab.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["study"]
    options = {o for a in sub._actions for o in a.option_strings}
    return "--runs" if "--runs" in options else "--out"


def _load(tmp_path: Path, name: str = "tiny"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs' / 'studies.db'}")


def _interrupt_once(monkeypatch, cls, method: str, after: bool = False) -> list:
    """Make ``cls.method`` send SIGINT to this process the first time it runs (before or after
    its own work)."""
    original = getattr(cls, method)
    sent: list = []

    def hooked(self, *args, **kwargs):
        if not sent and not after:
            sent.append(method)
            signal.raise_signal(signal.SIGINT)
        result = original(self, *args, **kwargs)
        if not sent and after:
            sent.append(method)
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(cls, method, hooked)
    return sent


def _points():
    from ganlab.study.pruning import Pruning
    from ganlab.study.runner import StudyRunner

    return {
        "reading the data": (StudyRunner, "datasets", False),
        "the run folder just made": (StudyRunner, "_started", True),
        "the first evaluation": (Pruning, "evaluated", False),
    }


@pytest.mark.parametrize("point", ["reading the data", "the run folder just made", "the first evaluation"])
def test_sigint_at_any_point_of_a_trial_queues_it_again(tmp_path, image_dir, run_cli, monkeypatch, point):
    f = _study_file(tmp_path, image_dir, trials=2)
    cls, method, after = _points()[point]
    with monkeypatch.context() as m:
        sent = _interrupt_once(m, cls, method, after)
        code, _, err = run_cli("study", "--study", f, _runs_flag(), tmp_path / "runs")
    assert sent and code == 130, err
    assert "queued again" in err and "Traceback" not in err
    trials = _load(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING], [t.state for t in trials]
    code, _, err = run_cli("study", "--study", f, _runs_flag(), tmp_path / "runs")
    assert code == 0, err
    trials = _load(tmp_path).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # the budget of 2 is 2 complete trials: the failed one's retry completed, and a second trial ran
    originals = [t for t in trials if "failed_trial" not in t.system_attrs]
    assert len(originals) == 2 and len(complete) == 2, [(t.number, t.state) for t in trials]
    retry = next(t for t in trials if "failed_trial" in t.system_attrs)
    assert retry.state == TrialState.COMPLETE and retry.params == trials[0].params


def test_a_resume_from_outside_the_runs_folder_is_refused_and_left_untouched(tmp_path, image_dir, run_cli):
    f = _study_file(tmp_path, image_dir, trials=1)
    code, _, err = run_cli("study", "--study", f, _runs_flag(), tmp_path / "runs")
    assert code == 0, err
    outside = tmp_path / "elsewhere" / "precious-run"
    (outside / "checkpoints").mkdir(parents=True)
    (outside / "config.json").write_text(json.dumps({"seed": 0}))
    (outside / "checkpoints" / "step-0000002.pt").write_bytes(b"marker checkpoint")
    before = {p.relative_to(outside).as_posix(): p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    study = _load(tmp_path)
    spec = parse_study(f.read_text(), str(f), "tiny")
    assert requeue(study, study.trials[0], spec, resume_from=str(outside))
    # also through a link inside the runs folder that points out of it
    link = tmp_path / "runs" / "tiny" / "sneaky"
    link.symlink_to(outside)
    assert requeue(study, study.trials[0], spec, resume_from=str(link))
    code, _, err = run_cli("study", "--study", f, _runs_flag(), tmp_path / "runs", "--trials", "2")
    assert code == 0, err
    refused = [t for t in _load(tmp_path).trials if t.user_attrs.get("refused")]
    assert len(refused) == 2
    for t in refused:
        assert f"{RESUME_ATTR} = " in t.user_attrs["refused"] and "nothing there was touched" in t.user_attrs["refused"]
        assert t.state == TrialState.PRUNED
    after = {p.relative_to(outside).as_posix(): p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    assert after == before


def test_a_trial_failed_by_another_worker_before_tell_is_one_line_and_the_worker_goes_on(tmp_path, image_dir, run_cli,
                                                                                         monkeypatch):
    from ganlab.study.runner import StudyRunner

    f = _study_file(tmp_path, image_dir, trials=3)
    spec = parse_study(f.read_text(), str(f), "tiny")
    original = StudyRunner._conclude
    failed: list[int] = []

    def concluded_then_failed_elsewhere(self, trial, *args, **kwargs):
        values = original(self, trial, *args, **kwargs)
        if not failed:  # what a stale-heartbeat check in another worker does meanwhile
            failed.append(trial.number)
            storage = trial.study._storage
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            requeue(trial.study, storage.get_trial(trial._trial_id), spec)
        return values

    monkeypatch.setattr(StudyRunner, "_conclude", concluded_then_failed_elsewhere)
    code, _, err = run_cli("study", "--study", f, _runs_flag(), tmp_path / "runs", "--trials", "3")
    assert code == 0, err
    assert "Traceback" not in err and "Cannot tell" not in err
    assert f"trial {failed[0]}: another worker marked it failed" in err
    trials = _load(tmp_path).trials
    assert trials[0].state == TrialState.FAIL
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2  # the remaining two ran, the retry among them


def test_a_killed_workers_run_folder_is_marked_stopped(tmp_path):
    spec = parse_study('[study]\nname = "k"\n', "k.toml", "k")
    study = optuna.create_study(study_name="k", storage=f"sqlite:///{tmp_path / 's.db'}")
    runs = tmp_path / "runs" / "k"
    made = []
    for where in (runs / "k-t0000", tmp_path / "outside" / "k-t0001"):
        trial = study.ask()
        where.mkdir(parents=True)
        (where / "config.json").write_text("{}")
        (where / "status.json").write_text(json.dumps({"status": "running", "step": 4, "trained_step": 5, "total": 10}))
        (where / "trial.json").write_text(json.dumps({"study": "k", "trial": trial.number}))
        # a worker stamp whose process is gone (this pid, another start time)
        trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": "-1",
                                          "trial": trial.number})
        trial.set_user_attr("run_dir", str(where))
        made.append(where)
    assert recover_dead_trials(study, spec, runs) == [0, 1]
    status = json.loads((made[0] / "status.json").read_text())
    assert status["status"] == "stopped" and status["step"] == 4 and status["trained_step"] == 5 and status["total"] == 10
    assert "killed" in status["reason"]
    assert json.loads((made[1] / "status.json").read_text())["status"] == "running"  # outside the runs folder


def test_sigint_while_a_confirmation_run_reads_its_data_loses_no_run(tmp_path, image_dir, run_cli, monkeypatch):
    from ganlab.study.runner import StudyRunner

    f = _study_file(tmp_path, image_dir, trials=1)
    code, _, err = run_cli("study", "--study", f, _runs_flag(), tmp_path / "runs")
    assert code == 0, err
    with monkeypatch.context() as m:
        sent = _interrupt_once(m, StudyRunner, "datasets")
        code, _, err = run_cli("confirm", "tiny", "--seeds", "2", "--runs", tmp_path / "runs")
    assert sent and code == 130 and "queued again" in err, err
    code, _, err = run_cli("confirm", "tiny", "--seeds", "2", "--runs", tmp_path / "runs")
    assert code == 0, err
    confirm = optuna.load_study(study_name="tiny-confirm", storage=f"sqlite:///{tmp_path / 'runs' / 'studies.db'}")
    trials = confirm.trials
    planned = {(t.user_attrs["arm"]["label"], t.user_attrs["arm"]["seed"]) for t in trials if "arm" in t.user_attrs}
    done = {(t.user_attrs["arm"]["label"], t.user_attrs["arm"]["seed"]) for t in trials if t.state == TrialState.COMPLETE}
    assert len(planned) >= 4 and done == planned  # every arm over both seeds: the interrupted run ran again
    assert not [t for t in trials if t.state == TrialState.WAITING]
