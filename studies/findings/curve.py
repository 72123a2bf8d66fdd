"""The baseline's learning curve, and the number of steps the findings train for.

Trains the plain pix2pix baseline (the findings' [train] settings) with three seeds for
``--steps`` steps, evaluating the default colourisation objective (val/ab_swd) every
``--eval-every`` steps, then picks the budget: the first evaluation after which the seeds' mean
curve (smoothed over ``--window`` evaluations: one evaluation of a GAN moves a lot) improves by
less than its seed spread at any later point. The seed spread is the sd over the seeds of one
evaluation's value (median over the evaluations): what separates two runs of a confirmation,
which compares each run's last evaluation. Writes the curve as a PNG and its
numbers as JSON; a second call reuses the finished runs and resumes an unfinished one.

    python studies/findings/curve.py --data ../shared/datasets/bsds500 --runs ../findings-runs/curve \
        --png docs/findings/curve.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

TRAIN = ["--size", "64", "--load-size", "72", "--batch-size", "4", "--ngf", "16", "--ndf", "16"]


def run_dir(runs: Path, seed: int) -> Path | None:
    found = sorted(runs.glob(f"*-baseline-s{seed}"))
    return found[-1] if found else None


def status(d: Path) -> str:
    try:
        return json.loads((d / "status.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def train(args, seed: int) -> Path:
    d = run_dir(args.runs, seed)
    if d is not None and status(d) == "finished":
        return d
    if d is not None and any((d / "checkpoints").glob("step-*.pt")):
        cmd = ["ganlab", "train", "--resume", str(d), "--no-progress"]
    else:
        cmd = ["ganlab", "train", "--data", str(args.data / "train"), "--val-data", str(args.data / "val"), *TRAIN,
               "--steps", str(args.steps), "--eval-every", str(args.eval_every), "--save-every", "500",
               "--best-metric", "val/ab_swd", "--threads", str(args.threads), "--seed", str(seed),
               "--out", str(args.runs), "--name", f"baseline-s{seed}", "--no-progress"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return run_dir(args.runs, seed)


def curve(d: Path, key: str) -> dict[int, float]:
    """The run's evaluations of ``key`` by step (1-based: the step's number after it ran)."""
    from ganlab.stats import read_series

    return {step + 1: value for step, value in read_series(d / "stats.jsonl").get(key, [])}


def smooth(values: list[float], window: int) -> list[float]:
    half = window // 2
    return [statistics.fmean(values[max(0, i - half):i + half + 1]) for i in range(len(values))]


def choose(curves: list[dict[int, float]], window: int) -> dict:
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    smoothed = [smooth([c[s] for s in steps], window) for c in curves]
    mean = [statistics.fmean(v) for v in zip(*smoothed)]
    sd = [statistics.stdev(c[s] for c in curves) for s in steps]  # one evaluation's spread over the seeds
    spread = statistics.median(sd)
    chosen = steps[-1]
    for i, s in enumerate(steps):
        later_best = min(mean[i:])
        if mean[i] - later_best < spread:
            chosen = s
            break
    return {"steps": steps, "mean": mean, "sd": sd, "spread": spread, "chosen": chosen,
            "raw": [[c[s] for s in steps] for c in curves]}


def plot(result: dict, path: Path, key: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    steps = result["steps"]
    for i, raw in enumerate(result["raw"]):
        ax.plot(steps, raw, lw=0.6, alpha=0.45, label=f"seed {i}, each evaluation")
    mean, sd = result["mean"], result["sd"]
    ax.plot(steps, mean, color="k", lw=1.8, label="mean of the smoothed curves")
    ax.fill_between(steps, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], color="k", alpha=0.12,
                    label="± seed sd of one evaluation")
    ax.axvline(result["chosen"], color="tab:red", ls="--", lw=1, label=f"budget: {result['chosen']} steps")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{key} (lower is better)")
    ax.set_title("pix2pix baseline, BSDS500 val, 64 px, ngf/ndf 16")
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the BSDS500 folder (train/, val/)")
    p.add_argument("--runs", type=Path, required=True, help="where the three runs go")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--window", type=int, default=5, help="evaluations averaged to smooth a curve")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--metric", default="val/ab_swd")
    p.add_argument("--png", type=Path, help="write the curve here")
    p.add_argument("--json", type=Path, help="write the numbers here (default RUNS/curve.json)")
    args = p.parse_args(argv)
    if not (args.data / "train").is_dir():
        print(f"curve.py: {args.data / 'train'} is not a folder; give --data the BSDS500 folder", file=sys.stderr)
        return 2
    args.runs.mkdir(parents=True, exist_ok=True)
    dirs = [train(args, s) for s in range(args.seeds)]
    result = choose([curve(d, args.metric) for d in dirs], args.window)
    out = args.json or args.runs / "curve.json"
    out.write_text(json.dumps(result) + "\n")
    if args.png:
        plot(result, args.png, args.metric)
    print(f"{args.metric}: seed spread (median sd over the seeds of one evaluation) {result['spread']:.1f}; the mean curve "
          f"improves by less than that after step {result['chosen']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
