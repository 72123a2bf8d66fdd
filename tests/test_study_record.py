"""The typed trial and study records: everything ganlab stores in Optuna's user attributes is a
field of ganlab.study.record, written and read there only."""

from __future__ import annotations

import ast
from pathlib import Path

import optuna
import pytest

import ganlab
from ganlab.study.record import StudyRecord, TrialRecord, study_record, trial_record, write_study, write_trial

PACKAGE = Path(ganlab.__file__).parent


def test_a_record_round_trips_through_optuna_and_refuses_an_unknown_field():
    study = optuna.create_study()
    trial = study.ask()
    write_trial(trial, tricks=["g-ema"], seconds=1.5, seed_runs=[{"seed": 3, "run_dir": "r"}], diverged_seeds=0)
    with pytest.raises(TypeError, match="TrialRecord has no field tricsk"):
        write_trial(trial, tricsk=["g-ema"])
    trial.set_user_attr("from_a_newer_ganlab", 1)  # an unknown key is ignored when read
    study.tell(trial, 0.5)
    record = trial_record(study.trials[0])
    assert isinstance(record, TrialRecord)
    assert record.tricks == ["g-ema"] and record.seconds == 1.5 and record.seed_runs[0]["seed"] == 3
    assert record.diverged_seeds == 0 and record.refused is None
    write_study(study, objectives=["swd"], top=2)
    with pytest.raises(TypeError, match="StudyRecord"):
        write_study(study, objectivs=["swd"])
    assert study_record(study) == StudyRecord(objectives=["swd"], top=2)


def _calls(tree: ast.AST, attr: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr:
            yield node


def test_no_module_but_the_record_writes_or_reads_user_attributes_by_name():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "record.py":
            continue
        tree = ast.parse(path.read_text())
        for call in _calls(tree, "set_user_attr"):
            found.append(f"{path.relative_to(PACKAGE)}:{call.lineno} set_user_attr")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "user_attrs" and not isinstance(node.ctx, ast.Store):
                parent_calls = [c for c in _calls(tree, "get") if c.func.value is node]
                subscripts = [s for s in ast.walk(tree) if isinstance(s, ast.Subscript) and s.value is node]
                compares = [c for c in ast.walk(tree) if isinstance(c, ast.Compare) and node in c.comparators]
                if parent_calls or subscripts or compares:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} user_attrs by key")
    assert found == []
