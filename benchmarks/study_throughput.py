"""Evidence per hour: runs per hour of a small confirmation at ``--n-jobs`` 1, 2 and auto, with the
threads of the time before the budget (every worker takes every core) and with the budget (each
worker its share, cores // N), next to the ideal.

A confirmation's figure of merit is not one run's speed but runs per hour: a verdict needs arms x
seeds runs. The benchmark makes one small search (one trial, not timed), then times the same
confirmation of it (3 arms: the search's configuration, the baseline and the L1-only control, x
``--seeds`` seeds, each run ``--steps`` steps at 64 px, batch 4, 32-channel networks) from a fresh
copy of the storage, once per setting, as ``ganlab confirm`` processes. Runs per hour = runs /
the command's wall time x 3600, start-up, data decoding and evaluations included.

**The ideal** is perfect scaling of one single-threaded worker: the runs per hour of ``--n-jobs 1
--threads 1`` times the cores the command may use (``os.sched_getaffinity``). The goal: ``--n-jobs
auto`` within 85% of the ideal, and never fewer runs per hour than ``--n-jobs 1``.

Data: ``--data``/``--val-data``; by default BSDS500's train and val folders where they are
(``--bsds500 DIR``, default ../shared/datasets/bsds500), else generated images. The commands run
without the caller's ``OMP_NUM_THREADS`` (each setting gives its own threads).

The figures of docs/performance.md (a quiet machine; on 2 cores about 25 minutes)::

    python benchmarks/study_throughput.py --steps 200 --seeds 4 --out runs/study-throughput \\
        --markdown runs/study_throughput.md

``--quick`` checks the benchmark itself in a minute (32 px, 4-channel networks, 4 steps, 2 seeds,
generated images): its figures mean nothing. ``--overhead`` adds the per-run overhead of a
confirmation worker, measured in this process (one thread, --n-jobs 1): the share of each run's
time spent outside the training steps (network build, evaluations, checkpoint writes, the
run's scoring afterwards) and, once per worker, process start and data decoding; then what those
shares come to in a 1,000-step run. ``--eval-ab`` times one in-loop evaluation with and without
the SWD's kept real side, in pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME = "throughput"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GANLAB_THREADS_WHY")}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def pick_data(args, root: Path) -> tuple[str, str, str]:
    """(train folder, validation folder, what they are)."""
    if args.data:
        return args.data, args.val_data or args.data, f"{args.data} (val {args.val_data or args.data})"
    bsds = Path(args.bsds500).expanduser()
    if not args.quick and (bsds / "train").is_dir() and (bsds / "val").is_dir():
        return str(bsds / "train"), str(bsds / "val"), f"BSDS500 ({bsds}: train {len(list((bsds / 'train').iterdir()))} "\
                                                     f"photographs, val {len(list((bsds / 'val').iterdir()))})"
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folders = []
    for split, n in (("train", 24 if not args.quick else 6), ("val", 8 if not args.quick else 4)):
        folder = root / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            # smooth colour fields with noise: photographs enough for a pipeline to decode and train on
            h, w = (96, 128) if i % 2 else (128, 96)
            yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
            base = np.stack([np.sin(6 * xx + rng.uniform(0, 6)), np.cos(5 * yy + rng.uniform(0, 6)),
                             np.sin(4 * (xx + yy) + rng.uniform(0, 6))], -1)
            img = np.clip(127 + 100 * base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"img{i:03d}.png")
        folders.append(str(folder))
    return folders[0], folders[1], f"generated images ({folders[0]})"


def study_text(args, data: str, val: str) -> str:
    size, load, ch = (32, 40, 4) if args.quick else (args.size, args.size * 9 // 8, args.channels)
    return (f"# Question: how many runs per hour does a confirmation make?\n"
            f"[study]\nname = \"{NAME}\"\nobjectives = [\"swd\", \"instability\"]\nsampler = \"random\"\n"
            f"steps = {args.steps}\neval_every = {args.eval_every or args.steps}\n"
            f"[train]\ndata = \"{data}\"\nval_data = \"{val}\"\nsize = {size}\nload_size = {load}\n"
            f"batch_size = 4\nngf = {ch}\nndf = {ch}\nlog_every = 10\n"
            f"[tricks]\nalways = [\"label-flip\"]\n[tricks.fixed.label-flip]\np = 0.1\n")


def ganlab(argv: list[str], log: Path, timeout: float | None = None) -> float:
    """Run ``ganlab ARGV`` in a fresh process; its wall time in seconds."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "ganlab", *argv], stdout=fh, stderr=subprocess.STDOUT,
                              env=child_env(), cwd=REPO, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"ganlab {' '.join(argv[:2])} failed (exit {proc.returncode}); its log: {log}\n"
                 + log.read_text()[-2000:])
    return seconds


def make_parent(args, root: Path, data: str, val: str) -> Path:
    """The search to confirm: one trial (label-flip p=0.1), in root/parent/studies.db."""
    parent = root / "parent"
    db = parent / "studies.db"
    if db.is_file():
        return parent
    parent.mkdir(parents=True, exist_ok=True)
    spec = root / f"{NAME}.toml"
    spec.write_text(study_text(args, data, val))
    ganlab(["study", "--study", str(spec), "--trials", "1", "--runs", str(parent), "--n-jobs", "1"], root / "parent.log")
    return parent


def settings(cores: int) -> list[dict]:
    """(label, --n-jobs, --threads) of each timed confirmation; duplicates on this machine dropped."""
    from ganlab.threads import AUTO

    rows = [
        {"key": "basis", "label": "n-jobs 1, one thread (the ideal's basis)", "jobs": "1", "threads": "1", "basis": True},
        {"key": "one", "label": "n-jobs 1, every core", "jobs": "1", "threads": str(cores), "one": True},
        {"key": "two-unbudgeted", "label": "n-jobs 2, every core per worker (before the budget)", "jobs": "2",
         "threads": str(cores)},
        {"key": "two", "label": "n-jobs 2, budgeted (cores // 2)", "jobs": "2", "threads": AUTO},
        {"key": "auto-unbudgeted", "label": "n-jobs auto, every core per worker", "jobs": AUTO, "threads": str(cores)},
        {"key": "auto", "label": "n-jobs auto, budgeted (the default)", "jobs": AUTO, "threads": AUTO, "auto": True},
    ]
    return rows


SETTING_KEYS = ("basis", "one", "two-unbudgeted", "two", "auto-unbudgeted", "auto")
NEEDED = ("basis", "one", "auto")  # the ideal, n-jobs 1 and the default: what the goal is read from


def time_confirmations(args, root: Path, parent: Path, rows: list[dict]) -> None:
    """Each setting's confirmation from a fresh copy of the storage, in rotated order each round."""
    for r in rows:
        r["seconds"], r["runs"] = [], 0
    for k in range(args.rounds):
        order = rows[k % len(rows):] + rows[:k % len(rows)]
        for r in order:
            i = rows.index(r)
            where = root / f"round{k}-setting{i}"
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir(parents=True)
            shutil.copy(parent / "studies.db", where / "studies.db")
            argv = ["confirm", NAME, "--runs", str(where), "--seeds", str(args.seeds), "--n-jobs", r["jobs"],
                    "--threads", r["threads"]]
            seconds = ganlab(argv, where / "confirm.log")
            log = (where / "confirm.log").read_text()
            r["seconds"].append(seconds)
            r["runs"] = _runs_done(where)
            r["workers"] = _workers_line(log)
            print(f"  round {k + 1}: {r['label']}: {r['runs']} runs in {seconds:.1f} s ({r['workers']})", flush=True)


def _runs_done(where: Path) -> int:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=NAME + "-confirm", storage=f"sqlite:///{where / 'studies.db'}")
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _workers_line(log: str) -> str:
    """``N x T``: the workers and threads each the command said it runs."""
    import re

    m = re.search(r"(\d+) worker process(?:es)?.*?, (\d+) threads? \(", log)
    return f"{m.group(1)} x {m.group(2)}" if m else "?"


def summarise(rows: list[dict], cores: int) -> dict:
    import statistics

    for r in rows:
        r["median_seconds"] = statistics.median(r["seconds"])
        r["runs_per_hour"] = r["runs"] / r["median_seconds"] * 3600 if r["median_seconds"] > 0 else 0.0
    basis = next(r for r in rows if r.get("basis"))
    one = next(r for r in rows if r.get("one"))
    ideal = basis["runs_per_hour"] * cores
    for r in rows:
        r["of_ideal"] = r["runs_per_hour"] / ideal if ideal else float("nan")
        r["vs_one_job"] = r["runs_per_hour"] / max(one["runs_per_hour"], basis["runs_per_hour"])
    auto = next(r for r in rows if r.get("auto"))
    return {"cores": cores, "ideal_runs_per_hour": ideal, "auto_of_ideal": auto["of_ideal"],
            "auto_vs_one_job": auto["vs_one_job"], "goal_met": auto["of_ideal"] >= 0.85 and auto["vs_one_job"] >= 1.0}


def markdown(rows: list[dict], summary: dict, command: str, what: str) -> str:
    lines = [f"Command: `{command}`", "", f"Data: {what}; {summary['cores']} usable cores.", "",
             "| setting | workers x threads | runs | wall s (median) | runs/hour | of the ideal | vs n-jobs 1 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['workers']} | {r['runs']} | "
                     f"{r['median_seconds']:.1f} | {r['runs_per_hour']:.0f} | {100 * r['of_ideal']:.0f}% | "
                     f"{r['vs_one_job']:.2f}x |")
    lines += ["", f"The ideal: {summary['ideal_runs_per_hour']:.0f} runs/hour (n-jobs 1 on one thread x "
                  f"{summary['cores']} cores). n-jobs auto: {100 * summary['auto_of_ideal']:.0f}% of it (goal >= 85%), "
                  f"{summary['auto_vs_one_job']:.2f}x n-jobs 1 (goal >= 1): goal {'met' if summary['goal_met'] else 'NOT met'}.",
              "'vs n-jobs 1' is against the faster of the two n-jobs 1 rows."]
    return "\n".join(lines)


# --- the per-run overhead ------------------------------------------------------------------------

class Clock:
    """Seconds spent in named parts on this process's main thread, each part without the parts
    called inside it (so the parts of a run add up to the run)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.stack: list[list] = []  # [part, seconds spent in the parts inside it]

    def timed(self, part: str, fn):
        def timed(*a, **kw):
            self.stack.append([part, 0.0])
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                elapsed = time.perf_counter() - t0
                _, inner = self.stack.pop()
                self.seconds[part] = self.seconds.get(part, 0.0) + elapsed - inner
                self.calls[part] = self.calls.get(part, 0) + 1
                if self.stack:
                    self.stack[-1][1] += elapsed

        return timed

    def wrap(self, owner, attr: str, part: str) -> None:
        setattr(owner, attr, self.timed(part, getattr(owner, attr)))


RUN = "run (trial)"
PARTS = ("training steps", "network build", "evaluations", "checkpoint writes", "scoring after the run", "memory check",
         "storage writes", "TensorBoard writers", "run files (config, env, status)")


def overhead(args, root: Path, parent: Path) -> dict:
    """Run one confirmation worker in this process (one thread) with its parts timed."""
    import optuna
    import torch
    from torch.utils.tensorboard import SummaryWriter

    torch.set_num_threads(1)
    from ganlab.cli import main
    from ganlab.study import runner as R
    from ganlab.train import build as B
    from ganlab.train import loop as L

    clock = Clock()
    clock.wrap(R.StudyRunner, "__call__", RUN)
    clock.wrap(R, "build_datasets", "data decoding")
    clock.wrap(L, "build_session", "network build")
    clock.wrap(L, "inloop_feature_extractor", "network build")
    clock.wrap(B.Session, "iterate", "training steps")
    clock.wrap(L, "evaluate", "evaluations")
    clock.wrap(L, "save_checkpoint", "checkpoint writes")
    clock.wrap(L, "save_best", "checkpoint writes")
    clock.wrap(R.StudyRunner, "_conclude", "scoring after the run")
    clock.wrap(R, "check_fits", "memory check")
    clock.wrap(L, "check_fits", "memory check")
    clock.wrap(optuna.trial.Trial, "set_user_attr", "storage writes")
    clock.wrap(SummaryWriter, "__init__", "TensorBoard writers")
    for name in ("atomic_write_json", "write_status"):
        clock.wrap(L, name, "run files (config, env, status)")
    # the last step's checkpoint is written in a thread beside the final evaluation: count the
    # wait for it
    original = L.save_checkpoint_in_background

    def background(*a, **kw):
        future = original(*a, **kw)
        future.result = clock.timed("checkpoint writes", future.result)
        return future

    L.save_checkpoint_in_background = background
    where = root / "overhead"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    shutil.copy(parent / "studies.db", where / "studies.db")
    os.environ.pop("OMP_NUM_THREADS", None)
    t0 = time.perf_counter()
    code = main(["confirm", NAME, "--runs", str(where), "--seeds", str(args.seeds), "--n-jobs", "1", "--threads", "1"])
    wall = time.perf_counter() - t0
    if code != 0:
        sys.exit(f"the instrumented confirmation failed (exit {code})")
    # process start: a fresh interpreter importing what a worker imports
    t1 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ganlab.cli, ganlab.study.runner, ganlab.study.confirm, ganlab.train"],
                   check=True, env=child_env())
    start = time.perf_counter() - t1
    runs = clock.calls.get(RUN, 0)
    s = clock.seconds
    inside = sum(s.get(p, 0.0) for p in PARTS)
    run_total = (s.get(RUN, 0.0) + inside) / runs
    per_run = {p: s.get(p, 0.0) / runs for p in PARTS}
    per_run["other (trial set-up, logs, samples, console)"] = s.get(RUN, 0.0) / runs
    steps = args.steps
    evals = clock.calls.get("evaluations", 0) / runs
    step_s = per_run["training steps"] / steps
    eval_s = per_run["evaluations"] / max(1.0, evals)
    per_worker = {"process start": start, "data decoding": s.get("data decoding", 0.0),
                  "storage and scheduling": wall - run_total * runs - s.get("data decoding", 0.0)}
    # a 1,000-step run with the study's evaluation cadence (every --eval-every steps, and at the end)
    n1000 = 1000
    evals1000 = max(1, n1000 // (args.eval_every or steps))
    run1000 = {p: v for p, v in per_run.items()}
    run1000.update({"training steps": step_s * n1000, "evaluations": eval_s * evals1000})
    run1000.update({k: v / runs for k, v in per_worker.items()})  # this worker's runs share them
    total1000 = sum(run1000.values())
    return {"runs": runs, "steps": steps, "wall": wall, "run_seconds": run_total, "per_run": per_run,
            "per_worker": per_worker, "step_seconds": step_s, "eval_seconds": eval_s, "run1000": run1000,
            "total1000": total1000, "share1000": {k: v / total1000 for k, v in run1000.items()}}


def overhead_markdown(o: dict, eval_every: int) -> str:
    run = o["run_seconds"]
    lines = [f"Per-run overhead: {o['runs']} runs of {o['steps']} steps in one worker, one thread: {run:.2f} s a run "
             f"({o['step_seconds'] * 1000:.0f} ms a step, {o['eval_seconds']:.2f} s an evaluation).", "",
             "| part | per run, measured (s) | share of the run | in a 1,000-step run (s) | share of it |",
             "|---|---|---|---|---|"]
    for part, v in o["per_run"].items():
        lines.append(f"| {part} | {v:.2f} | {100 * v / run:.1f}% | {o['run1000'][part]:.2f} | "
                     f"{100 * o['share1000'][part]:.1f}% |")
    for part, v in o["per_worker"].items():
        lines.append(f"| {part} (once per worker: / {o['runs']} runs) | {v / o['runs']:.2f} | "
                     f"{100 * v / o['runs'] / run:.1f}% | {o['run1000'][part]:.2f} | {100 * o['share1000'][part]:.1f}% |")
    lines.append(f"\nA 1,000-step run, evaluated every {eval_every} steps: {o['total1000']:.0f} s, of which "
                 f"{100 * o['share1000']['training steps']:.0f}% training steps.")
    return "\n".join(lines)


def eval_ab(args, data: str, val: str, pairs: int = 4) -> dict:
    """One in-loop evaluation of a fresh generator, with the SWD's real side computed anew ("before")
    and kept from the evaluation before ("after"), in pairs in this process (one thread)."""
    import statistics

    import torch

    torch.set_num_threads(1)
    from ganlab.config import TrainConfig
    from ganlab.data import build_datasets
    from ganlab.metrics import swd
    from ganlab.runtime import runtime_for
    from ganlab.train.build import build_session
    from ganlab.train.inloop import evaluate

    size, ch = (32, 4) if args.quick else (args.size, args.channels)
    cfg = TrainConfig(data=data, val_data=val, size=size, load_size=size * 9 // 8, batch_size=4, ngf=ch, ndf=ch, steps=1,
                      device="cpu").validate()
    train_data, val_data = build_datasets(cfg, print)
    session = build_session(cfg, runtime_for(cfg), 1)
    evaluate(session, val_data, 0, None, None, None, train_data)  # warm-up
    before, after = [], []
    for _ in range(pairs):
        swd._REAL.clear()
        t0 = time.perf_counter()
        evaluate(session, val_data, 0, None, None, None, train_data)
        before.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        evaluate(session, val_data, 0, None, None, None, train_data)
        after.append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(after, before)]
    return {"before": before, "after": after, "ratios": ratios, "median_ratio": statistics.median(ratios)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="training images (default: BSDS500 train where present, else generated images)")
    p.add_argument("--val-data", help="validation images (default: BSDS500 val, else generated images)")
    p.add_argument("--bsds500", default=str(REPO.parent / "shared" / "datasets" / "bsds500"), metavar="DIR",
                   help="where BSDS500's train/ and val/ are looked for")
    p.add_argument("--steps", type=int, default=200, help="steps of each run (default 200)")
    p.add_argument("--eval-every", type=int, default=100, help="evaluations of each run (default every 100 steps, and at the end)")
    p.add_argument("--seeds", type=int, default=4, help="seeds per arm: 3 arms x seeds runs per confirmation (default 4)")
    p.add_argument("--size", type=int, default=64, help="crop size (default 64)")
    p.add_argument("--channels", type=int, default=32, help="ngf and ndf (default 32)")
    p.add_argument("--rounds", type=int, default=1, help="times each setting is timed, in rotated order (default 1)")
    p.add_argument("--out", default="runs/study-throughput", help="working folder (default runs/study-throughput)")
    p.add_argument("--quick", action="store_true", help="check the benchmark in a minute: tiny runs, figures meaningless")
    p.add_argument("--overhead", action="store_true", help="also measure the per-run overhead of a confirmation worker")
    p.add_argument("--only-overhead", action="store_true", help="measure the per-run overhead only")
    p.add_argument("--eval-ab", action="store_true", help="only time one in-loop evaluation with and without the "
                   "SWD's kept real side, in pairs")
    p.add_argument("--settings", default=",".join(SETTING_KEYS),
                   help=f"the settings timed, comma-separated (default all: {','.join(SETTING_KEYS)}; "
                        f"{', '.join(NEEDED)} are always timed)")
    p.add_argument("--markdown", help="write the tables here")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    if args.quick:
        args.steps, args.seeds, args.eval_every = 4, 1, 2
    for flag in ("steps", "seeds", "rounds", "size", "channels"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} {getattr(args, flag)}: must be a whole number >= 1")
    root = Path(args.out).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    data, val, what = pick_data(args, root)
    cores = usable_cores()
    command = "python benchmarks/study_throughput.py " + " ".join(sys.argv[1:])
    print(f"data: {what}; {cores} usable cores; {args.steps} steps a run, {args.seeds} seeds x 3 arms", flush=True)
    if args.eval_ab:
        ab = eval_ab(args, data, val)
        print("\n".join(f"evaluation without the kept real side {b:.2f} s, with it {a:.2f} s"
                        for b, a in zip(ab["before"], ab["after"])))
        print(f"median ratio {ab['median_ratio']:.2f} (range {min(ab['ratios']):.2f}-{max(ab['ratios']):.2f})")
        if args.json:
            Path(args.json).write_text(json.dumps(ab, indent=2))
        return 0
    parent = make_parent(args, root, data, val)
    out: dict = {"command": command, "data": what}
    text = []
    if not args.only_overhead:
        asked = {k.strip() for k in args.settings.split(",") if k.strip()}
        unknown = asked - set(SETTING_KEYS)
        if unknown:
            p.error(f"--settings: unknown {sorted(unknown)[0]!r}; choose from {', '.join(SETTING_KEYS)}")
        rows = [r for r in settings(cores) if r["key"] in asked | set(NEEDED)]
        time_confirmations(args, root, parent, rows)
        summary = summarise(rows, cores)
        out.update(rows=rows, summary=summary)
        text.append(markdown(rows, summary, command, what))
    if args.overhead or args.only_overhead:
        o = overhead(args, root, parent)
        out["overhead"] = o
        text.append(overhead_markdown(o, args.eval_every))
    report = "\n\n".join(text)
    print("\n" + report)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
