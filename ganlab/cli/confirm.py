"""``ganlab confirm NAME``: turn a study's search into evidence.

Re-trains, over S fresh seeds each (the same seeds in every arm): the study's chosen
configurations (its Pareto front, or the best 3 of one objective; --top N for the N first), the
plain pix2pix baseline, the L1-only control (gan_mode = none) where the task allows it, and for the
best chosen configuration a leave-one-out ablation (its stack without each trick in turn). The
runs are the trials of the sibling study NAME-confirm in the same storage: run the same command
on several machines (PostgreSQL) or with --n-jobs N to share them; a killed worker's run is run
again; the same command later continues, and a larger --seeds adds seeds to every arm.

--n-jobs auto (the default) runs as many workers as give the most runs per hour: on a CPU one
single-threaded worker per core (fewer when memory or the runs to go are short), on CUDA one per
GPU. Each worker trains with its share of the cores, cores // N torch threads (--threads or
OMP_NUM_THREADS to choose).

Then `ganlab report NAME` opens with what the evidence supports: each configuration's mean ± sd
and 95% interval, each effect as the seed-paired difference with a bootstrap 95% interval, and a
verdict per trick and objective: helps, hurts, or no detectable effect at this budget.

Examples:
  ganlab confirm label-tricks --data photos/
  ganlab confirm label-tricks --top 2 --seeds 8 --storage postgresql://ganlab@db/ganlab
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ganlab.cli.flags import add_setting_flags
from ganlab.errors import UsageError
from ganlab.threads import kept, parse_jobs, parse_threads

DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the study's name")
    p.add_argument("--top", type=int, default=None, metavar="N",
                   help="confirm the N best trials (default: the Pareto front, or the best 3 of one objective)")
    p.add_argument("--seeds", type=int, default=None, metavar="S", help="fresh seeds per arm (default 5)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: sqlite:///<runs>/studies.db)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="the study's --runs (default runs): the "
                   "confirmation's run folders go there too")
    p.add_argument("--data", metavar="PATH", help="override the study's training data (default: what the study used)")
    p.add_argument("--val-data", metavar="PATH", help="override the study's validation data")
    p.add_argument("--device", help="override the study's --device")
    p.add_argument("--n-jobs", default="auto", metavar="N|auto", help=(
        "runs at once, each in its own process with cores // N torch threads (default auto: the most runs per hour "
        "here; on a CPU one single-threaded worker per core, fewer when memory or the runs to go are short; on CUDA "
        "one worker per GPU)"))
    add_setting_flags(p, only=("threads",), groups={"run": p}, helps={"threads": (
        "torch threads of each worker (default auto: its share of the cores this process may use, cores // N; "
        "OMP_NUM_THREADS where set)")})


def run(args: argparse.Namespace) -> int:
    from ganlab.study.confirm import DEFAULT_SEEDS, run_confirm
    from ganlab.study.storage import load_existing_study, redact

    console = Console(stderr=True, soft_wrap=True)
    for flag, value in (("--top", args.top), ("--seeds", args.seeds)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: must be a whole number >= 1")
    n_jobs = parse_jobs(args.n_jobs)
    threads = parse_threads(args.threads)
    if args.name.endswith("-confirm"):
        raise UsageError(f"{args.name} is a confirmation; give its study's name: ganlab confirm {args.name[:-len('-confirm')]}")
    parent, storage, url = load_existing_study(args.name, args.storage, args.runs)
    overrides = {k: v for k, v in (("data", args.data), ("val_data", args.val_data), ("device", args.device)) if v is not None}
    seeds = args.seeds if args.seeds is not None else DEFAULT_SEEDS
    storage_flag = f" --storage {redact(url)}" if args.storage else (f" --runs {args.runs}" if args.runs != "runs" else "")

    def worker_argv(k: int) -> list[str]:
        argv = ["confirm", args.name, "--storage", url, "--runs", str(args.runs), "--seeds", str(seeds), "--n-jobs", "1"]
        for flag, value in (("--top", args.top), ("--data", args.data), ("--val-data", args.val_data),
                            ("--device", args.device)):
            if value is not None:
                argv += [flag, str(value)]
        return argv

    with kept():  # the workers' thread budget holds for this command only
        return run_confirm(parent, storage=storage, storage_url=url, out=Path(args.runs).expanduser(), top=args.top,
                           n_seeds=seeds, overrides=overrides, console=console, n_jobs=n_jobs, threads=threads,
                           storage_flag=storage_flag, worker_argv=worker_argv)
