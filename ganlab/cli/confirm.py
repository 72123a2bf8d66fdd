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
and 95% interval, each effect as the median seed-paired difference with the sign test's interval,
and a verdict per trick and objective (helps, hurts, no effect larger than D with --equivalence,
or no detectable effect at this budget), all verdicts one family held to 5% (Holm). A sign test
gives no verdict below 6 seeds, and a family of 13 needs 10: hence 10 seeds by default. --plan
says, from the runs so far, the smallest effect the seeds detect and how many an effect needs.

Examples:
  ganlab confirm label-tricks --data photos/
  ganlab confirm label-tricks --top 2 --seeds 12 --storage postgresql://ganlab@db/ganlab
  ganlab confirm label-tricks --primary --equivalence swd=2 --equivalence instability=0.1
  ganlab confirm label-tricks --plan --effect swd=3
  ganlab confirm label-tricks --equivalence swd=2 --until-decided --max-seeds 30
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
    p.add_argument("--seeds", type=int, default=None, metavar="S", help="fresh seeds per arm (default 10)")
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
    p.add_argument("--primary", action="store_true", help="declare one primary comparison (the best configuration "
                   "against the baseline on the first objective), decided alone at 5%% and reported as primary; "
                   "declared before any run finishes")
    p.add_argument("--equivalence", action="append", default=[], metavar="[OBJ=]D",
                   help="the smallest effect that matters, in the objective's units (the first objective without "
                   "OBJ=; repeat per objective): an interval inside (-D, +D) is the verdict 'no effect larger than "
                   "D'; declared before any run finishes")
    p.add_argument("--until-decided", action="store_true",
                   help="add seeds in rounds (from --seeds, every max(2, S/2) more, up to --max-seeds) until every "
                   "verdict is helps, hurts or within its --equivalence margin; the 5%% error rate is split over the "
                   "looks fixed at the start (docs/statistics.md)")
    p.add_argument("--max-seeds", type=int, default=None, metavar="N", help="with --until-decided: the most seeds per arm")
    p.add_argument("--plan", action="store_true", help="train nothing: from the runs so far, the smallest effect the "
                   "seeds detect with 80%% power and the seeds an effect needs (--effect)")
    p.add_argument("--effect", action="append", default=[], metavar="[OBJ=]D",
                   help="with --plan: the effect to size seeds for, in the objective's units (default 0.5, 1 and 2 "
                   "times the paired spread)")


def run(args: argparse.Namespace) -> int:
    from ganlab.study.confirm import DEFAULT_SEEDS, run_confirm, run_plan, undecided
    from ganlab.study.evidence import look_schedule
    from ganlab.study.storage import load_existing_study, redact

    console = Console(stderr=True, soft_wrap=True)
    for flag, value in (("--top", args.top), ("--seeds", args.seeds), ("--max-seeds", args.max_seeds)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: must be a whole number >= 1")
    n_jobs = parse_jobs(args.n_jobs)
    threads = parse_threads(args.threads)
    if args.name.endswith("-confirm"):
        raise UsageError(f"{args.name} is a confirmation; give its study's name: ganlab confirm {args.name[:-len('-confirm')]}")
    if args.effect and not args.plan:
        raise UsageError("--effect sizes seeds for --plan; add --plan (or leave --effect out)")
    if (args.max_seeds is not None) != args.until_decided:
        raise UsageError("--until-decided and --max-seeds go together: --until-decided --max-seeds N")
    parent, storage, url = load_existing_study(args.name, args.storage, args.runs)
    if args.plan:
        return run_plan(parent, effects=args.effect, console=Console(soft_wrap=True))
    overrides = {k: v for k, v in (("data", args.data), ("val_data", args.val_data), ("device", args.device)) if v is not None}
    seeds = args.seeds if args.seeds is not None else DEFAULT_SEEDS
    if args.until_decided and args.max_seeds <= seeds:
        raise UsageError(f"--max-seeds {args.max_seeds}: must be above --seeds ({seeds}) for --until-decided")
    storage_flag = f" --storage {redact(url)}" if args.storage else (f" --runs {args.runs}" if args.runs != "runs" else "")

    def worker_argv(k: int) -> list[str]:
        argv = ["confirm", args.name, "--storage", url, "--runs", str(args.runs), "--seeds", str(seeds), "--n-jobs", "1"]
        for flag, value in (("--top", args.top), ("--data", args.data), ("--val-data", args.val_data),
                            ("--device", args.device)):
            if value is not None:
                argv += [flag, str(value)]
        if args.primary:
            argv.append("--primary")
        for margin in args.equivalence:
            argv += ["--equivalence", margin]
        return argv

    def confirm(n: int, looks: list[int]) -> int:
        return run_confirm(parent, storage=storage, storage_url=url, out=Path(args.runs).expanduser(), top=args.top,
                           n_seeds=n, overrides=overrides, console=console, n_jobs=n_jobs, threads=threads,
                           storage_flag=storage_flag, worker_argv=worker_argv, primary=args.primary,
                           equivalence=args.equivalence, looks=looks)

    with kept():  # the workers' thread budget holds for this command only
        if not args.until_decided:
            return confirm(seeds, [])
        looks = look_schedule(seeds, args.max_seeds)
        code = 0
        for n in looks:
            code = confirm(n, looks)
            left = undecided(parent)
            if not left:
                console.print(f"every verdict decided at {n} seeds", highlight=False)
                return code
            console.print(f"{left} verdict(s) undecided at {n} seeds"
                          + ("" if n == looks[-1] else "; adding seeds")
                          + ("" if args.equivalence else " (without --equivalence a null effect is never decided)"),
                          highlight=False)
        return code
