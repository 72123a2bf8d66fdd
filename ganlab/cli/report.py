"""``ganlab report NAME``: what a study found, as Markdown with plots and a CSV.

- the importance of each trick and parameter for each objective (Optuna's evaluators),
- the Pareto front (or the best trial) and a scatter plot of all trials,
- a per-trick comparison: median and spread of each objective with the trick on and off,
- loss curves of the best and the worst trials, from their run folders,
- ``trials.csv`` with every trial.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ganlab.errors import UsageError

DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the study's name")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: sqlite:///runs/studies.db)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="the --out of the study (default runs), for the default storage")
    p.add_argument("--out", metavar="DIR", help="where the report goes (default: <runs>/<NAME>/report)")


def run(args: argparse.Namespace) -> int:
    import optuna  # the study's libraries load when the command runs, not for --help

    from ganlab.study.report import write_report
    from ganlab.study.storage import dashboard_command, dashboard_hint, default_storage, open_storage

    console = Console(stderr=True, soft_wrap=True)
    url = args.storage or default_storage(args.runs)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise UsageError(f"--storage {url}: no such study file; run ganlab study first, or give --storage/--runs")
    storage = open_storage(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=args.name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UsageError(f"study {args.name}: not in {url}; studies there: {', '.join(names) or 'none'}") from None
    out = Path(args.out).expanduser() if args.out else Path(args.runs).expanduser() / args.name / "report"
    path = write_report(study, out)
    console.print(f"report: {path} (with trials.csv and plots in {out})", highlight=False)
    artifacts = Path(args.runs).expanduser() / args.name / "artifacts"
    console.print(f"dashboard: {dashboard_command(url, artifacts.resolve() if artifacts.is_dir() else None)}"
                  f"{dashboard_hint()}", highlight=False, markup=False)
    return 0
