"""ganlab from Python (a notebook): train a configuration, run a study and its confirmation,
and read the trials and the evidence as pandas DataFrames.

Each function does what the command of the same job does, with the command's arguments as
keywords (a flag ``--val-data`` is ``val_data=``), through the command's own code:

==========================  =========================  ======================================
function                    command                    returns
==========================  =========================  ======================================
``fit(**settings)``         ``ganlab train``           :class:`~ganlab.train.RunResult`
``run_study(study, ...)``   ``ganlab study``           the study's trials (a DataFrame)
``confirm(name, ...)``      ``ganlab confirm``         the evidence (a DataFrame)
``report(name, ...)``       ``ganlab report``          the path of report.md
``trials(name, ...)``       (``trials.csv``)           one row per trial
``evidence(name, ...)``     (the report's verdicts)    one row per effect and objective
==========================  =========================  ======================================

A mistake raises :class:`~ganlab.errors.UsageError` (or another
:class:`~ganlab.errors.GanlabError`) with the command's one-line message. The training
function is called ``fit`` because ``ganlab.train`` is the training package.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ganlab.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from ganlab.train.hooks import Hook
    from ganlab.train.result import RunResult

__all__ = ["confirm", "evidence", "fit", "report", "run_study", "trials"]


def fit(*, config: str | os.PathLike | None = None, resume: str | os.PathLike | None = None, hooks: Sequence[Hook] = (),
        on_eval: Callable[[int, dict[str, float]], None] | None = None, progress: bool = True,
        **settings: Any) -> RunResult:
    """Train a run, as ``ganlab train`` does.

    ``settings`` are the training settings by their field names (``data="photos/"``,
    ``steps=2000``, ``tricks=["soft-labels", "label-flip:p=0.05"]``, ``size=128``, ...; see
    ``ganlab train --help``), layered as the command layers its flags: the defaults, the sample
    set's preset when no data is given, the ``config`` TOML file, then ``settings``.
    ``resume="runs/00003-..."`` continues a run (only the settings the command lets a resume
    change may be given). ``hooks`` and ``on_eval(step, metrics)``: see
    :func:`ganlab.train.train`.
    """
    from ganlab.cli.train import resolve_resume
    from ganlab.config import TrainConfig, resolve
    from ganlab.train import build_stack, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise UsageError(f"ganlab.fit({unknown[0]}=...): not a training setting; the settings are the fields of "
                         "ganlab.config.TrainConfig (ganlab train --help lists them)")
    flags = {k: v for k, v in settings.items() if v is not None}
    if resume is not None:
        cfg = resolve_resume(argparse.Namespace(resume=str(resume), config=config), flags)
    else:
        cfg = resolve(flags, None if config is None else str(config))
    build_stack(cfg)  # an unknown trick or an impossible stack, before any work
    return train(cfg, resume=resume, hooks=hooks, on_eval=on_eval, progress=progress)


def _argv(positional: Sequence[Any], options: dict[str, Any]) -> list[str]:
    argv = [str(p) for p in positional]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


class _Refusal(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message}")


def _run_command(command: str, positional: Sequence[str], options: dict[str, Any]) -> None:
    """``ganlab COMMAND POSITIONAL --option value ...``, parsed by the command's own parser and
    run by its own ``run``. None and False leave a flag out (the command's default), True gives a
    switch alone, a list repeats the flag once per item."""
    module = importlib.import_module(f"ganlab.cli.{command}")
    parser = _Refusal(prog=f"ganlab.{command}")
    module.add_arguments(parser)
    code = module.run(parser.parse_args(_argv(positional, options)))
    if code:
        raise UsageError(f"ganlab {command} ended with exit code {code}")


def run_study(study: str | os.PathLike | None = None, *, trials: int | None = None, runs: str | os.PathLike = "runs",
              storage: str | None = None, name: str | None = None, **options: Any) -> pd.DataFrame:
    """Run (or continue) a study, as ``ganlab study`` does; returns its trials (:func:`trials`).

    ``study``: a definition file or a built-in study's name (default: the quickstart);
    ``trials``: how many this call runs; ``runs``: where the trials' run folders and the default
    storage go; ``options``: the command's other flags (``data``, ``val_data``, ``total_trials``,
    ``timeout``, ``n_jobs``, ``seed``, ``device``, ``inception_weights``, ``fid_features``).
    """
    from ganlab.study.spec import load_study_file

    spec = load_study_file(None if study is None else str(study))
    _run_command("study", (), {"study": study, "trials": trials, "runs": runs, "storage": storage, "name": name, **options})
    return _trials(name or spec.name, storage=storage, runs=runs)


def confirm(name: str, *, seeds: int | None = None, top: int | None = None, runs: str | os.PathLike = "runs",
            storage: str | None = None, **options: Any) -> pd.DataFrame:
    """Re-train a study's chosen configurations, the baseline, the control and the ablations
    over fresh seeds, as ``ganlab confirm`` does; returns the effects (:func:`evidence`).

    ``options``: the command's other flags (``data``, ``val_data``, ``device``, ``n_jobs``)."""
    _run_command("confirm", (name,), {"seeds": seeds, "top": top, "runs": runs, "storage": storage, **options})
    return evidence(name, storage=storage, runs=runs)


def report(name: str, *, runs: str | os.PathLike = "runs", storage: str | None = None,
           out: str | os.PathLike | None = None) -> Path:
    """Write the study's report, as ``ganlab report`` does; returns the path of report.md."""
    from ganlab.study.report import write_report

    study = _load(name, storage, runs)
    folder = Path(out).expanduser() if out else Path(runs).expanduser() / name / "report"
    return write_report(study, folder)


def _load(name: str, storage: str | None, runs: str | os.PathLike):
    from ganlab.study.storage import load_existing_study

    return load_existing_study(name, storage, str(runs))[0]


def trials(name: str, *, runs: str | os.PathLike = "runs", storage: str | None = None) -> pd.DataFrame:
    """The study's trials, one row each: the columns of the report's ``trials.csv`` (number,
    state, each objective, each parameter, the tricks, run folder, instability, seeds, ...)."""
    return _trials(name, runs=runs, storage=storage)


def _trials(name: str, *, runs, storage) -> pd.DataFrame:
    import io

    import pandas as pd

    from ganlab.study.report import _objective_names, trials_csv

    study = _load(name, storage, runs)
    return pd.read_csv(io.StringIO(trials_csv(study, _objective_names(study))))


def evidence(name: str, *, runs: str | os.PathLike = "runs", storage: str | None = None,
             table: str = "effects") -> pd.DataFrame:
    """What the study's confirmation supports, as the report's opening section says it.

    ``table="effects"``: one row per effect and objective: ``effect`` (a configuration, the
    control, or a trick within the best configuration), ``against`` (its reference), ``objective``,
    ``n`` (paired seeds), ``difference`` (the median seed-paired difference), ``low``/``high`` (its
    interval), ``verdict`` (decided as one family, as the report decides it) and ``why``.
    ``table="configurations"``: one row per configuration and objective: ``configuration``,
    ``kind``, ``tricks``, ``objective``, ``n``, ``mean``, ``sd``, ``low``/``high`` (the 95%
    interval of the mean), ``seeds`` and ``diverged``.
    """
    import pandas as pd

    from ganlab.study.evidence import (_tricks_text, arm_runs, comparisons, confirmation_of, decide_family,
                                       decide_sequential, summarise)
    from ganlab.study.record import study_record
    from ganlab.study.objective import DIVERGED_INSTABILITY
    from ganlab.study.report import _objective_names

    if table not in ("effects", "configurations"):
        raise UsageError(f"ganlab.evidence(table={table!r}): choose effects or configurations")
    study = _load(name, storage, runs)
    confirmation = confirmation_of(study)
    if confirmation is None:
        raise UsageError(f"study {name}: no confirmation yet; run ganlab.confirm({name!r}) (or ganlab confirm {name}) first")
    objectives = list(study_record(confirmation).objectives or _objective_names(study))
    directions = [d.name.lower() for d in confirmation.directions]
    arms = arm_runs(confirmation, objectives, DIVERGED_INSTABILITY)
    rows: list[dict[str, Any]] = []
    if table == "configurations":
        for label, r in arms.items():
            if r.plan.get("label") != label:  # an alias of another arm
                continue
            for o in objectives:
                s = summarise(list(r.values[o].values()))
                rows.append({"configuration": label, "kind": r.plan.get("kind"), "tricks": _tricks_text(r.plan),
                             "objective": o, "n": s.n, "mean": s.mean, "sd": s.sd, "low": s.low, "high": s.high,
                             "seeds": len(r.seeds), "diverged": len(r.diverged)})
        columns = ["configuration", "kind", "tricks", "objective", "n", "mean", "sd", "low", "high", "seeds", "diverged"]
    else:
        # decided as the report decides them: one family (Holm), the primary comparison and the
        # equivalence margins the confirmation declared, its looks where it had several
        record = study_record(confirmation)
        primary = bool(record.primary)
        margins = {k: float(v) for k, v in (record.equivalence or {}).items()}
        looks = [int(n) for n in record.looks or []]
        if looks:
            decided, _, _ = decide_sequential(arms, objectives, directions, looks, primary=primary, margins=margins)
        else:
            decided, _ = decide_family(comparisons(arms, objectives, directions), objectives, directions,
                                       primary=primary, margins=margins)
        for what, against, by in decided:
            for o in objectives:
                if o not in by:
                    continue
                e = by[o]
                rows.append({"effect": what, "against": against, "objective": o, "n": e.n, "difference": e.mean,
                             "low": e.low, "high": e.high, "verdict": e.verdict, "why": e.why})
        columns = ["effect", "against", "objective", "n", "difference", "low", "high", "verdict", "why"]
    return pd.DataFrame(rows, columns=columns)
