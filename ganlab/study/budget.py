"""A study-wide budget of trials (``[study].trials``, ``--total-trials``), counted over every
worker of the study: finished, pruned, failed and running trials alike, a retry of a failed
trial (which continues the same trial) not counted again.

Workers check the budget before they start a trial and after each; two workers that ask for a
trial at the same instant can still both get one. The later of the two (by trial number, which
the storage hands out one at a time) finds itself over the budget at its first line, is marked
``discarded`` and fails at once without training; tables, reports and counts leave it out. So
the number of trials trained never exceeds the budget, with any number of workers.
"""

from __future__ import annotations

from optuna.trial import TrialState

from ganlab.study._optuna import system_attrs
from ganlab.study.record import DISCARDED, trial_record, write_trial
from ganlab.errors import GanlabError

__all__ = ["BudgetSpent", "DISCARDED", "budget_spent", "counted", "discard_if_over", "is_retry", "shown"]



class BudgetSpent(GanlabError):
    """A trial started after the study's budget was spent (discarded, never trained)."""


def is_retry(trial) -> bool:
    return "failed_trial" in trial.system_attrs


def shown(trials) -> list:
    """The trials a table, report or count shows: all but the discarded ones."""
    return [t for t in trials if not trial_record(t).discarded]


def counted(study) -> int:
    """Trials that count against the budget: every trial but retries, discarded ones and the
    queued ones nobody took yet (a confirmation's planned runs)."""
    return sum(1 for t in shown(study.get_trials(deepcopy=False))
               if not is_retry(t) and t.state != TrialState.WAITING)


def budget_spent(study, total: int | None) -> bool:
    """Whether a worker should stop asking for trials: the budget is counted full and no retry
    is waiting to be run."""
    if total is None:
        return False
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return counted(study) >= total and not waiting


def discard_if_over(trial, total: int | None) -> None:
    """First thing in a trial: raise :class:`BudgetSpent` (after marking the trial discarded) when
    it is a new trial numbered past the budget."""
    if total is None:
        return
    if "failed_trial" in system_attrs(trial):
        return  # a retry continues a counted trial
    before = sum(1 for t in shown(trial.study.get_trials(deepcopy=False))
                 if t.number < trial.number and not is_retry(t) and t.state != TrialState.WAITING)
    if before >= total:
        write_trial(trial, discarded=f"started after the study's budget of {total} trials was spent")
        trial.study.stop()
        raise BudgetSpent(f"trial {trial.number}: the study's budget of {total} trials is spent")
