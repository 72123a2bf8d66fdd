"""What ganlab stores in Optuna: one typed record per trial (:class:`TrialRecord`, the trial's
user attributes) and per study (:class:`StudyRecord`), written and read here only.

Optuna keeps user attributes as JSON under string keys. Every key ganlab writes is a field
below, with its type and what it means; :func:`write_trial`/:func:`write_study` refuse a name
that is not one (a typo is an error, not a silently new key), and :func:`trial_record`/
:func:`study_record` read the attributes back as the dataclass (a key never written is None; a
key this version does not know, from a newer one, is ignored)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["ARM", "CURVE", "DISCARDED", "PER_WORKER", "SEED_RUNS", "WORKER", "StudyRecord", "TrialRecord",
           "study_record", "trial_record", "write_study", "write_trial"]


@dataclass(frozen=True)
class TrialRecord:
    """A trial's user attributes. None: not written (yet)."""

    # what was run
    tricks: list[str] | None = None  # the trial's tricks, by name
    gan_mode: str | None = None  # the resolved adversarial loss (the report's L1-only control row)
    arm: dict[str, Any] | None = None  # a confirmation's run: {"label", "params", "tricks", "seed"}
    worker: dict[str, Any] | None = None  # {"host", "pid", "started"}: who runs it (a dead worker's trial is failed)
    run_dir: str | None = None  # the (first finished) seed's run folder
    seed_runs: list[dict[str, Any]] | None = None  # per seed: {"seed", "run_dir", "metrics", "objectives", ...}
    last_eval_step: int | None = None
    seconds: float | None = None  # wall time of the trial
    # how it ended
    refused: str | None = None  # an impossible combination, never trained (pruned)
    discarded: str | None = None  # started after the budget was spent, or not a planned run
    stopped_step: int | None = None  # a signal stopped it at this step (queued again)
    reason: str | None = None  # the stop's or the divergence's sentence
    diverged_step: int | None = None
    diverged_value: str | None = None  # what diverged (a loss or weight name)
    diverged_seeds: int | None = None  # how many of its seeds diverged
    pruned_step: int | None = None
    pruned_on: str | None = None  # the value the pruner judged (a metric, or a proxy)
    pruned_on_objective: bool | None = None  # whether that value is the objective itself
    pruned_value: float | None = None
    pruned_median: float | None = None  # the completed trials' median it was compared with
    # its results
    metrics: dict[str, float] | None = None  # the final in-loop metrics (the mean over the seeds)
    instability: float | str | None = None  # the instability score ("inf" when not finite)
    instability_terms: dict[str, Any] | None = None
    instability_unknown: list[str] | None = None
    loss_shape: float | str | None = None  # the loss-shape score (the loss_shape objective; "inf" when not finite)
    stability_diagnostics: dict[str, float] | None = None  # collapse, oscillation, grad_spikes, val_gap, auc, ...
    adv_grad_share: float | None = None  # the share of G's gradient from the adversarial term (mean over seeds)
    degenerate: str | None = None  # the degenerate-run label, where most seeds carry one
    seed_values: dict[str, Any] | None = None  # each objective's value per seed
    curve: dict[str, float] | None = None  # the pruning metric by step (the median rule reads it)
    fid_implementation: str | None = None
    fid_n: int | None = None
    samples: str | None = None  # the last sample grid
    freed_bytes: int | None = None  # disk freed by dropping its runs' training state
    slim_error: str | None = None
    artifact_error: str | None = None


@dataclass(frozen=True)
class StudyRecord:
    """A study's user attributes (a search's and a confirmation's). None: not written."""

    definition: str | None = None  # the TOML text of the study definition
    definition_digest: str | None = None
    objectives: list[str] | None = None  # the names of the stored values (["weighted"] when scalarised)
    objective_names: list[str] | None = None  # the definition's objectives
    overrides: dict[str, Any] | None = None  # --data/--val-data given on the command line
    prune_on: str | None = None  # the metric every worker reports to the pruner
    fid_network_sha256: str | None = None
    fid_implementation: str | None = None
    stability_formula: str | None = None  # what the stability objectives mean (ganlab.study.objective)
    # a confirmation's
    plan: list[dict[str, Any]] | None = None  # its arms
    top: int | None = None
    parent: str | None = None  # the search it confirms
    notes: list[str] | None = None
    settings: dict[str, Any] | None = None  # steps, size, ngf, ndf, batch_size: what the verdicts rest on
    primary: bool | None = None  # a primary comparison was declared (docs/statistics.md)
    equivalence: dict[str, float] | None = None  # equivalence margins by objective
    looks: list[int] | None = None  # a sequential confirmation's looks, in seeds


ARM, CURVE, DISCARDED, SEED_RUNS, WORKER = "arm", "curve", "discarded", "seed_runs", "worker"
PER_WORKER = ("worker", "run_dir", "last_eval_step", "seconds")  # not carried over to a retry
_TRIAL_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialRecord))
_STUDY_FIELDS = frozenset(f.name for f in dataclasses.fields(StudyRecord))


def _known(kind: str, names: frozenset[str], values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - names)
    if unknown:
        raise TypeError(f"{kind} has no field {', '.join(unknown)} (see ganlab.study.record)")


def write_trial(trial, **values: Any) -> None:
    """Store ``values`` (fields of :class:`TrialRecord`) on an Optuna trial."""
    _known("TrialRecord", _TRIAL_FIELDS, values)
    for name, value in values.items():
        trial.set_user_attr(name, value)


def write_study(study, **values: Any) -> None:
    """Store ``values`` (fields of :class:`StudyRecord`) on an Optuna study."""
    _known("StudyRecord", _STUDY_FIELDS, values)
    for name, value in values.items():
        study.set_user_attr(name, value)


def trial_record(trial) -> TrialRecord:
    """The record of an Optuna trial (a live ``Trial`` or a ``FrozenTrial``)."""
    attrs = trial.user_attrs
    return TrialRecord(**{k: v for k, v in attrs.items() if k in _TRIAL_FIELDS})


def study_record(study) -> StudyRecord:
    attrs = study.user_attrs
    return StudyRecord(**{k: v for k, v in attrs.items() if k in _STUDY_FIELDS})
