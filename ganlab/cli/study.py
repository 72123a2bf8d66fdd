"""``ganlab study``: search trick combinations and hyperparameters with Optuna.

A study definition (TOML, see ``studies/``) fixes the data and base training settings, says
which tricks may be switched on and which base hyperparameters are searched, and names one or
two objectives. Each trial is an ordinary ganlab run folder. Optuna's storages carry the
study: a SQLite file by default, or any RDB URL (``postgresql://...``) that many workers on
many machines join by running the same command. Heartbeats mark a trial whose worker died as
failed, and the failed trial is retried.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console

from ganlab.cli.flags import add_setting_flags
from ganlab.config import check_run_name
from ganlab.errors import UsageError
from ganlab.threads import kept, parse_jobs, parse_threads

DESCRIPTION = """\
Search trick combinations and hyperparameters with Optuna.

With no --study it runs the quickstart study (the built-in sample set, tiny networks, a
weight-free quality metric and the instability score, NSGA-II) -- four trials take a few
minutes on a CPU, offline. Running the same command again adds trials to the same study.

Objectives (minimised unless marked):
  swd, color_hist, val_l1, colorfulness_gap, kid, fid    image quality on the validation set
  psnr, ssim (maximised)                                 per-image fidelity
  instability                                            the instability score (see ganlab eval --help)
Two objectives make a Pareto study (NSGA-II or multi-objective TPE, unpruned); one objective,
or two with [study].weights, make a single scalar that can be pruned. The pruner watches the
objective itself at every evaluation when training measures it (all but fid and instability),
else val/swd (a distribution distance: per-pixel L1 would favour grey, unadventurous
models); [study].prune_on = "val/L1" (any in-loop metric) picks another. fid uses
Inception, or --fid-features FILE (a TorchScript feature network of your choosing); the study
records which, and refuses to continue with another.

Storage: a SQLite file by default (<runs>/studies.db); --storage journal:///path/study.log (an
Optuna journal file) for several workers on one machine; --storage postgresql://user@host/db lets
any number of workers on many machines join the same study. A trial whose worker died is marked
failed and run again once. A diverged trial (NaN) is recorded as failed with
its step; an impossible trick stack is pruned at once with its reason, never trained.
--n-jobs N runs N trials at once in N processes (not threads: a run's random generators are
global to its process), each with its share of the cores as torch threads (cores // N; --threads
or OMP_NUM_THREADS to choose). On a CPU, --n-jobs auto (one single-threaded worker per core, fewer
when memory or the trials to run are short) gives the most trials per hour; one worker per GPU on
CUDA. SIGTERM or Ctrl-C saves the running trial's step, queues the trial
again to continue from there, and stops the worker (exit 143 or 130).

Examples:
  ganlab study --trials 4
  ganlab study --study studies/label-tricks.toml --data photos/ --trials 40
  ganlab study --study label-tricks --storage postgresql://ganlab@db/ganlab --trials 10
  ganlab study --study label-tricks --storage journal:///scratch/label-tricks.log --trials 10 &  # x4
  ganlab report quickstart
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=int, default=None, help="trials this worker runs (default 4; with --timeout or a "
                   "study-wide budget alone, until time or the budget is up)")
    p.add_argument("--total-trials", type=int, default=None, metavar="N", help=(
        "the study's budget counted over all its workers (finished, pruned, failed and running trials; a retry is not "
        "counted again): ten workers asked for 40 run 40 in all (default: [study].trials, else none)"))
    p.add_argument("--study", metavar="FILE.toml|NAME", help="a study definition (default: the built-in quickstart)")
    p.add_argument("--data", metavar="PATH", help="override the study's training data")
    p.add_argument("--val-data", metavar="PATH", help="override the study's validation data")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL: sqlite:///FILE.db (default <runs>/studies.db), "
                   "journal:///FILE.log (many workers, one machine) or postgresql://...")
    p.add_argument("--name", help="study name in the storage (default: the definition's name)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--n-jobs", default="1", metavar="N|auto", help=(
        "trials run at once, each in its own process: this one and N-1 more workers of the same study on the same "
        "storage (their logs in RUNS/STUDY/worker-K.log); not threads, because a run's random generators (dropout, "
        "the states a checkpoint restores) are global to its process; --trials is split between them. Each worker "
        "gets cores // N torch threads. On a CPU choose auto (default 1): one worker per core gives the most trials "
        "per hour; on CUDA auto is one worker per GPU"))
    add_setting_flags(p, only=("threads",), groups={"run": p}, helps={"threads": (
        "torch threads of each worker (default auto: its share of the cores this process may use, cores // N; "
        "OMP_NUM_THREADS where set)")})
    p.add_argument("--seed", type=int, help="sampler seed (default: the definition's; none for shared storages)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="where trial run folders go (default runs)")
    p.add_argument("--out", dest="runs", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the former name of --runs
    p.add_argument("--device", help="override the study's --device")
    p.add_argument("--inception-weights", metavar="PATH", help="the FID Inception weights (for fid/kid objectives)")
    p.add_argument("--fid-features", metavar="FILE", help=(
        "a TorchScript feature network (uint8 RGB N x 3 x H x W -> float N x D) used instead of Inception for the fid "
        "objective; the study records it and refuses to continue with another. A TorchScript file is a program: "
        "ganlab runs the network inside it, so only use files you trust"))


def run(args: argparse.Namespace) -> int:
    # The study's libraries (Optuna, the trainer) load when the command runs, not for --help.
    from ganlab.study.runner import check_inception, run_study
    from ganlab.study.spec import load_study_file
    from ganlab.study.storage import default_storage, redact

    console = Console(stderr=True, soft_wrap=True)
    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials {args.trials}: must be a whole number >= 1")
    if args.total_trials is not None and args.total_trials < 1:
        raise UsageError(f"--total-trials {args.total_trials}: must be a whole number >= 1")
    n_jobs = parse_jobs(args.n_jobs)
    threads = parse_threads(args.threads)
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout}: must be a positive number of seconds")
    spec = load_study_file(args.study)
    if args.name is not None:
        check_run_name(args.name, "--name")
        spec = dataclasses.replace(spec, name=args.name)
    overrides = {k: v for k, v in (("data", args.data), ("val_data", args.val_data), ("device", args.device)) if v is not None}
    fid_network = check_inception(spec, args.inception_weights, args.fid_features)
    out = Path(args.runs).expanduser()
    storage_url = args.storage or default_storage(args.runs)
    shared = not storage_url.startswith("sqlite")
    seed = args.seed if args.seed is not None else (None if shared else spec.seed)
    total = args.total_trials if args.total_trials is not None else spec.trials
    n_trials = args.trials if args.trials is not None else (None if args.timeout or total else 4)
    storage_flag = f" --storage {redact(storage_url)}" if args.storage else (f" --runs {args.runs}" if args.runs != "runs" else "")
    with kept():  # the workers' thread budget holds for this command only
        return run_study(spec, storage_url=storage_url, out=out, overrides=overrides, seed=seed, n_trials=n_trials,
                         timeout=args.timeout, n_jobs=n_jobs, threads=threads, inception_weights=args.inception_weights, console=console,
                         storage_flag=storage_flag, fid_features=args.fid_features, fid_network=fid_network,
                         total_trials=total,
                         worker_argv=lambda k, trials: worker_argv(args, storage_url, seed, k, trials))


def worker_argv(args: argparse.Namespace, storage_url: str, seed: int | None, k: int, trials: int | None) -> list[str]:
    """The command line (after ``ganlab``) of extra worker ``k`` of ``ganlab study --n-jobs N``:
    the same study, data and storage, one trial at a time, its share of the trials, and a sampler
    seed of its own (the same seed would draw the same parameters in every worker)."""
    argv = ["study", "--storage", storage_url, "--runs", str(args.runs), "--n-jobs", "1"]
    for flag, value in (("--study", args.study), ("--data", args.data), ("--val-data", args.val_data),
                        ("--name", args.name), ("--timeout", args.timeout), ("--device", args.device),
                        ("--inception-weights", args.inception_weights), ("--fid-features", args.fid_features),
                        ("--trials", trials), ("--total-trials", args.total_trials), ("--seed", None if seed is None else (seed + k) % 2**32)):
        if value is not None:
            argv += [flag, str(value)]
    return argv
