"""The few places ganlab reaches past Optuna's public surface, in one module.

Optuna gives a study's storage and a live trial's storage id no public accessor: a ``Study``
keeps the storage as ``_storage`` and a ``Trial``/``FrozenTrial`` its id as ``_trial_id``.
The storage's own methods (``get_trial``, ``get_trial_system_attrs``, ``set_trial_state_values``,
``get_trial_id_from_study_id_trial_number``) are public: they are the API a custom storage
implements. So ganlab reads the two private attributes here only, each with its public fallback
(the id looked up from the study's name and the trial's number, two storage queries instead of
none), and :data:`TESTED` is the Optuna range this is tested on (``tests/test_optuna_private.py``
checks the installed version is inside it and that both ways agree)."""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

__all__ = ["TESTED", "fail_trial", "frozen_trial", "in_tested_range", "storage_of", "system_attrs", "trial_id"]

TESTED = ((5, 1), (6, 0))  # [low, high): Optuna releases whose private attributes this module was tested on


def _version(text: str) -> tuple[int, int]:
    major, minor = (text.split(".") + ["0"])[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def in_tested_range(version: str = optuna.__version__) -> bool:
    low, high = TESTED
    return low <= _version(version) < high


def storage_of(study) -> BaseStorage:
    """The storage a study (or a live trial's study) reads and writes."""
    storage = getattr(study, "_storage", None)
    if not isinstance(storage, BaseStorage):
        raise RuntimeError(f"optuna {optuna.__version__}: a Study no longer keeps its storage as _storage "
                           f"(ganlab is tested on optuna {TESTED[0][0]}.{TESTED[0][1]} to before "
                           f"{TESTED[1][0]}.{TESTED[1][1]})")
    return storage


def trial_id(trial, study=None) -> int:
    """A trial's id in its storage (not its number): ``trial`` is a live Trial (its study is
    known) or a FrozenTrial of ``study``."""
    found = getattr(trial, "_trial_id", None)
    if isinstance(found, int):
        return found
    study = trial.study if study is None else study
    storage = storage_of(study)
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                           trial.number)


def frozen_trial(trial) -> FrozenTrial:
    """A live trial as stored now (its user and system attributes included)."""
    return storage_of(trial.study).get_trial(trial_id(trial))


def system_attrs(trial) -> dict:
    """A live trial's system attributes, read from the storage (``Trial.system_attrs`` is
    deprecated)."""
    return storage_of(trial.study).get_trial_system_attrs(trial_id(trial))


def fail_trial(study, trial: FrozenTrial) -> bool:
    """Mark a RUNNING trial of ``study`` FAIL in the storage; False when the storage refused
    (another worker changed it first). Raises what the storage raises for a finished trial."""
    return storage_of(study).set_trial_state_values(trial_id(trial, study), state=TrialState.FAIL)
