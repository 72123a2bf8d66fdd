"""ganlab reads two private Optuna attributes (a study's ``_storage``, a trial's ``_trial_id``),
in ganlab/study/_optuna.py only: the installed Optuna is inside the range that module is tested
on, and the private ways agree with the public lookups they stand for."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from ganlab.study import _optuna


def test_the_installed_optuna_is_in_the_tested_range():
    import tomllib

    assert _optuna.in_tested_range(), (optuna.__version__, _optuna.TESTED)
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    (lo_major, lo_minor), (hi_major, hi_minor) = _optuna.TESTED
    high = f"{hi_major}" if hi_minor == 0 else f"{hi_major}.{hi_minor}"
    assert f"optuna>={lo_major}.{lo_minor},<{high}" in pyproject["project"]["dependencies"]  # what pip allows is what was tested
    assert _optuna.in_tested_range("5.1.0") and _optuna.in_tested_range("5.9.2")
    assert not _optuna.in_tested_range("4.6.0") and not _optuna.in_tested_range("6.0.0rc1")


@pytest.mark.parametrize("kind", ["in-memory", "journal", "sqlite"])
def test_the_private_attributes_agree_with_the_public_lookups(tmp_path, kind):
    if kind == "in-memory":
        storage = optuna.storages.InMemoryStorage()
    elif kind == "journal":
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    else:
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    other = optuna.create_study(study_name="other", storage=storage)
    other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)  # ids and numbers differ in the second study
    study = optuna.create_study(study_name="s", storage=storage)
    assert _optuna.storage_of(study) is storage or kind == "sqlite"  # Optuna wraps an RDB storage in a cache
    storage = _optuna.storage_of(study)
    trial = study.ask()
    trial.set_user_attr("k", 1)
    public = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("s"), trial.number)
    assert _optuna.trial_id(trial) == public != trial.number
    frozen = _optuna.frozen_trial(trial)
    assert frozen.number == trial.number and frozen.user_attrs == {"k": 1} and frozen.state == optuna.trial.TrialState.RUNNING
    assert _optuna.trial_id(frozen, study) == public
    storage.set_trial_system_attr(public, "failed_trial", 0)
    assert _optuna.system_attrs(trial) == {"failed_trial": 0}
    assert _optuna.fail_trial(study, frozen)
    assert study.trials[-1].state == optuna.trial.TrialState.FAIL
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        _optuna.fail_trial(study, frozen)


def test_the_public_fallback_finds_the_id_without_the_private_attribute():
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    frozen = study.trials[2]
    expected = frozen._trial_id
    bare = optuna.trial.create_trial(params=frozen.params, distributions=frozen.distributions, value=frozen.value)
    bare.number = frozen.number
    object.__setattr__(bare, "_trial_id", None)
    assert _optuna.trial_id(bare, study) == expected
