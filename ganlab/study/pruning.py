"""ganlab's median rule: pruning where Optuna's pruners cannot go.

Optuna's pruners read the one value a single-objective trial reports per step
(``trial.report``); a Pareto study of two objectives cannot report at all, and a trial of several
seeds has several values per step. This rule covers both. At each evaluation a trial's value of
the metric it is pruned on (``[study].prune_on``, by default val/swd; the mean over the seeds
that have reached the step) is compared with the same metric of the completed trials at the same
step (each the mean over its own seeds):

- no trial is pruned before ``prune_warmup`` steps (default: the first evaluation) or before
  ``MIN_COMPLETED`` trials have completed;
- a value worse than the median of the completed trials' values at that step is a strike; a
  value at or better than the median clears the strikes;
- ``prune_patience`` strikes in a row (default 1) prune the trial, which is recorded as pruned at
  that step with the value and the median it was compared with.

The per-step values are kept in each trial's user attribute ``curve`` (``{step: value}``, in the
direction in which lower is better), written at every evaluation, so that every worker of a
study compares with the same numbers.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from ganlab.study.record import CURVE, trial_record, write_trial
from ganlab.study.objective import INLOOP_METRICS, inloop_value, lower_is_better, scalar_for_pruning

__all__ = ["CURVE_ATTR", "MIN_COMPLETED", "MedianRule", "Pruning", "completed_curves"]

CURVE_ATTR = CURVE  # the trial record's field (ganlab.study.record)
MIN_COMPLETED = 2


def completed_curves(study) -> list[dict[int, float]]:
    """The ``curve`` of every completed trial (steps as ints)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        curve = trial_record(t).curve
        if isinstance(curve, dict) and curve:
            out.append({int(k): float(v) for k, v in curve.items()})
    return out


@dataclass
class MedianRule:
    """One trial's pruning decisions; ``value`` is lower-is-better (a maximised metric negated)."""

    warmup: int
    patience: int = 1
    strikes: int = 0
    last: dict = field(default_factory=dict)

    def judge(self, step: int, value: float, others: list[dict[int, float]]) -> bool:
        """True when the trial is to be pruned at ``step``; ``others`` are the completed trials'
        curves. ``last`` says what was compared (for the record of a pruned trial)."""
        at_step = [c[step] for c in others if step in c]
        if step < self.warmup or len(at_step) < MIN_COMPLETED:
            return False
        median = statistics.median(at_step)
        self.last = {"step": step, "value": value, "median": median, "n": len(at_step)}
        self.strikes = self.strikes + 1 if value > median else 0
        return self.strikes >= self.patience


class Pruning:
    """The pruning of one trial over its seeds, and the curve it leaves for later trials.

    A single-objective study of one seed per trial reports to Optuna's pruner as always (median,
    successive halving, Hyperband); a Pareto study, or one of several seeds, is judged by
    :class:`MedianRule` on the mean over the seeds that have reached each evaluation."""

    def __init__(self, spec, trial):
        self.spec, self.trial = spec, trial
        # one value per step (reported even unpruned: the intermediate values are the trial's curve in Optuna)
        self.optuna = spec.scalarised and spec.seeds == 1 and len(trial.study.directions) == 1
        self.own = spec.own_pruning and not self.optuna
        self.rule = MedianRule(spec.warmup, spec.prune_patience)
        self.curves: dict[int, dict[int, float]] = {}  # seed index -> step -> lower-is-better value
        self.finished: list[dict[int, float]] = []  # the curves of the seeds that finished

    def add_finished(self, record: dict) -> None:
        curve = record.get(CURVE_ATTR)
        if "metrics" in record and isinstance(curve, dict):
            self.finished.append({int(k): float(v) for k, v in curve.items()})

    def _mean_at(self, step: int, current: dict[int, float]) -> float:
        values = [c[step] for c in self.finished if step in c] + [current[step]]
        return sum(values) / len(values)

    def evaluated(self, k: int, step: int, metrics) -> None:
        """After an evaluation of seed ``k`` at ``step``: record, and prune when the rule says so."""
        value = lower_is_better(self.spec, metrics)
        if value is None or not math.isfinite(value):
            return
        current = self.curves.setdefault(k, {})
        current[step] = value
        label, is_objective = self.spec.pruning_target
        if self.optuna:
            reported = scalar_for_pruning(self.spec, metrics)
            self.trial.report(reported, step)
            if not self.trial.should_prune():
                return
            shown = inloop_value(label, metrics) if label in INLOOP_METRICS else reported
            self._pruned(step, label, is_objective, shown, f"{label} = {reported:.4g}")
        if not self.own:
            return
        mean = self._mean_at(step, current)
        write_trial(self.trial, curve={str(s): self._mean_at(s, current) for s in current})
        if self.rule.judge(step, mean, completed_curves(self.trial.study)):
            last = self.rule.last
            shown = inloop_value(label, metrics) if len(self.curves) == 1 and label in INLOOP_METRICS else mean
            write_trial(self.trial, pruned_median=last["median"])
            seeds = len(self.finished) + 1
            self._pruned(step, label, is_objective and self.spec.scalarised, shown,
                         f"{label} {'mean of ' + str(seeds) + ' seeds ' if seeds > 1 else ''}worse than the median "
                         f"of {last['n']} completed trials for {self.rule.patience} evaluation(s)")

    def _pruned(self, step: int, label: str, is_objective: bool, value: float, why: str) -> None:
        # Optuna stores the last reported value as the pruned trial's value; these say what it
        # is, so that no table shows a proxy under the objective's name.
        t = self.trial
        write_trial(t, pruned_step=step, pruned_on=label, pruned_on_objective=is_objective, pruned_value=value)
        raise optuna.TrialPruned(f"pruned at step {step}: {why}")

    def seed_curve(self, k: int) -> dict[str, float]:
        return {str(s): v for s, v in self.curves.get(k, {}).items()}

    def curve(self) -> dict[str, float]:
        """The trial's curve for later trials: at each step, the mean over its finished seeds."""
        curves = self.finished
        if not curves:
            return {}
        steps = set.intersection(*(set(c) for c in curves))
        return {str(s): sum(c[s] for c in curves) / len(curves) for s in sorted(steps)}
