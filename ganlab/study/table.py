"""The live table of a study's trials, and the cells the report shares with it."""

from __future__ import annotations

from optuna.trial import TrialState
from rich.table import Table

from ganlab.study.record import trial_record
from ganlab.study.budget import shown
from ganlab.study.spec import StudySpec
from ganlab.study.storage import best_trials

__all__ = ["fmt", "trial_cells", "trials_table"]


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _mean_sd(values) -> str:
    if len(values) < 2:
        return fmt(float(values[0])) if values else "-"
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{fmt(mean)} ± {sd:.2g}"


def trial_cells(t, n_values: int) -> tuple[list[str], str]:
    """The objective cells and the state of one trial, as the table and the report show them.

    Optuna keeps a pruned trial's last reported value as its value. That is shown under the
    objective's name only when the pruner watched the objective itself (with the step it was
    measured at); a proxy's value (``val/L1``) goes into the state, never under the objective."""
    state = t.state.name.lower()
    values = [fmt(v) for v in t.values] if t.values and t.state == TrialState.COMPLETE else ["-"] * n_values
    per_seed = trial_record(t).seed_values
    if isinstance(per_seed, dict) and t.state == TrialState.COMPLETE and len(per_seed) == n_values:
        values = [_mean_sd(v) for v in per_seed.values()]  # several seeds: mean ± sd over them
    if trial_record(t).diverged_seeds and t.state == TrialState.COMPLETE:
        state = f"complete ({trial_record(t).diverged_seeds} of {len((trial_record(t).seed_runs or []))} seeds diverged)"
    if trial_record(t).refused:
        state = "refused"
    elif trial_record(t).degenerate and t.state == TrialState.COMPLETE:
        state = f"complete ({trial_record(t).degenerate})"
    elif trial_record(t).diverged_step is not None:
        state = f"diverged@{trial_record(t).diverged_step}"
    elif t.state == TrialState.PRUNED:
        step = trial_record(t).pruned_step if trial_record(t).pruned_step is not None else t.last_step
        label = trial_record(t).pruned_on
        value = trial_record(t).pruned_value
        if value is None and t.intermediate_values and t.last_step is not None:
            value = t.intermediate_values[t.last_step]
        if trial_record(t).pruned_on_objective and t.values and len(t.values) == n_values:
            values = [f"{fmt(v)} @{step}" for v in t.values]
            state = f"pruned@{step}"
        elif step is not None:
            state = f"pruned@{step} ({label or 'reported value'} = {fmt(value)})"
    return values, state


def trials_table(study, spec: StudySpec, last: int = 15):
    names = list(spec.objectives) if not spec.weights else ["weighted"]
    table = Table(title=f"study {study.study_name}: {len(shown(study.trials))} trials", expand=False)
    for col in ("#", "tricks on"):
        table.add_column(col, overflow="fold")
    table.add_column("parameters", overflow="fold", min_width=20, max_width=70)  # wraps, never cut
    for col in (*names, "state", "s"):
        table.add_column(col, overflow="fold")
    best = {t.number for t in best_trials(study)}
    for t in shown(study.trials)[-last:]:
        params = ", ".join(f"{k}={fmt(v)}" for k, v in t.params.items() if not k.startswith(("trick:", "group:")))
        values, state = trial_cells(t, len(names))
        mark = "*" if t.number in best else ""
        table.add_row(f"{t.number}{mark}", ", ".join(trial_record(t).tricks or []) or "-", params or "-", *values,
                      state, fmt(float(trial_record(t).seconds or 0.0)))
    return table
