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


DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the study's name")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: sqlite:///<runs>/studies.db)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="the study's --runs (default runs), for the default storage")
    p.add_argument("--out", metavar="DIR", help="where the report goes (default: <runs>/<NAME>/report)")


def run(args: argparse.Namespace) -> int:
    from ganlab.study.report import write_report  # the study's libraries load when the command runs, not for --help
    from ganlab.study.storage import dashboard_command, dashboard_hint, load_existing_study

    console = Console(stderr=True, soft_wrap=True)
    study, _, url = load_existing_study(args.name, args.storage, args.runs)
    out = Path(args.out).expanduser() if args.out else Path(args.runs).expanduser() / args.name / "report"
    path = write_report(study, out)
    console.print(f"report: {path} (with trials.csv and plots in {out})", highlight=False)
    artifacts = Path(args.runs).expanduser() / args.name / "artifacts"
    console.print(f"dashboard: {dashboard_command(url, artifacts.resolve() if artifacts.is_dir() else None)}"
                  f"{dashboard_hint()}", highlight=False, markup=False)
    return 0
