"""fp32 against bf16 autocast on the same data, steps and seeds: do the validation metrics and
the stability diagnostics agree within seed noise?

Every (precision, seed) is one ``ganlab train`` run in this process, one after another; the
figures are read back from each run's ``stats.jsonl``: the last in-loop evaluation (val/L1,
val/swd, val/color_hist, val/psnr, val/ssim, val/ab_l1, val/colorfulness_gap) and the
stability diagnostics of ``benchmarks/trick_stability.py`` (D accuracy on real and fake,
oscillation, gradient norms and spikes, the instability score I). The table gives, per
precision, the mean and standard deviation over the seeds, then the bf16 - fp32 difference of
the means next to the seed spread (the larger of the two standard deviations): a difference
well inside the spread is seed noise.

Reproduce the table in docs/performance.md (one CPU thread; about 25 minutes)::

    python benchmarks/precision_science.py --data ../shared/datasets/bsds500/train \\
        --val-data ../shared/datasets/bsds500/val --steps 400 --batch-size 4 --size 64 \\
        --ngf 32 --ndf 32 --seeds 0 1 2 --out runs/precision-science --markdown runs/precision_science.md

``--reuse`` reads finished runs from ``--out`` instead of training them again.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trick_stability import stats_of  # noqa: E402

VAL = ("val/L1", "val/swd", "val/color_hist", "val/psnr", "val/ssim", "val/ab_l1", "val/colorfulness_gap")
STAB = (("d_acc_real", "D acc real"), ("d_acc_fake", "D acc fake"), ("oscillation", "oscillation"),
        ("grad_d_median", "median grad norm of D"), ("grad_g_median", "median grad norm of G"), ("grad_spikes", "grad spikes"),
        ("instability", "instability I"), ("d_loss", "mean D loss"), ("g_adv", "mean G adv loss"))


def figures(run_dir: Path) -> dict:
    from ganlab.stats import read_series

    series = read_series(run_dir / "stats.jsonl")
    out = {tag: series[tag][-1][1] for tag in VAL if series.get(tag)}
    out.update({k: v for k, v in stats_of(run_dir).items() if k in dict(STAB)})
    return out


def table(rows: list[dict], command: str) -> str:
    keys = [(t, t) for t in VAL] + list(STAB)
    by = {p: [r["figures"] for r in rows if r["precision"] == p] for p in ("fp32", "bf16")}
    secs = {p: [r["seconds"] for r in rows if r["precision"] == p] for p in ("fp32", "bf16")}
    n = min(len(v) for v in by.values())
    lines = [f"Command: `{command}`", "",
             f"| metric | fp32 mean ± sd (n={n}) | bf16 mean ± sd (n={n}) | bf16 − fp32 | seed sd | per seed fp32 / bf16 |",
             "|---|---|---|---|---|---|"]
    for key, label in keys:
        vals = {p: [f.get(key, math.nan) for f in by[p]] for p in by}
        m = {p: float(np.nanmean(v)) for p, v in vals.items()}
        sd = {p: float(np.nanstd(v, ddof=1)) if len(v) > 1 else math.nan for p, v in vals.items()}
        spread = max(sd.values())
        per_seed = " / ".join(", ".join(f"{x:.3g}" for x in vals[p]) for p in ("fp32", "bf16"))
        lines.append(f"| {label} | {m['fp32']:.4g} ± {sd['fp32']:.2g} | {m['bf16']:.4g} ± {sd['bf16']:.2g} | "
                     f"{m['bf16'] - m['fp32']:+.3g} | {spread:.2g} | {per_seed} |")
    lines.append(f"| wall seconds per run | {np.mean(secs['fp32']):.0f} | {np.mean(secs['bf16']):.0f} | | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="training images")
    p.add_argument("--val-data", help="validation images")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="the memory format of both precisions (auto: each precision's default, so on for bf16 and "
                        "off for fp32 on a CPU; on or off holds it fixed, so that only the precision differs)")
    p.add_argument("--out", default="runs/precision-science")
    p.add_argument("--reuse", action="store_true", help="read runs already in --out instead of training them again")
    p.add_argument("--markdown", help="write the table to this file")
    p.add_argument("--json", help="write all figures to this file")
    args = p.parse_args(argv)

    import torch
    from rich.console import Console

    from ganlab.config import resolve
    from ganlab.train import train

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        for precision in ("fp32", "bf16"):
            name = f"prec-{precision}-s{seed}"
            existing = sorted(out.glob(f"*-{name}")) if out.is_dir() else []
            if args.reuse and existing and (existing[-1] / "bench.json").is_file():
                run_dir = existing[-1]
                seconds = json.loads((run_dir / "bench.json").read_text())["seconds"]
            else:
                cfg = resolve({
                    "data": args.data, "val_data": args.val_data, "steps": args.steps, "batch_size": args.batch_size,
                    "size": args.size, "ngf": args.ngf, "ndf": args.ndf, "seed": seed, "device": "cpu",
                    "precision": precision, "channels_last": args.channels_last, "out": str(out), "name": name,
                    "eval_every": args.eval_every,
                    "save_every": args.steps, "log_every": 10,
                })
                t0 = time.perf_counter()
                result = train(cfg, progress=False, console=Console(file=io.StringIO(), width=120))
                seconds = time.perf_counter() - t0
                run_dir = result.run_dir
                (run_dir / "bench.json").write_text(json.dumps({"seconds": seconds}))
            row = {"precision": precision, "seed": seed, "run": str(run_dir), "seconds": seconds, "figures": figures(run_dir)}
            rows.append(row)
            f = row["figures"]
            print(f"{precision} seed {seed}: val/L1 {f.get('val/L1', math.nan):.4f} val/swd {f.get('val/swd', math.nan):.3f} "
                  f"I {f.get('instability', math.nan):.2f} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    command = "python benchmarks/precision_science.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = table(rows, command)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
