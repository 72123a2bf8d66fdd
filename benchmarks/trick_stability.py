"""Training-stability statistics of the baseline and of each trick alone, on the same data,
steps and seed.

Every configuration is one ``ganlab train`` run (in this process, one after another); the
statistics are read back from each run's ``stats.jsonl`` with :func:`ganlab.stats.read_series`:

``D acc r/f``   mean of D/acc_real and D/acc_fake over the run (how often D is right)
``D wins``      share of steps where D is right on >= 98 % of both real and fake patches
``osc``         loss oscillation: slow swings of D's loss and G's adversarial loss
                (ganlab.metrics.stability.oscillation, 0 = batch noise only)
``|gD| |gG|``   median gradient norm of D and of G (and their 95th percentiles)
``spikes``      gradient-spike term (ganlab.metrics.stability.grad_spikes)
``I``           ganlab's instability score (ganlab eval's formula, docs/metrics.md), mean and
                range over ``--seeds``; ``(degenerate)`` where a seed's run is labelled
                ``no adversarial signal``
``val L1``      L1 of the (evaluation) generator on the validation images at the end
``s``           wall-clock seconds of the run

Reproduce the table in docs/tricks.md (one CPU thread, about half an hour)::

    python benchmarks/trick_stability.py --data ../shared/datasets/bsds500/train \\
        --val-data ../shared/datasets/bsds500/val --steps 300 --batch-size 4 --size 64 \\
        --ngf 16 --ndf 16 --seeds 0 1 --out runs/trick-stability --markdown runs/trick_stability.md

``--tricks a b`` restricts the set; ``--reuse`` reads finished runs from ``--out`` instead of
training again (a run stopped half-way is trained again), so the same command resumes a screen; each trick runs at its default parameters (``--trick`` syntax is accepted:
``--tricks wgan-gp:n_critic=2``; ``+`` joins several into one configuration, and
``gan_mode=rpgan`` in it sets the loss: ``--tricks gan_mode=rpgan+r1+r2``). ``--paired`` adds
a second table: each configuration against the baseline, as the seed-paired difference of the
instability score, the a/b-histogram distance and the SWD at the end, with ganlab's
bootstrap-t 95 % interval and verdict (``ganlab.study.evidence.paired_effect``; 5 seeds or more). A Wasserstein critic's "accuracy" is the sign of its output
(threshold 0), which is not a probability: read wgan-gp's D acc columns with that in mind.
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


def _mean(series, tag, start=0):
    vals = [v for s, v in series.get(tag, []) if s >= start]
    return float(np.mean(vals)) if vals else math.nan


def _pct(series, tag, q):
    vals = [v for _, v in series.get(tag, [])]
    return float(np.percentile(vals, q)) if vals else math.nan


def stats_of(run_dir: Path) -> dict:
    from ganlab.metrics import stability
    from ganlab.stats import read_series

    series = read_series(run_dir / "stats.jsonl")
    report = stability.instability_score(series)
    wins = stability.collapse_share(series)
    acc_r = dict(series.get("D/acc_real", []))
    acc_f = dict(series.get("D/acc_fake", []))
    both = [s for s in acc_r if s in acc_f]
    d_wins = float(np.mean([acc_r[s] >= 0.98 and acc_f[s] >= 0.98 for s in both])) if both else math.nan
    val = series.get("val/L1", [])
    return {
        "steps": len(both),
        "d_acc_real": _mean(series, "D/acc_real"),
        "d_acc_fake": _mean(series, "D/acc_fake"),
        "d_wins": d_wins,
        "collapse": wins if wins is not None else math.nan,
        "oscillation": stability.oscillation(series) or 0.0,
        "grad_d_median": _pct(series, "D/grad_norm", 50),
        "grad_d_p95": _pct(series, "D/grad_norm", 95),
        "grad_g_median": _pct(series, "G/grad_norm", 50),
        "grad_g_p95": _pct(series, "G/grad_norm", 95),
        "grad_spikes": stability.grad_spikes(series) or 0.0,
        "instability": report.score,
        "degenerate": report.degenerate,
        "val_l1": val[-1][1] if val else math.nan,
        "val_swd": series["val/swd"][-1][1] if series.get("val/swd") else math.nan,
        "val_color_hist": series["val/color_hist"][-1][1] if series.get("val/color_hist") else math.nan,
        "d_loss": _mean(series, "D/total"),
        "g_adv": _mean(series, "G/adv"),
    }


def _mean_range(values: list[float]) -> str:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{np.mean(vals):.2f} [{min(vals):.2f}, {max(vals):.2f}]"


def markdown(rows: list[dict], command: str) -> str:
    """One line per configuration; figures are means over its seeds (I: mean [min, max])."""
    head = ("| run | seeds | D acc r/f | osc | spikes | I | val L1 | s |\n"
            "|---|---|---|---|---|---|---|---|\n")
    body = ""
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    for label, rs in by_label.items():
        st = [r["stats"] for r in rs]
        mean = lambda k: float(np.nanmean([s[k] for s in st]))  # noqa: E731
        degenerate = sum(1 for s in st if s.get("degenerate"))
        mark = f" ({degenerate}/{len(st)} degenerate)" if degenerate else ""
        body += (
            f"| {label} | {len(st)} | {mean('d_acc_real'):.2f} / {mean('d_acc_fake'):.2f} | {mean('oscillation'):.3f} | "
            f"{mean('grad_spikes'):.2f} | {_mean_range([s['instability'] for s in st])}{mark} | {mean('val_l1'):.4f} | "
            f"{sum(r['seconds'] for r in rs):.0f} |\n"
        )
    return f"Command: `{command}`\n\n" + head + body


def paired_markdown(rows: list[dict]) -> str:
    """Each configuration against the baseline: seed-paired differences (configuration minus
    baseline; negative is better for all three) with their interval and verdict."""
    from ganlab.study.evidence import paired_effect

    by_label: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], {})[r["seed"]] = r["stats"]
    base = by_label.get("baseline", {})
    keys = (("instability", "I"), ("val_color_hist", "a/b hist"), ("val_swd", "SWD (x 1e3)"))  # val/swd is x 1e3
    head = "| run | seeds | " + " | ".join(f"Δ {name} (verdict)" for _, name in keys) + " |\n"
    head += "|---|---|" + "---|" * len(keys) + "\n"
    body = ""
    for label, by_seed in by_label.items():
        if label == "baseline":
            continue
        cells = []
        for key, _ in keys:
            x = {s: st[key] for s, st in by_seed.items()}
            y = {s: st[key] for s, st in base.items()}
            e = paired_effect(x, y, "minimize")
            cells.append(f"{e.text()} ({e.verdict})")
        body += f"| {label} | {len(by_seed)} | " + " | ".join(cells) + " |\n"
    return head + body


def _config(spec: str) -> tuple[str, list[str], str | None]:
    """(label, trick specs, gan mode or None) of a ``--tricks`` entry: ``+`` joins parts, a part
    ``gan_mode=NAME`` sets the loss."""
    tricks, mode = [], None
    for part in spec.split("+"):
        if part.startswith("gan_mode="):
            mode = part.split("=", 1)[1]
        else:
            tricks.append(part)
    from ganlab.trick._registry import parse_trick_arg

    label = spec if ("+" in spec or ":" in spec or mode) else parse_trick_arg(spec)[0]
    return label, tricks, mode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="training images")
    p.add_argument("--val-data", help="validation images")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--ndf", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed and configuration")
    p.add_argument("--eval-every", type=int, default=50, help="in-loop evaluations (the quality trajectory terms need several)")
    p.add_argument("--precision", default="fp32", help="fp32 or bf16 (bf16 autocast is about 2.5x faster on CPUs with AMX)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch (tiny networks on a shared CPU: 1 is fastest)")
    p.add_argument("--out", default="runs/trick-stability")
    p.add_argument("--tricks", nargs="*", help="trick specs to compare (default: every registered trick)")
    p.add_argument("--reuse", action="store_true", help="read runs already in --out instead of training them again")
    p.add_argument("--markdown", help="write the table to this file")
    p.add_argument("--json", help="write all statistics to this file")
    p.add_argument("--paired", action="store_true", help="add the table of seed-paired differences against the baseline")
    args = p.parse_args(argv)

    import torch
    from rich.console import Console

    from ganlab.config import resolve
    from ganlab.trick._registry import registry
    from ganlab.train import train

    torch.set_num_threads(args.threads)
    specs = args.tricks if args.tricks is not None else list(registry())
    configs = [("baseline", [], None)] + [_config(t) for t in specs]
    out = Path(args.out)
    rows = []
    # seed by seed, every configuration: a screen stopped early still pairs each one with the baseline
    for label, tricks, mode, seed in [(lab, tr, md, sd) for sd in args.seeds for lab, tr, md in configs]:
        name = "stab-" + label.replace(":", "_").replace(",", "_").replace("=", "").replace("+", "-") + f"-s{seed}"
        existing = sorted(out.glob(f"*-{name}")) if out.is_dir() else []
        if args.reuse and existing and (existing[-1] / "bench.json").is_file():  # written once the run has finished
            run_dir, seconds = existing[-1], json.loads((existing[-1] / "bench.json").read_text())["seconds"]
        else:
            flags = {
                "data": args.data, "val_data": args.val_data, "steps": args.steps, "batch_size": args.batch_size,
                "size": args.size, "ngf": args.ngf, "ndf": args.ndf, "seed": seed, "device": args.device,
                "precision": args.precision, "out": str(out), "name": name, "eval_every": args.eval_every,
                "save_every": args.steps, "log_every": 10,
                "tricks": tricks,
                **({"gan_mode": mode} if mode else {}),
            }
            cfg = resolve(flags)
            t0 = time.perf_counter()
            quiet = Console(file=io.StringIO(), width=120)
            result = train(cfg, progress=False, console=quiet)
            seconds = time.perf_counter() - t0
            run_dir = result.run_dir
            (run_dir / "bench.json").write_text(json.dumps({"seconds": seconds}))
        row = {"label": label, "seed": seed, "tricks": tricks, "run": str(run_dir), "seconds": seconds, "stats": stats_of(run_dir)}
        rows.append(row)
        s = row["stats"]
        print(f"{label:16s} seed {seed} acc {s['d_acc_real']:.2f}/{s['d_acc_fake']:.2f} osc {s['oscillation']:.3f} "
              f"|gD| {s['grad_d_median']:.3g} |gG| {s['grad_g_median']:.3g} I {s['instability']:.2f} "
              f"val/L1 {s['val_l1']:.4f} {s['degenerate'] or ''} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    command = "python benchmarks/trick_stability.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown(rows, command)
    if args.paired:
        table += "\n" + paired_markdown(rows)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
