"""Every available image-quality metric and the instability score of a run (``ganlab eval``).

The run's final generator (or its moving average, ``--checkpoint ema``) colourises the fixed
validation set (centre crops, in file order). Real and generated images are converted to RGB
(Lab -> RGB for colourisation), clipped and rounded to uint8, and only then measured. Every
number carries its sample count and the implementation that made it; a metric that cannot be
computed here is listed as unavailable with the reason, never as 0.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ganlab.color import rgb_to_lab, to_uint8
from ganlab.data import build_datasets, to_rgb
from ganlab.errors import GanlabError, UsageError
from ganlab.infer import open_generator
from ganlab.metrics.color_hist import ab_histogram, histogram_distance
from ganlab.metrics.fid import RealFeatureCache, cached_real_features, fid_kid, files_digest, stats_key
from ganlab.metrics.fidelity import colorfulness, psnr_per_image, ssim_per_image, uiqi_per_image
from ganlab.metrics import inception
from ganlab.metrics.inception import WeightsUnavailable
from ganlab.metrics.scripted import load_torchscript_features
from ganlab.metrics.lpips import IMPLEMENTATION as LPIPS_IMPL
from ganlab.metrics.lpips import load_lpips, lpips_distance
from ganlab.metrics.stability import instability_from_run
from ganlab.metrics.swd import ab_sliced_wasserstein, sliced_wasserstein
from ganlab.runtime import resolve_device
from ganlab.train.rundir import is_run_dir

__all__ = ["SWD_MAX_IMAGES", "EvalOptions", "evaluate_run", "fid_entry_for_run", "fid_for_run", "json_safe", "print_table"]

SWD_MAX_IMAGES = 1024

# ---------------------------------------------------------------------------------------------
# Result entries
# ---------------------------------------------------------------------------------------------


def _ok(value: float, n: int, implementation: str, **extra: Any) -> dict[str, Any]:
    if isinstance(value, float) and math.isnan(value):  # a number that is not one is never available
        return _unavailable("not a number (NaN) on these images")
    return {"available": True, "value": value, "n": n, "implementation": implementation, **extra}


def _unavailable(reason: str, short: str | None = None) -> dict[str, Any]:
    return {"available": False, "reason": reason, "short": short or reason}


def json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return json_safe(obj.item())
    return obj


# ---------------------------------------------------------------------------------------------
# Accumulators (the set may be larger than memory allows to keep whole)
# ---------------------------------------------------------------------------------------------


class _Accumulator:
    def __init__(self, swd_max: int, hist_bins: int = 32):
        self.n = 0
        self.sums = {"psnr": 0.0, "ssim": 0.0, "uiqi": 0.0, "ab_l1": 0.0, "l1": 0.0, "lpips": 0.0}
        self.psnr_inf = 0
        self.col_r: list[torch.Tensor] = []
        self.col_f: list[torch.Tensor] = []
        self.hist_r = None
        self.hist_f = None
        self.swd_r: list[torch.Tensor] = []
        self.swd_f: list[torch.Tensor] = []
        self.swd_max = swd_max
        self.bins = hist_bins

    def add(self, real: torch.Tensor, fake: torch.Tensor, l1: torch.Tensor, lpips_model=None) -> None:
        b = real.shape[0]
        p = psnr_per_image(real, fake)
        self.psnr_inf += int(torch.isinf(p).sum())
        self.sums["psnr"] += float(p[torch.isfinite(p)].sum())
        if min(real.shape[2:]) >= 11:
            self.sums["ssim"] += float(ssim_per_image(real, fake).sum())
        if min(real.shape[2:]) >= 8:
            self.sums["uiqi"] += float(uiqi_per_image(real, fake).sum())
        ab = (rgb_to_lab(real.float() / 255.0)[:, 1:] - rgb_to_lab(fake.float() / 255.0)[:, 1:]).abs()
        self.sums["ab_l1"] += float(ab.mean(dim=(1, 2, 3)).sum())
        self.sums["l1"] += float(l1.sum())
        if lpips_model is not None:
            self.sums["lpips"] += lpips_distance(lpips_model, real, fake) * b
        self.col_r.append(colorfulness(real).cpu())
        self.col_f.append(colorfulness(fake).cpu())
        hr, hf = ab_histogram(real, self.bins) * b, ab_histogram(fake, self.bins) * b
        self.hist_r = hr if self.hist_r is None else self.hist_r + hr
        self.hist_f = hf if self.hist_f is None else self.hist_f + hf
        keep = min(b, self.swd_max - sum(x.shape[0] for x in self.swd_r))
        if keep > 0:
            self.swd_r.append(real[:keep].cpu())
            self.swd_f.append(fake[:keep].cpu())
        self.n += b


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """What ``ganlab eval`` is asked (its flags; the command line builds one, a caller may too)."""

    run_dir: str  # a run folder, or a checkpoint file inside one
    data: str | None = None  # validation images (None: the run's validation split)
    checkpoint: str = "latest"  # latest | best | ema | a checkpoint file
    n: int | None = None  # the first N validation images (None: all)
    inception_weights: str | None = None
    fid_features: str | None = None  # a TorchScript feature network in place of Inception
    no_download: bool = False
    device: str = "auto"
    batch_size: int = 32
    seed: int | None = None  # of SWD patches and KID subsets (None: the run's seed)
    no_cache: bool = False  # recompute the real-image features


def _check_args(options: EvalOptions) -> tuple[Path, Path, str, str]:
    """(run folder, what to load: the run folder or a file, latest|best|ema|PATH, label).

    A checkpoint file given as RUN_DIR is read as ``RUN --checkpoint FILE`` of the run it
    belongs to (RUN/checkpoints/FILE or RUN/FILE), so that metrics.json and the stability
    score are those of that run."""
    run = Path(options.run_dir).expanduser()
    if not run.exists():
        raise UsageError(f"{options.run_dir}: no such run folder; give a folder written by 'ganlab train'")
    if options.n is not None and options.n < 2:
        raise UsageError(f"--n {options.n}: need at least 2 images (FID and KID need many more; ideally thousands)")
    if options.batch_size < 1:
        raise UsageError(f"--batch-size {options.batch_size}: must be at least 1")
    if options.data is not None and not Path(options.data).expanduser().exists():
        raise UsageError(f"--data {options.data}: no such folder; give a folder of validation images")
    which = options.checkpoint
    if run.is_file():
        if which == "best":
            raise UsageError(f"{options.run_dir}: --checkpoint best picks a run folder's best.pt; give the run folder as "
                             "RUN_DIR (or this file alone, with --checkpoint latest)")
        if which not in ("latest", "ema"):
            raise UsageError(f"{options.run_dir}: RUN_DIR is a file and --checkpoint {which} names another; "
                             "give the run folder as RUN_DIR and one file as --checkpoint PATH")
        parent = run.resolve().parent
        owner = parent.parent if parent.name == "checkpoints" else parent
        if not is_run_dir(owner):
            raise UsageError(f"{options.run_dir}: this file is not inside a run folder; give the run folder and the "
                             "file: ganlab eval RUN_DIR --checkpoint PATH")
        # "latest" of a file is its G; "ema" its moving average of G
        return owner, run, which, run.name + (" (ema)" if which == "ema" else "")
    label = which if which in ("latest", "best", "ema") else Path(which).name
    return run, run, which, label


def evaluate_run(options: EvalOptions, console=None) -> dict[str, Any]:
    """Compute every available metric the options ask for."""
    console = console or Console(stderr=True)
    note = lambda msg: console.print(f"[yellow]note:[/] {msg}", highlight=False, soft_wrap=True)  # noqa: E731
    run, source, which, label = _check_args(options)
    device = resolve_device(options.device)
    # The generator first: a run without one fails here, before any note or download.
    # best: the generator that was evaluated when best.pt was chosen (its moving average where kept)
    loaded = open_generator(str(source), "auto" if which == "best" else which, device=device,
                            which="best" if which == "best" else "latest", allow_nonfinite=True)
    cfg, G = loaded.cfg, loaded.G

    # Then the feature network and the weights, before any other work: one line each for what is
    # missing. A --fid-features network replaces Inception: its weights are not looked for.
    fid_features = options.fid_features
    extractor, weights, fid_reason = None, None, None
    if fid_features is not None:
        extractor = load_torchscript_features(fid_features, device=device, batch_size=options.batch_size, probe_size=cfg.size)
    else:
        weights, fid_reason = inception.inception_status(options.inception_weights, download=not options.no_download)
        if fid_reason:
            note(fid_reason)
    lpips_model, lpips_reason = None, None
    try:
        lpips_model = load_lpips(device=device, download=not options.no_download)
    except WeightsUnavailable as exc:
        lpips_reason = str(exc)
        note(lpips_reason)

    if options.data is not None:
        cfg = dataclasses.replace(cfg, data=options.data, val_data=options.data, data_a=None, data_b=None, val_data_a=None,
                                  val_data_b=None)
    seed = cfg.seed if options.seed is None else options.seed
    _, val = build_datasets(cfg, warn=note)
    n = len(val) if options.n is None else min(options.n, len(val))
    if options.n is not None and options.n > len(val):
        note(f"--n {options.n}: the validation set has only {len(val)} images; using all of them")
    if n < 2:
        raise UsageError(f"the validation set has {n} image; give at least 2 with --data VAL_DIR")

    if weights is not None:
        extractor = inception.load_inception(weights, device=device, download=False, batch_size=options.batch_size)
    settings = {
        "task": cfg.task,
        "direction": cfg.direction,
        "size": cfg.size,
        "load_size": cfg.effective_load_size,
        "n": n,
        "crop": "centre",
        "implementation": extractor.implementation if extractor else None,
        "network_sha256": extractor.sha256 if extractor else None,
    }
    cache = RealFeatureCache()
    key = None
    real_cached = None
    if extractor is not None:
        key = stats_key(files_digest(val.images.files[:n]), settings)
        if not options.no_cache:
            real_cached = cache.load(key)

    # every refusal is behind us: say which generator is measured
    console.print(f"generator: {loaded.describe()}", highlight=False, markup=False, soft_wrap=True)
    acc = _Accumulator(SWD_MAX_IMAGES)
    real_feats, fake_feats = [], []
    broken = None
    t0 = time.perf_counter()
    with torch.inference_mode():
        for cond, target in val.fixed_batches(options.batch_size, device, n):
            out = G(cond).float()
            l1 = (out - target).abs().mean(dim=(1, 2, 3))
            real = to_uint8(to_rgb(cfg.task, cond, target))
            fake = to_uint8(to_rgb(cfg.task, cond, out))
            if not torch.isfinite(out).all():
                broken = f"the generator ({label}) outputs NaN/Inf: the run diverged before this checkpoint"
                break
            acc.add(real, fake, l1, lpips_model)
            if extractor is not None:
                fake_feats.append(extractor(fake).cpu().numpy())
                if real_cached is None:
                    real_feats.append(extractor(real).cpu().numpy())
    seconds = time.perf_counter() - t0

    metrics: dict[str, Any] = {}
    if broken is not None:
        note(broken)
        for key in _LABELS:
            if key != "instability":
                metrics[key] = _unavailable(broken)
    # FID / KID
    elif extractor is None:
        short = "no Inception weights here (see the note above the table)"
        metrics["fid"] = metrics["kid"] = _unavailable(fid_reason, short)
    else:
        ff = np.concatenate(fake_feats)
        if real_cached is not None:
            fr, stats = real_cached
        elif options.no_cache:
            fr, stats = np.concatenate(real_feats), None
        else:
            computed = np.concatenate(real_feats)
            fr, stats, _ = cached_real_features(lambda: computed, key=key, cache=cache, meta=settings)
        res = fid_kid(fr, ff, real_stats=stats, seed=seed)
        impl = extractor.implementation
        warn = "FID is biased at small N; compare only at equal N" if n < 2048 else None
        metrics["fid"] = _ok(res["fid"], n, impl, **({"warning": warn} if warn else {}), real_stats_cached=real_cached is not None)
        metrics["kid"] = _ok(
            res["kid"], n, f"{impl}; unbiased MMD^2, cubic polynomial kernel", std=res["kid_std"], subset_size=res["kid_subset_size"]
        )
    if broken is None:
        # Weight-free distribution distances
        if cfg.size >= 16:
            swd_r, swd_f = torch.cat(acc.swd_r).to(device), torch.cat(acc.swd_f).to(device)
            swd = sliced_wasserstein(swd_r, swd_f, seed=seed)
            metrics["swd"] = _ok(
                swd, min(n, SWD_MAX_IMAGES), "ganlab SWD x1e3 (Karras et al. 2018): 7x7 Laplacian-pyramid patches, 128/image, "
                "4x128 directions, normalised by real statistics"
            )
            metrics["ab_swd"] = _ok(
                ab_sliced_wasserstein(swd_r, swd_f, seed=seed), min(n, SWD_MAX_IMAGES),
                "ganlab SWD x1e3 of the Lab a/b channels: 7x7 Laplacian-pyramid patches, 128/image, 4x128 directions, "
                "normalised by real statistics"
            )
        metrics["color_hist"] = _ok(
            histogram_distance(acc.hist_r / acc.n, acc.hist_f / acc.n),
            n,
            "ganlab sliced W1 between 32x32 ab histograms over [-110, 110]^2 (Lab units)",
        )
        # Per-image fidelity
        finite = acc.n - acc.psnr_inf
        metrics["psnr"] = (
            _ok(acc.sums["psnr"] / finite, n, "ganlab PSNR on uint8 RGB, data range 255, mean over images", identical=acc.psnr_inf)
            if finite
            else _ok(math.inf, n, "ganlab PSNR on uint8 RGB (every pair identical)")
        )
        metrics["ssim"] = _ok(acc.sums["ssim"] / acc.n, n, "ganlab SSIM (Wang 2004), Gaussian 11x11 sigma 1.5, RGB mean")
        metrics["uiqi"] = _ok(acc.sums["uiqi"] / acc.n, n, "ganlab UIQI (Wang & Bovik 2002), 8x8 windows, RGB mean")
        metrics["ab_l1"] = _ok(acc.sums["ab_l1"] / acc.n, n, "mean |a|,|b| difference in Lab units, from uint8 RGB")
        metrics["l1"] = _ok(acc.sums["l1"] / acc.n, n, "mean |G(x) - y| in the networks' scale (as val/L1)")
        cr, cf = float(torch.cat(acc.col_r).mean()), float(torch.cat(acc.col_f).mean())
        col_impl = "Hasler & Suesstrunk 2003 on uint8 RGB"
        metrics["colorfulness_real"] = _ok(cr, n, col_impl)
        metrics["colorfulness_fake"] = _ok(cf, n, col_impl)
        metrics["colorfulness_ratio"] = (
            _ok(cf / cr, n, f"{col_impl}; fake / real")
            if cr > 0
            else _unavailable("the real images have no colour (colourfulness 0), so the ratio is undefined")
        )
        metrics["lpips"] = _ok(acc.sums["lpips"] / acc.n, n, LPIPS_IMPL) if lpips_model is not None else _unavailable(
            lpips_reason, "no LPIPS weights here (see the note above the table)"
        )
    # Stability
    try:
        rep = instability_from_run(run)
        metrics["instability"] = {
            "available": True,
            "value": rep.score,
            "components": rep.components,
            "diverged": rep.diverged,
            "diverged_step": rep.diverged_step,
            "diverged_tag": rep.diverged_tag,
            "steps": rep.steps,
            "missing": rep.missing,
            # the degenerate-run label and the unknown terms (ganlab.metrics.stability)
            "unknown": rep.unknown,
            "degenerate": rep.degenerate,
            "degenerate_reason": rep.degenerate_reason,
            "base_score": rep.base_score,
            "quality_curve": rep.quality_tag,
            "loss_shape": rep.loss_shape if math.isfinite(rep.loss_shape) else "inf",
            "diagnostics": rep.diagnostics,
            "adv_grad_share": rep.adv_grad_share,
            "implementation": "ganlab instability score: the quality curve's regression and volatility (docs/metrics.md)",
        }
    except UsageError as exc:
        metrics["instability"] = _unavailable(str(exc))

    return {
        "run": str(run),
        "checkpoint": label,
        "checkpoint_file": str(loaded.file.resolve()),
        "checkpoint_step": loaded.step,
        "weights": loaded.weights,
        **({"best": loaded.best} if loaded.best else {}),
        "task": cfg.task,
        "data": cfg.val_data_label if cfg.val_data_label is not None else (
            f"split of {cfg.data_label}" if cfg.data_label else "split of the sample set"),
        "n": n,
        "image_size": cfg.size,
        "seed": seed,
        "device": str(device),
        "seconds": round(seconds, 3),
        "metrics": metrics,
    }


_LABELS = {
    "fid": "FID",
    "kid": "KID",
    "swd": "SWD (x1e3)",
    "ab_swd": "a/b SWD (x1e3)",
    "color_hist": "ab-histogram distance",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "uiqi": "UIQI",
    "ab_l1": "ab L1 (Lab units)",
    "l1": "L1 (network scale)",
    "colorfulness_real": "colourfulness, real",
    "colorfulness_fake": "colourfulness, generated",
    "colorfulness_ratio": "colourfulness ratio",
    "lpips": "LPIPS",
    "instability": "instability score",
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(v)


def print_table(result: dict[str, Any], console=None) -> None:
    console = console or Console()
    table = Table(title=f"{result['run']}  ({result['checkpoint']}, N={result['n']}, {result['image_size']} px)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("N", justify="right")
    table.add_column("how / why not", overflow="fold")
    for key, m in result["metrics"].items():
        label = _LABELS.get(key, key)
        if not m.get("available"):
            table.add_row(label, "[dim]unavailable[/]", "", m.get("short", m.get("reason", "")))
            continue
        value = _fmt(m["value"])
        if key == "kid" and isinstance(m.get("std"), float) and math.isfinite(m["std"]):
            value += f" ± {_fmt(m['std'])}"
        how = m.get("implementation", "")
        if key == "instability":
            if m["diverged"]:
                how = f"diverged at step {m['diverged_step']} ({m['diverged_tag']} is NaN/Inf)"
            else:
                how = ", ".join(f"{k}={_fmt(v)}" for k, v in m["components"].items())
                if m.get("quality_curve"):
                    how += f" (of {m['quality_curve']})"
                if m["missing"]:
                    how += f"; unknown (not logged): {', '.join(m['missing'])}"
                if m.get("diagnostics"):
                    how += f"; diagnostics: loss_shape={_fmt(m['loss_shape'])}, " + ", ".join(
                        f"{k}={_fmt(v)}" for k, v in m["diagnostics"].items())
            n = str(m["steps"]) + " steps"
            if "degenerate" in m:  # the degenerate-run row
                table.add_row(label, value, n, how)
                label, value, n = "degenerate run", (f"[red]{m['degenerate']}[/]" if m["degenerate"] else "no"), ""
                how = m.get("degenerate_reason") or "no rule of 'ganlab eval --help' (degenerate) applies"
        else:
            n = str(m.get("n", ""))
        if m.get("warning"):
            how += f" [yellow]({m['warning']})[/]"
        table.add_row(label, value, n, how)
    console.print(table)




def fid_entry_for_run(run_dir: str | Path, *, inception_weights: str | None = None, fid_features: str | None = None,
                      device: str = "auto") -> dict[str, Any]:
    """The FID entry (value, N, implementation) of a run's final generator on its validation set,
    as ``ganlab eval`` computes it, with Inception or the TorchScript network ``fid_features``;
    raises GanlabError with the reason where it cannot be had."""
    options = EvalOptions(run_dir=str(run_dir), inception_weights=inception_weights, fid_features=fid_features,
                       no_download=True, device=device)
    result = evaluate_run(options, console=Console(quiet=True))
    fid = result["metrics"]["fid"]
    if not fid.get("available"):
        raise GanlabError(f"objective fid: {fid.get('reason', 'not available')}")
    return fid


def fid_for_run(run_dir: str | Path, *, inception_weights: str | None = None, fid_features: str | None = None,
                device: str = "auto") -> float:
    """The FID of a run's final generator on its validation set (a study's ``fid`` objective);
    see :func:`fid_entry_for_run`."""
    return float(fid_entry_for_run(run_dir, inception_weights=inception_weights, fid_features=fid_features,
                                   device=device)["value"])
